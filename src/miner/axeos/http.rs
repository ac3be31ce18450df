//! The few AxeOS requests shepherd makes, over ureq with short timeouts. Every failure is a
//! sentence for the miner's status line or the command's detail.

use std::time::Duration;

use serde_json::Value;

use super::parse::REFUSED_NOT_PRIVATE;

/// Longest an answer may take: AxeOS answers `/api/system/info` in well under a second on
/// the LAN; a miner that takes longer is as good as gone for a 10-second poll.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// Largest answer read (a 2.15 `/api/system/info` with its ASIC monitor is ~6 KB).
const MAX_BODY: u64 = 256 * 1024;

/// One miner's HTTP client.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    timeout: Duration,
}

impl Client {
    /// A client for the miner at `base` (`http://host[:port]`, no trailing slash).
    pub fn new(base: &str, timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            // AxeOS answers unknown paths with a 302 to its captive portal
            // (`http_404_error_handler`, http_server.c:1826): a redirect is "not here".
            .max_redirects(0)
            // The miner is on the LAN: a proxy from the environment would never reach it.
            .proxy(None)
            .user_agent(concat!("the-shepherd/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Self {
            agent,
            base: base.trim_end_matches('/').to_owned(),
            timeout,
        }
    }

    /// The miner's address.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn transport(&self, e: ureq::Error) -> String {
        use std::io::ErrorKind;
        match e {
            ureq::Error::Timeout(_) => format!(
                "{} did not answer within {:.1} s: is it powered and on this network?",
                self.base,
                self.timeout.as_secs_f64()
            ),
            ureq::Error::Io(io) if io.kind() == ErrorKind::TimedOut => format!(
                "{} did not answer in time: is it powered and on this network?",
                self.base
            ),
            ureq::Error::Io(io) if io.kind() == ErrorKind::ConnectionRefused => format!(
                "{} refused the connection: the miner is restarting, or this is not its address",
                self.base
            ),
            ureq::Error::HostNotFound => format!(
                "{}: host name not found (check the address on /settings)",
                self.base
            ),
            other => format!("{}: {other}", self.base),
        }
    }

    fn body(
        &self,
        path: &str,
        mut resp: ureq::http::Response<ureq::Body>,
    ) -> Result<String, String> {
        let status = resp.status().as_u16();
        match status {
            200..=299 => resp
                .body_mut()
                .with_config()
                .limit(MAX_BODY)
                .read_to_string()
                .map_err(|e| self.transport(e)),
            401 => Err(REFUSED_NOT_PRIVATE.into()),
            300..=399 | 404 => Err(format!(
                "{} has no {path} (older AxeOS, or not an AxeOS miner)",
                self.base
            )),
            s => Err(format!("{} answered {path} with HTTP {s}", self.base)),
        }
    }

    /// `GET path`, the body of a 2xx answer.
    pub fn get(&self, path: &str) -> Result<String, String> {
        let resp = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Accept", "application/json")
            .call()
            .map_err(|e| self.transport(e))?;
        self.body(path, resp)
    }

    /// `POST path` without a body (restart, identify).
    pub fn post(&self, path: &str) -> Result<String, String> {
        let resp = self
            .agent
            .post(format!("{}{path}", self.base))
            .send_empty()
            .map_err(|e| self.transport(e))?;
        self.body(path, resp)
    }

    /// `PATCH path` with a JSON body (settings).
    pub fn patch(&self, path: &str, body: &Value) -> Result<String, String> {
        let resp = self
            .agent
            .patch(format!("{}{path}", self.base))
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .map_err(|e| self.transport(e))?;
        self.body(path, resp)
    }
}
