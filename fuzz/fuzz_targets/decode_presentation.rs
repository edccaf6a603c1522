//! CP2 presentations: any text through `decode_any` (CP2 or CP1 by prefix) and a
//! verification; any bytes as a presentation's inflated COSE (wrapped in zlib + base45 and
//! the prefix, so they reach the COSE layer), as its payload and as a holder COSE_Key.
//! Never a panic; whatever verifies under the fixed issuer's key is a holder-bound coupon
//! whose presentation the holder key signed (checked again here, outside `coupon`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use redeemd::coupon::{self, HolderKey, Scanned};
use redeemd::issuer::Issuer;
use redeemd::keys::{Alg, PublicKey};
use std::io::Write;
use std::sync::OnceLock;

/// The coupon key of issuer seed 42 (the demo issuer, also the corpus's).
fn issuer_key() -> &'static PublicKey {
    static KEY: OnceLock<PublicKey> = OnceLock::new();
    KEY.get_or_init(|| {
        PublicKey::from_base64url(Alg::EdDSA, Issuer::from_seed(42).coupon_key_json()["key"].as_str().unwrap())
            .unwrap()
    })
}

fn cp2_text(cose: &[u8]) -> String {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(cose).unwrap();
    format!("{}{}", coupon::PREFIX_CP2, redeemd::base45::encode(&z.finish().unwrap()))
}

/// Checks a verified presentation's outer signature again with its coupon's holder key.
fn check_verified(text: &str, cose: &[u8]) {
    let Ok(presentation) = coupon::decode_presentation(text) else { return };
    let Some(verified) = presentation.verify(issuer_key()) else { return };
    let holder = verified.coupon.holder_key.expect("a verified presentation's coupon is holder-bound");
    let outer = coupon::parse_sign1(cose).expect("a verified presentation parses");
    let key = match holder {
        HolderKey::Ed25519 { key, .. } => key.expect("an Ed25519 key that is no point verifies nothing"),
        HolderKey::P256(key) => key,
    };
    assert!(key.verify(&outer.to_be_signed(), &outer.signature), "outer signature does not verify");
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(scanned) = coupon::decode_any(text) {
            let dynamic = matches!(scanned, Scanned::Dynamic(_));
            let _ = scanned.kid();
            if let Some(verified) = scanned.verify(issuer_key()) {
                // A CP1 code never reads as dynamic, nor a CP2 text as static.
                assert_eq!(dynamic, verified.shown != coupon::Shown::Static);
                assert_eq!(dynamic, text.starts_with(coupon::PREFIX_CP2));
            }
        }
    }
    if data.len() <= coupon::MAX_INFLATED {
        check_verified(&cp2_text(data), data);
    }
    let _ = coupon::parse_presentation_payload(data);
    if let Ok(value) = redeemd::cbor::from_slice(data) {
        if let Ok(key) = coupon::parse_holder_key(&value) {
            let _ = key.alg();
        }
    }
});
