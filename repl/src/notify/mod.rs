//! Notifications: a migration is a maintenance window people must hear about.
//!
//! * [`NotifyFile`] / [`rules`]: the fleet file's `[[notify]]` entries, checked with the rest
//!   of the file (every problem named by its key path) into [`Rule`]s; each cluster's job
//!   carries the targets of its owner ([`targets_for`]), the fleet's own targets go to the
//!   store with the fleet (a wave waiting for approval).
//! * [`RunNotifier`]: a transcript sink of a worker's run that turns what happens into
//!   notifications — a phase entered, a gate closed longer than expected (with its reasons),
//!   an approval wanted, a rollback, the cutover's start and end with the measured write
//!   blackout, the run's end — and hands them to the [`Outbox`] thread, which inserts them in
//!   the store's outbox (`godwit_pgstore::notify`). The run never waits on either.
//! * [`Deliverer`]: every worker's thread that claims due notifications and sends them
//!   (webhook: an HTTP POST of the JSON body; SNS: a Publish), retrying with backoff.
//!
//! docs/fleet.md ("Notifications") has the format and what receivers get.

mod deliver;
#[cfg(feature = "aws")]
mod sns;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use godwit_engine::duration::{format_duration, parse_duration};
use godwit_engine::transcript::{Event, Line, Progress, Sink, Waiting};
use godwit_pgstore::notify::{KINDS, Outgoing, Target};
use godwit_pgstore::{Job, PgStore};
use serde::Deserialize;
use serde_json::{Value, json};

pub use deliver::{Deliverer, deliver_due};

/// One `[[notify]]` entry of the fleet file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyFile {
    /// `https://…`: an HTTP POST of each notification's JSON.
    pub webhook: Option<String>,
    /// `arn:aws:sns:REGION:ACCOUNT:TOPIC`: a Publish to the topic (aws world builds only).
    pub sns: Option<String>,
    /// Only clusters of these owners (default: every cluster, and the fleet's own news).
    #[serde(default)]
    pub owners: Vec<String>,
    /// Only these kinds (default: all; see `godwit_pgstore::notify::KINDS`).
    #[serde(default)]
    pub events: Vec<String>,
    /// Report a gate closed longer than this (default: half the gate's timeout).
    pub gate_closed_after: Option<String>,
}

/// A checked `[[notify]]` entry: its target and whose clusters it hears about.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub target: Target,
    /// Empty: every cluster, and the fleet's own news (waves waiting for approval).
    pub owners: Vec<String>,
}

/// Check the `[[notify]]` entries against the fleet's `owners`; problems are pushed named by
/// their key path (`notify[1].events`), like every other fleet file problem.
pub fn rules(entries: &[NotifyFile], owners: &[&str], problems: &mut Vec<String>) -> Vec<Rule> {
    let mut out = Vec::new();
    for (i, n) in entries.iter().enumerate() {
        let at = format!("notify[{i}]");
        let before = problems.len();
        let (kind, address) = match (&n.webhook, &n.sns) {
            (Some(url), None) => {
                if let Some(why) = webhook_problem(url) {
                    problems.push(format!("{at}.webhook: {url:?} {why}"));
                }
                ("webhook", url.clone())
            }
            (None, Some(arn)) => {
                if let Some(why) = sns_problem(arn) {
                    problems.push(format!("{at}.sns: {arn:?} {why}"));
                }
                ("sns", arn.clone())
            }
            _ => {
                problems.push(format!(
                    "{at}: set exactly one of webhook = \"https://…\" or sns = \
                     \"arn:aws:sns:REGION:ACCOUNT:TOPIC\" (one target per entry)"
                ));
                continue;
            }
        };
        for e in &n.events {
            if !KINDS.contains(&e.as_str()) {
                let hint = godwit_engine::params::suggest(e, KINDS)
                    .map(|k| format!("did you mean {k:?}? "))
                    .unwrap_or_default();
                problems.push(format!(
                    "{at}.events: {e:?} is not a kind of notification ({hint}kinds: {})",
                    KINDS.join(", ")
                ));
            }
        }
        for o in &n.owners {
            if !owners.contains(&o.as_str()) {
                let hint = godwit_engine::params::suggest(o, owners)
                    .map(|k| format!("did you mean {k:?}? "))
                    .unwrap_or_default();
                problems.push(format!(
                    "{at}.owners: no cluster of this fleet has owner {o:?}; {hint}(owners: {})",
                    owners.join(", ")
                ));
            }
        }
        let gate_closed_after_ms = match &n.gate_closed_after {
            None => None,
            Some(t) => match parse_duration(t) {
                Ok(d) if d >= Duration::from_secs(1) => Some(d.as_millis() as i64),
                Ok(_) => {
                    problems.push(format!(
                        "{at}.gate_closed_after: {t:?} is shorter than a second; e.g. \"15m\""
                    ));
                    None
                }
                Err(e) => {
                    problems.push(format!("{at}.gate_closed_after: {e}"));
                    None
                }
            },
        };
        if problems.len() == before {
            out.push(Rule {
                target: Target {
                    kind: kind.into(),
                    address,
                    events: n.events.clone(),
                    gate_closed_after_ms,
                    aws: None,
                },
                owners: n.owners.clone(),
            });
        }
    }
    out
}

