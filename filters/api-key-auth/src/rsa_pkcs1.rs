//! RS256 verification: RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017 §8.2.2).
//!
//! Verification needs only `s^e mod n` on public values, so this is a small
//! Montgomery exponentiation instead of the `rsa` crate: that crate's bignum
//! made up a tenth of the filter's wasm, and it carries an advisory
//! (RUSTSEC-2023-0071, timing of private-key operations) that every audit of
//! this filter would have to explain away although no private key is used here.
//! Nothing here is secret, so nothing needs to be constant-time.

use sha2::{Digest, Sha256};

/// DER prefix of DigestInfo { sha256, NULL, OCTET STRING(32) } (RFC 8017 §9.2 note 1).
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// A public key prepared for Montgomery arithmetic (little-endian 32-bit limbs).
#[derive(Clone, Debug)]
pub struct RsaPublicKey {
    n: Vec<u32>,
    /// Exponent bits, most significant first, without leading zeros.
    e_bits: Vec<bool>,
    /// -n^-1 mod 2^32.
    n0_inv: u32,
    /// R^2 mod n, R = 2^(32 * limbs).
    r2: Vec<u32>,
    /// Length of n in bytes: the length every signature must have.
    len: usize,
}

impl RsaPublicKey {
    /// From big-endian `n` and `e` (the JWK's decoded `n` and `e`).
    pub fn new(n: &[u8], e: &[u8], min_bits: usize, max_bits: usize) -> Result<Self, String> {
        let n_be = strip_zeros(n);
        let bits = bit_len(n_be);
        if !(min_bits..=max_bits).contains(&bits) {
            return Err(format!(
                "RSA modulus must be {min_bits}-{max_bits} bits (has {bits})"
            ));
        }
        let n = limbs(n_be);
        let n0 = n.first().copied().unwrap_or(0);
        if n0 & 1 == 0 {
            return Err("RSA modulus must be odd".into());
        }
        let e_be = strip_zeros(e);
        let e_bits: Vec<bool> = e_be
            .iter()
            .flat_map(|byte| (0..8).rev().map(move |i| byte >> i & 1 == 1))
            .skip_while(|bit| !bit)
            .collect();
        // e must be odd and > 1 (RFC 8017 §3.1); 3 and 65537 are what keys use.
        if e_bits.len() < 2 || e_bits.last() != Some(&true) || e_bits.len() > 64 {
            return Err("RSA exponent must be odd, > 1 and at most 64 bits".into());
        }
        // Newton's iteration for n0^-1 mod 2^32; each step doubles the correct bits.
        let mut inv: u32 = 1;
        for _ in 0..5 {
            inv = inv.wrapping_mul(2u32.wrapping_sub(n0.wrapping_mul(inv)));
        }
        let r2 = r_squared(&n);
        Ok(Self {
            len: n_be.len(),
            n0_inv: inv.wrapping_neg(),
            n,
            e_bits,
            r2,
        })
    }

    /// True when `signature` is a valid RS256 signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        if signature.len() != self.len {
            return false;
        }
        let s = limbs(signature);
        if !less_than(&s, &self.n) {
            return false;
        }
        let m = self.modpow(&s);
        let encoded = to_be_bytes(&m, self.len);
        // EM = 0x00 || 0x01 || PS (0xff, >= 8 bytes) || 0x00 || DigestInfo || H
        let expected_tail: Vec<u8> = SHA256_DIGEST_INFO
            .iter()
            .copied()
            .chain(Sha256::digest(message))
            .collect();
        let Some(ps_len) = self.len.checked_sub(3 + expected_tail.len()) else {
            return false;
        };
        if ps_len < 8 {
            return false;
        }
        let mut expected = Vec::with_capacity(self.len);
        expected.extend_from_slice(&[0x00, 0x01]);
        expected.resize(2 + ps_len, 0xff);
        expected.push(0x00);
        expected.extend_from_slice(&expected_tail);
        encoded == expected
    }

    fn modpow(&self, base: &[u32]) -> Vec<u32> {
        let base_m = self.mont_mul(base, &self.r2);
        let mut acc = base_m.clone();
        // The leading exponent bit is 1: start from the base itself.
        for bit in self.e_bits.iter().skip(1) {
            acc = self.mont_mul(&acc, &acc);
            if *bit {
                acc = self.mont_mul(&acc, &base_m);
            }
        }
        let mut one = vec![0u32; self.n.len()];
        if let Some(first) = one.first_mut() {
            *first = 1;
        }
        self.mont_mul(&acc, &one)
    }

    /// a * b * R^-1 mod n (CIOS), for a, b < n with as many limbs as n.
    fn mont_mul(&self, a: &[u32], b: &[u32]) -> Vec<u32> {
        let mut t = vec![0u32; self.n.len()];
        let mut hi: u64 = 0; // limbs k and k+1 of the running sum
        for &ai in a {
            let mut carry = 0u64;
            for (tj, &bj) in t.iter_mut().zip(b) {
                let s = u64::from(*tj) + u64::from(ai) * u64::from(bj) + carry;
                *tj = s as u32;
                carry = s >> 32;
            }
            hi += carry;
            let m = t.first().copied().unwrap_or(0).wrapping_mul(self.n0_inv);
            // t = (t + m * n) / 2^32: the lowest limb becomes 0 and is dropped.
            let mut carry = 0u64;
            let mut previous: Option<&mut u32> = None;
            for (tj, &nj) in t.iter_mut().zip(&self.n) {
                let s = u64::from(*tj) + u64::from(m) * u64::from(nj) + carry;
                carry = s >> 32;
                if let Some(p) = previous {
                    *p = s as u32;
                }
                previous = Some(tj);
            }
            let s = (hi & 0xffff_ffff) + carry;
            if let Some(p) = previous {
                *p = s as u32;
            }
            hi = (hi >> 32) + (s >> 32);
        }
        if hi != 0 || !less_than(&t, &self.n) {
            subtract(&mut t, &self.n);
        }
        t
    }
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default()
}

