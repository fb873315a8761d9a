//! Audit events: what happened, to whom, when and from where — never a secret, code or token.
//!
//! The service sends every event to `tracing` (target `verrou::audit`), to the store's
//! persistent trail ([`crate::store::Store::record_audit`], read back with
//! [`crate::Verrou::audit_trail`]) and to the [`AuditSink`] the application installs, if any.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::Timestamp;
use crate::ids::{FactorId, SessionId, UserId};
use crate::session::proof::ProofError;
use crate::session::{BindingKind, RevocationReason, SecondFactorMethod};

/// One audit event.
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct AuditEvent {
    /// When it happened.
    pub at: Timestamp,
    /// Whose factor or account it concerns.
    pub user: UserId,
    /// The client address the portal trusts, if it gave one.
    pub client: Option<IpAddr>,
    /// What happened.
    pub kind: AuditKind,
}

impl AuditEvent {
    /// An event (for stores and sinks that rebuild events, and for tests).
    pub fn new(at: Timestamp, user: UserId, client: Option<IpAddr>, kind: AuditKind) -> Self {
        Self {
            at,
            user,
            client,
            kind,
        }
    }
}

/// What happened. Carries identifiers and outcomes, never secret material.
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum AuditKind {
    /// A TOTP enrolment began; `replaces_active` when it will replace an active factor.
    TotpEnrollmentStarted {
        /// The pending factor.
        factor: FactorId,
        /// True for a re-enrolment.
        replaces_active: bool,
    },
    /// A secret from another TOTP system was imported for the user: pending until a first
    /// valid code, or, by an operator's explicit choice, active at once.
    TotpFactorImported {
        /// The imported factor.
        factor: FactorId,
        /// True when an operator activated it without a first code.
        activated_by_operator: bool,
    },
    /// A pending factor was confirmed with a first valid code and is now active.
    TotpEnrollmentConfirmed {
        /// The new active factor.
        factor: FactorId,
    },
    /// A wrong code was given to confirm a pending factor.
    TotpEnrollmentInvalid {
        /// The pending factor.
        factor: FactorId,
    },
    /// A TOTP code was accepted.
    TotpAccepted {
        /// The factor.
        factor: FactorId,
        /// The time step it matched.
        step: u64,
        /// Steps between the matched and the current step.
        drift: i8,
    },
    /// A wrong TOTP code.
    TotpInvalid {
        /// The factor.
        factor: FactorId,
    },
    /// A code whose time step had already been used: a replay, or a double submission.
    TotpReplayed {
        /// The factor.
        factor: FactorId,
    },
    /// An attempt refused by the backoff.
    Throttled {
        /// How long until the next attempt is allowed.
        retry_after: Duration,
    },
    /// An attempt refused because the account or address is locked.
    Locked {
        /// When the lock expires; `None` until an operator lifts it.
        until: Option<Timestamp>,
    },
    /// A failure that started a lock.
    LockEngaged {
        /// When the lock expires; `None` until an operator lifts it.
        until: Option<Timestamp>,
    },
    /// An operator lifted the account's lock and cleared its failures.
    LockLifted,
    /// A new set of recovery codes replaced the old one.
    RecoveryCodesGenerated {
        /// Codes in the new set.
        count: usize,
    },
    /// A recovery code was used to pass the second factor.
    RecoveryCodeUsed {
        /// Unused codes left.
        remaining: usize,
    },
    /// Two or fewer unused recovery codes are left: the user should regenerate.
    RecoveryCodesLow {
        /// Unused codes left.
        remaining: usize,
    },
    /// A wrong recovery code.
    RecoveryCodeInvalid,
    /// A recovery code that was already used was presented again: the list may have leaked.
    RecoveryCodeReplayed,
    /// An operator removed the user's TOTP factor (active and pending), or the user disabled
    /// it.
    TotpFactorRemoved,
    /// A password-only session was created.
    SessionCreated {
        /// The session.
        session: SessionId,
    },
    /// A session passed the second factor (first time or step-up); its token was replaced.
    SessionElevated {
        /// The session.
        session: SessionId,
        /// How.
        method: SecondFactorMethod,
    },
    /// A session's soft signals changed: step-up asked for.
    SessionSignalsChanged {
        /// The session.
        session: SessionId,
    },
    /// A session was revoked (and deleted).
    SessionRevoked {
        /// The session.
        session: SessionId,
        /// Why.
        reason: RevocationReason,
    },
    /// A device key was registered for a session.
    BindingRegistered {
        /// The session.
        session: SessionId,
        /// DBSC or the WebCrypto fallback.
        kind: BindingKind,
    },
    /// A bound cookie was renewed with a valid device proof.
    BindingRefreshed {
        /// The session.
        session: SessionId,
    },
    /// A device-binding proof was refused.
    BindingProofFailed {
        /// The session.
        session: SessionId,
        /// Why.
        reason: ProofError,
    },
}

