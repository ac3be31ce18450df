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
