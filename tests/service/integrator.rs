//! What a portal written from the README alone needed and had to work around: each gap the
//! first integrator hit, closed and kept closed. Only the public API, and no `secrecy`
//! import: what a portal needs to read a secret comes from verrou.

#![allow(clippy::unwrap_used, clippy::panic, unreachable_pub)]

use std::time::Duration;

use crate::support::{at, config, enrolled, start_enrollment, user, START};
use verrou::audit::AuditKind;
use verrou::lockout::{Gate, ThrottlePolicy};
use verrou::store::MemoryStore;
use verrou::testing::{insecure_code_at, InsecureManualClock};
use verrou::totp::OtpAuthUri;
use verrou::{
    ApiMisuse, ClientContext, EnrollmentOutcome, Error, ExposeSecret, TotpOutcome, TotpParams,
    TotpSecret, UserId, Verrou,
};

fn ctx() -> ClientContext {
    ClientContext::unknown()
}

/// The URI another TOTP system exported for `secret`.
fn exported(secret: &TotpSecret, params: TotpParams) -> String {
    OtpAuthUri::new(
        Some("Old Portal"),
        "alice@partner.example",
        secret.clone(),
        params,
    )
    .unwrap()
    .to_uri()
    .expose_secret()
    .to_owned()
}

/// A migration from another TOTP system goes through the service: the imported secret is
/// pending until the user's app gives a first valid code, audited, with the old system's
/// parameters kept.
#[tokio::test]
async fn an_imported_secret_is_pending_until_a_first_code() {
    let clock = InsecureManualClock::new(at(START));
    let verrou = Verrou::new(MemoryStore::new(), config()).with_clock(clock.clone());
    let alice = user("alice");
    let secret = TotpSecret::generate().unwrap();
    let params = TotpParams::new(verrou::Algorithm::Sha256, 8, 30).unwrap();
    let uri = OtpAuthUri::parse(&exported(&secret, params)).unwrap();
    let imported = verrou.import_totp(&alice, uri, &ctx()).await.unwrap();
    assert_eq!(imported.expires_at, at(START + 600));
    // Not a second factor yet.
    let code = insecure_code_at(&secret, params, at(START));
    assert_eq!(
        verrou.verify_totp(&alice, &code, &ctx()).await.unwrap(),
        TotpOutcome::NotEnrolled
    );
    let confirmed = verrou
        .finish_totp_enrollment(&alice, &code, &ctx())
        .await
        .unwrap();
    assert!(
        matches!(confirmed, EnrollmentOutcome::Confirmed { factor, .. } if factor == imported.factor),
        "{confirmed:?}"
    );
    clock.advance(Duration::from_secs(30));
    let next = insecure_code_at(&secret, params, at(START + 30));
    assert!(matches!(
        verrou.verify_totp(&alice, &next, &ctx()).await.unwrap(),
        TotpOutcome::Accepted(_)
    ));
    let kinds: Vec<AuditKind> = verrou
        .audit_trail(Some(&alice), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|event| event.kind)
        .collect();
    assert!(kinds.contains(&AuditKind::TotpFactorImported {
        factor: imported.factor,
        activated_by_operator: false,
    }));
    // Over an active factor: refused (that is a re-enrolment).
    let again = OtpAuthUri::parse(&exported(&secret, params)).unwrap();
    let err = verrou.import_totp(&alice, again, &ctx()).await.unwrap_err();
    assert!(matches!(err, Error::Misuse(ApiMisuse::FactorAlreadyActive)));
    // Labels are checked as for an enrolment: a URI that fails to parse never gets here.
    assert!(
        OtpAuthUri::parse("otpauth://totp/Old%00Portal:alice?secret=JBSWY3DPEHPK3PXP").is_err()
    );
}

