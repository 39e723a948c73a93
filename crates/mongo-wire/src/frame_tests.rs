use super::*;
use bson::doc;

fn limits() -> WireLimits {
    WireLimits::default()
}

fn sample_msg(flags: u32) -> OpMsg {
    OpMsg {
        flags,
        body: doc! { "insert": "c", "$db": "app" },
        sequences: vec![DocumentSequence {
            identifier: "documents".into(),
            documents: vec![
                doc! { "_id": 1, "a": [1, 2, { "b": "x" }] },
                doc! { "_id": 2 },
            ],
        }],
    }
}

/// `{ping: 1}` alone, so byte offsets into the body section are easy to state.
fn ping_frame() -> Vec<u8> {
    let msg = OpMsg {
        flags: 0,
        body: doc! { "ping": 1 },
        sequences: vec![],
    };
    encode_op_msg(1, 0, &msg).unwrap()
}

#[test]
fn op_msg_round_trips_with_and_without_checksum() {
    for flags in [0, msg_flags::CHECKSUM_PRESENT, msg_flags::MORE_TO_COME] {
        let msg = sample_msg(flags);
        let bytes = encode_op_msg(42, 7, &msg).unwrap();
        let (header, decoded) = decode_frame(&bytes, &limits()).unwrap();
        assert_eq!(header.message_length as usize, bytes.len());
        assert_eq!((header.request_id, header.response_to), (42, 7));
        assert_eq!(header.op_code, op_code::OP_MSG);
        assert_eq!(decoded, Message::Msg(msg));
    }
}

#[test]
fn crc32c_matches_the_standard_check_value() {
    let mut crc = Crc32c::new();
    crc.update(b"123456789");
    assert_eq!(crc.finish(), 0xE306_9283);
}

#[test]
fn a_flipped_byte_under_a_checksum_is_refused() {
    let mut bytes = encode_op_msg(1, 0, &sample_msg(msg_flags::CHECKSUM_PRESENT)).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 0x01;
    assert_eq!(
        decode_frame(&bytes, &limits()),
        Err(FrameError::ChecksumMismatch)
    );
}

#[test]
fn op_query_round_trips() {
    let query = OpQuery {
        flags: 0,
        full_collection_name: "admin.$cmd".into(),
        number_to_skip: 0,
        number_to_return: -1,
        query: doc! { "isMaster": 1, "client": { "driver": { "name": "x" } } },
    };
    let bytes = encode_op_query(9, &query).unwrap();
    let (header, decoded) = decode_frame(&bytes, &limits()).unwrap();
    assert_eq!(header.op_code, op_code::OP_QUERY);
    assert_eq!(decoded, Message::Query(query));
}

#[test]
fn op_reply_round_trips() {
    let doc = doc! { "ok": 1.0, "isWritablePrimary": true };
    let bytes = encode_op_reply(3, 9, 0, &doc).unwrap();
    let (header, flags, decoded) = decode_op_reply(&bytes, &limits()).unwrap();
    assert_eq!((header.response_to, flags), (9, 0));
    assert_eq!(decoded, doc);
}

#[test]
fn every_truncation_is_refused() {
    let bytes = encode_op_msg(1, 0, &sample_msg(0)).unwrap();
    for cut in 0..bytes.len() {
        assert_eq!(
            decode_frame(&bytes[..cut], &limits()).unwrap_err(),
            FrameError::Truncated,
            "cut at {cut}"
        );
    }
    // A header that claims less than the sections hold: the body is cut short.
    let mut short = bytes.clone();
    let len = (bytes.len() - 3) as i32;
    short[0..4].copy_from_slice(&len.to_le_bytes());
    short.truncate(bytes.len() - 3);
    assert!(matches!(
        decode_frame(&short, &limits()),
        Err(FrameError::Truncated | FrameError::BadBson(_))
    ));
}

