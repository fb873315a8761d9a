//! Session cases of the conformance suite: the store's session operations, and the service's
//! session rules (assurance, expiry, revocation, device binding) over each backend.

use std::time::Duration;

use verrou::audit::{AuditEvent, AuditKind};
use verrou::session::proof::ProofError;
use verrou::session::{
    Assurance, BindingKind, BindingMode, Challenge, ExpiryReason, Requirement, RevocationReason,
    RevocationScope, SessionPolicy, StepUpReason, TokenHash,
};
use verrou::store::backend::{BindingRecord, IssuedChallenge, SessionRecord};
use verrou::store::backend::{Elevation, RevocationContext};
use verrou::store::Store;
use verrou::testing::InsecureDevice;
use verrou::{
    BindingOutcome, ClientContext, ElevationOutcome, OrgId, RefreshOutcome, SecondFactorMethod,
    SessionCookies, SessionId, SessionStatus,
};

use super::{at, config, enrolled, race, user, Enrolled, RACERS, START};

fn hash(byte: u8) -> TokenHash {
    TokenHash::from_bytes([byte; 32])
}

fn record(who: &str, org: Option<&str>, token: u8, created: u64) -> SessionRecord {
    SessionRecord {
        id: SessionId::generate().unwrap(),
        token: hash(token),
        user: user(who),
        org: org.map(|org| OrgId::new(org).unwrap()),
        assurance: Assurance::PasswordOnly,
        created_at: at(created),
        last_seen: at(created),
        expires_at: at(created + 3600),
        second_factor: None,
        signals: Some(hash(200)),
    }
}

fn revocation(reason: RevocationReason) -> RevocationContext {
    RevocationContext {
        at: at(START + 5),
        client: None,
        reason,
    }
}

async fn alive<S: Store>(store: &S, token: u8) -> bool {
    store
        .session_by_token(&hash(token))
        .await
        .unwrap()
        .is_some()
}

fn offered(version: u64) -> BindingRecord {
    BindingRecord {
        version,
        offered_at: at(START),
        key: None,
        challenge: Some(IssuedChallenge {
            challenge: Challenge::generate().unwrap(),
            expires_at: at(START + 600),
        }),
        previous_challenge: None,
        cookie: None,
        previous_cookie: None,
    }
}

// ---- store operations ---------------------------------------------------------------

pub async fn sessions_are_created_found_and_touched<S: Store>(store: S) {
    let first = record("alice", Some("org-1"), 1, START);
    let second = record("alice", None, 2, START + 10);
    store.create_session(first.clone()).await.unwrap();
    store.create_session(second.clone()).await.unwrap();
    assert_eq!(
        store.session_by_token(&hash(1)).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.session_by_token(&hash(9)).await.unwrap(), None);
    // A reused token hash is refused, never a second session on one token.
    assert!(store
        .create_session(record("bob", None, 1, START))
        .await
        .is_err());

    store
        .touch_session(first.id, at(START + 100))
        .await
        .unwrap();
    store.touch_session(first.id, at(START + 50)).await.unwrap(); // never backwards
    let touched = store.session_by_token(&hash(1)).await.unwrap().unwrap();
    assert_eq!(touched.last_seen, at(START + 100));

    let listed = store.user_sessions(&user("alice")).await.unwrap();
    let ids: Vec<_> = listed.iter().map(|s| s.id).collect();
    assert_eq!(ids, [second.id, first.id]);
    assert!(store.user_sessions(&user("bob")).await.unwrap().is_empty());
}

/// The elevation's audit record, as the service writes it.
fn elevated_event(session: SessionId) -> AuditEvent {
    AuditEvent::new(
        at(START + 20),
        user("alice"),
        None,
        AuditKind::SessionElevated {
            session,
            method: SecondFactorMethod::Totp,
        },
    )
}

pub async fn elevation_swaps_the_token_once<S: Store>(store: S) {
    let session = record("alice", None, 1, START);
    store.create_session(session.clone()).await.unwrap();
    // An earlier binding (at version 3) is replaced whole.
    store
        .swap_binding(session.id, None, offered(3))
        .await
        .unwrap();
    let elevation = Elevation {
        token: hash(2),
        second_factor: (at(START + 20), SecondFactorMethod::RecoveryCode),
        expires_at: at(START + 43_200),
        signals: None,
        binding: Some(offered(1)),
        record: elevated_event(session.id),
    };
    assert!(store
        .elevate_session(session.id, &hash(1), elevation.clone())
        .await
        .unwrap());
    // The offer, numbered past the binding it replaced, and the audit record, with it.
    let binding = store.binding(session.id).await.unwrap().unwrap();
    assert_eq!(binding.version, 4, "{binding:?}");
    assert_eq!(
        binding.challenge,
        elevation.binding.clone().unwrap().challenge
    );
    let trail = store.audit_trail(None, 10).await.unwrap();
    assert_eq!(trail, [elevated_event(session.id)]);
    assert_eq!(store.session_by_token(&hash(1)).await.unwrap(), None);
    let elevated = store.session_by_token(&hash(2)).await.unwrap().unwrap();
    assert_eq!(elevated.assurance, Assurance::SecondFactor);
    assert_eq!(
        elevated.second_factor,
        Some((at(START + 20), SecondFactorMethod::RecoveryCode))
    );
    assert_eq!(elevated.expires_at, at(START + 43_200));
    assert_eq!(elevated.signals, None);
    // The old token cannot elevate again (fixation, double submission).
    let again = Elevation {
        token: hash(3),
        ..elevation
    };
    assert!(!store
        .elevate_session(session.id, &hash(1), again)
        .await
        .unwrap());
    assert_eq!(store.session_by_token(&hash(3)).await.unwrap(), None);
}

