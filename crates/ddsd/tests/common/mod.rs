//! The test kit of the integration tests: one way to run the real binary and wait until it
//! listens, and one temporary directory. Each test file takes it with `mod common;` (so some
//! files use only part of it).
#![allow(dead_code)]

pub mod crash;

use std::io::{BufRead as _, BufReader, Lines};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

/// The `ddsd` binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_ddsd");

/// The line `ddsd serve` prints once it accepts connections, before the URL.
pub const LISTENING: &str = "ddsd listening on ";

/// A fresh directory under the system temp dir, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// `<tmp>/ddsd-<name>-<uuid>`, created.
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ddsd-{name}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `ddsd serve` with none of the caller's `DDSD_*`/`RUST_LOG` settings leaking in, stdin closed
/// and stdout piped (for [`wait_listening`]); the caller adds flags, env and stderr.
pub fn serve_command() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve");
    for (name, _) in std::env::vars_os() {
        if let Some(name) = name.to_str() {
            if name.starts_with("DDSD_") || name == "RUST_LOG" {
                cmd.env_remove(name);
            }
        }
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped());
    cmd
}

/// A started server: killed (and reaped) when dropped.
pub struct Running {
    pub child: Child,
    /// What followed `ddsd listening on `: `http://IP:PORT` or `https://IP:PORT`.
    pub endpoint: String,
    /// The stdout lines before the listening line (the generated key, the TLS certificate).
    pub before: Vec<String>,
}

impl Running {
    /// `IP:PORT` of the endpoint.
    pub fn addr(&self) -> &str {
        self.endpoint
            .split_once("://")
            .map_or(&self.endpoint, |(_, a)| a)
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `cmd` (from [`serve_command`]) and reads its stdout up to the listening line; the rest of
/// stdout is returned for the caller to read or drop.
pub fn spawn_listening(mut cmd: Command) -> (Running, Lines<BufReader<ChildStdout>>) {
    let mut child = cmd.spawn().expect("spawn ddsd");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout piped")).lines();
    let mut before = Vec::new();
    let endpoint = loop {
        let line = match lines.next() {
            Some(Ok(line)) => line,
            _ => {
                let _ = child.kill();
                let status = child.wait();
                panic!("ddsd exited before listening ({status:?}); it printed {before:?}");
            }
        };
        match line.strip_prefix(LISTENING) {
            Some(endpoint) => break endpoint.to_string(),
            None => before.push(line),
        }
    };
    (
        Running {
            child,
            endpoint,
            before,
        },
        lines,
    )
}

/// [`spawn_listening`], with the rest of stdout drained in the background (so the server never
/// blocks on a full pipe).
pub fn spawn(cmd: Command) -> Running {
    let (running, lines) = spawn_listening(cmd);
    std::thread::spawn(move || lines.for_each(drop));
    running
}
