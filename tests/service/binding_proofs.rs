//! Device-binding proofs: every way a proof can be wrong is a typed error, at the parser and
//! through the service (registration refuses and audits; refresh ends the session).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use base64ct::{Base64UrlUnpadded, Encoding};
use serde_json::json;
use verrou::audit::AuditKind;
use verrou::session::proof::{ParsedProof, ProofError, MAX_PROOF_LEN};
use verrou::session::{BindingKind, Requirement};
use verrou::store::MemoryStore;
use verrou::testing::InsecureDevice;
use verrou::{BindingOutcome, ClientContext, RefreshOutcome, SessionStatus};

use crate::support::{config, enrolled};

const CHALLENGE: &str = "c2VydmVyLWNoYWxsZW5nZS0wMDAwMDAwMDAwMDAwMDAwMDA";

fn b64(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(bytes)
}

fn parse(jwt: &str) -> Result<ParsedProof, ProofError> {
    ParsedProof::parse(jwt)
}

/// A registration proof from `device` whose header and payload were edited by `edit`.
fn edited(
    device: &InsecureDevice,
    edit: impl FnOnce(&mut serde_json::Value, &mut serde_json::Value),
) -> String {
    let mut header = json!({"alg": "ES256", "typ": "dbsc+jwt", "jwk": device.jwk()});
    let mut payload = json!({ "jti": CHALLENGE });
    edit(&mut header, &mut payload);
    device.sign(&header, &payload)
}

#[test]
fn a_well_formed_proof_verifies_with_its_key() {
    let device = InsecureDevice::generate().unwrap();
    let proof = parse(&device.registration_proof(CHALLENGE)).unwrap();
    let key = proof.verify_embedded().unwrap();
    assert!(proof.answers(CHALLENGE));
    assert!(!proof.answers("another"));
    proof.verify_with(&key).unwrap();
    // The refresh form carries no key and verifies with the registered one.
    let refresh = parse(&device.refresh_proof(CHALLENGE)).unwrap();
    assert_eq!(refresh.embedded_key(), None);
    refresh.verify_with(&key).unwrap();
}

