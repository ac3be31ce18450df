//! AxeOS answers as data: `GET /api/system/info` and `/api/system/asic` parsed into
//! [`Info`] and [`Asic`], a reading turned into the events the NerdMiner path stores, and
//! the `PATCH /api/system` body that moves a miner to another pool. Pure: no I/O.
//!
//! Field names and shapes are AxeOS's (bitaxeorg/ESP-Miner):
//! - v2.10.0 `main/http_server/http_server.c:652-700`: `hashRate` (GH/s), `bestDiff` and
//!   `bestSessionDiff` as display strings (`"270M"`, `"4.29G"`); NerdQAxe firmware below
//!   1.0.35 sends the same strings.
//! - v2.12.0 `http_server.c:821-911`: the same fields with `bestDiff`/`bestSessionDiff` as
//!   numbers (`:832-833`), `hashRate_1m`/`_10m`, `sharesAccepted`/`Rejected` (`:857-858`),
//!   `uptimeSeconds` (`:870`), `ASICModel`, `stratumURL`/`Port`/`User` (`:872-875`),
//!   `version` (`:885`), `resetReason` (`:890`), `blockFound` (`:911`).
//! - v2.15.0 `main/http_server/system_api_json.c:155-200`: `pools[]` (`id`, `stratumURL`,
//!   `stratumPort`, `stratumUser`, …) with `primaryPoolIndex`; the legacy `stratum*` fields
//!   stay for old clients, but `PATCH /api/system` only takes pools as the `pools` array
//!   (`http_server.c:924-1011`; `nvs_config.c:58`, the pool's REST name is `pools`).

use serde_json::{Map, Value};

use crate::model::event::MinerEvent;

/// What one `GET /api/system/info` said.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Info {
    /// Hashrate in GH/s (the 1-minute average where the firmware has it, else `hashRate`).
    pub hashrate_ghs: f64,
    /// ASIC temperature in °C (`temp`); AxeOS sends -1 or 0 without a sensor.
    pub temp: Option<f64>,
    /// Voltage regulator temperature (`vrTemp`).
    pub vr_temp: Option<f64>,
    /// `sharesAccepted` since boot.
    pub accepted: u64,
    /// `sharesRejected` since boot.
    pub rejected: u64,
    /// All-time best share (`bestDiff`), suffix applied.
    pub best_diff: Option<f64>,
    /// Best share since boot (`bestSessionDiff`).
    pub best_session_diff: Option<f64>,
    /// Seconds since boot.
    pub uptime_secs: Option<u64>,
    /// `resetReason`, as the firmware words it.
    pub reset_reason: Option<String>,
    /// Blocks found since boot (`blockFound`).
    pub blocks: u64,
    /// Firmware version (`version`).
    pub version: Option<String>,
    /// ASIC model (`ASICModel`, e.g. `BM1366`).
    pub asic_model: Option<String>,
    /// `hostname`.
    pub hostname: Option<String>,
    /// The pool it mines on: the primary of `pools[]` on 2.15, else `stratumURL`/`Port`.
    pub pool: Option<Pool>,
    /// The fallback pool (`fallbackStratum*`, or the secondary of `pools[]`).
    pub fallback: Option<Pool>,
    /// The firmware has the `pools[]` array (2.15 on): pool changes go through it.
    pub pools_array: bool,
    /// Index of the primary pool in `pools[]` (`primaryPoolIndex`).
    pub primary_pool_index: u64,
}

/// One stratum pool as AxeOS describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pool {
    /// Host (`stratumURL`, which holds a host, not a URL).
    pub host: String,
    /// `stratumPort`.
    pub port: u16,
    /// `stratumUser` (address.worker).
    pub user: String,
}

