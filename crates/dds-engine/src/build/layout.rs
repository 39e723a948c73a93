//! The member layout of a replica set as the vendor deploys it (see the `build` module docs): voters with
//! exactly one hidden member, then the read-only members. Shared by the created instances and the test
//! fixtures, so both get the vendor's shapes.

use super::ids::member_id;
use crate::model::{MemberKind, MemberSpec};

/// Members of a replica set in `rs.conf()` order, laid out as the vendor does (see the module docs).
/// `replication_factor` is the number of voting members (3, 5 or 7; anything else is treated as 3 voters
/// of which the last is hidden — callers validate first).
pub fn replica_set_members(
    replica_set_node_id: &str,
    replication_factor: u32,
    readonly_replicas: u32,
    kernel_version: &str,
) -> Vec<MemberSpec> {
    let voters = replication_factor.max(3) as usize;
    let mut members = Vec::with_capacity(voters + readonly_replicas as usize);
    for i in 0..voters {
        let kind = if i + 1 == voters {
            MemberKind::Hidden
        } else {
            MemberKind::Electable
        };
        members.push(MemberSpec {
            node_id: member_id(replica_set_node_id, i),
            kind,
            priority: u8::from(kind == MemberKind::Electable),
            delay_secs: 0,
            kernel_version: kernel_version.to_string(),
        });
    }
    for i in voters..voters + readonly_replicas as usize {
        members.push(MemberSpec {
            node_id: member_id(replica_set_node_id, i),
            kind: MemberKind::ReadOnly,
            priority: 0,
            delay_secs: 0,
            kernel_version: kernel_version.to_string(),
        });
    }
    members
}
