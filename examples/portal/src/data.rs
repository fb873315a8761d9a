//! The portal's own data, beside verrou's store: partner organisations, their staff (with
//! argon2id password hashes) and the job-seekers each organisation follows. One SQLite file.

use argon2::password_hash::phc::PasswordHash;
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use rand::rngs::SysRng;
use rand::TryRng;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

/// What can go wrong with the portal's data.
#[derive(Debug)]
pub enum DataError {
    /// The database.
    Db(sqlx::Error),
    /// Hashing a password (the OS RNG or argon2).
    Hashing,
}

impl std::fmt::Display for DataError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Db(error) => write!(f, "portal database: {error}"),
            Self::Hashing => f.write_str("password hashing failed"),
        }
    }
}

impl std::error::Error for DataError {}

impl From<sqlx::Error> for DataError {
    fn from(error: sqlx::Error) -> Self {
        Self::Db(error)
    }
}

/// What a staff member may do.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Role {
    /// A training provider's employee: their organisation's job-seekers.
    Staff,
    /// The agency's operator: no job-seeker data; sessions and accounts.
    Operator,
}

/// A portal account.
#[derive(Clone, Debug)]
pub struct Staff {
    pub login: String,
    pub name: String,
    pub org: Option<String>,
    pub org_name: Option<String>,
    pub role: Role,
}

/// One row of the job-seeker list.
#[derive(Clone, Debug)]
pub struct Seeker {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub phone: String,
    pub town: String,
    pub status: String,
}

/// A demo account as printed at start.
#[derive(Clone, Debug)]
pub struct DemoAccount {
    pub login: String,
    pub password: String,
    pub org: String,
    pub totp_secret: Option<String>,
}

