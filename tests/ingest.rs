//! Serial ingest over pseudo-terminals, counted exactly: several miners, garbage, a 1 MB line,
//! unplug and replug under a stable by-id style path, and a burst right before SIGTERM.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Running;
use shepherd::sim::nerdminer::{Board, SimMiner};
use shepherd::sim::pty::Pty;

fn add_miner(db: &Path, name: &str, port: &Path) {
    let out = Command::new(common::bin())
        .args([
            "miners",
            "--database",
            db.to_str().unwrap(),
            "add",
            "--name",
            name,
            "--port",
            port.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn stored(db: &Path, name: &str) -> (i64, i64, i64) {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    // Counted through the miner's spans (how its log page finds them), and checked against a
    // scan of the whole table in the same snapshot: no line may be outside its miner's spans.
    let conn = conn.unchecked_transaction().unwrap();
    let (n, truncated, longest) = conn
        .query_row(
            "SELECT count(*), coalesce(sum(truncated), 0), coalesce(max(length(line)), 0)
             FROM miners m JOIN miner_log_spans s ON s.miner_id = m.id
             JOIN miner_logs l ON l.id BETWEEN s.first_id AND s.last_id AND l.miner_id = m.id
             WHERE m.name = ?1",
            [name],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let scanned: i64 = conn
        .query_row(
            "SELECT count(*) FROM miner_logs l JOIN miners m ON m.id = l.miner_id WHERE m.name = ?1",
            [name],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, scanned, "{name}: lines outside the miner's spans");
    (n, truncated, longest)
}

fn wait_stored(run: &Running, name: &str, want: i64) {
    let start = Instant::now();
    loop {
        let (n, _, _) = stored(&run.db, name);
        if n == want {
            return;
        }
        assert!(n < want, "{name}: {n} lines stored, only {want} written");
        if start.elapsed() > Duration::from_secs(60) {
            panic!(
                "{name}: {n} of {want} lines stored after 60 s; log:\n{}",
                run.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A scripted miner: writes lines in awkward pieces and counts what must be stored.
struct Script {
    master: std::fs::File,
    written: i64,
}

impl Script {
    fn new(pty: &Pty) -> Self {
        Script {
            master: pty.master.try_clone().unwrap(),
            written: 0,
        }
    }

    /// Lines as the firmware prints them, split at odd places, CRLF / LF / CR endings.
    fn lines(&mut self, lines: &[String]) {
        let endings: [&[u8]; 3] = [b"\r\n", b"\n", b"\r"];
        let mut bytes = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            bytes.extend_from_slice(l.as_bytes());
            bytes.extend_from_slice(endings[i % 3]);
            if !l.trim().is_empty() {
                self.written += 1;
            }
        }
        for chunk in bytes.chunks(37) {
            self.master.write_all(chunk).unwrap();
        }
    }

    /// Bytes a resetting board spits out: invalid UTF-8, NULs, ANSI colours, control codes.
    /// Each burst carries one printable marker, so it is exactly one stored line.
    fn garbage(&mut self, seed: u8) {
        let mut junk = vec![
            0x1b, b'[', b'3', b'1', b'm', 0xff, 0xfe, 0x00, seed, 0xc3, 0x28, 0x07,
        ];
        junk.extend((0..200u16).map(|i| (i as u8).wrapping_mul(seed) | 0x80));
        junk.extend_from_slice(b"\x1b[0m#garbage\r\n");
        self.master.write_all(&junk).unwrap();
        self.written += 1;
    }

    /// One line of 1 MB without a newline until the end.
    fn huge_line(&mut self) {
        let line = vec![b'A'; 1 << 20];
        for chunk in line.chunks(4096) {
            self.master.write_all(chunk).unwrap();
        }
        self.master.write_all(b"\n").unwrap();
        self.written += 1;
    }
}

fn mining_lines(sim: &mut SimMiner, seconds: usize) -> Vec<String> {
    (0..seconds).flat_map(|_| sim.tick()).collect()
}

#[test]
fn every_line_is_stored_through_garbage_huge_lines_unplug_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shepherd.db");
    let by_id = dir.path().join("by-id");
    std::fs::create_dir(&by_id).unwrap();

    let ptys: Vec<Pty> = (0..3).map(|_| Pty::open().unwrap()).collect();
    let links: Vec<_> = (0..3)
        .map(|i| by_id.join(format!("usb-Silicon_Labs_CP2102_000{i}-if00-port0")))
        .collect();
    for (i, (pty, link)) in ptys.iter().zip(&links).enumerate() {
        std::os::unix::fs::symlink(&pty.path, link).unwrap();
        add_miner(&db, &format!("m{i}"), link);
    }
    let mut run = Running::start(dir.path(), &[]);
    run.wait_up();

    let mut scripts: Vec<Script> = ptys.iter().map(Script::new).collect();
    let mut sims: Vec<SimMiner> = (0..3).map(|i| SimMiner::new(i, Board::NoDisplay)).collect();
    for (i, (script, sim)) in scripts.iter_mut().zip(&mut sims).enumerate() {
        script.lines(&sim.boot_lines());
        script.garbage(i as u8 + 3);
        script.lines(&mining_lines(sim, 20));
        script.huge_line();
        script.garbage(i as u8 + 7);
        script.lines(&mining_lines(sim, 20));
    }
    for (i, s) in scripts.iter().enumerate() {
        wait_stored(&run, &format!("m{i}"), s.written);
        let (_, truncated, longest) = stored(&run.db, &format!("m{i}"));
        assert_eq!(truncated, 1, "the 1 MB line is stored once, cut");
        assert_eq!(longest, shepherd::miner::framing::MAX_LINE_BYTES as i64);
    }

    // Unplug m0: its pseudo-terminal disappears; the dashboard shows it offline.
    let mut ptys = ptys;
    let old = ptys.remove(0);
    let mut m0 = scripts.remove(0);
    drop(old);
    drop(std::mem::replace(
        &mut m0.master,
        tempfile::tempfile().unwrap(),
    ));
    run.wait_json("/api/herd_data", Duration::from_secs(30), |v| {
        v["miners"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "m0" && m["status"] == "offline")
    });

    // Replug on a different tty name: the stable path now points elsewhere.
    let new = Pty::open().unwrap();
    std::fs::remove_file(&links[0]).unwrap();
    std::os::unix::fs::symlink(&new.path, &links[0]).unwrap();
    let mut m0 = Script {
        master: new.master.try_clone().unwrap(),
        written: m0.written,
    };
    run.wait_json("/api/herd_data", Duration::from_secs(30), |v| {
        v["miners"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "m0" && m["status"] != "offline")
    });
    m0.lines(&sims[0].boot_lines());
    m0.lines(&mining_lines(&mut sims[0], 10));
    wait_stored(&run, "m0", m0.written);

    // A burst on every miner, then SIGTERM at once: nothing may be lost.
    scripts.insert(0, m0);
    for (script, sim) in scripts.iter_mut().zip(&mut sims) {
        script.lines(&mining_lines(sim, 60));
    }
    run.terminate();
    for (i, s) in scripts.iter().enumerate() {
        let (n, _, _) = stored(&run.db, &format!("m{i}"));
        assert_eq!(n, s.written, "m{i}: {} written, {n} stored", s.written);
    }
    drop(new);
    drop(ptys);
}
