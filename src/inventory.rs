//! Firmware inventory: every miner's firmware family and version (from its subscribe line and
//! boot banner), board (display driver) and chip, grouped by version beside the newest version
//! the Shepherd knows of. The known versions are a list shipped in the binary
//! ([`SHIPPED`]) that the owner can replace with a file next to the database; nothing here
//! asks the network. Pure.

use std::cmp::Ordering;

use serde::Serialize;

/// The shipped list of newest versions (`family version` per line, `#` comments).
pub const SHIPPED: &str = include_str!("firmware_data/known_versions.txt");

/// The file next to the database that replaces [`SHIPPED`] when present.
pub const OVERRIDE_FILE: &str = "firmware-versions.txt";

/// The family a miner runs when its boot banner named none (NerdMiner v2 prints none).
pub const DEFAULT_FAMILY: &str = "NerdMiner";

/// Newest version per family, from a list's text; an error names the line to fix.
pub fn parse_known(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(family), Some(version), None) = (words.next(), words.next(), words.next()) else {
            return Err(format!(
                "line {}: {line:?} is not \"family version\" (e.g. \"NerdMiner V1.8.3\")",
                n + 1
            ));
        };
        if numbers(version).is_empty() {
            return Err(format!("line {}: {version:?} has no version number", n + 1));
        }
        match out.iter_mut().find(|(f, _)| f.eq_ignore_ascii_case(family)) {
            Some(known) => {
                if compare(version, &known.1) == Ordering::Greater {
                    known.1 = version.to_owned();
                }
            }
            None => out.push((family.to_owned(), version.to_owned())),
        }
    }
    Ok(out)
}

fn numbers(v: &str) -> Vec<u64> {
    v.split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Compares versions by their numbers (`V1.10.0` > `v1.9.2`; a missing part counts as 0).
pub fn compare(a: &str, b: &str) -> Ordering {
    let (a, b) = (numbers(a), numbers(b));
    for i in 0..a.len().max(b.len()) {
        let o = a.get(i).unwrap_or(&0).cmp(b.get(i).unwrap_or(&0));
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// What is known of one miner's firmware.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MinerFirmware {
    /// Row id.
    pub miner_id: i64,
    /// Name.
    pub miner: String,
    /// Firmware family (`NerdMiner`, `SparkMiner`, …), if the banner named one.
    pub family: Option<String>,
    /// Version from the subscribe line (`V1.8.3`), if seen.
    pub version: Option<String>,
    /// Board, as the display driver it announced at boot.
    pub board: Option<String>,
    /// Chip, as the last flash read found it.
    pub chip: Option<String>,
}

/// Miners on one firmware version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionGroup {
    /// Family.
    pub family: String,
    /// Version (null: not seen yet — the miner has not subscribed since the Shepherd watched).
    pub version: Option<String>,
    /// The newest version known for the family.
    pub newest: Option<String>,
    /// `current`, `outdated`, `newer` (than the list knows) or `unknown`.
    pub state: &'static str,
    /// The miners on it, by name.
    pub miners: Vec<MinerFirmware>,
}

/// Groups miners by family and version, newest version first within a family.
pub fn group(miners: &[MinerFirmware], known: &[(String, String)]) -> Vec<VersionGroup> {
    let mut groups: Vec<VersionGroup> = Vec::new();
    for m in miners {
        let family = m.family.clone().unwrap_or_else(|| DEFAULT_FAMILY.into());
        let pos = groups
            .iter()
            .position(|g| g.family == family && g.version == m.version);
        match pos {
            Some(i) => groups[i].miners.push(m.clone()),
            None => {
                let newest = known
                    .iter()
                    .find(|(f, _)| f.eq_ignore_ascii_case(&family))
                    .map(|(_, v)| v.clone());
                let state = match (&m.version, &newest) {
                    (Some(v), Some(n)) => match compare(v, n) {
                        Ordering::Less => "outdated",
                        Ordering::Equal => "current",
                        Ordering::Greater => "newer",
                    },
                    _ => "unknown",
                };
                groups.push(VersionGroup {
                    family,
                    version: m.version.clone(),
                    newest,
                    state,
                    miners: vec![m.clone()],
                });
            }
        }
    }
    for g in &mut groups {
        g.miners.sort_by(|a, b| a.miner.cmp(&b.miner));
    }
    groups.sort_by(|a, b| {
        a.family
            .cmp(&b.family)
            .then_with(|| match (&a.version, &b.version) {
                (Some(x), Some(y)) => compare(y, x),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            })
    });
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, family: Option<&str>, version: Option<&str>) -> MinerFirmware {
        MinerFirmware {
            miner_id: 1,
            miner: name.into(),
            family: family.map(Into::into),
            version: version.map(Into::into),
            board: None,
            chip: None,
        }
    }

    #[test]
    fn the_shipped_list_parses() {
        let known = parse_known(SHIPPED).unwrap();
        assert!(known.iter().any(|(f, _)| f == DEFAULT_FAMILY), "{known:?}");
    }

    #[test]
    fn lists_keep_the_newest_per_family_and_name_bad_lines() {
        let known =
            parse_known("# c\nNerdMiner V1.7.0\nnerdminer V1.10.1 # newer\nSparkMiner 2.9\n")
                .unwrap();
        assert_eq!(
            known,
            [
                ("NerdMiner".to_owned(), "V1.10.1".to_owned()),
                ("SparkMiner".to_owned(), "2.9".to_owned())
            ]
        );
        assert!(parse_known("NerdMiner").unwrap_err().starts_with("line 1"));
        assert!(parse_known("\nNerdMiner latest")
            .unwrap_err()
            .starts_with("line 2"));
    }

    #[test]
    fn versions_compare_by_number() {
        assert_eq!(compare("V1.10.0", "v1.9.2"), Ordering::Greater);
        assert_eq!(compare("V1.8", "V1.8.0"), Ordering::Equal);
        assert_eq!(compare("V1.6.4", "V1.8.3"), Ordering::Less);
    }

    #[test]
    fn miners_group_by_version_against_the_newest() {
        let known = parse_known("NerdMiner V1.8.3").unwrap();
        let groups = group(
            &[
                m("b", None, Some("V1.8.3")),
                m("a", None, Some("V1.8.3")),
                m("c", None, Some("V1.7.0")),
                m("d", None, None),
                m("e", Some("SparkMiner"), Some("2.1")),
                m("f", None, Some("V1.9.0")),
            ],
            &known,
        );
        let summary: Vec<_> = groups
            .iter()
            .map(|g| {
                (
                    g.family.as_str(),
                    g.version.as_deref(),
                    g.state,
                    g.miners.len(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("NerdMiner", Some("V1.9.0"), "newer", 1),
                ("NerdMiner", Some("V1.8.3"), "current", 2),
                ("NerdMiner", Some("V1.7.0"), "outdated", 1),
                ("NerdMiner", None, "unknown", 1),
                ("SparkMiner", Some("2.1"), "unknown", 1),
            ]
        );
        assert_eq!(groups[1].miners[0].miner, "a");
        assert_eq!(groups[2].newest.as_deref(), Some("V1.8.3"));
    }
}
