//! Device-binding proofs: the ES256 JWT a DBSC browser (or verrou's WebCrypto fallback script)
//! signs over a server challenge with a key that never leaves the device.
//!
//! Parsing is strict and total: every malformed input is a typed [`ProofError`], never a
//! panic. Only ES256 is accepted (`none`, `HS256`, `RS256`, … are refused before any key is
//! looked at), the key must be an uncompressed P-256 point on the curve, and the signature is
//! the JOSE form (64 bytes, r‖s).

use std::fmt;

use base64ct::{Base64UrlUnpadded, Encoding};
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use serde::de::IgnoredAny;
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

/// The longest proof accepted, in bytes: a real one is about 600.
pub const MAX_PROOF_LEN: usize = 8 * 1024;
/// The only algorithm accepted.
pub const ALGORITHM: &str = "ES256";
/// The JWT type DBSC proofs carry.
pub const PROOF_TYPE: &str = "dbsc+jwt";

/// Why a proof was refused. Carries no part of the proof.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// Empty, longer than [`MAX_PROOF_LEN`], or not three dot-separated parts.
    #[error("the proof is not a compact JWT")]
    Malformed,
    /// A part is not unpadded Base64url.
    #[error("a part of the proof is not Base64url")]
    Base64,
    /// The header or payload is not the JSON object expected (including duplicate members).
    #[error("the proof's header or payload is not valid JSON of the expected shape")]
    Json,
    /// The algorithm is not ES256 (`none`, HMAC and RSA are refused).
    #[error("the proof's algorithm is not ES256")]
    Algorithm,
    /// The `typ` is present and is not `dbsc+jwt`.
    #[error("the proof's type is not dbsc+jwt")]
    Type,
    /// No key, or a key that is not a public P-256 point on the curve.
    #[error("the proof's key is missing or not a P-256 public key")]
    Key,
    /// The signature is not 64 bytes, or does not verify with the key it must verify with.
    #[error("the proof's signature does not verify")]
    Signature,
    /// The proof names a key other than the one registered for the session.
    #[error("the proof is signed with another key than the session's")]
    WrongKey,
    /// The challenge (`jti`) is missing or is not one the server issued for this session.
    #[error("the proof's challenge is not the session's")]
    Challenge,
    /// The challenge was issued for this session but has expired or was already used.
    #[error("the proof's challenge is stale or already used")]
    StaleChallenge,
}

impl ProofError {
    /// A short stable name, for logs, metrics and the audit trail.
    pub fn name(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Base64 => "base64",
            Self::Json => "json",
            Self::Algorithm => "algorithm",
            Self::Type => "type",
            Self::Key => "key",
            Self::Signature => "signature",
            Self::WrongKey => "wrong_key",
            Self::Challenge => "challenge",
            Self::StaleChallenge => "stale_challenge",
        }
    }

    /// Every reason, for stores that keep them as codes.
    pub const ALL: [Self; 10] = [
        Self::Malformed,
        Self::Base64,
        Self::Json,
        Self::Algorithm,
        Self::Type,
        Self::Key,
        Self::Signature,
        Self::WrongKey,
        Self::Challenge,
        Self::StaleChallenge,
    ];
}

/// A device's public key: an uncompressed P-256 point, checked to be on the curve.
#[derive(Clone, Copy, Eq, PartialEq)]
pub struct DeviceKey {
    /// Parsed and checked once, when the key is read from a proof or from storage.
    key: VerifyingKey,
}

impl DeviceKey {
    /// A key from its 65-byte SEC1 uncompressed form (`0x04‖x‖y`).
    ///
    /// # Errors
    /// [`ProofError::Key`] unless it is a point on P-256.
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, ProofError> {
        let point: [u8; 65] = bytes.try_into().map_err(|_| ProofError::Key)?;
        if point[0] != 4 {
            return Err(ProofError::Key);
        }
        let key = VerifyingKey::from_sec1_bytes(&point).map_err(|_| ProofError::Key)?;
        Ok(Self { key })
    }

    /// The 65-byte SEC1 uncompressed form.
    pub fn to_sec1(&self) -> [u8; 65] {
        // An uncompressed P-256 point is always 65 bytes; zip rather than a slice copy that
        // could panic.
        let encoded = self.key.to_sec1_point(false);
        let mut point = [0u8; 65];
        point
            .iter_mut()
            .zip(encoded.as_bytes())
            .for_each(|(out, byte)| *out = *byte);
        point
    }

    fn from_jwk(jwk: &Jwk) -> Result<Self, ProofError> {
        if jwk.kty != "EC" || jwk.crv != "P-256" || jwk.d.is_some() {
            return Err(ProofError::Key);
        }
        let mut point = [0u8; 65];
        point[0] = 4;
        let (x, y) = point[1..].split_at_mut(32);
        decode_exact(&jwk.x, x).map_err(|_| ProofError::Key)?;
        decode_exact(&jwk.y, y).map_err(|_| ProofError::Key)?;
        Self::from_sec1(&point)
    }

