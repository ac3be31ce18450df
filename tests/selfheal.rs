//! Self-healing against running simulated miners: the real app (in this process) with
//! `[self_heal]` on and short thresholds. A miner whose firmware hangs (no more output, port
//! still open) is reset through its serial lines by the SelfHealActor's own loop and mines
//! again; the reset is an incident entry and a `self_healing` alert; a second hang within
//! `min_interval_minutes` is left alone. Where the miner's USB path is known (a fake sysfs
//! tree) and a fake `uhubctl` lists its hub as switching each port's power, a reset that did
//! not help (a wedged USB bridge) becomes a power cycle; then the day's limit holds.

mod common;

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use common::in_process::App;
use shepherd::config::Config;
use shepherd::flash::spiffs::SpiffsFile;
use shepherd::sim::esp32::{self, SimEsp32, SimEsp32Config};

fn sim(seed: u64) -> SimEsp32 {
    let mut cfg = SimEsp32Config::new(
        seed,
        esp32::huge_app_flash(&[SpiffsFile {
            path: "/config.json".into(),
            data: br#"{"poolString":"pool.example.org","portNumber":3333,"btcString":"bc1qtest"}"#
                .to_vec(),
        }])
        .unwrap(),
    );
    cfg.line_interval = Duration::from_millis(100);
    SimEsp32::spawn(cfg).unwrap()
}

/// Stalled after 2 s of silence, the offline rule fires at once and clears after 1 s, and
/// self-healing looks every second and acts as soon as a miner is stuck.
fn fast(c: &mut Config) {
    c.summarizer.stall_secs = 2;
    c.alerts.interval_secs = 1;
    c.alerts.offline_minutes = 0;
    c.alerts.clear_secs = 1;
    c.self_heal.enabled = true;
    c.self_heal.after_minutes = 0;
    c.self_heal.check_secs = 1;
}

