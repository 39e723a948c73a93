//! HTTPS for `ddsd serve`. The official SDKs default to HTTPS (Tea: `protocol` unset means https;
//! the `aliyun` CLI and Terraform too), so an endpoint that only spoke plain HTTP would make every
//! user change their client's protocol before pointing it at ddsd.
//!
//! - `--tls-cert FILE --tls-key FILE` (or `tls_cert` / `tls_key` in the file): a PEM certificate
//!   chain and its private key (PKCS#8, PKCS#1 or SEC1).
//! - `--tls-self-signed`: a certificate for `localhost`, `127.0.0.1`, `::1` (and the listen IP) is
//!   made once in `<data dir>/tls/` and reused on later starts; clients trust it by pointing their
//!   CA setting at `<data dir>/tls/cert.pem` (Tea: `Config.ca`).
//!
//! rustls with the `ring` provider; TLS 1.2 and 1.3; ALPN `http/1.1` (what the SDKs speak).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

/// Where the certificate and key come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    Files { cert: PathBuf, key: PathBuf },
    SelfSigned,
}

/// The certificate and key files to serve with: the configured ones, or the self-signed pair in
/// `data_dir` (made now if missing).
pub fn resolve_files(
    source: &TlsSource,
    data_dir: &Path,
    listen_ip: IpAddr,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    match source {
        TlsSource::Files { cert, key } => Ok((cert.clone(), key.clone())),
        TlsSource::SelfSigned => self_signed(data_dir, listen_ip),
    }
}

/// A TLS acceptor over a PEM certificate chain and key.
pub fn acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading the TLS certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing the TLS certificate {}", cert.display()))?;
    if certs.is_empty() {
        bail!("no PEM certificate in {}", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the TLS private key {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and private key do not go together")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// `<data_dir>/tls/{cert,key}.pem`, made on first use. The key file is readable by its owner only.
fn self_signed(data_dir: &Path, listen_ip: IpAddr) -> anyhow::Result<(PathBuf, PathBuf)> {
    let dir = data_dir.join("tls");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if cert.is_file() && key.is_file() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if !listen_ip.is_unspecified() && !listen_ip.is_loopback() {
        names.push(listen_ip.to_string());
    }
    let made = rcgen::generate_simple_self_signed(names)
        .context("making a self-signed TLS certificate")?;
    write_private(&key, made.key_pair.serialize_pem().as_bytes())?;
    std::fs::write(&cert, made.cert.pem())
        .with_context(|| format!("writing {}", cert.display()))?;
    Ok((cert, key))
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn a_self_signed_pair_is_made_once_private_and_loads() {
        let dir = crate::server::store::fixtures::TempDir::new("tls");
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let (cert, key) = resolve_files(&TlsSource::SelfSigned, dir.path(), ip).unwrap();
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let first = std::fs::read(&cert).unwrap();
        acceptor(&cert, &key).unwrap();
        // Reused, not remade: clients that trusted it keep trusting it.
        resolve_files(&TlsSource::SelfSigned, dir.path(), ip).unwrap();
        assert_eq!(std::fs::read(&cert).unwrap(), first);
    }

    #[test]
    fn a_key_that_is_not_the_certificate_s_is_refused() {
        let a = crate::server::store::fixtures::TempDir::new("tls-a");
        let b = crate::server::store::fixtures::TempDir::new("tls-b");
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let (cert, _) = resolve_files(&TlsSource::SelfSigned, a.path(), ip).unwrap();
        let (_, other_key) = resolve_files(&TlsSource::SelfSigned, b.path(), ip).unwrap();
        let e = acceptor(&cert, &other_key).err().expect("refused");
        assert!(format!("{e:#}").contains("do not go together"), "{e:#}");
        let e = acceptor(&a.path().join("nope.pem"), &other_key)
            .err()
            .expect("refused");
        assert!(
            format!("{e:#}").contains("reading the TLS certificate"),
            "{e:#}"
        );
    }
}
