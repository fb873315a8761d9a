//! Audit events: what happened, to whom, when and from where — never a secret, code or token.
//!
//! The service sends every event to `tracing` (target `verrou::audit`), to the store's
//! persistent trail ([`crate::store::Store::record_audit`], read back with
//! [`crate::Verrou::audit_trail`]) and to the [`AuditSink`] the application installs, if any.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::Timestamp;
use crate::ids::{FactorId, OrgId, SessionId, UserId};
use crate::session::proof::ProofError;
use crate::session::{BindingKind, BoundCookieProblem, RevocationReason, SecondFactorMethod};

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
    /// The partner organisation of the session the event is about, when it is about a
    /// session the portal created with one (`None` for factor and account events, which
    /// belong to the user alone).
    pub org: Option<OrgId>,
    /// What happened.
    pub kind: AuditKind,
}

impl AuditEvent {
    /// An event about no session's organisation (for stores and sinks that rebuild events,
    /// and for tests); [`AuditEvent::in_org`] adds one.
    pub fn new(at: Timestamp, user: UserId, client: Option<IpAddr>, kind: AuditKind) -> Self {
        Self {
            at,
            user,
            client,
            org: None,
            kind,
        }
    }

    /// This event, about a session of `org`.
    #[must_use]
    pub fn in_org(self, org: Option<OrgId>) -> Self {
        Self { org, ..self }
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
    /// A request of a bound session came without its current bound cookie and was told to
    /// refresh it with a device proof. Followed by `binding_refreshed` when the browser that
    /// holds the key was merely late; alone (or with `binding_proof_failed`), it is the trace
    /// of a copied session cookie replayed from another machine.
    BoundCookieRefused {
        /// The session.
        session: SessionId,
        /// What was wrong with the bound cookie.
        problem: BoundCookieProblem,
    },
    /// A device-binding proof was refused.
    BindingProofFailed {
        /// The session.
        session: SessionId,
        /// Why.
        reason: ProofError,
    },
    /// An operator ran a command on the store (`verrou-admin`): the event's user is the
    /// operator as `login@host`, so the trail shows the response as well as the attack.
    OperatorCommand {
        /// What was run: the command and its arguments (never a key, a secret or the store's
        /// URL).
        command: String,
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
            Self::BoundCookieRefused { .. } => "bound_cookie_refused",
            Self::BindingProofFailed { .. } => "binding_proof_failed",
            Self::OperatorCommand { .. } => "operator_command",
        }
    }
}

/// One field of an audit event's kind, typed, as [`AuditKind::fields`] gives it: what a log
/// pipeline or a SIEM reads, instead of a Rust `Debug` form.
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum AuditValue {
    /// An id (factor, session), exactly as the API parses it, or a stable name.
    Text(String),
    /// A count or a time step.
    Count(u64),
    /// A signed number (a clock drift in steps).
    Number(i64),
    /// A yes/no.
    Flag(bool),
    /// An instant; `None` where the kind means "no end" (a permanent lock).
    Time(Option<Timestamp>),
    /// A duration in whole seconds.
    Seconds(u64),
}

impl AuditKind {
    /// The kind's fields, named as in its variant, in order: `factor`, `session`, then the
    /// rest. An id is given exactly as [`FactorId`] and [`SessionId`] parse it; a reason,
    /// method or binding kind by its stable `name()`.
    pub fn fields(&self) -> Vec<(&'static str, AuditValue)> {
        use AuditValue::{Count, Flag, Number, Seconds, Text, Time};
        let factor = |id: &FactorId| ("factor", Text(id.to_string()));
        let session = |id: &SessionId| ("session", Text(id.to_string()));
        match self {
            Self::TotpEnrollmentStarted {
                factor: id,
                replaces_active,
            } => vec![factor(id), ("replaces_active", Flag(*replaces_active))],
            Self::TotpFactorImported {
                factor: id,
                activated_by_operator,
            } => vec![
                factor(id),
                ("activated_by_operator", Flag(*activated_by_operator)),
            ],
            Self::TotpEnrollmentConfirmed { factor: id }
            | Self::TotpEnrollmentInvalid { factor: id }
            | Self::TotpInvalid { factor: id }
            | Self::TotpReplayed { factor: id } => vec![factor(id)],
            Self::TotpAccepted {
                factor: id,
                step,
                drift,
            } => vec![
                factor(id),
                ("step", Count(*step)),
                ("drift", Number(i64::from(*drift))),
            ],
            Self::Throttled { retry_after } => {
                vec![("retry_after", Seconds(retry_after.as_secs()))]
            }
            Self::Locked { until } | Self::LockEngaged { until } => vec![("until", Time(*until))],
            Self::RecoveryCodesGenerated { count } => vec![("count", Count(widen(*count)))],
            Self::RecoveryCodeUsed { remaining } | Self::RecoveryCodesLow { remaining } => {
                vec![("remaining", Count(widen(*remaining)))]
            }
            Self::LockLifted
            | Self::RecoveryCodeInvalid
            | Self::RecoveryCodeReplayed
            | Self::TotpFactorRemoved => Vec::new(),
            Self::SessionCreated { session: id }
            | Self::SessionSignalsChanged { session: id }
            | Self::BindingRefreshed { session: id } => vec![session(id)],
            Self::SessionElevated {
                session: id,
                method,
            } => vec![session(id), ("method", Text(method.name().to_owned()))],
            Self::SessionRevoked {
                session: id,
                reason,
            } => {
                vec![session(id), ("reason", Text(reason.name().to_owned()))]
            }
            Self::BindingRegistered { session: id, kind } => {
                vec![session(id), ("binding", Text(kind.name().to_owned()))]
            }
            Self::BoundCookieRefused {
                session: id,
                problem,
            } => vec![session(id), ("problem", Text(problem.name().to_owned()))],
            Self::BindingProofFailed {
                session: id,
                reason,
            } => {
                vec![session(id), ("reason", Text(reason.name().to_owned()))]
            }
            Self::OperatorCommand { command } => vec![("command", Text(command.clone()))],
        }
    }
}

