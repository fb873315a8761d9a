//! The service facade: the rules and the audit trail over the pure primitives and a
//! [`Store`]. This file holds [`Verrou`] itself; each flow is an `impl` block of it in a file
//! of its own: `enrollment`, `import` (from another TOTP system), `verify`, `recovery_codes`,
//! `sessions`, `binding`, `operator`; beside them the settings (`config`), the request
//! (`context`), the proof of a second factor (`proof`), and the helpers every flow shares:
//! `throttle` (an attempt counted before its check, refusals as outcomes) and `emit` (audit
//! events to `tracing`, the store and the sink).

mod binding;
mod config;
mod context;
mod emit;
mod enrollment;
mod hash_gate;
mod import;
mod operator;
mod proof;
mod recovery_codes;
mod sessions;
mod throttle;
mod verify;

pub use self::binding::{BindingOutcome, BoundCredential, RefreshOutcome};
pub use self::config::VerrouConfig;
pub use self::context::ClientContext;
use self::emit::trace_malformed;
pub use self::enrollment::{EnrollmentOffer, EnrollmentOutcome, ReenrollmentOutcome};
pub use self::import::ImportedFactor;
pub use self::operator::{DisableOutcome, ThrottleStatus};
pub use self::proof::SecondFactorProof;
pub use self::recovery_codes::{RecoveryCodeSet, RecoveryCodesOutcome, RecoveryOutcome};
pub use self::sessions::{
    ActiveSession, Elevated, ElevationOutcome, LogoutOutcome, NewSession, SecondFactorPassed,
    SessionCookies, SessionStatus,
};
use self::throttle::{Counted, Refusal};
use self::verify::Checked;
pub use self::verify::{TotpAccepted, TotpOutcome};
pub use crate::session::SecondFactorMethod;

use std::fmt;
use std::sync::Arc;

use self::hash_gate::HashGate;
use crate::audit::AuditSink;
use crate::clock::{Clock, SystemClock, Timestamp};
use crate::error::Error;
use crate::store::Store;

/// verrou's service: what most portals use.
///
/// Generic over the [`Store`] and the [`Clock`]; cheap to share behind an `Arc`.
pub struct Verrou<S, C = SystemClock> {
    store: S,
    clock: C,
    config: VerrouConfig,
    sink: Option<Arc<dyn AuditSink>>,
    hash_gate: Arc<HashGate>,
}

impl<S, C> fmt::Debug for Verrou<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verrou")
            .field("config", &self.config)
            .field("audit_sink", &self.sink.is_some())
            .finish_non_exhaustive()
    }
}

impl<S: Store> Verrou<S, SystemClock> {
    /// A service over `store` with the system clock.
    pub fn new(store: S, config: VerrouConfig) -> Self {
        let hash_gate = Arc::new(HashGate::new(
            config.argon2_concurrency,
            config.argon2_max_in_flight,
        ));
        Self {
            store,
            clock: SystemClock,
            config,
            sink: None,
            hash_gate,
        }
    }
}

impl<S: Store, C: Clock> Verrou<S, C> {
    /// The same service with another clock.
    pub fn with_clock<C2: Clock>(self, clock: C2) -> Verrou<S, C2> {
        Verrou {
            store: self.store,
            clock,
            config: self.config,
            sink: self.sink,
            hash_gate: self.hash_gate,
        }
    }

    /// Also send audit events to `sink` (they always go to `tracing`).
    pub fn with_audit_sink(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The configuration.
    pub fn config(&self) -> &VerrouConfig {
        &self.config
    }

    /// Whether a second factor passed at `at` is within the step-up freshness at `now`.
    fn is_fresh(&self, at: Timestamp, now: Timestamp) -> bool {
        at <= now && now.duration_since(at) <= self.config.step_up_freshness
    }

    /// Whether `proof` may authorise a sensitive action now: fresh and, if it stands for a
    /// session, that session still live with that very second factor (a proof kept past a
    /// logout, a revocation or a newer second factor is refused).
    async fn step_up_allowed(
        &self,
        proof: &SecondFactorProof,
        now: Timestamp,
    ) -> Result<bool, Error> {
        if !self.is_fresh(proof.verified_at, now) {
            return Ok(false);
        }
        let Some(session) = proof.session else {
            return Ok(true);
        };
        let sessions = self.store.user_sessions(&proof.user).await?;
        Ok(sessions.iter().any(|record| {
            record.id == session
                && now < record.expires_at
                && record.second_factor == Some((proof.verified_at, proof.method))
        }))
    }
}
