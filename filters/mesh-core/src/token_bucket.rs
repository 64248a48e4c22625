//! Token-bucket math, host-free and exact.
//!
//! A bucket holds up to `burst` tokens and refills `rate` tokens every
//! `period`. The level is kept in nano-tokens (1 token = 10^9 units) so that a
//! slow refill (1 per hour) still advances on every request without floats,
//! and the stored state does not depend on the plan: an organization that
//! moves from a per-second to a per-minute plan keeps its bucket.
//!
//! Refill is computed from the time elapsed since the last update, on each
//! request; there are no timers. A clock that goes backwards (NTP step, a
//! worker whose clock reads slightly behind another's) refills nothing and
//! re-bases the bucket at the new time, so it neither stalls nor double-counts.
//!
//! State is 24 fixed-width bytes (level, last update, refill remainder), the value stored under
//! one Envoy shared-data key per bucket.

/// Units per token.
pub const NANO: u64 = 1_000_000_000;

/// Largest `burst` a bucket accepts: keeps the level (nano-tokens) in a u64.
pub const MAX_BURST: u64 = 1_000_000_000;

/// How fast a bucket refills and how much it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Tokens added per `period_ns` (> 0).
    pub rate: u64,
    /// Length of the refill period in nanoseconds (> 0).
    pub period_ns: u64,
    /// Capacity in tokens (1..=MAX_BURST).
    pub burst: u64,
}

impl Limit {
    pub const fn new(rate: u64, period_ns: u64, burst: u64) -> Self {
        Self {
            rate,
            period_ns,
            burst,
        }
    }

    fn capacity(&self) -> u64 {
        self.burst.min(MAX_BURST).saturating_mul(NANO)
    }

    /// Nano-tokens gained in `elapsed_ns` on top of `carry` (the remainder
    /// of earlier divisions, in nano-token-nanoseconds), and the new carry.
    /// Carrying the remainder is what keeps slow rates exact: 7 per minute
    /// refills exactly 7 tokens a minute however often it is computed.
    fn refill(&self, elapsed_ns: u64, carry: u64) -> (u64, u64) {
        if self.period_ns == 0 {
            return (self.capacity(), 0);
        }
        let num = u128::from(elapsed_ns)
            .saturating_mul(u128::from(self.rate))
            .saturating_mul(u128::from(NANO))
            .saturating_add(u128::from(carry.min(self.period_ns - 1)));
        let period = u128::from(self.period_ns);
        let gained = u64::try_from(num / period).unwrap_or(u64::MAX);
        let carry = u64::try_from(num % period).unwrap_or(0);
        (gained, carry)
    }

    /// Nanoseconds until `missing` nano-tokens have been refilled (rounded
    /// up), given the `carry` already accumulated towards the next one.
    fn time_to_gain(&self, missing: u64, carry: u64) -> u64 {
        if missing == 0 {
            return 0;
        }
        let per_ns_den = u128::from(self.rate).saturating_mul(u128::from(NANO));
        if per_ns_den == 0 {
            return u64::MAX;
        }
        let num = u128::from(missing)
            .saturating_mul(u128::from(self.period_ns))
            .saturating_sub(u128::from(carry));
        u64::try_from(num.div_ceil(per_ns_den)).unwrap_or(u64::MAX)
    }

    /// Whole seconds it takes to refill the full burst (`w` of RateLimit-Policy).
    pub fn window_secs(&self) -> u64 {
        ceil_secs(self.time_to_gain(self.capacity(), 0)).max(1)
    }
}

/// Bucket state: level in nano-tokens, the time it was computed at, and the
/// refill remainder that did not make a whole nano-token yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bucket {
    pub level: u64,
    pub updated_ns: u64,
    pub carry: u64,
}

/// Size of [`Bucket::encode`].
pub const ENCODED_LEN: usize = 24;

impl Bucket {
    /// A bucket seen for the first time starts full.
    pub fn full(limit: &Limit, now_ns: u64) -> Self {
        Self {
            level: limit.capacity(),
            updated_ns: now_ns,
            carry: 0,
        }
    }

    /// Big-endian level, timestamp, carry.
    pub fn encode(&self) -> [u8; ENCODED_LEN] {
        let mut out = [0u8; ENCODED_LEN];
        for (chunk, word) in out
            .chunks_exact_mut(8)
            .zip([self.level, self.updated_ns, self.carry])
        {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    /// `None` for anything that is not exactly [`ENCODED_LEN`] bytes.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != ENCODED_LEN {
            return None;
        }
        let mut words = bytes
            .chunks_exact(8)
            .map(|c| c.try_into().ok().map(u64::from_be_bytes));
        Some(Self {
            level: words.next()??,
            updated_ns: words.next()??,
            carry: words.next()??,
        })
    }

