//! The scanner layer over real pseudo-terminals: the transport opens a link to the pty's
//! slave side exactly as it opens `/dev/serial/by-id/…`, and the emulator plays the
//! scanner on the master side — every framing variant, every fault, SSI handshakes,
//! init and feedback bytes, unplug and replug, and `redeemd scanner test` end to end.

mod common;

use common::scanner::Emulator;
use redeemd::scanner::decoder::DiscardReason;
use redeemd::scanner::profile::{self, AimMode, Profile, Terminator};
use redeemd::scanner::ssi;
use redeemd::scanner::transport::{self, PortSpec, Scanner, ScannerEvent, TransportError};
use redeemd::scanner::Feedback;
use std::time::{Duration, Instant};

struct Rig {
    _dir: tempfile::TempDir,
    emulator: Emulator,
    scanner: Scanner,
}

fn rig(profile: Profile) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let emulator = Emulator::plug(&dir.path().join("scanner"));
    let scanner = Scanner::spawn(PortSpec::Path(emulator.link().to_owned()), profile);
    wait_for(&scanner, |e| matches!(e, ScannerEvent::Connected { .. }), Duration::from_secs(3));
    Rig { _dir: dir, emulator, scanner }
}

/// Waits for an event matching `want`, failing after `timeout`; returns the events seen.
fn wait_for(scanner: &Scanner, want: impl Fn(&ScannerEvent) -> bool, timeout: Duration) -> Vec<ScannerEvent> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if let Some(e) = scanner.recv_timeout(left) {
            let done = want(&e);
            seen.push(e);
            if done {
                return seen;
            }
        }
    }
    panic!("timed out; events seen: {seen:?}");
}

/// The next `n` frame/discard events.
fn next(scanner: &Scanner, n: usize) -> Vec<ScannerEvent> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    while got.len() < n {
        let left = deadline.checked_duration_since(Instant::now()).unwrap_or_else(|| panic!("only {got:?}"));
        if let Some(e) = scanner.recv_timeout(left) {
            if matches!(e, ScannerEvent::Frame { .. } | ScannerEvent::Discarded { .. }) {
                got.push(e);
            }
        }
    }
    got
}

fn frame(text: &str, aim: Option<&str>) -> ScannerEvent {
    ScannerEvent::Frame { text: text.into(), aim: aim.map(Into::into), bytes: text.len() + aim.map_or(0, str::len) }
}

fn discarded(reason: DiscardReason, bytes: usize) -> ScannerEvent {
    ScannerEvent::Discarded { reason, bytes }
}

#[test]
fn every_plain_framing_variant() {
    let mut r = rig(profile::find("generic-serial").unwrap());
    for (bytes, want) in [
        (&b"CP1:CR\r"[..], frame("CP1:CR", None)),
        (b"CP1:CRLF\r\n", frame("CP1:CRLF", None)),
        (b"CP1:LF\n", frame("CP1:LF", None)),
        (b"]Q1CP1:AIM\r\n", frame("CP1:AIM", Some("]Q1"))),
        (b"CP1:WITH SPACES \r", frame("CP1:WITH SPACES ", None)),
    ] {
        r.emulator.write(bytes);
        assert_eq!(next(&r.scanner, 1), [want], "{bytes:?}");
    }
    // several frames in one write
    r.emulator.write(b"CP1:ONE\rCP1:TWO\r\nCP1:THREE\n");
    assert_eq!(next(&r.scanner, 3), [frame("CP1:ONE", None), frame("CP1:TWO", None), frame("CP1:THREE", None)]);

    for (terminator, prefix, aim) in [
        (Terminator::Etx, vec![0x02], AimMode::Optional),
        (Terminator::Cr, vec![], AimMode::Required),
        (Terminator::Lf, vec![], AimMode::Absent),
        (Terminator::None, vec![], AimMode::Optional),
    ] {
        let mut p = profile::find("generic-serial").unwrap();
        p.framing.terminator = terminator;
        p.framing.prefix = prefix.clone();
        p.framing.aim = aim;
        let mut r = rig(p.clone());
        let aim_id = (aim == AimMode::Required).then_some("]Q1");
        r.emulator.scan(&p, "CP1:VARIANT", aim_id);
        let bytes = prefix.len() + "CP1:VARIANT".len() + aim_id.map_or(0, str::len);
        let want = ScannerEvent::Frame { text: "CP1:VARIANT".into(), aim: aim_id.map(Into::into), bytes };
        assert_eq!(next(&r.scanner, 1), [want], "{terminator:?}");
    }
}

