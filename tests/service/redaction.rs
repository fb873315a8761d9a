//! No secret, code, URI or token ever appears in `Debug`, `Display`, an error, an audit event
//! or the `tracing` log.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use crate::support::{config, enrolled, user};
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
    use verrou::store::backend::SessionStore;
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
        .record_second_factor(&password_only, accepted.proof, &ctx)
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
    assert_ne!(session.token, TokenHash::from_bytes([0; 32]));
    assert!(!format!("{:?}", session.token.to_hex()).contains(&token));
}

// ---- every type that can hold a credential, found by walking the source -----------------

/// Words that mark a type as able to hold a credential, in its name or its definition.
const CREDENTIAL_WORDS: [&str; 9] = [
    "token",
    "cookie",
    "proof",
    "challenge",
    "secret",
    "key",
    "code",
    "jwt",
    "credential",
];

/// Types whose name or definition has such a word but which hold no credential, each with
/// why. Anything else the walk finds must have a live sample in
/// [`credential_holders_redact_in_debug`].
const HOLDS_NO_CREDENTIAL: &[(&str, &str)] = &[
    ("AuditKind", "ids, counts, reasons and times only"),
    (
        "BoundCookieProblem",
        "which of three reasons a bound cookie was refused; never the cookie",
    ),
    (
        "SealedSecrets",
        "key ids and counts of sealed secrets; never a blob",
    ),
    (
        "InputError",
        "an error: limits and positions, never the input",
    ),
    ("ConfigError", "an error: which setting, never a value"),
    ("CryptoError", "an error: which operation failed"),
    ("ApiMisuse", "an error: which rule was broken"),
    (
        "KeyRingError",
        "an error: entry numbers and reasons, never key text",
    ),
    (
        "StoredHashError",
        "an error: which rule the stored hash breaks",
    ),
    (
        "MalformedRecoveryCode",
        "an error: the kind of malformation",
    ),
    ("SecretParseError", "an error: a byte position at most"),
    ("ProofError", "an error: which check the proof failed"),
    ("MalformedCode", "an error: the kind of malformation"),
    ("QrError", "an error: too long or PNG failure"),
    ("UriError", "an error: which part of the URI is wrong"),
    ("SecondFactorMethod", "TOTP or recovery code"),
    (
        "SecondFactorProof",
        "who passed a second factor, when and how: no credential",
    ),
    (
        "TotpOutcome",
        "outcomes; the accepted one carries a SecondFactorProof",
    ),
    ("TotpAccepted", "a step, a drift and a SecondFactorProof"),
    (
        "EnrollmentOutcome",
        "outcomes; a factor id and a SecondFactorProof",
    ),
    (
        "RecoveryOutcome",
        "outcomes; a count and a SecondFactorProof",
    ),
    ("ElevationOutcome", "outcomes; its Elevated is sampled"),
    ("VerrouConfig", "settings"),
    ("Verrou", "its store's Debug, sampled (SqlStore)"),
    (
        "ActiveSession",
        "ids, times, assurance and a SecondFactorProof",
    ),
    ("SessionPolicy", "durations and modes"),
    (
        "SessionRecord",
        "the token's hash (stored as such), never the token",
    ),
    ("Elevation", "hashes and times"),
    ("IssuedCookie", "the cookie's hash and expiry"),
    (
        "TokenHash",
        "a SHA-256 of a token: what the store keeps, no credential",
    ),
    ("TokenKind", "which kind of token a hash is for"),
    ("ResealReport", "counts and row ids"),
    (
        "UnreadableSecret",
        "a row's user and factor ids and a reason, never the blob",
    ),
    ("ThrottleKey", "a user id or a client address"),
    ("KeyId", "a key's name, not the key"),
    ("DeviceKey", "a device's public key"),
    (
        "InsecureDevice",
        "a test tool whose Debug names no key material (testing.rs)",
    ),
    ("Lookup", "the recovery code's non-secret lookup prefix"),
    ("RecoveryCodeRecord", "a lookup and an argon2id hash"),
    ("StoredHashParams", "argon2 parameters"),
    ("HashParams", "argon2 parameters"),
    ("BindingKind", "DBSC or WebCrypto"),
    ("DbscPaths", "two endpoint paths"),
    ("Replacement", "replaced or not"),
    ("Consumption", "a count or a refusal"),
    ("MalformedToken", "an error: why a token did not parse"),
    ("StoreErrorKind", "the kind of a store failure"),
    (
        "TotpAttempt",
        "a factor id, throttle keys and policies, a step number and an audit record: never the code",
    ),
    (
        "Code",
        "no public constructor (only verrou computes codes); Debug is `Code([REDACTED])`",
    ),
];

