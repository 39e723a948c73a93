//! The decode path the `wire_frame` fuzz target drives (frame → command), under proptest:
//! arbitrary and mutated bytes never panic, and whatever is accepted respects the limits and
//! re-encodes to a frame that decodes to the same command.

use bson::{doc, Bson, Document};
use mongo_wire::frame::{encode_op_msg, msg_flags, DocumentSequence, OpMsg};
use mongo_wire::{decode_request, WireLimits};
use proptest::prelude::*;

fn small_limits() -> WireLimits {
    WireLimits {
        max_message_size_bytes: 512,
        max_bson_object_size: 96,
        max_bson_depth: 4,
        ..WireLimits::default()
    }
}

fn value() -> impl Strategy<Value = Bson> {
    let leaf = prop_oneof![
        any::<i32>().prop_map(Bson::Int32),
        any::<i64>().prop_map(Bson::Int64),
        any::<bool>().prop_map(Bson::Boolean),
        "[a-z]{0,8}".prop_map(Bson::String),
    ];
    leaf.prop_recursive(5, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Bson::Array),
            prop::collection::vec(("[a-z]{1,4}", inner), 0..4)
                .prop_map(|fields| Bson::Document(fields.into_iter().collect())),
        ]
    })
}

fn document() -> impl Strategy<Value = Document> {
    prop::collection::vec(("[a-z]{1,6}", value()), 0..4).prop_map(|f| f.into_iter().collect())
}

fn frame() -> impl Strategy<Value = Vec<u8>> {
    (
        "[a-zA-Z]{1,8}",
        document(),
        prop::collection::vec(
            ("[a-z]{1,6}", prop::collection::vec(document(), 0..3)),
            0..3,
        ),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(name, extra, sequences, checksum, more)| {
            let mut body = doc! { name: 1, "$db": "app" };
            body.extend(extra);
            let flags = (if checksum {
                msg_flags::CHECKSUM_PRESENT
            } else {
                0
            }) | (if more { msg_flags::MORE_TO_COME } else { 0 });
            let sequences = sequences
                .into_iter()
                .map(|(identifier, documents)| DocumentSequence {
                    identifier,
                    documents,
                })
                .collect();
            encode_op_msg(
                1,
                0,
                &OpMsg {
                    flags,
                    body,
                    sequences,
                },
            )
            .unwrap()
        })
}

#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(at, x)| Edit::Flip(at, x)),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, b)| Edit::Insert(at, b)),
    ]
}

fn apply(bytes: &mut Vec<u8>, edit: &Edit, fix_length: bool) {
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
    match edit {
        Edit::Flip(i, x) if !bytes.is_empty() => {
            let i = at(*i, bytes.len());
            bytes[i] ^= x;
        }
        Edit::Truncate(i) => bytes.truncate(at(*i, bytes.len() + 1)),
        Edit::Insert(i, extra) => {
            let i = at(*i, bytes.len() + 1);
            bytes.splice(i..i, extra.iter().copied());
        }
        Edit::Flip(..) => {}
    }
    if fix_length && bytes.len() >= 4 {
        let len = bytes.len() as i32;
        bytes[..4].copy_from_slice(&len.to_le_bytes());
    }
}

fn check(bytes: &[u8], limits: &WireLimits) {
    mongo_wire::invariants::assert_decode_invariants(bytes, limits);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600), fix in any::<bool>()) {
        let mut bytes = bytes;
        if fix && bytes.len() >= 4 {
            let len = bytes.len() as i32;
            bytes[..4].copy_from_slice(&len.to_le_bytes());
        }
        check(&bytes, &WireLimits::default());
        check(&bytes, &small_limits());
    }

    #[test]
    fn valid_frames_decode_and_edits_never_panic(
        frame in frame(),
        edits in prop::collection::vec(edit(), 0..4),
        fix in any::<bool>(),
    ) {
        let limits = WireLimits::default();
        prop_assert!(decode_request(&frame, &limits).is_ok());
        let mut bytes = frame;
        for e in &edits {
            apply(&mut bytes, e, fix);
        }
        check(&bytes, &limits);
        check(&bytes, &small_limits());
    }
}

/// The committed fuzz seeds are real frames: each decodes as its name says.
#[test]
fn fuzz_seeds_decode_as_named() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/wire_frame");
    let limits = WireLimits::default();
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    for name in [
        "ping",
        "hello_sasl",
        "insert_sequence",
        "update_two_sequences",
        "checksum",
        "more_to_come",
        "exhaust_allowed",
        "op_query_ismaster",
        "op_query_dollar_query",
        "deep",
    ] {
        let bytes = read(name);
        let command = decode_request(&bytes, &limits)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        check(&bytes, &limits);
        if name == "insert_sequence" {
            assert_eq!(command.body.get_array("documents").unwrap().len(), 2);
        }
        if name == "more_to_come" {
            assert!(command.more_to_come);
        }
    }
    let refused = |name: &str| {
        decode_request(&read(name), &limits)
            .unwrap()
            .unwrap_err()
            .code()
    };
    assert_eq!(refused("no_db"), 9);
    assert_eq!(refused("op_query_find"), 352);
    assert!(matches!(
        decode_request(&read("deep"), &small_limits()),
        Err(mongo_wire::FrameError::TooDeep(4))
    ));
}
