//! Where the portal's key ring comes from, and how a running portal takes a new one in: the
//! live steps of the README's key rotation, on `SIGHUP`, with no restart and no session lost.

use std::path::{Path, PathBuf};

use verrou::store::KeyRotation;
use verrou::{KeyId, KeyRing};

use crate::app::Portal;

/// The key ring's source.
#[derive(Clone, Debug)]
pub enum KeySource {
    /// A ring given once (`VERROU_KEYS`, read at start): a new one needs a restart.
    Fixed(KeyRing),
    /// A key file (owner-only permissions), read again by [`Portal::reload_keys`].
    File(PathBuf),
}

impl From<KeyRing> for KeySource {
    fn from(keys: KeyRing) -> Self {
        Self::Fixed(keys)
    }
}

impl KeySource {
    /// The ring as the source holds it now.
    ///
    /// # Errors
    /// The key file's [`verrou::KeyRingError`] (unreadable, readable by others, malformed).
    pub fn load(&self) -> Result<KeyRing, verrou::KeyRingError> {
        match self {
            Self::Fixed(keys) => Ok(keys.clone()),
            Self::File(path) => KeyRing::from_file(path),
        }
    }

    /// The key file `path`, created with one new key (`demo-1`) if it does not exist yet.
    ///
    /// # Errors
    /// The RNG, or writing the file.
    pub fn file_created_if_missing(path: &Path) -> Result<Self, Box<dyn std::error::Error>> {
        if !path.exists() {
            let entry = KeyRing::generate_entry(&KeyId::new("demo-1")?)?;
            crate::write_private(path, entry.as_bytes())?;
        }
        Ok(Self::File(path.to_owned()))
    }
}

/// Why a running portal kept its key ring.
#[derive(Debug)]
pub enum ReloadError {
    /// The ring came from `VERROU_KEYS`: restart with the new value, or use a key file.
    Fixed,
    /// The key file could not be read or parsed (named by entry, never by its text).
    File(verrou::KeyRingError),
    /// The store refused the ring: it cannot open what is stored, or it lacks a key that
    /// still seals secrets (the old key removed before the rotation finished).
    Refused(verrou::StoreError),
}

impl std::fmt::Display for ReloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fixed => f.write_str(
                "the key ring came from VERROU_KEYS: restart with the new value, or use a key file",
            ),
            Self::File(error) => write!(f, "the key file: {error}"),
            Self::Refused(error) => write!(f, "the store refused the new key ring: {error}"),
        }
    }
}

impl std::error::Error for ReloadError {}

impl Portal {
    /// Reads the key file again and hands the ring to the store, which every request of this
    /// instance then uses; the sessions go on. Returns the active key's id. Recorded in the
    /// portal's audit trail (`key_ring_reloaded`, key ids only). Refused, the ring in use is
    /// kept.
    ///
    /// # Errors
    /// [`ReloadError`].
    pub async fn reload_keys(&self) -> Result<KeyId, ReloadError> {
        let KeySource::File(_) = &self.keys else {
            return Err(ReloadError::Fixed);
        };
        let keys = self.keys.load().map_err(ReloadError::File)?;
        let active = keys.active_id().clone();
        let ids: Vec<&str> = keys.key_ids().map(KeyId::as_str).collect();
        let detail = format!("active key {active}; ring {}", ids.join(", "));
        self.verrou
            .store()
            .replace_key_ring(keys.clone())
            .await
            .map_err(ReloadError::Refused)?;
        // The ring is in use already: a record that cannot be written is logged, not undone.
        match self.now_unix() {
            Ok(at) => {
                let kind = "key_ring_reloaded";
                if let Err(error) = self.db.audit(at, "portal", None, kind, &detail).await {
                    tracing::warn!(%error, "the key ring reload could not be audited");
                }
            }
            Err(error) => tracing::warn!(?error, "the key ring reload could not be audited"),
        }
        Ok(active)
    }
}