#[test]
fn only_es256_is_accepted() {
    let device = InsecureDevice::generate().unwrap();
    for alg in [
        "none", "None", "HS256", "RS256", "ES384", "PS256", "es256", "",
    ] {
        let proof = edited(&device, |header, _| header["alg"] = json!(alg));
        assert_eq!(parse(&proof).err(), Some(ProofError::Algorithm), "{alg}");
    }
    // The classic `none` token: no signature at all.
    let header = b64(br#"{"alg":"none","typ":"dbsc+jwt"}"#);
    let payload = b64(format!(r#"{{"jti":"{CHALLENGE}"}}"#).as_bytes());
    assert_eq!(
        parse(&format!("{header}.{payload}.")).err(),
        Some(ProofError::Algorithm)
    );
    // An HMAC "signature" keyed with the public key (algorithm confusion) never gets as far
    // as a key.
    let header = b64(br#"{"alg":"HS256"}"#);
    assert_eq!(
        parse(&format!("{header}.{payload}.{}", b64(&[0; 32]))).err(),
        Some(ProofError::Algorithm)
    );
    let missing = edited(&device, |header, _| {
        header.as_object_mut().unwrap().remove("alg");
    });
    assert_eq!(parse(&missing).err(), Some(ProofError::Json));
}

#[test]
fn a_wrong_type_is_refused() {
    let device = InsecureDevice::generate().unwrap();
    let proof = edited(&device, |header, _| header["typ"] = json!("JWT"));
    assert_eq!(parse(&proof).err(), Some(ProofError::Type));
}

#[test]
fn keys_must_be_public_p256_points() {
    let device = InsecureDevice::generate().unwrap();
    let jwk = device.jwk();
    let mut off_curve = Base64UrlUnpadded::decode_vec(jwk["y"].as_str().unwrap()).unwrap();
    off_curve[31] ^= 1;
    let cases: Vec<(&str, serde_json::Value)> = vec![
        ("kty", json!("RSA")),
        ("crv", json!("P-384")),
        ("x", json!(b64(&[7; 31]))),
        ("y", json!(b64(&off_curve))),
        ("x", json!("not base64!")),
        ("d", json!(b64(&[1; 32]))),
    ];
    for (field, value) in cases {
        let proof = edited(&device, |header, _| header["jwk"][field] = value.clone());
        let parsed = parse(&proof);
        assert_eq!(parsed.err(), Some(ProofError::Key), "{field} = {value}");
    }
    // A JWK that is not an object, or lacks a coordinate, is not the expected JSON.
    let proof = edited(&device, |header, _| header["jwk"] = json!("key"));
    assert_eq!(parse(&proof).err(), Some(ProofError::Json));
    // No key at all: parses (refresh proofs carry none) but cannot register.
    let proof = edited(&device, |header, _| {
        header.as_object_mut().unwrap().remove("jwk");
    });
    assert_eq!(
        parse(&proof).unwrap().verify_embedded().err(),
        Some(ProofError::Key)
    );
}

#[test]
fn signatures_must_verify_with_the_right_key() {
    let device = InsecureDevice::generate().unwrap();
    let other = InsecureDevice::generate().unwrap();
    // Signed by one key, claiming another.
    let claimed = edited(&other, |header, _| header["jwk"] = device.jwk());
    assert_eq!(
        parse(&claimed).unwrap().verify_embedded().err(),
        Some(ProofError::Signature)
    );
    // A payload changed after signing.
    let proof = device.registration_proof(CHALLENGE);
    let parts: Vec<&str> = proof.split('.').collect();
    let forged_payload = b64(br#"{"jti":"attacker-chosen"}"#);
    let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    assert_eq!(
        parse(&forged).unwrap().verify_embedded().err(),
        Some(ProofError::Signature)
    );
    // Signatures of the wrong length, or zero (r = s = 0).
    for signature in [
        b64(&[1; 63]),
        b64(&[1; 65]),
        b64(&[0; 64]),
        b64(&[0xff; 64]),
    ] {
        let jwt = format!("{}.{}.{signature}", parts[0], parts[1]);
        let result = parse(&jwt).and_then(|p| p.verify_embedded().map(|_| ()));
        assert_eq!(result.err(), Some(ProofError::Signature), "{signature}");
    }
    // A refresh proof signed by another key than the registered one.
    let registered = parse(&proof).unwrap().verify_embedded().unwrap();
    let foreign = parse(&other.refresh_proof(CHALLENGE)).unwrap();
    assert_eq!(
        foreign.verify_with(&registered).err(),
        Some(ProofError::WrongKey)
    );
    let foreign_with_key = parse(&other.registration_proof(CHALLENGE)).unwrap();
    assert_eq!(
        foreign_with_key.verify_with(&registered).err(),
        Some(ProofError::WrongKey)
    );
}

#[test]
fn malformed_json_and_base64_are_typed_errors() {
    let device = InsecureDevice::generate().unwrap();
    let good_header = br#"{"alg":"ES256","typ":"dbsc+jwt"}"#;
    for (header, payload) in [
        (&b"not json"[..], &br#"{"jti":"x"}"#[..]),
        (good_header, b"[1,2,3]"),
        (good_header, br#"{"jti":"x""#),
        (br#"{"alg":"ES256","alg":"ES256"}"#, br#"{"jti":"x"}"#),
        (good_header, br#"{"jti":"x","jti":"y"}"#),
        (good_header, br#"{"jti":7}"#),
        (b"\xff\xfe", br#"{"jti":"x"}"#),
    ] {
        let jwt = device.sign_raw(header, payload);
        assert_eq!(
            parse(&jwt).err(),
            Some(ProofError::Json),
            "{header:?} {payload:?}"
        );
    }
    let proof = device.registration_proof(CHALLENGE);
    let parts: Vec<&str> = proof.split('.').collect();
    for jwt in [
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}+.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}/", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}==", parts[0], parts[1], parts[2]),
        format!("é{}.{}.{}", parts[0], parts[1], parts[2]),
    ] {
        assert_eq!(parse(&jwt).err(), Some(ProofError::Base64), "{jwt}");
    }
    for jwt in [
        String::new(),
        parts[0].to_owned(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{proof}.extra"),
        "a".repeat(MAX_PROOF_LEN + 1),
    ] {
        assert_eq!(parse(&jwt).err(), Some(ProofError::Malformed));
    }
}

/// Through the service: a refused registration leaves the session unbound and audited; a
/// stale or reused challenge is refused; a bad refresh proof ends the session.
#[tokio::test]
async fn the_service_refuses_and_audits_every_bad_proof() {
    let e = enrolled(MemoryStore::new(), config()).await;
    let ctx = ClientContext::unknown();
    let device = InsecureDevice::generate().unwrap();
    let mut browser = e.sign_in(None).await;
    let challenge = e.elevate(&mut browser).await.unwrap();

    let attempts = [
        ("none".to_owned(), ProofError::Malformed),
        (
            edited(&device, |header, payload| {
                header["alg"] = json!("HS256");
                payload["jti"] = json!(challenge.as_str());
            }),
            ProofError::Algorithm,
        ),
        (
            device.registration_proof("unknown-challenge"),
            ProofError::Challenge,
        ),
        (device.refresh_proof(challenge.as_str()), ProofError::Key),
    ];
    for (proof, expected) in attempts {
        let outcome = e
            .verrou
            .register_binding(&browser.session, &proof, BindingKind::Dbsc, &ctx)
            .await
            .unwrap();
        assert!(
            matches!(outcome, BindingOutcome::Refused(reason) if reason == expected),
            "{outcome:?} for {expected:?}"
        );
    }
    let trail = e.verrou.audit_trail(Some(&e.user), 50).await.unwrap();
    let failures = trail
        .iter()
        .filter(|event| matches!(event.kind, AuditKind::BindingProofFailed { .. }))
        .count();
    assert_eq!(failures, 4);

    // The real registration still works, once.
    let proof = device.registration_proof(challenge.as_str());
    let outcome = e
        .verrou
        .register_binding(&browser.session, &proof, BindingKind::Dbsc, &ctx)
        .await
        .unwrap();
    let BindingOutcome::Bound(credential) = outcome else {
        panic!("{outcome:?}");
    };
    browser.bound = Some(credential.cookie.expose_secret().to_owned());
    let again = e
        .verrou
        .register_binding(&browser.session, &proof, BindingKind::Dbsc, &ctx)
        .await
        .unwrap();
    assert!(matches!(again, BindingOutcome::AlreadyBound));

    // Refresh: a used challenge (the registration's) is refused as unknown and a new one is
    // handed out; the session lives on, because the signature proves the device.
    let reused = device.refresh_proof(challenge.as_str());
    let outcome = e
        .verrou
        .refresh_binding(&browser.session, Some(&reused), &ctx)
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        RefreshOutcome::Challenge {
            reason: Some(ProofError::Challenge),
            ..
        }
    ));
    // A stale one: answered after its expiry.
    let next = credential.next_challenge.clone();
    e.clock.advance(std::time::Duration::from_secs(20 * 60));
    let stale = device.refresh_proof(next.as_str());
    let outcome = e
        .verrou
        .refresh_binding(&browser.session, Some(&stale), &ctx)
        .await
        .unwrap();
    assert!(
        matches!(
            outcome,
            RefreshOutcome::Challenge {
                reason: Some(ProofError::StaleChallenge),
                ..
            }
        ),
        "{outcome:?}"
    );
    // Malformed base64 in a refresh proof: the session ends.
    let outcome = e
        .verrou
        .refresh_binding(&browser.session, Some("a.b.c!"), &ctx)
        .await
        .unwrap();
    assert!(matches!(outcome, RefreshOutcome::Ended(ProofError::Base64)));
    assert_eq!(
        e.status(&browser, Requirement::AnySession).await,
        SessionStatus::NotFound
    );
}
