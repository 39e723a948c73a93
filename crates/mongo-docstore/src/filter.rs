//! Query filters: a filter document is parsed once into a [`Filter`] (so a bad operator is refused
//! before anything is read) and then matched against documents with MongoDB's semantics — implicit
//! array traversal, `null` matching missing fields, and type bracketing for comparisons.

use std::cmp::Ordering;

use bson::{Bson, Document};

use crate::compare::{bson_eq, cmp_bson, type_rank};
use crate::error::{Result, StoreError};
use crate::path::lookup;

/// Nesting depth of `$and`/`$or`/`$not`/`$elemMatch` a filter may use (mongod allows 100).
pub const MAX_FILTER_DEPTH: usize = 100;

#[derive(Debug, Clone)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Nor(Vec<Filter>),
    Field(String, Pred),
}

#[derive(Debug, Clone)]
pub enum Pred {
    Eq(Bson),
    Ne(Bson),
    Cmp(Ordering, bool, Bson),
    In(Vec<Bson>),
    Nin(Vec<Bson>),
    Exists(bool),
    Size(usize),
    All(Vec<Bson>),
    ElemMatch(Box<Filter>),
    Type(Vec<u8>),
    Not(Vec<Pred>),
    /// Several operators on one field: `{a: {$gt: 1, $lt: 5}}`.
    AllOf(Vec<Pred>),
}

impl Filter {
    /// Parses a filter document; errors use mongod's codes and wording.
    pub fn parse(doc: &Document) -> Result<Filter> {
        parse_doc(doc, 0)
    }

    /// Whether `doc` matches.
    pub fn matches(&self, doc: &Document) -> bool {
        match self {
            Filter::And(fs) => fs.iter().all(|f| f.matches(doc)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(doc)),
            Filter::Nor(fs) => !fs.iter().any(|f| f.matches(doc)),
            Filter::Field(path, pred) => pred_matches(pred, &lookup(doc, path)),
        }
    }

    /// Top-level equalities (`{a: 1}`, `{a: {$eq: 1}}`, inside `$and`), the fields an upsert seeds.
    pub fn equalities(&self) -> Vec<(String, Bson)> {
        let mut out = Vec::new();
        self.collect_equalities(&mut out);
        out
    }

    fn collect_equalities(&self, out: &mut Vec<(String, Bson)>) {
        match self {
            Filter::And(fs) => fs.iter().for_each(|f| f.collect_equalities(out)),
            Filter::Field(path, Pred::Eq(v)) => out.push((path.clone(), v.clone())),
            Filter::Field(path, Pred::AllOf(ps)) => {
                for p in ps {
                    if let Pred::Eq(v) = p {
                        out.push((path.clone(), v.clone()));
                    }
                }
            }
            _ => {}
        }
    }

    /// The `_id` an equality on `_id` selects, for the point lookup most reads and writes are.
    pub fn id_equality(&self) -> Option<&Bson> {
        match self {
            Filter::Field(p, Pred::Eq(v))
                if p == "_id" && !matches!(v, Bson::Document(_) | Bson::Array(_)) =>
            {
                Some(v)
            }
            Filter::And(fs) => fs.iter().find_map(|f| f.id_equality()),
            _ => None,
        }
    }
}

fn depth_check(depth: usize) -> Result<()> {
    if depth > MAX_FILTER_DEPTH {
        return Err(StoreError::bad_value(format!(
            "exceeded maximum query tree depth of {MAX_FILTER_DEPTH}"
        )));
    }
    Ok(())
}

fn parse_doc(doc: &Document, depth: usize) -> Result<Filter> {
    depth_check(depth)?;
    let mut parts = Vec::with_capacity(doc.len());
    for (k, v) in doc {
        parts.push(parse_entry(k, v, depth)?);
    }
    Ok(if parts.len() == 1 {
        parts.pop().expect("one")
    } else {
        Filter::And(parts)
    })
}

fn parse_entry(k: &str, v: &Bson, depth: usize) -> Result<Filter> {
    match k {
        "$and" | "$or" | "$nor" => {
            let Bson::Array(items) = v else {
                return Err(StoreError::bad_value(format!("{k} must be an array")));
            };
            if items.is_empty() {
                return Err(StoreError::bad_value(
                    "$and/$or/$nor must be a nonempty array",
                ));
            }
            let mut fs = Vec::with_capacity(items.len());
            for item in items {
                let Bson::Document(d) = item else {
                    return Err(StoreError::bad_value(
                        "$or/$and/$nor entries need to be full objects",
                    ));
                };
                fs.push(parse_doc(d, depth + 1)?);
            }
            Ok(match k {
                "$and" => Filter::And(fs),
                "$or" => Filter::Or(fs),
                _ => Filter::Nor(fs),
            })
        }
        "$comment" => Ok(Filter::And(Vec::new())),
        _ if k.starts_with('$') => Err(StoreError::bad_value(format!(
            "unknown top level operator: {k}"
        ))),
        _ => Ok(Filter::Field(k.to_string(), parse_value(v, depth)?)),
    }
}

