//! Replay protection: a nonce may be used once per AccessKeyId while its request could still
//! pass the timestamp check.
//!
//! [`BoundedNonceGuard`] is the in-memory default. Each entry lives until `timestamp + window`:
//! after that a replay fails the timestamp check on its own, so forgetting it is safe. Memory is
//! bounded by a capacity; when it is full the guard first drops expired entries and, if every
//! entry is still live, **refuses the request** (`Throttling.User`) instead of evicting a live
//! nonce, because evicting one would reopen its replay window.
//!
//! Layout, chosen for memory and for steady latency under load:
//! - an entry is a 128-bit keyed hash of (AccessKeyId, nonce) — two SipHash instances with
//!   per-process random keys, so a client cannot force collisions — plus its expiry: 24 bytes,
//!   about 28 with the table's overhead, whatever the nonce length;
//! - entries live in one hash table per minute of expiry. Whole minutes are dropped once their
//!   last entry expired (checked whenever a new minute starts, and when full), so memory follows
//!   the live nonces and expiry needs no per-entry index; a new minute's table is created at
//!   the size of the previous one, so the tables rarely grow under load — a growing table copies
//!   itself while every request waits on the lock;
//! - a lookup probes every live minute: about 16 at a steady request rate (15-minute window),
//!   never more than 32.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::Mutex;

use time::OffsetDateTime;

/// Why a nonce was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceRejection {
    /// Seen before for this AccessKeyId, within its window → `SignatureNonceUsed`.
    Replayed,
    /// No room without forgetting a live nonce → `Throttling.User`. Room frees up when the
    /// oldest live entries expire, `retry_after_ms` from now.
    Full { retry_after_ms: u64 },
}

/// Records nonces of verified requests. Called only after the signature matched, so unsigned
/// garbage cannot fill it.
pub trait NonceGuard: Send + Sync {
    /// Records `(access_key_id, nonce)` until `expires_at`, or says why not.
    fn check_and_record(
        &self,
        access_key_id: &str,
        nonce: &str,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), NonceRejection>;
}

/// Capacity-bounded in-memory [`NonceGuard`]; see the module docs for the layout and the rule.
pub struct BoundedNonceGuard {
    capacity: usize,
    hashers: (RandomState, RandomState),
    inner: Mutex<Minutes>,
}

/// The keys are already uniformly random (keyed SipHash output): hashing them again would only
/// cost time, so the table uses their first word as is.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 ^= v;
    }
}

type Key = [u64; 2];
type Table = HashMap<Key, i64, BuildHasherDefault<KeyHasher>>;

/// One table of entries per minute of expiry.
#[derive(Default)]
struct Minutes {
    /// minute of expiry → (key → expiry in unix nanoseconds, latest expiry in the table).
    by_minute: BTreeMap<i64, (Table, i64)>,
    len: usize,
}

impl Minutes {
    /// Drops every minute whose entries all expired before `now`.
    fn drop_expired(&mut self, now: i64) {
        while let Some(entry) = self.by_minute.first_entry() {
            if entry.get().1 >= now {
                break;
            }
            let (table, _) = entry.remove();
            self.len -= table.len();
        }
    }
}

impl BoundedNonceGuard {
    /// Default capacity: one million live nonces (about 30 MB at most), i.e. > 1,100 signed
    /// requests per second sustained over a 15-minute window.
    pub const DEFAULT_CAPACITY: usize = 1_000_000;

    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            hashers: (RandomState::new(), RandomState::new()),
            inner: Mutex::new(Minutes::default()),
        }
    }

    /// Entries held (including expired ones not yet dropped).
    pub fn len(&self) -> usize {
        self.lock().len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Minutes> {
        // A panic while holding the lock cannot leave the tables inconsistent in a way that
        // matters more than refusing all requests would, so keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn key(&self, access_key_id: &str, nonce: &str) -> Key {
        let h = |s: &RandomState| {
            let mut h = s.build_hasher();
            // Length prefixes keep ("ab","c") and ("a","bc") apart.
            h.write_usize(access_key_id.len());
            h.write(access_key_id.as_bytes());
            h.write_usize(nonce.len());
            h.write(nonce.as_bytes());
            h.finish()
        };
        [h(&self.hashers.0), h(&self.hashers.1)]
    }
}