    /// The state at `now_ns`: refilled for the time elapsed (nothing if the
    /// clock went backwards) and clamped to the current capacity (a plan may
    /// have shrunk since the state was written).
    pub fn at(&self, limit: &Limit, now_ns: u64) -> Self {
        let elapsed = now_ns.saturating_sub(self.updated_ns);
        let (gained, carry) = limit.refill(elapsed, self.carry);
        let level = self.level.saturating_add(gained);
        if level >= limit.capacity() {
            // Full: nothing accumulates beyond the burst, not even the carry.
            return Self::full(limit, now_ns);
        }
        Self {
            level,
            updated_ns: now_ns,
            carry,
        }
    }

    /// Tries to take `cost` tokens at `now_ns`.
    pub fn take(&self, limit: &Limit, cost: u64, now_ns: u64) -> Outcome {
        let current = self.at(limit, now_ns);
        let need = cost.saturating_mul(NANO);
        if current.level >= need {
            let after = Self {
                level: current.level - need,
                ..current
            };
            Outcome {
                allowed: true,
                state: after,
                quota: Quota::of(limit, &after, 0),
            }
        } else {
            let retry_ns = limit.time_to_gain(need - current.level, current.carry);
            Outcome {
                allowed: false,
                state: current,
                quota: Quota::of(limit, &current, retry_ns),
            }
        }
    }
}

/// The result of [`Bucket::take`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub allowed: bool,
    /// State to store (after taking the tokens, or just refilled when denied:
    /// a denied request need not be stored at all).
    pub state: Bucket,
    pub quota: Quota,
}

/// What the rate-limit response headers report, in whole units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Quota {
    /// Capacity (burst) in tokens.
    pub limit: u64,
    /// Whole tokens left.
    pub remaining: u64,
    /// Seconds until the bucket is full again (0 when full).
    pub reset_secs: u64,
    /// Seconds until the denied request could pass (>= 1); 0 when allowed.
    pub retry_after_secs: u64,
    /// Seconds the full burst takes to refill.
    pub window_secs: u64,
}

impl Quota {
    fn of(limit: &Limit, state: &Bucket, retry_ns: u64) -> Self {
        let missing = limit.capacity().saturating_sub(state.level);
        Self {
            limit: limit.burst,
            remaining: state.level / NANO,
            reset_secs: ceil_secs(limit.time_to_gain(missing, state.carry)),
            retry_after_secs: if retry_ns == 0 {
                0
            } else {
                ceil_secs(retry_ns).max(1)
            },
            window_secs: limit.window_secs(),
        }
    }
}

