//! Audit events as the SQL stores keep them: an event's kind as flat columns (its name, an
//! optional factor and session id, and up to two integers whose meaning depends on the kind),
//! and the codes stored for a closed set of values (its position in the set).

use std::time::Duration;

use crate::audit::{widen, AuditKind};
use crate::clock::Timestamp;
use crate::ids::{FactorId, SessionId};
use crate::session::proof::ProofError;
use crate::session::{BindingKind, BoundCookieProblem, RevocationReason, SecondFactorMethod};

/// An event's kind as flat columns, for SQL stores: the kind's [`AuditKind::name`], an
/// optional factor id, and up to two integers whose meaning depends on the kind.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub(crate) struct KindColumns {
    pub(crate) factor: Option<FactorId>,
    pub(crate) session: Option<SessionId>,
    pub(crate) value: Option<u64>,
    pub(crate) detail: Option<i64>,
    /// Free text: an operator command.
    pub(crate) note: Option<String>,
}

impl AuditKind {
    /// The kind's fields as columns (see [`AuditKind::from_columns`]).
    pub(crate) fn to_columns(&self) -> KindColumns {
        if let Self::OperatorCommand { command } = self {
            return KindColumns {
                note: Some(command.clone()),
                ..KindColumns::default()
            };
        }
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
            Self::BoundCookieRefused { session, problem } => (
                Some(session),
                Some(code_of(&BoundCookieProblem::ALL, &problem)),
            ),
            _ => (None, None),
        };
        if session.is_some() {
            return KindColumns {
                factor: None,
                session,
                value,
                detail: None,
                note: None,
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
            | Self::RecoveryCodesLow { remaining: n } => (None, Some(widen(n)), None),
            _ => (None, None, None),
        };
        KindColumns {
            factor,
            session: None,
            value,
            detail,
            note: None,
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
            "bound_cookie_refused" => Self::BoundCookieRefused {
                session: session()?,
                problem: from_code(&BoundCookieProblem::ALL, value())?,
            },
            "binding_proof_failed" => Self::BindingProofFailed {
                session: session()?,
                reason: from_code(&ProofError::ALL, value())?,
            },
            "operator_command" => Self::OperatorCommand {
                command: columns.note.clone()?,
            },
            _ => return None,
        })
    }
}

/// The position of `item` in `all`: the code SQL stores keep for a closed set of values.
pub(crate) fn code_of<T: PartialEq>(all: &[T], item: &T) -> u64 {
    let index = all.iter().position(|candidate| candidate == item);
    index
        .and_then(|i| u64::try_from(i).ok())
        .unwrap_or(u64::MAX)
}

/// The item of `all` at position `code`.
pub(crate) fn from_code<T: Copy>(all: &[T], code: Option<u64>) -> Option<T> {
    all.get(usize::try_from(code?).ok()?).copied()
}

#[cfg(test)]
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
        for problem in BoundCookieProblem::ALL {
            kinds.push(AuditKind::BoundCookieRefused { session, problem });
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
