//! The pure side of discovery: which USB serial chips sit on ESP32 boards, what udev says
//! about a tty, and what a plugged or unplugged device means for the herd. No I/O here.
//!
//! Identity rules, learned from real boards:
//! - A USB serial number identifies a board only when it is really unique. Genuine CP2102N,
//!   CH9102, FTDI and Espressif's native USB (which reports the MAC) have one; CH340 reports
//!   none, and many CP2102 clones all say `0001`. Such numbers are recorded but not trusted.
//! - `/dev/serial/by-id/…` is built from vendor, product and serial number, so it is unique
//!   exactly when the serial number is.
//! - Without a trusted serial number, the tty name is all that tells two identical boards apart.

use std::collections::BTreeMap;

use serde::Serialize;

// The device nouns live in the pure `model::device` (the database stores them too); the
// decisions about them are made here.
use crate::model::device::*;

/// Whether a device arrived or left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Plugged in (or present at start).
    Added,
    /// Unplugged.
    Removed,
}

/// Why a device is left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IgnoreReason {
    /// Not a USB device (built-in UART, console).
    NotUsb,
    /// A USB chip that is not on the watch list.
    NotListed,
    /// The owner pressed "ignore" for it.
    ByOwner,
}

/// What a device event means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A configured miner was plugged in.
    Known(Reconnect),
    /// A watched chip nobody has added: it goes on the onboarding page.
    New,
    /// Nothing to do with the herd.
    Ignored(IgnoreReason),
    /// Unplugged; the miner it carried, if any, is now offline.
    Removed {
        /// The miner, when the device was one.
        miner_id: Option<i64>,
    },
}

/// What a decision is made against.
#[derive(Debug, Clone, Copy)]
pub struct Herd<'a> {
    /// The watch list.
    pub usb_ids: &'a [UsbId],
    /// Configured miners.
    pub miners: &'a [KnownMiner],
    /// Rows of `unconfigured_devices`.
    pub records: &'a [DeviceRecord],
    /// Every device present now, this one included or not.
    pub present: &'a [DeviceInfo],
}

/// Decides what `change` of `dev` means for the herd.
pub fn decide(change: Change, dev: &DeviceInfo, herd: Herd<'_>) -> Decision {
    let miner = identify(dev, herd);
    if change == Change::Removed {
        return Decision::Removed {
            miner_id: miner.map(|m| m.id),
        };
    }
    if let Some(m) = miner {
        return Decision::Known(reconnect(m, dev));
    }
    if dev.vid.is_none() {
        return Decision::Ignored(IgnoreReason::NotUsb);
    }
    if !dev.is_listed(herd.usb_ids) {
        return Decision::Ignored(IgnoreReason::NotListed);
    }
    if find_record(herd.records, dev).is_some_and(|r| r.ignored) {
        return Decision::Ignored(IgnoreReason::ByOwner);
    }
    Decision::New
}

/// The configured miner on `dev`: by trusted serial number, else by where it is (its port is
/// this tty or this by-id link), else by a by-id link only one miner has and that does not
/// lead to another device plugged in now.
pub fn identify<'a>(dev: &DeviceInfo, herd: Herd<'a>) -> Option<&'a KnownMiner> {
    let serial = dev.trusted_serial();
    if let Some(s) = serial {
        if let Some(m) = herd
            .miners
            .iter()
            .find(|m| m.usb_serial.as_deref() == Some(s))
        {
            return Some(m);
        }
    }
    // A miner whose serial number is known is that board and no other.
    let candidates = || {
        herd.miners.iter().filter(|m| {
            m.usb_serial
                .as_deref()
                .is_none_or(|s| !is_trusted_serial(s))
        })
    };
    let here = |m: &&KnownMiner| m.port == dev.tty || dev.by_id.as_deref() == Some(m.port.as_str());
    if let Some(m) = candidates().find(here) {
        return Some(m);
    }
    let link = dev.by_id.as_deref()?;
    let mut by_link = candidates().filter(|m| m.by_id_path.as_deref() == Some(link));
    let m = by_link.next()?;
    let elsewhere = herd.present.iter().any(|o| {
        o.tty != dev.tty && (o.tty == m.port || o.by_id.as_deref() == Some(m.port.as_str()))
    });
    (by_link.next().is_none() && !elsewhere).then_some(m)
}

