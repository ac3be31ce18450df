//! `GET /api/records`: the best-share tables, luck, coin flips, histograms and found blocks,
//! per miner and for the herd (see [`crate::db::records`]).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use rusqlite::Connection;
use serde::Serialize;

use super::api::{blocking, fresh_json};
use super::error::ApiError;
use super::{csrf, AppState};
use crate::clock::now_ms;
use crate::db::records::{self, FoundBlock, LotteryFigures, ShareRecord};
use crate::db::Write;
use crate::price::cache;

/// How luck is computed, in one sentence (shown where luck is shown, and in the README).
pub const LUCK_HELP: &str = "Luck = best share ÷ expected best share, where the expected best after H hashes is H ÷ 2³² \
     (a hash reaches difficulty x with chance 1 in x·2³², so the best of H hashes reaches H ÷ 2³² about 63 % of the time): \
     above 1 is lucky, below 1 unlucky; only hashes and shares seen while shepherd watched count.";

/// How coin flips are computed, in one sentence.
pub const COIN_FLIPS_HELP: &str =
    "Coin flips away = log₂(network difficulty ÷ best share): a block needs a share that many \
     doublings better than the best so far, as unlikely as that many heads in a row on top of it.";

/// One power-of-two bucket of the share histogram.
#[derive(Debug, Clone, Serialize)]
pub struct Bucket {
    /// Lower bound: 2^bucket.
    pub from: f64,
    /// Upper bound (exclusive): 2^(bucket+1).
    pub to: f64,
    /// Shares submitted with a difficulty in [from, to).
    pub shares: i64,
}

fn buckets(rows: Vec<(i32, i64)>) -> Vec<Bucket> {
    rows.into_iter()
        .map(|(b, n)| Bucket {
            from: 2f64.powi(b),
            to: 2f64.powi(b + 1),
            shares: n,
        })
        .collect()
}

/// One miner's tables.
#[derive(Debug, Serialize)]
pub struct MinerRecords {
    /// Miner id.
    pub miner_id: i64,
    /// Its name.
    pub name: String,
    /// The identity its records are kept under (USB serial number or `miner:<id>`).
    pub miner_key: String,
    /// Best share, luck, coin flips.
    #[serde(flatten)]
    pub figures: LotteryFigures,
    /// Its top 10.
    pub records: Vec<ShareRecord>,
    /// Its share-difficulty histogram.
    pub histogram: Vec<Bucket>,
}

/// The herd's tables.
#[derive(Debug, Serialize)]
pub struct HerdRecords {
    /// Best share, luck, coin flips.
    #[serde(flatten)]
    pub figures: LotteryFigures,
    /// The herd's top 10.
    pub records: Vec<ShareRecord>,
    /// The herd's share-difficulty histogram.
    pub histogram: Vec<Bucket>,
}

/// The network difficulty the coin flips were computed with, and its age.
#[derive(Debug, Serialize)]
pub struct NetworkRef {
    /// Network difficulty; null when never fetched.
    pub difficulty: Option<f64>,
    /// When it was fetched (Unix ms).
    pub fetched_at: Option<i64>,
    /// Whether it is older than the configured refresh allows.
    pub stale: bool,
}

/// `/api/records`.
#[derive(Debug, Serialize)]
pub struct RecordsDoc {
    /// Server clock (Unix ms).
    pub server_time: i64,
    /// The herd.
    pub herd: HerdRecords,
    /// Every miner configured now.
    pub miners: Vec<MinerRecords>,
    /// Every block found, newest first.
    pub found_blocks: Vec<FoundBlock>,
    /// The network difficulty used.
    pub network: NetworkRef,
    /// The formulas in words.
    pub help: Help,
}

/// The formulas in words.
#[derive(Debug, Serialize)]
pub struct Help {
    /// [`LUCK_HELP`].
    pub luck: &'static str,
    /// [`COIN_FLIPS_HELP`].
    pub coin_flips: &'static str,
}

