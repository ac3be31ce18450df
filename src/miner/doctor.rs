//! DOCTOR: a read-only check of one miner's flash link, for owners of real boards to run once
//! per board type and attach to a bug report. It talks to the ROM loader step by step (sync,
//! chip, MAC, flash id and size, USB wiring, partition table, SPIFFS, `/config.json` with
//! secrets masked, read speed at each baud rate tried), gives each step a verdict, and keeps a
//! protocol trace: commands, replies and timings, never flash contents beyond the config.
//! Nothing is written to the chip.

use std::sync::atomic::Ordering;
use std::time::Instant;

use actix::Addr;
use serde_json::{json, Value};

use super::command::{
    db_call, loader_options, mask_config, record_end, wait_for_boot, Failure, Outcome, Reporter,
};
use super::reader::PortSession;
use crate::db::commands;
use crate::db::DbActor;
use crate::flash::lines::Wiring;
use crate::flash::loader::Loader;
use crate::flash::nerd_config;
use crate::flash::partitions::{PartitionTable, TABLE_MAX_LEN, TABLE_OFFSET};
use crate::flash::port::LoaderPort;
use crate::flash::session::{self as flash_session, Options, FAST_BAUDS, ROM_BAUD};
use crate::flash::spiffs::{self, SpiffsParams};
use crate::flash::transport::LoaderError;

/// Bytes read at each baud rate to measure it.
const SPEED_SAMPLE: u32 = 16 * 1024;

/// One step's verdict.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verdict {
    /// What was checked.
    pub step: &'static str,
    /// `ok`, `fail` or `skipped`.
    pub verdict: &'static str,
    /// What was found, or what went wrong and what to do.
    pub detail: String,
    /// The kind of the loader's error that failed this step (`LoaderError::kind`), if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loader_error: Option<&'static str>,
}

#[derive(Default)]
struct Report {
    verdicts: Vec<Verdict>,
    config: Option<Value>,
    /// The first loader error that failed a step: the command's cause (`loader_error`).
    cause: Option<LoaderError>,
}

impl Report {
    fn ok(&mut self, step: &'static str, detail: impl Into<String>) {
        self.push(step, "ok", detail.into(), None);
    }
    fn fail(&mut self, step: &'static str, detail: impl Into<String>) {
        self.push(step, "fail", detail.into(), None);
    }
    /// A step failed by the loader (or not, for `Failure::Other`): its sentence is made here,
    /// its kind kept on the verdict, and the first such error becomes the command's cause.
    fn failed_by(&mut self, step: &'static str, why: Failure) {
        let detail = why.to_string();
        let Some(e) = why.cause() else {
            return self.fail(step, detail);
        };
        self.push(step, "fail", detail, Some(e.kind()));
        self.cause.get_or_insert(e);
    }
    fn push(
        &mut self,
        step: &'static str,
        verdict: &'static str,
        detail: String,
        loader_error: Option<&'static str>,
    ) {
        self.verdicts.push(Verdict {
            step,
            verdict,
            detail,
            loader_error,
        });
    }
}

/// Runs DOCTOR command `id` and records its end.
pub fn execute(
    db: &Addr<DbActor>,
    id: i64,
    payload: Option<&str>,
    session: Result<&mut PortSession<'_>, String>,
) {
    let outcome = match (session, loader_options(payload)) {
        (Err(why), _) => Outcome::failed(format!(
            "port gone: the miner's port is not open ({why}); plug it in and try again"
        )),
        (_, Err(e)) => Outcome::failed(e),
        (Ok(session), Ok(opts)) => {
            let text = format!("running on {}", session.path());
            let _ = db_call(db, move |c| commands::start(c, id, &text));
            let rep = Reporter::new(db, id);
            run(session, &rep, opts)
        }
    };
    record_end(db, id, outcome);
}

fn run(session: &mut PortSession<'_>, rep: &Reporter<'_>, opts: Options) -> Outcome {
    let mut report = Report::default();
    let home = session.home_baud();
    let stop = session.stop_flag();
    let (trace, text, left) = {
        let mut loader = Loader::new(session.loader_port());
        loader.start_trace();
        let wiring = loader.port_mut().wiring();
        report.ok(
            "usb wiring",
            match wiring {
                Wiring::Classic => {
                    "USB-UART bridge (CP210x/CH340/…): DTR/RTS drive EN and IO0 through the \
                     auto-reset circuit"
                }
                Wiring::UsbJtag => {
                    "the chip's own USB-Serial/JTAG (303a:1001): its USB peripheral resets it \
                     and the baud rate does not matter"
                }
            },
        );
        if !stop.load(Ordering::Relaxed) {
            check(&mut loader, rep, opts, &mut report);
        }
        rep.detail(if opts.reset {
            "resetting the miner back into its firmware"
        } else {
            "leaving the bootloader: telling the ROM to run the firmware (no reset lines)"
        });
        let left = flash_session::leave(&mut loader, opts, home);
        (loader.take_trace(), loader.take_text(), left)
    };
    session.ingest_bytes(&text);
    match left
        .map_err(Failure::bare)
        .and_then(|()| wait_for_boot(session).map_err(Failure::Other))
    {
        Ok(()) => report.ok("back to firmware", "the miner booted its firmware again"),
        Err(why) => report.failed_by("back to firmware", why),
    }
    let failed = report
        .verdicts
        .iter()
        .filter(|v| v.verdict == "fail")
        .count();
    let detail = if failed == 0 {
        format!("all {} checks passed", report.verdicts.len())
    } else {
        format!("{failed} of {} checks failed", report.verdicts.len())
    };
    Outcome {
        ok: failed == 0,
        detail,
        result: json!({
            "verdicts": report.verdicts,
            "config": report.config,
            "trace": trace,
        }),
        config: None,
        cause: report.cause,
    }
}

