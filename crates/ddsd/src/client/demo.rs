//! `ddsd serve --demo`: a ready fleet to upgrade, one command away.
//!
//! With `--demo`, ddsd defaults to the data dir `./data-demo` and `sim_speed` [`DEMO_SIM_SPEED`] (both
//! still configurable), and once it listens it makes sure these instances exist, through its own API
//! with the admin key (the operator extensions `DdsdCreate*`, which pin an older kernel):
//!
//! - a sharded cluster (2 shards of 3 members, 3 config servers, 2 mongos) on engine 4.4's second-newest
//!   kernel, described `ddsd demo sharded cluster`,
//! - a replica set (primary, secondary, hidden) on the same kernel, `ddsd demo replica set`,
//! - a standalone on engine 4.0, `ddsd demo standalone` (it cannot be upgraded online: it shows the
//!   refusal).
//!
//! Their ids are kept in the store (setting `demo.fleet`), so later starts reuse them; every create
//! carries a `ClientToken`, so a crash between the create and that record does not create twice. When
//! neither the sharded cluster nor the replica set can still be upgraded (both already on the newest
//! kernel), a fresh sharded cluster replaces the recorded one, so the printed command always has work
//! to do.
//!
//! When the fleet is `Running`, ddsd writes `<data dir>/profile.toml` (mode 0600: endpoint and the admin
//! key, see `profile.rs`) and prints, after the listening line, the instances, the endpoint, the key pair
//! and ONE command that upgrades the sharded cluster with live progress:
//!
//! ```text
//! ./target/release/ddsd upgrade dds-bp1… --wait --profile ./data-demo/profile.toml
//! ```
//!
//! Every demo instance has the `root` account with one generated password (kept with the fleet
//! record), and the banner prints a MongoDB URI for the replica set and for the sharded cluster's
//! mongos, so a driver or `mongosh` can connect at once (docs/wire.md).
//!
//! Demo mode prints the admin key pair on every start (normal mode prints it only when created): the
//! demo is a local sandbox and its key is in the printed profile anyway.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use dds_engine::model::{DbInstanceStatus, Instance};
use serde::{Deserialize, Serialize};

use crate::client::profile::{Profile, SignatureName};
use crate::server::actions::kernels::KernelCatalog;
use crate::server::store::Store;
use ddsd_client::{Client, Credentials, Signature};

pub use crate::server::config::{DEMO_DATA_DIR, DEMO_SIM_SPEED};
const SETTING: &str = "demo.fleet";
const UPGRADE_ENGINE: &str = "4.4";
const STANDALONE_ENGINE: &str = "4.0";
/// How long the fleet may take to come up.
const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// The demo fleet as recorded in the store.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Fleet {
    pub sharded: Option<String>,
    pub replica_set: Option<String>,
    pub standalone: Option<String>,
    /// Bumped when a fresh sharded cluster replaces an upgraded one (part of its `ClientToken`).
    #[serde(default)]
    pub generation: u32,
    /// The `root` password of every demo instance (a local sandbox: printed in the banner).
    #[serde(default)]
    pub root_password: Option<String>,
}

/// A password the vendor's rules accept (8–32 characters, three kinds of characters).
fn demo_password() -> String {
    use rand::Rng as _;
    const ALNUM: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    let body: String = (0..14)
        .map(|_| ALNUM[rng.gen_range(0..ALNUM.len())] as char)
        .collect();
    format!("Demo{body}-7")
}

pub struct Demo {
    pub store: Arc<dyn Store>,
    pub kernels: Arc<KernelCatalog>,
    /// `http://IP:PORT` the process listens on (a wildcard address replaced by loopback).
    pub endpoint: String,
    pub credentials: Credentials,
    pub data_dir: PathBuf,
    pub region: String,
    pub speed: f64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    Sharded,
    ReplicaSet,
    Standalone,
}