/// The tables (written for SQLite; [`postgres_schema`] derives PostgreSQL's).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS orgs (id TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS staff (
    login TEXT PRIMARY KEY,
    org TEXT REFERENCES orgs(id),
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('staff', 'operator')),
    password TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS job_seekers (
    id INTEGER PRIMARY KEY,
    org TEXT NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    phone TEXT NOT NULL,
    town TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS job_seekers_by_org ON job_seekers (org, name);
CREATE TABLE IF NOT EXISTS exports (
    id INTEGER PRIMARY KEY,
    org TEXT NOT NULL,
    login TEXT NOT NULL,
    session TEXT NOT NULL,
    at INTEGER NOT NULL,
    day INTEGER NOT NULL,
    records INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS exports_by_org_day ON exports (org, day);
CREATE INDEX IF NOT EXISTS exports_by_session ON exports (session, at);
CREATE TABLE IF NOT EXISTS portal_audit (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    login TEXT NOT NULL,
    org TEXT,
    kind TEXT NOT NULL,
    day INTEGER NOT NULL,
    detail TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS one_cap_alert_a_day ON portal_audit (org, day)
    WHERE kind = 'export_cap_alert';
CREATE TABLE IF NOT EXISTS password_failures (
    key TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS password_failures_by_key ON password_failures (key, at);
CREATE TABLE IF NOT EXISTS demo_accounts (
    login TEXT PRIMARY KEY,
    password TEXT NOT NULL,
    totp_secret TEXT
);
";

/// The portal's database.
#[derive(Clone, Debug)]
pub struct PortalDb {
    pool: AnyPool,
    /// A hash verified for unknown logins, so that they cost what a known one does.
    dummy_hash: String,
    /// Password verifications at once: one per core. Each takes 19 MiB and a core for tens
    /// of milliseconds; more at once only share the cores (every sign-in slower) and add
    /// 19 MiB each, so a burst of sign-ins would otherwise cost memory without bound.
    hashing: std::sync::Arc<tokio::sync::Semaphore>,
}

impl PortalDb {
    /// Opens the database at `url`: `sqlite://<path>?mode=rwc` (created if missing) or
    /// `postgres://…` (several portal instances sharing it), and creates its tables.
    pub async fn open(url: &str) -> Result<Self, DataError> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .connect(url)
            .await?;
        let schema = if url.starts_with("postgres") {
            postgres_schema()
        } else {
            SCHEMA.to_owned()
        };
        sqlx::raw_sql(sqlx::AssertSqlSafe(schema))
            .execute(&pool)
            .await?;
        let dummy_hash = hash_password("a password nobody has")?;
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let hashing = std::sync::Arc::new(tokio::sync::Semaphore::new(cores));
        Ok(Self {
            pool,
            dummy_hash,
            hashing,
        })
    }

    /// The URL of a SQLite file at `path`.
    pub fn sqlite_url(path: &std::path::Path) -> String {
        format!("sqlite://{}?mode=rwc", path.display())
    }

    /// Removes what an interrupted first start left behind, so that the demo data is created
    /// whole.
    pub async fn clear_demo(&self) -> Result<(), DataError> {
        sqlx::raw_sql(
            "DELETE FROM demo_accounts; DELETE FROM exports; DELETE FROM portal_audit; \
             DELETE FROM password_failures; \
             DELETE FROM staff; DELETE FROM job_seekers; DELETE FROM orgs;",
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// How many demo accounts are complete (each is recorded last, after its organisation's
    /// job-seekers, its staff row and its factor).
    pub async fn demo_accounts_count(&self) -> Result<i64, DataError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM demo_accounts")
            .fetch_one(&self.pool)
            .await?)
    }

    pub async fn insert_org(&self, id: &str, name: &str) -> Result<(), DataError> {
        sqlx::query("INSERT INTO orgs (id, name) VALUES ($1, $2)")
            .bind(id)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn insert_staff(
        &self,
        login: &str,
        name: &str,
        org: Option<&str>,
        role: Role,
        password: &str,
    ) -> Result<(), DataError> {
        self.insert_staff_hashed(login, name, org, role, &hash_password(password)?)
            .await
    }

    /// A staff account with an argon2id PHC string already computed (many accounts sharing
    /// one password hash, as the load bench creates them).
    pub async fn insert_staff_hashed(
        &self,
        login: &str,
        name: &str,
        org: Option<&str>,
        role: Role,
        hash: &str,
    ) -> Result<(), DataError> {
        let role = match role {
            Role::Staff => "staff",
            Role::Operator => "operator",
        };
        sqlx::query(
            "INSERT INTO staff (login, org, name, role, password) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(login)
        .bind(org)
        .bind(name)
        .bind(role)
        .bind(hash)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn insert_demo_account(
        &self,
        login: &str,
        password: &str,
        totp_secret: Option<&str>,
    ) -> Result<(), DataError> {
        sqlx::query("INSERT INTO demo_accounts (login, password, totp_secret) VALUES ($1, $2, $3)")
            .bind(login)
            .bind(password)
            .bind(totp_secret)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn demo_accounts(&self) -> Result<Vec<DemoAccount>, DataError> {
        let rows = sqlx::query(
            "SELECT d.login, d.password, d.totp_secret, COALESCE(o.name, 'operator') AS org \
             FROM demo_accounts d JOIN staff s ON s.login = d.login \
             LEFT JOIN orgs o ON o.id = s.org ORDER BY s.role DESC, o.name, d.login",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(DemoAccount {
                    login: row.try_get("login")?,
                    password: row.try_get("password")?,
                    org: row.try_get("org")?,
                    totp_secret: row.try_get("totp_secret")?,
                })
            })
            .collect()
    }

    /// Inserts job-seekers in one transaction.
    pub async fn insert_seekers(&self, org: &str, seekers: &[Seeker]) -> Result<(), DataError> {
        let mut tx = self.pool.begin().await?;
        for seeker in seekers {
            sqlx::query(
                "INSERT INTO job_seekers (org, name, email, phone, town, status) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(org)
            .bind(&seeker.name)
            .bind(&seeker.email)
            .bind(&seeker.phone)
            .bind(&seeker.town)
            .bind(&seeker.status)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The account `login` if `password` is its password. An unknown login costs one argon2
    /// verification too, so timing does not tell which logins exist.
    pub async fn check_password(
        &self,
        login: &str,
        password: &str,
    ) -> Result<Option<Staff>, DataError> {
        let row = sqlx::query(
            "SELECT s.login, s.name, s.org, o.name AS org_name, s.role, s.password \
             FROM staff s LEFT JOIN orgs o ON o.id = s.org WHERE s.login = $1",
        )
        .bind(login)
        .fetch_optional(&self.pool)
        .await?;
        let stored: String = match &row {
            Some(row) => row.try_get("password")?,
            None => self.dummy_hash.clone(),
        };
        let password = password.to_owned();
        // Waiting for a turn, not holding a connection; a closed gate (never: it lives as
        // long as the database) counts as a failed check.
        let Ok(_turn) = self.hashing.acquire().await else {
            return Ok(None);
        };
        let matches = tokio::task::spawn_blocking(move || verify_password(&password, &stored))
            .await
            .unwrap_or(false);
        match row {
            Some(row) if matches => Ok(Some(staff_from(&row)?)),
            _ => Ok(None),
        }
    }

    pub async fn staff(&self, login: &str) -> Result<Option<Staff>, DataError> {
        let row = sqlx::query(
            "SELECT s.login, s.name, s.org, o.name AS org_name, s.role \
             FROM staff s LEFT JOIN orgs o ON o.id = s.org WHERE s.login = $1",
        )
        .bind(login)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(staff_from).transpose()?)
    }

    /// A page of `org`'s job-seekers whose name, e-mail or town contains `search`, and how
    /// many match in all.
    pub async fn seekers(
        &self,
        org: &str,
        search: &str,
        page: u32,
        per_page: u32,
    ) -> Result<(Vec<Seeker>, i64), DataError> {
        let pattern = format!(
            "%{}%",
            search
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM job_seekers WHERE org = $1 AND (LOWER(name) LIKE LOWER($2) ESCAPE '\\' \
             OR LOWER(email) LIKE LOWER($2) ESCAPE '\\' OR LOWER(town) LIKE LOWER($2) ESCAPE '\\')",
        )
        .bind(org)
        .bind(&pattern)
        .fetch_one(&self.pool)
        .await?;
        let rows = sqlx::query(
            "SELECT id, name, email, phone, town, status FROM job_seekers WHERE org = $1 \
             AND (LOWER(name) LIKE LOWER($2) ESCAPE '\\' OR LOWER(email) LIKE LOWER($2) ESCAPE '\\' OR LOWER(town) LIKE LOWER($2) ESCAPE '\\') \
             ORDER BY name, id LIMIT $3 OFFSET $4",
        )
        .bind(org)
        .bind(&pattern)
        .bind(i64::from(per_page))
        .bind(i64::from(page.saturating_sub(1)) * i64::from(per_page))
        .fetch_all(&self.pool)
        .await?;
        let seekers = rows.iter().map(seeker_from).collect::<Result<_, _>>()?;
        Ok((seekers, total))
    }

    /// One of `org`'s job-seekers (another organisation's record is not found).
    pub async fn seeker(&self, org: &str, id: i64) -> Result<Option<Seeker>, DataError> {
        let row = sqlx::query(
            "SELECT id, name, email, phone, town, status FROM job_seekers WHERE org = $1 AND id = $2",
        )
        .bind(org)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(seeker_from).transpose()?)
    }
}

impl PortalDb {
    /// Every organisation: id and name.
    pub async fn orgs(&self) -> Result<Vec<(String, String)>, DataError> {
        let rows = sqlx::query("SELECT id, name FROM orgs ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("id")?, row.try_get("name")?)))
            .collect()
    }

    /// Each staff member's organisation (operators have none).
    pub async fn staff_orgs(&self) -> Result<Vec<(String, String)>, DataError> {
        let rows = sqlx::query("SELECT login, org FROM staff WHERE org IS NOT NULL")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("login")?, row.try_get("org")?)))
            .collect()
    }
}

impl PortalDb {
    /// How many failed sign-ins `key` (a login or an address) had after `since`, and the
    /// oldest of them.
    pub async fn password_failures(
        &self,
        key: &str,
        since: i64,
    ) -> Result<(i64, Option<i64>), DataError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(at) AS oldest FROM password_failures \
             WHERE key = $1 AND at > $2",
        )
        .bind(key)
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("n")?, row.try_get("oldest")?))
    }

    /// Counts a failed sign-in against each of `keys`, and forgets those older than `forget`.
    pub async fn record_password_failure(
        &self,
        keys: &[&str],
        at: i64,
        forget: i64,
    ) -> Result<(), DataError> {
        for key in keys {
            sqlx::query("INSERT INTO password_failures (key, at) VALUES ($1, $2)")
                .bind(*key)
                .bind(at)
                .execute(&self.pool)
                .await?;
        }
        sqlx::query("DELETE FROM password_failures WHERE at < $1")
            .bind(forget)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets `key`'s failures (after a correct password).
    pub async fn clear_password_failures(&self, key: &str) -> Result<(), DataError> {
        sqlx::query("DELETE FROM password_failures WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// An export the organisation's daily cap allowed, or why not.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum ExportGrant {
    /// Recorded: the organisation has now exported `used_today` records today.
    Granted { used_today: i64 },
    /// Refused: it would take the organisation past its cap (`used_today` so far).
    OverCap { used_today: i64 },
}

/// A portal audit record (exports and their alerts; verrou keeps its own trail).
#[derive(Clone, Debug)]
pub struct PortalEvent {
    pub at: i64,
    pub login: String,
    pub org: Option<String>,
    pub kind: String,
    pub detail: String,
}

impl PortalDb {
    /// How many exports `session` made since `since` (unix seconds), and the oldest of them.
    pub async fn session_exports_since(
        &self,
        session: &str,
        since: i64,
    ) -> Result<(i64, Option<i64>), DataError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(at) AS oldest FROM exports WHERE session = $1 AND at >= $2",
        )
        .bind(session)
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("n")?, row.try_get("oldest")?))
    }

    /// Records an export of `records` rows for `org` on `day` if the organisation stays within
    /// `cap` for that day, in one statement (so concurrent exports, on any instance sharing the
    /// database, cannot together pass the cap).
    #[allow(clippy::too_many_arguments)]
    pub async fn record_export(
        &self,
        org: &str,
        login: &str,
        session: &str,
        at: i64,
        day: i64,
        records: i64,
        cap: i64,
    ) -> Result<ExportGrant, DataError> {
        let inserted = sqlx::query(
            "INSERT INTO exports (org, login, session, at, day, records) \
             SELECT $1, $2, $3, $4, $5, $6 WHERE \
             (SELECT CAST(COALESCE(SUM(records), 0) AS BIGINT) FROM exports WHERE org = $1 AND day = $5) + $6 <= $7",
        )
        .bind(org)
        .bind(login)
        .bind(session)
        .bind(at)
        .bind(day)
        .bind(records)
        .bind(cap)
        .execute(&self.pool)
        .await?
        .rows_affected();
        let used_today: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(records), 0) AS BIGINT) FROM exports WHERE org = $1 AND day = $2",
        )
        .bind(org)
        .bind(day)
        .fetch_one(&self.pool)
        .await?;
        Ok(if inserted == 1 {
            ExportGrant::Granted { used_today }
        } else {
            ExportGrant::OverCap { used_today }
        })
    }

    /// Adds a record to the portal's audit trail. A second `export_cap_alert` for one
    /// organisation and day is dropped (returns `false`).
    pub async fn audit(
        &self,
        at: i64,
        login: &str,
        org: Option<&str>,
        kind: &str,
        detail: &str,
    ) -> Result<bool, DataError> {
        let inserted = sqlx::query(
            "INSERT INTO portal_audit (at, login, org, kind, day, detail) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(at)
        .bind(login)
        .bind(org)
        .bind(kind)
        .bind(at.div_euclid(86_400))
        .bind(detail)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if inserted == 1 {
            tracing::info!(target: "portal::audit", kind, login, org, detail);
        }
        Ok(inserted == 1)
    }

    /// The portal's audit records, newest first.
    pub async fn audit_trail(&self, limit: i64) -> Result<Vec<PortalEvent>, DataError> {
        let rows = sqlx::query(
            "SELECT at, login, org, kind, detail FROM portal_audit ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(PortalEvent {
                    at: row.try_get("at")?,
                    login: row.try_get("login")?,
                    org: row.try_get("org")?,
                    kind: row.try_get("kind")?,
                    detail: row.try_get("detail")?,
                })
            })
            .collect()
    }
}

