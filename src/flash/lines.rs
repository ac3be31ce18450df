//! Modem-control lines (DTR/RTS) and the reset sequences esptool drives through them.
//!
//! On classic ESP32 boards two transistors turn RTS into EN (reset) and DTR into IO0 (boot
//! mode); native-USB chips (Espressif VID 303a, USB-Serial/JTAG) interpret the same lines in
//! their USB peripheral. The sequences are data ([`ResetKind::steps`]), run against a small
//! trait: a real port implements it with ioctls, and the simulated ESP32 gets the very same
//! calls through [`Forwarding`] (pseudo-terminals have no modem lines: their ioctls fail with
//! ENOTTY).

use std::sync::mpsc::Sender;
use std::time::Duration;

/// What a reset sequence needs from a port.
pub trait LineControl {
    /// Assert (true) or release DTR.
    fn set_dtr(&mut self, level: bool) -> std::io::Result<()>;
    /// Assert (true) or release RTS.
    fn set_rts(&mut self, level: bool) -> std::io::Result<()>;
    /// Wait between steps (a real sleep; the chip sees time pass).
    fn sleep(&mut self, duration: Duration);
}

/// One step of a sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineStep {
    /// Set DTR.
    Dtr(bool),
    /// Set RTS.
    Rts(bool),
    /// Wait this many milliseconds.
    Sleep(u64),
}

/// How the miner's USB link drives reset and boot mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wiring {
    /// A USB-UART bridge (CP210x, CH340) with the two-transistor auto-reset circuit.
    Classic,
    /// The chip's own USB-Serial/JTAG peripheral (ESP32-S3/C3, VID 303a).
    UsbJtag,
}

/// Espressif's USB vendor id.
pub const ESPRESSIF_VID: u16 = 0x303A;
/// The USB-Serial/JTAG peripheral's product id (esp_pylib `USB_JTAG_SERIAL_PID`): only this
/// one takes esptool's `USBJTAGSerialReset`; other Espressif ids (USB-OTG CDC, TinyUSB) are
/// reset like a bridge.
pub const USB_JTAG_SERIAL_PID: u16 = 0x1001;

/// Which sequence to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetKind {
    /// Reset into the firmware (esptool `hard_reset`).
    HardReset,
    /// Reset into the ROM serial bootloader (esptool `ClassicReset` / `USBJTAGSerialReset`).
    Bootloader,
    /// The same, holding IO0 half a second longer after EN rises (esptool's `extra_delay`
    /// variant; the USB-Serial/JTAG sequence has only one).
    BootloaderSlow,
}

use LineStep::{Dtr, Rts, Sleep};

/// esptool `hard_reset`: pulse EN through RTS with IO0 left high.
const HARD_RESET: &[LineStep] = &[Dtr(false), Rts(true), Sleep(100), Rts(false)];
/// esptool `hard_reset` on USB-Serial/JTAG (the peripheral needs a longer pulse).
const HARD_RESET_USB: &[LineStep] = &[Dtr(false), Rts(true), Sleep(200), Rts(false)];
/// esptool `ClassicReset` (esp_pylib `classic_bootloader_reset`): hold EN low, then release it
/// while IO0 is held low, then let IO0 go after `DEFAULT_RESET_DELAY` (50 ms).
const CLASSIC_BOOTLOADER: &[LineStep] = &[
    Dtr(false),
    Rts(true),
    Sleep(100),
    Dtr(true),
    Rts(false),
    Sleep(50),
    Dtr(false),
];
/// The same with esptool's extra delay (`DEFAULT_RESET_DELAY + 0.5`): boards whose EN
/// capacitor is slow need IO0 held longer; esptool alternates the two on each attempt.
const CLASSIC_BOOTLOADER_SLOW: &[LineStep] = &[
    Dtr(false),
    Rts(true),
    Sleep(100),
    Dtr(true),
    Rts(false),
    Sleep(550),
    Dtr(false),
];
/// esptool `USBJTAGSerialReset`.
const USB_JTAG_BOOTLOADER: &[LineStep] = &[
    Rts(false),
    Dtr(false),
    Sleep(100),
    Dtr(true),
    Rts(false),
    Sleep(100),
    Rts(true),
    Dtr(false),
    Rts(true),
    Sleep(100),
    Dtr(false),
    Rts(false),
];

impl ResetKind {
    /// The steps for a wiring.
    pub fn steps(self, wiring: Wiring) -> &'static [LineStep] {
        match (self, wiring) {
            (ResetKind::HardReset, Wiring::Classic) => HARD_RESET,
            (ResetKind::HardReset, Wiring::UsbJtag) => HARD_RESET_USB,
            (ResetKind::Bootloader, Wiring::Classic) => CLASSIC_BOOTLOADER,
            (ResetKind::BootloaderSlow, Wiring::Classic) => CLASSIC_BOOTLOADER_SLOW,
            (ResetKind::Bootloader | ResetKind::BootloaderSlow, Wiring::UsbJtag) => {
                USB_JTAG_BOOTLOADER
            }
        }
    }
}

/// Runs a sequence.
pub fn run(lines: &mut dyn LineControl, kind: ResetKind, wiring: Wiring) -> std::io::Result<()> {
    for step in kind.steps(wiring) {
        match *step {
            Dtr(level) => lines.set_dtr(level)?,
            Rts(level) => lines.set_rts(level)?,
            Sleep(ms) => lines.sleep(Duration::from_millis(ms)),
        }
    }
    Ok(())
}

/// A real serial port's lines.
pub struct SerialLines<'a>(pub &'a mut dyn serialport::SerialPort);

