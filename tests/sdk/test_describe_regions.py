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
from alibabacloud_tea_openapi.exceptions import ClientException
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
# The legacy core always sends its client's region as `RegionId` (aliyunsdkcore RpcRequest.get_url),
# and `RegionId` is DescribeRegions' filter: a legacy client sees exactly its own region.


def test_legacy_core_json_lists_its_region_with_zones(ddsd):
    req = legacy_request(ddsd, "JSON")
    body = json.loads(legacy_client(ddsd).do_action_with_exception(req))
    # The SDK really signed and sent a JSON request (it forces JSON in do_action_with_exception).
    assert req.get_query_params()["Format"] == "JSON"
    assert "Format%3DJSON" in req.string_to_sign
    assert f"RegionId%3D{HOME_REGION}" in req.string_to_sign
    assert isinstance(body["RequestId"], str) and body["RequestId"]
    regions = body["Regions"]["DdsRegion"]
    assert [r["RegionId"] for r in regions] == [HOME_REGION]
    check_region_map(regions[0])


def test_legacy_core_xml_really_requested_and_parsed(ddsd):
    # do_action_with_exception() overwrites the format with JSON before signing (which is why
    # dds-api.md section 8, C4, saw JSON after set_accept_format("XML")). get_response() keeps the
    # requested format and also hands back the response headers.
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
    assert [r["RegionId"] for r in regions] == [HOME_REGION]
    check_region_map(regions[0])

    # Same content as the JSON answer.
    json_body = json.loads(legacy_client(ddsd).do_action_with_exception(legacy_request(ddsd, "JSON")))
    assert regions == json_body["Regions"]["DdsRegion"]


def test_legacy_core_region_follows_client_or_explicit_filter(ddsd):
    every = tea_client(ddsd).describe_regions(dds_models.DescribeRegionsRequest()).body.to_map()
    full = {r["RegionId"]: r for r in every["Regions"]["DdsRegion"]}
    others = sorted(rid for rid in full if rid != HOME_REGION)
    assert others, "the catalog should hold more than one region"
    other = others[0]

    # A client configured for another region sees that region ...
    client = AcsClient(ddsd.key_id, ddsd.key_secret, other)
    body = json.loads(client.do_action_with_exception(legacy_request(ddsd)))
    assert body["Regions"]["DdsRegion"] == [full[other]]
    # ... and an explicit RegionId parameter wins over the client's region.
    body = json.loads(legacy_client(ddsd).do_action_with_exception(legacy_request(ddsd, region_filter=other)))
    assert body["Regions"]["DdsRegion"] == [full[other]]


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


def test_unknown_region_filter_is_a_client_error(ddsd):
    with pytest.raises(ClientException) as info:
        tea_client(ddsd).describe_regions(dds_models.DescribeRegionsRequest(region_id="xx-nowhere-1"))
    assert (info.value.code, info.value.status_code) == ("InvalidRegion.NotFound", 404)
    assert info.value.data["Message"] == "The RegionId or ZoneId provided does not exist in our records."


def test_accept_language(ddsd):
    def names(lang):
        req = dds_models.DescribeRegionsRequest(accept_language=lang) if lang else dds_models.DescribeRegionsRequest()
        regions = tea_client(ddsd).describe_regions(req).body.regions.dds_region
        return {r.region_id: (r.region_name, [(z.zone_id, z.zone_name) for z in r.zones.zone]) for r in regions}

    default, zh, en = names(None), names("zh"), names("en")
    assert default == zh, "zh is the documented default"
    assert set(en) == set(zh)
    for rid in en:
        en_name, en_zones = en[rid]
        zh_name, zh_zones = zh[rid]
        assert en_name.isascii() and en_name != zh_name, (en_name, zh_name)
        assert [z for z, _ in en_zones] == [z for z, _ in zh_zones]
        assert all(name.isascii() for _, name in en_zones)


def test_xml_and_json_carry_the_same_regions(ddsd):
    def get(fmt):
        signed = acs_raw.sign_v1("GET", acs_raw.v1_common_params(ddsd.key_id, fmt=fmt), ddsd.key_secret)
        return acs_raw.v1_get(ddsd.endpoint, signed)

    as_json, as_xml = get("JSON"), get("XML")
    assert (as_json.status, as_xml.status) == (200, 200)
    assert as_xml.content_type == acs_raw.XML_CONTENT_TYPE
    from_xml = xml_regions(as_xml.xml())
    assert len(from_xml) > 1
    assert from_xml == as_json.json()["Regions"]["DdsRegion"]


def test_all_clients_see_the_same_regions(ddsd):
    tea = tea_client(ddsd).describe_regions(dds_models.DescribeRegionsRequest()).body.to_map()
    raw = acs_raw.v1_get(
        ddsd.endpoint, acs_raw.sign_v1("GET", acs_raw.v1_common_params(ddsd.key_id), ddsd.key_secret)
    )
    assert raw.status == 200, raw
    assert raw.json()["Regions"] == tea["Regions"]
    legacy = json.loads(legacy_client(ddsd).do_action_with_exception(legacy_request(ddsd)))
    assert legacy["Regions"]["DdsRegion"] == [r for r in tea["Regions"]["DdsRegion"] if r["RegionId"] == HOME_REGION]
