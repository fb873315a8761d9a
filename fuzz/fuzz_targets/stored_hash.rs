//! Stored PHC strings (a row an attacker may have tampered with): validation never panics,
//! and anything it accepts asks for argon2id parameters within verrou's bounds, so
//! verification can never be made to allocate gigabytes or run billions of passes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use verrou::recovery::{validate_stored_hash, HashParams};

fuzz_target!(|text: &str| {
    if let Ok(params) = validate_stored_hash(text) {
        assert!(params.memory_kib >= HashParams::OWASP.memory_kib);
        assert!(params.memory_kib <= HashParams::MAX_MEMORY_KIB);
        assert!((HashParams::OWASP.passes..=HashParams::MAX_PASSES).contains(&params.passes));
        assert!((1..=HashParams::MAX_LANES).contains(&params.lanes));
    }
});
