//! What each subcommand does, on top of the library's modules.

use anyhow::Context as _;

use crate::cli::{BenchKind, Command, Common, ConfigAction, MinersAction};
use crate::config::Config;
use crate::db::{self, devices, miners};
use crate::discovery::classify::Herd;
use crate::discovery::udev_source::{scan_now, Backend};
use crate::discovery::{listing, DeviceListing};

/// Loads the config and applies the command-line overrides.
pub fn load_config(common: &Common) -> anyhow::Result<Config> {
    let mut config = Config::load(common.config.as_deref())?;
    if let Some(path) = &common.database {
        config.database.path.clone_from(path);
    }
    Ok(config)
}

/// Runs one parsed command.
pub fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run {
            common,
            bind,
            demo,
            demo_axeos,
            hub,
        } => {
            let mut config = load_config(&common)?;
            if let Some(bind) = bind {
                config.server.bind = bind;
            }
            if let Some(n) = demo_axeos {
                config.demo.axeos_miners = n;
            }
            if hub {
                anyhow::ensure!(
                    config.mqtt.enabled,
                    "--hub needs [mqtt] enabled = true with the central broker's host in the config file"
                );
                config.hub.enabled = true;
            }
            crate::app::run(config, demo.unwrap_or(0))
        }
        Command::Tail {
            common,
            name,
            raw,
            lines,
        } => {
            let config = load_config(&common)?;
            super::tail::run(&config.database.path, &name, raw, lines)
        }
        Command::Spiffs { action } => super::flash::spiffs(action),
        Command::Flash { action } => super::flash::flash(action),
        Command::Config { common, action } => {
            let config = load_config(&common)?;
            match action {
                ConfigAction::Get {
                    name,
                    method,
                    no_reset,
                    timeout,
                } => super::flash::config_get(
                    &config.database.path,
                    &name,
                    &method,
                    no_reset,
                    timeout,
                ),
                ConfigAction::Set {
                    name,
                    file,
                    no_reset,
                    timeout,
                } => {
                    super::flash::config_set(&config.database.path, &name, &file, no_reset, timeout)
                }
            }
        }
        Command::Doctor {
            common,
            name,
            no_reset,
            trace,
            timeout,
        } => {
            let config = load_config(&common)?;
            super::flash::doctor(
                &config.database.path,
                &name,
                no_reset,
                trace.as_deref(),
                timeout,
            )
        }
        Command::Identify {
            common,
            name,
            timeout,
        } => {
            let config = load_config(&common)?;
            super::flash::identify(&config.database.path, &name, timeout)
        }
        Command::Bench { kind } => match kind {
            BenchKind::Flash { max_baud, rom } => super::bench_flash::run(max_baud, rom),
            BenchKind::Ingest {
                miners,
                seconds,
                baud,
                bytes_per_sec,
                no_naive,
                flood,
            } => {
                let rate = if baud {
                    Some(super::bench::BAUD_115200_BYTES)
                } else {
                    bytes_per_sec
                };
                super::bench::ingest(miners, seconds, rate, !no_naive, flood)
            }
            BenchKind::Api {
                miners,
                log_rows,
                requests,
            } => super::bench::api(miners, log_rows, requests),
            BenchKind::Hub {
                sites,
                miners,
                seconds,
                interval_secs,
            } => super::bench_hub::run(sites, miners, seconds, interval_secs.max(1)),
            BenchKind::SimWriter {
                miners,
                seconds,
                bytes_per_sec,
            } => super::bench::sim_writer(miners, seconds, bytes_per_sec),
        },
        Command::Miners { common, action } => {
            let config = load_config(&common)?;
            let (conn, _) = db::open_writer(&config.database.path)?;
            let stall_ms = i64::try_from(config.summarizer.stall_secs.saturating_mul(1000))
                .unwrap_or(i64::MAX);
            miners_command(&conn, action, stall_ms)
        }
        Command::Profiles { common, action } => {
            let config = load_config(&common)?;
            let (conn, _) = db::open_writer(&config.database.path)?;
            super::fleet::profiles(&conn, action)
        }
        Command::Drift { common, json } => {
            let config = load_config(&common)?;
            let (conn, _) = db::open_writer(&config.database.path)?;
            super::fleet::drift(&conn, json)
        }
        Command::Reconcile {
            common,
            names,
            all,
            force,
            timeout,
        } => {
            let config = load_config(&common)?;
            super::fleet::reconcile(&config.database.path, &names, all, force, timeout)
        }
        Command::Passwd { config } => super::passwd::run(&config),
        Command::Devices { common, json } => {
            let config = load_config(&common)?;
            devices_command(&config, json)
        }
    }
}

