//! MongoDB wire protocol, product-agnostic: what any server that official MongoDB drivers connect
//! to must do before and after a command runs. It knows nothing of replica sets or of ddsd; the
//! simulated mongod/mongos members implement [`Service`](crate) on top of it.
//!
//! Modules: `frame` (header, `OP_MSG`, `OP_QUERY`/`OP_REPLY`, CRC-32C), `command` (decoded
//! command and reply), `error` (server error codes and the error reply), `limits` (every bound).
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
