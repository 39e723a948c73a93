//! The domain: instances, their topology and members, and the vendor's enumerations.
//!
//! Wire strings are kept verbatim (`MinorVersionUpgrading`, `replicate`, `HH:mmZ`) so a grep of the vendor
//! documentation finds the code. Everything here is plain data (serde) so the store can persist it as is.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Defines a fieldless enum whose variants map 1:1 to vendor wire strings.
macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name { $( #[serde(rename = $wire)] $variant ),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The vendor's wire string.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                match s { $($wire => Ok($name::$variant),)+ _ => Err(UnknownValue(s.chars().take(64).collect())) }
            }
        }
    };
}

/// A string that is not one of an enumeration's wire values (truncated to 64 chars for messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value {0:?}")]
pub struct UnknownValue(pub String);

wire_enum!(
    /// `DBInstanceStatus`, the full vendor state table (instance and node `Status`).
    DbInstanceStatus {
        Creating => "Creating",
        DbInstanceClassChanging => "DBInstanceClassChanging",
        DbInstanceNetTypeChanging => "DBInstanceNetTypeChanging",
        Deleting => "Deleting",
        EngineVersionUpgrading => "EngineVersionUpgrading",
        GuardSwitching => "GuardSwitching",
        HaSwitching => "HASwitching",
        Importing => "Importing",
        ImportingFromOthers => "ImportingFromOthers",
        LinkSwitching => "LinkSwitching",
        MinorVersionUpgrading => "MinorVersionUpgrading",
        NetCreating => "NET_CREATING",
        NetDeleting => "NET_DELETING",
        NodeCreating => "NodeCreating",
        NodeDeleting => "NodeDeleting",
        Rebooting => "Rebooting",
        NodeRestarting => "NodeRestarting",
        Restoring => "Restoring",
        Running => "Running",
        SslModifying => "SSLModifying",
        TempDbInstanceCreating => "TempDBInstanceCreating",
        Transing => "Transing",
        TransingToOthers => "TransingToOthers",
        AuditLogOpening => "AuditLogOpening",
        AuditLogClosing => "AuditLogClosing",
    }
);

wire_enum!(
    /// `DBInstanceType`. Standalones are `replicate` with `ReplicationFactor` 1, as the vendor lists them.
    DbInstanceType {
        Replicate => "replicate",
        Sharding => "sharding",
    }
);

wire_enum!(
    /// `LockMode`.
    LockMode {
        Unlock => "Unlock",
        ManualLock => "ManualLock",
        LockByExpiration => "LockByExpiration",
        LockByRestoration => "LockByRestoration",
        LockByDiskQuota => "LockByDiskQuota",
        Released => "Released",
    }
);

wire_enum!(
    /// `ChargeType`.
    ChargeType {
        PostPaid => "PostPaid",
        PrePaid => "PrePaid",
    }
);

wire_enum!(
    /// `ReplicaSetRole` as DescribeDBInstanceAttribute reports connection endpoints.
    ReplicaSetRole {
        Primary => "Primary",
        Secondary => "Secondary",
        Hidden => "Hidden",
        ReadOnly => "ReadOnly",
    }
);

/// A time of day in UTC, minutes since midnight, written `HH:mmZ` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UtcTimeOfDay(u16);

impl UtcTimeOfDay {
    pub const MINUTES_PER_DAY: u16 = 24 * 60;

    pub fn from_minutes(minutes: u16) -> Option<Self> {
        (minutes < Self::MINUTES_PER_DAY).then_some(Self(minutes))
    }
    pub fn minutes(self) -> u16 {
        self.0
    }
}

impl FromStr for UtcTimeOfDay {
    type Err = UnknownValue;
    /// Accepts exactly `HH:mmZ` (00–23, 00–59), the vendor's maintenance-window format.
    fn from_str(s: &str) -> Result<Self, UnknownValue> {
        let bad = || UnknownValue(s.chars().take(64).collect());
        let b = s.as_bytes();
        if b.len() != 6
            || b[2] != b':'
            || b[5] != b'Z'
            || !b[..2].iter().chain(&b[3..5]).all(u8::is_ascii_digit)
        {
            return Err(bad());
        }
        let h = u16::from(b[0] - b'0') * 10 + u16::from(b[1] - b'0');
        let m = u16::from(b[3] - b'0') * 10 + u16::from(b[4] - b'0');
        if h > 23 || m > 59 {
            return Err(bad());
        }
        Ok(Self(h * 60 + m))
    }
}

