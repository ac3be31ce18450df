//! Finding USB serial devices without udev: the ttyUSB*/ttyACM* nodes in /dev, their USB
//! attributes from /sys/class/tty/<name>/device/.. (where readable), and the
//! /dev/serial/by-id links that point at them (present where udev once ran, e.g. a host's
//! /dev shared with a container).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::model::device::DeviceInfo;

/// Scans the real /dev and /sys.
pub fn scan_system() -> Vec<DeviceInfo> {
    scan(Path::new("/dev"), Path::new("/sys/class/tty"))
}

/// Scans `dev` (normally /dev) and `class_tty` (normally /sys/class/tty), sorted by tty.
pub fn scan(dev: &Path, class_tty: &Path) -> Vec<DeviceInfo> {
    let links = by_id_links(&dev.join("serial/by-id"));
    let Ok(entries) = fs::read_dir(class_tty) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("ttyUSB") || n.starts_with("ttyACM"))
        .collect();
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let node = dev.join(&name);
        if !node.exists() {
            continue;
        }
        let usb = usb_device_dir(&class_tty.join(&name).join("device"));
        let attr = |file: &str| usb.as_ref().and_then(|d| read_trimmed(&d.join(file)));
        let hex = |file: &str| attr(file).and_then(|v| u16::from_str_radix(&v, 16).ok());
        let canonical = fs::canonicalize(&node).unwrap_or_else(|_| node.clone());
        out.push(DeviceInfo {
            tty: node.display().to_string(),
            by_id: links.get(&canonical).cloned(),
            vid: hex("idVendor"),
            pid: hex("idProduct"),
            serial: attr("serial"),
            manufacturer: attr("manufacturer"),
            product: attr("product"),
        });
    }
    out
}

/// The USB device a tty belongs to: the first directory holding `idVendor` going up from
/// its `device` link (ttyACM: the interface's parent; ttyUSB: one level further up).
fn usb_device_dir(device_link: &Path) -> Option<PathBuf> {
    let mut dir = fs::canonicalize(device_link).ok()?;
    for _ in 0..4 {
        if dir.join("idVendor").is_file() {
            return Some(dir);
        }
        dir = dir.parent()?.to_owned();
    }
    None
}

/// Resolved target → link path, for every link in `dir`.
fn by_id_links(dir: &Path) -> HashMap<PathBuf, String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return HashMap::new();
    };
    let mut links: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
    // Stable choice when two links point at one tty.
    links.sort();
    let mut out = HashMap::new();
    for link in links {
        if let Ok(target) = fs::canonicalize(&link) {
            out.entry(target)
                .or_insert_with(|| link.display().to_string());
        }
    }
    out
}

fn read_trimmed(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    /// A fake /dev and /sys as the kernel lays them out for a CP2102 (ttyUSB, via the
    /// usb-serial port device) and a T-Display S3 (ttyACM, straight on the interface).
    #[test]
    fn scans_a_fake_dev_and_sys() {
        let root = tempfile::tempdir().unwrap();
        let (dev, sys) = (root.path().join("dev"), root.path().join("sys"));
        let usb = sys.join("devices/platform/xhci/usb1");
        let cp = usb.join("1-1");
        for (f, v) in [
            ("idVendor", "10c4\n"),
            ("idProduct", "ea60\n"),
            ("serial", "0001\n"),
            ("manufacturer", "Silicon Labs\n"),
            ("product", "CP2102 USB to UART Bridge Controller\n"),
        ] {
            write(&cp.join(f), v);
        }
        fs::create_dir_all(cp.join("1-1:1.0/ttyUSB0")).unwrap();
        let s3 = usb.join("1-2");
        for (f, v) in [
            ("idVendor", "303a\n"),
            ("idProduct", "1001\n"),
            ("serial", "F4:12:FA:5B:C3:10\n"),
            ("manufacturer", "Espressif\n"),
            ("product", "USB JTAG/serial debug unit\n"),
        ] {
            write(&s3.join(f), v);
        }
        fs::create_dir_all(s3.join("1-2:1.0")).unwrap();
        let class = sys.join("class/tty");
        for (name, target) in [
            ("ttyUSB0", cp.join("1-1:1.0/ttyUSB0")),
            ("ttyACM0", s3.join("1-2:1.0")),
        ] {
            fs::create_dir_all(class.join(name)).unwrap();
            symlink(&target, class.join(name).join("device")).unwrap();
            write(&dev.join(name), "");
        }
        // The Pi's UART and a console are not USB serial devices.
        fs::create_dir_all(class.join("ttyS0")).unwrap();
        fs::create_dir_all(class.join("tty1")).unwrap();
        // An unplugged device whose sysfs entry lingers has no node.
        fs::create_dir_all(class.join("ttyUSB9")).unwrap();
        let by_id = dev.join("serial/by-id");
        fs::create_dir_all(&by_id).unwrap();
        let link = by_id.join("usb-Espressif_USB_JTAG_serial_debug_unit_F4:12:FA:5B:C3:10-if00");
        symlink("../../ttyACM0", &link).unwrap();

        let found = scan(&dev, &class);
        assert_eq!(found.len(), 2, "{found:#?}");
        let acm = &found[0];
        assert_eq!(acm.tty, dev.join("ttyACM0").display().to_string());
        assert_eq!(acm.usb_id().as_deref(), Some("303a:1001"));
        assert_eq!(acm.serial.as_deref(), Some("F4:12:FA:5B:C3:10"));
        assert_eq!(
            acm.by_id.as_deref(),
            Some(link.display().to_string().as_str())
        );
        let usb0 = &found[1];
        assert_eq!(usb0.usb_id().as_deref(), Some("10c4:ea60"));
        assert_eq!(
            usb0.product.as_deref(),
            Some("CP2102 USB to UART Bridge Controller")
        );
        assert_eq!(usb0.by_id, None);
    }

    #[test]
    fn missing_folders_mean_no_devices() {
        let root = tempfile::tempdir().unwrap();
        assert!(scan(&root.path().join("dev"), &root.path().join("sys")).is_empty());
    }
}
