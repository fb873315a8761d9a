//! `verrou-admin`: the operators' incident-response commands, over the same store and key
//! ring as the portal. `verrou-admin --help` lists them, `verrou-admin <command> --help`
//! explains one with an example.
//!
//! The store comes from `--store` or `VERROU_STORE` (`sqlite:<path>`, or a `postgres://` URL,
//! with `--pg-schema`/`VERROU_PG_SCHEMA` naming a schema if the portal uses one); the key ring
//! from `VERROU_KEYS` (see `verrou::keyring`) or the file named by `VERROU_KEYS_FILE`, never
//! from an argument (arguments are visible to every user of the machine).
//! Exit status: 0 done, 1 the operation did not complete (see its output), 2 bad usage or
//! configuration. Nothing it prints on error contains a key, secret or password.

mod cli;
mod commands;
mod output;
mod rotation;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use verrou::store::AnyStore;
use verrou::{KeyRing, KEYS_ENV};

use crate::cli::{Cli, Command, Global};
use crate::commands::on_store;
use crate::output::Format;

/// A failure, with the exit status it maps to.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Bad usage or configuration (2).
    Usage(String),
    /// The operation ran and failed or did not complete (1).
    Operation(String),
}

impl<E: std::error::Error> From<E> for Failure {
    fn from(error: E) -> Self {
        Self::Operation(error.to_string())
    }
}

/// Reads the key ring, then removes `VERROU_KEYS` from the environment so no child process
/// inherits the keys. Called before any other thread exists (the runtime starts after it),
/// the one time removing a variable is sound.
fn key_ring() -> Result<KeyRing, Failure> {
    let ring = match std::env::var_os("VERROU_KEYS_FILE") {
        Some(path) => KeyRing::from_file(path),
        None => KeyRing::from_env(KEYS_ENV),
    };
    std::env::remove_var(KEYS_ENV);
    ring.map_err(|e| Failure::Usage(format!("key ring: {e}")))
}

/// The store `global` names; on PostgreSQL in its schema when one is given.
async fn open(global: &Global, keys: KeyRing) -> Result<AnyStore, Failure> {
    let url = global.store.as_deref().ok_or_else(|| {
        Failure::Usage(
            "no store: give --store or set VERROU_STORE (sqlite:<path> or postgres://…)".into(),
        )
    })?;
    let postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
    if !url.starts_with("sqlite:") && !postgres {
        return Err(Failure::Usage(
            "the store must start with sqlite: or postgres://".into(),
        ));
    }
    #[cfg(feature = "postgres")]
    if let (true, Some(schema)) = (postgres, &global.pg_schema) {
        let store = verrou::store::PostgresStore::connect_in_schema(url, schema, keys).await?;
        return Ok(AnyStore::Postgres(store));
    }
    #[cfg(not(feature = "postgres"))]
    if postgres {
        return Err(Failure::Usage(
            "this verrou-admin was built without the postgres feature".into(),
        ));
    }
    Ok(AnyStore::open(url, keys).await?)
}

/// Runs `cli`: the commands that need no store first, then the others on the store.
fn run(cli: Cli) -> Result<(), Failure> {
    let format = if cli.global.json {
        Format::Json
    } else {
        Format::Text
    };
    match &cli.command {
        Command::GenerateKey { id } => {
            let entry = KeyRing::generate_entry(id)?;
            println!("{}", entry.as_str());
            return Ok(());
        }
        Command::Completions { shell } => {
            // Into a buffer first: clap_complete panics on a write error (a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "verrou-admin", &mut script);
            std::io::Write::write_all(&mut std::io::stdout(), &script)?;
            return Ok(());
        }
        _ => {}
    }
    let keys = key_ring()?;
    let ring = keys.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = open(&cli.global, keys).await?;
        let result = on_store(store.clone(), &ring, cli.command, format).await;
        store.close().await;
        result
    })
}

fn main() -> ExitCode {
    // A usage error prints clap's message (naming the bad argument) and exits with 2;
    // `--help` and `--version` print and exit with 0.
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("verrou-admin: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Operation(message)) => {
            eprintln!("verrou-admin: {message}");
            ExitCode::from(1)
        }
    }
}