impl fmt::Display for UtcTimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}Z", self.0 / 60, self.0 % 60)
    }
}
impl TryFrom<String> for UtcTimeOfDay {
    type Error = UnknownValue;
    fn try_from(s: String) -> Result<Self, UnknownValue> {
        s.parse()
    }
}
impl From<UtcTimeOfDay> for String {
    fn from(t: UtcTimeOfDay) -> String {
        t.to_string()
    }
}

/// The maintenance window (`MaintainStartTime`–`MaintainEndTime`, UTC). The vendor requires end > start,
/// so a window never wraps midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintainWindow {
    pub start: UtcTimeOfDay,
    pub end: UtcTimeOfDay,
}

impl MaintainWindow {
    /// `None` when `end` is not later than `start`.
    pub fn new(start: UtcTimeOfDay, end: UtcTimeOfDay) -> Option<Self> {
        (end > start).then_some(Self { start, end })
    }
    /// Whether `unix_ms` (UTC) falls inside the window.
    pub fn contains(&self, unix_ms: u64) -> bool {
        let minute = ((unix_ms / 60_000) % u64::from(UtcTimeOfDay::MINUTES_PER_DAY)) as u16;
        minute >= self.start.0 && minute < self.end.0
    }
    /// Milliseconds from `unix_ms` until the window next opens (0 when inside it).
    pub fn ms_until_open(&self, unix_ms: u64) -> u64 {
        if self.contains(unix_ms) {
            return 0;
        }
        let day_ms = u64::from(UtcTimeOfDay::MINUTES_PER_DAY) * 60_000;
        let into_day = unix_ms % day_ms;
        let start_ms = u64::from(self.start.0) * 60_000;
        if into_day < start_ms {
            start_ms - into_day
        } else {
            day_ms - into_day + start_ms
        }
    }
}

impl Default for MaintainWindow {
    /// The vendor's default window is early morning China time: 18:00Z–22:00Z.
    fn default() -> Self {
        Self {
            start: UtcTimeOfDay(18 * 60),
            end: UtcTimeOfDay(22 * 60),
        }
    }
}

/// How a member is configured in its replica set (`rs.conf()`), which decides how an upgrade treats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MemberKind {
    /// Electable data-bearing member (priority > 0). One of them is primary at a time.
    Electable,
    /// Hidden, priority 0, votes 1: the vendor's third member of a three-member set.
    Hidden,
    /// Hidden, priority 0, with `secondaryDelaySecs` > 0.
    Delayed,
    /// Read-only replica: priority 0, votes 0 (`ReadonlyReplicas`).
    ReadOnly,
    /// Arbiter: votes, holds no data.
    Arbiter,
}

impl MemberKind {
    pub fn votes(self) -> bool {
        !matches!(self, MemberKind::ReadOnly)
    }
    pub fn electable(self) -> bool {
        matches!(self, MemberKind::Electable)
    }
    pub fn data_bearing(self) -> bool {
        !matches!(self, MemberKind::Arbiter)
    }
}

/// One mongod process of a replica set (or the single process of a standalone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSpec {
    /// Process id, unique within the instance, e.g. `d-bp1a2b3c4d5e6f7g-0`.
    pub node_id: String,
    pub kind: MemberKind,
    /// `priority` in `rs.conf()`; 0 for anything not electable. Higher priority members take over after catch-up.
    pub priority: u8,
    /// `secondaryDelaySecs`; non-zero only for `Delayed`.
    pub delay_secs: u32,
    /// The kernel this process runs, as last recorded by the control plane (`CurrentKernelVersion` per node).
    pub kernel_version: String,
}

/// Which part of an instance a replica set is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReplicaSetKind {
    /// The replica set of a `replicate` instance.
    Instance,
    /// A shard of a sharded cluster (`ShardList`).
    Shard,
    /// The config server replica set of a sharded cluster (`ConfigserverList`).
    ConfigServer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaSetSpec {
    /// The replica set name (`ReplicaSetName`), unique within the instance.
    pub name: String,
    /// Vendor node id: the instance id for a replica-set instance, `d-…` for a shard, `cs-…` for config servers.
    pub node_id: String,
    pub kind: ReplicaSetKind,
    /// `NodeClass` / `DBInstanceClass`.
    pub class: String,
    /// `NodeStorage` / `DBInstanceStorage`, GB.
    pub storage_gb: u32,
    /// Members in `rs.conf()` order. At creation the first member is the primary.
    pub members: Vec<MemberSpec>,
}

