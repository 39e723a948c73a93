//! The two signature computations, shared by the verifier and by client-side signers.
//!
//! - V1 (`SignatureMethod=HMAC-SHA1`, `SignatureVersion=1.0`): `StringToSign = Method & %2F &
//!   pe(CanonicalQuery)` over every parameter of query ∪ form body except `Signature`;
//!   `Signature = base64(HMAC-SHA1(secret + "&", StringToSign))`.
//! - V3 (`ACS3-HMAC-SHA256`): `CanonicalRequest = Method \n Path \n CanonicalQuery \n
//!   CanonicalHeaders \n SignedHeaders \n x-acs-content-sha256`; `StringToSign =
//!   "ACS3-HMAC-SHA256\n" + hex(SHA-256(CanonicalRequest))`; `Signature = hex(HMAC-SHA256(secret,
//!   StringToSign))`. Only the URL query is in it; a body is covered by its hash.
//!
//! The client-side helpers ([`sign_v1_request`], [`sign_v3_request`]) produce exactly what the
//! official SDKs send, so ddsd's own tools and tests talk to the server like a real client.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::params::{canonical_query, percent_encode};
use crate::Secret;

/// The only V3 algorithm accepted.
pub const V3_ALGORITHM: &str = "ACS3-HMAC-SHA256";

/// hex(SHA-256("")), the `x-acs-content-sha256` of an empty body.
pub const EMPTY_BODY_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// V1 string to sign. `params` must not contain `Signature`.
pub fn v1_string_to_sign<'a, I>(method: &str, params: I) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    format!(
        "{method}&{}&{}",
        percent_encode("/"),
        percent_encode(&canonical_query(params))
    )
}

pub(crate) fn v1_mac(secret: &Secret, string_to_sign: &str) -> Hmac<Sha1> {
    let mut key = Vec::with_capacity(secret.expose().len() + 1);
    key.extend_from_slice(secret.expose().as_bytes());
    key.push(b'&');
    let mut mac = Hmac::<Sha1>::new_from_slice(&key).expect("HMAC accepts keys of any length");
    mac.update(string_to_sign.as_bytes());
    mac
}

/// V1 signature: base64(HMAC-SHA1(secret + "&", string_to_sign)).
pub fn v1_signature(secret: &Secret, string_to_sign: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(v1_mac(secret, string_to_sign).finalize().into_bytes())
}

/// V3 canonical request. `headers` are the signed headers in `signed_headers` order, each as
/// (lower-case name, value already trimmed and merged).
pub fn v3_canonical_request(
    method: &str,
    path: &str,
    canonical_query: &str,
    headers: &[(String, String)],
    signed_headers: &str,
    content_sha256: &str,
) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(method);
    out.push('\n');
    out.push_str(path);
    out.push('\n');
    out.push_str(canonical_query);
    out.push('\n');
    for (name, value) in headers {
        out.push_str(name);
        out.push(':');
        out.push_str(value);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(signed_headers);
    out.push('\n');
    out.push_str(content_sha256);
    out
}

