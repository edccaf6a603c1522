//! JWS compact text read in pieces: where its three parts are, the signing input fed to a
//! signature check chunk by chunk, and the payload base64url-decoded on the fly for a
//! streaming JSON parser. A 25 MB rule set is then never held decoded, and the one the
//! ledger stores is never held at all (`ruleset show`, the daemon's start-up proof).
//!
//! It knows the envelope only: what the header must say, which key is trusted and what
//! the payload means belong to [`crate::ruleset`].

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::DeserializeOwned;
use std::io::{self, BufReader, Read};
use std::ops::Range;

/// Bytes read at a time; a multiple of 4, so every piece but the last decodes alone.
pub const CHUNK: usize = 64 * 1024;

/// Where a JWS's bytes come from: memory (an import) or the ledger (the stored text).
pub trait JwsSource {
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills `buf` with the bytes from `offset`.
    fn read_at(&self, offset: usize, buf: &mut [u8]) -> io::Result<()>;
}

impl JwsSource for &[u8] {
    fn len(&self) -> usize {
        <[u8]>::len(self)
    }

    fn read_at(&self, offset: usize, buf: &mut [u8]) -> io::Result<()> {
        let piece = offset
            .checked_add(buf.len())
            .and_then(|end| self.get(offset..end))
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        buf.copy_from_slice(piece);
        Ok(())
    }
}

/// The byte ranges of `header.payload.signature`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts {
    pub header: Range<usize>,
    pub payload: Range<usize>,
    pub signature: Range<usize>,
}

impl Parts {
    /// The signing input: `header.payload`.
    pub fn signing_input(&self) -> Range<usize> {
        self.header.start..self.payload.end
    }
}

/// Finds the parts; `None` unless the text has exactly two dots.
pub fn split(src: &dyn JwsSource) -> io::Result<Option<Parts>> {
    let mut dots = Vec::with_capacity(2);
    let mut failed = None;
    for_each_chunk(src, 0..src.len(), |at, piece| {
        for i in memchr::memchr_iter(b'.', piece) {
            if dots.len() == 2 {
                failed = Some(());
                return false;
            }
            dots.push(at + i);
        }
        true
    })?;
    Ok(match (failed, dots.as_slice()) {
        (None, [first, second]) => {
            Some(Parts { header: 0..*first, payload: first + 1..*second, signature: second + 1..src.len() })
        }
        _ => None,
    })
}

/// The bytes of `range`, whole (for the short parts: header and signature).
pub fn read(src: &dyn JwsSource, range: Range<usize>) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; range.len()];
    src.read_at(range.start, &mut buf)?;
    Ok(buf)
}

/// Calls `f(offset, piece)` for `range` in pieces of at most [`CHUNK`] bytes, until it
/// returns false.
pub fn for_each_chunk(
    src: &dyn JwsSource,
    range: Range<usize>,
    mut f: impl FnMut(usize, &[u8]) -> bool,
) -> io::Result<()> {
    let mut buf = vec![0; CHUNK.min(range.len())];
    let mut at = range.start;
    while at < range.end {
        let n = CHUNK.min(range.end - at);
        src.read_at(at, &mut buf[..n])?;
        if !f(at, &buf[..n]) {
            break;
        }
        at += n;
    }
    Ok(())
}

/// Why a payload did not parse.
#[derive(Debug)]
pub enum PayloadError {
    /// It is not base64url (unpadded, canonical), somewhere.
    Base64,
    /// It decodes, but is not the JSON expected.
    Json(serde_json::Error),
    /// The source could not be read.
    Read(io::Error),
}

/// Decodes the base64url payload in `range` and parses it as JSON, never holding more
/// than a few pieces of it. Refuses exactly what decoding the whole text and then
/// `serde_json::from_slice` refuse, with the same precedence: bad base64 anywhere wins.
pub fn parse_payload<T: DeserializeOwned>(src: &dyn JwsSource, range: Range<usize>) -> Result<T, PayloadError> {
    parse_payload_in_pieces(src, range, CHUNK)
}

/// [`parse_payload`] reading `piece` bytes at a time (rounded down to a multiple of 4, at
/// least 4): for the fuzzer and the tests, which move the piece boundaries around.
pub fn parse_payload_in_pieces<T: DeserializeOwned>(
    src: &dyn JwsSource,
    range: Range<usize>,
    piece: usize,
) -> Result<T, PayloadError> {
    let piece = (piece / 4).max(1) * 4;
    let mut reader = BufReader::with_capacity(piece, Base64Reader::new(src, range, piece));
    let parsed = serde_json::from_reader::<_, T>(&mut reader);
    let decoder = reader.get_mut();
    match parsed {
        // from_reader reads to the end (only white space may follow): every piece decoded.
        Ok(value) => Ok(value),
        Err(e) => {
            if let Some(read) = decoder.read_error.take() {
                return Err(PayloadError::Read(read));
            }
            // The parser stopped early: the rest must still be base64url, as before.
            while !decoder.invalid && decoder.refill().is_ok_and(|more| more) {}
            if let Some(read) = decoder.read_error.take() {
                return Err(PayloadError::Read(read));
            }
            Err(if decoder.invalid { PayloadError::Base64 } else { PayloadError::Json(e) })
        }
    }
}

/// The decoded bytes of a base64url range, as `Read`.
struct Base64Reader<'a> {
    src: &'a dyn JwsSource,
    piece: usize,
    next: usize,
    end: usize,
    text: Vec<u8>,
    out: Vec<u8>,
    pos: usize,
    invalid: bool,
    read_error: Option<io::Error>,
}

