//! Charging a bucket kept in Envoy shared data, exact across worker threads.
//!
//! Each Envoy worker runs its own copy of the VM; shared data is the one
//! place they share, with a compare-and-swap (`cas`) token per key. A charge
//! reads the bucket, computes the new state and writes it back only if no
//! other worker wrote in between, else it reads again (at most
//! `max_cas_retries` times). A denied request writes nothing.
//!
//! Creating a key is the one unsafe moment: Envoy writes a missing key
//! unconditionally, whatever `cas` says, so two workers creating the same
//! bucket at once could both write it and one charge would be lost. Creation
//! therefore happens under a small lock kept in the registry key
//! [`REGISTRY_KEY`], which also counts the buckets per route class so that
//! at most `max_buckets` organization keys exist (Envoy cannot delete keys).
//! Existing keys are only ever written with their `cas`.
//!
//! The host is behind [`SharedStore`] so the algorithm runs natively in tests,
//! against a model with Envoy's exact semantics, interleaved step by step.

use mesh_core::token_bucket::{Bucket, Limit, Outcome};

/// Holds the creation lock and the bucket count.
pub const REGISTRY_KEY: &str = "orl1|registry";

use mesh_core::shared_keys::{self, Created, LOCK_SPINS};

/// Writes the registry if it does not exist yet (from `on_configure`).
pub fn ensure_registry(store: &dyn SharedStore) {
    shared_keys::ensure_registry(store, REGISTRY_KEY);
}

pub use mesh_core::stage::{ReadError, SetError, SharedStore};

/// Why a charge could not be decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Every compare-and-swap attempt lost.
    CasExhausted,
    /// Shared data returned an error.
    StoreError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charge {
    Decided(Outcome),
    /// The organization's key could not be created (`max_buckets` reached):
    /// charge the overflow bucket instead.
    Overflow,
    Failed(Failure),
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub max_cas_retries: u32,
    /// `None`: the key may always be created (anonymous and overflow buckets).
    pub max_buckets: Option<u32>,
}

/// Takes `cost` tokens from the bucket at `key` at time `now_ns`.
pub fn charge(
    store: &dyn SharedStore,
    key: &str,
    limit: &Limit,
    cost: u64,
    now_ns: u64,
    opts: Options,
) -> Charge {
    let mut cas_failures = 0u32;
    let mut spins = 0u32;
    loop {
        let current = match store.get(key) {
            Ok(v) => v,
            Err(ReadError) => return Charge::Failed(Failure::StoreError),
        };
        let Some((bytes, cas)) = current else {
            let full = Bucket::full(limit, now_ns).encode();
            match shared_keys::create(store, REGISTRY_KEY, key, &full, now_ns, opts.max_buckets) {
                Created::Yes => continue,
                Created::Full => return Charge::Overflow,
                Created::Busy => {
                    spins += 1;
                    if spins > LOCK_SPINS {
                        return Charge::Failed(Failure::CasExhausted);
                    }
                    continue;
                }
                Created::Error => return Charge::Failed(Failure::StoreError),
            }
        };
        // Garbage under our key (another version?) reads as a full bucket.
        let state = Bucket::decode(&bytes).unwrap_or_else(|| Bucket::full(limit, now_ns));
        let outcome = state.take(limit, cost, now_ns);
        if !outcome.allowed || cost == 0 {
            return Charge::Decided(outcome);
        }
        match store.set(key, &outcome.state.encode(), cas) {
            Ok(()) => return Charge::Decided(outcome),
            Err(SetError::CasMismatch) => {
                cas_failures += 1;
                if cas_failures >= opts.max_cas_retries {
                    return Charge::Failed(Failure::CasExhausted);
                }
            }
            Err(SetError::Other) => return Charge::Failed(Failure::StoreError),
        }
    }
}

/// What taking `cost` would give, without writing anything: the pre-check
/// done before a request body is read. A missing key is a full bucket.
/// Also returns what was read, for [`Primed`].
pub fn peek(
    store: &dyn SharedStore,
    key: &str,
    limit: &Limit,
    cost: u64,
    now_ns: u64,
) -> Result<(Outcome, Stored), Failure> {
    let read = store.get(key).map_err(|ReadError| Failure::StoreError)?;
    let state = match &read {
        Some((bytes, _)) => Bucket::decode(bytes).unwrap_or_else(|| Bucket::full(limit, now_ns)),
        None => Bucket::full(limit, now_ns),
    };
    Ok((state.take(limit, cost, now_ns), read))
}

/// A value and its cas as shared data returned them (`None`: missing).
pub type Stored = Option<(Vec<u8>, u32)>;

/// A store whose next read of one key is answered by an earlier read of it
/// (the pre-check's), saving a host call: a read costs more than a write.
/// Safe because other workers only ever take tokens: a stale bucket holds
/// more than the real one, so it can wrongly allow but never wrongly deny,
/// and an allow writes with the stale cas, which then fails and reads again.
pub struct Primed<'a> {
    pub inner: &'a dyn SharedStore,
    pub key: &'a str,
    pub read: std::cell::RefCell<Option<Stored>>,
}

