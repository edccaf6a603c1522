//! The installer's setup sheet: one printable A4 page (PNG, 150 dpi) that walks through
//! programming a scanner for a firmware profile, in the terminal's language. Each of the
//! profile's setup steps says what it sets (from the message tables); a step whose
//! barcode content a public source gives is printed as that barcode (QR, or Code 128
//! drawn by the `barcoders` crate, with FNC3 first when the vendor's programming labels
//! carry it) with its trust and source; a step no source spells out says in words where
//! the vendor's guide prints the code — never an invented barcode. Then how to check the
//! result with `redeemd scanner test`, a sample coupon to scan, and a footer naming the
//! profile.
//!
//! Text is drawn from a subset of GNU Unifont (8×16 and 16×16 bitmaps, used under the
//! SIL Open Font License 1.1 that Unifont is dual-licensed under since 13.0.04), kept in
//! `sheet-glyphs.hex` beside this file: a terminal needs no installed font, and Chinese
//! prints as well as Latin. A test keeps the subset covering every text the sheet can
//! draw. The sheet also carries its text (what was drawn, line by line) so a test can read
//! it and the PNG can hold it as its description. It renders only; writing is the caller's.

use super::profile::{Confidence, FlowControl, Parity, Profile, SetupCode, Symbology};
use crate::messages::{self, Language};
use image::{GrayImage, Luma};
use qrcode::{EcLevel, QrCode};
use std::collections::HashMap;
use std::sync::OnceLock;
use thiserror::Error;

/// A4 at 150 dpi.
pub const WIDTH: u32 = 1240;
pub const HEIGHT: u32 = 1754;
const MARGIN: u32 = 60;
/// The sample coupon carries a whole signed code: it needs the bigger symbol.
const SAMPLE_QR: u32 = 260;
const SETUP_QR: u32 = 200;
/// Code 128 bars: tall enough to aim at, and the left column wide enough for a short
/// programming string at 3 px (0.5 mm) modules.
const BAR_HEIGHT: u32 = 90;
const CODE_COLUMN: u32 = 520;
const GAP: u32 = 20;
const BLACK: Luma<u8> = Luma([0]);
const WHITE: Luma<u8> = Luma([255]);

#[derive(Debug, Error)]
pub enum SheetError {
    #[error("setup code {label:?} cannot be drawn as a QR code: {message}")]
    Qr { label: String, message: String },
    #[error("setup code {label:?} cannot be drawn as Code 128: {message}")]
    Code128 { label: String, message: String },
    #[error("the sheet cannot be encoded as PNG: {0}")]
    Png(String),
}

/// A rendered sheet: the page, the text drawn on it and the barcodes drawn on it.
#[derive(Debug, Clone)]
pub struct Sheet {
    pub image: GrayImage,
    pub language: Language,
    /// Every paragraph drawn, top to bottom, unwrapped.
    pub text: Vec<String>,
    /// Every barcode drawn, the sample coupon last.
    pub codes: Vec<DrawnCode>,
    /// Steps that did not fit on the page (the sheet then says where the rest is).
    pub left_out: usize,
}

/// Where a barcode was drawn and what it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawnCode {
    pub symbology: Symbology,
    pub fnc3: bool,
    pub content: String,
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    /// Pixels per module.
    pub module: u32,
}

/// A Code 128 symbol's modules (1 = bar), quiet zones not included: Start B, FNC3 when
/// asked, the content (CR, LF and TAB through a switch to code set A, which alone has
/// control characters), the check symbol and Stop.
pub fn code128_modules(content: &str, fnc3: bool) -> Result<Vec<u8>, String> {
    // barcoders spells the start set, set switches and FNC3 as letters: Ɓ (U+0181) is
    // Start B or "switch to B", À (U+00C0) "switch to A", Ż (U+017B) FNC3.
    let mut data = String::from('\u{0181}');
    if fnc3 {
        data.push('\u{017B}');
    }
    let mut in_a = false;
    for c in content.chars() {
        match c {
            '\r' | '\n' | '\t' if !in_a => {
                data.push('\u{00C0}');
                in_a = true;
            }
            // Set A stops at '_' (0x5F); lower case and the rest need set B again.
            '`'..='~' if in_a => {
                data.push('\u{0181}');
                in_a = false;
            }
            _ => {}
        }
        data.push(c);
    }
    let symbol = barcoders::sym::code128::Code128::new(data).map_err(|e| e.to_string())?;
    Ok(symbol.encode())
}