fn is_operator_doc(d: &Document) -> bool {
    d.keys().next().is_some_and(|k| k.starts_with('$'))
}

fn parse_value(v: &Bson, depth: usize) -> Result<Pred> {
    match v {
        Bson::Document(d) if is_operator_doc(d) => {
            let mut preds = Vec::with_capacity(d.len());
            for (op, arg) in d {
                preds.push(parse_operator(op, arg, depth)?);
            }
            Ok(if preds.len() == 1 {
                preds.pop().expect("one")
            } else {
                Pred::AllOf(preds)
            })
        }
        Bson::RegularExpression(_) => Err(StoreError::bad_value(
            "regular expressions are not supported by this server",
        )),
        other => Ok(Pred::Eq(other.clone())),
    }
}

fn array_arg<'a>(op: &str, arg: &'a Bson) -> Result<&'a Vec<Bson>> {
    match arg {
        Bson::Array(a) => Ok(a),
        _ => Err(StoreError::bad_value(format!("{op} needs an array"))),
    }
}

fn parse_operator(op: &str, arg: &Bson, depth: usize) -> Result<Pred> {
    depth_check(depth)?;
    Ok(match op {
        "$eq" => Pred::Eq(arg.clone()),
        "$ne" => Pred::Ne(arg.clone()),
        "$gt" => Pred::Cmp(Ordering::Greater, false, arg.clone()),
        "$gte" => Pred::Cmp(Ordering::Greater, true, arg.clone()),
        "$lt" => Pred::Cmp(Ordering::Less, false, arg.clone()),
        "$lte" => Pred::Cmp(Ordering::Less, true, arg.clone()),
        "$in" => Pred::In(array_arg(op, arg)?.clone()),
        "$nin" => Pred::Nin(array_arg(op, arg)?.clone()),
        "$all" => Pred::All(array_arg(op, arg)?.clone()),
        "$exists" => Pred::Exists(truthy(arg)),
        "$size" => match arg {
            Bson::Int32(n) if *n >= 0 => Pred::Size(*n as usize),
            Bson::Int64(n) if *n >= 0 => Pred::Size(*n as usize),
            Bson::Double(n) if *n >= 0.0 && n.fract() == 0.0 => Pred::Size(*n as usize),
            _ => {
                return Err(StoreError::bad_value(
                    "$size needs a non-negative whole number",
                ))
            }
        },
        "$elemMatch" => match arg {
            Bson::Document(d) => Pred::ElemMatch(Box::new(parse_elem_match(d, depth + 1)?)),
            _ => return Err(StoreError::bad_value("$elemMatch needs an Object")),
        },
        "$type" => {
            let items = match arg {
                Bson::Array(a) => a.clone(),
                other => vec![other.clone()],
            };
            let mut ranks = Vec::with_capacity(items.len());
            for t in &items {
                ranks.push(type_code(t)?);
            }
            Pred::Type(ranks)
        }
        "$not" => match arg {
            Bson::Document(d) if is_operator_doc(d) => {
                let mut preds = Vec::new();
                for (op, a) in d {
                    preds.push(parse_operator(op, a, depth + 1)?);
                }
                Pred::Not(preds)
            }
            _ => return Err(StoreError::bad_value("$not needs a regex or a document")),
        },
        _ => return Err(StoreError::bad_value(format!("unknown operator: {op}"))),
    })
}

/// `$elemMatch` takes either operators on the element (`{$gt: 1}`) or a filter on element documents.
fn parse_elem_match(d: &Document, depth: usize) -> Result<Filter> {
    if is_operator_doc(d)
        && !d
            .keys()
            .any(|k| matches!(k.as_str(), "$and" | "$or" | "$nor"))
    {
        let mut preds = Vec::new();
        for (op, a) in d {
            preds.push(parse_operator(op, a, depth)?);
        }
        // The empty path marks "the element itself".
        return Ok(Filter::Field(String::new(), Pred::AllOf(preds)));
    }
    parse_doc(d, depth)
}

