//! SET_CONFIG (a new configuration, or a stored backup put back): write a miner's SPIFFS partition, run on its reader thread
//! with the port lent to it, so nothing else touches the port meanwhile.
//!
//! The protocol never leaves a miner worse off than it was, and recovery never goes backwards:
//! 1. enter the ROM bootloader, read the whole SPIFFS partition (MD5-checked), keep it as a
//!    backup (file and folder synced); refuse when it does not mount with the firmware's
//!    parameters or its size is not one the builder can fill exactly (our image would be
//!    formatted at boot), and a restore whose backup came from another chip (factory MAC);
//! 2. build the new image in memory (every other file kept), read it back with our own reader
//!    and compare every file;
//! 3. choose the image to fall back on — only one that mounts and holds a `/config.json`: the
//!    partition just read when it is good and the miner has no restore pending, else the backup
//!    a restore puts back, else the newest intact backup of this chip — and record it durably
//!    as the miner's restore intent (`restore_intents`, synced) before the first command that
//!    erases flash;
//! 4. flash only that partition, verify with the chip's MD5 of the region (one retry);
//! 5. hard-reset and watch the boot log: success only when the miner prints the configuration
//!    written and starts talking to its pool; the intent is then cleared;
//! 6. otherwise flash the fall-back image back, verify, reset, watch it boot, and say what
//!    happened. A chip that cannot be reached keeps its intent: the restore is queued when its
//!    port opens again, at most [`MAX_AUTO_RESTORES`] times.
//!
//! Every step goes to the command's `detail` for the manage page and `shepherd config set`.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use actix::Addr;
use md5::{Digest, Md5};
use serde_json::{json, Map, Value};
use sha2::Sha256;

use super::backups::{self, GoodImage};
use super::boot_config::{BootConfig, BootConfigCapture};
use super::command::{
    back_to_firmware, db_call, loader_options, mask_config, record_end, store_backup,
    wait_for_boot, Failure, Outcome, Reporter, NO_RESET_KEY,
};
use super::get_config::{read_with_loader, FlashFailure};
use super::reader::PortSession;
use crate::clock::now_ms;
use crate::db::commands::{self, Backup, RestorePayload, MAX_AUTO_RESTORES, RESTORE_KEY};
use crate::db::DbActor;
use crate::flash::command::SECTOR;
use crate::flash::loader::Loader;
use crate::flash::port::{LoaderPort, SessionPort};
use crate::flash::session::{self as flash_session, Options};

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

/// What to put on the miner.
enum Plan {
    /// New configuration values (merged into the current `/config.json`).
    Config(Map<String, Value>),
    /// A stored partition image, checked (see [`backups::check_backup`]).
    Restore(RestorePayload, GoodImage),
}

fn failed(detail: impl Into<String>, result: Value) -> Outcome {
    Outcome {
        ok: false,
        detail: detail.into(),
        result,
        config: None,
        cause: None,
    }
}

/// Parses a SET_CONFIG payload (the configuration object, or a change of some keys) and checks
/// it before the miner is touched; the merged configuration is checked in full later.
pub fn config_from_payload(payload: Option<&str>) -> Result<Map<String, Value>, String> {
    let text = payload.unwrap_or_default();
    let mut map = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err("the configuration must be a JSON object".into()),
        Err(e) => return Err(format!("the configuration is not JSON: {e}")),
    };
    // How to reach the loader, not a firmware key (see `loader_options`).
    map.remove(NO_RESET_KEY);
    let errors = nerd_config::validate_change(&map);
    if !errors.is_empty() {
        return Err(format!(
            "refused before touching the miner: {}",
            nerd_config::describe(&errors)
        ));
    }
    Ok(map)
}

/// Result key of a write that could not finish and left a restore intent: the backup put back
/// when the miner's port opens again ([`queue_restore_after_replug`]).
pub const RESTORE_ON_REPLUG: &str = "restore_on_replug";

fn replug_note(g: &GoodImage) -> String {
    format!(
        "Backup #{} ({}), the configuration to go back to, will be written back automatically \
         when the miner's port opens again (at most {MAX_AUTO_RESTORES} times); or restore it \
         from the manage page",
        g.backup_id, g.path
    )
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
            let automatic = restore
                .as_ref()
                .and_then(|r| r.get("automatic"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let miner = session.miner_id();
            let plan = match restore {
                Some(r) => restore_plan(&rep, miner, r),
                None => config_from_payload(payload).map(Plan::Config),
            };
            let mut outcome = match (plan, loader_options(payload)) {
                (Err(e), _) | (_, Err(e)) => failed(e, json!({})),
                (Ok(plan), Ok(opts)) => run(session, &rep, plan, opts),
            };
            if automatic && !outcome.ok {
                outcome.detail.push_str(&give_up_note(db, miner));
            }
            if !outcome.result.is_object() {
                outcome.result = json!({});
            }
            outcome.result["steps"] = json!(rep.steps.take());
            outcome
        }
    };
    record_end(db, id, outcome);
}

