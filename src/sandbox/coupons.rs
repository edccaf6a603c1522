//! Sample coupons for scanning from a phone or paper (`sandbox coupons`): for a coupon of
//! a campaign that takes CP1 codes, `ID.png` (its QR code) and `ID.txt` (the code text);
//! for a holder-bound one (`--holder-bound`, or a campaign whose `presentation` is
//! `dynamic`), `ID.holder.json` (0600: the signed coupon and the holder app's private
//! key), from which [`present`] makes a fresh CP2 presentation — valid about a minute,
//! as a holder's app would show it (`sandbox present FILE`).
//!
//! It must not print anything (the command line does) nor overwrite a file: coupon ids
//! are never reused, so a second batch never meets the first.

use super::{Sandbox, SandboxError};
use crate::issuer::{CodeSpec, Holder};
use crate::keys::{b64url_decode, b64url_encode};
use crate::ruleset::PresentationPolicy;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The `format` of a holder file.
const HOLDER_FORMAT: &str = "redeemd-sandbox-holder/1";

/// A holder-bound coupon as its holder's app keeps it.
#[derive(Debug, Serialize, Deserialize)]
struct HolderFile {
    format: String,
    coupon_id: String,
    campaign_id: String,
    /// The holder's Ed25519 private key (32 bytes, base64url): never leaves the app.
    holder_secret: String,
    /// The issuer-signed coupon (COSE_Sign1, base64url) binding that key.
    coupon: String,
}

/// One coupon made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Made {
    pub coupon_id: String,
    pub holder_bound: bool,
    /// The files written for it: `ID.png` and `ID.txt`, or `ID.holder.json`.
    pub files: Vec<PathBuf>,
}

/// A CP2 presentation made now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presentation {
    pub coupon_id: String,
    pub campaign_id: String,
    pub text: String,
    pub presented_at: Timestamp,
}

/// The QR code of `text` as a PNG (level M, at least 400 px, with its quiet zone).
pub fn qr_png(text: &str) -> Result<Vec<u8>, SandboxError> {
    let qr_error = |e: &dyn std::fmt::Display| SandboxError::Qr { what: shorten(text), detail: e.to_string() };
    let code =
        qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M).map_err(|e| qr_error(&e))?;
    let image = code.render::<image::Luma<u8>>().min_dimensions(400, 400).build();
    let mut png = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageLuma8(image).write_to(&mut png, image::ImageFormat::Png).map_err(|e| qr_error(&e))?;
    Ok(png.into_inner())
}

/// The QR code of `text` in Unicode half blocks, dark on light, for a terminal window
/// (a scanner reads it from the screen).
pub fn qr_text(text: &str) -> Result<String, SandboxError> {
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| SandboxError::Qr { what: shorten(text), detail: e.to_string() })?;
    Ok(code
        .render::<qrcode::render::unicode::Dense1x2>()
        .dark_color(qrcode::render::unicode::Dense1x2::Light)
        .light_color(qrcode::render::unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

fn shorten(text: &str) -> String {
    let head: String = text.chars().take(24).collect();
    if head.len() < text.len() {
        format!("{head}…")
    } else {
        head
    }
}

fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), SandboxError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    // Never over another file: a name that exists is a mistake to report.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| SandboxError::Write { path: path.to_owned(), source })?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|source| SandboxError::Write { path: path.to_owned(), source })
}

/// Makes `count` coupons of `campaign` into `out` (created if missing), calling
/// `progress` after each. Holder-bound when asked, or when the campaign takes CP2 only.
pub fn make(
    sandbox: &Sandbox,
    campaign: &str,
    count: u32,
    holder_bound: bool,
    out: &Path,
    progress: &mut dyn FnMut(u32),
) -> Result<Vec<Made>, SandboxError> {
    let catalog = sandbox.catalog()?;
    let Some(wire) = catalog.campaign(campaign) else {
        return Err(SandboxError::UnknownCampaign { id: campaign.to_owned(), known: catalog.campaign_ids() });
    };
    let holder_bound = holder_bound || wire.presentation == Some(PresentationPolicy::Dynamic);
    std::fs::create_dir_all(out).map_err(|source| SandboxError::Write { path: out.to_owned(), source })?;
    let ids = sandbox.reserve_coupons(campaign, count, holder_bound)?;
    let now = sandbox.now();
    let mut made = Vec::with_capacity(ids.len());
    for (done, id) in ids.into_iter().enumerate() {
        let mut spec = CodeSpec::new(id.clone(), campaign, now);
        // A pseudonymous holder per coupon (per-holder limits count per coupon then).
        spec.holder = crate::secret::sha256(id.as_bytes())[..8].to_vec();
        let files = if holder_bound {
            let secret = crate::secret::random_bytes::<32>();
            let holder = Holder::ed25519_from_secret(secret);
            let cose = sandbox.issuer().coupon_cose(&spec.bound_to(&holder));
            let file = HolderFile {
                format: HOLDER_FORMAT.into(),
                coupon_id: id.clone(),
                campaign_id: campaign.to_owned(),
                holder_secret: b64url_encode(&secret),
                coupon: b64url_encode(&cose),
            };
            let path = out.join(format!("{id}.holder.json"));
            let text = serde_json::to_string_pretty(&file).unwrap_or_default();
            write(&path, text.as_bytes(), 0o600)?;
            vec![path]
        } else {
            let text = sandbox.issuer().code(&spec);
            let png = out.join(format!("{id}.png"));
            write(&png, &qr_png(&text)?, 0o644)?;
            let txt = out.join(format!("{id}.txt"));
            write(&txt, format!("{text}\n").as_bytes(), 0o644)?;
            vec![png, txt]
        };
        made.push(Made { coupon_id: id, holder_bound, files });
        progress(u32::try_from(done + 1).unwrap_or(u32::MAX));
    }
    Ok(made)
}

