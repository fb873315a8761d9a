//! TOTP verification: the code checked in constant time against the window, the time step
//! accepted once.

use std::time::Duration;

use super::{
    trace_malformed, ClientContext, Counted, Refusal, SecondFactorMethod, SecondFactorProof, Verrou,
};
use crate::audit::{AuditEvent, AuditKind};
use crate::clock::{Clock, Timestamp};
use crate::error::Error;
use crate::ids::{FactorId, UserId};
use crate::secret::TotpSecret;
use crate::store::{StepAdvance, Store};
use crate::totp::{self, CodeGenerator, CodeInput, MalformedCode, TotpParams, WindowMatch};

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

/// What happened to a code checked against one secret.
pub(super) enum Checked {
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

impl<S: Store, C: Clock> Verrou<S, C> {
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
    pub(super) async fn check_code(
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

    pub(super) async fn replayed(
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
}
