//! Authentication as mongod does it on a connection: the [`CredentialStore`] trait (a
//! [`MemoryCredentialStore`] is provided), the per-connection [`AuthSession`] that runs
//! `saslStart`/`saslContinue`/`logout` and the `hello` extensions (`saslSupportedMechs`,
//! `speculativeAuthenticate`), and [`allowed_unauthenticated`], the commands a client may run
//! before it authenticates. Used by the server loop; services only read the authenticated user.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::RwLock;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bson::{doc, spec::BinarySubtype, Binary, Bson, Document};

use crate::error::{ErrorCode, MongoError};
use crate::scram::{
    ClientFirst, Mechanism, ScramConversation, ScramCredential, MAX_SASL_PAYLOAD_BYTES,
};

/// The stored credentials of one user, one per mechanism the user may use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserCredentials {
    pub credentials: Vec<ScramCredential>,
}

impl UserCredentials {
    /// Derives credentials for `mechanisms` from a password (fresh salts, default iterations).
    pub fn from_password(
        username: &str,
        password: &str,
        mechanisms: &[Mechanism],
    ) -> Result<Self, MongoError> {
        let credentials = mechanisms
            .iter()
            .map(|&mechanism| ScramCredential::new(mechanism, username, password))
            .collect::<Result<_, _>>()?;
        Ok(UserCredentials { credentials })
    }

    pub fn get(&self, mechanism: Mechanism) -> Option<&ScramCredential> {
        self.credentials.iter().find(|c| c.mechanism == mechanism)
    }

    /// Mechanism names in mongod's order (SCRAM-SHA-1 first), as `saslSupportedMechs` lists them.
    pub fn mechanism_names(&self) -> Vec<&'static str> {
        [Mechanism::ScramSha1, Mechanism::ScramSha256]
            .into_iter()
            .filter(|&m| self.get(m).is_some())
            .map(Mechanism::name)
            .collect()
    }
}

/// Where users live: looked up by authentication database and user name, verbatim.
pub trait CredentialStore: Send + Sync + 'static {
    fn lookup(&self, db: &str, username: &str) -> Option<UserCredentials>;
}

/// Users held in memory.
#[derive(Debug, Default)]
pub struct MemoryCredentialStore {
    users: RwLock<HashMap<(String, String), UserCredentials>>,
}

impl MemoryCredentialStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a user.
    pub fn add_user(
        &self,
        db: &str,
        username: &str,
        password: &str,
        mechanisms: &[Mechanism],
    ) -> Result<(), MongoError> {
        let credentials = UserCredentials::from_password(username, password, mechanisms)?;
        self.insert(db, username, credentials);
        Ok(())
    }

    /// Adds or replaces a user from already derived credentials.
    pub fn insert(&self, db: &str, username: &str, credentials: UserCredentials) {
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        users.insert((db.to_owned(), username.to_owned()), credentials);
    }

    pub fn remove_user(&self, db: &str, username: &str) -> bool {
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        users
            .remove(&(db.to_owned(), username.to_owned()))
            .is_some()
    }
}

impl CredentialStore for MemoryCredentialStore {
    fn lookup(&self, db: &str, username: &str) -> Option<UserCredentials> {
        let users = self.users.read().unwrap_or_else(|e| e.into_inner());
        users.get(&(db.to_owned(), username.to_owned())).cloned()
    }
}

/// Who a connection authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedUser {
    pub db: String,
    pub username: String,
    pub mechanism: Mechanism,
}

/// Commands mongod runs for a connection that has not authenticated: the handshake, liveness,
/// version discovery and the authentication commands themselves.
pub fn allowed_unauthenticated(command_name: &str) -> bool {
    matches!(
        command_name,
        "hello"
            | "isMaster"
            | "ismaster"
            | "ping"
            | "buildInfo"
            | "buildinfo"
            | "saslStart"
            | "saslContinue"
            | "logout"
    )
}

/// The only conversation id this server hands out; a connection runs one conversation at a time.
const CONVERSATION_ID: i32 = 1;

struct Pending {
    db: String,
    conversation: ScramConversation,
}

/// Per-connection authentication state.
#[derive(Default)]
pub struct AuthSession {
    pending: Option<Pending>,
    user: Option<AuthenticatedUser>,
}

impl std::fmt::Debug for AuthSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSession")
            .field("conversing", &self.pending.is_some())
            .field("user", &self.user)
            .finish()
    }
}

impl AuthSession {
    pub fn user(&self) -> Option<&AuthenticatedUser> {
        self.user.as_ref()
    }

