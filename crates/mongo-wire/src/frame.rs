//! Message framing: the 16-byte header, `OP_MSG` (body and document-sequence sections, optional
//! CRC-32C checksum), legacy `OP_QUERY` requests and `OP_REPLY` answers. Pure functions over
//! bytes, used by the server loop, the fuzz target and tests that speak raw wire.
//!
//! Every [`FrameError`] means the byte stream can no longer be trusted, so the server closes the
//! connection on it; problems inside an intact, well-formed message are command errors instead
//! (see `command`).

use bson::{Document, RawBsonRef, RawDocument};

use crate::limits::WireLimits;

/// Bytes in the standard message header.
pub const HEADER_LEN: usize = 16;

/// Op codes this crate reads or writes, and the legacy ones it recognises to refuse.
pub mod op_code {
    pub const OP_REPLY: i32 = 1;
    pub const OP_UPDATE: i32 = 2001;
    pub const OP_INSERT: i32 = 2002;
    pub const OP_QUERY: i32 = 2004;
    pub const OP_GET_MORE: i32 = 2005;
    pub const OP_DELETE: i32 = 2006;
    pub const OP_KILL_CURSORS: i32 = 2007;
    pub const OP_COMPRESSED: i32 = 2012;
    pub const OP_MSG: i32 = 2013;
}

/// `OP_MSG` flag bits.
pub mod msg_flags {
    /// A CRC-32C of the whole message ends it.
    pub const CHECKSUM_PRESENT: u32 = 1;
    /// The sender wants no reply (unacknowledged write).
    pub const MORE_TO_COME: u32 = 1 << 1;
    /// The client could take several replies; this server never streams them.
    pub const EXHAUST_ALLOWED: u32 = 1 << 16;
    /// The low 16 bits are "required": a set bit the receiver does not know is an error.
    pub const REQUIRED_MASK: u32 = 0xFFFF;
    pub const KNOWN_REQUIRED: u32 = CHECKSUM_PRESENT | MORE_TO_COME;
}

/// `OP_REPLY` responseFlags bit for a failed query.
pub const REPLY_QUERY_FAILURE: i32 = 1 << 1;

/// Why a byte stream was refused. All of these close the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("messageLength {0} is smaller than a header")]
    LengthTooSmall(i32),
    #[error("messageLength {len} exceeds maxMessageSizeBytes {max}")]
    LengthTooLarge { len: i64, max: usize },
    #[error("message ends before its declared length")]
    Truncated,
    #[error("unsupported opCode {0}")]
    UnsupportedOpCode(i32),
    #[error("OP_COMPRESSED is not negotiated on this server")]
    Compressed,
    #[error("OP_MSG sets unknown required flag bits {0:#x}")]
    UnknownRequiredFlags(u32),
    #[error("OP_MSG checksum does not match")]
    ChecksumMismatch,
    #[error("unknown OP_MSG section kind {0}")]
    BadSectionKind(u8),
    #[error("OP_MSG must have exactly one body section, found {0}")]
    BodyCount(usize),
    #[error("malformed BSON: {0}")]
    BadBson(String),
    #[error("BSON document nests deeper than {0} levels")]
    TooDeep(usize),
    #[error("BSON document of {len} bytes exceeds {max}")]
    DocumentTooLarge { len: usize, max: usize },
    #[error("malformed C string")]
    BadCString,
    #[error("{0} trailing bytes after the last section")]
    TrailingBytes(usize),
    #[error("no complete message within the time limit")]
    TimedOut,
}

/// The standard message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgHeader {
    pub message_length: i32,
    pub request_id: i32,
    pub response_to: i32,
    pub op_code: i32,
}

impl MsgHeader {
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> MsgHeader {
        let field =
            |i: usize| i32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        MsgHeader {
            message_length: field(0),
            request_id: field(4),
            response_to: field(8),
            op_code: field(12),
        }
    }

    /// Checks the declared length against the limits and returns how many bytes follow the header.
    pub fn body_len(&self, limits: &WireLimits) -> Result<usize, FrameError> {
        let len = self.message_length;
        if len < HEADER_LEN as i32 {
            return Err(FrameError::LengthTooSmall(len));
        }
        let len_usize = len as usize;
        if len_usize > limits.max_message_size_bytes {
            return Err(FrameError::LengthTooLarge {
                len: i64::from(len),
                max: limits.max_message_size_bytes,
            });
        }
        Ok(len_usize - HEADER_LEN)
    }
}

/// One kind-1 section: a named run of documents (e.g. `documents` of an `insert`).
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentSequence {
    pub identifier: String,
    pub documents: Vec<Document>,
}

