//! Alerts end to end on 127.0.0.1: webhook and ntfy deliveries (with retries and a full
//! queue) against a recording HTTP server, `/api/alerts` and `/metrics` from a running
//! `shepherd run --demo`, and MQTT / Home Assistant against a real mosquitto broker started by
//! the test (skipped, saying so, when mosquitto is not installed).

mod common;

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{free_port, Running, OFFLINE_PRICE_CONFIG};
use shepherd::alerts::notify::{Destination, Notifier, NotifyStats, RetryPolicy};
use shepherd::model::alert::{Notice, NoticeKind, Rule, Severity};

/// One request as the recording server saw it.
#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: String,
}

/// A loopback HTTP server that records every request (with headers and body) and answers
/// from a script of statuses (200 once the script is used up).
struct Recorder {
    port: u16,
    seen: Arc<Mutex<Vec<Recorded>>>,
}

impl Recorder {
    fn start(script: &[u16]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
        let s = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                serve(stream, &s, &script);
            }
        });
        Recorder { port, seen }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn wait_for(&self, n: usize) -> Vec<Recorded> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            let seen = self.seen.lock().unwrap().clone();
            if seen.len() >= n {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("expected {n} requests, got {:?}", self.seen.lock().unwrap());
    }
}

fn serve(mut stream: TcpStream, seen: &Mutex<Vec<Recorded>>, script: &Mutex<VecDeque<u16>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let mut lines = head.lines();
    let first: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while data.len() < head_end + len {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
    seen.lock().unwrap().push(Recorded {
        method: first.first().unwrap_or(&"").to_string(),
        path: first.get(1).unwrap_or(&"").to_string(),
        headers,
        body: String::from_utf8_lossy(&data[head_end..]).to_string(),
    });
    let status = script.lock().unwrap().pop_front().unwrap_or(200);
    let _ = stream.write_all(
        format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
    );
}

fn notice(rule: Rule, kind: NoticeKind) -> Notice {
    Notice {
        miner_id: 4,
        miner: "desk-1".into(),
        rule,
        kind,
        severity: if rule == Rule::BlockFound {
            Severity::Celebrate
        } else {
            Severity::Warning
        },
        message: "desk-1 is at 75.0 °C (limit 70.0 °C)".into(),
        at: 1_700_000_000_000,
    }
}

fn fast_retries(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        attempts,
        initial: Duration::from_millis(50),
        max: Duration::from_millis(200),
    }
}

#[test]
fn webhook_posts_json_and_retries_after_failures() {
    let server = Recorder::start(&[500, 503]);
    let stats = Arc::new(NotifyStats::default());
    let mut n = Notifier::start(
        vec![Destination::Webhook {
            url: format!("{}/hook", server.url()),
            token: "s3cret".into(),
        }],
        fast_retries(5),
        10,
        Duration::from_secs(2),
        stats.clone(),
    );
    n.notify(&notice(Rule::Temperature, NoticeKind::Fired));
    let seen = server.wait_for(3);
    for r in &seen {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/hook"));
        assert_eq!(r.headers["content-type"], "application/json");
        assert_eq!(r.headers["authorization"], "Bearer s3cret");
    }
    let v: serde_json::Value = serde_json::from_str(&seen[2].body).unwrap();
    assert_eq!(v["event"], "fired");
    assert_eq!(v["rule"], "temperature");
    assert_eq!(v["miner"], "desk-1");
    assert_eq!(v["miner_id"], 4);
    assert_eq!(v["message"], "desk-1 is at 75.0 °C (limit 70.0 °C)");
    let start = Instant::now();
    while stats.sent.load(Ordering::SeqCst) < 1 && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(stats.sent.load(Ordering::SeqCst), 1);
    assert_eq!(stats.failed_attempts.load(Ordering::SeqCst), 2);
    n.stop();
}

