//! The service facade: enrolment, verification and operator actions, with the rules and the
//! audit trail. Composes the pure primitives with a [`Store`]. Sessions (`sessions.rs`),
//! device binding (`binding.rs`) and imports from another TOTP system (`import.rs`) are
//! further `impl` blocks of the same [`Verrou`].

mod binding;
mod import;
mod sessions;

pub use self::binding::{BindingOutcome, BoundCredential, RefreshOutcome};
pub use self::import::ImportedFactor;
pub use self::sessions::{
    ActiveSession, Elevated, ElevationOutcome, NewSession, SecondFactorPassed, SessionCookies,
    SessionStatus,
};

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretSlice, SecretString};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::audit::{self, AuditEvent, AuditKind, AuditSink};
use crate::clock::{Clock, SystemClock, Timestamp};
use crate::error::{ApiMisuse, ConfigError, CryptoError, Error, InputError};
use crate::ids::{FactorId, SessionId, UserId};
use crate::lockout::{Gate, ThrottlePolicy, ThrottleState};
use crate::recovery::{self, HashGate, HashParams, MalformedRecoveryCode, RecoveryCodeInput};
use crate::secret::TotpSecret;
use crate::session::{RevocationReason, RevocationScope, SessionPolicy, TokenHash};
use crate::store::{
    Activation, Consumption, PendingTotp, RecoveryCodeRecord, Replacement, Reservation,
    StepAdvance, Store, ThrottleKey,
};
use crate::totp::{
    self, CodeGenerator, CodeInput, MalformedCode, OtpAuthUri, TotpParams, WindowMatch,
};

const MAX_ISSUER_LEN: usize = 128;

/// Settings of a [`Verrou`] service. Every setter validates, so a config is always usable.
#[derive(Clone, Debug)]
pub struct VerrouConfig {
    issuer: String,
    totp_params: TotpParams,
    skew: u8,
    pending_enrollment_ttl: Duration,
    reenrollment_freshness: Duration,
    account_throttle: ThrottlePolicy,
    address_throttle: Option<ThrottlePolicy>,
    ipv6_throttle_prefix: u8,
    recovery_set_size: usize,
    recovery_hash: HashParams,
    argon2_concurrency: usize,
    argon2_max_in_flight: usize,
    sessions: SessionPolicy,
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
            reenrollment_freshness: Duration::from_secs(5 * 60),
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
    /// further attempts are refused as [`RecoveryOutcome::Busy`].
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

    /// How recent a second-factor proof must be to start a re-enrolment (1 second to 1 hour).
    ///
    /// # Errors
    /// [`ConfigError::Duration`] outside that range.
    pub fn with_reenrollment_freshness(mut self, max_age: Duration) -> Result<Self, ConfigError> {
        if max_age.as_secs() == 0 || max_age > Duration::from_secs(3600) {
            return Err(ConfigError::Duration("reenrollment_freshness"));
        }
        self.reenrollment_freshness = max_age;
        Ok(self)
    }

    /// How recent a second factor must be for step-up actions (re-enrolment, recovery-code
    /// regeneration, disabling the factor, and [`Requirement::RecentSecondFactor`](crate::session::Requirement::RecentSecondFactor) pages):
    /// the same setting as [`VerrouConfig::with_reenrollment_freshness`].
    ///
    /// # Errors
    /// [`ConfigError::Duration`] outside 1 second to 1 hour.
    pub fn with_step_up_freshness(self, max_age: Duration) -> Result<Self, ConfigError> {
        self.with_reenrollment_freshness(max_age)
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

    /// Also throttle per client address (see [`ClientContext`]); `None` turns it off.
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

fn default_argon2_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// What the portal knows about the client making a request.
///
/// # Security
/// Give the address the portal *trusts*: the socket peer, or the client address your own
/// reverse proxy reports. A raw `X-Forwarded-For` header is attacker-controlled; passing it
/// here lets an attacker pick a fresh address for every guess (the per-account throttle
/// still holds).
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct ClientContext {
    addr: Option<IpAddr>,
    user_agent: Option<[u8; 32]>,
}

impl ClientContext {
    /// No client address known: only the per-account throttle applies.
    pub fn unknown() -> Self {
        Self::default()
    }

    /// A request from `addr`.
    pub fn from_addr(addr: IpAddr) -> Self {
        Self {
            addr: Some(addr),
            ..Self::default()
        }
    }

    /// The request's `User-Agent` (kept only as a hash, for the optional soft signals).
    pub fn with_user_agent(mut self, user_agent: &str) -> Self {
        self.user_agent = Some(Sha256::digest(user_agent.as_bytes()).into());
        self
    }

    /// The client address, if known.
    pub fn addr(&self) -> Option<IpAddr> {
        self.addr
    }

    /// Digest of the soft signals: the address prefix (IPv4 /24, IPv6 /48) and the user-agent
    /// hash. `None` when neither is known.
    pub(crate) fn signals(&self) -> Option<TokenHash> {
        if self.addr.is_none() && self.user_agent.is_none() {
            return None;
        }
        let prefix = self.addr.map(|addr| match addr.to_canonical() {
            IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) & 0xffff_ff00).into()),
            IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 80) - 1)).into()),
        });
        let mut hasher = Sha256::new();
        hasher.update(b"verrou soft signals v1\0");
        hasher.update(prefix.map(|p| p.to_string()).unwrap_or_default().as_bytes());
        hasher.update(b"\0");
        hasher.update(self.user_agent.unwrap_or_default());
        Some(TokenHash(hasher.finalize().into()))
    }
}

