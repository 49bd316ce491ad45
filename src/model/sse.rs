//! Incremental Server-Sent Events parsing for provider streams.
