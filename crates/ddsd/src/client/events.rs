//! `ddsd events`: the scheduled O&M events (`DescribeActiveOperationTasks`), and moving
//! (`ModifyActiveOperationTasks`), starting now or cancelling (`CancelActiveOperationTasks`) them.

use clap::Args;
use serde_json::Value;

use crate::client::cli::{ClientArgs, ClientFuture};

#[derive(Debug, Clone, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Only this instance's events.
    #[arg(long)]
    pub instance: Option<String>,
    /// Move these events (comma-separated ids) to --switch-time.
    #[arg(long, value_name = "IDS", requires = "switch_time", conflicts_with_all = ["start_now", "cancel"])]
    pub move_ids: Option<String>,
    /// New switch time for --move-ids, yyyy-MM-ddTHH:mm:ssZ (UTC).
    #[arg(long)]
    pub switch_time: Option<String>,
    /// Start these events (comma-separated ids) now.
    #[arg(long, value_name = "IDS", conflicts_with = "cancel")]
    pub start_now: Option<String>,
    /// Cancel these events (comma-separated ids).
    #[arg(long, value_name = "IDS")]
    pub cancel: Option<String>,
}

fn status_name(s: i64) -> &'static str {
    match s {
        3 => "waiting",
        4 => "running",
        5 => "succeeded",
        6 => "failed",
        7 => "cancelled",
        _ => "?",
    }
}

/// `ddsd events`: one line per event, newest first, after the change asked for if any.
pub fn events(args: EventsArgs) -> ClientFuture {
    Box::pin(async move {
        let client = args.client.client()?;
        if let (Some(ids), Some(t)) = (&args.move_ids, &args.switch_time) {
            let r = client
                .call(
                    "ModifyActiveOperationTasks",
                    &[("Ids", ids.as_str()), ("SwitchTime", t.as_str())],
                )
                .await?;
            println!("moved {} to {t}", r["Ids"].as_str().unwrap_or(ids));
        }
        if let Some(ids) = &args.start_now {
            let r = client
                .call(
                    "ModifyActiveOperationTasks",
                    &[("Ids", ids.as_str()), ("ImmediateStart", "1")],
                )
                .await?;
            println!("starting {} now", r["Ids"].as_str().unwrap_or(ids));
        }
        if let Some(ids) = &args.cancel {
            let r = client
                .call("CancelActiveOperationTasks", &[("Ids", ids.as_str())])
                .await?;
            println!("cancelled {}", r["Ids"].as_str().unwrap_or(ids));
        }
        let mut params = vec![("PageSize", "100")];
        if let Some(i) = &args.instance {
            params.push(("InsName", i.as_str()));
        }
        let r = client.call("DescribeActiveOperationTasks", &params).await?;
        let items: Vec<Value> = r["Items"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            println!("no scheduled O&M events");
            return Ok(());
        }
        println!(
            "{:>6}  {:<22} {:<10} {:<21} {:<21} RESULT",
            "ID", "INSTANCE", "STATUS", "SWITCH TIME", "DEADLINE"
        );
        for e in &items {
            println!(
                "{:>6}  {:<22} {:<10} {:<21} {:<21} {}",
                e["Id"].as_i64().unwrap_or_default(),
                e["InsName"].as_str().unwrap_or("?"),
                status_name(e["Status"].as_i64().unwrap_or_default()),
                e["SwitchTime"].as_str().unwrap_or("?"),
                e["Deadline"].as_str().unwrap_or("?"),
                e["ResultInfo"].as_str().unwrap_or(""),
            );
        }
        let total = r["TotalRecordCount"].as_u64().unwrap_or(0);
        if total > items.len() as u64 {
            println!("… {} more (newest shown)", total - items.len() as u64);
        }
        Ok(())
    })
}