impl ReplicaSetSpec {
    pub fn voting_members(&self) -> usize {
        self.members.iter().filter(|m| m.kind.votes()).count()
    }
    /// Votes needed to elect a primary (`majorityVoteCount`).
    pub fn majority_vote_count(&self) -> usize {
        self.voting_members() / 2 + 1
    }
    pub fn readonly_replicas(&self) -> usize {
        self.members
            .iter()
            .filter(|m| m.kind == MemberKind::ReadOnly)
            .count()
    }
}

/// One mongos of a sharded cluster (`MongosList`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MongosSpec {
    /// Vendor node id, `s-…`.
    pub node_id: String,
    pub class: String,
    pub kernel_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Topology {
    /// One mongod, no replica set (`ReplicationFactor` 1). Cannot be upgraded online.
    Standalone {
        member: MemberSpec,
    },
    ReplicaSet {
        replica_set: ReplicaSetSpec,
    },
    Sharded {
        config_server: ReplicaSetSpec,
        shards: Vec<ReplicaSetSpec>,
        mongos: Vec<MongosSpec>,
    },
}

impl Topology {
    pub fn instance_type(&self) -> DbInstanceType {
        match self {
            Topology::Sharded { .. } => DbInstanceType::Sharding,
            _ => DbInstanceType::Replicate,
        }
    }
    /// Replica sets in upgrade order: config servers first, then shards in their listed order.
    pub fn replica_sets(&self) -> Vec<&ReplicaSetSpec> {
        match self {
            Topology::Standalone { .. } => Vec::new(),
            Topology::ReplicaSet { replica_set } => vec![replica_set],
            Topology::Sharded {
                config_server,
                shards,
                ..
            } => std::iter::once(config_server).chain(shards).collect(),
        }
    }
    pub fn replica_sets_mut(&mut self) -> Vec<&mut ReplicaSetSpec> {
        match self {
            Topology::Standalone { .. } => Vec::new(),
            Topology::ReplicaSet { replica_set } => vec![replica_set],
            Topology::Sharded {
                config_server,
                shards,
                ..
            } => std::iter::once(config_server)
                .chain(shards.iter_mut())
                .collect(),
        }
    }
    pub fn mongos(&self) -> &[MongosSpec] {
        match self {
            Topology::Sharded { mongos, .. } => mongos,
            _ => &[],
        }
    }
    /// Every process's kernel version (mongod members and mongos).
    pub fn kernel_versions(&self) -> impl Iterator<Item = &str> {
        let standalone = match self {
            Topology::Standalone { member } => Some(member.kernel_version.as_str()),
            _ => None,
        };
        standalone
            .into_iter()
            .chain(
                self.replica_sets()
                    .into_iter()
                    .flat_map(|rs| rs.members.iter().map(|m| m.kernel_version.as_str())),
            )
            .chain(self.mongos().iter().map(|m| m.kernel_version.as_str()))
    }
    /// Sets the recorded kernel of one process; false when no process has that id.
    pub fn set_kernel_version(&mut self, node_id: &str, kernel: &str) -> bool {
        if let Topology::Standalone { member } = self {
            if member.node_id == node_id {
                member.kernel_version = kernel.to_string();
                return true;
            }
        }
        if let Topology::Sharded { mongos, .. } = self {
            if let Some(m) = mongos.iter_mut().find(|m| m.node_id == node_id) {
                m.kernel_version = kernel.to_string();
                return true;
            }
        }
        for rs in self.replica_sets_mut() {
            if let Some(m) = rs.members.iter_mut().find(|m| m.node_id == node_id) {
                m.kernel_version = kernel.to_string();
                return true;
            }
        }
        false
    }
}

/// A `Tag.N.Key` / `Tag.N.Value` pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// An ApsaraDB for MongoDB instance as ddsd keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// `DBInstanceId`, e.g. `dds-bp1a2b3c4d5e6f7g`.
    pub id: String,
    pub description: String,
    pub region_id: String,
    pub zone_id: String,
    /// `Engine`, always `MongoDB`.
    pub engine: String,
    /// `EngineVersion`, e.g. `4.4`.
    pub engine_version: String,
    /// `DBInstanceClass` (replica set / standalone); shards and mongos carry their own class.
    pub class: String,
    /// `DBInstanceStorage`, GB.
    pub storage_gb: u32,
    pub storage_type: String,
    pub storage_engine: String,
    pub charge_type: ChargeType,
    pub network_type: String,
    pub vpc_id: String,
    pub vswitch_id: String,
    pub resource_group_id: String,
    pub status: DbInstanceStatus,
    pub lock_mode: LockMode,
    pub maintain_window: MaintainWindow,
    /// `CreationTime`, `yyyy-MM-ddTHH:mm:ssZ`.
    pub creation_time: String,
    pub tags: Vec<Tag>,
    pub topology: Topology,
}

