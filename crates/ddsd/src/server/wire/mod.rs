//! The simulated members' MongoDB wire protocol: every simulated `mongod` and `mongos` answers on its
//! own port with replies built from the simulation and data from its replica set's documents.
//!
//! - `facts`, `view`: what one process is at one instant, in MongoDB's terms;
//! - `replies`: the server-state replies built from those facts;
//! - `member`: one process as a [`mongo_wire::Service`] (state commands, CRUD, write concern,
//!   stepdown, the mongos's routing);
//! - `accounts`: the `root` account's stored SCRAM credentials;
//! - `whitelist`: the IP whitelist (`ModifySecurityIps`) every listener of an instance enforces;
//! - `supervisor`: one listener per process, open while the process runs.
//!
//! Uses `mongo-wire` for the protocol, `mongo-docstore` for data and the simulated plane for the
//! fleet; used by the serve wiring and by `actions` (the root account at creation).

pub mod accounts;
pub mod facts;
pub mod member;
pub mod replies;
pub mod supervisor;
pub mod view;
pub mod whitelist;
