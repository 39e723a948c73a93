//! Every bound in [`Limits`] and the nonce guard's capacity, tested at the edge: a correctly
//! signed request exactly at the limit is accepted, the one just over it gets the documented
//! error (docs/limits.md) — so an off-by-one in either direction fails here.

use acs_rpc::{
    sign_v1_request, sign_v3_request, verify, BoundedNonceGuard, Credentials, Limits,
    MemoryKeyStore, Rejection, RequestParts, Secret, V3Request, Verified,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2026-11-26 12:00:00 UTC);

fn keys() -> MemoryKeyStore {
    let mut k = MemoryKeyStore::new();
    k.insert("testid", Secret::new("testsecret"));
    k
}

/// A V1 GET query string carrying `extra` business parameters, signed with `nonce`.
fn v1(extra: &[(&str, &str)], nonce: &str) -> String {
    let secret = Secret::new("testsecret");
    let mut params = vec![
        ("Action", "DescribeRegions"),
        ("Version", "2015-12-01"),
        ("Format", "JSON"),
    ];
    params.extend_from_slice(extra);
    let creds = Credentials {
        access_key_id: "testid",
        secret: &secret,
        nonce,
        timestamp: NOW,
    };
    sign_v1_request("GET", &params, &creds)
}

/// Protocol parameters of a V1 request from [`v1`]: Action, Version, Format, AccessKeyId,
/// SignatureMethod, SignatureVersion, SignatureNonce, Timestamp, Signature.
const V1_PROTOCOL_PARAMS: usize = 9;

fn run_query(query: &str, limits: &Limits) -> Result<Verified, Rejection> {
    let headers = HeaderMap::new();
    let parts = RequestParts {
        method: "GET",
        path: "/",
        query,
        headers: &headers,
        body: b"",
    };
    verify(&parts, &keys(), &BoundedNonceGuard::new(10), NOW, limits)
}

fn code(r: Result<Verified, Rejection>) -> (String, u16, String) {
    let e = r.expect_err("expected a refusal").error;
    (e.code().to_string(), e.status(), e.message().to_string())
}

#[test]
fn query_bytes() {
    let q = v1(&[("Pad", &"x".repeat(200))], "n");
    let at = Limits {
        max_query_bytes: q.len(),
        ..Limits::default()
    };
    run_query(&q, &at).expect("a query of exactly max_query_bytes is read");
    let over = Limits {
        max_query_bytes: q.len() - 1,
        ..Limits::default()
    };
    let (c, s, m) = code(run_query(&q, &over));
    assert_eq!((c.as_str(), s), ("InvalidParameter", 400));
    assert!(
        m.contains(&format!("longer than {} bytes", q.len() - 1)),
        "{m}"
    );
}

#[test]
fn parameter_count() {
    let limits = Limits {
        max_params: V1_PROTOCOL_PARAMS + 3,
        ..Limits::default()
    };
    let at = v1(&[("A", "1"), ("B", "2"), ("C", "3")], "n");
    assert_eq!(run_query(&at, &limits).unwrap().params.len(), 3);
    let over = v1(&[("A", "1"), ("B", "2"), ("C", "3"), ("D", "4")], "n");
    let (c, s, m) = code(run_query(&over, &limits));
    assert_eq!((c.as_str(), s), ("InvalidParameter", 400));
    assert!(m.contains("more than 12 parameters"), "{m}");
}

