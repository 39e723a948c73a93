//! `ddsd agent` as a process, with the child-process supervisor and stand-in kernels: shell
//! scripts installed as `<kernels_dir>/<kernel>/bin/mongod` that record their start, their
//! arguments and the signals they get. Driven through the signed `AgentClient`.
//!
//! Kernels: `7.0.1` and `8.0.4` exit on SIGTERM; `6.0.0-stubborn` ignores SIGTERM (the agent must
//! escalate to SIGKILL); `0.0.0-broken` exits at once. Nothing listens on the processes' ports, so
//! the `shutdown` command fails fast and the signals do the work.

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{TempDir, BIN};
use ddsd::agent::api::{AgentClient, AgentEndpoint, AGENT_API_VERSION};

const KEY_ID: &str = "agent-db1";
const SECRET: &str = "agent-db1-secret";
const LISTENING: &str = "ddsd agent listening on ";

struct Fixture {
    dir: TempDir,
    record: PathBuf,
    config: PathBuf,
    ports: [u16; 2],
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn install_kernel(kernels: &Path, kernel: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    let bin = kernels.join(kernel).join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let path = bin.join("mongod");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let dir = TempDir::new(&format!("agent-{name}"));
        let record = dir.join("record.log");
        let kernels = dir.join("kernels");
        let r = record.display();
        for kernel in ["7.0.1", "8.0.4"] {
            install_kernel(
                &kernels,
                kernel,
                &format!(
                    "echo \"start kernel={kernel} pid=$$ args=$*\" >> {r}\n\
                     trap 'echo \"term kernel={kernel} pid=$$\" >> {r}; exit 0' TERM\n\
                     while :; do sleep 0.1 & wait $!; done"
                ),
            );
        }
        install_kernel(
            &kernels,
            "6.0.0-stubborn",
            &format!(
                "echo \"start kernel=6.0.0-stubborn pid=$$ args=$*\" >> {r}\n\
                 trap 'echo \"term-ignored pid=$$\" >> {r}' TERM\n\
                 while :; do sleep 0.1 & wait $!; done"
            ),
        );
        install_kernel(
            &kernels,
            "0.0.0-broken",
            &format!("echo \"start kernel=0.0.0-broken pid=$$\" >> {r}\necho 'broken kernel: cannot start' >&2\nexit 3"),
        );
        // Not a kernel: no bin/mongod.
        std::fs::create_dir_all(kernels.join("5.0.0-empty").join("bin")).unwrap();
        let secret_file = dir.join("secret");
        std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
        let ports = [free_port(), free_port()];
        let config = dir.join("agent.toml");
        std::fs::write(
            &config,
            format!(
                r#"listen = "127.0.0.1:0"
host_name = "db1"
kernels_dir = "{kernels}"
state_dir = "{state}"
supervisor = "child"
shutdown_timeout_ms = 300
term_timeout_ms = 1000
start_check_ms = 300

[[keys]]
id = "{KEY_ID}"
secret_file = "{secret}"

[[processes]]
name = "rs0-a"
kind = "mongod"
port = {p0}
address = "127.0.0.1:{p0}"
data_dir = "{data}/rs0-a"
kernel_version = "7.0.1"

[[processes]]
name = "rs0-b"
kind = "mongod"
port = {p1}
address = "127.0.0.1:{p1}"
data_dir = "{data}/rs0-b"
kernel_version = "7.0.1"
bind_ip = "127.0.0.1"
"#,
                kernels = kernels.display(),
                state = dir.join("state").display(),
                secret = secret_file.display(),
                data = dir.join("data").display(),
                p0 = ports[0],
                p1 = ports[1],
            ),
        )
        .unwrap();
        Fixture {
            dir,
            record,
            config,
            ports,
        }
    }

    fn records(&self) -> Vec<String> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn starts(&self) -> Vec<String> {
        self.records()
            .into_iter()
            .filter(|l| l.starts_with("start "))
            .collect()
    }

