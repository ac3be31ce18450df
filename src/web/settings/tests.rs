//! Form checks and rendering.

use super::alerts::*;
use super::form::*;
use super::*;

fn form() -> SettingsForm {
    SettingsForm::default()
}

#[test]
fn pools_are_validated() {
    let ok = SettingsForm {
        name: " public ".into(),
        url: "public-pool.io".into(),
        port: "3333".into(),
        ..form()
    };
    assert_eq!(
        validate(Kind::Pool, &ok),
        Ok(Valid::Pool {
            name: "public".into(),
            url: "public-pool.io".into(),
            port: 3333,
            password: None
        })
    );
    for port in ["0", "65536", "abc", ""] {
        let bad = SettingsForm {
            port: port.into(),
            ..ok.clone()
        };
        assert!(
            validate(Kind::Pool, &bad)
                .unwrap_err()
                .contains("1 to 65535"),
            "{port}"
        );
    }
    let spaced = SettingsForm {
        url: "a b".into(),
        ..ok.clone()
    };
    assert!(validate(Kind::Pool, &spaced).is_err());
    assert!(validate(
        Kind::Pool,
        &SettingsForm {
            name: "".into(),
            ..ok
        }
    )
    .is_err());
}

#[test]
fn addresses_and_miners_are_validated() {
    let a = SettingsForm {
        label: "cold".into(),
        address: "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4".into(),
        ..form()
    };
    assert!(validate(Kind::Address, &a).is_ok());
    let typo = SettingsForm {
        address: "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5".into(),
        ..a
    };
    assert!(validate(Kind::Address, &typo)
        .unwrap_err()
        .contains("checksum"));
    let m = SettingsForm {
        name: "desk".into(),
        port: "/dev/ttyUSB0".into(),
        pool_id: "2".into(),
        ..form()
    };
    assert!(matches!(
        validate(Kind::Miner, &m),
        Ok(Valid::Miner {
            pool_id: Some(2),
            address_id: None,
            ..
        })
    ));
    let bad = SettingsForm {
        port: "COM3".into(),
        ..m
    };
    assert!(validate(Kind::Miner, &bad)
        .unwrap_err()
        .contains("/dev/ttyUSB0"));
    // A Bitaxe by address: normalized, and path junk refused with the reason.
    let axe = SettingsForm {
        port: " HTTP://Bitaxe.local/ ".into(),
        ..bad.clone()
    };
    assert!(matches!(
        validate(Kind::Miner, &axe),
        Ok(Valid::Miner { ref port, .. }) if port == "http://bitaxe.local"
    ));
    let junk = SettingsForm {
        port: "http://bitaxe.local/api/system/info".into(),
        ..bad
    };
    assert!(validate(Kind::Miner, &junk).unwrap_err().contains("path"));
    assert_eq!(parse_kind("pools"), Some(Kind::Pool));
    assert_eq!(parse_kind("wallets"), None);
}

#[test]
fn alert_form_stores_only_what_differs_from_config_toml() {
    let base = AlertsConfig::default();
    let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
    // A form as the page sends it: checked boxes only, every number.
    let mut form: Vec<(String, String)> = ALERT_RULE_KEYS
        .iter()
        .filter_map(|&k| {
            let v = base.rule_value(k)?;
            match v.as_str() {
                "true" => Some(kv(k, "true")),
                "false" => None,
                _ => Some((k.to_string(), v)),
            }
        })
        .filter(|(k, _)| k != "reboot")
        .collect();
    for (k, v) in form.iter_mut() {
        if k == "temperature_above_c" {
            *v = " 60 ".into();
        }
    }
    let values = alert_form_values(&base, &form);
    assert_eq!(values.len(), ALERT_RULE_KEYS.len());
    assert_eq!(
        alert_overrides(&base, &values),
        Ok(vec![kv("temperature_above_c", "60"), kv("reboot", "false")])
    );
    // The same form unchanged stores nothing.
    let unchanged = alert_form_values(&base, &{
        let mut f = form.clone();
        f.push(kv("reboot", "true"));
        f.retain(|(k, _)| k != "temperature_above_c");
        f.push(kv("temperature_above_c", "70"));
        f
    });
    assert_eq!(alert_overrides(&base, &unchanged), Ok(vec![]));
    // A bad number is refused with config's message; a missing one too.
    let bad: Vec<_> = values
        .iter()
        .map(|(k, v)| match k.as_str() {
            "offline_minutes" => kv(k, "soon"),
            _ => (k.clone(), v.clone()),
        })
        .collect();
    assert!(alert_overrides(&base, &bad)
        .unwrap_err()
        .contains("alerts.offline_minutes"));
    let missing = alert_form_values(&base, &[]);
    assert!(alert_overrides(&base, &missing).is_err());
}

