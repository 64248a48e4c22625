//! LLM token budgets, host-free: which budgets a call answers to, what a
//! call costs against each, and the counters in Envoy shared data.
//!
//! A call **reserves** its estimate in every budget that applies before it
//! is sent, all or nothing; when its usage is known the reservation is
//! **reconciled** (the difference refunded or charged); a call whose usage
//! never comes keeps its reservation. Counters are exact across workers:
//! each is one shared-data key, written only with its compare-and-swap
//! token, created under [`mesh_core::shared_keys`]' lock.

use crate::budget_config::{Budget, Budgets, Count, Per, Price};
use crate::budget_window::window_at;
use mesh_core::llm_usage::Usage;
use mesh_core::shared_keys::{self, Created, LOCK_SPINS};
use mesh_core::stage::{ReadError, SetError, SharedStore};

/// Registry (creation lock and counter count) of the budget counters.
pub const REGISTRY_KEY: &str = "tub1|registry";
const MAX_CAS_RETRIES: u32 = 64;
/// Cost budgets count billionths of their unit.
const COST_SCALE: f64 = 1e9;

/// Tokens of one call, estimated or reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// All input tokens, cached ones included.
    pub input: u64,
    pub cached_input: u64,
    pub cache_creation_input: u64,
    pub output: u64,
}

impl Tokens {
    pub fn from_usage(u: &Usage) -> Self {
        Self {
            input: u.input,
            cached_input: u.cached_input.min(u.input),
            cache_creation_input: u.cache_creation_input,
            output: u.output,
        }
    }

    /// The reservation: input from the body size, output from the request's
    /// own maximum or the configured default.
    pub fn estimate(config: &Budgets, body_bytes: u64, max_output: Option<u64>) -> Self {
        Self {
            input: body_bytes.div_ceil(config.bytes_per_input_token.max(1)),
            cached_input: 0,
            cache_creation_input: 0,
            output: max_output.unwrap_or(config.default_output_tokens),
        }
    }
}

/// `pattern` (`name` or `prefix*`) matches `model`.
pub fn model_matches(pattern: &str, model: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => model.starts_with(prefix),
        None => pattern == model,
    }
}

/// The price of `model`: the longest matching entry, else the default.
pub fn price_of<'a>(config: &'a Budgets, model: Option<&str>) -> &'a Price {
    model
        .and_then(|m| {
            config
                .prices
                .iter()
                .filter(|(p, _)| model_matches(p, m))
                .max_by_key(|(p, _)| p.len())
                .map(|(_, price)| price)
        })
        .unwrap_or(&config.default_price)
}

/// What `tokens` cost against `budget`, in its counter's units (tokens, or
/// billionths of the cost unit; rounded up: a call is never cheaper than its
/// rule says).
pub fn amount(budget: &Budget, price: &Price, tokens: Tokens) -> u64 {
    match budget.count {
        Count::Input => tokens.input,
        Count::Output => tokens.output,
        Count::Total => tokens.input.saturating_add(tokens.output),
        Count::Cost => {
            let cached = tokens.cached_input.min(tokens.input);
            let creation = tokens.cache_creation_input;
            let plain = tokens.input.saturating_sub(cached);
            // Per million tokens, in billionths: tokens x price x 1000.
            let cost = plain as f64 * price.input
                + cached as f64 * price.cached_input.unwrap_or(price.input)
                + creation as f64 * price.cache_creation_input.unwrap_or(price.input)
                + tokens.output as f64 * price.output;
            to_units(cost * (COST_SCALE / 1e6))
        }
    }
}

fn to_units(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        // `as` saturates; ceil keeps a fraction of a unit a unit.
        v.ceil() as u64
    } else {
        0
    }
}

/// A budget's limit in its counter's units.
pub fn limit_units(budget: &Budget) -> u64 {
    let limit = budget.limit.unwrap_or(0.0);
    match budget.count {
        Count::Cost => to_units(limit * COST_SCALE),
        _ => to_units(limit),
    }
}

/// Counter units shown to clients: tokens, or whole millionths of the cost
/// unit (`RateLimit` values are integers).
pub fn shown(budget: &Budget, units: u64) -> u64 {
    match budget.count {
        Count::Cost => units / 1_000,
        _ => units,
    }
}

