//! Creating, deleting and re-timing instances.
//!
//! - `CreateDBInstance`: a replica set (`ReplicationFactor` 3/5/7, default 3, plus 0–5
//!   `ReadonlyReplicas`) or a standalone (`ReplicationFactor` 1, engine 4.0 only, as at the vendor).
//! - `CreateShardingDBInstance`: `ReplicaSet.N.{Class,Storage,ReadonlyReplicas}` (2–32 shards),
//!   `ConfigServer.1.{Class,Storage}`, `Mongos.N.Class` (2–32).
//! - `DdsdCreateDBInstance` / `DdsdCreateShardingDBInstance` (operator extensions, admin key only):
//!   the same parameters plus `KernelVersion`, a catalogued kernel of the `EngineVersion` every
//!   process starts on — how an operator gets an instance that `UpgradeDBInstanceKernelVersion`
//!   can move forward.
//! - `DeleteDBInstance`: only a `Running` pay-as-you-go instance; it turns `Deleting` and the runtime
//!   removes it.
//! - `ModifyDBInstanceMaintainTime`: `HH:mmZ` start and end (UTC), end later than start.
//!
//! A create validates every parameter first (nothing is generated or stored for a refused
//! request), then stores the instance as `Creating` together with its create operation in one
//! transaction and wakes the runtime, which brings the deployment up and sets `Running`.
//! `ClientToken` makes a create or delete idempotent: the same token with the same parameters
//! answers the original response (same `DBInstanceId`) and changes nothing; with other parameters
//! it is `IdempotentParameterMismatch`.

use std::sync::Arc;

use crate::server::actions::errors::ApiError;
use acs_rpc::{format_timestamp, Gateway};
use dds_engine::build::{
    self, BuildError, CreateCommon, CreateConfigServer, CreateMongos, CreateReplicaSet,
    CreateShard, CreateSharded,
};
use dds_engine::catalog::Catalog;
use dds_engine::model::{ChargeType, DbInstanceStatus, Instance, MaintainWindow, Tag, Topology};
use rand::Rng as _;
use serde::Serialize;
use serde_json::{json, Value};

use super::classes::{self, Role};
use super::errors::from_store;
use super::params::{
    indexed_list, optional, optional_bool, optional_u32, parse_u32, required, tags, ListEntry,
};
use super::{respond, Call, Context, Empty, FromParams, InstanceRequest, Params};
use crate::server::runtime::OperationState;
use crate::server::store::{limits, Accepted, InstancePatch, NewOperation, StoreError};

/// Parameters the vendor accepts for cloning or restoring, or for features ddsd does not model:
/// refused rather than silently ignored, so nobody believes they got a clone or an encrypted disk.
const UNSUPPORTED: &[&str] = &[
    "BackupId",
    "RestoreTime",
    "RestoreType",
    "SrcDBInstanceId",
    "SrcRegion",
    "DatabaseNames",
    "ClusterId",
    "EncryptionKey",
];

/// `Period` values of a subscription (months).
const PERIODS: &[u32] = &[1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 24, 36, 60];

/// How many fresh ids a create tries when the generated one is taken.
const ID_ATTEMPTS: usize = 3;

fn build_error(e: BuildError) -> ApiError {
    match &e {
        BuildError::InvalidClass { param } => ApiError::ClassNotFound {
            param: param.to_string(),
        },
        _ => ApiError::invalid_parameter(&e.parameter(), capitalised(&e.to_string())),
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => {
            let mut out: String = first.to_uppercase().collect();
            out.push_str(c.as_str());
            if !out.ends_with('.') {
                out.push('.');
            }
            out
        }
        None => String::new(),
    }
}

/// The vendor's root password rule: 8–32 characters from letters, digits and `!#$%^&*()_+-=`,
/// at least three of the four kinds. Checked, never stored (the simulated plane has no users).
fn check_password(p: &str) -> Result<(), ApiError> {
    const SPECIAL: &str = "!#$%^&*()_+-=";
    let len = p.chars().count();
    let allowed = p
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || SPECIAL.contains(c));
    let kinds = [
        p.chars().any(|c| c.is_ascii_uppercase()),
        p.chars().any(|c| c.is_ascii_lowercase()),
        p.chars().any(|c| c.is_ascii_digit()),
        p.chars().any(|c| SPECIAL.contains(c)),
    ]
    .iter()
    .filter(|&&k| k)
    .count();
    if (8..=32).contains(&len) && allowed && kinds >= 3 {
        Ok(())
    } else {
        Err(ApiError::invalid_parameter(
            "AccountPassword",
            "Use 8 to 32 characters with at least three of: uppercase letters, lowercase letters, digits, and !#$%^&*()_+-=.",
        ))
    }
}

