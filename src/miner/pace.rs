//! When a reader pauses to let bytes collect in the kernel, and when it must not.
//!
//! A miner at 115200 baud delivers about 11.5 KB a second, and USB-serial adapters hand it
//! over a few bytes at a time: a reader that woke for every packet would wake hundreds of
//! times a second per miner. After a small read it therefore pauses for [`COALESCE`] and lets
//! the kernel collect the next 2.3 KB. But a small read also happens on a port that runs
//! far faster (a flood, a faster baud rate) whenever the reader has just caught up: pausing
//! there leaves the kernel's buffer full and the writer blocked (a pseudo-terminal) or losing
//! bytes (a UART) for most of the pause. So the pause is allowed only while the port's rate,
//! measured over about a second, stays within what one pause can collect without filling a
//! read — a serial line's trickle.

use std::time::{Duration, Instant};

/// Reads smaller than this are a trickle worth letting accumulate; bigger ones mean data is
/// flowing fast (a burst, a long line) and the reader must keep up at full speed. It sits
/// below the 4 KiB a terminal hands over at most per read, so a port that fills that buffer
/// is never paused.
pub const COALESCE_BELOW: usize = 3072;

/// Pause after a small read. Lines wait at most this long before they are framed, under the
/// batch interval; the kernel holds far more than a trickle delivers meanwhile (4 KiB in the
/// line discipline, up to 64 KiB more in the driver's buffers).
pub const COALESCE: Duration = Duration::from_millis(200);

/// The fastest port that still counts as a trickle: what one pause may collect before its
/// read is no longer small (15 KB/s; 115200 baud carries 11.5 KB/s).
const TRICKLE_BYTES_PER_SEC: u64 = COALESCE_BELOW as u64 * 1000 / COALESCE.as_millis() as u64;

/// How long the rate is measured over before it is judged again.
const WINDOW: Duration = Duration::from_secs(1);

/// One port's recent rate, and whether it allows pausing.
#[derive(Debug, Clone)]
pub struct Pace {
    window_start: Instant,
    window_bytes: u64,
    fast: bool,
}

impl Pace {
    /// A port just opened: a trickle until it shows otherwise.
    pub fn new(now: Instant) -> Self {
        Self {
            window_start: now,
            window_bytes: 0,
            fast: false,
        }
    }

    /// Counts a read of `n` bytes at `now` (0 for a read that timed out) and says whether the
    /// reader should pause before its next read.
    pub fn after_read(&mut self, n: usize, now: Instant) -> bool {
        self.window_bytes += n as u64;
        let elapsed = now.saturating_duration_since(self.window_start);
        let allowed = |over: Duration| TRICKLE_BYTES_PER_SEC * over.as_millis() as u64 / 1000;
        if self.window_bytes > allowed(elapsed.max(WINDOW)) {
            // Already more than a trickle brings in a whole window: fast from now on.
            self.fast = true;
        } else if elapsed >= WINDOW {
            // A window ended within the trickle's budget.
            self.fast = false;
        }
        if elapsed >= WINDOW {
            self.window_start = now;
            self.window_bytes = 0;
        }
        n > 0 && n < COALESCE_BELOW && !self.fast
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds reads of `n` bytes every `every` for `seconds`; returns how many pauses were
    /// asked for in the last second.
    fn run(pace: &mut Pace, start: Instant, n: usize, every: Duration, seconds: u64) -> usize {
        let mut at = start;
        let mut pauses_last_second = 0;
        while at < start + Duration::from_secs(seconds) {
            let pause = pace.after_read(n, at);
            if at >= start + Duration::from_secs(seconds - 1) && pause {
                pauses_last_second += 1;
            }
            at += every;
        }
        pauses_last_second
    }

    #[test]
    fn a_full_speed_serial_line_keeps_pausing() {
        // 115200 baud after each 200 ms pause: 2304 bytes a read, five reads a second.
        let t0 = Instant::now();
        let mut pace = Pace::new(t0);
        assert_eq!(run(&mut pace, t0, 2304, COALESCE, 30), 5);
    }

    #[test]
    fn a_flood_stops_the_pauses_at_once_and_they_return_when_it_ends() {
        let t0 = Instant::now();
        let mut pace = Pace::new(t0);
        // A flood read after one pause: 8 KiB, then small reads as the reader catches up.
        assert!(!pace.after_read(8192, t0));
        assert!(!pace.after_read(8192, t0 + Duration::from_millis(1)));
        assert!(
            !pace.after_read(100, t0 + Duration::from_millis(2)),
            "a small read in a flood must not pause"
        );
        assert_eq!(
            run(
                &mut pace,
                t0 + Duration::from_millis(3),
                1000,
                Duration::from_millis(1),
                3
            ),
            0,
            "1 MB/s of small reads never pauses"
        );
        // The flood ends: the next window at a trickle pauses again.
        let later = t0 + Duration::from_secs(3);
        assert!(run(&mut pace, later, 2304, COALESCE, 3) > 0);
    }

    #[test]
    fn reads_that_time_out_end_a_fast_window() {
        let t0 = Instant::now();
        let mut pace = Pace::new(t0);
        pace.after_read(64 * 1024, t0);
        assert!(!pace.after_read(10, t0 + Duration::from_millis(500)));
        // Silence: timeouts (0 bytes) for over a window.
        assert!(!pace.after_read(0, t0 + Duration::from_millis(1100)));
        assert!(!pace.after_read(0, t0 + Duration::from_millis(2200)));
        assert!(pace.after_read(10, t0 + Duration::from_millis(2300)));
    }

    #[test]
    fn big_reads_never_pause() {
        let t0 = Instant::now();
        let mut pace = Pace::new(t0);
        assert!(!pace.after_read(COALESCE_BELOW, t0));
        assert!(pace.after_read(COALESCE_BELOW - 1, t0 + WINDOW * 2));
    }
}
