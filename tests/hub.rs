//! Several sites in one view, end to end on 127.0.0.1: Shepherds with demo herds publish to
//! their own mosquitto, each bridged (as `packaging/mosquitto-bridge.conf` does, without TLS)
//! to a central mosquitto, and a `shepherd run --hub` reads the central one.
//!
//! Skipped, saying so, when mosquitto is not installed — except with `CI=true`, where that is
//! a failure (CI installs it).

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::mosquitto::{mosquitto, Broker};
use common::{free_port, Running, OFFLINE_PRICE_CONFIG};
use serde_json::Value;

/// A Shepherd of site `site` publishing to the broker on `port` every second.
fn site_config(site: &str, port: u16, extra: &str) -> String {
    format!(
        "{OFFLINE_PRICE_CONFIG}[mqtt]\nenabled = true\nhost = \"127.0.0.1\"\nport = {port}\n\
         interval_secs = 1\n[site]\nname = \"{site}\"\n{extra}"
    )
}

/// A hub on the central broker.
fn start_hub(dir: &Path, central: u16) -> Running {
    let run = Running::start_with(
        dir,
        &site_config("central", central, "[hub]\nstale_secs = 60\n"),
        &["--hub"],
    );
    run.wait_up();
    run
}

fn site<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v["sites"].as_array()?.iter().find(|s| s["site"] == name)
}

fn miners_of(v: &Value, name: &str) -> usize {
    v["miners"]
        .as_array()
        .map(|a| a.iter().filter(|m| m["site"] == name).count())
        .unwrap_or(0)
}

#[test]
fn the_hub_sees_both_sites_a_killed_one_goes_offline_and_retained_state_survives_a_restart() {
    let Some(bin) = mosquitto() else { return };
    let dir = tempfile::tempdir().unwrap();
    let central = Broker::start(&bin, dir.path(), "central", None);
    let broker_a = Broker::start(&bin, dir.path(), "alpha", Some(central.port));
    let broker_b = Broker::start(&bin, dir.path(), "beta", Some(central.port));
    let (da, db, dh) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("h"),
    );
    for d in [&da, &db, &dh] {
        std::fs::create_dir_all(d).unwrap();
    }
    let a_port = free_port();
    let alpha = Running::start_on(
        &da,
        a_port,
        &site_config(
            "alpha",
            broker_a.port,
            &format!("url = \"http://127.0.0.1:{a_port}\"\n"),
        ),
        &["--demo", "2"],
    );
    let mut beta = Running::start_with(
        &db,
        &site_config("beta", broker_b.port, ""),
        &["--demo", "1"],
    );
    alpha.wait_up();
    beta.wait_up();
    let hub = start_hub(&dh, central.port);

    let v = hub.wait_json("/api/hub", Duration::from_secs(60), |v| {
        site(v, "alpha").is_some_and(|s| s["freshness"] == "live")
            && site(v, "beta").is_some_and(|s| s["freshness"] == "live")
            && miners_of(v, "alpha") == 2
            && miners_of(v, "beta") == 1
    });
    // The hub's own site is not among the remote ones, and a site's link is what it published.
    assert!(site(&v, "central").is_none(), "{v:#}");
    assert_eq!(
        site(&v, "alpha").unwrap()["url"],
        format!("http://127.0.0.1:{a_port}")
    );
    assert_eq!(site(&v, "alpha").unwrap()["herd"]["miners"], 2);
    // The dashboard: a site column, a filter, and links to the miner's own Shepherd.
    let (_, page) = hub.get("/").unwrap();
    assert!(page.contains("id=\"hub-sites\""), "{page}");
    assert!(page.contains(&format!("href=\"http://127.0.0.1:{a_port}/miners/")));
    let (_, only_beta) = hub.get("/?site=beta").unwrap();
    // Miner rows of a live site carry no class; the sites table lists every site still.
    assert!(only_beta.contains("<tr data-site=\"beta\">"), "{only_beta}");
    assert!(
        !only_beta.contains("<tr data-site=\"alpha\">"),
        "{only_beta}"
    );
    // The herd document names this site.
    let herd = hub.wait_json("/api/herd_data", Duration::from_secs(10), |_| true);
    assert_eq!(herd["site"], "central");
    // Remote miners are no local miners: no actor, nothing in /api/herd_data.
    assert_eq!(herd["miners"].as_array().unwrap().len(), 0);
    // Their history is kept from what arrives.
    let beta_id = v["miners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["site"] == "beta")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let h = hub.wait_json(
        &format!("/api/hub/history?site=beta&miner={beta_id}"),
        Duration::from_secs(30),
        |h| {
            h["points"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p["hashrate"].is_number()))
        },
    );
    assert_eq!(h["points"][0]["status"], "online", "{h:#}");
    // The same as a page, linked from the dashboard's row.
    let (status, page) = hub
        .get(&format!("/hub/miner?site=beta&miner={beta_id}"))
        .unwrap();
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Hashrate") && page.contains("at beta"),
        "{page}"
    );
    assert!(
        page.contains("publishes no address"),
        "beta has no [site] url: {page}"
    );
    let (_, dash) = hub.get("/").unwrap();
    assert!(
        dash.contains(&format!("/hub/miner?site=beta&amp;miner={beta_id}")),
        "{dash}"
    );
    assert_eq!(hub.get("/hub/miner?site=nowhere&miner=1").unwrap().0, 404);

    // beta dies without a goodbye: its broker publishes the last will, bridged to the hub.
    let mut child = beta.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let v = hub.wait_json("/api/hub", Duration::from_secs(60), |v| {
        site(v, "beta").is_some_and(|s| s["freshness"] == "offline")
    });
    assert!(site(&v, "beta").unwrap()["age_secs"].as_i64().unwrap() >= 0);
    let (_, page) = hub.get("/?site=beta").unwrap();
    assert!(page.contains("site offline"), "{page}");
    assert!(page.contains("last heard"), "{page}");

    // A hub restarted on a new, empty database: what it knows of beta (dead, so publishing
    // nothing) can only come from the retained messages on the central broker.
    let mut hub = hub;
    hub.terminate();
    let dh2 = dir.path().join("h2");
    std::fs::create_dir_all(&dh2).unwrap();
    let hub2 = start_hub(&dh2, central.port);
    hub2.wait_json("/api/hub", Duration::from_secs(60), |v| {
        site(v, "beta").is_some_and(|s| s["freshness"] == "offline" && s["herd"]["miners"] == 1)
            && miners_of(v, "beta") == 1
            && site(v, "alpha").is_some_and(|s| s["freshness"] == "live")
            && miners_of(v, "alpha") == 2
    });
    drop(alpha);
}

