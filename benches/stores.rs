//! Verifications per second through each persistent store, measured in one run on this
//! machine: SQLite (WAL, `synchronous=FULL`, a temporary file) and, when
//! `VERROU_TEST_POSTGRES_URL` names a server, PostgreSQL (a temporary schema, dropped after).
//!
//! `USERS` users verify concurrently, each a fresh (accepted) code per round: every
//! verification is the whole production path (the account throttle reservation, the factor
//! load, the step's atomic acceptance, the audit record). On PostgreSQL the users are spread
//! over two store handles (two pools: two portal instances). The floor, measured just before
//! on the same database with the same concurrency, is the least a verification's write could
//! be: on SQLite `BEGIN IMMEDIATE; UPDATE … RETURNING; COMMIT` (through one connection, the
//! fastest way SQLite commits), on PostgreSQL one `UPDATE … RETURNING` round trip. The ratio is
//! verifications per second over floor operations per second; target at least 0.8.
//! Each backend is measured in `RUNS` rounds, floor then verrou on a fresh database each, and
//! the median ratio is reported beside every round.
//! Run: `cargo bench --bench stores --features sqlite,postgres`.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::Barrier;
use verrou::store::{PostgresStore, SqliteStore, Store};
use verrou::testing::{insecure_code_at, insecure_enroll, insecure_key_ring, InsecureManualClock};
use verrou::{
    ClientContext, FactorId, Timestamp, TotpOutcome, TotpParams, UserId, Verrou, VerrouConfig,
};

/// Concurrent users (requests in flight).
const USERS: usize = 16;
/// Verifications per user per backend.
const ROUNDS: usize = 60;
const START: u64 = 1_795_000_000;

fn at(seconds: u64) -> Timestamp {
    Timestamp::from_unix_seconds(seconds).unwrap()
}

/// Verifications per second: `USERS` tasks, `ROUNDS` accepted codes each, the users spread
/// over `stores` (handles on one database: two for PostgreSQL, as two portal instances).
async fn throughput<S: Store + Clone + 'static>(stores: &[S]) -> f64 {
    let barrier = Arc::new(Barrier::new(USERS + 1));
    let mut tasks = Vec::new();
    for i in 0..USERS {
        let clock = InsecureManualClock::new(at(START));
        let store = stores[i % stores.len()].clone();
        let verrou =
            Verrou::new(store, VerrouConfig::new("Bench").unwrap()).with_clock(clock.clone());
        let user = UserId::new(format!("bench-{i}")).unwrap();
        let secret = insecure_enroll(&verrou, &user).await.unwrap().unwrap();
        // Codes computed up front: the timing is the service and its store.
        let codes: Vec<(u64, String)> = (1..=ROUNDS as u64)
            .map(|r| {
                let t = START + 30 * r;
                (t, insecure_code_at(&secret, TotpParams::DEFAULT, at(t)))
            })
            .collect();
        let ctx = ClientContext::from_addr(IpAddr::V4(Ipv4Addr::new(192, 0, 2, i as u8)));
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            for (t, code) in codes {
                clock.set_unix_seconds(t);
                let outcome = verrou.verify_totp(&user, &code, &ctx).await.unwrap();
                assert!(matches!(outcome, TotpOutcome::Accepted(_)), "{outcome:?}");
            }
        }));
    }
    barrier.wait().await;
    let started = Instant::now();
    for task in tasks {
        task.await.unwrap();
    }
    (USERS * ROUNDS) as f64 / started.elapsed().as_secs_f64()
}

/// The floor's operations per second through `pool`, `USERS` tasks at a time: on SQLite
/// `BEGIN IMMEDIATE; UPDATE … RETURNING; COMMIT` (the write transaction a verification
/// needs at the least, empty of everything else), on PostgreSQL one `UPDATE … RETURNING`
/// (one round trip, committed on its own). Each task updates a row of its own, as each user's
/// verification updates that user's factor.
async fn floor<DB>(pool: sqlx::Pool<DB>, transaction: bool) -> f64
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    i64: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB> + for<'r> sqlx::Decode<'r, DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    sqlx::query("CREATE TABLE bench_floor (task BIGINT PRIMARY KEY, n BIGINT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    for task in 0..USERS as i64 {
        sqlx::query("INSERT INTO bench_floor (task, n) VALUES ($1, 0)")
            .bind(task)
            .execute(&pool)
            .await
            .unwrap();
    }
    let barrier = Arc::new(Barrier::new(USERS + 1));
    let tasks: Vec<_> = (0..USERS as i64)
        .map(|task| {
            let (pool, barrier) = (pool.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                for _ in 0..ROUNDS {
                    let update = "UPDATE bench_floor SET n = n + 1 WHERE task = $1 RETURNING n";
                    if transaction {
                        let mut conn = pool.acquire().await.unwrap();
                        sqlx::raw_sql("BEGIN IMMEDIATE")
                            .execute(&mut *conn)
                            .await
                            .unwrap();
                        let row = sqlx::query(update).bind(task).fetch_one(&mut *conn).await;
                        let _: i64 = sqlx::Row::get(&row.unwrap(), 0usize);
                        sqlx::raw_sql("COMMIT").execute(&mut *conn).await.unwrap();
                    } else {
                        let row = sqlx::query(update).bind(task).fetch_one(&pool).await;
                        let _: i64 = sqlx::Row::get(&row.unwrap(), 0usize);
                    }
                }
            })
        })
        .collect();
    barrier.wait().await;
    let started = Instant::now();
    for task in tasks {
        task.await.unwrap();
    }
    let per_second = (USERS * ROUNDS) as f64 / started.elapsed().as_secs_f64();
    pool.close().await;
    per_second
}

