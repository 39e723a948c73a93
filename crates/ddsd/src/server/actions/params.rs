//! Reading request parameters: presence, integers, booleans, the flattened 1-based lists the SDKs
//! send (`ReplicaSet.2.Class`, `Tag.1.Key`), and the `ClientToken` fingerprint.
//!
//! Legacy SDKs send optional parameters they were not given as empty strings, so an empty value
//! counts as absent everywhere.

use crate::server::actions::errors::ApiError;
use sha2::{Digest, Sha256};

use super::Params;

/// An optional parameter; an empty value counts as absent (legacy SDKs send empty optionals).
pub fn optional<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// A required parameter, else `Missing<Name>` (400) as the POP gateway answers.
pub fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str, ApiError> {
    optional(params, name).ok_or_else(|| ApiError::missing(name))
}

/// The request of the actions that take only `DBInstanceId`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRequest {
    pub db_instance_id: String,
}

impl super::FromParams for InstanceRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        Ok(Self {
            db_instance_id: required(params, "DBInstanceId")?.to_string(),
        })
    }
}

/// Client text echoed in a message is cut short and stripped of control characters.
pub fn clip(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect::<String>()
}

/// A non-negative decimal integer: ASCII digits only (no sign, no spaces), at most `max`.
pub fn parse_u32(name: &str, value: &str, max: u32) -> Result<u32, ApiError> {
    parse_u32_in(name, value, 0, max)
}

/// As [`parse_u32`], from `min` to `max`; the message states the range that is really accepted.
pub fn parse_u32_in(name: &str, value: &str, min: u32, max: u32) -> Result<u32, ApiError> {
    let bad = || {
        ApiError::invalid_parameter(
            name,
            format!(
                "Expected an integer from {min} to {max}, got \"{}\".",
                clip(value)
            ),
        )
    };
    if value.is_empty() || value.len() > 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    value
        .parse::<u64>()
        .ok()
        .filter(|&v| v >= u64::from(min) && v <= u64::from(max))
        .map(|v| v as u32)
        .ok_or_else(bad)
}

/// An optional integer parameter.
pub fn optional_u32(params: &Params, name: &str, max: u32) -> Result<Option<u32>, ApiError> {
    optional(params, name)
        .map(|v| parse_u32(name, v, max))
        .transpose()
}

/// `true` / `false` (any case), as the SDKs serialise booleans.
pub fn optional_bool(params: &Params, name: &str) -> Result<Option<bool>, ApiError> {
    match optional(params, name) {
        None => Ok(None),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(v) => Err(ApiError::invalid_parameter(
            name,
            format!("Expected true or false, got \"{}\".", clip(v)),
        )),
    }
}

/// One entry of a flattened list: field name → value (empty values dropped).
pub type ListEntry = acs_rpc::ListEntry;

/// Reads `<prefix>.N.<Field>` parameters into entries 1..=n; the rules (and their tests) live in
/// [`acs_rpc::indexed_list`]: `N` from 1 to `max_entries` without leading zeros, known fields
/// only, no gaps, refusals are 400 `InvalidParameter` naming the parameter.
pub fn indexed_list(
    params: &Params,
    prefix: &str,
    fields: &[&str],
    max_entries: usize,
) -> Result<Vec<ListEntry>, ApiError> {
    acs_rpc::indexed_list(params, prefix, fields, max_entries).map_err(ApiError::from)
}

/// `Tag.N.Key` / `Tag.N.Value`, N from 1 to `max`; a value without a key is refused.
pub fn tags(params: &Params, max: usize) -> Result<Vec<(String, Option<String>)>, ApiError> {
    let list = indexed_list(params, "Tag", &["Key", "Value"], max)?;
    list.into_iter()
        .enumerate()
        .map(|(i, mut e)| {
            let key = e.remove("Key").ok_or_else(|| {
                ApiError::invalid_parameter(
                    &format!("Tag.{}.Key", i + 1),
                    "Every Tag.N needs a Key.",
                )
            })?;
            Ok((key, e.remove("Value")))
        })
        .collect()
}

/// Parameters that never change what a request means: accepted, ignored, and left out of the
/// `ClientToken` fingerprint.
const IGNORED: &[&str] = &[
    "ClientToken",
    "OwnerId",
    "OwnerAccount",
    "ResourceOwnerId",
    "ResourceOwnerAccount",
];

