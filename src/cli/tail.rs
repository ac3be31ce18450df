//! `shepherd tail NAME`: follows one miner's parsed events (or raw lines) in the terminal by
//! reading the database, so it works over SSH beside a running `shepherd run`.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;

use crate::db::{open_reader, queries};

/// Prints the last `backlog` rows, then new ones as they arrive, until interrupted.
pub fn run(db: &Path, name: &str, raw: bool, backlog: usize) -> anyhow::Result<()> {
    if !db.exists() {
        anyhow::bail!(
            "no database at {}: start `shepherd run` first or pass --database",
            db.display()
        );
    }
    let conn = open_reader(db)?;
    let id = queries::miner_id_by_name(&conn, name)?
        .with_context(|| format!("no miner named {name:?} (see `shepherd miners list`)"))?;
    let mut cursor = None;
    let mut limit = backlog;
    let stdout = std::io::stdout();
    loop {
        let rows = queries::feed(&conn, id, raw, cursor, limit.max(1))?;
        let mut out = stdout.lock();
        for row in &rows {
            if cursor.is_none() && limit == 0 {
                break;
            }
            writeln!(out, "{}", format_row(row)).or_else(ignore_broken_pipe)?;
        }
        out.flush().or_else(ignore_broken_pipe)?;
        if let Some(last) = rows.last() {
            cursor = Some(last.id);
        } else if cursor.is_none() {
            cursor = Some(0);
        }
        limit = 1000;
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn ignore_broken_pipe(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    Err(e)
}

/// `HH:MM:SS.mmm  kind  {fields}` for events, `HH:MM:SS.mmm  line` for raw lines.
pub fn format_row(row: &queries::FeedRow) -> String {
    let time = chrono::DateTime::from_timestamp_millis(row.ts)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%H:%M:%S%.3f")
                .to_string()
        })
        .unwrap_or_else(|| row.ts.to_string());
    match &row.detail {
        None => format!("{time}  {}", row.text),
        Some(detail) => {
            let fields = serde_json::from_str::<serde_json::Value>(detail)
                .ok()
                .and_then(|v| match v {
                    serde_json::Value::Object(mut m) => {
                        m.remove("kind");
                        (!m.is_empty()).then(|| serde_json::Value::Object(m).to_string())
                    }
                    _ => None,
                })
                .unwrap_or_default();
            format!("{time}  {:<18} {fields}", row.text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_rows_show_kind_and_fields() {
        let row = queries::FeedRow {
            id: 1,
            ts: 0,
            text: "progress".into(),
            detail: Some(
                r#"{"kind":"progress","shares":1,"khashes":2,"hashrate_khs":47.5}"#.into(),
            ),
        };
        let s = format_row(&row);
        assert!(s.contains("progress"), "{s}");
        assert!(s.contains("\"hashrate_khs\":47.5"), "{s}");
        assert!(!s.contains("\"kind\""), "{s}");
    }

    #[test]
    fn raw_rows_show_the_line() {
        let row = queries::FeedRow {
            id: 1,
            ts: 0,
            text: ">>> Completed".into(),
            detail: None,
        };
        assert!(format_row(&row).ends_with(">>> Completed"));
    }
}
