//! `shepherd bench hub`: a hub (`shepherd run --hub`, a child process) reading a mosquitto
//! on loopback while this process plays N sites × M miners publishing schema-1 documents
//! (one MQTT connection per site, as a bridge is, with its last will). Reports messages/s
//! published and taken by the hub, its CPU and peak memory, how long it needed to catch up
//! after the last round, and p50/p99 of `/api/hub` and `/api/herd_data` under that load.

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rumqttc::{Client, LastWill, MqttOptions, QoS};
use serde_json::json;

use crate::clock::now_ms;

/// One site's round at `at`: every miner's state, the herd, and an event.
fn round(client: &Client, site: &str, miners: usize, n: u64, at: i64) -> anyhow::Result<u64> {
    let mut sent = 0;
    for id in 1..=miners {
        // The fields of `crate::mqtt::miner_state` (schema 1).
        let doc = json!({
            "schema": 1, "site": site, "at": at, "id": id, "name": format!("{site}-m{id}"),
            "status": "online", "hashrate": 50.0 + (id as f64 + n as f64) % 7.0,
            "hashrate_avg_24h": 51.0, "temperature": 48.5, "shares_accepted": n,
            "shares_rejected": 0, "best_difficulty": 0.25, "blocks_found": 0,
            "uptime_secs": n * 10, "restarts": 0, "last_seen": at,
        });
        client.publish(
            format!("shepherd/{site}/miners/{id}/state"),
            QoS::AtLeastOnce,
            true,
            doc.to_string(),
        )?;
        sent += 1;
    }
    let herd = json!({"schema": 1, "site": site, "at": at, "hashrate": 50.0 * miners as f64,
                      "online": miners, "miners": miners, "shares": n, "best_difficulty": 0.25,
                      "blocks_found": 0});
    client.publish(
        format!("shepherd/{site}/herd/state"),
        QoS::AtLeastOnce,
        true,
        herd.to_string(),
    )?;
    let event = json!({"schema": 1, "site": site, "kind": "record", "id": n, "at": at,
                       "miner": format!("{site}-m1"), "difficulty": 0.5});
    client.publish(
        format!("shepherd/{site}/events/record"),
        QoS::AtLeastOnce,
        false,
        event.to_string(),
    )?;
    sent += 2;
    Ok(sent)
}

fn proc_cpu_secs(pid: u32) -> f64 {
    // utime and stime, fields 14 and 15 of /proc/<pid>/stat, in clock ticks (100 a second).
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1;
            let f: Vec<&str> = after.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0)
        })
        .unwrap_or(0.0)
}

