//! The live progress of an upgrade or restart, as `ddsd upgrade --wait` / `ddsd restart --wait` show it.
//!
//! The input is one operation of `DdsdDescribeOperations` (its `Status` and `Progress`, see
//! docs/operations.md), read as [`OperationProgress`]; [`View::from_operation`] reduces it to what
//! is shown: per replica set (config servers, then each shard, or the instance's one set) members
//! done of total, the member being worked on and the gate it waits for, its elections so far; the
//! same for the mongos; the phase, elections in total and the failure.
//!
//! Two renderers:
//! - [`Bars`] (a terminal): one `indicatif` bar per replica set and one for the mongos under a header line
//!   with the phase, elections, elapsed time and the estimate;
//! - [`Plain`] (anything else: a pipe, a log file, CI): one line per change, prefixed with the elapsed
//!   time, e.g. `[00:12] shard d-bp1…: 1/3 members — d-bp1…-2: post-start gate: lagging 12.0 s > 10.0 s`.

use std::io::Write;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Deserialize;
use serde_json::Value;

/// One replica set's (or the mongos') line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartView {
    /// Stable key (node id), also the label's subject.
    pub key: String,
    pub label: String,
    pub done: u64,
    pub total: u64,
    /// `Pending`, `Active`, `Done`, `Failed`, `Halted`.
    pub status: String,
    /// `<member>: <what it waits for>`.
    pub current: Option<String>,
    pub elections: u64,
}

impl PartView {
    pub fn summary(&self) -> String {
        let mut s = format!("{}/{} ", self.done, self.total);
        s.push_str(match self.status.as_str() {
            "Done" => "done",
            "Failed" => "FAILED",
            "Halted" => "halted (not touched after the failure)",
            "Pending" => "pending",
            _ => "in progress",
        });
        if let Some(c) = &self.current {
            s.push_str(" — ");
            s.push_str(c);
        }
        if self.elections > 0 {
            s.push_str(&format!(
                " ({} election{})",
                self.elections,
                if self.elections == 1 { "" } else { "s" }
            ));
        }
        s
    }
}

/// What is shown of an operation at one poll.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct View {
    /// `Pending`, `Running`, `Succeeded`, `Failed`.
    pub status: String,
    pub phase: String,
    pub parts: Vec<PartView>,
    pub elections: u64,
    pub failure: Option<String>,
    /// Whether the failure names the process it happened at (a preflight failure names none).
    pub failure_located: bool,
}

/// The part of one `DdsdDescribeOperations` operation the progress display reads (docs/operations.md).
/// Workflow enums (`Phase`, `WaitingOn`, `Reason`) stay JSON: they are rendered generically, so a
/// variant the CLI does not know yet still shows.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct OperationProgress {
    pub status: Option<String>,
    pub switch_mode: Option<String>,
    pub progress: Progress,
}