/// [`SCHEMA`] for PostgreSQL: identity keys and 64-bit integers where SQLite's `INTEGER`
/// already is one.
fn postgres_schema() -> String {
    SCHEMA
        .replace(
            "id INTEGER PRIMARY KEY",
            "id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        )
        .replace(" INTEGER NOT NULL", " BIGINT NOT NULL")
}

fn staff_from(row: &AnyRow) -> Result<Staff, sqlx::Error> {
    let role: String = row.try_get("role")?;
    Ok(Staff {
        login: row.try_get("login")?,
        name: row.try_get("name")?,
        org: row.try_get("org")?,
        org_name: row.try_get("org_name")?,
        role: if role == "operator" {
            Role::Operator
        } else {
            Role::Staff
        },
    })
}

fn seeker_from(row: &AnyRow) -> Result<Seeker, sqlx::Error> {
    Ok(Seeker {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        phone: row.try_get("phone")?,
        town: row.try_get("town")?,
        status: row.try_get("status")?,
    })
}

/// An argon2id PHC string (OWASP parameters, the crate's default) with a fresh salt.
pub fn hash_password(password: &str) -> Result<String, DataError> {
    let mut salt = [0u8; 16];
    SysRng
        .try_fill_bytes(&mut salt)
        .map_err(|_| DataError::Hashing)?;
    Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|_| DataError::Hashing)
}

fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_postgres_schema_has_no_sqlite_integer_left() {
        let schema = super::postgres_schema();
        assert!(!schema.contains("INTEGER"), "{schema}");
        assert_eq!(schema.matches("GENERATED ALWAYS AS IDENTITY").count(), 3);
    }
}
