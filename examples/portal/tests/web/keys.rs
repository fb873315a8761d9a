//! The README's three-step key rotation on a running pair of instances, each taking the new
//! key file in with `Portal::reload_keys` (what `SIGHUP` calls in the binary): no restart,
//! no session lost, and a ring that would strand secrets is refused.

use std::time::Duration;

use axum::http::StatusCode;
use verrou::store::KeyRotation;
use verrou::{KeyId, KeyRing};
use verrou_portal::keys::ReloadError;

use crate::support::{Browser, Lab};

fn write_keys(lab: &Lab, entries: &[&str]) {
    // The file exists with owner-only permissions; rewriting it keeps them.
    std::fs::write(lab.key_file(), entries.join("\n")).unwrap();
}

#[tokio::test]
async fn a_running_pair_rotates_its_key_without_a_restart() {
    let a = Lab::new().await;
    let b = a.twin().await;
    let old = std::fs::read_to_string(a.key_file()).unwrap();
    let new = KeyRing::generate_entry(&KeyId::new("demo-2").unwrap()).unwrap();
    let mut marie = a.signed_in("marie").await;
    let sealed_under = |counts: &verrou::store::SealedSecrets, id: &str| {
        counts
            .by_key
            .get(&KeyId::new(id).unwrap())
            .copied()
            .unwrap_or(0)
    };

    // Step 1: the new key first, the old one kept; both instances take it in.
    write_keys(&a, &[&new, old.trim()]);
    for lab in [&a, &b] {
        assert_eq!(lab.portal.reload_keys().await.unwrap().as_str(), "demo-2");
    }
    let store = a.portal.verrou.store();
    let before = store.sealed_secrets().await.unwrap();
    assert_eq!(sealed_under(&before, "demo-2"), 0);
    assert!(sealed_under(&before, "demo-1") >= 4, "{before:?}");

    // Removing the old key before the rotation is refused, and nothing changes.
    write_keys(&a, &[&new]);
    let refused = a.portal.reload_keys().await.unwrap_err();
    assert!(matches!(refused, ReloadError::Refused(_)), "{refused}");
    assert!(
        refused.to_string().contains("finish the rotation"),
        "{refused}"
    );
    a.clock.advance(Duration::from_secs(30));
    assert_eq!(marie.get(&b, "/seekers").await.status(), StatusCode::OK);

    // Step 2: the rotation (what `verrou-admin rotate-keys` runs), while Marie works.
    let report = store.rotate_keys().await.unwrap();
    assert_eq!(report.stale, 0, "{report:?}");
    assert!(report.unreadable.is_empty(), "{report:?}");
    let after = store.sealed_secrets().await.unwrap();
    assert_eq!(sealed_under(&after, "demo-1"), 0, "{after:?}");

    // Step 3: the old key goes; both instances take it in.
    for lab in [&a, &b] {
        assert_eq!(lab.portal.reload_keys().await.unwrap().as_str(), "demo-2");
    }
    // Marie's session never ended, and signing in with a code works on both.
    assert_eq!(marie.get(&a, "/seekers").await.status(), StatusCode::OK);
    for lab in [&a, &b] {
        a.clock.advance(Duration::from_secs(30));
        let mut browser = Browser::default();
        let password = lab.account("marie").password.clone();
        browser.sign_in(lab, "marie", &password).await;
        let code = lab.code("marie");
        let answer = browser
            .submit(lab, "/second-factor", "/second-factor", &[("code", &code)])
            .await;
        assert_eq!(answer.status(), StatusCode::OK, "a code after the rotation");
    }
    // Each reload is in the portal's audit trail, by key id only.
    let trail = a.portal.db.audit_trail(50).await.unwrap();
    let reloads: Vec<_> = trail
        .iter()
        .filter(|event| event.kind == "key_ring_reloaded")
        .collect();
    assert_eq!(reloads.len(), 4, "{reloads:?}");
    let secret = new.split_once(':').unwrap().1;
    assert!(trail.iter().all(|event| !event.detail.contains(secret)));
    assert!(reloads[0].detail.contains("active key demo-2; ring demo-2"));
}

#[tokio::test]
async fn a_key_ring_from_the_environment_cannot_be_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let clock = verrou::testing::InsecureManualClock::new(
        verrou::Timestamp::from_unix_seconds(1_800_000_000).unwrap(),
    );
    let options = verrou_portal::app::Options {
        database: None,
        proxies: verrou_axum::TrustedProxies::none(),
        demo_per_mille: 1,
        bound_cookie: Duration::from_secs(300),
        exports: verrou_portal::app::ExportLimits::default(),
    };
    let portal = verrou_portal::app::Portal::open(
        dir.path(),
        verrou::testing::insecure_key_ring().unwrap(),
        verrou_portal::app::PortalClock(std::sync::Arc::new(clock)),
        options,
    )
    .await
    .unwrap();
    let refused = portal.reload_keys().await.unwrap_err();
    assert!(matches!(refused, ReloadError::Fixed));
    assert!(refused.to_string().contains("restart"), "{refused}");
}
