//! AccessKeys: the admin key kept in `<data-dir>/admin-key.json` and the key store the verifier
//! consults.
//!
//! The secret has to be stored recoverably (HMAC needs it), so the file is the secret's only
//! protection: mode 0600 inside a 0700 directory, written to a temporary file and renamed so a
//! crash never leaves half a key behind.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use acs_rpc::{MemoryKeyStore, Secret};
use anyhow::{bail, Context as _};
use rand::distributions::{Alphanumeric, DistString as _};
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};

pub const ADMIN_KEY_FILE: &str = "admin-key.json";

/// The admin AccessKey pair.
pub struct AdminKey {
    pub access_key_id: String,
    pub secret: Secret,
    /// True when this start created it (and so must print it once).
    pub created: bool,
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    #[serde(rename = "AccessKeyId")]
    access_key_id: String,
    #[serde(rename = "AccessKeySecret")]
    access_key_secret: String,
}

/// `LTAI` + 20 alphanumerics, like the vendor's ids.
pub fn new_access_key_id() -> String {
    format!("LTAI{}", Alphanumeric.sample_string(&mut OsRng, 20))
}

/// 30 alphanumerics from the OS CSPRNG (~178 bits).
pub fn new_secret() -> Secret {
    Secret::new(Alphanumeric.sample_string(&mut OsRng, 30))
}

/// Creates the data dir (0700) if needed, then loads the admin key or creates it on first start.
pub fn load_or_create_admin_key(data_dir: &Path) -> anyhow::Result<AdminKey> {
    if !data_dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)
            .with_context(|| format!("creating data dir {}", data_dir.display()))?;
    } else if !data_dir.is_dir() {
        bail!("data dir {} is not a directory", data_dir.display());
    }
    let path = data_dir.join(ADMIN_KEY_FILE);
    if path.exists() {
        let mode = fs::metadata(&path)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "admin key file is readable by others; chmod 600 it");
        }
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let file: KeyFile = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid admin key file", path.display()))?;
        if file.access_key_id.is_empty() || file.access_key_secret.is_empty() {
            bail!(
                "{} has an empty AccessKeyId or AccessKeySecret",
                path.display()
            );
        }
        return Ok(AdminKey {
            access_key_id: file.access_key_id,
            secret: Secret::new(file.access_key_secret),
            created: false,
        });
    }
    let key = AdminKey {
        access_key_id: new_access_key_id(),
        secret: new_secret(),
        created: true,
    };
    write_key_file(&path, &key)?;
    Ok(key)
}

fn write_key_file(path: &Path, key: &AdminKey) -> anyhow::Result<()> {
    let body = serde_json::to_string_pretty(&KeyFile {
        access_key_id: key.access_key_id.clone(),
        access_key_secret: key.secret.expose().to_string(),
    })?;
    let tmp: PathBuf = path.with_extension("json.tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(body.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path).with_context(|| format!("installing {}", path.display()))?;
    Ok(())
}

/// The admin key plus the configured keys. A configured key may not reuse the admin key's id.
pub fn key_store(admin: &AdminKey, extra: &[(String, Secret)]) -> anyhow::Result<MemoryKeyStore> {
    let mut store = MemoryKeyStore::new();
    store.insert(admin.access_key_id.clone(), admin.secret.clone());
    for (id, secret) in extra {
        if *id == admin.access_key_id {
            bail!("configured access key {id:?} has the admin key's id");
        }
        store.insert(id.clone(), secret.clone());
    }
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use acs_rpc::KeyStore;

    #[test]
    fn ids_and_secrets_look_like_the_vendors() {
        let id = new_access_key_id();
        assert_eq!(id.len(), 24);
        assert!(id.starts_with("LTAI") && id.chars().all(|c| c.is_ascii_alphanumeric()));
        let s = new_secret();
        assert_eq!(s.expose().len(), 30);
        assert_ne!(new_secret().expose(), s.expose());
    }

    #[test]
    fn created_once_with_private_modes_then_loaded() {
        let dir = std::env::temp_dir()
            .join(format!("ddsd-keys-{}", std::process::id()))
            .join("data");
        let _ = fs::remove_dir_all(dir.parent().unwrap());
        let first = load_or_create_admin_key(&dir).unwrap();
        assert!(first.created);
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let file = dir.join(ADMIN_KEY_FILE);
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let second = load_or_create_admin_key(&dir).unwrap();
        assert!(!second.created);
        assert_eq!(second.access_key_id, first.access_key_id);
        assert_eq!(second.secret.expose(), first.secret.expose());
        let store = key_store(&second, &[("testid".into(), Secret::new("testsecret"))]).unwrap();
        assert_eq!(store.secret("testid").unwrap().expose(), "testsecret");
        let e = key_store(&second, &[(first.access_key_id.clone(), Secret::new("x"))]).unwrap_err();
        assert!(e.to_string().ends_with("has the admin key's id"), "{e}");
        fs::remove_dir_all(dir.parent().unwrap()).unwrap();
    }
}
