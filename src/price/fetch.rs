//! The HTTP side: one ureq agent with a short overall timeout, every failure sorted into a
//! [`FetchError`] a person can act on, and the rate-limit backoff (honouring `Retry-After`).
//!
//! Everything here blocks; the actor runs it on the blocking thread pool, never on an actix
//! event loop.

use std::time::{Duration, SystemTime};

use crate::model::price::{
    self as providers, NetworkFigures, NetworkUrls, ParseError, PriceSource, Quote,
};

/// Bodies larger than this are refused: every answer we expect is a few hundred bytes, and a
/// Pi should not buffer a runaway download.
const MAX_BODY: u64 = 1 << 20;

/// Longest wait a `Retry-After` (or our own doubling) can impose; a bogus header of a year
/// must not silence a feed for good.
pub const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);

/// Why a request gave us nothing usable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FetchError {
    /// HTTP 429, or 503 with `Retry-After`: the provider asks us to slow down.
    #[error("rate limited (HTTP {status}){}", retry_note(*.retry_after))]
    RateLimited {
        /// 429 or 503.
        status: u16,
        /// How long the provider asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// Any other non-2xx status.
    #[error("HTTP {}", status_text(*.0))]
    Status(u16),
    /// No complete answer within the timeout.
    #[error("no answer within {} s", .0.as_secs_f64())]
    Timeout(Duration),
    /// DNS failed, typically because the Pi is offline.
    #[error("cannot resolve the host name (offline, or no DNS?)")]
    HostNotFound,
    /// The TCP connection failed (refused, reset, unreachable).
    #[error("cannot connect: {0}")]
    Connect(String),
    /// Anything else on the way (TLS, protocol, oversized body).
    #[error("{0}")]
    Transport(String),
    /// The body arrived but is not what the provider documents.
    #[error("unexpected response: {0}")]
    Parse(#[from] ParseError),
}

fn retry_note(after: Option<Duration>) -> String {
    after.map_or_else(String::new, |d| {
        format!(", asked to wait {} s", d.as_secs())
    })
}

fn status_text(code: u16) -> String {
    let reason = ureq::http::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason());
    match reason {
        Some(r) => format!("{code} {r}"),
        None => code.to_string(),
    }
}

/// Reads a `Retry-After` value: delay seconds or an HTTP date (RFC 9110 §10.2.3). A date in
/// the past means "now"; anything unreadable is ignored (the caller then doubles its delay).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A blocking HTTP client with a bounded timeout per request.
#[derive(Clone)]
pub struct Http {
    agent: ureq::Agent,
    timeout: Duration,
}

