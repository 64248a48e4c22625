//! Signed JWT API tokens: the second credential kind.
//!
//! The token is taken apart here (header, claims, issuer, key choice, time and
//! audience checks, identity claims) so every failure has its own reason;
//! `jws` checks the signature. The clock is a number passed in by the caller
//! (the host's clock in the filter), never the system time.
//!
//! Algorithm confusion is impossible by construction: a key's algorithm comes
//! from its JWKS `kty` (oct: HS256, RSA: RS256, EC P-256: ES256), and a
//! token's `alg` must equal it. `alg: none` is always refused.

use crate::config::{is_identity_value, ClaimMapping, JwtProvider};
use crate::jws::{Alg, JwkSet, VerifyingKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use mesh_core::config_error::ConfigError;
use mesh_core::identity::Identity;
use serde_json::{Map, Value};

/// Why a token was refused. Each maps to one `reason` label and 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtError {
    /// Not three base64url segments of JSON objects, or an unsupported `crit`.
    Malformed,
    /// `alg: none`, an unknown algorithm, or one no key of the issuer uses.
    AlgorithmNotAllowed,
    /// `iss` missing or not a configured provider.
    UnknownIssuer,
    /// No key of the issuer has the token's `kid`.
    UnknownKeyId,
    BadSignature,
    Expired,
    NotYetValid,
    AudienceMismatch,
    /// A required claim (`exp` when required, organization, plan, role) is absent.
    MissingClaim,
    /// A claim has the wrong type or characters that cannot be forwarded.
    InvalidClaim,
}

/// A token whose signature and claims checked out, with its validity window
/// (so a cached verdict can be re-checked against the clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub identity: Identity,
    pub expires_at: Option<i64>,
    pub not_before: Option<i64>,
}

impl Verified {
    /// `exp` is exclusive and `nbf` inclusive, both widened by `skew`.
    pub fn check_time(&self, now: i64, skew: i64) -> Result<(), JwtError> {
        if self
            .expires_at
            .is_some_and(|exp| now >= exp.saturating_add(skew))
        {
            return Err(JwtError::Expired);
        }
        if self
            .not_before
            .is_some_and(|nbf| now.saturating_add(skew) < nbf)
        {
            return Err(JwtError::NotYetValid);
        }
        Ok(())
    }
}

struct ProviderKey {
    kid: Option<String>,
    key: VerifyingKey,
}

struct Provider {
    name: String,
    issuer: String,
    audiences: Vec<String>,
    keys: Vec<ProviderKey>,
    claims: ClaimMapping,
    default_plan: Option<String>,
    default_role: Option<String>,
    require_exp: bool,
    /// Seconds; 0 = no limit.
    max_lifetime: i64,
}

