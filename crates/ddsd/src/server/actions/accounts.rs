//! The instance's account: `DescribeAccounts`, `ResetAccountPassword`, `ModifyAccountDescription`.
//!
//! ddsd keeps one account per instance, `root` on `admin` (`CreateDBInstance`'s `AccountPassword`), as
//! SCRAM-SHA-1 and SCRAM-SHA-256 credentials — never the password (`server::wire::accounts`). Every
//! process of the instance (members, mongos) authenticates it; on a sharded cluster the vendor keeps
//! separate shard (`db`) and config-server (`cs`) accounts, ddsd the one for all, so `CharacterType`
//! (`normal`, `db`, `cs`) names the same account.
//!
//! - `DescribeAccounts` (`DBInstanceId`, `AccountName`): `Accounts.Account[]` — `root` with
//!   `AccountStatus` `Available`, `CharacterType` `normal`, `DBName` `admin`, its role `root` on `admin`,
//!   and its `AccountDescription` once set; empty for an instance created without a password, or when
//!   `AccountName` names another account.
//! - `ResetAccountPassword` (`DBInstanceId`, `AccountName` = `root`, `AccountPassword`): 8 to 32
//!   characters of letters, digits and `!#$%^&*()_+-=`, at least three of the four kinds (the vendor's
//!   rule). The listeners authenticate with the new password from the next login on (sessions already
//!   authenticated stay, as on mongod); an instance created without a password gets its account now.
//! - `ModifyAccountDescription` (`DBInstanceId`, `AccountName` = `root`, `AccountDescription`, the naming
//!   rule of `DBInstanceDescription`).
//!
//! An `AccountName` other than `root` is `InvalidAccountName.NotFound` (404). The two changes are refused
//! with `OperationDenied.DBInstanceStatus` unless the instance is `Running` with no unfinished operation,
//! checked before anything changes.

use std::sync::Arc;

use dds_engine::build::check_description;
use serde::Serialize;

use super::attributes::idle;
use super::errors::{from_store, ApiError};
use super::params::{clip, optional, required};
use super::rolling::load_instance;
use super::{Call, Context, Empty, FromParams, Params};
use crate::server::wire::accounts::{
    encode_password, has_root_account, root_description, set_root_description, store_root_account,
    ROOT_DB, ROOT_USER,
};

/// The password characters the vendor allows besides letters and digits.
const SPECIALS: &str = "!#$%^&*()_+-=";

/// The vendor's rule for `AccountPassword`.
pub fn password_ok(p: &str) -> bool {
    let n = p.chars().count();
    let allowed = p
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || SPECIALS.contains(c));
    let kinds = [
        p.chars().any(|c| c.is_ascii_uppercase()),
        p.chars().any(|c| c.is_ascii_lowercase()),
        p.chars().any(|c| c.is_ascii_digit()),
        p.chars().any(|c| SPECIALS.contains(c)),
    ]
    .iter()
    .filter(|k| **k)
    .count();
    (8..=32).contains(&n) && allowed && kinds >= 3
}

fn character_type(params: &Params) -> Result<(), ApiError> {
    match optional(params, "CharacterType") {
        None | Some("normal" | "db" | "cs") => Ok(()),
        Some(v) => Err(ApiError::invalid_parameter(
            "CharacterType",
            format!("Valid values are normal, db and cs, got \"{}\".", clip(v)),
        )),
    }
}

fn root_only(name: &str) -> Result<(), ApiError> {
    if name == ROOT_USER {
        Ok(())
    } else {
        Err(ApiError::AccountNotFound)
    }
}

/// `DescribeAccounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeAccountsRequest {
    pub db_instance_id: String,
    pub account_name: Option<String>,
}