pub async fn revocation_covers_each_scope<S: Store>(store: S) {
    let a1 = record("alice", Some("org-1"), 1, START);
    let a2 = record("alice", Some("org-1"), 2, START + 100);
    let b1 = record("bob", Some("org-1"), 3, START + 200);
    let c1 = record("carol", Some("org-2"), 4, START + 300);
    let d1 = record("dave", None, 5, START + 400);
    for session in [&a1, &a2, &b1, &c1, &d1] {
        store.create_session(session.clone()).await.unwrap();
        store
            .swap_binding(session.id, None, offered(1))
            .await
            .unwrap();
    }

    // One user's sessions but the current one.
    let scope = RevocationScope::User {
        user: user("alice"),
        except: Some(a2.id),
    };
    let events = store
        .revoke_sessions(&scope, revocation(RevocationReason::FactorChanged))
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].kind,
        AuditKind::SessionRevoked {
            session: a1.id,
            reason: RevocationReason::FactorChanged
        }
    );
    assert!(!alive(&store, 1).await && alive(&store, 2).await);
    assert_eq!(store.binding(a1.id).await.unwrap(), None);

    // A whole organisation.
    let org = RevocationScope::Org(OrgId::new("org-1").unwrap());
    let events = store
        .revoke_sessions(&org, revocation(RevocationReason::Revoked))
        .await
        .unwrap();
    let mut users: Vec<_> = events.iter().map(|e| e.user.as_str().to_owned()).collect();
    users.sort();
    assert_eq!(users, ["alice", "bob"]);
    assert!(!alive(&store, 2).await && !alive(&store, 3).await);
    assert!(alive(&store, 4).await && alive(&store, 5).await);
    assert_eq!(store.binding(b1.id).await.unwrap(), None);
    assert!(store.binding(c1.id).await.unwrap().is_some());

    // Everything issued before an instant.
    let before = RevocationScope::IssuedBefore(at(START + 350));
    let events = store
        .revoke_sessions(&before, revocation(RevocationReason::Revoked))
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert!(!alive(&store, 4).await && alive(&store, 5).await);

    // One session.
    let one = RevocationScope::Session(d1.id);
    let events = store
        .revoke_sessions(&one, revocation(RevocationReason::Logout))
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert!(!alive(&store, 5).await);
    let again = store
        .revoke_sessions(&one, revocation(RevocationReason::Logout))
        .await
        .unwrap();
    assert!(again.is_empty());

    // Each revoked session has its audit record in the store's trail.
    let trail = store.audit_trail(None, 100).await.unwrap();
    let revoked = trail
        .iter()
        .filter(|e| matches!(e.kind, AuditKind::SessionRevoked { .. }))
        .count();
    assert_eq!(revoked, 5);
}

pub async fn binding_changes_only_by_compare_and_set<S: Store>(store: S) {
    let session = record("alice", None, 1, START);
    // No session, no binding.
    assert!(!store
        .swap_binding(session.id, None, offered(1))
        .await
        .unwrap());
    store.create_session(session.clone()).await.unwrap();
    let first = offered(1);
    assert!(store
        .swap_binding(session.id, None, first.clone())
        .await
        .unwrap());
    assert!(!store
        .swap_binding(session.id, None, offered(1))
        .await
        .unwrap());
    assert_eq!(store.binding(session.id).await.unwrap(), Some(first));

    let device = InsecureDevice::generate().unwrap();
    let key = verrou::session::proof::ParsedProof::parse(&device.registration_proof("x"))
        .unwrap()
        .verify_embedded()
        .unwrap();
    let bound = BindingRecord {
        version: 2,
        key: Some((key, BindingKind::WebCrypto)),
        cookie: Some(verrou::store::backend::IssuedCookie {
            hash: hash(7),
            expires_at: at(START + 300),
        }),
        previous_cookie: Some(verrou::store::backend::IssuedCookie {
            hash: hash(8),
            expires_at: at(START + 200),
        }),
        previous_challenge: offered(0).challenge,
        ..offered(2)
    };
    assert!(store
        .swap_binding(session.id, Some(1), bound.clone())
        .await
        .unwrap());
    assert!(!store
        .swap_binding(session.id, Some(1), offered(2))
        .await
        .unwrap());
    assert_eq!(store.binding(session.id).await.unwrap(), Some(bound));
}

pub async fn expired_sessions_are_purged<S: Store>(store: S) {
    let old = record("alice", None, 1, START); // expires START + 3600
    let idle = record("alice", None, 2, START + 1000);
    let fresh = record("bob", None, 3, START + 3000);
    for session in [&old, &idle, &fresh] {
        store.create_session(session.clone()).await.unwrap();
        store
            .swap_binding(session.id, None, offered(1))
            .await
            .unwrap();
    }
    let purged = store
        .purge_expired_sessions(at(START + 3600), at(START + 2000))
        .await
        .unwrap();
    assert_eq!(purged, 2);
    assert_eq!(store.session_by_token(&hash(1)).await.unwrap(), None);
    assert_eq!(store.session_by_token(&hash(2)).await.unwrap(), None);
    assert!(store.session_by_token(&hash(3)).await.unwrap().is_some());
    assert_eq!(store.binding(old.id).await.unwrap(), None);
    assert!(store.binding(fresh.id).await.unwrap().is_some());
}

