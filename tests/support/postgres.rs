//! A PostgreSQL schema per test, from `VERROU_TEST_POSTGRES_URL`, dropped when the test ends.

use sqlx::PgConnection;
use verrou::FactorId;

const URL_VAR: &str = "VERROU_TEST_POSTGRES_URL";

/// Drops its schema when the case ends (on a thread of its own: `Drop` cannot await).
#[derive(Debug)]
pub struct Schema {
    pub url: String,
    pub name: String,
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                use sqlx::Connection as _;
                let mut conn = PgConnection::connect(&url).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
                )))
                .execute(&mut conn)
                .await
                .unwrap();
            });
        })
        .join();
        if dropped.is_err() && !std::thread::panicking() {
            panic!("could not drop test schema {}", self.name);
        }
    }
}

/// The server URL and a fresh schema name.
pub fn server() -> (String, Schema) {
    let url = std::env::var(URL_VAR).unwrap_or_else(|_| {
        panic!("{URL_VAR} is not set: point it at a PostgreSQL server (see the README)")
    });
    let name = format!("verrou_test_{}", FactorId::generate().unwrap());
    (url.clone(), Schema { url, name })
}
