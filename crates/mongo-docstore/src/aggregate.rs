//! The aggregation subset: `$match`, `$sort`, `$skip`, `$limit`, `$project` (inclusion/exclusion),
//! `$count`, and `$group` by a field path or constant with `$sum`, `$avg`, `$min`, `$max`, `$first`,
//! `$last`, `$push`. Other stages are refused with mongod's code.

use bson::{Bson, Document};

use crate::catalog::{Catalog, Limits};
use crate::compare::{as_f64, bson_eq, cmp_bson};
use crate::error::{Code, Result, StoreError};
use crate::filter::Filter;
use crate::path;
use crate::project::{Projection, Sort};
use crate::read::matching;

pub fn run_pipeline(
    cat: &Catalog,
    db: &str,
    coll: &str,
    pipeline: &[&Document],
    limits: &Limits,
) -> Result<Vec<Document>> {
    // Parse every stage before reading anything, so a bad stage changes nothing and costs nothing.
    let stages = pipeline
        .iter()
        .map(|s| Stage::parse(s))
        .collect::<Result<Vec<_>>>()?;
    let (first_filter, rest) = match stages.first() {
        Some(Stage::Match(f)) => (f.clone(), &stages[1..]),
        _ => (Filter::And(Vec::new()), &stages[..]),
    };
    let mut docs: Vec<Document> = matching(cat, db, coll, &first_filter, limits, None)?
        .into_iter()
        .cloned()
        .collect();
    for stage in rest {
        docs = stage.run(docs)?;
    }
    Ok(docs)
}

enum Stage {
    Match(Filter),
    Sort(Sort),
    Skip(usize),
    Limit(usize),
    Project(Projection),
    Count(String),
    Group(Bson, Vec<(String, Acc, Bson)>),
}

#[derive(Clone, Copy)]
enum Acc {
    Sum,
    Avg,
    Min,
    Max,
    First,
    Last,
    Push,
}

fn stage_error(code: i32, msg: impl Into<String>) -> StoreError {
    StoreError::new(Code::Location(code), msg)
}

fn positive(v: &Bson, stage: &str) -> Result<usize> {
    match as_f64(v) {
        Some(n) if n >= 0.0 && n.fract() == 0.0 => Ok(n as usize),
        _ => Err(stage_error(
            15958,
            format!("the {stage} must be a non-negative whole number"),
        )),
    }
}

impl Stage {
    fn parse(s: &Document) -> Result<Stage> {
        if s.len() != 1 {
            return Err(stage_error(
                40323,
                "A pipeline stage specification object must contain exactly one field.",
            ));
        }
        let (name, arg) = s.iter().next().expect("one field");
        let doc_arg = || {
            arg.as_document().ok_or_else(|| {
                stage_error(
                    15959,
                    format!("the {name} stage specification must be an object"),
                )
            })
        };
        Ok(match name.as_str() {
            "$match" => Stage::Match(Filter::parse(doc_arg()?)?),
            "$sort" => match Sort::parse(doc_arg()?)? {
                Some(s) => Stage::Sort(s),
                None => {
                    return Err(stage_error(
                        15976,
                        "$sort stage must have at least one sort key",
                    ))
                }
            },
            "$skip" => Stage::Skip(positive(arg, "skip")?),
            "$limit" => match positive(arg, "limit")? {
                0 => return Err(stage_error(15958, "the limit must be positive")),
                n => Stage::Limit(n),
            },
            "$project" => match Projection::parse(doc_arg()?)? {
                Some(p) => Stage::Project(p),
                None => {
                    return Err(stage_error(
                        51272,
                        "projection specification must have at least one field",
                    ))
                }
            },
            "$count" => match arg {
                Bson::String(f) if !f.is_empty() && !f.starts_with('$') && !f.contains('.') => {
                    Stage::Count(f.clone())
                }
                _ => {
                    return Err(stage_error(
                        40156,
                        "the count field must be a non-empty string without '$' or '.'",
                    ))
                }
            },
            "$group" => parse_group(doc_arg()?)?,
            other => {
                return Err(stage_error(
                    40324,
                    format!("Unrecognized pipeline stage name: '{other}'"),
                ))
            }
        })
    }

    fn run(&self, docs: Vec<Document>) -> Result<Vec<Document>> {
        Ok(match self {
            Stage::Match(f) => docs.into_iter().filter(|d| f.matches(d)).collect(),
            Stage::Sort(s) => {
                let mut docs = docs;
                s.sort(&mut docs);
                docs
            }
            Stage::Skip(n) => docs.into_iter().skip(*n).collect(),
            Stage::Limit(n) => docs.into_iter().take(*n).collect(),
            Stage::Project(p) => docs.iter().map(|d| p.apply(d)).collect(),
            Stage::Count(f) => {
                if docs.is_empty() {
                    Vec::new()
                } else {
                    let mut out = Document::new();
                    out.insert(f.clone(), i32::try_from(docs.len()).unwrap_or(i32::MAX));
                    vec![out]
                }
            }
            Stage::Group(key, accs) => group(docs, key, accs),
        })
    }
}

