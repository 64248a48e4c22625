//! The signed identity assertion api-key-auth mints at the edge
//! (mcp-gateway) for the identity it verified: a short-lived ES256 JWT in
//! one header, which the services forward on their own calls the way they
//! forward `traceparent`, and every sidecar behind the gateway verifies with
//! the gateway's *public* key (an ordinary `jwt_providers` entry reading that
//! header). ES256, not HMAC: a verifier cannot mint, so a compromised service
//! pod (which can read its own sidecar's config) learns nothing that lets it
//! speak for another organization; and P-256 is already in the module for
//! ES256 API tokens, so minting adds no dependency.
//!
//! A minted assertion is reused for the same identity while more than half
//! of its lifetime is left: the gateway signs once per identity and half
//! lifetime, not per request, and the verifiers' token cache sees the same
//! string again.

use crate::config::IdentityAssertion;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use mesh_core::config_error::ConfigError;
use mesh_core::identity::Identity;
use p256::ecdsa::signature::Signer;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::HashMap;

/// Identities whose assertion is remembered per VM; the map is emptied when
/// full (a new signature costs one ES256 sign, not a failure).
const CACHE_ENTRIES: usize = 4096;

pub struct Minter {
    header: String,
    issuer: String,
    audience: String,
    key_id: String,
    key: p256::ecdsa::SigningKey,
    ttl: i64,
    cache: RefCell<HashMap<String, (String, i64)>>,
}

impl Minter {
    /// The signing key from the config's JWK; errors name the field and
    /// never show the key.
    pub fn new(config: &IdentityAssertion, field: &str) -> Result<Self, ConfigError> {
        let at = |name: &str| format!("{field}.{name}");
        let jwk = &config.private_key;
        let text = |name: &str| jwk.get(name).and_then(Value::as_str);
        if text("kty") != Some("EC") || text("crv") != Some("P-256") {
            return Err(ConfigError::new(
                at("private_key"),
                "must be a P-256 EC JWK (kty EC, crv P-256) with its private part d",
            ));
        }
        let d = text("d")
            .and_then(|d| URL_SAFE_NO_PAD.decode(d.trim_end_matches('=')).ok())
            .ok_or_else(|| ConfigError::new(at("private_key.d"), "must be base64url"))?;
        let key = p256::ecdsa::SigningKey::from_slice(&d).map_err(|_| {
            ConfigError::new(at("private_key.d"), "is not a valid P-256 private key")
        })?;
        // A JWK whose public part does not match its private one is a
        // copy-paste mistake that would make every verifier refuse us.
        if let (Some(x), Some(y)) = (text("x"), text("y")) {
            let point = key.verifying_key().to_encoded_point(false);
            let same = |coordinate: Option<&[u8]>, text: &str| {
                coordinate.map(|v| URL_SAFE_NO_PAD.encode(v)).as_deref()
                    == Some(text.trim_end_matches('='))
            };
            let (px, py) = (point.x().map(|v| &v[..]), point.y().map(|v| &v[..]));
            if !same(px, x) || !same(py, y) {
                return Err(ConfigError::new(
                    at("private_key"),
                    "x and y are not the public key of d",
                ));
            }
        }
        Ok(Self {
            header: config.header.clone(),
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            key_id: config.key_id.clone(),
            key,
            ttl: i64::try_from(config.ttl_seconds).unwrap_or(i64::MAX),
            cache: RefCell::new(HashMap::new()),
        })
    }

    /// The request header the assertion travels in.
    pub fn header(&self) -> &str {
        &self.header
    }

    /// The assertion for `identity` at `now` (seconds), reused while more
    /// than half of its lifetime is left.
    pub fn mint(&self, identity: &Identity, now: i64) -> String {
        let key = cache_key(identity);
        if let Some((token, exp)) = self.cache.borrow().get(&key) {
            if exp.saturating_sub(now) > self.ttl / 2 {
                return token.clone();
            }
        }
        let exp = now.saturating_add(self.ttl);
        let token = self.sign(identity, now, exp);
        let mut cache = self.cache.borrow_mut();
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(key, (token.clone(), exp));
        token
    }

    fn sign(&self, identity: &Identity, now: i64, exp: i64) -> String {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.key_id});
        let mut claims = json!({
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": exp,
            "org_id": identity.org_id,
            "plan": identity.plan,
            "role": identity.role,
            "jti": identity.key_id,
        });
        if let Some(map) = claims.as_object_mut() {
            if let Some(user) = &identity.user_id {
                map.insert("sub".into(), Value::String(user.clone()));
            }
            if let Some(scopes) = &identity.scopes {
                map.insert("scope".into(), Value::String(scopes.clone()));
            }
        }
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature: p256::ecdsa::Signature = self.key.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }
}