/// Proof that `user` passed a second factor at `verified_at`.
///
/// Only verrou creates one (no public constructor, no serde, no `Clone`), and every call
/// that uses one takes it **by value**: a proof is spent by its first use.
///
/// What a proof is good for, and for how long:
/// - **From an accepted code** ([`Verrou::verify_totp`], [`Verrou::verify_recovery_code`],
///   [`Verrou::finish_totp_enrollment`]): raises one session, once
///   ([`Verrou::record_second_factor`]), or authorises one sensitive action
///   ([`Verrou::start_totp_reenrollment`], [`Verrou::generate_recovery_codes`],
///   [`Verrou::disable_totp`]). One accepted code therefore elevates at most one session.
/// - **From a live session** ([`ActiveSession::step_up_proof`]): authorises one sensitive
///   action for that session, and is checked against the session when used, so a proof kept
///   after a logout or a revocation is refused. It never raises a session (that needs a code).
/// - Either is good for the step-up freshness after the second factor (5 minutes by
///   default, [`VerrouConfig::with_reenrollment_freshness`]); an older one is answered with
///   `StepUpRequired`.
///
/// One code, one session: using a proof twice does not compile
/// ```compile_fail,E0382
/// # use verrou::{ClientContext, SecondFactorProof, Verrou};
/// # use verrou::store::MemoryStore;
/// # async fn run(verrou: Verrou<MemoryStore>, proof: SecondFactorProof, a: &str, b: &str) -> Result<(), verrou::Error> {
/// let ctx = ClientContext::unknown();
/// let _ = verrou.record_second_factor(a, proof, &ctx).await?;
/// let _ = verrou.record_second_factor(b, proof, &ctx).await?; // use of moved value
/// # Ok(()) }
/// ```
/// and neither does keeping a copy:
/// ```compile_fail,E0599
/// # fn keep(proof: verrou::SecondFactorProof) {
/// let copy = proof.clone(); // no `Clone`
/// # }
/// ```
#[derive(Debug, Eq, PartialEq)]
pub struct SecondFactorProof {
    user: UserId,
    verified_at: Timestamp,
    method: SecondFactorMethod,
    /// `Some` when the proof stands for a session's earlier second factor.
    session: Option<SessionId>,
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
}

impl SecondFactorProof {
    /// A proof from a code accepted at `verified_at`.
    fn new(user: &UserId, verified_at: Timestamp, method: SecondFactorMethod) -> Self {
        Self {
            user: user.clone(),
            verified_at,
            method,
            session: None,
        }
    }

    /// A proof standing for the second factor `session` passed at `verified_at`.
    pub(crate) fn of_session(
        user: &UserId,
        verified_at: Timestamp,
        method: SecondFactorMethod,
        session: SessionId,
    ) -> Self {
        Self {
            session: Some(session),
            ..Self::new(user, verified_at, method)
        }
    }

    /// The session this proof stands for, when it came from one
    /// ([`ActiveSession::step_up_proof`]); `None` for a proof from an accepted code.
    pub fn session(&self) -> Option<SessionId> {
        self.session
    }

    /// Which factor was passed.
    pub fn method(&self) -> SecondFactorMethod {
        self.method
    }

    /// Whose second factor was verified.
    pub fn user(&self) -> &UserId {
        &self.user
    }

    /// When.
    pub fn verified_at(&self) -> Timestamp {
        self.verified_at
    }
}

/// A user's throttle, as [`Verrou::account_throttle`] reports it.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct ThrottleStatus {
    /// Failures counted since the last success or reset.
    pub failures: u32,
    /// When the last one was counted, if any.
    pub last_failure: Option<Timestamp>,
    /// Whether an attempt now would be checked ([`Gate::Open`]), or when it could be.
    pub gate: Gate,
}

/// The outcome of [`Verrou::verify_totp`].
#[must_use]
#[derive(Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum TotpOutcome {
    /// The code is valid and its time step was not used before; it is now.
    Accepted(TotpAccepted),
    /// The code matches no step of the window.
    Invalid,
    /// The code's time step was already used: a replayed or double-submitted code.
    Replayed,
    /// Too many recent failures: the code was not checked. Try again after `retry_after`.
    Throttled {
        /// How long to wait.
        retry_after: Duration,
    },
    /// The account (or client address) is locked: the code was not checked.
    Locked {
        /// When the lock expires; `None` until an operator lifts it.
        until: Option<Timestamp>,
    },
    /// The input is not a code (see [`CodeInput`] for the rule): nothing was checked or
    /// counted.
    Malformed(MalformedCode),
    /// The user has no active TOTP factor.
    NotEnrolled,
}

/// Details of an accepted code.
#[derive(Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct TotpAccepted {
    /// The matched time step.
    pub step: u64,
    /// Matched step minus current step (within ± the skew).
    pub drift: i8,
    /// Proof of a fresh second factor, for step-up actions.
    pub proof: SecondFactorProof,
}

/// The outcome of [`Verrou::finish_totp_enrollment`].
#[must_use]
#[derive(Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum EnrollmentOutcome {
    /// The factor is active; the confirming code's time step counts as used.
    Confirmed {
        /// The new active factor.
        factor: FactorId,
        /// The confirming code is a fresh second factor.
        proof: SecondFactorProof,
    },
    /// The code does not match the pending factor.
    Invalid,
    /// The pending enrolment expired: start again.
    Expired,
    /// No enrolment is pending (never started, already confirmed, or superseded).
    NotPending,
    /// Too many recent failures: try again after `retry_after`.
    Throttled {
        /// How long to wait.
        retry_after: Duration,
    },
    /// The account (or client address) is locked.
    Locked {
        /// When the lock expires; `None` until an operator lifts it.
        until: Option<Timestamp>,
    },
    /// The input is not a code.
    Malformed(MalformedCode),
}

/// The outcome of [`Verrou::disable_totp`].
#[must_use]
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum DisableOutcome {
    /// The factor and recovery codes are gone; the user's other sessions are revoked.
    Disabled {
        /// Whether there was a factor.
        had_factor: bool,
        /// How many other sessions were revoked.
        revoked_sessions: usize,
    },
    /// The proof is too old: ask for a current code first.
    StepUpRequired,
}