#[test]
fn webhook_gives_up_after_its_attempts() {
    let server = Recorder::start(&[500, 500, 500, 500]);
    let stats = Arc::new(NotifyStats::default());
    let mut n = Notifier::start(
        vec![Destination::Webhook {
            url: server.url(),
            token: String::new(),
        }],
        fast_retries(3),
        10,
        Duration::from_secs(2),
        stats.clone(),
    );
    n.notify(&notice(Rule::Offline, NoticeKind::Fired));
    let seen = server.wait_for(3);
    assert!(!seen[0].headers.contains_key("authorization"));
    let start = Instant::now();
    while stats.given_up.load(Ordering::SeqCst) < 1 && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(stats.given_up.load(Ordering::SeqCst), 1);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(server.seen.lock().unwrap().len(), 3, "no fourth attempt");
    n.stop();
}

#[test]
fn ntfy_posts_to_the_topic_with_title_priority_and_tags() {
    let server = Recorder::start(&[]);
    let stats = Arc::new(NotifyStats::default());
    let mut n = Notifier::start(
        vec![Destination::Ntfy {
            url: format!("{}/herd-alerts", server.url()),
            token: String::new(),
        }],
        fast_retries(2),
        10,
        Duration::from_secs(2),
        stats,
    );
    n.notify(&notice(Rule::BlockFound, NoticeKind::Fired));
    n.notify(&notice(Rule::Temperature, NoticeKind::Resolved));
    let seen = server.wait_for(2);
    assert_eq!(seen[0].path, "/herd-alerts");
    assert_eq!(seen[0].headers["title"], "desk-1: BLOCK FOUND");
    assert_eq!(seen[0].headers["priority"], "max");
    assert_eq!(seen[0].headers["tags"], "tada,moneybag");
    assert_eq!(seen[0].body, "desk-1 is at 75.0 °C (limit 70.0 °C)");
    assert_eq!(seen[1].headers["title"], "desk-1: running hot resolved");
    assert_eq!(seen[1].headers["priority"], "default");
    n.stop();
}

#[test]
fn a_full_queue_drops_the_oldest_and_never_blocks() {
    // Nothing listens there: the first delivery fails and waits out a long backoff while
    // more notices arrive.
    let stats = Arc::new(NotifyStats::default());
    let mut n = Notifier::start(
        vec![Destination::Webhook {
            url: format!("http://127.0.0.1:{}/", free_port()),
            token: String::new(),
        }],
        RetryPolicy {
            attempts: 3,
            initial: Duration::from_secs(30),
            max: Duration::from_secs(30),
        },
        2,
        Duration::from_secs(1),
        stats.clone(),
    );
    n.notify(&notice(Rule::Offline, NoticeKind::Fired));
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    for _ in 0..5 {
        n.notify(&notice(Rule::Offline, NoticeKind::Repeat));
    }
    // Blocking would mean waiting out the 30 s backoff; 2 s leaves room for a loaded machine.
    assert!(start.elapsed() < Duration::from_secs(2), "notify blocked");
    assert_eq!(stats.dropped.load(Ordering::SeqCst), 3);
    // Stopping does not wait out the backoff.
    let start = Instant::now();
    n.stop();
    assert!(start.elapsed() < Duration::from_secs(5));
}