/// After a failed automatic restore: says so when it was the last one shepherd queues.
fn give_up_note(db: &Addr<DbActor>, miner: i64) -> String {
    let found = db_call(db, move |c| {
        let Some(i) = commands::intent(c, miner)? else {
            return Ok(None);
        };
        Ok(commands::backup(c, i.backup_id)?.map(|b| (i, b)))
    });
    match found {
        Ok(Some((i, b))) if i.attempts >= MAX_AUTO_RESTORES => format!(
            " Automatic restores stop here ({MAX_AUTO_RESTORES} failed): restore backup #{} \
             by hand from the manage page once the miner is reachable, or flash its file with \
             `esptool.py write_flash 0x{:x} {}`",
            b.id, b.offset, b.path
        ),
        _ => String::new(),
    }
}

/// Loads and checks the backup a restore names; a damaged one is refused by name and the
/// newest intact backup of the same chip is proposed (or, for an automatic restore, used).
fn restore_plan(rep: &Reporter<'_>, miner: i64, payload: Value) -> Result<Plan, String> {
    let mut p: RestorePayload = serde_json::from_value(payload)
        .map_err(|e| format!("the restore command's payload is not valid: {e}"))?;
    let (named, all) = {
        let id = p.backup_id;
        db_call(rep.db, move |c| {
            Ok((commands::backup(c, id)?, commands::backups(c, miner)?))
        })?
    };
    if p.mac.is_none() {
        p.mac = named.and_then(|b| b.mac);
    }
    let problem = match backups::load(&p.row()) {
        Ok(g) => return Ok(Plan::Restore(p, g)),
        Err(e) => e,
    };
    let (next, _) = backups::newest_good(
        &all,
        p.mac.as_deref(),
        (p.offset, p.size),
        &|b| b.id != p.backup_id,
        &|b| std::fs::read(&b.path),
    );
    match next {
        Some(g) if p.automatic => {
            rep.detail(format!(
                "{problem}; restoring backup #{} instead, the newest intact one of this chip",
                g.backup_id
            ));
            p.backup_id = g.backup_id;
            p.path = g.path.clone();
            p.sha256 = g.sha256.clone();
            Ok(Plan::Restore(p, g))
        }
        Some(g) => Err(format!(
            "{problem}: refusing to write it. Backup #{} ({}) of the same chip is intact and \
             holds a configuration (pool {}): restore that one instead",
            g.backup_id,
            g.path,
            g.config
                .get("poolString")
                .and_then(Value::as_str)
                .unwrap_or("?")
        )),
        None => Err(format!(
            "{problem}: refusing to write it, and no other backup of this chip is intact with a \
             configuration in it"
        )),
    }
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

/// Ends a restore before anything is written when the chip on the port is not the one the
/// backup came from.
fn wrong_chip(p: &RestorePayload, chip_mac: &str) -> Option<String> {
    if backups::same_chip(p.mac.as_deref(), Some(chip_mac)) != Some(false) {
        return None;
    }
    let later = if p.automatic {
        "; the restore stays pending until that miner is back on this port"
    } else {
        ""
    };
    Some(format!(
        "refused: backup #{} was read from the chip with MAC {}, but the chip on this port has \
         MAC {chip_mac}: a different miner, whose own configuration (and wallet) it would \
         replace. Plug the right miner in, or restore one of this chip's own backups{later}",
        p.backup_id,
        p.mac.as_deref().unwrap_or("?"),
    ))
}

/// Refuses a write while this miner has a restore pending of a backup from another chip:
/// writing the chip now on the port would end that incident (and that miner's configuration
/// would never be put back).
fn pending_elsewhere(pending: Option<&Backup>, chip_mac: &str) -> Option<String> {
    let b = pending?;
    if backups::same_chip(b.mac.as_deref(), Some(chip_mac)) != Some(false) {
        return None;
    }
    Some(format!(
        "refused: this miner still has to get backup #{} back, read from the chip with MAC {}, \
         but the chip on this port has MAC {chip_mac}: a different miner. Plug the right miner \
         in (its backup is restored by itself), or add this one as a miner of its own",
        b.id,
        b.mac.as_deref().unwrap_or("?"),
    ))
}

fn run(session: &mut PortSession<'_>, rep: &Reporter<'_>, plan: Plan, opts: Options) -> Outcome {
    let miner = session.miner_id();
    let (dir, keep) = session.backups();
    let home = session.home_baud();
    rep.detail(if opts.reset {
        "entering the ROM bootloader (DTR/RTS bootloader sequence)"
    } else {
        "talking to a miner put into download mode by hand (--no-reset)"
    });
    let stop = session.stop_flag();
    let mut loader = Loader::new(session.loader_port());
    let mut result = json!({});

    // 1. The current partition, from the right chip, as a backup.
    let current = match read_current(&mut loader, rep, stop, opts) {
        Ok(c) => c,
        Err(why) => {
            let closed = close(loader, opts, home);
            return finish_without_write(session, rep, closed, why, result);
        }
    };
    let pending = db_call(rep.db, move |c| {
        let Some(i) = commands::intent(c, miner)? else {
            return Ok(None);
        };
        Ok(Some((i.clone(), commands::backup(c, i.backup_id)?)))
    });
    let pending = match pending {
        Ok(p) => p,
        Err(e) => {
            let closed = close(loader, opts, home);
            return finish_without_write(session, rep, closed, e, result);
        }
    };
    let pending_backup = pending.as_ref().and_then(|(_, b)| b.as_ref());
    let refusal = match &plan {
        Plan::Restore(p, _) => wrong_chip(p, &current.mac),
        Plan::Config(_) => pending_elsewhere(pending_backup, &current.mac),
    };
    if let Some(why) = refusal {
        let closed = close(loader, opts, home);
        return finish_without_write(session, rep, closed, why, result);
    }
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
            sha256: sha.clone(),
            created_at: now_ms(),
            // With a restore pending, the miner was never confirmed on what this partition
            // holds (a write cut off by the flasher stub, which erases as it writes, can leave
            // a mix of old and new that still mounts): never a configuration to go back to.
            config_ok: pending.is_some().then_some(false),
        },
        &current.image,
    );
    let (backup_id, backup_path) = match backup {
        Ok(stored) => stored,
        Err(e) => {
            let closed = close(loader, opts, home);
            return finish_without_write(
                session,
                rep,
                closed,
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
            let closed = close(loader, opts, home);
            return finish_without_write(session, rep, closed, why, result);
        }
    };
    result["config"] = Value::Object(mask_config(&target.config));

    // 3. What to fall back on, recorded before the first erase.
    let stored = Stored {
        id: backup_id,
        path: backup_path,
        sha256: sha,
    };
    let fall_back = fall_backs(rep, miner, &current, &stored, &plan, &pending, &target);
    if let Some(g) = &fall_back.intent {
        let (good, cmd) = (g.backup_id, rep.id);
        let recorded = db_call(rep.db, move |c| {
            commands::record_intent(c, miner, good, cmd)
        });
        if let Err(e) = recorded {
            let closed = close(loader, opts, home);
            return finish_without_write(
                session,
                rep,
                closed,
                format!(
                    "cannot record which backup to restore should the write be cut off ({e}); \
                     nothing was written"
                ),
                result,
            );
        }
        rep.detail(format!(
            "recorded backup #{good} as the configuration to restore should the write not finish"
        ));
    } else {
        rep.detail(
            "no intact configuration of this chip to fall back on (the miner holds none and no \
             backup of it does): writing without one",
        );
    }

    // 4. Flash and verify.
    let offset = current.partition.offset;
    let written = write_verified(&mut loader, rep, offset, &target.image, "the new image");
    if let Err(why) = written {
        // Not left for the firmware: a half-written partition must not boot; the rollback
        // re-enters the loader from here.
        let text = abandon(loader);
        session.ingest_bytes(&text);
        let why = match why {
            WriteError::PortGone(e) => {
                let msg = session.lost(port_words(&e));
                return left_pending(
                    format!(
                        "{msg}. The write was interrupted: the partition may be half written and \
                         the miner may come up in its setup portal"
                    ),
                    Some(e),
                    fall_back.intent.as_ref(),
                    result,
                );
            }
            WriteError::Failed(why) => why,
        };
        rep.detail(format!("{why}; putting the previous configuration back"));
        return rollback(session, rep, offset, &fall_back, why, result, opts);
    }

    // 5. Reset and watch the miner come back with the new configuration.
    rep.detail("written and verified; resetting the miner into its firmware");
    let closed = close(loader, opts, home);
    let early = session.ingest_bytes(&closed.text);
    match confirm_boot(session, rep, &target.config, closed.left, &early) {
        Ok(()) => {
            let what = match &plan {
                Plan::Config(_) => "configuration written".to_owned(),
                Plan::Restore(p, _) => format!("backup #{} restored", p.backup_id),
            };
            result["confirmed"] = json!(true);
            let cleared = db_call(rep.db, move |c| commands::clear_intent(c, miner));
            let note = match cleared {
                Ok(()) => String::new(),
                Err(e) => format!(" (its pending restore could not be cleared: {e})"),
            };
            Outcome {
                ok: true,
                detail: format!(
                    "{what}: MD5 verified, the miner booted with it and connected to its pool \
                     (backup of the previous partition: #{backup_id}){note}"
                ),
                result,
                config: Some(target.config),
                cause: None,
            }
        }
        Err(BootFailure::PortGone(msg)) => left_pending(
            format!(
                "{msg}. The new image was written and verified, but the miner went away before \
                 it confirmed it"
            ),
            None,
            fall_back.intent.as_ref(),
            result,
        ),
        Err(BootFailure::Rejected(why)) => {
            rep.detail(format!("{why}; putting the previous configuration back"));
            rollback(session, rep, offset, &fall_back, why, result, opts)
        }
        Err(BootFailure::NoPool(why)) => {
            rep.detail(format!("{why}; putting the previous configuration back"));
            rollback(session, rep, offset, &fall_back, why.into(), result, opts)
        }
    }
}