async fn postgres(url: &str, keys: &verrou::KeyRing) -> (PostgresStore, String) {
    let schema = format!("verrou_bench_{}", FactorId::generate().unwrap());
    let store = PostgresStore::connect_in_schema(url, &schema, keys.clone())
        .await
        .unwrap();
    (store, schema)
}

async fn drop_schema(url: &str, schema: &str) {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    // `schema` is our own random, validated name.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA \"{schema}\" CASCADE"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
}

/// Rounds per backend: each measures the floor and then verrou on a fresh database, so a
/// slow moment of the disk or the server weighs on both sides of one ratio.
const RUNS: usize = 3;

async fn sqlite_round() -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.db");
    let sqlite = SqliteStore::open(&path, insecure_key_ring().unwrap())
        .await
        .unwrap();
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(std::time::Duration::from_secs(10));
    // One connection: SQLite commits one writer at a time, and queueing writers in the
    // process (as the store does) is the fastest way to commit; a larger pool only adds
    // sleeps in SQLite's busy handler.
    // No ping before each statement (sqlx's default): the floor is the statement alone.
    let raw = SqlitePoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false);
    let commits = floor(raw.connect_with(options).await.unwrap(), true).await;
    let verifications = throughput(std::slice::from_ref(&sqlite)).await;
    sqlite.close().await;
    (verifications, commits)
}

async fn postgres_round(url: &str) -> (f64, f64) {
    let keys = insecure_key_ring().unwrap();
    let (store, schema) = postgres(url, &keys).await;
    let second = PostgresStore::connect_in_schema(url, &schema, keys)
        .await
        .unwrap();
    let options: PgConnectOptions = url.parse().unwrap();
    let options = options.options([("search_path", schema.as_str())]);
    // As many connections as the two stores' pools together.
    let raw = PgPoolOptions::new()
        .max_connections(20)
        .test_before_acquire(false);
    let commits = floor(raw.connect_with(options).await.unwrap(), false).await;
    let verifications = throughput(&[store.clone(), second.clone()]).await;
    store.close().await;
    second.close().await;
    drop_schema(url, &schema).await;
    (verifications, commits)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        println!("{USERS} concurrent users x {ROUNDS} accepted verifications per backend");
        let mut rounds = Vec::new();
        for _ in 0..RUNS {
            rounds.push(sqlite_round().await);
        }
        report("sqlite", &rounds);
        match std::env::var("VERROU_TEST_POSTGRES_URL") {
            Ok(url) => {
                let mut rounds = Vec::new();
                for _ in 0..RUNS {
                    rounds.push(postgres_round(&url).await);
                }
                report("postgres", &rounds);
            }
            Err(_) => println!("postgres: skipped (VERROU_TEST_POSTGRES_URL is not set)"),
        }
    });
}

/// Target: verifications per second at least this share of the floor's operations.
const TARGET: f64 = 0.8;

fn report(name: &str, rounds: &[(f64, f64)]) {
    for (verifications, floor) in rounds {
        println!(
            "{name:>8}: {verifications:>7.0} verifications/s, floor {floor:>7.0}/s: {:.2} of the floor",
            verifications / floor
        );
    }
    let mut ratios: Vec<f64> = rounds.iter().map(|(v, f)| v / f).collect();
    ratios.sort_by(f64::total_cmp);
    let median = ratios.get(ratios.len() / 2).copied().unwrap_or(f64::NAN);
    println!(
        "{name:>8}: median {median:.2} of the floor's throughput (of {}; target >= {TARGET})",
        ratios.len()
    );
    println!("PERF\tstore_{name}\t{median:.2}\t>= {TARGET}");
}
