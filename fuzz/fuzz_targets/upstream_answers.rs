//! Any bytes as upstream's answers: the `POST /v1/redemptions` results checked against a
//! fuzzer-chosen list of sent events, the enrollment and heartbeat answers, and any text
//! as `Retry-After`. Refusals only, never a panic; accepted results match what was sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use redeemd::upstream::{self, RetryAfter, RETRY_AFTER_CAP};

fuzz_target!(|data: &[u8]| {
    // First byte: how many events were sent (0..=4), ids "e0".."e3".
    let (count, body) = match data.split_first() {
        Some((&first, rest)) => (usize::from(first % 5), rest),
        None => (0, data),
    };
    let sent: Vec<(String, String)> =
        (0..count).map(|i| (format!("e{i}"), format!("{{\"event_id\":\"e{i}\",\"seq\":{}}}", i + 1))).collect();
    if let Ok(results) = upstream::parse_results(&sent, body) {
        assert_eq!(results.len(), sent.len());
        for (r, (event_id, _)) in results.iter().zip(&sent) {
            assert_eq!(&r.event_id, event_id);
            // The raw text kept for the ledger is the result object itself.
            let again: serde_json::Value = serde_json::from_str(&r.raw).expect("raw result is JSON");
            assert_eq!(again.get("event_id").and_then(|v| v.as_str()), Some(event_id.as_str()));
            assert_eq!(again.get("status").and_then(|v| v.as_str()), Some(r.status.as_str()));
        }
    }
    // The whole input as the other answers too.
    if let Ok(e) = upstream::parse_enrollment(data) {
        let json = serde_json::to_vec(&e).unwrap();
        assert_eq!(upstream::parse_enrollment(&json).as_ref(), Ok(&e));
    }
    let _ = upstream::parse_heartbeat(data);
    let _ = upstream::parse_heartbeat(body);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(r) = RetryAfter::parse(text) {
            for now in [jiff::Timestamp::UNIX_EPOCH, jiff::Timestamp::MIN, jiff::Timestamp::MAX] {
                let d = r.delay_from(now);
                assert!(d <= RETRY_AFTER_CAP);
            }
        }
    }
});
