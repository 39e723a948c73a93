//! Every bound on what a client can make ddsd hold or do, in one place: the resolved settings
//! ([`LimitSettings`], from defaults < TOML file < `DDSD_*` environment) and the two limits that
//! keep state at run time ([`Limiter`]: the global in-flight request cap and the per-AccessKey
//! request rate). docs/limits.md lists each limit, its default, its error and why it exists.
//!
//! Where each limit is enforced:
//! - connections (`max_connections`) and head read time (`header_read_timeout_ms`): the accept
//!   loop in `server/http.rs` — over the cap ddsd stops accepting, so new connections wait in the
//!   kernel's backlog instead of costing memory;
//! - in-flight requests (`max_in_flight_requests`): first thing in the request handler, before the
//!   body is read → `Throttling` (400) with `x-acs-retry-after`;
//! - body size and read time (`max_body_bytes`, `body_read_timeout_ms`): the handler →
//!   `RequestEntityTooLarge` (413) / `RequestTimeout` (408);
//! - query size, parameter count, name/value/nonce length, nonce cache entries: `acs_rpc::verify`
//!   → `InvalidParameter` (400), or `Throttling.User` (400, with `x-acs-retry-after`) for a full
//!   nonce cache;
//! - per-AccessKey rate (`key_rate_per_sec`, `key_rate_burst`): after the signature verified, so
//!   only real keys are counted and the table is bounded by the configured keys → `Throttling.User`
//!   (400) with `x-acs-retry-after`;
//! - concurrent operations (`max_concurrent_operations`): the runtime drives at most that many
//!   operations at once; the rest wait their turn (accepted, status already set).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use acs_rpc::{Gateway, RpcError};
use anyhow::{bail, Context as _};
use serde::Deserialize;

/// The limit keys of the TOML file (flat, next to `listen` and `data_dir`); every one optional.
/// Each is also read from the environment as `DDSD_<KEY>` (upper-case), which wins over the file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub max_body_bytes: Option<usize>,
    pub body_read_timeout_ms: Option<u64>,
    pub header_read_timeout_ms: Option<u64>,
    pub max_query_bytes: Option<usize>,
    pub max_params: Option<usize>,
    pub max_param_name_bytes: Option<usize>,
    pub max_param_value_bytes: Option<usize>,
    pub max_nonce_bytes: Option<usize>,
    pub nonce_capacity: Option<usize>,
    pub max_in_flight_requests: Option<usize>,
    pub max_connections: Option<usize>,
    pub key_rate_per_sec: Option<f64>,
    pub key_rate_burst: Option<u32>,
    pub max_concurrent_operations: Option<usize>,
}

/// The resolved limits of one `ddsd serve`.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitSettings {
    /// Request body (form bodies; the SDKs send parameters in the query and an empty body).
    pub max_body_bytes: usize,
    /// A client that has not sent its whole body by then is cut off (slow bodies).
    pub body_read_timeout_ms: u64,
    /// A client that has not sent a whole request head by then is disconnected (slowloris).
    pub header_read_timeout_ms: u64,
    /// Raw query string.
    pub max_query_bytes: usize,
    /// Parameters in query and form body together (protocol parameters included).
    pub max_params: usize,
    pub max_param_name_bytes: usize,
    pub max_param_value_bytes: usize,
    /// `SignatureNonce` / `x-acs-signature-nonce`.
    pub max_nonce_bytes: usize,
    /// Live nonces remembered for replay protection.
    pub nonce_capacity: usize,
    /// Requests being served at once, all clients together.
    pub max_in_flight_requests: usize,
    /// Open client connections.
    pub max_connections: usize,
    /// Sustained requests per second per AccessKeyId; 0 turns the per-key limit off.
    pub key_rate_per_sec: f64,
    /// Requests an AccessKeyId may send at once above the sustained rate.
    pub key_rate_burst: u32,
    /// Operations (create, delete, upgrade, restart) the runtime drives at the same time.
    pub max_concurrent_operations: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        let rpc = acs_rpc::Limits::default();
        Self {
            max_body_bytes: 1024 * 1024,
            body_read_timeout_ms: 30_000,
            header_read_timeout_ms: 30_000,
            max_query_bytes: rpc.max_query_bytes,
            max_params: rpc.max_params,
            max_param_name_bytes: rpc.max_name_bytes,
            max_param_value_bytes: rpc.max_value_bytes,
            max_nonce_bytes: rpc.max_nonce_bytes,
            nonce_capacity: acs_rpc::BoundedNonceGuard::DEFAULT_CAPACITY,
            max_in_flight_requests: 512,
            max_connections: 1024,
            key_rate_per_sec: 1_000.0,
            key_rate_burst: 2_000,
            max_concurrent_operations: crate::server::runtime::RuntimeConfig::default()
                .max_concurrent_operations,
        }
    }
}

