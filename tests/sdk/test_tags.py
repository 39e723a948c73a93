"""TagResources, UntagResources, ListTagResources and DescribeTags end to end through the official
Python SDKs (Tea, V3 signatures; legacy aliyun-python-sdk-core + aliyun-python-sdk-dds, V1): the tags
are the instance's own (DescribeDBInstanceAttribute and DescribeDBInstances' Tag.N filter see them),
every response loads into the SDK's model, refusals carry the vendor's codes and change nothing.
"""

from __future__ import annotations

import pytest
from aliyunsdkdds.request.v20151201.ListTagResourcesRequest import ListTagResourcesRequest as LegacyList
from aliyunsdkdds.request.v20151201.TagResourcesRequest import TagResourcesRequest as LegacyTag
from alibabacloud_dds20151201 import models as M

from test_instances import REGION, attribute, legacy_json, load, start_fast, tea
from test_instances_errors import legacy_expect, tea_expect
from test_upgrade import pinned_rs, pinned_sharded, running


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    factory, d = start_fast(tmp_path_factory, "tags", speed="500")
    yield d
    factory.stop_all()


def tag(d, ids: list[str], tags: dict[str, str], v1: bool = False):
    r = tea(d, v1=v1).tag_resources(M.TagResourcesRequest(
        region_id=REGION, resource_type="INSTANCE", resource_id=ids,
        tag=[M.TagResourcesRequestTag(key=k, value=v) for k, v in tags.items()]))
    return load(M.TagResourcesResponseBody, r.body.to_map())


def listed(d, **kw) -> list[tuple[str, str, str]]:
    r = tea(d).list_tag_resources(M.ListTagResourcesRequest(region_id=REGION, resource_type="INSTANCE", **kw))
    body = load(M.ListTagResourcesResponseBody, r.body.to_map())
    return [(t.resource_id, t.tag_key, t.tag_value) for t in body.tag_resources.tag_resource]


def attribute_tags(d, iid: str) -> dict[str, str]:
    a = attribute(d, iid)
    return {t.key: t.value for t in (a.tags.tag if a.tags else [])}


def test_tag_list_describe_untag_with_tea(server):
    rs, sh = pinned_rs(server), pinned_sharded(server)
    running(server, rs, sh)
    tag(server, [rs, sh], {"env": "prod", "team": "db"})
    tag(server, [sh], {"env": "test"}, v1=True)
    assert attribute_tags(server, rs) == {"env": "prod", "team": "db"}
    assert attribute_tags(server, sh) == {"env": "test", "team": "db"}

    assert listed(server, tag=[M.ListTagResourcesRequestTag(key="env", value="prod")]) == [
        (rs, "env", "prod"), (rs, "team", "db")]
    assert sorted(listed(server, resource_id=[sh])) == [(sh, "env", "test"), (sh, "team", "db")]
    filtered = tea(server).describe_dbinstances(M.DescribeDBInstancesRequest(
        region_id=REGION, tag=[M.DescribeDBInstancesRequestTag(key="env", value="prod")]))
    assert [i.dbinstance_id for i in filtered.body.dbinstances.dbinstance] == [rs]

    r = tea(server).describe_tags(M.DescribeTagsRequest(region_id=REGION, resource_type="INSTANCE"))
    body = load(M.DescribeTagsResponseBody, r.body.to_map())
    got = {t.tag_key: t.tag_values for t in body.tags}
    assert got["env"] == ["prod", "test"] and got["team"] == ["db"]

    r = tea(server).untag_resources(M.UntagResourcesRequest(
        region_id=REGION, resource_type="INSTANCE", resource_id=[rs], tag_key=["env"]))
    load(M.UntagResourcesResponseBody, r.body.to_map())
    assert attribute_tags(server, rs) == {"team": "db"}
    r = tea(server).untag_resources(M.UntagResourcesRequest(
        region_id=REGION, resource_type="INSTANCE", resource_id=[sh], all=True))
    assert attribute_tags(server, sh) == {}


def test_legacy_v1_and_refusals(server):
    rs = pinned_rs(server)
    running(server, rs)
    req = LegacyTag()
    req.set_ResourceType("INSTANCE")
    req.set_ResourceIds([rs])
    req.set_Tags([{"Key": "owner", "Value": "ops"}])
    body = legacy_json(server, req)
    assert set(body) == {"RequestId"}
    assert attribute_tags(server, rs) == {"owner": "ops"}

    lst = LegacyList()
    lst.set_ResourceType("INSTANCE")
    lst.set_ResourceIds([rs])
    body = legacy_json(server, lst)
    load(M.ListTagResourcesResponseBody, body)
    assert body["TagResources"]["TagResource"] == [
        {"ResourceId": rs, "ResourceType": "INSTANCE", "TagKey": "owner", "TagValue": "ops"}]

    bad = LegacyTag()
    bad.set_ResourceType("INSTANCE")
    bad.set_ResourceIds([rs, "dds-bpnothere0000000"])
    bad.set_Tags([{"Key": "x", "Value": "y"}])
    legacy_expect(server, bad, "InvalidDBInstanceId.NotFound", 404)
    tea_expect(lambda: tag(server, [rs], {"aliyun-reserved": "v"}), "InvalidParameter", 400)
    tea_expect(lambda: tag(server, [rs], {f"k{i}": "v" for i in range(20)}), "InvalidParameter", 400)
    tea_expect(lambda: tea(server).tag_resources(M.TagResourcesRequest(
        region_id=REGION, resource_type="DISK", resource_id=[rs],
        tag=[M.TagResourcesRequestTag(key="k", value="v")])), "InvalidParameter", 400)
    tea_expect(lambda: tea(server).list_tag_resources(M.ListTagResourcesRequest(
        region_id=REGION, resource_type="INSTANCE")), "InvalidParameter", 400)
    assert attribute_tags(server, rs) == {"owner": "ops"}
