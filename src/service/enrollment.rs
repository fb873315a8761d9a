//! Enrolment and re-enrolment: a pending factor, confirmed by a first valid code.

use std::fmt;
use std::time::Duration;

use super::{
    trace_malformed, Checked, ClientContext, SecondFactorMethod, SecondFactorProof, Verrou,
};
use crate::audit::AuditKind;
use crate::clock::{Clock, Timestamp};
use crate::error::{ApiMisuse, Error, InputError};
use crate::ids::{FactorId, SessionId, UserId};
use crate::secret::TotpSecret;
use crate::store::{Activation, PendingTotp, Store, ThrottleKey};
use crate::totp::{self, CodeInput, MalformedCode, OtpAuthUri, TotpParams, WindowMatch};
use secrecy::{ExposeSecret, SecretSlice, SecretString};

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

impl<S: Store, C: Clock> Verrou<S, C> {
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

    pub(super) async fn begin_enrollment(
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
    pub(super) async fn confirm_pending(
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
            Checked::Refused(refusal) => return Ok(refusal.into()),
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
}
