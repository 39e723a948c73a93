//! A replica set's data as an oplog: a base catalog (everything majority-committed and compacted),
//! the entries after it, and one lazily materialised view per member at that member's optime. The
//! caller (the simulation) says how far each member has replicated; the store answers what that
//! member sees. An election that picks a member behind the old primary rolls the newer entries back,
//! as MongoDB's rollback does; entries at or before the majority point are never rolled back.

use std::collections::{BTreeMap, VecDeque};

use bson::{doc, Bson, Document};

use crate::catalog::{Catalog, Change, Limits};
use crate::error::{Result, StoreError};

/// A position in the oplog: the plane's milliseconds and a counter for entries in the same millisecond
/// (mongod's `Timestamp(seconds, increment)` with a finer clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct OpTime {
    pub ms: u64,
    pub inc: u32,
}

impl OpTime {
    pub const ZERO: OpTime = OpTime { ms: 0, inc: 0 };
    /// The last position at or before `ms`.
    pub fn end_of(ms: u64) -> OpTime {
        OpTime { ms, inc: u32::MAX }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub at: OpTime,
    pub change: Change,
}

#[derive(Debug, Clone)]
struct View {
    applied: OpTime,
    catalog: Catalog,
}

/// Entries kept after the majority point before the log is compacted past members that lag behind
/// (such a member is then resynced from the base, like an initial sync).
pub const MAX_LOG_ENTRIES: usize = 200_000;

#[derive(Debug, Clone)]
pub struct ReplicaStore {
    limits: Limits,
    base: Catalog,
    base_at: OpTime,
    log: VecDeque<Entry>,
    views: BTreeMap<String, View>,
    rolled_back: u64,
}

/// A write in progress on the primary's view: each change is checked against the limits, applied,
/// and recorded for the oplog.
pub struct WriteBatch<'a> {
    catalog: &'a mut Catalog,
    limits: &'a Limits,
    changes: Vec<Change>,
    pub now_ms: u64,
}

impl WriteBatch<'_> {
    pub fn catalog(&self) -> &Catalog {
        self.catalog
    }
    pub fn apply(&mut self, change: Change) -> Result<()> {
        self.catalog.check(&change, self.limits)?;
        self.catalog.apply(&change, self.limits);
        self.changes.push(change);
        Ok(())
    }
    pub fn limits(&self) -> &Limits {
        self.limits
    }
}

