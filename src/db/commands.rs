//! `miner_commands` (a [`CommandKind`] queued for a miner's actor), the configuration a miner
//! was last read with, `config_backups`, and the restore-after-replug bookkeeping (a write cut
//! off by the cable leaves an intent; the next opening of the port queues its restore). Writes
//! go through the DbActor (or the CLI's own connection); reads through any connection.

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::clock::now_ms;

/// What a miner's actor can be asked to do with its port. Stored in `miner_commands.command`
/// under its [`CommandKind::as_str`] name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CommandKind {
    /// Read the miner's configuration (boot capture or flash read).
    GetConfig,
    /// Write a configuration, or restore a stored backup.
    SetConfig,
    /// Read-only check of the flash link, with a protocol trace.
    Doctor,
    /// Reset the board through its serial lines (identify, self-healing).
    Reset,
}

impl CommandKind {
    /// Every kind, in the order the manage page lists them.
    pub const ALL: [CommandKind; 4] = [
        CommandKind::GetConfig,
        CommandKind::SetConfig,
        CommandKind::Doctor,
        CommandKind::Reset,
    ];

    /// The name stored in the table and shown to people.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandKind::GetConfig => "GET_CONFIG",
            CommandKind::SetConfig => "SET_CONFIG",
            CommandKind::Doctor => "DOCTOR",
            CommandKind::Reset => "RESET",
        }
    }

    /// The kind stored as `name`; `None` for a name this version does not know (a newer
    /// shepherd wrote it).
    pub fn parse(name: &str) -> Option<CommandKind> {
        CommandKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for CommandKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    command: CommandKind,
    payload: Option<&str>,
) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO miner_commands (miner_id, command, payload, status, detail, created_at)
         VALUES (?1, ?2, ?3, 'pending', 'queued: waiting for the miner''s reader to take it', ?4)",
        params![miner_id, command.as_str(), payload, now_ms()],
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

/// Commands left `running` by a shepherd that stopped (or a Pi that lost power): they can
/// never finish now. A write that had recorded a restore intent says which backup goes back
/// when the miner's port opens (the reader queues it then).
pub fn fail_interrupted(conn: &Connection) -> rusqlite::Result<usize> {
    let writes = conn.execute(
        "UPDATE miner_commands SET status = 'error', finished_at = ?1,
           detail = 'interrupted: shepherd stopped (or lost power) during this write; backup #'
             || (SELECT backup_id FROM restore_intents i WHERE i.miner_id = miner_commands.miner_id)
             || ' will be written back when the miner''s port opens'
         WHERE status = 'running' AND command = 'SET_CONFIG'
           AND miner_id IN (SELECT miner_id FROM restore_intents)",
        [now_ms()],
    )?;
    let others = conn.execute(
        "UPDATE miner_commands SET status = 'error', finished_at = ?1,
           detail = 'interrupted: shepherd stopped while this command ran; run it again'
         WHERE status = 'running'",
        [now_ms()],
    )?;
    Ok(writes + others)
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
    /// Whether it mounts with the firmware's parameters and holds a `/config.json` object
    /// (`None`: stored before that was recorded).
    pub config_ok: Option<bool>,
}

const BACKUP_COLUMNS: &str =
    "id, miner_id, path, chip, mac, offset, size, sha256, created_at, config_ok";

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
        config_ok: r.get(9)?,
    })
}