/// `Progress` of an operation.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Progress {
    pub phase: Value,
    pub replica_sets: Vec<ReplicaSetProgress>,
    pub mongos: MongosProgress,
    pub elections: u64,
    pub failure: Option<Failure>,
    pub start_blocked: Option<StartBlocked>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ReplicaSetProgress {
    pub name: String,
    pub node_id: String,
    /// `ConfigServer`, `Shard`, or the instance's own set.
    pub kind: Option<String>,
    pub members_done: u64,
    pub members_total: u64,
    pub status: Option<String>,
    pub current: Option<Work>,
    pub elections: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MongosProgress {
    pub done: u64,
    pub total: u64,
    pub current: Vec<Work>,
}

/// The process being worked on and what it waits for.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Work {
    pub node_id: Option<String>,
    pub waiting_on: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Failure {
    pub node_id: Option<String>,
    pub replica_set: Option<String>,
    pub reason: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct StartBlocked {
    pub message: Option<String>,
}

impl View {
    pub fn from_operation(op: &Value) -> View {
        // A shape the display cannot read shows as an operation with no progress yet.
        let op: OperationProgress = serde_json::from_value(op.clone()).unwrap_or_default();
        let progress = &op.progress;
        let mut parts: Vec<PartView> = progress.replica_sets.iter().map(replica_set_part).collect();
        let mongos = &progress.mongos;
        let total = mongos.total;
        if total > 0 {
            let done = mongos.done;
            let current: Vec<String> = mongos.current.iter().map(current_work).collect();
            // A failing process outside any replica set is a mongos (instance-level failures name none).
            let failed = progress
                .failure
                .as_ref()
                .is_some_and(|f| f.node_id.is_some() && f.replica_set.is_none());
            parts.push(PartView {
                key: "mongos".into(),
                label: "mongos".into(),
                done,
                total,
                status: if failed {
                    "Failed".into()
                } else if done == total {
                    "Done".into()
                } else if current.is_empty() {
                    "Pending".into()
                } else {
                    "Active".into()
                },
                current: (!current.is_empty()).then(|| current.join("; ")),
                elections: 0,
            });
        }
        let mut phase = phase_text(&progress.phase);
        let preflight = progress.phase == "Preflight";
        // A SwitchMode=1 operation that has not started is waiting for the instance's window, possibly for
        // hours; "waiting to start" would read like a stuck operation.
        if preflight && op.switch_mode.as_deref() == Some("1") {
            phase = "waiting for the maintenance window".into();
        }
        // Accepted, in its window if it has one, but the deployment is not settled yet (e.g. an election).
        if let Some(blocked) = progress.start_blocked.as_ref().filter(|_| preflight) {
            phase = format!(
                "waiting to start: {}",
                blocked
                    .message
                    .as_deref()
                    .unwrap_or("the deployment is not settled")
            );
        }
        View {
            status: op.status.clone().unwrap_or_else(|| "Unknown".into()),
            phase,
            parts,
            elections: progress.elections,
            failure: progress.failure.as_ref().map(failure_text),
            failure_located: progress
                .failure
                .as_ref()
                .is_some_and(|f| f.node_id.is_some()),
        }
    }

    /// `FAILED at member …: why`, or `FAILED: why` when no process is to blame (the preflight).
    pub fn failed_text(&self) -> Option<String> {
        let f = self.failure.as_ref()?;
        Some(if self.failure_located {
            format!("FAILED at {f}")
        } else {
            format!("FAILED: {f}")
        })
    }

    pub fn finished(&self) -> bool {
        matches!(self.status.as_str(), "Succeeded" | "Failed")
    }

    pub fn header(&self) -> String {
        let mut s = format!("{} · {}", self.status, self.phase);
        s.push_str(&format!(
            " · {} election{}",
            self.elections,
            if self.elections == 1 { "" } else { "s" }
        ));
        s
    }
}

fn replica_set_part(rs: &ReplicaSetProgress) -> PartView {
    let node = rs.node_id.clone();
    let label = match rs.kind.as_deref() {
        Some("ConfigServer") => format!("config servers {node}"),
        Some("Shard") => format!("shard {node}"),
        _ => format!("replica set {}", rs.name),
    };
    PartView {
        key: node,
        label,
        done: rs.members_done,
        total: rs.members_total,
        status: rs.status.clone().unwrap_or_else(|| "Pending".into()),
        current: rs.current.as_ref().map(current_work),
        elections: rs.elections,
    }
}

fn current_work(c: &Work) -> String {
    let node = c.node_id.as_deref().unwrap_or("?");
    format!("{node}: {}", waiting_text(&c.waiting_on))
}

/// `{"Variant": {fields}}` or `"Variant"` → (variant, fields).
fn variant(v: &Value) -> (String, &Value) {
    match v {
        Value::String(s) => (s.clone(), &Value::Null),
        Value::Object(m) if m.len() == 1 => {
            let (k, inner) = m
                .iter()
                .next()
                .map_or(("", &Value::Null), |(k, v)| (k.as_str(), v));
            (k.to_string(), inner)
        }
        _ => (String::new(), &Value::Null),
    }
}

/// A compact, generic rendering of a serde enum or struct: `Variant (Field: value, …)`.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => a.iter().map(describe).collect::<Vec<_>>().join(", "),
        Value::Object(m) if m.len() == 1 => {
            let (k, inner) = m
                .iter()
                .next()
                .map_or(("", &Value::Null), |(k, v)| (k.as_str(), v));
            match inner {
                Value::Object(f) if f.is_empty() => k.to_string(),
                Value::Null => k.to_string(),
                Value::Object(_) => format!("{k} ({})", describe_fields(inner)),
                other => format!("{k} ({})", describe(other)),
            }
        }
        Value::Object(_) => describe_fields(v),
    }
}

