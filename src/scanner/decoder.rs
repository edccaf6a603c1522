//! The frame decoder: a pure, incremental state machine from scanner bytes to frames.
//! Bytes go in with the monotonic time they arrived (`now_ms`); [`Event`]s come out:
//! frames with their AIM id split off, discards with a reason, and bytes to send back
//! (SSI ACK/NAK). [`Decoder::tick`] abandons a partial frame after the gap timeout.
//!
//! It reads no clock and touches no port, so every fault can be replayed in a unit test.
//! Frame text is never trimmed.

use super::profile::{AimMode, Framing, Protocol, Terminator};
use super::ssi;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Frame {
        text: String,
        aim: Option<String>,
        bytes: usize,
    },
    Discarded {
        reason: DiscardReason,
        bytes: usize,
    },
    /// Bytes the host must write to the scanner now (SSI handshake).
    Send(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscardReason {
    TooLong,
    NotUtf8,
    Symbology,
    Incomplete,
    Checksum,
    Duplicate,
}

impl DiscardReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DiscardReason::TooLong => "too_long",
            DiscardReason::NotUtf8 => "not_utf8",
            DiscardReason::Symbology => "symbology",
            DiscardReason::Incomplete => "incomplete",
            DiscardReason::Checksum => "checksum",
            DiscardReason::Duplicate => "duplicate",
        }
    }
}

/// Counters since the decoder was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub frames: u64,
    pub too_long: u64,
    pub not_utf8: u64,
    pub symbology: u64,
    pub incomplete: u64,
    pub checksum: u64,
    pub duplicate: u64,
}

pub struct Decoder {
    framing: Framing,
    /// The frame (plain) or packet (SSI) being collected.
    buf: Vec<u8>,
    /// Plain: bytes dropped since the frame outgrew `max_frame`, until its terminator.
    overflow: usize,
    /// Plain: the last byte was a CR (an LF right after it is the same terminator).
    after_cr: bool,
    /// SSI: bytes that could not start a packet, reported together.
    noise: usize,
    /// SSI: a DECODE_DATA message spread over continued packets.
    message: Vec<u8>,
    message_type: Option<u8>,
    message_oversized: bool,
    last_byte_ms: u64,
    last_delivered: Option<(String, u64)>,
    stats: Stats,
}

