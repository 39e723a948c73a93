//! `DdsdImportDBInstance` (operator extension, admin, `mongodb` data plane only): registers a
//! replica set or sharded cluster that already runs on hosts ddsd does not own. The handler reads
//! and bounds the parameters, the plane discovers the topology over the wire and through the
//! agents (`plane::mongodb::discover`), and the instance is stored `Running` with its deployment
//! record in one transaction. From then on every vendor action works on it as on any instance.
//!
//! The password and the agents' secrets are stored for the plane's use and never returned nor
//! logged.

use super::errors::ApiError;
use super::params::{indexed_list, optional, required};
use super::{Call, Context, FromParams, Params};
use crate::agent::api::AgentEndpoint;
use crate::server::plane::mongodb::discover::{discover, ImportRequest as Discover};
use crate::server::store::StoreError;
use dds_engine::build;
use dds_engine::model::{
    ChargeType, DbInstanceStatus, Instance, LockMode, MaintainWindow, ReplicaSetKind, Topology,
};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// Agents one import may name.
pub const MAX_AGENTS: usize = 256;
/// Seeds one import may name.
pub const MAX_SEEDS: usize = 64;
const MAX_FIELD_LEN: usize = 256;

#[derive(Clone)]
pub struct ImportRequest {
    pub discover: Discover,
    pub description: Option<String>,
    pub region_id: Option<String>,
    pub zone_id: Option<String>,
}

fn bounded(name: &str, v: &str) -> Result<String, ApiError> {
    if v.is_empty() || v.len() > MAX_FIELD_LEN || v.chars().any(char::is_control) {
        return Err(ApiError::invalid_parameter(
            name,
            format!("Use 1 to {MAX_FIELD_LEN} printable characters."),
        ));
    }
    Ok(v.to_string())
}

impl FromParams for ImportRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let seeds: Vec<String> = required(params, "SeedList")?
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if seeds.is_empty() || seeds.len() > MAX_SEEDS {
            return Err(ApiError::invalid_parameter(
                "SeedList",
                format!("List 1 to {MAX_SEEDS} addresses as host:port, separated by commas."),
            ));
        }
        for s in &seeds {
            let ok = s
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !ok || s.len() > MAX_FIELD_LEN {
                return Err(ApiError::invalid_parameter(
                    "SeedList",
                    format!("{s} is not host:port."),
                ));
            }
        }
        let username = optional(params, "Username").unwrap_or_default().to_string();
        let password = optional(params, "Password").unwrap_or_default().to_string();
        if !username.is_empty() {
            bounded("Username", &username)?;
            bounded("Password", &password)?;
        }
        let auth_source = bounded(
            "AuthSource",
            optional(params, "AuthSource").unwrap_or("admin"),
        )?;
        let entries = indexed_list(
            params,
            "Agent",
            &["Endpoint", "AccessKeyId", "AccessKeySecret"],
            MAX_AGENTS,
        )?;
        if entries.is_empty() {
            return Err(ApiError::Missing {
                code: "MissingAgent.1.Endpoint".into(),
            });
        }
        let mut agents = Vec::new();
        for (i, mut e) in entries.into_iter().enumerate() {
            let mut field = |f: &str| -> Result<String, ApiError> {
                let name = format!("Agent.{}.{f}", i + 1);
                let v = e.remove(f).ok_or_else(|| ApiError::Missing {
                    code: format!("Missing{name}"),
                })?;
                bounded(&name, &v)
            };
            let endpoint = field("Endpoint")?;
            if !endpoint.starts_with("http://") {
                return Err(ApiError::invalid_parameter(
                    &format!("Agent.{}.Endpoint", i + 1),
                    "An agent endpoint looks like http://HOST:PORT.",
                ));
            }
            agents.push(AgentEndpoint {
                endpoint,
                access_key_id: field("AccessKeyId")?,
                access_key_secret: field("AccessKeySecret")?,
            });
        }
        let description = optional(params, "DBInstanceDescription")
            .map(|d| {
                if d.chars().count() > build::MAX_DESCRIPTION_CHARS {
                    Err(ApiError::invalid_parameter(
                        "DBInstanceDescription",
                        format!("Use at most {} characters.", build::MAX_DESCRIPTION_CHARS),
                    ))
                } else {
                    Ok(d.to_string())
                }
            })
            .transpose()?;
        Ok(ImportRequest {
            discover: Discover {
                seeds,
                username,
                password,
                auth_source,
                agents,
            },
            description,
            region_id: optional(params, "RegionId").map(str::to_string),
            zone_id: optional(params, "ZoneId").map(str::to_string),
        })
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImportResponse {
    #[serde(rename = "DBInstanceId")]
    pub db_instance_id: String,
    #[serde(rename = "DBInstanceType")]
    pub db_instance_type: String,
    pub engine_version: String,
    pub current_kernel_version: String,
}

