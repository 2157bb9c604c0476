//! Delivery: claim due notifications from the store's outbox, send each to its target, record
//! how it went. Retries back off exponentially (1 s, 2 s, 4 s …) for [`ATTEMPTS`] attempts
//! (about nine minutes); a target that refuses the request as such (an
//! HTTP 4xx other than 408 and 429: a wrong URL, a missing token) fails at once, since sending
//! it again cannot help.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use godwit_pgstore::PgStore;
use godwit_pgstore::notify::{Delivery, Pending, Target, redacted};
use serde_json::Value;

/// Attempts per notification before it is marked failed: 1 + 2 + … + 256 s of backoff, about
/// nine minutes (plus the attempts' own time).
pub const ATTEMPTS: i32 = 10;
/// How long a claim lasts: a deliverer that dies mid-send is replaced after it. A deliverer
/// stops sending its claimed rows (and gives them back) well before it runs out.
const CLAIM: Duration = Duration::from_secs(60);
/// One request's budget (connecting: [`CONNECT_TIMEOUT`]).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Rows claimed at once.
const BATCH: i64 = 16;
/// The target kinds this build sends: a worker without the aws world leaves SNS rows to one
/// that has it instead of spending their attempts.
const SENDABLE: &[&str] = if cfg!(feature = "aws") {
    &["webhook", "sns"]
} else {
    &["webhook"]
};

/// Backoff before attempt `attempts + 1`.
fn backoff(attempts: i32) -> Duration {
    Duration::from_secs(1u64 << attempts.clamp(0, 9)).min(Duration::from_secs(300))
}

