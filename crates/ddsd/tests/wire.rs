//! The simulated members' MongoDB listeners against a real `ddsd serve`: the official Rust driver
//! (`mongodb` 3.9.1) connects with the URI built from `DescribeDBInstanceAttribute`, writes and
//! reads with `w: "majority"`, and sees what the describe call says; hostile bytes on a member's
//! port close that connection only (or get MongoDB's error reply) while an established driver
//! connection to the same member and the HTTP API keep working; a crashed member refuses
//! connections and closes the ones it had.

mod common;

use std::io::ErrorKind as IoErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use acs_rpc::Secret;
use bson::{doc, Bson, Document};
use ddsd_client::{Client as Api, Credentials};
use mongodb::error::{Error as DriverError, ErrorKind};
use mongodb::Client as Mongo;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const PASSWORD: &str = "Str0ng!pass";
/// `PASSWORD` as written in a URI.
const PASSWORD_IN_URI: &str = "Str0ng%21pass";
const SPEED: &str = "20";
/// `[wire] max_connections_per_member`'s default, which these servers run with.
const MAX_CONNECTIONS_PER_MEMBER: usize = 256;
const OP_MSG: i32 = 2013;
/// How long a closed connection may take to show as closed.
const CLOSE_WITHIN: Duration = Duration::from_secs(3);

/// One `ddsd serve` with the test key `testid` and the generated admin key.
struct Ddsd {
    server: common::Running,
    api: Api,
    admin: Api,
    _root: common::TempDir,
}

