//! Pseudo-terminal pairs: the simulator writes to the master, the real serial code opens the
//! slave by its path exactly as it would open /dev/ttyUSB0.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::pty::openpty;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};

/// A master end with the path of its slave.
pub struct Pty {
    /// Where the simulator writes (and reads what the reader sends back).
    pub master: File,
    /// Path of the slave end, e.g. /dev/pts/7.
    pub path: PathBuf,
    /// Held open so the slave keeps its raw settings and writes never fail while no reader
    /// has it open (between a reader's reconnects).
    pub slave: OwnedFd,
}

impl Pty {
    /// Opens a new pair with the slave in raw mode (no echo, no CR/LF translation), as a USB
    /// serial adapter behaves.
    pub fn open() -> std::io::Result<Self> {
        let pair = openpty(None, None)?;
        // openpty() leaves both ends inheritable; a child process holding the master would
        // keep the "device" alive after we close it.
        for fd in [&pair.master, &pair.slave] {
            fcntl(fd.as_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
        }
        let mut attrs = tcgetattr(pair.slave.as_fd())?;
        cfmakeraw(&mut attrs);
        tcsetattr(pair.slave.as_fd(), SetArg::TCSANOW, &attrs)?;
        let path = nix::unistd::ttyname(pair.slave.as_fd())?;
        Ok(Self {
            master: File::from(pair.master),
            path,
            slave: pair.slave,
        })
    }
}
