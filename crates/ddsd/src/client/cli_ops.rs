//! The operator's subcommands over the rolling operations and the simulation:
//!
//! - `ddsd upgrade <DBInstanceId> [--switch-mode 0|1] [--wait]`: `UpgradeDBInstanceKernelVersion`; with
//!   `--wait`, live progress (see `watch.rs`) until the operation ends. Exit 0 only when the operation
//!   succeeded AND `DescribeDBInstanceAttribute` then reads `Running` on the target kernel.
//! - `ddsd restart <DBInstanceId> [--node-id ID] [--wait]`: `RestartDBInstance`, alike; exit 0 when it
//!   succeeded and the instance is `Running`.
//! - `ddsd plan <DBInstanceId> [--restart [--node-id ID]] [--json]`: the dry run
//!   (`DdsdDescribeUpgradePlan` / `DdsdDescribeRestartPlan`): ordered steps, expected elections, estimated
//!   duration. Nothing changes.
//! - `ddsd watch <DBInstanceId> [--operation-id ID]`: the live progress of `--wait` for an operation already
//!   under way (an upgrade started without `--wait`, by a script, or before ddsd restarted), with the same
//!   exit status; a finished operation is concluded at once.
//! - `ddsd operations <DBInstanceId> [--max-records N] [--json]`: the instance's recent operations
//!   (`DdsdDescribeOperations`), newest first, each with its outcome in one line.
//!
//! (`ddsd fault …` is in `faults.rs`.)
//!
//! Exit status: 0 success; 1 the API refused a call (`Code: Message` + RequestId on stderr); 2 usage,
//! configuration or connection; 3 the operation failed, or ended without the instance `Running` on the
//! expected kernel (the failing member and the reason on stderr); 4 gave up waiting (`--timeout-secs`;
//! the operation itself goes on).

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use serde_json::Value;

use crate::client::cli::{print_json, ClientArgs, ClientFuture, Failure};
use crate::client::watch::{self, Bars, Estimate, Plain, View};
use ddsd_client::{Client, ClientError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// Bars when stdout is a terminal, plain lines otherwise.
    Auto,
    Bars,
    Plain,
}

#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    /// Wait until the operation ends, showing its progress.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub show: ProgressArgs,
}

/// How an operation's progress is followed, by `--wait` and by `ddsd watch`.
#[derive(Debug, Clone, Args)]
pub struct ProgressArgs {
    /// How progress is shown while waiting.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
    /// Poll interval while waiting, ms.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    pub poll_ms: u64,
    /// Stop waiting after this many seconds (exit 4; the operation goes on).
    #[arg(long, default_value_t = 3600)]
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Args)]
pub struct UpgradeArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The instance to upgrade to the newest kernel of its engine version.
    #[arg(value_name = "DBInstanceId")]
    pub db_instance_id: String,
    /// 0: now (default); 1: in the instance's maintenance window.
    #[arg(long, value_parser = ["0", "1"])]
    pub switch_mode: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Clone, Args)]
pub struct EngineUpgradeArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The instance to upgrade to the next major version.
    #[arg(value_name = "DBInstanceId")]
    pub db_instance_id: String,
    /// The target major version (`EngineVersion`): the next one after the instance's, e.g. 4.4.
    #[arg(long)]
    pub engine_version: String,
    /// 0: now (default); 1: in the instance's maintenance window.
    #[arg(long, value_parser = ["0", "1"])]
    pub switch_mode: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Clone, Args)]
pub struct RestartArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[arg(value_name = "DBInstanceId")]
    pub db_instance_id: String,
    /// One shard, the config server or one mongos of a sharded cluster (default: the whole instance).
    #[arg(long)]
    pub node_id: Option<String>,
    /// 0: now (default); 1: in the instance's maintenance window.
    #[arg(long, value_parser = ["0", "1"])]
    pub switch_mode: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Clone, Args)]
