//! The coupon code (`spec/coupon-code.md`): `CP1:` + base45(zlib(COSE_Sign1)), and its
//! dynamic presentation (`spec/presentation.md`): `CP2:` + base45(zlib(COSE_Sign1 by the
//! holder key of {1: coupon COSE_Sign1 bytes, 2: presented_at})).
//!
//! Each layer is its own function so the third-party vectors can test it alone:
//! [`strip_prefix`], [`check_text`], [`crate::base45::decode`], [`inflate`],
//! [`parse_sign1`], [`parse_payload`] (with [`parse_holder_key`]),
//! [`parse_presentation_payload`]; [`decode`] runs the CP1 layers and yields an
//! [`UnverifiedCode`], [`decode_presentation`] the CP2 ones and yields a [`Presentation`],
//! [`decode_any`] picks by prefix. Nothing here is trusted until `verify` has checked the
//! signature(s) with the coupon key the caller chose — for a presentation both the
//! issuer's and the holder's, before its coupon or its `presented_at` can be read. This
//! module never looks keys up and never reads the clock.

use crate::base45;
use crate::cbor::{self, Value};
use crate::keys::{Alg, PublicKey};
use std::fmt;
use thiserror::Error;

pub const PREFIX: &str = "CP1:";
/// The prefix of a dynamic presentation.
pub const PREFIX_CP2: &str = "CP2:";
/// Longest code text after the prefix.
pub const MAX_TEXT: usize = 1500;
/// Largest inflated COSE object; past it a stream is a decompression bomb.
pub const MAX_INFLATED: usize = 2048;

/// Why a code is `malformed`: which layer broke, for logs and the installer's eyes.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Malformed {
    #[error("code starts with neither \"CP1:\" nor \"CP2:\"")]
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
    #[error("holder_key: {0}")]
    HolderKey(&'static str),
    #[error("presentation: {0}")]
    Presentation(&'static str),
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
    sign1_parts(bytes).map(|(sign1, _)| sign1)
}

/// How many labels each header map holds: `(protected, unprotected)`.
type HeaderSizes = (usize, usize);

fn sign1_parts(bytes: &[u8]) -> Result<(Sign1, HeaderSizes), Malformed> {
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
    let sizes = (protected_map.len(), unprotected.len());
    Ok((Sign1 { protected, alg, kid, payload, signature }, sizes))
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
    /// Payload key 8: the holder app's key. A coupon that has one is holder-bound:
    /// redeemable only through a CP2 presentation signed by this key.
    pub holder_key: Option<HolderKey>,
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
    let holder_key = get(8).map(parse_holder_key).transpose()?;
    Ok(Coupon { coupon_id, campaign_id, holder, issued_at, not_before: uint(5)?, not_after: uint(6)?, holder_key })
}

/// The holder app's public key, from a coupon's payload key 8 (a COSE_Key, RFC 9052 §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HolderKey {
    /// OKP / Ed25519: checked for its length only. `key` is `None` when the 32 bytes are
    /// no curve point: such a key verifies no signature (`bad_signature`, not `malformed`).
    Ed25519 { x: [u8; 32], key: Option<PublicKey> },
    /// EC2 / P-256: a point validated when the coupon was parsed.
    P256(PublicKey),
}

impl HolderKey {
    /// The algorithm a presentation by this key must name (`-8` or `-7`).
    pub fn alg(&self) -> Alg {
        match self {
            HolderKey::Ed25519 { .. } => Alg::EdDSA,
            HolderKey::P256(_) => Alg::ES256,
        }
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            HolderKey::Ed25519 { key: Some(key), .. } | HolderKey::P256(key) => key.verify(message, signature),
            HolderKey::Ed25519 { key: None, .. } => false,
        }
    }
}

// COSE_Key labels and values (RFC 9052 §7, RFC 9053).
const KEY_KTY: i64 = 1;
const KEY_ALG: i64 = 3;
const KEY_CRV: i64 = -1;
const KEY_X: i64 = -2;
const KEY_Y: i64 = -3;
const KTY_OKP: i64 = 1;
const KTY_EC2: i64 = 2;
const CRV_P256: i64 = 1;
const CRV_ED25519: i64 = 6;