/// Records a backup (`id` is ignored); returns its id.
pub fn insert_backup(conn: &Connection, b: &Backup) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO config_backups
           (miner_id, path, chip, mac, offset, size, sha256, created_at, config_ok)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            b.miner_id,
            b.path,
            b.chip,
            b.mac,
            b.offset,
            b.size,
            b.sha256,
            b.created_at,
            b.config_ok
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
/// deleted rows so the caller removes the files. Whatever `keep` says, two kinds stay: the
/// newest backup known to hold a valid `/config.json` (else, for backups stored before that was
/// recorded, the newest of those), so a run of writes that each backed up a broken partition
/// never pushes the last good configuration out; and every backup a restore intent names.
pub fn prune_backups(
    conn: &Connection,
    miner_id: i64,
    keep: usize,
) -> rusqlite::Result<Vec<String>> {
    let all: Vec<(i64, String, Option<bool>)> = {
        let mut stmt = conn.prepare_cached(
            "SELECT id, path, config_ok FROM config_backups WHERE miner_id = ?1 ORDER BY id DESC",
        )?;
        let rows = stmt.query_map([miner_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    let referenced: Vec<i64> = {
        let mut stmt = conn.prepare_cached("SELECT backup_id FROM restore_intents")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    let flags: Vec<(i64, Option<bool>)> = all.iter().map(|(id, _, ok)| (*id, *ok)).collect();
    let doomed = backups_to_prune(&flags, keep, &referenced);
    let mut paths = Vec::with_capacity(doomed.len());
    for (id, path, _) in all.into_iter().filter(|(id, _, _)| doomed.contains(id)) {
        conn.execute("DELETE FROM config_backups WHERE id = ?1", [id])?;
        paths.push(path);
    }
    Ok(paths)
}

/// Which of a miner's backups (`(id, config_ok)`, newest first) pruning deletes: all but the
/// newest `keep`, the newest good one (see [`prune_backups`]) and those in `referenced`.
pub fn backups_to_prune(
    newest_first: &[(i64, Option<bool>)],
    keep: usize,
    referenced: &[i64],
) -> Vec<i64> {
    let good = newest_first
        .iter()
        .find(|(_, ok)| *ok == Some(true))
        .or_else(|| newest_first.iter().find(|(_, ok)| ok.is_none()))
        .map(|(id, _)| *id);
    newest_first
        .iter()
        .skip(keep)
        .map(|(id, _)| *id)
        .filter(|id| Some(*id) != good && !referenced.contains(id))
        .collect()
}

/// A write's durable promise to put backup `backup_id` back on a miner (see `restore_intents`
/// in schema.sql): it outlives a cut cable, a crash and a power loss.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreIntent {
    /// The miner.
    pub miner_id: i64,
    /// The good backup to put back.
    pub backup_id: i64,
    /// The command that recorded it last.
    pub command_id: Option<i64>,
    /// Automatic restores queued for it so far.
    pub attempts: i64,
    /// When the incident began (Unix ms).
    pub created_at: i64,
}

/// Records (or re-points) a miner's restore intent and makes it durable before returning:
/// the commit is synced to disk (`synchronous = FULL` for this one transaction; the writer
/// otherwise runs with NORMAL, whose last commits a power loss may roll back). The attempt count of an
/// existing intent is kept, so re-pointing it never restarts the count (no restore loop).
pub fn record_intent(
    conn: &mut Connection,
    miner_id: i64,
    backup_id: i64,
    command_id: i64,
) -> rusqlite::Result<()> {
    let before: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    let done = (|| {
        let tx = conn.transaction()?;
        let now = now_ms();
        tx.execute(
            "INSERT INTO restore_intents (miner_id, backup_id, command_id, attempts, created_at, updated_at)
             VALUES (?1, ?2, ?3, 0, ?4, ?4)
             ON CONFLICT (miner_id) DO UPDATE SET backup_id = excluded.backup_id,
               command_id = excluded.command_id, updated_at = excluded.updated_at",
            params![miner_id, backup_id, command_id, now],
        )?;
        tx.commit()
    })();
    let back = conn.pragma_update(None, "synchronous", before);
    done.and(back)
}

/// A miner's restore intent, if any.
pub fn intent(conn: &Connection, miner_id: i64) -> rusqlite::Result<Option<RestoreIntent>> {
    conn.query_row(
        "SELECT miner_id, backup_id, command_id, attempts, created_at FROM restore_intents
         WHERE miner_id = ?1",
        [miner_id],
        |r| {
            Ok(RestoreIntent {
                miner_id: r.get(0)?,
                backup_id: r.get(1)?,
                command_id: r.get(2)?,
                attempts: r.get(3)?,
                created_at: r.get(4)?,
            })
        },
    )
    .optional()
}

/// Counts one more automatic restore queued for a miner's intent.
pub fn count_restore_attempt(conn: &Connection, miner_id: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE restore_intents SET attempts = attempts + 1, updated_at = ?2 WHERE miner_id = ?1",
        params![miner_id, now_ms()],
    )?;
    Ok(())
}

/// The miner is confirmed running a good configuration: nothing to put back any more.
pub fn clear_intent(conn: &Connection, miner_id: i64) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM restore_intents WHERE miner_id = ?1",
        [miner_id],
    )?;
    Ok(())
}

/// Automatic restores queued for one incident (a restore intent) before shepherd stops
/// retrying by itself and says so: a restore that keeps failing is not a loop.
pub const MAX_AUTO_RESTORES: i64 = 3;

