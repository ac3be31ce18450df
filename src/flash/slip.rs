//! SLIP framing (RFC 1055) as the ESP32 ROM loader uses it: every packet is wrapped in `C0`
//! bytes, with `C0` escaped as `DB DC` and `DB` as `DB DD`. Pure: no I/O.

const END: u8 = 0xC0;
const ESC: u8 = 0xDB;
const ESC_END: u8 = 0xDC;
const ESC_ESC: u8 = 0xDD;

/// Longest frame the decoder keeps (a FLASH_DATA of 16 KiB plus header, escaped); bytes past it
/// are dropped and the frame is discarded, so garbage on the line cannot grow memory.
pub const MAX_FRAME: usize = 0x10000;

/// Wraps `packet` in one frame.
pub fn encode(packet: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(packet.len() + 8);
    out.push(END);
    for &b in packet {
        match b {
            END => out.extend_from_slice(&[ESC, ESC_END]),
            ESC => out.extend_from_slice(&[ESC, ESC_ESC]),
            b => out.push(b),
        }
    }
    out.push(END);
    out
}

/// Turns a byte stream into frames. Bytes outside frames (a boot log printed before the
/// loader runs) are skipped.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    in_frame: bool,
    escaped: bool,
    overflow: bool,
}

impl Decoder {
    /// A decoder outside any frame.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; complete frames are appended to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<Vec<u8>>) {
        self.push_with_text(bytes, out, &mut Vec::new());
    }

    /// Like [`push`](Self::push), and bytes seen before the first frame (text the chip printed
    /// before its loader spoke: a boot log) are appended to `text`.
    pub fn push_with_text(&mut self, bytes: &[u8], out: &mut Vec<Vec<u8>>, text: &mut Vec<u8>) {
        for &b in bytes {
            if b == END {
                // As esptool's `slip_reader`: an END opens a frame, the next one closes it, and
                // what follows a closed frame is text again (the ROM banner after FLASH_END, the
                // firmware's boot log). An END on an empty frame keeps it open: a repeated END is
                // how a sender resynchronises.
                let closing = self.in_frame && (!self.buf.is_empty() || self.overflow);
                if closing && !self.overflow {
                    out.push(std::mem::take(&mut self.buf));
                }
                self.buf.clear();
                self.in_frame = !closing;
                self.escaped = false;
                self.overflow = false;
                continue;
            }
            if !self.in_frame {
                text.push(b);
                continue;
            }
            let byte = if self.escaped {
                self.escaped = false;
                match b {
                    ESC_END => END,
                    ESC_ESC => ESC,
                    other => other, // protocol error: keep the byte, the checksum/length catch it
                }
            } else if b == ESC {
                self.escaped = true;
                continue;
            } else {
                b
            };
            if self.buf.len() >= MAX_FRAME {
                self.overflow = true;
            } else {
                self.buf.push(byte);
            }
        }
    }

    /// Forgets a partial frame (after a reset).
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_round_trip() {
        let packet = [0x01, 0xC0, 0x02, 0xDB, 0x03, 0xDB, 0xDC];
        let framed = encode(&packet);
        assert_eq!(
            framed,
            [0xC0, 0x01, 0xDB, 0xDC, 0x02, 0xDB, 0xDD, 0x03, 0xDB, 0xDD, 0xDC, 0xC0]
        );
        let mut d = Decoder::new();
        let mut out = Vec::new();
        d.push(&framed, &mut out);
        assert_eq!(out, vec![packet.to_vec()]);
    }

    #[test]
    fn text_before_frames_is_skipped_and_split_input_works() {
        let mut stream = b"rst:0x1 (POWERON_RESET)\r\nwaiting for download\r\n".to_vec();
        stream.extend(encode(&[1, 2, 3]));
        stream.extend(encode(&[4]));
        let mut d = Decoder::new();
        let mut out = Vec::new();
        let mut text = Vec::new();
        for chunk in stream.chunks(3) {
            d.push_with_text(chunk, &mut out, &mut text);
        }
        assert_eq!(out, vec![vec![1, 2, 3], vec![4]]);
        assert!(String::from_utf8_lossy(&text).ends_with("waiting for download\r\n"));
    }

    #[test]
    fn text_after_a_frame_is_text_and_repeated_ends_resynchronise() {
        // The ROM answers FLASH_END, then the chip reboots and prints its banner.
        let mut stream = encode(&[7, 7]);
        stream.extend(b"rst:0xc (SW_CPU_RESET)\r\n");
        stream.extend([END, END, END]);
        stream.extend(encode(&[8]));
        let mut d = Decoder::new();
        let (mut out, mut text) = (Vec::new(), Vec::new());
        for chunk in stream.chunks(2) {
            d.push_with_text(chunk, &mut out, &mut text);
        }
        assert_eq!(out, vec![vec![7, 7], vec![8]]);
        assert_eq!(text, b"rst:0xc (SW_CPU_RESET)\r\n");
    }

    #[test]
    fn oversized_frame_is_dropped() {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        d.push(&[END], &mut out);
        d.push(&vec![0x11; MAX_FRAME + 10], &mut out);
        d.push(&[END], &mut out);
        d.push(&encode(&[9]), &mut out);
        assert_eq!(out, vec![vec![9]]);
    }

    proptest::proptest! {
        #[test]
        fn any_packet_round_trips(packet in proptest::collection::vec(proptest::num::u8::ANY, 1..600)) {
            let mut d = Decoder::new();
            let mut out = Vec::new();
            d.push(&encode(&packet), &mut out);
            proptest::prop_assert_eq!(out, vec![packet]);
        }
    }
}