fn ceil_secs(ns: u64) -> u64 {
    ns.div_ceil(NANO)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = NANO;
    const MIN: u64 = 60 * SEC;
    const T0: u64 = 1_700_000_000 * SEC;

    fn per_minute(rate: u64, burst: u64) -> Limit {
        Limit::new(rate, MIN, burst)
    }

    fn drain(limit: &Limit, mut b: Bucket, now: u64) -> (u64, Bucket) {
        let mut n = 0;
        loop {
            let o = b.take(limit, 1, now);
            if !o.allowed {
                return (n, o.state);
            }
            n += 1;
            b = o.state;
        }
    }

    #[test]
    fn starts_full_and_admits_exactly_burst() {
        let l = per_minute(60, 10);
        let (n, _) = drain(&l, Bucket::full(&l, T0), T0);
        assert_eq!(n, 10);
    }

    #[test]
    fn refills_from_elapsed_time() {
        let l = per_minute(60, 10); // one per second
        let (_, empty) = drain(&l, Bucket::full(&l, T0), T0);
        assert!(!empty.take(&l, 1, T0 + SEC - 1).allowed);
        let o = empty.take(&l, 1, T0 + SEC);
        assert!(o.allowed);
        assert_eq!(o.quota.remaining, 0);
        // 3.5 s later: 3 whole tokens, half a token kept for later.
        let (n, rest) = drain(&l, o.state, T0 + SEC + 3 * SEC + SEC / 2);
        assert_eq!(n, 3);
        assert_eq!(rest.level, NANO / 2);
    }

    #[test]
    fn refill_is_capped_at_burst() {
        let l = per_minute(60, 5);
        let (_, empty) = drain(&l, Bucket::full(&l, T0), T0);
        let (n, _) = drain(&l, empty, T0 + 3600 * SEC);
        assert_eq!(n, 5);
    }

    #[test]
    fn slow_refill_accumulates_fractions_exactly() {
        // 7 per minute does not divide into whole nanoseconds per token.
        let l = per_minute(7, 7);
        let (_, mut b) = drain(&l, Bucket::full(&l, T0), T0);
        let mut admitted = 0;
        // One request every 100 ms for 10 minutes: exactly 70 tokens refill.
        for i in 1..=6000u64 {
            let o = b.take(&l, 1, T0 + i * SEC / 10);
            if o.allowed {
                admitted += 1;
            }
            b = o.state;
        }
        assert_eq!(admitted, 70);
    }

    #[test]
    fn costs_take_several_tokens() {
        let l = per_minute(60, 12);
        let b = Bucket::full(&l, T0);
        let o = b.take(&l, 5, T0);
        assert!(o.allowed);
        assert_eq!(o.quota.remaining, 7);
        let o = o.state.take(&l, 5, T0);
        assert_eq!(o.quota.remaining, 2);
        let denied = o.state.take(&l, 5, T0);
        assert!(!denied.allowed);
        assert_eq!(denied.quota.remaining, 2, "a denial takes nothing");
        assert_eq!(denied.quota.retry_after_secs, 3);
        assert!(o.state.take(&l, 2, T0).allowed);
    }

    #[test]
    fn cost_zero_always_passes() {
        let l = per_minute(60, 1);
        let (_, empty) = drain(&l, Bucket::full(&l, T0), T0);
        assert!(empty.take(&l, 0, T0).allowed);
    }

    #[test]
    fn clock_going_backwards_refills_nothing_and_rebases() {
        let l = per_minute(60, 10);
        let (_, empty) = drain(&l, Bucket::full(&l, T0), T0);
        let back = empty.take(&l, 1, T0 - 30 * SEC);
        assert!(!back.allowed);
        assert_eq!(back.state.updated_ns, T0 - 30 * SEC);
        // One second after the re-based time, one token (not 31).
        let (n, _) = drain(&l, back.state, T0 - 29 * SEC);
        assert_eq!(n, 1);
    }

    #[test]
    fn shrunk_plan_clamps_the_stored_level() {
        let big = per_minute(600, 600);
        let small = per_minute(60, 10);
        let (n, _) = drain(&small, Bucket::full(&big, T0), T0);
        assert_eq!(n, 10);
    }

    #[test]
    fn retry_after_and_reset() {
        let l = per_minute(1, 2); // one token per minute
        let b = Bucket::full(&l, T0);
        let o = b.take(&l, 1, T0);
        assert_eq!(o.quota.limit, 2);
        assert_eq!(o.quota.remaining, 1);
        assert_eq!(o.quota.reset_secs, 60);
        assert_eq!(o.quota.retry_after_secs, 0);
        assert_eq!(o.quota.window_secs, 120);
        let o = o.state.take(&l, 1, T0 + 10 * SEC);
        let d = o.state.take(&l, 1, T0 + 10 * SEC);
        assert!(!d.allowed);
        // 10 s of refill already in: 50 s to the next token, 110 s to full.
        assert_eq!(d.quota.retry_after_secs, 50);
        assert_eq!(d.quota.reset_secs, 110);
        // Sub-second waits still say at least 1.
        let fast = Limit::new(1000, SEC, 1);
        let e = Bucket::full(&fast, T0).take(&fast, 1, T0).state;
        assert_eq!(e.take(&fast, 1, T0).quota.retry_after_secs, 1);
    }

    #[test]
    fn full_bucket_reports_zero_reset() {
        let l = per_minute(60, 60);
        let q = Bucket::full(&l, T0).take(&l, 0, T0).quota;
        assert_eq!((q.remaining, q.reset_secs, q.window_secs), (60, 0, 60));
    }

    #[test]
    fn encoding_round_trips_and_rejects_garbage() {
        let b = Bucket {
            level: 123_456_789_012,
            updated_ns: T0 + 7,
            carry: 42,
        };
        assert_eq!(Bucket::decode(&b.encode()), Some(b));
        assert_eq!(Bucket::decode(&[0u8; 23]), None);
        assert_eq!(Bucket::decode(&[0u8; 25]), None);
        assert_eq!(Bucket::decode(b""), None);
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        let l = Limit::new(u64::MAX, 1, MAX_BURST);
        let b = Bucket::default();
        let o = b.take(&l, MAX_BURST, u64::MAX);
        assert!(o.allowed);
        let slow = Limit::new(1, u64::MAX, MAX_BURST);
        let d = b.take(&slow, u64::MAX, 0);
        assert!(!d.allowed);
        assert!(d.quota.retry_after_secs >= 1);
        let _ = Bucket {
            level: u64::MAX,
            updated_ns: u64::MAX,
            carry: u64::MAX,
        }
        .take(&slow, 1, 0);
    }
}
