//! A strict, minimal CBOR (RFC 8949) reader and the few encoders CP1 needs.
//!
//! It owns the data model of the coupon layers: every tag is kept as a tag (a tagged
//! bignum is *not* an integer), map entries keep their order and duplicates, and the
//! reader says how many bytes one item took so callers can refuse trailing bytes.
//! Lengths are checked against the remaining input before anything is allocated, and
//! nesting is capped, so hostile input costs at most its own size. It must not know
//! anything about COSE or coupons.

use thiserror::Error;

/// Deepest nesting accepted; CP1 items nest three levels at most.
const MAX_DEPTH: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Major type 0: an unsigned integer.
    Unsigned(u64),
    /// Major type 1: the integer `-1 - n`.
    Negative(u64),
    Bytes(Vec<u8>),
    Text(String),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Tag(u64, Box<Value>),
    /// Major type 7: simple values and floats, kept only as "something else".
    Simple,
}

impl Value {
    /// The value as an `i64` when it is a plain (untagged) integer that fits.
    pub fn as_int(&self) -> Option<i64> {
        match *self {
            Value::Unsigned(n) => i64::try_from(n).ok(),
            Value::Negative(n) => i64::try_from(n).ok().map(|n| -1 - n),
            _ => None,
        }
    }

    pub fn is_int(&self) -> bool {
        matches!(self, Value::Unsigned(_) | Value::Negative(_))
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CborError {
    #[error("input ends inside an item")]
    Truncated,
    #[error("reserved or unsupported CBOR header byte {0:#04x}")]
    BadHeader(u8),
    #[error("nesting deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("text string is not UTF-8")]
    NotUtf8,
    #[error("indefinite-length string holds a chunk of another type")]
    BadChunk,
    #[error("unexpected break code")]
    UnexpectedBreak,
    #[error("{0} bytes left over after the CBOR item")]
    Trailing(usize),
}

/// Decodes exactly one item that spans the whole input.
pub fn from_slice(input: &[u8]) -> Result<Value, CborError> {
    let mut reader = Reader { input, pos: 0 };
    let value = reader.item(0)?;
    let rest = input.len() - reader.pos;
    if rest != 0 {
        return Err(CborError::Trailing(rest));
    }
    Ok(value)
}

struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
}

/// A header's argument: a definite length/value, or "indefinite".
enum Arg {
    Value(u64),
    Indefinite,
}

const BREAK: u8 = 0xff;

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, CborError> {
        let b = *self.input.get(self.pos).ok_or(CborError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8], CborError> {
        let remaining = (self.input.len() - self.pos) as u64;
        if len > remaining {
            return Err(CborError::Truncated);
        }
        let start = self.pos;
        self.pos += len as usize;
        Ok(&self.input[start..self.pos])
    }

    fn arg(&mut self, initial: u8) -> Result<Arg, CborError> {
        let info = initial & 0x1f;
        let n = match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.byte()?),
            25 => u64::from(u16::from_be_bytes(self.take(2)?.try_into().unwrap_or_default())),
            26 => u64::from(u32::from_be_bytes(self.take(4)?.try_into().unwrap_or_default())),
            27 => u64::from_be_bytes(self.take(8)?.try_into().unwrap_or_default()),
            31 => return Ok(Arg::Indefinite),
            _ => return Err(CborError::BadHeader(initial)),
        };
        Ok(Arg::Value(n))
    }

    fn peek_break(&mut self) -> Result<bool, CborError> {
        match self.input.get(self.pos) {
            Some(&BREAK) => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Err(CborError::Truncated),
        }
    }

    fn item(&mut self, depth: usize) -> Result<Value, CborError> {
        if depth > MAX_DEPTH {
            return Err(CborError::TooDeep);
        }
        let initial = self.byte()?;
        let major = initial >> 5;
        if initial == BREAK {
            return Err(CborError::UnexpectedBreak);
        }
        let arg = self.arg(initial)?;
        match (major, arg) {
            (0, Arg::Value(n)) => Ok(Value::Unsigned(n)),
            (1, Arg::Value(n)) => Ok(Value::Negative(n)),
            (2, arg) => Ok(Value::Bytes(self.string(2, arg)?)),
            (3, arg) => {
                let bytes = self.string(3, arg)?;
                String::from_utf8(bytes).map(Value::Text).map_err(|_| CborError::NotUtf8)
            }
            (4, Arg::Value(n)) => {
                // Every item takes at least one byte: a length past the input is a lie.
                if n > (self.input.len() - self.pos) as u64 {
                    return Err(CborError::Truncated);
                }
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(self.item(depth + 1)?);
                }
                Ok(Value::Array(items))
            }
            (4, Arg::Indefinite) => {
                let mut items = Vec::new();
                while !self.peek_break()? {
                    items.push(self.item(depth + 1)?);
                }
                Ok(Value::Array(items))
            }
            (5, Arg::Value(n)) => {
                if n.saturating_mul(2) > (self.input.len() - self.pos) as u64 {
                    return Err(CborError::Truncated);
                }
                let mut entries = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    let key = self.item(depth + 1)?;
                    let value = self.item(depth + 1)?;
                    entries.push((key, value));
                }
                Ok(Value::Map(entries))
            }
            (5, Arg::Indefinite) => {
                let mut entries = Vec::new();
                while !self.peek_break()? {
                    let key = self.item(depth + 1)?;
                    let value = self.item(depth + 1)?;
                    entries.push((key, value));
                }
                Ok(Value::Map(entries))
            }
            (6, Arg::Value(tag)) => Ok(Value::Tag(tag, Box::new(self.item(depth + 1)?))),
            (7, Arg::Value(_)) => {
                // Floats carry their payload after the header; `arg` already consumed it.
                Ok(Value::Simple)
            }
            _ => Err(CborError::BadHeader(initial)),
        }
    }

    fn string(&mut self, major: u8, arg: Arg) -> Result<Vec<u8>, CborError> {
        match arg {
            Arg::Value(len) => Ok(self.take(len)?.to_vec()),
            Arg::Indefinite => {
                let mut out = Vec::new();
                while !self.peek_break()? {
                    let initial = self.byte()?;
                    if initial >> 5 != major {
                        return Err(CborError::BadChunk);
                    }
                    match self.arg(initial)? {
                        Arg::Value(len) => out.extend_from_slice(self.take(len)?),
                        Arg::Indefinite => return Err(CborError::BadChunk),
                    }
                }
                Ok(out)
            }
        }
    }
}

