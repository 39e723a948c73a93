//! Where the client subcommands (`call`, `upgrade`, `restart`, `plan`, `fault`, …) find their
//! endpoint, AccessKey and signature scheme.
//!
//! A profile is a small TOML file (default `~/.ddsd/profile.toml`, or `--profile FILE` /
//! `DDSD_PROFILE`), every field optional:
//!
//! ```toml
//! endpoint = "http://127.0.0.1:8080"
//! access_key_id = "LTAI..."
//! access_key_secret = "..."
//! signature = "v3"            # or "v1"
//! ```
//!
//! Resolution, first match wins:
//! - endpoint: `--endpoint`, `DDSD_ENDPOINT`, the profile, `http://127.0.0.1:8080`;
//! - AccessKey: `--access-key-id` + `--access-key-secret`; `--data-dir DIR` (that server's
//!   `admin-key.json`); a profile named with `--profile` / `DDSD_PROFILE`;
//!   `ALIBABA_CLOUD_ACCESS_KEY_ID` + `ALIBABA_CLOUD_ACCESS_KEY_SECRET`; the default profile
//!   `~/.ddsd/profile.toml` when it exists; `admin-key.json` in `DDSD_DATA_DIR` or `./data`;
//! - signature: `--signature`, the profile, `v3`.
//!
//! A profile that holds a secret must not be readable by others (mode 0600): a group- or
//! world-readable one is refused, as ssh refuses a private key.

use std::path::{Path, PathBuf};

use acs_rpc::Secret;
use anyhow::{bail, Context as _};
use serde::Deserialize;

use ddsd_client::{Credentials, Signature, ENV_ACCESS_KEY_ID, ENV_ACCESS_KEY_SECRET};

pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:8080";
pub const ENV_PROFILE: &str = "DDSD_PROFILE";
pub const ENV_ENDPOINT: &str = "DDSD_ENDPOINT";
/// Largest profile file read (it holds four short strings).
const MAX_PROFILE_BYTES: u64 = 64 * 1024;

/// The profile file as written by users.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub endpoint: Option<String>,
    pub access_key_id: Option<String>,
    pub access_key_secret: Option<String>,
    pub signature: Option<SignatureName>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureName {
    V1,
    V3,
}

impl From<SignatureName> for Signature {
    fn from(s: SignatureName) -> Signature {
        match s {
            SignatureName::V1 => Signature::V1,
            SignatureName::V3 => Signature::V3,
        }
    }
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .field("signature", &self.signature)
            .finish_non_exhaustive()
    }
}

impl Profile {
    pub fn read(path: &Path) -> anyhow::Result<Profile> {
        let meta = std::fs::metadata(path)
            .with_context(|| format!("reading the profile {}", path.display()))?;
        if meta.len() > MAX_PROFILE_BYTES {
            bail!(
                "profile {} is larger than {MAX_PROFILE_BYTES} bytes",
                path.display()
            );
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the profile {}", path.display()))?;
        let p: Profile = toml::from_str(&text)
            .with_context(|| format!("parsing the profile {}", path.display()))?;
        if p.access_key_secret.is_some() {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                bail!(
                    "profile {} holds a secret but is readable by others (mode {:o}); chmod 600 it",
                    path.display(),
                    mode & 0o777
                );
            }
        }
        Ok(p)
    }

    /// Writes a profile with mode 0600 (creating the parent directory, mode 0700).
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut text = String::new();
        let line = |text: &mut String, k: &str, v: &str| {
            // TOML basic strings: `toml` escapes exactly as the parser expects.
            let quoted = toml::Value::String(v.to_string()).to_string();
            text.push_str(&format!("{k} = {quoted}\n"));
        };
        if let Some(v) = &self.endpoint {
            line(&mut text, "endpoint", v);
        }
        if let Some(v) = &self.access_key_id {
            line(&mut text, "access_key_id", v);
        }
        if let Some(v) = &self.access_key_secret {
            line(&mut text, "access_key_secret", v);
        }
        match self.signature {
            Some(SignatureName::V1) => line(&mut text, "signature", "v1"),
            Some(SignatureName::V3) => line(&mut text, "signature", "v3"),
            None => {}
        }
        let tmp = path.with_extension("toml.tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    fn credentials(&self, path: &Path) -> anyhow::Result<Option<Credentials>> {
        match (&self.access_key_id, &self.access_key_secret) {
            (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => {
                Ok(Some(Credentials {
                    access_key_id: id.clone(),
                    secret: Secret::new(secret.clone()),
                }))
            }
            (None, None) => Ok(None),
            _ => bail!(
                "profile {}: access_key_id and access_key_secret go together",
                path.display()
            ),
        }
    }
}

/// `~/.ddsd/profile.toml`, when `HOME` is set.
pub fn default_profile_path() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".ddsd").join("profile.toml"))
}

