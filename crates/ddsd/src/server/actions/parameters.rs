//! The instance parameters: `DescribeParameterTemplates`, `DescribeParameters`, `ModifyParameters`,
//! `DescribeParameterModificationHistory`, over the documented set in [`TABLE`] (docs/parameters.md).
//!
//! Values are kept per *scope*: a replica set (or standalone) has one, named by its `DBInstanceId`; a
//! sharded cluster has one per shard, config server and mongos, named by the node id the request's
//! `NodeId` gives (required there, as the vendor requires it). The scope's role — `normal`, `db`, `cs`,
//! `mongos` — decides which parameters it has; a `CharacterType` other than that role is
//! `InvalidParameter`.
//!
//! `ModifyParameters` (`DBInstanceId`, `Parameters` a JSON object `{"name": "value"}`, `NodeId`,
//! `CharacterType`, `SwitchMode`): every name must be one of the scope's parameters and every value in
//! its range (`CheckingCode`), else `InvalidParameter` naming `Parameters`, nothing changed. Refused with
//! `OperationDenied.DBInstanceStatus` unless the instance is `Running` with no unfinished operation. A
//! value equal to the configured one is no change. When no changed parameter needs a restart, the new
//! values apply at once (configured and running). When one does, the request records a rolling restart
//! of the scope — the whole replica set, or that shard / config server / mongos — with
//! `RestartDBInstance`'s gates and acceptance (status `Rebooting`, `NodeRestarting` for one node of a
//! sharded cluster; `SwitchMode=1` waits for the maintenance window; a standalone is
//! `OperationDenied.DBInstanceType`): the parameters that need no restart apply at once, the others are
//! configured at once and become running values when that restart succeeded (a failed restart leaves
//! them configured only, as `DescribeParameters` then shows).
//!
//! Stored in the per-instance setting `instance/<id>/parameters` (deleted with the instance): the
//! configured and running values that differ from the defaults, the restarts still to fold in, and the
//! history (at most [`MAX_HISTORY`] changes, oldest dropped first).

use std::collections::BTreeMap;
use std::sync::Arc;

use dds_engine::model::{Instance, Topology};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::attributes::idle;
use super::errors::{from_store, ApiError};
use super::params::time_range;
use super::params::{clip, optional, required};
use super::rolling::{accept_operation, load_instance, RestartRequest};
use super::{Call, Context, Empty, FromParams, Params};
use crate::server::store::{instance_setting_prefix, OperationStatus, Store};

/// Changes kept per instance; the oldest go first.
pub const MAX_HISTORY: usize = 1000;

/// A role of a process set, as the vendor names it (`CharacterType` / `Role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A replica set or standalone instance.
    Normal,
    /// A shard of a sharded cluster.
    Db,
    /// The config server of a sharded cluster.
    Cs,
    Mongos,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Normal => "normal",
            Role::Db => "db",
            Role::Cs => "cs",
            Role::Mongos => "mongos",
        }
    }

    fn parse(name: &str, v: &str) -> Result<Role, ApiError> {
        match v {
            "normal" => Ok(Role::Normal),
            "db" => Ok(Role::Db),
            "cs" => Ok(Role::Cs),
            "mongos" => Ok(Role::Mongos),
            other => Err(ApiError::invalid_parameter(
                name,
                format!(
                    "Valid values are normal, db, cs and mongos, got \"{}\".",
                    clip(other)
                ),
            )),
        }
    }
}

/// What a value must be.
#[derive(Debug, Clone, Copy)]
pub enum Check {
    /// An integer in `[min, max]`.
    Range(i64, i64),
    /// One of these.
    OneOf(&'static [&'static str]),
}

impl Check {
    /// The vendor's `CheckingCode`: `[min-max]` or `[a|b|c]`.
    pub fn code(&self) -> String {
        match self {
            Check::Range(a, b) => format!("[{a}-{b}]"),
            Check::OneOf(v) => format!("[{}]", v.join("|")),
        }
    }

    pub fn admits(&self, v: &str) -> bool {
        match self {
            Check::Range(a, b) => {
                // Canonical integers only: no sign, no leading zeros, no spaces.
                let canonical = v == "0"
                    || (!v.starts_with('0')
                        && !v.is_empty()
                        && v.bytes().all(|c| c.is_ascii_digit()));
                canonical && v.parse::<i64>().is_ok_and(|n| (*a..=*b).contains(&n))
            }
            Check::OneOf(vs) => vs.contains(&v),
        }
    }
}

const MONGOD: &[Role] = &[Role::Normal, Role::Db];
const MONGOD_CS: &[Role] = &[Role::Normal, Role::Db, Role::Cs];
const ALL_ROLES: &[Role] = &[Role::Normal, Role::Db, Role::Cs, Role::Mongos];
const NOT_CS: &[Role] = &[Role::Normal, Role::Db, Role::Mongos];

/// One parameter of the documented set.
#[derive(Debug)]
pub struct Param {
    pub name: &'static str,
    pub default: &'static str,
    pub check: Check,
    /// Takes effect only after the processes restart.
    pub restart: bool,
    /// The oldest engine version that has it (`major.minor`).
    pub since: (u32, u32),
    pub roles: &'static [Role],
    pub description: &'static str,
}