/// Every identity field, unambiguously joined (values never hold `\n`).
fn cache_key(identity: &Identity) -> String {
    [
        identity.org_id.as_str(),
        &identity.key_id,
        &identity.plan,
        &identity.role,
        identity.user_id.as_deref().unwrap_or("\u{1}"),
        identity.scopes.as_deref().unwrap_or("\u{1}"),
    ]
    .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClaimMapping, JwtProvider};
    use crate::jwt::{JwtError, JwtVerifier};

    // P-256 test key pair (RFC 7515 appendix A.3).
    const D: &str = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI";
    const X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

    fn config() -> IdentityAssertion {
        IdentityAssertion {
            private_key: json!({"kty": "EC", "crv": "P-256", "d": D, "x": X, "y": Y}),
            key_id: "gw-1".into(),
            ..IdentityAssertion::default()
        }
    }

    fn verifier() -> JwtVerifier {
        JwtVerifier::new(&[JwtProvider {
            name: "mesh".into(),
            issuer: "mcp-gateway".into(),
            audiences: vec!["mcp-mesh".into()],
            local_jwks: json!({"keys": [{"kty": "EC", "crv": "P-256", "x": X, "y": Y, "kid": "gw-1"}]}),
            claims: ClaimMapping::default(),
            default_plan: None,
            default_role: None,
            require_exp: true,
            max_lifetime_seconds: 300,
        }])
        .unwrap()
    }

    fn alice() -> Identity {
        Identity {
            org_id: "acme".into(),
            key_id: "acme-owner-1".into(),
            plan: "pro".into(),
            role: "owner".into(),
            user_id: Some("alice".into()),
            scopes: Some("debates:judge".into()),
        }
    }

    #[test]
    fn a_verifier_with_the_public_key_gets_the_identity_back() {
        let m = Minter::new(&config(), "identity_assertion").unwrap();
        let token = m.mint(&alice(), 1000);
        assert_eq!(verifier().verify(&token, 1010, 0), Ok(alice()));
        // Expired after its lifetime (no clock skew here).
        assert_eq!(verifier().verify(&token, 1061, 0), Err(JwtError::Expired));
    }

    #[test]
    fn assertions_are_reused_for_half_their_life() {
        let m = Minter::new(&config(), "identity_assertion").unwrap();
        let first = m.mint(&alice(), 1000);
        assert_eq!(m.mint(&alice(), 1029), first);
        assert_ne!(m.mint(&alice(), 1031), first);
        let other = Identity {
            role: "user".into(),
            ..alice()
        };
        assert_ne!(m.mint(&other, 1031), m.mint(&alice(), 1031));
    }

    #[test]
    fn altered_or_resigned_assertions_are_refused() {
        let m = Minter::new(&config(), "identity_assertion").unwrap();
        let token = m.mint(&alice(), 1000);
        let parts: Vec<&str> = token.split('.').collect();
        let claims = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        let forged = claims.replace("\"acme\"", "\"globex\"");
        let altered = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(forged),
            parts[2]
        );
        assert_eq!(
            verifier().verify(&altered, 1010, 0),
            Err(JwtError::BadSignature)
        );
        // Another key under the same kid.
        let mut other = config();
        other.private_key = json!({"kty": "EC", "crv": "P-256",
            "d": URL_SAFE_NO_PAD.encode([7u8; 32])});
        let resigned = Minter::new(&other, "x").unwrap().mint(&alice(), 1000);
        assert_eq!(
            verifier().verify(&resigned, 1010, 0),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn key_mistakes_name_the_field_and_never_show_the_key() {
        let mut c = config();
        c.private_key["y"] = json!(X);
        let err = Minter::new(&c, "identity_assertion").err().unwrap();
        assert_eq!(err.field, "identity_assertion.private_key");
        assert!(!err.to_string().contains(D));
        c.private_key = json!({"kty": "RSA"});
        assert!(Minter::new(&c, "a").is_err());
        c.private_key = json!({"kty": "EC", "crv": "P-256", "d": "!!"});
        let err = Minter::new(&c, "a").err().unwrap();
        assert_eq!(err.to_string(), "a.private_key.d: must be base64url");
    }
}