/// What the command line said; `None` = not given.
#[derive(Debug, Clone, Default)]
pub struct Given {
    pub endpoint: Option<String>,
    pub access_key_id: Option<String>,
    pub access_key_secret: Option<String>,
    pub data_dir: Option<PathBuf>,
    /// `--profile` or `DDSD_PROFILE`.
    pub profile: Option<PathBuf>,
    pub signature: Option<Signature>,
}

/// The resolved target of a client subcommand.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub endpoint: String,
    pub credentials: Credentials,
    pub signature: Signature,
}

/// Reads an environment variable (`None` when unset or empty).
pub type EnvVar = Box<dyn Fn(&str) -> Option<String>>;

/// The process environment the resolution reads, injectable for tests.
pub struct Env {
    pub var: EnvVar,
    pub default_profile: Option<PathBuf>,
    pub default_data_dir: PathBuf,
}

impl Env {
    pub fn process() -> Env {
        Env {
            var: Box::new(|k| std::env::var(k).ok().filter(|v| !v.is_empty())),
            default_profile: default_profile_path(),
            default_data_dir: crate::client::profile::default_data_dir(),
        }
    }
}

/// Applies the order in the module docs.
pub fn resolve(given: &Given, env: &Env) -> anyhow::Result<Resolved> {
    let explicit_profile = match &given.profile {
        Some(p) => Some((p.clone(), Profile::read(p)?)),
        None => None,
    };
    let default_profile = match (&explicit_profile, &env.default_profile) {
        (None, Some(p)) if p.is_file() => Some((p.clone(), Profile::read(p)?)),
        _ => None,
    };
    let profile = explicit_profile.as_ref().or(default_profile.as_ref());

    let endpoint = given
        .endpoint
        .clone()
        .or_else(|| (env.var)(ENV_ENDPOINT))
        .or_else(|| profile.and_then(|(_, p)| p.endpoint.clone()))
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
    let signature = given
        .signature
        .or_else(|| profile.and_then(|(_, p)| p.signature.map(Signature::from)))
        .unwrap_or(Signature::V3);

    let credentials = 'found: {
        match (&given.access_key_id, &given.access_key_secret) {
            (Some(id), Some(secret)) => {
                break 'found Credentials {
                    access_key_id: id.clone(),
                    secret: Secret::new(secret.clone()),
                }
            }
            (None, None) => {}
            _ => bail!("--access-key-id and --access-key-secret go together"),
        }
        if let Some(dir) = &given.data_dir {
            break 'found Credentials::from_data_dir(dir)?;
        }
        if let Some((path, p)) = &explicit_profile {
            if let Some(c) = p.credentials(path)? {
                break 'found c;
            }
        }
        match (
            (env.var)(ENV_ACCESS_KEY_ID),
            (env.var)(ENV_ACCESS_KEY_SECRET),
        ) {
            (Some(id), Some(secret)) => {
                break 'found Credentials {
                    access_key_id: id,
                    secret: Secret::new(secret),
                }
            }
            (None, None) => {}
            _ => bail!("{ENV_ACCESS_KEY_ID} and {ENV_ACCESS_KEY_SECRET} go together"),
        }
        if let Some((path, p)) = &default_profile {
            if let Some(c) = p.credentials(path)? {
                break 'found c;
            }
        }
        Credentials::from_data_dir(&env.default_data_dir).context(
            "no AccessKey: pass --access-key-id/--access-key-secret, --profile FILE or --data-dir DIR, \
             or set ALIBABA_CLOUD_ACCESS_KEY_ID/ALIBABA_CLOUD_ACCESS_KEY_SECRET",
        )?
    };
    Ok(Resolved {
        endpoint,
        credentials,
        signature,
    })
}