impl AuditKind {
    /// A short stable name, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::TotpEnrollmentStarted { .. } => "totp_enrollment_started",
            Self::TotpFactorImported { .. } => "totp_factor_imported",
            Self::TotpEnrollmentConfirmed { .. } => "totp_enrollment_confirmed",
            Self::TotpEnrollmentInvalid { .. } => "totp_enrollment_invalid",
            Self::TotpAccepted { .. } => "totp_accepted",
            Self::TotpInvalid { .. } => "totp_invalid",
            Self::TotpReplayed { .. } => "totp_replayed",
            Self::Throttled { .. } => "throttled",
            Self::Locked { .. } => "locked",
            Self::LockEngaged { .. } => "lock_engaged",
            Self::LockLifted => "lock_lifted",
            Self::RecoveryCodesGenerated { .. } => "recovery_codes_generated",
            Self::RecoveryCodeUsed { .. } => "recovery_code_used",
            Self::RecoveryCodesLow { .. } => "recovery_codes_low",
            Self::RecoveryCodeInvalid => "recovery_code_invalid",
            Self::RecoveryCodeReplayed => "recovery_code_replayed",
            Self::TotpFactorRemoved => "totp_factor_removed",
            Self::SessionCreated { .. } => "session_created",
            Self::SessionElevated { .. } => "session_elevated",
            Self::SessionSignalsChanged { .. } => "session_signals_changed",
            Self::SessionRevoked { .. } => "session_revoked",
            Self::BindingRegistered { .. } => "binding_registered",
            Self::BindingRefreshed { .. } => "binding_refreshed",
            Self::BindingProofFailed { .. } => "binding_proof_failed",
        }
    }
}

/// Where audit events go (a database table, a SIEM, a queue).
///
/// `record` is called on the request path: keep it fast and make it hand off slow work.
pub trait AuditSink: Send + Sync {
    /// Records one event.
    fn record(&self, event: &AuditEvent);
}

/// An in-memory sink, for tests and small deployments.
#[derive(Debug, Default)]
pub struct MemoryAuditSink {
    events: Mutex<Vec<AuditEvent>>,
}

impl MemoryAuditSink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the events recorded so far.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events
            .lock()
            .map(|events| events.clone())
            .unwrap_or_default()
    }
}

impl AuditSink for MemoryAuditSink {
    fn record(&self, event: &AuditEvent) {
        if let Ok(mut events) = self.events.lock() {
            events.push(event.clone());
        }
    }
}

/// Emits an event on `tracing` (target `verrou::audit`).
pub(crate) fn trace(at: Timestamp, user: &UserId, client: Option<IpAddr>, kind: &AuditKind) {
    let name = kind.name();
    let at = at.unix_seconds();
    let user = user.as_str();
    let client = client.map(tracing::field::display);
    match kind {
        AuditKind::TotpReplayed { .. }
        | AuditKind::RecoveryCodeReplayed
        | AuditKind::RecoveryCodesLow { .. }
        | AuditKind::Locked { .. }
        | AuditKind::LockEngaged { .. }
        | AuditKind::Throttled { .. }
        | AuditKind::SessionSignalsChanged { .. }
        | AuditKind::BindingProofFailed { .. } => {
            tracing::warn!(target: "verrou::audit", kind = name, at, user, client, detail = ?kind);
        }
        _ => tracing::info!(target: "verrou::audit", kind = name, at, user, client, detail = ?kind),
    }
}

