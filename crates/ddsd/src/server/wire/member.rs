//! One simulated `mongod` or `mongos` as a MongoDB server ([`mongo_wire::Service`]): the state
//! commands answered from the fleet at this instant, CRUD on the replica set's documents as the
//! member sees them (a secondary's view lags as its replication does), writes only on the writable
//! primary, `w: "majority"` acknowledged once a majority of the voting members has the write, and
//! `replSetStepDown` carried out by the fleet. A mongos routes every database to the first shard
//! (unsharded collections on their primary shard).
//!
//! Every answer is taken under the plane's per-instance lock and every write is saved before it is
//! acknowledged (see [`SimPlane::with_wire`]).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bson::{doc, Bson, Document};
use dds_engine::plane::{BalancerMode, Command as PlaneCommand, CommandError, MemberState};
use mongo_docstore::{read_command, write_command, Cursors, StoreError};
use mongo_wire::error::LABEL_RETRYABLE_WRITE_ERROR;
use mongo_wire::{Command, ConnCtx, ErrorCode, MongoError, Reply, Service};

use super::facts::{ProcessFacts, ProcessKind};
use super::replies;
use super::view::{facts, Layout, Role};
use crate::server::plane::sim::{SimPlane, WireAccess};
use crate::server::plane::DataPlane;
use crate::server::store::Store;

/// How often a waiting command (write concern, stepdown, a mongos without a shard primary) looks
/// at the fleet again.
const POLL: Duration = Duration::from_millis(10);
/// The longest a write concern waits without `wtimeout` (mongod waits for ever; a bound keeps a
/// stuck client from holding a task for ever).
const MAX_WRITE_CONCERN_WAIT: Duration = Duration::from_secs(300);
/// How long a mongos waits for its shard to elect a primary before failing the command, as
/// mongos's own retries do.
const MONGOS_PRIMARY_WAIT: Duration = Duration::from_secs(30);

pub struct Member {
    plane: Arc<SimPlane>,
    layout: Arc<Layout>,
    node_id: String,
    cursors: Mutex<Cursors>,
    connections: AtomicU32,
    max_connections: u32,
    /// The instance's IP whitelist, shared by its processes.
    whitelist: Arc<super::whitelist::Whitelist>,
    /// Where the instance's parameters are kept (`getParameter`, `getCmdLineOpts`).
    store: Arc<dyn Store>,
}

/// What a command needs from the fleet, taken in one look.
enum Outcome {
    Reply(Document),
    /// A write at this optime (plane ms) in this term, waiting for its write concern.
    Wait {
        reply: Document,
        replica_set: String,
        term: u64,
        at_ms: u64,
        needed: usize,
        wtimeout: Option<Duration>,
    },
    /// A stepdown accepted; the reply goes out once this member is no longer primary.
    SteppingDown {
        deadline: Duration,
    },
    /// A mongos without a primary on the shard it routes to.
    NoShardPrimary(String),
}

fn err(code: ErrorCode, msg: impl Into<String>) -> Document {
    MongoError::new(code, msg).to_document()
}

/// As mongod 4.4+ does, a retryable write (one carrying `txnNumber`) that fails with an error the
/// retryable-writes contract calls transient carries the `RetryableWriteError` label: drivers
/// speaking wire version 9 or later retry on the label alone, never on the code.
fn label_retryable_write(cmd: &Command, mut reply: Document) -> Document {
    const RETRYABLE: [ErrorCode; 12] = [
        ErrorCode::HostUnreachable,
        ErrorCode::HostNotFound,
        ErrorCode::NetworkTimeout,
        ErrorCode::ShutdownInProgress,
        ErrorCode::PrimarySteppedDown,
        ErrorCode::ExceededTimeLimit,
        ErrorCode::InterruptedAtShutdown,
        ErrorCode::InterruptedDueToReplStateChange,
        ErrorCode::NotWritablePrimary,
        ErrorCode::NotPrimaryNoSecondaryOk,
        ErrorCode::NotPrimaryOrSecondary,
        ErrorCode::FailedToSatisfyReadPreference,
    ];
    let failed = matches!(reply.get("ok"), Some(Bson::Double(x)) if *x == 0.0)
        || matches!(reply.get("ok"), Some(Bson::Int32(0)));
    if !failed
        || !mongo_docstore::is_write_command(&cmd.name)
        || session_of(&cmd.body).is_none()
        || reply.contains_key("errorLabels")
    {
        return reply;
    }
    let code = reply.get_i32("code").unwrap_or_default();
    if RETRYABLE.iter().any(|c| c.code() == code) {
        reply.insert("errorLabels", vec![LABEL_RETRYABLE_WRITE_ERROR]);
    }
    reply
}

