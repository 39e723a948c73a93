"""A small, independent Alibaba Cloud RPC signer and raw HTTP client for the bad-input tests.

Written from the vendor's published algorithm (dds-api.md sections 6 and 7), sharing no code with
ddsd, so that a request the official SDKs would never produce (a replayed nonce, a stale
timestamp, a duplicated parameter, a body that does not match its hash) can be built exactly and
the server's answer read byte for byte. `self_check()` proves the signer on the official vectors
before any test trusts it.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import hmac
import http.client
import json
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import quote

DDS_VERSION = "2015-12-01"
JSON_CONTENT_TYPE = "application/json;charset=utf-8"
XML_CONTENT_TYPE = "text/xml;charset=utf-8"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def pe(value: str) -> str:
    """RFC 3986 percent-encoding as the vendor uses it: only A-Z a-z 0-9 - _ . ~ stay literal."""
    return quote(value, safe="-_.~")


def utc_timestamp(delta: _dt.timedelta = _dt.timedelta(0)) -> str:
    now = _dt.datetime.now(_dt.timezone.utc) + delta
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def new_nonce() -> str:
    return uuid.uuid4().hex


# ---------------------------------------------------------------- V1 (HMAC-SHA1, Signature param)


def v1_canonical_query(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{pe(k)}={pe(v)}" for k, v in sorted(pairs))


def v1_string_to_sign(method: str, pairs: list[tuple[str, str]]) -> str:
    return f"{method}&{pe('/')}&{pe(v1_canonical_query(pairs))}"


def v1_signature(secret: str, string_to_sign: str) -> str:
    mac = hmac.new((secret + "&").encode(), string_to_sign.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def v1_common_params(
    access_key_id: str,
    action: str = "DescribeRegions",
    *,
    fmt: str | None = "JSON",
    version: str = DDS_VERSION,
    nonce: str | None = None,
    timestamp: str | None = None,
) -> list[tuple[str, str]]:
    pairs = [
        ("AccessKeyId", access_key_id),
        ("Action", action),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureNonce", nonce or new_nonce()),
        ("SignatureVersion", "1.0"),
        ("Timestamp", timestamp or utc_timestamp()),
        ("Version", version),
    ]
    if fmt is not None:
        pairs.append(("Format", fmt))
    return pairs


@dataclass
class SignedV1:
    method: str
    pairs: list[tuple[str, str]]  # every parameter, Signature included
    string_to_sign: str

    def query(self) -> str:
        return "&".join(f"{pe(k)}={pe(v)}" for k, v in self.pairs)


def sign_v1(method: str, pairs: list[tuple[str, str]], secret: str) -> SignedV1:
    sts = v1_string_to_sign(method, pairs)
    return SignedV1(method, list(pairs) + [("Signature", v1_signature(secret, sts))], sts)


# ------------------------------------------------- V3 (ACS3-HMAC-SHA256, Authorization header)


def v3_canonical_request(
    method: str,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    signed: list[str],
    payload_sha256: str,
) -> str:
    cq = "&".join(f"{pe(k)}={pe(v)}" for k, v in sorted(query))
    ch = "".join(f"{h}:{headers[h].strip()}\n" for h in signed)
    return f"{method}\n/\n{cq}\n{ch}\n{';'.join(signed)}\n{payload_sha256}"


def v3_signature(secret: str, canonical_request: str) -> str:
    sts = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical_request.encode()).hexdigest()
    return hmac.new(secret.encode(), sts.encode(), hashlib.sha256).hexdigest()


def sign_v3(
    method: str,
    host: str,
    access_key_id: str,
    secret: str,
    action: str,
    query: list[tuple[str, str]],
    *,
    body: bytes = b"",
    content_type: str | None = None,
    version: str = DDS_VERSION,
    nonce: str | None = None,
    date: str | None = None,
    claimed_sha256: str | None = None,
) -> dict[str, str]:
    """Headers for a V3 request. `claimed_sha256` lets a test lie about the body."""
    headers = {
        "host": host,
        "x-acs-action": action,
        "x-acs-version": version,
        "x-acs-date": date or utc_timestamp(),
        "x-acs-signature-nonce": nonce or new_nonce(),
        "x-acs-content-sha256": claimed_sha256 or hashlib.sha256(body).hexdigest(),
        "accept": "application/json",
    }
    if content_type:
        headers["content-type"] = content_type
    signed = sorted(headers)
    cr = v3_canonical_request(method, query, headers, signed, headers["x-acs-content-sha256"])
    headers["authorization"] = (
        f"ACS3-HMAC-SHA256 Credential={access_key_id},"
        f"SignedHeaders={';'.join(signed)},Signature={v3_signature(secret, cr)}"
    )
    return headers


# ---------------------------------------------------------------------------------- transport


@dataclass(repr=False)
class Response:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes
    raw_headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def json(self) -> dict:
        return json.loads(self.body.decode("utf-8"))

    def xml(self) -> ET.Element:
        return ET.fromstring(self.body)

    def error(self) -> dict[str, str]:
        """The error envelope's fields, from JSON or XML (by content type), as strings."""
        if self.content_type == XML_CONTENT_TYPE:
            root = self.xml()
            assert root.tag == "Error", f"XML error root is <{root.tag}>, want <Error>"
            return {child.tag: (child.text or "") for child in root}
        return {k: v for k, v in self.json().items()}

    def __repr__(self) -> str:  # shown by pytest on assertion failures
        return f"HTTP {self.status} {self.content_type!r} {self.body[:2000]!r}"


