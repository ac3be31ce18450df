//! `/firmware` and `GET /api/firmware`: the firmware inventory, grouped by version beside the
//! newest version known (the shipped list, or `firmware-versions.txt` next to the database).

use std::path::Path;

use actix_web::{web, HttpResponse};
use maud::{html, Markup};
use rusqlite::Connection;
use serde::Serialize;

use super::api::{blocking, fresh_json};
use super::frame::layout;
use super::AppState;
use crate::inventory::{self, MinerFirmware, VersionGroup};

/// What the inventory shows.
#[derive(Debug, Serialize)]
pub struct Inventory {
    /// Where the known versions came from (`shipped` or the override file's path).
    pub known_from: String,
    /// What is wrong with the override file, if it cannot be read (the shipped list is used).
    pub known_error: Option<String>,
    /// Newest version per family.
    pub known: Vec<(String, String)>,
    /// Miners by family and version.
    pub groups: Vec<VersionGroup>,
}

/// Every miner's firmware as the summarizer and the last flash read saw it.
pub fn miners(conn: &Connection) -> rusqlite::Result<Vec<MinerFirmware>> {
    let mut stmt = conn.prepare_cached(
        "SELECT m.id, m.name, s.firmware_family, s.firmware, s.display,
                coalesce((SELECT b.chip FROM config_backups b
                          WHERE b.miner_id = m.id AND b.chip IS NOT NULL
                          ORDER BY b.created_at DESC, b.id DESC LIMIT 1), s.chip_model)
         FROM miners m LEFT JOIN miner_summary s ON s.miner_id = m.id ORDER BY m.name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(MinerFirmware {
            miner_id: r.get(0)?,
            miner: r.get(1)?,
            family: r.get(2)?,
            version: r.get(3)?,
            board: r.get(4)?,
            chip: r.get(5)?,
        })
    })?;
    rows.collect()
}

/// The known versions: the owner's file next to `database` when there is one, else the
/// shipped list; with where they came from and what is wrong with the file.
pub fn known_versions(database: &Path) -> (Vec<(String, String)>, String, Option<String>) {
    let file = database
        .parent()
        .unwrap_or(Path::new("."))
        .join(inventory::OVERRIDE_FILE);
    let shipped = || inventory::parse_known(inventory::SHIPPED).unwrap_or_default();
    match std::fs::read_to_string(&file) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (shipped(), "shipped".into(), None),
        Err(e) => (
            shipped(),
            "shipped".into(),
            Some(format!("cannot read {}: {e}", file.display())),
        ),
        Ok(text) => match inventory::parse_known(&text) {
            Ok(known) => (known, file.display().to_string(), None),
            Err(e) => (
                shipped(),
                "shipped".into(),
                Some(format!("{}: {e}; fix it to use it", file.display())),
            ),
        },
    }
}

fn load(state: &AppState) -> Result<Inventory, crate::db::DbError> {
    let list = state.pool.with(miners)?;
    let (known, known_from, known_error) = known_versions(&state.config.database.path);
    Ok(Inventory {
        groups: inventory::group(&list, &known),
        known_from,
        known_error,
        known,
    })
}

/// `GET /api/firmware`
pub async fn api(state: web::Data<AppState>) -> actix_web::Result<HttpResponse> {
    let st = state.into_inner();
    Ok(fresh_json(&blocking(move || load(&st)).await?))
}

/// `GET /firmware`
pub async fn page(state: web::Data<AppState>) -> actix_web::Result<HttpResponse> {
    let st = state.into_inner();
    let inv = blocking(move || load(&st)).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(render(&inv).into_string()))
}

