//! The price and network providers as plain data: which URL to ask, and how to turn each
//! provider's body into a typed, checked value. No I/O here.
//!
//! Every number is checked before it can reach the dashboard: a missing field, a string where a
//! number belongs, or a price of zero or less is an error naming the field, never a default.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Currencies mempool.space's `/api/v1/prices` quotes.
pub const MEMPOOL_CURRENCIES: [&str; 7] = ["USD", "EUR", "GBP", "CAD", "CHF", "AUD", "JPY"];

/// Where a price comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceProvider {
    /// coincodex.com `get_coin/btc`: USD only, with 24-h change.
    Coincodex,
    /// CoinGecko `simple/price`: any currency, with 24-h change.
    Coingecko,
    /// mempool.space `/api/v1/prices`: seven currencies, no change.
    Mempool,
}

impl PriceProvider {
    /// Name used in logs, `source` and `last_error`.
    pub fn name(self) -> &'static str {
        match self {
            PriceProvider::Coincodex => "coincodex",
            PriceProvider::Coingecko => "coingecko",
            PriceProvider::Mempool => "mempool",
        }
    }

    /// Whether it can quote `currency` (upper case).
    pub fn quotes(self, currency: &str) -> bool {
        match self {
            PriceProvider::Coincodex => currency == "USD",
            PriceProvider::Coingecko => true,
            PriceProvider::Mempool => MEMPOOL_CURRENCIES.contains(&currency),
        }
    }
}

/// One provider and the exact URL to ask it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceSource {
    /// Which provider, so we know how to read its answer.
    pub provider: PriceProvider,
    /// Full request URL.
    pub url: String,
}

/// A checked BTC price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quote {
    /// Price of one bitcoin, > 0.
    pub price: f64,
    /// ISO currency code, upper case.
    pub currency: String,
    /// Change over 24 hours in percent; `None` when the provider gives none.
    pub change_24h_percent: Option<f64>,
    /// Who quoted it.
    pub source: PriceProvider,
    /// When the provider says the quote is from (Unix ms), if it says.
    pub quoted_at: Option<i64>,
}

/// The next difficulty adjustment, from mempool's `/api/v1/difficulty-adjustment`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retarget {
    /// How far through the current 2016-block epoch (0..100).
    pub progress_percent: f64,
    /// Estimated change at the next adjustment, percent.
    pub difficulty_change_percent: f64,
    /// Blocks until the adjustment.
    pub remaining_blocks: u64,
    /// Height at which it happens.
    pub next_retarget_height: u64,
    /// Estimated time of the adjustment (Unix ms).
    pub estimated_retarget_date: i64,
}

/// Network figures, all from one fetch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkFigures {
    /// Current network difficulty, > 0.
    pub difficulty: f64,
    /// Estimated network hashrate (H/s), > 0.
    pub hashrate_hs: f64,
    /// Height of the chain tip.
    pub block_height: u64,
    /// The coming difficulty adjustment.
    pub retarget: Retarget,
}

/// Difficulty and hashrate from `/api/v1/mining/hashrate/3d`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hashrate {
    /// `currentDifficulty`.
    pub difficulty: f64,
    /// `currentHashrate` (H/s).
    pub hashrate_hs: f64,
}

/// The three mempool.space endpoints the network figures come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkUrls {
    /// `/api/v1/mining/hashrate/3d`
    pub hashrate: String,
    /// `/api/v1/difficulty-adjustment`
    pub difficulty_adjustment: String,
    /// `/api/blocks/tip/height`
    pub tip_height: String,
}

/// Why a body was not accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    /// Not JSON at all (an HTML error page, a truncated body).
    #[error("not JSON ({0})")]
    NotJson(String),
    /// A field we need is absent.
    #[error("field {0} is missing")]
    Missing(String),
    /// A field holds something other than a number.
    #[error("field {field} is {found}, not a number")]
    NotANumber {
        /// Dotted path of the field.
        field: String,
        /// What it holds instead ("a string", "null", …).
        found: &'static str,
    },
    /// A number outside what makes sense (a price of 0, a negative difficulty).
    #[error("field {field} is {value}, {expected}")]
    OutOfRange {
        /// Dotted path of the field.
        field: String,
        /// The value found.
        value: f64,
        /// What it should be.
        expected: &'static str,
    },
    /// The tip height body is not a plain positive integer.
    #[error("block height {0:?} is not a positive integer")]
    BadHeight(String),
}

