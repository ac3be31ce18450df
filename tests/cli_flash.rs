//! `shepherd spiffs …`, `shepherd flash inspect` on the golden images, and `shepherd config get`
//! against a running `shepherd run --demo` (its demo miners are simulated ESP32s).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::Running;

fn shepherd(args: &[&str]) -> (bool, Vec<u8>, String) {
    let out = Command::new(common::bin()).args(args).output().unwrap();
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A golden file, or None (with a message) when ../shared is absent.
fn vector(name: &str) -> Option<String> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/spiffs-vectors")
        .join(name);
    if p.exists() {
        Some(p.display().to_string())
    } else {
        eprintln!("skipping: {} not found (../shared absent)", p.display());
        None
    }
}

#[test]
fn flash_inspect_shows_table_and_files_of_a_full_dump() {
    let Some(dump) = vector("flash_4mb_huge_app.bin") else {
        return;
    };
    let (ok, out, err) = shepherd(&["flash", "inspect", &dump]);
    let out = String::from_utf8_lossy(&out);
    assert!(ok, "{err}");
    assert!(out.contains("MD5 verified"), "{out}");
    assert!(
        out.contains("spiffs, data, spiffs, 0x310000, 0xe0000"),
        "{out}"
    );
    assert!(out.contains("app0, app, ota_0, 0x10000, 0x300000"), "{out}");
    assert!(out.contains("192\t/config.json"), "{out}");
}

#[test]
fn flash_inspect_takes_a_bare_partition_image_too() {
    let Some(image) = vector("multi.bin") else {
        return;
    };
    let (ok, out, err) = shepherd(&["flash", "inspect", &image]);
    let out = String::from_utf8_lossy(&out);
    assert!(ok, "{err}");
    assert!(out.contains("no partition table"), "{out}");
    for f in [
        "700\t/notes.txt",
        "31\t/nerdminer_long_filename_31.txt",
        "192\t/config.json",
        "10240\t/big.bin",
    ] {
        assert!(out.contains(f), "{f} missing: {out}");
    }
}

#[test]
fn spiffs_list_and_extract_match_the_manifest() {
    let (Some(multi), Some(dump), Some(input)) = (
        vector("multi_nor.bin"),
        vector("flash_4mb_huge_app.bin"),
        vector("inputs/multi/notes.txt"),
    ) else {
        return;
    };
    let (ok, out, err) = shepherd(&["spiffs", "list", &multi]);
    assert!(ok, "{err}");
    let mut lines: Vec<String> = String::from_utf8_lossy(&out)
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "10240\t/big.bin",
            "192\t/config.json",
            "31\t/nerdminer_long_filename_31.txt",
            "700\t/notes.txt"
        ]
    );
    let (ok, out, err) = shepherd(&["spiffs", "extract", &multi, "/notes.txt"]);
    assert!(ok, "{err}");
    assert_eq!(out, std::fs::read(input).unwrap());
    // A full dump works too: its SPIFFS partition is found through the table.
    let (ok, out, err) = shepherd(&["spiffs", "extract", &dump, "config.json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["poolString"], "public-pool.io");
}

#[test]
fn bad_input_fails_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, vec![0x42u8; 8192]).unwrap();
    let junk = junk.display().to_string();
    let (ok, _, err) = shepherd(&["flash", "inspect", &junk]);
    assert!(!ok);
    assert!(
        err.contains("neither a full flash dump") && err.contains("SPIFFS"),
        "{err}"
    );
    let (ok, _, err) = shepherd(&["spiffs", "list", "/nonexistent/image.bin"]);
    assert!(!ok);
    assert!(err.contains("cannot read /nonexistent/image.bin"), "{err}");

    // Erased flash: no partition table.
    let erased = dir.path().join("erased.bin");
    std::fs::write(&erased, vec![0xFFu8; 0x10000]).unwrap();
    let (ok, _, err) = shepherd(&["flash", "inspect", erased.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("no partition table"), "{err}");

    if let Some(meta0) = vector("bad/config_small_meta0.bin") {
        let (ok, _, err) = shepherd(&["spiffs", "list", &meta0]);
        assert!(!ok);
        assert!(err.contains("meta length"), "{err}");
    }
    if let Some(multi) = vector("multi.bin") {
        let (ok, _, err) = shepherd(&["spiffs", "extract", &multi, "/nope"]);
        assert!(!ok);
        assert!(
            err.contains("no file /nope") && err.contains("/notes.txt"),
            "{err}"
        );
    }
}

#[test]
fn config_get_reads_a_demo_miner_through_the_running_shepherd() {
    let dir = tempfile::tempdir().unwrap();
    let run = Running::start(dir.path(), &["--demo", "1"]);
    run.wait_json("/api/herd_data", Duration::from_secs(60), |v| {
        v["totals"]["online"] == 1
    });
    let db = run.db.display().to_string();
    for method in ["flash", "boot"] {
        let (ok, out, err) = shepherd(&[
            "config",
            "--database",
            &db,
            "get",
            "demo-1",
            "--method",
            method,
            "--timeout",
            "120",
        ]);
        assert!(ok, "{method}: {err}\nlog:\n{}", run.log_text());
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["poolString"], "public-pool.io", "{method}");
        assert_eq!(v["poolPassword"], "***", "{method}");
        assert!(err.contains("[complete]"), "{err}");
    }
    let (ok, _, err) = shepherd(&["config", "--database", &db, "get", "nobody"]);
    assert!(!ok);
    assert!(err.contains("no miner named"), "{err}");
}

#[test]
fn new_commands_have_help() {
    for args in [
        vec!["spiffs", "--help"],
        vec!["spiffs", "list", "--help"],
        vec!["spiffs", "extract", "--help"],
        vec!["flash", "inspect", "--help"],
        vec!["config", "get", "--help"],
    ] {
        let (ok, out, err) = shepherd(&args);
        assert!(ok, "{args:?}: {err}");
        assert!(String::from_utf8_lossy(&out).contains("Usage:"), "{args:?}");
    }
}
