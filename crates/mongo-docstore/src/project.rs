//! Projections (`{a: 1, "b.c": 1}` or `{a: 0}`) and sort specifications (`{a: 1, b: -1}`), parsed once
//! and applied to result documents as `find` and `$project`/`$sort` do.

use std::cmp::Ordering;

use bson::{Bson, Document};

use crate::compare::cmp_bson;
use crate::error::{Code, Result, StoreError};
use crate::path;

#[derive(Debug, Clone)]
pub struct Projection {
    include: bool,
    with_id: bool,
    paths: Vec<String>,
}

impl Projection {
    /// The projection in field `key` of a command, if any.
    pub fn from_field(cmd: &Document, key: &str) -> Result<Option<Projection>> {
        match crate::args::opt_doc(cmd, key)? {
            Some(p) => Projection::parse(p),
            None => Ok(None),
        }
    }

    pub fn parse(spec: &Document) -> Result<Option<Projection>> {
        let mut include: Option<bool> = None;
        let mut with_id = true;
        let mut paths = Vec::new();
        for (k, v) in spec {
            if k.starts_with('$') || v.as_document().is_some() {
                return Err(StoreError::bad_value(format!(
                    "projection operator {k} is not supported by this server"
                )));
            }
            let on = match v {
                Bson::Boolean(b) => *b,
                other => match crate::compare::as_f64(other) {
                    Some(n) => n != 0.0,
                    None => {
                        return Err(StoreError::bad_value(format!(
                            "Unsupported projection option: {k}: {v}"
                        )))
                    }
                },
            };
            if k == "_id" {
                with_id = on;
                continue;
            }
            match include {
                None => include = Some(on),
                Some(prev) if prev != on => {
                    let (code, what) = if prev {
                        (31254, "exclusion")
                    } else {
                        (31253, "inclusion")
                    };
                    let kind = if prev { "inclusion" } else { "exclusion" };
                    return Err(StoreError::new(
                        Code::Location(code),
                        format!("Cannot do {what} on field {k} in {kind} projection"),
                    ));
                }
                _ => {}
            }
            paths.push(k.clone());
        }
        if include.is_none() && with_id {
            return Ok(None);
        }
        Ok(Some(Projection {
            include: include.unwrap_or(false),
            with_id,
            paths,
        }))
    }

    pub fn apply(&self, doc: &Document) -> Document {
        let mut out = if self.include {
            let mut out = Document::new();
            if self.with_id {
                if let Some(id) = doc.get("_id") {
                    out.insert("_id", id.clone());
                }
            }
            for p in &self.paths {
                copy_path(doc, &mut out, p);
            }
            out
        } else {
            let mut out = doc.clone();
            for p in &self.paths {
                path::unset(&mut out, p);
            }
            out
        };
        if !self.with_id {
            out.remove("_id");
        }
        out
    }
}

/// Copies `p` from `src` into `dst`, keeping the nesting (and through arrays of documents).
fn copy_path(src: &Document, dst: &mut Document, p: &str) {
    let (head, rest) = match p.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (p, None),
    };
    let Some(v) = src.get(head) else { return };
    match (rest, v) {
        (None, v) => {
            dst.insert(head, v.clone());
        }
        (Some(r), Bson::Document(inner)) => {
            let mut sub = match dst.get(head) {
                Some(Bson::Document(d)) => d.clone(),
                _ => Document::new(),
            };
            copy_path(inner, &mut sub, r);
            dst.insert(head, sub);
        }
        (Some(r), Bson::Array(items)) => {
            let existing = match dst.get(head) {
                Some(Bson::Array(a)) => a.clone(),
                _ => Vec::new(),
            };
            let mut out = Vec::new();
            let mut i = 0;
            for item in items {
                if let Bson::Document(d) = item {
                    let mut sub = match existing.get(i) {
                        Some(Bson::Document(s)) => s.clone(),
                        _ => Document::new(),
                    };
                    copy_path(d, &mut sub, r);
                    out.push(Bson::Document(sub));
                    i += 1;
                }
            }
            dst.insert(head, out);
        }
        _ => {}
    }
}

