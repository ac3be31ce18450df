//! Which parsed events are worth a database row. Boards without a display repeat their whole
//! status block every second; storing an unchanged temperature 86,400 times a day says
//! nothing new and costs most of ingest's disk writes. Changes are always kept, so every
//! value the miner reported is still in `miner_events`.

use crate::model::event::MinerEvent;

/// Remembers the last stored value of each repeating gauge of one miner.
#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    valid_blocks: Option<u64>,
    templates: Option<u64>,
    best: Option<f64>,
    shares32: Option<u64>,
    temperature: Option<f64>,
    mhashes: Option<f64>,
    status: Option<MinerEvent>,
    uptime_seen: Option<u64>,
    uptime_kept: Option<u64>,
}

/// Uptime is stored at most this often (seconds); the summarizer extrapolates in between.
pub const UPTIME_EVERY_SECS: u64 = 60;

fn changed<T: PartialEq + Copy>(slot: &mut Option<T>, value: T) -> bool {
    let keep = *slot != Some(value);
    *slot = Some(value);
    keep
}

impl EventFilter {
    /// Whether `event` should be stored.
    pub fn keep(&mut self, event: &MinerEvent) -> bool {
        match event {
            MinerEvent::ValidBlocks(n) => changed(&mut self.valid_blocks, *n),
            MinerEvent::BlockTemplates(n) => changed(&mut self.templates, *n),
            MinerEvent::BestDifficulty(d) => changed(&mut self.best, *d),
            MinerEvent::Shares32Bit(n) => changed(&mut self.shares32, *n),
            MinerEvent::Temperature(t) => changed(&mut self.temperature, *t),
            MinerEvent::TotalMHashes(m) => changed(&mut self.mhashes, *m),
            MinerEvent::MinerStatus { .. } => {
                let keep = self.status.as_ref() != Some(event);
                self.status = Some(event.clone());
                keep
            }
            MinerEvent::TimeMining { secs } => {
                let went_back = self.uptime_seen.is_some_and(|s| *secs < s);
                self.uptime_seen = Some(*secs);
                let due = self
                    .uptime_kept
                    .is_none_or(|k| secs.saturating_sub(k) >= UPTIME_EVERY_SECS);
                if went_back || due {
                    self.uptime_kept = Some(*secs);
                }
                went_back || due
            }
            MinerEvent::Boot { .. } | MinerEvent::Starting => {
                // A reboot resets the firmware's counters: store the first values after it.
                *self = Self::default();
                true
            }
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MinerEvent as E;

    #[test]
    fn unchanged_gauges_are_skipped_changes_kept() {
        let mut f = EventFilter::default();
        assert!(f.keep(&E::Temperature(47.0)));
        assert!(!f.keep(&E::Temperature(47.0)));
        assert!(f.keep(&E::Temperature(48.0)));
        assert!(f.keep(&E::ValidBlocks(0)));
        assert!(!f.keep(&E::ValidBlocks(0)));
        assert!(f.keep(&E::BestDifficulty(0.5)));
        assert!(!f.keep(&E::BestDifficulty(0.5)));
    }

    #[test]
    fn progress_and_pool_events_are_always_kept() {
        let mut f = EventFilter::default();
        let p = E::Progress {
            shares: 0,
            khashes: 1,
            hashrate_khs: 50.0,
        };
        assert!(f.keep(&p));
        assert!(f.keep(&p));
        assert!(f.keep(&E::BlockFound));
        assert!(f.keep(&E::BlockFound));
    }

    #[test]
    fn uptime_once_a_minute_and_on_reboot() {
        let mut f = EventFilter::default();
        assert!(f.keep(&E::TimeMining { secs: 100 }));
        assert!(!f.keep(&E::TimeMining { secs: 101 }));
        assert!(!f.keep(&E::TimeMining { secs: 159 }));
        assert!(f.keep(&E::TimeMining { secs: 160 }));
        assert!(
            f.keep(&E::TimeMining { secs: 3 }),
            "going backwards is a reboot"
        );
    }

    #[test]
    fn reboot_resets_so_first_values_after_it_are_stored() {
        let mut f = EventFilter::default();
        assert!(f.keep(&E::Temperature(47.0)));
        assert!(f.keep(&E::Starting));
        assert!(f.keep(&E::Temperature(47.0)));
    }
}
