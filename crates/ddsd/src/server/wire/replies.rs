//! The replies of the server-state commands (`hello`, `buildInfo`, `replSetGetStatus`,
//! `replSetGetConfig`, `serverStatus`, `getParameter`, `connectionStatus`, `hostInfo`), built from
//! [`ProcessFacts`] with the field names and BSON types mongod uses, because drivers' discovery and
//! server selection run on them.

use bson::{doc, oid::ObjectId, Bson, DateTime, Document, Timestamp};

use super::facts::{max_wire_version, state_str, ProcessFacts, ProcessKind};
use dds_engine::plane::{MemberState, Millis};

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

/// `getParameter`: `featureCompatibilityVersion` (mongod only) and a few read-only facts.
pub fn get_parameter(f: &ProcessFacts, cmd: &Document) -> Document {
    let all = matches!(cmd.get("getParameter"), Some(Bson::String(s)) if s == "*");
    let mut d = Document::new();
    if (all || cmd.contains_key("featureCompatibilityVersion")) && f.kind != ProcessKind::Mongos {
        d.insert(
            "featureCompatibilityVersion",
            doc! {"version": f.fcv.clone()},
        );
    }
    if all || cmd.contains_key("authenticationMechanisms") {
        d.insert("authenticationMechanisms", ["SCRAM-SHA-1", "SCRAM-SHA-256"]);
    }
    d.insert("ok", 1.0);
    d
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