#[test]
fn lengths_outside_the_limits_are_refused() {
    let header = |len: i32| MsgHeader {
        message_length: len,
        request_id: 1,
        response_to: 0,
        op_code: op_code::OP_MSG,
    };
    assert_eq!(
        header(15).body_len(&limits()),
        Err(FrameError::LengthTooSmall(15))
    );
    assert_eq!(
        header(-1).body_len(&limits()),
        Err(FrameError::LengthTooSmall(-1))
    );
    assert_eq!(
        header(i32::MAX).body_len(&limits()),
        Err(FrameError::LengthTooLarge {
            len: i64::from(i32::MAX),
            max: 48_000_000
        })
    );
    assert_eq!(header(48_000_000).body_len(&limits()), Ok(48_000_000 - 16));
}

#[test]
fn a_document_over_the_object_size_is_refused() {
    let small = WireLimits {
        max_bson_object_size: 64,
        ..limits()
    };
    let mut msg = sample_msg(0);
    msg.sequences[0]
        .documents
        .push(doc! { "big": "x".repeat(100) });
    let bytes = encode_op_msg(1, 0, &msg).unwrap();
    assert!(matches!(
        decode_frame(&bytes, &small),
        Err(FrameError::DocumentTooLarge { max: 64, .. })
    ));
}

#[test]
fn unknown_section_kind_is_refused() {
    let mut bytes = encode_op_msg(1, 0, &sample_msg(0)).unwrap();
    bytes[HEADER_LEN + 4] = 2;
    assert_eq!(
        decode_frame(&bytes, &limits()),
        Err(FrameError::BadSectionKind(2))
    );
}

#[test]
fn a_message_needs_exactly_one_body() {
    let mut bytes = ping_frame();
    let body_section = bytes[HEADER_LEN + 4..].to_vec();
    bytes.extend_from_slice(&body_section);
    let len = bytes.len() as i32;
    bytes[0..4].copy_from_slice(&len.to_le_bytes());
    assert_eq!(
        decode_frame(&bytes, &limits()),
        Err(FrameError::BodyCount(2))
    );
}

#[test]
fn unknown_required_flags_are_refused_and_optional_ones_ignored() {
    let bytes = encode_op_msg(1, 0, &sample_msg(1 << 5)).unwrap();
    assert_eq!(
        decode_frame(&bytes, &limits()),
        Err(FrameError::UnknownRequiredFlags(1 << 5))
    );
    let bytes = encode_op_msg(1, 0, &sample_msg(msg_flags::EXHAUST_ALLOWED | (1 << 20))).unwrap();
    assert!(decode_frame(&bytes, &limits()).is_ok());
}

#[test]
fn bad_bson_is_refused() {
    let mut bytes = ping_frame();
    // The element type of `ping` becomes 0x7F, which BSON does not define.
    bytes[HEADER_LEN + 4 + 1 + 4] = 0x7F;
    assert!(matches!(
        decode_frame(&bytes, &limits()),
        Err(FrameError::BadBson(_))
    ));
}

#[test]
fn deep_nesting_is_refused_before_materialising() {
    let mut nested = doc! { "leaf": 1 };
    for _ in 0..300 {
        nested = doc! { "n": nested };
    }
    let msg = OpMsg {
        flags: 0,
        body: doc! { "ping": 1, "deep": nested, "$db": "admin" },
        sequences: vec![],
    };
    let bytes = encode_op_msg(1, 0, &msg).unwrap();
    assert_eq!(
        decode_frame(&bytes, &limits()),
        Err(FrameError::TooDeep(200))
    );
}

#[test]
fn unknown_and_compressed_op_codes_are_refused() {
    let mut bytes = encode_op_msg(1, 0, &sample_msg(0)).unwrap();
    for (code, expected) in [
        (op_code::OP_COMPRESSED, FrameError::Compressed),
        (
            op_code::OP_INSERT,
            FrameError::UnsupportedOpCode(op_code::OP_INSERT),
        ),
        (9999, FrameError::UnsupportedOpCode(9999)),
    ] {
        bytes[12..16].copy_from_slice(&code.to_le_bytes());
        assert_eq!(decode_frame(&bytes, &limits()), Err(expected));
    }
}
