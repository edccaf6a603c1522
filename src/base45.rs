//! Base45 (RFC 9285), strict in both directions.
//!
//! Hand-written rather than taken from the `base45` crate because that crate accepts a
//! trailing pair worth more than 255 (`"ZZ"`) by truncating it; CP1 must call such a
//! text `malformed`. It knows nothing of the layers around it.

use thiserror::Error;

const ALPHABET: &[u8; 45] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum Base45Error {
    #[error("character {0:?} at {1} is not in the base45 alphabet")]
    Character(char, usize),
    #[error("a base45 text cannot be {0} characters long (length mod 3 is 1)")]
    Length(usize),
    #[error("the group at {0} encodes a value larger than its bytes can hold")]
    Overflow(usize),
}

fn digit(byte: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == byte).map(|p| p as u32)
}

pub fn decode(text: &str) -> Result<Vec<u8>, Base45Error> {
    let bytes = text.as_bytes();
    if bytes.len() % 3 == 1 {
        return Err(Base45Error::Length(bytes.len()));
    }
    let mut out = Vec::with_capacity(bytes.len() / 3 * 2 + 1);
    for (index, group) in bytes.chunks(3).enumerate() {
        let at = index * 3;
        let mut value = 0u32;
        for (i, &b) in group.iter().enumerate().rev() {
            let d = digit(b).ok_or_else(|| {
                // Inside a multi-byte character there is no char to show: say U+FFFD.
                let ch = text.get(at + i..).and_then(|s| s.chars().next()).unwrap_or('\u{fffd}');
                Base45Error::Character(ch, at + i)
            })?;
            value = value * 45 + d;
        }
        if group.len() == 3 {
            let pair = u16::try_from(value).map_err(|_| Base45Error::Overflow(at))?;
            out.extend_from_slice(&pair.to_be_bytes());
        } else {
            out.push(u8::try_from(value).map_err(|_| Base45Error::Overflow(at))?);
        }
    }
    Ok(out)
}

pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(2) * 3);
    for pair in bytes.chunks(2) {
        let (mut value, digits) = match *pair {
            [a, b] => (u32::from(a) * 256 + u32::from(b), 3),
            [a] => (u32::from(a), 2),
            _ => unreachable!("chunks(2) yields one or two bytes"),
        };
        for _ in 0..digits {
            out.push(ALPHABET[(value % 45) as usize] as char);
            value /= 45;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_examples() {
        assert_eq!(encode(b"AB"), "BB8");
        assert_eq!(decode("%69 VD92EX0").unwrap(), b"Hello!!");
        assert_eq!(decode("GGW"), Err(Base45Error::Overflow(0)));
        assert_eq!(decode("ZZ"), Err(Base45Error::Overflow(0)));
        assert_eq!(decode("A"), Err(Base45Error::Length(1)));
        assert_eq!(decode("aB8"), Err(Base45Error::Character('a', 0)));
        assert_eq!(decode("BBéB"), Err(Base45Error::Character('é', 2)));
    }

    proptest! {
        #[test]
        fn round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let text = encode(&bytes);
            prop_assert_eq!(decode(&text).unwrap(), bytes);
        }

        #[test]
        fn never_panics(text in "\\PC{0,40}") {
            let _ = decode(&text);
        }
    }
}