// ---- URLs -------------------------------------------------------------------------------

/// Splits `scheme://host[:port]/path?query` into (origin, path, query). `None` unless the
/// scheme is http or https and there is a host.
fn split_url(url: &str) -> Option<(&str, &str, Option<&str>)> {
    let url = url.split('#').next().unwrap_or(url);
    let scheme_len = ["https://", "http://"]
        .iter()
        .find(|s| url.starts_with(*s))?
        .len();
    let rest = &url[scheme_len..];
    let host_len = rest.find(['/', '?']).unwrap_or(rest.len());
    if host_len == 0 {
        return None;
    }
    let (origin, tail) = url.split_at(scheme_len + host_len);
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (tail, None),
    };
    Some((origin, path, query))
}

/// Checks that `url` is an http(s) URL with a host.
pub fn check_url(key: &str, url: &str) -> Result<(), String> {
    match split_url(url) {
        Some(_) => Ok(()),
        None => Err(format!(
            "{key} = {url:?} is not an http:// or https:// URL with a host"
        )),
    }
}

/// Which provider a fallback URL points at, told by its path.
pub fn fallback_provider(url: &str) -> Option<PriceProvider> {
    let (_, path, _) = split_url(url)?;
    let path = path.trim_end_matches('/');
    if path.ends_with("/simple/price") {
        Some(PriceProvider::Coingecko)
    } else if path.ends_with("/api/v1/prices") {
        Some(PriceProvider::Mempool)
    } else {
        None
    }
}

/// The request URL for CoinCodex, from the configured base.
pub fn coincodex_url(base: &str) -> String {
    format!("{}/api/coincodex/get_coin/btc", base.trim_end_matches('/'))
}

/// The CoinGecko request: the configured URL with our three parameters set and any others
/// (an API key, say) kept.
fn coingecko_url(url: &str, currency: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let ours = ["ids", "vs_currencies", "include_24hr_change"];
    let mut params: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty() && !ours.contains(&p.split('=').next().unwrap_or("")))
        .map(str::to_owned)
        .collect();
    params.push("ids=bitcoin".into());
    params.push(format!("vs_currencies={}", currency.to_ascii_lowercase()));
    params.push("include_24hr_change=true".into());
    format!("{base}?{}", params.join("&"))
}

/// The sources to try, in order, for `currency`. CoinCodex quotes only USD, so for any other
/// currency the fallback is the only source. Errors name the config key to fix.
pub fn price_sources(
    coincodex_base: &str,
    fallback_url: &str,
    currency: &str,
) -> Result<Vec<PriceSource>, String> {
    let currency = normalize_currency(currency)?;
    let mut sources = Vec::new();
    if !coincodex_base.is_empty() {
        check_url("price.coincodex_url", coincodex_base)?;
        if PriceProvider::Coincodex.quotes(&currency) {
            sources.push(PriceSource {
                provider: PriceProvider::Coincodex,
                url: coincodex_url(coincodex_base),
            });
        }
    }
    if !fallback_url.is_empty() {
        check_url("price.fallback_url", fallback_url)?;
        let provider = fallback_provider(fallback_url).ok_or_else(|| {
            format!(
                "price.fallback_url = {fallback_url:?}: cannot tell the provider from its path; \
                 use a CoinGecko …/api/v3/simple/price or a mempool.space …/api/v1/prices URL, \
                 or \"\" for no fallback"
            )
        })?;
        if !provider.quotes(&currency) {
            return Err(format!(
                "price.currency = {currency:?}: {} does not quote it (it has {})",
                provider.name(),
                MEMPOOL_CURRENCIES.join(", ")
            ));
        }
        let url = match provider {
            PriceProvider::Coingecko => coingecko_url(fallback_url, &currency),
            _ => fallback_url.to_owned(),
        };
        sources.push(PriceSource { provider, url });
    }
    if sources.is_empty() {
        return Err(if currency == "USD" {
            "price: set price.coincodex_url or price.fallback_url (both are empty)".into()
        } else {
            format!(
                "price.currency = {currency:?}: CoinCodex quotes only USD, so set \
                 price.fallback_url to a CoinGecko …/api/v3/simple/price or a mempool.space \
                 …/api/v1/prices URL"
            )
        });
    }
    Ok(sources)
}

