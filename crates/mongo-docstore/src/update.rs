//! Update documents: a replacement, or operators (`$set`, `$unset`, `$inc`, `$mul`, `$min`, `$max`,
//! `$push`, `$setOnInsert`, `$currentDate`), parsed once and applied to a document. `_id` is
//! immutable; an upsert seeds the new document from the filter's equalities.

use bson::{Bson, Document};

use crate::compare::{as_f64, cmp_bson};
use crate::error::{Code, Result, StoreError};
use crate::filter::Filter;
use crate::path;

#[derive(Debug, Clone)]
pub enum Update {
    Replace(Document),
    Ops(Vec<(Op, String, Bson)>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Set,
    Unset,
    Inc,
    Mul,
    Min,
    Max,
    Push,
    SetOnInsert,
    CurrentDate,
}

impl Update {
    pub fn parse(u: &Document) -> Result<Update> {
        let dollar = u.keys().filter(|k| k.starts_with('$')).count();
        if dollar == 0 {
            return Ok(Update::Replace(u.clone()));
        }
        if dollar != u.len() {
            let bad = u
                .keys()
                .find(|k| !k.starts_with('$'))
                .cloned()
                .unwrap_or_default();
            return Err(StoreError::failed_to_parse(format!(
                "Unknown modifier: {bad}. Expected a valid update modifier or pipeline-style update specified as an array"
            )));
        }
        let mut ops = Vec::new();
        let mut paths: Vec<String> = Vec::new();
        for (name, arg) in u {
            let op = match name.as_str() {
                "$set" => Op::Set,
                "$unset" => Op::Unset,
                "$inc" => Op::Inc,
                "$mul" => Op::Mul,
                "$min" => Op::Min,
                "$max" => Op::Max,
                "$push" => Op::Push,
                "$setOnInsert" => Op::SetOnInsert,
                "$currentDate" => Op::CurrentDate,
                other => {
                    return Err(StoreError::failed_to_parse(format!(
                        "Unknown modifier: {other}. Expected a valid update modifier or pipeline-style update specified as an array"
                    )))
                }
            };
            let Bson::Document(fields) = arg else {
                return Err(StoreError::failed_to_parse(format!(
                    "Modifiers operate on fields but we found type {} instead. For example: {{$mod: {{<field>: ...}}}} not {{{name}: {arg}}}",
                    type_name(arg)
                )));
            };
            for (p, v) in fields {
                if (p == "_id" || p.starts_with("_id.")) && op != Op::SetOnInsert {
                    return Err(StoreError::new(
                        Code::ImmutableField,
                        format!("Performing an update on the path '{p}' would modify the immutable field '_id'"),
                    ));
                }
                if let Some(prev) = paths.iter().find(|q| conflicts(q, p)) {
                    return Err(StoreError::new(
                        Code::Location(40),
                        format!("Updating the path '{p}' would create a conflict at '{prev}'"),
                    ));
                }
                if matches!(op, Op::Inc | Op::Mul) && as_f64(v).is_none() {
                    return Err(StoreError::type_mismatch(format!(
                        "Cannot {} with non-numeric argument: {{{p}: {v}}}",
                        if op == Op::Inc {
                            "increment"
                        } else {
                            "multiply"
                        }
                    )));
                }
                paths.push(p.clone());
                ops.push((op, p.clone(), v.clone()));
            }
        }
        Ok(Update::Ops(ops))
    }

    /// Applies the update to `doc` in place. `inserting` enables `$setOnInsert`; `now_ms` is the
    /// server's clock for `$currentDate`.
    pub fn apply(&self, doc: &mut Document, inserting: bool, now_ms: i64) -> Result<()> {
        match self {
            Update::Replace(r) => {
                let id = doc.get("_id").cloned();
                if let (Some(old), Some(new)) = (&id, r.get("_id")) {
                    if cmp_bson(old, new) != std::cmp::Ordering::Equal {
                        return Err(StoreError::new(
                            Code::ImmutableField,
                            "After applying the update, the (immutable) field '_id' was found to have been altered",
                        ));
                    }
                }
                let mut next = Document::new();
                if let Some(id) = id {
                    next.insert("_id", id);
                }
                for (k, v) in r {
                    if k != "_id" || !next.contains_key("_id") {
                        next.insert(k.clone(), v.clone());
                    }
                }
                *doc = next;
                Ok(())
            }
            Update::Ops(ops) => {
                for (op, p, v) in ops {
                    apply_op(doc, *op, p, v, inserting, now_ms)?;
                }
                Ok(())
            }
        }
    }
}

fn conflicts(a: &str, b: &str) -> bool {
    a == b || b.starts_with(&format!("{a}.")) || a.starts_with(&format!("{b}."))
}

fn type_name(v: &Bson) -> &'static str {
    match v {
        Bson::Double(_) => "double",
        Bson::String(_) => "string",
        Bson::Array(_) => "array",
        Bson::Document(_) => "object",
        Bson::Boolean(_) => "bool",
        Bson::Null => "null",
        Bson::Int32(_) => "int",
        Bson::Int64(_) => "long",
        _ => "other",
    }
}

