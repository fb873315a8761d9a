//! HMAC (RFC 2104) of a TOTP counter, keyed once per secret.
//!
//! An HMAC of an 8-byte counter costs four calls of the hash's compression function: two
//! for the key (the inner and outer padded key blocks) and two for the message (one block
//! each for the inner and the outer hash). The key's two are the same for every step of a
//! window, so they are done once, here, and each step costs the other two: a ±1 window takes
//! 2 + 3 × 2 = 8 calls instead of 12. The compression functions are RustCrypto's (`sha1`,
//! `sha2`); only the padding of the one-block messages is written here. Every code is checked
//! against totp-rs, an independent implementation, by a property test for each hash and
//! against RFC 6238's vectors.
//!
//! Keys are at most one block (a [`TotpSecret`](crate::TotpSecret) is 16 to 64 bytes, and
//! the smallest block is 64), so the key is never hashed first; a longer key is refused.
//!
//! What is wiped: the padded key blocks, and every chaining state after a key block (each is
//! as good as the key for computing codes), the keyed ones on drop and each step's working
//! copy when done. What is not: a step's message blocks and outputs, which hold the public
//! counter and the MAC the code of that one step is truncated from: the code itself, which
//! the comparison holds as a plain number anyway. Wiping them took a third of the time of a
//! verification (volatile byte writes, 64 at a time), for no secret the code does not
//! already give.

use zeroize::{Zeroize, Zeroizing};

use crate::leaf_errors::CryptoError;

use super::Algorithm;

/// The chaining states after the inner and the outer padded key block.
pub(super) enum KeyedHmac {
    Sha1(Keyed<[u32; 5]>),
    Sha256(Keyed<[u32; 8]>),
    Sha512(Keyed<[u64; 8]>),
}

/// A hash's state after absorbing `key ⊕ ipad` and after `key ⊕ opad`.
pub(super) struct Keyed<S: Zeroize> {
    inner: S,
    outer: S,
}

impl<S: Zeroize> Drop for Keyed<S> {
    fn drop(&mut self) {
        self.inner.zeroize();
        self.outer.zeroize();
    }
}

/// FIPS 180-4 initial hash values.
const SHA1_IV: [u32; 5] = [
    0x6745_2301,
    0xEFCD_AB89,
    0x98BA_DCFE,
    0x1032_5476,
    0xC3D2_E1F0,
];
const SHA256_IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];
const SHA512_IV: [u64; 8] = [
    0x6a09_e667_f3bc_c908,
    0xbb67_ae85_84ca_a73b,
    0x3c6e_f372_fe94_f82b,
    0xa54f_f53a_5f1d_36f1,
    0x510e_527f_ade6_82d1,
    0x9b05_688c_2b3e_6c1f,
    0x1f83_d9ab_fb41_bd6b,
    0x5be0_cd19_137e_2179,
];

fn sha1(state: &mut [u32; 5], block: &[u8; 64]) {
    sha1::block_api::compress(state, std::slice::from_ref(block));
}

fn sha256(state: &mut [u32; 8], block: &[u8; 64]) {
    sha2::block_api::compress256(state, std::slice::from_ref(block));
}

fn sha512(state: &mut [u64; 8], block: &[u8; 128]) {
    sha2::block_api::compress512(state, std::slice::from_ref(block));
}

impl KeyedHmac {
    pub(super) fn new(algorithm: Algorithm, key: &[u8]) -> Result<Self, CryptoError> {
        Ok(match algorithm {
            Algorithm::Sha1 => Self::Sha1(keyed(SHA1_IV, key, sha1)?),
            Algorithm::Sha256 => Self::Sha256(keyed(SHA256_IV, key, sha256)?),
            Algorithm::Sha512 => Self::Sha512(keyed(SHA512_IV, key, sha512)?),
        })
    }

    /// RFC 4226 §5.3: the HMAC of `counter` (8 bytes, big-endian), dynamically truncated to
    /// 31 bits.
    pub(super) fn truncated(&self, counter: u64) -> Result<u32, CryptoError> {
        match self {
            Self::Sha1(keys) => dynamic_truncation(&mac::<_, 5, 64, 20>(keys, counter, sha1)?),
            Self::Sha256(keys) => dynamic_truncation(&mac::<_, 8, 64, 32>(keys, counter, sha256)?),
            Self::Sha512(keys) => dynamic_truncation(&mac::<_, 8, 128, 64>(keys, counter, sha512)?),
        }
    }
}

/// A state word, written big-endian.
trait Word: Copy + Zeroize {
    const BYTES: usize;
    fn write_be(self, out: &mut [u8]);
}

impl Word for u32 {
    const BYTES: usize = 4;
    fn write_be(self, out: &mut [u8]) {
        out.copy_from_slice(&self.to_be_bytes());
    }
}

impl Word for u64 {
    const BYTES: usize = 8;
    fn write_be(self, out: &mut [u8]) {
        out.copy_from_slice(&self.to_be_bytes());
    }
}

