//! Firmware profiles: one TOML file per scanner model in `firmware-profiles/`, embedded
//! in the binary so a terminal needs no data files. The format is documented in
//! `firmware-profiles/README.md`; every value carries the confidence its source gives.
//!
//! This module owns parsing and checking profiles. It does no IO on serial ports and
//! knows nothing of coupons.

use serde::{Deserialize, Serialize};
use std::time::Duration;
use thiserror::Error;

/// The shipped profiles, `(file stem, TOML)`. A test keeps this list equal to the
/// directory, so a new file cannot be forgotten.
pub const BUILTIN: &[(&str, &str)] = &[
    ("generic-serial", include_str!("../../firmware-profiles/generic-serial.toml")),
    ("generic-cdc", include_str!("../../firmware-profiles/generic-cdc.toml")),
    ("honeywell-xenon-1950g", include_str!("../../firmware-profiles/honeywell-xenon-1950g.toml")),
    ("honeywell-voyager-1470g", include_str!("../../firmware-profiles/honeywell-voyager-1470g.toml")),
    ("honeywell-granit-1980i", include_str!("../../firmware-profiles/honeywell-granit-1980i.toml")),
    ("zebra-ds2208", include_str!("../../firmware-profiles/zebra-ds2208.toml")),
    ("zebra-ds4608-ssi", include_str!("../../firmware-profiles/zebra-ds4608-ssi.toml")),
    ("zebra-ds9308", include_str!("../../firmware-profiles/zebra-ds9308.toml")),
    ("datalogic-quickscan-qd2430", include_str!("../../firmware-profiles/datalogic-quickscan-qd2430.toml")),
    ("datalogic-gryphon-gd4500", include_str!("../../firmware-profiles/datalogic-gryphon-gd4500.toml")),
    ("newland-hr22", include_str!("../../firmware-profiles/newland-hr22.toml")),
    ("newland-hr42", include_str!("../../firmware-profiles/newland-hr42.toml")),
    ("mindeo-cdc", include_str!("../../firmware-profiles/mindeo-cdc.toml")),
];