/// The documented set (docs/parameters.md lists the same rows; a test checks it).
pub static TABLE: &[Param] = &[
    Param {
        name: "operationProfiling.mode",
        default: "off",
        check: Check::OneOf(&["off", "slowOp", "all"]),
        restart: false,
        since: (3, 4),
        roles: MONGOD_CS,
        description: "Which operations the profiler records: none, those slower than slowOpThresholdMs, or all.",
    },
    Param {
        name: "operationProfiling.slowOpThresholdMs",
        default: "100",
        check: Check::Range(0, 65536),
        restart: false,
        since: (3, 4),
        roles: ALL_ROLES,
        description: "Milliseconds after which an operation counts as slow.",
    },
    Param {
        name: "replication.oplogSizeMB",
        default: "10240",
        check: Check::Range(990, 1_048_576),
        restart: false,
        since: (4, 0),
        roles: MONGOD,
        description: "The oplog's maximum size in MB (resized online).",
    },
    Param {
        name: "setParameter.cursorTimeoutMillis",
        default: "600000",
        check: Check::Range(1, 2_147_483_647),
        restart: false,
        since: (3, 4),
        roles: ALL_ROLES,
        description: "Milliseconds after which an idle cursor is closed.",
    },
    Param {
        name: "setParameter.transactionLifetimeLimitSeconds",
        default: "60",
        check: Check::Range(1, 300),
        restart: false,
        since: (4, 0),
        roles: MONGOD,
        description: "Seconds after which a multi-document transaction is aborted.",
    },
    Param {
        name: "setParameter.maxTransactionLockRequestTimeoutMillis",
        default: "5",
        check: Check::Range(0, 60000),
        restart: false,
        since: (4, 0),
        roles: MONGOD,
        description: "Milliseconds a transaction waits for a lock before it aborts.",
    },
    Param {
        name: "setParameter.flowControlTargetLagSeconds",
        default: "10",
        check: Check::Range(1, 600),
        restart: false,
        since: (4, 2),
        roles: MONGOD,
        description: "The majority-commit lag flow control keeps the primary under, in seconds.",
    },
    Param {
        name: "net.maxIncomingConnections",
        default: "65536",
        check: Check::Range(100, 65536),
        restart: true,
        since: (3, 4),
        roles: ALL_ROLES,
        description: "The most connections a process accepts.",
    },
    Param {
        name: "net.compression.compressors",
        default: "snappy,zstd,zlib",
        check: Check::OneOf(&["snappy,zstd,zlib", "snappy", "zstd", "zlib", "disabled"]),
        restart: true,
        since: (4, 2),
        roles: NOT_CS,
        description: "Network compressors offered to clients, in order of preference.",
    },
    Param {
        name: "storage.wiredTiger.collectionConfig.blockCompressor",
        default: "snappy",
        check: Check::OneOf(&["snappy", "zlib", "zstd", "none"]),
        restart: true,
        since: (4, 2),
        roles: MONGOD,
        description: "The block compressor of collections created from now on.",
    },
];

fn engine(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// The parameters a role has on an engine version, in table order.
pub fn parameters_for(engine_version: &str, role: Role) -> Vec<&'static Param> {
    let Some(v) = engine(engine_version) else {
        return Vec::new();
    };
    TABLE
        .iter()
        .filter(|p| p.since <= v && p.roles.contains(&role))
        .collect()
}

// --- DescribeParameterTemplates ---------------------------------------------------------------

/// `DescribeParameterTemplates`: `Engine` (`mongodb`), `EngineVersion`, `Role` (default `normal`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplatesRequest {
    pub engine_version: String,
    pub role: Role,
}

impl FromParams for TemplatesRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let engine = required(params, "Engine")?;
        if engine != "mongodb" {
            return Err(ApiError::invalid_parameter(
                "Engine",
                format!("The only engine is mongodb, got \"{}\".", clip(engine)),
            ));
        }
        let engine_version = required(params, "EngineVersion")?.to_string();
        let role = optional(params, "Role")
            .map(|r| Role::parse("Role", r))
            .transpose()?
            .unwrap_or(Role::Normal);
        Ok(Self {
            engine_version,
            role,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TemplateRecord {
    pub checking_code: String,
    pub force_modify: bool,
    pub force_restart: bool,
    pub parameter_description: String,
    pub parameter_name: String,
    pub parameter_value: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TemplateRecords {
    pub template_record: Vec<TemplateRecord>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TemplatesResponse {
    pub engine: String,
    pub engine_version: String,
    pub parameter_count: String,
    pub parameters: TemplateRecords,
}

/// `DescribeParameterTemplates`.
pub async fn describe_parameter_templates(
    ctx: Arc<Context>,
    req: TemplatesRequest,
    _call: Call,
) -> Result<TemplatesResponse, ApiError> {
    let catalog = ctx.kernels.snapshot();
    if catalog.newest(&req.engine_version).is_none() {
        let known: Vec<&str> = catalog.engine_versions().collect();
        return Err(ApiError::invalid_parameter(
            "EngineVersion",
            format!(
                "ddsd offers {}, got \"{}\".",
                known.join(", "),
                clip(&req.engine_version)
            ),
        ));
    }
    let record: Vec<TemplateRecord> = parameters_for(&req.engine_version, req.role)
        .into_iter()
        .map(|p| TemplateRecord {
            checking_code: p.check.code(),
            force_modify: true,
            force_restart: p.restart,
            parameter_description: p.description.to_string(),
            parameter_name: p.name.to_string(),
            parameter_value: p.default.to_string(),
        })
        .collect();
    Ok(TemplatesResponse {
        engine: "mongodb".into(),
        engine_version: req.engine_version,
        parameter_count: record.len().to_string(),
        parameters: TemplateRecords {
            template_record: record,
        },
    })
}

// --- Scope and storage ------------------------------------------------------------------------

/// The process set a request names: its key in the stored values, its role, and the `NodeId` a
/// restart of it takes (`None`: the whole instance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub key: String,
    pub role: Role,
    pub restart_node: Option<String>,
}

/// Resolves `NodeId` / `CharacterType` against the instance.
pub fn scope(
    instance: &Instance,
    node_id: Option<&str>,
    character: Option<Role>,
) -> Result<Scope, ApiError> {
    let unknown = |n: &str| {
        ApiError::invalid_parameter(
            "NodeId",
            format!("The instance has no node \"{}\".", clip(n)),
        )
    };
    let s = match &instance.topology {
        Topology::Standalone { .. } | Topology::ReplicaSet { .. } => {
            let own = match &instance.topology {
                Topology::ReplicaSet { replica_set } => {
                    [replica_set.node_id.as_str(), replica_set.name.as_str()]
                }
                _ => [instance.id.as_str(), instance.id.as_str()],
            };
            if let Some(n) = node_id.filter(|n| *n != instance.id && !own.contains(n)) {
                return Err(unknown(n));
            }
            Scope {
                key: instance.id.clone(),
                role: Role::Normal,
                restart_node: None,
            }
        }
        Topology::Sharded {
            config_server,
            shards,
            mongos,
        } => {
            let n = node_id.ok_or_else(|| ApiError::missing("NodeId"))?;
            let (key, role) = if n == config_server.node_id || n == config_server.name {
                (config_server.node_id.clone(), Role::Cs)
            } else if let Some(s) = shards.iter().find(|s| n == s.node_id || n == s.name) {
                (s.node_id.clone(), Role::Db)
            } else if let Some(m) = mongos.iter().find(|m| n == m.node_id) {
                (m.node_id.clone(), Role::Mongos)
            } else {
                return Err(unknown(n));
            };
            Scope {
                restart_node: Some(key.clone()),
                key,
                role,
            }
        }
    };
    if let Some(c) = character.filter(|c| *c != s.role) {
        return Err(ApiError::invalid_parameter(
            "CharacterType",
            format!(
                "The node is of role {}, not {}.",
                s.role.as_str(),
                c.as_str()
            ),
        ));
    }
    Ok(s)
}

/// Values changed by a restart, folded into the running values once it succeeded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub scope: String,
    pub operation_id: String,
    pub values: BTreeMap<String, String>,
}

/// One change of one parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub scope: String,
    pub name: String,
    pub old: String,
    pub new: String,
    pub time_ms: u64,
}

/// The stored setting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// Configured values that differ from the defaults, per scope.
    #[serde(default)]
    pub config: BTreeMap<String, BTreeMap<String, String>>,
    /// Running values that differ from the defaults, per scope (pending restarts not folded in).
    #[serde(default)]
    pub running: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    pub pending: Vec<Pending>,
    #[serde(default)]
    pub history: Vec<Change>,
}

