//! V3 (ACS3-HMAC-SHA256) canonicalisation and verification, end to end through `acs_rpc::verify`.
//!
//! Signed mode: query parameters, extra headers and a body are signed with the client signer,
//! then optionally one part is mutated (query bytes, body bytes, a header value, the
//! Authorization header). Properties:
//! - an unmutated request with well-formed parameters and headers is accepted, with exactly those
//!   parameters (form-body parameters included);
//! - whatever is accepted means exactly what was signed (action, version, parameters, key, nonce,
//!   time) — the format may differ only when it came from an unsigned `accept` header;
//! - every refusal is a 4xx, never a panic.

#![no_main]

#[path = "common.rs"]
mod common;

use acs_rpc::{
    sign_v3_request, verify, BoundedNonceGuard, Credentials, Limits, RequestParts, Secret,
    V3Request,
};
use arbitrary::Arbitrary;
use common::{keys, params_of, well_formed, Mutation, KEY_ID, NOW, SECRET};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Target {
    Query,
    Body,
    /// The value of the n-th header.
    Header(u8),
}

#[derive(Arbitrary, Debug)]
struct Input {
    query: Vec<(String, String)>,
    /// Form-body parameters (sent with `content-type: application/x-www-form-urlencoded`).
    form: Option<Vec<(String, String)>>,
    accept_xml: bool,
    nonce: String,
    host: String,
    mutation: Option<(Target, Mutation)>,
    /// Replaces the Authorization header with arbitrary text.
    authorization: Option<String>,
}

fn encode_form(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                acs_rpc::percent_encode(k),
                acs_rpc::percent_encode(v)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

fuzz_target!(|input: Input| {
    let secret = Secret::new(SECRET);
    let body = input.form.as_deref().map(encode_form).unwrap_or_default();
    let accept = if input.accept_xml {
        "application/xml"
    } else {
        "application/json"
    };
    let mut extra = vec![("accept", accept)];
    if input.form.is_some() {
        extra.push(("content-type", "application/x-www-form-urlencoded"));
    }
    let query = params_of(&input.query);
    let signed = sign_v3_request(
        &V3Request {
            method: "POST",
            host: &input.host,
            query: &query,
            headers: &extra,
            body: body.as_bytes(),
            action: "DescribeRegions",
            version: "2015-12-01",
        },
        &Credentials {
            access_key_id: KEY_ID,
            secret: &secret,
            nonce: &input.nonce,
            timestamp: NOW,
        },
    );
    let mut query_bytes = signed.query.clone().into_bytes();
    let mut body_bytes = body.clone().into_bytes();
    let mut header_list = signed.headers.clone();
    let mutated = input.mutation.is_some() || input.authorization.is_some();
    if let Some((target, m)) = &input.mutation {
        match target {
            Target::Query => m.apply(&mut query_bytes),
            Target::Body => m.apply(&mut body_bytes),
            Target::Header(n) => {
                let i = *n as usize % header_list.len();
                let mut v = header_list[i].1.clone().into_bytes();
                m.apply(&mut v);
                header_list[i].1 = String::from_utf8_lossy(&v).into_owned();
            }
        }
    }
    if let Some(a) = &input.authorization {
        for (k, v) in header_list.iter_mut() {
            if k == "authorization" {
                *v = a.clone();
            }
        }
    }
    // A header a real HTTP stack could not carry is simply not sent.
    let mut headers = HeaderMap::new();
    let mut dropped = false;
    for (k, v) in &header_list {
        match (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            (Ok(k), Ok(v)) => {
                headers.append(k, v);
            }
            _ => dropped = true,
        }
    }
    let query_text = String::from_utf8_lossy(&query_bytes).into_owned();
    let parts = RequestParts {
        method: "POST",
        path: "/",
        query: &query_text,
        headers: &headers,
        body: &body_bytes,
    };
    let limits = Limits::default();
    let result = verify(&parts, &keys(), &BoundedNonceGuard::new(4), NOW, &limits);

    let mut business = input.query.clone();
    business.extend(input.form.clone().unwrap_or_default());
    // Header values the verifier reads must be text (visible ASCII, as `HeaderValue::to_str`
    // requires); HTTP would trim surrounding whitespace, and an empty nonce is no nonce.
    let text = |v: &str| !v.trim().is_empty() && v.bytes().all(|b| (0x20..0x7f).contains(&b));
    let expected_ok = !mutated
        && !dropped
        && text(&input.host)
        && text(&input.nonce)
        && input.nonce.trim().len() <= limits.max_nonce_bytes
        && well_formed(&business, 0)
        && query_text.len() <= limits.max_query_bytes;
    match result {
        Ok(v) => {
            assert_eq!(v.action, "DescribeRegions");
            assert_eq!(v.version, "2015-12-01");
            assert_eq!(v.access_key_id, KEY_ID);
            // Header values are signed trimmed, so the trimmed value is what was signed.
            assert_eq!(v.nonce, input.nonce.trim());
            assert_eq!(v.timestamp, NOW);
            assert_eq!(
                v.params,
                common::expected_params(&business),
                "accepted {v:?}"
            );
            if !mutated && !business.iter().any(|(k, _)| k == "Format") {
                let expected = if input.accept_xml {
                    acs_rpc::Format::Xml
                } else {
                    acs_rpc::Format::Json
                };
                assert_eq!(v.format, expected);
            }
        }
        Err(rejection) => {
            let status = rejection.error.status();
            assert!((400..500).contains(&status), "{:?}", rejection.error);
            assert!(
                !expected_ok,
                "a correctly signed, well-formed request was refused: {:?}",
                rejection.error
            );
        }
    }
});
