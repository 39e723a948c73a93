//! Every request captured from a real SDK client (`fixtures/real-client-requests.jsonl`) must
//! verify, and must stop verifying when any single byte of what it signs changes.
//!
//! The mutation loop changes one byte at a time, everywhere: method, raw path + query, every
//! header name and value, body. The replacement is the "next" character of the same class
//! (`a`→`b`, `z`→`a`, `9`→`0`, …) or the byte with its low bit flipped, so the request stays
//! plausible. Expected outcome per location:
//! - method, path/query, body: always refused (all of it is signed: V1 signs query ∪ body, V3
//!   signs the query and the body's hash; the path must be `/`);
//! - V3 signed headers (name or value) and `Authorization`: always refused;
//! - V3 unsigned headers: still verify (not signed, and nothing about them is used);
//! - V1 headers: still verify (V1 signs no header), except `content-type` when there is a form
//!   body: it decides whether the body's parameters are read at all, so changing it is refused.
//!
//! A `-` in a header name becomes `_` (its flipped byte `,` cannot be in a header name), so every
//! mutation is a request HTTP can carry; the test asserts none had to be skipped.

use std::collections::BTreeMap;

use acs_rpc::{
    verify, BoundedNonceGuard, Format, Limits, MemoryKeyStore, RequestParts, Scheme, Secret,
    Verified,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use time::OffsetDateTime;

#[derive(Clone, Debug)]
struct Fixture {
    client: String,
    method: String,
    raw_path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    v3: bool,
}

fn fixtures() -> Vec<Fixture> {
    let text = include_str!("fixtures/real-client-requests.jsonl");
    let out: Vec<Fixture> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["access_key_id"], "testid");
            assert_eq!(v["access_key_secret"], "testsecret");
            assert_eq!(v["expect"], "valid signature");
            Fixture {
                client: v["client"].as_str().unwrap().into(),
                method: v["method"].as_str().unwrap().into(),
                raw_path: v["raw_path"].as_str().unwrap().into(),
                headers: v["headers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| (h[0].as_str().unwrap().into(), h[1].as_str().unwrap().into()))
                    .collect(),
                body: v["body"].as_str().unwrap().as_bytes().to_vec(),
                v3: v["signature"].as_str().unwrap().starts_with("V3"),
            }
        })
        .collect();
    assert_eq!(out.len(), 20, "the fixture file holds 20 requests");
    out
}

fn keys() -> MemoryKeyStore {
    let mut k = MemoryKeyStore::new();
    k.insert("testid", Secret::new("testsecret"));
    k
}

/// `None` when the mutated bytes cannot be an HTTP request at all.
fn header_map(headers: &[(String, String)]) -> Option<HeaderMap> {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        let name = HeaderName::from_bytes(k.as_bytes()).ok()?;
        let value = HeaderValue::from_bytes(v.as_bytes()).ok()?;
        map.append(name, value);
    }
    Some(map)
}

/// The fixture's own signing time, so its timestamp is exactly "now".
fn signing_time(f: &Fixture) -> OffsetDateTime {
    let raw = if f.v3 {
        f.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-acs-date"))
            .unwrap()
            .1
            .clone()
    } else {
        let all = format!(
            "{}&{}",
            f.raw_path.split_once('?').map_or("", |(_, q)| q),
            String::from_utf8_lossy(&f.body)
        );
        let enc = all
            .split('&')
            .find_map(|kv| kv.strip_prefix("Timestamp="))
            .unwrap()
            .to_string();
        enc.replace("%3A", ":")
    };
    acs_rpc::parse_timestamp(&raw).unwrap()
}

fn run(f: &Fixture, now: OffsetDateTime) -> Option<Result<Verified, acs_rpc::Rejection>> {
    let headers = header_map(&f.headers)?;
    let (path, query) = f.raw_path.split_once('?').unwrap_or((&f.raw_path, ""));
    let parts = RequestParts {
        method: &f.method,
        path,
        query,
        headers: &headers,
        body: &f.body,
    };
    Some(verify(
        &parts,
        &keys(),
        &BoundedNonceGuard::new(16),
        now,
        &Limits::default(),
    ))
}

fn next_byte(b: u8) -> u8 {
    match b {
        b'0'..=b'8' | b'a'..=b'y' | b'A'..=b'Y' => b + 1,
        b'9' => b'0',
        b'z' => b'a',
        b'Z' => b'A',
        _ => b ^ 0x01,
    }
}

