//! Any bytes as each local-API request body: typed or refused with a 400 (`bad_json` or
//! `bad_field`), never a panic; an accepted checkout's amounts are in range.
#![no_main]

use libfuzzer_sys::fuzz_target;
use redeemd::daemon::body;
use redeemd::money::Money;

fn refusal_ok(e: &body::BadBody) {
    assert!(e.code == "bad_json" || e.code == "bad_field", "{e:?}");
    assert!(!e.message.is_empty());
}

fuzz_target!(|data: &[u8]| {
    let object = body::object(data, false);
    match body::open_checkout(data) {
        Ok(c) => {
            assert!(object.is_ok());
            assert!(c.basket_total.0 >= 0 && c.basket_total <= Money::MAX, "{c:?}");
            assert!(Money::MAX.0 == 100_000_000_000);
            if let Some(e) = c.eligible_total {
                assert!(e.0 >= 0 && e <= c.basket_total, "{c:?}");
            }
        }
        Err(e) => refusal_ok(&e),
    }
    match body::amounts(data) {
        Ok(a) => {
            assert!(object.is_ok());
            assert!(a.basket_total.0 >= 0 && a.basket_total <= Money::MAX, "{a:?}");
            if let Some(e) = a.eligible_total {
                assert!(e.0 >= 0 && e <= a.basket_total, "{a:?}");
            }
        }
        Err(e) => refusal_ok(&e),
    }
    match body::code(data) {
        Ok(_) => assert!(object.is_ok()),
        Err(e) => refusal_ok(&e),
    }
    match body::close(data) {
        Ok(_) => assert!(object.is_ok()),
        Err(e) => refusal_ok(&e),
    }
    // An empty or all-whitespace body is `{}` for a void, and nothing else is.
    let blank = data.iter().all(u8::is_ascii_whitespace);
    match body::void(data) {
        Ok(reason) => {
            assert!(blank || object.is_ok());
            if blank {
                assert_eq!(reason, None);
            }
        }
        Err(e) => refusal_ok(&e),
    }
    if blank {
        assert!(body::object(data, true).is_ok_and(|m| m.is_empty()));
    }
});
