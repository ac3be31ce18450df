//! Miner rows: the shell (`shepherd miners …`) and the web use these same functions.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::clock::now_ms;

/// A configured miner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Miner {
    /// Row id, used in URLs.
    pub id: i64,
    /// Unique name the owner gave it.
    pub name: String,
    /// Serial device it is read from.
    pub port: String,
    /// `serial` (hardware), `demo` (simulator) or `axeos` (read over HTTP; `port` is its URL).
    pub kind: String,
    /// Whether a reader runs for it.
    pub enabled: bool,
    /// USB serial number, when known.
    pub usb_serial: Option<String>,
}

/// Why a miner change was refused.
#[derive(Debug, thiserror::Error)]
pub enum MinerError {
    /// Names are unique.
    #[error("a miner named {0:?} already exists: pick another name or remove it first")]
    NameTaken(String),
    /// Nothing by that name.
    #[error("no miner named {0:?} (see `shepherd miners list`)")]
    NotFound(String),
    /// Input that cannot be stored.
    #[error("{0}")]
    Invalid(String),
    /// SQLite said no.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

const COLUMNS: &str = "id, name, port, kind, enabled, usb_serial";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Miner> {
    Ok(Miner {
        id: r.get(0)?,
        name: r.get(1)?,
        port: r.get(2)?,
        kind: r.get(3)?,
        enabled: r.get(4)?,
        usb_serial: r.get(5)?,
    })
}

/// Every miner, by name.
pub fn list(conn: &Connection) -> rusqlite::Result<Vec<Miner>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM miners ORDER BY name"))?;
    let rows = stmt.query_map([], from_row)?;
    rows.collect()
}

/// One miner by id.
pub fn get(conn: &Connection, id: i64) -> rusqlite::Result<Option<Miner>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM miners WHERE id = ?1"),
        [id],
        from_row,
    )
    .optional()
}

/// Checks a name and port before they are stored.
pub fn validate(name: &str, port: &str) -> Result<(), MinerError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(MinerError::Invalid(
            "a miner name must be 1 to 64 characters".into(),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(MinerError::Invalid(
            "a miner name cannot contain control characters".into(),
        ));
    }
    if crate::names::looks_empty(name) {
        return Err(MinerError::Invalid(
            "a miner name must have a visible character (zero-width and text-direction \
             characters alone show as nothing)"
                .into(),
        ));
    }
    if !port.starts_with('/') {
        return Err(MinerError::Invalid(format!(
            "port {port:?} must be a device path such as /dev/ttyUSB0 or /dev/serial/by-id/…"
        )));
    }
    Ok(())
}

/// Refuses `name` when another miner has it (the UNIQUE constraint's error would not say so).
fn refuse_taken_name(conn: &Connection, name: &str) -> Result<(), MinerError> {
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM miners WHERE name = ?1)",
        [name],
        |r| r.get(0),
    )?;
    if exists {
        return Err(MinerError::NameTaken(name.to_owned()));
    }
    Ok(())
}

/// Adds a miner; returns its id.
pub fn add(conn: &Connection, name: &str, port: &str, kind: &str) -> Result<i64, MinerError> {
    validate(name, port)?;
    let name = name.trim();
    refuse_taken_name(conn, name)?;
    conn.execute(
        "INSERT INTO miners (name, port, kind, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![name, port, kind, now_ms()],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Checks an AxeOS miner's address and returns it normalized (`http://host[:port]`): the
/// API paths are added by the reader, so a path, query or credentials are refused rather
/// than silently dropped.
pub fn normalize_url(url: &str) -> Result<String, MinerError> {
    let url = url.trim();
    let bad = |why: &str| {
        MinerError::Invalid(format!(
            "{url:?} {why}: give the miner's address as http://192.168.1.50 or http://bitaxe.local"
        ))
    };
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") => {
            (s.to_ascii_lowercase(), r)
        }
        _ => return Err(bad("does not start with http:// or https://")),
    };
    let host_port = rest.strip_suffix('/').unwrap_or(rest);
    if host_port.contains(['/', '?', '#']) {
        return Err(bad(
            "has a path, query or fragment (AxeOS answers at its root)",
        ));
    }
    if host_port.contains('@') {
        return Err(bad("carries credentials (AxeOS has none)"));
    }
    // `[v6]:port`, `[v6]`, `host:port` or `host`.
    let (host, port) = match host_port.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, "")) => (format!("[{h}]"), None),
            Some((h, p)) => (format!("[{h}]"), Some(p.strip_prefix(':').unwrap_or("x"))),
            None => return Err(bad("has no usable host name")),
        },
        None => match host_port.split_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (host_port.to_owned(), None),
        },
    };
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad("has a port that is not a number from 1 to 65535"))?,
        ),
        None => None,
    };
    let host_ok = !host.is_empty()
        && host != "[]"
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '[' | ']' | ':'));
    if !host_ok {
        return Err(bad("has no usable host name"));
    }
    Ok(match port {
        Some(p) => format!("{scheme}://{}:{p}", host.to_ascii_lowercase()),
        None => format!("{scheme}://{}", host.to_ascii_lowercase()),
    })
}

