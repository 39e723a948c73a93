//! The feature compatibility version (FCV) of each replica set's data, as MongoDB keeps it in
//! `admin.system.version`: `getParameter` reports it, `setFeatureCompatibilityVersion` raises it (through a
//! mongos for a whole sharded cluster, or on a replica set's primary), and a mongod refuses to start on a
//! binary whose major is more than one step above it (or below it), as a real one does — so an orchestrator
//! that raises the FCV before every binary is replaced, or skips a major, is caught.

use super::{Fleet, Proc};
use crate::catalog::{engine_of_kernel, engine_rank};
use crate::plane::CommandError;

impl Fleet {
    /// The set's FCV: the one set at install or last, or else (a snapshot from before FCVs were kept) the
    /// oldest major its members' kernels belong to.
    pub(super) fn fcv_of(&self, rs: usize) -> Option<String> {
        let s = self.sets.get(rs)?;
        if let Some(f) = &s.fcv {
            return Some(f.clone());
        }
        s.members
            .iter()
            .filter_map(|&m| engine_of_kernel(&self.members[m].good_kernel))
            .min_by_key(|e| engine_rank(e).unwrap_or(usize::MAX))
    }

    /// Whether a process of set `rs` refuses to start on `kernel`: its major is more than one step above the
    /// data's FCV, or below it. Unknown majors are not judged.
    pub(super) fn fcv_refuses(&self, rs: usize, kernel: &str) -> bool {
        let (Some(fcv), Some(engine)) = (self.fcv_of(rs), engine_of_kernel(kernel)) else {
            return false;
        };
        match (engine_rank(&fcv), engine_rank(&engine)) {
            (Some(f), Some(b)) => b > f + 1 || b < f,
            _ => false,
        }
    }

    /// `setFeatureCompatibilityVersion`: through a mongos (`replica_set` = `None`, a sharded cluster: every
    /// replica set) or on the primary of one replica set. Needs every targeted set to have a primary and every
    /// running process of the deployment to run a binary of at least `version`; at most one step from the
    /// current FCV; setting the current FCV again is accepted and changes nothing.
    pub(super) fn set_fcv(
        &mut self,
        replica_set: Option<&str>,
        version: &str,
    ) -> Result<(), CommandError> {
        let Some(target_rank) = engine_rank(version) else {
            return Err(CommandError::Other(format!(
                "invalid featureCompatibilityVersion {:?}",
                version.chars().take(16).collect::<String>()
            )));
        };
        let sets: Vec<usize> = match replica_set {
            None => {
                if self.config_rs.is_none() {
                    return Err(CommandError::Other(
                        "setFeatureCompatibilityVersion through a mongos needs a sharded cluster"
                            .into(),
                    ));
                }
                if !self.mongos.iter().any(|m| m.proc == Proc::Up && m.ready) {
                    return Err(CommandError::Other("no mongos is serving".into()));
                }
                (0..self.sets.len()).collect()
            }
            Some(name) => vec![self
                .set_index(name)
                .ok_or_else(|| CommandError::NoSuchNode(name.chars().take(128).collect()))?],
        };
        for &rs in &sets {
            let current = self.fcv_of(rs).and_then(|f| engine_rank(&f));
            if let Some(c) = current {
                if target_rank > c + 1 || target_rank + 1 < c {
                    return Err(CommandError::Other(format!(
                        "cannot change featureCompatibilityVersion of {} by more than one major",
                        self.sets[rs].name
                    )));
                }
            }
            if self.sets[rs].primary.is_none() {
                return Err(CommandError::Other(format!(
                    "{} has no primary",
                    self.sets[rs].name
                )));
            }
        }
        // Every running binary must understand the new version.
        let too_old = self
            .members
            .iter()
            .filter(|m| m.proc == Proc::Up && sets.contains(&m.rs))
            .map(|m| (m.node_id.as_str(), m.kernel.as_str()))
            .chain(
                self.mongos
                    .iter()
                    .filter(|m| replica_set.is_none() && m.proc == Proc::Up)
                    .map(|m| (m.node_id.as_str(), m.kernel.as_str())),
            )
            .find(|(_, k)| {
                engine_of_kernel(k)
                    .and_then(|e| engine_rank(&e))
                    .is_some_and(|b| b < target_rank)
            })
            .map(|(n, _)| n.to_string());
        if let Some(node) = too_old {
            return Err(CommandError::Other(format!(
                "{node} runs a binary older than featureCompatibilityVersion {version}"
            )));
        }
        let now = self.now_ms;
        for rs in sets {
            if self.fcv_of(rs).as_deref() != Some(version) {
                self.truth
                    .fcv_changes
                    .push((now, self.sets[rs].name.clone(), version.to_string()));
            }
            self.sets[rs].fcv = Some(version.to_string());
        }
        Ok(())
    }
}
