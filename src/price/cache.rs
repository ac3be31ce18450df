//! What the price actor keeps in `price_cache`, and the views the API builds from it.
//!
//! Values are stored with their fetch time and are never replaced by a failed fetch, so after
//! a restart or while the Pi is offline the dashboard shows the last real value "as of" when
//! it was fetched, marked stale once older than the configured age.

use rusqlite::Connection;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::{NetworkConfig, PriceConfig};
use crate::db::price_cache::{self, CacheRow};
use crate::model::price::{self as providers, NetworkFigures, PriceProvider, Quote, Retarget};

/// Key of the network figures.
pub const NETWORK_KEY: &str = "network";
/// Key of the price feed's last attempt.
pub const PRICE_STATUS_KEY: &str = "price_status";
/// Key of the network feed's last attempt.
pub const NETWORK_STATUS_KEY: &str = "network_status";

/// Key of the price in `currency`: one row per currency, so switching currency never shows
/// an old price in the wrong unit.
pub fn price_key(currency: &str) -> String {
    format!("price:{}", currency.to_ascii_uppercase())
}

/// How the last attempt went (stored with the attempt's time as `fetched_at`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FeedStatus {
    /// What went wrong, for people; `None` when everything answered.
    pub last_error: Option<String>,
    /// A provider asked us to wait until this time (Unix ms).
    pub retry_at: Option<i64>,
}

/// A cached value and when it was fetched.
#[derive(Debug, Clone, PartialEq)]
pub struct Cached<T> {
    /// The value.
    pub value: T,
    /// When it was fetched (Unix ms).
    pub fetched_at: i64,
}

/// A row for `key` holding `value`.
pub fn row<T: Serialize>(key: &str, value: &T, fetched_at: i64) -> Result<CacheRow, String> {
    let value_json = serde_json::to_string(value).map_err(|e| e.to_string())?;
    Ok(CacheRow {
        key: key.into(),
        value_json,
        fetched_at,
    })
}

/// Reads and decodes `key`. A row that does not decode (written by another version, say) is
/// treated as absent, with a warning, rather than failing the whole page.
pub fn load<T: DeserializeOwned>(
    conn: &Connection,
    key: &str,
) -> rusqlite::Result<Option<Cached<T>>> {
    let Some(row) = price_cache::load(conn, key)? else {
        return Ok(None);
    };
    match serde_json::from_str(&row.value_json) {
        Ok(value) => Ok(Some(Cached {
            value,
            fetched_at: row.fetched_at,
        })),
        Err(e) => {
            tracing::warn!("price_cache row {key:?} is unreadable, ignoring it: {e}");
            Ok(None)
        }
    }
}

/// Older than `stale_after_secs`, or missing altogether (so a script that only checks
/// `stale` never uses a null price as fresh).
pub fn is_stale(fetched_at: Option<i64>, now_ms: i64, stale_after_secs: u64) -> bool {
    let limit = i64::try_from(stale_after_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    fetched_at.is_none_or(|t| now_ms.saturating_sub(t) > limit)
}

/// `price` in `/api/herd_data`. Every field is null-safe: never fetched means nulls and
/// `stale: true`, not zeros.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PriceView {
    /// Price of one bitcoin in `currency`.
    pub price: Option<f64>,
    /// Currency of `price` (the configured one when there is no price yet).
    pub currency: String,
    /// Change over 24 hours, percent (null: the provider gave none).
    pub change_24h_percent: Option<f64>,
    /// When `price` was fetched (Unix ms).
    pub fetched_at: Option<i64>,
    /// `price` is older than `stale_after_secs`, or there is none.
    pub stale: bool,
    /// Provider of `price`: `coincodex`, `coingecko` or `mempool`.
    pub source: Option<PriceProvider>,
    /// What went wrong at the last attempt (null when it all went well).
    pub last_error: Option<String>,
    /// When the provider says its quote is from (Unix ms), if it says.
    pub quoted_at: Option<i64>,
    /// Time of the last attempt, successful or not (Unix ms).
    pub last_attempt: Option<i64>,
    /// A provider asked us to wait until then (Unix ms).
    pub retry_at: Option<i64>,
    /// `[price] enabled`.
    pub enabled: bool,
}

