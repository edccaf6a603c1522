//! The local API's request bodies: JSON bytes into typed requests, or a 400 that names
//! the field and what is wrong with it. Pure (no IO, no state), so any bytes can be fed
//! to it — the `api_bodies` fuzz target does.

use crate::money::Money;
use crate::store::CheckoutStatus;
use serde_json::{Map, Value};

/// Why a body was refused (answered 400 with `code` and `message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadBody {
    pub code: &'static str,
    pub message: String,
}

fn bad_field(field: &str, what: &str) -> BadBody {
    BadBody { code: "bad_field", message: format!("`{field}` {what}") }
}

/// A JSON object (an empty body counts as `{}` where `empty_ok`).
pub fn object(bytes: &[u8], empty_ok: bool) -> Result<Map<String, Value>, BadBody> {
    if empty_ok && bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(BadBody { code: "bad_json", message: "the body must be a JSON object".into() }),
        Err(e) => Err(BadBody { code: "bad_json", message: format!("the body is not valid JSON: {e}") }),
    }
}

/// An amount field: an integer of minor units from 0 to 10^11.
pub fn amount(map: &Map<String, Value>, field: &str) -> Result<Option<Money>, BadBody> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(v) if (0..=Money::MAX.0).contains(&v) => Ok(Some(Money(v))),
            Some(v) if v < 0 => Err(bad_field(field, "must not be negative")),
            Some(_) => Err(bad_field(field, &format!("must be at most {} minor units", Money::MAX.0))),
            None if n.is_u64() => Err(bad_field(field, &format!("must be at most {} minor units", Money::MAX.0))),
            // Written with a point or an exponent: 58.0 is not an amount of fen, even when
            // it is whole. Only an integer too long for 64 bits lands here as well.
            None => match n.as_f64() {
                Some(f) if f.abs() >= 9.2e18 && f.fract() == 0.0 => {
                    Err(bad_field(field, &format!("must be at most {} minor units", Money::MAX.0)))
                }
                Some(f) if f.fract() == 0.0 => Err(bad_field(
                    field,
                    "must be an integer of minor units (fen), written without a decimal point or exponent",
                )),
                _ => Err(bad_field(field, "must be an integer of minor units (fen), not a fraction")),
            },
        },
        Some(_) => Err(bad_field(field, "must be an integer of minor units (fen)")),
    }
}

pub fn string(map: &Map<String, Value>, field: &str) -> Result<Option<String>, BadBody> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad_field(field, "must be a string")),
    }
}

/// `POST /v1/checkouts` `{"basket_total", "eligible_total"?, "pos_ref"?}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenCheckout {
    pub basket_total: Money,
    pub eligible_total: Option<Money>,
    pub pos_ref: Option<String>,
}

pub fn open_checkout(bytes: &[u8]) -> Result<OpenCheckout, BadBody> {
    let map = object(bytes, false)?;
    let basket_total = amount(&map, "basket_total")?.ok_or_else(|| bad_field("basket_total", "is missing"))?;
    let eligible_total = amount(&map, "eligible_total")?;
    if eligible_total.is_some_and(|e| e > basket_total) {
        return Err(bad_field("eligible_total", "must not exceed basket_total"));
    }
    Ok(OpenCheckout { basket_total, eligible_total, pos_ref: string(&map, "pos_ref")? })
}

/// `POST /v1/checkouts/{id}/amounts` `{"basket_total", "eligible_total"?}`: the amounts
/// checked as [`open_checkout`] checks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amounts {
    pub basket_total: Money,
    pub eligible_total: Option<Money>,
}

pub fn amounts(bytes: &[u8]) -> Result<Amounts, BadBody> {
    let map = object(bytes, false)?;
    let basket_total = amount(&map, "basket_total")?.ok_or_else(|| bad_field("basket_total", "is missing"))?;
    let eligible_total = amount(&map, "eligible_total")?;
    if eligible_total.is_some_and(|e| e > basket_total) {
        return Err(bad_field("eligible_total", "must not exceed basket_total"));
    }
    Ok(Amounts { basket_total, eligible_total })
}

