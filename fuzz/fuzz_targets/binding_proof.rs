//! Device-binding proofs from the network: parsing never panics, a proof that parses with an
//! embedded key verifies or is refused with a typed error, and a proof never answers a
//! challenge it does not name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use verrou::session::proof::{ParsedProof, ProofError, MAX_PROOF_LEN};

fuzz_target!(|text: &str| {
    match ParsedProof::parse(text) {
        Ok(proof) => {
            assert!(text.len() <= MAX_PROOF_LEN);
            assert_eq!(text.split('.').count(), 3);
            match proof.verify_embedded() {
                Ok(key) => assert_eq!(proof.verify_with(&key), Ok(())),
                Err(error) => assert!(matches!(error, ProofError::Key | ProofError::Signature)),
            }
            assert!(!proof.answers(""));
        }
        Err(_) => {}
    }
});
