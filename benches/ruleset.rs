//! `cargo bench --bench ruleset`: the command line over a big rule set (10^4 campaigns,
//! 10^6 revoked ids, ~24 MB JWS), through the real binary, as an installer or a shop
//! script runs it: peak RSS (`/usr/bin/time -f %M`) and wall time of
//!
//! 1. `ruleset import FILE` (verify, validate, install),
//! 2. `ruleset show` (re-verifies the stored JWS and proves the tables against it),
//! 3. `check CODE --amount 58` and `redeem CODE --amount 58` (one decision each),
//!
//! each next to the same run's baseline: `redeemd --version` (process start, nothing
//! opened), and, when `REDEEMD_BENCH_BASELINE=/path/to/redeemd` names another build (e.g.
//! of main), the same steps through that binary, interleaved run by run so both see the
//! same machine. The revoked ids are shuffled (no sorted-input shortcut flatters the
//! figures). Sizes: `REDEEMD_BENCH_CAMPAIGNS`, `_REVOKED`, `_RUNS`; `REDEEMD_BENCH_KEEP=1`
//! keeps the directory (and prints it).

mod common;
#[path = "../tests/common/init.rs"]
mod init;

use redeemd::issuer::{CodeSpec, Issuer};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{env, ms, percentile};

/// One binary's terminal, made with its own `init`.
struct Term {
    bin: PathBuf,
    dir: PathBuf,
}

/// What one command cost.
#[derive(Debug, Clone, Copy)]
struct Cost {
    wall: Duration,
    peak_kb: u64,
}

impl Term {
    fn init(bin: PathBuf, dir: PathBuf, issuer: &Issuer) -> Term {
        std::fs::create_dir_all(&dir).unwrap();
        let t = Term { bin, dir };
        std::fs::write(t.path("anchors.json"), issuer.trust_anchors_json()).unwrap();
        let args = init::init_args(&t.path("data"), &t.path("anchors.json"), "en");
        t.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        t
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_owned()
    }

    /// Runs `redeemd --config … ARGS` under `/usr/bin/time`; wall time as seen from here.
    fn run(&self, args: &[&str]) -> Cost {
        self.run_expect(args, |code| code == 0)
    }

    fn run_expect(&self, args: &[&str], ok: impl Fn(i32) -> bool) -> Cost {
        let mut full = vec!["--config".to_owned(), self.path("redeemd.toml")];
        full.extend(args.iter().map(|a| a.to_string()));
        measure(&self.bin, &full, &self.path("time.out"), ok)
    }
}

