//! The product's error table: every refusal and failure ddsd answers, as one enum ([`ApiError`])
//! whose rows give the wire code, HTTP status and message (dds-api.md §5, docs/errors.md).
//!
//! Handlers and the server answer only with these rows; the rows of the POP gateway (signature,
//! timestamp, throttling, `InternalError`, ...) stay in `acs_rpc::Gateway` and are carried here as
//! [`ApiError::Gateway`]. The engine reports reasons ([`PreflightError`]), never codes: their
//! mapping is [`ApiError::from_preflight`].
//!
//! A store error caused by the request (unknown id, wrong status, reused `ClientToken`, a value the
//! store's limits refuse) becomes the vendor's 4xx; anything else (I/O, a damaged file, shutdown) is
//! logged and answered `InternalError` / `ServiceUnavailable` without detail.

use std::fmt;

use acs_rpc::{Gateway, RpcError};
use dds_engine::workflow::PreflightError;

use super::params::clip;
use crate::server::store::StoreError;

/// One error answer. The variant fixes code and status; its fields only fill in the message.
#[derive(Clone, PartialEq, Eq)]
pub enum ApiError {
    /// A row of the gateway table (acs-rpc), with its own message.
    Gateway(Gateway),
    /// A refusal acs-rpc's parameter readers built (a flattened list, a protocol parameter).
    Request(RpcError),

    // Protocol, checked by the server before any action runs.
    /// The body did not arrive within `body_read_timeout_ms`.
    RequestTimeout {
        timeout_ms: u128,
    },
    /// The body is larger than `max_body_bytes`.
    RequestEntityTooLarge {
        limit_bytes: usize,
    },
    /// An operator extension called with a key that is not admin (`Forbidden.RAM`).
    ForbiddenRam,

    // Parameters.
    /// `Missing<Name>`; holds the code, so that [`ApiError::code`] can lend it.
    Missing {
        code: String,
    },
    /// `InvalidParameter` naming the parameter.
    InvalidParameter {
        name: String,
        reason: String,
    },
    /// `InvalidParameter` for a request that cannot be read as a whole.
    MalformedRequest {
        reason: String,
    },
    /// `InvalidParameter`: a `NodeId` that is not one of the instance's (the engine's reason appended).
    InvalidNodeId {
        detail: String,
    },

    // Instances.
    InstanceNotFound,
    StatusDenied,
    /// `OperationDenied.DBInstanceStatus` naming the unfinished operation in the way: the status may
    /// well read `Running` (a `SwitchMode=1` operation waiting for its window).
    OperationUnfinished {
        operation_id: String,
    },
    ChargeTypeViolation,
    /// `InstanceReleaseProtection`: `DeleteDBInstance` of an instance with release protection on.
    InstanceReleaseProtection,
    IdempotentParameterMismatch,
    ClassNotFound {
        param: String,
    },
    RegionNotFound,
    ZoneNotFound,
    StatusNotFound,

    // Kernels.
    InvalidKernelReleaseNotes,
    EngineVersionNotFound {
        engine_version: String,
    },
    KernelVersionMalformed {
        reason: String,
    },
    KernelVersionDuplicate {
        kernel: String,
    },
    KernelVersionNotNewer {
        kernel: String,
        previous: String,
    },
    KernelVersionNotFound {
        kernel: String,
        engine_version: String,
    },

    // Upgrades, restarts, plans.
    /// `OperationDenied.DBInstanceType`: a standalone, or a set with one electable member.
    InstanceType {
        detail: String,
    },
    AlreadyLatest,
    /// `IncorrectDBInstanceState`: the live preflight failed, or there is no deployment; `detail`
    /// follows the vendor's sentence.
    IncorrectState {
        detail: String,
    },
    OperationNotFound,

    // Faults.
    NotSimulated,
    /// `DdsdImportDBInstance` without the `mongodb` data plane.
    NotMongoPlane,
    ApiFaultQuota {
        max: usize,
    },
    MissingErrorCode,
    /// An error an operator armed on purpose (`DdsdArmApiFault`): any code and status.
    Injected {
        code: String,
        status: u16,
        message: String,
        retry_after_ms: Option<u64>,
    },

