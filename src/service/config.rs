//! The service's settings: `VerrouConfig`, every setter validated.

use std::time::Duration;

use crate::error::ConfigError;
use crate::lockout::ThrottlePolicy;
use crate::recovery::{self, HashParams};
use crate::session::SessionPolicy;
use crate::store::ThrottleKey;
use crate::totp::{self, TotpParams};

const MAX_ISSUER_LEN: usize = 128;

/// Settings of a [`Verrou`](crate::Verrou) service. Every setter validates, so a config is always usable.
#[derive(Clone, Debug)]
pub struct VerrouConfig {
    pub(super) issuer: String,
    pub(super) totp_params: TotpParams,
    pub(super) skew: u8,
    pub(super) pending_enrollment_ttl: Duration,
    pub(super) step_up_freshness: Duration,
    pub(super) account_throttle: ThrottlePolicy,
    pub(super) address_throttle: Option<ThrottlePolicy>,
    pub(super) ipv6_throttle_prefix: u8,
    pub(super) recovery_set_size: usize,
    pub(super) recovery_hash: HashParams,
    pub(super) argon2_concurrency: usize,
    pub(super) argon2_max_in_flight: usize,
    pub(super) sessions: SessionPolicy,
}

impl VerrouConfig {
    /// Defaults: SHA-1, 6 digits, 30 s, skew ±1 step, pending enrolments expire after 10
    /// minutes, re-enrolment needs a second factor verified in the last 5 minutes, the account
    /// throttle of [`ThrottlePolicy::ACCOUNT_DEFAULT`], no per-address throttle.
    ///
    /// `issuer` is the service name authenticator apps show (`Portail Partenaires`).
    ///
    /// # Errors
    /// [`ConfigError::Issuer`] if the issuer cannot be an `otpauth://` label.
    pub fn new(issuer: &str) -> Result<Self, ConfigError> {
        totp::validate_label("issuer", issuer, MAX_ISSUER_LEN).map_err(ConfigError::Issuer)?;
        Ok(Self {
            issuer: issuer.to_owned(),
            totp_params: TotpParams::DEFAULT,
            skew: 1,
            pending_enrollment_ttl: Duration::from_secs(10 * 60),
            step_up_freshness: Duration::from_secs(5 * 60),
            account_throttle: ThrottlePolicy::ACCOUNT_DEFAULT,
            address_throttle: None,
            ipv6_throttle_prefix: ThrottleKey::DEFAULT_IPV6_PREFIX,
            recovery_set_size: recovery::DEFAULT_SET_SIZE,
            recovery_hash: HashParams::OWASP,
            argon2_concurrency: default_argon2_concurrency(),
            argon2_max_in_flight: 4 * default_argon2_concurrency(),
            sessions: SessionPolicy::new(),
        })
    }

    /// Recovery codes per set (1 to 20; default 10).
    ///
    /// # Errors
    /// [`ConfigError::Recovery`] outside that range.
    pub fn with_recovery_set_size(mut self, size: usize) -> Result<Self, ConfigError> {
        if !(1..=20).contains(&size) {
            return Err(ConfigError::Recovery("set size must be 1 to 20"));
        }
        self.recovery_set_size = size;
        Ok(self)
    }

    /// argon2id parameters for new recovery codes: at least OWASP's (19 MiB, 2 passes,
    /// 1 lane), at most what verification accepts from storage.
    ///
    /// # Errors
    /// [`ConfigError::Recovery`] outside those bounds.
    pub fn with_recovery_hash(mut self, params: HashParams) -> Result<Self, ConfigError> {
        if !params.is_within_bounds() {
            return Err(ConfigError::Recovery("argon2 parameters out of bounds"));
        }
        self.recovery_hash = params;
        Ok(self)
    }

    /// How many argon2 hashings may run at once (default: the number of cores) and how many
    /// verification attempts may be admitted, running or waiting (default: 4 per hashing);
    /// further attempts are refused as [`RecoveryOutcome::Busy`](crate::RecoveryOutcome::Busy).
    ///
    /// # Errors
    /// [`ConfigError::Recovery`] for zero, or a bound below the concurrency.
    pub fn with_argon2_limits(
        mut self,
        concurrent: usize,
        max_in_flight: usize,
    ) -> Result<Self, ConfigError> {
        if concurrent == 0 || max_in_flight < concurrent || max_in_flight > 10_000 {
            return Err(ConfigError::Recovery(
                "argon2 limits must be 1 <= concurrent <= in flight <= 10000",
            ));
        }
        self.argon2_concurrency = concurrent;
        self.argon2_max_in_flight = max_in_flight;
        Ok(self)
    }

