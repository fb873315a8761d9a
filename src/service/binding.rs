//! Device binding: registration of a device key and renewal of the short-lived bound cookie
//! with a signed proof, for DBSC browsers and the WebCrypto fallback alike.

use std::time::Duration;

use super::{ClientContext, Verrou};
use crate::audit::AuditKind;
use crate::clock::{Clock, Timestamp};
use crate::error::Error;
use crate::ids::SessionId;
use crate::session::cookie::{set_cookie, BOUND_COOKIE};
use crate::session::dbsc;
use crate::session::proof::{ParsedProof, ProofError};
use crate::session::token::TokenKind;
use crate::session::{
    Assurance, BindingKind, Challenge, RevocationReason, RevocationScope, SessionToken,
};
use crate::store::Store;
use crate::store::{BindingRecord, IssuedChallenge, IssuedCookie, SessionRecord};

/// How often a binding update is retried when a concurrent request changed the record first.
const SWAP_ATTEMPTS: usize = 4;

/// A renewed bound cookie and the challenge for the next refresh.
#[derive(Debug)]
#[non_exhaustive]
pub struct BoundCredential {
    /// The session.
    pub session: SessionId,
    /// The new bound cookie's value (only its hash is stored).
    pub cookie: SessionToken,
    /// Its lifetime.
    pub max_age: Duration,
    /// The challenge the next refresh must sign.
    pub next_challenge: Challenge,
}

impl BoundCredential {
    /// The `Set-Cookie` value for the bound cookie.
    pub fn set_cookie_header(&self) -> String {
        set_cookie(BOUND_COOKIE, &self.cookie, self.max_age)
    }

    /// The `Secure-Session-Challenge` value for the next refresh.
    pub fn challenge_header(&self) -> String {
        dbsc::challenge_header(&self.next_challenge, self.session)
    }
}

/// The result of [`Verrou::register_binding`].
#[must_use]
#[derive(Debug)]
#[non_exhaustive]
pub enum BindingOutcome {
    /// The key is registered: set the bound cookie and answer with the DBSC instructions
    /// ([`Verrou::dbsc_instructions`]).
    Bound(BoundCredential),
    /// The proof was refused (and audited); the session keeps its offer and stays unbound.
    Refused(ProofError),
    /// The session already has a key: a second registration is refused.
    AlreadyBound,
    /// No live second-factor session with this cookie.
    NoSession,
}

/// The result of [`Verrou::refresh_binding`].
#[must_use]
#[derive(Debug)]
#[non_exhaustive]
pub enum RefreshOutcome {
    /// The proof is valid: set the new bound cookie; send the next challenge.
    Refreshed(BoundCredential),
    /// Sign this challenge and retry: answer 403 with `Secure-Session-Challenge`
    /// ([`dbsc::challenge_header`]). `reason` is set when a proof came with a stale or unknown
    /// challenge.
    Challenge {
        /// The session.
        session: SessionId,
        /// The challenge to sign.
        challenge: Challenge,
        /// Why the proof (if any) was not accepted.
        reason: Option<ProofError>,
    },
    /// The proof was invalid (wrong key, bad signature, malformed): the session is revoked.
    /// Answer with [`dbsc::END_SESSION_BODY`] and clear the cookies.
    Ended(ProofError),
    /// The session has no registered key.
    NotBound,
    /// No live session with this cookie.
    NoSession,
}

