//! The web UI over HTTP against the real binary: every route answers with its key content,
//! bad parameters get a 400/404 that says why, settings forms validate and re-show what was
//! typed, deletions of things in use ask first, login guards every POST when a password is
//! set, hostile text typed into any field comes back escaped on every page, and alert rules
//! changed on /settings are validated, re-shown and used without a restart.

mod common;

use std::time::Duration;

use common::{Running, OFFLINE_PRICE_CONFIG};

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// POSTs a form as a page of this server would (same Origin); returns status, Location or
/// Set-Cookie, and body.
fn post(
    run: &Running,
    path: &str,
    form: &[(&str, &str)],
    cookie: Option<&str>,
) -> (u16, String, String) {
    let mut req = agent()
        .post(&run.url(path))
        .header("Origin", &format!("http://127.0.0.1:{}", run.port));
    if let Some(c) = cookie {
        req = req.header("Cookie", c);
    }
    let mut resp = req.send_form(form.iter().copied()).unwrap();
    let status = resp.status().as_u16();
    let header = |n: &str| {
        resp.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let extra = if status == 303 && header("set-cookie").is_empty() {
        header("location")
    } else {
        header("set-cookie")
    };
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    (status, extra, body)
}

fn get(run: &Running, path: &str) -> (u16, String) {
    run.get(path).unwrap_or_else(|| panic!("GET {path} failed"))
}

fn started(dir: &std::path::Path, extra_config: &str) -> (Running, i64) {
    let run = Running::start_with(
        dir,
        &format!("{OFFLINE_PRICE_CONFIG}{extra_config}"),
        &["--demo", "1"],
    );
    run.wait_up();
    let herd = run.wait_json("/api/herd_data", Duration::from_secs(60), |v| {
        v["miners"].as_array().is_some_and(|m| !m.is_empty())
    });
    let id = herd["miners"][0]["id"].as_i64().unwrap();
    (run, id)
}

#[test]
fn pages_and_apis_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (run, id) = started(dir.path(), "");
    let expect = |path: &str, status: u16, needle: &str| {
        let (s, body) = get(&run, path);
        assert_eq!(s, status, "{path}: {body}");
        assert!(body.contains(needle), "{path} lacks {needle:?}: {body}");
    };
    expect("/", 200, "href=\"/miners/");
    expect("/", 200, "data-sort=\"hashrate\"");
    expect(&format!("/miners/{id}"), 200, "Status history");
    // Less than a day of data: the page opens on the last hour.
    expect(&format!("/miners/{id}"), 200, "class=\"active\">1h<");
    for range in ["1h", "24h", "7d", "30d"] {
        expect(&format!("/miners/{id}?range={range}"), 200, "Hashrate");
    }
    expect(&format!("/miners/{id}?range=1y"), 400, "1h, 24h, 7d, 30d");
    expect("/miners/9999", 404, "no miner with id 9999");
    expect("/miners/abc", 404, "No such miner");
    expect(
        &format!("/api/miners/{id}/history?range=1h"),
        200,
        "\"points\"",
    );
    expect(
        &format!("/api/miners/{id}/history?range=5m"),
        400,
        "not one of",
    );
    expect("/api/miners/9999/history", 404, "no miner");
    expect(&format!("/api/miners/{id}/logs?limit=5"), 200, "\"lines\"");
    expect(
        &format!("/api/miners/{id}/logs?limit=1001"),
        400,
        "1 to 1000",
    );
    expect(&format!("/api/miners/{id}/logs?before=x"), 400, "before");
    expect("/api/miners/9999/logs", 404, "no miner");
    expect("/api/sparklines", 200, "{");
    expect("/api/block_templates", 200, "block_templates");
    expect(
        "/kiosk",
        200,
        "chromium-browser --kiosk --noerrdialogs --disable-infobars --incognito",
    );
    expect("/kiosk", 200, "[Desktop Entry]");
    expect("/kiosk", 200, "do_blanking 1");
    expect("/kiosk", 200, "<iframe src=\"/kiosk/clock\"");
    expect("/kiosk/clock", 200, "data-f=\"price\"");
    expect("/kiosk/health", 200, "k-tile");
    expect("/kiosk/homage", 200, "k-screen");
    expect("/kiosk/stream", 200, "k-rain");
    expect("/settings", 200, "Add a pool");
    expect("/login", 200, "No password is set");
    expect("/assets/kiosk.js", 200, "data is stale");
    expect("/assets/theme.js", 200, "localStorage");

    // Logs page backwards by id.
    let first = run.wait_json(
        &format!("/api/miners/{id}/logs?limit=2"),
        Duration::from_secs(20),
        |v| v["lines"].as_array().is_some_and(|l| l.len() == 2),
    );
    let before = first["next_before"].as_i64().unwrap();
    let (_, older) = get(
        &run,
        &format!("/api/miners/{id}/logs?limit=2&before={before}"),
    );
    let older: serde_json::Value = serde_json::from_str(&older).unwrap();
    assert!(older["lines"][0]["id"].as_i64().unwrap() < before);
}

