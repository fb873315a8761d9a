//! The TOTP shared secret: drawn from the OS CSPRNG, zeroized on drop, never printed.
//!
//! # Import rules (Base32, RFC 4648)
//! [`TotpSecret::from_base32`] accepts upper- or lowercase letters `A–Z`, digits `2–7`,
//! ASCII spaces anywhere (apps group secrets in fours) and trailing `=` padding. Anything
//! else (other whitespace, `=` inside the text, non-ASCII, the Base32hex alphabet) is an
//! error, as is a secret under 128 bits or over 512 bits. Error messages give the position
//! of a bad character, never the character or the secret.

use std::fmt;
use std::sync::Arc;

use rand::rngs::SysRng;
use rand::TryRng;
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

pub use crate::leaf_errors::SecretParseError;
use crate::leaf_errors::{ConfigError, CryptoError};

const ALPHABET: base32::Alphabet = base32::Alphabet::Rfc4648 { padding: false };

/// A TOTP shared secret.
///
/// `Debug` prints `TotpSecret([REDACTED])`; there is no `Display`, no `Serialize`. Clones
/// share one allocation, whose bytes are wiped when the last clone is dropped.
pub struct TotpSecret(Arc<SecretSlice<u8>>);

impl TotpSecret {
    /// The minimum length in bytes (128 bits, RFC 4226 §4 R6).
    pub const MIN_LEN: usize = 16;
    /// The default length in bytes (160 bits, the length RFC 4226 recommends).
    pub const DEFAULT_LEN: usize = 20;
    /// The maximum length in bytes (512 bits, a full HMAC-SHA-512 block is 128 bytes but no
    /// authenticator app needs more than 64).
    pub const MAX_LEN: usize = 64;
    /// The longest Base32 text [`TotpSecret::from_base32`] looks at, spaces and padding
    /// included.
    pub const MAX_BASE32_INPUT: usize = 256;

    /// Draws a new secret of [`TotpSecret::DEFAULT_LEN`] bytes from the OS CSPRNG.
    ///
    /// # Errors
    /// [`CryptoError::Rng`] if the operating system's generator fails.
    pub fn generate() -> Result<Self, CryptoError> {
        Self::generate_bytes(Self::DEFAULT_LEN)
    }

    /// Draws a new secret of `len` bytes from the OS CSPRNG.
    ///
    /// # Errors
    /// [`ConfigError::SecretLength`] outside `MIN_LEN..=MAX_LEN`; [`CryptoError::Rng`] if
    /// the operating system's generator fails.
    pub fn generate_with_len(len: usize) -> Result<Self, crate::error::Error> {
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) {
            return Err(ConfigError::SecretLength {
                min: Self::MIN_LEN,
                max: Self::MAX_LEN,
            }
            .into());
        }
        Ok(Self::generate_bytes(len)?)
    }

    fn generate_bytes(len: usize) -> Result<Self, CryptoError> {
        let mut bytes = Zeroizing::new(vec![0u8; len]);
        SysRng
            .try_fill_bytes(&mut bytes)
            .map_err(|_| CryptoError::Rng)?;
        Ok(Self(Arc::new(SecretSlice::from(bytes.to_vec()))))
    }

    /// Wraps raw secret bytes (for stores and key-ring decryption).
    ///
    /// # Errors
    /// [`SecretParseError::TooShort`] / [`SecretParseError::TooLong`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SecretParseError> {
        check_len(bytes.len())?;
        Ok(Self(Arc::new(SecretSlice::from(bytes.to_vec()))))
    }

    /// Imports a Base32 secret typed or pasted by a person; see the module docs for the rules.
    ///
    /// # Errors
    /// A [`SecretParseError`] naming the rule that was broken.
    pub fn from_base32(text: &str) -> Result<Self, SecretParseError> {
        if text.len() > Self::MAX_BASE32_INPUT {
            return Err(SecretParseError::TooLong);
        }
        let mut normalized = Zeroizing::new(Vec::with_capacity(text.len()));
        let mut padding_started = false;
        for (position, byte) in text.bytes().enumerate() {
            match byte {
                b' ' => {}
                b'=' => padding_started = true,
                b'A'..=b'Z' | b'2'..=b'7' if !padding_started => normalized.push(byte),
                b'a'..=b'z' if !padding_started => normalized.push(byte.to_ascii_uppercase()),
                _ if padding_started && byte.is_ascii_alphanumeric() => {
                    return Err(SecretParseError::MisplacedPadding { position })
                }
                _ => return Err(SecretParseError::InvalidCharacter { position }),
            }
        }
        if normalized.is_empty() {
            return Err(SecretParseError::Empty);
        }
        // RFC 4648 §6: 1, 3 or 6 characters in a final quantum cannot encode whole bytes.
        if matches!(normalized.len() % 8, 1 | 3 | 6) {
            return Err(SecretParseError::InvalidLength);
        }
        let decoded = std::str::from_utf8(&normalized)
            .ok()
            .and_then(|ascii| base32::decode(ALPHABET, ascii))
            .map(Zeroizing::new)
            .ok_or(SecretParseError::InvalidLength)?;
        Self::from_bytes(&decoded)
    }

    /// The secret in Base32 (RFC 4648, uppercase, no padding), to show once at enrolment.
    pub fn to_base32(&self) -> SecretString {
        SecretString::from(base32::encode(ALPHABET, self.0.expose_secret()))
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.expose_secret().len()
    }

    /// Always false: a secret has at least [`TotpSecret::MIN_LEN`] bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The raw bytes. Only the code computation and the key ring read them.
    pub(crate) fn expose_bytes(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

fn check_len(len: usize) -> Result<(), SecretParseError> {
    if len < TotpSecret::MIN_LEN {
        return Err(SecretParseError::TooShort { bits: len * 8 });
    }
    if len > TotpSecret::MAX_LEN {
        return Err(SecretParseError::TooLong);
    }
    Ok(())
}

impl Clone for TotpSecret {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret([REDACTED])")
    }
}

