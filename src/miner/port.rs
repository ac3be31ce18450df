//! Opening a miner's serial port, with errors that say how to fix them.

use std::time::Duration;

use serialport::TTYPort;

use crate::db::LinkState;

/// Why a port could not be opened, and what the owner can do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenFailure {
    /// Offline (nothing there yet: wait) or Error (something to fix).
    pub state: LinkState,
    /// One line for the dashboard and the log.
    pub message: String,
}

/// Opens `path` for reading at `baud`, with a short read timeout so the reader can notice a
/// stop request. The native type, so a loader session can lend espflash a clone of it.
pub fn open(path: &str, baud: u32) -> Result<TTYPort, OpenFailure> {
    serialport::new(path, baud)
        .timeout(Duration::from_millis(100))
        .open_native()
        .map_err(|e| classify(path, &e))
}

/// Turns a serialport error into a state and a hint.
pub fn classify(path: &str, err: &serialport::Error) -> OpenFailure {
    let text = err.to_string();
    let lower = text.to_lowercase();
    let io_kind = match err.kind() {
        serialport::ErrorKind::Io(k) => Some(k),
        _ => None,
    };
    if io_kind == Some(std::io::ErrorKind::NotFound)
        || matches!(err.kind(), serialport::ErrorKind::NoDevice)
        || lower.contains("no such file")
    {
        return OpenFailure {
            state: LinkState::Offline,
            message: format!(
                "{path} not found: is the miner plugged in? Waiting for it to appear."
            ),
        };
    }
    if io_kind == Some(std::io::ErrorKind::PermissionDenied) || lower.contains("permission denied")
    {
        return OpenFailure {
            state: LinkState::Error,
            message: format!(
                "permission denied on {path}: add the user running shepherd to the dialout group \
                 (sudo usermod -aG dialout $USER, then log in again)"
            ),
        };
    }
    if lower.contains("busy") {
        return OpenFailure {
            state: LinkState::Error,
            message: format!(
                "{path} is in use by another program: close serial monitors (Arduino IDE, screen, \
                 minicom) or stop ModemManager (sudo systemctl stop ModemManager)"
            ),
        };
    }
    OpenFailure {
        state: LinkState::Error,
        message: format!("cannot open {path}: {text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(kind: std::io::ErrorKind, msg: &str) -> serialport::Error {
        serialport::Error::new(serialport::ErrorKind::Io(kind), msg)
    }

    #[test]
    fn missing_device_is_offline_and_waits() {
        let f = open("/dev/ttyNONEXISTENT99", 115_200).err().unwrap();
        assert_eq!(f.state, LinkState::Offline);
        assert!(f.message.contains("plugged in"), "{}", f.message);
    }

    #[test]
    fn permission_hint_names_dialout() {
        let f = classify(
            "/dev/ttyUSB0",
            &io(std::io::ErrorKind::PermissionDenied, "Permission denied"),
        );
        assert_eq!(f.state, LinkState::Error);
        assert!(f.message.contains("dialout"));
    }

    #[test]
    fn busy_hint_names_other_programs() {
        let f = classify(
            "/dev/ttyUSB0",
            &io(std::io::ErrorKind::Other, "Device or resource busy"),
        );
        assert_eq!(f.state, LinkState::Error);
        assert!(f.message.contains("another program"));
    }
}
