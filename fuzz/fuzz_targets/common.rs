//! Shared by the fuzz targets: a fixed key, a fixed clock, and byte-level mutations.

#![allow(dead_code)]

use acs_rpc::{MemoryKeyStore, Secret};
use arbitrary::Arbitrary;
use time::macros::datetime;
use time::OffsetDateTime;

pub const NOW: OffsetDateTime = datetime!(2026-11-26 12:00:00 UTC);
pub const KEY_ID: &str = "testid";
pub const SECRET: &str = "testsecret";

pub fn keys() -> MemoryKeyStore {
    let mut k = MemoryKeyStore::new();
    k.insert(KEY_ID, Secret::new(SECRET));
    k
}

/// One edit of a byte string, the kind a proxy, a buggy client or an attacker makes.
#[derive(Arbitrary, Debug, Clone)]
pub enum Mutation {
    Flip {
        at: u16,
        xor: u8,
    },
    Insert {
        at: u16,
        bytes: Vec<u8>,
    },
    Remove {
        at: u16,
        len: u8,
    },
    Truncate {
        at: u16,
    },
    Append(Vec<u8>),
    /// Swaps two `&`-separated segments (a reordering that must not change the meaning).
    SwapSegments {
        a: u8,
        b: u8,
    },
}

impl Mutation {
    pub fn apply(&self, s: &mut Vec<u8>) {
        let pos = |at: u16, len: usize| if len == 0 { 0 } else { at as usize % (len + 1) };
        match self {
            Mutation::Flip { at, xor } => {
                if !s.is_empty() {
                    let i = *at as usize % s.len();
                    s[i] ^= xor;
                }
            }
            Mutation::Insert { at, bytes } => {
                let i = pos(*at, s.len());
                s.splice(i..i, bytes.iter().copied());
            }
            Mutation::Remove { at, len } => {
                let i = pos(*at, s.len());
                let end = (i + *len as usize).min(s.len());
                s.drain(i..end);
            }
            Mutation::Truncate { at } => {
                let i = pos(*at, s.len());
                s.truncate(i);
            }
            Mutation::Append(bytes) => s.extend_from_slice(bytes),
            Mutation::SwapSegments { a, b } => {
                let mut segs: Vec<Vec<u8>> = s.split(|&c| c == b'&').map(<[u8]>::to_vec).collect();
                let n = segs.len();
                segs.swap(*a as usize % n, *b as usize % n);
                *s = segs.join(&b'&');
            }
        }
    }
}

/// Business parameters as a fuzzer produces them, restricted to text (the request is built by a
/// signer, which only takes text).
pub fn params_of(raw: &[(String, String)]) -> Vec<(&str, &str)> {
    raw.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Whether a correctly signed request with these business parameters must be accepted under the
/// default limits: distinct non-empty names that are not protocol parameters, everything within
/// the limits. `extra_protocol` counts the protocol parameters the scheme sends as parameters.
pub fn well_formed(params: &[(String, String)], extra_protocol: usize) -> bool {
    let limits = acs_rpc::Limits::default();
    let mut names = std::collections::BTreeSet::new();
    params.len() + extra_protocol <= limits.max_params
        && params.iter().all(|(k, v)| {
            !k.is_empty()
                && k.len() <= limits.max_name_bytes
                && v.len() <= limits.max_value_bytes
                && !acs_rpc::PROTOCOL_PARAMS.contains(&k.as_str())
                && names.insert(k.as_str())
        })
}

/// What a handler must see when a request carrying `business` is accepted: the parameters by
/// name, protocol parameters (which the verifier consumes) left out. Names must be distinct —
/// a request repeating one must never be accepted.
pub fn expected_params(
    business: &[(String, String)],
) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for (k, v) in business {
        assert!(
            out.insert(k.clone(), v.clone()).is_none(),
            "accepted a repeated name {k:?}"
        );
    }
    out.retain(|k, _| !acs_rpc::PROTOCOL_PARAMS.contains(&k.as_str()));
    out
}