fn setting_key(instance_id: &str) -> String {
    format!("{}parameters", instance_setting_prefix(instance_id))
}

async fn load_stored(ctx: &Context, instance_id: &str) -> Result<Stored, ApiError> {
    load_from(&*ctx.store, instance_id).await
}

async fn load_from(store: &dyn Store, instance_id: &str) -> Result<Stored, ApiError> {
    match store
        .get_setting(&setting_key(instance_id))
        .await
        .map_err(from_store)?
    {
        None => Ok(Stored::default()),
        Some(text) => serde_json::from_str(&text).map_err(|e| {
            tracing::error!(instance_id, error = %e, "stored parameters do not decode");
            ApiError::Gateway(acs_rpc::Gateway::InternalError)
        }),
    }
}

impl Stored {
    /// Folds finished restarts in: a succeeded one's values become running, a failed one's stay
    /// configured only. `status` answers an operation's status (`None`: not found, as finished).
    pub fn settle(&mut self, status: impl Fn(&str) -> Option<OperationStatus>) {
        let mut keep = Vec::new();
        for p in std::mem::take(&mut self.pending) {
            match status(&p.operation_id) {
                Some(OperationStatus::Succeeded) => {
                    self.running
                        .entry(p.scope.clone())
                        .or_default()
                        .extend(p.values);
                }
                Some(OperationStatus::Pending | OperationStatus::Running) => keep.push(p),
                Some(OperationStatus::Failed) | None => {}
            }
        }
        self.pending = keep;
    }

    fn value(map: &BTreeMap<String, BTreeMap<String, String>>, scope: &str, p: &Param) -> String {
        map.get(scope)
            .and_then(|m| m.get(p.name))
            .cloned()
            .unwrap_or_else(|| p.default.to_string())
    }

    pub fn configured(&self, scope: &str, p: &Param) -> String {
        Self::value(&self.config, scope, p)
    }

    pub fn running(&self, scope: &str, p: &Param) -> String {
        Self::value(&self.running, scope, p)
    }
}

/// The stored values with the instance's finished restarts folded in.
async fn settled(ctx: &Context, instance_id: &str) -> Result<Stored, ApiError> {
    settled_in(&*ctx.store, instance_id).await
}

async fn settled_in(store: &dyn Store, instance_id: &str) -> Result<Stored, ApiError> {
    let mut stored = load_from(store, instance_id).await?;
    let mut statuses = BTreeMap::new();
    for p in &stored.pending {
        let op = store
            .get_operation(&p.operation_id)
            .await
            .map_err(from_store)?;
        statuses.insert(p.operation_id.clone(), op.map(|o| o.status));
    }
    stored.settle(|id| statuses.get(id).copied().flatten());
    Ok(stored)
}

/// What one process of scope `scope` (the `DBInstanceId` of a replica set or standalone, the node
/// id of a shard, config server or mongos) of role `role` runs with on MongoDB `release`
/// (`major.minor`): each of the documented parameters it has, with the value `DescribeParameters`
/// reports as running. The simulated processes answer `getParameter` and `getCmdLineOpts` from it.
pub async fn running_values(
    store: &dyn Store,
    instance_id: &str,
    scope: &str,
    role: Role,
    release: (u32, u32),
) -> Result<Vec<(&'static Param, String)>, ApiError> {
    let stored = settled_in(store, instance_id).await?;
    Ok(TABLE
        .iter()
        .filter(|p| p.since <= release && p.roles.contains(&role))
        .map(|p| (p, stored.running(scope, p)))
        .collect())
}