/// The content as printed under its barcode: control characters by name.
pub fn printable_content(content: &str) -> String {
    content.replace('\r', "<CR>").replace('\n', "<LF>").replace('\t', "<TAB>")
}

/// The name to print for a profile's scanner, without the vendor twice when the model
/// already starts with it ("Mindeo Mindeo …"); a generic profile is "any 2D scanner" in
/// the reader's words, with its interface.
pub fn scanner_name(profile: &Profile, language: Language) -> String {
    let model = profile.model.trim();
    let vendor = profile.vendor.trim();
    if vendor.eq_ignore_ascii_case("generic") {
        messages::fill(language, "sheet.any_scanner", &[("interface", model)])
    } else if model.to_lowercase().starts_with(&vendor.to_lowercase()) {
        model.to_owned()
    } else {
        format!("{vendor} {model}")
    }
}

mod font {
    //! The Unifont subset: `XXXX:HEX` lines, 32 hex digits for an 8-wide glyph, 64 for a
    //! 16-wide one, 16 rows each.
    use std::collections::HashMap;

    pub struct Glyph {
        pub width: u32,
        pub rows: [u16; 16],
    }

    impl Glyph {
        pub fn on(&self, x: u32, y: usize) -> bool {
            x < self.width && self.rows.get(y).is_some_and(|row| row >> (self.width - 1 - x) & 1 == 1)
        }
    }

    pub const HEX: &str = include_str!("sheet-glyphs.hex");

    pub fn parse(text: &str) -> HashMap<char, Glyph> {
        let mut glyphs = HashMap::new();
        for line in text.lines() {
            let Some((code, bits)) = line.split_once(':') else { continue };
            let Some(c) = u32::from_str_radix(code.trim(), 16).ok().and_then(char::from_u32) else { continue };
            let bits = bits.trim();
            let (width, digits) = match bits.len() {
                32 => (8, 2),
                64 => (16, 4),
                _ => continue,
            };
            let mut rows = [0u16; 16];
            let mut ok = true;
            for (i, row) in rows.iter_mut().enumerate() {
                match bits.get(i * digits..(i + 1) * digits).and_then(|d| u16::from_str_radix(d, 16).ok()) {
                    Some(v) => *row = v,
                    None => ok = false,
                }
            }
            if ok {
                glyphs.insert(c, Glyph { width, rows });
            }
        }
        glyphs
    }
}

fn glyphs() -> &'static HashMap<char, font::Glyph> {
    static GLYPHS: OnceLock<HashMap<char, font::Glyph>> = OnceLock::new();
    GLYPHS.get_or_init(|| font::parse(font::HEX))
}

/// True when the sheet's font can draw `c`.
pub fn has_glyph(c: char) -> bool {
    glyphs().contains_key(&c)
}

/// Width of `c` in font pixels: a missing glyph is drawn as a box as wide as its kind.
fn advance(c: char) -> u32 {
    match glyphs().get(&c) {
        Some(g) => g.width,
        None if c.is_ascii() => 8,
        None => 16,
    }
}

fn text_width(text: &str, scale: u32) -> u32 {
    text.chars().map(|c| advance(c) * scale).sum()
}

fn line_height(scale: u32) -> u32 {
    16 * scale + 6
}

