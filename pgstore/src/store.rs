//! [`PgStore`]: the `JournalStore` in PostgreSQL, and [`PgWriter`], one run's lease-holding
//! writer.
//!
//! The lease rules (docs/store.md has why they are safe):
//! - `create`/`open` take the run's lease in one statement: free (no holder) or expired by the
//!   **database's** clock, and raise the fencing token. Another live holder is
//!   [`JournalError::Locked`] naming it.
//! - While the writer lives its connection thread renews the lease every third of its duration,
//!   only while it is still live: an expired lease is never revived by its old holder.
//! - Every append is one statement that moves the run's head only `WHERE fencing_token = mine
//!   AND next_seq = mine AND lease_expires > now()`, and inserts the record (and the transcript
//!   lines waiting) only if that moved a row. A writer that lost the lease — its process paused
//!   past the expiry, whether or not another took the run yet — is refused, whatever its own
//!   clock says.
//! - Dropping the writer releases the lease (the next `open` need not wait for the expiry).
//! - The writer also knows on its own when its lease may be about to lapse: three quarters of
//!   it since the last take, renewal or append the store confirmed (counted from before that
//!   statement was sent, by the monotonic clock). It then says so ([`JournalWriter::lapsed`])
//!   and the run stops making world calls, while a quarter of the lease is left before anyone
//!   may take it over.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use godwit_engine::journal::{
    Entry, JournalError, JournalStore, JournalWriter, Loaded, Record, Request, genesis_hash, seal,
    verify_lines,
};

use crate::conn::{Conn, Db, Params, Target, Tick, p};
use crate::schema;

/// How a store behaves; [`Options::default`] is what the CLI uses.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long a run's lease lasts without a heartbeat: how soon another worker may take over
    /// a run whose worker died (the goal: within 30 s).
    pub lease: Duration,
    /// The longest one statement may take before the call fails.
    pub op_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            lease: Duration::from_secs(30),
            op_timeout: Duration::from_secs(10),
        }
    }
}

/// Runs, journals, transcripts, requests, cluster claims and the work queue in PostgreSQL.
/// Clones share one connection for store-level calls; every writer has its own.
#[derive(Clone)]
pub struct PgStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) target: Arc<Target>,
    pub(crate) conn: Conn,
    pub(crate) options: Options,
    /// Files that follow a run ([`PgStore::follow_files`]), by run id.
    follow: Mutex<HashMap<String, Vec<PathBuf>>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("place", &self.inner.target.place)
            .finish_non_exhaustive()
    }
}