/// A VPC-style id (`vpc-bp…`, `vsw-bp…`) for instances created without one.
fn generated_id(prefix: &str, region: &str) -> String {
    let mut rng = rand::thread_rng();
    format!(
        "{prefix}-{}{}",
        build::region_code(region),
        build::IdSource::alphanumeric(&mut rng, 18)
    )
}

/// Parameters shared by both creates, checked in the order the vendor's gateway does: presence,
/// then values.
fn parse_common(
    ctx: &Context,
    params: &Params,
    engine_required: bool,
) -> Result<CreateCommon, ApiError> {
    let region_id = required(params, "RegionId")?;
    let engine = if engine_required {
        Some(required(params, "Engine")?)
    } else {
        optional(params, "Engine")
    };
    let engine_version = required(params, "EngineVersion")?;
    for name in UNSUPPORTED {
        if optional(params, name).is_some() {
            return Err(ApiError::invalid_parameter(
                name,
                "ddsd does not support cloning, restoring, dedicated clusters or custom keys.",
            ));
        }
    }
    if optional_bool(params, "Encrypted")? == Some(true) {
        return Err(ApiError::invalid_parameter(
            "Encrypted",
            "ddsd does not support cloud disk encryption.",
        ));
    }
    let zones = ctx
        .regions
        .zones(region_id)
        .ok_or(ApiError::RegionNotFound)?;
    let zone_id = match optional(params, "ZoneId") {
        Some(z) if zones.contains(&z) => z.to_string(),
        Some(_) => return Err(ApiError::ZoneNotFound),
        None => zones
            .first()
            .map(|z| z.to_string())
            .ok_or(ApiError::ZoneNotFound)?,
    };
    for name in ["SecondaryZoneId", "HiddenZoneId"] {
        if let Some(z) = optional(params, name) {
            if !zones.contains(&z) {
                return Err(ApiError::ZoneNotFound);
            }
        }
    }
    let charge_type = match optional(params, "ChargeType") {
        None => ChargeType::PostPaid,
        Some(v) => v.parse::<ChargeType>().map_err(|_| {
            ApiError::invalid_parameter("ChargeType", "Valid values are PostPaid and PrePaid.")
        })?,
    };
    if charge_type == ChargeType::PrePaid {
        let period = required(params, "Period")?;
        let period = parse_u32("Period", period, 60)?;
        if !PERIODS.contains(&period) {
            return Err(ApiError::invalid_parameter(
                "Period",
                "Valid values are 1 to 9, 12, 24, 36 and 60.",
            ));
        }
    }
    if let Some(p) = optional(params, "AccountPassword") {
        check_password(p)?;
    }
    if let Some(v) = optional(params, "ProvisionedIops") {
        parse_u32("ProvisionedIops", v, 50_000)?;
    }
    optional_bool(params, "AutoRenew")?;
    if let Some(token) = optional(params, "ClientToken") {
        if token.len() > limits::MAX_CLIENT_TOKEN_LEN
            || !token.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(ApiError::invalid_parameter(
                "ClientToken",
                "Use at most 64 printable ASCII characters.",
            ));
        }
    }
    let mut tag_list: Vec<Tag> = Vec::new();
    for (i, (key, value)) in tags(params, build::MAX_TAGS)?.into_iter().enumerate() {
        if tag_list.iter().any(|t| t.key == key) {
            return Err(ApiError::invalid_parameter(
                &format!("Tag.{}.Key", i + 1),
                "Tag keys must be unique.",
            ));
        }
        tag_list.push(Tag {
            key,
            value: value.unwrap_or_default(),
        });
    }
    let vpc_id = optional(params, "VpcId")
        .map(str::to_string)
        .unwrap_or_else(|| generated_id("vpc", region_id));
    let vswitch_id = optional(params, "VSwitchId")
        .map(str::to_string)
        .unwrap_or_else(|| generated_id("vsw", region_id));
    Ok(CreateCommon {
        region_id: region_id.to_string(),
        zone_id,
        engine: engine.map(str::to_string),
        engine_version: engine_version.to_string(),
        description: optional(params, "DBInstanceDescription").map(str::to_string),
        storage_type: optional(params, "StorageType").map(str::to_string),
        storage_engine: optional(params, "StorageEngine").map(str::to_string),
        charge_type,
        network_type: optional(params, "NetworkType").map(str::to_string),
        vpc_id: Some(vpc_id),
        vswitch_id: Some(vswitch_id),
        resource_group_id: optional(params, "ResourceGroupId").map(str::to_string),
        tags: tag_list,
    })
}

