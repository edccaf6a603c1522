//! Money as an integer count of the currency's minor unit (fen for CNY), parsed exactly
//! from decimal text and printed back the same way. It never touches floating point.

use std::fmt;
use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(pub i64);

impl Money {
    pub const ZERO: Money = Money(0);
    /// The largest amount anywhere (spec: 0 to 10^11 minor units; a basket of a billion
    /// yuan is not a basket). Sums of up to 2^25 such amounts fit an `i64`; sums are
    /// computed checked or in `i128` anyway.
    pub const MAX: Money = Money(100_000_000_000);

    /// Decimal major units with exactly `digits` decimals: `Money(5800)` → `"58.00"`.
    pub fn display(self, digits: u32) -> String {
        if digits == 0 {
            return self.0.to_string();
        }
        let scale = 10i64.pow(digits);
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        format!("{sign}{}.{:0width$}", abs / scale as u64, abs % scale as u64, width = digits as usize)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display(2))
    }
}

/// ISO 4217 minor-unit digits; 2 unless the currency is known to differ.
pub fn currency_digits(currency: &str) -> u32 {
    match currency {
        "JPY" | "KRW" | "VND" | "CLP" | "ISK" | "PYG" | "UGX" | "XAF" | "XOF" | "XPF" | "RWF" | "KMF" | "GNF"
        | "DJF" | "BIF" | "VUV" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AmountError {
    #[error("amount {0:?} is empty; give a decimal like 58 or 58.50")]
    Empty(String),
    #[error("amount {0:?} is not a plain decimal number; give digits with an optional point, like 58 or 58.50")]
    NotDecimal(String),
    #[error("amount {text:?} has more than {digits} decimal places; the currency's smallest unit is 0.{unit}")]
    TooPrecise { text: String, digits: u32, unit: String },
    #[error("amount {0:?} is too large: at most 10^11 minor units (1,000,000,000.00 CNY)")]
    TooLarge(String),
}

/// Parses a non-negative decimal amount in major units (`"58"`, `"58.5"`, `"58.00"`) into
/// minor units. Signs, exponents, separators, spaces and non-ASCII digits are refused.
pub fn parse_amount(text: &str, digits: u32) -> Result<Money, AmountError> {
    if text.is_empty() {
        return Err(AmountError::Empty(text.into()));
    }
    let (whole, frac) = match text.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (text, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || frac.is_some_and(|f| !all_digits(f)) {
        return Err(AmountError::NotDecimal(text.into()));
    }
    let frac = frac.unwrap_or("");
    if frac.len() > digits as usize {
        let unit = if digits == 0 { "".into() } else { format!("{}1", "0".repeat(digits as usize - 1)) };
        return Err(AmountError::TooPrecise { text: text.into(), digits, unit });
    }
    let too_large = || AmountError::TooLarge(text.into());
    let whole: i64 = whole.parse().map_err(|_| too_large())?;
    let padded = format!("{frac:0<width$}", width = digits as usize);
    let frac: i64 = if padded.is_empty() { 0 } else { padded.parse().map_err(|_| too_large())? };
    whole
        .checked_mul(10i64.pow(digits))
        .and_then(|m| m.checked_add(frac))
        .filter(|m| *m <= Money::MAX.0)
        .map(Money)
        .ok_or_else(too_large)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_exactly() {
        assert_eq!(parse_amount("58", 2), Ok(Money(5800)));
        assert_eq!(parse_amount("58.5", 2), Ok(Money(5850)));
        assert_eq!(parse_amount("58.00", 2), Ok(Money(5800)));
        assert_eq!(parse_amount("0.01", 2), Ok(Money(1)));
        assert_eq!(parse_amount("1000", 0), Ok(Money(1000)));
        for bad in ["1e3", "-5", "+5", "58.", ".5", " 58", "58 ", "五十", "5,8", "0x10", "NaN", "١٢"] {
            assert!(parse_amount(bad, 2).is_err(), "{bad} must be refused");
        }
        assert!(matches!(parse_amount("58.001", 2), Err(AmountError::TooPrecise { .. })));
        assert!(matches!(parse_amount("", 2), Err(AmountError::Empty(_))));
        assert!(matches!(parse_amount("99999999999999999999", 2), Err(AmountError::TooLarge(_))));
        assert!(matches!(parse_amount("58.5", 0), Err(AmountError::TooPrecise { .. })));
        assert_eq!(parse_amount("1000000000", 2), Ok(Money::MAX));
        assert!(matches!(parse_amount("1000000000.01", 2), Err(AmountError::TooLarge(_))));
        assert!(matches!(parse_amount("92233720368547758.07", 2), Err(AmountError::TooLarge(_))));
    }

    #[test]
    fn messages_name_the_value() {
        let msg = parse_amount("58.001", 2).unwrap_err().to_string();
        assert!(msg.contains("58.001") && msg.contains("0.01"), "{msg}");
    }

    proptest! {
        #[test]
        fn display_round_trips(minor in 0i64..=Money::MAX.0, digits in 0u32..=3) {
            let text = Money(minor).display(digits);
            prop_assert_eq!(parse_amount(&text, digits), Ok(Money(minor)));
        }

        #[test]
        fn any_text_parses_or_errors(text in "\\PC{0,24}") {
            if let Ok(m) = parse_amount(&text, 2) {
                prop_assert!(m.0 >= 0);
                prop_assert!(text.bytes().all(|b| b.is_ascii_digit() || b == b'.'));
            }
        }
    }
}