fn truthy(v: &Bson) -> bool {
    match v {
        Bson::Boolean(b) => *b,
        Bson::Null | Bson::Undefined => false,
        Bson::Int32(0) | Bson::Int64(0) => false,
        Bson::Double(d) => *d != 0.0,
        _ => true,
    }
}

/// The type rank a `$type` argument names (BSON type number or alias).
fn type_code(t: &Bson) -> Result<u8> {
    let n = match t {
        Bson::String(s) => match s.as_str() {
            "double" => 1,
            "string" => 2,
            "object" => 3,
            "array" => 4,
            "binData" => 5,
            "objectId" => 7,
            "bool" => 8,
            "date" => 9,
            "null" => 10,
            "regex" => 11,
            "int" => 16,
            "timestamp" => 17,
            "long" => 18,
            "decimal" => 19,
            "minKey" => 255,
            "maxKey" => 127,
            "number" => 0,
            other => {
                return Err(StoreError::bad_value(format!(
                    "Unknown type name alias: {other}"
                )))
            }
        },
        other => match crate::compare::as_f64(other) {
            Some(-1.0) => 255,
            Some(n) if (0.0..=127.0).contains(&n) && n.fract() == 0.0 => n as u8,
            _ => return Err(StoreError::bad_value("Invalid numerical type code")),
        },
    };
    Ok(n)
}

fn bson_type_number(v: &Bson) -> u8 {
    match v {
        Bson::Double(_) => 1,
        Bson::String(_) => 2,
        Bson::Document(_) => 3,
        Bson::Array(_) => 4,
        Bson::Binary(_) => 5,
        Bson::Undefined => 6,
        Bson::ObjectId(_) => 7,
        Bson::Boolean(_) => 8,
        Bson::DateTime(_) => 9,
        Bson::Null => 10,
        Bson::RegularExpression(_) => 11,
        Bson::DbPointer(_) => 12,
        Bson::JavaScriptCode(_) => 13,
        Bson::Symbol(_) => 14,
        Bson::JavaScriptCodeWithScope(_) => 15,
        Bson::Int32(_) => 16,
        Bson::Timestamp(_) => 17,
        Bson::Int64(_) => 18,
        Bson::Decimal128(_) => 19,
        Bson::MinKey => 255,
        Bson::MaxKey => 127,
    }
}

/// The values a predicate tests at a path: each value found, and the elements of arrays found.
fn each_candidate<'a>(values: &[&'a Bson], mut f: impl FnMut(&'a Bson) -> bool) -> bool {
    for v in values {
        if f(v) {
            return true;
        }
        if let Bson::Array(items) = v {
            if items.iter().any(&mut f) {
                return true;
            }
        }
    }
    false
}

fn eq_matches(x: &Bson, values: &[&Bson]) -> bool {
    if matches!(x, Bson::Null)
        && (values.is_empty()
            || values
                .iter()
                .any(|v| matches!(v, Bson::Null | Bson::Undefined)))
    {
        return true;
    }
    each_candidate(values, |c| bson_eq(c, x))
}

fn pred_matches(pred: &Pred, values: &[&Bson]) -> bool {
    match pred {
        Pred::Eq(x) => eq_matches(x, values),
        Pred::Ne(x) => !eq_matches(x, values),
        Pred::Cmp(dir, or_equal, x) => each_candidate(values, |c| {
            // Type bracketing: `$gt: 5` never matches a string.
            if type_rank(c) != type_rank(x) {
                return false;
            }
            let o = cmp_bson(c, x);
            o == *dir || (*or_equal && o == Ordering::Equal)
        }),
        Pred::In(xs) => xs.iter().any(|x| eq_matches(x, values)),
        Pred::Nin(xs) => !xs.iter().any(|x| eq_matches(x, values)),
        Pred::Exists(want) => values.is_empty() != *want,
        Pred::Size(n) => values
            .iter()
            .any(|v| matches!(v, Bson::Array(a) if a.len() == *n)),
        Pred::All(xs) => !xs.is_empty() && xs.iter().all(|x| eq_matches(x, values)),
        Pred::ElemMatch(f) => values.iter().any(|v| match v {
            Bson::Array(items) => items.iter().any(|item| elem_matches(f, item)),
            _ => false,
        }),
        Pred::Type(codes) => each_candidate(values, |c| {
            let t = bson_type_number(c);
            codes
                .iter()
                .any(|&k| k == t || (k == 0 && type_rank(c) == 10))
        }),
        Pred::Not(ps) => !ps.iter().all(|p| pred_matches(p, values)),
        Pred::AllOf(ps) => ps.iter().all(|p| pred_matches(p, values)),
    }
}

