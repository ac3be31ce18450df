//! `miner_commands` (GET_CONFIG / SET_CONFIG queued for a miner's actor), the configuration a
//! miner was last read with, and `config_backups`. Writes go through the DbActor (or the CLI's
//! own connection); reads through any connection.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::clock::now_ms;

/// A queued or finished command.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandRow {
    /// Row id.
    pub id: i64,
    /// Miner it is for.
    pub miner_id: i64,
    /// `GET_CONFIG` or `SET_CONFIG`.
    pub command: String,
    /// Its argument as JSON text (GET_CONFIG: `{"method": …}`).
    pub payload: Option<String>,
    /// `pending`, `running`, `complete` or `error`.
    pub status: String,
    /// What it is doing now, or why it ended as it did (for people).
    pub detail: Option<String>,
    /// When it was queued (Unix ms).
    pub created_at: i64,
    /// When it started running.
    pub started_at: Option<i64>,
    /// When it ended.
    pub finished_at: Option<i64>,
    /// What it produced.
    pub result: Option<serde_json::Value>,
}

const COLUMNS: &str =
    "id, miner_id, command, payload, status, detail, created_at, started_at, finished_at, result_json";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CommandRow> {
    let result: Option<String> = r.get(9)?;
    Ok(CommandRow {
        id: r.get(0)?,
        miner_id: r.get(1)?,
        command: r.get(2)?,
        payload: r.get(3)?,
        status: r.get(4)?,
        detail: r.get(5)?,
        created_at: r.get(6)?,
        started_at: r.get(7)?,
        finished_at: r.get(8)?,
        result: result.and_then(|t| serde_json::from_str(&t).ok()),
    })
}

/// Queues a command; returns its id.
pub fn insert(
    conn: &Connection,
    miner_id: i64,
    command: &str,
    payload: Option<&str>,
) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO miner_commands (miner_id, command, payload, status, detail, created_at)
         VALUES (?1, ?2, ?3, 'pending', 'queued: waiting for the miner''s reader to take it', ?4)",
        params![miner_id, command, payload, now_ms()],
    )?;
    Ok(conn.last_insert_rowid())
}

/// One command.
pub fn get(conn: &Connection, id: i64) -> rusqlite::Result<Option<CommandRow>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM miner_commands WHERE id = ?1"),
        [id],
        from_row,
    )
    .optional()
}

/// Every pending command, oldest first.
pub fn pending(conn: &Connection) -> rusqlite::Result<Vec<CommandRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM miner_commands WHERE status = 'pending' ORDER BY id"
    ))?;
    let rows = stmt.query_map([], from_row)?;
    rows.collect()
}

/// Every pending or running command, oldest first.
pub fn active(conn: &Connection) -> rusqlite::Result<Vec<CommandRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM miner_commands WHERE status IN ('pending', 'running') ORDER BY id"
    ))?;
    let rows = stmt.query_map([], from_row)?;
    rows.collect()
}

/// A miner's latest commands, newest first.
pub fn recent(conn: &Connection, miner_id: i64, limit: usize) -> rusqlite::Result<Vec<CommandRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM miner_commands WHERE miner_id = ?1 ORDER BY id DESC LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![miner_id, limit as i64], from_row)?;
    rows.collect()
}

/// Marks a command running.
pub fn start(conn: &Connection, id: i64, detail: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE miner_commands SET status = 'running', detail = ?2, started_at = ?3 WHERE id = ?1",
        params![id, detail, now_ms()],
    )?;
    Ok(())
}

/// Updates what a command is doing.
pub fn set_detail(conn: &Connection, id: i64, detail: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE miner_commands SET detail = ?2 WHERE id = ?1",
        params![id, detail],
    )?;
    Ok(())
}

/// Ends a command as `complete` or `error`.
pub fn finish(
    conn: &Connection,
    id: i64,
    ok: bool,
    detail: &str,
    result: Option<&serde_json::Value>,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE miner_commands SET status = ?2, detail = ?3, result_json = ?4, finished_at = ?5
         WHERE id = ?1",
        params![
            id,
            if ok { "complete" } else { "error" },
            detail,
            result.map(|r| r.to_string()),
            now_ms()
        ],
    )?;
    Ok(())
}

/// Commands left `running` by a shepherd that stopped: they can never finish now.
pub fn fail_interrupted(conn: &Connection) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE miner_commands SET status = 'error', finished_at = ?1,
           detail = 'interrupted: shepherd stopped while this command ran; run it again'
         WHERE status = 'running'",
        [now_ms()],
    )
}

/// Stores the configuration a miner was read with.
pub fn store_config(conn: &Connection, miner_id: i64, json: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE miners SET last_config_json = ?2, last_config_at = ?3 WHERE id = ?1",
        params![miner_id, json, now_ms()],
    )?;
    Ok(())
}

/// A miner's last read configuration and when.
pub fn last_config(
    conn: &Connection,
    miner_id: i64,
) -> rusqlite::Result<Option<(String, Option<i64>)>> {
    conn.query_row(
        "SELECT last_config_json, last_config_at FROM miners WHERE id = ?1",
        [miner_id],
        |r| {
            let json: Option<String> = r.get(0)?;
            Ok(json.map(|j| (j, r.get(1).ok().flatten())))
        },
    )
    .optional()
    .map(Option::flatten)
}

