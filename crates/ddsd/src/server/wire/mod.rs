//! The simulated members' MongoDB wire protocol: every simulated `mongod` and `mongos` answers on its
//! own loopback port with replies built from the simulation (`facts`, `replies`) and data from the
//! replica set's document store. Uses `mongo-wire` for the protocol and `mongo-docstore` for data;
//! used by the simulated plane only.

pub mod facts;
pub mod replies;
