//! Migration from another TOTP system: a user's existing secret imported through the service,
//! with the same label checks and audit trail as an enrolment, and a first valid code (or an
//! operator's explicit choice) before it counts as a second factor.

use super::{ClientContext, Verrou};
use crate::audit::AuditKind;
use crate::clock::{Clock, Timestamp};
use crate::error::{ApiMisuse, Error};
use crate::ids::{FactorId, UserId};
use crate::store::{Activation, PendingTotp, Store};
use crate::totp::OtpAuthUri;

/// A factor imported from another system, waiting for its first code
/// ([`Verrou::import_totp`]).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct ImportedFactor {
    /// The factor's id.
    pub factor: FactorId,
    /// Until when a first code confirms it ([`Verrou::finish_totp_enrollment`]).
    pub expires_at: Timestamp,
}

impl<S: Store, C: Clock> Verrou<S, C> {
    /// Imports a secret the user's authenticator app already holds (from the system the
    /// portal migrates from), as a **pending** factor: the user confirms it with a first code
    /// from that app ([`Verrou::finish_totp_enrollment`]), exactly as after an enrolment, so a
    /// mistyped or stale export never becomes a factor nobody can use. Audited as
    /// [`AuditKind::TotpFactorImported`].
    ///
    /// `uri` comes from [`OtpAuthUri::parse`] (an `otpauth://` URI the old system exported) or
    /// [`OtpAuthUri::new`] (a Base32 secret and its parameters): both check the labels.
    ///
    /// # Errors
    /// [`ApiMisuse::FactorAlreadyActive`] if the user has an active factor (replace it with a
    /// re-enrolment); store, clock or RNG failures.
    pub async fn import_totp(
        &self,
        user: &UserId,
        uri: OtpAuthUri,
        ctx: &ClientContext,
    ) -> Result<ImportedFactor, Error> {
        let now = self.clock.now()?;
        let pending = self.pending_import(user, uri, now).await?;
        let imported = ImportedFactor {
            factor: pending.id,
            expires_at: pending.expires_at,
        };
        self.store.put_pending_totp(user, pending).await?;
        let kind = AuditKind::TotpFactorImported {
            factor: imported.factor,
            activated_by_operator: false,
        };
        self.emit(user, ctx, now, kind).await?;
        Ok(imported)
    }

    /// Operator action: imports a secret and makes it the user's **active** factor at once,
    /// without a first code. For a bulk migration where asking every user for a code is not
    /// possible; audited as [`AuditKind::TotpFactorImported`] with `activated_by_operator`.
    ///
    /// # Security
    /// Nothing proves the user's app holds this secret: a wrong export locks the user out of
    /// the second factor until an operator resets it. The current time step counts as used,
    /// so a code the old system accepted a moment ago is not accepted again here.
    ///
    /// # Errors
    /// [`ApiMisuse::FactorAlreadyActive`] if the user has an active factor; store, clock or
    /// RNG failures.
    pub async fn danger_import_active_totp(
        &self,
        user: &UserId,
        uri: OtpAuthUri,
        ctx: &ClientContext,
    ) -> Result<FactorId, Error> {
        let now = self.clock.now()?;
        let pending = self.pending_import(user, uri, now).await?;
        let (factor, step) = (pending.id, pending.params.step_at(now));
        self.store.put_pending_totp(user, pending).await?;
        match self
            .store
            .activate_pending_totp(user, factor, step, now)
            .await?
        {
            Activation::Activated => {}
            // Another enrolment was confirmed meanwhile: it stays.
            _ => return Err(ApiMisuse::FactorAlreadyActive.into()),
        }
        let kind = AuditKind::TotpFactorImported {
            factor,
            activated_by_operator: true,
        };
        self.emit(user, ctx, now, kind).await?;
        Ok(factor)
    }

    async fn pending_import(
        &self,
        user: &UserId,
        uri: OtpAuthUri,
        now: Timestamp,
    ) -> Result<PendingTotp, Error> {
        if self.store.active_totp(user).await?.is_some() {
            return Err(ApiMisuse::FactorAlreadyActive.into());
        }
        let (secret, params) = uri.into_parts();
        Ok(PendingTotp {
            id: FactorId::generate()?,
            secret,
            params,
            replaces: None,
            created_at: now,
            expires_at: now.saturating_add(self.config.pending_enrollment_ttl),
        })
    }
}
