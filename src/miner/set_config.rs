//! SET_CONFIG (a new configuration, or a stored backup put back): write a miner's SPIFFS partition, run on its reader thread
//! with the port lent to it, so nothing else touches the port meanwhile.
//!
//! The protocol never leaves a miner worse off than it was:
//! 1. enter the ROM bootloader, read the whole SPIFFS partition (MD5-checked), keep it as a
//!    backup; refuse when it does not mount with the firmware's parameters or its size is not
//!    one the builder can fill exactly (our image would be formatted at boot);
//! 2. build the new image in memory (every other file kept), read it back with our own reader
//!    and compare every file;
//! 3. flash only that partition, verify with the chip's MD5 of the region (one retry);
//! 4. hard-reset and watch the boot log: success only when the miner prints the configuration
//!    written and starts talking to its pool;
//! 5. otherwise flash the backup back, verify, reset, and say what happened.
//!
//! Every step goes to the command's `detail` for the manage page and `shepherd config set`.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use actix::Addr;
use md5::{Digest, Md5};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::Sha256;

use super::boot_config::{BootConfig, BootConfigCapture};
use super::get_config::{
    back_to_firmware, db_call, mask_config, read_with_loader, record_end, store_backup,
    FlashFailure, Outcome, Reporter,
};
use super::reader::PortSession;
use crate::clock::now_ms;
use crate::db::commands::{self, Backup};
use crate::db::DbActor;
use crate::flash::command::SECTOR;
use crate::flash::lines::ResetKind;
use crate::flash::loader::Loader;
use crate::flash::port::LoaderPort;
use crate::flash::session::{self as flash_session, Options};

/// The caller already reset the chip into its bootloader: only sync and identify.
const ALREADY_RESET: Options = Options {
    reset: false,
    fast: false,
};
use crate::flash::nerd_config::{self, CONFIG_PATH};
use crate::flash::partitions::{hex, Partition};
use crate::flash::spiffs::{self, SpiffsFile, SpiffsParams};
use crate::flash::transport::LoaderError;

/// How long the firmware gets to print its configuration after the reset.
const CONFIG_WINDOW: Duration = Duration::from_secs(20);
/// How long it then gets to start talking to its pool (Wi-Fi join, DNS, connect).
const POOL_WINDOW: Duration = Duration::from_secs(45);
/// Write attempts before the writer gives up and restores the backup.
const WRITE_ATTEMPTS: u32 = 2;

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
}

/// What to put on the miner.
enum Plan {
    /// New configuration values (merged into the current `/config.json`).
    Config(Map<String, Value>),
    /// A stored partition image.
    Restore(RestorePayload, Vec<u8>),
}

fn failed(detail: impl Into<String>, result: Value) -> Outcome {
    Outcome {
        ok: false,
        detail: detail.into(),
        result,
        config: None,
    }
}

/// Parses a SET_CONFIG payload (the configuration object, or a change of some keys) and checks
/// it before the miner is touched; the merged configuration is checked in full later.
pub fn config_from_payload(payload: Option<&str>) -> Result<Map<String, Value>, String> {
    let text = payload.unwrap_or_default();
    let map = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err("the configuration must be a JSON object".into()),
        Err(e) => return Err(format!("the configuration is not JSON: {e}")),
    };
    let errors = nerd_config::validate_change(&map);
    if !errors.is_empty() {
        return Err(format!(
            "refused before touching the miner: {}",
            nerd_config::describe(&errors)
        ));
    }
    Ok(map)
}

/// The payload key that makes a SET_CONFIG a restore of a stored backup (no firmware has a
/// config key of that name). Carried by SET_CONFIG rather than a command of its own so the
/// `miner_commands` table keeps its schema.
pub const RESTORE_KEY: &str = nerd_config::RESERVED_KEY;

/// The SET_CONFIG payload that restores backup `p`.
pub fn restore_payload(p: &RestorePayload) -> String {
    json!({ RESTORE_KEY: p }).to_string()
}

/// Result key of a write cut off by a lost port or a chip that stopped answering: the backup
/// to put back when the miner's port opens again ([`queue_restore_after_replug`]).
pub const RESTORE_ON_REPLUG: &str = "restore_on_replug";

