//! SQL of device discovery and onboarding: the `unconfigured_devices` rows, the identity
//! columns of `miners`, and turning a seen device into a miner.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::miners::{self, MinerError};
use crate::clock::now_ms;
use crate::model::device::{
    find_record, is_trusted_serial, DeviceInfo, DeviceRecord, KnownMiner, Reconnect,
};

/// A row of `unconfigured_devices` as the onboarding page and `shepherd devices` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeenDevice {
    /// Row id (used in the onboarding forms).
    pub id: i64,
    /// Where it was last seen.
    pub tty: String,
    /// Its `/dev/serial/by-id/…` link.
    pub by_id_path: Option<String>,
    /// USB vendor id (hex).
    pub vid: Option<String>,
    /// USB product id (hex).
    pub pid: Option<String>,
    /// USB serial number.
    pub usb_serial: Option<String>,
    /// Manufacturer string.
    pub manufacturer: Option<String>,
    /// Product string.
    pub product: Option<String>,
    /// Chip name.
    pub chip: Option<String>,
    /// Plugged in now.
    pub present: bool,
    /// The owner said it is not a miner.
    pub ignored: bool,
    /// First seen (Unix ms).
    pub first_seen: i64,
    /// Last seen (Unix ms).
    pub last_seen: i64,
    /// Firmware version the probe read from it.
    pub firmware: Option<String>,
    /// Pool the probe read from it.
    pub pool: Option<String>,
    /// What the probe found, in a sentence.
    pub probe_detail: Option<String>,
}

const SEEN_COLUMNS: &str = "d.id, d.tty, d.by_id_path, d.vid, d.pid, d.usb_serial, d.manufacturer,
    d.product, d.chip, d.present, d.ignored, d.first_seen, d.last_seen, d.firmware, d.pool,
    d.probe_detail";

/// Rows describing a device that is already a miner (added from the shell meanwhile) are
/// not "new": it is on the dashboard.
const NOT_A_MINER: &str = "NOT EXISTS (SELECT 1 FROM miners m WHERE m.port = d.tty
    OR m.port = d.by_id_path OR (d.usb_serial IS NOT NULL AND m.usb_serial = d.usb_serial))";

fn seen_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SeenDevice> {
    Ok(SeenDevice {
        id: r.get(0)?,
        tty: r.get(1)?,
        by_id_path: r.get(2)?,
        vid: r.get(3)?,
        pid: r.get(4)?,
        usb_serial: r.get(5)?,
        manufacturer: r.get(6)?,
        product: r.get(7)?,
        chip: r.get(8)?,
        present: r.get(9)?,
        ignored: r.get(10)?,
        first_seen: r.get(11)?,
        last_seen: r.get(12)?,
        firmware: r.get(13)?,
        pool: r.get(14)?,
        probe_detail: r.get(15)?,
    })
}

/// Devices waiting to be added (not ignored, not already miners): plugged-in ones first,
/// then the most recently seen.
pub fn unconfigured(conn: &Connection) -> rusqlite::Result<Vec<SeenDevice>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SEEN_COLUMNS} FROM unconfigured_devices d WHERE d.ignored = 0 AND {NOT_A_MINER}
         ORDER BY d.present DESC, d.last_seen DESC, d.id"
    ))?;
    let rows = stmt.query_map([], seen_from_row)?;
    rows.collect()
}

/// Devices the owner ignored, most recently seen first.
pub fn ignored(conn: &Connection) -> rusqlite::Result<Vec<SeenDevice>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SEEN_COLUMNS} FROM unconfigured_devices d WHERE d.ignored = 1
         ORDER BY d.present DESC, d.last_seen DESC, d.id"
    ))?;
    let rows = stmt.query_map([], seen_from_row)?;
    rows.collect()
}

/// How many plugged-in devices wait to be added (the dashboard's banner).
pub fn count_new(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        &format!(
            "SELECT count(*) FROM unconfigured_devices d
             WHERE d.present = 1 AND d.ignored = 0 AND {NOT_A_MINER}"
        ),
        [],
        |r| r.get(0),
    )
}

