//! `shepherd passwd --config FILE`: asks for the dashboard password (twice, without echo, on a
//! terminal; one line from standard input otherwise), and writes its Argon2id hash as
//! `[web] password` into the file, keeping everything else in it as it was. The file is then
//! readable by its owner only (mode 600): the hash is not the password, but it must not help
//! anybody guess it offline.

use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{bail, Context as _};

use crate::config::Config;

/// Runs the command.
pub fn run(path: &Path) -> anyhow::Result<()> {
    let password = read_password()?;
    if password.chars().count() < 8 {
        bail!("the password must have at least 8 characters; nothing was changed");
    }
    let hash = crate::web::auth::hash_password(&password).map_err(anyhow::Error::msg)?;
    let old = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let new = with_password(&old, &hash);
    Config::parse(&new, path).with_context(|| {
        format!(
            "{} would not be a valid config with the password added; nothing was changed",
            path.display()
        )
    })?;
    write_private(path, &new)?;
    eprintln!(
        "The password's hash is in {} ([web] password, file mode 600). Restart shepherd to use it.",
        path.display()
    );
    Ok(())
}

/// Reads the new password: twice without echo on a terminal, else the first line of stdin.
fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    let first = prompt_hidden("New dashboard password: ")?;
    let second = prompt_hidden("The same again: ")?;
    if first != second {
        bail!("the two passwords differ; nothing was changed");
    }
    Ok(first)
}

/// Prompts on stderr and reads a line from the terminal with echo off (restored after).
fn prompt_hidden(prompt: &str) -> anyhow::Result<String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let stdin = std::io::stdin();
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let saved = tcgetattr(&stdin).context("cannot read the terminal's settings")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).context("cannot turn the echo off")?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    eprintln!();
    read.context("cannot read the password")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// `text` with `[web] password` set to `hash`: the key replaced where it is, added to an
/// existing `[web]` table, or a `[web]` table appended. Other lines stay as they were.
pub fn with_password(text: &str, hash: &str) -> String {
    let line = format!("password = \"{hash}\"");
    let mut out: Vec<String> = Vec::new();
    let mut in_web = false;
    let mut done = false;
    for l in text.lines() {
        let t = l.trim();
        if t.starts_with('[') {
            if in_web && !done {
                // The [web] table ended without a password: add it at its end.
                insert_before_blank_tail(&mut out, line.clone());
                done = true;
            }
            in_web = t.trim_start_matches('[').split(']').next().map(str::trim) == Some("web");
        } else if in_web && !done && key_of(t) == Some("password") {
            out.push(line.clone());
            done = true;
            continue;
        }
        out.push(l.to_owned());
    }
    if in_web && !done {
        insert_before_blank_tail(&mut out, line.clone());
        done = true;
    }
    if !done {
        if out.last().is_some_and(|l| !l.trim().is_empty()) {
            out.push(String::new());
        }
        out.push("[web]".into());
        out.push(line);
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

/// The key of a `key = value` line (not a comment).
fn key_of(line: &str) -> Option<&str> {
    if line.starts_with('#') {
        return None;
    }
    let (k, _) = line.split_once('=')?;
    Some(k.trim().trim_matches('"'))
}

/// Pushes `line` before the blank lines that end `out`, so it stays inside its table.
fn insert_before_blank_tail(out: &mut Vec<String>, line: String) {
    let at = out
        .iter()
        .rposition(|l| !l.trim().is_empty())
        .map_or(0, |i| i + 1);
    out.insert(at, line);
}

/// Writes `text` to `path` through a temporary file in the same folder (so a crash leaves the
/// old file whole), mode 600.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    let mut tmp = tempfile_in(&dir, path)?;
    // Run as root on a file the service user owns (mode 600 needs that): keep its owner.
    let owner = std::fs::metadata(path).ok().map(|m| {
        use std::os::unix::fs::MetadataExt;
        (m.uid(), m.gid())
    });
    let result = (|| -> std::io::Result<()> {
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::fchown(&tmp.1, Some(uid), Some(gid))?;
        }
        tmp.1
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
        tmp.1.write_all(text.as_bytes())?;
        tmp.1.sync_all()?;
        std::fs::rename(&tmp.0, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp.0);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

/// A new file beside `path` only this user can read.
fn tempfile_in(dir: &Path, path: &Path) -> anyhow::Result<(std::path::PathBuf, std::fs::File)> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config.toml".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create {} (is the folder writable?)", tmp.display()))?;
    Ok((tmp, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA";

    #[test]
    fn the_key_is_replaced_where_it_is() {
        let text = "[server]\nbind = \"0.0.0.0:8080\"\n\n[web]\n# the login\npassword = \"old\"\nprotect = \"all\"\n";
        let out = with_password(text, H);
        assert_eq!(
            out,
            format!("[server]\nbind = \"0.0.0.0:8080\"\n\n[web]\n# the login\npassword = \"{H}\"\nprotect = \"all\"\n")
        );
        let c = Config::parse(&out, Path::new("t.toml")).unwrap();
        assert_eq!(c.web.password, H);
    }

    #[test]
    fn a_web_table_without_the_key_gets_it_inside() {
        let text = "[web]\nprotect = \"all\"\n\n[mqtt]\nenabled = false\n";
        let out = with_password(text, H);
        let c = Config::parse(&out, Path::new("t.toml")).unwrap();
        assert_eq!(c.web.password, H);
        assert!(!c.mqtt.enabled);
        assert!(out.starts_with(&format!(
            "[web]\nprotect = \"all\"\npassword = \"{H}\"\n\n[mqtt]"
        )));
    }

    #[test]
    fn a_file_without_web_or_empty_gets_a_table() {
        for text in ["", "[server]\nbind = \"127.0.0.1:1\"\n"] {
            let out = with_password(text, H);
            let c = Config::parse(&out, Path::new("t.toml")).unwrap();
            assert_eq!(c.web.password, H, "{out}");
        }
        // `password` in another table is not ours.
        let out = with_password("[mqtt]\npassword = \"broker\"\n", H);
        let c = Config::parse(&out, Path::new("t.toml")).unwrap();
        assert_eq!(
            (c.mqtt.password.as_str(), c.web.password.as_str()),
            ("broker", H)
        );
    }

    #[test]
    fn the_file_is_written_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        std::fs::write(&p, "[web]\n").unwrap();
        write_private(&p, "[web]\npassword = \"x\"\n").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }
}