/// All configured providers, with their JWKS keys decoded once at load.
#[derive(Default)]
pub struct JwtVerifier {
    providers: Vec<Provider>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("JwtVerifier")
            .field(
                "providers",
                &self.providers.iter().map(|p| &p.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl JwtVerifier {
    pub fn new(providers: &[JwtProvider]) -> Result<Self, ConfigError> {
        let mut out = Vec::with_capacity(providers.len());
        for (i, p) in providers.iter().enumerate() {
            let field = format!("jwt_providers[{i}].local_jwks");
            let set: JwkSet = serde_json::from_value(p.local_jwks.clone())
                .map_err(|e| ConfigError::new(field.clone(), format!("not a JWKS: {e}")))?;
            if set.keys.is_empty() {
                return Err(ConfigError::new(field, "must contain at least one key"));
            }
            let keys = set
                .keys
                .iter()
                .enumerate()
                .map(|(j, jwk)| {
                    VerifyingKey::from_jwk(jwk)
                        .map(|key| ProviderKey {
                            kid: jwk.kid.clone(),
                            key,
                        })
                        .map_err(|reason| ConfigError::new(format!("{field}.keys[{j}]"), reason))
                })
                .collect::<Result<Vec<_>, _>>()?;
            out.push(Provider {
                name: p.name.clone(),
                issuer: p.issuer.clone(),
                audiences: p.audiences.clone(),
                keys,
                claims: p.claims.clone(),
                default_plan: p.default_plan.clone(),
                default_role: p.default_role.clone(),
                require_exp: p.require_exp,
                max_lifetime: i64::try_from(p.max_lifetime_seconds).unwrap_or(i64::MAX),
            });
        }
        Ok(Self { providers: out })
    }

    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    /// Verifies `token` at `now` (Unix seconds) with `skew` seconds of leeway
    /// and returns the identity its claims carry.
    pub fn verify(&self, token: &str, now: i64, skew: i64) -> Result<Identity, JwtError> {
        self.verify_full(token, now, skew).map(|v| v.identity)
    }

    /// [`JwtVerifier::verify`], keeping the validity window for the cache.
    pub fn verify_full(&self, token: &str, now: i64, skew: i64) -> Result<Verified, JwtError> {
        let mut parts = token.split('.');
        let (Some(head_b64), Some(body_b64), Some(sig_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let header = decode_object(head_b64)?;
        let alg = match header.get("alg").and_then(Value::as_str) {
            None => return Err(JwtError::Malformed),
            Some(a) if a.eq_ignore_ascii_case("none") => return Err(JwtError::AlgorithmNotAllowed),
            Some(a) => Alg::from_name(a).ok_or(JwtError::AlgorithmNotAllowed)?,
        };
        // RFC 7515 §4.1.11: extensions we do not understand must be refused.
        if header.contains_key("crit") {
            return Err(JwtError::Malformed);
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(k)) => Some(k.as_str()),
            Some(_) => return Err(JwtError::Malformed),
        };
        let claims = decode_object(body_b64)?;
        let signature = URL_SAFE_NO_PAD
            .decode(sig_b64)
            .map_err(|_| JwtError::Malformed)?;
        if signature.is_empty() {
            return Err(JwtError::BadSignature);
        }
        let issuer = claims.get("iss").and_then(Value::as_str);
        let provider = self
            .providers
            .iter()
            .find(|p| Some(p.issuer.as_str()) == issuer)
            .ok_or(JwtError::UnknownIssuer)?;

        let for_alg: Vec<&ProviderKey> = provider
            .keys
            .iter()
            .filter(|k| k.key.alg() == alg)
            .collect();
        if for_alg.is_empty() {
            return Err(JwtError::AlgorithmNotAllowed);
        }
        let candidates: Vec<&ProviderKey> = for_alg
            .into_iter()
            .filter(|k| match (kid, &k.kid) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            })
            .collect();
        if candidates.is_empty() {
            return Err(JwtError::UnknownKeyId);
        }
        let signed = token
            .get(..head_b64.len() + 1 + body_b64.len())
            .ok_or(JwtError::Malformed)?;
        let verified = candidates
            .iter()
            .any(|k| k.key.verify(signed.as_bytes(), &signature));
        if !verified {
            return Err(JwtError::BadSignature);
        }

        let expires_at = numeric_date(&claims, "exp")?;
        if expires_at.is_none() && provider.require_exp {
            return Err(JwtError::MissingClaim);
        }
        if let (Some(exp), true) = (expires_at, provider.max_lifetime > 0) {
            // Too long from now (a far-future exp), or from its own iat.
            let issued_at = numeric_date(&claims, "iat")?;
            let limit = provider.max_lifetime.saturating_add(skew);
            let from_now = exp.saturating_sub(now) > limit;
            let from_iat = issued_at.is_some_and(|iat| exp.saturating_sub(iat) > limit);
            if from_now || from_iat {
                return Err(JwtError::InvalidClaim);
            }
        }
        let not_before = numeric_date(&claims, "nbf")?;
        let verified = Verified {
            identity: Identity::default(),
            expires_at,
            not_before,
        };
        verified.check_time(now, skew)?;
        if !provider.audiences.is_empty() && !audience_matches(&claims, &provider.audiences)? {
            return Err(JwtError::AudienceMismatch);
        }
        Ok(Verified {
            identity: identity(provider, &claims)?,
            ..verified
        })
    }
}

fn decode_object(segment: &str) -> Result<Map<String, Value>, JwtError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| JwtError::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JwtError::Malformed),
    }
}

