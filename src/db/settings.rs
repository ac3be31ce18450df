//! SQL behind `/settings`: pools, coin addresses and miners' names, ports and assignments.
//! Inputs are validated by the web layer first; these functions only store and look up.

use rusqlite::{params, Connection};
use serde::Serialize;

use crate::clock::now_ms;

/// A pool row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolRow {
    /// Row id.
    pub id: i64,
    /// Owner's name for it.
    pub name: String,
    /// Host or URL.
    pub url: String,
    /// TCP port.
    pub port: i64,
    /// Stratum password (`x` for most pools).
    pub password: String,
}

/// A coin address row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AddressRow {
    /// Row id.
    pub id: i64,
    /// Owner's label.
    pub label: String,
    /// The Bitcoin address (optionally `.worker`).
    pub address: String,
}

/// A miner as the settings page edits it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MinerRow {
    /// Row id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Serial device.
    pub port: String,
    /// `serial` or `demo`.
    pub kind: String,
    /// Assigned pool.
    pub pool_id: Option<i64>,
    /// Assigned coin address.
    pub address_id: Option<i64>,
}

/// Every pool by name.
pub fn pools(conn: &Connection) -> rusqlite::Result<Vec<PoolRow>> {
    let mut stmt =
        conn.prepare_cached("SELECT id, name, url, port, password FROM pools ORDER BY name")?;
    let rows = stmt.query_map([], |r| {
        Ok(PoolRow {
            id: r.get(0)?,
            name: r.get(1)?,
            url: r.get(2)?,
            port: r.get(3)?,
            password: r.get(4)?,
        })
    })?;
    rows.collect()
}

/// Every coin address by label.
pub fn addresses(conn: &Connection) -> rusqlite::Result<Vec<AddressRow>> {
    let mut stmt =
        conn.prepare_cached("SELECT id, label, address FROM coin_addresses ORDER BY label")?;
    let rows = stmt.query_map([], |r| {
        Ok(AddressRow {
            id: r.get(0)?,
            label: r.get(1)?,
            address: r.get(2)?,
        })
    })?;
    rows.collect()
}

/// Every miner by name.
pub fn miners(conn: &Connection) -> rusqlite::Result<Vec<MinerRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, name, port, kind, pool_id, address_id FROM miners ORDER BY name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(MinerRow {
            id: r.get(0)?,
            name: r.get(1)?,
            port: r.get(2)?,
            kind: r.get(3)?,
            pool_id: r.get(4)?,
            address_id: r.get(5)?,
        })
    })?;
    rows.collect()
}

/// Adds (`id = None`) or updates a pool; returns its id. `Ok(None)`: no such pool.
pub fn save_pool(
    conn: &Connection,
    id: Option<i64>,
    name: &str,
    url: &str,
    port: u16,
    password: &str,
) -> rusqlite::Result<Option<i64>> {
    match id {
        None => {
            conn.execute(
                "INSERT INTO pools (name, url, port, password, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![name, url, port, password, now_ms()],
            )?;
            Ok(Some(conn.last_insert_rowid()))
        }
        Some(id) => {
            let n = conn.execute(
                "UPDATE pools SET name = ?2, url = ?3, port = ?4, password = ?5 WHERE id = ?1",
                params![id, name, url, port, password],
            )?;
            Ok((n > 0).then_some(id))
        }
    }
}

/// Adds or updates a coin address; returns its id. `Ok(None)`: no such address.
pub fn save_address(
    conn: &Connection,
    id: Option<i64>,
    label: &str,
    address: &str,
) -> rusqlite::Result<Option<i64>> {
    match id {
        None => {
            conn.execute(
                "INSERT INTO coin_addresses (label, address, created_at) VALUES (?1, ?2, ?3)",
                params![label, address, now_ms()],
            )?;
            Ok(Some(conn.last_insert_rowid()))
        }
        Some(id) => {
            let n = conn.execute(
                "UPDATE coin_addresses SET label = ?2, address = ?3 WHERE id = ?1",
                params![id, label, address],
            )?;
            Ok((n > 0).then_some(id))
        }
    }
}

/// Adds or updates a miner (name, port, pool, address); returns its id.
pub fn save_miner(
    conn: &Connection,
    id: Option<i64>,
    name: &str,
    port: &str,
    pool_id: Option<i64>,
    address_id: Option<i64>,
) -> rusqlite::Result<Option<i64>> {
    match id {
        None => {
            conn.execute(
                // An http(s) address is an AxeOS miner (checked by `miners::normalize_url`).
                "INSERT INTO miners (name, port, pool_id, address_id, created_at, kind)
                 VALUES (?1, ?2, ?3, ?4, ?5, CASE WHEN ?2 LIKE 'http%' THEN 'axeos' ELSE 'serial' END)",
                params![name, port, pool_id, address_id, now_ms()],
            )?;
            Ok(Some(conn.last_insert_rowid()))
        }
        Some(id) => {
            let n = conn.execute(
                "UPDATE miners SET name = ?2, port = ?3, pool_id = ?4, address_id = ?5,
                   kind = CASE WHEN ?3 LIKE 'http%' THEN 'axeos'
                               WHEN kind = 'axeos' THEN 'serial' ELSE kind END
                 WHERE id = ?1",
                params![id, name, port, pool_id, address_id],
            )?;
            Ok((n > 0).then_some(id))
        }
    }
}