/// What to build, validated.
enum Plan {
    ReplicaSet(CreateReplicaSet),
    Sharded(CreateSharded),
}

fn parse_replica_set(ctx: &Context, params: &Params) -> Result<Plan, ApiError> {
    // Presence first, in the vendor's order.
    let class = required(params, "DBInstanceClass")?;
    let storage = required(params, "DBInstanceStorage")?;
    let common = parse_common(ctx, params, false)?;
    let storage_gb = parse_u32("DBInstanceStorage", storage, u32::MAX)?;
    let replication_factor = optional_u32(params, "ReplicationFactor", 1_000)?.unwrap_or(3);
    let readonly_replicas = optional_u32(params, "ReadonlyReplicas", 1_000)?.unwrap_or(0);
    if classes::for_replica_set(class, replication_factor).is_none() {
        return Err(ApiError::ClassNotFound {
            param: "DBInstanceClass".into(),
        });
    }
    Ok(Plan::ReplicaSet(CreateReplicaSet {
        common,
        class: class.to_string(),
        storage_gb,
        replication_factor,
        readonly_replicas,
    }))
}

/// `Field` of list entry `n` (1-based), required.
fn entry_field<'a>(
    e: &'a ListEntry,
    prefix: &str,
    n: usize,
    field: &str,
) -> Result<&'a str, ApiError> {
    e.get(field).map(String::as_str).ok_or_else(|| {
        ApiError::invalid_parameter(
            &format!("{prefix}.{n}.{field}"),
            format!("Every {prefix}.N needs a {field}."),
        )
    })
}

fn entry_class<'a>(
    e: &'a ListEntry,
    prefix: &str,
    n: usize,
    role: Role,
) -> Result<&'a str, ApiError> {
    let class = entry_field(e, prefix, n, "Class")?;
    if classes::lookup(class, role).is_none() {
        return Err(ApiError::ClassNotFound {
            param: format!("{prefix}.{n}.Class"),
        });
    }
    Ok(class)
}

