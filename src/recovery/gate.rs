//! Bounds argon2 work: at most `permits` hashings at once, at most `max_in_flight` attempts
//! admitted (running or queued). Past that, verification attempts are refused rather than
//! queued without bound, so a burst cannot exhaust memory (each hashing holds ~19 MiB).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::Semaphore;

use crate::error::{CryptoError, Error};

/// The argon2 limiter shared by one service.
#[derive(Debug)]
pub(crate) struct HashGate {
    permits: Semaphore,
    in_flight: AtomicUsize,
    max_in_flight: usize,
    completed: AtomicU64,
}

/// Decrements the admitted count however the attempt ends (including cancellation).
struct Admitted<'a>(&'a AtomicUsize);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HashGate {
    pub(crate) fn new(concurrent: usize, max_in_flight: usize) -> Self {
        Self {
            permits: Semaphore::new(concurrent.max(1)),
            in_flight: AtomicUsize::new(0),
            max_in_flight: max_in_flight.max(concurrent).max(1),
            completed: AtomicU64::new(0),
        }
    }

    /// argon2 computations run so far.
    pub(crate) fn completed(&self) -> u64 {
        self.completed.load(Ordering::Acquire)
    }

    /// Runs `work` under the limit. With `refuse_when_full`, returns `Ok(None)` instead of
    /// waiting when `max_in_flight` attempts are already admitted.
    pub(crate) async fn run<T, F>(
        &self,
        work: F,
        refuse_when_full: bool,
    ) -> Result<Option<T>, Error>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let _admitted = Admitted(&self.in_flight);
        if refuse_when_full && before >= self.max_in_flight {
            return Ok(None);
        }
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| CryptoError::Hashing)?;
        // argon2 takes tens of milliseconds of CPU: off the async worker when there is a
        // tokio runtime, inline otherwise.
        let result = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime
                .spawn_blocking(work)
                .await
                .map_err(|_| CryptoError::Hashing)?,
            Err(_) => work(),
        };
        self.completed.fetch_add(1, Ordering::AcqRel);
        Ok(Some(result))
    }
}
