//! Discovery: notices USB serial devices being plugged in and out. A configured miner that
//! comes back (same USB serial number, any tty name) is reconnected; one that is unplugged is
//! shown offline at once; a new ESP32 board is recorded in `unconfigured_devices` for the
//! onboarding page, after a short read-only look at what it prints.
//!
//! The actor is thin: [`classify`] decides, [`crate::db::devices`] stores, and the device
//! events come from [`udev_source`] (udev, or a scan of /dev and /sys where udev does not run)
//! or, in tests, from whoever sends [`DeviceEvent`]s to the actor's address.

pub mod classify;
pub mod portmap;
pub mod probe;
pub mod sysfs;
pub mod udev_source;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use actix::prelude::*;
use rusqlite::Connection;
use serde::Serialize;

use crate::config::DiscoveryConfig;
use crate::db::devices::{self, ProbeResult};
use crate::db::{DbActor, LinkChanged, LinkState, Write};
use crate::model::device::{DeviceInfo, UsbId};
use crate::supervisor::{MinerReplugged, MinersChanged, Supervisor};
use classify::{decide, Change, Decision, Herd, IgnoreReason};
use udev_source::SourceHandle;

/// Something happened to the serial devices. The udev monitor, the fallback scan and tests
/// all send these.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub enum DeviceEvent {
    /// Everything plugged in now (the enumeration at start, or one scan of the fallback):
    /// what is missing was unplugged, what is new was plugged in.
    Present(Vec<DeviceInfo>),
    /// A device was plugged in.
    Added(DeviceInfo),
    /// A device was unplugged (only `tty` needs to be set; the rest is remembered).
    Removed(DeviceInfo),
}

/// Stop listening on a device's port (it is about to become a miner's): answers once the
/// port is free.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ReleasePort {
    /// The device's tty.
    pub tty: String,
}

/// The program is stopping: stop watching devices and probing ports (answers once done).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ShuttingDown;

/// A probe finished listening.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct ProbeDone {
    tty: String,
    result: ProbeResult,
    cancelled: bool,
}

/// Where the actor's events come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// udev, or the /dev and /sys scan where udev does not run.
    System,
    /// Only what is sent to the actor's address (tests).
    Injected,
}

struct Probe {
    cancel: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Watches devices and acts on what they mean for the herd.
pub struct DiscoveryActor {
    cfg: DiscoveryConfig,
    baud: u32,
    feed: Feed,
    db: Addr<DbActor>,
    supervisor: Addr<Supervisor>,
    present: BTreeMap<String, DeviceInfo>,
    scanned: bool,
    probes: HashMap<String, Probe>,
    source: Option<SourceHandle>,
    news: Option<portmap::PortNews>,
}

impl DiscoveryActor {
    /// An actor writing through `db` and telling `supervisor` about miners that move;
    /// `baud` is the speed its probes listen at.
    pub fn new(
        cfg: DiscoveryConfig,
        baud: u32,
        feed: Feed,
        db: Addr<DbActor>,
        supervisor: Addr<Supervisor>,
    ) -> Self {
        Self {
            cfg,
            baud,
            feed,
            db,
            supervisor,
            present: BTreeMap::new(),
            scanned: false,
            probes: HashMap::new(),
            source: None,
            news: None,
        }
    }

    /// Tells `news` (the `/ports` pages' live updates) about every plug and unplug.
    pub fn with_news(mut self, news: portmap::PortNews) -> Self {
        self.news = Some(news);
        self
    }

    /// Turns an event into changes, keeping `present` current. The first full scan also
    /// returns the ttys present, so records of devices unplugged while nothing watched are
    /// corrected.
    fn absorb(&mut self, event: DeviceEvent) -> (Vec<Pending>, Option<Vec<String>>) {
        match event {
            DeviceEvent::Present(list) => {
                let live = self.scanned;
                self.scanned = true;
                let changes = classify::diff(&self.present, &list);
                self.present = list.iter().map(|d| (d.tty.clone(), d.clone())).collect();
                // Rows left "present" by a previous run are corrected once; after that the
                // changes keep them right (and an idle scan writes nothing).
                let ttys = (!live).then(|| list.into_iter().map(|d| d.tty).collect());
                let pending = changes
                    .into_iter()
                    .map(|(change, dev)| Pending { change, dev, live })
                    .collect();
                (pending, ttys)
            }
            DeviceEvent::Added(dev) => {
                self.present.insert(dev.tty.clone(), dev.clone());
                let live = true;
                (
                    vec![Pending {
                        change: Change::Added,
                        dev,
                        live,
                    }],
                    None,
                )
            }
            DeviceEvent::Removed(dev) => {
                let dev = match self.present.remove(&dev.tty) {
                    Some(known) => dev.merged_with(&known),
                    None => dev,
                };
                let live = true;
                (
                    vec![Pending {
                        change: Change::Removed,
                        dev,
                        live,
                    }],
                    None,
                )
            }
        }
    }

