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
use crate::store::{AttemptVerdict, Store, TotpAttempt};
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
        let input = match CodeInput::parse(code, factor.params.digits()) {
            Ok(input) => input,
            Err(reason) => return Ok(TotpOutcome::Malformed(trace_malformed(user, reason))),
        };
        // The comparison is pure and takes microseconds: it runs first, and its result is
        // revealed (or acted on) only if the throttle admits the attempt in the same
        // transaction that counts it and accepts the step.
        let generator = CodeGenerator::new(&factor.secret, factor.params)?;
        let matched = totp::match_window(
            &generator,
            &input,
            now,
            self.config.skew,
            Some(factor.last_step),
        )?;
        let (fresh_step, drift) = match matched {
            WindowMatch::Fresh { step, drift } => (Some(step), drift),
            _ => (None, 0),
        };
        let factor = factor.id;
        let kind = AuditKind::TotpAccepted {
            factor,
            step: fresh_step.unwrap_or_default(),
            drift,
        };
        let accepted = AuditEvent::new(now, user.clone(), ctx.addr, kind);
        let attempt = TotpAttempt {
            factor,
            now,
            address: self.address_throttle(ctx),
            account: &self.config.account_throttle,
            fresh_step,
            accepted: accepted.clone(),
        };
        match self.store.attempt_totp(user, attempt).await? {
            AttemptVerdict::Accepted => {
                self.announce(&accepted);
                Ok(TotpOutcome::Accepted(TotpAccepted {
                    step: fresh_step.unwrap_or_default(),
                    drift,
                    proof: SecondFactorProof::new(user, now, SecondFactorMethod::Totp),
                }))
            }
            AttemptVerdict::Rejected {
                account,
                step_taken,
            } => {
                let counted = Counted { account };
                if step_taken || matched == WindowMatch::Used {
                    return self.replayed(user, ctx, now, factor, &counted).await;
                }
                self.emit(user, ctx, now, AuditKind::TotpInvalid { factor })
                    .await?;
                self.report_lock(user, ctx, now, &counted).await?;
                Ok(TotpOutcome::Invalid)
            }
            // The factor was replaced or removed while we checked: its codes are void.
            AttemptVerdict::NoSuchFactor { .. } => {
                self.emit(user, ctx, now, AuditKind::TotpInvalid { factor })
                    .await?;
                Ok(TotpOutcome::Invalid)
            }
            AttemptVerdict::Refused { gate, .. } => {
                let refusal = Refusal::from_gate(gate, now);
                self.report_refusal(user, ctx, now, &refusal).await?;
                Ok(refusal.into())
            }
        }
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