/// Splits `text` into lines at most `max` pixels wide: at spaces, and between CJK
/// characters (which need none); punctuation that closes a phrase stays on its line.
fn wrap(text: &str, max: u32, scale: u32) -> Vec<String> {
    let mut lines = Vec::new();
    for raw in text.lines() {
        // Tokens: runs of non-space narrow characters, single wide characters, spaces.
        let mut tokens: Vec<String> = Vec::new();
        for c in raw.chars() {
            let wide = advance(c) > 8;
            let closing = "，。：；、！？）」』”’》".contains(c);
            let last_space = tokens.last().is_none_or(|t| t.ends_with(' '));
            let last_wide = tokens.last().and_then(|t| t.chars().last()).is_some_and(|l| advance(l) > 8);
            if c == ' ' {
                tokens.push(" ".into());
            } else if closing && !last_space {
                if let Some(t) = tokens.last_mut() {
                    t.push(c);
                }
            } else if wide || last_space || last_wide {
                tokens.push(c.to_string());
            } else if let Some(t) = tokens.last_mut() {
                t.push(c);
            }
        }
        let mut line = String::new();
        for token in tokens {
            if token == " " && line.is_empty() {
                continue;
            }
            if !line.is_empty() && text_width(&line, scale) + text_width(&token, scale) > max {
                lines.push(line.trim_end().to_owned());
                line.clear();
                if token == " " {
                    continue;
                }
            }
            // A word wider than the line is cut where it must be.
            let mut word = token;
            while text_width(&word, scale) > max && line.is_empty() {
                let mut head = String::new();
                for c in word.chars() {
                    if !head.is_empty() && text_width(&head, scale) + advance(c) * scale > max {
                        break;
                    }
                    head.push(c);
                }
                word = word.chars().skip(head.chars().count()).collect();
                lines.push(head);
            }
            line.push_str(&word);
        }
        if !line.trim().is_empty() {
            lines.push(line.trim_end().to_owned());
        }
    }
    lines
}

struct Canvas {
    img: GrayImage,
    y: u32,
    text: Vec<String>,
    codes: Vec<DrawnCode>,
}

impl Canvas {
    fn dot(&mut self, x: u32, y: u32) {
        if x < WIDTH && y < HEIGHT {
            self.img.put_pixel(x, y, BLACK);
        }
    }

    fn fill(&mut self, x: u32, y: u32, w: u32, h: u32) {
        for py in y..y.saturating_add(h).min(HEIGHT) {
            for px in x..x.saturating_add(w).min(WIDTH) {
                self.img.put_pixel(px, py, BLACK);
            }
        }
    }

    fn line(&mut self, x: u32, y: u32, text: &str, scale: u32, bold: bool) {
        let mut gx = x;
        for c in text.chars() {
            match glyphs().get(&c) {
                Some(g) => {
                    for row in 0..16u32 {
                        for col in 0..g.width {
                            if g.on(col, row as usize) {
                                let (px, py) = (gx + col * scale, y + row * scale);
                                let w = if bold { scale + 1 } else { scale };
                                self.fill(px, py, w, scale);
                            }
                        }
                    }
                }
                None => {
                    // No glyph (text outside the subset): a hollow box, never a wrong letter.
                    let w = advance(c) * scale;
                    for i in 1..w.saturating_sub(1) {
                        self.dot(gx + i, y + 2 * scale);
                        self.dot(gx + i, y + 14 * scale);
                    }
                    for j in 2 * scale..=14 * scale {
                        self.dot(gx + 1, y + j);
                        self.dot(gx + w.saturating_sub(2), y + j);
                    }
                }
            }
            gx += advance(c) * scale;
        }
    }

    /// Draws `text` wrapped to `width` at (x, cursor) and moves the cursor below it.
    fn para(&mut self, x: u32, width: u32, text: &str, scale: u32, bold: bool) {
        if text.is_empty() {
            return;
        }
        self.text.push(text.to_owned());
        for line in wrap(text, width, scale) {
            let y = self.y;
            self.line(x, y, &line, scale, bold);
            self.y += line_height(scale);
        }
    }

    fn code128(&mut self, x: u32, y: u32, code: &SetupCode, unit: u32, modules: &[u8]) {
        for (i, m) in modules.iter().enumerate() {
            if *m == 1 {
                self.fill(x + (10 + i as u32) * unit, y, unit, BAR_HEIGHT);
            }
        }
        self.codes.push(DrawnCode {
            symbology: Symbology::Code128,
            fnc3: code.fnc3,
            content: code.content.clone(),
            x,
            y,
            width: (modules.len() as u32 + 20) * unit,
            height: BAR_HEIGHT,
            module: unit,
        });
    }

    fn qr(&mut self, x: u32, y: u32, size: u32, content: &str, label: &str) -> Result<(), SheetError> {
        let code = QrCode::with_error_correction_level(content.as_bytes(), EcLevel::M)
            .map_err(|e| SheetError::Qr { label: label.into(), message: e.to_string() })?;
        let modules = code.width() as u32 + 8;
        let qr = code.render::<Luma<u8>>().min_dimensions(size, size).max_dimensions(size, size).build();
        for (px, py, p) in qr.enumerate_pixels() {
            if x + px < WIDTH && y + py < HEIGHT {
                self.img.put_pixel(x + px, y + py, *p);
            }
        }
        self.codes.push(DrawnCode {
            symbology: Symbology::Qr,
            fnc3: false,
            content: content.to_owned(),
            x,
            y,
            width: qr.width(),
            height: qr.height(),
            module: qr.width() / modules.max(1),
        });
        Ok(())
    }
}

