//! The `root` account of an instance (`CreateDBInstance`'s `AccountPassword`): kept in the store
//! as SCRAM-SHA-1 and SCRAM-SHA-256 credentials — salt, iteration count, stored and server keys,
//! what mongod keeps in `admin.system.users` — never as the password. An instance without a password
//! has no account, so nobody can authenticate to it and every command that needs authentication is
//! refused (`Unauthorized`, 13): the listeners are never open to anyone who can reach the port.

use base64::Engine as _;
use mongo_wire::{Mechanism, MemoryCredentialStore, ScramCredential, UserCredentials};
use serde::{Deserialize, Serialize};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use tokio::sync::Notify;

use crate::server::store::{Store, StoreResult};

/// The account every instance's password belongs to (the vendor's `AccountName` for it).
pub const ROOT_USER: &str = "root";
/// Where it authenticates.
pub const ROOT_DB: &str = "admin";

fn setting_key(instance_id: &str) -> String {
    format!(
        "{}root_account",
        crate::server::store::instance_setting_prefix(instance_id)
    )
}

#[derive(Serialize, Deserialize)]
struct StoredCredential {
    mechanism: String,
    iterations: u32,
    salt: String,
    stored_key: String,
    server_key: String,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// The credentials of `password` as stored text (fresh salts).
pub fn encode_password(password: &str) -> Result<String, String> {
    let creds = UserCredentials::from_password(
        ROOT_USER,
        password,
        &[Mechanism::ScramSha1, Mechanism::ScramSha256],
    )
    .map_err(|e| e.errmsg)?;
    let stored: Vec<StoredCredential> = creds
        .credentials
        .iter()
        .map(|c| StoredCredential {
            mechanism: c.mechanism.name().to_string(),
            iterations: c.iterations,
            salt: b64(&c.salt),
            stored_key: b64(&c.stored_key),
            server_key: b64(&c.server_key),
        })
        .collect();
    serde_json::to_string(&stored).map_err(|e| e.to_string())
}

fn decode(text: &str) -> Option<UserCredentials> {
    let stored: Vec<StoredCredential> = serde_json::from_str(text).ok()?;
    let credentials = stored
        .into_iter()
        .map(|c| {
            Some(ScramCredential {
                mechanism: Mechanism::from_name(&c.mechanism)?,
                iterations: c.iterations,
                salt: unb64(&c.salt)?,
                stored_key: unb64(&c.stored_key)?,
                server_key: unb64(&c.server_key)?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(UserCredentials { credentials })
}

/// Bumped whenever an instance's access (root account, whitelist) is stored, so the wire supervisor
/// knows to re-read them.
static GENERATION: AtomicU64 = AtomicU64::new(0);

fn changes() -> &'static Notify {
    static CHANGES: OnceLock<Notify> = OnceLock::new();
    CHANGES.get_or_init(Notify::new)
}

/// How many times a root account was stored by this process.
pub fn generation() -> u64 {
    GENERATION.load(Ordering::SeqCst)
}

/// Resolves after [`announce`] (one waiter at a time: the wire supervisor).
pub async fn changed() {
    changes().notified().await;
}

/// Records the root account of `instance_id` ([`encode_password`]'s text), replacing one set before
/// (`ResetAccountPassword`); the listeners authenticate with the new credentials from their next
/// login on (established sessions stay, as on mongod).
pub async fn store_root_account(
    store: &dyn Store,
    instance_id: &str,
    encoded: &str,
) -> StoreResult<()> {
    store
        .put_setting(&setting_key(instance_id), encoded)
        .await?;
    announce();
    Ok(())
}

/// Tells the wire supervisor that an instance's access (root account, whitelist) changed.
pub fn announce() {
    GENERATION.fetch_add(1, Ordering::SeqCst);
    changes().notify_one();
}

/// Whether `instance_id` has a root account.
pub async fn has_root_account(store: &dyn Store, instance_id: &str) -> StoreResult<bool> {
    Ok(store
        .get_setting(&setting_key(instance_id))
        .await?
        .is_some())
}

fn description_key(instance_id: &str) -> String {
    format!(
        "{}root_account_description",
        crate::server::store::instance_setting_prefix(instance_id)
    )
}

/// The root account's `AccountDescription` (`ModifyAccountDescription`), if one was set.
pub async fn root_description(store: &dyn Store, instance_id: &str) -> StoreResult<Option<String>> {
    store.get_setting(&description_key(instance_id)).await
}

pub async fn set_root_description(
    store: &dyn Store,
    instance_id: &str,
    description: &str,
) -> StoreResult<()> {
    store
        .put_setting(&description_key(instance_id), description)
        .await
}

/// Puts `instance_id`'s stored root credentials into `users` (the store its listeners share).
pub async fn refresh_users(
    store: &dyn Store,
    instance_id: &str,
    users: &MemoryCredentialStore,
) -> StoreResult<()> {
    if let Some(creds) = store
        .get_setting(&setting_key(instance_id))
        .await?
        .as_deref()
        .and_then(decode)
    {
        users.insert(ROOT_DB, ROOT_USER, creds);
    }
    Ok(())
}

/// The users of `instance_id`'s processes: `root@admin` when it has a password, nobody otherwise.
pub async fn users_of(store: &dyn Store, instance_id: &str) -> StoreResult<MemoryCredentialStore> {
    let users = MemoryCredentialStore::new();
    if let Some(text) = store.get_setting(&setting_key(instance_id)).await? {
        match decode(&text) {
            Some(creds) => users.insert(ROOT_DB, ROOT_USER, creds),
            None => {
                tracing::warn!(instance = %instance_id, "the stored root account does not decode; nobody can authenticate")
            }
        }
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongo_wire::CredentialStore;

    #[test]
    fn stored_credentials_round_trip_and_hold_no_password() {
        let text = encode_password("Str0ng!pass").unwrap();
        assert!(!text.contains("Str0ng!pass"));
        let creds = decode(&text).unwrap();
        assert_eq!(
            creds.mechanism_names(),
            vec!["SCRAM-SHA-1", "SCRAM-SHA-256"]
        );
        let users = MemoryCredentialStore::new();
        users.insert(ROOT_DB, ROOT_USER, creds);
        assert!(users.lookup("admin", "root").is_some());
        assert!(decode("[{\"mechanism\":\"MD5\"}]").is_none());
        assert!(decode("nonsense").is_none());
    }
}