/// A worker's delivery thread (see the module docs). Dropped, it stops after the request in
/// flight (at most [`REQUEST_TIMEOUT`]); [`Deliverer::finish`] first sends what is due.
pub struct Deliverer {
    stop: Option<mpsc::Sender<Duration>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Deliverer {
    /// Deliver for `holder` every `poll` until dropped or finished.
    pub fn start(store: PgStore, holder: String, poll: Duration) -> Deliverer {
        let (stop, stopped) = mpsc::channel::<Duration>();
        let thread = std::thread::Builder::new()
            .name("notify-deliver".into())
            .spawn(move || {
                let mut sender = Sender::default();
                // Said once until it changes: a store that is down is not news every poll.
                let mut said = String::new();
                let mut pass = |until: Option<Instant>| match deliver_due_with(
                    &store,
                    &holder,
                    &mut sender,
                    until,
                ) {
                    Ok(n) => {
                        said.clear();
                        n
                    }
                    Err(e) => {
                        if e != said {
                            crate::out::note(format!("warning: notifications: {e}"));
                            said = e;
                        }
                        0
                    }
                };
                loop {
                    let sent = pass(None);
                    let wait = if sent == 0 { poll } else { Duration::ZERO };
                    match stopped.recv_timeout(wait) {
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        // Finish: one last pass within the time given.
                        Ok(within) => {
                            let until = Instant::now() + within;
                            while Instant::now() < until && pass(Some(until)) > 0 {}
                            break;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
            })
            .expect("spawn the notification delivery thread");
        Deliverer {
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Send what is due (the last runs' news) within `within`, then stop.
    pub fn finish(mut self, within: Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(within);
        }
    }
}

impl Drop for Deliverer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Claim and send the notifications due now, once; returns how many were attempted.
pub fn deliver_due(store: &PgStore, holder: &str) -> Result<usize, String> {
    deliver_due_with(store, holder, &mut Sender::default(), None)
}

/// One batch. Rows are given back unsent (no attempt counted) when the claim would run out or
/// `until` is past, and when their target failed already in this batch: one target that is
/// down must not hold every other's news behind its timeouts.
fn deliver_due_with(
    store: &PgStore,
    holder: &str,
    sender: &mut Sender,
    until: Option<Instant>,
) -> Result<usize, String> {
    let claimed_at = Instant::now();
    let due = store
        .claim_notifications(holder, BATCH, CLAIM, SENDABLE)
        .map_err(|e| e.to_string())?;
    let mut down: Vec<String> = Vec::new();
    let mut sent = 0;
    for n in &due {
        let late = claimed_at.elapsed() + 2 * REQUEST_TIMEOUT > CLAIM
            || until.is_some_and(|u| Instant::now() + REQUEST_TIMEOUT > u);
        if late || down.contains(&n.target.address) {
            store
                .release_notification(n.id, holder)
                .map_err(|e| e.to_string())?;
            continue;
        }
        sent += 1;
        let how = match sender.send(n) {
            Ok(()) => Delivery::Delivered,
            Err(Attempt::Refused(error)) => Delivery::Failed { error },
            Err(Attempt::Transient(error)) => {
                down.push(n.target.address.clone());
                if n.attempts + 1 >= ATTEMPTS {
                    Delivery::Failed {
                        error: format!("{error} (gave up after {ATTEMPTS} attempts)"),
                    }
                } else {
                    Delivery::Retry {
                        error,
                        after: backoff(n.attempts),
                    }
                }
            }
        };
        store
            .settle_notification(n.id, holder, how)
            .map_err(|e| e.to_string())?;
    }
    Ok(sent)
}

enum Attempt {
    /// Worth trying again later.
    Transient(String),
    /// The target refused this request as such.
    Refused(String),
}

/// The clients, built once per deliverer.
#[derive(Default)]
struct Sender {
    http: Option<ureq::Agent>,
    #[cfg(feature = "aws")]
    sns: super::sns::Clients,
}

impl Sender {
    fn send(&mut self, n: &Pending) -> Result<(), Attempt> {
        let mut body = n.body.clone();
        if let Value::Object(m) = &mut body {
            m.insert("id".into(), n.id.into());
        }
        match n.target.kind.as_str() {
            "webhook" => self.webhook(&n.target, n.id, &body),
            "sns" => self.sns(&n.target, &body),
            other => Err(Attempt::Refused(format!(
                "unknown target kind {other:?} (written by a newer godwit?)"
            ))),
        }
    }

    fn webhook(&mut self, t: &Target, id: i64, body: &Value) -> Result<(), Attempt> {
        let agent = self.http.get_or_insert_with(|| {
            let tls = ureq::tls::TlsConfig::builder()
                .provider(ureq::tls::TlsProvider::Rustls)
                .root_certs(ureq::tls::RootCerts::WebPki)
                .unversioned_rustls_crypto_provider(std::sync::Arc::new(
                    rustls::crypto::aws_lc_rs::default_provider(),
                ))
                .build();
            ureq::Agent::config_builder()
                .tls_config(tls)
                .http_status_as_error(false)
                .timeout_global(Some(REQUEST_TIMEOUT))
                .timeout_connect(Some(CONNECT_TIMEOUT))
                .user_agent(concat!("godwit/", env!("CARGO_PKG_VERSION")))
                .build()
                .into()
        });
        let resp = agent
            .post(&t.address)
            .header("X-Godwit-Delivery", id.to_string())
            .send_json(body)
            .map_err(|e| Attempt::Transient(format!("POST {}: {e}", redacted(&t.address))))?;
        let status = resp.status().as_u16();
        match status {
            200..=299 => Ok(()),
            408 | 429 | 500..=599 => Err(Attempt::Transient(format!(
                "POST {}: HTTP {status}",
                redacted(&t.address)
            ))),
            _ => Err(Attempt::Refused(format!(
                "POST {}: HTTP {status}: the receiver refuses the request (check the URL and \
                 what it expects)",
                redacted(&t.address)
            ))),
        }
    }

    #[cfg(feature = "aws")]
    fn sns(&mut self, t: &Target, body: &Value) -> Result<(), Attempt> {
        self.sns.publish(t, body).map_err(|(refused, e)| {
            if refused {
                Attempt::Refused(e)
            } else {
                Attempt::Transient(e)
            }
        })
    }

    #[cfg(not(feature = "aws"))]
    fn sns(&mut self, t: &Target, _body: &Value) -> Result<(), Attempt> {
        Err(Attempt::Transient(format!(
            "SNS {}: this worker was built without the aws world (cargo install --path repl \
             --features aws); another worker may deliver it",
            t.address
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_second_for_about_nine_minutes() {
        // The waits between the ATTEMPTS attempts.
        let b: Vec<u64> = (0..ATTEMPTS - 1).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(b, [1, 2, 4, 8, 16, 32, 64, 128, 256]);
        assert_eq!(b.iter().sum::<u64>(), 511);
    }
}
