//! `POST /settings/miners/scan`: the web side of `shepherd miners scan`. The owner names a
//! subnet; every address in it is asked once for `/api/system/info` (see
//! [`crate::miner::axeos::scan`]) and the page lists what answered, each new one with an Add
//! form that posts to the ordinary `POST /settings/miners`, so there is one way to add.

use super::*;
use crate::miner::axeos::scan::{self, Found};

/// The scan form as typed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ScanForm {
    /// `a.b.c.d/n` or one address.
    pub cidr: String,
    /// HTTP port to ask (empty: 80, where AxeOS answers).
    pub port: String,
}

/// A refused scan form: what was typed and why, shown beside the field.
pub(super) struct ScanRefused {
    pub form: ScanForm,
    pub message: String,
}

/// A checked scan: the URLs to ask.
#[derive(Debug, PartialEq)]
pub(super) struct ScanPlan {
    pub urls: Vec<String>,
}

/// Checks the form; `Err` is the sentence shown beside the field.
pub(super) fn plan(f: &ScanForm) -> Result<ScanPlan, String> {
    let hosts = scan::hosts(&f.cidr)?;
    let port =
        match f.port.trim() {
            "" => 80,
            p => p.parse::<u16>().ok().filter(|p| *p >= 1).ok_or_else(|| {
                format!("port {p:?} must be a number from 1 to 65535 (AxeOS: 80)")
            })?,
        };
    Ok(ScanPlan {
        urls: scan::urls(&hosts, port),
    })
}

/// One answering miner as the page shows it.
#[derive(Debug, PartialEq)]
pub(super) struct Row {
    pub found: Found,
    /// The watching miner's name, when it is already in the herd.
    pub known_as: Option<String>,
    /// Name offered on its Add form.
    pub suggested: String,
}

/// Pairs what answered with the herd: known by its normalised URL among the AxeOS miners,
/// otherwise offered under a name no miner (nor an earlier row) has.
pub(super) fn rows(found: Vec<Found>, miners: &[MinerRow]) -> Vec<Row> {
    let mut taken: Vec<String> = miners.iter().map(|m| m.name.clone()).collect();
    found
        .into_iter()
        .map(|f| {
            let url = miner_rules::normalize_url(&f.url).unwrap_or_else(|_| f.url.clone());
            let known_as = miners
                .iter()
                .find(|m| m.kind == "axeos" && m.port == url)
                .map(|m| m.name.clone());
            let suggested = scan::suggest_name(&f, &taken);
            if known_as.is_none() {
                taken.push(suggested.clone());
            }
            Row {
                found: Found { url, ..f },
                known_as,
                suggested,
            }
        })
        .collect()
}

/// The scan form in the miners section of /settings.
pub(super) fn scan_form(refused: Option<&ScanRefused>) -> Markup {
    let (cidr, port) = refused
        .map(|r| (r.form.cidr.clone(), r.form.port.clone()))
        .unwrap_or_else(|| (String::new(), "80".into()));
    let error = refused.map(|r| r.message.as_str());
    html! {
        h3 #scan { "Find Bitaxes on a subnet" }
        form.row method="post" action="/settings/miners/scan" {
            label { "Subnet" input type="text" name="cidr" value=(cidr) placeholder="192.168.1.0/24" required aria-invalid=[error.map(|_| "true")];
                @if let Some(e) = error { small.error.field-error role="alert" { (e) } } }
            label { "HTTP port" input type="number" name="port" value=(port) min="1" max="65535"; }
            button type="submit" { "Scan" }
        }
        p.muted { "Asks each address (at most " (scan::MAX_HOSTS) ", a /23) for AxeOS's " code { "/api/system/info" } "; a /24 takes a few seconds." }
    }
}

