//! The schema: embedded migrations, spelled for each dialect, and the version rules.

use crate::error::{StoreError, StoreErrorKind};

/// The schema version this build of verrou writes. A database at a later version is refused.
pub(crate) const SCHEMA_VERSION: i64 = 7;

/// Migration `i` takes the schema from version `i` to `i + 1` (version 1: factors, recovery
/// codes, throttle counters; version 2: the audit trail; version 3: sessions and their device
/// bindings, and the audit trail's session column; version 4: the key check, a value sealed
/// under the ring that created the store, so a foreign ring is refused at open; version 5: the
/// dialect's one-call verification, [`Spelling::attempt_function`]; version 6: the audit
/// trail's `note` column, an operator command's text). Written once for both
/// dialects: `{blob}` becomes the binary type, `{serial}` the auto-increment key and
/// `{attempt_function}` the dialect's function, if it has one.
const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE verrou_totp_pending (
    user_id    TEXT PRIMARY KEY,
    factor_id  TEXT NOT NULL,
    sealed     {blob} NOT NULL,
    algorithm  TEXT NOT NULL,
    digits     BIGINT NOT NULL,
    period     BIGINT NOT NULL,
    replaces   TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE TABLE verrou_totp_active (
    user_id      TEXT PRIMARY KEY,
    factor_id    TEXT NOT NULL,
    sealed       {blob} NOT NULL,
    algorithm    TEXT NOT NULL,
    digits       BIGINT NOT NULL,
    period       BIGINT NOT NULL,
    last_step    BIGINT NOT NULL,
    activated_at BIGINT NOT NULL
);
CREATE TABLE verrou_recovery_codes (
    user_id TEXT NOT NULL,
    lookup  TEXT NOT NULL,
    phc     TEXT NOT NULL,
    used    BOOLEAN NOT NULL,
    PRIMARY KEY (user_id, lookup)
);
CREATE TABLE verrou_throttle (
    throttle_key TEXT PRIMARY KEY,
    failures     BIGINT NOT NULL,
    last_failure BIGINT NOT NULL
);
",
    r"
CREATE TABLE verrou_audit (
    id        {serial},
    at        BIGINT NOT NULL,
    user_id   TEXT NOT NULL,
    client    TEXT,
    kind      TEXT NOT NULL,
    factor_id TEXT,
    value     BIGINT,
    detail    BIGINT
);
CREATE INDEX verrou_audit_by_user ON verrou_audit (user_id, id);
",
    r"
CREATE TABLE verrou_sessions (
    session_id           TEXT PRIMARY KEY,
    token_hash           TEXT NOT NULL UNIQUE,
    user_id              TEXT NOT NULL,
    org_id               TEXT,
    assurance            BIGINT NOT NULL,
    created_at           BIGINT NOT NULL,
    last_seen            BIGINT NOT NULL,
    expires_at           BIGINT NOT NULL,
    second_factor_at     BIGINT,
    second_factor_method BIGINT,
    signals              TEXT
);
CREATE INDEX verrou_sessions_by_user ON verrou_sessions (user_id);
CREATE INDEX verrou_sessions_by_org ON verrou_sessions (org_id);
CREATE INDEX verrou_sessions_by_created ON verrou_sessions (created_at);
CREATE TABLE verrou_session_bindings (
    session_id             TEXT PRIMARY KEY,
    version                BIGINT NOT NULL,
    offered_at             BIGINT NOT NULL,
    device_key             {blob},
    binding_kind           BIGINT,
    challenge              TEXT,
    challenge_expires      BIGINT,
    prev_challenge         TEXT,
    prev_challenge_expires BIGINT,
    cookie_hash            TEXT,
    cookie_expires         BIGINT,
    prev_cookie_hash       TEXT,
    prev_cookie_expires    BIGINT
);
ALTER TABLE verrou_audit ADD COLUMN session_id TEXT;
",
    r"
CREATE TABLE verrou_key_check (
    user_id   TEXT PRIMARY KEY,
    factor_id TEXT NOT NULL,
    sealed    {blob} NOT NULL
);
",
    "{attempt_function}",
    "ALTER TABLE verrou_audit ADD COLUMN note TEXT;",
    r"
ALTER TABLE verrou_audit ADD COLUMN org_id TEXT;
CREATE INDEX verrou_audit_by_org ON verrou_audit (org_id, user_id);
",
];

/// How a dialect spells what the migrations leave open.
pub(crate) struct Spelling {
    /// A binary column.
    pub(crate) blob: &'static str,
    /// An auto-increment primary key.
    pub(crate) serial: &'static str,
    /// The definition of the function a verification's write runs as one call
    /// ([`Dialect::ATTEMPT_CALL`](super::driver::Dialect::ATTEMPT_CALL)); empty where the
    /// dialect has none.
    pub(crate) attempt_function: &'static str,
}

/// The migrations after `from`, in order, with their target version, spelled with `types`.
pub(crate) fn pending_migrations(
    from: i64,
    types: &Spelling,
) -> Result<Vec<(i64, String)>, StoreError> {
    if from > SCHEMA_VERSION {
        return Err(StoreError::new(
            StoreErrorKind::Incompatible,
            "the database schema is newer than this version of verrou: upgrade verrou",
        ));
    }
    if from < 0 {
        return Err(StoreError::new(
            StoreErrorKind::Corrupt,
            "the recorded schema version is negative",
        ));
    }
    Ok(MIGRATIONS
        .iter()
        .zip(1..)
        .filter(|(_, to)| *to > from)
        .map(|(sql, to)| {
            let sql = sql
                .replace("{blob}", types.blob)
                .replace("{serial}", types.serial)
                .replace("{attempt_function}", types.attempt_function);
            (to, sql)
        })
        .collect())
}

/// The table that records the schema version: one row.
pub(crate) const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS verrou_schema_version (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    version BIGINT NOT NULL
)";

#[cfg(test)]
mod tests {
    use super::*;

    const TEST: Spelling = Spelling {
        blob: "BLOB",
        serial: "SERIAL",
        attempt_function: "CREATE FUNCTION f() ...",
    };

    #[test]
    fn a_new_database_gets_every_migration_in_order() {
        let all = pending_migrations(0, &TEST).unwrap();
        let versions: Vec<i64> = all.iter().map(|(v, _)| *v).collect();
        assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
        assert!(all.iter().all(|(_, sql)| !sql.contains('{')));
    }

    #[test]
    fn an_older_database_gets_only_the_missing_ones() {
        let missing = pending_migrations(1, &TEST).unwrap();
        assert_eq!(missing.len(), 6);
        assert!(missing[0].1.contains("verrou_audit"));
        assert!(missing[1].1.contains("verrou_sessions"));
        assert!(missing[2].1.contains("verrou_key_check"));
        assert_eq!(missing[3].1, TEST.attempt_function);
        assert!(missing[5].1.contains("org_id"));
        assert!(pending_migrations(SCHEMA_VERSION, &TEST)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn newer_and_negative_versions_are_refused() {
        let newer = pending_migrations(SCHEMA_VERSION + 1, &TEST).unwrap_err();
        assert_eq!(newer.kind(), StoreErrorKind::Incompatible);
        let negative = pending_migrations(-1, &TEST).unwrap_err();
        assert_eq!(negative.kind(), StoreErrorKind::Corrupt);
    }
}
