//! Identifiers: the portal's user id and verrou's factor id.

use std::fmt;
use std::sync::Arc;

use rand::rngs::SysRng;
use rand::TryRng;

use crate::error::{CryptoError, InputError};

/// The portal's identifier for a user: 1 to 256 bytes, no control characters. Cheap to
/// clone (shared).
///
/// It is not secret and appears in audit events. Use a stable internal id rather than an
/// e-mail address where the audit trail should not hold personal data.
#[derive(Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct UserId(Arc<str>);

impl UserId {
    /// Longest accepted user id, in bytes.
    pub const MAX_LEN: usize = 256;

    /// Validates and wraps a user id.
    ///
    /// # Errors
    /// [`InputError::UserId`] when empty, longer than [`UserId::MAX_LEN`] bytes, or
    /// containing control characters.
    pub fn new(id: impl AsRef<str>) -> Result<Self, InputError> {
        let id = id.as_ref();
        if id.is_empty() || id.len() > Self::MAX_LEN || id.chars().any(char::is_control) {
            return Err(InputError::UserId { max: Self::MAX_LEN });
        }
        Ok(Self(id.into()))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A random 128-bit identifier of one TOTP factor, as 32 lowercase hex characters.
///
/// A new factor id is drawn for every enrolment, so a re-enrolled factor never shares an id
/// (or its used time steps) with the one it replaces.
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct FactorId([u8; 16]);

impl FactorId {
    /// Draws a fresh factor id from the operating system's CSPRNG.
    ///
    /// # Errors
    /// [`CryptoError::Rng`] when the OS RNG fails.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut bytes = [0u8; 16];
        SysRng
            .try_fill_bytes(&mut bytes)
            .map_err(|_| CryptoError::Rng)?;
        Ok(Self(bytes))
    }

    /// Parses the 32-character lowercase hex form (as stored by SQL backends).
    ///
    /// # Errors
    /// [`InputError::FactorId`] for anything else.
    pub fn parse(text: &str) -> Result<Self, InputError> {
        let bytes = text.as_bytes();
        if bytes.len() != 32 {
            return Err(InputError::FactorId);
        }
        let mut out = [0u8; 16];
        for (byte, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let (hi, lo) = match pair {
                [hi, lo] => (hex_value(*hi), hex_value(*lo)),
                _ => (None, None),
            };
            match (hi, lo) {
                (Some(hi), Some(lo)) => *byte = (hi << 4) | lo,
                _ => return Err(InputError::FactorId),
            }
        }
        Ok(Self(out))
    }

    /// The raw 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for FactorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_id_rules() {
        assert!(UserId::new("alice").is_ok());
        assert!(UserId::new("élodie@partner.example").is_ok());
        assert!(UserId::new("").is_err());
        assert!(UserId::new("a\nb").is_err());
        assert!(UserId::new("a\u{0}b").is_err());
        assert!(UserId::new("x".repeat(256)).is_ok());
        assert!(UserId::new("x".repeat(257)).is_err());
    }

    #[test]
    fn factor_id_round_trip() {
        let id = FactorId::generate().unwrap();
        assert_eq!(FactorId::parse(&id.to_string()).unwrap(), id);
        assert_ne!(FactorId::generate().unwrap(), id);
    }

    #[test]
    fn factor_id_rejects_malformed() {
        for bad in [
            "",
            "00",
            &"g".repeat(32),
            &"A".repeat(32),
            &"0".repeat(33),
            "ü",
        ] {
            assert_eq!(FactorId::parse(bad), Err(InputError::FactorId), "{bad:?}");
        }
    }
}
