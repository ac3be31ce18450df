//! What a USB serial device is, as data: the chips to watch for, a device as udev describes it,
//! which serial numbers can be trusted, and the rows the database keeps about devices and the
//! miners on them. Pure, so that the database and the config can use them without depending on
//! discovery (which decides what a plugged device means, in `discovery::classify`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A USB vendor:product pair to watch for; the product may be `*` (any).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct UsbId {
    /// Vendor id.
    pub vid: u16,
    /// Product id; `None` matches every product of the vendor.
    pub pid: Option<u16>,
}

/// What `[discovery] usb_ids` holds by default: the USB serial chips of ESP32 boards.
pub const DEFAULT_USB_IDS: [&str; 6] = [
    "10c4:ea60", // Silicon Labs CP210x (ESP32 DevKit, many NerdMiner boards)
    "1a86:7523", // WCH CH340 (Cheap Yellow Display)
    "1a86:55d4", // WCH CH9102 (LilyGO T-Display, newer DevKits)
    "0403:6001", // FTDI FT232R
    "0403:6015", // FTDI FT231X / FT230X
    "303a:*",    // Espressif native USB: ESP32-S2/S3/C3 (T-Display S3, T-Dongle S3)
];

/// Chip names for display, most specific first.
const CHIPS: &[(u16, Option<u16>, &str)] = &[
    (0x10c4, Some(0xea60), "CP210x"),
    (0x1a86, Some(0x7523), "CH340"),
    (0x1a86, Some(0x55d4), "CH9102"),
    (0x0403, Some(0x6001), "FT232R"),
    (0x0403, Some(0x6015), "FT231X"),
    (0x303a, Some(0x1001), "ESP32-S3/C3 USB-JTAG"),
    (0x303a, Some(0x0002), "ESP32-S2 USB"),
    (0x303a, None, "Espressif USB"),
];

impl UsbId {
    /// Whether this pattern matches `vid:pid`.
    pub fn matches(&self, vid: u16, pid: u16) -> bool {
        self.vid == vid && self.pid.is_none_or(|p| p == pid)
    }
}

impl FromStr for UsbId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!("USB id {s:?} must look like \"10c4:ea60\" or \"303a:*\" (hex vendor:product)")
        };
        let (v, p) = s.trim().split_once(':').ok_or_else(bad)?;
        let hex = |x: &str| {
            (x.len() == 4)
                .then(|| u16::from_str_radix(x, 16).ok())
                .flatten()
        };
        let vid = hex(v).ok_or_else(bad)?;
        let pid = match p {
            "*" => None,
            p => Some(hex(p).ok_or_else(bad)?),
        };
        Ok(UsbId { vid, pid })
    }
}

impl TryFrom<String> for UsbId {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for UsbId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pid {
            Some(p) => write!(f, "{:04x}:{p:04x}", self.vid),
            None => write!(f, "{:04x}:*", self.vid),
        }
    }
}

/// The default watch list, parsed.
pub fn default_usb_ids() -> Vec<UsbId> {
    DEFAULT_USB_IDS
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Display name of a chip, when it is one we know.
pub fn chip_name(vid: u16, pid: u16) -> Option<&'static str> {
    CHIPS
        .iter()
        .find(|(v, p, _)| *v == vid && p.is_none_or(|p| p == pid))
        .map(|(_, _, name)| *name)
}

/// One serial device as udev (or sysfs) describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeviceInfo {
    /// Device node now, e.g. `/dev/ttyUSB0`.
    pub tty: String,
    /// `/dev/serial/by-id/…` link pointing at it, if udev made one.
    pub by_id: Option<String>,
    /// USB vendor id.
    pub vid: Option<u16>,
    /// USB product id.
    pub pid: Option<u16>,
    /// USB serial number as reported (may be a shared placeholder; see [`Self::trusted_serial`]).
    pub serial: Option<String>,
    /// Manufacturer string.
    pub manufacturer: Option<String>,
    /// Product string.
    pub product: Option<String>,
}

impl DeviceInfo {
    /// Builds a description from udev properties (`DEVNAME`, `ID_VENDOR_ID`, `DEVLINKS`, …).
    /// `None` when there is no device node.
    pub fn from_udev_properties<'a>(
        props: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Option<Self> {
        let p: BTreeMap<&str, &str> = props.into_iter().collect();
        let get = |k: &str| p.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let tty = get("DEVNAME")?.to_owned();
        let hex = |k: &str| get(k).and_then(|v| u16::from_str_radix(v, 16).ok());
        let vid = hex("ID_VENDOR_ID").or_else(|| hex("ID_USB_VENDOR_ID"));
        let pid = hex("ID_MODEL_ID").or_else(|| hex("ID_USB_MODEL_ID"));
        // udev puts the vendor id where a chip has no name string (CH340): prefer its
        // hardware database name then.
        let named = |enc: &str, plain: &str, db: &str| {
            let own = get(enc)
                .map(decode_udev_escapes)
                .or_else(|| get(plain).map(|v| v.replace('_', " ")));
            let is_hex_id = |s: &String| s.len() == 4 && u16::from_str_radix(s, 16).is_ok();
            match own {
                Some(s) if !is_hex_id(&s) => Some(s),
                other => get(db).map(str::to_owned).or(other),
            }
        };
        let by_id = get("DEVLINKS").and_then(|links| {
            links
                .split_whitespace()
                .find(|l| l.starts_with("/dev/serial/by-id/"))
                .map(str::to_owned)
        });
        Some(DeviceInfo {
            tty,
            by_id,
            vid,
            pid,
            serial: get("ID_SERIAL_SHORT")
                .or_else(|| get("ID_USB_SERIAL_SHORT"))
                .map(str::to_owned),
            manufacturer: named("ID_VENDOR_ENC", "ID_VENDOR", "ID_VENDOR_FROM_DATABASE"),
            product: named("ID_MODEL_ENC", "ID_MODEL", "ID_MODEL_FROM_DATABASE"),
        })
    }

