//! The daemon's events (`spec/terminal-interfaces.md`, "Events"): one type, serialised
//! the same for server-sent events, logs and tests, and the bus that fans them out.
//!
//! Publishing never blocks and never fails: a subscriber that falls behind loses the
//! oldest events (and is told so by the broadcast channel), the publisher never waits.
//! This module carries events; it decides nothing and holds no ledger state.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::broadcast;

/// The named events of the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Decision,
    Checkout,
    Scanner,
    Scan,
    Sync,
    Ruleset,
    Hub,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Decision => "decision",
            EventKind::Checkout => "checkout",
            EventKind::Scanner => "scanner",
            EventKind::Scan => "scan",
            EventKind::Sync => "sync",
            EventKind::Ruleset => "ruleset",
            EventKind::Hub => "hub",
        }
    }
}

/// One event: `id` grows by one per event of this daemon's life.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub id: u64,
    pub kind: EventKind,
    pub data: serde_json::Value,
}

impl Event {
    /// The `text/event-stream` frame: `event:`, `id:`, one line of `data:`.
    pub fn to_sse(&self) -> String {
        format!("event: {}\nid: {}\ndata: {}\n\n", self.kind.as_str(), self.id, self.data)
    }
}

/// How many events a slow subscriber may lag before it loses the oldest.
const CAPACITY: usize = 1024;

#[derive(Debug)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<Event>>,
    next_id: AtomicU64,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus { sender: broadcast::channel(CAPACITY).0, next_id: AtomicU64::new(1) }
    }
}

impl EventBus {
    pub fn publish(&self, kind: EventKind, data: serde_json::Value) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(event = kind.as_str(), id, "event");
        // No subscriber is not an error: nobody is watching.
        let _ = self.sender.send(Arc::new(Event { id, kind, data }));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_numbered_and_framed_for_sse() {
        let bus = EventBus::default();
        let mut rx = bus.subscribe();
        bus.publish(EventKind::Scan, serde_json::json!({"ignored": "no_checkout"}));
        bus.publish(EventKind::Ruleset, serde_json::json!({"version": 3}));
        let first = rx.try_recv().unwrap();
        assert_eq!(first.to_sse(), "event: scan\nid: 1\ndata: {\"ignored\":\"no_checkout\"}\n\n");
        assert_eq!(rx.try_recv().unwrap().id, 2);
    }
}
