//! The settings page as HTML: one form per section with one Save (see [`super::bulk`]), the
//! add forms, the alert rules, the delete confirmation.

use super::alerts::*;
use super::form::*;
use super::*;

pub(super) fn confirm_page(kind: Kind, id: i64, name: &str, users: &[String]) -> Markup {
    let what = match kind {
        Kind::Miner => "miner",
        Kind::Pool => "pool",
        Kind::Address => "coin address",
    };
    layout(
        "Delete?",
        html! {
            h1 { "Delete " (what) " " q { (name) } "?" }
            @if kind == Kind::Miner {
                p { "Its reader stops and its whole history (charts, log lines, events) is deleted. The board itself is not changed; plug it in again and it shows up under Add devices." }
            } @else {
                p { "It is used by " (users.len()) " miner" @if users.len() != 1 { "s" } ":" }
                ul.users { @for u in users { li { (u) } } }
                p { "Those miners are left without a " (what) " here. They keep mining with what is configured on the boards themselves." }
            }
            form.row method="post" action={ "/settings/" (kind_path(kind)) "/" (id) "/delete" } {
                input type="hidden" name="confirm" value="yes";
                button.danger type="submit" { "Delete " (what) }
                a href={ "/settings#" (kind_path(kind)) } { "Cancel" }
            }
        },
    )
}

/// The form for one row (or the "add" form with `id = None`), filled from the refused form
/// when it is this one.
pub(super) fn typed(refused: Option<&Refused>, kind: Kind, id: Option<i64>) -> Option<&Refused> {
    refused.filter(|r| r.kind == kind && r.id == id)
}

pub(super) fn error_line(r: Option<&Refused>) -> Markup {
    html! { @if let Some(r) = r { p.error role="alert" { (r.message) } } }
}

pub(super) fn select(name: &str, none: &str, choices: &[(i64, &str)], picked: &str) -> Markup {
    html! {
        select name=(name) {
            option value="" { (none) }
            @for (id, label) in choices {
                option value=(id) selected[picked == id.to_string()] { (label) }
            }
        }
    }
}

pub(super) fn miner_form(d: &PageData, m: Option<&MinerRow>, r: Option<&Refused>) -> Markup {
    let id = m.map(|m| m.id);
    let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    let (name, port, pool_id, address_id) = match (r, m) {
        (Some(r), _) => (
            r.form.name.clone(),
            r.form.port.clone(),
            r.form.pool_id.trim().to_owned(),
            r.form.address_id.trim().to_owned(),
        ),
        (None, Some(m)) => (
            m.name.clone(),
            m.port.clone(),
            opt(m.pool_id),
            opt(m.address_id),
        ),
        (None, None) => Default::default(),
    };
    let pools: Vec<(i64, &str)> = d.pools.iter().map(|p| (p.id, p.name.as_str())).collect();
    let addrs: Vec<(i64, &str)> = d
        .addresses
        .iter()
        .map(|a| (a.id, a.label.as_str()))
        .collect();
    let action = match id {
        Some(id) => format!("/settings/miners/{id}"),
        None => "/settings/miners".into(),
    };
    html! {
        form.row method="post" action=(action) {
            label { "Name" input type="text" name="name" value=(name) maxlength="64" required; }
            label { "Port or address" input type="text" name="port" value=(port) placeholder="/dev/ttyUSB0 or http://192.168.1.50 (Bitaxe)" required; }
            label { "Pool" (select("pool_id", "— none —", &pools, &pool_id)) }
            label { "Coin address" (select("address_id", "— none —", &addrs, &address_id)) }
            button type="submit" { @if id.is_some() { "Save" } @else { "Add miner" } }
            @if let Some(m) = m { @if m.kind == "demo" { span.muted { "demo" } } }
            (error_line(r))
        }
    }
}

