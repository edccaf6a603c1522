//! Any byte stream, cut into reads at fuzzer-chosen points and times, through the plain
//! and the SSI decoder: never a panic, never a frame over the maximum.
#![no_main]

use libfuzzer_sys::fuzz_target;
use redeemd::scanner::decoder::{Decoder, Event};
use redeemd::scanner::profile;

fuzz_target!(|data: &[u8]| {
    for id in ["generic-serial", "zebra-ds4608-ssi"] {
        let p = profile::find(id).unwrap();
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
