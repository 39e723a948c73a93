//! `ddsd serve` as a real process: the contract in notes/contract-serve.md, DescribeRegions over
//! V1 (JSON and XML) and V3, and every kind of bad request answered with the exact code and
//! status in the requested format — never a 5xx.

mod common;

use std::io::{BufRead as _, BufReader, Read as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use acs_rpc::{sign_v1_request, sign_v3_request, Credentials, Format, Secret, V3Request};
use serde_json::Value;
use time::OffsetDateTime;

const START_TIMEOUT: Duration = Duration::from_secs(30);
const XML_DECL: &str = "<?xml version='1.0' encoding='UTF-8'?>";

/// One running `ddsd serve`.
struct Server {
    child: Child,
    base: String,
    host: String,
    stdout_lines: Vec<String>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Server {
    /// Starts ddsd with a config that adds `testid`/`testsecret`, data under `root/data`.
    fn start(root: &Path, extra_args: &[&str], env: &[(&str, &str)]) -> Server {
        Self::start_with(root, "", extra_args, env)
    }

    /// Like [`Server::start`], with `extra_toml` added at the top of the config file.
    fn start_with(
        root: &Path,
        extra_toml: &str,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let config = root.join("ddsd.toml");
        std::fs::write(
            &config,
            format!(
                "{extra_toml}\nregion = \"cn-hangzhou\"\n[[access_keys]]\nid = \"testid\"\nsecret = \"testsecret\"\n"
            ),
        )
        .unwrap();
        let data_dir = root.join("data");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ddsd"));
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(extra_args)
            .env_remove("DDSD_LISTEN")
            .env_remove("DDSD_LOG_FORMAT")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if !extra_args.contains(&"--listen") && !env.iter().any(|(k, _)| *k == "DDSD_LISTEN") {
            cmd.arg("--listen").arg("127.0.0.1:0");
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn ddsd");

        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut err_pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let (tx, rx) = mpsc::channel();
        let out_pipe = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out_pipe).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });

        let deadline = Instant::now() + START_TIMEOUT;
        let mut stdout_lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "no listening line; stdout {stdout_lines:?}; stderr {}",
                    String::from_utf8_lossy(&stderr.lock().unwrap())
                )
            });
            stdout_lines.push(line.clone());
            if let Some(addr) = line.strip_prefix("ddsd listening on http://") {
                let host = addr.to_string();
                assert!(host.starts_with("127.0.0.1:"), "{line}");
                return Server {
                    child,
                    base: format!("http://{host}"),
                    host,
                    stdout_lines,
                    stderr,
                };
            }
        }
    }

    fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Sends SIGTERM.
    fn terminate(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGTERM, then wait for the exit.
    fn stop(self) -> (ExitStatus, String) {
        self.terminate();
        self.wait_exit()
    }

    fn wait_exit(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let exit = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "ddsd did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        // Give the stderr reader a moment to drain the pipe after exit.
        std::thread::sleep(Duration::from_millis(100));
        (exit, self.stderr_text())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A V1 query string signed now (unless `at` says otherwise).
fn v1(
    params: &[(&str, &str)],
    key: (&str, &str),
    at: Option<OffsetDateTime>,
    nonce_value: &str,
) -> String {
    let secret = Secret::new(key.1);
    let creds = Credentials {
        access_key_id: key.0,
        secret: &secret,
        nonce: nonce_value,
        timestamp: at.unwrap_or_else(OffsetDateTime::now_utc),
    };
    sign_v1_request("GET", params, &creds)
}

const TEST_KEY: (&str, &str) = ("testid", "testsecret");

fn regions_params(format: Option<&'static str>) -> Vec<(&'static str, &'static str)> {
    let mut p = vec![("Action", "DescribeRegions"), ("Version", "2015-12-01")];
    if let Some(f) = format {
        p.push(("Format", f));
    }
    p
}

/// The fields of an answer, whatever its format.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    request_id_header: String,
    body: String,
}

impl Answer {
    async fn from(resp: reqwest::Response) -> Answer {
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let content_type = header("content-type");
        let request_id_header = header("x-acs-request-id");
        let body = resp.text().await.unwrap();
        Answer {
            status,
            content_type,
            request_id_header,
            body,
        }
    }

    fn format(&self) -> Format {
        match self.content_type.as_str() {
            "application/json;charset=utf-8" => Format::Json,
            "text/xml;charset=utf-8" => Format::Xml,
            other => panic!("unexpected content type {other:?}: {self:?}"),
        }
    }

    /// Text of the first `<tag>…</tag>` (XML) or the top-level field (JSON).
    fn field(&self, name: &str) -> Option<String> {
        match self.format() {
            Format::Json => {
                let v: Value = serde_json::from_str(&self.body).unwrap();
                v.get(name).and_then(Value::as_str).map(str::to_string)
            }
            Format::Xml => {
                let open = format!("<{name}>");
                let start = self.body.find(&open)? + open.len();
                let end = self.body[start..].find(&format!("</{name}>"))? + start;
                let text = &self.body[start..end];
                Some(
                    text.replace("&lt;", "<")
                        .replace("&gt;", ">")
                        .replace("&quot;", "\"")
                        .replace("&apos;", "'")
                        .replace("&amp;", "&"),
                )
            }
        }
    }

    /// Asserts the exact error envelope and returns its message.
    fn expect_error(&self, code: &str, status: u16, format: Format, host: &str) -> String {
        assert_eq!(
            (self.status, self.field("Code").as_deref()),
            (status, Some(code)),
            "{self:?}"
        );
        assert_eq!(self.format(), format, "{self:?}");
        if format == Format::Xml {
            assert!(
                self.body.starts_with(&format!("{XML_DECL}<Error>")),
                "{self:?}"
            );
        }
        assert_eq!(
            self.field("RequestId").as_deref(),
            Some(self.request_id_header.as_str()),
            "{self:?}"
        );
        assert_eq!(self.field("HostId").as_deref(), Some(host), "{self:?}");
        assert!(self.field("Recommend").is_some(), "{self:?}");
        self.field("Message").unwrap()
    }

    fn json(&self) -> Value {
        assert_eq!(self.format(), Format::Json, "{self:?}");
        serde_json::from_str(&self.body).unwrap()
    }
}

async fn get(server: &Server, query: &str) -> Answer {
    let resp = reqwest::get(format!("{}/?{query}", server.base))
        .await
        .unwrap();
    Answer::from(resp).await
}

fn is_request_id(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok_and(|u| u.get_version_num() == 4)
        && s.len() == 36
        && s == s.to_ascii_uppercase()
}

#[tokio::test]
async fn describe_regions_v1_json_and_xml() {
    let root = common::TempDir::new("regions-v1");
    let server = Server::start(&root, &[], &[]);

    let a = get(
        &server,
        &v1(&regions_params(Some("JSON")), TEST_KEY, None, &nonce()),
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert!(is_request_id(&a.request_id_header), "{a:?}");
    let v = a.json();
    assert_eq!(v["RequestId"], a.request_id_header.as_str());
    let regions = v["Regions"]["DdsRegion"].as_array().unwrap();
    assert!(regions.len() >= 9);
    let hz = regions
        .iter()
        .find(|r| r["RegionId"] == "cn-hangzhou")
        .unwrap();
    assert_eq!(hz["EndPoint"], "mongodb.aliyuncs.com");
    assert_eq!(hz["RegionName"], "华东1（杭州）");
    assert!(hz["Zones"]["Zone"]
        .as_array()
        .unwrap()
        .iter()
        .any(|z| z["ZoneId"] == "cn-hangzhou-h"));

    // No Format: the vendor's default, XML, with the list as repeated elements.
    let a = get(
        &server,
        &v1(&regions_params(None), TEST_KEY, None, &nonce()),
    )
    .await;
    assert_eq!((a.status, a.format()), (200, Format::Xml), "{a:?}");
    assert!(a.body.starts_with(&format!(
        "{XML_DECL}<DescribeRegionsResponse><RequestId>{}</RequestId>",
        a.request_id_header
    )));
    assert_eq!(a.body.matches("<DdsRegion>").count(), regions.len());
    assert!(a.body.contains("<RegionId>cn-shanghai</RegionId>"));
    assert!(a
        .body
        .contains("<Zones><Zone><VpcEnabled>true</VpcEnabled>"));

    // Lower-case format, filter and English names.
    let mut p = regions_params(Some("xml"));
    p.extend([("RegionId", "eu-central-1"), ("AcceptLanguage", "en")]);
    let a = get(&server, &v1(&p, TEST_KEY, None, &nonce())).await;
    assert_eq!((a.status, a.format()), (200, Format::Xml), "{a:?}");
    assert_eq!(a.body.matches("<DdsRegion>").count(), 1);
    assert!(
        a.body
            .contains("<RegionName>Germany (Frankfurt)</RegionName>"),
        "{a:?}"
    );

    // A POST form body with every parameter, as @alicloud/pop-core sends it.
    let body = {
        let secret = Secret::new("testsecret");
        let n = nonce();
        let creds = Credentials {
            access_key_id: "testid",
            secret: &secret,
            nonce: &n,
            timestamp: OffsetDateTime::now_utc(),
        };
        sign_v1_request("POST", &regions_params(Some("JSON")), &creds)
    };
    let resp = reqwest::Client::new()
        .post(format!("{}/", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let a = Answer::from(resp).await;
    assert_eq!(a.status, 200, "{a:?}");
    let (exit, _) = server.stop();
    assert!(exit.success(), "{exit:?}");
}

/// A V3 request to send; [`V3Call::regions`] is a valid DescribeRegions call to adjust.
struct V3Call<'a> {
    query: &'a [(&'a str, &'a str)],
    extra: &'a [(&'a str, &'a str)],
    body: &'a [u8],
    action: &'a str,
    version: &'a str,
    secret: &'a str,
    /// Sent instead of `body` after signing `body`.
    tamper_body: Option<&'a [u8]>,
}

impl V3Call<'static> {
    fn regions() -> Self {
        V3Call {
            query: &[],
            extra: &[],
            body: b"",
            action: "DescribeRegions",
            version: "2015-12-01",
            secret: "testsecret",
            tamper_body: None,
        }
    }
}

async fn v3_post(server: &Server, call: V3Call<'_>) -> Answer {
    let V3Call {
        query,
        extra,
        body,
        action,
        version,
        secret,
        tamper_body,
    } = call;
    let secret = Secret::new(secret);
    let n = nonce();
    let creds = Credentials {
        access_key_id: "testid",
        secret: &secret,
        nonce: &n,
        timestamp: OffsetDateTime::now_utc(),
    };
    let signed = sign_v3_request(
        &V3Request {
            method: "POST",
            host: &server.host,
            query,
            headers: extra,
            body,
            action,
            version,
        },
        &creds,
    );
    let mut req = reqwest::Client::new().post(format!("{}/?{}", server.base, signed.query));
    for (k, v) in &signed.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = req
        .body(tamper_body.unwrap_or(body).to_vec())
        .send()
        .await
        .unwrap();
    Answer::from(resp).await
}

#[tokio::test]
async fn describe_regions_v3() {
    let root = common::TempDir::new("regions-v3");
    let server = Server::start(&root, &[], &[]);
    let accept = [("accept", "application/json")];
    let a = v3_post(
        &server,
        V3Call {
            query: &[("RegionId", "cn-shanghai")],
            extra: &accept,
            ..V3Call::regions()
        },
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    let v = a.json();
    assert_eq!(v["Regions"]["DdsRegion"].as_array().unwrap().len(), 1);
    assert_eq!(v["Regions"]["DdsRegion"][0]["RegionId"], "cn-shanghai");

    // Business parameters in a signed form body (covered by x-acs-content-sha256).
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let a = v3_post(
        &server,
        V3Call {
            extra: &form,
            body: b"AcceptLanguage=en&RegionId=us-east-1",
            ..V3Call::regions()
        },
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(
        a.json()["Regions"]["DdsRegion"][0]["RegionName"],
        "US (Virginia)"
    );

    // accept: application/xml → XML.
    let a = v3_post(
        &server,
        V3Call {
            extra: &[("accept", "application/xml")],
            ..V3Call::regions()
        },
    )
    .await;
    assert_eq!((a.status, a.format()), (200, Format::Xml), "{a:?}");
    assert!(server.stop().0.success());
}

#[tokio::test]
async fn every_bad_request_gets_the_exact_error_in_the_requested_format() {
    let root = common::TempDir::new("bad");
    let server = Server::start(&root, &[], &[]);
    let host = server.host.clone();
    let client = reqwest::Client::new();

    for (fmt_param, format) in [("JSON", Format::Json), ("XML", Format::Xml)] {
        let p = regions_params(Some(fmt_param));

        // Wrong secret: the V1 message carries the server's string to sign after a colon.
        let a = get(&server, &v1(&p, ("testid", "wrong-secret"), None, &nonce())).await;
        let msg = a.expect_error("SignatureDoesNotMatch", 400, format, &host);
        assert!(msg.starts_with("Specified signature is not matched with our calculation. server string to sign is:GET&%2F&"), "{msg}");

        // Unknown AccessKeyId.
        let a = get(
            &server,
            &v1(&p, ("LTAInosuchkey00000000000", "x"), None, &nonce()),
        )
        .await;
        a.expect_error("InvalidAccessKeyId.NotFound", 404, format, &host);

        // Replayed nonce.
        let q = v1(&p, TEST_KEY, None, &nonce());
        assert_eq!(get(&server, &q).await.status, 200);
        get(&server, &q)
            .await
            .expect_error("SignatureNonceUsed", 400, format, &host);

        // Stale (both directions) and malformed timestamps.
        for minutes in [-16, 16] {
            let at = OffsetDateTime::now_utc() + time::Duration::minutes(minutes);
            let a = get(&server, &v1(&p, TEST_KEY, Some(at), &nonce())).await;
            a.expect_error("InvalidTimeStamp.Expired", 400, format, &host);
        }
        let q = v1(&p, TEST_KEY, None, &nonce());
        let ts_start = q.find("Timestamp=").unwrap() + "Timestamp=".len();
        let ts_end = q[ts_start..].find('&').map_or(q.len(), |e| ts_start + e);
        let malformed = format!(
            "{}2026-11-26T12%3A00%3A00%2B08%3A00{}",
            &q[..ts_start],
            &q[ts_end..]
        );
        get(&server, &malformed)
            .await
            .expect_error("InvalidTimeStamp.Format", 400, format, &host);

        // Missing Signature.
        let q = v1(&p, TEST_KEY, None, &nonce());
        let unsigned = q.rsplit_once("&Signature=").unwrap().0;
        let msg = get(&server, unsigned)
            .await
            .expect_error("MissingSignature", 400, format, &host);
        assert_eq!(msg, "Signature is mandatory for this action.");

        // Malformed percent-encoding, and a parameter given twice.
        let q = v1(&p, TEST_KEY, None, &nonce());
        let msg = get(&server, &format!("{q}&AcceptLanguage=%E4%ZZ"))
            .await
            .expect_error("InvalidParameter", 400, format, &host);
        assert!(msg.contains("AcceptLanguage"), "{msg}");
        let msg = get(&server, &format!("{q}&Version=2015-12-01"))
            .await
            .expect_error("InvalidParameter", 400, format, &host);
        assert!(
            msg.contains("\"Version\"") && msg.contains("more than once"),
            "{msg}"
        );

        // Oversized body, declared just over the limit and far over it (chunked: see
        // oversized_chunked_body_gets_the_envelope). The client must get the envelope, not a
        // broken pipe.
        for size in [1024 * 1024, 6 * 1024 * 1024] {
            let q = v1(&p, TEST_KEY, None, &nonce());
            let resp = client
                .post(format!("{}/?{q}", server.base))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("Pad={}", "a".repeat(size)))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{size} bytes: {e:?}"));
            Answer::from(resp)
                .await
                .expect_error("RequestEntityTooLarge", 413, format, &host);
        }

        // Unknown action, wrong version.
        let a = get(
            &server,
            &v1(
                &[
                    ("Action", "NoSuchAction"),
                    ("Version", "2015-12-01"),
                    ("Format", fmt_param),
                ],
                TEST_KEY,
                None,
                &nonce(),
            ),
        )
        .await;
        a.expect_error("InvalidAction.NotFound", 404, format, &host);
        let a = get(
            &server,
            &v1(
                &[
                    ("Action", "DescribeRegions"),
                    ("Version", "2014-05-26"),
                    ("Format", fmt_param),
                ],
                TEST_KEY,
                None,
                &nonce(),
            ),
        )
        .await;
        a.expect_error("InvalidVersion", 400, format, &host);

        // Handler-level error: unknown region filter.
        let mut bad_region = p.clone();
        bad_region.push(("RegionId", "mars-north-1"));
        get(&server, &v1(&bad_region, TEST_KEY, None, &nonce()))
            .await
            .expect_error("InvalidRegion.NotFound", 404, format, &host);

        // Other methods and paths.
        let q = v1(&p, TEST_KEY, None, &nonce());
        let resp = client
            .put(format!("{}/?{q}", server.base))
            .send()
            .await
            .unwrap();
        Answer::from(resp)
            .await
            .expect_error("UnsupportedHTTPMethod", 403, format, &host);
        let resp = client
            .get(format!("{}/v1/regions?{q}", server.base))
            .send()
            .await
            .unwrap();
        Answer::from(resp)
            .await
            .expect_error("InvalidAction.NotFound", 404, format, &host);
    }

    // Without any Format the V1 default (XML) is used for errors too.
    get(&server, "Action=DescribeRegions").await.expect_error(
        "MissingSignature",
        400,
        Format::Xml,
        &host,
    );
    get(&server, "Format=JSON&Format=XML").await.expect_error(
        "InvalidParameter",
        400,
        Format::Json,
        &host,
    );

    // V3: body not matching x-acs-content-sha256, wrong secret, unknown action, wrong version.
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let a = v3_post(
        &server,
        V3Call {
            extra: &form,
            body: b"RegionId=cn-hangzhou",
            tamper_body: Some(b"RegionId=cn-beijing"),
            ..V3Call::regions()
        },
    )
    .await;
    let msg = a.expect_error("SignatureDoesNotMatch", 400, Format::Json, &host);
    assert!(msg.contains("x-acs-content-sha256"), "{msg}");
    let a = v3_post(
        &server,
        V3Call {
            secret: "wrong",
            ..V3Call::regions()
        },
    )
    .await;
    a.expect_error("SignatureDoesNotMatch", 400, Format::Json, &host);
    let a = v3_post(
        &server,
        V3Call {
            action: "NoSuchAction",
            ..V3Call::regions()
        },
    )
    .await;
    a.expect_error("InvalidAction.NotFound", 404, Format::Json, &host);
    let a = v3_post(
        &server,
        V3Call {
            extra: &[("accept", "application/xml")],
            version: "2014-05-26",
            ..V3Call::regions()
        },
    )
    .await;
    a.expect_error("InvalidVersion", 400, Format::Xml, &host);

    // Still serving after all that.
    assert_eq!(
        get(
            &server,
            &v1(&regions_params(Some("JSON")), TEST_KEY, None, &nonce())
        )
        .await
        .status,
        200
    );
    let (exit, logs) = server.stop();
    assert!(exit.success(), "{exit:?}");
    assert!(!logs.contains("panicked"), "{logs}");
}

#[tokio::test]
async fn admin_key_is_created_once_private_and_printed_once() {
    let root = common::TempDir::new("admin");
    let server = Server::start(&root, &[], &[]);
    let lines = server.stdout_lines.clone();
    assert_eq!(lines.len(), 3, "{lines:?}");
    let id = lines[0]
        .strip_prefix("AccessKeyId: ")
        .expect("first line is the id")
        .to_string();
    let secret = lines[1]
        .strip_prefix("AccessKeySecret: ")
        .expect("second line is the secret")
        .to_string();
    assert!(
        id.starts_with("LTAI") && id.len() == 24 && id.chars().all(|c| c.is_ascii_alphanumeric()),
        "{id}"
    );
    assert!(
        secret.len() == 30 && secret.chars().all(|c| c.is_ascii_alphanumeric()),
        "{secret}"
    );

    let data = root.join("data");
    let file = data.join("admin-key.json");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(
        (
            stored["AccessKeyId"].as_str(),
            stored["AccessKeySecret"].as_str()
        ),
        (Some(id.as_str()), Some(secret.as_str()))
    );

    // The printed pair signs requests.
    let a = get(
        &server,
        &v1(
            &regions_params(Some("JSON")),
            (&id, &secret),
            None,
            &nonce(),
        ),
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    let (exit, logs) = server.stop();
    assert!(exit.success(), "{exit:?}\n{logs}");
    assert!(!logs.contains(&secret), "the admin secret reached the logs");

    // Second start: same key, nothing but the listening line.
    let server = Server::start(&root, &[], &[]);
    assert_eq!(server.stdout_lines.len(), 1, "{:?}", server.stdout_lines);
    assert!(server.stdout_lines[0].starts_with("ddsd listening on http://127.0.0.1:"));
    let a = get(
        &server,
        &v1(
            &regions_params(Some("JSON")),
            (&id, &secret),
            None,
            &nonce(),
        ),
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    let reread: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(reread, stored, "the key file is left as it was");
    assert!(server.stop().0.success());
}

#[tokio::test]
async fn secrets_never_reach_the_logs_and_every_request_line_has_its_request_id() {
    let root = common::TempDir::new("logs");
    let server = Server::start(&root, &[], &[("RUST_LOG", "debug")]);
    let admin_secret = server.stdout_lines[1]
        .strip_prefix("AccessKeySecret: ")
        .unwrap()
        .to_string();

    let good_query = v1(&regions_params(Some("JSON")), TEST_KEY, None, &nonce());
    let good = get(&server, &good_query).await;
    assert_eq!(good.status, 200);
    let bad = get(
        &server,
        &v1(
            &regions_params(Some("JSON")),
            ("testid", "a-wrong-secret"),
            None,
            &nonce(),
        ),
    )
    .await;
    assert_eq!(bad.status, 400);
    let v3 = v3_post(&server, V3Call::regions()).await;
    assert_eq!(v3.status, 200);
    let v3_bad = v3_post(
        &server,
        V3Call {
            secret: "nope",
            ..V3Call::regions()
        },
    )
    .await;
    assert_eq!(v3_bad.status, 400);

    let (exit, logs) = server.stop();
    assert!(exit.success());
    for secret in ["testsecret", admin_secret.as_str(), "a-wrong-secret"] {
        assert!(
            !logs.contains(secret),
            "{secret:?} appears in the logs:\n{logs}"
        );
    }
    let signature = good_query.rsplit_once("Signature=").unwrap().1;
    assert!(
        !logs.contains(signature),
        "a request signature appears in the logs"
    );
    for a in [&good, &bad, &v3, &v3_bad] {
        let id = &a.request_id_header;
        assert!(is_request_id(id), "{a:?}");
        let lines: Vec<&str> = logs.lines().filter(|l| l.contains(id.as_str())).collect();
        assert!(
            lines.iter().any(|l| l.contains("request done")),
            "no completion line for {id}:\n{logs}"
        );
    }
    for line in logs
        .lines()
        .filter(|l| l.contains("request done") || l.contains("request refused"))
    {
        assert!(line.contains("request_id="), "{line}");
    }
}

#[tokio::test]
async fn json_logs_carry_the_request_id_and_env_configures_the_listener() {
    let root = common::TempDir::new("jsonlogs");
    let server = Server::start(
        &root,
        &[],
        &[("DDSD_LISTEN", "127.0.0.1:0"), ("DDSD_LOG_FORMAT", "json")],
    );
    let a = get(
        &server,
        &v1(&regions_params(Some("JSON")), TEST_KEY, None, &nonce()),
    )
    .await;
    assert_eq!(a.status, 200);
    let (exit, logs) = server.stop();
    assert!(exit.success());
    let mut found = false;
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if v["span"]["request_id"] == a.request_id_header.as_str() {
            found = true;
        }
    }
    assert!(found, "{logs}");
}

#[test]
fn bad_configuration_fails_fast_with_a_clear_message() {
    let root = common::TempDir::new("badconf");
    let config = root.join("bad.toml");
    std::fs::write(&config, "listen = 12\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ddsd"))
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("DDSD_LISTEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.toml"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_body_that_never_arrives_is_cut_off_with_an_envelope() {
    use std::io::Write as _;
    let root = common::TempDir::new("slowbody");
    let server = Server::start_with(&root, "body_read_timeout_ms = 300", &[], &[]);
    let mut conn = std::net::TcpStream::connect(&server.host).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(
        b"POST /?Format=JSON HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
          Content-Length: 100\r\n\r\nRegionId=",
    )
    .unwrap();
    let started = Instant::now();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&response).contains("}") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(text.contains("\"Code\":\"RequestTimeout\""), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: application/json;charset=utf-8"),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(server.stop().0.success());
}

#[test]
fn a_request_head_that_never_completes_is_disconnected() {
    use std::io::Write as _;
    let root = common::TempDir::new("slowhead");
    let server = Server::start_with(&root, "header_read_timeout_ms = 300", &[], &[]);
    let mut conn = std::net::TcpStream::connect(&server.host).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(b"GET /?Format=JSON HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = conn.read_to_end(&mut buf);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "connection held for {:?}",
        started.elapsed()
    );
    // The server is unaffected.
    let mut other = std::net::TcpStream::connect(&server.host).unwrap();
    other
        .write_all(b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    other.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 404 "), "{reply}");
    assert!(server.stop().0.success());
}

#[test]
fn sigterm_lets_an_in_flight_request_finish() {
    use std::io::Write as _;
    let root = common::TempDir::new("drain");
    let server = Server::start(&root, &[], &[]);
    let secret = Secret::new("testsecret");
    let n = nonce();
    let creds = Credentials {
        access_key_id: "testid",
        secret: &secret,
        nonce: &n,
        timestamp: OffsetDateTime::now_utc(),
    };
    let body = sign_v1_request("POST", &regions_params(Some("JSON")), &creds);
    let (first, rest) = body.split_at(body.len() / 2);

    let mut conn = std::net::TcpStream::connect(&server.host).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        server.host,
        body.len()
    );
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(first.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    server.terminate();
    std::thread::sleep(Duration::from_millis(300));
    // Shutdown has begun: no new connections, but this request is still being served.
    assert_eq!(
        std::net::TcpStream::connect(&server.host)
            .map(|_| ())
            .map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionRefused),
        "still accepting after SIGTERM"
    );
    conn.write_all(rest.as_bytes()).unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    assert!(reply.contains("\"DdsRegion\""), "{reply}");
    let (exit, logs) = server.wait_exit();
    assert!(exit.success(), "{exit:?}");
    assert!(logs.contains("SIGTERM received"), "{logs}");
}

#[test]
fn sigterm_right_after_the_listening_line_exits_cleanly() {
    // The handler must be installed before the line is printed, not on the accept loop's first poll.
    for _ in 0..5 {
        let root = common::TempDir::new("early-term");
        let server = Server::start(&root, &[], &[]);
        let (exit, logs) = server.stop();
        assert!(exit.success(), "{exit:?}\n{logs}");
    }
}

#[test]
fn oversized_chunked_body_gets_the_envelope() {
    use std::io::Write as _;
    let root = common::TempDir::new("chunked");
    let server = Server::start(&root, &[], &[]);
    let mut conn = std::net::TcpStream::connect(&server.host).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(
        b"POST /?Format=XML HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
          Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    for _ in 0..40 {
        conn.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .unwrap();
        conn.write_all(&chunk).unwrap();
        conn.write_all(b"\r\n").unwrap();
    }
    conn.write_all(b"0\r\n\r\n").unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 413 "), "{reply}");
    assert!(
        reply.contains("<Code>RequestEntityTooLarge</Code>"),
        "{reply}"
    );
    assert!(server.stop().0.success());
}
