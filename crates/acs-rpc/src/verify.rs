//! Server-side verification of one request, V1 or V3, in this order:
//!
//! 1. method (`GET`/`POST`) and path (`/`);
//! 2. parameters from the query (at most `max_query_bytes`) and, when `content-type` is
//!    form-urlencoded, the body — strictly decoded, bounded by [`Limits`], no name twice;
//! 3. `Format`; then the scheme: an `Authorization: ACS3-…` header is V3, anything else V1;
//! 4. presence and shape of the protocol fields, nonce length;
//! 5. AccessKeyId lookup, timestamp window, (V3) body hash, signature (constant time);
//! 6. only then the nonce is recorded, so unsigned garbage never occupies the replay cache.
//!
//! Every failure carries the response [`Format`] to answer in: the request's own `Format` when it
//! could be read, else the `accept` header for V3, else XML (the vendor's V1 default).

use std::collections::BTreeMap;

use base64::Engine as _;
use hmac::Mac;
use http::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST};
use subtle::ConstantTimeEq;
use time::{Duration, OffsetDateTime};

use crate::encode::Format;
use crate::nonce::{NonceGuard, NonceRejection};
use crate::params::{canonical_query, decode_component, read_params, Limits};
use crate::sign::{
    content_sha256, v1_mac, v1_string_to_sign, v3_canonical_request, v3_mac, v3_string_to_sign,
};
use crate::timestamp::check_timestamp;
use crate::{Gateway, KeyStore, RpcError};

/// The parts of an HTTP request the protocol looks at. `path` and `query` are raw (the query
/// without `?`), `body` is the raw body.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// Which signature scheme a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `Signature` parameter, HMAC-SHA1.
    V1,
    /// `Authorization: ACS3-HMAC-SHA256 …`.
    V3,
}

/// A request whose signature, timestamp and nonce checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// From `Action` (V1) or `x-acs-action` (V3).
    pub action: String,
    /// From `Version` (V1) or `x-acs-version` (V3).
    pub version: String,
    /// Business parameters from query ∪ form body. Protocol parameters are removed:
    /// see [`PROTOCOL_PARAMS`]. `RegionId`, `OwnerId` and the like stay.
    pub params: BTreeMap<String, String>,
    pub format: Format,
    pub access_key_id: String,
    pub scheme: Scheme,
    pub nonce: String,
    pub timestamp: OffsetDateTime,
}

/// A refused request: the error and the format to answer it in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub error: RpcError,
    pub format: Format,
}

/// Parameters that belong to the protocol and are not passed to handlers in [`Verified::params`].
pub const PROTOCOL_PARAMS: [&str; 11] = [
    "Action",
    "Version",
    "Format",
    "AccessKeyId",
    "Signature",
    "SignatureMethod",
    "SignatureVersion",
    "SignatureNonce",
    "SignatureType",
    "Timestamp",
    "SecurityToken",
];

/// Verifies a request. `now` is the server clock, passed in so tests control time.
pub fn verify(
    parts: &RequestParts<'_>,
    keys: &dyn KeyStore,
    nonces: &dyn NonceGuard,
    now: OffsetDateTime,
    limits: &Limits,
) -> Result<Verified, Rejection> {
    let mut format = guess_format(parts);
    verify_inner(parts, keys, nonces, now, limits, &mut format)
        .map_err(|error| Rejection { error, format })
}

/// The best format to answer a request in without verifying it (used for errors found before or
/// outside [`verify`], e.g. an oversized body): a readable `Format` parameter, else JSON for V3
/// unless `accept` asks for XML only, else XML.
pub fn guess_format(parts: &RequestParts<'_>) -> Format {
    let lenient = |raw: &[u8]| {
        raw.split(|&b| b == b'&')
            .filter_map(|seg| seg.strip_prefix(b"Format="))
            .find_map(|v| decode_component(v).ok().and_then(|v| Format::parse(&v)))
    };
    if let Some(f) = lenient(parts.query.as_bytes()) {
        return f;
    }
    if is_form(parts.headers) {
        if let Some(f) = lenient(parts.body) {
            return f;
        }
    }
    let v3 = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("ACS3-"));
    if v3 {
        accept_format(parts.headers)
    } else {
        Format::Xml
    }
}