fn results_page(cidr: &str, rows: &[Row]) -> Markup {
    layout(
        "Bitaxes found",
        html! {
            div.settings {
                h1 { "AxeOS miners on " (cidr) }
                @if rows.is_empty() {
                    p.notice { "No AxeOS miner answered on " (cidr) "." }
                    ul {
                        li { "Is this machine on the same subnet as the miners? The Bitaxe's screen or your router's client list shows its address." }
                        li { "AxeOS answers on port 80 over plain HTTP: open http://its-address in a browser from here to check." }
                        li { "A miner that is restarting or still joining Wi-Fi does not answer: scan again in a minute." }
                    }
                } @else {
                    table.scan-results {
                        thead { tr { th { "Address" } th { "Hostname" } th { "ASIC" } th { "Firmware" } th { "" } } }
                        tbody {
                            @for r in rows {
                                tr {
                                    td { code { (r.found.url) } }
                                    td { (r.found.hostname.as_deref().unwrap_or("—")) }
                                    td { (r.found.asic_model.as_deref().unwrap_or("—")) }
                                    td { (r.found.version.as_deref().unwrap_or("—")) }
                                    td {
                                        @if let Some(name) = &r.known_as {
                                            span.muted { "already watched as " q { (name) } }
                                        } @else {
                                            form.row method="post" action="/settings/miners" {
                                                input type="hidden" name="port" value=(r.found.url);
                                                label { "Name" input type="text" name="name" value=(r.suggested) maxlength="64" required; }
                                                button type="submit" { "Add" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                p { a href="/settings#scan" { "Back to settings" } }
            }
        },
    )
}

/// `POST /settings/miners/scan`: asks the subnet and lists the AxeOS miners that answered.
pub async fn scan_subnet(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<ScanForm>,
) -> actix_web::Result<HttpResponse> {
    csrf::check(&req)?;
    let form = form.into_inner();
    let plan = match plan(&form) {
        Ok(p) => p,
        Err(message) => {
            let refused = ScanRefused { form, message };
            let how = Rendering {
                scan: Some(&refused),
                ..Rendering::default()
            };
            return super::refused_page(&req, &state, how).await;
        }
    };
    // Up to ~30 s of blocking HTTP for a /23: on the blocking pool, never the executor.
    let found = web::block(move || scan::probe(plan.urls, scan::TIMEOUT))
        .await
        .map_err(ApiError::from)?;
    let st = state.clone().into_inner();
    let miners = blocking(move || st.pool.with(db::miners)).await?;
    let rows = rows(found, &miners);
    Ok(html_response(
        StatusCode::OK,
        results_page(form.cidr.trim(), &rows),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(url: &str, hostname: &str) -> Found {
        Found {
            url: url.into(),
            hostname: Some(hostname.into()),
            version: Some("v2.12.0".into()),
            asic_model: Some("BM1370".into()),
            hashrate_ghs: 1000.0,
        }
    }

    fn miner(name: &str, port: &str, kind: &str) -> MinerRow {
        MinerRow {
            id: 1,
            name: name.into(),
            port: port.into(),
            kind: kind.into(),
            pool_id: None,
            address_id: None,
        }
    }

    #[test]
    fn the_form_is_checked_before_anything_is_asked() {
        let f = |cidr: &str, port: &str| {
            plan(&ScanForm {
                cidr: cidr.into(),
                port: port.into(),
            })
        };
        assert_eq!(f("10.0.0.5", "").unwrap().urls, ["http://10.0.0.5"]);
        assert_eq!(
            f("127.0.0.1/32", "8080").unwrap().urls,
            ["http://127.0.0.1:8080"]
        );
        assert!(f("10.0.0.0/8", "80").unwrap_err().contains("at most 512"));
        assert!(f("nonsense", "80").unwrap_err().contains("IPv4 subnet"));
        assert!(f("10.0.0.5", "0").unwrap_err().contains("1 to 65535"));
        assert!(f("10.0.0.5", "http").unwrap_err().contains("1 to 65535"));
    }

    #[test]
    fn found_miners_are_matched_with_the_herd_and_get_free_names() {
        let herd = [
            miner("desk", "http://10.0.0.2", "axeos"),
            miner("bitaxe", "/dev/ttyUSB0", "serial"),
        ];
        let r = rows(
            vec![
                found("http://10.0.0.2", "gamma"),
                found("http://10.0.0.3", "bitaxe"),
                found("http://10.0.0.4", "bitaxe"),
            ],
            &herd,
        );
        assert_eq!(r[0].known_as.as_deref(), Some("desk"));
        assert_eq!(r[1].known_as, None);
        assert_eq!(r[1].suggested, "bitaxe-2");
        assert_eq!(r[2].suggested, "bitaxe-3");
        // A serial miner on a device path is never the same as an address.
        let r = rows(
            vec![found("http://10.0.0.2", "x")],
            &[miner("d", "http://10.0.0.2", "serial")],
        );
        assert_eq!(r[0].known_as, None);
    }

    #[test]
    fn results_escape_what_the_miner_says() {
        let rows = rows(vec![found("http://10.0.0.3", "<script>x</script>")], &[]);
        let page = results_page("10.0.0.0/24", &rows).into_string();
        assert!(!page.contains("<script>x"));
        assert!(page.contains("&lt;script&gt;"));
        assert!(page.contains(r#"action="/settings/miners""#));
        let empty = results_page("10.0.0.0/24", &[]).into_string();
        assert!(empty.contains("No AxeOS miner answered") && empty.contains("port 80"));
    }
}