    // Primary switches and one-member restarts.
    /// `EngineVersion.ERROR` (the code the vendor's UpgradeDBInstanceEngineVersion page lists, 400): the
    /// target major is not the next one on the upgrade path (same, lower, skipped, or unknown).
    EngineVersionError {
        detail: String,
    },
    /// `HaStatusNotSupport`: no electable secondary caught up to hand the primary to.
    HaStatusNotSupport {
        detail: String,
    },
    /// `InvalidSwitchType`: `SwitchDBInstanceHA`'s `SwitchMode` is neither 0 nor 1.
    InvalidSwitchType,
    /// `InvalidParameter`: a `RoleId` / `RoleIds` entry that is not a member of the replica set in scope.
    InvalidRoleId {
        detail: String,
    },

    // Accounts.
    /// `InvalidAccountName.NotFound`: an `AccountName` other than the instance's `root`.
    AccountNotFound,
    /// `DryRunOperation`: a `DryRun=true` request passed every check; nothing changed.
    DryRunOperation,
}

const STATUS_DENIED: &str = "The operation is not permitted due to status of instance.";
const INCORRECT_STATE: &str = "Current DB instance state does not support this operation.";
const INSTANCE_TYPE: &str = "The operation is not permitted due to type of the instance.";

impl ApiError {
    /// `Missing<Name>` (400), the POP gateway's answer for an absent required parameter.
    pub fn missing(name: &str) -> Self {
        Self::Missing {
            code: format!("Missing{name}"),
        }
    }

    /// `InvalidParameter` (400) naming the parameter, in the vendor's wording plus a reason.
    pub fn invalid_parameter(name: &str, reason: impl fmt::Display) -> Self {
        Self::InvalidParameter {
            name: name.to_string(),
            reason: reason.to_string(),
        }
    }

    /// `InvalidParameter` (400) for a request that cannot be read at all.
    pub fn malformed_request(reason: impl fmt::Display) -> Self {
        Self::MalformedRequest {
            reason: reason.to_string(),
        }
    }

    /// `IncorrectDBInstanceState` (403) with what exactly is wrong.
    pub fn incorrect_state(detail: impl fmt::Display) -> Self {
        Self::IncorrectState {
            detail: detail.to_string(),
        }
    }

    /// Wire code, e.g. `InvalidDBInstanceId.NotFound`.
    pub fn code(&self) -> &str {
        use ApiError::*;
        match self {
            Gateway(g) => g.code(),
            Request(e) => e.code(),
            RequestTimeout { .. } => "RequestTimeout",
            RequestEntityTooLarge { .. } => "RequestEntityTooLarge",
            ForbiddenRam => acs_rpc::Gateway::ForbiddenRam.code(),
            Missing { code } => code,
            InvalidParameter { .. } | MalformedRequest { .. } | InvalidNodeId { .. } => {
                "InvalidParameter"
            }
            InstanceNotFound => "InvalidDBInstanceId.NotFound",
            StatusDenied | OperationUnfinished { .. } => "OperationDenied.DBInstanceStatus",
            ChargeTypeViolation => "ChargeTypeViolation",
            InstanceReleaseProtection => "InstanceReleaseProtection",
            IdempotentParameterMismatch => "IdempotentParameterMismatch",
            ClassNotFound { .. } => "InvalidDBInstanceClass.NotFound",
            RegionNotFound => "InvalidRegion.NotFound",
            ZoneNotFound => "InvalidZoneId.NotFound",
            StatusNotFound => "InvalidStatus.NotFound",
            InvalidKernelReleaseNotes => "InvalidKernelReleaseNotes",
            EngineVersionNotFound { .. } => "InvalidEngineVersion.NotFound",
            KernelVersionMalformed { .. } => "InvalidKernelVersion.Malformed",
            KernelVersionDuplicate { .. } => "InvalidKernelVersion.Duplicate",
            KernelVersionNotNewer { .. } => "InvalidKernelVersion.NotNewer",
            KernelVersionNotFound { .. } => "InvalidKernelVersion.NotFound",
            InstanceType { .. } => "OperationDenied.DBInstanceType",
            AlreadyLatest => "InvalidMinorVersionAlreadyLatest",
            IncorrectState { .. } => "IncorrectDBInstanceState",
            OperationNotFound => "InvalidOperationId.NotFound",
            NotSimulated => "OperationDenied.NotSimulated",
            NotMongoPlane => "OperationDenied.DataPlane",
            ApiFaultQuota { .. } => "QuotaExceeded.ApiFaults",
            MissingErrorCode => "MissingErrorCode",
            Injected { code, .. } => code,
            HaStatusNotSupport { .. } => "HaStatusNotSupport",
            EngineVersionError { .. } => "EngineVersion.ERROR",
            InvalidSwitchType => "InvalidSwitchType",
            InvalidRoleId { .. } => "InvalidParameter",
            AccountNotFound => "InvalidAccountName.NotFound",
            DryRunOperation => "DryRunOperation",
        }
    }

