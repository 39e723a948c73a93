"""DescribeAccounts, ResetAccountPassword and ModifyAccountDescription end to end: the official Python
SDKs (Tea, V3 signatures; legacy aliyun-python-sdk-core + aliyun-python-sdk-dds, V1) change the `root`
account, and pymongo, logging in to the simulated members over MongoDB's wire protocol, sees it: the
new password authenticates, the old one is `AuthenticationFailed` (18), an authenticated session stays.
"""

from __future__ import annotations

import pymongo
import pytest
from aliyunsdkdds.request.v20151201.DescribeAccountsRequest import DescribeAccountsRequest as LegacyAccounts
from aliyunsdkdds.request.v20151201.ResetAccountPasswordRequest import ResetAccountPasswordRequest as LegacyReset
from alibabacloud_dds20151201 import models as M
from pymongo.errors import OperationFailure

from conftest import DdsdFactory
from test_instances import legacy_json, load, tea, wait_status
from test_instances_errors import legacy_expect, tea_expect
from test_wire import PASSWORD, client, create_rs, describe, rs_uri

NEW = "N3w-pass=ok"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    factory = DdsdFactory(tmp_path_factory.mktemp("accounts"))
    d = factory.start(extra_args=["--sim-speed", "50"])
    yield d
    factory.stop_all()


def accounts(d, iid: str, v1: bool = False) -> list:
    r = tea(d, v1=v1).describe_accounts(M.DescribeAccountsRequest(dbinstance_id=iid))
    body = load(M.DescribeAccountsResponseBody, r.body.to_map())
    return body.accounts.account


def reset(d, iid: str, password: str):
    r = tea(d).reset_account_password(M.ResetAccountPasswordRequest(
        dbinstance_id=iid, account_name="root", account_password=password))
    return load(M.ResetAccountPasswordResponseBody, r.body.to_map())


def logs_in(a: dict, password: str) -> bool:
    with client(rs_uri(a, password=password), serverSelectionTimeoutMS=5_000) as c:
        try:
            c.admin.command("ping")
            return True
        except OperationFailure as e:
            assert e.code == 18, e
            return False


def test_reset_password_changes_what_the_members_authenticate(server):
    iid = create_rs(server)
    a = describe(server, iid)
    [acc] = accounts(server, iid)
    assert (acc.account_name, acc.account_status, acc.dbname, acc.dbinstance_id) == ("root", "Available", "admin", iid)
    assert [(r.dbname, r.role) for r in acc.roles.role] == [("admin", "root")]

    with client(rs_uri(a)) as session:
        session.app.t.insert_one({"before": True})
        reset(server, iid, NEW)
        # The session authenticated before the reset keeps working, as on mongod.
        session.app.t.insert_one({"after": True})
        assert session.app.t.count_documents({}) == 2
    assert logs_in(a, NEW)
    assert not logs_in(a, PASSWORD)

    r = tea(server).modify_account_description(M.ModifyAccountDescriptionRequest(
        dbinstance_id=iid, account_name="root", account_description="the operators"))
    load(M.ModifyAccountDescriptionResponseBody, r.body.to_map())
    assert accounts(server, iid, v1=True)[0].account_description == "the operators"


def test_legacy_v1_and_refusals(server):
    iid = create_rs(server, password=None)
    a = describe(server, iid)
    assert accounts(server, iid) == []
    req = LegacyAccounts()
    req.set_DBInstanceId(iid)
    body = legacy_json(server, req)
    load(M.DescribeAccountsResponseBody, body)
    assert body["Accounts"]["Account"] == []

    bad = LegacyReset()
    bad.set_DBInstanceId(iid)
    bad.set_AccountName("root")
    bad.set_AccountPassword("weakpass")
    legacy_expect(server, bad, "InvalidParameter", 400, "AccountPassword")
    bad.set_AccountName("app")
    bad.set_AccountPassword(NEW)
    legacy_expect(server, bad, "InvalidAccountName.NotFound", 404)
    tea_expect(lambda: tea(server).modify_account_description(M.ModifyAccountDescriptionRequest(
        dbinstance_id=iid, account_name="root", account_description="x")), "InvalidParameter", 400)

    # An instance created without a password gets its account from the reset.
    ok = LegacyReset()
    ok.set_DBInstanceId(iid)
    ok.set_AccountName("root")
    ok.set_AccountPassword(NEW)
    assert set(legacy_json(server, ok)) == {"RequestId"}
    assert logs_in(a, NEW)
    assert [x.account_name for x in accounts(server, iid)] == ["root"]

    tea(server).restart_dbinstance(M.RestartDBInstanceRequest(dbinstance_id=iid))
    tea_expect(lambda: reset(server, iid, "An0ther=pass"), "OperationDenied.DBInstanceStatus", 403)
    wait_status(server, iid, "Running")
    assert logs_in(a, NEW)