/// Events seen by a subscriber on a broker: (kind, id) in arrival order.
fn watch_events(port: u16, filter: &str) -> Arc<Mutex<Vec<(String, i64)>>> {
    use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
    let mut opts = MqttOptions::new(format!("test-events-{}", free_port()), "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut conn) = Client::new(opts, 100);
    client.subscribe(filter, QoS::AtLeastOnce).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    std::thread::spawn(move || {
        let _keep = client;
        for ev in conn.iter() {
            match ev {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let v: Value = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                    if let (Some(k), Some(id)) = (v["kind"].as_str(), v["id"].as_i64()) {
                        s.lock().unwrap().push((k.to_owned(), id));
                    }
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    });
    seen
}

fn hub_events(db: &Path, site: &str) -> Vec<(String, i64)> {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    let mut stmt = c
        .prepare("SELECT kind, event_id FROM hub_events WHERE site = ?1")
        .unwrap();
    let rows = stmt
        .query_map([site], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    rows.map(Result::unwrap).collect()
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn events_published_while_the_bridge_is_down_arrive_when_it_is_back() {
    let Some(bin) = mosquitto() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut central = Broker::start(&bin, dir.path(), "central", None);
    let broker_a = Broker::start(&bin, dir.path(), "alpha", Some(central.port));
    let local = watch_events(broker_a.port, "shepherd/alpha/events/#");
    let (da, dh) = (dir.path().join("a"), dir.path().join("h"));
    std::fs::create_dir_all(&da).unwrap();
    std::fs::create_dir_all(&dh).unwrap();
    let hub = start_hub(&dh, central.port);
    // Three demo miners: their first shares are records, so events come often.
    let alpha = Running::start_with(
        &da,
        &site_config("alpha", broker_a.port, "[alerts]\ninterval_secs = 1\n"),
        &["--demo", "3"],
    );
    alpha.wait_up();
    wait_until(
        "the hub has an event of alpha",
        Duration::from_secs(90),
        || !hub_events(&hub.db, "alpha").is_empty(),
    );

    // The central broker goes away (saving its sessions); alpha goes on finding records.
    central.stop();
    assert!(
        dir.path().join("central/mosquitto.db").exists(),
        "the central broker saved its sessions"
    );
    let before = local.lock().unwrap().len();
    wait_until(
        "two events at alpha while the bridge is down",
        Duration::from_secs(120),
        || local.lock().unwrap().len() >= before + 2,
    );
    let during: Vec<(String, i64)> = local.lock().unwrap()[before..].to_vec();
    eprintln!("events during the outage: {during:?}");
    std::thread::sleep(Duration::from_secs(2));
    central.restart();

    // Queued on alpha's broker for the bridge, then on the central one for the hub's session.
    wait_until(
        "every event of the outage at the hub",
        Duration::from_secs(90),
        || {
            let got = hub_events(&hub.db, "alpha");
            during.iter().all(|e| got.contains(e))
        },
    );
    // And alpha is live again on the hub.
    hub.wait_json("/api/hub", Duration::from_secs(60), |v| {
        site(v, "alpha").is_some_and(|s| s["freshness"] == "live")
    });

    // The hub itself away for a while: its history has a gap there.
    let mut hub = hub;
    hub.terminate();
    std::thread::sleep(Duration::from_secs(2));
    let hub = start_hub(&dh, central.port);
    let v = hub.wait_json("/api/hub", Duration::from_secs(30), |v| {
        v["gaps"].as_array().is_some_and(|g| g.len() == 1)
    });
    let gap = &v["gaps"][0];
    assert!(
        gap[1].as_i64().unwrap() - gap[0].as_i64().unwrap() >= 2000,
        "{v:#}"
    );
    drop(alpha);
}

/// `shepherd bench hub` itself works on a small scale (its figures belong in
/// docs/BENCHMARKS.md, not here): every remote miner's last round reaches the hub.
#[test]
fn bench_hub_delivers_every_remote_miner() {
    if mosquitto().is_none() {
        return;
    }
    let out = Command::new(common::bin())
        .args([
            "bench",
            "hub",
            "--sites",
            "3",
            "--miners",
            "4",
            "--seconds",
            "3",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("| remote miners with their last round stored | 12 of 12 |"),
        "{text}"
    );
    let published: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("| messages published | "))
        .and_then(|v| v.trim_end_matches(" |").parse().ok())
        .unwrap();
    // At least one round of 3 × (4 miners + herd + event).
    assert!(published >= 18, "{text}");
}