pub(super) fn pool_form(p: Option<&PoolRow>, r: Option<&Refused>) -> Markup {
    let id = p.map(|p| p.id);
    // The password is a secret: never sent back, not even as typed into a refused form.
    let (name, url, port) = match (r, p) {
        (Some(r), _) => (r.form.name.clone(), r.form.url.clone(), r.form.port.clone()),
        (None, Some(p)) => (p.name.clone(), p.url.clone(), p.port.to_string()),
        (None, None) => (String::new(), String::new(), "3333".into()),
    };
    let placeholder = if id.is_some() { "unchanged" } else { "x" };
    let action = match id {
        Some(id) => format!("/settings/pools/{id}"),
        None => "/settings/pools".into(),
    };
    html! {
        form.row method="post" action=(action) {
            label { "Name" input type="text" name="name" value=(name) maxlength="64" required; }
            label { "URL" input type="text" name="url" value=(url) placeholder="public-pool.io" required; }
            label { "Port" input type="number" name="port" value=(port) min="1" max="65535" required; }
            label { "Password" input type="password" name="password" value="" placeholder=(placeholder) maxlength="64" autocomplete="off"; }
            button type="submit" { @if id.is_some() { "Save" } @else { "Add pool" } }
            (error_line(r))
        }
    }
}

pub(super) fn address_form(a: Option<&AddressRow>, r: Option<&Refused>) -> Markup {
    let id = a.map(|a| a.id);
    let (label, addr) = match (r, a) {
        (Some(r), _) => (r.form.label.clone(), r.form.address.clone()),
        (None, Some(a)) => (a.label.clone(), a.address.clone()),
        (None, None) => Default::default(),
    };
    let action = match id {
        Some(id) => format!("/settings/addresses/{id}"),
        None => "/settings/addresses".into(),
    };
    html! {
        form.row method="post" action=(action) {
            label { "Label" input type="text" name="label" value=(label) maxlength="64" required; }
            label.wide { "Bitcoin address" input type="text" name="address" value=(addr) size="46" spellcheck="false" required; }
            button type="submit" { @if id.is_some() { "Save" } @else { "Add address" } }
            (error_line(r))
        }
    }
}

/// A field's error, beside it.
fn field_error(e: Option<&str>) -> Markup {
    html! { @if let Some(e) = e { small.error.field-error role="alert" { (e) } } }
}

/// One existing miner as a row of the miners section form (fields `<field>.<id>`).
pub(super) fn miner_row(d: &PageData, m: &MinerRow, r: Option<&BulkRefused>) -> Markup {
    let id = m.id;
    let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    let (name, port, pool_id, address_id) = match BulkRefused::typed(r, Kind::Miner, id) {
        Some(t) => (
            t.name.clone(),
            t.port.clone(),
            t.pool_id.trim().to_owned(),
            t.address_id.trim().to_owned(),
        ),
        None => (
            m.name.clone(),
            m.port.clone(),
            opt(m.pool_id),
            opt(m.address_id),
        ),
    };
    let err = |f: &str| BulkRefused::error(r, Kind::Miner, id, f);
    let pools: Vec<(i64, &str)> = d.pools.iter().map(|p| (p.id, p.name.as_str())).collect();
    let addrs: Vec<(i64, &str)> = d
        .addresses
        .iter()
        .map(|a| (a.id, a.label.as_str()))
        .collect();
    html! {
        div.item.row data-id=(id) {
            label { "Name" input type="text" name={ "name." (id) } value=(name) maxlength="64" required aria-invalid=[err("name").map(|_| "true")]; (field_error(err("name"))) }
            label { "Port" input type="text" name={ "port." (id) } value=(port) placeholder="/dev/ttyUSB0" required aria-invalid=[err("port").map(|_| "true")]; (field_error(err("port"))) }
            label { "Pool" (select(&format!("pool_id.{id}"), "— none —", &pools, &pool_id)) (field_error(err("pool_id"))) }
            label { "Coin address" (select(&format!("address_id.{id}"), "— none —", &addrs, &address_id)) (field_error(err("address_id"))) }
            @if m.kind == "demo" { span.muted { "demo" } }
            // Read over HTTP: its "port" is an address.
            @if m.kind == "axeos" { span.muted { "AxeOS" } }
            button.danger-outline type="submit" formaction={ "/settings/miners/" (id) "/delete" } formnovalidate { "Delete" }
            (field_error(err("")))
        }
    }
}