#[test]
fn section_forms_split_into_rows_and_every_field_is_checked() {
    let form: Vec<(String, String)> = [
        ("name.3", "rack-1"),
        ("port.3", "ttyUSB0"),
        ("pool_id.3", "x"),
        ("name.7", "rack-2"),
        ("port.7", "/dev/ttyUSB1"),
        ("confirm", "yes"),
        ("name.oops", "ignored"),
        ("colour.7", "ignored"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let rows = super::bulk::rows(&form);
    assert_eq!(rows.keys().copied().collect::<Vec<_>>(), [3, 7]);
    assert_eq!(rows[&7].port, "/dev/ttyUSB1");
    // Both bad fields of row 3 are reported, each with its own field.
    let errors = super::bulk::check_row(Kind::Miner, &rows[&3]).unwrap_err();
    let fields: Vec<&str> = errors.iter().map(|(f, _)| *f).collect();
    assert_eq!(fields, ["port", "pool_id"], "{errors:?}");
    assert!(super::bulk::check_row(Kind::Miner, &rows[&7]).is_ok());
    let pool = SettingsForm {
        name: "".into(),
        url: "a b".into(),
        port: "0".into(),
        ..form_default()
    };
    let fields: Vec<&str> = super::bulk::check_row(Kind::Pool, &pool)
        .unwrap_err()
        .iter()
        .map(|(f, _)| *f)
        .collect();
    assert_eq!(fields, ["name", "url", "port"]);
}

fn form_default() -> SettingsForm {
    SettingsForm::default()
}

#[test]
fn profile_rows_are_checked_field_by_field() {
    use super::fleet::ProfileRow;
    let row = ProfileRow {
        name: "night".into(),
        pools: "public-pool.io:21496\nsolo.ckpool.org:3333:secret".into(),
        failover: true,
        down_minutes: "5".into(),
        back_minutes: "".into(),
        schedule: "22:00-06:00=1".into(),
        time_zone: "Europe/Berlin".into(),
    };
    let p = row.check(4).unwrap();
    assert_eq!(
        (p.id, p.pools.len(), p.down_minutes, p.back_minutes),
        (4, 2, 5, 10)
    );
    assert_eq!(p.pools[1].password, "secret");
    // Shown again as typed, but for the password: the stored profile reads back into the row.
    let again = ProfileRow::of(&p);
    assert_eq!(
        (again.pools.as_str(), again.schedule.as_str()),
        (
            "public-pool.io:21496\nsolo.ckpool.org:3333:***",
            "22:00-06:00=1"
        )
    );
    let bad = ProfileRow {
        name: "".into(),
        pools: "public-pool.io".into(),
        failover: true,
        down_minutes: "soon".into(),
        back_minutes: "10".into(),
        schedule: "22:00-06:00=3".into(),
        time_zone: "Mars/Olympus".into(),
    };
    let errors = bad.check(0).unwrap_err();
    let fields: Vec<&str> = errors.iter().map(|(f, _)| *f).collect();
    for f in ["pools", "down_minutes", "name", "failover", "time_zone"] {
        assert!(fields.contains(&f), "{f} missing in {errors:?}");
    }
}

#[test]
fn profile_passwords_are_never_shown_and_kept_when_left_hidden() {
    use super::fleet::ProfileRow;
    let row = ProfileRow {
        name: "p".into(),
        pools: "a.example:1:s3cret\nb.example:2".into(),
        down_minutes: "10".into(),
        back_minutes: "10".into(),
        ..ProfileRow::default()
    };
    let stored = row.check(5).unwrap();
    let shown = ProfileRow::of(&stored);
    assert!(!shown.pools.contains("s3cret"), "{}", shown.pools);
    assert_eq!(shown.pools, "a.example:1:***\nb.example:2");
    // Saved as shown: the stored password stays.
    let mut again = shown.check(5).unwrap();
    super::fleet::restore_passwords(&mut again, std::slice::from_ref(&stored)).unwrap();
    assert_eq!(again.pools[0].password, "s3cret");
    // A new pool cannot keep a password nobody stored.
    let mut new = ProfileRow {
        pools: "c.example:3:***".into(),
        ..shown.clone()
    }
    .check(5)
    .unwrap();
    assert!(super::fleet::restore_passwords(&mut new, &[stored])
        .unwrap_err()
        .contains("type its password again"));
    assert_eq!(
        super::fleet::mask_pools("x.org:1:typed\ny.org:2:x"),
        "x.org:1:***\ny.org:2:x"
    );
}
