//! The official Rust driver (`mongodb` 3.9.1) against a tiny service on this crate: handshake,
//! SCRAM-SHA-1 and SCRAM-SHA-256 (explicit and negotiated with speculative authentication),
//! commands, and the errors a driver sees for a wrong password or a missing login.

mod common;

use std::sync::Arc;

use bson::{doc, Document};
use mongo_wire::WireLimits;
use mongodb::error::{Error, ErrorKind};
use mongodb::Client;

use common::{start, TinyMongod, PASSWORD};

async fn client(uri: &str) -> Client {
    Client::with_uri_str(uri).await.expect("a valid URI")
}

fn uri(addr: std::net::SocketAddr, user: &str, password: &str, mechanism: Option<&str>) -> String {
    let password = password.replace('=', "%3D").replace(',', "%2C");
    let mut uri = format!(
        "mongodb://{user}:{password}@{addr}/?directConnection=true&authSource=admin&serverSelectionTimeoutMS=3000"
    );
    if let Some(mechanism) = mechanism {
        uri.push_str(&format!("&authMechanism={mechanism}"));
    }
    uri
}

async fn ping_and_find(client: &Client) {
    let db = client.database("admin");
    let pong = db.run_command(doc! { "ping": 1 }).await.expect("ping");
    assert_eq!(pong.get_f64("ok").unwrap(), 1.0);
    let items = client.database("app").collection::<Document>("items");
    let mut cursor = items.find(doc! { "name": "a" }).await.expect("find");
    let mut found = Vec::new();
    while cursor.advance().await.expect("cursor") {
        found.push(cursor.deserialize_current().expect("a document"));
    }
    assert_eq!(
        found,
        vec![
            doc! { "_id": 1, "name": "a" },
            doc! { "_id": 3, "name": "a" }
        ]
    );
}

fn anonymous_uri(addr: std::net::SocketAddr) -> String {
    format!("mongodb://{addr}/?directConnection=true&serverSelectionTimeoutMS=3000")
}

async fn start_tiny(auth: bool) -> (mongo_wire::WireListener<TinyMongod>, std::net::SocketAddr) {
    start(
        Arc::new(TinyMongod::with_items()),
        auth,
        WireLimits::default(),
    )
    .await
}

fn command_error(err: &Error) -> &mongodb::error::CommandError {
    match err.kind.as_ref() {
        ErrorKind::Command(command) => command,
        _ => panic!("not a command error: {err:?}"),
    }
}

/// The server's code in a driver error, looking through the authentication wrapper.
fn server_code(err: &Error) -> Option<i32> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        // The driver keeps its cause as a `Box<Error>`, which is what `source()` exposes.
        let driver = e
            .downcast_ref::<Error>()
            .or_else(|| e.downcast_ref::<Box<Error>>().map(|b| &**b));
        if let Some(driver) = driver {
            if let ErrorKind::Command(command) = driver.kind.as_ref() {
                return Some(command.code);
            }
        }
        current = e.source();
    }
    None
}

#[tokio::test]
async fn scram_sha1_and_sha256_log_in_and_run_commands() {
    let service = Arc::new(TinyMongod::with_items());
    let (mut listener, addr) = start(Arc::clone(&service), true, WireLimits::default()).await;
    for (user, mechanism) in [
        ("sha1", Some("SCRAM-SHA-1")),
        ("sha256", Some("SCRAM-SHA-256")),
        ("both", Some("SCRAM-SHA-1")),
        // Negotiated: saslSupportedMechs and speculative SCRAM-SHA-256 in the handshake.
        ("both", None),
        ("sha1", None),
    ] {
        let client = client(&uri(addr, user, PASSWORD, mechanism)).await;
        ping_and_find(&client).await;
        client.shutdown().await;
    }
    listener.stop().await;
    let opened = service.opened.load(std::sync::atomic::Ordering::SeqCst);
    assert!(opened >= 5, "{opened} connections");
    assert_eq!(
        service.closed.load(std::sync::atomic::Ordering::SeqCst),
        opened
    );
}

