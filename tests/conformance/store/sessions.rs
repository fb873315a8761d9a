//! Store cases: sessions and their device bindings.

use verrou::audit::{AuditEvent, AuditKind};
use verrou::session::{
    Assurance, BindingKind, Challenge, RevocationReason, RevocationScope, TokenHash,
};
use verrou::store::backend::{BindingRecord, IssuedChallenge, SessionRecord};
use verrou::store::backend::{Elevation, RevocationContext};
use verrou::store::Store;
use verrou::testing::InsecureDevice;
use verrou::{OrgId, SecondFactorMethod, SessionId};

use crate::support::*;

fn hash(byte: u8) -> TokenHash {
    TokenHash::from_bytes([byte; 32])
}

fn record(who: &str, org: Option<&str>, token: u8, created: u64) -> SessionRecord {
    SessionRecord {
        id: SessionId::generate().unwrap(),
        token: hash(token),
        user: user(who),
        org: org.map(|org| OrgId::new(org).unwrap()),
        assurance: Assurance::PasswordOnly,
        created_at: at(created),
        last_seen: at(created),
        expires_at: at(created + 3600),
        second_factor: None,
        signals: Some(hash(200)),
    }
}

fn revocation(reason: RevocationReason) -> RevocationContext {
    RevocationContext {
        at: at(START + 5),
        client: None,
        reason,
    }
}

async fn alive<S: Store>(store: &S, token: u8) -> bool {
    store
        .session_by_token(&hash(token))
        .await
        .unwrap()
        .is_some()
}

fn offered(version: u64) -> BindingRecord {
    BindingRecord {
        version,
        offered_at: at(START),
        key: None,
        challenge: Some(IssuedChallenge {
            challenge: Challenge::generate().unwrap(),
            expires_at: at(START + 600),
        }),
        previous_challenge: None,
        cookie: None,
        previous_cookie: None,
    }
}

pub async fn sessions_are_created_found_and_touched<S: Store>(store: S) {
    let first = record("alice", Some("org-1"), 1, START);
    let second = record("alice", None, 2, START + 10);
    store.create_session(first.clone()).await.unwrap();
    store.create_session(second.clone()).await.unwrap();
    assert_eq!(
        store.session_by_token(&hash(1)).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.session_by_token(&hash(9)).await.unwrap(), None);
    // A reused token hash is refused, never a second session on one token.
    assert!(store
        .create_session(record("bob", None, 1, START))
        .await
        .is_err());

    store
        .touch_session(first.id, at(START + 100))
        .await
        .unwrap();
    store.touch_session(first.id, at(START + 50)).await.unwrap(); // never backwards
    let touched = store.session_by_token(&hash(1)).await.unwrap().unwrap();
    assert_eq!(touched.last_seen, at(START + 100));

    let listed = store.user_sessions(&user("alice")).await.unwrap();
    let ids: Vec<_> = listed.iter().map(|s| s.id).collect();
    assert_eq!(ids, [second.id, first.id]);
    assert!(store.user_sessions(&user("bob")).await.unwrap().is_empty());
}

/// The elevation's audit record, as the service writes it.
fn elevated_event(session: SessionId) -> AuditEvent {
    AuditEvent::new(
        at(START + 20),
        user("alice"),
        None,
        AuditKind::SessionElevated {
            session,
            method: SecondFactorMethod::Totp,
        },
    )
}

