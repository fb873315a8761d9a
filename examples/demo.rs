//! A runnable tour of enrolment and verification, on the real clock.
//!
//! `cargo run --example demo` enrols a demo user, prints the `otpauth://` URI and its QR code
//! (and writes `qr.svg` and `qr.png` under `target/verrou-demo/`). In a terminal it then asks
//! for codes from your authenticator app; without a terminal (CI) it plays the app itself.
//! Either way it shows a code accepted, the same code refused as a replay, a set of recovery
//! codes and one of them used (once), a session raised by the second factor and bound to a
//! device key (a copied cookie refused, a forged refresh ending the session), malformed input
//! refused without being counted, and the throttle after repeated wrong codes.
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
use verrou::session::{BindingKind, Requirement, RevocationScope};
use verrou::store::SqliteStore;
use verrou::testing::{insecure_code_at, insecure_key_ring, InsecureDevice};
use verrou::{
    BindingOutcome, ClientContext, Clock, ElevationOutcome, EnrollmentOutcome, OrgId,
    RecoveryCodesOutcome, RefreshOutcome, SessionCookies, SessionStatus, SystemClock, TotpOutcome,
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
    // The password was right: a password-only session, good for the second-factor page only.
    let org = OrgId::new("formation-exemple")?;
    let signed_in = verrou.create_session(&user, Some(&org), &ctx).await?;
    let password_only = signed_in.token.expose_secret().to_owned();
    let cookies = SessionCookies::new(&password_only, None);
    let status = verrou
        .authenticate(&cookies, Requirement::SecondFactor, &ctx)
        .await?;
    println!(
        "password-only session on a portal page -> {}",
        session(&status)
    );
    if !interactive {
        println!("(the simulated app uses the next time step; a person would wait for a new code)");
    }
    let code = ask("Type a new code from your app:", app(1));
    let outcome = verrou.verify_totp(&user, &code, &ctx).await?;
    println!("-> {}", describe(&outcome));
    if let TotpOutcome::Accepted(accepted) = outcome {
        println!("Submitting the same code again (what an attacker who saw it would do):");
        let again = verrou.verify_totp(&user, &code, &ctx).await?;
        println!("-> {}", describe(&again));

        println!("\n== Session bound to the second factor and to the device ==");
        // The accepted code's proof raises this one session, once (it is spent here).
        let ElevationOutcome::Elevated(elevated) = verrou
            .record_second_factor(&password_only, accepted.proof, &ctx)
            .await?
        else {
            return Err("elevation refused".into());
        };
        let token = elevated.token.expose_secret().to_owned();
        let old = SessionCookies::new(&password_only, None);
        let status = verrou
            .authenticate(&old, Requirement::AnySession, &ctx)
            .await?;
        println!(
            "the password-only cookie after the second factor -> {}",
            session(&status)
        );

        println!("\n== Recovery codes (they need a fresh second factor: the session's) ==");
        let status = verrou
            .authenticate(
                &SessionCookies::new(&token, None),
                Requirement::RecentSecondFactor,
                &ctx,
            )
            .await?;
        let step_up = match status {
            SessionStatus::Active(active) => active.step_up_proof(),
            _ => None,
        };
        let Some(step_up) = step_up else {
            return Err("the fresh session has no step-up proof".into());
        };
        if let RecoveryCodesOutcome::Generated(set) =
            verrou.generate_recovery_codes(step_up, &ctx).await?
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
        println!("\n== Device binding, and the infostealer ==");
        bind_and_steal(&verrou, &token, elevated.binding_offer, &ctx).await?;
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

/// Binds the elevated session to a device key, then plays the infostealer: the copied
/// session cookie without the device is refused, and signing with a key of its own ends the
/// session. Finally the operator revokes the organisation's sessions.
async fn bind_and_steal(
    verrou: &Verrou<SqliteStore>,
    token: &str,
    binding_offer: Option<verrou::session::Challenge>,
    ctx: &ClientContext,
) -> Result<(), Box<dyn std::error::Error>> {
    let Some(challenge) = binding_offer else {
        return Err("binding not offered".into());
    };
    // The browser (DBSC, or verrou's WebCrypto script) registers a key that stays on the device.
    let device = InsecureDevice::generate()?;
    let proof = device.registration_proof(challenge.as_str());
    let BindingOutcome::Bound(bound) = verrou
        .register_binding(token, &proof, BindingKind::Dbsc, ctx)
        .await?
    else {
        return Err("registration refused".into());
    };
    let bound_cookie = bound.cookie.expose_secret().to_owned();
    println!(
        "device key registered; bound cookie valid {} s",
        bound.max_age.as_secs()
    );
    let real = SessionCookies::new(token, Some(&bound_cookie));
    let status = verrou
        .authenticate(&real, Requirement::SecondFactor, ctx)
        .await?;
    println!("the real browser -> {}", session(&status));
    let stolen = SessionCookies::new(token, None);
    let status = verrou
        .authenticate(&stolen, Requirement::SecondFactor, ctx)
        .await?;
    println!(
        "a copied session cookie, bound cookie expired -> {}",
        session(&status)
    );
    let thief = InsecureDevice::generate()?;
    if let RefreshOutcome::Challenge { challenge, .. } =
        verrou.refresh_binding(token, None, ctx).await?
    {
        let forged = thief.refresh_proof(challenge.as_str());
        let outcome = verrou.refresh_binding(token, Some(&forged), ctx).await?;
        println!("the thief signs a refresh with its own key -> {outcome:?}");
    }
    let status = verrou
        .authenticate(&real, Requirement::SecondFactor, ctx)
        .await?;
    println!("the session, for everyone -> {}", session(&status));
    let org = OrgId::new("formation-exemple")?;
    let colleague = UserId::new("partner-0043")?;
    let open = verrou.create_session(&colleague, Some(&org), ctx).await?;
    let revoked = verrou
        .revoke_sessions(&RevocationScope::Org(org), ctx)
        .await?;
    println!("operator revokes the organisation's remaining sessions -> {revoked} revoked");
    let cookies = SessionCookies::new(open.token.expose_secret(), None);
    let status = verrou
        .authenticate(&cookies, Requirement::AnySession, ctx)
        .await?;
    println!(
        "a colleague's session at the same partner -> {}",
        session(&status)
    );
    Ok(())
}

fn session(status: &SessionStatus) -> String {
    match status {
        SessionStatus::Active(_) => "served".into(),
        SessionStatus::SecondFactorRequired(_) => "refused: second factor required".into(),
        SessionStatus::RefreshRequired { .. } => {
            "refused: bound cookie missing, refresh with the device key".into()
        }
        SessionStatus::NotFound => "refused: no such session (replaced or revoked)".into(),
        other => format!("{other:?}"),
    }
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