/// `"ACS3-HMAC-SHA256\n" + hex(SHA-256(canonical_request))`.
pub fn v3_string_to_sign(canonical_request: &str) -> String {
    format!(
        "{V3_ALGORITHM}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}

pub(crate) fn v3_mac(secret: &Secret, string_to_sign: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(string_to_sign.as_bytes());
    mac
}

/// V3 signature: lower-case hex(HMAC-SHA256(secret, string_to_sign)).
pub fn v3_signature(secret: &Secret, string_to_sign: &str) -> String {
    hex::encode(v3_mac(secret, string_to_sign).finalize().into_bytes())
}

/// hex(SHA-256(body)), the value of `x-acs-content-sha256`.
pub fn content_sha256(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// `yyyy-MM-ddTHH:mm:ssZ` in UTC, as the SDKs send `Timestamp` and `x-acs-date`.
pub fn format_timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Credentials and per-request values a client signer needs.
#[derive(Debug, Clone)]
pub struct Credentials<'a> {
    pub access_key_id: &'a str,
    pub secret: &'a Secret,
    /// `SignatureNonce` / `x-acs-signature-nonce`; unique per request.
    pub nonce: &'a str,
    pub timestamp: OffsetDateTime,
}

/// Signs a V1 request the way aliyun-python-sdk-core does and returns the full encoded parameter
/// string (`…&Signature=…`) to put in the URL query (GET/POST) or in a form body (POST).
///
/// `params` are the caller's parameters including `Action`, `Version` and, if wanted, `Format`;
/// this adds `AccessKeyId`, `SignatureMethod`, `SignatureVersion`, `SignatureNonce` and
/// `Timestamp`, then `Signature`.
pub fn sign_v1_request(method: &str, params: &[(&str, &str)], creds: &Credentials<'_>) -> String {
    let timestamp = format_timestamp(creds.timestamp);
    let mut all: Vec<(&str, &str)> = params.to_vec();
    all.extend([
        ("AccessKeyId", creds.access_key_id),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("SignatureNonce", creds.nonce),
        ("Timestamp", timestamp.as_str()),
    ]);
    let sts = v1_string_to_sign(method, all.iter().copied());
    let signature = v1_signature(creds.secret, &sts);
    let mut query = canonical_query(all.iter().copied());
    query.push_str("&Signature=");
    query.push_str(&percent_encode(&signature));
    query
}

/// What a V3 client sends besides the credentials.
#[derive(Debug, Clone)]
pub struct V3Request<'a> {
    pub method: &'a str,
    /// `host[:port]` exactly as it will appear in the `host` header.
    pub host: &'a str,
    /// URL query parameters (business parameters for RPC style).
    pub query: &'a [(&'a str, &'a str)],
    /// Extra headers (`accept`, `content-type`, …). `content-type` and any `x-acs-*` are signed.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
    pub action: &'a str,
    pub version: &'a str,
}

/// A signed V3 request: the encoded query string for the URL (path is always `/`) and the full
/// header list including `host` and `Authorization`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedV3 {
    pub query: String,
    pub headers: Vec<(String, String)>,
}

