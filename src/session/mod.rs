//! Sessions bound to the second factor and to the device.
//!
//! - [`token`]: the 256-bit bearer secrets in cookies, stored only as hashes;
//! - [`cookie`]: `Set-Cookie` values with the `__Host-` prefix and strict attributes;
//! - [`proof`]: strict parsing and verification of the ES256 proofs a device signs;
//! - [`dbsc`]: the Device Bound Session Credentials header values and instructions;
//! - [`webcrypto`]: the script that gives browsers without DBSC the same binding;
//! - this module: the policy ([`SessionPolicy`]) and the records stores keep.
//!
//! The rules themselves live in the service ([`crate::Verrou::authenticate`] and friends).

pub mod cookie;
pub mod dbsc;
pub mod proof;
pub mod token;
pub mod webcrypto;

use std::fmt;
use std::time::Duration;

pub use self::token::{MalformedToken, SessionToken, TokenHash};
use crate::clock::Timestamp;
use crate::ids::{OrgId, SessionId, UserId};
use crate::leaf_errors::{ConfigError, CryptoError};

/// How much a session has proven.
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
#[non_exhaustive]
pub enum Assurance {
    /// The password only: the session may complete (or enrol) the second factor, nothing
    /// else.
    PasswordOnly,
    /// Password and second factor.
    SecondFactor,
}

impl Assurance {
    /// A short stable name, for logs and operators' listings.
    pub fn name(self) -> &'static str {
        match self {
            Self::PasswordOnly => "password_only",
            Self::SecondFactor => "second_factor",
        }
    }
}

/// What a request needs from its session (see [`crate::Verrou::authenticate`]).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum Requirement {
    /// Any live session, password-only included: for the pages that complete or enrol the
    /// second factor, and for logout.
    AnySession,
    /// A session that passed the second factor: every ordinary page.
    SecondFactor,
    /// A second factor passed within the step-up freshness (default 5 minutes): for
    /// re-enrolment, recovery-code regeneration, disabling the factor, bulk exports.
    RecentSecondFactor,
}

/// Whether sessions must bind to a device key.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum BindingMode {
    /// A second-factor session must register a device key within `grace` of completing the
    /// second factor (through DBSC or the WebCrypto fallback), or it is refused as
    /// [`SessionStatus::BindingMissing`](crate::SessionStatus::BindingMissing). The default, with a grace of 2 minutes.
    Required {
        /// Time allowed to register after the second factor.
        grace: Duration,
    },
    /// Offer binding and enforce it for sessions that registered; sessions that never
    /// registered keep working on their cookie alone (what the DBSC draft describes for
    /// browsers without support).
    Optional,
    /// No binding offered or enforced.
    Off,
}

/// Session lifetimes and rules. Every setter validates.
///
/// Defaults follow NIST SP 800-63B (rev. 3, §4.2.3) for AAL2: reauthentication after 30
/// minutes of inactivity and at least every 12 hours (rev. 4, §2.2.3, relaxes these to "should"
/// at 1 hour and 24 hours; verrou keeps the stricter pair).
#[derive(Clone, Debug)]
pub struct SessionPolicy {
    pub(crate) idle_timeout: Duration,
    pub(crate) absolute_lifetime: Duration,
    pub(crate) password_only_lifetime: Duration,
    pub(crate) touch_interval: Duration,
    pub(crate) binding: BindingMode,
    pub(crate) bound_cookie_lifetime: Duration,
    pub(crate) soft_signals: bool,
    pub(crate) dbsc: dbsc::DbscPaths,
}

