//! Throttling of second-factor attempts: a pure state machine, driven by the caller's time.
//!
//! # The curve (defaults, per account)
//! `f` is the number of consecutive failures. A success resets it to zero; the password step
//! never touches it; waiting does not reset it (only the lock expires).
//!
//! | failures `f` | next attempt allowed |
//! |---|---|
//! | 0–2 (`free_failures` = 3) | at once |
//! | 3–9 | after `1 s · 2^(f−3)`: 1, 2, 4, … 64 s (**throttled**) |
//! | 10–49 (`lock_after` = 10) | after `15 min · 2^(f−10)`: 15 min, 30 min, … 16 h, then 24 h (**locked**, expires) |
//! | 50 (`permanent_lock_after`) | never, until an operator lifts the lock |
//!
//! NIST SP 800-63B §5.2.2 caps consecutive failed attempts at 100; verrou refuses an account
//! policy whose permanent lock comes later. [`ThrottlePolicy::max_failures_within`] computes
//! how many wrong guesses an attacker who knows the password can make in a given time;
//! the README gives the resulting guessing probabilities and a test checks them.
//!
//! # Counting before checking
//! Each attempt is counted as a failure **before** the code is compared, with an atomic
//! compare-and-swap in the store, and the count is reset on success. A parallel burst of
//! requests therefore cannot all pass the gate before any failure is recorded: the number of
//! codes compared between two successes never exceeds the policy's bound.

use std::time::Duration;

mod builder;

use crate::clock::Timestamp;
use crate::leaf_errors::ConfigError;

pub use self::builder::ThrottlePolicyBuilder;

/// NIST SP 800-63B: at most 100 consecutive failed attempts on one account.
pub const NIST_MAX_CONSECUTIVE_FAILURES: u32 = 100;
const MAX_SETTING: Duration = Duration::from_secs(30 * 24 * 3600);

/// The throttling curve; see the module docs. Validate with [`ThrottlePolicy::validate`].
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct ThrottlePolicy {
    /// Failures allowed before any delay.
    pub free_failures: u32,
    /// The first backoff delay; it doubles with each further failure.
    pub base_delay: Duration,
    /// Failures that start a (temporary) lock.
    pub lock_after: u32,
    /// The first lock's length; it doubles with each further failure.
    pub lock_duration: Duration,
    /// The longest temporary lock.
    pub max_lock_duration: Duration,
    /// Failures after which only an operator can unlock. Required for accounts.
    pub permanent_lock_after: Option<u32>,
    /// Forget the failures after this much quiet time (at least `max_lock_duration`, so no
    /// lock ends early). Only for client addresses: an account's count is reset by a success
    /// or an operator, never by waiting.
    pub forget_after: Option<Duration>,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self::ACCOUNT_DEFAULT
    }
}

impl ThrottlePolicy {
    /// The per-account default: see the module docs.
    pub const ACCOUNT_DEFAULT: Self = Self {
        free_failures: 3,
        base_delay: Duration::from_secs(1),
        lock_after: 10,
        lock_duration: Duration::from_secs(15 * 60),
        max_lock_duration: Duration::from_secs(24 * 3600),
        permanent_lock_after: Some(50),
        forget_after: None,
    };

    /// The per-client-address default: more room (an office or a NAT shares an address),
    /// never permanent, forgotten after a quiet day.
    pub const ADDRESS_DEFAULT: Self = Self {
        free_failures: 10,
        base_delay: Duration::from_secs(1),
        lock_after: 30,
        lock_duration: Duration::from_secs(5 * 60),
        max_lock_duration: Duration::from_secs(3600),
        permanent_lock_after: None,
        forget_after: Some(Duration::from_secs(24 * 3600)),
    };

    /// A builder starting from [`ThrottlePolicy::ACCOUNT_DEFAULT`], for a per-account policy
    /// set field by field; [`ThrottlePolicyBuilder::build_for_account`] validates it.
    pub fn account() -> ThrottlePolicyBuilder {
        ThrottlePolicyBuilder(Self::ACCOUNT_DEFAULT)
    }

    /// A builder starting from [`ThrottlePolicy::ADDRESS_DEFAULT`], for a per-address
    /// policy; [`ThrottlePolicyBuilder::build`] validates it.
    pub fn address() -> ThrottlePolicyBuilder {
        ThrottlePolicyBuilder(Self::ADDRESS_DEFAULT)
    }

