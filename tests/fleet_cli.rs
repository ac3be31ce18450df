//! Fleet configuration from a shell against a running `shepherd run --demo 2`: profiles,
//! desired state with checked addresses and unique worker names, drift before and after, and
//! a reconcile written through the canary rollout (SET_CONFIG on the simulated miners), with
//! the profile's pool a stratum stub on loopback.

mod common;

use std::process::Command;
use std::time::Duration;

use common::Running;
use serde_json::Value;

const ADDR: &str = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq";

fn shepherd(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(common::bin()).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn drift(db: &str) -> Vec<(String, String)> {
    let (ok, out, err) = shepherd(&["drift", "--database", db, "--json"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_owned(),
                m["drift"]["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn profiles_desired_state_drift_and_reconcile_on_simulated_miners() {
    let dir = tempfile::tempdir().unwrap();
    let run = Running::start(dir.path(), &["--demo", "2"]);
    run.wait_json("/api/herd_data", Duration::from_secs(60), |v| {
        v["totals"]["online"] == 2
    });
    let db = run.db.display().to_string();
    let port = common::stratum_stub();
    let pool = format!("127.0.0.1:{port}");

    // Bad profiles are refused before anything is stored.
    let (ok, _, err) = shepherd(&[
        "profiles",
        "--database",
        &db,
        "add",
        "x",
        "--pool",
        "bad host:1",
    ]);
    assert!(!ok && err.contains("host"), "{err}");
    let (ok, _, err) = shepherd(&[
        "profiles",
        "--database",
        &db,
        "add",
        "x",
        "--pool",
        "a.org:0",
    ]);
    assert!(!ok && err.contains("1 to 65535"), "{err}");
    let (ok, _, err) = shepherd(&[
        "profiles",
        "--database",
        &db,
        "add",
        "x",
        "--pool",
        "a.org:1",
        "--window",
        "22:00-06:00=0",
        "--time-zone",
        "Mars/Olympus",
        "--no-test",
    ]);
    assert!(!ok && err.contains("time zone"), "{err}");
    // A good one is tested from here first.
    let (ok, _, err) = shepherd(&[
        "profiles",
        "--database",
        &db,
        "add",
        "home",
        "--pool",
        &pool,
        "--pool",
        "solo.ckpool.org:3333",
        "--no-test",
    ]);
    assert!(ok, "{err}");
    let (ok, _, err) = shepherd(&[
        "profiles",
        "--database",
        &db,
        "add",
        "home",
        "--pool",
        &pool,
    ]);
    assert!(
        ok && err.contains("test primary") && err.contains("ok"),
        "{err}"
    );
    let (ok, out, _) = shepherd(&["profiles", "--database", &db, "list"]);
    assert!(ok && out.contains("home") && out.contains(&pool), "{out}");

    // A mistyped address is refused (the firmware would hang at 80 %), and so is a bad or
    // duplicate worker name.
    let typo = ADDR.replace("mdq", "mdp");
    let (ok, _, err) = shepherd(&[
        "miners",
        "--database",
        &db,
        "set",
        "demo-1",
        "--address",
        &typo,
    ]);
    assert!(!ok && err.contains("not written"), "{err}");
    let (ok, _, err) = shepherd(&[
        "miners",
        "--database",
        &db,
        "set",
        "demo-1",
        "--profile",
        "home",
        "--address",
        ADDR,
    ]);
    assert!(ok && err.contains("worker name demo-1"), "{err}");
    let (ok, _, err) = shepherd(&[
        "miners",
        "--database",
        &db,
        "set",
        "demo-2",
        "--profile",
        "home",
        "--address",
        ADDR,
        "--worker",
        "Demo-1",
    ]);
    assert!(!ok && err.contains("another miner's"), "{err}");
    let (ok, _, err) = shepherd(&[
        "miners",
        "--database",
        &db,
        "set",
        "demo-2",
        "--worker",
        "two words",
    ]);
    assert!(!ok && err.contains("letters, digits"), "{err}");

    assert_eq!(
        drift(&db),
        [
            ("demo-1".into(), "unknown".into()),
            ("demo-2".into(), "unknown".into())
        ]
    );

    // Reconcile: pools tested, then SET_CONFIG through the rollout; the read-back is in sync.
    let (ok, out, err) = shepherd(&["reconcile", "--database", &db, "demo-1", "--timeout", "240"]);
    assert!(ok, "{err}\n{}", run.log_text());
    assert!(err.contains(&format!("test {pool}: ok")), "{err}");
    assert!(out.contains("demo-1\twritten"), "{out}");
    assert_eq!(drift(&db)[0], ("demo-1".into(), "in_sync".into()));
    let (ok, out, _) = shepherd(&["drift", "--database", &db]);
    assert!(ok && out.contains("in sync"), "{out}");
    let (ok, out, _) = shepherd(&["reconcile", "--database", &db, "--all"]);
    assert!(ok && out.contains("nothing to do"), "{out}");
    let (ok, _, err) = shepherd(&["reconcile", "--database", &db, "nobody"]);
    assert!(!ok && err.contains("no miner named"), "{err}");

    // One click on /fleet: demo-2 (given an address now) is written through the rollout.
    let (ok, _, err) = shepherd(&[
        "miners",
        "--database",
        &db,
        "set",
        "demo-2",
        "--profile",
        "home",
        "--address",
        ADDR,
    ]);
    assert!(ok && err.contains("worker name demo-2"), "{err}");
    let fleet = run.wait_json("/api/fleet", Duration::from_secs(10), |_| true);
    let id = fleet["miners"][1]["id"].as_i64().unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let resp = agent
        .post(&run.url("/fleet/reconcile"))
        .header("Origin", &run.url(""))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(format!("miner={id}"))
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    let to = resp.headers()["location"].to_str().unwrap().to_owned();
    let rid = to.rsplit('=').next().unwrap();
    let r = run.wait_json(
        &format!("/api/rollout/{rid}"),
        Duration::from_secs(240),
        |v| v["finished"] == true,
    );
    assert_eq!(r["miners"][0]["state"], "done", "{r:#}");
    assert_eq!(drift(&db)[1], ("demo-2".into(), "in_sync".into()));
    let (status, page) = run.get(&to).unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("finished: all 1 miner(s) written"), "{page}");

    // A pool that does not answer is not written from the page either.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("127.0.0.1:{closed}");
    let (ok, _, err) = shepherd(&[
        "profiles",
        "--database",
        &db,
        "add",
        "dead",
        "--pool",
        &dead,
        "--no-test",
    ]);
    assert!(ok, "{err}");
    let (ok, _, err) = shepherd(&[
        "miners",
        "--database",
        &db,
        "set",
        "demo-2",
        "--profile",
        "dead",
    ]);
    assert!(ok, "{err}");
    let mut resp = agent
        .post(&run.url("/fleet/reconcile"))
        .header("Origin", &run.url(""))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(format!("miner={id}"))
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body = resp.body_mut().read_to_string().unwrap();
    assert!(body.contains("did not answer the test"), "{body}");
    assert_eq!(drift(&db)[1].1, "drifted");
    let (ok, _, err) = shepherd(&["reconcile", "--database", &db, "demo-2"]);
    assert!(!ok && err.contains("did not answer"), "{err}");

    let (ok, _, _) = shepherd(&["profiles", "--database", &db, "remove", "home"]);
    assert!(ok);
    let (ok, _, err) = shepherd(&["profiles", "--database", &db, "remove", "home"]);
    assert!(!ok && err.contains("no profile"), "{err}");
}
