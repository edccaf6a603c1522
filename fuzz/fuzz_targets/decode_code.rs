//! Any text through every CP1 layer, then through each layer alone: never a panic, never
//! an inflated buffer past the cap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use redeemd::coupon;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = coupon::decode(text);
        let _ = redeemd::base45::decode(text);
    }
    if let Ok(inflated) = coupon::inflate(data) {
        assert!(inflated.len() <= coupon::MAX_INFLATED);
    }
    if let Ok(sign1) = coupon::parse_sign1(data) {
        let _ = sign1.to_be_signed();
        let _ = coupon::cp1_kid(sign1.kid.as_ref());
    }
    let _ = coupon::parse_payload(data);
});