/// Builds the records document (blocking).
pub fn records_doc(state: &AppState) -> Result<RecordsDoc, crate::db::DbError> {
    let now = now_ms();
    state.pool.with(|c| {
        let net = cache::network_view(c, &state.config.network, now)?;
        let (mut per, herd) = records::lottery_figures(c, now, net.difficulty)?;
        let mut all = records::all_records(c)?;
        let mut stmt = c.prepare_cached(
            "SELECT id, name, coalesce(nullif(usb_serial, ''), 'miner:' || id) FROM miners ORDER BY name",
        )?;
        let list: Vec<(i64, String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        drop(stmt);
        let mut miners = Vec::new();
        for (id, name, key) in list {
            miners.push(MinerRecords {
                miner_id: id,
                name,
                figures: per.remove(&key).unwrap_or_default(),
                records: all.remove(&key).unwrap_or_default(),
                histogram: buckets(records::histogram(c, Some(&key))?),
                miner_key: key,
            });
        }
        Ok(RecordsDoc {
            server_time: now,
            herd: HerdRecords {
                figures: herd,
                records: records::herd_records(c)?,
                histogram: buckets(records::histogram(c, None)?),
            },
            miners,
            found_blocks: records::found_blocks(c)?,
            network: NetworkRef {
                difficulty: net.difficulty,
                fetched_at: net.fetched_at,
                stale: net.stale,
            },
            help: Help {
                luck: LUCK_HELP,
                coin_flips: COIN_FLIPS_HELP,
            },
        })
    })
}

/// `GET /api/records`
pub async fn api(state: web::Data<AppState>) -> actix_web::Result<HttpResponse> {
    let state = state.into_inner();
    let doc = blocking(move || records_doc(&state)).await?;
    Ok(fresh_json(&doc))
}

/// `POST /settings/celebration/test`: every open dashboard and kiosk shows the block
/// celebration, marked as a test, for a minute; back to the settings page.
pub async fn test_celebration(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    csrf::check(&req)?;
    let now = now_ms();
    state
        .db
        .send(Write::new(move |c| records::start_test_celebration(c, now)))
        .await
        .map_err(ApiError::from)?
        .map_err(ApiError::from)?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/settings?saved=celebration#celebration"))
        .finish())
}

/// What a miner's page shows of the lottery.
#[derive(Debug, Default)]
pub struct MinerLotteryPage {
    /// Best share, luck, coin flips.
    pub figures: LotteryFigures,
    /// Its top 10.
    pub records: Vec<ShareRecord>,
    /// Its share-difficulty histogram, (bucket, shares).
    pub histogram: Vec<(i32, i64)>,
    /// The herd's, to compare.
    pub herd_histogram: Vec<(i32, i64)>,
}

/// Reads a miner's lottery figures, records and histogram.
pub fn miner_lottery_page(
    c: &Connection,
    network: &crate::config::NetworkConfig,
    id: i64,
    now: i64,
) -> rusqlite::Result<MinerLotteryPage> {
    let Some((key, _)) = records::miner_key(c, id)? else {
        return Ok(MinerLotteryPage::default());
    };
    let net = cache::network_view(c, network, now)?;
    let (mut per, _) = records::lottery_figures(c, now, net.difficulty)?;
    Ok(MinerLotteryPage {
        figures: per.remove(&key).unwrap_or_default(),
        records: records::miner_records(c, &key)?,
        histogram: records::histogram(c, Some(&key))?,
        herd_histogram: records::histogram(c, None)?,
    })
}

/// 2^b as people read it (`1/32`, `1`, `1.02K`).
fn bucket_label(b: i32) -> String {
    if b < 0 {
        format!("1/{}", 2f64.powi(-b))
    } else {
        super::format::difficulty(Some(2f64.powi(b)))
            .trim_end_matches(".0000")
            .to_owned()
    }
}

/// The share-difficulty histogram as SVG bars on a log-difficulty axis (one bar per power of
/// two, empty buckets between the lowest and highest drawn as gaps), bar height linear in
/// the share count. SVG attributes, not styles, so the CSP allows it.
pub fn histogram_svg(rows: &[(i32, i64)]) -> Markup {
    let (Some(lo), Some(hi)) = (rows.first().map(|r| r.0), rows.last().map(|r| r.0)) else {
        return html! { p.empty { "No shares with a difficulty seen yet (the miner prints one per submitted share)." } };
    };
    let n = (hi - lo + 1).max(1) as f64;
    let max = rows.iter().map(|r| r.1).max().unwrap_or(1).max(1) as f64;
    let (w, h, label_h) = (600.0, 140.0, 16.0);
    let bw = w / n;
    html! {
        svg.histogram-svg viewBox={ "0 0 " (w) " " (h + label_h) } role="img"
            aria-label="Shares per difficulty, one bar per doubling" {
            @for (b, count) in rows {
                @let x = (*b - lo) as f64 * bw;
                @let bh = (*count as f64 / max * (h - 14.0)).max(1.0);
                rect x=(format!("{:.1}", x + 1.0)) y=(format!("{:.1}", h - bh)) width=(format!("{:.1}", (bw - 2.0).max(1.0)))
                    height=(format!("{bh:.1}")) fill="#f7931a" {
                    title { (count) " shares from " (bucket_label(*b)) " to " (bucket_label(*b + 1)) }
                }
                text x=(format!("{:.1}", x + bw / 2.0)) y=(format!("{:.1}", h - bh - 3.0)) font-size="10" text-anchor="middle" fill="currentColor" { (count) }
                text x=(format!("{:.1}", x + bw / 2.0)) y=(format!("{:.1}", h + 12.0)) font-size="10" text-anchor="middle" fill="currentColor" { (bucket_label(*b)) }
            }
        }
    }
}

