//! Tags: `TagResources`, `UntagResources`, `ListTagResources`, `DescribeTags`. The tags are the
//! instance's own (`Tags.Tag[]` of the describe actions, `Tag.N` of `DescribeDBInstances` and of the
//! create actions), at most 20 per instance, keys unique.
//!
//! Every action takes `RegionId` (required: an instance of another region is not found) and
//! `ResourceType` (`INSTANCE`, any case; required where the vendor requires it). Resources are
//! `ResourceId.N` (1–50 instance ids).
//! - `TagResources`: adds `Tag.N.Key` / `Tag.N.Value` (1–20; the create rule: keys 1–128 characters,
//!   values up to 128, neither starting with `aliyun`, `acs:`, `http://`, `https://`) to every instance;
//!   a key already there takes the new value. Refused before anything changes when an instance is
//!   unknown (`InvalidDBInstanceId.NotFound`) or would end with more than 20 tags (`InvalidParameter`
//!   naming `Tag`).
//! - `UntagResources`: removes `TagKey.N` (1–20) from every instance, or, with `All=true` and no
//!   `TagKey`, every tag; keys an instance does not have are ignored.
//! - `ListTagResources`: `TagResources.TagResource[]` (`ResourceId`, `ResourceType` = `INSTANCE`,
//!   `TagKey`, `TagValue`) for the instances `ResourceId.N` names and/or that carry every `Tag.N`
//!   (a `Tag.N` without a value matches any value); one of the two is required. Sorted by instance and
//!   key; 50 per page, `NextToken` continues.
//! - `DescribeTags`: `Tags[]` of `TagKey` and its `TagValues[]` over every instance of the region (and of
//!   `ResourceGroupId`, if given), keys and values sorted; 50 keys per page, `NextToken` continues.
//!
//! Tags are metadata no operation works on: they may change while an upgrade or restart runs, as the
//! vendor allows, and the writes do not take `ClientToken` (the vendor's actions have none; a repeated
//! `TagResources` or `UntagResources` ends in the same state).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use dds_engine::build::tag_ok;
use dds_engine::model::{DbInstanceType, Instance, Tag};
use serde::Serialize;

use super::errors::{from_store, ApiError};
use super::params::{clip, optional, optional_bool, required, tags as tag_params};
use super::{Call, Context, Empty, FromParams, Params};
use crate::server::store::{InstanceFilter, InstancePatch, Page, TagFilter};

/// Most `ResourceId.N`.
pub const MAX_RESOURCES: usize = 50;
/// Most tags per instance, and per request.
pub const MAX_TAGS: usize = 20;
/// Rows (ListTagResources) or keys (DescribeTags) per page.
pub const PAGE: usize = 50;
/// Instances read per listing.
const MAX_SCAN: u32 = 10_000;

fn resource_type(params: &Params, required_here: bool) -> Result<(), ApiError> {
    let v = if required_here {
        Some(required(params, "ResourceType")?)
    } else {
        optional(params, "ResourceType")
    };
    match v {
        Some(t) if !t.eq_ignore_ascii_case("INSTANCE") => Err(ApiError::invalid_parameter(
            "ResourceType",
            format!("The only value is INSTANCE, got \"{}\".", clip(t)),
        )),
        _ => Ok(()),
    }
}

/// `<prefix>.1`, `<prefix>.2`, …: 1 to `max` values without gaps (empty values are absent).
fn repeated(params: &Params, prefix: &str, max: usize) -> Result<Vec<String>, ApiError> {
    let mut found: BTreeMap<usize, String> = BTreeMap::new();
    let dotted = format!("{prefix}.");
    for (k, v) in params {
        let Some(n) = k.strip_prefix(&dotted) else {
            continue;
        };
        let index = n
            .parse::<usize>()
            .ok()
            .filter(|i| (1..=max).contains(i) && !n.starts_with('0'));
        let Some(index) = index else {
            return Err(ApiError::invalid_parameter(
                &clip(k),
                format!("{prefix}.N takes N from 1 to {max}."),
            ));
        };
        if !v.is_empty() {
            found.insert(index, v.clone());
        }
    }
    if let Some((i, _)) = found.iter().enumerate().find(|(i, (n, _))| **n != i + 1) {
        return Err(ApiError::invalid_parameter(
            &format!("{prefix}.{}", i + 1),
            "The list has a gap.",
        ));
    }
    Ok(found.into_values().collect())
}