impl ReplicaStore {
    pub fn new(limits: Limits) -> Self {
        ReplicaStore {
            limits,
            base: Catalog::default(),
            base_at: OpTime::ZERO,
            log: VecDeque::new(),
            views: BTreeMap::new(),
            rolled_back: 0,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The newest entry's position (the old primary's last write).
    pub fn last(&self) -> OpTime {
        self.log.back().map(|e| e.at).unwrap_or(self.base_at)
    }

    /// Entries removed by rollbacks so far.
    pub fn rolled_back(&self) -> u64 {
        self.rolled_back
    }

    pub fn log_len(&self) -> usize {
        self.log.len()
    }

    /// What `member` sees when it has replicated everything up to `upto_ms`.
    pub fn view(&mut self, member: &str, upto_ms: u64) -> &Catalog {
        let upto = OpTime::end_of(upto_ms);
        let stale = match self.views.get(member) {
            None => true,
            Some(v) => v.applied < self.base_at,
        };
        if stale {
            self.views.insert(
                member.to_string(),
                View {
                    applied: self.base_at,
                    catalog: self.base.clone(),
                },
            );
        }
        let view = self.views.get_mut(member).expect("inserted above");
        // A member's data never goes back by itself; only a rollback (which drops the view) does that.
        if upto > view.applied {
            let start = self.log.partition_point(|e| e.at <= view.applied);
            for e in self.log.iter().skip(start) {
                if e.at > upto {
                    break;
                }
                view.catalog.apply(&e.change, &self.limits);
                view.applied = e.at;
            }
        }
        &self.views[member].catalog
    }

    /// How far `member`'s view has applied, if it has one.
    pub fn applied(&self, member: &str) -> Option<OpTime> {
        self.views.get(member).map(|v| v.applied)
    }

    /// Runs a write on the primary's view, which first catches up with the whole log. Changes get
    /// consecutive positions at or after `now_ms`; returns the result and the last position written
    /// (the write concern waits for it). On error nothing the closure applied is kept.
    pub fn write<R>(
        &mut self,
        primary: &str,
        now_ms: u64,
        f: impl FnOnce(&mut WriteBatch<'_>) -> Result<R>,
    ) -> Result<(R, OpTime)> {
        let (out, at) = self.run(primary, now_ms, false, f);
        out.map(|r| (r, at))
    }

    /// Like [`write`](Self::write) but keeps what the closure applied before it returned: an ordered
    /// batch that stops at its first failing statement keeps the statements before it.
    pub fn write_partial<R>(
        &mut self,
        primary: &str,
        now_ms: u64,
        f: impl FnOnce(&mut WriteBatch<'_>) -> R,
    ) -> (R, OpTime) {
        let mut slot = None;
        let (_, at) = self.run(primary, now_ms, true, |b| {
            slot = Some(f(b));
            Ok(())
        });
        match slot {
            Some(r) => (r, at),
            // `run` always calls its closure once.
            None => unreachable!("write closure not run"),
        }
    }

    fn run<R>(
        &mut self,
        primary: &str,
        now_ms: u64,
        keep_partial: bool,
        f: impl FnOnce(&mut WriteBatch<'_>) -> Result<R>,
    ) -> (Result<R>, OpTime) {
        let last = self.last();
        self.view(primary, u64::MAX);
        let view = self.views.get_mut(primary).expect("view created");
        let mut scratch = view.catalog.clone();
        let mut batch = WriteBatch {
            catalog: &mut scratch,
            limits: &self.limits,
            changes: Vec::new(),
            now_ms,
        };
        let out = f(&mut batch);
        let changes = std::mem::take(&mut batch.changes);
        if out.is_err() && !keep_partial || changes.is_empty() {
            return (out, last);
        }
        let mut at = if now_ms > last.ms {
            OpTime { ms: now_ms, inc: 0 }
        } else {
            OpTime {
                ms: last.ms,
                inc: last.inc.saturating_add(1),
            }
        };
        for (i, change) in changes.into_iter().enumerate() {
            if i > 0 {
                at.inc = at.inc.saturating_add(1);
            }
            self.log.push_back(Entry { at, change });
        }
        view.catalog = scratch;
        view.applied = at;
        (out, at)
    }

    /// An election chose a member that has replicated up to `winner_ms`: entries after it are rolled
    /// back everywhere (never past the majority point). Returns how many entries were removed.
    pub fn rollback_after(&mut self, winner_ms: u64) -> usize {
        let keep = OpTime::end_of(winner_ms).max(self.base_at);
        let before = self.log.len();
        while self.log.back().is_some_and(|e| e.at > keep) {
            self.log.pop_back();
        }
        let removed = before - self.log.len();
        if removed > 0 {
            self.views.retain(|_, v| v.applied <= keep);
            self.rolled_back += removed as u64;
        }
        removed
    }

    /// Entries at or before `majority_ms` are committed: fold them into the base, but only as far as
    /// every member's view has applied (a lagging view still replays from the log), unless the log is
    /// over [`MAX_LOG_ENTRIES`].
    pub fn commit(&mut self, majority_ms: u64) {
        let majority = OpTime::end_of(majority_ms);
        let slowest = self
            .views
            .values()
            .map(|v| v.applied)
            .min()
            .unwrap_or(majority);
        let point = if self.log.len() > MAX_LOG_ENTRIES {
            majority
        } else {
            majority.min(slowest)
        };
        while self.log.front().is_some_and(|e| e.at <= point) {
            let e = self.log.pop_front().expect("checked");
            self.base.apply(&e.change, &self.limits);
            self.base_at = e.at;
        }
    }

    /// Forgets a member's view (it will be rebuilt from the base and the log when next read).
    pub fn forget(&mut self, member: &str) {
        self.views.remove(member);
    }

    /// The persisted form: the base catalog and the log; views are rebuilt on demand.
    pub fn to_document(&self) -> Document {
        let log: Vec<Bson> = self
            .log
            .iter()
            .map(|e| Bson::Document(doc! {"ms": e.at.ms as i64, "inc": i64::from(e.at.inc), "c": change_doc(&e.change)}))
            .collect();
        doc! {
            "format": 1,
            "base_ms": self.base_at.ms as i64,
            "base_inc": i64::from(self.base_at.inc),
            "base": catalog_doc(&self.base),
            "log": log,
            "rolled_back": self.rolled_back as i64,
        }
    }

    pub fn from_document(d: &Document, limits: Limits) -> Result<ReplicaStore> {
        let bad =
            |what: &str| StoreError::failed_to_parse(format!("document store snapshot: {what}"));
        if d.get_i32("format").map_err(|_| bad("format"))? != 1 {
            return Err(bad("unknown format"));
        }
        let mut s = ReplicaStore::new(limits);
        s.base_at = OpTime {
            ms: d.get_i64("base_ms").map_err(|_| bad("base_ms"))? as u64,
            inc: d.get_i64("base_inc").map_err(|_| bad("base_inc"))? as u32,
        };
        for c in d.get_array("base").map_err(|_| bad("base"))? {
            let c = c.as_document().ok_or_else(|| bad("base entry"))?;
            s.base
                .apply(&doc_change(c).ok_or_else(|| bad("base change"))?, &limits);
        }
        for e in d.get_array("log").map_err(|_| bad("log"))? {
            let e = e.as_document().ok_or_else(|| bad("log entry"))?;
            let at = OpTime {
                ms: e.get_i64("ms").map_err(|_| bad("ms"))? as u64,
                inc: e.get_i64("inc").map_err(|_| bad("inc"))? as u32,
            };
            let change = doc_change(e.get_document("c").map_err(|_| bad("c"))?)
                .ok_or_else(|| bad("change"))?;
            if s.log.back().is_some_and(|p| p.at >= at) || at <= s.base_at {
                return Err(bad("log out of order"));
            }
            s.log.push_back(Entry { at, change });
        }
        s.rolled_back = d.get_i64("rolled_back").unwrap_or(0) as u64;
        Ok(s)
    }
}

/// The base catalog as the changes that rebuild it (collections first, then documents, then sessions).
fn catalog_doc(c: &Catalog) -> Vec<Bson> {
    let mut out = Vec::new();
    for (db, d) in c.databases() {
        for (coll, docs) in d.collections() {
            out.push(Bson::Document(change_doc(&Change::CreateCollection {
                db: db.clone(),
                coll: coll.clone(),
            })));
            for doc in docs.iter() {
                out.push(Bson::Document(change_doc(&Change::Put {
                    db: db.clone(),
                    coll: coll.clone(),
                    doc: doc.clone(),
                })));
            }
        }
    }
    for key in &c.session_order {
        if let Some(r) = c.sessions.get(key) {
            out.push(Bson::Document(change_doc(&Change::Session {
                key: key.clone(),
                txn_number: r.txn_number,
                reply: r.reply.clone(),
            })));
        }
    }
    out
}

fn change_doc(c: &Change) -> Document {
    match c {
        Change::CreateCollection { db, coll } => doc! {"op": "c", "db": db, "coll": coll},
        Change::DropCollection { db, coll } => doc! {"op": "d", "db": db, "coll": coll},
        Change::DropDatabase { db } => doc! {"op": "D", "db": db},
        Change::Put { db, coll, doc } => {
            doc! {"op": "p", "db": db, "coll": coll, "doc": doc.clone()}
        }
        Change::Delete { db, coll, id } => {
            doc! {"op": "x", "db": db, "coll": coll, "id": id.clone()}
        }
        Change::Session {
            key,
            txn_number,
            reply,
        } => doc! {"op": "s", "key": key, "txn": txn_number, "reply": reply.clone()},
    }
}

fn doc_change(d: &Document) -> Option<Change> {
    let s = |k: &str| d.get_str(k).ok().map(str::to_string);
    Some(match d.get_str("op").ok()? {
        "c" => Change::CreateCollection {
            db: s("db")?,
            coll: s("coll")?,
        },
        "d" => Change::DropCollection {
            db: s("db")?,
            coll: s("coll")?,
        },
        "D" => Change::DropDatabase { db: s("db")? },
        "p" => Change::Put {
            db: s("db")?,
            coll: s("coll")?,
            doc: d.get_document("doc").ok()?.clone(),
        },
        "x" => Change::Delete {
            db: s("db")?,
            coll: s("coll")?,
            id: d.get("id")?.clone(),
        },
        "s" => Change::Session {
            key: s("key")?,
            txn_number: d.get_i64("txn").ok()?,
            reply: d.get_document("reply").ok()?.clone(),
        },
        _ => return None,
    })
}
