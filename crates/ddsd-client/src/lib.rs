//! `ddsd-client`: a small signed client for ddsd's (and the vendor's) RPC API — what a Rust program
//! calling ddsd needs: [`Client::new`]`(endpoint, credentials)`, [`Client::call`]`(action, params)`,
//! the [`API_VERSION`] it speaks. ddsd's CLI, its tools (`ddsd bench`) and its tests use it.
//!
//! ```no_run
//! # async fn f() -> anyhow::Result<()> {
//! use ddsd_client::{Client, Credentials};
//! let client = Client::new("http://127.0.0.1:8080", Credentials::from_data_dir("./data".as_ref())?)?;
//! let regions = client.call("DescribeRegions", &[]).await?;
//! # Ok(()) }
//! ```
//!
//! It signs with `acs_rpc`'s client-side signers exactly like the official SDKs: V3
//! (`ACS3-HMAC-SHA256`, the current Tea SDKs' default: `POST /`, parameters in the query, empty
//! body) or V1 (`HMAC-SHA1`, the legacy core SDK: `POST /?…&Signature=…`). Every request gets a
//! fresh UUID nonce and the current time. Responses are read as JSON; an error envelope becomes
//! [`ClientError::Api`] with the vendor's code, message, HTTP status and RequestId.
//!
//! Plain HTTP only (ddsd binds to loopback by default and the build carries no TLS stack).
//!
//! [`Credentials::resolve`] finds the AccessKey: explicit values, then an explicitly given data
//! directory's `admin-key.json`, then `ALIBABA_CLOUD_ACCESS_KEY_ID` /
//! `ALIBABA_CLOUD_ACCESS_KEY_SECRET`, then `admin-key.json` in the default data directory.

use std::path::Path;
use std::time::Duration;

use acs_rpc::{
    sign_v1_request, sign_v3_request, Credentials as SignCredentials, Format, Secret, V3Request,
};
use anyhow::{bail, Context as _};
use serde_json::Value;

/// The `Version` every request names: the vendor's API version ddsd serves.
pub const API_VERSION: &str = "2015-12-01";
/// The admin AccessKey's file in a ddsd data directory (written by `ddsd serve`, mode 0600).
pub const ADMIN_KEY_FILE: &str = "admin-key.json";
/// The official SDKs' AccessKey variables, read by [`Credentials::resolve`].
pub const ENV_ACCESS_KEY_ID: &str = "ALIBABA_CLOUD_ACCESS_KEY_ID";
pub const ENV_ACCESS_KEY_SECRET: &str = "ALIBABA_CLOUD_ACCESS_KEY_SECRET";

/// Which signature scheme to sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Signature {
    /// `ACS3-HMAC-SHA256` (Authorization header).
    V3,
    /// `HMAC-SHA1` (`Signature` query parameter).
    V1,
}

/// An AccessKey pair.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret: Secret,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Reads `<data_dir>/admin-key.json`.
    pub fn from_data_dir(data_dir: &Path) -> anyhow::Result<Credentials> {
        let path = data_dir.join(ADMIN_KEY_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading the admin key {}", path.display()))?;
        let v: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        match (v["AccessKeyId"].as_str(), v["AccessKeySecret"].as_str()) {
            (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => Ok(Credentials {
                access_key_id: id.to_string(),
                secret: Secret::new(secret),
            }),
            _ => bail!("{} lacks AccessKeyId / AccessKeySecret", path.display()),
        }
    }

    /// See the module docs for the order. `explicit_data_dir` is a data dir the user named;
    /// `default_data_dir` is only consulted when nothing else gave a key.
    pub fn resolve(
        access_key_id: Option<&str>,
        access_key_secret: Option<&str>,
        explicit_data_dir: Option<&Path>,
        default_data_dir: &Path,
    ) -> anyhow::Result<Credentials> {
        match (access_key_id, access_key_secret) {
            (Some(id), Some(secret)) => {
                return Ok(Credentials {
                    access_key_id: id.to_string(),
                    secret: Secret::new(secret),
                })
            }
            (None, None) => {}
            _ => bail!("--access-key-id and --access-key-secret go together"),
        }
        if let Some(dir) = explicit_data_dir {
            return Credentials::from_data_dir(dir);
        }
        let env = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
        match (env(ENV_ACCESS_KEY_ID), env(ENV_ACCESS_KEY_SECRET)) {
            (Some(id), Some(secret)) => {
                return Ok(Credentials {
                    access_key_id: id,
                    secret: Secret::new(secret),
                })
            }
            (None, None) => {}
            _ => bail!("{ENV_ACCESS_KEY_ID} and {ENV_ACCESS_KEY_SECRET} go together"),
        }
        Credentials::from_data_dir(default_data_dir).context(
            "no AccessKey: pass --access-key-id/--access-key-secret, --data-dir, or set ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET",
        )
    }
}

/// What went wrong with a call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error envelope.
    #[error("{code} (HTTP {status}): {message} [RequestId {request_id}]")]
    Api {
        status: u16,
        code: String,
        message: String,
        request_id: String,
    },
    #[error("request failed: {0}")]
    Transport(String),
    #[error("unreadable response (HTTP {status}): {detail}")]
    Decode { status: u16, detail: String },
}