#[test]
fn settings_validate_keep_input_and_ask_before_deleting() {
    let dir = tempfile::tempdir().unwrap();
    let (run, id) = started(dir.path(), "");

    // Without our Origin a form is refused.
    let mut resp = agent()
        .post(&run.url("/settings/pools"))
        .send_form([("name", "p")])
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let _ = resp.body_mut().read_to_string();

    let (s, _, body) = post(
        &run,
        "/settings/pools",
        &[
            ("name", "my pool"),
            ("url", "public-pool.io"),
            ("port", "70000"),
            ("password", "pw1"),
        ],
        None,
    );
    assert_eq!(s, 422);
    // Everything typed comes back except the password, a secret that is never sent back.
    assert!(
        body.contains("1 to 65535") && body.contains("value=\"my pool\"") && !body.contains("pw1"),
        "{body}"
    );
    let (s, loc, _) = post(
        &run,
        "/settings/pools",
        &[
            ("name", "my pool"),
            ("url", "public-pool.io"),
            ("port", "3333"),
            ("password", ""),
        ],
        None,
    );
    assert_eq!((s, loc.as_str()), (303, "/settings?saved=pools#pools"));
    let (s, _, body) = post(
        &run,
        "/settings/pools",
        &[("name", "my pool"), ("url", "x.io"), ("port", "1")],
        None,
    );
    assert_eq!(s, 422);
    assert!(body.contains("already taken"), "{body}");

    let (s, _, body) = post(
        &run,
        "/settings/addresses",
        &[
            ("label", "cold"),
            ("address", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5"),
        ],
        None,
    );
    assert_eq!(s, 422);
    assert!(
        body.contains("checksum") && body.contains("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5"),
        "{body}"
    );
    let (s, _, _) = post(
        &run,
        "/settings/addresses",
        &[
            ("label", "cold"),
            ("address", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"),
        ],
        None,
    );
    assert_eq!(s, 303);

    let (_, page) = get(&run, "/settings");
    let pool_id = between(&page, "formaction=\"/settings/pools/", "/delete\"");
    let addr_id = between(&page, "formaction=\"/settings/addresses/", "/delete\"");
    let (s, _, body) = post(
        &run,
        &format!("/settings/miners/{id}"),
        &[
            ("name", "rack-1"),
            ("port", "/dev/ttyUSB7"),
            ("pool_id", &pool_id),
            ("address_id", &addr_id),
        ],
        None,
    );
    assert_eq!(s, 303, "{body}");
    let (s, _, body) = post(
        &run,
        &format!("/settings/miners/{id}"),
        &[("name", "rack-1"), ("port", "ttyUSB7")],
        None,
    );
    assert_eq!(s, 422);
    assert!(body.contains("value=\"ttyUSB7\""), "{body}");

    // In use: asks, names the miner; confirmed: gone, the miner unassigned.
    let (s, _, body) = post(
        &run,
        &format!("/settings/pools/{pool_id}/delete"),
        &[],
        None,
    );
    assert_eq!(s, 200);
    assert!(
        body.contains("used by 1 miner")
            && body.contains("rack-1")
            && body.contains("name=\"confirm\""),
        "{body}"
    );
    let (s, _, _) = post(
        &run,
        &format!("/settings/pools/{pool_id}/delete"),
        &[("confirm", "yes")],
        None,
    );
    assert_eq!(s, 303);
    let (_, page) = get(&run, "/settings");
    assert!(!page.contains("value=\"my pool\""));
    // Unused: deleted at once.
    let (s, _, _) = post(
        &run,
        "/settings/pools",
        &[("name", "spare"), ("url", "s.io"), ("port", "1")],
        None,
    );
    assert_eq!(s, 303);
    let (_, page) = get(&run, "/settings");
    let spare = between(&page, "formaction=\"/settings/pools/", "/delete\"");
    let (s, _, _) = post(&run, &format!("/settings/pools/{spare}/delete"), &[], None);
    assert_eq!(s, 303);
    let (s, _, _) = post(&run, "/settings/wallets", &[], None);
    assert_eq!(s, 404);
    let (s, _, _) = post(
        &run,
        "/settings/pools/9999",
        &[("name", "z"), ("url", "z.io"), ("port", "1")],
        None,
    );
    assert_eq!(s, 404);

    // A new miner is added; a miner's deletion always asks.
    let (s, _, _) = post(
        &run,
        "/settings/miners",
        &[("name", "bench"), ("port", "/dev/ttyUSB9")],
        None,
    );
    assert_eq!(s, 303);
    let (s, _, body) = post(&run, &format!("/settings/miners/{id}/delete"), &[], None);
    assert_eq!(s, 200);
    assert!(body.contains("history"), "{body}");
}

/// One Save per section: every row is checked, all are stored or none, and a refused section
/// comes back with everything typed and each error beside its field.
#[test]
fn a_settings_section_saves_all_its_rows_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let (run, _) = started(dir.path(), "");
    for (name, url) in [("alpha", "a.example"), ("beta", "b.example")] {
        let (s, _, body) = post(
            &run,
            "/settings/pools",
            &[("name", name), ("url", url), ("port", "3333")],
            None,
        );
        assert_eq!(s, 303, "{body}");
    }
    let (_, page) = get(&run, "/settings");
    // One form and one Save for the section, no per-row Save.
    assert_eq!(
        page.matches("action=\"/settings/pools/all\"").count(),
        1,
        "{page}"
    );
    assert!(page.contains("Save pools"), "{page}");
    let ids: Vec<String> = page
        .split("formaction=\"/settings/pools/")
        .skip(1)
        .map(|rest| rest[..rest.find('/').unwrap()].to_owned())
        .collect();
    assert_eq!(ids.len(), 2, "{page}");
    let (a, b) = (&ids[0], &ids[1]);
    let field = |f: &str, id: &str| format!("{f}.{id}");
    let (na, ua, pa, nb, ub, pb) = (
        field("name", a),
        field("url", a),
        field("port", a),
        field("name", b),
        field("url", b),
        field("port", b),
    );

    // The first row is fine, the second has a bad port and a bad URL: nothing is stored.
    let (s, _, body) = post(
        &run,
        "/settings/pools/all",
        &[
            (&na, "alpha renamed"),
            (&ua, "a2.example"),
            (&pa, "4444"),
            (&nb, "beta"),
            (&ub, "b example"),
            (&pb, "70000"),
        ],
        None,
    );
    assert_eq!(s, 422, "{body}");
    // Everything typed comes back, in both rows…
    for typed in [
        "value=\"alpha renamed\"",
        "value=\"a2.example\"",
        "value=\"b example\"",
        "value=\"70000\"",
    ] {
        assert!(body.contains(typed), "{typed} not re-shown: {body}");
    }
    // … and each error sits in its field's label, right after that field.
    let port_label = between(&body, &format!("name=\"{pb}\""), "</label>");
    assert!(port_label.contains("1 to 65535"), "{port_label}");
    let url_label = between(&body, &format!("name=\"{ub}\""), "</label>");
    assert!(url_label.contains("without spaces"), "{url_label}");
    let ok_label = between(&body, &format!("name=\"{na}\""), "</label>");
    assert!(!ok_label.contains("field-error"), "{ok_label}");
    let (_, page) = get(&run, "/settings");
    assert!(
        page.contains("value=\"alpha\"") && !page.contains("alpha renamed"),
        "the valid row was stored although the section was refused"
    );

    // A name taken by the other row, found only when storing: rolled back as a whole.
    let (s, _, body) = post(
        &run,
        "/settings/pools/all",
        &[
            (&na, "alpha renamed"),
            (&ua, "a.example"),
            (&pa, "3333"),
            (&nb, "alpha renamed"),
            (&ub, "b.example"),
            (&pb, "3333"),
        ],
        None,
    );
    assert_eq!(s, 422, "{body}");
    assert!(
        between(&body, &format!("name=\"{nb}\""), "</label>").contains("already taken"),
        "{body}"
    );
    let (_, page) = get(&run, "/settings");
    assert!(
        !page.contains("alpha renamed"),
        "the first row was kept: not all or nothing"
    );

    // Both valid: both stored, one redirect.
    let (s, loc, body) = post(
        &run,
        "/settings/pools/all",
        &[
            (&na, "alpha renamed"),
            (&ua, "a2.example"),
            (&pa, "4444"),
            (&nb, "beta renamed"),
            (&ub, "b.example"),
            (&pb, "3334"),
        ],
        None,
    );
    assert_eq!(
        (s, loc.as_str()),
        (303, "/settings?saved=pools#pools"),
        "{body}"
    );
    let (_, page) = get(&run, "/settings");
    for v in [
        "value=\"alpha renamed\"",
        "value=\"a2.example\"",
        "value=\"4444\"",
        "value=\"beta renamed\"",
        "value=\"3334\"",
    ] {
        assert!(page.contains(v), "{v} not stored");
    }
}

/// The alert rules section: a wrong threshold gets its error beside it, not only at the end.
#[test]
fn a_refused_alert_rule_shows_its_error_beside_its_field() {
    let dir = tempfile::tempdir().unwrap();
    let (run, _) = started(dir.path(), "");
    let form: Vec<(&str, &str)> = alert_rules_form("70")
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                if k == "hashrate_below_percent" {
                    "200"
                } else {
                    v
                },
            )
        })
        .collect();
    let (s, _, body) = post(&run, "/settings/alerts", &form, None);
    assert_eq!(s, 422, "{body}");
    let label = between(&body, "name=\"hashrate_below_percent\"", "</label>");
    assert!(
        label.contains("field-error") && label.contains("0 to 100"),
        "{label}"
    );
    let fine = between(&body, "name=\"temperature_above_c\"", "</label>");
    assert!(!fine.contains("field-error"), "{fine}");
}

