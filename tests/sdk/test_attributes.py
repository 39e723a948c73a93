"""ModifyDBInstanceDescription, ModifyDBInstanceAttribute (release protection) and ModifyResourceGroup
end to end through the official Python SDKs (Tea, V3 signatures; legacy aliyun-python-sdk-core +
aliyun-python-sdk-dds, V1): the new name / protection / group is what DescribeDBInstanceAttribute and
DescribeDBInstances show (and filter on); a protected instance is not deleted; a value that breaks the
vendor's rule, an unknown instance and an instance busy with an operation are refused with the vendor's
codes, and nothing changes.
"""

from __future__ import annotations

import pytest
from aliyunsdkdds.request.v20151201.ModifyDBInstanceAttributeRequest import (
    ModifyDBInstanceAttributeRequest as LegacyProtection,
)
from aliyunsdkdds.request.v20151201.ModifyDBInstanceDescriptionRequest import (
    ModifyDBInstanceDescriptionRequest as LegacyDescription,
)
from aliyunsdkdds.request.v20151201.ModifyResourceGroupRequest import ModifyResourceGroupRequest as LegacyResourceGroup
from alibabacloud_dds20151201 import models as M

from test_instances import REGION, attribute, legacy_json, load, start_fast, tea, wait_status
from test_instances_errors import legacy_expect, tea_expect
from test_upgrade import pinned_rs, running


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    factory, d = start_fast(tmp_path_factory, "attributes", speed="500")
    yield d
    factory.stop_all()


def rename(d, iid: str, name: str, v1: bool = False):
    r = tea(d, v1=v1).modify_dbinstance_description(
        M.ModifyDBInstanceDescriptionRequest(dbinstance_id=iid, dbinstance_description=name))
    assert r.status_code == 200
    return load(M.ModifyDBInstanceDescriptionResponseBody, r.body.to_map())


def test_rename_through_both_sdks(server):
    rs = pinned_rs(server)
    running(server, rs)
    rename(server, rs, "orders-primary")
    assert attribute(server, rs).dbinstance_description == "orders-primary"
    listed = tea(server).describe_dbinstances(M.DescribeDBInstancesRequest(
        region_id=REGION, dbinstance_description="orders-primary"))
    assert [i.dbinstance_id for i in listed.body.dbinstances.dbinstance] == [rs]
    rename(server, rs, "orders_v1", v1=True)
    assert attribute(server, rs).dbinstance_description == "orders_v1"

    req = LegacyDescription()
    req.set_DBInstanceId(rs)
    req.set_DBInstanceDescription("1-starts-with-a-digit")
    legacy_expect(server, req, "InvalidParameter", 400, "DBInstanceDescription")
    req.set_DBInstanceDescription("legacy-name")
    body = legacy_json(server, req)
    assert set(body) == {"RequestId"}
    assert attribute(server, rs).dbinstance_description == "legacy-name"


def test_refusals_change_nothing(server):
    rs = pinned_rs(server)
    running(server, rs)
    rename(server, rs, "kept")
    for name in ("x", "http://example", "a" * 257):
        tea_expect(lambda: rename(server, rs, name), "InvalidParameter", 400)
    tea_expect(lambda: rename(server, "dds-bpnothere0000000", "name"), "InvalidDBInstanceId.NotFound", 404)
    tea_expect(lambda: tea(server).modify_dbinstance_description(M.ModifyDBInstanceDescriptionRequest(
        dbinstance_id=rs, dbinstance_description="name", node_id="d-other")), "InvalidParameter", 400)

    tea(server).restart_dbinstance(M.RestartDBInstanceRequest(dbinstance_id=rs))
    tea_expect(lambda: rename(server, rs, "during-restart"), "OperationDenied.DBInstanceStatus", 403)
    wait_status(server, rs, "Running")
    assert attribute(server, rs).dbinstance_description == "kept"


def test_release_protection_refuses_delete_through_both_sdks(server):
    """`ModifyDBInstanceAttribute` (Tea V3 on, legacy V1 off): while release protection is on,
    `DeleteDBInstance` is refused with 403 `InstanceReleaseProtection` and the instance keeps running;
    `DescribeDBInstanceAttribute` shows the flag; once off, the delete goes through."""
    rs = pinned_rs(server)
    running(server, rs)
    assert attribute(server, rs).dbinstance_release_protection is False
    r = tea(server).modify_dbinstance_attribute(M.ModifyDBInstanceAttributeRequest(
        dbinstance_id=rs, dbinstance_release_protection=True))
    assert r.status_code == 200
    load(M.ModifyDBInstanceAttributeResponseBody, r.body.to_map())
    assert attribute(server, rs).dbinstance_release_protection is True
    tea_expect(lambda: tea(server).delete_dbinstance(M.DeleteDBInstanceRequest(dbinstance_id=rs)),
               "InstanceReleaseProtection", 403)
    assert attribute(server, rs).dbinstance_status == "Running"

    req = LegacyProtection()
    req.set_DBInstanceId(rs)
    req.set_DBInstanceReleaseProtection("yes")
    legacy_expect(server, req, "InvalidParameter", 400, "DBInstanceReleaseProtection")
    req.set_DBInstanceReleaseProtection(False)
    assert set(legacy_json(server, req)) == {"RequestId"}
    assert attribute(server, rs).dbinstance_release_protection is False
    r = tea(server).delete_dbinstance(M.DeleteDBInstanceRequest(dbinstance_id=rs))
    assert r.status_code == 200
    assert attribute(server, rs).dbinstance_status == "Deleting"


def test_resource_group_moves_through_both_sdks(server):
    """`ModifyResourceGroup` (Tea V3, then legacy V1): `DescribeDBInstanceAttribute` shows the group and
    `DescribeDBInstances` finds the instance by it; a bad id is refused and changes nothing."""
    rs = pinned_rs(server)
    running(server, rs)
    r = tea(server).modify_resource_group(M.ModifyResourceGroupRequest(
        dbinstance_id=rs, resource_group_id="rg-team2", region_id=REGION))
    assert r.status_code == 200
    load(M.ModifyResourceGroupResponseBody, r.body.to_map())
    assert attribute(server, rs).resource_group_id == "rg-team2"
    listed = tea(server).describe_dbinstances(M.DescribeDBInstancesRequest(
        region_id=REGION, resource_group_id="rg-team2")).body
    assert [i.dbinstance_id for i in listed.dbinstances.dbinstance] == [rs]

    req = LegacyResourceGroup()
    req.set_DBInstanceId(rs)
    req.set_ResourceGroupId("rg bad")
    legacy_expect(server, req, "InvalidParameter", 400, "ResourceGroupId")
    assert attribute(server, rs).resource_group_id == "rg-team2"
    req.set_ResourceGroupId("rg-team3")
    assert set(legacy_json(server, req)) == {"RequestId"}
    assert attribute(server, rs).resource_group_id == "rg-team3"
