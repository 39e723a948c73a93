//! Arbitrary command documents never panic the store: every outcome is a reply or an error.

use bson::{doc, Bson, Document};
use mongo_docstore::{read_command, write_command, Cursors, Limits, ReplicaStore};
use proptest::prelude::*;

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("_id".to_string()),
        Just("a".to_string()),
        Just("a.b".to_string()),
        Just("$set".to_string()),
        Just("$inc".to_string()),
        Just("$gt".to_string()),
        Just("$in".to_string()),
        Just("$or".to_string()),
        Just("$elemMatch".to_string()),
        Just("$group".to_string()),
        Just("$match".to_string()),
        Just("$sum".to_string()),
        Just("$push".to_string()),
        Just("0".to_string()),
        "[a-z$.]{0,4}",
    ]
}

fn value() -> impl Strategy<Value = Bson> {
    let leaf = prop_oneof![
        Just(Bson::Null),
        any::<i32>().prop_map(Bson::Int32),
        any::<i64>().prop_map(Bson::Int64),
        any::<f64>().prop_map(Bson::Double),
        any::<bool>().prop_map(Bson::Boolean),
        "[a-z$]{0,3}".prop_map(Bson::String),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Bson::Array),
            prop::collection::vec((key(), inner), 0..4)
                .prop_map(|kv| Bson::Document(kv.into_iter().collect::<Document>())),
        ]
    })
}

fn document() -> impl Strategy<Value = Document> {
    prop::collection::vec((key(), value()), 0..5).prop_map(|kv| kv.into_iter().collect())
}

proptest! {
    #[test]
    fn commands_never_panic(filter in document(), update in document(), docs in prop::collection::vec(document(), 1..4), stage in document()) {
        let mut s = ReplicaStore::new(Limits::default());
        let insert = doc! {"insert": "t", "documents": docs.clone(), "ordered": false};
        let _ = s.write_partial("a", 1, |b| write_command(b, "db", "insert", &insert, None));
        let upd = doc! {"update": "t", "updates": [{"q": filter.clone(), "u": update.clone(), "upsert": true, "multi": true}]};
        let _ = s.write_partial("a", 2, |b| write_command(b, "db", "update", &upd, None));
        let fam = doc! {"findAndModify": "t", "query": filter.clone(), "update": update.clone(), "upsert": true, "new": true};
        let _ = s.write_partial("a", 3, |b| write_command(b, "db", "findAndModify", &fam, None));
        let limits = *s.limits();
        let cat = s.view("b", 3).clone();
        let mut cursors = Cursors::new(4, 0);
        let find = doc! {"find": "t", "filter": filter.clone(), "sort": update.clone(), "projection": stage.clone()};
        let _ = read_command(&cat, &mut cursors, "db", "find", &find, &limits);
        let agg = doc! {"aggregate": "t", "pipeline": [stage.clone(), {"$group": update.clone()}], "cursor": {}};
        let _ = read_command(&cat, &mut cursors, "db", "aggregate", &agg, &limits);
        let del = doc! {"delete": "t", "deletes": [{"q": filter, "limit": 0}]};
        let _ = s.write_partial("a", 4, |b| write_command(b, "db", "delete", &del, None));
        s.rollback_after(2);
        s.commit(4);
    }
}