/// A decoded `OP_MSG`.
#[derive(Debug, Clone, PartialEq)]
pub struct OpMsg {
    pub flags: u32,
    pub body: Document,
    pub sequences: Vec<DocumentSequence>,
}

impl OpMsg {
    pub fn more_to_come(&self) -> bool {
        self.flags & msg_flags::MORE_TO_COME != 0
    }
}

/// A decoded legacy `OP_QUERY` (only its command form is ever served).
#[derive(Debug, Clone, PartialEq)]
pub struct OpQuery {
    pub flags: i32,
    pub full_collection_name: String,
    pub number_to_skip: i32,
    pub number_to_return: i32,
    pub query: Document,
}

/// A decoded request.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Msg(OpMsg),
    Query(OpQuery),
}

/// Decodes the bytes after the header of a message whose header passed [`MsgHeader::body_len`].
pub fn decode_body(
    header: &MsgHeader,
    body: &[u8],
    limits: &WireLimits,
) -> Result<Message, FrameError> {
    match header.op_code {
        op_code::OP_MSG => decode_op_msg(header, body, limits).map(Message::Msg),
        op_code::OP_QUERY => decode_op_query(body, limits).map(Message::Query),
        op_code::OP_COMPRESSED => Err(FrameError::Compressed),
        other => Err(FrameError::UnsupportedOpCode(other)),
    }
}

/// Decodes one whole message (header included) that must fill `bytes` exactly.
pub fn decode_frame(bytes: &[u8], limits: &WireLimits) -> Result<(MsgHeader, Message), FrameError> {
    let header_bytes: &[u8; HEADER_LEN] = bytes
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(FrameError::Truncated)?;
    let header = MsgHeader::parse(header_bytes);
    let body_len = header.body_len(limits)?;
    let body = &bytes[HEADER_LEN..];
    if body.len() < body_len {
        return Err(FrameError::Truncated);
    }
    if body.len() > body_len {
        return Err(FrameError::TrailingBytes(body.len() - body_len));
    }
    let message = decode_body(&header, body, limits)?;
    Ok((header, message))
}

fn decode_op_msg(
    header: &MsgHeader,
    body: &[u8],
    limits: &WireLimits,
) -> Result<OpMsg, FrameError> {
    let mut cursor = Cursor::new(body);
    let flags = cursor.u32()?;
    let unknown = flags & msg_flags::REQUIRED_MASK & !msg_flags::KNOWN_REQUIRED;
    if unknown != 0 {
        return Err(FrameError::UnknownRequiredFlags(unknown));
    }
    let mut sections_end = body.len();
    if flags & msg_flags::CHECKSUM_PRESENT != 0 {
        sections_end = body.len().checked_sub(4).ok_or(FrameError::Truncated)?;
        if sections_end < 4 {
            return Err(FrameError::Truncated);
        }
        let declared = u32::from_le_bytes([
            body[sections_end],
            body[sections_end + 1],
            body[sections_end + 2],
            body[sections_end + 3],
        ]);
        let mut crc = Crc32c::new();
        crc.update(&header_bytes(header));
        crc.update(&body[..sections_end]);
        if crc.finish() != declared {
            return Err(FrameError::ChecksumMismatch);
        }
    }
    let mut cursor = Cursor::new(&body[..sections_end]);
    cursor.pos = 4;
    let mut bodies = Vec::new();
    let mut sequences = Vec::new();
    while cursor.remaining() > 0 {
        match cursor.u8()? {
            0 => bodies.push(cursor.document(limits.max_command_size(), limits)?),
            1 => {
                let size = cursor.i32()?;
                // The size counts itself; anything shorter cannot hold even an identifier.
                let size = usize::try_from(size).map_err(|_| FrameError::Truncated)?;
                if size < 5 || size - 4 > cursor.remaining() {
                    return Err(FrameError::Truncated);
                }
                let mut section = Cursor::new(cursor.take(size - 4)?);
                let identifier = section.cstring()?.to_owned();
                let mut documents = Vec::new();
                while section.remaining() > 0 {
                    documents.push(section.document(limits.max_bson_object_size, limits)?);
                }
                sequences.push(DocumentSequence {
                    identifier,
                    documents,
                });
            }
            kind => return Err(FrameError::BadSectionKind(kind)),
        }
    }
    if bodies.len() != 1 {
        return Err(FrameError::BodyCount(bodies.len()));
    }
    Ok(OpMsg {
        flags,
        body: bodies.pop().unwrap_or_default(),
        sequences,
    })
}

