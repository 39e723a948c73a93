//! SCRAM-SHA-1 and SCRAM-SHA-256, server side (RFC 5802, RFC 7677, as MongoDB profiles them):
//! stored credentials ([`ScramCredential`]: salt, iteration count, StoredKey, ServerKey — never the
//! password) and one authentication conversation ([`ScramConversation`]). Transport-free; the
//! `auth` module drives it from `saslStart`/`saslContinue`/`speculativeAuthenticate`.
//!
//! MongoDB's profile: for SCRAM-SHA-1 the "password" fed to PBKDF2 is
//! `hex(md5("<user>:mongo:<password>"))`; for SCRAM-SHA-256 it is the SASLprep'd password. Channel
//! binding is never offered (`p=` is refused). Every failure a client can cause is reported as
//! mongod reports it: `AuthenticationFailed` (18) "Authentication failed.", with no hint of which
//! check failed.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use md5::{Digest as _, Md5};
use rand::RngCore;
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::error::{ErrorCode, MongoError};

/// Longest SASL payload accepted in one step; real ones are well under 1 KiB.
pub const MAX_SASL_PAYLOAD_BYTES: usize = 8 * 1024;

/// The smallest iteration count drivers accept (the auth spec's floor).
pub const MIN_ITERATIONS: u32 = 4096;

/// A SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    ScramSha1,
    ScramSha256,
}

impl Mechanism {
    /// The SASL mechanism name, as in `saslSupportedMechs`.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
        }
    }

    pub fn from_name(name: &str) -> Option<Mechanism> {
        match name {
            "SCRAM-SHA-1" => Some(Mechanism::ScramSha1),
            "SCRAM-SHA-256" => Some(Mechanism::ScramSha256),
            _ => None,
        }
    }

    /// mongod's default iteration counts (`scramIterationCount`, `scramSHA256IterationCount`).
    pub fn default_iterations(self) -> u32 {
        match self {
            Mechanism::ScramSha1 => 10_000,
            Mechanism::ScramSha256 => 15_000,
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::ScramSha1 => Sha1::digest(data).to_vec(),
            Mechanism::ScramSha256 => Sha256::digest(data).to_vec(),
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        // HMAC takes keys of any length, so new_from_slice cannot fail; an empty tag would only
        // ever make a proof comparison fail.
        match self {
            Mechanism::ScramSha1 => Hmac::<Sha1>::new_from_slice(key)
                .map(|mac| mac.chain_update(data).finalize().into_bytes().to_vec())
                .unwrap_or_default(),
            Mechanism::ScramSha256 => Hmac::<Sha256>::new_from_slice(key)
                .map(|mac| mac.chain_update(data).finalize().into_bytes().to_vec())
                .unwrap_or_default(),
        }
    }

    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Mechanism::ScramSha1 => {
                let mut out = [0u8; 20];
                pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iterations, &mut out);
                out.to_vec()
            }
            Mechanism::ScramSha256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out.to_vec()
            }
        }
    }

    /// The PBKDF2 input MongoDB uses for this mechanism.
    fn prepared_password(self, username: &str, password: &str) -> Result<String, MongoError> {
        match self {
            Mechanism::ScramSha1 => {
                let digest = Md5::digest(format!("{username}:mongo:{password}").as_bytes());
                Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
            }
            Mechanism::ScramSha256 => stringprep::saslprep(password)
                .map(|p| p.into_owned())
                .map_err(|_| {
                    MongoError::new(ErrorCode::BadValue, "password is not valid under SASLprep")
                }),
        }
    }
}

/// What the server stores for one user and mechanism.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub mechanism: Mechanism,
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys are password equivalents for an offline attack; keep them out of logs.
        f.debug_struct("ScramCredential")
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramCredential {
    /// Derives the stored credential from a password, with a fresh random salt and mongod's
    /// default iteration count.
    pub fn new(mechanism: Mechanism, username: &str, password: &str) -> Result<Self, MongoError> {
        let mut salt = vec![
            0u8;
            if mechanism == Mechanism::ScramSha1 {
                16
            } else {
                28
            }
        ];
        rand::thread_rng().fill_bytes(&mut salt);
        Self::derive(
            mechanism,
            username,
            password,
            &salt,
            mechanism.default_iterations(),
        )
    }

    /// Derives the stored credential with a given salt and iteration count.
    pub fn derive(
        mechanism: Mechanism,
        username: &str,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Result<Self, MongoError> {
        if iterations < MIN_ITERATIONS {
            return Err(MongoError::new(
                ErrorCode::BadValue,
                format!("iteration count must be at least {MIN_ITERATIONS}"),
            ));
        }
        let prepared = mechanism.prepared_password(username, password)?;
        let salted = mechanism.salted_password(prepared.as_bytes(), salt, iterations);
        let client_key = mechanism.hmac(&salted, b"Client Key");
        Ok(ScramCredential {
            mechanism,
            iterations,
            salt: salt.to_vec(),
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(&salted, b"Server Key"),
        })
    }
}

/// The parsed client-first message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    /// The user name with `=2C`/`=3D` decoded (not SASLprep'd: MongoDB looks users up verbatim).
    pub username: String,
    client_nonce: String,
    gs2_header: String,
    bare: String,
}