fn proc_peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Runs the benchmark (see the module doc).
pub fn run(sites: usize, miners: usize, seconds: u64, interval_secs: u64) -> anyhow::Result<()> {
    let bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .context("mosquitto is not installed: apt-get install mosquitto")?;
    let dir = std::env::temp_dir().join(format!("shepherd-bench-hub-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let free = || -> anyhow::Result<u16> {
        Ok(std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port())
    };
    let (mqtt_port, web_port) = (free()?, free()?);
    let conf = dir.join("mosquitto.conf");
    // A central broker as packaging/mosquitto-central.conf sets it: a deep queue per client.
    std::fs::write(
        &conf,
        format!(
            "listener {mqtt_port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
             max_queued_messages 200000\nmax_inflight_messages 100\n"
        ),
    )?;
    let mut broker = Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let config = dir.join("hub.toml");
    std::fs::write(
        &config,
        format!(
            "[price]\nenabled = false\n[network]\nenabled = false\n[discovery]\nenabled = false\n\
             [mqtt]\nenabled = true\nhost = \"127.0.0.1\"\nport = {mqtt_port}\n\
             [site]\nname = \"bench-hub\"\n[hub]\nenabled = true\nstale_secs = 600\n"
        ),
    )?;
    let mut hub = Command::new(std::env::current_exe()?)
        .args(["run", "--hub", "--config"])
        .arg(&config)
        .arg("--database")
        .arg(dir.join("hub.db"))
        .args(["--bind", &format!("127.0.0.1:{web_port}")])
        .stderr(Stdio::null())
        .spawn()?;
    let result = measure(
        hub.id(),
        web_port,
        mqtt_port,
        sites,
        miners,
        seconds,
        interval_secs,
    );
    let _ = hub.kill();
    let _ = hub.wait();
    let _ = broker.kill();
    let _ = broker.wait();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn measure(
    hub_pid: u32,
    web_port: u16,
    mqtt_port: u16,
    sites: usize,
    miners: usize,
    seconds: u64,
    interval_secs: u64,
) -> anyhow::Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let base = format!("http://127.0.0.1:{web_port}");
    let up = Instant::now();
    while agent.get(&format!("{base}/healthz")).call().is_err() {
        if up.elapsed() > Duration::from_secs(30) {
            bail!("the hub did not start");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Let the hub subscribe before the first round.
    std::thread::sleep(Duration::from_secs(2));
    let cpu0 = proc_cpu_secs(hub_pid);
    let published = Arc::new(AtomicU64::new(0));
    // Each site's last round (Unix ms): caught up means every miner's document is that new.
    let last_round = Arc::new(std::sync::Mutex::new(vec![0i64; sites]));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut threads = Vec::new();
    for s in 1..=sites {
        let site = format!("site-{s:02}");
        let (published, stop, last) = (published.clone(), stop.clone(), last_round.clone());
        threads.push(std::thread::spawn(move || -> anyhow::Result<()> {
            let mut opts = MqttOptions::new(format!("bench-{site}"), "127.0.0.1", mqtt_port);
            opts.set_keep_alive(Duration::from_secs(30));
            opts.set_last_will(LastWill::new(
                format!("shepherd/{site}/status"),
                "offline",
                QoS::AtLeastOnce,
                true,
            ));
            let (client, mut conn) = Client::new(opts, 10_000);
            let pump = std::thread::spawn(move || {
                for ev in conn.iter() {
                    if ev.is_err() {
                        break;
                    }
                }
            });
            client.publish(
                format!("shepherd/{site}/status"),
                QoS::AtLeastOnce,
                true,
                "online",
            )?;
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let t = Instant::now();
                n += 1;
                let at = now_ms();
                published.fetch_add(round(&client, &site, miners, n, at)?, Ordering::Relaxed);
                if let Ok(mut l) = last.lock() {
                    l[s - 1] = at;
                }
                let wait = Duration::from_secs(interval_secs).saturating_sub(t.elapsed());
                std::thread::sleep(wait);
            }
            // Give the last round time to leave, then disconnect cleanly (no last will).
            std::thread::sleep(Duration::from_secs(1));
            let _ = client.disconnect();
            let _ = pump.join();
            Ok(())
        }));
    }
    // Latency of the hub's documents while the sites publish.
    let mut hub_ms = Vec::new();
    let mut herd_ms = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        for (url, into) in [("/api/hub", &mut hub_ms), ("/api/herd_data", &mut herd_ms)] {
            let t = Instant::now();
            let mut resp = agent.get(&format!("{base}{url}")).call()?;
            let mut sink = Vec::new();
            resp.body_mut().as_reader().read_to_end(&mut sink)?;
            if resp.status().as_u16() != 200 {
                bail!("{url} answered {}", resp.status());
            }
            into.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::SeqCst);
    let publish_secs = started.elapsed().as_secs_f64();
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("a publisher panicked"))??;
    }
    let sent = published.load(Ordering::Relaxed);
    // Caught up: every remote miner's document of its site's last round stored.
    let want = sites * miners;
    let last: std::collections::HashMap<String, i64> = last_round
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .iter()
        .enumerate()
        .map(|(i, at)| (format!("site-{:02}", i + 1), *at))
        .collect();
    let drain = Instant::now();
    let mut last_count;
    loop {
        let mut resp = agent.get(&format!("{base}/api/hub")).call()?;
        let mut text = String::new();
        resp.body_mut().as_reader().read_to_string(&mut text)?;
        let v: serde_json::Value = serde_json::from_str(&text)?;
        let fresh = |m: &serde_json::Value| {
            let site = m["site"].as_str().unwrap_or_default();
            m["at"].as_i64().unwrap_or(0) >= last.get(site).copied().unwrap_or(i64::MAX)
        };
        last_count = v["miners"]
            .as_array()
            .map_or(0, |a| a.iter().filter(|m| fresh(m)).count());
        let ok = last_count == want;
        if ok || drain.elapsed() > Duration::from_secs(120) {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let catch_up = drain.elapsed().as_secs_f64();
    let cpu = proc_cpu_secs(hub_pid) - cpu0;
    let elapsed = started.elapsed().as_secs_f64();
    let rss = proc_peak_rss_mib(hub_pid);
    hub_ms.sort_by(f64::total_cmp);
    herd_ms.sort_by(f64::total_cmp);
    let pct = |v: &[f64], p: f64| super::bench::percentile(v, p);
    println!(
        "hub benchmark: {sites} sites × {miners} miners, a round every {interval_secs} s for {seconds} s"
    );
    println!("| figure | value |");
    println!("|---|---:|");
    println!("| messages published | {sent} |");
    println!(
        "| messages/s published | {:.0} |",
        sent as f64 / publish_secs
    );
    println!("| remote miners with their last round stored | {last_count} of {want} |");
    println!("| catch-up after the last round (s) | {catch_up:.1} |");
    println!(
        "| hub CPU, % of one core (run + catch-up) | {:.1} |",
        cpu / elapsed * 100.0
    );
    println!("| hub peak RSS (MiB) | {rss:.1} |");
    println!(
        "| /api/hub p50 / p99 ms ({} requests) | {:.1} / {:.1} |",
        hub_ms.len(),
        pct(&hub_ms, 0.5),
        pct(&hub_ms, 0.99)
    );
    println!(
        "| /api/herd_data p50 / p99 ms ({} requests) | {:.1} / {:.1} |",
        herd_ms.len(),
        pct(&herd_ms, 0.5),
        pct(&herd_ms, 0.99)
    );
    if last_count != want {
        bail!("the hub stored the last round of {last_count} of {want} remote miners within 120 s");
    }
    Ok(())
}
