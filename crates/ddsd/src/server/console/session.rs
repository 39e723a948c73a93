//! The console's sign-in state: sessions in memory, the CSRF token of each, the per-IP limit on
//! failed sign-ins, and the session cookie.
//!
//! - A session is created by a sign-in with an AccessKey pair the server's `KeyStore` knows (the
//!   secret is compared in constant time and forgotten at once: a session holds the AccessKeyId,
//!   never the secret). Its id is 32 random bytes (hex), sent only as an `HttpOnly`,
//!   `SameSite=Strict` cookie scoped to `/console` (`Secure` when ddsd serves HTTPS).
//! - A session ends when signed out, after [`SessionConfig::idle`] without a request, or
//!   [`SessionConfig::absolute`] after its sign-in, whichever comes first. At most
//!   [`SessionConfig::max_sessions`] live at once: a sign-in beyond that (after expired ones are
//!   dropped) is refused with `Throttling` rather than pushing someone else out.
//! - Each session has its own CSRF token (32 random bytes, hex), given to the page after sign-in and
//!   required, in the `X-CSRF-Token` header, on every state-changing console request; compared in
//!   constant time.
//! - Failed sign-ins are counted per client IP: after [`SessionConfig::max_failures`] within
//!   [`SessionConfig::failure_window`], further attempts from that IP are refused (429 `Throttling`)
//!   until the window has passed, right or wrong key alike. The table is bounded
//!   ([`SessionConfig::max_tracked_ips`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq as _;

/// The cookie that carries the session id.
pub const COOKIE: &str = "ddsd_console";

/// The bounds of the console's sign-in state.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// A session unused this long ends.
    pub idle: Duration,
    /// A session ends this long after its sign-in, used or not.
    pub absolute: Duration,
    /// Sessions alive at once.
    pub max_sessions: usize,
    /// Failed sign-ins one IP may make within `failure_window` before it is refused.
    pub max_failures: u32,
    pub failure_window: Duration,
    /// IPs whose failures are remembered at once.
    pub max_tracked_ips: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(12 * 3600),
            max_sessions: 1024,
            max_failures: 5,
            failure_window: Duration::from_secs(5 * 60),
            max_tracked_ips: 10_000,
        }
    }
}

/// One signed-in console user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub access_key_id: String,
    /// Whether the key is an admin key (the page shows the `Ddsd*` admin extensions).
    pub admin: bool,
    pub csrf_token: String,
    created: Instant,
    last_used: Instant,
}

/// Why a sign-in or a request was refused by the session layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many failed sign-ins from this IP; retry after this long.
    RateLimited(Duration),
    /// The session table is full.
    TooManySessions,
}

/// 32 random bytes from the thread-local CSPRNG, hex.
pub fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Constant-time equality of two strings (their lengths may leak; the values compared here have a
/// fixed length or are secrets checked after a lookup).
pub fn ct_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
}

