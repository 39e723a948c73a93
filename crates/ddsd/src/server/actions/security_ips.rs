//! The IP whitelist: `DescribeSecurityIps` and `ModifySecurityIps`, enforced by every wire listener of
//! the instance (`server::wire::whitelist`): a client whose address is in no group has its connection
//! closed before a byte is read.
//!
//! The whitelist is named groups (`SecurityIpGroupName`, 2–120 characters of lower-case letters, digits
//! and `_`, starting with a letter; `default` unless named) of IPv4 addresses and CIDR blocks
//! (`10.0.0.1`, `10.0.0.0/8`, `0.0.0.0/0`), at most 1,000 per group and 50 groups. An instance whose
//! whitelist was never set admits everyone who can reach its ports (they listen on loopback unless
//! `[wire] bind` says otherwise) and is described as the `default` group `0.0.0.0/0`; the vendor's new
//! instances start with `127.0.0.1` instead.
//!
//! - `DescribeSecurityIps` (`DBInstanceId`; `ShowHDMIps` accepted, ddsd has no DAS addresses):
//!   `SecurityIps` (the `default` group's list), `SecurityIpGroups.SecurityIpGroup[]`
//!   (`SecurityIpGroupName`, `SecurityIpGroupAttribute`, `SecurityIpList`).
//! - `ModifySecurityIps` (`DBInstanceId`, `SecurityIps` comma-separated and without duplicates,
//!   `ModifyMode` `Cover` (default: replace the group), `Append` (add; an address already there is
//!   `InvalidParameter`), `Extend` (add, merging duplicates), `Delete` (remove these addresses; a group
//!   other than `default` left empty is removed), `SecurityIpGroupName`, `SecurityIpGroupAttribute` (up
//!   to 120 letters and digits), `DryRun` (checks only, answered `DryRunOperation`), `ClientToken` (a
//!   retry with the same token and parameters answers `{}` again without applying twice)). Refused with
//!   `OperationDenied.DBInstanceStatus` unless the instance is `Running` with no unfinished operation,
//!   checked before anything changes. The listeners apply the change at once; connections already open
//!   stay.

use std::sync::Arc;

use serde::Serialize;

use super::attributes::idle;
use super::errors::{from_store, ApiError};
use super::params::{clip, optional, optional_bool, required};
use super::rolling::load_instance;
use super::{respond, Call, Context, FromParams, Params};
use crate::server::wire::accounts::announce;
use crate::server::wire::whitelist::{self, Block, Group, MAX_GROUPS, MAX_IPS};

const DEFAULT_GROUP: &str = "default";
/// What an instance whose whitelist was never set admits: everyone who reaches the port.
const OPEN: &str = "0.0.0.0/0";

fn groups_or_open(stored: Option<Vec<Group>>) -> Vec<Group> {
    stored.unwrap_or_else(|| {
        vec![Group {
            name: DEFAULT_GROUP.into(),
            attribute: String::new(),
            ips: vec![OPEN.into()],
        }]
    })
}

/// `DescribeSecurityIps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeRequest {
    pub db_instance_id: String,
}