// --- DescribeParameters -------------------------------------------------------------------------

fn character(params: &Params) -> Result<Option<Role>, ApiError> {
    optional(params, "CharacterType")
        .map(|c| Role::parse("CharacterType", c))
        .transpose()
}

/// `DescribeParameters`: `DBInstanceId`, `NodeId` (required for a sharded cluster), `CharacterType`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeRequest {
    pub db_instance_id: String,
    pub node_id: Option<String>,
    pub character: Option<Role>,
}

impl FromParams for DescribeRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        Ok(Self {
            db_instance_id: required(params, "DBInstanceId")?.to_string(),
            node_id: optional(params, "NodeId").map(str::to_string),
            character: character(params)?,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigParameter {
    pub checking_code: String,
    pub force_restart: bool,
    pub modifiable_status: bool,
    pub parameter_description: String,
    pub parameter_name: String,
    pub parameter_value: String,
}

/// The running parameters: the vendor's model has `ForceRestart` and `ModifiableStatus` as strings here.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunningParameter {
    pub character_type: String,
    pub checking_code: String,
    pub force_restart: String,
    pub modifiable_status: String,
    pub parameter_description: String,
    pub parameter_name: String,
    pub parameter_value: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigParameters {
    pub parameter: Vec<ConfigParameter>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunningParameters {
    pub parameter: Vec<RunningParameter>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeResponse {
    pub config_parameters: ConfigParameters,
    pub engine: String,
    pub engine_version: String,
    pub running_parameters: RunningParameters,
}

/// `DescribeParameters`.
pub async fn describe_parameters(
    ctx: Arc<Context>,
    req: DescribeRequest,
    _call: Call,
) -> Result<DescribeResponse, ApiError> {
    let instance = load_instance(&ctx, &req.db_instance_id).await?;
    let s = scope(&instance, req.node_id.as_deref(), req.character)?;
    let stored = settled(&ctx, &instance.id).await?;
    let params = parameters_for(&instance.engine_version, s.role);
    Ok(DescribeResponse {
        config_parameters: ConfigParameters {
            parameter: params
                .iter()
                .map(|p| ConfigParameter {
                    checking_code: p.check.code(),
                    force_restart: p.restart,
                    modifiable_status: true,
                    parameter_description: p.description.to_string(),
                    parameter_name: p.name.to_string(),
                    parameter_value: stored.configured(&s.key, p),
                })
                .collect(),
        },
        engine: "mongodb".into(),
        engine_version: instance.engine_version.clone(),
        running_parameters: RunningParameters {
            parameter: params
                .iter()
                .map(|p| RunningParameter {
                    character_type: s.role.as_str().to_string(),
                    checking_code: p.check.code(),
                    force_restart: p.restart.to_string(),
                    modifiable_status: "true".into(),
                    parameter_description: p.description.to_string(),
                    parameter_name: p.name.to_string(),
                    parameter_value: stored.running(&s.key, p),
                })
                .collect(),
        },
    })
}

// --- ModifyParameters ---------------------------------------------------------------------------

/// `ModifyParameters`' request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModifyRequest {
    pub db_instance_id: String,
    pub node_id: Option<String>,
    pub character: Option<Role>,
    /// Name → value, as given (checked against the scope's set by the handler).
    pub values: BTreeMap<String, String>,
    /// `SwitchMode=1`: a restart waits for the maintenance window.
    pub deferred: bool,
    params: Params,
}

impl FromParams for ModifyRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let db_instance_id = required(params, "DBInstanceId")?.to_string();
        let text = required(params, "Parameters")?;
        let bad = |why: String| ApiError::invalid_parameter("Parameters", why);
        let parsed: serde_json::Value = serde_json::from_str(text).map_err(|_| {
            bad(format!(
                "A JSON object {{\"name\":\"value\"}} is expected, got \"{}\".",
                clip(text)
            ))
        })?;
        let Some(obj) = parsed.as_object() else {
            return Err(bad("A JSON object {\"name\":\"value\"} is expected.".into()));
        };
        if obj.is_empty() {
            return Err(bad("No parameter is given.".into()));
        }
        let mut values = BTreeMap::new();
        for (k, v) in obj {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => return Err(bad(format!("The value of {} must be a string.", clip(k)))),
            };
            values.insert(k.clone(), v);
        }
        // SwitchMode and NodeId as RestartDBInstance reads them.
        let restart = RestartRequest::from_params(params)?;
        Ok(Self {
            db_instance_id,
            node_id: restart.node_id,
            character: character(params)?,
            values,
            deferred: restart.deferred,
            params: params.clone(),
        })
    }
}

/// Checks every name and value against the scope's set: the parameters that change, with their
/// table row, or the refusal.
pub fn check_values(
    engine_version: &str,
    role: Role,
    values: &BTreeMap<String, String>,
) -> Result<Vec<(&'static Param, String)>, ApiError> {
    let set = parameters_for(engine_version, role);
    let mut out = Vec::new();
    for (name, value) in values {
        let Some(p) = set.iter().find(|p| p.name == name) else {
            return Err(ApiError::invalid_parameter(
                "Parameters",
                format!(
                    "{} is not a parameter of a {} node on MongoDB {engine_version} \
                     (DescribeParameterTemplates lists them).",
                    clip(name),
                    role.as_str()
                ),
            ));
        };
        if !p.check.admits(value) {
            return Err(ApiError::invalid_parameter(
                "Parameters",
                format!(
                    "{} must be in {}, got \"{}\".",
                    p.name,
                    p.check.code(),
                    clip(value)
                ),
            ));
        }
        out.push((*p, value.clone()));
    }
    Ok(out)
}