/// An error answer that changed nothing.
fn refuse(code: ErrorCode, msg: impl Into<String>) -> (Outcome, bool) {
    (Outcome::Reply(err(code, msg)), false)
}

fn store_error(e: &StoreError) -> Document {
    doc! {"ok": 0.0, "errmsg": e.message.clone(), "code": e.code.number(), "codeName": e.code.name()}
}

/// `writeConcern` of a command: how many members must have the write (`None` = the primary alone).
fn write_concern(
    body: &Document,
    set_majority: usize,
) -> Result<(usize, Option<Duration>), Document> {
    let Some(wc) = body.get("writeConcern") else {
        return Ok((1, None));
    };
    let Bson::Document(wc) = wc else {
        return Err(err(
            ErrorCode::TypeMismatch,
            "writeConcern must be an object",
        ));
    };
    let wtimeout = match wc.get("wtimeout") {
        None => None,
        Some(v) => {
            let ms = match v {
                Bson::Int32(n) => i64::from(*n),
                Bson::Int64(n) => *n,
                Bson::Double(f) if f.is_finite() => *f as i64,
                _ => return Err(err(ErrorCode::TypeMismatch, "wtimeout must be a number")),
            };
            (ms > 0).then(|| Duration::from_millis(ms as u64))
        }
    };
    let needed = match wc.get("w") {
        None => 1,
        Some(Bson::String(s)) if s == "majority" => set_majority,
        Some(Bson::String(s)) => {
            return Err(err(
                ErrorCode::UnknownReplWriteConcern,
                format!("No write concern mode named '{s}' found in replica set configuration"),
            ))
        }
        Some(Bson::Int32(n)) if *n >= 0 => *n as usize,
        Some(Bson::Int64(n)) if *n >= 0 => *n as usize,
        Some(Bson::Double(f)) if *f >= 0.0 && f.fract() == 0.0 => *f as usize,
        Some(_) => {
            return Err(err(
                ErrorCode::FailedToParse,
                "w has to be a non-negative number or a string",
            ))
        }
    };
    Ok((needed, wtimeout))
}

/// The retryable-write identity of a command: the session id as text and the transaction number.
fn session_of(body: &Document) -> Option<(String, i64)> {
    let txn = match body.get("txnNumber")? {
        Bson::Int64(n) => *n,
        Bson::Int32(n) => i64::from(*n),
        _ => return None,
    };
    let id = body.get_document("lsid").ok()?.get("id")?;
    let key = match id {
        Bson::Binary(b) => b.bytes.iter().map(|x| format!("{x:02x}")).collect(),
        other => other.to_string(),
    };
    Some((key, txn))
}

/// Whether a read may run on a non-primary (`$readPreference` other than `primary`, or the legacy
/// `secondaryOk`).
fn secondary_ok(body: &Document) -> bool {
    match body.get_document("$readPreference") {
        Ok(rp) => !matches!(rp.get_str("mode"), Ok("primary")),
        Err(_) => false,
    }
}

fn wants_secondary(body: &Document) -> bool {
    matches!(
        body.get_document("$readPreference")
            .and_then(|rp| rp.get_str("mode")),
        Ok("secondary") | Ok("secondaryPreferred")
    )
}

/// Every command a member answers besides the reads and writes (the server loop answers the
/// authentication ones); anything else is `CommandNotFound`.
const STATE_COMMANDS: &[&str] = &[
    "hello",
    "isMaster",
    "ismaster",
    "ping",
    "buildInfo",
    "buildinfo",
    "serverStatus",
    "getParameter",
    "setFeatureCompatibilityVersion",
    "connectionStatus",
    "endSessions",
    "killSessions",
    "refreshSessions",
    "getCmdLineOpts",
    "getLog",
    "whatsmyuri",
    "replSetGetStatus",
    "replSetGetConfig",
    "replSetStepDown",
    "balancerStatus",
    "balancerStop",
    "balancerStart",
    "listShards",
];

const READS: &[&str] = &[
    "find",
    "getMore",
    "killCursors",
    "count",
    "distinct",
    "aggregate",
    "listCollections",
    "listIndexes",
    "listDatabases",
];

