//! Open cursors of one member: the rest of a `find`/`aggregate` result, handed out by `getMore` and
//! closed by `killCursors`, exhaustion, or the member stopping. Bounded in number.

use std::collections::{BTreeMap, VecDeque};

use bson::Document;

use crate::error::{Code, Result, StoreError};

/// Bytes of documents one reply batch may carry (mongod stops a batch at 16 MiB).
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// `find`'s first batch when the client names no `batchSize`.
pub const DEFAULT_FIRST_BATCH: usize = 101;

#[derive(Debug)]
struct Cursor {
    ns: String,
    rest: VecDeque<Document>,
}

#[derive(Debug)]
pub struct Cursors {
    open: BTreeMap<i64, Cursor>,
    next_id: i64,
    max_open: usize,
}

impl Cursors {
    /// `seed` makes ids differ between members and restarts, as a client would expect of new cursors.
    pub fn new(max_open: usize, seed: u64) -> Self {
        Cursors {
            open: BTreeMap::new(),
            next_id: (seed % (1 << 40)) as i64 * 1000 + 1,
            max_open,
        }
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Splits off the first batch; keeps a cursor for the rest. Returns the batch and the cursor id
    /// (0 when the result is exhausted).
    pub fn open(
        &mut self,
        ns: &str,
        docs: Vec<Document>,
        batch: usize,
        single_batch: bool,
    ) -> Result<(Vec<Document>, i64)> {
        let mut rest: VecDeque<Document> = docs.into();
        let first = take_batch(&mut rest, batch);
        if rest.is_empty() || single_batch {
            return Ok((first, 0));
        }
        if self.open.len() >= self.max_open {
            return Err(StoreError::new(
                Code::ExceededMemoryLimit,
                format!("too many open cursors (limit {})", self.max_open),
            ));
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.open.insert(
            id,
            Cursor {
                ns: ns.to_string(),
                rest,
            },
        );
        Ok((first, id))
    }

    /// The next batch of cursor `id` on namespace `ns`.
    pub fn get_more(&mut self, id: i64, ns: &str, batch: usize) -> Result<(Vec<Document>, i64)> {
        let Some(c) = self.open.get_mut(&id) else {
            return Err(StoreError::new(
                Code::CursorNotFound,
                format!("cursor id {id} not found"),
            ));
        };
        if c.ns != ns {
            return Err(StoreError::new(Code::Unauthorized, format!("Requested getMore on namespace '{ns}', but cursor belongs to a different namespace {}", c.ns)));
        }
        let docs = take_batch(&mut c.rest, batch);
        if c.rest.is_empty() {
            self.open.remove(&id);
            return Ok((docs, 0));
        }
        Ok((docs, id))
    }

    /// Kills the named cursors; returns (killed, not found).
    pub fn kill(&mut self, ids: &[i64]) -> (Vec<i64>, Vec<i64>) {
        let mut killed = Vec::new();
        let mut missing = Vec::new();
        for id in ids {
            if self.open.remove(id).is_some() {
                killed.push(*id);
            } else {
                missing.push(*id);
            }
        }
        (killed, missing)
    }

    pub fn clear(&mut self) {
        self.open.clear();
    }
}

fn take_batch(rest: &mut VecDeque<Document>, batch: usize) -> Vec<Document> {
    let mut out = Vec::new();
    let mut bytes = 0;
    while out.len() < batch.max(1) {
        let Some(next) = rest.front() else { break };
        let size = crate::catalog::doc_bytes(next);
        if !out.is_empty() && bytes + size > MAX_BATCH_BYTES {
            break;
        }
        bytes += size;
        out.push(rest.pop_front().expect("front exists"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn batches_then_exhaustion_closes_the_cursor() {
        let mut c = Cursors::new(2, 7);
        let docs: Vec<_> = (0..5).map(|i| doc! {"_id": i}).collect();
        let (first, id) = c.open("a.t", docs, 2, false).unwrap();
        assert_eq!((first.len(), id != 0), (2, true));
        assert_eq!(c.get_more(id, "a.u", 2).unwrap_err().code.number(), 13);
        assert_eq!(c.get_more(id, "a.t", 2).unwrap().0.len(), 2);
        let (last, closed) = c.get_more(id, "a.t", 10).unwrap();
        assert_eq!((last.len(), closed), (1, 0));
        assert_eq!(c.get_more(id, "a.t", 2).unwrap_err().code.number(), 43);
    }

    #[test]
    fn open_cursors_are_bounded() {
        let mut c = Cursors::new(1, 0);
        let docs = || (0..3).map(|i| doc! {"_id": i}).collect::<Vec<_>>();
        let (_, id) = c.open("a.t", docs(), 1, false).unwrap();
        assert_eq!(
            c.open("a.t", docs(), 1, false).unwrap_err().code.number(),
            146
        );
        assert_eq!(c.kill(&[id, 99]), (vec![id], vec![99]));
        assert!(c.open("a.t", docs(), 1, false).is_ok());
    }
}