fn decode_op_query(body: &[u8], limits: &WireLimits) -> Result<OpQuery, FrameError> {
    let mut cursor = Cursor::new(body);
    let flags = cursor.i32()?;
    let full_collection_name = cursor.cstring()?.to_owned();
    let number_to_skip = cursor.i32()?;
    let number_to_return = cursor.i32()?;
    let query = cursor.document(limits.max_command_size(), limits)?;
    // An optional returnFieldsSelector may follow; commands ignore it, but it must be well formed.
    if cursor.remaining() > 0 {
        cursor.document(limits.max_bson_object_size, limits)?;
    }
    if cursor.remaining() > 0 {
        return Err(FrameError::TrailingBytes(cursor.remaining()));
    }
    Ok(OpQuery {
        flags,
        full_collection_name,
        number_to_skip,
        number_to_return,
        query,
    })
}

/// Validates and materialises one BSON document from raw bytes, bounded in size and depth.
pub fn decode_document(
    bytes: &[u8],
    max_len: usize,
    limits: &WireLimits,
) -> Result<Document, FrameError> {
    if bytes.len() > max_len {
        return Err(FrameError::DocumentTooLarge {
            len: bytes.len(),
            max: max_len,
        });
    }
    let raw = RawDocument::from_bytes(bytes).map_err(|e| FrameError::BadBson(e.to_string()))?;
    check_depth(raw, 1, limits.max_bson_depth)?;
    Document::try_from(raw).map_err(|e| FrameError::BadBson(e.to_string()))
}

fn check_depth(doc: &RawDocument, depth: usize, max: usize) -> Result<(), FrameError> {
    if depth > max {
        return Err(FrameError::TooDeep(max));
    }
    for element in doc.iter() {
        let (_, value) = element.map_err(|e| FrameError::BadBson(e.to_string()))?;
        check_value_depth(value, depth, max)?;
    }
    Ok(())
}