impl<S: Store, C: Clock> Verrou<S, C> {
    /// Registers the device key of a session that was offered binding
    /// ([`Verrou::record_second_factor`] returned a challenge): `proof` is the ES256 JWT
    /// signed by the new key (carried in its header as `jwk`) over that challenge (`jti`).
    ///
    /// Where binding is required, a registration after the grace (2 minutes by default) is
    /// refused as [`ProofError::StaleChallenge`]: the session is already refused as
    /// [`SessionStatus::BindingMissing`](crate::SessionStatus::BindingMissing) and must pass
    /// the second factor again, which offers binding anew.
    ///
    /// # Errors
    /// Store, clock or RNG failures; a bad proof is an outcome.
    pub async fn register_binding(
        &self,
        session_cookie: &str,
        proof: &str,
        kind: BindingKind,
        ctx: &ClientContext,
    ) -> Result<BindingOutcome, Error> {
        let now = self.clock.now()?;
        let record = match self.live_session(session_cookie, now).await? {
            Ok(record) if record.assurance == Assurance::SecondFactor => record,
            _ => return Ok(BindingOutcome::NoSession),
        };
        let parsed = ParsedProof::parse(proof).and_then(|parsed| {
            let key = parsed.verify_embedded()?;
            Ok((parsed, key))
        });
        let (parsed, key) = match parsed {
            Ok(verified) => verified,
            Err(reason) => return self.refuse(&record, ctx, now, reason).await,
        };
        for _ in 0..SWAP_ATTEMPTS {
            let Some(binding) = self.store.binding(record.id).await? else {
                return self.refuse(&record, ctx, now, ProofError::Challenge).await;
            };
            if binding.key.is_some() {
                return Ok(BindingOutcome::AlreadyBound);
            }
            // The registration challenge outlives the grace (DBSC needs it to outlive the
            // bound cookie), but a session already refused as unbound stays refused.
            if self.registration_overdue(&record, Some(&binding), now) {
                return self
                    .refuse(&record, ctx, now, ProofError::StaleChallenge)
                    .await;
            }
            if let Err(reason) = answered(&parsed, &binding, now) {
                return self.refuse(&record, ctx, now, reason).await;
            }
            let (credential, next) = self.renewal(&record, &binding, now)?;
            let next = BindingRecord {
                key: Some((key, kind)),
                previous_cookie: None,
                ..next
            };
            if self
                .store
                .swap_binding(record.id, Some(binding.version), next)
                .await?
            {
                let session = record.id;
                self.emit_about(
                    &record,
                    ctx,
                    now,
                    AuditKind::BindingRegistered { session, kind },
                )
                .await?;
                return Ok(BindingOutcome::Bound(credential));
            }
        }
        self.refuse(&record, ctx, now, ProofError::StaleChallenge)
            .await
    }

    /// Records a refused proof in the audit trail.
    async fn report_proof_failure(
        &self,
        record: &SessionRecord,
        ctx: &ClientContext,
        now: Timestamp,
        reason: ProofError,
    ) -> Result<(), Error> {
        let session = record.id;
        let kind = AuditKind::BindingProofFailed { session, reason };
        self.emit_about(record, ctx, now, kind).await
    }

    async fn refuse(
        &self,
        record: &SessionRecord,
        ctx: &ClientContext,
        now: Timestamp,
        reason: ProofError,
    ) -> Result<BindingOutcome, Error> {
        self.report_proof_failure(record, ctx, now, reason).await?;
        Ok(BindingOutcome::Refused(reason))
    }

    /// Renews a bound session's short cookie. Without `proof`, answers with the challenge to
    /// sign (a new one once the outstanding one is past half its lifetime; the previous one
    /// stays answerable until its expiry). With one, verifies it against the
    /// registered key and the session's challenges:
    /// - valid: a new bound cookie (the previous one stays valid until its own expiry, never
    ///   older ones) and a new challenge; both outstanding challenges are used up;
    /// - stale or unknown challenge, valid signature: a new challenge to sign;
    /// - anything else (wrong key, bad signature, malformed): the session is **revoked** at
    ///   once — whoever sent it holds the cookie but not the device.
    ///
    /// # Errors
    /// Store, clock or RNG failures; a bad proof is an outcome.
    pub async fn refresh_binding(
        &self,
        session_cookie: &str,
        proof: Option<&str>,
        ctx: &ClientContext,
    ) -> Result<RefreshOutcome, Error> {
        let now = self.clock.now()?;
        let record = match self.live_session(session_cookie, now).await? {
            Ok(record) => record,
            Err(_) => return Ok(RefreshOutcome::NoSession),
        };
        let session = record.id;
        let parsed = match proof.map(ParsedProof::parse).transpose() {
            Ok(parsed) => parsed,
            Err(reason) => return self.end_session(&record, ctx, now, reason).await,
        };
        for _ in 0..SWAP_ATTEMPTS {
            let Some(binding) = self.store.binding(session).await? else {
                return Ok(RefreshOutcome::NotBound);
            };
            let Some((key, _)) = binding.key else {
                return Ok(RefreshOutcome::NotBound);
            };
            let Some(parsed) = &parsed else {
                if let Some(challenge) = self.rechallenge(session, &binding, now).await? {
                    let reason = None;
                    return Ok(RefreshOutcome::Challenge {
                        session,
                        challenge,
                        reason,
                    });
                }
                continue;
            };
            if let Err(reason) = parsed.verify_with(&key) {
                return self.end_session(&record, ctx, now, reason).await;
            }
            if let Err(reason) = answered(parsed, &binding, now) {
                self.report_proof_failure(&record, ctx, now, reason).await?;
                if let Some(challenge) = self.rechallenge(session, &binding, now).await? {
                    let reason = Some(reason);
                    return Ok(RefreshOutcome::Challenge {
                        session,
                        challenge,
                        reason,
                    });
                }
                continue;
            }
            let (credential, next) = self.renewal(&record, &binding, now)?;
            if self
                .store
                .swap_binding(session, Some(binding.version), next)
                .await?
            {
                self.emit_about(&record, ctx, now, AuditKind::BindingRefreshed { session })
                    .await?;
                return Ok(RefreshOutcome::Refreshed(credential));
            }
        }
        Err(crate::error::StoreError::new(
            crate::error::StoreErrorKind::Contention,
            "the session's binding kept changing during a refresh",
        )
        .into())
    }

