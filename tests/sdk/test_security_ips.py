"""DescribeSecurityIps and ModifySecurityIps end to end: the official Python SDKs (Tea, V3 signatures;
legacy aliyun-python-sdk-core + aliyun-python-sdk-dds, V1) change the whitelist, and pymongo, connecting
to the simulated members over MongoDB's wire protocol from 127.0.0.1, is refused while its address is
in no group and admitted again once it is.
"""

from __future__ import annotations

import pymongo
import pytest
from aliyunsdkdds.request.v20151201.DescribeSecurityIpsRequest import DescribeSecurityIpsRequest as LegacyDescribe
from aliyunsdkdds.request.v20151201.ModifySecurityIpsRequest import ModifySecurityIpsRequest as LegacyModify
from alibabacloud_dds20151201 import models as M
from pymongo.errors import ServerSelectionTimeoutError

from conftest import DdsdFactory
from test_instances import legacy_json, load, tea, wait_status
from test_instances_errors import legacy_expect, tea_expect
from test_wire import create_rs, describe, rs_uri


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    factory = DdsdFactory(tmp_path_factory.mktemp("security-ips"))
    d = factory.start(extra_args=["--sim-speed", "50"])
    yield d
    factory.stop_all()


def groups(d, iid: str) -> tuple[str, dict[str, tuple[str, str]]]:
    r = tea(d).describe_security_ips(M.DescribeSecurityIpsRequest(dbinstance_id=iid))
    body = load(M.DescribeSecurityIpsResponseBody, r.body.to_map())
    return body.security_ips, {g.security_ip_group_name: (g.security_ip_list, g.security_ip_group_attribute)
                               for g in body.security_ip_groups.security_ip_group}


def modify(d, iid: str, ips: str, **kw):
    r = tea(d).modify_security_ips(M.ModifySecurityIpsRequest(dbinstance_id=iid, security_ips=ips, **kw))
    return load(M.ModifySecurityIpsResponseBody, r.body.to_map())


def reachable(a: dict) -> bool:
    with pymongo.MongoClient(rs_uri(a), serverSelectionTimeoutMS=2_000, connectTimeoutMS=1_000) as c:
        try:
            c.admin.command("ping")
            return True
        except ServerSelectionTimeoutError:
            return False


def test_the_whitelist_is_enforced_by_the_members(server):
    iid = create_rs(server)
    a = describe(server, iid)
    assert groups(server, iid) == ("0.0.0.0/0", {"default": ("0.0.0.0/0", "")})
    assert reachable(a)

    with pymongo.MongoClient(rs_uri(a)) as open_session:
        open_session.app.t.insert_one({"x": 1})
        modify(server, iid, "10.0.0.0/8,192.168.1.7")
        assert groups(server, iid)[0] == "10.0.0.0/8,192.168.1.7"
        assert not reachable(a), "127.0.0.1 is in no group"
        # A connection opened before stays.
        assert open_session.app.t.count_documents({}) == 1

    modify(server, iid, "127.0.0.1", modify_mode="Append", security_ip_group_name="local",
           security_ip_group_attribute="dev", client_token="tok-append-1")
    # The SDK retrying with the same token: answered again, applied once.
    modify(server, iid, "127.0.0.1", modify_mode="Append", security_ip_group_name="local",
           security_ip_group_attribute="dev", client_token="tok-append-1")
    assert groups(server, iid)[1]["local"] == ("127.0.0.1", "dev")
    assert reachable(a)

    modify(server, iid, "127.0.0.1", modify_mode="Delete", security_ip_group_name="local")
    assert "local" not in groups(server, iid)[1]
    assert not reachable(a)


def test_legacy_v1_and_refusals(server):
    iid = create_rs(server)
    a = describe(server, iid)
    req = LegacyModify()
    req.set_DBInstanceId(iid)
    req.set_SecurityIps("127.0.0.1,10.1.2.0/24")
    assert set(legacy_json(server, req)) == {"RequestId"}
    d = LegacyDescribe()
    d.set_DBInstanceId(iid)
    body = legacy_json(server, d)
    load(M.DescribeSecurityIpsResponseBody, body)
    assert body["SecurityIps"] == "127.0.0.1,10.1.2.0/24"
    assert reachable(a)

    req.set_SecurityIps("127.0.0.1")
    req.set_ModifyMode("Append")
    legacy_expect(server, req, "InvalidParameter", 400, "SecurityIps")
    tea_expect(lambda: modify(server, iid, "300.1.1.1"), "InvalidParameter", 400)
    tea_expect(lambda: modify(server, iid, "10.0.0.1", modify_mode="Replace"), "InvalidParameter", 400)
    tea_expect(lambda: modify(server, iid, "10.0.0.1", dry_run=True), "DryRunOperation", 400)
    tea(server).restart_dbinstance(M.RestartDBInstanceRequest(dbinstance_id=iid))
    tea_expect(lambda: modify(server, iid, "10.0.0.1"), "OperationDenied.DBInstanceStatus", 403)
    wait_status(server, iid, "Running")
    assert groups(server, iid)[0] == "127.0.0.1,10.1.2.0/24"
