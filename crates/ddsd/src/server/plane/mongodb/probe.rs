//! Talking to one process over MongoDB's wire protocol with the official driver: a direct
//! connection per process (cached), every command bounded by a timeout, and the answers read as
//! MongoDB documents them (`hello`, `buildInfo`, `serverStatus`, `replSetGetStatus`,
//! `balancerStatus`).
//!
//! A process whose port refuses connections is down; that is found with a plain TCP connect
//! first, because a driver asked about a down server waits out its whole server-selection timeout.

use bson::{doc, Bson, Document};
use mongodb::error::ErrorKind;
use mongodb::options::{ClientOptions, Credential, ServerAddress};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// How the plane reaches the processes of one deployment.
pub struct Connector {
    username: String,
    password: String,
    auth_source: String,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    clients: Mutex<HashMap<String, mongodb::Client>>,
    /// Clients without credentials, for processes that hold no users (arbiters): `hello` and
    /// `buildInfo` answer before authentication.
    anonymous: Mutex<HashMap<String, mongodb::Client>>,
}

/// A command that did not succeed: MongoDB's own refusal (`ok: 0` with a code), or no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    Refused {
        code: i32,
        code_name: String,
        message: String,
    },
    /// Timeout, connection refused or dropped, authentication failure: the outcome is unknown.
    NoAnswer(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Refused {
                code,
                code_name,
                message,
            } => write!(f, "{code_name} ({code}): {message}"),
            CallError::NoAnswer(m) => write!(f, "no answer: {m}"),
        }
    }
}