/// A digest of the request's business parameters (sorted, empty values dropped, ignorable ones
/// left out), so a retried request matches its original whichever SDK or signature sent it.
pub fn fingerprint(params: &Params) -> String {
    let mut h = Sha256::new();
    for (k, v) in params {
        if v.is_empty() || IGNORED.contains(&k.as_str()) {
            continue;
        }
        h.update((k.len() as u64).to_be_bytes());
        h.update(k.as_bytes());
        h.update((v.len() as u64).to_be_bytes());
        h.update(v.as_bytes());
    }
    hex::encode(h.finalize())
}

/// `MaintainStartTime` / `MaintainEndTime` (`HH:mmZ`, UTC; the end later than the start): a window
/// as `ModifyDBInstanceMaintainTime` and `ModifyActiveOperationMaintenanceConfig` take it.
pub fn maintain_window(params: &Params) -> Result<dds_engine::model::MaintainWindow, ApiError> {
    let time_of_day = |name: &str| {
        let v = required(params, name)?;
        v.parse::<dds_engine::model::UtcTimeOfDay>().map_err(|_| {
            ApiError::invalid_parameter(
                name,
                format!("Use HH:mmZ in UTC, e.g. 18:00Z; got \"{}\".", clip(v)),
            )
        })
    };
    let start = time_of_day("MaintainStartTime")?;
    let end = time_of_day("MaintainEndTime")?;
    dds_engine::model::MaintainWindow::new(start, end).ok_or_else(|| {
        ApiError::invalid_parameter(
            "MaintainEndTime",
            format!("The end time must be later than the start time ({start})."),
        )
    })
}

/// Required `start` and `end` times (as [`utc_ms`]), the end later than the start.
pub fn time_range(params: &Params, start: &str, end: &str) -> Result<(u64, u64), ApiError> {
    let start_ms = utc_ms(params, start)?;
    let end_ms = utc_ms(params, end)?;
    if end_ms <= start_ms {
        return Err(ApiError::invalid_parameter(
            end,
            format!("{end} must be later than {start}."),
        ));
    }
    Ok((start_ms, end_ms))
}

/// A required `yyyy-MM-ddTHH:mm:ssZ` (or `yyyy-MM-ddTHH:mmZ`) UTC time, as Unix milliseconds.
pub fn utc_ms(params: &Params, name: &str) -> Result<u64, ApiError> {
    parse_utc_ms(name, required(params, name)?)
}

/// [`utc_ms`] of a value already read.
pub fn parse_utc_ms(name: &str, v: &str) -> Result<u64, ApiError> {
    let with_seconds =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    let without = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]Z");
    let t = time::PrimitiveDateTime::parse(v, with_seconds)
        .or_else(|_| time::PrimitiveDateTime::parse(v, without))
        .map_err(|_| {
            ApiError::invalid_parameter(
                name,
                format!("Expected yyyy-MM-ddTHH:mm:ssZ (UTC), got \"{}\".", clip(v)),
            )
        })?;
    u64::try_from(t.assume_utc().unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| ApiError::invalid_parameter(name, "Before 1970."))
}

/// Unix milliseconds as the vendor writes a time: `yyyy-MM-ddTHH:mm:ssZ`.
pub fn wall_time(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    acs_rpc::format_timestamp(t)
}

