//! `DescribeRegions`: regions and zones from a catalog shipped with ddsd
//! (`crates/ddsd/data/regions.json`, embedded) or from `regions_file` in the config.
//!
//! Response shape (vendor): `Regions.DdsRegion[]{EndPoint, RegionId, RegionName,
//! Zones.Zone[]{VpcEnabled, ZoneId, ZoneName}}`; names in the language of `AcceptLanguage`
//! (`zh` default, `en`).

use std::path::Path;

use std::sync::Arc;

use crate::server::actions::errors::ApiError;
use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

use super::{optional, Call, Context, FromParams, Params};

const EMBEDDED: &str = include_str!("../../../data/regions.json");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Names {
    zh: String,
    en: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Zone {
    zone_id: String,
    zone_name: Names,
    vpc_enabled: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Region {
    region_id: String,
    end_point: String,
    region_name: Names,
    zones: Vec<Zone>,
}

/// The region/zone catalog.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct RegionCatalog {
    regions: Vec<Region>,
}

impl RegionCatalog {
    /// The catalog shipped with ddsd.
    pub fn embedded() -> RegionCatalog {
        Self::parse(EMBEDDED).expect("the embedded regions.json is valid (checked by a unit test)")
    }

    pub fn from_file(path: &Path) -> anyhow::Result<RegionCatalog> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in regions file {}", path.display()))
    }

    fn parse(text: &str) -> anyhow::Result<RegionCatalog> {
        let c: RegionCatalog = serde_json::from_str(text)?;
        if c.regions.is_empty() {
            bail!("no regions");
        }
        for (i, r) in c.regions.iter().enumerate() {
            if c.regions[..i].iter().any(|o| o.region_id == r.region_id) {
                bail!("region {} is listed twice", r.region_id);
            }
        }
        Ok(c)
    }

    pub fn contains(&self, region_id: &str) -> bool {
        self.regions.iter().any(|r| r.region_id == region_id)
    }

    /// The zone ids of a region, in catalog order; `None` for an unknown region.
    pub fn zones(&self, region_id: &str) -> Option<Vec<&str>> {
        self.regions
            .iter()
            .find(|r| r.region_id == region_id)
            .map(|r| r.zones.iter().map(|z| z.zone_id.as_str()).collect())
    }
}

#[derive(Debug, Clone, Copy)]
enum Language {
    Zh,
    En,
}

fn language(params: &Params) -> Result<Language, ApiError> {
    match optional(params, "AcceptLanguage") {
        None => Ok(Language::Zh),
        Some(v) => {
            let base = v.split(['-', '_']).next().unwrap_or("");
            if base.eq_ignore_ascii_case("zh") {
                Ok(Language::Zh)
            } else if base.eq_ignore_ascii_case("en") {
                Ok(Language::En)
            } else {
                Err(ApiError::invalid_parameter(
                    "AcceptLanguage",
                    "Valid values are zh and en.",
                ))
            }
        }
    }
}

fn name(n: &Names, lang: Language) -> &str {
    match lang {
        Language::Zh => &n.zh,
        Language::En => &n.en,
    }
}

/// `DescribeRegions`: `RegionId` (one region, else all), `AcceptLanguage`.
#[derive(Debug, Clone)]
pub struct DescribeRegionsRequest {
    region_id: Option<String>,
    language: Language,
}

impl FromParams for DescribeRegionsRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        Ok(Self {
            language: language(params)?,
            region_id: optional(params, "RegionId").map(str::to_string),
        })
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeRegionsResponse {
    pub regions: DdsRegions,
}

