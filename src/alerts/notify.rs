//! Notifiers: a generic webhook (JSON POST), ntfy-style push (POST to `<server>/<topic>` with
//! Title/Priority/Tags headers) and MQTT (JSON on a topic of the `[mqtt]` broker).
//!
//! Each target has its own thread and its own bounded queue, so a target that is down (and
//! being retried with exponential backoff) delays neither ingest nor the other targets. When a
//! queue is full the oldest notification is dropped and counted: the newest says most about
//! the herd now.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use crate::config::{AlertsConfig, NotifyKind, NotifyTarget};
use crate::model::alert::{Notice, NoticeKind, Rule, Severity};
use crate::mqtt::MqttLink;

/// How failed deliveries are retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// Wait before the first retry.
    pub initial: Duration,
    /// Longest wait between attempts.
    pub max: Duration,
}

impl RetryPolicy {
    /// From `[alerts]`.
    pub fn from_config(c: &AlertsConfig) -> Self {
        Self {
            attempts: c.retry_attempts.max(1),
            initial: Duration::from_secs(c.retry_initial_secs),
            max: Duration::from_secs(c.retry_max_secs),
        }
    }

    /// Wait after failed attempt number `attempt` (1-based): initial, 2×, 4×, … up to max.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// Delivery counters over every target (shown in `/metrics`).
#[derive(Debug, Default)]
pub struct NotifyStats {
    /// Notifications delivered.
    pub sent: AtomicU64,
    /// Failed attempts (each retry counts).
    pub failed_attempts: AtomicU64,
    /// Notifications given up on after every attempt failed.
    pub given_up: AtomicU64,
    /// Notifications dropped because a target's queue was full.
    pub dropped: AtomicU64,
}

/// The JSON a webhook (and MQTT) receives.
#[derive(Debug, Serialize)]
pub struct Payload<'a> {
    /// `fired`, `repeat` or `resolved`.
    pub event: NoticeKind,
    /// Rule name.
    pub rule: Rule,
    /// `info`, `warning` or `celebrate`.
    pub severity: Severity,
    /// Miner id.
    pub miner_id: i64,
    /// Miner name.
    pub miner: &'a str,
    /// Short title.
    pub title: String,
    /// One line for a human.
    pub message: &'a str,
    /// When (Unix ms).
    pub at: i64,
}

/// The JSON body for `notice`.
pub fn payload(notice: &Notice) -> Payload<'_> {
    Payload {
        event: notice.kind,
        rule: notice.rule,
        severity: notice.severity,
        miner_id: notice.miner_id,
        miner: &notice.miner,
        title: notice.title(),
        message: &notice.message,
        at: notice.at,
    }
}

/// ntfy's headers for `notice`: (Title, Priority, Tags).
pub fn ntfy_headers(notice: &Notice) -> (String, &'static str, &'static str) {
    let (priority, tags) = match (notice.kind, notice.severity) {
        (_, Severity::Celebrate) => ("max", "tada,moneybag"),
        (NoticeKind::Resolved, _) => ("default", "white_check_mark"),
        (NoticeKind::Repeat, _) => ("default", "warning,repeat"),
        (NoticeKind::Fired, _) => ("high", "warning"),
    };
    // Header values must be visible ASCII; a miner's name may not be.
    let title = notice
        .title()
        .chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '_'
            }
        })
        .collect();
    (title, priority, tags)
}

/// Where one target sends.
#[derive(Clone)]
pub enum Destination {
    /// JSON POST.
    Webhook {
        /// URL.
        url: String,
        /// Bearer token ("" for none).
        token: String,
    },
    /// ntfy.
    Ntfy {
        /// `<server>/<topic>`.
        url: String,
        /// Bearer token ("" for none).
        token: String,
    },
    /// MQTT publish (not retained: an alert is news, not state).
    Mqtt {
        /// The broker connection.
        link: MqttLink,
        /// Topic.
        topic: String,
    },
}

