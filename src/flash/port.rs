//! What the loader needs from a port beyond bytes: its modem lines (to reset the chip) and its
//! baud rate (to go faster once the loader runs). A reader thread lends its port as a
//! [`SessionPort`]; a simulated board's lines arrive through [`Forwarding`], since a
//! pseudo-terminal has none.

use std::io::{Read, Write};
use std::time::Duration;

use serialport::{SerialPort, TTYPort};

use super::lines::{Forwarding, LineControl, SerialLines, Wiring};

/// A port the loader can reset, read, write and re-clock.
pub trait LoaderPort: Read + Write + LineControl {
    /// Changes the host side's baud rate.
    fn set_baud(&mut self, baud: u32) -> std::io::Result<()>;
    /// How the board's USB link drives reset and boot mode.
    fn wiring(&self) -> Wiring;
    /// Starts the flasher stub on a chip in its ROM loader at 115200 baud and moves the link to
    /// `baud` (see [`super::stub`]). Ports that cannot say why.
    fn start_stub(&mut self, baud: Option<u32>) -> Result<(), String>;
}

/// A serial port lent by its reader, with the lines of a simulated board when there is one.
pub struct SessionPort<'a> {
    port: &'a mut TTYPort,
    sim: Option<Forwarding>,
    wiring: Wiring,
}

impl<'a> SessionPort<'a> {
    /// `sim`: the simulated board's line control (demo and tests), else the port's own lines.
    pub fn new(port: &'a mut TTYPort, sim: Option<Forwarding>, wiring: Wiring) -> Self {
        Self { port, sim, wiring }
    }
}

impl Read for SessionPort<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.port.read(buf)
    }
}

impl Write for SessionPort<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.port.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.port.flush()
    }
}

impl LineControl for SessionPort<'_> {
    fn set_dtr(&mut self, level: bool) -> std::io::Result<()> {
        match &mut self.sim {
            Some(sim) => sim.set_dtr(level),
            None => SerialLines(&mut *self.port as &mut dyn SerialPort).set_dtr(level),
        }
    }
    fn set_rts(&mut self, level: bool) -> std::io::Result<()> {
        match &mut self.sim {
            Some(sim) => sim.set_rts(level),
            None => SerialLines(&mut *self.port as &mut dyn SerialPort).set_rts(level),
        }
    }
    fn sleep(&mut self, duration: Duration) {
        match &mut self.sim {
            Some(sim) => sim.sleep(duration),
            None => std::thread::sleep(duration),
        }
    }
}

impl LoaderPort for SessionPort<'_> {
    fn set_baud(&mut self, baud: u32) -> std::io::Result<()> {
        self.port.set_baud_rate(baud).map_err(std::io::Error::from)
    }
    fn wiring(&self) -> Wiring {
        self.wiring
    }
    fn start_stub(&mut self, baud: Option<u32>) -> Result<(), String> {
        super::stub::start(self.port, self.wiring, baud)
    }
}