/// A fresh CP2 presentation of the holder-bound coupon in `path`, signed at `now`.
pub fn present(path: &Path, now: Timestamp) -> Result<Presentation, SandboxError> {
    let bad = |detail: String| SandboxError::Holder { path: path.to_owned(), detail };
    let text = std::fs::read_to_string(path).map_err(|source| SandboxError::Read { path: path.to_owned(), source })?;
    let file: HolderFile = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if file.format != HOLDER_FORMAT {
        return Err(bad(format!("format {:?}, not {HOLDER_FORMAT:?}", file.format)));
    }
    let secret = b64url_decode(&file.holder_secret)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .ok_or_else(|| bad("holder_secret is not 32 bytes of base64url".into()))?;
    let cose = b64url_decode(&file.coupon).map_err(|_| bad("coupon is not base64url".into()))?;
    let holder = Holder::ed25519_from_secret(secret);
    let text = holder.present(&cose, now);
    // What the terminal will check: the presentation decodes and names this coupon.
    match crate::coupon::decode_presentation(&text) {
        Ok(_) => {}
        Err(e) => return Err(bad(format!("its coupon does not make a presentation: {e:?}"))),
    }
    Ok(Presentation { coupon_id: file.coupon_id, campaign_id: file.campaign_id, text, presented_at: now })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use std::sync::Arc;

    #[test]
    fn coupons_verify_and_holder_files_present() {
        let dir = tempfile::tempdir().unwrap();
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Timestamp::now()));
        let sb = Sandbox::create_or_open(&dir.path().join("sb"), super::super::Setup::default(), clock.clone())
            .unwrap()
            .sandbox;
        let out = dir.path().join("coupons");
        let mut seen = Vec::new();
        let made = make(&sb, "DEMO-DINING", 2, false, &out, &mut |n| seen.push(n)).unwrap();
        assert_eq!(seen, [1, 2]);
        assert_eq!(made[0].coupon_id, "DEMO-DINING-000001");
        let text = std::fs::read_to_string(out.join("DEMO-DINING-000002.txt")).unwrap();
        let key = crate::keys::PublicKey::from_base64url(
            crate::keys::Alg::EdDSA,
            sb.issuer().coupon_key_json()["key"].as_str().unwrap(),
        )
        .unwrap();
        let verified = crate::coupon::decode(text.trim()).unwrap().verify(&key).unwrap();
        assert_eq!(verified.coupon.coupon_id.as_str(), "DEMO-DINING-000002");
        assert!(std::fs::read(out.join("DEMO-DINING-000001.png")).unwrap().starts_with(b"\x89PNG"));
        // Numbers go on; holder-bound ones carry the app's key and present.
        let bound = make(&sb, "DEMO-DINING", 1, true, &out, &mut |_| {}).unwrap();
        assert_eq!(bound[0].coupon_id, "DEMO-DINING-000003");
        let p = present(&bound[0].files[0], clock.now()).unwrap();
        let v = crate::coupon::decode_presentation(&p.text).unwrap().verify(&key).unwrap();
        assert_eq!(v.coupon.coupon_id.as_str(), "DEMO-DINING-000003");
        assert!(qr_text(&p.text).unwrap().contains('█'));
        assert!(matches!(make(&sb, "NOPE", 1, false, &out, &mut |_| {}), Err(SandboxError::UnknownCampaign { .. })));
        assert!(matches!(present(&out.join("DEMO-DINING-000001.txt"), clock.now()), Err(SandboxError::Holder { .. })));
    }
}