pub async fn concurrent_elevations_succeed_once<S: Store + 'static>(store: S) {
    let store = std::sync::Arc::new(store);
    let session = record("alice", None, 1, START);
    store.create_session(session.clone()).await.unwrap();
    let results = race(|i| {
        let store = store.clone();
        let elevation = Elevation {
            token: TokenHash::from_bytes([u8::try_from(i + 10).unwrap(); 32]),
            second_factor: (at(START), SecondFactorMethod::Totp),
            expires_at: at(START + 3600),
            signals: None,
            binding: Some(offered(1)),
            record: elevated_event(session.id),
        };
        async move {
            store
                .elevate_session(session.id, &hash(1), elevation)
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(results.iter().filter(|won| **won).count(), 1);
    // One offer and one audit record: the losers wrote nothing.
    assert_eq!(store.binding(session.id).await.unwrap().unwrap().version, 1);
    assert_eq!(store.audit_trail(None, 100).await.unwrap().len(), 1);
}

pub async fn concurrent_binding_swaps_succeed_once<S: Store + 'static>(store: S) {
    let store = std::sync::Arc::new(store);
    let session = record("alice", None, 1, START);
    store.create_session(session.clone()).await.unwrap();
    store
        .swap_binding(session.id, None, offered(1))
        .await
        .unwrap();
    let results = race(|_| {
        let store = store.clone();
        async move {
            store
                .swap_binding(session.id, Some(1), offered(2))
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(results.iter().filter(|won| **won).count(), 1);
    assert_eq!(store.binding(session.id).await.unwrap().unwrap().version, 2);
}

// ---- the service's session rules over this store ----------------------------------------

/// Binding off, to look at lifetimes and assurance alone.
pub fn unbound_config() -> verrou::VerrouConfig {
    let policy = SessionPolicy::new()
        .with_binding(BindingMode::Off, Duration::from_secs(300))
        .unwrap();
    config().with_session_policy(policy)
}

/// A status's kind, and the session it names (for the statuses that name one).
pub fn status_for(status: SessionStatus) -> (&'static str, Option<SessionId>) {
    match status {
        SessionStatus::Active(session) => ("Active", Some(session.id)),
        SessionStatus::SecondFactorRequired(session) => ("SecondFactorRequired", Some(session.id)),
        SessionStatus::StepUpRequired { session, .. } => ("StepUpRequired", Some(session.id)),
        SessionStatus::RefreshRequired { session } => ("RefreshRequired", Some(session.id)),
        SessionStatus::BindingMissing { session } => ("BindingMissing", Some(session.id)),
        SessionStatus::Expired(_) => ("Expired", None),
        SessionStatus::NotFound => ("NotFound", None),
        SessionStatus::Malformed => ("Malformed", None),
        _ => ("other", None),
    }
}

/// A user's browser: its cookies, and its device key once bound.
pub struct Browser {
    pub session: String,
    pub bound: Option<String>,
    pub id: SessionId,
}

impl Browser {
    pub fn cookies(&self) -> SessionCookies<'_> {
        SessionCookies::new(&self.session, self.bound.as_deref())
    }
}

impl<S: Store> Enrolled<S> {
    /// Signs in with the password: a password-only session.
    pub async fn sign_in(&self, org: Option<&str>) -> Browser {
        let org = org.map(|org| OrgId::new(org).unwrap());
        let new = self
            .verrou
            .create_session(&self.user, org.as_ref(), &ClientContext::unknown())
            .await
            .unwrap();
        Browser {
            session: new.token.expose_secret().to_owned(),
            bound: None,
            id: new.session,
        }
    }

    /// Passes the second factor in the browser's session; returns the binding offer.
    pub async fn elevate(&self, browser: &mut Browser) -> Option<Challenge> {
        self.advance_steps(1);
        let proof = self.accept(&self.code(0)).await.proof;
        let outcome = self
            .verrou
            .record_second_factor(&browser.session, proof, &ClientContext::unknown())
            .await
            .unwrap();
        let ElevationOutcome::Elevated(elevated) = outcome else {
            panic!("elevation refused: {outcome:?}");
        };
        browser.session = elevated.token.expose_secret().to_owned();
        elevated.binding_offer
    }

    pub async fn status(&self, browser: &Browser, requirement: Requirement) -> SessionStatus {
        self.verrou
            .authenticate(&browser.cookies(), requirement, &ClientContext::unknown())
            .await
            .unwrap()
    }

    /// Two elevated sessions of the user: the one acting, with its step-up proof, and
    /// another one.
    pub async fn acting_and_other(&self) -> (Browser, Browser, verrou::SecondFactorProof) {
        let mut acting = self.sign_in(None).await;
        let mut other = self.sign_in(None).await;
        self.elevate(&mut other).await;
        self.elevate(&mut acting).await;
        let SessionStatus::Active(session) =
            self.status(&acting, Requirement::RecentSecondFactor).await
        else {
            panic!("fresh session refused");
        };
        (acting, other, session.step_up_proof().unwrap())
    }

    /// Signs in, passes the second factor and registers `device` (the DBSC flow).
    pub async fn bound_browser(&self, device: &InsecureDevice) -> Browser {
        let mut browser = self.sign_in(Some("org-1")).await;
        let challenge = self.elevate(&mut browser).await.expect("binding offered");
        let proof = device.registration_proof(challenge.as_str());
        let outcome = self
            .verrou
            .register_binding(
                &browser.session,
                &proof,
                BindingKind::Dbsc,
                &ClientContext::unknown(),
            )
            .await
            .unwrap();
        let BindingOutcome::Bound(credential) = outcome else {
            panic!("registration refused: {outcome:?}");
        };
        browser.bound = Some(credential.cookie.expose_secret().to_owned());
        browser
    }

    /// The browser refreshes its bound cookie: asks for a challenge, signs it with `device`.
    pub async fn refresh(&self, browser: &mut Browser, device: &InsecureDevice) -> RefreshOutcome {
        let ctx = ClientContext::unknown();
        let first = self
            .verrou
            .refresh_binding(&browser.session, None, &ctx)
            .await
            .unwrap();
        let RefreshOutcome::Challenge { challenge, .. } = first else {
            return first;
        };
        let proof = device.refresh_proof(challenge.as_str());
        let outcome = self
            .verrou
            .refresh_binding(&browser.session, Some(&proof), &ctx)
            .await
            .unwrap();
        if let RefreshOutcome::Refreshed(credential) = &outcome {
            browser.bound = Some(credential.cookie.expose_secret().to_owned());
        }
        outcome
    }
}

fn is_active(status: &SessionStatus) -> bool {
    matches!(status, SessionStatus::Active(_))
}

pub async fn service_sessions_rise_only_through_the_second_factor<S: Store>(store: S) {
    let e = enrolled(store, unbound_config()).await;
    let mut browser = e.sign_in(None).await;
    let password_only = browser.session.clone();
    assert!(matches!(
        e.status(&browser, Requirement::SecondFactor).await,
        SessionStatus::SecondFactorRequired(_)
    ));
    assert!(is_active(
        &e.status(&browser, Requirement::AnySession).await
    ));
    // A cookie value that is not a token, or an unknown one.
    let garbage = SessionCookies::new("mfa_verified=true", None);
    let ctx = ClientContext::unknown();
    assert_eq!(
        e.verrou
            .authenticate(&garbage, Requirement::AnySession, &ctx)
            .await
            .unwrap(),
        SessionStatus::Malformed
    );

    e.elevate(&mut browser).await;
    let SessionStatus::Active(active) = e.status(&browser, Requirement::SecondFactor).await else {
        panic!("elevated session refused");
    };
    assert_eq!(active.assurance, Assurance::SecondFactor);
    // No fixation: the password-only token died with the elevation.
    let old = SessionCookies::new(&password_only, None);
    assert_eq!(
        e.verrou
            .authenticate(&old, Requirement::AnySession, &ctx)
            .await
            .unwrap(),
        SessionStatus::NotFound
    );
    // Another user's proof cannot elevate this session.
    let other = e.sign_in(None).await;
    let mallory = user("mallory");
    let mallory_secret = super::enrol(&e.verrou, &mallory).await;
    e.advance_steps(1);
    let code = verrou::testing::insecure_code_at(
        &mallory_secret,
        verrou::TotpParams::DEFAULT,
        verrou::Clock::now(&e.clock).unwrap(),
    );
    let verrou::TotpOutcome::Accepted(accepted) =
        e.verrou.verify_totp(&mallory, &code, &ctx).await.unwrap()
    else {
        panic!("mallory's code refused");
    };
    let refused = e
        .verrou
        .record_second_factor(&other.session, accepted.proof, &ctx)
        .await;
    assert!(matches!(
        refused,
        Err(verrou::Error::Misuse(
            verrou::ApiMisuse::ProofForAnotherUser
        ))
    ));
}

pub async fn service_lifetimes_follow_the_injected_clock<S: Store>(store: S) {
    let e = enrolled(store, unbound_config()).await;
    // A password-only session that never completes the second factor.
    let lingering = e.sign_in(None).await;
    e.clock.advance(Duration::from_secs(10 * 60));
    assert_eq!(
        e.status(&lingering, Requirement::AnySession).await,
        SessionStatus::Expired(ExpiryReason::SecondFactorNotCompleted)
    );

    // Idle: 29 minutes apart is fine, 30 is not.
    let mut browser = e.sign_in(None).await;
    e.elevate(&mut browser).await;
    e.clock.advance(Duration::from_secs(29 * 60));
    assert!(is_active(
        &e.status(&browser, Requirement::SecondFactor).await
    ));
    e.clock.advance(Duration::from_secs(30 * 60));
    assert_eq!(
        e.status(&browser, Requirement::SecondFactor).await,
        SessionStatus::Expired(ExpiryReason::Idle)
    );

    // Absolute: kept busy, it still ends 12 hours after creation.
    let mut busy = e.sign_in(None).await;
    e.elevate(&mut busy).await;
    for _ in 0..((12 * 60) / 20) {
        e.clock.advance(Duration::from_secs(20 * 60));
        let status = e.status(&busy, Requirement::SecondFactor).await;
        if status == SessionStatus::Expired(ExpiryReason::Absolute) {
            return;
        }
        assert!(is_active(&status), "{status:?}");
    }
    panic!("the session outlived its absolute lifetime");
}

pub async fn service_step_up_needs_a_fresh_second_factor<S: Store>(store: S) {
    let e = enrolled(store, unbound_config()).await;
    let mut browser = e.sign_in(None).await;
    e.elevate(&mut browser).await;
    assert!(is_active(
        &e.status(&browser, Requirement::RecentSecondFactor).await
    ));
    e.clock.advance(Duration::from_secs(6 * 60));
    let SessionStatus::StepUpRequired { reason, session } =
        e.status(&browser, Requirement::RecentSecondFactor).await
    else {
        panic!("a stale second factor passed a sensitive action");
    };
    assert_eq!(reason, StepUpReason::Stale);
    // The session's own proof is too old for re-enrolment as well.
    let proof = session.step_up_proof().unwrap();
    let outcome = e
        .verrou
        .start_totp_reenrollment(proof, "alice@example.org", &ClientContext::unknown())
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        verrou::ReenrollmentOutcome::StepUpRequired
    ));
    // Ordinary pages still work; a step-up renews freshness.
    assert!(is_active(
        &e.status(&browser, Requirement::SecondFactor).await
    ));
    e.elevate(&mut browser).await;
    assert!(is_active(
        &e.status(&browser, Requirement::RecentSecondFactor).await
    ));
}

/// Revocation is read by every request: through two handles (the concurrency variant of the
/// suite alternates them, as two portal instances), the next check sees it.
pub async fn service_revocation_takes_effect_on_the_next_request<S: Store>(store: S) {
    let e = enrolled(store, unbound_config()).await;
    let mut a = e.sign_in(Some("org-1")).await;
    let mut b = e.sign_in(Some("org-1")).await;
    let mut c = e.sign_in(Some("org-2")).await;
    for browser in [&mut a, &mut b, &mut c] {
        e.elevate(browser).await;
    }
    let ctx = ClientContext::unknown();
    assert!(is_active(&e.status(&a, Requirement::SecondFactor).await));
    let org = RevocationScope::Org(OrgId::new("org-1").unwrap());
    assert_eq!(e.verrou.revoke_sessions(&org, &ctx).await.unwrap(), 2);
    assert_eq!(
        e.status(&a, Requirement::SecondFactor).await,
        SessionStatus::NotFound
    );
    assert_eq!(
        e.status(&b, Requirement::SecondFactor).await,
        SessionStatus::NotFound
    );
    assert!(is_active(&e.status(&c, Requirement::SecondFactor).await));
    // Logout, then everything before an instant.
    assert_eq!(
        e.verrou.logout(&c.session, &ctx).await.unwrap(),
        verrou::LogoutOutcome::LoggedOut
    );
    assert_eq!(
        e.status(&c, Requirement::SecondFactor).await,
        SessionStatus::NotFound
    );
    let mut d = e.sign_in(None).await;
    e.elevate(&mut d).await;
    e.clock.advance(Duration::from_secs(1));
    let cutoff = verrou::Clock::now(&e.clock).unwrap();
    let scope = RevocationScope::IssuedBefore(cutoff);
    assert_eq!(e.verrou.revoke_sessions(&scope, &ctx).await.unwrap(), 1);
    assert_eq!(
        e.status(&d, Requirement::SecondFactor).await,
        SessionStatus::NotFound
    );
}

/// Re-enrolment and disabling revoke the user's other sessions, not the one acting.
pub async fn service_factor_changes_revoke_other_sessions<S: Store>(store: S) {
    let e = enrolled(store, unbound_config()).await;
    let (acting, other, proof) = e.acting_and_other().await;
    let ctx = ClientContext::unknown();
    let outcome = e
        .verrou
        .disable_totp(proof, Some(acting.id), &ctx)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        verrou::DisableOutcome::Disabled {
            had_factor: true,
            revoked_sessions: 1
        }
    );
    assert!(is_active(
        &e.status(&acting, Requirement::SecondFactor).await
    ));
    assert_eq!(
        e.status(&other, Requirement::AnySession).await,
        SessionStatus::NotFound
    );
    // An operator's factor reset revokes every session.
    let _ = e.verrou.remove_totp_factor(&e.user).await.unwrap();
    assert_eq!(
        e.status(&acting, Requirement::AnySession).await,
        SessionStatus::NotFound
    );
}