impl Destination {
    /// From a `[[notify]]` entry; `None` for MQTT without a broker link.
    pub fn from_config(t: &NotifyTarget, mqtt: Option<&MqttLink>, prefix: &str) -> Option<Self> {
        Some(match t.kind {
            NotifyKind::Webhook => Destination::Webhook {
                url: t.url.clone(),
                token: t.token.clone(),
            },
            NotifyKind::Ntfy => Destination::Ntfy {
                url: format!("{}/{}", t.url.trim_end_matches('/'), t.topic),
                token: t.token.clone(),
            },
            NotifyKind::Mqtt => Destination::Mqtt {
                link: mqtt?.clone(),
                topic: if t.topic.is_empty() {
                    format!("{prefix}/alerts")
                } else {
                    t.topic.clone()
                },
            },
        })
    }

    /// Where it sends, for logs (no token).
    pub fn describe(&self) -> String {
        match self {
            Destination::Webhook { url, .. } => format!("webhook {url}"),
            Destination::Ntfy { url, .. } => format!("ntfy {url}"),
            Destination::Mqtt { topic, .. } => format!("mqtt {topic}"),
        }
    }

    /// One attempt.
    fn send(&self, agent: &ureq::Agent, notice: &Notice) -> Result<(), String> {
        let json = serde_json::to_string(&payload(notice)).map_err(|e| e.to_string())?;
        let post = |url: &str, token: &str| {
            let mut req = agent.post(url);
            if !token.is_empty() {
                req = req.header("Authorization", format!("Bearer {token}"));
            }
            req
        };
        let resp = match self {
            Destination::Webhook { url, token } => post(url, token)
                .header("Content-Type", "application/json")
                .send(json.as_str()),
            Destination::Ntfy { url, token } => {
                let (title, priority, tags) = ntfy_headers(notice);
                post(url, token)
                    .header("Title", title)
                    .header("Priority", priority)
                    .header("Tags", tags)
                    .send(notice.message.as_str())
            }
            Destination::Mqtt { link, topic } => {
                return link.publish(topic, json.into_bytes(), false);
            }
        };
        let status = resp.map_err(|e| e.to_string())?.status().as_u16();
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(format!("HTTP {status}"))
        }
    }
}

struct Queue {
    items: Mutex<VecDeque<Notice>>,
    wake: Condvar,
    stop: AtomicBool,
}

struct Worker {
    queue: Arc<Queue>,
    thread: Option<JoinHandle<()>>,
    capacity: usize,
    name: String,
}

/// Hands notices to every target's queue; never blocks the caller.
pub struct Notifier {
    workers: Vec<Worker>,
    stats: Arc<NotifyStats>,
}

