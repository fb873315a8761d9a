//! Recovery-code input: never panics; what it accepts is 16 alphabet characters once case,
//! spaces, hyphens and Crockford look-alikes are normalised, and its lookup is the first four.
#![no_main]

use libfuzzer_sys::fuzz_target;
use verrou::recovery::{MalformedRecoveryCode, RecoveryCodeInput, CODE_LEN, LOOKUP_LEN};

const ALPHABET: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

fuzz_target!(|text: &str| {
    let kept: String = text
        .chars()
        .filter(|c| *c != ' ' && *c != '-')
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            other => other,
        })
        .collect();
    match RecoveryCodeInput::parse(text) {
        Ok(code) => {
            assert!(text.len() <= RecoveryCodeInput::MAX_INPUT_LEN);
            assert_eq!(kept.chars().count(), CODE_LEN);
            assert!(kept.chars().all(|c| ALPHABET.contains(c)));
            assert_eq!(code.lookup().as_str(), &kept[..LOOKUP_LEN]);
        }
        Err(MalformedRecoveryCode::Oversize) => {
            assert!(text.len() > RecoveryCodeInput::MAX_INPUT_LEN)
        }
        Err(MalformedRecoveryCode::InvalidCharacter) => {
            assert!(kept.chars().any(|c| !ALPHABET.contains(c)))
        }
        Err(_) => {
            let valid = kept.chars().all(|c| ALPHABET.contains(c));
            assert!(!valid || kept.chars().count() != CODE_LEN);
        }
    }
});