/// What a restoring SET_CONFIG carries under [`RESTORE_KEY`] (the API fills it from the `config_backups` row).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct RestorePayload {
    /// The backup's row id.
    pub backup_id: i64,
    /// Its image file.
    pub path: String,
    /// Partition offset it was read from.
    pub offset: i64,
    /// Partition size.
    pub size: i64,
    /// SHA-256 of the file when it was stored.
    pub sha256: String,
    /// Factory MAC of the chip it was read from (absent in payloads queued by older versions:
    /// then taken from the backup's row).
    #[serde(default)]
    pub mac: Option<String>,
    /// Queued by shepherd for a restore intent: a backup damaged on disk is replaced by the
    /// newest intact one of the same chip instead of failing.
    #[serde(default)]
    pub automatic: bool,
}

impl RestorePayload {
    /// The payload that restores backup `b`.
    pub fn of(b: &Backup, automatic: bool) -> Self {
        Self {
            backup_id: b.id,
            path: b.path.clone(),
            offset: b.offset,
            size: b.size,
            sha256: b.sha256.clone(),
            mac: b.mac.clone(),
            automatic,
        }
    }

    /// The backup row this payload names (miner and chip unknown to it).
    pub fn row(&self) -> Backup {
        Backup {
            id: self.backup_id,
            miner_id: 0,
            path: self.path.clone(),
            chip: None,
            mac: self.mac.clone(),
            offset: self.offset,
            size: self.size,
            sha256: self.sha256.clone(),
            created_at: 0,
            config_ok: None,
        }
    }
}

/// The payload key that makes a SET_CONFIG a restore of a stored backup (no firmware has a
/// config key of that name). Carried by SET_CONFIG rather than a command of its own so the
/// `miner_commands` table keeps its schema.
pub const RESTORE_KEY: &str = crate::flash::nerd_config::RESERVED_KEY;

/// The SET_CONFIG payload that restores backup `p`.
pub fn restore_payload(p: &RestorePayload) -> String {
    json!({ RESTORE_KEY: p }).to_string()
}