/// Reads one limit: the environment variable if set (non-empty), else the file, else the default.
fn pick<T: std::str::FromStr>(
    key: &str,
    file: Option<T>,
    default: T,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    let var = format!("DDSD_{}", key.to_ascii_uppercase());
    match env(&var).filter(|v| !v.trim().is_empty()) {
        Some(text) => text
            .trim()
            .parse()
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("{var}={text:?} is not a valid {key}")),
        None => Ok(file.unwrap_or(default)),
    }
}

fn positive<T: PartialOrd + Default + Copy>(key: &str, v: T) -> anyhow::Result<T> {
    if v <= T::default() {
        bail!("{key} must be positive");
    }
    Ok(v)
}

impl LimitSettings {
    /// Environment over file over defaults. `env` looks a variable up (`std::env::var` in
    /// production, a map in tests).
    pub fn resolve(
        file: &LimitsFile,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<LimitSettings> {
        let d = LimitSettings::default();
        let key_rate_per_sec = pick(
            "key_rate_per_sec",
            file.key_rate_per_sec,
            d.key_rate_per_sec,
            env,
        )?;
        if !key_rate_per_sec.is_finite() || key_rate_per_sec < 0.0 {
            bail!("key_rate_per_sec must be a non-negative number (0 turns the limit off)");
        }
        macro_rules! positive {
            ($key:ident) => {
                positive(
                    stringify!($key),
                    pick(stringify!($key), file.$key, d.$key, env)?,
                )?
            };
        }
        Ok(LimitSettings {
            max_body_bytes: positive!(max_body_bytes),
            body_read_timeout_ms: positive!(body_read_timeout_ms),
            header_read_timeout_ms: positive!(header_read_timeout_ms),
            max_query_bytes: positive!(max_query_bytes),
            max_params: positive!(max_params),
            max_param_name_bytes: positive!(max_param_name_bytes),
            max_param_value_bytes: positive!(max_param_value_bytes),
            max_nonce_bytes: positive!(max_nonce_bytes),
            nonce_capacity: positive!(nonce_capacity),
            max_in_flight_requests: positive!(max_in_flight_requests),
            max_connections: positive!(max_connections),
            key_rate_per_sec,
            key_rate_burst: positive!(key_rate_burst),
            max_concurrent_operations: positive!(max_concurrent_operations),
        })
    }

    /// The protocol layer's share of the limits.
    pub fn rpc_limits(&self) -> acs_rpc::Limits {
        acs_rpc::Limits {
            max_query_bytes: self.max_query_bytes,
            max_params: self.max_params,
            max_name_bytes: self.max_param_name_bytes,
            max_value_bytes: self.max_param_value_bytes,
            max_nonce_bytes: self.max_nonce_bytes,
            ..acs_rpc::Limits::default()
        }
    }
}

/// Wait suggested to a client refused by the in-flight cap. Requests take milliseconds, so a slot
/// frees up quickly; a short wait spreads the retries out without idling the client for long.
pub const IN_FLIGHT_RETRY_AFTER_MS: u64 = 200;

/// The run-time state of the request limits: the in-flight counter and one token bucket per
/// AccessKeyId.
pub struct Limiter {
    max_in_flight: usize,
    in_flight: AtomicUsize,
    rate_per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// One admitted request; dropping it frees the slot.
#[must_use]
pub struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Limiter {
    pub fn new(settings: &LimitSettings) -> Limiter {
        Limiter {
            max_in_flight: settings.max_in_flight_requests.max(1),
            in_flight: AtomicUsize::new(0),
            rate_per_sec: settings.key_rate_per_sec,
            burst: f64::from(settings.key_rate_burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// No in-flight cap worth the name and no per-key rate (in-process test harnesses).
    pub fn unlimited() -> Limiter {
        Limiter::new(&LimitSettings {
            max_in_flight_requests: usize::MAX,
            key_rate_per_sec: 0.0,
            ..LimitSettings::default()
        })
    }

    /// Requests currently admitted.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Admits one request, or refuses it with `Throttling` when `max_in_flight_requests` are
    /// already being served.
    pub fn admit(&self) -> Result<InFlight<'_>, RpcError> {
        let admitted = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_in_flight).then_some(n + 1)
            });
        match admitted {
            Ok(_) => Ok(InFlight(&self.in_flight)),
            Err(_) => Err(RpcError::gateway_with_detail(
                Gateway::Throttling,
                format!(
                    "The server is serving its maximum of {} requests at once; retry later.",
                    self.max_in_flight
                ),
            )
            .with_retry_after_ms(IN_FLIGHT_RETRY_AFTER_MS)),
        }
    }

    /// Takes one request from `access_key_id`'s bucket, or refuses with `Throttling.User` and the
    /// time until a token is available.
    pub fn check_key(&self, access_key_id: &str) -> Result<(), RpcError> {
        self.check_key_at(access_key_id, Instant::now())
    }

