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
