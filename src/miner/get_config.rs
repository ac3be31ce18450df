//! GET_CONFIG: read a miner's configuration, run on its reader thread with the port lent to it.
//!
//! Two ways: the boot capture (hard reset, then parse the `/config.json` dump the firmware
//! prints while booting, with every line still ingested), and the flash read (enter the ROM
//! bootloader, read the partition table, read the whole SPIFFS partition, check it with the
//! chip's MD5, keep it as a backup, parse it, reset back into the firmware and watch it boot).
//! Every step is written to the command's `detail` so the manage page and `shepherd config get`
//! can show it live.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix::Addr;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::boot_config::{BootConfig, BootConfigCapture};
use super::command::{
    db_call, loader_options, mask_config, record_end, store_backup, wait_for_boot, Failure,
    Outcome, Reporter,
};
use super::reader::PortSession;
use crate::clock::now_ms;
use crate::db::commands::{self, Backup};
use crate::db::DbActor;
use crate::flash::lines::ResetKind;
use crate::flash::loader::Loader;
use crate::flash::partitions::{
    hex, Partition, PartitionError, PartitionTable, TABLE_MAX_LEN, TABLE_OFFSET,
};
use crate::flash::port::LoaderPort;
use crate::flash::session::{self as flash_session, Options};
use crate::flash::spiffs::{self, SpiffsParams};
use crate::flash::transport::LoaderError;

/// How long the firmware gets to print its configuration after a reset.
const BOOT_CAPTURE_WINDOW: Duration = Duration::from_secs(20);
/// Bytes read between checks for a stop request (2 s at 115200 baud).
const STOP_CHECK_BYTES: u32 = 16 * 1024;

/// How to read the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Flash read, falling back to the boot capture when it fails for any reason.
    Auto,
    /// Boot capture only.
    Boot,
    /// Flash read; falls back to the boot capture only when there is no SPIFFS partition.
    Flash,
}

impl Method {
    /// From the command's payload (`{"method": "boot" | "flash"}`; absent means auto).
    pub fn from_payload(payload: Option<&str>) -> Result<Method, String> {
        let Some(text) = payload.filter(|t| !t.trim().is_empty()) else {
            return Ok(Method::Auto);
        };
        let v: Value = serde_json::from_str(text)
            .map_err(|e| format!("the command's payload is not JSON: {e}"))?;
        match v.get("method").and_then(Value::as_str) {
            None => Ok(Method::Auto),
            Some("boot") => Ok(Method::Boot),
            Some("flash") => Ok(Method::Flash),
            Some(other) => Err(format!(
                "unknown method {other:?}: use \"boot\" (reset and capture the boot log) or \
                 \"flash\" (read the flash through the ROM bootloader)"
            )),
        }
    }
}