/// The outcome of [`Verrou::start_totp_reenrollment`].
#[must_use]
#[derive(Debug)]
#[non_exhaustive]
pub enum ReenrollmentOutcome {
    /// A new factor is pending; the old one stays active until it is confirmed.
    Started(EnrollmentOffer),
    /// The proof is too old (or from the future): ask for a current code first.
    StepUpRequired,
}

/// What to show the user once when enrolment starts: the secret, its URI and QR code.
///
/// Everything here contains the secret: send it to the user over the authenticated page that
/// started enrolment, never log it, never store it. verrou will not show it again.
pub struct EnrollmentOffer {
    factor: FactorId,
    uri: SecretString,
    secret_base32: SecretString,
    params: TotpParams,
    expires_at: Timestamp,
}

impl EnrollmentOffer {
    /// The pending factor's id.
    pub fn factor(&self) -> FactorId {
        self.factor
    }

    /// The `otpauth://` URI.
    pub fn otpauth_uri(&self) -> &SecretString {
        &self.uri
    }

    /// The secret in Base32, for users who type it instead of scanning.
    pub fn secret_base32(&self) -> &SecretString {
        &self.secret_base32
    }

    /// Hash, digits and period of the new factor.
    pub fn params(&self) -> TotpParams {
        self.params
    }

    /// When the pending factor stops being confirmable.
    pub fn expires_at(&self) -> Timestamp {
        self.expires_at
    }

    /// The URI as an SVG QR code.
    ///
    /// # Errors
    /// [`InputError::Qr`] if the URI does not fit in a QR code.
    pub fn qr_svg(&self) -> Result<SecretString, Error> {
        Ok(totp::qr_svg(self.uri.expose_secret()).map_err(InputError::from)?)
    }

    /// The URI as an SVG QR code to place inside an HTML page: the `<svg>` element alone,
    /// without the XML prolog [`EnrollmentOffer::qr_svg`] starts with (a standalone file's).
    ///
    /// # Errors
    /// [`InputError::Qr`] if the URI does not fit in a QR code.
    pub fn qr_svg_inline(&self) -> Result<SecretString, Error> {
        Ok(totp::qr_svg_inline(self.uri.expose_secret()).map_err(InputError::from)?)
    }

    /// The URI as a PNG QR code.
    ///
    /// # Errors
    /// [`InputError::Qr`] if the URI does not fit or the encoder fails.
    pub fn qr_png(&self) -> Result<SecretSlice<u8>, Error> {
        Ok(totp::qr_png(self.uri.expose_secret()).map_err(InputError::from)?)
    }
}

impl fmt::Debug for EnrollmentOffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollmentOffer")
            .field("factor", &self.factor)
            .field("uri", &"[REDACTED]")
            .field("secret_base32", &"[REDACTED]")
            .field("params", &self.params)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The outcome of [`Verrou::generate_recovery_codes`].
#[must_use]
#[derive(Debug)]
#[non_exhaustive]
pub enum RecoveryCodesOutcome {
    /// The new set, to show once. The old set no longer works.
    Generated(RecoveryCodeSet),
    /// The proof is too old: ask for a current second factor first.
    StepUpRequired,
    /// The user has no active factor any more (an operator reset it, or the user turned it
    /// off, after the proof was issued): no codes were stored.
    NoActiveFactor,
}

/// A new set of recovery codes, in display form (`XXXX-XXXX-XXXX-XXXX`). Redacted in `Debug`.
pub struct RecoveryCodeSet {
    codes: Vec<SecretString>,
}

impl RecoveryCodeSet {
    /// The codes, to show the user once.
    pub fn codes(&self) -> &[SecretString] {
        &self.codes
    }
}

impl fmt::Debug for RecoveryCodeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecoveryCodeSet({} codes, [REDACTED])", self.codes.len())
    }
}

/// The outcome of [`Verrou::verify_recovery_code`].
#[must_use]
#[derive(Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum RecoveryOutcome {
    /// The code was valid and unused; it is now used. `proof.method()` is
    /// [`SecondFactorMethod::RecoveryCode`]: urge the user to re-enrol.
    Accepted {
        /// Unused codes left.
        remaining: usize,
        /// Second-factor assurance, by recovery code.
        proof: SecondFactorProof,
    },
    /// Not one of the user's codes.
    Invalid,
    /// One of the user's codes, already used.
    Replayed,
    /// Too many recent failures: not checked. Try again after `retry_after`.
    Throttled {
        /// How long to wait.
        retry_after: Duration,
    },
    /// The account (or client address) is locked: not checked.
    Locked {
        /// When the lock expires; `None` until an operator lifts it.
        until: Option<Timestamp>,
    },
    /// Too many argon2 verifications in flight on this instance: not checked, and so not
    /// counted against the user either.
    Busy {
        /// A hint for when to retry.
        retry_after: Duration,
    },
    /// The input is not a recovery code: nothing hashed, counted or changed.
    Malformed(MalformedRecoveryCode),
}

/// Why the throttle refused an attempt.
enum Refusal {
    Throttled(Duration),
    Locked(Option<Timestamp>),
}

/// A counted attempt: the account counter after counting, to report a lock it started.
struct Counted {
    account: ThrottleState,
}

/// What happened to a code checked against one secret.
enum Checked {
    /// Not a code: nothing counted or compared.
    Malformed(MalformedCode),
    /// The throttle refused: nothing compared.
    Refused(Refusal),
    /// Counted, then compared with every step of the window.
    Compared {
        matched: WindowMatch,
        counted: Counted,
    },
}

/// verrou's service: what most portals use.
///
/// Generic over the [`Store`] and the [`Clock`]; cheap to share behind an `Arc`.
pub struct Verrou<S, C = SystemClock> {
    store: S,
    clock: C,
    config: VerrouConfig,
    sink: Option<Arc<dyn AuditSink>>,
    hash_gate: Arc<HashGate>,
}