pub async fn elevation_swaps_the_token_once<S: Store>(store: S) {
    let session = record("alice", None, 1, START);
    store.create_session(session.clone()).await.unwrap();
    // An earlier binding (at version 3) is replaced whole.
    store
        .swap_binding(session.id, None, offered(3))
        .await
        .unwrap();
    let elevation = Elevation {
        token: hash(2),
        second_factor: (at(START + 20), SecondFactorMethod::RecoveryCode),
        expires_at: at(START + 43_200),
        signals: None,
        binding: Some(offered(1)),
        record: elevated_event(session.id),
    };
    assert!(store
        .elevate_session(session.id, &hash(1), elevation.clone())
        .await
        .unwrap());
    // The offer, numbered past the binding it replaced, and the audit record, with it.
    let binding = store.binding(session.id).await.unwrap().unwrap();
    assert_eq!(binding.version, 4, "{binding:?}");
    assert_eq!(
        binding.challenge,
        elevation.binding.clone().unwrap().challenge
    );
    let trail = store.audit_trail(None, 10).await.unwrap();
    assert_eq!(trail, [elevated_event(session.id)]);
    assert_eq!(store.session_by_token(&hash(1)).await.unwrap(), None);
    let elevated = store.session_by_token(&hash(2)).await.unwrap().unwrap();
    assert_eq!(elevated.assurance, Assurance::SecondFactor);
    assert_eq!(
        elevated.second_factor,
        Some((at(START + 20), SecondFactorMethod::RecoveryCode))
    );
    assert_eq!(elevated.expires_at, at(START + 43_200));
    assert_eq!(elevated.signals, None);
    // The old token cannot elevate again (fixation, double submission).
    let again = Elevation {
        token: hash(3),
        ..elevation
    };
    assert!(!store
        .elevate_session(session.id, &hash(1), again)
        .await
        .unwrap());
    assert_eq!(store.session_by_token(&hash(3)).await.unwrap(), None);
}

/// What an operator reviews before revoking: each scope lists exactly the sessions its
/// revocation would end, newest first, and listing changes nothing.
pub async fn sessions_are_listed_by_scope<S: Store>(store: S) {
    let a1 = record("alice", Some("org-1"), 1, START);
    let a2 = record("alice", Some("org-1"), 2, START + 100);
    let b1 = record("bob", Some("org-1"), 3, START + 200);
    let c1 = record("carol", Some("org-2"), 4, START + 300);
    for session in [&a1, &a2, &b1, &c1] {
        store.create_session(session.clone()).await.unwrap();
    }
    let ids = |records: Vec<SessionRecord>| records.iter().map(|r| r.id).collect::<Vec<_>>();
    let listed = |scope: RevocationScope| {
        let store = &store;
        async move { ids(store.sessions_in(&scope).await.unwrap()) }
    };
    let org = RevocationScope::Org(OrgId::new("org-1").unwrap());
    assert_eq!(listed(org.clone()).await, [b1.id, a2.id, a1.id]);
    let alice = RevocationScope::User {
        user: user("alice"),
        except: Some(a2.id),
    };
    assert_eq!(listed(alice).await, [a1.id]);
    assert_eq!(
        ids(store.user_sessions(&user("alice")).await.unwrap()),
        [a2.id, a1.id]
    );
    let before = RevocationScope::IssuedBefore(at(START + 200));
    assert_eq!(listed(before.clone()).await, [a2.id, a1.id]);
    assert_eq!(listed(RevocationScope::Session(c1.id)).await, [c1.id]);
    assert!(listed(RevocationScope::Org(OrgId::new("org-9").unwrap()))
        .await
        .is_empty());
    // Listing revoked nothing; the revocation ends what was listed.
    let events = store
        .revoke_sessions(&before, revocation(RevocationReason::Revoked))
        .await
        .unwrap();
    let mut revoked: Vec<_> = events
        .iter()
        .filter_map(|e| match e.kind {
            AuditKind::SessionRevoked { session, .. } => Some(session),
            _ => None,
        })
        .collect();
    revoked.sort();
    let mut expected = vec![a1.id, a2.id];
    expected.sort();
    assert_eq!(revoked, expected);
    assert_eq!(listed(org).await, [b1.id]);
}