impl Pool {
    /// `host:port`, as the NerdMiner path names a pool.
    pub fn label(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// What `GET /api/system/asic` said (v2.12.0 `axe-os/api/system/asic_settings.c:41-45`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Asic {
    /// `ASICModel`.
    pub asic_model: Option<String>,
    /// `deviceModel` (e.g. `Gamma`, `Supra`).
    pub device_model: Option<String>,
    /// `asicCount`.
    pub asic_count: Option<u64>,
}

/// A difficulty as AxeOS sends it: a number (2.11 on), or before that (and on NerdQAxe
/// below 1.0.35) the display string its `suffix_string` makes (`"270M"`, `"4.29G"`, `"512"`).
pub fn difficulty(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64().filter(|d| d.is_finite() && *d >= 0.0),
        Value::String(s) => {
            let s = s.trim();
            let (num, mult) = match s.chars().last()? {
                'k' | 'K' => (&s[..s.len() - 1], 1e3),
                'M' => (&s[..s.len() - 1], 1e6),
                'G' => (&s[..s.len() - 1], 1e9),
                'T' => (&s[..s.len() - 1], 1e12),
                'P' => (&s[..s.len() - 1], 1e15),
                'E' => (&s[..s.len() - 1], 1e18),
                _ => (s, 1.0),
            };
            let d = num.trim().parse::<f64>().ok()? * mult;
            (d.is_finite() && d >= 0.0).then_some(d)
        }
        _ => None,
    }
}

fn num(o: &Map<String, Value>, key: &str) -> Option<f64> {
    match o.get(key)? {
        Value::Number(n) => n.as_f64().filter(|x| x.is_finite()),
        // Some forks quote numbers.
        Value::String(s) => s.trim().parse().ok().filter(|x: &f64| x.is_finite()),
        _ => None,
    }
}

fn count(o: &Map<String, Value>, key: &str) -> Option<u64> {
    num(o, key).filter(|x| *x >= 0.0).map(|x| x as u64)
}

fn text(o: &Map<String, Value>, key: &str) -> Option<String> {
    o.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "Unknown")
        .map(str::to_owned)
}

fn pool_at(o: &Map<String, Value>, prefix: &str) -> Option<Pool> {
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_owned()
        } else {
            // fallbackStratumURL: the prefix, then the name with its first letter raised.
            let mut c = k.chars();
            let first = c.next().map(|f| f.to_ascii_uppercase()).unwrap_or_default();
            format!("{prefix}{first}{}", c.as_str())
        }
    };
    let host = text(o, &key("stratumURL"))?;
    let port = count(o, &key("stratumPort"))
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(0);
    let user = text(o, &key("stratumUser")).unwrap_or_default();
    Some(Pool { host, port, user })
}

/// Parses `GET /api/system/info`; the error says what is wrong for the miner's status line.
pub fn info(body: &str) -> Result<Info, String> {
    let v: Value = serde_json::from_str(body).map_err(|e| {
        format!("its /api/system/info answer is not JSON ({e}); is this an AxeOS miner?")
    })?;
    let o = v
        .as_object()
        .ok_or("its /api/system/info answer is not a JSON object; is this an AxeOS miner?")?;
    if !o.contains_key("hashRate") {
        return Err("its /api/system/info answer has no hashRate; is this an AxeOS miner?".into());
    }
    let rate_1m = num(o, "hashRate_1m").filter(|r| *r > 0.0);
    let hashrate_ghs = rate_1m
        .or_else(|| num(o, "hashRate"))
        .unwrap_or(0.0)
        .max(0.0);
    let sensor = |k| num(o, k).filter(|t| *t > 0.0);
    let mut out = Info {
        hashrate_ghs,
        temp: sensor("temp"),
        vr_temp: sensor("vrTemp"),
        accepted: count(o, "sharesAccepted").unwrap_or(0),
        rejected: count(o, "sharesRejected").unwrap_or(0),
        best_diff: o.get("bestDiff").and_then(difficulty),
        best_session_diff: o.get("bestSessionDiff").and_then(difficulty),
        uptime_secs: count(o, "uptimeSeconds"),
        reset_reason: text(o, "resetReason"),
        blocks: count(o, "blockFound").unwrap_or(0),
        version: text(o, "version"),
        asic_model: text(o, "ASICModel"),
        hostname: text(o, "hostname"),
        pool: pool_at(o, ""),
        fallback: pool_at(o, "fallback"),
        pools_array: false,
        primary_pool_index: count(o, "primaryPoolIndex").unwrap_or(0),
    };
    if let Some(pools) = o.get("pools").and_then(Value::as_array) {
        out.pools_array = true;
        let by_id = |want: u64| {
            pools
                .iter()
                .filter_map(Value::as_object)
                .find(|p| count(p, "id") == Some(want))
        };
        if let Some(p) = by_id(out.primary_pool_index).and_then(|p| pool_at(p, "")) {
            out.pool = Some(p);
        }
        if let Some(p) = count(o, "secondaryPoolIndex")
            .and_then(by_id)
            .and_then(|p| pool_at(p, ""))
        {
            out.fallback = Some(p);
        }
    }
    Ok(out)
}