/// `network` in `/api/herd_data`, null-safe like [`PriceView`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetworkView {
    /// Network difficulty.
    pub difficulty: Option<f64>,
    /// Estimated network hashrate (H/s, 3-day estimate).
    pub hashrate_hs: Option<f64>,
    /// Height of the chain tip.
    pub block_height: Option<u64>,
    /// The coming difficulty adjustment.
    pub retarget: Option<Retarget>,
    /// When the figures were fetched (Unix ms).
    pub fetched_at: Option<i64>,
    /// Older than `stale_after_secs`, or none.
    pub stale: bool,
    /// What went wrong at the last attempt.
    pub last_error: Option<String>,
    /// Time of the last attempt (Unix ms).
    pub last_attempt: Option<i64>,
    /// mempool asked us to wait until then (Unix ms).
    pub retry_at: Option<i64>,
    /// `[network] enabled`.
    pub enabled: bool,
}

fn disabled(section: &str) -> String {
    format!("fetching is off ([{section}] enabled = false); showing the last value fetched, if any")
}

/// The price as the API shows it at `now_ms`.
pub fn price_view(
    conn: &Connection,
    cfg: &PriceConfig,
    now_ms: i64,
) -> rusqlite::Result<PriceView> {
    let currency =
        providers::normalize_currency(&cfg.currency).unwrap_or_else(|_| cfg.currency.clone());
    let quote: Option<Cached<Quote>> = load(conn, &price_key(&currency))?;
    let status: Option<Cached<FeedStatus>> = load(conn, PRICE_STATUS_KEY)?;
    let fetched_at = quote.as_ref().map(|q| q.fetched_at);
    let (last_error, retry_at) = status_fields(cfg.enabled, "price", status.as_ref());
    Ok(PriceView {
        price: quote.as_ref().map(|q| q.value.price),
        currency: quote
            .as_ref()
            .map_or(currency, |q| q.value.currency.clone()),
        change_24h_percent: quote.as_ref().and_then(|q| q.value.change_24h_percent),
        fetched_at,
        stale: is_stale(fetched_at, now_ms, cfg.stale_after_secs),
        source: quote.as_ref().map(|q| q.value.source),
        last_error,
        quoted_at: quote.as_ref().and_then(|q| q.value.quoted_at),
        last_attempt: status.as_ref().map(|s| s.fetched_at),
        retry_at,
        enabled: cfg.enabled,
    })
}

/// The network figures as the API shows them at `now_ms`.
pub fn network_view(
    conn: &Connection,
    cfg: &NetworkConfig,
    now_ms: i64,
) -> rusqlite::Result<NetworkView> {
    let figures: Option<Cached<NetworkFigures>> = load(conn, NETWORK_KEY)?;
    let status: Option<Cached<FeedStatus>> = load(conn, NETWORK_STATUS_KEY)?;
    let fetched_at = figures.as_ref().map(|f| f.fetched_at);
    let (last_error, retry_at) = status_fields(cfg.enabled, "network", status.as_ref());
    let figures = figures.map(|f| f.value);
    Ok(NetworkView {
        difficulty: figures.as_ref().map(|f| f.difficulty),
        hashrate_hs: figures.as_ref().map(|f| f.hashrate_hs),
        block_height: figures.as_ref().map(|f| f.block_height),
        retarget: figures.map(|f| f.retarget),
        fetched_at,
        stale: is_stale(fetched_at, now_ms, cfg.stale_after_secs),
        last_error,
        last_attempt: status.as_ref().map(|s| s.fetched_at),
        retry_at,
        enabled: cfg.enabled,
    })
}