impl LineControl for SerialLines<'_> {
    fn set_dtr(&mut self, level: bool) -> std::io::Result<()> {
        self.0
            .write_data_terminal_ready(level)
            .map_err(std::io::Error::from)
    }

    fn set_rts(&mut self, level: bool) -> std::io::Result<()> {
        self.0
            .write_request_to_send(level)
            .map_err(std::io::Error::from)
    }

    fn sleep(&mut self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// Line changes delivered to a simulated chip, in order, exactly as a port would get them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEvent {
    /// DTR set to this level.
    Dtr(bool),
    /// RTS set to this level.
    Rts(bool),
    /// The host waited this long (the simulator's model of the EN capacitor needs time).
    Slept(Duration),
}

/// Forwards every call to a simulated chip (and sleeps for real, so timing is as on hardware).
/// Demo mode and tests only: real hardware uses [`SerialLines`].
#[derive(Debug, Clone)]
pub struct Forwarding {
    tx: Sender<LineEvent>,
    wiring: Wiring,
}

impl Forwarding {
    /// Sends events to `tx`; `wiring` is what the simulated board has.
    pub fn new(tx: Sender<LineEvent>, wiring: Wiring) -> Self {
        Self { tx, wiring }
    }

    /// The simulated board's wiring.
    pub fn wiring(&self) -> Wiring {
        self.wiring
    }

    fn send(&self, e: LineEvent) -> std::io::Result<()> {
        self.tx.send(e).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the simulated miner is gone",
            )
        })
    }
}

impl LineControl for Forwarding {
    fn set_dtr(&mut self, level: bool) -> std::io::Result<()> {
        self.send(LineEvent::Dtr(level))
    }

    fn set_rts(&mut self, level: bool) -> std::io::Result<()> {
        self.send(LineEvent::Rts(level))
    }

    fn sleep(&mut self, duration: Duration) {
        std::thread::sleep(duration);
        let _ = self.send(LineEvent::Slept(duration));
    }
}

/// Records calls (tests).
#[derive(Debug, Default)]
pub struct Recording(pub Vec<LineStep>);

impl LineControl for Recording {
    fn set_dtr(&mut self, level: bool) -> std::io::Result<()> {
        self.0.push(Dtr(level));
        Ok(())
    }
    fn set_rts(&mut self, level: bool) -> std::io::Result<()> {
        self.0.push(Rts(level));
        Ok(())
    }
    fn sleep(&mut self, duration: Duration) {
        self.0.push(Sleep(duration.as_millis() as u64));
    }
}

/// The wiring a USB id means: only Espressif's USB-Serial/JTAG (303a:1001) takes the USB-JTAG
/// sequence (esptool `_construct_reset_strategy_sequence`); every other id, Espressif's own
/// USB-OTG and TinyUSB CDC included, is reset like a bridge.
pub fn wiring_for(vid: u16, pid: u16) -> Wiring {
    if vid == ESPRESSIF_VID && pid == USB_JTAG_SERIAL_PID {
        Wiring::UsbJtag
    } else {
        Wiring::Classic
    }
}

/// The wiring of a real port, from its USB ids.
pub fn wiring_of(path: &str) -> Wiring {
    let wanted = std::fs::canonicalize(path).unwrap_or_else(|_| path.into());
    let ports = serialport::available_ports().unwrap_or_default();
    for p in ports {
        let same =
            std::fs::canonicalize(&p.port_name).unwrap_or_else(|_| p.port_name.clone().into());
        if same == wanted {
            if let serialport::SerialPortType::UsbPort(info) = p.port_type {
                return wiring_for(info.vid, info.pid);
            }
        }
    }
    Wiring::Classic
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_the_esptool_sequences_in_order() {
        let mut rec = Recording::default();
        run(&mut rec, ResetKind::Bootloader, Wiring::Classic).unwrap();
        assert_eq!(rec.0, CLASSIC_BOOTLOADER);
        let mut rec = Recording::default();
        run(&mut rec, ResetKind::HardReset, Wiring::UsbJtag).unwrap();
        assert_eq!(rec.0.last(), Some(&Rts(false)));
    }

    #[test]
    fn pty_has_no_modem_lines() {
        // Why the simulator gets the calls through Forwarding: a pseudo-terminal refuses them.
        let pty = crate::sim::pty::Pty::open().unwrap();
        let mut port = serialport::new(pty.path.to_string_lossy(), 115_200)
            .open()
            .unwrap();
        let mut lines = SerialLines(port.as_mut());
        assert!(run(&mut lines, ResetKind::HardReset, Wiring::Classic).is_err());
    }

    #[test]
    fn forwarding_delivers_every_call() {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut f = Forwarding::new(tx, Wiring::Classic);
        run(&mut f, ResetKind::HardReset, Wiring::Classic).unwrap();
        let got: Vec<LineEvent> = rx.try_iter().collect();
        assert_eq!(
            got,
            [
                LineEvent::Dtr(false),
                LineEvent::Rts(true),
                LineEvent::Slept(Duration::from_millis(100)),
                LineEvent::Rts(false)
            ]
        );
    }

    #[test]
    fn only_the_usb_serial_jtag_id_takes_its_sequence() {
        assert_eq!(wiring_for(0x303A, 0x1001), Wiring::UsbJtag);
        assert_eq!(wiring_for(0x303A, 0x0002), Wiring::Classic); // USB-OTG CDC
        assert_eq!(wiring_for(0x303A, 0x4001), Wiring::Classic); // TinyUSB
        assert_eq!(wiring_for(0x10C4, 0xEA60), Wiring::Classic); // CP210x
    }

    #[test]
    fn unknown_port_is_classic() {
        assert_eq!(wiring_of("/dev/ttyDOES_NOT_EXIST"), Wiring::Classic);
    }
}