impl FromParams for DescribeRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        optional_bool(params, "ShowHDMIps")?;
        Ok(Self {
            db_instance_id: required(params, "DBInstanceId")?.to_string(),
        })
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpGroup {
    pub security_ip_group_attribute: String,
    pub security_ip_group_name: String,
    pub security_ip_list: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpGroups {
    pub security_ip_group: Vec<IpGroup>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeResponse {
    pub security_ip_groups: IpGroups,
    pub security_ips: String,
}

/// `DescribeSecurityIps`.
pub async fn describe_security_ips(
    ctx: Arc<Context>,
    req: DescribeRequest,
    _call: Call,
) -> Result<DescribeResponse, ApiError> {
    let instance = load_instance(&ctx, &req.db_instance_id).await?;
    let groups = groups_or_open(
        whitelist::load(&*ctx.store, &instance.id)
            .await
            .map_err(from_store)?,
    );
    let security_ips = groups
        .iter()
        .find(|g| g.name == DEFAULT_GROUP)
        .map(|g| g.ips.join(","))
        .unwrap_or_default();
    Ok(DescribeResponse {
        security_ip_groups: IpGroups {
            security_ip_group: groups
                .into_iter()
                .map(|g| IpGroup {
                    security_ip_group_attribute: g.attribute,
                    security_ip_group_name: g.name,
                    security_ip_list: g.ips.join(","),
                })
                .collect(),
        },
        security_ips,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Cover,
    Append,
    Extend,
    Delete,
}

/// `ModifySecurityIps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModifyRequest {
    pub db_instance_id: String,
    pub ips: Vec<String>,
    pub mode: Mode,
    pub group: String,
    pub attribute: Option<String>,
    pub dry_run: bool,
}

fn group_name_ok(n: &str) -> bool {
    (2..=120).contains(&n.len())
        && n.starts_with(|c: char| c.is_ascii_lowercase())
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl FromParams for ModifyRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let db_instance_id = required(params, "DBInstanceId")?.to_string();
        let list = required(params, "SecurityIps")?;
        let mut ips: Vec<String> = Vec::new();
        for ip in list.split(',').map(str::trim) {
            if Block::parse(ip).is_none() {
                return Err(ApiError::invalid_parameter(
                    "SecurityIps",
                    format!(
                        "An IPv4 address or CIDR block (10.0.0.1, 10.0.0.0/8) is expected, got \"{}\".",
                        clip(ip)
                    ),
                ));
            }
            if ips.iter().any(|x| x == ip) {
                return Err(ApiError::invalid_parameter(
                    "SecurityIps",
                    format!("{} is given twice.", clip(ip)),
                ));
            }
            ips.push(ip.to_string());
        }
        if ips.len() > MAX_IPS {
            return Err(ApiError::invalid_parameter(
                "SecurityIps",
                format!("At most {MAX_IPS} addresses."),
            ));
        }
        let mode = match optional(params, "ModifyMode") {
            None | Some("Cover") => Mode::Cover,
            Some("Append") => Mode::Append,
            Some("Extend") => Mode::Extend,
            Some("Delete") => Mode::Delete,
            Some(v) => {
                return Err(ApiError::invalid_parameter(
                    "ModifyMode",
                    format!(
                        "Valid values are Cover, Append, Extend and Delete, got \"{}\".",
                        clip(v)
                    ),
                ))
            }
        };
        let group = optional(params, "SecurityIpGroupName").unwrap_or(DEFAULT_GROUP);
        if !group_name_ok(group) {
            return Err(ApiError::invalid_parameter(
                "SecurityIpGroupName",
                format!(
                    "2 to 120 lower-case letters, digits and underscores, starting with a letter; \
                     got \"{}\".",
                    clip(group)
                ),
            ));
        }
        let attribute = optional(params, "SecurityIpGroupAttribute");
        if let Some(a) = attribute {
            if a.len() > 120 || !a.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(ApiError::invalid_parameter(
                    "SecurityIpGroupAttribute",
                    format!("Up to 120 letters and digits, got \"{}\".", clip(a)),
                ));
            }
        }
        Ok(Self {
            db_instance_id,
            ips,
            mode,
            group: group.to_string(),
            attribute: attribute.map(str::to_string),
            dry_run: optional_bool(params, "DryRun")?.unwrap_or(false),
        })
    }
}

/// The groups after the change, or the refusal.
pub fn apply(mut groups: Vec<Group>, req: &ModifyRequest) -> Result<Vec<Group>, ApiError> {
    let at = match groups.iter().position(|g| g.name == req.group) {
        Some(i) => i,
        None => {
            if req.mode == Mode::Delete {
                return Err(ApiError::invalid_parameter(
                    "SecurityIpGroupName",
                    format!("The whitelist has no group {}.", req.group),
                ));
            }
            if groups.len() >= MAX_GROUPS {
                return Err(ApiError::invalid_parameter(
                    "SecurityIpGroupName",
                    format!("At most {MAX_GROUPS} groups."),
                ));
            }
            groups.push(Group {
                name: req.group.clone(),
                attribute: String::new(),
                ips: Vec::new(),
            });
            groups.len() - 1
        }
    };
    let g = &mut groups[at];
    match req.mode {
        Mode::Cover => g.ips = req.ips.clone(),
        Mode::Append => {
            if let Some(dup) = req.ips.iter().find(|ip| g.ips.contains(ip)) {
                return Err(ApiError::invalid_parameter(
                    "SecurityIps",
                    format!("{dup} is already in group {} (Extend merges).", g.name),
                ));
            }
            g.ips.extend(req.ips.iter().cloned());
        }
        Mode::Extend => {
            for ip in &req.ips {
                if !g.ips.contains(ip) {
                    g.ips.push(ip.clone());
                }
            }
        }
        Mode::Delete => g.ips.retain(|ip| !req.ips.contains(ip)),
    }
    if g.ips.len() > MAX_IPS {
        return Err(ApiError::invalid_parameter(
            "SecurityIps",
            format!("Group {} would hold more than {MAX_IPS} addresses.", g.name),
        ));
    }
    if let Some(a) = &req.attribute {
        g.attribute = a.clone();
    }
    if g.ips.is_empty() && g.name != DEFAULT_GROUP {
        groups.remove(at);
    }
    Ok(groups)
}

/// `ModifySecurityIps`.
pub async fn modify_security_ips(
    ctx: Arc<Context>,
    req: ModifyRequest,
    call: Call,
) -> Result<serde_json::Value, ApiError> {
    let instance = load_instance(&ctx, &req.db_instance_id).await?;
    // A retry of a request already applied answers as the first time (an Append retried would
    // otherwise find its own addresses).
    if let Some(replayed) = call.replayed(&ctx).await? {
        return Ok(replayed);
    }
    let stored = whitelist::load(&*ctx.store, &instance.id)
        .await
        .map_err(from_store)?;
    let groups = apply(groups_or_open(stored), &req)?;
    idle(&ctx, &instance.id, instance.status).await?;
    if req.dry_run {
        return Err(ApiError::DryRunOperation);
    }
    let (key, text) = whitelist::encoded(&instance.id, &groups);
    let response = respond(super::Empty {})?;
    match call.idempotency {
        Some(mut idem) => {
            idem.response = response.clone();
            if let Some(replayed) = ctx
                .store
                .put_setting_once(&key, &text, idem)
                .await
                .map_err(from_store)?
            {
                return Ok(replayed);
            }
        }
        None => ctx
            .store
            .put_setting(&key, &text)
            .await
            .map_err(from_store)?,
    }
    announce();
    tracing::info!(instance_id = %instance.id, group = %req.group, "whitelist changed");
    Ok(response)
}

#[cfg(test)]
mod tests {
    /// Request parameters, expected code and HTTP status.
    type Refusal<'a> = (Vec<(&'a str, &'a str)>, &'a str, u16);

    use super::*;
    use crate::server::actions::upgrade::test_support::{env, kernels, req, Env};
    use dds_engine::build::fixtures;
    use serde_json::{json, Value};

    async fn call(t: &Env, action: &str, params: &[(&str, &str)]) -> Result<Value, ApiError> {
        crate::server::actions::call(t.ctx.clone(), req(action, params)).await
    }

    fn modify(ips: &str, mode: &str, group: &str) -> ModifyRequest {
        let params: Params = [
            ("DBInstanceId", "dds-x"),
            ("SecurityIps", ips),
            ("ModifyMode", mode),
            ("SecurityIpGroupName", group),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        ModifyRequest::from_params(&params).unwrap()
    }

    #[test]
    fn modes_cover_append_extend_delete() {
        let g = groups_or_open(None);
        assert_eq!(g[0].ips, ["0.0.0.0/0"]);
        let g = apply(g, &modify("10.0.0.1,10.1.0.0/16", "Cover", "default")).unwrap();
        assert_eq!(g[0].ips, ["10.0.0.1", "10.1.0.0/16"]);
        let e = apply(g.clone(), &modify("10.0.0.1", "Append", "default")).unwrap_err();
        assert_eq!(e.code(), "InvalidParameter");
        let g = apply(g, &modify("10.0.0.1,10.0.0.2", "Extend", "default")).unwrap();
        assert_eq!(g[0].ips, ["10.0.0.1", "10.1.0.0/16", "10.0.0.2"]);
        let g = apply(g, &modify("192.168.1.1", "Append", "office")).unwrap();
        assert_eq!(g.len(), 2);
        let g = apply(g, &modify("192.168.1.1", "Delete", "office")).unwrap();
        assert_eq!(g.len(), 1, "an emptied group other than default goes");
        let g = apply(
            g,
            &modify("10.0.0.1,10.1.0.0/16,10.0.0.2", "Delete", "default"),
        )
        .unwrap();
        assert_eq!((g.len(), g[0].ips.len()), (1, 0), "default stays, empty");
        assert!(apply(g, &modify("10.0.0.1", "Delete", "nosuch")).is_err());
    }

    #[tokio::test]
    async fn describe_modify_retry_and_refusals() {
        let t = env(200.0).await;
        let (_, older) = kernels(&t, "4.4");
        let id = t
            .running_instance(
                "dds-ip1",
                fixtures::replica_set(fixtures::psh("rs", &older)),
                "4.4",
            )
            .await;
        let v = call(&t, "DescribeSecurityIps", &[("DBInstanceId", &id)])
            .await
            .unwrap();
        assert_eq!(
            v,
            json!({"SecurityIpGroups": {"SecurityIpGroup": [{"SecurityIpGroupAttribute": "",
                "SecurityIpGroupName": "default", "SecurityIpList": "0.0.0.0/0"}]},
                "SecurityIps": "0.0.0.0/0"})
        );
        let cases: Vec<Refusal> = vec![
            (vec![("DBInstanceId", &id)], "MissingSecurityIps", 400),
            (
                vec![("DBInstanceId", &id), ("SecurityIps", "10.0.0.300")],
                "InvalidParameter",
                400,
            ),
            (
                vec![("DBInstanceId", &id), ("SecurityIps", "10.0.0.1,10.0.0.1")],
                "InvalidParameter",
                400,
            ),
            (
                vec![
                    ("DBInstanceId", &id),
                    ("SecurityIps", "10.0.0.1"),
                    ("ModifyMode", "Replace"),
                ],
                "InvalidParameter",
                400,
            ),
            (
                vec![
                    ("DBInstanceId", &id),
                    ("SecurityIps", "10.0.0.1"),
                    ("SecurityIpGroupName", "Bad-Name"),
                ],
                "InvalidParameter",
                400,
            ),
            (
                vec![
                    ("DBInstanceId", &id),
                    ("SecurityIps", "10.0.0.1"),
                    ("DryRun", "true"),
                ],
                "DryRunOperation",
                400,
            ),
            (
                vec![("DBInstanceId", "dds-nope"), ("SecurityIps", "10.0.0.1")],
                "InvalidDBInstanceId.NotFound",
                404,
            ),
        ];
        for (params, code, status) in cases {
            let e = call(&t, "ModifySecurityIps", &params).await.unwrap_err();
            assert_eq!((e.code(), e.status()), (code, status), "{params:?}");
        }
        assert_eq!(
            whitelist::load(&*t.store, &id).await.unwrap(),
            None,
            "nothing changed"
        );

        // Append with a ClientToken, retried: applied once, answered twice.
        let params = [
            ("DBInstanceId", id.as_str()),
            ("SecurityIps", "10.0.0.1"),
            ("ModifyMode", "Append"),
            ("SecurityIpGroupName", "office"),
            ("SecurityIpGroupAttribute", "hq"),
            ("ClientToken", "tok-1"),
        ];
        assert_eq!(
            call(&t, "ModifySecurityIps", &params).await.unwrap(),
            json!({})
        );
        assert_eq!(
            call(&t, "ModifySecurityIps", &params).await.unwrap(),
            json!({})
        );
        let mut other = params;
        other[1] = ("SecurityIps", "10.0.0.2");
        let e = call(&t, "ModifySecurityIps", &other).await.unwrap_err();
        assert_eq!((e.code(), e.status()), ("IdempotentParameterMismatch", 400));
        let v = call(&t, "DescribeSecurityIps", &[("DBInstanceId", &id)])
            .await
            .unwrap();
        assert_eq!(
            v["SecurityIpGroups"]["SecurityIpGroup"][1],
            json!({"SecurityIpGroupAttribute": "hq", "SecurityIpGroupName": "office",
                "SecurityIpList": "10.0.0.1"})
        );
        assert_eq!(v["SecurityIps"], "0.0.0.0/0");

        // While a restart runs: refused.
        call(&t, "RestartDBInstance", &[("DBInstanceId", &id)])
            .await
            .unwrap();
        let e = call(
            &t,
            "ModifySecurityIps",
            &[("DBInstanceId", &id), ("SecurityIps", "127.0.0.1")],
        )
        .await
        .unwrap_err();
        assert_eq!(
            (e.code(), e.status()),
            ("OperationDenied.DBInstanceStatus", 403)
        );
        t.settled(&id, 30_000).await;
    }
}
