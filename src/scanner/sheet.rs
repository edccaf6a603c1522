//! The installer's setup sheet: a printable PNG (A4 at 150 dpi) with a profile's setup
//! codes in the symbology the vendor prints them in (QR, or Code 128 drawn by the
//! `barcoders` crate), each with its confidence and source, and a sample coupon to test
//! the scanner with. Codes whose content no source gives are drawn as a labelled box that
//! says so and where to find them — never as an invented barcode.
//!
//! Text is drawn with the public-domain 8×8 bitmap font of `font8x8` (ASCII; other
//! characters print as `?`). It renders only; writing the file is the caller's.

use super::profile::{Confidence, Profile, Symbology};
use image::{GrayImage, Luma};
use qrcode::{EcLevel, QrCode};
use thiserror::Error;

const WIDTH: u32 = 1240;
const HEIGHT: u32 = 1754;
const MARGIN: u32 = 60;
const QR_SIZE: u32 = 260;
const BLACK: Luma<u8> = Luma([0]);
const WHITE: Luma<u8> = Luma([255]);

#[derive(Debug, Error)]
pub enum SheetError {
    #[error("setup code {label:?} cannot be drawn as a QR code: {message}")]
    Qr { label: String, message: String },
    #[error("setup code {label:?} cannot be drawn as Code 128: {message}")]
    Code128 { label: String, message: String },
}

/// A Code 128 symbol's modules (1 = bar), code set B, quiet zones not included.
pub fn code128_modules(content: &str) -> Result<Vec<u8>, String> {
    // barcoders wants the start code set spelled out: U+0181 is Start B.
    let symbol = barcoders::sym::code128::Code128::new(format!("\u{0181}{content}")).map_err(|e| e.to_string())?;
    Ok(symbol.encode())
}

struct Canvas {
    img: GrayImage,
    y: u32,
}