fn mutated(s: &str, i: usize) -> Option<String> {
    let mut bytes = s.as_bytes().to_vec();
    bytes[i] = next_byte(bytes[i]);
    String::from_utf8(bytes).ok()
}

#[test]
fn every_captured_request_verifies_at_its_own_time() {
    for f in fixtures() {
        let now = signing_time(&f);
        let v = run(&f, now)
            .unwrap()
            .unwrap_or_else(|r| panic!("{}: {:?}", f.client, r.error));
        assert_eq!(v.access_key_id, "testid");
        assert_eq!(
            v.scheme,
            if f.v3 { Scheme::V3 } else { Scheme::V1 },
            "{}",
            f.client
        );
        assert_eq!(v.version, "2015-12-01");
        assert!(
            ["UpgradeDBInstanceKernelVersion", "CreateShardingDBInstance"]
                .contains(&v.action.as_str()),
            "{}",
            v.action
        );
        // Every captured client asked for JSON, by Format=JSON/json or by accept.
        assert_eq!(v.format, Format::Json, "{}", f.client);
        for p in acs_rpc::PROTOCOL_PARAMS {
            assert!(!v.params.contains_key(p), "{p} leaked into business params");
        }
        if v.action == "UpgradeDBInstanceKernelVersion" {
            assert!(
                v.params["DBInstanceId"].starts_with("dds-bp1"),
                "{:?}",
                v.params
            );
        } else {
            assert_eq!(v.params["DBInstanceDescription"], "my db*~/ä+&=");
            assert_eq!(v.params["ReplicaSet.2.Storage"], "20");
        }
        // The same request 15 minutes later still passes; one second more and it is expired.
        let later = now + time::Duration::minutes(15);
        assert!(run(&f, later).unwrap().is_ok());
        let late = run(&f, later + time::Duration::seconds(1))
            .unwrap()
            .unwrap_err();
        assert_eq!(late.error.code(), "InvalidTimeStamp.Expired");
    }
}

