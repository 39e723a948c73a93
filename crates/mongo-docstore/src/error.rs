//! The errors the store answers with, in MongoDB's own terms: a numeric `code`, its `codeName`, and a
//! message. The wire layer turns them into `{ok: 0, errmsg, code, codeName}` unchanged.

use std::fmt;

/// A MongoDB server error code the store can produce. The names are mongod's `codeName`s verbatim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    BadValue,
    FailedToParse,
    TypeMismatch,
    NamespaceNotFound,
    CursorNotFound,
    NamespaceExists,
    ImmutableField,
    InvalidNamespace,
    InvalidOptions,
    DuplicateKey,
    /// `$group`/pipeline parse errors that mongod reports under a bare location number.
    Location(i32),
    /// A limit of this store (documents, bytes, collections, cursors) was reached.
    ExceededMemoryLimit,
    BSONObjectTooLarge,
    TransactionTooOld,
    Unauthorized,
}

impl Code {
    pub fn number(self) -> i32 {
        match self {
            Code::BadValue => 2,
            Code::FailedToParse => 9,
            Code::TypeMismatch => 14,
            Code::NamespaceNotFound => 26,
            Code::CursorNotFound => 43,
            Code::NamespaceExists => 48,
            Code::ImmutableField => 66,
            Code::InvalidNamespace => 73,
            Code::InvalidOptions => 72,
            Code::DuplicateKey => 11000,
            Code::Location(n) => n,
            Code::ExceededMemoryLimit => 146,
            Code::BSONObjectTooLarge => 10334,
            Code::TransactionTooOld => 225,
            Code::Unauthorized => 13,
        }
    }

    /// mongod's `codeName`. Location errors have none of their own; mongod spells them `Location<n>`.
    pub fn name(self) -> String {
        match self {
            Code::BadValue => "BadValue".into(),
            Code::FailedToParse => "FailedToParse".into(),
            Code::TypeMismatch => "TypeMismatch".into(),
            Code::NamespaceNotFound => "NamespaceNotFound".into(),
            Code::CursorNotFound => "CursorNotFound".into(),
            Code::NamespaceExists => "NamespaceExists".into(),
            Code::ImmutableField => "ImmutableField".into(),
            Code::InvalidNamespace => "InvalidNamespace".into(),
            Code::InvalidOptions => "InvalidOptions".into(),
            Code::DuplicateKey => "DuplicateKey".into(),
            Code::Location(n) => format!("Location{n}"),
            Code::ExceededMemoryLimit => "ExceededMemoryLimit".into(),
            Code::BSONObjectTooLarge => "BSONObjectTooLarge".into(),
            Code::TransactionTooOld => "TransactionTooOld".into(),
            Code::Unauthorized => "Unauthorized".into(),
        }
    }
}

/// An error with MongoDB's code and a message in mongod's wording where a driver or user may match on it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreError {
    pub code: Code,
    pub message: String,
}

impl StoreError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        StoreError {
            code,
            message: message.into(),
        }
    }
    pub fn bad_value(message: impl Into<String>) -> Self {
        Self::new(Code::BadValue, message)
    }
    pub fn type_mismatch(message: impl Into<String>) -> Self {
        Self::new(Code::TypeMismatch, message)
    }
    pub fn failed_to_parse(message: impl Into<String>) -> Self {
        Self::new(Code::FailedToParse, message)
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code.name(),
            self.code.number(),
            self.message
        )
    }
}

impl std::error::Error for StoreError {}

pub type Result<T> = std::result::Result<T, StoreError>;
