//! A tiny in-memory mongod for the integration tests: `hello`/`isMaster`, `ping`, `buildInfo`,
//! `endSessions` and `find` on one collection, `app.items`.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bson::{doc, Bson, DateTime, Document};
use mongo_wire::{
    Command, ConnCtx, ErrorCode, Mechanism, MemoryCredentialStore, MongoError, Reply, ServerConfig,
    Service, WireLimits, WireListener,
};

pub const PASSWORD: &str = "s3cr=t,pw";

#[derive(Default)]
pub struct TinyMongod {
    pub items: Vec<Document>,
    pub opened: AtomicUsize,
    pub closed: AtomicUsize,
}

impl TinyMongod {
    pub fn with_items() -> Self {
        TinyMongod {
            items: vec![
                doc! { "_id": 1, "name": "a" },
                doc! { "_id": 2, "name": "b" },
                doc! { "_id": 3, "name": "a" },
            ],
            ..TinyMongod::default()
        }
    }

    fn hello(&self, conn: &ConnCtx, cmd: &Command) -> Document {
        let primary_field = if cmd.name == "hello" {
            "isWritablePrimary"
        } else {
            "ismaster"
        };
        doc! {
            primary_field: true,
            "helloOk": true,
            "maxWireVersion": 21,
            "minWireVersion": 0,
            "localTime": DateTime::now(),
            "logicalSessionTimeoutMinutes": 30,
            "connectionId": i32::try_from(conn.id).unwrap_or(i32::MAX),
        }
    }

    fn find(&self, cmd: &Command) -> Result<Document, MongoError> {
        let collection = cmd.body.get_str("find").map_err(|_| {
            MongoError::new(ErrorCode::TypeMismatch, "collection name must be a string")
        })?;
        let filter = cmd.body.get_document("filter").cloned().unwrap_or_default();
        let matching: Vec<Bson> = if cmd.db == "app" && collection == "items" {
            self.items
                .iter()
                .filter(|item| filter.iter().all(|(k, v)| item.get(k) == Some(v)))
                .cloned()
                .map(Bson::Document)
                .collect()
        } else {
            Vec::new()
        };
        Ok(doc! {
            "cursor": { "id": 0_i64, "ns": format!("{}.{collection}", cmd.db), "firstBatch": matching },
        })
    }
}

impl Service for TinyMongod {
    async fn handle(&self, conn: &ConnCtx, cmd: Command) -> Reply {
        match cmd.name.as_str() {
            "hello" | "isMaster" | "ismaster" => {
                // Awaitable hello: nothing changes in this topology, so wait the whole time.
                if let Ok(wait_ms) = cmd.body.get_i64("maxAwaitTimeMS") {
                    tokio::time::sleep(std::time::Duration::from_millis(wait_ms.unsigned_abs()))
                        .await;
                }
                Reply::ok(self.hello(conn, &cmd))
            }
            "ping" | "endSessions" => Reply::ok(doc! {}),
            "buildInfo" | "buildinfo" => Reply::ok(doc! {
                "version": "7.0.12",
                "versionArray": [7, 0, 12, 0],
            }),
            "find" => Reply::from(self.find(&cmd)),
            other => Reply::from(MongoError::command_not_found(other)),
        }
    }

    fn on_open(&self, _conn: &ConnCtx) {
        self.opened.fetch_add(1, Ordering::SeqCst);
    }

    fn on_close(&self, _conn: &ConnCtx) {
        self.closed.fetch_add(1, Ordering::SeqCst);
    }
}

/// Users: `both` (SHA-1 and SHA-256), `sha1` and `sha256` in `admin`, all with [`PASSWORD`].
pub fn credentials() -> Arc<MemoryCredentialStore> {
    let store = MemoryCredentialStore::new();
    let users: [(&str, &[Mechanism]); 3] = [
        ("both", &[Mechanism::ScramSha1, Mechanism::ScramSha256]),
        ("sha1", &[Mechanism::ScramSha1]),
        ("sha256", &[Mechanism::ScramSha256]),
    ];
    for (name, mechanisms) in users {
        store.add_user("admin", name, PASSWORD, mechanisms).unwrap();
    }
    Arc::new(store)
}

/// A started listener on a free loopback port.
pub async fn start(
    service: Arc<TinyMongod>,
    auth: bool,
    limits: WireLimits,
) -> (WireListener<TinyMongod>, SocketAddr) {
    let config = ServerConfig {
        limits,
        credentials: auth.then(|| credentials() as Arc<dyn mongo_wire::CredentialStore>),
    };
    let mut listener = WireListener::new("127.0.0.1:0".parse().unwrap(), service, config);
    let addr = listener.start().await.unwrap();
    (listener, addr)
}