/// A `usize` count as a `u64` (lossless on every platform Rust supports today).
pub(crate) fn widen(count: usize) -> u64 {
    u64::try_from(count).unwrap_or(u64::MAX)
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
pub(crate) fn trace(event: &AuditEvent) {
    let kind = &event.kind;
    let name = kind.name();
    let at = event.at.unix_seconds();
    let user = event.user.as_str();
    let client = event.client.map(tracing::field::display);
    let org = event.org.as_ref().map(OrgId::as_str);
    match kind {
        AuditKind::TotpReplayed { .. }
        | AuditKind::RecoveryCodeReplayed
        | AuditKind::RecoveryCodesLow { .. }
        | AuditKind::Locked { .. }
        | AuditKind::LockEngaged { .. }
        | AuditKind::Throttled { .. }
        | AuditKind::SessionSignalsChanged { .. }
        | AuditKind::BoundCookieRefused { .. }
        | AuditKind::BindingProofFailed { .. } => {
            tracing::warn!(target: "verrou::audit", kind = name, at, user, client, org, detail = ?kind);
        }
        _ => {
            tracing::info!(target: "verrou::audit", kind = name, at, user, client, org, detail = ?kind);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record a tool reads: ids as the API parses them, names instead of `Debug` forms,
    /// times and durations as numbers.
    #[test]
    fn fields_are_typed_and_ids_parse_back() {
        let factor = FactorId::generate().unwrap();
        let session = SessionId::generate().unwrap();
        let accepted = AuditKind::TotpAccepted {
            factor,
            step: 59_833_334,
            drift: -1,
        };
        assert_eq!(
            accepted.fields(),
            [
                ("factor", AuditValue::Text(factor.to_string())),
                ("step", AuditValue::Count(59_833_334)),
                ("drift", AuditValue::Number(-1)),
            ]
        );
        let AuditValue::Text(id) = &accepted.fields()[0].1 else {
            panic!("the factor is text");
        };
        assert_eq!(FactorId::parse(id).unwrap(), factor);
        let elevated = AuditKind::SessionElevated {
            session,
            method: SecondFactorMethod::RecoveryCode,
        };
        assert_eq!(
            elevated.fields(),
            [
                ("session", AuditValue::Text(session.to_string())),
                ("method", AuditValue::Text("recovery_code".into())),
            ]
        );
        let locked = AuditKind::Locked { until: None };
        assert_eq!(locked.fields(), [("until", AuditValue::Time(None))]);
        let throttled = AuditKind::Throttled {
            retry_after: Duration::from_secs(30),
        };
        assert_eq!(
            throttled.fields(),
            [("retry_after", AuditValue::Seconds(30))]
        );
        assert!(AuditKind::LockLifted.fields().is_empty());
    }

    /// Each enum's names tell its variants apart (a record is read back by name).
    #[test]
    fn each_enums_names_are_distinct() {
        fn distinct(mut names: Vec<&str>) -> bool {
            let count = names.len();
            names.sort_unstable();
            names.dedup();
            names.len() == count
        }
        assert!(distinct(
            SecondFactorMethod::ALL
                .map(SecondFactorMethod::name)
                .to_vec()
        ));
        assert!(distinct(BindingKind::ALL.map(BindingKind::name).to_vec()));
        assert!(distinct(
            BoundCookieProblem::ALL
                .map(BoundCookieProblem::name)
                .to_vec()
        ));
        assert!(distinct(
            RevocationReason::ALL.map(RevocationReason::name).to_vec()
        ));
    }
}
