//! verrou's outcomes and errors as HTTP answers.
//!
//! Every flow answers an outcome enum; [`Outcome::into_result`] splits it into what the handler
//! goes on with and a [`Refusal`], which answers with the status the refusal means:
//!
//! | refusal | status |
//! |---|---|
//! | [`Refusal::Malformed`] (not a code at all) | 400 |
//! | [`Refusal::Invalid`], [`Refusal::Replayed`], [`Refusal::NoSession`] | 401 |
//! | [`Refusal::Throttled`], [`Refusal::Locked`] with an end | 429 + `Retry-After` |
//! | [`Refusal::Locked`] until an operator lifts it, [`Refusal::StepUpRequired`], [`Refusal::NotEnrolled`] | 403 |
//! | [`Refusal::NotPending`], [`Refusal::NoActiveFactor`] | 409 |
//! | [`Refusal::Expired`] (the enrolment) | 410 |
//! | [`Refusal::Busy`] (argon2 at capacity: the user is not counted) | 503 + `Retry-After` |
//!
//! [`Failure`] carries either a refusal or a [`verrou::Error`], so a handler can use `?` on
//! both; an error answers 500 with a body that says nothing of the cause (the cause goes to the
//! `tracing` log, where verrou's errors never carry a secret), or 400 `invalid_input` when
//! verrou refused input the portal passed on from the request (a user id, say).
//!
//! An HTML portal usually re-renders its form instead: [`Refusal::message`] is a sentence fit
//! for the user and [`Refusal::retry_after`] the wait to show.

use std::time::{Duration, SystemTime};

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use verrou::{
    DisableOutcome, Elevated, ElevationOutcome, EnrollmentOffer, EnrollmentOutcome, FactorId,
    RecoveryCodeSet, RecoveryCodesOutcome, RecoveryOutcome, ReenrollmentOutcome, SecondFactorProof,
    Timestamp, TotpAccepted, TotpOutcome,
};

/// Why verrou refused: what to answer, and what to tell the user.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum Refusal {
    /// The input is not a code (letters, wrong length): nothing was checked or counted. 400.
    Malformed,
    /// Wrong code. 401.
    Invalid,
    /// The code (or recovery code) was used already. 401.
    Replayed,
    /// No live session with this cookie. 401.
    NoSession,
    /// Too many failures: wait. 429 with `Retry-After`.
    Throttled {
        /// How long.
        retry_after: Duration,
    },
    /// The account (or the client's address) is locked. 429 with `Retry-After` (the seconds
    /// left) while the lock has an end; 403 when only an operator can lift it.
    Locked {
        /// When it ends, if it does by itself.
        until: Option<Timestamp>,
    },
    /// Too many recovery-code checks at once on this instance: not checked, not counted. 503
    /// with `Retry-After`.
    Busy {
        /// A hint.
        retry_after: Duration,
    },
    /// The action needs a second factor passed within the step-up window. 403.
    StepUpRequired,
    /// The user has no active second factor. 403.
    NotEnrolled,
    /// The user has no active factor any more (reset or disabled meanwhile). 409.
    NoActiveFactor,
    /// No enrolment is pending. 409.
    NotPending,
    /// The pending enrolment expired: start again. 410.
    Expired,
}