impl Role {
    /// `DBInstanceDescription`, how SDK scripts find the demo's instances.
    fn description(self) -> &'static str {
        match self {
            Role::Sharded => "ddsd demo sharded cluster",
            Role::ReplicaSet => "ddsd demo replica set",
            Role::Standalone => "ddsd demo standalone",
        }
    }

    fn token(self, generation: u32) -> String {
        let r = match self {
            Role::Sharded => "sharded",
            Role::ReplicaSet => "replica-set",
            Role::Standalone => "standalone",
        };
        format!("ddsd-demo-{r}-{generation}")
    }
}

/// `kernels[len - 2]`: the demo's starting kernel, one behind the newest.
fn older_kernel(catalog: &dds_engine::catalog::Catalog, engine: &str) -> anyhow::Result<String> {
    let ks = catalog
        .kernels(engine)
        .with_context(|| format!("engine {engine} is not in the kernel catalog"))?;
    if ks.len() < 2 {
        bail!("engine {engine} has a single kernel: nothing to upgrade to");
    }
    Ok(ks[ks.len() - 2].kernel_version.clone())
}

/// The server's [`OnListening`](crate::server::OnListening) hook of `serve --demo`: sets the
/// fleet up in the background; a failure is reported, and the server keeps serving.
pub fn start(l: crate::server::Listening) {
    let demo = Demo {
        store: l.store,
        kernels: l.kernels,
        endpoint: l.endpoint,
        credentials: Credentials {
            access_key_id: l.access_key_id,
            secret: l.secret,
        },
        data_dir: l.data_dir,
        region: l.region,
        speed: l.sim_speed,
    };
    tokio::spawn(async move {
        if let Err(e) = demo.run().await {
            tracing::error!("demo fleet: {e:#}");
            eprintln!("ddsd: the demo fleet could not be set up: {e:#}");
        }
    });
}

impl Demo {
    async fn load(&self) -> anyhow::Result<Fleet> {
        Ok(match self.store.get_setting(SETTING).await? {
            Some(text) => serde_json::from_str(&text).context("the recorded demo fleet")?,
            None => Fleet::default(),
        })
    }

    async fn save(&self, fleet: &Fleet) -> anyhow::Result<()> {
        self.store
            .put_setting(SETTING, &serde_json::to_string(fleet)?)
            .await?;
        Ok(())
    }

    async fn existing(&self, id: &Option<String>) -> anyhow::Result<Option<Instance>> {
        match id {
            Some(id) => Ok(self.store.get_instance(id).await?),
            None => Ok(None),
        }
    }

    async fn create(&self, client: &Client, role: Role, fleet: &Fleet) -> anyhow::Result<String> {
        let catalog = self.kernels.snapshot();
        let token = role.token(fleet.generation);
        let password = fleet.root_password.clone().unwrap_or_default();
        let common = |engine: &str, kernel: String| -> Vec<(String, String)> {
            vec![
                ("AccountPassword".into(), password.clone()),
                ("RegionId".into(), self.region.clone()),
                ("Engine".into(), "MongoDB".into()),
                ("EngineVersion".into(), engine.into()),
                ("KernelVersion".into(), kernel),
                ("ClientToken".into(), token.clone()),
            ]
        };
        let (action, mut p) = match role {
            Role::Sharded => {
                let mut p = common(UPGRADE_ENGINE, older_kernel(&catalog, UPGRADE_ENGINE)?);
                for n in 1..=2 {
                    p.push((format!("ReplicaSet.{n}.Class"), "dds.shard.mid".into()));
                    p.push((format!("ReplicaSet.{n}.Storage"), "20".into()));
                    p.push((format!("Mongos.{n}.Class"), "dds.mongos.mid".into()));
                }
                p.push(("ConfigServer.1.Class".into(), "dds.cs.mid".into()));
                p.push(("ConfigServer.1.Storage".into(), "20".into()));
                ("DdsdCreateShardingDBInstance", p)
            }
            Role::ReplicaSet => {
                let mut p = common(UPGRADE_ENGINE, older_kernel(&catalog, UPGRADE_ENGINE)?);
                p.push(("DBInstanceClass".into(), "dds.mongo.mid".into()));
                p.push(("DBInstanceStorage".into(), "20".into()));
                ("DdsdCreateDBInstance", p)
            }
            Role::Standalone => {
                let mut p = common(
                    STANDALONE_ENGINE,
                    older_kernel(&catalog, STANDALONE_ENGINE)?,
                );
                p.push(("DBInstanceClass".into(), "dds.sn2.standard.1".into()));
                p.push(("DBInstanceStorage".into(), "20".into()));
                p.push(("ReplicationFactor".into(), "1".into()));
                ("DdsdCreateDBInstance", p)
            }
        };
        p.push(("DBInstanceDescription".into(), role.description().into()));
        let borrowed: Vec<(&str, &str)> = p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let v = client
            .call(action, &borrowed)
            .await
            .with_context(|| format!("{action} for the demo"))?;
        v["DBInstanceId"]
            .as_str()
            .map(str::to_string)
            .context("the create answer has no DBInstanceId")
    }

