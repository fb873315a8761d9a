//! A throttle policy set field by field ([`ThrottlePolicy::account`],
//! [`ThrottlePolicy::address`]), validated when it is built.

use std::time::Duration;

use super::ThrottlePolicy;
use crate::leaf_errors::ConfigError;

/// Sets a [`ThrottlePolicy`] field by field from one of the defaults; the policy exists only
/// once validated.
///
/// ```
/// # use std::time::Duration;
/// # use verrou::lockout::ThrottlePolicy;
/// let policy = ThrottlePolicy::account()
///     .free_failures(5)
///     .lock_after(12)
///     .lock_duration(Duration::from_secs(30 * 60))
///     .build_for_account()?;
/// assert_eq!(policy.free_failures, 5);
/// assert!(ThrottlePolicy::account().permanent_lock_after(None).build_for_account().is_err());
/// # Ok::<(), verrou::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug)]
#[must_use]
pub struct ThrottlePolicyBuilder(pub(super) ThrottlePolicy);

impl ThrottlePolicyBuilder {
    /// Failures allowed before any delay.
    pub fn free_failures(mut self, failures: u32) -> Self {
        self.0.free_failures = failures;
        self
    }

    /// The first backoff delay (it doubles with each further failure).
    pub fn base_delay(mut self, delay: Duration) -> Self {
        self.0.base_delay = delay;
        self
    }

    /// Failures that start a temporary lock.
    pub fn lock_after(mut self, failures: u32) -> Self {
        self.0.lock_after = failures;
        self
    }

    /// The first lock's length (it doubles with each further failure).
    pub fn lock_duration(mut self, duration: Duration) -> Self {
        self.0.lock_duration = duration;
        self
    }

    /// The longest temporary lock.
    pub fn max_lock_duration(mut self, duration: Duration) -> Self {
        self.0.max_lock_duration = duration;
        self
    }

    /// Failures after which only an operator unlocks (required for accounts).
    pub fn permanent_lock_after(mut self, failures: Option<u32>) -> Self {
        self.0.permanent_lock_after = failures;
        self
    }

    /// Quiet time after which failures are forgotten (client addresses only).
    pub fn forget_after(mut self, quiet: Option<Duration>) -> Self {
        self.0.forget_after = quiet;
        self
    }

    /// The policy, if [`ThrottlePolicy::validate`] passes.
    ///
    /// # Errors
    /// [`ConfigError::Throttle`] with the broken rule.
    pub fn build(self) -> Result<ThrottlePolicy, ConfigError> {
        self.0.validate()?;
        Ok(self.0)
    }

    /// The policy, if [`ThrottlePolicy::validate_for_account`] passes.
    ///
    /// # Errors
    /// [`ConfigError::Throttle`] with the broken rule.
    pub fn build_for_account(self) -> Result<ThrottlePolicy, ConfigError> {
        self.0.validate_for_account()?;
        Ok(self.0)
    }
}
