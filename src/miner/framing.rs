//! Turns the raw byte stream of a miner's serial port into clean text lines.
//!
//! Serial output from an ESP32 is messy: `println` ends lines in CRLF and `printf` in LF,
//! the boot ROM talks at another baud rate (garbage bytes), terminals and some builds emit
//! ANSI colour codes, and a `read()` can end anywhere, even inside a CRLF or an escape
//! sequence. The framer copes with all of it, never panics, and keeps its memory bounded
//! by the longest line it is allowed to keep.

/// Longest line kept; longer lines are cut here and counted.
pub const MAX_LINE_BYTES: usize = 4096;

/// An escape sequence longer than this is treated as garbage and abandoned, so a stray
/// ESC on a noisy line cannot swallow the text that follows it.
const MAX_CSI_BYTES: usize = 32;

const ESC: u8 = 0x1b;

/// One line of text, cleaned and ready to parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramedLine {
    /// The line without its terminator, control characters or trailing whitespace.
    pub text: String,
    /// The line was longer than the framer's limit and only its beginning is kept.
    pub truncated: bool,
}

/// Where the framer is inside an ANSI escape sequence; kept across `push` calls
/// because a `read()` can end in the middle of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    /// Saw ESC; the next byte decides between CSI and a two-byte sequence.
    Started,
    /// Inside `ESC [ ...`, waiting for the final byte; counts the bytes seen.
    Csi(usize),
}

/// Splits a byte stream into [`FramedLine`]s, state carried across reads.
#[derive(Debug, Clone)]
pub struct LineFramer {
    max_line: usize,
    /// Bytes of the current line kept so far (never more than `max_line`).
    buf: Vec<u8>,
    /// The current line has gone past `max_line`.
    overflowed: bool,
    escape: Escape,
    /// The previous byte ended a line with `\r`; a `\n` right after it belongs to it.
    after_cr: bool,
    truncated_lines: u64,
    bytes_discarded: u64,
}

impl Default for LineFramer {
    fn default() -> Self {
        Self::new(MAX_LINE_BYTES)
    }
}

impl LineFramer {
    /// A framer that keeps at most `max_line` bytes of any line.
    pub fn new(max_line: usize) -> Self {
        Self {
            max_line,
            // Typical miner lines are < 200 bytes; grow on demand up to `max_line`.
            buf: Vec::with_capacity(max_line.min(256)),
            overflowed: false,
            escape: Escape::None,
            after_cr: false,
            truncated_lines: 0,
            bytes_discarded: 0,
        }
    }

    /// Feed raw bytes from one read(); complete lines are appended to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<FramedLine>) {
        self.push_each(bytes, |text, truncated| {
            out.push(FramedLine {
                text: text.to_owned(),
                truncated,
            })
        });
    }

    /// [`LineFramer::push`] handing each complete line to `line(text, truncated)` as it is
    /// framed, borrowed from the framer: ingest copies it straight into its batch, with no
    /// allocation of its own per line.
    pub fn push_each(&mut self, bytes: &[u8], mut line: impl FnMut(&str, bool)) {
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match self.escape {
                Escape::None => {}
                Escape::Started => {
                    self.escape = Escape::None;
                    if b == b'[' {
                        self.escape = Escape::Csi(0);
                        continue;
                    }
                    // A two-byte sequence (ESC c, ESC 7, ...) eats its one argument, but a
                    // line terminator or another ESC is never part of one.
                    if !matches!(b, b'\n' | b'\r' | ESC) {
                        continue;
                    }
                }
                Escape::Csi(n) => {
                    match b {
                        // Final byte ends the sequence.
                        0x40..=0x7e => {
                            self.escape = Escape::None;
                            continue;
                        }
                        // Parameter and intermediate bytes.
                        0x20..=0x3f if n < MAX_CSI_BYTES => {
                            self.escape = Escape::Csi(n + 1);
                            continue;
                        }
                        // Anything else means the sequence was broken: drop what was
                        // consumed and handle this byte as ordinary input.
                        _ => self.escape = Escape::None,
                    }
                }
            }
            match b {
                b'\n' => self.end_line(&mut line),
                b'\r' => {
                    self.end_line(&mut line);
                    self.after_cr = true;
                }
                ESC => self.escape = Escape::Started,
                // Tab survives; other C0 controls and DEL are noise (NULs from a
                // resetting chip, bells and backspaces from a baud mismatch).
                b'\t' => self.keep(b),
                0x00..=0x1f | 0x7f => {}
                _ => self.keep(b),
            }
        }
    }

    /// End of stream: emit the pending partial line, if any.
    pub fn finish(&mut self, out: &mut Vec<FramedLine>) {
        self.finish_each(|text, truncated| {
            out.push(FramedLine {
                text: text.to_owned(),
                truncated,
            })
        });
    }

    /// [`LineFramer::finish`] handing the line to `line` as [`LineFramer::push_each`] does.
    pub fn finish_each(&mut self, mut line: impl FnMut(&str, bool)) {
        if !self.buf.is_empty() || self.overflowed {
            self.end_line(&mut line);
        }
        self.escape = Escape::None;
        self.after_cr = false;
    }

    /// Lines cut at the framer's limit so far.
    pub fn truncated_lines(&self) -> u64 {
        self.truncated_lines
    }

    /// Bytes dropped from over-long lines so far.
    pub fn bytes_discarded(&self) -> u64 {
        self.bytes_discarded
    }

    fn keep(&mut self, b: u8) {
        if self.buf.len() < self.max_line {
            self.buf.push(b);
        } else {
            self.overflowed = true;
            self.bytes_discarded += 1;
        }
    }

    fn end_line(&mut self, line: &mut impl FnMut(&str, bool)) {
        let truncated = self.overflowed;
        if truncated {
            self.truncated_lines += 1;
            // The cut may have split a multi-byte character; drop its head rather than
            // emit a replacement character for it.
            let keep = complete_utf8_prefix(&self.buf);
            self.bytes_discarded += (self.buf.len() - keep) as u64;
            self.buf.truncate(keep);
        }
        let text = String::from_utf8_lossy(&self.buf);
        let text = text.trim_end();
        if !text.is_empty() {
            line(text, truncated);
        }
        self.buf.clear();
        self.overflowed = false;
    }
}

