//! Raw sockets against the server loop: hostile and legacy frames, `moreToCome`, checksums, the
//! connection, idle and in-flight bounds, and stopping with work in progress. After every bad
//! connection a fresh one must still be served.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::{doc, Document};
use mongo_wire::frame::{
    decode_frame, decode_op_reply, encode_op_msg, encode_op_query, msg_flags, op_code, Message,
    OpMsg, OpQuery, HEADER_LEN,
};
use mongo_wire::WireLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::{start, TinyMongod};

fn op_msg(request_id: i32, flags: u32, body: Document) -> Vec<u8> {
    encode_op_msg(
        request_id,
        0,
        &OpMsg {
            flags,
            body,
            sequences: vec![],
        },
    )
    .unwrap()
}

async fn read_frame(stream: &mut TcpStream) -> Vec<u8> {
    let mut header = [0u8; HEADER_LEN];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut header))
        .await
        .expect("a reply in time")
        .expect("a reply header");
    let len = i32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let mut frame = header.to_vec();
    frame.resize(len, 0);
    stream
        .read_exact(&mut frame[HEADER_LEN..])
        .await
        .expect("a reply body");
    frame
}

/// Sends an `OP_MSG` and returns (responseTo, reply body).
async fn call(stream: &mut TcpStream, request_id: i32, body: Document) -> (i32, Document) {
    stream
        .write_all(&op_msg(request_id, 0, body))
        .await
        .unwrap();
    read_msg_reply(stream).await
}

async fn read_msg_reply(stream: &mut TcpStream) -> (i32, Document) {
    let frame = read_frame(stream).await;
    match decode_frame(&frame, &WireLimits::default()).expect("a well-formed reply") {
        (header, Message::Msg(msg)) => (header.response_to, msg.body),
        other => panic!("not an OP_MSG: {other:?}"),
    }
}

/// The server closed the connection (EOF or reset) within two seconds.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

async fn assert_serves(addr: SocketAddr) {
    let mut fresh = TcpStream::connect(addr).await.unwrap();
    let (response_to, reply) = call(&mut fresh, 77, doc! { "ping": 1, "$db": "admin" }).await;
    assert_eq!(response_to, 77);
    assert_eq!(reply, doc! { "ok": 1.0 });
}

async fn tiny(limits: WireLimits) -> (mongo_wire::WireListener<TinyMongod>, SocketAddr) {
    start(Arc::new(TinyMongod::with_items()), false, limits).await
}