    /// How `session` is bound to its device: by the browser's DBSC or the WebCrypto fallback;
    /// `None` while it has no registered key (for a "your sessions" page).
    ///
    /// # Errors
    /// Store failures.
    pub async fn session_binding(&self, session: SessionId) -> Result<Option<BindingKind>, Error> {
        let binding = self.store.binding(session).await?;
        Ok(binding.and_then(|binding| binding.key.map(|(_, kind)| kind)))
    }

    /// The DBSC session instructions JSON for a registration or refresh answer.
    pub fn dbsc_instructions(&self, session: SessionId) -> String {
        self.config.sessions.dbsc.instructions(session)
    }

    async fn end_session(
        &self,
        record: &SessionRecord,
        ctx: &ClientContext,
        now: Timestamp,
        reason: ProofError,
    ) -> Result<RefreshOutcome, Error> {
        self.report_proof_failure(record, ctx, now, reason).await?;
        let scope = RevocationScope::Session(record.id);
        self.revoke(&scope, RevocationReason::BindingFailed, ctx)
            .await?;
        Ok(RefreshOutcome::Ended(reason))
    }

    /// The challenge to sign next: the outstanding one while it has at least half its
    /// lifetime left (so a flood of challenge requests — from a thief holding the cookie, say
    /// — neither writes nor pushes the real browser's challenge out), otherwise a new one,
    /// keeping the current as the previous. `None` if the record changed meanwhile (the
    /// caller reads it again).
    async fn rechallenge(
        &self,
        session: SessionId,
        binding: &BindingRecord,
        now: Timestamp,
    ) -> Result<Option<Challenge>, Error> {
        let half_life = self.config.sessions.challenge_ttl() / 2;
        if let Some(current) = &binding.challenge {
            if now.saturating_add(half_life) < current.expires_at {
                return Ok(Some(current.challenge.clone()));
            }
        }
        let challenge = Challenge::generate()?;
        let next = BindingRecord {
            version: binding.version + 1,
            challenge: Some(self.issue(&challenge, now)),
            previous_challenge: binding.challenge.clone(),
            ..binding.clone()
        };
        let swapped = self
            .store
            .swap_binding(session, Some(binding.version), next)
            .await?;
        Ok(swapped.then_some(challenge))
    }

    /// A new bound cookie and challenge replacing `binding`'s; both outstanding challenges
    /// are used up; the current cookie becomes the previous one if it has not expired.
    fn renewal(
        &self,
        record: &SessionRecord,
        binding: &BindingRecord,
        now: Timestamp,
    ) -> Result<(BoundCredential, BindingRecord), Error> {
        let lifetime = self.config.sessions.bound_cookie_lifetime;
        let cookie = SessionToken::generate()?;
        let challenge = Challenge::generate()?;
        let next = BindingRecord {
            version: binding.version + 1,
            offered_at: binding.offered_at,
            key: binding.key,
            challenge: Some(self.issue(&challenge, now)),
            previous_challenge: None,
            cookie: Some(IssuedCookie {
                hash: cookie.hash(TokenKind::Bound),
                expires_at: now.saturating_add(lifetime),
            }),
            previous_cookie: binding.cookie.filter(|cookie| now < cookie.expires_at),
        };
        let credential = BoundCredential {
            session: record.id,
            cookie,
            max_age: lifetime,
            next_challenge: challenge,
        };
        Ok((credential, next))
    }

    fn issue(&self, challenge: &Challenge, now: Timestamp) -> IssuedChallenge {
        IssuedChallenge {
            challenge: challenge.clone(),
            expires_at: now.saturating_add(self.config.sessions.challenge_ttl()),
        }
    }
}

/// Whether the proof answers one of the binding's outstanding challenges at `now`.
fn answered(
    proof: &ParsedProof,
    binding: &BindingRecord,
    now: Timestamp,
) -> Result<(), ProofError> {
    let outstanding = [&binding.challenge, &binding.previous_challenge];
    let matched = outstanding
        .into_iter()
        .flatten()
        .find(|issued| proof.answers(issued.challenge.as_str()));
    match matched {
        Some(issued) if now < issued.expires_at => Ok(()),
        Some(_) => Err(ProofError::StaleChallenge),
        None => Err(ProofError::Challenge),
    }
}
