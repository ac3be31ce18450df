//! The JSON API as dashboards use it: the documented shape of /api/herd_data (snapshot) and
//! live updates over /api/events.

mod common;

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use common::Running;

/// Every path in a JSON document with its type, arrays collapsed to their first element:
/// values change from run to run, the shape must not.
fn shape(v: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    use serde_json::Value;
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    out.push(format!("{path}: {kind}"));
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                shape(child, &format!("{path}.{k}"), out);
            }
        }
        Value::Array(a) => {
            if let Some(first) = a.first() {
                shape(first, &format!("{path}[]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn herd_data_shape_matches_the_snapshot_and_events_stream_live() {
    let dir = tempfile::tempdir().unwrap();
    let run = Running::start(dir.path(), &["--demo", "2"]);
    let herd = run.wait_json("/api/herd_data", Duration::from_secs(60), |v| {
        v["miners"].as_array().is_some_and(|m| {
            m.len() == 2
                && m.iter()
                    .all(|m| m["status"] == "online" && m["hashrate_avg_24h"].is_number())
                && m[0]["temperature"].is_number()
                && m[0]["uptime_secs"].is_number()
                // a share seen live: its record, luck and the herd's newest record are filled in
                && m[0]["lottery"]["luck_24h"]["luck"].is_number()
        }) && v["lottery"]["latest_record"].is_object()
            && v["lottery"]["latest_herd_record"].is_object()
            && v["lottery"]["luck_all"]["luck"].is_number()
    });
    // demo-1 is a board without a display: every field it can report is filled in.
    let mut doc = herd.clone();
    doc["miners"] = serde_json::Value::Array(vec![herd["miners"][0].clone()]);
    let mut lines = Vec::new();
    shape(&doc, "", &mut lines);
    let got = lines.join("\n") + "\n";
    let snapshot = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/snapshots/herd_data.shape"
    );
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(snapshot, &got).unwrap();
    }
    let want = std::fs::read_to_string(snapshot).unwrap_or_default();
    assert_eq!(
        got, want,
        "the /api/herd_data shape changed: update the README's description, then run with UPDATE_SNAPSHOTS=1"
    );

    // Server-sent events: the herd arrives, and again when it changes.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into();
    let mut resp = agent.get(&run.url("/api/events")).call().unwrap();
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let mut reader = BufReader::new(resp.body_mut().as_reader());
    let mut docs = Vec::new();
    let start = Instant::now();
    let mut line = String::new();
    while docs.len() < 2 && start.elapsed() < Duration::from_secs(20) {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(data) = line.strip_prefix("data: ") {
            docs.push(serde_json::from_str::<serde_json::Value>(data.trim_end()).unwrap());
        }
    }
    assert_eq!(docs.len(), 2, "expected two herd events");
    assert_eq!(docs[0]["miners"].as_array().unwrap().len(), 2);
    assert_ne!(
        docs[0]["miners"], docs[1]["miners"],
        "the second event carries new figures"
    );
}

/// `/api/records`: the herd's and each miner's tables from the demo herd's share lines, in
/// the same order as herd_data's; a test celebration needs a same-origin form post.
#[test]
fn records_api_and_the_test_celebration() {
    let dir = tempfile::tempdir().unwrap();
    let run = Running::start(dir.path(), &["--demo", "2"]);
    let doc = run.wait_json("/api/records", Duration::from_secs(60), |v| {
        v["miners"].as_array().is_some_and(|m| m.len() == 2)
            && v["herd"]["records"]
                .as_array()
                .is_some_and(|r| r.len() >= 2)
            && v["herd"]["histogram"]
                .as_array()
                .is_some_and(|h| !h.is_empty())
    });
    let herd: Vec<f64> = doc["herd"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["difficulty"].as_f64().unwrap())
        .collect();
    assert!(
        herd.windows(2).all(|w| w[0] >= w[1]),
        "best first: {herd:?}"
    );
    assert_eq!(doc["herd"]["best_share"].as_f64(), Some(herd[0]));
    // Each miner's records are its own, and the herd's best is the best of them.
    let mut best_of_miners: f64 = 0.0;
    for m in doc["miners"].as_array().unwrap() {
        for r in m["records"].as_array().unwrap() {
            assert_eq!(r["miner_id"], m["miner_id"]);
            assert_eq!(r["miner_key"], m["miner_key"]);
            best_of_miners = best_of_miners.max(r["difficulty"].as_f64().unwrap());
        }
    }
    assert_eq!(best_of_miners, herd[0]);
    let shares: i64 = doc["herd"]["histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["shares"].as_i64().unwrap())
        .sum();
    assert!(shares >= 2);
    assert!(doc["help"]["luck"].as_str().unwrap().contains("2³²"));
    // The pages that show them.
    let (status, page) = run.get("/kiosk/records").unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("k-rec-list") && page.contains("Herd best share"));
    let (_, clock) = run.get("/kiosk/clock?best=1").unwrap();
    assert!(
        clock.contains("k-bestline") && clock.contains("Herd best share"),
        "{clock}"
    );
    let (_, plain) = run.get("/kiosk/clock").unwrap();
    assert!(!plain.contains("k-bestline"));
    let id = doc["miners"][0]["miner_id"].as_i64().unwrap();
    let (_, miner) = run.get(&format!("/miners/{id}")).unwrap();
    assert!(miner.contains("histogram-svg") && miner.contains("Best shares and luck"));

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let other = agent
        .post(&run.url("/settings/celebration/test"))
        .header("Origin", "http://evil.example")
        .send_empty()
        .unwrap();
    assert_eq!(other.status(), 403);
    let herd = run.wait_json("/api/herd_data", Duration::from_secs(5), |_| true);
    assert!(herd["lottery"]["test_celebration_at"].is_null());
    let own = agent
        .post(&run.url("/settings/celebration/test"))
        .header("Origin", &run.url(""))
        .send_empty()
        .unwrap();
    assert_eq!(own.status(), 303);
    run.wait_json("/api/herd_data", Duration::from_secs(10), |v| {
        v["lottery"]["test_celebration_at"].is_number()
    });
}
