//! Key rotation for stores that seal secrets: re-sealing them under the ring's active key.

use std::collections::BTreeMap;
use std::future::Future;

use super::Store;
use crate::error::StoreError;
use crate::keyring::{KeyId, KeyRing};

/// What one pass of [`KeyRotation::reseal_stale`] did.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
#[non_exhaustive]
pub struct ResealReport {
    /// Stored secrets (pending and active factors) looked at.
    pub scanned: usize,
    /// Secrets re-sealed under the active key.
    pub resealed: usize,
    /// Secrets still sealed with another key: beyond the pass's limit, or changed by a
    /// concurrent writer while the pass re-sealed them. Zero means the rotation is complete
    /// (but for the `unreadable` ones).
    pub stale: usize,
    /// Secrets that could not be read (a malformed blob, a key missing from the ring, a
    /// failed authentication): reported and skipped, so one bad row does not stop the
    /// rotation of the others. Each needs an operator (usually a factor reset).
    pub unreadable: Vec<UnreadableSecret>,
}

/// A stored secret a rotation could not open, by the row it sits in (ids only: never the
/// blob).
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct UnreadableSecret {
    /// The user the row belongs to, as stored.
    pub user: String,
    /// The factor id, as stored.
    pub factor: String,
    /// Why it could not be opened.
    pub reason: crate::keyring::KeyRingError,
}

/// How many stored secrets (pending and active factors) each key seals: the progress of a
/// rotation, and what a ring must still be able to open.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
#[non_exhaustive]
pub struct SealedSecrets {
    /// Secrets by the key id their blob names (not authenticated until opened).
    pub by_key: BTreeMap<KeyId, usize>,
    /// Blobs too malformed to name a key.
    pub malformed: usize,
}

impl SealedSecrets {
    /// How many secrets are sealed under keys `keys` does not hold (malformed blobs not
    /// counted): what a ring without those keys could no longer open.
    pub fn beyond(&self, keys: &KeyRing) -> usize {
        self.by_key
            .iter()
            .filter(|(id, _)| !keys.key_ids().any(|held| held == *id))
            .map(|(_, count)| count)
            .sum()
    }
}

/// Stores that keep TOTP secrets sealed under a [`KeyRing`](crate::keyring::KeyRing): re-sealing them
/// under the ring's active key after a rotation.
///
/// Safe while verifications run: each secret is replaced only if its row still holds the
/// exact blob that was opened (compare-and-set), and verification never writes the blob.
/// Resumable and idempotent: a pass skips secrets already under the active key, so an
/// interrupted rotation is finished by running it again, and a finished one does nothing.
pub trait KeyRotation: Store {
    /// Scans every stored secret in pages and re-seals at most `limit` of those sealed with a
    /// key other than the active one. A secret that cannot be opened is listed in
    /// [`ResealReport::unreadable`] and skipped; the pass goes on.
    fn reseal_stale(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<ResealReport, StoreError>> + Send;

    /// Counts the stored secrets by the key that seals them (one read of every sealed row, in
    /// pages).
    ///
    /// # Errors
    /// Store failures.
    fn sealed_secrets(&self) -> impl Future<Output = Result<SealedSecrets, StoreError>> + Send;

    /// Replaces the key ring this store seals and opens with, for this handle and every
    /// clone of it, without closing the store or ending a session: how a running portal takes
    /// the new configuration in each step of a rotation (see the README's "Rotating a key").
    /// Operations already running finish with the ring they started with.
    ///
    /// # Errors
    /// [`StoreErrorKind::KeyMismatch`](crate::error::StoreErrorKind::KeyMismatch) if `keys` cannot open the store's key check (the same
    /// check as when the store opens), or if it lacks a key that still seals a stored
    /// secret (a ring whose old key was removed before the rotation finished: those users
    /// could no longer sign in); the ring in use is kept. Store failures.
    fn replace_key_ring(
        &self,
        keys: KeyRing,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Re-seals every stored secret under the active key: passes of
    /// [`KeyRotation::reseal_stale`] until one finds nothing stale (at most five passes; a
    /// non-zero `stale` in the result means writers with an older active key are still
    /// running). The sum of the passes is returned.
    fn rotate_keys(&self) -> impl Future<Output = Result<ResealReport, StoreError>> + Send {
        async {
            let mut total = ResealReport::default();
            for _ in 0..5 {
                let pass = self.reseal_stale(usize::MAX).await?;
                total.scanned += pass.scanned;
                total.resealed += pass.resealed;
                total.stale = pass.stale;
                // Every pass scans every row: the last one's list is the current one.
                total.unreadable = pass.unreadable;
                if pass.stale == 0 {
                    break;
                }
            }
            Ok(total)
        }
    }
}
