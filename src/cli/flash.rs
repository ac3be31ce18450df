//! `shepherd spiffs list|extract|build`, `shepherd flash inspect` (offline, on image files) and
//! `shepherd config get|set` (queue GET_CONFIG / SET_CONFIG for the running shepherd and wait).

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::cli::{FlashAction, SpiffsAction};
use crate::db::commands::{CommandKind, CommandRow};
use crate::db::{self, commands, miners};
use crate::flash::nerd_config;
use crate::flash::partitions::{PartitionError, PartitionTable};
use crate::flash::spiffs::{self, SpiffsFile, SpiffsParams};

fn read_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The files of a SPIFFS image, or of the SPIFFS partition of a full flash dump; with a note
/// saying which it was.
fn load_files(path: &Path, bytes: &[u8]) -> anyhow::Result<(Vec<SpiffsFile>, String)> {
    let image_err = match spiffs::read_image(bytes, &SpiffsParams::ARDUINO) {
        Ok(files) => return Ok((files, "SPIFFS image".into())),
        Err(e) => e,
    };
    if let Ok(table) = PartitionTable::from_flash_dump(bytes) {
        let part = table.spiffs()?;
        let (start, end) = (part.offset as usize, (part.offset + part.size) as usize);
        let Some(image) = bytes.get(start..end) else {
            bail!(
                "{}: the partition table puts SPIFFS at 0x{:x}..0x{end:x}, past the end of this \
                 {}-byte dump: dump the whole flash",
                path.display(),
                part.offset,
                bytes.len()
            );
        };
        let files = spiffs::read_image(image, &SpiffsParams::ARDUINO).with_context(|| {
            format!(
                "{}: SPIFFS partition \"{}\" at 0x{:x}",
                path.display(),
                part.name,
                part.offset
            )
        })?;
        return Ok((
            files,
            format!("SPIFFS partition \"{}\" at 0x{:x}", part.name, part.offset),
        ));
    }
    bail!(
        "{}: not a SPIFFS image ({image_err}), and no partition table at 0x8000 either",
        path.display()
    )
}

/// `shepherd spiffs …`
pub fn spiffs(action: SpiffsAction) -> anyhow::Result<()> {
    match action {
        SpiffsAction::List { image } => {
            let bytes = read_file(&image)?;
            let (files, _) = load_files(&image, &bytes)?;
            if files.is_empty() {
                eprintln!("{}: the filesystem is empty", image.display());
            }
            for f in files {
                println!("{}\t{}", f.data.len(), f.path);
            }
            Ok(())
        }
        SpiffsAction::Extract { image, path } => {
            let bytes = read_file(&image)?;
            let (files, _) = load_files(&image, &bytes)?;
            let wanted = if path.starts_with('/') {
                path.clone()
            } else {
                format!("/{path}")
            };
            let Some(file) = files.iter().find(|f| f.path == wanted) else {
                let names: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
                bail!(
                    "{}: no file {wanted} (files: {})",
                    image.display(),
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    }
                );
            };
            std::io::stdout()
                .write_all(&file.data)
                .context("cannot write to stdout")?;
            Ok(())
        }
        SpiffsAction::Build { dir, size, output } => {
            let files = folder_files(&dir)?;
            let image =
                spiffs::build_image(&files, size, &SpiffsParams::ARDUINO).with_context(|| {
                    format!("cannot build a {size}-byte image from {}", dir.display())
                })?;
            // Our own reader must see exactly what went in before the image is handed out.
            let back = spiffs::read_image(&image, &SpiffsParams::ARDUINO)
                .context("the built image does not read back (a bug: please report it)")?;
            if back != files {
                bail!("the built image reads back different files (a bug: please report it)");
            }
            std::fs::write(&output, &image)
                .with_context(|| format!("cannot write {}", output.display()))?;
            eprintln!(
                "{}: {} file(s), {} bytes, SPIFFS page 256 / block 4096 / meta 4",
                output.display(),
                files.len(),
                image.len()
            );
            Ok(())
        }
    }
}