impl ClientError {
    /// The vendor error code, for an API error.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A signed RPC client for one endpoint. Cheap to clone (shares the connection pool).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    /// `host[:port]` as sent in the `host` header (V3 signs it).
    host: String,
    credentials: Credentials,
    signature: Signature,
    /// The `Version` each request names ([`API_VERSION`] unless [`Client::for_version`] changed it).
    version: &'static str,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base_url)
            .field("credentials", &self.credentials)
            .field("signature", &self.signature)
            .finish()
    }
}

/// `http://host:port` (a bare `host:port` means HTTP); no path, query or TLS.
fn parse_endpoint(endpoint: &str) -> anyhow::Result<(String, String)> {
    let rest = if let Some(rest) = endpoint.strip_prefix("http://") {
        rest
    } else if endpoint.starts_with("https://") {
        bail!("endpoint {endpoint}: this build speaks plain HTTP only");
    } else if endpoint.contains("://") {
        bail!("endpoint {endpoint}: only http:// is supported");
    } else {
        endpoint
    };
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains(['/', '?', '#', ' ', '@']) {
        bail!("endpoint {endpoint} must look like http://HOST:PORT");
    }
    Ok((format!("http://{host}"), host.to_string()))
}

impl Client {
    /// A client for `endpoint` (`http://HOST:PORT`) signing with V3, the current SDKs' default.
    pub fn new(endpoint: &str, credentials: Credentials) -> anyhow::Result<Client> {
        Client::with_signature(endpoint, credentials, Signature::V3)
    }

    /// A client for `endpoint` signing with the given scheme.
    pub fn with_signature(
        endpoint: &str,
        credentials: Credentials,
        signature: Signature,
    ) -> anyhow::Result<Client> {
        Client::build(
            endpoint,
            credentials,
            signature,
            API_VERSION,
            Duration::from_secs(60),
            256,
        )
    }

    /// A V3 client for another API served the same way (the host agent's), naming `version` and
    /// giving up on a request after `timeout`.
    pub fn for_version(
        endpoint: &str,
        credentials: Credentials,
        version: &'static str,
        timeout: Duration,
    ) -> anyhow::Result<Client> {
        Client::build(endpoint, credentials, Signature::V3, version, timeout, 16)
    }

    fn build(
        endpoint: &str,
        credentials: Credentials,
        signature: Signature,
        version: &'static str,
        timeout: Duration,
        idle_per_host: usize,
    ) -> anyhow::Result<Client> {
        let (base_url, host) = parse_endpoint(endpoint)?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_max_idle_per_host(idle_per_host)
            .build()
            .context("building the HTTP client")?;
        Ok(Client {
            http,
            base_url,
            host,
            credentials,
            signature,
            version,
        })
    }

    /// The AccessKeyId it signs as.
    pub fn access_key_id(&self) -> &str {
        &self.credentials.access_key_id
    }