/// The operator's overview counts sessions by organisation and assurance, those without an
/// organisation apart.
pub async fn sessions_are_counted_by_organisation_and_assurance<S: Store>(store: S) {
    assert!(store.session_counts().await.unwrap().is_empty());
    let elevated = SessionRecord {
        assurance: Assurance::SecondFactor,
        ..record("alice", Some("org-1"), 1, START)
    };
    let sessions = [
        elevated,
        record("alice", Some("org-1"), 2, START),
        record("bob", Some("org-1"), 3, START),
        record("carol", Some("org-2"), 4, START),
        record("dave", None, 5, START),
    ];
    for session in sessions {
        store.create_session(session).await.unwrap();
    }
    let org = |name: &str| Some(OrgId::new(name).unwrap());
    let counts: Vec<_> = store.session_counts().await.unwrap().into_iter().collect();
    assert_eq!(
        counts,
        [
            ((None, Assurance::PasswordOnly), 1),
            ((org("org-1"), Assurance::PasswordOnly), 2),
            ((org("org-1"), Assurance::SecondFactor), 1),
            ((org("org-2"), Assurance::PasswordOnly), 1),
        ]
    );
}

pub async fn revocation_covers_each_scope<S: Store>(store: S) {
    let a1 = record("alice", Some("org-1"), 1, START);
    let a2 = record("alice", Some("org-1"), 2, START + 100);
    let b1 = record("bob", Some("org-1"), 3, START + 200);
    let c1 = record("carol", Some("org-2"), 4, START + 300);
    let d1 = record("dave", None, 5, START + 400);
    for session in [&a1, &a2, &b1, &c1, &d1] {
        store.create_session(session.clone()).await.unwrap();
        store
            .swap_binding(session.id, None, offered(1))
            .await
            .unwrap();
    }

    // One user's sessions but the current one.
    let scope = RevocationScope::User {
        user: user("alice"),
        except: Some(a2.id),
    };
    let events = store
        .revoke_sessions(&scope, revocation(RevocationReason::FactorChanged))
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].kind,
        AuditKind::SessionRevoked {
            session: a1.id,
            reason: RevocationReason::FactorChanged
        }
    );
    assert!(!alive(&store, 1).await && alive(&store, 2).await);
    assert_eq!(store.binding(a1.id).await.unwrap(), None);

    // A whole organisation.
    let org = RevocationScope::Org(OrgId::new("org-1").unwrap());
    let events = store
        .revoke_sessions(&org, revocation(RevocationReason::Revoked))
        .await
        .unwrap();
    let mut users: Vec<_> = events.iter().map(|e| e.user.as_str().to_owned()).collect();
    users.sort();
    assert_eq!(users, ["alice", "bob"]);
    assert!(!alive(&store, 2).await && !alive(&store, 3).await);
    assert!(alive(&store, 4).await && alive(&store, 5).await);
    assert_eq!(store.binding(b1.id).await.unwrap(), None);
    assert!(store.binding(c1.id).await.unwrap().is_some());

    // Everything issued before an instant.
    let before = RevocationScope::IssuedBefore(at(START + 350));
    let events = store
        .revoke_sessions(&before, revocation(RevocationReason::Revoked))
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert!(!alive(&store, 4).await && alive(&store, 5).await);

    // One session.
    let one = RevocationScope::Session(d1.id);
    let events = store
        .revoke_sessions(&one, revocation(RevocationReason::Logout))
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert!(!alive(&store, 5).await);
    let again = store
        .revoke_sessions(&one, revocation(RevocationReason::Logout))
        .await
        .unwrap();
    assert!(again.is_empty());

    // Each revoked session has its audit record in the store's trail.
    let trail = store.audit_trail(None, 100).await.unwrap();
    let revoked = trail
        .iter()
        .filter(|e| matches!(e.kind, AuditKind::SessionRevoked { .. }))
        .count();
    assert_eq!(revoked, 5);
}