fn page_token(params: &Params) -> Result<usize, ApiError> {
    match optional(params, "NextToken") {
        None => Ok(0),
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|n| t.bytes().all(|b| b.is_ascii_digit()) && *n <= MAX_SCAN as usize * MAX_TAGS)
            .ok_or_else(|| {
                ApiError::invalid_parameter(
                    "NextToken",
                    format!("Not a token this endpoint gave out: \"{}\".", clip(t)),
                )
            }),
    }
}

/// `TagResources`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRequest {
    pub region_id: String,
    pub resource_ids: Vec<String>,
    pub tags: Vec<Tag>,
}

impl FromParams for TagRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let region_id = required(params, "RegionId")?.to_string();
        resource_type(params, true)?;
        let resource_ids = repeated(params, "ResourceId", MAX_RESOURCES)?;
        if resource_ids.is_empty() {
            return Err(ApiError::missing("ResourceId.1"));
        }
        let mut tags: Vec<Tag> = Vec::new();
        for (i, (key, value)) in tag_params(params, MAX_TAGS)?.into_iter().enumerate() {
            let value = value.unwrap_or_default();
            if !tag_ok(&key, &value) {
                return Err(ApiError::invalid_parameter(
                    &format!("Tag.{}.Key", i + 1),
                    "Keys are 1 to 128 characters, values up to 128, neither may start with \
                     aliyun, acs:, http:// or https://.",
                ));
            }
            tags.retain(|t| t.key != key);
            tags.push(Tag { key, value });
        }
        if tags.is_empty() {
            return Err(ApiError::missing("Tag.1.Key"));
        }
        Ok(Self {
            region_id,
            resource_ids,
            tags,
        })
    }
}

/// `UntagResources`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UntagRequest {
    pub region_id: String,
    pub resource_ids: Vec<String>,
    /// Empty with `all`: every tag.
    pub keys: Vec<String>,
    pub all: bool,
}

impl FromParams for UntagRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let region_id = required(params, "RegionId")?.to_string();
        resource_type(params, true)?;
        let resource_ids = repeated(params, "ResourceId", MAX_RESOURCES)?;
        if resource_ids.is_empty() {
            return Err(ApiError::missing("ResourceId.1"));
        }
        let keys = repeated(params, "TagKey", MAX_TAGS)?;
        let all = optional_bool(params, "All")?.unwrap_or(false);
        if keys.is_empty() && !all {
            return Err(ApiError::missing("TagKey.1"));
        }
        Ok(Self {
            region_id,
            resource_ids,
            keys,
            all,
        })
    }
}

/// The instances named, all of the region, or `InvalidDBInstanceId.NotFound` before anything changes.
async fn named(ctx: &Context, region: &str, ids: &[String]) -> Result<Vec<Instance>, ApiError> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        match ctx.store.get_instance(id).await.map_err(from_store)? {
            Some(i) if i.region_id == region => out.push(i),
            _ => return Err(ApiError::InstanceNotFound),
        }
    }
    Ok(out)
}

async fn set_tags(ctx: &Context, id: &str, tags: Vec<Tag>) -> Result<(), ApiError> {
    ctx.store
        .modify_instance(
            id,
            InstancePatch {
                tags: Some(tags),
                ..InstancePatch::default()
            },
        )
        .await
        .map_err(from_store)?;
    Ok(())
}

/// `TagResources`.
pub async fn tag_resources(
    ctx: Arc<Context>,
    req: TagRequest,
    _call: Call,
) -> Result<Empty, ApiError> {
    let instances = named(&ctx, &req.region_id, &req.resource_ids).await?;
    let mut merged = Vec::with_capacity(instances.len());
    for i in instances {
        let mut tags = i.tags.clone();
        for t in &req.tags {
            match tags.iter_mut().find(|o| o.key == t.key) {
                Some(o) => o.value = t.value.clone(),
                None => tags.push(t.clone()),
            }
        }
        if tags.len() > MAX_TAGS {
            return Err(ApiError::invalid_parameter(
                "Tag",
                format!(
                    "Instance {} would have {} tags; at most {MAX_TAGS} are allowed.",
                    i.id,
                    tags.len()
                ),
            ));
        }
        merged.push((i.id, tags));
    }
    for (id, tags) in merged {
        set_tags(&ctx, &id, tags).await?;
    }
    Ok(Empty {})
}