/// The budgets a call answers to, with the counter each one charges.
#[derive(Debug, Clone)]
pub struct Applied<'a> {
    pub budget: &'a Budget,
    /// Shared-data key of the counter.
    pub key: String,
    /// The organization or key the counter belongs to.
    pub scope: String,
    /// The counter is the key's own (`per: key`), not the organization's.
    pub per_key: bool,
}

/// The lists a call answers to, in order: its plan's (else `*`), its
/// organization's overrides, its key's.
fn lists<'a>(
    config: &'a Budgets,
    org: &str,
    plan: Option<&str>,
    key_id: Option<&str>,
) -> [Option<&'a Vec<Budget>>; 3] {
    let plan_list = plan
        .and_then(|p| config.plans.get(p))
        .or_else(|| config.plans.get("*"));
    [
        plan_list,
        config.orgs.get(org),
        key_id.and_then(|k| config.keys.get(k)),
    ]
}

/// Plan budgets, then the organization's overrides, then the key's (same
/// name replaces), keeping those whose model filter admits the call.
pub fn applicable<'a>(
    config: &'a Budgets,
    org: &str,
    plan: Option<&str>,
    key_id: Option<&str>,
    model: Option<&str>,
) -> Vec<Applied<'a>> {
    let mut chosen: Vec<&Budget> = Vec::new();
    for b in lists(config, org, plan, key_id)
        .into_iter()
        .flatten()
        .flatten()
    {
        match chosen.iter_mut().find(|c| c.name == b.name) {
            Some(slot) => *slot = b,
            None => chosen.push(b),
        }
    }
    chosen
        .into_iter()
        .filter(|b| {
            b.models.is_empty()
                || model.is_none_or(|m| b.models.iter().any(|p| model_matches(p, m)))
        })
        .map(|budget| {
            let (kind, scope) = match (budget.per, key_id) {
                (Per::Key, Some(k)) => ("k", k),
                _ => ("o", org),
            };
            Applied {
                budget,
                key: format!("tub1|{}|{kind}|{scope}", budget.name),
                scope: scope.to_string(),
                per_key: kind == "k",
            }
        })
        .collect()
}

/// True when some budget can apply to a call of this organization, plan and
/// key (whatever its model): otherwise the call is not held at all.
pub fn may_apply(config: &Budgets, org: &str, plan: Option<&str>, key_id: Option<&str>) -> bool {
    lists(config, org, plan, key_id)
        .into_iter()
        .flatten()
        .any(|l| !l.is_empty())
}

/// A counter: the window it counts, what was used in it, and for global
/// budgets the ledger of this Envoy against the rate-limit service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Counter {
    window: u64,
    used: u64,
    /// Global units this Envoy still owes the service (> 0: calls that used
    /// more than they reserved) or was charged ahead (< 0: reservations the
    /// service counted that went unused). The protocol cannot refund, so the
    /// next charge of this scope settles it.
    owed: i64,
}

impl Counter {
    fn encode(self) -> [u8; 24] {
        let mut out = [0u8; 24];
        let (w, rest) = out.split_at_mut(8);
        let (u, o) = rest.split_at_mut(8);
        w.copy_from_slice(&self.window.to_be_bytes());
        u.copy_from_slice(&self.used.to_be_bytes());
        o.copy_from_slice(&self.owed.to_be_bytes());
        out
    }

    /// 24 bytes, or the 16 of a counter written before the ledger existed.
    fn decode(bytes: &[u8]) -> Option<Self> {
        let word = |i: usize| -> Option<[u8; 8]> { bytes.get(i..i + 8)?.try_into().ok() };
        if bytes.len() != 16 && bytes.len() != 24 {
            return None;
        }
        Some(Self {
            window: u64::from_be_bytes(word(0)?),
            used: u64::from_be_bytes(word(8)?),
            owed: word(16).map_or(0, i64::from_be_bytes),
        })
    }

    /// The counter as seen in `window`: an earlier window's use is over,
    /// and so is what it was charged ahead; a debt is still owed.
    fn in_window(self, window: u64) -> Self {
        if self.window == window {
            self
        } else {
            Self {
                window,
                used: 0,
                owed: self.owed.max(0),
            }
        }
    }
}

/// Shared data failed: every compare-and-swap lost, or an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreFailed;