#[test]
fn faults_noise_splits_overlong_partial_duplicates() {
    let p = profile::find("generic-serial").unwrap();
    let mut r = rig(p.clone());
    // split writes, one byte at a time
    r.emulator.write_split(b"]Q1CP1:SPLIT-BYTE-BY-BYTE\r\n", 1, Duration::from_millis(2));
    assert_eq!(next(&r.scanner, 1), [frame("CP1:SPLIT-BYTE-BY-BYTE", Some("]Q1"))]);
    // garbage and control bytes, then a good frame
    r.emulator.write(b"\x00\x1b\xff\xfe garbage\r\nCP1:AFTER-NOISE\r\n");
    assert_eq!(next(&r.scanner, 2), [discarded(DiscardReason::NotUtf8, 12), frame("CP1:AFTER-NOISE", None)]);
    // another symbology
    r.emulator.write(b"]E00012345678905\r\n");
    assert_eq!(next(&r.scanner, 1), [discarded(DiscardReason::Symbology, 16)]);
    // over-long: discarded up to its terminator, the next frame is intact
    let mut long = vec![b'X'; 6000];
    long.extend_from_slice(b"\r\nCP1:AFTER-LONG\r\n");
    r.emulator.write(&long);
    assert_eq!(next(&r.scanner, 2), [discarded(DiscardReason::TooLong, 6000), frame("CP1:AFTER-LONG", None)]);
    // a partial frame is abandoned after 300 ms and never glued to the next one
    r.emulator.write(b"CP1:PARTIAL");
    std::thread::sleep(Duration::from_millis(450));
    r.emulator.write(b"CP1:WHOLE\r\n");
    assert_eq!(next(&r.scanner, 2), [discarded(DiscardReason::Incomplete, 11), frame("CP1:WHOLE", None)]);
    // the same code again within 1.5 s is a duplicate; after it, a new read
    r.emulator.scan(&p, "CP1:TWICE", None);
    r.emulator.scan(&p, "CP1:TWICE", None);
    assert_eq!(next(&r.scanner, 2), [frame("CP1:TWICE", None), discarded(DiscardReason::Duplicate, 9)]);
    std::thread::sleep(Duration::from_millis(1600));
    r.emulator.scan(&p, "CP1:TWICE", None);
    assert_eq!(next(&r.scanner, 1), [frame("CP1:TWICE", None)]);
}

#[test]
fn zebra_ssi_handshakes_and_reassembly() {
    let mut r = rig(profile::find("zebra-ds4608-ssi").unwrap());
    let answers = r.emulator.scan_ssi("CP1:SSI-SINGLE", 250, false);
    assert_eq!(answers, [ssi::host_ack()]);
    assert_eq!(next(&r.scanner, 1), [frame("CP1:SSI-SINGLE", None)]);
    // a code spread over several continued packets, each ACKed
    let long = format!("CP1:{}", "7".repeat(700));
    let answers = r.emulator.scan_ssi(&long, 200, false);
    assert_eq!(answers.len(), 4);
    assert!(answers.iter().all(|a| *a == ssi::host_ack()));
    assert_eq!(next(&r.scanner, 1), [frame(&long, None)]);
    // a corrupted packet is NAKed (resend) and the retransmission accepted
    let answers = r.emulator.scan_ssi("CP1:SSI-RESENT", 250, true);
    assert_eq!(answers, [ssi::host_nak_resend(), ssi::host_ack()]);
    let events = next(&r.scanner, 2);
    assert!(matches!(events[0], ScannerEvent::Discarded { reason: DiscardReason::Checksum, .. }), "{events:?}");
    assert_eq!(events[1], frame("CP1:SSI-RESENT", None));
    // another symbology is ACKed but discarded
    r.emulator.write(&ssi::decode_data_packets(0x0B, b"0012345678905", 250).concat());
    assert_eq!(r.emulator.read_packet(Duration::from_secs(2)), ssi::host_ack());
    assert_eq!(next(&r.scanner, 1), [discarded(DiscardReason::Symbology, 13)]);
}

