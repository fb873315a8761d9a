//! One TOTP verification through the service and the in-memory store, against the floor:
//! the raw HMAC-SHA-1 computations its ±1 window needs (three), measured in the same run.
//!
//! Criterion reports both times. The ratio is then measured by interleaving: short batches
//! of verifications and of floor computations alternate, and the median of the per-round
//! ratios is reported, so background load on the machine affects both sides alike.
//! Prints `ratio verify/floor = X` and exits non-zero if X exceeds the target (2.0: the three HMACs, plus the throttle, the step acceptance and the audit record kept in the store).
//! Run: `cargo bench --bench verify`.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::cell::Cell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use hmac::{Hmac, KeyInit, Mac};
use secrecy::ExposeSecret;
use sha1::Sha1;
use verrou::store::MemoryStore;
use verrou::testing::{insecure_code_at, insecure_enroll, InsecureManualClock};
use verrou::{
    ClientContext, Timestamp, TotpOutcome, TotpParams, TotpSecret, UserId, Verrou, VerrouConfig,
};

const TARGET_RATIO: f64 = 2.0;
const GROUP: &str = "totp_verify";
const START: u64 = 1_795_000_000;

fn at(seconds: u64) -> Timestamp {
    Timestamp::from_unix_seconds(seconds).unwrap()
}

/// A user enrolled on a fresh service, and everything needed to verify their codes.
struct Setup {
    runtime: tokio::runtime::Runtime,
    clock: InsecureManualClock,
    verrou: Verrou<MemoryStore, InsecureManualClock>,
    user: UserId,
    secret: TotpSecret,
    /// Each verification happens one step after the previous one, so every one is accepted.
    next_time: Cell<u64>,
}

impl Setup {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let clock = InsecureManualClock::new(at(START));
        let verrou = Verrou::new(MemoryStore::new(), VerrouConfig::new("Bench").unwrap())
            .with_clock(clock.clone());
        let user = UserId::new("bench-user").unwrap();
        let secret = runtime
            .block_on(insecure_enroll(&verrou, &user))
            .unwrap()
            .unwrap();
        Self {
            runtime,
            clock,
            verrou,
            user,
            secret,
            next_time: Cell::new(START + 30),
        }
    }

    /// Times `iters` accepted verifications (codes computed beforehand, outside the timing).
    fn time_verify(&self, iters: u64) -> Duration {
        let times: Vec<u64> = (0..iters).map(|i| self.next_time.get() + 30 * i).collect();
        let codes: Vec<String> = times
            .iter()
            .map(|t| insecure_code_at(&self.secret, TotpParams::DEFAULT, at(*t)))
            .collect();
        self.next_time.set(self.next_time.get() + 30 * iters);
        let ctx = ClientContext::unknown();
        self.runtime.block_on(async {
            let start = Instant::now();
            for (time, code) in times.iter().zip(&codes) {
                self.clock.set_unix_seconds(*time);
                let outcome = self
                    .verrou
                    .verify_totp(&self.user, black_box(code), &ctx)
                    .await
                    .unwrap();
                assert!(matches!(outcome, TotpOutcome::Accepted(_)));
            }
            start.elapsed()
        })
    }
}

/// Times `iters` floors: the three HMAC-SHA-1 computations of a ±1 window.
fn time_floor(key: &[u8], iters: u64) -> Duration {
    let start = Instant::now();
    for i in 0..iters {
        let step = (START / 30) + i;
        for counter in [step - 1, step, step + 1] {
            let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(black_box(key)).unwrap();
            mac.update(&counter.to_be_bytes());
            black_box(mac.finalize().into_bytes());
        }
    }
    start.elapsed()
}

/// Median over `rounds` of (verify batch time / floor batch time), batches alternating.
fn interleaved_ratio(setup: &Setup, key: &[u8], rounds: usize, batch: u64) -> f64 {
    let mut ratios: Vec<f64> = (0..rounds)
        .map(|_| {
            let verify = setup.time_verify(batch);
            let floor = time_floor(key, batch);
            verify.as_secs_f64() / floor.as_secs_f64()
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    ratios[ratios.len() / 2]
}

fn bench(c: &mut Criterion) {
    let setup = Setup::new();
    let key = secret_bytes(&setup.secret);

    let mut group = c.benchmark_group(GROUP);
    group.bench_function("verify", |b| {
        b.iter_custom(|iters| setup.time_verify(iters))
    });
    group.bench_function("floor_3_hmac_sha1", |b| {
        b.iter_custom(|iters| time_floor(&key, iters))
    });
    group.finish();
}

/// The raw secret, recovered through the public Base32 form (the crate never exposes bytes).
fn secret_bytes(secret: &TotpSecret) -> Vec<u8> {
    let text = secret.to_base32();
    let text = text.expose_secret();
    let mut bits = 0u64;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32"),
        };
        bits = (bits << 5) | u64::from(value);
        count += 5;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = bench
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if std::env::args().any(|arg| arg == "--list" || arg == "--test") {
        return;
    }
    let setup = Setup::new();
    let key = secret_bytes(&setup.secret);
    let _warm_up = interleaved_ratio(&setup, &key, 20, 1000);
    let ratio = interleaved_ratio(&setup, &key, 301, 2000);
    println!("ratio verify/floor = {ratio:.2} (median of 301 interleaved rounds of 2000; target <= {TARGET_RATIO})");
    if ratio > TARGET_RATIO {
        eprintln!("verification costs more than {TARGET_RATIO}x its HMAC floor");
        std::process::exit(1);
    }
}