/// The result of reserving in one budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserve {
    /// Reserved (in [`Held::window`]); `remaining` after it.
    Taken { remaining: u64 },
    /// Not enough left; nothing written.
    Denied { remaining: u64 },
}

/// A value and its cas as shared data returned them.
type Stored = (Vec<u8>, u32);

/// The counter to use for `key`: itself, or its budget's overflow counter
/// once `max_counters` exist, with what reading it returned (`None` when it
/// was just created), so the update that follows need not read it again.
fn ensure(
    store: &dyn SharedStore,
    key: &str,
    overflow: &str,
    now_ns: u64,
    max: u32,
) -> Result<(String, Option<Stored>), StoreFailed> {
    let mut spins = 0u32;
    let mut key = key.to_string();
    loop {
        match store.get(&key) {
            Ok(Some(read)) => return Ok((key, Some(read))),
            Ok(None) => {}
            Err(ReadError) => return Err(StoreFailed),
        }
        let cap = (key != overflow).then_some(max);
        match shared_keys::create(
            store,
            REGISTRY_KEY,
            &key,
            &Counter::default().encode(),
            now_ns,
            cap,
        ) {
            Created::Yes => return Ok((key, None)),
            Created::Full => key = overflow.to_string(),
            Created::Busy => {
                spins += 1;
                if spins > LOCK_SPINS {
                    return Err(StoreFailed);
                }
            }
            Created::Error => return Err(StoreFailed),
        }
    }
}

/// The overflow counter of the budget whose counter is `key`.
fn overflow_key(key: &str) -> String {
    match key.rsplit_once('|') {
        Some((head, _)) => format!("{head}|~overflow"),
        None => format!("{key}|~overflow"),
    }
}

/// Reads, changes and writes one counter with its cas until it sticks.
/// `change` returns the new counter for the current one (seen in `window`),
/// or `None` to write nothing. `first` answers the first read (a stale value
/// only costs a cas mismatch and a fresh read).
fn update(
    store: &dyn SharedStore,
    key: &str,
    window: u64,
    mut first: Option<Stored>,
    mut change: impl FnMut(Counter) -> Option<Counter>,
) -> Result<Option<Counter>, StoreFailed> {
    for _ in 0..MAX_CAS_RETRIES {
        let read = match first.take() {
            Some(v) => Ok(Some(v)),
            None => store.get(key),
        };
        let (bytes, cas) = match read {
            Ok(Some(v)) => v,
            Ok(None) => (Vec::new(), 0),
            Err(ReadError) => return Err(StoreFailed),
        };
        // Garbage (another version's value) reads as an empty counter.
        let current = Counter::decode(&bytes)
            .unwrap_or_default()
            .in_window(window);
        let Some(next) = change(current) else {
            return Ok(None);
        };
        let next = Counter { window, ..next };
        match store.set(key, &next.encode(), cas) {
            Ok(()) => return Ok(Some(next)),
            Err(SetError::CasMismatch) => continue,
            Err(SetError::Other) => return Err(StoreFailed),
        }
    }
    Err(StoreFailed)
}

/// Changes what a counter has used.
fn update_used(
    store: &dyn SharedStore,
    key: &str,
    window: u64,
    first: Option<Stored>,
    mut change: impl FnMut(u64) -> Option<u64>,
) -> Result<Option<u64>, StoreFailed> {
    let next = update(store, key, window, first, |c| {
        change(c.used).map(|used| Counter { used, ..c })
    })?;
    Ok(next.map(|c| c.used))
}

/// A counter resolved for one call: the key it charges and its window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub key: String,
    pub window: u64,
    pub reserved: u64,
}

/// Reserves `amount` in the counter `key` unless it would pass `limit`.
pub fn reserve(
    store: &dyn SharedStore,
    budget: &Budget,
    key: &str,
    amount: u64,
    now_ns: u64,
    max_counters: u32,
) -> Result<(Reserve, Held), StoreFailed> {
    let (window, _) = window_at(budget.window, now_ns / 1_000_000_000);
    let (key, read) = ensure(store, key, &overflow_key(key), now_ns, max_counters)?;
    let limit = limit_units(budget);
    let mut remaining = 0;
    let wrote = update_used(store, &key, window, read, |used| {
        let after = used.saturating_add(amount);
        remaining = limit.saturating_sub(used);
        if after > limit {
            return None;
        }
        remaining = limit - after;
        Some(after)
    })?;
    let held = Held {
        key,
        window,
        reserved: amount,
    };
    Ok(match wrote {
        Some(_) => (Reserve::Taken { remaining }, held),
        None => (Reserve::Denied { remaining }, held),
    })
}

