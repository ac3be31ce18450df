//! SQL behind the "Alert rules" part of `/settings`: the owner's overrides of `[alerts]` rule
//! keys, stored as text. The values are checked by [`crate::config::AlertsConfig::with_overrides`]
//! before they are saved; these functions only store and read them.

use rusqlite::{params, Connection};

/// Every stored override as (key, value), by key.
pub fn overrides(conn: &Connection) -> rusqlite::Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare_cached("SELECT key, value FROM alert_settings ORDER BY key")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// Replaces all overrides with `values`, in one transaction.
pub fn replace(conn: &mut Connection, values: &[(String, String)]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    tx.execute("DELETE FROM alert_settings", [])?;
    {
        let mut stmt =
            tx.prepare_cached("INSERT INTO alert_settings (key, value) VALUES (?1, ?2)")?;
        for (key, value) in values {
            stmt.execute(params![key, value])?;
        }
    }
    tx.commit()
}

/// Drops every override: the rules follow config.toml again. Returns how many there were.
pub fn clear(conn: &Connection) -> rusqlite::Result<usize> {
    conn.execute("DELETE FROM alert_settings", [])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::memory_db;

    fn kv(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn overrides_are_replaced_read_back_and_cleared() {
        let mut c = memory_db();
        assert!(overrides(&c).unwrap().is_empty());
        replace(
            &mut c,
            &[kv("temperature_above_c", "60"), kv("offline_minutes", "2")],
        )
        .unwrap();
        assert_eq!(
            overrides(&c).unwrap(),
            vec![kv("offline_minutes", "2"), kv("temperature_above_c", "60")]
        );
        replace(&mut c, &[kv("reboot", "false")]).unwrap();
        assert_eq!(overrides(&c).unwrap(), vec![kv("reboot", "false")]);
        assert_eq!(clear(&c).unwrap(), 1);
        assert!(overrides(&c).unwrap().is_empty());
    }
}