impl Member {
    pub fn new(
        plane: Arc<SimPlane>,
        layout: Arc<Layout>,
        node_id: String,
        max_connections: u32,
        max_open_cursors: usize,
        whitelist: Arc<super::whitelist::Whitelist>,
        store: Arc<dyn Store>,
    ) -> Member {
        let seed = node_id.bytes().fold(0x9e37_79b9_7f4a_7c15_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        Member {
            plane,
            layout,
            node_id,
            cursors: Mutex::new(Cursors::new(max_open_cursors, seed)),
            connections: AtomicU32::new(0),
            max_connections,
            whitelist,
            store,
        }
    }

    /// A restart loses the open cursors, as a real one does.
    pub fn reset(&self) {
        self.cursors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn facts_of(&self, a: &WireAccess<'_>) -> Option<ProcessFacts> {
        let obs = a.fleet.observe();
        let current = self.connections.load(Ordering::Relaxed);
        facts(
            &self.layout,
            &obs,
            a.fleet.truth(),
            a.ports,
            self.plane.advertised_host(),
            &self.node_id,
            current,
            self.max_connections.saturating_sub(current),
        )
    }

    async fn look<R: Send>(
        &self,
        f: impl FnOnce(&mut WireAccess<'_>) -> (R, bool) + Send,
    ) -> Result<R, Document> {
        match self.plane.with_wire(&self.layout.instance_id, f).await {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(err(
                ErrorCode::ShutdownInProgress,
                "The server is shutting down",
            )),
            Err(e) => {
                tracing::warn!(node = %self.node_id, error = %e, "the simulated deployment could not be read or saved");
                Err(err(
                    ErrorCode::InternalError,
                    "the deployment's state could not be saved",
                ))
            }
        }
    }

    async fn run(&self, conn: &ConnCtx, cmd: Command) -> Document {
        let reply = self.run_once(conn, &cmd).await;
        label_retryable_write(&cmd, reply)
    }

    /// `getParameter` and `getCmdLineOpts`: the process's facts, then the running parameter values
    /// of its scope from the store (read outside the plane's lock).
    async fn parameters_command(&self, cmd: &Command) -> Document {
        let f = match self.look(|a| (self.facts_of(a), false)).await {
            Ok(Some(f)) => f,
            Ok(None) => return err(ErrorCode::ShutdownInProgress, "The server is shutting down"),
            Err(d) => return d,
        };
        let (scope, role) = self.layout.parameter_scope(&self.node_id);
        if cmd.name == "getParameter" && !replies::wants_parameter_values(&cmd.body) {
            return replies::get_parameter(&f, &cmd.body, &[]);
        }
        let release = (f.release.0, f.release.1);
        let running = match crate::server::actions::parameters::running_values(
            &*self.store,
            &self.layout.instance_id,
            &scope,
            role,
            release,
        )
        .await
        {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(node = %self.node_id, error = ?e, "the instance's parameters could not be read");
                return err(ErrorCode::InternalError, "the parameters could not be read");
            }
        };
        if cmd.name == "getParameter" {
            replies::get_parameter(&f, &cmd.body, &running)
        } else {
            replies::cmd_line_opts(&f, role, &running)
        }
    }

    async fn run_once(&self, conn: &ConnCtx, cmd: &Command) -> Document {
        if matches!(cmd.name.as_str(), "getParameter" | "getCmdLineOpts") {
            return self.parameters_command(cmd).await;
        }
        let start = Instant::now();
        loop {
            let outcome = match self.look(|a| self.decide(a, conn, cmd)).await {
                Ok(o) => o,
                Err(d) => return d,
            };
            return match outcome {
                Outcome::Reply(d) => d,
                Outcome::Wait {
                    reply,
                    replica_set,
                    term,
                    at_ms,
                    needed,
                    wtimeout,
                } => {
                    self.wait_for_write_concern(reply, &replica_set, term, at_ms, needed, wtimeout)
                        .await
                }
                Outcome::SteppingDown { deadline } => self.wait_until_stepped_down(deadline).await,
                // A mongos retries while its shard elects a primary, as mongos's own retries do;
                // nothing was written, so trying again is safe.
                Outcome::NoShardPrimary(_) if start.elapsed() < MONGOS_PRIMARY_WAIT => {
                    tokio::time::sleep(POLL * 5).await;
                    continue;
                }
                Outcome::NoShardPrimary(rs) => {
                    let e = MongoError::new(
                        ErrorCode::FailedToSatisfyReadPreference,
                        format!("Could not find host matching read preference {{ mode: \"primary\" }} for set {rs}"),
                    );
                    if mongo_docstore::is_write_command(&cmd.name) {
                        e.with_label(LABEL_RETRYABLE_WRITE_ERROR).to_document()
                    } else {
                        e.to_document()
                    }
                }
            };
        }
    }

    /// Everything decided in one look at the fleet. Returns the outcome and whether the deployment
    /// changed (a write, a stepdown).
    fn decide(&self, a: &mut WireAccess<'_>, conn: &ConnCtx, cmd: &Command) -> (Outcome, bool) {
        let Some(f) = self.facts_of(a) else {
            return refuse(ErrorCode::ShutdownInProgress, "The server is shutting down");
        };
        let name = cmd.name.as_str();
        let reply = |d: Document| (Outcome::Reply(d), false);
        match name {
            "hello" | "isMaster" | "ismaster" => {
                let mut d = replies::hello(&f, name != "hello");
                d.insert("connectionId", i32::try_from(conn.id).unwrap_or(i32::MAX));
                d.insert("ok", 1.0);
                reply(d)
            }
            "ping" => reply(doc! {"ok": 1.0}),
            "buildInfo" | "buildinfo" => reply(replies::build_info(&f)),
            "serverStatus" => {
                let mut d = replies::server_status(&f);
                // As a real mongos does: where its config servers are (what an importer reads).
                if let (ProcessKind::Mongos, Some(cs)) = (f.kind, &self.layout.config_server) {
                    let host = self.plane.advertised_host();
                    let hosts: Vec<String> = self
                        .layout
                        .sets
                        .iter()
                        .filter(|s| &s.name == cs)
                        .flat_map(|s| s.members.iter())
                        .filter_map(|m| a.ports.get(&m.node_id).map(|p| format!("{host}:{p}")))
                        .collect();
                    d.insert(
                        "sharding",
                        doc! {"configsvrConnectionString": format!("{cs}/{}", hosts.join(","))},
                    );
                }
                reply(d)
            }
            "setFeatureCompatibilityVersion" => self.set_fcv(a, &f, cmd),
            "connectionStatus" => reply(replies::connection_status(
                conn.user().map(|u| (u.username.as_str(), u.db.as_str())),
            )),
            "endSessions" | "killSessions" | "refreshSessions" => reply(doc! {"ok": 1.0}),
            "getLog" => reply(doc! {"totalLinesWritten": 0, "log": [], "ok": 1.0}),
            "whatsmyuri" => reply(doc! {"you": conn.peer.to_string(), "ok": 1.0}),
            "replSetGetStatus" | "replSetGetConfig" | "replSetStepDown" => {
                match self.layout.role(&a.fleet.observe(), &self.node_id) {
                    Some(Role::Member(rs)) => match name {
                        "replSetGetStatus" => reply(replies::repl_set_get_status(&f)),
                        "replSetGetConfig" => reply(replies::repl_set_get_config(&f)),
                        _ => self.step_down(a, &f, cmd, &rs),
                    },
                    Some(Role::Mongos) => reply(MongoError::command_not_found(name).to_document()),
                    _ => reply(err(
                        ErrorCode::NoReplicationEnabled,
                        "not running with --replSet",
                    )),
                }
            }
            "balancerStatus" | "balancerStop" | "balancerStart" | "listShards"
                if self.layout.role(&a.fleet.observe(), &self.node_id) == Some(Role::Mongos) =>
            {
                self.cluster_command(a, name, cmd)
            }
            _ if READS.contains(&name) || mongo_docstore::is_write_command(name) => {
                self.data_command(a, &f, cmd)
            }
            _ => reply(MongoError::command_not_found(name).to_document()),
        }
    }

    fn step_down(
        &self,
        a: &mut WireAccess<'_>,
        f: &ProcessFacts,
        cmd: &Command,
        rs: &str,
    ) -> (Outcome, bool) {
        if cmd.db != "admin" {
            return refuse(
                ErrorCode::Unauthorized,
                "replSetStepDown may only be run against the admin database.",
            );
        }
        if !f.writable {
            return refuse(
                ErrorCode::NotWritablePrimary,
                "not primary so can't step down",
            );
        }
        let num = |v: Option<&Bson>, default: i64| match v {
            Some(Bson::Int32(n)) => Some(i64::from(*n)),
            Some(Bson::Int64(n)) => Some(*n),
            Some(Bson::Double(x)) if x.is_finite() => Some(*x as i64),
            None => Some(default),
            _ => None,
        };
        let (Some(step_down_secs), Some(catch_up_secs)) = (
            num(cmd.body.get("replSetStepDown"), 60),
            num(cmd.body.get("secondaryCatchUpPeriodSecs"), 10),
        ) else {
            return refuse(
                ErrorCode::TypeMismatch,
                "replSetStepDown and secondaryCatchUpPeriodSecs must be numbers",
            );
        };
        if step_down_secs <= 0
            || catch_up_secs < 0
            || catch_up_secs > step_down_secs
            || step_down_secs > 86_400
        {
            return refuse(ErrorCode::BadValue, "secondaryCatchUpPeriodSecs must be between 0 and the stepdown period, which is at most a day");
        }
        let step_down_id = a.fleet.truth().commands.len() as u64 | (1 << 62);
        let result = a.fleet.apply(&PlaneCommand::StepDown {
            replica_set: rs.to_string(),
            node_id: self.node_id.clone(),
            step_down_id,
            step_down_secs: step_down_secs as u32,
            catch_up_secs: catch_up_secs as u32,
        });
        match result {
            Ok(()) => (
                Outcome::SteppingDown {
                    deadline: DataPlane::wall_duration(
                        &*self.plane,
                        catch_up_secs as u64 * 1000 + 15_000,
                    ),
                },
                true,
            ),
            Err(CommandError::NoElectableSecondary) => (
                Outcome::Reply(err(
                    ErrorCode::ExceededTimeLimit,
                    "No electable secondaries caught up as of the stepdown's catch-up period",
                )),
                true,
            ),
            Err(CommandError::NotPrimary(_)) => (
                Outcome::Reply(err(
                    ErrorCode::NotWritablePrimary,
                    "not primary so can't step down",
                )),
                true,
            ),
            Err(e) => (
                Outcome::Reply(err(ErrorCode::OperationFailed, e.to_string())),
                true,
            ),
        }
    }

    async fn wait_until_stepped_down(&self, deadline: Duration) -> Document {
        let start = Instant::now();
        loop {
            let still = self
                .look(|a| {
                    let obs = a.fleet.observe();
                    let p = obs
                        .replica_sets
                        .iter()
                        .any(|rs| rs.primary.as_deref() == Some(self.node_id.as_str()));
                    (p, false)
                })
                .await;
            match still {
                Ok(false) => return doc! {"ok": 1.0},
                Ok(true) if start.elapsed() < deadline => tokio::time::sleep(POLL).await,
                Ok(true) => {
                    return err(
                        ErrorCode::ExceededTimeLimit,
                        "No electable secondaries caught up as of the stepdown's catch-up period",
                    )
                }
                Err(d) => return d,
            }
        }
    }

    /// `setFeatureCompatibilityVersion` on a mongos (the whole cluster) or a replica set's primary, as
    /// MongoDB takes it: admin database, a version string, `confirm: true` on a 7.0+ binary. The fleet
    /// refuses a change by more than one major or while a process runs an older binary.
    fn set_fcv(&self, a: &mut WireAccess<'_>, f: &ProcessFacts, cmd: &Command) -> (Outcome, bool) {
        if cmd.db != "admin" {
            return refuse(
                ErrorCode::Unauthorized,
                "setFeatureCompatibilityVersion may only be run against the admin database.",
            );
        }
        let Some(Bson::String(version)) = cmd.body.get("setFeatureCompatibilityVersion") else {
            return refuse(
                ErrorCode::TypeMismatch,
                "Command argument must be of type String",
            );
        };
        if f.release.0 >= 7 && !matches!(cmd.body.get("confirm"), Some(Bson::Boolean(true))) {
            return refuse(
                ErrorCode::IllegalOperation,
                "Once you have upgraded to the new FCV, you will not be able to downgrade FCV and binary \
                 version without support assistance. Please re-run this command with 'confirm: true' to \
                 acknowledge this and continue with the FCV upgrade.",
            );
        }
        let replica_set = match self.layout.role(&a.fleet.observe(), &self.node_id) {
            Some(Role::Mongos) => None,
            Some(Role::Member(rs)) if f.writable => Some(rs),
            Some(Role::Member(_)) => {
                return refuse(ErrorCode::NotWritablePrimary, "not primary");
            }
            _ => {
                return refuse(
                    ErrorCode::NoReplicationEnabled,
                    "not running with --replSet",
                )
            }
        };
        let c = PlaneCommand::SetFeatureCompatibilityVersion {
            replica_set,
            version: version.clone(),
        };
        match a.fleet.apply(&c) {
            Ok(()) => (Outcome::Reply(doc! {"ok": 1.0}), true),
            Err(e) => (
                Outcome::Reply(err(ErrorCode::OperationFailed, e.to_string())),
                true,
            ),
        }
    }

    fn cluster_command(
        &self,
        a: &mut WireAccess<'_>,
        name: &str,
        cmd: &Command,
    ) -> (Outcome, bool) {
        if cmd.db != "admin" {
            return refuse(
                ErrorCode::Unauthorized,
                format!("{name} may only be run against the admin database."),
            );
        }
        let obs = a.fleet.observe();
        match name {
            "balancerStatus" => {
                let (mode, round) = obs.balancer.map_or(("off", false), |b| {
                    (
                        if b.mode == BalancerMode::Full {
                            "full"
                        } else {
                            "off"
                        },
                        b.in_balancer_round,
                    )
                });
                (
                    Outcome::Reply(
                        doc! {"mode": mode, "inBalancerRound": round, "numBalancerRounds": 0_i64, "ok": 1.0},
                    ),
                    false,
                )
            }
            "balancerStop" | "balancerStart" => {
                let c = if name == "balancerStop" {
                    PlaneCommand::StopBalancer
                } else {
                    PlaneCommand::StartBalancer
                };
                match a.fleet.apply(&c) {
                    Ok(()) => (Outcome::Reply(doc! {"ok": 1.0}), true),
                    Err(e) => (
                        Outcome::Reply(err(ErrorCode::OperationFailed, e.to_string())),
                        true,
                    ),
                }
            }
            _ => {
                let host = self.plane.advertised_host();
                let shards: Vec<Bson> = self
                    .layout
                    .shards
                    .iter()
                    .filter_map(|s| {
                        let rs = obs.replica_set(s)?;
                        let hosts: Vec<String> = rs
                            .members
                            .iter()
                            .filter_map(|m| a.ports.get(&m.node_id).map(|p| format!("{host}:{p}")))
                            .collect();
                        Some(Bson::Document(doc! {"_id": s.clone(), "host": format!("{s}/{}", hosts.join(",")), "state": 1}))
                    })
                    .collect();
                (Outcome::Reply(doc! {"shards": shards, "ok": 1.0}), false)
            }
        }
    }

    /// CRUD: on a mongod against its own replica set, on a mongos against the first shard.
    fn data_command(
        &self,
        a: &mut WireAccess<'_>,
        f: &ProcessFacts,
        cmd: &Command,
    ) -> (Outcome, bool) {
        let obs = a.fleet.observe();
        let name = cmd.name.as_str();
        let is_write = mongo_docstore::is_write_command(name);
        let role = self.layout.role(&obs, &self.node_id);
        // Which replica set and which member's view serve the command.
        let (rs_name, member, writable) = match role.clone() {
            Some(Role::Mongos) => {
                let Some(shard) = self.layout.shards.first() else {
                    return refuse(ErrorCode::ShutdownInProgress, "no shards");
                };
                let Some(rs) = obs.replica_set(shard) else {
                    return refuse(ErrorCode::ShutdownInProgress, "no shards");
                };
                let target = if !is_write && wants_secondary(&cmd.body) {
                    rs.members
                        .iter()
                        .find(|m| m.state == MemberState::Secondary && m.process_up)
                        .map(|m| m.node_id.clone())
                        .or_else(|| rs.primary.clone())
                } else {
                    rs.primary.clone()
                };
                let Some(target) = target else {
                    return (Outcome::NoShardPrimary(shard.clone()), false);
                };
                let writable = rs.primary.as_deref() == Some(target.as_str());
                (shard.clone(), target, writable)
            }
            Some(Role::Member(rs)) => (rs, self.node_id.clone(), f.writable),
            Some(Role::Standalone) => {
                let Some(rs) = obs.replica_sets.first() else {
                    return refuse(ErrorCode::ShutdownInProgress, "shutting down");
                };
                (rs.name.clone(), self.node_id.clone(), f.writable)
            }
            None => return refuse(ErrorCode::ShutdownInProgress, "shutting down"),
        };
        let standalone = role == Some(Role::Standalone);
        let rs_obs = obs.replica_set(&rs_name);
        let member_obs = rs_obs.and_then(|rs| rs.member(&member));
        let optime = if writable {
            u64::MAX
        } else {
            member_obs.map_or(0, |m| m.optime_ms)
        };
        let now = obs.now_ms;
        if is_write {
            let session = session_of(&cmd.body);
            if !writable {
                let mut e = MongoError::new(ErrorCode::NotWritablePrimary, "not primary");
                if session.is_some() {
                    e = e.with_label(LABEL_RETRYABLE_WRITE_ERROR);
                }
                return (Outcome::Reply(e.to_document()), false);
            }
            let conf = self.layout.set(&rs_name);
            let majority = conf.map_or(1, |c| c.write_majority());
            let (needed, wtimeout) = if standalone {
                (1, None)
            } else {
                match write_concern(&cmd.body, majority) {
                    Ok(x) => x,
                    Err(d) => return (Outcome::Reply(d), false),
                }
            };
            let data_members = conf.map_or(1, |c| {
                c.members.iter().filter(|m| m.kind.data_bearing()).count()
            });
            if needed > data_members {
                return refuse(
                    ErrorCode::UnsatisfiableWriteConcern,
                    "Not enough data-bearing nodes",
                );
            }
            let store = a.data.set(&rs_name);
            let session_ref = session.as_ref().map(|(k, t)| (k.as_str(), *t));
            let written = store.write(&member, now, |b| {
                write_command(b, &cmd.db, name, &cmd.body, session_ref)
            });
            let (reply, at) = match written {
                Ok(x) => x,
                Err(e) => return (Outcome::Reply(store_error(&e)), false),
            };
            // Fold what a majority has into the base, which bounds the log.
            if let (Some(rs), Some(conf)) = (rs_obs, conf) {
                let mut optimes: Vec<u64> = rs
                    .members
                    .iter()
                    .filter(|m| {
                        conf.member(&m.node_id)
                            .is_some_and(|c| c.kind.votes() && c.kind.data_bearing())
                    })
                    .map(|m| {
                        if Some(&m.node_id) == rs.primary.as_ref() {
                            now
                        } else {
                            m.optime_ms
                        }
                    })
                    .collect();
                optimes.sort_unstable_by(|x, y| y.cmp(x));
                if let Some(&point) = optimes.get(majority.saturating_sub(1)) {
                    store.commit(point.min(now));
                }
            }
            if needed <= 1 {
                return (Outcome::Reply(reply), true);
            }
            let term = rs_obs.map_or(0, |rs| rs.term);
            (
                Outcome::Wait {
                    reply,
                    replica_set: rs_name,
                    term,
                    at_ms: at.ms,
                    needed,
                    wtimeout,
                },
                true,
            )
        } else {
            if !standalone && !writable {
                let state = member_obs.map_or(MemberState::Down, |m| m.state);
                if role != Some(Role::Mongos) && state != MemberState::Secondary {
                    return refuse(
                        ErrorCode::NotPrimaryOrSecondary,
                        "node is not in primary or recovering state",
                    );
                }
                if role != Some(Role::Mongos)
                    && !secondary_ok(&cmd.body)
                    && name != "getMore"
                    && name != "killCursors"
                {
                    return refuse(
                        ErrorCode::NotPrimaryNoSecondaryOk,
                        "not primary and secondaryOk=false",
                    );
                }
            }
            let store = a.data.set(&rs_name);
            let limits = *store.limits();
            let view = store.view(&member, optime);
            let mut cursors = self.cursors.lock().unwrap_or_else(|e| e.into_inner());
            let d = match read_command(view, &mut cursors, &cmd.db, name, &cmd.body, &limits) {
                Some(Ok(d)) => d,
                Some(Err(e)) => store_error(&e),
                None => MongoError::command_not_found(name).to_document(),
            };
            (Outcome::Reply(d), false)
        }
    }

    /// Waits until `needed` voting members have the write at `at_ms`; a new term first (the
    /// primary stepped down or died) interrupts the wait, as MongoDB's does.
    async fn wait_for_write_concern(
        &self,
        mut reply: Document,
        replica_set: &str,
        term: u64,
        at_ms: u64,
        needed: usize,
        wtimeout: Option<Duration>,
    ) -> Document {
        let start = Instant::now();
        let limit = wtimeout
            .unwrap_or(MAX_WRITE_CONCERN_WAIT)
            .min(MAX_WRITE_CONCERN_WAIT);
        let layout = self.layout.clone();
        loop {
            let state = self
                .look(|a| {
                    let obs = a.fleet.observe();
                    let Some(rs) = obs.replica_set(replica_set) else {
                        return (None, false);
                    };
                    if rs.term != term || rs.primary.is_none() {
                        return (None, false);
                    }
                    let conf = layout.set(replica_set);
                    let have = rs
                        .members
                        .iter()
                        .filter(|m| {
                            conf.and_then(|c| c.member(&m.node_id))
                                .is_none_or(|c| c.kind.votes() && c.kind.data_bearing())
                        })
                        .filter(|m| {
                            rs.primary.as_deref() == Some(m.node_id.as_str())
                                || m.optime_ms >= at_ms
                        })
                        .count();
                    (Some(have >= needed), false)
                })
                .await;
            match state {
                Err(d) => return d,
                Ok(Some(true)) => return reply,
                Ok(None) => {
                    reply.insert(
                        "writeConcernError",
                        doc! {
                            "code": ErrorCode::InterruptedDueToReplStateChange.code(),
                            "codeName": ErrorCode::InterruptedDueToReplStateChange.code_name(),
                            "errmsg": "operation was interrupted because the node stepped down or lost its term",
                        },
                    );
                    reply.insert("errorLabels", vec![LABEL_RETRYABLE_WRITE_ERROR]);
                    return reply;
                }
                Ok(Some(false)) if start.elapsed() >= limit => {
                    reply.insert(
                        "writeConcernError",
                        doc! {
                            "code": ErrorCode::WriteConcernFailed.code(),
                            "codeName": ErrorCode::WriteConcernFailed.code_name(),
                            "errmsg": "waiting for replication timed out",
                            "errInfo": {"wtimeout": true},
                        },
                    );
                    return reply;
                }
                Ok(Some(false)) => tokio::time::sleep(POLL).await,
            }
        }
    }
}

impl Service for Member {
    async fn handle(&self, conn: &ConnCtx, cmd: Command) -> Reply {
        Reply::ok(self.run(conn, cmd).await)
    }

    fn has_command(&self, name: &str) -> bool {
        STATE_COMMANDS.contains(&name)
            || READS.contains(&name)
            || mongo_docstore::is_write_command(name)
    }

    fn admits(&self, peer: &std::net::SocketAddr) -> bool {
        self.whitelist.admits(peer.ip())
    }

    fn on_open(&self, _conn: &ConnCtx) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    fn on_close(&self, _conn: &ConnCtx) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_concerns_parse_as_mongod_reads_them() {
        assert_eq!(write_concern(&doc! {}, 2).unwrap(), (1, None));
        assert_eq!(
            write_concern(
                &doc! {"writeConcern": {"w": "majority", "wtimeout": 500}},
                2
            )
            .unwrap(),
            (2, Some(Duration::from_millis(500)))
        );
        assert_eq!(
            write_concern(&doc! {"writeConcern": {"w": 3}}, 2).unwrap(),
            (3, None)
        );
        let e = write_concern(&doc! {"writeConcern": {"w": "dc1"}}, 2).unwrap_err();
        assert_eq!(e.get_i32("code").unwrap(), 79);
        let e = write_concern(&doc! {"writeConcern": {"w": -1}}, 2).unwrap_err();
        assert_eq!(e.get_i32("code").unwrap(), 9);
    }

    #[test]
    fn a_retryable_write_refused_for_a_transient_reason_carries_the_retry_label() {
        let cmd = |body: Document| Command {
            db: "test".into(),
            name: body.keys().next().cloned().unwrap_or_default(),
            body,
            transport: mongo_wire::command::Transport::OpMsg,
            more_to_come: false,
            request_id: 1,
        };
        let id = bson::Binary {
            subtype: bson::spec::BinarySubtype::Uuid,
            bytes: vec![1; 16],
        };
        let retryable = cmd(doc! {"insert": "c", "lsid": {"id": id.clone()}, "txnNumber": 1_i64});
        let labels = |d: &Document| d.get_array("errorLabels").ok().cloned();
        let shutting = err(ErrorCode::ShutdownInProgress, "The server is shutting down");
        assert_eq!(
            labels(&label_retryable_write(&retryable, shutting.clone())),
            Some(vec![Bson::String(LABEL_RETRYABLE_WRITE_ERROR.into())])
        );
        // Not a retryable write: no session transaction number, or a read.
        let plain = cmd(doc! {"insert": "c"});
        assert_eq!(
            labels(&label_retryable_write(&plain, shutting.clone())),
            None
        );
        let read = cmd(doc! {"find": "c", "lsid": {"id": id}, "txnNumber": 1_i64});
        assert_eq!(labels(&label_retryable_write(&read, shutting)), None);
        // A client's mistake is not retried, and a success has nothing to label.
        let bad = err(ErrorCode::BadValue, "bad");
        assert_eq!(labels(&label_retryable_write(&retryable, bad)), None);
        let ok = doc! {"n": 1, "ok": 1.0};
        assert_eq!(label_retryable_write(&retryable, ok.clone()), ok);
    }

    #[test]
    fn sessions_and_read_preferences_are_read_from_the_command() {
        let id = bson::Binary {
            subtype: bson::spec::BinarySubtype::Uuid,
            bytes: vec![1, 2, 255],
        };
        let body = doc! {"insert": "c", "lsid": {"id": id}, "txnNumber": 7_i64};
        assert_eq!(session_of(&body), Some(("0102ff".into(), 7)));
        assert_eq!(session_of(&doc! {"insert": "c"}), None);
        assert!(!secondary_ok(&doc! {"find": "c"}));
        assert!(!secondary_ok(
            &doc! {"find": "c", "$readPreference": {"mode": "primary"}}
        ));
        assert!(secondary_ok(
            &doc! {"find": "c", "$readPreference": {"mode": "primaryPreferred"}}
        ));
        assert!(wants_secondary(
            &doc! {"$readPreference": {"mode": "secondary"}}
        ));
    }
}
