//! No secret, code, URI or token ever appears in `Debug`, `Display`, an error, an audit event
//! or the `tracing` log.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod conformance;

use std::io::Write;
use std::sync::{Arc, Mutex};

use conformance::{config, enrolled, user};
use secrecy::ExposeSecret;
use verrou::store::MemoryStore;
use verrou::{ClientContext, TotpOutcome, TotpSecret};

/// A `tracing` writer that keeps everything in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Captures every `tracing` event of this thread, at every level, until the guard drops.
    fn install() -> (Self, tracing::subscriber::DefaultGuard) {
        let log = Self::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        (log, tracing::subscriber::set_default(subscriber))
    }
}

#[tokio::test]
async fn attack_secret_in_debug_or_logs() {
    let (log, _guard) = Captured::install();

    let e = enrolled(MemoryStore::new(), config()).await;
    let (verrou, sink) = e.audited();
    let ctx = ClientContext::from_addr("192.0.2.9".parse().unwrap());

    // A new enrolment for bob: everything the offer holds is secret.
    let bob = user("bob");
    let offer = verrou
        .start_totp_enrollment(&bob, "bob@partner.example", &ctx)
        .await
        .unwrap();
    let bob_secret = offer.secret_base32().expose_secret().to_owned();
    let bob_uri = offer.otpauth_uri().expose_secret().to_owned();
    let bob_raw = TotpSecret::from_base32(&bob_secret).unwrap();

    // Alice logs in, replays, fails.
    let code = e.code(0);
    let accepted = verrou.verify_totp(&e.user, &code, &ctx).await.unwrap();
    let replayed = verrou.verify_totp(&e.user, &code, &ctx).await.unwrap();
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    let invalid = verrou.verify_totp(&e.user, &wrong, &ctx).await.unwrap();
    assert!(matches!(accepted, TotpOutcome::Accepted(_)));
    // A malformed attempt that contains most of a real code.
    let malformed = format!("{}x", &code[..5]);
    let refused = verrou.verify_totp(&e.user, &malformed, &ctx).await.unwrap();
    assert!(matches!(refused, TotpOutcome::Malformed(_)));
    let alice_secret = e.secret.to_base32().expose_secret().to_owned();

    let mut shown = String::new();
    for text in [
        format!("{offer:?}"),
        format!("{bob_raw:?}"),
        format!("{:?}", offer.qr_svg().unwrap()),
        format!("{:?}", offer.qr_png().unwrap()),
        format!("{accepted:?} {replayed:?} {invalid:?}"),
        format!("{:?}", sink.events()),
        format!("{verrou:?}"),
        format!("{:?}", verrou.store()),
        format!("{:?}", verrou::totp::OtpAuthUri::parse(&bob_uri).unwrap()),
        String::from_utf8(log.0.lock().unwrap().clone()).unwrap(),
    ] {
        shown.push_str(&text);
        shown.push('\n');
    }
    assert!(sink.events().len() >= 4, "events were recorded");
    assert!(
        shown.contains("totp_accepted") && shown.contains("totp_replayed"),
        "the log has the events:\n{shown}"
    );
    assert!(
        shown.contains("malformed_code"),
        "the malformed attempt is traced"
    );
    for secret in [
        &bob_secret,
        &alice_secret,
        &bob_uri,
        &code,
        &wrong,
        &malformed,
    ] {
        assert!(
            !shown.contains(secret.as_str()),
            "{secret} leaked in:\n{shown}"
        );
    }
    // Not even a fragment of a secret (8 Base32 characters).
    for secret in [&bob_secret, &alice_secret] {
        for window in secret.as_bytes().windows(8) {
            let fragment = std::str::from_utf8(window).unwrap();
            assert!(!shown.contains(fragment), "fragment {fragment} leaked");
        }
    }
}

#[test]
fn errors_never_echo_input() {
    let secretish = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ0";
    let err = TotpSecret::from_base32(secretish).unwrap_err();
    let err: verrou::Error = verrou::InputError::from(err).into();
    assert!(!format!("{err} {err:?}").contains("GEZDGNBV"));
    let uri = format!("otpauth://totp/x?secret={secretish}");
    let err = verrou::totp::OtpAuthUri::parse(&uri).unwrap_err();
    assert!(!format!("{err} {err:?}").contains("GEZDGNBV"));
    let err = verrou::totp::CodeInput::parse("12345x", 6).unwrap_err();
    assert!(!format!("{err} {err:?}").contains("12345"));
}

/// Session tokens and bound cookies are bearer secrets: never in `Debug`, the audit trail,
/// the sink or the log, and the store keeps only their hashes.
#[tokio::test]
async fn attack_session_tokens_in_debug_logs_or_store() {
    use verrou::session::{BindingKind, Requirement, TokenHash};
    use verrou::store::SessionStore;
    use verrou::testing::InsecureDevice;
    use verrou::{BindingOutcome, ElevationOutcome, SessionCookies};

    let (log, _guard) = Captured::install();

    let e = enrolled(MemoryStore::new(), config()).await;
    let (verrou, sink) = e.audited();
    let ctx = ClientContext::unknown();
    let new = verrou.create_session(&e.user, None, &ctx).await.unwrap();
    let password_only = new.token.expose_secret().to_owned();
    let TotpOutcome::Accepted(accepted) =
        verrou.verify_totp(&e.user, &e.code(0), &ctx).await.unwrap()
    else {
        panic!("code refused");
    };
    let elevation = verrou
        .record_second_factor(&password_only, &accepted.proof, &ctx)
        .await
        .unwrap();
    let ElevationOutcome::Elevated(elevated) = &elevation else {
        panic!("{elevation:?}");
    };
    let token = elevated.token.expose_secret().to_owned();
    let challenge = elevated.binding_offer.clone().unwrap();
    let device = InsecureDevice::generate().unwrap();
    let proof = device.registration_proof(challenge.as_str());
    let bound = verrou
        .register_binding(&token, &proof, BindingKind::Dbsc, &ctx)
        .await
        .unwrap();
    let BindingOutcome::Bound(credential) = &bound else {
        panic!("{bound:?}");
    };
    let bound_cookie = credential.cookie.expose_secret().to_owned();
    let status = verrou
        .authenticate(
            &SessionCookies::new(&token, Some(&bound_cookie)),
            Requirement::SecondFactor,
            &ctx,
        )
        .await
        .unwrap();

    let stored = verrou.store().user_sessions(&e.user).await.unwrap();
    let binding = verrou.store().binding(new.session).await.unwrap();
    let shown = [
        format!("{new:?} {elevation:?} {bound:?} {status:?} {challenge:?}"),
        format!("{stored:?} {binding:?}"),
        format!("{:?}", sink.events()),
        format!("{:?}", verrou.audit_trail(None, 100).await.unwrap()),
        String::from_utf8(log.0.lock().unwrap().clone()).unwrap(),
    ]
    .join("\n");
    assert!(shown.contains("session_elevated") && shown.contains("binding_registered"));
    for secret in [&password_only, &token, &bound_cookie, &proof] {
        assert!(
            !shown.contains(secret.as_str()),
            "{secret} leaked in:\n{shown}"
        );
        // Not even a 12-character fragment.
        for window in secret.as_bytes().windows(12).step_by(6) {
            let fragment = std::str::from_utf8(window).unwrap();
            assert!(!shown.contains(fragment), "fragment {fragment} leaked");
        }
    }
    // The store holds the hash of the current token, not the token.
    let session = &stored[0];
    assert_ne!(session.token, TokenHash([0; 32]));
    assert!(!format!("{:?}", session.token.to_hex()).contains(&token));
}