    /// `saslStart` on database `db`.
    pub fn sasl_start(
        &mut self,
        store: Option<&dyn CredentialStore>,
        db: &str,
        body: &Document,
    ) -> Result<Document, MongoError> {
        self.pending = None;
        let mechanism_name = match body.get("mechanism") {
            Some(Bson::String(name)) => name.as_str(),
            _ => {
                return Err(MongoError::new(
                    ErrorCode::BadValue,
                    "saslStart requires a string 'mechanism'",
                ))
            }
        };
        let mechanism = Mechanism::from_name(mechanism_name).ok_or_else(|| {
            MongoError::new(
                ErrorCode::MechanismUnavailable,
                format!(
                    "Received authentication for mechanism {mechanism_name} which is not enabled"
                ),
            )
        })?;
        let payload = payload_bytes(body)?;
        let skip_empty_exchange = body
            .get_document("options")
            .ok()
            .and_then(|o| o.get_bool("skipEmptyExchange").ok())
            .unwrap_or(false);
        let first = ClientFirst::parse(&payload)?;
        let user = store
            .and_then(|s| s.lookup(db, &first.username))
            .ok_or_else(MongoError::authentication_failed)?;
        let credential = user.get(mechanism).cloned().ok_or_else(|| {
            MongoError::new(
                ErrorCode::MechanismUnavailable,
                format!(
                    "Unable to use {} based authentication for user without any {} credentials registered",
                    mechanism.name(),
                    mechanism.name()
                ),
            )
        })?;
        let (conversation, server_first) =
            ScramConversation::start(first, credential, skip_empty_exchange);
        self.pending = Some(Pending {
            db: db.to_owned(),
            conversation,
        });
        Ok(sasl_reply(server_first, false))
    }

    /// `saslContinue`.
    pub fn sasl_continue(&mut self, body: &Document) -> Result<Document, MongoError> {
        let id = match body.get("conversationId") {
            Some(Bson::Int32(id)) => i64::from(*id),
            Some(Bson::Int64(id)) => *id,
            Some(Bson::Double(id)) if id.fract() == 0.0 => *id as i64,
            _ => {
                return Err(MongoError::new(
                    ErrorCode::BadValue,
                    "saslContinue requires a numeric 'conversationId'",
                ))
            }
        };
        let payload = payload_bytes(body)?;
        let Some(mut pending) = self.pending.take() else {
            return Err(MongoError::new(
                ErrorCode::ProtocolError,
                "No SASL session state found",
            ));
        };
        if id != i64::from(CONVERSATION_ID) {
            return Err(MongoError::new(
                ErrorCode::ProtocolError,
                format!("sasl: Mismatched conversation id {id}"),
            ));
        }
        let step = pending.conversation.step(&payload)?;
        if step.done {
            self.user = Some(AuthenticatedUser {
                db: pending.db,
                username: pending.conversation.username().to_owned(),
                mechanism: pending.conversation.mechanism(),
            });
        } else {
            self.pending = Some(pending);
        }
        Ok(sasl_reply(step.payload, step.done))
    }

    /// `logout`: forgets the user.
    pub fn logout(&mut self) -> Document {
        self.pending = None;
        self.user = None;
        doc! { "ok": 1.0 }
    }

    /// Adds `saslSupportedMechs` and `speculativeAuthenticate` to a `hello` reply when the
    /// request asked for them. A failed speculative start is silently left out of the reply, as
    /// mongod does; the driver then authenticates the long way and gets the real error.
    pub fn extend_hello(
        &mut self,
        store: Option<&dyn CredentialStore>,
        request: &Document,
        reply: &mut Document,
    ) {
        if let Ok(name) = request.get_str("saslSupportedMechs") {
            let user = name
                .split_once('.')
                .and_then(|(db, user)| store.and_then(|s| s.lookup(db, user)));
            if let Some(user) = user {
                reply.insert("saslSupportedMechs", user.mechanism_names());
            }
        }
        if let Ok(speculative) = request.get_document("speculativeAuthenticate") {
            let db = speculative.get_str("db").unwrap_or("admin").to_owned();
            if let Ok(mut answer) = self.sasl_start(store, &db, speculative) {
                answer.remove("ok");
                reply.insert("speculativeAuthenticate", answer);
            }
        }
    }
}

/// The SASL payload: binary as drivers send it, or a base64 string as mongod also accepts.
fn payload_bytes(body: &Document) -> Result<Cow<'_, [u8]>, MongoError> {
    match body.get("payload") {
        Some(Bson::Binary(binary)) => Ok(Cow::Borrowed(&binary.bytes)),
        Some(Bson::String(text)) if text.len() <= 2 * MAX_SASL_PAYLOAD_BYTES => B64
            .decode(text)
            .map(Cow::Owned)
            .map_err(|_| MongoError::new(ErrorCode::BadValue, "SASL payload is not valid base64")),
        _ => Err(MongoError::new(
            ErrorCode::BadValue,
            "SASL commands require a binary 'payload'",
        )),
    }
}

