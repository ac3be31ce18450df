//! `config.toml`: every option has a default, so the program runs with no file at all.
//!
//! Unknown keys are errors (a typo must not silently fall back to a default), and parse errors
//! name the file, line and column. `config.example.toml` documents every key; a test keeps the
//! two in step.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::model::device::{default_usb_ids, UsbId};

mod alert_rules;

/// Everything the program can be told in `config.toml`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Web server.
    pub server: ServerConfig,
    /// SQLite database and retention.
    pub database: DatabaseConfig,
    /// Serial ingest tuning.
    pub ingest: IngestConfig,
    /// The summarizer's cadence and status thresholds.
    pub summarizer: SummarizerConfig,
    /// Simulated miners.
    pub demo: DemoConfig,
    /// How long raw lines, events and history are kept.
    pub retention: crate::db::retention::RetentionConfig,
    /// BTC price fetching.
    pub price: PriceConfig,
    /// Bitcoin network figures (difficulty, hashrate, height).
    pub network: NetworkConfig,
    /// Recognising miners as they are plugged in.
    pub discovery: DiscoveryConfig,
    /// Alert rules and delivery.
    pub alerts: AlertsConfig,
    /// Where alerts are sent (`[[notify]]`, none by default).
    pub notify: Vec<NotifyTarget>,
    /// MQTT broker for Home Assistant and alert messages.
    pub mqtt: MqttConfig,
    /// Raw SPIFFS images kept from configuration reads.
    pub backups: BackupsConfig,
    /// Web pages: optional login.
    pub web: WebConfig,
    /// Resetting stuck miners by itself (off by default).
    pub self_heal: SelfHealConfig,
    /// Pool profiles' failover and schedules.
    pub fleet: FleetConfig,
    /// This Shepherd's site: its name on a shared broker.
    pub site: SiteConfig,
    /// The central view of every site on the `[mqtt]` broker (off by default).
    pub hub: HubConfig,
}

/// `[fleet]`: how the Pi carries out pool profiles' failover and schedule windows.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FleetConfig {
    /// Seconds between two looks at the herd (failover waits are counted in minutes, so a
    /// minute is plenty; tests shorten it).
    pub autopilot_secs: u64,
    /// IANA time zone of schedule windows (e.g. "Europe/Berlin") for profiles that name none;
    /// empty: the Pi's own zone.
    pub time_zone: String,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            autopilot_secs: 60,
            time_zone: String::new(),
        }
    }
}

/// `[site]`: how this Shepherd is named when several share one broker.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SiteConfig {
    /// Topic segment and label ("" means the machine's hostname).
    pub name: String,
    /// This Shepherd's address as a hub should link to it ("" for none).
    pub url: String,
}

impl SiteConfig {
    /// The name in force: `name`, else the hostname, made safe as one topic segment.
    pub fn effective_name(&self) -> String {
        let raw = if self.name.trim().is_empty() {
            std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default()
        } else {
            self.name.clone()
        };
        crate::model::site::site_segment(&raw)
    }
}

/// `[hub]`: subscribe to every site under `[mqtt] topic_prefix` and show them together.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HubConfig {
    /// Also turned on by `shepherd run --hub`.
    pub enabled: bool,
    /// A site not heard from for this long is shown as stale even without its last will.
    pub stale_secs: u64,
    /// Days of remote miners' history kept.
    pub history_days: u64,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            stale_secs: 120,
            history_days: 30,
        }
    }
}

/// `[self_heal]`: what the Shepherd may do on its own about a stuck miner.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SelfHealConfig {
    /// Off unless the owner turns it on: a reset costs mining time.
    pub enabled: bool,
    /// A miner stalled or hung this long gets a reset through its serial lines.
    pub after_minutes: u64,
    /// When a reset did not help, power cycle the port with `uhubctl` where the hub can.
    pub power_cycle: bool,
    /// At most one action per miner this often.
    pub min_interval_minutes: u64,
    /// At most this many actions per miner a day.
    pub max_per_day: u32,
    /// How often stuck miners are looked for (seconds).
    pub check_secs: u64,
    /// The `uhubctl` program; empty: looked for on PATH.
    pub uhubctl: String,
}

