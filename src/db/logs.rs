//! Raw log lines: how they are stored and found again per miner.
//!
//! `miner_logs` has no index on `miner_id`: at full serial speed one index entry per line was
//! about a fifth of ingest's CPU. Instead the writer stores each miner's lines of one commit
//! under consecutive ids and records that range in `miner_log_spans` — one row per miner per
//! commit. Reading a miner's lines walks its spans and reads each id range from the table
//! itself; deleting a miner deletes its lines span by span (a trigger in `schema.sql`).

use rusqlite::{params, Connection};

/// One line to store.
#[derive(Debug, Clone, Copy)]
pub struct NewLine<'a> {
    /// When it was read (Unix ms).
    pub ts: i64,
    /// Cleaned, masked text.
    pub text: &'a str,
    /// Cut at the framing limit.
    pub truncated: bool,
}

/// A stored raw line.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LogLine {
    /// Row id: pass it as `before` to get older lines (or `after` for newer ones).
    pub id: i64,
    /// When it was read (Unix ms).
    pub ts: i64,
    /// The line as received (secrets masked at ingest).
    pub line: String,
    /// Cut at the length limit.
    pub truncated: bool,
}

/// Rows per multi-row INSERT: one statement step for this many lines instead of one each
/// (5 parameters a row, far below SQLite's parameter limit).
const ROWS_PER_INSERT: usize = 64;

/// `INSERT ... VALUES (?,?,?,?,?), ...` for `rows` rows.
fn insert_sql(rows: usize) -> String {
    let mut sql =
        String::from("INSERT INTO miner_logs (id, miner_id, ts, line, truncated) VALUES ");
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str("(?,?,?,?,?)");
    }
    sql
}

static MULTI_INSERT: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| insert_sql(ROWS_PER_INSERT));
static ONE_INSERT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| insert_sql(1));

