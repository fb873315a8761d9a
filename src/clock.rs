//! Time, injected: policy code never reads the system clock itself.
//!
//! [`Timestamp`] is a count of whole seconds since the Unix epoch, bounded to
//! `1970-01-01T00:00:00Z ..= 9999-12-31T23:59:59Z`. A clock that reports a time outside
//! that range (a machine whose clock was reset to 1969, a corrupted RTC) yields a
//! [`ClockError`], never a panic or a wrapped-around step counter.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, within `0 ..= Timestamp::MAX`. The default is the epoch.
#[derive(Clone, Copy, Debug, Default, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Self = Self(0);
    /// 9999-12-31T23:59:59Z: the latest time verrou accepts.
    pub const MAX: Self = Self(253_402_300_799);

    /// A timestamp from seconds since the Unix epoch.
    ///
    /// # Errors
    /// [`ClockError::TooFarInFuture`] beyond [`Timestamp::MAX`].
    pub fn from_unix_seconds(seconds: u64) -> Result<Self, ClockError> {
        if seconds > Self::MAX.0 {
            return Err(ClockError::TooFarInFuture);
        }
        Ok(Self(seconds))
    }

    /// A timestamp from a [`SystemTime`].
    ///
    /// # Errors
    /// [`ClockError::BeforeEpoch`] or [`ClockError::TooFarInFuture`].
    pub fn from_system_time(time: SystemTime) -> Result<Self, ClockError> {
        let since = time
            .duration_since(UNIX_EPOCH)
            .map_err(|_| ClockError::BeforeEpoch)?;
        Self::from_unix_seconds(since.as_secs())
    }

    /// Seconds since the Unix epoch.
    pub fn unix_seconds(self) -> u64 {
        self.0
    }

    /// `self + duration`, saturating at [`Timestamp::MAX`].
    pub fn saturating_add(self, duration: Duration) -> Self {
        Self(self.0.saturating_add(duration.as_secs()).min(Self::MAX.0))
    }

    /// `self - duration`, saturating at the epoch.
    pub fn saturating_sub(self, duration: Duration) -> Self {
        Self(self.0.saturating_sub(duration.as_secs()))
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub fn duration_since(self, earlier: Self) -> Duration {
        Duration::from_secs(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}", self.0)
    }
}

/// A clock reported a time verrou cannot use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClockError {
    /// The time is before 1970-01-01T00:00:00Z.
    #[error("clock reports a time before the Unix epoch")]
    BeforeEpoch,
    /// The time is after 9999-12-31T23:59:59Z.
    #[error("clock reports a time after 9999-12-31")]
    TooFarInFuture,
}

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// The current time.
    ///
    /// # Errors
    /// When the underlying clock reports a time outside the supported range.
    fn now(&self) -> Result<Timestamp, ClockError>;
}

/// The operating system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
#[allow(clippy::exhaustive_structs, reason = "a unit value callers construct")]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Result<Timestamp, ClockError> {
        Timestamp::from_system_time(SystemTime::now())
    }
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> Result<Timestamp, ClockError> {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> Result<Timestamp, ClockError> {
        (**self).now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn before_epoch_is_an_error_not_a_panic() {
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(
            Timestamp::from_system_time(before),
            Err(ClockError::BeforeEpoch)
        );
    }

    #[test]
    fn far_future_is_an_error_not_a_wrap() {
        assert_eq!(
            Timestamp::from_unix_seconds(u64::MAX),
            Err(ClockError::TooFarInFuture)
        );
        assert_eq!(
            Timestamp::from_unix_seconds(Timestamp::MAX.unix_seconds() + 1),
            Err(ClockError::TooFarInFuture)
        );
        assert!(Timestamp::from_unix_seconds(Timestamp::MAX.unix_seconds()).is_ok());
    }

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(
            Timestamp::MAX.saturating_add(Duration::from_secs(u64::MAX)),
            Timestamp::MAX
        );
        assert_eq!(
            Timestamp::EPOCH.saturating_sub(Duration::from_secs(5)),
            Timestamp::EPOCH
        );
        assert_eq!(
            Timestamp::EPOCH.duration_since(Timestamp::MAX),
            Duration::ZERO
        );
    }

    #[test]
    fn system_clock_is_in_range() {
        let now = SystemClock.now().unwrap();
        assert!(now.unix_seconds() > 1_700_000_000);
    }
}