/// Replaces a reservation with the actual amount. Within the reservation's
/// window the difference is refunded or charged; once that window is over,
/// only an excess is charged, to the current window. Returns what is used
/// now (`None`: nothing to write).
pub fn reconcile(
    store: &dyn SharedStore,
    budget: &Budget,
    held: &Held,
    actual: u64,
    now_ns: u64,
) -> Result<Option<u64>, StoreFailed> {
    if actual == held.reserved {
        return Ok(None);
    }
    let (current, _) = window_at(budget.window, now_ns / 1_000_000_000);
    if current == held.window {
        return update_used(store, &held.key, current, None, |used| {
            Some(used.saturating_sub(held.reserved).saturating_add(actual))
        });
    }
    let excess = actual.saturating_sub(held.reserved);
    if excess == 0 {
        return Ok(None);
    }
    update_used(store, &held.key, current, None, |used| {
        Some(used.saturating_add(excess))
    })
}

/// What is left in a counter now (tests read counters with it; calls see
/// what is left as they reserve and reconcile).
#[cfg(test)]
pub fn remaining(store: &dyn SharedStore, budget: &Budget, key: &str, now_ns: u64) -> u64 {
    let (window, _) = window_at(budget.window, now_ns / 1_000_000_000);
    let used = match store.get(key) {
        Ok(Some((bytes, _))) => {
            Counter::decode(&bytes)
                .unwrap_or_default()
                .in_window(window)
                .used
        }
        _ => 0,
    };
    limit_units(budget).saturating_sub(used)
}

/// What the rate-limit service counts for `units` of a budget: tokens, or
/// whole millionths of the cost unit (rounded up).
pub fn global_units(budget: &Budget, units: u64) -> u64 {
    match budget.count {
        Count::Cost => units.div_ceil(1_000),
        _ => units,
    }
}

/// A global charge opened for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalHeld {
    /// The counter whose ledger settles it; `None` for an overflow counter,
    /// which several scopes share and so keeps no ledger.
    pub key: Option<String>,
    pub window: u64,
    /// The call's reservation, in global units.
    pub reserved: u64,
    /// What this call sends the service now.
    pub hits: u64,
}

/// Opens a global charge of `reserved` (global units) for the counter `key`:
/// the call sends its reservation plus what this Envoy owes for the scope,
/// less what the service was charged ahead (never below 0).
pub fn open_global(
    store: &dyn SharedStore,
    budget: &Budget,
    key: &str,
    reserved: u64,
    now_ns: u64,
    max_counters: u32,
) -> Result<GlobalHeld, StoreFailed> {
    let (window, _) = window_at(budget.window, now_ns / 1_000_000_000);
    let overflow = overflow_key(key);
    let (key, read) = ensure(store, key, &overflow, now_ns, max_counters)?;
    if key == overflow {
        return Ok(GlobalHeld {
            key: None,
            window,
            reserved,
            hits: reserved,
        });
    }
    let mut hits = reserved;
    update(store, &key, window, read, |c| {
        let due = i128::from(reserved) + i128::from(c.owed);
        hits = u64::try_from(due.max(0)).unwrap_or(u64::MAX);
        let owed = i64::try_from(due.min(0)).unwrap_or(i64::MIN);
        Some(Counter { owed, ..c })
    })?;
    Ok(GlobalHeld {
        key: Some(key),
        window,
        reserved,
        hits,
    })
}