fn confidence_key(c: Confidence) -> &'static str {
    match c {
        Confidence::Vendor => "sheet.confidence_vendor",
        Confidence::Db => "sheet.confidence_db",
        Confidence::Code => "sheet.confidence_code",
        Confidence::ThirdParty => "sheet.confidence_third_party",
        Confidence::Unverified => "sheet.confidence_unverified",
        Confidence::Unknown => "sheet.confidence_unknown",
    }
}

/// The paragraphs of one step, in the order drawn: (text, bold).
fn step_texts(language: Language, n: usize, code: &SetupCode) -> Vec<(String, bool)> {
    let tr = |key: &str, values: &[(&str, &str)]| messages::fill(language, key, values);
    let setting = if code.setting.is_empty() {
        code.label.clone()
    } else {
        messages::text(language, &format!("sheet.setting_{}", code.setting)).to_owned()
    };
    let mut out = vec![(tr("sheet.step", &[("n", &n.to_string()), ("setting", &setting)]), true)];
    let content = printable_content(&code.content);
    if code.content.is_empty() {
        out.push(if code.guide.is_empty() {
            (tr("sheet.in_own_guide", &[]), false)
        } else {
            (tr("sheet.in_guide", &[("guide", &code.guide), ("place", &code.place)]), false)
        });
    } else {
        let key = match (code.symbology, code.fnc3) {
            (Symbology::Code128, true) => "sheet.code128_fnc3",
            (Symbology::Code128, false) => "sheet.code128",
            (Symbology::Qr, _) => "sheet.qr",
        };
        out.push((tr(key, &[("content", &content)]), false));
    }
    let level = messages::text(language, confidence_key(code.confidence));
    out.push((tr("sheet.confidence", &[("level", level)]), false));
    if !code.source.trim().is_empty() {
        out.push((tr("sheet.source", &[("source", code.source.trim())]), false));
    }
    for hint in &code.hints {
        out.push((messages::text(language, &format!("sheet.hint_{hint}")).to_owned(), false));
    }
    out
}

fn height_of(texts: &[(String, bool)], width: u32) -> u32 {
    texts.iter().map(|(t, _)| wrap(t, width, 1).len() as u32 * line_height(1)).sum()
}

/// Where a step's barcode goes and how big its modules are; `None` for a step in words.
enum Layout {
    Words,
    Qr,
    /// Bars in the left column, text beside them.
    Bars {
        unit: u32,
        modules: Vec<u8>,
    },
    /// A long symbol: bars across the page, text below.
    WideBars {
        unit: u32,
        modules: Vec<u8>,
    },
}

fn layout(code: &SetupCode) -> Result<Layout, SheetError> {
    if code.content.is_empty() {
        return Ok(Layout::Words);
    }
    if code.symbology == Symbology::Qr {
        return Ok(Layout::Qr);
    }
    let modules = code128_modules(&code.content, code.fnc3)
        .map_err(|message| SheetError::Code128 { label: code.label.clone(), message })?;
    let total = modules.len() as u32 + 20;
    // Modules of 2-3 px (0.34-0.5 mm at 150 dpi) read well with handheld imagers.
    let unit = (CODE_COLUMN / total).min(3);
    if unit >= 2 {
        return Ok(Layout::Bars { unit, modules });
    }
    let unit = ((WIDTH - 2 * MARGIN) / total).min(3);
    if unit >= 2 {
        return Ok(Layout::WideBars { unit, modules });
    }
    Err(SheetError::Code128 { label: code.label.clone(), message: "too long for the sheet".into() })
}

