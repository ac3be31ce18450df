//! The alert rules form: what was typed, checked into overrides of config.toml's `[alerts]`, and
//! its HTML (the handlers that store and reset them are in `settings/mod.rs`).

use super::*;

/// The alert rules form as (key, value) for every [`ALERT_RULE_KEYS`] key: a switch is
/// `true` when its checkbox was sent, a number is what was typed (`""` when missing).
pub(super) fn alert_form_values(
    base: &AlertsConfig,
    form: &[(String, String)],
) -> Vec<(String, String)> {
    let sent = |key: &str| form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    ALERT_RULE_KEYS
        .iter()
        .map(|&key| {
            let value = match base.clone().rule_field(key) {
                Some(RuleField::Switch(_)) => sent(key).is_some().to_string(),
                _ => sent(key).unwrap_or_default().to_owned(),
            };
            (key.to_owned(), value)
        })
        .collect()
}

/// Checks a submitted alert rules form against config.toml's `[alerts]`; `Ok` holds the
/// overrides to store: only the keys whose value differs from config.toml's, normalised.
pub(super) fn alert_overrides(
    base: &AlertsConfig,
    values: &[(String, String)],
) -> Result<Vec<(String, String)>, String> {
    let merged = base.with_overrides(values)?;
    Ok(ALERT_RULE_KEYS
        .iter()
        .filter_map(|&key| {
            let value = merged.rule_value(key)?;
            (base.rule_value(key).as_ref() != Some(&value)).then(|| (key.to_owned(), value))
        })
        .collect())
}

/// Each field of a refused alert rules form that is wrong on its own, checked alone against
/// config.toml's `[alerts]`, with why: the error goes beside that field.
pub(super) fn alert_field_errors(
    base: &AlertsConfig,
    values: &[(String, String)],
) -> Vec<(String, String)> {
    values
        .iter()
        .filter_map(|(k, v)| {
            base.with_overrides(&[(k.clone(), v.clone())])
                .err()
                .map(|e| (k.clone(), e))
        })
        .collect()
}

/// The rules as the form groups them: title, switch key, threshold keys.
pub(super) const RULE_GROUPS: [(&str, Option<&str>, &[&str]); 11] = [
    (
        "Offline, stalled or in error",
        Some("offline"),
        &["offline_minutes"],
    ),
    (
        "Hashrate low",
        Some("hashrate"),
        &["hashrate_below_percent", "hashrate_minutes"],
    ),
    (
        "Temperature high",
        Some("temperature"),
        &["temperature_above_c"],
    ),
    ("Pool unreachable", Some("pool"), &["pool_minutes"]),
    (
        "Shares rejected",
        Some("rejects"),
        &[
            "rejects_above_percent",
            "rejects_min_shares",
            "rejects_window_minutes",
        ],
    ),
    ("Rebooted", Some("reboot"), &[]),
    (
        "Reboot storm",
        Some("reboot_storm"),
        &["reboot_storm_count", "reboot_storm_minutes"],
    ),
    ("Brown-out reset", Some("brownout"), &[]),
    ("Pool rejects worker", Some("worker_rejected"), &[]),
    ("Block found", Some("block_found"), &[]),
    ("Every rule", None, &["repeat_minutes", "clear_secs"]),
];

/// A threshold in words: the text before its field and its unit after, so a rule reads as a
/// sentence ("hashrate below [50] % for [15] min").
pub(super) fn rule_words(key: &str) -> (&'static str, &'static str) {
    match key {
        "offline_minutes" => (
            "alert when a miner is offline, stalled or in error for",
            "min",
        ),
        "hashrate_below_percent" => ("alert when hashrate is below", "% of its 24-h average"),
        "hashrate_minutes" => ("for", "min"),
        "temperature_above_c" => ("alert when temperature is above", "°C"),
        "pool_minutes" => ("alert when the pool is unreachable for", "min"),
        "rejects_above_percent" => ("alert when more than", "% of shares are rejected"),
        "rejects_min_shares" => ("once at least", "shares were sent"),
        "rejects_window_minutes" => ("within", "min"),
        "reboot_storm_count" => ("alert after", "reboots"),
        "reboot_storm_minutes" => ("within", "min"),
        "repeat_minutes" => ("repeat a notification every", "min while it lasts"),
        "clear_secs" => ("call it resolved after", "s without the problem"),
        _ => ("", ""),
    }
}

pub(super) fn alerts_form(
    base: &AlertsConfig,
    overrides: &[(String, String)],
    refused: Option<&AlertsRefused>,
) -> Markup {
    let effective = base.with_overrides(overrides);
    let shown = |key: &str| -> String {
        if let Some(r) = refused {
            if let Some((_, v)) = r.typed.iter().find(|(k, _)| k == key) {
                return v.clone();
            }
        }
        match &effective {
            Ok(e) => e.rule_value(key),
            Err(_) => base.rule_value(key),
        }
        .unwrap_or_default()
    };
    let changed = |key: &str| overrides.iter().any(|(k, _)| k == key);
    let bad = |key: &str| {
        refused
            .is_some_and(|r| r.field_errors.iter().any(|(k, _)| k == key))
            .then_some("true")
    };
    let from_toml = |key: &str| {
        html! {
            @if changed(key) {
                small.muted { " (config.toml: " (base.rule_value(key).unwrap_or_default()) ")" }
            }
        }
    };
    html! {
        @if !base.enabled {
            p.notice { "Alerts are off in config.toml (" code { "[alerts] enabled = false" } "): these rules are not evaluated." }
        }
        @if let Err(e) = &effective {
            p.notice role="alert" { "The stored changes are not in force (" (e) "): config.toml's values are used. Save or reset them." }
        }
        form method="post" action="/settings/alerts" {
            @for (title, switch, keys) in RULE_GROUPS {
                fieldset.row {
                    legend { (title) }
                    @if let Some(key) = switch {
                        label.switch title=(key) { input type="checkbox" name=(key) value="true" checked[shown(key) == "true"]; " on" (from_toml(key)) }
                    }
                    span.rule {
                        @for key in keys {
                            @let (before, unit) = rule_words(key);
                            label.words title=(key) {
                                (before) " "
                                input type="text" inputmode="decimal" name=(key) value=(shown(key)) size="5" aria-label={ (before) " (" (unit) ")" } aria-invalid=[bad(key)];
                                " " (unit) (from_toml(key))
                                @if let Some((_, e)) = refused.and_then(|r| r.field_errors.iter().find(|(k, _)| k == key)) {
                                    " " small.error.field-error role="alert" { (e) }
                                }
                            }
                        }
                    }
                }
            }
            button type="submit" { "Save alert rules" }
            @if let Some(r) = refused { p.error role="alert" { (r.message) } }
        }
        form.inline method="post" action="/settings/alerts/reset" {
            button.secondary type="submit" disabled[overrides.is_empty()] { "Reset to config.toml" }
        }
        p.muted { "Changes are stored in the database and take effect at the next evaluation; a setting left at its config.toml value follows config.toml." }
    }
}