    fn spawn(&self) -> Agent {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("agent.stderr"))
            .unwrap();
        let mut child = Command::new(BIN)
            .args(["agent", "--config"])
            .arg(&self.config)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let endpoint = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(e) = line.strip_prefix(LISTENING) {
                        break e.to_string();
                    }
                }
                _ => {
                    let status = child.wait();
                    panic!(
                        "the agent exited before listening ({status:?}): {}",
                        std::fs::read_to_string(self.dir.join("agent.stderr")).unwrap_or_default()
                    );
                }
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        Agent { child, endpoint }
    }
}

impl Drop for Fixture {
    /// The stand-ins run in their own process groups and outlive the agent: end them.
    fn drop(&mut self) {
        for line in self.records() {
            if let Some(pid) = line.split_whitespace().find_map(|w| w.strip_prefix("pid=")) {
                let _ = Command::new("kill")
                    .args(["-KILL", pid])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

struct Agent {
    child: Child,
    endpoint: String,
}

impl Agent {
    fn client(&self, secret: &str) -> AgentClient {
        AgentClient::new(
            &AgentEndpoint {
                endpoint: self.endpoint.clone(),
                access_key_id: KEY_ID.into(),
                access_key_secret: secret.into(),
            },
            Duration::from_secs(20),
        )
        .unwrap()
    }

    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, r)| r.trim_start().chars().next())
        })
        .is_some_and(|state| state != 'Z' && state != 'X')
}

#[tokio::test]
async fn stop_and_start_on_kernels_once_per_command_id() {
    let f = Fixture::new("kernels");
    let agent = f.spawn();
    let c = agent.client(SECRET);

    let host = c.describe_host().await.unwrap();
    assert_eq!(host.host_name, "db1");
    assert_eq!(
        host.kernels,
        ["0.0.0-broken", "6.0.0-stubborn", "7.0.1", "8.0.4"]
    );
    let names: Vec<(&str, bool, &str)> = host
        .processes
        .iter()
        .map(|p| (p.name.as_str(), p.running, p.kernel_version.as_str()))
        .collect();
    assert_eq!(
        names,
        [("rs0-a", false, "7.0.1"), ("rs0-b", false, "7.0.1")]
    );

    // Start once; the same CommandId again replays without a second start.
    let started = c.start_process("rs0-a", "7.0.1", "start-1").await.unwrap();
    assert!(started.changed && !started.replayed && started.process.running);
    assert_eq!(started.process.generation, 1);
    let pid = started.process.pid.expect("a pid");
    assert!(alive(pid));
    let again = c.start_process("rs0-a", "7.0.1", "start-1").await.unwrap();
    assert!(again.replayed && again.changed);
    assert_eq!(again.process.pid, Some(pid));
    let starts = f.starts();
    assert_eq!(starts.len(), 1, "{starts:?}");
    let data = f.dir.join("data").join("rs0-a");
    assert_eq!(
        starts[0],
        format!(
            "start kernel=7.0.1 pid={pid} args=--port {} --dbpath {}",
            f.ports[0],
            data.display()
        )
    );

    // The same id for another request.
    let e = c
        .start_process("rs0-a", "8.0.4", "start-1")
        .await
        .unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.status),
        ("IdempotentParameterMismatch", 400)
    );
    // Already running on that kernel: nothing changes.
    let noop = c.start_process("rs0-a", "7.0.1", "start-2").await.unwrap();
    assert!(!noop.changed && !noop.replayed);
    assert_eq!(noop.process.pid, Some(pid));

    // An uninstalled kernel (and a directory without the binary) is refused; nothing starts.
    for kernel in ["9.9.9", "5.0.0-empty"] {
        let e = c
            .start_process("rs0-b", kernel, &format!("start-{kernel}"))
            .await
            .unwrap_err();
        assert_eq!(
            (e.code.as_str(), e.status),
            ("InvalidKernelVersion.NotInstalled", 400)
        );
        assert!(
            e.message.contains("db1") && e.message.contains(kernel),
            "{}",
            e.message
        );
    }
    assert_eq!(f.starts().len(), 1);
    // A process the host does not manage.
    let e = c.stop_process("rs9-z", "stop-z").await.unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.status),
        ("InvalidProcessName.NotFound", 404)
    );

    // Stop: SIGTERM (nothing answers the shutdown command), the process is gone.
    let stopped = c.stop_process("rs0-a", "stop-1").await.unwrap();
    assert!(stopped.changed && !stopped.process.running && stopped.process.pid.is_none());
    assert!(!alive(pid));
    assert!(f
        .records()
        .contains(&format!("term kernel=7.0.1 pid={pid}")));
    let noop = c.stop_process("rs0-a", "stop-2").await.unwrap();
    assert!(!noop.changed);

    // Start on the other kernel.
    let upgraded = c.start_process("rs0-a", "8.0.4", "start-3").await.unwrap();
    assert!(upgraded.changed && upgraded.process.running);
    assert_eq!(upgraded.process.kernel_version, "8.0.4");
    assert_eq!(upgraded.process.generation, 2);
    let starts = f.starts();
    assert!(starts[1].starts_with("start kernel=8.0.4 "), "{starts:?}");
    // Running on 8.0.4, asked for 7.0.1 without a stop: refused, the process untouched.
    let e = c
        .start_process("rs0-a", "7.0.1", "start-4")
        .await
        .unwrap_err();
    assert_eq!(e.code, "ProcessCommandFailed");
    assert!(alive(upgraded.process.pid.unwrap()));

    let host = c.describe_host().await.unwrap();
    let a = &host.processes[0];
    assert!(a.running && a.kernel_version == "8.0.4" && a.pid == upgraded.process.pid);
    assert!(!host.processes[1].running);
}