/// Adds `delta` global units to what this Envoy owes for the charge's
/// scope. What was charged ahead in a window that is over is dropped.
pub fn settle_global(
    store: &dyn SharedStore,
    budget: &Budget,
    held: &GlobalHeld,
    delta: i64,
    now_ns: u64,
) -> Result<(), StoreFailed> {
    let Some(key) = held.key.as_deref() else {
        return Ok(());
    };
    let (current, _) = window_at(budget.window, now_ns / 1_000_000_000);
    if delta == 0 || (delta < 0 && current != held.window) {
        return Ok(());
    }
    update(store, key, current, None, |c| {
        Some(Counter {
            owed: c.owed.saturating_add(delta),
            ..c
        })
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget_config::Window;
    use mesh_core::mock_host::MemoryStore;

    fn budget(json: &str) -> Budget {
        serde_json::from_str(json).unwrap()
    }

    fn config(json: &str) -> Budgets {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn overrides_replace_by_name_and_add_others() {
        let c = config(
            r#"{"plans":{"free":[{"name":"hourly","window":"hour","limit":100}],
                         "*":[{"name":"other","window":"day","limit":5}]},
                "orgs":{"acme":[{"name":"hourly","window":"hour","limit":1000},
                                {"name":"gpt","window":"day","limit":7,"models":["gpt-4o*"]}]},
                "keys":{"k1":[{"name":"mine","window":"minute","limit":3,"per":"key"}]}}"#,
        );
        let names = |v: Vec<Applied>| -> Vec<(String, Option<f64>, String)> {
            v.into_iter()
                .map(|a| (a.budget.name.clone(), a.budget.limit, a.key))
                .collect()
        };
        assert_eq!(
            names(applicable(
                &c,
                "acme",
                Some("free"),
                Some("k1"),
                Some("gpt-4o-mini")
            )),
            vec![
                ("hourly".into(), Some(1000.0), "tub1|hourly|o|acme".into()),
                ("gpt".into(), Some(7.0), "tub1|gpt|o|acme".into()),
                ("mine".into(), Some(3.0), "tub1|mine|k|k1".into()),
            ]
        );
        // Another model skips the model budget; an unknown one does not.
        assert_eq!(
            applicable(&c, "acme", Some("free"), None, Some("claude")).len(),
            1
        );
        assert_eq!(applicable(&c, "acme", Some("free"), None, None).len(), 2);
        assert!(may_apply(&c, "initech", Some("free"), None));
        let only_keys = config(r#"{"keys":{"k1":[{"name":"m","window":"day","limit":3}]}}"#);
        assert!(may_apply(&only_keys, "initech", None, Some("k1")));
        assert!(!may_apply(&only_keys, "initech", Some("free"), Some("k2")));
        // A plan not listed gets `*`.
        assert_eq!(
            names(applicable(&c, "globex", Some("pro"), None, None))[0].0,
            "other"
        );
    }

    #[test]
    fn cost_is_weighted_per_model_and_token_kind_and_rounds_up() {
        let c = config(
            r#"{"prices":{"gpt-4o*":{"input":2.5,"cached_input":1.25,"output":10},
                          "gpt-4o-mini*":{"input":0.15,"output":0.6}},
                "default_price":{"input":5,"output":15}}"#,
        );
        let b = budget(r#"{"name":"usd","window":"month","limit":50,"count":"cost"}"#);
        let t = Tokens {
            input: 1_000_000,
            cached_input: 400_000,
            cache_creation_input: 0,
            output: 100_000,
        };
        // 600k x 2.5 + 400k x 1.25 + 100k x 10 = $3.00 in billionths.
        assert_eq!(
            amount(&b, price_of(&c, Some("gpt-4o-2024-08-06")), t),
            3_000_000_000
        );
        // The longest prefix wins.
        let mini = Tokens {
            input: 1,
            cached_input: 0,
            cache_creation_input: 0,
            output: 1,
        };
        assert_eq!(amount(&b, price_of(&c, Some("gpt-4o-mini")), mini), 750);
        // Unknown models pay the default.
        assert_eq!(amount(&b, price_of(&c, Some("llama")), mini), 20_000);
        assert_eq!(limit_units(&b), 50_000_000_000);
        let tok = budget(r#"{"name":"t","window":"hour","limit":10,"count":"output"}"#);
        assert_eq!(amount(&tok, price_of(&c, None), t), 100_000);
    }

    #[test]
    fn reserve_denies_past_the_limit_and_reconcile_refunds_or_charges() {
        let store = MemoryStore::default();
        let b = budget(r#"{"name":"t","window":"minute","limit":100}"#);
        let now = 60_000_000_000 * 10;
        let (r, held) = reserve(&store, &b, "tub1|t|o|a", 60, now, 10).unwrap();
        assert_eq!((r, held.window), (Reserve::Taken { remaining: 40 }, 10));
        let (r, _) = reserve(&store, &b, "tub1|t|o|a", 50, now, 10).unwrap();
        assert_eq!(r, Reserve::Denied { remaining: 40 });
        // Actual 20: 40 refunded.
        assert_eq!(reconcile(&store, &b, &held, 20, now).unwrap(), Some(20));
        assert_eq!(remaining(&store, &b, "tub1|t|o|a", now), 80);
        // The next window starts empty; a late excess is charged to it.
        let later = now + 60_000_000_000;
        assert_eq!(remaining(&store, &b, "tub1|t|o|a", later), 100);
        let (_, held) = reserve(&store, &b, "tub1|t|o|a", 10, now, 10).unwrap();
        assert_eq!(reconcile(&store, &b, &held, 30, later).unwrap(), Some(20));
        assert_eq!(reconcile(&store, &b, &held, 5, later).unwrap(), None);
    }

    #[test]
    fn the_global_ledger_settles_refunds_and_excess_on_the_next_charge() {
        let store = MemoryStore::default();
        let b = budget(r#"{"name":"g","window":"minute"}"#);
        let now = 60_000_000_000 * 10;
        let key = "tub1|g|o|a";
        // First call: sends its reservation of 100, uses 30: 70 charged ahead.
        let first = open_global(&store, &b, key, 100, now, 10).unwrap();
        assert_eq!((first.hits, first.key.as_deref()), (100, Some(key)));
        settle_global(&store, &b, &first, 30 - 100, now).unwrap();
        // Second call (reserves 50): fully covered by that, sends nothing.
        let second = open_global(&store, &b, key, 50, now, 10).unwrap();
        assert_eq!(second.hits, 0);
        // It uses 90: 40 more than reserved, with 20 still ahead: owes 20.
        settle_global(&store, &b, &second, 90 - 50, now).unwrap();
        let third = open_global(&store, &b, key, 10, now, 10).unwrap();
        assert_eq!(third.hits, 30);
        // Sent so far 100 + 0 + 30 = 130 = 30 + 90 + the third's 10: exact.
        // A refund in a window that is over is dropped; a debt is not.
        let later = now + 60_000_000_000;
        settle_global(&store, &b, &third, -10, later).unwrap();
        let fourth = open_global(&store, &b, key, 5, later, 10).unwrap();
        assert_eq!(fourth.hits, 5);
        settle_global(&store, &b, &fourth, 7, later).unwrap();
        let next_window = later + 60_000_000_000;
        assert_eq!(
            open_global(&store, &b, key, 1, next_window, 10)
                .unwrap()
                .hits,
            8
        );
        // An overflow counter keeps no ledger.
        let _ = open_global(&store, &b, "tub1|g|o|b", 1, now, 1).unwrap();
        let over = open_global(&store, &b, "tub1|g|o|c", 9, now, 1).unwrap();
        assert_eq!((over.key, over.hits), (None, 9));
        assert_eq!(
            global_units(
                &budget(r#"{"name":"c","window":"day","count":"cost"}"#),
                1_001
            ),
            2
        );
    }

    #[test]
    fn past_max_counters_new_scopes_share_the_overflow_counter() {
        let store = MemoryStore::default();
        let b = budget(r#"{"name":"t","window":"day","limit":100}"#);
        let (_, a) = reserve(&store, &b, "tub1|t|o|a", 1, 0, 1).unwrap();
        let (_, x) = reserve(&store, &b, "tub1|t|o|b", 1, 0, 1).unwrap();
        let (_, y) = reserve(&store, &b, "tub1|t|o|c", 1, 0, 1).unwrap();
        assert_eq!(a.key, "tub1|t|o|a");
        assert_eq!(x.key, "tub1|t|o|~overflow");
        assert_eq!(y.key, x.key);
        assert_eq!(remaining(&store, &b, &x.key, 0), 98);
    }

    #[test]
    fn estimates_round_up_and_default_the_output() {
        let c = Budgets::default();
        assert_eq!(
            Tokens::estimate(&c, 9, None),
            Tokens {
                input: 3,
                cached_input: 0,
                cache_creation_input: 0,
                output: 4096
            }
        );
        assert_eq!(Tokens::estimate(&c, 0, Some(7)).output, 7);
        let _ = Window::Minute;
    }
}