fn between(text: &str, start: &str, end: &str) -> String {
    let from = text.find(start).unwrap_or_else(|| panic!("no {start:?}")) + start.len();
    let len = text[from..].find(end).unwrap();
    text[from..from + len].to_owned()
}

const SCRIPT: &str = "<script>alert(1)</script>";
const IMG: &str = "\"><img src=x onerror=alert(1)>";

fn assert_clean(path: &str, body: &str) {
    for bad in [SCRIPT, "<img src=x onerror", "<script>alert"] {
        assert!(!body.contains(bad), "{path} contains unescaped {bad:?}");
    }
}

#[test]
fn hostile_input_is_escaped_on_every_page() {
    let dir = tempfile::tempdir().unwrap();
    let (run, id) = started(dir.path(), "");
    for payload in [SCRIPT, IMG] {
        let (s, _, body) = post(
            &run,
            "/settings/pools",
            &[
                ("name", payload),
                ("url", "pool.example"),
                ("port", "3333"),
                ("password", payload),
            ],
            None,
        );
        assert_eq!(s, 303, "{body}");
        // A URL with spaces is refused: the refusal re-shows it, escaped.
        let (s, _, body) = post(
            &run,
            "/settings/pools",
            &[("name", "p"), ("url", payload), ("port", "3333")],
            None,
        );
        assert!(s == 303 || s == 422, "{s}");
        assert_clean("refused pool form", &body);
        let (s, _, body) = post(
            &run,
            "/settings/addresses",
            &[
                ("label", payload),
                ("address", "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"),
            ],
            None,
        );
        assert!(s == 303 || s == 422, "{s}: {body}");
        assert_clean("address form", &body);
        let (s, _, body) = post(
            &run,
            "/settings/addresses",
            &[("label", "x"), ("address", payload)],
            None,
        );
        assert_eq!(s, 422);
        assert_clean("refused address form", &body);
    }
    // Labels are unique: the second payload gets its own label row too.
    let (s, _, _) = post(
        &run,
        "/settings/addresses",
        &[
            ("label", &format!("{IMG}2")),
            ("address", "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy"),
        ],
        None,
    );
    assert_eq!(s, 303);
    let (s, _, body) = post(
        &run,
        &format!("/settings/miners/{id}"),
        &[("name", SCRIPT), ("port", "/dev/ttyUSB3")],
        None,
    );
    assert_eq!(s, 303, "{body}");
    let (s, _, _) = post(
        &run,
        "/settings/miners",
        &[("name", IMG), ("port", "/dev/ttyUSB4")],
        None,
    );
    assert_eq!(s, 303);
    let (_, settings) = get(&run, "/settings");
    assert!(
        settings.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "payload not shown escaped"
    );
    let pool_id = between(&settings, "formaction=\"/settings/pools/", "/delete\"");
    let (_, _, confirm) = post(&run, &format!("/settings/miners/{id}/delete"), &[], None);
    assert_clean("miner delete confirmation", &confirm);
    let (_, _, confirm) = post(
        &run,
        &format!("/settings/pools/{pool_id}/delete"),
        &[],
        None,
    );
    assert_clean("pool delete confirmation", &confirm);

    // Wait for a summary so the dashboard and kiosks show the miners.
    std::thread::sleep(Duration::from_secs(2));
    for path in [
        "/".to_owned(),
        format!("/miners/{id}"),
        "/settings".into(),
        "/onboarding".into(),
        "/kiosk".into(),
        "/kiosk/clock".into(),
        "/kiosk/health".into(),
        "/kiosk/homage".into(),
        "/kiosk/stream".into(),
        "/login".into(),
    ] {
        let (s, body) = get(&run, &path);
        assert_eq!(s, 200, "{path}");
        assert_clean(&path, &body);
    }
    let (_, health) = get(&run, "/kiosk/health");
    assert!(
        health.contains("&lt;script&gt;"),
        "renamed miner missing from health"
    );
}