impl Default for SelfHealConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            after_minutes: 10,
            power_cycle: true,
            min_interval_minutes: 30,
            max_per_day: 6,
            check_secs: 60,
            uhubctl: String::new(),
        }
    }
}

/// `[web]`: who may reach the pages and what needs the login.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// When not empty, changes (and, with `protect = "all"`, everything) need a login. An
    /// Argon2id hash as written by `shepherd passwd` (`$argon2id$…`), or, still accepted with a
    /// warning, the password itself.
    pub password: String,
    /// What the password protects: `writes` (every change, backups, command payloads) or
    /// `all` (every page and API; kiosks and Prometheus use read-only tokens).
    pub protect: Protect,
    /// Extra names the server is reached by (a reverse proxy's public name, a DNS alias); the
    /// bind address, `localhost`, this machine's hostname, `hostname.local` and any IP address
    /// are always accepted. `"*"` accepts any name (turns the DNS-rebinding check off).
    pub allowed_hosts: Vec<String>,
    /// Reverse proxies whose `X-Forwarded-Proto` / `X-Forwarded-For` are believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Days a login lasts.
    pub session_days: u64,
    /// CSP `frame-ancestors` for the kiosk pages only ("" = they cannot be framed either), e.g.
    /// `"http://homeassistant.local:8123"` for a Home Assistant panel.
    pub kiosk_frame_ancestors: String,
    /// Live-update streams (`/api/events`) served at once; more get a 503.
    pub max_event_streams: usize,
}

/// `[web] protect`
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Protect {
    /// Changes need the login; reading does not (backups and command payloads do).
    #[default]
    Writes,
    /// Every page and API needs the login or a read-only token.
    All,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            password: String::new(),
            protect: Protect::Writes,
            allowed_hosts: Vec::new(),
            trusted_proxies: Vec::new(),
            session_days: 30,
            kiosk_frame_ancestors: String::new(),
            max_event_streams: 256,
        }
    }
}

/// `[backups]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BackupsConfig {
    /// Backups kept per miner; older ones are deleted after each new one.
    pub keep: usize,
}

impl Default for BackupsConfig {
    fn default() -> Self {
        Self { keep: 10 }
    }
}

/// `[server]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the dashboard listens on.
    pub bind: SocketAddr,
}

/// `[database]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Database file; relative paths are relative to the working directory.
    pub path: PathBuf,
}

/// `[ingest]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Baud rate for real serial ports (NerdMiner prints at 115200).
    pub baud: u32,
    /// A batch is written once it holds this many lines...
    pub batch_lines: usize,
    /// ...or once its oldest line is this old, whichever comes first.
    pub batch_millis: u64,
    /// Lines a miner may have waiting for the database; beyond this its reader stops reading
    /// the port until the writer catches up (bounds memory when the disk is slow).
    pub max_pending_lines: usize,
    /// Longest delay between attempts to reopen a port that vanished or failed.
    pub max_retry_secs: u64,
}

/// `[summarizer]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SummarizerConfig {
    /// How often `miner_summary` is brought up to date.
    pub interval_secs: u64,
    /// A connected miner silent this long is shown as stalled.
    pub stall_secs: u64,
}

/// `[demo]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DemoConfig {
    /// Seconds between the simulated miners' status lines (the firmware prints once a second).
    pub line_interval_millis: u64,
    /// Mock AxeOS miners (Bitaxe-like, on 127.0.0.1) added beside the simulated NerdMiners.
    pub axeos_miners: usize,
}

