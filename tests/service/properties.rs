//! Property tests over the public API: round trips and "no input panics".

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use std::time::Duration;

use crate::support::{config, enrolled};
use proptest::prelude::*;
use secrecy::ExposeSecret;
use verrou::store::MemoryStore;
use verrou::totp::OtpAuthUri;
use verrou::{Algorithm, TotpOutcome, TotpParams, TotpSecret};

fn secret_bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), TotpSecret::MIN_LEN..=TotpSecret::MAX_LEN)
}

fn params() -> impl Strategy<Value = TotpParams> {
    (
        prop_oneof![
            Just(Algorithm::Sha1),
            Just(Algorithm::Sha256),
            Just(Algorithm::Sha512)
        ],
        6u8..=8,
        TotpParams::MIN_PERIOD..=TotpParams::MAX_PERIOD,
    )
        .prop_map(|(a, d, p)| TotpParams::new(a, d, p).unwrap())
}

/// Labels: any printable text without ':' that does not start or end with whitespace.
fn label() -> impl Strategy<Value = String> {
    "[^:\\p{C}\\s][^:\\p{C}]{0,30}[^:\\p{C}\\s]|[^:\\p{C}\\s]"
}

proptest! {
    #[test]
    fn base32_round_trip(bytes in secret_bytes(), spaces in proptest::collection::vec(any::<bool>(), 128)) {
        let secret = TotpSecret::from_bytes(&bytes).unwrap();
        let text = secret.to_base32();
        prop_assert_eq!(TotpSecret::from_base32(text.expose_secret()).unwrap(), secret.clone());
        // What people type: lowercase, grouped with spaces.
        let typed: String = text
            .expose_secret()
            .chars()
            .zip(spaces.iter().cycle())
            .flat_map(|(c, space)| [Some(c.to_ascii_lowercase()), space.then_some(' ')])
            .flatten()
            .collect();
        prop_assert_eq!(TotpSecret::from_base32(&typed).unwrap(), secret);
    }

    #[test]
    fn base32_import_never_panics(text in "\\PC{0,300}|[A-Za-z2-7 =]{0,120}") {
        if let Ok(secret) = TotpSecret::from_base32(&text) {
            prop_assert!(secret.len() >= 16 && secret.len() <= 64);
        }
    }

    #[test]
    fn otpauth_uri_round_trip(
        issuer in proptest::option::of(label()),
        account in label(),
        bytes in secret_bytes(),
        params in params(),
    ) {
        let secret = TotpSecret::from_bytes(&bytes).unwrap();
        let uri = OtpAuthUri::new(issuer.as_deref(), &account, secret, params).unwrap();
        let text = uri.to_uri();
        prop_assert_eq!(OtpAuthUri::parse(text.expose_secret()).unwrap(), uri);
    }

    #[test]
    fn otpauth_parse_never_panics(tail in "\\PC{0,200}", prefix in prop_oneof![Just(""), Just("otpauth://totp/"), Just("otpauth://totp/a?secret=")]) {
        let _ = OtpAuthUri::parse(&format!("{prefix}{tail}"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever sequence of (time, code offset) a client submits, the accepted steps strictly
    /// increase: a step at or below the last accepted one never passes.
    #[test]
    fn accepted_steps_strictly_increase(moves in proptest::collection::vec((0u64..50, -2i64..=2), 1..25)) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let e = enrolled(MemoryStore::new(), config()).await;
            let mut last = None;
            for (seconds, offset) in moves {
                e.clock.advance(Duration::from_secs(seconds + 70));
                let code = e.code(offset);
                match e.verify(&code).await {
                    TotpOutcome::Accepted(accepted) => {
                        if let Some(previous) = last {
                            assert!(accepted.step > previous, "{} after {previous}", accepted.step);
                        }
                        last = Some(accepted.step);
                    }
                    // Wrong offsets count as failures and may reach the lock: still not accepted.
                    TotpOutcome::Invalid
                    | TotpOutcome::Replayed
                    | TotpOutcome::Throttled { .. }
                    | TotpOutcome::Locked { .. } => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
        });
    }
}
