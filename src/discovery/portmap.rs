//! The physical port map: where on the USB tree each serial device sits (`1-1.3.2`: bus 1,
//! root port 1, then port 3 of the hub there, then port 2 of the next hub), drawn as hubs and
//! ports so the owner can label a hub. Boards that only a tty name tells apart (CH340 boards
//! without a serial number, of one vid:pid) are flagged: their identity is their USB path.
//!
//! [`scan`] reads sysfs; [`UsbPath::parse`] and [`build`] are pure.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::model::device::DeviceInfo;

/// A USB device's place: its bus and the port numbers from the root hub down.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct UsbPath {
    /// Bus number (the root hub).
    pub bus: u32,
    /// Port numbers, root port first.
    pub ports: Vec<u32>,
}

impl UsbPath {
    /// From the kernel's device name: `1-1.3.2` → bus 1, ports 1, 3, 2. Interface names
    /// (`1-1.3:1.0`) and root hubs (`usb1`) are not device paths.
    pub fn parse(name: &str) -> Option<UsbPath> {
        let (bus, rest) = name.split_once('-')?;
        let bus = bus.parse().ok()?;
        let ports = rest
            .split('.')
            .map(|p| p.parse().ok())
            .collect::<Option<Vec<u32>>>()?;
        (!ports.is_empty()).then_some(UsbPath { bus, ports })
    }

    /// The hub this device is plugged into (`1-1.3` for `1-1.3.2`); `None` on a root port.
    pub fn parent(&self) -> Option<UsbPath> {
        (self.ports.len() > 1).then(|| UsbPath {
            bus: self.bus,
            ports: self.ports[..self.ports.len() - 1].to_vec(),
        })
    }

    /// The port on its hub.
    pub fn port(&self) -> u32 {
        self.ports.last().copied().unwrap_or(0)
    }
}

impl std::fmt::Display for UsbPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ports: Vec<String> = self.ports.iter().map(u32::to_string).collect();
        write!(f, "{}-{}", self.bus, ports.join("."))
    }
}

/// A serial device with its place on the tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    /// The device as discovery describes it.
    pub device: DeviceInfo,
    /// Where it is plugged in.
    pub path: UsbPath,
}

/// A hub on the tree, as sysfs describes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HubInfo {
    /// Where it is plugged in.
    pub path: UsbPath,
    /// Its product string (`USB2.0 Hub`), if any.
    pub product: Option<String>,
    /// How many ports it has (`maxchild`), if known.
    pub ports: Option<u32>,
}

/// What sysfs says about the USB serial devices and the hubs above them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scan {
    /// Serial devices with a USB path.
    pub devices: Vec<Placed>,
    /// Every hub above one of them.
    pub hubs: Vec<HubInfo>,
}

/// Places `devices` (from discovery) on the USB tree under `class_tty` (normally
/// /sys/class/tty), with the hubs above them. A device sysfs cannot place is left out.
pub fn scan(class_tty: &Path, devices: &[DeviceInfo]) -> Scan {
    let mut out = Scan::default();
    let mut hubs: BTreeMap<UsbPath, HubInfo> = BTreeMap::new();
    for d in devices {
        let name = d.tty.rsplit('/').next().unwrap_or(&d.tty);
        let Ok(mut dir) = fs::canonicalize(class_tty.join(name).join("device")) else {
            continue;
        };
        // Up to the USB device (the first folder whose name is a device path).
        let mut path = None;
        for _ in 0..4 {
            let base = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if let Some(p) = UsbPath::parse(base).filter(|_| dir.join("idVendor").is_file()) {
                path = Some(p);
                break;
            }
            match dir.parent() {
                Some(p) => dir = p.to_owned(),
                None => break,
            }
        }
        let Some(path) = path else { continue };
        // The hubs above it are its ancestors in sysfs.
        let mut up = dir.parent().map(Path::to_owned);
        while let Some(hub_dir) = up {
            let base = hub_dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let Some(hub) = UsbPath::parse(base) else {
                break;
            };
            hubs.entry(hub.clone()).or_insert_with(|| HubInfo {
                path: hub,
                product: read_trimmed(&hub_dir.join("product")),
                ports: read_trimmed(&hub_dir.join("maxchild")).and_then(|v| v.parse().ok()),
            });
            up = hub_dir.parent().map(Path::to_owned);
        }
        out.devices.push(Placed {
            device: d.clone(),
            path,
        });
    }
    out.hubs = hubs.into_values().collect();
    out
}