    /// Whether an upgrade of `i` would have work to do and may start now.
    fn upgradeable(&self, i: &Instance) -> bool {
        let catalog = self.kernels.snapshot();
        let Some(newest) = catalog.newest(&i.engine_version) else {
            return false;
        };
        !i.is_standalone()
            && i.status == DbInstanceStatus::Running
            && i.topology
                .kernel_versions()
                .any(|k| k != newest.kernel_version)
    }

    /// Makes sure the fleet exists (see the module docs); returns it with the instance to upgrade.
    pub async fn ensure(&self) -> anyhow::Result<(Fleet, String)> {
        let client =
            Client::with_signature(&self.endpoint, self.credentials.clone(), Signature::V3)?;
        let mut fleet = self.load().await?;
        if fleet.root_password.is_none() {
            fleet.root_password = Some(demo_password());
            self.save(&fleet).await?;
        }
        for role in [Role::Sharded, Role::ReplicaSet, Role::Standalone] {
            let slot = match role {
                Role::Sharded => &fleet.sharded,
                Role::ReplicaSet => &fleet.replica_set,
                Role::Standalone => &fleet.standalone,
            };
            if self.existing(slot).await?.is_none() {
                let mut id = self.create(&client, role, &fleet).await?;
                if self.store.get_instance(&id).await?.is_none() {
                    // The token replayed the answer for an instance deleted since: take a fresh token.
                    fleet.generation += 1;
                    id = self.create(&client, role, &fleet).await?;
                }
                match role {
                    Role::Sharded => fleet.sharded = Some(id),
                    Role::ReplicaSet => fleet.replica_set = Some(id),
                    Role::Standalone => fleet.standalone = Some(id),
                }
                self.save(&fleet).await?;
            }
        }
        let all = [&fleet.sharded, &fleet.replica_set, &fleet.standalone]
            .into_iter()
            .flatten()
            .cloned()
            .collect::<Vec<_>>();
        self.wait_settled(&all).await?;
        // The sharded cluster if it can still be upgraded, else the replica set, else a fresh cluster.
        let candidates: Vec<String> = [&fleet.sharded, &fleet.replica_set]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        for id in candidates {
            if let Some(i) = self.store.get_instance(&id).await? {
                if self.upgradeable(&i) {
                    return Ok((fleet, id));
                }
            }
        }
        fleet.generation += 1;
        let id = self.create(&client, Role::Sharded, &fleet).await?;
        fleet.sharded = Some(id.clone());
        self.save(&fleet).await?;
        self.wait_settled(std::slice::from_ref(&id)).await?;
        Ok((fleet, id))
    }

