//! Kernel versions: the live catalog and the actions that read or extend it.
//!
//! - [`KernelCatalog`]: the embedded catalog (`dds-engine/data/kernels.json`) plus the kernels an
//!   operator published with `DdsdPublishKernelVersion`. Published kernels are kept in the store
//!   (setting [`PUBLISHED_SETTING`], a JSON list in publishing order) and replayed over the
//!   embedded catalog on start, so they survive restarts. Readers take a cheap [`Arc`] snapshot;
//!   publishing is serialised and swaps the snapshot only after the store has the new list.
//! - `DescribeAvailableEngineVersion`: the engine (major) versions the instance could be upgraded
//!   to — every later engine version in the catalog; none for a standalone, whose engine version
//!   cannot change. An empty list when the instance is on the latest.
//! - `DescribeKernelReleaseNotes`: the release notes of the kernels later than `KernelVersion`;
//!   a string in neither vendor format is `InvalidKernelReleaseNotes` (400).
//! - `DdsdPublishKernelVersion` (operator extension, admin key only): adds a kernel to an engine
//!   version. It becomes the newest kernel of that engine, so every instance on it can be upgraded
//!   (`UpgradeDBInstanceKernelVersion` targets the newest kernel).

use std::sync::{Arc, RwLock};

use acs_rpc::{RpcError, Verified};
use dds_engine::catalog::{Catalog, CatalogError, KernelRelease, MAX_KERNEL_VERSION_LEN};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::errors::{self, from_store};
use super::params::{clip, optional, required};
use super::Context;
use crate::server::store::Store;

/// The store setting holding the published kernels.
pub const PUBLISHED_SETTING: &str = "kernels.published";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Published {
    engine_version: String,
    #[serde(flatten)]
    release: KernelRelease,
}

/// The catalog every handler and the runtime read.
pub struct KernelCatalog {
    current: RwLock<Arc<Catalog>>,
    /// What the store holds; the lock also serialises publishing.
    published: tokio::sync::Mutex<Vec<Published>>,
}

impl std::fmt::Debug for KernelCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelCatalog").finish_non_exhaustive()
    }
}

/// Why a publish was refused, as the wire error.
fn publish_error(e: CatalogError) -> RpcError {
    match e {
        CatalogError::UnknownEngine(v) => RpcError::new(
            "InvalidEngineVersion.NotFound",
            404,
            format!("Engine version {} is not in the catalog.", clip(&v)),
        ),
        CatalogError::DuplicateKernel { kernel } => RpcError::new(
            "InvalidKernelVersion.Duplicate",
            400,
            format!("Kernel version {} is already published.", clip(&kernel)),
        ),
        CatalogError::NotNewer {
            kernel, previous, ..
        } => RpcError::new(
            "InvalidKernelVersion.NotNewer",
            400,
            format!(
                "Kernel version {} must be newer than {} (both its build date and ReleaseDate).",
                clip(&kernel),
                previous
            ),
        ),
        CatalogError::BadKernelVersion { reason, .. } => RpcError::new(
            "InvalidKernelVersion.Malformed",
            400,
            format!("The format of specified KernelVersion is invalid: {reason}."),
        ),
        CatalogError::BadReleaseDate { .. } => RpcError::invalid_parameter(
            "ReleaseDate",
            "Use YYYY-MM-DD, not earlier than the kernel's build date.",
        ),
        CatalogError::BadReleaseNote { .. } => RpcError::invalid_parameter(
            "ReleaseNote",
            format!(
                "The note must not be empty and at most {} bytes.",
                dds_engine::catalog::MAX_RELEASE_NOTE_LEN
            ),
        ),
        other => RpcError::malformed_request(other.to_string()),
    }
}

impl KernelCatalog {
    /// The embedded catalog alone.
    pub fn embedded() -> KernelCatalog {
        KernelCatalog::with(Catalog::embedded(), Vec::new())
    }

    fn with(catalog: Catalog, published: Vec<Published>) -> KernelCatalog {
        KernelCatalog {
            current: RwLock::new(Arc::new(catalog)),
            published: tokio::sync::Mutex::new(published),
        }
    }

