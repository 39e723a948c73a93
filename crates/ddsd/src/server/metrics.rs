//! `GET /metrics`: ddsd's counters in the Prometheus text exposition format (version 0.0.4).
//!
//! | metric                                   | type      | labels            | what                                        |
//! |------------------------------------------|-----------|-------------------|---------------------------------------------|
//! | `ddsd_requests_total`                    | counter   | `action`, `code`  | RPC requests answered                       |
//! | `ddsd_request_duration_seconds`          | histogram | `action`          | time from request to answer                 |
//! | `ddsd_operations_finished_total`         | counter   | `kind`, `outcome` | operations the runtime finished             |
//! | `ddsd_elections_caused_total`            | counter   | `kind`            | elections in replica sets during finished upgrades/restarts |
//! | `ddsd_restarts_caused_total`             | counter   | `kind`            | processes restarted by finished upgrades/restarts |
//! | `ddsd_nonce_cache_entries`               | gauge     |                   | nonces held by the replay guard             |
//! | `ddsd_build_info`                        | gauge     | `version`         | always 1                                    |
//! | `ddsd_process_start_time_seconds`        | gauge     |                   | Unix time the process started serving       |
//!
//! `action` is the action's name when the request was verified and names an action of the table,
//! else `-` (refused before that: signature, method, path, unknown action); `code` is `OK` or the
//! error code answered. Both come from fixed sets in ddsd's code, never from free client text, so
//! the number of series is bounded; a further hard cap ([`MAX_SERIES`]) folds anything beyond it
//! into `code="other"`.
//!
//! Why a small registry here rather than the `metrics` facade + `metrics-exporter-prometheus`:
//! ddsd needs two counters keyed by short labels, one histogram and a gauge read at scrape
//! time. The exporter crate would add about fifteen transitive crates (evmap, left-right,
//! quanta, a second `rand`, …) and a process-global recorder that has to be installed exactly
//! once; this module is one file whose output is checked by a test that parses it with the
//! reference Python parser (`prometheus_client.parser`).
//!
//! Counters are process-wide (like a Prometheus client library's default registry) and reset when
//! ddsd restarts, which Prometheus' `rate()` handles.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::Value;

/// Upper bounds (seconds) of the request latency histogram's buckets.
pub const LATENCY_BUCKETS_S: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Most label combinations one metric keeps; beyond it new ones are counted under `code="other"`.
pub const MAX_SERIES: usize = 4_096;

/// The `action` label of a request that never reached an action.
pub const NO_ACTION: &str = "-";

/// Who may scrape `GET /metrics` (`metrics` in the config file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsAccess {
    /// Only clients connecting from a loopback address (the default).
    #[default]
    Loopback,
    /// Anybody who can reach the listener.
    Any,
    /// `/metrics` is not served (answered like any unknown path).
    Off,
}

impl MetricsAccess {
    /// Whether a scrape from `peer` (`None`: unknown) is answered.
    pub fn allows(self, peer: Option<std::net::IpAddr>) -> bool {
        match self {
            MetricsAccess::Any => true,
            MetricsAccess::Off => false,
            MetricsAccess::Loopback => peer.is_some_and(|ip| match ip {
                std::net::IpAddr::V4(v4) => v4.is_loopback(),
                // `::ffff:127.0.0.1` from a dual-stack listener is loopback too.
                std::net::IpAddr::V6(v6) => {
                    v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
                }
            }),
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Histogram {
    /// Count per bucket of [`LATENCY_BUCKETS_S`] (not cumulative; summed when rendered).
    buckets: Vec<u64>,
    sum_s: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; LATENCY_BUCKETS_S.len()];
        }
        if let Some(i) = LATENCY_BUCKETS_S.iter().position(|b| seconds <= *b) {
            self.buckets[i] += 1;
        }
        self.sum_s += seconds;
        self.count += 1;
    }
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(String, String), u64>,
    latency: BTreeMap<String, Histogram>,
    operations: BTreeMap<(String, String), u64>,
    elections: BTreeMap<String, u64>,
    restarts: BTreeMap<String, u64>,
    /// The `mongodb` data plane: observations, the commands and agent calls they cost, their time.
    plane_observations: u64,
    plane_observe_seconds: f64,
    plane_commands: u64,
    plane_agent_calls: u64,
}

