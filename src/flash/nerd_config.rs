//! NerdMiner's `/config.json`: its keys, checks of a configuration before it is written, and
//! the exact text the firmware's own `saveConfigFile` writes (ArduinoJson `serializeJson`:
//! compact, keys in insertion order), so the firmware parses what we write like its own.
//!
//! Keys the firmware does not know (newer or forked builds) are kept where they were: the
//! configuration sent replaces values, never drops keys.

use serde::Serialize;
use serde_json::{Map, Value};

/// The path of the configuration file in SPIFFS.
pub const CONFIG_PATH: &str = "/config.json";

/// What type a known key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// JSON string.
    Str,
    /// JSON integer.
    Int,
    /// JSON boolean.
    Bool,
}

/// The keys of NerdMiner V1.8.x's config.json in the order its save writes them.
pub const KEYS: [(&str, Kind); 8] = [
    ("poolString", Kind::Str),
    ("portNumber", Kind::Int),
    ("poolPassword", Kind::Str),
    ("btcString", Kind::Str),
    ("gmtZone", Kind::Int),
    ("saveStatsToNVS", Kind::Bool),
    ("invertColors", Kind::Bool),
    ("Brightness", Kind::Int),
];

/// Keys without which the firmware cannot mine (every release has had them).
const REQUIRED: [&str; 3] = ["poolString", "portNumber", "btcString"];

/// The firmware copies pool, password and wallet into 80-byte buffers (with the NUL).
const MAX_STRING: usize = 79;

/// The firmware deserializes config.json into a 512-byte ArduinoJson document (members and
/// copied strings share it); a file much over this leaves it with "Error parsing config file"
/// and the miner in its setup portal. Kept well below 512 for the document's own overhead.
pub const MAX_FILE_BYTES: usize = 400;

/// A key no configuration may hold: shepherd's own command payloads use it to mean "restore
/// a stored backup", so a configuration with it would be taken for one.
pub const RESERVED_KEY: &str = "restore_backup";

/// One problem with one key, for the form to show next to that field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The key (or `""` for the whole configuration).
    pub key: String,
    /// What is wrong, in words for the owner.
    pub message: String,
}

fn err(key: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        key: key.into(),
        message: message.into(),
    }
}