#[test]
fn init_sequence_and_feedback_bytes() {
    let mut p = profile::find("datalogic-quickscan-qd2430").unwrap();
    p.commands.bad_read = vec![0x01];
    let mut r = rig(p);
    assert_eq!(r.emulator.read_for(Duration::from_millis(200)), b"E", "init sequence");
    r.scanner.feedback(Feedback::Good);
    assert_eq!(r.emulator.read_for(Duration::from_millis(200)), b"B");
    r.scanner.feedback(Feedback::Bad);
    assert_eq!(r.emulator.read_for(Duration::from_millis(200)), [0x01]);
    // SSI feedback is wrapped as a packet with its checksum
    let mut p = profile::find("zebra-ds4608-ssi").unwrap();
    p.commands.ssi_good_read = Some(profile::SsiCommand { opcode: 0xE7, data: vec![0x01] });
    let mut r = rig(p);
    r.scanner.feedback(Feedback::Good);
    assert_eq!(r.emulator.read_packet(Duration::from_secs(1)), [0x05, 0xE7, 0x04, 0x00, 0x01, 0xFF, 0x0F]);
}

#[test]
fn unplug_then_replug_recovers_within_two_seconds() {
    let p = profile::find("generic-cdc").unwrap();
    let Rig { _dir, emulator, scanner } = rig(p.clone());
    let mut emulator = emulator;
    emulator.scan(&p, "CP1:BEFORE", None);
    assert_eq!(next(&scanner, 1), [frame("CP1:BEFORE", None)]);
    let link = emulator.unplug();
    wait_for(&scanner, |e| matches!(e, ScannerEvent::Disconnected { .. }), Duration::from_secs(2));
    // gone for a while: the transport keeps retrying without crashing
    std::thread::sleep(Duration::from_millis(1500));
    let replugged = Instant::now();
    let mut emulator = Emulator::plug(&link);
    wait_for(&scanner, |e| matches!(e, ScannerEvent::Connected { .. }), Duration::from_secs(2));
    let recovery = replugged.elapsed();
    assert!(recovery < Duration::from_secs(2), "recovered after {recovery:?}");
    emulator.scan(&p, "CP1:AFTER", None);
    assert_eq!(next(&scanner, 1), [frame("CP1:AFTER", None)]);
}

#[test]
fn a_busy_port_and_a_missing_one_say_what_to_do() {
    let r = rig(profile::find("generic-serial").unwrap());
    let err = transport::open(r.emulator.link(), &profile::find("generic-serial").unwrap()).unwrap_err();
    assert!(matches!(err, TransportError::Busy(_)), "{err:?}");
    assert!(err.to_string().contains("fuser"), "{err}");
    let err =
        transport::open(std::path::Path::new("/dev/redeemd-no-such-port"), &profile::find("generic-serial").unwrap())
            .unwrap_err();
    assert!(matches!(err, TransportError::NotFound(_)) && err.to_string().contains("scanner list"), "{err}");
}

