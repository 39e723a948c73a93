//! One MongoDB listener per simulated process, open exactly while the process runs: the supervisor
//! follows the fleets (woken by every command, provision, teardown and fault, and otherwise at the
//! fleet's next internal event) and starts or stops each process's listener. Stopping a listener
//! closes its established connections, as a stopped `mongod` does.
//!
//! A process's port stays reserved while the process is down — bound but not listening, so a
//! client's connect is refused and no other program takes the port — and is the same after a
//! restart of ddsd (the port is recorded with the deployment).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use mongo_wire::{MemoryCredentialStore, ServerConfig, WireLimits, WireListener};
use tokio::net::TcpSocket;
use tokio::sync::watch;
use tokio::time::Instant;

use super::accounts;
use super::member::Member;
use super::view::Layout;
use super::whitelist::{self, Whitelist};
use crate::server::plane::sim::SimPlane;
use crate::server::plane::DataPlane;
use crate::server::store::Store;

/// `[wire]` as the supervisor uses it.
#[derive(Debug, Clone)]
pub struct WireSettings {
    pub bind: IpAddr,
    /// Listening processes at most (each is a socket); beyond it a process stays unreachable and
    /// a warning says so.
    pub max_listeners: usize,
    pub limits: WireLimits,
    /// Longest wait between two looks at a fleet that did not say when it changes next.
    pub idle_check_ms: u64,
}

impl Default for WireSettings {
    fn default() -> Self {
        WireSettings {
            bind: IpAddr::from([127, 0, 0, 1]),
            max_listeners: 4_096,
            limits: WireLimits {
                max_connections: 256,
                ..WireLimits::default()
            },
            idle_check_ms: 2_000,
        }
    }
}

enum Port {
    /// Bound, not listening: connects are refused, the port stays ours.
    Reserved(#[allow(dead_code)] Option<TcpSocket>),
    Listening(WireListener<Member>),
}

struct Process {
    port: u16,
    member: Arc<Member>,
    socket: Port,
}

struct Served {
    layout: Arc<Layout>,
    users: Arc<MemoryCredentialStore>,
    whitelist: Arc<Whitelist>,
    processes: BTreeMap<String, Process>,
    due: Instant,
}

pub struct Supervisor {
    plane: Arc<SimPlane>,
    store: Arc<dyn Store>,
    settings: WireSettings,
    served: HashMap<String, Served>,
    listening: usize,
    warned_full: bool,
    /// [`accounts::generation`] when the served instances' accounts were last read.
    accounts_seen: u64,
}

/// The running supervisor; [`WireHandle::shutdown`] closes every listener.
pub struct WireHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl WireHandle {
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

fn reserve(addr: SocketAddr) -> std::io::Result<TcpSocket> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    Ok(socket)
}

impl Supervisor {
    /// Starts following every stored deployment.
    pub fn spawn(
        plane: Arc<SimPlane>,
        store: Arc<dyn Store>,
        settings: WireSettings,
    ) -> WireHandle {
        let (stop, mut stopped) = watch::channel(false);
        let mut sup = Supervisor {
            plane,
            store,
            settings,
            served: HashMap::new(),
            listening: 0,
            warned_full: false,
            accounts_seen: accounts::generation(),
        };
        let task = tokio::spawn(async move {
            sup.refresh().await;
            let mut next_refresh = Instant::now() + Duration::from_secs(2);
            loop {
                sup.reconcile_due().await;
                let wake = sup
                    .served
                    .values()
                    .map(|s| s.due)
                    .min()
                    .unwrap_or(next_refresh)
                    .min(next_refresh);
                let plane = sup.plane.clone();
                tokio::select! {
                    _ = stopped.changed() => break,
                    ids = plane.changes().next() => {
                        for id in ids {
                            match sup.served.get_mut(&id) {
                                Some(s) => s.due = Instant::now(),
                                None => sup.add(&id).await,
                            }
                        }
                    }
                    _ = tokio::time::sleep_until(wake) => {}
                    _ = accounts::changed() => {}
                }
                sup.refresh_accounts().await;
                if Instant::now() >= next_refresh {
                    sup.refresh().await;
                    next_refresh = Instant::now() + Duration::from_secs(2);
                }
            }
            sup.close_all().await;
        });
        WireHandle { stop, task }
    }