impl Ddsd {
    fn start(name: &str) -> Ddsd {
        let root = common::TempDir::new(name);
        let config = root.join("ddsd.toml");
        std::fs::write(
            &config,
            "[[access_keys]]\nid = \"testid\"\nsecret = \"testsecret\"\n",
        )
        .unwrap();
        let data_dir = root.join("data");
        let mut cmd = common::serve_command();
        cmd.args(["--listen", "127.0.0.1:0", "--sim-speed", SPEED, "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(&data_dir)
            .stderr(std::process::Stdio::null());
        let server = common::spawn(cmd);
        let api = Api::new(
            &server.endpoint,
            Credentials {
                access_key_id: "testid".into(),
                secret: Secret::new("testsecret"),
            },
        )
        .unwrap();
        let admin = Api::new(
            &server.endpoint,
            Credentials::from_data_dir(&data_dir).unwrap(),
        )
        .unwrap();
        Ddsd {
            server,
            api,
            admin,
            _root: root,
        }
    }

    /// A three-member replica set with `root`'s password, once `Running`.
    async fn create_replica_set(&self) -> String {
        let created = self
            .api
            .call(
                "CreateDBInstance",
                &[
                    ("RegionId", "cn-hangzhou"),
                    ("Engine", "MongoDB"),
                    ("EngineVersion", "4.4"),
                    ("DBInstanceClass", "dds.mongo.mid"),
                    ("DBInstanceStorage", "20"),
                    ("AccountPassword", PASSWORD),
                ],
            )
            .await
            .unwrap();
        let id = created["DBInstanceId"].as_str().unwrap().to_string();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = self.describe(&id).await["DBInstanceStatus"].clone();
            if status == "Running" {
                return id;
            }
            assert!(Instant::now() < deadline, "{id} stayed {status}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `DescribeDBInstanceAttribute`'s `DBInstances.DBInstance[0]`.
    async fn describe(&self, id: &str) -> Value {
        let v = self
            .api
            .call("DescribeDBInstanceAttribute", &[("DBInstanceId", id)])
            .await
            .unwrap();
        v["DBInstances"]["DBInstance"][0].clone()
    }

    /// `DescribeReplicaSetRole`'s `ReplicaSets.ReplicaSet[]`.
    async fn roles(&self, id: &str) -> Vec<Value> {
        let v = self
            .api
            .call("DescribeReplicaSetRole", &[("DBInstanceId", id)])
            .await
            .unwrap();
        v["ReplicaSets"]["ReplicaSet"].as_array().unwrap().clone()
    }

    /// The process still runs and its HTTP API still answers for `id`.
    async fn assert_alive(&mut self, id: &str, after: &str) {
        assert!(
            self.server.child.try_wait().unwrap().is_none(),
            "ddsd exited after {after}"
        );
        assert_eq!(
            self.describe(id).await["DBInstanceId"],
            id,
            "the HTTP API answers after {after}"
        );
    }
}

/// A JSON string or number as text (`ConnectionPort` is a string, `Port` a number).
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `ConnectionDomain:ConnectionPort` of a `ReplicaSet[]` entry.
fn address(member: &Value) -> String {
    format!(
        "{}:{}",
        text(&member["ConnectionDomain"]),
        text(&member["ConnectionPort"])
    )
}

fn socket_addr(member: &Value) -> SocketAddr {
    address(member).parse().expect("a numeric address")
}

fn members(a: &Value) -> &Vec<Value> {
    a["ReplicaSets"]["ReplicaSet"].as_array().unwrap()
}

fn with_role<'a>(list: &'a [Value], role: &str) -> &'a Value {
    list.iter()
        .find(|m| m["ReplicaSetRole"] == role)
        .unwrap_or_else(|| panic!("no {role} in {list:?}"))
}

/// The replica-set URI an application builds from the describe call.
fn rs_uri(a: &Value, options: &str) -> String {
    let hosts: Vec<String> = members(a).iter().map(address).collect();
    format!(
        "mongodb://root:{PASSWORD_IN_URI}@{}/?replicaSet={}&authSource=admin\
         &serverSelectionTimeoutMS=30000&heartbeatFrequencyMS=500{options}",
        hosts.join(","),
        a["ReplicaSetName"].as_str().unwrap()
    )
}

/// A direct connection to one member as `root`.
fn direct_uri(addr: &str) -> String {
    format!(
        "mongodb://root:{PASSWORD_IN_URI}@{addr}/?directConnection=true&authSource=admin\
         &serverSelectionTimeoutMS=10000"
    )
}

async fn mongo(uri: &str) -> Mongo {
    Mongo::with_uri_str(uri).await.expect("a valid URI")
}

async fn find_all(coll: &mongodb::Collection<Document>, filter: Document) -> Vec<Document> {
    let mut cursor = coll.find(filter).await.expect("find");
    let mut out = Vec::new();
    while cursor.advance().await.expect("cursor") {
        out.push(cursor.deserialize_current().expect("a document"));
    }
    out
}

/// The server's error in a driver error.
fn command_error(e: &DriverError) -> &mongodb::error::CommandError {
    match e.kind.as_ref() {
        ErrorKind::Command(c) => c,
        other => panic!("not a command error: {other:?}"),
    }
}

/// Runs a test's body, failing it rather than hanging if it takes over a minute.
async fn within(body: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(60), body)
        .await
        .expect("the test finished within 60 s");
}

/// The release part of a kernel version: `mongodb_20240119_4.4.19` → `4.4.19`.
fn release(kernel: &str) -> &str {
    kernel.rsplit('_').next().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_driver_writes_and_reads_with_the_described_uri_and_agrees_with_describe() {
    within(driver_session()).await;
}

async fn driver_session() {
    let d = Ddsd::start("wire-driver");
    let id = d.create_replica_set().await;
    let a = d.describe(&id).await;
    let c = mongo(&rs_uri(&a, "&w=majority&wtimeoutMS=10000")).await;

    let orders = c.database("app").collection::<Document>("orders");
    let docs: Vec<Document> = (0..10)
        .map(|i| doc! {"_id": i, "n": i, "kind": if i % 2 == 0 { "even" } else { "odd" }})
        .collect();
    assert_eq!(
        orders.insert_many(docs).await.unwrap().inserted_ids.len(),
        10
    );
    let mut cursor = orders
        .find(doc! {"n": {"$gte": 5}})
        .sort(doc! {"n": -1})
        .await
        .unwrap();
    let mut ns = Vec::new();
    while cursor.advance().await.unwrap() {
        ns.push(cursor.deserialize_current().unwrap().get_i32("n").unwrap());
    }
    assert_eq!(ns, [9, 8, 7, 6, 5]);
    // `Client::shutdown` waits for every cursor to be dropped.
    drop(cursor);
    assert_eq!(
        orders.count_documents(doc! {"kind": "odd"}).await.unwrap(),
        5
    );
    let updated = orders
        .update_one(doc! {"_id": 3}, doc! {"$inc": {"n": 100}})
        .await
        .unwrap();
    assert_eq!(updated.modified_count, 1);
    let three = orders.find_one(doc! {"_id": 3}).await.unwrap().unwrap();
    assert_eq!(three.get_i32("n").unwrap(), 103);
    assert_eq!(
        orders
            .delete_one(doc! {"_id": 4})
            .await
            .unwrap()
            .deleted_count,
        1
    );
    assert_eq!(orders.count_documents(doc! {}).await.unwrap(), 9);
    assert_eq!(
        c.database("app").list_collection_names().await.unwrap(),
        ["orders"]
    );

    // replSetGetStatus and buildInfo agree with the describe call.
    let admin = c.database("admin");
    let status = admin
        .run_command(doc! {"replSetGetStatus": 1})
        .await
        .unwrap();
    assert_eq!(
        status.get_str("set").unwrap(),
        a["ReplicaSetName"].as_str().unwrap()
    );
    let status_members = status.get_array("members").unwrap();
    let names: Vec<&str> = status_members
        .iter()
        .map(|m| m.as_document().unwrap().get_str("name").unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    let listed: Vec<String> = members(&a).iter().map(address).collect();
    for l in &listed {
        assert!(names.contains(&l.as_str()), "{l} in {names:?}");
    }
    let primaries: Vec<&str> = status_members
        .iter()
        .map(|m| m.as_document().unwrap())
        .filter(|m| m.get_str("stateStr").ok() == Some("PRIMARY"))
        .map(|m| m.get_str("name").unwrap())
        .collect();
    assert_eq!(
        primaries,
        [address(with_role(members(&a), "Primary")).as_str()]
    );
    let build = admin.run_command(doc! {"buildInfo": 1}).await.unwrap();
    assert_eq!(
        build.get_str("version").unwrap(),
        release(a["CurrentKernelVersion"].as_str().unwrap())
    );
    let conn = admin
        .run_command(doc! {"connectionStatus": 1})
        .await
        .unwrap();
    assert_eq!(
        conn.get_document("authInfo")
            .unwrap()
            .get_array("authenticatedUsers")
            .unwrap(),
        &vec![Bson::Document(doc! {"user": "root", "db": "admin"})]
    );

    // The majority writes are on the secondary too, as a direct reader of it sees.
    let secondary = address(with_role(members(&a), "Secondary"));
    let s = mongo(&format!(
        "{}&readPreference=secondaryPreferred",
        direct_uri(&secondary)
    ))
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = s
            .database("app")
            .collection::<Document>("orders")
            .count_documents(doc! {})
            .await
            .unwrap();
        if seen == 9 {
            break;
        }
        assert!(Instant::now() < deadline, "the secondary has {seen} of 9");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.shutdown().await;
    c.shutdown().await;
}

// ---- raw frames ----------------------------------------------------------------------------

/// A message: the 16-byte header (messageLength, requestID, responseTo, opCode, little-endian)
/// and `body`.
fn frame(request_id: i32, op_code: i32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + body.len());
    out.extend_from_slice(&(16 + body.len() as i32).to_le_bytes());
    out.extend_from_slice(&request_id.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&op_code.to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// An `OP_MSG` of flagBits 0 and one kind-0 section holding `doc_bytes` (well-formed or not).
fn op_msg_raw(request_id: i32, doc_bytes: &[u8]) -> Vec<u8> {
    let mut body = 0u32.to_le_bytes().to_vec();
    body.push(0);
    body.extend_from_slice(doc_bytes);
    frame(request_id, OP_MSG, &body)
}

fn op_msg(request_id: i32, command: &Document) -> Vec<u8> {
    op_msg_raw(request_id, &command.to_vec().unwrap())
}

/// Reads one `OP_MSG` reply: (responseTo, body).
async fn read_reply(stream: &mut TcpStream) -> (i32, Document) {
    let mut header = [0u8; 16];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut header))
        .await
        .expect("a reply in time")
        .expect("a reply header");
    let word = |i: usize| i32::from_le_bytes(header[i..i + 4].try_into().unwrap());
    let (len, response_to, op_code) = (word(0) as usize, word(8), word(12));
    assert_eq!(op_code, OP_MSG, "the reply is an OP_MSG");
    let mut body = vec![0u8; len - 16];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut body))
        .await
        .expect("the reply body in time")
        .expect("the reply body");
    assert_eq!(body[4], 0, "a kind-0 section first");
    (response_to, Document::from_reader(&body[5..]).unwrap())
}