fn apply_op(
    doc: &mut Document,
    op: Op,
    p: &str,
    v: &Bson,
    inserting: bool,
    now_ms: i64,
) -> Result<()> {
    let current = path::get_exact(doc, p).cloned();
    match op {
        Op::Set => path::set(doc, p, v.clone()),
        Op::SetOnInsert => {
            if inserting {
                path::set(doc, p, v.clone())
            } else {
                Ok(())
            }
        }
        Op::Unset => {
            path::unset(doc, p);
            Ok(())
        }
        Op::Inc | Op::Mul => {
            let base = match &current {
                None => {
                    // A missing field: `$inc` sets the argument, `$mul` sets zero of the argument's type.
                    let seeded = if op == Op::Inc {
                        v.clone()
                    } else {
                        zero_like(v)
                    };
                    return path::set(doc, p, seeded);
                }
                Some(c) if as_f64(c).is_some() => c.clone(),
                Some(c) => {
                    let id = doc.get("_id").map(|i| i.to_string()).unwrap_or_default();
                    return Err(StoreError::type_mismatch(format!(
                        "Cannot apply {} to a value of non-numeric type. {{_id: {id}}} has the field '{p}' of non-numeric type {}",
                        if op == Op::Inc { "$inc" } else { "$mul" },
                        type_name(c)
                    )));
                }
            };
            path::set(doc, p, arith(&base, v, op == Op::Inc))
        }
        Op::Min | Op::Max => {
            let replace = match &current {
                None => true,
                Some(c) => {
                    let o = cmp_bson(v, c);
                    (op == Op::Min && o.is_lt()) || (op == Op::Max && o.is_gt())
                }
            };
            if replace {
                path::set(doc, p, v.clone())
            } else {
                Ok(())
            }
        }
        Op::Push => {
            let items = match v {
                Bson::Document(d) if d.contains_key("$each") => match d.get("$each") {
                    Some(Bson::Array(a)) => a.clone(),
                    _ => {
                        return Err(StoreError::bad_value(
                            "The argument to $each in $push must be an array",
                        ))
                    }
                },
                other => vec![other.clone()],
            };
            match current {
                None => path::set(doc, p, Bson::Array(items)),
                Some(Bson::Array(mut a)) => {
                    a.extend(items);
                    path::set(doc, p, Bson::Array(a))
                }
                Some(other) => Err(StoreError::bad_value(format!(
                    "The field '{p}' must be an array but is of type {} in document",
                    type_name(&other)
                ))),
            }
        }
        Op::CurrentDate => path::set(doc, p, Bson::DateTime(bson::DateTime::from_millis(now_ms))),
    }
}

fn zero_like(v: &Bson) -> Bson {
    match v {
        Bson::Int32(_) => Bson::Int32(0),
        Bson::Int64(_) => Bson::Int64(0),
        _ => Bson::Double(0.0),
    }
}

/// Numeric arithmetic with mongod's type promotion: int32 overflows into int64, any double makes a double.
fn arith(a: &Bson, b: &Bson, add: bool) -> Bson {
    let ints = |x: &Bson| match x {
        Bson::Int32(i) => Some((i64::from(*i), true)),
        Bson::Int64(i) => Some((*i, false)),
        _ => None,
    };
    if let (Some((x, x32)), Some((y, y32))) = (ints(a), ints(b)) {
        let r = if add {
            x.checked_add(y)
        } else {
            x.checked_mul(y)
        };
        if let Some(r) = r {
            if x32 && y32 {
                if let Ok(small) = i32::try_from(r) {
                    return Bson::Int32(small);
                }
            }
            return Bson::Int64(r);
        }
    }
    let x = as_f64(a).unwrap_or(0.0);
    let y = as_f64(b).unwrap_or(0.0);
    Bson::Double(if add { x + y } else { x * y })
}

