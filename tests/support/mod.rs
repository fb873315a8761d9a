//! What every test binary shares: fixed times and users, a store's factor set up in one call,
//! a user enrolled on a service with a hand-driven clock, and tasks lined up to race. Each
//! binary uses part of it.

#![allow(dead_code)]

pub mod http;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod sessions;
#[cfg(feature = "sqlite")]
pub mod sqlite;

// Not every binary drives sessions.
#[allow(unused_imports)]
pub use self::sessions::*;

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use tokio::sync::Barrier;
use verrou::audit::{AuditEvent, AuditKind, MemoryAuditSink};
use verrou::recovery::Lookup;
use verrou::store::backend::{Activation, PendingTotp, RecoveryCodeRecord, TotpFactor};
use verrou::store::Store;
use verrou::testing::{
    insecure_code_at, insecure_enroll, insecure_recovery_codes, InsecureManualClock,
};
use verrou::{
    ClientContext, Clock, EnrollmentOffer, FactorId, Timestamp, TotpAccepted, TotpOutcome,
    TotpParams, TotpSecret, UserId, Verrou, VerrouConfig,
};

/// How many tasks race in the concurrency cases.
pub const RACERS: usize = 32;

/// A fixed, realistic start time (2026-11-23).
pub const START: u64 = 1_795_000_000;

/// A secret's raw bytes, from its Base32 form (the crate never hands them out).
pub fn secret_bytes(secret: &TotpSecret) -> Vec<u8> {
    let text = secret.to_base32();
    let alphabet = base32::Alphabet::Rfc4648 { padding: false };
    base32::decode(alphabet, text.expose_secret()).unwrap()
}

/// An audit record for a store-level step acceptance (its content is not under test there).
pub fn step_event() -> AuditEvent {
    AuditEvent::new(at(START), user("alice"), None, AuditKind::LockLifted)
}

pub fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

pub fn at(seconds: u64) -> Timestamp {
    Timestamp::from_unix_seconds(seconds).unwrap()
}

pub fn pending(replaces: Option<FactorId>, expires_at: u64) -> PendingTotp {
    PendingTotp {
        id: FactorId::generate().unwrap(),
        secret: TotpSecret::generate().unwrap(),
        params: TotpParams::DEFAULT,
        replaces,
        created_at: at(START),
        expires_at: at(expires_at),
    }
}

/// Stores and activates a factor for `who`, returning it.
pub async fn active_factor<S: Store>(store: &S, who: &UserId, last_step: u64) -> TotpFactor {
    let p = pending(None, START + 600);
    let id = p.id;
    store.put_pending_totp(who, p).await.unwrap();
    let got = store
        .activate_pending_totp(who, id, last_step, at(START))
        .await
        .unwrap();
    assert_eq!(got, Activation::Activated);
    store.active_totp(who).await.unwrap().unwrap()
}

