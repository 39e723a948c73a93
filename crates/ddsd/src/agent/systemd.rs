//! The systemd supervisor: each managed process is a unit (the template instance
//! `ddsd-mongo@<name>.service`, or a unit named in the configuration), and the kernel it runs is a
//! drop-in, `<unit_dir>/<unit>.d/ddsd-kernel.conf`, whose `ExecStart=` (cleared, then set) names
//! `<kernels_dir>/<kernel>/bin/{mongod|mongos}`. Start: write the drop-in, `daemon-reload`,
//! `start`. Stop: MongoDB's `shutdown` command, then `systemctl stop` (systemd sends SIGTERM, then
//! SIGKILL after the unit's `TimeoutStopSec`). Running state and pid: `systemctl show`.
//!
//! systemd keeps the processes, so an agent restart changes nothing; the agent only keeps the
//! kernel and the generation of each process in `<state_dir>/agent-state.json`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::agent::api::{
    AgentError, AgentFuture, HostBackend, HostDescription, ProcessDescription,
};
use crate::agent::files;
use crate::agent::host::{self, HostConfig, ManagedProcess, SavedProcess};

/// The template unit the agent installs when the unit directory has none.
pub const TEMPLATE_UNIT: &str = "ddsd-mongo@.service";
/// The drop-in that selects the kernel.
pub const DROP_IN: &str = "ddsd-kernel.conf";

/// Where units live and how systemd is driven (both configurable so tests can use a directory and
/// a stand-in `systemctl`).
#[derive(Debug, Clone)]
pub struct SystemdOptions {
    pub unit_dir: PathBuf,
    pub systemctl: PathBuf,
    /// `User=`/`Group=` of the template unit.
    pub user: Option<String>,
    pub group: Option<String>,
}

impl Default for SystemdOptions {
    fn default() -> Self {
        SystemdOptions {
            unit_dir: PathBuf::from("/etc/systemd/system"),
            systemctl: PathBuf::from("systemctl"),
            user: None,
            group: None,
        }
    }
}

pub struct SystemdBackend {
    host: HostConfig,
    options: SystemdOptions,
    saved: Mutex<BTreeMap<String, SavedProcess>>,
}

/// A unit's state as `systemctl show` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UnitState {
    active_state: String,
    main_pid: Option<u32>,
}

impl UnitState {
    fn running(&self) -> bool {
        matches!(
            self.active_state.as_str(),
            "active" | "activating" | "deactivating" | "reloading"
        )
    }
}

/// The unit of a process.
pub fn unit_name(p: &ManagedProcess) -> String {
    p.unit
        .clone()
        .unwrap_or_else(|| format!("ddsd-mongo@{}.service", p.name))
}

