//! Read commands against one member's catalog: `find`, `getMore`, `killCursors`, `count`, `distinct`,
//! `aggregate`, `listCollections`, `listIndexes`, `listDatabases`, with mongod's reply shapes.

use bson::{doc, Bson, Document};

use crate::aggregate::run_pipeline;
use crate::args::{collection_name, doc_array, opt_bool, opt_count, opt_doc, opt_i64};
use crate::catalog::{check_collection_name, check_db_name, Catalog, Limits};
use crate::cursor::{Cursors, DEFAULT_FIRST_BATCH};
use crate::error::{Code, Result, StoreError};
use crate::filter::Filter;
use crate::project::{Projection, Sort};

/// The documents of `db.coll` matching `filter`, in `_id` order, bounded by the result limit.
pub(crate) fn matching<'a>(
    cat: &'a Catalog,
    db: &str,
    coll: &str,
    filter: &Filter,
    limits: &Limits,
    stop_after: Option<usize>,
) -> Result<Vec<&'a Document>> {
    let Some(c) = cat.collection(db, coll) else {
        return Ok(Vec::new());
    };
    if let Some(id) = filter.id_equality() {
        return Ok(c
            .get(id)
            .filter(|d| filter.matches(d))
            .into_iter()
            .collect());
    }
    let mut out = Vec::new();
    for d in c.iter() {
        if filter.matches(d) {
            if out.len() >= limits.max_result_documents {
                return Err(StoreError::new(
                    Code::ExceededMemoryLimit,
                    format!(
                        "the result exceeds this server's limit of {} documents",
                        limits.max_result_documents
                    ),
                ));
            }
            out.push(d);
            if stop_after.is_some_and(|n| out.len() >= n) {
                break;
            }
        }
    }
    Ok(out)
}

fn cursor_reply(first: Vec<Document>, id: i64, ns: &str, key: &str) -> Document {
    doc! {"cursor": {key: first, "id": id, "ns": ns}, "ok": 1.0}
}

fn batch_size(cmd: &Document, default: usize) -> Result<usize> {
    Ok(opt_count(cmd, "batchSize")?.unwrap_or(default))
}

fn filter_of(cmd: &Document, key: &str) -> Result<Filter> {
    Filter::parse(opt_doc(cmd, key)?.unwrap_or(&Document::new()))
}

/// Runs a read command; `None` when `name` is not one.
pub fn read_command(
    cat: &Catalog,
    cursors: &mut Cursors,
    db: &str,
    name: &str,
    cmd: &Document,
    limits: &Limits,
) -> Option<Result<Document>> {
    let r = match name {
        "find" => find(cat, cursors, db, cmd, limits),
        "getMore" => get_more(cursors, db, cmd),
        "killCursors" => kill_cursors(cursors, db, cmd),
        "count" => count(cat, db, cmd, limits),
        "distinct" => distinct(cat, db, cmd, limits),
        "aggregate" => aggregate(cat, cursors, db, cmd, limits),
        "listCollections" => list_collections(cat, cursors, db, cmd),
        "listIndexes" => list_indexes(cat, cursors, db, cmd),
        "listDatabases" => list_databases(cat, db, cmd),
        _ => return None,
    };
    Some(r)
}

fn find(
    cat: &Catalog,
    cursors: &mut Cursors,
    db: &str,
    cmd: &Document,
    limits: &Limits,
) -> Result<Document> {
    let coll = collection_name(cmd)?;
    check_collection_name(db, coll)?;
    let filter = filter_of(cmd, "filter")?;
    let sort = Sort::from_field(cmd, "sort")?;
    let projection = Projection::from_field(cmd, "projection")?;
    let skip = opt_count(cmd, "skip")?.unwrap_or(0);
    let limit = opt_count(cmd, "limit")?.filter(|&l| l > 0);
    let single = opt_bool(cmd, "singleBatch")?.unwrap_or(false);
    let stop = if sort.is_none() {
        limit.map(|l| l.saturating_add(skip))
    } else {
        None
    };
    let mut docs: Vec<Document> = matching(cat, db, coll, &filter, limits, stop)?
        .into_iter()
        .cloned()
        .collect();
    if let Some(s) = &sort {
        s.sort(&mut docs);
    }
    let mut docs: Vec<Document> = docs
        .into_iter()
        .skip(skip)
        .take(limit.unwrap_or(usize::MAX))
        .collect();
    if let Some(p) = &projection {
        docs = docs.iter().map(|d| p.apply(d)).collect();
    }
    let ns = format!("{db}.{coll}");
    let (first, id) = cursors.open(&ns, docs, batch_size(cmd, DEFAULT_FIRST_BATCH)?, single)?;
    Ok(cursor_reply(first, id, &ns, "firstBatch"))
}