/// `UntagResources`.
pub async fn untag_resources(
    ctx: Arc<Context>,
    req: UntagRequest,
    _call: Call,
) -> Result<Empty, ApiError> {
    let instances = named(&ctx, &req.region_id, &req.resource_ids).await?;
    for i in instances {
        let tags: Vec<Tag> = if req.keys.is_empty() {
            Vec::new()
        } else {
            i.tags
                .iter()
                .filter(|t| !req.keys.contains(&t.key))
                .cloned()
                .collect()
        };
        if tags.len() != i.tags.len() {
            set_tags(&ctx, &i.id, tags).await?;
        }
    }
    Ok(Empty {})
}

/// Every instance of the region (both `DBInstanceType`s) matching the tag filters and resource group.
async fn all_instances(
    ctx: &Context,
    region: &str,
    tags: Vec<TagFilter>,
    resource_group_id: Option<String>,
) -> Result<Vec<Instance>, ApiError> {
    let mut out = Vec::new();
    for instance_type in [DbInstanceType::Replicate, DbInstanceType::Sharding] {
        let filter = InstanceFilter {
            instance_type,
            region_id: Some(region.to_string()),
            tags: tags.clone(),
            resource_group_id: resource_group_id.clone(),
            ..InstanceFilter::default()
        };
        for number in 1..=(MAX_SCAN / 100) {
            let page = Page::new(number, 100).map_err(from_store)?;
            let got = ctx
                .store
                .list_instances(&filter, page)
                .await
                .map_err(from_store)?;
            let n = got.instances.len();
            out.extend(got.instances);
            if n < 100 {
                break;
            }
        }
    }
    Ok(out)
}

/// `ListTagResources`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListTagsRequest {
    pub region_id: String,
    pub resource_ids: Vec<String>,
    pub tags: Vec<TagFilter>,
    pub offset: usize,
}