fn measure(bin: &Path, args: &[String], time_out: &str, ok: impl Fn(i32) -> bool) -> Cost {
    let t = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o", time_out])
        .arg(bin)
        .args(args)
        .env_remove("REDEEMD_CONFIG")
        .env_remove("REDEEMD_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("/usr/bin/time (apt-get install time)");
    let wall = t.elapsed();
    let code = out.status.code().unwrap_or(-1);
    assert!(
        ok(code),
        "{} {args:?} exited {code}: {}{}",
        bin.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(time_out).unwrap();
    // GNU time writes "Command exited with non-zero status N" first when it did.
    let peak_kb = text.lines().last().and_then(|l| l.trim().parse().ok()).expect("peak RSS from /usr/bin/time");
    Cost { wall, peak_kb }
}

/// A small xorshift: the same shuffle every run, no dependency.
fn shuffle<T>(items: &mut [T]) {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..items.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        items.swap(i, (x % (i as u64 + 1)) as usize);
    }
}

struct Figures {
    name: String,
    import: Cost,
    show: Vec<Cost>,
    check: Vec<Cost>,
    redeem: Vec<Cost>,
}

fn summary(costs: &[Cost]) -> String {
    let mut walls: Vec<Duration> = costs.iter().map(|c| c.wall).collect();
    walls.sort();
    let peak = costs.iter().map(|c| c.peak_kb).max().unwrap_or(0);
    if costs.len() == 1 {
        return format!("{:>8}  peak {:>6.1} MB", ms(walls[0]), peak as f64 / 1024.0);
    }
    format!(
        "p50 {:>10}  max {:>10}  peak {:>6.1} MB  ({} runs)",
        ms(percentile(&walls, 0.5)),
        ms(*walls.last().unwrap()),
        peak as f64 / 1024.0,
        costs.len()
    )
}

fn main() {
    let campaigns_n = env("REDEEMD_BENCH_CAMPAIGNS", 10_000);
    let revoked_n = env("REDEEMD_BENCH_REVOKED", 1_000_000);
    let runs = env("REDEEMD_BENCH_RUNS", 20);
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let issuer = Issuer::from_seed(11);
    let now = jiff::Timestamp::now();

    let campaigns: Vec<String> = (0..campaigns_n).map(|i| format!("CAMP-{i:05}")).collect();
    let mut revoked: Vec<String> = (0..revoked_n).map(|i| format!("REV-{i:09}")).collect();
    shuffle(&mut revoked);
    let ids: Vec<&str> = campaigns.iter().map(String::as_str).collect();
    let rev: Vec<&str> = revoked.iter().map(String::as_str).collect();
    let mut payload = issuer.ruleset_payload(1, now, &ids, &rev);
    payload.as_object_mut().unwrap().remove("offline");
    let jws = issuer.sign_ruleset(&payload);
    drop((payload, rev));
    drop(revoked);
    let file = root.path().join("ruleset.jws");
    std::fs::write(&file, &jws).unwrap();
    let file = file.to_str().unwrap().to_owned();
    eprintln!(
        "rule set: {campaigns_n} campaigns, {revoked_n} revoked ids (shuffled), {:.1} MB JWS",
        jws.len() as f64 / 1e6
    );
    drop(jws);

    let mut bins = vec![("this build".to_owned(), PathBuf::from(env!("CARGO_BIN_EXE_redeemd")))];
    if let Ok(base) = std::env::var("REDEEMD_BENCH_BASELINE") {
        bins.push(("baseline".to_owned(), PathBuf::from(base)));
    }
    let terms: Vec<Term> = bins
        .iter()
        .enumerate()
        .map(|(i, (_, bin))| Term::init(bin.clone(), root.path().join(format!("t{i}")), &issuer))
        .collect();
    let mut figures: Vec<Figures> = bins
        .iter()
        .zip(&terms)
        .map(|((name, _), t)| {
            eprintln!("{name}: ruleset import");
            let import = t.run(&["ruleset", "import", &file]);
            Figures { name: name.clone(), import, show: Vec::new(), check: Vec::new(), redeem: Vec::new() }
        })
        .collect();
    let shows = runs.clamp(1, 3);
    for i in 0..shows {
        for (f, t) in figures.iter_mut().zip(&terms) {
            eprintln!("{}: ruleset show ({}/{shows})", f.name, i + 1);
            f.show.push(t.run(&["ruleset", "show"]));
        }
    }
    let mut start = Vec::new();
    let version_out = root.path().join("version.time").to_str().unwrap().to_owned();
    eprintln!("check, redeem and --version, {runs} runs each, interleaved");
    for i in 0..runs {
        let campaign = &campaigns[i * 7919 % campaigns.len()];
        for (f, t) in figures.iter_mut().zip(&terms) {
            let code = issuer.code(&CodeSpec::new(format!("CLI-{i}"), campaign.clone(), now));
            f.check.push(t.run(&["check", &code, "--amount", "58"]));
            f.redeem.push(t.run(&["redeem", &code, "--amount", "58"]));
        }
        start.push(measure(&bins[0].1, &["--version".to_owned()], &version_out, |c| c == 0));
    }

    println!("rule set: {campaigns_n} campaigns, {revoked_n} revoked ids; wall time from the parent, peak RSS by /usr/bin/time");
    for f in &figures {
        println!("[{}]", f.name);
        println!("  ruleset import  {}", summary(&[f.import]));
        println!("  ruleset show    {}", summary(&f.show));
        println!("  check           {}", summary(&f.check));
        println!("  redeem          {}", summary(&f.redeem));
    }
    println!("[process start: redeemd --version]");
    println!("  --version       {}", summary(&start));
    if std::env::var("REDEEMD_BENCH_KEEP").is_ok_and(|v| !v.is_empty() && v != "0") {
        let kept = root.keep();
        eprintln!("kept {}", kept.display());
    }
}
