//! Alibaba Cloud RPC protocol layer.