fn webhook_problem(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        None => Some(
            "is not an http(s) URL; e.g. webhook = \"https://hooks.example.com/godwit\"".into(),
        ),
        Some(r) if r.is_empty() || r.starts_with('/') => {
            Some("has no host; e.g. webhook = \"https://hooks.example.com/godwit\"".into())
        }
        Some(r) if r.contains(char::is_whitespace) => Some("contains spaces".into()),
        _ => None,
    }
}

fn sns_problem(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.split(':').collect();
    let shape = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "sns"
        && !parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && !parts[5].is_empty();
    if !shape {
        return Some(
            "is not an SNS topic ARN; e.g. sns = \"arn:aws:sns:eu-west-1:123456789012:migrations\""
                .into(),
        );
    }
    if !cfg!(feature = "aws") {
        return Some(
            "needs the aws world, which this godwit was built without: \
             cargo install --path repl --features aws"
                .into(),
        );
    }
    None
}

/// The targets of a cluster owned by `owner`; `None`: the fleet's own (entries without owners).
pub fn targets_for(rules: &[Rule], owner: Option<&str>) -> Vec<Target> {
    rules
        .iter()
        .filter(|r| match owner {
            Some(o) => r.owners.is_empty() || r.owners.iter().any(|x| x == o),
            None => r.owners.is_empty(),
        })
        .map(|r| r.target.clone())
        .collect()
}