fn check_value_depth(value: RawBsonRef<'_>, depth: usize, max: usize) -> Result<(), FrameError> {
    match value {
        RawBsonRef::Document(inner) => check_depth(inner, depth + 1, max),
        RawBsonRef::JavaScriptCodeWithScope(code) => check_depth(code.scope, depth + 1, max),
        RawBsonRef::Array(array) => {
            if depth + 1 > max {
                return Err(FrameError::TooDeep(max));
            }
            for item in array {
                let item = item.map_err(|e| FrameError::BadBson(e.to_string()))?;
                check_value_depth(item, depth + 1, max)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0 }
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        let end = self.pos.checked_add(n).ok_or(FrameError::Truncated)?;
        let out = self.bytes.get(self.pos..end).ok_or(FrameError::Truncated)?;
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, FrameError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i32(&mut self) -> Result<i32, FrameError> {
        let b = self.take(4)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn cstring(&mut self) -> Result<&'a str, FrameError> {
        let rest = &self.bytes[self.pos..];
        let nul = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(FrameError::BadCString)?;
        let text = std::str::from_utf8(&rest[..nul]).map_err(|_| FrameError::BadCString)?;
        self.pos += nul + 1;
        Ok(text)
    }

    fn document(&mut self, max_len: usize, limits: &WireLimits) -> Result<Document, FrameError> {
        let rest = &self.bytes[self.pos..];
        let declared = rest
            .get(..4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or(FrameError::Truncated)?;
        let len = usize::try_from(declared)
            .map_err(|_| FrameError::BadBson(format!("document length {declared}")))?;
        if len > max_len {
            return Err(FrameError::DocumentTooLarge { len, max: max_len });
        }
        let bytes = self.take(len)?;
        decode_document(bytes, max_len, limits)
    }
}

fn header_bytes(header: &MsgHeader) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[0..4].copy_from_slice(&header.message_length.to_le_bytes());
    out[4..8].copy_from_slice(&header.request_id.to_le_bytes());
    out[8..12].copy_from_slice(&header.response_to.to_le_bytes());
    out[12..16].copy_from_slice(&header.op_code.to_le_bytes());
    out
}

/// Starts a message: a header with a placeholder length that [`finish_message`] fills in.
fn start_message(request_id: i32, response_to: i32, op_code: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&header_bytes(&MsgHeader {
        message_length: 0,
        request_id,
        response_to,
        op_code,
    }));
    out
}

fn finish_message(mut out: Vec<u8>) -> Result<Vec<u8>, FrameError> {
    let len = i32::try_from(out.len()).map_err(|_| FrameError::LengthTooLarge {
        len: out.len() as i64,
        max: i32::MAX as usize,
    })?;
    out[0..4].copy_from_slice(&len.to_le_bytes());
    Ok(out)
}

fn append_document(out: &mut Vec<u8>, doc: &Document) -> Result<(), FrameError> {
    doc.to_writer(&mut *out)
        .map_err(|e| FrameError::BadBson(e.to_string()))
}

/// Encodes an `OP_MSG`; `flags` may include [`msg_flags::CHECKSUM_PRESENT`] to append a CRC-32C.
pub fn encode_op_msg(
    request_id: i32,
    response_to: i32,
    msg: &OpMsg,
) -> Result<Vec<u8>, FrameError> {
    let mut out = start_message(request_id, response_to, op_code::OP_MSG);
    out.extend_from_slice(&msg.flags.to_le_bytes());
    out.push(0);
    append_document(&mut out, &msg.body)?;
    for sequence in &msg.sequences {
        out.push(1);
        let size_at = out.len();
        out.extend_from_slice(&[0; 4]);
        if sequence.identifier.as_bytes().contains(&0) {
            return Err(FrameError::BadCString);
        }
        out.extend_from_slice(sequence.identifier.as_bytes());
        out.push(0);
        for doc in &sequence.documents {
            append_document(&mut out, doc)?;
        }
        let size = i32::try_from(out.len() - size_at).map_err(|_| FrameError::Truncated)?;
        out[size_at..size_at + 4].copy_from_slice(&size.to_le_bytes());
    }
    if msg.flags & msg_flags::CHECKSUM_PRESENT != 0 {
        let final_len = i32::try_from(out.len() + 4).map_err(|_| FrameError::Truncated)?;
        out[0..4].copy_from_slice(&final_len.to_le_bytes());
        let mut crc = Crc32c::new();
        crc.update(&out);
        let sum = crc.finish();
        out.extend_from_slice(&sum.to_le_bytes());
    }
    finish_message(out)
}

/// Encodes a legacy `OP_QUERY` (what old drivers send first; used by tests and tools).
pub fn encode_op_query(request_id: i32, query: &OpQuery) -> Result<Vec<u8>, FrameError> {
    let mut out = start_message(request_id, 0, op_code::OP_QUERY);
    out.extend_from_slice(&query.flags.to_le_bytes());
    if query.full_collection_name.as_bytes().contains(&0) {
        return Err(FrameError::BadCString);
    }
    out.extend_from_slice(query.full_collection_name.as_bytes());
    out.push(0);
    out.extend_from_slice(&query.number_to_skip.to_le_bytes());
    out.extend_from_slice(&query.number_to_return.to_le_bytes());
    append_document(&mut out, &query.query)?;
    finish_message(out)
}

/// Encodes an `OP_REPLY` carrying one document (the answer to an `OP_QUERY` command).
pub fn encode_op_reply(
    request_id: i32,
    response_to: i32,
    response_flags: i32,
    doc: &Document,
) -> Result<Vec<u8>, FrameError> {
    let mut out = start_message(request_id, response_to, op_code::OP_REPLY);
    out.extend_from_slice(&response_flags.to_le_bytes());
    out.extend_from_slice(&0i64.to_le_bytes()); // cursorID
    out.extend_from_slice(&0i32.to_le_bytes()); // startingFrom
    out.extend_from_slice(&1i32.to_le_bytes()); // numberReturned
    append_document(&mut out, doc)?;
    finish_message(out)
}

/// Decodes an `OP_REPLY` (header included) to its first document; for tests and tools.
pub fn decode_op_reply(
    bytes: &[u8],
    limits: &WireLimits,
) -> Result<(MsgHeader, i32, Document), FrameError> {
    let header_bytes: &[u8; HEADER_LEN] = bytes
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(FrameError::Truncated)?;
    let header = MsgHeader::parse(header_bytes);
    if header.op_code != op_code::OP_REPLY {
        return Err(FrameError::UnsupportedOpCode(header.op_code));
    }
    let body_len = header.body_len(limits)?;
    let body = bytes
        .get(HEADER_LEN..HEADER_LEN + body_len)
        .ok_or(FrameError::Truncated)?;
    let mut cursor = Cursor::new(body);
    let flags = cursor.i32()?;
    cursor.take(16)?;
    let doc = cursor.document(limits.max_command_size(), limits)?;
    Ok((header, flags, doc))
}

/// CRC-32C (Castagnoli), the `OP_MSG` checksum.
pub struct Crc32c(u32);

const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

impl Crc32c {
    pub fn new() -> Self {
        Crc32c(!0)
    }

    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = CRC32C_TABLE[((self.0 ^ u32::from(b)) & 0xFF) as usize] ^ (self.0 >> 8);
        }
    }

    pub fn finish(&self) -> u32 {
        !self.0
    }
}

impl Default for Crc32c {
    fn default() -> Self {
        Crc32c::new()
    }
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