/// An operator's explicit choice activates an imported secret without a code, audited as
/// such; the time step of the import counts as used (a code the old system just accepted is
/// not accepted again).
#[tokio::test]
async fn an_operator_can_activate_an_import_explicitly() {
    let clock = InsecureManualClock::new(at(START));
    let verrou = Verrou::new(MemoryStore::new(), config()).with_clock(clock.clone());
    let bob = user("bob");
    let secret = TotpSecret::generate().unwrap();
    let uri = OtpAuthUri::parse(&exported(&secret, TotpParams::DEFAULT)).unwrap();
    let factor = verrou
        .danger_import_active_totp(&bob, uri, &ctx())
        .await
        .unwrap();
    let just_used = insecure_code_at(&secret, TotpParams::DEFAULT, at(START));
    assert_eq!(
        verrou.verify_totp(&bob, &just_used, &ctx()).await.unwrap(),
        TotpOutcome::Replayed
    );
    clock.advance(Duration::from_secs(30));
    let next = insecure_code_at(&secret, TotpParams::DEFAULT, at(START + 30));
    assert!(matches!(
        verrou.verify_totp(&bob, &next, &ctx()).await.unwrap(),
        TotpOutcome::Accepted(_)
    ));
    let trail = verrou.audit_trail(Some(&bob), 10).await.unwrap();
    assert!(trail.iter().any(|event| event.kind
        == AuditKind::TotpFactorImported {
            factor,
            activated_by_operator: true
        }));
}

/// The QR code can be placed inside an HTML page: no XML prolog, one `<svg>` element.
#[tokio::test]
async fn the_qr_code_has_an_inline_form_for_html() {
    let verrou = Verrou::new(MemoryStore::new(), config());
    let (offer, _) = start_enrollment(&verrou, &user("carol"), "carol@partner.example").await;
    let standalone = offer.qr_svg().unwrap();
    assert!(standalone.expose_secret().starts_with("<?xml"));
    let inline = offer.qr_svg_inline().unwrap();
    let inline = inline.expose_secret();
    assert!(inline.starts_with("<svg") && inline.trim_end().ends_with("</svg>"));
    assert!(!inline.contains("<?xml"));
    assert!(standalone.expose_secret().ends_with(inline));
}

/// A support page can show where a user's throttle stands, and an operator can set a policy
/// field by field, validated.
#[tokio::test]
async fn the_throttle_is_readable_and_policies_are_built_validated() {
    let e = enrolled(MemoryStore::new(), config()).await;
    let fresh = e.verrou.account_throttle(&e.user).await.unwrap();
    assert_eq!(
        (fresh.failures, fresh.last_failure, fresh.gate),
        (0, None, Gate::Open)
    );
    // Three free failures; the next attempt would wait.
    for _ in 0..3 {
        assert_ne!(e.verify("000000").await, TotpOutcome::NotEnrolled);
    }
    let after = e.verrou.account_throttle(&e.user).await.unwrap();
    assert_eq!(after.failures, 3);
    assert!(after.last_failure.is_some());
    assert!(matches!(after.gate, Gate::Backoff { .. }), "{after:?}");

    let policy = ThrottlePolicy::account()
        .free_failures(5)
        .lock_after(8)
        .build_for_account()
        .unwrap();
    assert!(config().with_account_throttle(policy).is_ok());
    let unbounded = ThrottlePolicy::account().permanent_lock_after(None);
    assert!(unbounded.build_for_account().is_err());
    let inverted = ThrottlePolicy::address().free_failures(20).lock_after(10);
    assert!(inverted.build().is_err());
}

/// Secrets and tokens are read with verrou's own `ExposeSecret`; an id error converts into
/// `verrou::Error` with `?`.
#[tokio::test]
async fn secrets_read_with_verrous_trait_and_errors_convert() {
    let e = enrolled(MemoryStore::new(), config()).await;
    let new = e
        .verrou
        .create_session(&e.user, None, &ctx())
        .await
        .unwrap();
    let through_trait = ExposeSecret::expose_secret(&new.token).to_owned();
    assert_eq!(through_trait, new.token.expose_secret());
    fn parse(id: &str) -> Result<UserId, Error> {
        Ok(UserId::new(id)?)
    }
    assert!(matches!(parse(""), Err(Error::Input(_))));
    assert!(parse("alice").is_ok());
}
