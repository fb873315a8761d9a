//! Bounds argon2 work: at most `permits` hashings at once, at most `max_in_flight` attempts
//! admitted (running or queued). Past that, verification attempts are refused rather than
//! queued without bound, so a burst cannot exhaust memory (each hashing holds ~19 MiB).
//!
//! The hashing runs on tokio's blocking pool and cannot be cancelled once started, so the
//! permit and the admission slot belong to the hashing itself, not to the future awaiting it:
//! a caller that gives up (a client that disconnects) frees nothing until the work is done.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Semaphore;

use crate::error::{CryptoError, Error};
use crate::recovery::ArgonMemory;

/// The argon2 limiter shared by one service.
#[derive(Debug)]
pub(super) struct HashGate {
    permits: Arc<Semaphore>,
    /// argon2 memory, one buffer per hashing that ran at once so far (at most `permits`):
    /// a hashing takes one, or makes one, and puts it back.
    memory: Arc<Mutex<Vec<ArgonMemory>>>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: usize,
    running: Arc<Running>,
}

/// Hashings running right now, the most ever seen at once, and how many finished.
#[derive(Debug, Default)]
struct Running {
    now: AtomicUsize,
    peak: AtomicUsize,
    completed: AtomicU64,
}

/// An admission slot, released on drop, wherever it was moved.
struct Admitted(Arc<AtomicUsize>);

/// A slot among the admitted attempts, held from admission until the hashing is over.
pub(crate) struct Admission(Admitted);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HashGate {
    pub(crate) fn new(concurrent: usize, max_in_flight: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrent.max(1))),
            memory: Arc::default(),
            in_flight: Arc::new(AtomicUsize::new(0)),
            max_in_flight: max_in_flight.max(concurrent).max(1),
            running: Arc::default(),
        }
    }

    /// argon2 computations run so far (including those whose caller gave up).
    pub(crate) fn completed(&self) -> u64 {
        self.running.completed.load(Ordering::Acquire)
    }

    /// The most argon2 hashings that ever ran at once.
    pub(crate) fn peak_running(&self) -> usize {
        self.running.peak.load(Ordering::Acquire)
    }

    /// Takes an admission slot, or `None` when `max_in_flight` attempts are already admitted.
    /// Verification takes it *before* the attempt is counted by the throttle, so an attempt
    /// refused here costs the user nothing (and checks nothing).
    pub(crate) fn admit(&self) -> Option<Admission> {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let admitted = Admitted(Arc::clone(&self.in_flight));
        (before < self.max_in_flight).then_some(Admission(admitted))
    }

    /// Runs `work` under the limit, waiting for a slot however many attempts are admitted
    /// (for hashing a new set of codes, which a second factor already guards).
    pub(crate) async fn run<T, F>(&self, work: F) -> Result<T, Error>
    where
        F: FnOnce(&mut ArgonMemory) -> T + Send + 'static,
        T: Send + 'static,
    {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let admission = Admission(Admitted(Arc::clone(&self.in_flight)));
        self.run_admitted(admission, work).await
    }

    /// Runs `work` in the slot `admission` holds, once a hashing permit is free.
    pub(crate) async fn run_admitted<T, F>(&self, admission: Admission, work: F) -> Result<T, Error>
    where
        F: FnOnce(&mut ArgonMemory) -> T + Send + 'static,
        T: Send + 'static,
    {
        let Admission(admitted) = admission;
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| CryptoError::Hashing)?;
        let running = Arc::clone(&self.running);
        let pool = Arc::clone(&self.memory);
        let work = move || {
            // Held until the hashing is over, even if nobody awaits the result any more.
            let _slot = (admitted, permit);
            let now = running.now.fetch_add(1, Ordering::AcqRel) + 1;
            running.peak.fetch_max(now, Ordering::AcqRel);
            // A permit holder takes a buffer; there are never more buffers than permits. A
            // poisoned lock (a hashing that panicked) still holds whole buffers.
            let taken = pool.lock().unwrap_or_else(PoisonError::into_inner).pop();
            let mut memory = taken.unwrap_or_default();
            let result = work(&mut memory);
            pool.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(memory);
            running.now.fetch_sub(1, Ordering::AcqRel);
            running.completed.fetch_add(1, Ordering::AcqRel);
            result
        };
        // argon2 takes tens of milliseconds of CPU: off the async worker when there is a
        // tokio runtime, inline otherwise.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime
                .spawn_blocking(work)
                .await
                .map_err(|_| CryptoError::Hashing.into()),
            Err(_) => Ok(work()),
        }
    }
}