/// Runs GET_CONFIG command `id` and records its end.
pub fn execute(
    db: &Addr<DbActor>,
    id: i64,
    payload: Option<&str>,
    session: Result<&mut PortSession<'_>, String>,
) {
    let outcome = match session {
        Err(why) => failed(format!(
            "port gone: the miner's port is not open ({why}). Plug the miner in (or fix the \
             error shown on the dashboard) and try again"
        )),
        Ok(session) => {
            let path = session.path().to_owned();
            let (db2, text) = (db.clone(), format!("running on {path}"));
            let _ = db_call(&db2, move |c| commands::start(c, id, &text));
            let rep = Reporter::new(db, id);
            let mut outcome = match (Method::from_payload(payload), loader_options(payload)) {
                (Err(e), _) | (_, Err(e)) => failed(e),
                (Ok(method), Ok(opts)) => run(session, &rep, method, opts),
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

fn failed(detail: String) -> Outcome {
    Outcome::failed(detail)
}

fn run(
    session: &mut PortSession<'_>,
    rep: &Reporter<'_>,
    method: Method,
    opts: Options,
) -> Outcome {
    if method == Method::Boot {
        return boot_outcome(session, rep, None);
    }
    match flash_read(session, rep, opts) {
        Ok(read) => flash_outcome(session, rep, read),
        Err(FlashFailure::NoSpiffs(why)) => {
            rep.detail(format!("{why}; falling back to the boot capture"));
            boot_outcome(session, rep, Some(why))
        }
        Err(FlashFailure::Failed { why, note }) if method == Method::Auto => {
            let why = format!("{why}{note}");
            rep.detail(format!(
                "flash read failed ({why}); falling back to the boot capture"
            ));
            boot_outcome(session, rep, Some(why))
        }
        Err(FlashFailure::Failed { why, note }) => Outcome::failed_by(why, &note, Value::Null),
    }
}

fn boot_outcome(
    session: &mut PortSession<'_>,
    rep: &Reporter<'_>,
    fallback: Option<String>,
) -> Outcome {
    let fallback_note = fallback
        .as_deref()
        .map(|f| format!(" (fell back from the flash read: {f})"))
        .unwrap_or_default();
    match boot_capture(session, rep) {
        Ok(config) => Outcome {
            ok: true,
            detail: format!("configuration captured from the boot log{fallback_note}"),
            result: json!({
                "method": "boot",
                "config": mask_config(&config),
                "files": [],
                "fallback": fallback,
            }),
            config: Some(config),
            cause: None,
        },
        Err(e) => failed(format!("{e}{fallback_note}")),
    }
}

/// Resets the miner and captures the configuration it prints while booting.
fn boot_capture(
    session: &mut PortSession<'_>,
    rep: &Reporter<'_>,
) -> Result<Map<String, Value>, String> {
    rep.detail(
        "resetting the miner (DTR/RTS hard reset) to capture the configuration it prints at boot",
    );
    session.reset(ResetKind::HardReset)?;
    rep.detail("waiting for the boot log's configuration dump");
    let mut capture = BootConfigCapture::new();
    let mut outcome = None;
    session.read_lines(Instant::now() + BOOT_CAPTURE_WINDOW, &mut |line| {
        outcome = capture.feed(line);
        outcome.is_some()
    })?;
    match outcome.or_else(|| capture.finish()) {
        Some(BootConfig::Captured(map)) => Ok(map),
        Some(BootConfig::NoConfigFile) | Some(BootConfig::SetupMode) => Err(
            "the miner booted without a configuration (\"SPIFS: No config file available!\"): it \
             is in its setup portal. Join its NerdMinerAP Wi-Fi to configure it"
                .into(),
        ),
        Some(BootConfig::ParseError) => Err(
            "the miner printed a configuration that could not be parsed (\"SPIFS: Error parsing \
             config file!\" or a damaged dump); try again, or read it from flash"
                .into(),
        ),
        None => Err(format!(
            "no configuration was printed within {} s of the reset: is the miner running \
             NerdMiner firmware? Check its log on the dashboard",
            BOOT_CAPTURE_WINDOW.as_secs()
        )),
    }
}

/// Why a flash read failed: the fallback to the boot capture depends on which.
pub enum FlashFailure {
    /// The partition table has no SPIFFS partition (the boot capture is the only way).
    NoSpiffs(String),
    /// Anything else (link, chip, MD5, stop request), the loader's error kept typed; `note`
    /// says how the miner was left.
    Failed {
        /// What went wrong.
        why: Failure,
        /// After the sentence: how the miner was left (empty until known).
        note: String,
    },
}

impl FlashFailure {
    fn other(why: impl Into<String>) -> Self {
        FlashFailure::Failed {
            why: Failure::Other(why.into()),
            note: String::new(),
        }
    }

    fn loader(context: &str, error: LoaderError) -> Self {
        FlashFailure::Failed {
            why: Failure::loader(context, error),
            note: String::new(),
        }
    }
}

/// What the flash read produced.
struct FlashRead {
    chip: String,
    mac: String,
    partition: Partition,
    image: Vec<u8>,
    resumed: Result<(), String>,
}

/// Enters the bootloader, reads the SPIFFS partition, and always leaves the loader for the
/// firmware afterwards, success or not.
fn flash_read(
    session: &mut PortSession<'_>,
    rep: &Reporter<'_>,
    opts: Options,
) -> Result<FlashRead, FlashFailure> {
    rep.detail(if opts.reset {
        "entering the ROM bootloader (DTR/RTS bootloader sequence)"
    } else {
        "talking to a miner put into download mode by hand (--no-reset)"
    });
    let stop = session.stop_flag();
    let home = session.home_baud();
    let (read, left, text) = {
        let mut loader = Loader::new(session.loader_port());
        let read = read_with_loader(&mut loader, rep, stop, opts);
        rep.detail(if opts.reset {
            "resetting the miner back into its firmware"
        } else {
            "leaving the bootloader: telling the ROM to run the firmware (no reset lines)"
        });
        let left = flash_session::leave(&mut loader, opts, home);
        (read, left, loader.take_text())
    };
    // What the chip printed around its loader (the ROM banner, or the firmware's boot log when
    // it did not enter the bootloader) is part of its log like any other line.
    session.ingest_bytes(&text);
    match &read {
        Err(FlashFailure::Failed { why, .. }) => {
            tracing::info!(miner = session.miner_id(), "flash read failed: {why}")
        }
        Err(FlashFailure::NoSpiffs(why)) => {
            tracing::info!(miner = session.miner_id(), "flash read failed: {why}")
        }
        Ok(_) => {}
    }
    let resumed = match left {
        Ok(()) => wait_for_boot(session),
        Err(e) => Err(format!("could not leave the bootloader: {e}")),
    };
    match read {
        Ok((chip, mac, partition, image)) => Ok(FlashRead {
            chip,
            mac,
            partition,
            image,
            resumed,
        }),
        Err(FlashFailure::Failed { why, .. }) => Err(FlashFailure::Failed {
            why,
            note: match resumed {
                Ok(()) => " (the miner was reset back into its firmware and is running)".into(),
                Err(e) => format!("; then {e}"),
            },
        }),
        Err(other) => Err(other),
    }
}

/// Chip name, MAC, the SPIFFS partition and its MD5-verified image.
pub type LoaderRead = (String, String, Partition, Vec<u8>);

/// Connects (reset, sync, chip, flash size, baud), reads the partition table and the whole
/// SPIFFS partition, and checks it against the chip's MD5.
pub fn read_with_loader<T: LoaderPort>(
    loader: &mut Loader<T>,
    rep: &Reporter<'_>,
    stop: &AtomicBool,
    opts: Options,
) -> Result<LoaderRead, FlashFailure> {
    let other = |e: LoaderError| FlashFailure::loader("bootloader", e);
    rep.detail("syncing with the ROM bootloader");
    let info = match flash_session::open(loader, opts, &mut |s| rep.detail(s)) {
        Ok(info) => info,
        Err(e @ LoaderError::NoSync { .. }) => {
            return Err(FlashFailure::loader("bootloader not entered", e))
        }
        Err(e) => return Err(other(e)),
    };
    let (chip, mac) = (info.chip, info.mac.clone());
    rep.detail(format!(
        "connected to an {} (MAC {mac}, {} KiB flash) through the {} at {} baud; reading the \
         partition table at 0x8000",
        chip.name,
        info.flash_size / 1024,
        if info.stub {
            "flasher stub"
        } else {
            "ROM loader"
        },
        info.baud
    ));
    let table_bytes = loader
        .read_flash(TABLE_OFFSET, TABLE_MAX_LEN as u32, &mut |_, _| {})
        .map_err(other)?;
    let table =
        PartitionTable::parse(&table_bytes).map_err(|e| FlashFailure::other(e.to_string()))?;
    let part = match table.spiffs() {
        Ok(p) => p.clone(),
        Err(e @ PartitionError::NoSpiffs(_)) => return Err(FlashFailure::NoSpiffs(e.to_string())),
        Err(e) => return Err(FlashFailure::other(e.to_string())),
    };
    let (name, offset, size) = (part.name.clone(), part.offset, part.size);
    let label = format!(
        "reading SPIFFS partition \"{name}\" (0x{offset:x}, {} KiB)",
        size / 1024
    );
    rep.detail(format!("{label}: 0%"));
    let mut last_pct = 0;
    let mut last_at = Instant::now();
    let mut image = Vec::with_capacity(size as usize);
    // In slices, so a shepherd that is asked to stop abandons the read (minutes on real
    // hardware) and still puts the miner back into its firmware.
    while (image.len() as u32) < size {
        if stop.load(Ordering::Relaxed) {
            return Err(FlashFailure::other(
                "shepherd is stopping: the flash read was abandoned",
            ));
        }
        let done = image.len() as u32;
        let slice = (size - done).min(STOP_CHECK_BYTES);
        let part = loader
            .read_flash(offset + done, slice, &mut |_, _| {})
            .map_err(other)?;
        image.extend_from_slice(&part);
        let pct = (u64::from(done + slice) * 100 / u64::from(size.max(1))) as u32;
        if pct >= last_pct + 5 || (pct > last_pct && last_at.elapsed() > Duration::from_secs(2)) {
            last_pct = pct;
            last_at = Instant::now();
            rep.detail(format!("{label}: {pct}%"));
        }
    }
    rep.detail("verifying the read against the chip's MD5 of the partition");
    let chip_md5 = loader.flash_md5(offset, size).map_err(other)?;
    let ours = md5::Md5::digest(&image);
    if ours.as_slice() != chip_md5 {
        return Err(other(LoaderError::Md5Mismatch {
            offset,
            size,
            ours: hex(ours.as_slice()),
            chip: hex(&chip_md5),
        }));
    }
    Ok((chip.name.to_owned(), mac, part, image))
}

fn flash_outcome(session: &mut PortSession<'_>, rep: &Reporter<'_>, read: FlashRead) -> Outcome {
    let sha = hex(&Sha256::digest(&read.image));
    let (dir, keep) = session.backups();
    rep.detail("storing the partition image as a backup");
    let backup = store_backup(
        rep.db,
        session.miner_id(),
        &dir,
        keep,
        Backup {
            id: 0,
            miner_id: session.miner_id(),
            path: String::new(),
            chip: Some(read.chip.clone()),
            mac: Some(read.mac.clone()),
            offset: i64::from(read.partition.offset),
            size: i64::from(read.partition.size),
            sha256: sha.clone(),
            created_at: now_ms(),
            config_ok: None,
        },
        &read.image,
    );
    let (backup_id, backup_note) = match backup {
        Ok((id, _)) => (Some(id), String::new()),
        Err(e) => (None, format!("; the backup could not be stored: {e}")),
    };
    let resumed_note = match &read.resumed {
        Ok(()) => "; the miner is back in its firmware (log lines resume)".to_owned(),
        Err(e) => format!("; warning: {e}"),
    };
    let mut result = json!({
        "method": "flash",
        "chip": read.chip,
        "mac": read.mac,
        "partition": {"name": read.partition.name, "offset": read.partition.offset, "size": read.partition.size},
        "sha256": sha,
        "backup_id": backup_id,
        "firmware_resumed": read.resumed.is_ok(),
        "files": [],
        "config": null,
    });
    let files = match spiffs::read_image(&read.image, &SpiffsParams::ARDUINO) {
        Ok(f) => f,
        Err(e) => {
            return Outcome {
                ok: false,
                detail: format!(
                    "the SPIFFS partition was read but does not mount: {e}. The firmware formats \
                     such a partition at boot (the miner then opens its setup portal){backup_note}{resumed_note}"
                ),
                result,
                config: None,
                cause: None,
            }
        }
    };
    result["files"] = files
        .iter()
        .map(|f| json!({"path": f.path, "size": f.data.len()}))
        .collect();
    let Some(file) = files.iter().find(|f| f.path == "/config.json") else {
        return Outcome {
            ok: false,
            detail: format!(
                "SPIFFS holds no /config.json ({} other file(s)): the miner is unconfigured and \
                 opens its NerdMinerAP setup portal{backup_note}{resumed_note}",
                files.len()
            ),
            result,
            config: None,
            cause: None,
        };
    };
    match serde_json::from_slice::<Value>(&file.data) {
        Ok(Value::Object(config)) => {
            result["config"] = Value::Object(mask_config(&config));
            Outcome {
                ok: true,
                detail: format!(
                    "read /config.json from flash ({} file(s) in SPIFFS, MD5 verified){backup_note}{resumed_note}",
                    files.len()
                ),
                result,
                config: Some(config),
                cause: None,
            }
        }
        _ => Outcome {
            ok: false,
            detail: format!(
                "/config.json is not a JSON object (the firmware prints \"SPIFS: Error parsing \
                 config file!\"){backup_note}{resumed_note}"
            ),
            result,
            config: None,
            cause: None,
        },
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_from_payload() {
        assert_eq!(Method::from_payload(None), Ok(Method::Auto));
        assert_eq!(Method::from_payload(Some("")), Ok(Method::Auto));
        assert_eq!(Method::from_payload(Some("{}")), Ok(Method::Auto));
        assert_eq!(
            Method::from_payload(Some(r#"{"method":"boot"}"#)),
            Ok(Method::Boot)
        );
        assert_eq!(
            Method::from_payload(Some(r#"{"method":"flash"}"#)),
            Ok(Method::Flash)
        );
        assert!(Method::from_payload(Some(r#"{"method":"usb"}"#))
            .unwrap_err()
            .contains("\"boot\""));
        assert!(Method::from_payload(Some("nope")).is_err());
    }

    #[test]
    fn passwords_are_masked_other_keys_kept_in_order() {
        let v: Value = serde_json::from_str(
            r#"{"poolString":"p","poolPassword":"secret","btcString":"w","wifiPass":"s","n":1}"#,
        )
        .unwrap();
        let masked = mask_config(v.as_object().unwrap());
        let text = Value::Object(masked).to_string();
        assert_eq!(
            text,
            r#"{"poolString":"p","poolPassword":"***","btcString":"w","wifiPass":"***","n":1}"#
        );
    }
}