impl Refusal {
    /// The status it answers with.
    pub fn status(self) -> StatusCode {
        match self {
            Self::Malformed => StatusCode::BAD_REQUEST,
            Self::Invalid | Self::Replayed | Self::NoSession => StatusCode::UNAUTHORIZED,
            Self::Throttled { .. } | Self::Locked { until: Some(_) } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::Locked { until: None } | Self::StepUpRequired | Self::NotEnrolled => {
                StatusCode::FORBIDDEN
            }
            Self::NoActiveFactor | Self::NotPending => StatusCode::CONFLICT,
            Self::Expired => StatusCode::GONE,
            Self::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A short stable name, for JSON bodies and logs.
    pub fn code(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Invalid => "invalid",
            Self::Replayed => "replayed",
            Self::NoSession => "no_session",
            Self::Throttled { .. } => "throttled",
            Self::Locked { .. } => "locked",
            Self::Busy { .. } => "busy",
            Self::StepUpRequired => "step_up_required",
            Self::NotEnrolled => "not_enrolled",
            Self::NoActiveFactor => "no_active_factor",
            Self::NotPending => "not_pending",
            Self::Expired => "expired",
        }
    }

    /// A sentence for the user. It never says more than the status does (a wrong code and a
    /// reused one read alike, so a thief learns nothing from the page).
    pub fn message(self) -> &'static str {
        match self {
            Self::Malformed => "That is not a code: type the digits your app shows.",
            Self::Invalid | Self::Replayed => "That code is not valid. Try the next one.",
            Self::NoSession => "Your session has ended. Please sign in again.",
            Self::Throttled { .. } => "Too many attempts. Wait a moment before trying again.",
            Self::Locked { until: Some(_) } => {
                "Too many attempts: this account is locked for a while."
            }
            Self::Locked { until: None } => {
                "This account is locked. Contact your administrator to unlock it."
            }
            Self::Busy { .. } => "The server is busy. Try again in a moment.",
            Self::StepUpRequired => "Confirm it is you: enter a current code first.",
            Self::NotEnrolled | Self::NoActiveFactor => "Two-factor authentication is not set up.",
            Self::NotPending | Self::Expired => "This setup has expired. Start again.",
        }
    }

    /// How long to wait before retrying, when the refusal says.
    pub fn retry_after(self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after } | Self::Busy { retry_after } => Some(retry_after),
            Self::Locked { until: Some(until) } => {
                let now = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |since| since.as_secs());
                Some(Duration::from_secs(
                    until.unix_seconds().saturating_sub(now),
                ))
            }
            _ => None,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.code(), "message": self.message() });
        let mut response = (
            self.status(),
            [(header::CACHE_CONTROL, "no-store")],
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        if let Some(wait) = self.retry_after() {
            // Whole seconds, rounded up: a client that waits what it is told is not refused.
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response
    }
}

/// A handler's failure: a refusal, or an error of verrou's (store, clock, RNG, misuse).
#[derive(Debug)]
#[non_exhaustive]
pub enum Failure {
    /// Answered with its own status.
    Refused(Refusal),
    /// Answered 500 (400 for [`verrou::Error::Input`]: an identifier or secret the portal
    /// took from the request); the error goes to the log, never to the client.
    Internal(verrou::Error),
}

impl From<Refusal> for Failure {
    fn from(refusal: Refusal) -> Self {
        Self::Refused(refusal)
    }
}

/// Every verrou error (`verrou::Error`, and the narrower ones that convert into it, such as
/// `InputError` from `UserId::new`).
impl<E: Into<verrou::Error>> From<E> for Failure {
    fn from(error: E) -> Self {
        Self::Internal(error.into())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Self::Refused(refusal) => refusal.into_response(),
            // Input the portal passed on (a user id from a form, say): the client's mistake.
            Self::Internal(verrou::Error::Input(error)) => {
                tracing::info!(%error, "input refused by verrou");
                let body = serde_json::json!({ "error": "invalid_input" }).to_string();
                (
                    StatusCode::BAD_REQUEST,
                    [(header::CACHE_CONTROL, "no-store")],
                    [(header::CONTENT_TYPE, "application/json")],
                    body,
                )
                    .into_response()
            }
            Self::Internal(error) => {
                tracing::error!(%error, "verrou failed");
                crate::answer::internal_error()
            }
        }
    }
}

/// An outcome split into what the handler goes on with and a refusal.
pub trait Outcome {
    /// What an accepted outcome carries.
    type Success;