impl SessionPolicy {
    /// Idle timeout 30 minutes, absolute lifetime 12 hours, password-only sessions 10 minutes,
    /// binding required (grace 2 minutes) with a bound cookie of 5 minutes, soft signals off.
    pub fn new() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_lifetime: Duration::from_secs(12 * 3600),
            password_only_lifetime: Duration::from_secs(10 * 60),
            touch_interval: Duration::from_secs(60),
            binding: BindingMode::Required {
                grace: Duration::from_secs(120),
            },
            bound_cookie_lifetime: Duration::from_secs(5 * 60),
            soft_signals: false,
            dbsc: dbsc::DbscPaths::new(),
        }
    }

    /// Idle timeout (1 minute to 12 hours) and absolute lifetime (at least the idle timeout,
    /// at most 30 days).
    ///
    /// # Errors
    /// [`ConfigError::Session`] outside those bounds.
    pub fn with_lifetimes(
        mut self,
        idle: Duration,
        absolute: Duration,
    ) -> Result<Self, ConfigError> {
        let minute = Duration::from_secs(60);
        if idle < minute || idle > Duration::from_secs(12 * 3600) {
            return Err(ConfigError::Session(
                "idle timeout must be 1 minute to 12 hours",
            ));
        }
        if absolute < idle || absolute > Duration::from_secs(30 * 24 * 3600) {
            return Err(ConfigError::Session(
                "absolute lifetime must be at least the idle timeout and at most 30 days",
            ));
        }
        self.idle_timeout = idle;
        self.absolute_lifetime = absolute;
        self.touch_interval = self.touch_interval.min(idle / 4);
        Ok(self)
    }

    /// How long a password-only session may take to pass the second factor (1 to 60
    /// minutes).
    ///
    /// # Errors
    /// [`ConfigError::Session`] outside that range.
    pub fn with_password_only_lifetime(mut self, lifetime: Duration) -> Result<Self, ConfigError> {
        if lifetime < Duration::from_secs(60) || lifetime > Duration::from_secs(3600) {
            return Err(ConfigError::Session(
                "password-only lifetime must be 1 to 60 minutes",
            ));
        }
        self.password_only_lifetime = lifetime;
        Ok(self)
    }

    /// Device binding: the mode, and the bound cookie's lifetime (30 seconds to 1 hour): how
    /// long a stolen bound cookie works, and how often the device signs a refresh.
    ///
    /// # Errors
    /// [`ConfigError::Session`] outside those bounds, or a grace above 10 minutes.
    pub fn with_binding(
        mut self,
        mode: BindingMode,
        bound_cookie_lifetime: Duration,
    ) -> Result<Self, ConfigError> {
        if bound_cookie_lifetime < Duration::from_secs(30)
            || bound_cookie_lifetime > Duration::from_secs(3600)
        {
            return Err(ConfigError::Session(
                "bound cookie lifetime must be 30 seconds to 1 hour",
            ));
        }
        if let BindingMode::Required { grace } = mode {
            if grace > Duration::from_secs(600) {
                return Err(ConfigError::Session(
                    "binding grace must be at most 10 minutes",
                ));
            }
        }
        self.binding = mode;
        self.bound_cookie_lifetime = bound_cookie_lifetime;
        Ok(self)
    }

    /// Soft signals: when the client's address prefix (IPv4 /24, IPv6 /48) or user agent
    /// changes mid-session, ask for a step-up ([`StepUpReason::SignalsChanged`]). Off by
    /// default: mobile users change networks, and an infostealer replays from anywhere with
    /// any user agent it copied, so these are hints, never a binding.
    pub fn with_soft_signals(mut self, on: bool) -> Self {
        self.soft_signals = on;
        self
    }

    /// The DBSC endpoints' paths (default `/verrou/dbsc/register` and `/verrou/dbsc/refresh`).
    pub fn with_dbsc_paths(mut self, paths: dbsc::DbscPaths) -> Self {
        self.dbsc = paths;
        self
    }

    /// The DBSC endpoints' paths.
    pub fn dbsc_paths(&self) -> &dbsc::DbscPaths {
        &self.dbsc
    }

    /// The idle timeout.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// The absolute lifetime.
    pub fn absolute_lifetime(&self) -> Duration {
        self.absolute_lifetime
    }

    /// The bound cookie's lifetime.
    pub fn bound_cookie_lifetime(&self) -> Duration {
        self.bound_cookie_lifetime
    }

    /// How long a challenge stays answerable: longer than the bound cookie (so a browser
    /// refreshing at expiry still holds a valid one), as the DBSC notes require.
    pub fn challenge_ttl(&self) -> Duration {
        self.bound_cookie_lifetime + Duration::from_secs(5 * 60)
    }
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self::new()
    }
}

/// A server challenge: 256 random bits as 43 Base64url characters, answered once.
#[derive(Clone, Eq, PartialEq)]
pub struct Challenge(String);

