//! Reading command arguments the way mongod does: numbers of any numeric BSON type, booleans that
//! may be numbers, and a `TypeMismatch` naming the field when the type is wrong.

use bson::{Bson, Document};

use crate::error::{Result, StoreError};

pub fn opt_i64(cmd: &Document, key: &str) -> Result<Option<i64>> {
    match cmd.get(key) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::Int32(n)) => Ok(Some(i64::from(*n))),
        Some(Bson::Int64(n)) => Ok(Some(*n)),
        Some(Bson::Double(d)) if d.fract() == 0.0 && d.abs() < 9.0e18 => Ok(Some(*d as i64)),
        Some(other) => Err(StoreError::type_mismatch(format!(
            "Field '{key}' should be a number, not {}",
            kind(other)
        ))),
    }
}

/// A non-negative count (`limit`, `skip`, `batchSize`); negative values are refused as mongod does.
pub fn opt_count(cmd: &Document, key: &str) -> Result<Option<usize>> {
    match opt_i64(cmd, key)? {
        None => Ok(None),
        Some(n) if n < 0 => Err(StoreError::bad_value(format!(
            "{key} value must be non-negative, but received: {n}"
        ))),
        Some(n) => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
    }
}

pub fn opt_bool(cmd: &Document, key: &str) -> Result<Option<bool>> {
    match cmd.get(key) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::Boolean(b)) => Ok(Some(*b)),
        Some(Bson::Int32(n)) => Ok(Some(*n != 0)),
        Some(Bson::Int64(n)) => Ok(Some(*n != 0)),
        Some(Bson::Double(d)) => Ok(Some(*d != 0.0)),
        Some(other) => Err(StoreError::type_mismatch(format!(
            "Field '{key}' should be a boolean value, but found: {}",
            kind(other)
        ))),
    }
}

pub fn opt_doc<'a>(cmd: &'a Document, key: &str) -> Result<Option<&'a Document>> {
    match cmd.get(key) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::Document(d)) => Ok(Some(d)),
        Some(other) => Err(StoreError::type_mismatch(format!(
            "BSON field '{key}' is the wrong type '{}', expected type 'object'",
            kind(other)
        ))),
    }
}

pub fn doc_array<'a>(cmd: &'a Document, key: &str) -> Result<Vec<&'a Document>> {
    match cmd.get(key) {
        Some(Bson::Array(items)) => items
            .iter()
            .map(|i| match i {
                Bson::Document(d) => Ok(d),
                other => Err(StoreError::type_mismatch(format!(
                    "BSON field '{key}' contains an element of type '{}', expected type 'object'",
                    kind(other)
                ))),
            })
            .collect(),
        None => Err(StoreError::new(
            crate::error::Code::Location(40414),
            format!("BSON field '{key}' is missing but a required field"),
        )),
        Some(other) => Err(StoreError::type_mismatch(format!(
            "BSON field '{key}' is the wrong type '{}', expected type 'array'",
            kind(other)
        ))),
    }
}

/// The collection a command names in its first field (`{find: "users"}`).
pub fn collection_name(cmd: &Document) -> Result<&str> {
    match cmd.iter().next() {
        Some((_, Bson::String(s))) => Ok(s),
        Some((k, other)) => Err(StoreError::new(
            crate::error::Code::InvalidNamespace,
            format!(
                "collection name has invalid type {} for command {k}",
                kind(other)
            ),
        )),
        None => Err(StoreError::failed_to_parse("empty command")),
    }
}

pub fn kind(v: &Bson) -> &'static str {
    match v {
        Bson::Double(_) => "double",
        Bson::String(_) => "string",
        Bson::Document(_) => "object",
        Bson::Array(_) => "array",
        Bson::Binary(_) => "binData",
        Bson::ObjectId(_) => "objectId",
        Bson::Boolean(_) => "bool",
        Bson::DateTime(_) => "date",
        Bson::Null => "null",
        Bson::Int32(_) => "int",
        Bson::Int64(_) => "long",
        Bson::Timestamp(_) => "timestamp",
        Bson::Decimal128(_) => "decimal",
        _ => "other",
    }
}
