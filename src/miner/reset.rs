//! RESET: the board is reset through its serial lines (DTR/RTS on a USB-UART bridge, the USB
//! peripheral on a native-USB chip) and the command waits for the firmware's boot banner. Its
//! screen or LED visibly reboots, which is how the owner finds one board in a box of identical
//! ones (identify); self-healing uses it on a stalled miner. Runs on the miner's reader thread
//! like every command, so it never overlaps a configuration write on that miner.

use actix::Addr;
use serde_json::{json, Value};

use super::command::{db_call, record_end, wait_for_boot, Outcome};
use super::reader::PortSession;
use crate::db::commands;
use crate::db::DbActor;
use crate::flash::lines::ResetKind;

/// Who asked, from the payload's `reason` (`identify`, `self-healing: …`); `reset` otherwise.
pub fn reason(payload: Option<&str>) -> String {
    payload
        .and_then(|p| serde_json::from_str::<Value>(p).ok())
        .and_then(|v| v.get("reason").and_then(Value::as_str).map(str::to_owned))
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| "reset".into())
}

/// Runs RESET `id`.
pub fn execute(
    db: &Addr<DbActor>,
    id: i64,
    payload: Option<&str>,
    session: Result<&mut PortSession<'_>, String>,
) {
    let why = reason(payload);
    let outcome = match session {
        Err(e) => Outcome::failed(format!(
            "port gone: the miner's port is not open ({e}); plug it in, or power cycle it by hand"
        )),
        Ok(session) => {
            let text = format!("{why}: resetting {}", session.path());
            let _ = db_call(db, move |c| commands::start(c, id, &text));
            let reset = session.reset(ResetKind::HardReset);
            match reset.and_then(|()| wait_for_boot(session)) {
                Ok(()) => Outcome {
                    ok: true,
                    detail: "hard reset through the serial lines; the firmware booted again".into(),
                    result: json!({ "reason": why }),
                    config: None,
                    cause: None,
                },
                Err(e) => {
                    Outcome::failed(format!("the reset did not bring the firmware back: {e}"))
                }
            }
        }
    };
    record_end(db, id, outcome);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_comes_from_the_payload() {
        assert_eq!(reason(Some(r#"{"reason":"identify"}"#)), "identify");
        assert_eq!(reason(Some("{}")), "reset");
        assert_eq!(reason(Some("not json")), "reset");
        assert_eq!(reason(None), "reset");
    }
}