fn get_more(cursors: &mut Cursors, db: &str, cmd: &Document) -> Result<Document> {
    let id = match cmd.get("getMore") {
        Some(Bson::Int64(id)) => *id,
        Some(other) => {
            return Err(StoreError::type_mismatch(format!(
                "BSON field 'getMore.getMore' is the wrong type '{}', expected type 'long'",
                crate::args::kind(other)
            )))
        }
        None => return Err(StoreError::failed_to_parse("getMore needs a cursor id")),
    };
    let coll = match cmd.get("collection") {
        Some(Bson::String(s)) => s.as_str(),
        _ => {
            return Err(StoreError::new(
                Code::Location(40414),
                "BSON field 'getMore.collection' is missing but a required field",
            ))
        }
    };
    let ns = format!("{db}.{coll}");
    let (batch, id) = cursors.get_more(id, &ns, batch_size(cmd, usize::MAX)?)?;
    Ok(cursor_reply(batch, id, &ns, "nextBatch"))
}

fn kill_cursors(cursors: &mut Cursors, _db: &str, cmd: &Document) -> Result<Document> {
    collection_name(cmd)?;
    let ids = match cmd.get("cursors") {
        Some(Bson::Array(a)) => a
            .iter()
            .map(|v| match v {
                Bson::Int64(i) => Ok(*i),
                other => Err(StoreError::type_mismatch(format!("BSON field 'killCursors.cursors' contains an element of type '{}', expected type 'long'", crate::args::kind(other)))),
            })
            .collect::<Result<Vec<_>>>()?,
        _ => return Err(StoreError::new(Code::Location(40414), "BSON field 'killCursors.cursors' is missing but a required field")),
    };
    let (killed, missing) = cursors.kill(&ids);
    Ok(
        doc! {"cursorsKilled": killed, "cursorsNotFound": missing, "cursorsAlive": [], "cursorsUnknown": [], "ok": 1.0},
    )
}

fn count(cat: &Catalog, db: &str, cmd: &Document, limits: &Limits) -> Result<Document> {
    let coll = collection_name(cmd)?;
    check_collection_name(db, coll)?;
    let filter = filter_of(cmd, "query")?;
    let skip = opt_count(cmd, "skip")?.unwrap_or(0);
    // count's limit may be negative (legacy): its absolute value limits.
    let limit = opt_i64(cmd, "limit")?
        .map(|l| l.unsigned_abs() as usize)
        .filter(|&l| l > 0);
    let n = matching(cat, db, coll, &filter, limits, None)?
        .len()
        .saturating_sub(skip);
    let n = limit.map_or(n, |l| n.min(l));
    Ok(doc! {"n": i32::try_from(n).unwrap_or(i32::MAX), "ok": 1.0})
}