fn wall_now_ms() -> u64 {
    u64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// `ModifyParameters`.
pub async fn modify_parameters(
    ctx: Arc<Context>,
    req: ModifyRequest,
    _call: Call,
) -> Result<Empty, ApiError> {
    // One change at a time in this process, so that two requests cannot both read the stored
    // values and the second write lose the first's change.
    static CHANGING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one_at_a_time = CHANGING.lock().await;
    let instance = load_instance(&ctx, &req.db_instance_id).await?;
    let s = scope(&instance, req.node_id.as_deref(), req.character)?;
    let checked = check_values(&instance.engine_version, s.role, &req.values)?;
    idle(&ctx, &instance.id, instance.status).await?;
    let mut stored = settled(&ctx, &instance.id).await?;
    let changes: Vec<(&Param, String, String)> = checked
        .into_iter()
        .filter_map(|(p, new)| {
            let old = stored.configured(&s.key, p);
            (old != new).then_some((p, old, new))
        })
        .collect();
    if changes.is_empty() {
        return Ok(Empty {});
    }
    let needs_restart = changes.iter().any(|(p, _, _)| p.restart);
    let operation_id = if needs_restart {
        let mut restart_params = req.params.clone();
        restart_params.remove("NodeId");
        if let Some(n) = &s.restart_node {
            restart_params.insert("NodeId".into(), n.clone());
        }
        let restart = RestartRequest::from_params(&restart_params)?;
        let (planned, _) = restart.plan(&ctx).await?;
        Some(accept_operation(&ctx, planned, req.deferred).await?)
    } else {
        None
    };
    let now = wall_now_ms();
    let mut pending = BTreeMap::new();
    for (p, old, new) in &changes {
        stored
            .config
            .entry(s.key.clone())
            .or_default()
            .insert(p.name.to_string(), new.clone());
        if p.restart {
            pending.insert(p.name.to_string(), new.clone());
        } else {
            stored
                .running
                .entry(s.key.clone())
                .or_default()
                .insert(p.name.to_string(), new.clone());
        }
        stored.history.push(Change {
            scope: s.key.clone(),
            name: p.name.to_string(),
            old: old.clone(),
            new: new.clone(),
            time_ms: now,
        });
    }
    if let Some(operation_id) = operation_id {
        stored.pending.push(Pending {
            scope: s.key.clone(),
            operation_id,
            values: pending,
        });
    }
    let excess = stored.history.len().saturating_sub(MAX_HISTORY);
    stored.history.drain(..excess);
    let text = serde_json::to_string(&stored).map_err(|e| {
        tracing::error!("encoding the parameters: {e}");
        ApiError::Gateway(acs_rpc::Gateway::InternalError)
    })?;
    ctx.store
        .put_setting(&setting_key(&instance.id), &text)
        .await
        .map_err(from_store)?;
    tracing::info!(instance_id = %instance.id, scope = %s.key, changed = changes.len(), restart = needs_restart, "parameters modified");
    Ok(Empty {})
}

// --- DescribeParameterModificationHistory -------------------------------------------------------

/// `DescribeParameterModificationHistory`: `DBInstanceId`, `StartTime`, `EndTime` (`yyyy-MM-ddTHH:mmZ`,
/// UTC, the end later than the start), `NodeId` (required for a sharded cluster), `CharacterType`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRequest {
    pub db_instance_id: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub node_id: Option<String>,
    pub character: Option<Role>,
}