/// The regular files of `dir`, sorted by name, as `/name`.
fn folder_files(dir: &Path) -> anyhow::Result<Vec<SpiffsFile>> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read folder {}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read folder {}", dir.display()))?;
        let path = entry.path();
        if path.is_dir() {
            bail!(
                "{}: SPIFFS has no folders; move or remove the subfolder",
                path.display()
            );
        }
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            bail!("{}: the file name is not UTF-8", path.display());
        };
        files.push(SpiffsFile {
            path: format!("/{name}"),
            data: read_file(&path)?,
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// `shepherd flash inspect`
pub fn flash(action: FlashAction) -> anyhow::Result<()> {
    let FlashAction::Inspect { dump } = action;
    let bytes = read_file(&dump)?;
    match PartitionTable::from_flash_dump(&bytes) {
        Ok(table) => {
            println!(
                "{}: flash dump of {} bytes; partition table at 0x8000{}:",
                dump.display(),
                bytes.len(),
                if table.md5_checked {
                    " (MD5 verified)"
                } else {
                    " (no MD5 record)"
                }
            );
            print!("{}", table.to_text());
            let part = table.spiffs()?;
            println!();
            let (files, what) = load_files(&dump, &bytes)?;
            println!("{what}, 0x{:x} bytes, {} file(s):", part.size, files.len());
            for f in files {
                println!("{}\t{}", f.data.len(), f.path);
            }
            Ok(())
        }
        Err(table_err) => match spiffs::read_image(&bytes, &SpiffsParams::ARDUINO) {
            Ok(files) => {
                println!(
                    "{}: SPIFFS partition image of 0x{:x} bytes (no partition table: not a full \
                     dump), {} file(s):",
                    dump.display(),
                    bytes.len(),
                    files.len()
                );
                for f in files {
                    println!("{}\t{}", f.data.len(), f.path);
                }
                Ok(())
            }
            Err(spiffs_err) => {
                let table_msg = match table_err {
                    PartitionError::TooShort(_) => {
                        "too short to hold a partition table at 0x8000".to_owned()
                    }
                    e => e.to_string(),
                };
                bail!(
                    "{}: neither a full flash dump ({table_msg}) nor a SPIFFS partition image \
                     ({spiffs_err})",
                    dump.display()
                )
            }
        },
    }
}

/// `shepherd config get NAME`: queue GET_CONFIG, follow it, print the configuration.
pub fn config_get(
    db_path: &Path,
    name: &str,
    method: &str,
    no_reset: bool,
    timeout: u64,
) -> anyhow::Result<()> {
    let mut payload = serde_json::Map::new();
    if method != "auto" {
        payload.insert("method".into(), method.into());
    }
    let (conn, id) = queue(db_path, name, CommandKind::GetConfig, payload, no_reset)?;
    let row = follow(&conn, db_path, id, timeout)?;
    if row.status != "complete" {
        bail!(
            "reading {name}'s configuration failed: {}",
            row.detail.unwrap_or_default()
        );
    }
    print_config(&row)
}

/// `shepherd config set NAME FILE`: check the file, queue SET_CONFIG, follow it, print the
/// configuration written (password masked).
pub fn config_set(
    db_path: &Path,
    name: &str,
    file: &Path,
    no_reset: bool,
    timeout: u64,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let map = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(m)) => m,
        Ok(_) => bail!(
            "{}: the configuration must be a JSON object",
            file.display()
        ),
        Err(e) => bail!("{}: not JSON: {e}", file.display()),
    };
    // Keys left out keep the miner's values; the merged file is checked in full before writing.
    let errors = nerd_config::validate_change(&map);
    if !errors.is_empty() {
        let lines: Vec<String> = errors
            .iter()
            .map(|e| format!("  - {}", e.message))
            .collect();
        bail!(
            "{}: not written, the configuration is not valid:\n{}",
            file.display(),
            lines.join("\n")
        );
    }
    let (conn, id) = queue(db_path, name, CommandKind::SetConfig, map, no_reset)?;
    let row = follow(&conn, db_path, id, timeout)?;
    let detail = row.detail.clone().unwrap_or_default();
    if row.status != "complete" {
        bail!("writing {name}'s configuration failed: {detail}");
    }
    print_config(&row)
}

/// Queues `command` for miner `name` with `payload` (plus `"no_reset": true` when asked);
/// says so on stderr, and in manual mode what the owner must do now.
fn queue(
    db_path: &Path,
    name: &str,
    command: CommandKind,
    mut payload: serde_json::Map<String, serde_json::Value>,
    no_reset: bool,
) -> anyhow::Result<(rusqlite::Connection, i64)> {
    let (conn, _) = db::open_writer(db_path)?;
    let miner = miners::list(&conn)?
        .into_iter()
        .find(|m| m.name == name)
        .ok_or_else(|| miners::MinerError::NotFound(name.to_owned()))?;
    if no_reset {
        payload.insert("no_reset".into(), true.into());
    }
    let text = (!payload.is_empty()).then(|| serde_json::Value::Object(payload).to_string());
    let id = commands::insert(&conn, miner.id, command, text.as_deref())?;
    eprintln!("queued {command} #{id} for {name}");
    if no_reset {
        eprintln!(
            "--no-reset: put {name} into download mode now if it is not yet (hold BOOT while \
             plugging it in, or hold BOOT, press and release RESET, then release BOOT); shepherd \
             waits for its SYNC"
        );
    }
    Ok((conn, id))
}