#[derive(Debug, Clone)]
pub struct Sort(Vec<(String, bool)>);

impl Sort {
    /// The sort specification in field `key` of a command, if any.
    pub fn from_field(cmd: &Document, key: &str) -> Result<Option<Sort>> {
        match crate::args::opt_doc(cmd, key)? {
            Some(s) => Sort::parse(s),
            None => Ok(None),
        }
    }

    pub fn parse(spec: &Document) -> Result<Option<Sort>> {
        if spec.is_empty() {
            return Ok(None);
        }
        let mut keys = Vec::with_capacity(spec.len());
        for (k, v) in spec {
            let asc = match crate::compare::as_f64(v) {
                Some(1.0) => true,
                Some(-1.0) => false,
                _ => {
                    return Err(StoreError::new(
                        Code::Location(15975),
                        "$sort key ordering must be 1 (for ascending) or -1 (for descending)",
                    ))
                }
            };
            keys.push((k.clone(), asc));
        }
        Ok(Some(Sort(keys)))
    }

    pub fn cmp(&self, a: &Document, b: &Document) -> Ordering {
        for (p, asc) in &self.0 {
            let o = cmp_bson(&sort_key(a, p, *asc), &sort_key(b, p, *asc));
            let o = if *asc { o } else { o.reverse() };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    }

    pub fn sort(&self, docs: &mut [Document]) {
        docs.sort_by(|a, b| self.cmp(a, b));
    }
}

/// An array sorts by its smallest element ascending and by its largest descending; missing is null.
fn sort_key(d: &Document, p: &str, asc: bool) -> Bson {
    let mut values: Vec<Bson> = Vec::new();
    for v in path::lookup(d, p) {
        match v {
            Bson::Array(items) if !items.is_empty() => values.extend(items.iter().cloned()),
            other => values.push(other.clone()),
        }
    }
    let pick = if asc {
        values.into_iter().min_by(cmp_bson)
    } else {
        values.into_iter().max_by(cmp_bson)
    };
    pick.unwrap_or(Bson::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn inclusion_and_exclusion() {
        let d = doc! {"_id": 1, "a": 1, "b": {"c": 2, "d": 3}, "e": 4};
        let p = Projection::parse(&doc! {"a": 1, "b.c": 1})
            .unwrap()
            .unwrap();
        assert_eq!(p.apply(&d), doc! {"_id": 1, "a": 1, "b": {"c": 2}});
        let p = Projection::parse(&doc! {"b": 0, "_id": 0})
            .unwrap()
            .unwrap();
        assert_eq!(p.apply(&d), doc! {"a": 1, "e": 4});
        assert!(Projection::parse(&doc! {}).unwrap().is_none());
        let e = Projection::parse(&doc! {"a": 1, "b": 0}).unwrap_err();
        assert_eq!(
            (e.code.number(), e.code.name()),
            (31254, "Location31254".to_string())
        );
    }

    #[test]
    fn sort_orders_by_keys_and_missing_as_null() {
        let mut docs = vec![
            doc! {"a": 2, "b": 1},
            doc! {"b": 5},
            doc! {"a": 2, "b": 3},
            doc! {"a": 1},
        ];
        Sort::parse(&doc! {"a": 1, "b": -1})
            .unwrap()
            .unwrap()
            .sort(&mut docs);
        assert_eq!(
            docs,
            vec![
                doc! {"b": 5},
                doc! {"a": 1},
                doc! {"a": 2, "b": 3},
                doc! {"a": 2, "b": 1}
            ]
        );
        assert_eq!(
            Sort::parse(&doc! {"a": 2}).unwrap_err().code.number(),
            15975
        );
    }
}