/// `[price]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PriceConfig {
    /// Fetch the price at all.
    pub enabled: bool,
    /// CoinCodex base URL (`/api/coincodex/get_coin/btc` is appended); "" skips CoinCodex.
    pub coincodex_url: String,
    /// Full URL of the fallback provider, told by its path: CoinGecko `…/simple/price` or
    /// mempool.space `…/api/v1/prices`; "" for none.
    pub fallback_url: String,
    /// Three-letter currency code. CoinCodex quotes only USD; others come from the fallback.
    pub currency: String,
    /// Seconds between fetches.
    pub interval_secs: u64,
    /// A price older than this is marked stale.
    pub stale_after_secs: u64,
    /// Longest a single request may take, connect to last byte.
    pub timeout_secs: u64,
}

/// `[network]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// Fetch the network figures at all.
    pub enabled: bool,
    /// mempool.space (or a self-hosted mempool) base URL.
    pub mempool_url: String,
    /// Seconds between fetches.
    pub interval_secs: u64,
    /// Figures older than this are marked stale.
    pub stale_after_secs: u64,
    /// Longest a single request may take, connect to last byte.
    pub timeout_secs: u64,
}

/// `[discovery]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// Watch for USB serial devices at all.
    pub enabled: bool,
    /// USB `vendor:product` ids (hex; product may be `*`) of the chips to offer as miners.
    pub usb_ids: Vec<UsbId>,
    /// Where udev is not running: seconds between scans of /dev and /sys.
    pub poll_secs: u64,
    /// Seconds to listen on a new device's port for NerdMiner output (0: never open it).
    pub probe_secs: u64,
}

/// `[alerts]`: which rules run, their thresholds, and how notifications are retried.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Evaluate rules at all.
    pub enabled: bool,
    /// Seconds between evaluations.
    pub interval_secs: u64,
    /// Rule: offline, stalled or in error...
    pub offline: bool,
    /// ...for this many minutes.
    pub offline_minutes: u64,
    /// Rule: hashrate below a share of its 24-h average...
    pub hashrate: bool,
    /// ...below this percentage...
    pub hashrate_below_percent: f64,
    /// ...for this many minutes.
    pub hashrate_minutes: u64,
    /// Rule: chip temperature...
    pub temperature: bool,
    /// ...above this (°C).
    pub temperature_above_c: f64,
    /// Rule: the miner cannot reach its pool...
    pub pool: bool,
    /// ...for this many minutes.
    pub pool_minutes: u64,
    /// Rule: rejected shares...
    pub rejects: bool,
    /// ...above this percentage...
    pub rejects_above_percent: f64,
    /// ...of at least this many shares...
    pub rejects_min_shares: u64,
    /// ...within this many minutes.
    pub rejects_window_minutes: u64,
    /// Rule: the miner rebooted.
    pub reboot: bool,
    /// Rule: the miner found a block.
    pub block_found: bool,
    /// Rule: the pool refuses the miner's worker (the firmware hashes on regardless).
    pub worker_rejected: bool,
    /// Rule: a reboot storm...
    pub reboot_storm: bool,
    /// ...this many reboots...
    pub reboot_storm_count: u64,
    /// ...within this many minutes.
    pub reboot_storm_minutes: u64,
    /// Rule: a brown-out reset (weak power supply or cable).
    pub brownout: bool,
    /// Resend an alert that is still active this often (0: never).
    pub repeat_minutes: u64,
    /// A condition must stay clear this long before "resolved" is sent (against flapping).
    pub clear_secs: u64,
    /// Delivery attempts per notification and target.
    pub retry_attempts: u32,
    /// Wait before the first retry; doubles with each attempt...
    pub retry_initial_secs: u64,
    /// ...up to this.
    pub retry_max_secs: u64,
    /// Notifications waiting per target; beyond it the oldest are dropped (and counted).
    pub queue_size: usize,
    /// Longest one delivery may take (HTTP), at most 60.
    pub timeout_secs: u64,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_secs: 5,
            offline: true,
            offline_minutes: 5,
            hashrate: true,
            hashrate_below_percent: 50.0,
            hashrate_minutes: 15,
            temperature: true,
            temperature_above_c: 70.0,
            pool: true,
            pool_minutes: 3,
            rejects: true,
            rejects_above_percent: 10.0,
            rejects_min_shares: 20,
            rejects_window_minutes: 60,
            reboot: true,
            block_found: true,
            worker_rejected: true,
            reboot_storm: true,
            reboot_storm_count: 3,
            reboot_storm_minutes: 10,
            brownout: true,
            repeat_minutes: 60,
            clear_secs: 120,
            retry_attempts: 5,
            retry_initial_secs: 2,
            retry_max_secs: 300,
            queue_size: 100,
            timeout_secs: 10,
        }
    }
}