fn parse_sharded(ctx: &Context, params: &Params) -> Result<Plan, ApiError> {
    let max_shards = build::MAX_SHARDS;
    let shards = indexed_list(
        params,
        "ReplicaSet",
        &["Class", "Storage", "ReadonlyReplicas"],
        max_shards,
    )?;
    let config = indexed_list(params, "ConfigServer", &["Class", "Storage"], max_shards)?;
    let mongos = indexed_list(params, "Mongos", &["Class"], build::MAX_MONGOS)?;
    for (list, name) in [
        (&shards, "ReplicaSet"),
        (&config, "ConfigServer"),
        (&mongos, "Mongos"),
    ] {
        if list.is_empty() {
            return Err(ApiError::missing(&format!("{name}.1.Class")));
        }
    }
    let common = parse_common(ctx, params, true)?;
    let shards = shards
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let n = i + 1;
            let class = entry_class(e, "ReplicaSet", n, Role::Shard)?;
            let storage = entry_field(e, "ReplicaSet", n, "Storage")?;
            Ok(CreateShard {
                class: class.to_string(),
                storage_gb: parse_u32(&format!("ReplicaSet.{n}.Storage"), storage, u32::MAX)?,
                readonly_replicas: match e.get("ReadonlyReplicas") {
                    Some(v) => parse_u32(&format!("ReplicaSet.{n}.ReadonlyReplicas"), v, 1_000)?,
                    None => 0,
                },
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let config_servers = config
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let n = i + 1;
            let class = entry_class(e, "ConfigServer", n, Role::ConfigServer)?;
            let storage = entry_field(e, "ConfigServer", n, "Storage")?;
            Ok(CreateConfigServer {
                class: class.to_string(),
                storage_gb: parse_u32(&format!("ConfigServer.{n}.Storage"), storage, u32::MAX)?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let mongos = mongos
        .iter()
        .enumerate()
        .map(|(i, e)| {
            Ok(CreateMongos {
                class: entry_class(e, "Mongos", i + 1, Role::Mongos)?.to_string(),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    if let Some(p) = optional(params, "ProtocolType") {
        if p != "mongodb" && p != "dynamodb" {
            return Err(ApiError::invalid_parameter(
                "ProtocolType",
                "Valid values are mongodb and dynamodb.",
            ));
        }
    }
    Ok(Plan::Sharded(CreateSharded {
        common,
        shards,
        config_servers,
        mongos,
    }))
}

impl Plan {
    fn validate(&self, catalog: &Catalog) -> Result<(), ApiError> {
        match self {
            Plan::ReplicaSet(p) => build::validate_replica_set(p, catalog),
            Plan::Sharded(p) => build::validate_sharded(p, catalog),
        }
        .map(|_| ())
        .map_err(build_error)
    }

    fn engine_version(&self) -> &str {
        match self {
            Plan::ReplicaSet(p) => &p.common.engine_version,
            Plan::Sharded(p) => &p.common.engine_version,
        }
    }

    fn build(&self, catalog: &Catalog, creation_time: &str) -> Result<Instance, ApiError> {
        let mut rng = rand::thread_rng();
        match self {
            Plan::ReplicaSet(p) => {
                build::build_replica_set_instance(p, catalog, creation_time, &mut rng)
            }
            Plan::Sharded(p) => build::build_sharded_instance(p, catalog, creation_time, &mut rng),
        }
        .map_err(build_error)
    }
}

/// Every process of `instance` on `kernel` (also the sim-fleet's pinned deployments).
pub fn pin_kernel(instance: &mut Instance, kernel: &str) {
    match &mut instance.topology {
        Topology::Standalone { member } => member.kernel_version = kernel.to_string(),
        Topology::ReplicaSet { .. } => {}
        Topology::Sharded { mongos, .. } => {
            for m in mongos {
                m.kernel_version = kernel.to_string();
            }
        }
    }
    for rs in instance.topology.replica_sets_mut() {
        for m in &mut rs.members {
            m.kernel_version = kernel.to_string();
        }
    }
}

/// The operation a handler records, in the state the runtime starts it from.
fn new_operation(state: OperationState) -> NewOperation {
    state.new_operation(uuid::Uuid::new_v4().to_string())
}

/// A vendor-like 15-digit order number.
fn order_id() -> String {
    let n: u64 = rand::thread_rng().gen_range(100_000_000_000_000..1_000_000_000_000_000);
    n.to_string()
}

/// The creates' parameters. Reading them needs the region catalog (`RegionId`, `ZoneId`) and the
/// kernel catalog, so `create` reads them (`parse_replica_set` / `parse_sharded`) before it
/// writes anything.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    params: Params,
}

impl FromParams for CreateRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        Ok(Self {
            params: params.clone(),
        })
    }
}

/// `DBInstanceId` and the vendor's order number.
#[derive(Debug, Clone, Serialize)]
pub struct CreateResponse {
    #[serde(rename = "DBInstanceId")]
    pub db_instance_id: String,
    #[serde(rename = "OrderId")]
    pub order_id: String,
}

async fn create(
    ctx: Arc<Context>,
    req: CreateRequest,
    call: Call,
    sharded: bool,
    pinned: bool,
) -> Result<Value, ApiError> {
    let params = &req.params;
    let plan = if sharded {
        parse_sharded(&ctx, params)?
    } else {
        parse_replica_set(&ctx, params)?
    };
    let catalog = ctx.kernels.snapshot();
    plan.validate(&catalog)?;
    let kernel = if pinned {
        let k = required(params, "KernelVersion")?;
        match catalog.position(k) {
            Some((engine, _)) if engine == plan.engine_version() => Some(k.to_string()),
            _ => {
                return Err(ApiError::KernelVersionNotFound {
                    kernel: k.to_string(),
                    engine_version: plan.engine_version().to_string(),
                })
            }
        }
    } else {
        None
    };
    // The root account's SCRAM credentials (the key derivation is slow on purpose: off the async
    // workers).
    let root_account = match optional(params, "AccountPassword") {
        Some(p) => {
            let p = p.to_string();
            let encoded = tokio::task::spawn_blocking(move || {
                crate::server::wire::accounts::encode_password(&p)
            })
            .await
            .map_err(|_| ApiError::from(Gateway::InternalError))?;
            Some(encoded.map_err(|e| ApiError::invalid_parameter("AccountPassword", &e))?)
        }
        None => None,
    };
    let idem = call.idempotency;
    for _ in 0..ID_ATTEMPTS {
        let creation_time = format_timestamp(time::OffsetDateTime::now_utc());
        let mut instance = plan.build(&catalog, &creation_time)?;
        if let Some(k) = &kernel {
            pin_kernel(&mut instance, k);
        }
        let id = instance.id.clone();
        let response = respond(CreateResponse {
            db_instance_id: id.clone(),
            order_id: order_id(),
        })?;
        let idem = idem.clone().map(|mut i| {
            i.response = response.clone();
            i
        });
        match ctx
            .store
            .create_instance_with_operation(instance, new_operation(OperationState::create()), idem)
            .await
        {
            Ok(Accepted::New { .. }) => {
                if let Some(text) = &root_account {
                    if let Err(e) =
                        crate::server::wire::accounts::store_root_account(&*ctx.store, &id, text)
                            .await
                    {
                        tracing::error!(instance_id = %id, error = %e, "the root account could not be stored");
                        return Err(from_store(e));
                    }
                }
                ctx.operation_recorded();
                tracing::info!(instance_id = %id, "instance accepted for creation");
                return Ok(response);
            }
            Ok(Accepted::Replayed { response }) => return Ok(response),
            Err(StoreError::InstanceExists(_)) => continue,
            Err(e) => return Err(from_store(e)),
        }
    }
    tracing::error!("could not find a free DBInstanceId in {ID_ATTEMPTS} attempts");
    Err(Gateway::InternalError.into())
}

/// `CreateDBInstance`.
pub async fn create_db_instance(
    ctx: Arc<Context>,
    req: CreateRequest,
    call: Call,
) -> Result<Value, ApiError> {
    create(ctx, req, call, false, false).await
}

/// `CreateShardingDBInstance`.
pub async fn create_sharding_db_instance(
    ctx: Arc<Context>,
    req: CreateRequest,
    call: Call,
) -> Result<Value, ApiError> {
    create(ctx, req, call, true, false).await
}

/// `DdsdCreateDBInstance` (operator extension): `CreateDBInstance` + `KernelVersion`.
pub async fn ddsd_create_db_instance(
    ctx: Arc<Context>,
    req: CreateRequest,
    call: Call,
) -> Result<Value, ApiError> {
    create(ctx, req, call, false, true).await
}

/// `DdsdCreateShardingDBInstance` (operator extension): `CreateShardingDBInstance` + `KernelVersion`.
pub async fn ddsd_create_sharding_db_instance(
    ctx: Arc<Context>,
    req: CreateRequest,
    call: Call,
) -> Result<Value, ApiError> {
    create(ctx, req, call, true, true).await
}

/// `DeleteDBInstance`.
pub async fn delete_db_instance(
    ctx: Arc<Context>,
    req: InstanceRequest,
    call: Call,
) -> Result<Empty, ApiError> {
    let id = req.db_instance_id.as_str();
    let idem = call.idempotency.map(|mut i| {
        i.response = json!({});
        i
    });
    let instance = ctx.store.get_instance(id).await.map_err(from_store)?;
    match &instance {
        // Without a token there is nothing to replay: the instance is unknown (or already gone).
        None if idem.is_none() => return Err(ApiError::InstanceNotFound),
        Some(i) if i.charge_type == ChargeType::PrePaid => {
            return Err(ApiError::ChargeTypeViolation)
        }
        // A delete already accepted (a replayed token) is not refused after the fact.
        Some(i)
            if i.status != DbInstanceStatus::Deleting
                && super::attributes::release_protected(&ctx, id).await? =>
        {
            return Err(ApiError::InstanceReleaseProtection)
        }
        _ => {}
    }
    match ctx
        .store
        .begin_operation(
            id,
            &[DbInstanceStatus::Running],
            DbInstanceStatus::Deleting,
            new_operation(OperationState::delete()),
            idem,
        )
        .await
        .map_err(from_store)?
    {
        Accepted::New { .. } => {
            ctx.operation_recorded();
            tracing::info!(instance_id = %id, "instance accepted for deletion");
            Ok(Empty {})
        }
        // What was stored is `{}`.
        Accepted::Replayed { .. } => Ok(Empty {}),
    }
}

/// `ModifyDBInstanceMaintainTime`: `DBInstanceId`, `MaintainStartTime`, `MaintainEndTime`.
#[derive(Debug, Clone)]
pub struct MaintainTimeRequest {
    pub db_instance_id: String,
    pub window: MaintainWindow,
}

impl FromParams for MaintainTimeRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let db_instance_id = required(params, "DBInstanceId")?.to_string();
        Ok(Self {
            db_instance_id,
            window: super::params::maintain_window(params)?,
        })
    }
}

/// `ModifyDBInstanceMaintainTime`.
pub async fn modify_db_instance_maintain_time(
    ctx: Arc<Context>,
    req: MaintainTimeRequest,
    _call: Call,
) -> Result<Empty, ApiError> {
    ctx.store
        .modify_instance(
            &req.db_instance_id,
            InstancePatch {
                maintain_window: Some(req.window),
                ..InstancePatch::default()
            },
        )
        .await
        .map_err(from_store)?;
    Ok(Empty {})
}
