//! V1 (HMAC-SHA1) canonicalisation and verification, end to end through `acs_rpc::verify`.
//!
//! Signed mode: the business parameters are signed with the client signer (the same code the CLI
//! and benchmarks use, checked against the vendor's vectors), sent in the query (GET/POST) or as a
//! form body (POST), then optionally mutated. Properties:
//! - an unmutated request with well-formed parameters is accepted, with exactly those parameters;
//! - whatever is accepted — mutated or not — means exactly what was signed: same action, version,
//!   parameters, key, nonce and time (a mutation may only change the encoding, never the meaning);
//! - every refusal is a 4xx, never a panic.
//!
//! Raw mode: arbitrary bytes as query/body/Authorization; must be refused with a 4xx.

#![no_main]

#[path = "common.rs"]
mod common;

use acs_rpc::{
    sign_v1_request, verify, BoundedNonceGuard, Credentials, Limits, RequestParts, Secret,
};
use arbitrary::Arbitrary;
use common::{keys, params_of, well_formed, Mutation, KEY_ID, NOW, SECRET};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Input {
    Signed {
        params: Vec<(String, String)>,
        nonce: String,
        post: bool,
        in_body: bool,
        mutation: Option<Mutation>,
        mutate_body: bool,
    },
    Raw {
        query: Vec<u8>,
        body: Vec<u8>,
        form: bool,
        authorization: Option<String>,
    },
}

/// Action, Version, Format, AccessKeyId, SignatureMethod, SignatureVersion, SignatureNonce,
/// Timestamp, Signature.
const PROTOCOL_SENT: usize = 9;

fuzz_target!(|input: Input| match input {
    Input::Signed {
        params,
        nonce,
        post,
        in_body,
        mutation,
        mutate_body,
    } => signed(&params, &nonce, post, in_body, mutation, mutate_body),
    Input::Raw {
        query,
        body,
        form,
        authorization,
    } => raw(&query, &body, form, authorization),
});

fn signed(
    business: &[(String, String)],
    nonce: &str,
    post: bool,
    in_body: bool,
    mutation: Option<Mutation>,
    mutate_body: bool,
) {
    let method = if post { "POST" } else { "GET" };
    let in_body = post && in_body;
    let secret = Secret::new(SECRET);
    let mut all = vec![
        ("Action", "DescribeRegions"),
        ("Version", "2015-12-01"),
        ("Format", "JSON"),
    ];
    all.extend(params_of(business));
    let encoded = sign_v1_request(
        method,
        &all,
        &Credentials {
            access_key_id: KEY_ID,
            secret: &secret,
            nonce,
            timestamp: NOW,
        },
    );
    let (mut query, mut body) = if in_body {
        (Vec::new(), encoded.into_bytes())
    } else {
        (encoded.into_bytes(), Vec::new())
    };
    let mutated = mutation.is_some();
    if let Some(m) = &mutation {
        m.apply(if mutate_body && in_body {
            &mut body
        } else {
            &mut query
        });
    }
    let mut headers = HeaderMap::new();
    if in_body {
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
    }
    let query = String::from_utf8_lossy(&query).into_owned();
    let parts = RequestParts {
        method,
        path: "/",
        query: &query,
        headers: &headers,
        body: &body,
    };
    let limits = Limits::default();
    let result = verify(&parts, &keys(), &BoundedNonceGuard::new(4), NOW, &limits);
    let nonce_ok = !nonce.is_empty() && nonce.len() <= limits.max_nonce_bytes;
    let expected_ok = !mutated
        && nonce_ok
        && well_formed(business, PROTOCOL_SENT)
        && query.len() <= limits.max_query_bytes;
    match result {
        Ok(v) => {
            assert_eq!(v.action, "DescribeRegions");
            assert_eq!(v.version, "2015-12-01");
            assert_eq!(v.access_key_id, KEY_ID);
            assert_eq!(v.nonce, nonce);
            assert_eq!(v.timestamp, NOW);
            assert_eq!(v.format, acs_rpc::Format::Json);
            assert_eq!(
                v.params,
                common::expected_params(&business),
                "accepted {v:?}"
            );
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
}

fn raw(query: &[u8], body: &[u8], form: bool, authorization: Option<String>) {
    let mut headers = HeaderMap::new();
    if form {
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
    }
    if let Some(a) = authorization.and_then(|a| HeaderValue::from_str(&a).ok()) {
        headers.insert("authorization", a);
    }
    let query = String::from_utf8_lossy(query).into_owned();
    let parts = RequestParts {
        method: "POST",
        path: "/",
        query: &query,
        headers: &headers,
        body,
    };
    let r = verify(
        &parts,
        &keys(),
        &BoundedNonceGuard::new(4),
        NOW,
        &Limits::default(),
    );
    let e = r.expect_err("unsigned bytes were accepted");
    assert!((400..500).contains(&e.error.status()), "{:?}", e.error);
    let _ = acs_rpc::guess_format(&parts);
}
