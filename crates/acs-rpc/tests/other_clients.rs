//! Requests in the exact shape of official clients that cannot run here (no Maven or Go registry):
//! Java Tea, the Go SDK (also under the `aliyun` CLI) and tea-rpc (under Terraform's provider).
//! Each was built byte for byte from the client's own request-building code, named at each test,
//! and signed independently of this crate, so a verifier that canonicalises differently from the
//! client refuses it.

use acs_rpc::{verify, BoundedNonceGuard, Limits, MemoryKeyStore, RequestParts, Scheme, Secret};
use acs_rpc::{Rejection, Verified};
use http::{HeaderMap, HeaderName, HeaderValue};
use time::macros::datetime;
use time::OffsetDateTime;

const NOW: OffsetDateTime = datetime!(2026-11-26 12:00:00 UTC);

fn run(
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Verified, Rejection> {
    let mut keys = MemoryKeyStore::new();
    keys.insert("testid", Secret::new("testsecret"));
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let parts = RequestParts {
        method,
        path,
        query,
        headers: &map,
        body,
    };
    verify(
        &parts,
        &keys,
        &BoundedNonceGuard::new(16),
        NOW,
        &Limits::default(),
    )
}

const JAVA_UA: &str = "AlibabaCloud (Linux; amd64) Java/1.8.0_392 Core/0.3.2 TeaDSL/1";

/// Java Tea (com.aliyun:tea-openapi V3 through com.aliyun:openapiutil, aliyun/darabonba-openapi-util
/// java/src/main/java/com/aliyun/openapiutil/Client.java `getCanonicalizedHeadersMap`) joins
/// `SignedHeaders` in the iteration order of its `HashMap` of headers, then sorts the names only
/// for the canonical header lines. These headers are in that hash order, as OkHttp sends them.
fn java_tea_upgrade(signed_headers: &str) -> Result<Verified, Rejection> {
    let auth = format!(
        "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders={signed_headers},\
         Signature=8b5e713b254a8c62a74eb97a48a279eec11afc34437c7199fc0876e63adb11ed"
    );
    run(
        "POST",
        "/?DBInstanceId=dds-bp1234567890abcd&SwitchMode=0",
        &[
            ("x-acs-action", "UpgradeDBInstanceKernelVersion"),
            ("host", "127.0.0.1:8080"),
            ("x-acs-date", "2026-11-26T12:00:00Z"),
            ("x-acs-version", "2015-12-01"),
            (
                "x-acs-content-sha256",
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
            ("x-acs-signature-nonce", "5b0d3c1f9e7a4c2d8b6e0f1a2c3d4e5f"),
            ("user-agent", JAVA_UA),
            ("accept", "application/json"),
            ("authorization", &auth),
            ("content-length", "0"),
            ("connection", "Keep-Alive"),
            ("accept-encoding", "gzip"),
        ],
        b"",
    )
}

#[test]
fn java_tea_v3_signed_headers_in_hash_map_order() {
    let v = java_tea_upgrade(
        "x-acs-action;host;x-acs-date;x-acs-version;x-acs-content-sha256;x-acs-signature-nonce",
    )
    .expect("the Java Tea request verifies");
    assert_eq!(v.scheme, Scheme::V3);
    assert_eq!(v.action, "UpgradeDBInstanceKernelVersion");
    assert_eq!(v.params["DBInstanceId"], "dds-bp1234567890abcd");
    assert_eq!(v.params["SwitchMode"], "0");
}

#[test]
fn java_tea_v3_signed_headers_string_is_still_signed_verbatim() {
    // Same names, another order: the SignedHeaders line of the canonical request changes.
    let r = java_tea_upgrade(
        "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version",
    )
    .unwrap_err();
    assert_eq!(r.error.code(), "SignatureDoesNotMatch");
}

#[test]
fn java_tea_v3_form_body_with_content_type_in_hash_map_order() {
    // Java Tea with formData body params: URLEncoder in the URL (`+` for space, `*` raw, `%7E`),
    // `content-type` lands mid-list in the hash order.
    let v = run(
        "POST",
        "/?RegionId=cn-hangzhou&DBInstanceDescription=my+db*%7E",
        &[
            ("x-acs-action", "DescribeDBInstances"),
            ("host", "127.0.0.1:8080"),
            ("x-acs-date", "2026-11-26T12:00:00Z"),
            ("content-type", "application/x-www-form-urlencoded"),
            ("x-acs-version", "2015-12-01"),
            (
                "x-acs-content-sha256",
                "04f380944b88f3f471b85860055748375a2b44f7f2edac899bd41667773a2920",
            ),
            ("x-acs-signature-nonce", "0f1e2d3c4b5a69788796a5b4c3d2e1f0"),
            ("user-agent", JAVA_UA),
            ("accept", "application/json"),
            (
                "authorization",
                "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders=x-acs-action;host;x-acs-date;\
                 content-type;x-acs-version;x-acs-content-sha256;x-acs-signature-nonce,\
                 Signature=04b124300b3ec6682dff0db0d8fdb09dcb9446ace62e33791bd360b7ea26619e",
            ),
            ("content-length", "24"),
        ],
        b"PageSize=30&PageNumber=1",
    )
    .expect("the Java Tea request with a form body verifies");
    assert_eq!(v.params["DBInstanceDescription"], "my db*~");
    assert_eq!(v.params["PageSize"], "30");
    assert_eq!(v.params["PageNumber"], "1");
}

#[test]
fn go_sdk_v1_post_sorted_query_and_empty_form_body() {
    // aliyun/alibaba-cloud-sdk-go sdk/auth/rpc_signature_composer.go: every parameter in the query
    // (url.Values.Encode, sorted), `SignatureType=` empty and signed, and a form content type over
    // an empty body; the `aliyun` CLI sends the same through CommonRequest.
    let v = run(
        "POST",
        "/?AccessKeyId=testid&Action=UpgradeDBInstanceKernelVersion&DBInstanceId=dds-bp1234567890abcd\
         &Format=JSON&RegionId=cn-hangzhou&Signature=K8WgjFTF1QFgH12RK%2FEX1Afw50c%3D\
         &SignatureMethod=HMAC-SHA1&SignatureNonce=9c3f0e5b2a7d4e1f8a6b5c4d3e2f1a0b&SignatureType=\
         &SignatureVersion=1.0&SwitchMode=0&Timestamp=2026-11-26T12%3A00%3A00Z&Version=2015-12-01",
        &[
            ("Host", "127.0.0.1:8080"),
            ("User-Agent", "AlibabaCloud (linux; amd64) Go/go1.22.5 Core/1.63.0 HTTPClient/Default"),
            ("Content-Length", "0"),
            ("Accept-Encoding", "identity"),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Acs-Action", "UpgradeDBInstanceKernelVersion"),
            ("X-Acs-Version", "2015-12-01"),
            ("X-Sdk-Client", "golang/1.0.0"),
            ("X-Sdk-Invoke-Type", "normal"),
        ],
        b"",
    )
    .expect("the Go SDK request verifies");
    assert_eq!(v.scheme, Scheme::V1);
    assert_eq!(v.params["DBInstanceId"], "dds-bp1234567890abcd");
    assert!(!v.params.contains_key("SignatureType"));
}

#[test]
fn tea_rpc_v1_common_params_in_query_business_params_in_form_body() {
    // alibabacloud-go/tea-rpc client/client.go DoRequest (Terraform's RpcPost): the protocol
    // parameters in the query with `Format=json`, the business ones in a form body, one
    // signature over both.
    let v = run(
        "POST",
        "/?Action=DescribeDBInstanceAttribute&Format=json&Timestamp=2026-11-26T12%3A00%3A00Z\
         &Version=2015-12-01&SignatureNonce=1a2b3c4d5e6f708192a3b4c5d6e7f809&SignatureMethod=HMAC-SHA1\
         &SignatureVersion=1.0&AccessKeyId=testid&Signature=VrXIvGJYr467g6XF1D4CPV5z99U%3D",
        &[
            ("Host", "127.0.0.1:8080"),
            ("User-Agent", "AlibabaCloud (linux; amd64) Go/go1.22.5 Core/0.0.1 TeaDSL/1 Terraform/1.9.0"),
            ("Content-Length", "55"),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Acs-Action", "DescribeDBInstanceAttribute"),
            ("X-Acs-Version", "2015-12-01"),
            ("Accept-Encoding", "gzip"),
        ],
        b"DBInstanceId=dds-bp1234567890abcd&RegionId=cn-hangzhou",
    )
    .expect("the tea-rpc request verifies");
    assert_eq!(v.action, "DescribeDBInstanceAttribute");
    assert_eq!(v.params["DBInstanceId"], "dds-bp1234567890abcd");
    assert_eq!(v.params["RegionId"], "cn-hangzhou");
}