pub struct SwitchHaArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[arg(value_name = "DBInstanceId")]
    pub db_instance_id: String,
    /// The shard or config server whose primary switches (required for a sharded cluster).
    #[arg(long)]
    pub node_id: Option<String>,
    /// Comma-separated member node ids to switch between (`RoleIds`; default: any caught-up
    /// electable secondary).
    #[arg(long)]
    pub role_ids: Option<String>,
    /// 0: now (default); 1: in the instance's maintenance window.
    #[arg(long, value_parser = ["0", "1"])]
    pub switch_mode: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ModifySpecArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[arg(value_name = "DBInstanceId")]
    pub db_instance_id: String,
    /// One shard, the config server or one mongos of a sharded cluster (`ModifyNodeSpec`; default:
    /// the replica-set instance, `ModifyDBInstanceSpec`).
    #[arg(long)]
    pub node_id: Option<String>,
    /// The new class (`DBInstanceClass` / `NodeClass`).
    #[arg(long)]
    pub class: Option<String>,
    /// The new storage in GB (`DBInstanceStorage` / `NodeStorage`; never smaller than now).
    #[arg(long)]
    pub storage: Option<u32>,
    /// `Immediately` (default) or `MaintainTime` (in the instance's maintenance window).
    #[arg(long, value_parser = ["Immediately", "MaintainTime"])]
    pub effective_time: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[arg(value_name = "DBInstanceId")]
    pub db_instance_id: String,
    /// The operation to follow (default: the instance's newest; `ddsd operations` lists them).
    #[arg(long)]
    pub operation_id: Option<String>,
    #[command(flatten)]
    pub show: ProgressArgs,
}

#[derive(Debug, Clone, Args)]
pub struct OperationsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[arg(value_name = "DBInstanceId")]
    pub db_instance_id: String,
    /// How many of the newest operations to list.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_records: u32,
    /// Print the API response as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[arg(value_name = "DBInstanceId")]
    pub db_instance_id: String,
    /// Plan a rolling restart instead of an upgrade.
    #[arg(long)]
    pub restart: bool,
    /// With --restart: one shard, the config server or one mongos.
    #[arg(long, requires = "restart")]
    pub node_id: Option<String>,
    /// Print the API response as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// `1h 02m 05s` / `6m 40s` / `12s` / `<1s`.
pub fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        return "<1s".into();
    }
    let s = d.as_secs();
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m {s:02}s"),
        (h, m, s) => format!("{h}h {m:02}m {s:02}s"),
    }
}

/// The id of the instance's newest operation, if any.
async fn newest_operation(client: &Client, id: &str) -> Result<Option<String>, ClientError> {
    let v = client
        .call(
            "DdsdDescribeOperations",
            &[("DBInstanceId", id), ("MaxRecords", "1")],
        )
        .await?;
    Ok(v["Operations"]["Operation"][0]["OperationId"]
        .as_str()
        .map(str::to_string))
}

/// How long polling tolerates an unreachable server (ddsd restarting) before giving up.
const UNREACHABLE_GRACE: Duration = Duration::from_secs(60);

