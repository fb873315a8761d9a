//! The key ring's configuration: reading it from text, the environment or a file, and
//! generating new keys and entries (see the [module documentation](super) for the format).

use rand::rngs::SysRng;
use rand::TryRng;
use zeroize::Zeroizing;

use super::{Key, KeyId, KeyRing, KeyRingError, KEY_LEN};

/// A new random 256-bit key from the OS CSPRNG, for a first ring or a rotation.
///
/// # Errors
/// [`KeyRingError::Rng`].
pub fn generate_key() -> Result<Zeroizing<[u8; KEY_LEN]>, KeyRingError> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    SysRng
        .try_fill_bytes(key.as_mut())
        .map_err(|_| KeyRingError::Rng)?;
    Ok(key)
}

/// The environment variable [`KeyRing::from_env`] reads by default.
pub const KEYS_ENV: &str = "VERROU_KEYS";

impl KeyRing {
    /// Parses a key configuration (see the [module documentation](crate::keyring)).
    ///
    /// # Errors
    /// [`KeyRingError::Config`] naming the entry and the reason, never its text.
    pub fn from_config(text: &str) -> Result<Self, KeyRingError> {
        let config = |entry, reason| KeyRingError::Config { entry, reason };
        let mut keys: Vec<Key> = Vec::new();
        let entries = text
            .split(['\n', ','])
            .map(str::trim)
            .filter(|entry| !entry.is_empty() && !entry.starts_with('#'));
        for (index, entry) in entries.enumerate() {
            let number = index + 1;
            let (id, encoded) = entry
                .split_once(':')
                .ok_or(config(number, "expected <key id>:<base64 key>"))?;
            let id = KeyId::new(id.trim()).map_err(|_| config(number, "invalid key id"))?;
            let key = decode_key(encoded.trim())
                .ok_or(config(number, "the key must be the Base64 of 32 bytes"))?;
            if keys.iter().any(|k| k.id == id) {
                return Err(config(number, "a key id appears twice"));
            }
            keys.push(Key::new(id, &key));
        }
        if keys.is_empty() {
            return Err(config(0, "no key"));
        }
        Ok(Self { keys: keys.into() })
    }

    /// Reads the key configuration from the environment variable `var` (usually
    /// [`KEYS_ENV`]).
    ///
    /// # Security
    /// The variable stays in the process environment, and every child process the portal
    /// starts inherits it. Read it once at start-up, then remove it before any other thread
    /// starts (`std::env::remove_var` is not safe to call while other threads read the
    /// environment), or prefer [`KeyRing::from_file`].
    ///
    /// # Errors
    /// [`KeyRingError::Environment`] naming `var` if it is unset or not UTF-8; what
    /// [`KeyRing::from_config`] returns.
    pub fn from_env(var: &str) -> Result<Self, KeyRingError> {
        let text = Zeroizing::new(std::env::var(var).map_err(|_| KeyRingError::Environment {
            variable: var.to_owned(),
        })?);
        Self::from_config(&text)
    }

    /// Reads the key configuration from a file (one entry per line). On Unix the file must
    /// be accessible to its owner only (mode `600` or `400`), as ssh requires of a private
    /// key: a key file others can read is refused before it is read.
    ///
    /// # Errors
    /// [`KeyRingError::InsecureFile`] for a file group or others can access;
    /// [`KeyRingError::Unreadable`] if it cannot be read; what [`KeyRing::from_config`]
    /// returns.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Self, KeyRingError> {
        use std::io::Read as _;
        let mut file = std::fs::File::open(path)
            .map_err(|_| KeyRingError::Unreadable("the key file cannot be opened"))?;
        // The permissions of the file opened, not of whatever the path names a moment later.
        let metadata = file
            .metadata()
            .map_err(|_| KeyRingError::Unreadable("the key file's metadata cannot be read"))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = metadata.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(KeyRingError::InsecureFile { mode: mode & 0o777 });
            }
        }
        // Sized up front so the text is not reallocated (leaving unwiped copies) as it grows.
        let capacity = usize::try_from(metadata.len())
            .unwrap_or(0)
            .saturating_add(1);
        let mut text = Zeroizing::new(String::with_capacity(capacity));
        file.read_to_string(&mut text)
            .map_err(|_| KeyRingError::Unreadable("the key file cannot be read as UTF-8"))?;
        Self::from_config(&text)
    }

    /// A configuration entry for a new random key: `<id>:<base64>`. For operators creating
    /// or rotating keys; the returned text is the key itself.
    ///
    /// # Errors
    /// [`KeyRingError::Rng`].
    pub fn generate_entry(id: &KeyId) -> Result<Zeroizing<String>, KeyRingError> {
        use base64ct::Encoding as _;
        let key = generate_key()?;
        // 32 bytes are exactly 44 Base64 characters: encoding into 44 cannot fail, and if it
        // did, no key would be handed out.
        let mut buffer = Zeroizing::new([0u8; 44]);
        let encoded = base64ct::Base64::encode(key.as_ref(), buffer.as_mut()).map_err(|_| {
            KeyRingError::Config {
                entry: 0,
                reason: "the key could not be encoded",
            }
        })?;
        Ok(Zeroizing::new(format!("{id}:{encoded}")))
    }
}