impl Default for BoundedNonceGuard {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

/// Unix nanoseconds as `i64` (enough until 2262; the timestamp window keeps every real value far
/// inside that range, and saturating keeps absurd ones harmless).
fn nanos(t: OffsetDateTime) -> i64 {
    let n = t.unix_timestamp_nanos();
    i64::try_from(n).unwrap_or(if n < 0 { i64::MIN } else { i64::MAX })
}

const MINUTE_NS: i64 = 60_000_000_000;

impl NonceGuard for BoundedNonceGuard {
    fn check_and_record(
        &self,
        access_key_id: &str,
        nonce: &str,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), NonceRejection> {
        let key = self.key(access_key_id, nonce);
        let now = nanos(now);
        let expires = nanos(expires_at).max(now);
        let mut m = self.lock();
        for (table, _) in m.by_minute.values() {
            if table.get(&key).is_some_and(|&exp| exp >= now) {
                return Err(NonceRejection::Replayed);
            }
        }
        if m.len >= self.capacity {
            m.drop_expired(now);
            if m.len >= self.capacity {
                let frees_at = m
                    .by_minute
                    .values()
                    .map(|(_, last)| *last)
                    .min()
                    .unwrap_or(now);
                let wait_ns = u64::try_from(frees_at.saturating_sub(now)).unwrap_or(0);
                return Err(NonceRejection::Full {
                    retry_after_ms: wait_ns.div_ceil(1_000_000),
                });
            }
        }
        let minute = expires.div_euclid(MINUTE_NS);
        if !m.by_minute.contains_key(&minute) {
            // Once a minute (per new table), forget what expired: memory follows the live
            // nonces, not the capacity.
            m.drop_expired(now);
        }
        // A new minute's table starts as large as the newest one, so it rarely has to grow.
        let size_hint = m
            .by_minute
            .values()
            .next_back()
            .map_or(0, |(t, _)| t.len())
            .min(self.capacity);
        let (table, last) = m.by_minute.entry(minute).or_insert_with(|| {
            (
                Table::with_capacity_and_hasher(size_hint, BuildHasherDefault::default()),
                i64::MIN,
            )
        });
        // Present only if expired (checked above): a reused slot, not a new entry.
        let added = table.insert(key, expires).is_none();
        *last = (*last).max(expires);
        if added {
            m.len += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;
    use time::Duration;

    #[test]
    fn replay_is_refused_per_access_key() {
        let g = BoundedNonceGuard::new(10);
        let now = datetime!(2026-11-26 12:00 UTC);
        let exp = now + Duration::minutes(15);
        assert_eq!(g.check_and_record("a", "n1", exp, now), Ok(()));
        assert_eq!(
            g.check_and_record("a", "n1", exp, now),
            Err(NonceRejection::Replayed)
        );
        assert_eq!(
            g.check_and_record("b", "n1", exp, now),
            Ok(()),
            "another key may reuse a nonce"
        );
        assert_eq!(g.check_and_record("a", "n2", exp, now), Ok(()));
        // Still refused right up to expiry, accepted after it (the timestamp check guards then).
        assert_eq!(
            g.check_and_record("a", "n1", exp, exp),
            Err(NonceRejection::Replayed)
        );
        assert_eq!(
            g.check_and_record("a", "n1", exp, exp + Duration::seconds(1)),
            Ok(())
        );
    }

    #[test]
    fn length_prefix_separates_fields() {
        let g = BoundedNonceGuard::new(10);
        let now = datetime!(2026-11-26 12:00 UTC);
        let exp = now + Duration::minutes(15);
        assert_eq!(g.check_and_record("ab", "c", exp, now), Ok(()));
        assert_eq!(g.check_and_record("a", "bc", exp, now), Ok(()));
    }

    #[test]
    fn full_guard_evicts_only_expired_entries_then_refuses() {
        let g = BoundedNonceGuard::new(3);
        let t0 = datetime!(2026-11-26 12:00 UTC);
        g.check_and_record("a", "early", t0 + Duration::minutes(1), t0)
            .unwrap();
        g.check_and_record("a", "x", t0 + Duration::minutes(15), t0)
            .unwrap();
        g.check_and_record("a", "y", t0 + Duration::minutes(15), t0)
            .unwrap();
        assert_eq!(
            g.check_and_record("a", "z", t0 + Duration::minutes(15), t0),
            Err(NonceRejection::Full {
                retry_after_ms: 60_000
            }),
            "all three are live: refuse rather than forget one, until the oldest expires"
        );
        let later = t0 + Duration::minutes(2);
        assert_eq!(
            g.check_and_record("a", "z", later + Duration::minutes(15), later),
            Ok(())
        );
        assert_eq!(g.len(), 3);
        // The live ones are still remembered.
        assert_eq!(
            g.check_and_record("a", "x", later + Duration::minutes(15), later),
            Err(NonceRejection::Replayed)
        );
    }

    #[test]
    fn entries_spread_over_many_minutes_are_dropped_minute_by_minute() {
        let g = BoundedNonceGuard::new(1_000);
        let t0 = datetime!(2026-11-26 12:00 UTC);
        // 40 minutes of requests, 10 per minute, each living 15 minutes.
        for i in 0..400 {
            let now = t0 + Duration::seconds(i * 6);
            g.check_and_record("k", &format!("n{i}"), now + Duration::minutes(15), now)
                .unwrap();
        }
        // Only the last ~15 minutes are held, not all 400.
        let held = g.len();
        assert!((150..=170).contains(&held), "{held}");
        let now = t0 + Duration::seconds(399 * 6);
        // The newest are still replay-protected, the oldest have been forgotten.
        assert_eq!(
            g.check_and_record("k", "n399", now + Duration::minutes(15), now),
            Err(NonceRejection::Replayed)
        );
        assert_eq!(
            g.check_and_record("k", "n0", now + Duration::minutes(15), now),
            Ok(())
        );
    }

    proptest::proptest! {
        /// Against a plain map of (key, nonce) → expiry: a replay is refused exactly while the
        /// earlier use is live, and an accepted nonce never takes the live count over capacity.
        #[test]
        fn matches_a_reference_model(
            ops in proptest::collection::vec((0u8..3, 0u8..12, 0u32..400, 1u32..1200), 1..200),
            capacity in 1usize..20,
        ) {
            let g = BoundedNonceGuard::new(capacity);
            let mut model: std::collections::HashMap<(u8, u8), OffsetDateTime> = Default::default();
            let mut now = datetime!(2026-11-26 12:00 UTC);
            for (key, nonce, advance_s, life_s) in ops {
                now += Duration::seconds(i64::from(advance_s));
                let expires = now + Duration::seconds(i64::from(life_s));
                let live = |m: &std::collections::HashMap<(u8, u8), OffsetDateTime>| {
                    m.values().filter(|&&e| e >= now).count()
                };
                let was_live = model.get(&(key, nonce)).is_some_and(|&e| e >= now);
                let live_before = live(&model);
                let r = g.check_and_record(&key.to_string(), &nonce.to_string(), expires, now);
                match r {
                    Err(NonceRejection::Replayed) => proptest::prop_assert!(was_live),
                    Ok(()) => {
                        proptest::prop_assert!(!was_live);
                        proptest::prop_assert!(live_before < capacity);
                        model.insert((key, nonce), expires);
                    }
                    Err(NonceRejection::Full { retry_after_ms }) => {
                        proptest::prop_assert!(!was_live);
                        proptest::prop_assert!(retry_after_ms <= 1200 * 1000);
                    }
                }
            }
        }
    }
}