    /// [`Limiter::check_key`] at a given instant (tests drive time).
    pub fn check_key_at(&self, access_key_id: &str, now: Instant) -> Result<(), RpcError> {
        if self.rate_per_sec <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        // The table only ever holds verified AccessKeyIds, so it is bounded by the key store.
        let bucket = match buckets.get_mut(access_key_id) {
            Some(b) => b,
            None => buckets.entry(access_key_id.to_owned()).or_insert(Bucket {
                tokens: self.burst,
                at: now,
            }),
        };
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate_per_sec).min(self.burst);
        bucket.at = bucket.at.max(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait_ms = ((1.0 - bucket.tokens) / self.rate_per_sec * 1000.0).ceil();
        Err(RpcError::gateway_with_detail(
            Gateway::ThrottlingUser,
            format!(
                "This AccessKey may send {} requests per second (bursts of {}).",
                self.rate_per_sec, self.burst
            ),
        )
        .with_retry_after_ms(wait_ms.clamp(1.0, 3_600_000.0) as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn env_wins_over_file_wins_over_default() {
        let file = LimitsFile {
            max_params: Some(100),
            max_body_bytes: Some(4096),
            key_rate_per_sec: Some(5.0),
            ..LimitsFile::default()
        };
        let s = LimitSettings::resolve(
            &file,
            &env(&[("DDSD_MAX_PARAMS", "50"), ("DDSD_KEY_RATE_BURST", " 7 ")]),
        )
        .unwrap();
        assert_eq!(s.max_params, 50);
        assert_eq!(s.max_body_bytes, 4096);
        assert_eq!(s.key_rate_per_sec, 5.0);
        assert_eq!(s.key_rate_burst, 7);
        assert_eq!(s.nonce_capacity, LimitSettings::default().nonce_capacity);
        let rpc = s.rpc_limits();
        assert_eq!((rpc.max_params, rpc.timestamp_window_secs), (50, 900));
    }

    #[test]
    fn bad_values_name_the_variable_or_key() {
        let e = LimitSettings::resolve(
            &LimitsFile::default(),
            &env(&[("DDSD_MAX_QUERY_BYTES", "lots")]),
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("DDSD_MAX_QUERY_BYTES"), "{e:#}");
        let e = LimitSettings::resolve(
            &LimitsFile {
                nonce_capacity: Some(0),
                ..LimitsFile::default()
            },
            &env(&[]),
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("nonce_capacity"), "{e:#}");
        let e = LimitSettings::resolve(
            &LimitsFile::default(),
            &env(&[("DDSD_KEY_RATE_PER_SEC", "-1")]),
        )
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("key_rate_per_sec must be a non-negative number"),
            "{e:#}"
        );
        let off = LimitSettings::resolve(
            &LimitsFile::default(),
            &env(&[("DDSD_KEY_RATE_PER_SEC", "0")]),
        )
        .unwrap();
        assert_eq!(off.key_rate_per_sec, 0.0);
    }

    #[test]
    fn in_flight_cap_admits_exactly_the_cap() {
        let l = Limiter::new(&LimitSettings {
            max_in_flight_requests: 2,
            ..LimitSettings::default()
        });
        let a = l.admit().unwrap();
        let b = l.admit().unwrap();
        let e = l.admit().err().unwrap();
        assert_eq!((e.code(), e.status()), ("Throttling", 400));
        assert_eq!(e.retry_after_ms(), Some(IN_FLIGHT_RETRY_AFTER_MS));
        drop(a);
        let _c = l.admit().expect("a finished request frees its slot");
        assert_eq!(l.in_flight(), 2);
        drop(b);
        assert_eq!(l.in_flight(), 1);
    }

    #[test]
    fn key_rate_allows_the_burst_then_refills_at_the_rate() {
        let l = Limiter::new(&LimitSettings {
            key_rate_per_sec: 10.0,
            key_rate_burst: 3,
            ..LimitSettings::default()
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            l.check_key_at("k", t0).unwrap();
        }
        let e = l.check_key_at("k", t0).unwrap_err();
        assert_eq!((e.code(), e.status()), ("Throttling.User", 400));
        assert_eq!(e.retry_after_ms(), Some(100), "one token per 100 ms");
        // Another key has its own bucket.
        l.check_key_at("other", t0).unwrap();
        // 50 ms later half a token is back: still refused, with the rest of the wait.
        let e = l
            .check_key_at("k", t0 + Duration::from_millis(50))
            .unwrap_err();
        assert_eq!(e.retry_after_ms(), Some(50));
        l.check_key_at("k", t0 + Duration::from_millis(100))
            .unwrap();
        // A long pause refills only up to the burst.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            l.check_key_at("k", later).unwrap();
        }
        let e = l.check_key_at("k", later).unwrap_err();
        assert_eq!(e.code(), "Throttling.User");
    }

    #[test]
    fn zero_rate_turns_the_key_limit_off() {
        let l = Limiter::unlimited();
        let t0 = Instant::now();
        for _ in 0..10_000 {
            l.check_key_at("k", t0).unwrap();
        }
    }
}