#[test]
fn form_body_parameters_reach_handlers() {
    let all = fixtures();
    let c11 = all.iter().find(|f| f.v3 && !f.body.is_empty()).unwrap();
    let v = run(c11, signing_time(c11)).unwrap().unwrap();
    let want: BTreeMap<String, String> = [
        ("DBInstanceId", "dds-bp1"),
        ("Note", "a b*c"),
        ("SwitchMode", "1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(v.params, want);
    let popcore_post = all.iter().find(|f| !f.v3 && !f.body.is_empty()).unwrap();
    let v = run(popcore_post, signing_time(popcore_post))
        .unwrap()
        .unwrap();
    assert_eq!(v.action, "UpgradeDBInstanceKernelVersion");
    assert_eq!(v.params["SwitchMode"], "0");
}

#[derive(Default, Debug)]
struct Tally {
    refused: usize,
    accepted: usize,
    skipped: usize,
}

#[test]
fn every_single_byte_mutation_of_signed_material_is_refused() {
    let mut tally = Tally::default();
    let mut wrong: Vec<String> = Vec::new();
    let mut check =
        |f: &Fixture, now: OffsetDateTime, must_fail: bool, what: String, t: &mut Tally| match run(
            f, now,
        ) {
            None => {
                eprintln!("skipped: {what}");
                t.skipped += 1
            }
            Some(Ok(_)) if must_fail => {
                wrong.push(format!("{}: still verifies after {what}", f.client))
            }
            Some(Err(r)) if !must_fail => wrong.push(format!(
                "{}: refused ({}) after unsigned {what}",
                f.client, r.error
            )),
            Some(Err(r)) => {
                assert!(r.error.status() < 500, "{what}: {:?}", r.error);
                t.refused += 1
            }
            Some(Ok(_)) => t.accepted += 1,
        };

    for f in fixtures() {
        let now = signing_time(&f);
        let signed: Vec<String> = if f.v3 {
            let auth = &f
                .headers
                .iter()
                .find(|(k, _)| k == "Authorization")
                .unwrap()
                .1;
            let sh = auth
                .split("SignedHeaders=")
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap();
            sh.split(';').map(str::to_string).collect()
        } else {
            Vec::new()
        };

        for i in 0..f.method.len() {
            let mut m = f.clone();
            m.method = mutated(&f.method, i).unwrap();
            check(&m, now, true, format!("method byte {i}"), &mut tally);
        }
        for i in 0..f.raw_path.len() {
            let mut m = f.clone();
            let Some(p) = mutated(&f.raw_path, i) else {
                continue;
            };
            m.raw_path = p;
            check(
                &m,
                now,
                true,
                format!("path byte {i} ({})", &f.raw_path[i..i + 1]),
                &mut tally,
            );
        }
        for i in 0..f.body.len() {
            let mut m = f.clone();
            m.body[i] = next_byte(m.body[i]);
            check(&m, now, true, format!("body byte {i}"), &mut tally);
        }
        for (h, (name, value)) in f.headers.iter().enumerate() {
            let lower = name.to_ascii_lowercase();
            let must_fail = if f.v3 {
                signed.contains(&lower) || lower == "authorization"
            } else {
                lower == "content-type" && !f.body.is_empty()
            };
            for i in 0..name.len() {
                let mut m = f.clone();
                // `-` flipped would be `,`, which no header name can hold; `_` can.
                m.headers[h].0 = if name.as_bytes()[i] == b'-' {
                    format!("{}_{}", &name[..i], &name[i + 1..])
                } else {
                    mutated(name, i).unwrap()
                };
                check(
                    &m,
                    now,
                    must_fail,
                    format!("header name {name} byte {i}"),
                    &mut tally,
                );
            }
            for i in 0..value.len() {
                let mut m = f.clone();
                m.headers[h].1 = mutated(value, i).unwrap();
                check(
                    &m,
                    now,
                    must_fail,
                    format!("header {name} value byte {i}"),
                    &mut tally,
                );
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} unexpected outcomes:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(tally.refused > 10_000, "{tally:?}");
    assert!(
        tally.accepted > 1_000,
        "unsigned headers were exercised: {tally:?}"
    );
    assert_eq!(tally.skipped, 0, "{tally:?}");
    eprintln!("{tally:?}");
}

#[test]
fn equivalent_encodings_still_verify() {
    let all = fixtures();
    // Lower-case hex and `+` for a space decode to the same parameters, hence the same signature.
    let c1 = all
        .iter()
        .find(|f| !f.v3 && f.raw_path.contains("%3A41%3A36Z"))
        .unwrap();
    let mut m = c1.clone();
    m.raw_path = c1.raw_path.replace("%3A41%3A36Z", "%3a41%3a36Z");
    assert!(run(&m, signing_time(c1)).unwrap().is_ok());

    let c12v1 = all
        .iter()
        .find(|f| !f.v3 && f.raw_path.contains("my%20db"))
        .unwrap();
    let mut m = c12v1.clone();
    m.raw_path = c12v1.raw_path.replace("my%20db", "my+db");
    assert!(run(&m, signing_time(c12v1)).unwrap().is_ok());

    let c12v3 = all
        .iter()
        .find(|f| f.v3 && f.raw_path.contains("my+db"))
        .unwrap();
    let mut m = c12v3.clone();
    m.raw_path = c12v3
        .raw_path
        .replace("my+db", "my%20db")
        .replace("%2A", "*");
    assert!(run(&m, signing_time(c12v3)).unwrap().is_ok());
    // …but `%2B` is a plus sign, not a space.
    let mut m = c12v3.clone();
    m.raw_path = c12v3.raw_path.replace("my+db", "my%2Bdb");
    assert_eq!(
        run(&m, signing_time(c12v3))
            .unwrap()
            .unwrap_err()
            .error
            .code(),
        "SignatureDoesNotMatch"
    );
}

#[test]
fn a_captured_request_cannot_be_replayed() {
    for f in fixtures() {
        let headers = header_map(&f.headers).unwrap();
        let (path, query) = f.raw_path.split_once('?').unwrap_or((&f.raw_path, ""));
        let parts = RequestParts {
            method: &f.method,
            path,
            query,
            headers: &headers,
            body: &f.body,
        };
        let guard = BoundedNonceGuard::new(16);
        let now = signing_time(&f);
        assert!(verify(&parts, &keys(), &guard, now, &Limits::default()).is_ok());
        let again = verify(
            &parts,
            &keys(),
            &guard,
            now + time::Duration::minutes(5),
            &Limits::default(),
        );
        let r = again.unwrap_err();
        assert_eq!(
            (r.error.code(), r.error.status(), r.format),
            ("SignatureNonceUsed", 400, Format::Json)
        );
    }
}
