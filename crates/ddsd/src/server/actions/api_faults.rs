//! Injected API errors (ddsd extensions, admin AccessKey only, any data plane):
//! `DdsdArmApiFault`, `DdsdDescribeApiFaults`, `DdsdClearApiFaults`.
//!
//! Code that automates the vendor's API has to survive the vendor's transient answers —
//! `Throttling`, `ServiceUnavailable`, `OperationDenied.DBInstanceStatus` while an instance is busy —
//! and slow ones. An armed API fault makes the next `Count` calls of one vendor action (optionally
//! only those naming one `DBInstanceId`) answer a chosen error instead of running, or answer only
//! after `DelayMs` (then the error, or the action's real answer), so a client's retry, timeout and
//! error handling can be tested on demand. The request is verified first (signature, nonce, rate), as at
//! the vendor's gateway; an injected error changes nothing. Operator extensions (`Ddsd*`) are never
//! affected, so an operator can always list and clear.
//!
//! Armed faults live in memory: a restart of ddsd clears them. At most [`MAX_API_FAULTS`] are kept
//! (spent ones included, until cleared).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::server::actions::errors::ApiError;
use acs_rpc::Verified;
use serde_json::{json, Value};

use super::params::{clip, optional, optional_u32, required};
use super::{Call, Context, FromParams, NoParams, Params};

/// Faults kept at once, spent ones included.
pub const MAX_API_FAULTS: usize = 64;
/// Largest `Count`.
pub const MAX_COUNT: u32 = 1_000_000;
/// Largest `RetryAfterMs` (ten minutes).
pub const MAX_RETRY_AFTER_MS: u32 = 600_000;
/// Largest `DelayMs`: a delayed request holds one of the `max_in_flight_requests` slots meanwhile.
pub const MAX_DELAY_MS: u32 = 120_000;
const MAX_CODE_BYTES: usize = 64;
const MAX_MESSAGE_BYTES: usize = 512;

/// Errors known by code: `ErrorCode` alone is enough for these (HTTP status and message are the
/// vendor's). Any other code needs `HttpStatus` and `Message`.
pub const KNOWN_ERRORS: &[(&str, u16, &str)] = &[
    (
        "Throttling",
        400,
        "Request was denied due to request throttling.",
    ),
    (
        "Throttling.User",
        400,
        "Request was denied due to user flow control.",
    ),
    (
        "Throttling.Api",
        400,
        "Request was denied due to api flow control.",
    ),
    (
        "ServiceUnavailable",
        503,
        "The request has failed due to a temporary failure of the server.",
    ),
    (
        "InternalError",
        500,
        "The request processing has failed due to some unknown error.",
    ),
    (
        "OperationDenied.DBInstanceStatus",
        403,
        "The operation is not permitted due to status of instance.",
    ),
    (
        "IncorrectDBInstanceState",
        403,
        "Current DB instance state does not support this operation.",
    ),
    (
        "InvalidDBInstanceId.NotFound",
        404,
        "The DBInstanceId provided does not exist in our records.",
    ),
    (
        "Forbidden.RAM",
        403,
        "User not authorized to operate on the specified resource, or this API doesn't support RAM.",
    ),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiFault {
    pub id: u64,
    /// A vendor action's name, or `*` for every vendor action.
    pub target_action: String,
    pub instance_id: Option<String>,
    /// The error answered, if any: `(ErrorCode, HttpStatus, Message)`.
    pub error: Option<(String, u16, String)>,
    pub retry_after_ms: Option<u64>,
    pub delay_ms: Option<u64>,
    pub remaining: u32,
    pub fired: u32,
}

impl ApiFault {
    fn matches(&self, action: &str, req: &Verified) -> bool {
        self.remaining > 0
            && (self.target_action == "*" || self.target_action == action)
            && self
                .instance_id
                .as_deref()
                .is_none_or(|id| req.params.get("DBInstanceId").map(String::as_str) == Some(id))
    }

    fn injected(&self) -> Injected {
        Injected {
            delay: self.delay_ms.map(Duration::from_millis),
            error: self.error.as_ref().map(|(code, status, message)| {
                ApiError::Injected {
                    code: code.clone(),
                    status: *status,
                    message: message.clone(),
                    retry_after_ms: self.retry_after_ms,
                }
                .into()
            }),
        }
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "FaultId": self.id.to_string(),
            "TargetAction": self.target_action,
            "Remaining": self.remaining,
            "Fired": self.fired,
        });
        if let Some((code, status, message)) = &self.error {
            v["ErrorCode"] = json!(code);
            v["HttpStatus"] = json!(status);
            v["Message"] = json!(message);
        }
        if let Some(ms) = self.delay_ms {
            v["DelayMs"] = json!(ms);
        }
        if let Some(id) = &self.instance_id {
            v["DBInstanceId"] = json!(id);
        }
        if let Some(ms) = self.retry_after_ms {
            v["RetryAfterMs"] = json!(ms);
        }
        v
    }
}

