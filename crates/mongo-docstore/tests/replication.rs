//! The store as a replica set uses it: writes on the primary, lagged reads on secondaries, rollback
//! after an election, the majority point, retryable writes across a failover, and persistence.

use bson::{doc, Bson, Document};
use mongo_docstore::{read_command, write_command, Cursors, Limits, ReplicaStore};

fn insert(s: &mut ReplicaStore, primary: &str, now_ms: u64, docs: Vec<Document>) -> Document {
    let cmd = doc! {"insert": "t", "documents": docs};
    s.write_partial(primary, now_ms, |b| {
        write_command(b, "app", "insert", &cmd, None)
    })
    .0
    .unwrap()
}

fn ids(s: &mut ReplicaStore, member: &str, upto_ms: u64) -> Vec<Bson> {
    let limits = *s.limits();
    let mut cursors = Cursors::new(10, 1);
    let cat = s.view(member, upto_ms).clone();
    let r = read_command(
        &cat,
        &mut cursors,
        "app",
        "find",
        &doc! {"find": "t", "sort": {"_id": 1}},
        &limits,
    )
    .unwrap()
    .unwrap();
    r.get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap()
        .iter()
        .map(|d| d.as_document().unwrap().get("_id").unwrap().clone())
        .collect()
}

#[test]
fn secondaries_see_what_they_have_replicated() {
    let mut s = ReplicaStore::new(Limits::default());
    insert(&mut s, "a", 100, vec![doc! {"_id": 1}]);
    insert(&mut s, "a", 200, vec![doc! {"_id": 2}]);
    assert_eq!(ids(&mut s, "b", 50), Vec::<Bson>::new());
    assert_eq!(ids(&mut s, "b", 150), vec![Bson::Int32(1)]);
    assert_eq!(ids(&mut s, "b", 200), vec![Bson::Int32(1), Bson::Int32(2)]);
    assert_eq!(
        ids(&mut s, "a", 0),
        vec![Bson::Int32(1), Bson::Int32(2)],
        "the primary keeps what it wrote"
    );
}

#[test]
fn an_election_rolls_back_what_the_winner_never_received_but_never_the_majority() {
    let mut s = ReplicaStore::new(Limits::default());
    insert(&mut s, "a", 100, vec![doc! {"_id": 1}]);
    insert(&mut s, "a", 200, vec![doc! {"_id": 2}]);
    insert(&mut s, "a", 300, vec![doc! {"_id": 3}]);
    s.commit(100);
    // b replicated up to 200 and wins; 3 was only on a.
    assert_eq!(s.rollback_after(200), 1);
    assert_eq!(ids(&mut s, "a", 300), vec![Bson::Int32(1), Bson::Int32(2)]);
    // A rollback never reaches below the majority point.
    assert_eq!(s.rollback_after(0), 1);
    assert_eq!(ids(&mut s, "b", 400), vec![Bson::Int32(1)]);
    assert_eq!(s.rolled_back(), 2);
    // The new primary writes after the rolled-back positions.
    insert(&mut s, "b", 250, vec![doc! {"_id": 4}]);
    assert_eq!(
        ids(&mut s, "a", 10_000),
        vec![Bson::Int32(1), Bson::Int32(4)]
    );
}

#[test]
fn a_retryable_write_is_applied_once_across_a_failover_when_it_replicated() {
    let mut s = ReplicaStore::new(Limits::default());
    let cmd = doc! {"insert": "t", "documents": [{"_id": 1, "v": "x"}]};
    let key = "session-1";
    let (r1, at) = s.write_partial("a", 100, |b| {
        write_command(b, "app", "insert", &cmd, Some((key, 5)))
    });
    assert_eq!(r1.unwrap().get_i32("n").unwrap(), 1);
    assert_eq!(at.ms, 100);
    // b has the write and its session record; the retry on b answers the first outcome.
    s.rollback_after(100);
    let (r2, _) = s.write_partial("b", 150, |b| {
        write_command(b, "app", "insert", &cmd, Some((key, 5)))
    });
    let r2 = r2.unwrap();
    assert_eq!((r2.get_i32("n").unwrap(), r2.get("writeErrors")), (1, None));
    assert_eq!(ids(&mut s, "b", 1000), vec![Bson::Int32(1)]);
    // An older txnNumber on the same session is refused.
    let (r3, _) = s.write_partial("b", 160, |b| {
        write_command(b, "app", "insert", &cmd, Some((key, 4)))
    });
    assert_eq!(r3.unwrap_err().code.number(), 225);
}

