//! Conversions between verrou's types and the columns both databases store, and the
//! mapping of driver errors. A value that does not convert back is `Corrupt`, never a panic.

use crate::clock::Timestamp;
use crate::error::{StoreError, StoreErrorKind};
use crate::ids::{FactorId, OrgId, SessionId, UserId};
use crate::session::TokenHash;
use crate::store::ThrottleKey;
use crate::totp::{Algorithm, TotpParams};

/// Maps a driver error to a [`StoreError`] of the right kind.
pub(crate) fn backend(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |error| {
        let kind = match &error {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreErrorKind::Unavailable,
            sqlx::Error::Database(db) => match db.code().as_deref() {
                // SQLite BUSY, LOCKED and their extended codes; PostgreSQL serialization
                // failure, deadlock, lock not available.
                Some("5" | "6" | "261" | "517" | "40001" | "40P01" | "55P03") => {
                    StoreErrorKind::Contention
                }
                _ => StoreErrorKind::Backend,
            },
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::ColumnIndexOutOfBounds { .. }
            | sqlx::Error::TypeNotFound { .. }
            | sqlx::Error::RowNotFound => StoreErrorKind::Corrupt,
            _ => StoreErrorKind::Backend,
        };
        StoreError::with_source(kind, context, error)
    }
}

fn corrupt(context: &'static str) -> StoreError {
    StoreError::new(StoreErrorKind::Corrupt, context)
}

/// A `u64` as the signed 64-bit integer both databases store.
pub(crate) fn to_db(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::new(StoreErrorKind::Backend, "value over i64"))
}

/// A stored integer back as a `u64`.
pub(crate) fn from_db(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| corrupt("negative stored value"))
}

pub(crate) fn timestamp(value: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_unix_seconds(from_db(value)?).map_err(|_| corrupt("stored time out of range"))
}

pub(crate) fn user_id(text: &str) -> Result<UserId, StoreError> {
    UserId::from_stored(text).map_err(|_| corrupt("stored user id is malformed"))
}

pub(crate) fn factor_id(text: &str) -> Result<FactorId, StoreError> {
    FactorId::parse(text).map_err(|_| corrupt("stored factor id is malformed"))
}

pub(crate) fn session_id(text: &str) -> Result<SessionId, StoreError> {
    SessionId::parse(text).map_err(|_| corrupt("stored session id is malformed"))
}

pub(crate) fn org_id(text: &str) -> Result<OrgId, StoreError> {
    OrgId::from_stored(text).map_err(|_| corrupt("stored organisation id is malformed"))
}

pub(crate) fn token_hash(text: &str) -> Result<TokenHash, StoreError> {
    TokenHash::from_hex(text).ok_or_else(|| corrupt("stored token hash is malformed"))
}

/// The position of `item` in `all`, as stored.
pub(crate) fn code<T: PartialEq>(all: &[T], item: &T) -> i64 {
    i64::try_from(super::audit_columns::code_of(all, item)).unwrap_or(-1)
}

/// A stored code back as one of `all`.
pub(crate) fn from_code<T: Copy>(all: &[T], stored: i64) -> Result<T, StoreError> {
    super::audit_columns::from_code(all, u64::try_from(stored).ok())
        .ok_or_else(|| corrupt("stored code is negative or unknown"))
}

pub(crate) fn failures(value: i64) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| corrupt("stored failure count out of range"))
}

pub(crate) fn params(algorithm: &str, digits: i64, period: i64) -> Result<TotpParams, StoreError> {
    let algorithm = Algorithm::from_name(algorithm).ok_or_else(|| corrupt("stored algorithm"))?;
    let digits = u8::try_from(digits).map_err(|_| corrupt("stored digits"))?;
    TotpParams::new(algorithm, digits, from_db(period)?)
        .map_err(|_| corrupt("stored TOTP parameters are out of range"))
}

/// The throttle key of a user's account, as stored.
pub(crate) fn account_key(user: &UserId) -> String {
    ThrottleKey::Account(user).storage_key()
}

/// An audit event's stored columns, as read (see `verrou_audit`).
#[derive(Debug, Default)]
pub(crate) struct AuditRow {
    pub(crate) at: i64,
    pub(crate) user: String,
    pub(crate) client: Option<String>,
    pub(crate) kind: String,
    pub(crate) factor: Option<String>,
    pub(crate) session: Option<String>,
    pub(crate) value: Option<i64>,
    pub(crate) detail: Option<i64>,
    pub(crate) note: Option<String>,
    pub(crate) org: Option<String>,
}