/// One existing pool as a row of the pools section form.
pub(super) fn pool_row(p: &PoolRow, r: Option<&BulkRefused>) -> Markup {
    let id = p.id;
    // The password is a secret: never sent back, not even as typed into a refused form.
    let (name, url, port) = match BulkRefused::typed(r, Kind::Pool, id) {
        Some(t) => (t.name.clone(), t.url.clone(), t.port.clone()),
        None => (p.name.clone(), p.url.clone(), p.port.to_string()),
    };
    let err = |f: &str| BulkRefused::error(r, Kind::Pool, id, f);
    html! {
        div.item.row data-id=(id) {
            label { "Name" input type="text" name={ "name." (id) } value=(name) maxlength="64" required aria-invalid=[err("name").map(|_| "true")]; (field_error(err("name"))) }
            label { "URL" input type="text" name={ "url." (id) } value=(url) placeholder="public-pool.io" required aria-invalid=[err("url").map(|_| "true")]; (field_error(err("url"))) }
            label { "Port" input type="number" name={ "port." (id) } value=(port) min="1" max="65535" required aria-invalid=[err("port").map(|_| "true")]; (field_error(err("port"))) }
            label { "Password" input type="password" name={ "password." (id) } value="" placeholder="unchanged" maxlength="64" autocomplete="off" aria-invalid=[err("password").map(|_| "true")]; (field_error(err("password"))) }
            button.danger-outline type="submit" formaction={ "/settings/pools/" (id) "/delete" } formnovalidate { "Delete" }
            (field_error(err("")))
        }
    }
}

/// One existing coin address as a row of the addresses section form.
pub(super) fn address_row(a: &AddressRow, r: Option<&BulkRefused>) -> Markup {
    let id = a.id;
    let (label, addr) = match BulkRefused::typed(r, Kind::Address, id) {
        Some(t) => (t.label.clone(), t.address.clone()),
        None => (a.label.clone(), a.address.clone()),
    };
    let err = |f: &str| BulkRefused::error(r, Kind::Address, id, f);
    html! {
        div.item.row data-id=(id) {
            label { "Label" input type="text" name={ "label." (id) } value=(label) maxlength="64" required aria-invalid=[err("label").map(|_| "true")]; (field_error(err("label"))) }
            label.wide { "Bitcoin address" input type="text" name={ "address." (id) } value=(addr) size="46" spellcheck="false" required aria-invalid=[err("address").map(|_| "true")]; (field_error(err("address"))) }
            button.danger-outline type="submit" formaction={ "/settings/addresses/" (id) "/delete" } formnovalidate { "Delete" }
            (field_error(err("")))
        }
    }
}

/// A section's one form: every row, one Save.
fn section_form(kind: Kind, what: &str, rows: Markup, refused: bool) -> Markup {
    html! {
        form.section method="post" action={ "/settings/" (kind_path(kind)) "/all" } {
            // First in the form, so Enter in a field saves (the default button is the first
            // submit button, and each row has a Delete); app.css shows it after the rows.
            button.save type="submit" { "Save " (what) }
            @if refused { p.error role="alert" { "Nothing in this section was saved: correct the fields marked beside them and save again." } }
            (rows)
        }
    }
}

/// What a settings page shows besides the stored rows.
#[derive(Default)]
pub(super) struct Rendering<'a> {
    /// A refused add or one-row form.
    pub refused: Option<&'a Refused>,
    /// A refused section form.
    pub bulk: Option<&'a BulkRefused>,
    /// The section just saved.
    pub saved: Option<Kind>,
    /// The alert rules were just saved.
    pub alerts_saved: bool,
    /// A refused alert rules form.
    pub alerts_refused: Option<&'a AlertsRefused>,
    /// A refused pool profiles or desired configuration section.
    pub fleet: Option<&'a super::fleet::FleetRefused>,
    /// A refused subnet scan form.
    pub scan: Option<&'a ScanRefused>,
}

pub(super) fn render(
    req: &HttpRequest,
    state: &AppState,
    d: &PageData,
    refused: Option<&Refused>,
    saved: Option<Kind>,
    alerts_saved: bool,
) -> Markup {
    render_with(req, state, d, refused, saved, alerts_saved, None)
}

