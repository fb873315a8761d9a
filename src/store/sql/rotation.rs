//! The SQL store and its key ring: the key check when a store opens, and
//! [`KeyRotation`]: re-sealing stored secrets under the active key.

use std::sync::PoisonError;

use super::driver::{Driver, Fields, Sql};
use super::values::{factor_id, key_check_value, sealing, user_id};
use super::SqlStore;
use crate::error::{StoreError, StoreErrorKind};
use crate::keyring::{KeyRing, KeyRingError};
use crate::store::{
    KeyRotation, ResealBatch, ResealPosition, ResealReport, SealedSecrets, UnreadableSecret,
};

/// The tables that hold sealed secrets: how to read them in pages in user-id order, and how
/// to swap one row's sealed blob (compare-and-set on the old blob).
const SEALED_TABLES: [(&str, &str); 2] = [
    (
        "SELECT user_id, factor_id, sealed FROM verrou_totp_pending \
         WHERE user_id > $1 ORDER BY user_id LIMIT $2",
        "UPDATE verrou_totp_pending SET sealed = $4 \
         WHERE user_id = $1 AND factor_id = $2 AND sealed = $3",
    ),
    (
        "SELECT user_id, factor_id, sealed FROM verrou_totp_active \
         WHERE user_id > $1 ORDER BY user_id LIMIT $2",
        "UPDATE verrou_totp_active SET sealed = $4 \
         WHERE user_id = $1 AND factor_id = $2 AND sealed = $3",
    ),
];

/// How many rows one read of a rotation pass takes.
const PAGE: usize = 500;

/// A `(user_id, factor_id, sealed)` row as stored, ids not yet parsed.
struct SealedRow {
    user: String,
    factor: String,
    sealed: Vec<u8>,
}

impl SealedRow {
    fn read<D: Driver>(row: &Fields<D>) -> Result<Self, StoreError> {
        Ok(Self {
            user: row.text(0)?,
            factor: row.text(1)?,
            sealed: row.bytes(2)?,
        })
    }

    /// This row's secret sealed anew under the active key of `keys`, or why it cannot be
    /// opened.
    fn resealed(&self, keys: &KeyRing) -> Result<Vec<u8>, KeyRingError> {
        // Ids that do not parse cannot have sealed this blob's associated data.
        let (Ok(user), Ok(factor)) = (user_id(&self.user), factor_id(&self.factor)) else {
            return Err(KeyRingError::Authentication);
        };
        let secret = keys.open(&self.sealed, &user, &factor)?;
        keys.seal(&secret, &user, &factor)
    }
}

/// Where a pass goes after reading `rows` from `SEALED_TABLES[table]`: further in the same
/// table after a full page, else the next table, else nowhere.
fn next_position(table: usize, rows: &[SealedRow]) -> Option<ResealPosition> {
    match rows.last() {
        Some(last) if rows.len() == PAGE => Some(ResealPosition {
            table,
            after: last.user.clone(),
        }),
        _ if table + 1 < SEALED_TABLES.len() => Some(ResealPosition {
            table: table + 1,
            after: String::new(),
        }),
        _ => None,
    }
}

impl<D: Driver> KeyRotation for SqlStore<D> {
    async fn reseal_batch(
        &self,
        from: &ResealPosition,
        limit: usize,
    ) -> Result<ResealBatch, StoreError> {
        let keys = self.keys();
        if from.is_start() {
            self.reseal_key_check(&keys).await?;
        }
        let Some((_, update)) = SEALED_TABLES.get(from.table) else {
            return Ok(ResealBatch::default());
        };
        let rows = self.sealed_page(from.table, &from.after).await?;
        let next = next_position(from.table, &rows);
        let mut report = ResealReport::default();
        let mut swaps = Vec::new();
        for row in rows {
            report.scanned += 1;
            let resealed = match KeyRing::sealed_with(&row.sealed) {
                Ok(id) if id == *keys.active_id() => continue,
                Ok(_) if swaps.len() >= limit => {
                    report.stale += 1;
                    continue;
                }
                Ok(_) => row.resealed(&keys),
                Err(reason) => Err(reason),
            };
            match resealed {
                Ok(blob) => swaps.push((row, blob)),
                Err(reason) => {
                    tracing::warn!(
                        target: "verrou::store",
                        user = row.user.as_str(),
                        factor = row.factor.as_str(),
                        %reason,
                        "a sealed secret cannot be opened: skipped by the rotation"
                    );
                    report.unreadable.push(UnreadableSecret {
                        user: row.user,
                        factor: row.factor,
                        reason,
                    });
                }
            }
        }
        let attempted = swaps.len();
        report.resealed = self.swap_sealed(update, swaps).await?;
        // A row a writer changed since it was read keeps its blob: still stale.
        report.stale += attempted - report.resealed;
        Ok(ResealBatch { report, next })
    }

    async fn sealed_secrets(&self) -> Result<SealedSecrets, StoreError> {
        let mut counts = SealedSecrets::default();
        let mut at = Some(ResealPosition::default());
        while let Some(from) = at {
            let rows = self.sealed_page(from.table, &from.after).await?;
            at = next_position(from.table, &rows);
            for row in &rows {
                match KeyRing::sealed_with(&row.sealed) {
                    Ok(id) => *counts.by_key.entry(id).or_default() += 1,
                    Err(_) => counts.malformed += 1,
                }
            }
        }
        Ok(counts)
    }

