//! What verrou adds to each request, against the one operation it cannot avoid, measured in
//! one run and interleaved (rounds alternate the two sides; the median of the per-round
//! ratios is reported, so background load affects both alike):
//!
//! - `authenticate` (session cookie → session, the bound cookie checked against the binding)
//!   on a SQLite store, against one primary-key read of the sessions table on the same
//!   database file (target ≤ 1.5);
//! - a device-binding proof (a DBSC refresh JWT: parsed, its algorithm and shape checked, its
//!   ES256 signature verified with the registered key) against one bare P-256 ECDSA
//!   verification of the same bytes (target ≤ 1.2).
//!
//! Prints the ratios, `PERF` lines for `benches/run`, and exits non-zero if a target is
//! missed. Run: `cargo bench --bench requests`.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use base64ct::{Base64UrlUnpadded, Encoding as _};
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use verrou::session::proof::{DeviceKey, ParsedProof};
use verrou::session::{BindingKind, Requirement};
use verrou::store::SqliteStore;
use verrou::testing::{
    insecure_code_at, insecure_enroll, insecure_key_ring, InsecureDevice, InsecureManualClock,
};
use verrou::{
    BindingOutcome, ClientContext, ElevationOutcome, SessionCookies, SessionStatus, Timestamp,
    TotpOutcome, TotpParams, UserId, Verrou, VerrouConfig,
};

const AUTHENTICATE_TARGET: f64 = 1.5;
const PROOF_TARGET: f64 = 1.2;
const START: u64 = 1_795_000_000;
const ROUNDS: usize = 101;

fn at(seconds: u64) -> Timestamp {
    Timestamp::from_unix_seconds(seconds).unwrap()
}

/// Median over `ROUNDS` of (ours / baseline), each side a batch of `batch`, alternating.
fn interleaved(
    batch: u64,
    mut ours: impl FnMut(u64) -> Duration,
    mut baseline: impl FnMut(u64) -> Duration,
) -> f64 {
    let _ = (ours(batch), baseline(batch)); // warm-up
    let mut ratios: Vec<f64> = (0..ROUNDS)
        .map(|_| ours(batch).as_secs_f64() / baseline(batch).as_secs_f64())
        .collect();
    ratios.sort_by(f64::total_cmp);
    ratios[ratios.len() / 2]
}

/// A bound, elevated session on a SQLite store, and a raw pool on the same file.
struct Sessions {
    runtime: tokio::runtime::Runtime,
    verrou: Verrou<SqliteStore, InsecureManualClock>,
    session: String,
    bound: String,
    id: String,
    raw: sqlx::SqlitePool,
    _dir: tempfile::TempDir,
}

impl Sessions {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("verrou.db");
        let (verrou, session, bound, id, raw) = runtime.block_on(async {
            let store = SqliteStore::open(&path, insecure_key_ring().unwrap())
                .await
                .unwrap();
            let clock = InsecureManualClock::new(at(START));
            let verrou =
                Verrou::new(store, VerrouConfig::new("Bench").unwrap()).with_clock(clock.clone());
            let user = UserId::new("bench-user").unwrap();
            let secret = insecure_enroll(&verrou, &user).await.unwrap().unwrap();
            let ctx = ClientContext::unknown();
            let new = verrou.create_session(&user, None, &ctx).await.unwrap();
            clock.advance(Duration::from_secs(30));
            let now = verrou::Clock::now(&clock).unwrap();
            let code = insecure_code_at(&secret, TotpParams::DEFAULT, now);
            let TotpOutcome::Accepted(accepted) =
                verrou.verify_totp(&user, &code, &ctx).await.unwrap()
            else {
                panic!("code refused")
            };
            let token = new.token.expose_secret().to_owned();
            let ElevationOutcome::Elevated(elevated) = verrou
                .record_second_factor(&token, accepted.proof, &ctx)
                .await
                .unwrap()
            else {
                panic!("not elevated")
            };
            let session = elevated.token.expose_secret().to_owned();
            let challenge = elevated.binding_offer.unwrap();
            let device = InsecureDevice::generate().unwrap();
            let proof = device.registration_proof(challenge.as_str());
            let BindingOutcome::Bound(credential) = verrou
                .register_binding(&session, &proof, BindingKind::Dbsc, &ctx)
                .await
                .unwrap()
            else {
                panic!("not bound")
            };
            let bound = credential.cookie.expose_secret().to_owned();
            // The baseline's pool is set up as the store's own (four connections, WAL, no
            // ping before each statement), so both sides run on the same machinery.
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&path)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
                .foreign_keys(true);
            let raw = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(4)
                .test_before_acquire(false)
                .connect_with(options)
                .await
                .unwrap();
            let id = elevated.session.to_string();
            (verrou, session, bound, id, raw)
        });
        Self {
            runtime,
            verrou,
            session,
            bound,
            id,
            raw,
            _dir: dir,
        }
    }

    fn time_authenticate(&self, iters: u64) -> Duration {
        let ctx = ClientContext::unknown();
        let cookies = SessionCookies::new(&self.session, Some(&self.bound));
        self.runtime.block_on(async {
            let start = Instant::now();
            for _ in 0..iters {
                let status = self
                    .verrou
                    .authenticate(black_box(&cookies), Requirement::SecondFactor, &ctx)
                    .await
                    .unwrap();
                assert!(matches!(status, SessionStatus::Active(_)));
            }
            start.elapsed()
        })
    }

    /// One primary-key read of the session's row: the least a session check can cost.
    fn time_primary_key_read(&self, iters: u64) -> Duration {
        self.runtime.block_on(async {
            let start = Instant::now();
            for _ in 0..iters {
                let row = sqlx::query("SELECT * FROM verrou_sessions WHERE session_id = ?1")
                    .bind(black_box(&self.id))
                    .fetch_optional(&self.raw)
                    .await
                    .unwrap();
                assert!(row.is_some());
            }
            start.elapsed()
        })
    }
}

