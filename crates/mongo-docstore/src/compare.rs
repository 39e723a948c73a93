//! BSON comparison in MongoDB's order: first by canonical type (MinKey < null < numbers < strings <
//! objects < arrays < binary < ObjectId < booleans < dates < timestamps < regexes < MaxKey), then by
//! value; numbers of different BSON types compare by numeric value, as the server does.

use std::cmp::Ordering;

use bson::{Bson, Document};

/// The canonical type rank of a value, mongod's `canonicalizeBSONType`.
pub fn type_rank(v: &Bson) -> u8 {
    match v {
        Bson::MinKey => 1,
        Bson::Null | Bson::Undefined => 5,
        Bson::Double(_) | Bson::Int32(_) | Bson::Int64(_) | Bson::Decimal128(_) => 10,
        Bson::String(_) | Bson::Symbol(_) => 15,
        Bson::Document(_) => 20,
        Bson::Array(_) => 25,
        Bson::Binary(_) => 30,
        Bson::ObjectId(_) => 35,
        Bson::Boolean(_) => 40,
        Bson::DateTime(_) => 45,
        Bson::Timestamp(_) => 47,
        Bson::RegularExpression(_) => 50,
        Bson::DbPointer(_) => 55,
        Bson::JavaScriptCode(_) => 60,
        Bson::JavaScriptCodeWithScope(_) => 65,
        Bson::MaxKey => 127,
    }
}

/// A number as f64 (Decimal128 through its string form), `None` for non-numbers.
pub fn as_f64(v: &Bson) -> Option<f64> {
    match v {
        Bson::Double(d) => Some(*d),
        Bson::Int32(i) => Some(f64::from(*i)),
        // Precision loss beyond 2^53 only affects ordering of huge int64s against doubles.
        Bson::Int64(i) => Some(*i as f64),
        Bson::Decimal128(d) => d.to_string().parse::<f64>().ok(),
        _ => None,
    }
}

fn cmp_numbers(a: &Bson, b: &Bson) -> Ordering {
    if let (Bson::Int64(x), Bson::Int64(y)) = (a, b) {
        return x.cmp(y);
    }
    if let (Some(x), Some(y)) = (int_value(a), int_value(b)) {
        return x.cmp(&y);
    }
    let x = as_f64(a).unwrap_or(f64::NAN);
    let y = as_f64(b).unwrap_or(f64::NAN);
    // mongod sorts NaN below every other number and equal to itself.
    match (x.is_nan(), y.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
    }
}

fn int_value(v: &Bson) -> Option<i64> {
    match v {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        _ => None,
    }
}