    /// Picks up deployments the change feed did not announce (those stored before this start).
    async fn refresh(&mut self) {
        let ids = match self.plane.deployment_ids().await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the simulated deployments");
                return;
            }
        };
        for id in ids {
            if !self.served.contains_key(&id) {
                self.add(&id).await;
            }
        }
    }

    async fn add(&mut self, id: &str) {
        let instance = match self.store.get_instance(id).await {
            Ok(Some(i)) => i,
            // Deleted (its deployment is shutting down) or not readable now: nothing to serve.
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(instance = %id, error = %e, "cannot read the instance");
                return;
            }
        };
        let users = match accounts::users_of(&*self.store, id).await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(instance = %id, error = %e, "cannot read the root account");
                return;
            }
        };
        let whitelist = Arc::new(Whitelist::default());
        match whitelist::load(&*self.store, id).await {
            Ok(groups) => whitelist.set(groups.as_deref()),
            Err(e) => {
                tracing::warn!(instance = %id, error = %e, "cannot read the whitelist");
                return;
            }
        }
        self.served.insert(
            id.to_string(),
            Served {
                layout: Arc::new(Layout::of(&instance)),
                users: Arc::new(users),
                whitelist,
                processes: BTreeMap::new(),
                due: Instant::now(),
            },
        );
    }

    /// A root account or a whitelist was stored since the last look (`ResetAccountPassword`,
    /// `ModifySecurityIps`): every served instance's listeners take the stored ones.
    async fn refresh_accounts(&mut self) {
        let now = accounts::generation();
        if now == self.accounts_seen {
            return;
        }
        self.accounts_seen = now;
        for (id, served) in &self.served {
            if let Err(e) = accounts::refresh_users(&*self.store, id, &served.users).await {
                tracing::warn!(instance = %id, error = %e, "cannot read the root account");
            }
            match whitelist::load(&*self.store, id).await {
                Ok(groups) => served.whitelist.set(groups.as_deref()),
                Err(e) => tracing::warn!(instance = %id, error = %e, "cannot read the whitelist"),
            }
        }
    }

    async fn reconcile_due(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self
            .served
            .iter()
            .filter(|(_, s)| s.due <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            self.reconcile(&id).await;
        }
    }

    /// Brings one instance's listeners in line with its fleet.
    async fn reconcile(&mut self, id: &str) {
        let look = self
            .plane
            .with_wire(id, |a| {
                let obs = a.fleet.observe();
                let mut up: BTreeMap<String, bool> = BTreeMap::new();
                for rs in &obs.replica_sets {
                    for m in &rs.members {
                        up.insert(m.node_id.clone(), m.process_up);
                    }
                }
                for m in &obs.mongos {
                    up.insert(m.node_id.clone(), m.up);
                }
                let procs: Vec<(String, u16, bool)> = up
                    .into_iter()
                    .filter_map(|(n, u)| a.ports.get(&n).map(|&p| (n, p, u)))
                    .collect();
                let next = a
                    .fleet
                    .next_event_ms()
                    .map(|t| t.saturating_sub(obs.now_ms));
                ((procs, next), false)
            })
            .await;
        let (procs, next_ms) = match look {
            Ok(Some(x)) => x,
            Ok(None) => {
                self.remove(id).await;
                return;
            }
            Err(e) => {
                tracing::warn!(instance = %id, error = %e, "cannot read the simulated deployment");
                if let Some(s) = self.served.get_mut(id) {
                    s.due = Instant::now() + Duration::from_secs(1);
                }
                return;
            }
        };
        let idle = Duration::from_millis(self.settings.idle_check_ms);
        let wait = next_ms
            .map(|ms| self.plane.wall_duration(ms).max(Duration::from_millis(5)))
            .unwrap_or(idle)
            .min(idle);
        let Some(mut served) = self.served.remove(id) else {
            return;
        };
        for (node, port, up) in procs {
            let proc = served
                .processes
                .entry(node.clone())
                .or_insert_with(|| Process {
                    port,
                    member: Arc::new(Member::new(
                        self.plane.clone(),
                        served.layout.clone(),
                        node.clone(),
                        self.settings.limits.max_connections as u32,
                        1_000,
                        served.whitelist.clone(),
                        self.store.clone(),
                    )),
                    socket: Port::Reserved(None),
                });
            let addr = SocketAddr::new(self.settings.bind, proc.port);
            match (&mut proc.socket, up) {
                (Port::Reserved(held), true) => {
                    if self.listening >= self.settings.max_listeners {
                        if !self.warned_full {
                            tracing::warn!(max_listeners = self.settings.max_listeners, "the wire listener limit is reached; more processes stay unreachable");
                            self.warned_full = true;
                        }
                        continue;
                    }
                    // Give the reservation up and listen at once on the same port.
                    *held = None;
                    let config = ServerConfig {
                        limits: self.settings.limits.clone(),
                        credentials: Some(served.users.clone()),
                    };
                    let mut listener = WireListener::new(addr, proc.member.clone(), config);
                    match listener.start().await {
                        Ok(_) => {
                            proc.socket = Port::Listening(listener);
                            self.listening += 1;
                        }
                        Err(e) => {
                            tracing::warn!(node = %node, %addr, error = %e, "cannot listen; will retry");
                            proc.socket = Port::Reserved(reserve(addr).ok());
                        }
                    }
                }
                (Port::Reserved(held), false) => {
                    if held.is_none() {
                        *held = reserve(addr).ok();
                    }
                }
                (Port::Listening(listener), false) => {
                    listener.stop().await;
                    proc.member.reset();
                    self.listening -= 1;
                    proc.socket = Port::Reserved(reserve(addr).ok());
                }
                (Port::Listening(_), true) => {}
            }
        }
        served.due = Instant::now() + wait;
        self.served.insert(id.to_string(), served);
    }

    async fn remove(&mut self, id: &str) {
        if let Some(mut served) = self.served.remove(id) {
            for p in served.processes.values_mut() {
                if let Port::Listening(l) = &mut p.socket {
                    l.stop().await;
                    self.listening -= 1;
                }
            }
        }
    }

    async fn close_all(&mut self) {
        let ids: Vec<String> = self.served.keys().cloned().collect();
        for id in ids {
            self.remove(&id).await;
        }
    }
}