/// The infostealer: it copies a bound session's cookies (session and bound cookie) into
/// another machine that lacks the device key. The copy works only until the short bound
/// cookie expires; the real browser keeps working by signing refreshes.
pub async fn service_stolen_cookies_stop_working_without_the_device<S: Store>(store: S) {
    let e = enrolled(store, config()).await;
    let device = InsecureDevice::generate().unwrap();
    let mut victim = e.bound_browser(&device).await;
    let stolen = Browser {
        session: victim.session.clone(),
        bound: victim.bound.clone(),
        id: victim.id,
    };
    assert!(is_active(
        &e.status(&stolen, Requirement::SecondFactor).await
    ));
    // Without the bound cookie, the session cookie alone is not enough.
    let cookie_only = Browser {
        session: stolen.session.clone(),
        bound: None,
        id: stolen.id,
    };
    assert_eq!(
        status_for(e.status(&cookie_only, Requirement::SecondFactor).await),
        ("RefreshRequired", Some(victim.id))
    );

    // Five minutes later the bound cookie has expired, for both.
    e.clock.advance(Duration::from_secs(5 * 60));
    assert_eq!(
        status_for(e.status(&stolen, Requirement::SecondFactor).await),
        ("RefreshRequired", Some(victim.id))
    );
    // The victim's browser signs a refresh and carries on.
    assert!(matches!(
        e.refresh(&mut victim, &device).await,
        RefreshOutcome::Refreshed(_)
    ));
    assert!(is_active(
        &e.status(&victim, Requirement::SecondFactor).await
    ));
    // The thief can get a challenge but has nothing to sign it with: still refused.
    let ctx = ClientContext::unknown();
    let outcome = e
        .verrou
        .refresh_binding(&stolen.session, None, &ctx)
        .await
        .unwrap();
    assert!(matches!(outcome, RefreshOutcome::Challenge { .. }));
    assert_eq!(
        status_for(e.status(&stolen, Requirement::SecondFactor).await),
        ("RefreshRequired", Some(victim.id))
    );
    // And keeps being refused while the victim keeps working.
    for _ in 0..3 {
        e.clock.advance(Duration::from_secs(4 * 60));
        assert!(matches!(
            e.refresh(&mut victim, &device).await,
            RefreshOutcome::Refreshed(_)
        ));
        assert!(is_active(
            &e.status(&victim, Requirement::SecondFactor).await
        ));
        assert!(!is_active(
            &e.status(&stolen, Requirement::SecondFactor).await
        ));
    }

    // If the thief signs with a key of its own, the session ends for everyone (the theft is
    // detected), with an audit record saying why.
    let thief = InsecureDevice::generate().unwrap();
    let mut thief_browser = cookie_only;
    assert!(matches!(
        e.refresh(&mut thief_browser, &thief).await,
        RefreshOutcome::Ended(ProofError::WrongKey)
    ));
    assert_eq!(
        e.status(&victim, Requirement::AnySession).await,
        SessionStatus::NotFound
    );
    let trail = e.verrou.audit_trail(Some(&e.user), 50).await.unwrap();
    assert!(trail.iter().any(|event| event.kind
        == AuditKind::BindingProofFailed {
            session: victim.id,
            reason: ProofError::WrongKey
        }));
    assert!(trail.iter().any(|event| event.kind
        == AuditKind::SessionRevoked {
            session: victim.id,
            reason: RevocationReason::BindingFailed
        }));
}

