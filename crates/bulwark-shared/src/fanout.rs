//! The event fan-out port: already-signed, already-journaled envelopes to the subscribers
//! of a node (moved here from `bulwark-server::events`, semantics unchanged).
//!
//! Publishing happens after the journal append, so the journal stays the durable copy:
//! a subscriber that misses something (dropped for being slow, a replica failing over)
//! resumes from the journal-folded backlog by `Last-Event-ID`, and drops what it has seen
//! by seq. Fan-out neither signs nor checks: the gate admitted the envelope before it was
//! journaled, and the agent verifies every envelope itself.
//!
//! A NATS JetStream implementation publishes to one subject per node with `Nats-Msg-Id` =
//! the journal seq (a republish after failover is deduplicated) and awaits the ack; each
//! replica subscribes and feeds the SSE subscribers it holds through the same bounded
//! channels as the memory one ([`Subscription::with_guard`] ties the NATS consumer's
//! lifetime to the subscription).

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc;

use crate::{BoxFuture, SharedError};

/// Envelopes buffered per subscriber, by default; a subscriber this far behind is
/// disconnected.
pub const SUBSCRIBER_BUFFER: usize = 1024;
/// Streams open at once per node, by default.
pub const MAX_SUBSCRIBERS_PER_NODE: usize = 8;
/// The counter of subscribers disconnected for falling behind (the name `bulwark-http`
/// describes to the Prometheus exporter).
pub const EVENTS_SLOW_CONSUMERS_TOTAL: &str = "events_slow_consumers_total";

/// One published envelope as subscribers get it: the journal seq (SSE id), its type and
/// its JSON.
#[derive(Debug, Clone)]
pub struct Published {
    /// The journal entry's seq.
    pub seq: u64,
    /// The envelope's type.
    pub kind: Arc<str>,
    /// The envelope, JSON.
    pub json: Arc<str>,
}

/// A subscriber's end: envelopes in publication order until the stream ends (the
/// subscriber fell behind, or the backend closed it).
pub struct Subscription {
    rx: mpsc::Receiver<Published>,
    _guard: Option<Box<dyn Any + Send + Sync>>,
}

impl Subscription {
    /// Envelopes from `rx`.
    pub fn new(rx: mpsc::Receiver<Published>) -> Self {
        Self { rx, _guard: None }
    }

    /// Envelopes from `rx`, keeping `guard` alive as long as the subscription (a
    /// backend's consumer handle, dropped when the subscriber goes away).
    pub fn with_guard(rx: mpsc::Receiver<Published>, guard: impl Any + Send + Sync) -> Self {
        Self {
            rx,
            _guard: Some(Box::new(guard)),
        }
    }

    /// The next envelope; `None` once the stream has ended.
    pub async fn recv(&mut self) -> Option<Published> {
        self.rx.recv().await
    }

    /// The next envelope if one is buffered.
    pub fn try_recv(&mut self) -> Result<Published, mpsc::error::TryRecvError> {
        self.rx.try_recv()
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("buffered", &self.rx.len())
            .finish_non_exhaustive()
    }
}

/// Where envelopes go once journaled.
pub trait Fanout: Send + Sync + fmt::Debug {
    /// Delivers `message` to `node_key`'s subscribers. `Ok` once the backend has taken it
    /// (memory: handed to every live subscriber's buffer; a subscriber whose buffer is
    /// full is disconnected and counted). An error means live subscribers may not get it
    /// (they still can by resuming from the journal).
    fn publish<'a>(
        &'a self,
        node_key: &'a str,
        message: Published,
    ) -> BoxFuture<'a, Result<(), SharedError>>;

    /// A new subscriber to `node_key`; `Ok(None)` when the node has as many open streams
    /// as it may.
    fn subscribe<'a>(
        &'a self,
        node_key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Subscription>, SharedError>>;
}

/// The in-memory fan-out's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FanoutLimits {
    /// Streams open at once per node.
    pub streams_per_node: usize,
    /// Envelopes buffered per subscriber (at least 1).
    pub subscriber_buffer: usize,
}

impl Default for FanoutLimits {
    fn default() -> Self {
        Self {
            streams_per_node: MAX_SUBSCRIBERS_PER_NODE,
            subscriber_buffer: SUBSCRIBER_BUFFER,
        }
    }
}

/// The in-process fan-out: one bounded channel per subscriber. A subscriber whose buffer
/// is full is dropped (its stream ends; counted) rather than growing memory.
pub struct MemoryFanout {
    subscribers: Mutex<HashMap<String, Vec<mpsc::Sender<Published>>>>,
    limits: FanoutLimits,
    slow: AtomicU64,
}

impl Default for MemoryFanout {
    fn default() -> Self {
        Self::with_limits(FanoutLimits::default())
    }
}

impl MemoryFanout {
    /// A fan-out allowing `per_node` open streams per node, [`SUBSCRIBER_BUFFER`]
    /// envelopes buffered each.
    pub fn new(per_node: usize) -> Self {
        Self::with_limits(FanoutLimits {
            streams_per_node: per_node,
            ..FanoutLimits::default()
        })
    }

    /// A fan-out with `limits`.
    pub fn with_limits(limits: FanoutLimits) -> Self {
        Self {
            subscribers: Mutex::default(),
            limits,
            slow: AtomicU64::new(0),
        }
    }

    /// Subscribers disconnected for falling behind, since start.
    pub fn slow_consumers(&self) -> u64 {
        self.slow.load(Ordering::Relaxed)
    }

