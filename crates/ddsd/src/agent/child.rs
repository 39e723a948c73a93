//! The child-process supervisor: the agent starts each `mongod`/`mongos` itself, in its own
//! process group (a Ctrl-C or a SIGTERM to the agent does not reach MongoDB), output appended to
//! `<state_dir>/<name>.log`. Pids, kernels and generations are saved in
//! `<state_dir>/agent-state.json`, so an agent killed with `kill -9` and started again adopts the
//! processes still running instead of starting them twice.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::agent::api::{
    AgentError, AgentFuture, HostBackend, HostDescription, ProcessDescription,
};
use crate::agent::host::{self, HostConfig, ManagedProcess, SavedProcess};

/// How long a SIGKILLed process may take to disappear before the stop is reported failed.
const KILL_WAIT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(25);

struct Proc {
    kernel: String,
    generation: u64,
    pid: Option<u32>,
    /// Set for processes this agent process started; adopted ones have only a pid.
    child: Option<tokio::process::Child>,
}

pub struct ChildBackend {
    host: HostConfig,
    procs: Mutex<HashMap<String, Proc>>,
}

impl ChildBackend {
    /// Reads the saved state and adopts the processes still running on their saved kernel.
    pub fn new(host: HostConfig) -> anyhow::Result<ChildBackend> {
        std::fs::create_dir_all(&host.state_dir)?;
        let saved = host::load_state(&host.state_file())?;
        let mut procs = HashMap::new();
        for p in &host.processes {
            let s = saved.get(&p.name).cloned().unwrap_or_else(|| SavedProcess {
                kernel_version: p.kernel_version.clone(),
                generation: 0,
                pid: None,
            });
            let binary = host.binary(&s.kernel_version, p.kind);
            let pid = s.pid.filter(|&pid| host::process_runs(pid, &binary));
            match (s.pid, pid) {
                (Some(pid), Some(_)) => {
                    info!(process = %p.name, pid, kernel = %s.kernel_version, "adopted a running process")
                }
                (Some(pid), None) => {
                    info!(process = %p.name, pid, "the saved process is gone")
                }
                _ => {}
            }
            procs.insert(
                p.name.clone(),
                Proc {
                    kernel: s.kernel_version,
                    generation: s.generation,
                    pid,
                    child: None,
                },
            );
        }
        let backend = ChildBackend {
            host,
            procs: Mutex::new(procs),
        };
        backend.save(&backend.lock())?;
        Ok(backend)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Proc>> {
        self.procs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn save(&self, procs: &HashMap<String, Proc>) -> anyhow::Result<()> {
        let saved: BTreeMap<String, SavedProcess> = procs
            .iter()
            .map(|(name, p)| {
                (
                    name.clone(),
                    SavedProcess {
                        kernel_version: p.kernel.clone(),
                        generation: p.generation,
                        pid: p.pid,
                    },
                )
            })
            .collect();
        host::save_state(&self.host.state_file(), saved)
    }

    fn save_or_fail(&self, procs: &HashMap<String, Proc>) -> Result<(), AgentError> {
        self.save(procs)
            .map_err(|e| AgentError::Failed(format!("could not save the agent's state: {e:#}")))
    }

    fn managed(&self, host: &str, name: &str) -> Result<&ManagedProcess, AgentError> {
        if host != self.host.host_name {
            return Err(AgentError::NoSuchProcess(name.to_string()));
        }
        self.host
            .process(name)
            .ok_or_else(|| AgentError::NoSuchProcess(name.to_string()))
    }

    /// Whether the process runs; forgets it (and reaps it, if it is our child) once it does not.
    /// `Some(status)` when our own child was just found exited.
    fn check(&self, p: &ManagedProcess, s: &mut Proc) -> (bool, Option<ExitStatus>) {
        if let Some(child) = &mut s.child {
            return match child.try_wait() {
                Ok(None) => (true, None),
                Ok(Some(status)) => {
                    s.child = None;
                    s.pid = None;
                    (false, Some(status))
                }
                Err(e) => {
                    warn!(process = %p.name, "waiting for the child failed: {e}");
                    s.child = None;
                    s.pid = None;
                    (false, None)
                }
            };
        }
        match s.pid {
            Some(pid) if host::process_runs(pid, &self.host.binary(&s.kernel, p.kind)) => {
                (true, None)
            }
            Some(_) => {
                s.pid = None;
                (false, None)
            }
            None => (false, None),
        }
    }

    fn describe_one(&self, p: &ManagedProcess, s: &mut Proc) -> ProcessDescription {
        let (running, _) = self.check(p, s);
        host::describe(p, &s.kernel, running, s.pid, s.generation)
    }

    /// Waits up to `timeout` for the process to be gone.
    async fn wait_gone(&self, p: &ManagedProcess, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let mut procs = self.lock();
                let Some(s) = procs.get_mut(&p.name) else {
                    return true;
                };
                if !self.check(p, s).0 {
                    return true;
                }
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// SIGTERM through `kill(1)` (the standard library only sends SIGKILL, and `unsafe` is not
    /// allowed here); the pid is re-checked just before, so a recycled pid is never signalled.
    async fn signal(&self, p: &ManagedProcess, signal: &str) {
        let pid = {
            let mut procs = self.lock();
            let Some(s) = procs.get_mut(&p.name) else {
                return;
            };
            if !self.check(p, s).0 {
                return;
            }
            if signal == "KILL" {
                if let Some(child) = &mut s.child {
                    let _ = child.start_kill();
                    return;
                }
            }
            s.pid
        };
        let Some(pid) = pid else { return };
        let status = tokio::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        if !matches!(status, Ok(s) if s.success()) {
            warn!(process = %p.name, pid, signal, "kill did not succeed: {status:?}");
        }
    }

    async fn stop_process(
        &self,
        p: &ManagedProcess,
    ) -> Result<(bool, ProcessDescription), AgentError> {
        {
            let mut procs = self.lock();
            let s = procs
                .get_mut(&p.name)
                .expect("every managed process has a state");
            if !self.check(p, s).0 {
                let d = host::describe(p, &s.kernel, false, None, s.generation);
                self.save_or_fail(&procs)?;
                return Ok((false, d));
            }
        }
        let started = Instant::now();
        let mut gone = match host::send_shutdown(
            &p.address,
            self.host.credentials.as_ref(),
            self.host.shutdown_timeout,
        )
        .await
        {
            Ok(()) => {
                let left = self.host.shutdown_timeout.saturating_sub(started.elapsed());
                self.wait_gone(p, left).await
            }
            Err(e) => {
                info!(process = %p.name, "the shutdown command did not go through ({e}); sending SIGTERM");
                false
            }
        };
        if !gone {
            self.signal(p, "TERM").await;
            gone = self.wait_gone(p, self.host.term_timeout).await;
        }
        if !gone {
            warn!(process = %p.name, "still running after SIGTERM; sending SIGKILL");
            self.signal(p, "KILL").await;
            gone = self.wait_gone(p, KILL_WAIT).await;
        }
        let mut procs = self.lock();
        let s = procs
            .get_mut(&p.name)
            .expect("every managed process has a state");
        if !gone {
            return Err(AgentError::Failed(format!(
                "{} (pid {:?}) did not exit after SIGKILL",
                p.name, s.pid
            )));
        }
        s.pid = None;
        s.child = None;
        let d = host::describe(p, &s.kernel, false, None, s.generation);
        self.save_or_fail(&procs)?;
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
        let binary = self.host.binary(kernel, p.kind);
        let log_path = self.host.state_dir.join(format!("{}.log", p.name));
        {
            let mut procs = self.lock();
            let s = procs
                .get_mut(&p.name)
                .expect("every managed process has a state");
            if self.check(p, s).0 {
                if s.kernel == kernel {
                    let d = host::describe(p, &s.kernel, true, s.pid, s.generation);
                    return Ok((false, d));
                }
                return Err(AgentError::Failed(format!(
                    "{} is running on kernel {}: stop it before starting it on {kernel}",
                    p.name, s.kernel
                )));
            }
            let args = host::mongo_args(p);
            let log = open_log(&log_path, p, kernel, s.generation + 1, &binary, &args)
                .map_err(|e| AgentError::Failed(format!("{}: {e}", log_path.display())))?;
            let err_log = log
                .try_clone()
                .map_err(|e| AgentError::Failed(format!("{}: {e}", log_path.display())))?;
            let child = tokio::process::Command::new(&binary)
                .args(&args)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(err_log)
                .process_group(0)
                .kill_on_drop(false)
                .spawn()
                .map_err(|e| {
                    AgentError::Failed(format!("could not run {}: {e}", binary.display()))
                })?;
            s.pid = child.id();
            s.child = Some(child);
            s.kernel = kernel.to_string();
            s.generation += 1;
            info!(process = %p.name, kernel, pid = ?s.pid, generation = s.generation, "started");
            // Saved before the start check: an agent killed during the check adopts the process.
            self.save_or_fail(&procs)?;
        }

        let deadline = Instant::now() + self.host.start_check;
        loop {
            tokio::time::sleep(POLL.min(self.host.start_check)).await;
            let mut procs = self.lock();
            let s = procs
                .get_mut(&p.name)
                .expect("every managed process has a state");
            let (running, status) = self.check(p, s);
            if !running {
                let _ = self.save(&procs);
                let status = status.map_or_else(|| "gone".to_string(), |s| s.to_string());
                return Err(AgentError::Failed(format!(
                    "{} on kernel {kernel} exited right after starting ({status}); the end of {}: {}",
                    p.name,
                    log_path.display(),
                    log_tail(&log_path)
                )));
            }
            if Instant::now() >= deadline {
                let d = host::describe(p, &s.kernel, true, s.pid, s.generation);
                return Ok((true, d));
            }
        }
    }
}

fn open_log(
    path: &PathBuf,
    p: &ManagedProcess,
    kernel: &str,
    generation: u64,
    binary: &std::path::Path,
    args: &[String],
) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)?;
    writeln!(
        file,
        "--- ddsd agent: starting {} on kernel {kernel} (generation {generation}) at {}: {} {}",
        p.name,
        acs_rpc::format_timestamp(time::OffsetDateTime::now_utc()),
        binary.display(),
        args.join(" ")
    )?;
    Ok(file)
}

/// The last 1 KiB of a log, on one line.
fn log_tail(path: &PathBuf) -> String {
    const TAIL: u64 = 1024;
    let read = || -> std::io::Result<String> {
        let mut file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(TAIL)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).trim().replace('\n', " | "))
    };
    read().unwrap_or_else(|e| format!("(unreadable: {e})"))
}

impl HostBackend for ChildBackend {
    fn describe(&self, host: &str) -> AgentFuture<'_, HostDescription> {
        let host = host.to_string();
        Box::pin(async move {
            let processes = if host == self.host.host_name {
                let mut procs = self.lock();
                self.host
                    .processes
                    .iter()
                    .filter_map(|p| procs.get_mut(&p.name).map(|s| self.describe_one(p, s)))
                    .collect()
            } else {
                Vec::new()
            };
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