#[test]
fn a_retry_after_the_write_was_rolled_back_applies_it_again() {
    let mut s = ReplicaStore::new(Limits::default());
    let cmd = doc! {"insert": "t", "documents": [{"_id": 1}]};
    let _ = s.write_partial("a", 100, |b| {
        write_command(b, "app", "insert", &cmd, Some(("k", 1)))
    });
    assert_eq!(
        s.rollback_after(50),
        3,
        "create, put and the session record"
    );
    let (r, _) = s.write_partial("b", 120, |b| {
        write_command(b, "app", "insert", &cmd, Some(("k", 1)))
    });
    assert_eq!(r.unwrap().get_i32("n").unwrap(), 1);
    assert_eq!(ids(&mut s, "a", 1000), vec![Bson::Int32(1)]);
}

#[test]
fn ordered_batches_stop_at_the_first_duplicate_and_keep_what_came_before() {
    let mut s = ReplicaStore::new(Limits::default());
    insert(&mut s, "a", 10, vec![doc! {"_id": 2}]);
    let r = insert(
        &mut s,
        "a",
        20,
        vec![doc! {"_id": 1}, doc! {"_id": 2}, doc! {"_id": 3}],
    );
    assert_eq!(r.get_i32("n").unwrap(), 1);
    let err = r.get_array("writeErrors").unwrap()[0]
        .as_document()
        .unwrap()
        .clone();
    assert_eq!(
        (err.get_i32("index").unwrap(), err.get_i32("code").unwrap()),
        (1, 11000)
    );
    assert_eq!(
        err.get_str("errmsg").unwrap(),
        "E11000 duplicate key error collection: app.t index: _id_ dup key: { _id: 2 }"
    );
    let cmd = doc! {"insert": "t", "ordered": false, "documents": [{"_id": 2}, {"_id": 4}]};
    let r = s
        .write_partial("a", 30, |b| write_command(b, "app", "insert", &cmd, None))
        .0
        .unwrap();
    assert_eq!(r.get_i32("n").unwrap(), 1);
    assert_eq!(
        ids(&mut s, "a", 30),
        vec![Bson::Int32(1), Bson::Int32(2), Bson::Int32(4)]
    );
}

#[test]
fn updates_upserts_and_deletes_reply_as_mongod_does() {
    let mut s = ReplicaStore::new(Limits::default());
    insert(
        &mut s,
        "a",
        10,
        vec![doc! {"_id": 1, "n": 1}, doc! {"_id": 2, "n": 1}],
    );
    let cmd = doc! {"update": "t", "updates": [
        {"q": {"n": 1}, "u": {"$inc": {"n": 1}}, "multi": true},
        {"q": {"_id": 9}, "u": {"$set": {"n": 7}}, "upsert": true},
        {"q": {"_id": 1}, "u": {"$set": {"n": 2}}},
    ]};
    let r = s
        .write_partial("a", 20, |b| write_command(b, "app", "update", &cmd, None))
        .0
        .unwrap();
    assert_eq!(
        r,
        doc! {"n": 4, "upserted": [{"index": 2 - 1, "_id": 9}], "nModified": 2, "ok": 1.0}
    );
    let cmd = doc! {"delete": "t", "deletes": [{"q": {"n": 2}, "limit": 0}]};
    let r = s
        .write_partial("a", 30, |b| write_command(b, "app", "delete", &cmd, None))
        .0
        .unwrap();
    assert_eq!(r.get_i32("n").unwrap(), 2);
    assert_eq!(ids(&mut s, "a", 30), vec![Bson::Int32(9)]);
}