/// `shepherd identify NAME`: queue RESET with reason `identify`, follow it, say which board
/// just rebooted.
pub fn identify(db_path: &Path, name: &str, timeout: u64) -> anyhow::Result<()> {
    let mut payload = serde_json::Map::new();
    payload.insert("reason".into(), "identify".into());
    let (conn, id) = queue(db_path, name, CommandKind::Reset, payload, false)?;
    let row = follow(&conn, db_path, id, timeout)?;
    let detail = row.detail.unwrap_or_default();
    if row.status == "complete" {
        println!("{name} is the board whose screen or LED just rebooted ({detail})");
        Ok(())
    } else {
        bail!("identify {name} failed: {detail}")
    }
}

/// `shepherd doctor NAME`: queue DOCTOR, follow it, print a verdict per step and write the
/// protocol trace to a file the owner can attach to a bug report.
pub fn doctor(
    db_path: &Path,
    name: &str,
    no_reset: bool,
    trace: Option<&Path>,
    timeout: u64,
) -> anyhow::Result<()> {
    let (conn, id) = queue(
        db_path,
        name,
        CommandKind::Doctor,
        serde_json::Map::new(),
        no_reset,
    )?;
    let row = follow(&conn, db_path, id, timeout)?;
    let result = row.result.clone().unwrap_or(serde_json::Value::Null);
    if let Some(verdicts) = result.get("verdicts").and_then(|v| v.as_array()) {
        for v in verdicts {
            let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_owned();
            println!("{:<8} {:<17} {}", s("verdict"), s("step"), s("detail"));
        }
    }
    let path = match trace {
        Some(p) => p.to_path_buf(),
        None => std::path::PathBuf::from(format!(
            "shepherd-doctor-{}-{}.json",
            name.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_"),
            crate::clock::now_ms() / 1000
        )),
    };
    let report = serde_json::json!({
        "miner": name,
        "shepherd": env!("CARGO_PKG_VERSION"),
        "status": row.status,
        "detail": row.detail,
        "result": result,
    });
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("cannot write the trace to {}", path.display()))?;
    eprintln!(
        "protocol trace written to {} (commands, replies, timings; no flash contents, secrets \
         masked): attach it to a bug report",
        path.display()
    );
    if row.status != "complete" {
        bail!(
            "doctor found problems on {name}: {}",
            row.detail.unwrap_or_default()
        );
    }
    Ok(())
}

/// Prints the configuration a finished command reported (password already masked).
fn print_config(row: &CommandRow) -> anyhow::Result<()> {
    let config = row
        .result
        .as_ref()
        .and_then(|r| r.get("config"))
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    println!("{}", serde_json::to_string_pretty(&config)?);
    Ok(())
}

/// Prints a command's progress until it ends (or `timeout` seconds pass); returns its row.
pub(crate) fn follow(
    conn: &rusqlite::Connection,
    db_path: &Path,
    id: i64,
    timeout: u64,
) -> anyhow::Result<CommandRow> {
    let start = Instant::now();
    let mut last_detail = String::new();
    let mut warned = false;
    loop {
        let row = commands::get(conn, id)?
            .ok_or_else(|| anyhow::anyhow!("command #{id} vanished (was the miner removed?)"))?;
        let detail = row.detail.clone().unwrap_or_default();
        if detail != last_detail {
            eprintln!("[{}] {detail}", row.status);
            last_detail = detail.clone();
        }
        match row.status.as_str() {
            "complete" | "error" => return Ok(row),
            "pending" if !warned && start.elapsed() > Duration::from_secs(10) => {
                eprintln!(
                    "still queued after 10 s: is `shepherd run` running on {}? It is the one that \
                     talks to the miner",
                    db_path.display()
                );
                warned = true;
            }
            _ => {}
        }
        if start.elapsed() > Duration::from_secs(timeout) {
            bail!(
                "gave up after {timeout} s; command #{id} is still {} ({detail}). It may still \
                 finish: see the miner's manage page",
                row.status
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}