/// Absorbs `key ⊕ 0x36…` and `key ⊕ 0x5c…` (the key zero-padded to a block) from `iv`.
fn keyed<W: Word, const N: usize, const B: usize>(
    iv: [W; N],
    key: &[u8],
    compress: fn(&mut [W; N], &[u8; B]),
) -> Result<Keyed<[W; N]>, CryptoError>
where
    [W; N]: Zeroize,
{
    // One block, wiped once: the key XOR ipad, absorbed; turned into the key XOR opad in
    // place (ipad XOR opad = 0x6a), absorbed.
    let mut pad = Zeroizing::new([0x36u8; B]);
    let (head, _) = pad
        .split_at_mut_checked(key.len())
        .ok_or(CryptoError::UnusableSecret)?;
    for (byte, key_byte) in head.iter_mut().zip(key) {
        *byte ^= key_byte;
    }
    let mut keys = Keyed {
        inner: iv,
        outer: iv,
    };
    compress(&mut keys.inner, &pad);
    for byte in pad.iter_mut() {
        *byte ^= 0x36 ^ 0x5c;
    }
    compress(&mut keys.outer, &pad);
    Ok(keys)
}

/// The final (and only) block of a message of `message.len()` bytes that follows one block
/// already absorbed: the message, `0x80`, zeros, and the total length in bits in the last 8
/// bytes (SHA-512's 16-byte length field: its upper 8 bytes are zero for any length here).
fn final_block<const B: usize>(message: &[u8]) -> Result<[u8; B], CryptoError> {
    let mut block = [0u8; B];
    let (head, rest) = block
        .split_at_mut_checked(message.len())
        .ok_or(CryptoError::UnusableSecret)?;
    head.copy_from_slice(message);
    let (marker, _) = rest.split_first_mut().ok_or(CryptoError::UnusableSecret)?;
    *marker = 0x80;
    let bits = u64::try_from((B + message.len()) * 8).map_err(|_| CryptoError::UnusableSecret)?;
    let (_, length) = block
        .split_last_chunk_mut::<8>()
        .ok_or(CryptoError::UnusableSecret)?;
    *length = bits.to_be_bytes();
    Ok(block)
}

/// The state's first `O` bytes, words big-endian (the hash output).
fn output<W: Word, const N: usize, const O: usize>(state: &[W; N]) -> [u8; O] {
    let mut out = [0u8; O];
    for (chunk, word) in out.chunks_exact_mut(W::BYTES).zip(state) {
        word.write_be(chunk);
    }
    out
}

/// `HMAC(key, counter)`, `O` bytes, from the keyed states: one compression for the inner hash
/// of the counter, one for the outer hash of that. The working state is wiped.
fn mac<W: Word, const N: usize, const B: usize, const O: usize>(
    keys: &Keyed<[W; N]>,
    counter: u64,
    compress: fn(&mut [W; N], &[u8; B]),
) -> Result<[u8; O], CryptoError>
where
    [W; N]: Zeroize,
{
    let mut state = Zeroizing::new(keys.inner);
    compress(&mut state, &final_block::<B>(&counter.to_be_bytes())?);
    let inner = output::<W, N, O>(&state);
    *state = keys.outer;
    compress(&mut state, &final_block::<B>(&inner)?);
    Ok(output::<W, N, O>(&state))
}

/// The 31-bit number at the offset the MAC's last nibble names.
fn dynamic_truncation(mac: &[u8]) -> Result<u32, CryptoError> {
    let offset = usize::from(mac.last().ok_or(CryptoError::UnusableSecret)? & 0x0f);
    let window: [u8; 4] = mac
        .get(offset..offset + 4)
        .and_then(|window| window.try_into().ok())
        .ok_or(CryptoError::UnusableSecret)?;
    Ok(u32::from_be_bytes(window) & 0x7fff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2202 (HMAC-SHA-1) and RFC 4231 (HMAC-SHA-256/512) are for arbitrary messages; an
    /// 8-byte message is what TOTP needs, so the reference here is RustCrypto's `hmac`.
    #[test]
    fn matches_rustcrypto_hmac_for_every_hash_and_key_length() {
        use hmac::{Hmac, KeyInit, Mac};
        fn reference<D: hmac::EagerHash>(key: &[u8], counter: u64) -> Vec<u8>
        where
            Hmac<D>: KeyInit + Mac,
        {
            let mut mac = <Hmac<D> as KeyInit>::new_from_slice(key).unwrap();
            mac.update(&counter.to_be_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        for len in [0, 1, 16, 20, 32, 55, 56, 63, 64] {
            let key: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            for counter in [0, 1, 59_833_333, u64::MAX] {
                let KeyedHmac::Sha1(k) = KeyedHmac::new(Algorithm::Sha1, &key).unwrap() else {
                    unreachable!()
                };
                let ours = mac::<_, 5, 64, 20>(&k, counter, sha1).unwrap();
                assert_eq!(&ours[..], reference::<sha1::Sha1>(&key, counter), "{len}");
                let KeyedHmac::Sha256(k) = KeyedHmac::new(Algorithm::Sha256, &key).unwrap() else {
                    unreachable!()
                };
                let ours = mac::<_, 8, 64, 32>(&k, counter, sha256).unwrap();
                assert_eq!(&ours[..], reference::<sha2::Sha256>(&key, counter), "{len}");
                let KeyedHmac::Sha512(k) = KeyedHmac::new(Algorithm::Sha512, &key).unwrap() else {
                    unreachable!()
                };
                let ours = mac::<_, 8, 128, 64>(&k, counter, sha512).unwrap();
                assert_eq!(&ours[..], reference::<sha2::Sha512>(&key, counter), "{len}");
            }
        }
        // SHA-512's block is 128 bytes: a 128-byte key still fits; 65 does not for SHA-1.
        assert!(KeyedHmac::new(Algorithm::Sha512, &[1; 128]).is_ok());
        assert_eq!(
            KeyedHmac::new(Algorithm::Sha1, &[1; 65]).err(),
            Some(CryptoError::UnusableSecret)
        );
    }
}