/// News of plugs and unplugs for the open `/ports` pages: a counter that discovery bumps on
/// every device change, watched by each page's event stream. Streams are capped like the
/// herd's (`[web] max_event_streams`).
#[derive(Debug, Clone)]
pub struct PortNews {
    tx: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
    streams: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Default for PortNews {
    fn default() -> Self {
        Self {
            tx: std::sync::Arc::new(tokio::sync::watch::channel(0).0),
            streams: Default::default(),
        }
    }
}

/// One open stream's receiver; gives its place back when dropped.
#[derive(Debug)]
pub struct NewsSeat {
    /// Changes after the stream opened.
    pub rx: tokio::sync::watch::Receiver<u64>,
    streams: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Drop for NewsSeat {
    fn drop(&mut self) {
        self.streams
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl PortNews {
    /// Something was plugged in or unplugged.
    pub fn changed(&self) {
        self.tx.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver for one more stream, or None when `max` are open.
    pub fn join(&self, max: usize) -> Option<NewsSeat> {
        use std::sync::atomic::Ordering;
        self.streams
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(NewsSeat {
            rx: self.tx.subscribe(),
            streams: self.streams.clone(),
        })
    }
}

/// Where the port map reads `dev/` and `sys/class/tty/`: `/`, or the folder named by
/// `SHEPHERD_SYSFS_ROOT` (a fake tree for tests and screenshots). Device discovery always
/// reads the real ones: it would otherwise probe the fake tree's ports.
pub fn root() -> PathBuf {
    std::env::var_os("SHEPHERD_SYSFS_ROOT")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("/"), PathBuf::from)
}

/// The serial devices under `root` (see [`root`]) placed on the USB tree.
pub fn scan_root(root: &Path) -> Scan {
    let class = root.join("sys/class/tty");
    let devices = super::sysfs::scan(&root.join("dev"), &class);
    scan(&class, &devices)
}

/// Whether a miner's configured port (a tty, a by-id or by-path link) is `device`: the same
/// name, or the same node once links are followed.
pub fn same_port(port: &str, device: &DeviceInfo) -> bool {
    if port == device.tty || Some(port) == device.by_id.as_deref() {
        return true;
    }
    match (fs::canonicalize(port), fs::canonicalize(&device.tty)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn read_trimmed(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

/// One port on the map and what is on it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PortNode {
    /// Where.
    pub path: String,
    /// Port number on its hub (or root port).
    pub port: u32,
    /// The tty on it (a serial device), if any.
    pub tty: Option<String>,
    /// `vid:pid`.
    pub usb_id: Option<String>,
    /// The miner read from that tty, if any.
    pub miner: Option<String>,
    /// How this board is told apart: its serial number, or (when it has none that tells it
    /// from a board of the same kind) `usb path 1-1.3.2`.
    pub identity: String,
    /// Only the tty name (or the USB path) tells it from another board here.
    pub ambiguous: bool,
    /// A hub on this port, with its own ports.
    pub hub: Option<HubNode>,
}

/// A hub and its ports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HubNode {
    /// Where.
    pub path: String,
    /// Product string.
    pub product: Option<String>,
    /// Ports it has, if sysfs says.
    pub port_count: Option<u32>,
    /// Ports with something on them, by number.
    pub ports: Vec<PortNode>,
}

/// One bus (root hub) and what hangs on it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BusNode {
    /// Bus number.
    pub bus: u32,
    /// Root ports in use.
    pub ports: Vec<PortNode>,
}

/// Draws the scan as a tree; `miner_of(tty, by_id)` names the miner on a device. Boards that
/// share a vid:pid and have no serial telling them apart are marked ambiguous.
pub fn build(scan: &Scan, miner_of: &dyn Fn(&DeviceInfo) -> Option<String>) -> Vec<BusNode> {
    let mut kinds: BTreeMap<Option<String>, usize> = BTreeMap::new();
    for p in &scan.devices {
        if p.device.trusted_serial().is_none() {
            *kinds.entry(p.device.usb_id()).or_default() += 1;
        }
    }
    let mut buses: BTreeMap<u32, BusNode> = BTreeMap::new();
    let mut all: Vec<UsbPath> = scan
        .hubs
        .iter()
        .map(|h| h.path.clone())
        .chain(scan.devices.iter().map(|p| p.path.clone()))
        .collect();
    all.sort();
    all.dedup();
    for path in all.iter().filter(|p| p.ports.len() == 1) {
        let node = node(path, scan, &all, &kinds, miner_of);
        buses
            .entry(path.bus)
            .or_insert_with(|| BusNode {
                bus: path.bus,
                ports: Vec::new(),
            })
            .ports
            .push(node);
    }
    buses.into_values().collect()
}

fn node(
    path: &UsbPath,
    scan: &Scan,
    all: &[UsbPath],
    kinds: &BTreeMap<Option<String>, usize>,
    miner_of: &dyn Fn(&DeviceInfo) -> Option<String>,
) -> PortNode {
    let device = scan
        .devices
        .iter()
        .find(|p| &p.path == path)
        .map(|p| &p.device);
    let hub = scan.hubs.iter().find(|h| &h.path == path).map(|h| HubNode {
        path: path.to_string(),
        product: h.product.clone(),
        port_count: h.ports,
        ports: all
            .iter()
            .filter(|c| c.parent().as_ref() == Some(path))
            .map(|c| node(c, scan, all, kinds, miner_of))
            .collect(),
    });
    let serial = device.and_then(DeviceInfo::trusted_serial);
    let ambiguous = device.is_some()
        && serial.is_none()
        && kinds
            .get(&device.and_then(DeviceInfo::usb_id))
            .copied()
            .unwrap_or(0)
            > 1;
    PortNode {
        path: path.to_string(),
        port: path.port(),
        tty: device.map(|d| d.tty.clone()),
        usb_id: device.and_then(DeviceInfo::usb_id),
        miner: device.and_then(miner_of),
        identity: match serial {
            Some(s) => format!("serial {s}"),
            None => format!("usb path {path}"),
        },
        ambiguous,
        hub,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn usb_paths_parse_and_nest() {
        let p = UsbPath::parse("1-1.3.2").unwrap();
        assert_eq!((p.bus, p.ports.clone()), (1, vec![1, 3, 2]));
        assert_eq!(p.to_string(), "1-1.3.2");
        assert_eq!(p.parent().unwrap().to_string(), "1-1.3");
        assert_eq!(p.port(), 2);
        assert_eq!(UsbPath::parse("2-1").unwrap().parent(), None);
        for bad in ["usb1", "1-1.3:1.0", "1-", "x-1", "1-1.a"] {
            assert_eq!(UsbPath::parse(bad), None, "{bad}");
        }
    }

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    /// Bus 1: root port 1 holds hub A (`1-1`, 4 ports); its port 3 holds hub B (`1-1.3`).
    /// On A port 1: a CP2102 with a serial. On B ports 1 and 2: two CH340 without one.
    #[test]
    fn a_fake_sysfs_tree_with_two_hubs_and_a_serial_less_pair() {
        let root = tempfile::tempdir().unwrap();
        let usb = root.path().join("devices/platform/xhci/usb1");
        let hub_a = usb.join("1-1");
        let hub_b = hub_a.join("1-1.3");
        write(&hub_a.join("product"), "USB2.0 Hub\n");
        write(&hub_a.join("maxchild"), "4\n");
        write(&hub_a.join("idVendor"), "05e3\n");
        write(&hub_b.join("product"), "4-Port USB 2.0 Hub\n");
        write(&hub_b.join("maxchild"), "4\n");
        write(&hub_b.join("idVendor"), "2109\n");
        let class = root.path().join("class/tty");
        let mut devices = Vec::new();
        for (tty, dir, vid, pid, serial) in [
            (
                "ttyUSB0",
                hub_a.join("1-1.1"),
                0x10c4,
                0xea60,
                Some("0001A2B3"),
            ),
            ("ttyUSB1", hub_b.join("1-1.3.1"), 0x1a86, 0x7523, None),
            ("ttyUSB2", hub_b.join("1-1.3.2"), 0x1a86, 0x7523, None),
        ] {
            write(&dir.join("idVendor"), &format!("{vid:04x}\n"));
            let iface = dir.join(format!(
                "{}:1.0",
                dir.file_name().unwrap().to_str().unwrap()
            ));
            fs::create_dir_all(iface.join(tty)).unwrap();
            fs::create_dir_all(class.join(tty)).unwrap();
            symlink(iface.join(tty), class.join(tty).join("device")).unwrap();
            devices.push(DeviceInfo {
                tty: format!("/dev/{tty}"),
                by_id: None,
                vid: Some(vid),
                pid: Some(pid),
                serial: serial.map(Into::into),
                manufacturer: None,
                product: None,
            });
        }
        // A device sysfs knows nothing of (unplugged meanwhile) is left out.
        devices.push(DeviceInfo {
            tty: "/dev/ttyUSB9".into(),
            ..devices[0].clone()
        });

        let s = scan(&class, &devices);
        assert_eq!(s.devices.len(), 3, "{s:#?}");
        let hubs: Vec<String> = s.hubs.iter().map(|h| h.path.to_string()).collect();
        assert_eq!(hubs, ["1-1", "1-1.3"]);
        assert_eq!(s.hubs[0].product.as_deref(), Some("USB2.0 Hub"));
        assert_eq!(s.hubs[1].ports, Some(4));

        let miner_of = |d: &DeviceInfo| (d.tty == "/dev/ttyUSB2").then(|| "demo-7".to_owned());
        let tree = build(&s, &miner_of);
        assert_eq!(tree.len(), 1);
        assert_eq!(tree[0].bus, 1);
        let a = tree[0].ports[0].hub.as_ref().expect("hub A on root port 1");
        assert_eq!(a.path, "1-1");
        assert_eq!(a.port_count, Some(4));
        let ports: Vec<u32> = a.ports.iter().map(|p| p.port).collect();
        assert_eq!(ports, [1, 3]);
        let cp = &a.ports[0];
        assert_eq!(cp.identity, "serial 0001A2B3");
        assert!(!cp.ambiguous);
        let b = a.ports[1].hub.as_ref().expect("hub B on port 3");
        assert_eq!(b.product.as_deref(), Some("4-Port USB 2.0 Hub"));
        assert_eq!(b.ports.len(), 2);
        for (p, path) in b.ports.iter().zip(["1-1.3.1", "1-1.3.2"]) {
            assert!(p.ambiguous, "{p:#?}");
            assert_eq!(p.identity, format!("usb path {path}"));
            assert_eq!(p.usb_id.as_deref(), Some("1a86:7523"));
        }
        assert_eq!(b.ports[1].miner.as_deref(), Some("demo-7"));
        assert_eq!(b.ports[1].tty.as_deref(), Some("/dev/ttyUSB2"));
    }

    #[test]
    fn one_serial_less_board_is_not_ambiguous() {
        let d = DeviceInfo {
            tty: "/dev/ttyUSB0".into(),
            by_id: None,
            vid: Some(0x1a86),
            pid: Some(0x7523),
            serial: None,
            manufacturer: None,
            product: None,
        };
        let s = Scan {
            devices: vec![Placed {
                device: d,
                path: UsbPath::parse("1-2").unwrap(),
            }],
            hubs: Vec::new(),
        };
        let tree = build(&s, &|_| None);
        assert!(!tree[0].ports[0].ambiguous);
        assert_eq!(tree[0].ports[0].identity, "usb path 1-2");
    }
}
