//! Secrets at rest: TOTP secrets sealed with XChaCha20-Poly1305 under a key ring.
//!
//! A TOTP secret is a shared secret: whoever reads it can mint codes. Persistent stores keep
//! only the sealed blob, under a key that lives outside the database. The ring has one
//! *active* key, used to seal, and any number of older keys, used only to open blobs sealed
//! before a rotation.
//!
//! # Blob format (version 1)
//! ```text
//! 0x01 | n: u8 | key id: n ASCII bytes | nonce: 24 bytes | ciphertext | tag: 16 bytes
//! ```
//! The associated data binds the blob to its place: the header (version and key id), the
//! user id and the factor id. A blob copied onto another user's or another factor's row, or
//! relabelled with another key id, fails to open.
//!
//! # Configuration format
//! [`KeyRing::from_config`] reads entries separated by newlines or commas, each
//! `<key id>:<standard Base64 of 32 random bytes>`; the **first entry is the active key**, the
//! others only open older blobs. Blank entries and lines starting with `#` are skipped. For
//! example, in the `VERROU_KEYS` environment variable after a rotation (placeholders, not
//! keys):
//! ```text
//! 2026-11:<base64 of the new key>,2026-01:<base64 of the old key>
//! ```
//! `verrou-admin generate-key <id>` prints a new entry.

use std::fmt;
use std::sync::Arc;

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::rngs::SysRng;
use rand::TryRng;
use zeroize::Zeroizing;

mod config;

use crate::ids::{FactorId, UserId};
use crate::secret::TotpSecret;

pub use self::config::{generate_key, KEYS_ENV};

const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Domain separation for the associated data of sealed TOTP secrets.
const AD_DOMAIN: &[u8] = b"verrou/totp-secret/v1\0";

/// The length of a key in bytes (256 bits).
pub const KEY_LEN: usize = 32;