    /// Parameters for new enrolments (existing factors keep theirs).
    pub fn with_totp_params(mut self, params: TotpParams) -> Self {
        self.totp_params = params;
        self
    }

    /// Accept codes from `skew` steps either side of the current one (RFC 6238 §5.2
    /// recommends 1).
    ///
    /// # Errors
    /// [`ConfigError::Skew`] above [`totp::MAX_SKEW`]: a wider window multiplies an attacker's
    /// chance per guess.
    pub fn with_skew(mut self, skew: u8) -> Result<Self, ConfigError> {
        if skew > totp::MAX_SKEW {
            return Err(ConfigError::Skew {
                max: totp::MAX_SKEW,
            });
        }
        self.skew = skew;
        Ok(self)
    }

    /// How long a pending enrolment may be confirmed (1 minute to 24 hours).
    ///
    /// # Errors
    /// [`ConfigError::Duration`] outside that range.
    pub fn with_pending_enrollment_ttl(mut self, ttl: Duration) -> Result<Self, ConfigError> {
        if ttl < Duration::from_secs(60) || ttl > Duration::from_secs(24 * 3600) {
            return Err(ConfigError::Duration("pending_enrollment_ttl"));
        }
        self.pending_enrollment_ttl = ttl;
        Ok(self)
    }

    /// How recent a second factor must be for step-up actions (re-enrolment, recovery-code
    /// regeneration, disabling the factor, and
    /// [`Requirement::RecentSecondFactor`](crate::session::Requirement::RecentSecondFactor)
    /// pages): 1 second to 1 hour, default 5 minutes. One setting for all of them.
    ///
    /// # Errors
    /// [`ConfigError::Duration`] outside that range.
    pub fn with_step_up_freshness(mut self, max_age: Duration) -> Result<Self, ConfigError> {
        if max_age.as_secs() == 0 || max_age > Duration::from_secs(3600) {
            return Err(ConfigError::Duration("step_up_freshness"));
        }
        self.step_up_freshness = max_age;
        Ok(self)
    }

    /// Session lifetimes, device binding and soft signals.
    pub fn with_session_policy(mut self, policy: SessionPolicy) -> Self {
        self.sessions = policy;
        self
    }

    /// The session policy.
    pub fn session_policy(&self) -> &SessionPolicy {
        &self.sessions
    }

    /// The per-account throttle.
    ///
    /// # Errors
    /// [`ConfigError::Throttle`] unless [`ThrottlePolicy::validate_for_account`] passes.
    pub fn with_account_throttle(mut self, policy: ThrottlePolicy) -> Result<Self, ConfigError> {
        policy.validate_for_account()?;
        self.account_throttle = policy;
        Ok(self)
    }

    /// Also throttle per client address (see [`ClientContext`](crate::ClientContext)); `None` turns it off.
    ///
    /// # Errors
    /// [`ConfigError::Throttle`] unless [`ThrottlePolicy::validate`] passes.
    pub fn with_address_throttle(
        mut self,
        policy: Option<ThrottlePolicy>,
    ) -> Result<Self, ConfigError> {
        if let Some(policy) = &policy {
            policy.validate()?;
        }
        self.address_throttle = policy;
        Ok(self)
    }

    /// How much of an IPv6 client address one per-address throttle bucket covers: 32 to 128
    /// bits (default 64).
    ///
    /// # Trade-off
    /// A subscriber usually gets a whole /64, often a /56 or /48, and can send from any
    /// address in it: with /64 buckets, the holder of a /48 has 65,536 buckets to rotate
    /// through. A shorter prefix (48 or 56) closes that, at the price of throttling every
    /// client of a network that shares the prefix (a company, a university, a mobile
    /// carrier's gateway) together when one of them misbehaves. The per-account throttle
    /// holds whatever is set here: an attacker rotating addresses still counts against the
    /// account they attack.
    ///
    /// # Errors
    /// [`ConfigError::Throttle`] outside 32 to 128.
    pub fn with_ipv6_throttle_prefix(mut self, prefix: u8) -> Result<Self, ConfigError> {
        if !(32..=128).contains(&prefix) {
            return Err(ConfigError::Throttle(
                "the IPv6 prefix must be 32 to 128 bits",
            ));
        }
        self.ipv6_throttle_prefix = prefix;
        Ok(self)
    }

    /// The issuer shown in authenticator apps.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Parameters for new enrolments.
    pub fn totp_params(&self) -> TotpParams {
        self.totp_params
    }

    /// Accepted steps either side of the current one.
    pub fn skew(&self) -> u8 {
        self.skew
    }
}

pub(super) fn default_argon2_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