/// How far a value can be trusted, in the words of `../shared/reference/scanners.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Confidence {
    /// Vendor documentation.
    Vendor,
    /// The usb.ids database.
    Db,
    /// Public source code.
    Code,
    /// Third-party code or blog: weak.
    ThirdParty,
    /// Inferred or not confirmed for this model: verify on the device.
    Unverified,
    /// Not found in any source: a placeholder the installer must check.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Profile {
    pub id: String,
    pub vendor: String,
    pub model: String,
    #[serde(default)]
    pub notes: String,
    #[serde(default)]
    pub sources: Vec<String>,
    #[serde(default)]
    pub usb: Vec<UsbId>,
    pub serial: SerialSettings,
    pub framing: Framing,
    #[serde(default)]
    pub commands: Commands,
    #[serde(default)]
    pub setup_codes: Vec<SetupCode>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct UsbId {
    pub vid: u16,
    pub pid: u16,
    pub confidence: Confidence,
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Parity {
    None,
    Odd,
    Even,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlowControl {
    None,
    Software,
    Hardware,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SerialSettings {
    pub baud: u32,
    pub data_bits: u8,
    pub parity: Parity,
    pub stop_bits: u8,
    pub flow_control: FlowControl,
    pub confidence: Confidence,
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// Text frames: optional prefix, optional AIM id, data, terminator.
    Plain,
    /// Zebra SSI packets: length, opcode, source, status, data, 2-byte checksum.
    ZebraSsi,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Terminator {
    Cr,
    Lf,
    CrLf,
    /// CR, LF or CR LF (an LF right after a CR belongs to the same terminator).
    AnyEol,
    /// ETX (0x03), usually after an STX prefix.
    Etx,
    /// No terminator: a frame ends when no byte came for `gap-timeout-ms`.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AimMode {
    Required,
    Optional,
    Absent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Framing {
    pub protocol: Protocol,
    /// Bytes before the data (hex, e.g. "02" for STX); stripped when present.
    #[serde(default, with = "hex_bytes")]
    pub prefix: Vec<u8>,
    pub terminator: Terminator,
    /// A partial frame is abandoned (or, with terminator `none`, delivered) after this.
    pub gap_timeout_ms: u64,
    pub aim: AimMode,
    pub max_frame: usize,
    pub duplicate_window_ms: u64,
    /// AIM ids accepted when one is present, e.g. "]Q1".
    #[serde(default = "qr_aim_ids")]
    pub accept_aim: Vec<String>,
    /// SSI barcode-type bytes accepted (0x1C = QR).
    #[serde(default)]
    pub accept_ssi_types: Vec<u8>,
    /// SSI: answer each packet with CMD_ACK / CMD_NAK.
    #[serde(default)]
    pub ssi_ack: bool,
}

/// `]Q0`..`]Q6`: every QR variant (ISO/IEC 15424).
pub fn qr_aim_ids() -> Vec<String> {
    (0..=6).map(|m| format!("]Q{m}")).collect()
}

impl Framing {
    pub fn gap_timeout(&self) -> Duration {
        Duration::from_millis(self.gap_timeout_ms)
    }
}

/// Bytes the host sends; each hex string may be empty (not known for this model).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Commands {
    /// Sent in order after every (re)connect.
    #[serde(default, with = "hex_list")]
    pub init: Vec<Vec<u8>>,
    #[serde(default, with = "hex_bytes")]
    pub trigger_on: Vec<u8>,
    #[serde(default, with = "hex_bytes")]
    pub trigger_off: Vec<u8>,
    /// Sent when a scanned code is accepted.
    #[serde(default, with = "hex_bytes")]
    pub good_read: Vec<u8>,
    /// Sent when a scanned code is rejected.
    #[serde(default, with = "hex_bytes")]
    pub bad_read: Vec<u8>,
    /// SSI profiles: feedback as an SSI command (opcode + data) wrapped with its checksum.
    #[serde(default)]
    pub ssi_good_read: Option<SsiCommand>,
    #[serde(default)]
    pub ssi_bad_read: Option<SsiCommand>,
    pub confidence: Option<Confidence>,
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SsiCommand {
    pub opcode: u8,
    #[serde(default, with = "hex_bytes")]
    pub data: Vec<u8>,
}

/// A programming barcode an installer scans to put the scanner in the right mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SetupCode {
    pub label: String,
    /// The barcode's content; empty when the source does not give it.
    #[serde(default)]
    pub content: String,
    pub confidence: Confidence,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub note: String,
    /// How the vendor prints it: a QR code (default) or Code 128.
    #[serde(default)]
    pub symbology: Symbology,
    /// What the step sets, as one of [`SETTINGS`]: the sheet says it in the reader's
    /// language (`sheet.setting_<key>`). Empty in an installer's own profile, whose
    /// `label` is then printed as written.
    #[serde(default)]
    pub setting: String,
    /// Code 128 only: FNC3 comes first, which makes the symbol a reader-programming one
    /// (ISO/IEC 15417 §4.3.4.2(c)) that a scanner acts on instead of sending it.
    #[serde(default)]
    pub fnc3: bool,
    /// Where the vendor prints the code when `content` is empty: the guide's title and
    /// the place in it (chapter, page, the label's name), verbatim from the English guide
    /// so the installer finds the same words there.
    #[serde(default)]
    pub guide: String,
    #[serde(default)]
    pub place: String,
    /// Notes for the installer, each one of [`HINTS`] (`sheet.hint_<key>`).
    #[serde(default)]
    pub hints: Vec<String>,
}

/// The settings a setup step can name; each has a text in both message tables.
pub const SETTINGS: &[&str] = &[
    "enter_programming",
    "exit_programming",
    "interface_usb_serial",
    "interface_rs232",
    "suffix_cr",
    "data_suffix",
    "qr_on",
    "aim_on",
    "host_ssi",
    "ssi_packeted",
];

/// The notes a setup step can carry; each has a text in both message tables.
pub const HINTS: &[&str] = &["pnp_crlf", "name_unconfirmed", "sibling", "default_unknown", "same_code"];

/// The first link in `text` whose host is a bare IP address (`http://10.1.2.3/…`), if
/// any. Such mirrors come and go and cannot be told from a private machine, so nothing
/// printed for people may carry one.
pub fn bare_ip_link(text: &str) -> Option<&str> {
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let start = rest[..at].rfind(|c: char| !c.is_ascii_alphabetic()).map_or(0, |i| i + 1);
        let after = &rest[at + 3..];
        let host_end =
            after.find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace()).unwrap_or(after.len());
        let authority = &after[..host_end];
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = if host.starts_with('[') { host } else { host.rsplit_once(':').map_or(host, |(h, _)| h) };
        if host.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok() {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            return Some(&rest[start..at + 3 + end]);
        }
        rest = after;
    }
    None
}

impl SetupCode {
    /// What the setup sheet needs to print this step honestly: a known setting, a source
    /// for every content (no fact without one), content a Code 128 symbol can carry, and
    /// no bare-IP link.
    pub fn check(&self) -> Result<(), String> {
        if self.setting.is_empty() && self.label.trim().is_empty() {
            return Err("needs a setting or a label".into());
        }
        if !self.setting.is_empty() && !SETTINGS.contains(&self.setting.as_str()) {
            return Err(format!("setting {:?} is not one of {SETTINGS:?}", self.setting));
        }
        if let Some(hint) = self.hints.iter().find(|h| !HINTS.contains(&h.as_str())) {
            return Err(format!("hint {hint:?} is not one of {HINTS:?}"));
        }
        if self.fnc3 && self.symbology != Symbology::Code128 {
            return Err("fnc3 belongs to symbology = \"code-128\"".into());
        }
        if !self.content.is_empty() && self.source.trim().is_empty() {
            return Err("a content needs its source".into());
        }
        if self.symbology == Symbology::Code128 {
            // Set B prints ASCII 32..126; CR, LF and TAB go through a switch to set A.
            if let Some(c) = self.content.chars().find(|c| !(matches!(c, ' '..='~' | '\r' | '\n' | '\t'))) {
                return Err(format!("content holds {c:?}, which this Code 128 encoder does not print"));
            }
        }
        if self.place.is_empty() != self.guide.is_empty() {
            return Err("guide and place go together".into());
        }
        for text in [&self.source, &self.guide, &self.place] {
            if let Some(link) = bare_ip_link(text) {
                return Err(format!("{link} is a bare-IP link: cite the document by title or another copy"));
            }
        }
        Ok(())
    }
}

/// The symbology a setup code is drawn in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Symbology {
    #[default]
    Qr,
    /// Code 128, code set B (ISO/IEC 15417), drawn with the `barcoders` crate.
    #[serde(rename = "code-128")]
    Code128,
}

#[derive(Debug, Error)]
pub enum ProfileError {
    #[error("profile {name}: {message}")]
    Parse { name: String, message: String },
    #[error("profile {name}: {message}")]
    Invalid { name: String, message: String },
    #[error("no firmware profile {0:?}; `redeemd scanner list` shows the known ones")]
    Unknown(String),
}

impl ProfileError {
    /// For people, in their language: a translated lead, then the profile's own words (its
    /// checks are English) quoted.
    pub fn text(&self) -> crate::messages::Text {
        use crate::messages::Text;
        match self {
            ProfileError::Unknown(id) => Text::new("error.profile_unknown", vec![("profile", id.clone())]),
            ProfileError::Parse { name, message } | ProfileError::Invalid { name, message } => Text::new(
                "error.profile_invalid",
                vec![("name", name.clone()), ("message", message.replace('`', "'").replace('\n', " "))],
            ),
        }
    }
}

impl Profile {
    /// Parses and checks one profile; `name` is the file stem, which must equal `id`.
    pub fn parse(name: &str, toml_text: &str) -> Result<Profile, ProfileError> {
        let profile: Profile =
            toml::from_str(toml_text).map_err(|e| ProfileError::Parse { name: name.into(), message: e.to_string() })?;
        profile.check().map_err(|message| ProfileError::Invalid { name: name.into(), message })?;
        if profile.id != name {
            return Err(ProfileError::Invalid {
                name: name.into(),
                message: format!("id {:?} differs from the file name", profile.id),
            });
        }
        Ok(profile)
    }

    /// Consistency of the framing and serial settings.
    pub fn check(&self) -> Result<(), String> {
        let f = &self.framing;
        if !(5..=8).contains(&self.serial.data_bits) {
            return Err(format!("data-bits {} is not 5..8", self.serial.data_bits));
        }
        if !(1..=2).contains(&self.serial.stop_bits) {
            return Err(format!("stop-bits {} is not 1 or 2", self.serial.stop_bits));
        }
        if self.serial.baud == 0 {
            return Err("baud must not be 0".into());
        }
        if !(64..=65_536).contains(&f.max_frame) {
            return Err(format!("max-frame {} is not 64..65536", f.max_frame));
        }
        if f.gap_timeout_ms == 0 || f.gap_timeout_ms > 10_000 {
            return Err(format!("gap-timeout-ms {} is not 1..10000", f.gap_timeout_ms));
        }
        for aim in &f.accept_aim {
            if aim.len() != 3 || !aim.starts_with(']') || !aim.is_ascii() {
                return Err(format!("accept-aim {aim:?} is not a 3-character AIM id like \"]Q1\""));
            }
        }
        match f.protocol {
            Protocol::Plain => {
                if !f.accept_ssi_types.is_empty() || f.ssi_ack {
                    return Err("accept-ssi-types and ssi-ack belong to protocol zebra-ssi".into());
                }
                let terminator_byte = match f.terminator {
                    Terminator::Cr => Some(b'\r'),
                    Terminator::Lf => Some(b'\n'),
                    Terminator::Etx => Some(0x03),
                    _ => None,
                };
                if terminator_byte.is_some_and(|t| f.prefix.contains(&t)) {
                    return Err("the prefix contains the terminator byte".into());
                }
                if f.aim == AimMode::Required && f.accept_aim.is_empty() {
                    return Err("aim = required but accept-aim is empty: nothing could be delivered".into());
                }
            }
            Protocol::ZebraSsi => {
                if f.accept_ssi_types.is_empty() {
                    return Err("protocol zebra-ssi needs accept-ssi-types (0x1C = QR)".into());
                }
                if f.terminator != Terminator::None || !f.prefix.is_empty() {
                    return Err("zebra-ssi packets have no prefix or terminator (set terminator = \"none\")".into());
                }
            }
        }
        for u in &self.usb {
            if u.vid == 0 {
                return Err(format!("usb vid 0000 (pid {:04x}) is not a vendor id", u.pid));
            }
        }
        for code in &self.setup_codes {
            code.check().map_err(|message| format!("setup code {:?}: {message}", code.label))?;
        }
        Ok(())
    }

    /// True when `vid:pid` is one of this profile's USB ids.
    pub fn matches_usb(&self, vid: u16, pid: u16) -> bool {
        self.usb.iter().any(|u| u.vid == vid && u.pid == pid)
    }
}

/// Every shipped profile, parsed.
pub fn builtin() -> Result<Vec<Profile>, ProfileError> {
    BUILTIN.iter().map(|(name, text)| Profile::parse(name, text)).collect()
}

/// One shipped profile by id.
pub fn find(id: &str) -> Result<Profile, ProfileError> {
    let (name, text) = BUILTIN.iter().find(|(name, _)| *name == id).ok_or_else(|| ProfileError::Unknown(id.into()))?;
    Profile::parse(name, text)
}

/// A shipped profile by id, or an installer's edited copy by path (`….toml`, whose file
/// stem must equal its `id`).
pub fn load(id_or_path: &str) -> Result<Profile, ProfileError> {
    let path = std::path::Path::new(id_or_path);
    if path.extension().is_none_or(|e| e != "toml") {
        return find(id_or_path);
    }
    let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ProfileError::Parse { name: id_or_path.into(), message: format!("cannot read it: {e}") })?;
    Profile::parse(&name, &text)
}