/// Why a key ring could not be built or a blob could not be opened. Never carries key or
/// plaintext material.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyRingError {
    /// A key id is empty, longer than [`KeyId::MAX_LEN`], or has characters other than
    /// ASCII letters, digits, `.`, `_` and `-`.
    #[error(
        "key id must be 1 to {} characters of A-Z a-z 0-9 . _ -",
        KeyId::MAX_LEN
    )]
    InvalidKeyId,
    /// Two keys in the ring share an id.
    #[error("the key ring holds two keys with the same id")]
    DuplicateKeyId,
    /// The blob names a key that is not in the ring (removed too early, or never loaded).
    #[error("the sealed secret needs a key that is not in the key ring")]
    UnknownKey,
    /// The blob is not a sealed secret: too short, or an unknown format version.
    #[error("the sealed secret is malformed")]
    MalformedBlob,
    /// Authentication failed: wrong key, tampered bytes, or a blob moved to another user or
    /// factor.
    #[error("the sealed secret failed authentication (wrong key, tampered, or moved)")]
    Authentication,
    /// The opened secret is not a usable TOTP secret.
    #[error("the sealed secret decrypted to an unusable TOTP secret")]
    UnusableSecret,
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed")]
    Rng,
    /// The key configuration is malformed: which entry (1-based; 0 for the whole text) and
    /// why. The entry's text is never repeated: it may hold a key.
    #[error("key configuration, entry {entry}: {reason}")]
    Config {
        /// The 1-based entry, or 0 when the configuration as a whole is wrong.
        entry: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The key configuration could not be read (a missing or unreadable file).
    #[error("the key configuration could not be read: {0}")]
    Unreadable(&'static str),
    /// The environment variable that should hold the key configuration is unset or not
    /// UTF-8.
    #[error("the key configuration could not be read: the environment variable {variable} is unset or not UTF-8")]
    Environment {
        /// The variable read.
        variable: String,
    },
    /// The key file can be read or written by other users than its owner (as ssh refuses a
    /// private key file with such permissions).
    #[error("the key file is accessible to group or others (mode {mode:03o}): make it readable by its owner only (chmod 600)")]
    InsecureFile {
        /// The file's permission bits.
        mode: u32,
    },
}

/// The name of a key in the ring, stored in every blob it seals.
#[derive(Clone, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct KeyId(Arc<str>);

impl KeyId {
    /// The longest key id, in bytes.
    pub const MAX_LEN: usize = 32;

    /// Validates a key id: 1 to 32 of `A-Z a-z 0-9 . _ -`.
    ///
    /// # Errors
    /// [`KeyRingError::InvalidKeyId`].
    pub fn new(id: &str) -> Result<Self, KeyRingError> {
        let valid = !id.is_empty()
            && id.len() <= Self::MAX_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if valid {
            Ok(Self(id.into()))
        } else {
            Err(KeyRingError::InvalidKeyId)
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One 256-bit key, wiped on drop.
struct Key {
    id: KeyId,
    cipher: XChaCha20Poly1305,
}

impl Key {
    fn new(id: KeyId, bytes: &[u8; KEY_LEN]) -> Self {
        // By reference: no copy of the key bytes is left behind on the stack.
        let cipher = XChaCha20Poly1305::new(bytes.into());
        Self { id, cipher }
    }
}

/// The keys that seal and open TOTP secrets: one active key and older ones.
///
/// `Debug` lists the key ids only. The ciphers wipe their key schedule on drop. Clones share
/// the keys.
#[derive(Clone)]
pub struct KeyRing {
    /// `keys[0]` is the active key.
    keys: Arc<[Key]>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("active", &self.active_id())
            .field(
                "older",
                &self.keys.iter().skip(1).map(|k| &k.id).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// A ring whose active key is `(id, key)`, with `older` keys kept to open blobs sealed
    /// before a rotation. The caller should wipe its copies of the key bytes.
    ///
    /// # Errors
    /// [`KeyRingError::DuplicateKeyId`] if an id appears twice.
    pub fn new<'a>(
        active: (KeyId, &[u8; KEY_LEN]),
        older: impl IntoIterator<Item = (KeyId, &'a [u8; KEY_LEN])>,
    ) -> Result<Self, KeyRingError> {
        let mut keys = vec![Key::new(active.0, active.1)];
        for (id, bytes) in older {
            if keys.iter().any(|k| k.id == id) {
                return Err(KeyRingError::DuplicateKeyId);
            }
            keys.push(Key::new(id, bytes));
        }
        Ok(Self { keys: keys.into() })
    }

    /// The id of the key that seals.
    pub fn active_id(&self) -> &KeyId {
        // `keys` is never empty: `new` always puts the active key first.
        &self.active().id
    }

    /// The ids of every key in the ring, active first.
    pub fn key_ids(&self) -> impl Iterator<Item = &KeyId> {
        self.keys.iter().map(|k| &k.id)
    }

    fn active(&self) -> &Key {
        #[allow(
            clippy::indexing_slicing,
            reason = "the ring always holds its active key"
        )]
        &self.keys[0]
    }

    /// Seals `secret` for `(user, factor)` under the active key.
    ///
    /// # Errors
    /// [`KeyRingError::Rng`] if no nonce could be drawn.
    pub fn seal(
        &self,
        secret: &TotpSecret,
        user: &UserId,
        factor: &FactorId,
    ) -> Result<Vec<u8>, KeyRingError> {
        let key = self.active();
        let mut nonce = [0u8; NONCE_LEN];
        SysRng
            .try_fill_bytes(&mut nonce)
            .map_err(|_| KeyRingError::Rng)?;
        let id = key.id.as_str().as_bytes();
        let plaintext = secret.expose_bytes();
        let mut blob = Vec::with_capacity(2 + id.len() + NONCE_LEN + plaintext.len() + TAG_LEN);
        blob.push(FORMAT_V1);
        // A KeyId is at most 32 bytes: the length fits a byte.
        blob.push(u8::try_from(id.len()).map_err(|_| KeyRingError::InvalidKeyId)?);
        blob.extend_from_slice(id);
        blob.extend_from_slice(&nonce);
        let header_len = blob.len() - NONCE_LEN;
        let ad = associated_data(blob.get(..header_len).unwrap_or_default(), user, factor);
        // Room for the tag up front: growing the buffer would leave a plaintext copy behind.
        let mut body = Zeroizing::new(Vec::with_capacity(plaintext.len() + TAG_LEN));
        body.extend_from_slice(plaintext);
        key.cipher
            .encrypt_in_place(&XNonce::from(nonce), &ad, &mut *body)
            .map_err(|_| KeyRingError::Authentication)?;
        blob.extend_from_slice(&body);
        Ok(blob)
    }

    /// Opens a blob sealed for `(user, factor)` by any key in the ring.
    ///
    /// # Errors
    /// [`KeyRingError::MalformedBlob`], [`KeyRingError::UnknownKey`],
    /// [`KeyRingError::Authentication`], [`KeyRingError::UnusableSecret`].
    pub fn open(
        &self,
        blob: &[u8],
        user: &UserId,
        factor: &FactorId,
    ) -> Result<TotpSecret, KeyRingError> {
        let parsed = Parsed::from_blob(blob)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id.as_str().as_bytes() == parsed.key_id)
            .ok_or(KeyRingError::UnknownKey)?;
        let ad = associated_data(parsed.header, user, factor);
        let mut body = Zeroizing::new(parsed.body.to_vec());
        key.cipher
            .decrypt_in_place(&XNonce::from(parsed.nonce), &ad, &mut *body)
            .map_err(|_| KeyRingError::Authentication)?;
        TotpSecret::from_bytes(&body).map_err(|_| KeyRingError::UnusableSecret)
    }

    /// The key id a blob was sealed with, if the blob is well-formed: tells whether it needs
    /// re-sealing after a rotation. The id is not authenticated until the blob is opened.
    ///
    /// # Errors
    /// [`KeyRingError::MalformedBlob`].
    pub fn sealed_with(blob: &[u8]) -> Result<KeyId, KeyRingError> {
        let parsed = Parsed::from_blob(blob)?;
        let id = std::str::from_utf8(parsed.key_id).map_err(|_| KeyRingError::MalformedBlob)?;
        KeyId::new(id).map_err(|_| KeyRingError::MalformedBlob)
    }
}

/// A blob split into its parts (nothing checked cryptographically yet).
struct Parsed<'a> {
    header: &'a [u8],
    key_id: &'a [u8],
    nonce: [u8; NONCE_LEN],
    body: &'a [u8],
}

impl<'a> Parsed<'a> {
    fn from_blob(blob: &'a [u8]) -> Result<Self, KeyRingError> {
        let [FORMAT_V1, id_len, rest @ ..] = blob else {
            return Err(KeyRingError::MalformedBlob);
        };
        let id_len = usize::from(*id_len);
        if id_len == 0 || id_len > KeyId::MAX_LEN {
            return Err(KeyRingError::MalformedBlob);
        }
        let (key_id, rest) = rest
            .split_at_checked(id_len)
            .ok_or(KeyRingError::MalformedBlob)?;
        let (nonce, body) = rest
            .split_at_checked(NONCE_LEN)
            .ok_or(KeyRingError::MalformedBlob)?;
        if body.len() < TAG_LEN + TotpSecret::MIN_LEN {
            return Err(KeyRingError::MalformedBlob);
        }
        let nonce = <[u8; NONCE_LEN]>::try_from(nonce).map_err(|_| KeyRingError::MalformedBlob)?;
        let header = blob.get(..2 + id_len).ok_or(KeyRingError::MalformedBlob)?;
        Ok(Self {
            header,
            key_id,
            nonce,
            body,
        })
    }
}

/// Domain, blob header, length-prefixed user id, factor id.
fn associated_data(header: &[u8], user: &UserId, factor: &FactorId) -> Vec<u8> {
    let user = user.as_str().as_bytes();
    let mut ad = Vec::with_capacity(AD_DOMAIN.len() + header.len() + 2 + user.len() + 16);
    ad.extend_from_slice(AD_DOMAIN);
    ad.extend_from_slice(header);
    // A UserId is at most 256 bytes: its length fits two bytes.
    ad.extend_from_slice(&u16::try_from(user.len()).unwrap_or(u16::MAX).to_be_bytes());
    ad.extend_from_slice(user);
    ad.extend_from_slice(factor.as_bytes());
    ad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(active: &str, older: &[&str]) -> KeyRing {
        let key = |id: &str| {
            let mut bytes = [0u8; KEY_LEN];
            for (i, b) in id.bytes().cycle().take(KEY_LEN).enumerate() {
                bytes[i] = b ^ (i as u8);
            }
            bytes
        };
        let older: Vec<_> = older
            .iter()
            .map(|id| (KeyId::new(id).unwrap(), key(id)))
            .collect();
        KeyRing::new(
            (KeyId::new(active).unwrap(), &key(active)),
            older.iter().map(|(id, k)| (id.clone(), k)),
        )
        .unwrap()
    }

    fn fixture() -> (TotpSecret, UserId, FactorId) {
        (
            TotpSecret::generate().unwrap(),
            UserId::new("alice").unwrap(),
            FactorId::generate().unwrap(),
        )
    }

    #[test]
    fn round_trip_and_no_plaintext_in_the_blob() {
        let (secret, user, factor) = fixture();
        let keys = ring("k1", &[]);
        let blob = keys.seal(&secret, &user, &factor).unwrap();
        assert_eq!(keys.open(&blob, &user, &factor).unwrap(), secret);
        let plain = secret.expose_bytes();
        assert!(!blob.windows(plain.len()).any(|w| w == plain));
        assert_eq!(KeyRing::sealed_with(&blob).unwrap().as_str(), "k1");
    }

    #[test]
    fn two_seals_differ() {
        let (secret, user, factor) = fixture();
        let keys = ring("k1", &[]);
        assert_ne!(
            keys.seal(&secret, &user, &factor).unwrap(),
            keys.seal(&secret, &user, &factor).unwrap()
        );
    }

    #[test]
    fn every_flipped_bit_is_refused() {
        let (secret, user, factor) = fixture();
        let keys = ring("k1", &[]);
        let blob = keys.seal(&secret, &user, &factor).unwrap();
        for i in 0..blob.len() * 8 {
            let mut bad = blob.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(keys.open(&bad, &user, &factor).is_err(), "bit {i}");
        }
    }

    #[test]
    fn moved_blobs_are_refused() {
        let (secret, user, factor) = fixture();
        let keys = ring("k1", &[]);
        let blob = keys.seal(&secret, &user, &factor).unwrap();
        let bob = UserId::new("bob").unwrap();
        let other = FactorId::generate().unwrap();
        assert_eq!(
            keys.open(&blob, &bob, &factor),
            Err(KeyRingError::Authentication)
        );
        assert_eq!(
            keys.open(&blob, &user, &other),
            Err(KeyRingError::Authentication)
        );
    }

    #[test]
    fn truncated_and_foreign_blobs_are_malformed() {
        let (secret, user, factor) = fixture();
        let keys = ring("k1", &[]);
        let blob = keys.seal(&secret, &user, &factor).unwrap();
        for len in 0..blob.len() {
            assert!(
                keys.open(&blob[..len], &user, &factor).is_err(),
                "len {len}"
            );
        }
        assert_eq!(
            keys.open(b"JBSWY3DPEHPK3PXP", &user, &factor),
            Err(KeyRingError::MalformedBlob)
        );
        assert_eq!(
            keys.open(&[], &user, &factor),
            Err(KeyRingError::MalformedBlob)
        );
    }

    #[test]
    fn wrong_and_unknown_keys_are_told_apart() {
        let (secret, user, factor) = fixture();
        let blob = ring("k1", &[]).seal(&secret, &user, &factor).unwrap();
        assert_eq!(
            ring("k2", &[]).open(&blob, &user, &factor),
            Err(KeyRingError::UnknownKey)
        );
        // Same id, other key bytes: authentication fails.
        let impostor = KeyRing::new((KeyId::new("k1").unwrap(), &[7u8; KEY_LEN]), []).unwrap();
        assert_eq!(
            impostor.open(&blob, &user, &factor),
            Err(KeyRingError::Authentication)
        );
    }

    #[test]
    fn older_keys_open_but_never_seal() {
        let (secret, user, factor) = fixture();
        let old_blob = ring("k1", &[]).seal(&secret, &user, &factor).unwrap();
        let rotated = ring("k2", &["k1"]);
        assert_eq!(rotated.open(&old_blob, &user, &factor).unwrap(), secret);
        let new_blob = rotated.seal(&secret, &user, &factor).unwrap();
        assert_eq!(KeyRing::sealed_with(&new_blob).unwrap().as_str(), "k2");
    }

    #[test]
    fn key_ids_are_validated_and_unique() {
        for bad in ["", "a b", "k\u{e9}", &"x".repeat(33), "k:1"] {
            assert_eq!(KeyId::new(bad), Err(KeyRingError::InvalidKeyId), "{bad:?}");
        }
        let k = [1u8; KEY_LEN];
        let id = KeyId::new("same").unwrap();
        assert_eq!(
            KeyRing::new((id.clone(), &k), [(id, &k)]).err(),
            Some(KeyRingError::DuplicateKeyId)
        );
    }

    #[test]
    fn debug_shows_ids_only() {
        let keys = ring("active-1", &["old-0"]);
        let shown = format!("{keys:?}");
        assert!(shown.contains("active-1") && shown.contains("old-0"));
        assert!(!shown.contains("cipher"));
    }
}
