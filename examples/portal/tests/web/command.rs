//! The README's first command: `cargo run -p verrou-portal` creates its data, prints the demo
//! accounts and serves the sign-in page.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use verrou_portal::data::PortalDb;
use verrou_portal::demo::ORGS;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_starts_with_its_demo_data_and_prints_the_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let mut portal = tokio::process::Command::new(env!("CARGO_BIN_EXE_verrou-portal"))
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path())
        .env_remove("VERROU_KEYS")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(portal.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let port = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("Listening on http://localhost:") {
                return rest.trim_end_matches('/').parse::<u16>().unwrap();
            }
            printed.push(line);
        }
        panic!("the portal ended before listening: {printed:?}");
    })
    .await
    .expect("the portal never listened");

    let accounts: Vec<&String> = printed
        .iter()
        .filter(|line| line.contains(" password "))
        .collect();
    assert_eq!(accounts.len(), 7, "{printed:?}");
    assert_eq!(
        accounts
            .iter()
            .filter(|line| line.contains("TOTP key"))
            .count(),
        4
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in ["verrou-keys", "csrf-key"] {
            let mode = std::fs::metadata(dir.path().join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key} is the owner's only");
        }
    }

    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream
        .write_all(b"GET /sign-in HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("<h1>Sign in</h1>"));

    // SIGHUP re-reads the key file: a new key first, the old one kept (a rotation's step 1).
    #[cfg(unix)]
    {
        let path = dir.path().join("verrou-keys");
        let old = std::fs::read_to_string(&path).unwrap();
        let new = verrou::KeyRing::generate_entry(&verrou::KeyId::new("demo-2").unwrap()).unwrap();
        std::fs::write(&path, format!("{}\n{}", &*new, old.trim())).unwrap();
        let pid = portal.id().unwrap().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        let reloaded = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.starts_with("Key ring") {
                    return line;
                }
            }
            panic!("the portal ended after SIGHUP");
        })
        .await
        .expect("nothing printed after SIGHUP");
        assert_eq!(reloaded, "Key ring reloaded: the active key is demo-2.");
    }
    portal.kill().await.unwrap();

    // 50,000 fictitious job-seekers over the three organisations.
    let db = PortalDb::open(&PortalDb::sqlite_url(&dir.path().join("portal.db")))
        .await
        .unwrap();
    let mut total = 0;
    for (org, _, count) in ORGS {
        let (_, found) = db.seekers(org, "", 1, 1).await.unwrap();
        assert_eq!(found, count as i64);
        total += found;
    }
    assert_eq!(total, 50_000);
}

#[tokio::test]
async fn a_first_start_cut_short_is_made_whole_at_the_next() {
    use std::sync::Arc;

    use verrou::testing::{insecure_key_ring, InsecureManualClock};
    use verrou::Timestamp;
    use verrou_portal::app::{ExportLimits, Options, Portal, PortalClock};

    let dir = tempfile::tempdir().unwrap();
    let keys = insecure_key_ring().unwrap();
    let clock = InsecureManualClock::new(Timestamp::from_unix_seconds(1_800_000_000).unwrap());
    let options = || Options {
        database: None,
        proxies: verrou_axum::TrustedProxies::none(),
        demo_per_mille: 10,
        bound_cookie: Duration::from_secs(300),
        exports: ExportLimits::default(),
    };
    let first = Portal::open(
        dir.path(),
        keys.clone(),
        PortalClock(Arc::new(clock.clone())),
        options(),
    )
    .await
    .unwrap();
    // As if the first start had stopped after an organisation and one enrolled account.
    first.db.clear_demo().await.unwrap();
    first
        .db
        .insert_org("formation-nord", "Formation Nord")
        .await
        .unwrap();
    let again = Portal::open(dir.path(), keys, PortalClock(Arc::new(clock)), options())
        .await
        .unwrap();
    assert_eq!(again.db.demo_accounts().await.unwrap().len(), 7);
    let (_, found) = again.db.seekers("formation-nord", "", 1, 1).await.unwrap();
    assert_eq!(found, 200);
}
