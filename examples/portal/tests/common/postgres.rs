//! A PostgreSQL schema of a test's own on `VERROU_TEST_POSTGRES_URL`, dropped when the test
//! ends however it ends: the database several portal instances share. Included by the web and
//! the browser tests (`#[path]`).

/// A fresh schema; the URL that puts the portal's and verrou's tables in it.
pub struct Schema {
    url: String,
    name: String,
    /// The database URL for the portal (`search_path` set to the schema).
    pub database: String,
}

impl Schema {
    pub async fn create() -> Self {
        use sqlx::Connection as _;
        let url = std::env::var("VERROU_TEST_POSTGRES_URL").unwrap_or_else(|_| {
            panic!(
                "VERROU_TEST_POSTGRES_URL is not set: point it at a PostgreSQL server (see the README)"
            )
        });
        let name = format!("portal_test_{}", verrou::FactorId::generate().unwrap());
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        let create = format!("CREATE SCHEMA \"{name}\"");
        sqlx::raw_sql(sqlx::AssertSqlSafe(create))
            .execute(&mut conn)
            .await
            .unwrap();
        let database = format!("{url}?options=-c%20search_path%3D{name}");
        Self {
            url,
            name,
            database,
        }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                use sqlx::Connection as _;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&url).await {
                    let drop = format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE");
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}