impl FromParams for DescribeAccountsRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        character_type(params)?;
        Ok(Self {
            db_instance_id: required(params, "DBInstanceId")?.to_string(),
            account_name: optional(params, "AccountName").map(str::to_string),
        })
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Role {
    #[serde(rename = "DBName")]
    pub db_name: String,
    pub role: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Roles {
    pub role: Vec<Role>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Account {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_description: Option<String>,
    pub account_name: String,
    pub account_status: String,
    pub character_type: String,
    #[serde(rename = "DBInstanceId")]
    pub db_instance_id: String,
    #[serde(rename = "DBName")]
    pub db_name: String,
    pub roles: Roles,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Accounts {
    pub account: Vec<Account>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeAccountsResponse {
    pub accounts: Accounts,
}

/// `DescribeAccounts`.
pub async fn describe_accounts(
    ctx: Arc<Context>,
    req: DescribeAccountsRequest,
    _call: Call,
) -> Result<DescribeAccountsResponse, ApiError> {
    let instance = load_instance(&ctx, &req.db_instance_id).await?;
    let mut account = Vec::new();
    let named = req.account_name.as_deref().is_none_or(|n| n == ROOT_USER);
    if named
        && has_root_account(&*ctx.store, &instance.id)
            .await
            .map_err(from_store)?
    {
        account.push(Account {
            account_description: root_description(&*ctx.store, &instance.id)
                .await
                .map_err(from_store)?,
            account_name: ROOT_USER.into(),
            account_status: "Available".into(),
            character_type: "normal".into(),
            db_instance_id: instance.id.clone(),
            db_name: ROOT_DB.into(),
            roles: Roles {
                role: vec![Role {
                    db_name: ROOT_DB.into(),
                    role: "root".into(),
                }],
            },
        });
    }
    Ok(DescribeAccountsResponse {
        accounts: Accounts { account },
    })
}

/// `ResetAccountPassword`.
#[derive(Clone, PartialEq, Eq)]
pub struct ResetPasswordRequest {
    pub db_instance_id: String,
    pub password: String,
}

impl std::fmt::Debug for ResetPasswordRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResetPasswordRequest")
            .field("db_instance_id", &self.db_instance_id)
            .finish_non_exhaustive()
    }
}

impl FromParams for ResetPasswordRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let db_instance_id = required(params, "DBInstanceId")?.to_string();
        root_only(required(params, "AccountName")?)?;
        character_type(params)?;
        let password = required(params, "AccountPassword")?;
        if !password_ok(password) {
            // The password itself is never echoed.
            return Err(ApiError::invalid_parameter(
                "AccountPassword",
                "8 to 32 characters of letters, digits and !#$%^&*()_+-=, with at least three of \
                 upper case, lower case, digits and special characters.",
            ));
        }
        Ok(Self {
            db_instance_id,
            password: password.to_string(),
        })
    }
}

/// `ResetAccountPassword`.
pub async fn reset_account_password(
    ctx: Arc<Context>,
    req: ResetPasswordRequest,
    _call: Call,
) -> Result<Empty, ApiError> {
    let instance = load_instance(&ctx, &req.db_instance_id).await?;
    idle(&ctx, &instance.id, instance.status).await?;
    // The key derivation is slow on purpose: off the async workers.
    let password = req.password;
    let encoded = tokio::task::spawn_blocking(move || encode_password(&password))
        .await
        .map_err(|_| ApiError::from(acs_rpc::Gateway::InternalError))?
        .map_err(|e| ApiError::invalid_parameter("AccountPassword", e))?;
    store_root_account(&*ctx.store, &instance.id, &encoded)
        .await
        .map_err(from_store)?;
    tracing::info!(instance_id = %instance.id, "root password reset");
    Ok(Empty {})
}

/// `ModifyAccountDescription`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountDescriptionRequest {
    pub db_instance_id: String,
    pub description: String,
}

impl FromParams for AccountDescriptionRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let db_instance_id = required(params, "DBInstanceId")?.to_string();
        root_only(required(params, "AccountName")?)?;
        character_type(params)?;
        let description = required(params, "AccountDescription")?;
        check_description(description).map_err(|_| {
            ApiError::invalid_parameter(
                "AccountDescription",
                format!(
                    "2 to 256 characters, starting with a letter, not with http:// or https:// \
                     (got \"{}\").",
                    clip(description)
                ),
            )
        })?;
        Ok(Self {
            db_instance_id,
            description: description.to_string(),
        })
    }
}

/// `ModifyAccountDescription`.
pub async fn modify_account_description(
    ctx: Arc<Context>,
    req: AccountDescriptionRequest,
    _call: Call,
) -> Result<Empty, ApiError> {
    let instance = load_instance(&ctx, &req.db_instance_id).await?;
    if !has_root_account(&*ctx.store, &instance.id)
        .await
        .map_err(from_store)?
    {
        return Err(ApiError::AccountNotFound);
    }
    idle(&ctx, &instance.id, instance.status).await?;
    set_root_description(&*ctx.store, &instance.id, &req.description)
        .await
        .map_err(from_store)?;
    Ok(Empty {})
}

