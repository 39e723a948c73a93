//! Which TCP port each simulated process listens on. A port is given to a process when its
//! deployment is created, recorded with the deployment's snapshot (so it is the same after a
//! restart of ddsd), and handed back when the deployment is gone. The book itself lives in memory:
//! at startup the plane reserves every port recorded in the stored snapshots before giving out new
//! ones.
//!
//! Two ways to choose: a configured range, or (`auto`) ports the operating system picks, which
//! never collide with another program's or another ddsd's; either way the port is then recorded.

use std::collections::BTreeSet;
use std::sync::Mutex;

#[derive(Debug)]
pub struct PortBook {
    first: u16,
    last: u16,
    /// `auto`: ask the system for a free port on this address.
    auto: Option<std::net::IpAddr>,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    used: BTreeSet<u16>,
    /// Where the next search starts: ports are handed out in rising order and reused only after
    /// the range wrapped, so a port a deleted instance had is not at once someone else's.
    next: u16,
}

impl PortBook {
    /// Ports `first..=last`.
    pub fn new(first: u16, last: u16) -> Result<PortBook, String> {
        if first == 0 || last < first {
            return Err(format!(
                "wire port range {first}..={last} is empty or starts at 0"
            ));
        }
        Ok(PortBook {
            first,
            last,
            auto: None,
            inner: Mutex::new(Inner {
                used: BTreeSet::new(),
                next: first,
            }),
        })
    }

    /// Ports the system gives out on `ip` (every recorded port is still honoured).
    pub fn auto(ip: std::net::IpAddr) -> PortBook {
        PortBook {
            first: 1,
            last: u16::MAX,
            auto: Some(ip),
            inner: Mutex::new(Inner {
                used: BTreeSet::new(),
                next: 1,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks ports recorded elsewhere as taken (those outside the range are ignored).
    pub fn reserve(&self, ports: impl IntoIterator<Item = u16>) {
        let mut inner = self.lock();
        for p in ports {
            if (self.first..=self.last).contains(&p) {
                inner.used.insert(p);
            }
        }
    }

    /// A free port, or `None` when the range is exhausted.
    pub fn allocate(&self) -> Option<u16> {
        if let Some(ip) = self.auto {
            // The wire supervisor binds it again within moments and holds it from then on.
            for _ in 0..16 {
                let port = std::net::TcpListener::bind((ip, 0))
                    .and_then(|l| l.local_addr())
                    .ok()?
                    .port();
                if self.lock().used.insert(port) {
                    return Some(port);
                }
            }
            return None;
        }
        let mut inner = self.lock();
        let size = u32::from(self.last - self.first) + 1;
        let mut p = inner.next;
        for _ in 0..size {
            if !inner.used.contains(&p) {
                inner.used.insert(p);
                inner.next = if p == self.last { self.first } else { p + 1 };
                return Some(p);
            }
            p = if p == self.last { self.first } else { p + 1 };
        }
        None
    }

    pub fn release(&self, ports: impl IntoIterator<Item = u16>) {
        let mut inner = self.lock();
        for p in ports {
            inner.used.remove(&p);
        }
    }

    pub fn in_use(&self) -> usize {
        self.lock().used.len()
    }

    /// Ports still free in a configured range; `None` when the system picks them (no bound ddsd
    /// knows of).
    pub fn free(&self) -> Option<usize> {
        if self.auto.is_some() {
            return None;
        }
        let size = usize::from(self.last - self.first) + 1;
        Some(size.saturating_sub(self.in_use()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_unique_reused_after_a_wrap_and_bounded() {
        let book = PortBook::new(100, 103).unwrap();
        book.reserve([101, 9]);
        assert_eq!(book.allocate(), Some(100));
        assert_eq!(book.allocate(), Some(102));
        book.release([100]);
        assert_eq!(book.allocate(), Some(103), "not at once reused");
        assert_eq!(book.allocate(), Some(100), "reused after the wrap");
        assert_eq!(book.allocate(), None);
        assert_eq!(book.free(), Some(0));
        assert_eq!(book.in_use(), 4);
        for (first, last) in [(0, 10), (10, 9)] {
            let e = PortBook::new(first, last).unwrap_err();
            assert!(e.contains("is empty or starts at 0"), "{e}");
        }
    }

    #[test]
    fn automatic_ports_are_distinct_and_bindable() {
        let book = PortBook::auto(std::net::IpAddr::from([127, 0, 0, 1]));
        let a = book.allocate().unwrap();
        let b = book.allocate().unwrap();
        assert_ne!(a, b);
        std::net::TcpListener::bind(("127.0.0.1", a)).unwrap();
        assert_eq!(book.in_use(), 2);
    }
}
