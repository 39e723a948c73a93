//! The decoder's properties as one asserting function, shared by the `wire_frame` fuzz target and
//! the crate's proptests so both check exactly the same thing. Not for production paths: it
//! panics on a violation, which is what a fuzzer needs.

use crate::command::decode_request;
use crate::frame::{decode_frame, encode_op_msg, Message};
use crate::limits::WireLimits;

/// Decodes `bytes` and asserts: an accepted frame fits the message limit, its documents fit the
/// object limits, and re-encoding an accepted `OP_MSG` decodes to the same command. Refusals are
/// fine; panics inside the decoder are what this exists to find.
pub fn assert_decode_invariants(bytes: &[u8], limits: &WireLimits) {
    let Ok(decoded) = decode_request(bytes, limits) else {
        return;
    };
    assert!(bytes.len() <= limits.max_message_size_bytes);
    let Ok((header, Message::Msg(msg))) = decode_frame(bytes, limits) else {
        return;
    };
    let size = |doc: &bson::Document| doc.to_vec().map(|v| v.len()).unwrap_or(usize::MAX);
    for sequence in &msg.sequences {
        for document in &sequence.documents {
            assert!(size(document) <= limits.max_bson_object_size);
        }
    }
    assert!(size(&msg.body) <= limits.max_command_size());
    let again = encode_op_msg(header.request_id, header.response_to, &msg)
        .expect("an accepted message re-encodes");
    let redecoded = decode_request(&again, limits).expect("a re-encoded frame decodes");
    assert_eq!(redecoded, decoded);
}