impl<'a> Base64Reader<'a> {
    fn new(src: &'a dyn JwsSource, range: Range<usize>, piece: usize) -> Base64Reader<'a> {
        Base64Reader {
            src,
            piece,
            next: range.start,
            end: range.end,
            text: Vec::new(),
            out: Vec::new(),
            pos: 0,
            invalid: false,
            read_error: None,
        }
    }

    /// Decodes the next piece into `out`; false at the end.
    fn refill(&mut self) -> io::Result<bool> {
        if self.next >= self.end {
            return Ok(false);
        }
        let n = self.piece.min(self.end - self.next);
        self.text.resize(n, 0);
        if let Err(e) = self.src.read_at(self.next, &mut self.text) {
            let kind = e.kind();
            self.read_error = Some(e);
            return Err(io::Error::new(kind, "the rule set could not be read"));
        }
        self.next += n;
        self.out.resize(n.div_ceil(4) * 3, 0);
        match URL_SAFE_NO_PAD.decode_slice(&self.text, &mut self.out) {
            Ok(len) => {
                self.out.truncate(len);
                self.pos = 0;
                Ok(true)
            }
            Err(_) => {
                self.invalid = true;
                self.out.clear();
                self.pos = 0;
                Err(io::Error::new(io::ErrorKind::InvalidData, "payload is not base64url"))
            }
        }
    }
}

impl Read for Base64Reader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.out.len() {
            if self.invalid {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "payload is not base64url"));
            }
            if !self.refill()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn whole<T: DeserializeOwned>(p64: &str) -> Result<T, String> {
        let bytes = URL_SAFE_NO_PAD.decode(p64).map_err(|_| "base64".to_owned())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    }

    fn streamed<T: DeserializeOwned>(p64: &str) -> Result<T, String> {
        parse_payload(&p64.as_bytes(), 0..p64.len()).map_err(|e| match e {
            PayloadError::Base64 => "base64".to_owned(),
            PayloadError::Json(e) => e.to_string(),
            PayloadError::Read(e) => format!("read: {e}"),
        })
    }

    #[test]
    fn split_finds_exactly_two_dots() {
        let parts = split(&b"ab.cde.f".as_slice()).unwrap().unwrap();
        assert_eq!(parts.signing_input(), 0..6);
        assert_eq!((parts.header, parts.payload, parts.signature), (0..2, 3..6, 7..8));
        assert_eq!(split(&b"..".as_slice()).unwrap().unwrap().payload, 1..1);
        for bad in ["", "a", "a.b", "a.b.c.d", "...."] {
            assert!(split(&bad.as_bytes()).unwrap().is_none(), "{bad}");
        }
        // A dot on each side of a piece boundary.
        let mut long = vec![b'a'; 3 * CHUNK];
        long[CHUNK - 1] = b'.';
        long[2 * CHUNK] = b'.';
        let parts = split(&long.as_slice()).unwrap().unwrap();
        assert_eq!(parts.payload, CHUNK..2 * CHUNK);
        long[5] = b'.';
        assert!(split(&long.as_slice()).unwrap().is_none());
    }

    #[test]
    fn streamed_payloads_parse_and_fail_as_whole_ones() {
        let big = serde_json::json!({"a": (0..40_000).map(|i| format!("id-{i}")).collect::<Vec<_>>()}).to_string();
        let big64 = URL_SAFE_NO_PAD.encode(big.as_bytes());
        assert!(big64.len() > 3 * CHUNK);
        let mut cases: Vec<String> = vec![
            String::new(),
            URL_SAFE_NO_PAD.encode(b"{}"),
            URL_SAFE_NO_PAD.encode(b"{\"a\": 1}  "),
            URL_SAFE_NO_PAD.encode(b"{\"a\": 1} x"),
            URL_SAFE_NO_PAD.encode(b"[1, 2"),
            URL_SAFE_NO_PAD.encode(b"\xff\xfe"),
            URL_SAFE_NO_PAD.encode(b"\"\xff\""),
            "e30=".into(), // padded
            "e30".into(),  // "{}"
            "e31".into(),  // non-canonical trailing bits
            "e".into(),    // impossible length
            "e3+".into(),  // standard alphabet
            big64.clone(),
        ];
        // Bad base64 far after a JSON error: base64 still wins, as when decoded whole.
        let mut late = URL_SAFE_NO_PAD.encode(format!("[1,,{}]", "2,".repeat(3 * CHUNK)).as_bytes());
        late.push('!');
        cases.push(late);
        // A JSON error in the middle of a long, valid payload.
        let mut broken = big.clone();
        broken.replace_range(CHUNK..CHUNK + 1, "}");
        cases.push(URL_SAFE_NO_PAD.encode(broken.as_bytes()));
        // Bad base64 in the middle piece.
        let mut mid = big64.clone();
        mid.replace_range(CHUNK + 7..CHUNK + 8, "=");
        cases.push(mid);
        for p64 in &cases {
            let want = whole::<Value>(p64);
            let got = streamed::<Value>(p64);
            assert_eq!(got, want, "{}", &p64[..p64.len().min(40)]);
            if p64.len() < 4096 {
                for piece in [4, 8, 12, 100] {
                    let got =
                        parse_payload_in_pieces::<Value>(&p64.as_bytes(), 0..p64.len(), piece).map_err(|e| match e {
                            PayloadError::Base64 => "base64".to_owned(),
                            PayloadError::Json(e) => e.to_string(),
                            PayloadError::Read(e) => format!("read: {e}"),
                        });
                    assert_eq!(got, want, "{p64} in pieces of {piece}");
                }
            }
        }
    }
}
