//! PriceActor: every few minutes fetches the BTC price (CoinCodex, then the fallback) and the
//! network figures (mempool.space), and stores them with their fetch time in `price_cache`.
//!
//! The actor only schedules: the HTTP calls run on the blocking thread pool
//! ([`fetch`](crate::price::fetch)), the bodies are read by pure functions
//! ([`crate::model::price`]), and results go to the
//! DbActor. A failed fetch never replaces a stored value; it records `last_error` instead.

pub mod cache;
pub mod fetch;

use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;

use self::cache::{FeedStatus, NETWORK_KEY, NETWORK_STATUS_KEY, PRICE_STATUS_KEY};
use self::fetch::{Attempt, Backoff, FetchError, Http, NetworkResult};
use crate::clock::now_ms;
use crate::config::{NetworkConfig, PriceConfig};
use crate::db::price_cache::CacheRow;
use crate::db::{DbActor, ReadPool, Write};
use crate::model::price::{self as providers, NetworkUrls, PriceSource, Quote};

/// How often the actor checks whether a feed is due; fetches themselves are minutes apart.
const TICK: Duration = Duration::from_secs(1);

/// After a run that got nothing (offline, every provider failing), try again this soon rather
/// than a whole interval later: a Pi often boots before its network is up. Rate limits are
/// handled by [`Backoff`] and still win.
const RETRY_FAILED: Duration = Duration::from_secs(60);

/// How one run of a feed ended.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedOutcome {
    /// A new value was stored.
    pub stored: bool,
    /// What went wrong, as shown in the API.
    pub last_error: Option<String>,
}

/// Fetch both feeds now (tests, a future "refresh" button), still honouring rate limits.
/// Answers once the results are stored; a feed that is fetching already answers with that run.
#[derive(Debug, Message)]
#[rtype(result = "RefreshReport")]
pub struct Refresh;

/// What a [`Refresh`] did; `None` for a disabled feed.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshReport {
    /// The price feed.
    pub price: Option<FeedOutcome>,
    /// The network feed.
    pub network: Option<FeedOutcome>,
}

#[derive(Debug, Clone, Copy)]
enum Feed {
    Price,
    Network,
}

/// When a feed runs next, and who waits for its next run.
struct Schedule {
    interval: Duration,
    next_due_ms: i64,
    in_flight: bool,
    /// Refresh requests, answered when the current (or next) run is stored.
    waiting: Vec<oneshot::Sender<FeedOutcome>>,
    /// Last error logged as a warning; repeats go to debug so an offline Pi does not fill
    /// the journal with the same line every few minutes.
    last_logged: Option<String>,
}

impl Schedule {
    fn new(interval: Duration) -> Self {
        Self {
            interval,
            next_due_ms: 0,
            in_flight: false,
            waiting: Vec::new(),
            last_logged: None,
        }
    }

    fn due(&self, now: i64) -> bool {
        !self.in_flight && now >= self.next_due_ms
    }

    fn log(&mut self, feed: &str, error: Option<&String>) {
        match error {
            Some(e) if self.last_logged.as_ref() != Some(e) => {
                tracing::warn!("{feed}: {e}");
            }
            Some(e) => tracing::debug!("{feed}: {e}"),
            None if self.last_logged.is_some() => tracing::info!("{feed}: fetching works again"),
            None => {}
        }
        self.last_logged = error.cloned();
    }
}

struct PriceFeed {
    schedule: Schedule,
    http: Http,
    currency: String,
    sources: Vec<(PriceSource, Backoff)>,
}

struct NetworkFeed {
    schedule: Schedule,
    http: Http,
    urls: NetworkUrls,
    backoff: Backoff,
}

/// New price or network figures were stored in `price_cache` (the herd document shows them).
#[derive(Message)]
#[rtype(result = "()")]
pub struct PricesStored;

/// Fetches the price and network figures on their intervals and caches them.
pub struct PriceActor {
    db: Addr<DbActor>,
    pool: ReadPool,
    price: Option<PriceFeed>,
    network: Option<NetworkFeed>,
    stored: Option<Recipient<PricesStored>>,
}