/// Decodes a standard-Base64 key of exactly [`KEY_LEN`] bytes (constant-time decoding).
fn decode_key(encoded: &str) -> Option<Zeroizing<[u8; KEY_LEN]>> {
    use base64ct::Encoding as _;
    let mut buffer = Zeroizing::new([0u8; KEY_LEN + 3]);
    let decoded = base64ct::Base64::decode(encoded, buffer.as_mut()).ok()?;
    let key: [u8; KEY_LEN] = decoded.try_into().ok()?;
    Some(Zeroizing::new(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{FactorId, UserId};
    use crate::secret::TotpSecret;

    fn fixture() -> (TotpSecret, UserId, FactorId) {
        (
            TotpSecret::generate().unwrap(),
            UserId::new("alice").unwrap(),
            FactorId::generate().unwrap(),
        )
    }

    #[test]
    fn configuration_first_entry_is_active_and_others_open() {
        let (secret, user, factor) = fixture();
        let old = KeyRing::from_config("old:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
        let blob = old.seal(&secret, &user, &factor).unwrap();
        let text = "# rotated 2026-11\n\
                    new : ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8= \n\
                    \n\
                    old:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n";
        let rotated = KeyRing::from_config(text).unwrap();
        assert_eq!(rotated.active_id().as_str(), "new");
        assert_eq!(rotated.open(&blob, &user, &factor).unwrap(), secret);
        let comma = KeyRing::from_config(
            "new:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=,old:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        .unwrap();
        assert_eq!(comma.key_ids().count(), 2);
    }
    #[test]

    fn malformed_configuration_names_the_entry_never_the_key() {
        let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let cases = [
            ("", 0, "no key"),
            ("# only a comment", 0, "no key"),
            (key, 1, "expected <key id>:<base64 key>"),
            (&format!("bad id:{key}"), 1, "invalid key id"),
            (
                &format!("a:{key},b:AAECAwQF"),
                2,
                "the key must be the Base64 of 32 bytes",
            ),
            (
                &format!("a:{key}A"),
                1,
                "the key must be the Base64 of 32 bytes",
            ),
            (
                &format!("a:{}", &key[1..]),
                1,
                "the key must be the Base64 of 32 bytes",
            ),
            (&format!("a:{key},a:{key}"), 2, "a key id appears twice"),
        ];
        for (text, entry, reason) in cases {
            let err = KeyRing::from_config(text).unwrap_err();
            assert_eq!(err, KeyRingError::Config { entry, reason }, "{text:?}");
            assert!(!err.to_string().contains("AAEC"));
        }
    }
    #[test]

    fn generated_entries_load_and_differ() {
        let id = KeyId::new("2026-11").unwrap();
        let first = KeyRing::generate_entry(&id).unwrap();
        let second = KeyRing::generate_entry(&id).unwrap();
        assert_ne!(*first, *second);
        let ring = KeyRing::from_config(&first).unwrap();
        assert_eq!(ring.active_id(), &id);
    }
    #[test]

    fn a_missing_variable_is_named_in_the_error() {
        let var = "VERROU_TEST_KEYS_NEVER_SET";
        let err = KeyRing::from_env(var).unwrap_err();
        assert_eq!(
            err,
            KeyRingError::Environment {
                variable: var.to_owned()
            }
        );
        assert!(err.to_string().contains(var), "{err}");
    }
    #[cfg(unix)]
    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let entry = KeyRing::generate_entry(&KeyId::new("k1").unwrap()).unwrap();
        std::fs::write(&path, entry.as_bytes()).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660, 0o602] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = KeyRing::from_file(&path).unwrap_err();
            assert_eq!(err, KeyRingError::InsecureFile { mode }, "{mode:o}");
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let keys = KeyRing::from_file(&path).unwrap();
            assert_eq!(keys.active_id().as_str(), "k1");
        }
        assert!(matches!(
            KeyRing::from_file(dir.path().join("missing")),
            Err(KeyRingError::Unreadable(_))
        ));
    }
}
