//! One recovery-code attempt through the service, with a full set of 10 stored, against one
//! raw argon2id verification with the same parameters (OWASP: 19 MiB, t = 2, p = 1).
//!
//! Rounds alternate the two and the median of the per-round ratios is reported.
//! Prints `ratio recovery/argon2 = X` and exits non-zero if X exceeds the target (1.05).
//!
//! Second, with the hash settings raised (64 MiB, 3 passes): a wrong code whose lookup names
//! no stored code against one whose lookup names a stored code. Both must cost one argon2
//! verification with the configured parameters, or the time tells which lookups exist:
//! prints `ratio unknown/known lookup = Y`, target 0.8 to 1.25.
//! Run: `cargo bench --bench recovery`.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use verrou::store::MemoryStore;
use verrou::testing::{
    insecure_enroll, insecure_fresh_proof, insecure_recovery_codes, InsecureManualClock,
};
use verrou::{
    ClientContext, RecoveryOutcome, SecondFactorProof, Timestamp, TotpParams, UserId, Verrou,
    VerrouConfig,
};

const TARGET_RATIO: f64 = 1.05;
/// Bounds for an unknown lookup's cost over a known one's.
const LOOKUP_RATIO: (f64, f64) = (0.8, 1.25);
const ROUNDS: usize = 41;
const START: u64 = 1_795_000_000;

fn at(seconds: u64) -> Timestamp {
    Timestamp::from_unix_seconds(seconds).unwrap()
}

fn main() {
    if std::env::args().any(|arg| arg == "--list" || arg == "--test") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let clock = InsecureManualClock::new(at(START));
    let verrou = Verrou::new(MemoryStore::new(), VerrouConfig::new("Bench").unwrap())
        .with_clock(clock.clone());
    let user = UserId::new("bench-user").unwrap();
    let ctx = ClientContext::unknown();

    // Each new set needs a fresh second factor (a proof is spent by its use).
    let secret = runtime
        .block_on(insecure_enroll(&verrou, &user))
        .unwrap()
        .unwrap();
    let regenerate = || -> Vec<String> {
        let codes = runtime.block_on(async {
            let proof: SecondFactorProof =
                insecure_fresh_proof(&verrou, &user, &secret, TotpParams::DEFAULT)
                    .await
                    .unwrap()
                    .unwrap();
            insecure_recovery_codes(&verrou, proof).await
        });
        codes.unwrap().expect("fresh proof refused")
    };

    // The floor: argon2id with the same parameters, verifying one 16-character code.
    let argon2 = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(19 * 1024, 2, 1, Some(32)).unwrap(),
    );
    let floor_code = b"7K3MQ9XD2HJWR4T0";
    let floor_hash = argon2
        .hash_password_with_salt(floor_code, b"bench-salt-16byt")
        .unwrap()
        .to_string();
    let floor_hash = PasswordHash::new(&floor_hash).unwrap();

    let mut codes = Vec::new();
    let mut ratios = Vec::with_capacity(ROUNDS);
    let (mut ours_total, mut floor_total) = (Duration::ZERO, Duration::ZERO);
    for round in 0..=ROUNDS {
        if codes.is_empty() {
            codes = regenerate(); // a full set of 10 stored for every measured attempt
        }
        let code = codes.pop().unwrap();
        let start = Instant::now();
        let outcome = runtime
            .block_on(verrou.verify_recovery_code(&user, &code, &ctx))
            .unwrap();
        let ours = start.elapsed();
        assert!(
            matches!(outcome, RecoveryOutcome::Accepted { .. }),
            "{outcome:?}"
        );
        let start = Instant::now();
        argon2
            .verify_password(std::hint::black_box(floor_code), &floor_hash)
            .unwrap();
        let floor = start.elapsed();
        if round == 0 {
            continue; // warm-up
        }
        ratios.push(ours.as_secs_f64() / floor.as_secs_f64());
        ours_total += ours;
        floor_total += floor;
    }
    ratios.sort_by(f64::total_cmp);
    let ratio = ratios[ratios.len() / 2];
    let count = ratios.len() as u32;
    println!(
        "recovery attempt {:.1} ms, argon2 verification {:.1} ms (means of {count})",
        (ours_total / count).as_secs_f64() * 1e3,
        (floor_total / count).as_secs_f64() * 1e3
    );
    println!("ratio recovery/argon2 = {ratio:.2} (median of {count} interleaved rounds; target <= {TARGET_RATIO})");
    let lookups = unknown_over_known_lookup(&runtime);
    println!(
        "ratio unknown/known lookup = {lookups:.2} (64 MiB, t = 3; median of {LOOKUP_ROUNDS}; target {} to {})",
        LOOKUP_RATIO.0, LOOKUP_RATIO.1
    );
    println!("PERF\trecovery\t{ratio:.2}\t<= {TARGET_RATIO}");
    println!(
        "PERF\trecovery_lookup\t{lookups:.2}\t{} to {}",
        LOOKUP_RATIO.0, LOOKUP_RATIO.1
    );
    let mut failed = false;
    if ratio > TARGET_RATIO {
        eprintln!(
            "a recovery-code attempt costs more than {TARGET_RATIO}x one argon2 verification"
        );
        failed = true;
    }
    if !(LOOKUP_RATIO.0..=LOOKUP_RATIO.1).contains(&lookups) {
        eprintln!(
            "an unknown lookup does not cost what a known one does: lookups can be told apart"
        );
        failed = true;
    }
    if failed {
        std::process::exit(1);
    }
}

