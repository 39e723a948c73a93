//! The replies of the server-state commands (`hello`, `buildInfo`, `replSetGetStatus`,
//! `replSetGetConfig`, `serverStatus`, `getParameter`, `getCmdLineOpts`, `connectionStatus`,
//! `hostInfo`), built from [`ProcessFacts`] with the field names and BSON types mongod uses, because
//! drivers' discovery and server selection run on them.

use bson::{doc, oid::ObjectId, Bson, DateTime, Document, Timestamp};

use super::facts::{max_wire_version, state_str, ProcessFacts, ProcessKind};
use crate::server::actions::parameters::{Param, Role as ParamRole};
use dds_engine::plane::{MemberState, Millis};
use mongo_wire::{ErrorCode, MongoError};

/// `logicalSessionTimeoutMinutes` (mongod's default).
pub const SESSION_TIMEOUT_MINUTES: i32 = 30;

/// mongod's `electionId` for a protocol-version-1 term: `7fffffff` then the term, big-endian.
pub fn election_id(term: u64) -> ObjectId {
    let mut b = [0u8; 12];
    b[..4].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
    b[4..].copy_from_slice(&term.to_be_bytes());
    ObjectId::from_bytes(b)
}

fn date(ms: Millis) -> DateTime {
    DateTime::from_millis(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// An oplog position as mongod writes it: `{ts: Timestamp(secs, inc), t: term}`.
pub fn optime(ms: Millis, term: u64) -> Document {
    doc! {"ts": Timestamp { time: (ms / 1000) as u32, increment: (ms % 1000) as u32 + 1 }, "t": term as i64}
}

/// `hello` / `isMaster`. `legacy` answers `isMaster` with the `ismaster` field name it asked for.
pub fn hello(f: &ProcessFacts, legacy: bool) -> Document {
    let writable_key = if legacy {
        "ismaster"
    } else {
        "isWritablePrimary"
    };
    let mut d = Document::new();
    match f.kind {
        ProcessKind::Mongos => {
            d.insert(writable_key, true);
            d.insert("msg", "isdbgrid");
        }
        ProcessKind::Standalone => {
            d.insert(writable_key, f.writable);
        }
        ProcessKind::ReplicaSetMember => {
            let startup = matches!(f.state, MemberState::Startup | MemberState::Down);
            if !startup {
                d.insert("hosts", f.hosts.clone());
                if !f.passives.is_empty() {
                    d.insert("passives", f.passives.clone());
                }
                if !f.arbiters.is_empty() {
                    d.insert("arbiters", f.arbiters.clone());
                }
                if let Some(name) = &f.set_name {
                    d.insert("setName", name.clone());
                }
                d.insert("setVersion", f.set_version);
            }
            d.insert(writable_key, f.is_primary() && f.writable);
            d.insert("secondary", f.state == MemberState::Secondary);
            if f.state == MemberState::Arbiter {
                d.insert("arbiterOnly", true);
            }
            if f.hidden {
                d.insert("hidden", true);
            }
            if !startup {
                if let Some(p) = &f.primary {
                    d.insert("primary", p.clone());
                }
                d.insert("me", f.me.clone());
            }
            if f.is_primary() {
                d.insert("electionId", election_id(f.term));
            }
            if !startup && f.state != MemberState::Arbiter {
                d.insert(
                    "lastWrite",
                    doc! {
                        "opTime": optime(f.optime_ms, f.term),
                        "lastWriteDate": date(f.optime_ms),
                        "majorityOpTime": optime(f.optime_ms, f.term),
                        "majorityWriteDate": date(f.optime_ms),
                    },
                );
            }
        }
    }
    d.insert("localTime", date(f.now_ms));
    d.insert("logicalSessionTimeoutMinutes", SESSION_TIMEOUT_MINUTES);
    d.insert("connectionId", Bson::Int32(0));
    d.insert("minWireVersion", 0);
    d.insert("maxWireVersion", max_wire_version(f.release));
    d.insert("readOnly", false);
    d
}

pub fn build_info(f: &ProcessFacts) -> Document {
    let (a, b, c) = f.release;
    doc! {
        "version": f.version(),
        "gitVersion": format!("ddsd-sim-{}", f.kernel),
        "versionArray": [a as i32, b as i32, c as i32, 0],
        "bits": 64,
        "debug": false,
        "maxBsonObjectSize": 16 * 1024 * 1024,
        "storageEngines": ["wiredTiger"],
        "modules": [],
        "javascriptEngine": "none",
        "ok": 1.0,
    }
}

/// `replSetGetStatus` as the member itself answers it.
pub fn repl_set_get_status(f: &ProcessFacts) -> Document {
    let members: Vec<Bson> = f
        .members
        .iter()
        .map(|m| {
            let (s, n) = state_str(if m.healthy || m.is_self {
                m.state
            } else {
                MemberState::Down
            });
            let mut d = doc! {
                "_id": m.id,
                "name": m.name.clone(),
                "health": if m.healthy || m.is_self { 1.0 } else { 0.0 },
                "state": n,
                "stateStr": s,
                "uptime": m.uptime_s,
            };
            if !m.arbiter {
                d.insert("optime", optime(m.optime_ms, f.term));
                d.insert("optimeDate", date(m.optime_ms));
                d.insert("optimeDurable", optime(m.optime_ms, f.term));
                d.insert("optimeDurableDate", date(m.optime_ms));
            }
            d.insert("syncSourceHost", m.sync_source.clone().unwrap_or_default());
            d.insert(
                "syncSourceId",
                m.sync_source
                    .as_ref()
                    .and_then(|s| f.members.iter().find(|o| &o.name == s))
                    .map_or(-1, |o| o.id),
            );
            if let Some(e) = m.election_ms.filter(|_| m.state == MemberState::Primary) {
                d.insert(
                    "electionTime",
                    Timestamp {
                        time: (e / 1000) as u32,
                        increment: 1,
                    },
                );
                d.insert("electionDate", date(e));
            }
            d.insert("configVersion", f.set_version);
            d.insert("configTerm", f.term as i64);
            if m.is_self {
                d.insert("self", true);
            } else {
                d.insert("lastHeartbeat", date(f.now_ms));
                d.insert("pingMs", 0_i64);
            }
            Bson::Document(d)
        })
        .collect();
    let writable_voting = f
        .members
        .iter()
        .filter(|m| m.votes > 0 && !m.arbiter)
        .count() as i32;
    let voting = f.members.iter().filter(|m| m.votes > 0).count() as i32;
    doc! {
        "set": f.set_name.clone().unwrap_or_default(),
        "date": date(f.now_ms),
        "myState": state_str(f.state).1,
        "term": f.term as i64,
        "syncSourceHost": f.members.iter().find(|m| m.is_self).and_then(|m| m.sync_source.clone()).unwrap_or_default(),
        "heartbeatIntervalMillis": 2000_i64,
        "majorityVoteCount": voting / 2 + 1,
        "writeMajorityCount": voting / 2 + 1,
        "votingMembersCount": voting,
        "writableVotingMembersCount": writable_voting,
        "optimes": {
            "lastCommittedOpTime": optime(f.optime_ms, f.term),
            "appliedOpTime": optime(f.optime_ms, f.term),
            "durableOpTime": optime(f.optime_ms, f.term),
        },
        "members": members,
        "ok": 1.0,
    }
}

pub fn repl_set_get_config(f: &ProcessFacts) -> Document {
    let members: Vec<Bson> = f
        .members
        .iter()
        .map(|m| {
            Bson::Document(doc! {
                "_id": m.id,
                "host": m.name.clone(),
                "arbiterOnly": m.arbiter,
                "buildIndexes": true,
                "hidden": m.hidden,
                "priority": m.priority,
                "tags": {},
                "secondaryDelaySecs": m.secondary_delay_s,
                "votes": m.votes,
            })
        })
        .collect();
    doc! {
        "config": {
            "_id": f.set_name.clone().unwrap_or_default(),
            "version": f.set_version,
            "term": f.term as i64,
            "protocolVersion": 1_i64,
            "writeConcernMajorityJournalDefault": true,
            "members": members,
            "settings": {
                "chainingAllowed": true,
                "heartbeatIntervalMillis": 2000,
                "heartbeatTimeoutSecs": 10,
                "electionTimeoutMillis": 10000,
                "catchUpTimeoutMillis": -1,
            },
        },
        "ok": 1.0,
    }
}

pub fn server_status(f: &ProcessFacts) -> Document {
    let uptime_ms = f.now_ms.saturating_sub(f.started_ms);
    let mut d = doc! {
        "host": f.me.clone(),
        "version": f.version(),
        "process": if f.kind == ProcessKind::Mongos { "mongos" } else { "mongod" },
        "pid": 1_i64,
        "uptime": (uptime_ms / 1000) as f64,
        "uptimeMillis": uptime_ms as i64,
        "uptimeEstimate": (uptime_ms / 1000) as i64,
        "localTime": date(f.now_ms),
        "connections": {
            "current": f.connections_current as i32,
            "available": f.connections_available as i32,
            "totalCreated": f.connections_current as i64,
        },
    };
    if f.kind == ProcessKind::ReplicaSetMember {
        let mut repl = hello(f, false);
        repl.remove("localTime");
        repl.remove("maxWireVersion");
        repl.remove("minWireVersion");
        repl.remove("logicalSessionTimeoutMinutes");
        repl.remove("connectionId");
        repl.remove("readOnly");
        d.insert("repl", repl);
    }
    d.insert("ok", 1.0);
    d
}

/// The value of one documented parameter as mongod types it: the integers it keeps as `long long`
/// are `Int64`, other integers `Int32`, everything else the text.
fn parameter_bson(name: &str, value: &str) -> Bson {
    const LONG: &[&str] = &["cursorTimeoutMillis"];
    match value.parse::<i64>() {
        Ok(n) if LONG.contains(&name) => Bson::Int64(n),
        Ok(n) => i32::try_from(n).map_or(Bson::Int64(n), Bson::Int32),
        Err(_) => Bson::String(value.to_string()),
    }
}

/// Whether a `getParameter` asks for any of the documented parameters' values (the FCV and the
/// mechanisms need none: the drivers' and the mongodb plane's frequent FCV reads skip the store).
pub fn wants_parameter_values(cmd: &Document) -> bool {
    let all = match cmd.get("getParameter") {
        Some(Bson::String(s)) => s == "*",
        Some(Bson::Document(o)) => o.get_bool("allParameters").unwrap_or(false),
        _ => false,
    };
    all || crate::server::actions::parameters::TABLE.iter().any(|p| {
        p.name
            .strip_prefix("setParameter.")
            .is_some_and(|n| cmd.contains_key(n))
    })
}

/// `getParameter`: `{getParameter: 1, <name>: 1, …}`, `{getParameter: "*"}` or the document form
/// `{getParameter: {allParameters, showDetails}}`. Answers `featureCompatibilityVersion` (mongod
/// only), `authenticationMechanisms` and the process's `setParameter.*` parameters of the documented
/// set with their running values; nothing found is mongod's `InvalidOptions` (72).
pub fn get_parameter(f: &ProcessFacts, cmd: &Document, running: &[(&Param, String)]) -> Document {
    let (all, details) = match cmd.get("getParameter") {
        Some(Bson::String(s)) => (s == "*", false),
        Some(Bson::Document(o)) => (
            o.get_bool("allParameters").unwrap_or(false),
            o.get_bool("showDetails").unwrap_or(false),
        ),
        _ => (false, false),
    };
    let mut d = Document::new();
    let mut put = |name: &str, value: Bson, at_runtime: bool, at_startup: bool| {
        if all || cmd.contains_key(name) {
            let v = if details {
                Bson::Document(doc! {
                    "value": value,
                    "settableAtRuntime": at_runtime,
                    "settableAtStartup": at_startup,
                })
            } else {
                value
            };
            d.insert(name, v);
        }
    };
    if f.kind != ProcessKind::Mongos {
        put(
            "featureCompatibilityVersion",
            Bson::Document(doc! {"version": f.fcv.clone()}),
            false,
            false,
        );
    }
    put(
        "authenticationMechanisms",
        Bson::from(vec!["SCRAM-SHA-1", "SCRAM-SHA-256"]),
        false,
        true,
    );
    for (p, value) in running {
        if let Some(name) = p.name.strip_prefix("setParameter.") {
            put(name, parameter_bson(name, value), !p.restart, true);
        }
    }
    if d.is_empty() {
        return MongoError::new(ErrorCode::InvalidOptions, "no option found to get").to_document();
    }
    d.insert("ok", 1.0);
    d
}

/// `getCmdLineOpts`: the options the process runs with, as mongod parses its configuration file —
/// its port and replica set or cluster role, and every documented parameter's running value at its
/// dotted path (`setParameter` values as the text a configuration file holds).
pub fn cmd_line_opts(f: &ProcessFacts, role: ParamRole, running: &[(&Param, String)]) -> Document {
    fn put(d: &mut Document, path: &[&str], value: Bson) {
        match path {
            [] => {}
            [last] => {
                d.insert(*last, value);
            }
            [first, rest @ ..] => {
                if !matches!(d.get(*first), Some(Bson::Document(_))) {
                    d.insert(*first, Document::new());
                }
                if let Some(Bson::Document(inner)) = d.get_mut(*first) {
                    put(inner, rest, value);
                }
            }
        }
    }
    let mut parsed = Document::new();
    if let Some(port) =
        f.me.rsplit_once(':')
            .and_then(|(_, p)| p.parse::<i32>().ok())
    {
        put(&mut parsed, &["net", "port"], Bson::Int32(port));
    }
    if let Some(set) = &f.set_name {
        if f.kind == ProcessKind::ReplicaSetMember {
            put(
                &mut parsed,
                &["replication", "replSetName"],
                set.clone().into(),
            );
        }
    }
    match role {
        ParamRole::Cs => put(
            &mut parsed,
            &["sharding", "clusterRole"],
            "configsvr".into(),
        ),
        ParamRole::Db => put(&mut parsed, &["sharding", "clusterRole"], "shardsvr".into()),
        ParamRole::Normal | ParamRole::Mongos => {}
    }
    for (p, value) in running {
        let path: Vec<&str> = p.name.split('.').collect();
        let v = match path.as_slice() {
            ["setParameter", _] => Bson::String(value.clone()),
            _ => parameter_bson(p.name, value),
        };
        put(&mut parsed, &path, v);
    }
    let argv0 = if f.kind == ProcessKind::Mongos {
        "mongos"
    } else {
        "mongod"
    };
    doc! {"argv": [argv0], "parsed": parsed, "ok": 1.0}
}

/// `connectionStatus` for a connection authenticated as `user@db`, or not at all.
pub fn connection_status(user: Option<(&str, &str)>) -> Document {
    let (users, roles): (Vec<Bson>, Vec<Bson>) = match user {
        Some((u, db)) => (
            vec![Bson::Document(doc! {"user": u, "db": db})],
            vec![Bson::Document(doc! {"role": "root", "db": "admin"})],
        ),
        None => (Vec::new(), Vec::new()),
    };
    doc! {"authInfo": {"authenticatedUsers": users, "authenticatedUserRoles": roles}, "ok": 1.0}
}

#[cfg(test)]
mod tests {
    use super::super::facts::StatusMember;
    use super::*;

    fn member(id: i32, port: u16, state: MemberState) -> StatusMember {
        StatusMember {
            id,
            name: format!("127.0.0.1:{port}"),
            state,
            healthy: true,
            uptime_s: 100,
            optime_ms: 1_700_000_000_000,
            sync_source: (state == MemberState::Secondary).then(|| "127.0.0.1:27017".to_string()),
            election_ms: (state == MemberState::Primary).then_some(1_699_999_000_000),
            is_self: id == 0,
            priority: 1.0,
            votes: 1,
            hidden: false,
            arbiter: false,
            secondary_delay_s: 0,
        }
    }

    fn primary() -> ProcessFacts {
        ProcessFacts {
            kind: ProcessKind::ReplicaSetMember,
            me: "127.0.0.1:27017".into(),
            set_name: Some("mgset-1".into()),
            state: MemberState::Primary,
            writable: true,
            term: 3,
            set_version: 1,
            primary: Some("127.0.0.1:27017".into()),
            hosts: vec!["127.0.0.1:27017".into(), "127.0.0.1:27018".into()],
            passives: vec![],
            arbiters: vec![],
            hidden: false,
            kernel: "mongodb_20240119_4.4.19".into(),
            release: (4, 4, 19),
            fcv: "4.4".into(),
            now_ms: 1_700_000_000_500,
            started_ms: 1_699_000_000_000,
            optime_ms: 1_700_000_000_000,
            election_ms: Some(1_699_999_000_000),
            members: vec![
                member(0, 27017, MemberState::Primary),
                member(1, 27018, MemberState::Secondary),
            ],
            connections_current: 2,
            connections_available: 98,
        }
    }

    fn running(role: ParamRole, changed: &[(&str, &str)]) -> Vec<(&'static Param, String)> {
        crate::server::actions::parameters::TABLE
            .iter()
            .filter(|p| p.roles.contains(&role))
            .map(|p| {
                let v = changed
                    .iter()
                    .find(|(n, _)| *n == p.name)
                    .map_or(p.default, |(_, v)| *v);
                (p, v.to_string())
            })
            .collect()
    }

    #[test]
    fn get_parameter_answers_the_running_values_with_mongods_types() {
        let f = primary();
        let values = running(
            ParamRole::Normal,
            &[("setParameter.cursorTimeoutMillis", "300000")],
        );
        let r = get_parameter(
            &f,
            &doc! {"getParameter": 1, "cursorTimeoutMillis": 1, "flowControlTargetLagSeconds": 1},
            &values,
        );
        assert_eq!(r.get("cursorTimeoutMillis"), Some(&Bson::Int64(300_000)));
        assert_eq!(r.get("flowControlTargetLagSeconds"), Some(&Bson::Int32(10)));
        assert!(!r.contains_key("featureCompatibilityVersion"));
        let all = get_parameter(&f, &doc! {"getParameter": "*"}, &values);
        for name in [
            "featureCompatibilityVersion",
            "authenticationMechanisms",
            "cursorTimeoutMillis",
            "transactionLifetimeLimitSeconds",
        ] {
            assert!(all.contains_key(name), "{name}: {all}");
        }
        let detailed = get_parameter(
            &f,
            &doc! {"getParameter": {"showDetails": true}, "featureCompatibilityVersion": 1},
            &values,
        );
        assert_eq!(
            detailed
                .get_document("featureCompatibilityVersion")
                .unwrap(),
            &doc! {"value": {"version": "4.4"}, "settableAtRuntime": false, "settableAtStartup": false}
        );
        // A mongos has no FCV and none of the mongod-only parameters: nothing found is mongod's error.
        let mongos = ProcessFacts {
            kind: ProcessKind::Mongos,
            ..primary()
        };
        let none = get_parameter(
            &mongos,
            &doc! {"getParameter": 1, "featureCompatibilityVersion": 1, "transactionLifetimeLimitSeconds": 1},
            &running(ParamRole::Mongos, &[]),
        );
        assert_eq!(none.get_i32("code").unwrap(), 72);
        assert_eq!(none.get_str("errmsg").unwrap(), "no option found to get");
    }

    #[test]
    fn only_requests_for_documented_parameters_read_their_values() {
        assert!(!wants_parameter_values(
            &doc! {"getParameter": 1, "featureCompatibilityVersion": 1}
        ));
        assert!(!wants_parameter_values(
            &doc! {"getParameter": {"showDetails": true}, "authenticationMechanisms": 1}
        ));
        assert!(wants_parameter_values(
            &doc! {"getParameter": 1, "cursorTimeoutMillis": 1}
        ));
        assert!(wants_parameter_values(&doc! {"getParameter": "*"}));
        assert!(wants_parameter_values(
            &doc! {"getParameter": {"allParameters": true}}
        ));
    }

    #[test]
    fn cmd_line_opts_nest_the_running_values_at_their_paths() {
        let values = running(
            ParamRole::Db,
            &[
                ("net.maxIncomingConnections", "20000"),
                ("setParameter.cursorTimeoutMillis", "300000"),
            ],
        );
        let r = cmd_line_opts(&primary(), ParamRole::Db, &values);
        let parsed = r.get_document("parsed").unwrap();
        let net = parsed.get_document("net").unwrap();
        assert_eq!(net.get_i32("port").unwrap(), 27017);
        assert_eq!(net.get_i32("maxIncomingConnections").unwrap(), 20000);
        assert_eq!(
            net.get_document("compression")
                .unwrap()
                .get_str("compressors")
                .unwrap(),
            "snappy,zstd,zlib"
        );
        assert_eq!(
            parsed
                .get_document("setParameter")
                .unwrap()
                .get_str("cursorTimeoutMillis")
                .unwrap(),
            "300000"
        );
        assert_eq!(
            parsed
                .get_document("sharding")
                .unwrap()
                .get_str("clusterRole")
                .unwrap(),
            "shardsvr"
        );
        assert_eq!(
            parsed
                .get_document("replication")
                .unwrap()
                .get_str("replSetName")
                .unwrap(),
            "mgset-1"
        );
    }

    #[test]
    fn a_primarys_hello_carries_what_sdam_needs() {
        let h = hello(&primary(), false);
        assert!(h.get_bool("isWritablePrimary").unwrap());
        assert!(!h.get_bool("secondary").unwrap());
        assert_eq!(h.get_str("setName").unwrap(), "mgset-1");
        assert_eq!(h.get_i32("maxWireVersion").unwrap(), 9);
        assert_eq!(
            h.get_object_id("electionId").unwrap().to_hex(),
            "7fffffff0000000000000003"
        );
        assert_eq!(h.get_str("me").unwrap(), "127.0.0.1:27017");
        let legacy = hello(&primary(), true);
        assert_eq!(
            (
                legacy.get_bool("ismaster").unwrap(),
                legacy.contains_key("isWritablePrimary")
            ),
            (true, false)
        );
    }

    #[test]
    fn a_primary_handing_off_is_not_writable_and_a_mongos_says_isdbgrid() {
        let mut f = primary();
        f.writable = false;
        assert!(!hello(&f, false).get_bool("isWritablePrimary").unwrap());
        f.kind = ProcessKind::Mongos;
        let h = hello(&f, false);
        assert_eq!(
            (h.get_str("msg").unwrap(), h.contains_key("setName")),
            ("isdbgrid", false)
        );
    }

    #[test]
    fn status_and_build_info_agree_with_the_facts() {
        let s = repl_set_get_status(&primary());
        let members = s.get_array("members").unwrap();
        let second = members[1].as_document().unwrap();
        assert_eq!(
            (
                second.get_str("stateStr").unwrap(),
                second.get_i32("state").unwrap()
            ),
            ("SECONDARY", 2)
        );
        assert_eq!(second.get_str("syncSourceHost").unwrap(), "127.0.0.1:27017");
        assert!(members[0]
            .as_document()
            .unwrap()
            .contains_key("electionDate"));
        assert_eq!(build_info(&primary()).get_str("version").unwrap(), "4.4.19");
        let status = server_status(&primary());
        assert_eq!(
            (
                status.get_str("process").unwrap(),
                status.get_f64("uptime").unwrap()
            ),
            ("mongod", 1_000_000.0)
        );
        assert_eq!(
            status
                .get_document("repl")
                .unwrap()
                .get_str("setName")
                .unwrap(),
            "mgset-1"
        );
    }
}
