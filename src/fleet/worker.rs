//! Worker names. Pools tell workers apart by the part of the username after the address's
//! dot, so a NerdMiner whose `btcString` is a bare address reports as the same worker as all
//! its siblings. Shepherd proposes one name per miner, from the miner's own name, with only the
//! characters every pool accepts, and checks the address before it is written (a mistyped
//! wallet leaves the firmware's setup hanging at 80 % with no error).

use crate::address;

/// Longest worker name proposed or accepted (pools cut or refuse long usernames; the whole
/// `address.worker` must also fit the firmware's 79-byte buffer).
pub const MAX_WORKER: usize = 20;

/// Whether `c` is safe in a worker name on every pool we know.
fn pool_safe(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// A pool-safe worker name from a miner's name: letters, digits, `-` and `_` only (anything
/// else becomes one `-`), at most [`MAX_WORKER`] characters, never empty.
pub fn from_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().chars() {
        if pool_safe(c) {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out: String = out.trim_matches('-').chars().take(MAX_WORKER).collect();
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "miner".into()
    } else {
        out
    }
}

/// [`from_name`], made unique among `taken` (compared without case: some pools fold it) by a
/// `-2`, `-3`… suffix that still fits [`MAX_WORKER`].
pub fn propose(name: &str, taken: &[String]) -> String {
    let base = from_name(name);
    let free = |w: &str| !taken.iter().any(|t| t.eq_ignore_ascii_case(w));
    if free(&base) {
        return base;
    }
    (2..)
        .map(|n| {
            let suffix = format!("-{n}");
            let keep = MAX_WORKER.saturating_sub(suffix.len());
            let stem: String = base.chars().take(keep).collect();
            format!("{}{suffix}", stem.trim_end_matches('-'))
        })
        .find(|w| free(w))
        .unwrap_or(base)
}

/// Checks a worker name typed by someone; the error says what to change.
pub fn check(worker: &str) -> Result<(), String> {
    if worker.is_empty() {
        return Err("the worker name is empty".into());
    }
    if worker.len() > MAX_WORKER {
        return Err(format!(
            "the worker name {worker:?} is longer than {MAX_WORKER} characters"
        ));
    }
    if let Some(c) = worker.chars().find(|c| !pool_safe(*c)) {
        return Err(format!(
            "the worker name {worker:?} contains {c:?}: use letters, digits, '-' and '_' only"
        ));
    }
    Ok(())
}

/// NerdMiner's `btcString`: the checked address, then `.worker` when there is one.
pub fn btc_string(addr: &str, worker: Option<&str>) -> Result<String, String> {
    let addr = addr.trim();
    let (bare, _) = address::split_worker(addr);
    address::check_address(bare)
        .map_err(|why| format!("not written: the payout address {bare:?} {why}"))?;
    match worker {
        Some(w) if !w.is_empty() => {
            check(w)?;
            Ok(format!("{bare}.{w}"))
        }
        _ => Ok(bare.to_owned()),
    }
}

/// The pool's public page for this worker, where the pool has one. The formats, from the
/// pools' own sources:
/// - public-pool.io: its web UI (`benjamin-wilson/public-pool-ui`) is served at
///   web.public-pool.io with Angular's hash routing (`HashLocationStrategy` in
///   `src/app/app.module.ts`); `src/app/app-routing.module.ts` routes `app/:address` to the
///   address's dashboard and `app/:address/:workerName` to that worker's group page, so
///   `https://web.public-pool.io/#/app/<address>/<worker>`.
/// - solo.ckpool.org: ckpool writes each user's and worker's stats as JSON files named after
///   them in its log directory (`src/stratifier.c`, `read_userstats`: `<logdir>/users/<user>`,
///   `read_workerstats`: `<logdir>/workers/<workername>`, where the worker name is the whole
///   stratum user `address.worker`), and solo.ckpool.org publishes that directory, so
///   `https://solo.ckpool.org/users/<address>` and `…/workers/<address>.<worker>`.
pub fn pool_page(pool_host: &str, btc_string: &str) -> Option<String> {
    let host = pool_host
        .trim()
        .trim_start_matches("stratum+tcp://")
        .to_ascii_lowercase();
    let host = host.split(':').next().unwrap_or_default();
    let (addr, worker) = address::split_worker(btc_string);
    if addr.is_empty() || !addr.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    if host == "public-pool.io" || host.ends_with(".public-pool.io") {
        return Some(match worker.filter(|w| check(w).is_ok()) {
            Some(w) => format!("https://web.public-pool.io/#/app/{addr}/{w}"),
            None => format!("https://web.public-pool.io/#/app/{addr}"),
        });
    }
    if host == "solo.ckpool.org" || host.ends_with(".solo.ckpool.org") {
        return Some(match worker.filter(|w| check(w).is_ok()) {
            Some(w) => format!("https://solo.ckpool.org/workers/{addr}.{w}"),
            None => format!("https://solo.ckpool.org/users/{addr}"),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDR: &str = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq";

    #[test]
    fn names_keep_only_pool_safe_characters() {
        assert_eq!(from_name("garage-1"), "garage-1");
        assert_eq!(from_name("Desk miner #2 (blue)"), "Desk-miner-2-blue");
        assert_eq!(from_name("küche.1"), "k-che-1");
        assert_eq!(from_name("  ..  "), "miner");
        assert_eq!(from_name(&"x".repeat(50)).len(), MAX_WORKER);
        for name in ["a b", "ü", "a.b", "x/y", "ok_1", "\u{202e}evil"] {
            assert!(check(&from_name(name)).is_ok(), "{name}");
        }
    }

    #[test]
    fn proposals_are_unique() {
        let mut taken = Vec::new();
        for name in ["desk", "Desk", "desk!", "desk"] {
            let w = propose(name, &taken);
            assert!(!taken.iter().any(|t: &String| t.eq_ignore_ascii_case(&w)));
            taken.push(w);
        }
        assert_eq!(taken, ["desk", "Desk-2", "desk-3", "desk-4"]);
        let long = "y".repeat(30);
        let first = propose(&long, &[]);
        let second = propose(&long, std::slice::from_ref(&first));
        assert_ne!(first, second);
        assert!(second.len() <= MAX_WORKER && second.ends_with("-2"));
    }

    #[test]
    fn checks_and_btc_strings() {
        assert!(check("").is_err());
        assert!(check("a.b").unwrap_err().contains("'.'"));
        assert_eq!(
            btc_string(ADDR, Some("desk")).unwrap(),
            format!("{ADDR}.desk")
        );
        assert_eq!(
            btc_string(&format!("{ADDR}.old"), Some("new")).unwrap(),
            format!("{ADDR}.new")
        );
        assert_eq!(btc_string(ADDR, None).unwrap(), ADDR);
        // One character off: the checksum catches it before the miner hangs at 80 %.
        let typo = ADDR.replace("mdq", "mdp");
        assert!(btc_string(&typo, Some("w"))
            .unwrap_err()
            .contains("not written"));
        assert!(btc_string(ADDR, Some("bad name")).is_err());
    }

    #[test]
    fn pool_pages_for_pools_that_have_them() {
        let s = format!("{ADDR}.desk");
        assert_eq!(
            pool_page("public-pool.io", &s).unwrap(),
            format!("https://web.public-pool.io/#/app/{ADDR}/desk")
        );
        assert_eq!(
            pool_page("stratum+tcp://public-pool.io:21496", ADDR).unwrap(),
            format!("https://web.public-pool.io/#/app/{ADDR}")
        );
        assert_eq!(
            pool_page("solo.ckpool.org", &s).unwrap(),
            format!("https://solo.ckpool.org/workers/{ADDR}.desk")
        );
        assert_eq!(
            pool_page("solo.ckpool.org", ADDR).unwrap(),
            format!("https://solo.ckpool.org/users/{ADDR}")
        );
        assert!(pool_page("pool.example", &s).is_none());
        assert!(pool_page("public-pool.io", "<script>").is_none());
    }
}
