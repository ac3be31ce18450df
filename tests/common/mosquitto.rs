//! A mosquitto on loopback for the tests of several sites (tests/hub.rs, the hub's screenshot
//! in tests/browser.rs).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// The mosquitto binary, or `None` after saying the test is skipped (a failure with `CI=true`,
/// where CI installs it).
pub fn mosquitto() -> Option<String> {
    let found = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .map(str::to_owned);
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "mosquitto is not installed, and CI=true: install it (apt-get install mosquitto)"
        );
        eprintln!(
            "SKIPPED: mosquitto is not installed (apt-get install mosquitto); the hub tests did not run"
        );
    }
    found
}

/// A mosquitto on a loopback port with persistence in its own directory; optionally bridged
/// to another broker. Stopped (SIGTERM, so it saves) when dropped.
pub struct Broker {
    bin: String,
    conf: PathBuf,
    child: Option<Child>,
    pub port: u16,
}

impl Broker {
    pub fn start(bin: &str, dir: &Path, name: &str, bridge_to: Option<u16>) -> Broker {
        let port = free_port();
        let data = dir.join(name);
        std::fs::create_dir_all(&data).unwrap();
        let mut conf = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
             persistence_location {}/\n",
            data.display()
        );
        // As root (the directory we just made is root's), mosquitto would switch to its own user, which cannot write to this
        // directory: its persistence file would silently not be saved.
        if std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&data).unwrap()) == 0 {
            conf.push_str("user root\n");
        }
        if let Some(central) = bridge_to {
            // The bridge of packaging/mosquitto-bridge.conf, minus TLS (loopback only).
            conf.push_str(&format!(
                "connection site-{name}\naddress 127.0.0.1:{central}\ntopic shepherd/# out 1\n\
                 cleansession false\nlocal_cleansession false\nremote_clientid bridge-{name}\n\
                 restart_timeout 1\nnotifications false\n"
            ));
        }
        let path = data.join("mosquitto.conf");
        std::fs::write(&path, conf).unwrap();
        let mut b = Broker {
            bin: bin.to_owned(),
            conf: path,
            child: None,
            port,
        };
        b.restart();
        b
    }

    pub fn restart(&mut self) {
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "mosquitto did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM: mosquitto saves its persistence file (sessions, queued messages) and exits.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = c.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}