/// Parses a holder key: exactly one of the two COSE_Key shapes of `spec/presentation.md`
/// (integer labels, exactly the labels of its row, each once; plain integers for `kty`,
/// `crv` and `alg`; 32-byte coordinates; a P-256 point on the curve).
pub fn parse_holder_key(value: &Value) -> Result<HolderKey, Malformed> {
    let bad = Malformed::HolderKey;
    let Value::Map(entries) = value else {
        return Err(bad("not a map"));
    };
    for (i, (label, _)) in entries.iter().enumerate() {
        if !label.is_int() {
            return Err(bad("a label is not an integer"));
        }
        if entries[..i].iter().any(|(l, _)| l == label) {
            return Err(bad("duplicate label"));
        }
    }
    let get = |label: i64| entries.iter().find(|(l, _)| l.as_int() == Some(label)).map(|(_, v)| v);
    let int = |label: i64, what: &'static str| match get(label) {
        Some(v) => v.as_int().map(Some).ok_or(bad(what)),
        None => Ok(None),
    };
    let coordinate = |label: i64| match get(label) {
        Some(Value::Bytes(b)) => <[u8; 32]>::try_from(b.as_slice()).map_err(|_| bad("a coordinate is not 32 bytes")),
        Some(_) => Err(bad("a coordinate is not a byte string")),
        None => Err(bad("a coordinate is missing")),
    };
    let kty = int(KEY_KTY, "kty is not a plain integer")?.ok_or(bad("kty is missing"))?;
    let crv = int(KEY_CRV, "crv is not a plain integer")?.ok_or(bad("crv is missing"))?;
    let alg = int(KEY_ALG, "alg is not a plain integer")?;
    let (labels, want_crv, want_alg): (&[i64], i64, Alg) = match kty {
        KTY_OKP => (&[KEY_KTY, KEY_CRV, KEY_X, KEY_ALG], CRV_ED25519, Alg::EdDSA),
        KTY_EC2 => (&[KEY_KTY, KEY_CRV, KEY_X, KEY_Y, KEY_ALG], CRV_P256, Alg::ES256),
        _ => return Err(bad("kty is neither 1 (OKP) nor 2 (EC2)")),
    };
    if entries.iter().any(|(l, _)| !l.as_int().is_some_and(|l| labels.contains(&l))) {
        return Err(bad("a label that this key type does not have (kid, key_ops, a private key, ...)"));
    }
    if crv != want_crv {
        return Err(bad("crv is not Ed25519 (6) on an OKP key or P-256 (1) on an EC2 key"));
    }
    if alg.is_some_and(|a| a != want_alg.cose_id()) {
        return Err(bad("alg is not the key type's (-8 for OKP, -7 for EC2)"));
    }
    let x = coordinate(KEY_X)?;
    match kty {
        KTY_OKP => Ok(HolderKey::Ed25519 { x, key: PublicKey::ed25519(&x) }),
        _ => {
            // A boolean y (compressed point) fails as "not a byte string".
            let y = coordinate(KEY_Y)?;
            PublicKey::p256_xy(&x, &y).map(HolderKey::P256).map_err(|_| bad("the P-256 point is not on the curve"))
        }
    }
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
    parse_code(&cose)
}

/// A coupon's COSE_Sign1 bytes (after zlib) through every rule of `coupon-code.md`.
pub fn parse_code(cose: &[u8]) -> Result<UnverifiedCode, Malformed> {
    let sign1 = parse_sign1(cose)?;
    let kid = cp1_kid(sign1.kid.as_ref())?;
    let coupon = parse_payload(&sign1.payload)?;
    Ok(UnverifiedCode { sign1, kid, coupon })
}

/// The presentation payload `{1: coupon COSE_Sign1 bytes, 2: presented_at}`: exactly these
/// two integer keys, once each; `presented_at` a plain unsigned integer.
pub fn parse_presentation_payload(bytes: &[u8]) -> Result<(Vec<u8>, u64), Malformed> {
    let bad = Malformed::Presentation;
    let Value::Map(entries) = cbor::from_slice(bytes)? else {
        return Err(bad("payload is not a map"));
    };
    let (mut coupon, mut presented_at) = (None, None);
    for (key, value) in entries {
        match key.as_int() {
            Some(1) if coupon.is_none() => match value {
                Value::Bytes(b) => coupon = Some(b),
                _ => return Err(bad("the coupon (key 1) is not a byte string")),
            },
            Some(2) if presented_at.is_none() => match value {
                Value::Unsigned(n) => presented_at = Some(n),
                _ => return Err(bad("presented_at (key 2) is not a plain unsigned integer")),
            },
            Some(1 | 2) => return Err(bad("duplicate key")),
            _ => return Err(bad("a key other than 1 and 2")),
        }
    }
    match (coupon, presented_at) {
        (Some(c), Some(t)) => Ok((c, t)),
        _ => Err(bad("key 1 (coupon) or 2 (presented_at) is missing")),
    }
}