/// The backup just taken of the partition being replaced.
struct Stored {
    id: i64,
    path: String,
    sha256: String,
}

/// The images a write can fall back on (each one mounts and holds a `/config.json`).
struct FallBack {
    /// Recorded as the restore intent before the first erase: what a cut-off write is undone
    /// with.
    intent: Option<GoodImage>,
    /// Written back when the write itself fails or the firmware rejects it: never the image
    /// that just failed.
    rollback: Option<GoodImage>,
}

/// Picks the fall-backs, in order of preference: the partition just read when it is good and
/// no restore is pending (a pending one means the miner was never confirmed on it); the backup
/// a restore writes; the backup the pending intent names; the newest intact backup of this
/// chip. Backups damaged on disk are passed over, each reported.
fn fall_backs(
    rep: &Reporter<'_>,
    miner: i64,
    current: &Current,
    stored: &Stored,
    plan: &Plan,
    pending: &Option<(commands::RestoreIntent, Option<Backup>)>,
    target: &Target,
) -> FallBack {
    let mut chain: Vec<GoodImage> = Vec::new();
    let current_config = current.files.as_deref().ok().and_then(config_of);
    match (current_config, pending) {
        (Some(config), None) => chain.push(GoodImage {
            backup_id: stored.id,
            path: stored.path.clone(),
            image: current.image.clone(),
            sha256: stored.sha256.clone(),
            config,
        }),
        (Some(_), Some((i, _))) => rep.detail(format!(
            "the partition read mounts, but backup #{} is still pending a restore: the miner was \
             not confirmed on what it holds, so it is not what a failure falls back on",
            i.backup_id
        )),
        (None, _) => rep.detail(
            "the partition read holds no usable configuration: a failure falls back on a stored \
             backup instead",
        ),
    }
    if let Plan::Restore(_, g) = plan {
        chain.push(g.clone());
    }
    let chip_mac = Some(current.mac.as_str());
    if let Some((_, Some(b))) = pending {
        let listed = chain.iter().any(|g| g.backup_id == b.id);
        if !listed && backups::same_chip(b.mac.as_deref(), chip_mac) != Some(false) {
            match backups::load(b) {
                Ok(g) => chain.push(g),
                Err(e) => rep.detail(e),
            }
        }
    }
    let target_sha = hex(&Sha256::digest(&target.image));
    // Only when nothing listed so far could undo a failure of the target itself.
    if !chain.iter().any(|g| g.sha256 != target_sha) {
        match db_call(rep.db, move |c| commands::backups(c, miner)) {
            Ok(all) => {
                let have: Vec<String> = chain.iter().map(|g| g.sha256.clone()).collect();
                let (found, passed) = backups::newest_good(
                    &all,
                    chip_mac,
                    (
                        i64::from(current.partition.offset),
                        i64::from(current.partition.size),
                    ),
                    &|b| b.id != stored.id && !have.contains(&b.sha256) && b.sha256 != target_sha,
                    &|b| std::fs::read(&b.path),
                );
                for p in passed {
                    rep.detail(format!("{p}: passed over"));
                }
                chain.extend(found);
            }
            Err(e) => rep.detail(format!("cannot list the stored backups: {e}")),
        }
    }
    FallBack {
        intent: chain.first().cloned(),
        rollback: chain.iter().find(|g| g.sha256 != target_sha).cloned(),
    }
}
/// A loader session that ended: what the chip printed around it, and whether leaving the
/// loader for the firmware worked.
struct Closed {
    text: Vec<u8>,
    left: Result<(), Failure>,
}