fn parse_group(spec: &Document) -> Result<Stage> {
    let Some(key) = spec.get("_id") else {
        return Err(stage_error(
            15955,
            "a group specification must include an _id",
        ));
    };
    check_expr(key)?;
    let mut accs = Vec::new();
    for (field, v) in spec {
        if field == "_id" {
            continue;
        }
        let Some(d) = v.as_document().filter(|d| d.len() == 1) else {
            return Err(stage_error(
                40234,
                format!("The field '{field}' must be an accumulator object"),
            ));
        };
        let (op, expr) = d.iter().next().expect("one field");
        let acc = match op.as_str() {
            "$sum" => Acc::Sum,
            "$avg" => Acc::Avg,
            "$min" => Acc::Min,
            "$max" => Acc::Max,
            "$first" => Acc::First,
            "$last" => Acc::Last,
            "$push" => Acc::Push,
            other => {
                return Err(stage_error(
                    15952,
                    format!("unknown group operator '{other}'"),
                ))
            }
        };
        check_expr(expr)?;
        accs.push((field.clone(), acc, expr.clone()));
    }
    Ok(Stage::Group(key.clone(), accs))
}

/// Expressions here are a field path (`"$a.b"`), a constant, or a document of those.
fn check_expr(e: &Bson) -> Result<()> {
    match e {
        Bson::Document(d) => {
            for (k, v) in d {
                if k.starts_with('$') {
                    return Err(stage_error(168, format!("Unrecognized expression '{k}'")));
                }
                check_expr(v)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn eval(e: &Bson, d: &Document) -> Bson {
    match e {
        Bson::String(s) if s.starts_with('$') => {
            path::get_exact(d, &s[1..]).cloned().unwrap_or(Bson::Null)
        }
        Bson::Document(spec) => {
            let mut out = Document::new();
            for (k, v) in spec {
                out.insert(k.clone(), eval(v, d));
            }
            Bson::Document(out)
        }
        other => other.clone(),
    }
}

fn group(docs: Vec<Document>, key: &Bson, accs: &[(String, Acc, Bson)]) -> Vec<Document> {
    let mut groups: Vec<(Bson, Vec<Document>)> = Vec::new();
    for d in docs {
        let k = eval(key, &d);
        match groups.iter_mut().find(|(g, _)| bson_eq(g, &k)) {
            Some((_, members)) => members.push(d),
            None => groups.push((k, vec![d])),
        }
    }
    groups
        .into_iter()
        .map(|(k, members)| {
            let mut out = Document::new();
            out.insert("_id", k);
            for (field, acc, expr) in accs {
                let values: Vec<Bson> = members.iter().map(|d| eval(expr, d)).collect();
                out.insert(field.clone(), accumulate(*acc, values));
            }
            out
        })
        .collect()
}

fn accumulate(acc: Acc, values: Vec<Bson>) -> Bson {
    let numbers = || values.iter().filter(|v| as_f64(v).is_some());
    match acc {
        Acc::Sum => {
            let mut total = Bson::Int32(0);
            for v in numbers() {
                total = add(&total, v);
            }
            total
        }
        Acc::Avg => {
            let n: Vec<f64> = numbers().filter_map(as_f64).collect();
            if n.is_empty() {
                Bson::Null
            } else {
                Bson::Double(n.iter().sum::<f64>() / n.len() as f64)
            }
        }
        Acc::Min => values
            .into_iter()
            .filter(|v| !matches!(v, Bson::Null))
            .min_by(cmp_bson)
            .unwrap_or(Bson::Null),
        Acc::Max => values
            .into_iter()
            .filter(|v| !matches!(v, Bson::Null))
            .max_by(cmp_bson)
            .unwrap_or(Bson::Null),
        Acc::First => values.into_iter().next().unwrap_or(Bson::Null),
        Acc::Last => values.into_iter().last().unwrap_or(Bson::Null),
        Acc::Push => Bson::Array(values),
    }
}

fn add(a: &Bson, b: &Bson) -> Bson {
    match (a, b) {
        (Bson::Int32(x), Bson::Int32(y)) => x
            .checked_add(*y)
            .map(Bson::Int32)
            .unwrap_or(Bson::Int64(i64::from(*x) + i64::from(*y))),
        (Bson::Int32(_) | Bson::Int64(_), Bson::Int32(_) | Bson::Int64(_)) => {
            let x = if let Bson::Int32(v) = a {
                i64::from(*v)
            } else if let Bson::Int64(v) = a {
                *v
            } else {
                0
            };
            let y = if let Bson::Int32(v) = b {
                i64::from(*v)
            } else if let Bson::Int64(v) = b {
                *v
            } else {
                0
            };
            x.checked_add(y)
                .map(Bson::Int64)
                .unwrap_or(Bson::Double(x as f64 + y as f64))
        }
        _ => Bson::Double(as_f64(a).unwrap_or(0.0) + as_f64(b).unwrap_or(0.0)),
    }
}