/// A refresh proof, its registered key, and the same signature's bare parts.
struct Proof {
    jwt: String,
    key: DeviceKey,
    message: Vec<u8>,
    signature: Signature,
    verifying: VerifyingKey,
}

impl Proof {
    fn new() -> Self {
        let device = InsecureDevice::generate().unwrap();
        let registration = ParsedProof::parse(&device.registration_proof("c")).unwrap();
        let key = registration.verify_embedded().unwrap();
        let jwt = device.refresh_proof("Zx8tTbT2yVqvE0m7m7xJ2Q");
        let (message, signature) = jwt.rsplit_once('.').unwrap();
        let signature =
            Signature::from_slice(&Base64UrlUnpadded::decode_vec(signature).unwrap()).unwrap();
        let verifying = VerifyingKey::from_sec1_bytes(&key.to_sec1()).unwrap();
        Self {
            message: message.as_bytes().to_vec(),
            jwt,
            key,
            signature,
            verifying,
        }
    }

    fn time_verrou(&self, iters: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..iters {
            let parsed = ParsedProof::parse(black_box(&self.jwt)).unwrap();
            parsed.verify_with(&self.key).unwrap();
            assert!(parsed.answers("Zx8tTbT2yVqvE0m7m7xJ2Q"));
        }
        start.elapsed()
    }

    fn time_bare(&self, iters: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..iters {
            self.verifying
                .verify(black_box(&self.message), &self.signature)
                .unwrap();
        }
        start.elapsed()
    }
}

fn main() {
    if std::env::args().any(|arg| arg == "--list" || arg == "--test") {
        return;
    }
    let sessions = Sessions::new();
    let authenticate = interleaved(
        200,
        |n| sessions.time_authenticate(n),
        |n| sessions.time_primary_key_read(n),
    );
    let proof = Proof::new();
    let proofs = interleaved(50, |n| proof.time_verrou(n), |n| proof.time_bare(n));
    println!(
        "ratio authenticate/primary-key read = {authenticate:.2} (SQLite; median of {ROUNDS} interleaved rounds; target <= {AUTHENTICATE_TARGET})"
    );
    println!(
        "ratio proof verification/bare ECDSA = {proofs:.2} (median of {ROUNDS} interleaved rounds; target <= {PROOF_TARGET})"
    );
    println!("PERF\tauthenticate\t{authenticate:.2}\t<= {AUTHENTICATE_TARGET}");
    println!("PERF\tproof\t{proofs:.2}\t<= {PROOF_TARGET}");
    if authenticate > AUTHENTICATE_TARGET || proofs > PROOF_TARGET {
        eprintln!("a per-request target is missed (see the ratios above)");
        std::process::exit(1);
    }
}