/// The inventory as a table per version.
pub fn render(inv: &Inventory) -> Markup {
    layout(
        "Firmware",
        html! {
            h1 { "Firmware" }
            p.muted {
                "Versions come from each miner's subscribe line (an AxeOS miner's from its API), the family and board from its boot banner, the chip from the last flash read, else from what the miner named itself (a boot "
                code { "Chip:" }
                " line, an AxeOS ASIC model). "
                "Newest known: "
                @for (i, (f, v)) in inv.known.iter().enumerate() {
                    @if i > 0 { ", " }
                    (f) " " strong { (v) }
                }
                " (" (inv.known_from) "; put a “family version” list in " code { (inventory::OVERRIDE_FILE) } " next to the database to update it)."
            }
            @if let Some(e) = &inv.known_error { p.error { (e) } }
            @if inv.groups.is_empty() { p { "No miners yet." } }
            @for g in &inv.groups {
                section.card {
                    h2 {
                        (g.family) " " (g.version.as_deref().unwrap_or("version not seen yet"))
                        " " span class={"badge firmware-" (g.state)} {
                            @match g.state {
                                "outdated" => { "outdated (newest " (g.newest.as_deref().unwrap_or("?")) ")" },
                                "current" => "newest",
                                "newer" => "newer than the list",
                                _ => "unknown",
                            }
                        }
                    }
                    // A phone scrolls the table, not the page.
                    div.table-scroll {
                        table {
                            thead { tr { th { "Miner" } th { "Board" } th { "Chip" } } }
                            tbody {
                                @for m in &g.miners {
                                    tr {
                                        td { a href={"/miners/" (m.miner_id)} { (m.miner) } }
                                        td { (m.board.as_deref().unwrap_or("—")) }
                                        td { @match (&m.chip, m.family.as_deref()) {
                                            (Some(c), _) => (c),
                                            // Over HTTP there is no flash read to learn it from.
                                            (None, Some("AxeOS")) => "—",
                                            (None, _) => "— (read its configuration once)",
                                        } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::memory_db;

    #[test]
    fn the_inventory_reads_summary_and_backups() {
        let c = memory_db();
        c.execute_batch(
            "INSERT INTO miners (id, name, port, kind) VALUES (1, 'a', '/dev/a', 'demo'), (2, '<b>', '/dev/b', 'demo'),
               (3, 'axe', 'http://127.0.0.1:1', 'axeos');
             INSERT INTO miner_summary (miner_id, firmware, display, chip_model) VALUES (1, 'V1.7.0', 'TFT_eSPI', 'ESP32-D0WD'),
               (3, 'v2.12.0', NULL, 'BM1366 (Gamma)');
             INSERT INTO config_backups (miner_id, path, chip, offset, size, sha256, created_at)
               VALUES (1, 'x', 'ESP32-D0WD', 0, 1, 'h', 1), (1, 'y', 'ESP32-D0WD-V3', 0, 1, 'h', 2);",
        )
        .unwrap();
        let list = miners(&c).unwrap();
        assert_eq!(list[1].miner, "a");
        assert_eq!(
            list[1].chip.as_deref(),
            Some("ESP32-D0WD-V3"),
            "the flash read's chip before the boot line's"
        );
        assert_eq!(list[2].miner, "axe");
        assert_eq!(
            list[2].chip.as_deref(),
            Some("BM1366 (Gamma)"),
            "what the miner named itself when nothing was read"
        );
        assert_eq!(list[1].board.as_deref(), Some("TFT_eSPI"));
        assert_eq!(list[0].version, None);
        let known = inventory::parse_known("NerdMiner V1.8.3").unwrap();
        let inv = Inventory {
            groups: inventory::group(&list, &known),
            known_from: "shipped".into(),
            known_error: None,
            known,
        };
        let html = render(&inv).into_string();
        assert!(html.contains("outdated (newest V1.8.3)"), "{html}");
        assert!(html.contains("&lt;b&gt;"));
    }

    #[test]
    fn an_owner_file_replaces_the_shipped_list_and_a_bad_one_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("shepherd.db");
        let (known, from, err) = known_versions(&db);
        assert_eq!((from.as_str(), err), ("shipped", None));
        assert!(!known.is_empty());
        std::fs::write(
            dir.path().join(inventory::OVERRIDE_FILE),
            "NerdMiner V1.9.1\n",
        )
        .unwrap();
        let (known, from, _) = known_versions(&db);
        assert_eq!(known, [("NerdMiner".to_owned(), "V1.9.1".to_owned())]);
        assert!(from.ends_with(inventory::OVERRIDE_FILE));
        std::fs::write(dir.path().join(inventory::OVERRIDE_FILE), "oops\n").unwrap();
        let (_, from, err) = known_versions(&db);
        assert_eq!(from, "shipped");
        assert!(err.unwrap().contains("line 1"));
    }
}
