//! What each subcommand does, on top of the library's modules.

use anyhow::Context as _;

use crate::cli::{Command, Common, ConfigAction, MinersAction};
use crate::config::Config;
use crate::db::{self, miners};

/// Loads the config and applies the command-line overrides.
pub fn load_config(common: &Common) -> anyhow::Result<Config> {
    let mut config = Config::load(common.config.as_deref())?;
    if let Some(path) = &common.database {
        config.database.path.clone_from(path);
    }
    Ok(config)
}

/// Runs one parsed command.
pub fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run { common, bind, demo } => {
            let mut config = load_config(&common)?;
            if let Some(bind) = bind {
                config.server.bind = bind;
            }
            crate::app::run(config, demo.unwrap_or(0))
        }
        Command::Tail {
            common,
            name,
            raw,
            lines,
        } => {
            let config = load_config(&common)?;
            crate::tail::run(&config.database.path, &name, raw, lines)
        }
        Command::Spiffs { action } => crate::flash_commands::spiffs(action),
        Command::Flash { action } => crate::flash_commands::flash(action),
        Command::Config { common, action } => {
            let config = load_config(&common)?;
            let ConfigAction::Get {
                name,
                method,
                timeout,
            } = action;
            crate::flash_commands::config_get(&config.database.path, &name, &method, timeout)
        }
        Command::Miners { common, action } => {
            let config = load_config(&common)?;
            let (conn, _) = db::open_writer(&config.database.path)?;
            miners_command(&conn, action)
        }
    }
}

fn miners_command(conn: &rusqlite::Connection, action: MinersAction) -> anyhow::Result<()> {
    match action {
        MinersAction::List => {
            let all = miners::list(conn)?;
            if all.is_empty() {
                println!("no miners yet: add one with `shepherd miners add --name NAME --port /dev/ttyUSB0`");
            }
            for m in all {
                let state = if m.enabled { "" } else { " (disabled)" };
                println!("{}\t{}\t{}\t{}{state}", m.id, m.name, m.port, m.kind);
            }
        }
        MinersAction::Add { name, port } => {
            let id = miners::add(conn, &name, &port, "serial")?;
            println!("added miner {name} (id {id}) on {port}; a running shepherd picks it up within seconds");
        }
        MinersAction::Remove { name } => {
            miners::remove(conn, &name).with_context(|| format!("cannot remove {name}"))?;
            println!("removed miner {name} and its history");
        }
    }
    Ok(())
}