fn describe_fields(v: &Value) -> String {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("{k}: {}", describe(v)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn seconds(ms: &Value) -> String {
    ms.as_u64()
        .map_or_else(|| "?".into(), |ms| format!("{:.1} s", ms as f64 / 1000.0))
}

fn unmet_text(u: &Value) -> String {
    let (name, f) = variant(u);
    match name.as_str() {
        "" => "not yet observed".into(),
        "ProcessDown" => "process down".into(),
        "NotObserved" => "not observed yet".into(),
        "NotRestarted" => "still the old process".into(),
        "StateFromBeforeStart" => "waiting for a heartbeat after the restart".into(),
        "Unhealthy" => "unhealthy as seen from the primary".into(),
        "NoPrimary" => "no primary to measure lag against".into(),
        "NotSteady" => format!("in {}", f["State"].as_str().unwrap_or("?").to_uppercase()),
        "WrongKernel" => format!(
            "running {}",
            f["Observed"].as_str().unwrap_or("another kernel")
        ),
        "Lagging" => format!(
            "lagging {} > {}",
            seconds(&f["LagMs"]),
            seconds(&f["AllowedMs"])
        ),
        _ => describe(u),
    }
}

/// What a member waits for, in words.
pub fn waiting_text(w: &Value) -> String {
    let (name, f) = variant(w);
    match name.as_str() {
        "PreStopGate" => {
            let block = describe(&f["Block"]);
            if block.is_empty() {
                "pre-stop gate".into()
            } else {
                format!("pre-stop gate: {block}")
            }
        }
        "Stop" => "stopping".into(),
        "Start" => "starting".into(),
        "PostStartGate" => format!("post-start gate: {}", unmet_text(&f["Unmet"])),
        "Stability" => "gate holds, stability window".into(),
        "StepDown" => match f["Attempts"].as_u64() {
            Some(n) if n > 1 => format!("stepping down (attempt {n})"),
            _ => "stepping down".into(),
        },
        "NewPrimary" => "waiting for the new primary".into(),
        "AnyPrimary" => "waiting for a primary".into(),
        "Revert" => "reverting to its previous kernel".into(),
        _ => describe(w),
    }
}

fn phase_text(p: &Value) -> String {
    let (name, _) = variant(p);
    match name.as_str() {
        "Preflight" => "waiting to start".into(),
        "StoppingBalancer" => "stopping the balancer".into(),
        "ReplicaSets" => "rolling through the replica sets".into(),
        "Mongos" => "restarting the mongos".into(),
        "RestoringBalancer" => "restoring the balancer".into(),
        "SettingFcv" => "raising the feature compatibility version".into(),
        "Finished" => "finished".into(),
        "" => "starting".into(),
        other => other.to_string(),
    }
}

/// Why a failure happened, in words plus the workflow's own detail.
pub fn reason_text(reason: &Value) -> String {
    let (name, _) = variant(reason);
    let words = match name.as_str() {
        "StartFailed" => "the process failed to start on the new kernel",
        "StartTimeout" => "the process did not come up serving in time",
        "CatchUpTimeout" => "the member never caught up (post-start gate deadline)",
        "StepDownRefused" => "the primary refused to step down (never forced)",
        "NoNewPrimary" => "no new primary was elected after the stepdown",
        "PreStopGateTimeout" => "the replica set was not healthy enough to stop the next member",
        "NoPrimary" => "the replica set had no primary for too long",
        "StopTimeout" => "the process did not stop in time",
        "CommandRejected" => "the data plane refused a command",
        "Preflight" => "the deployment failed the preflight checks",
        "TooManyStepDowns" => "the old primary kept being re-elected",
        "BalancerStopTimeout" => "the balancer did not stop in time",
        "FcvNotRaised" => {
            "the feature compatibility version could not be raised (every process runs the new binary)"
        }
        _ => "",
    };
    let detail = describe(reason);
    if words.is_empty() {
        detail
    } else {
        format!("{words} [{detail}]")
    }
}

fn failure_text(f: &Failure) -> String {
    let reason = reason_text(&f.reason);
    match (f.node_id.as_deref(), f.replica_set.as_deref()) {
        (Some(n), Some(rs)) => format!("member {n} (replica set {rs}): {reason}"),
        (Some(n), None) => format!("{n}: {reason}"),
        _ => reason,
    }
}

/// `mm:ss`, or `h:mm:ss` past an hour.
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    }
}