impl Decoder {
    pub fn new(framing: &Framing) -> Decoder {
        Decoder {
            framing: framing.clone(),
            buf: Vec::with_capacity(framing.max_frame.min(4096) + 8),
            overflow: 0,
            after_cr: false,
            noise: 0,
            message: Vec::new(),
            message_type: None,
            message_oversized: false,
            last_byte_ms: 0,
            last_delivered: None,
            stats: Stats::default(),
        }
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Makes the next read of `text` a new scan rather than a duplicate, if `text` was the
    /// last frame delivered. For a frame the host did not take (no checkout was open): the
    /// cashier heard a bad-read and scans again at once, and silence would then say nothing.
    /// A later, different frame is left alone: its own duplicate window still holds.
    pub fn forget(&mut self, text: &str) {
        if self.last_delivered.as_ref().is_some_and(|(last, _)| last == text) {
            self.last_delivered = None;
        }
    }

    /// True while part of a frame is waiting for more bytes.
    pub fn is_partial(&self) -> bool {
        !self.buf.is_empty() || self.overflow > 0 || self.noise > 0 || self.message_type.is_some()
    }

    /// Feeds bytes that arrived at `now_ms`.
    pub fn push(&mut self, bytes: &[u8], now_ms: u64, out: &mut Vec<Event>) {
        self.tick(now_ms, out);
        if bytes.is_empty() {
            return;
        }
        self.last_byte_ms = now_ms;
        match self.framing.protocol {
            Protocol::Plain => self.plain_bytes(bytes, now_ms, out),
            Protocol::ZebraSsi => {
                for &b in bytes {
                    self.ssi_byte(b, now_ms, out);
                }
            }
        }
    }

    /// Ends a partial frame that has waited `gap_timeout_ms` without a byte: abandoned as
    /// `incomplete`, or delivered when the profile has no terminator.
    pub fn tick(&mut self, now_ms: u64, out: &mut Vec<Event>) {
        if !self.is_partial() || now_ms < self.last_byte_ms + self.framing.gap_timeout_ms {
            return;
        }
        self.after_cr = false;
        match self.framing.protocol {
            Protocol::Plain if self.framing.terminator == Terminator::None => self.end_plain_frame(now_ms, out),
            Protocol::Plain => {
                let bytes = self.buf.len() + self.overflow;
                self.buf.clear();
                self.overflow = 0;
                self.discard(DiscardReason::Incomplete, bytes, out);
            }
            Protocol::ZebraSsi => {
                self.flush_noise(out);
                let bytes = self.buf.len() + self.message.len();
                if bytes > 0 || self.message_type.is_some() {
                    self.buf.clear();
                    self.reset_message();
                    self.discard(DiscardReason::Incomplete, bytes, out);
                }
            }
        }
    }

    fn discard(&mut self, reason: DiscardReason, bytes: usize, out: &mut Vec<Event>) {
        let counter = match reason {
            DiscardReason::TooLong => &mut self.stats.too_long,
            DiscardReason::NotUtf8 => &mut self.stats.not_utf8,
            DiscardReason::Symbology => &mut self.stats.symbology,
            DiscardReason::Incomplete => &mut self.stats.incomplete,
            DiscardReason::Checksum => &mut self.stats.checksum,
            DiscardReason::Duplicate => &mut self.stats.duplicate,
        };
        *counter += 1;
        out.push(Event::Discarded { reason, bytes });
    }

    // ---------------------------------------------------------------- plain

    fn is_terminator(&self, b: u8) -> bool {
        match self.framing.terminator {
            Terminator::Cr => b == b'\r',
            Terminator::Lf => b == b'\n',
            Terminator::Etx => b == 0x03,
            Terminator::None => false,
            Terminator::CrLf | Terminator::AnyEol => b == b'\r' || b == b'\n',
        }
    }

    /// Copies runs of data in bulk and handles each terminator.
    fn plain_bytes(&mut self, mut rest: &[u8], now_ms: u64, out: &mut Vec<Event>) {
        while let Some(&first) = rest.first() {
            // The LF of a CR LF whose CR ended the frame: part of that terminator.
            if std::mem::take(&mut self.after_cr) && first == b'\n' {
                rest = &rest[1..];
                continue;
            }
            let end = rest.iter().position(|&b| self.is_terminator(b));
            let data = &rest[..end.unwrap_or(rest.len())];
            let room = self.framing.max_frame - self.buf.len();
            if data.len() <= room {
                self.buf.extend_from_slice(data);
            } else {
                // Too long: drop up to the next terminator, reported once for the frame.
                self.buf.extend_from_slice(&data[..room]);
                self.overflow += data.len() - room;
            }
            let Some(end) = end else {
                return;
            };
            self.after_cr = rest[end] == b'\r';
            self.end_plain_frame(now_ms, out);
            rest = &rest[end + 1..];
        }
    }

    fn end_plain_frame(&mut self, now_ms: u64, out: &mut Vec<Event>) {
        if self.overflow > 0 {
            let bytes = self.buf.len() + self.overflow;
            self.buf.clear();
            self.overflow = 0;
            self.discard(DiscardReason::TooLong, bytes, out);
            return;
        }
        if self.buf.is_empty() {
            return;
        }
        let frame = std::mem::take(&mut self.buf);
        let bytes = frame.len();
        let body = frame.strip_prefix(self.framing.prefix.as_slice()).filter(|_| !self.framing.prefix.is_empty());
        let body = body.unwrap_or(&frame);
        self.deliver(body, bytes, None, now_ms, out);
        self.buf = frame;
        self.buf.clear();
    }

    /// Checks text, AIM id, symbology and duplicates, then emits the frame.
    fn deliver(&mut self, body: &[u8], bytes: usize, ssi_type: Option<u8>, now_ms: u64, out: &mut Vec<Event>) {
        let Ok(text) = std::str::from_utf8(body) else {
            return self.discard(DiscardReason::NotUtf8, bytes, out);
        };
        if text.chars().any(|c| c.is_control()) {
            // Control bytes are never part of a coupon code: line noise or a wrong profile.
            return self.discard(DiscardReason::NotUtf8, bytes, out);
        }
        let (aim, text) = match self.framing.aim {
            AimMode::Absent => (None, text),
            mode => match text.get(..3).filter(|a| a.starts_with(']')) {
                Some(aim) => {
                    if !self.framing.accept_aim.iter().any(|a| a == aim) {
                        return self.discard(DiscardReason::Symbology, bytes, out);
                    }
                    (Some(aim.to_owned()), &text[3..])
                }
                None if mode == AimMode::Required => return self.discard(DiscardReason::Symbology, bytes, out),
                None => (None, text),
            },
        };
        if let Some(t) = ssi_type {
            if !self.framing.accept_ssi_types.contains(&t) {
                return self.discard(DiscardReason::Symbology, bytes, out);
            }
        }
        if text.is_empty() {
            return self.discard(DiscardReason::Incomplete, bytes, out);
        }
        let window = self.framing.duplicate_window_ms;
        if let Some((last, at)) = &self.last_delivered {
            if last == text && now_ms.saturating_sub(*at) < window {
                return self.discard(DiscardReason::Duplicate, bytes, out);
            }
        }
        self.last_delivered = Some((text.to_owned(), now_ms));
        self.stats.frames += 1;
        out.push(Event::Frame { text: text.to_owned(), aim, bytes });
    }

    // ---------------------------------------------------------------- SSI

    fn flush_noise(&mut self, out: &mut Vec<Event>) {
        if self.noise > 0 {
            let bytes = std::mem::take(&mut self.noise);
            self.discard(DiscardReason::Checksum, bytes, out);
        }
    }

    fn reset_message(&mut self) {
        self.message.clear();
        self.message_type = None;
        self.message_oversized = false;
    }

    fn ssi_byte(&mut self, b: u8, now_ms: u64, out: &mut Vec<Event>) {
        if self.buf.is_empty() {
            if b < ssi::MIN_LENGTH {
                self.noise += 1; // cannot start a packet
                return;
            }
            self.flush_noise(out);
        }
        self.buf.push(b);
        let total = usize::from(self.buf[0]) + 2;
        if self.buf.len() < total {
            return;
        }
        let packet = std::mem::take(&mut self.buf);
        if !ssi::verify(&packet) {
            self.discard(DiscardReason::Checksum, packet.len(), out);
            if self.framing.ssi_ack {
                out.push(Event::Send(ssi::host_nak_resend()));
            }
            return;
        }
        let (opcode, status) = (packet[1], packet[3]);
        if opcode == ssi::OP_CMD_ACK || opcode == ssi::OP_CMD_NAK {
            return; // the scanner answering one of our commands
        }
        if self.framing.ssi_ack {
            out.push(Event::Send(ssi::host_ack()));
        }
        if opcode != ssi::OP_DECODE_DATA {
            return;
        }
        let data = &packet[4..packet.len() - 2];
        let Some((&barcode_type, payload)) = data.split_first() else {
            return self.discard(DiscardReason::Incomplete, packet.len(), out);
        };
        if self.message_type.is_some_and(|t| t != barcode_type) {
            // A new message while one was unfinished: the old one is lost.
            let bytes = self.message.len();
            self.reset_message();
            self.discard(DiscardReason::Incomplete, bytes, out);
        }
        self.message_type = Some(barcode_type);
        if self.message.len() + payload.len() > self.framing.max_frame {
            self.message_oversized = true;
        }
        if !self.message_oversized {
            self.message.extend_from_slice(payload);
        }
        if status & ssi::STATUS_CONTINUATION != 0 {
            return;
        }
        let message = std::mem::take(&mut self.message);
        let oversized = self.message_oversized;
        self.reset_message();
        if oversized {
            return self.discard(DiscardReason::TooLong, message.len(), out);
        }
        self.deliver(&message, message.len(), Some(barcode_type), now_ms, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scanner::profile;
    use proptest::prelude::*;
    use DiscardReason::*;

    fn frame(text: &str, aim: Option<&str>) -> Event {
        let bytes = text.len() + aim.map_or(0, str::len);
        Event::Frame { text: text.into(), aim: aim.map(Into::into), bytes }
    }

    fn dropped(reason: DiscardReason, bytes: usize) -> Event {
        Event::Discarded { reason, bytes }
    }

    /// Feeds `(bytes, at_ms)` chunks to a decoder for `profile`, ticking at `end_ms`,
    /// and compares every event.
    fn check(profile: &str, chunks: &[(&[u8], u64)], end_ms: u64, expected: &[Event]) {
        let p = profile::find(profile).unwrap();
        check_framing(&p.framing, chunks, end_ms, expected);
    }

    fn check_framing(framing: &Framing, chunks: &[(&[u8], u64)], end_ms: u64, expected: &[Event]) {
        let mut d = Decoder::new(framing);
        let mut out = Vec::new();
        for (bytes, at) in chunks {
            d.push(bytes, *at, &mut out);
        }
        d.tick(end_ms, &mut out);
        assert_eq!(out, expected, "chunks {chunks:?}");
    }

    #[test]
    fn plain_terminators() {
        let g = "generic-serial";
        check(g, &[(b"CP1:ABC\r", 0)], 10, &[frame("CP1:ABC", None)]);
        check(g, &[(b"CP1:ABC\r\n", 0)], 10, &[frame("CP1:ABC", None)]);
        check(g, &[(b"CP1:ABC\n", 0)], 10, &[frame("CP1:ABC", None)]);
        // a lone LF after a CR, even in the next read, is never an empty frame
        check(g, &[(b"CP1:A\r", 0), (b"\n", 5), (b"CP1:B\n", 10)], 20, &[frame("CP1:A", None), frame("CP1:B", None)]);
        // several frames in one read, and split reads
        check(
            g,
            &[(b"CP1:A\rCP1:B\r\nCP1:C\n", 0)],
            10,
            &[frame("CP1:A", None), frame("CP1:B", None), frame("CP1:C", None)],
        );
        check(g, &[(b"CP", 0), (b"1:A", 10), (b"BC", 20), (b"\r", 30)], 40, &[frame("CP1:ABC", None)]);
        // spaces are base45: never trimmed
        check(g, &[(b" CP1:A B \r", 0)], 10, &[frame(" CP1:A B ", None)]);
        // empty lines are nothing at all
        check(g, &[(b"\r\n\r\n\n\r", 0)], 10, &[]);
    }

    #[test]
    fn etx_and_stx_prefix() {
        let mut f = profile::find("generic-serial").unwrap().framing;
        f.terminator = Terminator::Etx;
        f.prefix = vec![0x02];
        check_framing(
            &f,
            &[(b"\x02CP1:A\x03\x02CP1:B\x03", 0)],
            10,
            &[
                Event::Frame { text: "CP1:A".into(), aim: None, bytes: 6 },
                Event::Frame { text: "CP1:B".into(), aim: None, bytes: 6 },
            ],
        );
    }

    #[test]
    fn no_terminator_ends_on_the_gap() {
        let mut f = profile::find("generic-serial").unwrap().framing;
        f.terminator = Terminator::None;
        check_framing(&f, &[(b"CP1:A", 0), (b"BC", 100)], 399, &[]);
        check_framing(&f, &[(b"CP1:A", 0), (b"BC", 100)], 400, &[frame("CP1:ABC", None)]);
        check_framing(&f, &[(b"CP1:A", 0), (b"CP1:B", 400)], 800, &[frame("CP1:A", None), frame("CP1:B", None)]);
    }

    #[test]
    fn aim_ids() {
        let g = "generic-serial";
        check(g, &[(b"]Q1CP1:A\r", 0)], 10, &[frame("CP1:A", Some("]Q1"))]);
        check(g, &[(b"]Q6CP1:A\r", 0)], 10, &[frame("CP1:A", Some("]Q6"))]);
        check(g, &[(b"]E00012345678905\r", 0)], 10, &[dropped(Symbology, 16)]);
        check(g, &[(b"]Q7CP1:A\r", 0)], 10, &[dropped(Symbology, 8)]);
        let mut f = profile::find(g).unwrap().framing;
        f.aim = AimMode::Required;
        check_framing(&f, &[(b"CP1:A\r", 0)], 10, &[dropped(Symbology, 5)]);
        f.aim = AimMode::Absent;
        check_framing(&f, &[(b"]Q1CP1:A\r", 0)], 10, &[frame("]Q1CP1:A", None)]);
    }

    #[test]
    fn faults() {
        let g = "generic-serial";
        // over-long: dropped up to the next terminator, once, then decoding resumes
        let long = vec![b'A'; 5000];
        check(g, &[(&long, 0), (b"\rCP1:OK\r", 1)], 10, &[dropped(TooLong, 5000), frame("CP1:OK", None)]);
        let exactly = vec![b'B'; 4096];
        let mut want = exactly.clone();
        want.push(b'\r');
        check(g, &[(&want, 0)], 10, &[Event::Frame { text: "B".repeat(4096), aim: None, bytes: 4096 }]);
        // not UTF-8, control bytes
        check(g, &[(b"CP1:\xff\xfe\r", 0)], 10, &[dropped(NotUtf8, 6)]);
        check(g, &[(b"CP1:\x00A\r", 0)], 10, &[dropped(NotUtf8, 6)]);
        check(g, &[(b"\x1b[2J\r", 0)], 10, &[dropped(NotUtf8, 4)]);
        // a partial frame is abandoned after the gap, never glued to the next
        check(g, &[(b"CP1:HALF", 0), (b"CP1:NEXT\r", 300)], 310, &[dropped(Incomplete, 8), frame("CP1:NEXT", None)]);
        check(g, &[(b"CP1:HALF", 0), (b"MORE\r", 299)], 310, &[frame("CP1:HALFMORE", None)]);
        check(g, &[(b"CP1:HALF", 0)], 299, &[]);
        check(g, &[(b"CP1:HALF", 0)], 300, &[dropped(Incomplete, 8)]);
        // duplicates within 1.5 s, measured from the last delivery
        check(g, &[(b"CP1:A\r", 0), (b"CP1:A\r", 1499)], 1500, &[frame("CP1:A", None), dropped(Duplicate, 5)]);
        check(g, &[(b"CP1:A\r", 0), (b"CP1:A\r", 1500)], 1600, &[frame("CP1:A", None), frame("CP1:A", None)]);
        check(
            g,
            &[(b"CP1:A\rCP1:B\rCP1:A\r", 0)],
            10,
            &[frame("CP1:A", None), frame("CP1:B", None), frame("CP1:A", None)],
        );
    }

    #[test]
    fn a_forgotten_frame_is_delivered_again_inside_the_window() {
        let p = profile::find("generic-serial").unwrap();
        let mut d = Decoder::new(&p.framing);
        let mut out = Vec::new();
        d.push(b"CP1:A\r", 0, &mut out);
        d.forget("CP1:A");
        d.push(b"CP1:A\r", 100, &mut out);
        // Forgetting another text, or one no longer the last, changes nothing.
        d.forget("CP1:B");
        d.push(b"CP1:A\r", 200, &mut out);
        d.push(b"CP1:B\r", 300, &mut out);
        d.forget("CP1:A");
        d.push(b"CP1:B\r", 400, &mut out);
        assert_eq!(
            out,
            [
                frame("CP1:A", None),
                frame("CP1:A", None),
                dropped(Duplicate, 5),
                frame("CP1:B", None),
                dropped(Duplicate, 5)
            ]
        );
    }

    #[test]
    fn discards_are_counted() {
        let p = profile::find("generic-serial").unwrap();
        let mut d = Decoder::new(&p.framing);
        let mut out = Vec::new();
        d.push(&[b'X'; 5000], 0, &mut out);
        d.push(b"\r\xff\r]E0123\rCP1:OK\rCP1:OK\rHALF", 1, &mut out);
        d.tick(1000, &mut out);
        let s = d.stats();
        assert_eq!((s.too_long, s.not_utf8, s.symbology, s.frames, s.duplicate, s.incomplete), (1, 1, 1, 1, 1, 1));
    }

    fn ssi_stream(payload: &[u8], chunk: usize) -> Vec<u8> {
        ssi::decode_data_packets(0x1C, payload, chunk).concat()
    }

    #[test]
    fn zebra_ssi() {
        let z = "zebra-ds4608-ssi";
        let ack = Event::Send(ssi::host_ack());
        let nak = Event::Send(ssi::host_nak_resend());
        let one = ssi_stream(b"CP1:ABC", 250);
        check(z, &[(&one, 0)], 10, &[ack.clone(), frame("CP1:ABC", None)]);
        // multi-packet DECODE_DATA, split arbitrarily across reads
        let code = "CP1:".to_owned() + &"X".repeat(600);
        let multi = ssi_stream(code.as_bytes(), 250);
        let (a, b) = multi.split_at(333);
        check(
            z,
            &[(a, 0), (b, 5)],
            10,
            &[ack.clone(), ack.clone(), ack.clone(), Event::Frame { text: code.clone(), aim: None, bytes: 604 }],
        );
        // a bad checksum is NAKed and dropped; the resend is accepted
        let mut bad = one.clone();
        bad[6] ^= 0x20;
        check(
            z,
            &[(&bad, 0), (&one, 5)],
            10,
            &[dropped(Checksum, one.len()), nak, ack.clone(), frame("CP1:ABC", None)],
        );
        // another symbology
        let ean = ssi::decode_data_packets(0x0B, b"0012345678905", 250).concat();
        check(z, &[(&ean, 0)], 10, &[ack.clone(), dropped(Symbology, 13)]);
        // noise before a packet, and a packet cut short
        let mut noisy = vec![0x00, 0x01, 0x02];
        noisy.extend_from_slice(&one);
        check(z, &[(&noisy, 0)], 10, &[dropped(Checksum, 3), ack.clone(), frame("CP1:ABC", None)]);
        check(z, &[(&one[..5], 0)], 200, &[dropped(Incomplete, 5)]);
        // the scanner's own ACK to our command is not a frame and is not ACKed
        check(z, &[(&ssi::packet(ssi::OP_CMD_ACK, ssi::SOURCE_DECODER, 0, &[]), 0)], 10, &[]);
    }

    proptest! {
        #[test]
        fn no_byte_stream_panics_or_yields_a_frame_over_the_maximum(
            chunks in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..600), 0u64..700), 0..12),
            ssi in any::<bool>(),
        ) {
            let p = profile::find(if ssi { "zebra-ds4608-ssi" } else { "generic-serial" }).unwrap();
            let mut d = Decoder::new(&p.framing);
            let mut out = Vec::new();
            let mut now = 0;
            for (bytes, gap) in chunks {
                now += gap;
                d.push(&bytes, now, &mut out);
            }
            d.tick(now + 10_000, &mut out);
            prop_assert!(!d.is_partial());
            for e in out {
                if let Event::Frame { text, bytes, .. } = e {
                    prop_assert!(text.len() <= p.framing.max_frame && bytes <= p.framing.max_frame);
                }
            }
        }
    }
}