/// Appends each miner's lines (in their order) under consecutive ids after the newest row,
/// and records one span per miner. Runs inside the caller's transaction; every miner must
/// exist. Returns the lines written.
pub fn append<'a>(
    conn: &Connection,
    groups: &[(i64, Vec<NewLine<'a>>)],
) -> rusqlite::Result<usize> {
    let mut next: i64 =
        conn.query_row("SELECT coalesce(max(id), 0) + 1 FROM miner_logs", [], |r| {
            r.get(0)
        })?;
    let mut rows = groups
        .iter()
        .flat_map(|(miner, lines)| lines.iter().map(move |l| (*miner, l)))
        .zip(0..)
        .map(|((miner, l), k)| (next + k, miner, l));
    let total: usize = groups.iter().map(|(_, lines)| lines.len()).sum();
    let mut multi = conn.prepare_cached(MULTI_INSERT.as_str())?;
    for _ in 0..total / ROWS_PER_INSERT {
        let mut idx = 1;
        for (id, miner, line) in rows.by_ref().take(ROWS_PER_INSERT) {
            multi.raw_bind_parameter(idx, id)?;
            multi.raw_bind_parameter(idx + 1, miner)?;
            multi.raw_bind_parameter(idx + 2, line.ts)?;
            multi.raw_bind_parameter(idx + 3, line.text)?;
            multi.raw_bind_parameter(idx + 4, line.truncated)?;
            idx += 5;
        }
        multi.raw_execute()?;
    }
    let mut one = conn.prepare_cached(ONE_INSERT.as_str())?;
    for (id, miner, line) in rows {
        one.execute(params![id, miner, line.ts, line.text, line.truncated])?;
    }
    let mut span = conn.prepare_cached(
        "INSERT INTO miner_log_spans (miner_id, first_id, last_id) VALUES (?1, ?2, ?3)",
    )?;
    for (miner, lines) in groups {
        if lines.is_empty() {
            continue;
        }
        let last = next + lines.len() as i64 - 1;
        span.execute(params![miner, next, last])?;
        next = last + 1;
    }
    Ok(total)
}

/// Up to `limit` lines of `miner_id`, newest first, older than id `before` when given.
pub fn newest(
    conn: &Connection,
    miner_id: i64,
    before: Option<i64>,
    limit: usize,
) -> rusqlite::Result<Vec<LogLine>> {
    let before = before.unwrap_or(i64::MAX);
    // Spans of one miner never overlap, so newest-first by start is newest-first by line.
    let spans = "SELECT first_id, last_id FROM miner_log_spans
                 WHERE miner_id = ?1 AND first_id < ?2 ORDER BY first_id DESC";
    walk_spans(conn, miner_id, spans, Direction::Newest(before), limit)
}

/// Up to `limit` lines of `miner_id` newer than id `after`, oldest first.
pub fn after(
    conn: &Connection,
    miner_id: i64,
    after: i64,
    limit: usize,
) -> rusqlite::Result<Vec<LogLine>> {
    // Starts at the span holding `after` (if any), then every later one.
    let spans = "SELECT first_id, last_id FROM miner_log_spans
                 WHERE miner_id = ?1
                   AND first_id >= coalesce((SELECT max(first_id) FROM miner_log_spans
                                             WHERE miner_id = ?1 AND first_id <= ?2), 0)
                   AND last_id > ?2
                 ORDER BY first_id";
    walk_spans(conn, miner_id, spans, Direction::After(after), limit)
}

/// Which way a read walks, and the id it starts from (not included).
#[derive(Clone, Copy)]
enum Direction {
    Newest(i64),
    After(i64),
}

/// Reads the id ranges `spans` (SQL taking the miner and the start id) yields, in its order,
/// until `limit` lines are found.
fn walk_spans(
    conn: &Connection,
    miner_id: i64,
    spans: &str,
    dir: Direction,
    limit: usize,
) -> rusqlite::Result<Vec<LogLine>> {
    let (Direction::Newest(from) | Direction::After(from)) = dir;
    let mut spans = conn.prepare_cached(spans)?;
    let mut lines = conn.prepare_cached(match dir {
        Direction::Newest(_) => {
            "SELECT id, ts, line, truncated FROM miner_logs
             WHERE id BETWEEN ?1 AND ?2 AND miner_id = ?3 ORDER BY id DESC LIMIT ?4"
        }
        Direction::After(_) => {
            "SELECT id, ts, line, truncated FROM miner_logs
             WHERE id BETWEEN ?1 AND ?2 AND miner_id = ?3 ORDER BY id LIMIT ?4"
        }
    })?;
    let mut out = Vec::new();
    let mut ranges = spans.query(params![miner_id, from])?;
    while out.len() < limit {
        let Some(r) = ranges.next()? else { break };
        let (first, last): (i64, i64) = (r.get(0)?, r.get(1)?);
        let (first, last) = match dir {
            Direction::Newest(before) => (first, last.min(before - 1)),
            Direction::After(after) => (first.max(after + 1), last),
        };
        let left = (limit - out.len()) as i64;
        for row in lines.query_map(params![first, last, miner_id, left], log_line)? {
            out.push(row?);
        }
    }
    Ok(out)
}

fn log_line(r: &rusqlite::Row<'_>) -> rusqlite::Result<LogLine> {
    Ok(LogLine {
        id: r.get(0)?,
        ts: r.get(1)?,
        line: r.get(2)?,
        truncated: r.get(3)?,
    })
}

/// Forgets spans whose lines were all pruned (run after deleting the oldest lines).
pub fn prune_spans(conn: &Connection) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM miner_log_spans
         WHERE last_id < coalesce((SELECT min(id) FROM miner_logs), 9223372036854775807)",
        [],
    )
}

