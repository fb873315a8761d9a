//! One recovery-code attempt through the service, with a full set of 10 stored, against one
//! raw argon2id verification with the same parameters (OWASP: 19 MiB, t = 2, p = 1).
//!
//! Rounds alternate the two and the median of the per-round ratios is reported.
//! Prints `ratio recovery/argon2 = X` and exits non-zero if X exceeds the target (1.2).
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
    insecure_enrol, insecure_fresh_proof, insecure_recovery_codes, InsecureManualClock,
};
use verrou::{
    ClientContext, RecoveryOutcome, SecondFactorProof, Timestamp, TotpParams, UserId, Verrou,
    VerrouConfig,
};

const TARGET_RATIO: f64 = 1.2;
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

    // A fresh second factor (the clock never moves again, so it stays fresh).
    let proof: SecondFactorProof = runtime.block_on(async {
        let secret = insecure_enrol(&verrou, &user).await.unwrap().unwrap();
        insecure_fresh_proof(&verrou, &user, &secret, TotpParams::DEFAULT)
            .await
            .unwrap()
            .unwrap()
    });
    let regenerate = || -> Vec<String> {
        let codes = runtime.block_on(insecure_recovery_codes(&verrou, &proof));
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
    if ratio > TARGET_RATIO {
        eprintln!(
            "a recovery-code attempt costs more than {TARGET_RATIO}x one argon2 verification"
        );
        std::process::exit(1);
    }
}
