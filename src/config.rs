//! `config.toml`: every option has a default, so the program runs with no file at all.
//!
//! Unknown keys are errors (a typo must not silently fall back to a default), and parse errors
//! name the file, line and column. `config.example.toml` documents every key; a test keeps the
//! two in step.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

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
    /// Raw SPIFFS images kept from configuration reads.
    pub backups: BackupsConfig,
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
            ("backups.keep", self.backups.keep as u64),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(format!("{key} must be greater than 0"));
            }
        }
        if self.ingest.max_pending_lines < self.ingest.batch_lines {
            return Err("ingest.max_pending_lines must be at least ingest.batch_lines".into());
        }
        Ok(())
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
        let text = include_str!("../config.example.toml");
        let c = Config::parse(text, Path::new("config.example.toml")).unwrap();
        assert_eq!(c, Config::default());
    }
}