/// Draws the sheet for `profile` in `language`, ending with `sample_code` (a coupon to
/// scan) and a footer naming the profile.
pub fn render_in(profile: &Profile, sample_code: &str, language: Language) -> Result<Sheet, SheetError> {
    let tr = |key: &str, values: &[(&str, &str)]| messages::fill(language, key, values);
    let mut c =
        Canvas { img: GrayImage::from_pixel(WIDTH, HEIGHT, WHITE), y: MARGIN, text: Vec::new(), codes: Vec::new() };
    let inner = WIDTH - 2 * MARGIN;

    c.para(MARGIN, inner, &tr("sheet.title", &[]), 2, true);
    c.y += 4;
    c.para(MARGIN, inner, &tr("sheet.scanner", &[("name", &scanner_name(profile, language))]), 1, true);
    let usb = if profile.usb.is_empty() {
        tr("sheet.usb_unknown", &[])
    } else {
        // Each id with how far it can be trusted: some come from third-party code only.
        let ids: Vec<String> = profile
            .usb
            .iter()
            .map(|u| {
                format!("{:04X}:{:04X} ({})", u.vid, u.pid, messages::text(language, confidence_key(u.confidence)))
            })
            .collect();
        tr("sheet.usb", &[("ids", &ids.join(", "))])
    };
    c.para(MARGIN, inner, &usb, 1, false);
    let s = &profile.serial;
    let parity = match s.parity {
        Parity::None => "sheet.parity_none",
        Parity::Odd => "sheet.parity_odd",
        Parity::Even => "sheet.parity_even",
    };
    let flow = match s.flow_control {
        FlowControl::None => "sheet.flow_none",
        FlowControl::Software => "sheet.flow_software",
        FlowControl::Hardware => "sheet.flow_hardware",
    };
    c.para(
        MARGIN,
        inner,
        &tr(
            "sheet.serial",
            &[
                ("baud", &s.baud.to_string()),
                ("bits", &s.data_bits.to_string()),
                ("parity", messages::text(language, parity)),
                ("stop", &s.stop_bits.to_string()),
                ("flow", messages::text(language, flow)),
            ],
        ),
        1,
        false,
    );
    c.y += 10;
    c.para(MARGIN, inner, &tr("sheet.intro", &[]), 1, false);
    c.y += GAP;

    // What must fit below the steps: the sample coupon with the check beside it, and
    // the footer.
    let check_title = tr("sheet.check_title", &[]);
    let check = tr("sheet.check", &[("id", &profile.id)]);
    let sample = tr("sheet.sample", &[]);
    let side_x = MARGIN + SAMPLE_QR + 30;
    let side_w = WIDTH - MARGIN - side_x;
    let beside = line_height(2) + height_of(&[(check.clone(), false), (sample.clone(), true)], side_w) + 10;
    let bottom = beside.max(SAMPLE_QR) + 2 * line_height(1);
    let limit = HEIGHT - MARGIN - bottom;
    let more = tr("sheet.more", &[("id", &profile.id)]);
    let mut left_out = 0;

    for (i, code) in profile.setup_codes.iter().enumerate() {
        let texts = step_texts(language, i + 1, code);
        let shape = layout(code)?;
        let side_x = MARGIN + CODE_COLUMN + 20;
        let side_w = WIDTH - MARGIN - side_x;
        let needed = match &shape {
            Layout::Words => height_of(&texts, inner),
            Layout::Qr => height_of(&texts, inner - SETUP_QR - 20).max(SETUP_QR),
            Layout::Bars { .. } => height_of(&texts, side_w).max(BAR_HEIGHT),
            Layout::WideBars { .. } => BAR_HEIGHT + 10 + height_of(&texts, inner),
        };
        if c.y + needed + line_height(1) > limit {
            left_out = profile.setup_codes.len() - i;
            c.para(MARGIN, inner, &more, 1, true);
            break;
        }
        let top = c.y;
        match shape {
            Layout::Words => {
                for (t, bold) in &texts {
                    c.para(MARGIN, inner, t, 1, *bold);
                }
            }
            Layout::Qr => {
                c.qr(MARGIN, top, SETUP_QR, &code.content, &code.label)?;
                let x = MARGIN + SETUP_QR + 20;
                for (t, bold) in &texts {
                    c.para(x, WIDTH - MARGIN - x, t, 1, *bold);
                }
                c.y = c.y.max(top + SETUP_QR);
            }
            Layout::Bars { unit, modules } => {
                c.code128(MARGIN, top, code, unit, &modules);
                for (t, bold) in &texts {
                    c.para(side_x, side_w, t, 1, *bold);
                }
                c.y = c.y.max(top + BAR_HEIGHT);
            }
            Layout::WideBars { unit, modules } => {
                c.code128(MARGIN, top, code, unit, &modules);
                c.y = top + BAR_HEIGHT + 10;
                for (t, bold) in &texts {
                    c.para(MARGIN, inner, t, 1, *bold);
                }
            }
        }
        c.y += GAP;
    }
    if profile.setup_codes.is_empty() {
        c.para(MARGIN, inner, &tr("sheet.no_steps", &[]), 1, true);
        c.y += GAP;
    }

    let top = c.y;
    c.qr(MARGIN, top, SAMPLE_QR, sample_code, "sample coupon")?;
    c.para(side_x, side_w, &check_title, 2, true);
    c.para(side_x, side_w, &check, 1, false);
    c.y += 10;
    c.para(side_x, side_w, &sample, 1, true);
    c.y = HEIGHT - MARGIN / 2 - line_height(1);
    let footer = tr("sheet.footer", &[("version", env!("CARGO_PKG_VERSION")), ("id", &profile.id)]);
    c.para(MARGIN, inner, &footer, 1, false);
    Ok(Sheet { image: c.img, language, text: c.text, codes: c.codes, left_out })
}