    /// Waits until every instance is `Running` with no unfinished operation.
    async fn wait_settled(&self, ids: &[String]) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        for id in ids {
            loop {
                let busy = self
                    .store
                    .list_operations(id, 1)
                    .await?
                    .first()
                    .is_some_and(|o| !o.status.is_finished());
                let status = self.store.get_instance(id).await?.map(|i| i.status);
                if status == Some(DbInstanceStatus::Running) && !busy {
                    break;
                }
                if status.is_none() {
                    bail!("demo instance {id} disappeared");
                }
                if Instant::now() > deadline {
                    bail!("demo instance {id} is still {status:?} after {READY_TIMEOUT:?}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    pub fn profile_path(&self) -> PathBuf {
        self.data_dir.join("profile.toml")
    }

    fn write_profile(&self) -> anyhow::Result<()> {
        Profile {
            endpoint: Some(self.endpoint.clone()),
            access_key_id: Some(self.credentials.access_key_id.clone()),
            access_key_secret: Some(self.credentials.secret.expose().to_string()),
            signature: Some(SignatureName::V3),
        }
        .write(&self.profile_path())
    }

    /// The banner printed once the fleet is ready; its last line is the command.
    pub async fn banner(&self, fleet: &Fleet, target: &str) -> anyhow::Result<String> {
        let mut out = String::new();
        let catalog = self.kernels.snapshot();
        out.push_str(&format!(
            "\nddsd demo: simulated MongoDB fleet at sim_speed {} (a minute of MongoDB time takes {:.1} s)\n",
            self.speed,
            60.0 / self.speed
        ));
        for (label, id) in [
            ("sharded cluster", &fleet.sharded),
            ("replica set", &fleet.replica_set),
            ("standalone", &fleet.standalone),
        ] {
            let Some(id) = id else { continue };
            let Some(i) = self.store.get_instance(id).await? else {
                continue;
            };
            let kernel = i
                .current_kernel_version(|k| catalog.position(k).map(|(_, n)| n))
                .unwrap_or_default();
            out.push_str(&format!(
                "  {label:<16} {id}  MongoDB {}  {kernel}\n",
                i.engine_version
            ));
        }
        let newest = catalog
            .newest(UPGRADE_ENGINE)
            .map(|k| k.kernel_version.clone())
            .unwrap_or_default();
        out.push_str(&format!("  endpoint         {}\n", self.endpoint));
        if let Some(password) = &fleet.root_password {
            for (label, id) in [
                ("replica set", &fleet.replica_set),
                ("mongos", &fleet.sharded),
            ] {
                if let Some(uri) = self.mongodb_uri(id.as_deref(), password).await {
                    let label = format!("mongodb ({label})");
                    out.push_str(&format!("  {label:<21} {uri}\n"));
                }
            }
        }
        out.push_str(&format!(
            "  AccessKeyId      {}\n  AccessKeySecret  {}\n",
            self.credentials.access_key_id,
            self.credentials.secret.expose()
        ));
        out.push_str(&format!(
            "  profile          {}\n",
            display_path(&self.profile_path())
        ));
        let what = if fleet.sharded.as_deref() == Some(target) {
            "the sharded cluster"
        } else {
            "the replica set"
        };
        out.push_str(&format!(
            "\nUpgrade {what} {target} to {newest}, with live progress, by running:\n"
        ));
        out.push_str(&format!(
            "    {}\n",
            upgrade_command(target, &self.profile_path())
        ));
        Ok(out)
    }

    /// A driver's URI for the instance, from `DescribeDBInstanceAttribute` (where the processes
    /// listen); `None` without the wire protocol.
    async fn mongodb_uri(&self, id: Option<&str>, password: &str) -> Option<String> {
        let client =
            Client::with_signature(&self.endpoint, self.credentials.clone(), Signature::V3).ok()?;
        let v = client
            .call("DescribeDBInstanceAttribute", &[("DBInstanceId", id?)])
            .await
            .ok()?;
        let a = &v["DBInstances"]["DBInstance"][0];
        let addr = |host: &serde_json::Value, port: &serde_json::Value| {
            let port = port
                .as_str()
                .map(str::to_string)
                .or_else(|| port.as_u64().map(|p| p.to_string()))?;
            Some(format!("{}:{port}", host.as_str()?))
        };
        let user = format!("root:{}", password);
        if let Some(mongos) = a["MongosList"]["MongosAttribute"].as_array() {
            let hosts: Vec<String> = mongos
                .iter()
                .filter_map(|m| addr(&m["ConnectSting"], &m["Port"]))
                .collect();
            return Some(format!(
                "mongodb://{user}@{}/?authSource=admin",
                hosts.join(",")
            ));
        }
        let hosts: Vec<String> = a["ReplicaSets"]["ReplicaSet"]
            .as_array()?
            .iter()
            .filter_map(|m| addr(&m["ConnectionDomain"], &m["ConnectionPort"]))
            .collect();
        if hosts.iter().any(|h| h.ends_with(":3717")) {
            return None;
        }
        Some(format!(
            "mongodb://{user}@{}/?replicaSet={}&authSource=admin",
            hosts.join(","),
            a["ReplicaSetName"].as_str()?
        ))
    }

    /// Ensures the fleet, writes the profile, prints the banner.
    pub async fn run(&self) -> anyhow::Result<()> {
        let (fleet, target) = self.ensure().await?;
        self.write_profile()?;
        let banner = self.banner(&fleet, &target).await?;
        let mut out = std::io::stdout().lock();
        out.write_all(banner.as_bytes())?;
        out.flush()?;
        tracing::info!(target_instance = %target, "demo fleet ready");
        Ok(())
    }
}

/// Single-quoted for a POSIX shell unless plainly safe.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./-:=@%+,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A path as the user should type it from the current directory: relative (`./…`) when below it.
fn display_path(path: &Path) -> String {
    let cwd = std::env::current_dir().ok();
    let shown = if path.is_relative() {
        let s = path.display().to_string();
        if s.starts_with("./") || s.starts_with("../") {
            s
        } else {
            format!("./{s}")
        }
    } else if let Some(rel) = cwd.as_deref().and_then(|c| path.strip_prefix(c).ok()) {
        format!("./{}", rel.display())
    } else {
        path.display().to_string()
    };
    shell_word(&shown)
}

/// How to run this very binary from the current directory: `ddsd` when that is what `PATH` finds.
fn binary_word() -> String {
    let Ok(exe) = std::env::current_exe() else {
        return "ddsd".into();
    };
    let exe = exe.canonicalize().unwrap_or(exe);
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("ddsd"))
            .find(|c| c.is_file())
            .and_then(|c| c.canonicalize().ok())
            .is_some_and(|c| c == exe)
    });
    if on_path {
        "ddsd".into()
    } else {
        display_path(&exe)
    }
}

pub fn upgrade_command(target: &str, profile: &Path) -> String {
    format!(
        "{} upgrade {} --wait --profile {}",
        binary_word(),
        shell_word(target),
        display_path(profile)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_only_when_needed() {
        assert_eq!(
            shell_word("./data-demo/profile.toml"),
            "./data-demo/profile.toml"
        );
        assert_eq!(shell_word("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(
            display_path(Path::new("data-demo/p.toml")),
            "./data-demo/p.toml"
        );
        assert_eq!(display_path(Path::new("./x")), "./x");
        assert_eq!(display_path(Path::new("/nonexistent/x")), "/nonexistent/x");
    }

    #[test]
    fn tokens_differ_per_role_and_generation() {
        assert_eq!(Role::Sharded.token(0), "ddsd-demo-sharded-0");
        assert_ne!(Role::Sharded.token(1), Role::Sharded.token(0));
        assert_ne!(Role::ReplicaSet.token(0), Role::Standalone.token(0));
    }
}
