//! The command line as a user types it.

mod common;

use std::process::Command;

fn shepherd(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(common::bin()).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn version_and_help_on_every_command() {
    let (ok, out, _) = shepherd(&["--version"]);
    assert!(ok);
    assert!(out.contains(env!("CARGO_PKG_VERSION")));
    for args in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["miners", "--help"],
        vec!["miners", "list", "--help"],
        vec!["miners", "add", "--help"],
        vec!["miners", "remove", "--help"],
        vec!["devices", "--help"],
    ] {
        let (ok, out, err) = shepherd(&args);
        assert!(ok, "{args:?}: {err}");
        assert!(out.contains("Usage:"), "{args:?}: {out}");
    }
}

#[test]
fn miners_add_list_remove_share_one_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let db = db.to_str().unwrap();
    let (ok, out, err) = shepherd(&[
        "miners",
        "--database",
        db,
        "add",
        "--name",
        "garage",
        "--port",
        "/dev/ttyUSB0",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("added miner garage"));
    let (ok, _, err) = shepherd(&[
        "miners",
        "--database",
        db,
        "add",
        "--name",
        "garage",
        "--port",
        "/dev/ttyUSB1",
    ]);
    assert!(!ok);
    assert!(err.contains("already exists"), "{err}");
    let (_, out, _) = shepherd(&["miners", "--database", db, "list"]);
    assert!(out.contains("garage\t/dev/ttyUSB0\tserial"), "{out}");
    let (ok, _, _) = shepherd(&["miners", "--database", db, "remove", "garage"]);
    assert!(ok);
    let (ok, _, err) = shepherd(&["miners", "--database", db, "remove", "garage"]);
    assert!(!ok);
    assert!(err.contains("no miner named"), "{err}");
}

#[test]
fn bad_config_file_fails_with_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[server]\nbind = 8080\n").unwrap();
    let (ok, _, err) = shepherd(&["run", "--config", cfg.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn occupied_port_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bind = listener.local_addr().unwrap().to_string();
    let db = dir.path().join("s.db");
    let (ok, _, err) = shepherd(&["run", "--database", db.to_str().unwrap(), "--bind", &bind]);
    assert!(!ok);
    assert!(err.contains("cannot listen on"), "{err}");
}

#[test]
fn devices_lists_without_a_server_or_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let db = db.to_str().unwrap();
    let (ok, out, err) = shepherd(&["devices", "--database", db, "--json"]);
    assert!(ok, "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    for d in list.as_array().unwrap() {
        assert!(d["tty"].as_str().unwrap().starts_with("/dev/"), "{d}");
        assert!(d["status"].is_string(), "{d}");
    }
    assert!(
        !dir.path().join("s.db").exists(),
        "listing must not create a database"
    );
    let (ok, out, err) = shepherd(&["devices", "--database", db]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("TTY") || out.contains("no USB serial devices"),
        "{out}"
    );
}

/// The benchmark command itself works (its figures are not checked here: timing belongs in
/// docs/BENCHMARKS.md, not in tests): several miners at once through both paths, every line
/// written is stored, none dropped.
#[test]
fn bench_ingest_stores_every_line_on_both_paths() {
    let (ok, out, err) = shepherd(&[
        "bench",
        "ingest",
        "--miners",
        "3",
        "--seconds",
        "1",
        "--baud",
    ]);
    assert!(ok, "{err}");
    let rows: Vec<Vec<&str>> = out
        .lines()
        .filter(|l| l.starts_with("| shepherd") || l.starts_with("| naive"))
        .map(|l| l.split('|').map(str::trim).collect())
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    for row in rows {
        // | path | miners | lines written | stored/s | dropped | CPU | RSS |
        assert_eq!(row[2], "3", "{row:?}");
        let written: u64 = row[3].parse().unwrap();
        assert!(written > 0, "{row:?}");
        assert_eq!(row[5], "0", "nothing dropped: {row:?}");
    }
}