    fn verify(&self, signing_input: &[u8], signature: &[u8; 64]) -> Result<(), ProofError> {
        let signature = Signature::from_slice(signature).map_err(|_| ProofError::Signature)?;
        self.key
            .verify(signing_input, &signature)
            .map_err(|_| ProofError::Signature)
    }
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [_, a, b, c, d, ..] = self.to_sec1();
        write!(f, "DeviceKey(P-256 {a:02x}{b:02x}{c:02x}{d:02x}…)")
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    jwk: Option<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    crv: String,
    x: String,
    y: String,
    /// A private key has no business in a proof: its presence is refused.
    #[serde(default)]
    d: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(default)]
    jti: Option<String>,
    /// Early DBSC builds sent the key in the payload.
    #[serde(default)]
    key: Option<Jwk>,
}

/// A proof whose shape, algorithm and signature encoding were checked, not yet its signature.
///
/// `Debug` shows the key it carries and whether it names a challenge, never the challenge,
/// the signed bytes or the signature (a logged proof could be replayed while its challenge
/// lives).
pub struct ParsedProof {
    signing_input: Vec<u8>,
    signature: [u8; 64],
    key: Option<DeviceKey>,
    jti: Option<String>,
}

impl fmt::Debug for ParsedProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedProof")
            .field("key", &self.key)
            .field("challenge", &self.jti.as_ref().map(|_| "[REDACTED]"))
            .finish_non_exhaustive()
    }
}

impl ParsedProof {
    /// Parses a compact JWS: `base64url(header).base64url(payload).base64url(signature)`.
    ///
    /// # Errors
    /// Each [`ProofError`] names what is wrong.
    pub fn parse(jwt: &str) -> Result<Self, ProofError> {
        if jwt.is_empty() || jwt.len() > MAX_PROOF_LEN {
            return Err(ProofError::Malformed);
        }
        let mut parts = jwt.split('.');
        let (Some(header_part), Some(payload_part), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ProofError::Malformed);
        };
        // The header first: an algorithm other than ES256 is refused before anything else
        // of the token is looked at.
        let header_json = decode_vec(header_part)?;
        let header: Header = serde_json::from_slice(&header_json).map_err(|_| ProofError::Json)?;
        if header.alg != ALGORITHM {
            return Err(ProofError::Algorithm);
        }
        if header.typ.as_deref().is_some_and(|typ| typ != PROOF_TYPE) {
            return Err(ProofError::Type);
        }
        let payload_json = decode_vec(payload_part)?;
        let payload: Payload =
            serde_json::from_slice(&payload_json).map_err(|_| ProofError::Json)?;
        let mut signature_bytes = [0u8; 64];
        decode_exact(signature, &mut signature_bytes).map_err(|error| match error {
            DecodeError::Base64 => ProofError::Base64,
            DecodeError::Length => ProofError::Signature,
        })?;
        let key = match (&header.jwk, &payload.key) {
            (Some(jwk), _) | (None, Some(jwk)) => Some(DeviceKey::from_jwk(jwk)?),
            (None, None) => None,
        };
        let signing_len = header_part.len() + 1 + payload_part.len();
        let signing_input = jwt
            .as_bytes()
            .get(..signing_len)
            .ok_or(ProofError::Malformed)?;
        Ok(Self {
            signing_input: signing_input.to_vec(),
            signature: signature_bytes,
            key,
            jti: payload.jti,
        })
    }

    /// The key the proof carries (registration proofs must carry one).
    pub fn embedded_key(&self) -> Option<DeviceKey> {
        self.key
    }

    /// Verifies the signature with the key the proof carries (registration).
    ///
    /// # Errors
    /// [`ProofError::Key`] if it carries none, [`ProofError::Signature`] if it does not verify.
    pub fn verify_embedded(&self) -> Result<DeviceKey, ProofError> {
        let key = self.key.ok_or(ProofError::Key)?;
        key.verify(&self.signing_input, &self.signature)?;
        Ok(key)
    }

    /// Verifies the signature with the session's registered key (refresh). A proof that
    /// carries a different key is [`ProofError::WrongKey`] whatever its signature.
    ///
    /// # Errors
    /// [`ProofError::WrongKey`] or [`ProofError::Signature`].
    pub fn verify_with(&self, registered: &DeviceKey) -> Result<(), ProofError> {
        if self.key.is_some_and(|key| key != *registered) {
            return Err(ProofError::WrongKey);
        }
        registered
            .verify(&self.signing_input, &self.signature)
            .map_err(|_| ProofError::WrongKey)
    }

    /// Whether the proof's `jti` is `challenge` (constant time in the challenge's content).
    pub fn answers(&self, challenge: &str) -> bool {
        self.jti
            .as_deref()
            .is_some_and(|jti| bool::from(jti.as_bytes().ct_eq(challenge.as_bytes())))
    }
}

enum DecodeError {
    Base64,
    Length,
}

fn decode_vec(part: &str) -> Result<Vec<u8>, ProofError> {
    Base64UrlUnpadded::decode_vec(part).map_err(|_| ProofError::Base64)
}

fn decode_exact(part: &str, out: &mut [u8]) -> Result<(), DecodeError> {
    let decoded = Base64UrlUnpadded::decode_vec(part).map_err(|_| DecodeError::Base64)?;
    if decoded.len() != out.len() {
        return Err(DecodeError::Length);
    }
    out.copy_from_slice(&decoded);
    Ok(())
}
