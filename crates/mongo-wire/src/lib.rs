//! MongoDB wire protocol server, product-agnostic (as `acs-rpc` is for the RPC API): what any
//! server that the official MongoDB drivers (pymongo, Node `mongodb`, the Rust `mongodb` crate,
//! mongosh) connect to must do around its commands. It knows nothing of replica sets, upgrades or
//! ddsd; ddsd's simulated mongod/mongos members implement [`Service`] on top of it. Anything that
//! needs to serve or decode the wire protocol may use it; it depends on no other workspace crate.
//!
//! # Serving
//!
//! ```no_run
//! use std::sync::Arc;
//! use bson::doc;
//! use mongo_wire::{Command, ConnCtx, Mechanism, MemoryCredentialStore, MongoError, Reply,
//!                  ServerConfig, Service, WireListener};
//!
//! struct Member;
//! impl Service for Member {
//!     async fn handle(&self, _conn: &ConnCtx, cmd: Command) -> Reply {
//!         match cmd.name.as_str() {
//!             "hello" | "isMaster" | "ismaster" => Reply::ok(doc! {
//!                 "isWritablePrimary": true, "maxWireVersion": 21, "minWireVersion": 0,
//!             }),
//!             "ping" => Reply::ok(doc! {}),
//!             other => MongoError::command_not_found(other).into(),
//!         }
//!     }
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let users = MemoryCredentialStore::new();
//! users.add_user("admin", "root", "pw", &[Mechanism::ScramSha256, Mechanism::ScramSha1]).unwrap();
//! let config = ServerConfig { credentials: Some(Arc::new(users)), ..ServerConfig::default() };
//! let mut listener = WireListener::new("127.0.0.1:27017".parse().unwrap(), Arc::new(Member), config);
//! listener.start().await?;   // drivers connect
//! listener.stop().await;     // port closed, every connection dropped (a "down" process)
//! listener.start().await?;   // same port again
//! # Ok(()) }
//! ```
//!
//! - [`Service`]: `handle(&ConnCtx, Command) -> Reply`, plus `on_open`/`on_close` hooks. A reply
//!   may take as long as the service likes (awaitable `hello`); stopping drops it.
//! - [`Command`]: database, command name (first key, verbatim), body with `OP_MSG` document
//!   sequences merged in as arrays, transport, `more_to_come`. [`Reply`]: the reply document
//!   (`Reply::ok` adds `ok: 1.0`; `Reply::error` / `From<MongoError>` renders an error).
//! - [`MongoError`] / [`ErrorCode`]: `{ok: 0.0, errmsg, code, codeName, errorLabels?}` with the
//!   codes and `codeName`s mongod uses (`NotWritablePrimary` 10107, `AuthenticationFailed` 18, ...).
//! - [`WireLimits`]: message/object/batch sizes (advertised in every `hello` reply the service
//!   does not fill itself), nesting depth, connections, in-flight commands, idle and frame-read
//!   timeouts. [`ServerConfig`]: limits plus an optional [`CredentialStore`].
//!
//! What the server loop does before a command reaches the service:
//! - frames: `OP_MSG` (checksum verified when present; unknown required flag bits refused;
//!   `moreToCome` answered with nothing, or with a closed connection when the command failed as
//!   not-primary), legacy `OP_QUERY` only for `hello`/`isMaster` on `<db>.$cmd` (answered with
//!   `OP_REPLY`; other commands get `UnsupportedOpQueryCommand` 352). `OP_COMPRESSED` is never
//!   negotiated and closes the connection, as does any frame that cannot be trusted.
//! - authentication (when a credential store is configured): SCRAM-SHA-1 and SCRAM-SHA-256 via
//!   `saslStart`/`saslContinue` (short and legacy conversations), `speculativeAuthenticate` and
//!   `saslSupportedMechs` in `hello`, `logout`; before login only `hello`/`isMaster`, `ping`,
//!   `buildInfo` and the auth commands run, anything else is `Unauthorized` 13 ("command find
//!   requires authentication") — or `CommandNotFound` 59 when [`Service::has_command`] says the
//!   service has no such command, as mongod looks a command up first. The authenticated user is on [`ConnCtx::user`].
//!
//! # Lower level
//!
//! [`frame`] decodes and encodes messages (also for raw-socket tests and tools), [`decode_request`]
//! is the whole decode path the server uses, [`scram`] is the transport-free SCRAM conversation,
//! [`auth`] the per-connection session, [`invariants`] the decoder properties the fuzz target
//! asserts.

pub mod auth;
pub mod command;
pub mod error;
pub mod frame;
pub mod invariants;
pub mod limits;
pub mod scram;
pub mod server;

pub use auth::{AuthenticatedUser, CredentialStore, MemoryCredentialStore, UserCredentials};
pub use command::{decode_request, Command, Reply, Transport};
pub use error::{ErrorCode, MongoError};
pub use frame::FrameError;
pub use limits::WireLimits;
pub use scram::{Mechanism, ScramCredential};
pub use server::{ConnCtx, ServerConfig, Service, WireListener};
