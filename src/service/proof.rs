//! The proof that a second factor passed: what it is good for, and for how long.

use crate::clock::Timestamp;
use crate::ids::{SessionId, UserId};
use crate::session::SecondFactorMethod;

/// Proof that `user` passed a second factor at `verified_at`.
///
/// Only verrou creates one (no public constructor, no serde, no `Clone`), and every call
/// that uses one takes it **by value**: a proof is spent by its first use.
///
/// What a proof is good for, and for how long:
/// - **From an accepted code** ([`Verrou::verify_totp`](crate::Verrou::verify_totp), [`Verrou::verify_recovery_code`](crate::Verrou::verify_recovery_code),
///   [`Verrou::finish_totp_enrollment`](crate::Verrou::finish_totp_enrollment)): raises one session, once
///   ([`Verrou::record_second_factor`](crate::Verrou::record_second_factor)), or authorises one sensitive action
///   ([`Verrou::start_totp_reenrollment`](crate::Verrou::start_totp_reenrollment), [`Verrou::generate_recovery_codes`](crate::Verrou::generate_recovery_codes),
///   [`Verrou::disable_totp`](crate::Verrou::disable_totp)). One accepted code therefore elevates at most one session.
/// - **From a live session** ([`ActiveSession::step_up_proof`](crate::ActiveSession::step_up_proof)): authorises one sensitive
///   action for that session, and is checked against the session when used, so a proof kept
///   after a logout or a revocation is refused. It never raises a session (that needs a code).
/// - Either is good for the step-up freshness after the second factor (5 minutes by
///   default, [`VerrouConfig::with_step_up_freshness`](crate::VerrouConfig::with_step_up_freshness)); an older one is answered with
///   `StepUpRequired`.
///
/// One code, one session: using a proof twice does not compile
/// ```compile_fail,E0382
/// # use verrou::{ClientContext, SecondFactorProof, Verrou};
/// # use verrou::store::MemoryStore;
/// # async fn run(verrou: Verrou<MemoryStore>, proof: SecondFactorProof, a: &str, b: &str) -> Result<(), verrou::Error> {
/// let ctx = ClientContext::unknown();
/// let _ = verrou.record_second_factor(a, proof, &ctx).await?;
/// let _ = verrou.record_second_factor(b, proof, &ctx).await?; // use of moved value
/// # Ok(()) }
/// ```
/// and neither does keeping a copy:
/// ```compile_fail,E0599
/// # fn keep(proof: verrou::SecondFactorProof) {
/// let copy = proof.clone(); // no `Clone`
/// # }
/// ```
#[derive(Debug, Eq, PartialEq)]
pub struct SecondFactorProof {
    pub(super) user: UserId,
    pub(super) verified_at: Timestamp,
    pub(super) method: SecondFactorMethod,
    /// `Some` when the proof stands for a session's earlier second factor.
    pub(super) session: Option<SessionId>,
}

impl SecondFactorProof {
    /// A proof from a code accepted at `verified_at`.
    pub(crate) fn new(user: &UserId, verified_at: Timestamp, method: SecondFactorMethod) -> Self {
        Self {
            user: user.clone(),
            verified_at,
            method,
            session: None,
        }
    }

    /// A proof standing for the second factor `session` passed at `verified_at`.
    pub(crate) fn of_session(
        user: &UserId,
        verified_at: Timestamp,
        method: SecondFactorMethod,
        session: SessionId,
    ) -> Self {
        Self {
            session: Some(session),
            ..Self::new(user, verified_at, method)
        }
    }

    /// The session this proof stands for, when it came from one
    /// ([`ActiveSession::step_up_proof`](crate::ActiveSession::step_up_proof)); `None` for a proof from an accepted code.
    pub fn session(&self) -> Option<SessionId> {
        self.session
    }

    /// Which factor was passed.
    pub fn method(&self) -> SecondFactorMethod {
        self.method
    }

    /// Whose second factor was verified.
    pub fn user(&self) -> &UserId {
        &self.user
    }

    /// When.
    pub fn verified_at(&self) -> Timestamp {
        self.verified_at
    }
}
