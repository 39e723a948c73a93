//! Dotted paths (`a.b.0.c`): reading every value a query sees at a path (with MongoDB's implicit
//! traversal of arrays), and setting or removing one value at a path for updates.

use bson::{Bson, Document};

use crate::error::{Result, StoreError};

/// Every value at `path` in `doc`, traversing arrays of documents as a query does. An empty result
/// means the path is missing.
pub fn lookup<'a>(doc: &'a Document, path: &str) -> Vec<&'a Bson> {
    let parts: Vec<&str> = path.split('.').collect();
    let mut out = Vec::new();
    if let Some(v) = doc.get(parts[0]) {
        walk(v, &parts[1..], &mut out);
    }
    out
}

fn walk<'a>(v: &'a Bson, rest: &[&str], out: &mut Vec<&'a Bson>) {
    let Some((head, tail)) = rest.split_first() else {
        out.push(v);
        return;
    };
    match v {
        Bson::Document(d) => {
            if let Some(next) = d.get(*head) {
                walk(next, tail, out);
            }
        }
        Bson::Array(items) => {
            if let Ok(i) = head.parse::<usize>() {
                if let Some(next) = items.get(i) {
                    walk(next, tail, out);
                }
            }
            for item in items {
                if let Bson::Document(d) = item {
                    if let Some(next) = d.get(*head) {
                        walk(next, tail, out);
                    }
                }
            }
        }
        _ => {}
    }
}

/// The single value at `path` without array traversal (numeric parts index arrays), for updates and
/// sort keys of plain documents.
pub fn get_exact<'a>(doc: &'a Document, path: &str) -> Option<&'a Bson> {
    let mut parts = path.split('.');
    let mut cur = doc.get(parts.next()?)?;
    for p in parts {
        cur = match cur {
            Bson::Document(d) => d.get(p)?,
            Bson::Array(a) => a.get(p.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Sets `path` to `value`, creating intermediate documents. Fails as mongod does when a path part
/// crosses a non-container value.
pub fn set(doc: &mut Document, path: &str, value: Bson) -> Result<()> {
    let parts: Vec<&str> = path.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(StoreError::bad_value(format!(
            "The update path '{path}' contains an empty field name, which is not allowed."
        )));
    }
    set_in_doc(doc, &parts, value, path)
}

fn set_in_doc(doc: &mut Document, parts: &[&str], value: Bson, path: &str) -> Result<()> {
    let (head, tail) = parts.split_first().expect("non-empty path");
    if tail.is_empty() {
        doc.insert(*head, value);
        return Ok(());
    }
    if !doc.contains_key(*head) {
        doc.insert(*head, Document::new());
    }
    let child = doc.get_mut(*head).expect("just inserted");
    set_in_value(child, tail, value, path, head)
}

fn set_in_value(v: &mut Bson, parts: &[&str], value: Bson, path: &str, parent: &str) -> Result<()> {
    match v {
        Bson::Document(d) => set_in_doc(d, parts, value, path),
        Bson::Array(a) => {
            let (head, tail) = parts.split_first().expect("non-empty path");
            let Ok(i) = head.parse::<usize>() else {
                return Err(StoreError::new(
                    crate::error::Code::Location(28),
                    format!("Cannot create field '{head}' in element {{{parent}: [...]}}"),
                ));
            };
            // Limit how far a single update may grow an array with nulls.
            if i > a.len() + 1_500_000 {
                return Err(StoreError::bad_value(format!(
                    "cannot pad array to index {i}"
                )));
            }
            while a.len() <= i {
                a.push(Bson::Null);
            }
            if tail.is_empty() {
                a[i] = value;
                Ok(())
            } else {
                if !matches!(a[i], Bson::Document(_) | Bson::Array(_)) {
                    a[i] = Bson::Document(Document::new());
                }
                set_in_value(&mut a[i], tail, value, path, head)
            }
        }
        other => Err(StoreError::new(
            crate::error::Code::Location(28),
            format!(
                "Cannot create field '{}' in element {{{parent}: {other}}}",
                parts[0]
            ),
        )),
    }
}

/// Removes the value at `path` if present (array elements become null, as `$unset` does).
pub fn unset(doc: &mut Document, path: &str) {
    let parts: Vec<&str> = path.split('.').collect();
    unset_in_doc(doc, &parts);
}

fn unset_in_doc(doc: &mut Document, parts: &[&str]) {
    let Some((head, tail)) = parts.split_first() else {
        return;
    };
    if tail.is_empty() {
        doc.remove(*head);
        return;
    }
    match doc.get_mut(*head) {
        Some(Bson::Document(d)) => unset_in_doc(d, tail),
        Some(Bson::Array(a)) => unset_in_array(a, tail),
        _ => {}
    }
}

fn unset_in_array(a: &mut [Bson], parts: &[&str]) {
    let Some((head, tail)) = parts.split_first() else {
        return;
    };
    let Ok(i) = head.parse::<usize>() else { return };
    let Some(item) = a.get_mut(i) else { return };
    if tail.is_empty() {
        *item = Bson::Null;
        return;
    }
    match item {
        Bson::Document(d) => unset_in_doc(d, tail),
        Bson::Array(inner) => unset_in_array(inner, tail),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn lookup_traverses_arrays_of_documents() {
        let d = doc! {"a": [{"b": 1}, {"b": 2}, {"c": 3}], "x": {"y": 5}};
        let got: Vec<_> = lookup(&d, "a.b").into_iter().cloned().collect();
        assert_eq!(got, vec![Bson::Int32(1), Bson::Int32(2)]);
        assert_eq!(lookup(&d, "x.y"), vec![&Bson::Int32(5)]);
        assert!(lookup(&d, "x.z").is_empty());
        assert_eq!(lookup(&d, "a.1.b"), vec![&Bson::Int32(2)]);
    }

    #[test]
    fn set_creates_intermediate_documents_and_refuses_scalars() {
        let mut d = doc! {"a": 1};
        set(&mut d, "b.c.d", Bson::Int32(2)).unwrap();
        assert_eq!(d, doc! {"a": 1, "b": {"c": {"d": 2}}});
        let e = set(&mut d, "a.x", Bson::Int32(3)).unwrap_err();
        assert_eq!(e.code.number(), 28);
        assert_eq!(
            set(&mut d, "a..b", Bson::Null).unwrap_err().code.number(),
            2
        );
    }

    #[test]
    fn unset_removes_fields_and_nulls_array_elements() {
        let mut d = doc! {"a": {"b": 1, "c": 2}, "l": [1, 2]};
        unset(&mut d, "a.b");
        unset(&mut d, "l.0");
        unset(&mut d, "missing.path");
        assert_eq!(d, doc! {"a": {"c": 2}, "l": [Bson::Null, 2]});
    }
}
