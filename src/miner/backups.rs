//! Stored partition images: which ones can bring a miner back, and writing them so that a
//! power loss right after cannot leave a database row naming a file that never reached the
//! disk.
//!
//! A backup is only ever written back when it is intact (the size and SHA-256 recorded when it
//! was stored), came from the same chip (factory MAC), and mounts with the firmware's SPIFFS
//! parameters with a `/config.json` object in it: anything else would put the miner in its
//! setup portal (the firmware formats what it cannot mount, `SPIFFS.begin(true)`).

use std::io::Write as _;
use std::path::Path;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::db::commands::Backup;
use crate::flash::nerd_config::CONFIG_PATH;
use crate::flash::partitions::hex;
use crate::flash::spiffs::{self, SpiffsParams};

/// An image known to bring a miner back: intact, mounts, holds a `/config.json` object.
#[derive(Debug, Clone)]
pub struct GoodImage {
    /// The backup it is stored as.
    pub backup_id: i64,
    /// Its file (for messages: what to flash by hand).
    pub path: String,
    /// The partition image.
    pub image: Vec<u8>,
    /// SHA-256 of `image`.
    pub sha256: String,
    /// The configuration the firmware will print when it boots with it.
    pub config: Map<String, Value>,
}

/// The `/config.json` object of a partition image, or why the firmware would not find one.
pub fn image_config(image: &[u8]) -> Result<Map<String, Value>, String> {
    let files = spiffs::read_image(image, &SpiffsParams::ARDUINO)
        .map_err(|e| format!("it does not mount with the firmware's SPIFFS parameters ({e})"))?;
    let file = files
        .iter()
        .find(|f| f.path == CONFIG_PATH)
        .ok_or_else(|| {
            format!("it holds no {CONFIG_PATH} (the miner would open its setup portal)")
        })?;
    match serde_json::from_slice(&file.data) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(format!("its {CONFIG_PATH} is not a JSON object")),
    }
}

/// Checks backup `b` against `file` (its contents as read from disk): the size and SHA-256
/// recorded when it was stored, then that it would bring the miner back.
pub fn check_backup(b: &Backup, file: std::io::Result<Vec<u8>>) -> Result<GoodImage, String> {
    let name = format!("backup #{} ({})", b.id, b.path);
    let image = file.map_err(|e| format!("{name} cannot be read: {e}"))?;
    if image.len() as i64 != b.size {
        return Err(format!(
            "{name} is damaged on disk: {} bytes where {} were stored (truncated or overwritten)",
            image.len(),
            b.size
        ));
    }
    let sha256 = hex(&Sha256::digest(&image));
    if !sha256.eq_ignore_ascii_case(&b.sha256) {
        return Err(format!(
            "{name} is damaged on disk: SHA-256 {sha256}, recorded {} when it was stored",
            b.sha256
        ));
    }
    let config =
        image_config(&image).map_err(|e| format!("{name} cannot bring a miner back: {e}"))?;
    Ok(GoodImage {
        backup_id: b.id,
        path: b.path.clone(),
        image,
        sha256,
        config,
    })
}

/// Reads and checks backup `b` (see [`check_backup`]).
pub fn load(b: &Backup) -> Result<GoodImage, String> {
    check_backup(b, std::fs::read(&b.path))
}

/// A MAC worth comparing: lower case, `None` when it could not be read.
fn known(mac: Option<&str>) -> Option<String> {
    mac.map(|m| m.trim().to_ascii_lowercase())
        .filter(|m| !m.is_empty() && m != "unknown")
}

/// Whether two factory MACs name the same chip; `None` when either is unknown.
pub fn same_chip(a: Option<&str>, b: Option<&str>) -> Option<bool> {
    Some(known(a)? == known(b)?)
}

/// The newest of `newest_first` that is intact, from chip `mac` (or of unknown origin), of
/// partition `(offset, size)`, accepted by `wanted`, and would bring the miner back; with why
/// each newer one was passed over.
pub fn newest_good(
    newest_first: &[Backup],
    mac: Option<&str>,
    partition: (i64, i64),
    wanted: &dyn Fn(&Backup) -> bool,
    read: &dyn Fn(&Backup) -> std::io::Result<Vec<u8>>,
) -> (Option<GoodImage>, Vec<String>) {
    let mut passed = Vec::new();
    for b in newest_first {
        if !wanted(b) || b.config_ok == Some(false) {
            continue;
        }
        if same_chip(b.mac.as_deref(), mac) == Some(false) || (b.offset, b.size) != partition {
            continue;
        }
        match check_backup(b, read(b)) {
            Ok(g) => return (Some(g), passed),
            Err(e) => passed.push(e),
        }
    }
    (None, passed)
}

