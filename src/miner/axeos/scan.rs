//! Finding AxeOS miners on a subnet the owner names (`shepherd miners scan 192.168.1.0/24`):
//! opt-in, bounded to [`MAX_HOSTS`] addresses, each asked once for `/api/system/info` with a
//! short timeout, a few at a time.

use std::net::Ipv4Addr;
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::http::Client;
use super::parse;

/// Most addresses one scan asks (a /23).
pub const MAX_HOSTS: usize = 512;

/// How long each address gets to answer.
pub const TIMEOUT: Duration = Duration::from_millis(800);

/// Requests in flight at once.
const WORKERS: usize = 16;

/// The host addresses of `cidr` (`a.b.c.d/n`; a bare address is one host). Network and
/// broadcast addresses are left out of subnets larger than /31.
pub fn hosts(cidr: &str) -> Result<Vec<Ipv4Addr>, String> {
    let cidr = cidr.trim();
    let (addr, bits) = match cidr.split_once('/') {
        Some((a, b)) => (a, b),
        None => (cidr, "32"),
    };
    let addr: Ipv4Addr = addr
        .parse()
        .map_err(|_| format!("{cidr:?}: give an IPv4 subnet such as 192.168.1.0/24"))?;
    let bits: u32 = bits
        .parse()
        .ok()
        .filter(|b| *b <= 32)
        .ok_or_else(|| format!("{cidr:?}: the prefix length must be 0 to 32"))?;
    let size = 1u64 << (32 - bits);
    if size > MAX_HOSTS as u64 {
        return Err(format!(
            "{cidr} has {size} addresses; a scan asks at most {MAX_HOSTS} (use /23 or smaller)"
        ));
    }
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    let net = u32::from(addr) & mask;
    let all = (0..size as u32).map(|i| Ipv4Addr::from(net + i));
    Ok(if size > 2 {
        all.skip(1).take(size as usize - 2).collect()
    } else {
        all.collect()
    })
}

/// The URL asked at each host: AxeOS serves plain HTTP on port 80 (`WEB_PORT`, ESP-Miner
/// http_server.c); another port is for a miner behind a forward or a mock on loopback.
pub fn urls(hosts: &[Ipv4Addr], port: u16) -> Vec<String> {
    hosts
        .iter()
        .map(|h| match port {
            80 => format!("http://{h}"),
            p => format!("http://{h}:{p}"),
        })
        .collect()
}

/// A name for a found miner that no other miner has: its hostname (or address), then
/// `-2`, `-3`… since names are unique and several Bitaxes may share the factory hostname.
pub fn suggest_name(found: &Found, taken: &[String]) -> String {
    let base = found
        .hostname
        .as_deref()
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| found.url.trim_start_matches("http://").to_owned());
    let base: String = base.chars().take(58).collect();
    let free = |n: &str| !taken.iter().any(|t| t.eq_ignore_ascii_case(n));
    if free(&base) {
        return base;
    }
    (2..)
        .map(|i| format!("{base}-{i}"))
        .find(|n| free(n))
        .unwrap_or(base)
}

/// An AxeOS miner that answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// `http://ip`.
    pub url: String,
    /// Its `hostname`.
    pub hostname: Option<String>,
    /// Firmware version.
    pub version: Option<String>,
    /// ASIC model.
    pub asic_model: Option<String>,
    /// Hashrate in GH/s.
    pub hashrate_ghs: f64,
}

/// Asks every URL once; returns those that answered as AxeOS, in the order given.
pub fn probe(urls: Vec<String>, timeout: Duration) -> Vec<Found> {
    let n = urls.len();
    let queue = Arc::new(Mutex::new(urls.into_iter().enumerate()));
    let (tx, rx) = channel();
    let workers: Vec<_> = (0..WORKERS.min(n))
        .map(|_| {
            let (queue, tx) = (queue.clone(), tx.clone());
            std::thread::spawn(move || loop {
                let next = queue.lock().ok().and_then(|mut q| q.next());
                let Some((i, url)) = next else { break };
                let client = Client::new(&url, timeout);
                let found = client
                    .get("/api/system/info")
                    .and_then(|b| parse::info(&b))
                    .ok()
                    .map(|info| Found {
                        url,
                        hostname: info.hostname,
                        version: info.version,
                        asic_model: info.asic_model,
                        hashrate_ghs: info.hashrate_ghs,
                    });
                if tx.send((i, found)).is_err() {
                    break;
                }
            })
        })
        .collect();
    drop(tx);
    let mut found: Vec<(usize, Found)> = rx.iter().filter_map(|(i, f)| f.map(|f| (i, f))).collect();
    for w in workers {
        let _ = w.join();
    }
    found.sort_by_key(|(i, _)| *i);
    found.into_iter().map(|(_, f)| f).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_are_bounded_and_skip_network_and_broadcast() {
        let h = hosts("192.168.1.77/24").unwrap();
        assert_eq!(h.len(), 254);
        assert_eq!(h[0], Ipv4Addr::new(192, 168, 1, 1));
        assert_eq!(h[253], Ipv4Addr::new(192, 168, 1, 254));
        assert_eq!(hosts("10.0.0.5").unwrap(), [Ipv4Addr::new(10, 0, 0, 5)]);
        assert_eq!(hosts("10.0.0.4/31").unwrap().len(), 2);
        assert!(hosts("10.0.0.0/16").unwrap_err().contains("at most 512"));
        assert!(hosts("10.0.0.0/33").is_err());
        assert!(hosts("bitaxe.local/24").is_err());
    }

    #[test]
    fn urls_name_the_port_only_when_it_is_not_80() {
        let h = [Ipv4Addr::new(192, 168, 1, 5)];
        assert_eq!(urls(&h, 80), ["http://192.168.1.5"]);
        assert_eq!(urls(&h, 8080), ["http://192.168.1.5:8080"]);
    }

    #[test]
    fn suggested_names_avoid_the_taken_ones() {
        let f = |hostname: Option<&str>| Found {
            url: "http://10.0.0.7".into(),
            hostname: hostname.map(str::to_owned),
            version: None,
            asic_model: None,
            hashrate_ghs: 0.0,
        };
        let taken = ["bitaxe".to_string(), "Bitaxe-2".to_string()];
        assert_eq!(suggest_name(&f(Some("gamma")), &taken), "gamma");
        assert_eq!(suggest_name(&f(Some("bitaxe")), &taken), "bitaxe-3");
        assert_eq!(suggest_name(&f(Some("  ")), &taken), "10.0.0.7");
        assert_eq!(suggest_name(&f(None), &[]), "10.0.0.7");
    }
}