#[derive(Debug, Serialize)]
pub struct DdsRegions {
    #[serde(rename = "DdsRegion")]
    pub dds_region: Vec<DdsRegion>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DdsRegion {
    pub end_point: String,
    pub region_id: String,
    pub region_name: String,
    pub zones: Zones,
}

#[derive(Debug, Serialize)]
pub struct Zones {
    #[serde(rename = "Zone")]
    pub zone: Vec<ZoneItem>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ZoneItem {
    pub vpc_enabled: bool,
    pub zone_id: String,
    pub zone_name: String,
}

/// `DescribeRegions`.
pub async fn describe_regions(
    ctx: Arc<Context>,
    req: DescribeRegionsRequest,
    _call: Call,
) -> Result<DescribeRegionsResponse, ApiError> {
    let filter = req.region_id.as_deref();
    if let Some(id) = filter {
        if !ctx.regions.contains(id) {
            return Err(ApiError::RegionNotFound);
        }
    }
    let lang = req.language;
    let dds_region = ctx
        .regions
        .regions
        .iter()
        .filter(|r| filter.is_none_or(|id| r.region_id == id))
        .map(|r| DdsRegion {
            end_point: r.end_point.clone(),
            region_id: r.region_id.clone(),
            region_name: name(&r.region_name, lang).to_string(),
            zones: Zones {
                zone: r
                    .zones
                    .iter()
                    .map(|z| ZoneItem {
                        vpc_enabled: z.vpc_enabled,
                        zone_id: z.zone_id.clone(),
                        zone_name: name(&z.zone_name, lang).to_string(),
                    })
                    .collect(),
            },
        })
        .collect();
    Ok(DescribeRegionsResponse {
        regions: DdsRegions { dds_region },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::actions::testing::call_now;
    use acs_rpc::{Format, Scheme, Verified};
    use std::collections::BTreeMap;

    fn req(params: &[(&str, &str)]) -> Verified {
        Verified {
            action: "DescribeRegions".into(),
            version: "2015-12-01".into(),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            format: Format::Json,
            access_key_id: "testid".into(),
            scheme: Scheme::V1,
            nonce: "n".into(),
            timestamp: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn ctx() -> crate::server::actions::testing::TestCtx {
        crate::server::actions::testing::ctx()
    }

    #[test]
    fn embedded_catalog_has_the_public_regions_with_vendor_endpoints() {
        let c = RegionCatalog::embedded();
        for (id, endpoint) in [
            ("cn-hangzhou", "mongodb.aliyuncs.com"),
            ("cn-shanghai", "mongodb.aliyuncs.com"),
            ("cn-beijing", "mongodb.aliyuncs.com"),
            ("cn-shenzhen", "mongodb.cn-shenzhen.aliyuncs.com"),
            ("cn-qingdao", "mongodb.cn-qingdao.aliyuncs.com"),
            ("cn-zhangjiakou", "mongodb.cn-zhangjiakou.aliyuncs.com"),
            ("ap-southeast-1", "mongodb.ap-southeast-1.aliyuncs.com"),
            ("us-east-1", "mongodb.us-east-1.aliyuncs.com"),
            ("eu-central-1", "mongodb.eu-central-1.aliyuncs.com"),
        ] {
            let r = c
                .regions
                .iter()
                .find(|r| r.region_id == id)
                .unwrap_or_else(|| panic!("{id}"));
            assert_eq!(r.end_point, endpoint);
            assert!(!r.zones.is_empty());
            assert!(
                r.zones
                    .iter()
                    .all(|z| z.zone_id.starts_with(&format!("{id}-"))),
                "{id}"
            );
        }
    }

    #[test]
    fn all_regions_in_chinese_by_default() {
        let v = call_now(&ctx(), req(&[])).unwrap();
        let list = v["Regions"]["DdsRegion"].as_array().unwrap();
        assert_eq!(list.len(), RegionCatalog::embedded().regions.len());
        let hz = list
            .iter()
            .find(|r| r["RegionId"] == "cn-hangzhou")
            .unwrap();
        assert_eq!(hz["RegionName"], "华东1（杭州）");
        assert_eq!(hz["EndPoint"], "mongodb.aliyuncs.com");
        let zone = &hz["Zones"]["Zone"][0];
        assert_eq!(zone["VpcEnabled"], true);
        assert!(zone["ZoneName"].as_str().unwrap().contains("可用区"));
    }

    #[test]
    fn filter_and_english_names() {
        let v = call_now(
            &ctx(),
            req(&[("RegionId", "us-east-1"), ("AcceptLanguage", "en")]),
        )
        .unwrap();
        let list = v["Regions"]["DdsRegion"].as_array().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["RegionName"], "US (Virginia)");
        assert_eq!(list[0]["Zones"]["Zone"][0]["ZoneName"], "Virginia Zone A");
        let e = call_now(&ctx(), req(&[("RegionId", "mars-1")])).unwrap_err();
        assert_eq!((e.code(), e.status()), ("InvalidRegion.NotFound", 404));
        let e = call_now(&ctx(), req(&[("AcceptLanguage", "fr")])).unwrap_err();
        assert_eq!((e.code(), e.status()), ("InvalidParameter", 400));
        // An empty RegionId (legacy SDKs send empty optionals) means "all".
        let v = call_now(&ctx(), req(&[("RegionId", "")])).unwrap();
        assert!(v["Regions"]["DdsRegion"].as_array().unwrap().len() > 1);
    }
}