    /// HTTP status.
    pub fn status(&self) -> u16 {
        use ApiError::*;
        match self {
            Gateway(g) => g.status(),
            Request(e) => e.status(),
            RequestTimeout { .. } => 408,
            RequestEntityTooLarge { .. } => 413,
            ForbiddenRam => acs_rpc::Gateway::ForbiddenRam.status(),
            Missing { .. }
            | InvalidParameter { .. }
            | MalformedRequest { .. }
            | InvalidNodeId { .. }
            | ChargeTypeViolation
            | IdempotentParameterMismatch
            | InvalidKernelReleaseNotes
            | KernelVersionMalformed { .. }
            | KernelVersionDuplicate { .. }
            | KernelVersionNotNewer { .. }
            | AlreadyLatest
            | ApiFaultQuota { .. }
            | MissingErrorCode
            | HaStatusNotSupport { .. }
            | EngineVersionError { .. }
            | InvalidSwitchType
            | InvalidRoleId { .. }
            | DryRunOperation => 400,
            StatusDenied
            | OperationUnfinished { .. }
            | InstanceReleaseProtection
            | InstanceType { .. }
            | IncorrectState { .. }
            | NotSimulated
            | NotMongoPlane => 403,
            InstanceNotFound
            | ClassNotFound { .. }
            | RegionNotFound
            | ZoneNotFound
            | StatusNotFound
            | EngineVersionNotFound { .. }
            | KernelVersionNotFound { .. }
            | OperationNotFound
            | AccountNotFound => 404,
            Injected { status, .. } => *status,
        }
    }

