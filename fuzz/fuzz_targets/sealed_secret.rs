//! Sealed TOTP secrets (a column an attacker with write access to the database controls):
//! opening never panics and never succeeds for bytes the key ring did not seal, and the
//! error says what is wrong: a blob whose header parses names its key, and an unknown key
//! is reported as such rather than as a failed authentication.
#![no_main]

use libfuzzer_sys::fuzz_target;
use verrou::{FactorId, KeyId, KeyRing, KeyRingError, UserId};

fuzz_target!(|blob: &[u8]| {
    let keys = KeyRing::new((KeyId::new("k1").unwrap(), &[7u8; 32]), []).unwrap();
    let user = UserId::new("alice").unwrap();
    let factor = FactorId::parse("00112233445566778899aabbccddeeff").unwrap();
    let opened = keys.open(blob, &user, &factor);
    assert!(opened.is_err(), "forged a sealed secret");
    match KeyRing::sealed_with(blob) {
        Ok(id) if id.as_str() != "k1" => assert_eq!(opened, Err(KeyRingError::UnknownKey)),
        Ok(_) => assert_eq!(opened, Err(KeyRingError::Authentication)),
        Err(_) => assert!(matches!(
            opened,
            Err(KeyRingError::MalformedBlob | KeyRingError::UnknownKey)
        )),
    }
});
