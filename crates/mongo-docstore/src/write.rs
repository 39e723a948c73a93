//! Write commands on the primary's view: `insert`, `update`, `delete`, `findAndModify`, `create`,
//! `drop`, `dropDatabase`, with mongod's reply shapes (`n`, `nModified`, `upserted`, `writeErrors`)
//! and ordered/unordered batches. Retryable writes (`lsid` + `txnNumber`) are answered from the
//! replicated session table when they were already applied.

use bson::{doc, oid::ObjectId, Bson, Document};

use crate::args::{collection_name, doc_array, opt_bool, opt_doc, opt_i64};
use crate::catalog::{check_collection_name, check_db_name, Change, SessionRecord};
use crate::error::{Code, Result, StoreError};
use crate::filter::Filter;
use crate::project::{Projection, Sort};
use crate::read::matching;
use crate::replica::WriteBatch;
use crate::update::{upsert_seed, Update};

/// mongod's `maxWriteBatchSize`.
pub const MAX_WRITE_BATCH: usize = 100_000;

pub fn is_write_command(name: &str) -> bool {
    matches!(
        name,
        "insert"
            | "update"
            | "delete"
            | "findAndModify"
            | "findandmodify"
            | "create"
            | "drop"
            | "dropDatabase"
    )
}

/// The retryable write already applied for this session and `txnNumber`, if any; a `txnNumber`
/// older than the session's newest is refused as mongod refuses it.
pub fn prior_outcome(
    record: Option<&SessionRecord>,
    key: &str,
    txn_number: i64,
) -> Result<Option<Document>> {
    match record {
        Some(r) if r.txn_number == txn_number => Ok(Some(r.reply.clone())),
        Some(r) if r.txn_number > txn_number => Err(StoreError::new(
            Code::TransactionTooOld,
            format!(
                "Retryable write with txnNumber {txn_number} is prohibited on session {key} because a newer retryable write with txnNumber {} has already started on this session.",
                r.txn_number
            ),
        )),
        _ => Ok(None),
    }
}

/// Runs a write command; statement errors become `writeErrors` in the reply, command errors are
/// returned as errors. With a session, the reply is recorded with the write, atomically.
pub fn write_command(
    b: &mut WriteBatch<'_>,
    db: &str,
    name: &str,
    cmd: &Document,
    session: Option<(&str, i64)>,
) -> Result<Document> {
    if let Some((key, txn)) = session {
        if let Some(reply) = prior_outcome(b.catalog().session(key), key, txn)? {
            return Ok(reply);
        }
    }
    let reply = match name {
        "insert" => insert(b, db, cmd),
        "update" => update(b, db, cmd),
        "delete" => delete(b, db, cmd),
        "findAndModify" | "findandmodify" => find_and_modify(b, db, cmd),
        "create" => create(b, db, cmd),
        "drop" => drop(b, db, cmd),
        "dropDatabase" => drop_database(b, db),
        other => Err(StoreError::new(
            Code::Location(59),
            format!("no such command: '{other}'"),
        )),
    }?;
    if let Some((key, txn)) = session {
        b.apply(Change::Session {
            key: key.to_string(),
            txn_number: txn,
            reply: reply.clone(),
        })?;
    }
    Ok(reply)
}

fn statements<'a>(cmd: &'a Document, key: &str) -> Result<Vec<&'a Document>> {
    let items = doc_array(cmd, key)?;
    if items.len() > MAX_WRITE_BATCH {
        return Err(StoreError::new(
            Code::InvalidOptions,
            format!(
                "Write batch sizes must be between 1 and {MAX_WRITE_BATCH}. Got {} operations.",
                items.len()
            ),
        ));
    }
    if items.is_empty() {
        return Err(StoreError::new(
            Code::InvalidOptions,
            format!("Write batch sizes must be between 1 and {MAX_WRITE_BATCH}. Got 0 operations."),
        ));
    }
    Ok(items)
}

fn write_error(index: usize, e: &StoreError) -> Bson {
    Bson::Document(
        doc! {"index": index as i32, "code": e.code.number(), "codeName": e.code.name(), "errmsg": e.message.clone()},
    )
}

fn ensure_collection(b: &mut WriteBatch<'_>, db: &str, coll: &str) -> Result<()> {
    if b.catalog().collection(db, coll).is_none() {
        b.apply(Change::CreateCollection {
            db: db.into(),
            coll: coll.into(),
        })?;
    }
    Ok(())
}