/// Polls `f` until it gives a value (a failed test, not a hung one, after a minute).
fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The self-healing RESET rows of a miner: (status, payload).
fn heal_rows(app: &App, id: i64) -> Vec<(String, String)> {
    let conn = shepherd::db::open_reader(&app.db).unwrap();
    let mut s = conn
        .prepare(
            "SELECT status, payload FROM miner_commands WHERE miner_id = ?1 AND command = 'RESET'
               AND payload LIKE '%self-healing%' ORDER BY id",
        )
        .unwrap();
    s.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn alerts(app: &App, id: i64) -> Vec<String> {
    let conn = shepherd::db::open_reader(&app.db).unwrap();
    let mut s = conn
        .prepare("SELECT message FROM alerts WHERE miner_id = ?1 AND rule = 'self_healing'")
        .unwrap();
    s.query_map([id], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The newest `offline` alert row of a miner: (id, still active).
fn last_offline(app: &App, id: i64) -> Option<(i64, bool)> {
    let conn = shepherd::db::open_reader(&app.db).unwrap();
    conn.query_row(
        "SELECT id, resolved_at IS NULL FROM alerts WHERE miner_id = ?1 AND rule = 'offline'
           ORDER BY id DESC LIMIT 1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .ok()
}

/// Hangs the miner again once its last stall has cleared, waits for the offline rule to fire
/// for the new one, then for two more self-healing rounds (so the loop has seen it).
fn hang_again(app: &App, id: i64, sim: &SimEsp32) {
    let before = until("the first stall did not clear", || {
        match last_offline(app, id) {
            Some((row, false)) => Some(row),
            _ => None,
        }
    });
    sim.hang();
    until("the second stall was not noticed", || {
        matches!(last_offline(app, id), Some((row, true)) if row > before).then_some(())
    });
    let rounds = app.json("/api/ports")["self_heal"]["rounds"]
        .as_u64()
        .unwrap();
    until("no further self-healing round", || {
        (app.json("/api/ports")["self_heal"]["rounds"].as_u64() > Some(rounds + 1)).then_some(())
    });
}

/// What self-healing waits on, as `/api/ports` reports it: (miner, why).
fn waiting(app: &App) -> Vec<(String, String)> {
    let v = app.json("/api/ports");
    serde_json::from_value(v["self_heal"]["waiting"].clone()).unwrap()
}

/// A fake sysfs tree: hub `1-1` on bus 1 with the miner's CH340 on its port 2, whose tty node
/// is a link to the simulator's pty (the port map follows links to match the herd's port).
fn fake_sysfs(root: &Path, pty: &str) {
    let hub = root.join("sys/devices/platform/xhci/usb1/1-1");
    let dev = hub.join("1-1.2");
    let iface = dev.join("1-1.2:1.0");
    std::fs::create_dir_all(iface.join("ttyUSB0")).unwrap();
    for (dir, file, text) in [
        (&hub, "idVendor", "2109"),
        (&hub, "product", "USB2.0 Hub"),
        (&hub, "maxchild", "4"),
        (&dev, "idVendor", "1a86"),
        (&dev, "idProduct", "7523"),
        (&dev, "product", "USB Serial"),
    ] {
        std::fs::write(dir.join(file), format!("{text}\n")).unwrap();
    }
    let class = root.join("sys/class/tty/ttyUSB0");
    std::fs::create_dir_all(&class).unwrap();
    symlink(iface.join("ttyUSB0"), class.join("device")).unwrap();
    std::fs::create_dir_all(root.join("dev")).unwrap();
    symlink(pty, root.join("dev/ttyUSB0")).unwrap();
}

/// A uhubctl that logs its arguments and, asked without any, lists hub 1-1 as uhubctl 2.5
/// prints a VIA VL805-style hub that switches each port (uhubctl.c `print_port_status`) — once
/// the hub is plugged in (the file `hub-plugged` in `dir` exists); before, it answers as
/// uhubctl does when it finds no hub it can switch ("No compatible devices detected!", exit 1).
fn fake_uhubctl(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let log = dir.join("uhubctl.log");
    let prog = dir.join("uhubctl");
    std::fs::write(
        &prog,
        format!(
            "#!/bin/sh\necho \"args: $*\" >> '{}'\nif [ $# -eq 0 ]; then\n\
             if [ ! -e '{}' ]; then echo 'No compatible devices detected!' >&2; exit 1; fi\n\
             cat <<'EOF'\n\
             Current status for hub 1-1 [2109:3431 USB2.0 Hub, USB 2.10, 4 ports, ppps]\n  \
             Port 1: 0100 power\n  \
             Port 2: 0103 power enable connect [1a86:7523 QinHeng Electronics USB Serial]\n  \
             Port 3: 0100 power\n  \
             Port 4: 0100 power\n\
             EOF\nfi\n",
            log.display(),
            dir.join("hub-plugged").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
    (prog, log)
}

#[test]
fn a_hung_miner_is_reset_by_the_loop_and_limits_hold() {
    // Read by the port map in this process; set before any app thread runs.
    let sys = tempfile::tempdir().unwrap();
    std::env::set_var("SHEPHERD_SYSFS_ROOT", sys.path());

    // --- A hang: a serial reset by the loop, then the interval holds for a second hang.
    let dir = tempfile::tempdir().unwrap();
    let sim8 = sim(8);
    let mut app = App::start_with(dir.path(), &[("demo-8", &sim8)], 2, fast);
    let id = app.miner_id("demo-8");
    app.wait_lines_after(id, 0);
    let boots = sim8.state(|s| s.firmware_boots);
    sim8.hang();
    until("the hung miner was not reset", || {
        (sim8.state(|s| s.firmware_boots) > boots).then_some(())
    });
    let after = shepherd::clock::now_ms();
    app.wait_lines_after(id, after);
    let rows = until("the reset did not finish", || {
        let r = heal_rows(&app, id);
        r.iter().all(|(s, _)| s == "complete").then_some(r)
    });
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].1.contains("self-healing: serial reset"), "{rows:?}");
    let sent = alerts(&app, id);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0].contains("reset through its serial lines"),
        "{sent:?}"
    );
    let inc = app.json("/api/incidents?miner=demo-8");
    let actions: Vec<String> = inc["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["actions"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["text"].as_str().map(str::to_owned))
        .collect();
    assert!(
        actions.iter().any(|t| t.starts_with("self-healing")),
        "{inc:#}"
    );

    // The second hang comes within min_interval_minutes (30): left alone, and said why.
    let boots = sim8.state(|s| s.firmware_boots);
    hang_again(&app, id, &sim8);
    let why = waiting(&app).into_iter().find(|(m, _)| m == "demo-8");
    assert!(
        why.as_ref()
            .is_some_and(|w| w.1.starts_with("rate limit: acted lately")),
        "{why:?}"
    );
    assert_eq!(sim8.state(|s| s.firmware_boots), boots, "reset again");
    assert!(sim8.state(|s| s.hung));
    assert_eq!(heal_rows(&app, id).len(), 1);
    app.stop();

    // --- A wedged bridge on a hub that switches port power: reset, then a power cycle.
    let dir = tempfile::tempdir().unwrap();
    let sim9 = sim(9);
    fake_sysfs(sys.path(), &sim9.path);
    let (uhubctl, log) = fake_uhubctl(dir.path());
    let mut app = App::start_with(dir.path(), &[("demo-9", &sim9)], 2, |c| {
        fast(c);
        c.self_heal.min_interval_minutes = 0;
        c.self_heal.max_per_day = 2;
        c.self_heal.uhubctl = uhubctl.display().to_string();
    });
    let id = app.miner_id("demo-9");
    app.wait_lines_after(id, 0);
    // Asked at the start which hubs switch power: none yet, and the port map says why.
    let ports = until("uhubctl was not asked about the hubs", || {
        let v = app.json("/api/ports");
        v["self_heal"]["hubs_error"].is_string().then_some(v)
    });
    assert!(
        ports["self_heal"]["hubs_error"]
            .as_str()
            .unwrap()
            .contains("No compatible devices detected"),
        "{ports:#}"
    );
    assert!(ports["self_heal"]["hubs"].is_null(), "{ports:#}");

    // The hub is plugged in after the start; the miner's bridge wedges. The round that finds
    // it stuck on a hub uhubctl did not list asks uhubctl again.
    std::fs::write(dir.path().join("hub-plugged"), "").unwrap();
    sim9.wedge_bridge();
    let ports = until("uhubctl was not asked about the hubs again", || {
        let v = app.json("/api/ports");
        v["self_heal"]["hubs"].is_array().then_some(v)
    });
    assert_eq!(
        ports["self_heal"]["hubs"][0]["location"], "1-1",
        "{ports:#}"
    );
    assert_eq!(ports["self_heal"]["hubs"][0]["switching"], "per_port");
    assert!(ports["self_heal"]["hubs_error"].is_null(), "{ports:#}");
    let page = String::from_utf8(app.get("/ports").1).unwrap();
    assert!(page.contains("per-port power"), "{page}");
    assert!(
        page.contains("demo-9"),
        "the miner is placed on hub 1-1: {page}"
    );

    // The test is the hub: when uhubctl is told to cycle port 2 of hub 1-1, the power goes.
    until("uhubctl was not asked to power cycle", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("args: -l 1-1 -p 2 -a cycle -d 3")
            .then_some(())
    });
    sim9.power_cycle();
    let after = shepherd::clock::now_ms();
    app.wait_lines_after(id, after);
    let rows = heal_rows(&app, id);
    assert_eq!(rows.len(), 2, "a reset, then a power cycle: {rows:?}");
    assert!(
        rows[1].1.contains("power cycle of hub 1-1 port 2"),
        "{rows:?}"
    );
    assert!(sim9.state(|s| s.power_cycles) == 1 && !sim9.state(|s| s.bridge_wedged));
    let sent = alerts(&app, id);
    assert!(
        sent.iter()
            .any(|m| m.contains("power cycled hub 1-1 port 2")),
        "{sent:?}"
    );

    // Two actions today: max_per_day holds for the next hang.
    hang_again(&app, id, &sim9);
    let why = waiting(&app).into_iter().find(|(m, _)| m == "demo-9");
    assert!(
        why.as_ref()
            .is_some_and(|w| w.1.contains("the most actions a day")),
        "{why:?}"
    );
    assert!(sim9.state(|s| s.hung));
    assert_eq!(heal_rows(&app, id).len(), 2);
    app.stop();
}