/// Parses `GET /api/system/asic` (absent before 2.12: the caller then goes without).
pub fn asic(body: &str) -> Result<Asic, String> {
    let v: Value =
        serde_json::from_str(body).map_err(|e| format!("/api/system/asic is not JSON ({e})"))?;
    let o = v
        .as_object()
        .ok_or("/api/system/asic is not a JSON object")?;
    Ok(Asic {
        asic_model: text(o, "ASICModel"),
        device_model: text(o, "deviceModel"),
        asic_count: count(o, "asicCount"),
    })
}

/// AxeOS words the ESP-IDF reset reason (v2.12.0 `http_server.c:763-779`); the summary
/// knows the ROM's names, so each is given the ROM name of the same cause.
pub fn reset_reason_rom_name(reason: &str) -> String {
    let r = reason.to_ascii_lowercase();
    let name = if r.contains("brownout") || r.contains("power glitch") {
        "BROWN_OUT_RESET"
    } else if r.contains("power-on") || r.contains("power on") {
        "POWERON_RESET"
    } else if r.contains("watchdog") {
        "TG1WDT_SYS_RESET"
    } else if r.contains("deep sleep") {
        "DEEPSLEEP_RESET"
    } else if r.contains("panic") || r.contains("exception") || r.contains("lock up") {
        "SW_CPU_RESET (panic)"
    } else if r.contains("esp_restart") || r.contains("software reset") {
        "SW_CPU_RESET"
    } else if r.contains("external pin") || r.contains("usb") || r.contains("jtag") {
        "EXT_RESET"
    } else {
        return reason.to_owned();
    };
    name.into()
}

/// GH/s to the KH/s the herd stores.
pub const KHS_PER_GHS: f64 = 1e6;

/// What changed since the previous reading, as the events the NerdMiner path stores: the
/// first reading names firmware, pool, worker and chip; uptime going back is a reboot (with
/// AxeOS's reset reason); `blockFound` travels as the valid-blocks counter.
pub fn events(prev: Option<&Info>, now: &Info, asic: Option<&Asic>) -> Vec<MinerEvent> {
    let mut out = Vec::new();
    let rebooted = match (prev.and_then(|p| p.uptime_secs), now.uptime_secs) {
        (Some(before), Some(after)) => after < before,
        _ => false,
    };
    if rebooted {
        let reason = now.reset_reason.as_deref().unwrap_or("unknown");
        let rom = reset_reason_rom_name(reason);
        if rom.contains("panic") {
            out.push(MinerEvent::Crash {
                detail: format!("AxeOS resetReason: {reason}"),
            });
        }
        out.push(MinerEvent::Boot { reset_reason: rom });
    }
    let first = prev.is_none() || rebooted;
    if first || prev.and_then(|p| p.version.as_ref()) != now.version.as_ref() {
        if let Some(v) = &now.version {
            out.push(MinerEvent::FirmwareVersion { version: v.clone() });
        }
    }
    if first {
        let model = asic
            .and_then(|a| a.asic_model.clone())
            .or_else(|| now.asic_model.clone());
        if let Some(model) = model {
            let model = match asic.and_then(|a| a.device_model.as_deref()) {
                Some(device) => format!("{model} ({device})"),
                None => model,
            };
            out.push(MinerEvent::ChipModel { model });
        }
    }
    if first || prev.and_then(|p| p.pool.as_ref()) != now.pool.as_ref() {
        if let Some(p) = &now.pool {
            out.push(MinerEvent::PoolConfigured {
                pool: p.host.clone(),
            });
            if !p.user.is_empty() {
                out.push(MinerEvent::Authorize {
                    worker: p.user.clone(),
                });
            }
        }
    }
    // `blockFound` counts since boot like a NerdMiner's `Valid blocks`: the summary takes the
    // first figure as a baseline and a rise while watched as a found block.
    out.push(MinerEvent::ValidBlocks(now.blocks));
    out.push(MinerEvent::AxeOsStats {
        hashrate_khs: now.hashrate_ghs * KHS_PER_GHS,
        accepted: now.accepted,
        rejected: now.rejected,
        best_diff: now.best_session_diff,
    });
    if let Some(t) = now.temp {
        out.push(MinerEvent::Temperature(t));
    }
    if let Some(secs) = now.uptime_secs {
        out.push(MinerEvent::TimeMining { secs });
    }
    out
}