/// One `ExecStart=` word: `%` and `$` escaped (systemd expands both), quoted when it holds
/// anything but plain path characters.
fn exec_word(word: &str) -> String {
    let escaped = word.replace('%', "%%").replace('$', "$$");
    let plain = !escaped.is_empty()
        && escaped
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-:,=@+%$".contains(&b));
    if plain {
        escaped
    } else {
        format!("\"{}\"", escaped.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// The template unit's text.
pub fn template_unit(options: &SystemdOptions, term_timeout: Duration) -> String {
    let mut unit = String::from(
        "# Installed by ddsd agent. One instance per managed MongoDB process; the drop-in\n\
         # ddsd-mongo@<name>.service.d/ddsd-kernel.conf sets ExecStart (the kernel it runs).\n\
         # mongod/mongos must not fork (no processManagement.fork).\n\
         [Unit]\n\
         Description=MongoDB process %i (managed by ddsd agent)\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=simple\n",
    );
    if let Some(user) = &options.user {
        unit.push_str(&format!("User={user}\n"));
    }
    if let Some(group) = &options.group {
        unit.push_str(&format!("Group={group}\n"));
    }
    unit.push_str(&format!(
        "ExecStart=/bin/false\n\
         TimeoutStopSec={}\n\
         KillMode=mixed\n\
         LimitNOFILE=64000\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        term_timeout.as_secs().max(1)
    ));
    unit
}

/// The drop-in that runs `p` on `kernel`.
pub fn drop_in(host: &HostConfig, p: &ManagedProcess, kernel: &str) -> String {
    let mut exec = exec_word(&host.binary(kernel, p.kind).display().to_string());
    for arg in host::mongo_args(p) {
        exec.push(' ');
        exec.push_str(&exec_word(&arg));
    }
    format!(
        "# Written by ddsd agent on every start of {name}: the kernel it runs.\n\
         [Service]\n\
         Environment=DDSD_KERNEL_VERSION={kernel_env}\n\
         ExecStart=\n\
         ExecStart={exec}\n",
        name = p.name,
        kernel_env = exec_word(kernel),
    )
}

impl SystemdBackend {
    /// Installs the template unit when it is missing (an operator's own template is kept).
    pub fn new(host: HostConfig, options: SystemdOptions) -> anyhow::Result<SystemdBackend> {
        std::fs::create_dir_all(&host.state_dir)?;
        let mut saved = host::load_state(&host.state_file())?;
        for p in &host.processes {
            saved.entry(p.name.clone()).or_insert_with(|| SavedProcess {
                kernel_version: p.kernel_version.clone(),
                generation: 0,
                pid: None,
            });
        }
        if host.processes.iter().any(|p| p.unit.is_none()) {
            let template = options.unit_dir.join(TEMPLATE_UNIT);
            if !template.exists() {
                write_unit_file(
                    &template,
                    template_unit(&options, host.term_timeout).as_bytes(),
                )?;
                info!(unit = %template.display(), "installed the template unit");
            }
        }
        host::save_state(&host.state_file(), saved.clone())?;
        Ok(SystemdBackend {
            host,
            options,
            saved: Mutex::new(saved),
        })
    }

    fn managed(&self, host: &str, name: &str) -> Result<&ManagedProcess, AgentError> {
        if host != self.host.host_name {
            return Err(AgentError::NoSuchProcess(name.to_string()));
        }
        self.host
            .process(name)
            .ok_or_else(|| AgentError::NoSuchProcess(name.to_string()))
    }

    fn saved(&self, name: &str) -> SavedProcess {
        self.saved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    fn update(&self, name: &str, f: impl FnOnce(&mut SavedProcess)) -> Result<(), AgentError> {
        let mut saved = self.saved.lock().unwrap_or_else(|e| e.into_inner());
        f(saved.entry(name.to_string()).or_default());
        host::save_state(&self.host.state_file(), saved.clone())
            .map_err(|e| AgentError::Failed(format!("could not save the agent's state: {e:#}")))
    }

    /// Runs `systemctl ARGS`; its stdout, or `Failed` with its stderr.
    async fn systemctl(&self, args: &[&str], timeout: Duration) -> Result<String, AgentError> {
        let shown = || format!("{} {}", self.options.systemctl.display(), args.join(" "));
        let output = tokio::time::timeout(
            timeout,
            tokio::process::Command::new(&self.options.systemctl)
                .args(args)
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .map_err(|_| AgentError::Failed(format!("{} did not finish in {timeout:?}", shown())))?
        .map_err(|e| AgentError::Failed(format!("could not run {}: {e}", shown())))?;
        if !output.status.success() {
            return Err(AgentError::Failed(format!(
                "{} failed ({}): {}",
                shown(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    async fn show(&self, unit: &str) -> Result<UnitState, AgentError> {
        let out = self
            .systemctl(
                &["show", "-p", "ActiveState,MainPID", unit],
                Duration::from_secs(30),
            )
            .await?;
        let fields: HashMap<&str, &str> = out.lines().filter_map(|l| l.split_once('=')).collect();
        Ok(UnitState {
            active_state: fields.get("ActiveState").unwrap_or(&"unknown").to_string(),
            main_pid: fields
                .get("MainPID")
                .and_then(|v| v.trim().parse().ok())
                .filter(|&pid: &u32| pid != 0),
        })
    }

    async fn describe_one(&self, p: &ManagedProcess) -> Result<ProcessDescription, AgentError> {
        let state = self.show(&unit_name(p)).await?;
        let saved = self.saved(&p.name);
        Ok(host::describe(
            p,
            &saved.kernel_version,
            state.running(),
            state.main_pid,
            saved.generation,
        ))
    }

    /// Polls `systemctl show` until the unit stops running or `timeout` passes.
    async fn wait_stopped(&self, unit: &str, timeout: Duration) -> Result<bool, AgentError> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.show(unit).await?.running() {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stop_process(
        &self,
        p: &ManagedProcess,
    ) -> Result<(bool, ProcessDescription), AgentError> {
        let unit = unit_name(p);
        if !self.show(&unit).await?.running() {
            return Ok((false, self.describe_one(p).await?));
        }
        let started = Instant::now();
        match host::send_shutdown(
            &p.address,
            self.host.credentials.as_ref(),
            self.host.shutdown_timeout,
        )
        .await
        {
            Ok(()) => {
                let left = self.host.shutdown_timeout.saturating_sub(started.elapsed());
                self.wait_stopped(&unit, left).await?;
            }
            Err(e) => {
                info!(process = %p.name, "the shutdown command did not go through ({e}); systemctl stop")
            }
        }
        // Also after a clean shutdown: it makes the unit inactive for sure (and is a no-op then).
        self.systemctl(
            &["stop", &unit],
            self.host.term_timeout + Duration::from_secs(30),
        )
        .await?;
        let d = self.describe_one(p).await?;
        if d.running {
            return Err(AgentError::Failed(format!(
                "{unit} is still running after systemctl stop"
            )));
        }
        info!(process = %p.name, elapsed_ms = started.elapsed().as_millis() as u64, "stopped");
        Ok((true, d))
    }

    async fn start_process(
        &self,
        p: &ManagedProcess,
        kernel: &str,
    ) -> Result<(bool, ProcessDescription), AgentError> {
        if !self.host.has_kernel(kernel, p.kind) {
            return Err(AgentError::KernelNotInstalled {
                host: self.host.host_name.clone(),
                kernel: kernel.to_string(),
            });
        }
        let unit = unit_name(p);
        let saved = self.saved(&p.name);
        if self.show(&unit).await?.running() {
            if saved.kernel_version == kernel {
                return Ok((false, self.describe_one(p).await?));
            }
            return Err(AgentError::Failed(format!(
                "{} is running on kernel {}: stop it before starting it on {kernel}",
                p.name, saved.kernel_version
            )));
        }
        let path = drop_in_path(&self.options.unit_dir, &unit);
        write_unit_file(&path, drop_in(&self.host, p, kernel).as_bytes())
            .map_err(|e| AgentError::Failed(format!("{e:#}")))?;
        self.systemctl(&["daemon-reload"], Duration::from_secs(60))
            .await?;
        self.update(&p.name, |s| {
            s.kernel_version = kernel.to_string();
            s.generation += 1;
        })?;
        self.systemctl(&["start", &unit], Duration::from_secs(120))
            .await?;
        // `start` of a Type=simple unit returns once the binary is executed: watch it stay up.
        let deadline = Instant::now() + self.host.start_check;
        loop {
            let state = self.show(&unit).await?;
            if !state.running() {
                return Err(AgentError::Failed(format!(
                    "{unit} on kernel {kernel} is {} right after starting; see journalctl -u {unit}",
                    state.active_state
                )));
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100).min(self.host.start_check)).await;
        }
        let d = self.describe_one(p).await?;
        info!(process = %p.name, kernel, pid = ?d.pid, generation = d.generation, "started");
        Ok((true, d))
    }
}

pub fn drop_in_path(unit_dir: &Path, unit: &str) -> PathBuf {
    unit_dir.join(format!("{unit}.d")).join(DROP_IN)
}

/// Unit files are read by systemd (root) and by operators: 0644, replaced atomically.
fn write_unit_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    files::write_private_atomic(path, bytes)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))?;
    Ok(())
}

impl HostBackend for SystemdBackend {
    fn describe(&self, host: &str) -> AgentFuture<'_, HostDescription> {
        let host = host.to_string();
        Box::pin(async move {
            let mut processes = Vec::new();
            if host == self.host.host_name {
                for p in &self.host.processes {
                    match self.describe_one(p).await {
                        Ok(d) => processes.push(d),
                        Err(e) => {
                            warn!(process = %p.name, "systemctl show failed: {e}");
                            return Err(e);
                        }
                    }
                }
            }
            Ok(HostDescription {
                host_name: host,
                kernels: self.host.installed_kernels(),
                processes,
            })
        })
    }

    fn stop(&self, host: &str, process: &str) -> AgentFuture<'_, (bool, ProcessDescription)> {
        let found = self.managed(host, process).cloned();
        Box::pin(async move { self.stop_process(&found?).await })
    }

    fn start(
        &self,
        host: &str,
        process: &str,
        kernel_version: &str,
    ) -> AgentFuture<'_, (bool, ProcessDescription)> {
        let found = self.managed(host, process).cloned();
        let kernel = kernel_version.to_string();
        Box::pin(async move { self.start_process(&found?, &kernel).await })
    }
}

#[cfg(test)]
mod tests;
