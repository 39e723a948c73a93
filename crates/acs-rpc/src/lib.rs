//! Alibaba Cloud RPC protocol layer, product-agnostic: what any POP-style API endpoint must do
//! before and after a handler runs. It knows nothing of the product behind it.
//!
//! Server side:
//! - [`verify`] takes the raw [`RequestParts`] (method, path, query, headers, body), a [`KeyStore`],
//!   a [`NonceGuard`], the current time and [`Limits`], and returns a [`Verified`] request
//!   (action, version, business parameters, [`Format`], AccessKeyId, [`Scheme`], nonce) or a
//!   [`Rejection`] (an [`RpcError`] plus the format to answer in). Both signature schemes are
//!   accepted: V1 (`Signature` parameter, HMAC-SHA1) and V3 (`Authorization: ACS3-HMAC-SHA256`).
//! - [`encode_success`] / [`encode_error`] produce the JSON or XML body, status and exact content
//!   type; [`guess_format`] picks the format for errors found outside [`verify`].
//! - [`RpcError`] is the one error type (code, HTTP status, message); [`Gateway`] is the vendor's
//!   gateway error table. Product handlers construct their own rows with [`RpcError::new`].
//!
//! Client side (ddsd's CLI, benchmarks and tests): [`sign_v1_request`] and [`sign_v3_request`]
//! sign exactly like the official SDKs; the lower-level pieces ([`v1_string_to_sign`],
//! [`v3_canonical_request`], …) are public for tests that need to build deliberately bad requests.
//!
//! Modules: `params` (decoding, limits, RFC 3986 canonical query), `list` (the flattened
//! `Name.N.Field` lists handlers read), `sign` (both signature computations and client signers),
//! `timestamp`, `nonce` (replay guard), `keys` (secrets), `verify`, `encode` (envelopes), `error`
//! (error type and gateway table).
//!
//! Every input is bounded by [`Limits`] (query bytes, parameter count, name/value/nonce bytes,
//! timestamp window) and the nonce guard by its capacity; a full guard answers `Throttling.User`
//! with a retry hint ([`RpcError::retry_after_ms`], sent as `x-acs-retry-after` in milliseconds).
//!
//! Decisions a client can observe:
//! - A parameter given twice, in the query, in the body, or once in each, is `InvalidParameter`.
//! - Malformed percent-encoding or non-UTF-8 after decoding is `InvalidParameter`; `+` is a space.
//! - A form body is read only when `content-type` is `application/x-www-form-urlencoded`.
//! - An unknown `Format` value is `InvalidParameter` (400), answered in the best-guess format.
//! - Missing `Signature` / `AccessKeyId` / `SignatureNonce` / `Timestamp` / `Action` / `Version` is
//!   `Missing<Name>` (400); a wrong `SignatureMethod` / `SignatureVersion` or a malformed V3
//!   `Authorization` is `IncompleteSignature` with a sentence saying what is wrong.
//! - The only RPC path is `/` (else `InvalidAction.NotFound`), the only methods GET and POST (else
//!   `UnsupportedHTTPMethod`).
//! - `SecurityToken` / `x-acs-security-token` are accepted and ignored.
//! - V3 canonical header lines are sorted by name whatever order `SignedHeaders` lists them in
//!   (Java Tea lists them in hash-map order); the `SignedHeaders` string itself is signed as sent.

mod encode;
mod error;
mod keys;
mod list;
mod nonce;
mod params;
mod sign;
mod timestamp;
mod verify;

pub use encode::{encode_error, encode_success, Encoded, Format};
pub use error::{Gateway, RpcError};
pub use keys::{KeyStore, MemoryKeyStore, Secret};
pub use list::{indexed_list, ListEntry};
pub use nonce::{BoundedNonceGuard, NonceGuard, NonceRejection};
pub use params::{canonical_query, parse_params, percent_encode, Limits};
pub use sign::{
    content_sha256, format_timestamp, sign_v1_request, sign_v3_request, v1_signature,
    v1_string_to_sign, v3_canonical_request, v3_signature, v3_string_to_sign, Credentials,
    SignedV3, V3Request, EMPTY_BODY_SHA256, V3_ALGORITHM,
};
pub use timestamp::parse_timestamp;
pub use verify::{
    guess_format, v3_canonical_headers, verify, Rejection, RequestParts, Scheme, Verified,
    PROTOCOL_PARAMS,
};