impl<S, C> fmt::Debug for Verrou<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verrou")
            .field("config", &self.config)
            .field("audit_sink", &self.sink.is_some())
            .finish_non_exhaustive()
    }
}

impl<S: Store> Verrou<S, SystemClock> {
    /// A service over `store` with the system clock.
    pub fn new(store: S, config: VerrouConfig) -> Self {
        let hash_gate = Arc::new(HashGate::new(
            config.argon2_concurrency,
            config.argon2_max_in_flight,
        ));
        Self {
            store,
            clock: SystemClock,
            config,
            sink: None,
            hash_gate,
        }
    }
}

impl<S: Store, C: Clock> Verrou<S, C> {
    /// The same service with another clock.
    pub fn with_clock<C2: Clock>(self, clock: C2) -> Verrou<S, C2> {
        Verrou {
            store: self.store,
            clock,
            config: self.config,
            sink: self.sink,
            hash_gate: self.hash_gate,
        }
    }

    /// Also send audit events to `sink` (they always go to `tracing`).
    pub fn with_audit_sink(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The configuration.
    pub fn config(&self) -> &VerrouConfig {
        &self.config
    }

    /// Begins a first TOTP enrolment: draws a secret and keeps it pending until
    /// [`Verrou::finish_totp_enrollment`] receives a valid code. Starting again replaces the
    /// pending factor.
    ///
    /// # Errors
    /// [`ApiMisuse::FactorAlreadyActive`] if the user already has an active factor: replacing
    /// it needs [`Verrou::start_totp_reenrollment`] and a fresh second factor.
    /// [`InputError::Label`] if `account_name` cannot be shown in an app.
    pub async fn start_totp_enrollment(
        &self,
        user: &UserId,
        account_name: &str,
        ctx: &ClientContext,
    ) -> Result<EnrollmentOffer, Error> {
        let now = self.clock.now()?;
        if self.store.active_totp(user).await?.is_some() {
            return Err(ApiMisuse::FactorAlreadyActive.into());
        }
        self.begin_enrollment(user, account_name, None, ctx, now)
            .await
    }

    /// Begins replacing the user's active factor. The old factor keeps working until the new
    /// one is confirmed; if the old one changes in between, confirmation fails.
    ///
    /// `proof` (spent here) must be from a second factor within the configured freshness
    /// (default 5 minutes) and, if it stands for a session, that session must still be live;
    /// otherwise the outcome is [`ReenrollmentOutcome::StepUpRequired`]. Confirm the new
    /// factor with [`Verrou::finish_totp_reenrollment`].
    ///
    /// # Errors
    /// [`ApiMisuse::NoActiveFactor`] if the user has no active factor;
    /// [`InputError::Label`] for an unusable account name.
    pub async fn start_totp_reenrollment(
        &self,
        proof: SecondFactorProof,
        account_name: &str,
        ctx: &ClientContext,
    ) -> Result<ReenrollmentOutcome, Error> {
        let now = self.clock.now()?;
        if !self.step_up_allowed(&proof, now).await? {
            return Ok(ReenrollmentOutcome::StepUpRequired);
        }
        let Some(active) = self.store.active_totp(&proof.user).await? else {
            return Err(ApiMisuse::NoActiveFactor.into());
        };
        let offer = self
            .begin_enrollment(&proof.user, account_name, Some(active.id), ctx, now)
            .await?;
        Ok(ReenrollmentOutcome::Started(offer))
    }

    async fn begin_enrollment(
        &self,
        user: &UserId,
        account_name: &str,
        replaces: Option<FactorId>,
        ctx: &ClientContext,
        now: Timestamp,
    ) -> Result<EnrollmentOffer, Error> {
        let params = self.config.totp_params;
        let secret = TotpSecret::generate()?;
        let uri = OtpAuthUri::new(
            Some(&self.config.issuer),
            account_name,
            secret.clone(),
            params,
        )?;
        let factor = FactorId::generate()?;
        let expires_at = now.saturating_add(self.config.pending_enrollment_ttl);
        let offer = EnrollmentOffer {
            factor,
            uri: uri.to_uri(),
            secret_base32: secret.to_base32(),
            params,
            expires_at,
        };
        let pending = PendingTotp {
            id: factor,
            secret,
            params,
            replaces,
            created_at: now,
            expires_at,
        };
        self.store.put_pending_totp(user, pending).await?;
        self.emit(
            user,
            ctx,
            now,
            AuditKind::TotpEnrollmentStarted {
                factor,
                replaces_active: replaces.is_some(),
            },
        )
        .await?;
        Ok(offer)
    }

    /// Confirms a first enrolment's pending factor with a first code from the app. On
    /// success the factor is active and the code's time step counts as used. Wrong codes
    /// count in the account's throttle like any second-factor attempt.
    ///
    /// # Errors
    /// [`ApiMisuse::ReenrollmentPending`] if the pending factor replaces an active one
    /// (confirm it with [`Verrou::finish_totp_reenrollment`], which says which session to
    /// keep); otherwise only store, clock or crypto failures: a wrong code is an outcome.
    pub async fn finish_totp_enrollment(
        &self,
        user: &UserId,
        code: &str,
        ctx: &ClientContext,
    ) -> Result<EnrollmentOutcome, Error> {
        self.confirm_pending(user, code, None, ctx).await
    }

    /// Confirms a re-enrolment's pending factor (see [`Verrou::start_totp_reenrollment`])
    /// with a first code from the new app. On success the new factor replaces the old one
    /// and **every session of the user but `acting_session` is revoked**: the old factor
    /// admitted them. Pass the session confirming (`Some(session.id)`), or `None` to end
    /// them all.
    ///
    /// # Errors
    /// [`ApiMisuse::NoReenrollmentPending`] if the pending factor is a first enrolment;
    /// otherwise only store, clock or crypto failures: a wrong code is an outcome.
    pub async fn finish_totp_reenrollment(
        &self,
        user: &UserId,
        code: &str,
        acting_session: Option<SessionId>,
        ctx: &ClientContext,
    ) -> Result<EnrollmentOutcome, Error> {
        self.confirm_pending(user, code, Some(acting_session), ctx)
            .await
    }

    /// Confirms the pending factor: a first enrolment when `reenrolling` is `None`, a
    /// re-enrolment keeping the given session otherwise.
    async fn confirm_pending(
        &self,
        user: &UserId,
        code: &str,
        reenrolling: Option<Option<SessionId>>,
        ctx: &ClientContext,
    ) -> Result<EnrollmentOutcome, Error> {
        let now = self.clock.now()?;
        if let Err(reason) = CodeInput::precheck(code) {
            return Ok(EnrollmentOutcome::Malformed(trace_malformed(user, reason)));
        }
        let Some(pending) = self.store.pending_totp(user).await? else {
            return Ok(EnrollmentOutcome::NotPending);
        };
        match (pending.replaces, reenrolling) {
            (Some(_), None) => return Err(ApiMisuse::ReenrollmentPending.into()),
            (None, Some(_)) => return Err(ApiMisuse::NoReenrollmentPending.into()),
            _ => {}
        }
        if pending.expires_at <= now {
            return Ok(EnrollmentOutcome::Expired);
        }
        let (matched, counted) = match self
            .check_code(user, ctx, now, code, &pending.secret, pending.params, None)
            .await?
        {
            Checked::Malformed(reason) => {
                return Ok(EnrollmentOutcome::Malformed(trace_malformed(user, reason)))
            }
            Checked::Refused(Refusal::Throttled(retry_after)) => {
                return Ok(EnrollmentOutcome::Throttled { retry_after })
            }
            Checked::Refused(Refusal::Locked(until)) => {
                return Ok(EnrollmentOutcome::Locked { until })
            }
            Checked::Compared { matched, counted } => (matched, counted),
        };
        let WindowMatch::Fresh { step, .. } = matched else {
            let factor = pending.id;
            self.emit(user, ctx, now, AuditKind::TotpEnrollmentInvalid { factor })
                .await?;
            self.report_lock(user, ctx, now, &counted).await?;
            return Ok(EnrollmentOutcome::Invalid);
        };
        match self
            .store
            .activate_pending_totp(user, pending.id, step, now)
            .await?
        {
            Activation::Activated => {
                self.store
                    .clear_throttle(&ThrottleKey::Account(user))
                    .await?;
                let factor = pending.id;
                self.emit(
                    user,
                    ctx,
                    now,
                    AuditKind::TotpEnrollmentConfirmed { factor },
                )
                .await?;
                if let Some(acting) = reenrolling {
                    // A new factor voids every session the old one admitted, but the one
                    // re-enrolling (if the portal named it).
                    self.revoke_other_sessions(user, acting, ctx).await?;
                }
                Ok(EnrollmentOutcome::Confirmed {
                    factor,
                    proof: SecondFactorProof::new(user, now, SecondFactorMethod::Totp),
                })
            }
            Activation::Expired => Ok(EnrollmentOutcome::Expired),
            Activation::NotPending | Activation::Superseded => Ok(EnrollmentOutcome::NotPending),
        }
    }

    /// Verifies a TOTP code for `user`.
    ///
    /// In order: input that is not a code is [`TotpOutcome::Malformed`] (nothing counted or
    /// checked); the attempt is counted against the throttle *before* the check (refused as
    /// `Throttled`/`Locked`); every step of the window is compared in constant time; a
    /// fresh match is recorded with an atomic compare-and-set on the last used step, so of
    /// concurrent requests with one code exactly one is `Accepted`.
    ///
    /// # Errors
    /// Only for store, clock or crypto failures; a wrong code is an outcome.
    pub async fn verify_totp(
        &self,
        user: &UserId,
        code: &str,
        ctx: &ClientContext,
    ) -> Result<TotpOutcome, Error> {
        let now = self.clock.now()?;
        if let Err(reason) = CodeInput::precheck(code) {
            return Ok(TotpOutcome::Malformed(trace_malformed(user, reason)));
        }
        let Some(factor) = self.store.active_totp(user).await? else {
            return Ok(TotpOutcome::NotEnrolled);
        };
        let last_step = Some(factor.last_step);
        let (matched, counted) = match self
            .check_code(
                user,
                ctx,
                now,
                code,
                &factor.secret,
                factor.params,
                last_step,
            )
            .await?
        {
            Checked::Malformed(reason) => {
                return Ok(TotpOutcome::Malformed(trace_malformed(user, reason)))
            }
            Checked::Refused(Refusal::Throttled(retry_after)) => {
                return Ok(TotpOutcome::Throttled { retry_after })
            }
            Checked::Refused(Refusal::Locked(until)) => return Ok(TotpOutcome::Locked { until }),
            Checked::Compared { matched, counted } => (matched, counted),
        };
        let factor = factor.id;
        let (step, drift) = match matched {
            WindowMatch::Fresh { step, drift } => (step, drift),
            WindowMatch::Used => return self.replayed(user, ctx, now, factor, &counted).await,
            WindowMatch::NoMatch => {
                self.emit(user, ctx, now, AuditKind::TotpInvalid { factor })
                    .await?;
                self.report_lock(user, ctx, now, &counted).await?;
                return Ok(TotpOutcome::Invalid);
            }
        };
        // Records the step, resets the account's failure count and stores the audit record,
        // atomically: an accepted step is never missing from the trail.
        let accepted = AuditEvent {
            at: now,
            user: user.clone(),
            client: ctx.addr,
            kind: AuditKind::TotpAccepted {
                factor,
                step,
                drift,
            },
        };
        match self
            .store
            .accept_totp_step(user, factor, step, accepted.clone())
            .await?
        {
            StepAdvance::Advanced => self.announce(&accepted),
            StepAdvance::AlreadyUsed => {
                return self.replayed(user, ctx, now, factor, &counted).await
            }
            // The factor was replaced or removed while we checked: its codes are void.
            StepAdvance::NoSuchFactor => {
                self.emit(user, ctx, now, AuditKind::TotpInvalid { factor })
                    .await?;
                return Ok(TotpOutcome::Invalid);
            }
        }
        Ok(TotpOutcome::Accepted(TotpAccepted {
            step,
            drift,
            proof: SecondFactorProof::new(user, now, SecondFactorMethod::Totp),
        }))
    }

    /// The part every code check shares: parse the input for `params`, count the attempt,
    /// then compare it with every step of the window.
    #[allow(clippy::too_many_arguments)]
    async fn check_code(
        &self,
        user: &UserId,
        ctx: &ClientContext,
        now: Timestamp,
        code: &str,
        secret: &TotpSecret,
        params: TotpParams,
        last_step: Option<u64>,
    ) -> Result<Checked, Error> {
        let input = match CodeInput::parse(code, params.digits()) {
            Ok(input) => input,
            Err(reason) => return Ok(Checked::Malformed(reason)),
        };

        let counted = match self.reserve_attempt(user, ctx, now).await? {
            Ok(counted) => counted,
            Err(refusal) => return Ok(Checked::Refused(refusal)),
        };
        let generator = CodeGenerator::new(secret, params)?;
        let matched = totp::match_window(&generator, &input, now, self.config.skew, last_step)?;
        Ok(Checked::Compared { matched, counted })
    }

    /// Draws a new set of recovery codes for the proof's user, replacing the old set at once
    /// (old codes stop working). Needs a second factor verified within the re-enrolment
    /// freshness (default 5 minutes), otherwise [`RecoveryCodesOutcome::StepUpRequired`].
    ///
    /// # Security
    /// Show the codes once, on the page that asked for them; verrou keeps only argon2id
    /// hashes and cannot show them again.
    ///
    /// # Errors
    /// Store, clock, RNG or hashing failures.
    pub async fn generate_recovery_codes(
        &self,
        proof: SecondFactorProof,
        ctx: &ClientContext,
    ) -> Result<RecoveryCodesOutcome, Error> {
        let now = self.clock.now()?;
        if !self.step_up_allowed(&proof, now).await? {
            return Ok(RecoveryCodesOutcome::StepUpRequired);
        }
        let generated = recovery::generate(self.config.recovery_set_size)?;
        let mut records = Vec::with_capacity(generated.len());
        let mut shown = Vec::with_capacity(generated.len());
        for code in generated {
            let lookup = code.input.lookup();
            let bytes = Zeroizing::new(code.input.as_bytes().to_vec());
            let params = self.config.recovery_hash;
            let phc = self
                .hash_gate
                .run(move || recovery::hash_code(&bytes, params))
                .await??;
            records.push(RecoveryCodeRecord {
                lookup,
                phc,
                used: false,
            });
            shown.push(code.display);
        }
        let count = records.len();
        match self
            .store
            .replace_recovery_codes(&proof.user, records)
            .await?
        {
            Replacement::Replaced => {}
            // Reset or disabled since the proof was issued: the proof backs nothing now.
            _ => return Ok(RecoveryCodesOutcome::NoActiveFactor),
        }
        self.emit(
            &proof.user,
            ctx,
            now,
            AuditKind::RecoveryCodesGenerated { count },
        )
        .await?;
        Ok(RecoveryCodesOutcome::Generated(RecoveryCodeSet {
            codes: shown,
        }))
    }

    /// Checks a recovery code and, if it is valid and unused, uses it up.
    ///
    /// Malformed input is refused before any hashing and changes nothing. An attempt that
    /// finds the service's argon2 queue full is refused as [`RecoveryOutcome::Busy`] before it
    /// is counted (it checks nothing, so it costs the user nothing). Every other attempt is
    /// counted in the same account throttle as TOTP codes, then costs exactly one argon2
    /// verification (against the one stored hash its lookup names, or a dummy hash with the
    /// configured parameters, so both take the same time). Of concurrent uses of one code,
    /// exactly one is `Accepted`; no code is accepted for a user without an active factor.
    ///
    /// # Errors
    /// Store, clock or crypto failures, including a stored hash that fails validation.
    pub async fn verify_recovery_code(
        &self,
        user: &UserId,
        input: &str,
        ctx: &ClientContext,
    ) -> Result<RecoveryOutcome, Error> {
        let now = self.clock.now()?;
        let code = match RecoveryCodeInput::parse(input) {
            Ok(code) => code,
            Err(reason) => return Ok(RecoveryOutcome::Malformed(reason)),
        };
        // A place in the argon2 queue first: an attempt refused for want of one checks
        // nothing and so is not counted against the user. Every attempt that is checked was
        // counted first, so the queue is never a way around the throttle.
        let Some(admission) = self.hash_gate.admit() else {
            return Ok(RecoveryOutcome::Busy {
                retry_after: Duration::from_secs(1),
            });
        };
        let counted = match self.reserve_attempt(user, ctx, now).await? {
            Ok(counted) => counted,
            Err(Refusal::Throttled(retry_after)) => {
                return Ok(RecoveryOutcome::Throttled { retry_after })
            }
            Err(Refusal::Locked(until)) => return Ok(RecoveryOutcome::Locked { until }),
        };
        let lookup = code.lookup();
        let record = self.store.recovery_code(user, lookup).await?;
        let stored = record.as_ref().map_or_else(
            || recovery::dummy_hash(self.config.recovery_hash),
            |r| r.phc.clone(),
        );
        let bytes = Zeroizing::new(code.as_bytes().to_vec());
        let verified = self
            .hash_gate
            .run_admitted(admission, move || recovery::verify_code(&bytes, &stored))
            .await?;
        let matched = verified.map_err(CryptoError::StoredHash)?;
        let Some(record) = record.filter(|_| matched) else {
            self.emit(user, ctx, now, AuditKind::RecoveryCodeInvalid)
                .await?;
            self.report_lock(user, ctx, now, &counted).await?;
            return Ok(RecoveryOutcome::Invalid);
        };
        let consumption = if record.used {
            Consumption::AlreadyUsed
        } else {
            self.store.consume_recovery_code(user, lookup).await?
        };
        match consumption {
            Consumption::Consumed { remaining } => {
                self.emit(user, ctx, now, AuditKind::RecoveryCodeUsed { remaining })
                    .await?;
                if remaining <= 2 {
                    self.emit(user, ctx, now, AuditKind::RecoveryCodesLow { remaining })
                        .await?;
                }
                Ok(RecoveryOutcome::Accepted {
                    remaining,
                    proof: SecondFactorProof::new(user, now, SecondFactorMethod::RecoveryCode),
                })
            }
            Consumption::AlreadyUsed => {
                self.emit(user, ctx, now, AuditKind::RecoveryCodeReplayed)
                    .await?;
                self.report_lock(user, ctx, now, &counted).await?;
                Ok(RecoveryOutcome::Replayed)
            }
            // The set was regenerated, or the factor removed, while we checked: the code is
            // void.
            _ => {
                self.emit(user, ctx, now, AuditKind::RecoveryCodeInvalid)
                    .await?;
                Ok(RecoveryOutcome::Invalid)
            }
        }
    }

    /// How many argon2 computations this service has run (recovery-code hashing and
    /// verification): a metric worth exporting.
    pub fn argon2_runs(&self) -> u64 {
        self.hash_gate.completed()
    }

    /// The most argon2 hashings this service ever ran at once: never above the configured
    /// limit (see [`VerrouConfig::with_argon2_limits`]).
    pub fn argon2_peak_concurrency(&self) -> usize {
        self.hash_gate.peak_running()
    }

    /// How many unused recovery codes the user has.
    ///
    /// # Errors
    /// Store failures.
    pub async fn remaining_recovery_codes(&self, user: &UserId) -> Result<usize, Error> {
        Ok(self.store.remaining_recovery_codes(user).await?)
    }

    /// Whether a second factor passed at `at` is within the step-up freshness at `now`.
    fn is_fresh(&self, at: Timestamp, now: Timestamp) -> bool {
        at <= now && now.duration_since(at) <= self.config.reenrollment_freshness
    }

    /// Whether `proof` may authorise a sensitive action now: fresh and, if it stands for a
    /// session, that session still live with that very second factor (a proof kept past a
    /// logout, a revocation or a newer second factor is refused).
    async fn step_up_allowed(
        &self,
        proof: &SecondFactorProof,
        now: Timestamp,
    ) -> Result<bool, Error> {
        if !self.is_fresh(proof.verified_at, now) {
            return Ok(false);
        }
        let Some(session) = proof.session else {
            return Ok(true);
        };
        let sessions = self.store.user_sessions(&proof.user).await?;
        Ok(sessions.iter().any(|record| {
            record.id == session
                && now < record.expires_at
                && record.second_factor == Some((proof.verified_at, proof.method))
        }))
    }

    /// Operator action: lifts the account's lock and clears its failure count.
    ///
    /// # Errors
    /// Store or clock failures.
    pub async fn lift_lock(&self, user: &UserId) -> Result<(), Error> {
        let now = self.clock.now()?;
        self.store
            .clear_throttle(&ThrottleKey::Account(user))
            .await?;
        self.emit(user, &ClientContext::unknown(), now, AuditKind::LockLifted)
            .await?;
        Ok(())
    }

    /// Operator action: removes the user's TOTP factor (active and pending) **and their
    /// recovery codes**, for a user who lost the device and has no other way back (a lost
    /// list of codes must not stay valid). Returns whether there was a factor.
    ///
    /// # Security
    /// Verify the user's identity out of band first: after this, a password alone reaches
    /// the enrolment page.
    ///
    /// # Errors
    /// Store or clock failures.
    pub async fn remove_totp_factor(&self, user: &UserId) -> Result<bool, Error> {
        let now = self.clock.now()?;
        let ctx = ClientContext::unknown();
        let removed = self.remove_factor_and_codes(user, &ctx, now).await?;
        let scope = RevocationScope::User {
            user: user.clone(),
            except: None,
        };
        self.revoke(&scope, RevocationReason::FactorChanged, &ctx)
            .await?;
        Ok(removed)
    }

    /// The user turns their second factor off: removes the TOTP factor and recovery codes and
    /// revokes **every session of the user but `acting_session`** (pass the session asking,
    /// `Some(session.id)`, or `None` to end them all). `proof` (spent here) must be within
    /// the step-up freshness, otherwise [`DisableOutcome::StepUpRequired`].
    ///
    /// # Errors
    /// Store or clock failures.
    pub async fn disable_totp(
        &self,
        proof: SecondFactorProof,
        acting_session: Option<SessionId>,
        ctx: &ClientContext,
    ) -> Result<DisableOutcome, Error> {
        let now = self.clock.now()?;
        if !self.step_up_allowed(&proof, now).await? {
            return Ok(DisableOutcome::StepUpRequired);
        }
        let had_factor = self.remove_factor_and_codes(&proof.user, ctx, now).await?;
        let revoked_sessions = self
            .revoke_other_sessions(&proof.user, acting_session, ctx)
            .await?;
        Ok(DisableOutcome::Disabled {
            had_factor,
            revoked_sessions,
        })
    }

    async fn remove_factor_and_codes(
        &self,
        user: &UserId,
        ctx: &ClientContext,
        now: Timestamp,
    ) -> Result<bool, Error> {
        // One atomic removal: factor and codes go together, serialised with regenerations.
        let removed = self.store.remove_totp(user).await?;
        if removed {
            self.emit(user, ctx, now, AuditKind::TotpFactorRemoved)
                .await?;
        }
        Ok(removed)
    }

    /// Revokes the user's sessions but `acting`.
    async fn revoke_other_sessions(
        &self,
        user: &UserId,
        acting: Option<SessionId>,
        ctx: &ClientContext,
    ) -> Result<usize, Error> {
        let scope = RevocationScope::User {
            user: user.clone(),
            except: acting,
        };
        self.revoke(&scope, RevocationReason::FactorChanged, ctx)
            .await
    }

    /// For operators: the newest `limit` audit events, newest first, of `user` or of
    /// everyone, from the store's persistent trail.
    ///
    /// # Errors
    /// Store failures.
    pub async fn audit_trail(
        &self,
        user: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, Error> {
        Ok(self.store.audit_trail(user, limit).await?)
    }

    /// The user's second-factor throttle now, for a support page or an operator: the
    /// failures counted, the last one, and whether an attempt would be let through.
    ///
    /// # Errors
    /// Store or clock failures.
    pub async fn account_throttle(&self, user: &UserId) -> Result<ThrottleStatus, Error> {
        let now = self.clock.now()?;
        let state = self.store.throttle(&ThrottleKey::Account(user)).await?;
        let gate = self.config.account_throttle.gate(&state, now);
        Ok(ThrottleStatus {
            failures: state.failures,
            last_failure: (state.failures > 0).then_some(state.last_failure),
            gate,
        })
    }

    /// Whether the user has an active TOTP factor.
    ///
    /// # Errors
    /// Store failures.
    pub async fn has_active_totp(&self, user: &UserId) -> Result<bool, Error> {
        Ok(self.store.active_totp(user).await?.is_some())
    }

    /// Counts the attempt against the client address (if configured and known), then the
    /// account, *before* the code is compared: a success resets the account's count. A
    /// refusal by either means the code is not checked.
    async fn reserve_attempt(
        &self,
        user: &UserId,
        ctx: &ClientContext,
        now: Timestamp,
    ) -> Result<Result<Counted, Refusal>, Error> {
        if let (Some(policy), Some(addr)) = (&self.config.address_throttle, ctx.addr) {
            let key = ThrottleKey::for_address_in_prefix(addr, self.config.ipv6_throttle_prefix);
            if let Err(refusal) = self.reserve(&key, policy, now).await? {
                self.report_refusal(user, ctx, now, &refusal).await?;
                return Ok(Err(refusal));
            }
        }
        let key = ThrottleKey::Account(user);
        match self
            .reserve(&key, &self.config.account_throttle, now)
            .await?
        {
            Ok(account) => Ok(Ok(Counted { account })),
            Err(refusal) => {
                self.report_refusal(user, ctx, now, &refusal).await?;
                Ok(Err(refusal))
            }
        }
    }

    /// Counts one failure on `key` if its gate is open (atomically, in the store).
    async fn reserve(
        &self,
        key: &ThrottleKey<'_>,
        policy: &ThrottlePolicy,
        now: Timestamp,
    ) -> Result<Result<ThrottleState, Refusal>, Error> {
        Ok(match self.store.reserve_attempt(key, policy, now).await? {
            Reservation::Counted(state) => Ok(state),
            Reservation::Refused(Gate::Backoff { until }) => {
                Err(Refusal::Throttled(until.duration_since(now)))
            }
            Reservation::Refused(Gate::Locked { until }) => Err(Refusal::Locked(until)),
            // A store that refuses with an open gate is broken: fail closed.
            Reservation::Refused(_) => Err(Refusal::Throttled(Duration::from_secs(1))),
        })
    }

    async fn report_refusal(
        &self,
        user: &UserId,
        ctx: &ClientContext,
        now: Timestamp,
        refusal: &Refusal,
    ) -> Result<(), Error> {
        let kind = match *refusal {
            Refusal::Throttled(retry_after) => AuditKind::Throttled { retry_after },
            Refusal::Locked(until) => AuditKind::Locked { until },
        };
        self.emit(user, ctx, now, kind).await
    }

    /// After a failed check: if the counted failure started a lock, say so.
    async fn report_lock(
        &self,
        user: &UserId,
        ctx: &ClientContext,
        now: Timestamp,
        reservation: &Counted,
    ) -> Result<(), Error> {
        if let Gate::Locked { until } = self.config.account_throttle.gate(&reservation.account, now)
        {
            self.emit(user, ctx, now, AuditKind::LockEngaged { until })
                .await?;
        }
        Ok(())
    }

    async fn replayed(
        &self,
        user: &UserId,
        ctx: &ClientContext,
        now: Timestamp,
        factor: FactorId,
        reservation: &Counted,
    ) -> Result<TotpOutcome, Error> {
        self.emit(user, ctx, now, AuditKind::TotpReplayed { factor })
            .await?;
        self.report_lock(user, ctx, now, reservation).await?;
        Ok(TotpOutcome::Replayed)
    }

    /// Records an event: on `tracing`, in the store's audit trail, and in the sink if one is
    /// installed. A store failure fails the request with an error, rather than leave a silent
    /// gap in the trail.
    async fn emit(
        &self,
        user: &UserId,
        ctx: &ClientContext,
        now: Timestamp,
        kind: AuditKind,
    ) -> Result<(), Error> {
        let event = AuditEvent {
            at: now,
            user: user.clone(),
            client: ctx.addr,
            kind,
        };
        self.announce(&event);
        self.store.record_audit(event).await?;
        Ok(())
    }

    /// Sends an event to `tracing` and to the sink (the store's copy is written elsewhere).
    fn announce(&self, event: &AuditEvent) {
        audit::trace(event.at, &event.user, event.client, &event.kind);
        if let Some(sink) = &self.sink {
            sink.record(event);
        }
    }
}

/// Input that is not a code changes nothing and is not an audit event, but a flood of it is
/// worth seeing: a `debug` trace with the reason (never the input).
fn trace_malformed(user: &UserId, reason: MalformedCode) -> MalformedCode {
    tracing::debug!(target: "verrou::audit", kind = "malformed_code", user = user.as_str(), %reason);
    reason
}
