//! `shepherd bench ingest`: how many lines a second the ingest path stores, and what it costs
//! in CPU and memory, beside a naive baseline (one INSERT and commit per line) in the same run.
//!
//! The simulated miners run in a child process (`shepherd bench sim-writer`, hidden) so the
//! CPU and memory measured are those of ingest alone.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use anyhow::{bail, Context as _};

use crate::config::IngestConfig;
use crate::db::{self, miners, DbActor, IngestStats, ReadPool};
use crate::miner::framing::{LineFramer, MAX_LINE_BYTES};
use crate::miner::reader::Sink;
use crate::sim::nerdminer::{Board, SimMiner};
use crate::supervisor::{MinerSettings, StopAll, Supervisor};

/// Bytes a second a serial line carries at 115200 baud, 8N1.
pub const BAUD_115200_BYTES: u64 = 11_520;

/// One measured run.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// Which ingest path.
    pub name: &'static str,
    /// Lines written by the simulators.
    pub lines: u64,
    /// Seconds from first write until every line was stored.
    pub seconds: f64,
    /// CPU time of this process over that interval, as % of one core.
    pub cpu_percent: f64,
    /// Peak resident memory of this process so far (KiB).
    pub peak_rss_kib: u64,
    /// Lines dropped because the database fell behind (counted, not stored).
    pub dropped: u64,
}

impl Measurement {
    /// Lines stored per second (dropped ones excluded).
    pub fn stored_per_sec(&self) -> f64 {
        self.lines.saturating_sub(self.dropped) as f64 / self.seconds.max(1e-9)
    }
}

/// The child that plays the miners.
struct Writers {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    paths: Vec<String>,
}

impl Writers {
    fn spawn(miners: usize, seconds: u64, rate: Option<u64>) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find own executable")?;
        let mut cmd = Command::new(exe);
        cmd.args([
            "bench",
            "sim-writer",
            "--miners",
            &miners.to_string(),
            "--seconds",
            &seconds.to_string(),
        ]);
        if let Some(r) = rate {
            cmd.args(["--bytes-per-sec", &r.to_string()]);
        }
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
        let stdin = child.stdin.take().context("no stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().context("no stdout")?);
        let mut paths = Vec::with_capacity(miners);
        for _ in 0..miners {
            let mut line = String::new();
            stdout.read_line(&mut line)?;
            paths.push(line.trim().to_owned());
        }
        Ok(Self {
            child,
            stdin,
            stdout,
            paths,
        })
    }

    /// Starts writing; returns per-miner line counts when done.
    fn go(&mut self) -> anyhow::Result<Vec<u64>> {
        self.stdin.write_all(b"go\n")?;
        self.stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        line.split_whitespace()
            .map(|n| n.parse::<u64>().context("bad count from sim-writer"))
            .collect()
    }
}

impl Drop for Writers {
    fn drop(&mut self) {
        let _ = self.stdin.write_all(b"quit\n");
        let _ = self.child.wait();
    }
}

fn cpu_seconds() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_SELF)
        .map(|u| {
            let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
            t(u.user_time()) + t(u.system_time())
        })
        .unwrap_or(0.0)
}

