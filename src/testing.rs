//! Test tools, behind the `insecure-test-utils` feature. Never enable it in production.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, ClockError, Timestamp};
use crate::secret::TotpSecret;
use crate::totp::TotpParams;

/// A clock driven by hand. Clones share the same time.
#[derive(Clone, Debug)]
pub struct InsecureManualClock {
    seconds: Arc<AtomicU64>,
}

impl InsecureManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            seconds: Arc::new(AtomicU64::new(start.unix_seconds())),
        }
    }

    /// Sets the time (raw seconds, so tests can set impossible times too).
    pub fn set_unix_seconds(&self, seconds: u64) {
        self.seconds.store(seconds, Ordering::SeqCst);
    }

    /// Moves the time forward.
    pub fn advance(&self, by: Duration) {
        self.seconds.fetch_add(by.as_secs(), Ordering::SeqCst);
    }
}

impl Clock for InsecureManualClock {
    fn now(&self) -> Result<Timestamp, ClockError> {
        Timestamp::from_unix_seconds(self.seconds.load(Ordering::SeqCst))
    }
}

/// The code an authenticator app shows at `time`: plays the user's phone in tests and demos.
///
/// # Panics
/// Never for valid parameters; returns an empty string if the secret is unusable.
pub fn insecure_code_at(secret: &TotpSecret, params: TotpParams, time: Timestamp) -> String {
    crate::totp::code_at(secret, params, time)
        .map(|code| code.expose_secret().to_owned())
        .unwrap_or_default()
}
