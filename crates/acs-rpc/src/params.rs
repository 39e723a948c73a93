//! Reading parameters from a URL query or an `application/x-www-form-urlencoded` body, and the
//! RFC 3986 encoding both signature schemes canonicalise with.
//!
//! Decoding is strict because the decoded bytes are what gets signed: a `%zz` that one side skips
//! and the other keeps would let two parties disagree on what was signed. `+` is a space (form
//! rules), which is how Python Tea writes spaces in the query.

use std::collections::BTreeMap;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

use crate::RpcError;

/// Bounds on everything a client sends. The defaults are far above what any SDK sends for any
/// Dds action (the largest, CreateShardingDBInstance, has well under 100 parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of the raw (still percent-encoded) query string. V1 clients put every parameter in
    /// the query; larger values belong in a form body. The default stays below hyper's own URI
    /// cap (65,534 bytes, answered with an empty 414) so a long query gets an envelope.
    pub max_query_bytes: usize,
    /// Parameters in query and form body together.
    pub max_params: usize,
    /// Bytes of a decoded parameter name.
    pub max_name_bytes: usize,
    /// Bytes of a decoded parameter value.
    pub max_value_bytes: usize,
    /// Bytes of `SignatureNonce` / `x-acs-signature-nonce` (SDKs send 32–64).
    pub max_nonce_bytes: usize,
    /// Accepted distance between the request's timestamp and the server clock, either way.
    pub timestamp_window_secs: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_query_bytes: 32 * 1024,
            max_params: 256,
            max_name_bytes: 128,
            max_value_bytes: 64 * 1024,
            max_nonce_bytes: 128,
            timestamp_window_secs: 15 * 60,
        }
    }
}

/// Where a parameter came from, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Query,
    Body,
}

impl Source {
    fn label(self) -> &'static str {
        match self {
            Source::Query => "query string",
            Source::Body => "form body",
        }
    }
}

