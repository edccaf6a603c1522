//! The rule set's `revoked` list held compactly: every id's bytes in one buffer plus a
//! sorted, deduplicated index into it. A million ids take ~22 MB this way instead of
//! ~60 MB as `String`s, the install inserts them in key order (a B-tree append instead of
//! a million random inserts), and the proof of the derived tables reads them in the
//! order the `revoked` table holds them.
//!
//! It only holds ids: what a revoked id means is the decision's business, and where the
//! ids are stored is the store's.

use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Revoked coupon ids, sorted by their bytes (SQLite's BINARY order) and unique.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RevokedIds {
    /// Every listed id, concatenated (duplicates included: they are dropped from `spans`).
    text: String,
    /// `(start, end)` of each distinct id in `text`, in sorted order.
    spans: Vec<(u32, u32)>,
    /// How many ids the list held, duplicates included.
    listed: usize,
}

impl RevokedIds {
    /// From ids in any order, with duplicates (tests, issuers).
    pub fn from_ids<'a>(ids: impl IntoIterator<Item = &'a str>) -> Result<RevokedIds, TooLarge> {
        let mut out = RevokedIds::default();
        for id in ids {
            out.push(id)?;
        }
        out.seal();
        Ok(out)
    }

    fn push(&mut self, id: &str) -> Result<(), TooLarge> {
        let start = u32::try_from(self.text.len()).map_err(|_| TooLarge)?;
        let end = u32::try_from(self.text.len() + id.len()).map_err(|_| TooLarge)?;
        self.text.push_str(id);
        self.spans.push((start, end));
        self.listed += 1;
        Ok(())
    }

    fn id(&self, (start, end): (u32, u32)) -> &str {
        // Spans are made by `push` on whole strings: always in bounds, on char boundaries.
        self.text.get(start as usize..end as usize).unwrap_or_default()
    }

    /// Sorts by bytes and drops duplicates.
    fn seal(&mut self) {
        let text = &self.text;
        let id = |(s, e): (u32, u32)| text.as_bytes().get(s as usize..e as usize).unwrap_or_default();
        self.spans.sort_unstable_by(|a, b| id(*a).cmp(id(*b)));
        self.spans.dedup_by(|a, b| id(*a) == id(*b));
        self.spans.shrink_to_fit();
        self.text.shrink_to_fit();
    }

    /// The distinct ids in byte order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        self.spans.iter().map(|span| self.id(*span))
    }

    /// Distinct ids.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Ids as the list held them, duplicates included (what `revoked_count` has always said).
    pub fn listed(&self) -> usize {
        self.listed
    }

    pub fn contains(&self, id: &str) -> bool {
        self.spans.binary_search_by(|span| self.id(*span).as_bytes().cmp(id.as_bytes())).is_ok()
    }
}

/// More than 4 GiB of revoked ids: no rule set this terminal could hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge;

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the revoked ids take more than 4 GiB")
    }
}

impl fmt::Debug for RevokedIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RevokedIds({} distinct of {} listed)", self.len(), self.listed)
    }
}

impl Serialize for RevokedIds {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for id in self.iter() {
            seq.serialize_element(id)?;
        }
        seq.end()
    }
}

/// Accepts exactly what `Vec<String>` accepts, with the same error messages, without a
/// `String` per id.
impl<'de> Deserialize<'de> for RevokedIds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RevokedIds, D::Error> {
        struct List;
        impl<'de> Visitor<'de> for List {
            type Value = RevokedIds;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RevokedIds, A::Error> {
                let mut ids = RevokedIds::default();
                while seq.next_element_seed(Id(&mut ids))?.is_some() {}
                ids.seal();
                Ok(ids)
            }
        }
        deserializer.deserialize_seq(List)
    }
}

/// One element, appended straight to the buffer.
struct Id<'a>(&'a mut RevokedIds);

impl<'de> DeserializeSeed<'de> for Id<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_string(self)
    }
}

impl Visitor<'_> for Id<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.0.push(v).map_err(E::custom)
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<(), E> {
        // As `String` does: bytes that are UTF-8 are a string.
        match std::str::from_utf8(v) {
            Ok(s) => self.visit_str(s),
            Err(_) => Err(E::invalid_value(serde::de::Unexpected::Bytes(v), &self)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_unique_with_the_listed_count() {
        let ids: RevokedIds = serde_json::from_str(r#"["b", "a", "ab", "b", "", "é", "a"]"#).unwrap();
        assert_eq!(ids.iter().collect::<Vec<_>>(), ["", "a", "ab", "b", "é"]);
        assert_eq!((ids.len(), ids.listed()), (5, 7));
        assert!(ids.contains("ab") && ids.contains("") && !ids.contains("c"));
        assert_eq!(serde_json::to_string(&ids).unwrap(), r#"["","a","ab","b","é"]"#);
    }

    #[test]
    fn accepts_and_refuses_what_a_vec_of_strings_does() {
        for text in [
            r#"[]"#,
            r#"["x"]"#,
            r#"["\u00e9\ud83d\ude00", "a\"b"]"#,
            r#"[1]"#,
            r#"{"a": 1}"#,
            r#""abc""#,
            r#"[null]"#,
            r#"["a",]"#,
            r#"["\ud800"]"#,
            r#"[["a"]]"#,
            r#"null"#,
        ] {
            let want = serde_json::from_str::<Vec<String>>(text).map_err(|e| e.to_string());
            let got = serde_json::from_str::<RevokedIds>(text).map_err(|e| e.to_string());
            match (want, got) {
                (Ok(mut want), Ok(got)) => {
                    want.sort();
                    want.dedup();
                    assert_eq!(got.iter().collect::<Vec<_>>(), want, "{text}");
                }
                (Err(want), Err(got)) => assert_eq!(got, want, "{text}"),
                (want, got) => panic!("{text}: Vec<String> {want:?}, RevokedIds {got:?}"),
            }
        }
    }
}
