//! Opening the database and bringing its schema up to date.
//!
//! `schema.sql` is always the whole current schema, applied with `CREATE … IF NOT EXISTS`, and
//! `PRAGMA user_version` records which version a file holds. Upgrades add what an older file
//! lacks: missing columns are found by comparing each table with a scratch database built
//! from `schema.sql`, so adding a column to `schema.sql` is all a new version needs.
//!
//! Versions: 1 — the Flask prototype's database (same table names, fewer columns, e.g.
//! `miners(id, name, port, last_config_json)`); 2 — this program's first schema; 3 — on the
//! discovery line: probe results in `unconfigured_devices`, tty unique among present devices
//! only; on the flash line: command results (`miner_commands.result_json`, `started_at`);
//! 4 — both (either kind of version 3 file gains what the other added).
//! 5 — `alerts` (alert rules' history). 6 — `alert_settings` (rules changed on `/settings`).
//! 7 — `miner_logs` without its `(miner_id, id)` index and foreign key, found per miner
//! through `miner_log_spans` (see [`super::logs`]); upgrading rewrites the log table once.
//! 8 — `restore_intents` (a write's durable promise to put a good backup back) and
//! `config_backups.config_ok`. 9 — `read_tokens` (read-only tokens for kiosks and Prometheus).
//! 10 — `miner_reboots` (reboot history with crash context) and the firmware-truth columns
//! of `miner_summary` (boot time, lifetime time mining, NVS restore, diagnosis evidence).
//! 11 — `miner_commands` also takes `DOCTOR` (the table is rebuilt once: SQLite cannot change
//! a CHECK constraint in place).
//! 12 — the lottery: `share_records`, `lottery_hours`, `lottery_totals`, `share_histogram`,
//! `found_blocks` (see [`super::records`]).
//! 13 — `miner_commands` also takes `RESET` (identify, self-healing; rebuilt again).
//! 14 — `pool_profiles` and `miner_desired` (fleet configuration as desired state, see
//! [`crate::fleet`]).
//! 15 — `failover_state` (failover timers and rate-limit counts survive a restart) and
//! `pool_profiles.time_zone` (schedule windows in a profile's own zone).
//! 16 — `miners.kind` also takes `axeos` (Bitaxe/NerdQAxe over HTTP, `port` holds the URL;
//! the table is rebuilt once, keeping every id so the tables that refer to it stay whole).
//! 17 — `hub_sites`, `hub_miners`, `hub_history`, `hub_events`, `hub_runs` (other sites seen
//! through the MQTT broker, see [`crate::hub`]).
//! 18 — `miner_summary.chip_model` (the chip a miner names itself: a NerdMiner's boot line, an
//! AxeOS miner's ASIC model).
//!
//! Every Shepherd database carries [`APPLICATION_ID`] in its header. Before anything is written
//! to a file, [`check_identity`] refuses one that belongs to another program and one written by
//! a newer Shepherd, so such a file is left byte for byte as it was.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

/// The whole current schema.
pub const SCHEMA: &str = include_str!("../../schema.sql");

/// The version `schema.sql` describes.
pub const SCHEMA_VERSION: i64 = 18;

/// `PRAGMA application_id` of a Shepherd database: "SHPD" in ASCII.
pub const APPLICATION_ID: i32 = 0x5348_5044;

/// What `migrate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Migration {
    /// A new, empty database got the current schema.
    Created,
    /// An older database was upgraded; the columns that were added, as `table.column`.
    Upgraded {
        /// Version found in the file.
        from: i64,
        /// Columns added.
        added: Vec<String>,
    },
    /// Nothing to do.
    Current,
}

/// Why the database could not be opened or upgraded.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite said no.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The file was written by a newer Shepherd.
    #[error(
        "the database {path} has schema version {found}, newer than this program's \
         {SCHEMA_VERSION}: upgrade shepherd, or point --database at another file (nothing in it \
         was changed)"
    )]
    TooNew {
        /// The file.
        path: String,
        /// Version in the file.
        found: i64,
    },
    /// The file is an SQLite database of some other program.
    #[error(
        "{path} is not a Shepherd database ({reason}): point --database (or [database] path) \
         at the Shepherd's own file; nothing in this one was changed"
    )]
    Foreign {
        /// The file.
        path: String,
        /// What gave it away.
        reason: String,
    },
    /// The file could not be opened at all.
    #[error("cannot open database {path}: {source} (check the path and that its folder exists and is writable)")]
    Open {
        /// The file.
        path: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
}

