//! Recovery codes: a way back in for a user who lost the phone, that is not a weaker door.
//!
//! # Format
//! 16 characters from Crockford's Base32 alphabet (`0–9`, `A–Z` without `I L O U`, so no two
//! characters look alike), shown in four groups: `7K3M-Q9XD-2HJW-R4TN`. The first group is a
//! **lookup** (20 bits, not secret: it finds the one stored hash to check, so an attempt
//! costs one argon2 verification however many codes are stored); the other twelve characters
//! are the **secret**: 60 bits from the OS CSPRNG.
//!
//! # Input
//! Case-insensitive; ASCII spaces and hyphens are ignored anywhere; `O` is read as `0` and
//! `I`/`L` as `1` (Crockford's decoding, for codes read aloud or copied by hand). Anything
//! else — `U`, punctuation, other whitespace, non-ASCII, more than
//! [`RecoveryCodeInput::MAX_INPUT_LEN`] bytes, or not exactly 16 characters — is a
//! [`MalformedRecoveryCode`], decided before any hashing.

mod hash;

use std::fmt;

use rand::rngs::SysRng;
use rand::TryRng;
use secrecy::SecretString;
use zeroize::{Zeroize, Zeroizing};

pub(crate) use self::hash::{dummy_hash, hash_code, verify_code, ArgonMemory};
pub use self::hash::{validate_stored_hash, HashParams, StoredHashError};
use crate::leaf_errors::CryptoError;

/// Crockford's Base32 alphabet: no I, L, O or U.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters in a code.
pub const CODE_LEN: usize = 16;
/// Characters of the non-secret lookup prefix.
pub const LOOKUP_LEN: usize = 4;
/// Bits of secret in a code (the lookup excluded).
pub const SECRET_BITS: usize = (CODE_LEN - LOOKUP_LEN) * 5;
// The floor: at least 60 bits of secret per code, checked at compile time.
const _: () = assert!(SECRET_BITS >= 60);

/// Codes in a set by default.
pub const DEFAULT_SET_SIZE: usize = 10;

/// A recovery code's lookup prefix: 4 Crockford characters, not secret.
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct Lookup([u8; LOOKUP_LEN]);

impl Lookup {
    /// Parses the 4-character stored form.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes: [u8; LOOKUP_LEN] = text.as_bytes().try_into().ok()?;
        bytes
            .iter()
            .all(|b| ALPHABET.contains(b))
            .then_some(Self(bytes))
    }

    /// The 4 characters.
    pub fn as_str(&self) -> &str {
        // Only alphabet (ASCII) bytes are ever stored.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for Lookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A syntactically valid recovery code typed by a user. Wiped on drop, never printed.
pub struct RecoveryCodeInput {
    chars: [u8; CODE_LEN],
}

/// Why an input is not a recovery code. Never contains the input.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MalformedRecoveryCode {
    /// More than [`RecoveryCodeInput::MAX_INPUT_LEN`] bytes.
    #[error("the recovery code is far too long")]
    Oversize,
    /// A character outside the alphabet, spaces and hyphens.
    #[error("the recovery code has a character that is not allowed")]
    InvalidCharacter,
    /// Not 16 characters once spaces and hyphens are removed.
    #[error("the recovery code has the wrong number of characters")]
    WrongLength,
}

impl RecoveryCodeInput {
    /// The longest input looked at, in bytes.
    pub const MAX_INPUT_LEN: usize = 64;

    /// Parses a typed recovery code (see the module docs for the rules).
    ///
    /// # Errors
    /// A [`MalformedRecoveryCode`] reason.
    pub fn parse(input: &str) -> Result<Self, MalformedRecoveryCode> {
        if input.len() > Self::MAX_INPUT_LEN {
            return Err(MalformedRecoveryCode::Oversize);
        }
        let mut chars = [0u8; CODE_LEN];
        let mut len = 0usize;
        for byte in input.bytes() {
            let normalized = match byte.to_ascii_uppercase() {
                b' ' | b'-' => continue,
                b'O' => b'0',
                b'I' | b'L' => b'1',
                other if ALPHABET.contains(&other) => other,
                _ => {
                    chars.zeroize();
                    return Err(MalformedRecoveryCode::InvalidCharacter);
                }
            };
            let Some(slot) = chars.get_mut(len) else {
                chars.zeroize();
                return Err(MalformedRecoveryCode::WrongLength);
            };
            *slot = normalized;
            len += 1;
        }
        if len != CODE_LEN {
            chars.zeroize();
            return Err(MalformedRecoveryCode::WrongLength);
        }
        Ok(Self { chars })
    }

    /// The lookup prefix.
    pub fn lookup(&self) -> Lookup {
        let mut lookup = [0u8; LOOKUP_LEN];
        lookup.copy_from_slice(self.chars.get(..LOOKUP_LEN).unwrap_or(&[0; LOOKUP_LEN]));
        Lookup(lookup)
    }