#[test]
fn scanner_test_command_prints_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("scanner");
    let mut emulator = Emulator::plug(&link);
    let mut child = std::process::Command::new(common::binary())
        .args(["scanner", "test", "--port", link.to_str().unwrap(), "--profile", "generic-serial", "--count", "2"])
        .args(["--timeout", "10", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // `connected` on stderr means the port is open and the scanner may talk.
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
    // No config here: the default language (zh-CN), unless this machine has a config in en.
    assert!(line.starts_with("已连接") || line.starts_with("connected to"), "{line}");
    emulator.write(b"]Q1CP1:FIRST\r\n\xff\xfe\r\n]E00012345678905\r\nCP1:SECOND\r");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(
        lines,
        [
            serde_json::json!({"event": "frame", "text": "CP1:FIRST", "aim": "]Q1", "bytes": 12}),
            serde_json::json!({"event": "discarded", "reason": "not_utf8", "bytes": 2}),
            serde_json::json!({"event": "discarded", "reason": "symbology", "bytes": 16}),
            serde_json::json!({"event": "frame", "text": "CP1:SECOND", "aim": null, "bytes": 10}),
        ]
    );
}

/// The widths (bar, space, …) of Code 128 symbol values 0..=106 (ISO/IEC 15417 table 1),
/// typed from the standard: a decoder independent of the `barcoders` encoder the sheet uses.
const CODE128_WIDTHS: [&str; 107] = [
    "212222", "222122", "222221", "121223", "121322", "131222", "122213", "122312", "132212", "221213", // 0
    "221312", "231212", "112232", "122132", "122231", "113222", "123122", "123221", "223211", "221132", // 10
    "221231", "213212", "223112", "312131", "311222", "321122", "321221", "312212", "322112", "322211", // 20
    "212123", "212321", "232121", "111323", "131123", "131321", "112313", "132113", "132311", "211313", // 30
    "231113", "231311", "112133", "112331", "132131", "113123", "113321", "133121", "313121", "211331", // 40
    "231131", "213113", "213311", "213131", "311123", "311321", "331121", "312113", "312311", "332111", // 50
    "314111", "221411", "431111", "111224", "111422", "121124", "121421", "141122", "141221", "112214", // 60
    "112412", "122114", "122411", "142112", "142211", "241211", "221114", "413111", "241112", "134111", // 70
    "111242", "121142", "121241", "114212", "124112", "124211", "411212", "421112", "421211", "212141", // 80
    "214121", "412121", "111143", "111341", "131141", "114113", "114311", "411113", "411311", "113141", // 90
    "114131", "311141", "411131", "211412", "211214", "211232", "2331112", // 100
];

/// Reads a Code 128 symbol back from the pixels of the sheet: the row through the middle
/// of its bars, cut into runs, each run a whole number of modules; returns whether FNC3
/// came first and the text (control characters included).
fn decode_code128(img: &image::GrayImage, code: &redeemd::scanner::sheet::DrawnCode) -> (bool, String) {
    let y = code.y + code.height / 2;
    let mut runs: Vec<(bool, u32)> = Vec::new();
    for x in code.x..code.x + code.width {
        let black = img.get_pixel(x, y).0[0] < 128;
        match runs.last_mut() {
            Some((b, n)) if *b == black => *n += 1,
            _ => runs.push((black, 1)),
        }
    }
    // Quiet zones: the white runs at both ends.
    let runs: Vec<u32> = runs.iter().skip_while(|(b, _)| !b).map(|(_, n)| *n).collect();
    let mut widths: Vec<u32> = runs
        .iter()
        .map(|n| {
            assert_eq!(n % code.module, 0, "a run of {n} px is not whole modules of {}", code.module);
            n / code.module
        })
        .collect();
    if widths.len().is_multiple_of(2) {
        widths.pop(); // the trailing quiet zone: a symbol starts and ends with a bar
    }
    let mut values = Vec::new();
    let mut rest = &widths[..];
    while !rest.is_empty() {
        let take = if rest.len() == 7 { 7 } else { 6 };
        let w: String = rest[..take].iter().map(|d| char::from(b'0' + *d as u8)).collect();
        let value = CODE128_WIDTHS.iter().position(|p| *p == w).unwrap_or_else(|| panic!("no symbol {w}"));
        values.push(value);
        rest = &rest[take..];
    }
    assert_eq!(values.first(), Some(&104), "Start B");
    assert_eq!(values.last(), Some(&106), "Stop");
    let data = &values[1..values.len() - 2];
    let check = values[values.len() - 2];
    let sum: usize = 104 + data.iter().enumerate().map(|(i, v)| (i + 1) * v).sum::<usize>();
    assert_eq!(sum % 103, check, "check symbol");
    let mut text = String::new();
    let mut set_a = false;
    let mut fnc3_first = false;
    for (i, v) in data.iter().enumerate() {
        match (*v, set_a) {
            (96, _) => {
                assert_eq!(i, 0, "FNC3 only first");
                fnc3_first = true;
            }
            (101, false) => set_a = true,
            (100, true) => set_a = false,
            (v, false) if v < 96 => text.push(char::from(32 + v as u8)),
            (v, true) if v < 64 => text.push(char::from(32 + v as u8)),
            (v, true) if v < 96 => text.push(char::from(v as u8 - 64)),
            (v, _) => panic!("symbol value {v} is not used by the sheet"),
        }
    }
    (fnc3_first, text)
}

/// A QR symbol on the sheet is exactly the one `qrcode` makes of `content` at its size.
fn assert_qr_carries(img: &image::GrayImage, code: &redeemd::scanner::sheet::DrawnCode, content: &str) {
    let want = qrcode::QrCode::with_error_correction_level(content.as_bytes(), qrcode::EcLevel::M)
        .unwrap()
        .render::<image::Luma<u8>>()
        .min_dimensions(code.width, code.height)
        .max_dimensions(code.width, code.height)
        .build();
    for (x, y, p) in want.enumerate_pixels() {
        assert_eq!(img.get_pixel(code.x + x, code.y + y), p, "QR pixel {x},{y} of {content:?}");
    }
}

/// Issue 19 item 6: every shipped profile's setup sheet, in each language, prints the
/// codes a source gives (each reads back to its profile's exact content), says the
/// others in words, names the profile in its footer, carries no bare-IP link, and speaks
/// the reader's language only (names, citations and the guides' own labels aside).
#[test]
fn every_setup_sheet_prints_documented_codes_in_the_readers_language() {
    use redeemd::messages::Language;
    use redeemd::scanner::profile::{bare_ip_link, Symbology};
    use redeemd::scanner::sheet;
    let sample = redeemd::issuer::Issuer::from_seed(42).code(&redeemd::issuer::CodeSpec::new(
        "SAMPLE-0001",
        "DEMO-DINING",
        common::ts("2026-01-01T00:00:00Z"),
    ));
    for p in profile::builtin().unwrap() {
        for language in Language::ALL {
            let s = sheet::render_in(&p, &sample, language).unwrap();
            let what = format!("{} ({})", p.id, language.tag());
            // To look at them as an installer would: REDEEMD_SHEET_DIR=/tmp/sheets.
            if let Some(dir) = std::env::var_os("REDEEMD_SHEET_DIR") {
                let path = std::path::Path::new(&dir).join(format!("{}.{}.png", p.id, language.tag()));
                std::fs::write(path, s.png().unwrap()).unwrap();
            }
            assert_eq!(s.image.dimensions(), (sheet::WIDTH, sheet::HEIGHT), "{what}: A4 at 150 dpi");
            assert_eq!(s.left_out, 0, "{what}: every step on the page");
            let all = s.text.join("\n");
            assert!(!all.contains("NOT FOUND"), "{what}");
            assert!(s.text.last().unwrap().contains(&p.id), "{what}: the footer names the profile");
            assert!(!all.contains(&format!("{} {}", p.vendor, p.vendor)), "{what}: a doubled vendor");
            for line in &s.text {
                assert_eq!(bare_ip_link(line), None, "{what}: {line}");
                assert!(
                    !line.split("://").skip(1).any(|host| host.starts_with(|c: char| c.is_ascii_digit())),
                    "{line}"
                );
            }

            // Each code with a content is drawn once, in order, and reads back to it.
            let printed: Vec<_> = p.setup_codes.iter().filter(|c| !c.content.is_empty()).collect();
            assert_eq!(s.codes.len(), printed.len() + 1, "{what}: the printed codes and the sample");
            for (code, drawn) in printed.iter().zip(&s.codes) {
                assert_eq!(drawn.symbology, code.symbology, "{what}");
                match code.symbology {
                    Symbology::Code128 => {
                        assert_eq!(decode_code128(&s.image, drawn), (code.fnc3, code.content.clone()), "{what}")
                    }
                    Symbology::Qr => assert_qr_carries(&s.image, drawn, &code.content),
                }
            }
            let last = s.codes.last().unwrap();
            assert_qr_carries(&s.image, last, &sample);

            // A step without a content says where its code is, in words.
            let in_guide = redeemd::messages::text(language, "sheet.in_guide");
            let own_guide = redeemd::messages::text(language, "sheet.in_own_guide");
            let words_steps = p.setup_codes.iter().filter(|c| c.content.is_empty()).count();
            let said = s
                .text
                .iter()
                .filter(|t| t.starts_with(in_guide.split('{').next().unwrap()) || t.as_str() == own_guide)
                .count();
            assert_eq!(said, words_steps, "{what}");

            // Names and citations are data (as a merchant's name is); the rest is the
            // reader's language. A guide's place is its labels, quoted, and numbers.
            let mut rest = all.clone();
            let mut verbatim = vec![sheet::scanner_name(&p, language), p.vendor.clone(), p.model.clone()];
            for code in &p.setup_codes {
                verbatim.extend([
                    code.guide.clone(),
                    code.source.trim().to_owned(),
                    sheet::printable_content(&code.content),
                ]);
                let unquoted: String = code.place.split('"').step_by(2).collect();
                assert!(
                    common::words::english_words(&unquoted).is_empty(),
                    "{}: place {:?} is prose",
                    p.id,
                    code.place
                );
                verbatim.push(code.place.clone());
            }
            verbatim.sort_by_key(|v| std::cmp::Reverse(v.len()));
            for v in verbatim.iter().filter(|v| !v.is_empty()) {
                rest = rest.replace(v.as_str(), " ");
            }
            match language {
                Language::ZhCn => {
                    let english = common::words::english_words(&rest);
                    assert!(english.is_empty(), "{what}: English {english:?} on a Chinese sheet:\n{rest}");
                }
                Language::En => {
                    let chinese: String = rest.chars().filter(|c| common::words::is_cjk(*c)).collect();
                    assert!(chinese.is_empty(), "{what}: Chinese {chinese:?} on an English sheet");
                }
            }
        }
    }
}

#[test]
fn scanner_sheet_and_list_commands() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sheet.png");
    let run = std::process::Command::new(common::binary())
        .args(["scanner", "sheet", "--profile", "zebra-ds2208", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(&std::fs::read(&out).unwrap()[..8], b"\x89PNG\r\n\x1a\n");
    // Every shipped profile prints as an A4 page.
    for p in profile::builtin().unwrap() {
        let run = std::process::Command::new(common::binary())
            .args(["scanner", "sheet", "--profile", &p.id, "--out", out.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(run.status.code(), Some(0), "{}: {}", p.id, String::from_utf8_lossy(&run.stderr));
        let img = image::open(&out).unwrap();
        assert_eq!((img.width(), img.height()), (1240, 1754), "{}", p.id);
    }
    let run = std::process::Command::new(common::binary())
        .args(["scanner", "sheet", "--profile", "no-such-scanner", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("no-such-scanner"));
    let run = std::process::Command::new(common::binary()).args(["scanner", "list", "--json"]).output().unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(listed["profiles"].as_array().unwrap().len(), profile::BUILTIN.len());
}
