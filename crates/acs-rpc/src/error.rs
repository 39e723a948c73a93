//! The error type every layer answers with, and the gateway error table.
//!
//! An [`RpcError`] is exactly what ends up on the wire: `Code`, HTTP status and `Message`. The
//! product-independent gateway rows live in [`Gateway`]; product handlers build their own rows
//! with [`RpcError::new`] (e.g. `InvalidDBInstanceId.NotFound`, 404).

use std::borrow::Cow;
use std::fmt;

/// A wire error: code, HTTP status and message, rendered by [`crate::encode_error`], plus for
/// throttling errors the wait to announce in the `x-acs-retry-after` response header.
#[derive(Clone, PartialEq, Eq)]
pub struct RpcError {
    code: Cow<'static, str>,
    status: u16,
    message: String,
    retry_after_ms: Option<u64>,
}

impl RpcError {
    /// Any error row, e.g. `RpcError::new("OperationDenied.DBInstanceStatus", 403, "The operation is not permitted due to status of instance.")`.
    pub fn new(
        code: impl Into<Cow<'static, str>>,
        status: u16,
        message: impl Into<String>,
    ) -> Self {
        Self {
            code: code.into(),
            status,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// Asks the client to wait before retrying: the server sends `x-acs-retry-after: <ms>`.
    ///
    /// The header's unit is milliseconds: `alibabacloud_tea_openapi` reads it with
    /// `int(headers['x-acs-retry-after'])`, turns any 4xx/5xx carrying a positive value into a
    /// `ThrottlingException(retry_after=…)`, and — when the caller's retry options match that
    /// exception — sleeps `min(retry_after, max_delay)` with `DaraCore.sleep(millisecond)`.
    /// Because any error carrying the header becomes a `ThrottlingException`, only throttling
    /// errors may set it. Zero is raised to 1 (the SDK ignores values ≤ 0).
    pub fn with_retry_after_ms(mut self, ms: u64) -> Self {
        self.retry_after_ms = Some(ms.max(1));
        self
    }

    /// The wait for the `x-acs-retry-after` header, if this error asks for one.
    pub fn retry_after_ms(&self) -> Option<u64> {
        self.retry_after_ms
    }

    /// A gateway table row with its exact message.
    pub fn gateway(row: Gateway) -> Self {
        Self::new(row.code(), row.status(), row.message())
    }

    /// A gateway row whose message is followed by a sentence saying what exactly was wrong.
    pub fn gateway_with_detail(row: Gateway, detail: impl fmt::Display) -> Self {
        Self::new(
            row.code(),
            row.status(),
            format!("{} {}", row.message(), detail),
        )
    }

    /// `Missing<Name>` (400) with the POP gateway's message `<Name> is mandatory for this action.`
    pub fn missing(name: &str) -> Self {
        Self::new(
            format!("Missing{name}"),
            400,
            format!("{name} is mandatory for this action."),
        )
    }

    /// `InvalidParameter` (400) naming the parameter, in the vendor's wording plus a reason.
    pub fn invalid_parameter(name: &str, reason: impl fmt::Display) -> Self {
        Self::new(
            "InvalidParameter",
            400,
            format!("The specified parameter \"{name}\" is not valid. {reason}"),
        )
    }

    /// `InvalidParameter` (400) for a request that cannot be read at all (bad encoding, limits).
    pub fn malformed_request(reason: impl fmt::Display) -> Self {
        Self::new(
            "InvalidParameter",
            400,
            format!("The request is not valid. {reason}"),
        )
    }

    /// `SignatureDoesNotMatch` (400). For V1 the gateway appends ` server string to sign is:<StringToSign>`;
    /// aliyun-python-sdk-core splits the message on `:` and compares the second part with its own
    /// string to sign to tell a wrong secret (`InvalidAccessKeySecret`) from a canonicalisation bug,
    /// so the message before the colon must not contain one.
    pub fn signature_mismatch_v1(string_to_sign: &str) -> Self {
        Self::new(
            Gateway::SignatureDoesNotMatch.code(),
            400,
            format!(
                "{} server string to sign is:{string_to_sign}",
                Gateway::SignatureDoesNotMatch.message()
            ),
        )
    }

    /// Wire code, e.g. `SignatureNonceUsed`.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// HTTP status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RpcError({} {}: {})",
            self.status, self.code, self.message
        )
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
    }
}

