//! Time and waiting. Every wait in a run goes through a [`Clock`], so the simulator can run hours
//! of virtual time in milliseconds, and through a [`Cancel`], so Ctrl-C ends a wait at once.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, the one time unit inside the engine.
pub type Millis = i64;

/// Where a run gets its time from.
pub trait Clock: Send + Sync {
    /// Current time in milliseconds since the epoch.
    fn now_ms(&self) -> Millis;
    /// Wait `d`, or until cancelled. Returns `false` when cancelled.
    fn sleep(&self, d: Duration, cancel: &Cancel) -> bool;
    /// True for the simulator's clock: transcripts then show virtual times, which are stable.
    fn is_virtual(&self) -> bool;
    /// True when the clock's time is saved with its world and restored with it (a persistent
    /// simulated world): a resume then finds it at or past the journal's last record, and one
    /// behind it means the world is older than the run.
    fn is_kept(&self) -> bool {
        false
    }
}

/// The machine's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Millis {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as Millis)
            .unwrap_or(0)
    }

    fn sleep(&self, d: Duration, cancel: &Cancel) -> bool {
        !cancel.wait_timeout(d)
    }

    fn is_virtual(&self) -> bool {
        false
    }
}

type AdvanceHook = Box<dyn Fn(Millis, Millis) + Send + Sync>;

/// A virtual clock: `sleep` advances time instantly. Observers (the simulator) are told of every
/// advance so the modelled world can move forward to the new time.
pub struct VirtualClock {
    now: AtomicI64,
    hooks: Mutex<Vec<AdvanceHook>>,
    kept: AtomicBool,
}

impl std::fmt::Debug for VirtualClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualClock")
            .field("now", &self.now_ms())
            .finish()
    }
}

impl VirtualClock {
    pub fn new(start_ms: Millis) -> Self {
        VirtualClock {
            now: AtomicI64::new(start_ms),
            hooks: Mutex::new(Vec::new()),
            kept: AtomicBool::new(false),
        }
    }

    /// Its time is saved with its world and restored with it ([`Clock::is_kept`]).
    pub fn mark_kept(&self) {
        self.kept.store(true, Ordering::SeqCst);
    }

    /// Call `hook(from, to)` after every advance.
    pub fn on_advance(&self, hook: impl Fn(Millis, Millis) + Send + Sync + 'static) {
        self.hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(hook));
    }

    /// Move time forward by `d` (never backwards).
    pub fn advance(&self, d: Duration) {
        // Saturating: time past the end of `i64` milliseconds stays at the end, it does not
        // wrap to 1677 (durations from runbooks are bounded long before that).
        let ms = Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX);
        let step = |n: Millis| Some(n.saturating_add(ms));
        let from = self
            .now
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, step)
            .unwrap_or_else(|n| n);
        let to = from.saturating_add(ms);
        for hook in self.hooks.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            hook(from, to);
        }
    }
}

impl Clock for VirtualClock {
    fn now_ms(&self) -> Millis {
        self.now.load(Ordering::SeqCst)
    }

    fn sleep(&self, d: Duration, cancel: &Cancel) -> bool {
        if cancel.is_cancelled() {
            return false;
        }
        self.advance(d);
        true
    }

    fn is_virtual(&self) -> bool {
        true
    }

    fn is_kept(&self) -> bool {
        self.kept.load(Ordering::SeqCst)
    }
}

/// Cooperative cancellation shared by a run's waits, its primitives (sync and async) and the
/// Rhai progress callback.
#[derive(Clone, Default)]
pub struct Cancel {
    inner: Arc<CancelInner>,
}

#[derive(Default)]
struct CancelInner {
    flag: AtomicBool,
    /// Why the flag is set: [`WHY_INTERRUPT`] (the operator; final) or [`WHY_WAKE`] (the run
    /// woke its own wait to act on an abort request; [`Cancel::take_wake`] clears it).
    why: AtomicU8,
    lock: Mutex<()>,
    cond: Condvar,
    notify: tokio::sync::Notify,
}