/// Upper-cases a three-letter currency code, or says what is wrong with it.
pub fn normalize_currency(currency: &str) -> Result<String, String> {
    if currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(currency.to_ascii_uppercase())
    } else {
        Err(format!(
            "price.currency = {currency:?} is not a three-letter currency code such as \"USD\" or \"EUR\""
        ))
    }
}

/// The mempool.space endpoints under `base`.
pub fn network_urls(base: &str) -> NetworkUrls {
    let base = base.trim_end_matches('/');
    NetworkUrls {
        hashrate: format!("{base}/api/v1/mining/hashrate/3d"),
        difficulty_adjustment: format!("{base}/api/v1/difficulty-adjustment"),
        tip_height: format!("{base}/api/blocks/tip/height"),
    }
}

// ---- bodies -----------------------------------------------------------------------------

fn json(body: &str) -> Result<Value, ParseError> {
    serde_json::from_str(body).map_err(|e| ParseError::NotJson(e.to_string()))
}

fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, key| v.get(key))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An optional number: absent or null is `None`, anything else must be a number.
fn opt_number(v: &Value, path: &str) -> Result<Option<f64>, ParseError> {
    match lookup(v, path) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(other) => Err(ParseError::NotANumber {
            field: path.into(),
            found: kind(other),
        }),
    }
}

fn number(v: &Value, path: &str) -> Result<f64, ParseError> {
    match lookup(v, path) {
        None => Err(ParseError::Missing(path.into())),
        Some(Value::Number(n)) => n.as_f64().ok_or_else(|| ParseError::NotANumber {
            field: path.into(),
            found: "an unrepresentable number",
        }),
        Some(other) => Err(ParseError::NotANumber {
            field: path.into(),
            found: kind(other),
        }),
    }
}

fn positive(v: &Value, path: &str) -> Result<f64, ParseError> {
    let n = number(v, path)?;
    if n.is_finite() && n > 0.0 {
        Ok(n)
    } else {
        Err(ParseError::OutOfRange {
            field: path.into(),
            value: n,
            expected: "not a positive number",
        })
    }
}

fn whole(v: &Value, path: &str) -> Result<u64, ParseError> {
    let n = number(v, path)?;
    // 2^53: beyond it an f64 no longer holds every integer.
    if n >= 0.0 && n.fract() == 0.0 && n <= 9_007_199_254_740_992.0 {
        Ok(n as u64)
    } else {
        Err(ParseError::OutOfRange {
            field: path.into(),
            value: n,
            expected: "not a whole number ≥ 0",
        })
    }
}