async fn call(stream: &mut TcpStream, request_id: i32, command: Document) -> Document {
    stream
        .write_all(&op_msg(request_id, &command))
        .await
        .unwrap();
    let (response_to, reply) = read_reply(stream).await;
    assert_eq!(response_to, request_id);
    reply
}

/// What a connection showed within a wait.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// End of stream or a reset, with no byte before it.
    Closed,
    /// Bytes arrived: the reply's body document if they were one whole `OP_MSG`.
    Data(Option<Document>),
    /// Nothing within the wait: the connection is open.
    Open,
}

/// The body document of `bytes` if they are one whole `OP_MSG` with a kind-0 section first.
fn op_msg_body(bytes: &[u8]) -> Option<Document> {
    let len = i32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let op_code = i32::from_le_bytes(bytes.get(12..16)?.try_into().ok()?);
    if len != bytes.len() || op_code != OP_MSG || *bytes.get(20)? != 0 {
        return None;
    }
    Document::from_reader(bytes.get(21..)?).ok()
}

/// Reads from `stream` for at most `wait`.
async fn watch(stream: &mut TcpStream, wait: Duration) -> Seen {
    let mut buf = [0u8; 4096];
    match tokio::time::timeout(wait, stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => Seen::Closed,
        Ok(Ok(n)) => Seen::Data(op_msg_body(&buf[..n])),
        Err(_) => Seen::Open,
    }
}