/// What a fired fault does to one call: wait `delay` first (if any), then answer `error` (if any)
/// instead of running the action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected {
    pub delay: Option<Duration>,
    /// Already the wire error: the server answers it as is.
    pub error: Option<acs_rpc::RpcError>,
}

/// The armed faults of one ddsd.
#[derive(Debug, Default)]
pub struct ApiFaults {
    faults: Mutex<Vec<ApiFault>>,
    /// Faults with `remaining > 0`: the request path takes the lock only when some are armed.
    live: AtomicUsize,
    next_id: AtomicU64,
}

impl ApiFaults {
    /// What to do to this call of `action`, if an armed fault matches (the oldest one that does);
    /// it is counted as fired.
    pub fn fire(&self, action: &str, req: &Verified) -> Option<Injected> {
        if action.starts_with("Ddsd") || self.live.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut faults = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        let fault = faults.iter_mut().find(|f| f.matches(action, req))?;
        fault.remaining -= 1;
        fault.fired = fault.fired.saturating_add(1);
        if fault.remaining == 0 {
            self.live.fetch_sub(1, Ordering::AcqRel);
        }
        tracing::info!(
            fault_id = fault.id,
            code = fault.error.as_ref().map(|e| e.0.as_str()),
            delay_ms = fault.delay_ms,
            remaining = fault.remaining,
            "injected API fault answered"
        );
        Some(fault.injected())
    }

    fn arm(&self, mut fault: ApiFault) -> Result<ApiFault, ApiError> {
        let mut faults = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        if faults.len() >= MAX_API_FAULTS {
            return Err(ApiError::ApiFaultQuota {
                max: MAX_API_FAULTS,
            });
        }
        fault.id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        faults.push(fault.clone());
        self.live.fetch_add(1, Ordering::AcqRel);
        Ok(fault)
    }

