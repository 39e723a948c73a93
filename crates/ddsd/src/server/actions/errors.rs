//! The Dds error rows handlers answer with (dds-api.md §5), and how store errors map onto them.
//!
//! A store error caused by the request (unknown id, wrong status, reused `ClientToken`, a value the
//! store's limits refuse) becomes the vendor's 4xx; anything else (I/O, a damaged file, shutdown) is
//! logged and answered `InternalError` / `ServiceUnavailable` without detail.

use acs_rpc::{Gateway, RpcError};

use crate::server::store::StoreError;

pub fn instance_not_found() -> RpcError {
    RpcError::new(
        "InvalidDBInstanceId.NotFound",
        404,
        "The DBInstanceId provided does not exist in our records.",
    )
}

pub fn status_denied() -> RpcError {
    RpcError::new(
        "OperationDenied.DBInstanceStatus",
        403,
        "The operation is not permitted due to status of instance.",
    )
}

/// `status_denied` for an instance whose status may well read `Running` (a `SwitchMode=1` operation waiting
/// for its window): the message names the operation in the way, so the refusal is not a riddle.
pub fn operation_unfinished(operation_id: &str) -> RpcError {
    RpcError::new(
        "OperationDenied.DBInstanceStatus",
        403,
        format!(
            "The operation is not permitted due to status of instance. (operation {operation_id} of \
             this instance is unfinished; DdsdDescribeOperations shows it)"
        ),
    )
}

pub fn charge_type_violation() -> RpcError {
    RpcError::new(
        "ChargeTypeViolation",
        400,
        "The operation is not permitted due to charge type of the instance.",
    )
}

pub fn idempotent_mismatch() -> RpcError {
    RpcError::new(
        "IdempotentParameterMismatch",
        400,
        "Request uses a client token in a previous request but is not identical to that request.",
    )
}

pub fn class_not_found(param: &str) -> RpcError {
    RpcError::new(
        "InvalidDBInstanceClass.NotFound",
        404,
        format!("Specified DB instance class is not found. ({param})"),
    )
}

pub fn region_not_found() -> RpcError {
    RpcError::new(
        "InvalidRegion.NotFound",
        404,
        "The RegionId or ZoneId provided does not exist in our records.",
    )
}

pub fn zone_not_found() -> RpcError {
    RpcError::new(
        "InvalidZoneId.NotFound",
        404,
        "The ZoneId provided is invalid.",
    )
}

pub fn status_not_found() -> RpcError {
    RpcError::new(
        "InvalidStatus.NotFound",
        404,
        "The Status provided does not exist in our records.",
    )
}

pub fn invalid_kernel_release_notes() -> RpcError {
    RpcError::new(
        "InvalidKernelReleaseNotes",
        400,
        "The format of specified KernelVersion is invalid.",
    )
}

pub fn forbidden_ram() -> RpcError {
    RpcError::gateway_with_detail(
        Gateway::ForbiddenRam,
        "This action is an operator extension and needs an admin AccessKey.",
    )
}

/// Maps a store error. `NotFound`/status/idempotency errors are the client's; the rest is ours.
pub fn from_store(e: StoreError) -> RpcError {
    match e {
        StoreError::InstanceNotFound(_) => instance_not_found(),
        StoreError::StatusMismatch { .. } => status_denied(),
        StoreError::OperationInProgress { operation_id, .. } => operation_unfinished(&operation_id),
        StoreError::IdempotentParameterMismatch => idempotent_mismatch(),
        StoreError::Invalid(reason) => RpcError::malformed_request(reason),
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