/// A CP2 presentation whose structure is sound (its coupon's too) but whose two
/// signatures have not been checked: neither the coupon nor `presented_at` is readable
/// before [`Presentation::verify`].
#[derive(Debug, Clone)]
pub struct Presentation {
    outer: Sign1,
    coupon: UnverifiedCode,
    presented_at: u64,
}

/// A presentation whose coupon verified under the issuer's key and whose outer signature
/// verified under that coupon's holder key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPresentation {
    pub coupon: Coupon,
    /// Unix seconds, as the holder's app signed them.
    pub presented_at: u64,
}

impl Presentation {
    /// The inner coupon's key id bytes, for looking up the coupon key.
    pub fn kid(&self) -> &[u8] {
        self.coupon.kid()
    }

    /// The inner coupon's alg.
    pub fn alg(&self) -> &AlgId {
        self.coupon.alg()
    }

    /// The outer alg, judged against the holder key's kind by [`Presentation::verify`].
    pub fn outer_alg(&self) -> &AlgId {
        &self.outer.alg
    }

    /// Checks the coupon with `coupon_key`, then the outer alg and signature with the
    /// coupon's holder key; the payload becomes usable only through the result.
    pub fn verify(self, coupon_key: &PublicKey) -> Option<VerifiedPresentation> {
        let Presentation { outer, coupon, presented_at } = self;
        let coupon = coupon.verify(coupon_key)?.coupon;
        // Only now is the holder key the issuer's word.
        let holder = coupon.holder_key.as_ref()?;
        let ok = outer.alg == AlgId::Known(holder.alg()) && holder.verify(&outer.to_be_signed(), &outer.signature);
        ok.then_some(VerifiedPresentation { coupon, presented_at })
    }
}

/// Runs every structural layer of a CP2 presentation and of the coupon inside it.
pub fn decode_presentation(code: &str) -> Result<Presentation, Malformed> {
    let bad = Malformed::Presentation;
    let text = code.strip_prefix(PREFIX_CP2).ok_or(Malformed::Prefix)?;
    check_text(text)?;
    let compressed = base45::decode(text)?;
    let cose = inflate(&compressed)?;
    let (outer, (protected, unprotected)) = sign1_parts(&cose)?;
    // parse_sign1 already demands an alg: one label means alg alone (no kid).
    if protected != 1 {
        return Err(bad("the protected header must hold alg (1) and nothing else"));
    }
    if unprotected != 0 {
        return Err(bad("the unprotected header must be an empty map"));
    }
    let (coupon_bytes, presented_at) = parse_presentation_payload(&outer.payload)?;
    let coupon = parse_code(&coupon_bytes)?;
    if coupon.coupon.holder_key.is_none() {
        return Err(bad("the coupon carries no holder_key"));
    }
    Ok(Presentation { outer, coupon, presented_at })
}

/// How a verified coupon was shown: the decision record's `presentation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// A `CP1` code.
    Static,
    /// A `CP2` presentation, with its signed time (Unix seconds).
    Dynamic { presented_at: u64 },
}

impl Shown {
    pub fn as_str(self) -> &'static str {
        match self {
            Shown::Static => "static",
            Shown::Dynamic { .. } => "dynamic",
        }
    }
}

/// A scanned text of either kind, structurally sound, not yet verified.
#[derive(Debug, Clone)]
pub enum Scanned {
    Static(UnverifiedCode),
    Dynamic(Presentation),
}

/// A scanned text whose signature(s) verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub coupon: Coupon,
    pub shown: Shown,
}

impl Scanned {
    /// The (inner) coupon's key id bytes.
    pub fn kid(&self) -> &[u8] {
        match self {
            Scanned::Static(c) => c.kid(),
            Scanned::Dynamic(p) => p.kid(),
        }
    }

