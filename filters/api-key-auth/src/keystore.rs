//! API keys by SHA-256: the config holds only hashes; a presented key is
//! hashed once and found by its digest, then compared in constant time.

use crate::config::KeyEntry;
use crate::timestamp::parse_rfc3339;
use mesh_core::config_error::ConfigError;
use mesh_core::identity::Identity;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use subtle::ConstantTimeEq;

pub type Sha256Digest = [u8; 32];

#[derive(Debug, Clone)]
pub struct StoredKey {
    digest: Sha256Digest,
    pub identity: Identity,
    pub not_before: Option<i64>,
    pub expires_at: Option<i64>,
}

/// What a presented key resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLookup<'a> {
    Valid(&'a Identity),
    Unknown,
    NotYetValid,
    Expired,
}

#[derive(Debug, Clone, Default)]
pub struct KeyStore {
    by_digest: HashMap<Sha256Digest, StoredKey>,
}

pub fn sha256(bytes: &[u8]) -> Sha256Digest {
    Sha256::digest(bytes).into()
}

pub fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn from_hex(text: &str) -> Option<Sha256Digest> {
    let mut out = [0u8; 32];
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let hi = char::from(*pair.first()?).to_digit(16)?;
        let lo = char::from(*pair.get(1)?).to_digit(16)?;
        *slot = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

impl KeyStore {
    /// Builds the index. `validate` has already checked the fields; errors here
    /// still name them instead of trusting that.
    pub fn new(entries: &[KeyEntry]) -> Result<Self, ConfigError> {
        let mut by_digest = HashMap::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            let digest = from_hex(&e.sha256).ok_or_else(|| {
                ConfigError::new(format!("keys[{i}].sha256"), "must be 64 hex digits")
            })?;
            let time = |field: &str, v: &Option<String>| match v {
                None => Ok(None),
                Some(t) => parse_rfc3339(t).map(Some).ok_or_else(|| {
                    ConfigError::new(format!("keys[{i}].{field}"), "must be RFC 3339")
                }),
            };
            let stored = StoredKey {
                digest,
                identity: Identity {
                    org_id: e.org_id.clone(),
                    key_id: e.id.clone(),
                    plan: e.plan.clone(),
                    role: e.role.clone(),
                    user_id: e.user_id.clone(),
                    scopes: None,
                },
                not_before: time("not_before", &e.not_before)?,
                expires_at: time("expires_at", &e.expires_at)?,
            };
            if by_digest.insert(digest, stored).is_some() {
                return Err(ConfigError::new(
                    format!("keys[{i}].sha256"),
                    "duplicate hash",
                ));
            }
        }
        Ok(Self { by_digest })
    }

    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }

    /// Resolves a presented key at `now` (Unix seconds).
    pub fn lookup(&self, presented: &[u8], now: i64) -> KeyLookup<'_> {
        let digest = sha256(presented);
        let Some(stored) = self.by_digest.get(&digest) else {
            return KeyLookup::Unknown;
        };
        // The map found it by digest; the constant-time comparison keeps the
        // final check free of early exits on the secret-derived bytes.
        if !bool::from(stored.digest.ct_eq(&digest)) {
            return KeyLookup::Unknown;
        }
        if stored.not_before.is_some_and(|nb| now < nb) {
            return KeyLookup::NotYetValid;
        }
        if stored.expires_at.is_some_and(|exp| now >= exp) {
            return KeyLookup::Expired;
        }
        KeyLookup::Valid(&stored.identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, key: &str) -> KeyEntry {
        KeyEntry {
            id: id.into(),
            sha256: to_hex(&sha256(key.as_bytes())),
            org_id: "acme".into(),
            plan: "pro".into(),
            role: "owner".into(),
            user_id: None,
            not_before: None,
            expires_at: None,
        }
    }

    #[test]
    fn hex_round_trip_and_known_digest() {
        assert_eq!(
            to_hex(&sha256(b"password")),
            "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
        );
        let d = sha256(b"x");
        assert_eq!(from_hex(&to_hex(&d)), Some(d));
        assert_eq!(from_hex(&to_hex(&d).to_uppercase()), Some(d));
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex(&"g".repeat(64)), None);
    }

    #[test]
    fn rotation_two_keys_one_org() {
        let store =
            KeyStore::new(&[entry("acme-1", "old-key"), entry("acme-2", "new-key")]).unwrap();
        let KeyLookup::Valid(a) = store.lookup(b"old-key", 0) else {
            panic!()
        };
        let KeyLookup::Valid(b) = store.lookup(b"new-key", 0) else {
            panic!()
        };
        assert_eq!((a.key_id.as_str(), b.key_id.as_str()), ("acme-1", "acme-2"));
        assert_eq!(a.org_id, b.org_id);
        assert_eq!(store.lookup(b"other", 0), KeyLookup::Unknown);
        assert_eq!(store.lookup(b"", 0), KeyLookup::Unknown);
        assert_eq!(store.lookup(b"old-key ", 0), KeyLookup::Unknown);
    }

    #[test]
    fn validity_window_is_half_open() {
        let mut e = entry("k", "key");
        e.not_before = Some("2026-01-01T00:00:00Z".into());
        e.expires_at = Some("2026-02-01T00:00:00Z".into());
        let store = KeyStore::new(&[e]).unwrap();
        let nb = parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        let exp = parse_rfc3339("2026-02-01T00:00:00Z").unwrap();
        assert_eq!(store.lookup(b"key", nb - 1), KeyLookup::NotYetValid);
        assert!(matches!(store.lookup(b"key", nb), KeyLookup::Valid(_)));
        assert!(matches!(store.lookup(b"key", exp - 1), KeyLookup::Valid(_)));
        assert_eq!(store.lookup(b"key", exp), KeyLookup::Expired);
    }

    #[test]
    fn duplicate_hash_is_refused() {
        let err = KeyStore::new(&[entry("a", "same"), entry("b", "same")]).unwrap_err();
        assert_eq!(err.field, "keys[1].sha256");
    }
}