#[tokio::test]
async fn a_process_that_ignores_sigterm_is_killed() {
    let f = Fixture::new("stubborn");
    let agent = f.spawn();
    let c = agent.client(SECRET);
    let started = c
        .start_process("rs0-b", "6.0.0-stubborn", "s1")
        .await
        .unwrap();
    let pid = started.process.pid.unwrap();
    assert!(f.starts()[0].ends_with(&format!(
        "args=--port {} --dbpath {} --bind_ip 127.0.0.1",
        f.ports[1],
        f.dir.join("data").join("rs0-b").display()
    )));
    let begun = Instant::now();
    let stopped = c.stop_process("rs0-b", "t1").await.unwrap();
    let took = begun.elapsed();
    assert!(stopped.changed && !stopped.process.running);
    assert!(!alive(pid));
    // SIGTERM arrived and was ignored; SIGKILL came after term_timeout_ms (1 s).
    assert!(f.records().contains(&format!("term-ignored pid={pid}")));
    assert!(took >= Duration::from_millis(1000), "{took:?}");
    assert!(took < Duration::from_secs(8), "{took:?}");
}

#[tokio::test]
async fn a_binary_that_exits_at_once_fails_the_start() {
    let f = Fixture::new("broken");
    let agent = f.spawn();
    let c = agent.client(SECRET);
    let e = c
        .start_process("rs0-a", "0.0.0-broken", "b1")
        .await
        .unwrap_err();
    assert_eq!((e.code.as_str(), e.status), ("ProcessCommandFailed", 500));
    assert!(
        e.message.contains("exited") && e.message.contains("broken kernel: cannot start"),
        "{}",
        e.message
    );
    let host = c.describe_host().await.unwrap();
    assert!(!host.processes[0].running);
    // A failure is not remembered as an outcome: the same id may be retried (and fails again).
    let e = c
        .start_process("rs0-a", "0.0.0-broken", "b1")
        .await
        .unwrap_err();
    assert_eq!(e.code, "ProcessCommandFailed");
    // And the process starts fine on a good kernel afterwards.
    let ok = c.start_process("rs0-a", "7.0.1", "b2").await.unwrap();
    assert!(ok.process.running);
}