/// Constant-time equality.
impl PartialEq for TotpSecret {
    fn eq(&self, other: &Self) -> bool {
        self.expose_bytes().ct_eq(other.expose_bytes()).into()
    }
}

impl Eq for TotpSecret {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_160_bits_and_distinct() {
        let a = TotpSecret::generate().unwrap();
        let b = TotpSecret::generate().unwrap();
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
        assert!(TotpSecret::generate_with_len(15).is_err());
        assert_eq!(TotpSecret::generate_with_len(16).unwrap().len(), 16);
        assert!(TotpSecret::generate_with_len(65).is_err());
    }

    #[test]
    fn base32_round_trip() {
        let secret = TotpSecret::generate().unwrap();
        let text = secret.to_base32();
        assert_eq!(text.expose_secret().len(), 32);
        assert!(!text.expose_secret().contains('='));
        assert_eq!(
            TotpSecret::from_base32(text.expose_secret()).unwrap(),
            secret
        );
    }

    #[test]
    fn import_accepts_lowercase_spaces_and_padding() {
        // "12345678901234567890" in Base32.
        let canonical = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        let expected = TotpSecret::from_bytes(b"12345678901234567890").unwrap();
        for form in [
            canonical,
            "gezdgnbvgy3tqojqgezdgnbvgy3tqojq",
            "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ",
            " gezd gnbv gy3t qojq gezd gnbv gy3t qojq ",
        ] {
            assert_eq!(TotpSecret::from_base32(form).unwrap(), expected, "{form}");
        }
        // 16 bytes = 26 characters, padded to 32.
        let sixteen = TotpSecret::from_bytes(&[7u8; 16]).unwrap();
        let unpadded = sixteen.to_base32().expose_secret().to_owned();
        let padded = format!("{unpadded}======");
        assert_eq!(TotpSecret::from_base32(&padded).unwrap(), sixteen);
    }

    #[test]
    fn import_rejects_foreign_characters() {
        let cases = [
            ("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ1", 31), // '1' is not Base32
            ("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ8", 31),
            ("GEZDGNBV\tGY3TQOJQGEZDGNBVGY3TQOJQ", 8),
            ("GEZDGNBV\nGY3TQOJQGEZDGNBVGY3TQOJQ", 8),
            ("GEZDGNBV-GY3TQOJQGEZDGNBVGY3TQOJQ", 8),
            ("ÉEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 0),
            ("GEZDGNBVGY3TQOJQ\u{3000}GEZDGNBVGY3TQOJQ", 16),
        ];
        for (input, position) in cases {
            assert_eq!(
                TotpSecret::from_base32(input),
                Err(SecretParseError::InvalidCharacter { position }),
                "{input:?}"
            );
        }
        assert_eq!(
            TotpSecret::from_base32("GEZDGNBV==GY3TQOJQGEZDGNBVGY3TQOJQ"),
            Err(SecretParseError::MisplacedPadding { position: 10 })
        );
    }

    #[test]
    fn import_rejects_short_long_and_empty() {
        assert_eq!(
            TotpSecret::from_base32("JBSWY3DPEHPK3PXP"),
            Err(SecretParseError::TooShort { bits: 80 })
        );
        assert_eq!(TotpSecret::from_base32(""), Err(SecretParseError::Empty));
        assert_eq!(
            TotpSecret::from_base32("  == "),
            Err(SecretParseError::Empty)
        );
        assert_eq!(
            TotpSecret::from_base32(&"A".repeat(257)),
            Err(SecretParseError::TooLong)
        );
        assert_eq!(
            TotpSecret::from_base32(&"A".repeat(160)),
            Err(SecretParseError::TooLong)
        );
        assert_eq!(
            TotpSecret::from_base32(&"A".repeat(27)),
            Err(SecretParseError::InvalidLength)
        );
    }

    #[test]
    fn debug_and_errors_never_show_the_secret() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890").unwrap();
        let shown = format!("{secret:?}");
        assert_eq!(shown, "TotpSecret([REDACTED])");
        let err = TotpSecret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ!").unwrap_err();
        let message = format!("{err} {err:?}");
        assert!(!message.contains("GEZDGNBV"), "{message}");
        assert!(!message.contains('!'), "{message}");
    }
}
