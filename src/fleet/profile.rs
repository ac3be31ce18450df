//! A pool profile: one named set of pools to mine on, primary first, then fallbacks in the
//! order they are tried. NerdMiner itself has no fallback pool, so the Pi switches between them
//! (see [`super::failover`]) with the same safe write as any configuration change.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::flash::nerd_config;

/// The firmware copies the pool password into an 80-byte buffer (with the NUL).
const MAX_PASSWORD: usize = 79;

/// One pool: what NerdMiner's `poolString`, `portNumber` and `poolPassword` hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Host name or IP (a `stratum+tcp://` prefix is accepted like the firmware does).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Stratum password (`x` for most pools).
    #[serde(default = "default_password")]
    pub password: String,
}

fn default_password() -> String {
    "x".into()
}

impl Endpoint {
    /// The config.json keys that put a miner on this pool.
    pub fn keys(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("poolString".into(), self.host.clone().into());
        m.insert("portNumber".into(), self.port.into());
        m.insert("poolPassword".into(), self.password.clone().into());
        m
    }

    /// `host:port`, for people.
    pub fn label(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Parses `host:port[:password]` as typed on the command line.
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        let text = text.trim();
        let rest = text
            .strip_prefix("stratum+tcp://")
            .unwrap_or(text)
            .to_owned();
        let mut parts = rest.splitn(3, ':');
        let host = parts.next().unwrap_or_default().to_owned();
        let port = parts.next().ok_or_else(|| {
            format!("{text:?}: give the pool as host:port, e.g. public-pool.io:21496")
        })?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{text:?}: the port {port:?} is not a number from 1 to 65535"))?;
        let password = parts.next().map_or_else(default_password, str::to_owned);
        Ok(Endpoint {
            host,
            port,
            password,
        })
    }

    /// Checks host, port and password; the error names the field.
    pub fn check(&self) -> Result<(), String> {
        nerd_config::check_pool(&self.host).map_err(|e| format!("host {e}"))?;
        if self.port == 0 {
            return Err("port must be from 1 to 65535".into());
        }
        if self.password.len() > MAX_PASSWORD {
            return Err(format!(
                "password is longer than the firmware's {MAX_PASSWORD} bytes"
            ));
        }
        if self.password.contains('"') || self.password.chars().any(char::is_control) {
            return Err("password holds a quote or control character".into());
        }
        Ok(())
    }
}

/// A time window (minutes of the day on the wall clock of `[fleet] time_zone` or the Pi's zone, see
/// [`super::zone`]) during which a profile's miners mine on pool
/// `pool` instead of the primary, e.g. a solo pool at night. `start > end` wraps midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// First minute of the day inside the window (0–1439).
    pub start: u16,
    /// First minute of the day after the window (0–1439).
    pub end: u16,
    /// Index into the profile's pools.
    pub pool: usize,
}

impl Window {
    /// Parses `HH:MM-HH:MM=N` (N the pool's index, 0 the primary).
    pub fn parse(text: &str) -> Result<Window, String> {
        let bad = || format!("{text:?}: write a window as HH:MM-HH:MM=N, e.g. 22:00-06:00=1");
        let (span, pool) = text.split_once('=').ok_or_else(bad)?;
        let (a, b) = span.split_once('-').ok_or_else(bad)?;
        let minute = |t: &str| -> Option<u16> {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60).then_some(h * 60 + m)
        };
        Ok(Window {
            start: minute(a).ok_or_else(bad)?,
            end: minute(b).ok_or_else(bad)?,
            pool: pool.trim().parse().map_err(|_| bad())?,
        })
    }

    /// Whether minute-of-day `minute` falls inside.
    pub fn contains(&self, minute: u16) -> bool {
        if self.start <= self.end {
            self.start <= minute && minute < self.end
        } else {
            minute >= self.start || minute < self.end
        }
    }

    /// `HH:MM-HH:MM=N`.
    pub fn label(&self) -> String {
        format!(
            "{:02}:{:02}-{:02}:{:02}={}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60,
            self.pool
        )
    }
}

/// A named pool profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// Row id (0 before it is stored).
    pub id: i64,
    /// Unique name, e.g. "public".
    pub name: String,
    /// Primary pool first, then fallbacks in order.
    pub pools: Vec<Endpoint>,
    /// Whether the Pi moves miners to the next fallback when their pool is down.
    pub failover: bool,
    /// Minutes a pool must be unreachable or rejecting before failing over (default 10).
    pub down_minutes: u32,
    /// Minutes the primary must answer the Pi's test before going back (default 10).
    pub back_minutes: u32,
    /// Time windows with another pool than the primary.
    pub schedule: Vec<Window>,
    /// IANA time zone its windows are read in (e.g. "Europe/Berlin"); empty: `[fleet]
    /// time_zone`, else the Pi's own.
    #[serde(default)]
    pub time_zone: String,
}

/// Failover's default wait, in minutes.
pub const DEFAULT_MINUTES: u32 = 10;

