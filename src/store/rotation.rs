//! Key rotation for stores that seal secrets: re-sealing them under the ring's active key.

use std::collections::BTreeMap;
use std::future::Future;

use super::Store;
use crate::error::StoreError;
use crate::keyring::{KeyId, KeyRing};

/// What one pass of [`KeyRotation::reseal_stale`] (or one batch of it) did.
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

impl ResealReport {
    /// Secrets found already sealed under the active key: the part of an interrupted
    /// rotation that a run resuming it skips.
    pub fn current(&self) -> usize {
        self.scanned
            .saturating_sub(self.resealed)
            .saturating_sub(self.stale)
            .saturating_sub(self.unreadable.len())
    }

    /// Adds a later batch of the same pass to this report.
    fn add(&mut self, batch: Self) {
        self.scanned += batch.scanned;
        self.resealed += batch.resealed;
        self.stale += batch.stale;
        self.unreadable.extend(batch.unreadable);
    }
}

/// Where a pass over the stored secrets stands: the table and the last row a batch read.
/// Opaque; a pass starts at [`ResealPosition::default`] and follows [`ResealBatch::next`].
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct ResealPosition {
    /// Which of the store's tables of sealed secrets (in the store's own order).
    pub(crate) table: usize,
    /// The last row read in that table, by its key as stored (empty: from the first).
    pub(crate) after: String,
}

impl ResealPosition {
    /// The start of a pass.
    pub fn is_start(&self) -> bool {
        *self == Self::default()
    }
}

/// One batch of a pass: what it did, and where the next batch starts (`None`: the pass
/// has read every stored secret).
#[derive(Clone, Debug, Default, Eq, PartialEq)]
#[non_exhaustive]
pub struct ResealBatch {
    /// What this batch did.
    pub report: ResealReport,
    /// Where the next batch of the pass starts.
    pub next: Option<ResealPosition>,
}

/// How far a rotation has come: given to the observer of [`KeyRotation::rotate_keys_with`]
/// after each batch.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct RotationProgress<'a> {
    /// The pass running, from 1 (a second pass runs only when writers with an older active
    /// key changed secrets during the first).
    pub pass: usize,
    /// What this pass has done so far.
    pub report: &'a ResealReport,
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
/// A batch's writes are one transaction: a process killed mid-rotation leaves every secret
/// sealed under one key or the other, never half-written.
pub trait KeyRotation: Store {
    /// Reads one page of stored secrets from `from` and re-seals, in one transaction, at
    /// most `limit` of those sealed with a key other than the active one (the others are
    /// counted in [`ResealReport::stale`]). A secret that cannot be opened is listed in
    /// [`ResealReport::unreadable`] and skipped. The first batch of a pass (from
    /// [`ResealPosition::default`]) also re-seals the store's key check.
    ///
    /// # Errors
    /// Store failures; the batch's writes are then undone.
    fn reseal_batch(
        &self,
        from: &ResealPosition,
        limit: usize,
    ) -> impl Future<Output = Result<ResealBatch, StoreError>> + Send;

    /// Scans every stored secret in batches ([`KeyRotation::reseal_batch`]) and re-seals at
    /// most `limit` of those sealed with a key other than the active one. A secret that
    /// cannot be opened is listed in [`ResealReport::unreadable`] and skipped; the pass goes
    /// on.
    ///
    /// # Errors
    /// Store failures; the batches before the failing one stay done.
    fn reseal_stale(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<ResealReport, StoreError>> + Send {
        pass(self, limit, |_| {})
    }

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
    ///
    /// # Errors
    /// Store failures; what was re-sealed before stays re-sealed.
    fn rotate_keys(&self) -> impl Future<Output = Result<ResealReport, StoreError>> + Send {
        self.rotate_keys_with(|_| {})
    }

    /// [`KeyRotation::rotate_keys`], telling `observe` how far it has come after each batch
    /// (a progress bar's feed).
    ///
    /// # Errors
    /// As [`KeyRotation::rotate_keys`].
    fn rotate_keys_with<F>(
        &self,
        mut observe: F,
    ) -> impl Future<Output = Result<ResealReport, StoreError>> + Send
    where
        F: FnMut(RotationProgress<'_>) + Send,
    {
        async move {
            let mut total = ResealReport::default();
            for number in 1..=MAX_PASSES {
                let pass = pass(self, usize::MAX, |report| {
                    observe(RotationProgress {
                        pass: number,
                        report,
                    });
                })
                .await?;
                total.scanned += pass.scanned;
                total.resealed += pass.resealed;
                total.stale = pass.stale;
                // Every pass scans every row: the last one's list is the current one.
                total.unreadable = pass.unreadable;
                if total.stale == 0 {
                    break;
                }
            }
            Ok(total)
        }
    }
}

/// How many passes [`KeyRotation::rotate_keys`] makes at most.
const MAX_PASSES: usize = 5;

/// One pass over every stored secret, re-sealing at most `limit`; `observe` sees the pass's
/// report after each batch.
async fn pass<S, F>(store: &S, limit: usize, mut observe: F) -> Result<ResealReport, StoreError>
where
    S: KeyRotation + ?Sized,
    F: FnMut(&ResealReport) + Send,
{
    let mut report = ResealReport::default();
    let mut at = ResealPosition::default();
    loop {
        let batch = store
            .reseal_batch(&at, limit.saturating_sub(report.resealed))
            .await?;
        report.add(batch.report);
        observe(&report);
        match batch.next {
            Some(next) => at = next,
            None => return Ok(report),
        }
    }
}
