//! The parameter decoder (query string + form body) and the timestamp parser.
//!
//! Properties: never panics; whatever it accepts respects every limit; canonicalising what it
//! accepted and decoding again gives the same parameters (the signed form names exactly what the
//! handler gets); a timestamp the client signer writes parses back to the same instant.

#![no_main]

use acs_rpc::{canonical_query, format_timestamp, parse_params, parse_timestamp, Limits};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    query: &'a [u8],
    body: &'a [u8],
    /// Small limits reach the limit paths with small inputs.
    small_limits: bool,
    timestamp_text: &'a str,
    unix_secs: i64,
}

fuzz_target!(|input: Input<'_>| {
    let limits = if input.small_limits {
        Limits {
            max_query_bytes: 64,
            max_params: 4,
            max_name_bytes: 8,
            max_value_bytes: 8,
            ..Limits::default()
        }
    } else {
        Limits::default()
    };
    if let Ok(params) = parse_params(input.query, input.body, &limits) {
        assert!(input.query.len() <= limits.max_query_bytes);
        assert!(params.len() <= limits.max_params);
        for (k, v) in &params {
            assert!(!k.is_empty() && k.len() <= limits.max_name_bytes, "{k:?}");
            assert!(v.len() <= limits.max_value_bytes, "{v:?}");
        }
        let canonical = canonical_query(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let again = parse_params(canonical.as_bytes(), b"", &Limits::default())
            .expect("a canonical query always decodes");
        assert_eq!(again, params);
    }

    // The parser bounds its own input length, whatever it is given.
    let parsed = parse_timestamp(input.timestamp_text);
    if let Some(t) = parsed {
        assert!(t.year() >= 0 && t.year() <= 9999);
    }
    let secs = input.unix_secs.rem_euclid(253_402_300_800); // 0000..=9999 years after 1970
    if let Ok(t) = time::OffsetDateTime::from_unix_timestamp(secs) {
        let text = format_timestamp(t);
        assert_eq!(parse_timestamp(&text), Some(t), "{text}");
    }
});