impl std::error::Error for RpcError {}

impl From<Gateway> for RpcError {
    fn from(row: Gateway) -> Self {
        Self::gateway(row)
    }
}

/// The product-independent gateway errors (dds-api.md §5), one row each: code, status, message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gateway {
    InvalidAccessKeyIdNotFound,
    InvalidAccessKeyIdInactive,
    SignatureDoesNotMatch,
    SignatureNonceUsed,
    InvalidTimeStampExpired,
    InvalidTimeStampFormat,
    IncompleteSignature,
    InvalidVersion,
    InvalidActionNotFound,
    MissingParameter,
    UnsupportedHttpMethod,
    InternalError,
    ServiceUnavailable,
    Throttling,
    ThrottlingUser,
    ForbiddenRam,
}

impl Gateway {
    /// Every row, for table-driven tests and documentation.
    pub const ALL: [Gateway; 16] = [
        Gateway::InvalidAccessKeyIdNotFound,
        Gateway::InvalidAccessKeyIdInactive,
        Gateway::SignatureDoesNotMatch,
        Gateway::SignatureNonceUsed,
        Gateway::InvalidTimeStampExpired,
        Gateway::InvalidTimeStampFormat,
        Gateway::IncompleteSignature,
        Gateway::InvalidVersion,
        Gateway::InvalidActionNotFound,
        Gateway::MissingParameter,
        Gateway::UnsupportedHttpMethod,
        Gateway::InternalError,
        Gateway::ServiceUnavailable,
        Gateway::Throttling,
        Gateway::ThrottlingUser,
        Gateway::ForbiddenRam,
    ];

    const fn row(self) -> (&'static str, u16, &'static str) {
        match self {
            Gateway::InvalidAccessKeyIdNotFound => {
                ("InvalidAccessKeyId.NotFound", 404, "Specified access key is not found.")
            }
            Gateway::InvalidAccessKeyIdInactive => {
                ("InvalidAccessKeyId.Inactive", 400, "Specified access key is disabled.")
            }
            Gateway::SignatureDoesNotMatch => (
                "SignatureDoesNotMatch",
                400,
                "Specified signature is not matched with our calculation.",
            ),
            Gateway::SignatureNonceUsed => {
                ("SignatureNonceUsed", 400, "Specified signature nonce was used already.")
            }
            Gateway::InvalidTimeStampExpired => (
                "InvalidTimeStamp.Expired",
                400,
                "Specified time stamp or date value is expired.",
            ),
            Gateway::InvalidTimeStampFormat => (
                "InvalidTimeStamp.Format",
                400,
                "Specified time stamp or date value is not well formatted.",
            ),
            Gateway::IncompleteSignature => (
                "IncompleteSignature",
                400,
                "The request signature does not conform to Aliyun standards.",
            ),
            Gateway::InvalidVersion => ("InvalidVersion", 400, "Specified parameter Version is not valid."),
            Gateway::InvalidActionNotFound => (
                "InvalidAction.NotFound",
                404,
                "Specified api is not found, please check your url and method.",
            ),
            Gateway::MissingParameter => ("MissingParameter", 400, "Specified parameter is missing."),
            Gateway::UnsupportedHttpMethod => ("UnsupportedHTTPMethod", 403, "This http method not supported."),
            Gateway::InternalError => (
                "InternalError",
                500,
                "The request processing has failed due to some unknown error.",
            ),
            Gateway::ServiceUnavailable => (
                "ServiceUnavailable",
                503,
                "The request has failed due to a temporary failure of the server.",
            ),
            Gateway::Throttling => ("Throttling", 400, "Request was denied due to request throttling."),
            Gateway::ThrottlingUser => ("Throttling.User", 400, "Request was denied due to user flow control."),
            Gateway::ForbiddenRam => (
                "Forbidden.RAM",
                403,
                "User not authorized to operate on the specified resource, or this API doesn't support RAM.",
            ),
        }
    }

