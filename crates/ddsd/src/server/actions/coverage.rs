//! docs/coverage.md against the table: every vendor action of [`super::ACTIONS`] is marked
//! implemented there, and no other action is.

use std::collections::BTreeSet;

/// `(action, status)` of every row of docs/coverage.md.
fn documented() -> Vec<(String, String)> {
    include_str!("../../../../../docs/coverage.md")
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            Some((
                cells.get(1)?.trim_matches('`').to_string(),
                cells.get(2)?.to_string(),
            ))
        })
        .collect()
}

#[test]
fn coverage_md_marks_exactly_the_table_s_vendor_actions_implemented() {
    let rows = documented();
    let names: BTreeSet<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), rows.len(), "an action is listed twice");
    assert_eq!(rows.len(), 135, "the vendor's 135 actions");
    for (_, status) in &rows {
        assert!(
            ["implemented", "not yet", "out of scope"].contains(&status.as_str()),
            "{status}"
        );
    }
    let marked: BTreeSet<&str> = rows
        .iter()
        .filter(|(_, s)| s == "implemented")
        .map(|(n, _)| n.as_str())
        .collect();
    let served: BTreeSet<&str> = super::ACTIONS
        .iter()
        .map(|a| a.name)
        .filter(|n| !n.starts_with("Ddsd"))
        .collect();
    assert_eq!(marked, served);
}
