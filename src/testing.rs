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
pub async fn insecure_enroll<S: Store>(
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
    proof: SecondFactorProof,
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

/// A device key, as a DBSC browser (or verrou's WebCrypto fallback) holds one: signs ES256
/// proofs over server challenges. Plays the browser in tests.
pub struct InsecureDevice {
    key: p256::ecdsa::SigningKey,
}

impl std::fmt::Debug for InsecureDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InsecureDevice")
    }
}

impl InsecureDevice {
    /// A fresh random key.
    ///
    /// # Errors
    /// [`crate::CryptoError::Rng`] if the OS RNG fails.
    pub fn generate() -> Result<Self, crate::CryptoError> {
        use rand::TryRng as _;
        loop {
            let mut scalar = zeroize::Zeroizing::new([0u8; 32]);
            rand::rngs::SysRng
                .try_fill_bytes(scalar.as_mut())
                .map_err(|_| crate::CryptoError::Rng)?;
            // A random 256-bit value is a valid scalar except with probability ~2^-32.
            if let Ok(key) = p256::ecdsa::SigningKey::from_slice(scalar.as_ref()) {
                return Ok(Self { key });
            }
        }
    }

    /// The public key as a JWK object (`kty`, `crv`, `x`, `y`).
    pub fn jwk(&self) -> serde_json::Value {
        use base64ct::{Base64UrlUnpadded, Encoding as _};
        let point = self.key.verifying_key().to_sec1_point(false);
        let bytes = point.as_bytes();
        let (x, y) = bytes
            .get(1..33)
            .zip(bytes.get(33..65))
            .unwrap_or((&[], &[]));
        serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "x": Base64UrlUnpadded::encode_string(x),
            "y": Base64UrlUnpadded::encode_string(y),
        })
    }

    /// A registration proof, as the DBSC draft describes: header `alg` ES256, `typ`
    /// `dbsc+jwt`, the public key as `jwk`; payload `jti` = the challenge.
    pub fn registration_proof(&self, challenge: &str) -> String {
        let header = serde_json::json!({"alg": "ES256", "typ": "dbsc+jwt", "jwk": self.jwk()});
        self.sign(&header, &serde_json::json!({ "jti": challenge }))
    }

    /// A refresh proof: signed with the registered key, without the key in the header.
    pub fn refresh_proof(&self, challenge: &str) -> String {
        let header = serde_json::json!({"alg": "ES256", "typ": "dbsc+jwt"});
        self.sign(&header, &serde_json::json!({ "jti": challenge }))
    }

    /// Any header and payload, signed with this key (JOSE r‖s signature).
    pub fn sign(&self, header: &serde_json::Value, payload: &serde_json::Value) -> String {
        self.sign_raw(
            header.to_string().as_bytes(),
            payload.to_string().as_bytes(),
        )
    }

    /// Raw header and payload bytes (for malformed-JSON tests), signed with this key.
    pub fn sign_raw(&self, header: &[u8], payload: &[u8]) -> String {
        use base64ct::{Base64UrlUnpadded, Encoding as _};
        use p256::ecdsa::signature::Signer as _;
        let input = format!(
            "{}.{}",
            Base64UrlUnpadded::encode_string(header),
            Base64UrlUnpadded::encode_string(payload)
        );
        let signature: p256::ecdsa::Signature = self.key.sign(input.as_bytes());
        format!(
            "{input}.{}",
            Base64UrlUnpadded::encode_string(&signature.to_bytes())
        )
    }
}