const WHY_INTERRUPT: u8 = 1;
const WHY_WAKE: u8 = 2;

impl std::fmt::Debug for Cancel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cancel")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    /// The operator interrupted: every wait ends, for good.
    pub fn cancel(&self) {
        self.inner.why.store(WHY_INTERRUPT, Ordering::SeqCst);
        self.raise();
    }

    /// End the current wait like [`Cancel::cancel`], but only to let the run act on something
    /// (an abort requested by another process between gate polls); undone by
    /// [`Cancel::take_wake`]. An interrupt already raised, or raised meanwhile, wins.
    pub fn wake(&self) {
        if self
            .inner
            .why
            .compare_exchange(0, WHY_WAKE, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            self.raise();
        }
    }

    /// If the flag was raised by [`Cancel::wake`] and not by an interrupt, lower it and say so.
    pub fn take_wake(&self) -> bool {
        if self
            .inner
            .why
            .compare_exchange(WHY_WAKE, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return false;
        }
        self.inner.flag.store(false, Ordering::SeqCst);
        // An interrupt between the two stores must not be lost.
        if self.inner.why.load(Ordering::SeqCst) == WHY_INTERRUPT {
            self.inner.flag.store(true, Ordering::SeqCst);
            return false;
        }
        true
    }

    fn raise(&self) {
        self.inner.flag.store(true, Ordering::SeqCst);
        let _guard = self.inner.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.inner.cond.notify_all();
        self.inner.notify.notify_waiters();
    }

    pub fn is_cancelled(&self) -> bool {
        self.inner.flag.load(Ordering::SeqCst)
    }

    /// Block up to `d`; returns `true` if cancelled (before or during the wait).
    pub fn wait_timeout(&self, d: Duration) -> bool {
        let guard = self.inner.lock.lock().unwrap_or_else(|e| e.into_inner());
        let (_guard, _) = self
            .inner
            .cond
            .wait_timeout_while(guard, d, |_| !self.is_cancelled())
            .unwrap_or_else(|e| e.into_inner());
        self.is_cancelled()
    }

    /// Resolves when cancelled (for `select!` in async primitives).
    pub async fn cancelled(&self) {
        loop {
            let notified = self.inner.notify.notified();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

/// RFC 3339 UTC rendering of a millisecond timestamp, e.g. `2026-11-22T05:30:12Z`.
pub fn format_timestamp(ms: Millis) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_render_in_utc() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_timestamp(1_795_325_412_000), "2026-11-22T05:30:12Z");
        assert_eq!(format_timestamp(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn virtual_clock_advances_and_notifies() {
        let clock = Arc::new(VirtualClock::new(1_000));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        clock.on_advance(move |a, b| s.lock().unwrap().push((a, b)));
        assert!(clock.sleep(Duration::from_secs(30), &Cancel::new()));
        assert_eq!(clock.now_ms(), 31_000);
        assert_eq!(*seen.lock().unwrap(), vec![(1_000, 31_000)]);
    }

    #[test]
    fn a_wake_ends_a_wait_and_is_taken_back_but_an_interrupt_is_not() {
        let cancel = Cancel::new();
        cancel.wake();
        assert!(!SystemClock.sleep(Duration::from_secs(60), &cancel));
        assert!(cancel.take_wake());
        assert!(!cancel.is_cancelled());
        cancel.wake();
        cancel.cancel();
        assert!(!cancel.take_wake(), "the interrupt wins");
        assert!(cancel.is_cancelled());
    }

    #[test]
    fn cancel_interrupts_system_sleep() {
        let cancel = Cancel::new();
        let c = cancel.clone();
        let t = std::thread::spawn(move || SystemClock.sleep(Duration::from_secs(60), &c));
        cancel.cancel();
        assert!(!t.join().unwrap(), "sleep must report cancellation");
    }
}
