"""HTTPS: the official SDKs default to it, so ddsd serves it (`--tls-self-signed`, or
`--tls-cert`/`--tls-key`). A client that trusts the certificate ddsd made in `<data dir>/tls/` works
unchanged but for that trust setting; one that does not trust it is refused by its own TLS check; a
plain-HTTP request to the HTTPS port gets no API answer.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.error
import urllib.request

import pytest
from aliyunsdkcore.client import AcsClient
from aliyunsdkdds.request.v20151201.DescribeRegionsRequest import DescribeRegionsRequest as LegacyRegions
from alibabacloud_dds20151201 import models as M
from alibabacloud_dds20151201.client import Client as TeaDdsClient
from alibabacloud_tea_openapi.utils_models import Config as TeaConfig

from conftest import DdsdFactory

REGION = "cn-hangzhou"


@pytest.fixture(scope="module")
def tls_ddsd(tmp_path_factory):
    factory = DdsdFactory(tmp_path_factory.mktemp("tls"))
    d = factory.start(extra_args=["--tls-self-signed"])
    assert d.stdout_lines[-1] == f"ddsd listening on https://{d.endpoint}", d.stdout_lines
    cert = d.data_dir / "tls" / "cert.pem"
    assert f"TLS certificate: {cert}" in d.stdout_lines, d.stdout_lines
    yield d, cert
    factory.stop_all()


def tea(d, endpoint: str | None = None, **extra) -> TeaDdsClient:
    # No `protocol`: the Tea SDK's default, HTTPS.
    return TeaDdsClient(
        TeaConfig(
            access_key_id=d.key_id,
            access_key_secret=d.key_secret,
            endpoint=endpoint or d.endpoint,
            region_id=REGION,
            **extra,
        )
    )


def test_tea_sdk_v3_over_https_with_its_default_protocol(tls_ddsd):
    d, cert = tls_ddsd
    client = tea(d, ca=str(cert))
    regions = client.describe_regions(M.DescribeRegionsRequest()).body
    assert REGION in [r.region_id for r in regions.regions.dds_region]
    listed = client.describe_dbinstances(M.DescribeDBInstancesRequest(region_id=REGION)).body
    assert listed.total_count == 0 and listed.request_id


def test_a_client_that_does_not_trust_the_certificate_is_stopped_by_its_own_check(tls_ddsd):
    d, _ = tls_ddsd
    # `localhost` (also in the certificate): the Tea SDK keeps one HTTP session per host, and the
    # one for 127.0.0.1 was made trusting the certificate.
    with pytest.raises(Exception) as e:
        tea(d, endpoint=f"localhost:{d.port}").describe_regions(M.DescribeRegionsRequest())
    assert "CERTIFICATE_VERIFY_FAILED" in str(e.value) or "certificate verify failed" in str(e.value), e.value


def test_legacy_sdk_v1_over_https(tls_ddsd):
    d, cert = tls_ddsd
    client = AcsClient(d.key_id, d.key_secret, REGION, verify=str(cert))
    req = LegacyRegions()
    req.set_endpoint(d.endpoint)
    req.set_protocol_type("https")
    req.set_accept_format("JSON")
    body = json.loads(client.do_action_with_exception(req))
    assert REGION in [r["RegionId"] for r in body["Regions"]["DdsRegion"]]


def test_plain_http_to_the_https_port_gets_no_api_answer(tls_ddsd):
    d, cert = tls_ddsd
    with pytest.raises((urllib.error.URLError, http.client.HTTPException, OSError)):
        urllib.request.urlopen(f"http://{d.endpoint}/?Action=DescribeRegions", timeout=5).read()
    # While HTTPS to the same port answers (an unsigned request: the API's own refusal).
    ctx = ssl.create_default_context(cafile=str(cert))
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"https://{d.endpoint}/?Action=DescribeRegions&Format=JSON", context=ctx, timeout=5)
    assert json.loads(e.value.read())["Code"]