fn distinct(cat: &Catalog, db: &str, cmd: &Document, limits: &Limits) -> Result<Document> {
    let coll = collection_name(cmd)?;
    check_collection_name(db, coll)?;
    let key = match cmd.get("key") {
        Some(Bson::String(k)) => k.as_str(),
        _ => {
            return Err(StoreError::new(
                Code::Location(40414),
                "BSON field 'distinct.key' is missing but a required field",
            ))
        }
    };
    let filter = filter_of(cmd, "query")?;
    let mut values: Vec<Bson> = Vec::new();
    for d in matching(cat, db, coll, &filter, limits, None)? {
        for v in crate::path::lookup(d, key) {
            let items: Vec<&Bson> = match v {
                Bson::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            for item in items {
                if !values.iter().any(|x| crate::compare::bson_eq(x, item)) {
                    values.push(item.clone());
                }
            }
        }
    }
    values.sort_by(crate::compare::cmp_bson);
    Ok(doc! {"values": values, "ok": 1.0})
}

fn aggregate(
    cat: &Catalog,
    cursors: &mut Cursors,
    db: &str,
    cmd: &Document,
    limits: &Limits,
) -> Result<Document> {
    let coll = match cmd.get("aggregate") {
        Some(Bson::String(s)) => s.as_str(),
        _ => {
            return Err(StoreError::new(
                Code::InvalidNamespace,
                "collection-less aggregate is not supported by this server",
            ))
        }
    };
    check_collection_name(db, coll)?;
    let pipeline = doc_array(cmd, "pipeline")?;
    let cursor_opts =
        match opt_doc(cmd, "cursor")? {
            Some(c) => c,
            None => return Err(StoreError::failed_to_parse(
                "The 'cursor' option is required, except for aggregate with the explain argument",
            )),
        };
    let out = run_pipeline(cat, db, coll, &pipeline, limits)?;
    let ns = format!("{db}.{coll}");
    let (first, id) = cursors.open(
        &ns,
        out,
        batch_size(cursor_opts, DEFAULT_FIRST_BATCH)?,
        false,
    )?;
    Ok(cursor_reply(first, id, &ns, "firstBatch"))
}

fn list_collections(
    cat: &Catalog,
    cursors: &mut Cursors,
    db: &str,
    cmd: &Document,
) -> Result<Document> {
    check_db_name(db)?;
    let filter = filter_of(cmd, "filter")?;
    let name_only = opt_bool(cmd, "nameOnly")?.unwrap_or(false);
    let mut out = Vec::new();
    if let Some(d) = cat.database(db) {
        for (name, _) in d.collections() {
            let entry = if name_only {
                doc! {"name": name, "type": "collection"}
            } else {
                doc! {
                    "name": name,
                    "type": "collection",
                    "options": {},
                    "info": {"readOnly": false},
                    "idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"},
                }
            };
            if filter.matches(&entry) {
                out.push(entry);
            }
        }
    }
    let ns = format!("{db}.$cmd.listCollections");
    let batch = match opt_doc(cmd, "cursor")? {
        Some(c) => batch_size(c, usize::MAX)?,
        None => usize::MAX,
    };
    let (first, id) = cursors.open(&ns, out, batch, false)?;
    Ok(cursor_reply(first, id, &ns, "firstBatch"))
}

fn list_indexes(
    cat: &Catalog,
    cursors: &mut Cursors,
    db: &str,
    cmd: &Document,
) -> Result<Document> {
    let coll = collection_name(cmd)?;
    check_collection_name(db, coll)?;
    if cat.collection(db, coll).is_none() {
        return Err(StoreError::new(
            Code::NamespaceNotFound,
            format!("ns does not exist: {db}.{coll}"),
        ));
    }
    let ns = format!("{db}.{coll}");
    let (first, id) = cursors.open(
        &ns,
        vec![doc! {"v": 2, "key": {"_id": 1}, "name": "_id_"}],
        usize::MAX,
        false,
    )?;
    Ok(cursor_reply(first, id, &ns, "firstBatch"))
}

fn list_databases(cat: &Catalog, db: &str, cmd: &Document) -> Result<Document> {
    if db != "admin" {
        return Err(StoreError::new(
            Code::Unauthorized,
            "listDatabases may only be run against the admin database.",
        ));
    }
    let filter = filter_of(cmd, "filter")?;
    let name_only = opt_bool(cmd, "nameOnly")?.unwrap_or(false);
    let mut total: i64 = 0;
    let mut dbs = Vec::new();
    for (name, d) in cat.databases() {
        let size = d.bytes() as i64;
        let entry = if name_only {
            doc! {"name": name}
        } else {
            doc! {"name": name, "sizeOnDisk": size, "empty": d.collections().all(|(_, c)| c.is_empty())}
        };
        if filter.matches(&entry) {
            total += size;
            dbs.push(entry);
        }
    }
    if name_only {
        return Ok(doc! {"databases": dbs, "ok": 1.0});
    }
    Ok(doc! {"databases": dbs, "totalSize": total, "totalSizeMb": total / (1024 * 1024), "ok": 1.0})
}
