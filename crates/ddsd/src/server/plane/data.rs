//! The documents a simulated deployment holds: one replicated store (`mongo_docstore::ReplicaStore`)
//! per replica set, persisted with the fleet's snapshot so that an acknowledged write survives a
//! restart of ddsd, and kept consistent with the fleet's elections: when a member that had not
//! replicated everything wins, the old primary's newer writes are rolled back, as MongoDB does.
//!
//! Pure: the fleet's ground truth says which elections happened and what the winner had; nothing
//! here does I/O. Used by the simulated plane (which persists it) and the wire server (which reads
//! and writes through it).

use std::collections::BTreeMap;

use base64::Engine as _;
use bson::{doc, Bson, Document};
use dds_engine::sim::Truth;
use mongo_docstore::{Limits, ReplicaStore};

/// Persisted format of [`DeploymentData::to_text`].
const DATA_FORMAT: i32 = 1;

#[derive(Debug, Clone, Default)]
pub struct DeploymentData {
    /// By replica set name; created on first use.
    sets: BTreeMap<String, ReplicaStore>,
    /// Per replica set, the newest term whose election has been applied to the store.
    terms: BTreeMap<String, u64>,
    limits: Limits,
}

impl DeploymentData {
    pub fn new(limits: Limits) -> Self {
        DeploymentData {
            limits,
            ..DeploymentData::default()
        }
    }

    /// The store of `replica_set`, created empty the first time.
    pub fn set(&mut self, replica_set: &str) -> &mut ReplicaStore {
        let limits = self.limits;
        self.sets
            .entry(replica_set.to_string())
            .or_insert_with(|| ReplicaStore::new(limits))
    }

    pub fn is_empty(&self) -> bool {
        self.sets
            .values()
            .all(|s| s.log_len() == 0 && s.last().ms == 0)
    }

    /// Applies the elections the fleet recorded since the last call: each winner that was behind
    /// rolls back what it never received. Returns how many writes were rolled back (0 = unchanged).
    /// A replica set seen for the first time starts at its current term (nothing to roll back yet).
    pub fn follow_elections(&mut self, truth: &Truth) -> usize {
        let mut removed = 0;
        for rs in &truth.replica_sets {
            let seen = *self
                .terms
                .entry(rs.name.clone())
                .or_insert_with(|| rs.elections.last().map_or(rs.initial_term, |e| e.term));
            let newer: Vec<_> = rs.elections.iter().filter(|e| e.term > seen).collect();
            let Some(last) = newer.last() else { continue };
            let last_term = last.term;
            if let Some(store) = self.sets.get_mut(&rs.name) {
                for e in &newer {
                    removed += store.rollback_after(e.winner_optime_ms);
                }
            }
            self.terms.insert(rs.name.clone(), last_term);
        }
        removed
    }

    /// Whether [`follow_elections`](Self::follow_elections) has work to do.
    pub fn behind(&self, truth: &Truth) -> bool {
        truth.replica_sets.iter().any(|rs| {
            let newest = rs.elections.last().map_or(rs.initial_term, |e| e.term);
            self.terms.get(&rs.name).is_none_or(|&t| t < newest)
        })
    }

