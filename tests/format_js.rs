//! `assets/format.js` (live updates in the browser) and `src/web/format.rs` (the first paint on
//! the server) must print every number the same way: this runs the script under Node.js with
//! the same inputs as the Rust functions and compares the text. Skips (and passes) where
//! `node` is not installed; CI has it.

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use shepherd::web::format;

/// (JS function, arguments, what the Rust function prints for them).
fn cases() -> Vec<(&'static str, Value, String)> {
    let mut out = Vec::new();
    let numbers = [
        None,
        Some(0.0),
        Some(0.04),
        Some(12.345),
        Some(999.94),
        Some(1000.0),
        Some(1234.567),
        Some(78_901.2),
        Some(4.2e6),
        Some(3.3e9),
        Some(6.1e12),
        Some(7.7e15),
        Some(9.1e18),
        // A 1.2 TH/s Bitaxe and a 300 KH/s NerdMiner in one table.
        Some(1.2e9),
        Some(300.0),
        Some(999_999.0),
    ];
    for v in numbers {
        out.push(("hashrate", json!([v]), format::hashrate(v)));
        out.push(("diff", json!([v]), format::difficulty(v)));
        out.push(("temp", json!([v]), format::temperature(v)));
        out.push(("price", json!([v, "USD"]), format::price(v, "USD")));
        out.push(("change", json!([v]), format::change(v)));
        out.push((
            "change",
            json!([v.map(|x| -x)]),
            format::change(v.map(|x| -x)),
        ));
    }
    for t in [Some(41.2), Some(-3.7), Some(87.9)] {
        out.push(("temp", json!([t]), format::temperature(t)));
    }
    for s in [
        None,
        Some(0),
        Some(59),
        Some(3_599),
        Some(86_399),
        Some(86_400),
        Some(1_234_567),
    ] {
        out.push(("uptime", json!([s]), format::uptime(s)));
    }
    for l in [
        None,
        Some(0.0),
        Some(0.004),
        Some(0.526),
        Some(1.0),
        Some(2.449),
        Some(9.96),
        Some(67.94),
        Some(1234.5),
    ] {
        out.push(("luck", json!([l]), format::luck(l)));
        out.push(("flips", json!([l]), format::flips(l)));
    }
    out
}

#[test]
fn format_js_prints_what_format_rs_prints() {
    if Command::new("node").arg("--version").output().is_err() {
        eprintln!("skipped: node is not installed (the browser script cannot be run here)");
        return;
    }
    let script = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/format.js"))
        .expect("assets/format.js");
    let cases = cases();
    let calls: Vec<Value> = cases.iter().map(|(f, args, _)| json!([f, args])).collect();
    let program = format!(
        "const window = {{}};\n{script}\nconst calls = {};\n\
         console.log(JSON.stringify(calls.map(([f, a]) => window.ShepherdFormat[f](...a))));\n",
        Value::Array(calls)
    );
    let mut node = Command::new("node")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node starts");
    node.stdin
        .take()
        .expect("stdin")
        .write_all(program.as_bytes())
        .expect("program written");
    let out = node.wait_with_output().expect("node ran");
    assert!(out.status.success(), "node failed: {out:?}");
    let js: Vec<String> = serde_json::from_slice(&out.stdout).expect("node printed JSON");
    assert_eq!(js.len(), cases.len());
    let differ: Vec<String> = cases
        .iter()
        .zip(&js)
        .filter(|((_, _, rust), js)| rust != *js)
        .map(|((f, args, rust), js)| format!("{f}{args}: format.rs {rust:?}, format.js {js:?}"))
        .collect();
    assert!(
        differ.is_empty(),
        "format.js and format.rs disagree:\n{}",
        differ.join("\n")
    );
}