impl Challenge {
    /// Draws a fresh challenge.
    ///
    /// # Errors
    /// [`CryptoError::Rng`] when the OS RNG fails.
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self(SessionToken::generate()?.expose_secret().to_owned()))
    }

    /// Wraps a stored challenge.
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    /// The challenge as sent to the client.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Challenge(…)")
    }
}

/// How a second factor was passed.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub enum SecondFactorMethod {
    /// A TOTP code from the enrolled app.
    Totp,
    /// A recovery code: second-factor assurance, but the user has probably lost the app.
    /// Urge them to re-enrol (and to regenerate their codes).
    RecoveryCode,
}

impl SecondFactorMethod {
    /// Every method, for stores that keep them as codes.
    pub const ALL: [Self; 2] = [Self::Totp, Self::RecoveryCode];

    /// A short stable name, for logs and the audit trail's records.
    pub fn name(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::RecoveryCode => "recovery_code",
        }
    }
}

/// Which device-binding client registered.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub enum BindingKind {
    /// The browser's Device Bound Session Credentials.
    Dbsc,
    /// verrou's WebCrypto fallback script.
    WebCrypto,
}

impl BindingKind {
    /// Every kind, for stores that keep them as codes.
    pub const ALL: [Self; 2] = [Self::Dbsc, Self::WebCrypto];

    /// A short stable name, for logs and the audit trail's records.
    pub fn name(self) -> &'static str {
        match self {
            Self::Dbsc => "dbsc",
            Self::WebCrypto => "webcrypto",
        }
    }
}

/// Why a bound session's request was refused for its bound cookie
/// ([`AuditKind::BoundCookieRefused`](crate::AuditKind::BoundCookieRefused)). A browser that
/// holds the device key answers with a refresh; a copied session cookie replayed from
/// another machine ends here once the bound cookie copied with it expires.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub enum BoundCookieProblem {
    /// The request carried no bound cookie, or one that is not a token.
    Missing,
    /// The bound cookie was issued to this session but has expired.
    Expired,
    /// The bound cookie is a token this session never had, or one older than its previous.
    Unknown,
}

impl BoundCookieProblem {
    /// Every reason, for stores that keep them as codes.
    pub const ALL: [Self; 3] = [Self::Missing, Self::Expired, Self::Unknown];

    /// A short stable name, for logs and the audit trail's records.
    pub fn name(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Expired => "expired",
            Self::Unknown => "unknown",
        }
    }
}

/// Which sessions to revoke.
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum RevocationScope {
    /// One session.
    Session(SessionId),
    /// Every session of a user, except possibly one (the one making the request).
    User {
        /// Whose sessions.
        user: UserId,
        /// A session to keep.
        except: Option<SessionId>,
    },
    /// Every session of an organisation.
    Org(OrgId),
    /// Every session created before an instant (for example the start of an incident).
    IssuedBefore(Timestamp),
}

/// Why a session was revoked (recorded in the audit trail).
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub enum RevocationReason {
    /// The user logged out.
    Logout,
    /// An operator or the user revoked it (one session, a user's, an organisation's, or all
    /// before an instant).
    Revoked,
    /// The user's second factor was reset, replaced or disabled.
    FactorChanged,
    /// A device-binding refresh failed: the cookie was probably replayed from elsewhere.
    BindingFailed,
}

impl RevocationReason {
    /// Every reason, for stores that keep them as codes.
    pub const ALL: [Self; 4] = [
        Self::Logout,
        Self::Revoked,
        Self::FactorChanged,
        Self::BindingFailed,
    ];

    /// A short stable name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::Revoked => "revoked",
            Self::FactorChanged => "factor_changed",
            Self::BindingFailed => "binding_failed",
        }
    }
}

/// Why a session must pass the second factor again before the request.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum StepUpReason {
    /// The last second factor is older than the step-up freshness.
    Stale,
    /// The soft signals (address prefix, user agent) changed.
    SignalsChanged,
}

/// Why a session ended on its own.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum ExpiryReason {
    /// Unused for longer than the idle timeout.
    Idle,
    /// Older than the absolute lifetime.
    Absolute,
    /// Password-only for longer than the password-only lifetime.
    SecondFactorNotCompleted,
}