/// Appends a definite-length header of `major` type with argument `n`.
pub fn write_header(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n <= 0xff {
        out.extend_from_slice(&[m | 24, n as u8]);
    } else if n <= 0xffff {
        out.push(m | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= 0xffff_ffff {
        out.push(m | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

pub fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_header(out, 2, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

pub fn write_text(out: &mut Vec<u8>, text: &str) {
    write_header(out, 3, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

pub fn write_int(out: &mut Vec<u8>, n: i64) {
    if n >= 0 {
        write_header(out, 0, n as u64);
    } else {
        write_header(out, 1, (-1 - n) as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(hex_input: &str, expect: Result<Value, CborError>) {
        let bytes: Vec<u8> =
            (0..hex_input.len()).step_by(2).map(|i| u8::from_str_radix(&hex_input[i..i + 2], 16).unwrap()).collect();
        assert_eq!(from_slice(&bytes), expect, "input {hex_input}");
    }

    #[test]
    fn decodes_the_data_model() {
        check("00", Ok(Value::Unsigned(0)));
        check("1903e8", Ok(Value::Unsigned(1000)));
        check("20", Ok(Value::Negative(0)));
        check("4401020304", Ok(Value::Bytes(vec![1, 2, 3, 4])));
        check("5f42010243030405ff", Ok(Value::Bytes(vec![1, 2, 3, 4, 5])));
        check("6161", Ok(Value::Text("a".into())));
        check("9f0102ff", Ok(Value::Array(vec![Value::Unsigned(1), Value::Unsigned(2)])));
        check("a10102", Ok(Value::Map(vec![(Value::Unsigned(1), Value::Unsigned(2))])));
        check("c249010000000000000000", Ok(Value::Tag(2, Box::new(Value::Bytes(vec![1, 0, 0, 0, 0, 0, 0, 0, 0])))));
        check("f93c00", Ok(Value::Simple));
    }

    #[test]
    fn refuses_broken_input() {
        check("", Err(CborError::Truncated));
        check("0000", Err(CborError::Trailing(1)));
        check("1c", Err(CborError::BadHeader(0x1c)));
        check("9b00000000ffffffff", Err(CborError::Truncated));
        check("bb00000000ffffffff", Err(CborError::Truncated));
        check("5affffffff", Err(CborError::Truncated));
        check("62c328", Err(CborError::NotUtf8));
        check("5f6161ff", Err(CborError::BadChunk));
        check("ff", Err(CborError::UnexpectedBreak));
        check(&"81".repeat(40), Err(CborError::TooDeep));
    }

    #[test]
    fn writes_what_it_reads() {
        for n in [0i64, 23, 24, 255, 256, 65535, 65536, 1 << 40, -1, -25, -1000] {
            let mut out = Vec::new();
            write_int(&mut out, n);
            assert_eq!(from_slice(&out).unwrap().as_int(), Some(n));
        }
    }
}