/// A NumericDate claim (RFC 7519 §2), whole seconds.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, JwtError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some)
            .ok_or(JwtError::InvalidClaim),
        Some(_) => Err(JwtError::InvalidClaim),
    }
}

fn audience_matches(claims: &Map<String, Value>, wanted: &[String]) -> Result<bool, JwtError> {
    match claims.get("aud") {
        None => Ok(false),
        Some(Value::String(a)) => Ok(wanted.iter().any(|w| w == a)),
        Some(Value::Array(items)) => Ok(items
            .iter()
            .filter_map(Value::as_str)
            .any(|a| wanted.iter().any(|w| w == a))),
        Some(_) => Err(JwtError::InvalidClaim),
    }
}

/// The claim at a dotted path (`org.id`), as a forwardable identity value.
fn claim(claims: &Map<String, Value>, path: &str) -> Result<Option<String>, JwtError> {
    let mut segments = path.split('.');
    let mut value = segments.next().and_then(|first| claims.get(first));
    for segment in segments {
        value = value.and_then(|v| v.get(segment));
    }
    let text = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(JwtError::InvalidClaim),
    };
    if is_identity_value(&text) {
        Ok(Some(text))
    } else {
        Err(JwtError::InvalidClaim)
    }
}

fn identity(p: &Provider, claims: &Map<String, Value>) -> Result<Identity, JwtError> {
    let org_id = claim(claims, &p.claims.org_id)?.ok_or(JwtError::MissingClaim)?;
    let plan = claim(claims, &p.claims.plan)?
        .or_else(|| p.default_plan.clone())
        .ok_or(JwtError::MissingClaim)?;
    let role = claim(claims, &p.claims.role)?
        .or_else(|| p.default_role.clone())
        .ok_or(JwtError::MissingClaim)?;
    let user_id = claim(claims, &p.claims.user_id)?;
    let key_id = claim(claims, &p.claims.key_id)?.unwrap_or_else(|| p.name.clone());
    let scopes = scopes(claims, &p.claims.scope)?;
    Ok(Identity {
        org_id,
        key_id,
        plan,
        role,
        user_id,
        scopes,
    })
}

/// Most scopes one token may carry, and their total length: they travel in
/// one header.
const MAX_SCOPES: usize = 32;
const MAX_SCOPES_LEN: usize = 1024;

