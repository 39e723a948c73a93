//! Vendor-style ids: `dds-…` instances, `d-…` shards, `cs-…` config server replica sets, `s-…` mongos and
//! `<replica set node id>-<index>` members. The random part comes from an [`IdSource`], never from a global
//! random source; kept apart from the layout and the parameter checks because ids are all that consumes
//! randomness.

/// Source of the random part of ids. Any `rand` RNG is one; tests may use a counter.
pub trait IdSource {
    /// `len` characters from `[0-9a-z]`.
    fn alphanumeric(&mut self, len: usize) -> String;
}

impl<R: rand::RngCore + ?Sized> IdSource for R {
    fn alphanumeric(&mut self, len: usize) -> String {
        const CHARS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        (0..len)
            .map(|_| CHARS[(self.next_u32() % CHARS.len() as u32) as usize] as char)
            .collect()
    }
}

/// The two-letter code in the vendor's ids for a region (`bp` for cn-hangzhou). Regions without a known
/// letter-only code get two letters derived from the region id, stable across runs.
pub fn region_code(region_id: &str) -> String {
    let known = match region_id {
        "cn-hangzhou" => Some("bp"),
        "cn-shanghai" => Some("uf"),
        "cn-shenzhen" => Some("wz"),
        "eu-central-1" => Some("gw"),
        "us-west-1" => Some("rj"),
        _ => None,
    };
    if let Some(code) = known {
        return code.to_string();
    }
    // FNV-1a, so the code does not depend on the process or the Rust version.
    let h = region_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let a = (b'a' + (h % 26) as u8) as char;
    let b = (b'a' + ((h / 26) % 26) as u8) as char;
    format!("{a}{b}")
}

fn node_id(prefix: &str, region_id: &str, ids: &mut dyn IdSource) -> String {
    format!(
        "{prefix}-{}{}",
        region_code(region_id),
        ids.alphanumeric(14)
    )
}

/// `DBInstanceId`, e.g. `dds-bp1a2b3c4d5e6f7g`.
pub fn instance_id(region_id: &str, ids: &mut dyn IdSource) -> String {
    node_id("dds", region_id, ids)
}
/// A shard's `NodeId`, `d-…`.
pub fn shard_id(region_id: &str, ids: &mut dyn IdSource) -> String {
    node_id("d", region_id, ids)
}
/// The config server replica set's `NodeId`, `cs-…`.
pub fn config_server_id(region_id: &str, ids: &mut dyn IdSource) -> String {
    node_id("cs", region_id, ids)
}
/// A mongos `NodeId`, `s-…`.
pub fn mongos_id(region_id: &str, ids: &mut dyn IdSource) -> String {
    node_id("s", region_id, ids)
}
/// A mongod member of a replica set: `<replica set node id>-<index>`.
pub fn member_id(replica_set_node_id: &str, index: usize) -> String {
    format!("{replica_set_node_id}-{index}")
}

pub(super) fn digits(ids: &mut dyn IdSource, len: usize) -> String {
    // Map the alphanumeric source onto digits so one id source serves every id shape.
    ids.alphanumeric(len)
        .bytes()
        .map(|b| (b'0' + (b % 10)) as char)
        .collect()
}