impl Sheet {
    /// The page as PNG bytes with its text as an `iTXt` "Description" chunk (UTF-8, in
    /// the sheet's language), so the words on the page can be searched, read aloud and
    /// checked without reading pixels.
    pub fn png(&self) -> Result<Vec<u8>, SheetError> {
        let mut bytes = Vec::new();
        image::DynamicImage::ImageLuma8(self.image.clone())
            .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
            .map_err(|e| SheetError::Png(e.to_string()))?;
        // Signature (8) then IHDR: length (4), type (4), 13 bytes of data, CRC (4).
        let after_ihdr = 8 + 4 + 4 + 13 + 4;
        if bytes.len() < after_ihdr || &bytes[12..16] != b"IHDR" {
            return Err(SheetError::Png("no IHDR chunk where PNG puts it".into()));
        }
        let mut data = b"Description\0\0\0".to_vec();
        data.extend_from_slice(self.language.tag().as_bytes());
        data.extend_from_slice(b"\0\0");
        data.extend_from_slice(self.text.join("\n").as_bytes());
        let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
        let mut body = b"iTXt".to_vec();
        body.extend_from_slice(&data);
        chunk.extend_from_slice(&body);
        chunk.extend_from_slice(&crc32(&body).to_be_bytes());
        bytes.splice(after_ihdr..after_ihdr, chunk);
        Ok(bytes)
    }
}

