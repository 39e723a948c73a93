//! From a decoded message to a [`Command`] (database, command name, body with document sequences
//! merged in as arrays, as mongod sees it) and the [`Reply`] a service returns. Used by the server
//! loop and by services.

use bson::{Bson, Document};

use crate::error::{ErrorCode, MongoError};
use crate::frame::{decode_frame, FrameError, Message, MsgHeader, OpMsg, OpQuery};
use crate::limits::WireLimits;

/// Decodes one whole request frame into a command, exactly as the server loop does: the outer
/// error closes the connection, the inner one is answered as an error reply.
pub fn decode_request(
    bytes: &[u8],
    limits: &WireLimits,
) -> Result<Result<Command, MongoError>, FrameError> {
    let (header, message) = decode_frame(bytes, limits)?;
    Ok(Command::from_message(&header, message))
}

/// Which wire format a command arrived in; the reply is written in the matching one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    OpMsg,
    /// Legacy `OP_QUERY` on `<db>.$cmd`, answered with `OP_REPLY`.
    OpQuery,
}

/// One command as a service sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Target database (`$db`, or the `<db>` of `<db>.$cmd` for `OP_QUERY`).
    pub db: String,
    /// The first key of the body, verbatim (`find`, `hello`, `isMaster`, ...).
    pub name: String,
    /// The whole command document, kind-1 sequences appended as array fields.
    pub body: Document,
    pub transport: Transport,
    /// The client asked for no reply (`moreToCome`); whatever the service returns is dropped.
    pub more_to_come: bool,
    /// The client's requestID, for logs.
    pub request_id: i32,
}

impl Command {
    /// Builds a command from a decoded message of either transport.
    pub fn from_message(header: &MsgHeader, message: Message) -> Result<Command, MongoError> {
        match message {
            Message::Msg(msg) => Command::from_op_msg(msg, header.request_id),
            Message::Query(query) => Command::from_op_query(query, header.request_id),
        }
    }

    /// Builds a command from an `OP_MSG`, merging document sequences into the body.
    pub fn from_op_msg(msg: OpMsg, request_id: i32) -> Result<Command, MongoError> {
        let more_to_come = msg.more_to_come();
        let mut body = msg.body;
        for sequence in msg.sequences {
            if body.contains_key(&sequence.identifier) {
                return Err(MongoError::new(
                    ErrorCode::BadValue,
                    format!(
                        "Duplicate field '{}': given both in the command body and as a document sequence",
                        sequence.identifier
                    ),
                ));
            }
            let docs: Vec<Bson> = sequence.documents.into_iter().map(Bson::Document).collect();
            body.insert(sequence.identifier, docs);
        }
        let name = command_name(&body)?;
        let db = match body.get("$db") {
            Some(Bson::String(db)) => db.clone(),
            Some(other) => {
                return Err(MongoError::new(
                    ErrorCode::TypeMismatch,
                    format!("$db must be a string, not {:?}", other.element_type()),
                ))
            }
            None => {
                return Err(MongoError::new(
                    ErrorCode::FailedToParse,
                    "OP_MSG requests require a $db argument",
                ))
            }
        };
        check_db_name(&db)?;
        Ok(Command {
            db,
            name,
            body,
            transport: Transport::OpMsg,
            more_to_come,
            request_id,
        })
    }

    /// Builds a command from a legacy `OP_QUERY` on `<db>.$cmd`.
    pub fn from_op_query(query: OpQuery, request_id: i32) -> Result<Command, MongoError> {
        let db = match query.full_collection_name.strip_suffix(".$cmd") {
            Some(db) => db.to_owned(),
            None => {
                return Err(MongoError::new(
                    ErrorCode::UnsupportedOpQueryCommand,
                    "OP_QUERY is only supported for commands on <db>.$cmd",
                ))
            }
        };
        check_db_name(&db)?;
        // Drivers wrap the command as {$query: {...}, $readPreference: ...} when sending to mongos.
        let body = match query.query.get("$query") {
            Some(Bson::Document(inner)) => inner.clone(),
            _ => query.query,
        };
        let name = command_name(&body)?;
        Ok(Command {
            db,
            name,
            body,
            transport: Transport::OpQuery,
            more_to_come: false,
            request_id,
        })
    }

    /// True for the handshake command in any of its spellings.
    pub fn is_hello(&self) -> bool {
        matches!(self.name.as_str(), "hello" | "isMaster" | "ismaster")
    }
}

fn command_name(body: &Document) -> Result<String, MongoError> {
    match body.keys().next() {
        Some(name) if !name.is_empty() => Ok(name.clone()),
        _ => Err(MongoError::new(
            ErrorCode::FailedToParse,
            "empty command document",
        )),
    }
}

/// mongod's database name rules: non-empty, under 64 bytes, none of `/\. "$` or NUL.
fn check_db_name(db: &str) -> Result<(), MongoError> {
    let bad_char = db
        .chars()
        .any(|c| matches!(c, '/' | '\\' | '.' | ' ' | '"' | '$' | '\0'));
    if db.is_empty() || db.len() >= 64 || bad_char {
        return Err(MongoError::new(
            ErrorCode::InvalidNamespace,
            format!("Invalid database name: '{}'", db.escape_debug()),
        ));
    }
    Ok(())
}

