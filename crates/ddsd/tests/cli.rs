//! The operator's CLI driven as a process against a real `ddsd serve`: `ddsd call` in both signature
//! versions (JSON and XML, credentials from flags, environment and profile files, errors as
//! `Code: Message`), `ddsd plan`, `ddsd upgrade --wait` / `ddsd restart --wait` with their non-TTY
//! progress lines and exit codes, `ddsd fault`, and the README's first command (`serve --demo`) whose
//! printed upgrade command must work exactly as printed.

mod common;

use std::io::{BufRead as _, BufReader, Read as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ddsd");
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// The kernels the catalog ships for engine 4.4: the tests start one behind the newest.
const OLDER: &str = "mongodb_20230310_4.4.14";
const NEWEST: &str = "mongodb_20240119_4.4.19";

/// A `ddsd serve` child whose stdout lines are collected as they come.
struct Server {
    child: Child,
    endpoint: String,
    data_dir: PathBuf,
    lines: mpsc::Receiver<String>,
    stdout: Vec<String>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Server {
    /// `ddsd serve` with `args` in `cwd`, plus `env`; waits for the listening line.
    fn spawn(cwd: &Path, args: &[&str], env: &[(&str, &str)], data_dir: PathBuf) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(cwd)
            .env_remove("DDSD_LISTEN")
            .env_remove("DDSD_DATA_DIR")
            .env_remove("DDSD_SIM_SPEED")
            .env_remove("DDSD_LOG_FORMAT")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn ddsd");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut err_pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut s = Server {
            child,
            endpoint: String::new(),
            data_dir,
            lines: rx,
            stdout: Vec::new(),
            stderr,
        };
        let line = s.wait_line(START_TIMEOUT, |l| l.starts_with("ddsd listening on "));
        s.endpoint = line["ddsd listening on ".len()..].to_string();
        s
    }

    /// A server for the CLI tests: the fixtures' `testid` key, simulated plane at 200×.
    fn start(root: &Path) -> Server {
        let config = root.join("ddsd.toml");
        std::fs::write(
            &config,
            "[[access_keys]]\nid = \"testid\"\nsecret = \"testsecret\"\n",
        )
        .unwrap();
        let data = root.join("data");
        Server::spawn(
            root,
            &[
                "serve",
                "--config",
                config.to_str().unwrap(),
                "--data-dir",
                data.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
                "--sim-speed",
                "200",
            ],
            &[],
            data.clone(),
        )
    }

    /// Reads stdout lines until one matches; returns it.
    fn wait_line(&mut self, timeout: Duration, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.stdout.push(line.clone());
                    if want(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no such line within {timeout:?}; stdout {:?}; stderr {}",
                    self.stdout,
                    String::from_utf8_lossy(&self.stderr.lock().unwrap())
                ),
            }
        }
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The result of one CLI run.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Runs the CLI with a clean environment: no `DDSD_*`, no `ALIBABA_CLOUD_*`, `HOME` at `home` (so no
/// profile of the machine's user is read), stdout a pipe (not a terminal).
fn cli(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env("HOME", home).stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("DDSD_") || k.starts_with("ALIBABA_CLOUD_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run ddsd").into()
}

/// `--endpoint E --data-dir D` (the admin key of that server).
fn admin<'a>(s: &'a Server, data: &'a str) -> Vec<&'a str> {
    vec!["--endpoint", &s.endpoint, "--data-dir", data]
}

fn create(home: &Path, s: &Server, sharded: bool) -> String {
    let data = s.data_dir.to_str().unwrap();
    let mut args = vec![
        "instance",
        "create",
        "--engine-version",
        "4.4",
        "--kernel",
        OLDER,
        "--wait",
    ];
    if sharded {
        args.extend([
            "--shard",
            "dds.shard.mid:20",
            "--shard",
            "dds.shard.mid:20",
            "--config-server",
            "dds.cs.mid:20",
            "--mongos",
            "dds.mongos.mid",
            "--mongos",
            "dds.mongos.mid",
        ]);
    } else {
        args.extend(["--class", "dds.mongo.mid", "--storage", "20"]);
    }
    args.extend(admin(s, data));
    let r = cli(home, &args, &[]).ok();
    r.json()["DBInstanceId"].as_str().unwrap().to_string()
}

fn attribute(home: &Path, s: &Server, id: &str) -> Value {
    let data = s.data_dir.to_str().unwrap();
    let mut args = vec!["call", "DescribeDBInstanceAttribute"];
    let p = format!("DBInstanceId={id}");
    args.push(&p);
    args.extend(admin(s, data));
    cli(home, &args, &[]).ok().json()["DBInstances"]["DBInstance"][0].clone()
}

fn last_operation(home: &Path, s: &Server, id: &str) -> Value {
    let data = s.data_dir.to_str().unwrap();
    let p = format!("DBInstanceId={id}");
    let mut args = vec!["call", "DdsdDescribeOperations", &p, "MaxRecords=1"];
    args.extend(admin(s, data));
    cli(home, &args, &[]).ok().json()["Operations"]["Operation"][0].clone()
}

/// The first member an upgrade of `id` restarts: the first `StopMember` of its plan.
fn first_member_to_restart(home: &Path, s: &Server, id: &str) -> String {
    let data = s.data_dir.to_str().unwrap();
    let mut args = vec!["plan", id, "--json"];
    args.extend(admin(s, data));
    let plan = cli(home, &args, &[]).ok().json();
    plan["Steps"]["Step"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Command"] == "StopMember")
        .and_then(|s| s["NodeId"].as_str())
        .unwrap()
        .to_string()
}

/// `N steps, …` from `ddsd plan`.
fn planned_steps(plan_stdout: &str) -> u64 {
    let line = plan_stdout
        .lines()
        .find(|l| l.contains(" steps, "))
        .unwrap_or_else(|| panic!("no step count in {plan_stdout}"));
    line.split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn call_signs_v1_and_v3_prints_json_or_xml_and_errors_as_code_message() {
    let root = common::TempDir::new("call");
    let s = Server::start(&root);
    let home = root.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let key = [
        "--access-key-id",
        "testid",
        "--access-key-secret",
        "testsecret",
    ];
    for sig in ["v1", "v3"] {
        let mut args = vec![
            "call",
            "DescribeRegions",
            "--signature",
            sig,
            "--endpoint",
            &s.endpoint,
        ];
        args.extend(key);
        let r = cli(&home, &args, &[]).ok();
        let v = r.json();
        let regions = v["Regions"]["DdsRegion"].as_array().expect("regions");
        assert!(
            regions.iter().any(|r| r["RegionId"] == "cn-hangzhou"),
            "{sig}"
        );
        assert!(r.stdout.contains("\n  \""), "pretty-printed: {}", r.stdout);

        args.extend(["--format", "xml"]);
        let r = cli(&home, &args, &[]).ok();
        assert!(r.stdout.starts_with("<?xml"), "{sig}: {}", r.stdout);
        assert!(
            r.stdout.contains("<RegionId>cn-hangzhou</RegionId>"),
            "{}",
            r.stdout
        );

        // A refusal: `Code: Message`, then the RequestId, exit 1 — in either format.
        for format in ["json", "xml"] {
            let mut args = vec![
                "call",
                "DescribeDBInstanceAttribute",
                "DBInstanceId=dds-nope",
                "--signature",
                sig,
                "--format",
                format,
                "--endpoint",
                &s.endpoint,
            ];
            args.extend(key);
            let r = cli(&home, &args, &[]);
            assert_eq!(r.code, 1, "{sig} {format}: {}", r.stderr);
            let lines: Vec<&str> = r.stderr.lines().collect();
            assert_eq!(
                lines[0],
                "InvalidDBInstanceId.NotFound: The DBInstanceId provided does not exist in our records.",
                "{sig} {format}"
            );
            assert!(
                lines[1].starts_with("RequestId: ") && lines[1].ends_with("(HTTP 404)"),
                "{}",
                lines[1]
            );
            assert!(r.stdout.is_empty());
        }
    }

    // Credentials from the environment, the endpoint from DDSD_ENDPOINT.
    let env = [
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", "testid"),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "testsecret"),
        ("DDSD_ENDPOINT", s.endpoint.as_str()),
    ];
    cli(&home, &["call", "DescribeRegions"], &env).ok();
    // A wrong secret is the server's refusal.
    let r = cli(
        &home,
        &["call", "DescribeRegions"],
        &[
            ("ALIBABA_CLOUD_ACCESS_KEY_ID", "testid"),
            ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "wrong"),
            ("DDSD_ENDPOINT", s.endpoint.as_str()),
        ],
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.starts_with("SignatureDoesNotMatch: "),
        "{}",
        r.stderr
    );

    // A profile file: endpoint, key and signature in one place; refused while others may read it.
    let profile = root.join("p.toml");
    std::fs::write(
        &profile,
        format!(
            "endpoint = \"{}\"\naccess_key_id = \"testid\"\naccess_key_secret = \"testsecret\"\nsignature = \"v1\"\n",
            s.endpoint
        ),
    )
    .unwrap();
    std::fs::set_permissions(&profile, std::fs::Permissions::from_mode(0o644)).unwrap();
    let p = profile.to_str().unwrap();
    let r = cli(&home, &["call", "DescribeRegions", "--profile", p], &[]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("chmod 600"), "{}", r.stderr);
    std::fs::set_permissions(&profile, std::fs::Permissions::from_mode(0o600)).unwrap();
    cli(&home, &["call", "DescribeRegions", "--profile", p], &[]).ok();
    cli(&home, &["call", "DescribeRegions"], &[("DDSD_PROFILE", p)]).ok();
    // The default profile in ~/.ddsd.
    std::fs::create_dir_all(home.join(".ddsd")).unwrap();
    std::fs::copy(&profile, home.join(".ddsd/profile.toml")).unwrap();
    cli(&home, &["call", "DescribeRegions"], &[]).ok();

    // Nothing listening: a connection problem, exit 2.
    let r = cli(
        &home,
        &[
            "call",
            "DescribeRegions",
            "--endpoint",
            "http://127.0.0.1:1",
        ],
        &[],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    // Bad usage: exit 2 as well.
    let r = cli(&home, &["call", "DescribeRegions", "NoEqualsSign"], &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

/// Progress lines of a non-TTY run: `[mm:ss] …`.
fn progress_lines(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|l| {
            let b = l.as_bytes();
            b.len() > 8 && b[0] == b'[' && b[3] == b':' && b[6] == b']'
        })
        .collect()
}

#[test]
fn upgrade_wait_brings_replica_sets_and_sharded_clusters_to_the_target_kernel() {
    let root = common::TempDir::new("upgrade");
    let s = Server::start(&root);
    let home = root.join("home");
    let data = s.data_dir.to_str().unwrap().to_string();
    for sharded in [false, true] {
        let id = create(&home, &s, sharded);
        let mut args = vec!["plan", id.as_str()];
        args.extend(admin(&s, &data));
        let plan = cli(&home, &args, &[]).ok();
        let steps = planned_steps(&plan.stdout);
        assert!(plan.stdout.contains("Dry run: nothing was changed."));
        assert_eq!(attribute(&home, &s, &id)["CurrentKernelVersion"], OLDER);

        let mut args = vec!["upgrade", id.as_str(), "--wait", "--poll-ms", "100"];
        args.extend(admin(&s, &data));
        let r = cli(&home, &args, &[]).ok();
        let last = r.stdout.lines().last().unwrap();
        assert!(
            last.starts_with(&format!("{id} is Running on {NEWEST} after ")),
            "{last}"
        );
        // Not a terminal: plain lines, one per change, ending with every part done.
        let lines = progress_lines(&r.stdout);
        assert!(lines.len() >= 4, "{}", r.stdout);
        assert!(!r.stdout.contains('\r') && !r.stdout.contains('\u{1b}'));
        if sharded {
            for part in ["config servers ", "shard ", "mongos: 2/2 done"] {
                assert!(
                    lines.iter().any(|l| l.contains(part)),
                    "{part}: {}",
                    r.stdout
                );
            }
            let shards_done = lines
                .iter()
                .filter(|l| l.contains("] shard ") && l.contains(": 3/3 done"))
                .count();
            assert_eq!(shards_done, 2, "{}", r.stdout);
        } else {
            assert!(
                lines
                    .iter()
                    .any(|l| l.contains("replica set ") && l.contains("3/3 done")),
                "{}",
                r.stdout
            );
        }
        assert!(lines.iter().any(|l| l.contains("operation succeeded")));
        // No line repeats: one line per change.
        let bodies: Vec<&str> = lines.iter().map(|l| &l[8..]).collect();
        for w in bodies.windows(2) {
            assert_ne!(w[0], w[1]);
        }

        let a = attribute(&home, &s, &id);
        assert_eq!(
            (
                a["DBInstanceStatus"].as_str(),
                a["CurrentKernelVersion"].as_str()
            ),
            (Some("Running"), Some(NEWEST))
        );
        let op = last_operation(&home, &s, &id);
        assert_eq!(op["Status"], "Succeeded");
        assert_eq!(
            op["Report"]["CommandsExecuted"].as_u64(),
            Some(steps),
            "ddsd plan said {steps} steps"
        );

        // Nothing left to do: the refusal, exit 1.
        let mut args = vec!["upgrade", id.as_str(), "--wait"];
        args.extend(admin(&s, &data));
        let r = cli(&home, &args, &[]);
        assert_eq!(r.code, 1);
        assert!(
            r.stderr.starts_with("InvalidMinorVersionAlreadyLatest: "),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn an_armed_fault_stops_the_upgrade_at_that_member_and_restart_wait_works() {
    let root = common::TempDir::new("fault");
    let s = Server::start(&root);
    let home = root.join("home");
    let data = s.data_dir.to_str().unwrap().to_string();
    let id = create(&home, &s, false);
    let member = first_member_to_restart(&home, &s, &id);

    // Only an admin key may arm faults.
    let r = cli(
        &home,
        &[
            "fault",
            "arm",
            &id,
            "start-fails",
            "--node",
            &member,
            "--endpoint",
            &s.endpoint,
            "--access-key-id",
            "testid",
            "--access-key-secret",
            "testsecret",
        ],
        &[],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.starts_with("Forbidden.RAM: "), "{}", r.stderr);
    let mut args = vec![
        "fault",
        "arm",
        id.as_str(),
        "start-fails",
        "--node",
        "d-nope",
    ];
    args.extend(admin(&s, &data));
    let r = cli(&home, &args, &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.starts_with("InvalidParameter: "), "{}", r.stderr);

    let mut args = vec![
        "fault",
        "arm",
        id.as_str(),
        "start-fails",
        "--node",
        &member,
    ];
    args.extend(admin(&s, &data));
    let r = cli(&home, &args, &[]).ok();
    assert_eq!(
        r.stdout.trim(),
        format!("armed on {id}: StartFails NodeId={member}")
    );
    let mut args = vec!["fault", "list", id.as_str()];
    args.extend(admin(&s, &data));
    let r = cli(&home, &args, &[]).ok();
    assert_eq!(r.stdout.trim(), format!("StartFails NodeId={member}"));

    let mut args = vec!["upgrade", id.as_str(), "--wait", "--poll-ms", "100"];
    args.extend(admin(&s, &data));
    let r = cli(&home, &args, &[]);
    assert_eq!(r.code, 3, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    let first = r.stderr.lines().next().unwrap();
    assert!(
        first.starts_with(&format!("ddsd: upgrade of {id} FAILED at member {member} ")),
        "{}",
        r.stderr
    );
    assert!(first.contains("the process"), "{first}");
    assert!(
        progress_lines(&r.stdout)
            .iter()
            .any(|l| l.contains(&format!("FAILED at member {member}"))),
        "{}",
        r.stdout
    );
    // Stopped at that member: back Running on the old kernel everywhere, nothing else restarted.
    let a = attribute(&home, &s, &id);
    assert_eq!(
        (
            a["DBInstanceStatus"].as_str(),
            a["CurrentKernelVersion"].as_str()
        ),
        (Some("Running"), Some(OLDER))
    );
    let op = last_operation(&home, &s, &id);
    assert_eq!(op["Status"], "Failed");
    assert_eq!(
        op["Progress"]["Failure"]["NodeId"].as_str(),
        Some(member.as_str())
    );
    let restarted: Vec<&Value> = op["Report"]["ReplicaSets"][0]["Members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["Restarted"] == true)
        .collect();
    assert!(restarted.is_empty(), "{restarted:?}");

    let mut args = vec!["fault", "clear", id.as_str()];
    args.extend(admin(&s, &data));
    let r = cli(&home, &args, &[]).ok();
    assert_eq!(r.stdout.trim(), format!("cleared 1 fault(s) on {id}"));

    // A rolling restart, waited for: every member restarted, back Running on the same kernel. The
    // reverted member is still catching up for a moment; until then the live preflight refuses.
    let mut args = vec!["restart", id.as_str(), "--wait", "--poll-ms", "100"];
    args.extend(admin(&s, &data));
    let deadline = Instant::now() + Duration::from_secs(60);
    let r = loop {
        let r = cli(&home, &args, &[]);
        if r.code == 1
            && r.stderr.starts_with("IncorrectDBInstanceState: ")
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        break r.ok();
    };
    let last = r.stdout.lines().last().unwrap();
    assert!(
        last.starts_with(&format!("{id} is Running on {OLDER} after "))
            && last.contains(": 3 processes restarted"),
        "{last}"
    );
    // With the fault cleared the upgrade now goes through.
    let mut args = vec!["upgrade", id.as_str(), "--wait", "--poll-ms", "100"];
    args.extend(admin(&s, &data));
    cli(&home, &args, &[]).ok();
    assert_eq!(attribute(&home, &s, &id)["CurrentKernelVersion"], NEWEST);
}

/// The first command of the README's first shell block.
fn readme_first_command() -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .expect("README.md");
    let block = readme
        .split("```sh\n")
        .nth(1)
        .expect("a ```sh block in the README");
    block.lines().next().unwrap().to_string()
}

#[test]
fn the_readme_first_command_brings_up_the_demo_and_its_printed_command_works_as_printed() {
    let first = readme_first_command();
    let command = first.split('#').next().unwrap().trim();
    let args = command
        .strip_prefix("cargo run --release -p ddsd -- ")
        .unwrap_or_else(|| panic!("the README starts with {first:?}"));
    let args: Vec<&str> = args.split_whitespace().collect();
    assert_eq!(args, ["serve", "--demo"]);

    // A fresh directory, as on a fresh clone; only the port is left to the OS (8080 may be taken here).
    let cwd = common::TempDir::new("demo");
    let mut s = Server::spawn(
        &cwd,
        &args,
        &[("DDSD_LISTEN", "127.0.0.1:0")],
        cwd.join("data-demo"),
    );
    assert!(s.stdout.iter().any(|l| l.starts_with("AccessKeyId: LTAI")));
    s.wait_line(Duration::from_secs(120), |l| l.ends_with("by running:"));
    let printed = s.wait_line(Duration::from_secs(5), |_| true);
    let printed = printed.trim().to_string();
    assert!(
        printed.contains(" upgrade dds-")
            && printed.ends_with("--wait --profile ./data-demo/profile.toml"),
        "{printed}"
    );
    let banner = s.stdout.join("\n");
    for part in [
        "sharded cluster",
        "replica set",
        "standalone",
        &s.endpoint.clone(),
        "AccessKeySecret",
        "mongodb (replica set) mongodb://root:Demo",
        "mongodb (mongos)      mongodb://root:Demo",
    ] {
        assert!(banner.contains(part), "{part}: {banner}");
    }
    let target = printed
        .split_whitespace()
        .find(|w| w.starts_with("dds-"))
        .unwrap()
        .to_string();

    let started = Instant::now();
    let out: Run = Command::new("sh")
        .arg("-c")
        .arg(&printed)
        .current_dir(&*cwd)
        .env("HOME", cwd.join("home"))
        .stdin(Stdio::null())
        .output()
        .unwrap()
        .into();
    let out = out.ok();
    let took = started.elapsed();
    let last = out.stdout.lines().last().unwrap();
    assert!(
        last.starts_with(&format!("{target} is Running on {NEWEST} after ")),
        "{last}"
    );
    assert!(
        last.contains("11 processes restarted, 3 elections"),
        "{last}"
    );
    assert!(
        took < Duration::from_secs(60),
        "the demo upgrade took {took:?}"
    );

    // A second start reuses the fleet and offers the replica set, which still has work to do.
    s.stop();
    let mut s = Server::spawn(
        &cwd,
        &args,
        &[("DDSD_LISTEN", "127.0.0.1:0")],
        cwd.join("data-demo"),
    );
    assert!(
        !s.stdout.iter().any(|l| l.starts_with("AccessKeyId: ")),
        "printed once"
    );
    s.wait_line(Duration::from_secs(60), |l| l.ends_with("by running:"));
    let again = s.wait_line(Duration::from_secs(5), |_| true);
    assert!(
        again.contains(" upgrade dds-") && !again.contains(&target),
        "{again}"
    );
    assert!(
        s.stdout
            .iter()
            .any(|l| l.contains("sharded cluster") && l.contains(&target)),
        "{:?}",
        s.stdout
    );
    s.stop();
}

#[test]
fn json_logs_put_the_request_id_on_every_line_a_request_logs() {
    let root = common::TempDir::new("jsonlogs");
    let config = root.join("ddsd.toml");
    std::fs::write(&config, "metrics = \"off\"\n").unwrap();
    let data = root.join("data");
    let mut s = Server::spawn(
        &root,
        &[
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--sim-speed",
            "200",
            "--log-format",
            "json",
        ],
        &[],
        data.clone(),
    );
    let home = root.join("home");
    // Requests whose handlers log (a create, an upgrade accepted) and refusals.
    let id = create(&home, &s, false);
    let d = data.to_str().unwrap();
    let mut args = vec!["upgrade", id.as_str(), "--wait", "--poll-ms", "100"];
    args.extend(admin(&s, d));
    cli(&home, &args, &[]).ok();
    let mut args = vec![
        "call",
        "DescribeDBInstanceAttribute",
        "DBInstanceId=dds-nope",
    ];
    args.extend(admin(&s, d));
    assert_eq!(cli(&home, &args, &[]).code, 1);

    // With `metrics = "off"`, /metrics is just an unknown path.
    let addr = s.endpoint.trim_start_matches("http://").to_string();
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    use std::io::Write as _;
    write!(
        conn,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(answer.contains("InvalidAction.NotFound"), "{answer}");

    s.stop();
    std::thread::sleep(Duration::from_millis(100));
    let logs = String::from_utf8_lossy(&s.stderr.lock().unwrap()).into_owned();
    let mut per_request: std::collections::HashMap<String, Vec<String>> = Default::default();
    let mut request_lines = 0;
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let target = v["target"].as_str().unwrap_or_default();
        let message = v["fields"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        // Everything the request path logs: the server's per-request lines and every handler's.
        let of_a_request = target.starts_with("ddsd::server::actions")
            || (target == "ddsd::server::http" && message.starts_with("request"));
        if !of_a_request {
            continue;
        }
        request_lines += 1;
        let rid = v["span"]["request_id"]
            .as_str()
            .unwrap_or_else(|| panic!("a request's line without its request_id: {line}"));
        per_request
            .entry(rid.to_string())
            .or_default()
            .push(message);
    }
    assert!(request_lines > 10, "{logs}");
    // Each request logged exactly one completion line under its own id; the handlers' lines
    // ("operation accepted") sit under the id of the request that caused them.
    for (rid, messages) in &per_request {
        assert_eq!(
            messages.iter().filter(|m| *m == "request done").count(),
            1,
            "{rid}: {messages:?}"
        );
    }
    assert!(
        per_request
            .values()
            .any(|m| m.iter().any(|m| m == "operation accepted")),
        "{logs}"
    );
}

/// The bars themselves, in a real terminal: `scripts/tty-demo.sh` runs the demo's upgrade command in
/// tmux and checks the captured screens.
#[test]
fn progress_bars_in_a_real_terminal() {
    let tmux = Command::new("tmux").arg("-V").output();
    if !tmux.is_ok_and(|o| o.status.success()) {
        eprintln!(
            "SKIPPED progress_bars_in_a_real_terminal: tmux is not installed and scripts/setup-test-env.sh could not install it"
        );
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/tty-demo.sh");
    let out: Run = Command::new("bash")
        .arg(&script)
        .arg(BIN)
        .env("HOME", std::env::temp_dir())
        .stdin(Stdio::null())
        .output()
        .unwrap()
        .into();
    let out = out.ok();
    assert!(out.stdout.contains("tty-demo: OK"), "{}", out.stdout);
}

/// `(replica set NodeId, member NodeId)` of every process the operation's report says it
/// restarted, and the mongos it restarted.
fn restarted_processes(op: &Value) -> (Vec<(String, String)>, Vec<String>) {
    let mut members = Vec::new();
    for rs in op["Report"]["ReplicaSets"].as_array().into_iter().flatten() {
        for m in rs["Members"].as_array().into_iter().flatten() {
            if m["Restarted"] == true {
                members.push((
                    rs["NodeId"].as_str().unwrap().to_string(),
                    m["NodeId"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    let mongos = op["Report"]["Mongos"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["Restarted"] == true)
        .map(|m| m["NodeId"].as_str().unwrap().to_string())
        .collect();
    (members, mongos)
}

#[test]
fn restart_node_id_rolls_only_that_shard_or_that_mongos() {
    let root = common::TempDir::new("restart-node");
    let s = Server::start(&root);
    let home = root.join("home");
    let data = s.data_dir.to_str().unwrap().to_string();
    let id = create(&home, &s, true);
    let a = attribute(&home, &s, &id);
    let shards: Vec<String> = a["ShardList"]["ShardAttribute"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["NodeId"].as_str().unwrap().to_string())
        .collect();
    let mongos: Vec<String> = a["MongosList"]["MongosAttribute"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["NodeId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!((shards.len(), mongos.len()), (2, 2), "{a}");

    // The dry run of a one-shard restart, then the restart itself, waited for.
    let target = &shards[1];
    let mut args = vec!["plan", id.as_str(), "--restart", "--node-id", target];
    args.extend(admin(&s, &data));
    let plan = cli(&home, &args, &[]).ok();
    let steps = planned_steps(&plan.stdout);
    // `ddsd restart ID --node-id NODE --wait`: its stdout, and the operation it ran.
    let restart_node = |node: &str| {
        let mut args = vec![
            "restart",
            id.as_str(),
            "--node-id",
            node,
            "--wait",
            "--poll-ms",
            "100",
        ];
        args.extend(admin(&s, &data));
        let stdout = cli(&home, &args, &[]).ok().stdout;
        let op = last_operation(&home, &s, &id);
        assert_eq!(op["Status"], "Succeeded", "{stdout}");
        (stdout, op)
    };
    let (stdout, op) = restart_node(target);
    let last = stdout.lines().last().unwrap();
    assert!(
        last.starts_with(&format!("{id} is Running on {OLDER} after "))
            && last.contains(": 3 processes restarted"),
        "{stdout}"
    );
    assert_eq!(op["Report"]["CommandsExecuted"].as_u64(), Some(steps));
    let (members, restarted_mongos) = restarted_processes(&op);
    assert_eq!(members.len(), 3, "{members:?}");
    assert!(members.iter().all(|(rs, _)| rs == target), "{members:?}");
    assert!(restarted_mongos.is_empty(), "{restarted_mongos:?}");
    let a = attribute(&home, &s, &id);
    assert_eq!(a["DBInstanceStatus"], "Running");
    for x in a["ShardList"]["ShardAttribute"].as_array().unwrap() {
        assert_eq!(x["Status"], "Running", "{x}");
    }

    // One mongos: that process alone.
    let (stdout, op) = restart_node(&mongos[0]);
    let last = stdout.lines().last().unwrap();
    assert!(last.contains(": 1 process restarted,"), "{stdout}");
    let (members, restarted_mongos) = restarted_processes(&op);
    assert!(members.is_empty(), "{members:?}");
    assert_eq!(restarted_mongos, vec![mongos[0].clone()]);

    // A node of no instance: the vendor's refusal, exit 1, nothing started.
    let before = op["OperationId"].clone();
    let mut args = vec!["restart", id.as_str(), "--node-id", "d-nope", "--wait"];
    args.extend(admin(&s, &data));
    let r = cli(&home, &args, &[]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stderr.starts_with("InvalidParameter: "), "{}", r.stderr);
    assert_eq!(last_operation(&home, &s, &id)["OperationId"], before);
}

#[test]
fn watch_follows_an_upgrade_started_without_wait_and_operations_lists_the_outcomes() {
    let root = common::TempDir::new("watch");
    let s = Server::start(&root);
    let home = root.join("home");
    let data = s.data_dir.to_str().unwrap().to_string();
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(admin(&s, &data));
        cli(&home, &all, &[])
    };
    let id = create(&home, &s, false);

    // The first member the upgrade restarts will fail to start: the upgrade, started without --wait
    // (as a script would), is followed afterwards by `watch`, which ends as `--wait` would have.
    let member = first_member_to_restart(&home, &s, &id);
    run(&["fault", "arm", &id, "start-fails", "--node", &member]).ok();
    run(&["upgrade", &id]).ok();
    let r = run(&["watch", &id, "--poll-ms", "100"]);
    assert_eq!(r.code, 3, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .starts_with(&format!("ddsd: upgrade of {id} FAILED at member {member} ")),
        "{}",
        r.stderr
    );
    // The summary says what became of the failing member: stopped, failed to start, put back.
    assert!(
        r.stderr.contains(&format!(
            "0 processes restarted ({member} failed, reverted to {OLDER}), 0 elections"
        )),
        "{}",
        r.stderr
    );
    let failed = last_operation(&home, &s, &id);
    assert_eq!(failed["Status"], "Failed");
    run(&["fault", "clear", &id]).ok();

    // Retried once the member has caught up again (the live preflight refuses until then).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = run(&["upgrade", &id]);
        if r.code == 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        r.ok();
        break;
    }
    let r = run(&["watch", &id, "--poll-ms", "100"]).ok();
    let last = r.stdout.lines().last().unwrap();
    assert!(
        last.starts_with(&format!("{id} is Running on {NEWEST} after "))
            && last.contains(": 3 processes restarted, 1 election"),
        "{last}"
    );
    assert_eq!(attribute(&home, &s, &id)["CurrentKernelVersion"], NEWEST);
    // A finished operation is concluded at once, by its id too; an unknown id is the API's refusal.
    let upgrade = last_operation(&home, &s, &id);
    let op_id = upgrade["OperationId"].as_str().unwrap();
    let again = run(&["watch", &id, "--operation-id", op_id]).ok();
    assert_eq!(again.stdout.lines().last(), Some(last));
    let r = run(&["watch", &id, "--operation-id", "op-nope"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.starts_with("InvalidOperationId.NotFound: "),
        "{}",
        r.stderr
    );

    // Newest first: the upgrade with its summary, the failed one with its member and reason, the create.
    let r = run(&["operations", &id]).ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines[0].starts_with("OPERATION "), "{}", r.stdout);
    assert_eq!(lines.len(), 4, "{}", r.stdout);
    let cells = |l: &str| {
        l.split_whitespace()
            .take(3)
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        cells(lines[1]),
        [op_id, "UpgradeDBInstanceKernelVersion", "Succeeded"]
    );
    assert!(
        lines[1].ends_with(&format!(
            "Upgrading {id} to {NEWEST}: {}",
            last.split_once(": ").unwrap().1
        )),
        "{}",
        lines[1]
    );
    assert_eq!(
        cells(lines[2]),
        [
            failed["OperationId"].as_str().unwrap(),
            "UpgradeDBInstanceKernelVersion",
            "Failed"
        ]
    );
    assert!(
        lines[2].contains(&format!("FAILED at member {member} ")),
        "{}",
        lines[2]
    );
    assert_eq!(cells(lines[3])[1], "CreateDBInstance");
    let r = run(&["operations", &id, "--max-records", "1", "--json"]).ok();
    assert_eq!(r.json()["Operations"]["Operation"][0]["OperationId"], op_id);
}

#[test]
fn switch_ha_wait_hands_the_primary_over_and_names_the_new_one() {
    let root = common::TempDir::new("switch-ha");
    let s = Server::start(&root);
    let home = root.join("home");
    let data = s.data_dir.to_str().unwrap().to_string();
    let id = create(&home, &s, false);
    let primary = |home: &Path| -> String {
        let p = format!("DBInstanceId={id}");
        let mut args = vec!["call", "DescribeReplicaSetRole", p.as_str()];
        args.extend(admin(&s, &data));
        let v = cli(home, &args, &[]).ok().json();
        v["ReplicaSets"]["ReplicaSet"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["ReplicaSetRole"] == "Primary")
            .unwrap()["RoleId"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let before = primary(&home);

    let mut args = vec!["switch-ha", id.as_str(), "--wait", "--poll-ms", "100"];
    args.extend(admin(&s, &data));
    let r = cli(&home, &args, &[]).ok();
    assert!(
        r.stdout
            .starts_with(&format!("{id}: primary switch accepted (RequestId ")),
        "{}",
        r.stdout
    );
    let after = primary(&home);
    assert_ne!(before, after);
    assert!(
        r.stdout.contains(&format!(": new primary {after}")),
        "{}",
        r.stdout
    );
    let last = r.stdout.lines().last().unwrap();
    assert!(
        last.starts_with(&format!("{id} is Running on {OLDER} after "))
            && last.contains(": 0 processes restarted, 1 election,"),
        "{last}"
    );
    assert_eq!(
        last_operation(&home, &s, &id)["Action"],
        "SwitchDBInstanceHA"
    );

    // A sharded cluster needs the shard: the API's refusal, exit 1.
    let sh = create(&home, &s, true);
    let mut args = vec!["switch-ha", sh.as_str()];
    args.extend(admin(&s, &data));
    let r = cli(&home, &args, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.starts_with("MissingNodeId: "), "{}", r.stderr);
}

#[test]
fn modify_spec_wait_restarts_every_member_once_onto_the_new_class() {
    let root = common::TempDir::new("modify-spec");
    let s = Server::start(&root);
    let home = root.join("home");
    let data = s.data_dir.to_str().unwrap().to_string();
    let id = create(&home, &s, false);

    let mut args = vec![
        "modify-spec",
        id.as_str(),
        "--class",
        "dds.mongo.standard",
        "--storage",
        "30",
        "--wait",
        "--poll-ms",
        "100",
    ];
    args.extend(admin(&s, &data));
    let r = cli(&home, &args, &[]).ok();
    assert!(
        r.stdout
            .starts_with(&format!("{id}: class change accepted (OrderId ")),
        "{}",
        r.stdout
    );
    let last = r.stdout.lines().last().unwrap();
    assert!(
        last.starts_with(&format!("{id} is Running on {OLDER} after "))
            && last.contains(": 3 processes restarted,"),
        "{last}"
    );
    assert_eq!(
        last_operation(&home, &s, &id)["Action"],
        "ModifyDBInstanceSpec"
    );
    let p = format!("DBInstanceId={id}");
    let mut args = vec!["call", "DescribeDBInstanceAttribute", p.as_str()];
    args.extend(admin(&s, &data));
    let v = cli(&home, &args, &[]).ok().json();
    let a = &v["DBInstances"]["DBInstance"][0];
    assert_eq!(
        (&a["DBInstanceClass"], &a["DBInstanceStorage"]),
        (
            &serde_json::json!("dds.mongo.standard"),
            &serde_json::json!(30)
        ),
        "{a}"
    );

    // Nothing to change: the API's refusal, exit 1.
    let mut args = vec!["modify-spec", id.as_str(), "--class", "dds.mongo.standard"];
    args.extend(admin(&s, &data));
    let r = cli(&home, &args, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.starts_with("InvalidParameter: "), "{}", r.stderr);
}

#[test]
fn engine_upgrade_wait_goes_one_major_up_and_raises_the_fcv_last() {
    let root = common::TempDir::new("engine-upgrade");
    let s = Server::start(&root);
    let home = root.join("home");
    let data = s.data_dir.to_str().unwrap().to_string();
    let id = create(&home, &s, false);

    // A skipped major is the API's refusal, exit 1.
    let mut args = vec!["engine-upgrade", id.as_str(), "--engine-version", "6.0"];
    args.extend(admin(&s, &data));
    let r = cli(&home, &args, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.starts_with("EngineVersion.ERROR: "),
        "{}",
        r.stderr
    );

    let mut args = vec![
        "engine-upgrade",
        id.as_str(),
        "--engine-version",
        "5.0",
        "--wait",
        "--poll-ms",
        "100",
    ];
    args.extend(admin(&s, &data));
    let r = cli(&home, &args, &[]).ok();
    assert!(
        r.stdout.starts_with(&format!(
            "{id}: major version upgrade to 5.0 accepted (RequestId "
        )),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains(&format!("{id}: featureCompatibilityVersion raised to 5.0")),
        "{}",
        r.stdout
    );
    let last = r.stdout.lines().last().unwrap();
    assert!(
        last.starts_with(&format!(
            "{id} is Running on 5.0.22-20240110161145_1 after "
        )) && last.contains(": 3 processes restarted,"),
        "{last}"
    );
    assert_eq!(
        last_operation(&home, &s, &id)["Action"],
        "UpgradeDBInstanceEngineVersion"
    );
}
