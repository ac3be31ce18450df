//! The `[alerts]` keys the owner may also change on `/settings` (stored as overrides in the
//! database, see `db::alert_settings`): reading and setting them as text, and the checks an
//! override passes before it replaces config.toml's value.

use super::AlertsConfig;

/// The `[alerts]` keys the owner may also change on `/settings`: each rule's switch and
/// thresholds, and the repeat/clear timings (not evaluation or delivery settings).
pub const ALERT_RULE_KEYS: [&str; 22] = [
    "offline",
    "offline_minutes",
    "hashrate",
    "hashrate_below_percent",
    "hashrate_minutes",
    "temperature",
    "temperature_above_c",
    "pool",
    "pool_minutes",
    "rejects",
    "rejects_above_percent",
    "rejects_min_shares",
    "rejects_window_minutes",
    "reboot",
    "block_found",
    "worker_rejected",
    "reboot_storm",
    "reboot_storm_count",
    "reboot_storm_minutes",
    "brownout",
    "repeat_minutes",
    "clear_secs",
];

/// One of the [`ALERT_RULE_KEYS`] fields, by kind, for reading and setting it as text.
#[derive(Debug)]
pub enum RuleField<'a> {
    /// A rule's on/off switch.
    Switch(&'a mut bool),
    /// A whole number (minutes, seconds, shares).
    Whole(&'a mut u64),
    /// A number with decimals (percent, °C).
    Real(&'a mut f64),
}

/// Highest temperature threshold accepted (°C); an ESP32 is specified to 105.
const MAX_TEMPERATURE_C: f64 = 150.0;

/// Longest rule delay or window accepted: a year, in minutes (and as seconds for `clear_secs`).
const MAX_RULE_MINUTES: u64 = 366 * 24 * 60;

impl AlertsConfig {
    /// The field named `key` (one of [`ALERT_RULE_KEYS`]), `None` for any other name.
    pub fn rule_field(&mut self, key: &str) -> Option<RuleField<'_>> {
        use RuleField::{Real, Switch, Whole};
        Some(match key {
            "offline" => Switch(&mut self.offline),
            "offline_minutes" => Whole(&mut self.offline_minutes),
            "hashrate" => Switch(&mut self.hashrate),
            "hashrate_below_percent" => Real(&mut self.hashrate_below_percent),
            "hashrate_minutes" => Whole(&mut self.hashrate_minutes),
            "temperature" => Switch(&mut self.temperature),
            "temperature_above_c" => Real(&mut self.temperature_above_c),
            "pool" => Switch(&mut self.pool),
            "pool_minutes" => Whole(&mut self.pool_minutes),
            "rejects" => Switch(&mut self.rejects),
            "rejects_above_percent" => Real(&mut self.rejects_above_percent),
            "rejects_min_shares" => Whole(&mut self.rejects_min_shares),
            "rejects_window_minutes" => Whole(&mut self.rejects_window_minutes),
            "reboot" => Switch(&mut self.reboot),
            "block_found" => Switch(&mut self.block_found),
            "worker_rejected" => Switch(&mut self.worker_rejected),
            "reboot_storm" => Switch(&mut self.reboot_storm),
            "reboot_storm_count" => Whole(&mut self.reboot_storm_count),
            "reboot_storm_minutes" => Whole(&mut self.reboot_storm_minutes),
            "brownout" => Switch(&mut self.brownout),
            "repeat_minutes" => Whole(&mut self.repeat_minutes),
            "clear_secs" => Whole(&mut self.clear_secs),
            _ => return None,
        })
    }

    /// The value of rule key `key` as text (`true`/`false` or the number), `None` if unknown.
    pub fn rule_value(&self, key: &str) -> Option<String> {
        let mut copy = self.clone();
        Some(match copy.rule_field(key)? {
            RuleField::Switch(v) => v.to_string(),
            RuleField::Whole(v) => v.to_string(),
            RuleField::Real(v) => v.to_string(),
        })
    }

    /// Sets rule key `key` from text; `Err` says which key and why (not yet range-checked:
    /// see [`AlertsConfig::validate_rules`]).
    pub fn set_rule(&mut self, key: &str, value: &str) -> Result<(), String> {
        let v = value.trim();
        match self.rule_field(key) {
            None => Err(format!("alerts.{key} is not an alert rule setting")),
            Some(RuleField::Switch(f)) => {
                *f = v
                    .parse()
                    .map_err(|_| format!("alerts.{key} must be true or false, not {v:?}"))?;
                Ok(())
            }
            Some(RuleField::Whole(f)) => {
                *f = v.parse().map_err(|_| {
                    format!("alerts.{key} must be a whole number of 0 or more, not {v:?}")
                })?;
                Ok(())
            }
            Some(RuleField::Real(f)) => {
                *f = v
                    .parse()
                    .map_err(|_| format!("alerts.{key} must be a number, not {v:?}"))?;
                Ok(())
            }
        }
    }

    /// These settings with `overrides` (key, value as text) applied, then checked as
    /// `config.toml` is: the effective rules when the owner changed some on `/settings`.
    pub fn with_overrides(&self, overrides: &[(String, String)]) -> Result<Self, String> {
        let mut merged = self.clone();
        for (key, value) in overrides {
            merged.set_rule(key, value)?;
        }
        merged.validate_rules()?;
        Ok(merged)
    }

    /// Checks the rule thresholds, for `config.toml` and for changes made on `/settings`.
    pub fn validate_rules(&self) -> Result<(), String> {
        for (key, v) in [
            ("hashrate_below_percent", self.hashrate_below_percent),
            ("rejects_above_percent", self.rejects_above_percent),
        ] {
            if !(0.0..=100.0).contains(&v) {
                return Err(format!("alerts.{key} must be from 0 to 100"));
            }
        }
        if !(-MAX_TEMPERATURE_C..=MAX_TEMPERATURE_C).contains(&self.temperature_above_c) {
            return Err(format!(
                "alerts.temperature_above_c must be from -{MAX_TEMPERATURE_C} to {MAX_TEMPERATURE_C}"
            ));
        }
        for (key, v) in [
            ("offline_minutes", self.offline_minutes),
            ("hashrate_minutes", self.hashrate_minutes),
            ("pool_minutes", self.pool_minutes),
            ("rejects_window_minutes", self.rejects_window_minutes),
            ("reboot_storm_minutes", self.reboot_storm_minutes),
            ("repeat_minutes", self.repeat_minutes),
        ] {
            if v > MAX_RULE_MINUTES {
                return Err(format!(
                    "alerts.{key} must be at most {MAX_RULE_MINUTES} (a year)"
                ));
            }
        }
        if !(2..=1000).contains(&self.reboot_storm_count) {
            return Err("alerts.reboot_storm_count must be from 2 to 1000".into());
        }
        if self.clear_secs > MAX_RULE_MINUTES * 60 {
            return Err(format!(
                "alerts.clear_secs must be at most {} (a year)",
                MAX_RULE_MINUTES * 60
            ));
        }
        Ok(())
    }
}