#[tokio::test]
async fn an_agent_restart_adopts_running_processes_and_never_starts_them_twice() {
    let f = Fixture::new("restart");
    let agent = f.spawn();
    let c = agent.client(SECRET);
    let started = c.start_process("rs0-a", "7.0.1", "k1").await.unwrap();
    let pid = started.process.pid.unwrap();

    // kill -9 of the agent: the process keeps running and is adopted by the next agent.
    agent.kill9();
    assert!(alive(pid));
    let agent = f.spawn();
    let c = agent.client(SECRET);
    let host = c.describe_host().await.unwrap();
    let a = &host.processes[0];
    assert!(a.running, "{a:?}");
    assert_eq!((a.pid, a.generation), (Some(pid), 1));
    // The old command replays from the persisted log; a new one changes nothing.
    let replayed = c.start_process("rs0-a", "7.0.1", "k1").await.unwrap();
    assert!(replayed.replayed && replayed.process.pid == Some(pid));
    let noop = c.start_process("rs0-a", "7.0.1", "k2").await.unwrap();
    assert!(!noop.changed && noop.process.pid == Some(pid));
    assert_eq!(f.starts().len(), 1, "{:?}", f.starts());

    // A graceful stop of the agent (SIGTERM) leaves MongoDB running too.
    let status = agent.terminate();
    assert!(status.success(), "{status:?}");
    assert!(alive(pid));

    // The adopted process (not the new agent's child) is stopped by signal.
    let agent = f.spawn();
    let c = agent.client(SECRET);
    let stopped = c.stop_process("rs0-a", "k3").await.unwrap();
    assert!(stopped.changed && !stopped.process.running);
    assert!(!alive(pid));
    assert_eq!(f.starts().len(), 1);
}

#[tokio::test]
async fn a_stop_cut_by_kill_9_of_the_agent_completes_when_retried() {
    let f = Fixture::new("mid-stop");
    let agent = f.spawn();
    let c = agent.client(SECRET);
    let started = c
        .start_process("rs0-a", "6.0.0-stubborn", "m1")
        .await
        .unwrap();
    let pid = started.process.pid.unwrap();
    // The stop takes about term_timeout_ms (the stand-in ignores SIGTERM): kill the agent
    // after SIGTERM was sent and before SIGKILL.
    let stop = tokio::spawn({
        let c = c.clone();
        async move { c.stop_process("rs0-a", "m2").await }
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f.records().contains(&format!("term-ignored pid={pid}")) {
        assert!(Instant::now() < deadline, "no SIGTERM reached the process");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    agent.kill9();
    let e = stop.await.unwrap().unwrap_err();
    assert!(!e.answered(), "{e:?}");
    assert!(alive(pid));

    // ddsd retries the same command against the new agent: it adopts the process and stops it.
    let agent = f.spawn();
    let c = agent.client(SECRET);
    let stopped = c.stop_process("rs0-a", "m2").await.unwrap();
    assert!(stopped.changed && !stopped.replayed && !stopped.process.running);
    assert!(!alive(pid));
    let again = c.stop_process("rs0-a", "m2").await.unwrap();
    assert!(again.replayed);
    assert_eq!(f.starts().len(), 1);
}

/// The systemd supervisor through the binary, with a stand-in `systemctl` (there is no systemd
/// here): the configuration reaches it and the units are driven as the unit tests pin down.
#[tokio::test]
async fn the_systemd_supervisor_drives_systemctl() {
    use std::os::unix::fs::PermissionsExt as _;
    let f = Fixture::new("systemd");
    let d = f.dir.display();
    let systemctl = f.dir.join("systemctl");
    std::fs::write(
        &systemctl,
        format!(
            r#"#!/bin/sh
echo "$*" >> {d}/systemctl.argv
case "$1" in
  show)
    if [ -f "{d}/active-$4" ]; then echo "ActiveState=active"; echo "MainPID=4242";
    else echo "ActiveState=inactive"; echo "MainPID=0"; fi ;;
  start) touch "{d}/active-$2" ;;
  stop) rm -f "{d}/active-$2" ;;
esac
"#
        ),
    )
    .unwrap();
    std::fs::set_permissions(&systemctl, std::fs::Permissions::from_mode(0o755)).unwrap();
    let units = f.dir.join("units");
    let config = std::fs::read_to_string(&f.config)
        .unwrap()
        .replace("supervisor = \"child\"", "supervisor = \"systemd\"");
    std::fs::write(
        &f.config,
        format!(
            "{config}\n[systemd]\nunit_dir = \"{}\"\nsystemctl = \"{}\"\n",
            units.display(),
            systemctl.display()
        ),
    )
    .unwrap();
    let agent = f.spawn();
    let c = agent.client(SECRET);
    assert!(units.join("ddsd-mongo@.service").is_file());
    let started = c.start_process("rs0-a", "8.0.4", "u1").await.unwrap();
    assert!(started.changed && started.process.running);
    assert_eq!(started.process.pid, Some(4242));
    let drop_in =
        std::fs::read_to_string(units.join("ddsd-mongo@rs0-a.service.d/ddsd-kernel.conf")).unwrap();
    assert!(
        drop_in.contains(&format!(
            "ExecStart=\nExecStart={}/kernels/8.0.4/bin/mongod --port {} --dbpath {}/data/rs0-a\n",
            d, f.ports[0], d
        )),
        "{drop_in}"
    );
    let stopped = c.stop_process("rs0-a", "u2").await.unwrap();
    assert!(stopped.changed && !stopped.process.running);
    let argv = std::fs::read_to_string(f.dir.join("systemctl.argv")).unwrap();
    let actions: Vec<&str> = argv.lines().filter(|l| !l.starts_with("show ")).collect();
    assert_eq!(
        actions,
        [
            "daemon-reload",
            "start ddsd-mongo@rs0-a.service",
            "stop ddsd-mongo@rs0-a.service"
        ]
    );
    // Nothing ran as a child of the agent.
    assert!(f.starts().is_empty());
}