pub(super) fn render_with(
    req: &HttpRequest,
    state: &AppState,
    d: &PageData,
    refused: Option<&Refused>,
    saved: Option<Kind>,
    alerts_saved: bool,
    alerts_refused: Option<&AlertsRefused>,
) -> Markup {
    render_page(
        req,
        state,
        d,
        Rendering {
            refused,
            bulk: None,
            saved,
            alerts_saved,
            alerts_refused,
            fleet: None,
            scan: None,
        },
    )
}

pub(super) fn render_page(
    req: &HttpRequest,
    state: &AppState,
    d: &PageData,
    how: Rendering<'_>,
) -> Markup {
    let Rendering {
        refused,
        bulk,
        saved,
        alerts_saved,
        alerts_refused,
        fleet,
        scan,
    } = how;
    let saved_query = |what: &str| req.query_string().contains(&format!("saved={what}"));
    let bulk_in = |k: Kind| bulk.is_some_and(|b| b.kind == k);
    let login_needed = state.password.is_set();
    let logged_in = login_needed && auth::allowed(state, req);
    let saved_note = |k: Kind| html! { @if saved == Some(k) { p.notice.ok { "Saved." } } };
    layout(
        "Settings",
        html! {
            div.settings {
                h1 { "Settings" }
                @if login_needed {
                    @if logged_in {
                        form.inline method="post" action="/logout" { span.muted { "Logged in. " } button.secondary type="submit" { "Log out" } }
                    } @else {
                        p.notice { "Changes need a login: " a href="/login" { "log in" } "." }
                    }
                }
                @if refused.is_some() || alerts_refused.is_some() || bulk.is_some() || fleet.is_some() || scan.is_some() { p.notice role="alert" { "Not saved — see the messages beside the fields." } }
                section #miners {
                    h2 { "Miners" }
                    (saved_note(Kind::Miner))
                    @if !d.miners.is_empty() {
                        (section_form(Kind::Miner, "miners", html! { @for m in &d.miners { (miner_row(d, m, bulk)) } }, bulk_in(Kind::Miner)))
                    }
                    h3 { "Add a miner" }
                    (miner_form(d, None, typed(refused, Kind::Miner, None)))
                    p.muted { "New boards plugged into this machine are easier to add from " a href="/onboarding" { "Add devices" } "." }
                    (super::scan::scan_form(scan))
                }
                section #pools {
                    h2 { "Pools" }
                    (saved_note(Kind::Pool))
                    @if !d.pools.is_empty() {
                        (section_form(Kind::Pool, "pools", html! { @for p in &d.pools { (pool_row(p, bulk)) } }, bulk_in(Kind::Pool)))
                    }
                    h3 { "Add a pool" }
                    (pool_form(None, typed(refused, Kind::Pool, None)))
                }
                section #addresses {
                    h2 { "Coin addresses" }
                    (saved_note(Kind::Address))
                    @if !d.addresses.is_empty() {
                        (section_form(Kind::Address, "coin addresses", html! { @for a in &d.addresses { (address_row(a, bulk)) } }, bulk_in(Kind::Address)))
                    }
                    h3 { "Add an address" }
                    (address_form(None, typed(refused, Kind::Address, None)))
                    p.muted { "Checked as a Bitcoin address: bech32/bech32m (bc1…) or base58check (1…, 3…), checksum included. " code { "address.worker" } " is accepted." }
                }
                (super::fleet::profiles_section(d, fleet, saved_query("profiles")))
                (super::fleet::desired_section(d, fleet, saved_query("desired")))
                section #alert-rules {
                    h2 { "Alert rules" }
                    @if alerts_saved { p.notice.ok { "Saved." } }
                    (alerts_form(&state.config.alerts, &d.alert_overrides, alerts_refused))
                }
                (super::super::tokens::section(state, &d.tokens))
                section #celebration {
                    h2 { "Block celebration" }
                    @if req.query_string().contains("saved=celebration") {
                        p.notice.ok { "Test celebration sent: every open dashboard and kiosk shows it, marked TEST, for a minute." }
                    }
                    p { "The day a miner finds a block every open dashboard and kiosk goes full screen with it. Check that your kiosk and phone show it:" }
                    form method="post" action="/settings/celebration/test" {
                        button type="submit" #test-celebration { "Test celebration" }
                    }
                }
            }
        },
    )
}