/// Starts `RACERS` tasks, lined up on a barrier so they really overlap, and collects their
/// results. `task(i)` builds the future of task `i`.
pub async fn race<T, F, Fut>(task: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let barrier = Arc::new(Barrier::new(RACERS));
    let handles: Vec<_> = (0..RACERS)
        .map(|i| {
            let (barrier, work) = (barrier.clone(), task(i));
            tokio::spawn(async move {
                barrier.wait().await;
                work.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(RACERS);
    for handle in handles {
        results.push(handle.await.unwrap());
    }
    results
}

/// A stored code whose lookup is `lookup` (its hash is never checked at this level).
pub fn recovery_record(lookup: &str) -> RecoveryCodeRecord {
    RecoveryCodeRecord {
        lookup: Lookup::parse(lookup).unwrap(),
        phc: format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ${lookup}"),
        used: false,
    }
}

pub struct Enrolled<S: Store> {
    pub verrou: Arc<Verrou<S, InsecureManualClock>>,
    pub clock: InsecureManualClock,
    pub user: UserId,
    pub secret: TotpSecret,
}

impl<S: Store + Clone> Enrolled<S> {
    /// A second service on the same store and clock, reporting to an in-memory audit sink.
    pub fn audited(&self) -> (Verrou<S, InsecureManualClock>, Arc<MemoryAuditSink>) {
        let sink = Arc::new(MemoryAuditSink::new());
        let verrou = Verrou::new(self.verrou.store().clone(), config())
            .with_clock(self.clock.clone())
            .with_audit_sink(sink.clone());
        (verrou, sink)
    }

    /// Like [`Enrolled::audited`], with another configuration.
    pub fn audited_with(
        &self,
        config: VerrouConfig,
    ) -> (Verrou<S, InsecureManualClock>, Arc<MemoryAuditSink>) {
        let sink = Arc::new(MemoryAuditSink::new());
        let verrou = Verrou::new(self.verrou.store().clone(), config)
            .with_clock(self.clock.clone())
            .with_audit_sink(sink.clone());
        (verrou, sink)
    }
}

impl<S: Store> Enrolled<S> {
    /// The code the user's app shows now, `offset_steps` steps away.
    pub fn code(&self, offset_steps: i64) -> String {
        let now = self.clock.now().unwrap();
        let time = now
            .unix_seconds()
            .checked_add_signed(offset_steps * 30)
            .unwrap();
        insecure_code_at(&self.secret, TotpParams::DEFAULT, at(time))
    }

    /// Verifies `code` for the enrolled user, from an unknown client.
    pub async fn verify(&self, code: &str) -> TotpOutcome {
        self.verrou
            .verify_totp(&self.user, code, &ClientContext::unknown())
            .await
            .unwrap()
    }

    /// Fresh recovery codes for the user, after passing the second factor.
    pub async fn recovery_codes(&self) -> Vec<String> {
        let proof = self.accept(&self.code(0)).await.proof;
        insecure_recovery_codes(&self.verrou, proof)
            .await
            .unwrap()
            .expect("fresh proof refused")
    }

    /// Verifies `code` and insists it is accepted.
    pub async fn accept(&self, code: &str) -> TotpAccepted {
        match self.verify(code).await {
            TotpOutcome::Accepted(accepted) => accepted,
            other => panic!("expected the code to be accepted, got {other:?}"),
        }
    }

    pub fn advance_steps(&self, steps: u64) {
        self.clock.advance(Duration::from_secs(30 * steps));
    }
}

/// Starts an enrolment for `who`: the offer, and the secret an app would read from it.
pub async fn start_enrollment<S: Store, C: Clock>(
    verrou: &Verrou<S, C>,
    who: &UserId,
    account: &str,
) -> (EnrollmentOffer, TotpSecret) {
    let offer = verrou
        .start_totp_enrollment(who, account, &ClientContext::unknown())
        .await
        .unwrap();
    let secret = TotpSecret::from_base32(offer.secret_base32().expose_secret()).unwrap();
    (offer, secret)
}

/// Starts and confirms an enrolment for `who` with the code of the clock's time; returns the
/// secret.
pub async fn enrol<S: Store>(verrou: &Verrou<S, InsecureManualClock>, who: &UserId) -> TotpSecret {
    insecure_enroll(verrou, who)
        .await
        .unwrap()
        .expect("enrolment confirmed")
}

/// Enrols `alice` with a confirmed factor on `store`, one step past the confirmation.
pub async fn enrolled<S: Store>(store: S, config: VerrouConfig) -> Enrolled<S> {
    let clock = InsecureManualClock::new(at(START));
    let verrou = Verrou::new(store, config).with_clock(clock.clone());
    let alice = user("alice");
    let secret = enrol(&verrou, &alice).await;
    clock.advance(Duration::from_secs(30));
    Enrolled {
        verrou: Arc::new(verrou),
        clock,
        user: alice,
        secret,
    }
}

pub fn config() -> VerrouConfig {
    VerrouConfig::new("Portail Partenaires").unwrap()
}
