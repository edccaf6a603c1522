//! The rule set's `revoked` list held compactly: the ids' bytes in blocks that never
//! move, plus a sorted, deduplicated 8-byte entry per id. A million ids of 13
//! characters take ~22 MB this way instead of ~60 MB as `String`s, the install inserts them in key order (a B-tree append instead of
//! a million random inserts), and the proof of the derived tables reads them in the
//! order the `revoked` table holds them.
//!
//! It only holds ids: what a revoked id means is the decision's business, and where the
//! ids are stored is the store's.

use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Bytes per block of ids: ids are appended to blocks that never move, so the list
/// grows without copying what it holds.
const BLOCK: usize = 1 << 20;
/// A reference is `block << OFFSET_BITS | offset`: 4,096 blocks of 1 MiB.
const OFFSET_BITS: u32 = 20;
const MAX_BLOCKS: usize = 1 << (32 - OFFSET_BITS);

/// Revoked coupon ids, sorted by their bytes (SQLite's BINARY order) and unique.
#[derive(Clone, Default)]
pub struct RevokedIds {
    /// Every listed id (duplicates included) as a LEB128 length and its UTF-8 bytes; an id
    /// longer than a block gets a block of its own.
    blocks: Vec<Vec<u8>>,
    /// One entry per distinct id, in sorted order: its reference in the low 32 bits and,
    /// in the high 32, four bytes of it past the prefix every id shares (see `seal`).
    refs: Vec<u64>,
    /// How many ids the list held, duplicates included.
    listed: usize,
    /// The first id, and how many leading bytes every id so far shares with it.
    first: Vec<u8>,
    shared: usize,
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
        let mut head = [0u8; 10];
        let mut n = 0;
        let mut len = id.len();
        loop {
            head[n] = (len & 0x7f) as u8 | if len > 0x7f { 0x80 } else { 0 };
            n += 1;
            len >>= 7;
            if len == 0 {
                break;
            }
        }
        let need = n + id.len();
        if self.blocks.last().is_none_or(|b| b.len() + need > BLOCK) {
            if self.blocks.len() >= MAX_BLOCKS {
                return Err(TooLarge);
            }
            self.blocks.push(Vec::with_capacity(BLOCK.max(need)));
        }
        let index = self.blocks.len() - 1;
        let block = self.blocks.last_mut().ok_or(TooLarge)?;
        let offset = block.len();
        block.extend_from_slice(&head[..n]);
        block.extend_from_slice(id.as_bytes());
        self.refs.push(u64::from(((index as u32) << OFFSET_BITS) | offset as u32));
        if self.listed == 0 {
            self.first = id.as_bytes().to_vec();
            self.shared = self.first.len();
        } else {
            let common = self.first.iter().zip(id.as_bytes()).take(self.shared).take_while(|(a, b)| a == b).count();
            self.shared = self.shared.min(common);
        }
        self.listed += 1;
        Ok(())
    }

    /// Sorts by bytes and drops duplicates. Comparing ids means reading them from all over
    /// the blocks (a cache miss each for a million ids), so each entry first carries four
    /// bytes of its id past the prefix all ids share, zero-padded: entries whose keys
    /// differ are ordered without touching the blocks (zero padding keeps key order
    /// consistent with byte order), and only equal keys compare whole ids.
    fn seal(&mut self) {
        let blocks = &self.blocks;
        let shared = self.shared;
        for entry in &mut self.refs {
            let id = bytes(blocks, *entry as u32);
            let mut key = [0u8; 4];
            for (k, b) in key.iter_mut().zip(id.iter().skip(shared)) {
                *k = *b;
            }
            *entry = (u64::from(u32::from_be_bytes(key)) << 32) | (*entry & 0xffff_ffff);
        }
        let id = |entry: u64| bytes(blocks, entry as u32);
        self.refs.sort_unstable_by(|a, b| (a >> 32).cmp(&(b >> 32)).then_with(|| id(*a).cmp(id(*b))));
        self.refs.dedup_by(|a, b| *a >> 32 == *b >> 32 && id(*a) == id(*b));
        self.refs.shrink_to_fit();
        self.first = Vec::new();
    }

    /// The distinct ids in byte order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        // Pushed as `&str`: always UTF-8.
        self.refs.iter().map(|r| std::str::from_utf8(bytes(&self.blocks, *r as u32)).unwrap_or_default())
    }

    /// Distinct ids.
    pub fn len(&self) -> usize {
        self.refs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.refs.is_empty()
    }

    /// Ids as the list held them, duplicates included (what `revoked_count` has always said).
    pub fn listed(&self) -> usize {
        self.listed
    }

    pub fn contains(&self, id: &str) -> bool {
        self.refs.binary_search_by(|r| bytes(&self.blocks, *r as u32).cmp(id.as_bytes())).is_ok()
    }
}

/// The bytes of the id `r` refers to (empty for a reference `push` did not make).
fn bytes(blocks: &[Vec<u8>], r: u32) -> &[u8] {
    let Some(block) = blocks.get((r >> OFFSET_BITS) as usize) else {
        return &[];
    };
    let mut at = (r & ((1 << OFFSET_BITS) - 1)) as usize;
    let (mut len, mut shift) = (0usize, 0u32);
    while let Some(&b) = block.get(at) {
        at += 1;
        len |= usize::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
        shift += 7;
        if b & 0x80 == 0 {
            break;
        }
    }
    at.checked_add(len).and_then(|end| block.get(at..end)).unwrap_or_default()
}

impl PartialEq for RevokedIds {
    fn eq(&self, other: &RevokedIds) -> bool {
        self.listed == other.listed && self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for RevokedIds {}

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
    fn a_shared_prefix_short_ids_and_nul_bytes_sort_as_bytes() {
        let mut ids: Vec<String> = ["P-00", "P-000", "P-000\0", "P-0001", "P-0000\0\0", "P-0000", "P-000\0\0\0\0\0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut x: u32 = 7;
        for _ in 0..5000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let len = 2 + (x >> 16) as usize % 9;
            ids.push(format!("P-{}", &format!("{:09}", x % 1_000_000_000)[..len.min(9)]));
        }
        let set = RevokedIds::from_ids(ids.iter().map(String::as_str)).unwrap();
        let mut want = ids.clone();
        want.sort();
        want.dedup();
        assert!(set.iter().eq(want.iter().map(String::as_str)));
        assert!(want.iter().all(|id| set.contains(id)) && !set.contains("P-") && !set.contains("Q"));
    }

    #[test]
    fn many_and_long_ids_across_blocks() {
        let long = "x".repeat(BLOCK + 5);
        let mut ids: Vec<String> = (0..200_000).rev().map(|i| format!("id-{i:07}")).collect();
        ids.push(long.clone());
        ids.push("y".repeat(300));
        ids.push("id-0000007".into());
        let set = RevokedIds::from_ids(ids.iter().map(String::as_str)).unwrap();
        assert_eq!((set.len(), set.listed()), (200_002, 200_003));
        let mut want = ids.clone();
        want.sort();
        want.dedup();
        assert!(set.iter().eq(want.iter().map(String::as_str)));
        assert!(set.contains(&long) && set.contains("id-0199999") && !set.contains("id-0200000"));
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
