//! The hardening limits, with the defaults of DESIGN.md §4 "Hardening defaults".

use std::time::Duration;

/// Every limit the hardening stack enforces. All configurable; the defaults are the contract.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Whole-request timeout (headers received → response head), 503 `timeout`.
    pub request_timeout: Duration,
    /// Time allowed to receive a request's headers; the connection is closed after it.
    pub header_read_timeout: Duration,
    /// Time allowed for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Requests in flight at once, 503 `too_busy` above it.
    pub max_inflight: usize,
    /// Open connections at once; further connections are closed at accept.
    pub max_connections: usize,
    /// Sustained requests per second per client key (GCRA); 0 disables the limit.
    pub rate_per_second: u32,
    /// Burst allowed above the sustained rate.
    pub rate_burst: u32,
    /// Request body cap in bytes, 413 `body_too_large`.
    pub max_body_bytes: usize,
    /// Decoded body cap in bytes, 413 `decompression_cap`.
    pub max_decoded_bytes: usize,
    /// Decoded/encoded ratio cap, 413 `decompression_cap`.
    pub max_decompression_ratio: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(5),
            header_read_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(5),
            max_inflight: 512,
            max_connections: 4096,
            rate_per_second: 500,
            rate_burst: 500,
            max_body_bytes: 1 << 20,
            max_decoded_bytes: 8 << 20,
            max_decompression_ratio: 10,
        }
    }
}