/// Every step that needs the loader, stopping at the first one the others depend on.
fn check<T: LoaderPort>(
    loader: &mut Loader<T>,
    rep: &Reporter<'_>,
    opts: Options,
    report: &mut Report,
) {
    rep.detail("syncing with the ROM bootloader");
    let started = Instant::now();
    if let Err(e) = flash_session::sync(loader, opts, &mut |s| rep.detail(s)) {
        report.failed_by("sync", Failure::bare(e));
        return;
    }
    report.ok(
        "sync",
        format!(
            "the ROM loader answered after {:.1} s ({})",
            started.elapsed().as_secs_f64(),
            if opts.reset {
                "reset by DTR/RTS"
            } else {
                "manual download mode"
            }
        ),
    );
    let security = loader.security_info();
    let chip = match loader.detect_chip() {
        Ok(c) => c,
        Err(e) => {
            report.failed_by("chip", Failure::bare(e));
            return;
        }
    };
    report.ok(
        "chip",
        match security {
            Ok(Some(s)) => format!(
                "{} (GET_SECURITY_INFO: chip id {:?}, ECO {:?}, flags 0x{:x})",
                chip.name, s.chip_id, s.eco_version, s.flags
            ),
            _ => format!(
                "{} (magic register; no GET_SECURITY_INFO in this ROM)",
                chip.name
            ),
        },
    );
    match loader.mac(chip) {
        Ok(mac) => report.ok("mac", mac),
        Err(e) => report.failed_by("mac", Failure::bare(e)),
    }
    if loader.port_mut().wiring() == Wiring::UsbJtag {
        match loader.disable_watchdogs(chip) {
            Ok(()) => report.ok("watchdogs", "RTC and super watchdog switched off"),
            Err(e) => report.failed_by("watchdogs", Failure::bare(e)),
        }
    }
    let size = match loader
        .spi_attach()
        .and_then(|()| loader.detect_flash_size(chip))
    {
        Ok((id, size)) => {
            report.ok("flash", format!("JEDEC id 0x{id:06x}: {} KiB", size / 1024));
            size
        }
        Err(e) => {
            report.failed_by("flash", Failure::bare(e));
            return;
        }
    };
    if let Err(e) = loader.set_flash_params(size) {
        report.failed_by("flash", Failure::loader("SPI_SET_PARAMS", e));
        return;
    }
    speeds(loader, rep, opts, size, report);
    partitions_and_config(loader, rep, report);
}

/// Reads a sample from the ROM at its own rate, then starts the flasher stub at each faster
/// rate in turn (as the writer does) until one works, and reads the sample again.
fn speeds<T: LoaderPort>(
    loader: &mut Loader<T>,
    rep: &Reporter<'_>,
    opts: Options,
    size: u32,
    report: &mut Report,
) {
    let sample = |loader: &mut Loader<T>, what: &str| -> Result<String, LoaderError> {
        rep.detail(format!("measuring the read speed: {what}"));
        let t = Instant::now();
        loader.read_flash(TABLE_OFFSET, SPEED_SAMPLE, &mut |_, _| {})?;
        let kib_s = f64::from(SPEED_SAMPLE) / 1024.0 / t.elapsed().as_secs_f64().max(1e-6);
        Ok(format!("{what}: {kib_s:.1} KiB/s"))
    };
    let mut lines = Vec::new();
    match sample(loader, &format!("ROM at {ROM_BAUD}")) {
        Ok(l) => lines.push(l),
        Err(e) => lines.push(format!("ROM at {ROM_BAUD}: failed ({e})")),
    }
    if !opts.reset {
        lines.push("flasher stub not tried in manual mode (no reset to undo a failed try)".into());
        report.ok("read speed", lines.join("; "));
        return;
    }
    let rates: &[Option<u32>] = match loader.port_mut().wiring() {
        Wiring::Classic => &[Some(FAST_BAUDS[0]), Some(FAST_BAUDS[1]), None],
        Wiring::UsbJtag => &[None],
    };
    for &rate in rates {
        let baud = rate.unwrap_or(ROM_BAUD);
        let what = format!("stub at {baud}");
        let res = loader
            .port_mut()
            .start_stub(rate)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                loader.stub_started();
                loader.attach_flash(size).map_err(|e| e.to_string())
            })
            .and_then(|()| sample(loader, &what).map_err(|e| e.to_string()));
        match res {
            Ok(l) => {
                lines.push(l);
                report.ok("read speed", lines.join("; "));
                return;
            }
            Err(e) => {
                lines.push(format!("{what}: failed ({e})"));
                let again = loader
                    .port_mut()
                    .set_baud(ROM_BAUD)
                    .map_err(LoaderError::Io)
                    .and_then(|()| {
                        loader.rom_again();
                        flash_session::sync(loader, opts, &mut |s| rep.detail(s))
                    })
                    .and_then(|()| loader.detect_chip().map(|_| ()))
                    .and_then(|()| loader.attach_flash(size));
                if let Err(e) = again {
                    let context = format!("{}; reconnecting", lines.join("; "));
                    report.failed_by("read speed", Failure::loader(context, e));
                    return;
                }
            }
        }
    }
    report.fail(
        "read speed",
        format!(
            "{}; the flasher stub never ran: config writes will be slow",
            lines.join("; ")
        ),
    );
}