#[test]
fn a_password_guards_every_post() {
    let dir = tempfile::tempdir().unwrap();
    let (run, id) = started(dir.path(), "[web]\npassword = \"s3cret pass\"\n");
    let form = [("name", "p"), ("url", "p.io"), ("port", "1")];
    let (s, _, body) = post(&run, "/settings/pools", &form, None);
    assert_eq!(s, 401);
    assert!(body.contains("/login"));
    for path in [
        format!("/settings/miners/{id}/delete"),
        "/settings/alerts".into(),
        "/settings/alerts/reset".into(),
        "/settings/miners/scan".into(),
        "/onboarding/1/ignore".into(),
        "/logout".into(),
    ] {
        assert_eq!(post(&run, &path, &[], None).0, 401, "{path}");
    }
    assert_eq!(
        post(
            &run,
            "/settings/pools",
            &form,
            Some("shepherd_session=forged")
        )
        .0,
        401
    );
    // Reading needs no login.
    assert_eq!(get(&run, "/settings").0, 200);
    assert_eq!(get(&run, "/kiosk/clock").0, 200);
    let (s, _, body) = post(&run, "/login", &[("password", "wrong")], None);
    assert_eq!(s, 401);
    assert!(body.contains("Wrong password"));
    let (s, cookie, _) = post(&run, "/login", &[("password", "s3cret pass")], None);
    assert_eq!(s, 303);
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let (s, loc, _) = post(&run, "/settings/pools", &form, Some(&cookie));
    assert_eq!((s, loc.as_str()), (303, "/settings?saved=pools#pools"));
    let (s, _, _) = post(&run, "/logout", &[], Some(&cookie));
    assert_eq!(s, 303);
    assert_eq!(post(&run, "/settings/pools", &form, Some(&cookie)).0, 401);
}