/// The document an upsert inserts before the update applies: the filter's equalities on plain paths.
pub fn upsert_seed(filter: &Filter, update: &Update) -> Result<Document> {
    let mut seed = Document::new();
    for (p, v) in filter.equalities() {
        if p.starts_with('$') {
            continue;
        }
        // A replacement keeps only `_id` from the filter, as mongod does.
        if matches!(update, Update::Replace(_)) && p != "_id" {
            continue;
        }
        path::set(&mut seed, &p, v)?;
    }
    Ok(seed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn up(u: Document, mut d: Document) -> Result<Document> {
        Update::parse(&u)?.apply(&mut d, false, 0)?;
        Ok(d)
    }

    #[test]
    fn operators_apply_with_type_promotion() {
        let d = doc! {"_id": 1, "n": 1, "big": i32::MAX, "s": "x", "l": [1]};
        let got = up(
            doc! {"$inc": {"n": 2, "big": 1, "new": 5}, "$set": {"a.b": true}, "$unset": {"s": ""}, "$push": {"l": 2}},
            d,
        )
        .unwrap();
        assert_eq!(
            got,
            doc! {"_id": 1, "n": 3, "big": i64::from(i32::MAX) + 1, "l": [1, 2], "new": 5, "a": {"b": true}}
        );
        assert_eq!(
            up(doc! {"$max": {"n": 9}, "$min": {"m": 1}}, doc! {"n": 3}).unwrap(),
            doc! {"n": 9, "m": 1}
        );
        assert_eq!(
            up(doc! {"$mul": {"n": 1.5}}, doc! {"n": 2}).unwrap(),
            doc! {"n": 3.0}
        );
    }

    #[test]
    fn replacement_keeps_id_and_refuses_a_changed_one() {
        assert_eq!(
            up(doc! {"x": 1}, doc! {"_id": 7, "y": 2}).unwrap(),
            doc! {"_id": 7, "x": 1}
        );
        let e = up(doc! {"_id": 8}, doc! {"_id": 7}).unwrap_err();
        assert_eq!(e.code.number(), 66);
    }

    #[test]
    fn bad_updates_are_refused_with_mongods_codes() {
        assert_eq!(
            Update::parse(&doc! {"$set": {"a": 1}, "b": 2})
                .unwrap_err()
                .code
                .number(),
            9
        );
        assert_eq!(
            Update::parse(&doc! {"$rename2": {"a": 1}})
                .unwrap_err()
                .code
                .number(),
            9
        );
        assert_eq!(
            Update::parse(&doc! {"$set": {"_id": 1}})
                .unwrap_err()
                .code
                .number(),
            66
        );
        assert_eq!(
            Update::parse(&doc! {"$inc": {"a": "x"}})
                .unwrap_err()
                .code
                .number(),
            14
        );
        assert_eq!(
            Update::parse(&doc! {"$set": {"a": 1}, "$inc": {"a.b": 1}})
                .unwrap_err()
                .code
                .number(),
            40
        );
        let e = up(doc! {"$inc": {"s": 1}}, doc! {"_id": 1, "s": "x"}).unwrap_err();
        assert_eq!(e.code.number(), 14);
    }

    #[test]
    fn upsert_seed_takes_the_filters_equalities() {
        let f = Filter::parse(&doc! {"a": 1, "b": {"$gt": 2}, "c.d": "x"}).unwrap();
        let u = Update::parse(&doc! {"$set": {"z": 1}}).unwrap();
        assert_eq!(upsert_seed(&f, &u).unwrap(), doc! {"a": 1, "c": {"d": "x"}});
        let f = Filter::parse(&doc! {"_id": 5, "a": 1}).unwrap();
        let r = Update::parse(&doc! {"q": 1}).unwrap();
        assert_eq!(upsert_seed(&f, &r).unwrap(), doc! {"_id": 5});
    }
}