    fn deliver(&self, node_key: &str, p: &Published) {
        let mut subs = self
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(list) = subs.get_mut(node_key) {
            list.retain(|tx| match tx.try_send(p.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.slow.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(EVENTS_SLOW_CONSUMERS_TOTAL).increment(1);
                    tracing::warn!(node = node_key, "event subscriber too slow: disconnected");
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
            if list.is_empty() {
                subs.remove(node_key);
            }
        }
    }

    fn open(&self, node_key: &str) -> Option<Subscription> {
        let mut subs = self
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let list = subs.entry(node_key.to_owned()).or_default();
        // Streams that ended are forgotten here too, not only at the next publication.
        list.retain(|tx| !tx.is_closed());
        if list.len() >= self.limits.streams_per_node {
            if list.is_empty() {
                subs.remove(node_key);
            }
            return None;
        }
        let (tx, rx) = mpsc::channel(self.limits.subscriber_buffer.max(1));
        list.push(tx);
        Some(Subscription::new(rx))
    }
}

impl fmt::Debug for MemoryFanout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryFanout")
            .field("limits", &self.limits)
            .field("slow_consumers", &self.slow_consumers())
            .finish_non_exhaustive()
    }
}

impl Fanout for MemoryFanout {
    fn publish<'a>(
        &'a self,
        node_key: &'a str,
        message: Published,
    ) -> BoxFuture<'a, Result<(), SharedError>> {
        Box::pin(async move {
            self.deliver(node_key, &message);
            Ok(())
        })
    }

    fn subscribe<'a>(
        &'a self,
        node_key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Subscription>, SharedError>> {
        Box::pin(async move { Ok(self.open(node_key)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(seq: u64) -> Published {
        Published {
            seq,
            kind: "t".into(),
            json: "{}".into(),
        }
    }

    // Moved from bulwark-server's events.rs, with the same assertions.
    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_dropped_not_buffered_forever() {
        let bus = MemoryFanout::default();
        let mut fast = bus.subscribe("acme/n1").await.unwrap().unwrap();
        let mut slow = bus.subscribe("acme/n1").await.unwrap().unwrap();
        for i in 0..(SUBSCRIBER_BUFFER as u64 + 10) {
            bus.publish("acme/n1", p(i)).await.unwrap();
            // The fast one keeps up.
            assert_eq!(fast.try_recv().unwrap().seq, i);
        }
        // The slow one got its buffer's worth, then its channel was closed.
        let mut got = 0;
        while slow.try_recv().is_ok() {
            got += 1;
        }
        assert_eq!(got, SUBSCRIBER_BUFFER);
        assert!(matches!(
            slow.try_recv(),
            Err(tokio::sync::mpsc::error::TryRecvError::Disconnected)
        ));
        assert_eq!(bus.slow_consumers(), 1, "dropped and counted, once");
        bus.publish("acme/n1", p(10_000)).await.unwrap();
        assert_eq!(fast.try_recv().unwrap().seq, 10_000);
        // Another node's subscriber sees nothing of acme/n1.
        let mut other = bus.subscribe("acme/n2").await.unwrap().unwrap();
        // At most MAX_SUBSCRIBERS_PER_NODE open streams per node; closed ones free a slot.
        let mut extra = Vec::new();
        for _ in 0..MAX_SUBSCRIBERS_PER_NODE - 1 {
            extra.push(bus.subscribe("acme/n2").await.unwrap().unwrap());
        }
        assert!(bus.subscribe("acme/n2").await.unwrap().is_none());
        drop(extra);
        assert!(bus.subscribe("acme/n2").await.unwrap().is_some());
        bus.publish("acme/n1", p(10_001)).await.unwrap();
        assert!(other.try_recv().is_err());
    }

    #[tokio::test]
    async fn limits_are_configurable_and_a_zero_buffer_is_one() {
        let bus = MemoryFanout::with_limits(FanoutLimits {
            streams_per_node: 1,
            subscriber_buffer: 0,
        });
        let mut s = bus.subscribe("acme/n1").await.unwrap().unwrap();
        assert!(bus.subscribe("acme/n1").await.unwrap().is_none());
        bus.publish("acme/n1", p(1)).await.unwrap();
        bus.publish("acme/n1", p(2)).await.unwrap();
        assert_eq!(s.recv().await.unwrap().seq, 1);
        assert!(s.recv().await.is_none(), "behind by one: dropped");
        assert_eq!(bus.slow_consumers(), 1);
        // Its slot is free again; a node with no stream left holds no entry.
        let s = bus.subscribe("acme/n1").await.unwrap().unwrap();
        drop(s);
        bus.publish("acme/n1", p(3)).await.unwrap();
        assert!(bus.subscribers.lock().unwrap().is_empty());
        let none = MemoryFanout::new(0);
        assert!(none.subscribe("acme/n1").await.unwrap().is_none());
        assert!(none.subscribers.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn publication_order_is_kept_per_subscriber() {
        let bus = MemoryFanout::default();
        let mut a = bus.subscribe("acme/n1").await.unwrap().unwrap();
        let mut b = bus.subscribe("acme/n1").await.unwrap().unwrap();
        for i in 1..=100 {
            bus.publish("acme/n1", p(i)).await.unwrap();
        }
        for s in [&mut a, &mut b] {
            let seqs: Vec<u64> = std::iter::from_fn(|| s.try_recv().ok().map(|p| p.seq)).collect();
            assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
        }
    }

    #[tokio::test]
    async fn a_guard_lives_as_long_as_its_subscription() {
        struct Flag(Arc<std::sync::atomic::AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, rx) = mpsc::channel(1);
        let mut s = Subscription::with_guard(rx, Flag(dropped.clone()));
        tx.send(p(5)).await.unwrap();
        assert_eq!(s.recv().await.unwrap().seq, 5);
        assert!(!dropped.load(Ordering::SeqCst));
        drop(s);
        assert!(dropped.load(Ordering::SeqCst));
    }
}
