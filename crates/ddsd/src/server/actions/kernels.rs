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

use crate::server::actions::errors::ApiError;
use dds_engine::catalog::{Catalog, CatalogError, KernelRelease, MAX_KERNEL_VERSION_LEN};
use serde::{Deserialize, Serialize};

use super::errors::from_store;
use super::params::{optional, required, InstanceRequest};
use super::rolling::load_instance;
use super::{Call, Context, FromParams, Params};
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
fn publish_error(e: CatalogError) -> ApiError {
    match e {
        CatalogError::UnknownEngine(engine_version) => {
            ApiError::EngineVersionNotFound { engine_version }
        }
        CatalogError::DuplicateKernel { kernel } => ApiError::KernelVersionDuplicate { kernel },
        CatalogError::NotNewer {
            kernel, previous, ..
        } => ApiError::KernelVersionNotNewer { kernel, previous },
        CatalogError::BadKernelVersion { reason, .. } => ApiError::KernelVersionMalformed {
            reason: reason.to_string(),
        },
        CatalogError::BadReleaseDate { .. } => ApiError::invalid_parameter(
            "ReleaseDate",
            "Use YYYY-MM-DD, not earlier than the kernel's build date.",
        ),
        CatalogError::BadReleaseNote { .. } => ApiError::invalid_parameter(
            "ReleaseNote",
            format!(
                "The note must not be empty and at most {} bytes.",
                dds_engine::catalog::MAX_RELEASE_NOTE_LEN
            ),
        ),
        other => ApiError::malformed_request(other.to_string()),
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
    ) -> Result<(), ApiError> {
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
            ApiError::from(acs_rpc::Gateway::InternalError)
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

#[derive(Debug, Serialize)]
pub struct EngineVersions {
    #[serde(rename = "EngineVersion")]
    pub engine_version: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeAvailableEngineVersionResponse {
    pub engine_versions: EngineVersions,
}

/// The major an instance on `current` may be upgraded to: the next one on MongoDB's upgrade path
/// (`dds_engine::catalog::ENGINE_UPGRADE_PATH`), when the kernel catalog has kernels for it. Both
/// `DescribeAvailableEngineVersion` and `UpgradeDBInstanceEngineVersion` answer from this.
pub(crate) fn next_engine_version(catalog: &Catalog, current: &str) -> Option<String> {
    dds_engine::catalog::next_engine_version(current)
        .filter(|next| catalog.newest(next).is_some())
        .map(str::to_string)
}

/// `DescribeAvailableEngineVersion`.
pub async fn describe_available_engine_version(
    ctx: Arc<Context>,
    req: InstanceRequest,
    _call: Call,
) -> Result<DescribeAvailableEngineVersionResponse, ApiError> {
    let instance = load_instance(&ctx, &req.db_instance_id).await?;
    let catalog = ctx.kernels.snapshot();
    let engine_version = if instance.is_standalone() {
        Vec::new()
    } else {
        // The one major `UpgradeDBInstanceEngineVersion` accepts: the next on the path, one at a time.
        next_engine_version(&catalog, &instance.engine_version)
            .into_iter()
            .collect()
    };
    Ok(DescribeAvailableEngineVersionResponse {
        engine_versions: EngineVersions { engine_version },
    })
}

/// `DescribeKernelReleaseNotes`: `KernelVersion`.
#[derive(Debug, Clone)]
pub struct ReleaseNotesRequest {
    pub kernel_version: String,
}

impl FromParams for ReleaseNotesRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let kernel = required(params, "KernelVersion")?;
        if kernel.len() > MAX_KERNEL_VERSION_LEN {
            return Err(ApiError::InvalidKernelReleaseNotes);
        }
        Ok(Self {
            kernel_version: kernel.to_string(),
        })
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReleaseNote {
    pub kernel_version: String,
    pub release_note: String,
}

#[derive(Debug, Serialize)]
pub struct ReleaseNotes {
    #[serde(rename = "ReleaseNote")]
    pub release_note: Vec<ReleaseNote>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeKernelReleaseNotesResponse {
    pub release_notes: ReleaseNotes,
}

/// `DescribeKernelReleaseNotes`.
pub async fn describe_kernel_release_notes(
    ctx: Arc<Context>,
    req: ReleaseNotesRequest,
    _call: Call,
) -> Result<DescribeKernelReleaseNotesResponse, ApiError> {
    let catalog = ctx.kernels.snapshot();
    let release_note = catalog
        .releases_after(&req.kernel_version)
        .map_err(|_| ApiError::InvalidKernelReleaseNotes)?
        .into_iter()
        .map(|k| ReleaseNote {
            kernel_version: k.kernel_version.clone(),
            release_note: k.release_note.clone(),
        })
        .collect();
    Ok(DescribeKernelReleaseNotesResponse {
        release_notes: ReleaseNotes { release_note },
    })
}

/// `DdsdPublishKernelVersion` (operator extension): `EngineVersion`, `KernelVersion`,
/// `ReleaseNote`, optional `ReleaseDate` (`YYYY-MM-DD`, default today in UTC). The catalog checks
/// the values themselves when publishing. `Rollout`: `Manual` (default: instances upgrade when
/// asked) or `Scheduled` (a minor-version-upgrade event for every instance of the engine version
/// on an older kernel, at its next maintenance window, or at `SwitchTime` when given).
#[derive(Debug, Clone)]
pub struct PublishKernelRequest {
    pub engine_version: String,
    pub kernel_version: String,
    pub release_note: String,
    pub release_date: Option<String>,
    pub scheduled: bool,
    pub switch_ms: Option<u64>,
}

impl FromParams for PublishKernelRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let scheduled = match optional(params, "Rollout") {
            None | Some("Manual") => false,
            Some("Scheduled") => true,
            Some(v) => {
                return Err(ApiError::invalid_parameter(
                    "Rollout",
                    format!(
                        "Valid values are Manual and Scheduled, got \"{}\".",
                        super::params::clip(v)
                    ),
                ))
            }
        };
        let switch_ms = optional(params, "SwitchTime")
            .map(|v| super::params::parse_utc_ms("SwitchTime", v))
            .transpose()?;
        if switch_ms.is_some() && !scheduled {
            return Err(ApiError::invalid_parameter(
                "SwitchTime",
                "A switch time needs Rollout=Scheduled.",
            ));
        }
        Ok(Self {
            engine_version: required(params, "EngineVersion")?.to_string(),
            kernel_version: required(params, "KernelVersion")?.to_string(),
            release_note: required(params, "ReleaseNote")?.to_string(),
            release_date: optional(params, "ReleaseDate").map(str::to_string),
            scheduled,
            switch_ms,
        })
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PublishKernelResponse {
    pub engine_version: String,
    pub kernel_version: String,
    pub release_date: String,
    /// The scheduled O&M events created (`Rollout=Scheduled`), by id.
    pub task_ids: Vec<i64>,
}

/// `DdsdPublishKernelVersion`.
pub async fn publish_kernel_version(
    ctx: Arc<Context>,
    req: PublishKernelRequest,
    _call: Call,
) -> Result<PublishKernelResponse, ApiError> {
    let release_date = req.release_date.unwrap_or_else(|| {
        let today = time::OffsetDateTime::now_utc().date();
        format!(
            "{:04}-{:02}-{:02}",
            today.year(),
            u8::from(today.month()),
            today.day()
        )
    });
    let release = KernelRelease {
        kernel_version: req.kernel_version.clone(),
        release_date: release_date.clone(),
        release_note: req.release_note,
    };
    let rollout = if req.scheduled {
        Some(
            super::events::plan_rollout(
                &ctx,
                &req.engine_version,
                &req.kernel_version,
                req.switch_ms,
            )
            .await?,
        )
    } else {
        None
    };
    ctx.kernels
        .publish(&*ctx.store, &req.engine_version, release)
        .await?;
    tracing::info!(engine_version = %req.engine_version, kernel_version = %req.kernel_version, "published a kernel version");
    let task_ids = match rollout {
        Some(tasks) => {
            let ids = super::events::record_rollout(&ctx, tasks).await?;
            tracing::info!(kernel_version = %req.kernel_version, events = ids.len(), "scheduled the kernel's rollout");
            ids
        }
        None => Vec::new(),
    };
    Ok(PublishKernelResponse {
        engine_version: req.engine_version,
        kernel_version: req.kernel_version,
        release_date,
        task_ids,
    })
}
