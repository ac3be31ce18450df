//! One Save per section: every row of the miners, pools or coin addresses section is sent in
//! one form (fields named `<field>.<id>`), every row is checked, and either all of them are
//! stored in one transaction or none is and the section comes back with what was typed and
//! each error beside its field.

use std::collections::BTreeMap;

use super::form::*;
use super::*;

/// A refused section: what was typed per row, and the errors per (row, field).
pub(super) struct BulkRefused {
    pub kind: Kind,
    /// Row id → what was typed.
    pub rows: BTreeMap<i64, SettingsForm>,
    /// (row id, field) → why; field `""` is about the row as a whole.
    pub errors: BTreeMap<(i64, &'static str), String>,
}

impl BulkRefused {
    /// What was typed for row `id` when this is its section.
    pub fn typed(r: Option<&Self>, kind: Kind, id: i64) -> Option<&SettingsForm> {
        r.filter(|r| r.kind == kind).and_then(|r| r.rows.get(&id))
    }

    /// The error beside `field` of row `id`.
    pub fn error<'a>(r: Option<&'a Self>, kind: Kind, id: i64, field: &str) -> Option<&'a str> {
        r.filter(|r| r.kind == kind).and_then(|r| {
            r.errors
                .iter()
                .find(|((i, f), _)| *i == id && *f == field)
                .map(|(_, m)| m.as_str())
        })
    }
}

/// The rows of a section form: `name.3=…&port.3=…` → {3: SettingsForm{name, port}}. Keys
/// without a row id, or fields a section does not have, are ignored.
pub(super) fn rows(form: &[(String, String)]) -> BTreeMap<i64, SettingsForm> {
    let mut rows: BTreeMap<i64, SettingsForm> = BTreeMap::new();
    for (key, value) in form {
        let Some((field, id)) = key.rsplit_once('.') else {
            continue;
        };
        let Ok(id) = id.parse::<i64>() else {
            continue;
        };
        let f = rows.entry(id).or_default();
        let slot = match field {
            "name" => &mut f.name,
            "port" => &mut f.port,
            "url" => &mut f.url,
            "password" => &mut f.password,
            "label" => &mut f.label,
            "address" => &mut f.address,
            "pool_id" => &mut f.pool_id,
            "address_id" => &mut f.address_id,
            _ => continue,
        };
        *slot = value.clone();
    }
    rows
}

/// Checks one row field by field; every problem is reported, each with the field it is about.
pub(super) fn check_row(
    kind: Kind,
    f: &SettingsForm,
) -> Result<Valid, Vec<(&'static str, String)>> {
    let mut errors = Vec::new();
    let mut note = |field: &'static str, r: Result<(), String>| {
        if let Err(e) = r {
            errors.push((field, e));
        }
    };
    match kind {
        Kind::Miner => {
            note("name", check_name("a miner name", &f.name).map(|_| ()));
            let port = f.port.trim();
            note(
                "port",
                (!port.starts_with('/')).then(|| {
                    format!("port {port:?} must be a device path such as /dev/ttyUSB0 or /dev/serial/by-id/…")
                })
                .map_or(Ok(()), Err),
            );
            note("pool_id", choice(&f.pool_id, "pool").map(|_| ()));
            note(
                "address_id",
                choice(&f.address_id, "coin address").map(|_| ()),
            );
        }
        Kind::Pool => {
            note("name", check_name("a pool name", &f.name).map(|_| ()));
            let url = f.url.trim();
            if url.is_empty()
                || url.len() > 200
                || url.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                note("url", Err("the pool URL must be a host name or URL without spaces, e.g. public-pool.io or stratum+tcp://pool.example".into()));
            }
            if !matches!(f.port.trim().parse::<u16>(), Ok(p) if p >= 1) {
                note(
                    "port",
                    Err(format!(
                        "port {:?} must be a number from 1 to 65535",
                        f.port.trim()
                    )),
                );
            }
            if f.password.chars().count() > 64 || f.password.chars().any(char::is_control) {
                note("password", Err("the pool password must be at most 64 characters, without control characters".into()));
            }
        }
        Kind::Address => {
            note("label", check_name("a label", &f.label).map(|_| ()));
            note("address", address::check(&f.address).map(|_| ()));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // Every field passed, so the one-row check passes too (it checks the same things).
    validate(kind, f).map_err(|e| vec![("", e)])
}

/// (row id, field, why) for rows the database refused.
pub(super) type RowErrors = Vec<(i64, &'static str, String)>;

/// Stores every row or none: `Ok(Err(errors))` when one was refused (a name taken, a row
/// deleted meanwhile), after rolling everything back.
pub(super) fn store_all(
    conn: &rusqlite::Connection,
    rows: &[(i64, Valid)],
) -> rusqlite::Result<Result<(), RowErrors>> {
    let tx = conn.unchecked_transaction()?;
    let mut errors = Vec::new();
    for (id, v) in rows {
        match store(&tx, Some(*id), v)? {
            Ok(Some(_)) => {}
            Ok(None) => errors.push((
                *id,
                "",
                "it was deleted meanwhile: reload the settings page".to_string(),
            )),
            Err(message) => {
                let field = match v {
                    Valid::Address { .. } => "label",
                    _ if message.contains("no longer exists") => "",
                    _ => "name",
                };
                errors.push((*id, field, message));
            }
        }
    }
    if errors.is_empty() {
        tx.commit()?;
        Ok(Ok(()))
    } else {
        // Dropping the transaction rolls back the rows already stored.
        drop(tx);
        Ok(Err(errors))
    }
}

/// `POST /settings/{kind}/all`: saves every row of a section at once, or none of them.
pub async fn save_section(
    req: HttpRequest,
    state: web::Data<AppState>,
    kind: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> actix_web::Result<HttpResponse> {
    csrf::check(&req)?;
    let Some(kind) = parse_kind(&kind) else {
        return Ok(not_found());
    };
    let typed = rows(&form);
    let mut errors: BTreeMap<(i64, &'static str), String> = BTreeMap::new();
    let mut valid = Vec::new();
    for (id, f) in &typed {
        match check_row(kind, f) {
            Ok(v) => valid.push((*id, v)),
            Err(es) => {
                for (field, e) in es {
                    errors.insert((*id, field), e);
                }
            }
        }
    }
    if errors.is_empty() && !valid.is_empty() {
        let stored = state
            .db
            .send(Write::new(move |conn| store_all(conn, &valid)))
            .await
            .map_err(ApiError::from)?
            .map_err(ApiError::from)?;
        match stored {
            Ok(()) => {
                if kind == Kind::Miner {
                    // Start, move or rename the readers now rather than at the next poll.
                    state.supervisor.do_send(MinersChanged);
                }
                return Ok(see_other(&format!(
                    "/settings?saved={0}#{0}",
                    kind_path(kind)
                )));
            }
            Err(es) => {
                for (id, field, e) in es {
                    errors.insert((id, field), e);
                }
            }
        }
    } else if typed.is_empty() {
        return Ok(see_other(&format!("/settings#{}", kind_path(kind))));
    }
    let refused = BulkRefused {
        kind,
        rows: typed,
        errors,
    };
    let how = Rendering {
        bulk: Some(&refused),
        ..Rendering::default()
    };
    super::refused_page(&req, &state, how).await
}
