//! Sessions: creation, the per-request check, elevation by the second factor, step-up and
//! revocation.

use std::fmt;
use std::time::Duration;

use super::{ClientContext, SecondFactorMethod, SecondFactorProof, Verrou};
use crate::audit::{AuditEvent, AuditKind};
use crate::clock::{Clock, Timestamp};
use crate::error::{ApiMisuse, Error};
use crate::ids::{OrgId, SessionId, UserId};
use crate::session::cookie::{cookie_value, set_cookie, BOUND_COOKIE, SESSION_COOKIE};
use crate::session::token::TokenKind;
use crate::session::{
    Assurance, BindingMode, BoundCookieProblem, Challenge, ExpiryReason, Requirement,
    RevocationReason, RevocationScope, SessionToken, StepUpReason, TokenHash,
};
use crate::store::{BindingRecord, IssuedChallenge, SessionRecord};
use crate::store::{Elevation, RevocationContext, Store};

/// A session just created: set its token as the session cookie (see
/// [`crate::session::cookie::set_cookie`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct NewSession {
    /// The token for the session cookie. Shown once; only its hash is stored.
    pub token: SessionToken,
    /// The session's public handle.
    pub session: SessionId,
    /// How long the cookie should live (`Max-Age`).
    pub max_age: Duration,
}

/// The cookies a request carried, as raw values (parsed by verrou). `Debug` shows whether
/// each is present, never its value: both are bearer credentials.
#[derive(Clone, Copy, Eq, PartialEq)]
pub struct SessionCookies<'a> {
    session: &'a str,
    bound: Option<&'a str>,
}

impl fmt::Debug for SessionCookies<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionCookies")
            .field("session", &"[REDACTED]")
            .field("bound", &self.bound.map(|_| "[REDACTED]"))
            .finish()
    }
}

impl<'a> SessionCookies<'a> {
    /// The session cookie's value and, if present, the bound cookie's.
    pub fn new(session: &'a str, bound: Option<&'a str>) -> Self {
        Self { session, bound }
    }

    /// Both from a `Cookie` request header (`None` without exactly one session cookie).
    pub fn from_header(header: &'a str) -> Option<Self> {
        Some(Self {
            session: cookie_value(header, SESSION_COOKIE)?,
            bound: cookie_value(header, BOUND_COOKIE),
        })
    }

    /// The session cookie's value.
    pub fn session(&self) -> &'a str {
        self.session
    }
}

impl NewSession {
    /// The `Set-Cookie` value for the session cookie, living as long as the session.
    pub fn set_cookie_header(&self) -> String {
        set_cookie(SESSION_COOKIE, &self.token, self.max_age)
    }
}

impl Elevated {
    /// The `Set-Cookie` value for the session's new cookie, living as long as the session.
    pub fn set_cookie_header(&self) -> String {
        set_cookie(SESSION_COOKIE, &self.token, self.max_age)
    }
}

/// A live session, as the portal sees it.
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct ActiveSession {
    /// The public handle (the acting session of [`Verrou::disable_totp`] and
    /// [`Verrou::finish_totp_reenrollment`], session lists, revocation).
    pub id: SessionId,
    /// Whose session.
    pub user: UserId,
    /// The user's organisation.
    pub org: Option<OrgId>,
    /// What it proved.
    pub assurance: Assurance,
    /// When it was created.
    pub created_at: Timestamp,
    /// Its absolute expiry.
    pub expires_at: Timestamp,
    /// When it was last used (written at most once a minute, so exact to within a minute).
    pub last_seen: Timestamp,
    /// The last second factor passed in this session: when, and how.
    pub second_factor: Option<SecondFactorPassed>,
}

/// When and how a session last passed the second factor.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct SecondFactorPassed {
    /// When.
    pub at: Timestamp,
    /// How.
    pub method: SecondFactorMethod,
}

impl ActiveSession {
    /// A proof of this session's last second factor, for one sensitive action of this
    /// session ([`Verrou::start_totp_reenrollment`], [`Verrou::generate_recovery_codes`],
    /// [`Verrou::disable_totp`]). It is checked against the session when used (refused once
    /// the session is revoked or logged out, or past the step-up freshness) and cannot raise
    /// a session. `None` for a password-only session.
    pub fn step_up_proof(&self) -> Option<SecondFactorProof> {
        self.second_factor.map(|passed| {
            SecondFactorProof::of_session(&self.user, passed.at, passed.method, self.id)
        })
    }
}

