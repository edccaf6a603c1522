//! Public keys and signature verification for the two algorithms CP1, CP2 and rule sets
//! use: EdDSA (Ed25519, RFC 8032) and ES256 (ECDSA P-256 / SHA-256, signatures as `r‖s`).
//!
//! It owns key decoding (base64url raw keys, and the coordinates of a COSE_Key) and the
//! yes/no of a signature; it never decides what a key is trusted for — the rule set, the
//! trust anchors and the signed coupon (its holder key) do that.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::Verifier as _;
use serde::Deserialize;
use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum Alg {
    EdDSA,
    ES256,
}

impl Alg {
    /// The COSE algorithm identifier (RFC 9053).
    pub fn cose_id(self) -> i64 {
        match self {
            Alg::EdDSA => -8,
            Alg::ES256 => -7,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Alg::EdDSA => "EdDSA",
            Alg::ES256 => "ES256",
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("key is not base64url without padding")]
    Encoding,
    #[error("{alg} key must be {want} bytes, got {got}")]
    Length { alg: &'static str, want: usize, got: usize },
    #[error("{0} key bytes do not form a valid public key")]
    Invalid(&'static str),
}

#[derive(Clone, PartialEq, Eq)]
pub enum PublicKey {
    Ed25519(ed25519_dalek::VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PublicKey::Ed25519(_) => "PublicKey(Ed25519)",
            PublicKey::P256(_) => "PublicKey(P-256)",
        })
    }
}

impl PublicKey {
    /// Decodes a raw key: 32 bytes for Ed25519, a 65-byte uncompressed SEC1 point for P-256.
    pub fn from_raw(alg: Alg, raw: &[u8]) -> Result<PublicKey, KeyError> {
        match alg {
            Alg::EdDSA => {
                let bytes: [u8; 32] =
                    raw.try_into().map_err(|_| KeyError::Length { alg: "EdDSA", want: 32, got: raw.len() })?;
                ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                    .map(PublicKey::Ed25519)
                    .map_err(|_| KeyError::Invalid("EdDSA"))
            }
            Alg::ES256 => {
                if raw.len() != 65 || raw[0] != 0x04 {
                    return Err(KeyError::Length { alg: "ES256", want: 65, got: raw.len() });
                }
                p256::ecdsa::VerifyingKey::from_sec1_bytes(raw)
                    .map(PublicKey::P256)
                    .map_err(|_| KeyError::Invalid("ES256"))
            }
        }
    }

    /// An Ed25519 key from its 32 bytes, or `None` when they decode to no curve point
    /// (such a key verifies no signature).
    pub fn ed25519(x: &[u8; 32]) -> Option<PublicKey> {
        ed25519_dalek::VerifyingKey::from_bytes(x).ok().map(PublicKey::Ed25519)
    }

    /// A P-256 key from its big-endian affine coordinates. The point must be valid: both
    /// coordinates below the field prime and on the curve (the SEC1 decoder checks both).
    pub fn p256_xy(x: &[u8; 32], y: &[u8; 32]) -> Result<PublicKey, KeyError> {
        let mut sec1 = [0u8; 65];
        sec1[0] = 0x04;
        sec1[1..33].copy_from_slice(x);
        sec1[33..].copy_from_slice(y);
        p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).map(PublicKey::P256).map_err(|_| KeyError::Invalid("ES256"))
    }

    pub fn from_base64url(alg: Alg, text: &str) -> Result<PublicKey, KeyError> {
        let raw = b64url_decode(text).map_err(|_| KeyError::Encoding)?;
        PublicKey::from_raw(alg, &raw)
    }

    pub fn alg(&self) -> Alg {
        match self {
            PublicKey::Ed25519(_) => Alg::EdDSA,
            PublicKey::P256(_) => Alg::ES256,
        }
    }

    /// True when `signature` is a valid signature of `message` under this key.
    /// ES256 takes the 64-byte `r‖s` form (never DER) and accepts high or low S.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            PublicKey::Ed25519(key) => match ed25519_dalek::Signature::from_slice(signature) {
                Ok(sig) => key.verify(message, &sig).is_ok(),
                Err(_) => false,
            },
            PublicKey::P256(key) => {
                if signature.len() != 64 {
                    return false;
                }
                match p256::ecdsa::Signature::from_slice(signature) {
                    Ok(sig) => {
                        // Verify the low-S form too: issuers in the wild emit either.
                        let sig = sig.normalize_s();
                        p256::ecdsa::signature::Verifier::verify(key, message, &sig).is_ok()
                    }
                    Err(_) => false,
                }
            }
        }
    }
}

/// A signature check fed the message in pieces, so a 25 MB signed text is never held
/// whole; it accepts exactly what [`PublicKey::verify`] accepts.
pub struct StreamingVerifier(Streaming);

enum Streaming {
    Ed25519(Box<ed25519_dalek::StreamVerifier>),
    P256 {
        key: p256::ecdsa::VerifyingKey,
        signature: p256::ecdsa::Signature,
        hash: sha2::Sha256,
    },
    /// The signature cannot be valid whatever the message says.
    Refused,
}

impl std::fmt::Debug for StreamingVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamingVerifier")
    }
}

impl PublicKey {
    /// Starts checking `signature`; feed the message with [`StreamingVerifier::update`].
    pub fn verifier(&self, signature: &[u8]) -> StreamingVerifier {
        StreamingVerifier(match self {
            PublicKey::Ed25519(key) => match ed25519_dalek::Signature::from_slice(signature) {
                // The same non-strict check as `Verifier::verify` (raw_verify), in pieces.
                Ok(sig) => key.verify_stream(&sig).map_or(Streaming::Refused, |v| Streaming::Ed25519(Box::new(v))),
                Err(_) => Streaming::Refused,
            },
            PublicKey::P256(key) => match p256::ecdsa::Signature::from_slice(signature) {
                Ok(sig) if signature.len() == 64 => {
                    use sha2::Digest as _;
                    Streaming::P256 { key: *key, signature: sig.normalize_s(), hash: sha2::Sha256::new() }
                }
                _ => Streaming::Refused,
            },
        })
    }
}

impl StreamingVerifier {
    pub fn update(&mut self, piece: &[u8]) {
        match &mut self.0 {
            Streaming::Ed25519(v) => v.update(piece),
            Streaming::P256 { hash, .. } => sha2::Digest::update(hash, piece),
            Streaming::Refused => {}
        }
    }

    /// True when the signature is valid for everything fed.
    pub fn finish(self) -> bool {
        match self.0 {
            Streaming::Ed25519(v) => v.finalize_and_verify().is_ok(),
            // ES256 is ECDSA over the SHA-256 of the message: the same as `Verifier::verify`.
            Streaming::P256 { key, signature, hash } => {
                let digest = sha2::Digest::finalize(hash);
                p256::ecdsa::signature::hazmat::PrehashVerifier::verify_prehash(&key, &digest, &signature).is_ok()
            }
            Streaming::Refused => false,
        }
    }
}

pub fn b64url_decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    URL_SAFE_NO_PAD.decode(text)
}

pub fn b64url_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}