/// CoinCodex `get_coin/btc`: `last_price_usd`, `price_change_1D_percent` (may be null),
/// `last_update` ("YYYY-MM-DD HH:MM:SS", UTC; optional, as it only dates the quote).
pub fn parse_coincodex(body: &str) -> Result<Quote, ParseError> {
    let v = json(body)?;
    let quoted_at = lookup(&v, "last_update")
        .and_then(Value::as_str)
        .and_then(|s| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").ok())
        .map(|t| t.and_utc().timestamp_millis());
    Ok(Quote {
        price: positive(&v, "last_price_usd")?,
        currency: "USD".into(),
        change_24h_percent: opt_number(&v, "price_change_1D_percent")?,
        source: PriceProvider::Coincodex,
        quoted_at,
    })
}

/// CoinGecko `simple/price`: `bitcoin.<cur>` and `bitcoin.<cur>_24h_change`.
pub fn parse_coingecko(body: &str, currency: &str) -> Result<Quote, ParseError> {
    let v = json(body)?;
    let cur = currency.to_ascii_lowercase();
    Ok(Quote {
        price: positive(&v, &format!("bitcoin.{cur}"))?,
        currency: currency.to_ascii_uppercase(),
        change_24h_percent: opt_number(&v, &format!("bitcoin.{cur}_24h_change"))?,
        source: PriceProvider::Coingecko,
        quoted_at: None,
    })
}

/// mempool.space `/api/v1/prices`: `<CUR>` and `time` (Unix s); it gives no 24-h change.
pub fn parse_mempool_prices(body: &str, currency: &str) -> Result<Quote, ParseError> {
    let v = json(body)?;
    let currency = currency.to_ascii_uppercase();
    let quoted_at = opt_number(&v, "time")?
        .filter(|t| *t > 0.0)
        .map(|t| (t * 1000.0) as i64);
    Ok(Quote {
        price: positive(&v, &currency)?,
        currency,
        change_24h_percent: None,
        source: PriceProvider::Mempool,
        quoted_at,
    })
}

/// Reads `provider`'s body.
pub fn parse_quote(
    provider: PriceProvider,
    body: &str,
    currency: &str,
) -> Result<Quote, ParseError> {
    match provider {
        PriceProvider::Coincodex => parse_coincodex(body),
        PriceProvider::Coingecko => parse_coingecko(body, currency),
        PriceProvider::Mempool => parse_mempool_prices(body, currency),
    }
}

/// mempool `/api/v1/mining/hashrate/3d`: `currentHashrate`, `currentDifficulty`.
pub fn parse_hashrate(body: &str) -> Result<Hashrate, ParseError> {
    let v = json(body)?;
    Ok(Hashrate {
        difficulty: positive(&v, "currentDifficulty")?,
        hashrate_hs: positive(&v, "currentHashrate")?,
    })
}

/// mempool `/api/v1/difficulty-adjustment`.
pub fn parse_difficulty_adjustment(body: &str) -> Result<Retarget, ParseError> {
    let v = json(body)?;
    let progress = number(&v, "progressPercent")?;
    if !(0.0..=100.0).contains(&progress) {
        return Err(ParseError::OutOfRange {
            field: "progressPercent".into(),
            value: progress,
            expected: "not between 0 and 100",
        });
    }
    Ok(Retarget {
        progress_percent: progress,
        difficulty_change_percent: number(&v, "difficultyChange")?,
        remaining_blocks: whole(&v, "remainingBlocks")?,
        next_retarget_height: whole(&v, "nextRetargetHeight")?,
        estimated_retarget_date: positive(&v, "estimatedRetargetDate")? as i64,
    })
}

/// mempool `/api/blocks/tip/height`: a plain-text integer.
pub fn parse_tip_height(body: &str) -> Result<u64, ParseError> {
    let text = body.trim();
    match text.parse::<u64>() {
        Ok(h) if h > 0 => Ok(h),
        _ => Err(ParseError::BadHeight(text.chars().take(40).collect())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COINCODEX: &str = include_str!("../../tests/fixtures/apis/coincodex_get_coin_btc.json");
    const COINGECKO: &str = include_str!("../../tests/fixtures/apis/coingecko_simple_price.json");
    const MEMPOOL_PRICES: &str = include_str!("../../tests/fixtures/apis/mempool_prices.json");
    const HASHRATE: &str = include_str!("../../tests/fixtures/apis/mempool_hashrate_3d.json");
    const ADJUSTMENT: &str =
        include_str!("../../tests/fixtures/apis/mempool_difficulty_adjustment.json");
    const TIP: &str = include_str!("../../tests/fixtures/apis/mempool_tip_height.txt");

    fn quote(price: f64, cur: &str, change: Option<f64>, source: PriceProvider) -> Quote {
        Quote {
            price,
            currency: cur.into(),
            change_24h_percent: change,
            source,
            quoted_at: None,
        }
    }

    #[test]
    fn every_price_fixture_parses() {
        use PriceProvider::*;
        let cases = [
            (
                Coincodex,
                COINCODEX,
                "USD",
                quote(91876.42, "USD", Some(-1.37), Coincodex),
            ),
            (
                Coingecko,
                COINGECKO,
                "USD",
                quote(91862.0, "USD", Some(-1.3512), Coingecko),
            ),
            (
                Coingecko,
                COINGECKO,
                "usd",
                quote(91862.0, "USD", Some(-1.3512), Coingecko),
            ),
            (
                Mempool,
                MEMPOOL_PRICES,
                "USD",
                quote(91850.0, "USD", None, Mempool),
            ),
            (
                Mempool,
                MEMPOOL_PRICES,
                "EUR",
                quote(79420.0, "EUR", None, Mempool),
            ),
            (
                Mempool,
                MEMPOOL_PRICES,
                "JPY",
                quote(14_320_000.0, "JPY", None, Mempool),
            ),
        ];
        for (provider, body, cur, want) in cases {
            let mut got = parse_quote(provider, body, cur).unwrap();
            got.quoted_at = None;
            assert_eq!(got, want, "{provider:?} {cur}");
        }
        // 2026-11-20 14:05:03 UTC
        assert_eq!(
            parse_coincodex(COINCODEX).unwrap().quoted_at,
            Some(1_795_183_503_000)
        );
        assert_eq!(
            parse_mempool_prices(MEMPOOL_PRICES, "USD")
                .unwrap()
                .quoted_at,
            Some(1_763_647_503_000)
        );
    }

    #[test]
    fn network_fixtures_parse() {
        assert_eq!(
            parse_hashrate(HASHRATE).unwrap(),
            Hashrate {
                difficulty: 152_271_405_447_205.1,
                hashrate_hs: 1.0912e21
            }
        );
        assert_eq!(
            parse_difficulty_adjustment(ADJUSTMENT).unwrap(),
            Retarget {
                progress_percent: 41.37,
                difficulty_change_percent: 2.11,
                remaining_blocks: 1182,
                next_retarget_height: 927_360,
                estimated_retarget_date: 1_764_460_800_000,
            }
        );
        assert_eq!(parse_tip_height(TIP).unwrap(), 927_178);
    }

    #[test]
    fn bad_price_bodies_are_errors_naming_the_field() {
        use PriceProvider::*;
        let cases: &[(PriceProvider, &str, &str, &str)] = &[
            (Coincodex, "", "USD", "not JSON"),
            (Coincodex, "<html>502 Bad Gateway</html>", "USD", "not JSON"),
            (Coincodex, r#"{"last_price_usd": 9"#, "USD", "not JSON"),
            (Coincodex, "{}", "USD", "last_price_usd is missing"),
            (Coincodex, "[]", "USD", "last_price_usd is missing"),
            (
                Coincodex,
                r#"{"last_price_usd":"91876.42"}"#,
                "USD",
                "is a string",
            ),
            (Coincodex, r#"{"last_price_usd":null}"#, "USD", "is null"),
            (
                Coincodex,
                r#"{"last_price_usd":0}"#,
                "USD",
                "is 0, not a positive",
            ),
            (Coincodex, r#"{"last_price_usd":-5.5}"#, "USD", "is -5.5"),
            (
                Coincodex,
                r#"{"last_price_usd":1,"price_change_1D_percent":"-1.3"}"#,
                "USD",
                "price_change_1D_percent is a string",
            ),
            (
                Coingecko,
                r#"{"bitcoin":{"eur":1}}"#,
                "USD",
                "bitcoin.usd is missing",
            ),
            (
                Coingecko,
                r#"{"error":"rate limited"}"#,
                "USD",
                "bitcoin.usd is missing",
            ),
            (Coingecko, r#"{"bitcoin":{"usd":true}}"#, "USD", "a boolean"),
            (Mempool, r#"{"time":1,"USD":-1}"#, "USD", "USD is -1"),
            (Mempool, r#"{"time":1,"USD":1}"#, "EUR", "EUR is missing"),
            (
                Mempool,
                r#"{"time":"x","USD":1}"#,
                "USD",
                "time is a string",
            ),
        ];
        for (provider, body, cur, want) in cases {
            let err = parse_quote(*provider, body, cur).unwrap_err().to_string();
            assert!(
                err.contains(want),
                "{provider:?} {body:?}: {err:?} lacks {want:?}"
            );
        }
    }

    #[test]
    fn null_or_missing_change_is_no_change_not_zero() {
        let q = parse_coincodex(r#"{"last_price_usd":5,"price_change_1D_percent":null}"#).unwrap();
        assert_eq!(q.change_24h_percent, None);
        let q = parse_coingecko(r#"{"bitcoin":{"usd":5}}"#, "USD").unwrap();
        assert_eq!(q.change_24h_percent, None);
        // An unreadable date only loses the date, not the price.
        let q = parse_coincodex(r#"{"last_price_usd":5,"last_update":"yesterday"}"#).unwrap();
        assert_eq!((q.price, q.quoted_at), (5.0, None));
    }

    #[test]
    fn bad_network_bodies_are_errors() {
        type Case = (
            fn(&str) -> Result<(), ParseError>,
            &'static str,
            &'static str,
        );
        let cases: &[Case] = &[
            (
                |b| parse_hashrate(b).map(drop),
                "{}",
                "currentDifficulty is missing",
            ),
            (
                |b| parse_hashrate(b).map(drop),
                r#"{"currentDifficulty":1,"currentHashrate":0}"#,
                "currentHashrate is 0",
            ),
            (
                |b| parse_hashrate(b).map(drop),
                r#"{"currentDifficulty":"1","currentHashrate":1}"#,
                "a string",
            ),
            (
                |b| parse_difficulty_adjustment(b).map(drop),
                r#"{"progressPercent":140}"#,
                "between 0 and 100",
            ),
            (
                |b| parse_difficulty_adjustment(b).map(drop),
                r#"{"progressPercent":1,"difficultyChange":1,"remainingBlocks":1.5}"#,
                "remainingBlocks is 1.5",
            ),
            (
                |b| parse_tip_height(b).map(drop),
                "",
                "not a positive integer",
            ),
            (
                |b| parse_tip_height(b).map(drop),
                "-3",
                "not a positive integer",
            ),
            (
                |b| parse_tip_height(b).map(drop),
                "0",
                "not a positive integer",
            ),
            (
                |b| parse_tip_height(b).map(drop),
                "<html>",
                "not a positive integer",
            ),
        ];
        for (parse, body, want) in cases {
            let err = parse(body).unwrap_err().to_string();
            assert!(err.contains(want), "{body:?}: {err:?} lacks {want:?}");
        }
        assert_eq!(parse_tip_height(" 927178\r\n"), Ok(927_178));
    }

    #[test]
    fn fallback_provider_is_told_by_path() {
        use PriceProvider::*;
        let cases = [
            (
                "https://api.coingecko.com/api/v3/simple/price",
                Some(Coingecko),
            ),
            (
                "https://api.coingecko.com/api/v3/simple/price/?x_cg_demo_api_key=k",
                Some(Coingecko),
            ),
            ("http://127.0.0.1:9000/api/v3/simple/price", Some(Coingecko)),
            ("https://mempool.space/api/v1/prices", Some(Mempool)),
            ("http://127.0.0.1:9000/api/v1/prices", Some(Mempool)),
            ("https://mempool.space", None),
            ("https://example.com/prices", None),
            ("ftp://mempool.space/api/v1/prices", None),
            ("https:///api/v1/prices", None),
        ];
        for (url, want) in cases {
            assert_eq!(fallback_provider(url), want, "{url}");
        }
    }

    #[test]
    fn sources_follow_the_currency() {
        use PriceProvider::*;
        let gecko = "https://api.coingecko.com/api/v3/simple/price";
        let mempool = "https://mempool.space/api/v1/prices";
        let s = price_sources("https://coincodex.com/", gecko, "USD").unwrap();
        assert_eq!(
            s,
            vec![
                PriceSource {
                    provider: Coincodex,
                    url: "https://coincodex.com/api/coincodex/get_coin/btc".into()
                },
                PriceSource {
                    provider: Coingecko,
                    url: format!("{gecko}?ids=bitcoin&vs_currencies=usd&include_24hr_change=true")
                },
            ]
        );
        // CoinCodex has no EUR: only the fallback is asked.
        let s = price_sources(
            "https://coincodex.com",
            &format!("{gecko}?x_cg_demo_api_key=k&ids=eth"),
            "eur",
        )
        .unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(
            s[0].url,
            format!("{gecko}?x_cg_demo_api_key=k&ids=bitcoin&vs_currencies=eur&include_24hr_change=true")
        );
        let s = price_sources("", mempool, "GBP").unwrap();
        assert_eq!(
            s,
            vec![PriceSource {
                provider: Mempool,
                url: mempool.into()
            }]
        );

        for (cc, fb, cur, want) in [
            (
                "https://coincodex.com",
                "",
                "EUR",
                "CoinCodex quotes only USD",
            ),
            (
                "https://coincodex.com",
                mempool,
                "NOK",
                "mempool does not quote it",
            ),
            ("", "", "USD", "both are empty"),
            ("coincodex.com", "", "USD", "price.coincodex_url"),
            (
                "https://coincodex.com",
                "https://example.com/x",
                "USD",
                "price.fallback_url",
            ),
            ("https://coincodex.com", "", "dollars", "three-letter"),
            ("https://coincodex.com", "", "U$D", "three-letter"),
        ] {
            let err = price_sources(cc, fb, cur).unwrap_err();
            assert!(err.contains(want), "{cc} {fb} {cur}: {err}");
        }
    }

    #[test]
    fn network_urls_under_a_base() {
        let u = network_urls("http://127.0.0.1:8999/");
        assert_eq!(
            u.hashrate,
            "http://127.0.0.1:8999/api/v1/mining/hashrate/3d"
        );
        assert_eq!(
            u.difficulty_adjustment,
            "http://127.0.0.1:8999/api/v1/difficulty-adjustment"
        );
        assert_eq!(u.tip_height, "http://127.0.0.1:8999/api/blocks/tip/height");
    }
}
