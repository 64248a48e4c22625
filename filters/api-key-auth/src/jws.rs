//! JWS signature verification for the three algorithms API tokens use:
//! HS256 (shared secret), RS256 (RSA PKCS#1 v1.5, SHA-256) and ES256 (ECDSA
//! P-256, SHA-256), with keys from a JWKS.
//!
//! Written on the RustCrypto primitives directly instead of a JWT crate: the
//! `jsonwebtoken` crate with every algorithm made the filter 1.1 MB of wasm.
//! RS256 uses the small verifier in `rsa_pkcs1`.

use crate::rsa_pkcs1::RsaPublicKey;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use p256::ecdsa::signature::Verifier;
use serde::Deserialize;
use sha2::Sha256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    HS256,
    RS256,
    ES256,
}

impl Alg {
    /// Exact, case-sensitive JWA names (RFC 7518 §3.1).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "HS256" => Some(Alg::HS256),
            "RS256" => Some(Alg::RS256),
            "ES256" => Some(Alg::ES256),
            _ => None,
        }
    }
}

/// RFC 7518 §3.2: an HMAC key must be at least as long as the hash output.
pub const MIN_HMAC_KEY_BYTES: usize = 32;
/// 2048-bit RSA keys at least (NIST SP 800-131A).
pub const MIN_RSA_MODULUS_BITS: usize = 2048;
/// Larger moduli cost verification time a client could abuse.
pub const MAX_RSA_MODULUS_BITS: usize = 8192;

#[derive(Clone)]
pub enum VerifyingKey {
    Hmac(Vec<u8>),
    Rsa(RsaPublicKey),
    Ec(p256::ecdsa::VerifyingKey),
}

impl VerifyingKey {
    pub fn alg(&self) -> Alg {
        match self {
            VerifyingKey::Hmac(_) => Alg::HS256,
            VerifyingKey::Rsa(_) => Alg::RS256,
            VerifyingKey::Ec(_) => Alg::ES256,
        }
    }

    /// True when `signature` (raw bytes, JWS form) signs `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            VerifyingKey::Hmac(secret) => Hmac::<Sha256>::new_from_slice(secret)
                .map(|mut mac| {
                    mac.update(message);
                    // verify_slice compares in constant time.
                    mac.verify_slice(signature).is_ok()
                })
                .unwrap_or(false),
            VerifyingKey::Rsa(key) => key.verify(message, signature),
            // JWS ES256 signatures are r || s, 64 bytes (RFC 7518 §3.4).
            VerifyingKey::Ec(key) => p256::ecdsa::Signature::from_slice(signature)
                .map(|sig| key.verify(message, &sig).is_ok())
                .unwrap_or(false),
        }
    }
}

/// One JWKS entry (RFC 7517), only the members this filter uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub alg: Option<String>,
    #[serde(default, rename = "use")]
    pub use_: Option<String>,
    #[serde(default)]
    pub k: Option<String>,
    #[serde(default)]
    pub n: Option<String>,
    #[serde(default)]
    pub e: Option<String>,
    #[serde(default)]
    pub crv: Option<String>,
    #[serde(default)]
    pub x: Option<String>,
    #[serde(default)]
    pub y: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

fn b64(field: &str, value: Option<&String>) -> Result<Vec<u8>, String> {
    let text = value.ok_or_else(|| format!("`{field}` is required"))?;
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| format!("`{field}` is not base64url"))
}

impl VerifyingKey {
    /// The key a JWKS entry describes; the error says what is wrong with it.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, String> {
        if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
            return Err("`use` must be `sig`".into());
        }
        let key = match jwk.kty.as_str() {
            "oct" => {
                let secret = b64("k", jwk.k.as_ref())?;
                if secret.len() < MIN_HMAC_KEY_BYTES {
                    return Err(format!(
                        "HMAC secret must be at least {MIN_HMAC_KEY_BYTES} bytes (has {})",
                        secret.len()
                    ));
                }
                VerifyingKey::Hmac(secret)
            }
            "RSA" => {
                let n = b64("n", jwk.n.as_ref())?;
                let e = b64("e", jwk.e.as_ref())?;
                VerifyingKey::Rsa(RsaPublicKey::new(
                    &n,
                    &e,
                    MIN_RSA_MODULUS_BITS,
                    MAX_RSA_MODULUS_BITS,
                )?)
            }
            "EC" => {
                if jwk.crv.as_deref() != Some("P-256") {
                    return Err("`crv` must be `P-256` (ES256)".into());
                }
                let x = b64("x", jwk.x.as_ref())?;
                let y = b64("y", jwk.y.as_ref())?;
                if x.len() != 32 || y.len() != 32 {
                    return Err("`x` and `y` must be 32 bytes each".into());
                }
                let mut point = Vec::with_capacity(65);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point)
                    .map_err(|_| "the point is not on the P-256 curve".to_string())?;
                VerifyingKey::Ec(key)
            }
            other => return Err(format!("unsupported `kty` `{other}` (use oct, RSA or EC)")),
        };
        if let Some(alg) = &jwk.alg {
            if Alg::from_name(alg) != Some(key.alg()) {
                return Err(format!(
                    "`alg` `{alg}` does not fit `kty` `{}` (expected {:?})",
                    jwk.kty,
                    key.alg()
                ));
            }
        }
        Ok(key)
    }
}

/// Test-only token signing on the same primitives (HS256, ES256), so the
/// tests need no JWT crate. RS256 is tested against a fixture signed by
/// another implementation (`rsa_pkcs1`).
#[cfg(test)]
pub mod test_tokens {
    use super::*;
    use p256::ecdsa::signature::Signer;
    use serde_json::Value;

    fn b64_json(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    fn jws(header: &Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
        let input = format!("{}.{}", b64_json(header), b64_json(claims));
        let signature = sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    pub fn hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
        jws(header, claims, |input| {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
            mac.update(input);
            mac.finalize().into_bytes().to_vec()
        })
    }

    /// `d`: the P-256 private scalar, 32 bytes.
    pub fn es256(header: &Value, claims: &Value, d: &[u8]) -> String {
        let key = p256::ecdsa::SigningKey::from_slice(d).unwrap();
        jws(header, claims, |input| {
            let signature: p256::ecdsa::Signature = key.sign(input);
            signature.to_bytes().to_vec()
        })
    }
}