fn partitions_and_config<T: LoaderPort>(
    loader: &mut Loader<T>,
    rep: &Reporter<'_>,
    report: &mut Report,
) {
    rep.detail("reading the partition table at 0x8000");
    let table = match loader
        .read_flash(TABLE_OFFSET, TABLE_MAX_LEN as u32, &mut |_, _| {})
        .map_err(Failure::bare)
        .and_then(|b| PartitionTable::parse(&b).map_err(|e| Failure::Other(e.to_string())))
    {
        Ok(t) => t,
        Err(why) => {
            report.failed_by("partition table", why);
            return;
        }
    };
    report.ok("partition table", table.summary());
    let part = match table.spiffs() {
        Ok(p) => p.clone(),
        Err(e) => {
            report.fail("spiffs", e.to_string());
            return;
        }
    };
    rep.detail(format!(
        "reading SPIFFS \"{}\" (0x{:x}, {} KiB)",
        part.name,
        part.offset,
        part.size / 1024
    ));
    let image = match loader.read_flash_verified(part.offset, part.size, &mut |_, _| {}) {
        Ok(i) => i,
        Err(e) => {
            report.failed_by("spiffs", Failure::bare(e));
            return;
        }
    };
    let files = match spiffs::read_image(&image, &SpiffsParams::ARDUINO) {
        Ok(f) => f,
        Err(e) => {
            report.fail(
                "spiffs",
                format!("the partition does not mount with the firmware's parameters: {e}"),
            );
            return;
        }
    };
    report.ok(
        "spiffs",
        format!(
            "mounts; {} file(s): {}",
            files.len(),
            files
                .iter()
                .map(|f| f.path.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    match files.iter().find(|f| f.path == "/config.json") {
        None => report.fail(
            "config",
            "no /config.json: the miner is unconfigured (setup portal)",
        ),
        Some(f) => match serde_json::from_slice::<Value>(&f.data) {
            Ok(Value::Object(map)) => {
                let problems = nerd_config::validate(&map);
                if problems.is_empty() {
                    report.ok(
                        "config",
                        "/config.json parses (secrets masked in the result)",
                    );
                } else {
                    report.fail("config", nerd_config::describe(&problems));
                }
                report.config = Some(Value::Object(mask_config(&map)));
            }
            Ok(_) => report.fail("config", "/config.json is not a JSON object"),
            Err(e) => report.fail("config", format!("/config.json does not parse: {e}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_failed_by_the_loader_keeps_its_kind_and_the_first_becomes_the_cause() {
        let mut report = Report::default();
        report.failed_by("sync", Failure::bare(LoaderError::NoSync { attempts: 7 }));
        report.failed_by(
            "flash",
            Failure::loader("SPI_SET_PARAMS", LoaderError::UnknownChip(1)),
        );
        report.failed_by("config", Failure::Other("no /config.json".into()));
        let v = &report.verdicts;
        // The sentences read as they did when the error was turned into text at once.
        assert_eq!(v[0].detail, LoaderError::NoSync { attempts: 7 }.to_string());
        assert_eq!(
            v[1].detail,
            format!("SPI_SET_PARAMS: {}", LoaderError::UnknownChip(1))
        );
        assert_eq!(v[2].detail, "no /config.json");
        let kinds: Vec<_> = v.iter().map(|v| v.loader_error).collect();
        assert_eq!(kinds, [Some("no_sync"), Some("unknown_chip"), None]);
        assert!(v.iter().all(|v| v.verdict == "fail"));
        assert!(matches!(
            report.cause,
            Some(LoaderError::NoSync { attempts: 7 })
        ));
        // Only a step the loader failed says so in the JSON.
        let json = serde_json::to_value(v).unwrap();
        assert_eq!(json[0]["loader_error"], "no_sync");
        assert!(json[2].get("loader_error").is_none());
    }
}