const LOOKUP_ROUNDS: usize = 15;

/// Median ratio of a wrong code with an unknown lookup over one with a known lookup, on a
/// service whose hash settings are raised above the default.
fn unknown_over_known_lookup(runtime: &tokio::runtime::Runtime) -> f64 {
    let mut raised = verrou::recovery::HashParams::OWASP;
    raised.memory_kib = 64 * 1024;
    raised.passes = 3;
    let config = VerrouConfig::new("Bench")
        .unwrap()
        .with_recovery_hash(raised)
        .unwrap();
    let clock = InsecureManualClock::new(at(START));
    let verrou = Verrou::new(MemoryStore::new(), config).with_clock(clock);
    let user = UserId::new("bench-user").unwrap();
    let ctx = ClientContext::unknown();
    let codes = runtime.block_on(async {
        let secret = insecure_enroll(&verrou, &user).await.unwrap().unwrap();
        let proof = insecure_fresh_proof(&verrou, &user, &secret, TotpParams::DEFAULT)
            .await
            .unwrap()
            .unwrap();
        insecure_recovery_codes(&verrou, proof)
            .await
            .unwrap()
            .unwrap()
    });
    // Same lookup as a stored code, wrong secret part; and a lookup no code has.
    let known = format!("{}-0000-0000-0000", &codes[0][..4]);
    let mut unknown_lookup = String::from("ZZZZ");
    while codes.iter().any(|code| code.starts_with(&unknown_lookup)) {
        unknown_lookup = String::from("YYYY");
    }
    let unknown = format!("{unknown_lookup}-0000-0000-0000");
    let attempt = |code: &str| {
        runtime.block_on(verrou.lift_lock(&user)).unwrap();
        let start = Instant::now();
        let outcome = runtime
            .block_on(verrou.verify_recovery_code(&user, code, &ctx))
            .unwrap();
        let spent = start.elapsed();
        assert_eq!(outcome, RecoveryOutcome::Invalid);
        spent
    };
    let mut ratios = Vec::with_capacity(LOOKUP_ROUNDS);
    for round in 0..=LOOKUP_ROUNDS {
        let known = attempt(&known);
        let unknown = attempt(&unknown);
        if round > 0 {
            ratios.push(unknown.as_secs_f64() / known.as_secs_f64());
        }
    }
    ratios.sort_by(f64::total_cmp);
    ratios[ratios.len() / 2]
}