impl PriceActor {
    /// An actor for the enabled feeds of `price` and `network` (a feed whose settings do not
    /// make sense is logged and left off; `Config` validation normally prevents that).
    pub fn new(
        price: &PriceConfig,
        network: &NetworkConfig,
        db: Addr<DbActor>,
        pool: ReadPool,
    ) -> Self {
        let price = price.enabled.then(|| price_feed(price)).flatten();
        let network = network.enabled.then(|| NetworkFeed {
            schedule: Schedule::new(Duration::from_secs(network.interval_secs)),
            http: Http::new(Duration::from_secs(network.timeout_secs)),
            urls: providers::network_urls(&network.mempool_url),
            backoff: Backoff::default(),
        });
        Self {
            db,
            pool,
            price,
            network,
            stored: None,
        }
    }

    /// Tells `to` each time new figures are stored (the summarizer, which publishes the herd).
    pub fn telling(mut self, to: Recipient<PricesStored>) -> Self {
        self.stored = Some(to);
        self
    }

    fn schedule(&mut self, feed: Feed) -> Option<&mut Schedule> {
        match feed {
            Feed::Price => self.price.as_mut().map(|f| &mut f.schedule),
            Feed::Network => self.network.as_mut().map(|f| &mut f.schedule),
        }
    }

