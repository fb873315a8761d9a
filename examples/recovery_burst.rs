//! Peak memory of 200 concurrent recovery-code attempts, with verrou's argon2 limit.
//!
//! `cargo run --release --example recovery_burst` enrols 200 users with one recovery code
//! each, resets the kernel's peak-RSS mark (`/proc/self/clear_refs`), fires 200 attempts at
//! once on a multi-threaded runtime, and prints the peak RSS of the burst and how the
//! attempts ended. `-- --unbounded` lifts the limit (200 hashings at once) for comparison.
//! Each argon2 hashing holds 19 MiB. With the default limit the run fails if the burst adds
//! more than 128 MiB of resident memory.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::time::Instant;

use verrou::store::MemoryStore;
use verrou::testing::{
    insecure_enroll, insecure_fresh_proof, insecure_recovery_codes, InsecureManualClock,
};
use verrou::{ClientContext, RecoveryOutcome, Timestamp, TotpParams, UserId, Verrou, VerrouConfig};

const ATTEMPTS: usize = 200;
/// With the default limit, the burst may add at most this much resident memory.
const MAX_INCREASE_MIB: f64 = 128.0;
const START: u64 = 1_795_000_000;

fn at(seconds: u64) -> Timestamp {
    Timestamp::from_unix_seconds(seconds).unwrap()
}

/// A memory figure from /proc/self/status, in MiB (Linux): `VmRSS` (now) or `VmHWM` (peak
/// since the last reset).
fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    let kib: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024.0
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let unbounded = std::env::args().any(|a| a == "--unbounded");
    let mut config = VerrouConfig::new("burst")
        .unwrap()
        .with_recovery_set_size(1)
        .unwrap();
    if unbounded {
        config = config.with_argon2_limits(ATTEMPTS, ATTEMPTS).unwrap();
    }
    let clock = InsecureManualClock::new(at(START));
    let verrou = Arc::new(Verrou::new(MemoryStore::new(), config).with_clock(clock.clone()));

    let mut attempts = Vec::with_capacity(ATTEMPTS);
    for n in 0..ATTEMPTS {
        let user = UserId::new(format!("partner-{n:03}")).unwrap();
        clock.set_unix_seconds(START);
        let secret = insecure_enroll(&verrou, &user).await.unwrap().unwrap();
        let proof = insecure_fresh_proof(&verrou, &user, &secret, TotpParams::DEFAULT)
            .await
            .unwrap()
            .unwrap();
        let codes = insecure_recovery_codes(&verrou, proof).await.unwrap();
        attempts.push((user, codes.expect("fresh proof refused")[0].clone()));
    }
    clock.set_unix_seconds(START + 60);

    std::fs::write("/proc/self/clear_refs", "5").unwrap(); // reset the peak-RSS mark
    let before = status_mib("VmRSS:");
    let start = Instant::now();
    let tasks: Vec<_> = attempts
        .into_iter()
        .map(|(user, code)| {
            let verrou = verrou.clone();
            tokio::spawn(async move {
                verrou
                    .verify_recovery_code(&user, &code, &ClientContext::unknown())
                    .await
                    .unwrap()
            })
        })
        .collect();
    let (mut accepted, mut busy) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            RecoveryOutcome::Accepted { .. } => accepted += 1,
            RecoveryOutcome::Busy { .. } => busy += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    let elapsed = start.elapsed();
    let peak = status_mib("VmHWM:");
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mode = if unbounded {
        "unbounded (200 at once)".to_owned()
    } else {
        format!("default ({cores} at once, {} admitted)", 4 * cores)
    };
    println!("argon2 limit: {mode}");
    println!(
        "{ATTEMPTS} concurrent attempts: {accepted} accepted, {busy} refused as busy, in {:.0} ms",
        elapsed.as_secs_f64() * 1e3
    );
    println!(
        "resident before the burst {before:.1} MiB, peak during it {peak:.1} MiB: +{:.1} MiB",
        peak - before
    );
    if !unbounded && peak - before > MAX_INCREASE_MIB {
        eprintln!("the burst added more than {MAX_INCREASE_MIB} MiB despite the argon2 limit");
        std::process::exit(1);
    }
}
