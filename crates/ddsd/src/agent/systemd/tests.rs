//! There is no systemd here: the unit text is checked as text, and `systemctl` is a stand-in
//! script that records its arguments and keeps a unit's state in a file (`start` makes it active
//! with pid 4242, `stop` inactive).

use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::agent::api::ProcessKind;

struct Fixture {
    dir: PathBuf,
    host: HostConfig,
    options: SystemdOptions,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn unused_address() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

fn fixture() -> Fixture {
    let dir = std::env::temp_dir().join(format!("ddsd-systemd-{}", uuid::Uuid::new_v4()));
    let kernels = dir.join("kernels");
    for kernel in ["7.0.1", "8.0.4"] {
        executable(
            &kernels.join(kernel).join("bin").join("mongod"),
            "#!/bin/sh\n",
        );
        executable(
            &kernels.join(kernel).join("bin").join("mongos"),
            "#!/bin/sh\n",
        );
    }
    let systemctl = dir.join("systemctl");
    let d = dir.display();
    executable(
        &systemctl,
        &format!(
            r#"#!/bin/sh
echo "$*" >> {d}/systemctl.argv
case "$1" in
  show)
    if [ -f "{d}/active-$4" ]; then echo "ActiveState=active"; echo "MainPID=$(cat "{d}/active-$4")";
    else echo "ActiveState=inactive"; echo "MainPID=0"; fi ;;
  start)
    if [ -f {d}/fail-start ]; then echo "Job for $2 failed." >&2; exit 1; fi
    if [ ! -f {d}/dies ]; then echo 4242 > "{d}/active-$2"; fi ;;
  stop) rm -f "{d}/active-$2" ;;
  daemon-reload) ;;
  *) echo "unexpected $1" >&2; exit 1 ;;
esac
"#
        ),
    );
    let host = HostConfig {
        host_name: "db1".into(),
        kernels_dir: kernels,
        state_dir: dir.join("state"),
        shutdown_timeout: Duration::from_millis(200),
        term_timeout: Duration::from_secs(20),
        start_check: Duration::from_millis(150),
        processes: vec![
            ManagedProcess {
                name: "rs0-a".into(),
                kind: ProcessKind::Mongod,
                port: 27017,
                address: unused_address(),
                data_dir: None,
                config_file: Some("/etc/mongo/rs0 a%.conf".into()),
                kernel_version: "7.0.1".into(),
                bind_ip: None,
                unit: None,
            },
            ManagedProcess {
                name: "router".into(),
                kind: ProcessKind::Mongos,
                port: 27020,
                address: unused_address(),
                data_dir: None,
                config_file: None,
                kernel_version: "7.0.1".into(),
                bind_ip: Some("0.0.0.0".into()),
                unit: Some("mongos-router.service".into()),
            },
        ],
        credentials: None,
    };
    let options = SystemdOptions {
        unit_dir: dir.join("units"),
        systemctl,
        user: Some("mongod".into()),
        group: None,
    };
    Fixture { dir, host, options }
}

impl Fixture {
    /// The recorded invocations other than `show`.
    fn actions(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("systemctl.argv"))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.starts_with("show "))
            .map(str::to_string)
            .collect()
    }

    fn shows(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("systemctl.argv"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("show "))
            .map(str::to_string)
            .collect()
    }
}

#[test]
fn the_template_unit_and_the_kernel_drop_in() {
    let f = fixture();
    assert_eq!(
        template_unit(&f.options, Duration::from_secs(30)),
        "# Installed by ddsd agent. One instance per managed MongoDB process; the drop-in\n\
         # ddsd-mongo@<name>.service.d/ddsd-kernel.conf sets ExecStart (the kernel it runs).\n\
         # mongod/mongos must not fork (no processManagement.fork).\n\
         [Unit]\n\
         Description=MongoDB process %i (managed by ddsd agent)\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         User=mongod\n\
         ExecStart=/bin/false\n\
         TimeoutStopSec=30\n\
         KillMode=mixed\n\
         LimitNOFILE=64000\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n"
    );
    let k = f.host.kernels_dir.display();
    assert_eq!(
        drop_in(&f.host, &f.host.processes[0], "8.0.4"),
        format!(
            "# Written by ddsd agent on every start of rs0-a: the kernel it runs.\n\
             [Service]\n\
             Environment=DDSD_KERNEL_VERSION=8.0.4\n\
             ExecStart=\n\
             ExecStart={k}/8.0.4/bin/mongod --config \"/etc/mongo/rs0 a%%.conf\"\n"
        )
    );
    assert_eq!(
        drop_in(&f.host, &f.host.processes[1], "7.0.1"),
        format!(
            "# Written by ddsd agent on every start of router: the kernel it runs.\n\
             [Service]\n\
             Environment=DDSD_KERNEL_VERSION=7.0.1\n\
             ExecStart=\n\
             ExecStart={k}/7.0.1/bin/mongos --port 27020 --bind_ip 0.0.0.0\n"
        )
    );
    assert_eq!(exec_word("a$b\"c"), "\"a$$b\\\"c\"");
    assert_eq!(unit_name(&f.host.processes[0]), "ddsd-mongo@rs0-a.service");
    assert_eq!(unit_name(&f.host.processes[1]), "mongos-router.service");
}