/// A session that never binds is refused after the grace (binding required, the default).
pub async fn service_unbound_sessions_end_after_the_grace<S: Store>(store: S) {
    let e = enrolled(store, config()).await;
    let mut browser = e.sign_in(None).await;
    let offer = e.elevate(&mut browser).await;
    assert!(offer.is_some());
    assert!(is_active(
        &e.status(&browser, Requirement::SecondFactor).await
    ));
    e.clock.advance(Duration::from_secs(121));
    assert_eq!(
        status_for(e.status(&browser, Requirement::SecondFactor).await),
        ("BindingMissing", Some(browser.id))
    );
    // Only the browser that received the offer can register: a copied cookie cannot ask
    // for a new registration challenge, and a late registration with the old one fails.
    let device = InsecureDevice::generate().unwrap();
    let proof = device.registration_proof(offer.unwrap().as_str());
    e.clock.advance(Duration::from_secs(10 * 60));
    let outcome = e
        .verrou
        .register_binding(
            &browser.session,
            &proof,
            BindingKind::WebCrypto,
            &ClientContext::unknown(),
        )
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        BindingOutcome::Refused(ProofError::StaleChallenge)
    ));
}

/// A session refused as unbound after the grace cannot come back by registering late, even
/// with a challenge that has not expired yet.
pub async fn service_a_late_registration_is_refused<S: Store>(store: S) {
    let e = enrolled(store, config()).await;
    let mut browser = e.sign_in(None).await;
    let offer = e.elevate(&mut browser).await.unwrap();
    e.clock.advance(Duration::from_secs(121));
    let device = InsecureDevice::generate().unwrap();
    let outcome = e
        .verrou
        .register_binding(
            &browser.session,
            &device.registration_proof(offer.as_str()),
            BindingKind::WebCrypto,
            &ClientContext::unknown(),
        )
        .await
        .unwrap();
    assert!(
        matches!(outcome, BindingOutcome::Refused(ProofError::StaleChallenge)),
        "{outcome:?}"
    );
    assert_eq!(
        status_for(e.status(&browser, Requirement::SecondFactor).await),
        ("BindingMissing", Some(browser.id))
    );
}