#[test]
fn find_pages_through_get_more_and_aggregate_groups() {
    let mut s = ReplicaStore::new(Limits::default());
    let docs: Vec<Document> = (0..7).map(|i| doc! {"_id": i, "k": i % 2}).collect();
    insert(&mut s, "a", 10, docs);
    let limits = *s.limits();
    let cat = s.view("a", 10).clone();
    let mut cursors = Cursors::new(10, 3);
    let r = read_command(
        &cat,
        &mut cursors,
        "app",
        "find",
        &doc! {"find": "t", "filter": {"_id": {"$gte": 1}}, "batchSize": 4, "projection": {"k": 0}},
        &limits,
    )
    .unwrap()
    .unwrap();
    let c = r.get_document("cursor").unwrap();
    assert_eq!(
        (
            c.get_array("firstBatch").unwrap().len(),
            c.get_str("ns").unwrap()
        ),
        (4, "app.t")
    );
    assert_eq!(
        c.get_array("firstBatch").unwrap()[0],
        Bson::Document(doc! {"_id": 1})
    );
    let id = c.get_i64("id").unwrap();
    let r = read_command(
        &cat,
        &mut cursors,
        "app",
        "getMore",
        &doc! {"getMore": id, "collection": "t"},
        &limits,
    )
    .unwrap()
    .unwrap();
    let c = r.get_document("cursor").unwrap();
    assert_eq!(
        (
            c.get_array("nextBatch").unwrap().len(),
            c.get_i64("id").unwrap()
        ),
        (2, 0)
    );
    let agg = doc! {"aggregate": "t", "pipeline": [{"$group": {"_id": "$k", "n": {"$sum": 1}}}, {"$sort": {"_id": 1}}], "cursor": {}};
    let r = read_command(&cat, &mut cursors, "app", "aggregate", &agg, &limits)
        .unwrap()
        .unwrap();
    let batch = r
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap()
        .clone();
    assert_eq!(
        batch,
        vec![
            Bson::Document(doc! {"_id": 0, "n": 4}),
            Bson::Document(doc! {"_id": 1, "n": 3})
        ]
    );
    let bad = doc! {"aggregate": "t", "pipeline": [{"$lookup": {}}], "cursor": {}};
    assert_eq!(
        read_command(&cat, &mut cursors, "app", "aggregate", &bad, &limits)
            .unwrap()
            .unwrap_err()
            .code
            .number(),
        40324
    );
    let count = read_command(
        &cat,
        &mut cursors,
        "app",
        "count",
        &doc! {"count": "t", "query": {"k": 1}},
        &limits,
    )
    .unwrap()
    .unwrap();
    assert_eq!(count, doc! {"n": 3, "ok": 1.0});
}

#[test]
fn the_persisted_form_round_trips() {
    let mut s = ReplicaStore::new(Limits::default());
    insert(
        &mut s,
        "a",
        100,
        vec![doc! {"_id": 1, "f": 1.5, "l": 7_i64}],
    );
    s.commit(100);
    insert(&mut s, "a", 200, vec![doc! {"_id": 2}]);
    let bytes = s.to_document().to_vec().unwrap();
    let back = Document::from_reader(&mut bytes.as_slice()).unwrap();
    let mut t = ReplicaStore::from_document(&back, Limits::default()).unwrap();
    assert_eq!(t.last(), s.last());
    assert_eq!(ids(&mut t, "a", 150), vec![Bson::Int32(1)]);
    assert_eq!(ids(&mut t, "a", 200), vec![Bson::Int32(1), Bson::Int32(2)]);
    let cat = t.view("a", 200).clone();
    assert_eq!(
        cat.collection("app", "t")
            .unwrap()
            .get(&Bson::Int32(1))
            .unwrap(),
        &doc! {"_id": 1, "f": 1.5, "l": 7_i64}
    );
    assert_eq!(
        ReplicaStore::from_document(&doc! {"format": 2}, Limits::default())
            .unwrap_err()
            .code
            .number(),
        9
    );
}

#[test]
fn a_write_that_fails_changes_nothing() {
    let limits = Limits {
        max_documents: 2,
        ..Limits::default()
    };
    let mut s = ReplicaStore::new(limits);
    insert(&mut s, "a", 10, vec![doc! {"_id": 1}]);
    let before = s.last();
    let cmd = doc! {"create": "t"};
    let r = s
        .write_partial("a", 20, |b| write_command(b, "app", "create", &cmd, None))
        .0;
    assert_eq!(r.unwrap_err().code.number(), 48);
    assert_eq!(s.last(), before);
    let r = insert(&mut s, "a", 30, vec![doc! {"_id": 2}, doc! {"_id": 3}]);
    assert_eq!(r.get_i32("n").unwrap(), 1);
    assert_eq!(
        r.get_array("writeErrors").unwrap()[0]
            .as_document()
            .unwrap()
            .get_i32("code")
            .unwrap(),
        146
    );
}