fn accept_format(headers: &HeaderMap) -> Format {
    let accept = headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if accept.contains("xml") && !accept.contains("json") {
        Format::Xml
    } else {
        Format::Json
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| {
            essence
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

fn verify_inner(
    parts: &RequestParts<'_>,
    keys: &dyn KeyStore,
    nonces: &dyn NonceGuard,
    now: OffsetDateTime,
    limits: &Limits,
    format: &mut Format,
) -> Result<Verified, RpcError> {
    if parts.method != "GET" && parts.method != "POST" {
        return Err(Gateway::UnsupportedHttpMethod.into());
    }
    if parts.path != "/" {
        return Err(Gateway::InvalidActionNotFound.into());
    }
    let form_body = is_form(parts.headers).then_some(parts.body);
    let (query, all) = read_params(parts.query.as_bytes(), form_body, limits)?;
    let requested_format = match all.get("Format") {
        Some(v) => Some(Format::parse(v).ok_or_else(|| {
            RpcError::invalid_parameter("Format", "Valid values are JSON and XML.")
        })?),
        None => None,
    };
    if let Some(f) = requested_format {
        *format = f;
    }

    let mut auth = parts.headers.get_all(AUTHORIZATION).iter();
    let authorization = match (auth.next(), auth.next()) {
        (None, _) => None,
        (Some(v), None) => Some(
            v.to_str()
                .map_err(|_| incomplete("The Authorization header is not valid text."))?,
        ),
        (Some(_), Some(_)) => {
            return Err(incomplete(
                "The Authorization header is given more than once.",
            ))
        }
    };
    let v3_auth = authorization.filter(|a| a.starts_with("ACS3-"));

    let (scheme, verified) = match v3_auth {
        Some(auth) => {
            if all.contains_key("Signature") {
                return Err(incomplete(
                    "The request carries both a V1 Signature parameter and a V3 Authorization header.",
                ));
            }
            *format = requested_format.unwrap_or_else(|| accept_format(parts.headers));
            (
                Scheme::V3,
                verify_v3(parts, auth, &query, keys, now, limits)?,
            )
        }
        None => {
            *format = requested_format.unwrap_or(Format::Xml);
            (Scheme::V1, verify_v1(parts, &all, keys, now, limits)?)
        }
    };

    let expires_at = verified.timestamp + Duration::seconds(limits.timestamp_window_secs);
    match nonces.check_and_record(&verified.access_key_id, &verified.nonce, expires_at, now) {
        Ok(()) => {}
        Err(NonceRejection::Replayed) => return Err(Gateway::SignatureNonceUsed.into()),
        Err(NonceRejection::Full { retry_after_ms }) => {
            return Err(RpcError::gateway_with_detail(
                Gateway::ThrottlingUser,
                "Too many requests within the replay window; retry later.",
            )
            .with_retry_after_ms(retry_after_ms))
        }
    }

    let mut params = all;
    for name in PROTOCOL_PARAMS {
        params.remove(name);
    }
    Ok(Verified {
        action: verified.action,
        version: verified.version,
        params,
        format: *format,
        access_key_id: verified.access_key_id,
        scheme,
        nonce: verified.nonce,
        timestamp: verified.timestamp,
    })
}

struct Checked {
    action: String,
    version: String,
    access_key_id: String,
    nonce: String,
    timestamp: OffsetDateTime,
}

fn incomplete(detail: &str) -> RpcError {
    RpcError::gateway_with_detail(Gateway::IncompleteSignature, detail)
}

fn check_nonce_len(name: &str, nonce: &str, limits: &Limits) -> Result<(), RpcError> {
    if nonce.is_empty() || nonce.len() > limits.max_nonce_bytes {
        return Err(RpcError::invalid_parameter(
            name,
            format!("It must be 1 to {} bytes long.", limits.max_nonce_bytes),
        ));
    }
    Ok(())
}

fn verify_v1(
    parts: &RequestParts<'_>,
    all: &BTreeMap<String, String>,
    keys: &dyn KeyStore,
    now: OffsetDateTime,
    limits: &Limits,
) -> Result<Checked, RpcError> {
    let get = |name: &str| all.get(name).map(String::as_str);
    let require = |name: &str| get(name).ok_or_else(|| RpcError::missing(name));
    let signature = require("Signature")?;
    let access_key_id = require("AccessKeyId")?;
    let nonce = require("SignatureNonce")?;
    let timestamp = require("Timestamp")?;
    let method = require("SignatureMethod")?;
    let sig_version = require("SignatureVersion")?;
    let action = require("Action")?;
    let version = require("Version")?;
    if method != "HMAC-SHA1" {
        return Err(incomplete("SignatureMethod must be HMAC-SHA1."));
    }
    if sig_version != "1.0" {
        return Err(incomplete("SignatureVersion must be 1.0."));
    }
    check_nonce_len("SignatureNonce", nonce, limits)?;
    let secret = keys
        .secret(access_key_id)
        .ok_or_else(|| RpcError::from(Gateway::InvalidAccessKeyIdNotFound))?;
    let timestamp = check_timestamp("Timestamp", timestamp, now, limits.timestamp_window_secs)?;

    let sts = v1_string_to_sign(
        parts.method,
        all.iter()
            .filter(|(k, _)| k.as_str() != "Signature")
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let expected = v1_mac(&secret, &sts).finalize().into_bytes();
    // Strict base64 (padding and trailing bits canonical): two encodings of one MAC would make
    // the signature malleable.
    let provided = base64::engine::general_purpose::STANDARD
        .decode(signature)
        .unwrap_or_default();
    if !bool::from(expected.as_slice().ct_eq(&provided)) {
        return Err(RpcError::signature_mismatch_v1(&sts));
    }
    Ok(Checked {
        action: action.into(),
        version: version.into(),
        access_key_id: access_key_id.into(),
        nonce: nonce.into(),
        timestamp,
    })
}

/// The fields of `ACS3-HMAC-SHA256 Credential=…,SignedHeaders=…,Signature=…`.
struct V3Auth<'a> {
    credential: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

fn parse_v3_authorization(auth: &str) -> Result<V3Auth<'_>, RpcError> {
    let (algorithm, rest) = auth.split_once(' ').unwrap_or((auth, ""));
    if algorithm != crate::sign::V3_ALGORITHM {
        return Err(incomplete(
            "The only supported V3 algorithm is ACS3-HMAC-SHA256.",
        ));
    }
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for field in rest.split(',') {
        let (k, v) = field
            .trim()
            .split_once('=')
            .ok_or_else(|| incomplete("The Authorization header is not well formed."))?;
        let slot = match k {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => return Err(incomplete("The Authorization header has an unknown field.")),
        };
        if slot.replace(v).is_some() {
            return Err(incomplete("The Authorization header repeats a field."));
        }
    }
    match (credential, signed_headers, signature) {
        (Some(credential), Some(signed_headers), Some(signature)) if !credential.is_empty() => {
            Ok(V3Auth {
                credential,
                signed_headers,
                signature,
            })
        }
        _ => Err(incomplete(
            "The Authorization header needs Credential, SignedHeaders and Signature.",
        )),
    }
}

/// Canonical header lines for the listed (lower-case) names, sorted by name whatever order the
/// list is in: each value trimmed; several headers of one name merged as their sorted values
/// joined by `,` (what the SDKs do).
///
/// The lines are sorted even though the `SignedHeaders` string itself is signed verbatim: the Java
/// Tea SDK (darabonba-openapi-util `getCanonicalizedHeadersMap`) joins `SignedHeaders` in its
/// header map's hash order but writes the canonical lines sorted, as the vendor's algorithm says.
pub fn v3_canonical_headers(
    headers: &HeaderMap,
    signed: &[&str],
) -> Result<Vec<(String, String)>, RpcError> {
    let mut sorted = signed.to_vec();
    sorted.sort_unstable();
    let mut out = Vec::with_capacity(sorted.len());
    for name in sorted {
        let mut values = Vec::new();
        for v in headers.get_all(name) {
            let v = v
                .to_str()
                .map_err(|_| incomplete(&format!("The signed header {name} is not valid text.")))?;
            values.push(v.trim());
        }
        if values.is_empty() {
            return Err(incomplete(&format!(
                "The signed header {name} is not present."
            )));
        }
        values.sort_unstable();
        out.push((name.to_string(), values.join(",")));
    }
    Ok(out)
}

/// The value of a header that must appear once, trimmed as the canonical headers are: the value
/// acted on must be the value that was signed, or `nonce ` and `nonce` would be two nonces
/// under one signature.
fn single_header<'h>(headers: &'h HeaderMap, name: &str, param: &str) -> Result<&'h str, RpcError> {
    let mut it = headers.get_all(name).iter();
    match (it.next(), it.next()) {
        (None, _) => Err(RpcError::missing(param)),
        (Some(v), None) => v
            .to_str()
            .map(str::trim)
            .map_err(|_| incomplete(&format!("The header {name} is not valid text."))),
        (Some(_), Some(_)) => Err(incomplete(&format!(
            "The header {name} is given more than once."
        ))),
    }
}

fn verify_v3(
    parts: &RequestParts<'_>,
    auth: &str,
    query: &[(String, String)],
    keys: &dyn KeyStore,
    now: OffsetDateTime,
    limits: &Limits,
) -> Result<Checked, RpcError> {
    let auth = parse_v3_authorization(auth)?;
    let signed: Vec<&str> = auth.signed_headers.split(';').collect();
    for (i, name) in signed.iter().enumerate() {
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !valid || signed[..i].contains(name) {
            return Err(incomplete(
                "SignedHeaders must be distinct lower-case header names separated by ';'.",
            ));
        }
    }
    if !signed.contains(&HOST.as_str()) {
        return Err(incomplete("SignedHeaders must include host."));
    }
    for name in parts.headers.keys() {
        if name.as_str().starts_with("x-acs-") && !signed.contains(&name.as_str()) {
            return Err(incomplete(&format!(
                "SignedHeaders must include every x-acs-* header; {name} is missing."
            )));
        }
    }
    if !parts.body.is_empty()
        && parts.headers.contains_key(CONTENT_TYPE)
        && !signed.contains(&"content-type")
    {
        return Err(incomplete(
            "SignedHeaders must include content-type when the request has a body.",
        ));
    }

    let action = single_header(parts.headers, "x-acs-action", "Action")?;
    let version = single_header(parts.headers, "x-acs-version", "Version")?;
    let date = single_header(parts.headers, "x-acs-date", "Timestamp")?;
    let nonce = single_header(parts.headers, "x-acs-signature-nonce", "SignatureNonce")?;
    let claimed_hash = single_header(parts.headers, "x-acs-content-sha256", "ContentSha256")?;
    if action.is_empty() {
        return Err(RpcError::missing("Action"));
    }
    if version.is_empty() {
        return Err(RpcError::missing("Version"));
    }
    check_nonce_len("x-acs-signature-nonce", nonce, limits)?;

    let secret = keys
        .secret(auth.credential)
        .ok_or_else(|| RpcError::from(Gateway::InvalidAccessKeyIdNotFound))?;
    let timestamp = check_timestamp("x-acs-date", date, now, limits.timestamp_window_secs)?;
    if !claimed_hash.eq_ignore_ascii_case(&content_sha256(parts.body)) {
        return Err(RpcError::gateway_with_detail(
            Gateway::SignatureDoesNotMatch,
            "The x-acs-content-sha256 header does not match the SHA-256 of the request body.",
        ));
    }

    let canonical_headers = v3_canonical_headers(parts.headers, &signed)?;
    let cq = canonical_query(query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let cr = v3_canonical_request(
        parts.method,
        parts.path,
        &cq,
        &canonical_headers,
        auth.signed_headers,
        claimed_hash,
    );
    let expected = v3_mac(&secret, &v3_string_to_sign(&cr))
        .finalize()
        .into_bytes();
    let provided = hex::decode(auth.signature).unwrap_or_default();
    if !bool::from(expected.as_slice().ct_eq(&provided)) {
        return Err(Gateway::SignatureDoesNotMatch.into());
    }
    Ok(Checked {
        action: action.into(),
        version: version.into(),
        access_key_id: auth.credential.into(),
        nonce: nonce.into(),
        timestamp,
    })
}