/// Every miner, with what identifies its device.
pub fn known_miners(conn: &Connection) -> rusqlite::Result<Vec<KnownMiner>> {
    let mut stmt =
        conn.prepare_cached("SELECT id, name, port, usb_serial, by_id_path FROM miners")?;
    let rows = stmt.query_map([], |r| {
        Ok(KnownMiner {
            id: r.get(0)?,
            name: r.get(1)?,
            port: r.get(2)?,
            usb_serial: r.get(3)?,
            by_id_path: r.get(4)?,
        })
    })?;
    rows.collect()
}

/// Every `unconfigured_devices` row, as far as recognising devices goes.
pub fn records(conn: &Connection) -> rusqlite::Result<Vec<DeviceRecord>> {
    let mut stmt =
        conn.prepare_cached("SELECT id, tty, usb_serial, ignored FROM unconfigured_devices")?;
    let rows = stmt.query_map([], |r| {
        Ok(DeviceRecord {
            id: r.get(0)?,
            tty: r.get(1)?,
            usb_serial: r.get(2)?,
            ignored: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// The row `record_seen` kept or made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeenRow {
    /// Row id.
    pub id: i64,
    /// A probe already ran on it.
    pub probed: bool,
}

fn hex(v: Option<u16>) -> Option<String> {
    v.map(|v| format!("{v:04x}"))
}

/// Records that `dev` is plugged in at its tty: updates its row (found by serial number or
/// tty, see [`find_record`]) or adds one. Another row still claiming that tty is stale and is
/// marked absent.
pub fn record_seen(conn: &mut Connection, dev: &DeviceInfo) -> rusqlite::Result<SeenRow> {
    let now = now_ms();
    let tx = conn.transaction()?;
    let existing = find_record(&records(&tx)?, dev).map(|r| r.id);
    tx.execute(
        "UPDATE unconfigured_devices SET present = 0 WHERE tty = ?1 AND present = 1 AND id IS NOT ?2",
        params![dev.tty, existing],
    )?;
    let (vid, pid, chip) = (hex(dev.vid), hex(dev.pid), dev.chip());
    let id = match existing {
        Some(id) => {
            tx.execute(
                "UPDATE unconfigured_devices SET tty = ?1, by_id_path = ?2, vid = ?3, pid = ?4,
                   usb_serial = ?5, manufacturer = ?6, product = ?7, chip = ?8, present = 1,
                   last_seen = ?9 WHERE id = ?10",
                params![
                    dev.tty,
                    dev.by_id,
                    vid,
                    pid,
                    dev.serial,
                    dev.manufacturer,
                    dev.product,
                    chip,
                    now,
                    id
                ],
            )?;
            id
        }
        None => {
            tx.execute(
                "INSERT INTO unconfigured_devices (tty, by_id_path, vid, pid, usb_serial,
                   manufacturer, product, chip, present, first_seen, last_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1, ?9, ?9)",
                params![
                    dev.tty,
                    dev.by_id,
                    vid,
                    pid,
                    dev.serial,
                    dev.manufacturer,
                    dev.product,
                    chip,
                    now
                ],
            )?;
            tx.last_insert_rowid()
        }
    };
    let probed: bool = tx.query_row(
        "SELECT probed_at IS NOT NULL FROM unconfigured_devices WHERE id = ?1",
        [id],
        |r| r.get(0),
    )?;
    tx.commit()?;
    Ok(SeenRow { id, probed })
}

/// Records that `dev` was unplugged.
pub fn mark_absent(conn: &Connection, dev: &DeviceInfo) -> rusqlite::Result<()> {
    if let Some(r) = find_record(&records(conn)?, dev) {
        conn.execute(
            "UPDATE unconfigured_devices SET present = 0, last_seen = ?2 WHERE id = ?1",
            params![r.id, now_ms()],
        )?;
    }
    Ok(())
}

/// After a full scan: rows of devices not among `present_ttys` are absent (they were
/// unplugged while nothing watched).
pub fn sync_present(conn: &Connection, present_ttys: &[String]) -> rusqlite::Result<()> {
    let json = serde_json::to_string(present_ttys).unwrap_or_else(|_| "[]".into());
    conn.execute(
        "UPDATE unconfigured_devices SET present = 0
         WHERE present = 1 AND tty NOT IN (SELECT value FROM json_each(?1))",
        [json],
    )?;
    Ok(())
}

/// Drops the row of a device that turned out to be a configured miner.
pub fn forget(conn: &Connection, dev: &DeviceInfo) -> rusqlite::Result<()> {
    if let Some(r) = find_record(&records(conn)?, dev) {
        conn.execute("DELETE FROM unconfigured_devices WHERE id = ?1", [r.id])?;
    }
    Ok(())
}

/// Points a miner that came back at its new port and records what identifies it.
pub fn apply_reconnect(conn: &Connection, r: &Reconnect) -> rusqlite::Result<()> {
    // The serial number is learned only if no other miner claims it (it is unique).
    conn.execute(
        "UPDATE miners SET
           port = coalesce(?2, port),
           by_id_path = coalesce(?3, by_id_path),
           usb_serial = CASE WHEN ?4 IS NOT NULL AND usb_serial IS NULL
                          AND NOT EXISTS (SELECT 1 FROM miners o WHERE o.usb_serial = ?4)
                        THEN ?4 ELSE usb_serial END
         WHERE id = ?1",
        params![r.miner_id, r.new_port, r.learn_by_id, r.learn_serial],
    )?;
    Ok(())
}

/// What a probe of a port found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProbeResult {
    /// Firmware version it printed.
    pub firmware: Option<String>,
    /// Pool it is configured for.
    pub pool: Option<String>,
    /// One sentence for the onboarding page.
    pub detail: String,
}

/// Stores a probe's result on the row of the device present at `tty`.
pub fn store_probe(conn: &Connection, tty: &str, probe: &ProbeResult) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE unconfigured_devices SET firmware = coalesce(?2, firmware), pool = coalesce(?3, pool),
           probe_detail = ?4, probed_at = ?5
         WHERE tty = ?1 AND present = 1",
        params![tty, probe.firmware, probe.pool, probe.detail, now_ms()],
    )?;
    Ok(())
}

