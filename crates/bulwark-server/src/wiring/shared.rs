//! Which implementation backs each port of state that replicas must share. One process:
//! every port in memory. The scale-out issue selects Redis and NATS here, and nothing else
//! changes.

use std::sync::Arc;

use bulwark_core::Clock;
use bulwark_shared::{FanoutLimits, MemoryLimits, Shared};

use crate::config::Config;

/// The shared-state ports for this configuration.
pub fn shared(cfg: &Config, clock: Arc<dyn Clock>) -> Shared {
    Shared::memory(
        clock,
        MemoryLimits {
            fanout: FanoutLimits {
                streams_per_node: cfg.max_event_streams_per_node,
                ..FanoutLimits::default()
            },
            ..MemoryLimits::default()
        },
    )
}
