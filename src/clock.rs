//! The one place that reads the time. Everything else takes `now` as a value, so tests
//! (and `check --at`) can say what "now" is.

use jiff::tz::TimeZone;
use jiff::Timestamp;

/// A clock further than this many seconds from upstream's is a warning (`upstream-api.md`,
/// heartbeat).
pub const CLOCK_SKEW_LIMIT: i64 = 300;

pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The operating system's real-time clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that always says the same instant.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub Timestamp);

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        self.0
    }
}

/// RFC 3339 with the zone's offset at that instant: `2026-11-28T12:01:02+08:00`.
pub fn rfc3339(ts: Timestamp, timezone: &TimeZone) -> String {
    ts.to_zoned_datetime(timezone.clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// A clock that tests move by hand.
#[derive(Debug, Clone)]
pub struct ManualClock(std::sync::Arc<std::sync::Mutex<Timestamp>>);

impl ManualClock {
    pub fn new(at: Timestamp) -> ManualClock {
        ManualClock(std::sync::Arc::new(std::sync::Mutex::new(at)))
    }

    pub fn set(&self, at: Timestamp) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One clock shared by the parts of the daemon (the ledger owner and the HTTP edge).
impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}