/// Shown next to the elapsed time: the estimate of the whole operation, when known.
#[derive(Debug, Clone, Copy, Default)]
pub struct Estimate {
    pub total: Option<Duration>,
}

impl Estimate {
    pub fn text(&self, elapsed: Duration) -> String {
        match self.total {
            Some(t) => format!(
                "elapsed {} / estimate ~{}",
                clock(elapsed),
                clock(t.max(Duration::from_secs(1)))
            ),
            None => format!("elapsed {}", clock(elapsed)),
        }
    }
}

/// A progress display.
pub trait Display {
    fn update(&mut self, view: &View, elapsed: Duration);
    /// Called once after the last update.
    fn finish(&mut self);
}

/// One line per change, for anything that is not a terminal.
pub struct Plain<W: Write> {
    out: W,
    last: Option<View>,
    last_lines: std::collections::HashMap<String, String>,
}

impl<W: Write> Plain<W> {
    pub fn new(out: W) -> Self {
        Plain {
            out,
            last: None,
            last_lines: Default::default(),
        }
    }

    /// The lines a new view adds, given what was printed before.
    pub fn changes(&mut self, view: &View) -> Vec<String> {
        let mut lines = Vec::new();
        let mut emit = |key: &str, text: String, lines: &mut Vec<String>| {
            if self.last_lines.get(key) != Some(&text) {
                self.last_lines.insert(key.to_string(), text.clone());
                lines.push(text);
            }
        };
        emit(
            "\u{0}status",
            format!("operation {}: {}", view.status.to_lowercase(), view.phase),
            &mut lines,
        );
        for p in &view.parts {
            emit(&p.key, format!("{}: {}", p.label, p.summary()), &mut lines);
        }
        if let Some(f) = view.failed_text() {
            emit("\u{0}failure", f, &mut lines);
        }
        self.last = Some(view.clone());
        lines
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> Display for Plain<W> {
    fn update(&mut self, view: &View, elapsed: Duration) {
        let stamp = clock(elapsed);
        for line in self.changes(view) {
            let _ = writeln!(self.out, "[{stamp}] {line}");
        }
        let _ = self.out.flush();
    }

    fn finish(&mut self) {
        let _ = self.out.flush();
    }
}

/// `indicatif` bars, for a terminal.
pub struct Bars {
    multi: MultiProgress,
    header: ProgressBar,
    bars: Vec<(String, ProgressBar)>,
    estimate: Estimate,
    title: String,
}

const BAR_TEMPLATE: &str = "{prefix:>34!} [{bar:24.green/white}] {pos}/{len} {wide_msg}";

impl Bars {
    pub fn new(title: String, estimate: Estimate, target: ProgressDrawTarget) -> Bars {
        let multi = MultiProgress::with_draw_target(target);
        let header = multi.add(ProgressBar::new_spinner());
        header.set_style(
            ProgressStyle::with_template("{spinner} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        header.set_message(title.clone());
        Bars {
            multi,
            header,
            bars: Vec::new(),
            estimate,
            title,
        }
    }

    fn bar(&mut self, key: &str, label: &str, total: u64) -> &ProgressBar {
        if let Some(i) = self.bars.iter().position(|(k, _)| k == key) {
            return &self.bars[i].1;
        }
        let bar = self.multi.add(ProgressBar::new(total));
        bar.set_style(
            ProgressStyle::with_template(BAR_TEMPLATE)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        self.bars.push((key.to_string(), bar));
        &self.bars[self.bars.len() - 1].1
    }
}

impl Display for Bars {
    fn update(&mut self, view: &View, elapsed: Duration) {
        self.header.set_message(format!(
            "{} · {} · {}",
            self.title,
            view.header(),
            self.estimate.text(elapsed)
        ));
        self.header.tick();
        for p in &view.parts {
            let bar = self.bar(&p.key, &p.label, p.total).clone();
            bar.set_length(p.total);
            bar.set_position(p.done);
            let mut msg = match p.status.as_str() {
                "Done" => "done".to_string(),
                "Failed" => "FAILED".to_string(),
                "Halted" => "halted".to_string(),
                "Pending" => "pending".to_string(),
                _ => String::new(),
            };
            if let Some(c) = &p.current {
                if !msg.is_empty() {
                    msg.push_str(" · ");
                }
                msg.push_str(c);
            }
            if p.elections > 0 {
                msg.push_str(&format!(" · elections {}", p.elections));
            }
            bar.set_message(msg);
        }
    }

    fn finish(&mut self) {
        for (_, bar) in &self.bars {
            bar.abandon();
        }
        self.header.abandon();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(status: &str, progress: Value) -> Value {
        json!({"Status": status, "Progress": progress})
    }

    fn sharded_progress(done: u64, current: Value, failure: Value) -> Value {
        json!({
            "Kind": {"Upgrade": {"TargetKernel": "k2"}},
            "Phase": "ReplicaSets",
            "ReplicaSets": [
                {"Name": "cs", "NodeId": "cs-1", "Kind": "ConfigServer", "Status": "Done",
                 "MembersDone": 3, "MembersTotal": 3, "Current": null, "Elections": 1},
                {"Name": "d1", "NodeId": "d-1", "Kind": "Shard", "Status": "Active",
                 "MembersDone": done, "MembersTotal": 3, "Current": current, "Elections": 0},
            ],
            "Mongos": {"Done": 0, "Total": 2, "Current": []},
            "Elections": 1,
            "BalancerRecorded": "Full",
            "Failure": failure,
        })
    }

    #[test]
    fn a_deferred_operation_says_it_waits_for_the_maintenance_window() {
        let mut progress = sharded_progress(0, Value::Null, Value::Null);
        progress["Phase"] = json!("Preflight");
        let mut deferred = op("Running", progress.clone());
        deferred["SwitchMode"] = json!("1");
        assert_eq!(
            View::from_operation(&deferred).phase,
            "waiting for the maintenance window"
        );
        let mut now = op("Running", progress.clone());
        now["SwitchMode"] = json!("0");
        assert_eq!(View::from_operation(&now).phase, "waiting to start");
        // In the window, but the deployment has not settled: say what it waits for.
        progress["StartBlocked"] = json!({"SinceMs": 5, "Reason": {"NoPrimary": {"ReplicaSet": "d-1"}},
            "Message": "replica set d-1 has no primary"});
        for mode in ["0", "1"] {
            let mut blocked = op("Running", progress.clone());
            blocked["SwitchMode"] = json!(mode);
            assert_eq!(
                View::from_operation(&blocked).phase,
                "waiting to start: replica set d-1 has no primary"
            );
        }
    }

    #[test]
    fn a_view_shows_each_replica_set_its_member_and_gate() {
        let v = View::from_operation(&op(
            "Running",
            sharded_progress(
                1,
                json!({"NodeId": "d-1-2", "WaitingOn": {"PostStartGate": {"Unmet": {"Lagging": {"LagMs": 12000, "AllowedMs": 10000}}, "StartIssuedMs": 5}}}),
                Value::Null,
            ),
        ));
        assert_eq!(v.parts.len(), 3);
        assert_eq!(v.parts[0].label, "config servers cs-1");
        assert_eq!(v.parts[0].summary(), "3/3 done (1 election)");
        assert_eq!(
            v.parts[1].summary(),
            "1/3 in progress — d-1-2: post-start gate: lagging 12.0 s > 10.0 s"
        );
        assert_eq!(v.parts[2].label, "mongos");
        assert_eq!(v.parts[2].summary(), "0/2 pending");
        assert_eq!(v.elections, 1);
        assert!(!v.finished());
    }

    #[test]
    fn plain_output_prints_one_line_per_change() {
        let mut plain = Plain::new(Vec::new());
        let a = View::from_operation(&op(
            "Running",
            sharded_progress(
                0,
                json!({"NodeId": "d-1-2", "WaitingOn": {"Stop": {"SinceMs": 1}}}),
                Value::Null,
            ),
        ));
        plain.update(&a, Duration::from_secs(3));
        // The same view again prints nothing.
        plain.update(&a, Duration::from_secs(4));
        let b = View::from_operation(&op(
            "Running",
            sharded_progress(
                0,
                json!({"NodeId": "d-1-2", "WaitingOn": {"Start": {"SinceMs": 2}}}),
                Value::Null,
            ),
        ));
        plain.update(&b, Duration::from_secs(65));
        let text = String::from_utf8(plain.into_inner()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "[00:03] operation running: rolling through the replica sets",
                "[00:03] config servers cs-1: 3/3 done (1 election)",
                "[00:03] shard d-1: 0/3 in progress — d-1-2: stopping",
                "[00:03] mongos: 0/2 pending",
                "[01:05] shard d-1: 0/3 in progress — d-1-2: starting",
            ]
        );
    }

    #[test]
    fn a_failure_names_the_member_and_the_reason() {
        let v = View::from_operation(&op(
            "Failed",
            sharded_progress(
                1,
                Value::Null,
                json!({"ReplicaSet": "d1", "NodeId": "d-1-2", "Reason": {"StartFailed": {"Error": {"Other": "crashed"}}}, "AtMs": 9}),
            ),
        ));
        assert!(v.finished());
        assert_eq!(
            v.failure.as_deref(),
            Some("member d-1-2 (replica set d1): the process failed to start on the new kernel [StartFailed (Error: Other (crashed))]")
        );
        let v = View::from_operation(&op(
            "Failed",
            sharded_progress(
                1,
                Value::Null,
                json!({"ReplicaSet": null, "NodeId": null, "Reason": "NoNewPrimary", "AtMs": 9}),
            ),
        ));
        assert_eq!(
            v.failure.as_deref(),
            Some("no new primary was elected after the stepdown [NoNewPrimary]")
        );
    }

    #[test]
    fn a_preflight_failure_names_no_member() {
        let mut progress = sharded_progress(0, Value::Null, Value::Null);
        progress["Phase"] = json!("Finished");
        progress["Failure"] = json!({"ReplicaSet": null, "NodeId": null,
            "Reason": {"Preflight": {"NoPrimary": {"ReplicaSet": "d1"}}}, "AtMs": 9});
        let v = View::from_operation(&op("Failed", progress));
        assert_eq!(
            v.failed_text().as_deref(),
            Some("FAILED: the deployment failed the preflight checks [Preflight (NoPrimary: ReplicaSet (d1))]")
        );
        let located = View::from_operation(&op(
            "Failed",
            sharded_progress(
                1,
                Value::Null,
                json!({"ReplicaSet": "d1", "NodeId": "d-1-2", "Reason": "NoNewPrimary", "AtMs": 9}),
            ),
        ));
        assert_eq!(
            located.failed_text().as_deref(),
            Some("FAILED at member d-1-2 (replica set d1): no new primary was elected after the stepdown [NoNewPrimary]")
        );
    }

    #[test]
    fn gates_read_as_words() {
        for (w, text) in [
            (
                json!({"PreStopGate": {"Block": {"OtherUnhealthy": {"NodeId": "x", "State": "Down", "Healthy": false}}, "SinceMs": 1}}),
                "pre-stop gate: OtherUnhealthy (NodeId: x, State: Down, Healthy: false)",
            ),
            (
                json!({"PostStartGate": {"Unmet": {"NotSteady": {"State": "Startup2"}}, "StartIssuedMs": 1}}),
                "post-start gate: in STARTUP2",
            ),
            (
                json!({"StepDown": {"Attempts": 3, "RetryAtMs": 5}}),
                "stepping down (attempt 3)",
            ),
            (
                json!({"Stability": {"UntilMs": 3}}),
                "gate holds, stability window",
            ),
            (json!("Revert"), "reverting to its previous kernel"),
        ] {
            assert_eq!(waiting_text(&w), text);
        }
        assert_eq!(clock(Duration::from_secs(3725)), "1:02:05");
        assert_eq!(
            Estimate {
                total: Some(Duration::from_secs(90))
            }
            .text(Duration::from_secs(30)),
            "elapsed 00:30 / estimate ~01:30"
        );
    }
}