/// What can be deleted from the settings page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A miner (and, through the foreign keys, its history).
    Miner,
    /// A pool (miners using it keep running with their own configuration).
    Pool,
    /// A coin address (likewise).
    Address,
}

impl Kind {
    fn table(self) -> &'static str {
        match self {
            Kind::Miner => "miners",
            Kind::Pool => "pools",
            Kind::Address => "coin_addresses",
        }
    }
}

/// Names of the miners that use a pool or address (empty for a miner).
pub fn users(conn: &Connection, kind: Kind, id: i64) -> rusqlite::Result<Vec<String>> {
    let column = match kind {
        Kind::Pool => "pool_id",
        Kind::Address => "address_id",
        Kind::Miner => return Ok(Vec::new()),
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT name FROM miners WHERE {column} = ?1 ORDER BY name"
    ))?;
    let rows = stmt.query_map([id], |r| r.get(0))?;
    rows.collect()
}

/// Deletes one row; false if there was none. Foreign keys unassign (pools, addresses) or
/// cascade (a miner's history).
pub fn delete(conn: &Connection, kind: Kind, id: i64) -> rusqlite::Result<bool> {
    let n = conn.execute(&format!("DELETE FROM {} WHERE id = ?1", kind.table()), [id])?;
    Ok(n > 0)
}

/// Whether `name` is used by another row than `except` (names and labels are unique).
pub fn name_taken(
    conn: &Connection,
    kind: Kind,
    name: &str,
    except: Option<i64>,
) -> rusqlite::Result<bool> {
    let column = match kind {
        Kind::Address => "label",
        _ => "name",
    };
    conn.query_row(
        &format!(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE {column} = ?1 AND id != ?2)",
            kind.table()
        ),
        params![name, except.unwrap_or(-1)],
        |r| r.get(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::migrate::migrate;

    #[test]
    fn an_address_makes_an_axeos_miner_and_a_device_path_a_serial_one() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c).unwrap();
        let kind = |id: i64| -> String {
            c.query_row("SELECT kind FROM miners WHERE id = ?1", [id], |r| r.get(0))
                .unwrap()
        };
        let id = save_miner(&c, None, "gamma", "http://192.168.1.50", None, None)
            .unwrap()
            .unwrap();
        assert_eq!(kind(id), "axeos");
        save_miner(&c, Some(id), "gamma", "/dev/ttyUSB0", None, None).unwrap();
        assert_eq!(kind(id), "serial");
        save_miner(&c, Some(id), "gamma", "http://gamma.local", None, None).unwrap();
        assert_eq!(kind(id), "axeos");
    }

    #[test]
    fn crud_and_users() {
        let mut c = Connection::open_in_memory().unwrap();
        c.pragma_update(None, "foreign_keys", true).unwrap();
        migrate(&mut c).unwrap();
        let pool = save_pool(&c, None, "public", "public-pool.io", 3333, "x")
            .unwrap()
            .unwrap();
        let addr = save_address(&c, None, "cold", "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa")
            .unwrap()
            .unwrap();
        let m = save_miner(&c, None, "desk", "/dev/ttyUSB0", Some(pool), Some(addr))
            .unwrap()
            .unwrap();
        assert_eq!(users(&c, Kind::Pool, pool).unwrap(), ["desk"]);
        assert_eq!(users(&c, Kind::Address, addr).unwrap(), ["desk"]);
        assert!(name_taken(&c, Kind::Miner, "desk", None).unwrap());
        assert!(!name_taken(&c, Kind::Miner, "desk", Some(m)).unwrap());
        assert!(name_taken(&c, Kind::Address, "cold", None).unwrap());
        assert_eq!(
            save_pool(&c, Some(pool), "p2", "h", 1, "y").unwrap(),
            Some(pool)
        );
        assert_eq!(pools(&c).unwrap()[0].name, "p2");
        assert_eq!(save_pool(&c, Some(999), "p", "h", 1, "y").unwrap(), None);
        assert!(delete(&c, Kind::Pool, pool).unwrap());
        assert_eq!(miners(&c).unwrap()[0].pool_id, None);
        assert!(!delete(&c, Kind::Pool, pool).unwrap());
        assert_eq!(addresses(&c).unwrap().len(), 1);
        assert!(delete(&c, Kind::Miner, m).unwrap());
        assert!(miners(&c).unwrap().is_empty());
    }
}
