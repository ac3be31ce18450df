//! The messages sites exchange on MQTT (schema 1, `docs/mqtt-schema.md`) as pure data:
//! topic parsing, a site's freshness, the hub's gaps. Publishing is [`crate::mqtt`], the
//! `--hub` subscriber [`crate::hub`], the SQL `crate::db::hub`.

use serde_json::Value;

/// Version of the JSON documents (`"schema"` in every one); a hub ignores newer ones.
pub const SCHEMA: u64 = 1;

/// Event kinds published on `<prefix>/<site>/events/<kind>`.
pub const EVENT_KINDS: [&str; 3] = ["record", "block", "incident"];

/// A site name made safe as one MQTT topic level: trimmed, lower-case, and `/ + #`, spaces
/// and control characters replaced by `-` ("shepherd" when nothing is left).
pub fn site_segment(raw: &str) -> String {
    let s: String = raw
        .trim()
        .chars()
        .map(|c| {
            if matches!(c, '/' | '+' | '#') || c.is_whitespace() || c.is_control() {
                '-'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    if s.is_empty() {
        "shepherd".into()
    } else {
        s
    }
}

/// One message from a site, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// `<site>/status`: `online` / `offline` (the last will).
    Status(bool),
    /// `<site>/site`: where its own Shepherd is, and its version.
    Site {
        /// Its `[site] url`, if it publishes one.
        url: Option<String>,
        /// Program version.
        version: Option<String>,
    },
    /// `<site>/herd/state`: the site's totals.
    Herd(Value),
    /// `<site>/miners/<id>/state`: one miner's state document.
    Miner {
        /// The miner's id at its site.
        id: i64,
        /// Its name.
        name: String,
        /// When the site published it (Unix ms).
        at: Option<i64>,
        /// The document.
        doc: Value,
    },
    /// An empty retained state: the miner was removed at its site.
    MinerGone(i64),
    /// `<site>/events/<kind>`: a record, block or incident.
    Event {
        /// `record`, `block` or `incident`.
        kind: String,
        /// Its id at the site (unique per site and kind).
        id: i64,
        /// When it happened (Unix ms).
        at: i64,
        /// Which miner.
        miner: Option<String>,
        /// The document.
        doc: Value,
    },
}

/// Why a message was not taken.
#[derive(Debug, Clone, PartialEq)]
pub enum Skip {
    /// Not a topic of the schema (Home Assistant discovery, alerts, another program).
    NotOurs,
    /// A document of a newer schema than this Shepherd reads.
    NewerSchema(u64),
    /// Malformed JSON or a missing field.
    Malformed(String),
}

/// Parses a message on `topic` under `prefix`: the site and what it says.
pub fn parse(prefix: &str, topic: &str, payload: &[u8]) -> Result<(String, Incoming), Skip> {
    let rest = topic
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or(Skip::NotOurs)?;
    let parts: Vec<&str> = rest.split('/').collect();
    let site = match parts.first() {
        Some(s) if !s.is_empty() => (*s).to_owned(),
        _ => return Err(Skip::NotOurs),
    };
    let doc = || -> Result<Value, Skip> {
        let v: Value = serde_json::from_slice(payload)
            .map_err(|e| Skip::Malformed(format!("{topic}: {e}")))?;
        match v.get("schema").and_then(Value::as_u64) {
            Some(n) if n > SCHEMA => Err(Skip::NewerSchema(n)),
            Some(_) => Ok(v),
            None => Err(Skip::Malformed(format!("{topic}: no \"schema\""))),
        }
    };
    let incoming = match parts[1..] {
        ["status"] => match payload {
            b"online" => Incoming::Status(true),
            b"offline" => Incoming::Status(false),
            _ => return Err(Skip::Malformed(format!("{topic}: not online/offline"))),
        },
        ["site"] => {
            let v = doc()?;
            let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
            Incoming::Site {
                url: text("url").filter(|u| u.starts_with("http")),
                version: text("version"),
            }
        }
        ["herd", "state"] => Incoming::Herd(doc()?),
        ["miners", id, "state"] => {
            let id: i64 = id.parse().map_err(|_| Skip::NotOurs)?;
            if payload.is_empty() {
                Incoming::MinerGone(id)
            } else {
                let v = doc()?;
                Incoming::Miner {
                    id,
                    name: v
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    at: v.get("at").and_then(Value::as_i64),
                    doc: v,
                }
            }
        }
        ["events", kind] if EVENT_KINDS.contains(&kind) => {
            let v = doc()?;
            let field = |k: &str| {
                v.get(k)
                    .and_then(Value::as_i64)
                    .ok_or_else(|| Skip::Malformed(format!("{topic}: no \"{k}\"")))
            };
            Incoming::Event {
                kind: kind.to_owned(),
                id: field("id")?,
                at: field("at")?,
                miner: v.get("miner").and_then(Value::as_str).map(str::to_owned),
                doc: v,
            }
        }
        _ => return Err(Skip::NotOurs),
    };
    Ok((site, incoming))
}

/// How a site is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Freshness {
    /// Online and heard from lately: its figures are live.
    Live,
    /// Says online but nothing came for `stale_secs` (a broken bridge): figures are old.
    Stale,
    /// Its Shepherd said goodbye or its last will fired: figures are as of `last_heard`.
    Offline,
}

/// A site's freshness from its status and when it was last heard from.
pub fn freshness(online: bool, last_heard: i64, now: i64, stale_ms: i64) -> Freshness {
    if !online {
        Freshness::Offline
    } else if now.saturating_sub(last_heard) > stale_ms {
        Freshness::Stale
    } else {
        Freshness::Live
    }
}

/// Periods the hub was not listening, from its runs `(started_at, alive_at)` oldest first:
/// `(from, to)` between one run's last sign of life and the next start.
pub fn gaps(runs: &[(i64, i64)]) -> Vec<(i64, i64)> {
    runs.windows(2)
        .filter_map(|w| (w[1].0 > w[0].1).then_some((w[0].1, w[1].0)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn site_names_are_one_topic_level() {
        assert_eq!(site_segment(" Shelf Pi/2#\n"), "shelf-pi-2-");
        assert_eq!(site_segment("barn"), "barn");
        assert_eq!(site_segment("  "), "shepherd");
    }

    #[test]
    fn topics_parse_into_what_a_site_says() {
        let p = "shepherd";
        assert_eq!(
            parse(p, "shepherd/barn/status", b"offline"),
            Ok(("barn".into(), Incoming::Status(false)))
        );
        let site =
            json!({"schema": 1, "site": "barn", "url": "http://barn:8080", "version": "1.0"});
        assert_eq!(
            parse(p, "shepherd/barn/site", site.to_string().as_bytes()),
            Ok((
                "barn".into(),
                Incoming::Site {
                    url: Some("http://barn:8080".into()),
                    version: Some("1.0".into())
                }
            ))
        );
        // A link is only ever http(s): a javascript: URL is dropped.
        let bad = json!({"schema": 1, "url": "javascript:alert(1)"});
        assert!(matches!(
            parse(p, "shepherd/barn/site", bad.to_string().as_bytes()),
            Ok((_, Incoming::Site { url: None, .. }))
        ));
        let m = json!({"schema": 1, "name": "desk", "at": 5, "hashrate": 1.5});
        let Ok((_, Incoming::Miner { id, name, at, .. })) =
            parse(p, "shepherd/barn/miners/7/state", m.to_string().as_bytes())
        else {
            panic!()
        };
        assert_eq!((id, name.as_str(), at), (7, "desk", Some(5)));
        assert_eq!(
            parse(p, "shepherd/barn/miners/7/state", b""),
            Ok(("barn".into(), Incoming::MinerGone(7)))
        );
        let e = json!({"schema": 1, "kind": "block", "id": 3, "at": 9, "miner": "desk"});
        let Ok((_, Incoming::Event { kind, id, at, .. })) =
            parse(p, "shepherd/barn/events/block", e.to_string().as_bytes())
        else {
            panic!()
        };
        assert_eq!((kind.as_str(), id, at), ("block", 3, 9));
    }

    #[test]
    fn foreign_newer_and_broken_messages_are_skipped() {
        let p = "shepherd";
        assert_eq!(
            parse(p, "homeassistant/sensor/x/config", b"{}"),
            Err(Skip::NotOurs)
        );
        assert_eq!(parse(p, "shepherd/alerts", b"{}"), Err(Skip::NotOurs));
        assert_eq!(
            parse(p, "shepherdx/barn/status", b"online"),
            Err(Skip::NotOurs)
        );
        assert_eq!(
            parse(p, "shepherd/barn/herd/state", br#"{"schema": 2}"#),
            Err(Skip::NewerSchema(2))
        );
        assert!(matches!(
            parse(p, "shepherd/barn/herd/state", b"{"),
            Err(Skip::Malformed(_))
        ));
        assert!(matches!(
            parse(
                p,
                "shepherd/barn/events/record",
                br#"{"schema": 1, "at": 1}"#
            ),
            Err(Skip::Malformed(_))
        ));
        assert_eq!(
            parse(p, "shepherd/barn/events/party", br#"{"schema": 1}"#),
            Err(Skip::NotOurs)
        );
    }

    #[test]
    fn a_site_is_live_stale_or_offline() {
        assert_eq!(freshness(true, 1_000, 2_000, 5_000), Freshness::Live);
        assert_eq!(freshness(true, 1_000, 10_000, 5_000), Freshness::Stale);
        // The last will wins even over fresh figures.
        assert_eq!(freshness(false, 9_999, 10_000, 5_000), Freshness::Offline);
    }

    #[test]
    fn gaps_lie_between_runs() {
        assert_eq!(gaps(&[(0, 100), (100, 200)]), vec![]);
        assert_eq!(
            gaps(&[(0, 100), (500, 900), (950, 990)]),
            vec![(100, 500), (900, 950)]
        );
        assert!(gaps(&[(0, 100)]).is_empty());
    }
}
