//! What every command that borrows a miner's port shares (GET_CONFIG, SET_CONFIG, DOCTOR): the
//! kind of job each command row becomes, progress reporting to the command row, the outcome
//! recorded in one transaction, backups kept on disk, and the way back into the firmware.
//!
//! The commands themselves (`get_config`, `set_config`, `doctor`) import this module and the
//! reader's `PortSession`; nothing here imports them back (the actor in `miner/mod.rs` turns a
//! command row into the job that runs it).

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use actix::Addr;
use rusqlite::Connection;
use serde_json::{json, Map, Value};

use super::reader::PortSession;
use crate::db::commands::{self, Backup};
use crate::db::{DbActor, Write};
use crate::flash::lines::ResetKind;
use crate::flash::session::Options;
use crate::flash::transport::LoaderError;

/// How long the firmware gets to print anything after the reset that ends a flash read.
const RESUME_WINDOW: Duration = Duration::from_secs(10);

/// The payload key asking for a manual-mode session.
pub const NO_RESET_KEY: &str = "no_reset";

/// How to reach the loader, from a command's payload: `"no_reset": true` for a board the owner
/// put into download mode by hand (esptool `--before no-reset`).
pub fn loader_options(payload: Option<&str>) -> Result<Options, String> {
    let Some(text) = payload.filter(|t| !t.trim().is_empty()) else {
        return Ok(Options::default());
    };
    let v: Value = serde_json::from_str(text)
        .map_err(|e| format!("the command's payload is not JSON: {e}"))?;
    match v.get(NO_RESET_KEY) {
        None | Some(Value::Bool(false)) | Some(Value::Null) => Ok(Options::default()),
        Some(Value::Bool(true)) => Ok(Options {
            reset: false,
            fast: false,
        }),
        Some(other) => Err(format!("\"no_reset\" must be true or false, not {other}")),
    }
}

/// Replaces every string value whose key mentions a password with `***`.
pub fn mask_config(config: &Map<String, Value>) -> Map<String, Value> {
    config
        .iter()
        .map(|(k, v)| {
            let secret = k.to_ascii_lowercase().contains("pass") && v.is_string();
            (k.clone(), if secret { json!("***") } else { v.clone() })
        })
        .collect()
}

/// Runs a write on the DbActor from this (non-actor) thread and waits for it.
pub fn db_call<R: Send + 'static>(
    db: &Addr<DbActor>,
    f: impl FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
) -> Result<R, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    db.do_send(Write::new(move |c| {
        let _ = tx.send(f(c));
        Ok(())
    }));
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(format!("database error: {e}")),
        Err(_) => Err("the database writer did not answer within 30 s".into()),
    }
}

/// Writes progress to the command row, and keeps the steps for the result (a fast chip
/// finishes steps between two polls of the page).
pub struct Reporter<'a> {
    /// The writer that stores progress.
    pub db: &'a Addr<DbActor>,
    /// The command row.
    pub id: i64,
    /// Every step reported so far (for the result).
    pub steps: std::cell::RefCell<Vec<String>>,
}

impl<'a> Reporter<'a> {
    /// Reports command `id`'s progress.
    pub fn new(db: &'a Addr<DbActor>, id: i64) -> Self {
        Self {
            db,
            id,
            steps: Default::default(),
        }
    }

    /// Shows `text` as the command's current step.
    pub fn detail(&self, text: impl Into<String>) {
        let (id, text) = (self.id, text.into());
        tracing::debug!(command = id, "{text}");
        // Progress percentages are not steps.
        if !text.ends_with('%') || text.ends_with(": 0%") {
            self.steps.borrow_mut().push(text.clone());
        }
        self.db
            .do_send(Write::new(move |c| commands::set_detail(c, id, &text)));
    }
}

/// Why a command failed: the flash link's own error kept typed up to the [`Outcome`], or a
/// sentence. The row's `detail` sentence is made from it at the end ([`Outcome::failed_by`]).
#[derive(Debug)]
pub enum Failure {
    /// The ROM loader link failed; `context` says while doing what ("bootloader").
    Loader {
        /// What was being done.
        context: String,
        /// The loader's error.
        error: LoaderError,
    },
    /// Anything else, told as a sentence.
    Other(String),
}

impl Failure {
    /// A loader failure while doing `context`.
    pub fn loader(context: impl Into<String>, error: LoaderError) -> Self {
        Failure::Loader {
            context: context.into(),
            error,
        }
    }

    /// A loader failure told by the error's own sentence alone.
    pub fn bare(error: LoaderError) -> Self {
        Failure::loader("", error)
    }

    /// The same failure, its context preceded by `what` ("could not read the partition").
    pub fn within(self, what: &str) -> Self {
        match self {
            Failure::Loader { context, error } => Failure::Loader {
                context: if context.is_empty() {
                    what.to_owned()
                } else {
                    format!("{what}: {context}")
                },
                error,
            },
            Failure::Other(s) => Failure::Other(format!("{what}: {s}")),
        }
    }

    /// The loader's error in it, if one is (what the outcome stores the kind of).
    pub fn cause(self) -> Option<LoaderError> {
        match self {
            Failure::Loader { error, .. } => Some(error),
            Failure::Other(_) => None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Loader { context, error } if context.is_empty() => write!(f, "{error}"),
            Failure::Loader { context, error } => write!(f, "{context}: {error}"),
            Failure::Other(s) => f.write_str(s),
        }
    }
}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure::Other(s)
    }
}

/// What a finished configuration command (GET_CONFIG, SET_CONFIG) reports.
pub struct Outcome {
    /// Whether it succeeded.
    pub ok: bool,
    /// One line for the command list.
    pub detail: String,
    /// Structured result (steps, files, backup…).
    pub result: Value,
    /// The configuration the miner holds now, when known: stored as its last config.
    pub config: Option<Map<String, Value>>,
    /// The flash link's error that ended it, if one did (its kind is stored in the result as
    /// `loader_error`).
    pub cause: Option<LoaderError>,
}