impl Profile {
    /// Every problem with the profile (empty when it may be stored).
    pub fn check(&self) -> Vec<String> {
        let mut errors = Vec::new();
        let name = self.name.trim();
        if name.is_empty() || name.len() > 40 {
            errors.push("name: give the profile a name of 1 to 40 characters".into());
        }
        if name.chars().any(char::is_control) {
            errors.push("name: no control characters".into());
        }
        if self.pools.is_empty() {
            errors.push("pools: give at least the primary pool".into());
        }
        for (i, p) in self.pools.iter().enumerate() {
            let role = if i == 0 {
                "primary".to_string()
            } else {
                format!("fallback {i}")
            };
            if let Err(e) = p.check() {
                errors.push(format!("{role}: {e}"));
            }
            if self.pools[..i]
                .iter()
                .any(|q| q.host.eq_ignore_ascii_case(&p.host) && q.port == p.port)
            {
                errors.push(format!("{role}: {} is listed twice", p.label()));
            }
        }
        if self.failover && self.pools.len() < 2 {
            errors.push("failover: add a fallback pool to fail over to".into());
        }
        if self.failover && (self.down_minutes == 0 || self.back_minutes == 0) {
            errors.push("failover: the waits must be at least one minute".into());
        }
        if let Err(e) = super::zone::named(&self.time_zone) {
            errors.push(format!("time zone: {e}"));
        }
        for w in &self.schedule {
            if w.pool >= self.pools.len() {
                errors.push(format!(
                    "schedule {}: there is no pool {} (0 is the primary)",
                    w.label(),
                    w.pool
                ));
            }
            if w.start == w.end {
                errors.push(format!("schedule {}: the window is empty", w.label()));
            }
        }
        errors
    }

    /// The pool the profile wants at minute-of-day `minute` (wall clock, [`super::zone`]): the first window that
    /// holds it, else the primary.
    pub fn home(&self, minute: u16) -> usize {
        self.schedule
            .iter()
            .find(|w| w.contains(minute) && w.pool < self.pools.len())
            .map_or(0, |w| w.pool)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(host: &str, port: u16) -> Endpoint {
        Endpoint {
            host: host.into(),
            port,
            password: "x".into(),
        }
    }

    fn profile(pools: Vec<Endpoint>) -> Profile {
        Profile {
            id: 0,
            name: "p".into(),
            pools,
            failover: false,
            down_minutes: DEFAULT_MINUTES,
            back_minutes: DEFAULT_MINUTES,
            schedule: vec![],
            time_zone: String::new(),
        }
    }

    #[test]
    fn endpoints_parse_and_check() {
        let e = Endpoint::parse("public-pool.io:21496").unwrap();
        assert_eq!(e, ep("public-pool.io", 21496));
        let e = Endpoint::parse("stratum+tcp://solo.ckpool.org:3333:secret").unwrap();
        assert_eq!(e.password, "secret");
        assert!(Endpoint::parse("public-pool.io")
            .unwrap_err()
            .contains("host:port"));
        assert!(Endpoint::parse("a.b:99999")
            .unwrap_err()
            .contains("1 to 65535"));
        assert!(ep("bad host", 1).check().unwrap_err().starts_with("host"));
        assert!(ep("ok.org", 0).check().unwrap_err().starts_with("port"));
        assert_eq!(ep("ok.org", 1).keys()["portNumber"], 1);
    }

    #[test]
    fn profiles_are_checked_whole() {
        assert!(profile(vec![ep("a.org", 1)]).check().is_empty());
        assert!(profile(vec![]).check()[0].contains("primary"));
        let twice = profile(vec![ep("a.org", 1), ep("A.org", 1)]);
        assert!(twice.check()[0].contains("twice"));
        let mut lone = profile(vec![ep("a.org", 1)]);
        lone.failover = true;
        assert!(lone.check()[0].contains("fallback"));
        lone.schedule = vec![Window::parse("22:00-06:00=3").unwrap()];
        assert!(lone.check().iter().any(|e| e.contains("no pool 3")));
    }

    #[test]
    fn schedules_wrap_midnight() {
        let w = Window::parse("22:00-06:00=1").unwrap();
        assert_eq!((w.start, w.end, w.pool), (1320, 360, 1));
        assert!(w.contains(23 * 60) && w.contains(0) && w.contains(359));
        assert!(!w.contains(360) && !w.contains(12 * 60));
        assert_eq!(w.label(), "22:00-06:00=1");
        let day = Window::parse("08:30-09:00=1").unwrap();
        assert!(day.contains(510) && !day.contains(540));
        assert!(Window::parse("25:00-01:00=1").is_err());
        let mut p = profile(vec![ep("a.org", 1), ep("solo.ckpool.org", 3333)]);
        p.schedule = vec![w];
        assert_eq!(p.home(23 * 60), 1);
        assert_eq!(p.home(12 * 60), 0);
    }
}