impl ClientFirst {
    /// Parses `n,,n=<user>,r=<nonce>`.
    pub fn parse(payload: &[u8]) -> Result<ClientFirst, MongoError> {
        let text = sasl_text(payload)?;
        // gs2-header: cbind flag, optional authzid, then the bare message.
        let (flag, rest) = text
            .split_once(',')
            .ok_or_else(MongoError::authentication_failed)?;
        if flag != "n" && flag != "y" {
            return Err(MongoError::authentication_failed());
        }
        let (authzid, bare) = rest
            .split_once(',')
            .ok_or_else(MongoError::authentication_failed)?;
        if !authzid.is_empty() && !authzid.starts_with("a=") {
            return Err(MongoError::authentication_failed());
        }
        let mut attrs = bare.split(',');
        let user = next_attr(&mut attrs, "n=")?;
        let nonce = next_attr(&mut attrs, "r=")?;
        if nonce.is_empty()
            || !nonce
                .bytes()
                .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
        {
            return Err(MongoError::authentication_failed());
        }
        let username = decode_saslname(user)?;
        if username.is_empty() {
            return Err(MongoError::authentication_failed());
        }
        Ok(ClientFirst {
            username,
            client_nonce: nonce.to_owned(),
            gs2_header: format!("{flag},{authzid},"),
            bare: bare.to_owned(),
        })
    }
}

#[derive(Debug)]
enum Stage {
    /// Waiting for client-final.
    Proof,
    /// Proof verified and server-final sent; waiting for the legacy empty last step.
    Empty,
    Done,
}

/// One server-side SCRAM conversation.
#[derive(Debug)]
pub struct ScramConversation {
    credential: ScramCredential,
    first: ClientFirst,
    server_first: String,
    nonce: String,
    skip_empty_exchange: bool,
    stage: Stage,
}

/// What a conversation step answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub payload: Vec<u8>,
    pub done: bool,
}

impl ScramConversation {
    /// Starts a conversation for a parsed client-first message and the user's stored credential;
    /// returns the conversation and the server-first message.
    pub fn start(
        first: ClientFirst,
        credential: ScramCredential,
        skip_empty_exchange: bool,
    ) -> (ScramConversation, Vec<u8>) {
        let mut random = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut random);
        Self::start_with_nonce(first, credential, skip_empty_exchange, &B64.encode(random))
    }

    fn start_with_nonce(
        first: ClientFirst,
        credential: ScramCredential,
        skip_empty_exchange: bool,
        server_nonce: &str,
    ) -> (ScramConversation, Vec<u8>) {
        let nonce = format!("{}{server_nonce}", first.client_nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&credential.salt),
            credential.iterations
        );
        let payload = server_first.clone().into_bytes();
        let conversation = ScramConversation {
            credential,
            first,
            server_first,
            nonce,
            skip_empty_exchange,
            stage: Stage::Proof,
        };
        (conversation, payload)
    }

    /// The user this conversation authenticates.
    pub fn username(&self) -> &str {
        &self.first.username
    }

    pub fn mechanism(&self) -> Mechanism {
        self.credential.mechanism
    }

    /// Advances the conversation with the client's next payload. `done` in the answer means the
    /// user is authenticated; any error ends the conversation.
    pub fn step(&mut self, payload: &[u8]) -> Result<Step, MongoError> {
        match self.stage {
            Stage::Proof => {
                let server_final = self.verify_proof(payload)?;
                self.stage = if self.skip_empty_exchange {
                    Stage::Done
                } else {
                    Stage::Empty
                };
                Ok(Step {
                    payload: server_final.into_bytes(),
                    done: self.skip_empty_exchange,
                })
            }
            Stage::Empty if payload.is_empty() => {
                self.stage = Stage::Done;
                Ok(Step {
                    payload: Vec::new(),
                    done: true,
                })
            }
            Stage::Empty | Stage::Done => Err(MongoError::authentication_failed()),
        }
    }

    fn verify_proof(&self, payload: &[u8]) -> Result<String, MongoError> {
        let text = sasl_text(payload)?;
        let (without_proof, proof_b64) = text
            .rsplit_once(",p=")
            .ok_or_else(MongoError::authentication_failed)?;
        let mut attrs = without_proof.split(',');
        let channel = next_attr(&mut attrs, "c=")?;
        let nonce = next_attr(&mut attrs, "r=")?;
        let expected_channel = B64.encode(self.first.gs2_header.as_bytes());
        if channel != expected_channel
            || nonce.as_bytes().ct_eq(self.nonce.as_bytes()).unwrap_u8() != 1
        {
            return Err(MongoError::authentication_failed());
        }
        let proof = B64
            .decode(proof_b64)
            .map_err(|_| MongoError::authentication_failed())?;
        let mech = self.credential.mechanism;
        let auth_message = format!("{},{},{without_proof}", self.first.bare, self.server_first);
        let client_signature = mech.hmac(&self.credential.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(MongoError::authentication_failed());
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        if mech
            .hash(&client_key)
            .ct_eq(&self.credential.stored_key)
            .unwrap_u8()
            != 1
        {
            return Err(MongoError::authentication_failed());
        }
        let server_signature = mech.hmac(&self.credential.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)))
    }
}

/// The next `k=value` attribute, which must carry `prefix` (RFC 5802 fixes their order).
fn next_attr<'a>(
    attrs: &mut std::str::Split<'a, char>,
    prefix: &str,
) -> Result<&'a str, MongoError> {
    attrs
        .next()
        .and_then(|a| a.strip_prefix(prefix))
        .ok_or_else(MongoError::authentication_failed)
}

fn sasl_text(payload: &[u8]) -> Result<&str, MongoError> {
    if payload.len() > MAX_SASL_PAYLOAD_BYTES {
        return Err(MongoError::authentication_failed());
    }
    std::str::from_utf8(payload).map_err(|_| MongoError::authentication_failed())
}

/// RFC 5802 saslname: `,` and `=` arrive as `=2C` and `=3D`; any other `=` is malformed.
fn decode_saslname(name: &str) -> Result<String, MongoError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3);
        match escape {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(MongoError::authentication_failed()),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
#[path = "scram_tests.rs"]
mod tests;