    fn act(&mut self, pending: Vec<Pending>, outcomes: Vec<Outcome>, ctx: &mut Context<Self>) {
        for (p, o) in pending.into_iter().zip(outcomes) {
            let dev = &p.dev;
            let what = dev.chip().unwrap_or("USB serial device");
            match o.decision {
                Decision::Known(r) => {
                    self.release(&dev.tty);
                    match &r.new_port {
                        Some(port) => {
                            tracing::info!(miner = r.miner_id, tty = %dev.tty, "miner plugged in again; now read from {port}");
                            self.supervisor.do_send(MinersChanged);
                        }
                        None => {
                            tracing::info!(miner = r.miner_id, tty = %dev.tty, "miner plugged in again");
                            self.supervisor.do_send(MinerReplugged {
                                miner_id: r.miner_id,
                            });
                        }
                    }
                }
                Decision::New => {
                    if p.live {
                        tracing::info!(tty = %dev.tty, serial = ?dev.serial, "new {what}: add it at /onboarding");
                    }
                    let probe = self.cfg.probe_secs > 0 && (p.live || !o.probed);
                    if probe && !self.probes.contains_key(&dev.tty) {
                        self.start_probe(dev.tty.clone(), ctx);
                    }
                }
                Decision::Ignored(reason) => {
                    let why = match reason {
                        IgnoreReason::NotUsb => "not a USB device",
                        IgnoreReason::NotListed => "not a chip in [discovery] usb_ids",
                        IgnoreReason::ByOwner => "ignored on the onboarding page",
                    };
                    tracing::debug!(tty = %dev.tty, usb_id = ?dev.usb_id(), "left alone: {why}");
                }
                Decision::Removed { miner_id } => {
                    self.release(&dev.tty);
                    if let Some(id) = miner_id {
                        tracing::info!(miner = id, tty = %dev.tty, "miner unplugged");
                        self.db.do_send(LinkChanged {
                            miner_id: id,
                            state: LinkState::Offline,
                            detail: Some(format!(
                                "unplugged from {}; waiting for it to be plugged in again",
                                dev.tty
                            )),
                        });
                    }
                }
            }
        }
    }

    fn start_probe(&mut self, tty: String, ctx: &mut Context<Self>) {
        let cancel = Arc::new(AtomicBool::new(false));
        let (flag, addr, path) = (cancel.clone(), ctx.address(), tty.clone());
        let (baud, listen) = (self.baud, Duration::from_secs(self.cfg.probe_secs));
        let spawned = std::thread::Builder::new()
            .name("device-probe".into())
            .spawn(move || {
                let result = probe::run(&path, baud, listen, &flag);
                let cancelled = flag.load(Ordering::Relaxed);
                addr.do_send(ProbeDone {
                    tty: path,
                    result,
                    cancelled,
                });
            });
        match spawned {
            Ok(t) => {
                self.probes.insert(
                    tty,
                    Probe {
                        cancel,
                        thread: Some(t),
                    },
                );
            }
            Err(e) => tracing::warn!("cannot start a probe of {tty}: {e}"),
        }
    }

    /// Ends the source thread and every probe (each notices within half a second).
    fn stop_all(&mut self) {
        self.source = None;
        for (_, mut p) in self.probes.drain() {
            p.cancel.store(true, Ordering::Relaxed);
            if let Some(t) = p.thread.take() {
                let _ = t.join();
            }
        }
    }