/// The alert rules form as the page sends it with config.toml's defaults, but
/// `temperature_above_c` at `temperature`.
fn alert_rules_form(temperature: &str) -> Vec<(&str, &str)> {
    vec![
        ("offline", "true"),
        ("offline_minutes", "5"),
        ("hashrate", "true"),
        ("hashrate_below_percent", "50"),
        ("hashrate_minutes", "15"),
        ("temperature", "true"),
        ("temperature_above_c", temperature),
        ("pool", "true"),
        ("pool_minutes", "3"),
        ("rejects", "true"),
        ("rejects_above_percent", "10"),
        ("rejects_min_shares", "20"),
        ("rejects_window_minutes", "60"),
        ("reboot", "true"),
        ("block_found", "true"),
        ("worker_rejected", "true"),
        ("reboot_storm", "true"),
        ("reboot_storm_count", "3"),
        ("reboot_storm_minutes", "10"),
        ("brownout", "true"),
        ("repeat_minutes", "60"),
        ("clear_secs", "120"),
    ]
}

fn temperature_alerts(v: &serde_json::Value) -> usize {
    v["active"].as_array().map_or(0, |a| {
        a.iter().filter(|x| x["rule"] == "temperature").count()
    })
}

#[test]
fn alert_rules_are_edited_on_settings_and_used_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // Demo boards that report it run at 40–62 °C: config.toml's 70 never fires, 0 always does.
    let run = Running::start_with(
        dir.path(),
        &format!("{OFFLINE_PRICE_CONFIG}[alerts]\ninterval_secs = 1\n"),
        &["--demo", "2"],
    );
    run.wait_up();
    let (s, body) = get(&run, "/settings");
    assert_eq!(s, 200);
    assert!(body.contains("Alert rules"), "{body}");
    assert!(
        body.contains(r#"name="temperature_above_c" value="70""#),
        "{body}"
    );

    // Without our Origin the form is refused.
    let mut resp = agent()
        .post(&run.url("/settings/alerts"))
        .send_form(alert_rules_form("0"))
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let _ = resp.body_mut().read_to_string();

    // A bad value: 422, everything typed kept, the reason shown, nothing stored.
    let mut bad = alert_rules_form("0");
    bad[1] = ("offline_minutes", "soon");
    let (s, _, body) = post(&run, "/settings/alerts", &bad, None);
    assert_eq!(s, 422, "{body}");
    assert!(
        body.contains(r#"name="offline_minutes" value="soon""#),
        "{body}"
    );
    assert!(
        body.contains(r#"name="temperature_above_c" value="0""#),
        "{body}"
    );
    assert!(body.contains("alerts.offline_minutes"), "{body}");
    let (s, _, body) = post(&run, "/settings/alerts", &alert_rules_form("200"), None);
    assert_eq!(s, 422);
    assert!(body.contains("alerts.temperature_above_c"), "{body}");
    assert!(body.contains(r#"value="200""#), "{body}");
    let (_, body) = get(&run, "/settings");
    assert!(body.contains(r#"name="temperature_above_c" value="70""#));
    let v = run.wait_json("/api/alerts", Duration::from_secs(10), |_| true);
    assert_eq!(temperature_alerts(&v), 0, "{v}");

    // A good one is stored, shown as changed from config.toml, and used at the next run.
    let (s, loc, _) = post(&run, "/settings/alerts", &alert_rules_form("0"), None);
    assert_eq!(
        (s, loc.as_str()),
        (303, "/settings?saved=alerts#alert-rules")
    );
    let (_, body) = get(&run, "/settings?saved=alerts");
    assert!(body.contains("Saved."), "{body}");
    assert!(
        body.contains(r#"name="temperature_above_c" value="0""#),
        "{body}"
    );
    assert!(body.contains("config.toml: 70"), "{body}");
    run.wait_json("/api/alerts", Duration::from_secs(30), |v| {
        temperature_alerts(v) > 0
    });

    // Reset: config.toml's values again.
    let (s, loc, _) = post(&run, "/settings/alerts/reset", &[], None);
    assert_eq!(
        (s, loc.as_str()),
        (303, "/settings?saved=alerts#alert-rules")
    );
    let (_, body) = get(&run, "/settings");
    assert!(
        body.contains(r#"name="temperature_above_c" value="70""#),
        "{body}"
    );
    assert!(!body.contains("config.toml: 70"), "{body}");
}

/// Unknown paths get the site's own 404 page (JSON under /api/), versioned assets are cached
/// for good, and answers are compressed for a client that asks.
#[test]
fn not_found_page_caching_and_compression() {
    let dir = tempfile::tempdir().unwrap();
    let (run, _) = started(dir.path(), "");
    let (s, body) = get(&run, "/no/such/page");
    assert_eq!(s, 404);
    assert!(
        body.contains("404") && body.contains("/no/such/page") && body.contains("href=\"/\""),
        "{body}"
    );
    let (s, body) = get(&run, "/api/nothing");
    assert_eq!(s, 404);
    assert!(body.contains("no such endpoint"), "{body}");
    let (s, body) = get(&run, "/assets/nothing.js");
    assert_eq!(s, 404);
    assert!(body.contains("404"), "{body}");

    let head = |path: &str, name: &str| {
        let resp = agent()
            .get(&run.url(path))
            .header("Accept-Encoding", "gzip")
            .call()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(head("/assets/app.css?v=1", "cache-control").contains("immutable"));
    assert!(!head("/assets/app.css", "cache-control").contains("immutable"));
    // Raw HTTP, since the client library would undo the compression it asked for.
    let raw_headers = |path: &str| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", run.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
            run.port
        )
        .unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        let text = String::from_utf8_lossy(&buf).to_lowercase();
        text.split("\r\n\r\n").next().unwrap_or_default().to_owned()
    };
    for path in ["/assets/app.js?v=1", "/"] {
        let h = raw_headers(path);
        assert!(h.contains("content-encoding: gzip"), "{path}: {h}");
    }
}