#[cfg(test)]
mod tests {
    /// Request parameters, expected code and HTTP status.
    type Refusal<'a> = (Vec<(&'a str, &'a str)>, &'a str, u16);

    use super::*;
    use crate::server::actions::upgrade::test_support::{env, kernels, req, Env};
    use crate::server::wire::accounts::users_of;
    use dds_engine::build::fixtures;
    use mongo_wire::CredentialStore;
    use serde_json::{json, Value};

    async fn call(t: &Env, action: &str, params: &[(&str, &str)]) -> Result<Value, ApiError> {
        crate::server::actions::call(t.ctx.clone(), req(action, params)).await
    }

    #[test]
    fn the_vendor_password_rule() {
        for ok in [
            "Str0ngpass",
            "abc123!#xyz",
            "ABCdef12",
            "aB3!aB3!aB3!aB3!aB3!aB3!aB3!aB3!",
        ] {
            assert!(password_ok(ok), "{ok}");
        }
        for bad in [
            "short1A",
            "alllowercase",
            "lower1234",
            "UPPER!!!!",
            "has space1A",
            "Ünïcode12ab",
            "aB3!aB3!aB3!aB3!aB3!aB3!aB3!aB3!x",
            "quote\"1Aa",
        ] {
            assert!(!password_ok(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn describe_reset_and_describe_the_root_account() {
        let t = env(200.0).await;
        let (_, older) = kernels(&t, "4.4");
        let id = t
            .running_instance(
                "dds-ac1",
                fixtures::replica_set(fixtures::psh("rs", &older)),
                "4.4",
            )
            .await;
        // Created without a password: no account yet.
        let v = call(&t, "DescribeAccounts", &[("DBInstanceId", &id)])
            .await
            .unwrap();
        assert_eq!(v, json!({"Accounts": {"Account": []}}));
        let e = call(
            &t,
            "ModifyAccountDescription",
            &[
                ("DBInstanceId", &id),
                ("AccountName", "root"),
                ("AccountDescription", "admin"),
            ],
        )
        .await
        .unwrap_err();
        assert_eq!((e.code(), e.status()), ("InvalidAccountName.NotFound", 404));

        let cases: Vec<Refusal> = vec![
            (
                vec![("DBInstanceId", &id), ("AccountPassword", "Str0ngpass")],
                "MissingAccountName",
                400,
            ),
            (
                vec![("DBInstanceId", &id), ("AccountName", "root")],
                "MissingAccountPassword",
                400,
            ),
            (
                vec![
                    ("DBInstanceId", &id),
                    ("AccountName", "app"),
                    ("AccountPassword", "Str0ngpass"),
                ],
                "InvalidAccountName.NotFound",
                404,
            ),
            (
                vec![
                    ("DBInstanceId", &id),
                    ("AccountName", "root"),
                    ("AccountPassword", "weakpass"),
                ],
                "InvalidParameter",
                400,
            ),
            (
                vec![
                    ("DBInstanceId", &id),
                    ("AccountName", "root"),
                    ("AccountPassword", "Str0ngpass"),
                    ("CharacterType", "mongos"),
                ],
                "InvalidParameter",
                400,
            ),
            (
                vec![
                    ("DBInstanceId", "dds-nope"),
                    ("AccountName", "root"),
                    ("AccountPassword", "Str0ngpass"),
                ],
                "InvalidDBInstanceId.NotFound",
                404,
            ),
        ];
        for (params, code, status) in cases {
            let e = call(&t, "ResetAccountPassword", &params).await.unwrap_err();
            assert_eq!((e.code(), e.status()), (code, status), "{params:?}");
            assert!(!e.message().contains("weakpass"), "{}", e.message());
        }
        assert!(users_of(&*t.store, &id)
            .await
            .unwrap()
            .lookup("admin", "root")
            .is_none());

        call(
            &t,
            "ResetAccountPassword",
            &[
                ("DBInstanceId", &id),
                ("AccountName", "root"),
                ("AccountPassword", "Str0ngpass"),
            ],
        )
        .await
        .unwrap();
        assert!(users_of(&*t.store, &id)
            .await
            .unwrap()
            .lookup("admin", "root")
            .is_some());
        call(
            &t,
            "ModifyAccountDescription",
            &[
                ("DBInstanceId", &id),
                ("AccountName", "root"),
                ("AccountDescription", "the admin"),
            ],
        )
        .await
        .unwrap();
        let v = call(&t, "DescribeAccounts", &[("DBInstanceId", &id)])
            .await
            .unwrap();
        assert_eq!(
            v,
            json!({"Accounts": {"Account": [{
                "AccountDescription": "the admin", "AccountName": "root",
                "AccountStatus": "Available", "CharacterType": "normal", "DBInstanceId": id,
                "DBName": "admin", "Roles": {"Role": [{"DBName": "admin", "Role": "root"}]},
            }]}})
        );
        let v = call(
            &t,
            "DescribeAccounts",
            &[("DBInstanceId", &id), ("AccountName", "app")],
        )
        .await
        .unwrap();
        assert_eq!(v["Accounts"]["Account"], json!([]));

        // While a restart runs: refused.
        call(&t, "RestartDBInstance", &[("DBInstanceId", &id)])
            .await
            .unwrap();
        let e = call(
            &t,
            "ResetAccountPassword",
            &[
                ("DBInstanceId", &id),
                ("AccountName", "root"),
                ("AccountPassword", "0ther!Pass"),
            ],
        )
        .await
        .unwrap_err();
        assert_eq!(
            (e.code(), e.status()),
            ("OperationDenied.DBInstanceStatus", 403)
        );
        t.settled(&id, 30_000).await;
    }
}