    /// `vid:pid` in lower-case hex, when known.
    pub fn usb_id(&self) -> Option<String> {
        Some(format!("{:04x}:{:04x}", self.vid?, self.pid?))
    }

    /// Name of the USB serial chip, when it is one we know.
    pub fn chip(&self) -> Option<&'static str> {
        chip_name(self.vid?, self.pid?)
    }

    /// Whether the chip is on the watch list.
    pub fn is_listed(&self, list: &[UsbId]) -> bool {
        match (self.vid, self.pid) {
            (Some(v), Some(p)) => list.iter().any(|id| id.matches(v, p)),
            _ => false,
        }
    }

    /// The serial number, if it can tell this board from others of its kind.
    pub fn trusted_serial(&self) -> Option<&str> {
        self.serial.as_deref().filter(|s| is_trusted_serial(s))
    }

    /// Where a miner on this device should be read from: the by-id link when it names this
    /// board alone (it survives replugging), else the tty.
    pub fn stable_port(&self) -> &str {
        match (&self.by_id, self.trusted_serial()) {
            (Some(link), Some(_)) => link,
            _ => &self.tty,
        }
    }

    /// Same board in the same place (ignores strings that udev may fill in late).
    pub fn same_device(&self, other: &DeviceInfo) -> bool {
        self.tty == other.tty
            && self.vid == other.vid
            && self.pid == other.pid
            && self.serial == other.serial
    }

    /// Fills what `self` lacks from an earlier description of the same tty (a udev remove
    /// event may carry fewer properties than the add).
    pub fn merged_with(mut self, earlier: &DeviceInfo) -> DeviceInfo {
        if self.tty != earlier.tty {
            return self;
        }
        self.by_id = self.by_id.or_else(|| earlier.by_id.clone());
        self.vid = self.vid.or(earlier.vid);
        self.pid = self.pid.or(earlier.pid);
        self.serial = self.serial.or_else(|| earlier.serial.clone());
        self.manufacturer = self.manufacturer.or_else(|| earlier.manufacturer.clone());
        self.product = self.product.or_else(|| earlier.product.clone());
        self
    }
}

/// Whether a USB serial number is unique enough to identify a board: placeholders such as
/// `0001` (CP2102 clones) or all zeros are shared by thousands of boards.
pub fn is_trusted_serial(serial: &str) -> bool {
    let s = serial.trim();
    let mut distinct: Vec<char> = s.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    s.chars().count() >= 5 && distinct.len() >= 3
}

/// Decodes udev's `\xNN` escapes (`ID_MODEL_ENC=CP2102\x20USB…`).
pub fn decode_udev_escapes(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'x') {
            let hex = s
                .get(i + 2..i + 4)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).trim().to_owned()
}

/// A configured miner, as far as recognising its device goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownMiner {
    /// Row id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Where it is read from.
    pub port: String,
    /// USB serial number, when known.
    pub usb_serial: Option<String>,
    /// by-id link, when known.
    pub by_id_path: Option<String>,
}

/// A row of `unconfigured_devices`, as far as recognising its device goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// Row id.
    pub id: i64,
    /// Where it was last seen.
    pub tty: String,
    /// Serial number it reported.
    pub usb_serial: Option<String>,
    /// The owner said it is not a miner.
    pub ignored: bool,
}

/// A configured miner came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconnect {
    /// Which miner.
    pub miner_id: i64,
    /// Its new port, when the old one no longer leads to it.
    pub new_port: Option<String>,
    /// A serial number it did not have yet (miners added by path learn it).
    pub learn_serial: Option<String>,
    /// A by-id link it did not have yet.
    pub learn_by_id: Option<String>,
}

/// The `unconfigured_devices` row describing `dev`: by trusted serial number, else by tty.
pub fn find_record<'a>(records: &'a [DeviceRecord], dev: &DeviceInfo) -> Option<&'a DeviceRecord> {
    match dev.trusted_serial() {
        Some(s) => records.iter().find(|r| r.usb_serial.as_deref() == Some(s)),
        None => records.iter().find(|r| {
            r.tty == dev.tty
                && r.usb_serial
                    .as_deref()
                    .is_none_or(|s| !is_trusted_serial(s))
        }),
    }
}