impl AuditRow {
    /// The event these columns hold, or why they do not hold one.
    pub(crate) fn event(self) -> Result<crate::audit::AuditEvent, StoreError> {
        let columns = super::audit_columns::KindColumns {
            factor: self.factor.as_deref().map(factor_id).transpose()?,
            session: self.session.as_deref().map(session_id).transpose()?,
            value: self.value.map(from_db).transpose()?,
            detail: self.detail,
            note: self.note,
        };
        Ok(crate::audit::AuditEvent {
            at: timestamp(self.at)?,
            user: user_id(&self.user)?,
            client: self
                .client
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|_| corrupt("stored audit client address is malformed"))?,
            org: self.org.as_deref().map(org_id).transpose()?,
            kind: crate::audit::AuditKind::from_columns(&self.kind, &columns)
                .ok_or_else(|| corrupt("stored audit event kind is unknown or incomplete"))?,
        })
    }
}

/// A key-ring failure on a stored secret: the data cannot be used as it is.
pub(crate) fn sealing(
    context: &'static str,
) -> impl FnOnce(crate::keyring::KeyRingError) -> StoreError {
    move |error| StoreError::with_source(StoreErrorKind::Corrupt, context, error)
}

/// The key check's row: a fixed user and factor id, and a fixed (non-secret) value. Only
/// whether a ring opens its sealed form matters.
pub(crate) fn key_check_value() -> Result<(UserId, FactorId, crate::secret::TotpSecret), StoreError>
{
    let broken = || corrupt("the key check value cannot be built");
    let user = UserId::new("verrou-key-check").map_err(|_| broken())?;
    let factor = FactorId::parse("00000000000000000000000000000000").map_err(|_| broken())?;
    let secret = crate::secret::TotpSecret::from_base32("KEYCHECKKEYCHECKKEYCHECKKEYCHECK")
        .map_err(|_| broken())?;
    Ok((user, factor, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_that_do_not_fit_are_corrupt_not_panics() {
        assert_eq!(from_db(-1).unwrap_err().kind(), StoreErrorKind::Corrupt);
        assert_eq!(to_db(u64::MAX).unwrap_err().kind(), StoreErrorKind::Backend);
        assert_eq!(
            timestamp(i64::MAX).unwrap_err().kind(),
            StoreErrorKind::Corrupt
        );
        assert_eq!(failures(-3).unwrap_err().kind(), StoreErrorKind::Corrupt);
        assert_eq!(
            factor_id("nope").unwrap_err().kind(),
            StoreErrorKind::Corrupt
        );
        for (alg, digits, period) in [
            ("MD5", 6, 30),
            ("SHA1", 5, 30),
            ("SHA1", 6, 0),
            ("SHA1", 300, 30),
        ] {
            assert_eq!(
                params(alg, digits, period).unwrap_err().kind(),
                StoreErrorKind::Corrupt
            );
        }
        assert_eq!(
            params("SHA256", 8, 60).unwrap(),
            TotpParams::new(Algorithm::Sha256, 8, 60).unwrap()
        );
    }

    #[test]
    fn audit_rows_that_do_not_fit_are_corrupt() {
        let row = |kind: &str| AuditRow {
            at: 1,
            user: "alice".into(),
            kind: kind.into(),
            ..AuditRow::default()
        };
        let kind = |row: AuditRow| row.event().map(|event| event.kind);
        assert_eq!(
            kind(row("lock_lifted")).ok(),
            Some(crate::audit::AuditKind::LockLifted)
        );
        let client = Some("192.0.2.1".into());
        assert!(kind(AuditRow {
            client,
            ..row("lock_lifted")
        })
        .is_ok());
        let corrupt = [
            row("no_such_kind"),
            AuditRow {
                client: Some("not an address".into()),
                ..row("lock_lifted")
            },
            AuditRow {
                user: String::new(),
                ..row("lock_lifted")
            },
            AuditRow {
                org: Some(String::new()),
                ..row("lock_lifted")
            },
            // An operator command without its text does not fit.
            AuditRow {
                user: "root@h".into(),
                ..row("operator_command")
            },
        ];
        for bad in corrupt {
            let shown = format!("{bad:?}");
            assert_eq!(
                kind(bad).unwrap_err().kind(),
                StoreErrorKind::Corrupt,
                "{shown}"
            );
        }
    }
}