    /// Calls `action` with `params` (business parameters) and returns the JSON response body.
    pub async fn call(&self, action: &str, params: &[(&str, &str)]) -> Result<Value, ClientError> {
        let raw = self.call_raw(action, params, Format::Json).await?;
        let status = raw.status;
        let body: Value = serde_json::from_slice(&raw.body).map_err(|e| ClientError::Decode {
            status,
            detail: format!(
                "{e}: {}",
                String::from_utf8_lossy(&raw.body[..raw.body.len().min(200)])
            ),
        })?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let field = |k: &str| body[k].as_str().unwrap_or_default().to_string();
        if body.get("Code").is_none() {
            return Err(ClientError::Decode {
                status,
                detail: "error response without Code".into(),
            });
        }
        Err(ClientError::Api {
            status,
            code: field("Code"),
            message: field("Message"),
            request_id: field("RequestId"),
        })
    }

    /// Calls `action` and hands back the response as sent, in `format` (V1 sends `Format`; V3 asks
    /// with the `accept` header). Only a transport failure is an error.
    pub async fn call_raw(
        &self,
        action: &str,
        params: &[(&str, &str)],
        format: Format,
    ) -> Result<RawResponse, ClientError> {
        let nonce = uuid::Uuid::new_v4().to_string();
        let creds = SignCredentials {
            access_key_id: &self.credentials.access_key_id,
            secret: &self.credentials.secret,
            nonce: &nonce,
            timestamp: time::OffsetDateTime::now_utc(),
        };
        let (format_param, accept) = match format {
            Format::Json => ("JSON", "application/json"),
            Format::Xml => ("XML", "application/xml"),
        };
        let request = match self.signature {
            Signature::V1 => {
                let mut all: Vec<(&str, &str)> = vec![
                    ("Action", action),
                    ("Version", self.version),
                    ("Format", format_param),
                ];
                all.extend_from_slice(params);
                let query = sign_v1_request("POST", &all, &creds);
                self.http
                    .post(format!("{}/?{query}", self.base_url))
                    .header("accept", accept)
            }
            Signature::V3 => {
                let headers = [("accept", accept)];
                let signed = sign_v3_request(
                    &V3Request {
                        method: "POST",
                        host: &self.host,
                        query: params,
                        headers: &headers,
                        body: b"",
                        action,
                        version: self.version,
                    },
                    &creds,
                );
                let mut builder = self
                    .http
                    .post(format!("{}/?{}", self.base_url, signed.query));
                for (name, value) in &signed.headers {
                    builder = builder.header(name.as_str(), value.as_str());
                }
                builder
            }
        };
        let response = request
            .send()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = response
            .bytes()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?
            .to_vec();
        Ok(RawResponse {
            status,
            content_type,
            body,
        })
    }
}

/// A response as it came off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoint("http://127.0.0.1:8080/").unwrap(),
            ("http://127.0.0.1:8080".into(), "127.0.0.1:8080".into())
        );
        assert_eq!(parse_endpoint("localhost:1").unwrap().1, "localhost:1");
        for bad in [
            "https://x",
            "ftp://x",
            "http://",
            "http://a/b",
            "http://u@h",
        ] {
            let e = parse_endpoint(bad).unwrap_err().to_string();
            assert!(
                e.contains("plain HTTP only")
                    || e.contains("only http://")
                    || e.contains("must look like http://HOST:PORT"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn credentials_order() {
        // A private directory of this test, removed at the end.
        let dir = std::env::temp_dir().join(format!("ddsd-client-creds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(ADMIN_KEY_FILE),
            r#"{"AccessKeyId":"LTAIfile","AccessKeySecret":"s"}"#,
        )
        .unwrap();
        let c = Credentials::resolve(Some("a"), Some("b"), Some(&dir), &dir).unwrap();
        assert_eq!(c.access_key_id, "a");
        let c = Credentials::resolve(None, None, Some(&dir), Path::new("/nonexistent")).unwrap();
        assert_eq!(c.access_key_id, "LTAIfile");
        let e = Credentials::resolve(Some("a"), None, None, &dir).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--access-key-id and --access-key-secret go together"
        );
        let e = Credentials::resolve(None, None, Some(Path::new("/nonexistent")), &dir)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "reading the admin key /nonexistent/admin-key.json");
        assert!(!format!("{c:?}").contains("\"s\""));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