/// Called when a miner's port opens: if the miner has a restore intent (a write that could not
/// finish, or shepherd stopped in the middle of one), queues the restore of its backup —
/// unless a command for the miner is already queued or running (it goes first; the next
/// opening decides again), or [`MAX_AUTO_RESTORES`] were already queued for this intent.
/// Returns the new command's id.
pub fn queue_restore_after_replug(
    c: &rusqlite::Connection,
    miner_id: i64,
) -> rusqlite::Result<Option<i64>> {
    let Some(intent) = intent(c, miner_id)? else {
        return Ok(None);
    };
    let busy: Option<i64> = c
        .query_row(
            "SELECT id FROM miner_commands WHERE miner_id = ?1 AND status IN ('pending', 'running')
             LIMIT 1",
            [miner_id],
            |r| r.get(0),
        )
        .optional()?;
    if busy.is_some() {
        return Ok(None);
    }
    if intent.attempts >= MAX_AUTO_RESTORES {
        tracing::warn!(
            miner = miner_id,
            "backup #{} still has to be restored, but {MAX_AUTO_RESTORES} automatic restores \
             failed: restore it by hand from the manage page",
            intent.backup_id
        );
        return Ok(None);
    }
    let Some(b) = backup(c, intent.backup_id)? else {
        tracing::error!(
            miner = miner_id,
            "the restore intent names backup #{}, which no longer exists",
            intent.backup_id
        );
        return Ok(None);
    };
    count_restore_attempt(c, miner_id)?;
    let payload = restore_payload(&RestorePayload::of(&b, true));
    let id = insert(c, miner_id, CommandKind::SetConfig, Some(&payload))?;
    let since = intent
        .command_id
        .map(|w| format!(" since write #{w}"))
        .unwrap_or_default();
    set_detail(
        c,
        id,
        &format!(
            "queued: automatic restore of backup #{} (attempt {} of {MAX_AUTO_RESTORES}): the \
             miner has not been confirmed on a good configuration{since}",
            b.id,
            intent.attempts + 1
        ),
    )?;
    Ok(Some(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::miners;

    fn db() -> Connection {
        crate::db::memory_db()
    }

    /// A write that recorded backup `b` as its intent and then ended without confirmation.
    fn cut_off_write(c: &mut rusqlite::Connection, m: i64) -> (i64, i64) {
        let b = insert_backup(
            c,
            &Backup {
                id: 0,
                miner_id: m,
                path: "/b/1.bin".into(),
                chip: None,
                mac: Some("24:d7:eb:10:20:01".into()),
                offset: 0x31_0000,
                size: 0xE_0000,
                sha256: "00".into(),
                created_at: 0,
                config_ok: Some(true),
            },
        )
        .unwrap();
        let id = insert(c, m, CommandKind::SetConfig, Some("{}")).unwrap();
        record_intent(c, m, b, id).unwrap();
        finish(c, id, false, "cut off", None).unwrap();
        (b, id)
    }

    fn payload_of(c: &rusqlite::Connection, id: i64) -> RestorePayload {
        let row = get(c, id).unwrap().unwrap();
        assert_eq!(row.command, CommandKind::SetConfig.as_str());
        let v: serde_json::Value = serde_json::from_str(row.payload.as_deref().unwrap()).unwrap();
        serde_json::from_value(v[RESTORE_KEY].clone()).unwrap()
    }

    #[test]
    fn a_cut_off_write_queues_its_restore_once_per_opening_while_it_is_pending() {
        let mut c = db();
        let m = miners::add(&c, "garage", "/dev/ttyUSB0", "serial").unwrap();
        let (b, _) = cut_off_write(&mut c, m);
        let id = queue_restore_after_replug(&c, m).unwrap().unwrap();
        let p = payload_of(&c, id);
        assert_eq!(p.backup_id, b);
        assert!(p.automatic);
        assert_eq!(p.mac.as_deref(), Some("24:d7:eb:10:20:01"));
        assert!(get(&c, id)
            .unwrap()
            .unwrap()
            .detail
            .unwrap()
            .contains("attempt 1 of 3"));
        // Reopening while it is still queued does not queue a second one.
        assert_eq!(queue_restore_after_replug(&c, m).unwrap(), None);
        assert_eq!(intent(&c, m).unwrap().unwrap().attempts, 1);
    }

    #[test]
    fn a_restore_that_keeps_failing_is_queued_three_times_then_no_more() {
        let mut c = db();
        let m = miners::add(&c, "garage", "/dev/ttyUSB0", "serial").unwrap();
        let (b, _) = cut_off_write(&mut c, m);
        for attempt in 1..=MAX_AUTO_RESTORES {
            let id = queue_restore_after_replug(&c, m).unwrap().unwrap();
            assert_eq!(payload_of(&c, id).backup_id, b, "attempt {attempt}");
            // It fails again, and re-records the same intent before its own write.
            record_intent(&mut c, m, b, id).unwrap();
            finish(&c, id, false, "cut off again", None).unwrap();
        }
        assert_eq!(queue_restore_after_replug(&c, m).unwrap(), None);
        assert_eq!(intent(&c, m).unwrap().unwrap().attempts, MAX_AUTO_RESTORES);
    }

    #[test]
    fn nothing_is_queued_without_an_intent_or_while_a_command_is_queued() {
        let mut c = db();
        let m = miners::add(&c, "garage", "/dev/ttyUSB0", "serial").unwrap();
        assert_eq!(queue_restore_after_replug(&c, m).unwrap(), None);
        cut_off_write(&mut c, m);
        let get = insert(&c, m, CommandKind::GetConfig, None).unwrap();
        assert_eq!(queue_restore_after_replug(&c, m).unwrap(), None);
        finish(&c, get, true, "read", None).unwrap();
        assert!(queue_restore_after_replug(&c, m).unwrap().is_some());
        // Confirmed on a good configuration: nothing more to restore.
        let mut c2 = db();
        let m2 = miners::add(&c2, "shed", "/dev/ttyUSB1", "serial").unwrap();
        cut_off_write(&mut c2, m2);
        clear_intent(&c2, m2).unwrap();
        assert_eq!(queue_restore_after_replug(&c2, m2).unwrap(), None);
    }

    #[test]
    fn command_lifecycle() {
        let c = db();
        let m = miners::add(&c, "garage", "/dev/ttyUSB0", "serial").unwrap();
        let id = insert(&c, m, CommandKind::GetConfig, Some("{\"method\":\"boot\"}")).unwrap();
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
        let id = insert(&c, m, CommandKind::GetConfig, None).unwrap();
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
                    config_ok: Some(true),
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

    fn backup_row(c: &Connection, m: i64, i: i64, ok: Option<bool>) -> i64 {
        insert_backup(
            c,
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
                config_ok: ok,
            },
        )
        .unwrap()
    }

    #[test]
    fn pruning_keeps_the_newest_good_backup_and_those_an_intent_names() {
        let mut c = db();
        let m = miners::add(&c, "garage", "/dev/ttyUSB0", "serial").unwrap();
        let good = backup_row(&c, m, 0, Some(true));
        let named = backup_row(&c, m, 1, Some(false));
        let cmd = insert(&c, m, CommandKind::SetConfig, None).unwrap();
        record_intent(&mut c, m, named, cmd).unwrap();
        // Four writes that each backed up a partition without a configuration.
        for i in 2..6 {
            backup_row(&c, m, i, Some(false));
        }
        let gone = prune_backups(&c, m, 2).unwrap();
        assert_eq!(gone, ["/b/3.bin", "/b/2.bin"]);
        let left: Vec<i64> = backups(&c, m).unwrap().iter().map(|b| b.id).collect();
        assert!(left.contains(&good) && left.contains(&named), "{left:?}");
        assert_eq!(left.len(), 4);
        // Once the intent is gone and a newer good backup exists, the old ones go.
        clear_intent(&c, m).unwrap();
        backup_row(&c, m, 6, Some(true));
        let gone = prune_backups(&c, m, 2).unwrap();
        assert_eq!(gone, ["/b/4.bin", "/b/1.bin", "/b/0.bin"]);
    }

    #[test]
    fn without_a_known_good_backup_the_newest_unknown_one_is_kept() {
        assert_eq!(
            backups_to_prune(
                &[(5, Some(false)), (4, Some(false)), (3, None), (2, None)],
                1,
                &[]
            ),
            [4, 2]
        );
        assert_eq!(
            backups_to_prune(&[(5, Some(false)), (4, Some(true)), (3, None)], 1, &[3]),
            Vec::<i64>::new()
        );
        assert_eq!(
            backups_to_prune(&[(2, None), (1, Some(true))], 5, &[]),
            Vec::<i64>::new()
        );
    }

    #[test]
    fn an_intent_keeps_its_attempts_when_re_pointed_and_is_cleared_once() {
        let mut c = db();
        let m = miners::add(&c, "garage", "/dev/ttyUSB0", "serial").unwrap();
        let a = backup_row(&c, m, 0, Some(true));
        let b = backup_row(&c, m, 1, Some(true));
        assert_eq!(intent(&c, m).unwrap(), None);
        let cmd = insert(&c, m, CommandKind::SetConfig, None).unwrap();
        record_intent(&mut c, m, a, cmd).unwrap();
        count_restore_attempt(&c, m).unwrap();
        record_intent(&mut c, m, b, cmd).unwrap();
        let i = intent(&c, m).unwrap().unwrap();
        assert_eq!((i.backup_id, i.attempts, i.command_id), (b, 1, Some(cmd)));
        c.pragma_update(None, "synchronous", "NORMAL").unwrap();
        record_intent(&mut c, m, b, cmd).unwrap();
        let sync: i64 = c
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 1, "back to NORMAL after the synced commit");
        clear_intent(&c, m).unwrap();
        assert_eq!(intent(&c, m).unwrap(), None);
    }

    #[test]
    fn an_interrupted_write_with_an_intent_names_its_backup() {
        let mut c = db();
        let m = miners::add(&c, "garage", "/dev/ttyUSB0", "serial").unwrap();
        let other = miners::add(&c, "shed", "/dev/ttyUSB1", "serial").unwrap();
        let b = backup_row(&c, m, 0, Some(true));
        let write = insert(&c, m, CommandKind::SetConfig, Some("{}")).unwrap();
        start(&c, write, "writing").unwrap();
        record_intent(&mut c, m, b, write).unwrap();
        let read = insert(&c, other, CommandKind::GetConfig, None).unwrap();
        start(&c, read, "reading").unwrap();
        assert_eq!(fail_interrupted(&c).unwrap(), 2);
        let w = get(&c, write).unwrap().unwrap();
        assert_eq!(w.status, "error");
        assert!(
            w.detail
                .as_deref()
                .unwrap()
                .contains(&format!("backup #{b} will be written back")),
            "{w:?}"
        );
        assert!(get(&c, read)
            .unwrap()
            .unwrap()
            .detail
            .unwrap()
            .contains("run it again"));
        // The intent itself stays for the reader to act on.
        assert!(intent(&c, m).unwrap().is_some());
    }
}