impl FromParams for ListTagsRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let region_id = required(params, "RegionId")?.to_string();
        resource_type(params, true)?;
        let resource_ids = repeated(params, "ResourceId", MAX_RESOURCES)?;
        let tags: Vec<TagFilter> = tag_params(params, MAX_TAGS)?
            .into_iter()
            .map(|(key, value)| TagFilter { key, value })
            .collect();
        if resource_ids.is_empty() && tags.is_empty() {
            return Err(ApiError::invalid_parameter(
                "ResourceId",
                "Give ResourceId.N or Tag.N.",
            ));
        }
        Ok(Self {
            region_id,
            resource_ids,
            tags,
            offset: page_token(params)?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagResource {
    pub resource_id: String,
    pub resource_type: String,
    pub tag_key: String,
    pub tag_value: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagResources {
    pub tag_resource: Vec<TagResource>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    pub tag_resources: TagResources,
}

fn matches(i: &Instance, filters: &[TagFilter]) -> bool {
    filters.iter().all(|f| {
        i.tags
            .iter()
            .any(|t| t.key == f.key && f.value.as_ref().is_none_or(|v| *v == t.value))
    })
}

/// `ListTagResources`.
pub async fn list_tag_resources(
    ctx: Arc<Context>,
    req: ListTagsRequest,
    _call: Call,
) -> Result<ListTagsResponse, ApiError> {
    let instances = if req.resource_ids.is_empty() {
        all_instances(&ctx, &req.region_id, req.tags.clone(), None).await?
    } else {
        let mut v = Vec::new();
        for id in &req.resource_ids {
            if let Some(i) = ctx.store.get_instance(id).await.map_err(from_store)? {
                if i.region_id == req.region_id && matches(&i, &req.tags) {
                    v.push(i);
                }
            }
        }
        v
    };
    let mut rows: Vec<TagResource> = instances
        .iter()
        .flat_map(|i| {
            i.tags.iter().map(|t| TagResource {
                resource_id: i.id.clone(),
                resource_type: "INSTANCE".into(),
                tag_key: t.key.clone(),
                tag_value: t.value.clone(),
            })
        })
        .collect();
    rows.sort_by(|a, b| (&a.resource_id, &a.tag_key).cmp(&(&b.resource_id, &b.tag_key)));
    rows.dedup();
    let next = req.offset + PAGE;
    let next_token = (rows.len() > next).then(|| next.to_string());
    let tag_resource = rows.into_iter().skip(req.offset).take(PAGE).collect();
    Ok(ListTagsResponse {
        next_token,
        tag_resources: TagResources { tag_resource },
    })
}

/// `DescribeTags`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeTagsRequest {
    pub region_id: String,
    pub resource_group_id: Option<String>,
    pub offset: usize,
}

impl FromParams for DescribeTagsRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let region_id = required(params, "RegionId")?.to_string();
        resource_type(params, false)?;
        Ok(Self {
            region_id,
            resource_group_id: optional(params, "ResourceGroupId").map(str::to_string),
            offset: page_token(params)?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagKeyValues {
    pub tag_key: String,
    pub tag_values: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeTagsResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    pub tags: Vec<TagKeyValues>,
}

/// `DescribeTags`.
pub async fn describe_tags(
    ctx: Arc<Context>,
    req: DescribeTagsRequest,
    _call: Call,
) -> Result<DescribeTagsResponse, ApiError> {
    let instances = all_instances(
        &ctx,
        &req.region_id,
        Vec::new(),
        req.resource_group_id.clone(),
    )
    .await?;
    let mut keys: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for t in instances.iter().flat_map(|i| i.tags.iter()) {
        keys.entry(t.key.clone())
            .or_default()
            .insert(t.value.clone());
    }
    let next = req.offset + PAGE;
    let next_token = (keys.len() > next).then(|| next.to_string());
    let tags = keys
        .into_iter()
        .skip(req.offset)
        .take(PAGE)
        .map(|(tag_key, values)| TagKeyValues {
            tag_key,
            tag_values: values.into_iter().collect(),
        })
        .collect();
    Ok(DescribeTagsResponse { next_token, tags })
}

#[cfg(test)]
mod tests {
    /// Request parameters, expected code and HTTP status.
    type Refusal<'a> = (Vec<(&'a str, &'a str)>, &'a str, u16);

    use super::*;
    use crate::server::actions::upgrade::test_support::{env, kernels, req, Env};
    use crate::server::store::Store;
    use dds_engine::build::fixtures;
    use serde_json::{json, Value};

    const REGION: (&str, &str) = ("RegionId", "cn-hangzhou");
    const TYPE: (&str, &str) = ("ResourceType", "INSTANCE");

    async fn call(t: &Env, action: &str, params: &[(&str, &str)]) -> Result<Value, ApiError> {
        crate::server::actions::call(t.ctx.clone(), req(action, params)).await
    }

    async fn tags_of(t: &Env, id: &str) -> Vec<(String, String)> {
        let i = t.store.get_instance(id).await.unwrap().unwrap();
        i.tags.into_iter().map(|t| (t.key, t.value)).collect()
    }

    #[tokio::test]
    async fn tag_list_describe_untag() {
        let t = env(200.0).await;
        let (_, older) = kernels(&t, "4.4");
        let a = t
            .running_instance(
                "dds-tg1",
                fixtures::replica_set(fixtures::psh("rs", &older)),
                "4.4",
            )
            .await;
        let b = t
            .running_instance("dds-tg2", fixtures::sharded(2, 2, &older), "4.4")
            .await;
        let v = call(
            &t,
            "TagResources",
            &[
                REGION,
                TYPE,
                ("ResourceId.1", &a),
                ("ResourceId.2", &b),
                ("Tag.1.Key", "env"),
                ("Tag.1.Value", "prod"),
                ("Tag.2.Key", "team"),
                ("Tag.2.Value", "db"),
            ],
        )
        .await
        .unwrap();
        assert_eq!(v, json!({}));
        // A key already there takes the new value.
        call(
            &t,
            "TagResources",
            &[
                REGION,
                TYPE,
                ("ResourceId.1", &b),
                ("Tag.1.Key", "env"),
                ("Tag.1.Value", "test"),
            ],
        )
        .await
        .unwrap();
        assert_eq!(
            tags_of(&t, &a).await,
            [("env".into(), "prod".into()), ("team".into(), "db".into())]
        );
        assert_eq!(
            tags_of(&t, &b).await,
            [("env".into(), "test".into()), ("team".into(), "db".into())]
        );

        let v = call(
            &t,
            "ListTagResources",
            &[REGION, TYPE, ("Tag.1.Key", "env"), ("Tag.1.Value", "prod")],
        )
        .await
        .unwrap();
        assert_eq!(
            v,
            json!({"TagResources": {"TagResource": [
                {"ResourceId": a, "ResourceType": "INSTANCE", "TagKey": "env", "TagValue": "prod"},
                {"ResourceId": a, "ResourceType": "INSTANCE", "TagKey": "team", "TagValue": "db"},
            ]}})
        );
        let v = call(
            &t,
            "ListTagResources",
            &[REGION, TYPE, ("ResourceId.1", &b)],
        )
        .await
        .unwrap();
        assert_eq!(
            v["TagResources"]["TagResource"].as_array().unwrap().len(),
            2
        );
        let v = call(&t, "DescribeTags", &[REGION]).await.unwrap();
        assert_eq!(
            v,
            json!({"Tags": [
                {"TagKey": "env", "TagValues": ["prod", "test"]},
                {"TagKey": "team", "TagValues": ["db"]},
            ]})
        );

        call(
            &t,
            "UntagResources",
            &[
                REGION,
                TYPE,
                ("ResourceId.1", &a),
                ("TagKey.1", "env"),
                ("TagKey.2", "nope"),
            ],
        )
        .await
        .unwrap();
        assert_eq!(tags_of(&t, &a).await, [("team".into(), "db".into())]);
        call(
            &t,
            "UntagResources",
            &[REGION, TYPE, ("ResourceId.1", &b), ("All", "true")],
        )
        .await
        .unwrap();
        assert!(tags_of(&t, &b).await.is_empty());

        // Refusals change nothing.
        let twenty: Vec<(String, String)> = (1..=20)
            .flat_map(|i| {
                [
                    (format!("Tag.{i}.Key"), format!("k{i}")),
                    (format!("Tag.{i}.Value"), "v".to_string()),
                ]
            })
            .collect();
        let mut full: Vec<(&str, &str)> = vec![REGION, TYPE, ("ResourceId.1", &a)];
        full.extend(twenty.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let cases: Vec<Refusal> = vec![
            (
                vec![TYPE, ("ResourceId.1", &a), ("Tag.1.Key", "k")],
                "MissingRegionId",
                400,
            ),
            (
                vec![REGION, ("ResourceId.1", &a), ("Tag.1.Key", "k")],
                "MissingResourceType",
                400,
            ),
            (
                vec![
                    REGION,
                    ("ResourceType", "DISK"),
                    ("ResourceId.1", &a),
                    ("Tag.1.Key", "k"),
                ],
                "InvalidParameter",
                400,
            ),
            (
                vec![REGION, TYPE, ("Tag.1.Key", "k")],
                "MissingResourceId.1",
                400,
            ),
            (
                vec![REGION, TYPE, ("ResourceId.1", &a)],
                "MissingTag.1.Key",
                400,
            ),
            (
                vec![
                    REGION,
                    TYPE,
                    ("ResourceId.1", &a),
                    ("Tag.1.Key", "aliyun:x"),
                ],
                "InvalidParameter",
                400,
            ),
            (
                vec![REGION, TYPE, ("ResourceId.2", &a), ("Tag.1.Key", "k")],
                "InvalidParameter",
                400,
            ),
            (
                vec![
                    REGION,
                    TYPE,
                    ("ResourceId.1", &a),
                    ("ResourceId.2", "dds-nope"),
                    ("Tag.1.Key", "k"),
                ],
                "InvalidDBInstanceId.NotFound",
                404,
            ),
            (
                vec![
                    ("RegionId", "cn-beijing"),
                    TYPE,
                    ("ResourceId.1", &a),
                    ("Tag.1.Key", "k"),
                ],
                "InvalidDBInstanceId.NotFound",
                404,
            ),
            (full, "InvalidParameter", 400),
        ];
        for (params, code, status) in cases {
            let e = call(&t, "TagResources", &params).await.unwrap_err();
            assert_eq!((e.code(), e.status()), (code, status), "{params:?}");
        }
        assert_eq!(tags_of(&t, &a).await, [("team".into(), "db".into())]);
        for (action, params, code) in [
            (
                "UntagResources",
                vec![REGION, TYPE, ("ResourceId.1", a.as_str())],
                "MissingTagKey.1",
            ),
            ("ListTagResources", vec![REGION, TYPE], "InvalidParameter"),
            (
                "ListTagResources",
                vec![
                    REGION,
                    TYPE,
                    ("ResourceId.1", a.as_str()),
                    ("NextToken", "x"),
                ],
                "InvalidParameter",
            ),
            ("DescribeTags", vec![TYPE], "MissingRegionId"),
        ] {
            let e = call(&t, action, &params).await.unwrap_err();
            assert_eq!((e.code(), e.status()), (code, 400), "{action} {params:?}");
        }
    }
}