pub use alert_rules::{RuleField, ALERT_RULE_KEYS};

/// How a notification target is reached.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NotifyKind {
    /// JSON POST to `url`.
    Webhook,
    /// ntfy-style push: POST to `<url>/<topic>` with Title/Priority/Tags headers.
    Ntfy,
    /// JSON published to `topic` on the `[mqtt]` broker.
    Mqtt,
}

/// One `[[notify]]` target.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NotifyTarget {
    /// webhook, ntfy or mqtt.
    pub kind: NotifyKind,
    /// Webhook URL, or the ntfy server (`https://ntfy.sh`).
    #[serde(default)]
    pub url: String,
    /// ntfy topic, or MQTT topic (default `<topic_prefix>/alerts`).
    #[serde(default)]
    pub topic: String,
    /// Sent as `Authorization: Bearer <token>` (webhook, ntfy) when not empty.
    #[serde(default)]
    pub token: String,
}

/// `[mqtt]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// Connect to a broker at all.
    pub enabled: bool,
    /// Broker host name or address.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// User name ("" for none).
    pub username: String,
    /// Password.
    pub password: String,
    /// Prefix of every state topic.
    pub topic_prefix: String,
    /// Home Assistant's discovery prefix.
    pub discovery_prefix: String,
    /// Seconds between state publications.
    pub interval_secs: u64,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            host: "localhost".into(),
            port: 1883,
            username: String::new(),
            password: String::new(),
            topic_prefix: "shepherd".into(),
            discovery_prefix: "homeassistant".into(),
            interval_secs: 10,
        }
    }
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            usb_ids: default_usb_ids(),
            poll_secs: 2,
            probe_secs: 8,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([0, 0, 0, 0], 8080)),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("shepherd.db"),
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            baud: 115_200,
            batch_lines: 10_000,
            batch_millis: 250,
            max_pending_lines: 20_000,
            max_retry_secs: 30,
        }
    }
}

impl Default for SummarizerConfig {
    fn default() -> Self {
        Self {
            interval_secs: 3,
            stall_secs: 30,
        }
    }
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            line_interval_millis: 1000,
            axeos_miners: 3,
        }
    }
}

impl Default for PriceConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            coincodex_url: "https://coincodex.com".into(),
            fallback_url: "https://api.coingecko.com/api/v3/simple/price".into(),
            currency: "USD".into(),
            interval_secs: 300,
            stale_after_secs: 900,
            timeout_secs: 10,
        }
    }
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            mempool_url: "https://mempool.space".into(),
            interval_secs: 600,
            stale_after_secs: 3600,
            timeout_secs: 10,
        }
    }
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named on the command line could not be read.
    #[error("cannot read config file {path}: {source} (check the path given with --config)")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or has a key or value we do not accept.
    #[error(
        "config file {path}: {message}\nSee config.example.toml for every key and its default."
    )]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, which names the line and column.
        message: String,
    },
    /// Values that parse but make no sense together.
    #[error("config file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// A request that may hang for minutes would hold a blocking thread that long.
fn check_timeout(section: &str, secs: u64) -> Result<(), String> {
    if secs > MAX_TIMEOUT_SECS {
        return Err(format!(
            "{section}.timeout_secs must be at most {MAX_TIMEOUT_SECS}"
        ));
    }
    Ok(())
}

/// Longest request timeout accepted.
const MAX_TIMEOUT_SECS: u64 = 60;

