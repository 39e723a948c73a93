//! The kill -9 tests' server (upgrade_crash, spec_crash, durability): a real `ddsd serve` on a data dir
//! that outlives it (restarted on the same dir after each kill), with the generated admin key, and the
//! create parameters they share.

use std::path::Path;
use std::time::{Duration, Instant};

use ddsd_client::{Client, Credentials, Signature};
use serde_json::Value;

/// Simulated time runs this many times faster than wall time.
pub const SIM_SPEED: u32 = 40;

pub struct Server {
    running: super::Running,
    client: Client,
}

impl Server {
    pub fn start(root: &Path) -> Server {
        Self::start_with(
            root,
            &format!("region = \"cn-hangzhou\"\nsim_speed = {SIM_SPEED}\nmax_concurrent_operations = 32\n"),
        )
    }

    /// [`Server::start`] with this configuration file (written to `<root>/ddsd.toml`).
    pub fn start_with(root: &Path, config_toml: &str) -> Server {
        let config = root.join("ddsd.toml");
        std::fs::write(&config, config_toml).unwrap();
        let data_dir = root.join("data");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.join("stderr.log"))
            .unwrap();
        let mut cmd = super::serve_command();
        cmd.arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .stderr(stderr);
        let running = super::spawn(cmd);
        // The generated admin key: the pinned-kernel creates are operator extensions.
        let creds = Credentials::from_data_dir(&data_dir).unwrap();
        Server {
            client: Client::with_signature(&running.endpoint, creds, Signature::V3).unwrap(),
            running,
        }
    }

    pub fn kill9(self) {
        self.running.kill9();
    }

    pub async fn call(&self, action: &str, params: &[(&str, &str)]) -> Value {
        self.client
            .call(action, params)
            .await
            .unwrap_or_else(|e| panic!("{action} {params:?}: {e}"))
    }

    pub async fn attribute(&self, id: &str) -> Value {
        self.call("DescribeDBInstanceAttribute", &[("DBInstanceId", id)])
            .await["DBInstances"]["DBInstance"][0]
            .clone()
    }

    pub async fn last_operation(&self, id: &str) -> Value {
        self.call(
            "DdsdDescribeOperations",
            &[("DBInstanceId", id), ("MaxRecords", "1")],
        )
        .await["Operations"]["Operation"][0]
            .clone()
    }

    /// Creates `rs` replica sets and `sharded` clusters with `create(is_sharded)`'s action and
    /// parameters, and waits until every one is `Running` (at most `timeout`). Answers their ids, the
    /// replica sets first.
    pub async fn create_all(
        &self,
        rs: usize,
        sharded: usize,
        create: impl Fn(bool) -> (&'static str, Vec<(&'static str, &'static str)>),
        timeout: Duration,
    ) -> Vec<String> {
        let mut ids = Vec::new();
        for i in 0..rs + sharded {
            let (action, params) = create(i >= rs);
            let v = self.call(action, &params).await;
            ids.push(v["DBInstanceId"].as_str().unwrap().to_string());
        }
        let deadline = Instant::now() + timeout;
        while !self.all_settled(&ids).await {
            assert!(
                Instant::now() < deadline,
                "instances were not created in time"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ids
    }

    /// Lets the operations run for a random while (up to `max_run_ms`), then kill -9s the server and
    /// starts it again on the same data dir, until every instance in `ids` has settled (at most
    /// `timeout`). Answers the server running at the end and how many kills landed.
    pub async fn kill_until_settled(
        self,
        root: &Path,
        ids: &[String],
        rng: &mut impl rand::Rng,
        max_run_ms: u64,
        timeout: Duration,
        what: &str,
    ) -> (Server, u32) {
        let mut server = self;
        let mut kills = 0u32;
        let deadline = Instant::now() + timeout;
        loop {
            tokio::time::sleep(Duration::from_millis(rng.gen_range(30..max_run_ms))).await;
            if server.all_settled(ids).await {
                return (server, kills);
            }
            assert!(
                Instant::now() < deadline,
                "{what} did not finish in time ({kills} kills)"
            );
            server.kill9();
            kills += 1;
            server = Server::start(root);
        }
    }

    /// The instance's `DBInstanceStatus`, `None` once it is gone.
    pub async fn status(&self, id: &str) -> Option<String> {
        match self
            .client
            .call("DescribeDBInstanceAttribute", &[("DBInstanceId", id)])
            .await
        {
            Ok(v) => Some(
                v["DBInstances"]["DBInstance"][0]["DBInstanceStatus"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            ),
            Err(ddsd_client::ClientError::Api { code, .. })
                if code == "InvalidDBInstanceId.NotFound" =>
            {
                None
            }
            Err(e) => panic!("{e}"),
        }
    }

    /// Waits (at most 60 s) until [`Server::status`] is `want`.
    pub async fn wait_for(&self, id: &str, want: Option<&str>) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.status(id).await;
            if s.as_deref() == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{id} is {s:?}, expected {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether every instance is `Running` with its newest operation finished.
    pub async fn all_settled(&self, ids: &[String]) -> bool {
        for id in ids {
            let op = self.last_operation(id).await;
            if !matches!(op["Status"].as_str(), Some("Succeeded" | "Failed")) {
                return false;
            }
            if self.attribute(id).await["DBInstanceStatus"] != "Running" {
                return false;
            }
        }
        true
    }
}

/// `CreateDBInstance`'s parameters of a three-member 4.4 replica set.
pub fn rs_params() -> Vec<(&'static str, &'static str)> {
    vec![
        ("RegionId", "cn-hangzhou"),
        ("Engine", "MongoDB"),
        ("EngineVersion", "4.4"),
        ("DBInstanceClass", "dds.mongo.mid"),
        ("DBInstanceStorage", "20"),
    ]
}

/// `CreateShardingDBInstance`'s parameters of a 4.4 cluster: two shards, a config server, two mongos.
pub fn sharded_params() -> Vec<(&'static str, &'static str)> {
    vec![
        ("RegionId", "cn-hangzhou"),
        ("Engine", "MongoDB"),
        ("EngineVersion", "4.4"),
        ("ReplicaSet.1.Class", "dds.shard.mid"),
        ("ReplicaSet.1.Storage", "20"),
        ("ReplicaSet.2.Class", "dds.shard.mid"),
        ("ReplicaSet.2.Storage", "20"),
        ("ConfigServer.1.Class", "dds.cs.mid"),
        ("ConfigServer.1.Storage", "20"),
        ("Mongos.1.Class", "dds.mongos.mid"),
        ("Mongos.2.Class", "dds.mongos.mid"),
    ]
}
