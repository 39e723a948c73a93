use super::*;

/// Runs one full conversation with a fixed server nonce and returns the server-first and
/// server-final messages.
fn converse(
    mech: Mechanism,
    password: &str,
    salt_b64: &str,
    iterations: u32,
    client_first: &str,
    server_nonce: &str,
    client_final: &str,
) -> Result<(String, String), MongoError> {
    let salt = B64.decode(salt_b64).unwrap();
    let first = ClientFirst::parse(client_first.as_bytes())?;
    let credential = ScramCredential::derive(mech, &first.username, password, &salt, iterations)?;
    let (mut conversation, server_first) =
        ScramConversation::start_with_nonce(first, credential, true, server_nonce);
    let step = conversation.step(client_final.as_bytes())?;
    assert!(step.done);
    Ok((
        String::from_utf8(server_first).unwrap(),
        String::from_utf8(step.payload).unwrap(),
    ))
}

const SHA256_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const SHA1_FINAL: &str = "c=biws,r=fyko+d2lbbFgONRv9qkxdawLHo+Vgk7qvUOKUwuWLIWg4l/9SraGMHEE,p=MC2T8BvbmWRckDw8oWl5IVghwCY=";

fn sha256_vector(client_final: &str) -> Result<(String, String), MongoError> {
    converse(
        Mechanism::ScramSha256,
        "pencil",
        "W22ZaJ0SNY7soEsUEjb6gQ==",
        4096,
        "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
        "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        client_final,
    )
}

fn sha1_vector(password: &str, client_final: &str) -> Result<(String, String), MongoError> {
    converse(
        Mechanism::ScramSha1,
        password,
        "rQ9ZY3MntBeuP3E1TDVC4w==",
        10_000,
        "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
        "Ho+Vgk7qvUOKUwuWLIWg4l/9SraGMHEE",
        client_final,
    )
}

#[test]
fn rfc7677_sha256_vector() {
    let (server_first, server_final) = sha256_vector(SHA256_FINAL).unwrap();
    assert_eq!(
        server_first,
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    );
    assert_eq!(
        server_final,
        "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    );
}

#[test]
fn auth_spec_sha1_vector_uses_the_mongo_password_digest() {
    let (server_first, server_final) = sha1_vector("pencil", SHA1_FINAL).unwrap();
    assert_eq!(
        server_first,
        "r=fyko+d2lbbFgONRv9qkxdawLHo+Vgk7qvUOKUwuWLIWg4l/9SraGMHEE,s=rQ9ZY3MntBeuP3E1TDVC4w==,i=10000"
    );
    assert_eq!(server_final, "v=UMWeI25JD1yNYZRMpZ4VHvhZ9e0=");
}

#[test]
fn a_wrong_password_is_authentication_failed() {
    assert_eq!(
        sha1_vector("pencils", SHA1_FINAL).unwrap_err().code,
        ErrorCode::AuthenticationFailed
    );
    let tampered = SHA256_FINAL.replace("p=dHzb", "p=dHzc");
    let err = sha256_vector(&tampered).unwrap_err();
    assert_eq!(err.code, ErrorCode::AuthenticationFailed);
    assert_eq!(err.errmsg, "Authentication failed.");
}

#[test]
fn a_foreign_nonce_or_channel_binding_is_refused() {
    let other_nonce = SHA256_FINAL.replace("k0,p=", "k1,p=");
    assert_eq!(
        sha256_vector(&other_nonce).unwrap_err().code,
        ErrorCode::AuthenticationFailed
    );
    let bound = SHA256_FINAL.replace("c=biws", "c=eSws");
    assert_eq!(
        sha256_vector(&bound).unwrap_err().code,
        ErrorCode::AuthenticationFailed
    );
    assert_eq!(
        sha256_vector("garbage").unwrap_err().code,
        ErrorCode::AuthenticationFailed
    );
}

#[test]
fn client_first_parsing() {
    let first = ClientFirst::parse(b"n,,n=a=2Cb=3Dc,r=xyz").unwrap();
    assert_eq!(first.username, "a,b=c");
    for bad in [
        &b"p=tls-unique,,n=user,r=x"[..],
        b"n,,n=user",
        b"n,,n=,r=x",
        b"n,,n=a=2Xb,r=x",
        b"n,,r=x,n=user",
        b"n,,n=user,r=",
        b"\xff\xfe",
    ] {
        assert_eq!(
            ClientFirst::parse(bad).unwrap_err().code,
            ErrorCode::AuthenticationFailed,
            "{bad:?}"
        );
    }
    let huge = vec![b'a'; MAX_SASL_PAYLOAD_BYTES + 1];
    assert_eq!(
        ClientFirst::parse(&huge).unwrap_err().code,
        ErrorCode::AuthenticationFailed
    );
}

#[test]
fn legacy_conversation_takes_an_empty_last_step() {
    let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    let first = ClientFirst::parse(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").unwrap();
    let credential =
        ScramCredential::derive(Mechanism::ScramSha256, "user", "pencil", &salt, 4096).unwrap();
    let (mut conversation, _) = ScramConversation::start_with_nonce(
        first,
        credential,
        false,
        "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
    );
    let proof_step = conversation.step(SHA256_FINAL.as_bytes()).unwrap();
    assert!(!proof_step.done);
    let last = conversation.step(b"").unwrap();
    assert!(last.done && last.payload.is_empty());
    assert_eq!(
        conversation.step(b"").unwrap_err().code,
        ErrorCode::AuthenticationFailed
    );
}

#[test]
fn credentials_refuse_low_iteration_counts_and_hide_keys() {
    let err = ScramCredential::derive(Mechanism::ScramSha256, "u", "p", b"salt", 1000).unwrap_err();
    assert_eq!(err.code, ErrorCode::BadValue);
    let credential = ScramCredential::new(Mechanism::ScramSha1, "u", "p").unwrap();
    assert_eq!(credential.iterations, 10_000);
    let shown = format!("{credential:?}");
    assert!(
        !shown.contains("stored_key") && !shown.contains("server_key"),
        "{shown}"
    );
}