fn sasl_reply(payload: Vec<u8>, done: bool) -> Document {
    doc! {
        "conversationId": CONVERSATION_ID,
        "done": done,
        "payload": Binary { subtype: BinarySubtype::Generic, bytes: payload },
        "ok": 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> MemoryCredentialStore {
        let store = MemoryCredentialStore::new();
        store
            .add_user(
                "admin",
                "both",
                "pw",
                &[Mechanism::ScramSha256, Mechanism::ScramSha1],
            )
            .unwrap();
        store
            .add_user("admin", "old", "pw", &[Mechanism::ScramSha1])
            .unwrap();
        store
    }

    fn start_body(mechanism: &str, client_first: &str) -> Document {
        doc! {
            "saslStart": 1,
            "mechanism": mechanism,
            "payload": Binary { subtype: BinarySubtype::Generic, bytes: client_first.as_bytes().to_vec() },
            "options": { "skipEmptyExchange": true },
        }
    }

    #[test]
    fn hello_lists_mechanisms_of_known_users_only() {
        let store = store();
        let mut session = AuthSession::default();
        let mut reply = doc! {};
        session.extend_hello(
            Some(&store),
            &doc! { "hello": 1, "saslSupportedMechs": "admin.both" },
            &mut reply,
        );
        assert_eq!(
            reply.get_array("saslSupportedMechs").unwrap(),
            &vec![Bson::from("SCRAM-SHA-1"), Bson::from("SCRAM-SHA-256")]
        );
        let mut reply = doc! {};
        session.extend_hello(
            Some(&store),
            &doc! { "hello": 1, "saslSupportedMechs": "admin.nobody" },
            &mut reply,
        );
        assert!(!reply.contains_key("saslSupportedMechs"));
    }

    #[test]
    fn speculative_start_answers_server_first() {
        let store = store();
        let mut session = AuthSession::default();
        let mut speculative = start_body("SCRAM-SHA-256", "n,,n=both,r=abc");
        speculative.insert("db", "admin");
        let mut reply = doc! {};
        session.extend_hello(
            Some(&store),
            &doc! { "hello": 1, "speculativeAuthenticate": speculative },
            &mut reply,
        );
        let answer = reply.get_document("speculativeAuthenticate").unwrap();
        assert_eq!(answer.get_i32("conversationId").unwrap(), 1);
        assert!(!answer.get_bool("done").unwrap());
        assert!(!answer.contains_key("ok"));
        let payload = &answer.get_binary_generic("payload").unwrap();
        assert!(payload.starts_with(b"r=abc"));
        assert!(session.pending.is_some());
    }

    #[test]
    fn sasl_errors_have_mongod_codes() {
        let store = store();
        let mut session = AuthSession::default();
        let unknown_user = session
            .sasl_start(
                Some(&store),
                "admin",
                &start_body("SCRAM-SHA-256", "n,,n=nobody,r=a"),
            )
            .unwrap_err();
        assert_eq!(unknown_user.code, ErrorCode::AuthenticationFailed);
        let other_db = session
            .sasl_start(
                Some(&store),
                "app",
                &start_body("SCRAM-SHA-256", "n,,n=both,r=a"),
            )
            .unwrap_err();
        assert_eq!(other_db.code, ErrorCode::AuthenticationFailed);
        let no_store = session
            .sasl_start(None, "admin", &start_body("SCRAM-SHA-256", "n,,n=both,r=a"))
            .unwrap_err();
        assert_eq!(no_store.code, ErrorCode::AuthenticationFailed);
        let plain = session
            .sasl_start(Some(&store), "admin", &start_body("PLAIN", "x"))
            .unwrap_err();
        assert_eq!(plain.code, ErrorCode::MechanismUnavailable);
        let sha256_for_sha1_user = session
            .sasl_start(
                Some(&store),
                "admin",
                &start_body("SCRAM-SHA-256", "n,,n=old,r=a"),
            )
            .unwrap_err();
        assert_eq!(sha256_for_sha1_user.code, ErrorCode::MechanismUnavailable);
        let no_conversation = session
            .sasl_continue(&doc! { "saslContinue": 1, "conversationId": 1, "payload": "" })
            .unwrap_err();
        assert_eq!(no_conversation.code, ErrorCode::ProtocolError);
        session
            .sasl_start(
                Some(&store),
                "admin",
                &start_body("SCRAM-SHA-256", "n,,n=both,r=a"),
            )
            .unwrap();
        let bad_proof = session
            .sasl_continue(
                // A string payload is base64, as mongod reads it.
                &doc! { "saslContinue": 1, "conversationId": 1, "payload": B64.encode("c=biws,r=a,p=AAAA") },
            )
            .unwrap_err();
        assert_eq!(bad_proof.code, ErrorCode::AuthenticationFailed);
        assert!(session.user().is_none());
        let not_base64 = session
            .sasl_start(
                Some(&store),
                "admin",
                &doc! { "saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": "n,,n=both,r=a" },
            )
            .unwrap_err();
        assert_eq!(not_base64.code, ErrorCode::BadValue);
    }

    #[test]
    fn the_unauthenticated_command_set() {
        for name in [
            "hello",
            "isMaster",
            "ping",
            "buildInfo",
            "saslStart",
            "saslContinue",
        ] {
            assert!(allowed_unauthenticated(name), "{name}");
        }
        for name in [
            "find",
            "insert",
            "listDatabases",
            "replSetGetStatus",
            "serverStatus",
        ] {
            assert!(!allowed_unauthenticated(name), "{name}");
        }
    }
}