/// The wall clock in Unix milliseconds.
pub fn wall_now_ms() -> u64 {
    u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use acs_rpc::{Format, Scheme, Verified};

    pub(crate) fn req(action: &str, params: &[(&str, &str)]) -> Verified {
        req_as(action, "testid", params)
    }

    pub(crate) fn req_as(action: &str, key: &str, params: &[(&str, &str)]) -> Verified {
        Verified {
            action: action.into(),
            version: "2015-12-01".into(),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            format: Format::Json,
            access_key_id: key.into(),
            scheme: Scheme::V1,
            nonce: "n".into(),
            timestamp: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    const FIELDS: &[&str] = &["Class", "Storage", "ReadonlyReplicas"];

    #[test]
    fn lists_are_read_in_order_with_empty_values_dropped() {
        let r = req(
            "X",
            &[
                ("ReplicaSet.2.Class", "b"),
                ("ReplicaSet.1.Class", "a"),
                ("ReplicaSet.1.Storage", "20"),
                ("ReplicaSet.2.ReadonlyReplicas", ""),
                ("ReplicaSet.10.Class", "j"),
                ("ReplicaSet.3.Class", "c"),
                ("ReplicaSet.4.Class", "d"),
                ("ReplicaSet.5.Class", "e"),
                ("ReplicaSet.6.Class", "f"),
                ("ReplicaSet.7.Class", "g"),
                ("ReplicaSet.8.Class", "h"),
                ("ReplicaSet.9.Class", "i"),
                ("Other", "x"),
            ],
        );
        let l = indexed_list(&r.params, "ReplicaSet", FIELDS, 32).unwrap();
        assert_eq!(l.len(), 10);
        assert_eq!(l[0]["Class"], "a");
        assert_eq!(l[0]["Storage"], "20");
        assert_eq!(l[1].get("ReadonlyReplicas"), None);
        // Numeric, not lexicographic, order: entry 10 is last.
        assert_eq!(l[9]["Class"], "j");
        assert!(
            indexed_list(&req("X", &[]).params, "ReplicaSet", FIELDS, 32)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn malformed_lists_name_the_parameter() {
        for (params, names) in [
            (vec![("ReplicaSet.0.Class", "a")], "ReplicaSet.0.Class"),
            (vec![("ReplicaSet.01.Class", "a")], "ReplicaSet.01.Class"),
            (vec![("ReplicaSet.x.Class", "a")], "ReplicaSet.x.Class"),
            (vec![("ReplicaSet.33.Class", "a")], "ReplicaSet.33.Class"),
            (vec![("ReplicaSet.-1.Class", "a")], "ReplicaSet.-1.Class"),
            (vec![("ReplicaSet.1.Colour", "a")], "ReplicaSet.1.Colour"),
            (vec![("ReplicaSet.1", "a")], "ReplicaSet.1"),
            (vec![("ReplicaSet", "a")], "ReplicaSet"),
            (
                vec![("ReplicaSet.1.Class", "a"), ("ReplicaSet.3.Class", "c")],
                "ReplicaSet.2",
            ),
        ] {
            let e = indexed_list(&req("X", &params).params, "ReplicaSet", FIELDS, 32).unwrap_err();
            assert_eq!(
                (e.code(), e.status()),
                ("InvalidParameter", 400),
                "{params:?}"
            );
            assert!(
                e.message().contains(&format!("\"{names}\"")),
                "{params:?}: {}",
                e.message()
            );
        }
    }

    #[test]
    fn integers_and_booleans() {
        assert_eq!(parse_u32("P", "30", 100).unwrap(), 30);
        for bad in [
            "",
            "-1",
            "+1",
            " 1",
            "1.0",
            "abc",
            "101",
            "99999999999",
            "１",
        ] {
            let e = parse_u32("P", bad, 100).unwrap_err();
            assert_eq!(e.code(), "InvalidParameter", "{bad}");
        }
        assert_eq!(parse_u32_in("P", "1", 1, 100).unwrap(), 1);
        for bad in ["0", "101"] {
            let e = parse_u32_in("P", bad, 1, 100).unwrap_err();
            assert!(e.message().contains("from 1 to 100"), "{}", e.message());
        }
        let r = req("X", &[("A", "TRUE"), ("B", "false"), ("C", "yes")]);
        assert_eq!(optional_bool(&r.params, "A").unwrap(), Some(true));
        assert_eq!(optional_bool(&r.params, "B").unwrap(), Some(false));
        assert_eq!(optional_bool(&r.params, "D").unwrap(), None);
        let e = optional_bool(&r.params, "C").unwrap_err();
        assert_eq!((e.code(), e.status()), ("InvalidParameter", 400));
        assert!(e.message().contains("\"C\""), "{}", e.message());
    }

    #[test]
    fn fingerprint_ignores_token_owner_and_empty_values_only() {
        let a = req("X", &[("A", "1"), ("ClientToken", "t1"), ("OwnerId", "9")]);
        let b = req("X", &[("A", "1"), ("ClientToken", "t2"), ("B", "")]);
        let c = req("X", &[("A", "2")]);
        // Boundaries between names and values count: plain concatenation would make these equal.
        let d = req("X", &[("A", "1"), ("B", "2")]);
        let e = req("X", &[("A", "1B2")]);
        assert_eq!(fingerprint(&a.params), fingerprint(&b.params));
        assert_ne!(fingerprint(&a.params), fingerprint(&c.params));
        assert_ne!(fingerprint(&d.params), fingerprint(&e.params));
        assert_eq!(fingerprint(&a.params).len(), 64);
    }
}