impl Config {
    /// Reads `path`, or returns the defaults when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses TOML text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        config.validate().map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        let positive = [
            ("ingest.batch_lines", self.ingest.batch_lines as u64),
            ("ingest.batch_millis", self.ingest.batch_millis),
            (
                "ingest.max_pending_lines",
                self.ingest.max_pending_lines as u64,
            ),
            ("ingest.max_retry_secs", self.ingest.max_retry_secs),
            ("ingest.baud", u64::from(self.ingest.baud)),
            ("summarizer.interval_secs", self.summarizer.interval_secs),
            ("summarizer.stall_secs", self.summarizer.stall_secs),
            ("demo.line_interval_millis", self.demo.line_interval_millis),
            ("retention.logs_days", self.retention.logs_days),
            ("retention.logs_max_mb", self.retention.logs_max_mb),
            ("retention.events_days", self.retention.events_days),
            ("retention.minutes_days", self.retention.minutes_days),
            ("retention.interval_secs", self.retention.interval_secs),
            ("retention.batch_rows", self.retention.batch_rows as u64),
            ("price.interval_secs", self.price.interval_secs),
            ("price.stale_after_secs", self.price.stale_after_secs),
            ("price.timeout_secs", self.price.timeout_secs),
            ("network.interval_secs", self.network.interval_secs),
            ("network.stale_after_secs", self.network.stale_after_secs),
            ("network.timeout_secs", self.network.timeout_secs),
            ("discovery.poll_secs", self.discovery.poll_secs),
            ("backups.keep", self.backups.keep as u64),
            ("alerts.interval_secs", self.alerts.interval_secs),
            ("self_heal.check_secs", self.self_heal.check_secs),
            (
                "alerts.retry_attempts",
                u64::from(self.alerts.retry_attempts),
            ),
            ("alerts.queue_size", self.alerts.queue_size as u64),
            ("alerts.timeout_secs", self.alerts.timeout_secs),
            ("mqtt.interval_secs", self.mqtt.interval_secs),
            ("hub.stale_secs", self.hub.stale_secs),
            ("hub.history_days", self.hub.history_days),
            ("web.session_days", self.web.session_days),
            ("web.max_event_streams", self.web.max_event_streams as u64),
            ("fleet.autopilot_secs", self.fleet.autopilot_secs),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(format!("{key} must be greater than 0"));
            }
        }
        if self.ingest.max_pending_lines < self.ingest.batch_lines {
            return Err("ingest.max_pending_lines must be at least ingest.batch_lines".into());
        }
        self.validate_price()?;
        self.validate_network()?;
        self.validate_web()?;
        crate::fleet::zone::named(&self.fleet.time_zone)
            .map_err(|e| format!("fleet.time_zone: {e}"))?;
        self.validate_hub()?;
        self.validate_alerts()
    }

    fn validate_hub(&self) -> Result<(), String> {
        if self.site.name.contains(['/', '+', '#']) {
            return Err("site.name must not contain / + or # (it is one MQTT topic level)".into());
        }
        if !self.site.url.is_empty() && !self.site.url.starts_with("http") {
            return Err("site.url must start with http:// or https:// (or be \"\")".into());
        }
        if self.hub.enabled && !self.mqtt.enabled {
            return Err(
                "[hub] enabled = true needs [mqtt] enabled = true and the central broker's host"
                    .into(),
            );
        }
        Ok(())
    }

    fn validate_web(&self) -> Result<(), String> {
        let w = &self.web;
        if w.session_days > 3650 {
            return Err("web.session_days must be at most 3650".into());
        }
        if let Some(h) = w.allowed_hosts.iter().find(|h| {
            h.is_empty() || h.contains(['/', ' ', '@']) || (h.contains('*') && h.as_str() != "*")
        }) {
            return Err(format!(
                "web.allowed_hosts: {h:?} is not a host name (give names like \"shepherd.example.com\", \
                 without scheme, path or port; \"*\" alone accepts any)"
            ));
        }
        if w.kiosk_frame_ancestors
            .contains([';', ',', '\'', '"', '\n', '\r'])
        {
            return Err(
                "web.kiosk_frame_ancestors: give origins separated by spaces, e.g. \
                 \"http://homeassistant.local:8123\""
                    .into(),
            );
        }
        Ok(())
    }

    fn validate_alerts(&self) -> Result<(), String> {
        check_timeout("alerts", self.alerts.timeout_secs)?;
        self.alerts.validate_rules()?;
        if self.mqtt.topic_prefix.is_empty() || self.mqtt.topic_prefix.contains(['+', '#']) {
            return Err("mqtt.topic_prefix must be a non-empty topic without + or #".into());
        }
        for (i, n) in self.notify.iter().enumerate() {
            let at = format!("notify[{i}]");
            match n.kind {
                NotifyKind::Webhook => {
                    crate::model::price::check_url(&format!("{at}.url"), &n.url)?
                }
                NotifyKind::Ntfy => {
                    crate::model::price::check_url(&format!("{at}.url"), &n.url)?;
                    if n.topic.is_empty() || n.topic.contains('/') {
                        return Err(format!("{at}.topic: an ntfy topic is one path segment"));
                    }
                }
                NotifyKind::Mqtt if !self.mqtt.enabled => {
                    return Err(format!(
                        "{at} sends to MQTT, but [mqtt] enabled = false: enable it and set mqtt.host"
                    ));
                }
                NotifyKind::Mqtt => {}
            }
        }
        Ok(())
    }

    /// Checked even when disabled, so turning a feed on later cannot reveal an old typo.
    fn validate_price(&self) -> Result<(), String> {
        let p = &self.price;
        crate::model::price::price_sources(&p.coincodex_url, &p.fallback_url, &p.currency)?;
        if p.stale_after_secs < p.interval_secs {
            return Err(format!(
                "price.stale_after_secs ({}) must be at least price.interval_secs ({}), or every \
                 price would be marked stale before the next fetch",
                p.stale_after_secs, p.interval_secs
            ));
        }
        check_timeout("price", p.timeout_secs)
    }

    fn validate_network(&self) -> Result<(), String> {
        let n = &self.network;
        crate::model::price::check_url("network.mempool_url", &n.mempool_url)?;
        if n.stale_after_secs < n.interval_secs {
            return Err(format!(
                "network.stale_after_secs ({}) must be at least network.interval_secs ({})",
                n.stale_after_secs, n.interval_secs
            ));
        }
        check_timeout("network", n.timeout_secs)
    }

    /// Where configuration backups go: `<data dir>/backups/<miner id>/<time>.bin`.
    pub fn backups_dir(&self) -> PathBuf {
        self.data_dir().join("backups")
    }

    /// Folder for files that belong beside the database (config backups).
    pub fn data_dir(&self) -> PathBuf {
        match self.database.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn missing_file_means_defaults() {
        let c = Config::load(None).unwrap();
        assert_eq!(c.server.bind.to_string(), "0.0.0.0:8080");
        assert_eq!(c.database.path, PathBuf::from("shepherd.db"));
    }

    #[test]
    fn empty_file_means_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn partial_sections_keep_other_defaults() {
        let c = parse("[server]\nbind = \"127.0.0.1:9000\"\n[ingest]\nbatch_lines = 10\n").unwrap();
        assert_eq!(c.server.bind.port(), 9000);
        assert_eq!(c.ingest.batch_lines, 10);
        assert_eq!(c.ingest.batch_millis, IngestConfig::default().batch_millis);
    }

    #[test]
    fn malformed_file_names_the_line() {
        let err = parse("[server]\nbind = \"127.0.0.1:9000\"\nthis is not toml\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("line 3"), "{msg}");
        assert!(msg.contains("test.toml"), "{msg}");
    }

    #[test]
    fn unknown_key_is_an_error_with_its_line() {
        let err = parse("[server]\n\nbnid = \"127.0.0.1:9000\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("bnid"), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
    }

    #[test]
    fn bad_value_type_is_an_error() {
        let err = parse("[server]\nbind = \"not an address\"\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn zero_interval_is_rejected() {
        let err = parse("[summarizer]\ninterval_secs = 0\n").unwrap_err();
        assert!(
            err.to_string().contains("summarizer.interval_secs"),
            "{err}"
        );
    }

    #[test]
    fn price_and_network_defaults_point_at_the_public_services() {
        let c = Config::default();
        assert!(c.price.enabled && c.network.enabled);
        assert_eq!(c.price.coincodex_url, "https://coincodex.com");
        assert_eq!(c.price.currency, "USD");
        assert_eq!(c.network.mempool_url, "https://mempool.space");
        assert!(c.price.timeout_secs <= 10 && c.network.timeout_secs <= 10);
    }

    #[test]
    fn price_settings_are_checked() {
        let ok = [
            "[price]\ncurrency = \"eur\"\n",
            "[price]\ncurrency = \"GBP\"\nfallback_url = \"https://mempool.space/api/v1/prices\"\n",
            "[price]\nenabled = false\ncoincodex_url = \"http://127.0.0.1:1\"\nfallback_url = \"\"\n",
            "[network]\nmempool_url = \"http://127.0.0.1:8999/\"\ninterval_secs = 1\nstale_after_secs = 1\n",
        ];
        for text in ok {
            parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        }
        let bad = [
            ("[price]\ncurrency = \"EUR\"\nfallback_url = \"\"\n", "CoinCodex quotes only USD"),
            ("[price]\ncurrency = \"NOK\"\nfallback_url = \"https://mempool.space/api/v1/prices\"\n", "does not quote"),
            ("[price]\ncurrency = \"euro\"\n", "three-letter"),
            ("[price]\nfallback_url = \"https://example.com/price\"\n", "price.fallback_url"),
            ("[price]\ncoincodex_url = \"coincodex.com\"\n", "price.coincodex_url"),
            ("[price]\ninterval_secs = 0\n", "price.interval_secs must be greater than 0"),
            ("[price]\ninterval_secs = 600\nstale_after_secs = 60\n", "price.stale_after_secs"),
            ("[price]\ntimeout_secs = 600\n", "price.timeout_secs must be at most 60"),
            ("[price]\nfallback_provider = \"x\"\n", "fallback_provider"),
            ("[network]\nmempool_url = \"\"\n", "network.mempool_url"),
            ("[network]\ninterval_secs = 7200\n", "network.stale_after_secs"),
            ("[network]\ntimeout_secs = 0\n", "network.timeout_secs"),
        ];
        for (text, want) in bad {
            let err = parse(text).expect_err(text).to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn usb_ids_are_checked_with_their_line() {
        let c = parse("[discovery]\nusb_ids = [\"303a:*\", \"10C4:EA60\"]\n").unwrap();
        assert_eq!(c.discovery.usb_ids.len(), 2);
        assert!(c.discovery.usb_ids[1].matches(0x10c4, 0xea60));
        let err = parse("[discovery]\nusb_ids = [\"cp2102\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("10c4:ea60"), "{err}");
    }

    #[test]
    fn alert_and_notify_settings_are_checked() {
        let c = parse(
            "[alerts]\noffline_minutes = 1\n[[notify]]\nkind = \"ntfy\"\nurl = \"https://ntfy.sh\"\ntopic = \"herd\"\n\
             [[notify]]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/hook\"\n",
        )
        .unwrap();
        assert_eq!(c.alerts.offline_minutes, 1);
        assert_eq!(c.notify.len(), 2);
        assert_eq!(c.notify[0].kind, NotifyKind::Ntfy);
        assert_eq!(c.mqtt.topic_prefix, "shepherd");
        assert_eq!(c.mqtt.discovery_prefix, "homeassistant");
        assert!(!c.mqtt.enabled);
        let bad = [
            ("[[notify]]\nkind = \"mqtt\"\n", "[mqtt] enabled = false"),
            (
                "[[notify]]\nkind = \"ntfy\"\nurl = \"https://ntfy.sh\"\n",
                "notify[0].topic",
            ),
            (
                "[[notify]]\nkind = \"webhook\"\nurl = \"hook\"\n",
                "notify[0].url",
            ),
            ("[[notify]]\nkind = \"email\"\n", "email"),
            ("[mqtt]\nhots = \"x\"\n", "hots"),
            ("[mqtt]\ntopic_prefix = \"a/#\"\n", "mqtt.topic_prefix"),
            ("[alerts]\nqueue_size = 0\n", "alerts.queue_size"),
            ("[hub]\nenabled = true\n", "needs [mqtt] enabled = true"),
            ("[site]\nname = \"a/b\"\n", "site.name"),
            ("[site]\nurl = \"javascript:x\"\n", "site.url"),
            ("[hub]\nstale_secs = 0\n", "hub.stale_secs"),
        ];
        for (text, want) in bad {
            let err = parse(text).expect_err(text).to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn a_site_is_named_by_config_or_hostname() {
        let named = SiteConfig {
            name: "Shelf Pi".into(),
            url: String::new(),
        };
        assert_eq!(named.effective_name(), "shelf-pi");
        // Unnamed: the hostname, or "shepherd" where there is none to read.
        assert!(!SiteConfig::default().effective_name().is_empty());
    }

    #[test]
    fn unreadable_file_says_so() {
        let err = Config::load(Some(Path::new("/nonexistent/shepherd.toml"))).unwrap_err();
        assert!(err.to_string().contains("--config"), "{err}");
    }

    #[test]
    fn backups_keep_defaults_to_ten_and_must_be_positive() {
        assert_eq!(Config::default().backups.keep, 10);
        assert_eq!(parse("[backups]\nkeep = 3\n").unwrap().backups.keep, 3);
        assert!(parse("[backups]\nkeep = 0\n")
            .unwrap_err()
            .to_string()
            .contains("backups.keep"));
    }

    #[test]
    fn example_file_parses_to_the_defaults() {
        let text = include_str!("../../config.example.toml");
        let c = Config::parse(text, Path::new("config.example.toml")).unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn alert_rule_thresholds_are_checked_in_config_toml() {
        for (text, key) in [
            (
                "[alerts]\nhashrate_below_percent = 101.0\n",
                "alerts.hashrate_below_percent",
            ),
            (
                "[alerts]\nrejects_above_percent = -1.0\n",
                "alerts.rejects_above_percent",
            ),
            (
                "[alerts]\ntemperature_above_c = nan\n",
                "alerts.temperature_above_c",
            ),
            (
                "[alerts]\noffline_minutes = 999999999\n",
                "alerts.offline_minutes",
            ),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn overrides_apply_over_config_and_are_checked_the_same_way() {
        let base = AlertsConfig::default();
        let o = |k: &str, v: &str| (k.to_string(), v.to_string());
        let merged = base
            .with_overrides(&[
                o("temperature_above_c", " 55.5 "),
                o("offline_minutes", "2"),
                o("reboot", "false"),
            ])
            .unwrap();
        assert_eq!(merged.temperature_above_c, 55.5);
        assert_eq!(merged.offline_minutes, 2);
        assert!(!merged.reboot);
        assert_eq!(merged.hashrate_minutes, base.hashrate_minutes);
        assert_eq!(merged.interval_secs, base.interval_secs);
        assert_eq!(merged.rule_value("temperature_above_c").unwrap(), "55.5");
        assert_eq!(merged.rule_value("reboot").unwrap(), "false");
        assert_eq!(base.with_overrides(&[]).unwrap(), base);
        for (k, v, says) in [
            ("offline_minutes", "-1", "whole number"),
            ("offline_minutes", "abc", "whole number"),
            ("reboot", "maybe", "true or false"),
            ("hashrate_below_percent", "150", "from 0 to 100"),
            ("temperature_above_c", "inf", "temperature_above_c"),
            ("interval_secs", "1", "not an alert rule setting"),
        ] {
            let err = base.with_overrides(&[o(k, v)]).unwrap_err();
            assert!(err.contains(says) && err.contains(k), "{k}={v}: {err}");
        }
        for key in ALERT_RULE_KEYS {
            assert!(base.rule_value(key).is_some(), "{key}");
        }
    }
}
