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
    /// An operation past the end of the flash the chip reported.
    #[error(
        "0x{size:x} bytes at 0x{offset:x} run past the end of this chip's {flash} KiB flash: \
         the partition table does not match the flash chip; nothing was read or written there"
    )]
    OutOfFlash {
        /// Region offset.
        offset: u32,
        /// Region size.
        size: u32,
        /// Flash size in KiB.
        flash: u32,
    },
    /// The flash chip did not answer its id (RDID), so its size is unknown.
    #[error(
        "the SPI flash did not report its size (JEDEC id 0x{0:06x}); refusing to write to a \
         flash of unknown size: run `shepherd doctor` on this miner and attach its trace to a bug \
         report"
    )]
    UnknownFlash(u32),
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

impl LoaderError {
    /// A stable name for this kind of failure, stored with a command's result
    /// (`loader_error`), so a page or a script can tell a board that needs its BOOT button
    /// from a bad cable without reading the sentence.
    pub fn kind(&self) -> &'static str {
        match self {
            LoaderError::NoSync { .. } => "no_sync",
            LoaderError::Timeout { .. } => "timeout",
            LoaderError::Rom { .. } => "rom_error",
            LoaderError::BadResponse { .. } => "bad_response",
            LoaderError::UnknownChip(_) => "unknown_chip",
            LoaderError::OutOfFlash { .. } => "out_of_flash",
            LoaderError::UnknownFlash(_) => "unknown_flash",
            LoaderError::Md5Mismatch { .. } => "md5_mismatch",
            LoaderError::Io(_) => "port_failed",
        }
    }
}

/// One line of a protocol trace: what was said to the loader and what it answered, with
/// timings, for `shepherd doctor` (never the flash contents: data is given as a length).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TraceEntry {
    /// Milliseconds since the trace started.
    pub at_ms: u64,
    /// `cmd`, `reply`, `timeout`, or `note`.
    pub kind: &'static str,
    /// Command name (empty for notes).
    pub op: &'static str,
    /// What it carried: arguments of a command, value/status of a reply, or a note's text.
    pub detail: String,
}

/// SLIP transport over any byte stream (a serial port, a pseudo-terminal).
pub struct Transport<T> {
    io: T,
    decoder: slip::Decoder,
    frames: VecDeque<Vec<u8>>,
    buf: Vec<u8>,
    status_len: usize,
    text: Vec<u8>,
    trace: Option<(Instant, Vec<TraceEntry>)>,
    stats: WireStats,
}

/// What crossed the wire through this transport: the figures a speed estimate rests on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WireStats {
    /// Bytes written (SLIP-framed).
    pub bytes_out: u64,
    /// Bytes read.
    pub bytes_in: u64,
    /// Commands that waited for their answer (each one a round trip).
    pub round_trips: u64,
}

/// Most entries a trace keeps (a whole partition read at 64 bytes a command would be
/// thousands; the first ones say what a bug report needs).
const MAX_TRACE: usize = 4000;

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
            trace: None,
            stats: WireStats::default(),
        }
    }

    /// Starts recording a trace of every command and reply.
    pub fn start_trace(&mut self) {
        self.trace = Some((Instant::now(), Vec::new()));
    }

    /// The trace recorded so far (empty when not tracing).
    pub fn take_trace(&mut self) -> Vec<TraceEntry> {
        self.trace
            .as_mut()
            .map(|(_, t)| std::mem::take(t))
            .unwrap_or_default()
    }

    /// Adds an entry to the trace, if one is being recorded.
    pub fn note(&mut self, kind: &'static str, op: &'static str, detail: impl FnOnce() -> String) {
        if let Some((start, entries)) = self.trace.as_mut() {
            if entries.len() < MAX_TRACE {
                entries.push(TraceEntry {
                    at_ms: start.elapsed().as_millis() as u64,
                    kind,
                    op,
                    detail: detail(),
                });
            }
        }
    }

    /// Bytes and round trips so far.
    pub fn stats(&self) -> WireStats {
        self.stats
    }

    /// Status bytes per response from now on: 4 from a ROM, 2 once the flasher stub runs.
    pub fn set_status_len(&mut self, len: usize) {
        self.status_len = len;
    }

    /// The stream (to change its baud rate).
    pub fn io_mut(&mut self) -> &mut T {
        &mut self.io
    }

    /// Drops frames and bytes received but not yet read (after a baud rate change).
    pub fn discard_pending(&mut self) {
        self.frames.clear();
        self.decoder.reset();
    }

    /// Sends raw bytes as one SLIP frame (READ_FLASH acknowledgements).
    pub fn send_frame(&mut self, payload: &[u8]) -> Result<(), LoaderError> {
        let frame = slip::encode(payload);
        self.stats.bytes_out += frame.len() as u64;
        self.io.write_all(&frame)?;
        self.io.flush()?;
        Ok(())
    }

    /// The next SLIP frame, whatever it holds (READ_FLASH data, the stub's "OHAI"), or a
    /// timeout naming `op`.
    pub fn frame_within(
        &mut self,
        op: &'static str,
        timeout: Duration,
    ) -> Result<Vec<u8>, LoaderError> {
        match self.next_frame(Instant::now() + timeout)? {
            Some(f) => Ok(f),
            None => {
                self.note("timeout", op, || format!("no frame within {timeout:?}"));
                Err(LoaderError::Timeout {
                    op,
                    secs: timeout.as_secs_f64(),
                })
            }
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
        self.note("cmd", cmd.op().name(), || cmd.summary());
        let frame = slip::encode(&cmd.encode());
        self.stats.bytes_out += frame.len() as u64;
        self.io.write_all(&frame)?;
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
                    self.stats.bytes_in += n as u64;
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
        self.stats.round_trips += 1;
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
            let status_len = self.status_len;
            self.note("reply", op.name(), || {
                let body = frame.len().saturating_sub(8);
                let status = frame.get(frame.len().saturating_sub(status_len)..);
                format!("{body} data bytes, status {status:02x?}")
            });
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
        self.note("timeout", op.name(), || {
            format!("no answer within {timeout:?}")
        });
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