    /// Human-readable message. Client text it echoes is clipped where the row is built.
    pub fn message(&self) -> String {
        use ApiError::*;
        match self {
            Gateway(g) => g.message().to_string(),
            Request(e) => e.message().to_string(),
            RequestTimeout { timeout_ms } => {
                format!("The request body was not received within {timeout_ms} ms.")
            }
            RequestEntityTooLarge { limit_bytes } => {
                format!("The request body is larger than {limit_bytes} bytes.")
            }
            ForbiddenRam => RpcError::gateway_with_detail(
                acs_rpc::Gateway::ForbiddenRam,
                "This action is an operator extension and needs an admin AccessKey.",
            )
            .message()
            .to_string(),
            Missing { code } => RpcError::missing(code.strip_prefix("Missing").unwrap_or(code))
                .message()
                .to_string(),
            InvalidParameter { name, reason } => RpcError::invalid_parameter(name, reason)
                .message()
                .to_string(),
            MalformedRequest { reason } => {
                RpcError::malformed_request(reason).message().to_string()
            }
            InvalidNodeId { detail } => {
                format!("The specified parameter NodeId is not valid. ({detail})")
            }
            InstanceNotFound => "The DBInstanceId provided does not exist in our records.".into(),
            StatusDenied => STATUS_DENIED.into(),
            OperationUnfinished { operation_id } => format!(
                "{STATUS_DENIED} (operation {operation_id} of this instance is unfinished; \
                 DdsdDescribeOperations shows it)"
            ),
            ChargeTypeViolation => {
                "The operation is not permitted due to charge type of the instance.".into()
            }
            InstanceReleaseProtection => {
                "The operation is not permitted due to instance release protection.".into()
            }
            IdempotentParameterMismatch => "Request uses a client token in a previous request \
                                            but is not identical to that request."
                .into(),
            ClassNotFound { param } => {
                format!("Specified DB instance class is not found. ({param})")
            }
            RegionNotFound => {
                "The RegionId or ZoneId provided does not exist in our records.".into()
            }
            ZoneNotFound => "The ZoneId provided is invalid.".into(),
            StatusNotFound => "The Status provided does not exist in our records.".into(),
            InvalidKernelReleaseNotes => "The format of specified KernelVersion is invalid.".into(),
            EngineVersionNotFound { engine_version } => format!(
                "Engine version {} is not in the catalog.",
                clip(engine_version)
            ),
            KernelVersionMalformed { reason } => {
                format!("The format of specified KernelVersion is invalid: {reason}.")
            }
            KernelVersionDuplicate { kernel } => {
                format!("Kernel version {} is already published.", clip(kernel))
            }
            KernelVersionNotNewer { kernel, previous } => format!(
                "Kernel version {} must be newer than {previous} (both its build date and \
                 ReleaseDate).",
                clip(kernel)
            ),
            KernelVersionNotFound {
                kernel,
                engine_version,
            } => format!(
                "Kernel version {} is not a catalogued kernel of engine version {}.",
                clip(kernel),
                clip(engine_version)
            ),
            InstanceType { detail } => format!("{INSTANCE_TYPE} ({detail})"),
            AlreadyLatest => "Minor version for instance is already the latest version.".into(),
            IncorrectState { detail } => format!("{INCORRECT_STATE} {detail}"),
            OperationNotFound => {
                "The OperationId provided does not exist in our records for this instance.".into()
            }
            NotSimulated => "Faults can only be injected into the simulated data plane.".into(),
            NotMongoPlane => {
                "Deployments can be imported only when ddsd runs with plane = \"mongodb\".".into()
            }
            ApiFaultQuota { max } => format!(
                "At most {max} API faults are kept, spent ones included; clear some with \
                 DdsdClearApiFaults."
            ),
            MissingErrorCode => {
                "ErrorCode is mandatory for this action unless DelayMs is given.".into()
            }
            Injected { message, .. } => message.clone(),
            HaStatusNotSupport { detail } => {
                format!("Current DB instance HA status does not support this operation. ({detail})")
            }
            InvalidSwitchType => {
                "Specified Switch Type is not valid. (SwitchMode is 0 or 1)".into()
            }
            EngineVersionError { detail } => {
                format!("The specified EngineVersion is not valid for this instance. ({detail})")
            }
            InvalidRoleId { detail } => {
                format!("The specified parameter RoleId is not valid. ({detail})")
            }
            AccountNotFound => "The specified account does not exist. (ddsd keeps one account per \
                                instance: root)"
                .into(),
            DryRunOperation => "Request validation has been passed with DryRun flag set.".into(),
        }
    }

    /// The wait to announce in `x-acs-retry-after`: only an armed fault that asks for one (the
    /// throttling rows of the server's limiter are gateway rows).
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            Self::Injected { retry_after_ms, .. } => retry_after_ms.map(|ms| ms.max(1)),
            Self::Request(e) => e.retry_after_ms(),
            _ => None,
        }
    }

    /// A refusal of the engine's preflight, as the vendor error with what exactly failed appended.
    /// Target and configuration errors are ddsd's own bugs, not the client's: logged, `InternalError`.
    pub fn from_preflight(e: &PreflightError) -> Self {
        use PreflightError::*;
        match e {
            NotRunning { .. } => Self::StatusDenied,
            AlreadyOnTarget { .. } => Self::AlreadyLatest,
            Standalone | NoElectableSecondary { .. } | WriteMajorityLoss { .. } => {
                Self::InstanceType {
                    detail: e.to_string(),
                }
            }
            NoSuchNode { .. } | NotAReplicaSet { .. } => Self::InvalidNodeId {
                detail: e.to_string(),
            },
            NoSuchRole { .. } => Self::InvalidRoleId {
                detail: e.to_string(),
            },
            NoCaughtUpSecondary { .. } => Self::HaStatusNotSupport {
                detail: e.to_string(),
            },
            ReplicaSetNotObserved { .. }
            | MemberNotObserved { .. }
            | NoPrimary { .. }
            | MultiplePrimaries { .. }
            | MemberUnhealthy { .. }
            | LagTooHigh { .. }
            | OplogWindowTooSmall { .. }
            | BalancerNotObserved
            | MongosDown { .. }
            | FcvMismatch { .. } => Self::incorrect_state(format!("({e})")),
            InvalidTarget { .. } | InvalidConfig { .. } => {
                tracing::error!(error = %e, "rolling operation could not be planned");
                Self::Gateway(acs_rpc::Gateway::InternalError)
            }
        }
    }
}