fn bit_len(be: &[u8]) -> usize {
    match be.first() {
        None => 0,
        Some(top) => be.len() * 8 - top.leading_zeros() as usize,
    }
}

/// Big-endian bytes to little-endian limbs.
fn limbs(be: &[u8]) -> Vec<u32> {
    be.rchunks(4)
        .map(|chunk| chunk.iter().fold(0u32, |acc, b| acc << 8 | u32::from(*b)))
        .collect()
}

fn to_be_bytes(limbs: &[u32], len: usize) -> Vec<u8> {
    let le: Vec<u8> = limbs.iter().flat_map(|l| l.to_le_bytes()).collect();
    let mut be: Vec<u8> = le.into_iter().take(len).collect();
    be.resize(len, 0);
    be.reverse();
    be
}

/// a < b, both little-endian; a may have fewer limbs than b.
fn less_than(a: &[u32], b: &[u32]) -> bool {
    if a.len() > b.len() && a.iter().skip(b.len()).any(|l| *l != 0) {
        return false;
    }
    for i in (0..b.len()).rev() {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        if x != y {
            return x < y;
        }
    }
    false
}

/// a -= b (mod 2^(32 * len)).
fn subtract(a: &mut [u32], b: &[u32]) {
    let mut borrow = 0u64;
    for (x, &y) in a.iter_mut().zip(b) {
        let d = u64::from(*x)
            .wrapping_sub(u64::from(y))
            .wrapping_sub(borrow);
        *x = d as u32;
        borrow = (d >> 63) & 1;
    }
}

/// R^2 mod n by doubling 1 modulo n, 2 * 32 * limbs times (once per key, at load).
fn r_squared(n: &[u32]) -> Vec<u32> {
    let mut x = vec![0u32; n.len()];
    if let Some(first) = x.first_mut() {
        *first = 1;
    }
    for _ in 0..2 * 32 * n.len() {
        let mut carry = 0u32;
        for limb in x.iter_mut() {
            let next = *limb >> 31;
            *limb = *limb << 1 | carry;
            carry = next;
        }
        if carry == 1 || !less_than(&x, n) {
            subtract(&mut x, n);
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    // A 2048-bit public key and a signature made with its (discarded) private
    // key by Python `cryptography`: tests/fixtures/auth/rs256.json.
    const FIXTURE: &str = include_str!("../../../tests/fixtures/auth/rs256.json");

    fn fixture() -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let v: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
        let field = |k: &str| URL_SAFE_NO_PAD.decode(v[k].as_str().unwrap()).unwrap();
        (field("n"), field("e"), field("message"), field("signature"))
    }

    #[test]
    fn verifies_a_signature_made_by_another_implementation() {
        let (n, e, message, signature) = fixture();
        let key = RsaPublicKey::new(&n, &e, 2048, 8192).unwrap();
        assert!(key.verify(&message, &signature));
        let mut other = message.clone();
        other.push(b'!');
        assert!(!key.verify(&other, &signature));
        for i in [0, 100, signature.len() - 1] {
            let mut bad = signature.clone();
            bad[i] ^= 1;
            assert!(!key.verify(&message, &bad), "{i}");
        }
        assert!(!key.verify(&message, &signature[1..]));
        assert!(!key.verify(&message, &[0xff; 256]), "s >= n");
        assert!(!key.verify(&message, &[]));
    }

    #[test]
    fn montgomery_matches_small_numbers() {
        // n = 3233 = 61 * 53, e = 17, d = 2753: 65^17 mod 3233 = 2790.
        let key = RsaPublicKey::new(&3233u32.to_be_bytes(), &[17], 1, 64).unwrap();
        assert_eq!(key.modpow(&[65]), vec![2790]);
        let multi =
            RsaPublicKey::new(&0xffff_fffb_0000_0001u64.to_be_bytes(), &[3], 1, 64).unwrap();
        // (2^40)^3 mod n, computed with u128.
        let n: u128 = 0xffff_fffb_0000_0001;
        let want = (1u128 << 40) % n * ((1u128 << 40) % n) % n * ((1u128 << 40) % n) % n;
        let got = multi.modpow(&[0, 1 << 8]);
        assert_eq!(u128::from(got[0]) | u128::from(got[1]) << 32, want);
    }

    #[test]
    fn refuses_unusable_keys() {
        let (n, e, _, _) = fixture();
        assert!(RsaPublicKey::new(&n[..128], &e, 2048, 8192)
            .unwrap_err()
            .contains("2048-8192 bits"));
        let mut even = n.clone();
        *even.last_mut().unwrap() &= 0xfe;
        assert_eq!(
            RsaPublicKey::new(&even, &e, 2048, 8192).unwrap_err(),
            "RSA modulus must be odd"
        );
        assert!(RsaPublicKey::new(&n, &[1], 2048, 8192).is_err());
        assert!(RsaPublicKey::new(&n, &[2], 2048, 8192).is_err());
        assert!(RsaPublicKey::new(&n, &[], 2048, 8192).is_err());
    }
}