/// Leaves the loader for the firmware (see `flash::session::leave`) and ends the session.
fn close(mut loader: Loader<SessionPort<'_>>, opts: Options, home: u32) -> Closed {
    let left = flash_session::leave(&mut loader, opts, home)
        .map_err(|e| Failure::loader("could not leave the bootloader for the firmware", e));
    Closed {
        text: loader.take_text(),
        left,
    }
}

/// Ends a session without leaving the loader (the port is gone, or a rollback re-enters it).
fn abandon(mut loader: Loader<SessionPort<'_>>) -> Vec<u8> {
    loader.take_text()
}

/// Refusals before anything was written: the chip still goes back into its firmware.
fn finish_without_write(
    session: &mut PortSession<'_>,
    rep: &Reporter<'_>,
    closed: Closed,
    why: impl Into<Failure>,
    result: Value,
) -> Outcome {
    rep.detail("waiting for the miner to boot its firmware again (nothing was written)");
    session.ingest_bytes(&closed.text);
    let resumed = closed
        .left
        .and_then(|()| wait_for_boot(session).map_err(Failure::Other));
    let (note, then) = match resumed {
        Ok(()) => (
            " Nothing was written; the miner was reset back into its firmware.".to_owned(),
            None,
        ),
        Err(e) => (format!(" Nothing was written; then {e}"), e.cause()),
    };
    let why: Failure = why.into();
    let detail = format!("{why}.{note}");
    Outcome::failed_with(detail, why.cause().or(then), result)
}