/// `shepherd run --demo 2` with alert thresholds every demo miner trips, and a webhook.
#[test]
fn running_program_shows_alerts_notifies_and_serves_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Recorder::start(&[]);
    let extra = format!(
        "{OFFLINE_PRICE_CONFIG}[alerts]\ninterval_secs = 1\ntemperature_above_c = 0.0\n\
         [[notify]]\nkind = \"webhook\"\nurl = \"{}/hook\"\n",
        hook.url()
    );
    let mut run = Running::start_with(dir.path(), &extra, &["--demo", "2"]);
    run.wait_up();
    let v = run.wait_json("/api/alerts", Duration::from_secs(40), |v| {
        v["active"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["rule"] == "temperature"))
    });
    let active = &v["active"].as_array().unwrap()[0];
    assert_eq!(active["state"], "active");
    assert!(active["miner"].as_str().unwrap().starts_with("demo-"));
    assert!(!v["history"].as_array().unwrap().is_empty());
    let seen = hook.wait_for(1);
    let body: serde_json::Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(body["event"], "fired");

    let (status, text) = run.get("/metrics").unwrap();
    assert_eq!(status, 200);
    let scrape = parse_metrics(&text);
    let has = |name: &str, miner: &str| {
        scrape
            .samples
            .iter()
            .any(|s| s.metric == name && s.labels.get("miner") == Some(miner))
    };
    assert!(has("shepherd_miner_up", "demo-1"), "{text}");
    assert!(
        has("shepherd_miner_shares_accepted_total", "demo-2"),
        "{text}"
    );
    for name in [
        "shepherd_ingest_queued_lines",
        "shepherd_ingest_dropped_lines_total",
        "shepherd_db_size_bytes",
        "shepherd_alerts_active",
    ] {
        assert!(
            scrape.samples.iter().any(|s| s.metric == name),
            "{name}\n{text}"
        );
    }
    let db = scrape
        .samples
        .iter()
        .find(|s| s.metric == "shepherd_db_size_bytes" && s.labels.get("file") == Some("db"))
        .unwrap();
    assert!(matches!(db.value, prometheus_parse::Value::Gauge(b) if b > 0.0));

    let (status, health) = run.get("/healthz.json").unwrap();
    assert_eq!(status, 200);
    let h: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["miners"], 2);
    let (status, page) = run.get("/").unwrap();
    assert_eq!(status, 200);
    assert!(
        page.contains("id=\"alerts\""),
        "the dashboard has an alerts panel"
    );
    run.terminate();
}

fn parse_metrics(text: &str) -> prometheus_parse::Scrape {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text")
}

#[test]
fn metrics_with_awkward_names_still_parse() {
    use shepherd::herd::MinerView;
    use shepherd::model::status::Status;
    let mk = |id, name: &str| MinerView {
        id,
        name: name.into(),
        port: "/dev/x".into(),
        kind: "serial".into(),
        status: Status::Online,
        status_detail: None,
        last_seen: Some(1),
        hashrate_khs: Some(51.25),
        hashrate_avg_10m: None,
        hashrate_avg_1h: None,
        hashrate_avg_24h: None,
        shares: 3,
        accepted: 3,
        rejected: 1,
        best_diff: Some(0.5),
        best_diff_session: None,
        blocks_found: 0,
        temperature: None,
        temp_max_24h: None,
        uptime_secs: Some(10),
        restarts: 2,
        pool: None,
        firmware: None,
        lines_total: 10,
        lines_dropped: 0,
        lines_truncated: 1,
        shares_last_hour: 0,
        odds: None,
        lottery: None,
        fleet: Default::default(),
        time_mining_secs: None,
        stats_restored: None,
        shares_meaning: None,
        blocks_reported: None,
        temperature_no_sensor: false,
        firmware_family: None,
        display: None,
        reboots_last_hour: 0,
        diagnosis: Default::default(),
    };
    let miners = vec![
        mk(1, "desk \"big\" one"),
        mk(2, "back\\slash"),
        mk(3, "two\nlines"),
    ];
    let text = shepherd::metrics::render(&shepherd::metrics::Scrape {
        miners: &miners,
        ingest: &shepherd::db::IngestStats::default().snapshot(),
        db_bytes: (8192, 4096),
        alerts_active: 1,
        notify: &NotifyStats::default(),
    });
    let scrape = parse_metrics(&text);
    let hashrate: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "shepherd_miner_hashrate_khs")
        .collect();
    assert_eq!(hashrate.len(), 3, "{text}");
    let names: Vec<&str> = hashrate
        .iter()
        .map(|s| s.labels.get("miner").unwrap())
        .collect();
    assert!(
        names.contains(&r#"desk \"big\" one"#) || names.contains(&"desk \"big\" one"),
        "{names:?}"
    );
    // Every sample line is `name{labels} value` with a finite number or a Prometheus special.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(
            value.parse::<f64>().is_ok() || ["NaN", "+Inf", "-Inf"].contains(&value),
            "{line}"
        );
    }
    // No temperature sample for miners that do not report one.
    assert!(!scrape
        .samples
        .iter()
        .any(|s| s.metric == "shepherd_miner_temperature_celsius"));
}

