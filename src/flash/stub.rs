//! Starting the flasher stub, through espflash.
//!
//! A stub in the chip's RAM streams reads (READ_FLASH) and takes 16 KiB write blocks, where the
//! ROM answers 64 bytes a command: a 896 KiB partition in seconds instead of minutes. espflash
//! ships the stub images (esptool's stub) but keeps them private, so its `Flasher::connect`
//! does the whole start on a clone of the port we own — sync, chip detection, eFuse revision,
//! stub upload (MEM_BEGIN/MEM_DATA/MEM_END, then "OHAI"), flash detection and CHANGE_BAUDRATE —
//! and hands the running stub back: the clone shares our file descriptor's terminal, so its
//! baud rate is ours too. Our [`Loader`](super::loader::Loader) then talks to the stub.

use espflash::connection::{Connection, ResetAfterOperation, ResetBeforeOperation};
use espflash::flasher::Flasher;
use serialport::{TTYPort, UsbPortInfo};

use super::command::ROM_BAUD;
use super::lines::{Wiring, ESPRESSIF_VID, USB_JTAG_SERIAL_PID};

/// Starts the stub on a chip that is in its ROM loader at [`ROM_BAUD`] and raises the link to
/// `baud` (None: stay at the ROM's rate). espflash sees no reset to do (`NoReset`), leaves the
/// stub running afterwards (`NoResetNoStub`), and, told the port is USB-Serial/JTAG,
/// switches off the watchdogs as esptool does.
pub fn start(tty: &TTYPort, wiring: Wiring, baud: Option<u32>) -> Result<(), String> {
    let clone = tty
        .try_clone_native()
        .map_err(|e| format!("cannot share the port with the stub loader: {e}"))?;
    let (vid, pid) = match wiring {
        Wiring::UsbJtag => (ESPRESSIF_VID, USB_JTAG_SERIAL_PID),
        Wiring::Classic => (0, 0),
    };
    let info = UsbPortInfo {
        vid,
        pid,
        serial_number: None,
        manufacturer: None,
        product: None,
    };
    let conn = Connection::new(
        clone,
        info,
        ResetAfterOperation::NoResetNoStub,
        ResetBeforeOperation::NoReset,
        ROM_BAUD,
    );
    let flasher = Flasher::connect(conn, true, false, false, None, baud)
        .map_err(|e| format!("espflash could not start the flasher stub: {e}"))?;
    // Dropping the clone closes only its descriptor; the terminal stays ours.
    drop(flasher.into_connection().into_serial());
    Ok(())
}
