//! Creating a key in Envoy shared data safely, across worker threads.
//!
//! Envoy writes a missing key unconditionally, whatever `cas` says, so two
//! workers creating the same key at once could both write it and one update
//! would be lost. Creation therefore happens under a small lock kept in a
//! registry key, which also counts the keys created under it, so that at most
//! `max_keys` exist (Envoy cannot delete keys). Existing keys are only ever
//! written with their `cas`. Used by org-rate-limit's buckets and
//! token-usage-metrics' budgets, each with its own registry key.

use crate::stage::{ReadError, SetError, SharedStore};

/// A lock older than this is considered abandoned (a worker never holds it
/// for more than three host calls).
const LOCK_STALE_NS: u64 = 1_000_000_000;
/// Rounds spent waiting for another worker's creation before giving up.
pub const LOCK_SPINS: u32 = 10_000;

pub enum Created {
    /// The key exists now (created by us or by another worker meanwhile).
    Yes,
    Full,
    Busy,
    Error,
}

/// Registry value: lock flag, when it was taken, buckets created so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Registry {
    pub locked: bool,
    pub since_ns: u64,
    pub buckets: u32,
}

impl Registry {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(13);
        out.push(u8::from(self.locked));
        out.extend_from_slice(&self.since_ns.to_be_bytes());
        out.extend_from_slice(&self.buckets.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; 13] = bytes.try_into().ok()?;
        let (flag, rest) = bytes.split_first()?;
        let (since, count) = rest.split_at(8);
        Some(Self {
            locked: *flag == 1,
            since_ns: u64::from_be_bytes(since.try_into().ok()?),
            buckets: u32::from_be_bytes(count.try_into().ok()?),
        })
    }

    fn held_by_someone(&self, now_ns: u64) -> bool {
        // A lock "from the future" (clock went back) is judged by distance too.
        self.locked && now_ns.abs_diff(self.since_ns) < LOCK_STALE_NS
    }
}

/// Writes the registry if it does not exist yet. Called from `on_configure`
/// (before the worker serves traffic), so the registry itself is never
/// created concurrently with a lock holder.
pub fn ensure_registry(store: &dyn SharedStore, registry_key: &str) {
    if let Ok(None) = store.get(registry_key) {
        let _ = store.set(registry_key, &Registry::default().encode(), 0);
    }
}

/// Creates `key` with the value `initial` under the lock of `registry_key`,
/// unless `max_keys` keys were created under that registry already.
pub fn create(
    store: &dyn SharedStore,
    registry_key: &str,
    key: &str,
    initial: &[u8],
    now_ns: u64,
    max_keys: Option<u32>,
) -> Created {
    let (registry, cas) = match store.get(registry_key) {
        Ok(Some((bytes, cas))) => (Registry::decode(&bytes).unwrap_or_default(), cas),
        Ok(None) => {
            ensure_registry(store, registry_key);
            return Created::Busy;
        }
        Err(ReadError) => return Created::Error,
    };
    if registry.held_by_someone(now_ns) {
        return Created::Busy;
    }
    if max_keys.is_some_and(|max| registry.buckets >= max) {
        return Created::Full;
    }
    let locked = Registry {
        locked: true,
        since_ns: now_ns,
        ..registry
    };
    match store.set(registry_key, &locked.encode(), cas) {
        Ok(()) => {}
        Err(SetError::CasMismatch) => return Created::Busy,
        Err(SetError::Other) => return Created::Error,
    }
    // Holding the lock: nobody else writes missing keys now.
    let mut result = Created::Yes;
    let mut created = false;
    match store.get(key) {
        Ok(Some(_)) => {}
        Ok(None) => match store.set(key, initial, 0) {
            Ok(()) => created = max_keys.is_some(),
            Err(_) => result = Created::Error,
        },
        Err(ReadError) => result = Created::Error,
    }
    let released = Registry {
        locked: false,
        since_ns: now_ns,
        buckets: registry.buckets.saturating_add(u32::from(created)),
    };
    if store.set(registry_key, &released.encode(), 0).is_err() {
        // The lock goes stale after LOCK_STALE_NS and is taken over.
        result = Created::Error;
    }
    result
}