/// Who this process is, as lease holders and workers are named: `pid 42 on host (1a2b3c)`. The
/// random part tells apart two processes with one pid on one host name (containers).
pub fn holder_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    // A ULID's last characters are random (monotonic within a millisecond: still unique).
    let id = godwit_engine::run::new_run_id("holder");
    format!(
        "pid {} on {} ({})",
        std::process::id(),
        match host.trim() {
            "" => "unknown host",
            h => h,
        },
        &id[18..26]
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl PgStore {
    /// Connect to the store at `url` and bring its schema up to date. An unreachable store, a
    /// bad URL or a schema newer than this binary is an error naming the URL (without password).
    pub fn connect(url: &str, options: Options) -> Result<PgStore, JournalError> {
        let target = Arc::new(Target::parse(url, options.op_timeout)?);
        let conn = Conn::open(target.clone(), "godwit-store", None)?;
        conn.call(|db| schema::migrate(db).map(drop))?;
        Ok(PgStore {
            inner: Arc::new(Inner {
                target,
                conn,
                options,
                follow: Mutex::default(),
            }),
        })
    }

    /// `postgres://user@host:port/db` (no password), for messages.
    pub fn place(&self) -> &str {
        &self.inner.target.place
    }

    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    /// The schema versions recorded in the store, oldest first.
    pub fn schema_versions(&self) -> Result<Vec<i32>, JournalError> {
        self.inner.conn.call(|db| {
            Ok(db
                .query(
                    "SELECT version FROM godwit.schema_migrations ORDER BY version",
                    vec![],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect())
        })
    }

    fn not_found(&self, run_id: &str) -> JournalError {
        JournalError::NotFound {
            run_id: run_id.into(),
            where_: self.place().to_string(),
        }
    }

    /// Who holds run `run_id`'s lease right now, if anyone (an expired lease holds nothing).
    pub fn holder(&self, run_id: &str) -> Option<String> {
        let id = run_id.to_string();
        self.inner
            .conn
            .call(move |db| {
                Ok(db
                    .query(
                        "SELECT lease_holder FROM godwit.runs
                          WHERE run_id = $1 AND lease_expires > now()",
                        vec![p(id)],
                    )?
                    .first()
                    .and_then(|r| r.get::<_, Option<String>>(0)))
            })
            .ok()
            .flatten()
    }

    /// The run holding `cluster`'s claim, if the claim still stands.
    pub fn cluster_holder(&self, cluster: &str) -> Result<Option<String>, JournalError> {
        let cluster = cluster.to_string();
        self.inner.conn.call(move |db| {
            let rows = db.query(CLAIM_STATE, vec![p(cluster)])?;
            Ok(rows.first().and_then(|r| {
                let holder: String = r.get(0);
                stands(r).then_some(holder)
            }))
        })
    }

    /// Make `files` (a world's state beside the run: the simulator's state and clock, the
    /// world's settings) follow run `run_id`: every append of its next writer in this process
    /// also stores those that changed since its last append, in the same fenced statement, so
    /// the copy in the store always matches the journal. [`PgStore::world_files`] gives them
    /// back to whichever machine continues the run.
    pub fn follow_files(&self, run_id: &str, files: Vec<PathBuf>) {
        self.inner
            .follow
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(run_id.to_string(), files);
    }

    /// The files that follow run `run_id`, as of its last append: `(file name, content)`.
    pub fn world_files(&self, run_id: &str) -> Result<Vec<(String, Vec<u8>)>, JournalError> {
        let id = run_id.to_string();
        self.inner.conn.call(move |db| {
            Ok(db
                .query(
                    "SELECT name, content FROM godwit.world_files WHERE run_id = $1 ORDER BY name",
                    vec![p(id)],
                )?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect())
        })
    }

    /// The transcript lines of a run, in order.
    pub fn transcript_lines(&self, run_id: &str) -> Result<Vec<String>, JournalError> {
        let id = run_id.to_string();
        self.inner.conn.call(move |db| {
            Ok(db
                .query(
                    "SELECT line FROM godwit.transcript WHERE run_id = $1 ORDER BY id",
                    vec![p(id)],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect())
        })
    }

    /// Create run `run_id` holding its lease: the concrete writer (tests pause its heartbeat).
    pub fn create_writer(&self, run_id: &str) -> Result<PgWriter, JournalError> {
        let holder = holder_id();
        let (id, h, lease) = (
            run_id.to_string(),
            holder.clone(),
            ms(self.inner.options.lease),
        );
        let genesis = genesis_hash(run_id);
        let taken_at = Instant::now();
        let rows = self.inner.conn.call(move |db| {
            db.query(
                "INSERT INTO godwit.runs (run_id, head, fencing_token, lease_holder, lease_expires)
                 VALUES ($1, $2, 1, $3, now() + $4::float8 * interval '1 millisecond')
                 ON CONFLICT (run_id) DO NOTHING
                 RETURNING fencing_token",
                vec![p(id), p(genesis), p(h), p(lease)],
            )
        })?;
        let Some(row) = rows.first() else {
            return Err(JournalError::Exists {
                run_id: run_id.into(),
            });
        };
        PgWriter::start(
            self,
            run_id,
            holder,
            row.get(0),
            0,
            genesis_hash(run_id),
            taken_at,
        )
    }

    /// Take run `run_id`'s lease (raising its fencing token) and load its verified journal.
    pub fn open_writer(&self, run_id: &str) -> Result<(Loaded, PgWriter), JournalError> {
        let holder = holder_id();
        let (id, h, lease) = (
            run_id.to_string(),
            holder.clone(),
            ms(self.inner.options.lease),
        );
        let taken_at = Instant::now();
        let taken = self.inner.conn.call(move |db| {
            let rows = db.query(
                "UPDATE godwit.runs
                    SET fencing_token = fencing_token + 1, lease_holder = $2,
                        lease_expires = now() + $3::float8 * interval '1 millisecond'
                  WHERE run_id = $1 AND (lease_holder IS NULL OR lease_expires <= now())
              RETURNING fencing_token",
                vec![p(id.clone()), p(h), p(lease)],
            )?;
            if let Some(r) = rows.first() {
                return Ok(Ok(r.get::<_, i64>(0)));
            }
            let rows = db.query(
                "SELECT lease_holder, to_char(lease_expires - now(), 'FMSS.MS') \
                   FROM godwit.runs WHERE run_id = $1",
                vec![p(id)],
            )?;
            Ok(Err(rows.first().map(|r| {
                (r.get::<_, Option<String>>(0), r.get::<_, Option<String>>(1))
            })))
        })?;
        let token = match taken {
            Ok(t) => t,
            Err(None) => return Err(self.not_found(run_id)),
            Err(Some((holder, left))) => {
                return Err(JournalError::Locked {
                    run_id: run_id.into(),
                    holder: format!(
                        "{}, lease for {} s more",
                        holder.unwrap_or_else(|| "unknown".into()),
                        left.unwrap_or_else(|| "?".into())
                    ),
                });
            }
        };
        let writer_or_release = |loaded: Result<Loaded, JournalError>| match loaded {
            Ok(l) => Ok(l),
            Err(e) => {
                let _ = self.release(run_id, token);
                Err(e)
            }
        };
        let loaded = writer_or_release(self.load(run_id))?;
        let (next, prev) = match loaded.records.last() {
            Some(r) => (r.seq + 1, r.hash.clone()),
            None => (0, genesis_hash(run_id)),
        };
        let writer = PgWriter::start(self, run_id, holder, token, next, prev, taken_at)?;
        Ok((loaded, writer))
    }

    fn release(&self, run_id: &str, token: i64) -> Result<(), JournalError> {
        let id = run_id.to_string();
        self.inner
            .conn
            .call(move |db| db.query(RELEASE, vec![p(id), p(token)]).map(drop))
    }

    /// Read and verify a run's journal from one snapshot: the hash chain, the run's head
    /// (records removed from the end), and the transcript's references.
    fn load(&self, run_id: &str) -> Result<Loaded, JournalError> {
        let id = run_id.to_string();
        let (head, lines, referenced) = self.inner.conn.call(move |db| {
            db.batch("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
            let out = (|| {
                let head = db.query(
                    "SELECT next_seq, head FROM godwit.runs WHERE run_id = $1",
                    vec![p(id.clone())],
                )?;
                let lines = db.query(
                    "SELECT line FROM godwit.journal WHERE run_id = $1 ORDER BY seq",
                    vec![p(id.clone())],
                )?;
                let referenced = db.query(
                    "SELECT max(seq) FROM godwit.transcript WHERE run_id = $1",
                    vec![p(id)],
                )?;
                Ok((
                    head.first()
                        .map(|r| (r.get::<_, i64>(0), r.get::<_, String>(1))),
                    lines
                        .iter()
                        .map(|r| r.get::<_, String>(0))
                        .collect::<Vec<_>>(),
                    referenced.first().and_then(|r| r.get::<_, Option<i64>>(0)),
                ))
            })();
            let _ = db.batch("COMMIT");
            out
        })?;
        let Some((next_seq, head)) = head else {
            return Err(self.not_found(run_id));
        };
        let records = verify_lines(run_id, lines.iter().map(String::as_str))?;
        let last = records.last();
        let end = || last.map_or("nothing".into(), |r: &Record| r.seq.to_string());
        let truncated = |why: String| JournalError::Tampered {
            run_id: run_id.into(),
            seq: last.map_or(0, |r| r.seq + 1),
            what: "end of journal".into(),
            why,
        };
        let head_matches = match last {
            Some(r) => r.hash == head && r.seq + 1 == next_seq as u64,
            None => next_seq == 0 && head == genesis_hash(run_id),
        };
        if !head_matches {
            return Err(truncated(format!(
                "the run's head says {next_seq} records but the journal ends at {}: records \
                 were removed from the end (truncated) or the head was edited",
                end()
            )));
        }
        if let Some(referenced) = referenced
            && last.is_none_or(|r| referenced as u64 > r.seq)
        {
            return Err(truncated(format!(
                "the transcript refers to record {referenced} but the journal ends at {}: \
                 records were removed from the end (truncated)",
                end()
            )));
        }
        Ok(Loaded {
            records,
            torn_tail: None,
        })
    }
}

/// The claim on a cluster with what decides whether it stands (see `stands`).
const CLAIM_STATE: &str = "SELECT c.run_id, r.run_id IS NOT NULL, coalesce(r.began, false),
        coalesce(r.finished, false),
        coalesce(r.lease_holder IS NOT NULL AND r.lease_expires > now(), false)
   FROM godwit.clusters c LEFT JOIN godwit.runs r ON r.run_id = c.run_id
  WHERE c.cluster = $1";

/// Whether a claim row of [`CLAIM_STATE`] stands: the same rule as the file store's
/// (`journal::claim_stands`): a run that began and has not finished, or a start that has not
/// begun but is being driven (its lease is live). A run that is gone holds nothing.
fn stands(r: &tokio_postgres::Row) -> bool {
    let (exists, began, finished, driven): (bool, bool, bool, bool) =
        (r.get(1), r.get(2), r.get(3), r.get(4));
    exists && ((began && !finished) || (!began && driven))
}

const RELEASE: &str = "UPDATE godwit.runs SET lease_holder = NULL, lease_expires = NULL
  WHERE run_id = $1 AND fencing_token = $2";

/// The append: one statement, one round trip, atomic. The head moves only under the current
/// fencing token and sequence number; the record and the waiting transcript lines are written
/// only if it moved.
const APPEND: &str = "WITH fence AS (
    UPDATE godwit.runs
       SET next_seq = $3 + 1, head = $4, began = began OR $6, finished = finished OR $7,
           cluster = coalesce($8, cluster),
           lease_expires = now() + $9::float8 * interval '1 millisecond'
     WHERE run_id = $1 AND fencing_token = $2 AND next_seq = $3 AND lease_expires > now()
 RETURNING run_id
), lines AS (
    INSERT INTO godwit.transcript (run_id, seq, line)
    SELECT fence.run_id, t.s, t.l FROM fence, unnest($10::bigint[], $11::text[]) AS t(s, l)
), files AS (
    INSERT INTO godwit.world_files (run_id, name, content, token)
    SELECT fence.run_id, f.n, f.c, $2 FROM fence, unnest($13::text[], $14::bytea[]) AS f(n, c)
    ON CONFLICT (run_id, name) DO UPDATE SET content = excluded.content, token = excluded.token
)
INSERT INTO godwit.journal (run_id, seq, line, written_by, token)
SELECT run_id, $3, $5, $12, $2 FROM fence
RETURNING seq";

const HEARTBEAT: &str = "UPDATE godwit.runs
    SET lease_expires = now() + $3::float8 * interval '1 millisecond'
  WHERE run_id = $1 AND fencing_token = $2 AND lease_expires > now()
RETURNING 1";

const FLUSH: &str = "INSERT INTO godwit.transcript (run_id, seq, line)
SELECT $1, t.s, t.l FROM unnest($3::bigint[], $4::text[]) AS t(s, l)
 WHERE EXISTS (SELECT 1 FROM godwit.runs WHERE run_id = $1 AND fencing_token = $2)";

/// Record a confirmed renewal sent at `sent`: never moves back (an append queued behind a
/// heartbeat was sent before it and confirmed after).
fn renew(renewed: &Mutex<Instant>, sent: Instant) {
    let mut at = renewed.lock().unwrap_or_else(|e| e.into_inner());
    *at = (*at).max(sent);
}

/// Transcript lines not yet written: they go with the next append, a heartbeat, or the drop.
type Pending = Arc<Mutex<Vec<(Option<i64>, String)>>>;

/// One run's writer: holds the lease (renewed from its connection thread) and appends under
/// its fencing token.
pub struct PgWriter {
    conn: Conn,
    run_id: String,
    holder: String,
    token: i64,
    next_seq: u64,
    prev: String,
    lease: Duration,
    pending: Pending,
    paused: Arc<AtomicBool>,
    /// When the last confirmed take or renewal of the lease was sent: the lease lasts at least
    /// `lease` from then.
    renewed: Arc<Mutex<Instant>>,
    /// Files following the run, with the content last stored. Compared by content, not by
    /// length and mtime: a file rewritten with the same length within one tick of a coarse
    /// file-system clock (a simulated world's `sim.now` always has the same length) keeps its
    /// signature, and the store would pair a newer journal with an older world.
    files: Vec<(PathBuf, Option<Vec<u8>>)>,
}

impl std::fmt::Debug for PgWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgWriter")
            .field("run_id", &self.run_id)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

fn take_lines(pending: &Pending) -> (Vec<Option<i64>>, Vec<String>) {
    let lines = std::mem::take(&mut *pending.lock().unwrap_or_else(|e| e.into_inner()));
    lines.into_iter().unzip()
}

fn flush(db: &mut Db, run_id: &str, token: i64, pending: &Pending) -> Result<(), JournalError> {
    let (seqs, lines) = take_lines(pending);
    if lines.is_empty() {
        return Ok(());
    }
    db.query(
        FLUSH,
        vec![p(run_id.to_string()), p(token), p(seqs), p(lines)],
    )
    .map(drop)
}

impl PgWriter {
    fn start(
        store: &PgStore,
        run_id: &str,
        holder: String,
        token: i64,
        next_seq: u64,
        prev: String,
        taken_at: Instant,
    ) -> Result<PgWriter, JournalError> {
        let lease = store.inner.options.lease;
        let pending: Pending = Arc::default();
        let paused = Arc::new(AtomicBool::new(false));
        let renewed = Arc::new(Mutex::new(taken_at));
        let tick: Tick = {
            let (id, pending, paused, renewed) = (
                run_id.to_string(),
                pending.clone(),
                paused.clone(),
                renewed.clone(),
            );
            Box::new(move |db: &mut Db| {
                if paused.load(Ordering::SeqCst) {
                    return;
                }
                // A lost lease is not acted on here: the next append is refused by the fence,
                // which is the one check that cannot race; the Host stops world calls before
                // (`lapsed`) when renewals stop being confirmed.
                let sent = Instant::now();
                if let Ok(rows) = db.query(HEARTBEAT, vec![p(id.clone()), p(token), p(ms(lease))])
                    && !rows.is_empty()
                {
                    renew(&renewed, sent);
                }
                let _ = flush(db, &id, token, &pending);
            })
        };
        let conn = match Conn::open(
            store.inner.target.clone(),
            "godwit-lease",
            Some((lease / 3, tick)),
        ) {
            Ok(c) => c,
            Err(e) => {
                let _ = store.release(run_id, token);
                return Err(e);
            }
        };
        let files = store
            .inner
            .follow
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(run_id)
            .map(|f| f.iter().map(|p| (p.clone(), None)).collect())
            .unwrap_or_default();
        Ok(PgWriter {
            conn,
            run_id: run_id.into(),
            holder,
            token,
            next_seq,
            prev,
            lease,
            pending,
            paused,
            renewed,
            files,
        })
    }

    /// The fencing token this writer appends under.
    pub fn token(&self) -> i64 {
        self.token
    }

    /// This writer's holder id.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Stop (or restart) renewing the lease: what a SIGSTOPped process looks like to the
    /// store. For tests.
    pub fn pause_heartbeat(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
    }
}

impl JournalWriter for PgWriter {
    /// Three quarters of the lease since the last confirmed renewal (renewals come every
    /// third): two in a row were missed, and the next is late — the store unreachable, or this
    /// process paused. The quarter left covers a world call already under way; a renewal
    /// merely slowed by a busy machine is not mistaken for a loss.
    fn lapsed(&self) -> Option<JournalError> {
        let since = self
            .renewed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed();
        (since >= self.lease * 3 / 4).then(|| JournalError::Locked {
            run_id: self.run_id.clone(),
            holder: format!(
                "nobody yet; this process ({}) last renewed its lease {:.1} s ago and it \
                 lasts {:.1} s (the store unreachable, or the process paused): it stops acting \
                 on the world before another worker may take the run over",
                self.holder,
                since.as_secs_f64(),
                self.lease.as_secs_f64()
            ),
        })
    }

    fn append(&mut self, entry: &Entry) -> Result<u64, JournalError> {
        let (record, line) = seal(self.next_seq, &self.prev, entry)?;
        let (began, finished, cluster) = match entry {
            Entry::RunStarted { cluster, .. } => (true, false, Some(cluster.clone())),
            Entry::RunFinished { .. } => (false, true, None),
            _ => (false, false, None),
        };
        let (seqs, lines) = take_lines(&self.pending);
        // Followed files whose content changed since the last append (a missing one is
        // skipped).
        let mut changed = Vec::new();
        for (i, (path, stored)) in self.files.iter().enumerate() {
            let Ok(bytes) = std::fs::read(path) else {
                continue;
            };
            if stored.as_deref() != Some(bytes.as_slice()) {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                changed.push((i, name, bytes));
            }
        }
        let names: Vec<String> = changed.iter().map(|c| c.1.clone()).collect();
        let contents: Vec<Vec<u8>> = changed.iter().map(|c| c.2.clone()).collect();
        let params: Params = vec![
            p(self.run_id.clone()),
            p(self.token),
            p(record.seq as i64),
            p(record.hash.clone()),
            p(line),
            p(began),
            p(finished),
            p(cluster),
            p(ms(self.lease)),
            p(seqs),
            p(lines),
            p(self.holder.clone()),
            p(names),
            p(contents),
        ];
        let (id, token) = (self.run_id.clone(), self.token);
        let sent = Instant::now();
        let outcome = self.conn.call(move |db| {
            if !db.query(APPEND, params)?.is_empty() {
                return Ok(None);
            }
            let rows = db.query(
                "SELECT fencing_token, lease_holder, next_seq, lease_expires <= now()
                   FROM godwit.runs WHERE run_id = $1",
                vec![p(id)],
            )?;
            Ok(Some(rows.first().map(|r| {
                (
                    r.get::<_, i64>(0),
                    r.get::<_, Option<String>>(1),
                    r.get::<_, i64>(2),
                    r.get::<_, Option<bool>>(3).unwrap_or(true),
                )
            })))
        })?;
        match outcome {
            None => {
                // The append renewed the lease too.
                renew(&self.renewed, sent);
                self.prev = record.hash;
                self.next_seq += 1;
                for (i, _, bytes) in changed {
                    self.files[i].1 = Some(bytes);
                }
                Ok(record.seq)
            }
            Some(None) => Err(JournalError::NotFound {
                run_id: self.run_id.clone(),
                where_: "the PostgreSQL store (it was discarded while this writer held it)".into(),
            }),
            Some(Some((now_token, holder, _, _))) if now_token != token => {
                Err(JournalError::Locked {
                    run_id: self.run_id.clone(),
                    holder: format!(
                        "{}; this process ({}) lost its lease — fencing token {token} is stale, \
                         the run is at {now_token} — and may not write to it again",
                        holder.unwrap_or_else(|| "no holder now".into()),
                        self.holder
                    ),
                })
            }
            Some(Some((_, _, _, true))) => Err(JournalError::Locked {
                run_id: self.run_id.clone(),
                holder: format!(
                    "nobody yet; this process ({}) lost its lease — it expired before this \
                     append (the process was paused or cut off from the store longer than the \
                     lease) — and may not write to it again",
                    self.holder
                ),
            }),
            Some(Some((_, _, next, _))) => Err(JournalError::Tampered {
                run_id: self.run_id.clone(),
                seq: self.next_seq,
                what: "append".into(),
                why: format!(
                    "the store's head is at record {next} where this writer expected {}: \
                     the run was written outside its lease",
                    self.next_seq
                ),
            }),
        }
    }

    fn transcript(&mut self, line: &str) {
        // The line's own `seq` (the journal record current when it was written), for the
        // truncation check on read.
        let seq = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("seq").and_then(serde_json::Value::as_i64));
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((seq, line.to_string()));
    }
}

impl Drop for PgWriter {
    fn drop(&mut self) {
        let (id, token, pending) = (self.run_id.clone(), self.token, self.pending.clone());
        // Best effort: a failed release only means the next holder waits for the expiry.
        let _ = self.conn.call(move |db| {
            let _ = flush(db, &id, token, &pending);
            db.query(RELEASE, vec![p(id), p(token)]).map(drop)
        });
    }
}

impl JournalStore for PgStore {
    fn create(&self, run_id: &str) -> Result<Box<dyn JournalWriter>, JournalError> {
        Ok(Box::new(self.create_writer(run_id)?))
    }

    fn open(&self, run_id: &str) -> Result<(Loaded, Box<dyn JournalWriter>), JournalError> {
        let (loaded, w) = self.open_writer(run_id)?;
        Ok((loaded, Box::new(w)))
    }

    fn read(&self, run_id: &str) -> Result<Loaded, JournalError> {
        self.load(run_id)
    }

    fn list(&self) -> Result<Vec<String>, JournalError> {
        let mut ids: Vec<String> = self.inner.conn.call(|db| {
            Ok(db
                .query("SELECT run_id FROM godwit.runs", vec![])?
                .iter()
                .map(|r| r.get(0))
                .collect())
        })?;
        ids.sort_unstable_by(|a, b| {
            godwit_engine::run::run_order(b).cmp(&godwit_engine::run::run_order(a))
        });
        Ok(ids)
    }

    fn discard(&self, run_id: &str) -> Result<(), JournalError> {
        let id = run_id.to_string();
        self.inner.conn.call(move |db| {
            // Never a run someone drives: a worker that took the job while the run's creator
            // was paused, and then discards, must not pull the run from under its creator
            // if that one woke up first and holds a live lease again.
            db.query(
                "DELETE FROM godwit.runs WHERE run_id = $1 AND NOT began
                    AND (lease_holder IS NULL OR lease_expires <= now())",
                vec![p(id)],
            )
            .map(drop)
        })
    }

    fn claim_cluster(&self, cluster: &str, run_id: &str) -> Result<(), JournalError> {
        let (c, id) = (cluster.to_string(), run_id.to_string());
        let busy = self.inner.conn.call(move |db| {
            db.transaction(|db| {
                let inserted = db.query(
                    "INSERT INTO godwit.clusters (cluster, run_id) VALUES ($1, $2)
                     ON CONFLICT (cluster) DO NOTHING RETURNING 1",
                    vec![p(c.clone()), p(id.clone())],
                )?;
                if !inserted.is_empty() {
                    return Ok(None);
                }
                // The row exists: lock it, so concurrent claims decide one after another.
                db.query(
                    "SELECT 1 FROM godwit.clusters WHERE cluster = $1 FOR UPDATE",
                    vec![p(c.clone())],
                )?;
                let rows = db.query(CLAIM_STATE, vec![p(c.clone())])?;
                let row = rows.first().expect("locked above");
                let holder: String = row.get(0);
                if holder == id {
                    return Ok(None);
                }
                if stands(row) {
                    return Ok(Some(holder));
                }
                db.query(
                    "UPDATE godwit.clusters SET run_id = $2, claimed_at = now() WHERE cluster = $1",
                    vec![p(c), p(id)],
                )?;
                Ok(None)
            })
        })?;
        match busy {
            None => Ok(()),
            Some(holder) => Err(JournalError::ClusterBusy {
                cluster: cluster.into(),
                holder,
            }),
        }
    }

    fn release_cluster(&self, cluster: &str, run_id: &str) -> Result<(), JournalError> {
        let (c, id) = (cluster.to_string(), run_id.to_string());
        self.inner.conn.call(move |db| {
            db.query(
                "DELETE FROM godwit.clusters WHERE cluster = $1 AND run_id = $2",
                vec![p(c), p(id)],
            )
            .map(drop)
        })
    }

    fn request(&self, run_id: &str, request: &Request) -> Result<(), JournalError> {
        let body = serde_json::to_string(request).map_err(|e| JournalError::Io(e.to_string()))?;
        let id = run_id.to_string();
        let inserted = self.inner.conn.call(move |db| {
            db.query(
                "INSERT INTO godwit.requests (run_id, body)
                 SELECT run_id, $2 FROM godwit.runs WHERE run_id = $1 RETURNING 1",
                vec![p(id), p(body)],
            )
        })?;
        if inserted.is_empty() {
            return Err(self.not_found(run_id));
        }
        Ok(())
    }

    fn requests(&self, run_id: &str) -> Result<Vec<Request>, JournalError> {
        let id = run_id.to_string();
        let bodies: Vec<String> = self.inner.conn.call(move |db| {
            Ok(db
                .query(
                    "SELECT body FROM godwit.requests WHERE run_id = $1 ORDER BY id",
                    vec![p(id)],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect())
        })?;
        Ok(bodies
            .iter()
            .filter_map(|b| serde_json::from_str(b).ok())
            .collect())
    }
}

/// One cluster's newest run as the fleet view lists it, from one query over the store: no
/// journal is read whole (a run's page reads and verifies its own).
#[derive(Debug, Clone, serde::Serialize)]
pub struct LatestRun {
    pub cluster: String,
    pub run_id: String,
    /// `succeeded`, `rolled-back`, `running`, `rolling-back`, `stopped`, `rollback-stopped`,
    /// `not begun` — `godwit show`'s words, from the last record, the lease and whether an
    /// abort began.
    pub status: String,
    /// Who drives it now (a live lease).
    pub driven_by: Option<String>,
    /// The last record's kind and unit (`step-completed promote`).
    pub last: String,
}

impl PgStore {
    /// Every cluster's newest run (by creation), in one statement.
    pub fn latest_runs(&self) -> Result<Vec<LatestRun>, JournalError> {
        self.inner.conn.call(|db| {
            let rows = db.query(
                "SELECT DISTINCT ON (r.cluster) r.cluster, r.run_id, r.began, r.finished, \
                        CASE WHEN r.lease_expires > now() THEN r.lease_holder END, \
                        (SELECT j.line FROM godwit.journal j WHERE j.run_id = r.run_id \
                          ORDER BY j.seq DESC LIMIT 1), \
                        EXISTS (SELECT 1 FROM godwit.journal j WHERE j.run_id = r.run_id \
                                  AND j.line LIKE '%\"type\":\"abort-started\"%') \
                   FROM godwit.runs r WHERE r.cluster IS NOT NULL \
                  ORDER BY r.cluster, r.created_at DESC, r.run_id DESC",
                vec![],
            )?;
            Ok(rows
                .iter()
                .map(|r| {
                    let began: bool = r.get(2);
                    let finished: bool = r.get(3);
                    let holder: Option<String> = r.get(4);
                    let line: Option<String> = r.get(5);
                    let aborting: bool = r.get(6);
                    let entry = line
                        .and_then(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
                        .map(|v| v["entry"].clone())
                        .unwrap_or_default();
                    let kind = entry["type"].as_str().unwrap_or_default().to_string();
                    let unit = entry["name"]
                        .as_str()
                        .or(entry["step"].as_str())
                        .unwrap_or_default();
                    let status = match (began, finished, holder.is_some(), aborting) {
                        (false, _, _, _) => "not begun",
                        (_, true, _, _) if entry["outcome"] == "succeeded" => "succeeded",
                        (_, true, _, _) => "rolled-back",
                        (_, false, true, false) => "running",
                        (_, false, true, true) => "rolling-back",
                        (_, false, false, false) => "stopped",
                        (_, false, false, true) => "rollback-stopped",
                    };
                    LatestRun {
                        cluster: r.get(0),
                        run_id: r.get(1),
                        status: status.to_string(),
                        driven_by: holder,
                        last: format!("{kind} {unit}").trim().to_string(),
                    }
                })
                .collect())
        })
    }
}
