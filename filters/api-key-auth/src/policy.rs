//! The whole decision for one request, host-free: skip path, credential,
//! API key or JWT, route rule. `filter.rs` only gathers the request's headers,
//! calls [`Policy::decide`] and applies the [`Verdict`].

use crate::config::{Config, KeySource};
use crate::credential::{self, Found};
use crate::jwt::{JwtError, JwtVerifier};
use crate::keystore::{sha256, KeyLookup, KeyStore};
use crate::outcome::Outcome;
use crate::routes::Routes;
use crate::token_cache::TokenCache;
use mesh_core::config_error::ConfigError;
use mesh_core::identity::Identity;
use std::cell::RefCell;

/// The compiled pluginConfig: key index and JWKS keys are built once.
#[derive(Debug)]
pub struct Policy {
    sources: Vec<KeySource>,
    keys: KeyStore,
    jwt: JwtVerifier,
    /// Per VM (the filter is single-threaded per worker).
    jwt_cache: RefCell<TokenCache>,
    routes: Routes,
    pub forward_credential: bool,
    pub max_credential_bytes: usize,
    pub clock_skew_seconds: i64,
    pub realm: String,
    anonymous: bool,
}

/// What the filter knows about a request when its headers arrive.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// `:path`, query included.
    pub path: &'a str,
    /// Every request header as the host gave it: (lowercase name, raw bytes).
    pub headers: &'a [(String, Vec<u8>)],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A skip path: no credential needed; identity headers are still cleared
    /// and these credential headers removed (unless `forward_credential`).
    Skip {
        strip_headers: Vec<String>,
        /// `SkippedPath`, or `Anonymous` (no credential, `anonymous` on).
        outcome: Outcome,
    },
    Allow(Allowed),
    Deny(Outcome),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    pub outcome: Outcome,
    pub identity: Identity,
    /// Headers that carried the credential; removed unless `forward_credential`.
    pub strip_headers: Vec<String>,
    /// `:path` without the credential's query parameter, when it had one.
    pub new_path: Option<String>,
}

impl Policy {
    /// A token verified before is taken from the cache (its time window
    /// re-checked); otherwise verified and, when valid, cached.
    fn verify_jwt(&self, token: &str, now: i64) -> Result<Identity, JwtError> {
        let skew = self.clock_skew_seconds;
        let digest = sha256(token.as_bytes());
        // try_borrow_mut: never a panic path, at worst an uncached check.
        let mut cache = self.jwt_cache.try_borrow_mut().ok();
        if let Some(hit) = cache.as_mut().and_then(|c| c.get(&digest, now, skew)) {
            return hit;
        }
        let verified = self.jwt.verify_full(token, now, skew)?;
        let identity = verified.identity.clone();
        if let Some(c) = cache.as_mut() {
            c.put(digest, verified, now, skew);
        }
        Ok(identity)
    }

    pub fn new(config: &Config) -> Result<Self, ConfigError> {
        Ok(Self {
            sources: config.key_sources.clone(),
            keys: KeyStore::new(&config.keys)?,
            jwt: JwtVerifier::new(&config.jwt_providers)?,
            jwt_cache: RefCell::new(TokenCache::new(config.jwt_cache_size)),
            routes: Routes::new(&config.skip_paths, &config.rules),
            forward_credential: config.forward_credential,
            max_credential_bytes: config.max_credential_bytes,
            clock_skew_seconds: i64::try_from(config.clock_skew_seconds).unwrap_or(i64::MAX),
            realm: config.realm.clone(),
            anonymous: config.anonymous,
        })
    }