/// Peak resident set size of this process (KiB), from /proc.
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// Waits until `done()` reaches `want` lines (stored or dropped), or 120 s pass.
fn wait_done(want: u64, done: impl Fn() -> u64) -> anyhow::Result<()> {
    let start = Instant::now();
    while done() < want {
        if start.elapsed() > Duration::from_secs(120) {
            bail!("only {} of {want} lines handled after 120 s", done());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Our path: MinerActors → DbActor, as `shepherd run` does it.
fn run_shepherd(
    dir: &Path,
    miners_n: usize,
    seconds: u64,
    rate: Option<u64>,
) -> anyhow::Result<Measurement> {
    let path = dir.join("bench.db");
    let (mut conn, _) = db::open_writer(&path)?;
    let mut writers = Writers::spawn(miners_n, seconds, rate)?;
    let ports = writers.paths.clone();
    miners::sync_demo(&mut conn, &ports)?;
    let system = actix_rt::System::new();
    system.block_on(async move {
        let stats = Arc::new(IngestStats::default());
        let ingest = IngestConfig::default();
        let db_arbiter = Arbiter::new();
        let writer_stats = stats.clone();
        let batch = (
            ingest.batch_lines,
            Duration::from_millis(ingest.batch_millis),
        );
        let db_addr = DbActor::start_in_arbiter(&db_arbiter.handle(), move |_| {
            DbActor::new(conn, batch.0, batch.1, writer_stats)
        });
        let supervisor = Supervisor::new(
            ReadPool::new(path.clone()),
            Sink {
                db: db_addr.clone(),
                stats: stats.clone(),
            },
            ingest,
            MinerSettings::default(),
        )
        .start();
        actix_rt::time::sleep(Duration::from_millis(1500)).await; // readers open their ports
        let (t0, c0) = (Instant::now(), cpu_seconds());
        let counts =
            actix_rt::task::spawn_blocking(move || writers.go().map(|c| (c, writers))).await??;
        let total: u64 = counts.0.iter().sum();
        let counters = stats.clone();
        actix_rt::task::spawn_blocking(move || {
            wait_done(total, || {
                counters.written_lines.load(Ordering::Relaxed)
                    + counters.dropped_lines.load(Ordering::Relaxed)
            })
        })
        .await??;
        let m = Measurement {
            name: "shepherd (batched)",
            lines: total,
            seconds: t0.elapsed().as_secs_f64(),
            cpu_percent: 100.0 * (cpu_seconds() - c0) / t0.elapsed().as_secs_f64(),
            peak_rss_kib: peak_rss_kib(),
            dropped: stats.dropped_lines.load(Ordering::Relaxed),
        };
        let _ = supervisor.send(StopAll).await;
        drop(counts.1);
        db_arbiter.stop();
        Ok(m)
    })
}

/// The baseline: a thread per port, one INSERT and one commit per line.
fn run_naive(
    dir: &Path,
    miners_n: usize,
    seconds: u64,
    rate: Option<u64>,
) -> anyhow::Result<Measurement> {
    let path = dir.join("naive.db");
    let (mut conn, _) = db::open_writer(&path)?;
    let mut writers = Writers::spawn(miners_n, seconds, rate)?;
    let ids = miners::sync_demo(&mut conn, &writers.paths)?;
    drop(conn);
    let stop = Arc::new(AtomicBool::new(false));
    let stored = Arc::new(AtomicU64::new(0));
    let failed: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let mut threads = Vec::new();
    for (port, id) in writers.paths.clone().into_iter().zip(ids) {
        let (path, stop, stored, failed) =
            (path.clone(), stop.clone(), stored.clone(), failed.clone());
        threads.push(std::thread::spawn(move || -> anyhow::Result<()> {
            let (mut conn, _) = db::open_writer(&path)?;
            let mut port = serialport::new(&port, 115_200)
                .timeout(Duration::from_millis(100))
                .open()?;
            let mut framer = LineFramer::new(MAX_LINE_BYTES);
            let (mut buf, mut out) = (vec![0u8; 8192], Vec::new());
            let mut broken = false;
            while !stop.load(Ordering::Relaxed) {
                match port.read(&mut buf) {
                    Ok(n) => framer.push(&buf[..n], &mut out),
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
                    Err(e) => return Err(e.into()),
                }
                // Each line on its own, through the same storage as ingest (a row and its
                // span), committed at once: what a straightforward reader would do. After a
                // failure the port is still drained, so the simulators finish and the error
                // is reported instead of a hang.
                for line in out.drain(..) {
                    if broken {
                        continue;
                    }
                    let new = db::logs::NewLine {
                        ts: crate::clock::now_ms(),
                        text: &line.text,
                        truncated: line.truncated,
                    };
                    let result = conn
                        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                        .and_then(|tx| {
                            db::logs::append(&tx, &[(id, vec![new])])?;
                            tx.commit()
                        });
                    match result {
                        Ok(()) => {
                            stored.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            broken = true;
                            if let Ok(mut slot) = failed.lock() {
                                slot.get_or_insert(e.to_string());
                            }
                        }
                    }
                }
            }
            Ok(())
        }));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let (t0, c0) = (Instant::now(), cpu_seconds());
    let total: u64 = writers.go()?.iter().sum();
    if let Some(e) = failed.lock().ok().and_then(|f| f.clone()) {
        stop.store(true, Ordering::Relaxed);
        bail!("the naive baseline failed to store a line: {e}");
    }
    wait_done(total, || stored.load(Ordering::Relaxed))?;
    let m = Measurement {
        name: "naive (INSERT + commit per line)",
        lines: total,
        seconds: t0.elapsed().as_secs_f64(),
        cpu_percent: 100.0 * (cpu_seconds() - c0) / t0.elapsed().as_secs_f64(),
        peak_rss_kib: peak_rss_kib(),
        dropped: 0,
    };
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    Ok(m)
}

/// The `--flood` baseline: a batched reader in Python (`benches/batched_reader.py`, embedded
/// so an installed binary can run it), reading the same pseudo-terminals in the same run.
const PYTHON_READER: &str = include_str!("../../benches/batched_reader.py");

/// The Python batched reader on the same ports: its own figures (stored lines, seconds, CPU,
/// peak RSS of the python process).
fn run_python(dir: &Path, miners_n: usize, seconds: u64) -> anyhow::Result<Measurement> {
    let script = dir.join("batched_reader.py");
    std::fs::write(&script, PYTHON_READER)?;
    let mut writers = Writers::spawn(miners_n, seconds, None)?;
    let mut child = Command::new("python3")
        .arg(&script)
        .arg(dir.join("python.db"))
        .args(&writers.paths)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start python3 (the --flood baseline needs it)")?;
    let mut stdin = child.stdin.take().context("no stdin")?;
    let mut stdout = BufReader::new(child.stdout.take().context("no stdout")?);
    let mut line = String::new();
    stdout.read_line(&mut line)?;
    if line.trim() != "ready" {
        bail!("the python reader did not start: {line:?}");
    }
    stdin.write_all(b"go\n")?;
    stdin.flush()?;
    let total: u64 = writers.go()?.iter().sum();
    stdin.write_all(format!("total {total}\n").as_bytes())?;
    stdin.flush()?;
    line.clear();
    stdout.read_line(&mut line)?;
    let _ = child.wait();
    let v: serde_json::Value = serde_json::from_str(&line)
        .with_context(|| format!("the python reader printed {line:?}"))?;
    let num = |k: &str| v.get(k).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
    Ok(Measurement {
        name: "python (batched reader, raw lines only)",
        lines: total,
        seconds: num("seconds"),
        cpu_percent: num("cpu_percent"),
        peak_rss_kib: num("peak_rss_kib") as u64,
        dropped: total.saturating_sub(num("stored") as u64),
    })
}

/// Runs shepherd's path and a baseline (the naive one; with `flood`, the Python batched
/// reader instead) and prints a Markdown table.
pub fn ingest(
    miners_n: usize,
    seconds: u64,
    rate: Option<u64>,
    naive: bool,
    flood: bool,
) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    let what = match rate {
        Some(r) => format!("{r} bytes/s per miner"),
        None => "as fast as the pseudo-terminals go".into(),
    };
    println!("ingest benchmark: {miners_n} miner(s), {seconds} s of writing, {what}");
    let mut results = vec![run_shepherd(&dir, miners_n, seconds, rate)?];
    if flood {
        results.push(run_python(&dir, miners_n, seconds)?);
    } else if naive {
        results.push(run_naive(&dir, miners_n, seconds, rate)?);
    }
    println!(
        "| path | miners | lines written | stored/s | dropped | CPU % of one core | peak RSS MiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for m in &results {
        println!(
            "| {} | {miners_n} | {} | {:.0} | {} | {:.1} | {:.1} |",
            m.name,
            m.lines,
            m.stored_per_sec(),
            m.dropped,
            m.cpu_percent,
            m.peak_rss_kib as f64 / 1024.0
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("shepherd-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The hidden child: N pseudo-terminals printing NerdMiner output. Prints the slave paths,
/// waits for "go", writes for `seconds`, prints the per-miner line counts, waits for "quit".
pub fn sim_writer(miners_n: usize, seconds: u64, rate: Option<u64>) -> anyhow::Result<()> {
    let ptys: Vec<crate::sim::pty::Pty> = (0..miners_n)
        .map(|_| crate::sim::pty::Pty::open())
        .collect::<Result<_, _>>()?;
    let mut out = std::io::stdout();
    for p in &ptys {
        writeln!(out, "{}", p.path.display())?;
    }
    out.flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let handles: Vec<_> = ptys
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut master = p.master.try_clone()?;
            Ok(std::thread::spawn(move || {
                write_for(&mut master, i as u64, deadline, rate)
            }))
        })
        .collect::<std::io::Result<_>>()?;
    let counts: Vec<String> = handles
        .into_iter()
        .map(|h| h.join().unwrap_or(0).to_string())
        .collect();
    writeln!(out, "{}", counts.join(" "))?;
    out.flush()?;
    line.clear();
    std::io::stdin().read_line(&mut line)?;
    drop(ptys);
    Ok(())
}

/// Writes realistic output until `deadline`; returns the number of lines.
fn write_for(master: &mut std::fs::File, seed: u64, deadline: Instant, rate: Option<u64>) -> u64 {
    let mut sim = SimMiner::new(seed, Board::NoDisplay);
    let mut text = String::new();
    for _ in 0..200 {
        for l in sim.tick() {
            text.push_str(&l);
            text.push_str("\r\n");
        }
    }
    let bytes = text.as_bytes();
    let (mut written_bytes, start) = (0u64, Instant::now());
    let mut lines = 0u64;
    let chunk = 512;
    let mut pos = 0;
    while Instant::now() < deadline {
        if let Some(rate) = rate {
            let allowed = (start.elapsed().as_secs_f64() * rate as f64) as u64;
            if written_bytes >= allowed {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
        }
        // Write whole lines only, so the count is exact; slow rates write line by line.
        let chunk = if rate.is_some_and(|r| r < 4096) {
            1
        } else {
            chunk
        };
        let end = (pos + chunk).min(bytes.len());
        let end = bytes[end..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| end + i + 1);
        if master.write_all(&bytes[pos..end]).is_err() {
            break;
        }
        lines += bytes[pos..end].iter().filter(|&&b| b == b'\n').count() as u64;
        written_bytes += (end - pos) as u64;
        pos = if end >= bytes.len() { 0 } else { end };
    }
    lines
}

/// Fills a database like a herd of `miners` after a long run: `log_rows` raw lines, 30 days
/// of per-minute history and a summary per miner.
pub fn generate_herd_db(path: &Path, miners_n: usize, log_rows: u64) -> anyhow::Result<()> {
    let (mut conn, _) = db::open_writer(path)?;
    let now = crate::clock::now_ms();
    let tx = conn.transaction()?;
    {
        let mut m =
            tx.prepare("INSERT INTO miners (id, name, port, kind) VALUES (?1, ?2, ?3, 'serial')")?;
        let mut s = tx.prepare(
            "INSERT INTO miner_summary (miner_id, link_state, last_seen, hashrate_khs, hashrate_avg_24h,
               shares, accepted, temperature, best_diff, uptime_secs, firmware)
             VALUES (?1, 'connected', ?2, 50.0, 49.5, 12, 12, 47.0, 0.5, 3600, 'V1.8.3')",
        )?;
        for i in 1..=miners_n as i64 {
            m.execute(rusqlite::params![
                i,
                format!("miner-{i:03}"),
                format!("/dev/ttyUSB{i}")
            ])?;
            s.execute(rusqlite::params![i, now])?;
        }
        let mut minute = tx.prepare(
            "INSERT INTO miner_minutes (miner_id, minute, hashrate_khs, temperature, shares, samples)
             VALUES (?1, ?2, ?3, ?4, 0, 60)",
        )?;
        let first_minute = now / 1000 / 60 * 60 - 30 * 86_400;
        for i in 1..=miners_n as i64 {
            for k in 0..30 * 1440 {
                minute.execute(rusqlite::params![
                    i,
                    first_minute + k * 60,
                    45.0 + (k % 10) as f64,
                    47.0
                ])?;
            }
        }
        // As ingest writes them: commits of 90 lines per miner (a quarter second at full
        // baud), each miner's lines under consecutive ids.
        const LINES_PER_COMMIT: u64 = 90;
        let per_ms = (7 * 86_400_000) as f64 / log_rows.max(1) as f64;
        let text = ">>> Completed 1 share(s), 123456 Khashes, avg. hashrate 50.12 KH/s";
        let mut n = 0;
        while n < log_rows {
            let ts = now - 7 * 86_400_000 + (n as f64 * per_ms) as i64;
            let mut groups = Vec::with_capacity(miners_n);
            for miner in 1..=miners_n as i64 {
                let k = LINES_PER_COMMIT.min(log_rows - n);
                n += k;
                let line = db::logs::NewLine {
                    ts,
                    text,
                    truncated: false,
                };
                groups.push((miner, vec![line; k as usize]));
            }
            db::logs::append(&tx, &groups)?;
        }
    }
    tx.commit()?;
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

/// p50/p99 of `requests` sequential GETs of `url` (ms), or None when the route answers 404.
fn latency(agent: &ureq::Agent, url: &str, requests: usize) -> anyhow::Result<Option<(f64, f64)>> {
    let mut times = Vec::with_capacity(requests);
    for _ in 0..requests {
        let t = Instant::now();
        let mut resp = agent.get(url).call()?;
        let status = resp.status().as_u16();
        let _ = resp.body_mut().read_to_vec()?;
        if status == 404 {
            return Ok(None);
        }
        if status != 200 {
            bail!("{url} answered {status}");
        }
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok(Some((percentile(&times, 0.5), percentile(&times, 0.99))))
}

/// `shepherd bench api`: latency of the herd document and of a 24-h history request against
/// a generated database, through the real server on loopback.
pub fn api(miners_n: usize, log_rows: u64, requests: usize) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    let path = dir.join("api.db");
    let t = Instant::now();
    generate_herd_db(&path, miners_n, log_rows)?;
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let db_bytes = size(&path) + size(&path.with_extension("db-wal"));
    println!(
        "api benchmark: {miners_n} miners, {log_rows} log rows, 30 days of minutes; generated in {:.0} s; database {:.0} MiB",
        t.elapsed().as_secs_f64(),
        db_bytes as f64 / 1048576.0
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = dir.join("bench.toml");
    std::fs::write(
        &config,
        "[price]\nenabled = false\n[network]\nenabled = false\n[discovery]\nenabled = false\n",
    )?;
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(["run", "--config"])
        .arg(&config)
        .arg("--database")
        .arg(&path)
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .stderr(Stdio::null())
        .spawn()?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let base = format!("http://127.0.0.1:{port}");
    let up = Instant::now();
    while agent.get(&format!("{base}/healthz")).call().is_err() {
        if up.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            bail!("server did not start");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let herd = latency(&agent, &format!("{base}/api/herd_data"), requests);
    let history = latency(
        &agent,
        &format!("{base}/api/miners/1/history?range=24h"),
        requests / 4,
    );
    // A miner's newest raw lines, and a page from the middle of the week.
    let newest_logs = "/api/miners/1/logs?limit=200".to_string();
    let older_logs = format!("/api/miners/50/logs?limit=200&before={}", log_rows / 2);
    for url in [&newest_logs, &older_logs] {
        // A fast answer only counts if it is the whole page.
        let text = agent
            .get(&format!("{base}{url}"))
            .call()?
            .body_mut()
            .read_to_string()?;
        let body: serde_json::Value = serde_json::from_str(&text)?;
        let n = body["lines"].as_array().map_or(0, Vec::len);
        if n != 200 {
            let _ = child.kill();
            bail!("{url} returned {n} lines, not 200");
        }
    }
    let newest = latency(&agent, &format!("{base}{newest_logs}"), requests / 4);
    let older = latency(&agent, &format!("{base}{older_logs}"), requests / 4);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    println!("| request | p50 ms | p99 ms |");
    println!("|---|---:|---:|");
    for (name, r) in [
        ("/api/herd_data", herd?),
        ("/api/miners/1/history?range=24h", history?),
        (newest_logs.as_str(), newest?),
        (older_logs.as_str(), older?),
    ] {
        match r {
            Some((p50, p99)) => println!("| {name} | {p50:.2} | {p99:.2} |"),
            None => println!("| {name} | (route not available) | |"),
        }
    }
    Ok(())
}