/// Each public struct or enum in `src/` whose name or definition (comments left out)
/// mentions a credential word.
fn credential_like_types() -> Vec<String> {
    let mut found = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let code: String = text
                    .lines()
                    .map(|line| line.split("//").next().unwrap_or(""))
                    .collect::<Vec<_>>()
                    .join("\n");
                found.extend(public_types(&code));
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// `(name, definition)` of each `pub struct` / `pub enum` in `code`, filtered to those
/// with a credential word.
fn public_types(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (at, _) in code.match_indices("pub ") {
        let rest = &code[at + 4..];
        let Some(rest) = rest
            .strip_prefix("struct ")
            .or_else(|| rest.strip_prefix("enum "))
        else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        // The definition: up to the `;` of a unit struct or the brace/parenthesis that
        // closes the body.
        let mut depth = 0usize;
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            match c {
                '{' | '(' => depth += 1,
                '}' | ')' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let definition = rest[..end].to_ascii_lowercase();
        if CREDENTIAL_WORDS
            .iter()
            .any(|word| definition.contains(word))
        {
            out.push(name);
        }
    }
    out
}

/// A live value of every credential-holding type the walk finds, built with real secrets,
/// and its `Debug` checked against them. A new type that can hold a credential fails this
/// test until it is sampled here or listed, with a reason, in [`HOLDS_NO_CREDENTIAL`].
#[tokio::test]
async fn credential_holders_redact_in_debug() {
    use verrou::session::{BindingKind, Challenge};
    use verrou::store::backend::SessionStore;
    use verrou::store::{SqliteStore, Store};
    use verrou::testing::{insecure_key_ring, InsecureDevice};
    use verrou::totp::OtpAuthUri;
    use verrou::{
        BindingOutcome, ElevationOutcome, KeyId, KeyRing, RefreshOutcome, SessionCookies,
    };

    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("v.db"), insecure_key_ring().unwrap())
        .await
        .unwrap();
    let e = enrolled(store, config()).await;
    let ctx = ClientContext::unknown();
    let mut samples: Vec<(&str, String, Vec<String>)> = Vec::new();
    let mut sample = |name, debug: String, secrets: &[&str]| {
        samples.push((
            name,
            debug,
            secrets.iter().map(|s| (*s).to_owned()).collect(),
        ));
    };

    // Enrolment and its secrets.
    let offer = e
        .verrou
        .start_totp_enrollment(&user("bob"), "bob@partner.example", &ctx)
        .await
        .unwrap();
    let base32 = offer.secret_base32().expose_secret().to_owned();
    let uri = offer.otpauth_uri().expose_secret().to_owned();
    sample("EnrollmentOffer", format!("{offer:?}"), &[&base32]);
    let secret = TotpSecret::from_base32(&base32).unwrap();
    sample("TotpSecret", format!("{secret:?}"), &[&base32]);
    let parsed = OtpAuthUri::parse(&uri).unwrap();
    sample("OtpAuthUri", format!("{parsed:?}"), &[&base32]);
    let pending = e.verrou.store().pending_totp(&user("bob")).await.unwrap();
    sample("PendingTotp", format!("{pending:?}"), &[&base32]);
    let active = e.verrou.store().active_totp(&e.user).await.unwrap();
    let alice_base32 = e.secret.to_base32().expose_secret().to_owned();
    sample("TotpFactor", format!("{active:?}"), &[&alice_base32]);
    // One Debug for both databases: SqliteStore and PostgresStore are SqlStore<_>.
    sample(
        "SqlStore",
        format!("{:?}", e.verrou.store()),
        &[&alice_base32],
    );

    let typed = verrou::totp::CodeInput::parse("482 913", 6).unwrap();
    sample("CodeInput", format!("{typed:?}"), &["482913", "482 913"]);

    // Keys.
    let entry = KeyRing::generate_entry(&KeyId::new("k1").unwrap()).unwrap();
    let key_text = entry.split_once(':').unwrap().1.to_owned();
    let ring = KeyRing::from_config(&entry).unwrap();
    sample("KeyRing", format!("{ring:?}"), &[&key_text]);

    // Recovery codes.
    let codes_proof = e.accept(&e.code(0)).await.proof;
    let outcome = e
        .verrou
        .generate_recovery_codes(codes_proof, &ctx)
        .await
        .unwrap();
    let verrou::RecoveryCodesOutcome::Generated(set) = &outcome else {
        panic!("{outcome:?}");
    };
    let codes: Vec<String> = set
        .codes()
        .iter()
        .map(|c| c.expose_secret().to_owned())
        .collect();
    let code_refs: Vec<&str> = codes.iter().map(String::as_str).collect();
    sample("RecoveryCodeSet", format!("{set:?}"), &code_refs);
    sample("RecoveryCodesOutcome", format!("{outcome:?}"), &code_refs);
    let input = verrou::recovery::RecoveryCodeInput::parse(&codes[0]).unwrap();
    sample(
        "RecoveryCodeInput",
        format!("{input:?}"),
        &[&codes[0].replace('-', "")],
    );

    // Sessions, elevation, binding.
    let new = e.verrou.create_session(&e.user, None, &ctx).await.unwrap();
    let first = new.token.expose_secret().to_owned();
    sample("NewSession", format!("{new:?}"), &[&first]);
    sample("SessionToken", format!("{:?}", new.token), &[&first]);
    e.advance_steps(1);
    let proof = e.accept(&e.code(0)).await.proof;
    let elevation = e
        .verrou
        .record_second_factor(&first, proof, &ctx)
        .await
        .unwrap();
    let ElevationOutcome::Elevated(elevated) = &elevation else {
        panic!("{elevation:?}");
    };
    let token = elevated.token.expose_secret().to_owned();
    let offer_challenge: Challenge = elevated.binding_offer.clone().unwrap();
    let challenge_text = offer_challenge.as_str().to_owned();
    sample(
        "Elevated",
        format!("{elevated:?}"),
        &[&token, &challenge_text],
    );
    sample(
        "Challenge",
        format!("{offer_challenge:?}"),
        &[&challenge_text],
    );
    let binding = e
        .verrou
        .store()
        .binding(elevated.session)
        .await
        .unwrap()
        .unwrap();
    sample("BindingRecord", format!("{binding:?}"), &[&challenge_text]);
    let issued = binding.challenge.clone().unwrap();
    sample("IssuedChallenge", format!("{issued:?}"), &[&challenge_text]);
    let device = InsecureDevice::generate().unwrap();
    let jwt = device.registration_proof(&challenge_text);
    let parsed_proof = verrou::session::proof::ParsedProof::parse(&jwt).unwrap();
    sample(
        "ParsedProof",
        format!("{parsed_proof:?}"),
        &[&jwt, &challenge_text],
    );
    let bound = e
        .verrou
        .register_binding(&token, &jwt, BindingKind::Dbsc, &ctx)
        .await
        .unwrap();
    let BindingOutcome::Bound(credential) = &bound else {
        panic!("{bound:?}");
    };
    let bound_cookie = credential.cookie.expose_secret().to_owned();
    let next = credential.next_challenge.as_str().to_owned();
    sample(
        "BoundCredential",
        format!("{credential:?}"),
        &[&bound_cookie, &next, &jwt],
    );
    sample(
        "BindingOutcome",
        format!("{bound:?}"),
        &[&bound_cookie, &next, &jwt],
    );
    let refresh = e.verrou.refresh_binding(&token, None, &ctx).await.unwrap();
    let RefreshOutcome::Challenge { challenge, .. } = &refresh else {
        panic!("{refresh:?}");
    };
    let refresh_text = challenge.as_str().to_owned();
    sample("RefreshOutcome", format!("{refresh:?}"), &[&refresh_text]);
    let header = format!("__Host-verrou-session={token}; __Host-verrou-bound={bound_cookie}");
    let cookies = SessionCookies::from_header(&header).unwrap();
    assert_eq!(cookies.session(), token);
    sample(
        "SessionCookies",
        format!("{cookies:?}"),
        &[&token, &bound_cookie],
    );
    let status = e
        .verrou
        .authenticate(&cookies, verrou::session::Requirement::SecondFactor, &ctx)
        .await
        .unwrap();
    sample(
        "SessionStatus",
        format!("{status:?}"),
        &[&token, &bound_cookie],
    );

    let sampled: Vec<&str> = samples.iter().map(|(name, _, _)| *name).collect();
    for (name, debug, secrets) in &samples {
        for secret in secrets {
            assert!(!secret.is_empty());
            assert!(
                !debug.contains(secret.as_str()),
                "{name}'s Debug shows a credential: {debug}"
            );
            for window in secret.as_bytes().windows(12).step_by(4) {
                let fragment = std::str::from_utf8(window).unwrap();
                assert!(!debug.contains(fragment), "{name}'s Debug shows {fragment}");
            }
        }
    }
    let walked = credential_like_types();
    assert!(walked.len() > 30, "the walk found too little: {walked:?}");
    let unclassified: Vec<&String> = walked
        .iter()
        .filter(|name| {
            !sampled.contains(&name.as_str())
                && !HOLDS_NO_CREDENTIAL.iter().any(|(known, _)| known == name)
        })
        .collect();
    assert!(
        unclassified.is_empty(),
        "types that may hold a credential, neither sampled nor reviewed: {unclassified:?}"
    );
}