/// The result of [`Verrou::authenticate`]: only [`SessionStatus::Active`] lets the request
/// through.
#[must_use]
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum SessionStatus {
    /// The session meets the requirement.
    Active(ActiveSession),
    /// A password-only session on a page that needs the second factor: send the user to the
    /// second-factor page.
    SecondFactorRequired(ActiveSession),
    /// The session must pass the second factor again first (stale for a sensitive action, or
    /// its soft signals changed).
    StepUpRequired {
        /// The session.
        session: ActiveSession,
        /// Why.
        reason: StepUpReason,
    },
    /// The session is bound to a device and the request has no current bound cookie: answer
    /// so that the browser refreshes it with a device proof (DBSC does this by itself; the
    /// fallback script on a 401). A stolen cookie replayed elsewhere ends here. If the
    /// refresh fails too, the portal chooses: ask for the second factor again (which binds
    /// the session to the device that passes it) or end the session ([`Verrou::logout`]).
    RefreshRequired {
        /// The session (whose user to ask for the second factor again).
        session: ActiveSession,
    },
    /// Binding is required and the session did not register a device key in time: ask its
    /// user for the second factor again ([`Verrou::verify_totp`], then
    /// [`Verrou::record_second_factor`] on the same cookie, which offers binding anew).
    BindingMissing {
        /// The session (whose user to ask for the second factor again).
        session: ActiveSession,
    },
    /// The session expired.
    Expired(ExpiryReason),
    /// No such session: never issued, logged out, or revoked.
    NotFound,
    /// The cookie is not a session token.
    Malformed,
}

/// The result of [`Verrou::logout`].
#[must_use]
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum LogoutOutcome {
    /// The session is ended (and its binding with it).
    LoggedOut,
    /// No live session with this cookie (already ended, revoked, or not a token).
    NoSession,
}

/// The result of [`Verrou::record_second_factor`].
#[must_use]
#[derive(Debug)]
#[non_exhaustive]
pub enum ElevationOutcome {
    /// The session passed the second factor and has a new token.
    Elevated(Elevated),
    /// The proof is older than the step-up freshness: verify a code again.
    StepUpRequired,
    /// No live session with this cookie: expired, revoked, or its token already replaced.
    NoSession,
}

/// An elevated session: replace the session cookie (the old token no longer works) and, if
/// `binding_offer` is set, offer device binding.
#[derive(Debug)]
#[non_exhaustive]
pub struct Elevated {
    /// The new session token.
    pub token: SessionToken,
    /// The session.
    pub session: SessionId,
    /// How long the cookie should live.
    pub max_age: Duration,
    /// A registration challenge: send it as `Secure-Session-Registration`
    /// ([`crate::session::dbsc::DbscPaths::registration_header`]) and to the fallback script
    /// in the page. Each second factor offers binding anew (a previously registered key is
    /// dropped). `None` when binding is off.
    pub binding_offer: Option<Challenge>,
}

impl<S: Store, C: Clock> Verrou<S, C> {
    /// Creates a password-only session for `user` (call it once the password is checked).
    /// It can only complete or enrol the second factor, and expires after the password-only
    /// lifetime (default 10 minutes) unless elevated.
    ///
    /// # Errors
    /// Store, clock or RNG failures.
    pub async fn create_session(
        &self,
        user: &UserId,
        org: Option<&OrgId>,
        ctx: &ClientContext,
    ) -> Result<NewSession, Error> {
        let now = self.clock.now()?;
        let policy = &self.config.sessions;
        let token = SessionToken::generate()?;
        let session = SessionId::generate()?;
        let record = SessionRecord {
            id: session,
            token: token.hash(TokenKind::Session),
            user: user.clone(),
            org: org.cloned(),
            assurance: Assurance::PasswordOnly,
            created_at: now,
            last_seen: now,
            expires_at: now.saturating_add(policy.password_only_lifetime),
            second_factor: None,
            signals: ctx.signals(),
        };
        self.store.create_session(record).await?;
        let kind = AuditKind::SessionCreated { session };
        let event = AuditEvent::new(now, user.clone(), ctx.addr, kind).in_org(org.cloned());
        self.record(event).await?;
        Ok(NewSession {
            token,
            session,
            // The cookie lives as long as the session: a password-only one, minutes.
            max_age: policy.password_only_lifetime,
        })
    }

