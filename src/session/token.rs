//! Bearer secrets a session hands to the browser: the session token and the short-lived bound
//! cookie. 256 random bits each, Base64url in the cookie, stored only as a SHA-256 hash.

use std::fmt;

use base64ct::{Base64UrlUnpadded, Encoding};
use rand::rngs::SysRng;
use rand::TryRng;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::leaf_errors::CryptoError;

/// Random bytes in a token: 256 bits.
const TOKEN_BYTES: usize = 32;
/// Length of a token's Base64url form (no padding).
pub(crate) const TOKEN_CHARS: usize = 43;

/// What a token is for; each kind hashes under its own domain, so a session token's hash can
/// never be matched by a bound-cookie value, or the reverse.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum TokenKind {
    Session,
    Bound,
}

impl TokenKind {
    fn domain(self) -> &'static [u8] {
        match self {
            Self::Session => b"verrou session token v1\0",
            Self::Bound => b"verrou bound cookie v1\0",
        }
    }
}

/// A bearer secret for a cookie: 256 bits from the OS CSPRNG, shown as 43 Base64url
/// characters. Zeroized on drop, redacted in `Debug`; only [`TokenHash`] is ever stored.
pub struct SessionToken {
    text: Zeroizing<String>,
    bytes: Zeroizing<[u8; TOKEN_BYTES]>,
}

impl SessionToken {
    /// Draws a fresh token.
    ///
    /// # Errors
    /// [`CryptoError::Rng`] when the OS RNG fails.
    pub(crate) fn generate() -> Result<Self, CryptoError> {
        let mut bytes = Zeroizing::new([0u8; TOKEN_BYTES]);
        SysRng
            .try_fill_bytes(bytes.as_mut())
            .map_err(|_| CryptoError::Rng)?;
        let text = Zeroizing::new(Base64UrlUnpadded::encode_string(bytes.as_ref()));
        Ok(Self { text, bytes })
    }

    /// Parses a cookie value: exactly 43 Base64url characters in canonical form.
    ///
    /// # Errors
    /// [`MalformedToken`] for anything else (the value is never echoed).
    pub fn parse(value: &str) -> Result<Self, MalformedToken> {
        if value.len() != TOKEN_CHARS {
            return Err(MalformedToken);
        }
        let mut bytes = Zeroizing::new([0u8; TOKEN_BYTES]);
        let decoded =
            Base64UrlUnpadded::decode(value, bytes.as_mut()).map_err(|_| MalformedToken)?;
        if decoded.len() != TOKEN_BYTES {
            return Err(MalformedToken);
        }
        // Reject non-canonical encodings (stray low bits in the last character), so one token
        // has exactly one cookie value.
        let mut canonical = Base64UrlUnpadded::encode_string(bytes.as_ref());
        let same = canonical == value;
        canonical.zeroize();
        if !same {
            return Err(MalformedToken);
        }
        Ok(Self {
            text: Zeroizing::new(value.to_owned()),
            bytes,
        })
    }

    /// The cookie value. Handle as a password: send it in a `Set-Cookie` header, never log it.
    pub fn expose_secret(&self) -> &str {
        &self.text
    }

    /// The hash stored for this token as a session token.
    pub(crate) fn hash(&self, kind: TokenKind) -> TokenHash {
        let mut hasher = Sha256::new();
        hasher.update(kind.domain());
        hasher.update(self.bytes.as_ref());
        TokenHash(hasher.finalize().into())
    }
}

/// The same reading as [`SessionToken::expose_secret`], through the trait every other secret
/// verrou hands out is read with.
impl secrecy::ExposeSecret<str> for SessionToken {
    fn expose_secret(&self) -> &str {
        SessionToken::expose_secret(self)
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken([REDACTED])")
    }
}

/// A cookie value that is not a verrou token: wrong length, alphabet or encoding.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
#[error("not a session token: expected 43 Base64url characters")]
#[allow(
    clippy::exhaustive_structs,
    reason = "a unit error with nothing to add"
)]
pub struct MalformedToken;

/// SHA-256 of a token under its kind's domain: what stores keep and look tokens up by. A
/// token carries 256 random bits, so a fast hash suffices — there is nothing to brute-force.
#[derive(Clone, Copy, Eq, Hash, PartialEq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// A digest as it is (stores that keep bytes rather than [`TokenHash::to_hex`]).
    pub const fn from_bytes(digest: [u8; 32]) -> Self {
        Self(digest)
    }

    /// The digest's bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, as SQL stores keep it.
    pub fn to_hex(&self) -> String {
        let mut out = String::with_capacity(64);
        // Writing to a String cannot fail.
        let _ = crate::ids::write_hex(&mut out, &self.0);
        out
    }

    /// Parses [`TokenHash::to_hex`]'s form; `None` for anything else.
    pub fn from_hex(text: &str) -> Option<Self> {
        crate::ids::parse_hex(text).map(Self)
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not secret, but long: the first bytes are enough to tell hashes apart in a test.
        let [a, b, c, d, ..] = self.0;
        write!(f, "TokenHash({a:02x}{b:02x}{c:02x}{d:02x}…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_differ() {
        let token = SessionToken::generate().unwrap();
        assert_eq!(token.expose_secret().len(), TOKEN_CHARS);
        let parsed = SessionToken::parse(token.expose_secret()).unwrap();
        assert!(parsed.hash(TokenKind::Session) == token.hash(TokenKind::Session));
        let other = SessionToken::generate().unwrap();
        assert!(other.hash(TokenKind::Session) != token.hash(TokenKind::Session));
    }

    #[test]
    fn kinds_hash_apart() {
        let token = SessionToken::generate().unwrap();
        assert!(token.hash(TokenKind::Session) != token.hash(TokenKind::Bound));
    }

    #[test]
    fn malformed_values_are_refused() {
        let token = SessionToken::generate().unwrap();
        let good = token.expose_secret().to_owned();
        // The last character carries 4 bits of data and 2 unused bits: flipping its lowest
        // bit gives another spelling of the same bytes.
        const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = ALPHABET.find(&good[42..]).unwrap();
        let non_canonical = format!("{}{}", &good[..42], &ALPHABET[(last ^ 1)..=(last ^ 1)]);
        let too_long = format!("{good}A");
        let padded = format!("{}=", &good[..42]);
        for bad in [
            "",
            &good[..42],
            &too_long,
            &padded,
            &good.replace(['-', '_'], "+"),
            &"é".repeat(21),
        ] {
            if bad == good {
                continue;
            }
            assert_eq!(
                SessionToken::parse(bad).err(),
                Some(MalformedToken),
                "{bad:?}"
            );
        }
        assert_eq!(
            SessionToken::parse(&non_canonical).err(),
            Some(MalformedToken)
        );
    }

    #[test]
    fn debug_is_redacted_and_hex_round_trips() {
        let token = SessionToken::generate().unwrap();
        assert_eq!(format!("{token:?}"), "SessionToken([REDACTED])");
        let hash = token.hash(TokenKind::Session);
        assert_eq!(TokenHash::from_hex(&hash.to_hex()), Some(hash));
        assert_eq!(TokenHash::from_hex(&hash.to_hex().to_uppercase()), None);
        assert_eq!(TokenHash::from_hex("00"), None);
    }
}
