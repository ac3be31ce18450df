//! Moves ROM-loader commands over a byte stream: SLIP-frames requests, collects response frames
//! until the one that answers, and turns silence, ROM errors and port failures into
//! [`LoaderError`]s that say what to do.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use super::command::{rom_error_name, Command, Op, Response, ROM_STATUS_LEN};
use super::slip;

/// What went wrong talking to the bootloader.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    /// SYNC never answered: the chip is not in its serial bootloader.
    #[error(
        "the ROM bootloader did not answer after {attempts} SYNC attempts: the miner did not \
         enter its bootloader. Hold the BOOT (IO0) button, press and release RESET (EN), then \
         release BOOT and try again; boards without the auto-reset circuit always need this"
    )]
    NoSync {
        /// How many SYNCs were sent.
        attempts: u32,
    },
    /// A command got no answer.
    #[error(
        "the bootloader stopped answering ({op} timed out after {secs:.1} s): check the USB \
         cable and power, then try again"
    )]
    Timeout {
        /// The command.
        op: &'static str,
        /// How long we waited.
        secs: f64,
    },
    /// The ROM answered with an error.
    #[error("the bootloader refused {op}: {reason} (error 0x{code:02x})")]
    Rom {
        /// The command.
        op: &'static str,
        /// Error code.
        code: u8,
        /// esptool's name for it.
        reason: &'static str,
    },
    /// An answer that makes no sense.
    #[error("unexpected answer to {op}: {why}")]
    BadResponse {
        /// The command.
        op: &'static str,
        /// What was wrong.
        why: String,
    },
    /// The chip-detect register holds a value no known chip has.
    #[error(
        "unknown chip (detect register 0x{0:08x}): not an ESP32-family chip NerdMiner runs on"
    )]
    UnknownChip(u32),
    /// The data read does not match the MD5 the chip computed.
    #[error(
        "the read of 0x{size:x} bytes at 0x{offset:x} does not match the MD5 the chip computed \
         ({ours} read, {chip} on the chip): the serial link corrupted data; try again, or use a \
         shorter USB cable"
    )]
    Md5Mismatch {
        /// Region offset.
        offset: u32,
        /// Region size.
        size: u32,
        /// MD5 of what we received.
        ours: String,
        /// MD5 the chip reported.
        chip: String,
    },
    /// The port failed (unplugged).
    #[error("the serial port failed: {0} (was the miner unplugged?)")]
    Io(#[from] std::io::Error),
}

/// SLIP transport over any byte stream (a serial port, a pseudo-terminal).
pub struct Transport<T> {
    io: T,
    decoder: slip::Decoder,
    frames: VecDeque<Vec<u8>>,
    buf: Vec<u8>,
    status_len: usize,
    text: Vec<u8>,
}

/// Most text outside frames kept for [`Transport::take_text`].
const MAX_TEXT: usize = 64 * 1024;

impl<T: Read + Write> Transport<T> {
    /// Wraps a stream whose reads time out after a short while (a serial port's timeout),
    /// or return `WouldBlock`.
    pub fn new(io: T) -> Self {
        Self {
            io,
            decoder: slip::Decoder::new(),
            frames: VecDeque::new(),
            buf: vec![0; 4096],
            status_len: ROM_STATUS_LEN,
            text: Vec::new(),
        }
    }

    /// Text received outside frames so far (what the chip printed before its loader answered,
    /// or instead of it), for the caller to log; bounded.
    pub fn take_text(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.text)
    }

    /// The stream back.
    pub fn into_inner(self) -> T {
        self.io
    }

    /// Sends one command.
    pub fn send(&mut self, cmd: &Command) -> Result<(), LoaderError> {
        self.io.write_all(&slip::encode(&cmd.encode()))?;
        self.io.flush()?;
        Ok(())
    }

    /// The next frame, or `None` at the deadline.
    fn next_frame(&mut self, deadline: Instant) -> Result<Option<Vec<u8>>, LoaderError> {
        loop {
            if let Some(f) = self.frames.pop_front() {
                return Ok(Some(f));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            match self.io.read(&mut self.buf) {
                Ok(0) => {
                    return Err(LoaderError::Io(std::io::Error::new(
                        ErrorKind::UnexpectedEof,
                        "end of file",
                    )))
                }
                Ok(n) => {
                    let mut out = Vec::new();
                    let mut text = Vec::new();
                    self.decoder
                        .push_with_text(&self.buf[..n], &mut out, &mut text);
                    self.frames.extend(out);
                    let room = MAX_TEXT.saturating_sub(self.text.len());
                    self.text.extend_from_slice(&text[..text.len().min(room)]);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Sends `cmd` and waits for its answer (frames answering other commands, e.g. the extra
    /// replies the ROM sends to one SYNC, are skipped). A ROM error is an error.
    pub fn command(&mut self, cmd: &Command) -> Result<Response, LoaderError> {
        self.command_within(cmd, cmd.timeout())
    }

    /// [`command`](Self::command) with an explicit timeout.
    pub fn command_within(
        &mut self,
        cmd: &Command,
        timeout: Duration,
    ) -> Result<Response, LoaderError> {
        let op = cmd.op();
        self.send(cmd)?;
        let deadline = Instant::now() + timeout;
        while let Some(frame) = self.next_frame(deadline)? {
            if frame.len() < 8 || frame[0] != 0x01 || frame[1] != op as u8 {
                continue;
            }
            if op == Op::Sync {
                // The first SYNC reply tells how many status bytes this loader sends
                // (4 from a ROM, 2 from a flasher stub).
                let len = usize::from(u16::from_le_bytes([frame[2], frame[3]]));
                if len == 2 || len == 4 {
                    self.status_len = len;
                }
            }
            let Some(resp) = Response::decode(&frame, self.status_len) else {
                return Err(LoaderError::BadResponse {
                    op: op.name(),
                    why: format!("malformed {}-byte response", frame.len()),
                });
            };
            if resp.status != 0 {
                return Err(LoaderError::Rom {
                    op: op.name(),
                    code: resp.error,
                    reason: rom_error_name(resp.error),
                });
            }
            return Ok(resp);
        }
        Err(LoaderError::Timeout {
            op: op.name(),
            secs: timeout.as_secs_f64(),
        })
    }

    /// Discards whatever arrives for `duration` (stale replies after a failed SYNC).
    pub fn drain(&mut self, duration: Duration) -> Result<(), LoaderError> {
        let deadline = Instant::now() + duration;
        while self.next_frame(deadline)?.is_some() {}
        Ok(())
    }
}
