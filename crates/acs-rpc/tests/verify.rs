//! Verifier behaviour on requests built with the crate's own client signers: every refusal has the
//! right code, status and response format.

use acs_rpc::{
    sign_v1_request, sign_v3_request, v1_signature, v1_string_to_sign, v3_canonical_headers,
    v3_canonical_request, v3_signature, v3_string_to_sign, verify, BoundedNonceGuard, Credentials,
    Format, Limits, MemoryKeyStore, NonceGuard, Rejection, RequestParts, Scheme, Secret, V3Request,
    Verified,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2026-11-26 12:00:00 UTC);

fn keys() -> MemoryKeyStore {
    let mut k = MemoryKeyStore::new();
    k.insert("testid", Secret::new("testsecret"));
    k
}

fn creds<'a>(secret: &'a Secret, nonce: &'a str) -> Credentials<'a> {
    Credentials {
        access_key_id: "testid",
        secret,
        nonce,
        timestamp: NOW,
    }
}

fn headers(list: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in list {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

struct Req {
    method: &'static str,
    path: &'static str,
    query: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Req {
    fn get(query: String) -> Self {
        Req {
            method: "GET",
            path: "/",
            query,
            headers: HeaderMap::new(),
            body: Vec::new(),
        }
    }

    fn run_with(&self, guard: &dyn NonceGuard, now: OffsetDateTime) -> Result<Verified, Rejection> {
        let parts = RequestParts {
            method: self.method,
            path: self.path,
            query: &self.query,
            headers: &self.headers,
            body: &self.body,
        };
        verify(&parts, &keys(), guard, now, &Limits::default())
    }

    fn run(&self) -> Result<Verified, Rejection> {
        self.run_with(&BoundedNonceGuard::new(100), NOW)
    }

    fn code_status(&self) -> (String, u16) {
        let r = self.refused();
        (r.0, r.1)
    }

    fn refused(&self) -> (String, u16, Format, String) {
        let r = self.run().expect_err("must be refused");
        (
            r.error.code().to_string(),
            r.error.status(),
            r.format,
            r.error.message().to_string(),
        )
    }
}

fn v1_query(params: &[(&str, &str)], secret: &str, nonce: &str) -> String {
    let s = Secret::new(secret);
    sign_v1_request("GET", params, &creds(&s, nonce))
}

const BASE: [(&str, &str); 3] = [
    ("Action", "DescribeRegions"),
    ("Version", "2015-12-01"),
    ("Format", "JSON"),
];

#[test]
fn v1_get_round_trip_with_business_params() {
    let mut p = BASE.to_vec();
    p.push(("RegionId", "cn-hangzhou"));
    p.push(("Note", "a b*c~d+e/ä"));
    let v = Req::get(v1_query(&p, "testsecret", "n1")).run().unwrap();
    assert_eq!(
        (v.action.as_str(), v.version.as_str(), v.scheme, v.format),
        ("DescribeRegions", "2015-12-01", Scheme::V1, Format::Json)
    );
    assert_eq!(v.params.len(), 2);
    assert_eq!(v.params["Note"], "a b*c~d+e/ä");
    assert_eq!(v.nonce, "n1");
}

#[test]
fn v1_post_with_every_param_in_a_form_body() {
    let s = Secret::new("testsecret");
    let body = sign_v1_request("POST", &BASE, &creds(&s, "n1"));
    let mut req = Req::get(String::new());
    req.method = "POST";
    req.body = body.clone().into_bytes();
    assert_eq!(
        req.refused().0,
        "MissingSignature",
        "without the form content type the body is not read"
    );
    req.headers = headers(&[(
        "content-type",
        "application/x-www-form-urlencoded; charset=UTF-8",
    )]);
    assert!(req.run().is_ok());
    // Signed for POST, sent as GET: the method is part of what is signed.
    let mut as_get = Req::get(body);
    as_get.method = "GET";
    assert_eq!(as_get.refused().0, "SignatureDoesNotMatch");
}

#[test]
fn v1_params_split_between_query_and_body_like_terraform() {
    let s = Secret::new("testsecret");
    let signed = sign_v1_request(
        "POST",
        &[("Action", "X"), ("Version", "1"), ("DBInstanceId", "dds-1")],
        &creds(&s, "n"),
    );
    let (body, query): (Vec<&str>, Vec<&str>) = signed
        .split('&')
        .partition(|kv| kv.starts_with("DBInstanceId="));
    let req = Req {
        method: "POST",
        path: "/",
        query: query.join("&"),
        headers: headers(&[("content-type", "application/x-www-form-urlencoded")]),
        body: body.join("&").into_bytes(),
    };
    assert_eq!(req.run().unwrap().params["DBInstanceId"], "dds-1");
}

#[test]
fn v1_format_defaults_to_xml_and_is_case_insensitive() {
    let v = Req::get(v1_query(&BASE[..2], "testsecret", "n"))
        .run()
        .unwrap();
    assert_eq!(v.format, Format::Xml);
    let v = Req::get(v1_query(
        &[BASE[0], BASE[1], ("Format", "xml")],
        "testsecret",
        "n",
    ))
    .run()
    .unwrap();
    assert_eq!(v.format, Format::Xml);
    let v = Req::get(v1_query(
        &[BASE[0], BASE[1], ("Format", "json")],
        "testsecret",
        "n",
    ))
    .run()
    .unwrap();
    assert_eq!(v.format, Format::Json);
    let (code, status, format, msg) = Req::get(v1_query(
        &[BASE[0], BASE[1], ("Format", "YAML")],
        "testsecret",
        "n",
    ))
    .refused();
    assert_eq!(
        (code.as_str(), status, format),
        ("InvalidParameter", 400, Format::Xml)
    );
    assert!(msg.contains("\"Format\""), "{msg}");
}

#[test]
fn v1_wrong_secret_reports_the_server_string_to_sign_like_a_real_gateway() {
    let q = v1_query(&BASE, "not-the-secret", "n1");
    let (code, status, format, msg) = Req::get(q.clone()).refused();
    assert_eq!(
        (code.as_str(), status, format),
        ("SignatureDoesNotMatch", 400, Format::Json)
    );
    // aliyun-python-sdk-core: `string_to_sign == server_error_message.split(':')[1]` ⇒ InvalidAccessKeySecret.
    let params: Vec<(String, String)> = q
        .split('&')
        .filter(|kv| !kv.starts_with("Signature="))
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.replace("%3A", ":"))
        })
        .collect();
    let client_sts = v1_string_to_sign("GET", params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    assert_eq!(msg.split(':').nth(1), Some(client_sts.as_str()), "{msg}");
    assert!(msg.starts_with(
        "Specified signature is not matched with our calculation. server string to sign is:"
    ));
}

#[test]
fn v1_missing_and_malformed_protocol_fields() {
    let full = v1_query(&BASE, "testsecret", "n1");
    for name in [
        "Signature",
        "AccessKeyId",
        "SignatureNonce",
        "Timestamp",
        "SignatureMethod",
        "SignatureVersion",
        "Action",
        "Version",
    ] {
        let q: Vec<&str> = full
            .split('&')
            .filter(|kv| !kv.starts_with(&format!("{name}=")))
            .collect();
        let (code, status, format, msg) = Req::get(q.join("&")).refused();
        assert_eq!(
            (code, status, format),
            (format!("Missing{name}"), 400, Format::Json),
            "{name}"
        );
        assert_eq!(msg, format!("{name} is mandatory for this action."));
    }
    for (from, to) in [
        ("SignatureMethod=HMAC-SHA1", "SignatureMethod=HMAC-SHA256"),
        ("SignatureVersion=1.0", "SignatureVersion=2.0"),
    ] {
        let (code, status, ..) = Req::get(full.replace(from, to)).refused();
        assert_eq!(
            (code.as_str(), status),
            ("IncompleteSignature", 400),
            "{to}"
        );
    }
    let unknown =
        v1_query(&BASE, "testsecret", "n1").replace("AccessKeyId=testid", "AccessKeyId=nobody");
    assert_eq!(Req::get(unknown).refused().0, "InvalidAccessKeyId.NotFound");
    assert_eq!(
        Req::get(v1_query(&BASE, "testsecret", &"n".repeat(129)))
            .refused()
            .0,
        "InvalidParameter"
    );
    assert!(Req::get(v1_query(&BASE, "testsecret", &"n".repeat(128)))
        .run()
        .is_ok());
}

#[test]
fn v1_timestamps() {
    let q = v1_query(&BASE, "testsecret", "n1");
    let run_at = |now| Req::get(q.clone()).run_with(&BoundedNonceGuard::new(4), now);
    assert!(run_at(NOW + Duration::minutes(15)).is_ok());
    assert!(run_at(NOW - Duration::minutes(15)).is_ok());
    let r = run_at(NOW + Duration::minutes(16)).unwrap_err();
    assert_eq!(
        (r.error.code(), r.error.status()),
        ("InvalidTimeStamp.Expired", 400)
    );
    let r = run_at(NOW - Duration::minutes(16)).unwrap_err();
    assert_eq!(r.error.code(), "InvalidTimeStamp.Expired");
    for bad in [
        "2026-11-26T12%3A00%3A00%2B08%3A00",
        "2026-11-26",
        "yesterday",
        "2026-11-26T12%3A00%3A00z",
    ] {
        let r = Req::get(q.replace("2026-11-26T12%3A00%3A00Z", bad)).refused();
        assert_eq!(
            (r.0.as_str(), r.1),
            ("InvalidTimeStamp.Format", 400),
            "{bad}"
        );
    }
}

#[test]
fn malformed_requests_are_clear_400s() {
    let good = v1_query(&BASE, "testsecret", "n1");
    for (query, needle) in [
        (format!("{good}&Note=%zz"), "\"Note\""),
        (format!("{good}&Note=%4"), "\"Note\""),
        (format!("{good}&Note=%C3%28"), "UTF-8"),
        (format!("{good}&N%zzote=1"), "percent-encoding"),
        (format!("{good}&Action=DescribeRegions"), "\"Action\""),
        (format!("{good}&=x"), "empty name"),
    ] {
        let (code, status, format, msg) = Req::get(query.clone()).refused();
        assert_eq!(
            (code.as_str(), status, format),
            ("InvalidParameter", 400, Format::Json),
            "{query}"
        );
        assert!(msg.contains(needle), "{msg}");
    }
    let many: String = (0..300).map(|i| format!("&P{i}=1")).collect();
    assert_eq!(
        Req::get(format!("{good}{many}")).refused().0,
        "InvalidParameter"
    );
    // A value over max_value_bytes cannot even fit in a default-sized query (limits.rs tests the
    // value bound on its own).
    let long = format!("{good}&Big={}", "x".repeat(64 * 1024 + 1));
    assert!(Req::get(long)
        .refused()
        .3
        .contains("query string is longer than 32768 bytes"));

    let mut put = Req::get(good.clone());
    put.method = "PUT";
    assert_eq!(
        put.code_status(),
        ("UnsupportedHTTPMethod".to_string(), 403)
    );
    let mut other = Req::get(good);
    other.path = "/foo";
    assert_eq!(
        other.code_status(),
        ("InvalidAction.NotFound".to_string(), 404)
    );
}

#[test]
fn nonce_is_recorded_only_after_the_signature_verified() {
    let guard = BoundedNonceGuard::new(100);
    let forged = Req::get(v1_query(&BASE, "wrong", "shared-nonce"));
    assert_eq!(
        forged.run_with(&guard, NOW).unwrap_err().error.code(),
        "SignatureDoesNotMatch"
    );
    assert!(guard.is_empty());
    let real = Req::get(v1_query(&BASE, "testsecret", "shared-nonce"));
    assert!(real.run_with(&guard, NOW).is_ok());
    let r = real.run_with(&guard, NOW).unwrap_err();
    assert_eq!(
        (r.error.code(), r.error.status()),
        ("SignatureNonceUsed", 400)
    );
}

#[test]
fn full_nonce_guard_throttles_instead_of_forgetting() {
    let guard = BoundedNonceGuard::new(2);
    assert!(Req::get(v1_query(&BASE, "testsecret", "a"))
        .run_with(&guard, NOW)
        .is_ok());
    assert!(Req::get(v1_query(&BASE, "testsecret", "b"))
        .run_with(&guard, NOW)
        .is_ok());
    let r = Req::get(v1_query(&BASE, "testsecret", "c"))
        .run_with(&guard, NOW)
        .unwrap_err();
    assert_eq!((r.error.code(), r.error.status()), ("Throttling.User", 400));
    // "a" is still remembered.
    let r = Req::get(v1_query(&BASE, "testsecret", "a"))
        .run_with(&guard, NOW)
        .unwrap_err();
    assert_eq!(r.error.code(), "SignatureNonceUsed");
}

#[test]
fn sdk_v3_unit_vector_with_duplicate_header_names() {
    // darabonba-openapi-util python/tests/test_client.py: headers x-acs-test: http and x-acs-TEST: https.
    let h = headers(&[("x-acs-test", "http"), ("x-acs-TEST", "https")]);
    let ch = v3_canonical_headers(&h, &["x-acs-test"]).unwrap();
    assert_eq!(
        ch,
        vec![("x-acs-test".to_string(), "http,https".to_string())]
    );
    let cq = acs_rpc::canonical_query([("test", "ok"), ("empty", "")]);
    let cr = v3_canonical_request(
        "GET",
        "/",
        &cq,
        &ch,
        "x-acs-test",
        "55e12e91650d2fec56ec74e1d3e4ddbfce2ef3a65890c2a19ecf88a307e76a23",
    );
    assert_eq!(
        cr,
        "GET\n/\nempty=&test=ok\nx-acs-test:http,https\n\nx-acs-test\n55e12e91650d2fec56ec74e1d3e4ddbfce2ef3a65890c2a19ecf88a307e76a23"
    );
    assert_eq!(
        v3_signature(&Secret::new("secret"), &v3_string_to_sign(&cr)),
        "d16b30a7699ae9e43875b13195b2f81bcc3ed10c14a9b5eb780e51619aa50be1"
    );
}

fn v3_req(
    query: &[(&str, &str)],
    extra: &[(&str, &str)],
    body: &[u8],
    secret: &str,
    nonce: &str,
) -> Req {
    let s = Secret::new(secret);
    let signed = sign_v3_request(
        &V3Request {
            method: "POST",
            host: "127.0.0.1:8080",
            query,
            headers: extra,
            body,
            action: "DescribeRegions",
            version: "2015-12-01",
        },
        &creds(&s, nonce),
    );
    let mut h = HeaderMap::new();
    for (k, v) in &signed.headers {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    Req {
        method: "POST",
        path: "/",
        query: signed.query,
        headers: h,
        body: body.to_vec(),
    }
}

#[test]
fn v3_round_trip_query_and_form_body() {
    let r = v3_req(
        &[("RegionId", "cn-hangzhou")],
        &[
            ("accept", "application/json"),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        b"Note=a+b%2Ac&SwitchMode=1",
        "testsecret",
        "n1",
    );
    let v = r.run().unwrap();
    assert_eq!(
        (v.scheme, v.format, v.action.as_str()),
        (Scheme::V3, Format::Json, "DescribeRegions")
    );
    assert_eq!(v.params.len(), 3);
    assert_eq!(v.params["Note"], "a b*c");
}

#[test]
fn v3_padding_a_signed_header_does_not_make_a_new_nonce_or_action() {
    // The canonical headers trim values, so padded values still verify; what is acted on must be
    // the trimmed (signed) value, or padding the nonce would replay the request under a "new" one.
    let guard = BoundedNonceGuard::new(10);
    let r = v3_req(&[], &[], b"", "testsecret", "pad-nonce");
    let v = r.run_with(&guard, NOW).unwrap();
    assert_eq!(v.nonce, "pad-nonce");
    let mut padded = v3_req(&[], &[], b"", "testsecret", "pad-nonce");
    padded.headers.insert(
        "x-acs-signature-nonce",
        HeaderValue::from_static("pad-nonce  "),
    );
    padded
        .headers
        .insert("x-acs-action", HeaderValue::from_static(" DescribeRegions"));
    let e = padded.run_with(&guard, NOW).unwrap_err();
    assert_eq!(e.error.code(), "SignatureNonceUsed");
    let v = padded.run().unwrap();
    assert_eq!(
        (v.nonce.as_str(), v.action.as_str()),
        ("pad-nonce", "DescribeRegions")
    );
}

#[test]
fn v3_format_from_accept_or_format_param() {
    let xml = v3_req(
        &[],
        &[("accept", "application/xml")],
        b"",
        "testsecret",
        "n",
    );
    assert_eq!(xml.run().unwrap().format, Format::Xml);
    let none = v3_req(&[], &[], b"", "testsecret", "n");
    assert_eq!(none.run().unwrap().format, Format::Json);
    let param = v3_req(
        &[("Format", "XML")],
        &[("accept", "application/json")],
        b"",
        "testsecret",
        "n",
    );
    assert_eq!(param.run().unwrap().format, Format::Xml);
    let bad = v3_req(&[("Format", "yaml")], &[], b"", "testsecret", "n");
    let (code, status, format, _) = bad.refused();
    assert_eq!(
        (code.as_str(), status, format),
        ("InvalidParameter", 400, Format::Json)
    );
}

#[test]
fn v3_refusals() {
    let form = ("content-type", "application/x-www-form-urlencoded");
    // Body altered after signing.
    let mut r = v3_req(&[], &[form], b"SwitchMode=1", "testsecret", "n");
    r.body = b"SwitchMode=0".to_vec();
    let (code, status, format, msg) = r.refused();
    assert_eq!(
        (code.as_str(), status, format),
        ("SignatureDoesNotMatch", 400, Format::Json)
    );
    assert!(msg.contains("x-acs-content-sha256"), "{msg}");

    let wrong = v3_req(&[], &[], b"", "other", "n");
    assert_eq!(
        wrong.code_status(),
        ("SignatureDoesNotMatch".to_string(), 400)
    );

    // An x-acs-* header the client did not sign.
    let mut extra = v3_req(&[], &[], b"", "testsecret", "n");
    extra
        .headers
        .insert("x-acs-evil", HeaderValue::from_static("1"));
    assert_eq!(extra.refused().0, "IncompleteSignature");

    // host not signed.
    let mut r = v3_req(&[], &[], b"", "testsecret", "n");
    let auth = r.headers["authorization"]
        .to_str()
        .unwrap()
        .replace("SignedHeaders=host;", "SignedHeaders=");
    r.headers
        .insert("authorization", HeaderValue::from_str(&auth).unwrap());
    assert_eq!(r.refused().0, "IncompleteSignature");

    // Unsupported algorithm.
    let mut r = v3_req(&[], &[], b"", "testsecret", "n");
    let auth = r.headers["authorization"]
        .to_str()
        .unwrap()
        .replace("ACS3-HMAC-SHA256", "ACS3-HMAC-SM3");
    r.headers
        .insert("authorization", HeaderValue::from_str(&auth).unwrap());
    assert_eq!(r.code_status(), ("IncompleteSignature".to_string(), 400));

    // Both schemes at once.
    let r = v3_req(&[("Signature", "abc")], &[], b"", "testsecret", "n");
    assert_eq!(r.refused().0, "IncompleteSignature");

    // Missing protocol headers.
    for (header, code) in [
        ("x-acs-date", "MissingTimestamp"),
        ("x-acs-signature-nonce", "MissingSignatureNonce"),
        ("x-acs-action", "MissingAction"),
    ] {
        let mut r = v3_req(&[], &[], b"", "testsecret", "n");
        r.headers.remove(header);
        let auth = r.headers["authorization"]
            .to_str()
            .unwrap()
            .replace(&format!("{header};"), "")
            .replace(&format!(";{header}"), "");
        r.headers
            .insert("authorization", HeaderValue::from_str(&auth).unwrap());
        assert_eq!(r.refused().0, code, "{header}");
    }

    // Stale date and unknown key.
    let r = v3_req(&[], &[], b"", "testsecret", "n");
    let e = r
        .run_with(&BoundedNonceGuard::new(2), NOW + Duration::minutes(20))
        .unwrap_err();
    assert_eq!(e.error.code(), "InvalidTimeStamp.Expired");
    let mut r = v3_req(&[], &[], b"", "testsecret", "n");
    let auth = r.headers["authorization"]
        .to_str()
        .unwrap()
        .replace("Credential=testid", "Credential=ghost");
    r.headers
        .insert("authorization", HeaderValue::from_str(&auth).unwrap());
    assert_eq!(
        r.code_status(),
        ("InvalidAccessKeyId.NotFound".to_string(), 404)
    );
}

#[test]
fn v1_signature_helpers_agree_with_the_signer() {
    let s = Secret::new("testsecret");
    let q = sign_v1_request("GET", &BASE, &creds(&s, "n"));
    let sig = q
        .rsplit_once("&Signature=")
        .unwrap()
        .1
        .replace("%2B", "+")
        .replace("%2F", "/")
        .replace("%3D", "=");
    let without: Vec<(String, String)> = q
        .split('&')
        .filter(|kv| !kv.starts_with("Signature="))
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.replace("%3A", ":"))
        })
        .collect();
    let sts = v1_string_to_sign("GET", without.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    assert_eq!(v1_signature(&s, &sts), sig);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(
        query in proptest::collection::vec(any::<u8>(), 0..300),
        body in proptest::collection::vec(any::<u8>(), 0..300),
        form in any::<bool>(),
        auth in proptest::option::of("ACS3-HMAC-SHA256 [ -~]{0,80}"),
        method in prop_oneof![Just("GET"), Just("POST"), Just("DELETE")],
    ) {
        let query = String::from_utf8_lossy(&query).into_owned();
        let mut h = HeaderMap::new();
        if form {
            h.insert("content-type", HeaderValue::from_static("application/x-www-form-urlencoded"));
        }
        if let Some(a) = auth {
            if let Ok(v) = HeaderValue::from_str(&a) {
                h.insert("authorization", v);
            }
        }
        let parts = RequestParts { method, path: "/", query: &query, headers: &h, body: &body };
        let r = verify(&parts, &keys(), &BoundedNonceGuard::new(4), NOW, &Limits::default());
        let e = r.expect_err("random bytes never carry a valid signature");
        prop_assert!(e.error.status() >= 400 && e.error.status() < 500, "{:?}", e.error);
        let _ = acs_rpc::guess_format(&parts);
    }

    #[test]
    fn signed_values_of_any_text_round_trip(value in "\\PC{0,40}", name in "[A-Za-z][A-Za-z0-9._-]{0,20}") {
        prop_assume!(!acs_rpc::PROTOCOL_PARAMS.contains(&name.as_str()));
        let q = v1_query(&[BASE[0], BASE[1], (name.as_str(), value.as_str())], "testsecret", "n");
        let v = Req::get(q).run().unwrap();
        prop_assert_eq!(&v.params[&name], &value);
    }
}

#[test]
fn security_tokens_are_tolerated_and_not_passed_on() {
    let mut p = BASE.to_vec();
    p.push(("SecurityToken", "sts-token"));
    let v = Req::get(v1_query(&p, "testsecret", "n")).run().unwrap();
    assert!(v.params.is_empty(), "{:?}", v.params);
    let r = v3_req(
        &[],
        &[("x-acs-security-token", "sts-token")],
        b"",
        "testsecret",
        "n",
    );
    assert!(r.run().is_ok());
    // It is an x-acs-* header, so it must be signed like the others.
    let mut unsigned = v3_req(&[], &[], b"", "testsecret", "n");
    unsigned.headers.insert(
        "x-acs-security-token",
        HeaderValue::from_static("sts-token"),
    );
    assert_eq!(unsigned.refused().0, "IncompleteSignature");
}