/// Of racing refreshes carrying one proof, exactly one renews the cookie.
pub async fn service_concurrent_refreshes_accept_one_proof<S: Store + 'static>(store: S) {
    let e = enrolled(store, config()).await;
    let device = InsecureDevice::generate().unwrap();
    let browser = e.bound_browser(&device).await;
    let RefreshOutcome::Challenge { challenge, .. } = e
        .verrou
        .refresh_binding(&browser.session, None, &ClientContext::unknown())
        .await
        .unwrap()
    else {
        panic!("no challenge");
    };
    let proof = device.refresh_proof(challenge.as_str());
    let results = race(|_| {
        let (verrou, session, proof) = (e.verrou.clone(), browser.session.clone(), proof.clone());
        async move {
            verrou
                .refresh_binding(&session, Some(&proof), &ClientContext::unknown())
                .await
                .unwrap()
        }
    })
    .await;
    let refreshed = results
        .iter()
        .filter(|r| matches!(r, RefreshOutcome::Refreshed(_)))
        .count();
    let rechallenged = results
        .iter()
        .filter(|r| {
            matches!(
                r,
                RefreshOutcome::Challenge {
                    reason: Some(ProofError::Challenge),
                    ..
                }
            )
        })
        .count();
    assert_eq!((refreshed, rechallenged), (1, RACERS - 1), "{results:?}");
}

/// Soft signals (off by default): when on, a changed address prefix or user agent asks for a
/// step-up, which records the new signals.
pub async fn service_soft_signals_ask_for_step_up_when_on<S: Store>(store: S) {
    let policy = SessionPolicy::new()
        .with_binding(BindingMode::Off, Duration::from_secs(300))
        .unwrap()
        .with_soft_signals(true);
    let e = enrolled(store, config().with_session_policy(policy)).await;
    let office =
        ClientContext::from_addr("192.0.2.10".parse().unwrap()).with_user_agent("Firefox/140");
    let same_lan =
        ClientContext::from_addr("192.0.2.77".parse().unwrap()).with_user_agent("Firefox/140");
    let elsewhere =
        ClientContext::from_addr("198.51.100.5".parse().unwrap()).with_user_agent("Firefox/140");
    let other_agent =
        ClientContext::from_addr("192.0.2.10".parse().unwrap()).with_user_agent("curl/8");

    let new = e
        .verrou
        .create_session(&e.user, None, &office)
        .await
        .unwrap();
    e.advance_steps(1);
    let proof = e.accept(&e.code(0)).await.proof;
    let ElevationOutcome::Elevated(elevated) = e
        .verrou
        .record_second_factor(new.token.expose_secret(), proof, &office)
        .await
        .unwrap()
    else {
        panic!("elevation refused");
    };
    let token = elevated.token.expose_secret().to_owned();
    let cookies = SessionCookies::new(&token, None);
    let check = |ctx: ClientContext| {
        let verrou = e.verrou.clone();
        let token = token.clone();
        async move {
            verrou
                .authenticate(
                    &SessionCookies::new(&token, None),
                    Requirement::SecondFactor,
                    &ctx,
                )
                .await
                .unwrap()
        }
    };
    assert!(is_active(&check(office).await));
    assert!(is_active(&check(same_lan).await), "same /24");
    for changed in [elsewhere, other_agent] {
        let status = check(changed).await;
        assert!(
            matches!(
                status,
                SessionStatus::StepUpRequired {
                    reason: StepUpReason::SignalsChanged,
                    ..
                }
            ),
            "{status:?}"
        );
    }
    // Step-up from the new network: its signals become the session's.
    e.advance_steps(1);
    let proof = e.accept(&e.code(0)).await.proof;
    let ElevationOutcome::Elevated(again) = e
        .verrou
        .record_second_factor(cookies.session(), proof, &elsewhere)
        .await
        .unwrap()
    else {
        panic!("step-up refused");
    };
    let token = again.token.expose_secret().to_owned();
    let status = e
        .verrou
        .authenticate(
            &SessionCookies::new(&token, None),
            Requirement::SecondFactor,
            &elsewhere,
        )
        .await
        .unwrap();
    assert!(is_active(&status));
    let trail = e.verrou.audit_trail(Some(&e.user), 50).await.unwrap();
    assert!(trail
        .iter()
        .any(|event| matches!(event.kind, AuditKind::SessionSignalsChanged { .. })));
}