    /// Checks a request's session against `requirement`. In order: the cookie parses; the
    /// session exists (not revoked); it has not expired (absolute, idle, or password-only
    /// too long); a bound session presents its current (or previous, unexpired) bound cookie,
    /// and an unbound one is within the binding grace; the assurance suffices; the soft
    /// signals (if on) are unchanged; a sensitive action's second factor is fresh.
    ///
    /// Flags the client sends play no part: the level is the stored one.
    ///
    /// # Errors
    /// Store or clock failures.
    pub async fn authenticate(
        &self,
        cookies: &SessionCookies<'_>,
        requirement: Requirement,
        ctx: &ClientContext,
    ) -> Result<SessionStatus, Error> {
        let now = self.clock.now()?;
        let hash = match session_hash(cookies.session) {
            Ok(hash) => hash,
            Err(status) => return Ok(status),
        };
        // The session and its binding in one read.
        let (record, binding) = self
            .store
            .session_and_binding_by_token(&hash)
            .await?
            .unzip();
        let record = match self.live(record, now) {
            Ok(record) => record,
            Err(status) => return Ok(status),
        };
        let binding = binding.flatten();
        let policy = &self.config.sessions;
        if record.assurance == Assurance::SecondFactor && policy.binding != BindingMode::Off {
            match self.binding_status(&record, binding.as_ref(), cookies, now) {
                BindingStatus::Current => {}
                BindingStatus::Refused(problem) => {
                    let session = record.id;
                    let kind = AuditKind::BoundCookieRefused { session, problem };
                    self.emit_about(&record, ctx, now, kind).await?;
                    let session = self.active(&record);
                    return Ok(SessionStatus::RefreshRequired { session });
                }
                BindingStatus::Missing => {
                    let session = self.active(&record);
                    return Ok(SessionStatus::BindingMissing { session });
                }
            }
        }
        if now.duration_since(record.last_seen) >= policy.touch_interval {
            self.store.touch_session(record.id, now).await?;
        }
        let session = self.active(&record);
        if requirement == Requirement::AnySession {
            return Ok(SessionStatus::Active(session));
        }
        if record.assurance < Assurance::SecondFactor {
            return Ok(SessionStatus::SecondFactorRequired(session));
        }
        if policy.soft_signals && ctx.signals() != record.signals {
            let kind = AuditKind::SessionSignalsChanged { session: record.id };
            self.emit_about(&record, ctx, now, kind).await?;
            let reason = StepUpReason::SignalsChanged;
            return Ok(SessionStatus::StepUpRequired { session, reason });
        }
        if requirement == Requirement::RecentSecondFactor
            && !session
                .second_factor
                .is_some_and(|passed| self.is_fresh(passed.at, now))
        {
            let reason = StepUpReason::Stale;
            return Ok(SessionStatus::StepUpRequired { session, reason });
        }
        Ok(SessionStatus::Active(session))
    }

    /// The session a cookie names, if it is live at `now`; otherwise the status to answer.
    pub(super) async fn live_session(
        &self,
        cookie: &str,
        now: Timestamp,
    ) -> Result<Result<SessionRecord, SessionStatus>, Error> {
        let hash = match session_hash(cookie) {
            Ok(hash) => hash,
            Err(status) => return Ok(Err(status)),
        };
        let record = self.store.session_by_token(&hash).await?;
        Ok(self.live(record, now))
    }

    /// The session found for a cookie, if there is one and it is live at `now`; otherwise
    /// the status to answer.
    fn live(
        &self,
        record: Option<SessionRecord>,
        now: Timestamp,
    ) -> Result<SessionRecord, SessionStatus> {
        let record = record.ok_or(SessionStatus::NotFound)?;
        match self.expiry(&record, now) {
            Some(reason) => Err(SessionStatus::Expired(reason)),
            None => Ok(record),
        }
    }

    /// The session whose current token is `token`, expired or not.
    async fn session_for(&self, token: &SessionToken) -> Result<Option<SessionRecord>, Error> {
        let hash = token.hash(TokenKind::Session);
        Ok(self.store.session_by_token(&hash).await?)
    }

    /// Why the session has ended at `now`, if it has.
    fn expiry(&self, record: &SessionRecord, now: Timestamp) -> Option<ExpiryReason> {
        if now >= record.expires_at {
            Some(match record.assurance {
                Assurance::PasswordOnly => ExpiryReason::SecondFactorNotCompleted,
                _ => ExpiryReason::Absolute,
            })
        } else if now.duration_since(record.last_seen) >= self.config.sessions.idle_timeout {
            Some(ExpiryReason::Idle)
        } else {
            None
        }
    }

