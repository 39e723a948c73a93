//! One member's data: databases, collections keyed by `_id`, and the session table of retryable
//! writes (`config.transactions` in mongod). A [`Change`] is one oplog entry's effect; applying it is
//! idempotent, so replaying the log onto a copy gives the same catalog. Limits bound every catalog.

use std::collections::BTreeMap;

use bson::{Bson, Document};

use crate::compare::IdKey;
use crate::error::{Code, Result, StoreError};

/// Bounds on one replica set's data; a write past a bound is refused and changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// mongod's `maxBsonObjectSize`.
    pub max_document_bytes: usize,
    pub max_documents: usize,
    pub max_total_bytes: usize,
    pub max_databases: usize,
    pub max_collections: usize,
    /// Retryable-write records kept; the oldest are forgotten first (mongod expires them with sessions).
    pub max_session_records: usize,
    pub max_open_cursors: usize,
    /// Documents a `find`/`aggregate` may collect before it is refused instead of buffering without end.
    pub max_result_documents: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_document_bytes: 16 * 1024 * 1024,
            max_documents: 1_000_000,
            max_total_bytes: 256 * 1024 * 1024,
            max_databases: 100,
            max_collections: 1_000,
            max_session_records: 100_000,
            max_open_cursors: 10_000,
            max_result_documents: 1_000_000,
        }
    }
}

