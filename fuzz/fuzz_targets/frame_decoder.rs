//! Any byte stream, cut into reads at fuzzer-chosen points and times, through the plain
//! and the SSI decoder: never a panic, never a frame over the maximum.
#![no_main]

use libfuzzer_sys::fuzz_target;
use redeemd::scanner::decoder::{Decoder, Event};
use redeemd::scanner::profile::{self, Profile};
use std::sync::OnceLock;

/// Parsed once: parsing the profiles' TOML per input made this target about 1,000 execs/s.
fn profiles() -> &'static [Profile] {
    static PROFILES: OnceLock<Vec<Profile>> = OnceLock::new();
    PROFILES.get_or_init(|| ["generic-serial", "zebra-ds4608-ssi"].map(|id| profile::find(id).unwrap()).into())
}

fuzz_target!(|data: &[u8]| {
    for p in profiles() {
        let mut d = Decoder::new(&p.framing);
        let mut out = Vec::new();
        let mut now = 0u64;
        let mut rest = data;
        while let Some((&control, tail)) = rest.split_first() {
            let take = usize::from(control % 64).min(tail.len());
            now += u64::from(control >> 6) * 150;
            d.push(&tail[..take], now, &mut out);
            rest = &tail[take..];
        }
        d.tick(now + 60_000, &mut out);
        assert!(!d.is_partial());
        for e in out {
            if let Event::Frame { text, .. } = e {
                assert!(text.len() <= p.framing.max_frame);
            }
        }
    }
});