    /// For a second-factor session: whether its binding state lets the request through.
    fn binding_status(
        &self,
        record: &SessionRecord,
        binding: Option<&BindingRecord>,
        cookies: &SessionCookies<'_>,
        now: Timestamp,
    ) -> BindingStatus {
        if let Some(binding) = binding.filter(|binding| binding.key.is_some()) {
            let Some(presented) = cookies
                .bound
                .and_then(|value| SessionToken::parse(value).ok())
                .map(|token| token.hash(TokenKind::Bound))
            else {
                return BindingStatus::Refused(BoundCookieProblem::Missing);
            };
            let issued = [&binding.cookie, &binding.previous_cookie]
                .into_iter()
                .flatten()
                .find(|issued| issued.hash == presented);
            return match issued {
                Some(issued) if now < issued.expires_at => BindingStatus::Current,
                Some(_) => BindingStatus::Refused(BoundCookieProblem::Expired),
                None => BindingStatus::Refused(BoundCookieProblem::Unknown),
            };
        }
        if self.registration_overdue(record, binding, now) {
            BindingStatus::Missing
        } else {
            BindingStatus::Current
        }
    }

    /// Whether an unbound session is past its registration grace (counted from the binding
    /// offer, or from the second factor when none was made): its requests are refused as
    /// [`SessionStatus::BindingMissing`] and a registration is refused too. Never, when
    /// binding is not required.
    pub(super) fn registration_overdue(
        &self,
        record: &SessionRecord,
        binding: Option<&BindingRecord>,
        now: Timestamp,
    ) -> bool {
        let BindingMode::Required { grace } = self.config.sessions.binding else {
            return false;
        };
        let since = binding
            .map(|binding| binding.offered_at)
            .or(record.second_factor.map(|sf| sf.0));
        since.is_none_or(|since| now >= since.saturating_add(grace))
    }

    fn active(&self, record: &SessionRecord) -> ActiveSession {
        ActiveSession {
            id: record.id,
            user: record.user.clone(),
            org: record.org.clone(),
            assurance: record.assurance,
            created_at: record.created_at,
            expires_at: record.expires_at,
            last_seen: record.last_seen,
            second_factor: record
                .second_factor
                .map(|(at, method)| SecondFactorPassed { at, method }),
        }
    }

    /// Raises the session to second-factor assurance with `proof` (from a TOTP or recovery
    /// code just accepted; spent here), or records a step-up: the session gets a **new
    /// token** (the old one stops working: no fixation), its second-factor time and soft
    /// signals are renewed, and device binding is offered anew (see
    /// [`Elevated::binding_offer`]). The token swap, its audit record and the binding offer
    /// are stored together or not at all: a failure leaves the old cookie working.
    ///
    /// # Errors
    /// [`ApiMisuse::ProofForAnotherUser`] if `proof` is not the session user's;
    /// [`ApiMisuse::SessionProofCannotElevate`] for a session's step-up proof; store, clock
    /// or RNG failures.
    pub async fn record_second_factor(
        &self,
        session_cookie: &str,
        proof: SecondFactorProof,
        ctx: &ClientContext,
    ) -> Result<ElevationOutcome, Error> {
        let now = self.clock.now()?;
        if proof.session().is_some() {
            return Err(ApiMisuse::SessionProofCannotElevate.into());
        }
        let record = match self.live_session(session_cookie, now).await? {
            Ok(record) => record,
            Err(_) => return Ok(ElevationOutcome::NoSession),
        };
        if record.user != *proof.user() {
            return Err(ApiMisuse::ProofForAnotherUser.into());
        }
        if !self.is_fresh(proof.verified_at(), now) {
            return Ok(ElevationOutcome::StepUpRequired);
        }
        let policy = &self.config.sessions;
        let token = SessionToken::generate()?;
        let expires_at = record.created_at.saturating_add(policy.absolute_lifetime);
        let session = record.id;
        let method = proof.method();
        let (binding, binding_offer) = self.binding_offer(now)?;
        let kind = AuditKind::SessionElevated { session, method };
        let event =
            AuditEvent::new(now, record.user.clone(), ctx.addr(), kind).in_org(record.org.clone());
        let elevation = Elevation {
            token: token.hash(TokenKind::Session),
            second_factor: (proof.verified_at(), method),
            expires_at,
            signals: ctx.signals(),
            binding,
            record: event.clone(),
        };
        if !self
            .store
            .elevate_session(record.id, &record.token, elevation)
            .await?
        {
            return Ok(ElevationOutcome::NoSession);
        }
        self.announce(&event);
        Ok(ElevationOutcome::Elevated(Elevated {
            token,
            session,
            max_age: expires_at.duration_since(now),
            binding_offer,
        }))
    }

