//! Differential: our RS256 verifier (rsa_pkcs1.rs) against the `rsa` crate's
//! PKCS#1 v1.5 / SHA-256 verification, for one public key and any message
//! and signature.
#![no_main]
use api_key_auth::rsa_pkcs1::RsaPublicKey;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use libfuzzer_sys::fuzz_target;
use rsa::{BigUint, Pkcs1v15Sign};
use sha2::{Digest, Sha256};

const N: &str = "xVtrCAiGPOLiDXwjQ58DIHzwSI9X09reyFk15VzwnKQt0FdkqJEaFrI7Ao-WJndDzc5ihHFW5q4xTfUCUcAdPnjUGWMOlbLYcT-7QbkCYYN0gNF1bcUPxBhsouKRplal5a6v3wrbbe__-QNPNPC8-hG2v83sRKgyspOatDZ7tE-5w1aW4tatWxS5MayEvarLjyuMQrbz3JC4ORM9mwF3N2WvpbwJEEA5suAPateK6_vf-10gFZm98x_og8ePtFsdTiKAMjTCFwbxG9Ptx3qpjgQTXGcf4HfaFQACrjR9wXI6aZGOSfZeHCIhUlcBdkErAEB8e-AoPFDAz_E_s261XQ";

fuzz_target!(|data: &[u8]| {
    // [message length][message][signature]
    let Some((&len, rest)) = data.split_first() else {
        return;
    };
    let at = usize::from(len).min(rest.len());
    let (message, signature) = rest.split_at(at);
    let n = URL_SAFE_NO_PAD.decode(N).unwrap();
    let ours = RsaPublicKey::new(&n, &[1, 0, 1], 2048, 8192).unwrap();
    let theirs = rsa::RsaPublicKey::new(BigUint::from_bytes_be(&n), BigUint::from(65537u32)).unwrap();
    let hashed = Sha256::digest(message);
    let reference = theirs
        .verify(Pkcs1v15Sign::new::<Sha256>(), &hashed, signature)
        .is_ok();
    assert_eq!(ours.verify(message, signature), reference);
});