/// Total order over BSON values, MongoDB's comparison order.
pub fn cmp_bson(a: &Bson, b: &Bson) -> Ordering {
    let (ra, rb) = (type_rank(a), type_rank(b));
    if ra != rb {
        return ra.cmp(&rb);
    }
    match (a, b) {
        (x, y) if ra == 10 => cmp_numbers(x, y),
        (Bson::String(x) | Bson::Symbol(x), Bson::String(y) | Bson::Symbol(y)) => x.cmp(y),
        (Bson::Document(x), Bson::Document(y)) => cmp_docs(x, y),
        (Bson::Array(x), Bson::Array(y)) => {
            for (p, q) in x.iter().zip(y.iter()) {
                let o = cmp_bson(p, q);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Bson::Binary(x), Bson::Binary(y)) => x
            .bytes
            .len()
            .cmp(&y.bytes.len())
            .then(u8::from(x.subtype).cmp(&u8::from(y.subtype)))
            .then_with(|| x.bytes.cmp(&y.bytes)),
        (Bson::ObjectId(x), Bson::ObjectId(y)) => x.bytes().cmp(&y.bytes()),
        (Bson::Boolean(x), Bson::Boolean(y)) => x.cmp(y),
        (Bson::DateTime(x), Bson::DateTime(y)) => x.timestamp_millis().cmp(&y.timestamp_millis()),
        (Bson::Timestamp(x), Bson::Timestamp(y)) => {
            (x.time, x.increment).cmp(&(y.time, y.increment))
        }
        (Bson::RegularExpression(x), Bson::RegularExpression(y)) => x
            .pattern
            .as_str()
            .cmp(y.pattern.as_str())
            .then_with(|| x.options.as_str().cmp(y.options.as_str())),
        (Bson::JavaScriptCode(x), Bson::JavaScriptCode(y)) => x.cmp(y),
        (Bson::JavaScriptCodeWithScope(x), Bson::JavaScriptCodeWithScope(y)) => x
            .code
            .cmp(&y.code)
            .then_with(|| cmp_docs(&x.scope, &y.scope)),
        // Null/undefined, MinKey/MaxKey and DbPointer compare equal within their rank.
        _ => Ordering::Equal,
    }
}

/// Documents compare field by field: the field's type rank, then its name, then its value.
pub fn cmp_docs(a: &Document, b: &Document) -> Ordering {
    let mut ia = a.iter();
    let mut ib = b.iter();
    loop {
        match (ia.next(), ib.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some((ka, va)), Some((kb, vb))) => {
                let o = type_rank(va)
                    .cmp(&type_rank(vb))
                    .then_with(|| ka.cmp(kb))
                    .then_with(|| cmp_bson(va, vb));
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

/// Equality as a query sees it: same canonical type and equal value (`1 == 1.0 == NumberLong(1)`).
pub fn bson_eq(a: &Bson, b: &Bson) -> bool {
    cmp_bson(a, b) == Ordering::Equal
}

/// A value usable as an ordered map key (a document's `_id`), ordered as MongoDB orders values.
#[derive(Debug, Clone)]
pub struct IdKey(pub Bson);

impl PartialEq for IdKey {
    fn eq(&self, other: &Self) -> bool {
        bson_eq(&self.0, &other.0)
    }
}
impl Eq for IdKey {}
impl PartialOrd for IdKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for IdKey {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_bson(&self.0, &other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{doc, oid::ObjectId};

    #[test]
    fn numbers_of_different_types_compare_by_value() {
        assert!(bson_eq(&Bson::Int32(1), &Bson::Double(1.0)));
        assert!(bson_eq(&Bson::Int64(7), &Bson::Int32(7)));
        assert_eq!(
            cmp_bson(&Bson::Int32(2), &Bson::Double(2.5)),
            Ordering::Less
        );
        assert_eq!(
            cmp_bson(&Bson::Double(f64::NAN), &Bson::Int32(i32::MIN)),
            Ordering::Less
        );
    }

    #[test]
    fn types_order_as_mongodb_orders_them() {
        let ordered = [
            Bson::MinKey,
            Bson::Null,
            Bson::Int32(5),
            Bson::String("a".into()),
            Bson::Document(doc! {"a": 1}),
            Bson::Array(vec![Bson::Int32(1)]),
            Bson::ObjectId(ObjectId::new()),
            Bson::Boolean(false),
            Bson::DateTime(bson::DateTime::from_millis(0)),
            Bson::MaxKey,
        ];
        for w in ordered.windows(2) {
            assert_eq!(
                cmp_bson(&w[0], &w[1]),
                Ordering::Less,
                "{:?} < {:?}",
                w[0],
                w[1]
            );
        }
    }

    #[test]
    fn documents_compare_in_field_order() {
        assert!(bson_eq(
            &Bson::Document(doc! {"a": 1, "b": 2}),
            &Bson::Document(doc! {"a": 1.0, "b": 2})
        ));
        assert!(!bson_eq(
            &Bson::Document(doc! {"a": 1, "b": 2}),
            &Bson::Document(doc! {"b": 2, "a": 1})
        ));
        assert_eq!(
            cmp_docs(&doc! {"a": 1}, &doc! {"a": 1, "b": 0}),
            Ordering::Less
        );
    }
}