    /// Checks that the policy is consistent and bounded.
    ///
    /// # Errors
    /// [`ConfigError::Throttle`] with the broken rule.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.lock_after == 0 || self.lock_after <= self.free_failures {
            return Err(ConfigError::Throttle(
                "lock_after must exceed free_failures",
            ));
        }
        if self.lock_after > NIST_MAX_CONSECUTIVE_FAILURES {
            return Err(ConfigError::Throttle(
                "lock_after must be at most 100 (NIST SP 800-63B)",
            ));
        }
        if let Some(permanent) = self.permanent_lock_after {
            if permanent < self.lock_after || permanent > NIST_MAX_CONSECUTIVE_FAILURES {
                return Err(ConfigError::Throttle(
                    "permanent_lock_after must be between lock_after and 100",
                ));
            }
        }
        let durations = [self.base_delay, self.lock_duration, self.max_lock_duration];
        if durations
            .iter()
            .any(|d| d.as_secs() == 0 || *d > MAX_SETTING)
        {
            return Err(ConfigError::Throttle(
                "delays must be between 1 s and 30 days",
            ));
        }
        if self.max_lock_duration < self.lock_duration {
            return Err(ConfigError::Throttle(
                "max_lock_duration must be at least lock_duration",
            ));
        }
        if self.forget_after.is_some() && self.permanent_lock_after.is_some() {
            return Err(ConfigError::Throttle(
                "a permanent lock cannot be forgotten: set forget_after or permanent_lock_after, not both",
            ));
        }
        if self
            .forget_after
            .is_some_and(|d| d < self.max_lock_duration || d > MAX_SETTING)
        {
            // Shorter would end a lock (or backoff) early by forgetting the failures behind it.
            return Err(ConfigError::Throttle(
                "forget_after must be between max_lock_duration and 30 days",
            ));
        }
        Ok(())
    }

    /// A policy fit for accounts: valid, with a permanent lock and without forgetting.
    ///
    /// # Errors
    /// [`ConfigError::Throttle`].
    pub fn validate_for_account(&self) -> Result<(), ConfigError> {
        self.validate()?;
        if self.permanent_lock_after.is_none() {
            return Err(ConfigError::Throttle(
                "an account policy needs permanent_lock_after (NIST SP 800-63B caps failures at 100)",
            ));
        }
        if self.forget_after.is_some() {
            return Err(ConfigError::Throttle(
                "an account's failures must not be forgotten by waiting",
            ));
        }
        Ok(())
    }

    fn effective_failures(&self, state: &ThrottleState, now: Timestamp) -> u32 {
        match self.forget_after {
            Some(quiet) if now.duration_since(state.last_failure) >= quiet => 0,
            _ => state.failures,
        }
    }

    /// Whether an attempt may proceed at `now`.
    pub fn gate(&self, state: &ThrottleState, now: Timestamp) -> Gate {
        let failures = self.effective_failures(state, now);
        if self
            .permanent_lock_after
            .is_some_and(|limit| failures >= limit)
        {
            return Gate::Locked { until: None };
        }
        if failures >= self.lock_after {
            let until = state.last_failure.saturating_add(doubled(
                self.lock_duration,
                failures - self.lock_after,
                self.max_lock_duration,
            ));
            return if now < until {
                Gate::Locked { until: Some(until) }
            } else {
                Gate::Open
            };
        }
        if failures >= self.free_failures {
            let until = state.last_failure.saturating_add(doubled(
                self.base_delay,
                failures - self.free_failures,
                self.lock_duration,
            ));
            if now < until {
                return Gate::Backoff { until };
            }
        }
        Gate::Open
    }

    /// The state after one more failure at `now`.
    pub fn record_failure(&self, state: &ThrottleState, now: Timestamp) -> ThrottleState {
        ThrottleState {
            failures: self.effective_failures(state, now).saturating_add(1),
            last_failure: now,
        }
    }

    /// The most wrong guesses an attacker can make within `window`, starting from a clean
    /// state and guessing as soon as the gate opens.
    pub fn max_failures_within(&self, window: Duration) -> u64 {
        let start = Timestamp::EPOCH;
        let end = start.saturating_add(window);
        let mut now = start;
        let mut state = ThrottleState::default();
        let mut guesses = 0u64;
        while now < end {
            match self.gate(&state, now) {
                Gate::Open => {
                    state = self.record_failure(&state, now);
                    guesses += 1;
                }
                Gate::Backoff { until } | Gate::Locked { until: Some(until) } => now = until,
                Gate::Locked { until: None } => break,
            }
        }
        guesses
    }
}

/// `base · 2^exponent`, capped at `cap`.
fn doubled(base: Duration, exponent: u32, cap: Duration) -> Duration {
    let factor = 1u32.checked_shl(exponent.min(31)).unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(cap).min(cap)
}