/// One oplog entry's effect, in post-image form as mongod's oplog records it.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    CreateCollection {
        db: String,
        coll: String,
    },
    DropCollection {
        db: String,
        coll: String,
    },
    DropDatabase {
        db: String,
    },
    /// An insert or a replacement with the document's final contents.
    Put {
        db: String,
        coll: String,
        doc: Document,
    },
    Delete {
        db: String,
        coll: String,
        id: Bson,
    },
    /// The outcome of a retryable write, replicated with it so a new primary answers a retry.
    Session {
        key: String,
        txn_number: i64,
        reply: Document,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Collection {
    pub(crate) docs: BTreeMap<IdKey, Document>,
    pub(crate) bytes: usize,
}

impl Collection {
    pub fn len(&self) -> usize {
        self.docs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }
    pub fn bytes(&self) -> usize {
        self.bytes
    }
    pub fn get(&self, id: &Bson) -> Option<&Document> {
        self.docs.get(&IdKey(id.clone()))
    }
    pub fn iter(&self) -> impl Iterator<Item = &Document> {
        self.docs.values()
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Database {
    pub(crate) colls: BTreeMap<String, Collection>,
}

impl Database {
    pub fn collections(&self) -> impl Iterator<Item = (&String, &Collection)> {
        self.colls.iter()
    }
    pub fn collection(&self, name: &str) -> Option<&Collection> {
        self.colls.get(name)
    }
    pub fn bytes(&self) -> usize {
        self.colls.values().map(|c| c.bytes).sum()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub txn_number: i64,
    pub reply: Document,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    pub(crate) dbs: BTreeMap<String, Database>,
    pub(crate) sessions: BTreeMap<String, SessionRecord>,
    /// Insertion order of session records, to forget the oldest first.
    pub(crate) session_order: std::collections::VecDeque<String>,
    pub(crate) docs: usize,
    pub(crate) bytes: usize,
}

pub fn doc_bytes(d: &Document) -> usize {
    // A serialised size; documents here were all built from BSON, so encoding cannot fail.
    d.to_vec().map(|v| v.len()).unwrap_or(usize::MAX / 4)
}

impl Catalog {
    pub fn databases(&self) -> impl Iterator<Item = (&String, &Database)> {
        self.dbs.iter()
    }
    pub fn database(&self, db: &str) -> Option<&Database> {
        self.dbs.get(db)
    }
    pub fn collection(&self, db: &str, coll: &str) -> Option<&Collection> {
        self.dbs.get(db)?.colls.get(coll)
    }
    pub fn session(&self, key: &str) -> Option<&SessionRecord> {
        self.sessions.get(key)
    }
    pub fn document_count(&self) -> usize {
        self.docs
    }
    pub fn total_bytes(&self) -> usize {
        self.bytes
    }

    /// Refuses a change that would cross a limit; `apply` itself never fails so replay cannot diverge.
    pub fn check(&self, change: &Change, limits: &Limits) -> Result<()> {
        match change {
            Change::Put { db, coll, doc } => {
                let size = doc_bytes(doc);
                if size > limits.max_document_bytes {
                    return Err(StoreError::new(
                        Code::BSONObjectTooLarge,
                        format!(
                            "object to insert too large. size in bytes: {size}, max size: {}",
                            limits.max_document_bytes
                        ),
                    ));
                }
                let existing = self
                    .collection(db, coll)
                    .and_then(|c| doc.get("_id").and_then(|id| c.get(id)));
                let (grow_docs, old) = match existing {
                    Some(old) => (0, doc_bytes(old)),
                    None => (1, 0),
                };
                if self.docs + grow_docs > limits.max_documents
                    || self.bytes.saturating_sub(old) + size > limits.max_total_bytes
                {
                    return Err(StoreError::new(
                        Code::ExceededMemoryLimit,
                        "the replica set's data limit of this server is reached",
                    ));
                }
                self.check_namespace_room(db, coll, limits)
            }
            Change::CreateCollection { db, coll } => self.check_namespace_room(db, coll, limits),
            _ => Ok(()),
        }
    }

    fn check_namespace_room(&self, db: &str, coll: &str, limits: &Limits) -> Result<()> {
        match self.dbs.get(db) {
            None if self.dbs.len() >= limits.max_databases => Err(StoreError::new(
                Code::ExceededMemoryLimit,
                format!("too many databases (limit {})", limits.max_databases),
            )),
            Some(d)
                if !d.colls.contains_key(coll)
                    && self.collection_count() >= limits.max_collections =>
            {
                Err(StoreError::new(
                    Code::ExceededMemoryLimit,
                    format!("too many collections (limit {})", limits.max_collections),
                ))
            }
            None if self.collection_count() >= limits.max_collections => Err(StoreError::new(
                Code::ExceededMemoryLimit,
                format!("too many collections (limit {})", limits.max_collections),
            )),
            _ => Ok(()),
        }
    }

    pub fn collection_count(&self) -> usize {
        self.dbs.values().map(|d| d.colls.len()).sum()
    }

    /// Applies one change. Idempotent: replaying an entry already applied leaves the catalog as it is.
    pub fn apply(&mut self, change: &Change, limits: &Limits) {
        match change {
            Change::CreateCollection { db, coll } => {
                self.dbs
                    .entry(db.clone())
                    .or_default()
                    .colls
                    .entry(coll.clone())
                    .or_default();
            }
            Change::DropCollection { db, coll } => {
                if let Some(d) = self.dbs.get_mut(db) {
                    if let Some(c) = d.colls.remove(coll) {
                        self.docs -= c.docs.len();
                        self.bytes -= c.bytes;
                    }
                    if d.colls.is_empty() {
                        self.dbs.remove(db);
                    }
                }
            }
            Change::DropDatabase { db } => {
                if let Some(d) = self.dbs.remove(db) {
                    for c in d.colls.values() {
                        self.docs -= c.docs.len();
                        self.bytes -= c.bytes;
                    }
                }
            }
            Change::Put { db, coll, doc } => {
                let Some(id) = doc.get("_id") else { return };
                let c = self
                    .dbs
                    .entry(db.clone())
                    .or_default()
                    .colls
                    .entry(coll.clone())
                    .or_default();
                let size = doc_bytes(doc);
                match c.docs.insert(IdKey(id.clone()), doc.clone()) {
                    Some(old) => {
                        let old_size = doc_bytes(&old);
                        c.bytes = c.bytes + size - old_size;
                        self.bytes = self.bytes + size - old_size;
                    }
                    None => {
                        c.bytes += size;
                        self.bytes += size;
                        self.docs += 1;
                    }
                }
            }
            Change::Delete { db, coll, id } => {
                if let Some(c) = self.dbs.get_mut(db).and_then(|d| d.colls.get_mut(coll)) {
                    if let Some(old) = c.docs.remove(&IdKey(id.clone())) {
                        let size = doc_bytes(&old);
                        c.bytes -= size;
                        self.bytes -= size;
                        self.docs -= 1;
                    }
                }
            }
            Change::Session {
                key,
                txn_number,
                reply,
            } => {
                let rec = SessionRecord {
                    txn_number: *txn_number,
                    reply: reply.clone(),
                };
                if self.sessions.insert(key.clone(), rec).is_none() {
                    self.session_order.push_back(key.clone());
                }
                while self.sessions.len() > limits.max_session_records {
                    match self.session_order.pop_front() {
                        Some(old) => {
                            self.sessions.remove(&old);
                        }
                        None => break,
                    }
                }
            }
        }
    }
}

/// mongod's rules for database names.
pub fn check_db_name(db: &str) -> Result<()> {
    let bad = db.is_empty()
        || db.len() > 63
        || db
            .chars()
            .any(|c| matches!(c, '/' | '\\' | '.' | ' ' | '"' | '$' | '\0'));
    if bad {
        return Err(StoreError::new(
            Code::InvalidNamespace,
            format!("Invalid database name: '{db}'"),
        ));
    }
    Ok(())
}

/// mongod's rules for a user collection name within `db` (the full namespace at most 255 bytes).
pub fn check_collection_name(db: &str, coll: &str) -> Result<()> {
    check_db_name(db)?;
    let bad = coll.is_empty()
        || coll.contains('\0')
        || coll.contains('$')
        || coll.starts_with('.')
        || coll.starts_with("system.")
        || db.len() + 1 + coll.len() > 255;
    if bad {
        return Err(StoreError::new(
            Code::InvalidNamespace,
            format!("Invalid namespace specified '{db}.{coll}'"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn put(db: &str, coll: &str, doc: Document) -> Change {
        Change::Put {
            db: db.into(),
            coll: coll.into(),
            doc,
        }
    }

    #[test]
    fn apply_is_idempotent_and_keeps_counts() {
        let l = Limits::default();
        let mut c = Catalog::default();
        let ch = put("app", "t", doc! {"_id": 1, "x": "a"});
        c.apply(&ch, &l);
        c.apply(&ch, &l);
        assert_eq!(c.document_count(), 1);
        c.apply(&put("app", "t", doc! {"_id": 1, "x": "abc"}), &l);
        assert_eq!(c.total_bytes(), doc_bytes(&doc! {"_id": 1, "x": "abc"}));
        c.apply(
            &Change::Delete {
                db: "app".into(),
                coll: "t".into(),
                id: Bson::Int64(1),
            },
            &l,
        );
        assert_eq!((c.document_count(), c.total_bytes()), (0, 0));
        c.apply(&put("app", "u", doc! {"_id": 2}), &l);
        c.apply(&Change::DropDatabase { db: "app".into() }, &l);
        assert_eq!((c.document_count(), c.databases().count()), (0, 0));
    }

    #[test]
    fn limits_refuse_before_applying() {
        let l = Limits {
            max_documents: 1,
            max_databases: 1,
            ..Limits::default()
        };
        let mut c = Catalog::default();
        let first = put("a", "t", doc! {"_id": 1});
        c.check(&first, &l).unwrap();
        c.apply(&first, &l);
        assert_eq!(
            c.check(&put("a", "t", doc! {"_id": 2}), &l)
                .unwrap_err()
                .code,
            Code::ExceededMemoryLimit
        );
        // Replacing an existing document does not grow the count.
        c.check(&put("a", "t", doc! {"_id": 1, "y": 1}), &l)
            .unwrap();
        let big = Limits {
            max_document_bytes: 10,
            ..Limits::default()
        };
        assert_eq!(
            c.check(&put("a", "t", doc! {"_id": 1, "y": "0123456789"}), &big)
                .unwrap_err()
                .code
                .number(),
            10334
        );
    }

    #[test]
    fn names_follow_mongods_rules() {
        assert!(check_collection_name("app", "users").is_ok());
        for (db, coll) in [
            ("", "x"),
            ("a.b", "x"),
            ("a", ""),
            ("a", "x$y"),
            ("a", "system.users"),
        ] {
            assert_eq!(
                check_collection_name(db, coll).unwrap_err().code.number(),
                73,
                "{db}.{coll}"
            );
        }
    }
}