/// Length of `buf` without a trailing, incomplete UTF-8 sequence.
fn complete_utf8_prefix(buf: &[u8]) -> usize {
    // Look back at most 3 bytes for the lead byte of the last character.
    let len = buf.len();
    for back in 1..=len.min(4) {
        let b = buf[len - back];
        if b & 0xc0 == 0x80 {
            continue; // continuation byte, keep looking for the lead
        }
        let need = match b {
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf7 => 4,
            _ => 1,
        };
        return if need > back { len - back } else { len };
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame_chunks(chunks: &[&[u8]], max: usize) -> (Vec<FramedLine>, LineFramer) {
        let mut f = LineFramer::new(max);
        let mut out = Vec::new();
        for c in chunks {
            f.push(c, &mut out);
        }
        f.finish(&mut out);
        (out, f)
    }

    fn texts(lines: &[FramedLine]) -> Vec<&str> {
        lines.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn all_terminators() {
        let (out, _) = frame_chunks(&[b"a\r\nb\nc\rd"], 100);
        assert_eq!(texts(&out), ["a", "b", "c", "d"]);
        assert!(out.iter().all(|l| !l.truncated));
    }

    #[test]
    fn crlf_split_across_pushes_is_one_terminator() {
        let (out, _) = frame_chunks(&[b"one\r", b"\ntwo\r", b"", b"\nthree\n"], 100);
        assert_eq!(texts(&out), ["one", "two", "three"]);
    }

    #[test]
    fn partial_lines_join_across_pushes() {
        let (out, _) = frame_chunks(&[b">>> Compl", b"eted 1 share(s)", b"\n"], 100);
        assert_eq!(texts(&out), [">>> Completed 1 share(s)"]);
    }

    #[test]
    fn blank_and_whitespace_lines_are_dropped() {
        let (out, _) = frame_chunks(&[b"\r\n\r\n   \t \r\nx  \t\r\n\n"], 100);
        assert_eq!(texts(&out), ["x"]);
    }

    #[test]
    fn leading_whitespace_kept_trailing_trimmed() {
        let (out, _) = frame_chunks(&[b"    difficulty: 0.1   \r\n"], 100);
        assert_eq!(texts(&out), ["    difficulty: 0.1"]);
    }

    #[test]
    fn nul_and_control_bytes_removed() {
        let (out, _) = frame_chunks(&[b"\0\0ab\0c\x07\x08d\x7f\n"], 100);
        assert_eq!(texts(&out), ["abcd"]);
    }

    #[test]
    fn ansi_sequences_stripped_even_when_split() {
        let (out, _) = frame_chunks(
            &[b"\x1b[0;3", b"2mI (123) \x1b", b"[0mok\x1b", b"cx\x1b7y\n"],
            100,
        );
        assert_eq!(texts(&out), ["I (123) okxy"]);
    }

    #[test]
    fn broken_csi_does_not_eat_the_line() {
        let (out, _) = frame_chunks(&[b"a\x1b[12\nb\n"], 100);
        assert_eq!(texts(&out), ["a", "b"]);
        let long = [b"\x1b[".as_slice(), &[b'1'; 40], b"zz\n"].concat();
        let (out, _) = frame_chunks(&[&long], 100);
        // Parameter bytes past the limit are let through rather than swallowed forever.
        assert!(out[0].text.ends_with("zz"));
    }

    #[test]
    fn esc_before_newline_keeps_newline() {
        let (out, _) = frame_chunks(&[b"a\x1b\nb\n"], 100);
        assert_eq!(texts(&out), ["a", "b"]);
    }

    #[test]
    fn invalid_utf8_is_lossy() {
        let (out, _) = frame_chunks(&[b"ok \xff\xfe end\n"], 100);
        assert_eq!(out[0].text, "ok \u{fffd}\u{fffd} end");
    }

    #[test]
    fn long_line_is_cut_and_counted() {
        let mut f = LineFramer::new(8);
        let mut out = Vec::new();
        f.push(b"0123456789", &mut out);
        assert!(out.is_empty(), "no terminator yet");
        f.push(b"abc\r\nshort\n", &mut out);
        assert_eq!(
            out,
            [
                FramedLine {
                    text: "01234567".into(),
                    truncated: true
                },
                FramedLine {
                    text: "short".into(),
                    truncated: false
                }
            ]
        );
        assert_eq!(f.truncated_lines(), 1);
        assert_eq!(f.bytes_discarded(), 5);
        assert!(f.buf.capacity() <= 256);
    }

    #[test]
    fn long_line_emitted_at_finish() {
        let (out, f) = frame_chunks(&[b"0123456789"], 4);
        assert_eq!(
            out,
            [FramedLine {
                text: "0123".into(),
                truncated: true
            }]
        );
        assert_eq!(f.bytes_discarded(), 6);
    }

    #[test]
    fn cut_inside_multibyte_char_drops_the_partial_char() {
        // "aé€" = 61 c3a9 e282ac; a limit of 4 cuts the euro sign after its first byte.
        let (out, f) = frame_chunks(&["aé€z\n".as_bytes()], 4);
        assert_eq!(out[0].text, "aé");
        assert!(out[0].truncated);
        assert_eq!(f.bytes_discarded(), 4);
    }

    #[test]
    fn complete_utf8_prefix_cases() {
        assert_eq!(complete_utf8_prefix(b""), 0);
        assert_eq!(complete_utf8_prefix(b"abc"), 3);
        assert_eq!(complete_utf8_prefix("é".as_bytes()), 2);
        assert_eq!(complete_utf8_prefix(&"é".as_bytes()[..1]), 0);
        assert_eq!(complete_utf8_prefix(&"€".as_bytes()[..2]), 0);
        assert_eq!(complete_utf8_prefix(&"𝄞".as_bytes()[..3]), 0);
        assert_eq!(complete_utf8_prefix("𝄞".as_bytes()), 4);
        assert_eq!(complete_utf8_prefix(b"\x80\x80\x80\x80\x80"), 5);
    }

    #[test]
    fn finish_without_pending_emits_nothing() {
        let (out, _) = frame_chunks(&[b"x\n"], 10);
        assert_eq!(texts(&out), ["x"]);
        let mut f = LineFramer::default();
        let mut out = Vec::new();
        f.finish(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn buffer_is_reused() {
        let mut f = LineFramer::new(64);
        let mut out = Vec::new();
        for _ in 0..1000 {
            f.push(
                b">>> Completed 0 share(s), 61 Khashes, avg. hashrate 61.69 KH/s\n",
                &mut out,
            );
        }
        assert_eq!(out.len(), 1000);
        assert!(f.buf.capacity() <= 256);
    }

    proptest! {
        #[test]
        fn never_panics_and_stays_bounded(data in proptest::collection::vec(any::<u8>(), 0..2000),
                                          max in 0usize..64) {
            let mut f = LineFramer::new(max);
            let mut out = Vec::new();
            f.push(&data, &mut out);
            f.finish(&mut out);
            for l in &out {
                prop_assert!(l.text.len() <= max.max(1) * 3);
                prop_assert!(!l.text.trim().is_empty());
                prop_assert!(!l.text.contains(['\n', '\r', '\0', '\x1b']));
            }
            prop_assert!(f.buf.capacity() <= 256);
        }

        #[test]
        fn chunking_does_not_change_output(data in proptest::collection::vec(
                                               prop_oneof![Just(b'\r'), Just(b'\n'), Just(0x1bu8),
                                                           Just(b'['), Just(b'm'), Just(0u8), Just(0xe2u8),
                                                           Just(0x82u8), Just(0xacu8), 0x20u8..0x7f],
                                               0..400),
                                           cuts in proptest::collection::vec(0usize..400, 0..12),
                                           max in 1usize..40) {
            let (whole, fw) = frame_chunks(&[&data], max);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut start = 0;
            for c in cuts {
                chunks.push(&data[start..c]);
                start = c;
            }
            chunks.push(&data[start..]);
            let (split, fs) = frame_chunks(&chunks, max);
            prop_assert_eq!(whole, split);
            prop_assert_eq!(fw.truncated_lines(), fs.truncated_lines());
            prop_assert_eq!(fw.bytes_discarded(), fs.bytes_discarded());
        }
    }
}