/// `POST /v1/checkouts/{id}/codes` `{"code"}`.
pub fn code(bytes: &[u8]) -> Result<String, BadBody> {
    string(&object(bytes, false)?, "code")?.ok_or_else(|| bad_field("code", "is missing"))
}

/// `POST /v1/checkouts/{id}/close` `{"status": "paid" | "cancelled"}`.
pub fn close(bytes: &[u8]) -> Result<CheckoutStatus, BadBody> {
    match string(&object(bytes, false)?, "status")?.as_deref() {
        Some("paid") => Ok(CheckoutStatus::Paid),
        Some("cancelled") => Ok(CheckoutStatus::Cancelled),
        Some(other) => Err(bad_field("status", &format!("must be \"paid\" or \"cancelled\", not {other:?}"))),
        None => Err(bad_field("status", "is missing (\"paid\" or \"cancelled\")")),
    }
}

/// `POST /v1/redemptions/{id}/void` `{"reason"?}` (an empty body is fine).
pub fn void(bytes: &[u8]) -> Result<Option<String>, BadBody> {
    string(&object(bytes, true)?, "reason")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bodies_are_typed_or_refused_by_field() {
        let ok = open_checkout(br#"{"basket_total": 5800, "eligible_total": 5000, "pos_ref": "t1", "x": 1}"#).unwrap();
        assert_eq!(
            ok,
            OpenCheckout { basket_total: Money(5800), eligible_total: Some(Money(5000)), pos_ref: Some("t1".into()) }
        );
        for (body, field) in [
            (r#"{"basket_total": -1}"#, "basket_total"),
            (r#"{"basket_total": 1.5}"#, "basket_total"),
            (r#"{"basket_total": 100000000001}"#, "basket_total"),
            (r#"{"basket_total": 1e30}"#, "basket_total"),
            (r#"{"basket_total": 10, "eligible_total": 11}"#, "eligible_total"),
            (r#"{}"#, "basket_total"),
        ] {
            let e = open_checkout(body.as_bytes()).unwrap_err();
            assert!(e.message.contains(field), "{body}: {e:?}");
        }
        // A whole amount written with a point is refused for its form, not its size.
        for (body, says) in [
            (r#"{"basket_total": 58.0}"#, "without a decimal point"),
            (r#"{"basket_total": 5.8e3}"#, "without a decimal point"),
            (r#"{"basket_total": 58.5}"#, "not a fraction"),
            (r#"{"basket_total": 100000000001}"#, "at most"),
            (r#"{"basket_total": 18446744073709551616}"#, "at most"),
            (r#"{"basket_total": 1e30}"#, "at most"),
        ] {
            let e = open_checkout(body.as_bytes()).unwrap_err();
            assert!(e.message.contains(says), "{body}: {e:?}");
        }
        assert_eq!(close(br#"{"status": "paid"}"#), Ok(CheckoutStatus::Paid));
        assert_eq!(
            amounts(br#"{"basket_total": 4800}"#),
            Ok(Amounts { basket_total: Money(4800), eligible_total: None })
        );
        assert!(amounts(br#"{"basket_total": 10, "eligible_total": 11}"#)
            .unwrap_err()
            .message
            .contains("eligible_total"));
        assert!(amounts(br#"{"eligible_total": 11}"#).unwrap_err().message.contains("basket_total"));
        assert_eq!(void(b""), Ok(None));
        assert_eq!(object(b"[1]", false).unwrap_err().code, "bad_json");
    }

    proptest! {
        #[test]
        fn any_bytes_are_typed_or_refused(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(c) = open_checkout(&bytes) {
                prop_assert!(c.basket_total.0 >= 0 && c.basket_total <= Money::MAX);
                prop_assert!(c.eligible_total.is_none_or(|e| e <= c.basket_total));
            }
            if let Ok(a) = amounts(&bytes) {
                prop_assert!(a.basket_total.0 >= 0 && a.basket_total <= Money::MAX);
                prop_assert!(a.eligible_total.is_none_or(|e| e <= a.basket_total));
            }
            let _ = (code(&bytes), close(&bytes), void(&bytes));
        }
    }
}
