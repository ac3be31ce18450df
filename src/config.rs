//! `config.toml`: every option has a default, so the program runs with no file at all.
//!
//! Unknown keys are errors (a typo must not silently fall back to a default), and parse errors
//! name the file, line and column. `config.example.toml` documents every key; a test keeps the
//! two in step.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::discovery::classify::{default_usb_ids, UsbId};

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
    /// BTC price fetching.
    pub price: PriceConfig,
    /// Bitcoin network figures (difficulty, hashrate, height).
    pub network: NetworkConfig,
    /// Recognising miners as they are plugged in.
    pub discovery: DiscoveryConfig,
    /// Web pages: optional login.
    pub web: WebConfig,
}

/// `[web]`
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// When not empty, every POST (settings, onboarding) needs a login with this password.
    pub password: String,
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
    /// Lines a miner may have waiting for the database before it starts dropping (and
    /// counting) them; bounds memory when the disk is slow.
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
            batch_lines: 500,
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
            ("price.interval_secs", self.price.interval_secs),
            ("price.stale_after_secs", self.price.stale_after_secs),
            ("price.timeout_secs", self.price.timeout_secs),
            ("network.interval_secs", self.network.interval_secs),
            ("network.stale_after_secs", self.network.stale_after_secs),
            ("network.timeout_secs", self.network.timeout_secs),
            ("discovery.poll_secs", self.discovery.poll_secs),
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
        self.validate_network()
    }

    /// Checked even when disabled, so turning a feed on later cannot reveal an old typo.
    fn validate_price(&self) -> Result<(), String> {
        let p = &self.price;
        crate::price::providers::price_sources(&p.coincodex_url, &p.fallback_url, &p.currency)?;
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
        crate::price::providers::check_url("network.mempool_url", &n.mempool_url)?;
        if n.stale_after_secs < n.interval_secs {
            return Err(format!(
                "network.stale_after_secs ({}) must be at least network.interval_secs ({})",
                n.stale_after_secs, n.interval_secs
            ));
        }
        check_timeout("network", n.timeout_secs)
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
    fn unreadable_file_says_so() {
        let err = Config::load(Some(Path::new("/nonexistent/shepherd.toml"))).unwrap_err();
        assert!(err.to_string().contains("--config"), "{err}");
    }

    #[test]
    fn example_file_parses_to_the_defaults() {
        let text = include_str!("../config.example.toml");
        let c = Config::parse(text, Path::new("config.example.toml")).unwrap();
        assert_eq!(c, Config::default());
    }
}