/// The data dir the CLI falls back to: `DDSD_DATA_DIR`, else `./data` (as `ddsd serve`).
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("DDSD_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(crate::server::config::DEFAULT_DATA_DIR))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::store::fixtures::TempDir;
    use ddsd_client::ADMIN_KEY_FILE;
    use std::collections::HashMap;
    use std::os::unix::fs::PermissionsExt as _;

    fn env(vars: &[(&str, &str)], default_profile: Option<PathBuf>, data_dir: &Path) -> Env {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env {
            var: Box::new(move |k| map.get(k).cloned()),
            default_profile,
            default_data_dir: data_dir.to_path_buf(),
        }
    }

    fn profile(dir: &Path, name: &str, id: &str, endpoint: &str) -> PathBuf {
        let path = dir.join(name);
        Profile {
            endpoint: Some(endpoint.into()),
            access_key_id: Some(id.into()),
            access_key_secret: Some(format!("{id}-secret")),
            signature: Some(SignatureName::V1),
        }
        .write(&path)
        .unwrap();
        path
    }

    #[test]
    fn written_profiles_are_private_and_read_back() {
        let dir = TempDir::new("profile-rw");
        let path = profile(dir.path(), "sub/p.toml", "LTAIx", "http://127.0.0.1:9");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let p = Profile::read(&path).unwrap();
        assert_eq!(p.endpoint.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(p.access_key_secret.as_deref(), Some("LTAIx-secret"));
        assert!(!format!("{p:?}").contains("LTAIx-secret"));

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Profile::read(&path).unwrap_err();
        assert!(format!("{e:#}").contains("chmod 600"), "{e:#}");

        std::fs::write(dir.path().join("bad.toml"), "endpont = \"x\"\n").unwrap();
        let e = Profile::read(&dir.path().join("bad.toml")).unwrap_err();
        assert!(format!("{e:#}").contains("endpont"), "{e:#}");
    }

    #[test]
    fn resolution_order() {
        let dir = TempDir::new("profile-order");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(
            data.join(ADMIN_KEY_FILE),
            r#"{"AccessKeyId":"LTAIdata","AccessKeySecret":"s"}"#,
        )
        .unwrap();
        let explicit = profile(dir.path(), "explicit.toml", "LTAIexplicit", "http://e:1");
        let default = profile(dir.path(), "default.toml", "LTAIdefault", "http://d:1");
        let vars = [
            (ENV_ACCESS_KEY_ID, "LTAIenv"),
            (ENV_ACCESS_KEY_SECRET, "s"),
            (ENV_ENDPOINT, "http://env:1"),
        ];
        let id = |given: &Given, env: &Env| resolve(given, env).unwrap().credentials.access_key_id;

        // Nothing given, nothing configured: the default data dir.
        let none = env(&[], None, &data);
        let r = resolve(&Given::default(), &none).unwrap();
        assert_eq!(r.credentials.access_key_id, "LTAIdata");
        assert_eq!(r.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(r.signature, Signature::V3);

        // The default profile fills endpoint, key and signature.
        let with_default = env(&[], Some(default.clone()), &data);
        let r = resolve(&Given::default(), &with_default).unwrap();
        assert_eq!(
            (r.credentials.access_key_id.as_str(), r.endpoint.as_str()),
            ("LTAIdefault", "http://d:1")
        );
        assert_eq!(r.signature, Signature::V1);

        // The environment's key beats the default profile, an explicit profile beats the environment.
        let all = env(&vars, Some(default.clone()), &data);
        assert_eq!(id(&Given::default(), &all), "LTAIenv");
        let r = resolve(&Given::default(), &all).unwrap();
        assert_eq!(r.endpoint, "http://env:1");
        let given = Given {
            profile: Some(explicit.clone()),
            ..Given::default()
        };
        assert_eq!(id(&given, &all), "LTAIexplicit");
        // --data-dir beats the explicit profile, flags beat everything.
        let given = Given {
            profile: Some(explicit.clone()),
            data_dir: Some(data.clone()),
            endpoint: Some("http://flag:1".into()),
            signature: Some(Signature::V3),
            ..Given::default()
        };
        let r = resolve(&given, &all).unwrap();
        assert_eq!(r.credentials.access_key_id, "LTAIdata");
        assert_eq!(
            (r.endpoint.as_str(), r.signature),
            ("http://flag:1", Signature::V3)
        );
        let given = Given {
            access_key_id: Some("LTAIflag".into()),
            access_key_secret: Some("s".into()),
            ..given
        };
        assert_eq!(id(&given, &all), "LTAIflag");

        // Half a pair is an error wherever it is.
        let half = Given {
            access_key_id: Some("x".into()),
            ..Given::default()
        };
        let err = |r: anyhow::Result<Resolved>| format!("{:#}", r.unwrap_err());
        assert_eq!(
            err(resolve(&half, &none)),
            "--access-key-id and --access-key-secret go together"
        );
        let half_env = env(&[(ENV_ACCESS_KEY_ID, "x")], None, &data);
        assert_eq!(
            err(resolve(&Given::default(), &half_env)),
            format!("{ENV_ACCESS_KEY_ID} and {ENV_ACCESS_KEY_SECRET} go together")
        );
        std::fs::write(dir.path().join("half.toml"), "access_key_id = \"x\"\n").unwrap();
        let given = Given {
            profile: Some(dir.path().join("half.toml")),
            ..Given::default()
        };
        let e = err(resolve(&given, &none));
        assert!(
            e.ends_with("access_key_id and access_key_secret go together"),
            "{e}"
        );
        // A named profile that does not exist is an error, not a silent fallback.
        let given = Given {
            profile: Some(dir.path().join("missing.toml")),
            ..Given::default()
        };
        let e = err(resolve(&given, &none));
        assert!(e.starts_with("reading the profile"), "{e}");
        // No key anywhere.
        let empty = env(&[], None, &dir.path().join("nowhere"));
        let e = resolve(&Given::default(), &empty).unwrap_err();
        assert!(format!("{e:#}").contains("--profile"), "{e:#}");
    }
}
