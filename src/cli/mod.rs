//! The command line: the clap definitions here, and what each subcommand does in the modules
//! below ([`dispatch::execute`] maps each one to its function).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// `shepherd bench`: ingest throughput, CPU and memory; API latency.
pub mod bench;
/// `shepherd bench flash`: a configuration read and write against a simulated chip whose link
/// is paced like a real one.
pub mod bench_flash;
/// `shepherd bench hub`: a `--hub` fed by simulated sites over a loopback broker.
pub mod bench_hub;
/// What each subcommand does.
pub mod dispatch;
/// `shepherd spiffs …`, `shepherd flash inspect`, `shepherd config get|set`, `shepherd doctor`.
pub mod flash;
/// `shepherd profiles …`, `miners set`, `drift`, `reconcile`: fleet configuration.
pub mod fleet;
/// `shepherd passwd`: the login password's hash into the config file.
pub mod passwd;
/// `shepherd tail`: follow one miner's events from a shell.
pub mod tail;

/// Watches over a flock of NerdMiner ESP32 lottery miners: reads their serial logs, keeps
/// history, serves a dashboard and kiosk pages.
#[derive(Debug, Parser)]
#[command(name = "shepherd", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command that touches the database shares.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Configuration file (TOML). Without it every option has its default.
    #[arg(long, short = 'c', env = "SHEPHERD_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Database file (overrides [database] path; default ./shepherd.db).
    #[arg(long, env = "SHEPHERD_DATABASE", global = true)]
    pub database: Option<PathBuf>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start everything: readers, summarizer, web dashboard.
    Run {
        /// Shared options.
        #[command(flatten)]
        common: Common,
        /// Address for the dashboard (overrides [server] bind; default 0.0.0.0:8080).
        #[arg(long, short = 'b')]
        bind: Option<SocketAddr>,
        /// Add N simulated miners (default 5) so there is a live herd with no hardware.
        #[arg(long, num_args = 0..=1, default_missing_value = "5", value_name = "N")]
        demo: Option<usize>,
        /// With --demo: this many mock AxeOS miners (Bitaxe-like, on 127.0.0.1) beside the
        /// simulated NerdMiners (overrides [demo] axeos_miners; default 3).
        #[arg(long, value_name = "N")]
        demo_axeos: Option<usize>,
        /// Also show every site on the [mqtt] broker (the same as `[hub] enabled = true`).
        #[arg(long)]
        hub: bool,
    },
    /// Manage miners from a shell (same database as the web UI).
    Miners {
        /// Shared options.
        #[command(flatten)]
        common: Common,
        /// What to do with miners.
        #[command(subcommand)]
        action: MinersAction,
    },
    /// Pool profiles: a primary pool and ordered fallbacks, failover and schedules.
    Profiles {
        /// Shared options.
        #[command(flatten)]
        common: Common,
        /// What to do with profiles.
        #[command(subcommand)]
        action: ProfilesAction,
    },
    /// Each miner's desired configuration against what it was last read as: in sync, drifted
    /// (which keys) or unknown (never read).
    Drift {
        /// Shared options.
        #[command(flatten)]
        common: Common,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write miners' desired configurations through a canary rollout (first miner alone, the
    /// rest one at a time, stop at the first failure), through the running shepherd.
    Reconcile {
        /// Shared options.
        #[command(flatten)]
        common: Common,
        /// Miners to reconcile.
        names: Vec<String>,
        /// Every miner that is drifted or unknown.
        #[arg(long, conflicts_with = "names")]
        all: bool,
        /// Write even when a pool does not answer the test.
        #[arg(long)]
        force: bool,
        /// Give up following one miner's write after this many seconds.
        #[arg(long, default_value_t = 900)]
        timeout: u64,
    },
    /// Inspect and build SPIFFS images (offline, no miner needed).
    Spiffs {
        /// What to do.
        #[command(subcommand)]
        action: SpiffsAction,
    },
    /// Inspect flash dumps (offline, no miner needed).
    Flash {
        /// What to do.
        #[command(subcommand)]
        action: FlashAction,
    },
    /// A miner's configuration, read through the running shepherd.
    Config {
        /// Shared options.
        #[command(flatten)]
        common: Common,
        /// What to do.
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Read-only check of a miner's flash link for bug reports: sync, chip, MAC, flash id and
    /// size, USB wiring, partition table, SPIFFS, /config.json (secrets masked), read speed;
    /// a verdict per step and a protocol trace file. Nothing is written to the miner.
    Doctor {
        /// Shared options.
        #[command(flatten)]
        common: Common,
        /// The miner's name.
        name: String,
        /// The board has no auto-reset circuit (or it is flaky): talk to it in download mode
        /// that you entered by hand — hold BOOT while plugging it in (or hold BOOT, press and
        /// release RESET, release BOOT) — like esptool's `--before no-reset`. Afterwards the
        /// ROM is told to run the firmware ("run user code"), as esptool's `--after
        /// soft-reset` does.
        #[arg(long)]
        no_reset: bool,
        /// Where to write the protocol trace (JSON); default
        /// `shepherd-doctor-NAME-<unix time>.json` in the current folder.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 900)]
        timeout: u64,
    },
    /// Find one board in a box of identical ones: reset miner NAME through its serial lines
    /// so its screen or LED visibly reboots. Costs about 20 s of mining. Needs `shepherd run`
    /// running on the same database (it owns the port).
    Identify {
        /// Shared options.
        #[command(flatten)]
        common: Common,
        /// The miner's name.
        name: String,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// List the USB serial devices plugged in now and what each is to the herd (works
    /// without a running server).
    Devices {
        /// Shared options.
        #[command(flatten)]
        common: Common,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print a miner's live parsed events (or raw lines) as they arrive; Ctrl-C to stop.
    Tail {
        /// Shared options.
        #[command(flatten)]
        common: Common,
        /// The miner's name.
        name: String,
        /// Print raw log lines instead of parsed events.
        #[arg(long)]
        raw: bool,
        /// Also print this many earlier entries first.
        #[arg(long, short = 'n', default_value_t = 10)]
        lines: usize,
    },
    /// Set the dashboard's login password: asks for it (or reads one line from standard input)
    /// and writes its Argon2id hash as `[web] password` into the config file (mode 600).
    Passwd {
        /// The config file to write (created if missing).
        #[arg(long, short = 'c', env = "SHEPHERD_CONFIG")]
        config: PathBuf,
    },
    /// Measure speed and memory (results go to docs/BENCHMARKS.md).
    Bench {
        /// Which benchmark.
        #[command(subcommand)]
        kind: BenchKind,
    },
}

/// `shepherd bench …`
#[derive(Debug, Subcommand)]
pub enum BenchKind {
    /// Lines/s stored, CPU and peak RSS of serial ingest with N simulated miners.
    Ingest {
        /// Simulated miners.
        #[arg(long, default_value_t = 10)]
        miners: usize,
        /// Seconds of writing.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Limit each miner to 115200 baud (11,520 bytes/s) instead of as fast as possible.
        #[arg(long, conflicts_with = "bytes_per_sec")]
        baud: bool,
        /// Limit each miner to this many bytes a second (a NerdMiner prints about 330).
        #[arg(long)]
        bytes_per_sec: Option<u64>,
        /// Skip the naive baseline.
        #[arg(long)]
        no_naive: bool,
        /// Every miner writes as fast as its pseudo-terminal takes it, and the baseline is a
        /// batched Python reader (`benches/batched_reader.py`, needs python3) instead of the
        /// naive one: nothing may be lost.
        #[arg(long, conflicts_with_all = ["baud", "bytes_per_sec"])]
        flood: bool,
    },
    /// Time of a configuration read and write on a classic ESP32 behind a USB-UART bridge: the
    /// real loader against a simulated chip whose UART and flash take their real time.
    Flash {
        /// The bridge garbles data above this rate (e.g. 460800 for a CH340 that fails at
        /// 921600); default: any rate works.
        #[arg(long)]
        max_baud: Option<u32>,
        /// The ROM loader at 115200 only (no stub): how manual download mode, and the writer
        /// before the stub, do it.
        #[arg(long)]
        rom: bool,
    },
    /// p50/p99 latency of /api/herd_data and a 24-h history request on a big database.
    Api {
        /// Miners in the generated database.
        #[arg(long, default_value_t = 100)]
        miners: usize,
        /// Raw log rows in the generated database.
        #[arg(long, default_value_t = 10_000_000)]
        log_rows: u64,
        /// Requests of /api/herd_data (a quarter as many history requests).
        #[arg(long, default_value_t = 2000)]
        requests: usize,
    },
    /// Messages/s, CPU, memory and /api/hub p99 of a `--hub` fed by N sites × M miners
    /// published on a loopback mosquitto (needs mosquitto installed).
    Hub {
        /// Sites publishing.
        #[arg(long, default_value_t = 50)]
        sites: usize,
        /// Miners per site.
        #[arg(long, default_value_t = 50)]
        miners: usize,
        /// Seconds of publishing.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Seconds between a site's rounds (`[mqtt] interval_secs`; 10 by default there).
        #[arg(long, default_value_t = 1)]
        interval_secs: u64,
    },
    /// (internal) the child process that plays the miners.
    #[command(hide = true)]
    SimWriter {
        /// Pseudo-terminals to open.
        #[arg(long)]
        miners: usize,
        /// Seconds to write.
        #[arg(long)]
        seconds: u64,
        /// Bytes a second per miner (unlimited when absent).
        #[arg(long)]
        bytes_per_sec: Option<u64>,
    },
}

/// `shepherd spiffs …`
#[derive(Debug, Subcommand)]
pub enum SpiffsAction {
    /// List the files of a SPIFFS image (or of the SPIFFS partition of a full flash dump).
    List {
        /// The image file.
        image: PathBuf,
    },
    /// Write one file's content to stdout.
    Extract {
        /// The image file.
        image: PathBuf,
        /// Path inside the filesystem, e.g. /config.json.
        path: String,
    },
    /// Build an image from a folder's files (each `name` becomes `/name`), with the firmware's
    /// SPIFFS parameters and exactly the partition's size.
    Build {
        /// The folder (its regular files are packed; subfolders are refused).
        dir: PathBuf,
        /// The partition size in bytes, decimal or 0x hex (huge_app.csv: 0xE0000).
        #[arg(long, value_parser = parse_size)]
        size: usize,
        /// The image file to write.
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
}

/// A size in bytes, decimal or `0x` hex.
fn parse_size(text: &str) -> Result<usize, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => usize::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| format!("{text:?} is not a size in bytes (e.g. 917504 or 0xE0000)"))
}

/// `shepherd flash …`
#[derive(Debug, Subcommand)]
pub enum FlashAction {
    /// Show the partition table and SPIFFS files of a full flash dump, or the files of a bare
    /// SPIFFS partition image.
    Inspect {
        /// A dump made by `esptool read_flash 0 0x400000 dump.bin`, or a backup from shepherd.
        dump: PathBuf,
    },
}

/// `shepherd config …`
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Read a miner's configuration through the running `shepherd run` and print it as JSON.
    Get {
        /// The miner's name.
        name: String,
        /// flash (ROM bootloader), boot (reset and capture the boot log), or auto (flash,
        /// falling back to boot).
        #[arg(long, default_value = "auto", value_parser = ["auto", "flash", "boot"])]
        method: String,
        /// The board has no auto-reset circuit (or it is flaky): talk to it in download mode
        /// that you entered by hand — hold BOOT while plugging it in (or hold BOOT, press and
        /// release RESET, release BOOT) — like esptool's `--before no-reset`. Afterwards the
        /// ROM is told to run the firmware ("run user code"), as esptool's `--after
        /// soft-reset` does.
        #[arg(long)]
        no_reset: bool,
        /// Give up waiting after this many seconds (a flash read takes minutes at 115200 baud).
        #[arg(long, default_value_t = 900)]
        timeout: u64,
    },
    /// Write a miner's configuration through the running `shepherd run`: checked here, then
    /// read + backup, write, MD5 verify, boot confirmation, automatic rollback on failure.
    Set {
        /// The miner's name.
        name: String,
        /// A JSON file with the configuration object (config.json keys; keys not given keep
        /// the miner's current values).
        file: PathBuf,
        /// The board has no auto-reset circuit (or it is flaky): talk to it in download mode
        /// that you entered by hand — hold BOOT while plugging it in (or hold BOOT, press and
        /// release RESET, release BOOT) — like esptool's `--before no-reset`. Afterwards the
        /// ROM is told to run the firmware ("run user code"), as esptool's `--after
        /// soft-reset` does.
        #[arg(long)]
        no_reset: bool,
        /// Give up waiting after this many seconds (a read and a write take minutes).
        #[arg(long, default_value_t = 1800)]
        timeout: u64,
    },
}

/// `shepherd miners …`
#[derive(Debug, Subcommand)]
pub enum MinersAction {
    /// List configured miners.
    List,
    /// Add a miner read from a serial port (--port) or an AxeOS miner over HTTP (--url).
    Add {
        /// Unique name, e.g. "garage-1".
        #[arg(long)]
        name: String,
        /// Serial device; prefer /dev/serial/by-id/… which survives replugging.
        #[arg(long, required_unless_present = "url", conflicts_with = "url")]
        port: Option<String>,
        /// A Bitaxe, NerdQAxe or other AxeOS miner's address, e.g. http://192.168.1.50.
        #[arg(long)]
        url: Option<String>,
    },
    /// Look for AxeOS miners on a subnet you name (at most 512 addresses, each asked once).
    Scan {
        /// IPv4 subnet, e.g. 192.168.1.0/24.
        subnet: String,
        /// Add every miner found (named after its hostname).
        #[arg(long)]
        add: bool,
    },
    /// Remove a miner and its history.
    Remove {
        /// Its name.
        name: String,
    },
    /// Set a miner's desired configuration (written by `shepherd reconcile`).
    Set {
        /// Its name.
        name: String,
        /// Pool profile (`shepherd profiles list`).
        #[arg(long)]
        profile: Option<String>,
        /// Worker name (letters, digits, '-', '_'); proposed from the miner's name if unset.
        #[arg(long)]
        worker: Option<String>,
        /// Payout address: a label from /settings or a Bitcoin address (checked).
        #[arg(long)]
        address: Option<String>,
        /// Board key, e.g. gmtZone=1, Brightness=120, invertColors=true, saveStatsToNVS=false.
        #[arg(long, value_name = "KEY=VALUE")]
        board: Vec<String>,
    },
}

/// `shepherd profiles …`
#[derive(Debug, Subcommand)]
pub enum ProfilesAction {
    /// List profiles.
    List,
    /// Add a profile (or replace the one of that name); its pools are tested first.
    Add {
        /// Unique name, e.g. "public".
        name: String,
        /// A pool as host:port[:password]; give it again for each fallback, in order.
        #[arg(long, required = true)]
        pool: Vec<String>,
        /// Let the Pi move miners to the next pool when theirs is down.
        #[arg(long)]
        failover: bool,
        /// Minutes a pool must fail before failing over.
        #[arg(long, default_value_t = 10)]
        down_minutes: u32,
        /// Minutes the primary must answer the Pi before going back.
        #[arg(long, default_value_t = 10)]
        back_minutes: u32,
        /// A time window on pool N, e.g. 22:00-06:00=1 (a solo pool at night), in
        /// `[fleet] time_zone` or the Pi's own zone.
        #[arg(long, value_name = "HH:MM-HH:MM=N")]
        window: Vec<String>,
        /// IANA time zone of the windows, e.g. Europe/Berlin (default: `[fleet] time_zone`,
        /// else the Pi's own).
        #[arg(long, value_name = "ZONE")]
        time_zone: Option<String>,
        /// Save without testing the pools.
        #[arg(long)]
        no_test: bool,
    },
    /// Remove a profile.
    Remove {
        /// Its name.
        name: String,
    },
    /// Test each pool of a profile from here (TCP connect, stratum subscribe, 5 s timeout).
    Test {
        /// Its name.
        name: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn demo_defaults_to_five() {
        let cli = Cli::try_parse_from(["shepherd", "run", "--demo"]).unwrap();
        let Command::Run { demo, .. } = cli.command else {
            panic!()
        };
        assert_eq!(demo, Some(5));
        let cli = Cli::try_parse_from(["shepherd", "run", "--demo", "3", "--bind", "127.0.0.1:9"])
            .unwrap();
        let Command::Run { demo, bind, .. } = cli.command else {
            panic!()
        };
        assert_eq!(demo, Some(3));
        assert_eq!(bind.unwrap().port(), 9);
    }

    #[test]
    fn run_without_demo() {
        let cli = Cli::try_parse_from(["shepherd", "run", "--database", "/tmp/x.db"]).unwrap();
        let Command::Run { demo, common, .. } = cli.command else {
            panic!()
        };
        assert_eq!(demo, None);
        assert_eq!(common.database.unwrap(), PathBuf::from("/tmp/x.db"));
    }

    #[test]
    fn miners_add_needs_name_and_port() {
        assert!(Cli::try_parse_from(["shepherd", "miners", "add", "--name", "x"]).is_err());
        let cli = Cli::try_parse_from([
            "shepherd",
            "miners",
            "add",
            "--name",
            "x",
            "--port",
            "/dev/ttyUSB0",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::Miners {
                action: MinersAction::Add { .. },
                ..
            }
        ));
    }

    #[test]
    fn devices_takes_json() {
        let cli = Cli::try_parse_from(["shepherd", "devices", "--json"]).unwrap();
        assert!(matches!(cli.command, Command::Devices { json: true, .. }));
    }

    #[test]
    fn bad_bind_is_rejected() {
        let err = Cli::try_parse_from(["shepherd", "run", "--bind", "nonsense"]).unwrap_err();
        assert!(err.to_string().contains("nonsense"));
    }
}