impl Instance {
    pub fn instance_type(&self) -> DbInstanceType {
        self.topology.instance_type()
    }
    pub fn is_standalone(&self) -> bool {
        matches!(self.topology, Topology::Standalone { .. })
    }
    /// Records a class change (`ModifyDBInstanceSpec` / `ModifyNodeSpec`): `node_id` `None` is the
    /// instance itself (`DBInstanceClass` / `DBInstanceStorage` and its replica set's), otherwise a
    /// shard, the config server or a mongos, by node id. A sharded cluster's `DBInstanceStorage` stays
    /// the shards' total. False when the instance has no such node.
    pub fn apply_spec(
        &mut self,
        node_id: Option<&str>,
        class: &str,
        storage_gb: Option<u32>,
    ) -> bool {
        match (node_id, &mut self.topology) {
            (None, Topology::Sharded { .. }) => return false,
            (None, Topology::Standalone { .. }) => {}
            (None, Topology::ReplicaSet { replica_set }) => {
                replica_set.class = class.to_string();
                if let Some(gb) = storage_gb {
                    replica_set.storage_gb = gb;
                }
            }
            (Some(node), topology) => {
                if let Topology::Sharded { mongos, .. } = topology {
                    if let Some(m) = mongos.iter_mut().find(|m| m.node_id == node) {
                        m.class = class.to_string();
                        return true;
                    }
                }
                let Some(rs) = topology
                    .replica_sets_mut()
                    .into_iter()
                    .find(|r| r.node_id == node || r.name == node)
                else {
                    return false;
                };
                rs.class = class.to_string();
                if let Some(gb) = storage_gb {
                    rs.storage_gb = gb;
                }
                if let Topology::Sharded { shards, .. } = topology {
                    self.storage_gb = shards.iter().map(|s| s.storage_gb).sum();
                }
                return true;
            }
        }
        self.class = class.to_string();
        if let Some(gb) = storage_gb {
            self.storage_gb = gb;
        }
        true
    }
    /// The instance-level `CurrentKernelVersion`: the version every process runs, or — on a mixed
    /// instance, e.g. after a failed upgrade — the oldest one still running, which is what bounds the
    /// instance's behaviour. `order` gives a kernel's position in the catalog (`None` = unknown, sorted first).
    pub fn current_kernel_version(&self, order: impl Fn(&str) -> Option<usize>) -> Option<String> {
        self.topology
            .kernel_versions()
            .min_by_key(|k| order(k))
            .map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_enums_round_trip() {
        for s in DbInstanceStatus::ALL {
            assert_eq!(s.as_str().parse::<DbInstanceStatus>(), Ok(*s));
            assert_eq!(
                serde_json::to_string(s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert_eq!(DbInstanceStatus::ALL.len(), 25);
        assert!("running".parse::<DbInstanceStatus>().is_err());
        assert_eq!(
            "sharding".parse::<DbInstanceType>(),
            Ok(DbInstanceType::Sharding)
        );
    }

    #[test]
    fn time_of_day_accepts_only_hh_mm_z() {
        assert_eq!("18:00Z".parse::<UtcTimeOfDay>().unwrap().minutes(), 1080);
        assert_eq!(
            "03:07Z".parse::<UtcTimeOfDay>().unwrap().to_string(),
            "03:07Z"
        );
        for bad in [
            "24:00Z", "18:60Z", "18:00", "8:00Z", "18:00z", "18-00Z", "", "18:00ZZ", "١٨:00Z",
        ] {
            assert!(bad.parse::<UtcTimeOfDay>().is_err(), "{bad}");
        }
    }

    #[test]
    fn maintain_window_contains_and_waits() {
        let w = MaintainWindow::new("18:00Z".parse().unwrap(), "22:00Z".parse().unwrap()).unwrap();
        let day = 86_400_000u64;
        assert!(w.contains(3 * day + 18 * 3_600_000));
        assert!(!w.contains(3 * day + 22 * 3_600_000));
        assert_eq!(w.ms_until_open(3 * day + 17 * 3_600_000), 3_600_000);
        assert_eq!(w.ms_until_open(3 * day + 23 * 3_600_000), 19 * 3_600_000);
        assert_eq!(w.ms_until_open(3 * day + 19 * 3_600_000), 0);
        assert!(
            MaintainWindow::new("22:00Z".parse().unwrap(), "18:00Z".parse().unwrap()).is_none()
        );
        assert!(
            MaintainWindow::new("18:00Z".parse().unwrap(), "18:00Z".parse().unwrap()).is_none()
        );
    }
}