/// A miner read through its by-id link keeps it (the link follows the board); any other
/// port becomes the device's stable port: the new tty, or the by-id link once it is known to
/// name this board alone (a miner added by tty name stops depending on it).
fn reconnect(m: &KnownMiner, dev: &DeviceInfo) -> Reconnect {
    let stable = dev.stable_port();
    let keep = m.port == stable || dev.by_id.as_deref() == Some(m.port.as_str());
    Reconnect {
        miner_id: m.id,
        new_port: (!keep).then(|| stable.to_owned()),
        learn_serial: match (&m.usb_serial, dev.trusted_serial()) {
            (None, Some(s)) => Some(s.to_owned()),
            _ => None,
        },
        learn_by_id: dev
            .by_id
            .clone()
            .filter(|l| m.by_id_path.as_deref() != Some(l.as_str())),
    }
}

/// What changed between the devices known so far and a fresh scan: removals first (a tty
/// reused by another board is a removal and an addition), then additions. A device seen again
/// with only its strings changed is re-added so its record is refreshed.
pub fn diff(known: &BTreeMap<String, DeviceInfo>, now: &[DeviceInfo]) -> Vec<(Change, DeviceInfo)> {
    let mut out = Vec::new();
    for old in known.values() {
        if !now.iter().any(|d| d.same_device(old)) {
            out.push((Change::Removed, old.clone()));
        }
    }
    for d in now {
        match known.get(&d.tty) {
            Some(old) if old == d => {}
            _ => out.push((Change::Added, d.clone())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What udev reports for real boards (`udevadm info /dev/ttyUSB0`), trimmed to what matters.
    const CP2102_DEVKIT: &str = "DEVNAME=/dev/ttyUSB0
SUBSYSTEM=tty
ID_BUS=usb
ID_VENDOR=Silicon_Labs
ID_VENDOR_ENC=Silicon\\x20Labs
ID_VENDOR_ID=10c4
ID_MODEL=CP2102_USB_to_UART_Bridge_Controller
ID_MODEL_ENC=CP2102\\x20USB\\x20to\\x20UART\\x20Bridge\\x20Controller
ID_MODEL_ID=ea60
ID_REVISION=0100
ID_SERIAL=Silicon_Labs_CP2102_USB_to_UART_Bridge_Controller_0001
ID_SERIAL_SHORT=0001
ID_USB_INTERFACE_NUM=00
ID_USB_DRIVER=cp210x
DEVLINKS=/dev/serial/by-path/platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1.3:1.0-port0 /dev/serial/by-id/usb-Silicon_Labs_CP2102_USB_to_UART_Bridge_Controller_0001-if00-port0";

    const CP2102N_DEVKIT: &str = "DEVNAME=/dev/ttyUSB1
ID_VENDOR=Silicon_Labs
ID_VENDOR_ENC=Silicon\\x20Labs
ID_VENDOR_ID=10c4
ID_MODEL=CP2102N_USB_to_UART_Bridge_Controller
ID_MODEL_ENC=CP2102N\\x20USB\\x20to\\x20UART\\x20Bridge\\x20Controller
ID_MODEL_ID=ea60
ID_SERIAL_SHORT=9a3f1c5e0b2fed11a7c1d2b3e4f5a6b7
DEVLINKS=/dev/serial/by-id/usb-Silicon_Labs_CP2102N_USB_to_UART_Bridge_Controller_9a3f1c5e0b2fed11a7c1d2b3e4f5a6b7-if00-port0 /dev/serial/by-path/platform-xhci-hcd.0-usb-0:2:1.0-port0";

    /// ESP32-2432S028R "Cheap Yellow Display": CH340 with no serial number or name strings.
    const CH340_CYD: &str = "DEVNAME=/dev/ttyUSB0
ID_BUS=usb
ID_VENDOR=1a86
ID_VENDOR_ENC=1a86
ID_VENDOR_ID=1a86
ID_VENDOR_FROM_DATABASE=QinHeng Electronics
ID_MODEL=USB_Serial
ID_MODEL_ENC=USB\\x20Serial
ID_MODEL_ID=7523
ID_MODEL_FROM_DATABASE=CH340 serial converter
ID_REVISION=0264
ID_SERIAL=1a86_USB_Serial
ID_USB_INTERFACE_NUM=00
ID_USB_DRIVER=ch341
DEVLINKS=/dev/serial/by-path/platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1.2:1.0-port0 /dev/serial/by-id/usb-1a86_USB_Serial-if00-port0";

    /// CH9102F (LilyGO T-Display, newer DevKits): bound by cdc_acm, so it is a ttyACM.
    const CH9102: &str = "DEVNAME=/dev/ttyACM0
ID_BUS=usb
ID_VENDOR=1a86
ID_VENDOR_ENC=1a86
ID_VENDOR_ID=1a86
ID_MODEL=USB_Single_Serial
ID_MODEL_ENC=USB\\x20Single\\x20Serial
ID_MODEL_ID=55d4
ID_SERIAL=1a86_USB_Single_Serial_5443012345
ID_SERIAL_SHORT=5443012345
ID_USB_INTERFACE_NUM=00
ID_USB_DRIVER=cdc_acm
DEVLINKS=/dev/serial/by-id/usb-1a86_USB_Single_Serial_5443012345-if00 /dev/serial/by-path/platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1.4:1.0";

    const FTDI_FT232R: &str = "DEVNAME=/dev/ttyUSB2
ID_VENDOR=FTDI
ID_VENDOR_ENC=FTDI
ID_VENDOR_ID=0403
ID_MODEL=FT232R_USB_UART
ID_MODEL_ENC=FT232R\\x20USB\\x20UART
ID_MODEL_ID=6001
ID_SERIAL=FTDI_FT232R_USB_UART_A50285BI
ID_SERIAL_SHORT=A50285BI
ID_USB_DRIVER=ftdi_sio
DEVLINKS=/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0 /dev/serial/by-path/platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1.1:1.0-port0";

    const FTDI_FT231X: &str = "DEVNAME=/dev/ttyUSB3
ID_VENDOR=FTDI
ID_VENDOR_ID=0403
ID_MODEL=FT231X_USB_UART
ID_MODEL_ENC=FT231X\\x20USB\\x20UART
ID_MODEL_ID=6015
ID_SERIAL_SHORT=DN05J1AB
DEVLINKS=/dev/serial/by-id/usb-FTDI_FT231X_USB_UART_DN05J1AB-if00-port0";

    /// LilyGO T-Display S3: the ESP32-S3's own USB-Serial/JTAG unit, serial number = MAC.
    const T_DISPLAY_S3: &str = "DEVNAME=/dev/ttyACM0
ID_BUS=usb
ID_VENDOR=Espressif
ID_VENDOR_ENC=Espressif
ID_VENDOR_ID=303a
ID_MODEL=USB_JTAG_serial_debug_unit
ID_MODEL_ENC=USB\\x20JTAG\\x2fserial\\x20debug\\x20unit
ID_MODEL_ID=1001
ID_REVISION=0101
ID_SERIAL=Espressif_USB_JTAG_serial_debug_unit_F4:12:FA:5B:C3:10
ID_SERIAL_SHORT=F4:12:FA:5B:C3:10
ID_USB_INTERFACE_NUM=00
ID_USB_DRIVER=cdc_acm
DEVLINKS=/dev/serial/by-id/usb-Espressif_USB_JTAG_serial_debug_unit_F4:12:FA:5B:C3:10-if00 /dev/serial/by-path/platform-xhci-hcd.1-usb-0:1:1.0";

    /// A Prolific PL2303 cable: a USB serial chip, but not one ESP32 boards use.
    const PL2303: &str = "DEVNAME=/dev/ttyUSB4
ID_VENDOR=Prolific_Technology_Inc.
ID_VENDOR_ID=067b
ID_MODEL=USB-Serial_Controller
ID_MODEL_ID=2303
DEVLINKS=/dev/serial/by-id/usb-Prolific_Technology_Inc._USB-Serial_Controller-if00-port0";

    /// The Pi's own UART: no USB properties at all.
    const BUILTIN_UART: &str = "DEVNAME=/dev/ttyS0\nSUBSYSTEM=tty\nDEVLINKS=/dev/serial1";

    fn dev(props: &str) -> DeviceInfo {
        DeviceInfo::from_udev_properties(props.lines().filter_map(|l| l.split_once('=')))
            .expect("has DEVNAME")
    }

    fn herd<'a>(
        miners: &'a [KnownMiner],
        records: &'a [DeviceRecord],
        present: &'a [DeviceInfo],
        ids: &'a [UsbId],
    ) -> Herd<'a> {
        Herd {
            usb_ids: ids,
            miners,
            records,
            present,
        }
    }

    fn miner(id: i64, port: &str, serial: Option<&str>, by_id: Option<&str>) -> KnownMiner {
        KnownMiner {
            id,
            name: format!("m{id}"),
            port: port.into(),
            usb_serial: serial.map(Into::into),
            by_id_path: by_id.map(Into::into),
        }
    }

    #[test]
    fn udev_properties_of_real_boards() {
        struct Seen {
            props: &'static str,
            usb_id: &'static str,
            serial: Option<&'static str>,
            manufacturer: &'static str,
            product: &'static str,
            chip: &'static str,
            by_id: &'static str,
        }
        let table = [
            Seen {
                props: CP2102_DEVKIT,
                usb_id: "10c4:ea60",
                serial: Some("0001"),
                manufacturer: "Silicon Labs",
                product: "CP2102 USB to UART Bridge Controller",
                chip: "CP210x",
                by_id: "/dev/serial/by-id/usb-Silicon_Labs_CP2102_USB_to_UART_Bridge_Controller_0001-if00-port0",
            },
            Seen {
                props: CP2102N_DEVKIT,
                usb_id: "10c4:ea60",
                serial: Some("9a3f1c5e0b2fed11a7c1d2b3e4f5a6b7"),
                manufacturer: "Silicon Labs",
                product: "CP2102N USB to UART Bridge Controller",
                chip: "CP210x",
                by_id: "/dev/serial/by-id/usb-Silicon_Labs_CP2102N_USB_to_UART_Bridge_Controller_9a3f1c5e0b2fed11a7c1d2b3e4f5a6b7-if00-port0",
            },
            Seen {
                props: CH340_CYD,
                usb_id: "1a86:7523",
                serial: None,
                manufacturer: "QinHeng Electronics",
                product: "USB Serial",
                chip: "CH340",
                by_id: "/dev/serial/by-id/usb-1a86_USB_Serial-if00-port0",
            },
            Seen {
                props: CH9102,
                usb_id: "1a86:55d4",
                serial: Some("5443012345"),
                // No vendor string and no hardware-database name: the id is all there is.
                manufacturer: "1a86",
                product: "USB Single Serial",
                chip: "CH9102",
                by_id: "/dev/serial/by-id/usb-1a86_USB_Single_Serial_5443012345-if00",
            },
            Seen {
                props: FTDI_FT232R,
                usb_id: "0403:6001",
                serial: Some("A50285BI"),
                manufacturer: "FTDI",
                product: "FT232R USB UART",
                chip: "FT232R",
                by_id: "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0",
            },
            Seen {
                props: FTDI_FT231X,
                usb_id: "0403:6015",
                serial: Some("DN05J1AB"),
                manufacturer: "FTDI",
                product: "FT231X USB UART",
                chip: "FT231X",
                by_id: "/dev/serial/by-id/usb-FTDI_FT231X_USB_UART_DN05J1AB-if00-port0",
            },
            Seen {
                props: T_DISPLAY_S3,
                usb_id: "303a:1001",
                serial: Some("F4:12:FA:5B:C3:10"),
                manufacturer: "Espressif",
                product: "USB JTAG/serial debug unit",
                chip: "ESP32-S3/C3 USB-JTAG",
                by_id: "/dev/serial/by-id/usb-Espressif_USB_JTAG_serial_debug_unit_F4:12:FA:5B:C3:10-if00",
            },
        ];
        for t in table {
            let d = dev(t.props);
            let id = t.usb_id;
            assert_eq!(d.usb_id().as_deref(), Some(id), "{}", t.props);
            assert_eq!(d.serial.as_deref(), t.serial, "{id}");
            assert_eq!(d.manufacturer.as_deref(), Some(t.manufacturer), "{id}");
            assert_eq!(d.product.as_deref(), Some(t.product), "{id}");
            assert_eq!(d.chip(), Some(t.chip), "{id}");
            assert_eq!(d.by_id.as_deref(), Some(t.by_id), "{id}");
            assert!(
                d.is_listed(&default_usb_ids()),
                "{id} must be watched by default"
            );
        }
        assert_eq!(dev(CH9102).tty, "/dev/ttyACM0", "CH9102 binds to cdc_acm");
    }

    #[test]
    fn placeholder_serials_are_not_trusted() {
        assert_eq!(dev(CP2102_DEVKIT).trusted_serial(), None);
        assert!(dev(CP2102N_DEVKIT).trusted_serial().is_some());
        assert_eq!(dev(CH340_CYD).trusted_serial(), None);
        for s in [
            "A50285BI",
            "5443012345",
            "F4:12:FA:5B:C3:10",
            "9a3f1c5e0b2fed11a7c1d2b3e4f5a6b7",
        ] {
            assert!(is_trusted_serial(s), "{s}");
        }
        for s in ["", "0001", "0000", "00000001", "1111111111", "  "] {
            assert!(!is_trusted_serial(s), "{s:?}");
        }
    }

    #[test]
    fn stable_port_is_the_link_only_when_it_names_one_board() {
        let s3 = dev(T_DISPLAY_S3);
        assert_eq!(s3.stable_port(), s3.by_id.as_deref().unwrap());
        assert_eq!(dev(CH340_CYD).stable_port(), "/dev/ttyUSB0");
        assert_eq!(dev(CP2102_DEVKIT).stable_port(), "/dev/ttyUSB0");
    }

    #[test]
    fn usb_id_patterns() {
        let cp: UsbId = "10c4:ea60".parse().unwrap();
        assert!(cp.matches(0x10c4, 0xea60));
        assert!(!cp.matches(0x10c4, 0xea70));
        let esp: UsbId = "303A:*".parse().unwrap();
        assert!(esp.matches(0x303a, 0x1001) && esp.matches(0x303a, 0x0002));
        assert_eq!(esp.to_string(), "303a:*");
        for bad in [
            "10c4",
            "10c4:",
            "xyz1:ea60",
            "10c4:ea600",
            ":*",
            "10c4-ea60",
        ] {
            let err = bad.parse::<UsbId>().unwrap_err();
            assert!(err.contains("10c4:ea60"), "{bad}: {err}");
        }
        assert_eq!(default_usb_ids().len(), DEFAULT_USB_IDS.len());
    }

    #[test]
    fn new_ignored_and_unlisted() {
        let ids = default_usb_ids();
        let h = herd(&[], &[], &[], &ids);
        for props in [
            CP2102_DEVKIT,
            CH340_CYD,
            CH9102,
            FTDI_FT232R,
            FTDI_FT231X,
            T_DISPLAY_S3,
        ] {
            assert_eq!(decide(Change::Added, &dev(props), h), Decision::New);
        }
        assert_eq!(
            decide(Change::Added, &dev(PL2303), h),
            Decision::Ignored(IgnoreReason::NotListed)
        );
        assert_eq!(
            decide(Change::Added, &dev(BUILTIN_UART), h),
            Decision::Ignored(IgnoreReason::NotUsb)
        );
        let only_esp = ["303a:*".parse().unwrap()];
        let h = herd(&[], &[], &[], &only_esp);
        assert_eq!(
            decide(Change::Added, &dev(CH340_CYD), h),
            Decision::Ignored(IgnoreReason::NotListed)
        );
        assert_eq!(decide(Change::Added, &dev(T_DISPLAY_S3), h), Decision::New);
    }

    #[test]
    fn ignored_by_owner_follows_the_serial_number_to_another_tty() {
        let ids = default_usb_ids();
        let records = [DeviceRecord {
            id: 1,
            tty: "/dev/ttyUSB2".into(),
            usb_serial: Some("A50285BI".into()),
            ignored: true,
        }];
        let mut ftdi = dev(FTDI_FT232R);
        ftdi.tty = "/dev/ttyUSB7".into();
        assert_eq!(
            decide(Change::Added, &ftdi, herd(&[], &records, &[], &ids)),
            Decision::Ignored(IgnoreReason::ByOwner)
        );
        // Without a serial number it is the tty that was ignored.
        let records = [DeviceRecord {
            id: 2,
            tty: "/dev/ttyUSB0".into(),
            usb_serial: None,
            ignored: true,
        }];
        let cyd = dev(CH340_CYD);
        assert_eq!(
            decide(Change::Added, &cyd, herd(&[], &records, &[], &ids)),
            Decision::Ignored(IgnoreReason::ByOwner)
        );
        let mut moved = cyd.clone();
        moved.tty = "/dev/ttyUSB1".into();
        assert_eq!(
            decide(Change::Added, &moved, herd(&[], &records, &[], &ids)),
            Decision::New
        );
    }

    #[test]
    fn known_miner_by_serial_on_any_tty_gets_its_stable_port() {
        let ids = default_usb_ids();
        let s3 = dev(T_DISPLAY_S3);
        let link = s3.by_id.clone().unwrap();
        // Added from the shell by tty, serial learned later: back on ttyACM3.
        let miners = [miner(7, "/dev/ttyACM0", Some("F4:12:FA:5B:C3:10"), None)];
        let mut moved = s3.clone();
        moved.tty = "/dev/ttyACM3".into();
        assert_eq!(
            decide(Change::Added, &moved, herd(&miners, &[], &[], &ids)),
            Decision::Known(Reconnect {
                miner_id: 7,
                new_port: Some(link.clone()),
                learn_serial: None,
                learn_by_id: Some(link.clone()),
            })
        );
        // Read through its by-id link: the link follows the board, nothing to change.
        let miners = [miner(7, &link, Some("F4:12:FA:5B:C3:10"), Some(&link))];
        assert_eq!(
            decide(Change::Added, &moved, herd(&miners, &[], &[], &ids)),
            Decision::Known(Reconnect {
                miner_id: 7,
                new_port: None,
                learn_serial: None,
                learn_by_id: None,
            })
        );
        // A device without a by-id link (as in tests) moves to its new tty.
        let bare = DeviceInfo {
            by_id: None,
            ..moved.clone()
        };
        let miners = [miner(7, "/dev/pts/4", Some("F4:12:FA:5B:C3:10"), None)];
        let Decision::Known(r) = decide(Change::Added, &bare, herd(&miners, &[], &[], &ids)) else {
            panic!()
        };
        assert_eq!(r.new_port.as_deref(), Some("/dev/ttyACM3"));
    }

    #[test]
    fn miner_added_by_path_is_recognised_and_learns_its_serial() {
        let ids = default_usb_ids();
        let ftdi = dev(FTDI_FT232R);
        let link = ftdi.by_id.clone().unwrap();
        let miners = [miner(3, &link, None, None)];
        assert_eq!(
            decide(Change::Added, &ftdi, herd(&miners, &[], &[], &ids)),
            Decision::Known(Reconnect {
                miner_id: 3,
                new_port: None,
                learn_serial: Some("A50285BI".into()),
                learn_by_id: Some(link),
            })
        );
        // Added by tty name: moved to its by-id link, which survives replugging.
        let miners = [miner(4, "/dev/ttyUSB2", None, None)];
        let Decision::Known(r) = decide(Change::Added, &ftdi, herd(&miners, &[], &[], &ids)) else {
            panic!()
        };
        assert_eq!((r.miner_id, r.new_port), (4, ftdi.by_id.clone()));
        // Without a unique serial number the tty is as good as it gets.
        let cyd = dev(CH340_CYD);
        let miners = [miner(5, "/dev/ttyUSB0", None, None)];
        let Decision::Known(r) = decide(Change::Added, &cyd, herd(&miners, &[], &[], &ids)) else {
            panic!()
        };
        assert_eq!((r.miner_id, r.new_port), (5, None));
    }

    #[test]
    fn a_different_board_on_a_miners_old_tty_is_new() {
        let ids = default_usb_ids();
        // Miner 1 is the FTDI board; a T-Display S3 now has its old tty name.
        let miners = [miner(1, "/dev/ttyACM0", Some("A50285BI"), None)];
        assert_eq!(
            decide(
                Change::Added,
                &dev(T_DISPLAY_S3),
                herd(&miners, &[], &[], &ids)
            ),
            Decision::New
        );
    }

    #[test]
    fn serial_less_boards_follow_their_by_id_link_only_when_unambiguous() {
        let ids = default_usb_ids();
        let cyd = dev(CH340_CYD);
        let link = cyd.by_id.clone().unwrap();
        let miners = [miner(5, "/dev/ttyUSB0", None, Some(&link))];
        let mut moved = cyd.clone();
        moved.tty = "/dev/ttyUSB1".into();
        // The only CYD, back on another tty: recognised, read from its new tty.
        let Decision::Known(r) = decide(
            Change::Added,
            &moved,
            herd(&miners, &[], &[moved.clone()], &ids),
        ) else {
            panic!()
        };
        assert_eq!(
            (r.miner_id, r.new_port.as_deref()),
            (5, Some("/dev/ttyUSB1"))
        );
        // A second CYD while the first is still on ttyUSB0: a new device.
        let present = [cyd.clone(), moved.clone()];
        assert_eq!(
            decide(Change::Added, &moved, herd(&miners, &[], &present, &ids)),
            Decision::New
        );
        // Two CYD miners share the link: only the tty can tell them apart.
        let miners = [
            miner(5, "/dev/ttyUSB0", None, Some(&link)),
            miner(6, "/dev/ttyUSB5", None, Some(&link)),
        ];
        assert_eq!(
            decide(Change::Added, &moved, herd(&miners, &[], &[], &ids)),
            Decision::New
        );
    }

    #[test]
    fn known_miners_are_recognised_even_on_unlisted_chips() {
        let miners = [miner(9, "/dev/ttyUSB4", None, None)];
        let only_esp = ["303a:*".parse().unwrap()];
        assert!(matches!(
            decide(
                Change::Added,
                &dev(PL2303),
                herd(&miners, &[], &[], &only_esp)
            ),
            Decision::Known(_)
        ));
    }

    #[test]
    fn removal_names_the_miner_if_any() {
        let ids = default_usb_ids();
        let miners = [miner(
            2,
            "/dev/serial/by-id/whatever",
            Some("5443012345"),
            None,
        )];
        let h = herd(&miners, &[], &[], &ids);
        assert_eq!(
            decide(Change::Removed, &dev(CH9102), h),
            Decision::Removed { miner_id: Some(2) }
        );
        assert_eq!(
            decide(Change::Removed, &dev(FTDI_FT232R), h),
            Decision::Removed { miner_id: None }
        );
        // A bare remove event still finds a miner read from that tty.
        let miners = [miner(4, "/dev/ttyUSB2", None, None)];
        let bare = DeviceInfo {
            tty: "/dev/ttyUSB2".into(),
            ..DeviceInfo::default()
        };
        assert_eq!(
            decide(Change::Removed, &bare, herd(&miners, &[], &[], &ids)),
            Decision::Removed { miner_id: Some(4) }
        );
    }

    #[test]
    fn merged_remove_event_keeps_what_the_add_said() {
        let full = dev(FTDI_FT232R);
        let bare = DeviceInfo {
            tty: full.tty.clone(),
            ..DeviceInfo::default()
        };
        assert_eq!(bare.merged_with(&full), full);
    }

    #[test]
    fn escapes_decode() {
        assert_eq!(
            decode_udev_escapes("USB\\x20JTAG\\x2fserial"),
            "USB JTAG/serial"
        );
        assert_eq!(decode_udev_escapes("a\\xZZb\\"), "a\\xZZb\\");
    }

    #[test]
    fn diff_of_scans() {
        let a = dev(CP2102_DEVKIT);
        let b = dev(FTDI_FT232R);
        let mut known = BTreeMap::new();
        assert_eq!(
            diff(&known, std::slice::from_ref(&a)),
            vec![(Change::Added, a.clone())]
        );
        known.insert(a.tty.clone(), a.clone());
        assert!(diff(&known, std::slice::from_ref(&a)).is_empty());
        assert_eq!(diff(&known, &[]), vec![(Change::Removed, a.clone())]);
        // Another board took ttyUSB0 between two scans.
        let mut other = b.clone();
        other.tty = a.tty.clone();
        assert_eq!(
            diff(&known, &[other.clone()]),
            vec![(Change::Removed, a.clone()), (Change::Added, other)]
        );
        // The by-id link appeared late: refresh, not a replug.
        let mut late = a.clone();
        late.by_id = None;
        known.insert(late.tty.clone(), late);
        assert_eq!(
            diff(&known, std::slice::from_ref(&a)),
            vec![(Change::Added, a.clone())]
        );
    }
}