def send(
    endpoint: str,
    method: str,
    target: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    chunked: bool = False,
    timeout_s: float = 30.0,
) -> Response:
    """One HTTP/1.1 request on a fresh connection; `target` goes on the request line verbatim.

    A server may answer (413, say) and close before the whole body is sent; like urllib3, keep
    going and read the answer it already wrote instead of reporting the broken pipe.
    """
    host, port = endpoint.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout_s)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        hdrs = {"host": endpoint, **(headers or {})}
        for k, v in hdrs.items():
            conn.putheader(k, v)
        if chunked:
            conn.putheader("transfer-encoding", "chunked")
        elif body or method == "POST":
            conn.putheader("content-length", str(len(body)))
        conn.endheaders()
        try:
            if chunked:
                for i in range(0, len(body), 64 * 1024):
                    part = body[i : i + 64 * 1024]
                    conn.send(b"%x\r\n%s\r\n" % (len(part), part))
                conn.send(b"0\r\n\r\n")
            elif body:
                conn.send(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        resp = conn.getresponse()
        data = resp.read()
        raw = resp.getheaders()
        return Response(resp.status, {k.lower(): v for k, v in raw}, data, raw)
    finally:
        conn.close()


def v1_get(endpoint: str, signed: SignedV1) -> Response:
    return send(endpoint, "GET", "/?" + signed.query())


def v1_post_form(endpoint: str, signed: SignedV1) -> Response:
    return send(
        endpoint,
        "POST",
        "/",
        headers={"content-type": "application/x-www-form-urlencoded"},
        body=signed.query().encode(),
    )


def v3_post(
    endpoint: str,
    access_key_id: str,
    secret: str,
    action: str,
    query: list[tuple[str, str]],
    **kw,
) -> Response:
    body = kw.pop("body", b"")
    content_type = kw.pop("content_type", None)
    headers = sign_v3(
        "POST", endpoint, access_key_id, secret, action, query, body=body, content_type=content_type, **kw
    )
    target = "/" + ("?" + "&".join(f"{pe(k)}={pe(v)}" for k, v in query) if query else "")
    return send(endpoint, "POST", target, headers=headers, body=body)


# ------------------------------------------------------------------------- proof of the signer


def self_check() -> None:
    """The official V1 and V3 vectors (dds-api.md sections 6 and 7)."""
    pairs = [
        ("AccessKeyId", "testid"),
        ("Action", "DescribeRegions"),
        ("Format", "XML"),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
        ("SignatureVersion", "1.0"),
        ("Timestamp", "2016-02-23T12:46:24Z"),
        ("Version", "2014-05-26"),
    ]
    assert v1_signature("testsecret", v1_string_to_sign("GET", pairs)) == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="

    headers = {
        "host": "ecs.cn-shanghai.aliyuncs.com",
        "x-acs-action": "RunInstances",
        "x-acs-content-sha256": EMPTY_SHA256,
        "x-acs-date": "2023-10-26T10:22:32Z",
        "x-acs-signature-nonce": "3156853299f313e23d1673dc12e1703d",
        "x-acs-version": "2014-05-26",
    }
    query = [("ImageId", "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd"), ("RegionId", "cn-shanghai")]
    cr = v3_canonical_request("POST", query, headers, sorted(headers), EMPTY_SHA256)
    assert hashlib.sha256(cr.encode()).hexdigest() == "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
    assert v3_signature("YourAccessKeySecret", cr) == "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