fn duplicate(db: &str, coll: &str, id: &Bson) -> StoreError {
    StoreError::new(Code::DuplicateKey, format!("E11000 duplicate key error collection: {db}.{coll} index: _id_ dup key: {{ _id: {id} }}"))
}

fn with_id(d: &Document) -> Document {
    if d.contains_key("_id") {
        return d.clone();
    }
    let mut out = doc! {"_id": ObjectId::new()};
    out.extend(d.clone());
    out
}

fn insert_one(b: &mut WriteBatch<'_>, db: &str, coll: &str, d: Document) -> Result<()> {
    let id = d.get("_id").cloned().unwrap_or(Bson::Null);
    if matches!(id, Bson::Array(_)) {
        return Err(StoreError::bad_value("can't use an array for _id"));
    }
    if b.catalog()
        .collection(db, coll)
        .is_some_and(|c| c.get(&id).is_some())
    {
        return Err(duplicate(db, coll, &id));
    }
    ensure_collection(b, db, coll)?;
    b.apply(Change::Put {
        db: db.into(),
        coll: coll.into(),
        doc: d,
    })
}

fn finish(n: usize, errors: Vec<Bson>, extra: Document) -> Document {
    let mut reply = doc! {"n": n as i32};
    reply.extend(extra);
    if !errors.is_empty() {
        reply.insert("writeErrors", errors);
    }
    reply.insert("ok", 1.0);
    reply
}

fn insert(b: &mut WriteBatch<'_>, db: &str, cmd: &Document) -> Result<Document> {
    let coll = collection_name(cmd)?;
    check_collection_name(db, coll)?;
    let docs = statements(cmd, "documents")?;
    let ordered = opt_bool(cmd, "ordered")?.unwrap_or(true);
    let mut n = 0;
    let mut errors = Vec::new();
    for (i, d) in docs.into_iter().enumerate() {
        match insert_one(b, db, coll, with_id(d)) {
            Ok(()) => n += 1,
            Err(e) => {
                errors.push(write_error(i, &e));
                if ordered {
                    break;
                }
            }
        }
    }
    Ok(finish(n, errors, Document::new()))
}

struct UpdateOutcome {
    matched: usize,
    modified: usize,
    upserted: Option<Bson>,
}

fn update_one_statement(
    b: &mut WriteBatch<'_>,
    db: &str,
    coll: &str,
    q: &Document,
    u: &Update,
    multi: bool,
    upsert: bool,
) -> Result<UpdateOutcome> {
    let filter = Filter::parse(q)?;
    if multi && matches!(u, Update::Replace(_)) {
        return Err(StoreError::failed_to_parse(
            "multi update is not supported for replacement-style update",
        ));
    }
    let now_ms = b.now_ms as i64;
    let targets: Vec<Document> = matching(
        b.catalog(),
        db,
        coll,
        &filter,
        b.limits(),
        if multi { None } else { Some(1) },
    )?
    .into_iter()
    .cloned()
    .collect();
    if targets.is_empty() {
        if !upsert {
            return Ok(UpdateOutcome {
                matched: 0,
                modified: 0,
                upserted: None,
            });
        }
        let mut d = upsert_seed(&filter, u)?;
        u.apply(&mut d, true, now_ms)?;
        let d = with_id(&d);
        let id = d.get("_id").cloned().unwrap_or(Bson::Null);
        insert_one(b, db, coll, d)?;
        return Ok(UpdateOutcome {
            matched: 0,
            modified: 0,
            upserted: Some(id),
        });
    }
    let mut modified = 0;
    for old in &targets {
        let mut d = old.clone();
        u.apply(&mut d, false, now_ms)?;
        if &d != old {
            b.apply(Change::Put {
                db: db.into(),
                coll: coll.into(),
                doc: d,
            })?;
            modified += 1;
        }
    }
    Ok(UpdateOutcome {
        matched: targets.len(),
        modified,
        upserted: None,
    })
}

fn parse_update(stmt: &Document) -> Result<Update> {
    match stmt.get("u") {
        Some(Bson::Document(u)) => Update::parse(u),
        Some(Bson::Array(_)) => Err(StoreError::failed_to_parse(
            "pipeline-style updates are not supported by this server",
        )),
        _ => Err(StoreError::new(
            Code::Location(40414),
            "BSON field 'update.updates.u' is missing but a required field",
        )),
    }
}