impl Notifier {
    /// Starts one delivery thread per destination.
    pub fn start(
        destinations: Vec<Destination>,
        policy: RetryPolicy,
        capacity: usize,
        timeout: Duration,
        stats: Arc<NotifyStats>,
    ) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .user_agent(concat!("the-shepherd/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let workers = destinations
            .into_iter()
            .map(|dest| {
                let queue = Arc::new(Queue {
                    items: Mutex::new(VecDeque::new()),
                    wake: Condvar::new(),
                    stop: AtomicBool::new(false),
                });
                let name = dest.describe();
                let (q, a, s) = (queue.clone(), agent.clone(), stats.clone());
                let thread = std::thread::Builder::new()
                    .name("notify".into())
                    .spawn(move || deliver_loop(&dest, &q, &a, policy, &s))
                    .map_err(|e| tracing::error!("cannot start a notifier thread: {e}"))
                    .ok();
                Worker {
                    queue,
                    thread,
                    capacity: capacity.max(1),
                    name,
                }
            })
            .collect();
        Self { workers, stats }
    }

    /// Targets configured.
    pub fn targets(&self) -> usize {
        self.workers.len()
    }

    /// Delivery counters.
    pub fn stats(&self) -> Arc<NotifyStats> {
        self.stats.clone()
    }

    /// Queues `notice` for every target.
    pub fn notify(&self, notice: &Notice) {
        for w in &self.workers {
            let Ok(mut items) = w.queue.items.lock() else {
                continue;
            };
            let mut dropped = 0;
            while items.len() >= w.capacity {
                items.pop_front();
                dropped += 1;
            }
            items.push_back(notice.clone());
            drop(items);
            if dropped > 0 {
                let total = self.stats.dropped.fetch_add(dropped, Ordering::Relaxed) + dropped;
                tracing::warn!(
                    "{}: queue full, dropped the oldest notification ({total} dropped so far)",
                    w.name
                );
            }
            w.queue.wake.notify_one();
        }
    }

    /// Stops the threads; what is still queued is not sent.
    pub fn stop(&mut self) {
        for w in &self.workers {
            // Set the flag while holding the queue's lock: a worker is then either before
            // its check (and sees it) or already waiting (and is woken). Without the lock the
            // wake-up could fall between its check and its wait, and it would sleep out a
            // whole retry backoff.
            let guard = w.queue.items.lock();
            w.queue.stop.store(true, Ordering::SeqCst);
            drop(guard);
            w.queue.wake.notify_all();
        }
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.stop();
    }
}

fn deliver_loop(
    dest: &Destination,
    q: &Queue,
    agent: &ureq::Agent,
    policy: RetryPolicy,
    stats: &NotifyStats,
) {
    while let Some(notice) = next(q) {
        let mut attempt = 1;
        loop {
            match dest.send(agent, &notice) {
                Ok(()) => {
                    stats.sent.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Err(e) => {
                    stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
                    if attempt >= policy.attempts {
                        stats.given_up.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            "{}: gave up on \"{}\" after {attempt} attempts: {e}",
                            dest.describe(),
                            notice.title()
                        );
                        break;
                    }
                    let wait = policy.delay(attempt);
                    tracing::info!(
                        "{}: delivery failed ({e}); retrying in {wait:?}",
                        dest.describe()
                    );
                    if !pause(q, wait) {
                        return;
                    }
                    attempt += 1;
                }
            }
        }
    }
}

/// The next notice, waiting for one; `None` once stopping.
fn next(q: &Queue) -> Option<Notice> {
    let mut items = q.items.lock().ok()?;
    loop {
        if q.stop.load(Ordering::SeqCst) {
            return None;
        }
        if let Some(n) = items.pop_front() {
            return Some(n);
        }
        items = q.wake.wait(items).ok()?;
    }
}

/// Sleeps `wait` unless told to stop; false when stopping.
fn pause(q: &Queue, wait: Duration) -> bool {
    let deadline = std::time::Instant::now() + wait;
    let Ok(mut items) = q.items.lock() else {
        return false;
    };
    loop {
        if q.stop.load(Ordering::SeqCst) {
            return false;
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return true;
        }
        match q.wake.wait_timeout(items, left) {
            Ok((guard, _)) => items = guard,
            Err(_) => return false,
        }
    }
}

/// A JSON document describing `notice` (for tests and the API).
pub fn payload_json(notice: &Notice) -> serde_json::Value {
    serde_json::to_value(payload(notice)).unwrap_or_else(|_| json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(kind: NoticeKind, severity: Severity) -> Notice {
        Notice {
            miner_id: 3,
            miner: "nm-é".into(),
            rule: Rule::Temperature,
            kind,
            severity,
            message: "nm-é is at 75.0 °C".into(),
            at: 42,
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            attempts: 6,
            initial: Duration::from_secs(2),
            max: Duration::from_secs(10),
        };
        let d: Vec<u64> = (1..=5).map(|a| p.delay(a).as_secs()).collect();
        assert_eq!(d, vec![2, 4, 8, 10, 10]);
        assert_eq!(p.delay(200), Duration::from_secs(10));
    }

    #[test]
    fn payload_names_everything() {
        let v = payload_json(&notice(NoticeKind::Fired, Severity::Warning));
        assert_eq!(v["event"], "fired");
        assert_eq!(v["rule"], "temperature");
        assert_eq!(v["severity"], "warning");
        assert_eq!(v["miner"], "nm-é");
        assert_eq!(v["at"], 42);
        assert_eq!(v["title"], "nm-é: running hot");
    }

    #[test]
    fn ntfy_headers_are_ascii_and_graded() {
        let (title, prio, tags) = ntfy_headers(&notice(NoticeKind::Fired, Severity::Warning));
        assert_eq!(title, "nm-_: running hot");
        assert_eq!((prio, tags), ("high", "warning"));
        let (_, prio, _) = ntfy_headers(&notice(NoticeKind::Resolved, Severity::Info));
        assert_eq!(prio, "default");
        let (_, prio, tags) = ntfy_headers(&Notice {
            rule: Rule::BlockFound,
            ..notice(NoticeKind::Fired, Severity::Celebrate)
        });
        assert_eq!((prio, tags), ("max", "tada,moneybag"));
    }
}
