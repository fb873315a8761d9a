//! Base32 secret import: never panics; what it accepts is 128 to 512 bits, re-encodes to
//! canonical Base32 that imports to the same secret, and is what the input spelled
//! (case, spaces and trailing padding aside).
#![no_main]

use libfuzzer_sys::fuzz_target;
use secrecy::ExposeSecret;
use verrou::TotpSecret;

fuzz_target!(|text: &str| {
    let Ok(secret) = TotpSecret::from_base32(text) else {
        return;
    };
    assert!((TotpSecret::MIN_LEN..=TotpSecret::MAX_LEN).contains(&secret.len()));
    let canonical = secret.to_base32();
    let canonical = canonical.expose_secret();
    assert_eq!(TotpSecret::from_base32(canonical).unwrap(), secret);
    // The canonical form is the input's letters, uppercased, without spaces or padding,
    // up to the unused low bits of the last character.
    let spelled: String = text
        .chars()
        .filter(|c| *c != ' ' && *c != '=')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    assert_eq!(spelled.len(), canonical.len());
    let common = canonical.len().saturating_sub(1);
    assert_eq!(spelled.get(..common), canonical.get(..common));
});