fn path_of(conn: &Connection) -> String {
    match conn.path() {
        Some(p) if !p.is_empty() => p.to_owned(),
        _ => ":memory:".into(),
    }
}

/// Refuses, before anything is written, a file that is not ours or is newer than us. Reads
/// only the header fields and the table list.
pub fn check_identity(conn: &Connection) -> Result<(), DbError> {
    let path = path_of(conn);
    let not_db = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => DbError::Foreign {
            path: path.clone(),
            reason: "it is not an SQLite database at all".into(),
        },
        _ => DbError::Open {
            path: path.clone(),
            source: e,
        },
    };
    let app_id: i32 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(not_db)?;
    if app_id != 0 && app_id != APPLICATION_ID {
        return Err(DbError::Foreign {
            path,
            reason: format!("its application_id is 0x{app_id:08x}, another program's"),
        });
    }
    if app_id == 0 {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .map_err(not_db)?;
        let tables: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        // A file of ours from before application_id (or the prototype's) has `miners`.
        if !tables.is_empty() && !tables.iter().any(|t| t == "miners") {
            let mut shown: Vec<&str> = tables.iter().take(5).map(String::as_str).collect();
            if tables.len() > shown.len() {
                shown.push("…");
            }
            return Err(DbError::Foreign {
                path,
                reason: format!("it holds tables {} and none of ours", shown.join(", ")),
            });
        }
    }
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(DbError::TooNew { path, found });
    }
    Ok(())
}

/// Opens (creating if needed) the database for writing and upgrades its schema.
pub fn open_writer(path: &Path) -> Result<(Connection, Migration), DbError> {
    let mut conn = Connection::open(path).map_err(|source| DbError::Open {
        path: path.display().to_string(),
        source,
    })?;
    check_identity(&conn)?;
    // WAL lets the web's readers run while ingest writes; NORMAL is durable across app
    // crashes and costs far fewer SD-card syncs than FULL.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // 8 MiB of page cache keeps the hot index pages of the log tables in memory.
    conn.pragma_update(None, "cache_size", -8000)?;
    let migration = migrate(&mut conn)?;
    Ok((conn, migration))
}

