//! Test tools, behind the `insecure-test-utils` feature. Never enable it in production.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;

use crate::clock::{Clock, ClockError, Timestamp};
use crate::error::Error;
use crate::ids::UserId;
use crate::secret::TotpSecret;
use crate::service::{
    ClientContext, EnrollmentOutcome, RecoveryCodesOutcome, SecondFactorProof, TotpOutcome, Verrou,
};
use crate::store::Store;
use crate::totp::TotpParams;

/// A clock driven by hand. Clones share the same time.
#[derive(Clone, Debug)]
pub struct InsecureManualClock {
    seconds: Arc<AtomicU64>,
}

impl InsecureManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            seconds: Arc::new(AtomicU64::new(start.unix_seconds())),
        }
    }

    /// Sets the time (raw seconds, so tests can set impossible times too).
    pub fn set_unix_seconds(&self, seconds: u64) {
        self.seconds.store(seconds, Ordering::SeqCst);
    }

    /// Moves the time forward.
    pub fn advance(&self, by: Duration) {
        self.seconds.fetch_add(by.as_secs(), Ordering::SeqCst);
    }
}

impl Clock for InsecureManualClock {
    fn now(&self) -> Result<Timestamp, ClockError> {
        Timestamp::from_unix_seconds(self.seconds.load(Ordering::SeqCst))
    }
}

/// The code an authenticator app shows at `time`: plays the user's phone in tests and demos.
///
/// # Panics
/// Never for valid parameters; returns an empty string if the secret is unusable.
pub fn insecure_code_at(secret: &TotpSecret, params: TotpParams, time: Timestamp) -> String {
    crate::totp::code_at(secret, params, time)
        .map(|code| code.expose_secret().to_owned())
        .unwrap_or_default()
}

/// Plays a new user through enrolment: starts it, reads the secret as an app would, and
/// confirms with the code of the clock's current time. Returns the secret, or `None` if the
/// service did not confirm (it always does for a user with no factor on a working store).
///
/// # Errors
/// What the service returns.
pub async fn insecure_enrol<S: Store>(
    verrou: &Verrou<S, InsecureManualClock>,
    user: &UserId,
) -> Result<Option<TotpSecret>, Error> {
    let ctx = ClientContext::unknown();
    let offer = verrou
        .start_totp_enrollment(user, user.as_str(), &ctx)
        .await?;
    let secret = TotpSecret::from_base32(offer.secret_base32().expose_secret())
        .map_err(crate::error::InputError::from)?;
    let code = insecure_code_at(&secret, offer.params(), verrou.clock().now()?);
    match verrou.finish_totp_enrollment(user, &code, &ctx).await? {
        EnrollmentOutcome::Confirmed { .. } => Ok(Some(secret)),
        _ => Ok(None),
    }
}

/// Moves the clock one period on and passes the second factor with `secret`'s next code:
/// a fresh [`SecondFactorProof`], or `None` if the code was not accepted.
///
/// # Errors
/// What the service returns.
pub async fn insecure_fresh_proof<S: Store>(
    verrou: &Verrou<S, InsecureManualClock>,
    user: &UserId,
    secret: &TotpSecret,
    params: TotpParams,
) -> Result<Option<SecondFactorProof>, Error> {
    verrou.clock().advance(Duration::from_secs(params.period()));
    let code = insecure_code_at(secret, params, verrou.clock().now()?);
    match verrou
        .verify_totp(user, &code, &ClientContext::unknown())
        .await?
    {
        TotpOutcome::Accepted(accepted) => Ok(Some(accepted.proof)),
        _ => Ok(None),
    }
}

/// Generates a new set of recovery codes with `proof` and returns them as plain strings (the
/// display form), or `None` if the service asked for a fresher second factor.
///
/// # Errors
/// What the service returns.
pub async fn insecure_recovery_codes<S: Store, C: Clock>(
    verrou: &Verrou<S, C>,
    proof: &SecondFactorProof,
) -> Result<Option<Vec<String>>, Error> {
    let outcome = verrou
        .generate_recovery_codes(proof, &ClientContext::unknown())
        .await?;
    Ok(match outcome {
        RecoveryCodesOutcome::Generated(set) => Some(
            set.codes()
                .iter()
                .map(|code| code.expose_secret().to_owned())
                .collect(),
        ),
        _ => None,
    })
}

/// A key ring with one fresh random key named `test`, for stores in tests. The key is lost
/// with the ring: a store reopened with another ring cannot open its secrets.
///
/// # Errors
/// [`crate::KeyRingError::Rng`].
pub fn insecure_key_ring() -> Result<crate::KeyRing, crate::KeyRingError> {
    let key = crate::keyring::generate_key()?;
    crate::KeyRing::new((crate::KeyId::new("test")?, &key), [])
}
