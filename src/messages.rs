//! Every text a cashier, manager or installer reads, in the configured language (zh-CN
//! or en), from one message table per language (`messages/*.toml`, embedded). The pages
//! receive the same tables as JSON, so the screen and the command line never disagree.
//!
//! This module only maps (language, key, values) to text; it must not decide anything.
//! Machine output (reason codes, JSON keys, CSV headers) stays English and is not here.

use crate::money::Money;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Language {
    #[default]
    #[serde(rename = "zh-CN", alias = "zh-cn")]
    ZhCn,
    #[serde(rename = "en")]
    En,
}

impl Language {
    pub const ALL: [Language; 2] = [Language::ZhCn, Language::En];

    pub fn tag(self) -> &'static str {
        match self {
            Language::ZhCn => "zh-CN",
            Language::En => "en",
        }
    }

    fn source(self) -> &'static str {
        match self {
            Language::ZhCn => include_str!("../messages/zh-CN.toml"),
            Language::En => include_str!("../messages/en.toml"),
        }
    }
}

/// One language's texts, keyed `section.key`.
pub type Table = BTreeMap<String, String>;

/// The table of `language` (parsed once; the embedded tables are checked by a test).
pub fn table(language: Language) -> &'static Table {
    static TABLES: [OnceLock<Table>; 2] = [OnceLock::new(), OnceLock::new()];
    TABLES[language as usize].get_or_init(|| parse(language.source()).unwrap_or_default())
}

fn parse(source: &str) -> Result<Table, String> {
    let value: toml::Table = toml::from_str(source).map_err(|e| e.to_string())?;
    let mut table = Table::new();
    for (section, entries) in value {
        let toml::Value::Table(entries) = entries else {
            return Err(format!("{section} is not a section"));
        };
        for (key, text) in entries {
            let toml::Value::String(text) = text else {
                return Err(format!("{section}.{key} is not a string"));
            };
            table.insert(format!("{section}.{key}"), text);
        }
    }
    Ok(table)
}

/// The text under `key`: the English one when this language's table lacks it, empty when
/// both do (tests keep both from happening for the keys the code uses).
pub fn text(language: Language, key: &str) -> &'static str {
    match table(language).get(key) {
        Some(text) => text.as_str(),
        None => table(Language::En).get(key).map_or("", String::as_str),
    }
}

/// The text under `key` with each `{name}` replaced by its value.
pub fn fill(language: Language, key: &str, values: &[(&str, &str)]) -> String {
    let mut out = text(language, key).to_owned();
    for (name, value) in values {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

/// A text for people not yet rendered: a key of these tables and its values. Who shows
/// it picks the language (the command line the configured one); `Display` and JSON give
/// English, so logs and scripts see stable text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    key: &'static str,
    values: Vec<(&'static str, String)>,
    /// Texts inside this one (a phrase like "the system roots"), rendered in the same language.
    nested: Vec<(&'static str, Text)>,
}

impl Text {
    pub fn new(key: &'static str, values: Vec<(&'static str, String)>) -> Text {
        Text { key, values, nested: Vec::new() }
    }

    /// This text with `{name}` filled by another text.
    pub fn with(mut self, name: &'static str, text: Text) -> Text {
        self.nested.push((name, text));
        self
    }

    pub fn render(&self, language: Language) -> String {
        let nested: Vec<(&str, String)> = self.nested.iter().map(|(k, t)| (*k, t.render(language))).collect();
        let values: Vec<(&str, &str)> = self
            .values
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .chain(nested.iter().map(|(k, v)| (*k, v.as_str())))
            .collect();
        crate::messages::fill(language, self.key, &values)
    }
}

impl std::fmt::Display for Text {
    /// English, as the JSON says it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render(Language::En))
    }
}

impl Serialize for Text {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.render(Language::En))
    }
}

/// The table of `language` as JSON, for the pages.
pub fn table_json(language: Language) -> String {
    serde_json::to_string(table(language)).unwrap_or_else(|_| "{}".into())
}

pub fn accepted(language: Language, discount: Money, digits: u32) -> String {
    fill(language, "decision.accepted", &[("amount", &discount.display(digits))])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_languages_have_the_same_keys_and_parse() {
        let zh = parse(Language::ZhCn.source()).expect("zh-CN table parses");
        let en = parse(Language::En.source()).expect("en table parses");
        let zh_keys: Vec<_> = zh.keys().collect();
        let en_keys: Vec<_> = en.keys().collect();
        assert_eq!(zh_keys, en_keys, "messages/zh-CN.toml and messages/en.toml must have the same keys");
        for (key, text) in zh.iter().chain(en.iter()) {
            assert!(!text.trim().is_empty(), "{key} is empty");
        }
        // Placeholders match between the languages.
        let names = |t: &str| {
            let mut v: Vec<String> =
                t.split('{').skip(1).filter_map(|p| p.split_once('}').map(|(n, _)| n.to_owned())).collect();
            v.sort();
            v
        };
        for key in zh.keys() {
            assert_eq!(names(&zh[key]), names(&en[key]), "placeholders of {key} differ");
        }
    }

    #[test]
    fn an_acceptance_says_the_discount() {
        assert_eq!(accepted(Language::En, Money(1000), 2), "Accepted: 10.00 off");
        assert_eq!(accepted(Language::ZhCn, Money(1000), 2), "核销成功，优惠 10.00 元");
    }

    #[test]
    fn every_stored_state_has_its_words_in_each_language() {
        use crate::store::{EventState, ForwardState};
        let keys = ForwardState::ALL
            .iter()
            .flat_map(|s| [format!("manager.state_{s}"), format!("report.state_{s}")])
            .chain(EventState::ALL.iter().map(|s| format!("outbox.state_{s}")));
        for key in keys {
            for language in Language::ALL {
                assert!(table(language).contains_key(&key), "{key} missing in {}", language.tag());
            }
        }
    }
}