/// Decodes one form/query component: `+` is a space, `%XX` a byte, result must be UTF-8.
pub(crate) fn decode_component(raw: &[u8]) -> Result<String, &'static str> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = raw.get(i + 1).copied().and_then(hex_val);
                let lo = raw.get(i + 2).copied().and_then(hex_val);
                match (hi, lo) {
                    (Some(h), Some(l)) => out.push(h << 4 | l),
                    _ => return Err("malformed percent-encoding"),
                }
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "percent-decoded bytes are not valid UTF-8")
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Splits `a=1&b=2` into decoded pairs, in order. Empty segments (`&&`, trailing `&`) carry no
/// parameter and are skipped; a segment without `=` is a name with an empty value.
pub(crate) fn parse_pairs(
    raw: &[u8],
    source: Source,
    limits: &Limits,
) -> Result<Vec<(String, String)>, RpcError> {
    let mut pairs = Vec::new();
    for segment in raw.split(|&b| b == b'&') {
        if segment.is_empty() {
            continue;
        }
        if pairs.len() >= limits.max_params {
            return Err(RpcError::malformed_request(format!(
                "The request has more than {} parameters.",
                limits.max_params
            )));
        }
        let (raw_name, raw_value) = match segment.iter().position(|&b| b == b'=') {
            Some(eq) => (&segment[..eq], &segment[eq + 1..]),
            None => (segment, &b""[..]),
        };
        let name = decode_component(raw_name).map_err(|why| {
            RpcError::malformed_request(format!(
                "A parameter name in the {} has {why}: \"{}\".",
                source.label(),
                shown(raw_name)
            ))
        })?;
        if name.is_empty() {
            return Err(RpcError::malformed_request(format!(
                "The {} has a parameter with an empty name.",
                source.label()
            )));
        }
        if name.len() > limits.max_name_bytes {
            return Err(RpcError::malformed_request(format!(
                "A parameter name in the {} is longer than {} bytes.",
                source.label(),
                limits.max_name_bytes
            )));
        }
        let value = decode_component(raw_value).map_err(|why| {
            RpcError::invalid_parameter(
                &name,
                format!("Its value in the {} has {why}.", source.label()),
            )
        })?;
        if value.len() > limits.max_value_bytes {
            return Err(RpcError::invalid_parameter(
                &name,
                format!("Its value is longer than {} bytes.", limits.max_value_bytes),
            ));
        }
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// Merges decoded pairs into one map, refusing any name given twice: a gateway and a handler
/// that picked different copies would act on a parameter other than the signed one.
pub(crate) fn merge_unique(
    groups: &[(&[(String, String)], Source)],
    limits: &Limits,
) -> Result<BTreeMap<String, String>, RpcError> {
    let mut map = BTreeMap::new();
    let mut count = 0usize;
    for (pairs, source) in groups {
        for (name, value) in pairs.iter() {
            count += 1;
            if count > limits.max_params {
                return Err(RpcError::malformed_request(format!(
                    "The request has more than {} parameters.",
                    limits.max_params
                )));
            }
            if map.insert(name.clone(), value.clone()).is_some() {
                return Err(RpcError::invalid_parameter(
                    name,
                    format!(
                        "It is given more than once (seen again in the {}).",
                        source.label()
                    ),
                ));
            }
        }
    }
    Ok(map)
}

/// Query pairs (in order) and the merged parameter map of a request: the query is at most
/// `max_query_bytes`, the form body (if any) is read with the same rules, no name twice.
pub(crate) type ReadParams = (Vec<(String, String)>, BTreeMap<String, String>);

pub(crate) fn read_params(
    query: &[u8],
    form_body: Option<&[u8]>,
    limits: &Limits,
) -> Result<ReadParams, RpcError> {
    if query.len() > limits.max_query_bytes {
        return Err(RpcError::malformed_request(format!(
            "The query string is longer than {} bytes.",
            limits.max_query_bytes
        )));
    }
    let query = parse_pairs(query, Source::Query, limits)?;
    let body = match form_body {
        Some(body) => parse_pairs(body, Source::Body, limits)?,
        None => Vec::new(),
    };
    let all = merge_unique(&[(&query, Source::Query), (&body, Source::Body)], limits)?;
    Ok((query, all))
}

/// Decodes the parameters of a request exactly as the verifier does: the raw query string and an
/// `application/x-www-form-urlencoded` body (pass `b""` when there is none), strictly
/// percent-decoded, bounded by `limits`, a name given twice refused.
pub fn parse_params(
    query: &[u8],
    form_body: &[u8],
    limits: &Limits,
) -> Result<BTreeMap<String, String>, RpcError> {
    read_params(query, Some(form_body), limits).map(|(_, all)| all)
}

/// A short, printable rendering of raw client bytes for an error message.
fn shown(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(&raw[..raw.len().min(64)]);
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Everything but `A-Z a-z 0-9 - _ . ~` is escaped, as both signature schemes require.
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// RFC 3986 percent-encoding with upper-case hex: space is `%20`, `*` is `%2A`, `~` stays.
pub fn percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, RFC3986).to_string()
}

/// `k1=v1&k2=v2…` over pairs sorted by name (byte order), names and values [`percent_encode`]d,
/// empty values kept as `k=`.
pub fn canonical_query<'a, I>(params: I) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut pairs: Vec<(&str, &str)> = params.into_iter().collect();
    pairs.sort();
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&percent_encode(k));
        out.push('=');
        out.push_str(&percent_encode(v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_is_space_and_percent_2b_is_plus() {
        assert_eq!(decode_component(b"a+b%20c%2Bd%2bE").unwrap(), "a b c+d+E");
    }

    #[test]
    fn malformed_percent_is_refused() {
        for bad in [
            &b"%zz"[..],
            b"%4",
            b"%",
            b"a%g1",
            b"%C3%28",
            b"%C0%AF",
            b"%FF",
        ] {
            assert!(
                decode_component(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(decode_component("%C3%A4ä".as_bytes()).unwrap(), "ää");
    }

    #[test]
    fn rfc3986_encoding_rules() {
        assert_eq!(
            percent_encode("a b*c~d+e/f:ä-_."),
            "a%20b%2Ac~d%2Be%2Ff%3A%C3%A4-_."
        );
        assert_eq!(percent_encode(""), "");
    }

    #[test]
    fn canonical_query_sorts_by_name_and_keeps_empty_values() {
        let q = canonical_query([("test", "ok"), ("empty", ""), ("SignatureType", "")]);
        assert_eq!(q, "SignatureType=&empty=&test=ok");
    }

    #[test]
    fn segments_and_limits() {
        let l = Limits::default();
        let p = parse_pairs(b"a=1&&b&c=&=", Source::Query, &l);
        assert_eq!(p.unwrap_err().code(), "InvalidParameter");
        let p = parse_pairs(b"a=1&&b&c=&", Source::Query, &l).unwrap();
        assert_eq!(
            p,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "".into()),
                ("c".into(), "".into())
            ]
        );
        let small = Limits {
            max_params: 2,
            max_name_bytes: 3,
            max_value_bytes: 4,
            ..Limits::default()
        };
        assert!(parse_pairs(b"a=1&b=2&c=3", Source::Query, &small).is_err());
        assert!(parse_pairs(b"abcd=1", Source::Query, &small).is_err());
        let e = parse_pairs(b"abc=12345", Source::Body, &small).unwrap_err();
        assert!(e.message().contains("\"abc\""), "{e}");
        assert!(parse_pairs(b"abc=1234", Source::Body, &small).is_ok());
    }

    #[test]
    fn duplicates_within_and_across_sources_are_refused() {
        let l = Limits::default();
        let q = parse_pairs(b"A=1&B=2", Source::Query, &l).unwrap();
        let b = parse_pairs(b"B=3", Source::Body, &l).unwrap();
        let e = merge_unique(&[(&q, Source::Query), (&b, Source::Body)], &l).unwrap_err();
        assert_eq!((e.code(), e.status()), ("InvalidParameter", 400));
        assert!(e.message().contains("\"B\""), "{e}");
        let q = parse_pairs(b"A=1&A=1", Source::Query, &l).unwrap();
        assert!(merge_unique(&[(&q, Source::Query)], &l).is_err());
        // Names are case-sensitive, as in the signature.
        let q = parse_pairs(b"A=1&a=1", Source::Query, &l).unwrap();
        assert_eq!(merge_unique(&[(&q, Source::Query)], &l).unwrap().len(), 2);
    }

    #[test]
    fn parse_params_merges_query_and_body_like_the_verifier() {
        let l = Limits::default();
        let m = parse_params(b"A=1&B=x+y", b"C=%2B", &l).unwrap();
        assert_eq!(m["A"], "1");
        assert_eq!(m["B"], "x y");
        assert_eq!(m["C"], "+");
        assert!(parse_params(b"A=1", b"A=2", &l).is_err());
        let short = Limits {
            max_query_bytes: 3,
            ..Limits::default()
        };
        assert!(parse_params(b"A=1", b"", &short).is_ok());
        assert!(parse_params(b"A=12", b"", &short).is_err());
    }

    proptest::proptest! {
        /// Decoding then canonicalising then decoding again is the identity: the canonical form
        /// the signatures are computed over names exactly the parameters the handler gets.
        #[test]
        fn canonical_query_round_trips(
            params in proptest::collection::btree_map("\\PC{1,12}", "\\PC{0,12}", 0..8)
        ) {
            let q = canonical_query(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let back = parse_params(q.as_bytes(), b"", &Limits::default()).unwrap();
            proptest::prop_assert_eq!(back, params);
        }
    }
}