    /// The persisted form: the BSON document, base64 (exact for every BSON type).
    pub fn to_text(&self) -> String {
        let mut sets = Document::new();
        for (name, s) in &self.sets {
            sets.insert(name.clone(), s.to_document());
        }
        let mut terms = Document::new();
        for (name, t) in &self.terms {
            terms.insert(name.clone(), i64::try_from(*t).unwrap_or(i64::MAX));
        }
        let d = doc! {"format": DATA_FORMAT, "sets": sets, "terms": terms};
        let bytes = d.to_vec().unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    pub fn from_text(text: &str, limits: Limits) -> Result<DeploymentData, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| format!("document data: {e}"))?;
        let d =
            Document::from_reader(bytes.as_slice()).map_err(|e| format!("document data: {e}"))?;
        if d.get_i32("format").ok() != Some(DATA_FORMAT) {
            return Err("document data: unknown format".into());
        }
        let mut out = DeploymentData::new(limits);
        for (name, v) in d.get_document("sets").map_err(|e| e.to_string())? {
            let Bson::Document(s) = v else {
                return Err(format!("document data: set {name}"));
            };
            let store = ReplicaStore::from_document(s, limits).map_err(|e| e.to_string())?;
            out.sets.insert(name.clone(), store);
        }
        for (name, v) in d.get_document("terms").map_err(|e| e.to_string())? {
            let t = v
                .as_i64()
                .ok_or_else(|| format!("document data: term of {name}"))?;
            out.terms.insert(name.clone(), t.max(0) as u64);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dds_engine::sim::{ElectionCause, ElectionRecord, ReplicaSetTruth};
    use mongo_docstore::catalog::Change;

    fn truth(elections: Vec<ElectionRecord>) -> Truth {
        Truth {
            processes: vec![],
            replica_sets: vec![ReplicaSetTruth {
                name: "rs".into(),
                initial_term: 1,
                elections,
                no_primary: vec![],
                max_out_by_commands: 0,
                max_unavailable: 0,
                stops: vec![],
                too_stale: vec![],
            }],
            primary_stop_attempts: vec![],
            balancer_modes: vec![],
            no_mongos: vec![],
            fcv_changes: vec![],
            commands: vec![],
        }
    }

    fn election(term: u64, winner_optime_ms: u64) -> ElectionRecord {
        ElectionRecord {
            term,
            at_ms: winner_optime_ms + 10_000,
            winner: "b".into(),
            cause: ElectionCause::Timeout,
            step_down_id: None,
            winner_optime_ms,
        }
    }

    fn put(data: &mut DeploymentData, at_ms: u64, id: i32) {
        data.set("rs")
            .write("a", at_ms, |b| {
                b.apply(Change::Put {
                    db: "app".into(),
                    coll: "c".into(),
                    doc: doc! {"_id": id},
                })
            })
            .unwrap();
    }

    fn ids(data: &mut DeploymentData, member: &str) -> Vec<i32> {
        let cat = data.set("rs").view(member, u64::MAX);
        cat.collection("app", "c")
            .map(|c| c.iter().map(|d| d.get_i32("_id").unwrap()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_winner_that_was_behind_rolls_back_the_newer_writes_once() {
        let mut data = DeploymentData::new(Limits::default());
        assert_eq!(data.follow_elections(&truth(vec![])), 0, "first sight");
        put(&mut data, 1_000, 1);
        put(&mut data, 2_000, 2);
        put(&mut data, 3_000, 3);
        let t = truth(vec![election(2, 2_000)]);
        assert!(data.behind(&t));
        assert_eq!(data.follow_elections(&t), 1);
        assert!(!data.behind(&t));
        assert_eq!(ids(&mut data, "b"), vec![1, 2]);
        assert_eq!(data.follow_elections(&t), 0, "applied once");
        // A caught-up winner rolls back nothing.
        put(&mut data, 4_000, 4);
        let t = truth(vec![election(2, 2_000), election(3, 4_000)]);
        assert_eq!(data.follow_elections(&t), 0);
        assert_eq!(ids(&mut data, "b"), vec![1, 2, 4]);
    }

    #[test]
    fn the_persisted_form_round_trips() {
        let mut data = DeploymentData::new(Limits::default());
        data.follow_elections(&truth(vec![election(5, 0)]));
        put(&mut data, 1_000, 7);
        let text = data.to_text();
        let mut back = DeploymentData::from_text(&text, Limits::default()).unwrap();
        assert_eq!(ids(&mut back, "x"), vec![7]);
        assert_eq!(back.terms.get("rs"), Some(&5));
        let e = DeploymentData::from_text("not base64!", Limits::default()).unwrap_err();
        assert!(e.starts_with("document data: Invalid"), "{e}");
        let e = DeploymentData::from_text("AAAA", Limits::default()).unwrap_err();
        assert!(e.starts_with("document data:"), "{e}");
        let wrong =
            base64::engine::general_purpose::STANDARD.encode(doc! {"format": 9}.to_vec().unwrap());
        let e = DeploymentData::from_text(&wrong, Limits::default()).unwrap_err();
        assert_eq!(e, "document data: unknown format");
    }
}