fn status_fields(
    enabled: bool,
    section: &str,
    status: Option<&Cached<FeedStatus>>,
) -> (Option<String>, Option<i64>) {
    if !enabled {
        return (Some(disabled(section)), None);
    }
    status.map_or((None, None), |s| {
        (s.value.last_error.clone(), s.value.retry_at)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::price_cache::store;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let (conn, _) = crate::db::open_writer(&dir.path().join("t.db")).unwrap();
        (dir, conn)
    }

    fn quote() -> Quote {
        Quote {
            price: 91876.42,
            currency: "USD".into(),
            change_24h_percent: Some(-1.37),
            source: PriceProvider::Coincodex,
            quoted_at: Some(5),
        }
    }

    #[test]
    fn never_fetched_is_all_null_and_stale() {
        let (_dir, conn) = db();
        let v = price_view(&conn, &PriceConfig::default(), 1_000).unwrap();
        assert_eq!(v.price, None);
        assert_eq!(v.fetched_at, None);
        assert_eq!(v.currency, "USD");
        assert!(v.stale);
        assert_eq!(v.last_error, None);
        let n = network_view(&conn, &NetworkConfig::default(), 1_000).unwrap();
        assert_eq!(
            (n.difficulty, n.block_height, n.fetched_at),
            (None, None, None)
        );
        assert!(n.stale);
        // and it serializes to nulls, not to a missing object
        let json = serde_json::to_value(&v).unwrap();
        assert!(json["price"].is_null() && json["change_24h_percent"].is_null());
    }

    #[test]
    fn stale_after_the_configured_age() {
        let (_dir, mut conn) = db();
        let cfg = PriceConfig {
            stale_after_secs: 60,
            ..PriceConfig::default()
        };
        store(
            &mut conn,
            &[row(&price_key("USD"), &quote(), 1_000_000).unwrap()],
        )
        .unwrap();
        for (now, stale) in [(1_000_000, false), (1_060_000, false), (1_060_001, true)] {
            let v = price_view(&conn, &cfg, now).unwrap();
            assert_eq!(v.stale, stale, "at {now}");
            assert_eq!(v.price, Some(91876.42));
            assert_eq!(v.fetched_at, Some(1_000_000));
        }
        assert!(!is_stale(Some(0), 3_600_000, 3_600));
        assert!(is_stale(Some(0), 3_600_001, 3_600));
        assert!(is_stale(None, 0, u64::MAX));
    }

    #[test]
    fn a_price_in_another_currency_is_not_shown() {
        let (_dir, mut conn) = db();
        store(&mut conn, &[row(&price_key("USD"), &quote(), 1).unwrap()]).unwrap();
        let cfg = PriceConfig {
            currency: "eur".into(),
            ..PriceConfig::default()
        };
        let v = price_view(&conn, &cfg, 2).unwrap();
        assert_eq!((v.price, v.currency.as_str()), (None, "EUR"));
    }

    #[test]
    fn status_and_disabled_are_visible() {
        let (_dir, mut conn) = db();
        let status = FeedStatus {
            last_error: Some("coincodex: HTTP 500".into()),
            retry_at: Some(9),
        };
        store(&mut conn, &[row(PRICE_STATUS_KEY, &status, 7).unwrap()]).unwrap();
        let v = price_view(&conn, &PriceConfig::default(), 8).unwrap();
        assert_eq!(v.last_error.as_deref(), Some("coincodex: HTTP 500"));
        assert_eq!((v.last_attempt, v.retry_at), (Some(7), Some(9)));
        let off = PriceConfig {
            enabled: false,
            ..PriceConfig::default()
        };
        let v = price_view(&conn, &off, 8).unwrap();
        assert!(v.last_error.unwrap().contains("enabled = false"));
    }

    #[test]
    fn an_unreadable_row_counts_as_absent() {
        let (_dir, mut conn) = db();
        let bad = CacheRow {
            key: NETWORK_KEY.into(),
            value_json: "{\"difficulty\":\"lots\"}".into(),
            fetched_at: 1,
        };
        store(&mut conn, &[bad]).unwrap();
        let n = network_view(&conn, &NetworkConfig::default(), 2).unwrap();
        assert_eq!(n.difficulty, None);
    }
}