fn miners_command(
    conn: &rusqlite::Connection,
    action: MinersAction,
    stall_ms: i64,
) -> anyhow::Result<()> {
    match action {
        MinersAction::List => {
            let all = miners::list(conn)?;
            if all.is_empty() {
                println!("no miners yet: add one with `shepherd miners add --name NAME --port /dev/ttyUSB0`");
            }
            let views = crate::herd::miner_views(conn, crate::clock::now_ms(), stall_ms)?;
            for m in all {
                let state = if m.enabled { "" } else { " (disabled)" };
                let view = views.iter().find(|v| v.id == m.id);
                let status = view.map_or("disabled".to_string(), |v| {
                    serde_json::to_value(v.status)
                        .ok()
                        .and_then(|s| s.as_str().map(str::to_owned))
                        .unwrap_or_default()
                });
                println!(
                    "{}\t{}\t{}\t{}{state}\t{status}",
                    m.id, m.name, m.port, m.kind
                );
                if let Some(v) = view {
                    println!("{}", why_lines(&v.diagnosis));
                }
            }
        }
        MinersAction::Add { name, port, url } => match (port, url) {
            (_, Some(url)) => {
                let id = miners::add_axeos(conn, &name, &url)?;
                let url = miners::get(conn, id)?.map(|m| m.port).unwrap_or(url);
                println!(
                    "added AxeOS miner {name} (id {id}) at {url}; a running shepherd reads it within seconds"
                );
            }
            (Some(port), None) => {
                let id = miners::add(conn, &name, &port, "serial")?;
                println!("added miner {name} (id {id}) on {port}; a running shepherd picks it up within seconds");
            }
            (None, None) => anyhow::bail!("give --port /dev/ttyUSB0 or --url http://192.168.1.50"),
        },
        MinersAction::Scan { subnet, add } => {
            let hosts = crate::miner::axeos::scan::hosts(&subnet).map_err(anyhow::Error::msg)?;
            println!(
                "asking {} addresses for /api/system/info ({} ms each)…",
                hosts.len(),
                crate::miner::axeos::scan::TIMEOUT.as_millis()
            );
            let urls = crate::miner::axeos::scan::urls(&hosts, 80);
            let found = crate::miner::axeos::scan::probe(urls, crate::miner::axeos::scan::TIMEOUT);
            if found.is_empty() {
                println!("no AxeOS miner answered on {subnet}");
            }
            let all = miners::list(conn)?;
            let known: Vec<String> = all.iter().map(|m| m.port.clone()).collect();
            let mut names: Vec<String> = all.into_iter().map(|m| m.name).collect();
            for f in found {
                let name = crate::miner::axeos::scan::suggest_name(&f, &names);
                names.push(name.clone());
                let what = format!(
                    "{} {} {} {:.0} GH/s",
                    f.url,
                    name,
                    f.version.as_deref().unwrap_or("?"),
                    f.hashrate_ghs
                );
                if known.contains(&f.url) {
                    println!("{what} (already watched)");
                } else if add {
                    match miners::add_axeos(conn, &name, &f.url) {
                        Ok(id) => println!("{what}: added as {name} (id {id})"),
                        Err(e) => println!("{what}: not added: {e}"),
                    }
                } else {
                    println!(
                        "{what}: add with `shepherd miners add --name {name} --url {}`",
                        f.url
                    );
                }
            }
        }
        MinersAction::Remove { name } => {
            miners::remove(conn, &name).with_context(|| format!("cannot remove {name}"))?;
            println!("removed miner {name} and its history");
        }
        MinersAction::Set {
            name,
            profile,
            worker,
            address,
            board,
        } => super::fleet::set_miner(
            conn,
            &name,
            profile.as_deref(),
            worker.as_deref(),
            address.as_deref(),
            &board,
        )?,
    }
    Ok(())
}

