//! An instance's IP whitelist (`ModifySecurityIps`), as the vendor keeps it — named groups of IPv4
//! addresses and CIDR blocks — and as every listener of the instance enforces it: a client whose
//! address is in no group is refused (its connection is closed before a byte is read).
//!
//! An instance whose whitelist was never set admits every client that can reach its ports (loopback
//! by default, `[wire] bind`), as ddsd always did; the vendor's new instances start with `127.0.0.1`.
//! Once set, the groups are enforced; a whitelist emptied of every address admits nobody.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use crate::server::store::{Store, StoreResult};

/// Addresses per group (the vendor's limit).
pub const MAX_IPS: usize = 1_000;
/// Groups per instance.
pub const MAX_GROUPS: usize = 50;

/// One IPv4 address or CIDR block, as written (`10.0.0.1`, `10.0.0.0/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Block {
    /// `a.b.c.d` or `a.b.c.d/n` (n from 0 to 32).
    pub fn parse(s: &str) -> Option<Block> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => {
                if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                (a, p.parse::<u8>().ok().filter(|p| *p <= 32)?)
            }
            None => (s, 32),
        };
        Some(Block {
            addr: addr.parse().ok()?,
            prefix,
        })
    }

    fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let v4 = match ip {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4,
                None => return false,
            },
        };
        (u32::from(v4) & self.mask()) == (u32::from(self.addr) & self.mask())
    }
}

/// One whitelist group as stored and described.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    pub attribute: String,
    /// As given (deduplicated, in order).
    pub ips: Vec<String>,
}

fn setting_key(instance_id: &str) -> String {
    format!(
        "{}security_ips",
        crate::server::store::instance_setting_prefix(instance_id)
    )
}

/// The stored groups, `None` when the whitelist was never set.
pub async fn load(store: &dyn Store, instance_id: &str) -> StoreResult<Option<Vec<Group>>> {
    Ok(store
        .get_setting(&setting_key(instance_id))
        .await?
        .and_then(|t| serde_json::from_str(&t).ok()))
}

/// The setting's key and text for `groups` (the handler writes it with its idempotency record).
pub fn encoded(instance_id: &str, groups: &[Group]) -> (String, String) {
    (
        setting_key(instance_id),
        serde_json::to_string(groups).unwrap_or_else(|_| "[]".into()),
    )
}

/// What a listener checks: `None` admits everyone.
#[derive(Debug, Default)]
pub struct Whitelist {
    blocks: RwLock<Option<Vec<Block>>>,
}

impl Whitelist {
    pub fn set(&self, groups: Option<&[Group]>) {
        let blocks = groups.map(|gs| {
            gs.iter()
                .flat_map(|g| g.ips.iter())
                .filter_map(|ip| Block::parse(ip))
                .collect()
        });
        *self.blocks.write().unwrap_or_else(|e| e.into_inner()) = blocks;
    }

    pub fn admits(&self, ip: IpAddr) -> bool {
        match &*self.blocks.read().unwrap_or_else(|e| e.into_inner()) {
            None => true,
            Some(blocks) => blocks.iter().any(|b| b.contains(ip)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_parse_and_match() {
        let b = Block::parse("10.1.0.0/16").unwrap();
        assert!(b.contains("10.1.200.3".parse().unwrap()));
        assert!(!b.contains("10.2.0.1".parse().unwrap()));
        assert!(Block::parse("127.0.0.1")
            .unwrap()
            .contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(Block::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        for bad in [
            "10.0.0.0/33",
            "10.0.0",
            "10.0.0.1/",
            "a.b.c.d",
            "::1",
            "10.0.0.1/+8",
        ] {
            assert!(Block::parse(bad).is_none(), "{bad}");
        }
        let w = Whitelist::default();
        assert!(w.admits("10.0.0.1".parse().unwrap()));
        let g = Group {
            name: "default".into(),
            attribute: String::new(),
            ips: vec!["192.168.0.0/24".into()],
        };
        w.set(Some(std::slice::from_ref(&g)));
        assert!(!w.admits("127.0.0.1".parse().unwrap()));
        assert!(w.admits("192.168.0.9".parse().unwrap()));
        w.set(Some(&[]));
        assert!(!w.admits("192.168.0.9".parse().unwrap()));
    }
}