/// The line stored in the raw log for a reading, so the logs page shows what was read.
pub fn status_line(i: &Info) -> String {
    let mut line = format!(
        "[axeos] hashRate {:.2} GH/s | shares {}/{} | bestSessionDiff {} | uptime {}s",
        i.hashrate_ghs,
        i.accepted,
        i.accepted + i.rejected,
        i.best_session_diff
            .map_or("-".into(), |d| format!("{d:.0}")),
        i.uptime_secs.unwrap_or(0),
    );
    if let Some(t) = i.temp {
        line.push_str(&format!(" | temp {t:.1}"));
    }
    if let Some(p) = &i.pool {
        line.push_str(&format!(" | pool {}", p.label()));
    }
    line
}

/// The `PATCH /api/system` body that puts the miner on a pool, from the NerdMiner
/// configuration keys the fleet tools write (`poolString`, `portNumber`, `poolPassword`,
/// `btcString`): the `pools` array on 2.15 (the primary's `id`), the `stratum*` fields before.
/// Keys that mean nothing to AxeOS are refused by name rather than dropped.
pub fn pool_patch(info: &Info, change: &Map<String, Value>) -> Result<Value, String> {
    let mut pool = Map::new();
    for (k, v) in change {
        let (field, value) = match k.as_str() {
            "poolString" => {
                let host = v.as_str().ok_or("poolString must be text")?.trim();
                let host = host.strip_prefix("stratum+tcp://").unwrap_or(host);
                ("stratumURL", Value::from(host))
            }
            "portNumber" => {
                let port = v
                    .as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .filter(|p| (1..=65535).contains(p))
                    .ok_or("portNumber must be a port from 1 to 65535")?;
                ("stratumPort", Value::from(port))
            }
            "poolPassword" => ("stratumPassword", v.clone()),
            "btcString" => ("stratumUser", v.clone()),
            // How to reach a serial board's loader: nothing to do over HTTP.
            "no_reset" => continue,
            other => {
                return Err(format!(
                    "{other} is a NerdMiner setting an AxeOS miner does not have (pool changes \
                     only: poolString, portNumber, poolPassword, btcString)"
                ))
            }
        };
        pool.insert(field.into(), value);
    }
    if pool.is_empty() {
        return Err(
            "nothing to change: give poolString, portNumber, poolPassword or btcString".into(),
        );
    }
    Ok(if info.pools_array {
        pool.insert("id".into(), info.primary_pool_index.into());
        serde_json::json!({ "pools": [Value::Object(pool)] })
    } else {
        Value::Object(pool)
    })
}

/// Whether an IPv4 address is one AxeOS takes settings from (`ip_in_private_range`,
/// `http_server.c:233-253` at 5c277131): 10/8, 172.16/12, 192.168/16.
pub fn axeos_private(ip: std::net::Ipv4Addr) -> bool {
    let o = ip.octets();
    o[0] == 10 || (o[0] == 172 && (16..=31).contains(&o[1])) || (o[0] == 192 && o[1] == 168)
}