    /// Stops a probe of `tty`, if one runs; returns its thread to wait for.
    fn release(&mut self, tty: &str) -> Option<JoinHandle<()>> {
        let mut probe = self.probes.remove(tty)?;
        probe.cancel.store(true, Ordering::Relaxed);
        probe.thread.take()
    }
}

/// One change waiting to be recorded.
struct Pending {
    change: Change,
    dev: DeviceInfo,
    /// Happened while we watched (not the scan at start).
    live: bool,
}

/// What recording a change decided.
struct Outcome {
    decision: Decision,
    /// The device's record says a probe already ran on it.
    probed: bool,
}

/// Records `changes` on the writer connection and decides what each means, in order.
fn record(
    conn: &mut Connection,
    changes: &[(Change, DeviceInfo)],
    usb_ids: &[UsbId],
    present: &[DeviceInfo],
    present_ttys: Option<&[String]>,
) -> rusqlite::Result<Vec<Outcome>> {
    if let Some(ttys) = present_ttys {
        devices::sync_present(conn, ttys)?;
    }
    let mut out = Vec::with_capacity(changes.len());
    for (change, dev) in changes {
        let miners = devices::known_miners(conn)?;
        let records = devices::records(conn)?;
        let herd = Herd {
            usb_ids,
            miners: &miners,
            records: &records,
            present,
        };
        let decision = decide(*change, dev, herd);
        let mut probed = true;
        match &decision {
            Decision::Known(r) => {
                devices::apply_reconnect(conn, r)?;
                devices::forget(conn, dev)?;
            }
            Decision::New | Decision::Ignored(IgnoreReason::ByOwner) => {
                probed = devices::record_seen(conn, dev)?.probed;
            }
            Decision::Removed { .. } => devices::mark_absent(conn, dev)?,
            Decision::Ignored(_) => {}
        }
        out.push(Outcome { decision, probed });
    }
    Ok(out)
}

impl Actor for DiscoveryActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.feed == Feed::System {
            let every = Duration::from_secs(self.cfg.poll_secs);
            match udev_source::start(ctx.address().recipient(), every) {
                Ok(source) => self.source = Some(source),
                Err(e) => tracing::error!(
                    "device discovery cannot start ({e}): plugged-in miners must be added by hand"
                ),
            }
        }
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.stop_all();
    }
}

impl Handler<DeviceEvent> for DiscoveryActor {
    type Result = ();

    fn handle(&mut self, event: DeviceEvent, ctx: &mut Self::Context) {
        let (pending, present_ttys) = self.absorb(event);
        if let (false, Some(news)) = (pending.is_empty(), &self.news) {
            news.changed();
        }
        if pending.is_empty() && present_ttys.is_none() {
            return;
        }
        let changes: Vec<(Change, DeviceInfo)> =
            pending.iter().map(|p| (p.change, p.dev.clone())).collect();
        let usb_ids = self.cfg.usb_ids.clone();
        let present: Vec<DeviceInfo> = self.present.values().cloned().collect();
        let write = Write::new(move |conn| {
            record(conn, &changes, &usb_ids, &present, present_ttys.as_deref())
        });
        // One event at a time, in order: an unplug's "offline" must not overtake the record
        // of the replug that follows it.
        ctx.wait(
            self.db
                .send(write)
                .into_actor(self)
                .map(move |res, act, ctx| match res {
                    Ok(Ok(outcomes)) => act.act(pending, outcomes, ctx),
                    Ok(Err(e)) => tracing::warn!("cannot record device changes: {e}"),
                    Err(e) => tracing::warn!("database writer unavailable: {e}"),
                }),
        );
    }
}

impl Handler<ReleasePort> for DiscoveryActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: ReleasePort, _: &mut Self::Context) -> Self::Result {
        let thread = self.release(&msg.tty);
        Box::pin(async move {
            if let Some(t) = thread {
                let _ = actix_rt::task::spawn_blocking(move || t.join()).await;
            }
        })
    }
}

impl Handler<ShuttingDown> for DiscoveryActor {
    type Result = ();

    fn handle(&mut self, _: ShuttingDown, ctx: &mut Self::Context) {
        self.stop_all();
        ctx.stop();
    }
}

impl Handler<ProbeDone> for DiscoveryActor {
    type Result = ();

    fn handle(&mut self, msg: ProbeDone, _: &mut Self::Context) {
        if let Some(p) = self.probes.get(&msg.tty) {
            if p.cancel.load(Ordering::Relaxed) == msg.cancelled {
                self.probes.remove(&msg.tty);
            }
        }
        if msg.cancelled {
            return;
        }
        tracing::info!(tty = %msg.tty, "probe: {}", msg.result.detail);
        let (tty, result) = (msg.tty, msg.result);
        self.db.do_send(Write::new(move |conn| {
            devices::store_probe(conn, &tty, &result)
        }));
    }
}

