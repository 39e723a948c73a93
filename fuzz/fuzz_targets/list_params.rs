//! The `Name.N.Field` list parser handlers use (`ReplicaSet.N.*`, `Tag.N.*`).
//!
//! Properties: never panics; what it accepts has at most `max` entries, only known fields, and
//! exactly the non-empty values that were sent under the prefix, each in its numbered entry.

#![no_main]

use std::collections::BTreeMap;

use acs_rpc::indexed_list;
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    params: Vec<(String, String)>,
    max: u8,
}

const FIELDS: &[&str] = &["Class", "Storage", "ReadonlyReplicas"];

fuzz_target!(|input: Input| {
    let params: BTreeMap<String, String> = input.params.into_iter().collect();
    let max = input.max as usize;
    let Ok(list) = indexed_list(&params, "ReplicaSet", FIELDS, max) else {
        return;
    };
    assert!(list.len() <= max);
    let mut seen = 0;
    for (i, entry) in list.iter().enumerate() {
        for (field, value) in entry {
            assert!(FIELDS.contains(&field.as_str()));
            assert!(!value.is_empty());
            assert_eq!(
                params.get(&format!("ReplicaSet.{}.{field}", i + 1)),
                Some(value)
            );
            seen += 1;
        }
    }
    let sent = params
        .iter()
        .filter(|(k, v)| k.starts_with("ReplicaSet.") && !v.is_empty())
        .count();
    assert_eq!(seen, sent);
    assert!(!params.contains_key("ReplicaSet"));
});