/// The scopes claim (`scope`: space-separated, RFC 8693; or an array of
/// strings, as `scp` often is), normalized to one space-separated string.
fn scopes(claims: &Map<String, Value>, name: &str) -> Result<Option<String>, JwtError> {
    let list: Vec<&str> = match claims.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.split(' ').filter(|s| !s.is_empty()).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().ok_or(JwtError::InvalidClaim))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(JwtError::InvalidClaim),
    };
    if list.len() > MAX_SCOPES || !list.iter().all(|s| is_identity_value(s)) {
        return Err(JwtError::InvalidClaim);
    }
    let joined = list.join(" ");
    if joined.len() > MAX_SCOPES_LEN {
        return Err(JwtError::InvalidClaim);
    }
    Ok((!joined.is_empty()).then_some(joined))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jws::test_tokens;
    use serde_json::json;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    // P-256 test key pair (RFC 7515 appendix A.3).
    const EC_D: &str = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI";
    const EC_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const EC_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

    fn provider(jwks: Value) -> JwtProvider {
        JwtProvider {
            name: "idp".into(),
            issuer: "https://idp.example".into(),
            audiences: vec!["mcp".into()],
            local_jwks: jwks,
            claims: ClaimMapping::default(),
            default_plan: Some("free".into()),
            default_role: None,
            require_exp: true,
            max_lifetime_seconds: 0,
        }
    }

    fn hs_verifier() -> JwtVerifier {
        let k = URL_SAFE_NO_PAD.encode(SECRET);
        JwtVerifier::new(&[provider(
            json!({"keys": [{"kty": "oct", "k": k, "kid": "h1"}]}),
        )])
        .unwrap()
    }

    fn claims() -> Value {
        json!({"iss": "https://idp.example", "aud": "mcp", "exp": 2000, "nbf": 1000,
               "org_id": "acme", "role": "user", "sub": "u-7", "jti": "tok-1"})
    }

    fn hs(claims: &Value) -> String {
        test_tokens::hs256(&json!({"alg": "HS256", "kid": "h1"}), claims, SECRET)
    }

    fn b64(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    #[test]
    fn hs256_token_gives_identity() {
        let id = hs_verifier().verify(&hs(&claims()), 1500, 0).unwrap();
        assert_eq!(id.org_id, "acme");
        assert_eq!(
            id.plan, "free",
            "default_plan applies when the claim is absent"
        );
        assert_eq!(id.role, "user");
        assert_eq!(id.user_id.as_deref(), Some("u-7"));
        assert_eq!(id.key_id, "tok-1");
    }

    #[test]
    fn tokens_without_exp_or_living_too_long_are_refused_by_default() {
        let k = URL_SAFE_NO_PAD.encode(SECRET);
        let cfg = |require_exp: bool, max_lifetime_seconds: u64| {
            let mut p = provider(json!({"keys": [{"kty": "oct", "k": k, "kid": "h1"}]}));
            p.require_exp = require_exp;
            p.max_lifetime_seconds = max_lifetime_seconds;
            JwtVerifier::new(&[p]).unwrap()
        };
        // The config defaults.
        let defaults: crate::config::JwtProvider = serde_json::from_value(json!({
            "name": "n", "issuer": "i", "local_jwks": {"keys": []}}))
        .unwrap();
        assert!(defaults.require_exp && defaults.max_lifetime_seconds == 86_400);
        let default = cfg(true, 86_400);
        let mut c = claims();
        c.as_object_mut().unwrap().remove("exp");
        assert_eq!(
            default.verify(&hs(&c), 1500, 0),
            Err(JwtError::MissingClaim)
        );
        // exp 10 years away: refused; a day and a bit from iat: refused.
        c["exp"] = json!(1500 + 10 * 365 * 86_400);
        assert_eq!(
            default.verify(&hs(&c), 1500, 0),
            Err(JwtError::InvalidClaim)
        );
        c["exp"] = json!(1500 + 3600);
        assert!(default.verify(&hs(&c), 1500, 0).is_ok());
        c["iat"] = json!(1500 + 3600 - 86_401);
        assert_eq!(
            default.verify(&hs(&c), 1500, 0),
            Err(JwtError::InvalidClaim)
        );
        // Both can be switched off per issuer.
        let lax = cfg(false, 0);
        c.as_object_mut().unwrap().remove("exp");
        assert!(lax.verify(&hs(&c), 1500, 0).is_ok());
        c["exp"] = json!(1500 + 10 * 365 * 86_400);
        assert!(lax.verify(&hs(&c), 1500, 0).is_ok());
    }

    #[test]
    fn time_checks_with_skew() {
        let v = hs_verifier();
        let t = hs(&claims());
        assert_eq!(v.verify(&t, 2000, 0), Err(JwtError::Expired));
        assert!(v.verify(&t, 2000, 30).is_ok());
        assert_eq!(v.verify(&t, 999, 0), Err(JwtError::NotYetValid));
        assert!(v.verify(&t, 999, 1).is_ok());
        let mut c = claims();
        c.as_object_mut().unwrap().remove("exp");
        assert_eq!(v.verify(&hs(&c), 1500, 0), Err(JwtError::MissingClaim));
        c["exp"] = json!("soon");
        assert_eq!(v.verify(&hs(&c), 1500, 0), Err(JwtError::InvalidClaim));
    }

    #[test]
    fn scopes_are_forwarded_as_one_space_separated_value() {
        let v = hs_verifier();
        let mut c = claims();
        assert_eq!(v.verify(&hs(&c), 1500, 0).unwrap().scopes, None);
        c["scope"] = json!("debates:read  debates:judge");
        let id = v.verify(&hs(&c), 1500, 0).unwrap();
        assert_eq!(id.scopes.as_deref(), Some("debates:read debates:judge"));
        c["scope"] = json!(["a", "b"]);
        assert_eq!(
            v.verify(&hs(&c), 1500, 0).unwrap().scopes.as_deref(),
            Some("a b")
        );
        // No header injection, no other shapes, no unbounded lists.
        for bad in [
            json!("a\r\nx-mcp-role: owner"),
            json!([1, 2]),
            json!({"a": 1}),
            json!(vec!["s"; 33]),
        ] {
            c["scope"] = bad;
            assert_eq!(v.verify(&hs(&c), 1500, 0), Err(JwtError::InvalidClaim));
        }
    }

    #[test]
    fn audience_issuer_and_claims() {
        let v = hs_verifier();
        let mut c = claims();
        c["aud"] = json!(["other", "mcp"]);
        assert!(v.verify(&hs(&c), 1500, 0).is_ok());
        c["aud"] = json!("other");
        assert_eq!(v.verify(&hs(&c), 1500, 0), Err(JwtError::AudienceMismatch));
        let mut c = claims();
        c["iss"] = json!("https://evil.example");
        assert_eq!(v.verify(&hs(&c), 1500, 0), Err(JwtError::UnknownIssuer));
        let mut c = claims();
        c.as_object_mut().unwrap().remove("org_id");
        assert_eq!(v.verify(&hs(&c), 1500, 0), Err(JwtError::MissingClaim));
        let mut c = claims();
        c["org_id"] = json!("acme\r\nx-mcp-role: owner");
        assert_eq!(v.verify(&hs(&c), 1500, 0), Err(JwtError::InvalidClaim));
        let mut c = claims();
        c["org_id"] = json!({"nested": true});
        assert_eq!(v.verify(&hs(&c), 1500, 0), Err(JwtError::InvalidClaim));
    }

    #[test]
    fn hostile_tokens() {
        let v = hs_verifier();
        let good = hs(&claims());
        let (head, rest) = good.split_once('.').unwrap();
        let (body, sig) = rest.split_once('.').unwrap();
        // alg none, with and without a signature.
        let none = b64(&json!({"alg": "none"}));
        assert_eq!(
            v.verify(&format!("{none}.{body}."), 1500, 0),
            Err(JwtError::AlgorithmNotAllowed)
        );
        let none_upper = b64(&json!({"alg": "NONE"}));
        assert_eq!(
            v.verify(&format!("{none_upper}.{body}.{sig}"), 1500, 0),
            Err(JwtError::AlgorithmNotAllowed)
        );
        // Wrong algorithm for the key (RS256 header against an oct key).
        let rs = b64(&json!({"alg": "RS256", "kid": "h1"}));
        assert_eq!(
            v.verify(&format!("{rs}.{body}.{sig}"), 1500, 0),
            Err(JwtError::AlgorithmNotAllowed)
        );
        assert_eq!(
            v.verify(
                &format!("{}.{body}.{sig}", b64(&json!({"alg": "XX1"}))),
                1500,
                0
            ),
            Err(JwtError::AlgorithmNotAllowed)
        );
        // Bad signature: last character changed, and a signature from another token.
        let mut flipped = good.clone();
        let last = flipped.pop().unwrap();
        flipped.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(v.verify(&flipped, 1500, 0), Err(JwtError::BadSignature));
        let mut other = claims();
        other["org_id"] = json!("globex");
        let forged = format!("{head}.{}.{sig}", b64(&other));
        assert_eq!(v.verify(&forged, 1500, 0), Err(JwtError::BadSignature));
        // Truncations at every length never panic and never verify.
        for end in 0..good.len() {
            assert!(v.verify(&good[..end], 1500, 0).is_err(), "{end}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a.b.c",
            "a.b.c.d",
            &format!("{head}.{body}"),
            &format!("{head}.!!.{sig}"),
        ] {
            assert!(v.verify(bad, 1500, 0).is_err(), "{bad}");
        }
        // Unknown kid, crit header, non-object header.
        let k2 = b64(&json!({"alg": "HS256", "kid": "nope"}));
        assert_eq!(
            v.verify(&format!("{k2}.{body}.{sig}"), 1500, 0),
            Err(JwtError::UnknownKeyId)
        );
        let crit = b64(&json!({"alg": "HS256", "crit": ["exp"]}));
        assert_eq!(
            v.verify(&format!("{crit}.{body}.{sig}"), 1500, 0),
            Err(JwtError::Malformed)
        );
        assert_eq!(
            v.verify(&format!("{}.{body}.{sig}", b64(&json!([1]))), 1500, 0),
            Err(JwtError::Malformed)
        );
        // Huge claims are just claims: refused by signature, no crash.
        let mut huge = claims();
        huge["pad"] = json!("x".repeat(100_000));
        assert_eq!(
            v.verify(&format!("{head}.{}.{sig}", b64(&huge)), 1500, 0),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn es256_with_jwks() {
        let v = JwtVerifier::new(&[provider(json!({"keys": [
            {"kty": "EC", "crv": "P-256", "x": EC_X, "y": EC_Y, "kid": "e1", "alg": "ES256"}
        ]}))])
        .unwrap();
        let d = URL_SAFE_NO_PAD.decode(EC_D).unwrap();
        let token = test_tokens::es256(&json!({"alg": "ES256", "kid": "e1"}), &claims(), &d);
        assert_eq!(v.verify(&token, 1500, 0).unwrap().org_id, "acme");
        // An HS256 token signed with the EC public key bytes as secret: refused.
        let confused = test_tokens::hs256(&json!({"alg": "HS256"}), &claims(), EC_X.as_bytes());
        assert_eq!(
            v.verify(&confused, 1500, 0),
            Err(JwtError::AlgorithmNotAllowed)
        );
    }

    #[test]
    fn rs256_signature_from_another_implementation() {
        // The fixture's message is a JWT signing input: {"alg":"RS256"} and
        // {"iss":"https://tokens.test/rs"}, signed by Python `cryptography`.
        let f: Value =
            serde_json::from_str(include_str!("../../../tests/fixtures/auth/rs256.json")).unwrap();
        let mut p = provider(json!({"keys": [{"kty": "RSA", "n": f["n"], "e": f["e"]}]}));
        p.issuer = "https://tokens.test/rs".into();
        p.require_exp = false;
        p.audiences.clear();
        let v = JwtVerifier::new(&[p]).unwrap();
        let message = String::from_utf8(
            URL_SAFE_NO_PAD
                .decode(f["message"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
        let token = format!("{message}.{}", f["signature"].as_str().unwrap());
        // The signature verifies; the token just carries no organization.
        assert_eq!(v.verify(&token, 0, 0), Err(JwtError::MissingClaim));
        let mut tampered = token.clone();
        tampered.replace_range(10..11, "X");
        assert!(matches!(
            v.verify(&tampered, 0, 0),
            Err(JwtError::BadSignature | JwtError::Malformed)
        ));
    }

    #[test]
    fn jwks_config_errors() {
        let err = |jwks: Value| match JwtVerifier::new(&[provider(jwks.clone())]) {
            Ok(_) => panic!("accepted {jwks}"),
            Err(e) => e.to_string(),
        };
        assert!(
            err(json!({"keys": [{"kty": "oct", "k": "c2hvcnQ"}]})).contains("at least 32 bytes")
        );
        assert!(err(
            json!({"keys": [{"kty": "oct", "k": URL_SAFE_NO_PAD.encode(SECRET), "alg": "RS256"}]})
        )
        .contains("does not fit"));
        assert!(err(
            json!({"keys": [{"kty": "oct", "k": URL_SAFE_NO_PAD.encode(SECRET), "use": "enc"}]})
        )
        .contains("`use` must be `sig`"));
        assert!(
            err(json!({"keys": [{"kty": "EC", "crv": "P-384", "x": EC_X, "y": EC_Y}]}))
                .contains("P-256")
        );
        assert!(
            err(json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": EC_X}]}))
                .contains("unsupported `kty`")
        );
        assert!(
            err(json!({"keys": [{"kty": "EC", "crv": "P-256", "x": EC_X, "y": EC_X}]}))
                .starts_with(
                    "jwt_providers[0].local_jwks.keys[0]: the point is not on the P-256 curve"
                )
        );
        assert_eq!(
            err(json!({"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]})),
            "jwt_providers[0].local_jwks.keys[0]: RSA modulus must be 2048-8192 bits (has 17)"
        );
        assert!(err(json!({"nokeys": 1})).starts_with("jwt_providers[0].local_jwks: not a JWKS"));
    }
}