/// Consecutive failures and when the last one happened.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
#[allow(
    clippy::exhaustive_structs,
    reason = "a record store implementations build from rows"
)]
pub struct ThrottleState {
    /// Consecutive failures since the last success or reset.
    pub failures: u32,
    /// When the last failure was counted.
    pub last_failure: Timestamp,
}

/// What the throttle says about an attempt now.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum Gate {
    /// The attempt may proceed.
    Open,
    /// Too many recent failures: try again at `until`.
    Backoff {
        /// When the next attempt is allowed.
        until: Timestamp,
    },
    /// Locked until `until`, or until an operator lifts the lock when `None`.
    Locked {
        /// When the lock expires; `None` for a lock only an operator can lift.
        until: Option<Timestamp>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> Timestamp {
        Timestamp::from_unix_seconds(seconds).unwrap()
    }

    fn after_failures(policy: &ThrottlePolicy, count: u32, now: Timestamp) -> ThrottleState {
        (0..count).fold(ThrottleState::default(), |state, _| {
            policy.record_failure(&state, now)
        })
    }

    #[test]
    fn defaults_are_valid() {
        ThrottlePolicy::ACCOUNT_DEFAULT
            .validate_for_account()
            .unwrap();
        ThrottlePolicy::ADDRESS_DEFAULT.validate().unwrap();
        assert!(ThrottlePolicy::ADDRESS_DEFAULT
            .validate_for_account()
            .is_err());
    }

    #[test]
    fn curve_follows_the_documented_table() {
        let policy = ThrottlePolicy::ACCOUNT_DEFAULT;
        let t = at(1_000_000);
        for failures in 0..3 {
            assert_eq!(
                policy.gate(&after_failures(&policy, failures, t), t),
                Gate::Open
            );
        }
        for (failures, delay) in [(3, 1), (4, 2), (5, 4), (9, 64)] {
            let state = after_failures(&policy, failures, t);
            assert_eq!(
                policy.gate(&state, t),
                Gate::Backoff {
                    until: at(1_000_000 + delay)
                }
            );
            assert_eq!(policy.gate(&state, at(1_000_000 + delay)), Gate::Open);
        }
        for (failures, lock) in [
            (10, 900),
            (11, 1800),
            (12, 3600),
            (16, 57_600),
            (17, 86_400),
            (49, 86_400),
        ] {
            let state = after_failures(&policy, failures, t);
            let until = at(1_000_000 + lock);
            assert_eq!(policy.gate(&state, t), Gate::Locked { until: Some(until) });
            assert_eq!(
                policy.gate(&state, at(1_000_000 + lock - 1)),
                Gate::Locked { until: Some(until) }
            );
            assert_eq!(
                policy.gate(&state, until),
                Gate::Open,
                "lock of {failures} expires"
            );
        }
        let state = after_failures(&policy, 50, t);
        assert_eq!(
            policy.gate(&state, Timestamp::MAX),
            Gate::Locked { until: None }
        );
    }

    #[test]
    fn waiting_never_resets_an_account() {
        let policy = ThrottlePolicy::ACCOUNT_DEFAULT;
        let state = after_failures(&policy, 12, at(0));
        let later = policy.record_failure(&state, at(10_000_000));
        assert_eq!(later.failures, 13);
    }

    #[test]
    fn addresses_forget_after_quiet_time() {
        let policy = ThrottlePolicy::ADDRESS_DEFAULT;
        let state = after_failures(&policy, 29, at(0));
        assert!(matches!(policy.gate(&state, at(1)), Gate::Backoff { .. }));
        let quiet = at(24 * 3600);
        assert_eq!(policy.gate(&state, quiet), Gate::Open);
        assert_eq!(policy.record_failure(&state, quiet).failures, 1);
    }

    #[test]
    fn invalid_policies_are_refused() {
        let base = ThrottlePolicy::ACCOUNT_DEFAULT;
        let cases = [
            ThrottlePolicy {
                lock_after: 0,
                free_failures: 0,
                ..base
            },
            ThrottlePolicy {
                lock_after: 3,
                ..base
            },
            ThrottlePolicy {
                lock_after: 101,
                permanent_lock_after: Some(101),
                ..base
            },
            ThrottlePolicy {
                permanent_lock_after: Some(101),
                ..base
            },
            ThrottlePolicy {
                permanent_lock_after: Some(5),
                ..base
            },
            ThrottlePolicy {
                base_delay: Duration::ZERO,
                ..base
            },
            ThrottlePolicy {
                lock_duration: Duration::from_secs(31 * 24 * 3600),
                ..base
            },
            ThrottlePolicy {
                max_lock_duration: Duration::from_secs(60),
                ..base
            },
            ThrottlePolicy {
                forget_after: Some(Duration::ZERO),
                permanent_lock_after: None,
                ..base
            },
            // Waiting must not undo a permanent lock.
            ThrottlePolicy {
                forget_after: Some(Duration::from_secs(60)),
                ..base
            },
        ];
        for policy in cases {
            assert!(policy.validate().is_err(), "{policy:?}");
        }
        assert!(ThrottlePolicy {
            permanent_lock_after: None,
            ..base
        }
        .validate_for_account()
        .is_err());
        assert!(ThrottlePolicy {
            forget_after: Some(Duration::from_secs(60)),
            permanent_lock_after: None,
            ..base
        }
        .validate_for_account()
        .is_err());
    }

    /// The figures in the README: guesses an attacker with the password can make.
    #[test]
    fn guessing_bounds_match_the_readme() {
        let policy = ThrottlePolicy::ACCOUNT_DEFAULT;
        let day = policy.max_failures_within(Duration::from_secs(24 * 3600));
        let year = policy.max_failures_within(Duration::from_secs(365 * 24 * 3600));
        let ever = policy.max_failures_within(Duration::from_secs(100 * 365 * 24 * 3600));
        assert_eq!(day, 16);
        assert_eq!(year, 50);
        assert_eq!(ever, 50);
        // Guessing as fast as allowed reaches the permanent lock in the fifth week.
        let days = |n: u64| Duration::from_secs(n * 24 * 3600);
        assert_eq!(policy.max_failures_within(days(34)), 49);
        assert_eq!(policy.max_failures_within(days(35)), 50);
        // A 6-digit code with a ±1 window matches one guess in 10^6 / 3.
        let p_day = day as f64 * 3.0 / 1e6;
        let p_ever = ever as f64 * 3.0 / 1e6;
        assert!(p_day <= 4.8e-5 && p_ever <= 1.5e-4, "{p_day} {p_ever}");
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        fn policy() -> impl Strategy<Value = ThrottlePolicy> {
            (
                0u32..5,
                1u64..10,
                1u32..20,
                1u64..4000,
                1u64..8,
                proptest::option::of(0u32..50),
                proptest::option::of(1u64..100_000),
            )
                .prop_map(
                    |(free, base, extra, lock, cap, permanent, forget)| ThrottlePolicy {
                        free_failures: free,
                        base_delay: Duration::from_secs(base),
                        lock_after: free + extra,
                        lock_duration: Duration::from_secs(lock),
                        max_lock_duration: Duration::from_secs(lock * cap),
                        permanent_lock_after: permanent.map(|p| (free + extra + p).min(100)),
                        forget_after: forget.map(Duration::from_secs),
                    },
                )
                .prop_filter("valid", |p| p.validate().is_ok())
        }

        proptest! {
            /// Once the gate says "wait until T", it stays closed at every instant before T,
            /// and a further failure never makes the wait shorter.
            #[test]
            fn lockout_never_ends_early(
                policy in policy(),
                failures in 0u32..120,
                last in 0u64..1_000_000,
                offset in 0u64..200_000,
                probe in 0u64..200_000,
            ) {
                let state = ThrottleState { failures, last_failure: Timestamp::from_unix_seconds(last).unwrap() };
                let now = Timestamp::from_unix_seconds(last + offset).unwrap();
                let until = match policy.gate(&state, now) {
                    Gate::Open => return Ok(()),
                    Gate::Locked { until: None } => {
                        let later = Timestamp::from_unix_seconds(last + offset + probe).unwrap();
                        prop_assert_eq!(policy.gate(&state, later), Gate::Locked { until: None });
                        return Ok(());
                    }
                    Gate::Backoff { until } | Gate::Locked { until: Some(until) } => until,
                };
                prop_assert!(until > now);
                let probe_time = Timestamp::from_unix_seconds(
                    now.unix_seconds() + probe % until.duration_since(now).as_secs(),
                ).unwrap();
                prop_assert_ne!(policy.gate(&state, probe_time), Gate::Open);
            }

            /// More failures never open a gate that fewer failures kept closed.
            #[test]
            fn more_failures_never_shorten_the_wait(policy in policy(), failures in 0u32..120, elapsed in 0u64..500_000) {
                let now = Timestamp::from_unix_seconds(elapsed).unwrap();
                let fewer = ThrottleState { failures, last_failure: Timestamp::EPOCH };
                let more = ThrottleState { failures: failures + 1, last_failure: Timestamp::EPOCH };
                if policy.forget_after.is_none() && policy.gate(&fewer, now) != Gate::Open {
                    prop_assert_ne!(policy.gate(&more, now), Gate::Open);
                }
            }
        }
    }
}
