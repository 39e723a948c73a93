//! `ddsd fault arm|list|clear <DBInstanceId> …`: `DdsdArmFault` / `DdsdDescribeFaults` /
//! `DdsdClearFaults`, faults on demand in the simulated data plane (admin key).

use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;

use crate::client::cli::{ClientArgs, ClientFuture};

#[derive(Debug, Subcommand)]
pub enum FaultCommand {
    /// Arm a fault on a simulated instance (admin key).
    Arm(FaultArmArgs),
    /// List the faults armed on an instance.
    List(FaultTargetArgs),
    /// Disarm every fault of an instance.
    Clear(FaultTargetArgs),
}

/// The simulation's faults, as `DdsdArmFault`'s `FaultType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FaultKind {
    /// The member's next start on a new kernel fails (crash loop). Needs --node.
    StartFails,
    /// After its next start the member never catches up. Needs --node.
    NeverCatchesUp,
    /// After its next start the member stays in --state. Needs --node.
    StuckInState,
    /// Every start of the member takes --extra-secs longer. Needs --node.
    SlowStart,
    /// The member crashes after --delay-secs (recovers after --recover-after-secs, else stays down).
    Crash,
    /// The replica set of --node refuses stepdowns (for --duration-secs, else until cleared).
    StepdownRefused,
    /// After a stepdown nobody else can be elected (for --duration-secs, else until cleared).
    NoNewPrimary,
    /// The primary of --node's replica set steps down on its own after --delay-secs.
    PrimaryChange,
    /// The replica set's oplog window becomes --window-secs.
    OplogWindow,
    /// The mongos --node fails to start on a new kernel.
    MongosStartFails,
    /// A balancer round runs for --duration-secs.
    BalancerRound,
}

impl FaultKind {
    pub fn wire(self) -> &'static str {
        match self {
            FaultKind::StartFails => "StartFails",
            FaultKind::NeverCatchesUp => "NeverCatchesUp",
            FaultKind::StuckInState => "StuckInState",
            FaultKind::SlowStart => "SlowStart",
            FaultKind::Crash => "Crash",
            FaultKind::StepdownRefused => "StepDownRefused",
            FaultKind::NoNewPrimary => "NoNewPrimary",
            FaultKind::PrimaryChange => "PrimaryChange",
            FaultKind::OplogWindow => "OplogWindow",
            FaultKind::MongosStartFails => "MongosStartFails",
            FaultKind::BalancerRound => "BalancerRound",
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct FaultArmArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[arg(value_name = "DBInstanceId")]
    pub db_instance_id: String,
    #[arg(value_enum)]
    pub fault: FaultKind,
    /// The member, replica set (node id or name) or mongos the fault applies to.
    #[arg(long)]
    pub node: Option<String>,
    /// Simulated seconds the fault lasts.
    #[arg(long)]
    pub duration_secs: Option<u32>,
    /// Simulated seconds before a timed fault fires.
    #[arg(long)]
    pub delay_secs: Option<u32>,
    #[arg(long)]
    pub recover_after_secs: Option<u32>,
    #[arg(long)]
    pub extra_secs: Option<u32>,
    #[arg(long)]
    pub window_secs: Option<u32>,
    /// STARTUP2 or RECOVERING (stuck-in-state).
    #[arg(long)]
    pub state: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct FaultTargetArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[arg(value_name = "DBInstanceId")]
    pub db_instance_id: String,
}

pub fn fault(cmd: FaultCommand) -> ClientFuture {
    Box::pin(async move {
        match cmd {
            FaultCommand::Arm(a) => {
                let client = a.client.client()?;
                let mut p: Vec<(&str, String)> = vec![
                    ("DBInstanceId", a.db_instance_id.clone()),
                    ("FaultType", a.fault.wire().to_string()),
                ];
                let mut opt = |k: &'static str, v: Option<String>| {
                    if let Some(v) = v {
                        p.push((k, v));
                    }
                };
                opt("NodeId", a.node.clone());
                opt("DurationSeconds", a.duration_secs.map(|v| v.to_string()));
                opt("DelaySeconds", a.delay_secs.map(|v| v.to_string()));
                opt(
                    "RecoverAfterSeconds",
                    a.recover_after_secs.map(|v| v.to_string()),
                );
                opt("ExtraSeconds", a.extra_secs.map(|v| v.to_string()));
                opt("WindowSeconds", a.window_secs.map(|v| v.to_string()));
                opt("State", a.state.clone().map(|s| s.to_uppercase()));
                let borrowed: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let v = client.call("DdsdArmFault", &borrowed).await?;
                println!("armed on {}: {}", a.db_instance_id, fault_line(&v["Fault"]));
            }
            FaultCommand::List(a) => {
                let client = a.client.client()?;
                let v = client
                    .call("DdsdDescribeFaults", &[("DBInstanceId", &a.db_instance_id)])
                    .await?;
                let faults = v["Faults"]["Fault"].as_array().cloned().unwrap_or_default();
                if faults.is_empty() {
                    println!("no faults armed on {}", a.db_instance_id);
                }
                for f in &faults {
                    println!("{}", fault_line(f));
                }
            }
            FaultCommand::Clear(a) => {
                let client = a.client.client()?;
                let v = client
                    .call("DdsdClearFaults", &[("DBInstanceId", &a.db_instance_id)])
                    .await?;
                println!(
                    "cleared {} fault(s) on {}",
                    v["ClearedFaults"].as_u64().unwrap_or(0),
                    a.db_instance_id
                );
            }
        }
        Ok(())
    })
}

/// `StartFails NodeId=d-…` style.
fn fault_line(f: &Value) -> String {
    let mut s = f["FaultType"].as_str().unwrap_or("?").to_string();
    for (k, v) in f.as_object().into_iter().flatten() {
        if k == "FaultType" || v.is_null() {
            continue;
        }
        let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
        s.push_str(&format!(" {k}={v}"));
    }
    s
}