pub async fn binding_changes_only_by_compare_and_set<S: Store>(store: S) {
    let session = record("alice", None, 1, START);
    // No session, no binding.
    assert!(!store
        .swap_binding(session.id, None, offered(1))
        .await
        .unwrap());
    store.create_session(session.clone()).await.unwrap();
    let first = offered(1);
    assert!(store
        .swap_binding(session.id, None, first.clone())
        .await
        .unwrap());
    assert!(!store
        .swap_binding(session.id, None, offered(1))
        .await
        .unwrap());
    assert_eq!(store.binding(session.id).await.unwrap(), Some(first));

    let device = InsecureDevice::generate().unwrap();
    let key = verrou::session::proof::ParsedProof::parse(&device.registration_proof("x"))
        .unwrap()
        .verify_embedded()
        .unwrap();
    let bound = BindingRecord {
        version: 2,
        key: Some((key, BindingKind::WebCrypto)),
        cookie: Some(verrou::store::backend::IssuedCookie {
            hash: hash(7),
            expires_at: at(START + 300),
        }),
        previous_cookie: Some(verrou::store::backend::IssuedCookie {
            hash: hash(8),
            expires_at: at(START + 200),
        }),
        previous_challenge: offered(0).challenge,
        ..offered(2)
    };
    assert!(store
        .swap_binding(session.id, Some(1), bound.clone())
        .await
        .unwrap());
    assert!(!store
        .swap_binding(session.id, Some(1), offered(2))
        .await
        .unwrap());
    assert_eq!(store.binding(session.id).await.unwrap(), Some(bound));
}

pub async fn expired_sessions_are_purged<S: Store>(store: S) {
    let old = record("alice", None, 1, START); // expires START + 3600
    let idle = record("alice", None, 2, START + 1000);
    let fresh = record("bob", None, 3, START + 3000);
    for session in [&old, &idle, &fresh] {
        store.create_session(session.clone()).await.unwrap();
        store
            .swap_binding(session.id, None, offered(1))
            .await
            .unwrap();
    }
    let purged = store
        .purge_expired_sessions(at(START + 3600), at(START + 2000))
        .await
        .unwrap();
    assert_eq!(purged, 2);
    assert_eq!(store.session_by_token(&hash(1)).await.unwrap(), None);
    assert_eq!(store.session_by_token(&hash(2)).await.unwrap(), None);
    assert!(store.session_by_token(&hash(3)).await.unwrap().is_some());
    assert_eq!(store.binding(old.id).await.unwrap(), None);
    assert!(store.binding(fresh.id).await.unwrap().is_some());
}

pub async fn concurrent_elevations_succeed_once<S: Store + 'static>(store: S) {
    let store = std::sync::Arc::new(store);
    let session = record("alice", None, 1, START);
    store.create_session(session.clone()).await.unwrap();
    let results = race(|i| {
        let store = store.clone();
        let elevation = Elevation {
            token: TokenHash::from_bytes([u8::try_from(i + 10).unwrap(); 32]),
            second_factor: (at(START), SecondFactorMethod::Totp),
            expires_at: at(START + 3600),
            signals: None,
            binding: Some(offered(1)),
            record: elevated_event(session.id),
        };
        async move {
            store
                .elevate_session(session.id, &hash(1), elevation)
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(results.iter().filter(|won| **won).count(), 1);
    // One offer and one audit record: the losers wrote nothing.
    assert_eq!(store.binding(session.id).await.unwrap().unwrap().version, 1);
    assert_eq!(store.audit_trail(None, 100).await.unwrap().len(), 1);
}

pub async fn concurrent_binding_swaps_succeed_once<S: Store + 'static>(store: S) {
    let store = std::sync::Arc::new(store);
    let session = record("alice", None, 1, START);
    store.create_session(session.clone()).await.unwrap();
    store
        .swap_binding(session.id, None, offered(1))
        .await
        .unwrap();
    let results = race(|_| {
        let store = store.clone();
        async move {
            store
                .swap_binding(session.id, Some(1), offered(2))
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(results.iter().filter(|won| **won).count(), 1);
    assert_eq!(store.binding(session.id).await.unwrap().unwrap().version, 2);
}