/// The process's counters.
pub struct Registry {
    inner: Mutex<Inner>,
    started_s: f64,
}

/// Adds `n` to `map[key]`, folding a new key into `overflow` once the map is full.
fn bump<K: Ord + Clone>(map: &mut BTreeMap<K, u64>, key: K, overflow: impl FnOnce() -> K, n: u64) {
    if let Some(v) = map.get_mut(&key) {
        *v += n;
        return;
    }
    let key = if map.len() >= MAX_SERIES {
        overflow()
    } else {
        key
    };
    *map.entry(key).or_insert(0) += n;
}

/// The process-wide registry.
pub fn global() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::new)
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    pub fn new() -> Registry {
        Registry {
            inner: Mutex::new(Inner::default()),
            started_s: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Counters stay usable after a panic elsewhere: they are plain numbers.
        match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// One answered RPC request.
    pub fn request(&self, action: &str, code: &str, elapsed: Duration) {
        let mut inner = self.lock();
        bump(
            &mut inner.requests,
            (action.to_string(), code.to_string()),
            || (action.to_string(), "other".to_string()),
            1,
        );
        let len = inner.latency.len();
        let key = if len >= MAX_SERIES && !inner.latency.contains_key(action) {
            NO_ACTION.to_string()
        } else {
            action.to_string()
        };
        inner
            .latency
            .entry(key)
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    /// One operation finished; `report` is what it reported (for rolling operations a
    /// `dds_engine::workflow::Report`, whose elections and restarts are counted).
    pub fn operation_finished(&self, kind: &str, outcome: &str, report: &Value) {
        let (elections, restarts) = caused(report);
        let mut inner = self.lock();
        bump(
            &mut inner.operations,
            (kind.to_string(), outcome.to_string()),
            || (kind.to_string(), "other".to_string()),
            1,
        );
        if elections > 0 {
            bump(
                &mut inner.elections,
                kind.to_string(),
                || "other".into(),
                elections,
            );
        }
        if restarts > 0 {
            bump(
                &mut inner.restarts,
                kind.to_string(),
                || "other".into(),
                restarts,
            );
        }
    }

    /// One observation of a deployment by the `mongodb` plane: `commands` sent to its processes.
    pub fn plane_observed(&self, commands: u64, elapsed: Duration) {
        let mut inner = self.lock();
        inner.plane_observations += 1;
        inner.plane_commands += commands;
        inner.plane_observe_seconds += elapsed.as_secs_f64();
    }

    /// A command the `mongodb` plane sent outside an observation (a stepdown, the balancer).
    pub fn plane_command(&self) {
        self.lock().plane_commands += 1;
    }

    /// One call of the `mongodb` plane to a host agent.
    pub fn plane_agent_call(&self) {
        self.lock().plane_agent_calls += 1;
    }

    /// The exposition text. `nonce_entries` is read by the caller at scrape time.
    pub fn render(&self, nonce_entries: usize) -> String {
        let inner = self.lock();
        let mut out = String::with_capacity(4096);
        header(
            &mut out,
            "ddsd_requests_total",
            "counter",
            "RPC requests answered, by action and result code (OK or the error code).",
        );
        for ((action, code), n) in &inner.requests {
            sample(
                &mut out,
                "ddsd_requests_total",
                &[("action", action), ("code", code)],
                *n as f64,
            );
        }
        header(
            &mut out,
            "ddsd_request_duration_seconds",
            "histogram",
            "Time from receiving an RPC request to answering it, by action.",
        );
        for (action, h) in &inner.latency {
            let mut cumulative = 0u64;
            for (i, bound) in LATENCY_BUCKETS_S.iter().enumerate() {
                cumulative += h.buckets.get(i).copied().unwrap_or(0);
                sample(
                    &mut out,
                    "ddsd_request_duration_seconds_bucket",
                    &[("action", action), ("le", &format_float(*bound))],
                    cumulative as f64,
                );
            }
            sample(
                &mut out,
                "ddsd_request_duration_seconds_bucket",
                &[("action", action), ("le", "+Inf")],
                h.count as f64,
            );
            sample(
                &mut out,
                "ddsd_request_duration_seconds_sum",
                &[("action", action)],
                h.sum_s,
            );
            sample(
                &mut out,
                "ddsd_request_duration_seconds_count",
                &[("action", action)],
                h.count as f64,
            );
        }
        header(
            &mut out,
            "ddsd_operations_finished_total",
            "counter",
            "Operations the runtime finished, by kind (create, delete, upgrade, restart) and outcome.",
        );
        for ((kind, outcome), n) in &inner.operations {
            sample(
                &mut out,
                "ddsd_operations_finished_total",
                &[("kind", kind), ("outcome", outcome)],
                *n as f64,
            );
        }
        header(
            &mut out,
            "ddsd_elections_caused_total",
            "counter",
            "Replica-set elections observed during finished upgrade and restart operations.",
        );
        for (kind, n) in &inner.elections {
            sample(
                &mut out,
                "ddsd_elections_caused_total",
                &[("kind", kind)],
                *n as f64,
            );
        }
        header(
            &mut out,
            "ddsd_restarts_caused_total",
            "counter",
            "Processes (mongod and mongos) restarted by finished upgrade and restart operations.",
        );
        for (kind, n) in &inner.restarts {
            sample(
                &mut out,
                "ddsd_restarts_caused_total",
                &[("kind", kind)],
                *n as f64,
            );
        }
        for (name, kind, help, value) in [
            (
                "ddsd_plane_observations_total",
                "counter",
                "Observations of a deployment by the mongodb data plane.",
                inner.plane_observations as f64,
            ),
            (
                "ddsd_plane_observe_seconds_total",
                "counter",
                "Time the mongodb data plane spent observing deployments.",
                inner.plane_observe_seconds,
            ),
            (
                "ddsd_plane_commands_total",
                "counter",
                "MongoDB commands the mongodb data plane sent (observations included).",
                inner.plane_commands as f64,
            ),
            (
                "ddsd_plane_agent_calls_total",
                "counter",
                "Calls of the mongodb data plane to host agents.",
                inner.plane_agent_calls as f64,
            ),
        ] {
            header(&mut out, name, kind, help);
            sample(&mut out, name, &[], value);
        }
        drop(inner);
        header(
            &mut out,
            "ddsd_nonce_cache_entries",
            "gauge",
            "Nonces held by the replay guard.",
        );
        sample(
            &mut out,
            "ddsd_nonce_cache_entries",
            &[],
            nonce_entries as f64,
        );
        header(
            &mut out,
            "ddsd_build_info",
            "gauge",
            "The running ddsd's version; always 1.",
        );
        sample(
            &mut out,
            "ddsd_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        );
        header(
            &mut out,
            "ddsd_process_start_time_seconds",
            "gauge",
            "Unix time at which this ddsd process started.",
        );
        sample(
            &mut out,
            "ddsd_process_start_time_seconds",
            &[],
            self.started_s,
        );
        out
    }
}

/// Elections and restarts a finished rolling operation's report records.
fn caused(report: &Value) -> (u64, u64) {
    let restarted = |p: &Value| p["restarted"].as_bool() == Some(true);
    let sets = report["replica_sets"].as_array();
    let elections = sets.map_or(0, |s| {
        s.iter().filter_map(|rs| rs["elections"].as_u64()).sum()
    });
    let members = sets.map_or(0, |s| {
        s.iter()
            .filter_map(|rs| rs["members"].as_array())
            .flatten()
            .filter(|p| restarted(p))
            .count()
    });
    let mongos = report["mongos"]
        .as_array()
        .map_or(0, |m| m.iter().filter(|p| restarted(p)).count());
    (elections, (members + mongos) as u64)
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push_str("=\"");
            escape_label(out, v);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(&format_float(value));
    out.push('\n');
}

/// Label values escape backslash, double quote and line feed (text format 0.0.4).
fn escape_label(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .map(|l| l[prefix.len()..].trim())
    }

    #[test]
    fn counts_render_as_prometheus_text() {
        let r = Registry::new();
        r.request("DescribeRegions", "OK", Duration::from_micros(300));
        r.request("DescribeRegions", "OK", Duration::from_millis(3));
        r.request("-", "SignatureDoesNotMatch", Duration::from_millis(20));
        r.request("DescribeRegions", "a\"b\\c\nd", Duration::from_secs(60));
        let t = r.render(7);
        assert_eq!(
            line(
                &t,
                "ddsd_requests_total{action=\"DescribeRegions\",code=\"OK\"}"
            ),
            Some("2")
        );
        assert_eq!(
            line(
                &t,
                "ddsd_requests_total{action=\"DescribeRegions\",code=\"a\\\"b\\\\c\\nd\"}"
            ),
            Some("1")
        );
        let bucket = |le: &str| {
            line(
                &t,
                &format!(
                    "ddsd_request_duration_seconds_bucket{{action=\"DescribeRegions\",le=\"{le}\"}}"
                ),
            )
        };
        assert_eq!(bucket("0.0005"), Some("1"));
        assert_eq!(bucket("0.001"), Some("1"));
        assert_eq!(bucket("0.005"), Some("2"));
        assert_eq!(bucket("10"), Some("2"), "60 s is above every bound");
        assert_eq!(bucket("+Inf"), Some("3"));
        assert_eq!(
            line(
                &t,
                "ddsd_request_duration_seconds_count{action=\"DescribeRegions\"}"
            ),
            Some("3")
        );
        let sum: f64 = line(
            &t,
            "ddsd_request_duration_seconds_sum{action=\"DescribeRegions\"}",
        )
        .unwrap()
        .parse()
        .unwrap();
        assert!((sum - 60.0033).abs() < 1e-9, "{sum}");
        assert_eq!(line(&t, "ddsd_nonce_cache_entries "), Some("7"));
        assert!(t.contains("# TYPE ddsd_request_duration_seconds histogram\n"));
    }

    #[test]
    fn operations_count_what_their_reports_say() {
        let r = Registry::new();
        let report = json!({
            "replica_sets": [
                {"elections": 1, "members": [{"restarted": true}, {"restarted": true}, {"restarted": false}]},
                {"elections": 2, "members": [{"restarted": true}]},
            ],
            "mongos": [{"restarted": true}, {"restarted": false}],
        });
        r.operation_finished("upgrade", "succeeded", &report);
        r.operation_finished("create", "succeeded", &json!({"failure": null}));
        r.operation_finished("upgrade", "failed", &json!(null));
        let t = r.render(0);
        assert_eq!(
            line(
                &t,
                "ddsd_operations_finished_total{kind=\"upgrade\",outcome=\"succeeded\"}"
            ),
            Some("1")
        );
        assert_eq!(
            line(
                &t,
                "ddsd_operations_finished_total{kind=\"upgrade\",outcome=\"failed\"}"
            ),
            Some("1")
        );
        assert_eq!(
            line(&t, "ddsd_elections_caused_total{kind=\"upgrade\"}"),
            Some("3")
        );
        assert_eq!(
            line(&t, "ddsd_restarts_caused_total{kind=\"upgrade\"}"),
            Some("4")
        );
        assert_eq!(
            line(&t, "ddsd_restarts_caused_total{kind=\"create\"}"),
            None
        );
    }

    #[test]
    fn series_are_capped() {
        let r = Registry::new();
        for i in 0..MAX_SERIES + 10 {
            r.request("A", &format!("Code{i}"), Duration::ZERO);
        }
        let inner = r.lock();
        assert_eq!(inner.requests.len(), MAX_SERIES + 1);
        assert_eq!(
            inner.requests.get(&("A".to_string(), "other".to_string())),
            Some(&10)
        );
    }

    #[test]
    fn loopback_only_by_default() {
        let a = MetricsAccess::default();
        assert!(a.allows(Some("127.0.0.1".parse().unwrap())));
        assert!(a.allows(Some("::1".parse().unwrap())));
        assert!(a.allows(Some("::ffff:127.0.0.1".parse().unwrap())));
        assert!(!a.allows(Some("10.0.0.1".parse().unwrap())));
        assert!(!a.allows(None));
        assert!(MetricsAccess::Any.allows(Some("10.0.0.1".parse().unwrap())));
        assert!(!MetricsAccess::Off.allows(Some("127.0.0.1".parse().unwrap())));
    }
}
