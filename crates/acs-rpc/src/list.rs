//! The flattened 1-based lists the SDKs send for list-valued parameters: `ReplicaSet.2.Class=…`,
//! `Tag.1.Key=…`. The Tea and legacy SDKs both flatten a list of objects as `<Prefix>.<N>.<Field>`
//! with `N` counting from 1.
//!
//! The parser is strict because a lenient one lets two readers of one request disagree: an `N` of
//! `01` and `1`, or a gap the handler silently closes, would make "entry 2" mean different things
//! to the client and to the server.

use std::collections::BTreeMap;

use crate::RpcError;

/// One entry of a flattened list: field name → value (empty values dropped).
pub type ListEntry = BTreeMap<String, String>;

/// Digits allowed in `N`; with the `max_entries` bound this keeps parsing trivially bounded.
const MAX_INDEX_DIGITS: usize = 4;

/// Reads `<prefix>.N.<Field>` parameters of `params` into entries 1..=n, in numeric order.
///
/// Refused (400 `InvalidParameter`, naming the parameter): an `N` that is not a decimal number
/// from 1 to `max_entries` without leading zeros, a field not in `fields`, a parameter with no
/// field (`ReplicaSet.1`) or the bare prefix (`ReplicaSet`), and gaps (`ReplicaSet.1` and
/// `ReplicaSet.3` without `ReplicaSet.2`). Empty values count as absent (legacy SDKs send unset
/// optionals as empty strings), but the entry they name still exists.
pub fn indexed_list(
    params: &BTreeMap<String, String>,
    prefix: &str,
    fields: &[&str],
    max_entries: usize,
) -> Result<Vec<ListEntry>, RpcError> {
    if params.contains_key(prefix) {
        return Err(RpcError::invalid_parameter(
            &clip(prefix),
            format!("Send the list as {prefix}.N.<Field> with N from 1."),
        ));
    }
    let dotted = format!("{prefix}.");
    let mut entries: BTreeMap<usize, ListEntry> = BTreeMap::new();
    // Names sharing the prefix are contiguous in a BTreeMap: visit only those.
    for (name, value) in params
        .range::<str, _>((
            std::ops::Bound::Included(dotted.as_str()),
            std::ops::Bound::Unbounded,
        ))
        .take_while(|(name, _)| name.starts_with(&dotted))
    {
        let rest = &name[dotted.len()..];
        let (n, field) = rest.split_once('.').unwrap_or((rest, ""));
        let index = parse_list_index(n)
            .filter(|&i| i <= max_entries)
            .ok_or_else(|| {
                RpcError::invalid_parameter(
                    &clip(name),
                    format!("N in {prefix}.N must be a whole number from 1 to {max_entries}."),
                )
            })?;
        if !fields.contains(&field) {
            return Err(RpcError::invalid_parameter(
                &clip(name),
                format!("{prefix}.N takes the fields {}.", fields.join(", ")),
            ));
        }
        let entry = entries.entry(index).or_default();
        if !value.is_empty() {
            entry.insert(field.to_string(), value.clone());
        }
    }
    let mut out = Vec::with_capacity(entries.len());
    for (expected, (index, entry)) in (1..).zip(entries) {
        if index != expected {
            return Err(RpcError::invalid_parameter(
                &clip(&format!("{prefix}.{expected}")),
                format!(
                    "{prefix}.N must be numbered 1, 2, 3, ... without gaps; \
                     {prefix}.{index} was sent without {prefix}.{expected}."
                ),
            ));
        }
        out.push(entry);
    }
    Ok(out)
}

fn parse_list_index(n: &str) -> Option<usize> {
    let ok = !n.is_empty()
        && n.len() <= MAX_INDEX_DIGITS
        && n.bytes().all(|b| b.is_ascii_digit())
        && !n.starts_with('0');
    ok.then(|| n.parse().ok()).flatten()
}

