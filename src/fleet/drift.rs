//! A miner's desired configuration, the config.json keys it stands for, and the drift between
//! those and the configuration last read back from the miner. Keys the miner has that are not
//! desired (unknown keys of newer firmware included) are neither drift nor touched: the write
//! path merges, it never drops keys.

use serde::Serialize;
use serde_json::{Map, Value};

use super::profile::Profile;
use super::worker;
use crate::flash::nerd_config;

/// The board keys a desired configuration may set besides pool and address.
pub const BOARD_KEYS: [&str; 4] = ["gmtZone", "Brightness", "invertColors", "saveStatsToNVS"];

/// What one miner should be configured as.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Desired {
    /// Its pool profile.
    pub profile: Option<Profile>,
    /// Which of the profile's pools it should be on now (0 the primary; failover and
    /// schedules move it).
    pub active_pool: usize,
    /// Payout address (from `/settings`).
    pub address: Option<String>,
    /// Worker name.
    pub worker: Option<String>,
    /// Board keys ([`BOARD_KEYS`]) and their values.
    pub board: Map<String, Value>,
}

impl Desired {
    /// The config.json keys this desired state sets; an error when it cannot be written as
    /// it is (bad address, worker, board key), in words for the owner.
    pub fn keys(&self) -> Result<Map<String, Value>, String> {
        let mut m = Map::new();
        if let Some(p) = &self.profile {
            let pool = p.pools.get(self.active_pool).or(p.pools.first());
            if let Some(pool) = pool {
                m.extend(pool.keys());
            }
        }
        // A worker name without an address waits for it (onboarding proposes names before
        // anyone chose where the coins go).
        if let Some(a) = &self.address {
            m.insert(
                "btcString".into(),
                worker::btc_string(a, self.worker.as_deref())?.into(),
            );
        }
        for (k, v) in &self.board {
            if !BOARD_KEYS.contains(&k.as_str()) {
                return Err(format!(
                    "{k} is not a board key (use one of {})",
                    BOARD_KEYS.join(", ")
                ));
            }
            m.insert(k.clone(), v.clone());
        }
        if !m.is_empty() {
            let errors = nerd_config::validate_change(&m);
            if !errors.is_empty() {
                return Err(nerd_config::describe(&errors));
            }
        }
        Ok(m)
    }
}

/// Where a miner stands against its desired configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Drift {
    /// Its configuration was never read: nothing to compare.
    Unknown,
    /// Every desired key reads back as desired (or nothing is desired).
    InSync,
    /// These keys differ.
    Drifted {
        /// The keys, in config.json order.
        keys: Vec<String>,
    },
}

impl Drift {
    /// `unknown`, `in_sync` or `drifted`, as the filter on the herd page names it.
    pub fn name(&self) -> &'static str {
        match self {
            Drift::Unknown => "unknown",
            Drift::InSync => "in_sync",
            Drift::Drifted { .. } => "drifted",
        }
    }
}

/// Whether a read-back value is the desired one. Numbers and booleans are compared by value
/// even when a firmware prints them as text ("3333" is 3333, "true" is true).
fn same(want: &Value, got: &Value) -> bool {
    if want == got {
        return true;
    }
    match (want, got) {
        (Value::Number(a), Value::String(b)) => b.trim().parse::<i64>().ok() == a.as_i64(),
        (Value::Bool(a), Value::String(b)) => b.trim().parse::<bool>().ok() == Some(*a),
        (Value::Bool(a), Value::Number(b)) => b.as_i64() == Some(i64::from(*a)),
        _ => false,
    }
}

/// Compares the desired keys with the configuration read back (None: never read).
pub fn drift(desired: &Map<String, Value>, read: Option<&Map<String, Value>>) -> Drift {
    let Some(read) = read else {
        return Drift::Unknown;
    };
    let mut keys: Vec<String> = desired
        .iter()
        .filter(|(k, v)| read.get(k.as_str()).is_none_or(|got| !same(v, got)))
        .map(|(k, _)| k.clone())
        .collect();
    let order = |k: &String| {
        nerd_config::KEYS
            .iter()
            .position(|(n, _)| n == k)
            .unwrap_or(usize::MAX)
    };
    keys.sort_by_key(order);
    if keys.is_empty() {
        Drift::InSync
    } else {
        Drift::Drifted { keys }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::profile::{Endpoint, DEFAULT_MINUTES};
    use serde_json::json;

    const ADDR: &str = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq";

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn desired() -> Desired {
        Desired {
            profile: Some(Profile {
                id: 1,
                name: "public".into(),
                pools: vec![
                    Endpoint::parse("public-pool.io:21496").unwrap(),
                    Endpoint::parse("solo.ckpool.org:3333").unwrap(),
                ],
                failover: true,
                down_minutes: DEFAULT_MINUTES,
                back_minutes: DEFAULT_MINUTES,
                schedule: vec![],
                time_zone: String::new(),
            }),
            active_pool: 0,
            address: Some(ADDR.into()),
            worker: Some("desk".into()),
            board: obj(json!({"gmtZone": 1, "Brightness": 200})),
        }
    }

    #[test]
    fn desired_keys_follow_the_active_pool() {
        let mut d = desired();
        let k = d.keys().unwrap();
        assert_eq!(k["poolString"], "public-pool.io");
        assert_eq!(k["btcString"], format!("{ADDR}.desk"));
        assert_eq!(k["gmtZone"], 1);
        d.active_pool = 1;
        assert_eq!(d.keys().unwrap()["portNumber"], 3333);
        d.board.insert("wifiPassword".into(), "x".into());
        assert!(d.keys().unwrap_err().contains("not a board key"));
        let mut d = desired();
        d.board.insert("Brightness".into(), json!("max"));
        assert!(d.keys().is_err());
        let mut d = desired();
        d.address = None;
        assert!(!d.keys().unwrap().contains_key("btcString"));
        assert!(Desired::default().keys().unwrap().is_empty());
    }

    #[test]
    fn drift_from_read_backs() {
        let want = desired().keys().unwrap();
        assert_eq!(drift(&want, None), Drift::Unknown);
        // Read back as written, plus a key of a newer firmware: in sync.
        let mut read = want.clone();
        read.insert("newKey".into(), json!(5));
        assert_eq!(drift(&want, Some(&read)), Drift::InSync);
        // Printed as text by some builds: still in sync.
        read.insert("portNumber".into(), json!("21496"));
        assert_eq!(drift(&want, Some(&read)), Drift::InSync);
        // Someone used the setup portal: other pool, no worker, brightness missing.
        read.insert("poolString".into(), json!("pool.example"));
        read.insert("btcString".into(), json!(ADDR));
        read.remove("Brightness");
        let d = drift(&want, Some(&read));
        assert_eq!(
            d,
            Drift::Drifted {
                keys: vec!["poolString".into(), "btcString".into(), "Brightness".into()]
            }
        );
        assert_eq!(d.name(), "drifted");
        assert_eq!(drift(&Map::new(), Some(&read)), Drift::InSync);
    }
}