    /// Continues where the last run left off: a restart does not fetch again before the
    /// interval is up, so a crash loop cannot hammer the providers.
    fn resume(&mut self) {
        for (feed, key) in [
            (Feed::Price, PRICE_STATUS_KEY),
            (Feed::Network, NETWORK_STATUS_KEY),
        ] {
            let last = self
                .pool
                .with(|c| cache::load::<FeedStatus>(c, key))
                .map_err(|e| tracing::warn!("price: cannot read the cache: {e}"))
                .ok()
                .flatten();
            if let (Some(last), Some(s)) = (last, self.schedule(feed)) {
                s.next_due_ms = last.fetched_at.saturating_add(millis(s.interval));
            }
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        let now = now_ms();
        if self.price.as_ref().is_some_and(|f| f.schedule.due(now)) {
            self.start_price(ctx, now);
        }
        if self.network.as_ref().is_some_and(|f| f.schedule.due(now)) {
            self.start_network(ctx, now);
        }
    }

    fn start_price(&mut self, ctx: &mut Context<Self>, now: i64) {
        let Some(feed) = self.price.as_mut() else {
            return;
        };
        feed.schedule.in_flight = true;
        let ready: Vec<(usize, PriceSource)> = feed
            .sources
            .iter()
            .enumerate()
            .filter(|(_, (_, backoff))| backoff.ready(now))
            .map(|(i, (source, _))| (i, source.clone()))
            .collect();
        let (http, currency) = (feed.http.clone(), feed.currency.clone());
        let work = async move {
            if ready.is_empty() {
                return Ok(Vec::new());
            }
            actix_rt::task::spawn_blocking(move || {
                fetch::fetch_first_quote(&http, &ready, &currency)
            })
            .await
            .map_err(|e| e.to_string())
        };
        ctx.spawn(work.into_actor(self).then(move |attempts, act, _| {
            let (rows, outcome) = act.price_done(attempts, now);
            act.store(Feed::Price, rows, outcome)
        }));
    }

    /// Applies a price run's attempts: backoffs, log, rows to store, outcome.
    fn price_done(
        &mut self,
        attempts: Result<Vec<Attempt>, String>,
        started: i64,
    ) -> (Vec<CacheRow>, FeedOutcome) {
        let Some(feed) = self.price.as_mut() else {
            return (Vec::new(), FeedOutcome::failed("price feed is off"));
        };
        let now = now_ms();
        let interval = feed.schedule.interval;
        let (quote, errors) = match attempts {
            Ok(attempts) => apply_attempts(&mut feed.sources, attempts, started, now, interval),
            Err(e) => (None, vec![format!("internal error: {e}")]),
        };
        let limits = feed.sources.iter().filter_map(|(_, b)| b.until_ms());
        let retry_at = limits.filter(|t| *t > now).min();
        // If every source is rate limited, the next run waits for the first to be free.
        let free_at = feed
            .sources
            .iter()
            .map(|(_, b)| b.until_ms().unwrap_or(0))
            .min()
            .unwrap_or(0);
        feed.schedule.next_due_ms = next_due(now, interval, quote.is_some(), free_at);

        let mut last_error = (!errors.is_empty()).then(|| errors.join("; "));
        if let (Some(e), Some(q)) = (last_error.as_mut(), quote.as_ref()) {
            e.push_str(&format!(" (price from {})", q.source.name()));
        }
        feed.schedule.log("price", last_error.as_ref());
        let status = FeedStatus {
            last_error: last_error.clone(),
            retry_at,
        };
        let mut rows = vec![cache::row(PRICE_STATUS_KEY, &status, now)];
        if let Some(q) = &quote {
            rows.push(cache::row(&cache::price_key(&q.currency), q, now));
        }
        let outcome = FeedOutcome {
            stored: quote.is_some(),
            last_error,
        };
        (encoded(rows), outcome)
    }

    fn start_network(&mut self, ctx: &mut Context<Self>, now: i64) {
        let Some(feed) = self.network.as_mut() else {
            return;
        };
        feed.schedule.in_flight = true;
        let ready = feed.backoff.ready(now);
        let (http, urls) = (feed.http.clone(), feed.urls.clone());
        let work = async move {
            if !ready {
                return None;
            }
            Some(
                actix_rt::task::spawn_blocking(move || fetch::fetch_network(&http, &urls))
                    .await
                    .map_err(|e| e.to_string()),
            )
        };
        ctx.spawn(work.into_actor(self).then(move |result, act, _| {
            let (rows, outcome) = act.network_done(result);
            act.store(Feed::Network, rows, outcome)
        }));
    }

    /// Applies a network run: `None` when it was skipped for a rate limit.
    fn network_done(
        &mut self,
        result: Option<Result<NetworkResult, String>>,
    ) -> (Vec<CacheRow>, FeedOutcome) {
        let Some(feed) = self.network.as_mut() else {
            return (Vec::new(), FeedOutcome::failed("network feed is off"));
        };
        let now = now_ms();
        let interval = feed.schedule.interval;
        let mut figures = None;
        let last_error = match result {
            None => Some(format!(
                "mempool: rate limited, not asked until {}",
                utc(feed.backoff.until_ms().unwrap_or(now))
            )),
            Some(Err(e)) => Some(format!("internal error: {e}")),
            Some(Ok(Ok(f))) => {
                feed.backoff.succeeded();
                figures = Some(f);
                None
            }
            Some(Ok(Err((endpoint, e)))) => {
                feed.backoff.failed(&e, now, interval);
                Some(format!("mempool {endpoint}: {e}"))
            }
        };
        let retry_at = feed.backoff.until_ms().filter(|t| *t > now);
        feed.schedule.next_due_ms =
            next_due(now, interval, figures.is_some(), retry_at.unwrap_or(0));
        feed.schedule.log("network", last_error.as_ref());
        let status = FeedStatus {
            last_error: last_error.clone(),
            retry_at,
        };
        let mut rows = vec![cache::row(NETWORK_STATUS_KEY, &status, now)];
        if let Some(f) = &figures {
            rows.push(cache::row(NETWORK_KEY, f, now));
        }
        let outcome = FeedOutcome {
            stored: figures.is_some(),
            last_error,
        };
        (encoded(rows), outcome)
    }

    /// Hands `rows` to the writer; then the feed is free again and everyone waiting on it
    /// hears how it went.
    fn store(
        &mut self,
        feed: Feed,
        rows: Vec<CacheRow>,
        mut outcome: FeedOutcome,
    ) -> impl ActorFuture<Self, Output = ()> {
        let write = self
            .db
            .send(Write::new(move |c| crate::db::price_cache::store(c, &rows)));
        actix::fut::wrap_future(write).map(move |result, act: &mut Self, _| {
            let failure = match result {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(format!("cannot store in the database: {e}")),
                Err(e) => Some(format!("database writer unavailable: {e}")),
            };
            if failure.is_none() && outcome.stored {
                if let Some(to) = &act.stored {
                    to.do_send(PricesStored);
                }
            }
            if let Some(f) = failure {
                tracing::warn!("{feed:?}: {f}");
                outcome.stored = false;
                outcome.last_error = Some(match outcome.last_error.take() {
                    Some(e) => format!("{e}; {f}"),
                    None => f,
                });
            }
            if let Some(s) = act.schedule(feed) {
                s.in_flight = false;
                for w in s.waiting.drain(..) {
                    let _ = w.send(outcome.clone());
                }
            }
        })
    }
}

impl FeedOutcome {
    fn failed(why: &str) -> Self {
        Self {
            stored: false,
            last_error: Some(why.into()),
        }
    }
}

fn price_feed(cfg: &PriceConfig) -> Option<PriceFeed> {
    let sources = providers::price_sources(&cfg.coincodex_url, &cfg.fallback_url, &cfg.currency)
        .map_err(|e| tracing::error!("price fetching is off: {e}"))
        .ok()?;
    let currency = providers::normalize_currency(&cfg.currency).ok()?;
    let names: Vec<&str> = sources.iter().map(|s| s.provider.name()).collect();
    tracing::info!("price: BTC in {currency} from {}", names.join(", then "));
    Some(PriceFeed {
        schedule: Schedule::new(Duration::from_secs(cfg.interval_secs)),
        http: Http::new(Duration::from_secs(cfg.timeout_secs)),
        currency,
        sources: sources
            .into_iter()
            .map(|s| (s, Backoff::default()))
            .collect(),
    })
}

/// Folds a run's attempts into the sources' backoffs. Returns the quote, if any, and what
/// went wrong, in source order: each failure, and each source before the one that answered
/// (or every source, if none did) that was skipped for a rate limit.
fn apply_attempts(
    sources: &mut [(PriceSource, Backoff)],
    attempts: Vec<Attempt>,
    started: i64,
    now: i64,
    interval: Duration,
) -> (Option<Quote>, Vec<String>) {
    let mut results: Vec<Option<Result<Quote, FetchError>>> = vec![None; sources.len()];
    for (i, result) in attempts {
        if let Some(slot) = results.get_mut(i) {
            *slot = Some(result);
        }
    }
    let mut quote = None;
    let mut errors = Vec::new();
    for ((source, backoff), result) in sources.iter_mut().zip(results) {
        let name = source.provider.name();
        match result {
            Some(Ok(q)) => {
                backoff.succeeded();
                quote = Some(q);
            }
            Some(Err(e)) => {
                backoff.failed(&e, now, interval);
                errors.push(format!("{name}: {e}"));
            }
            None if quote.is_some() => {}
            None => {
                if let Some(until) = backoff.until_ms().filter(|t| *t > started) {
                    errors.push(format!(
                        "{name}: rate limited, not asked until {}",
                        utc(until)
                    ));
                }
            }
        }
    }
    (quote, errors)
}

/// Rows that encode; one that does not (it cannot, for these plain structs) is logged.
fn encoded(rows: Vec<Result<CacheRow, String>>) -> Vec<CacheRow> {
    rows.into_iter()
        .filter_map(|r| {
            r.map_err(|e| tracing::warn!("price: cannot encode: {e}"))
                .ok()
        })
        .collect()
}

/// When a feed runs next: an interval after a success, sooner after a failure, but never
/// before `free_at` (when a rate-limited provider may be asked again).
fn next_due(now: i64, interval: Duration, got_value: bool, free_at: i64) -> i64 {
    let wait = if got_value {
        interval
    } else {
        interval.min(RETRY_FAILED)
    };
    now.saturating_add(millis(wait)).max(free_at)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A time for messages: "14:05:03 UTC" (the API has the exact ms in `retry_at`).
fn utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| ms.to_string(), |t| t.format("%H:%M:%S UTC").to_string())
}