    /// The normalised 16 characters (what is hashed).
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.chars
    }
}

impl Drop for RecoveryCodeInput {
    fn drop(&mut self) {
        self.chars.zeroize();
    }
}

impl fmt::Debug for RecoveryCodeInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCodeInput([REDACTED])")
    }
}

/// A freshly generated code: its normalised characters and its display form.
pub(crate) struct GeneratedCode {
    pub(crate) input: RecoveryCodeInput,
    pub(crate) display: SecretString,
}

/// Draws `count` codes with distinct lookups from the OS CSPRNG.
pub(crate) fn generate(count: usize) -> Result<Vec<GeneratedCode>, CryptoError> {
    let mut codes: Vec<GeneratedCode> = Vec::with_capacity(count);
    while codes.len() < count {
        let mut random = Zeroizing::new([0u8; CODE_LEN]);
        SysRng
            .try_fill_bytes(random.as_mut())
            .map_err(|_| CryptoError::Rng)?;
        let mut chars = [0u8; CODE_LEN];
        for (char, byte) in chars.iter_mut().zip(random.iter()) {
            // 256 is a multiple of 32: every character is uniform.
            *char = ALPHABET
                .get(usize::from(byte & 31))
                .copied()
                .unwrap_or(b'0');
        }
        let input = RecoveryCodeInput { chars };
        if codes
            .iter()
            .any(|code| code.input.lookup() == input.lookup())
        {
            continue;
        }
        let mut display = Zeroizing::new(String::with_capacity(CODE_LEN + 3));
        for (index, char) in input.chars.iter().enumerate() {
            if index > 0 && index % 4 == 0 {
                display.push('-');
            }
            display.push(char::from(*char));
        }
        codes.push(GeneratedCode {
            input,
            display: SecretString::from(display.as_str()),
        });
    }
    Ok(codes)
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn generated_codes_are_grouped_distinct_and_parse_back() {
        let codes = generate(DEFAULT_SET_SIZE).unwrap();
        assert_eq!(codes.len(), 10);
        for code in &codes {
            let shown = code.display.expose_secret();
            assert_eq!(shown.len(), 19);
            assert_eq!(shown.matches('-').count(), 3);
            assert!(shown.bytes().all(|b| b == b'-' || ALPHABET.contains(&b)));
            let parsed = RecoveryCodeInput::parse(shown).unwrap();
            assert_eq!(parsed.as_bytes(), code.input.as_bytes());
        }
        let mut lookups: Vec<_> = codes.iter().map(|c| c.input.lookup()).collect();
        lookups.sort();
        lookups.dedup();
        assert_eq!(lookups.len(), 10);
    }

    #[test]
    fn input_is_case_insensitive_and_ignores_separators_and_lookalikes() {
        let canonical = RecoveryCodeInput::parse("7K3M-Q9XD-2HJW-R4T0").unwrap();
        for form in [
            "7k3m-q9xd-2hjw-r4t0",
            "7K3M Q9XD 2HJW R4T0",
            " 7K3MQ9XD2HJWR4T0 ",
            "7K3M--Q9XD  2HJW-R4TO", // O read as 0
        ] {
            assert_eq!(
                RecoveryCodeInput::parse(form).unwrap().as_bytes(),
                canonical.as_bytes(),
                "{form}"
            );
        }
        let ones = RecoveryCodeInput::parse("1111-1111-1111-1111").unwrap();
        assert_eq!(
            RecoveryCodeInput::parse("IiLl-1111-1111-1111")
                .unwrap()
                .as_bytes(),
            ones.as_bytes()
        );
        assert_eq!(canonical.lookup().as_str(), "7K3M");
    }

    #[test]
    fn malformed_inputs_are_typed() {
        for input in [
            "7K3M-Q9XD-2HJW-R4TU",
            "7K3M_Q9XD-2HJW-R4T0",
            "7K3M\tQ9XD-2HJW-R4T0",
            "７K3M-Q9XD-2HJW-R4T0",
            "7K3M.Q9XD-2HJW-R4T0",
        ] {
            assert_eq!(
                RecoveryCodeInput::parse(input).unwrap_err(),
                MalformedRecoveryCode::InvalidCharacter,
                "{input:?}"
            );
        }
        for input in ["", "7K3M-Q9XD-2HJW", "7K3M-Q9XD-2HJW-R4T0-0"] {
            assert_eq!(
                RecoveryCodeInput::parse(input).unwrap_err(),
                MalformedRecoveryCode::WrongLength,
                "{input:?}"
            );
        }
        assert_eq!(
            RecoveryCodeInput::parse(&"-".repeat(65)).unwrap_err(),
            MalformedRecoveryCode::Oversize
        );
    }

    #[test]
    fn debug_is_redacted() {
        let code = RecoveryCodeInput::parse("7K3M-Q9XD-2HJW-R4T0").unwrap();
        assert_eq!(format!("{code:?}"), "RecoveryCodeInput([REDACTED])");
    }
}