#[tokio::test]
async fn a_wrong_password_fails_with_authentication_failed() {
    let (mut listener, addr) = start_tiny(true).await;
    for mechanism in ["SCRAM-SHA-1", "SCRAM-SHA-256"] {
        let client = client(&uri(addr, "both", "wrong", Some(mechanism))).await;
        let err = client
            .database("admin")
            .run_command(doc! { "ping": 1 })
            .await
            .expect_err("a wrong password must not log in");
        assert!(
            matches!(err.kind.as_ref(), ErrorKind::Authentication { message, .. } if message.contains("Authentication failed.")),
            "{mechanism}: {err:?}"
        );
        assert_eq!(server_code(&err), Some(18), "{mechanism}: {err:?}");
    }
    let unknown_user = client(&uri(addr, "nobody", PASSWORD, None)).await;
    let err = unknown_user
        .database("admin")
        .run_command(doc! { "ping": 1 })
        .await
        .expect_err("an unknown user must not log in");
    assert_eq!(server_code(&err), Some(18), "{err:?}");
    listener.stop().await;
}

#[tokio::test]
async fn without_login_only_the_handshake_commands_run() {
    let (mut listener, addr) = start_tiny(true).await;
    let anonymous = client(&anonymous_uri(addr)).await;
    let admin = anonymous.database("admin");
    admin
        .run_command(doc! { "ping": 1 })
        .await
        .expect("ping needs no login");
    let info = admin
        .run_command(doc! { "buildInfo": 1 })
        .await
        .expect("buildInfo needs no login");
    assert_eq!(info.get_str("version").unwrap(), "7.0.12");
    let err = anonymous
        .database("app")
        .collection::<Document>("items")
        .find_one(doc! {})
        .await
        .expect_err("find needs a login");
    assert_eq!(server_code(&err), Some(13), "{err:?}");
    let command = command_error(&err);
    assert_eq!(command.code_name, "Unauthorized");
    assert_eq!(command.message, "command find requires authentication");
    let err = admin
        .run_command(doc! { "frobnicate": 1 })
        .await
        .expect_err("unknown commands fail");
    assert_eq!(
        server_code(&err),
        Some(13),
        "auth is checked before the command is looked up"
    );
    listener.stop().await;
}

#[tokio::test]
async fn without_auth_every_command_reaches_the_service() {
    let (mut listener, addr) = start_tiny(false).await;
    let client = client(&anonymous_uri(addr)).await;
    ping_and_find(&client).await;
    let err = client
        .database("admin")
        .run_command(doc! { "frobnicate": 1 })
        .await
        .expect_err("unknown command");
    let command = command_error(&err);
    assert_eq!(
        (command.code, command.code_name.as_str()),
        (59, "CommandNotFound")
    );
    assert_eq!(command.message, "no such command: 'frobnicate'");
    listener.stop().await;
}

#[tokio::test]
async fn a_stopped_listener_refuses_and_a_restarted_one_serves_on_the_same_port() {
    let (mut listener, addr) = start_tiny(false).await;
    let client = client(&format!(
        "mongodb://{addr}/?directConnection=true&serverSelectionTimeoutMS=2000&heartbeatFrequencyMS=500"
    ))
    .await;
    ping_and_find(&client).await;
    listener.stop().await;
    assert!(!listener.is_running());
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "port closed"
    );
    let err = client
        .database("admin")
        .run_command(doc! { "ping": 1 })
        .await
        .expect_err("server down");
    assert!(
        matches!(
            err.kind.as_ref(),
            ErrorKind::ServerSelection { .. } | ErrorKind::Io(_)
        ),
        "{err:?}"
    );
    assert_eq!(listener.start().await.unwrap(), addr);
    ping_and_find(&client).await;
    listener.stop().await;
}