/// The body every receiver gets (the store adds its `id` at delivery).
pub fn body(kind: &str, at_ms: i64, who: &Who, summary: String, detail: Value) -> Value {
    json!({
        "kind": kind,
        "at": rfc3339(at_ms),
        "fleet": who.fleet,
        "cluster": who.cluster,
        "owner": who.owner,
        "run_id": who.run_id,
        "summary": summary,
        "detail": detail,
    })
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

/// Whose notification it is.
#[derive(Debug, Clone, Default)]
pub struct Who {
    pub fleet: Option<String>,
    pub cluster: String,
    pub owner: Option<String>,
    pub run_id: Option<String>,
}

/// The thread that inserts notifications in the store's outbox, so that a run's sink only
/// hands them over (a full hand-over queue drops them with a warning: never block the run).
pub struct Outbox {
    hand: Handover,
    /// Closed when the insert thread ends ([`Outbox::finish`] waits for it).
    done: Receiver<()>,
}

/// A sender to the [`Outbox`] thread (a run's notifier holds one).
#[derive(Clone)]
pub struct Handover {
    tx: SyncSender<Vec<Outgoing>>,
}

/// How many hand-overs may wait for the insert thread.
const OUTBOX_QUEUE: usize = 1024;

impl Handover {
    fn send(&self, items: Vec<Outgoing>) {
        if items.is_empty() {
            return;
        }
        match self.tx.try_send(items) {
            Ok(()) => {}
            Err(TrySendError::Full(items)) => crate::out::note(format!(
                "warning: {} notification(s) dropped: the store's outbox is {OUTBOX_QUEUE} hand-overs behind",
                items.len()
            )),
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

impl Outbox {
    pub fn start(store: PgStore) -> Outbox {
        let (tx, rx) = sync_channel::<Vec<Outgoing>>(OUTBOX_QUEUE);
        let (done_tx, done) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("notify-outbox".into())
            .spawn(move || {
                insert_loop(&store, &rx);
                drop(done_tx);
            })
            .expect("spawn the notification outbox thread");
        Outbox {
            hand: Handover { tx },
            done,
        }
    }

    /// A sender for a run's notifier.
    pub fn handle(&self) -> Handover {
        self.hand.clone()
    }

    /// Stop taking notifications and wait (at most `within`) until the ones handed over are
    /// in the store: a worker's last runs' news must not die with the process.
    pub fn finish(self, within: Duration) {
        let Outbox { hand, done } = self;
        drop(hand);
        let _ = done.recv_timeout(within);
    }
}

fn insert_loop(store: &PgStore, rx: &Receiver<Vec<Outgoing>>) {
    while let Ok(items) = rx.recv() {
        // A store hiccup: a few tries, then say what was lost.
        let mut left = 3;
        loop {
            match store.notify(items.clone()) {
                Ok(()) => break,
                Err(_) if left > 1 => {
                    left -= 1;
                    rx_pause(Duration::from_secs(1));
                }
                Err(e) => {
                    crate::out::note(format!(
                        "warning: {} notification(s) lost: the store refused them: {e}",
                        items.len()
                    ));
                    break;
                }
            }
        }
    }
}

/// Sleep without the disallowed thread sleep (clippy.toml).
fn rx_pause(d: Duration) {
    let (_tx, rx) = std::sync::mpsc::channel::<()>();
    let _ = rx.recv_timeout(d);
}

/// A worker's run's notifications (see the module docs).
pub struct RunNotifier {
    who: Who,
    targets: Vec<Target>,
    outbox: Handover,
    state: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    /// Gates reported as closed too long, per target index (reset when the gate passes).
    gates: BTreeSet<(String, usize)>,
    /// Approval waits reported (by the unit waiting and what it waits for).
    approvals: BTreeSet<(String, String)>,
    cutover_started: bool,
    cutover_told: bool,
    rollback_told: bool,
    /// The lines the write blackout is measured from (steps started and completed, undos
    /// completed): `demo::blackout` over them is the figure `godwit show` prints.
    cut: Vec<Line>,
    blackout_ms: Option<i64>,
    /// When each open gate started (the run's clock): a poll's time is its start plus its wait.
    gate_started: BTreeMap<String, i64>,
    /// The run's clock at its last line (virtual in the simulator).
    last_at: i64,
}

impl RunNotifier {
    /// The notifier of `job`'s run, or `None` when nobody listens. `earlier`: the run's
    /// transcript so far when it is resumed (another worker's, maybe): what it already told is
    /// not told again, and the blackout is measured from its start.
    pub fn for_job(job: &Job, outbox: &Outbox, earlier: &[Line]) -> Option<RunNotifier> {
        if job.notify.is_empty() {
            return None;
        }
        let targets = job
            .notify
            .iter()
            .map(|t| {
                let mut t = t.clone();
                if t.kind == "sns" && t.aws.is_none() {
                    t.aws = job.settings.as_ref().map(sns_settings);
                }
                t
            })
            .collect();
        let n = RunNotifier {
            who: Who {
                fleet: job.fleet.clone(),
                cluster: job.cluster.clone(),
                owner: job.owner.clone(),
                run_id: Some(job.run_id.clone()),
            },
            targets,
            outbox: outbox.handle(),
            state: Mutex::new(Seen::default()),
        };
        for l in earlier {
            n.observe(l, false);
        }
        Some(n)
    }

    fn emit(&self, kind: &str, at: i64, summary: String, detail: Value, only: Option<usize>) {
        let b = body(kind, at, &self.who, summary, detail);
        let items = self
            .targets
            .iter()
            .enumerate()
            .filter(|(i, t)| t.wants(kind) && only.is_none_or(|o| o == *i))
            .map(|(_, t)| Outgoing {
                target: t.clone(),
                body: b.clone(),
            })
            .collect();
        self.outbox.send(items);
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The write blackout so far, as `godwit show` measures it; `None` before the fence or while
    /// it lasts.
    fn blackout(&self) -> Option<(i64, String)> {
        match crate::demo::blackout(&self.seen().cut) {
            crate::demo::Blackout::Ended {
                from,
                began,
                to,
                until,
            } => Some((to - from, format!("from {began} to {until}"))),
            _ => None,
        }
    }

    /// Take `line` in; `tell`: notify (a live line) or only remember (an earlier process's).
    fn observe(&self, line: &Line, tell: bool) {
        let c = &self.who.cluster;
        self.seen().last_at = line.at;
        match &line.event {
            Event::GateStarted { name, .. } => {
                self.seen().gate_started.insert(name.clone(), line.at);
            }
            Event::GatePassed { name, .. } => {
                self.seen().gates.retain(|(g, _)| g != name);
            }
            Event::Phase {
                name,
                replaying: false,
            } if tell => self.emit(
                "phase",
                line.at,
                format!("{c}: phase {name}"),
                json!({ "phase": name }),
                None,
            ),
            Event::StepStarted { name } => {
                let ending = crate::demo::SESSION_ENDING_STEPS
                    .iter()
                    .any(|(s, _)| s == name);
                let first = {
                    let mut s = self.seen();
                    s.cut.push(line.clone());
                    let cutover = matches!(name.as_str(), "hold" | "fence") || ending;
                    let first = cutover && !s.cutover_started;
                    s.cutover_started |= cutover;
                    first
                };
                if first && tell {
                    self.emit(
                        "cutover-start",
                        line.at,
                        format!(
                            "{c}: cutover started ({name}): application writes stop until the \
                             route switch"
                        ),
                        json!({ "step": name }),
                        None,
                    );
                }
            }
            Event::StepCompleted { name, .. } => {
                self.seen().cut.push(line.clone());
                if name == "switch-route" {
                    self.cutover_end(line.at, tell, "writes go to Aurora");
                }
            }
            Event::UndoCompleted { .. } => self.seen().cut.push(line.clone()),
            Event::AbortStarted { reason } => {
                let first = !std::mem::replace(&mut self.seen().rollback_told, true);
                if first && tell {
                    self.emit(
                        "rollback",
                        line.at,
                        format!("{c}: rolling back: {reason}"),
                        json!({ "reason": reason }),
                        None,
                    );
                }
            }
            Event::RunFinished { outcome, detail } if tell => {
                // Rolled back after the cutover began: the rollback ended the blackout.
                let started = self.seen().cutover_started;
                if started {
                    self.cutover_end(line.at, tell, "the rollback reopened the source");
                }
                let outcome = serde_json::to_value(outcome).unwrap_or(Value::Null);
                let word = outcome.as_str().unwrap_or("finished").replace('_', " ");
                let blackout = self.seen().blackout_ms;
                self.emit(
                    "finished",
                    line.at,
                    match blackout {
                        Some(b) => format!("{c}: run {word}; write blackout {}", dur(b)),
                        None => format!("{c}: run {word}"),
                    },
                    json!({ "outcome": outcome, "blackout_ms": blackout, "detail": detail }),
                    None,
                );
            }
            _ => {}
        }
    }

    /// `cutover-end`, once, with the blackout `godwit show` would print.
    fn cutover_end(&self, at: i64, tell: bool, how: &str) {
        if self.seen().cutover_told {
            return;
        }
        let Some((ms, span)) = self.blackout() else {
            return;
        };
        {
            let mut s = self.seen();
            s.cutover_told = true;
            s.blackout_ms = Some(ms);
        }
        if tell {
            let c = &self.who.cluster;
            self.emit(
                "cutover-end",
                at,
                format!(
                    "{c}: cutover over: {how}; write blackout {} ({span})",
                    dur(ms)
                ),
                json!({ "blackout_ms": ms, "blackout": span, "how": how }),
                None,
            );
        }
    }
}

/// What an SNS publish needs of a run's aws settings (region, profile, endpoint), and nothing
/// else: the rest (database user, hooks' commands, …) has no business in the outbox.
pub fn sns_settings(settings: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for k in ["region", "profile", "endpoint_url"] {
        if let Some(v) = settings.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    Value::Object(out)
}

/// `stopped`: a run held for a person (the worker's settle), with why.
pub fn held(job: &Job, outbox: &Outbox, why: &str) {
    let who = Who {
        fleet: job.fleet.clone(),
        cluster: job.cluster.clone(),
        owner: job.owner.clone(),
        run_id: Some(job.run_id.clone()),
    };
    let b = body(
        "stopped",
        chrono::Utc::now().timestamp_millis(),
        &who,
        format!(
            "{}: run {} stopped for a person: {why} (`godwit resume {}` or `godwit abort {}`)",
            job.cluster, job.run_id, job.run_id, job.run_id
        ),
        json!({ "why": why }),
    );
    outbox.hand.send(
        job.notify
            .iter()
            .filter(|t| t.wants("stopped"))
            .map(|t| Outgoing {
                target: t.clone(),
                body: b.clone(),
            })
            .collect(),
    );
}

fn dur(ms: i64) -> String {
    format_duration(Duration::from_millis(ms.max(0) as u64))
}

impl Sink for RunNotifier {
    fn line(&self, line: &Line) {
        self.observe(line, true);
    }

    fn progress(&self, p: &Progress) {
        for (i, t) in self.targets.iter().enumerate() {
            if !t.wants("gate-closed") {
                continue;
            }
            let after = t.gate_closed_after_ms.unwrap_or(p.timeout_ms / 2);
            if p.waited_ms < after || !self.seen().gates.insert((p.gate.clone(), i)) {
                continue;
            }
            let c = &self.who.cluster;
            let at = {
                let s = self.seen();
                s.gate_started
                    .get(&p.gate)
                    .map_or(s.last_at, |t| t + p.waited_ms)
            };
            self.emit(
                "gate-closed",
                at,
                format!(
                    "{c}: gate {} closed for {} of its {}: {}",
                    p.gate,
                    dur(p.waited_ms),
                    dur(p.timeout_ms),
                    if p.why.is_empty() {
                        "no reason given".into()
                    } else {
                        p.why.join("; ")
                    }
                ),
                json!({ "gate": p.gate, "waited_ms": p.waited_ms, "timeout_ms": p.timeout_ms,
                        "why": p.why, "polls": p.poll }),
                Some(i),
            );
        }
    }

    fn waiting(&self, w: &Waiting) {
        if w.call != "core::wait_until_approved" {
            return;
        }
        let key = (w.unit.clone().unwrap_or_default(), w.what.clone());
        if !self.seen().approvals.insert(key.clone()) {
            return;
        }
        let c = &self.who.cluster;
        // The wait is on the wall clock even in the simulator; the run's clock stands still.
        let at = self.seen().last_at;
        self.emit(
            "approval",
            at,
            format!("{c}: waiting for {}", w.what),
            json!({ "step": key.0, "timeout_ms": w.timeout_ms }),
            None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_outbox(tx: SyncSender<Vec<Outgoing>>) -> Outbox {
        Outbox {
            hand: Handover { tx },
            done: std::sync::mpsc::channel().1,
        }
    }

    fn notifier(targets: Vec<Target>) -> (RunNotifier, Receiver<Vec<Outgoing>>) {
        let (tx, rx) = sync_channel(64);
        let job = Job {
            run_id: "r1".into(),
            cluster: "orders-db".into(),
            notify: targets,
            owner: Some("orders".into()),
            fleet: Some("shop".into()),
            ..Job::default()
        };
        (
            RunNotifier::for_job(&job, &test_outbox(tx), &[]).expect("targets"),
            rx,
        )
    }

    fn webhook(events: &[&str], after: Option<i64>) -> Target {
        Target {
            kind: "webhook".into(),
            address: "https://x".into(),
            events: events.iter().map(|e| e.to_string()).collect(),
            gate_closed_after_ms: after,
            aws: None,
        }
    }

    fn line(at: i64, event: Event) -> Line {
        Line {
            at,
            seq: None,
            event,
        }
    }

    fn kinds(rx: &Receiver<Vec<Outgoing>>) -> Vec<(String, String)> {
        rx.try_iter()
            .flatten()
            .map(|o| {
                (
                    o.body["kind"].as_str().unwrap().to_string(),
                    o.target.address.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn a_run_says_its_phases_the_cutover_with_its_blackout_and_its_end_once_each() {
        let (n, rx) = notifier(vec![webhook(&[], None)]);
        let step = |name: &str| Event::StepStarted { name: name.into() };
        n.line(&line(
            0,
            Event::Phase {
                name: "preflight".into(),
                replaying: true,
            },
        ));
        n.line(&line(
            1_000,
            Event::Phase {
                name: "replica".into(),
                replaying: false,
            },
        ));
        n.line(&line(2_000, step("hold")));
        n.line(&line(2_100, step("fence")));
        n.line(&line(2_500, step("terminate-app-sessions")));
        n.line(&line(
            9_000,
            Event::StepCompleted {
                name: "switch-route".into(),
                result: Value::Null,
                ms: 5,
            },
        ));
        let got = kinds(&rx);
        let names: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            ["phase", "cutover-start", "cutover-end"],
            "a replayed phase is old news"
        );
        // The blackout as `demo::blackout` counts it: from the sessions' end to the switch.
        assert_eq!(n.seen().blackout_ms, Some(6_500));
    }

    #[test]
    fn a_resumed_run_tells_nothing_twice_and_measures_the_blackout_from_its_start() {
        let step = |at, name: &str| line(at, Event::StepStarted { name: name.into() });
        let earlier = [
            step(2_000, "hold"),
            step(2_500, "terminate-app-sessions"),
            line(
                3_000,
                Event::AbortStarted {
                    reason: "health".into(),
                },
            ),
        ];
        let (tx, rx) = sync_channel(64);
        let job = Job {
            run_id: "r1".into(),
            cluster: "orders-db".into(),
            notify: vec![webhook(&[], None)],
            ..Job::default()
        };
        let n = RunNotifier::for_job(&job, &test_outbox(tx), &earlier).unwrap();
        // The new process replays the rollback's start and undoes the fence and the hold.
        n.line(&line(
            3_100,
            Event::AbortStarted {
                reason: "health".into(),
            },
        ));
        n.line(&line(
            4_000,
            Event::UndoCompleted {
                step: "fence".into(),
            },
        ));
        n.line(&line(
            4_200,
            Event::UndoCompleted {
                step: "hold".into(),
            },
        ));
        n.line(&line(
            4_300,
            Event::RunFinished {
                outcome: godwit_engine::journal::Outcome::RolledBack,
                detail: Value::Null,
            },
        ));
        let got: Vec<Value> = rx.try_iter().flatten().map(|o| o.body).collect();
        let kinds: Vec<&str> = got.iter().map(|b| b["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["cutover-end", "finished"], "{got:#?}");
        // From the sessions' end (an earlier process's line) to the hold's undo.
        assert_eq!(got[0]["detail"]["blackout_ms"], 1_700);
        assert_eq!(got[1]["detail"]["blackout_ms"], 1_700);
    }

    #[test]
    fn a_gate_is_reported_once_past_half_its_timeout_or_the_targets_own_limit() {
        let (n, rx) = notifier(vec![
            webhook(&["gate-closed"], None),
            webhook(&[], Some(1_000)),
        ]);
        n.line(&line(
            0,
            Event::GateStarted {
                name: "validate".into(),
                every: "1s".into(),
                hold: 1,
                timeout: "10s".into(),
            },
        ));
        let poll = |waited_ms| Progress {
            gate: "validate".into(),
            poll: 1,
            waited_ms,
            timeout_ms: 10_000,
            why: vec!["lag 12 s".into()],
        };
        n.progress(&poll(500));
        assert!(kinds(&rx).is_empty());
        n.progress(&poll(1_500));
        n.progress(&poll(2_000));
        assert_eq!(kinds(&rx).len(), 1, "the second target's 1 s, once");
        n.progress(&poll(5_000));
        assert_eq!(kinds(&rx).len(), 1, "the first target's half of 10 s");
        n.line(&line(
            6_000,
            Event::GatePassed {
                name: "validate".into(),
                polls: 6,
                waited: "6s".into(),
                evidence: vec![],
            },
        ));
        n.progress(&poll(5_000));
        assert_eq!(
            kinds(&rx).len(),
            2,
            "a gate closed again after passing is news again"
        );
    }

    #[test]
    fn rfc3339_is_the_civil_utc_time() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_796_515_200_123), "2026-12-06T00:00:00.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    fn entry(webhook: Option<&str>, sns: Option<&str>) -> NotifyFile {
        NotifyFile {
            webhook: webhook.map(String::from),
            sns: sns.map(String::from),
            ..NotifyFile::default()
        }
    }

    #[test]
    fn entries_are_checked_each_problem_named_by_its_place() {
        let mut problems = Vec::new();
        let mut typo = entry(Some("https://hooks.example.com/x"), None);
        typo.events = vec!["cutover-ends".into()];
        typo.owners = vec!["paymnets".into()];
        typo.gate_closed_after = Some("10 parsecs".into());
        let got = rules(
            &[
                entry(None, None),
                entry(Some("ftp://x"), None),
                entry(None, Some("arn:aws:sns:eu-west-1:12:t")),
                typo,
                entry(Some("https://hooks.example.com/ok"), None),
            ],
            &["payments", "orders"],
            &mut problems,
        );
        let all = problems.join("\n");
        for want in [
            "notify[0]: set exactly one of webhook",
            "notify[1].webhook: \"ftp://x\" is not an http(s) URL",
            "notify[2].sns: \"arn:aws:sns:eu-west-1:12:t\" is not an SNS topic ARN",
            "notify[3].events: \"cutover-ends\" is not a kind of notification (did you mean \"cutover-end\"?",
            "notify[3].owners: no cluster of this fleet has owner \"paymnets\"; did you mean \"payments\"?",
            "notify[3].gate_closed_after:",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
        assert_eq!(got.len(), 1, "only the good entry becomes a rule");
        assert_eq!(got[0].target.address, "https://hooks.example.com/ok");
    }

    #[test]
    fn a_cluster_hears_through_its_owners_entries_and_the_fleet_wide_ones() {
        let rule = |a: &str, owners: &[&str]| Rule {
            target: Target {
                kind: "webhook".into(),
                address: a.into(),
                events: vec![],
                gate_closed_after_ms: None,
                aws: None,
            },
            owners: owners.iter().map(|s| s.to_string()).collect(),
        };
        let rules = [
            rule("all", &[]),
            rule("pay", &["payments"]),
            rule("ord", &["orders"]),
        ];
        let names = |o| {
            targets_for(&rules, o)
                .into_iter()
                .map(|t| t.address)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(Some("payments")), ["all", "pay"]);
        assert_eq!(names(None), ["all"]);
    }
}
