//! Where device events come from: udev where it runs (a monitor for `tty` add/remove events
//! on its own thread, and an enumeration of what is already plugged in), else a periodic scan
//! of /dev and /sys (containers, systems without udevd). Both feed the DiscoveryActor through
//! the same [`DeviceEvent`] messages that tests inject.

use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix::Recipient;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::sysfs;
use super::DeviceEvent;
use crate::model::device::DeviceInfo;

/// How devices are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// udev's database and event monitor.
    Udev,
    /// Scanning /dev/serial/by-id and /sys/class/tty (no udev here).
    Scan,
}

/// Whether udevd runs here: it creates this socket, and without it udev's database (the
/// `ID_*` properties) and events are missing.
pub fn udev_running() -> bool {
    Path::new("/run/udev/control").exists()
}

/// Every USB serial device plugged in now, and how they were found.
pub fn scan_now() -> (Vec<DeviceInfo>, Backend) {
    if udev_running() {
        match enumerate() {
            Ok(list) => return (list, Backend::Udev),
            Err(e) => tracing::warn!("udev enumeration failed ({e}); scanning /sys instead"),
        }
    }
    (sysfs::scan_system(), Backend::Scan)
}

/// Every USB tty udev knows of.
pub fn enumerate() -> std::io::Result<Vec<DeviceInfo>> {
    let mut e = udev::Enumerator::new()?;
    e.match_subsystem("tty")?;
    Ok(e.scan_devices()?
        .filter_map(|d| describe(&d))
        .filter(|d| d.vid.is_some())
        .collect())
}

/// A udev device as a [`DeviceInfo`].
fn describe(d: &udev::Device) -> Option<DeviceInfo> {
    let props: Vec<(String, String)> = d
        .properties()
        .map(|p| {
            (
                p.name().to_string_lossy().into_owned(),
                p.value().to_string_lossy().into_owned(),
            )
        })
        .collect();
    let mut info =
        DeviceInfo::from_udev_properties(props.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if let (Some(i), Some(node)) = (info.as_mut(), d.devnode()) {
        // DEVNAME is the node; keep it absolute even if a udev version reports it bare.
        i.tty = node.display().to_string();
    }
    info
}

/// A running source thread; stopped when dropped.
pub struct SourceHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// How this source finds devices.
    pub backend: Backend,
}

impl Drop for SourceHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the best source available: the udev monitor, or (saying so once) the scan.
pub fn start(sink: Recipient<DeviceEvent>, poll_every: Duration) -> std::io::Result<SourceHandle> {
    let stop = Arc::new(AtomicBool::new(false));
    if udev_running() {
        // The monitor must be built on the thread that uses it (udev handles are not Send);
        // the thread reports whether that worked before the caller goes on.
        let (tx, rx) = std::sync::mpsc::channel();
        let (flag, events) = (stop.clone(), sink.clone());
        let thread = std::thread::Builder::new()
            .name("udev-monitor".into())
            .spawn(move || monitor(events, flag, tx))?;
        match rx.recv() {
            Ok(Ok(())) => {
                tracing::info!("device discovery: watching udev for USB serial devices");
                return Ok(SourceHandle {
                    stop,
                    thread: Some(thread),
                    backend: Backend::Udev,
                });
            }
            Ok(Err(e)) => tracing::warn!("cannot listen to udev ({e})"),
            Err(_) => tracing::warn!("the udev monitor thread ended at once"),
        }
        let _ = thread.join();
    }
    tracing::info!(
        "device discovery: udev is not running here, scanning /dev/serial/by-id and /sys/class/tty \
         every {} s instead",
        poll_every.as_secs()
    );
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("device-scan".into())
        .spawn(move || scan_loop(sink, flag, poll_every))?;
    Ok(SourceHandle {
        stop,
        thread: Some(thread),
        backend: Backend::Scan,
    })
}

fn monitor(
    sink: Recipient<DeviceEvent>,
    stop: Arc<AtomicBool>,
    ready: std::sync::mpsc::Sender<std::io::Result<()>>,
) {
    let socket = match udev::MonitorBuilder::new()
        .and_then(|b| b.match_subsystem("tty"))
        .and_then(|b| b.listen())
    {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    // Listen first, then enumerate: a board plugged in between is seen twice, never missed.
    match enumerate() {
        Ok(list) => sink.do_send(DeviceEvent::Present(list)),
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    }
    let _ = ready.send(Ok(()));
    while !stop.load(Ordering::Relaxed) {
        let mut fds = [PollFd::new(socket.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(500u16)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                tracing::error!("udev monitor failed ({e}); plugged devices are no longer noticed");
                return;
            }
        }
        for event in socket.iter() {
            let Some(dev) = describe(&event.device()) else {
                continue;
            };
            match event.event_type() {
                udev::EventType::Add if dev.vid.is_some() => sink.do_send(DeviceEvent::Added(dev)),
                udev::EventType::Remove => sink.do_send(DeviceEvent::Removed(dev)),
                _ => {}
            }
        }
    }
}

fn scan_loop(sink: Recipient<DeviceEvent>, stop: Arc<AtomicBool>, every: Duration) {
    while !stop.load(Ordering::Relaxed) {
        sink.do_send(DeviceEvent::Present(sysfs::scan_system()));
        let next = Instant::now() + every;
        while Instant::now() < next && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enumerates_real_devices_where_udev_runs() {
        if !udev_running() {
            eprintln!("skipped: udev is not running on this machine (no /run/udev/control)");
            return;
        }
        let list = enumerate().expect("udev enumeration works where udevd runs");
        for d in &list {
            assert!(d.tty.starts_with("/dev/"), "{d:?}");
            assert!(d.vid.is_some());
        }
        eprintln!("udev lists {} USB serial device(s)", list.len());
    }

    #[test]
    fn scan_now_works_anywhere() {
        let (list, backend) = scan_now();
        assert_eq!(backend == Backend::Udev, udev_running());
        assert!(list.iter().all(|d| d.tty.starts_with("/dev/")));
    }
}
