//! The busy limit: how long a runbook may compute without calling a primitive or waiting.
//!
//! Rhai's operations limit ends an endless loop, but only after the operations are spent: with
//! the default of 200 M, `loop {}` ran for 126 s in a debug build before it stopped (issue 19),
//! and a loop whose operations are slow (each `push` onto a long array re-measures the whole
//! array against the size limits) stops far later than that. Wall time spent *computing* is the
//! measure that matters to an operator, and no runbook legitimately computes for long between
//! two calls to the world: the standard runbook's longest stretch is milliseconds.
//!
//! The meter restarts whenever the run waits (every sleep goes through the run's clock, which
//! [`MeteredClock`] wraps) and whenever a primitive call ends (the [`Host`](crate::Host) reports
//! it); the progress callback reads it every few thousand operations.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::clock::{Cancel, Clock, Millis};

/// Termination marker of the busy limit (explained by `Limits::explain`).
pub(crate) const TERM_BUSY: &str = "godwit:busy";

/// When the script last waited or touched the world.
#[derive(Debug)]
pub(crate) struct BusyMeter {
    since: Mutex<Instant>,
}

impl Default for BusyMeter {
    fn default() -> Self {
        BusyMeter {
            since: Mutex::new(Instant::now()),
        }
    }
}

impl BusyMeter {
    /// The script waited or a primitive call ended: the computing stretch starts again.
    pub(crate) fn restart(&self) {
        *self.since.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// How long the script has been computing since then.
    pub(crate) fn busy_for(&self) -> Duration {
        self.since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
    }
}

/// The run's clock, restarting the busy meter after every sleep (virtual sleeps too: in the
/// simulator hours pass in no time, and they are waits all the same).
pub(crate) struct MeteredClock {
    pub inner: std::sync::Arc<dyn Clock>,
    pub meter: std::sync::Arc<BusyMeter>,
}

impl Clock for MeteredClock {
    fn now_ms(&self) -> Millis {
        self.inner.now_ms()
    }

    fn sleep(&self, d: Duration, cancel: &Cancel) -> bool {
        let out = self.inner.sleep(d, cancel);
        self.meter.restart();
        out
    }

    fn is_virtual(&self) -> bool {
        self.inner.is_virtual()
    }
}
