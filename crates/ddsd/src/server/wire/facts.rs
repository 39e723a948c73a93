//! What one simulated process is at one instant, in MongoDB's terms: the plain facts the reply
//! builders read. The simulated plane fills them from the fleet; nothing here knows the simulation.

use dds_engine::plane::{MemberState, Millis};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessKind {
    /// A `mongod` in a replica set (a shard's, the config servers', or a replica-set instance's).
    ReplicaSetMember,
    /// A `mongod` without a replica set.
    Standalone,
    Mongos,
}

/// One member as its own `replSetGetStatus` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusMember {
    pub id: i32,
    /// `host:port`.
    pub name: String,
    pub state: MemberState,
    pub healthy: bool,
    pub uptime_s: i64,
    pub optime_ms: Millis,
    pub sync_source: Option<String>,
    pub election_ms: Option<Millis>,
    pub is_self: bool,
    pub priority: f64,
    pub votes: i32,
    pub hidden: bool,
    pub arbiter: bool,
    pub secondary_delay_s: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProcessFacts {
    pub kind: ProcessKind,
    /// `host:port` this process answers as.
    pub me: String,
    pub set_name: Option<String>,
    /// The process's own state (current, not heartbeat-delayed).
    pub state: MemberState,
    /// A primary that accepts writes now (false during a stepdown's hand-off).
    pub writable: bool,
    pub term: u64,
    pub set_version: i32,
    /// The primary this member knows of, `host:port`.
    pub primary: Option<String>,
    /// Electable data-bearing members (`hosts`), priority-0 ones (`passives`), arbiters.
    pub hosts: Vec<String>,
    pub passives: Vec<String>,
    pub arbiters: Vec<String>,
    pub hidden: bool,
    /// The vendor kernel string, e.g. `mongodb_20240119_4.4.19`.
    pub kernel: String,
    /// The MongoDB release it runs, e.g. `(4, 4, 19)`.
    pub release: (u32, u32, u32),
    pub fcv: String,
    pub now_ms: Millis,
    pub started_ms: Millis,
    pub optime_ms: Millis,
    pub election_ms: Option<Millis>,
    pub members: Vec<StatusMember>,
    pub connections_current: u32,
    pub connections_available: u32,
}

impl ProcessFacts {
    pub fn version(&self) -> String {
        let (a, b, c) = self.release;
        format!("{a}.{b}.{c}")
    }

    pub fn is_primary(&self) -> bool {
        self.state == MemberState::Primary
    }
}

/// `maxWireVersion` of a MongoDB release, as the server reports it.
pub fn max_wire_version(release: (u32, u32, u32)) -> i32 {
    match (release.0, release.1) {
        (3, 6) => 6,
        (4, 0) => 7,
        (4, 2) => 8,
        (4, 4) => 9,
        (5, 0) => 13,
        (5, _) => 14 + (release.1 as i32 - 1),
        (6, 0) => 17,
        (6, _) => 18,
        (7, 0) => 21,
        (7, _) => 22,
        (8, 0) => 25,
        (8, _) => 26,
        (major, _) if major > 8 => 27,
        _ => 6,
    }
}

/// `stateStr` and the numeric `state` of `replSetGetStatus`.
pub fn state_str(s: MemberState) -> (&'static str, i32) {
    match s {
        MemberState::Startup => ("STARTUP", 0),
        MemberState::Primary => ("PRIMARY", 1),
        MemberState::Secondary => ("SECONDARY", 2),
        MemberState::Recovering => ("RECOVERING", 3),
        MemberState::Startup2 => ("STARTUP2", 5),
        MemberState::Arbiter => ("ARBITER", 7),
        MemberState::Down => ("(not reachable/healthy)", 8),
        MemberState::Rollback => ("ROLLBACK", 9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_versions_follow_mongodb_releases() {
        assert_eq!(max_wire_version((4, 4, 19)), 9);
        assert_eq!(max_wire_version((4, 2, 1)), 8);
        assert_eq!(max_wire_version((5, 0, 3)), 13);
        assert_eq!(max_wire_version((6, 0, 0)), 17);
        assert_eq!(max_wire_version((7, 0, 2)), 21);
        assert_eq!(max_wire_version((8, 0, 0)), 25);
    }
}