/// An event's kind as flat columns, for SQL stores: the kind's [`AuditKind::name`], an
/// optional factor id, and up to two integers whose meaning depends on the kind.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub(crate) struct KindColumns {
    pub(crate) factor: Option<FactorId>,
    pub(crate) session: Option<SessionId>,
    pub(crate) value: Option<u64>,
    pub(crate) detail: Option<i64>,
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl AuditKind {
    /// The kind's fields as columns (see [`AuditKind::from_columns`]).
    pub(crate) fn to_columns(&self) -> KindColumns {
        let (session, value) = match *self {
            Self::SessionCreated { session }
            | Self::SessionSignalsChanged { session }
            | Self::BindingRefreshed { session } => (Some(session), None),
            Self::SessionElevated { session, method } => (
                Some(session),
                Some(code_of(&SecondFactorMethod::ALL, &method)),
            ),
            Self::SessionRevoked { session, reason } => (
                Some(session),
                Some(code_of(&RevocationReason::ALL, &reason)),
            ),
            Self::BindingRegistered { session, kind } => {
                (Some(session), Some(code_of(&BindingKind::ALL, &kind)))
            }
            Self::BindingProofFailed { session, reason } => {
                (Some(session), Some(code_of(&ProofError::ALL, &reason)))
            }
            _ => (None, None),
        };
        if session.is_some() {
            return KindColumns {
                factor: None,
                session,
                value,
                detail: None,
            };
        }
        let (factor, value, detail) = match *self {
            Self::TotpEnrollmentStarted {
                factor,
                replaces_active,
            } => (Some(factor), Some(u64::from(replaces_active)), None),
            Self::TotpFactorImported {
                factor,
                activated_by_operator,
            } => (Some(factor), Some(u64::from(activated_by_operator)), None),
            Self::TotpAccepted {
                factor,
                step,
                drift,
            } => (Some(factor), Some(step), Some(i64::from(drift))),
            Self::TotpEnrollmentConfirmed { factor }
            | Self::TotpEnrollmentInvalid { factor }
            | Self::TotpInvalid { factor }
            | Self::TotpReplayed { factor } => (Some(factor), None, None),
            Self::Throttled { retry_after } => (
                None,
                Some(u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX)),
                None,
            ),
            Self::Locked { until } | Self::LockEngaged { until } => {
                (None, until.map(Timestamp::unix_seconds), None)
            }
            Self::RecoveryCodesGenerated { count: n }
            | Self::RecoveryCodeUsed { remaining: n }
            | Self::RecoveryCodesLow { remaining: n } => {
                (None, Some(u64::try_from(n).unwrap_or(u64::MAX)), None)
            }
            _ => (None, None, None),
        };
        KindColumns {
            factor,
            session: None,
            value,
            detail,
        }
    }

    /// Rebuilds a kind from its name and columns; `None` if they do not fit together.
    pub(crate) fn from_columns(name: &str, columns: &KindColumns) -> Option<Self> {
        let factor = || columns.factor;
        let session = || columns.session;
        let value = || columns.value;
        let count = || value().and_then(|v| usize::try_from(v).ok());
        let until = || match value() {
            Some(seconds) => Timestamp::from_unix_seconds(seconds).ok().map(Some),
            None => Some(None),
        };
        Some(match name {
            "totp_enrollment_started" => Self::TotpEnrollmentStarted {
                factor: factor()?,
                replaces_active: value()? == 1,
            },
            "totp_factor_imported" => Self::TotpFactorImported {
                factor: factor()?,
                activated_by_operator: value()? == 1,
            },
            "totp_enrollment_confirmed" => Self::TotpEnrollmentConfirmed { factor: factor()? },
            "totp_enrollment_invalid" => Self::TotpEnrollmentInvalid { factor: factor()? },
            "totp_accepted" => Self::TotpAccepted {
                factor: factor()?,
                step: value()?,
                drift: i8::try_from(columns.detail?).ok()?,
            },
            "totp_invalid" => Self::TotpInvalid { factor: factor()? },
            "totp_replayed" => Self::TotpReplayed { factor: factor()? },
            "throttled" => Self::Throttled {
                retry_after: Duration::from_millis(value()?),
            },
            "locked" => Self::Locked { until: until()? },
            "lock_engaged" => Self::LockEngaged { until: until()? },
            "lock_lifted" => Self::LockLifted,
            "recovery_codes_generated" => Self::RecoveryCodesGenerated { count: count()? },
            "recovery_code_used" => Self::RecoveryCodeUsed {
                remaining: count()?,
            },
            "recovery_codes_low" => Self::RecoveryCodesLow {
                remaining: count()?,
            },
            "recovery_code_invalid" => Self::RecoveryCodeInvalid,
            "recovery_code_replayed" => Self::RecoveryCodeReplayed,
            "totp_factor_removed" => Self::TotpFactorRemoved,
            "session_created" => Self::SessionCreated {
                session: session()?,
            },
            "session_elevated" => Self::SessionElevated {
                session: session()?,
                method: from_code(&SecondFactorMethod::ALL, value())?,
            },
            "session_signals_changed" => Self::SessionSignalsChanged {
                session: session()?,
            },
            "session_revoked" => Self::SessionRevoked {
                session: session()?,
                reason: from_code(&RevocationReason::ALL, value())?,
            },
            "binding_registered" => Self::BindingRegistered {
                session: session()?,
                kind: from_code(&BindingKind::ALL, value())?,
            },
            "binding_refreshed" => Self::BindingRefreshed {
                session: session()?,
            },
            "binding_proof_failed" => Self::BindingProofFailed {
                session: session()?,
                reason: from_code(&ProofError::ALL, value())?,
            },
            _ => return None,
        })
    }
}

