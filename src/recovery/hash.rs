//! argon2id hashing of recovery codes, stored as PHC strings, and verification that checks
//! the stored parameters before spending memory or time on them.

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
use rand::rngs::SysRng;
use rand::TryRng;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::leaf_errors::CryptoError;
pub use crate::leaf_errors::StoredHashError;

/// argon2id parameters. The default is OWASP's minimum for argon2id: 19 MiB, 2 passes,
/// 1 lane.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct HashParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub passes: u32,
    /// Lanes.
    pub lanes: u32,
}

impl HashParams {
    /// OWASP's argon2id minimum: m = 19 MiB, t = 2, p = 1.
    pub const OWASP: Self = Self {
        memory_kib: 19 * 1024,
        passes: 2,
        lanes: 1,
    };
    /// The most memory a stored hash may ask for (64 MiB).
    pub const MAX_MEMORY_KIB: u32 = 64 * 1024;
    /// The most passes a stored hash may ask for.
    pub const MAX_PASSES: u32 = 10;
    /// The most lanes a stored hash may ask for.
    pub const MAX_LANES: u32 = 4;

    /// At least OWASP's parameters and at most the `MAX_*` bounds: what verrou hashes with
    /// and what it accepts from storage.
    pub fn is_within_bounds(&self) -> bool {
        (Self::OWASP.memory_kib..=Self::MAX_MEMORY_KIB).contains(&self.memory_kib)
            && (Self::OWASP.passes..=Self::MAX_PASSES).contains(&self.passes)
            && (1..=Self::MAX_LANES).contains(&self.lanes)
    }

    fn check(&self) -> Result<(), StoredHashError> {
        if self.is_within_bounds() {
            Ok(())
        } else {
            Err(StoredHashError::Parameters)
        }
    }

    fn argon2(&self) -> Result<Argon2<'static>, StoredHashError> {
        self.check()?;
        let params = Params::new(self.memory_kib, self.passes, self.lanes, Some(OUTPUT_LEN))
            .map_err(|_| StoredHashError::Parameters)?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

impl Default for HashParams {
    fn default() -> Self {
        Self::OWASP
    }
}

const OUTPUT_LEN: usize = 32;
const SALT_LEN: usize = 16;

/// A PHC string for an argon2id hash of `code`, with a fresh random salt.
pub(crate) fn hash_code(code: &[u8], params: HashParams) -> Result<String, CryptoError> {
    let mut salt = [0u8; SALT_LEN];
    SysRng
        .try_fill_bytes(&mut salt)
        .map_err(|_| CryptoError::Rng)?;
    let argon2 = params.argon2().map_err(|_| CryptoError::Hashing)?;
    let hash = argon2
        .hash_password_with_salt(code, &salt)
        .map_err(|_| CryptoError::Hashing)?;
    Ok(hash.to_string())
}

/// Checks that a stored PHC string is one verrou will verify — argon2id v19, memory, passes
/// and lanes within [`HashParams`]' bounds, a salt of 8 to 64 bytes, a 32-byte output —
/// without hashing anything. Returns its parameters.
///
/// # Errors
/// The [`StoredHashError`] naming the broken rule.
pub fn validate_stored_hash(stored: &str) -> Result<HashParams, StoredHashError> {
    parse_stored(stored).map(|(_, params)| params)
}

fn parse_stored(stored: &str) -> Result<(PasswordHash, HashParams), StoredHashError> {
    let hash = PasswordHash::new(stored).map_err(|_| StoredHashError::Format)?;
    if hash.algorithm.as_str() != argon2::ARGON2ID_IDENT.as_str() || hash.version != Some(0x13) {
        return Err(StoredHashError::Algorithm);
    }
    let salt_ok = hash
        .salt
        .as_ref()
        .is_some_and(|salt| (8..=64).contains(&salt.as_ref().len()));
    let output_ok = hash
        .hash
        .as_ref()
        .is_some_and(|output| output.len() == OUTPUT_LEN);
    if !salt_ok || !output_ok {
        return Err(StoredHashError::Parameters);
    }
    let params = Params::try_from(&hash).map_err(|_| StoredHashError::Parameters)?;
    let params = HashParams {
        memory_kib: params.m_cost(),
        passes: params.t_cost(),
        lanes: params.p_cost(),
    };
    params.check()?;
    Ok((hash, params))
}

/// Checks the stored hash (see [`validate_stored_hash`]), then whether `code` matches it:
/// one argon2 run in `memory` (grown to the hash's size if needed, kept for the next run),
/// with a constant-time comparison of the outputs.
pub(crate) fn verify_code(
    code: &[u8],
    stored: &str,
    memory: &mut ArgonMemory,
) -> Result<bool, StoredHashError> {
    let (hash, params) = parse_stored(stored)?;
    let argon2 = params.argon2()?;
    let salt = hash.salt.as_ref().ok_or(StoredHashError::Parameters)?;
    let expected = hash.hash.as_ref().ok_or(StoredHashError::Parameters)?;
    let mut output = Zeroizing::new([0u8; OUTPUT_LEN]);
    let blocks = memory.blocks(argon2.params().block_count());
    argon2
        .hash_password_into_with_memory(code, salt.as_ref(), output.as_mut_slice(), blocks)
        .map_err(|_| StoredHashError::Parameters)?;
    Ok(bool::from(output.as_slice().ct_eq(expected.as_ref())))
}

/// argon2's working memory, owned by a hashing slot and reused from one verification to the
/// next: a verification allocates nothing, and no 19 MiB buffer is ever handed back to the
/// allocator, which keeps freed memory per thread arena (a burst on many blocking threads
/// would otherwise leave the process holding 19 MiB per thread).
#[derive(Default)]
pub(crate) struct ArgonMemory(Vec<argon2::Block>);

impl ArgonMemory {
    /// The first `count` blocks, the buffer grown to hold them if it must.
    fn blocks(&mut self, count: usize) -> &mut [argon2::Block] {
        if self.0.len() < count {
            self.0.resize(count, argon2::Block::default());
        }
        self.0.get_mut(..count).unwrap_or_default()
    }
}

impl std::fmt::Debug for ArgonMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ArgonMemory({} blocks)", self.0.len())
    }
}

