//! Zebra SSI packets (Simple Serial Interface): `Length | Opcode | Source | Status |
//! Data | Checksum`, where Length counts everything but the 2-byte checksum and the
//! checksum is the 2's complement of the byte sum, high byte first.
//!
//! Building and checking packets only; the incremental parsing lives in the decoder.

pub const OP_CMD_ACK: u8 = 0xD0;
pub const OP_CMD_NAK: u8 = 0xD1;
pub const OP_DECODE_DATA: u8 = 0xF3;
pub const OP_BEEP: u8 = 0xE6;
pub const OP_START_DECODE: u8 = 0xE4;
pub const OP_STOP_DECODE: u8 = 0xE5;

/// Message source: the decoder (scanner) or the host.
pub const SOURCE_DECODER: u8 = 0x00;
pub const SOURCE_HOST: u8 = 0x04;

/// Status bits.
pub const STATUS_RETRANSMIT: u8 = 0x01;
pub const STATUS_CONTINUATION: u8 = 0x02;

/// NAK causes.
pub const NAK_RESEND: u8 = 0x01;

/// Smallest packet: Length, Opcode, Source, Status.
pub const MIN_LENGTH: u8 = 4;

/// The 2's complement of the sum of `bytes`.
pub fn checksum(bytes: &[u8]) -> u16 {
    let sum = bytes.iter().fold(0u16, |acc, &b| acc.wrapping_add(u16::from(b)));
    0u16.wrapping_sub(sum)
}

/// True when the last two bytes of `packet` are the checksum of the rest.
pub fn verify(packet: &[u8]) -> bool {
    match packet.len().checked_sub(2) {
        Some(body) if body >= MIN_LENGTH as usize => {
            let want = u16::from_be_bytes([packet[body], packet[body + 1]]);
            checksum(&packet[..body]) == want
        }
        _ => false,
    }
}

/// A whole packet with its length and checksum. `data` must leave the length ≤ 255.
pub fn packet(opcode: u8, source: u8, status: u8, data: &[u8]) -> Vec<u8> {
    let length = u8::try_from(4 + data.len()).expect("SSI packet data longer than 251 bytes");
    let mut out = Vec::with_capacity(usize::from(length) + 2);
    out.extend_from_slice(&[length, opcode, source, status]);
    out.extend_from_slice(data);
    out.extend_from_slice(&checksum(&out).to_be_bytes());
    out
}

/// The host's CMD_ACK.
pub fn host_ack() -> Vec<u8> {
    packet(OP_CMD_ACK, SOURCE_HOST, 0, &[])
}

/// The host's CMD_NAK asking for a resend.
pub fn host_nak_resend() -> Vec<u8> {
    packet(OP_CMD_NAK, SOURCE_HOST, 0, &[NAK_RESEND])
}

/// DECODE_DATA packets as a scanner sends them: the payload split into chunks of at most
/// `chunk` bytes, each packet carrying the barcode type and, but for the last, the
/// continuation bit. Used by the emulator and the tests.
pub fn decode_data_packets(barcode_type: u8, payload: &[u8], chunk: usize) -> Vec<Vec<u8>> {
    let chunk = chunk.clamp(1, 250);
    let pieces: Vec<&[u8]> = if payload.is_empty() { vec![&[][..]] } else { payload.chunks(chunk).collect() };
    let last = pieces.len() - 1;
    pieces
        .iter()
        .enumerate()
        .map(|(i, piece)| {
            let status = if i < last { STATUS_CONTINUATION } else { 0 };
            let mut data = Vec::with_capacity(piece.len() + 1);
            data.push(barcode_type);
            data.extend_from_slice(piece);
            packet(OP_DECODE_DATA, SOURCE_DECODER, status, &data)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scanner::profile::parse_hex;

    /// Frames from `../shared/reference/scanners.md`: vendor (DS8108 PRG), public C code,
    /// and the ones computed there with the same rule.
    #[test]
    fn matches_the_reference_examples() {
        for (hex, opcode, data) in [
            ("04 D0 04 00 FF 28", OP_CMD_ACK, &[][..]),
            ("05 D1 04 00 01 FF 25", OP_CMD_NAK, &[0x01][..]),
            ("05 D1 04 00 02 FF 24", OP_CMD_NAK, &[0x02][..]),
            ("05 D1 04 00 06 FF 20", OP_CMD_NAK, &[0x06][..]),
            ("05 E7 04 00 01 FF 0F", 0xE7, &[0x01][..]),
            ("04 A3 04 00 FF 55", 0xA3, &[][..]),
            ("04 E4 04 00 FF 14", OP_START_DECODE, &[][..]),
            ("04 E5 04 00 FF 13", OP_STOP_DECODE, &[][..]),
            ("04 E9 04 00 FF 0F", 0xE9, &[][..]),
            ("04 EA 04 00 FF 0E", 0xEA, &[][..]),
        ] {
            let want = parse_hex(hex).unwrap();
            assert_eq!(packet(opcode, SOURCE_HOST, 0, data), want, "{hex}");
            assert!(verify(&want), "{hex}");
        }
        // DS8108 PRG worked example: 0A 80 04 00 00 06 20 00 FF FF has checksum FD 4E.
        let body = parse_hex("0A 80 04 00 00 06 20 00 FF FF").unwrap();
        assert_eq!(checksum(&body), 0xFD4E);
        assert_eq!(host_ack(), parse_hex("04 D0 04 00 FF 28").unwrap());
        assert_eq!(host_nak_resend(), parse_hex("05 D1 04 00 01 FF 25").unwrap());
    }

    #[test]
    fn a_flipped_byte_fails_the_checksum() {
        let mut p = packet(OP_DECODE_DATA, SOURCE_DECODER, 0, b"\x1cCP1:ABC");
        assert!(verify(&p));
        p[6] ^= 0x01;
        assert!(!verify(&p));
        assert!(!verify(&[0x04, 0xD0]));
    }

    #[test]
    fn long_payloads_are_split_with_continuation() {
        let payload = vec![b'A'; 600];
        let packets = decode_data_packets(0x1C, &payload, 250);
        assert_eq!(packets.len(), 3);
        assert!(packets.iter().all(|p| verify(p)));
        assert_eq!(packets[0][3] & STATUS_CONTINUATION, STATUS_CONTINUATION);
        assert_eq!(packets[2][3] & STATUS_CONTINUATION, 0);
    }
}
