//! Helpers shared by the integration tests: vector paths, hex, time, and the check that
//! the committed copy of the vectors equals `../shared/vectors` where that exists.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The committed copy, so a clone outside the workplace runs the same cases.
pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

/// `../shared/vectors`, when this checkout sits in the workplace.
pub fn shared_vectors_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors");
    dir.is_dir().then_some(dir)
}

/// Fails when a file of the copy under `sub` differs from (or is missing in) the shared one.
pub fn assert_copy_matches_shared(sub: &str) {
    let Some(shared) = shared_vectors_dir() else {
        eprintln!("../shared/vectors not present: testing the committed copy only");
        return;
    };
    let mut compared = 0;
    let mut stack = vec![shared.join(sub)];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_some_and(|e| e == "md") {
                continue; // prose, not data
            }
            let rel = path.strip_prefix(&shared).unwrap();
            let copy = vectors_dir().join(rel);
            let want = std::fs::read(&path).unwrap();
            let got = std::fs::read(&copy).unwrap_or_else(|_| {
                panic!("{} is missing from tests/vectors; copy it from {}", rel.display(), path.display())
            });
            assert!(
                got == want,
                "tests/vectors/{} differs from {}; copy the shared file again",
                rel.display(),
                path.display()
            );
            compared += 1;
        }
    }
    assert!(compared > 0, "no vector files compared");
}

pub fn hex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

pub fn ts(text: &str) -> jiff::Timestamp {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}