/// Writes `bytes` to `dir/name` and syncs the file and the folders that hold it, so that once
/// this returns a power loss cannot lose it (a database row recorded next may name it).
pub fn write_synced(dir: &Path, name: &str, bytes: &[u8]) -> Result<std::path::PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(name);
    let written = std::fs::File::create(&path).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    written.map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    // The new directory entry (and the folder itself, when create_dir_all just made it).
    for d in [Some(dir), dir.parent()].into_iter().flatten() {
        let synced = std::fs::File::open(d).and_then(|f| f.sync_all());
        synced.map_err(|e| format!("cannot sync {}: {e}", d.display()))?;
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flash::spiffs::SpiffsFile;

    const SIZE: usize = 0x2_0000;

    fn image(config: Option<&str>) -> Vec<u8> {
        let files: Vec<SpiffsFile> = config
            .map(|c| SpiffsFile {
                path: CONFIG_PATH.into(),
                data: c.as_bytes().to_vec(),
            })
            .into_iter()
            .collect();
        spiffs::build_image(&files, SIZE, &SpiffsParams::ARDUINO).unwrap()
    }

    fn row(id: i64, image: &[u8], mac: Option<&str>) -> Backup {
        Backup {
            id,
            miner_id: 1,
            path: format!("/b/{id}.bin"),
            chip: Some("ESP32".into()),
            mac: mac.map(str::to_owned),
            offset: 0x31_0000,
            size: image.len() as i64,
            sha256: hex(&Sha256::digest(image)),
            created_at: id,
            config_ok: None,
        }
    }

    #[test]
    fn an_intact_backup_with_a_config_is_good() {
        let img = image(Some(r#"{"poolString":"p"}"#));
        let g = check_backup(&row(3, &img, None), Ok(img.clone())).unwrap();
        assert_eq!(g.backup_id, 3);
        assert_eq!(g.config["poolString"], "p");
    }

    #[test]
    fn damaged_or_useless_backups_are_refused_by_name() {
        let img = image(Some(r#"{"poolString":"p"}"#));
        let b = row(4, &img, None);
        let e = check_backup(&b, Ok(img[..1000].to_vec())).unwrap_err();
        assert!(
            e.contains("backup #4 (/b/4.bin)") && e.contains("1000 bytes"),
            "{e}"
        );
        let mut flipped = img.clone();
        flipped[10] ^= 1;
        let e = check_backup(&b, Ok(flipped)).unwrap_err();
        assert!(e.contains("SHA-256"), "{e}");
        let e = check_backup(&b, Err(std::io::ErrorKind::NotFound.into())).unwrap_err();
        assert!(e.contains("cannot be read"), "{e}");
        let empty = image(None);
        let e = check_backup(&row(5, &empty, None), Ok(empty)).unwrap_err();
        assert!(e.contains("holds no /config.json"), "{e}");
        let zeros = vec![0u8; SIZE];
        let e = check_backup(&row(6, &zeros, None), Ok(zeros)).unwrap_err();
        assert!(e.contains("does not mount"), "{e}");
    }

    #[test]
    fn macs_compare_when_both_are_known() {
        assert_eq!(
            same_chip(Some("24:D7:EB:10:20:01"), Some("24:d7:eb:10:20:01")),
            Some(true)
        );
        assert_eq!(
            same_chip(Some("24:d7:eb:10:20:01"), Some("24:d7:eb:10:20:02")),
            Some(false)
        );
        assert_eq!(same_chip(Some("unknown"), Some("24:d7:eb:10:20:02")), None);
        assert_eq!(same_chip(None, Some("24:d7:eb:10:20:02")), None);
    }

    #[test]
    fn the_newest_intact_backup_of_the_same_chip_is_picked() {
        let good_old = image(Some(r#"{"poolString":"old"}"#));
        let good_new = image(Some(r#"{"poolString":"new"}"#));
        let other_chip = image(Some(r#"{"poolString":"theirs"}"#));
        let empty = image(None);
        let mac = Some("aa:aa:aa:aa:aa:01");
        let list = vec![
            row(9, &other_chip, Some("aa:aa:aa:aa:aa:02")),
            row(8, &empty, mac),
            row(7, &good_new, mac),
            row(6, &good_old, mac),
        ];
        let files: Vec<(i64, Vec<u8>)> = vec![
            (9, other_chip.clone()),
            (8, empty.clone()),
            (7, good_new[..100].to_vec()), // truncated on disk
            (6, good_old.clone()),
        ];
        let read = |b: &Backup| -> std::io::Result<Vec<u8>> {
            Ok(files.iter().find(|(id, _)| *id == b.id).unwrap().1.clone())
        };
        let (g, passed) = newest_good(&list, mac, (0x31_0000, SIZE as i64), &|_| true, &read);
        assert_eq!(g.unwrap().backup_id, 6);
        assert_eq!(passed.len(), 2, "{passed:?}");
        assert!(passed[1].contains("backup #7") && passed[1].contains("damaged"));
        // Excluded ones are skipped; another partition size matches nothing.
        let (g, _) = newest_good(&list, mac, (0x31_0000, SIZE as i64), &|b| b.id != 6, &read);
        assert!(g.is_none());
        let (g, _) = newest_good(&list, mac, (0x31_0000, 0x1000), &|_| true, &read);
        assert!(g.is_none());
    }

    #[test]
    fn synced_writes_land_in_a_new_folder() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("7");
        let p = write_synced(&sub, "a.bin", b"abc").unwrap();
        assert_eq!(std::fs::read(p).unwrap(), b"abc");
    }
}