    /// `Ok` for the outcome that lets the flow go on, a [`Refusal`] for the others.
    ///
    /// # Errors
    /// The refusal the outcome means.
    fn into_result(self) -> Result<Self::Success, Refusal>;
}

/// A variant added to verrou after this crate: refused, never let through.
const UNKNOWN: Refusal = Refusal::Invalid;

impl Outcome for TotpOutcome {
    type Success = TotpAccepted;

    fn into_result(self) -> Result<TotpAccepted, Refusal> {
        Err(match self {
            Self::Accepted(accepted) => return Ok(accepted),
            Self::Invalid => Refusal::Invalid,
            Self::Replayed => Refusal::Replayed,
            Self::Throttled { retry_after } => Refusal::Throttled { retry_after },
            Self::Locked { until } => Refusal::Locked { until },
            Self::Malformed(_) => Refusal::Malformed,
            Self::NotEnrolled => Refusal::NotEnrolled,
            _ => UNKNOWN,
        })
    }
}

impl Outcome for EnrollmentOutcome {
    /// The new factor, and the confirming code as a fresh second factor.
    type Success = (FactorId, SecondFactorProof);

    fn into_result(self) -> Result<Self::Success, Refusal> {
        Err(match self {
            Self::Confirmed { factor, proof } => return Ok((factor, proof)),
            Self::Invalid => Refusal::Invalid,
            Self::Expired => Refusal::Expired,
            Self::NotPending => Refusal::NotPending,
            Self::Throttled { retry_after } => Refusal::Throttled { retry_after },
            Self::Locked { until } => Refusal::Locked { until },
            Self::Malformed(_) => Refusal::Malformed,
            _ => UNKNOWN,
        })
    }
}

impl Outcome for RecoveryOutcome {
    /// Unused codes left, and the second factor passed by recovery code.
    type Success = (usize, SecondFactorProof);

    fn into_result(self) -> Result<Self::Success, Refusal> {
        Err(match self {
            Self::Accepted { remaining, proof } => return Ok((remaining, proof)),
            Self::Invalid => Refusal::Invalid,
            Self::Replayed => Refusal::Replayed,
            Self::Throttled { retry_after } => Refusal::Throttled { retry_after },
            Self::Locked { until } => Refusal::Locked { until },
            Self::Busy { retry_after } => Refusal::Busy { retry_after },
            Self::Malformed(_) => Refusal::Malformed,
            _ => UNKNOWN,
        })
    }
}

impl Outcome for RecoveryCodesOutcome {
    type Success = RecoveryCodeSet;

    fn into_result(self) -> Result<RecoveryCodeSet, Refusal> {
        Err(match self {
            Self::Generated(set) => return Ok(set),
            Self::StepUpRequired => Refusal::StepUpRequired,
            Self::NoActiveFactor => Refusal::NoActiveFactor,
            _ => UNKNOWN,
        })
    }
}

impl Outcome for ReenrollmentOutcome {
    type Success = EnrollmentOffer;

    fn into_result(self) -> Result<EnrollmentOffer, Refusal> {
        Err(match self {
            Self::Started(offer) => return Ok(offer),
            Self::StepUpRequired => Refusal::StepUpRequired,
            _ => UNKNOWN,
        })
    }
}

impl Outcome for DisableOutcome {
    /// How many other sessions were revoked.
    type Success = usize;

    fn into_result(self) -> Result<usize, Refusal> {
        Err(match self {
            Self::Disabled {
                revoked_sessions, ..
            } => return Ok(revoked_sessions),
            Self::StepUpRequired => Refusal::StepUpRequired,
            _ => UNKNOWN,
        })
    }
}

impl Outcome for ElevationOutcome {
    type Success = Elevated;

    fn into_result(self) -> Result<Elevated, Refusal> {
        Err(match self {
            Self::Elevated(elevated) => return Ok(elevated),
            Self::StepUpRequired => Refusal::StepUpRequired,
            Self::NoSession => Refusal::NoSession,
            _ => UNKNOWN,
        })
    }
}