/// CRC-32 as PNG chunks use it (ISO 3309, reflected polynomial 0xEDB88320).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for b in bytes {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scanner::profile;

    #[test]
    fn wraps_without_losing_words() {
        // 8 px per Latin letter: 40 px hold five.
        let lines = wrap("a bb ccc dddddddddddd e", 40, 1);
        assert_eq!(lines, ["a bb", "ccc", "ddddd", "ddddd", "dd e"]);
        // CJK breaks between characters; closing punctuation stays with its phrase.
        let lines = wrap("扫码枪设置单，按顺序", 64, 1);
        assert!(lines.iter().all(|l| text_width(l, 1) <= 64), "{lines:?}");
        assert!(lines.iter().all(|l| !l.starts_with('，')), "{lines:?}");
        assert_eq!(lines.concat(), "扫码枪设置单，按顺序");
    }

    #[test]
    fn code_128_follows_the_standard() {
        // Start B (104) "$+" then the check value (104 + 1*4 + 2*11) % 103 = 27, then stop.
        let m: String = code128_modules("$+", false).unwrap().iter().map(|b| char::from(b'0' + b)).collect();
        let start_b = "11010010000";
        let dollar = "10010001100"; // value 4
        let plus = "11000100100"; // value 11
        let check = "11101100100"; // value 27
        let stop = "1100011101011";
        assert_eq!(m, format!("{start_b}{dollar}{plus}{check}{stop}"));
        // FNC3 (96) first, then CR through Code A (101) and value 77:
        // check = (104 + 1*96 + 2*4 + 3*48 + 4*101 + 5*77) % 103 = 1141 % 103 = 8.
        let m: String = code128_modules("$P\r", true).unwrap().iter().map(|b| char::from(b'0' + b)).collect();
        let fnc3 = "10111100010";
        let p = "11101110110"; // value 48
        let code_a = "11101011110"; // value 101
        let cr = "11110111010"; // value 77 in set A
        let check = "10001100100"; // value 8
        assert_eq!(m, format!("{start_b}{fnc3}{dollar}{p}{code_a}{cr}{check}{stop}"));
    }

    #[test]
    fn a_doubled_vendor_is_printed_once() {
        let mut p = profile::find("mindeo-cdc").unwrap();
        p.model = "Mindeo ES4650".into();
        assert_eq!(scanner_name(&p, Language::En), "Mindeo ES4650");
        p.model = "ES4650".into();
        assert_eq!(scanner_name(&p, Language::En), "Mindeo ES4650");
        let p = profile::find("generic-cdc").unwrap();
        assert_eq!(scanner_name(&p, Language::ZhCn), "任意二维扫码枪（USB CDC-ACM）");
    }

    #[test]
    fn the_png_carries_the_text() {
        let p = profile::find("generic-cdc").unwrap();
        let sheet = render_in(&p, "CP1:SAMPLE", Language::En).unwrap();
        let png = sheet.png().unwrap();
        let back = image::load_from_memory(&png).unwrap().to_luma8();
        assert_eq!(back, sheet.image);
        let want = sheet.text.join("\n");
        let found = png.windows(want.len()).any(|w| w == want.as_bytes());
        assert!(found, "the description chunk holds the text");
        assert_eq!(crc32(b"IEND"), 0xAE42_6082);
    }

    #[test]
    fn every_profile_renders_in_every_language() {
        for p in profile::builtin().unwrap() {
            for language in Language::ALL {
                let sheet = render_in(&p, "CP1:SAMPLE", language).unwrap();
                assert_eq!(sheet.image.dimensions(), (WIDTH, HEIGHT));
                assert_eq!(sheet.left_out, 0, "{}: every step fits", p.id);
            }
        }
    }

    /// Every character the sheet may draw has a glyph. With `REDEEMD_UNIFONT` naming a
    /// Unifont `.hex` file (Debian: `/usr/share/unifont/unifont.hex`, package `unifont`)
    /// the subset is written anew from it first: run this test so after editing a
    /// `[sheet]` message or a profile's printed text.
    #[test]
    fn the_font_covers_every_text_the_sheet_draws() {
        let mut wanted: std::collections::BTreeSet<char> = (' '..='~').collect();
        wanted.extend("·…“”‘’".chars());
        for language in Language::ALL {
            for (key, text) in messages::table(language) {
                if key.starts_with("sheet.") {
                    wanted.extend(text.chars());
                }
            }
        }
        for p in profile::builtin().unwrap() {
            for language in Language::ALL {
                for t in render_in(&p, "CP1:SAMPLE", language).unwrap().text {
                    wanted.extend(t.chars());
                }
            }
        }
        wanted.remove(&'\n');
        if let Some(source) = std::env::var_os("REDEEMD_UNIFONT") {
            let unifont = std::fs::read_to_string(source).unwrap();
            let mut out = String::from(
                "# The setup sheet's font: the glyphs it draws, taken from GNU Unifont (unifont.hex,\n\
                 # Debian package unifont), used under the SIL Open Font License 1.1 (Unifont is\n\
                 # dual-licensed OFL-1.1 / GPL-2+ with the font embedding exception since 13.0.04).\n\
                 # Written by: REDEEMD_UNIFONT=/usr/share/unifont/unifont.hex cargo test --lib \\\n\
                 #   scanner::sheet::tests::the_font_covers_every_text_the_sheet_draws\n",
            );
            for line in unifont.lines() {
                let Some((code, _)) = line.split_once(':') else { continue };
                let Some(c) = u32::from_str_radix(code, 16).ok().and_then(char::from_u32) else { continue };
                if wanted.contains(&c) {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/scanner/sheet-glyphs.hex");
            std::fs::write(path, &out).unwrap();
            let missing: Vec<char> = wanted.iter().copied().filter(|c| !font::parse(&out).contains_key(c)).collect();
            assert!(missing.is_empty(), "not in that Unifont: {missing:?}");
            return;
        }
        let missing: String = wanted.iter().filter(|c| !has_glyph(**c)).collect();
        assert!(
            missing.is_empty(),
            "no glyph for {missing:?}: rerun this test with REDEEMD_UNIFONT=/usr/share/unifont/unifont.hex"
        );
    }
}
