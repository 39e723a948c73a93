//! The MongoDB wire decoder (`mongo_wire::decode_request`: header, `OP_MSG` sections and checksum,
//! `OP_QUERY`, BSON, then the command built from it) on hostile bytes.
//!
//! Properties: never panics; an accepted frame respects every limit (message size, document
//! sizes); re-encoding an accepted `OP_MSG` and decoding it again gives the same command.

#![no_main]

mod common;

use arbitrary::Arbitrary;
use common::Mutation;
use libfuzzer_sys::fuzz_target;
use mongo_wire::invariants::assert_decode_invariants;
use mongo_wire::WireLimits;

#[derive(Arbitrary, Debug)]
struct Input {
    bytes: Vec<u8>,
    mutations: Vec<Mutation>,
    /// Rewrites messageLength to the real length after mutating, so edits reach the sections.
    fix_length: bool,
    /// Small limits reach the limit paths with small inputs.
    small_limits: bool,
}

fuzz_target!(|input: Input| {
    let limits = if input.small_limits {
        WireLimits {
            max_message_size_bytes: 512,
            max_bson_object_size: 96,
            max_bson_depth: 4,
            ..WireLimits::default()
        }
    } else {
        WireLimits::default()
    };
    let mut bytes = input.bytes;
    for mutation in input.mutations.iter().take(4) {
        mutation.apply(&mut bytes);
    }
    if input.fix_length && bytes.len() >= 4 {
        let len = bytes.len() as i32;
        bytes[..4].copy_from_slice(&len.to_le_bytes());
    }
    assert_decode_invariants(&bytes, &limits);
});