fn update(b: &mut WriteBatch<'_>, db: &str, cmd: &Document) -> Result<Document> {
    let coll = collection_name(cmd)?;
    check_collection_name(db, coll)?;
    let stmts = statements(cmd, "updates")?;
    let ordered = opt_bool(cmd, "ordered")?.unwrap_or(true);
    let (mut n, mut modified) = (0, 0);
    let mut upserted = Vec::new();
    let mut errors = Vec::new();
    for (i, s) in stmts.into_iter().enumerate() {
        let outcome = (|| {
            let q = opt_doc(s, "q")?.cloned().unwrap_or_default();
            let u = parse_update(s)?;
            let multi = opt_bool(s, "multi")?.unwrap_or(false);
            let upsert = opt_bool(s, "upsert")?.unwrap_or(false);
            update_one_statement(b, db, coll, &q, &u, multi, upsert)
        })();
        match outcome {
            Ok(o) => {
                n += o.matched;
                modified += o.modified;
                if let Some(id) = o.upserted {
                    n += 1;
                    upserted.push(Bson::Document(doc! {"index": i as i32, "_id": id}));
                }
            }
            Err(e) => {
                errors.push(write_error(i, &e));
                if ordered {
                    break;
                }
            }
        }
    }
    let mut extra = Document::new();
    if !upserted.is_empty() {
        extra.insert("upserted", upserted);
    }
    extra.insert("nModified", modified as i32);
    Ok(finish(n, errors, extra))
}

fn delete(b: &mut WriteBatch<'_>, db: &str, cmd: &Document) -> Result<Document> {
    let coll = collection_name(cmd)?;
    check_collection_name(db, coll)?;
    let stmts = statements(cmd, "deletes")?;
    let ordered = opt_bool(cmd, "ordered")?.unwrap_or(true);
    let mut n = 0;
    let mut errors = Vec::new();
    for (i, s) in stmts.into_iter().enumerate() {
        let outcome = (|| {
            let filter = Filter::parse(opt_doc(s, "q")?.unwrap_or(&Document::new()))?;
            let one = match opt_i64(s, "limit")? {
                Some(0) => false,
                Some(1) => true,
                _ => {
                    return Err(StoreError::failed_to_parse(
                        "The limit field in delete objects must be 0 or 1.",
                    ))
                }
            };
            let ids: Vec<Bson> =
                matching(b.catalog(), db, coll, &filter, b.limits(), one.then_some(1))?
                    .into_iter()
                    .filter_map(|d| d.get("_id").cloned())
                    .collect();
            for id in &ids {
                b.apply(Change::Delete {
                    db: db.into(),
                    coll: coll.into(),
                    id: id.clone(),
                })?;
            }
            Ok(ids.len())
        })();
        match outcome {
            Ok(k) => n += k,
            Err(e) => {
                errors.push(write_error(i, &e));
                if ordered {
                    break;
                }
            }
        }
    }
    Ok(finish(n, errors, Document::new()))
}