/// Marks a device as "not a miner" (or takes that back). Returns whether the row exists.
pub fn set_ignored(conn: &Connection, id: i64, ignored: bool) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE unconfigured_devices SET ignored = ?2 WHERE id = ?1",
        params![id, ignored],
    )?;
    Ok(n > 0)
}

/// One row of `unconfigured_devices` by id.
pub fn get(conn: &Connection, id: i64) -> rusqlite::Result<Option<SeenDevice>> {
    conn.query_row(
        &format!("SELECT {SEEN_COLUMNS} FROM unconfigured_devices d WHERE d.id = ?1"),
        [id],
        seen_from_row,
    )
    .optional()
}

/// What the onboarding form asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Onboard {
    /// The `unconfigured_devices` row.
    pub device_id: i64,
    /// Name for the new miner.
    pub name: String,
    /// Pool it mines on, if chosen.
    pub pool_id: Option<i64>,
    /// Coin address it mines to, if chosen.
    pub address_id: Option<i64>,
}

/// Turns a seen device into a miner: read from its by-id link when that names this board
/// alone, else from its tty; its serial number and link are kept to recognise it later.
/// Returns the new miner's id.
pub fn onboard(conn: &mut Connection, req: &Onboard) -> Result<i64, MinerError> {
    let tx = conn.transaction()?;
    let dev = get(&tx, req.device_id)?.ok_or_else(|| {
        MinerError::Invalid(
            "that device is no longer waiting to be added (added or removed meanwhile): reload the page".into(),
        )
    })?;
    let serial = dev.usb_serial.clone().filter(|s| is_trusted_serial(s));
    let port = match (&dev.by_id_path, &serial) {
        (Some(link), Some(_)) => link.clone(),
        _ => dev.tty.clone(),
    };
    miners::validate(&req.name, &port)?;
    let name = req.name.trim();
    let exists = |sql: &str, v: &dyn rusqlite::ToSql| -> rusqlite::Result<bool> {
        tx.query_row(sql, [v], |r| r.get(0))
    };
    if exists(
        "SELECT EXISTS (SELECT 1 FROM miners WHERE name = ?1)",
        &name,
    )? {
        return Err(MinerError::NameTaken(name.to_owned()));
    }
    if let Some(p) = req.pool_id {
        if !exists("SELECT EXISTS (SELECT 1 FROM pools WHERE id = ?1)", &p)? {
            return Err(MinerError::Invalid(
                "that pool no longer exists: pick another".into(),
            ));
        }
    }
    if let Some(a) = req.address_id {
        if !exists(
            "SELECT EXISTS (SELECT 1 FROM coin_addresses WHERE id = ?1)",
            &a,
        )? {
            return Err(MinerError::Invalid(
                "that coin address no longer exists: pick another".into(),
            ));
        }
    }
    let serial = match serial {
        Some(s)
            if exists(
                "SELECT EXISTS (SELECT 1 FROM miners WHERE usb_serial = ?1)",
                &s,
            )? =>
        {
            return Err(MinerError::Invalid(format!(
                "a miner with USB serial number {s} already exists: this board is already in the herd"
            )));
        }
        other => other,
    };
    tx.execute(
        "INSERT INTO miners (name, port, usb_serial, by_id_path, kind, pool_id, address_id, created_at)
         VALUES (?1, ?2, ?3, ?4, 'serial', ?5, ?6, ?7)",
        params![name, port, serial, dev.by_id_path, req.pool_id, req.address_id, now_ms()],
    )?;
    let id = tx.last_insert_rowid();
    tx.execute(
        "DELETE FROM unconfigured_devices WHERE id = ?1",
        [req.device_id],
    )?;
    tx.commit()?;
    Ok(id)
}

