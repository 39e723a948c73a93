//! [`WireLimits`]: every bound the wire layer enforces on a client, in one place so the `hello`
//! reply can advertise exactly what the server enforces. Used by the frame decoder, the server
//! loop, and services that build `hello` replies.

use std::time::Duration;

use bson::Document;

/// Bounds on what one client may send and hold. Defaults follow mongod's own values where mongod
/// has one (message, object and batch sizes, nesting depth) and are conservative elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireLimits {
    /// Largest whole message (header included) accepted; mongod's `maxMessageSizeBytes`.
    pub max_message_size_bytes: usize,
    /// Largest user document; mongod's `maxBsonObjectSize`. A command body may exceed it by
    /// [`WireLimits::COMMAND_OVERHEAD_BYTES`] so that a maximal document still fits in a command.
    pub max_bson_object_size: usize,
    /// Most write operations in one batch; mongod's `maxWriteBatchSize`. Advertised for drivers to
    /// split batches; services enforce it per command.
    pub max_write_batch_size: usize,
    /// Deepest nesting of documents/arrays accepted; deeper input is refused before it is
    /// materialised so no decoder recurses without bound.
    pub max_bson_depth: usize,
    /// Established connections per listener; a connection over the bound is accepted and closed at
    /// once (the client sees a reset rather than a hang in the backlog).
    pub max_connections: usize,
    /// Commands being handled at once across one listener's connections; others wait their turn.
    pub max_in_flight_requests: usize,
    /// A connection that sends nothing for this long is closed. `None` keeps idle connections
    /// open forever, as mongod does. Time spent answering (an awaitable `hello`) is not idle time.
    pub idle_timeout: Option<Duration>,
    /// Longest a started message may take to arrive in full; a stalled half-frame is closed.
    pub frame_read_timeout: Duration,
}

impl WireLimits {
    /// What mongod lets a command body exceed `maxBsonObjectSize` by (its internal 16 KiB margin).
    pub const COMMAND_OVERHEAD_BYTES: usize = 16 * 1024;

    /// Largest command body document accepted.
    pub fn max_command_size(&self) -> usize {
        self.max_bson_object_size
            .saturating_add(Self::COMMAND_OVERHEAD_BYTES)
    }

    /// Adds `maxBsonObjectSize`, `maxMessageSizeBytes` and `maxWriteBatchSize` to a `hello` reply,
    /// leaving any value the service already set.
    pub fn advertise(&self, hello_reply: &mut Document) {
        let fields = [
            ("maxBsonObjectSize", self.max_bson_object_size),
            ("maxMessageSizeBytes", self.max_message_size_bytes),
            ("maxWriteBatchSize", self.max_write_batch_size),
        ];
        for (name, value) in fields {
            if !hello_reply.contains_key(name) {
                hello_reply.insert(name, i32::try_from(value).unwrap_or(i32::MAX));
            }
        }
    }
}

impl Default for WireLimits {
    fn default() -> Self {
        WireLimits {
            max_message_size_bytes: 48_000_000,
            max_bson_object_size: 16 * 1024 * 1024,
            max_write_batch_size: 100_000,
            max_bson_depth: 200,
            max_connections: 1024,
            max_in_flight_requests: 256,
            idle_timeout: None,
            frame_read_timeout: Duration::from_secs(30),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn advertise_fills_missing_fields_only() {
        let limits = WireLimits::default();
        let mut reply = doc! { "maxWriteBatchSize": 5 };
        limits.advertise(&mut reply);
        assert_eq!(reply.get_i32("maxBsonObjectSize").unwrap(), 16_777_216);
        assert_eq!(reply.get_i32("maxMessageSizeBytes").unwrap(), 48_000_000);
        assert_eq!(reply.get_i32("maxWriteBatchSize").unwrap(), 5);
    }
}
