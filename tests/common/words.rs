//! One language for the reader (issue 11): which words on a zh-CN terminal are English
//! (outside ids, codes, paths, numbers, options and commands in backticks), and which
//! characters on an en one are Chinese.

use super::Run;

/// Words a zh-CN user may see in Latin letters: reason codes, config values, the issuer
/// id, the program, and data that is a name (the test upstream's merchant).
const ALLOWED: &[&str] = &[
    "redeemd",
    "redeemd-demo",
    "dining",
    "malformed",
    "already_redeemed",
    "below_min_spend",
    "Lianhua",
    "Qingchun",
    // a unit, like the digits before it
    "MiB",
];

/// The English words of `text` a zh-CN user would read: Latin-letter words that are not
/// ids (digits, capitals, `-_./:`), options (`--x`), commands in backticks or allowed.
pub fn english_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            continue; // a command to type
        }
        // A URL is machine output as a whole (its query has `?token=` and the like).
        let part: String = part
            .split(char::is_whitespace)
            .map(|chunk| if chunk.contains("://") { "" } else { chunk })
            .collect::<Vec<_>>()
            .join(" ");
        for token in part.split(|c: char| !(c.is_ascii_alphanumeric() || "-_./:[]".contains(c))) {
            let token = token.trim_matches(|c| c == '[' || c == ']');
            if token.is_empty()
                || !token.chars().any(|c| c.is_ascii_lowercase())
                || token.starts_with('-')
                || token.chars().any(|c| c.is_ascii_digit() || "_./:".contains(c))
                || token.contains('-') && token.chars().any(|c| c.is_ascii_uppercase())
                || ALLOWED.contains(&token)
                || token == host_name()
            {
                continue;
            }
            words.push(token.to_owned());
        }
    }
    words
}

/// This machine's name: `provision`'s default terminal label, data a zh-CN user may see.
fn host_name() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| std::fs::read_to_string("/etc/hostname").unwrap_or_default().trim().to_owned())
}

/// One language for the reader: no English word on a zh-CN terminal, no Chinese on an en one.
pub fn assert_words(run: &Run, language: &str) {
    let text = format!("{}\n{}", run.stdout, run.stderr);
    if language != "zh-CN" {
        let chinese: String = text.chars().filter(|c| is_cjk(*c)).collect();
        assert!(chinese.is_empty(), "Chinese {chinese:?} reached an en user:\n{text}");
        return;
    }
    let english = english_words(&text);
    assert!(english.is_empty(), "English {english:?} reached a zh-CN user:\n{text}");
}

pub fn is_cjk(c: char) -> bool {
    matches!(c, '\u{2E80}'..='\u{9FFF}' | '\u{FF00}'..='\u{FFEF}')
}