    pub fn list(&self) -> Vec<ApiFault> {
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Removes one fault (`Some(id)`) or all; answers how many were removed.
    pub fn clear(&self, id: Option<u64>) -> usize {
        let mut faults = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        let before = faults.len();
        faults.retain(|f| id.is_some_and(|id| f.id != id));
        self.live.store(
            faults.iter().filter(|f| f.remaining > 0).count(),
            Ordering::Release,
        );
        before - faults.len()
    }
}

fn invalid(name: &str, reason: impl std::fmt::Display) -> ApiError {
    ApiError::invalid_parameter(name, reason)
}

/// A vendor action of the action table, or `*`.
fn target_action(params: &Params) -> Result<String, ApiError> {
    let name = required(params, "TargetAction")?;
    if name == "*" {
        return Ok(name.into());
    }
    match super::lookup(name) {
        Some(spec) if !spec.name.starts_with("Ddsd") => Ok(spec.name.into()),
        _ => Err(invalid(
            "TargetAction",
            format!(
                "\"{}\" is not a vendor action ddsd serves (or * for all of them); operator extensions cannot be faulted.",
                clip(name)
            ),
        )),
    }
}

/// The error to answer; `None` when the request gives no `ErrorCode` (a delay only).
fn error_row(params: &Params) -> Result<Option<(String, u16, String)>, ApiError> {
    let Some(code) = optional(params, "ErrorCode") else {
        for name in ["HttpStatus", "Message", "RetryAfterMs"] {
            if optional(params, name).is_some() {
                return Err(ApiError::missing("ErrorCode"));
            }
        }
        return Ok(None);
    };
    if code.len() > MAX_CODE_BYTES
        || !code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(invalid(
            "ErrorCode",
            format!("Use at most {MAX_CODE_BYTES} letters, digits, '.', '_' or '-'."),
        ));
    }
    let status = optional_u32(params, "HttpStatus", 599)?;
    if let Some(s) = status {
        if s < 400 {
            return Err(invalid(
                "HttpStatus",
                "An error's status is from 400 to 599.",
            ));
        }
    }
    let message = optional(params, "Message");
    if let Some(m) = message {
        if m.len() > MAX_MESSAGE_BYTES || m.chars().any(char::is_control) {
            return Err(invalid(
                "Message",
                format!(
                    "Use at most {MAX_MESSAGE_BYTES} bytes of text without control characters."
                ),
            ));
        }
    }
    let known = KNOWN_ERRORS.iter().find(|(c, _, _)| *c == code);
    match (known, status, message) {
        (Some((_, s, m)), status, message) => Ok(Some((
            code.into(),
            status.map_or(*s, |s| s as u16),
            message.unwrap_or(m).into(),
        ))),
        (None, Some(s), Some(m)) => Ok(Some((code.into(), s as u16, m.into()))),
        (None, _, _) => Err(invalid(
            "ErrorCode",
            format!(
                "\"{}\" is not a known code: give HttpStatus and Message with it, or use one of {}.",
                clip(code),
                KNOWN_ERRORS
                    .iter()
                    .map(|(c, _, _)| *c)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// `DdsdArmApiFault`.
/// `DdsdArmApiFault`: `TargetAction`, `ErrorCode` / `HttpStatus` / `Message`, `DelayMs`, `Count`,
/// `RetryAfterMs`, `DBInstanceId` (the instance must exist, checked by the handler).
#[derive(Debug, Clone)]
pub struct ArmApiFaultRequest {
    target_action: String,
    error: Option<(String, u16, String)>,
    delay_ms: Option<u64>,
    count: u32,
    retry_after_ms: Option<u64>,
    db_instance_id: Option<String>,
}

impl FromParams for ArmApiFaultRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let target_action = target_action(params)?;
        let error = error_row(params)?;
        let delay_ms = optional_u32(params, "DelayMs", MAX_DELAY_MS)?
            .filter(|&ms| ms > 0)
            .map(u64::from);
        if error.is_none() && delay_ms.is_none() {
            return Err(ApiError::MissingErrorCode);
        }
        let count = optional_u32(params, "Count", MAX_COUNT)?.unwrap_or(1);
        if count == 0 {
            return Err(invalid("Count", format!("Use 1 to {MAX_COUNT}.")));
        }
        let retry_after_ms = optional_u32(params, "RetryAfterMs", MAX_RETRY_AFTER_MS)?
            .map(|ms| u64::from(ms.max(1)));
        Ok(Self {
            target_action,
            error,
            delay_ms,
            count,
            retry_after_ms,
            db_instance_id: optional(params, "DBInstanceId").map(str::to_string),
        })
    }
}

/// `DdsdArmApiFault`.
pub async fn ddsd_arm_api_fault(
    ctx: Arc<Context>,
    req: ArmApiFaultRequest,
    _call: Call,
) -> Result<Value, ApiError> {
    if let Some(id) = &req.db_instance_id {
        super::rolling::load_instance(&ctx, id).await?;
    }
    let count = req.count;
    let fault = ctx.api_faults.arm(ApiFault {
        id: 0,
        target_action: req.target_action,
        instance_id: req.db_instance_id,
        error: req.error,
        retry_after_ms: req.retry_after_ms,
        delay_ms: req.delay_ms,
        remaining: count,
        fired: 0,
    })?;
    tracing::info!(
        fault_id = fault.id,
        target_action = %fault.target_action,
        code = fault.error.as_ref().map(|e| e.0.as_str()),
        delay_ms = fault.delay_ms,
        count,
        "API fault armed"
    );
    Ok(json!({"ApiFault": fault.to_json()}))
}

/// `DdsdDescribeApiFaults`.
pub async fn ddsd_describe_api_faults(
    ctx: Arc<Context>,
    _req: NoParams,
    _call: Call,
) -> Result<Value, ApiError> {
    let list: Vec<Value> = ctx
        .api_faults
        .list()
        .iter()
        .map(ApiFault::to_json)
        .collect();
    Ok(json!({"ApiFaults": {"ApiFault": list}}))
}

/// `DdsdClearApiFaults`: `FaultId` (one fault, else all).
#[derive(Debug, Clone)]
pub struct ClearApiFaultsRequest {
    fault_id: Option<String>,
}

impl FromParams for ClearApiFaultsRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        Ok(Self {
            fault_id: optional(params, "FaultId").map(str::to_string),
        })
    }
}

/// `DdsdClearApiFaults`.
pub async fn ddsd_clear_api_faults(
    ctx: Arc<Context>,
    req: ClearApiFaultsRequest,
    _call: Call,
) -> Result<Value, ApiError> {
    let cleared = match req.fault_id.as_deref() {
        // One lookup under the lock: an id that is not a number matches no fault.
        Some(v) => match ctx.api_faults.clear(Some(v.parse().unwrap_or(0))) {
            0 => {
                return Err(invalid(
                    "FaultId",
                    format!("No API fault \"{}\" is armed.", clip(v)),
                ))
            }
            n => n,
        },
        None => ctx.api_faults.clear(None),
    };
    tracing::info!(cleared, "API faults cleared");
    Ok(json!({"ClearedApiFaults": cleared}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::actions::testing;
    use crate::server::actions::upgrade::test_support::{admin, req};

    #[tokio::test]
    async fn an_armed_fault_answers_count_calls_of_its_action_then_stops() {
        let t = testing::ctx();
        let armed = crate::server::actions::call(
            t.ctx.clone(),
            admin(
                "DdsdArmApiFault",
                &[
                    ("TargetAction", "DescribeRegions"),
                    ("ErrorCode", "ServiceUnavailable"),
                    ("Count", "2"),
                ],
            ),
        )
        .await
        .unwrap();
        assert_eq!(armed["ApiFault"]["HttpStatus"], 503);
        assert_eq!(armed["ApiFault"]["Remaining"], 2);
        let call = req("DescribeRegions", &[]);
        // Another action is not touched.
        assert!(t.api_faults.fire("DescribeDBInstances", &call).is_none());
        for _ in 0..2 {
            let fired = t.api_faults.fire("DescribeRegions", &call).unwrap();
            assert_eq!(fired.delay, None);
            let e = fired.error.unwrap();
            assert_eq!((e.code(), e.status()), ("ServiceUnavailable", 503));
            assert_eq!(e.retry_after_ms(), None);
        }
        assert!(t.api_faults.fire("DescribeRegions", &call).is_none());
        let list = t.api_faults.list();
        assert_eq!((list[0].remaining, list[0].fired), (0, 2));
        assert_eq!(t.api_faults.live.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn instance_filter_wildcard_custom_codes_and_extensions_untouched() {
        let t = testing::ctx();
        let arm = |params: &[(&str, &str)]| {
            crate::server::actions::call(t.ctx.clone(), admin("DdsdArmApiFault", params))
        };
        // Naming an instance that does not exist is refused.
        let e = arm(&[
            ("TargetAction", "*"),
            ("ErrorCode", "Throttling"),
            ("DBInstanceId", "dds-nope"),
        ])
        .await
        .unwrap_err();
        assert_eq!(e.code(), "InvalidDBInstanceId.NotFound");
        arm(&[
            ("TargetAction", "*"),
            ("ErrorCode", "Task.Conflict"),
            ("HttpStatus", "409"),
            ("Message", "Another task is running."),
            ("RetryAfterMs", "1500"),
            ("Count", "3"),
        ])
        .await
        .unwrap();
        let call = req("DescribeDBInstances", &[]);
        let e = t
            .api_faults
            .fire("DescribeDBInstances", &call)
            .unwrap()
            .error
            .unwrap();
        assert_eq!(
            (e.code(), e.status(), e.message(), e.retry_after_ms()),
            ("Task.Conflict", 409, "Another task is running.", Some(1500))
        );
        // Operator extensions are never faulted, even by `*`.
        assert!(t
            .api_faults
            .fire(
                "DdsdDescribeApiFaults",
                &admin("DdsdDescribeApiFaults", &[])
            )
            .is_none());
        let listed =
            crate::server::actions::call(t.ctx.clone(), admin("DdsdDescribeApiFaults", &[]))
                .await
                .unwrap();
        assert_eq!(listed["ApiFaults"]["ApiFault"][0]["Remaining"], 2);
        assert_eq!(listed["ApiFaults"]["ApiFault"][0]["Fired"], 1);
    }

    #[tokio::test]
    async fn a_delay_alone_lets_the_action_run_and_a_delay_with_an_error_answers_it_late() {
        let t = testing::ctx();
        let arm = |params: &[(&str, &str)]| {
            crate::server::actions::call(t.ctx.clone(), admin("DdsdArmApiFault", params))
        };
        let slow = arm(&[("TargetAction", "DescribeRegions"), ("DelayMs", "1500")])
            .await
            .unwrap();
        assert_eq!(slow["ApiFault"]["DelayMs"], 1500);
        assert!(slow["ApiFault"].get("ErrorCode").is_none());
        arm(&[
            ("TargetAction", "DescribeRegions"),
            ("DelayMs", "20"),
            ("ErrorCode", "InternalError"),
        ])
        .await
        .unwrap();
        let call = req("DescribeRegions", &[]);
        assert_eq!(
            t.api_faults.fire("DescribeRegions", &call),
            Some(Injected {
                delay: Some(Duration::from_millis(1500)),
                error: None
            })
        );
        let late = t.api_faults.fire("DescribeRegions", &call).unwrap();
        assert_eq!(late.delay, Some(Duration::from_millis(20)));
        assert_eq!(late.error.unwrap().status(), 500);
        assert_eq!(t.api_faults.fire("DescribeRegions", &call), None);
        // Neither an error nor a delay; options of an error without one; a delay over the cap.
        for (params, code) in [
            (vec![("TargetAction", "*")], "MissingErrorCode"),
            (
                vec![("TargetAction", "*"), ("DelayMs", "0")],
                "MissingErrorCode",
            ),
            (
                vec![
                    ("TargetAction", "*"),
                    ("DelayMs", "5"),
                    ("HttpStatus", "500"),
                ],
                "MissingErrorCode",
            ),
            (
                vec![("TargetAction", "*"), ("DelayMs", "120001")],
                "InvalidParameter",
            ),
        ] {
            assert_eq!(arm(&params).await.unwrap_err().code(), code, "{params:?}");
        }
    }

    #[tokio::test]
    async fn bad_arms_are_refused_and_change_nothing() {
        let t = testing::ctx();
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("ErrorCode", "Throttling")], "MissingTargetAction"),
            (&[("TargetAction", "DescribeRegions")], "MissingErrorCode"),
            (
                &[("TargetAction", "Nope"), ("ErrorCode", "Throttling")],
                "InvalidParameter",
            ),
            (
                &[
                    ("TargetAction", "DdsdDescribeApiFaults"),
                    ("ErrorCode", "Throttling"),
                ],
                "InvalidParameter",
            ),
            (
                &[("TargetAction", "*"), ("ErrorCode", "My.Code")],
                "InvalidParameter",
            ),
            (
                &[
                    ("TargetAction", "*"),
                    ("ErrorCode", "Throttling"),
                    ("HttpStatus", "200"),
                ],
                "InvalidParameter",
            ),
            (
                &[
                    ("TargetAction", "*"),
                    ("ErrorCode", "bad code"),
                    ("HttpStatus", "400"),
                    ("Message", "m"),
                ],
                "InvalidParameter",
            ),
            (
                &[
                    ("TargetAction", "*"),
                    ("ErrorCode", "Throttling"),
                    ("Count", "0"),
                ],
                "InvalidParameter",
            ),
            (
                &[
                    ("TargetAction", "*"),
                    ("ErrorCode", "Throttling"),
                    ("Message", "a\nb"),
                ],
                "InvalidParameter",
            ),
        ];
        for (params, code) in cases {
            let e = crate::server::actions::call(t.ctx.clone(), admin("DdsdArmApiFault", params))
                .await
                .unwrap_err();
            assert_eq!(e.code(), *code, "{params:?}");
        }
        // Not an admin key.
        let e = crate::server::actions::call(
            t.ctx.clone(),
            req(
                "DdsdArmApiFault",
                &[("TargetAction", "*"), ("ErrorCode", "Throttling")],
            ),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code(), "Forbidden.RAM");
        assert!(t.api_faults.list().is_empty());
    }

    #[tokio::test]
    async fn at_most_max_faults_are_kept_and_clear_removes_one_or_all() {
        let t = testing::ctx();
        let params = [
            ("TargetAction", "DescribeRegions"),
            ("ErrorCode", "Throttling"),
        ];
        for _ in 0..MAX_API_FAULTS {
            crate::server::actions::call(t.ctx.clone(), admin("DdsdArmApiFault", &params))
                .await
                .unwrap();
        }
        let e = crate::server::actions::call(t.ctx.clone(), admin("DdsdArmApiFault", &params))
            .await
            .unwrap_err();
        assert_eq!((e.code(), e.status()), ("QuotaExceeded.ApiFaults", 400));
        let first = t.api_faults.list()[0].id.to_string();
        let r = crate::server::actions::call(
            t.ctx.clone(),
            admin("DdsdClearApiFaults", &[("FaultId", &first)]),
        )
        .await
        .unwrap();
        assert_eq!(r["ClearedApiFaults"], 1);
        let e = crate::server::actions::call(
            t.ctx.clone(),
            admin("DdsdClearApiFaults", &[("FaultId", &first)]),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code(), "InvalidParameter");
        let r = crate::server::actions::call(t.ctx.clone(), admin("DdsdClearApiFaults", &[]))
            .await
            .unwrap();
        assert_eq!(r["ClearedApiFaults"], MAX_API_FAULTS - 1);
        assert!(t
            .api_faults
            .fire("DescribeRegions", &req("DescribeRegions", &[]))
            .is_none());
    }
}