/// A browser that lost its device key (cleared storage) cannot refresh; passing the second
/// factor again binds the session to a new key, while the old key and a copied cookie are
/// useless.
pub async fn service_a_second_factor_rebinds_a_session_that_lost_its_key<S: Store>(store: S) {
    let e = enrolled(store, config()).await;
    let lost = InsecureDevice::generate().unwrap();
    let mut browser = e.bound_browser(&lost).await;
    let copied = browser.session.clone();
    e.clock.advance(Duration::from_secs(5 * 60));
    assert_eq!(
        status_for(e.status(&browser, Requirement::SecondFactor).await),
        ("RefreshRequired", Some(browser.id))
    );
    // The portal asks for the second factor again: a new token and a new offer.
    let offer = e
        .elevate(&mut browser)
        .await
        .expect("binding offered again");
    let new_key = InsecureDevice::generate().unwrap();
    let proof = new_key.registration_proof(offer.as_str());
    let ctx = ClientContext::unknown();
    let BindingOutcome::Bound(credential) = e
        .verrou
        .register_binding(&browser.session, &proof, BindingKind::WebCrypto, &ctx)
        .await
        .unwrap()
    else {
        panic!("re-registration refused");
    };
    browser.bound = Some(credential.cookie.expose_secret().to_owned());
    assert!(is_active(
        &e.status(&browser, Requirement::SecondFactor).await
    ));
    // The copied cookie died with the elevation; the old key no longer refreshes anything.
    let stale = SessionCookies::new(&copied, None);
    let status = e
        .verrou
        .authenticate(&stale, Requirement::AnySession, &ctx)
        .await
        .unwrap();
    assert_eq!(status, SessionStatus::NotFound);
    e.clock.advance(Duration::from_secs(5 * 60));
    assert!(matches!(
        e.refresh(&mut browser, &lost).await,
        RefreshOutcome::Ended(ProofError::WrongKey)
    ));
}

/// Re-enrolling in one session revokes the user's other sessions; the acting one stays.
pub async fn service_reenrolment_revokes_the_other_sessions<S: Store>(store: S) {
    let e = enrolled(store, unbound_config()).await;
    let (acting, other, proof) = e.acting_and_other().await;
    let ctx = ClientContext::unknown();
    let verrou::ReenrollmentOutcome::Started(offer) = e
        .verrou
        .start_totp_reenrollment(proof, "alice@example.org", &ctx)
        .await
        .unwrap()
    else {
        panic!("re-enrolment refused");
    };
    let secret = verrou::TotpSecret::from_base32(secrecy::ExposeSecret::expose_secret(
        offer.secret_base32(),
    ))
    .unwrap();
    let now = verrou::Clock::now(&e.clock).unwrap();
    let code = verrou::testing::insecure_code_at(&secret, verrou::TotpParams::DEFAULT, now);
    // The first-enrolment call refuses a re-enrolment instead of silently revoking the
    // session confirming it: the re-enrolment call names the session it keeps.
    let misuse = e.verrou.finish_totp_enrollment(&e.user, &code, &ctx).await;
    assert!(
        matches!(
            misuse,
            Err(verrou::Error::Misuse(
                verrou::ApiMisuse::ReenrollmentPending
            ))
        ),
        "{misuse:?}"
    );
    let confirmed = e
        .verrou
        .finish_totp_reenrollment(&e.user, &code, Some(acting.id), &ctx)
        .await
        .unwrap();
    assert!(matches!(
        confirmed,
        verrou::EnrollmentOutcome::Confirmed { .. }
    ));
    assert!(is_active(
        &e.status(&acting, Requirement::SecondFactor).await
    ));
    assert_eq!(
        e.status(&other, Requirement::AnySession).await,
        SessionStatus::NotFound
    );
}

/// Whatever else the client puts in its cookies, a password-only session stays password-only.
pub async fn service_client_flags_never_raise_a_level<S: Store>(store: S) {
    let e = enrolled(store, unbound_config()).await;
    let browser = e.sign_in(None).await;
    let header = format!(
        "mfa_verified=true; assurance=second_factor; __Host-verrou-session={}; level=2",
        browser.session
    );
    let cookies = SessionCookies::from_header(&header).unwrap();
    let ctx = ClientContext::unknown();
    let status = e
        .verrou
        .authenticate(&cookies, Requirement::SecondFactor, &ctx)
        .await
        .unwrap();
    assert!(
        matches!(status, SessionStatus::SecondFactorRequired(_)),
        "{status:?}"
    );
    // Nor does a planted bound cookie, or a second session cookie.
    let planted = SessionCookies::new(&browser.session, Some(&browser.session));
    let status = e
        .verrou
        .authenticate(&planted, Requirement::SecondFactor, &ctx)
        .await
        .unwrap();
    assert!(matches!(status, SessionStatus::SecondFactorRequired(_)));
    let doubled = format!(
        "__Host-verrou-session={0}; __Host-verrou-session={0}",
        browser.session
    );
    assert_eq!(SessionCookies::from_header(&doubled), None);
}