/// A stand-in hash with `params`, verified when a lookup matches no stored code so that an
/// unknown lookup costs what a known one does: the same argon2 memory, passes and lanes as
/// the codes the service hashes (not a fixed default, which would make unknown lookups cheap
/// and so tell them apart once the hash settings are raised). Its salt is zero and its output
/// a fixed value no code is known to hash to.
pub(crate) fn dummy_hash(params: HashParams) -> String {
    format!(
        "$argon2id$v=19$m={},t={},p={}$AAAAAAAAAAAAAAAAAAAAAA$YpiIdIdI/cLsZtN2rspHbD7N8tMp3TIx9DpgZfF0cVo",
        params.memory_kib, params.passes, params.lanes
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODE: &[u8] = b"7K3MQ9XD2HJWR4T0";

    /// One buffer reused across hashes of different sizes (smaller after larger, larger after
    /// smaller) gives argon2's own verifier's answer every time.
    #[test]
    fn a_reused_memory_buffer_verifies_like_argon2_itself() {
        use argon2::PasswordVerifier;
        let large = HashParams {
            memory_kib: 24 * 1024,
            ..HashParams::OWASP
        };
        let mut memory = ArgonMemory::default();
        for params in [HashParams::OWASP, large, HashParams::OWASP] {
            let stored = hash_code(CODE, params).unwrap();
            let (hash, _) = parse_stored(&stored).unwrap();
            for code in [CODE, b"7K3MQ9XD2HJWR4T1".as_slice()] {
                let reference = params
                    .argon2()
                    .unwrap()
                    .verify_password(code, &hash)
                    .is_ok();
                assert_eq!(verify_code(code, &stored, &mut memory), Ok(reference));
            }
        }
        assert_eq!(memory.0.len(), 24 * 1024, "grown to the largest, then kept");
    }

    #[test]
    fn hash_then_verify() {
        let stored = hash_code(CODE, HashParams::OWASP).unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert_eq!(
            verify_code(CODE, &stored, &mut ArgonMemory::default()),
            Ok(true)
        );
        assert_eq!(
            verify_code(b"7K3MQ9XD2HJWR4T1", &stored, &mut ArgonMemory::default()),
            Ok(false)
        );
        assert_ne!(
            hash_code(CODE, HashParams::OWASP).unwrap(),
            stored,
            "fresh salt each time"
        );
    }

    #[test]
    fn dummy_hash_is_usable_and_matches_nothing_typeable() {
        let dummy = dummy_hash(HashParams::OWASP);
        assert_eq!(
            verify_code(CODE, &dummy, &mut ArgonMemory::default()),
            Ok(false)
        );
        assert_eq!(
            verify_code(b"", &dummy, &mut ArgonMemory::default()),
            Ok(false)
        );
    }

    #[test]
    fn the_dummy_hash_has_the_configured_parameters() {
        let raised = HashParams {
            memory_kib: 32 * 1024,
            passes: 3,
            lanes: 2,
        };
        assert_eq!(validate_stored_hash(&dummy_hash(raised)), Ok(raised));
        assert_eq!(
            validate_stored_hash(&dummy_hash(HashParams::OWASP)),
            Ok(HashParams::OWASP)
        );
    }

    #[test]
    fn tampered_parameters_are_refused_before_hashing() {
        let stored = hash_code(CODE, HashParams::OWASP).unwrap();
        let tampered = [
            stored.replace("m=19456", "m=4194304"), // 4 GiB
            stored.replace("t=2", "t=4000000000"),  // billions of passes
            stored.replace("p=1", "p=255"),         // lanes
            stored.replace("m=19456", "m=8"),       // weaker than the floor
            stored.replace("t=2", "t=1"),
        ];
        for bad in &tampered {
            assert_eq!(
                verify_code(CODE, bad, &mut ArgonMemory::default()),
                Err(StoredHashError::Parameters),
                "{bad}"
            );
        }
        assert_eq!(
            verify_code(
                CODE,
                &stored.replace("argon2id", "argon2i"),
                &mut ArgonMemory::default()
            ),
            Err(StoredHashError::Algorithm)
        );
        assert_eq!(
            verify_code(
                CODE,
                &stored.replace("v=19", "v=16"),
                &mut ArgonMemory::default()
            ),
            Err(StoredHashError::Algorithm)
        );
        for junk in [
            "",
            "plain",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$$",
        ] {
            assert!(
                verify_code(CODE, junk, &mut ArgonMemory::default()).is_err(),
                "{junk}"
            );
        }
    }
}
