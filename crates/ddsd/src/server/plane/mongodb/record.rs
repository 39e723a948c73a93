//! What ddsd keeps of an imported deployment: every process's address and the agent that runs it,
//! and the account the plane authenticates with. Kept in the store's settings
//! (`instance/<DBInstanceId>/plane.mongodb`, deleted with the instance), written once by the import and read at every start; the
//! password and the agents' secrets are never returned by an action nor logged (the `Debug`
//! impls leave them out).

use crate::agent::api::AgentEndpoint;
use crate::server::store::Store;
use serde::{Deserialize, Serialize};

use super::super::{PlaneError, PlaneResult};

/// A `mongod` or `mongos` of the deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    /// ddsd's `NodeId`: the agent's process name.
    pub node_id: String,
    /// `host:port`, as the deployment names the process.
    pub address: String,
    /// Index into [`DeploymentRecord::agents`].
    pub agent: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaSetRecord {
    pub name: String,
    pub members: Vec<ProcessRecord>,
}

/// The deployment behind one imported instance.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentRecord {
    pub replica_sets: Vec<ReplicaSetRecord>,
    pub mongos: Vec<ProcessRecord>,
    pub agents: Vec<AgentEndpoint>,
    pub username: String,
    pub password: String,
    pub auth_source: String,
}

impl std::fmt::Debug for DeploymentRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeploymentRecord")
            .field("replica_sets", &self.replica_sets)
            .field("mongos", &self.mongos)
            .field("agents", &self.agents)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl DeploymentRecord {
    pub fn processes(&self) -> impl Iterator<Item = &ProcessRecord> {
        self.replica_sets
            .iter()
            .flat_map(|rs| rs.members.iter())
            .chain(self.mongos.iter())
    }

    pub fn process(&self, node_id: &str) -> Option<&ProcessRecord> {
        self.processes().find(|p| p.node_id == node_id)
    }
}

/// Under the instance's own prefix, so the record goes with the instance.
fn key(instance_id: &str) -> String {
    format!(
        "{}plane.mongodb",
        crate::server::store::instance_setting_prefix(instance_id)
    )
}

pub async fn load(store: &dyn Store, instance_id: &str) -> PlaneResult<Option<DeploymentRecord>> {
    match store.get_setting(&key(instance_id)).await? {
        None => Ok(None),
        Some(text) if text.is_empty() => Ok(None),
        Some(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| PlaneError::Corrupt(format!("{}: {e}", key(instance_id)))),
    }
}

/// The setting that holds `record`, to store with the instance in one transaction.
pub fn setting(instance_id: &str, record: &DeploymentRecord) -> PlaneResult<(String, String)> {
    let text = serde_json::to_string(record).map_err(|e| PlaneError::Corrupt(e.to_string()))?;
    Ok((key(instance_id), text))
}

pub async fn save(
    store: &dyn Store,
    instance_id: &str,
    record: &DeploymentRecord,
) -> PlaneResult<()> {
    let text = serde_json::to_string(record).map_err(|e| PlaneError::Corrupt(e.to_string()))?;
    store.put_setting(&key(instance_id), &text).await?;
    Ok(())
}

/// The deployment is no longer managed (the instance is being deleted; its processes keep running).
pub async fn forget(store: &dyn Store, instance_id: &str) -> PlaneResult<()> {
    store.put_setting(&key(instance_id), "").await?;
    Ok(())
}