    /// Decides at `now` (Unix seconds, from the host clock).
    pub fn decide(&self, req: &Request<'_>, now: i64) -> Verdict {
        if self.routes.skips(req.path) {
            let strip_headers = if self.forward_credential {
                Vec::new()
            } else {
                credential::carrying_headers(&self.sources, req.headers)
            };
            return Verdict::Skip {
                strip_headers,
                outcome: Outcome::SkippedPath,
            };
        }
        let credential = match credential::find(
            &self.sources,
            req.headers,
            req.path,
            self.max_credential_bytes,
        ) {
            Found::Missing if self.anonymous => {
                return Verdict::Skip {
                    strip_headers: Vec::new(),
                    outcome: Outcome::Anonymous,
                }
            }
            Found::Missing => return Verdict::Deny(Outcome::MissingCredential),
            Found::Malformed => return Verdict::Deny(Outcome::MalformedCredential),
            Found::Conflicting => return Verdict::Deny(Outcome::ConflictingCredentials),
            Found::One(c) => c,
        };
        // API keys never contain a dot; JWTs always do.
        let (identity, outcome) = if credential.value.contains('.') && !self.jwt.is_empty() {
            match self.verify_jwt(&credential.value, now) {
                Ok(identity) => (identity, Outcome::AllowedJwt),
                Err(e) => return Verdict::Deny(Outcome::Token(e)),
            }
        } else {
            match self.keys.lookup(credential.value.as_bytes(), now) {
                KeyLookup::Valid(identity) => (identity.clone(), Outcome::AllowedApiKey),
                KeyLookup::Unknown => return Verdict::Deny(Outcome::UnknownKey),
                KeyLookup::NotYetValid => return Verdict::Deny(Outcome::KeyNotYetValid),
                KeyLookup::Expired => return Verdict::Deny(Outcome::KeyExpired),
            }
        };
        if !self.routes.permits(req.method, req.path, &identity) {
            return Verdict::Deny(Outcome::RouteForbidden);
        }
        let (strip_headers, new_path) = if self.forward_credential {
            (Vec::new(), None)
        } else {
            let new_path = (!credential.query_params.is_empty())
                .then(|| credential::remove_query_params(req.path, &credential.query_params));
            (credential.headers, new_path)
        };
        Verdict::Allow(Allowed {
            outcome,
            identity,
            strip_headers,
            new_path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jws::test_tokens;
    use crate::jwt::JwtError;
    use crate::keystore::{sha256, to_hex};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use mesh_core::config_error::load;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;
    const SECRET: &[u8] = b"demo-secret-demo-secret-demo-sec";

    fn policy(extra: serde_json::Value) -> Policy {
        let mut cfg = json!({
            "key_sources": [
                {"header": "x-api-key"},
                {"header": "authorization", "value_prefix": "Bearer "},
                {"query": "api_key"}
            ],
            "keys": [
                {"id": "acme-1", "sha256": to_hex(&sha256(b"acme-old")), "org_id": "acme", "plan": "pro", "role": "owner", "user_id": "alice"},
                {"id": "acme-2", "sha256": to_hex(&sha256(b"acme-new")), "org_id": "acme", "plan": "pro", "role": "user"},
                {"id": "globex-1", "sha256": to_hex(&sha256(b"globex")), "org_id": "globex", "plan": "free", "role": "user",
                 "expires_at": "2029-01-01T00:00:00Z"},
                {"id": "future-1", "sha256": to_hex(&sha256(b"future")), "org_id": "globex", "plan": "free", "role": "user",
                 "not_before": "2030-01-01T00:00:00Z"}
            ],
            "jwt_providers": [{"name": "idp", "issuer": "https://idp.example",
                "local_jwks": {"keys": [{"kty": "oct", "k": URL_SAFE_NO_PAD.encode(SECRET), "alg": "HS256"}]}}],
            "skip_paths": [{"exact": "/healthz"}],
            "rules": [{"prefix": "/admin", "allowed_roles": ["owner"]}]
        });
        if let (Some(obj), Some(more)) = (cfg.as_object_mut(), extra.as_object()) {
            for (k, v) in more {
                obj.insert(k.clone(), v.clone());
            }
        }
        let config: Config = load(cfg.to_string().as_bytes()).unwrap();
        Policy::new(&config).unwrap()
    }

    fn decide(p: &Policy, method: &str, path: &str, headers: &[(&str, &str)]) -> Verdict {
        let headers: Vec<(String, Vec<u8>)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        p.decide(
            &Request {
                method,
                path,
                headers: &headers,
            },
            NOW,
        )
    }

    fn allowed(v: Verdict) -> Allowed {
        match v {
            Verdict::Allow(a) => a,
            other => panic!("{other:?}"),
        }
    }

    fn token(claims: serde_json::Value) -> String {
        test_tokens::hs256(&json!({"alg": "HS256"}), &claims, SECRET)
    }

    #[test]
    fn decision_table() {
        let p = policy(json!({}));
        let jwt = token(
            json!({"iss": "https://idp.example", "exp": NOW + 60, "org_id": "initech", "plan": "enterprise", "role": "service"}),
        );
        let expired_jwt = token(
            json!({"iss": "https://idp.example", "exp": NOW - 61, "org_id": "initech", "plan": "p", "role": "r"}),
        );
        let bearer_jwt = format!("Bearer {jwt}");
        let bearer_expired = format!("Bearer {expired_jwt}");
        let huge = "k".repeat(5000);
        use Outcome::*;
        // (method, path, headers, Ok(allowed outcome) | Err(other outcome))
        type Case<'a> = (
            &'a str,
            &'a str,
            Vec<(&'a str, &'a str)>,
            Result<Outcome, Outcome>,
        );
        let cases: Vec<Case> = vec![
            ("GET", "/healthz", vec![], Err(SkippedPath)),
            ("GET", "/mcp", vec![], Err(MissingCredential)),
            (
                "POST",
                "/mcp",
                vec![("x-api-key", "acme-old")],
                Ok(AllowedApiKey),
            ),
            (
                "POST",
                "/mcp",
                vec![("x-api-key", "acme-new")],
                Ok(AllowedApiKey),
            ),
            (
                "POST",
                "/mcp",
                vec![("authorization", "Bearer acme-new")],
                Ok(AllowedApiKey),
            ),
            ("POST", "/mcp?api_key=acme-new", vec![], Ok(AllowedApiKey)),
            ("POST", "/mcp", vec![("x-api-key", "nope")], Err(UnknownKey)),
            (
                "POST",
                "/mcp",
                vec![("x-api-key", huge.as_str())],
                Err(MalformedCredential),
            ),
            (
                "POST",
                "/mcp",
                vec![
                    ("x-api-key", "acme-old"),
                    ("authorization", "Bearer acme-new"),
                ],
                Err(ConflictingCredentials),
            ),
            (
                "POST",
                "/mcp",
                vec![("x-api-key", "globex")],
                Ok(AllowedApiKey),
            ),
            (
                "POST",
                "/mcp",
                vec![("x-api-key", "future")],
                Err(KeyNotYetValid),
            ),
            (
                "GET",
                "/admin/x",
                vec![("x-api-key", "acme-old")],
                Ok(AllowedApiKey),
            ),
            (
                "GET",
                "/admin/x",
                vec![("x-api-key", "acme-new")],
                Err(RouteForbidden),
            ),
            (
                "GET",
                "/mcp",
                vec![("authorization", bearer_jwt.as_str())],
                Ok(AllowedJwt),
            ),
            (
                "GET",
                "/mcp",
                vec![("authorization", bearer_expired.as_str())],
                Err(Token(JwtError::Expired)),
            ),
            (
                "GET",
                "/mcp",
                vec![("authorization", "Bearer a.b")],
                Err(Token(JwtError::Malformed)),
            ),
            (
                "GET",
                "/admin",
                vec![("authorization", bearer_jwt.as_str())],
                Err(RouteForbidden),
            ),
        ];
        for (method, path, headers, want) in cases {
            let got = decide(&p, method, path, &headers);
            match (want, got) {
                (Ok(o), Verdict::Allow(a)) => {
                    assert_eq!(a.outcome, o, "{method} {path} {headers:?}")
                }
                (Err(Outcome::SkippedPath), Verdict::Skip { .. }) => {}
                (Err(o), Verdict::Deny(d)) => assert_eq!(d, o, "{method} {path} {headers:?}"),
                (want, got) => panic!("{method} {path} {headers:?}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn identity_and_stripping() {
        let p = policy(json!({}));
        let a = allowed(decide(
            &p,
            "POST",
            "/mcp?x=1&api_key=acme-old",
            &[("x-api-key", "acme-old")],
        ));
        assert_eq!(a.identity.org_id, "acme");
        assert_eq!(a.identity.key_id, "acme-1");
        assert_eq!(a.identity.user_id.as_deref(), Some("alice"));
        assert_eq!(a.strip_headers, vec!["x-api-key".to_string()]);
        assert_eq!(a.new_path.as_deref(), Some("/mcp?x=1"));
        let jwt = token(
            json!({"iss": "https://idp.example", "exp": NOW + 300, "org_id": "initech", "plan": "enterprise", "role": "service", "jti": "t1"}),
        );
        let a = allowed(decide(
            &p,
            "GET",
            "/mcp",
            &[("authorization", &format!("Bearer {jwt}"))],
        ));
        assert_eq!(
            (a.identity.org_id.as_str(), a.identity.key_id.as_str()),
            ("initech", "t1")
        );
        assert_eq!(a.strip_headers, vec!["authorization".to_string()]);
        let keep = policy(json!({"forward_credential": true}));
        let a = allowed(decide(&keep, "POST", "/mcp?api_key=acme-old", &[]));
        assert!(a.strip_headers.is_empty() && a.new_path.is_none());
    }

    #[test]
    fn key_expiry_follows_the_clock() {
        let p = policy(json!({}));
        let headers: Vec<(String, Vec<u8>)> = vec![("x-api-key".into(), b"globex".to_vec())];
        let at = |now| {
            p.decide(
                &Request {
                    method: "GET",
                    path: "/",
                    headers: &headers,
                },
                now,
            )
        };
        let exp = crate::timestamp::parse_rfc3339("2029-01-01T00:00:00Z").unwrap();
        assert!(matches!(at(exp - 1), Verdict::Allow(_)));
        assert_eq!(at(exp), Verdict::Deny(Outcome::KeyExpired));
    }

    #[test]
    fn cached_tokens_still_expire() {
        let p = policy(json!({}));
        let jwt = token(
            json!({"iss": "https://idp.example", "exp": NOW + 10, "org_id": "initech", "plan": "p", "role": "r"}),
        );
        let bearer = |t: &str| -> Vec<(String, Vec<u8>)> {
            vec![("authorization".into(), format!("Bearer {t}").into_bytes())]
        };
        let headers = bearer(&jwt);
        let at = |p: &Policy, headers: &[(String, Vec<u8>)], now| {
            p.decide(
                &Request {
                    method: "GET",
                    path: "/",
                    headers,
                },
                now,
            )
        };
        assert!(matches!(at(&p, &headers, NOW), Verdict::Allow(_)));
        assert_eq!(p.jwt_cache.borrow().len(), 1);
        assert!(
            matches!(at(&p, &headers, NOW + 1), Verdict::Allow(_)),
            "served from the cache"
        );
        assert_eq!(
            at(&p, &headers, NOW + 10 + 60),
            Verdict::Deny(Outcome::Token(JwtError::Expired))
        );
        assert!(p.jwt_cache.borrow().is_empty());
        // A token differing in one byte is verified on its own, not matched in the cache.
        assert!(matches!(at(&p, &headers, NOW), Verdict::Allow(_)));
        assert!(matches!(
            at(&p, &bearer(&format!("{jwt}x")), NOW),
            Verdict::Deny(Outcome::Token(_))
        ));
        let off = policy(json!({"jwt_cache_size": 0}));
        assert!(matches!(at(&off, &headers, NOW), Verdict::Allow(_)));
        assert!(off.jwt_cache.borrow().is_empty());
    }

    #[test]
    fn dotted_value_without_providers_is_an_unknown_key() {
        let p = policy(json!({"jwt_providers": []}));
        assert_eq!(
            decide(&p, "GET", "/", &[("x-api-key", "a.b.c")]),
            Verdict::Deny(Outcome::UnknownKey)
        );
    }
}