impl Connector {
    pub fn new(
        username: &str,
        password: &str,
        auth_source: &str,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Connector {
        Connector {
            username: username.to_string(),
            password: password.to_string(),
            auth_source: auth_source.to_string(),
            connect_timeout,
            command_timeout,
            clients: Mutex::new(HashMap::new()),
            anonymous: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, address: &str, anonymous: bool) -> Result<mongodb::Client, CallError> {
        let mut clients = if anonymous {
            self.anonymous.lock()
        } else {
            self.clients.lock()
        }
        .unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(address) {
            return Ok(c.clone());
        }
        let host = ServerAddress::parse(address)
            .map_err(|e| CallError::NoAnswer(format!("address {address}: {e}")))?;
        let mut opts = ClientOptions::default();
        opts.hosts = vec![host];
        opts.direct_connection = Some(true);
        opts.app_name = Some("ddsd".into());
        opts.connect_timeout = Some(self.connect_timeout);
        // A fresh client checks its server at once; a cached one whose server went away waits for
        // its monitor, so a dead server's client is dropped (`forget`) and selection kept short.
        opts.server_selection_timeout = Some(self.connect_timeout);
        opts.heartbeat_freq = Some(Duration::from_millis(500));
        opts.max_pool_size = Some(4);
        opts.retry_reads = Some(false);
        opts.retry_writes = Some(false);
        if !self.username.is_empty() && !anonymous {
            opts.credential = Some(
                Credential::builder()
                    .username(self.username.clone())
                    .password(self.password.clone())
                    .source(self.auth_source.clone())
                    .build(),
            );
        }
        let client = mongodb::Client::with_options(opts)
            .map_err(|e| CallError::NoAnswer(format!("driver options for {address}: {e}")))?;
        clients.insert(address.to_string(), client.clone());
        Ok(client)
    }

    /// Drops the cached client of a process that went away (its pool and monitor are stale).
    pub fn forget(&self, address: &str) {
        for map in [&self.clients, &self.anonymous] {
            map.lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(address);
        }
    }

    /// Whether something accepts connections on `address` (refused or silent: no).
    pub async fn listening(&self, address: &str) -> bool {
        matches!(
            tokio::time::timeout(
                self.connect_timeout,
                tokio::net::TcpStream::connect(address)
            )
            .await,
            Ok(Ok(_))
        )
    }

    /// Runs `command` against the `admin` database of the process at `address`.
    pub async fn admin(&self, address: &str, command: Document) -> Result<Document, CallError> {
        self.admin_as(address, command, false).await
    }

    /// [`Connector::admin`] without credentials (`hello`, `buildInfo`: what any client may ask).
    pub async fn admin_anonymous(
        &self,
        address: &str,
        command: Document,
    ) -> Result<Document, CallError> {
        self.admin_as(address, command, true).await
    }

    async fn admin_as(
        &self,
        address: &str,
        command: Document,
        anonymous: bool,
    ) -> Result<Document, CallError> {
        let client = self.client(address, anonymous)?;
        let db = client.database("admin");
        let run = db.run_command(command);
        match tokio::time::timeout(self.command_timeout, run).await {
            Err(_) => {
                self.forget(address);
                Err(CallError::NoAnswer(format!(
                    "{address}: no answer within {} ms",
                    self.command_timeout.as_millis()
                )))
            }
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => Err(match *e.kind {
                ErrorKind::Command(ref c) => CallError::Refused {
                    code: c.code,
                    code_name: c.code_name.clone(),
                    message: c.message.clone(),
                },
                _ => {
                    self.forget(address);
                    CallError::NoAnswer(format!("{address}: {e}"))
                }
            }),
        }
    }
}

/// Milliseconds of a BSON date (or a number of ms), for `optimeDate` and `localTime`.
pub fn millis(v: Option<&Bson>) -> Option<u64> {
    match v? {
        Bson::DateTime(d) => u64::try_from(d.timestamp_millis()).ok(),
        Bson::Int64(n) => u64::try_from(*n).ok(),
        Bson::Int32(n) => u64::try_from(*n).ok(),
        Bson::Double(f) if f.is_finite() && *f >= 0.0 => Some(*f as u64),
        _ => None,
    }
}

/// A number whatever its BSON type (MongoDB answers counters as int32, int64 or double).
pub fn number(v: Option<&Bson>) -> Option<f64> {
    match v? {
        Bson::Int32(n) => Some(f64::from(*n)),
        Bson::Int64(n) => Some(*n as f64),
        Bson::Double(f) => Some(*f),
        Bson::Boolean(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

pub fn flag(d: &Document, key: &str) -> bool {
    matches!(d.get(key), Some(Bson::Boolean(true))) || number(d.get(key)).is_some_and(|n| n != 0.0)
}

/// `serverStatus` without the sections the plane does not read (they are large on a real mongod).
pub fn server_status_command() -> Document {
    doc! {
        "serverStatus": 1,
        "repl": 0, "metrics": 0, "locks": 0, "wiredTiger": 0, "tcmalloc": 0, "opcounters": 0,
        "opcountersRepl": 0, "network": 0, "globalLock": 0, "asserts": 0, "transactions": 0,
    }
}

/// What one process says about itself.
#[derive(Debug, Clone, Default)]
pub struct ProcessProbe {
    /// It answered `hello`.
    pub up: bool,
    pub hello: Document,
    /// `buildInfo.version`.
    pub version: Option<String>,
    /// `serverStatus.localTime`, the deployment's clock.
    pub local_ms: Option<u64>,
    /// `localTime - uptimeMillis`.
    pub started_ms: Option<u64>,
    /// Commands sent.
    pub commands: u32,
}

impl Connector {
    /// `hello` + `serverStatus` (+ `buildInfo` unless `known_version` is given for the same
    /// start time, see the caller's cache).
    pub async fn probe(&self, address: &str, cached: Option<(u64, String)>) -> ProcessProbe {
        let mut p = ProcessProbe::default();
        if !self.listening(address).await {
            self.forget(address);
            return p;
        }
        let (hello, status) = tokio::join!(
            self.admin(address, doc! {"hello": 1}),
            self.admin(address, server_status_command())
        );
        p.commands += 2;
        let (hello, anonymous) = match hello {
            Ok(h) => (h, false),
            // A process that holds no users (an arbiter) refuses the login but answers hello.
            Err(_) => {
                p.commands += 1;
                match self.admin_anonymous(address, doc! {"hello": 1}).await {
                    Ok(h) => (h, true),
                    Err(_) => return p,
                }
            }
        };
        p.up = true;
        p.hello = hello;
        if let Ok(status) = status {
            p.local_ms = millis(status.get("localTime"));
            let uptime_ms = number(status.get("uptimeMillis"))
                .or_else(|| number(status.get("uptime")).map(|s| s * 1000.0));
            if let (Some(now), Some(up)) = (p.local_ms, uptime_ms) {
                p.started_ms = Some(now.saturating_sub(up as u64));
            }
        }
        // A process keeps its binary for as long as it runs: one buildInfo per start.
        let started_s = p.started_ms.map(|s| s / 1000);
        match cached {
            Some((s, v)) if started_s.is_some_and(|now| now.abs_diff(s) <= 1) => {
                p.version = Some(v)
            }
            _ => {
                p.commands += 1;
                let info = if anonymous {
                    self.admin_anonymous(address, doc! {"buildInfo": 1}).await
                } else {
                    self.admin(address, doc! {"buildInfo": 1}).await
                };
                if let Ok(b) = info {
                    p.version = b.get_str("version").ok().map(str::to_string);
                }
            }
        }
        p
    }
}