    /// Wire code.
    pub const fn code(self) -> &'static str {
        self.row().0
    }

    /// HTTP status.
    pub const fn status(self) -> u16 {
        self.row().1
    }

    /// The vendor's message, verbatim.
    pub const fn message(self) -> &'static str {
        self.row().2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire contract of dds-api.md §5, pinned so an edit to the table is a visible test change.
    #[test]
    fn gateway_rows_match_the_vendor_table() {
        let rows: Vec<(&str, u16)> = Gateway::ALL
            .iter()
            .map(|g| (g.code(), g.status()))
            .collect();
        assert_eq!(
            rows,
            [
                ("InvalidAccessKeyId.NotFound", 404),
                ("InvalidAccessKeyId.Inactive", 400),
                ("SignatureDoesNotMatch", 400),
                ("SignatureNonceUsed", 400),
                ("InvalidTimeStamp.Expired", 400),
                ("InvalidTimeStamp.Format", 400),
                ("IncompleteSignature", 400),
                ("InvalidVersion", 400),
                ("InvalidAction.NotFound", 404),
                ("MissingParameter", 400),
                ("UnsupportedHTTPMethod", 403),
                ("InternalError", 500),
                ("ServiceUnavailable", 503),
                ("Throttling", 400),
                ("Throttling.User", 400),
                ("Forbidden.RAM", 403),
            ]
        );
        for g in Gateway::ALL {
            let e = RpcError::from(g);
            assert_eq!(
                (e.code(), e.status(), e.message()),
                (g.code(), g.status(), g.message())
            );
            assert!(g.message().ends_with('.'), "{g:?}");
        }
    }

    #[test]
    fn constructed_rows_for_products_and_missing_parameters() {
        let e = RpcError::new(
            "InvalidDBInstanceId.NotFound",
            404,
            "The DBInstanceId provided does not exist in our records.",
        );
        assert_eq!(
            (e.code(), e.status()),
            ("InvalidDBInstanceId.NotFound", 404)
        );
        let m = RpcError::missing("DBInstanceId");
        assert_eq!(
            (m.code(), m.status(), m.message()),
            (
                "MissingDBInstanceId",
                400,
                "DBInstanceId is mandatory for this action."
            )
        );
        let d = RpcError::gateway_with_detail(
            Gateway::IncompleteSignature,
            "SignatureMethod must be HMAC-SHA1.",
        );
        assert_eq!(d.message(), "The request signature does not conform to Aliyun standards. SignatureMethod must be HMAC-SHA1.");
        // The legacy Python SDK splits a V1 mismatch message on ':' and takes part 1.
        let s = RpcError::signature_mismatch_v1("GET&%2F&A%3D1");
        assert_eq!(s.message().split(':').nth(1), Some("GET&%2F&A%3D1"));
    }

    #[test]
    fn retry_after_is_opt_in_and_never_zero() {
        let plain = RpcError::from(Gateway::ThrottlingUser);
        assert_eq!(plain.retry_after_ms(), None);
        let e = RpcError::from(Gateway::ThrottlingUser).with_retry_after_ms(250);
        assert_eq!(e.retry_after_ms(), Some(250));
        assert_eq!((e.code(), e.status()), ("Throttling.User", 400));
        // The Tea SDK ignores 0 and negative values: a zero wait is sent as 1 ms.
        assert_eq!(plain.with_retry_after_ms(0).retry_after_ms(), Some(1));
    }
}