impl Actor for PriceActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.resume();
        self.tick(ctx);
        ctx.run_interval(TICK, |act, ctx| act.tick(ctx));
    }

    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        // Waiters see their channel close; nothing else to tidy: values are already stored.
        Running::Stop
    }
}

impl Handler<Refresh> for PriceActor {
    type Result = ResponseFuture<RefreshReport>;

    fn handle(&mut self, _: Refresh, ctx: &mut Self::Context) -> Self::Result {
        // A feed already fetching answers with that run: asking the provider twice in a row
        // would tell us nothing new.
        let mut wait = |feed| {
            self.schedule(feed).map(|s| {
                let (tx, rx) = oneshot::channel();
                s.waiting.push(tx);
                if !s.in_flight {
                    s.next_due_ms = i64::MIN;
                }
                rx
            })
        };
        let price = wait(Feed::Price);
        let network = wait(Feed::Network);
        self.tick(ctx);
        Box::pin(async move {
            let outcome = |r: Result<FeedOutcome, _>| {
                r.unwrap_or_else(|_| FeedOutcome::failed("the price actor stopped"))
            };
            RefreshReport {
                price: match price {
                    Some(rx) => Some(outcome(rx.await)),
                    None => None,
                },
                network: match network {
                    Some(rx) => Some(outcome(rx.await)),
                    None => None,
                },
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_run_after_success_failure_and_rate_limit() {
        let five_min = Duration::from_secs(300);
        let cases = [
            // (got a value, free_at, due)
            (true, 0, 300_000),
            (false, 0, 60_000),
            (false, 120_000, 120_000),
            (true, 900_000, 900_000),
        ];
        for (got, free_at, due) in cases {
            assert_eq!(next_due(0, five_min, got, free_at), due, "{got} {free_at}");
        }
        // An interval shorter than the retry delay is kept.
        assert_eq!(next_due(0, Duration::from_secs(10), false, 0), 10_000);
    }

    fn sources() -> Vec<(PriceSource, Backoff)> {
        use providers::PriceProvider::*;
        [Coincodex, Coingecko]
            .into_iter()
            .map(|provider| {
                let url = format!("http://127.0.0.1:9/{}", provider.name());
                (PriceSource { provider, url }, Backoff::default())
            })
            .collect()
    }

    fn quote() -> Quote {
        providers::parse_coingecko(r#"{"bitcoin":{"usd":5}}"#, "USD").unwrap()
    }

    fn limited(secs: u64) -> FetchError {
        FetchError::RateLimited {
            status: 429,
            retry_after: Some(Duration::from_secs(secs)),
        }
    }

    #[test]
    fn attempts_fold_into_quote_errors_and_backoffs() {
        let minute = Duration::from_secs(60);
        let mut s = sources();
        // Primary rate limited, fallback answers.
        let (q, errors) = apply_attempts(
            &mut s,
            vec![(0, Err(limited(30))), (1, Ok(quote()))],
            0,
            0,
            minute,
        );
        assert_eq!(q, Some(quote()));
        assert_eq!(
            errors,
            ["coincodex: rate limited (HTTP 429), asked to wait 30 s"]
        );
        assert_eq!(s[0].1.until_ms(), Some(30_000));

        // Next run: the primary is skipped, and that is said.
        let (q, errors) = apply_attempts(&mut s, vec![(1, Ok(quote()))], 1_000, 1_000, minute);
        assert!(q.is_some());
        assert_eq!(
            errors,
            ["coincodex: rate limited, not asked until 00:00:30 UTC"]
        );

        // A limited fallback behind an answering primary is nobody's concern.
        let mut s = sources();
        s[1].1.failed(&limited(30), 0, minute);
        let (q, errors) = apply_attempts(&mut s, vec![(0, Ok(quote()))], 1_000, 1_000, minute);
        assert!(q.is_some() && errors.is_empty(), "{errors:?}");

        // Everything fails: every reason, in order; an index we never gave is ignored.
        let mut s = sources();
        let attempts = vec![
            (0, Err(FetchError::Status(500))),
            (1, Err(FetchError::HostNotFound)),
            (7, Ok(quote())),
        ];
        let (q, errors) = apply_attempts(&mut s, attempts, 0, 0, minute);
        assert_eq!(q, None);
        assert_eq!(errors.len(), 2);
        assert!(
            errors[0].starts_with("coincodex: HTTP 500")
                && errors[1].starts_with("coingecko: cannot resolve")
        );
    }

    #[test]
    fn times_in_messages_are_utc() {
        assert_eq!(utc(1_795_183_503_000), "14:05:03 UTC");
    }
}