/// Opens a read-only connection to an existing database (web pages, summarizer).
pub fn open_reader(path: &Path) -> Result<Connection, DbError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| DbError::Open {
        path: path.display().to_string(),
        source,
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// Brings `conn` to `SCHEMA_VERSION`; safe to run on every start.
pub fn migrate(conn: &mut Connection) -> Result<Migration, DbError> {
    check_identity(conn)?;
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let has_tables = table_exists(conn, "miners")?;
    if found == SCHEMA_VERSION {
        let app_id: i32 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
        if app_id != APPLICATION_ID {
            conn.pragma_update(None, "application_id", APPLICATION_ID)?;
        }
        return Ok(Migration::Current);
    }
    // Rebuilding a table with foreign keys on would check every row it drops; they are
    // switched back on (if they were) whatever happens.
    let foreign_keys: bool = conn.pragma_query_value(None, "foreign_keys", |r| r.get(0))?;
    conn.pragma_update(None, "foreign_keys", false)?;
    let result = upgrade(conn, has_tables.then_some(found));
    conn.pragma_update(None, "foreign_keys", foreign_keys)?;
    let added = result?;
    Ok(if has_tables {
        Migration::Upgraded {
            from: found.max(1),
            added,
        }
    } else {
        Migration::Created
    })
}

/// Applies the schema in one transaction; `found` is the version of an existing file.
/// Returns the columns added.
fn upgrade(conn: &mut Connection, found: Option<i64>) -> rusqlite::Result<Vec<String>> {
    let tx = conn.transaction()?;
    let mut added = Vec::new();
    let mut old_logs = false;
    let mut old_commands = false;
    let mut old_miners = false;
    if let Some(found) = found {
        added = add_missing_columns(&tx)?;
        old_miners = found < 16 && table_exists(&tx, "miners")?;
        if old_miners {
            // Other tables' foreign keys name `miners`: with legacy_alter_table the rename
            // leaves them naming `miners`, which is the new table once it is created. Its
            // index and trigger are dropped so the schema creates them on the new table.
            tx.execute_batch(
                "DROP INDEX IF EXISTS miners_usb_serial;
                 DROP TRIGGER IF EXISTS miner_logs_of_deleted_miner;
                 PRAGMA legacy_alter_table = ON;
                 ALTER TABLE miners RENAME TO miners_v14;
                 PRAGMA legacy_alter_table = OFF;",
            )?;
        }
        old_commands = found < 13 && table_exists(&tx, "miner_commands")?;
        if old_commands {
            // No table refers to it, so renaming leaves no foreign key dangling.
            tx.execute_batch(
                "DROP INDEX IF EXISTS miner_commands_miner;
                 ALTER TABLE miner_commands RENAME TO miner_commands_v10;",
            )?;
        }
        old_logs = found < 7 && table_exists(&tx, "miner_logs")?;
        if old_logs {
            tracing::info!("upgrading the log table to schema 7; a large database takes a while");
            tx.execute_batch("ALTER TABLE miner_logs RENAME TO miner_logs_v6")?;
        }
    }
    tx.execute_batch(SCHEMA)?;
    // Before anything that reads `miners` (the log move keeps lines of existing miners).
    if old_miners {
        tx.execute_batch(
            "INSERT INTO miners (id, name, port, usb_serial, by_id_path, kind, enabled, pool_id,
                                 address_id, last_config_json, last_config_at, created_at)
               SELECT id, name, port, usb_serial, by_id_path, kind, enabled, pool_id,
                      address_id, last_config_json, last_config_at, created_at FROM miners_v14;
             DROP TABLE miners_v14;",
        )?;
    }
    if old_logs {
        // Lines of miners that no longer exist are left behind (the old foreign key would
        // have removed them).
        super::logs::spans_from_rows(&tx, "miner_logs_v6")?;
        tx.execute_batch(
            "INSERT INTO miner_logs (id, miner_id, ts, line, truncated)
               SELECT id, miner_id, ts, line, truncated FROM miner_logs_v6
               WHERE miner_id IN (SELECT id FROM miners) ORDER BY id;
             DROP TABLE miner_logs_v6;",
        )?;
    }
    if old_commands {
        tx.execute_batch(
            "INSERT INTO miner_commands (id, miner_id, command, payload, status, detail,
                                         created_at, finished_at, result_json, started_at)
               SELECT id, miner_id, command, payload, status, detail,
                      created_at, finished_at, result_json, started_at FROM miner_commands_v10;
             DROP TABLE miner_commands_v10;",
        )?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    tx.commit()?;
    Ok(added)
}

fn table_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
        [name],
        |r| r.get(0),
    )
}

/// One column as `PRAGMA table_info` describes it.
struct Column {
    name: String,
    decl_type: String,
    not_null: bool,
    default: Option<String>,
}

fn columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<Column>> {
    let mut stmt =
        conn.prepare("SELECT name, type, \"notnull\", dflt_value FROM pragma_table_info(?1)")?;
    let rows = stmt.query_map([table], |r| {
        Ok(Column {
            name: r.get(0)?,
            decl_type: r.get(1)?,
            not_null: r.get(2)?,
            default: r.get(3)?,
        })
    })?;
    rows.collect()
}