/// A raw SPIFFS partition image kept on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Backup {
    /// Row id (download URL).
    pub id: i64,
    /// Miner it came from.
    pub miner_id: i64,
    /// File path.
    pub path: String,
    /// Chip name, e.g. ESP32.
    pub chip: Option<String>,
    /// Factory MAC, or "unknown".
    pub mac: Option<String>,
    /// Partition offset in flash.
    pub offset: i64,
    /// Partition size.
    pub size: i64,
    /// SHA-256 of the file.
    pub sha256: String,
    /// When it was read (Unix ms).
    pub created_at: i64,
}

const BACKUP_COLUMNS: &str = "id, miner_id, path, chip, mac, offset, size, sha256, created_at";

fn backup_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Backup> {
    Ok(Backup {
        id: r.get(0)?,
        miner_id: r.get(1)?,
        path: r.get(2)?,
        chip: r.get(3)?,
        mac: r.get(4)?,
        offset: r.get(5)?,
        size: r.get(6)?,
        sha256: r.get(7)?,
        created_at: r.get(8)?,
    })
}

/// Records a backup (`id` is ignored); returns its id.
pub fn insert_backup(conn: &Connection, b: &Backup) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO config_backups (miner_id, path, chip, mac, offset, size, sha256, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            b.miner_id,
            b.path,
            b.chip,
            b.mac,
            b.offset,
            b.size,
            b.sha256,
            b.created_at
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// A miner's backups, newest first.
pub fn backups(conn: &Connection, miner_id: i64) -> rusqlite::Result<Vec<Backup>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {BACKUP_COLUMNS} FROM config_backups WHERE miner_id = ?1 ORDER BY id DESC"
    ))?;
    let rows = stmt.query_map([miner_id], backup_from_row)?;
    rows.collect()
}

/// One backup.
pub fn backup(conn: &Connection, id: i64) -> rusqlite::Result<Option<Backup>> {
    conn.query_row(
        &format!("SELECT {BACKUP_COLUMNS} FROM config_backups WHERE id = ?1"),
        [id],
        backup_from_row,
    )
    .optional()
}

/// Deletes all but the newest `keep` backup rows of a miner; returns the file paths of the
/// deleted rows so the caller removes the files.
pub fn prune_backups(
    conn: &Connection,
    miner_id: i64,
    keep: usize,
) -> rusqlite::Result<Vec<String>> {
    let old: Vec<(i64, String)> = {
        let mut stmt = conn.prepare_cached(
            "SELECT id, path FROM config_backups WHERE miner_id = ?1 ORDER BY id DESC LIMIT -1 OFFSET ?2",
        )?;
        let rows = stmt.query_map(params![miner_id, keep as i64], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    for (id, _) in &old {
        conn.execute("DELETE FROM config_backups WHERE id = ?1", [id])?;
    }
    Ok(old.into_iter().map(|(_, p)| p).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::miners;

    fn db() -> Connection {
        crate::db::memory_db()
    }

    #[test]
    fn command_lifecycle() {
        let c = db();
        let m = miners::add(&c, "garage", "/dev/ttyUSB0", "serial").unwrap();
        let id = insert(&c, m, "GET_CONFIG", Some("{\"method\":\"boot\"}")).unwrap();
        assert_eq!(pending(&c).unwrap().len(), 1);
        start(&c, id, "resetting").unwrap();
        assert!(pending(&c).unwrap().is_empty());
        set_detail(&c, id, "capturing").unwrap();
        let result = serde_json::json!({"config": {"poolString": "x"}});
        finish(&c, id, true, "done", Some(&result)).unwrap();
        let row = get(&c, id).unwrap().unwrap();
        assert_eq!(row.status, "complete");
        assert_eq!(row.result, Some(result));
        assert!(row.finished_at.is_some() && row.started_at.is_some());
        assert_eq!(recent(&c, m, 5).unwrap().len(), 1);
    }

    #[test]
    fn interrupted_commands_are_failed_at_start() {
        let c = db();
        let m = miners::add(&c, "garage", "/dev/ttyUSB0", "serial").unwrap();
        let id = insert(&c, m, "GET_CONFIG", None).unwrap();
        start(&c, id, "reading").unwrap();
        assert_eq!(fail_interrupted(&c).unwrap(), 1);
        assert_eq!(get(&c, id).unwrap().unwrap().status, "error");
    }

    #[test]
    fn config_is_stored_with_its_time() {
        let c = db();
        let m = miners::add(&c, "garage", "/dev/ttyUSB0", "serial").unwrap();
        assert_eq!(last_config(&c, m).unwrap(), None);
        store_config(&c, m, "{}").unwrap();
        let (json, at) = last_config(&c, m).unwrap().unwrap();
        assert_eq!(json, "{}");
        assert!(at.is_some());
    }

    #[test]
    fn backups_are_pruned_to_the_newest() {
        let c = db();
        let m = miners::add(&c, "garage", "/dev/ttyUSB0", "serial").unwrap();
        for i in 0..5 {
            insert_backup(
                &c,
                &Backup {
                    id: 0,
                    miner_id: m,
                    path: format!("/b/{i}.bin"),
                    chip: Some("ESP32".into()),
                    mac: None,
                    offset: 0x31_0000,
                    size: 0xE_0000,
                    sha256: "00".into(),
                    created_at: i,
                },
            )
            .unwrap();
        }
        let gone = prune_backups(&c, m, 2).unwrap();
        assert_eq!(gone, ["/b/2.bin", "/b/1.bin", "/b/0.bin"]);
        let left: Vec<String> = backups(&c, m)
            .unwrap()
            .into_iter()
            .map(|b| b.path)
            .collect();
        assert_eq!(left, ["/b/4.bin", "/b/3.bin"]);
    }
}
