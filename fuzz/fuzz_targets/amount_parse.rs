//! Amount text: parsed exactly or refused, and what parses prints back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use redeemd::money::parse_amount;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        for digits in 0..=3 {
            if let Ok(m) = parse_amount(text, digits) {
                assert_eq!(parse_amount(&m.display(digits), digits), Ok(m));
            }
        }
    }
});