/// Client text echoed in a message: at most 64 characters, no control characters.
fn clip(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FIELDS: &[&str] = &["Class", "Storage", "ReadonlyReplicas"];

    fn map(params: &[(&str, &str)]) -> BTreeMap<String, String> {
        params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn lists_are_read_in_numeric_order_with_empty_values_dropped() {
        let p = map(&[
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
            ("ReplicaSetX.1.Class", "not ours"),
            ("Other", "x"),
        ]);
        let l = indexed_list(&p, "ReplicaSet", FIELDS, 32).unwrap();
        assert_eq!(l.len(), 10);
        assert_eq!(l[0]["Class"], "a");
        assert_eq!(l[0]["Storage"], "20");
        assert_eq!(l[1].get("ReadonlyReplicas"), None);
        assert_eq!(l[9]["Class"], "j", "entry 10 is last, not second");
        assert!(indexed_list(&map(&[]), "ReplicaSet", FIELDS, 32)
            .unwrap()
            .is_empty());
        // An entry whose only field is empty still exists (it keeps the numbering honest).
        let l = indexed_list(&map(&[("Tag.1.Key", "")]), "Tag", &["Key"], 5).unwrap();
        assert_eq!(l, vec![ListEntry::new()]);
    }

    #[test]
    fn malformed_lists_name_the_parameter() {
        for (params, named) in [
            (vec![("ReplicaSet.0.Class", "a")], "ReplicaSet.0.Class"),
            (vec![("ReplicaSet.01.Class", "a")], "ReplicaSet.01.Class"),
            (vec![("ReplicaSet.x.Class", "a")], "ReplicaSet.x.Class"),
            (vec![("ReplicaSet.33.Class", "a")], "ReplicaSet.33.Class"),
            (vec![("ReplicaSet.-1.Class", "a")], "ReplicaSet.-1.Class"),
            (vec![("ReplicaSet.+1.Class", "a")], "ReplicaSet.+1.Class"),
            (
                vec![("ReplicaSet.99999.Class", "a")],
                "ReplicaSet.99999.Class",
            ),
            (vec![("ReplicaSet..Class", "a")], "ReplicaSet..Class"),
            (vec![("ReplicaSet.1.Colour", "a")], "ReplicaSet.1.Colour"),
            (vec![("ReplicaSet.1.Class.X", "a")], "ReplicaSet.1.Class.X"),
            (vec![("ReplicaSet.1", "a")], "ReplicaSet.1"),
            (vec![("ReplicaSet.", "a")], "ReplicaSet."),
            (vec![("ReplicaSet", "a")], "ReplicaSet"),
            (
                vec![("ReplicaSet.1.Class", "a"), ("ReplicaSet.3.Class", "c")],
                "ReplicaSet.2",
            ),
            (vec![("ReplicaSet.2.Class", "b")], "ReplicaSet.1"),
        ] {
            let e = indexed_list(&map(&params), "ReplicaSet", FIELDS, 32).unwrap_err();
            assert_eq!(
                (e.code(), e.status()),
                ("InvalidParameter", 400),
                "{params:?}"
            );
            assert!(
                e.message().contains(&format!("\"{named}\"")),
                "{params:?}: {}",
                e.message()
            );
        }
    }

    #[test]
    fn the_bound_is_inclusive() {
        let at = map(&[("Tag.1.Key", "a"), ("Tag.2.Key", "b"), ("Tag.3.Key", "c")]);
        assert_eq!(indexed_list(&at, "Tag", &["Key"], 3).unwrap().len(), 3);
        assert!(indexed_list(&at, "Tag", &["Key"], 2).is_err());
    }

    #[test]
    fn hostile_names_are_clipped_in_messages() {
        let long = format!("Tag.1.{}\u{7}", "K".repeat(500));
        let e = indexed_list(&map(&[(&long, "v")]), "Tag", &["Key"], 3).unwrap_err();
        assert!(e.message().len() < 300, "{}", e.message());
        assert!(!e.message().contains('\u{7}'));
    }

    proptest! {
        /// Whatever the parameters, the parser answers (never panics); what it accepts has at most
        /// `max` entries, only known fields, and exactly the non-empty values that were sent.
        #[test]
        fn accepted_lists_are_exactly_what_was_sent(
            params in proptest::collection::btree_map(
                "(L|L\\.[0-9]{0,3}|L\\.[0-9]{1,2}\\.(A|B|C)|Lx\\.1\\.A|M)",
                "[a-z]{0,2}",
                0..12,
            ),
            max in 0usize..12,
        ) {
            if let Ok(list) = indexed_list(&params, "L", &["A", "B"], max) {
                prop_assert!(list.len() <= max);
                let mut seen = 0;
                for (i, entry) in list.iter().enumerate() {
                    for (field, value) in entry {
                        prop_assert!(field == "A" || field == "B");
                        prop_assert_eq!(params.get(&format!("L.{}.{field}", i + 1)), Some(value));
                        seen += 1;
                    }
                }
                let sent = params
                    .iter()
                    .filter(|(k, v)| k.starts_with("L.") && !v.is_empty())
                    .count();
                prop_assert_eq!(seen, sent);
            }
        }
    }
}