impl Http {
    /// A client whose every request (connect, send, receive the whole body) ends within
    /// `timeout`.
    pub fn new(timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .user_agent(concat!("the-shepherd/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Self { agent, timeout }
    }

    /// GETs `url` and returns its body if the status is 2xx.
    pub fn get(&self, url: &str) -> Result<String, FetchError> {
        let mut resp = self
            .agent
            .get(url)
            .header("Accept", "application/json, text/plain")
            .call()
            .map_err(|e| self.classify(e))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        if status == 429 || (status == 503 && retry_after.is_some()) {
            return Err(FetchError::RateLimited {
                status,
                retry_after,
            });
        }
        if !(200..300).contains(&status) {
            return Err(FetchError::Status(status));
        }
        resp.body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .map_err(|e| self.classify(e))
    }

    fn classify(&self, e: ureq::Error) -> FetchError {
        use std::io::ErrorKind;
        match e {
            ureq::Error::Timeout(_) => FetchError::Timeout(self.timeout),
            ureq::Error::Io(io) if io.kind() == ErrorKind::TimedOut => {
                FetchError::Timeout(self.timeout)
            }
            ureq::Error::HostNotFound => FetchError::HostNotFound,
            // std's resolver reports a failed DNS lookup as an uncategorized io error; its
            // text is the only way to tell it from other io errors.
            ureq::Error::Io(io) if io.to_string().contains("lookup address") => {
                FetchError::HostNotFound
            }
            ureq::Error::Io(io)
                if matches!(
                    io.kind(),
                    ErrorKind::ConnectionRefused
                        | ErrorKind::ConnectionReset
                        | ErrorKind::ConnectionAborted
                        | ErrorKind::NotConnected
                        | ErrorKind::AddrNotAvailable
                        | ErrorKind::NetworkUnreachable
                        | ErrorKind::HostUnreachable
                ) =>
            {
                FetchError::Connect(io.to_string())
            }
            ureq::Error::ConnectionFailed => FetchError::Connect("connection failed".into()),
            ureq::Error::BodyExceedsLimit(n) => {
                FetchError::Transport(format!("response larger than {n} bytes"))
            }
            other => FetchError::Transport(other.to_string()),
        }
    }
}

/// One source asked: its index in the caller's list and what it answered.
pub type Attempt = (usize, Result<Quote, FetchError>);

/// The network figures, or which endpoint failed and how.
pub type NetworkResult = Result<NetworkFigures, (&'static str, FetchError)>;

/// Asks one price source.
pub fn fetch_quote(http: &Http, source: &PriceSource, currency: &str) -> Result<Quote, FetchError> {
    let body = http.get(&source.url)?;
    Ok(providers::parse_quote(source.provider, &body, currency)?)
}

/// Asks `sources` in order until one answers; returns every attempt, in order, tagged with
/// the caller's index for that source.
pub fn fetch_first_quote(
    http: &Http,
    sources: &[(usize, PriceSource)],
    currency: &str,
) -> Vec<Attempt> {
    let mut attempts = Vec::with_capacity(sources.len());
    for (i, source) in sources {
        let result = fetch_quote(http, source, currency);
        let done = result.is_ok();
        attempts.push((*i, result));
        if done {
            break;
        }
    }
    attempts
}

/// Fetches the network figures from mempool.space: all three endpoints must answer, so the
/// figures stored always belong together. On failure, says which endpoint failed.
pub fn fetch_network(http: &Http, urls: &NetworkUrls) -> NetworkResult {
    let get = |name: &'static str, url: &str| http.get(url).map_err(|e| (name, e));
    let hashrate = get("hashrate", &urls.hashrate)?;
    let hashrate = providers::parse_hashrate(&hashrate).map_err(|e| ("hashrate", e.into()))?;
    let height = get("tip height", &urls.tip_height)?;
    let block_height =
        providers::parse_tip_height(&height).map_err(|e| ("tip height", e.into()))?;
    let adjustment = get("difficulty adjustment", &urls.difficulty_adjustment)?;
    let retarget = providers::parse_difficulty_adjustment(&adjustment)
        .map_err(|e| ("difficulty adjustment", e.into()))?;
    Ok(NetworkFigures {
        difficulty: hashrate.difficulty,
        hashrate_hs: hashrate.hashrate_hs,
        block_height,
        retarget,
    })
}

/// When a provider that rate-limited us may be asked again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backoff {
    until_ms: Option<i64>,
    strikes: u32,
}

impl Backoff {
    /// May we ask now?
    pub fn ready(&self, now_ms: i64) -> bool {
        self.until_ms.is_none_or(|t| now_ms >= t)
    }

    /// Not before this time (Unix ms), if limited.
    pub fn until_ms(&self) -> Option<i64> {
        self.until_ms
    }

    /// A request succeeded: forget past limits.
    pub fn succeeded(&mut self) {
        *self = Self::default();
    }

    /// A request failed. Only rate limiting moves the next attempt: with `Retry-After` to
    /// exactly that time, without it to 2, 4, 8… × `interval`; both capped at
    /// [`MAX_BACKOFF`]. Other failures are retried at the normal interval.
    pub fn failed(&mut self, error: &FetchError, now_ms: i64, interval: Duration) {
        let FetchError::RateLimited { retry_after, .. } = error else {
            return;
        };
        self.strikes = self.strikes.saturating_add(1);
        let doubled = interval.saturating_mul(1u32 << self.strikes.min(16));
        let delay = retry_after.unwrap_or(doubled).min(MAX_BACKOFF);
        self.until_ms = Some(now_ms.saturating_add(delay.as_millis() as i64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_or_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        let cases = [
            ("120", Some(Duration::from_secs(120))),
            (" 0 ", Some(Duration::ZERO)),
            // 1445412480 is Wed, 21 Oct 2015 07:28:00 GMT
            (
                "Wed, 21 Oct 2015 07:30:00 GMT",
                Some(Duration::from_secs(120)),
            ),
            ("Wed, 21 Oct 2015 07:00:00 GMT", Some(Duration::ZERO)),
            ("-5", None),
            ("soon", None),
            ("", None),
        ];
        for (value, want) in cases {
            assert_eq!(parse_retry_after(value, now), want, "{value:?}");
        }
    }

    #[test]
    fn backoff_honours_retry_after_then_doubles_then_resets() {
        let interval = Duration::from_secs(300);
        let mut b = Backoff::default();
        assert!(b.ready(0));

        // Ordinary failures do not delay the next regular attempt.
        b.failed(&FetchError::Status(500), 1_000, interval);
        b.failed(&FetchError::Timeout(interval), 1_000, interval);
        assert_eq!(b, Backoff::default());

        let limited = |secs: Option<u64>| FetchError::RateLimited {
            status: 429,
            retry_after: secs.map(Duration::from_secs),
        };
        b.failed(&limited(Some(90)), 1_000, interval);
        assert_eq!(b.until_ms(), Some(91_000));
        assert!(!b.ready(90_999));
        assert!(b.ready(91_000));

        // No Retry-After: 2^strikes × interval (this is the second strike).
        b.failed(&limited(None), 100_000, interval);
        assert_eq!(b.until_ms(), Some(100_000 + 4 * 300_000));

        // A year-long Retry-After is capped.
        b.failed(&limited(Some(365 * 86_400)), 0, interval);
        assert_eq!(b.until_ms(), Some(MAX_BACKOFF.as_millis() as i64));

        b.succeeded();
        assert_eq!(b, Backoff::default());
    }

    #[test]
    fn errors_read_well() {
        let cases = [
            (FetchError::Status(500), "HTTP 500 Internal Server Error"),
            (FetchError::Status(599), "HTTP 599"),
            (
                FetchError::RateLimited {
                    status: 429,
                    retry_after: Some(Duration::from_secs(60)),
                },
                "rate limited (HTTP 429), asked to wait 60 s",
            ),
            (
                FetchError::Timeout(Duration::from_millis(1500)),
                "no answer within 1.5 s",
            ),
            (
                FetchError::Parse(ParseError::Missing("last_price_usd".into())),
                "unexpected response: field last_price_usd is missing",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), want);
        }
    }
}
