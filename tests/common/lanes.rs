//! Lanes of one store for the store hub's tests: terminals of one issuer and merchant
//! (M-000123), each joined to the hub with a `[store]` section and run as its own
//! `redeemd run`; the polls those tests share.

use super::daemon::Daemon;
use super::TestTerminal;
use serde_json::Value;
use std::time::{Duration, Instant};

/// A lane: its terminal and its daemon.
pub struct Lane {
    pub t: TestTerminal,
    pub d: Daemon,
}

impl Lane {
    /// Runs the daemon of a terminal already joined to the store.
    pub fn start(t: TestTerminal) -> Lane {
        let d = Daemon::start(&t, &[]);
        Lane { t, d }
    }
}

/// Appends `[store]` for lane `lane` of the hub at `hub` (a 500 ms budget: a loaded test
/// machine is not a store's LAN) and `extra` lines to `t`'s configuration.
pub fn join_store(t: &TestTerminal, hub: &str, lane: &str, extra: &str) {
    let mut config = std::fs::read_to_string(t.config()).unwrap();
    config.push_str(&format!("\n[store]\nhub = \"{hub}\"\nlane = \"{lane}\"\nclaim-timeout-ms = 500\n{extra}\n"));
    std::fs::write(t.config(), config).unwrap();
}

/// The `hub` object of a daemon's `/v1/status`.
pub fn hub_of(d: &Daemon) -> Value {
    d.get("/v1/status").json()["hub"].clone()
}

/// Polls `ok` until it holds, failing after `limit`: how long it took.
pub fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !ok() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

/// Waits until the daemon reports its hub connected.
pub fn connected_at(d: &Daemon) {
    wait_for("the lane connects to the hub", Duration::from_secs(15), || hub_of(d)["state"] == "connected");
}

/// A fresh checkout of `basket` and `code` in it: the decision record.
pub fn redeem_at(d: &Daemon, basket: i64, code: &str) -> Value {
    let checkout = d.open_checkout(basket);
    d.present(&checkout, code)
}