/// The position of `item` in `all`: the code SQL stores keep for a closed set of values.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn code_of<T: PartialEq>(all: &[T], item: &T) -> u64 {
    let index = all.iter().position(|candidate| candidate == item);
    index
        .and_then(|i| u64::try_from(i).ok())
        .unwrap_or(u64::MAX)
}

/// The item of `all` at position `code`.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn from_code<T: Copy>(all: &[T], code: Option<u64>) -> Option<T> {
    all.get(usize::try_from(code?).ok()?).copied()
}

#[cfg(all(test, any(feature = "sqlite", feature = "postgres")))]
mod tests {
    use super::*;

    #[test]
    fn every_kind_survives_its_columns() {
        let factor = FactorId::generate().unwrap();
        let until = Timestamp::from_unix_seconds(1_795_000_900).unwrap();
        let kinds = [
            AuditKind::TotpEnrollmentStarted {
                factor,
                replaces_active: true,
            },
            AuditKind::TotpEnrollmentStarted {
                factor,
                replaces_active: false,
            },
            AuditKind::TotpFactorImported {
                factor,
                activated_by_operator: true,
            },
            AuditKind::TotpFactorImported {
                factor,
                activated_by_operator: false,
            },
            AuditKind::TotpEnrollmentConfirmed { factor },
            AuditKind::TotpEnrollmentInvalid { factor },
            AuditKind::TotpAccepted {
                factor,
                step: 59_833_333,
                drift: -1,
            },
            AuditKind::TotpInvalid { factor },
            AuditKind::TotpReplayed { factor },
            AuditKind::Throttled {
                retry_after: Duration::from_millis(1_500),
            },
            AuditKind::Locked { until: Some(until) },
            AuditKind::Locked { until: None },
            AuditKind::LockEngaged { until: Some(until) },
            AuditKind::LockEngaged { until: None },
            AuditKind::LockLifted,
            AuditKind::RecoveryCodesGenerated { count: 10 },
            AuditKind::RecoveryCodeUsed { remaining: 9 },
            AuditKind::RecoveryCodesLow { remaining: 2 },
            AuditKind::RecoveryCodeInvalid,
            AuditKind::RecoveryCodeReplayed,
            AuditKind::TotpFactorRemoved,
        ];
        let session = SessionId::generate().unwrap();
        let mut kinds = kinds.to_vec();
        kinds.push(AuditKind::SessionCreated { session });
        kinds.push(AuditKind::SessionSignalsChanged { session });
        kinds.push(AuditKind::BindingRefreshed { session });
        for method in SecondFactorMethod::ALL {
            kinds.push(AuditKind::SessionElevated { session, method });
        }
        for reason in RevocationReason::ALL {
            kinds.push(AuditKind::SessionRevoked { session, reason });
        }
        for kind in BindingKind::ALL {
            kinds.push(AuditKind::BindingRegistered { session, kind });
        }
        for reason in ProofError::ALL {
            kinds.push(AuditKind::BindingProofFailed { session, reason });
        }
        for kind in kinds {
            let back = AuditKind::from_columns(kind.name(), &kind.to_columns());
            assert_eq!(back, Some(kind));
        }
        assert_eq!(
            AuditKind::from_columns("no_such_kind", &KindColumns::default()),
            None
        );
        assert_eq!(
            AuditKind::from_columns("totp_invalid", &KindColumns::default()),
            None
        );
    }
}
