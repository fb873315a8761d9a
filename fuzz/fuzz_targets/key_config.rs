//! Key-ring configuration text: parsing never panics; what it accepts has distinct key ids
//! and an active key that seals and opens; what it refuses is a `Config` error naming an
//! entry that exists (its reason is a static string: the text is never repeated).
#![no_main]

use libfuzzer_sys::fuzz_target;
use verrou::{FactorId, KeyRing, KeyRingError, TotpSecret, UserId};

fuzz_target!(|text: &str| {
    match KeyRing::from_config(text) {
        Ok(ring) => {
            let ids: Vec<_> = ring.key_ids().collect();
            assert!(!ids.is_empty());
            for (i, id) in ids.iter().enumerate() {
                assert!(!ids[..i].contains(id), "duplicate key id accepted");
            }
            let secret = TotpSecret::from_bytes(&[9u8; 20]).unwrap();
            let user = UserId::new("u").unwrap();
            let factor = FactorId::parse("00112233445566778899aabbccddeeff").unwrap();
            let blob = ring.seal(&secret, &user, &factor).unwrap();
            assert_eq!(ring.open(&blob, &user, &factor).unwrap(), secret);
        }
        Err(KeyRingError::Config { entry, .. }) => {
            let entries = text
                .split(['\n', ','])
                .map(str::trim)
                .filter(|e| !e.is_empty() && !e.starts_with('#'))
                .count();
            assert!(entry <= entries, "entry {entry} of {entries}");
        }
        Err(other) => panic!("unexpected error {other:?}"),
    }
});
