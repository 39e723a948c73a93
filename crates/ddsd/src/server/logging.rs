//! Tracing to stderr (stdout carries only the startup lines tests parse). `RUST_LOG` filters,
//! default `info`. Request spans carry `request_id`, so every line logged while serving a request
//! shows it — in text as the span prefix, in JSON under `span`.

use tracing_subscriber::EnvFilter;

use crate::server::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(false).init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}