/// A thief holding the session cookie floods the refresh endpoint for challenges: nothing is
/// written, and the challenge the real browser holds still works.
pub async fn service_challenge_floods_do_not_evict_the_browsers_challenge<S: Store>(store: S) {
    let e = enrolled(store, config()).await;
    let device = InsecureDevice::generate().unwrap();
    let browser = e.bound_browser(&device).await;
    let ctx = ClientContext::unknown();
    let ask = || e.verrou.refresh_binding(&browser.session, None, &ctx);
    let RefreshOutcome::Challenge { challenge, .. } = ask().await.unwrap() else {
        panic!("no challenge");
    };
    let version = e
        .verrou
        .store()
        .binding(browser.id)
        .await
        .unwrap()
        .unwrap()
        .version;
    for _ in 0..50 {
        let RefreshOutcome::Challenge {
            challenge: again, ..
        } = ask().await.unwrap()
        else {
            panic!("no challenge");
        };
        assert_eq!(again, challenge);
    }
    let after = e.verrou.store().binding(browser.id).await.unwrap().unwrap();
    assert_eq!(
        after.version, version,
        "a challenge request wrote the binding"
    );
    let proof = device.refresh_proof(challenge.as_str());
    let outcome = e
        .verrou
        .refresh_binding(&browser.session, Some(&proof), &ctx)
        .await
        .unwrap();
    assert!(
        matches!(outcome, RefreshOutcome::Refreshed(_)),
        "{outcome:?}"
    );
}

// ---- proofs: one accepted code, one session; step-up proofs tied to their session ---------

/// A session's step-up proof cannot raise another session (the integrator's finding: one
/// accepted code elevated a second, unrelated password-only session). Raising a session
/// takes a code accepted for it; reusing or cloning the code's proof does not compile.
pub async fn service_a_sessions_proof_cannot_elevate_another_session<S: Store>(store: S) {
    let e = enrolled(store, unbound_config()).await;
    let mut first = e.sign_in(None).await;
    e.elevate(&mut first).await;
    let SessionStatus::Active(active) = e.status(&first, Requirement::SecondFactor).await else {
        panic!("elevated session refused");
    };
    let second = e.sign_in(None).await;
    let refused = e
        .verrou
        .record_second_factor(
            &second.session,
            active.step_up_proof().unwrap(),
            &ClientContext::unknown(),
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(verrou::Error::Misuse(
                verrou::ApiMisuse::SessionProofCannotElevate
            ))
        ),
        "{refused:?}"
    );
    assert_eq!(
        status_for(e.status(&second, Requirement::SecondFactor).await),
        ("SecondFactorRequired", Some(second.id))
    );
}

/// A step-up proof kept after its session ended (logout, revocation) or was raised again
/// authorises nothing.
pub async fn service_a_kept_step_up_proof_dies_with_its_session<S: Store>(store: S) {
    let e = enrolled(store, unbound_config()).await;
    let ctx = ClientContext::unknown();
    let mut browser = e.sign_in(None).await;
    e.elevate(&mut browser).await;
    let proof_of = |status: SessionStatus| match status {
        SessionStatus::Active(session) => session.step_up_proof().unwrap(),
        other => panic!("{other:?}"),
    };
    // Raised again: the earlier proof no longer matches the session.
    let earlier = proof_of(e.status(&browser, Requirement::RecentSecondFactor).await);
    e.elevate(&mut browser).await;
    let outcome = e.verrou.disable_totp(earlier, None, &ctx).await.unwrap();
    assert_eq!(outcome, verrou::DisableOutcome::StepUpRequired);
    // Logged out: the proof taken just before is refused.
    let kept = proof_of(e.status(&browser, Requirement::RecentSecondFactor).await);
    assert_eq!(
        e.verrou.logout(&browser.session, &ctx).await.unwrap(),
        verrou::LogoutOutcome::LoggedOut
    );
    let outcome = e
        .verrou
        .start_totp_reenrollment(kept, "alice@example.org", &ctx)
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        verrou::ReenrollmentOutcome::StepUpRequired
    ));
    assert!(e.verrou.has_active_totp(&e.user).await.unwrap());
}

/// Each cookie lives as long as its session: minutes for a password-only one.
pub async fn service_cookies_live_as_long_as_their_sessions<S: Store>(store: S) {
    let e = enrolled(store, unbound_config()).await;
    let ctx = ClientContext::unknown();
    let new = e.verrou.create_session(&e.user, None, &ctx).await.unwrap();
    assert_eq!(new.max_age, Duration::from_secs(10 * 60));
    assert!(
        new.set_cookie_header().contains("Max-Age=600"),
        "{}",
        new.set_cookie_header()
    );
    e.advance_steps(1);
    let proof = e.accept(&e.code(0)).await.proof;
    let ElevationOutcome::Elevated(elevated) = e
        .verrou
        .record_second_factor(new.token.expose_secret(), proof, &ctx)
        .await
        .unwrap()
    else {
        panic!("elevation refused");
    };
    // 12 hours from creation, 30 s of which have passed.
    assert_eq!(elevated.max_age, Duration::from_secs(12 * 3600 - 30));
    assert!(elevated
        .set_cookie_header()
        .contains(&format!("Max-Age={}", 12 * 3600 - 30)));
}

/// A session refused for its binding tells the portal whose it is, so it can ask that user
/// for the second factor again on the same cookie.
pub async fn service_binding_refusals_name_the_user<S: Store>(store: S) {
    let e = enrolled(store, config()).await;
    let mut browser = e.sign_in(Some("org-1")).await;
    e.elevate(&mut browser).await;
    e.clock.advance(Duration::from_secs(121));
    let SessionStatus::BindingMissing { session } =
        e.status(&browser, Requirement::SecondFactor).await
    else {
        panic!("an unbound session passed after the grace");
    };
    assert_eq!(
        (
            session.id,
            &session.user,
            session.org.as_ref().map(OrgId::as_str)
        ),
        (browser.id, &e.user, Some("org-1"))
    );
    // Asking that user again binds the session anew.
    assert!(e.elevate(&mut browser).await.is_some());
    assert!(is_active(
        &e.status(&browser, Requirement::SecondFactor).await
    ));
}