fn read_current<T: LoaderPort>(
    loader: &mut Loader<T>,
    rep: &Reporter<'_>,
    stop: &std::sync::atomic::AtomicBool,
    opts: Options,
) -> Result<Current, Failure> {
    let (chip, mac, partition, image) = match read_with_loader(loader, rep, stop, opts) {
        Ok(r) => r,
        Err(FlashFailure::NoSpiffs(why)) => {
            return Err(format!("could not read the current partition: {why}").into())
        }
        Err(FlashFailure::Failed { why, .. }) => {
            return Err(why.within("could not read the current partition"))
        }
    };
    if partition.size as usize != image.len() || partition.size % SECTOR != 0 {
        return Err(Failure::Other(format!(
            "the SPIFFS partition is {} bytes, not a whole number of 4 KiB blocks: the builder \
             cannot make an image of exactly that size, so nothing is written",
            partition.size
        )));
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
        Plan::Restore(p, good) => {
            if p.offset != i64::from(current.partition.offset) || p.size != size as i64 {
                return Err(format!(
                    "backup #{} was read from 0x{:x} ({} bytes) but this miner's SPIFFS \
                     partition is at 0x{:x} ({size} bytes): refusing to write it here",
                    p.backup_id, p.offset, p.size, current.partition.offset
                ));
            }
            good.image.clone()
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
    /// The port failed (the USB device went away): the loader's `Io` error.
    PortGone(LoaderError),
    /// The chip stopped answering, or the write or its check failed.
    Failed(Failure),
}

/// How a port that failed under the loader is told to the reader (`PortSession::lost`): in the
/// system's own words, which the reader's sentence wraps.
fn port_words(e: &LoaderError) -> String {
    match e {
        LoaderError::Io(io) => io.to_string(),
        e => e.to_string(),
    }
}

/// The loader error that ended a write whose rollback failed too: the write's own when it had
/// one (what cut it off), else the rollback's; the rollback's kind goes in the result as well.
fn first_cause(why: Failure, then: Option<LoaderError>, result: &mut Value) -> Option<LoaderError> {
    if let Some(e) = &then {
        result["rollback_loader_error"] = json!(e.kind());
    }
    why.cause().or(then)
}

// The loader calls this writer makes, kept together: the loader's API is being reworked
// (it will no longer send FLASH_END after a write — on a real ROM that leaves the loader, and
// esptool never sends it — and the writer hard-resets after the MD5 check, in `confirm_boot`).

/// Erases and writes `image` at `offset` (FLASH_BEGIN, FLASH_DATA…).
fn loader_write<T: LoaderPort>(
    loader: &mut Loader<T>,
    offset: u32,
    image: &[u8],
    progress: &mut dyn FnMut(u32, u32),
) -> Result<(), LoaderError> {
    loader.write_flash(offset, image, progress)
}

/// The chip's MD5 of `[offset, offset + size)`.
fn loader_md5<T: LoaderPort>(
    loader: &mut Loader<T>,
    offset: u32,
    size: u32,
) -> Result<[u8; 16], LoaderError> {
    loader.flash_md5(offset, size)
}

/// Writes `image` at `offset` and checks the chip's MD5 of the region; tries again once
/// unless the chip stopped answering (a pulled cable does not answer a second erase either).
fn write_verified<T: LoaderPort>(
    loader: &mut Loader<T>,
    rep: &Reporter<'_>,
    offset: u32,
    image: &[u8],
    what: &str,
) -> Result<(), WriteError> {
    let size = image.len() as u32;
    let ours = Md5::digest(image);
    let mut last = Failure::Other("nothing was written".into());
    let gone = |e: LoaderError, during: &str| match e {
        e @ LoaderError::Io(_) => WriteError::PortGone(e),
        e => WriteError::Failed(Failure::loader(
            format!("the write was cut off {during}"),
            e,
        )),
    };
    for attempt in 1..=WRITE_ATTEMPTS {
        let label = format!("writing {what} at 0x{offset:x} (attempt {attempt})");
        rep.detail(format!("{label}: 0%"));
        let mut last_pct = 0;
        let written = loader_write(loader, offset, image, &mut |done, total| {
            let pct = u64::from(done) * 100 / u64::from(total.max(1));
            if pct >= last_pct + 10 {
                last_pct = pct;
                rep.detail(format!("{label}: {pct}%"));
            }
        });
        let problem = match written {
            Err(e @ (LoaderError::Io(_) | LoaderError::Timeout { .. })) => {
                return Err(gone(e, "while writing"))
            }
            Err(e) => Failure::loader("the write failed", e),
            Ok(()) => {
                rep.detail("verifying the write against the chip's MD5 of the partition");
                match loader_md5(loader, offset, size) {
                    Err(e @ (LoaderError::Io(_) | LoaderError::Timeout { .. })) => {
                        return Err(gone(e, "while verifying"))
                    }
                    Err(e) => Failure::loader("the MD5 check failed", e),
                    Ok(chip) if chip == ours.as_slice() => return Ok(()),
                    Ok(chip) => Failure::Other(format!(
                        "MD5 mismatch after writing {what} (ours {}, chip {})",
                        hex(ours.as_slice()),
                        hex(&chip)
                    )),
                }
            }
        };
        rep.detail(format!("{problem} (attempt {attempt} of {WRITE_ATTEMPTS})"));
        last = problem;
    }
    Err(WriteError::Failed(last))
}

enum BootFailure {
    /// The port failed while watching.
    PortGone(String),
    /// No configuration, another one, or the setup portal (or the loader not left for it).
    Rejected(Failure),
    /// The configuration expected was printed, but the pool was not reached in time.
    NoPool(String),
}

/// Hard-resets and watches the boot: the configuration printed must be `expected` and the
/// miner must then start talking to its pool.
fn confirm_boot(
    session: &mut PortSession<'_>,
    rep: &Reporter<'_>,
    expected: &Map<String, Value>,
    left: Result<(), Failure>,
    early: &[String],
) -> Result<(), BootFailure> {
    left.map_err(BootFailure::Rejected)?;
    rep.detail("waiting for the miner to print its configuration at boot");
    let mut capture = BootConfigCapture::new();
    // Lines the firmware printed while the loader was still reading its last reply.
    let mut rest = early.iter();
    let mut outcome = rest.by_ref().find_map(|line| capture.feed(line));
    if outcome.is_none() {
        session
            .read_lines(Instant::now() + CONFIG_WINDOW, &mut |line| {
                outcome = capture.feed(line);
                outcome.is_some()
            })
            .map_err(BootFailure::PortGone)?;
    }
    match outcome.or_else(|| capture.finish()) {
        Some(BootConfig::Captured(printed)) => {
            if !nerd_config::same_config(expected, &printed) {
                return Err(BootFailure::Rejected(Failure::Other(format!(
                    "the miner booted with a different configuration than the one written \
                     (printed {})",
                    Value::Object(mask_config(&printed))
                ))));
            }
        }
        Some(BootConfig::NoConfigFile) | Some(BootConfig::SetupMode) => {
            return Err(BootFailure::Rejected(Failure::Other(
                "the miner booted without a configuration and opened its setup portal \
                 (NerdMinerAP): the firmware did not accept the image"
                    .into(),
            )))
        }
        Some(BootConfig::ParseError) => {
            return Err(BootFailure::Rejected(Failure::Other(
                "the miner could not parse the configuration written (\"SPIFS: Error parsing \
                 config file!\") and opened its setup portal"
                    .into(),
            )))
        }
        None => {
            return Err(BootFailure::Rejected(Failure::Other(format!(
                "the miner printed no configuration within {} s of the reset",
                CONFIG_WINDOW.as_secs()
            ))))
        }
    }
    rep.detail("the miner printed the configuration written; waiting for it to reach its pool");
    let mut portal = false;
    let mut settled = |line: &str| {
        portal |= line.contains("Entered Configuration Mode");
        portal
            || line.contains("mining.subscribe")
            || line.contains("mining.authorize")
            || line.contains(">>> Completed")
    };
    let connected = rest.any(|line| settled(line))
        || session
            .read_lines(Instant::now() + POOL_WINDOW, &mut settled)
            .map_err(BootFailure::PortGone)?;
    if portal {
        return Err(BootFailure::Rejected(Failure::Other(
            "the miner opened its setup portal instead of connecting".into(),
        )));
    }
    if !connected {
        return Err(BootFailure::NoPool(format!(
            "the miner did not contact its pool within {} s (wrong pool, port or Wi-Fi?)",
            POOL_WINDOW.as_secs()
        )));
    }
    Ok(())
}

/// Ends a write the chip could not be brought back from: its restore intent stays, and the
/// message names the backup restored when the port opens again.
/// `cause` is the loader's error that ended it, if one did.
fn left_pending(
    why: String,
    cause: Option<LoaderError>,
    intent: Option<&GoodImage>,
    mut result: Value,
) -> Outcome {
    let next = match intent {
        Some(g) => {
            result[RESTORE_ON_REPLUG] = json!(g.backup_id);
            replug_note(g)
        }
        None => "No intact configuration of this chip exists to put back: configure the miner \
                 through its setup portal (NerdMinerAP) or write a configuration again"
            .to_owned(),
    };
    Outcome::failed_with(format!("{why}. {next}"), cause, result)
}

/// Writes the fall-back image back, verifies it, and watches the miner boot with it; the
/// restore intent is re-pointed at it first (durably) and cleared once the miner runs it.
fn rollback(
    session: &mut PortSession<'_>,
    rep: &Reporter<'_>,
    offset: u32,
    fall_back: &FallBack,
    why: Failure,
    mut result: Value,
    opts: Options,
) -> Outcome {
    result["rolled_back"] = json!(false);
    let miner = session.miner_id();
    let Some(good) = &fall_back.rollback else {
        let _ = back_to_firmware(session);
        return left_pending(
            format!(
                "not written: {why}. There is no other intact configuration of this chip to put \
                 back (the image that failed is the only one)"
            ),
            why.cause(),
            fall_back.intent.as_ref(),
            result,
        );
    };
    let id = good.backup_id;
    let intent = if fall_back.intent.as_ref().map(|g| g.backup_id) == Some(id) {
        fall_back.intent.as_ref()
    } else {
        // From now on this is the image being relied on.
        let cmd = rep.id;
        let recorded = db_call(rep.db, move |c| commands::record_intent(c, miner, id, cmd));
        match recorded {
            Ok(()) => Some(good),
            Err(e) => {
                rep.detail(format!(
                    "cannot re-point the restore intent at backup #{id}: {e}"
                ));
                fall_back.intent.as_ref()
            }
        }
    };
    rep.detail(format!(
        "entering the ROM bootloader to write backup #{id} back"
    ));
    let stop = session.stop_flag();
    let home = session.home_baud();
    let mut loader = Loader::new(session.loader_port());
    let restored = (|| {
        if stop.load(Ordering::Relaxed) {
            return Err(WriteError::Failed(Failure::Other(
                "shepherd is stopping".into(),
            )));
        }
        flash_session::open(&mut loader, opts, &mut |s| rep.detail(s)).map_err(|e| match e {
            e @ LoaderError::Io(_) => WriteError::PortGone(e),
            e => WriteError::Failed(Failure::loader("bootloader", e)),
        })?;
        write_verified(
            &mut loader,
            rep,
            offset,
            &good.image,
            &format!("backup #{id}"),
        )
    })();
    let closed = match &restored {
        Err(WriteError::PortGone(_)) => Closed {
            text: abandon(loader),
            left: Err(Failure::Other("the port is gone".into())),
        },
        _ => close(loader, opts, home),
    };
    let early = session.ingest_bytes(&closed.text);
    match restored {
        Err(WriteError::PortGone(e)) => {
            let msg = session.lost(port_words(&e));
            let text =
                format!("{why}; writing the previous configuration back was interrupted: {msg}");
            let cause = first_cause(why, Some(e), &mut result);
            return left_pending(text, cause, intent, result);
        }
        Err(WriteError::Failed(e)) => {
            let _ = closed
                .left
                .and_then(|()| wait_for_boot(session).map_err(Failure::Other));
            let text = format!(
                "{why}; writing the previous configuration back failed too ({e}); the miner may \
                 be unreachable"
            );
            let cause = first_cause(why, e.cause(), &mut result);
            return left_pending(text, cause, intent, result);
        }
        Ok(()) => {}
    }
    result["rolled_back"] = json!(true);
    rep.detail(format!(
        "backup #{id} written back and verified; resetting the miner into its firmware"
    ));
    let back = match confirm_boot(session, rep, &good.config, closed.left, &early) {
        Ok(()) => Ok("the miner is back on its previous configuration and mining".to_owned()),
        // Its own configuration, printed at boot: as good as it was before the write.
        Err(BootFailure::NoPool(m)) => Ok(format!(
            "the miner is back on its previous configuration, but {}",
            m.trim_start_matches("the miner ")
        )),
        Err(BootFailure::PortGone(m)) => Err(Failure::Other(m)),
        Err(BootFailure::Rejected(m)) => Err(m),
    };
    match back {
        Ok(back) => {
            let cleared = db_call(rep.db, move |c| commands::clear_intent(c, miner));
            let note = match cleared {
                Ok(()) => String::new(),
                Err(e) => format!(" (its pending restore could not be cleared: {e})"),
            };
            let detail = format!(
                "not written: {why}. Backup #{id} (the previous configuration) was flashed back \
                 and verified; {back}{note}"
            );
            Outcome::failed_with(detail, why.cause(), result)
        }
        Err(m) => {
            let text = format!(
                "not written: {why}. Backup #{id} was flashed back and verified, but after the \
                 reset {m}"
            );
            let cause = first_cause(why, m.cause(), &mut result);
            left_pending(text, cause, intent, result)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restore_onto_another_chip_is_refused_naming_both_macs() {
        let mut p = RestorePayload {
            backup_id: 7,
            path: "/b/7.bin".into(),
            offset: 0x31_0000,
            size: 0xE_0000,
            sha256: "00".into(),
            mac: Some("24:d7:eb:10:20:01".into()),
            automatic: false,
        };
        assert_eq!(wrong_chip(&p, "24:D7:EB:10:20:01"), None);
        let why = wrong_chip(&p, "24:d7:eb:10:20:02").unwrap();
        assert!(why.contains("24:d7:eb:10:20:01") && why.contains("24:d7:eb:10:20:02"));
        assert!(why.contains("backup #7"), "{why}");
        p.automatic = true;
        assert!(wrong_chip(&p, "24:d7:eb:10:20:02")
            .unwrap()
            .contains("stays pending"));
        // A MAC that could not be read cannot be compared: not a mismatch.
        assert_eq!(wrong_chip(&p, "unknown"), None);
    }

    #[test]
    fn a_write_is_refused_while_another_chips_restore_is_pending() {
        let b = Backup {
            id: 4,
            miner_id: 1,
            path: "/b/4.bin".into(),
            chip: None,
            mac: Some("24:d7:eb:10:20:01".into()),
            offset: 0x31_0000,
            size: 0xE_0000,
            sha256: "00".into(),
            created_at: 0,
            config_ok: Some(true),
        };
        assert_eq!(pending_elsewhere(None, "24:d7:eb:10:20:02"), None);
        assert_eq!(pending_elsewhere(Some(&b), "24:d7:eb:10:20:01"), None);
        let why = pending_elsewhere(Some(&b), "24:d7:eb:10:20:02").unwrap();
        assert!(
            why.contains("backup #4") && why.contains("different miner"),
            "{why}"
        );
    }

    #[test]
    fn payloads_from_older_versions_still_parse() {
        let v = json!({"backup_id": 1, "path": "/b", "offset": 1, "size": 2, "sha256": "00"});
        let p: RestorePayload = serde_json::from_value(v).unwrap();
        assert_eq!((p.mac, p.automatic), (None, false));
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
