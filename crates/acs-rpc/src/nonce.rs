//! Replay protection: a nonce may be used once per AccessKeyId while its request could still
//! pass the timestamp check.
//!
//! [`BoundedNonceGuard`] is the in-memory default. Each entry lives until `timestamp + window`:
//! after that a replay fails the timestamp check on its own, so forgetting it is safe. Memory is
//! bounded by a capacity; when it is full the guard first drops expired entries and, if every
//! entry is still live, **refuses the request** (`Throttling.User`) instead of evicting a live
//! nonce, because evicting one would reopen its replay window. Entries are 128-bit keyed hashes of
//! (AccessKeyId, nonce) — two SipHash instances with per-process random keys, so a client cannot
//! force collisions — which keeps an entry near 100 bytes whatever the nonce length.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::Mutex;

use time::OffsetDateTime;

/// Why a nonce was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceRejection {
    /// Seen before for this AccessKeyId, within its window → `SignatureNonceUsed`.
    Replayed,
    /// No room without forgetting a live nonce → `Throttling.User`. Room frees up when the
    /// oldest live entry expires, `retry_after_ms` from now.
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

/// Capacity-bounded in-memory [`NonceGuard`]; see the module docs for the eviction rule.
pub struct BoundedNonceGuard {
    capacity: usize,
    hashers: (RandomState, RandomState),
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    /// key → expiry (unix nanoseconds).
    by_key: HashMap<u128, i128>,
    /// (expiry, key), oldest first, to drop expired entries without a scan.
    by_expiry: BTreeSet<(i128, u128)>,
}

impl BoundedNonceGuard {
    /// Default capacity: one million live nonces (about 100 MB at most), i.e. > 1,100 signed
    /// requests per second sustained over a 15-minute window.
    pub const DEFAULT_CAPACITY: usize = 1_000_000;

    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            hashers: (RandomState::new(), RandomState::new()),
            inner: Mutex::new(Entries::default()),
        }
    }

    /// Live entries (including expired ones not yet dropped).
    pub fn len(&self) -> usize {
        self.lock().by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while holding the lock cannot leave the two maps inconsistent in a way that
        // matters more than refusing all requests would, so keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn key(&self, access_key_id: &str, nonce: &str) -> u128 {
        let h = |s: &RandomState| {
            let mut h = s.build_hasher();
            // Length prefixes keep ("ab","c") and ("a","bc") apart.
            h.write_usize(access_key_id.len());
            h.write(access_key_id.as_bytes());
            h.write_usize(nonce.len());
            h.write(nonce.as_bytes());
            h.finish()
        };
        (u128::from(h(&self.hashers.0)) << 64) | u128::from(h(&self.hashers.1))
    }
}

impl Default for BoundedNonceGuard {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

impl NonceGuard for BoundedNonceGuard {
    fn check_and_record(
        &self,
        access_key_id: &str,
        nonce: &str,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), NonceRejection> {
        let key = self.key(access_key_id, nonce);
        let now = now.unix_timestamp_nanos();
        let expires = expires_at.unix_timestamp_nanos().max(now);
        let mut e = self.lock();
        if let Some(&old) = e.by_key.get(&key) {
            if old >= now {
                return Err(NonceRejection::Replayed);
            }
            e.by_key.remove(&key);
            e.by_expiry.remove(&(old, key));
        }
        if e.by_key.len() >= self.capacity {
            while let Some(&(exp, k)) = e.by_expiry.first() {
                if exp >= now {
                    break;
                }
                e.by_expiry.pop_first();
                e.by_key.remove(&k);
            }
            if e.by_key.len() >= self.capacity {
                let oldest = e.by_expiry.first().map_or(now, |&(exp, _)| exp);
                let wait_ns = (oldest - now).max(0) as u128;
                let retry_after_ms = wait_ns.div_ceil(1_000_000).min(u128::from(u64::MAX)) as u64;
                return Err(NonceRejection::Full { retry_after_ms });
            }
        }
        e.by_key.insert(key, expires);
        e.by_expiry.insert((expires, key));
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
}