/// `(id, name)` of every pool, for the onboarding form.
pub fn pool_choices(conn: &Connection) -> rusqlite::Result<Vec<(i64, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, name || ' (' || url || ':' || port || ')' FROM pools ORDER BY name",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// `(id, label)` of every coin address, for the onboarding form.
pub fn address_choices(conn: &Connection) -> rusqlite::Result<Vec<(i64, String)>> {
    let mut stmt = conn.prepare_cached("SELECT id, label FROM coin_addresses ORDER BY label")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        crate::db::memory_db()
    }

    fn s3(tty: &str) -> DeviceInfo {
        DeviceInfo {
            tty: tty.into(),
            by_id: Some(
                "/dev/serial/by-id/usb-Espressif_USB_JTAG_serial_debug_unit_F4:12:FA:5B:C3:10-if00"
                    .into(),
            ),
            vid: Some(0x303a),
            pid: Some(0x1001),
            serial: Some("F4:12:FA:5B:C3:10".into()),
            manufacturer: Some("Espressif".into()),
            product: Some("USB JTAG/serial debug unit".into()),
        }
    }

    fn cyd(tty: &str) -> DeviceInfo {
        DeviceInfo {
            tty: tty.into(),
            by_id: Some("/dev/serial/by-id/usb-1a86_USB_Serial-if00-port0".into()),
            vid: Some(0x1a86),
            pid: Some(0x7523),
            ..DeviceInfo::default()
        }
    }

    #[test]
    fn a_board_keeps_one_row_across_ttys() {
        let mut c = db();
        let a = record_seen(&mut c, &s3("/dev/ttyACM0")).unwrap();
        mark_absent(&c, &s3("/dev/ttyACM0")).unwrap();
        assert_eq!(count_new(&c).unwrap(), 0);
        let b = record_seen(&mut c, &s3("/dev/ttyACM1")).unwrap();
        assert_eq!(a.id, b.id);
        let rows = unconfigured(&c).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].tty, "/dev/ttyACM1");
        assert_eq!(rows[0].chip.as_deref(), Some("ESP32-S3/C3 USB-JTAG"));
        assert_eq!(rows[0].vid.as_deref(), Some("303a"));
        assert_eq!(count_new(&c).unwrap(), 1);
    }

    #[test]
    fn another_board_on_a_stale_tty_takes_it_over() {
        let mut c = db();
        let a = record_seen(&mut c, &cyd("/dev/ttyUSB0")).unwrap();
        set_ignored(&c, a.id, true).unwrap();
        // The ignored CYD was unplugged unnoticed; a T-Display S3 is on ttyUSB0 now.
        let b = record_seen(&mut c, &s3("/dev/ttyUSB0")).unwrap();
        assert_ne!(a.id, b.id);
        let ignored = ignored(&c).unwrap();
        assert_eq!((ignored.len(), ignored[0].present), (1, false));
        assert_eq!(count_new(&c).unwrap(), 1);
    }

    #[test]
    fn sync_marks_the_unplugged_absent() {
        let mut c = db();
        record_seen(&mut c, &s3("/dev/ttyACM0")).unwrap();
        record_seen(&mut c, &cyd("/dev/ttyUSB0")).unwrap();
        sync_present(&c, &["/dev/ttyUSB0".to_string()]).unwrap();
        let rows = unconfigured(&c).unwrap();
        assert_eq!(rows[0].tty, "/dev/ttyUSB0", "present ones first");
        assert!(rows[0].present && !rows[1].present);
    }

    #[test]
    fn onboarding_uses_the_link_of_a_unique_board_and_the_tty_otherwise() {
        let mut c = db();
        let a = record_seen(&mut c, &s3("/dev/ttyACM0")).unwrap();
        let b = record_seen(&mut c, &cyd("/dev/ttyUSB0")).unwrap();
        let req = |device_id, name: &str| Onboard {
            device_id,
            name: name.into(),
            ..Onboard::default()
        };
        let id = onboard(&mut c, &req(a.id, "desk")).unwrap();
        let m = known_miners(&c)
            .unwrap()
            .into_iter()
            .find(|m| m.id == id)
            .unwrap();
        assert_eq!(m.port, s3("x").by_id.unwrap());
        assert_eq!(m.usb_serial.as_deref(), Some("F4:12:FA:5B:C3:10"));
        assert!(matches!(
            onboard(&mut c, &req(b.id, "desk")),
            Err(MinerError::NameTaken(_))
        ));
        assert!(onboard(&mut c, &req(b.id, " ")).is_err());
        let bad_pool = Onboard {
            pool_id: Some(99),
            ..req(b.id, "cyd")
        };
        assert!(onboard(&mut c, &bad_pool)
            .unwrap_err()
            .to_string()
            .contains("pool"));
        let id = onboard(&mut c, &req(b.id, "cyd")).unwrap();
        let m = known_miners(&c)
            .unwrap()
            .into_iter()
            .find(|m| m.id == id)
            .unwrap();
        assert_eq!((m.port.as_str(), m.usb_serial), ("/dev/ttyUSB0", None));
        assert!(unconfigured(&c).unwrap().is_empty());
        assert!(onboard(&mut c, &req(b.id, "again"))
            .unwrap_err()
            .to_string()
            .contains("reload"));
    }

    #[test]
    fn a_reconnect_moves_the_port_and_learns_the_serial_once() {
        let c = db();
        miners::add(&c, "a", "/dev/ttyUSB0", "serial").unwrap();
        miners::add(&c, "b", "/dev/ttyUSB1", "serial").unwrap();
        let ids: Vec<i64> = known_miners(&c).unwrap().iter().map(|m| m.id).collect();
        let r = |miner_id| Reconnect {
            miner_id,
            new_port: Some("/dev/ttyUSB5".into()),
            learn_serial: Some("A50285BI".into()),
            learn_by_id: None,
        };
        apply_reconnect(&c, &r(ids[0])).unwrap();
        apply_reconnect(&c, &r(ids[1])).unwrap();
        let all = known_miners(&c).unwrap();
        assert_eq!(all[0].port, "/dev/ttyUSB5");
        assert_eq!(all[0].usb_serial.as_deref(), Some("A50285BI"));
        assert_eq!(
            all[1].usb_serial, None,
            "a serial number belongs to one miner"
        );
    }

    #[test]
    fn probe_results_land_on_the_present_row() {
        let mut c = db();
        let a = record_seen(&mut c, &s3("/dev/ttyACM0")).unwrap();
        assert!(!a.probed);
        let probe = ProbeResult {
            firmware: Some("V1.8.3".into()),
            pool: Some("public-pool.io:21496".into()),
            detail: "NerdMiner".into(),
        };
        store_probe(&c, "/dev/ttyACM0", &probe).unwrap();
        let d = get(&c, a.id).unwrap().unwrap();
        assert_eq!(d.firmware.as_deref(), Some("V1.8.3"));
        assert!(record_seen(&mut c, &s3("/dev/ttyACM0")).unwrap().probed);
    }
}