    /// The embedded catalog with the published kernels replayed over it. A published kernel the
    /// embedded catalog already has (a newer ddsd ships it) is skipped; one that no longer fits is
    /// skipped with a warning and kept in the store.
    pub async fn load(store: &dyn Store) -> anyhow::Result<KernelCatalog> {
        let mut catalog = Catalog::embedded();
        let published: Vec<Published> = match store.get_setting(PUBLISHED_SETTING).await? {
            None => Vec::new(),
            Some(text) => serde_json::from_str(&text).map_err(|e| {
                anyhow::anyhow!("store setting {PUBLISHED_SETTING} does not decode: {e}")
            })?,
        };
        for p in &published {
            match catalog.publish(&p.engine_version, p.release.clone()) {
                Ok(()) => {}
                Err(CatalogError::DuplicateKernel { .. }) => {
                    tracing::debug!(kernel = %p.release.kernel_version, "published kernel is now in the embedded catalog");
                }
                Err(e) => {
                    tracing::warn!(kernel = %p.release.kernel_version, error = %e, "a published kernel no longer fits the catalog; skipped");
                }
            }
        }
        Ok(KernelCatalog::with(catalog, published))
    }

    /// The catalog as of now.
    pub fn snapshot(&self) -> Arc<Catalog> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Publishes a kernel: validated against the catalog, persisted, then visible to readers.
    pub async fn publish(
        &self,
        store: &dyn Store,
        engine_version: &str,
        release: KernelRelease,
    ) -> Result<(), RpcError> {
        let mut published = self.published.lock().await;
        let mut next = (*self.snapshot()).clone();
        next.publish(engine_version, release.clone())
            .map_err(publish_error)?;
        let mut list = published.clone();
        list.push(Published {
            engine_version: engine_version.to_string(),
            release,
        });
        let text = serde_json::to_string(&list).map_err(|e| {
            tracing::error!("encoding published kernels: {e}");
            RpcError::from(acs_rpc::Gateway::InternalError)
        })?;
        store
            .put_setting(PUBLISHED_SETTING, &text)
            .await
            .map_err(from_store)?;
        *published = list;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        Ok(())
    }
}

/// `DescribeAvailableEngineVersion`.
pub async fn describe_available_engine_version(
    ctx: Arc<Context>,
    req: Verified,
) -> Result<Value, RpcError> {
    let id = required(&req, "DBInstanceId")?;
    let instance = ctx
        .store
        .get_instance(id)
        .await
        .map_err(from_store)?
        .ok_or_else(errors::instance_not_found)?;
    let catalog = ctx.kernels.snapshot();
    let later: Vec<&str> = if instance.is_standalone() {
        Vec::new()
    } else {
        catalog
            .engine_versions()
            .skip_while(|v| *v != instance.engine_version)
            .skip(1)
            .collect()
    };
    Ok(json!({"EngineVersions": {"EngineVersion": later}}))
}

/// `DescribeKernelReleaseNotes`.
pub fn describe_kernel_release_notes(ctx: &Context, req: &Verified) -> Result<Value, RpcError> {
    let kernel = required(req, "KernelVersion")?;
    if kernel.len() > MAX_KERNEL_VERSION_LEN {
        return Err(errors::invalid_kernel_release_notes());
    }
    let catalog = ctx.kernels.snapshot();
    let notes: Vec<Value> = catalog
        .releases_after(kernel)
        .map_err(|_| errors::invalid_kernel_release_notes())?
        .into_iter()
        .map(|k| json!({"KernelVersion": k.kernel_version, "ReleaseNote": k.release_note}))
        .collect();
    Ok(json!({"ReleaseNotes": {"ReleaseNote": notes}}))
}

/// `DdsdPublishKernelVersion` (operator extension): `EngineVersion`, `KernelVersion`,
/// `ReleaseNote`, optional `ReleaseDate` (`YYYY-MM-DD`, default today in UTC).
pub async fn publish_kernel_version(ctx: Arc<Context>, req: Verified) -> Result<Value, RpcError> {
    ctx.require_admin(&req)?;
    let engine_version = required(&req, "EngineVersion")?;
    let kernel_version = required(&req, "KernelVersion")?;
    let release_note = required(&req, "ReleaseNote")?;
    let release_date = match optional(&req, "ReleaseDate") {
        Some(d) => d.to_string(),
        None => {
            let today = time::OffsetDateTime::now_utc().date();
            format!(
                "{:04}-{:02}-{:02}",
                today.year(),
                u8::from(today.month()),
                today.day()
            )
        }
    };
    let release = KernelRelease {
        kernel_version: kernel_version.to_string(),
        release_date: release_date.clone(),
        release_note: release_note.to_string(),
    };
    ctx.kernels
        .publish(&*ctx.store, engine_version, release)
        .await?;
    tracing::info!(engine_version, kernel_version, "published a kernel version");
    Ok(json!({
        "EngineVersion": engine_version,
        "KernelVersion": kernel_version,
        "ReleaseDate": release_date,
    }))
}