/// Signs a V3 (ACS3-HMAC-SHA256) RPC request as the Node Tea SDK does (signing `host`, every
/// `x-acs-*` header and `content-type`).
pub fn sign_v3_request(req: &V3Request<'_>, creds: &Credentials<'_>) -> SignedV3 {
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), req.host.into()),
        ("x-acs-action".into(), req.action.into()),
        ("x-acs-version".into(), req.version.into()),
        ("x-acs-date".into(), format_timestamp(creds.timestamp)),
        ("x-acs-signature-nonce".into(), creds.nonce.into()),
        ("x-acs-content-sha256".into(), content_sha256(req.body)),
    ];
    headers.extend(
        req.headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_string())),
    );
    let mut signed: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| k == "host" || k == "content-type" || k.starts_with("x-acs-"))
        .map(|(k, v)| (k.clone(), v.trim().to_string()))
        .collect();
    signed.sort();
    let signed_names: Vec<&str> = signed.iter().map(|(k, _)| k.as_str()).collect();
    let signed_names = signed_names.join(";");
    let query = canonical_query(req.query.iter().copied());
    let cr = v3_canonical_request(
        req.method,
        "/",
        &query,
        &signed,
        &signed_names,
        &content_sha256(req.body),
    );
    let signature = v3_signature(creds.secret, &v3_string_to_sign(&cr));
    headers.push((
        "authorization".into(),
        format!(
            "{V3_ALGORITHM} Credential={},SignedHeaders={signed_names},Signature={signature}",
            creds.access_key_id
        ),
    ));
    SignedV3 { query, headers }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn testsecret() -> Secret {
        Secret::new("testsecret")
    }

    const DOC_PARAMS: [(&str, &str); 8] = [
        ("AccessKeyId", "testid"),
        ("Action", "DescribeRegions"),
        ("Format", "XML"),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
        ("SignatureVersion", "1.0"),
        ("Timestamp", "2016-02-23T12:46:24Z"),
        ("Version", "2014-05-26"),
    ];

    #[test]
    fn official_v1_vector() {
        let sts = v1_string_to_sign("GET", DOC_PARAMS);
        assert_eq!(
            sts,
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
        );
        assert_eq!(
            v1_signature(&testsecret(), &sts),
            "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
        );
        // The method is signed.
        assert_ne!(
            v1_signature(&testsecret(), &v1_string_to_sign("POST", DOC_PARAMS)),
            "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
        );
    }

    #[test]
    fn official_v1_vector_timestamp_spelling_variant() {
        let params = DOC_PARAMS.map(|(k, v)| {
            if k == "Timestamp" {
                ("TimeStamp", v)
            } else {
                (k, v)
            }
        });
        let sts = v1_string_to_sign("GET", params);
        assert!(
            sts.contains("%26TimeStamp%3D2016-02-23T12%253A46%253A24Z%26"),
            "{sts}"
        );
        assert_eq!(
            v1_signature(&testsecret(), &sts),
            "CT9X0VtwR86fNWSnsc6v8YGOjuE="
        );
    }

    #[test]
    fn sdk_v1_unit_vector() {
        let sts = v1_string_to_sign("GET", [("query", "test"), ("body", "test")]);
        assert_eq!(sts, "GET&%2F&body%3Dtest%26query%3Dtest");
        assert_eq!(
            v1_signature(&Secret::new("secret"), &sts),
            "XlUyV4sXjOuX5FnjUz9IF9tm5rU="
        );
    }

    fn doc_v3(date: &str, nonce: &str) -> String {
        let headers: Vec<(String, String)> = [
            ("host", "ecs.cn-shanghai.aliyuncs.com"),
            ("x-acs-action", "RunInstances"),
            ("x-acs-content-sha256", EMPTY_BODY_SHA256),
            ("x-acs-date", date),
            ("x-acs-signature-nonce", nonce),
            ("x-acs-version", "2014-05-26"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let q = canonical_query([
            ("RegionId", "cn-shanghai"),
            (
                "ImageId",
                "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
            ),
        ]);
        let cr = v3_canonical_request(
            "POST",
            "/",
            &q,
            &headers,
            "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version",
            EMPTY_BODY_SHA256,
        );
        v3_signature(&Secret::new("YourAccessKeySecret"), &v3_string_to_sign(&cr))
    }

    #[test]
    fn official_v3_vectors() {
        assert_eq!(content_sha256(b""), EMPTY_BODY_SHA256);
        assert_eq!(
            doc_v3("2023-10-26T10:22:32Z", "3156853299f313e23d1673dc12e1703d"),
            "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
        assert_eq!(
            doc_v3("2023-10-26T09:01:01Z", "d410180a5abf7fe235dd9b74aca91fc0"),
            "e521358f7776c97df52e6b2891a8bc73026794a071b50c3323388c4e0df64804"
        );
    }

    #[test]
    fn official_v3_vector_string_to_sign() {
        let cr = "POST\n/\nImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai\nhost:ecs.cn-shanghai.aliyuncs.com\nx-acs-action:RunInstances\nx-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\nx-acs-date:2023-10-26T10:22:32Z\nx-acs-signature-nonce:3156853299f313e23d1673dc12e1703d\nx-acs-version:2014-05-26\n\nhost;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            v3_string_to_sign(cr),
            "ACS3-HMAC-SHA256\n7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
        );
    }

    #[test]
    fn format_timestamp_is_utc_seconds() {
        let t = time::macros::datetime!(2026-11-26 11:41:36.123 +08:00);
        assert_eq!(format_timestamp(t), "2026-11-26T03:41:36Z");
    }
}