fn find_and_modify(b: &mut WriteBatch<'_>, db: &str, cmd: &Document) -> Result<Document> {
    let coll = collection_name(cmd)?;
    check_collection_name(db, coll)?;
    let filter = Filter::parse(opt_doc(cmd, "query")?.unwrap_or(&Document::new()))?;
    let sort = Sort::from_field(cmd, "sort")?;
    let fields = Projection::from_field(cmd, "fields")?;
    let remove = opt_bool(cmd, "remove")?.unwrap_or(false);
    let return_new = opt_bool(cmd, "new")?.unwrap_or(false);
    let upsert = opt_bool(cmd, "upsert")?.unwrap_or(false);
    let update = match cmd.get("update") {
        Some(Bson::Document(u)) => Some(Update::parse(u)?),
        Some(Bson::Array(_)) => {
            return Err(StoreError::failed_to_parse(
                "pipeline-style updates are not supported by this server",
            ))
        }
        Some(_) => {
            return Err(StoreError::failed_to_parse(
                "Update argument must be either an object or an array",
            ))
        }
        None => None,
    };
    if remove == update.is_some() {
        return Err(StoreError::failed_to_parse(
            "Either an update or remove=true must be specified",
        ));
    }
    if remove && (upsert || return_new) {
        return Err(StoreError::failed_to_parse(
            "Cannot specify both an upsert and remove=true or new=true and remove=true",
        ));
    }
    let mut candidates: Vec<Document> = matching(
        b.catalog(),
        db,
        coll,
        &filter,
        b.limits(),
        if sort.is_some() { None } else { Some(1) },
    )?
    .into_iter()
    .cloned()
    .collect();
    if let Some(s) = &sort {
        s.sort(&mut candidates);
    }
    let show = |d: Option<Document>| -> Bson {
        match d {
            Some(d) => Bson::Document(fields.as_ref().map_or(d.clone(), |p| p.apply(&d))),
            None => Bson::Null,
        }
    };
    let target = candidates.into_iter().next();
    let (last_error, value) = match (target, update) {
        (Some(old), None) => {
            let id = old.get("_id").cloned().unwrap_or(Bson::Null);
            b.apply(Change::Delete {
                db: db.into(),
                coll: coll.into(),
                id,
            })?;
            (doc! {"n": 1}, show(Some(old)))
        }
        (None, None) => (doc! {"n": 0}, Bson::Null),
        (Some(old), Some(u)) => {
            let mut d = old.clone();
            u.apply(&mut d, false, b.now_ms as i64)?;
            if d != old {
                b.apply(Change::Put {
                    db: db.into(),
                    coll: coll.into(),
                    doc: d.clone(),
                })?;
            }
            (
                doc! {"n": 1, "updatedExisting": true},
                show(Some(if return_new { d } else { old })),
            )
        }
        (None, Some(u)) if upsert => {
            let mut d = upsert_seed(&filter, &u)?;
            u.apply(&mut d, true, b.now_ms as i64)?;
            let d = with_id(&d);
            let id = d.get("_id").cloned().unwrap_or(Bson::Null);
            insert_one(b, db, coll, d.clone())?;
            (
                doc! {"n": 1, "updatedExisting": false, "upserted": id},
                show(return_new.then_some(d)),
            )
        }
        (None, Some(_)) => (doc! {"n": 0, "updatedExisting": false}, Bson::Null),
    };
    Ok(doc! {"lastErrorObject": last_error, "value": value, "ok": 1.0})
}

fn create(b: &mut WriteBatch<'_>, db: &str, cmd: &Document) -> Result<Document> {
    let coll = collection_name(cmd)?;
    check_collection_name(db, coll)?;
    for (k, _) in cmd.iter().skip(1) {
        if matches!(
            k.as_str(),
            "capped" | "viewOn" | "timeseries" | "clusteredIndex"
        ) {
            return Err(StoreError::new(
                Code::InvalidOptions,
                format!("create option '{k}' is not supported by this server"),
            ));
        }
    }
    if b.catalog().collection(db, coll).is_some() {
        return Err(StoreError::new(
            Code::NamespaceExists,
            format!("Collection already exists. NS: {db}.{coll}"),
        ));
    }
    b.apply(Change::CreateCollection {
        db: db.into(),
        coll: coll.into(),
    })?;
    Ok(doc! {"ok": 1.0})
}

fn drop(b: &mut WriteBatch<'_>, db: &str, cmd: &Document) -> Result<Document> {
    let coll = collection_name(cmd)?;
    check_collection_name(db, coll)?;
    if b.catalog().collection(db, coll).is_none() {
        return Err(StoreError::new(Code::NamespaceNotFound, "ns not found"));
    }
    b.apply(Change::DropCollection {
        db: db.into(),
        coll: coll.into(),
    })?;
    Ok(doc! {"nIndexesWas": 1, "ns": format!("{db}.{coll}"), "ok": 1.0})
}

fn drop_database(b: &mut WriteBatch<'_>, db: &str) -> Result<Document> {
    check_db_name(db)?;
    if matches!(db, "admin" | "local" | "config") {
        return Err(StoreError::new(
            Code::Location(20),
            format!("Cannot drop '{db}' database"),
        ));
    }
    if b.catalog().database(db).is_some() {
        b.apply(Change::DropDatabase { db: db.into() })?;
    }
    Ok(doc! {"dropped": db, "ok": 1.0})
}
