//! Lines of one miner on their way from its reader to the database, packed.
//!
//! A miner at full speed prints thousands of lines a second. Kept as one `String` and one
//! event list per line, every line cost an allocation on the reader's thread and a free on
//! the writer's, and with a hundred reader threads sharing glibc's few arenas the allocator
//! became the largest cost of ingest. A batch holds all its text in one buffer and all its
//! events in one list instead: a handful of allocations per batch, whatever its size.

use super::event::MinerEvent;

/// Where one line of a [`LineBatch`] ends in its buffers.
#[derive(Debug, Clone, Copy)]
struct Mark {
    ts: i64,
    text_end: usize,
    events_end: usize,
    truncated: bool,
}

/// Lines of one miner, oldest first, with what the parser found in each.
#[derive(Debug, Clone, Default)]
pub struct LineBatch {
    text: String,
    marks: Vec<Mark>,
    events: Vec<MinerEvent>,
}

/// One line of a batch, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchLine<'a> {
    /// When it was read (Unix ms).
    pub ts: i64,
    /// The text, without its line terminator.
    pub text: &'a str,
    /// It was longer than the framing limit and was cut.
    pub truncated: bool,
    /// What the parser found in it (usually nothing or one event).
    pub events: &'a [MinerEvent],
}

impl LineBatch {
    /// An empty batch with room for `lines` lines of about `bytes` text in all, so that
    /// filling it does not grow it step by step.
    pub fn with_capacity(lines: usize, bytes: usize) -> Self {
        Self {
            text: String::with_capacity(bytes),
            marks: Vec::with_capacity(lines),
            events: Vec::new(),
        }
    }

    /// Appends a line and moves `events` (what the parser found in it) into the batch,
    /// leaving `events` empty with its capacity: a reader reuses one list for every line.
    pub fn push(&mut self, ts: i64, text: &str, truncated: bool, events: &mut Vec<MinerEvent>) {
        self.text.push_str(text);
        self.events.append(events);
        self.marks.push(Mark {
            ts,
            text_end: self.text.len(),
            events_end: self.events.len(),
            truncated,
        });
    }

    /// Lines in the batch.
    pub fn len(&self) -> usize {
        self.marks.len()
    }

    /// No lines.
    pub fn is_empty(&self) -> bool {
        self.marks.is_empty()
    }

    /// Bytes of text held.
    pub fn text_bytes(&self) -> usize {
        self.text.len()
    }

    /// The lines, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = BatchLine<'_>> + '_ {
        let mut text_start = 0;
        let mut events_start = 0;
        self.marks.iter().map(move |m| {
            let line = BatchLine {
                ts: m.ts,
                text: self.text.get(text_start..m.text_end).unwrap_or(""),
                truncated: m.truncated,
                events: self.events.get(events_start..m.events_end).unwrap_or(&[]),
            };
            text_start = m.text_end;
            events_start = m.events_end;
            line
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_their_events_come_back_in_order() {
        let mut b = LineBatch::with_capacity(4, 64);
        let mut events = vec![MinerEvent::ValidBlocks(0), MinerEvent::Shares32Bit(2)];
        b.push(1, "first", false, &mut events);
        assert!(events.is_empty(), "the events moved into the batch");
        b.push(2, "", false, &mut events);
        events.push(MinerEvent::Temperature(40.0));
        b.push(3, "third é", true, &mut events);
        let lines: Vec<BatchLine<'_>> = b.iter().collect();
        assert_eq!(b.len(), 3);
        assert_eq!(b.text_bytes(), "first".len() + "third é".len());
        assert_eq!(lines[0].text, "first");
        assert_eq!(
            lines[0].events,
            [MinerEvent::ValidBlocks(0), MinerEvent::Shares32Bit(2)]
        );
        assert_eq!(
            (lines[1].ts, lines[1].text, lines[1].events),
            (2, "", &[][..])
        );
        assert_eq!(lines[2].text, "third é");
        assert!(lines[2].truncated && !lines[0].truncated);
        assert_eq!(lines[2].events, [MinerEvent::Temperature(40.0)]);
    }

    #[test]
    fn an_empty_batch_has_no_lines() {
        let b = LineBatch::default();
        assert!(b.is_empty());
        assert_eq!(b.iter().count(), 0);
    }
}