/// One line of `shepherd devices`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceListing {
    /// Device node.
    pub tty: String,
    /// `/dev/serial/by-id/…` link.
    pub by_id: Option<String>,
    /// `vid:pid`.
    pub usb_id: Option<String>,
    /// USB serial number.
    pub serial: Option<String>,
    /// Manufacturer string.
    pub manufacturer: Option<String>,
    /// Product string.
    pub product: Option<String>,
    /// Chip name, when known.
    pub chip: Option<&'static str>,
    /// `miner`, `unconfigured`, `new`, `ignored`, `not_listed` or `not_usb`.
    pub status: &'static str,
    /// The miner's name, when it is one.
    pub miner: Option<String>,
}

/// What each present device is to the herd, as `shepherd devices` lists it.
pub fn listing(devices: &[DeviceInfo], herd: Herd<'_>) -> Vec<DeviceListing> {
    devices
        .iter()
        .map(|d| {
            let mut miner = None;
            let status = match decide(Change::Added, d, herd) {
                Decision::Known(r) => {
                    miner = herd
                        .miners
                        .iter()
                        .find(|m| m.id == r.miner_id)
                        .map(|m| m.name.clone());
                    "miner"
                }
                Decision::New if crate::model::device::find_record(herd.records, d).is_some() => {
                    "unconfigured"
                }
                Decision::New => "new",
                Decision::Ignored(IgnoreReason::ByOwner) => "ignored",
                Decision::Ignored(IgnoreReason::NotListed) => "not_listed",
                Decision::Ignored(IgnoreReason::NotUsb) | Decision::Removed { .. } => "not_usb",
            };
            DeviceListing {
                tty: d.tty.clone(),
                by_id: d.by_id.clone(),
                usb_id: d.usb_id(),
                serial: d.serial.clone(),
                manufacturer: d.manufacturer.clone(),
                product: d.product.clone(),
                chip: d.chip(),
                status,
                miner,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::device::{default_usb_ids, DeviceRecord, KnownMiner};

    #[test]
    fn listing_names_what_each_device_is() {
        let s3 = DeviceInfo {
            tty: "/dev/ttyACM0".into(),
            vid: Some(0x303a),
            pid: Some(0x1001),
            serial: Some("F4:12:FA:5B:C3:10".into()),
            ..DeviceInfo::default()
        };
        let ftdi = DeviceInfo {
            tty: "/dev/ttyUSB2".into(),
            vid: Some(0x0403),
            pid: Some(0x6001),
            serial: Some("A50285BI".into()),
            ..DeviceInfo::default()
        };
        let cyd = DeviceInfo {
            tty: "/dev/ttyUSB0".into(),
            vid: Some(0x1a86),
            pid: Some(0x7523),
            ..DeviceInfo::default()
        };
        let pl = DeviceInfo {
            tty: "/dev/ttyUSB4".into(),
            vid: Some(0x067b),
            pid: Some(0x2303),
            ..DeviceInfo::default()
        };
        let miners = [KnownMiner {
            id: 1,
            name: "desk".into(),
            port: "/dev/serial/by-id/x".into(),
            usb_serial: Some("F4:12:FA:5B:C3:10".into()),
            by_id_path: None,
        }];
        let records = [
            DeviceRecord {
                id: 1,
                tty: "/dev/ttyUSB2".into(),
                usb_serial: Some("A50285BI".into()),
                ignored: true,
            },
            DeviceRecord {
                id: 2,
                tty: "/dev/ttyUSB0".into(),
                usb_serial: None,
                ignored: false,
            },
        ];
        let ids = default_usb_ids();
        let all = [s3, ftdi, cyd, pl];
        let herd = Herd {
            usb_ids: &ids,
            miners: &miners,
            records: &records,
            present: &all,
        };
        let got: Vec<_> = listing(&all, herd)
            .into_iter()
            .map(|l| (l.status, l.miner))
            .collect();
        assert_eq!(
            got,
            [
                ("miner", Some("desk".to_string())),
                ("ignored", None),
                ("unconfigured", None),
                ("not_listed", None)
            ]
        );
    }
}