/// Sends `bytes` on a fresh connection (then half-closes it if `then_close`) and reports what the
/// server did within [`CLOSE_WITHIN`].
async fn send_raw(addr: SocketAddr, bytes: &[u8], then_close: bool) -> Seen {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    if then_close {
        s.shutdown().await.unwrap();
    }
    watch(&mut s, CLOSE_WITHIN).await
}

/// The established driver client of the hostile member still works: a `ping`, and a `find` of
/// the probe documents.
async fn assert_driver_works(direct: &Mongo, after: &str) {
    let pong = direct
        .database("admin")
        .run_command(doc! {"ping": 1})
        .await
        .unwrap_or_else(|e| panic!("ping after {after}: {e}"));
    assert_eq!(pong.get_f64("ok").unwrap(), 1.0);
    let found = find_all(
        &direct.database("app").collection::<Document>("probe"),
        doc! {},
    )
    .await;
    assert_eq!(found.len(), 3, "find after {after}");
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_bytes_on_a_member_port_end_only_that_connection() {
    within(hostile_session()).await;
}

async fn hostile_session() {
    let mut d = Ddsd::start("wire-hostile");
    let id = d.create_replica_set().await;
    let a = d.describe(&id).await;
    let primary = with_role(members(&a), "Primary").clone();
    let addr = socket_addr(&primary);
    // One pooled connection, opened now: it must live through everything below.
    let direct = mongo(&format!("{}&maxPoolSize=1", direct_uri(&address(&primary)))).await;
    direct
        .database("app")
        .collection::<Document>("probe")
        .insert_many((0..3).map(|i| doc! {"_id": i}))
        .await
        .unwrap();
    assert_driver_works(&direct, "the setup").await;

    // A frame cut short, then the client's end of stream: the server closes without answering.
    let ping = op_msg(1, &doc! {"ping": 1, "$db": "admin"});
    for (case, cut) in [("half a header", 8), ("a truncated body", ping.len() - 3)] {
        assert_eq!(
            send_raw(addr, &ping[..cut], true).await,
            Seen::Closed,
            "{case}"
        );
        assert_driver_works(&direct, case).await;
        d.assert_alive(&id, case).await;
    }

    // A messageLength over maxMessageSizeBytes (48 MB) or under the header: closed at once, with
    // nothing of the body sent (well within the 30 s a started frame may take).
    for (case, len) in [
        ("messageLength 100 MB", 100_000_000i32),
        ("messageLength i32::MAX", i32::MAX),
        ("messageLength 4", 4),
        ("messageLength -1", -1),
    ] {
        let mut header = frame(2, OP_MSG, &[]);
        header[..4].copy_from_slice(&len.to_le_bytes());
        let started = Instant::now();
        assert_eq!(send_raw(addr, &header, false).await, Seen::Closed, "{case}");
        assert!(started.elapsed() < CLOSE_WITHIN, "{case}");
        assert_driver_works(&direct, case).await;
        d.assert_alive(&id, case).await;
    }

    // Invalid BSON in an OP_MSG's body section: closed, no reply.
    let mut bad_type = doc! {"ping": 1, "$db": "admin"}.to_vec().unwrap();
    assert_eq!(bad_type[4], 0x10, "ping's element type, int32");
    bad_type[4] = 0x20; // no BSON element type has this number
    let mut too_long = doc! {"ping": 1, "$db": "admin"}.to_vec().unwrap();
    too_long[0] = too_long[0].wrapping_add(40); // declares more bytes than the section has
    let mut no_terminator = doc! {"ping": 1, "$db": "admin"}.to_vec().unwrap();
    *no_terminator.last_mut().unwrap() = 0x10; // the document's final byte must be 0
    let mut bad_string = doc! {"ping": 1, "$db": "admin"}.to_vec().unwrap();
    // "$db"'s string length prefix (after type 0x02 and "$db\0") claims far more than is there.
    let at = bad_string.windows(4).position(|w| w == b"$db\0").unwrap() + 4;
    bad_string[at..at + 4].copy_from_slice(&1000i32.to_le_bytes());
    for (case, doc_bytes) in [
        ("an unknown BSON element type", &mut bad_type),
        ("a BSON length past the section", &mut too_long),
        ("a BSON document without its terminator", &mut no_terminator),
        ("a BSON string length past the document", &mut bad_string),
    ] {
        assert_eq!(
            send_raw(addr, &op_msg_raw(3, doc_bytes), false).await,
            Seen::Closed,
            "{case}"
        );
        assert_driver_works(&direct, case).await;
        d.assert_alive(&id, case).await;
    }

    // Op codes the server does not speak: closed. 2012 is OP_COMPRESSED (no compressor was
    // negotiated), 2005 the legacy OP_GET_MORE (gone from MongoDB since 5.1).
    let body = {
        let mut b = 0u32.to_le_bytes().to_vec();
        b.push(0);
        b.extend_from_slice(&doc! {"ping": 1, "$db": "admin"}.to_vec().unwrap());
        b
    };
    for (case, op_code) in [
        ("op code 9999", 9999),
        ("OP_COMPRESSED", 2012),
        ("OP_GET_MORE", 2005),
    ] {
        assert_eq!(
            send_raw(addr, &frame(4, op_code, &body), false).await,
            Seen::Closed,
            "{case}"
        );
        assert_driver_works(&direct, case).await;
        d.assert_alive(&id, case).await;
    }

    // Well-formed commands before a login: MongoDB's error document, and the connection stays.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let hello = call(&mut s, 10, doc! {"hello": 1, "$db": "admin"}).await;
    assert_eq!(hello.get_f64("ok").unwrap(), 1.0);
    assert!(hello.get_bool("isWritablePrimary").unwrap(), "{hello}");
    // As mongod, an unknown command is CommandNotFound before the authorization check.
    let reply = call(&mut s, 12, doc! {"noSuchCommand": 1, "$db": "admin"}).await;
    assert_eq!(
        reply,
        doc! {"ok": 0.0, "errmsg": "no such command: 'noSuchCommand'", "code": 59, "codeName": "CommandNotFound"}
    );
    for (request_id, command) in [
        (11, doc! {"find": "probe", "$db": "app"}),
        (
            13,
            doc! {"insert": "probe", "documents": [{"_id": 99}], "$db": "app"},
        ),
    ] {
        let name = command.keys().next().unwrap().clone();
        let reply = call(&mut s, request_id, command).await;
        assert_eq!(reply.get_f64("ok").unwrap(), 0.0, "{name}: {reply}");
        assert_eq!(reply.get_i32("code").unwrap(), 13, "{name}: {reply}");
        assert_eq!(reply.get_str("codeName").unwrap(), "Unauthorized");
        assert!(
            reply.get_str("errmsg").unwrap().contains(&name),
            "{name}: {reply}"
        );
    }
    let pong = call(&mut s, 14, doc! {"ping": 1, "$db": "admin"}).await;
    assert_eq!(
        pong.get_f64("ok").unwrap(),
        1.0,
        "the connection still serves"
    );
    // A command without `$db`: an error reply, and the connection still serves.
    let reply = call(&mut s, 15, doc! {"ping": 1}).await;
    assert_eq!(
        reply,
        doc! {"ok": 0.0, "errmsg": "OP_MSG requests require a $db argument", "code": 9, "codeName": "FailedToParse"}
    );
    let pong = call(&mut s, 16, doc! {"ping": 1, "$db": "admin"}).await;
    assert_eq!(pong.get_f64("ok").unwrap(), 1.0);
    drop(s);
    // Logged in, an unknown command is CommandNotFound (59), and the insert nobody may do
    // unauthenticated was not done.
    let e = direct
        .database("admin")
        .run_command(doc! {"noSuchCommand": 1})
        .await
        .unwrap_err();
    let ce = command_error(&e);
    assert_eq!((ce.code, ce.code_name.as_str()), (59, "CommandNotFound"));
    assert_driver_works(&direct, "the unauthenticated commands").await;
    d.assert_alive(&id, "the unauthenticated commands").await;

    // A flood over max_connections_per_member: each connection over the bound is accepted and
    // closed at once; those under it are served; the established driver connection works.
    const FLOOD: usize = 400;
    let mut flood = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        flood.push(TcpStream::connect(addr).await.expect("the connect itself"));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for mut s in flood {
        tasks.spawn(async move {
            let seen = watch(&mut s, Duration::from_millis(1500)).await;
            (seen, s)
        });
    }
    let mut open = Vec::new();
    let mut closed = 0;
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            (Seen::Closed, _) => closed += 1,
            (Seen::Open, s) => open.push(s),
            (Seen::Data(d), _) => panic!("the server sent {d:?} unasked"),
        }
    }
    assert_eq!(open.len() + closed, FLOOD);
    assert!(
        closed >= FLOOD - MAX_CONNECTIONS_PER_MEMBER,
        "{closed} closed"
    );
    // The driver holds at least one connection of the member's 256.
    assert!(
        open.len() < MAX_CONNECTIONS_PER_MEMBER && open.len() > 200,
        "{} open",
        open.len()
    );
    for (i, s) in open.iter_mut().take(5).enumerate() {
        let pong = call(s, 100 + i as i32, doc! {"ping": 1, "$db": "admin"}).await;
        assert_eq!(
            pong.get_f64("ok").unwrap(),
            1.0,
            "a connection under the bound is served"
        );
    }
    assert_driver_works(&direct, "the flood").await;
    let server_status = direct
        .database("admin")
        .run_command(doc! {"serverStatus": 1})
        .await
        .unwrap();
    let connections = server_status.get_document("connections").unwrap();
    assert_eq!(
        (
            connections.get_i32("current").unwrap(),
            connections.get_i32("available").unwrap()
        ),
        (MAX_CONNECTIONS_PER_MEMBER as i32, 0),
        "serverStatus during the flood: {connections}"
    );
    let kept = open.len();
    drop(open);
    // Once the flood is gone, new connections are served again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&op_msg(200, &doc! {"ping": 1, "$db": "admin"}))
            .await
            .unwrap();
        if let Seen::Data(_) = watch(&mut s, Duration::from_millis(500)).await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a fresh connection is served again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fresh = mongo(&direct_uri(&address(&primary))).await;
    assert_driver_works(&fresh, "the flood, on a new client").await;
    assert_driver_works(&direct, "the flood").await;
    d.assert_alive(&id, "the flood").await;
    eprintln!("flood: {closed} of {FLOOD} closed, {kept} kept open");
    fresh.shutdown().await;
    direct.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashed_secondary_refuses_connections_and_closes_its_established_ones() {
    within(crash_session()).await;
}