/// Hex text like "16 54 0D" (spaces optional) ⇄ bytes.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("hex {text:?} has an odd number of digits"));
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).map_err(|_| format!("hex {text:?} holds a non-hex digit")))
        .collect()
}

pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(" ")
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::to_hex(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_hex(&text).map_err(serde::de::Error::custom)
    }
}

mod hex_list {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(list: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(list.iter().map(|b| super::to_hex(b)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        texts.iter().map(|t| super::parse_hex(t).map_err(serde::de::Error::custom)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_shipped_profile_loads_and_is_consistent() {
        let profiles = builtin().unwrap();
        let mut ids = HashSet::new();
        for p in &profiles {
            assert!(ids.insert(p.id.clone()), "duplicate id {}", p.id);
            let mut usb = HashSet::new();
            for u in &p.usb {
                assert!(usb.insert((u.vid, u.pid)), "{}: usb {:04x}:{:04x} twice", p.id, u.vid, u.pid);
            }
        }
        for required in [
            "generic-serial",
            "generic-cdc",
            "honeywell-xenon-1950g",
            "honeywell-voyager-1470g",
            "honeywell-granit-1980i",
            "zebra-ds2208",
            "zebra-ds4608-ssi",
            "zebra-ds9308",
            "datalogic-quickscan-qd2430",
            "datalogic-gryphon-gd4500",
            "newland-hr22",
            "newland-hr42",
            "mindeo-cdc",
        ] {
            assert!(ids.contains(required), "profile {required} missing");
        }
    }

    #[test]
    fn the_embedded_list_is_the_directory() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-profiles");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let mut embedded: Vec<String> = BUILTIN.iter().map(|(n, _)| n.to_string()).collect();
        embedded.sort();
        assert_eq!(files, embedded, "add new profiles to profile::BUILTIN");
        for (name, text) in BUILTIN {
            assert_eq!(std::fs::read_to_string(dir.join(format!("{name}.toml"))).unwrap(), *text);
        }
    }

    #[test]
    fn hex_round_trips_and_refuses_junk() {
        assert_eq!(parse_hex("16 54 0d").unwrap(), vec![0x16, 0x54, 0x0d]);
        assert_eq!(parse_hex("").unwrap(), Vec::<u8>::new());
        assert!(parse_hex("1").is_err());
        assert!(parse_hex("zz").is_err());
        assert_eq!(to_hex(&[0x1b, 0x36, 0x2c]), "1B 36 2C");
    }

    #[test]
    fn bare_ip_links_are_found() {
        assert_eq!(
            bare_ip_link("see http://38.142.81.21:8001/manual/x.html p. 56"),
            Some("http://38.142.81.21:8001/manual/x.html")
        );
        assert_eq!(bare_ip_link("https://[::1]/x"), Some("https://[::1]/x"));
        assert_eq!(bare_ip_link("https://docs.zebra.com/a; https://easymanua.ls/b?p=1"), None);
        assert_eq!(bare_ip_link("usb.ids, 05E0:1701 Bar Code Scanner (CDC)"), None);
    }

    #[test]
    fn a_setup_step_the_sheet_cannot_print_honestly_is_refused() {
        let good = || find("datalogic-quickscan-qd2430").unwrap();
        let mut p = good();
        p.setup_codes[1].source.clear(); // a content without its source
        assert!(p.check().is_err());
        let mut p = good();
        p.setup_codes[1].symbology = Symbology::Qr; // FNC3 exists in Code 128 only
        assert!(p.check().is_err());
        let mut p = good();
        p.setup_codes[0].source = "a mirror, http://10.0.0.7/guide.pdf".into();
        assert!(p.check().is_err());
        let mut p = good();
        p.setup_codes[0].setting = "beep_loudly".into();
        assert!(p.check().is_err());
        let mut p = good();
        p.setup_codes[0].hints = vec!["trust_me".into()];
        assert!(p.check().is_err());
        let mut p = good();
        p.setup_codes[1].content = "$P\u{1b}".into(); // no Code 128 set prints ESC here
        assert!(p.check().is_err());
        let mut p = good();
        p.setup_codes[0].place.clear(); // a guide without the place in it
        assert!(p.check().is_err());
        assert!(good().check().is_ok());
    }

    #[test]
    fn every_setting_and_hint_has_words_in_both_languages() {
        use crate::messages::{table, Language};
        for language in Language::ALL {
            for key in SETTINGS
                .iter()
                .map(|s| format!("sheet.setting_{s}"))
                .chain(HINTS.iter().map(|h| format!("sheet.hint_{h}")))
            {
                assert!(table(language).contains_key(&key), "{key} missing in {}", language.tag());
            }
        }
    }

    #[test]
    fn inconsistent_framing_is_refused() {
        let mut p = find("generic-serial").unwrap();
        p.framing.max_frame = 10;
        assert!(p.check().is_err());
        let mut p = find("generic-serial").unwrap();
        p.framing.prefix = vec![b'\r'];
        p.framing.terminator = Terminator::Cr;
        assert!(p.check().is_err());
        let mut p = find("zebra-ds4608-ssi").unwrap();
        p.framing.accept_ssi_types.clear();
        assert!(p.check().is_err());
    }
}