/// The diagnosis under a miner's line in `shepherd miners list`: the verdict, what it rests
/// on, and each link of the chain with its last line and age.
pub fn why_lines(d: &crate::diagnosis::Diagnosis) -> String {
    let verdict = serde_json::to_value(d.verdict)
        .ok()
        .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
        .unwrap_or_default();
    let mut out = format!(
        "    why: {verdict} — {}\n    rests on: {}",
        d.summary, d.basis
    );
    for l in &d.links {
        let line = match (&l.line, l.age_secs) {
            (Some(line), Some(age)) => format!("{line:?} {age} s ago"),
            _ => "—".into(),
        };
        let why = l
            .reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        out.push_str(&format!(
            "\n      {:<16} {:<8} {line}{why}",
            l.link.label(),
            l.state
        ));
    }
    out
}

fn devices_command(config: &Config, json: bool) -> anyhow::Result<()> {
    let (found, backend) = scan_now();
    if backend == Backend::Scan {
        eprintln!("note: udev is not running here; devices were found by scanning /dev and /sys");
    }
    // Reading needs no database: without one every device is simply new.
    let path = &config.database.path;
    let (known, records) = if path.exists() {
        let (conn, _) = db::open_writer(path)?;
        (devices::known_miners(&conn)?, devices::records(&conn)?)
    } else {
        (Vec::new(), Vec::new())
    };
    let herd = Herd {
        usb_ids: &config.discovery.usb_ids,
        miners: &known,
        records: &records,
        present: &found,
    };
    let list = listing(&found, herd);
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if list.is_empty() {
        println!(
            "no USB serial devices found: plug a miner in (and check `dmesg` for its ttyUSB/ttyACM)"
        );
        return Ok(());
    }
    print!("{}", table(&list));
    Ok(())
}

/// The devices as aligned columns, one line each under a header.
fn table(list: &[DeviceListing]) -> String {
    let dash = || "-".to_string();
    let rows: Vec<[String; 6]> = list
        .iter()
        .map(|d| {
            let status = match (d.status, &d.miner) {
                ("miner", Some(name)) => format!("miner {name}"),
                ("unconfigured", _) => "unconfigured: add it at /onboarding".into(),
                ("new", _) => "new: shepherd run offers it at /onboarding".into(),
                ("not_listed", _) => "not a listed chip".into(),
                ("not_usb", _) => "not USB".into(),
                (other, _) => other.to_string(),
            };
            [
                d.tty.clone(),
                d.usb_id.clone().unwrap_or_else(dash),
                d.chip.map(str::to_owned).unwrap_or_else(dash),
                d.serial.clone().unwrap_or_else(dash),
                status,
                d.by_id.clone().unwrap_or_else(dash),
            ]
        })
        .collect();
    let header = ["TTY", "VID:PID", "CHIP", "SERIAL", "STATUS", "BY-ID"].map(String::from);
    let mut widths = [0usize; 6];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_table_lines_up() {
        let row = |tty: &str, status: &'static str, miner: Option<&str>| DeviceListing {
            tty: tty.into(),
            by_id: None,
            usb_id: Some("303a:1001".into()),
            serial: Some("F4:12:FA:5B:C3:10".into()),
            manufacturer: None,
            product: None,
            chip: Some("ESP32-S3/C3 USB-JTAG"),
            status,
            miner: miner.map(Into::into),
        };
        let text = table(&[
            row("/dev/ttyACM0", "miner", Some("desk")),
            row("/dev/ttyACM10", "unconfigured", None),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("TTY            VID:PID"), "{text}");
        assert!(lines[1].contains("miner desk"), "{text}");
        assert!(lines[2].contains("/onboarding"), "{text}");
        assert_eq!(lines[1].find("303a"), lines[2].find("303a"));
    }
}
