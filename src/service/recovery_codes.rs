//! Recovery codes: a set drawn and hashed, one argon2 verification per attempt.

use std::fmt;
use std::time::Duration;

use super::{ClientContext, SecondFactorMethod, SecondFactorProof, Verrou};
use crate::audit::AuditKind;
use crate::clock::{Clock, Timestamp};
use crate::error::{CryptoError, Error};
use crate::ids::UserId;
use crate::recovery::{self, MalformedRecoveryCode, RecoveryCodeInput};
use crate::store::{Consumption, RecoveryCodeRecord, Replacement, Store};
use secrecy::SecretString;
use zeroize::Zeroizing;

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

impl<S: Store, C: Clock> Verrou<S, C> {
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
                .run(move |_| recovery::hash_code(&bytes, params))
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
            Err(refusal) => return Ok(refusal.into()),
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
            .run_admitted(admission, move |memory| {
                recovery::verify_code(&bytes, &stored, memory)
            })
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
    /// limit (see [`VerrouConfig::with_argon2_limits`](crate::VerrouConfig::with_argon2_limits)).
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
}