/// Checks a hostname, IPv4 address, or `stratum+tcp://host[:port]` URL.
pub fn check_pool(pool: &str) -> Result<(), String> {
    let host = pool
        .strip_prefix("stratum+tcp://")
        .or_else(|| pool.strip_prefix("stratum+ssl://"))
        .unwrap_or(pool);
    let host = host.trim_end_matches('/');
    let host = match host.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    if host.is_empty() {
        return Err("is empty: give the pool's host name, e.g. public-pool.io".into());
    }
    if host.len() > 253 {
        return Err("is longer than a host name can be".into());
    }
    for label in host.split('.') {
        if label.is_empty() {
            return Err(format!("{host:?} has an empty part between dots"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!(
                "{host:?} contains {c:?}: a pool is a host name like public-pool.io (the port \
                 goes in its own field)"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("{host:?} has a part starting or ending with '-'"));
        }
    }
    Ok(())
}

/// Checks every known key's type and range; unknown keys pass untouched. Returns every
/// problem found, not only the first, so a form can show them all at once.
pub fn validate(config: &Map<String, Value>) -> Vec<FieldError> {
    validate_with(config, true)
}

/// The same for a change to merge into a miner's current configuration (a rollout of a new
/// pool or address): keys left out are not missing, they keep the miner's values. The merged
/// result is checked in full before anything is written.
pub fn validate_change(change: &Map<String, Value>) -> Vec<FieldError> {
    let mut errors = validate_with(change, false);
    if change.is_empty() {
        errors.push(err("", "the change sets no key"));
    }
    errors
}

fn validate_with(config: &Map<String, Value>, require: bool) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if config.contains_key(RESERVED_KEY) {
        errors.push(err(
            RESERVED_KEY,
            format!("{RESERVED_KEY} is reserved by shepherd and cannot be a configuration key"),
        ));
    }
    for key in REQUIRED {
        if require && !config.contains_key(key) {
            errors.push(err(key, format!("{key} is missing")));
        }
    }
    for (key, kind) in KEYS {
        let Some(v) = config.get(key) else { continue };
        let type_ok = match kind {
            Kind::Str => v.is_string(),
            Kind::Int => v.is_i64() || v.is_u64(),
            Kind::Bool => v.is_boolean(),
        };
        if !type_ok {
            let want = match kind {
                Kind::Str => "text",
                Kind::Int => "a whole number",
                Kind::Bool => "true or false",
            };
            errors.push(err(key, format!("{key} must be {want}, not {v}")));
            continue;
        }
        if let Some(s) = v.as_str() {
            if s.len() > MAX_STRING {
                errors.push(err(
                    key,
                    format!(
                        "{key} is {} bytes long; the firmware keeps at most {MAX_STRING}",
                        s.len()
                    ),
                ));
                continue;
            }
        }
        let int = v.as_i64();
        match key {
            "poolString" => {
                if let Err(e) = check_pool(v.as_str().unwrap_or_default()) {
                    errors.push(err(key, format!("the pool {e}")));
                }
            }
            "portNumber" if !matches!(int, Some(1..=65535)) => {
                errors.push(err(key, format!("the port must be 1 to 65535, not {v}")));
            }
            "btcString" => {
                let (addr, worker) = crate::address::split_worker(v.as_str().unwrap_or_default());
                if let Err(e) = crate::address::check_address(addr) {
                    errors.push(err(
                        key,
                        format!("the bitcoin address {addr:?} {e}; check it against your wallet"),
                    ));
                } else if let Some(w) = worker {
                    if w.is_empty()
                        || !w
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    {
                        errors.push(err(
                            key,
                            format!(
                                "the worker name {w:?} after the '.' must be letters, digits, \
                                 '-' or '_'"
                            ),
                        ));
                    }
                }
            }
            "gmtZone" if !matches!(int, Some(-12..=14)) => {
                errors.push(err(
                    key,
                    format!("the time zone must be -12 to 14, not {v}"),
                ));
            }
            "Brightness" if !matches!(int, Some(0..=255)) => {
                errors.push(err(key, format!("brightness must be 0 to 255, not {v}")));
            }
            _ => {}
        }
    }
    if errors.is_empty() {
        let len = to_file_text(config).len();
        if len > MAX_FILE_BYTES {
            errors.push(err(
                "",
                format!(
                    "the configuration is {len} bytes; the firmware parses at most about \
                     {MAX_FILE_BYTES} (a 512-byte JSON document) and would start its setup \
                     portal instead: shorten the values or drop unknown keys"
                ),
            ));
        }
    }
    errors
}

/// Joins field errors into one sentence for a command's detail or a CLI message.
pub fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| e.message.clone())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The configuration to write: `old`'s keys in their order with `new`'s values, then keys
/// only `new` has — known ones in the firmware's order, the rest as given. With no old file,
/// the firmware's order.
pub fn merge(old: Option<&Map<String, Value>>, new: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(old) = old {
        for (k, v) in old {
            out.insert(k.clone(), new.get(k).unwrap_or(v).clone());
        }
    }
    for (k, _) in KEYS {
        if let (false, Some(v)) = (out.contains_key(k), new.get(k)) {
            out.insert(k.to_owned(), v.clone());
        }
    }
    for (k, v) in new {
        if !out.contains_key(k) {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// The file text, as `serializeJson` writes it: compact, in the map's order.
pub fn to_file_text(config: &Map<String, Value>) -> String {
    Value::Object(config.clone()).to_string()
}

/// Whether the configuration the miner printed at boot is the one written: the pool, port and
/// wallet are there, and every key printed that was written has the value written. Keys
/// written but not printed are tolerated because a dump garbled by another task's output is
/// rebuilt from the firmware's echo lines, which only carry the keys it knows; rolling back
/// a good write over that would be wrong.
pub fn same_config(written: &Map<String, Value>, printed: &Map<String, Value>) -> bool {
    REQUIRED.iter().all(|k| printed.contains_key(*k))
        && written
            .iter()
            .all(|(k, v)| printed.get(k).is_none_or(|p| p == v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> Map<String, Value> {
        json!({
            "poolString": "public-pool.io",
            "portNumber": 21496,
            "poolPassword": "x",
            "btcString": "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4.rig1",
            "gmtZone": 2,
            "saveStatsToNVS": false,
            "invertColors": false,
            "Brightness": 250
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    #[test]
    fn a_good_config_passes_and_serializes_compact_in_firmware_order() {
        let c = good();
        assert_eq!(validate(&c), vec![]);
        assert_eq!(
            to_file_text(&c),
            "{\"poolString\":\"public-pool.io\",\"portNumber\":21496,\"poolPassword\":\"x\",\
             \"btcString\":\"bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4.rig1\",\"gmtZone\":2,\
             \"saveStatsToNVS\":false,\"invertColors\":false,\"Brightness\":250}"
        );
    }

    #[test]
    fn every_bad_field_is_reported_with_its_key() {
        let mut c = good();
        c.insert("poolString".into(), json!("pool example.org"));
        c.insert("portNumber".into(), json!(70000));
        c.insert(
            "btcString".into(),
            json!("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5"),
        );
        c.insert("gmtZone".into(), json!(15));
        c.insert("Brightness".into(), json!(-1));
        c.insert("invertColors".into(), json!("yes"));
        let keys: Vec<String> = validate(&c).into_iter().map(|e| e.key).collect();
        assert_eq!(
            keys,
            [
                "poolString",
                "portNumber",
                "btcString",
                "gmtZone",
                "invertColors",
                "Brightness"
            ]
        );
        c.remove("poolString");
        assert!(describe(&validate(&c)).contains("poolString is missing"));
    }

    #[test]
    fn pools_hosts_and_urls() {
        assert!(check_pool("public-pool.io").is_ok());
        assert!(check_pool("stratum+tcp://solo.ckpool.org:3333").is_ok());
        assert!(check_pool("192.168.1.10").is_ok());
        assert!(check_pool("").is_err());
        assert!(check_pool("pool..io").is_err());
        assert!(check_pool("http://x/y").is_err());
    }

    #[test]
    fn worker_names_and_oversized_files() {
        let mut c = good();
        c.insert(
            "btcString".into(),
            json!("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa.bad name"),
        );
        assert_eq!(validate(&c)[0].key, "btcString");
        let mut c = good();
        c.insert("fork".into(), json!("y".repeat(70)));
        c.insert("fork2".into(), json!("y".repeat(70)));
        c.insert("fork3".into(), json!("y".repeat(70)));
        assert!(validate(&c)[0].message.contains("512-byte"));
    }

    #[test]
    fn merge_keeps_unknown_keys_in_place_and_old_order() {
        let old =
            json!({"poolString": "a", "customKey": "kept", "portNumber": 1, "btcString": "w"});
        let new = json!({"btcString": "w2", "portNumber": 3333, "poolString": "b", "gmtZone": 1});
        let m = merge(old.as_object(), new.as_object().unwrap());
        assert_eq!(
            to_file_text(&m),
            r#"{"poolString":"b","customKey":"kept","portNumber":3333,"btcString":"w2","gmtZone":1}"#
        );
        let fresh = merge(None, new.as_object().unwrap());
        let keys: Vec<&String> = fresh.keys().collect();
        assert_eq!(keys, ["poolString", "portNumber", "btcString", "gmtZone"]);
    }

    #[test]
    fn a_change_may_leave_keys_out_but_not_be_empty() {
        let change = json!({"poolString": "solo.ckpool.org", "portNumber": 3333});
        assert_eq!(validate_change(change.as_object().unwrap()), vec![]);
        assert!(!validate(change.as_object().unwrap()).is_empty());
        assert!(!validate_change(&Map::new()).is_empty());
        let bad = json!({"portNumber": 0});
        assert_eq!(
            validate_change(bad.as_object().unwrap())[0].key,
            "portNumber"
        );
    }

    #[test]
    fn boot_dump_comparison_ignores_extra_printed_keys() {
        let c = good();
        let mut printed = c.clone();
        printed.insert("extra".into(), json!(1));
        assert!(same_config(&c, &printed));
        // Rebuilt from the echo lines: no unknown keys, still the same configuration.
        let mut written = c.clone();
        written.insert("customKey".into(), json!("kept"));
        assert!(same_config(&written, &c));
        let mut no_pool = c.clone();
        no_pool.remove("poolString");
        assert!(!same_config(&c, &no_pool));
        printed.insert("portNumber".into(), json!(3333));
        assert!(!same_config(&c, &printed));
    }
}