#[tokio::test]
async fn start_writes_the_drop_in_then_reloads_and_starts_stop_shuts_down_then_stops() {
    let f = fixture();
    let backend = SystemdBackend::new(f.host.clone(), f.options.clone()).unwrap();
    let template = std::fs::read_to_string(f.options.unit_dir.join(TEMPLATE_UNIT)).unwrap();
    assert_eq!(template, template_unit(&f.options, f.host.term_timeout));

    let host = backend.describe("db1").await.unwrap();
    assert_eq!(host.kernels, ["7.0.1", "8.0.4"]);
    assert!(host.processes.iter().all(|p| !p.running));
    assert_eq!(
        f.shows(),
        [
            "show -p ActiveState,MainPID ddsd-mongo@rs0-a.service",
            "show -p ActiveState,MainPID mongos-router.service"
        ]
    );

    let (changed, d) = backend.start("db1", "rs0-a", "8.0.4").await.unwrap();
    assert!(changed && d.running);
    assert_eq!(
        (d.pid, d.generation, d.kernel_version.as_str()),
        (Some(4242), 1, "8.0.4")
    );
    let path = drop_in_path(&f.options.unit_dir, "ddsd-mongo@rs0-a.service");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        drop_in(&f.host, &f.host.processes[0], "8.0.4")
    );
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o644
    );
    assert_eq!(
        f.actions(),
        ["daemon-reload", "start ddsd-mongo@rs0-a.service"]
    );

    // Running on the asked kernel: nothing to do, systemctl is only asked.
    let (changed, _) = backend.start("db1", "rs0-a", "8.0.4").await.unwrap();
    assert!(!changed);
    // On another kernel: stop it first.
    let e = backend.start("db1", "rs0-a", "7.0.1").await.unwrap_err();
    assert_eq!(e.code(), "ProcessCommandFailed");
    let e = backend.start("db1", "router", "9.9.9").await.unwrap_err();
    assert_eq!(
        e,
        AgentError::KernelNotInstalled {
            host: "db1".into(),
            kernel: "9.9.9".into()
        }
    );
    let e = backend.start("db2", "rs0-a", "8.0.4").await.unwrap_err();
    assert_eq!(e, AgentError::NoSuchProcess("rs0-a".into()));
    assert_eq!(f.actions().len(), 2);

    // Stop: the shutdown command (nobody listens: it fails), then systemctl stop.
    let (changed, d) = backend.stop("db1", "rs0-a").await.unwrap();
    assert!(changed && !d.running && d.pid.is_none());
    let (changed, _) = backend.stop("db1", "rs0-a").await.unwrap();
    assert!(!changed);
    assert_eq!(
        f.actions(),
        [
            "daemon-reload",
            "start ddsd-mongo@rs0-a.service",
            "stop ddsd-mongo@rs0-a.service"
        ]
    );

    // The mongos unit, with its own name.
    backend.start("db1", "router", "7.0.1").await.unwrap();
    assert!(f
        .options
        .unit_dir
        .join("mongos-router.service.d")
        .join(DROP_IN)
        .is_file());

    // A new agent knows the kernel and generation.
    drop(backend);
    let backend = SystemdBackend::new(f.host.clone(), f.options.clone()).unwrap();
    let host = backend.describe("db1").await.unwrap();
    let a = &host.processes[0];
    assert_eq!(
        (a.kernel_version.as_str(), a.generation, a.running),
        ("8.0.4", 1, false)
    );
    let r = &host.processes[1];
    assert_eq!(
        (r.kernel_version.as_str(), r.generation, r.running),
        ("7.0.1", 1, true)
    );
}

#[tokio::test]
async fn systemctl_failures_and_units_that_die_at_once_fail_the_start() {
    let f = fixture();
    let backend = SystemdBackend::new(f.host.clone(), f.options.clone()).unwrap();
    std::fs::write(f.dir.join("fail-start"), "").unwrap();
    let e = backend.start("db1", "rs0-a", "8.0.4").await.unwrap_err();
    assert_eq!(e.code(), "ProcessCommandFailed");
    assert!(
        e.to_string()
            .contains("Job for ddsd-mongo@rs0-a.service failed"),
        "{e}"
    );

    std::fs::remove_file(f.dir.join("fail-start")).unwrap();
    std::fs::write(f.dir.join("dies"), "").unwrap();
    let e = backend.start("db1", "rs0-a", "8.0.4").await.unwrap_err();
    assert!(
        e.to_string().contains("inactive right after starting"),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("journalctl -u ddsd-mongo@rs0-a.service"),
        "{e}"
    );
}
