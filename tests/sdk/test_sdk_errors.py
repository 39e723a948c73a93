"""How the official Python SDKs report ddsd's authentication errors.

The legacy core turns a V1 `SignatureDoesNotMatch` into `InvalidAccessKeySecret` only when the
server's message ends in ` server string to sign is:<StringToSign>` and that string equals the one
the SDK signed (aliyunsdkcore/client.py `_get_server_exception`) — which is what the real gateway
does, so a user with a wrong secret is told exactly that. The Tea SDK raises `ClientException`
with the code, the HTTP status and `code: <status>, <Message> request id: <RequestId>`.
"""

from __future__ import annotations

import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.client import AcsClient
from aliyunsdkdds.request.v20151201.DescribeRegionsRequest import DescribeRegionsRequest
from alibabacloud_dds20151201 import models as dds_models
from alibabacloud_dds20151201.client import Client as TeaDdsClient
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.utils_models import Config as TeaConfig

import acs_raw

SIG_MISMATCH_MESSAGE = "Specified signature is not matched with our calculation."


def legacy_call(ddsd, key_id: str, secret: str):
    req = DescribeRegionsRequest()
    req.set_endpoint(ddsd.endpoint)
    req.set_protocol_type("http")
    client = AcsClient(key_id, secret, "cn-hangzhou", auto_retry=False)
    return req, lambda: client.do_action_with_exception(req)


def tea_call(ddsd, key_id: str, secret: str, signature_algorithm: str | None = None):
    cfg = TeaConfig(access_key_id=key_id, access_key_secret=secret, endpoint=ddsd.endpoint, protocol="http")
    if signature_algorithm:
        cfg.signature_algorithm = signature_algorithm
    return TeaDdsClient(cfg).describe_regions(dds_models.DescribeRegionsRequest())


def test_legacy_core_wrong_secret_is_reported_as_wrong_secret(ddsd):
    req, call = legacy_call(ddsd, ddsd.key_id, "not-the-secret")
    with pytest.raises(ServerException) as info:
        call()
    e = info.value
    # The SDK could only produce this code if ddsd echoed the very StringToSign it signed.
    assert e.get_error_code() == "InvalidAccessKeySecret", str(e)
    assert e.get_error_msg() == "The AccessKeySecret is incorrect. Please check your AccessKeyId and AccessKeySecret."
    assert e.get_http_status() == 400
    assert e.get_request_id()
    assert req.string_to_sign.startswith("POST&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions")


def test_legacy_core_unknown_access_key(ddsd):
    _, call = legacy_call(ddsd, "LTAInosuchkey0000000000", ddsd.key_secret)
    with pytest.raises(ServerException) as info:
        call()
    e = info.value
    assert e.get_error_code() == "InvalidAccessKeyId.NotFound"
    assert e.get_error_msg() == "Specified access key is not found."
    assert e.get_http_status() == 404
    assert e.get_request_id()


@pytest.mark.parametrize("signature_algorithm", [None, "v2"], ids=["v3-default", "v1-v2mode"])
def test_tea_unknown_access_key(ddsd, signature_algorithm):
    with pytest.raises(ClientException) as info:
        tea_call(ddsd, "LTAInosuchkey0000000000", ddsd.key_secret, signature_algorithm)
    e = info.value
    assert e.code == "InvalidAccessKeyId.NotFound"
    assert e.status_code == 404
    assert e.data["RequestId"] and e.request_id == e.data["RequestId"]
    assert e.message == f"code: 404, Specified access key is not found. request id: {e.request_id}"
    assert e.data["Code"] == "InvalidAccessKeyId.NotFound"


@pytest.mark.parametrize("signature_algorithm", [None, "v2"], ids=["v3-default", "v1-v2mode"])
def test_tea_wrong_secret(ddsd, signature_algorithm):
    with pytest.raises(ClientException) as info:
        tea_call(ddsd, ddsd.key_id, "not-the-secret", signature_algorithm)
    e = info.value
    assert e.code == "SignatureDoesNotMatch"
    assert e.status_code == 400
    assert e.data["Message"].startswith(SIG_MISMATCH_MESSAGE)
    assert e.message.startswith(f"code: 400, {SIG_MISMATCH_MESSAGE}")
    assert e.message.endswith(f" request id: {e.request_id}")


def test_tea_works_with_the_admin_key(ddsd):
    # The key ddsd created on first start is a real credential, not just a printed string.
    assert ddsd.admin_key_id and ddsd.admin_key_secret
    resp = tea_call(ddsd, ddsd.admin_key_id, ddsd.admin_key_secret)
    assert resp.status_code == 200 and resp.body.regions.dds_region


def test_raw_wrong_secret_message_echoes_string_to_sign(ddsd):
    # What the legacy SDK relies on, checked directly against an independent signer.
    signed = acs_raw.sign_v1("GET", acs_raw.v1_common_params(ddsd.key_id), "not-the-secret")
    resp = acs_raw.v1_get(ddsd.endpoint, signed)
    err = resp.error()
    assert resp.status == 400 and err["Code"] == "SignatureDoesNotMatch", resp
    assert err["Message"] == f"{SIG_MISMATCH_MESSAGE} server string to sign is:{signed.string_to_sign}"