impl SharedStore for Primed<'_> {
    fn get(&self, key: &str) -> Result<Stored, ReadError> {
        if key == self.key {
            if let Some(read) = self.read.try_borrow_mut().ok().and_then(|mut r| r.take()) {
                return Ok(read);
            }
        }
        self.inner.get(key)
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError> {
        self.inner.set(key, value, cas)
    }
}

#[cfg(test)]
pub(crate) mod model {
    //! Envoy's shared data, as proxy-wasm-cpp-host implements it: a missing
    //! key is written whatever the cas, cas numbers never repeat or are 0.
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    pub type Hook = Box<dyn FnMut(&Model, &str)>;

    #[derive(Default)]
    pub struct Model {
        pub data: RefCell<HashMap<String, (Vec<u8>, u32)>>,
        next: RefCell<u32>,
        /// Called before every get/set: lets a test interleave another worker.
        pub hook: RefCell<Option<Hook>>,
        pub fail: RefCell<bool>,
    }

    impl Model {
        fn before(&self, op: &str) {
            let hook = self.hook.borrow_mut().take();
            if let Some(mut hook) = hook {
                hook(self, op);
                *self.hook.borrow_mut() = Some(hook);
            }
        }

        pub fn raw_set(&self, key: &str, value: &[u8]) {
            let mut next = self.next.borrow_mut();
            *next += 1;
            self.data
                .borrow_mut()
                .insert(key.to_string(), (value.to_vec(), *next));
        }
    }

    impl SharedStore for Model {
        fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, ReadError> {
            self.before("get");
            if *self.fail.borrow() {
                return Err(ReadError);
            }
            Ok(self.data.borrow().get(key).cloned())
        }

        fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError> {
            self.before("set");
            if *self.fail.borrow() {
                return Err(SetError::Other);
            }
            if let Some((_, current)) = self.data.borrow().get(key) {
                if cas != 0 && cas != *current {
                    return Err(SetError::CasMismatch);
                }
            }
            self.raw_set(key, value);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::model::Model;
    use super::*;
    use mesh_core::shared_keys::Registry;

    const T0: u64 = 1_700_000_000_000_000_000;
    const OPTS: Options = Options {
        max_cas_retries: 8,
        max_buckets: Some(3),
    };

    fn limit(burst: u64) -> Limit {
        Limit::new(1, 3_600_000_000_000, burst)
    }

    fn allowed(c: Charge) -> bool {
        match c {
            Charge::Decided(o) => o.allowed,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn admits_exactly_the_burst() {
        let m = Model::default();
        ensure_registry(&m);
        let n = (0..20)
            .filter(|_| allowed(charge(&m, "k", &limit(7), 1, T0, OPTS)))
            .count();
        assert_eq!(n, 7);
    }

    #[test]
    fn a_concurrent_write_forces_a_retry_not_a_lost_update() {
        let m = Model::default();
        ensure_registry(&m);
        assert!(allowed(charge(&m, "k", &limit(10), 1, T0, OPTS)));
        // Another worker charges 1 between our get and our set, three times.
        let mut interleaved = 0;
        *m.hook.borrow_mut() = Some(Box::new(move |model: &Model, op: &str| {
            if op == "set" && interleaved < 3 {
                interleaved += 1;
                let (bytes, _) = model.data.borrow().get("k").cloned().unwrap();
                let b = Bucket::decode(&bytes).unwrap();
                let o = b.take(&limit(10), 1, T0);
                model.raw_set("k", &o.state.encode());
            }
        }));
        let c = charge(&m, "k", &limit(10), 1, T0, OPTS);
        match c {
            Charge::Decided(o) => assert_eq!(o.quota.remaining, 10 - 1 - 3 - 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cas_retries_are_bounded() {
        let m = Model::default();
        ensure_registry(&m);
        assert!(allowed(charge(&m, "k", &limit(100), 1, T0, OPTS)));
        *m.hook.borrow_mut() = Some(Box::new(|model: &Model, op: &str| {
            if op == "set" {
                let v = model.data.borrow().get("k").cloned().unwrap().0;
                model.raw_set("k", &v);
            }
        }));
        assert_eq!(
            charge(&m, "k", &limit(100), 1, T0, OPTS),
            Charge::Failed(Failure::CasExhausted)
        );
    }

    #[test]
    fn store_errors_are_reported() {
        let m = Model::default();
        *m.fail.borrow_mut() = true;
        assert_eq!(
            charge(&m, "k", &limit(1), 1, T0, OPTS),
            Charge::Failed(Failure::StoreError)
        );
    }

    #[test]
    fn racing_creators_do_not_lose_a_charge() {
        // A reads the key (missing); before A's next host call, worker B
        // creates the bucket and charges it. A must then charge B's bucket,
        // not overwrite it with a fresh one.
        let m = Model::default();
        ensure_registry(&m);
        let mut gets = 0;
        *m.hook.borrow_mut() = Some(Box::new(move |model: &Model, op: &str| {
            if op == "get" {
                gets += 1;
                if gets == 2 {
                    // The hook is out while it runs: B is not interleaved.
                    assert!(allowed(charge(model, "k", &limit(5), 1, T0, OPTS)));
                }
            }
        }));
        assert!(allowed(charge(&m, "k", &limit(5), 1, T0, OPTS)));
        let (bytes, _) = m.data.borrow().get("k").cloned().unwrap();
        assert_eq!(Bucket::decode(&bytes).unwrap().level / 1_000_000_000, 3);
    }

    #[test]
    fn a_held_lock_makes_creators_wait_and_a_stale_one_is_taken_over() {
        let m = Model::default();
        let held = Registry {
            locked: true,
            since_ns: T0,
            buckets: 0,
        };
        m.raw_set(REGISTRY_KEY, &held.encode());
        // Held and fresh: after the spin budget, the fail mode decides.
        assert_eq!(
            charge(&m, "k", &limit(5), 1, T0 + 10, OPTS),
            Charge::Failed(Failure::CasExhausted)
        );
        assert!(!m.data.borrow().contains_key("k"));
        // Two seconds later it is stale: taken over, key created, released.
        assert!(allowed(charge(
            &m,
            "k",
            &limit(5),
            1,
            T0 + 2_000_000_000,
            OPTS
        )));
        let reg = Registry::decode(&m.data.borrow()[REGISTRY_KEY].0).unwrap();
        assert!(!reg.locked);
        assert_eq!(reg.buckets, 1);
    }

    #[test]
    fn max_buckets_bounds_the_keys() {
        let m = Model::default();
        ensure_registry(&m);
        for org in ["a", "b", "c"] {
            assert!(allowed(charge(&m, org, &limit(5), 1, T0, OPTS)));
        }
        assert_eq!(charge(&m, "d", &limit(5), 1, T0, OPTS), Charge::Overflow);
        // Existing buckets keep working; uncapped keys (overflow) are created.
        assert!(allowed(charge(&m, "a", &limit(5), 1, T0, OPTS)));
        let uncapped = Options {
            max_buckets: None,
            ..OPTS
        };
        assert!(allowed(charge(&m, "overflow", &limit(5), 1, T0, uncapped)));
        assert_eq!(m.data.borrow().len(), 5);
    }

    #[test]
    fn missing_registry_is_recreated_and_garbage_reads_as_full() {
        let m = Model::default();
        assert!(allowed(charge(&m, "k", &limit(2), 1, T0, OPTS)));
        m.raw_set("k", b"garbage");
        let c = charge(&m, "k", &limit(2), 1, T0, OPTS);
        match c {
            Charge::Decided(o) => assert_eq!(o.quota.remaining, 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn peek_reads_without_writing() {
        let m = Model::default();
        ensure_registry(&m);
        assert!(peek(&m, "k", &limit(2), 2, T0).unwrap().0.allowed);
        assert!(!m.data.borrow().contains_key("k"));
        assert!(allowed(charge(&m, "k", &limit(2), 1, T0, OPTS)));
        let (o, _) = peek(&m, "k", &limit(2), 2, T0).unwrap();
        assert!(!o.allowed);
        assert_eq!(o.quota.remaining, 1);
        assert!(peek(&m, "k", &limit(2), 1, T0).unwrap().0.allowed);
        *m.fail.borrow_mut() = true;
        assert_eq!(peek(&m, "k", &limit(2), 1, T0), Err(Failure::StoreError));
    }

    #[test]
    fn a_primed_read_saves_one_get_and_a_stale_one_is_read_again() {
        let m = Model::default();
        ensure_registry(&m);
        assert!(allowed(charge(&m, "k", &limit(3), 1, T0, OPTS)));
        let (_, read) = peek(&m, "k", &limit(3), 1, T0).unwrap();
        // Another worker takes a token after the pre-check read.
        assert!(allowed(charge(&m, "k", &limit(3), 1, T0, OPTS)));
        let primed = Primed {
            inner: &m,
            key: "k",
            read: std::cell::RefCell::new(Some(read)),
        };
        // The stale read would leave 1; its cas fails, the charge reads again.
        match charge(&primed, "k", &limit(3), 1, T0, OPTS) {
            Charge::Decided(o) => assert_eq!((o.allowed, o.quota.remaining), (true, 0)),
            other => panic!("{other:?}"),
        }
        assert!(
            primed.read.borrow().is_none(),
            "the primed read is used once"
        );
        match charge(&primed, "k", &limit(3), 1, T0, OPTS) {
            Charge::Decided(o) => assert!(!o.allowed),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn denials_and_free_requests_write_nothing() {
        let m = Model::default();
        ensure_registry(&m);
        assert!(allowed(charge(&m, "k", &limit(1), 1, T0, OPTS)));
        let cas = m.data.borrow()["k"].1;
        assert!(!allowed(charge(&m, "k", &limit(1), 1, T0, OPTS)));
        assert!(allowed(charge(&m, "k", &limit(1), 0, T0, OPTS)));
        assert_eq!(m.data.borrow()["k"].1, cas);
    }
}
