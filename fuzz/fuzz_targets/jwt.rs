//! JWS/JWT parsing and verification (HS256, RS256, ES256 issuers): never
//! panics, and nothing verifies without the key.
#![no_main]
use api_key_auth::config::Config;
use api_key_auth::jwt::JwtVerifier;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const CONFIG: &str = r#"{"jwt_providers": [
  {"name": "hs", "issuer": "hs", "local_jwks": {"keys": [{"kty": "oct", "kid": "h", "k": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}]}},
  {"name": "es", "issuer": "es", "local_jwks": {"keys": [{"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}},
  {"name": "rs", "issuer": "rs", "local_jwks": {"keys": [{"kty": "RSA", "e": "AQAB", "n": "xVtrCAiGPOLiDXwjQ58DIHzwSI9X09reyFk15VzwnKQt0FdkqJEaFrI7Ao-WJndDzc5ihHFW5q4xTfUCUcAdPnjUGWMOlbLYcT-7QbkCYYN0gNF1bcUPxBhsouKRplal5a6v3wrbbe__-QNPNPC8-hG2v83sRKgyspOatDZ7tE-5w1aW4tatWxS5MayEvarLjyuMQrbz3JC4ORM9mwF3N2WvpbwJEEA5suAPateK6_vf-10gFZm98x_og8ePtFsdTiKAMjTCFwbxG9Ptx3qpjgQTXGcf4HfaFQACrjR9wXI6aZGOSfZeHCIhUlcBdkErAEB8e-AoPFDAz_E_s261XQ"}]}}
]}"#;

fn verifier() -> &'static JwtVerifier {
    static V: OnceLock<JwtVerifier> = OnceLock::new();
    V.get_or_init(|| {
        let config = mesh_core::config_error::load::<Config>(CONFIG.as_bytes()).unwrap();
        JwtVerifier::new(&config.jwt_providers).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let token = String::from_utf8_lossy(data);
    let _ = verifier().verify(&token, 1_700_000_000, 60);
});
