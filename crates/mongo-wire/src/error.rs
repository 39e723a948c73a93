//! MongoDB command errors: [`ErrorCode`] (the server error codes a simulated mongod/mongos answers,
//! with `codeName` spelled as mongod spells it) and [`MongoError`], which renders the error reply
//! document `{ok: 0.0, errmsg, code, codeName, errorLabels?}` drivers parse.

use bson::{doc, Bson, Document};

macro_rules! error_codes {
    ($($name:ident = $code:literal,)*) => {
        /// Server error codes, named and numbered as in mongod's `error_codes.yml`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($name,)*
        }

        impl ErrorCode {
            /// Every code this crate knows, for tables and tests.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name,)*];

            /// The numeric `code`.
            pub fn code(self) -> i32 {
                match self {
                    $(ErrorCode::$name => $code,)*
                }
            }

            /// The `codeName`, exactly as mongod spells it.
            pub fn code_name(self) -> &'static str {
                match self {
                    $(ErrorCode::$name => stringify!($name),)*
                }
            }

            /// The code with this number, if this crate knows it.
            pub fn from_code(code: i32) -> Option<ErrorCode> {
                match code {
                    $($code => Some(ErrorCode::$name),)*
                    _ => None,
                }
            }
        }
    };
}

error_codes! {
    InternalError = 1,
    BadValue = 2,
    NoSuchKey = 4,
    HostUnreachable = 6,
    HostNotFound = 7,
    FailedToParse = 9,
    Unauthorized = 13,
    TypeMismatch = 14,
    InvalidLength = 16,
    ProtocolError = 17,
    AuthenticationFailed = 18,
    IllegalOperation = 20,
    LockTimeout = 24,
    NamespaceNotFound = 26,
    CursorNotFound = 43,
    NamespaceExists = 48,
    MaxTimeMSExpired = 50,
    CommandNotFound = 59,
    WriteConcernFailed = 64,
    InvalidOptions = 72,
    InvalidNamespace = 73,
    NodeNotFound = 74,
    NoReplicationEnabled = 76,
    UnknownReplWriteConcern = 79,
    NetworkTimeout = 89,
    ShutdownInProgress = 91,
    NotYetInitialized = 94,
    OperationFailed = 96,
    UnsatisfiableWriteConcern = 100,
    WriteConflict = 112,
    ConflictingOperationInProgress = 117,
    CommandFailed = 125,
    FailedToSatisfyReadPreference = 133,
    PrimarySteppedDown = 189,
    NoSuchTransaction = 251,
    ExceededTimeLimit = 262,
    MechanismUnavailable = 334,
    UnsupportedOpQueryCommand = 352,
    DuplicateKey = 11000,
    InterruptedAtShutdown = 11600,
    Interrupted = 11601,
    InterruptedDueToReplStateChange = 11602,
    NotWritablePrimary = 10107,
    BSONObjectTooLarge = 10334,
    StaleConfig = 13388,
    NotPrimaryNoSecondaryOk = 13435,
    NotPrimaryOrSecondary = 13436,
}

/// Error label drivers retry writes on.
pub const LABEL_RETRYABLE_WRITE_ERROR: &str = "RetryableWriteError";
/// Error label drivers retry whole transactions on.
pub const LABEL_TRANSIENT_TRANSACTION_ERROR: &str = "TransientTransactionError";

/// A command failure as a client sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct MongoError {
    pub code: ErrorCode,
    pub errmsg: String,
    /// `errorLabels`; omitted from the reply when empty.
    pub error_labels: Vec<String>,
    /// Further top-level reply fields some errors carry (`topologyVersion`, `keyPattern`, ...),
    /// appended after the standard ones. Boxed: most errors have none and the error travels in
    /// every `Result`.
    pub extra: Option<Box<Document>>,
}

impl MongoError {
    pub fn new(code: ErrorCode, errmsg: impl Into<String>) -> Self {
        MongoError {
            code,
            errmsg: errmsg.into(),
            error_labels: Vec::new(),
            extra: None,
        }
    }

