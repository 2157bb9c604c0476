//! Delivery: claim due notifications from the store's outbox, send each to its target, record
//! how it went. Retries back off exponentially (1 s, 2 s, 4 s … capped at 5 min) for
//! [`ATTEMPTS`] attempts (about 20 minutes); a target that refuses the request as such (an
//! HTTP 4xx other than 408 and 429: a wrong URL, a missing token) fails at once, since sending
//! it again cannot help.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use godwit_pgstore::PgStore;
use godwit_pgstore::notify::{Delivery, Pending, Target};
use serde_json::Value;

/// Attempts per notification before it is marked failed.
pub const ATTEMPTS: i32 = 10;
/// How long a claim lasts: a deliverer that dies mid-send is replaced after it.
const CLAIM: Duration = Duration::from_secs(60);
/// One request's budget.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Backoff before attempt `attempts + 1`.
fn backoff(attempts: i32) -> Duration {
    Duration::from_secs(1u64 << attempts.clamp(0, 9)).min(Duration::from_secs(300))
}

/// A worker's delivery thread (see the module docs); stops when dropped, after the request in
/// flight (at most [`REQUEST_TIMEOUT`]).
pub struct Deliverer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Deliverer {
    /// Deliver for `holder` every `poll` until dropped.
    pub fn start(store: PgStore, holder: String, poll: Duration) -> Deliverer {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("notify-deliver".into())
            .spawn(move || {
                let mut sender = Sender::default();
                // Said once until it changes: a store that is down is not news every poll.
                let mut said = String::new();
                while !s.load(Ordering::Relaxed) {
                    let sent = match deliver_due_with(&store, &holder, &mut sender) {
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
                    if sent == 0 {
                        super::rx_pause(poll);
                    }
                }
            })
            .expect("spawn the notification delivery thread");
        Deliverer {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Deliverer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Claim and send the notifications due now, once; returns how many were attempted.
pub fn deliver_due(store: &PgStore, holder: &str) -> Result<usize, String> {
    deliver_due_with(store, holder, &mut Sender::default())
}

fn deliver_due_with(store: &PgStore, holder: &str, sender: &mut Sender) -> Result<usize, String> {
    let due = store
        .claim_notifications(holder, 16, CLAIM)
        .map_err(|e| e.to_string())?;
    for n in &due {
        let how = match sender.send(n) {
            Ok(()) => Delivery::Delivered,
            Err(Attempt::Refused(error)) => Delivery::Failed { error },
            Err(Attempt::Transient(error)) if n.attempts + 1 >= ATTEMPTS => Delivery::Failed {
                error: format!("{error} (gave up after {ATTEMPTS} attempts)"),
            },
            Err(Attempt::Transient(error)) => Delivery::Retry {
                error,
                after: backoff(n.attempts),
            },
        };
        store
            .settle_notification(n.id, how)
            .map_err(|e| e.to_string())?;
    }
    Ok(due.len())
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
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(REQUEST_TIMEOUT))
                .user_agent(concat!("godwit/", env!("CARGO_PKG_VERSION")))
                .build()
                .into()
        });
        let resp = agent
            .post(&t.address)
            .header("X-Godwit-Delivery", id.to_string())
            .send_json(body)
            .map_err(|e| Attempt::Transient(format!("POST {}: {e}", t.address)))?;
        let status = resp.status().as_u16();
        match status {
            200..=299 => Ok(()),
            408 | 429 | 500..=599 => Err(Attempt::Transient(format!(
                "POST {}: HTTP {status}",
                t.address
            ))),
            _ => Err(Attempt::Refused(format!(
                "POST {}: HTTP {status}: the receiver refuses the request (check the URL and \
                 what it expects)",
                t.address
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
    fn backoff_doubles_from_a_second_up_to_five_minutes() {
        let b: Vec<u64> = (0..ATTEMPTS).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(b, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
    }
}