fn elem_matches(f: &Filter, item: &Bson) -> bool {
    match f {
        Filter::Field(p, pred) if p.is_empty() => pred_matches_scalar(pred, item),
        _ => match item {
            Bson::Document(d) => f.matches(d),
            _ => false,
        },
    }
}

/// A predicate applied to one array element itself (no further traversal), as `$elemMatch` does.
fn pred_matches_scalar(pred: &Pred, item: &Bson) -> bool {
    match pred {
        Pred::AllOf(ps) => ps.iter().all(|p| pred_matches_scalar(p, item)),
        Pred::Not(ps) => !ps.iter().all(|p| pred_matches_scalar(p, item)),
        other => pred_matches(other, &[item]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn m(filter: Document, d: Document) -> bool {
        Filter::parse(&filter).unwrap().matches(&d)
    }

    #[test]
    fn equality_comparison_and_arrays() {
        let d = doc! {"a": 5, "tags": ["x", "y"], "n": {"k": 1}};
        assert!(m(doc! {"a": 5.0}, d.clone()));
        assert!(m(doc! {"tags": "y"}, d.clone()));
        assert!(m(doc! {"tags": ["x", "y"]}, d.clone()));
        assert!(m(doc! {"n.k": 1}, d.clone()));
        assert!(m(doc! {"a": {"$gt": 4, "$lte": 5}}, d.clone()));
        assert!(!m(doc! {"a": {"$gt": "4"}}, d.clone()), "type bracketing");
        assert!(m(doc! {"a": {"$in": [1, 5]}}, d.clone()));
        assert!(m(doc! {"a": {"$nin": [1, 2]}}, d.clone()));
        assert!(m(doc! {"missing": null}, d.clone()));
        assert!(!m(doc! {"a": null}, d.clone()));
        assert!(m(doc! {"missing": {"$exists": false}}, d.clone()));
        assert!(m(doc! {"a": {"$ne": 6}}, d.clone()));
        assert!(m(
            doc! {"tags": {"$size": 2}, "a": {"$type": "int"}},
            d.clone()
        ));
        assert!(m(doc! {"tags": {"$all": ["y", "x"]}}, d.clone()));
        assert!(m(doc! {"a": {"$not": {"$gt": 6}}}, d));
    }

    #[test]
    fn logical_operators() {
        let d = doc! {"a": 1, "b": 2};
        assert!(m(doc! {"$or": [{"a": 2}, {"b": 2}]}, d.clone()));
        assert!(!m(doc! {"$and": [{"a": 1}, {"b": 3}]}, d.clone()));
        assert!(m(doc! {"$nor": [{"a": 3}]}, d));
    }

    #[test]
    fn elem_match_on_documents_and_scalars() {
        let d = doc! {"l": [{"x": 1, "y": 2}, {"x": 3, "y": 1}], "s": [1, 8]};
        assert!(m(doc! {"l": {"$elemMatch": {"x": 3, "y": 1}}}, d.clone()));
        assert!(!m(doc! {"l": {"$elemMatch": {"x": 1, "y": 1}}}, d.clone()));
        assert!(m(doc! {"s": {"$elemMatch": {"$gt": 5, "$lt": 9}}}, d));
    }

    #[test]
    fn bad_operators_are_refused_with_mongods_codes() {
        let e = Filter::parse(&doc! {"a": {"$foo": 1}}).unwrap_err();
        assert_eq!(
            (e.code.number(), e.message.as_str()),
            (2, "unknown operator: $foo")
        );
        let e = Filter::parse(&doc! {"$where": "1"}).unwrap_err();
        assert_eq!(
            (e.code.number(), e.message.as_str()),
            (2, "unknown top level operator: $where")
        );
        assert_eq!(
            Filter::parse(&doc! {"$or": []}).unwrap_err().code.number(),
            2
        );
        assert_eq!(
            Filter::parse(&doc! {"a": {"$in": 1}})
                .unwrap_err()
                .code
                .number(),
            2
        );
    }

    #[test]
    fn deep_filters_are_refused() {
        let mut f = doc! {"a": 1};
        for _ in 0..150 {
            f = doc! {"$and": [f]};
        }
        assert_eq!(Filter::parse(&f).unwrap_err().code.number(), 2);
    }
}