/// The sentence for AxeOS's `401 Unauthorized` on a write (`is_network_allowed`,
/// `http_server.c:310-429`).
pub const REFUSED_NOT_PRIVATE: &str = "the miner refused (401): AxeOS only accepts settings, \
    restart and identify from private addresses (10.x, 172.16-31.x, 192.168.x) — run shepherd \
    on the miner's LAN, not through a VPN, proxy or public address";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn difficulties_as_numbers_and_display_strings() {
        assert_eq!(difficulty(&json!(270_000_000u64)), Some(270e6));
        assert_eq!(difficulty(&json!("270M")), Some(270e6));
        assert_eq!(difficulty(&json!("4.29G")), Some(4.29e9));
        assert_eq!(difficulty(&json!("1.5k")), Some(1500.0));
        assert_eq!(difficulty(&json!("512")), Some(512.0));
        assert_eq!(difficulty(&json!("12.3T")), Some(12.3e12));
        assert_eq!(difficulty(&json!("")), None);
        assert_eq!(difficulty(&json!("lots")), None);
        assert_eq!(difficulty(&json!(-1)), None);
        assert_eq!(difficulty(&json!(null)), None);
    }

    fn v210() -> &'static str {
        r#"{"power":11.2,"temp":52.5,"vrTemp":0,"hashRate":486.3,"bestDiff":"270.00 M",
            "bestSessionDiff":"4.29 G","sharesAccepted":120,"sharesRejected":2,
            "uptimeSeconds":3600,"ASICModel":"BM1366","stratumURL":"public-pool.io",
            "stratumPort":21496,"stratumUser":"bc1qexample.axe","fallbackStratumURL":"solo.ckpool.org",
            "fallbackStratumPort":3333,"fallbackStratumUser":"bc1qexample","version":"v2.10.0",
            "hostname":"bitaxe","blockFound":0}"#
    }

    #[test]
    fn version_2_10_strings() {
        let i = info(v210()).unwrap();
        assert_eq!(i.hashrate_ghs, 486.3);
        assert_eq!(i.best_diff, Some(270e6));
        assert_eq!(i.best_session_diff, Some(4.29e9));
        assert_eq!(i.temp, Some(52.5));
        assert_eq!(i.vr_temp, None, "0 is no sensor");
        assert_eq!((i.accepted, i.rejected), (120, 2));
        assert_eq!(i.pool.as_ref().unwrap().label(), "public-pool.io:21496");
        assert_eq!(i.fallback.as_ref().unwrap().host, "solo.ckpool.org");
        assert!(!i.pools_array);
    }

    #[test]
    fn version_2_12_numbers_and_one_minute_average() {
        let i = info(
            r#"{"hashRate":1020.5,"hashRate_1m":1001.0,"hashRate_10m":990,"bestDiff":270000000,
                "bestSessionDiff":12345678.9,"sharesAccepted":5,"sharesRejected":0,
                "uptimeSeconds":60,"resetReason":"Reset due to power-on event","blockFound":1}"#,
        )
        .unwrap();
        assert_eq!(i.hashrate_ghs, 1001.0);
        assert_eq!(i.best_diff, Some(270e6));
        assert_eq!(i.blocks, 1);
        assert_eq!(
            reset_reason_rom_name(i.reset_reason.as_deref().unwrap()),
            "POWERON_RESET"
        );
    }

    #[test]
    fn version_2_15_pools_array_wins_over_legacy_fields() {
        let i = info(
            r#"{"hashRate":1.0,"primaryPoolIndex":1,"secondaryPoolIndex":0,
                "pools":[{"id":0,"stratumURL":"a.example","stratumPort":1,"stratumUser":"u0"},
                         {"id":1,"stratumURL":"b.example","stratumPort":2,"stratumUser":"u1"}],
                "stratumURL":"stale.example","stratumPort":9}"#,
        )
        .unwrap();
        assert!(i.pools_array);
        assert_eq!(i.pool.as_ref().unwrap().label(), "b.example:2");
        assert_eq!(i.fallback.as_ref().unwrap().label(), "a.example:1");
        let mut change = Map::new();
        change.insert("poolString".into(), json!("stratum+tcp://pool.example"));
        change.insert("portNumber".into(), json!(3333));
        assert_eq!(
            pool_patch(&i, &change).unwrap(),
            json!({"pools":[{"stratumURL":"pool.example","stratumPort":3333,"id":1}]})
        );
    }

    #[test]
    fn legacy_pool_patch_and_refusals() {
        let i = info(v210()).unwrap();
        let mut change = Map::new();
        change.insert("poolString".into(), json!("pool.example"));
        change.insert("btcString".into(), json!("bc1qx.w"));
        assert_eq!(
            pool_patch(&i, &change).unwrap(),
            json!({"stratumURL":"pool.example","stratumUser":"bc1qx.w"})
        );
        change.insert("timezone".into(), json!(2));
        assert!(pool_patch(&i, &change).unwrap_err().contains("timezone"));
        assert!(pool_patch(&i, &Map::new()).is_err());
        let mut bad = Map::new();
        bad.insert("portNumber".into(), json!(0));
        assert!(pool_patch(&i, &bad).is_err());
    }

    #[test]
    fn garbage_is_a_sentence_not_a_panic() {
        for body in ["", "<html>", "[1,2]", "{\"x\":1}", "{\"hashRate\":"] {
            assert!(info(body).unwrap_err().contains("AxeOS"), "{body}");
        }
        // Wrong types are skipped, not fatal.
        let i = info(r#"{"hashRate":"fast","sharesAccepted":-3,"temp":"hot"}"#).unwrap();
        assert_eq!((i.hashrate_ghs, i.accepted, i.temp), (0.0, 0, None));
    }

    #[test]
    fn events_name_the_miner_once_and_see_reboots_and_blocks() {
        let a = info(v210()).unwrap();
        let asic = Asic {
            asic_model: Some("BM1366".into()),
            device_model: Some("Ultra".into()),
            asic_count: Some(1),
        };
        let first = events(None, &a, Some(&asic));
        assert!(first.contains(&MinerEvent::FirmwareVersion {
            version: "v2.10.0".into()
        }));
        assert!(first.contains(&MinerEvent::ChipModel {
            model: "BM1366 (Ultra)".into()
        }));
        assert!(first.contains(&MinerEvent::PoolConfigured {
            pool: "public-pool.io".into()
        }));
        assert!(first.contains(&MinerEvent::AxeOsStats {
            hashrate_khs: 486.3e6,
            accepted: 120,
            rejected: 2,
            best_diff: Some(4.29e9),
        }));
        assert!(first.contains(&MinerEvent::ValidBlocks(0)));
        let mut b = a.clone();
        b.uptime_secs = Some(3610);
        b.blocks = 1;
        let next = events(Some(&a), &b, None);
        assert!(next.contains(&MinerEvent::ValidBlocks(1)));
        assert!(!next
            .iter()
            .any(|e| matches!(e, MinerEvent::FirmwareVersion { .. })));
        let mut c = b.clone();
        c.uptime_secs = Some(5);
        c.reset_reason = Some("Software reset due to exception/panic".into());
        let boot = events(Some(&b), &c, None);
        assert!(matches!(boot[0], MinerEvent::Crash { .. }));
        assert!(boot.contains(&MinerEvent::Boot {
            reset_reason: "SW_CPU_RESET (panic)".into()
        }));
    }

    #[test]
    fn private_ranges_are_axeos_ones() {
        assert!(axeos_private([10, 1, 2, 3].into()));
        assert!(axeos_private([172, 31, 0, 1].into()));
        assert!(axeos_private([192, 168, 1, 1].into()));
        assert!(!axeos_private([172, 32, 0, 1].into()));
        assert!(!axeos_private([127, 0, 0, 1].into()));
        assert!(!axeos_private([100, 64, 0, 1].into()));
    }
}
