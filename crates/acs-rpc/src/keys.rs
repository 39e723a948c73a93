//! AccessKey secrets and where the verifier finds them.

use std::collections::HashMap;
use std::fmt;

/// An AccessKeySecret. It has no `Display`, its `Debug` is redacted, and the only way to read it
/// is [`Secret::expose`], so a secret cannot reach a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Box<str>);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into().into_boxed_str())
    }

    /// The secret itself, for HMAC keys and for writing the key file.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Looks up the secret of an AccessKeyId. `None` answers `InvalidAccessKeyId.NotFound`.
pub trait KeyStore: Send + Sync {
    fn secret(&self, access_key_id: &str) -> Option<Secret>;
}

/// A fixed set of keys held in memory.
#[derive(Default, Clone)]
pub struct MemoryKeyStore {
    keys: HashMap<String, Secret>,
}

impl MemoryKeyStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a key.
    pub fn insert(&mut self, access_key_id: impl Into<String>, secret: Secret) {
        self.keys.insert(access_key_id.into(), secret);
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl fmt::Debug for MemoryKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        ids.sort_unstable();
        f.debug_struct("MemoryKeyStore")
            .field("access_key_ids", &ids)
            .finish()
    }
}

impl KeyStore for MemoryKeyStore {
    fn secret(&self, access_key_id: &str) -> Option<Secret> {
        self.keys.get(access_key_id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let s = Secret::new("very-secret-value");
        assert!(!format!("{s:?}").contains("very-secret"));
        let mut ks = MemoryKeyStore::new();
        ks.insert("LTAIid", s);
        let shown = format!("{ks:?}");
        assert!(
            shown.contains("LTAIid") && !shown.contains("very-secret"),
            "{shown}"
        );
        assert_eq!(ks.secret("LTAIid").unwrap().expose(), "very-secret-value");
        assert!(ks.secret("other").is_none());
    }
}
