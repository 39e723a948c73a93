"""Requests no SDK would send, built with the independent signer in acs_raw, against a real ddsd.

Each must get the vendor's error (dds-api.md section 5): exact `Code`, HTTP status and message,
in the requested `Format` (JSON, or XML with content type exactly `text/xml;charset=utf-8`),
`RequestId` in the body equal to the `x-acs-request-id` header — and never a 5xx.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest

import acs_raw
from acs_raw import pe

FORMATS = ["JSON", "XML"]
GATEWAY_MESSAGES = {
    "SignatureDoesNotMatch": "Specified signature is not matched with our calculation.",
    "InvalidAccessKeyId.NotFound": "Specified access key is not found.",
    "SignatureNonceUsed": "Specified signature nonce was used already.",
    "InvalidTimeStamp.Expired": "Specified time stamp or date value is expired.",
    "InvalidTimeStamp.Format": "Specified time stamp or date value is not well formatted.",
    "InvalidAction.NotFound": "Specified api is not found, please check your url and method.",
    "InvalidVersion": "Specified parameter Version is not valid.",
    "UnsupportedHTTPMethod": "This http method not supported.",
}


TABLE = object()  # message=TABLE: starts with the gateway table's sentence; a str: exactly; None: unchecked


def assert_error(resp: acs_raw.Response, code: str, status: int, fmt: str = "JSON", message=TABLE) -> dict:
    assert resp.status < 500, f"server error for a client mistake: {resp}"
    want_ct = acs_raw.XML_CONTENT_TYPE if fmt.upper() == "XML" else acs_raw.JSON_CONTENT_TYPE
    assert resp.content_type == want_ct, resp
    err = resp.error()
    assert (resp.status, err.get("Code")) == (status, code), resp
    assert err.get("RequestId"), resp
    assert resp.headers.get("x-acs-request-id") == err["RequestId"], resp
    if message is TABLE:
        # The vendor's sentence comes first; ddsd may add one saying what exactly was wrong.
        assert err.get("Message", "").startswith(GATEWAY_MESSAGES[code]), resp
    elif message is not None:
        assert err.get("Message") == message, resp
    return err


def v1(ddsd, fmt="JSON", secret=None, **kw) -> acs_raw.SignedV1:
    extra = kw.pop("extra", [])
    method = kw.pop("method", "GET")
    key_id = kw.pop("key_id", ddsd.key_id)
    pairs = acs_raw.v1_common_params(key_id, fmt=fmt, **kw) + list(extra)
    return acs_raw.sign_v1(method, pairs, secret or ddsd.key_secret)


# --------------------------------------------------------------------------- the happy baseline


@pytest.mark.parametrize("fmt", FORMATS)
def test_baseline_signed_request_succeeds(ddsd, fmt):
    # Proves the signer and the request shape, so every rejection below is about one defect only.
    resp = acs_raw.v1_get(ddsd.endpoint, v1(ddsd, fmt))
    assert resp.status == 200, resp
    if fmt == "XML":
        assert resp.content_type == acs_raw.XML_CONTENT_TYPE
        assert resp.xml().tag == "DescribeRegionsResponse"
    else:
        assert resp.content_type == acs_raw.JSON_CONTENT_TYPE
        assert resp.json()["Regions"]["DdsRegion"]


def test_baseline_v3_and_form_body(ddsd):
    resp = acs_raw.v3_post(ddsd.endpoint, ddsd.key_id, ddsd.key_secret, "DescribeRegions", [("RegionId", "cn-hangzhou")])
    assert resp.status == 200, resp
    assert [r["RegionId"] for r in resp.json()["Regions"]["DdsRegion"]] == ["cn-hangzhou"]
    resp = acs_raw.v1_post_form(ddsd.endpoint, v1(ddsd, method="POST", extra=[("RegionId", "cn-hangzhou")]))
    assert resp.status == 200, resp
    assert [r["RegionId"] for r in resp.json()["Regions"]["DdsRegion"]] == ["cn-hangzhou"]


# ------------------------------------------------------------------------------ authentication


@pytest.mark.parametrize("fmt", FORMATS)
def test_wrong_secret(ddsd, fmt):
    signed = v1(ddsd, fmt, secret="not-the-secret")
    resp = acs_raw.v1_get(ddsd.endpoint, signed)
    assert_error(
        resp,
        "SignatureDoesNotMatch",
        400,
        fmt,
        f"{GATEWAY_MESSAGES['SignatureDoesNotMatch']} server string to sign is:{signed.string_to_sign}",
    )


def test_wrong_secret_v3(ddsd):
    resp = acs_raw.v3_post(ddsd.endpoint, ddsd.key_id, "not-the-secret", "DescribeRegions", [])
    # V3 has no V1 string to sign to echo; only the message's opening sentence is fixed.
    assert_error(resp, "SignatureDoesNotMatch", 400)


def test_tampered_parameter_after_signing(ddsd):
    signed = v1(ddsd, extra=[("RegionId", "cn-hangzhou")])
    query = signed.query().replace("RegionId=cn-hangzhou", "RegionId=cn-beijing")
    resp = acs_raw.send(ddsd.endpoint, "GET", "/?" + query)
    err = resp.error()
    assert (resp.status, err["Code"]) == (400, "SignatureDoesNotMatch"), resp


def test_signed_for_get_sent_as_post(ddsd):
    # The method is part of the V1 string to sign.
    signed = v1(ddsd, method="GET")
    resp = acs_raw.send(ddsd.endpoint, "POST", "/?" + signed.query())
    assert (resp.status, resp.error()["Code"]) == (400, "SignatureDoesNotMatch"), resp


@pytest.mark.parametrize("fmt", FORMATS)
def test_unknown_access_key_id(ddsd, fmt):
    resp = acs_raw.v1_get(ddsd.endpoint, v1(ddsd, fmt, key_id="LTAInosuchkey0000000000"))
    assert_error(resp, "InvalidAccessKeyId.NotFound", 404, fmt)


def test_unknown_access_key_id_v3(ddsd):
    resp = acs_raw.v3_post(ddsd.endpoint, "LTAInosuchkey0000000000", ddsd.key_secret, "DescribeRegions", [])
    assert_error(resp, "InvalidAccessKeyId.NotFound", 404)


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_signature(ddsd, fmt):
    pairs = acs_raw.v1_common_params(ddsd.key_id, fmt=fmt)
    resp = acs_raw.send(ddsd.endpoint, "GET", "/?" + "&".join(f"{pe(k)}={pe(v)}" for k, v in pairs))
    # ddsd answers a missing common parameter the way the POP gateway answers any missing
    # parameter: Missing<Name>, "<Name> is mandatory for this action.", 400.
    assert_error(resp, "MissingSignature", 400, fmt, "Signature is mandatory for this action.")


# ---------------------------------------------------------------------------- replay and time


@pytest.mark.parametrize("fmt", FORMATS)
def test_replayed_nonce(ddsd, fmt):
    signed = v1(ddsd, fmt)
    first = acs_raw.v1_get(ddsd.endpoint, signed)
    assert first.status == 200, first
    again = acs_raw.v1_get(ddsd.endpoint, signed)
    assert_error(again, "SignatureNonceUsed", 400, fmt)


def test_replayed_nonce_v3(ddsd):
    nonce = acs_raw.new_nonce()
    date = acs_raw.utc_timestamp()
    args = (ddsd.endpoint, ddsd.key_id, ddsd.key_secret, "DescribeRegions", [])
    assert acs_raw.v3_post(*args, nonce=nonce, date=date).status == 200
    assert_error(acs_raw.v3_post(*args, nonce=nonce, date=date), "SignatureNonceUsed", 400)


def test_rejected_request_does_not_burn_its_nonce(ddsd):
    # Only verified requests may consume nonce space; otherwise anyone could block nonces.
    nonce = acs_raw.new_nonce()
    bad = acs_raw.v1_get(ddsd.endpoint, v1(ddsd, secret="not-the-secret", nonce=nonce))
    assert bad.status == 400, bad
    good = acs_raw.v1_get(ddsd.endpoint, v1(ddsd, nonce=nonce))
    assert good.status == 200, good


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("minutes", [-20, 20], ids=["past", "future"])
def test_stale_timestamp(ddsd, fmt, minutes):
    ts = acs_raw.utc_timestamp(dt.timedelta(minutes=minutes))
    resp = acs_raw.v1_get(ddsd.endpoint, v1(ddsd, fmt, timestamp=ts))
    assert_error(resp, "InvalidTimeStamp.Expired", 400, fmt)


def test_timestamp_inside_the_window_is_accepted(ddsd):
    ts = acs_raw.utc_timestamp(dt.timedelta(minutes=-14))
    assert acs_raw.v1_get(ddsd.endpoint, v1(ddsd, timestamp=ts)).status == 200


def test_stale_timestamp_v3(ddsd):
    date = acs_raw.utc_timestamp(dt.timedelta(minutes=-20))
    resp = acs_raw.v3_post(ddsd.endpoint, ddsd.key_id, ddsd.key_secret, "DescribeRegions", [], date=date)
    assert_error(resp, "InvalidTimeStamp.Expired", 400)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("ts", ["2026/11/26 03:41:36", "yesterday", "2026-11-26T25:61:00Z"])
def test_malformed_timestamp(ddsd, fmt, ts):
    resp = acs_raw.v1_get(ddsd.endpoint, v1(ddsd, fmt, timestamp=ts))
    assert_error(resp, "InvalidTimeStamp.Format", 400, fmt)


# ------------------------------------------------------------------------- parameter decoding


@pytest.mark.parametrize("fmt", FORMATS)
def test_malformed_percent_encoding(ddsd, fmt):
    signed = v1(ddsd, fmt)
    resp = acs_raw.send(ddsd.endpoint, "GET", "/?" + signed.query() + "&AcceptLanguage=%E4%ZZ")
    err = assert_error(resp, "InvalidParameter", 400, fmt, message=None)
    assert "AcceptLanguage" in err["Message"], resp


@pytest.mark.parametrize("fmt", FORMATS)
def test_duplicate_parameter_in_query(ddsd, fmt):
    signed = v1(ddsd, fmt, extra=[("RegionId", "cn-hangzhou")])
    resp = acs_raw.send(ddsd.endpoint, "GET", "/?" + signed.query() + "&RegionId=cn-beijing")
    err = assert_error(resp, "InvalidParameter", 400, fmt, message=None)
    assert "RegionId" in err["Message"], resp


def test_duplicate_parameter_across_query_and_body(ddsd):
    signed = v1(ddsd, method="POST", extra=[("RegionId", "cn-hangzhou")])
    resp = acs_raw.send(
        ddsd.endpoint,
        "POST",
        "/?RegionId=cn-hangzhou",
        headers={"content-type": "application/x-www-form-urlencoded"},
        body=signed.query().encode(),
    )
    err = assert_error(resp, "InvalidParameter", 400, message=None)
    assert "RegionId" in err["Message"], resp


MAX_BODY_BYTES = 1024 * 1024


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_oversized_body(ddsd, fmt, chunked):
    # Over the 1 MiB limit whether the size is declared up front or only seen while streaming.
    signed = v1(ddsd, fmt, method="POST")
    resp = acs_raw.send(
        ddsd.endpoint,
        "POST",
        "/?" + signed.query(),
        headers={"content-type": "application/x-www-form-urlencoded"},
        body=b"Pad=" + b"a" * MAX_BODY_BYTES,
        chunked=chunked,
    )
    # No vendor row exists for this (dds-api.md section 5); ddsd's own code, in the envelope.
    err = assert_error(resp, "RequestEntityTooLarge", 413, fmt, message=None)
    assert str(MAX_BODY_BYTES) in err["Message"], resp


def test_body_just_under_the_limit_is_accepted(ddsd):
    # The limit is the documented 1 MiB, not some smaller hidden one: ~940 KiB of (ignored,
    # signed) form parameters, each under the per-value limit, is an ordinary request.
    pad = [(f"Pad{i}", "a" * 60000) for i in range(16)]
    signed = v1(ddsd, method="POST", extra=pad)
    assert MAX_BODY_BYTES - 100 * 1024 < len(signed.query()) < MAX_BODY_BYTES
    resp = acs_raw.v1_post_form(ddsd.endpoint, signed)
    assert resp.status == 200, resp
    assert resp.json()["Regions"]["DdsRegion"]


# ------------------------------------------------------------------------------ action/version


@pytest.mark.parametrize("fmt", FORMATS)
def test_unknown_action(ddsd, fmt):
    resp = acs_raw.v1_get(ddsd.endpoint, v1(ddsd, fmt, action="NoSuchAction"))
    assert_error(resp, "InvalidAction.NotFound", 404, fmt)


def test_unknown_action_v3(ddsd):
    resp = acs_raw.v3_post(ddsd.endpoint, ddsd.key_id, ddsd.key_secret, "NoSuchAction", [])
    assert_error(resp, "InvalidAction.NotFound", 404)


@pytest.mark.parametrize("fmt", FORMATS)
def test_wrong_version(ddsd, fmt):
    resp = acs_raw.v1_get(ddsd.endpoint, v1(ddsd, fmt, version="2014-05-26"))
    assert_error(resp, "InvalidVersion", 400, fmt)


def test_wrong_version_v3(ddsd):
    resp = acs_raw.v3_post(ddsd.endpoint, ddsd.key_id, ddsd.key_secret, "DescribeRegions", [], version="2014-05-26")
    assert_error(resp, "InvalidVersion", 400)


# ------------------------------------------------------------------------------------ V3 body


def test_v3_body_not_matching_content_sha256(ddsd):
    body = b"RegionId=cn-hangzhou"
    claimed = acs_raw.hashlib.sha256(b"RegionId=cn-beijing").hexdigest()
    resp = acs_raw.v3_post(
        ddsd.endpoint,
        ddsd.key_id,
        ddsd.key_secret,
        "DescribeRegions",
        [],
        body=body,
        content_type="application/x-www-form-urlencoded",
        claimed_sha256=claimed,
    )
    err = resp.error()
    assert resp.content_type == acs_raw.JSON_CONTENT_TYPE, resp
    assert (resp.status, err["Code"]) == (400, "SignatureDoesNotMatch"), resp
    assert resp.headers.get("x-acs-request-id") == err["RequestId"]


def test_v3_form_body_matching_content_sha256_is_accepted(ddsd):
    body = b"RegionId=cn-hangzhou"
    resp = acs_raw.v3_post(
        ddsd.endpoint,
        ddsd.key_id,
        ddsd.key_secret,
        "DescribeRegions",
        [],
        body=body,
        content_type="application/x-www-form-urlencoded",
    )
    assert resp.status == 200, resp
    assert [r["RegionId"] for r in resp.json()["Regions"]["DdsRegion"]] == ["cn-hangzhou"]


# -------------------------------------------------------------------------- method and path


@pytest.mark.parametrize("fmt", FORMATS)
def test_unsupported_method(ddsd, fmt):
    resp = acs_raw.send(ddsd.endpoint, "PUT", "/?" + v1(ddsd, fmt, method="PUT").query())
    assert_error(resp, "UnsupportedHTTPMethod", 403, fmt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_other_path(ddsd, fmt):
    resp = acs_raw.send(ddsd.endpoint, "GET", "/v1/regions?" + v1(ddsd, fmt).query())
    assert_error(resp, "InvalidAction.NotFound", 404, fmt)


def test_request_ids_are_unique(ddsd):
    ids = {acs_raw.v1_get(ddsd.endpoint, v1(ddsd)).headers["x-acs-request-id"] for _ in range(5)}
    assert len(ids) == 5
    for rid in ids:
        assert re.fullmatch(r"[0-9A-Fa-f-]{36}", rid), rid
