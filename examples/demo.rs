//! A runnable tour of enrolment and verification, on the real clock.
//!
//! `cargo run --example demo` enrols a demo user, prints the `otpauth://` URI and its QR code
//! (and writes `qr.svg` and `qr.png` under `target/verrou-demo/`). In a terminal it then asks
//! for codes from your authenticator app; without a terminal (CI) it plays the app itself.
//! Either way it shows a code accepted, the same code refused as a replay, a set of recovery
//! codes and one of them used (once), malformed input refused without being counted, and the
//! throttle after repeated wrong codes.
//!
//! It runs on the embedded default store, SQLite, in `target/verrou-demo/verrou.db` (made
//! afresh each run), and ends by reading the audit trail back from that file. The secret is
//! stored sealed under a key ring; the demo's key is random and lives only as long as the run.
//!
//! The demo prints the secret because it is throwaway: a portal never logs it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use secrecy::ExposeSecret;
use verrou::store::SqliteStore;
use verrou::testing::{insecure_code_at, insecure_key_ring};
use verrou::{
    ClientContext, Clock, EnrollmentOutcome, RecoveryCodesOutcome, SystemClock, TotpOutcome,
    TotpSecret, UserId, Verrou, VerrouConfig,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from("target").join("verrou-demo");
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("verrou.db");
    for stale in ["verrou.db", "verrou.db-wal", "verrou.db-shm"] {
        match std::fs::remove_file(dir.join(stale)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    let store = SqliteStore::open(&db, insecure_key_ring()?).await?;
    println!("store: SQLite at {}", db.display());
    let verrou = Verrou::new(store, VerrouConfig::new("verrou demo")?);
    let user = UserId::new("partner-0042")?;
    let ctx = ClientContext::from_addr("127.0.0.1".parse()?);
    let interactive = std::io::stdin().is_terminal() && std::env::var_os("CI").is_none();

    println!("== Enrolment ==");
    let offer = verrou
        .start_totp_enrollment(&user, "marie.dupont@formation-exemple.fr", &ctx)
        .await?;
    let uri = offer.otpauth_uri().expose_secret();
    println!("otpauth URI: {uri}");
    println!("{}", verrou::totp::qr_terminal(uri)?.expose_secret());
    std::fs::write(dir.join("qr.svg"), offer.qr_svg()?.expose_secret())?;
    std::fs::write(dir.join("qr.png"), offer.qr_png()?.expose_secret())?;
    println!(
        "QR code also written to {}/qr.svg and qr.png",
        dir.display()
    );
    println!(
        "pending until {} (unix time)",
        offer.expires_at().unix_seconds()
    );

    // Plays the phone when there is no person at the keyboard.
    let secret = TotpSecret::from_base32(offer.secret_base32().expose_secret())?;
    let app = |step_offset: u64| {
        let now = SystemClock.now().unwrap();
        insecure_code_at(
            &secret,
            offer.params(),
            now.saturating_add(Duration::from_secs(30 * step_offset)),
        )
    };
    let ask = |prompt: &str, simulated: String| -> String {
        if !interactive {
            println!("{prompt} {simulated}   (simulated authenticator app)");
            return simulated;
        }
        print!("{prompt} ");
        std::io::stdout().flush().ok();
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).ok();
        line.trim_end_matches(['\r', '\n']).to_owned()
    };

    loop {
        let code = ask(
            "Scan the QR code, then type the code your app shows:",
            app(0),
        );
        match verrou.finish_totp_enrollment(&user, &code, &ctx).await? {
            EnrollmentOutcome::Confirmed { factor, .. } => {
                println!(
                    "-> confirmed: factor {factor} is active; that code's time step is now used"
                );
                break;
            }
            other => println!("-> {other:?}; try again"),
        }
    }

    println!("\n== Login ==");
    if !interactive {
        println!("(the simulated app uses the next time step; a person would wait for a new code)");
    }
    let code = ask("Type a new code from your app:", app(1));
    let outcome = verrou.verify_totp(&user, &code, &ctx).await?;
    println!("-> {}", describe(&outcome));
    if let TotpOutcome::Accepted(accepted) = &outcome {
        println!("Submitting the same code again (what an attacker who saw it would do):");
        let again = verrou.verify_totp(&user, &code, &ctx).await?;
        println!("-> {}", describe(&again));

        println!("\n== Recovery codes (they need the fresh second factor just given) ==");
        if let RecoveryCodesOutcome::Generated(set) = verrou
            .generate_recovery_codes(&accepted.proof, &ctx)
            .await?
        {
            for code in set.codes() {
                println!("  {}", code.expose_secret());
            }
            let first = set
                .codes()
                .first()
                .map(|c| c.expose_secret().to_lowercase());
            let first = first.unwrap_or_default();
            println!("Using the first one, typed in lowercase ({first}):");
            println!(
                "-> {:?}",
                verrou.verify_recovery_code(&user, &first, &ctx).await?
            );
            println!("Using it again:");
            println!(
                "-> {:?}",
                verrou.verify_recovery_code(&user, &first, &ctx).await?
            );
        }
    }

    println!("\n== Bad input ==");
    for input in ["12345", "١٢٣٤٥٦", "+12345", "12 34 5x"] {
        let outcome = verrou.verify_totp(&user, input, &ctx).await?;
        println!("{input:>10} -> {} (not counted)", describe(&outcome));
    }

    println!("\n== Guessing ==");
    for guess in ["000000", "111111", "222222", "333333", "444444"] {
        let outcome = verrou.verify_totp(&user, guess, &ctx).await?;
        println!("{guess} -> {}", describe(&outcome));
    }

    println!();
    println!("== Audit trail, read back from {} ==", db.display());
    for event in verrou.audit_trail(Some(&user), 50).await?.iter().rev() {
        println!("{} {}", event.at.unix_seconds(), event.kind.name());
    }
    verrou.store().close().await;
    Ok(())
}

fn describe(outcome: &TotpOutcome) -> String {
    match outcome {
        TotpOutcome::Accepted(accepted) => {
            format!(
                "accepted (step {}, drift {:+})",
                accepted.step, accepted.drift
            )
        }
        TotpOutcome::Invalid => "invalid code (counted as a failure)".into(),
        TotpOutcome::Replayed => "refused: this time step was already used (replay)".into(),
        TotpOutcome::Throttled { retry_after } => {
            format!(
                "throttled: not checked, retry in {} s",
                retry_after.as_secs()
            )
        }
        TotpOutcome::Locked { until: Some(until) } => {
            format!("locked until unix time {}", until.unix_seconds())
        }
        TotpOutcome::Locked { until: None } => "locked until an operator lifts it".into(),
        TotpOutcome::Malformed(reason) => format!("malformed: {reason}"),
        TotpOutcome::NotEnrolled => "no active factor".into(),
        other => format!("{other:?}"),
    }
}