/// A mosquitto broker on a free loopback port, stopped when dropped.
struct Broker {
    child: Child,
    port: u16,
}

impl Broker {
    /// None (after saying why) when mosquitto is not installed.
    fn start(dir: &Path) -> Option<Broker> {
        let bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .map(str::to_owned)
            .or_else(|| {
                Command::new("mosquitto")
                    .arg("-h")
                    .output()
                    .ok()
                    .map(|_| "mosquitto".to_owned())
            });
        let Some(bin) = bin else {
            eprintln!("SKIPPED: mosquitto is not installed (apt-get install mosquitto); the MQTT test did not run");
            return None;
        };
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )
        .unwrap();
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "mosquitto did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Broker { child, port })
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Messages (topic, payload, retained) seen by a subscriber to `filters`.
struct Subscriber {
    seen: Arc<Mutex<Vec<(String, String, bool)>>>,
}

impl Subscriber {
    fn start(port: u16, filters: &[&str]) -> Self {
        use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
        let mut opts = MqttOptions::new(format!("test-sub-{}", free_port()), "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(5));
        opts.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut conn) = Client::new(opts, 100);
        for f in filters {
            client.subscribe(*f, QoS::AtLeastOnce).unwrap();
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        std::thread::spawn(move || {
            let _keep = client;
            for ev in conn.iter() {
                match ev {
                    Ok(Event::Incoming(Packet::Publish(p))) => s.lock().unwrap().push((
                        p.topic.clone(),
                        String::from_utf8_lossy(&p.payload).to_string(),
                        p.retain,
                    )),
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        Subscriber { seen }
    }

    fn wait(
        &self,
        what: &str,
        pred: impl Fn(&(String, String, bool)) -> bool,
    ) -> (String, String, bool) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(40) {
            if let Some(m) = self.seen.lock().unwrap().iter().find(|m| pred(m)) {
                return m.clone();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let topics: Vec<String> = self
            .seen
            .lock()
            .unwrap()
            .iter()
            .map(|m| m.0.clone())
            .collect();
        panic!("no MQTT message: {what}; saw topics {topics:?}");
    }
}

#[test]
fn mqtt_publishes_discovery_state_availability_and_last_will() {
    let dir = tempfile::tempdir().unwrap();
    let Some(broker) = Broker::start(dir.path()) else {
        return;
    };
    let extra = format!(
        "{OFFLINE_PRICE_CONFIG}[mqtt]\nenabled = true\nhost = \"127.0.0.1\"\nport = {}\n\
         topic_prefix = \"herdtest\"\ndiscovery_prefix = \"ha\"\ninterval_secs = 1\n\
         [site]\nname = \"barn\"\n",
        broker.port
    );
    let mut run = Running::start_with(dir.path(), &extra, &["--demo", "1"]);
    run.wait_up();
    let sub = Subscriber::start(broker.port, &["herdtest/#", "ha/#"]);

    let (config_topic, payload, _) = sub.wait("hashrate discovery", |m| {
        m.0.starts_with("ha/sensor/shepherd_miner_") && m.0.ends_with("/hashrate/config")
    });
    // Live deliveries never carry the retain flag; a later subscriber shows it was retained.
    let late = Subscriber::start(broker.port, &[config_topic.as_str()]);
    assert!(late.wait("retained discovery", |m| m.0 == config_topic).2);
    let config: serde_json::Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(config["device"]["name"], "demo-1");
    assert_eq!(config["availability_topic"], "herdtest/barn/status");
    assert_eq!(config["unit_of_measurement"], "kH/s");
    let state_topic = config["state_topic"].as_str().unwrap().to_owned();
    assert!(
        state_topic.starts_with("herdtest/barn/miners/"),
        "{state_topic}"
    );
    sub.wait("the herd device", |m| {
        m.0 == "ha/sensor/shepherd_herd/hashrate/config"
    });

    let (_, state, _) = sub.wait("a miner state with a hashrate", |m| {
        m.0 == state_topic
            && serde_json::from_str::<serde_json::Value>(&m.1)
                .is_ok_and(|v| v["status"] == "online" && v["hashrate"].is_number())
    });
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["name"], "demo-1");
    assert!(state.get("shares_accepted").is_some() && state.get("best_difficulty").is_some());
    sub.wait("herd totals", |m| {
        m.0 == "herdtest/barn/herd/state"
            && serde_json::from_str::<serde_json::Value>(&m.1).is_ok_and(|v| v["miners"] == 1)
    });
    let late = Subscriber::start(broker.port, &["herdtest/barn/status"]);
    let (_, online, retained) = late.wait("availability online", |m| m.0 == "herdtest/barn/status");
    assert_eq!((online.as_str(), retained), ("online", true));

    // Killed without a goodbye: the broker publishes the last will.
    let mut child = run.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    sub.wait("the last will", |m| {
        m.0 == "herdtest/barn/status" && m.1 == "offline"
    });
    // And it is retained: a subscriber arriving later sees "offline" at once.
    let late = Subscriber::start(broker.port, &["herdtest/barn/status"]);
    let (_, v, retained) = late.wait("retained offline", |m| m.0 == "herdtest/barn/status");
    assert_eq!((v.as_str(), retained), ("offline", true));
}

#[test]
fn mqtt_says_offline_on_a_clean_stop() {
    let dir = tempfile::tempdir().unwrap();
    let Some(broker) = Broker::start(dir.path()) else {
        return;
    };
    let extra = format!(
        "{OFFLINE_PRICE_CONFIG}[mqtt]\nenabled = true\nhost = \"127.0.0.1\"\nport = {}\n\
         [site]\nname = \"shed\"\n",
        broker.port
    );
    let mut run = Running::start_with(dir.path(), &extra, &[]);
    run.wait_up();
    let sub = Subscriber::start(broker.port, &["shepherd/shed/status"]);
    sub.wait("online", |m| m.1 == "online");
    run.terminate();
    sub.wait("offline after SIGTERM", |m| m.1 == "offline");
}

/// An alert active when the Shepherd stops is carried on after a restart: still active, and
/// not sent again.
#[test]
fn active_alerts_survive_a_restart_without_being_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Recorder::start(&[]);
    let extra = format!(
        "{OFFLINE_PRICE_CONFIG}[alerts]\ninterval_secs = 1\ntemperature_above_c = 0.0\n\
         [[notify]]\nkind = \"webhook\"\nurl = \"{}/hook\"\n",
        hook.url()
    );
    let temperature_alerts = |v: &serde_json::Value| {
        v["active"]
            .as_array()
            .map(|a| a.iter().filter(|x| x["rule"] == "temperature").count())
            .unwrap_or(0)
    };
    let mut run = Running::start_with(dir.path(), &extra, &["--demo", "2"]);
    run.wait_up();
    let first = run.wait_json("/api/alerts", Duration::from_secs(40), |v| {
        temperature_alerts(v) > 0
    });
    let ids: Vec<i64> = first["active"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_i64().unwrap())
        .collect();
    run.terminate();
    let sent_before = hook.seen.lock().unwrap().len();

    let mut run = Running::start_with(dir.path(), &extra, &["--demo", "2"]);
    run.wait_up();
    // Several evaluations with the condition still holding.
    std::thread::sleep(Duration::from_secs(4));
    let v = run.wait_json("/api/alerts", Duration::from_secs(10), |_| true);
    let still: Vec<i64> = v["active"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_i64().unwrap())
        .collect();
    for id in &ids {
        assert!(still.contains(id), "alert {id} carried on: {v:#}");
    }
    let fired_again = hook.seen.lock().unwrap()[sent_before..]
        .iter()
        .filter(|r| r.body.contains("\"temperature\"") && r.body.contains("\"fired\""))
        .count();
    assert_eq!(fired_again, 0, "no temperature alert is sent twice");
    run.terminate();
}
