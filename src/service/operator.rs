//! Operator and account actions: lifting a lock, resetting or turning off a factor, reading
//! the audit trail and the throttle.

use super::{ClientContext, SecondFactorProof, Verrou};
use crate::audit::{AuditEvent, AuditKind};
use crate::clock::{Clock, Timestamp};
use crate::error::Error;
use crate::ids::{SessionId, UserId};
use crate::lockout::Gate;
use crate::session::{RevocationReason, RevocationScope};
use crate::store::{Store, ThrottleKey};

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

impl<S: Store, C: Clock> Verrou<S, C> {
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

    pub(super) async fn remove_factor_and_codes(
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
    pub(super) async fn revoke_other_sessions(
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
}