impl Canvas {
    fn text(&mut self, x: u32, y: u32, text: &str, scale: u32) {
        for (i, ch) in text.chars().enumerate() {
            let code = if ch.is_ascii() && !ch.is_ascii_control() { ch as usize } else { '?' as usize };
            let glyph = font8x8::legacy::BASIC_LEGACY[code];
            let gx = x + i as u32 * 8 * scale;
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8u32 {
                    if bits & (1 << col) != 0 {
                        for dy in 0..scale {
                            for dx in 0..scale {
                                let (px, py) = (gx + col * scale + dx, y + row as u32 * scale + dy);
                                if px < WIDTH && py < HEIGHT {
                                    self.img.put_pixel(px, py, BLACK);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Writes wrapped lines at the cursor, returning the height used.
    fn paragraph(&mut self, x: u32, text: &str, scale: u32, width: u32) -> u32 {
        let per_line = (width / (8 * scale)).max(10) as usize;
        let mut used = 0;
        for line in wrap(text, per_line) {
            self.text(x, self.y + used, &line, scale);
            used += 10 * scale;
        }
        used
    }

    fn rect(&mut self, x: u32, y: u32, w: u32, h: u32) {
        for px in x..(x + w).min(WIDTH) {
            for py in [y, (y + h).min(HEIGHT - 1)] {
                self.img.put_pixel(px, py, BLACK);
            }
        }
        for py in y..(y + h).min(HEIGHT) {
            for px in [x, (x + w).min(WIDTH - 1)] {
                self.img.put_pixel(px, py, BLACK);
            }
        }
    }

    /// Draws a Code 128 symbol at most `width` wide (modules of at least 2 px, a quiet
    /// zone of 10 modules each side), `height` tall.
    fn code128(
        &mut self,
        x: u32,
        y: u32,
        width: u32,
        height: u32,
        content: &str,
        label: &str,
    ) -> Result<(), SheetError> {
        let modules =
            code128_modules(content).map_err(|message| SheetError::Code128 { label: label.into(), message })?;
        let total = modules.len() as u32 + 20;
        let unit = (width / total).clamp(2, 4);
        if total * unit > width {
            return Err(SheetError::Code128 { label: label.into(), message: "too long for the sheet".into() });
        }
        for (i, m) in modules.iter().enumerate() {
            if *m == 1 {
                let left = x + (10 + i as u32) * unit;
                for px in left..left + unit {
                    for py in y..y + height {
                        if px < WIDTH && py < HEIGHT {
                            self.img.put_pixel(px, py, BLACK);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn qr(&mut self, x: u32, y: u32, content: &str, label: &str) -> Result<(), SheetError> {
        let code = QrCode::with_error_correction_level(content.as_bytes(), EcLevel::M)
            .map_err(|e| SheetError::Qr { label: label.into(), message: e.to_string() })?;
        let qr = code.render::<Luma<u8>>().min_dimensions(QR_SIZE, QR_SIZE).max_dimensions(QR_SIZE, QR_SIZE).build();
        for (px, py, p) in qr.enumerate_pixels() {
            if x + px < WIDTH && y + py < HEIGHT {
                self.img.put_pixel(x + px, y + py, *p);
            }
        }
        Ok(())
    }
}

fn wrap(text: &str, per_line: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for raw in text.lines() {
        let mut line = String::new();
        for word in raw.split_whitespace() {
            let mut word = word.to_owned();
            while word.chars().count() > per_line {
                let head: String = word.chars().take(per_line).collect();
                word = word.chars().skip(per_line).collect();
                if !line.is_empty() {
                    lines.push(std::mem::take(&mut line));
                }
                lines.push(head);
            }
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > per_line {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&word);
        }
        if !line.is_empty() {
            lines.push(line);
        }
    }
    lines
}

fn confidence_label(c: Confidence) -> &'static str {
    match c {
        Confidence::Vendor => "vendor documentation",
        Confidence::Db => "usb.ids database",
        Confidence::Code => "public source code",
        Confidence::ThirdParty => "third-party, weak",
        Confidence::Unverified => "UNVERIFIED - test before relying on it",
        Confidence::Unknown => "UNKNOWN - content not in any source consulted",
    }
}

/// Draws the sheet for `profile`, ending with `sample_code` (a coupon to scan).
pub fn render(profile: &Profile, sample_code: &str) -> Result<GrayImage, SheetError> {
    let mut c = Canvas { img: GrayImage::from_pixel(WIDTH, HEIGHT, WHITE), y: MARGIN };
    let inner = WIDTH - 2 * MARGIN;
    c.text(MARGIN, c.y, "redeemd scanner setup sheet", 4);
    c.y += 50;
    c.y += c.paragraph(MARGIN, &format!("{} {} (profile {})", profile.vendor, profile.model, profile.id), 3, inner);
    let usb = if profile.usb.is_empty() {
        "USB id: unknown - read it with lsusb".to_owned()
    } else {
        let ids: Vec<String> = profile
            .usb
            .iter()
            .map(|u| format!("{:04x}:{:04x} ({})", u.vid, u.pid, confidence_label(u.confidence)))
            .collect();
        format!("USB id: {}", ids.join(", "))
    };
    c.y += 6;
    c.y += c.paragraph(MARGIN, &usb, 2, inner);
    let s = &profile.serial;
    c.y += c.paragraph(
        MARGIN,
        &format!(
            "Serial: {} baud, {} data bits, parity {:?}, {} stop bit(s), flow {:?} ({})",
            s.baud,
            s.data_bits,
            s.parity,
            s.stop_bits,
            s.flow_control,
            confidence_label(s.confidence)
        ),
        2,
        inner,
    );
    c.y += 20;
    let row_height = QR_SIZE + 30;
    for code in &profile.setup_codes {
        if c.y + row_height > HEIGHT - row_height - MARGIN {
            c.y += c.paragraph(MARGIN, "(more setup codes: see the profile file)", 2, inner);
            break;
        }
        let top = c.y;
        if code.content.is_empty() {
            c.rect(MARGIN, top, QR_SIZE, QR_SIZE);
            c.y = top + QR_SIZE / 2 - 20;
            c.paragraph(
                MARGIN + 12,
                "NOT FOUND in any source consulted: scan this code from the vendor's guide",
                2,
                QR_SIZE - 24,
            );
        } else if code.symbology == Symbology::Code128 {
            // A linear symbol needs the width: bars across the page, the text below them.
            c.code128(MARGIN, top, inner, 100, &code.content, &code.label)?;
            c.y = top + 112;
            c.y += c.paragraph(MARGIN, &format!("{} (Code 128)", code.label), 3, inner) + 6;
            c.y += c.paragraph(MARGIN, &format!("content: {}", code.content), 2, inner);
            c.y += c.paragraph(MARGIN, &format!("confidence: {}", confidence_label(code.confidence)), 2, inner);
            if !code.source.is_empty() {
                c.y += c.paragraph(MARGIN, &format!("source: {}", code.source), 2, inner);
            }
            if !code.note.is_empty() {
                c.y += c.paragraph(MARGIN, &code.note, 2, inner);
            }
            c.y += 30;
            continue;
        } else {
            c.qr(MARGIN, top, &code.content, &code.label)?;
        }
        let x = MARGIN + QR_SIZE + 30;
        let width = WIDTH - x - MARGIN;
        c.y = top + 10;
        c.y += c.paragraph(x, &code.label, 3, width) + 6;
        if !code.content.is_empty() {
            c.y += c.paragraph(x, &format!("content: {}", code.content), 2, width);
        }
        c.y += c.paragraph(x, &format!("confidence: {}", confidence_label(code.confidence)), 2, width);
        if !code.source.is_empty() {
            c.y += c.paragraph(x, &format!("source: {}", code.source), 2, width);
        }
        if !code.note.is_empty() {
            c.y += c.paragraph(x, &code.note, 2, width);
        }
        c.y = c.y.max(top + row_height);
    }
    if profile.setup_codes.is_empty() {
        c.y += c.paragraph(MARGIN, "This profile lists no setup codes.", 3, inner) + 20;
    }
    let top = c.y.min(HEIGHT - row_height - MARGIN);
    c.qr(MARGIN, top, sample_code, "sample coupon")?;
    let x = MARGIN + QR_SIZE + 30;
    c.y = top + 10;
    c.y += c.paragraph(x, "Sample coupon (demo issuer)", 3, WIDTH - x - MARGIN) + 6;
    c.paragraph(
        x,
        "Scan it with `redeemd scanner test --port auto --profile ID`: a frame starting CP1: must appear, with ]Q1 as its aim when AIM ids are on. It is signed by the demo key and is refused by a real terminal.",
        2,
        WIDTH - x - MARGIN,
    );
    Ok(c.img)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scanner::profile;

    #[test]
    fn wraps_without_losing_words() {
        let lines = wrap("a bb ccc dddddddddddd e", 5);
        assert_eq!(lines, ["a bb", "ccc", "ddddd", "ddddd", "dd e"]);
    }

    #[test]
    fn code_128_follows_the_standard() {
        // Start B (104) "$+" then the check value (104 + 1*4 + 2*11) % 103 = 27, then stop.
        let m: String = code128_modules("$+").unwrap().iter().map(|b| char::from(b'0' + b)).collect();
        let start_b = "11010010000";
        let dollar = "10010001100"; // value 4
        let plus = "11000100100"; // value 11
        let check = "11101100100"; // value 27
        let stop = "1100011101011";
        assert_eq!(m, format!("{start_b}{dollar}{plus}{check}{stop}"));
    }

    #[test]
    fn a_code_128_setup_code_is_drawn_as_bars() {
        let mut p = profile::find("generic-serial").unwrap();
        p.setup_codes = vec![profile::SetupCode {
            label: "enter programming".into(),
            content: "$+".into(),
            confidence: Confidence::Unverified,
            source: "test".into(),
            note: String::new(),
            symbology: Symbology::Code128,
        }];
        let img = render(&p, "CP1:SAMPLE").unwrap();
        // Bars: columns black for 80 px and more in the upper half (text is 32 px at most,
        // the sample coupon's QR is in the lower half).
        let bars = (MARGIN..WIDTH - MARGIN)
            .filter(|x| {
                let mut run = 0;
                (0..HEIGHT / 2).any(|y| {
                    run = if img.get_pixel(*x, y).0[0] == 0 { run + 1 } else { 0 };
                    run >= 80
                })
            })
            .count();
        let modules = code128_modules("$+").unwrap();
        let unit = ((WIDTH - 2 * MARGIN) / (modules.len() as u32 + 20)).clamp(2, 4) as usize;
        assert_eq!(bars, modules.iter().filter(|m| **m == 1).count() * unit);
    }

    #[test]
    fn every_profile_renders() {
        for p in profile::builtin().unwrap() {
            let img = render(&p, "CP1:SAMPLE").unwrap();
            assert_eq!(img.dimensions(), (WIDTH, HEIGHT));
            assert!(img.pixels().any(|p| p.0[0] == 0));
        }
    }
}