    /// Adds an `errorLabels` entry.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.error_labels.push(label.into());
        self
    }

    /// Adds a top-level field to the reply.
    pub fn with_field(mut self, key: impl Into<String>, value: impl Into<Bson>) -> Self {
        self.extra
            .get_or_insert_with(Default::default)
            .insert(key.into(), value.into());
        self
    }

    /// The numeric code.
    pub fn code(&self) -> i32 {
        self.code.code()
    }

    /// The `codeName`.
    pub fn code_name(&self) -> &'static str {
        self.code.code_name()
    }

    /// The error reply document.
    pub fn to_document(&self) -> Document {
        let mut reply = doc! {
            "ok": 0.0,
            "errmsg": self.errmsg.as_str(),
            "code": self.code(),
            "codeName": self.code_name(),
        };
        if !self.error_labels.is_empty() {
            reply.insert("errorLabels", self.error_labels.clone());
        }
        for (key, value) in self.extra.iter().flat_map(|extra| extra.iter()) {
            reply.insert(key.clone(), value.clone());
        }
        reply
    }

    /// mongod's answer to a command name it does not know.
    pub fn command_not_found(name: &str) -> Self {
        MongoError::new(
            ErrorCode::CommandNotFound,
            format!("no such command: '{name}'"),
        )
    }

    /// mongod's answer to an unauthenticated command that needs authentication.
    pub fn requires_authentication(name: &str) -> Self {
        MongoError::new(
            ErrorCode::Unauthorized,
            format!("command {name} requires authentication"),
        )
    }

    /// mongod's answer to any failed SASL conversation (wrong password, unknown user, bad proof).
    pub fn authentication_failed() -> Self {
        MongoError::new(ErrorCode::AuthenticationFailed, "Authentication failed.")
    }
}

impl std::fmt::Display for MongoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code_name(), self.code(), self.errmsg)
    }
}

impl std::error::Error for MongoError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_match_mongod() {
        let expected = [
            (ErrorCode::CommandNotFound, 59, "CommandNotFound"),
            (ErrorCode::NotWritablePrimary, 10107, "NotWritablePrimary"),
            (
                ErrorCode::NotPrimaryNoSecondaryOk,
                13435,
                "NotPrimaryNoSecondaryOk",
            ),
            (
                ErrorCode::InterruptedDueToReplStateChange,
                11602,
                "InterruptedDueToReplStateChange",
            ),
            (ErrorCode::AuthenticationFailed, 18, "AuthenticationFailed"),
            (ErrorCode::Unauthorized, 13, "Unauthorized"),
            (ErrorCode::MaxTimeMSExpired, 50, "MaxTimeMSExpired"),
            (ErrorCode::ExceededTimeLimit, 262, "ExceededTimeLimit"),
            (ErrorCode::DuplicateKey, 11000, "DuplicateKey"),
            (ErrorCode::BSONObjectTooLarge, 10334, "BSONObjectTooLarge"),
        ];
        for (code, number, name) in expected {
            assert_eq!(code.code(), number);
            assert_eq!(code.code_name(), name);
            assert_eq!(ErrorCode::from_code(number), Some(code));
        }
        let mut numbers: Vec<i32> = ErrorCode::ALL.iter().map(|c| c.code()).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), ErrorCode::ALL.len(), "codes are unique");
        assert_eq!(ErrorCode::from_code(123_456), None);
    }

    #[test]
    fn error_document_has_mongod_shape() {
        let err = MongoError::new(ErrorCode::NotWritablePrimary, "not primary")
            .with_label(LABEL_RETRYABLE_WRITE_ERROR)
            .with_field("topologyVersion", doc! { "counter": 3_i64 });
        let reply = err.to_document();
        let keys: Vec<&str> = reply.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "ok",
                "errmsg",
                "code",
                "codeName",
                "errorLabels",
                "topologyVersion"
            ]
        );
        assert_eq!(reply.get_f64("ok").unwrap(), 0.0);
        assert_eq!(reply.get_i32("code").unwrap(), 10107);
        assert_eq!(reply.get_str("codeName").unwrap(), "NotWritablePrimary");
        assert_eq!(
            reply.get_array("errorLabels").unwrap(),
            &vec![Bson::from("RetryableWriteError")]
        );
        let plain = MongoError::authentication_failed().to_document();
        assert!(!plain.contains_key("errorLabels"));
        assert_eq!(plain.get_str("errmsg").unwrap(), "Authentication failed.");
    }
}