fn replug_note(backup_id: i64) -> String {
    format!(
        "Backup #{backup_id} (the configuration it had) will be written back automatically when \
         its port opens again; or restore it from the manage page"
    )
}

/// Called when a miner's port opens: if the miner's last command is a write that was cut
/// off ([`RESTORE_ON_REPLUG`] in its result), queues the restore of that backup, once (the
/// restore is then the last command). Returns the new command's id.
pub fn queue_restore_after_replug(
    c: &rusqlite::Connection,
    miner_id: i64,
) -> rusqlite::Result<Option<i64>> {
    use rusqlite::OptionalExtension;
    let last: Option<(i64, String, String, Option<String>)> = c
        .query_row(
            "SELECT id, command, status, result_json FROM miner_commands
             WHERE miner_id = ?1 ORDER BY id DESC LIMIT 1",
            [miner_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let Some((cut_off, command, status, Some(result))) = last else {
        return Ok(None);
    };
    if command != "SET_CONFIG" || status != "error" {
        return Ok(None);
    }
    let Some(backup_id) = serde_json::from_str::<Value>(&result)
        .ok()
        .and_then(|r| r.get(RESTORE_ON_REPLUG).and_then(Value::as_i64))
    else {
        return Ok(None);
    };
    let Some(b) = commands::backup(c, backup_id)? else {
        return Ok(None);
    };
    let payload = restore_payload(&RestorePayload {
        backup_id: b.id,
        path: b.path,
        offset: b.offset,
        size: b.size,
        sha256: b.sha256,
    });
    let id = commands::insert(c, miner_id, "SET_CONFIG", Some(&payload))?;
    commands::set_detail(
        c,
        id,
        &format!("queued: restore of backup #{backup_id} after write #{cut_off} was cut off"),
    )?;
    Ok(Some(id))
}

/// Runs SET_CONFIG command `id` (a configuration, or a [`RESTORE_KEY`] restore) and records its
/// end.
pub fn execute(
    db: &Addr<DbActor>,
    id: i64,
    payload: Option<&str>,
    session: Result<&mut PortSession<'_>, String>,
) {
    let outcome = match session {
        Err(why) => failed(
            format!(
                "port gone: the miner's port is not open ({why}). Nothing was written; plug the \
                 miner in and try again"
            ),
            json!({}),
        ),
        Ok(session) => {
            let text = format!("running on {}", session.path());
            let _ = db_call(db, move |c| commands::start(c, id, &text));
            let rep = Reporter {
                db,
                id,
                steps: Default::default(),
            };
            let restore = payload
                .and_then(|t| serde_json::from_str::<Value>(t).ok())
                .and_then(|v| v.get(RESTORE_KEY).cloned());
            let plan = match restore {
                Some(r) => restore_plan(r),
                None => config_from_payload(payload).map(Plan::Config),
            };
            let mut outcome = match plan {
                Err(e) => failed(e, json!({})),
                Ok(plan) => run(session, &rep, plan),
            };
            if !outcome.result.is_object() {
                outcome.result = json!({});
            }
            outcome.result["steps"] = json!(rep.steps.take());
            outcome
        }
    };
    record_end(db, id, outcome);
}

fn restore_plan(payload: Value) -> Result<Plan, String> {
    let p: RestorePayload = serde_json::from_value(payload)
        .map_err(|e| format!("the restore command's payload is not valid: {e}"))?;
    let image = std::fs::read(&p.path)
        .map_err(|e| format!("cannot read backup #{} ({}): {e}", p.backup_id, p.path))?;
    let sha = hex(&Sha256::digest(&image));
    if sha != p.sha256 {
        return Err(format!(
            "backup #{} ({}) changed on disk since it was stored (SHA-256 {sha}, recorded {}): \
             refusing to write it",
            p.backup_id, p.path, p.sha256
        ));
    }
    if let Err(e) = spiffs::read_image(&image, &SpiffsParams::ARDUINO) {
        return Err(format!(
            "backup #{} does not mount as SPIFFS ({e}): the firmware would format it, so it is \
             not written",
            p.backup_id
        ));
    }
    Ok(Plan::Restore(p, image))
}

/// The partition as it was before the write.
struct Current {
    chip: String,
    mac: String,
    partition: Partition,
    image: Vec<u8>,
    /// Its files, or why it does not mount (a restore may still replace it).
    files: Result<Vec<SpiffsFile>, String>,
}

/// What the write put on the chip and expects the firmware to print.
struct Target {
    image: Vec<u8>,
    config: Map<String, Value>,
}

fn run(session: &mut PortSession<'_>, rep: &Reporter<'_>, plan: Plan) -> Outcome {
    let miner = session.miner_id();
    let (dir, keep) = session.backups();
    rep.detail("entering the ROM bootloader (DTR/RTS bootloader sequence)");
    if let Err(e) = session.reset(ResetKind::Bootloader) {
        return failed(
            format!("could not reset the miner into its bootloader, nothing was written: {e}"),
            json!({}),
        );
    }
    rep.detail("syncing with the ROM bootloader");
    let stop = session.stop_flag();
    let mut loader = Loader::new(session.loader_port());
    let mut result = json!({});

    // 1. The current partition, as a backup.
    let current = match read_current(&mut loader, rep, stop) {
        Ok(c) => c,
        Err(why) => {
            let text = loader.take_text();
            drop(loader);
            session.ingest_bytes(&text);
            return finish_without_write(session, rep, why, result);
        }
    };
    rep.detail("storing the current partition image as a backup");
    let sha = hex(&Sha256::digest(&current.image));
    let backup = store_backup(
        rep.db,
        miner,
        &dir,
        keep,
        Backup {
            id: 0,
            miner_id: miner,
            path: String::new(),
            chip: Some(current.chip.clone()),
            mac: Some(current.mac.clone()),
            offset: i64::from(current.partition.offset),
            size: i64::from(current.partition.size),
            sha256: sha,
            created_at: now_ms(),
        },
        &current.image,
    );
    let backup_id = match backup {
        Ok(id) => id,
        Err(e) => {
            let text = loader.take_text();
            drop(loader);
            session.ingest_bytes(&text);
            return finish_without_write(
                session,
                rep,
                format!("the backup could not be stored ({e}); nothing was written"),
                result,
            );
        }
    };
    result["backup_id"] = json!(backup_id);
    result["partition"] = json!({
        "name": current.partition.name,
        "offset": current.partition.offset,
        "size": current.partition.size,
    });

    // 2. The new image, checked by our own reader before it goes anywhere near the chip.
    let target = match build_target(&current, &plan, rep) {
        Ok(t) => t,
        Err(why) => {
            let text = loader.take_text();
            drop(loader);
            session.ingest_bytes(&text);
            return finish_without_write(session, rep, why, result);
        }
    };
    result["config"] = Value::Object(mask_config(&target.config));

    // 3. Flash and verify.
    let offset = current.partition.offset;
    let written = write_verified(&mut loader, rep, offset, &target.image, "the new image");
    let text = loader.take_text();
    drop(loader);
    session.ingest_bytes(&text);
    if let Err(why) = written {
        if let WriteError::PortGone(e) = &why {
            let msg = session.lost(e.clone());
            result[RESTORE_ON_REPLUG] = json!(backup_id);
            return failed(
                format!(
                    "{msg}. The write was interrupted: the partition may be half written and the \
                     miner may come up in its setup portal. {}",
                    replug_note(backup_id)
                ),
                result,
            );
        }
        rep.detail(format!(
            "{}; restoring the backup taken before the write",
            why.text()
        ));
        return rollback(session, rep, &current, backup_id, why.text(), result);
    }

    // 4. Reset and watch the miner come back with the new configuration.
    rep.detail("written and verified; resetting the miner into its firmware");
    match confirm_boot(session, rep, &target.config) {
        Ok(()) => {
            let what = match &plan {
                Plan::Config(_) => "configuration written".to_owned(),
                Plan::Restore(p, _) => format!("backup #{} restored", p.backup_id),
            };
            result["confirmed"] = json!(true);
            Outcome {
                ok: true,
                detail: format!(
                    "{what}: MD5 verified, the miner booted with it and connected to its pool \
                     (backup of the previous partition: #{backup_id})"
                ),
                result,
                config: Some(target.config),
            }
        }
        Err(BootFailure::PortGone(msg)) => failed(
            format!(
                "{msg}. The new image was written and verified, but the miner went away before \
                 it confirmed it; check it when it is back (backup #{backup_id} holds the \
                 previous partition)"
            ),
            result,
        ),
        Err(BootFailure::Rejected(why)) => {
            rep.detail(format!(
                "{why}; restoring the backup taken before the write"
            ));
            rollback(session, rep, &current, backup_id, why, result)
        }
    }
}

/// Refusals before anything was written: the chip still goes back into its firmware.
fn finish_without_write(
    session: &mut PortSession<'_>,
    rep: &Reporter<'_>,
    why: String,
    result: Value,
) -> Outcome {
    rep.detail("resetting the miner back into its firmware (nothing was written)");
    let resumed = back_to_firmware(session);
    let note = match resumed {
        Ok(()) => " Nothing was written; the miner was reset back into its firmware.".to_owned(),
        Err(e) => format!(" Nothing was written; then {e}"),
    };
    failed(format!("{why}.{note}"), result)
}

fn read_current<T: LoaderPort>(
    loader: &mut Loader<T>,
    rep: &Reporter<'_>,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<Current, String> {
    // The reset into the bootloader was done by the caller.
    let (chip, mac, partition, image) = match read_with_loader(loader, rep, stop, ALREADY_RESET) {
        Ok(r) => r,
        Err(FlashFailure::NoSpiffs(why)) | Err(FlashFailure::Other(why)) => {
            return Err(format!("could not read the current partition: {why}"))
        }
    };
    if partition.size as usize != image.len() || partition.size % SECTOR != 0 {
        return Err(format!(
            "the SPIFFS partition is {} bytes, not a whole number of 4 KiB blocks: the builder \
             cannot make an image of exactly that size, so nothing is written",
            partition.size
        ));
    }
    let files = spiffs::read_image(&image, &SpiffsParams::ARDUINO).map_err(|e| {
        format!(
            "the current partition does not mount with the firmware's SPIFFS parameters \
             (page 256, block 4096, meta length 4): {e}"
        )
    });
    Ok(Current {
        chip,
        mac,
        partition,
        image,
        files,
    })
}

fn config_of(files: &[SpiffsFile]) -> Option<Map<String, Value>> {
    let f = files.iter().find(|f| f.path == CONFIG_PATH)?;
    match serde_json::from_slice(&f.data) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

fn build_target(current: &Current, plan: &Plan, rep: &Reporter<'_>) -> Result<Target, String> {
    let size = current.partition.size as usize;
    let image = match plan {
        Plan::Config(new) => {
            // Only a partition we can read tells which other files to keep; anything else
            // means a firmware (or flash) this builder does not support.
            let current_files = current.files.as_ref().map_err(|e| {
                format!("{e}. This firmware is not one the writer supports, so nothing is written")
            })?;
            let old = config_of(current_files);
            let merged = nerd_config::merge(old.as_ref(), new);
            let errors = nerd_config::validate(&merged);
            if !errors.is_empty() {
                return Err(format!(
                    "the configuration merged with the miner's current keys is not valid: {}",
                    nerd_config::describe(&errors)
                ));
            }
            let text = nerd_config::to_file_text(&merged);
            let mut files: Vec<SpiffsFile> = current_files.clone();
            match files.iter_mut().find(|f| f.path == CONFIG_PATH) {
                Some(f) => f.data = text.into_bytes(),
                None => files.push(SpiffsFile {
                    path: CONFIG_PATH.into(),
                    data: text.into_bytes(),
                }),
            }
            rep.detail(format!(
                "building the new SPIFFS image ({} file(s), {} KiB, firmware parameters)",
                files.len(),
                size / 1024
            ));
            let image = spiffs::build_image(&files, size, &SpiffsParams::ARDUINO)
                .map_err(|e| format!("cannot build the new image: {e}"))?;
            check_image(&image, &files)?;
            image
        }
        Plan::Restore(p, image) => {
            if p.offset != i64::from(current.partition.offset) || p.size != size as i64 {
                return Err(format!(
                    "backup #{} was read from 0x{:x} ({} bytes) but this miner's SPIFFS \
                     partition is at 0x{:x} ({size} bytes): refusing to write it here",
                    p.backup_id, p.offset, p.size, current.partition.offset
                ));
            }
            image.clone()
        }
    };
    let files = spiffs::read_image(&image, &SpiffsParams::ARDUINO)
        .map_err(|e| format!("the image to write does not mount with our own reader: {e}"))?;
    let config = config_of(&files).ok_or_else(|| {
        "the image to write holds no readable /config.json: the miner would start its setup \
         portal"
            .to_owned()
    })?;
    Ok(Target { image, config })
}

/// Reads `image` back and compares every file with what was meant to go in.
fn check_image(image: &[u8], files: &[SpiffsFile]) -> Result<(), String> {
    let back = spiffs::read_image(image, &SpiffsParams::ARDUINO)
        .map_err(|e| format!("the built image does not read back: {e}"))?;
    let want: BTreeMap<&str, &[u8]> = files
        .iter()
        .map(|f| (f.path.as_str(), f.data.as_slice()))
        .collect();
    let got: BTreeMap<&str, &[u8]> = back
        .iter()
        .map(|f| (f.path.as_str(), f.data.as_slice()))
        .collect();
    if want != got {
        return Err("the built image reads back with different files: not written".into());
    }
    Ok(())
}

enum WriteError {
    PortGone(String),
    Failed(String),
}

impl WriteError {
    fn text(&self) -> String {
        match self {
            WriteError::PortGone(e) | WriteError::Failed(e) => e.clone(),
        }
    }
}

/// Writes `image` at `offset` and checks the chip's MD5 of the region; tries again once.
fn write_verified<T: LoaderPort>(
    loader: &mut Loader<T>,
    rep: &Reporter<'_>,
    offset: u32,
    image: &[u8],
    what: &str,
) -> Result<(), WriteError> {
    let size = image.len() as u32;
    let ours = Md5::digest(image);
    let mut last = String::new();
    for attempt in 1..=WRITE_ATTEMPTS {
        let label = format!("writing {what} at 0x{offset:x} (attempt {attempt})");
        rep.detail(format!("{label}: 0%"));
        let mut last_pct = 0;
        let written = loader.write_flash(offset, image, &mut |done, total| {
            let pct = u64::from(done) * 100 / u64::from(total.max(1));
            if pct >= last_pct + 10 {
                last_pct = pct;
                rep.detail(format!("{label}: {pct}%"));
            }
        });
        let problem = match written {
            Err(LoaderError::Io(e)) => return Err(WriteError::PortGone(e.to_string())),
            // A chip that stopped answering (cable pulled, power lost) will not answer a
            // second erase either: the caller's restore attempt tells whether it is back.
            Err(e @ LoaderError::Timeout { .. }) => {
                return Err(WriteError::Failed(format!("the write was cut off: {e}")))
            }
            Err(e) => format!("the write failed: {e}"),
            Ok(()) => {
                rep.detail("verifying the write against the chip's MD5 of the partition");
                match loader.flash_md5(offset, size) {
                    Err(LoaderError::Io(e)) => return Err(WriteError::PortGone(e.to_string())),
                    Err(e) => format!("the MD5 check failed: {e}"),
                    Ok(chip) if chip == ours.as_slice() => return Ok(()),
                    Ok(chip) => format!(
                        "MD5 mismatch after writing {what} (ours {}, chip {})",
                        hex(ours.as_slice()),
                        hex(&chip)
                    ),
                }
            }
        };
        rep.detail(format!("{problem} (attempt {attempt} of {WRITE_ATTEMPTS})"));
        last = problem;
    }
    Err(WriteError::Failed(last))
}

enum BootFailure {
    PortGone(String),
    Rejected(String),
}

/// Hard-resets and watches the boot: the configuration printed must be `expected` and the
/// miner must then start talking to its pool.
fn confirm_boot(
    session: &mut PortSession<'_>,
    rep: &Reporter<'_>,
    expected: &Map<String, Value>,
) -> Result<(), BootFailure> {
    session
        .reset(ResetKind::HardReset)
        .map_err(BootFailure::Rejected)?;
    rep.detail("waiting for the miner to print its configuration at boot");
    let mut capture = BootConfigCapture::new();
    let mut outcome = None;
    session
        .read_lines(Instant::now() + CONFIG_WINDOW, &mut |line| {
            outcome = capture.feed(line);
            outcome.is_some()
        })
        .map_err(BootFailure::PortGone)?;
    match outcome.or_else(|| capture.finish()) {
        Some(BootConfig::Captured(printed)) => {
            if !nerd_config::same_config(expected, &printed) {
                return Err(BootFailure::Rejected(format!(
                    "the miner booted with a different configuration than the one written \
                     (printed {})",
                    Value::Object(mask_config(&printed))
                )));
            }
        }
        Some(BootConfig::NoConfigFile) | Some(BootConfig::SetupMode) => {
            return Err(BootFailure::Rejected(
                "the miner booted without a configuration and opened its setup portal \
                 (NerdMinerAP): the firmware did not accept the image"
                    .into(),
            ))
        }
        Some(BootConfig::ParseError) => {
            return Err(BootFailure::Rejected(
                "the miner could not parse the configuration written (\"SPIFS: Error parsing \
                 config file!\") and opened its setup portal"
                    .into(),
            ))
        }
        None => {
            return Err(BootFailure::Rejected(format!(
                "the miner printed no configuration within {} s of the reset",
                CONFIG_WINDOW.as_secs()
            )))
        }
    }
    rep.detail("the miner printed the configuration written; waiting for it to reach its pool");
    let mut portal = false;
    let connected = session
        .read_lines(Instant::now() + POOL_WINDOW, &mut |line| {
            portal |= line.contains("Entered Configuration Mode");
            portal
                || line.contains("mining.subscribe")
                || line.contains("mining.authorize")
                || line.contains(">>> Completed")
        })
        .map_err(BootFailure::PortGone)?;
    if portal {
        return Err(BootFailure::Rejected(
            "the miner opened its setup portal instead of connecting".into(),
        ));
    }
    if !connected {
        return Err(BootFailure::Rejected(format!(
            "the miner did not contact its pool within {} s (wrong pool, port or Wi-Fi?)",
            POOL_WINDOW.as_secs()
        )));
    }
    Ok(())
}

/// Puts the partition read before the write back, verifies it, and watches the miner boot.
fn rollback(
    session: &mut PortSession<'_>,
    rep: &Reporter<'_>,
    current: &Current,
    backup_id: i64,
    why: String,
    mut result: Value,
) -> Outcome {
    result["rolled_back"] = json!(false);
    rep.detail("entering the ROM bootloader to restore the backup");
    if let Err(e) = session.reset(ResetKind::Bootloader) {
        result[RESTORE_ON_REPLUG] = json!(backup_id);
        return failed(
            format!(
                "{why}; the backup could not be restored ({e}). {}",
                replug_note(backup_id)
            ),
            result,
        );
    }
    let stop = session.stop_flag();
    let mut loader = Loader::new(session.loader_port());
    let restored = (|| {
        if stop.load(Ordering::Relaxed) {
            return Err(WriteError::Failed("shepherd is stopping".into()));
        }
        flash_session::open(&mut loader, ALREADY_RESET, &mut |s| rep.detail(s))
            .map(|_| ())
            .map_err(|e| match e {
                LoaderError::Io(e) => WriteError::PortGone(e.to_string()),
                e => WriteError::Failed(format!("bootloader: {e}")),
            })?;
        write_verified(
            &mut loader,
            rep,
            current.partition.offset,
            &current.image,
            "the backup",
        )
    })();
    let text = loader.take_text();
    drop(loader);
    session.ingest_bytes(&text);
    match restored {
        Err(WriteError::PortGone(e)) => {
            let msg = session.lost(e);
            result[RESTORE_ON_REPLUG] = json!(backup_id);
            return failed(
                format!(
                    "{why}; restoring the backup was interrupted: {msg}. {}",
                    replug_note(backup_id)
                ),
                result,
            );
        }
        Err(WriteError::Failed(e)) => {
            let _ = back_to_firmware(session);
            result[RESTORE_ON_REPLUG] = json!(backup_id);
            return failed(
                format!(
                    "{why}; restoring the backup failed too ({e}). {} (or flash it with \
                     esptool)",
                    replug_note(backup_id)
                ),
                result,
            );
        }
        Ok(()) => {}
    }
    result["rolled_back"] = json!(true);
    rep.detail("backup restored and verified; resetting the miner into its firmware");
    let old = current.files.as_deref().ok().and_then(config_of);
    let back = match &old {
        Some(old) => match confirm_boot(session, rep, old) {
            Ok(()) => "the miner is back on its previous configuration and mining".to_owned(),
            Err(BootFailure::PortGone(m)) | Err(BootFailure::Rejected(m)) => {
                format!("after the restore: {m}")
            }
        },
        None => match back_to_firmware(session) {
            Ok(()) => "the miner was reset (it had no configuration before either)".to_owned(),
            Err(e) => e,
        },
    };
    failed(
        format!(
            "not written: {why}. The backup #{backup_id} taken before the write was flashed back \
             and verified; {back}"
        ),
        result,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::migrate::migrate;
    use crate::db::miners;

    fn db() -> rusqlite::Connection {
        let mut c = rusqlite::Connection::open_in_memory().unwrap();
        c.pragma_update(None, "foreign_keys", true).unwrap();
        migrate(&mut c).unwrap();
        c
    }

    fn cut_off_write(c: &rusqlite::Connection, m: i64) -> i64 {
        let b = commands::insert_backup(
            c,
            &Backup {
                id: 0,
                miner_id: m,
                path: "/b/1.bin".into(),
                chip: None,
                mac: None,
                offset: 0x31_0000,
                size: 0xE_0000,
                sha256: "00".into(),
                created_at: 0,
            },
        )
        .unwrap();
        let id = commands::insert(c, m, "SET_CONFIG", Some("{}")).unwrap();
        commands::finish(
            c,
            id,
            false,
            "cut off",
            Some(&json!({ RESTORE_ON_REPLUG: b })),
        )
        .unwrap();
        b
    }

    #[test]
    fn a_cut_off_write_queues_its_restore_once_when_the_port_returns() {
        let c = db();
        let m = miners::add(&c, "garage", "/dev/ttyUSB0", "serial").unwrap();
        let b = cut_off_write(&c, m);
        let id = queue_restore_after_replug(&c, m).unwrap().unwrap();
        let row = commands::get(&c, id).unwrap().unwrap();
        assert_eq!(row.command, "SET_CONFIG");
        let payload: Value = serde_json::from_str(row.payload.as_deref().unwrap()).unwrap();
        assert_eq!(payload[RESTORE_KEY]["backup_id"], b);
        // Reopening again does not queue a second one.
        assert_eq!(queue_restore_after_replug(&c, m).unwrap(), None);
    }

    #[test]
    fn no_restore_when_something_ran_since_or_nothing_was_cut_off() {
        let c = db();
        let m = miners::add(&c, "garage", "/dev/ttyUSB0", "serial").unwrap();
        assert_eq!(queue_restore_after_replug(&c, m).unwrap(), None);
        cut_off_write(&c, m);
        commands::insert(&c, m, "GET_CONFIG", None).unwrap();
        assert_eq!(queue_restore_after_replug(&c, m).unwrap(), None);
    }

    #[test]
    fn payloads_are_checked_before_the_miner_is_touched() {
        assert!(config_from_payload(Some("nope"))
            .unwrap_err()
            .contains("not JSON"));
        assert!(config_from_payload(Some("[1]"))
            .unwrap_err()
            .contains("object"));
        assert!(config_from_payload(Some(r#"{"portNumber": 0}"#))
            .unwrap_err()
            .contains("refused before touching the miner"));
        assert!(config_from_payload(Some(r#"{"portNumber": 3333}"#)).is_ok());
    }
}
