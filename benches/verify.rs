//! One TOTP verification through the service and the in-memory store, against the floor:
//! the raw HMAC-SHA-1 computations its ±1 window needs (three), measured in the same run.
//!
//! Criterion reports both times. The ratio is then measured by interleaving: short batches
//! of verifications and of floor computations alternate, and the median of the per-round
//! ratios is reported, so background load on the machine affects both sides alike.
//! Second, the same verification against totp-rs's `check` on an invalid code (its whole ±1
//! window: three HMACs, each with its key set-up, each formatted as a string and compared).
//! Prints `ratio verify/floor = X` (target 1.5: the three HMACs, plus the throttle, the step
//! acceptance and the audit record kept in the store) and `ratio verify/totp-rs check = Y`
//! (target 1.0), and `PERF` lines for `benches/run`; exits non-zero if a target is missed.
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

/// Verification against its floor (three raw HMAC-SHA-1 computations with key set-up).
const TARGET_RATIO: f64 = 1.5;
/// Verification against totp-rs's `check` on an invalid code (its whole ±1 window).
const TOTP_RS_TARGET: f64 = 1.0;
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

/// totp-rs, the reference implementation, set up for the same secret and a ±1 window.
fn totp_rs(key: &[u8]) -> totp_rs::Totp {
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_skew(1)
        .with_secret(totp_rs::Secret::from(key))
        .build()
        .unwrap()
}

/// Times `iters` totp-rs `check` calls on a code that matches no step of the window (the
/// whole window computed: its worst case, and what verrou always does).
fn time_totp_rs(totp: &totp_rs::Totp, iters: u64) -> Duration {
    let start = Instant::now();
    for i in 0..iters {
        let time = START + 30 * i;
        assert!(totp.check(black_box("000000"), black_box(time)).is_none() || i > 0);
    }
    start.elapsed()
}

/// Median over `rounds` of (verify batch time / baseline batch time), batches alternating;
/// and verrou's median time per verification.
fn interleaved_ratio(
    setup: &Setup,
    rounds: usize,
    batch: u64,
    mut baseline: impl FnMut(u64) -> Duration,
) -> (f64, Duration) {
    let mut ratios = Vec::with_capacity(rounds);
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let verify = setup.time_verify(batch);
        let other = baseline(batch);
        ratios.push(verify.as_secs_f64() / other.as_secs_f64());
        times.push(verify / u32::try_from(batch).unwrap());
    }
    ratios.sort_by(f64::total_cmp);
    times.sort();
    (ratios[ratios.len() / 2], times[times.len() / 2])
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
    if std::env::args().any(|arg| arg == "--list" || arg == "--test" || arg == "--profile-time") {
        return;
    }
    let setup = Setup::new();
    let key = secret_bytes(&setup.secret);
    let reference = totp_rs(&key);
    let _warm_up = interleaved_ratio(&setup, 20, 1000, |n| time_floor(&key, n));
    let (floor, per_verify) = interleaved_ratio(&setup, 301, 2000, |n| time_floor(&key, n));
    let (versus_totp_rs, _) = interleaved_ratio(&setup, 301, 2000, |n| time_totp_rs(&reference, n));
    println!(
        "ratio verify/floor = {floor:.2} (median of 301 interleaved rounds of 2000; target <= {TARGET_RATIO})"
    );
    println!(
        "ratio verify/totp-rs check = {versus_totp_rs:.2} (median of 301 interleaved rounds of 2000; target <= {TOTP_RS_TARGET})"
    );
    println!("verrou verification: {} ns (median)", per_verify.as_nanos());
    // For benches/run: measure, ratio, target.
    println!("PERF\tverify_floor\t{floor:.2}\t<= {TARGET_RATIO}");
    println!("PERF\tverify_totp_rs\t{versus_totp_rs:.2}\t<= {TOTP_RS_TARGET}");
    println!("PERF-NS\tverify\t{}", per_verify.as_nanos());
    if floor > TARGET_RATIO || versus_totp_rs > TOTP_RS_TARGET {
        eprintln!("a verification target is missed (see the ratios above)");
        std::process::exit(1);
    }
}
