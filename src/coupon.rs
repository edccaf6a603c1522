//! The CP1 coupon code (`spec/coupon-code.md`): `CP1:` + base45(zlib(COSE_Sign1)).
//!
//! Each layer is its own function so the third-party vectors can test it alone:
//! [`strip_prefix`], [`check_text`], [`crate::base45::decode`], [`inflate`],
//! [`parse_sign1`], [`parse_payload`]; [`decode`] runs them all and yields an
//! [`UnverifiedCode`]. Nothing here is trusted until [`UnverifiedCode::verify`] has
//! checked the signature with a key the caller chose; this module never looks keys up
//! and never reads the clock.

use crate::base45;
use crate::cbor::{self, Value};
use crate::keys::{Alg, PublicKey};
use std::fmt;
use thiserror::Error;

pub const PREFIX: &str = "CP1:";
/// Longest code text after the prefix.
pub const MAX_TEXT: usize = 1500;
/// Largest inflated COSE object; past it a stream is a decompression bomb.
pub const MAX_INFLATED: usize = 2048;

/// Why a code is `malformed`: which layer broke, for logs and the installer's eyes.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Malformed {
    #[error("code does not start with \"CP1:\"")]
    Prefix,
    #[error("code text is {0} characters after the prefix; at most {MAX_TEXT} are allowed")]
    TooLong(usize),
    #[error("base45: {0}")]
    Base45(#[from] base45::Base45Error),
    #[error("zlib: {0}")]
    Zlib(&'static str),
    #[error("inflated data exceeds {MAX_INFLATED} bytes")]
    TooLarge,
    #[error("CBOR: {0}")]
    Cbor(#[from] cbor::CborError),
    #[error("COSE_Sign1: {0}")]
    Cose(&'static str),
    #[error("payload: {0}")]
    Payload(&'static str),
}

/// Strips the `CP1:` prefix (exact, upper case).
pub fn strip_prefix(code: &str) -> Result<&str, Malformed> {
    code.strip_prefix(PREFIX).ok_or(Malformed::Prefix)
}

/// The text after the prefix: at most [`MAX_TEXT`] characters. The alphabet is
/// enforced by base45 decoding itself.
pub fn check_text(text: &str) -> Result<(), Malformed> {
    if text.len() > MAX_TEXT {
        return Err(Malformed::TooLong(text.chars().count()));
    }
    Ok(())
}

/// Inflates an RFC 1950 zlib stream into at most [`MAX_INFLATED`] bytes. The stream must
/// end (adler32 checked) and consume the whole input.
pub fn inflate(input: &[u8]) -> Result<Vec<u8>, Malformed> {
    use flate2::{Decompress, FlushDecompress, Status};
    let mut out = Vec::with_capacity(MAX_INFLATED + 1);
    let mut inflater = Decompress::new(true);
    // One byte of room past the cap tells "exactly 2,048" from "more".
    match inflater.decompress_vec(input, &mut out, FlushDecompress::Finish) {
        Ok(Status::StreamEnd) => {}
        Ok(_) if out.len() > MAX_INFLATED => return Err(Malformed::TooLarge),
        Ok(_) => return Err(Malformed::Zlib("stream is truncated")),
        Err(_) => return Err(Malformed::Zlib("not a valid zlib stream")),
    }
    if out.len() > MAX_INFLATED {
        return Err(Malformed::TooLarge);
    }
    if inflater.total_in() != input.len() as u64 {
        return Err(Malformed::Zlib("bytes left over after the zlib stream"));
    }
    Ok(out)
}

/// The `alg` header value as found, judged later (after the key lookup).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlgId {
    Known(Alg),
    Other,
}

/// A structurally valid COSE_Sign1, not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sign1 {
    pub protected: Vec<u8>,
    pub alg: AlgId,
    /// The key id that counts (protected first), if any, still unchecked for CP1 rules.
    pub kid: Option<Value>,
    pub payload: Vec<u8>,
    pub signature: Vec<u8>,
}

impl Sign1 {
    /// The RFC 9052 §4.4 `Sig_structure` for an empty external AAD.
    pub fn to_be_signed(&self) -> Vec<u8> {
        sig_structure(&self.protected, &self.payload)
    }

    /// Verifies with `key`: the header alg must be the key's, the signature must verify.
    pub fn verify_with(&self, key: &PublicKey) -> bool {
        self.alg == AlgId::Known(key.alg()) && key.verify(&self.to_be_signed(), &self.signature)
    }
}

pub fn sig_structure(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(protected.len() + payload.len() + 20);
    cbor::write_header(&mut out, 4, 4);
    cbor::write_text(&mut out, "Signature1");
    cbor::write_bytes(&mut out, protected);
    cbor::write_bytes(&mut out, &[]);
    cbor::write_bytes(&mut out, payload);
    out
}

const TAG_COSE_SIGN1: u64 = 18;
const HEADER_ALG: i64 = 1;
const HEADER_KID: i64 = 4;

fn header_map(entries: &[(Value, Value)]) -> Result<(), Malformed> {
    for (i, (key, _)) in entries.iter().enumerate() {
        if !key.is_int() && !matches!(key, Value::Text(_)) {
            return Err(Malformed::Cose("header label is neither integer nor text"));
        }
        if entries[..i].iter().any(|(k, _)| k == key) {
            return Err(Malformed::Cose("duplicate header label"));
        }
    }
    Ok(())
}

fn header_get(entries: &[(Value, Value)], label: i64) -> Option<&Value> {
    entries.iter().find(|(k, _)| k.as_int() == Some(label)).map(|(_, v)| v)
}

/// Parses a tagged (18) or untagged COSE_Sign1 that spans the whole input.
pub fn parse_sign1(bytes: &[u8]) -> Result<Sign1, Malformed> {
    let value = cbor::from_slice(bytes)?;
    let array = match value {
        Value::Tag(TAG_COSE_SIGN1, inner) => *inner,
        Value::Tag(..) => return Err(Malformed::Cose("tagged with a tag other than 18")),
        other => other,
    };
    let Value::Array(items) = array else {
        return Err(Malformed::Cose("not an array"));
    };
    let Ok([protected, unprotected, payload, signature]) = <[Value; 4]>::try_from(items) else {
        return Err(Malformed::Cose("array does not hold exactly 4 items"));
    };
    let Value::Bytes(protected) = protected else {
        return Err(Malformed::Cose("protected header is not a byte string"));
    };
    let Value::Map(unprotected) = unprotected else {
        return Err(Malformed::Cose("unprotected header is not a map"));
    };
    let Value::Bytes(payload) = payload else {
        return Err(Malformed::Cose("payload is not a byte string"));
    };
    let Value::Bytes(signature) = signature else {
        return Err(Malformed::Cose("signature is not a byte string"));
    };
    if protected.is_empty() {
        return Err(Malformed::Cose("protected header is empty: no alg"));
    }
    let Value::Map(protected_map) = cbor::from_slice(&protected)? else {
        return Err(Malformed::Cose("protected header is not a map"));
    };
    header_map(&protected_map)?;
    header_map(&unprotected)?;
    let alg = match header_get(&protected_map, HEADER_ALG) {
        None => return Err(Malformed::Cose("protected header holds no alg")),
        Some(v) => match v.as_int() {
            Some(id) if id == Alg::EdDSA.cose_id() => AlgId::Known(Alg::EdDSA),
            Some(id) if id == Alg::ES256.cose_id() => AlgId::Known(Alg::ES256),
            _ => AlgId::Other,
        },
    };
    let kid = header_get(&protected_map, HEADER_KID).or_else(|| header_get(&unprotected, HEADER_KID)).cloned();
    Ok(Sign1 { protected, alg, kid, payload, signature })
}

/// Key id bytes as CP1 requires them: a byte string of 1..=16 bytes.
pub fn cp1_kid(kid: Option<&Value>) -> Result<Vec<u8>, Malformed> {
    match kid {
        None => Err(Malformed::Cose("no kid in either header")),
        Some(Value::Bytes(b)) if (1..=16).contains(&b.len()) => Ok(b.clone()),
        Some(Value::Bytes(_)) => Err(Malformed::Cose("kid must be 1 to 16 bytes")),
        Some(_) => Err(Malformed::Cose("kid is not a byte string")),
    }
}

/// The fields a coupon code carries. Constructed only from a parsed payload; trusted only
/// inside a [`VerifiedCode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coupon {
    pub coupon_id: CouponId,
    pub campaign_id: String,
    pub holder: Vec<u8>,
    pub issued_at: u64,
    pub not_before: Option<u64>,
    pub not_after: Option<u64>,
}

/// A coupon id: 1..=64 characters of `A-Z a-z 0-9 . _ -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CouponId(String);

impl CouponId {
    pub fn parse(text: &str) -> Option<CouponId> {
        is_id(text).then(|| CouponId(text.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CouponId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id character set shared by coupon and campaign ids.
pub fn is_id(text: &str) -> bool {
    (1..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Parses the payload map (integer keys; unknown integer keys ignored).
pub fn parse_payload(bytes: &[u8]) -> Result<Coupon, Malformed> {
    let Value::Map(entries) = cbor::from_slice(bytes)? else {
        return Err(Malformed::Payload("not a map"));
    };
    for (i, (key, _)) in entries.iter().enumerate() {
        if !key.is_int() {
            return Err(Malformed::Payload("a key is not an integer"));
        }
        if entries[..i].iter().any(|(k, _)| k == key) {
            return Err(Malformed::Payload("duplicate key"));
        }
    }
    let get = |label: i64| entries.iter().find(|(k, _)| k.as_int() == Some(label)).map(|(_, v)| v);
    let text_id = |label, what| match get(label) {
        Some(Value::Text(t)) if is_id(t) => Ok(t.clone()),
        Some(Value::Text(_)) => Err(Malformed::Payload(what)),
        Some(_) => Err(Malformed::Payload("an id is not a text string")),
        None => Err(Malformed::Payload("coupon_id or campaign_id is missing")),
    };
    let uint = |label| match get(label) {
        Some(Value::Unsigned(n)) => Ok(Some(*n)),
        Some(_) => Err(Malformed::Payload("a time is not an unsigned integer")),
        None => Ok(None),
    };
    let coupon_id = CouponId(text_id(1, "coupon_id has a bad length or character")?);
    let campaign_id = text_id(2, "campaign_id has a bad length or character")?;
    let holder = match get(3) {
        Some(Value::Bytes(b)) if (8..=32).contains(&b.len()) => b.clone(),
        Some(Value::Bytes(_)) => return Err(Malformed::Payload("holder must be 8 to 32 bytes")),
        Some(_) => return Err(Malformed::Payload("holder is not a byte string")),
        None => return Err(Malformed::Payload("holder is missing")),
    };
    let issued_at = uint(4)?.ok_or(Malformed::Payload("issued_at is missing"))?;
    Ok(Coupon { coupon_id, campaign_id, holder, issued_at, not_before: uint(5)?, not_after: uint(6)? })
}

/// A code whose structure is sound but whose signature has not been checked.
#[derive(Debug, Clone)]
pub struct UnverifiedCode {
    sign1: Sign1,
    kid: Vec<u8>,
    coupon: Coupon,
}

/// A code whose signature verified under a key the caller trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCode {
    pub coupon: Coupon,
}

impl UnverifiedCode {
    /// The key id bytes, for looking up the key.
    pub fn kid(&self) -> &[u8] {
        &self.kid
    }

    pub fn alg(&self) -> &AlgId {
        &self.sign1.alg
    }

    /// Checks the signature; the payload becomes usable only through the result.
    pub fn verify(self, key: &PublicKey) -> Option<VerifiedCode> {
        self.sign1.verify_with(key).then_some(VerifiedCode { coupon: self.coupon })
    }
}

/// Runs every structural layer of a CP1 code.
pub fn decode(code: &str) -> Result<UnverifiedCode, Malformed> {
    let text = strip_prefix(code)?;
    check_text(text)?;
    let compressed = base45::decode(text)?;
    let cose = inflate(&compressed)?;
    let sign1 = parse_sign1(&cose)?;
    let kid = cp1_kid(sign1.kid.as_ref())?;
    let coupon = parse_payload(&sign1.payload)?;
    Ok(UnverifiedCode { sign1, kid, coupon })
}