    async fn replace_key_ring(&self, keys: KeyRing) -> Result<(), StoreError> {
        if self.sealed_secrets().await?.beyond(&keys) > 0 {
            return Err(StoreError::new(
                StoreErrorKind::KeyMismatch,
                "the new key ring lacks a key that still seals stored secrets: finish the \
                 rotation (rotate-keys) before removing the old key",
            ));
        }
        self.check_key_ring(&keys).await?;
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
        Ok(())
    }
}

#[allow(private_bounds, reason = "crate-private helpers; Driver is sealed")]
impl<D: Driver> SqlStore<D> {
    /// The page of sealed rows of `SEALED_TABLES[table]` after user id `after`.
    async fn sealed_page(&self, table: usize, after: &str) -> Result<Vec<SealedRow>, StoreError> {
        let Some((select, _)) = SEALED_TABLES.get(table) else {
            return Ok(Vec::new());
        };
        let rows = Sql::<D>::new(select, "read sealed secrets")
            .text(after.to_owned())
            .int(i64::try_from(PAGE).unwrap_or(i64::MAX))
            .fetch_all(&mut *self.connection("read sealed secrets").await?)
            .await?;
        rows.iter().map(SealedRow::read).collect()
    }

    /// Refuses a key ring that cannot open what the store holds: the key check sealed when
    /// the store was first opened or, in a store from before the check, any active factor's
    /// secret. Writes the key check when there is none yet.
    pub(super) async fn check_key_ring(&self, keys: &KeyRing) -> Result<(), StoreError> {
        let mut conn = self.connection("read the key check").await?;
        let conn = &mut *conn;
        // The key check if there is one; in a store from before it, up to 16 active factors,
        // of which the right ring opens at least one (a rotation may have left one it could
        // not open), and a foreign ring none.
        let check = Sql::<D>::new(
            "SELECT user_id, factor_id, sealed FROM verrou_key_check LIMIT 1",
            "read the key check",
        )
        .fetch_all(conn)
        .await?;
        let checked = !check.is_empty();
        let rows = if checked {
            check
        } else {
            Sql::<D>::new(
                "SELECT user_id, factor_id, sealed FROM verrou_totp_active LIMIT 16",
                "read the key check",
            )
            .fetch_all(conn)
            .await?
        };
        let mut refusal = None;
        let mut opened = rows.is_empty();
        for row in &rows {
            let row = SealedRow::read(row)?;
            let (user, factor) = (user_id(&row.user)?, factor_id(&row.factor)?);
            match keys.open(&row.sealed, &user, &factor) {
                Ok(_) => {
                    opened = true;
                    break;
                }
                Err(error @ (KeyRingError::UnknownKey | KeyRingError::Authentication)) => {
                    refusal = Some(error);
                }
                Err(error) if checked => return Err(sealing("open the key check")(error)),
                Err(error) => refusal = Some(error),
            }
        }
        if !opened {
            return Err(StoreError::with_source(
                StoreErrorKind::KeyMismatch,
                "the key ring does not match this store: none of its keys opens the store's \
                 secrets (check VERROU_KEYS)",
                refusal.unwrap_or(KeyRingError::Authentication),
            ));
        }
        if !checked {
            let (user, factor, secret) = key_check_value()?;
            let sealed = keys
                .seal(&secret, &user, &factor)
                .map_err(sealing("seal the key check"))?;
            Sql::<D>::new(
                "INSERT INTO verrou_key_check (user_id, factor_id, sealed) VALUES ($1, $2, $3) \
                 ON CONFLICT (user_id) DO NOTHING",
                "write the key check",
            )
            .text(user.as_str())
            .text(factor.to_string())
            .bytes(sealed)
            .execute(conn)
            .await?;
        }
        Ok(())
    }

    /// Re-seals the key check under the active key (part of a rotation, not counted in its
    /// report). Left as it is if it cannot be opened or changed meanwhile.
    async fn reseal_key_check(&self, keys: &KeyRing) -> Result<(), StoreError> {
        let row = Sql::<D>::new(
            "SELECT user_id, factor_id, sealed FROM verrou_key_check",
            "read the key check",
        )
        .fetch_optional(&mut *self.connection("read the key check").await?)
        .await?;
        let Some(row) = row else { return Ok(()) };
        let row = SealedRow::read(&row)?;
        if KeyRing::sealed_with(&row.sealed).ok().as_ref() == Some(keys.active_id()) {
            return Ok(());
        }
        // A check that does not open is reported when a store opens, not here.
        let Ok(resealed) = row.resealed(keys) else {
            return Ok(());
        };
        let update = "UPDATE verrou_key_check SET sealed = $4 \
                      WHERE user_id = $1 AND factor_id = $2 AND sealed = $3";
        self.swap_sealed(update, vec![(row, resealed)]).await?;
        Ok(())
    }

    /// Writes each row's new blob in one transaction, where the row still holds the blob it
    /// was read with (compare-and-set, `update` taking user, factor, old and new blob):
    /// returns how many were written; a row a concurrent writer changed keeps its blob.
    async fn swap_sealed(
        &self,
        update: &'static str,
        swaps: Vec<(SealedRow, Vec<u8>)>,
    ) -> Result<usize, StoreError> {
        if swaps.is_empty() {
            return Ok(0);
        }
        self.write("re-seal TOTP secrets", move |tx, _| {
            Box::pin(async move {
                let mut swapped = 0;
                for (row, resealed) in swaps {
                    let written = Sql::<D>::new(update, "re-seal a TOTP secret")
                        .text(row.user)
                        .text(row.factor)
                        .bytes(row.sealed)
                        .bytes(resealed)
                        .execute(tx)
                        .await?;
                    if written == 1 {
                        swapped += 1;
                    }
                }
                Ok(swapped)
            })
        })
        .await
    }
}
