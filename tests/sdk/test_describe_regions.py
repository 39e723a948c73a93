"""DescribeRegions through the official Python SDKs, unchanged, pointed at a real ddsd.

- aliyun-python-sdk-core + aliyun-python-sdk-dds (legacy POP SDK, V1 HMAC-SHA1), JSON and XML;
- alibabacloud_dds20151201 (generated Tea SDK): V3 ACS3-HMAC-SHA256 by default, and V1 with
  `signature_algorithm='v2'` (which sends `Format=json` in lower case).

The legacy SDK hands back the raw body (it parses only errors), so these tests parse it; the Tea
SDK loads its own response model (`DescribeRegionsResponse.from_map`), and the tests read the
model's typed attributes.
"""

from __future__ import annotations

import json
import warnings

import pytest
from aliyunsdkcore.client import AcsClient
from aliyunsdkdds.request.v20151201.DescribeRegionsRequest import DescribeRegionsRequest
from alibabacloud_dds20151201 import models as dds_models
from alibabacloud_dds20151201.client import Client as TeaDdsClient
from alibabacloud_tea_openapi.utils_models import Config as TeaConfig

import acs_raw

HOME_REGION = "cn-hangzhou"  # the region the harness configures


def legacy_client(ddsd, secret: str | None = None) -> AcsClient:
    return AcsClient(ddsd.key_id, secret or ddsd.key_secret, HOME_REGION)


def legacy_request(ddsd, fmt: str = "JSON", region_filter: str | None = None) -> DescribeRegionsRequest:
    req = DescribeRegionsRequest()
    req.set_endpoint(ddsd.endpoint)  # instead of the regional mongodb.aliyuncs.com
    req.set_protocol_type("http")
    req.set_accept_format(fmt)
    if region_filter is not None:
        req.add_query_param("RegionId", region_filter)
    return req


def tea_client(ddsd, signature_algorithm: str | None = None) -> TeaDdsClient:
    cfg = TeaConfig(
        access_key_id=ddsd.key_id,
        access_key_secret=ddsd.key_secret,
        endpoint=ddsd.endpoint,
        protocol="http",
        region_id=HOME_REGION,
    )
    if signature_algorithm:
        cfg.signature_algorithm = signature_algorithm
    return TeaDdsClient(cfg)


def check_region_map(region: dict) -> None:
    """One `DdsRegion` as plain data (JSON, or XML turned into the same shape)."""
    assert isinstance(region["RegionId"], str) and region["RegionId"]
    assert isinstance(region["RegionName"], str) and region["RegionName"]
    assert isinstance(region["EndPoint"], str) and region["EndPoint"]
    zones = region["Zones"]["Zone"]
    assert isinstance(zones, list) and zones, f"region {region['RegionId']} lists no zones"
    for z in zones:
        assert z["ZoneId"].startswith(region["RegionId"] + "-"), z
        assert isinstance(z["ZoneName"], str) and z["ZoneName"]
        assert isinstance(z["VpcEnabled"], bool), z


def xml_regions(root) -> list[dict]:
    """The XML success body in the JSON shape, so both formats go through one check."""
    assert root.tag == "DescribeRegionsResponse"
    out = []
    regions = root.find("Regions")
    assert regions is not None, "no <Regions> in the XML body"
    for r in regions.findall("DdsRegion"):
        zones = []
        for z in r.find("Zones").findall("Zone"):
            vpc = z.findtext("VpcEnabled")
            assert vpc in ("true", "false"), vpc
            zones.append({"ZoneId": z.findtext("ZoneId"), "ZoneName": z.findtext("ZoneName"), "VpcEnabled": vpc == "true"})
        out.append(
            {
                "RegionId": r.findtext("RegionId"),
                "RegionName": r.findtext("RegionName"),
                "EndPoint": r.findtext("EndPoint"),
                "Zones": {"Zone": zones},
            }
        )
    return out


# ------------------------------------------------------------------ legacy core (V1), JSON/XML


def test_legacy_core_json_lists_regions_with_zones(ddsd):
    req = legacy_request(ddsd, "JSON")
    body = json.loads(legacy_client(ddsd).do_action_with_exception(req))
    # The SDK really signed and sent a JSON request (it forces JSON in do_action_with_exception).
    assert req.get_query_params()["Format"] == "JSON"
    assert "Format%3DJSON" in req.string_to_sign
    assert isinstance(body["RequestId"], str) and body["RequestId"]
    regions = body["Regions"]["DdsRegion"]
    assert isinstance(regions, list) and regions
    for r in regions:
        check_region_map(r)
    ids = [r["RegionId"] for r in regions]
    assert HOME_REGION in ids
    assert len(ids) == len(set(ids)), f"duplicate regions: {ids}"