/// Spans for lines stored before spans existed (schema version 6 and older): one per run of
/// consecutive ids of one miner, read in order through the old `(miner_id, id)` index of
/// `source`.
pub fn spans_from_rows(conn: &Connection, source: &str) -> rusqlite::Result<usize> {
    conn.execute(
        &format!(
            "INSERT INTO miner_log_spans (miner_id, first_id, last_id)
             SELECT miner_id, min(id), max(id) FROM (
               SELECT id, miner_id, id - row_number() OVER (PARTITION BY miner_id ORDER BY id) AS run
               FROM {source} WHERE miner_id IN (SELECT id FROM miners))
             GROUP BY miner_id, run"
        ),
        [],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(miners: i64) -> Connection {
        let c = crate::db::memory_db();
        for id in 1..=miners {
            c.execute(
                "INSERT INTO miners (id, name, port) VALUES (?1, ?2, ?3)",
                params![id, format!("m{id}"), format!("/dev/ttyUSB{id}")],
            )
            .unwrap();
        }
        c
    }

    fn texts(lines: &[LogLine]) -> Vec<&str> {
        lines.iter().map(|l| l.line.as_str()).collect()
    }

    /// `n` lines `"<miner> <i>"` per miner, written in `rounds` commits.
    fn fill(c: &Connection, miners: i64, rounds: usize, n: usize) -> Vec<String> {
        let mut all = Vec::new();
        for round in 0..rounds {
            let texts: Vec<(i64, Vec<String>)> = (1..=miners)
                .map(|m| {
                    (
                        m,
                        (0..n).map(|i| format!("{m} {}", round * n + i)).collect(),
                    )
                })
                .collect();
            let groups: Vec<(i64, Vec<NewLine>)> = texts
                .iter()
                .map(|(m, t)| {
                    let lines = t
                        .iter()
                        .map(|text| NewLine {
                            ts: round as i64,
                            text,
                            truncated: false,
                        })
                        .collect();
                    (*m, lines)
                })
                .collect();
            assert_eq!(append(c, &groups).unwrap(), miners as usize * n);
            all.extend(texts.into_iter().flat_map(|(_, t)| t));
        }
        all
    }

    #[test]
    fn each_miner_reads_back_its_own_lines_in_order() {
        let c = db(3);
        // 100 lines per miner per commit: a full multi-row statement and a row-by-row tail.
        fill(&c, 3, 4, 100);
        let spans: i64 = c
            .query_row("SELECT count(*) FROM miner_log_spans", [], |r| r.get(0))
            .unwrap();
        assert_eq!(spans, 12, "one span per miner per commit");
        for m in 1..=3 {
            let want: Vec<String> = (0..400).rev().map(|i| format!("{m} {i}")).collect();
            let got = newest(&c, m, None, 1000).unwrap();
            assert_eq!(texts(&got), want);
            // Paging backwards across span boundaries loses and repeats nothing.
            let mut paged = Vec::new();
            let mut before = None;
            loop {
                let page = newest(&c, m, before, 37).unwrap();
                let Some(last) = page.last() else { break };
                before = Some(last.id);
                paged.extend(page.into_iter().map(|l| l.line));
            }
            assert_eq!(paged, want);
            // And forwards from any line.
            let all_ids: Vec<i64> = got.iter().rev().map(|l| l.id).collect();
            for (k, id) in all_ids.iter().enumerate().step_by(53) {
                let next = after(&c, m, *id, 120).unwrap();
                let want_next: Vec<i64> = all_ids[k + 1..].iter().take(120).copied().collect();
                assert_eq!(next.iter().map(|l| l.id).collect::<Vec<_>>(), want_next);
            }
            assert_eq!(after(&c, m, 0, 3).unwrap().len(), 3);
        }
        assert!(newest(&c, 9, None, 10).unwrap().is_empty());
    }

    #[test]
    fn deleting_a_miner_deletes_its_lines_and_spans_only() {
        let c = db(2);
        fill(&c, 2, 3, 10);
        c.execute("DELETE FROM miners WHERE id = 1", []).unwrap();
        let left: Vec<(i64, i64)> = c
            .prepare("SELECT miner_id, count(*) FROM miner_logs GROUP BY miner_id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(left, [(2, 30)]);
        let spans: i64 = c
            .query_row(
                "SELECT count(*) FROM miner_log_spans WHERE miner_id = 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(spans, 0);
        assert_eq!(newest(&c, 2, None, 100).unwrap().len(), 30);
    }

    #[test]
    fn pruned_lines_take_their_spans_along() {
        let c = db(2);
        fill(&c, 2, 3, 10);
        // The first commit's lines (ids 1..=20) go, and a half of the next miner-1 span.
        c.execute("DELETE FROM miner_logs WHERE id <= 25", [])
            .unwrap();
        assert_eq!(prune_spans(&c).unwrap(), 2);
        assert_eq!(newest(&c, 1, None, 100).unwrap().len(), 15);
        assert_eq!(after(&c, 1, 0, 100).unwrap().len(), 15);
        c.execute("DELETE FROM miner_logs", []).unwrap();
        assert_eq!(prune_spans(&c).unwrap(), 4);
    }

    #[test]
    fn old_rows_get_spans_by_runs() {
        let c = db(2);
        for (miner, n) in [(1, 3), (2, 2), (1, 1), (2, 4)] {
            for _ in 0..n {
                c.execute(
                    "INSERT INTO miner_logs (miner_id, ts, line) VALUES (?1, 0, 'x')",
                    [miner],
                )
                .unwrap();
            }
        }
        assert_eq!(spans_from_rows(&c, "miner_logs").unwrap(), 4);
        assert_eq!(newest(&c, 1, None, 100).unwrap().len(), 4);
        assert_eq!(newest(&c, 2, None, 100).unwrap().len(), 6);
    }
}