#[tokio::test]
#[ignore = "a measurement: cargo test -p ddsd --test agent -- --ignored --nocapture"]
async fn measure_request_and_command_times() {
    let f = Fixture::new("measure");
    let agent = f.spawn();
    let c = agent.client(SECRET);
    let mut describe = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        c.describe_host().await.unwrap();
        describe.push(t.elapsed());
    }
    describe.sort();
    let (mut starts, mut stops, mut replays) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..10 {
        let t = Instant::now();
        c.start_process("rs0-a", "7.0.1", &format!("s{i}"))
            .await
            .unwrap();
        starts.push(t.elapsed());
        let t = Instant::now();
        c.start_process("rs0-a", "7.0.1", &format!("s{i}"))
            .await
            .unwrap();
        replays.push(t.elapsed());
        let t = Instant::now();
        c.stop_process("rs0-a", &format!("t{i}")).await.unwrap();
        stops.push(t.elapsed());
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    println!(
        "DescribeHost p50 {:?} p99 {:?} (200 calls); StartProcess p50 {:?} (start_check_ms 300); \
         replayed StartProcess p50 {:?}; StopProcess (shutdown refused, SIGTERM) p50 {:?}",
        describe[100],
        describe[197],
        median(&mut starts),
        median(&mut replays),
        median(&mut stops)
    );
}

#[tokio::test]
async fn the_binary_refuses_unsigned_and_wrongly_signed_requests() {
    let f = Fixture::new("security");
    let agent = f.spawn();
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/?Action=StartProcess&Version={AGENT_API_VERSION}&Format=JSON&ProcessName=rs0-a&KernelVersion=7.0.1&CommandId=x",
            agent.endpoint
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["Code"], "MissingSignature");

    let e = agent
        .client("not-the-secret")
        .start_process("rs0-a", "7.0.1", "x")
        .await
        .unwrap_err();
    assert_eq!((e.code.as_str(), e.status), ("SignatureDoesNotMatch", 400));
    assert!(f.starts().is_empty());
    // The secret never reaches the agent's log.
    let stderr = std::fs::read_to_string(f.dir.join("agent.stderr")).unwrap();
    assert!(!stderr.contains(SECRET));
    assert!(stderr.contains("request refused"), "{stderr}");
}