    /// A fresh binding offer (a registration challenge; no key, no cookie) to store with an
    /// elevation, and the challenge to send; `None` when binding is off. Every second factor
    /// binds the session anew to the device that passed it, so a browser that lost its key
    /// (cleared storage, a new TPM) gets back in by passing the second factor again, while a
    /// copied cookie cannot: the elevation also replaces the session token.
    fn binding_offer(
        &self,
        now: Timestamp,
    ) -> Result<(Option<BindingRecord>, Option<Challenge>), Error> {
        if self.config.sessions.binding == BindingMode::Off {
            return Ok((None, None));
        }
        let challenge = Challenge::generate()?;
        let record = BindingRecord {
            // The store numbers it one past the binding it replaces.
            version: 1,
            offered_at: now,
            key: None,
            challenge: Some(IssuedChallenge {
                challenge: challenge.clone(),
                expires_at: now.saturating_add(self.config.sessions.challenge_ttl()),
            }),
            previous_challenge: None,
            cookie: None,
            previous_cookie: None,
        };
        Ok((Some(record), Some(challenge)))
    }

    /// Ends the session the cookie names (logout), audited as a revocation. Clear the
    /// cookies either way ([`crate::session::cookie::clear_cookie`]).
    ///
    /// # Errors
    /// Store or clock failures.
    pub async fn logout(
        &self,
        session_cookie: &str,
        ctx: &ClientContext,
    ) -> Result<LogoutOutcome, Error> {
        let Ok(token) = SessionToken::parse(session_cookie) else {
            return Ok(LogoutOutcome::NoSession);
        };
        let Some(record) = self.session_for(&token).await? else {
            return Ok(LogoutOutcome::NoSession);
        };
        let scope = RevocationScope::Session(record.id);
        Ok(
            match self.revoke(&scope, RevocationReason::Logout, ctx).await? {
                0 => LogoutOutcome::NoSession,
                _ => LogoutOutcome::LoggedOut,
            },
        )
    }

    /// Revokes every session in `scope`: one session, a user's (optionally but one), an
    /// organisation's, or every session created before an instant. Takes effect on the next
    /// request on every instance sharing the store. Returns how many sessions ended; each gets
    /// a `SessionRevoked` audit record.
    ///
    /// # Errors
    /// Store or clock failures.
    pub async fn revoke_sessions(
        &self,
        scope: &RevocationScope,
        ctx: &ClientContext,
    ) -> Result<usize, Error> {
        self.revoke(scope, RevocationReason::Revoked, ctx).await
    }

    pub(super) async fn revoke(
        &self,
        scope: &RevocationScope,
        reason: RevocationReason,
        ctx: &ClientContext,
    ) -> Result<usize, Error> {
        let now = self.clock.now()?;
        let context = RevocationContext {
            at: now,
            client: ctx.addr(),
            reason,
        };
        let events = self.store.revoke_sessions(scope, context).await?;
        for event in &events {
            self.announce(event);
        }
        Ok(events.len())
    }

    /// The user's sessions that have not expired, newest first (for a "your sessions" page
    /// or an operator).
    ///
    /// # Errors
    /// Store or clock failures.
    pub async fn user_sessions(&self, user: &UserId) -> Result<Vec<ActiveSession>, Error> {
        let now = self.clock.now()?;
        let records = self.store.user_sessions(user).await?;
        Ok(records
            .iter()
            .filter(|record| self.expiry(record, now).is_none())
            .map(|record| self.active(record))
            .collect())
    }

    /// Housekeeping: deletes expired and idle sessions. Returns how many went.
    ///
    /// # Errors
    /// Store or clock failures.
    pub async fn purge_expired_sessions(&self) -> Result<usize, Error> {
        let now = self.clock.now()?;
        let idle_before = now.saturating_sub(self.config.sessions.idle_timeout);
        Ok(self.store.purge_expired_sessions(now, idle_before).await?)
    }
}

/// What a second-factor session's binding state says of a request.
enum BindingStatus {
    /// Bound, with a current bound cookie; or unbound within the registration grace.
    Current,
    /// Bound, and the request lacks a current bound cookie: refresh it with a device proof.
    Refused(BoundCookieProblem),
    /// Unbound past the registration grace.
    Missing,
}

/// The stored hash of a session cookie, or `Malformed` if the cookie is not a token.
fn session_hash(cookie: &str) -> Result<TokenHash, SessionStatus> {
    SessionToken::parse(cookie)
        .map(|token| token.hash(TokenKind::Session))
        .map_err(|_| SessionStatus::Malformed)
}