/// A service's answer: the reply document, sent as the `OP_MSG` body or the `OP_REPLY` document.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub body: Document,
}

impl Reply {
    /// A success; `ok: 1.0` is added unless the document already has `ok`.
    pub fn ok(mut body: Document) -> Reply {
        if !body.contains_key("ok") {
            body.insert("ok", 1.0);
        }
        Reply { body }
    }

    /// The error reply for `err`.
    pub fn error(err: &MongoError) -> Reply {
        Reply {
            body: err.to_document(),
        }
    }

    /// Whether the reply reports success (`ok` is a non-zero number or true).
    pub fn is_ok(&self) -> bool {
        match self.body.get("ok") {
            Some(Bson::Double(v)) => *v != 0.0,
            Some(Bson::Int32(v)) => *v != 0,
            Some(Bson::Int64(v)) => *v != 0,
            Some(Bson::Boolean(v)) => *v,
            _ => false,
        }
    }
}

impl From<MongoError> for Reply {
    fn from(err: MongoError) -> Reply {
        Reply::error(&err)
    }
}

impl From<Result<Document, MongoError>> for Reply {
    fn from(result: Result<Document, MongoError>) -> Reply {
        match result {
            Ok(doc) => Reply::ok(doc),
            Err(err) => Reply::error(&err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{msg_flags, DocumentSequence};
    use bson::doc;

    fn msg(body: Document, sequences: Vec<DocumentSequence>) -> OpMsg {
        OpMsg {
            flags: 0,
            body,
            sequences,
        }
    }

    #[test]
    fn sequences_merge_into_the_body_as_arrays() {
        let m = msg(
            doc! { "insert": "c", "$db": "app" },
            vec![DocumentSequence {
                identifier: "documents".into(),
                documents: vec![doc! { "_id": 1 }, doc! { "_id": 2 }],
            }],
        );
        let cmd = Command::from_op_msg(m, 7).unwrap();
        assert_eq!(cmd.name, "insert");
        assert_eq!(cmd.db, "app");
        assert_eq!(
            cmd.body.get_array("documents").unwrap(),
            &vec![
                Bson::Document(doc! { "_id": 1 }),
                Bson::Document(doc! { "_id": 2 })
            ]
        );
        assert!(!cmd.more_to_come);
    }

    #[test]
    fn command_errors_carry_mongod_codes() {
        let dup = msg(
            doc! { "insert": "c", "documents": [], "$db": "app" },
            vec![DocumentSequence {
                identifier: "documents".into(),
                documents: vec![],
            }],
        );
        assert_eq!(
            Command::from_op_msg(dup, 1).unwrap_err().code,
            ErrorCode::BadValue
        );
        let no_db = msg(doc! { "ping": 1 }, vec![]);
        assert_eq!(
            Command::from_op_msg(no_db, 1).unwrap_err().code,
            ErrorCode::FailedToParse
        );
        let db_type = msg(doc! { "ping": 1, "$db": 3 }, vec![]);
        assert_eq!(
            Command::from_op_msg(db_type, 1).unwrap_err().code,
            ErrorCode::TypeMismatch
        );
        let bad_db = msg(doc! { "ping": 1, "$db": "a.b" }, vec![]);
        assert_eq!(
            Command::from_op_msg(bad_db, 1).unwrap_err().code,
            ErrorCode::InvalidNamespace
        );
        let empty = msg(doc! {}, vec![]);
        assert_eq!(
            Command::from_op_msg(empty, 1).unwrap_err().code,
            ErrorCode::FailedToParse
        );
    }

    #[test]
    fn more_to_come_is_carried() {
        let mut m = msg(doc! { "insert": "c", "$db": "app" }, vec![]);
        m.flags = msg_flags::MORE_TO_COME;
        assert!(Command::from_op_msg(m, 1).unwrap().more_to_come);
    }

    #[test]
    fn op_query_commands_unwrap_dollar_query() {
        let q = OpQuery {
            flags: 0,
            full_collection_name: "admin.$cmd".into(),
            number_to_skip: 0,
            number_to_return: -1,
            query: doc! { "$query": { "isMaster": 1 }, "$readPreference": { "mode": "primary" } },
        };
        let cmd = Command::from_op_query(q.clone(), 1).unwrap();
        assert_eq!((cmd.db.as_str(), cmd.name.as_str()), ("admin", "isMaster"));
        assert!(cmd.is_hello());
        let not_cmd = OpQuery {
            full_collection_name: "app.users".into(),
            ..q
        };
        assert_eq!(
            Command::from_op_query(not_cmd, 1).unwrap_err().code,
            ErrorCode::UnsupportedOpQueryCommand
        );
    }

    #[test]
    fn reply_ok_adds_ok_once() {
        assert_eq!(Reply::ok(doc! {}).body, doc! { "ok": 1.0 });
        assert!(!Reply::ok(doc! { "ok": 0 }).is_ok());
        assert!(!Reply::from(MongoError::command_not_found("x")).is_ok());
    }
}