#[test]
fn parameter_count_spans_query_and_form_body() {
    let limits = Limits {
        max_params: V1_PROTOCOL_PARAMS + 1,
        ..Limits::default()
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    let run = |body: &[u8]| {
        let q = v1(&[], "n");
        let parts = RequestParts {
            method: "GET",
            path: "/",
            query: &q,
            headers: &headers,
            body,
        };
        verify(&parts, &keys(), &BoundedNonceGuard::new(10), NOW, &limits)
    };
    // The body is unsigned here, so the one at the limit fails the signature — after the count
    // check passed; the one over it never gets that far.
    assert_eq!(code(run(b"A=1")).0, "SignatureDoesNotMatch");
    let (c, _, m) = code(run(b"A=1&B=2"));
    assert_eq!(c, "InvalidParameter");
    assert!(m.contains("more than 10 parameters"), "{m}");
}

#[test]
fn name_bytes() {
    let limits = Limits {
        max_name_bytes: 20,
        ..Limits::default()
    };
    let at_name = "N".repeat(20);
    let v = run_query(&v1(&[(&at_name, "v")], "n"), &limits).unwrap();
    assert_eq!(v.params[&at_name], "v");
    let over_name = "N".repeat(21);
    let (c, s, m) = code(run_query(&v1(&[(&over_name, "v")], "n"), &limits));
    assert_eq!((c.as_str(), s), ("InvalidParameter", 400));
    assert!(m.contains("longer than 20 bytes"), "{m}");
}

#[test]
fn value_bytes_count_decoded_bytes() {
    let limits = Limits {
        max_value_bytes: 40,
        ..Limits::default()
    };
    // 20 two-byte characters: 40 bytes decoded, 120 on the wire.
    let at = "ä".repeat(20);
    let v = run_query(&v1(&[("Note", &at)], "n"), &limits).unwrap();
    assert_eq!(v.params["Note"], at);
    let over = format!("{at}x");
    let (c, s, m) = code(run_query(&v1(&[("Note", &over)], "n"), &limits));
    assert_eq!((c.as_str(), s), ("InvalidParameter", 400));
    assert!(
        m.contains("\"Note\"") && m.contains("longer than 40 bytes"),
        "{m}"
    );
}

#[test]
fn nonce_bytes_v1() {
    let limits = Limits {
        max_nonce_bytes: 16,
        ..Limits::default()
    };
    run_query(&v1(&[], &"a".repeat(16)), &limits).unwrap();
    let (c, s, m) = code(run_query(&v1(&[], &"a".repeat(17)), &limits));
    assert_eq!((c.as_str(), s), ("InvalidParameter", 400));
    assert!(
        m.contains("\"SignatureNonce\"") && m.contains("1 to 16 bytes"),
        "{m}"
    );
}

fn run_v3(nonce: &str, limits: &Limits) -> Result<Verified, Rejection> {
    let secret = Secret::new("testsecret");
    let creds = Credentials {
        access_key_id: "testid",
        secret: &secret,
        nonce,
        timestamp: NOW,
    };
    let signed = sign_v3_request(
        &V3Request {
            method: "POST",
            host: "127.0.0.1:8080",
            query: &[("RegionId", "cn-hangzhou")],
            headers: &[("accept", "application/json")],
            body: b"",
            action: "DescribeRegions",
            version: "2015-12-01",
        },
        &creds,
    );
    let mut headers = HeaderMap::new();
    for (k, v) in &signed.headers {
        headers.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let parts = RequestParts {
        method: "POST",
        path: "/",
        query: &signed.query,
        headers: &headers,
        body: b"",
    };
    verify(&parts, &keys(), &BoundedNonceGuard::new(10), NOW, limits)
}

#[test]
fn nonce_bytes_v3() {
    let limits = Limits {
        max_nonce_bytes: 16,
        ..Limits::default()
    };
    run_v3(&"b".repeat(16), &limits).unwrap();
    let (c, s, m) = code(run_v3(&"b".repeat(17), &limits));
    assert_eq!((c.as_str(), s), ("InvalidParameter", 400));
    assert!(m.contains("\"x-acs-signature-nonce\""), "{m}");
}

#[test]
fn nonce_capacity_refuses_with_a_retry_hint() {
    let guard = BoundedNonceGuard::new(3);
    let headers = HeaderMap::new();
    let limits = Limits::default();
    let run = |nonce: &str, now: OffsetDateTime| {
        let q = v1(&[], nonce);
        let parts = RequestParts {
            method: "GET",
            path: "/",
            query: &q,
            headers: &headers,
            body: b"",
        };
        verify(&parts, &keys(), &guard, now, &limits)
    };
    for n in ["n1", "n2", "n3"] {
        run(n, NOW).expect("up to the capacity");
    }
    let e = run("n4", NOW).unwrap_err().error;
    assert_eq!((e.code(), e.status()), ("Throttling.User", 400));
    // The oldest nonce expires at its timestamp + the window: that is when room frees up.
    assert_eq!(e.retry_after_ms(), Some(15 * 60 * 1000));
    let later = NOW + Duration::minutes(5);
    assert_eq!(
        run("n4", later).unwrap_err().error.retry_after_ms(),
        Some(10 * 60 * 1000)
    );
    // Other refusals carry no hint (the Tea SDKs turn any error with one into a ThrottlingException).
    assert_eq!(run("n1", NOW).unwrap_err().error.retry_after_ms(), None);
}

#[test]
fn timestamp_window_is_inclusive() {
    let limits = Limits::default();
    let window = Duration::seconds(limits.timestamp_window_secs);
    let headers = HeaderMap::new();
    for (now, ok) in [
        (NOW + window, true),
        (NOW - window, true),
        (NOW + window + Duration::seconds(1), false),
        (NOW - window - Duration::seconds(1), false),
    ] {
        let q = v1(&[], "w");
        let parts = RequestParts {
            method: "GET",
            path: "/",
            query: &q,
            headers: &headers,
            body: b"",
        };
        let r = verify(&parts, &keys(), &BoundedNonceGuard::new(10), now, &limits);
        match r {
            Ok(_) => assert!(ok, "accepted at {now}"),
            Err(e) => {
                assert!(!ok, "refused at {now}: {:?}", e.error);
                assert_eq!(e.error.code(), "InvalidTimeStamp.Expired");
            }
        }
    }
}
