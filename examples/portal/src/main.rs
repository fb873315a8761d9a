//! `cargo run -p verrou-portal`: the example portal on SQLite, with demo data on first start.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use verrou::KeyRing;
use verrou_axum::TrustedProxies;
use verrou_portal::app::{system_clock, ExportLimits, Options, Portal};
use verrou_portal::keys::KeySource;

/// A training-provider portal on verrou: passwords, TOTP, recovery codes, device-bound sessions.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Where the portal keeps its files (portal.db, verrou.db, verrou-keys).
    #[arg(long, default_value = "portal-data")]
    data: PathBuf,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// A reverse proxy (address or network) whose X-Forwarded-For is believed; repeatable.
    #[arg(long = "trusted-proxy")]
    trusted_proxies: Vec<String>,
    /// A PostgreSQL URL for several instances sharing one database (also
    /// `VERROU_DATABASE_URL`); without it, SQLite files in the data directory.
    #[arg(long, env = "VERROU_DATABASE_URL")]
    database: Option<String>,
    /// Serve HTTPS with a certificate for localhost made on first start (what a browser's
    /// DBSC needs); prints the pin to start Chromium with.
    #[arg(long)]
    tls: bool,
    /// The key file (also `VERROU_KEYS_FILE`; default `verrou-keys` in the data directory).
    /// `SIGHUP` makes a running portal read it again: the live steps of a key rotation.
    /// `VERROU_KEYS`, if set, is used instead (and cannot be reloaded).
    #[arg(long, env = "VERROU_KEYS_FILE")]
    keys_file: Option<PathBuf>,
}

/// The key ring sealing TOTP secrets: `VERROU_KEYS` if set (read once), else the key file
/// (`--keys-file`, default `verrou-keys` in the data directory, created on first start with
/// owner-only permissions), which `SIGHUP` re-reads.
fn key_source(cli: &Cli) -> Result<KeySource, Box<dyn std::error::Error>> {
    if std::env::var_os(verrou::KEYS_ENV).is_some() {
        return Ok(KeySource::Fixed(KeyRing::from_env(verrou::KEYS_ENV)?));
    }
    let path = cli
        .keys_file
        .clone()
        .unwrap_or_else(|| cli.data.join("verrou-keys"));
    KeySource::file_created_if_missing(&path)
}

/// Takes a new key ring in on every `SIGHUP`, printing what happened (key ids only).
fn reload_keys_on_sighup(portal: Portal) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(error) => {
                eprintln!("SIGHUP will not reload the key ring: {error}");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            match portal.reload_keys().await {
                Ok(active) => println!("Key ring reloaded: the active key is {active}."),
                Err(error) => eprintln!("Key ring kept: {error}."),
            }
        }
    });
    #[cfg(not(unix))]
    drop(portal);
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    std::fs::create_dir_all(&cli.data)?;
    let proxies = TrustedProxies::new(cli.trusted_proxies.iter().map(String::as_str))?;
    let keys = key_source(&cli)?;
    let options = Options {
        proxies,
        database: cli.database.clone(),
        demo_per_mille: 1000,
        bound_cookie: std::time::Duration::from_secs(300),
        exports: ExportLimits::default(),
    };
    let portal = Portal::open(&cli.data, keys, system_clock(), options).await?;
    println!(
        "Partner portal (demo), data in {} (delete it to start over).",
        cli.data.display()
    );
    println!("Demo accounts (DEMO ONLY: passwords and secrets printed on purpose):");
    for account in portal.db.demo_accounts().await? {
        let factor = match &account.totp_secret {
            Some(secret) => format!("TOTP key {secret} (add it to an authenticator app)"),
            None => "no second factor yet: enrols at first sign-in".to_owned(),
        };
        println!(
            "  {:<10} {:<18} password {}  {factor}",
            account.login, account.org, account.password
        );
    }
    reload_keys_on_sighup(portal.clone());
    let service = portal
        .router()
        .into_make_service_with_connect_info::<SocketAddr>();
    if cli.tls {
        let tls = verrou_portal::tls::load_or_create(&cli.data).await?;
        let listener = std::net::TcpListener::bind(cli.listen)?;
        listener.set_nonblocking(true)?;
        println!(
            "Listening on https://localhost:{}/",
            listener.local_addr()?.port()
        );
        println!(
            "For DBSC, start Chromium with --user-data-dir=<a new directory> \\\n  \
             --ignore-certificate-errors-spki-list={} \\\n  \
             --enable-features=DeviceBoundSessions,\
             EnableBoundSessionCredentialsSoftwareKeysForManualTesting",
            tls.pin
        );
        axum_server::from_tcp_rustls(listener, tls.config)?
            .serve(service)
            .await?;
    } else {
        let listener = tokio::net::TcpListener::bind(cli.listen).await?;
        println!(
            "Listening on http://localhost:{}/",
            listener.local_addr()?.port()
        );
        axum::serve(listener, service)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
    }
    Ok(())
}