/// Adds an AxeOS miner (Bitaxe, NerdQAxe…) read over HTTP at `url`; returns its id.
pub fn add_axeos(conn: &Connection, name: &str, url: &str) -> Result<i64, MinerError> {
    let url = normalize_url(url)?;
    // The name rules are the serial ones; the port check is for device paths.
    validate(name, "/")?;
    let name = name.trim();
    refuse_taken_name(conn, name)?;
    let taken: Option<String> = conn
        .query_row(
            "SELECT name FROM miners WHERE kind = 'axeos' AND port = ?1",
            [&url],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(other) = taken {
        return Err(MinerError::Invalid(format!(
            "{url} is already watched as {other:?}"
        )));
    }
    conn.execute(
        "INSERT INTO miners (name, port, kind, created_at) VALUES (?1, ?2, 'axeos', ?3)",
        params![name, url, now_ms()],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Makes the demo AxeOS miners exactly `urls` (name, URL pairs): mock servers get a new port
/// each run, so existing rows are re-pointed; demo AxeOS rows not named are removed.
pub fn sync_demo_axeos(conn: &mut Connection, urls: &[(String, String)]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    for (name, url) in urls {
        tx.execute(
            "INSERT INTO miners (name, port, kind, created_at) VALUES (?1, ?2, 'axeos', ?3)
             ON CONFLICT (name) DO UPDATE SET port = excluded.port, kind = 'axeos', enabled = 1",
            params![name, url, now_ms()],
        )?;
    }
    let keep: Vec<&str> = urls.iter().map(|(n, _)| n.as_str()).collect();
    let mut stmt =
        tx.prepare("SELECT id, name FROM miners WHERE kind = 'axeos' AND name LIKE 'demo-axe-%'")?;
    let demo: Vec<(i64, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    drop(stmt);
    for (id, name) in demo {
        if !keep.contains(&name.as_str()) {
            tx.execute("DELETE FROM miners WHERE id = ?1", [id])?;
        }
    }
    tx.commit()
}

/// Removes a miner and, through the foreign keys, its history.
pub fn remove(conn: &Connection, name: &str) -> Result<(), MinerError> {
    let n = conn.execute("DELETE FROM miners WHERE name = ?1", [name])?;
    if n == 0 {
        return Err(MinerError::NotFound(name.to_owned()));
    }
    Ok(())
}

/// Makes the demo herd exactly `ports` (named demo-1…): existing demo miners are pointed at
/// their new pseudo-terminals, surplus ones removed. Returns their ids in order.
pub fn sync_demo(conn: &mut Connection, ports: &[String]) -> rusqlite::Result<Vec<i64>> {
    let tx = conn.transaction()?;
    let mut ids = Vec::with_capacity(ports.len());
    for (i, port) in ports.iter().enumerate() {
        let name = format!("demo-{}", i + 1);
        tx.execute(
            "INSERT INTO miners (name, port, kind, created_at) VALUES (?1, ?2, 'demo', ?3)
             ON CONFLICT (name) DO UPDATE SET port = excluded.port, enabled = 1",
            params![name, port, now_ms()],
        )?;
        ids.push(
            tx.query_row("SELECT id FROM miners WHERE name = ?1", [&name], |r| {
                r.get(0)
            })?,
        );
    }
    let keep = ports.len() as i64;
    let mut stmt = tx.prepare("SELECT id, name FROM miners WHERE kind = 'demo'")?;
    let demo: Vec<(i64, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    drop(stmt);
    for (id, name) in demo {
        let index: Option<i64> = name.strip_prefix("demo-").and_then(|n| n.parse().ok());
        if index.is_none_or(|n| n < 1 || n > keep) {
            tx.execute("DELETE FROM miners WHERE id = ?1", [id])?;
        }
    }
    tx.commit()?;
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        crate::db::memory_db()
    }

    #[test]
    fn add_list_remove() {
        let c = db();
        add(&c, "garage", "/dev/ttyUSB0", "serial").unwrap();
        add(&c, "attic", "/dev/ttyUSB1", "serial").unwrap();
        let names: Vec<_> = list(&c).unwrap().into_iter().map(|m| m.name).collect();
        assert_eq!(names, ["attic", "garage"]);
        remove(&c, "garage").unwrap();
        assert_eq!(list(&c).unwrap().len(), 1);
        assert!(matches!(remove(&c, "garage"), Err(MinerError::NotFound(_))));
    }

    #[test]
    fn duplicate_and_bad_input_are_refused() {
        let c = db();
        add(&c, "garage", "/dev/ttyUSB0", "serial").unwrap();
        assert!(matches!(
            add(&c, "garage", "/dev/ttyUSB1", "serial"),
            Err(MinerError::NameTaken(_))
        ));
        assert!(add(&c, "", "/dev/ttyUSB1", "serial").is_err());
        assert!(add(&c, "x", "ttyUSB1", "serial")
            .unwrap_err()
            .to_string()
            .contains("/dev/ttyUSB0"));
    }

    #[test]
    fn axeos_urls_are_checked_and_normalized() {
        assert_eq!(
            normalize_url(" HTTP://Bitaxe.local/ ").unwrap(),
            "http://bitaxe.local"
        );
        assert_eq!(
            normalize_url("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        for bad in [
            "bitaxe.local",
            "ftp://x",
            "http://",
            "http://x/api/system/info",
            "http://x?a=1",
            "http://u:p@x",
            "http://x:0",
            "http://x:99999",
            "http://a b",
        ] {
            let e = normalize_url(bad).unwrap_err().to_string();
            assert!(e.contains("http://192.168.1.50"), "{bad}: {e}");
        }
        let c = db();
        add_axeos(&c, "axe", "http://127.0.0.1:1/").unwrap();
        let m = &list(&c).unwrap()[0];
        assert_eq!(
            (m.kind.as_str(), m.port.as_str()),
            ("axeos", "http://127.0.0.1:1")
        );
        assert!(add_axeos(&c, "axe2", "http://127.0.0.1:1")
            .unwrap_err()
            .to_string()
            .contains("already watched"));
        assert!(matches!(
            add_axeos(&c, "axe", "http://127.0.0.1:2"),
            Err(MinerError::NameTaken(_))
        ));
    }

    #[test]
    fn removing_a_miner_removes_its_logs() {
        let c = db();
        let id = add(&c, "garage", "/dev/ttyUSB0", "serial").unwrap();
        let line = crate::db::logs::NewLine {
            ts: 1,
            text: "x",
            truncated: false,
        };
        crate::db::logs::append(&c, &[(id, vec![line])]).unwrap();
        remove(&c, "garage").unwrap();
        let n: i64 = c
            .query_row("SELECT count(*) FROM miner_logs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn demo_sync_reuses_and_trims() {
        let mut c = db();
        let a = sync_demo(
            &mut c,
            &[
                "/dev/pts/1".into(),
                "/dev/pts/2".into(),
                "/dev/pts/3".into(),
            ],
        )
        .unwrap();
        let b = sync_demo(&mut c, &["/dev/pts/7".into()]).unwrap();
        assert_eq!(a[0], b[0]);
        let all = list(&c).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].port, "/dev/pts/7");
        assert!(sync_demo(&mut c, &[]).unwrap().is_empty());
        assert!(list(&c).unwrap().is_empty());
    }
}