/// The lottery part of a miner's page: best shares, luck, coin flips and the histogram.
pub fn miner_section(p: &MinerLotteryPage) -> Markup {
    use super::format;
    let f = &p.figures;
    html! {
        section #lottery {
            h2 { "Best shares and luck" }
            p {
                "Best share " strong { (format::difficulty(f.best_share)) }
                " · " span title=(COIN_FLIPS_HELP) { (format::flips(f.coin_flips)) " coin flips from a block" }
                " · luck " span title=(LUCK_HELP) {
                    "24 h " (format::luck(f.luck_24h.luck)) ", 30 d " (format::luck(f.luck_30d.luck)) ", all " (format::luck(f.luck_all.luck))
                }
                @if f.blocks > 0 { " · " strong { (f.blocks) " block(s) found" } }
            }
            p.help { (LUCK_HELP) }
            @if p.records.is_empty() {
                p.empty { "No shares recorded yet." }
            } @else {
                div.table-wrap { table.records {
                    thead { tr { th { "#" } th.num { "Difficulty" } th { "When" } th { "Pool" } th { "Seen as" } } }
                    tbody { @for (i, r) in p.records.iter().enumerate() {
                        tr {
                            td { (i + 1) }
                            td.num { (format::difficulty(Some(r.difficulty))) }
                            td data-ts=(r.at) { (format::utc_time(Some(r.at))) }
                            td { (r.pool.as_deref().unwrap_or("—")) }
                            td { @if r.source == "share" { "share" } @else { "best-difficulty line" } @if !r.live { " (found before shepherd watched)" } }
                        }
                    } }
                } }
            }
            h3 { "Share difficulties" }
            p.help { "Shares submitted per doubling of difficulty (log scale): each bar to the right is half as likely per hash, so a healthy miner's bars halve from one to the next." }
            (histogram_svg(&p.histogram))
            h3 { "The herd's share difficulties" }
            (histogram_svg(&p.herd_histogram))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_draws_one_bar_per_doubling_with_gaps() {
        // 3 shares in [1/32, 1/16), none in [1/16, 1/8), 1 in [1/8, 1/4).
        let svg = histogram_svg(&[(-5, 3), (-3, 1)]).into_string();
        assert_eq!(svg.matches("<rect").count(), 2, "{svg}");
        assert!(svg.contains("3 shares from 1/32 to 1/16"), "{svg}");
        assert!(svg.contains("1 shares from 1/8 to 1/4"), "{svg}");
        // Three slots of 200 px: the second bar starts at 400 (+1 px margin), full height
        // for the largest count (140 - 14 = 126 px), a third of it for 1 share.
        assert!(
            svg.contains(r#"x="1.0" y="14.0" width="198.0" height="126.0""#),
            "{svg}"
        );
        assert!(
            svg.contains(r#"x="401.0" y="98.0" width="198.0" height="42.0""#),
            "{svg}"
        );
        assert!(histogram_svg(&[]).into_string().contains("No shares"));
    }

    #[test]
    fn bucket_labels_read_like_difficulties() {
        assert_eq!(bucket_label(-5), "1/32");
        assert_eq!(bucket_label(0), "1");
        assert_eq!(bucket_label(10), "1.02K");
    }

    #[test]
    fn miner_section_escapes_and_explains() {
        let page = MinerLotteryPage {
            records: vec![ShareRecord {
                id: 1,
                difficulty: 1230.456,
                at: 0,
                miner_id: Some(1),
                miner: "x".into(),
                miner_key: "k".into(),
                pool: Some("<b>pool</b>".into()),
                source: "best_line".into(),
                live: false,
                herd_record: false,
            }],
            ..Default::default()
        };
        let html = miner_section(&page).into_string();
        assert!(html.contains("&lt;b&gt;pool"), "{html}");
        assert!(html.contains("1.23K") && html.contains("found before shepherd watched"));
        assert!(html.contains("Luck = best share"));
    }
}
