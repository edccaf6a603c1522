//! `cargo bench --bench scanner`: frame decoder throughput (MB/s) against a bare
//! `memchr`-style scan for terminators over the same bytes, and last-byte-to-frame
//! latency through a real pseudo-terminal and the serial transport.

use redeemd::scanner::decoder::Decoder;
use redeemd::scanner::profile;
use redeemd::scanner::transport::{PortSpec, Scanner, ScannerEvent};
use serialport::{SerialPort, TTYPort};
use std::io::Write;
use std::time::{Duration, Instant};

fn main() {
    let p = profile::find("generic-serial").unwrap();
    // 1. throughput: 20,000 realistic frames (AIM id, ~190-byte code, CR LF), fed in 64-byte reads
    let code = format!("CP1:{}", "NCFOXN%TSMAHO.J1M8X$V2$2.+GFAK9729M9YXU8OK ".repeat(4));
    let mut stream = Vec::new();
    for i in 0..20_000 {
        stream.extend_from_slice(format!("]Q1{code}{i:06}\r\n").as_bytes());
    }
    let rounds = 5;
    let t = Instant::now();
    let mut frames = 0usize;
    for _ in 0..rounds {
        let mut d = Decoder::new(&p.framing);
        let mut out = Vec::new();
        for chunk in stream.chunks(64) {
            d.push(chunk, 0, &mut out);
            frames += out.len();
            out.clear();
        }
    }
    let decoder_mbs = (stream.len() * rounds) as f64 / t.elapsed().as_secs_f64() / 1e6;
    // the bare baseline: find every line end and check UTF-8, nothing else
    let t = Instant::now();
    let mut lines = 0usize;
    for _ in 0..rounds {
        for line in std::hint::black_box(&stream).split(|&b| b == b'\n') {
            lines += usize::from(std::str::from_utf8(line).is_ok());
        }
    }
    let bare_mbs = (stream.len() * rounds) as f64 / t.elapsed().as_secs_f64() / 1e6;
    assert_eq!(frames, 20_000 * rounds);
    assert!(lines > 0);

    // 2. latency: the terminator's write on the pty master to the frame on the channel
    let dir = tempfile::tempdir().unwrap();
    let (mut master, slave) = TTYPort::pair().unwrap();
    let link = dir.path().join("scanner");
    std::os::unix::fs::symlink(slave.name().unwrap(), &link).unwrap();
    drop(slave);
    master.set_timeout(Duration::from_millis(50)).unwrap();
    let scanner = Scanner::spawn(PortSpec::Path(link), p.clone());
    loop {
        if let Some(ScannerEvent::Connected { .. }) = scanner.recv_timeout(Duration::from_secs(5)) {
            break;
        }
    }
    let samples = std::env::var("REDEEMD_BENCH_SAMPLES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let mut latencies = Vec::with_capacity(samples);
    for i in 0..samples {
        let body = format!("]Q1{code}{i:06}");
        master.write_all(body.as_bytes()).unwrap();
        master.flush().unwrap();
        std::thread::sleep(Duration::from_micros(200));
        let t = Instant::now();
        master.write_all(b"\r\n").unwrap();
        master.flush().unwrap();
        match scanner.recv_timeout(Duration::from_secs(2)) {
            Some(ScannerEvent::Frame { .. }) => latencies.push(t.elapsed()),
            other => panic!("expected a frame, got {other:?}"),
        }
    }
    latencies.sort();
    let pct = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    let us = |d: Duration| format!("{:.0} µs", d.as_secs_f64() * 1e6);
    println!("decoder throughput {decoder_mbs:.0} MB/s  (bare line split + UTF-8 check {bare_mbs:.0} MB/s)");
    println!(
        "pty last-byte-to-frame latency ({samples} frames): p50 {}  p99 {}  max {}  (target p99 < 1 ms)",
        us(pct(0.5)),
        us(pct(0.99)),
        us(*latencies.last().unwrap())
    );
}