/// Finds the operation recorded after `before` and shows its progress until it ends; returns it.
async fn follow(
    client: &Client,
    id: &str,
    before: Option<String>,
    title: String,
    estimate: Estimate,
    wait: &ProgressArgs,
) -> Result<Value, Failure> {
    let started = Instant::now();
    let op_id = loop {
        match newest_operation(client, id).await? {
            Some(op) if Some(&op) != before.as_ref() => break op,
            _ if started.elapsed() > Duration::from_secs(30) => {
                return Err(
                    anyhow::anyhow!("the accepted operation of {id} does not show up").into(),
                )
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    show(client, id, &op_id, title, estimate, wait, started).await
}

/// Shows the progress of operation `op_id` until it ends (at once when it already has); returns it.
async fn show(
    client: &Client,
    id: &str,
    op_id: &str,
    title: String,
    estimate: Estimate,
    wait: &ProgressArgs,
    started: Instant,
) -> Result<Value, Failure> {
    let deadline = started + Duration::from_secs(wait.timeout_secs);
    let poll = Duration::from_millis(wait.poll_ms);
    let bars = match wait.progress {
        ProgressMode::Bars => true,
        ProgressMode::Plain => false,
        ProgressMode::Auto => std::io::stdout().is_terminal(),
    };
    let mut display: Box<dyn watch::Display> = if bars {
        Box::new(Bars::new(
            title,
            estimate,
            indicatif::ProgressDrawTarget::stdout(),
        ))
    } else {
        println!("{title} ({})", estimate.text(Duration::ZERO));
        Box::new(Plain::new(std::io::stdout()))
    };
    let mut last_ok = Instant::now();
    loop {
        match client
            .call(
                "DdsdDescribeOperations",
                &[("DBInstanceId", id), ("OperationId", op_id)],
            )
            .await
        {
            Ok(v) => {
                last_ok = Instant::now();
                let op = &v["Operations"]["Operation"][0];
                let view = View::from_operation(op);
                display.update(&view, started.elapsed());
                if view.finished() {
                    display.finish();
                    return Ok(op.clone());
                }
            }
            // ddsd restarting (it resumes the operation): keep polling for a while.
            Err(ClientError::Transport(e)) if last_ok.elapsed() < UNREACHABLE_GRACE => {
                tracing::debug!("poll failed: {e}");
            }
            Err(e) => {
                display.finish();
                return Err(e.into());
            }
        }
        if Instant::now() > deadline {
            display.finish();
            return Err(Failure::Timeout(format!(
                "gave up waiting after {} s; operation {op_id} of {id} goes on",
                wait.timeout_secs
            )));
        }
        tokio::time::sleep(poll).await;
    }
}

/// `(status, CurrentKernelVersion)` of the instance now.
async fn instance_state(client: &Client, id: &str) -> Result<(String, String), ClientError> {
    let a = client
        .call("DescribeDBInstanceAttribute", &[("DBInstanceId", id)])
        .await?;
    let i = &a["DBInstances"]["DBInstance"][0];
    Ok((
        i["DBInstanceStatus"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        i["CurrentKernelVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    ))
}

/// Restarts, elections and commands a finished operation reports.
fn report_summary(op: &Value) -> String {
    let r = &op["Report"];
    let sets = r["ReplicaSets"].as_array().cloned().unwrap_or_default();
    let elections: u64 = sets.iter().filter_map(|s| s["Elections"].as_u64()).sum();
    let processes: Vec<&Value> = sets
        .iter()
        .filter_map(|s| s["Members"].as_array())
        .flatten()
        .chain(r["Mongos"].as_array().into_iter().flatten())
        .collect();
    let restarted = processes
        .iter()
        .filter(|p| p["Restarted"].as_bool() == Some(true))
        .count();
    // The failing process is not "restarted" (it never served the target), yet it was stopped and
    // started: say what became of it, which the failure line alone does not.
    let failed: String = processes
        .iter()
        .filter(|p| p["Failed"].as_bool() == Some(true))
        .map(|p| format!(" ({})", failed_process_text(p)))
        .collect();
    let commands = r["CommandsExecuted"].as_u64().unwrap_or(0);
    let simulated = r["DurationMs"].as_u64().unwrap_or(0);
    format!(
        "{restarted} process{} restarted{failed}, {elections} election{}, {commands} commands executed, {} of plane time",
        if restarted == 1 { "" } else { "es" },
        if elections == 1 { "" } else { "s" },
        human(Duration::from_millis(simulated))
    )
}

/// `<node> failed, reverted to <kernel>` and the like, from a report's process entry.
fn failed_process_text(p: &Value) -> String {
    let node = p["NodeId"].as_str().unwrap_or("?");
    let revert = &p["Revert"];
    let field = |variant: &str, key: &str| revert[variant][key].as_str().map(str::to_string);
    if let Some(kernel) = field("Reverted", "Kernel") {
        format!("{node} failed, reverted to {kernel}")
    } else if let Some(why) = field("Failed", "Reason") {
        format!("{node} failed, its revert failed: {why}")
    } else if let Some(why) = field("Skipped", "Reason") {
        format!("{node} failed, not reverted: {why}")
    } else {
        format!("{node} failed")
    }
}

fn estimate_of(plan: &Option<Value>) -> Estimate {
    Estimate {
        total: plan
            .as_ref()
            .and_then(|p| {
                p["EstimatedWallMs"]
                    .as_u64()
                    .or(p["EstimatedDurationMs"].as_u64())
            })
            .map(Duration::from_millis),
    }
}

/// Ends a waited-for operation: success only if it succeeded and `check` accepts the instance's state.
async fn conclude(
    client: &Client,
    id: &str,
    what: &str,
    op: &Value,
    elapsed: Duration,
    expect_kernel: Option<&str>,
) -> Result<(), Failure> {
    let (status, kernel) = instance_state(client, id).await?;
    let elapsed = watch::clock(elapsed);
    if op["Status"] != "Succeeded" {
        let view = View::from_operation(op);
        let failure = view
            .failed_text()
            .unwrap_or_else(|| "FAILED: the operation failed without a recorded reason".into());
        for w in op["Report"]["Warnings"].as_array().into_iter().flatten() {
            eprintln!("warning: {}", w.as_str().unwrap_or_default());
        }
        return Err(Failure::Operation(format!(
            "{what} of {id} {failure}\n{id} is {status} on {kernel} (after {elapsed}); {}",
            report_summary(op)
        )));
    }
    let on_target = expect_kernel.is_none_or(|k| k == kernel);
    if status != "Running" || !on_target {
        return Err(Failure::Operation(format!(
            "{what} of {id} reported success but the instance is {status} on {kernel}{}",
            expect_kernel
                .map(|k| format!(", expected Running on {k}"))
                .unwrap_or_default()
        )));
    }
    println!(
        "{id} is Running on {kernel} after {elapsed}: {}",
        report_summary(op)
    );
    Ok(())
}

pub fn upgrade(args: UpgradeArgs) -> ClientFuture {
    Box::pin(async move {
        let client = args.client.client()?;
        let id = args.db_instance_id.as_str();
        let started = Instant::now();
        let before = newest_operation(&client, id).await?;
        // Only for the estimate and the target's name; the real call below gives the real refusal.
        let plan = client
            .call("DdsdDescribeUpgradePlan", &[("DBInstanceId", id)])
            .await
            .ok();
        let mut params = vec![("DBInstanceId", id)];
        if let Some(m) = &args.switch_mode {
            params.push(("SwitchMode", m.as_str()));
        }
        let resp = client
            .call("UpgradeDBInstanceKernelVersion", &params)
            .await?;
        let target = plan
            .as_ref()
            .and_then(|p| p["TargetKernelVersion"].as_str())
            .map(str::to_string);
        println!(
            "{id}: upgrade to {} accepted (RequestId {})",
            target.as_deref().unwrap_or("the newest kernel"),
            resp["RequestId"].as_str().unwrap_or("?")
        );
        if !args.wait.wait {
            return Ok(());
        }
        let title = upgrade_title(id, target.as_deref());
        let op = follow(
            &client,
            id,
            before,
            title,
            estimate_of(&plan),
            &args.wait.show,
        )
        .await?;
        let target = op["TargetKernelVersion"]
            .as_str()
            .map(str::to_string)
            .or(target);
        conclude(
            &client,
            id,
            "upgrade",
            &op,
            started.elapsed(),
            target.as_deref(),
        )
        .await
    })
}

/// `ddsd engine-upgrade`: `UpgradeDBInstanceEngineVersion`, and with `--wait` the progress of the
/// rolling binary change and the feature compatibility version step, then the outcome with the
/// instance's new kernel.
pub fn engine_upgrade(args: EngineUpgradeArgs) -> ClientFuture {
    Box::pin(async move {
        let client = args.client.client()?;
        let id = args.db_instance_id.as_str();
        let started = Instant::now();
        let before = newest_operation(&client, id).await?;
        let mut params = vec![
            ("DBInstanceId", id),
            ("EngineVersion", args.engine_version.as_str()),
        ];
        if let Some(m) = &args.switch_mode {
            params.push(("SwitchMode", m.as_str()));
        }
        let resp = client
            .call("UpgradeDBInstanceEngineVersion", &params)
            .await?;
        println!(
            "{id}: major version upgrade to {} accepted (RequestId {})",
            args.engine_version,
            resp["RequestId"].as_str().unwrap_or("?")
        );
        if !args.wait.wait {
            return Ok(());
        }
        let op = follow(
            &client,
            id,
            before,
            engine_upgrade_title(id, &args.engine_version),
            Estimate { total: None },
            &args.wait.show,
        )
        .await?;
        if let Some(raised) = op["FeatureCompatibilityVersion"]["RaisedMs"].as_u64() {
            println!(
                "{id}: featureCompatibilityVersion raised to {} (plane time {raised} ms), after every process ran the new binary",
                args.engine_version
            );
        }
        let target = op["TargetKernelVersion"].as_str().map(str::to_string);
        conclude(
            &client,
            id,
            "major version upgrade",
            &op,
            started.elapsed(),
            target.as_deref(),
        )
        .await
    })
}

/// The progress title of a major version upgrade of `id`.
fn engine_upgrade_title(id: &str, engine_version: &str) -> String {
    format!("Upgrading {id} to MongoDB {engine_version}")
}

pub fn restart(args: RestartArgs) -> ClientFuture {
    Box::pin(async move {
        let client = args.client.client()?;
        let id = args.db_instance_id.as_str();
        let started = Instant::now();
        let before = newest_operation(&client, id).await?;
        let mut params = vec![("DBInstanceId", id)];
        if let Some(n) = &args.node_id {
            params.push(("NodeId", n.as_str()));
        }
        let plan = client.call("DdsdDescribeRestartPlan", &params).await.ok();
        if let Some(m) = &args.switch_mode {
            params.push(("SwitchMode", m.as_str()));
        }
        let resp = client.call("RestartDBInstance", &params).await?;
        let scope = restart_scope(id, args.node_id.as_deref());
        println!(
            "{scope}: rolling restart accepted (RequestId {})",
            resp["RequestId"].as_str().unwrap_or("?")
        );
        if !args.wait.wait {
            return Ok(());
        }
        let op = follow(
            &client,
            id,
            before,
            format!("Restarting {scope}"),
            estimate_of(&plan),
            &args.wait.show,
        )
        .await?;
        conclude(&client, id, "restart", &op, started.elapsed(), None).await
    })
}

/// `ddsd switch-ha`: `SwitchDBInstanceHA`, and with `--wait` the progress of the switch, then the
/// primary before and after (from the switch's report).
pub fn switch_ha(args: SwitchHaArgs) -> ClientFuture {
    Box::pin(async move {
        let client = args.client.client()?;
        let id = args.db_instance_id.as_str();
        let started = Instant::now();
        let before = newest_operation(&client, id).await?;
        let mut params = vec![("DBInstanceId", id)];
        if let Some(n) = &args.node_id {
            params.push(("NodeId", n.as_str()));
        }
        if let Some(r) = &args.role_ids {
            params.push(("RoleIds", r.as_str()));
        }
        if let Some(m) = &args.switch_mode {
            params.push(("SwitchMode", m.as_str()));
        }
        let resp = client.call("SwitchDBInstanceHA", &params).await?;
        let scope = restart_scope(id, args.node_id.as_deref());
        println!(
            "{scope}: primary switch accepted (RequestId {})",
            resp["RequestId"].as_str().unwrap_or("?")
        );
        if !args.wait.wait {
            return Ok(());
        }
        let op = follow(
            &client,
            id,
            before,
            format!("Switching the primary of {scope}"),
            Estimate { total: None },
            &args.wait.show,
        )
        .await?;
        for rs in op["Report"]["ReplicaSets"].as_array().into_iter().flatten() {
            for e in rs["ElectionLog"].as_array().into_iter().flatten() {
                if let Some(p) = e["NewPrimary"].as_str() {
                    println!("{}: new primary {p}", rs["Name"].as_str().unwrap_or("?"));
                }
            }
        }
        conclude(&client, id, "primary switch", &op, started.elapsed(), None).await
    })
}

/// `ddsd modify-spec`: `ModifyDBInstanceSpec`, or `ModifyNodeSpec` with `--node-id`, and with `--wait`
/// the progress of the rolling restart onto the new class.
pub fn modify_spec(args: ModifySpecArgs) -> ClientFuture {
    Box::pin(async move {
        let client = args.client.client()?;
        let id = args.db_instance_id.as_str();
        let started = Instant::now();
        let before = newest_operation(&client, id).await?;
        let storage = args.storage.map(|s| s.to_string());
        let (action, class_param, storage_param) = match &args.node_id {
            Some(_) => ("ModifyNodeSpec", "NodeClass", "NodeStorage"),
            None => (
                "ModifyDBInstanceSpec",
                "DBInstanceClass",
                "DBInstanceStorage",
            ),
        };
        let mut params = vec![("DBInstanceId", id)];
        if let Some(n) = &args.node_id {
            params.push(("NodeId", n.as_str()));
        }
        if let Some(c) = &args.class {
            params.push((class_param, c.as_str()));
        }
        if let Some(s) = &storage {
            params.push((storage_param, s.as_str()));
        }
        if let Some(e) = &args.effective_time {
            params.push(("EffectiveTime", e.as_str()));
        }
        let resp = client.call(action, &params).await?;
        let scope = restart_scope(id, args.node_id.as_deref());
        println!(
            "{scope}: class change accepted (OrderId {}, RequestId {})",
            resp["OrderId"].as_str().unwrap_or("?"),
            resp["RequestId"].as_str().unwrap_or("?")
        );
        if !args.wait.wait {
            return Ok(());
        }
        let op = follow(
            &client,
            id,
            before,
            format!("Changing the class of {scope}"),
            Estimate { total: None },
            &args.wait.show,
        )
        .await?;
        conclude(&client, id, "class change", &op, started.elapsed(), None).await
    })
}

/// Seconds between two of the API's `yyyy-MM-ddTHH:mm:ssZ` times, when both read.
fn wall_span(from: &Value, until: &Value) -> Option<Duration> {
    let at = |v: &Value| {
        time::OffsetDateTime::parse(v.as_str()?, &time::format_description::well_known::Rfc3339)
            .ok()
    };
    let secs = (at(until)? - at(from)?).whole_seconds();
    u64::try_from(secs).ok().map(Duration::from_secs)
}

/// The progress title of an upgrade of `id`.
fn upgrade_title(id: &str, target: Option<&str>) -> String {
    format!(
        "Upgrading {id} to {}",
        target.unwrap_or("the newest kernel")
    )
}

/// What a restart of `id` covers: the instance, or `<node> of <id>`.
fn restart_scope(id: &str, node_id: Option<&str>) -> String {
    node_id.map_or_else(|| id.to_string(), |n| format!("{n} of {id}"))
}

/// Whether an operation (as `DdsdDescribeOperations` lists it) is an upgrade or a restart, the
/// rolling operations `watch` follows and `operations` details.
fn is_rolling(op: &Value) -> bool {
    matches!(
        op["Action"].as_str(),
        Some(
            "UpgradeDBInstanceKernelVersion"
                | "UpgradeDBInstanceEngineVersion"
                | "RestartDBInstance"
                | "RestartNode"
                | "SwitchDBInstanceHA"
                | "ModifyDBInstanceSpec"
                | "ModifyNodeSpec"
        )
    )
}

/// What `watch` and `--wait` call the operation: (`upgrade`/`restart`, the progress title, the kernel
/// the instance must end on).
fn operation_title(id: &str, op: &Value) -> (&'static str, String, Option<String>) {
    if op["Action"] == "UpgradeDBInstanceKernelVersion" {
        let target = op["TargetKernelVersion"].as_str().map(str::to_string);
        ("upgrade", upgrade_title(id, target.as_deref()), target)
    } else if op["Action"] == "UpgradeDBInstanceEngineVersion" {
        let target = op["TargetKernelVersion"].as_str().map(str::to_string);
        let engine = op["TargetEngineVersion"]
            .as_str()
            .unwrap_or("the next major");
        (
            "major version upgrade",
            engine_upgrade_title(id, engine),
            target,
        )
    } else if op["Action"] == "SwitchDBInstanceHA" {
        let scope = restart_scope(id, op["NodeId"].as_str());
        (
            "primary switch",
            format!("Switching the primary of {scope}"),
            None,
        )
    } else if matches!(
        op["Action"].as_str(),
        Some("ModifyDBInstanceSpec" | "ModifyNodeSpec")
    ) {
        let scope = restart_scope(id, op["NodeId"].as_str());
        (
            "class change",
            format!("Changing the class of {scope}"),
            None,
        )
    } else {
        let scope = restart_scope(id, op["NodeId"].as_str());
        ("restart", format!("Restarting {scope}"), None)
    }
}

pub fn watch(args: WatchArgs) -> ClientFuture {
    Box::pin(async move {
        let client = args.client.client()?;
        let id = args.db_instance_id.as_str();
        let started = Instant::now();
        let op_id = match args.operation_id {
            Some(op) => op,
            None => newest_operation(&client, id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("{id} has no operation to watch"))?,
        };
        let first = client
            .call(
                "DdsdDescribeOperations",
                &[("DBInstanceId", id), ("OperationId", &op_id)],
            )
            .await?;
        let first = &first["Operations"]["Operation"][0];
        if !is_rolling(first) {
            let action = first["Action"].as_str().unwrap_or_default();
            return Err(anyhow::anyhow!(
                "operation {op_id} of {id} is a {action}; watch follows upgrades and restarts"
            )
            .into());
        }
        let (what, title, target) = operation_title(id, first);
        let op = show(
            &client,
            id,
            &op_id,
            title,
            Estimate { total: None },
            &args.show,
            started,
        )
        .await?;
        // The operation's own duration: it may have run long before anyone watched it.
        let elapsed =
            wall_span(&op["CreateTime"], &op["FinishTime"]).unwrap_or_else(|| started.elapsed());
        conclude(&client, id, what, &op, elapsed, target.as_deref()).await
    })
}

/// One line of `ddsd operations`: the outcome of an upgrade or restart, or where a running one is.
fn operation_detail(id: &str, op: &Value) -> String {
    if !is_rolling(op) {
        return String::new();
    }
    let view = View::from_operation(op);
    match view.status.as_str() {
        "Succeeded" if op["Report"].is_object() => {
            let (_, title, _) = operation_title(id, op);
            format!("{title}: {}", report_summary(op))
        }
        "Failed" => view
            .failed_text()
            .unwrap_or_else(|| "FAILED without a recorded reason".into()),
        _ if op["Progress"].is_object() => view.header(),
        _ => String::new(),
    }
}

pub fn operations(args: OperationsArgs) -> ClientFuture {
    Box::pin(async move {
        let client = args.client.client()?;
        let id = args.db_instance_id.as_str();
        let max = args.max_records.to_string();
        let v = client
            .call(
                "DdsdDescribeOperations",
                &[("DBInstanceId", id), ("MaxRecords", &max)],
            )
            .await?;
        if args.json {
            print_json(&v);
            return Ok(());
        }
        let ops = v["Operations"]["Operation"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if ops.is_empty() {
            println!("{id} has no operations");
            return Ok(());
        }
        let field = |op: &Value, k: &str| op[k].as_str().unwrap_or("-").to_string();
        let rows: Vec<[String; 6]> = ops
            .iter()
            .map(|op| {
                [
                    field(op, "OperationId"),
                    field(op, "Action"),
                    field(op, "Status"),
                    field(op, "CreateTime"),
                    field(op, "FinishTime"),
                    operation_detail(id, op),
                ]
            })
            .collect();
        let header = [
            "OPERATION",
            "ACTION",
            "STATUS",
            "CREATED",
            "FINISHED",
            "DETAIL",
        ];
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: [&str; 6]| {
            let mut out = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    out.push_str(cell);
                } else {
                    out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
                }
            }
            out.trim_end().to_string()
        };
        println!("{}", line(header));
        for row in &rows {
            println!("{}", line(row.each_ref().map(String::as_str)));
        }
        Ok(())
    })
}

/// The plan as a table; the last lines state the totals tests and users read.
pub fn plan_text(v: &Value, restart: bool) -> String {
    let mut out = String::new();
    let id = v["DBInstanceId"].as_str().unwrap_or("?");
    let current = v["CurrentKernelVersion"].as_str().unwrap_or("?");
    if restart {
        out.push_str(&format!("Rolling restart plan for {id} (on {current})\n"));
    } else {
        out.push_str(&format!(
            "Upgrade plan for {id}: {current} -> {}\n",
            v["TargetKernelVersion"].as_str().unwrap_or("?")
        ));
    }
    let steps = v["Steps"]["Step"].as_array().cloned().unwrap_or_default();
    for s in &steps {
        let mut line = format!(
            "{:>4}. {:<13}",
            s["Index"].as_u64().unwrap_or(0),
            s["Command"].as_str().unwrap_or("?")
        );
        if let Some(n) = s["NodeId"].as_str() {
            line.push_str(&format!(" {n}"));
        }
        if let Some(rs) = s["ReplicaSet"].as_str() {
            line.push_str(&format!("  (replica set {rs})"));
        }
        if let Some(k) = s["KernelVersion"].as_str() {
            line.push_str(&format!("  on {k}"));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let per_set: Vec<String> = v["ReplicaSets"]["ReplicaSet"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            format!(
                "{}: {}",
                r["NodeId"].as_str().or(r["Name"].as_str()).unwrap_or("?"),
                r["ExpectedElections"].as_u64().unwrap_or(0)
            )
        })
        .collect();
    let elections = v["ExpectedElections"].as_u64().unwrap_or(0);
    // A plan that touches no replica set (one mongos) has no per-set breakdown to show.
    let breakdown = if per_set.is_empty() {
        String::new()
    } else {
        format!(" ({})", per_set.join(", "))
    };
    out.push_str(&format!(
        "{} steps, {elections} expected election{}{breakdown}\n",
        steps.len(),
        if elections == 1 { "" } else { "s" },
    ));
    let plane = Duration::from_millis(v["EstimatedDurationMs"].as_u64().unwrap_or(0));
    match (v["EstimatedWallMs"].as_u64(), v["SimSpeed"].as_f64()) {
        (Some(wall), Some(speed)) if (speed - 1.0).abs() > f64::EPSILON => out.push_str(&format!(
            "estimated duration: {} of simulated time, about {} at sim speed {speed}\n",
            human(plane),
            human(Duration::from_millis(wall))
        )),
        _ => out.push_str(&format!("estimated duration: {}\n", human(plane))),
    }
    out.push_str("Dry run: nothing was changed.\n");
    out
}

pub fn plan(args: PlanArgs) -> ClientFuture {
    Box::pin(async move {
        let client = args.client.client()?;
        let id = args.db_instance_id.as_str();
        let mut params = vec![("DBInstanceId", id)];
        if let Some(n) = &args.node_id {
            params.push(("NodeId", n.as_str()));
        }
        let action = if args.restart {
            "DdsdDescribeRestartPlan"
        } else {
            "DdsdDescribeUpgradePlan"
        };
        let v = client.call(action, &params).await?;
        if args.json {
            print_json(&v);
        } else {
            print!("{}", plan_text(&v, args.restart));
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_plan_table_ends_with_its_totals() {
        let v = json!({
            "DBInstanceId": "dds-1", "CurrentKernelVersion": "k1", "TargetKernelVersion": "k2",
            "Steps": {"Step": [
                {"Index": 1, "Command": "StopMember", "ReplicaSet": "rs", "NodeId": "n-1"},
                {"Index": 2, "Command": "StartMember", "ReplicaSet": "rs", "NodeId": "n-1", "KernelVersion": "k2"},
                {"Index": 3, "Command": "StepDown", "ReplicaSet": "rs", "NodeId": "n-0"},
            ]},
            "StepCount": 3, "ExpectedElections": 1,
            "ReplicaSets": {"ReplicaSet": [{"Name": "rs", "NodeId": "dds-1", "ExpectedElections": 1}]},
            "EstimatedDurationMs": 400_000, "SimSpeed": 20.0, "EstimatedWallMs": 20_000,
        });
        let text = plan_text(&v, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Upgrade plan for dds-1: k1 -> k2");
        assert_eq!(lines[2], "   2. StartMember   n-1  (replica set rs)  on k2");
        assert_eq!(lines[4], "3 steps, 1 expected election (dds-1: 1)");
        assert_eq!(
            lines[5],
            "estimated duration: 6m 40s of simulated time, about 20s at sim speed 20"
        );
        assert_eq!(lines[6], "Dry run: nothing was changed.");
    }

    #[test]
    fn a_mongos_only_plan_has_no_per_set_breakdown() {
        let v = json!({
            "DBInstanceId": "dds-1", "CurrentKernelVersion": "k1", "NodeId": "s-1",
            "Steps": {"Step": [
                {"Index": 1, "Command": "StopMongos", "NodeId": "s-1"},
                {"Index": 2, "Command": "StartMongos", "NodeId": "s-1", "KernelVersion": "k1"},
            ]},
            "StepCount": 2, "ExpectedElections": 0, "ReplicaSets": {"ReplicaSet": []},
            "EstimatedDurationMs": 11_000,
        });
        let text = plan_text(&v, true);
        assert!(
            text.lines().any(|l| l == "2 steps, 0 expected elections"),
            "{text}"
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human(Duration::from_millis(685)), "<1s");
        assert_eq!(human(Duration::from_secs(7)), "7s");
        assert_eq!(human(Duration::from_secs(400)), "6m 40s");
        assert_eq!(human(Duration::from_secs(3725)), "1h 02m 05s");
    }

    #[test]
    fn reports_summarise_restarts_elections_and_commands() {
        let op = json!({"Report": {
            "ReplicaSets": [{"Elections": 1, "Members": [{"Restarted": true}, {"Restarted": true}, {"Restarted": false}]}],
            "Mongos": [{"Restarted": true}],
            "CommandsExecuted": 9, "DurationMs": 61_000,
        }});
        assert_eq!(
            report_summary(&op),
            "3 processes restarted, 1 election, 9 commands executed, 1m 01s of plane time"
        );
    }
}
