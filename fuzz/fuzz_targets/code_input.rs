//! Code input: never panics, and accepts exactly `digits` ASCII digits once ASCII spaces are
//! removed (no sign, no other whitespace, no non-ASCII digit, nothing oversize), and only for
//! the digit counts codes have (6 to 8).
#![no_main]

use libfuzzer_sys::fuzz_target;
use verrou::totp::{CodeInput, MalformedCode};

fuzz_target!(|input: (u8, &str)| {
    let (digits, text) = input;
    let digits = digits % 10;
    let kept: Vec<u8> = text.bytes().filter(|b| *b != b' ').collect();
    match CodeInput::parse(text, digits) {
        Ok(_) => {
            assert!((6..=8).contains(&digits));
            assert!(text.len() <= CodeInput::MAX_INPUT_LEN);
            assert_eq!(kept.len(), usize::from(digits));
            assert!(kept.iter().all(u8::is_ascii_digit));
        }
        Err(MalformedCode::Oversize) => assert!(text.len() > CodeInput::MAX_INPUT_LEN),
        Err(MalformedCode::InvalidCharacter) => {
            assert!((6..=8).contains(&digits));
            assert!(kept.iter().any(|b| !b.is_ascii_digit()));
        }
        Err(_) => {
            let valid_chars = kept.iter().all(u8::is_ascii_digit);
            let possible = (6..=8).contains(&digits);
            assert!(!possible || !valid_chars || kept.len() != usize::from(digits));
        }
    }
});
