//! The action table: `Action` name → handler.
//!
//! A handler is a plain function of the shared [`Context`] and the verified request, returning
//! the response fields (without `RequestId`, which the server adds) or an [`RpcError`]. The server
//! runs handlers on the blocking pool, so a handler may do synchronous store I/O. Adding an action
//! = one module with its handler + one row in [`ACTIONS`].

use acs_rpc::{RpcError, Verified};
use serde_json::Value;

pub mod regions;

/// The only API version ddsd serves.
pub const API_VERSION: &str = "2015-12-01";

/// What every handler may read.
#[derive(Debug)]
pub struct Context {
    /// The region this endpoint serves (`--region`).
    pub region: String,
    pub regions: regions::RegionCatalog,
}

pub type Handler = fn(&Context, &Verified) -> Result<Value, RpcError>;

/// Every action ddsd answers, by its vendor name.
pub const ACTIONS: &[(&str, Handler)] = &[("DescribeRegions", regions::describe_regions)];

pub fn lookup(action: &str) -> Option<Handler> {
    ACTIONS
        .iter()
        .find(|(name, _)| *name == action)
        .map(|(_, h)| *h)
}

/// An optional parameter; an empty value counts as absent (legacy SDKs send empty optionals).
pub fn optional<'a>(req: &'a Verified, name: &str) -> Option<&'a str> {
    req.params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// A required parameter, else `Missing<Name>` (400) as the POP gateway answers.
pub fn required<'a>(req: &'a Verified, name: &str) -> Result<&'a str, RpcError> {
    optional(req, name).ok_or_else(|| RpcError::missing(name))
}