    /// The (inner) coupon's alg.
    pub fn alg(&self) -> &AlgId {
        match self {
            Scanned::Static(c) => c.alg(),
            Scanned::Dynamic(p) => p.alg(),
        }
    }

    pub fn verify(self, coupon_key: &PublicKey) -> Option<Verified> {
        match self {
            Scanned::Static(c) => c.verify(coupon_key).map(|v| Verified { coupon: v.coupon, shown: Shown::Static }),
            Scanned::Dynamic(p) => p
                .verify(coupon_key)
                .map(|v| Verified { coupon: v.coupon, shown: Shown::Dynamic { presented_at: v.presented_at } }),
        }
    }
}

/// Decodes a `CP2:` text as a presentation and anything else as a CP1 code.
pub fn decode_any(code: &str) -> Result<Scanned, Malformed> {
    if code.starts_with(PREFIX_CP2) {
        decode_presentation(code).map(Scanned::Dynamic)
    } else {
        decode(code).map(Scanned::Static)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cbor::{write_bytes, write_header, write_int};

    /// x = 0 is on P-256 with this y (y² = b mod p has a root).
    const Y_AT_X0: &str = "66485c780e2f83d72433bd5d84a06bb6541c2af31dae871728bf856a174f93f4";
    const P256_P: &str = "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff";

    fn bytes32(hex: &str) -> [u8; 32] {
        let v: Vec<u8> = (0..64).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        v.try_into().unwrap()
    }

    /// A COSE_Key map from `(label, encoded value)` pairs, in order.
    fn key(entries: &[(i64, Vec<u8>)]) -> Value {
        let mut out = Vec::new();
        write_header(&mut out, 5, entries.len() as u64);
        for (label, value) in entries {
            write_int(&mut out, *label);
            out.extend_from_slice(value);
        }
        cbor::from_slice(&out).unwrap()
    }

    fn int(n: i64) -> Vec<u8> {
        let mut out = Vec::new();
        write_int(&mut out, n);
        out
    }

    fn bstr(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_bytes(&mut out, b);
        out
    }

    fn ec2(x: &[u8; 32], y: Vec<u8>) -> Vec<(i64, Vec<u8>)> {
        vec![(1, int(2)), (-1, int(1)), (-2, bstr(x)), (-3, y)]
    }

    #[test]
    fn p256_points_are_validated() {
        let y = bytes32(Y_AT_X0);
        assert!(matches!(parse_holder_key(&key(&ec2(&[0; 32], bstr(&y)))), Ok(HolderKey::P256(_))));
        // x = p is 0 mod p, but not below the prime: refused.
        assert!(parse_holder_key(&key(&ec2(&bytes32(P256_P), bstr(&y)))).is_err());
        let mut off = y;
        off[31] ^= 1;
        assert!(parse_holder_key(&key(&ec2(&[0; 32], bstr(&off)))).is_err());
        // The compressed form: y as a boolean.
        assert!(parse_holder_key(&key(&ec2(&[0; 32], vec![0xf5]))).is_err());
        assert!(parse_holder_key(&key(&ec2(&[0; 32], bstr(&y[1..])))).is_err());
    }

    #[test]
    fn only_the_two_shapes_pass() {
        let x = [7u8; 32];
        let okp = |extra: &[(i64, Vec<u8>)]| {
            let mut e = vec![(1, int(1)), (-1, int(6)), (-2, bstr(&x))];
            e.extend_from_slice(extra);
            parse_holder_key(&key(&e))
        };
        assert!(matches!(okp(&[]), Ok(HolderKey::Ed25519 { .. })));
        assert!(okp(&[(3, int(-8))]).is_ok(), "alg -8 may be given");
        assert!(okp(&[(3, int(-7))]).is_err(), "but not the other one");
        assert!(okp(&[(2, bstr(b"kid"))]).is_err(), "no kid");
        assert!(okp(&[(4, int(1))]).is_err(), "no key_ops");
        assert!(okp(&[(-4, bstr(&[1; 32]))]).is_err(), "never the private key");
        assert!(okp(&[(-3, bstr(&x))]).is_err(), "no y on an OKP key");
        assert!(okp(&[(1, int(1))]).is_err(), "each label once");
        assert!(parse_holder_key(&key(&[(1, int(1)), (-1, int(6)), (-2, bstr(&x[1..]))])).is_err());
        assert!(parse_holder_key(&key(&[(1, int(1)), (-1, int(1)), (-2, bstr(&x))])).is_err(), "crv P-256 on OKP");
        assert!(parse_holder_key(&key(&[(1, int(1)), (-2, bstr(&x))])).is_err(), "crv missing");
        // kty as a tagged integer, or as text; a text label.
        let tagged = [0xc1, 0x01];
        assert!(parse_holder_key(&key(&[(1, tagged.to_vec()), (-1, int(6)), (-2, bstr(&x))])).is_err());
        let mut text_label = Vec::new();
        write_header(&mut text_label, 5, 4);
        for (l, v) in [(1, int(1)), (-1, int(6)), (-2, bstr(&x))] {
            write_int(&mut text_label, l);
            text_label.extend_from_slice(&v);
        }
        crate::cbor::write_text(&mut text_label, "kty");
        write_int(&mut text_label, 1);
        assert!(parse_holder_key(&cbor::from_slice(&text_label).unwrap()).is_err());
        assert!(parse_holder_key(&Value::Bytes(x.to_vec())).is_err());
    }

    #[test]
    fn an_ed25519_x_is_checked_for_length_only() {
        // Find 32 bytes that are no curve point: parsed, but a key that verifies nothing.
        let x = (2u8..)
            .map(|y| {
                let mut b = [0u8; 32];
                b[0] = y;
                b
            })
            .find(|b| PublicKey::ed25519(b).is_none())
            .unwrap();
        let parsed = parse_holder_key(&key(&[(1, int(1)), (-1, int(6)), (-2, bstr(&x))])).unwrap();
        assert_eq!(parsed, HolderKey::Ed25519 { x, key: None });
        assert!(!parsed.verify(b"message", &[0; 64]));
    }

    #[test]
    fn the_presentation_payload_has_exactly_keys_1_and_2() {
        let payload = |entries: &[(Vec<u8>, Vec<u8>)]| {
            let mut out = Vec::new();
            write_header(&mut out, 5, entries.len() as u64);
            for (k, v) in entries {
                out.extend_from_slice(k);
                out.extend_from_slice(v);
            }
            parse_presentation_payload(&out)
        };
        let coupon = bstr(b"cose");
        assert_eq!(payload(&[(int(1), coupon.clone()), (int(2), int(5))]), Ok((b"cose".to_vec(), 5)));
        assert_eq!(payload(&[(int(2), int(5)), (int(1), coupon.clone())]), Ok((b"cose".to_vec(), 5)));
        assert!(payload(&[(int(1), coupon.clone())]).is_err());
        assert!(payload(&[(int(1), coupon.clone()), (int(2), int(5)), (int(3), int(0))]).is_err());
        assert!(payload(&[(int(1), coupon.clone()), (int(2), int(5)), (int(2), int(6))]).is_err());
        assert!(payload(&[(int(1), coupon.clone()), (int(2), int(-5))]).is_err());
        assert!(payload(&[(int(1), coupon.clone()), (int(2), vec![0xc1, 0x05])]).is_err());
        assert!(payload(&[(int(1), coupon.clone()), (int(2), vec![0xf9, 0x3c, 0x00])]).is_err());
        assert!(payload(&[(int(1), int(0)), (int(2), int(5))]).is_err());
        let mut text_key = Vec::new();
        crate::cbor::write_text(&mut text_key, "x");
        assert!(payload(&[(int(1), coupon.clone()), (int(2), int(5)), (text_key, int(0))]).is_err());
        // Indefinite-length map is accepted.
        let mut indefinite = vec![0xbf];
        indefinite.extend(int(1));
        indefinite.extend(coupon);
        indefinite.extend(int(2));
        indefinite.extend(int(5));
        indefinite.push(0xff);
        assert_eq!(parse_presentation_payload(&indefinite), Ok((b"cose".to_vec(), 5)));
    }

    #[test]
    fn presentations_only_under_their_own_prefix() {
        assert_eq!(decode_any("cp2:ABC").err(), Some(Malformed::Prefix));
        assert_eq!(decode_any("CP3:ABC").err(), Some(Malformed::Prefix));
        assert!(matches!(decode_any("CP2:").err(), Some(Malformed::Zlib(_))));
        assert!(matches!(decode_any(&format!("CP2:{}", "0".repeat(MAX_TEXT + 1))), Err(Malformed::TooLong(_))));
    }
}
