//! Service rules over each backend: assurance, expiry, revocation, device binding.

use std::time::Duration;

use verrou::audit::AuditKind;
use verrou::session::proof::ProofError;
use verrou::session::{
    Assurance, BindingKind, BindingMode, BoundCookieProblem, ExpiryReason, Requirement,
    RevocationReason, RevocationScope, SessionPolicy, StepUpReason,
};
use verrou::store::Store;
use verrou::testing::InsecureDevice;
use verrou::{
    BindingOutcome, ClientContext, ElevationOutcome, OrgId, RefreshOutcome, SessionCookies,
    SessionStatus,
};

use crate::support::*;

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
    let mallory_secret = enrol(&e.verrou, &mallory).await;
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
    // A bound cookie the session never had (here a well-formed token of another kind) is
    // refused too.
    let forged = Browser {
        session: stolen.session.clone(),
        bound: Some(stolen.session.clone()),
        id: stolen.id,
    };
    assert_eq!(
        status_for(e.status(&forged, Requirement::SecondFactor).await),
        ("RefreshRequired", Some(victim.id))
    );
    // Each refusal left a record saying what was wrong with the bound cookie.
    let trail = e.verrou.audit_trail(Some(&e.user), 50).await.unwrap();
    let refused: Vec<_> = trail
        .iter()
        .filter_map(|event| match event.kind {
            AuditKind::BoundCookieRefused { session, problem } => Some((session, problem)),
            _ => None,
        })
        .collect();
    assert_eq!(
        refused,
        [
            (victim.id, BoundCookieProblem::Unknown),
            (victim.id, BoundCookieProblem::Expired),
            (victim.id, BoundCookieProblem::Missing),
        ],
        "newest first: the forged bound cookie, the expired copy, the cookie alone"
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

/// Session events carry the session's organisation, so the trail answers "what happened at
/// this partner" (`AuditQuery::org`); the user's factor events carry none, and another
/// partner's sessions stay out.
pub async fn service_session_events_name_their_organisation<S: Store>(store: S) {
    use verrou::store::AuditQuery;
    let e = enrolled(store, unbound_config()).await;
    let mut at_partner = e.sign_in(Some("formation-nord")).await;
    e.elevate(&mut at_partner).await;
    e.sign_in(Some("formation-sud")).await;
    e.sign_in(None).await;
    let org = OrgId::new("formation-nord").unwrap();
    let revoked = e
        .verrou
        .revoke_sessions(
            &RevocationScope::Org(org.clone()),
            &ClientContext::unknown(),
        )
        .await
        .unwrap();
    assert_eq!(revoked, 1);

    let store = e.verrou.store();
    let query = AuditQuery::newest(100).org(Some(org.clone()));
    let partner = store.audit_events(&query).await.unwrap();
    let kinds: Vec<_> = partner.iter().map(|e| e.event.kind.name()).collect();
    assert_eq!(
        kinds,
        ["session_revoked", "session_elevated", "session_created"]
    );
    assert!(partner.iter().all(|e| e.event.org.as_ref() == Some(&org)));
    let everything = store.audit_events(&AuditQuery::newest(100)).await.unwrap();
    let org_of = |kind: &str| -> Vec<Option<&str>> {
        everything
            .iter()
            .filter(|e| e.event.kind.name() == kind)
            .map(|e| e.event.org.as_ref().map(OrgId::as_str))
            .collect()
    };
    assert_eq!(org_of("totp_accepted"), [None]);
    assert_eq!(
        org_of("session_created"),
        [None, Some("formation-sud"), Some("formation-nord")]
    );
}
