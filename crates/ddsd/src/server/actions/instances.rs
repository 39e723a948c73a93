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

use acs_rpc::{format_timestamp, Gateway, RpcError, Verified};
use dds_engine::build::{
    self, BuildError, CreateCommon, CreateConfigServer, CreateMongos, CreateReplicaSet,
    CreateShard, CreateSharded,
};
use dds_engine::catalog::Catalog;
use dds_engine::model::{
    ChargeType, DbInstanceStatus, Instance, MaintainWindow, Tag, Topology, UtcTimeOfDay,
};
use rand::Rng as _;
use serde_json::{json, Value};

use super::classes::{self, Role};
use super::errors::{self, from_store};
use super::params::{
    clip, fingerprint, indexed_list, optional, optional_bool, optional_u32, parse_u32, required,
    tags, ListEntry,
};
use super::Context;
use crate::server::runtime::OperationState;
use crate::server::store::{
    limits, Accepted, Idempotency, InstancePatch, NewOperation, StoreError,
};

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

fn build_error(e: BuildError) -> RpcError {
    match &e {
        BuildError::InvalidClass { param } => errors::class_not_found(param),
        _ => RpcError::invalid_parameter(&e.parameter(), capitalised(&e.to_string())),
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
fn check_password(p: &str) -> Result<(), RpcError> {
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
        Err(RpcError::invalid_parameter(
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
    req: &Verified,
    engine_required: bool,
) -> Result<CreateCommon, RpcError> {
    let region_id = required(req, "RegionId")?;
    let engine = if engine_required {
        Some(required(req, "Engine")?)
    } else {
        optional(req, "Engine")
    };
    let engine_version = required(req, "EngineVersion")?;
    for name in UNSUPPORTED {
        if optional(req, name).is_some() {
            return Err(RpcError::invalid_parameter(
                name,
                "ddsd does not support cloning, restoring, dedicated clusters or custom keys.",
            ));
        }
    }
    if optional_bool(req, "Encrypted")? == Some(true) {
        return Err(RpcError::invalid_parameter(
            "Encrypted",
            "ddsd does not support cloud disk encryption.",
        ));
    }
    let zones = ctx
        .regions
        .zones(region_id)
        .ok_or_else(errors::region_not_found)?;
    let zone_id = match optional(req, "ZoneId") {
        Some(z) if zones.contains(&z) => z.to_string(),
        Some(_) => return Err(errors::zone_not_found()),
        None => zones
            .first()
            .map(|z| z.to_string())
            .ok_or_else(errors::zone_not_found)?,
    };
    for name in ["SecondaryZoneId", "HiddenZoneId"] {
        if let Some(z) = optional(req, name) {
            if !zones.contains(&z) {
                return Err(errors::zone_not_found());
            }
        }
    }
    let charge_type = match optional(req, "ChargeType") {
        None => ChargeType::PostPaid,
        Some(v) => v.parse::<ChargeType>().map_err(|_| {
            RpcError::invalid_parameter("ChargeType", "Valid values are PostPaid and PrePaid.")
        })?,
    };
    if charge_type == ChargeType::PrePaid {
        let period = required(req, "Period")?;
        let period = parse_u32("Period", period, 60)?;
        if !PERIODS.contains(&period) {
            return Err(RpcError::invalid_parameter(
                "Period",
                "Valid values are 1 to 9, 12, 24, 36 and 60.",
            ));
        }
    }
    if let Some(p) = optional(req, "AccountPassword") {
        check_password(p)?;
    }
    if let Some(v) = optional(req, "ProvisionedIops") {
        parse_u32("ProvisionedIops", v, 50_000)?;
    }
    optional_bool(req, "AutoRenew")?;
    if let Some(token) = optional(req, "ClientToken") {
        if token.len() > limits::MAX_CLIENT_TOKEN_LEN
            || !token.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(RpcError::invalid_parameter(
                "ClientToken",
                "Use at most 64 printable ASCII characters.",
            ));
        }
    }
    let mut tag_list: Vec<Tag> = Vec::new();
    for (i, (key, value)) in tags(req, build::MAX_TAGS)?.into_iter().enumerate() {
        if tag_list.iter().any(|t| t.key == key) {
            return Err(RpcError::invalid_parameter(
                &format!("Tag.{}.Key", i + 1),
                "Tag keys must be unique.",
            ));
        }
        tag_list.push(Tag {
            key,
            value: value.unwrap_or_default(),
        });
    }
    let vpc_id = optional(req, "VpcId")
        .map(str::to_string)
        .unwrap_or_else(|| generated_id("vpc", region_id));
    let vswitch_id = optional(req, "VSwitchId")
        .map(str::to_string)
        .unwrap_or_else(|| generated_id("vsw", region_id));
    Ok(CreateCommon {
        region_id: region_id.to_string(),
        zone_id,
        engine: engine.map(str::to_string),
        engine_version: engine_version.to_string(),
        description: optional(req, "DBInstanceDescription").map(str::to_string),
        storage_type: optional(req, "StorageType").map(str::to_string),
        storage_engine: optional(req, "StorageEngine").map(str::to_string),
        charge_type,
        network_type: optional(req, "NetworkType").map(str::to_string),
        vpc_id: Some(vpc_id),
        vswitch_id: Some(vswitch_id),
        resource_group_id: optional(req, "ResourceGroupId").map(str::to_string),
        tags: tag_list,
    })
}

/// What to build, validated.
enum Plan {
    ReplicaSet(CreateReplicaSet),
    Sharded(CreateSharded),
}

fn parse_replica_set(ctx: &Context, req: &Verified) -> Result<Plan, RpcError> {
    // Presence first, in the vendor's order.
    let class = required(req, "DBInstanceClass")?;
    let storage = required(req, "DBInstanceStorage")?;
    let common = parse_common(ctx, req, false)?;
    let storage_gb = parse_u32("DBInstanceStorage", storage, u32::MAX)?;
    let replication_factor = optional_u32(req, "ReplicationFactor", 1_000)?.unwrap_or(3);
    let readonly_replicas = optional_u32(req, "ReadonlyReplicas", 1_000)?.unwrap_or(0);
    let role = if replication_factor == 1 {
        Role::Standalone
    } else {
        Role::ReplicaSet
    };
    if classes::lookup(class, role).is_none() {
        return Err(errors::class_not_found("DBInstanceClass"));
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
) -> Result<&'a str, RpcError> {
    e.get(field).map(String::as_str).ok_or_else(|| {
        RpcError::invalid_parameter(
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
) -> Result<&'a str, RpcError> {
    let class = entry_field(e, prefix, n, "Class")?;
    if classes::lookup(class, role).is_none() {
        return Err(errors::class_not_found(&format!("{prefix}.{n}.Class")));
    }
    Ok(class)
}

fn parse_sharded(ctx: &Context, req: &Verified) -> Result<Plan, RpcError> {
    let max_shards = build::MAX_SHARDS;
    let shards = indexed_list(
        req,
        "ReplicaSet",
        &["Class", "Storage", "ReadonlyReplicas"],
        max_shards,
    )?;
    let config = indexed_list(req, "ConfigServer", &["Class", "Storage"], max_shards)?;
    let mongos = indexed_list(req, "Mongos", &["Class"], build::MAX_MONGOS)?;
    for (list, name) in [
        (&shards, "ReplicaSet"),
        (&config, "ConfigServer"),
        (&mongos, "Mongos"),
    ] {
        if list.is_empty() {
            return Err(RpcError::missing(&format!("{name}.1.Class")));
        }
    }
    let common = parse_common(ctx, req, true)?;
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
        .collect::<Result<Vec<_>, RpcError>>()?;
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
        .collect::<Result<Vec<_>, RpcError>>()?;
    let mongos = mongos
        .iter()
        .enumerate()
        .map(|(i, e)| {
            Ok(CreateMongos {
                class: entry_class(e, "Mongos", i + 1, Role::Mongos)?.to_string(),
            })
        })
        .collect::<Result<Vec<_>, RpcError>>()?;
    if let Some(p) = optional(req, "ProtocolType") {
        if p != "mongodb" && p != "dynamodb" {
            return Err(RpcError::invalid_parameter(
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
    fn validate(&self, catalog: &Catalog) -> Result<(), RpcError> {
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

    fn build(&self, catalog: &Catalog, creation_time: &str) -> Result<Instance, RpcError> {
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

/// Every process of `instance` on `kernel`.
fn pin_kernel(instance: &mut Instance, kernel: &str) {
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

fn idempotency(req: &Verified) -> Option<Idempotency> {
    optional(req, "ClientToken").map(|token| Idempotency {
        scope: format!("{}/{}", req.access_key_id, req.action),
        client_token: token.to_string(),
        fingerprint: fingerprint(req),
        response: Value::Null,
    })
}

/// A vendor-like 15-digit order number.
fn order_id() -> String {
    let n: u64 = rand::thread_rng().gen_range(100_000_000_000_000..1_000_000_000_000_000);
    n.to_string()
}

async fn create(
    ctx: Arc<Context>,
    req: Verified,
    sharded: bool,
    pinned: bool,
) -> Result<Value, RpcError> {
    if pinned {
        ctx.require_admin(&req)?;
    }
    let plan = if sharded {
        parse_sharded(&ctx, &req)?
    } else {
        parse_replica_set(&ctx, &req)?
    };
    let catalog = ctx.kernels.snapshot();
    plan.validate(&catalog)?;
    let kernel = if pinned {
        let k = required(&req, "KernelVersion")?;
        match catalog.position(k) {
            Some((engine, _)) if engine == plan.engine_version() => Some(k.to_string()),
            _ => {
                return Err(RpcError::new(
                    "InvalidKernelVersion.NotFound",
                    404,
                    format!(
                        "Kernel version {} is not a catalogued kernel of engine version {}.",
                        clip(k),
                        clip(plan.engine_version())
                    ),
                ))
            }
        }
    } else {
        None
    };
    let idem = idempotency(&req);
    for _ in 0..ID_ATTEMPTS {
        let creation_time = format_timestamp(time::OffsetDateTime::now_utc());
        let mut instance = plan.build(&catalog, &creation_time)?;
        if let Some(k) = &kernel {
            pin_kernel(&mut instance, k);
        }
        let id = instance.id.clone();
        let response = json!({"DBInstanceId": id, "OrderId": order_id()});
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
pub async fn create_db_instance(ctx: Arc<Context>, req: Verified) -> Result<Value, RpcError> {
    create(ctx, req, false, false).await
}

/// `CreateShardingDBInstance`.
pub async fn create_sharding_db_instance(
    ctx: Arc<Context>,
    req: Verified,
) -> Result<Value, RpcError> {
    create(ctx, req, true, false).await
}

/// `DdsdCreateDBInstance` (operator extension): `CreateDBInstance` + `KernelVersion`.
pub async fn ddsd_create_db_instance(ctx: Arc<Context>, req: Verified) -> Result<Value, RpcError> {
    create(ctx, req, false, true).await
}

/// `DdsdCreateShardingDBInstance` (operator extension): `CreateShardingDBInstance` + `KernelVersion`.
pub async fn ddsd_create_sharding_db_instance(
    ctx: Arc<Context>,
    req: Verified,
) -> Result<Value, RpcError> {
    create(ctx, req, true, true).await
}

/// `DeleteDBInstance`.
pub async fn delete_db_instance(ctx: Arc<Context>, req: Verified) -> Result<Value, RpcError> {
    let id = required(&req, "DBInstanceId")?;
    let idem = idempotency(&req).map(|mut i| {
        i.response = json!({});
        i
    });
    let instance = ctx.store.get_instance(id).await.map_err(from_store)?;
    match &instance {
        // Without a token there is nothing to replay: the instance is unknown (or already gone).
        None if idem.is_none() => return Err(errors::instance_not_found()),
        Some(i) if i.charge_type == ChargeType::PrePaid => {
            return Err(errors::charge_type_violation())
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
            Ok(json!({}))
        }
        Accepted::Replayed { response } => Ok(response),
    }
}

fn time_of_day(req: &Verified, name: &str) -> Result<UtcTimeOfDay, RpcError> {
    let v = required(req, name)?;
    v.parse::<UtcTimeOfDay>().map_err(|_| {
        RpcError::invalid_parameter(
            name,
            format!("Use HH:mmZ in UTC, e.g. 18:00Z; got \"{}\".", clip(v)),
        )
    })
}

/// `ModifyDBInstanceMaintainTime`.
pub async fn modify_db_instance_maintain_time(
    ctx: Arc<Context>,
    req: Verified,
) -> Result<Value, RpcError> {
    let id = required(&req, "DBInstanceId")?;
    let start = time_of_day(&req, "MaintainStartTime")?;
    let end = time_of_day(&req, "MaintainEndTime")?;
    let window = MaintainWindow::new(start, end).ok_or_else(|| {
        RpcError::invalid_parameter(
            "MaintainEndTime",
            format!("The end time must be later than the start time ({start})."),
        )
    })?;
    ctx.store
        .modify_instance(
            id,
            InstancePatch {
                maintain_window: Some(window),
                ..InstancePatch::default()
            },
        )
        .await
        .map_err(from_store)?;
    Ok(json!({}))
}