impl FromParams for HistoryRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let db_instance_id = required(params, "DBInstanceId")?.to_string();
        let (start_ms, end_ms) = time_range(params, "StartTime", "EndTime")?;
        // `logic` (the vendor's name for the whole sharded cluster here) names no role of its own.
        let character = match optional(params, "CharacterType") {
            Some("logic") => None,
            _ => character(params)?,
        };
        Ok(Self {
            db_instance_id,
            start_ms,
            end_ms,
            node_id: optional(params, "NodeId").map(str::to_string),
            character,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistoricalParameter {
    pub modify_time: String,
    pub new_parameter_value: String,
    pub old_parameter_value: String,
    pub parameter_name: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistoricalParameters {
    pub historical_parameter: Vec<HistoricalParameter>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryResponse {
    pub historical_parameters: HistoricalParameters,
}

/// `DescribeParameterModificationHistory`: the changes of the scope in `[StartTime, EndTime]`, newest
/// first.
pub async fn describe_parameter_modification_history(
    ctx: Arc<Context>,
    req: HistoryRequest,
    _call: Call,
) -> Result<HistoryResponse, ApiError> {
    let instance = load_instance(&ctx, &req.db_instance_id).await?;
    let s = scope(&instance, req.node_id.as_deref(), req.character)?;
    let stored = load_stored(&ctx, &instance.id).await?;
    let mut changes: Vec<&Change> = stored
        .history
        .iter()
        .filter(|c| c.scope == s.key && (req.start_ms..=req.end_ms).contains(&c.time_ms))
        .collect();
    // Newest request first; a request's changes in name order (the sort is stable).
    changes.sort_by_key(|c| std::cmp::Reverse(c.time_ms));
    let historical_parameter = changes
        .into_iter()
        .map(|c| HistoricalParameter {
            modify_time: acs_rpc::format_timestamp(
                OffsetDateTime::from_unix_timestamp_nanos(i128::from(c.time_ms) * 1_000_000)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            ),
            new_parameter_value: c.new.clone(),
            old_parameter_value: c.old.clone(),
            parameter_name: c.name.clone(),
        })
        .collect();
    Ok(HistoryResponse {
        historical_parameters: HistoricalParameters {
            historical_parameter,
        },
    })
}

#[cfg(test)]
mod tests {
    /// Request parameters, expected code and HTTP status.
    type Refusal<'a> = (Vec<(&'a str, &'a str)>, &'a str, u16);

    use super::*;
    use crate::server::actions::upgrade::test_support::{env, kernels, req, Env};
    use crate::server::store::Store;
    use dds_engine::build::fixtures;
    use dds_engine::model::DbInstanceStatus;
    use serde_json::{json, Value};

    async fn call(t: &Env, action: &str, params: &[(&str, &str)]) -> Result<Value, ApiError> {
        crate::server::actions::call(t.ctx.clone(), req(action, params)).await
    }

    /// `(name, configured, running)` of one parameter.
    async fn values(t: &Env, params: &[(&str, &str)], name: &str) -> (String, String) {
        let v = call(t, "DescribeParameters", params).await.unwrap();
        let find = |list: &Value| {
            list["Parameter"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["ParameterName"] == name)
                .map(|p| p["ParameterValue"].as_str().unwrap().to_string())
                .unwrap_or_else(|| panic!("{name} not in {list}"))
        };
        (find(&v["ConfigParameters"]), find(&v["RunningParameters"]))
    }

    /// Restarts per process over the last operation, from the simulation's ground truth.
    async fn restarts(t: &Env, id: &str) -> Vec<(String, u64)> {
        let v = call(
            t,
            "DdsdDescribeOperations",
            &[("DBInstanceId", id), ("MaxRecords", "1")],
        )
        .await
        .unwrap();
        let op = &v["Operations"]["Operation"][0];
        assert_eq!(op["Status"], "Succeeded", "{op}");
        op["Simulation"]["Processes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["NodeId"].as_str().unwrap().to_string(),
                    p["Restarts"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn docs_table_is_the_checked_table() {
        let doc = include_str!("../../../../../docs/parameters.md");
        let rows: Vec<Vec<String>> = doc
            .lines()
            .filter(|l| l.starts_with("| `"))
            .map(|l| {
                l.replace("\\|", "\u{1}")
                    .split('|')
                    .map(|c| c.trim().trim_matches('`').replace('\u{1}', "|"))
                    .collect()
            })
            .collect();
        assert_eq!(rows.len(), TABLE.len());
        for (row, p) in rows.iter().zip(TABLE) {
            let roles: Vec<&str> = p.roles.iter().map(|r| r.as_str()).collect();
            assert_eq!(
                row[1..7],
                [
                    p.name.to_string(),
                    p.check.code(),
                    p.default.to_string(),
                    if p.restart { "yes" } else { "no" }.to_string(),
                    format!("{}.{}+", p.since.0, p.since.1),
                    roles.join(", "),
                ],
                "{}",
                p.name
            );
            assert!(p.check.admits(p.default), "{}", p.name);
        }
    }

    #[test]
    fn values_are_checked_against_the_range() {
        let r = Check::Range(100, 65536);
        for ok in ["100", "65536", "5000"] {
            assert!(r.admits(ok), "{ok}");
        }
        for bad in [
            "99", "65537", "-1", "+200", "0200", "", "1e3", " 200", "abc",
        ] {
            assert!(!r.admits(bad), "{bad:?}");
        }
        assert!(Check::Range(0, 5).admits("0"));
        let v = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(check_values(
            "4.4",
            Role::Normal,
            &v(&[("operationProfiling.mode", "all")])
        )
        .is_ok());
        assert!(check_values(
            "4.4",
            Role::Normal,
            &v(&[("operationProfiling.mode", "ALL")])
        )
        .is_err());
        assert!(check_values(
            "4.4",
            Role::Mongos,
            &v(&[("replication.oplogSizeMB", "2048")])
        )
        .is_err());
        assert!(check_values(
            "4.0",
            Role::Normal,
            &v(&[("net.compression.compressors", "zstd")])
        )
        .is_err());
        assert!(check_values(
            "4.2",
            Role::Normal,
            &v(&[("net.compression.compressors", "zstd")])
        )
        .is_ok());
    }

    #[tokio::test]
    async fn templates_per_engine_and_role() {
        let t = env(200.0).await;
        let v = call(
            &t,
            "DescribeParameterTemplates",
            &[("Engine", "mongodb"), ("EngineVersion", "4.4")],
        )
        .await
        .unwrap();
        assert_eq!(v["ParameterCount"], "10");
        assert_eq!(
            v["Parameters"]["TemplateRecord"][7],
            json!({
            "CheckingCode": "[100-65536]", "ForceModify": true, "ForceRestart": true,
            "ParameterDescription": "The most connections a process accepts.",
            "ParameterName": "net.maxIncomingConnections", "ParameterValue": "65536"})
        );
        let v = call(
            &t,
            "DescribeParameterTemplates",
            &[
                ("Engine", "mongodb"),
                ("EngineVersion", "4.4"),
                ("Role", "mongos"),
            ],
        )
        .await
        .unwrap();
        assert_eq!(v["ParameterCount"], "4");
        let cases: Vec<Refusal> = vec![
            (vec![("EngineVersion", "4.4")], "MissingEngine", 400),
            (vec![("Engine", "mongodb")], "MissingEngineVersion", 400),
            (
                vec![("Engine", "mysql"), ("EngineVersion", "4.4")],
                "InvalidParameter",
                400,
            ),
            (
                vec![("Engine", "mongodb"), ("EngineVersion", "9.9")],
                "InvalidParameter",
                400,
            ),
            (
                vec![
                    ("Engine", "mongodb"),
                    ("EngineVersion", "4.4"),
                    ("Role", "x"),
                ],
                "InvalidParameter",
                400,
            ),
        ];
        for (params, code, status) in cases {
            let e = call(&t, "DescribeParameterTemplates", &params)
                .await
                .unwrap_err();
            assert_eq!((e.code(), e.status()), (code, status), "{params:?}");
        }
    }

    #[tokio::test]
    async fn a_replica_set_applies_at_once_or_through_one_rolling_restart() {
        let t = env(200.0).await;
        let (_, older) = kernels(&t, "4.4");
        let id = t
            .running_instance(
                "dds-pa1",
                fixtures::replica_set(fixtures::psh("rs", &older)),
                "4.4",
            )
            .await;
        let me = [("DBInstanceId", id.as_str())];
        let v = call(&t, "DescribeParameters", &me).await.unwrap();
        assert_eq!(
            (v["Engine"].as_str(), v["EngineVersion"].as_str()),
            (Some("mongodb"), Some("4.4"))
        );
        assert_eq!(
            v["RunningParameters"]["Parameter"][0]["CharacterType"],
            "normal"
        );
        assert_eq!(
            v["RunningParameters"]["Parameter"][0]["ForceRestart"],
            "false"
        );

        let cases: Vec<Refusal> = vec![
            (vec![("DBInstanceId", &id)], "MissingParameters", 400),
            (
                vec![("DBInstanceId", &id), ("Parameters", "{")],
                "InvalidParameter",
                400,
            ),
            (
                vec![("DBInstanceId", &id), ("Parameters", "[]")],
                "InvalidParameter",
                400,
            ),
            (
                vec![("DBInstanceId", &id), ("Parameters", "{}")],
                "InvalidParameter",
                400,
            ),
            (
                vec![
                    ("DBInstanceId", &id),
                    (
                        "Parameters",
                        r#"{"operationProfiling.mode":"all","no.such":"1"}"#,
                    ),
                ],
                "InvalidParameter",
                400,
            ),
            (
                vec![
                    ("DBInstanceId", &id),
                    (
                        "Parameters",
                        r#"{"operationProfiling.mode":"all","net.maxIncomingConnections":"5"}"#,
                    ),
                ],
                "InvalidParameter",
                400,
            ),
            (
                vec![
                    ("DBInstanceId", &id),
                    ("Parameters", r#"{"operationProfiling.mode":{"a":1}}"#),
                ],
                "InvalidParameter",
                400,
            ),
            (
                vec![
                    ("DBInstanceId", &id),
                    ("NodeId", "d-nope"),
                    ("Parameters", r#"{"operationProfiling.mode":"all"}"#),
                ],
                "InvalidParameter",
                400,
            ),
            (
                vec![
                    ("DBInstanceId", &id),
                    ("CharacterType", "mongos"),
                    ("Parameters", r#"{"operationProfiling.mode":"all"}"#),
                ],
                "InvalidParameter",
                400,
            ),
            (
                vec![
                    ("DBInstanceId", "dds-nope"),
                    ("Parameters", r#"{"operationProfiling.mode":"all"}"#),
                ],
                "InvalidDBInstanceId.NotFound",
                404,
            ),
        ];
        for (params, code, status) in cases {
            let e = call(&t, "ModifyParameters", &params).await.unwrap_err();
            assert_eq!((e.code(), e.status()), (code, status), "{params:?}");
        }
        assert_eq!(
            t.store.get_setting(&setting_key(&id)).await.unwrap(),
            None,
            "nothing changed"
        );

        // No restart: at once, no operation.
        call(
            &t,
            "ModifyParameters",
            &[("DBInstanceId", &id), ("Parameters", r#"{"operationProfiling.mode":"slowOp","operationProfiling.slowOpThresholdMs":200}"#)],
        )
        .await
        .unwrap();
        assert_eq!(t.status(&id).await, DbInstanceStatus::Running);
        assert_eq!(t.store.list_operations(&id, 10).await.unwrap().len(), 1);
        assert_eq!(
            values(&t, &me, "operationProfiling.slowOpThresholdMs").await,
            ("200".into(), "200".into())
        );

        // A restart: one rolling restart, configured at once, running once it succeeded.
        call(
            &t,
            "ModifyParameters",
            &[("DBInstanceId", &id), ("Parameters", r#"{"net.maxIncomingConnections":"20000","setParameter.cursorTimeoutMillis":"300000"}"#)],
        )
        .await
        .unwrap();
        assert_eq!(t.status(&id).await, DbInstanceStatus::Rebooting);
        assert_eq!(
            values(&t, &me, "net.maxIncomingConnections").await,
            ("20000".into(), "65536".into())
        );
        assert_eq!(
            values(&t, &me, "setParameter.cursorTimeoutMillis").await,
            ("300000".into(), "300000".into())
        );
        let e = call(
            &t,
            "ModifyParameters",
            &[
                ("DBInstanceId", &id),
                ("Parameters", r#"{"operationProfiling.mode":"all"}"#),
            ],
        )
        .await
        .unwrap_err();
        assert_eq!(
            (e.code(), e.status()),
            ("OperationDenied.DBInstanceStatus", 403)
        );
        t.settled(&id, 30_000).await;
        let all = restarts(&t, &id).await;
        assert_eq!(all.len(), 3);
        assert!(all.iter().all(|(_, n)| *n == 1), "{all:?}");
        assert_eq!(
            values(&t, &me, "net.maxIncomingConnections").await,
            ("20000".into(), "20000".into())
        );

        // The same value again is no change: no operation.
        call(
            &t,
            "ModifyParameters",
            &[
                ("DBInstanceId", &id),
                ("Parameters", r#"{"net.maxIncomingConnections":"20000"}"#),
            ],
        )
        .await
        .unwrap();
        assert_eq!(t.status(&id).await, DbInstanceStatus::Running);
        assert_eq!(t.store.list_operations(&id, 10).await.unwrap().len(), 2);

        let v = call(
            &t,
            "DescribeParameterModificationHistory",
            &[
                ("DBInstanceId", &id),
                ("StartTime", "2000-01-01T00:00Z"),
                ("EndTime", "2999-01-01T00:00Z"),
            ],
        )
        .await
        .unwrap();
        let h = v["HistoricalParameters"]["HistoricalParameter"]
            .as_array()
            .unwrap();
        let got: Vec<(&str, &str, &str)> = h
            .iter()
            .map(|c| {
                (
                    c["ParameterName"].as_str().unwrap(),
                    c["OldParameterValue"].as_str().unwrap(),
                    c["NewParameterValue"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("net.maxIncomingConnections", "65536", "20000"),
                ("setParameter.cursorTimeoutMillis", "600000", "300000"),
                ("operationProfiling.mode", "off", "slowOp"),
                ("operationProfiling.slowOpThresholdMs", "100", "200"),
            ]
        );
        assert!(h[0]["ModifyTime"].as_str().unwrap().ends_with('Z'));
        let v = call(
            &t,
            "DescribeParameterModificationHistory",
            &[
                ("DBInstanceId", &id),
                ("StartTime", "2000-01-01T00:00Z"),
                ("EndTime", "2000-01-02T00:00Z"),
            ],
        )
        .await
        .unwrap();
        assert_eq!(
            v,
            json!({"HistoricalParameters": {"HistoricalParameter": []}})
        );
        let e = call(
            &t,
            "DescribeParameterModificationHistory",
            &[
                ("DBInstanceId", &id),
                ("StartTime", "2000-01-02T00:00Z"),
                ("EndTime", "2000-01-01T00:00Z"),
            ],
        )
        .await
        .unwrap_err();
        assert_eq!(e.code(), "InvalidParameter");
    }

    #[tokio::test]
    async fn a_sharded_cluster_changes_per_node_and_restarts_only_that_node() {
        let t = env(200.0).await;
        let (_, older) = kernels(&t, "4.4");
        let id = t
            .running_instance("dds-pa2", fixtures::sharded(2, 2, &older), "4.4")
            .await;
        let p = r#"{"net.maxIncomingConnections":"1000"}"#;
        let e = call(
            &t,
            "ModifyParameters",
            &[("DBInstanceId", &id), ("Parameters", p)],
        )
        .await
        .unwrap_err();
        assert_eq!((e.code(), e.status()), ("MissingNodeId", 400));
        let e = call(
            &t,
            "ModifyParameters",
            &[
                ("DBInstanceId", &id),
                ("NodeId", "mongos1"),
                ("Parameters", r#"{"replication.oplogSizeMB":"2048"}"#),
            ],
        )
        .await
        .unwrap_err();
        assert_eq!(e.code(), "InvalidParameter", "mongos have no oplog");
        let e = call(
            &t,
            "ModifyParameters",
            &[
                ("DBInstanceId", &id),
                ("NodeId", "mongos1"),
                ("CharacterType", "db"),
                ("Parameters", p),
            ],
        )
        .await
        .unwrap_err();
        assert_eq!(e.code(), "InvalidParameter");

        call(
            &t,
            "ModifyParameters",
            &[
                ("DBInstanceId", &id),
                ("NodeId", "mongos1"),
                ("CharacterType", "mongos"),
                ("Parameters", p),
            ],
        )
        .await
        .unwrap();
        assert_eq!(t.status(&id).await, DbInstanceStatus::NodeRestarting);
        t.settled(&id, 30_000).await;
        for (node, n) in restarts(&t, &id).await {
            assert_eq!(n, u64::from(node == "mongos1"), "{node}");
        }
        let m1 = [("DBInstanceId", id.as_str()), ("NodeId", "mongos1")];
        let m2 = [("DBInstanceId", id.as_str()), ("NodeId", "mongos0")];
        assert_eq!(
            values(&t, &m1, "net.maxIncomingConnections").await,
            ("1000".into(), "1000".into())
        );
        assert_eq!(
            values(&t, &m2, "net.maxIncomingConnections").await,
            ("65536".into(), "65536".into())
        );
        let v = call(&t, "DescribeParameters", &m1).await.unwrap();
        assert_eq!(
            v["RunningParameters"]["Parameter"][0]["CharacterType"],
            "mongos"
        );

        // The values go with the instance.
        assert!(t
            .store
            .get_setting(&setting_key(&id))
            .await
            .unwrap()
            .is_some());
    }

    #[test]
    fn a_failed_restart_leaves_its_values_configured_only() {
        let mut s = Stored::default();
        s.config
            .entry("x".into())
            .or_default()
            .insert("net.maxIncomingConnections".into(), "1000".into());
        s.pending.push(Pending {
            scope: "x".into(),
            operation_id: "op1".into(),
            values: [("net.maxIncomingConnections".to_string(), "1000".to_string())].into(),
        });
        let p = &TABLE[7];
        let mut running = s.clone();
        running.settle(|_| Some(OperationStatus::Running));
        assert_eq!(
            (running.pending.len(), running.running(p.name, p)),
            (1, "65536".into())
        );
        let mut failed = s.clone();
        failed.settle(|_| Some(OperationStatus::Failed));
        assert_eq!(
            (
                failed.pending.len(),
                failed.configured("x", p),
                failed.running("x", p)
            ),
            (0, "1000".into(), "65536".into())
        );
        s.settle(|_| Some(OperationStatus::Succeeded));
        assert_eq!(s.running("x", p), "1000");
    }
}