pub async fn ddsd_import_db_instance(
    ctx: Arc<Context>,
    req: ImportRequest,
    _call: Call,
) -> Result<ImportResponse, ApiError> {
    let Some(plane) = ctx.mongo.clone() else {
        return Err(ApiError::NotMongoPlane);
    };
    let region = req.region_id.clone().unwrap_or_else(|| ctx.region.clone());
    let zones = ctx.regions.zones(&region).ok_or(ApiError::RegionNotFound)?;
    let zone = match &req.zone_id {
        Some(z) if zones.contains(&z.as_str()) => z.clone(),
        Some(_) => return Err(ApiError::ZoneNotFound),
        None => zones.first().map(|z| z.to_string()).unwrap_or_default(),
    };
    let cfg = plane.config();
    let found = discover(
        &req.discover,
        Duration::from_millis(cfg.connect_timeout_ms),
        Duration::from_millis(cfg.command_timeout_ms),
        Duration::from_millis(cfg.agent_timeout_ms.min(30_000)),
    )
    .await
    .map_err(|e| ApiError::invalid_parameter(e.parameter, e.reason))?;
    let catalog = ctx.kernels.snapshot();
    if catalog.kernels(&found.engine_version).is_none() {
        return Err(ApiError::EngineVersionNotFound {
            engine_version: found.engine_version.clone(),
        });
    }
    let id = {
        let mut rng = rand::thread_rng();
        build::instance_id(&region, &mut rng)
    };
    let mut sets = found.replica_sets.clone();
    let topology = if found.sharded {
        let config_server = sets.remove(0);
        Topology::Sharded {
            config_server,
            shards: sets,
            mongos: found.mongos.clone(),
        }
    } else {
        let mut replica_set = sets.remove(0);
        // The vendor names a replica-set instance's set by the instance.
        replica_set.node_id = id.clone();
        debug_assert_eq!(replica_set.kind, ReplicaSetKind::Instance);
        Topology::ReplicaSet { replica_set }
    };
    let (class, storage_gb) = match &topology {
        Topology::ReplicaSet { replica_set } => (replica_set.class.clone(), replica_set.storage_gb),
        _ => (String::new(), 0),
    };
    let instance = Instance {
        id: id.clone(),
        description: req.description.clone().unwrap_or_default(),
        region_id: region,
        zone_id: zone,
        engine: build::ENGINE.to_string(),
        engine_version: found.engine_version.clone(),
        class,
        storage_gb,
        storage_type: build::DEFAULT_STORAGE_TYPE.to_string(),
        storage_engine: build::STORAGE_ENGINE.to_string(),
        charge_type: ChargeType::PostPaid,
        network_type: build::NETWORK_TYPE.to_string(),
        vpc_id: String::new(),
        vswitch_id: String::new(),
        resource_group_id: String::new(),
        status: DbInstanceStatus::Running,
        lock_mode: LockMode::Unlock,
        maintain_window: MaintainWindow::default(),
        creation_time: acs_rpc::format_timestamp(time::OffsetDateTime::now_utc()),
        tags: Vec::new(),
        topology,
    };
    let current = instance
        .current_kernel_version(|k| catalog.ordinal(k))
        .unwrap_or_default();
    let response = ImportResponse {
        db_instance_id: id.clone(),
        db_instance_type: instance.instance_type().as_str().to_string(),
        engine_version: found.engine_version.clone(),
        current_kernel_version: current,
    };
    let setting = crate::server::plane::mongodb::record::setting(&id, &found.record)
        .map_err(|_| ApiError::Gateway(acs_rpc::Gateway::InternalError))?;
    ctx.store
        .import_instance(instance, vec![setting])
        .await
        .map_err(|e| match e {
            StoreError::InstanceExists(_) => ApiError::Gateway(acs_rpc::Gateway::InternalError),
            other => super::errors::from_store(other),
        })?;
    plane.adopt(&id, found.record).map_err(|e| {
        tracing::error!(instance_id = %id, error = %e, "storing the imported deployment");
        ApiError::Gateway(acs_rpc::Gateway::InternalError)
    })?;
    tracing::info!(instance_id = %id, sharded = found.sharded, "deployment imported");
    Ok(response)
}