async fn crash_session() {
    let d = Ddsd::start("wire-crash");
    let id = d.create_replica_set().await;
    let a = d.describe(&id).await;
    let roles = d.roles(&id).await;
    let secondary = with_role(&roles, "Secondary");
    let addr = socket_addr(secondary);
    let node = secondary["RoleId"].as_str().unwrap();

    let mut established = TcpStream::connect(addr).await.unwrap();
    let hello = call(&mut established, 1, doc! {"hello": 1, "$db": "admin"}).await;
    assert_eq!(hello.get_bool("secondary").ok(), Some(true), "{hello}");
    let c = mongo(&rs_uri(&a, "&w=majority&wtimeoutMS=10000")).await;
    let kept = c.database("app").collection::<Document>("kept");
    kept.insert_many((0..5).map(|i| doc! {"_id": i}))
        .await
        .unwrap();

    // The raw connection is still open and served right before the crash.
    let pong = call(&mut established, 2, doc! {"ping": 1, "$db": "admin"}).await;
    assert_eq!(pong.get_f64("ok").unwrap(), 1.0);

    d.admin
        .call(
            "DdsdArmFault",
            &[
                ("DBInstanceId", id.as_str()),
                ("FaultType", "Crash"),
                ("NodeId", node),
            ],
        )
        .await
        .unwrap();
    let armed = Instant::now();
    assert_eq!(
        watch(&mut established, Duration::from_secs(10)).await,
        Seen::Closed,
        "the established connection is closed"
    );
    let closed_after = armed.elapsed();
    let refused_after = loop {
        match TcpStream::connect(addr).await {
            Err(e) if e.kind() == IoErrorKind::ConnectionRefused => break armed.elapsed(),
            Err(e) => panic!("connect to the crashed member: {e}"),
            Ok(_) => {
                assert!(armed.elapsed() < Duration::from_secs(10), "still accepting");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    // It stays down (no RecoverAfterSeconds): still refused a moment later.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(again.kind(), IoErrorKind::ConnectionRefused);

    // The primary and the hidden member are a majority: majority writes still succeed.
    kept.insert_one(doc! {"_id": 5}).await.unwrap();
    assert_eq!(kept.count_documents(doc! {}).await.unwrap(), 6);
    eprintln!("crash: established connection closed after {closed_after:?}, connects refused after {refused_after:?}");
    c.shutdown().await;
}