/// The sessions and the failed sign-ins of one ddsd.
#[derive(Debug)]
pub struct Sessions {
    config: SessionConfig,
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

impl Default for Sessions {
    fn default() -> Self {
        Self::new(SessionConfig::default())
    }
}

impl Sessions {
    pub fn new(config: SessionConfig) -> Self {
        Self {
            config,
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Whether `ip` may try to sign in at `now` (`Err` with the wait when it has failed too often).
    pub fn may_sign_in(&self, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match failures.get(&ip) {
            Some(f)
                if f.count >= self.config.max_failures
                    && now.duration_since(f.since) < self.config.failure_window =>
            {
                Err(Refusal::RateLimited(
                    self.config.failure_window - now.duration_since(f.since),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed sign-in of `ip`.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let window = self.config.failure_window;
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() >= self.config.max_tracked_ips && !failures.contains_key(&ip) {
            failures.retain(|_, f| now.duration_since(f.since) < window);
            if failures.len() >= self.config.max_tracked_ips {
                // Still full of fresh failures: forget the oldest one rather than grow.
                if let Some(oldest) = failures
                    .iter()
                    .min_by_key(|(_, f)| f.since)
                    .map(|(k, _)| *k)
                {
                    failures.remove(&oldest);
                }
            }
        }
        let entry = failures.entry(ip).or_insert(Failures {
            count: 0,
            since: now,
        });
        if now.duration_since(entry.since) >= window {
            *entry = Failures {
                count: 0,
                since: now,
            };
        }
        entry.count += 1;
    }

    /// A successful sign-in: the IP's failures are forgotten and a session is created. Answers the
    /// session id and the session.
    pub fn create(
        &self,
        ip: IpAddr,
        access_key_id: &str,
        admin: bool,
        now: Instant,
    ) -> Result<(String, Session), Refusal> {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ip);
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if sessions.len() >= self.config.max_sessions {
            sessions.retain(|_, s| self.alive(s, now));
            if sessions.len() >= self.config.max_sessions {
                return Err(Refusal::TooManySessions);
            }
        }
        let id = random_token();
        let session = Session {
            access_key_id: access_key_id.to_string(),
            admin,
            csrf_token: random_token(),
            created: now,
            last_used: now,
        };
        sessions.insert(id.clone(), session.clone());
        Ok((id, session))
    }

    fn alive(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.last_used) < self.config.idle
            && now.duration_since(s.created) < self.config.absolute
    }

    /// The live session of `id`, marked as used at `now`; an expired one is removed.
    pub fn get(&self, id: &str, now: Instant) -> Option<Session> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let alive = sessions.get(id).map(|s| self.alive(s, now))?;
        if !alive {
            sessions.remove(id);
            return None;
        }
        let s = sessions.get_mut(id)?;
        s.last_used = now;
        Some(s.clone())
    }

    /// Signs out: the session is gone.
    pub fn remove(&self, id: &str) -> bool {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
            .is_some()
    }

    pub fn len(&self) -> usize {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The `Set-Cookie` value that carries a new session (`Max-Age` = the absolute lifetime).
pub fn session_cookie(id: &str, secure: bool, max_age: Duration) -> String {
    format!(
        "{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn cleared_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The session id in a `Cookie` header value, if any.
pub fn session_id_from_cookie(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, n])
    }

    fn small() -> Sessions {
        Sessions::new(SessionConfig {
            idle: Duration::from_secs(60),
            absolute: Duration::from_secs(300),
            max_sessions: 2,
            max_failures: 3,
            failure_window: Duration::from_secs(100),
            max_tracked_ips: 2,
        })
    }

    #[test]
    fn a_session_expires_when_idle_and_at_its_absolute_end() {
        let s = small();
        let t0 = Instant::now();
        let (id, session) = s.create(ip(1), "key", false, t0).unwrap();
        assert_eq!(id.len(), 64);
        assert_eq!(session.csrf_token.len(), 64);
        assert_ne!(id, session.csrf_token);
        // Used every 50 s, it stays alive past the idle time ...
        for i in 1..=5 {
            assert!(s.get(&id, t0 + Duration::from_secs(50 * i)).is_some());
        }
        // ... but not past the absolute lifetime.
        assert!(s.get(&id, t0 + Duration::from_secs(301)).is_none());
        assert!(s.is_empty(), "an expired session is removed when found");
        // Idle for longer than the idle time.
        let (id, _) = s.create(ip(1), "key", false, t0).unwrap();
        assert!(s.get(&id, t0 + Duration::from_secs(61)).is_none());
    }

    #[test]
    fn sign_out_removes_the_session_and_unknown_ids_find_nothing() {
        let s = small();
        let t0 = Instant::now();
        let (id, _) = s.create(ip(1), "key", true, t0).unwrap();
        assert!(s.get(&id, t0).unwrap().admin);
        assert!(s.get(&random_token(), t0).is_none());
        assert!(s.remove(&id));
        assert!(s.get(&id, t0).is_none());
        assert!(!s.remove(&id));
    }

    #[test]
    fn the_number_of_sessions_is_bounded() {
        let s = small();
        let t0 = Instant::now();
        s.create(ip(1), "a", false, t0).unwrap();
        s.create(ip(1), "b", false, t0).unwrap();
        assert_eq!(
            s.create(ip(1), "c", false, t0),
            Err(Refusal::TooManySessions)
        );
        // Once the others have expired there is room again.
        assert!(s
            .create(ip(1), "c", false, t0 + Duration::from_secs(61))
            .is_ok());
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn failed_sign_ins_are_limited_per_ip_for_a_window() {
        let s = small();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(s.may_sign_in(ip(1), t0).is_ok());
            s.failed(ip(1), t0);
        }
        assert_eq!(
            s.may_sign_in(ip(1), t0 + Duration::from_secs(40)),
            Err(Refusal::RateLimited(Duration::from_secs(60)))
        );
        // Another IP is not affected.
        assert!(s.may_sign_in(ip(2), t0).is_ok());
        // After the window the IP may try again, and a success clears its count.
        assert!(s.may_sign_in(ip(1), t0 + Duration::from_secs(100)).is_ok());
        s.failed(ip(1), t0 + Duration::from_secs(100));
        s.create(ip(1), "a", false, t0 + Duration::from_secs(101))
            .unwrap();
        for _ in 0..2 {
            s.failed(ip(1), t0 + Duration::from_secs(102));
        }
        assert!(s.may_sign_in(ip(1), t0 + Duration::from_secs(102)).is_ok());
    }

    #[test]
    fn the_failure_table_is_bounded() {
        let s = small();
        let t0 = Instant::now();
        for n in 1..=10 {
            s.failed(ip(n), t0 + Duration::from_secs(u64::from(n)));
        }
        assert!(s.failures.lock().unwrap().len() <= 2);
    }

    #[test]
    fn cookies_carry_the_flags_and_parse_back() {
        let id = random_token();
        let c = session_cookie(&id, false, Duration::from_secs(3600));
        assert_eq!(
            c,
            format!("ddsd_console={id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age=3600")
        );
        let tls = session_cookie(&id, true, Duration::from_secs(3600));
        assert!(tls.ends_with("; Secure"));
        assert!(cleared_cookie(true).contains("Max-Age=0"));
        assert!(cleared_cookie(false).contains("HttpOnly; SameSite=Strict"));
        let header = format!("other=1; ddsd_console={id}; x=y");
        assert_eq!(session_id_from_cookie(&header), Some(id.as_str()));
        assert_eq!(session_id_from_cookie("ddsd_console=short"), None);
        assert_eq!(session_id_from_cookie("other=1"), None);
    }

    #[test]
    fn constant_time_comparison_is_equality() {
        assert!(ct_eq("abc", "abc"));
        assert!(!ct_eq("abc", "abd"));
        assert!(!ct_eq("abc", "abcd"));
        assert!(!ct_eq("", "a"));
    }
}