impl Outcome {
    /// A failure with nothing else to report.
    pub fn failed(detail: String) -> Outcome {
        Outcome {
            ok: false,
            detail,
            result: Value::Null,
            config: None,
            cause: None,
        }
    }

    /// A failure for `why`, with `note` after its sentence and `result` as the result.
    pub fn failed_by(why: Failure, note: &str, result: Value) -> Outcome {
        let detail = format!("{why}{note}");
        Outcome::failed_with(detail, why.cause(), result)
    }

    /// A failure whose sentence was made from several failures (a write, then its rollback):
    /// `cause` is the loader's error that ended it, if one did.
    pub fn failed_with(detail: String, cause: Option<LoaderError>, result: Value) -> Outcome {
        Outcome {
            ok: false,
            detail,
            result,
            config: None,
            cause,
        }
    }
}

/// Records a finished command in one transaction: its status and result, and the
/// configuration it saw as the miner's last known one.
pub fn record_end(db: &Addr<DbActor>, id: i64, outcome: Outcome) {
    let miner_config = outcome
        .config
        .as_ref()
        .map(|m| Value::Object(m.clone()).to_string());
    let Outcome {
        ok,
        detail,
        mut result,
        cause,
        ..
    } = outcome;
    if let Some(e) = &cause {
        tracing::info!(
            command = id,
            kind = e.kind(),
            "command ended by the flash link: {e}"
        );
        result["loader_error"] = json!(e.kind());
    }
    let stored = db_call(db, move |c| {
        let tx = c.transaction()?;
        if let Some(json) = &miner_config {
            let miner: i64 = tx.query_row(
                "SELECT miner_id FROM miner_commands WHERE id = ?1",
                [id],
                |r| r.get(0),
            )?;
            commands::store_config(&tx, miner, json)?;
        }
        commands::finish(&tx, id, ok, &detail, Some(&result))?;
        tx.commit()
    });
    if let Err(e) = stored {
        tracing::error!(command = id, "cannot record the end of command: {e}");
    }
}

/// Writes the image under `dir` (file and folder synced to disk), records it with whether it
/// holds a configuration (returns its id and file), and prunes old backups (rows and files; see
/// [`commands::prune_backups`] for what is never pruned).
pub fn store_backup(
    db: &Addr<DbActor>,
    miner_id: i64,
    dir: &Path,
    keep: usize,
    mut row: Backup,
    image: &[u8],
) -> Result<(i64, String), String> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let path = super::backups::write_synced(dir, &format!("{stamp}.bin"), image)?;
    row.path = path.display().to_string();
    let stored = row.path.clone();
    // A caller that knows better (a partition the miner was never confirmed on) says so.
    if row.config_ok.is_none() {
        row.config_ok = Some(super::backups::image_config(image).is_ok());
    }
    let (id, old) = db_call(db, move |c| {
        let tx = c.transaction()?;
        let id = commands::insert_backup(&tx, &row)?;
        let old = commands::prune_backups(&tx, miner_id, keep)?;
        tx.commit()?;
        Ok((id, old))
    })?;
    for p in old {
        if let Err(e) = std::fs::remove_file(&p) {
            tracing::warn!("cannot delete old backup {p}: {e}");
        }
    }
    Ok((id, stored))
}

/// Hard-resets into the firmware and waits until it boots (see [`wait_for_boot`]).
pub fn back_to_firmware(session: &mut PortSession<'_>) -> Result<(), String> {
    session.reset(ResetKind::HardReset)?;
    wait_for_boot(session)
}

/// Waits until the firmware boots after a reset: its boot banner, not just any line (lines
/// printed before the reset may still be buffered).
pub fn wait_for_boot(session: &mut PortSession<'_>) -> Result<(), String> {
    let mut any = false;
    let booted = session.read_lines(Instant::now() + RESUME_WINDOW, &mut |l| {
        any |= !l.trim().is_empty();
        l.contains("rst:0x") || l.contains("NerdMiner v2 starting")
    })?;
    if booted || any {
        Ok(())
    } else {
        Err(format!(
            "the miner printed nothing within {} s of the reset into its firmware: check it (power \
             cycle it if it stays silent)",
            RESUME_WINDOW.as_secs()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loader_failure_stays_typed_up_to_the_outcome_and_reads_as_before() {
        let why = Failure::loader(
            "bootloader not entered",
            LoaderError::NoSync { attempts: 7 },
        )
        .within("could not read the current partition");
        let out = Outcome::failed_by(why, "; then the miner was reset", Value::Null);
        assert!(!out.ok);
        assert!(matches!(
            out.cause,
            Some(LoaderError::NoSync { attempts: 7 })
        ));
        assert!(
            out.detail.starts_with(
                "could not read the current partition: bootloader not entered: the ROM \
                 bootloader did not answer after 7 SYNC attempts"
            ),
            "{}",
            out.detail
        );
        assert!(out.detail.ends_with("; then the miner was reset"));
        let bare = Failure::bare(LoaderError::UnknownChip(7)).within("chip");
        assert_eq!(
            bare.to_string(),
            format!("chip: {}", LoaderError::UnknownChip(7))
        );
        assert_eq!(
            Failure::bare(LoaderError::UnknownChip(7)).to_string(),
            LoaderError::UnknownChip(7).to_string()
        );
        let plain = Outcome::failed_by(Failure::Other("no backup".into()), ".", Value::Null);
        assert!(plain.cause.is_none());
        assert_eq!(plain.detail, "no backup.");
    }
}
