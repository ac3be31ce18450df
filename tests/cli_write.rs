//! `shepherd spiffs build` (golden inputs, what does not fit) and `shepherd config set`
//! (refusals before anything is queued, and a write to a demo miner through a running
//! `shepherd run --demo`).

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

fn vectors() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/spiffs-vectors");
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipping: {} not found (../shared absent)", p.display());
        None
    }
}

fn sorted_listing(out: &[u8]) -> Vec<String> {
    let mut v: Vec<String> = String::from_utf8_lossy(out)
        .lines()
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}

#[test]
fn spiffs_build_packs_a_folder_that_lists_like_the_golden_image() {
    let Some(vectors) = vectors() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("multi.bin");
    let input = vectors.join("inputs/multi").display().to_string();
    let (ok, _, err) = shepherd(&[
        "spiffs",
        "build",
        &input,
        "--size",
        "0x20000",
        "-o",
        &out.display().to_string(),
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("4 file(s)"), "{err}");
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 0x20000);
    let (ok, ours, err) = shepherd(&["spiffs", "list", &out.display().to_string()]);
    assert!(ok, "{err}");
    let golden = vectors.join("multi.bin").display().to_string();
    let (ok, theirs, err) = shepherd(&["spiffs", "list", &golden]);
    assert!(ok, "{err}");
    assert_eq!(sorted_listing(&ours), sorted_listing(&theirs));
    let (ok, data, _) = shepherd(&[
        "spiffs",
        "extract",
        &out.display().to_string(),
        "/notes.txt",
    ]);
    assert!(ok);
    assert_eq!(
        data,
        std::fs::read(vectors.join("inputs/multi/notes.txt")).unwrap()
    );
}

#[test]
fn spiffs_build_refuses_what_does_not_fit_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(input.join("big.bin"), vec![7u8; 200_000]).unwrap();
    let out = dir.path().join("x.bin").display().to_string();
    let input_s = input.display().to_string();
    let (ok, _, err) = shepherd(&["spiffs", "build", &input_s, "--size", "0x20000", "-o", &out]);
    assert!(!ok);
    assert!(
        err.contains("files need") && err.contains("drop files"),
        "{err}"
    );
    assert!(!std::path::Path::new(&out).exists());

    let (ok, _, err) = shepherd(&["spiffs", "build", &input_s, "--size", "lots", "-o", &out]);
    assert!(!ok);
    assert!(err.contains("not a size in bytes"), "{err}");

    std::fs::remove_file(input.join("big.bin")).unwrap();
    std::fs::write(input.join(format!("{}.txt", "n".repeat(40))), b"x").unwrap();
    let (ok, _, err) = shepherd(&["spiffs", "build", &input_s, "--size", "0x20000", "-o", &out]);
    assert!(!ok);
    assert!(err.contains("shorten it"), "{err}");

    let (ok, _, err) = shepherd(&[
        "spiffs",
        "build",
        "/nonexistent/dir",
        "--size",
        "0x20000",
        "-o",
        &out,
    ]);
    assert!(!ok);
    assert!(err.contains("cannot read folder"), "{err}");
}

#[test]
fn config_set_refuses_bad_files_before_queuing_and_writes_a_demo_miner() {
    let dir = tempfile::tempdir().unwrap();
    let run = Running::start(dir.path(), &["--demo", "1"]);
    run.wait_json("/api/herd_data", Duration::from_secs(60), |v| {
        v["totals"]["online"] == 1
    });
    let db = run.db.display().to_string();
    let file = dir.path().join("config.json");
    let file_s = file.display().to_string();

    // A typo in the address: refused with the field named, nothing queued.
    std::fs::write(
        &file,
        r#"{"poolString":"solo.ckpool.org","portNumber":3333,"btcString":"bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5"}"#,
    )
    .unwrap();
    let (ok, _, err) = shepherd(&["config", "--database", &db, "set", "demo-1", &file_s]);
    assert!(!ok);
    assert!(
        err.contains("not valid") && err.contains("checksum"),
        "{err}"
    );
    std::fs::write(&file, "[1, 2]").unwrap();
    let (ok, _, err) = shepherd(&["config", "--database", &db, "set", "demo-1", &file_s]);
    assert!(!ok);
    assert!(err.contains("JSON object"), "{err}");

    std::fs::write(
        &file,
        r#"{"poolString":"solo.ckpool.org","portNumber":3333,"poolPassword":"x","btcString":"bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4.cli"}"#,
    )
    .unwrap();
    let (ok, _, err) = shepherd(&["config", "--database", &db, "set", "nobody", &file_s]);
    assert!(!ok);
    assert!(err.contains("no miner named"), "{err}");

    let (ok, out, err) = shepherd(&[
        "config",
        "--database",
        &db,
        "set",
        "demo-1",
        &file_s,
        "--timeout",
        "180",
    ]);
    assert!(ok, "{err}\nlog:\n{}", run.log_text());
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["poolString"], "solo.ckpool.org");
    assert_eq!(v["poolPassword"], "***");
    assert!(err.contains("[complete]"), "{err}");
}

#[test]
fn write_commands_have_help() {
    for args in [
        vec!["spiffs", "build", "--help"],
        vec!["config", "set", "--help"],
    ] {
        let (ok, out, err) = shepherd(&args);
        assert!(ok, "{args:?}: {err}");
        assert!(String::from_utf8_lossy(&out).contains("Usage:"), "{args:?}");
    }
}