def test_legacy_core_xml_really_requested_and_parsed(ddsd):
    # do_action_with_exception() overwrites the format with JSON (dds-api.md section 8, C4), so
    # XML needs the other entry point, which also hands back the response headers.
    req = legacy_request(ddsd, "XML")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        status, headers, body = legacy_client(ddsd).get_response(req)
    assert req.get_query_params()["Format"] == "XML"
    assert "Format%3DXML" in req.string_to_sign, req.string_to_sign
    assert status == 200, body
    assert headers["Content-Type"] == acs_raw.XML_CONTENT_TYPE
    root = acs_raw.ET.fromstring(body)
    assert root.findtext("RequestId")
    assert headers["x-acs-request-id"] == root.findtext("RequestId")
    regions = xml_regions(root)
    for r in regions:
        check_region_map(r)

    # Same content as the JSON answer.
    json_body = json.loads(legacy_client(ddsd).do_action_with_exception(legacy_request(ddsd, "JSON")))
    assert regions == json_body["Regions"]["DdsRegion"]


def test_legacy_core_region_filter_narrows_to_one(ddsd):
    everything = json.loads(legacy_client(ddsd).do_action_with_exception(legacy_request(ddsd)))
    full = {r["RegionId"]: r for r in everything["Regions"]["DdsRegion"]}
    for region_id in (HOME_REGION, next(rid for rid in sorted(full) if rid != HOME_REGION) if len(full) > 1 else HOME_REGION):
        body = json.loads(
            legacy_client(ddsd).do_action_with_exception(legacy_request(ddsd, region_filter=region_id))
        )
        regions = body["Regions"]["DdsRegion"]
        assert [r["RegionId"] for r in regions] == [region_id]
        assert regions[0] == full[region_id]


# ------------------------------------------------------------------- Tea SDK (V3 and V1 'v2')


@pytest.mark.parametrize("signature_algorithm", [None, "v2"], ids=["v3-default", "v1-v2mode"])
def test_tea_describe_regions_model(ddsd, signature_algorithm):
    resp = tea_client(ddsd, signature_algorithm).describe_regions(dds_models.DescribeRegionsRequest())
    assert isinstance(resp, dds_models.DescribeRegionsResponse)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == acs_raw.JSON_CONTENT_TYPE
    body = resp.body
    assert isinstance(body, dds_models.DescribeRegionsResponseBody)
    assert isinstance(body.request_id, str) and body.request_id
    assert resp.headers["x-acs-request-id"] == body.request_id
    regions = body.regions.dds_region
    assert isinstance(regions, list) and regions
    by_id = {}
    for r in regions:
        assert isinstance(r, dds_models.DescribeRegionsResponseBodyRegionsDdsRegion)
        # Types as documented (Appendix A): str, str, str, obj{Zone[]: {bool, str, str}}.
        assert isinstance(r.region_id, str) and r.region_id
        assert isinstance(r.region_name, str) and r.region_name
        assert isinstance(r.end_point, str) and r.end_point
        assert r.zones.zone, r.region_id
        for z in r.zones.zone:
            assert isinstance(z, dds_models.DescribeRegionsResponseBodyRegionsDdsRegionZonesZone)
            assert isinstance(z.vpc_enabled, bool)
            assert isinstance(z.zone_id, str) and z.zone_id.startswith(r.region_id + "-")
            assert isinstance(z.zone_name, str) and z.zone_name
        by_id[r.region_id] = r
    assert HOME_REGION in by_id

    filtered = tea_client(ddsd, signature_algorithm).describe_regions(
        dds_models.DescribeRegionsRequest(region_id=HOME_REGION)
    )
    assert [r.region_id for r in filtered.body.regions.dds_region] == [HOME_REGION]
    assert filtered.body.regions.dds_region[0].to_map() == by_id[HOME_REGION].to_map()


def test_all_clients_see_the_same_regions(ddsd):
    legacy = json.loads(legacy_client(ddsd).do_action_with_exception(legacy_request(ddsd)))
    tea = tea_client(ddsd).describe_regions(dds_models.DescribeRegionsRequest())
    assert tea.body.to_map()["Regions"] == legacy["Regions"]
