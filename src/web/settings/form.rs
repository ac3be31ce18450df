//! The settings forms as typed: every field as text, checked into what is stored.

use super::*;

/// Every field any settings form sends, as text, so nothing typed is lost to a parse error.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SettingsForm {
    /// Miner or pool name.
    pub name: String,
    /// Miner serial device, or pool TCP port.
    pub port: String,
    /// Pool host / URL.
    pub url: String,
    /// Pool password.
    pub password: String,
    /// Coin address label.
    pub label: String,
    /// Coin address.
    pub address: String,
    /// Miner's pool (`""` = none).
    pub pool_id: String,
    /// Miner's coin address (`""` = none).
    pub address_id: String,
    /// `yes` once a deletion was confirmed.
    pub confirm: String,
}

/// What a valid form stores.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Valid {
    Miner {
        name: String,
        port: String,
        pool_id: Option<i64>,
        address_id: Option<i64>,
    },
    Pool {
        name: String,
        url: String,
        port: u16,
        /// None: keep the stored one (`x` for a new pool), since the form never shows it.
        password: Option<String>,
    },
    Address {
        label: String,
        address: String,
    },
}

/// `{kind}/{id}` from a settings URL.
pub(super) fn parse_target((kind, id): (String, String)) -> Option<(Kind, i64)> {
    Some((parse_kind(&kind)?, id.parse().ok()?))
}

pub(super) fn not_found() -> HttpResponse {
    error_page(StatusCode::NOT_FOUND, "Not found", "No such setting.")
}

pub(super) fn parse_kind(s: &str) -> Option<Kind> {
    match s {
        "miners" => Some(Kind::Miner),
        "pools" => Some(Kind::Pool),
        "addresses" => Some(Kind::Address),
        _ => None,
    }
}

pub(super) fn kind_path(k: Kind) -> &'static str {
    match k {
        Kind::Miner => "miners",
        Kind::Pool => "pools",
        Kind::Address => "addresses",
    }
}

pub(super) fn check_name(what: &str, v: &str) -> Result<String, String> {
    let v = v.trim();
    if v.is_empty() || v.chars().count() > 64 {
        return Err(format!("{what} must be 1 to 64 characters"));
    }
    if v.chars().any(char::is_control) {
        return Err(format!("{what} cannot contain control characters"));
    }
    if crate::names::looks_empty(v) {
        return Err(format!(
            "{what} must have a visible character (zero-width and text-direction characters \
             alone show as nothing)"
        ));
    }
    Ok(v.to_owned())
}

pub(super) fn choice(v: &str, what: &str) -> Result<Option<i64>, String> {
    match v.trim() {
        "" => Ok(None),
        v => v
            .parse()
            .map(Some)
            .map_err(|_| format!("{what} {v:?} is not one of the choices")),
    }
}

/// Checks a form for `kind`; `Err` is the sentence shown beside it.
pub(super) fn validate(kind: Kind, f: &SettingsForm) -> Result<Valid, String> {
    match kind {
        Kind::Miner => {
            let name = check_name("a miner name", &f.name)?;
            let mut port = f.port.trim().to_owned();
            if port.contains("://") {
                // A Bitaxe or other AxeOS miner, read over HTTP at this address.
                port = miner_rules::normalize_url(&port).map_err(|e| e.to_string())?;
                miner_rules::validate(&name, "/").map_err(|e| e.to_string())?;
            } else {
                miner_rules::validate(&name, &port).map_err(|e| e.to_string())?;
            }
            Ok(Valid::Miner {
                name,
                port,
                pool_id: choice(&f.pool_id, "pool")?,
                address_id: choice(&f.address_id, "coin address")?,
            })
        }
        Kind::Pool => {
            let name = check_name("a pool name", &f.name)?;
            let url = f.url.trim().to_owned();
            if url.is_empty()
                || url.len() > 200
                || url.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err("the pool URL must be a host name or URL without spaces, e.g. public-pool.io or stratum+tcp://pool.example".into());
            }
            let port = f
                .port
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p >= 1)
                .ok_or_else(|| {
                    format!("port {:?} must be a number from 1 to 65535", f.port.trim())
                })?;
            let password = f.password.clone();
            if password.chars().count() > 64 || password.chars().any(char::is_control) {
                return Err(
                    "the pool password must be at most 64 characters, without control characters"
                        .into(),
                );
            }
            Ok(Valid::Pool {
                name,
                url,
                port,
                password: (!password.is_empty()).then_some(password),
            })
        }
        Kind::Address => {
            let label = check_name("a label", &f.label)?;
            address::check(&f.address)?;
            Ok(Valid::Address {
                label,
                address: f.address.trim().to_owned(),
            })
        }
    }
}

/// Stores a valid form. `Ok(Err(message))`: refused (name taken); `Ok(Ok(None))`: no such row.
pub(super) fn store(
    conn: &rusqlite::Connection,
    id: Option<i64>,
    v: &Valid,
) -> rusqlite::Result<Result<Option<i64>, String>> {
    let (kind, name) = match v {
        Valid::Miner { name, .. } => (Kind::Miner, name),
        Valid::Pool { name, .. } => (Kind::Pool, name),
        Valid::Address { label, .. } => (Kind::Address, label),
    };
    if db::name_taken(conn, kind, name, id)? {
        return Ok(Err(format!("{name:?} is already taken: pick another name")));
    }
    let saved = match v {
        Valid::Miner {
            name,
            port,
            pool_id,
            address_id,
        } => db::save_miner(conn, id, name, port, *pool_id, *address_id),
        Valid::Pool {
            name,
            url,
            port,
            password,
        } => {
            let password = match (password, id) {
                (Some(p), _) => p.clone(),
                (None, Some(id)) => conn
                    .query_row("SELECT password FROM pools WHERE id = ?1", [id], |r| {
                        r.get(0)
                    })
                    .optional()?
                    .unwrap_or_else(|| "x".to_owned()),
                (None, None) => "x".to_owned(),
            };
            db::save_pool(conn, id, name, url, *port, &password)
        }
        Valid::Address { label, address } => db::save_address(conn, id, label, address),
    };
    match saved {
        Ok(found) => Ok(Ok(found)),
        // A pool or address picked on the form but deleted meanwhile.
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Ok(Err(
                "that pool or coin address no longer exists: reload the page".into(),
            ))
        }
        Err(e) => Err(e),
    }
}