fn add_missing_columns(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let target = Connection::open_in_memory()?;
    target.execute_batch(SCHEMA)?;
    let mut stmt = target.prepare("SELECT name FROM sqlite_master WHERE type = 'table'")?;
    let tables: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut added = Vec::new();
    for table in tables {
        let have = columns(conn, &table)?;
        if have.is_empty() {
            continue; // a whole new table: schema.sql creates it
        }
        for col in columns(&target, &table)? {
            if have.iter().any(|c| c.name.eq_ignore_ascii_case(&col.name)) {
                continue;
            }
            // ALTER TABLE cannot add a NOT NULL column without a default; give one.
            let default = match (&col.default, col.not_null) {
                (Some(d), _) => format!(" DEFAULT {d}"),
                (None, true) if col.decl_type.eq_ignore_ascii_case("TEXT") => " DEFAULT ''".into(),
                (None, true) => " DEFAULT 0".into(),
                (None, false) => String::new(),
            };
            let not_null = if col.not_null { " NOT NULL" } else { "" };
            conn.execute_batch(&format!(
                "ALTER TABLE \"{table}\" ADD COLUMN \"{}\" {}{not_null}{default}",
                col.name, col.decl_type
            ))?;
            added.push(format!("{table}.{}", col.name));
        }
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Flask prototype's layout (version 1), with a little data.
    const PROTOTYPE: &str = "
        CREATE TABLE miners (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, port TEXT NOT NULL,
                             last_config_json TEXT);
        CREATE TABLE pools (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, url TEXT NOT NULL,
                            port INTEGER NOT NULL);
        CREATE TABLE coin_addresses (id INTEGER PRIMARY KEY, label TEXT NOT NULL UNIQUE,
                                     address TEXT NOT NULL);
        CREATE TABLE miner_logs (id INTEGER PRIMARY KEY, miner_id INTEGER NOT NULL, ts INTEGER NOT NULL,
                                 line TEXT NOT NULL);
        CREATE TABLE miner_summary (miner_id INTEGER PRIMARY KEY, hashrate_khs REAL, last_seen INTEGER);
        CREATE TABLE unconfigured_devices (id INTEGER PRIMARY KEY, tty TEXT NOT NULL);
        CREATE TABLE miner_commands (id INTEGER PRIMARY KEY, miner_id INTEGER NOT NULL,
                                     command TEXT NOT NULL, payload TEXT, status TEXT NOT NULL,
                                     created_at INTEGER NOT NULL);
        INSERT INTO miners (id, name, port) VALUES (1, 'garage', '/dev/ttyUSB0');
        INSERT INTO pools (name, url, port) VALUES ('public', 'public-pool.io', 21496);
        INSERT INTO miner_logs (miner_id, ts, line) VALUES (1, 1000, 'hello'), (1, 2000, 'world');
        PRAGMA user_version = 1;
    ";

    fn table_names(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn column_names(conn: &Connection, table: &str) -> Vec<String> {
        let mut v: Vec<String> = columns(conn, table)
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect();
        v.sort();
        v
    }

    #[test]
    fn fresh_database_gets_every_table() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), Migration::Created);
        let tables = table_names(&conn);
        for t in [
            "miners",
            "unconfigured_devices",
            "miner_logs",
            "miner_summary",
            "pools",
            "coin_addresses",
            "miner_commands",
            "alerts",
            "alert_settings",
            "miner_reboots",
        ] {
            assert!(tables.contains(&t.to_string()), "missing {t} in {tables:?}");
        }
        assert!(column_names(&conn, "miners").contains(&"last_config_json".to_string()));
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
    }

    #[test]
    fn migrate_is_idempotent() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), Migration::Current);
    }

    #[test]
    fn prototype_database_upgrades_in_place_and_keeps_its_rows() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(PROTOTYPE).unwrap();
        let Migration::Upgraded { from, added } = migrate(&mut conn).unwrap() else {
            panic!("expected an upgrade");
        };
        assert_eq!(from, 1);
        assert!(
            added.contains(&"miners.usb_serial".to_string()),
            "{added:?}"
        );
        assert!(
            added.contains(&"miner_logs.truncated".to_string()),
            "{added:?}"
        );

        // Every table now has exactly the columns of a fresh database.
        let mut fresh = Connection::open_in_memory().unwrap();
        migrate(&mut fresh).unwrap();
        assert_eq!(table_names(&conn), table_names(&fresh));
        for t in table_names(&fresh) {
            assert_eq!(
                column_names(&conn, &t),
                column_names(&fresh, &t),
                "table {t}"
            );
        }
        let (name, kind, enabled): (String, String, bool) = conn
            .query_row(
                "SELECT name, kind, enabled FROM miners WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            (name.as_str(), kind.as_str(), enabled),
            ("garage", "serial", true)
        );
        let logs: i64 = conn
            .query_row("SELECT count(*) FROM miner_logs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(logs, 2);
        assert_eq!(migrate(&mut conn).unwrap(), Migration::Current);
    }

    #[test]
    fn version_2_gains_probe_columns_and_frees_absent_ttys() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE miners (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, port TEXT NOT NULL);
             CREATE TABLE unconfigured_devices (id INTEGER PRIMARY KEY, tty TEXT NOT NULL,
                 usb_serial TEXT, present INTEGER NOT NULL DEFAULT 1, ignored INTEGER NOT NULL DEFAULT 0);
             CREATE UNIQUE INDEX unconfigured_devices_tty ON unconfigured_devices(tty);
             INSERT INTO unconfigured_devices (tty, usb_serial, present, ignored)
                 VALUES ('/dev/ttyUSB0', 'A50285BI', 0, 1);
             PRAGMA user_version = 2;",
        )
        .unwrap();
        let Migration::Upgraded { from, added } = migrate(&mut conn).unwrap() else {
            panic!("expected an upgrade");
        };
        assert_eq!(from, 2);
        assert!(
            added.contains(&"unconfigured_devices.firmware".to_string()),
            "{added:?}"
        );
        // An ignored board that was unplugged keeps its row while another takes its tty...
        conn.execute(
            "INSERT INTO unconfigured_devices (tty, present) VALUES ('/dev/ttyUSB0', 1)",
            [],
        )
        .unwrap();
        // ...but two present devices cannot share one.
        assert!(conn
            .execute(
                "INSERT INTO unconfigured_devices (tty, present) VALUES ('/dev/ttyUSB0', 1)",
                [],
            )
            .is_err());
    }

    /// A version 3 file from the discovery line lacks the command result columns.
    #[test]
    fn discovery_version_3_gains_command_result_columns() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE miners (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, port TEXT NOT NULL);
             CREATE TABLE miner_commands (id INTEGER PRIMARY KEY, miner_id INTEGER NOT NULL,
                 command TEXT NOT NULL, payload TEXT, status TEXT NOT NULL, detail TEXT,
                 created_at INTEGER NOT NULL, finished_at INTEGER);
             PRAGMA user_version = 3;",
        )
        .unwrap();
        let Migration::Upgraded { from, added } = migrate(&mut conn).unwrap() else {
            panic!("expected an upgrade");
        };
        assert_eq!(from, 3);
        for col in ["miner_commands.result_json", "miner_commands.started_at"] {
            assert!(added.contains(&col.to_string()), "{col} not in {added:?}");
        }
    }

    /// A version 3 file from the flash line lacks the probe columns and has the old tty index.
    #[test]
    fn flash_version_3_gains_probe_columns_and_frees_absent_ttys() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE miners (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, port TEXT NOT NULL);
             CREATE TABLE unconfigured_devices (id INTEGER PRIMARY KEY, tty TEXT NOT NULL,
                 usb_serial TEXT, present INTEGER NOT NULL DEFAULT 1, ignored INTEGER NOT NULL DEFAULT 0);
             CREATE UNIQUE INDEX unconfigured_devices_tty ON unconfigured_devices(tty);
             INSERT INTO unconfigured_devices (tty, present, ignored) VALUES ('/dev/ttyUSB0', 0, 1);
             PRAGMA user_version = 3;",
        )
        .unwrap();
        let Migration::Upgraded { from, added } = migrate(&mut conn).unwrap() else {
            panic!("expected an upgrade");
        };
        assert_eq!(from, 3);
        assert!(
            added.contains(&"unconfigured_devices.probed_at".to_string()),
            "{added:?}"
        );
        conn.execute(
            "INSERT INTO unconfigured_devices (tty, present) VALUES ('/dev/ttyUSB0', 1)",
            [],
        )
        .unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), Migration::Current);
    }

    #[test]
    fn version_4_gains_the_alerts_table() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE miners (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, port TEXT NOT NULL);
             INSERT INTO miners (name, port) VALUES ('nm-1', '/dev/ttyUSB0');
             PRAGMA user_version = 4;",
        )
        .unwrap();
        let Migration::Upgraded { from, .. } = migrate(&mut conn).unwrap() else {
            panic!("expected an upgrade");
        };
        assert_eq!(from, 4);
        assert!(table_names(&conn).contains(&"alerts".to_string()));
        conn.execute(
            "INSERT INTO alerts (miner_id, rule, state, message, first_at, last_sent_at)
             VALUES (1, 'offline', 'active', 'nm-1 is offline', 1, 1)",
            [],
        )
        .unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), Migration::Current);
    }

    #[test]
    fn version_5_gains_the_alert_settings_table_and_keeps_its_alerts() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE miners (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, port TEXT NOT NULL);
             INSERT INTO miners (name, port) VALUES ('nm-1', '/dev/ttyUSB0');
             CREATE TABLE alerts (id INTEGER PRIMARY KEY, miner_id INTEGER NOT NULL, rule TEXT NOT NULL,
                 state TEXT NOT NULL, severity TEXT NOT NULL DEFAULT 'warning', message TEXT NOT NULL,
                 first_at INTEGER NOT NULL, last_sent_at INTEGER NOT NULL, resolved_at INTEGER);
             INSERT INTO alerts (miner_id, rule, state, message, first_at, last_sent_at)
                 VALUES (1, 'offline', 'active', 'nm-1 is offline', 1, 1);
             PRAGMA user_version = 5;",
        )
        .unwrap();
        let Migration::Upgraded { from, .. } = migrate(&mut conn).unwrap() else {
            panic!("expected an upgrade");
        };
        assert_eq!(from, 5);
        assert!(table_names(&conn).contains(&"alert_settings".to_string()));
        conn.execute(
            "INSERT INTO alert_settings (key, value) VALUES ('offline_minutes', '2')",
            [],
        )
        .unwrap();
        let alerts: i64 = conn
            .query_row("SELECT count(*) FROM alerts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(alerts, 1);
        assert_eq!(migrate(&mut conn).unwrap(), Migration::Current);
    }

    #[test]
    fn version_6_logs_move_to_spans_and_keep_every_line_of_every_miner() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", true).unwrap();
        conn.execute_batch(
            "CREATE TABLE miners (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, port TEXT NOT NULL);
             INSERT INTO miners (id, name, port) VALUES (1, 'a', '/dev/ttyUSB0'), (2, 'b', '/dev/ttyUSB1');
             CREATE TABLE miner_logs (id INTEGER PRIMARY KEY,
                 miner_id INTEGER NOT NULL REFERENCES miners(id) ON DELETE CASCADE,
                 ts INTEGER NOT NULL, line TEXT NOT NULL, truncated INTEGER NOT NULL DEFAULT 0);
             CREATE INDEX miner_logs_miner ON miner_logs(miner_id, id);
             PRAGMA user_version = 6;",
        )
        .unwrap();
        // Interleaved batches, as the old writer left them.
        for (k, miner) in [1, 1, 2, 1, 2, 2, 2, 1].into_iter().enumerate() {
            conn.execute(
                "INSERT INTO miner_logs (miner_id, ts, line) VALUES (?1, ?2, ?3)",
                rusqlite::params![miner, k as i64, format!("{miner}:{k}")],
            )
            .unwrap();
        }
        assert!(matches!(
            migrate(&mut conn).unwrap(),
            Migration::Upgraded { from: 6, .. }
        ));
        let fk: bool = conn
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .unwrap();
        assert!(fk, "foreign keys are back on");
        let index: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'miner_logs_miner'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(index, 0);
        let lines = |m| -> Vec<String> {
            crate::db::logs::newest(&conn, m, None, 100)
                .unwrap()
                .into_iter()
                .map(|l| l.line)
                .collect()
        };
        assert_eq!(lines(1), ["1:7", "1:3", "1:1", "1:0"]);
        assert_eq!(lines(2), ["2:6", "2:5", "2:4", "2:2"]);
        // The trigger now does what the foreign key did.
        conn.execute("DELETE FROM miners WHERE id = 2", []).unwrap();
        let left: i64 = conn
            .query_row("SELECT count(*) FROM miner_logs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 4);
        assert_eq!(migrate(&mut conn).unwrap(), Migration::Current);
    }

    #[test]
    fn version_10_commands_keep_their_rows_and_take_doctor() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        // The table as versions 4 to 10 made it: only GET_CONFIG and SET_CONFIG allowed.
        conn.execute_batch(
            "DROP TABLE miner_commands;
             CREATE TABLE miner_commands (
                 id INTEGER PRIMARY KEY,
                 miner_id INTEGER NOT NULL REFERENCES miners(id) ON DELETE CASCADE,
                 command TEXT NOT NULL CHECK (command IN ('GET_CONFIG', 'SET_CONFIG')),
                 payload TEXT,
                 status TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'running', 'complete', 'error')),
                 detail TEXT, created_at INTEGER NOT NULL, finished_at INTEGER,
                 result_json TEXT, started_at INTEGER);
             CREATE INDEX miner_commands_miner ON miner_commands(miner_id, status);
             INSERT INTO miners (id, name, port) VALUES (1, 'a', '/dev/ttyUSB0');
             INSERT INTO miner_commands (miner_id, command, payload, status, created_at, result_json)
               VALUES (1, 'SET_CONFIG', '{}', 'complete', 5, '{\"ok\":1}');
             PRAGMA user_version = 10;",
        )
        .unwrap();
        assert!(matches!(
            migrate(&mut conn).unwrap(),
            Migration::Upgraded { from: 10, .. }
        ));
        let kept: (String, String) = conn
            .query_row(
                "SELECT command, result_json FROM miner_commands WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(kept, ("SET_CONFIG".into(), "{\"ok\":1}".into()));
        conn.execute(
            "INSERT INTO miner_commands (miner_id, command, created_at) VALUES (1, 'DOCTOR', 6)",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO miner_commands (miner_id, command, created_at) VALUES (1, 'RESET', 7)",
            [],
        )
        .unwrap();
        let index: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'miner_commands_miner'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(index, 1);
        assert_eq!(migrate(&mut conn).unwrap(), Migration::Current);
    }

    #[test]
    fn version_14_miners_take_axeos_and_keep_their_ids_and_references() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        // The table as versions 2 to 14 made it: only serial and demo miners.
        conn.execute_batch(
            "DROP TRIGGER miner_logs_of_deleted_miner;
             DROP INDEX miners_usb_serial;
             DROP TABLE miners;
             CREATE TABLE miners (
                 id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, port TEXT NOT NULL,
                 usb_serial TEXT, by_id_path TEXT,
                 kind TEXT NOT NULL DEFAULT 'serial' CHECK (kind IN ('serial', 'demo')),
                 enabled INTEGER NOT NULL DEFAULT 1,
                 pool_id INTEGER REFERENCES pools(id) ON DELETE SET NULL,
                 address_id INTEGER REFERENCES coin_addresses(id) ON DELETE SET NULL,
                 last_config_json TEXT, last_config_at INTEGER,
                 created_at INTEGER NOT NULL DEFAULT 0);
             CREATE UNIQUE INDEX miners_usb_serial ON miners(usb_serial) WHERE usb_serial IS NOT NULL;
             INSERT INTO miners (id, name, port, usb_serial) VALUES (7, 'a', '/dev/ttyUSB0', 'S1');
             INSERT INTO miner_summary (miner_id, updated_at) VALUES (7, 1);
             PRAGMA user_version = 14;",
        )
        .unwrap();
        assert!(matches!(
            migrate(&mut conn).unwrap(),
            Migration::Upgraded { from: 14, .. }
        ));
        let dangling: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE sql LIKE '%miners_v14%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(dangling, 0);
        conn.execute(
            "INSERT INTO miners (name, port, kind) VALUES ('axe', 'http://127.0.0.1:1', 'axeos')",
            [],
        )
        .unwrap();
        assert!(conn
            .execute(
                "INSERT INTO miners (name, port, usb_serial) VALUES ('b', '/dev/ttyUSB1', 'S1')",
                [],
            )
            .is_err());
        conn.pragma_update(None, "foreign_keys", true).unwrap();
        conn.execute("DELETE FROM miners WHERE id = 7", []).unwrap();
        let summaries: i64 = conn
            .query_row("SELECT count(*) FROM miner_summary", [], |r| r.get(0))
            .unwrap();
        assert_eq!(summaries, 0, "the summary's foreign key still cascades");
        assert_eq!(migrate(&mut conn).unwrap(), Migration::Current);
    }

    #[test]
    fn version_7_gains_restore_intents_and_backup_config_flags() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE miners (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, port TEXT NOT NULL);
             INSERT INTO miners (id, name, port) VALUES (1, 'a', '/dev/ttyUSB0');
             CREATE TABLE config_backups (id INTEGER PRIMARY KEY,
                 miner_id INTEGER NOT NULL REFERENCES miners(id) ON DELETE CASCADE,
                 path TEXT NOT NULL, chip TEXT, mac TEXT, offset INTEGER NOT NULL,
                 size INTEGER NOT NULL, sha256 TEXT NOT NULL, created_at INTEGER NOT NULL);
             INSERT INTO config_backups VALUES (1, 1, '/b/1.bin', 'ESP32', NULL, 1, 2, '00', 0);
             PRAGMA user_version = 7;",
        )
        .unwrap();
        let Migration::Upgraded { from: 7, added } = migrate(&mut conn).unwrap() else {
            panic!("not upgraded from 7");
        };
        assert!(
            added.contains(&"config_backups.config_ok".to_owned()),
            "{added:?}"
        );
        assert!(table_names(&conn).contains(&"restore_intents".to_owned()));
        let ok: Option<i64> = conn
            .query_row(
                "SELECT config_ok FROM config_backups WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(ok, None, "an old backup's content is unknown");
    }

    #[test]
    fn newer_database_is_refused_with_advice() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA user_version = 99;").unwrap();
        let err = migrate(&mut conn).unwrap_err().to_string();
        assert!(err.contains("upgrade shepherd"), "{err}");
    }

    #[test]
    fn open_writer_uses_wal() {
        let dir = tempfile::tempdir().unwrap();
        let (conn, m) = open_writer(&dir.path().join("s.db")).unwrap();
        assert_eq!(m, Migration::Created);
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn unopenable_path_is_a_clear_error() {
        let err = open_writer(Path::new("/nonexistent-dir/x/s.db"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent-dir/x/s.db"), "{err}");
    }

    #[test]
    fn new_and_upgraded_files_carry_our_application_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let (conn, m) = open_writer(&path).unwrap();
        assert_eq!(m, Migration::Created);
        let id: i32 = conn
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .unwrap();
        assert_eq!(id, APPLICATION_ID);
        let mut proto = Connection::open_in_memory().unwrap();
        proto.execute_batch(PROTOTYPE).unwrap();
        migrate(&mut proto).unwrap();
        let id: i32 = proto
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .unwrap();
        assert_eq!(id, APPLICATION_ID);
    }

    /// Opens `path` as the Shepherd would, expecting a refusal that names it, and checks the
    /// file is byte for byte what it was.
    fn refused_untouched(path: &Path, needle: &str) {
        let before = std::fs::read(path).unwrap();
        let err = open_writer(path).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains(needle), "{err}");
        assert_eq!(std::fs::read(path).unwrap(), before, "{err}");
    }

    #[test]
    fn files_of_other_programs_are_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("photos.db");
        {
            let c = Connection::open(&other).unwrap();
            c.execute_batch("CREATE TABLE photos (id INTEGER PRIMARY KEY, path TEXT); INSERT INTO photos (path) VALUES ('a.jpg');")
                .unwrap();
        }
        refused_untouched(&other, "photos");
        let tagged = dir.path().join("tagged.db");
        {
            let c = Connection::open(&tagged).unwrap();
            c.execute_batch("PRAGMA application_id = 1234; CREATE TABLE miners (id INTEGER);")
                .unwrap();
        }
        refused_untouched(&tagged, "application_id is 0x000004d2");
        let text = dir.path().join("notes.txt");
        std::fs::write(
            &text,
            "this is not a database, it is a text file of some length
"
            .repeat(20),
        )
        .unwrap();
        refused_untouched(&text, "not an SQLite database");
    }

    #[test]
    fn a_newer_file_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        {
            let (c, _) = open_writer(&path).unwrap();
            c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
                .unwrap();
            c.pragma_update(None, "journal_mode", "DELETE").unwrap();
        }
        refused_untouched(&path, "newer than this program's");
    }
}