#[tokio::test]
async fn hostile_frames_close_only_their_own_connection() {
    let (mut listener, addr) = tiny(WireLimits::default()).await;
    let mut bystander = TcpStream::connect(addr).await.unwrap();
    call(&mut bystander, 1, doc! { "ping": 1, "$db": "admin" }).await;

    let mut two_gb = 0x7FFF_FFF0_i32.to_le_bytes().to_vec();
    two_gb.extend_from_slice(&[0; 12]);
    let mut unknown_op = op_msg(1, 0, doc! { "ping": 1, "$db": "admin" });
    unknown_op[12..16].copy_from_slice(&4242_i32.to_le_bytes());
    let mut compressed = unknown_op.clone();
    compressed[12..16].copy_from_slice(&op_code::OP_COMPRESSED.to_le_bytes());
    let mut bad_section = op_msg(1, 0, doc! { "ping": 1, "$db": "admin" });
    bad_section[HEADER_LEN + 4] = 9;
    let mut bad_bson = op_msg(1, 0, doc! { "ping": 1, "$db": "admin" });
    bad_bson[HEADER_LEN + 4 + 1 + 4] = 0x7F;
    let mut bad_checksum = op_msg(
        1,
        msg_flags::CHECKSUM_PRESENT,
        doc! { "ping": 1, "$db": "admin" },
    );
    let last = bad_checksum.len() - 1;
    bad_checksum[last] ^= 0xFF;
    let mut negative = (-5_i32).to_le_bytes().to_vec();
    negative.extend_from_slice(&[0; 12]);
    let cases: [(&str, Vec<u8>); 8] = [
        ("garbage", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("2 GB length", two_gb),
        ("negative length", negative),
        ("unknown opCode", unknown_op),
        ("OP_COMPRESSED", compressed),
        ("unknown section kind", bad_section),
        ("bad BSON", bad_bson),
        ("bad checksum", bad_checksum),
    ];
    for (name, bytes) in cases {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(&bytes).await.unwrap();
        assert!(
            closed_by_server(&mut stream).await,
            "{name}: connection left open"
        );
        assert_serves(addr).await;
    }
    let (_, reply) = call(&mut bystander, 2, doc! { "ping": 1, "$db": "admin" }).await;
    assert_eq!(
        reply,
        doc! { "ok": 1.0 },
        "other connections are unaffected"
    );
    listener.stop().await;
}

#[tokio::test]
async fn a_truncated_frame_is_closed_when_the_client_stops_or_stalls() {
    let limits = WireLimits {
        frame_read_timeout: Duration::from_millis(300),
        ..WireLimits::default()
    };
    let (mut listener, addr) = tiny(limits).await;
    let frame = op_msg(1, 0, doc! { "ping": 1, "$db": "admin" });
    // Half a frame then a half-close: the message can never complete.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&frame[..frame.len() / 2]).await.unwrap();
    stream.shutdown().await.unwrap();
    assert!(closed_by_server(&mut stream).await);
    // Half a frame then silence: closed after frame_read_timeout.
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled.write_all(&frame[..10]).await.unwrap();
    let started = Instant::now();
    assert!(closed_by_server(&mut stalled).await);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    assert_serves(addr).await;
    listener.stop().await;
}

#[tokio::test]
async fn a_bad_command_in_an_intact_frame_gets_an_error_reply() {
    let (mut listener, addr) = tiny(WireLimits::default()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let (response_to, reply) = call(&mut stream, 5, doc! { "ping": 1 }).await;
    assert_eq!(response_to, 5);
    assert_eq!(reply.get_i32("code").unwrap(), 9);
    assert_eq!(reply.get_str("codeName").unwrap(), "FailedToParse");
    assert_eq!(reply.get_f64("ok").unwrap(), 0.0);
    let (_, reply) = call(&mut stream, 6, doc! { "ping": 1, "$db": "no.dots" }).await;
    assert_eq!(reply.get_str("codeName").unwrap(), "InvalidNamespace");
    let (_, reply) = call(&mut stream, 7, doc! { "ping": 1, "$db": "admin" }).await;
    assert_eq!(reply, doc! { "ok": 1.0 }, "the connection stays usable");
    listener.stop().await;
}

#[tokio::test]
async fn legacy_op_query_handshake_gets_op_reply_and_nothing_else_is_served() {
    let (mut listener, addr) = tiny(WireLimits::default()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let is_master = OpQuery {
        flags: 0,
        full_collection_name: "admin.$cmd".into(),
        number_to_skip: 0,
        number_to_return: -1,
        query: doc! { "isMaster": 1, "client": { "driver": { "name": "legacy" } } },
    };
    stream
        .write_all(&encode_op_query(11, &is_master).unwrap())
        .await
        .unwrap();
    let (header, flags, reply) =
        decode_op_reply(&read_frame(&mut stream).await, &WireLimits::default()).unwrap();
    assert_eq!((header.response_to, flags), (11, 0));
    assert!(reply.get_bool("ismaster").unwrap());
    assert_eq!(
        reply.get_i32("maxBsonObjectSize").unwrap(),
        16 * 1024 * 1024
    );
    assert_eq!(reply.get_i32("maxMessageSizeBytes").unwrap(), 48_000_000);
    assert_eq!(reply.get_i32("maxWriteBatchSize").unwrap(), 100_000);
    let find = OpQuery {
        full_collection_name: "app.$cmd".into(),
        query: doc! { "find": "items" },
        ..is_master
    };
    stream
        .write_all(&encode_op_query(12, &find).unwrap())
        .await
        .unwrap();
    let (_, _, reply) =
        decode_op_reply(&read_frame(&mut stream).await, &WireLimits::default()).unwrap();
    assert_eq!(reply.get_i32("code").unwrap(), 352);
    assert_eq!(
        reply.get_str("codeName").unwrap(),
        "UnsupportedOpQueryCommand"
    );
    listener.stop().await;
}

#[tokio::test]
async fn more_to_come_gets_no_reply_and_checksums_are_accepted() {
    let (mut listener, addr) = tiny(WireLimits::default()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(&op_msg(
            1,
            msg_flags::MORE_TO_COME,
            doc! { "ping": 1, "$db": "admin" },
        ))
        .await
        .unwrap();
    stream
        .write_all(&op_msg(
            2,
            msg_flags::CHECKSUM_PRESENT,
            doc! { "ping": 1, "$db": "admin" },
        ))
        .await
        .unwrap();
    let (response_to, reply) = read_msg_reply(&mut stream).await;
    assert_eq!(response_to, 2, "the first request was not answered");
    assert_eq!(reply, doc! { "ok": 1.0 });
    listener.stop().await;
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_and_slots_are_reused() {
    let limits = WireLimits {
        max_connections: 2,
        ..WireLimits::default()
    };
    let (mut listener, addr) = tiny(limits).await;
    let mut first = TcpStream::connect(addr).await.unwrap();
    let mut second = TcpStream::connect(addr).await.unwrap();
    call(&mut first, 1, doc! { "ping": 1, "$db": "admin" }).await;
    call(&mut second, 1, doc! { "ping": 1, "$db": "admin" }).await;
    assert_eq!(listener.open_connections(), 2);
    let mut third = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_by_server(&mut third).await,
        "third connection accepted"
    );
    drop(first);
    // The slot frees once the server notices the close.
    let deadline = Instant::now() + Duration::from_secs(5);
    while listener.open_connections() > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_serves(addr).await;
    listener.stop().await;
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let limits = WireLimits {
        idle_timeout: Some(Duration::from_millis(200)),
        ..WireLimits::default()
    };
    let (mut listener, addr) = tiny(limits).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    call(&mut stream, 1, doc! { "ping": 1, "$db": "admin" }).await;
    assert!(closed_by_server(&mut stream).await);
    listener.stop().await;
}

#[tokio::test]
async fn stop_closes_the_port_and_connections_even_mid_awaitable_hello() {
    let service = Arc::new(TinyMongod::with_items());
    let (mut listener, addr) = start(Arc::clone(&service), false, WireLimits::default()).await;
    let mut idle = TcpStream::connect(addr).await.unwrap();
    call(&mut idle, 1, doc! { "ping": 1, "$db": "admin" }).await;
    let mut waiting = TcpStream::connect(addr).await.unwrap();
    let awaitable = doc! {
        "hello": 1,
        "topologyVersion": { "processId": bson::oid::ObjectId::new(), "counter": 0_i64 },
        "maxAwaitTimeMS": 30_000_i64,
        "$db": "admin",
    };
    waiting.write_all(&op_msg(2, 0, awaitable)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    listener.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(closed_by_server(&mut idle).await);
    assert!(closed_by_server(&mut waiting).await);
    assert!(TcpStream::connect(addr).await.is_err(), "port still open");
    let opened = service.opened.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        service.closed.load(std::sync::atomic::Ordering::SeqCst),
        opened
    );
    listener.start().await.unwrap();
    assert_serves(addr).await;
    listener.stop().await;
}

#[tokio::test]
async fn unauthenticated_raw_commands_are_refused_with_unauthorized() {
    let (mut listener, addr) = start(
        Arc::new(TinyMongod::with_items()),
        true,
        WireLimits::default(),
    )
    .await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let (_, hello) = call(
        &mut stream,
        1,
        doc! { "hello": 1, "saslSupportedMechs": "admin.sha1", "$db": "admin" },
    )
    .await;
    assert_eq!(
        hello.get_array("saslSupportedMechs").unwrap(),
        &vec![bson::Bson::from("SCRAM-SHA-1")]
    );
    let (_, reply) = call(&mut stream, 2, doc! { "find": "items", "$db": "app" }).await;
    assert_eq!(reply.get_i32("code").unwrap(), 13);
    assert_eq!(
        reply.get_str("errmsg").unwrap(),
        "command find requires authentication"
    );
    let (_, reply) = call(&mut stream, 3, doc! { "ping": 1, "$db": "admin" }).await;
    assert_eq!(reply, doc! { "ok": 1.0 });
    listener.stop().await;
}