impl From<&PreflightError> for ApiError {
    fn from(e: &PreflightError) -> Self {
        Self::from_preflight(e)
    }
}

impl From<PreflightError> for ApiError {
    fn from(e: PreflightError) -> Self {
        Self::from_preflight(&e)
    }
}

impl From<Gateway> for ApiError {
    fn from(g: Gateway) -> Self {
        Self::Gateway(g)
    }
}

impl From<RpcError> for ApiError {
    fn from(e: RpcError) -> Self {
        Self::Request(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        from_store(e)
    }
}

impl From<ApiError> for RpcError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Request(e) => e,
            ApiError::Injected {
                retry_after_ms: Some(ms),
                ..
            } => {
                RpcError::new(e.code().to_string(), e.status(), e.message()).with_retry_after_ms(ms)
            }
            e => RpcError::new(e.code().to_string(), e.status(), e.message()),
        }
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code(), self.status(), self.message())
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message())
    }
}

impl std::error::Error for ApiError {}

/// Maps a store error. `NotFound`/status/idempotency errors are the client's; the rest is ours.
pub fn from_store(e: StoreError) -> ApiError {
    match e {
        StoreError::InstanceNotFound(_) => ApiError::InstanceNotFound,
        StoreError::StatusMismatch { .. } => ApiError::StatusDenied,
        StoreError::OperationInProgress { operation_id, .. } => {
            ApiError::OperationUnfinished { operation_id }
        }
        StoreError::IdempotentParameterMismatch => ApiError::IdempotentParameterMismatch,
        StoreError::Invalid(reason) => ApiError::malformed_request(reason),
        StoreError::Closed | StoreError::Backend(_) => {
            tracing::error!(error = %e, "store unavailable");
            Gateway::ServiceUnavailable.into()
        }
        other => {
            tracing::error!(error = %other, "store failed");
            Gateway::InternalError.into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dds_engine::model::DbInstanceStatus;
    use dds_engine::plane::MemberState;

    /// One value of every variant; the match below breaks the build when a variant is added
    /// without a sample here (and so without its docs/errors.md check).
    fn samples() -> Vec<ApiError> {
        use ApiError::*;
        let s = String::new;
        let all = vec![
            Gateway(acs_rpc::Gateway::InternalError),
            Gateway(acs_rpc::Gateway::ServiceUnavailable),
            Request(RpcError::malformed_request("x")),
            RequestTimeout { timeout_ms: 1 },
            RequestEntityTooLarge { limit_bytes: 1 },
            ForbiddenRam,
            ApiError::missing("DBInstanceId"),
            ApiError::invalid_parameter("P", "x"),
            ApiError::malformed_request("x"),
            InvalidNodeId { detail: s() },
            InstanceNotFound,
            StatusDenied,
            OperationUnfinished { operation_id: s() },
            ChargeTypeViolation,
            InstanceReleaseProtection,
            IdempotentParameterMismatch,
            ClassNotFound { param: s() },
            RegionNotFound,
            ZoneNotFound,
            StatusNotFound,
            InvalidKernelReleaseNotes,
            EngineVersionNotFound {
                engine_version: s(),
            },
            KernelVersionMalformed { reason: s() },
            KernelVersionDuplicate { kernel: s() },
            KernelVersionNotNewer {
                kernel: s(),
                previous: s(),
            },
            KernelVersionNotFound {
                kernel: s(),
                engine_version: s(),
            },
            InstanceType { detail: s() },
            AlreadyLatest,
            IncorrectState { detail: s() },
            OperationNotFound,
            NotSimulated,
            NotMongoPlane,
            ApiFaultQuota { max: 64 },
            MissingErrorCode,
            Injected {
                code: "Any".into(),
                status: 599,
                message: s(),
                retry_after_ms: None,
            },
            HaStatusNotSupport { detail: s() },
            EngineVersionError { detail: s() },
            InvalidSwitchType,
            InvalidRoleId { detail: s() },
            AccountNotFound,
            DryRunOperation,
        ];
        for e in &all {
            match e {
                Gateway(_) | Request(_) | RequestTimeout { .. } | RequestEntityTooLarge { .. } => {}
                ForbiddenRam | Missing { .. } | InvalidParameter { .. } => {}
                MalformedRequest { .. } | InvalidNodeId { .. } | InstanceNotFound => {}
                StatusDenied | OperationUnfinished { .. } | ChargeTypeViolation => {}
                IdempotentParameterMismatch | ClassNotFound { .. } | RegionNotFound => {}
                ZoneNotFound | StatusNotFound | InvalidKernelReleaseNotes => {}
                EngineVersionNotFound { .. } | KernelVersionMalformed { .. } => {}
                KernelVersionDuplicate { .. } | KernelVersionNotNewer { .. } => {}
                KernelVersionNotFound { .. } | InstanceType { .. } | AlreadyLatest => {}
                IncorrectState { .. } | OperationNotFound | NotSimulated | NotMongoPlane => {}
                ApiFaultQuota { .. } | MissingErrorCode | Injected { .. } => {}
                HaStatusNotSupport { .. } | InvalidSwitchType | InvalidRoleId { .. } => {}
                EngineVersionError { .. } => {}
                AccountNotFound | DryRunOperation | InstanceReleaseProtection => {}
            }
        }
        all
    }

    /// `(code cell, HTTP cell)` of every table row of docs/errors.md.
    fn documented_rows() -> Vec<(String, String)> {
        let doc = include_str!("../../../../../docs/errors.md");
        doc.lines()
            .filter(|l| l.starts_with("| `"))
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                Some((cells.get(1)?.to_string(), cells.get(2)?.to_string()))
            })
            .collect()
    }

    #[test]
    fn every_row_is_documented_with_its_status() {
        let rows = documented_rows();
        for e in samples() {
            let code = match &e {
                // An armed fault answers whatever the operator chose.
                ApiError::Injected { .. } => continue,
                ApiError::Missing { .. } => "Missing<Name>".to_string(),
                e => e.code().to_string(),
            };
            let wanted = format!("`{code}`");
            assert!(
                rows.iter()
                    .any(|(codes, status)| codes.contains(&wanted)
                        && *status == e.status().to_string()),
                "docs/errors.md has no row for {code} with HTTP {}",
                e.status()
            );
        }
    }

    #[test]
    fn the_wire_error_carries_code_status_and_message() {
        for e in samples() {
            let rpc = RpcError::from(e.clone());
            assert_eq!(
                (rpc.code(), rpc.status(), rpc.message()),
                (e.code(), e.status(), e.message().as_str())
            );
        }
        let injected = RpcError::from(ApiError::Injected {
            code: "Throttling".into(),
            status: 400,
            message: "m".into(),
            retry_after_ms: Some(0),
        });
        assert_eq!(injected.retry_after_ms(), Some(1));
        assert_eq!(
            ApiError::missing("DBInstanceId").message(),
            "DBInstanceId is mandatory for this action."
        );
    }

    #[test]
    fn every_preflight_refusal_maps_to_its_vendor_row() {
        use PreflightError::*;
        let rs = || "rs".to_string();
        let node = || "n1".to_string();
        let state = "Current DB instance state does not support this operation.";
        let cases: Vec<(PreflightError, &str, u16, String)> = vec![
            (
                NotRunning {
                    status: DbInstanceStatus::Rebooting,
                },
                "OperationDenied.DBInstanceStatus",
                403,
                "The operation is not permitted due to status of instance.".into(),
            ),
            (
                Standalone,
                "OperationDenied.DBInstanceType",
                403,
                "The operation is not permitted due to type of the instance. (standalone \
                 instances cannot be upgraded or restarted online)"
                    .into(),
            ),
            (
                NoElectableSecondary { replica_set: rs() },
                "OperationDenied.DBInstanceType",
                403,
                "The operation is not permitted due to type of the instance. (replica set rs \
                 has no second electable member to hand the primary to)"
                    .into(),
            ),
            (
                WriteMajorityLoss { replica_set: rs() },
                "OperationDenied.DBInstanceType",
                403,
                "The operation is not permitted due to type of the instance. (restarting a \
                 data-bearing member of rs loses w:majority write availability)"
                    .into(),
            ),
            (
                AlreadyOnTarget { kernel: "k".into() },
                "InvalidMinorVersionAlreadyLatest",
                400,
                "Minor version for instance is already the latest version.".into(),
            ),
            (
                NoSuchNode { node_id: node() },
                "InvalidParameter",
                400,
                "The specified parameter NodeId is not valid. (node n1 is not a shard, config \
                 server or mongos of this instance)"
                    .into(),
            ),
            (
                ReplicaSetNotObserved { replica_set: rs() },
                "IncorrectDBInstanceState",
                403,
                format!("{state} (replica set rs is not observable)"),
            ),
            (
                MemberNotObserved {
                    replica_set: rs(),
                    node_id: node(),
                },
                "IncorrectDBInstanceState",
                403,
                format!("{state} (member n1 of rs is not observable)"),
            ),
            (
                NoPrimary { replica_set: rs() },
                "IncorrectDBInstanceState",
                403,
                format!("{state} (replica set rs has no primary)"),
            ),
            (
                MultiplePrimaries {
                    replica_set: rs(),
                    count: 2,
                },
                "IncorrectDBInstanceState",
                403,
                format!("{state} (replica set rs reports 2 primaries)"),
            ),
            (
                MemberUnhealthy {
                    replica_set: rs(),
                    node_id: node(),
                    state: MemberState::Recovering,
                    healthy: false,
                    process_up: true,
                },
                "IncorrectDBInstanceState",
                403,
                format!("{state} (member n1 of rs is Recovering (healthy=false, up=true))"),
            ),
            (
                LagTooHigh {
                    replica_set: rs(),
                    node_id: node(),
                    lag_ms: 20,
                    max_lag_ms: 10,
                },
                "IncorrectDBInstanceState",
                403,
                format!("{state} (member n1 of rs lags 20 ms (max 10 ms))"),
            ),
            (
                OplogWindowTooSmall {
                    replica_set: rs(),
                    window_ms: 1,
                    required_ms: 2,
                },
                "IncorrectDBInstanceState",
                403,
                format!("{state} (oplog window of rs is 1 ms, needs at least 2 ms)"),
            ),
            (
                BalancerNotObserved,
                "IncorrectDBInstanceState",
                403,
                format!("{state} (the balancer state is not observable)"),
            ),
            (
                MongosDown { node_id: node() },
                "IncorrectDBInstanceState",
                403,
                format!("{state} (mongos n1 is down or not observable)"),
            ),
            (
                NotAReplicaSet { node_id: node() },
                "InvalidParameter",
                400,
                "The specified parameter NodeId is not valid. (node n1 is not a replica set (shard \
                 or config server) of this instance)"
                    .into(),
            ),
            (
                NoSuchRole {
                    role_id: node(),
                },
                "InvalidParameter",
                400,
                "The specified parameter RoleId is not valid. (role n1 is not a member of the \
                 replica set in scope)"
                    .into(),
            ),
            (
                NoCaughtUpSecondary { replica_set: rs() },
                "HaStatusNotSupport",
                400,
                "Current DB instance HA status does not support this operation. (replica set rs \
                 has no electable secondary caught up with its primary to switch to)"
                    .into(),
            ),
            (
                InvalidTarget { kernel: "k".into() },
                "InternalError",
                500,
                acs_rpc::Gateway::InternalError.message().into(),
            ),
            (
                InvalidConfig { reason: "r".into() },
                "InternalError",
                500,
                acs_rpc::Gateway::InternalError.message().into(),
            ),
        ];
        for (reason, code, status, message) in cases {
            let e = ApiError::from(&reason);
            assert_eq!(
                (e.code(), e.status(), e.message()),
                (code, status, message),
                "{reason:?}"
            );
        }
    }
}
