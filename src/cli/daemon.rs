//! The long-running and till-facing commands: `run`, `demo` (scripted and live),
//! `pos-token`, `manager-pin set` and `cashier-url`. It must not serve anything itself
//! (`daemon::run` does) nor keep secrets in memory longer than printing them.

use super::*;

/// A whole offline round trip on an embedded demo issuer: no network, no shared files.
pub(super) fn demo(args: DemoArgs) -> CliResult {
    let _ = LANG.set(args.language.language());
    if !args.once {
        return demo_live(args);
    }
    let (_tmp, dir) = match args.dir {
        Some(dir) => (None, dir),
        None => {
            let tmp = tempdir()?;
            let dir = tmp.0.clone();
            (Some(tmp), dir)
        }
    };
    let issuer = Issuer::from_seed(DEMO_SEED);
    let now = SystemClock.now();
    std::fs::create_dir_all(&dir)
        .with_context(|| tr("error.cannot_create", &[("path", &dir.display().to_string())]))?;
    let keys = dir.join("demo-trust-keys.json");
    std::fs::write(&keys, issuer.trust_anchors_json())?;
    let jws_path = dir.join("demo-ruleset.jws");
    std::fs::write(
        &jws_path,
        issuer.sign_ruleset(&issuer.ruleset_payload(1, now, &["DEMO-DINING"], &["DEMO-REVOKED"])),
    )?;
    let config_path = dir.join("redeemd.toml");
    let data_dir = dir.join("data");
    let step = |key: &str, values: &[(&str, &str)]| say!("\n== {}", tr(key, values));
    step("demo_cli.step_init", &[]);
    init(
        &config_path,
        InitArgs {
            data_dir: data_dir.clone(),
            merchant_id: "M-DEMO".into(),
            merchant_category: "dining".into(),
            trust_key: keys,
            timezone: config::DEFAULT_TIMEZONE.into(),
            language: args.language,
            force: true,
        },
    )?;
    step("demo_cli.step_import", &[]);
    ruleset_import(&config_path, &jws_path)?;
    let code = issuer.code(&CodeSpec::new(format!("DEMO-{}", now.as_second()), "DEMO-DINING", now));
    let code_args = |amount: &str| CodeArgs { code: code.clone(), amount: amount.into(), eligible: None, json: false };
    step("demo_cli.step_redeem", &[("code", &code)]);
    present(&config_path, code_args("58.00"), None)?;
    step("demo_cli.step_again", &[]);
    present(&config_path, code_args("58.00"), None)?;
    step("demo_cli.step_report", &[]);
    report_daily(&config_path, None, ReportFormat::Table, ReportScope::Terminal)?;
    // A temporary terminal is gone when the demo ends: its directory is not named as kept.
    let files = if _tmp.is_some() {
        tr("demo_cli.files_removed", &[])
    } else {
        tr("demo_cli.files", &[("dir", &dir.display().to_string()), ("config", &config_path.display().to_string())])
    };
    say!("{files}");
    Ok(ExitCode::SUCCESS)
}

pub(super) const DEMO_SEED: u8 = 42;

/// The live demo: a provisioned throwaway terminal, the demo upstream, the virtual
/// scanner, and the daemon with the `/demo` page, until Ctrl-C.
pub(super) fn demo_live(args: DemoArgs) -> CliResult {
    use crate::demo::DemoUpstream;
    let (_tmp, dir) = match args.dir.clone() {
        Some(dir) => {
            if dir.join("redeemd.toml").exists() {
                return Err(usage(anyhow!(tr("demo_cli.dir_taken", &[("dir", &dir.display().to_string())]))));
            }
            (None, dir)
        }
        None => {
            let tmp = tempdir()?;
            let dir = tmp.0.clone();
            (Some(tmp), dir)
        }
    };
    let listen: std::net::SocketAddr = args
        .listen
        .parse()
        .map_err(|_| usage(anyhow!(tr("error.listen", &[("value", &format!("{:?}", args.listen))]))))?;
    if !listen.ip().is_loopback() {
        // The demo's config never allows remote clients, so the daemon would refuse later.
        return Err(usage(anyhow!(tr("demo_cli.listen_remote", &[("addr", &listen.to_string())]))));
    }
    // Bound before anything is made or said: a taken port fails here, with no links or PIN
    // printed and no terminal left in --dir; each daemon serves its very socket. Lane 1
    // on the address asked for, the others on the ports after it.
    let mut listeners = Vec::new();
    for n in 0..args.lanes {
        let port = if listen.port() == 0 { 0 } else { listen.port().saturating_add(n) };
        let asked = std::net::SocketAddr::new(listen.ip(), port);
        listeners.push(std::net::TcpListener::bind(asked).map_err(|e| crate::daemon::listen_failed(asked, e))?);
    }
    std::fs::create_dir_all(&dir)
        .with_context(|| tr("error.cannot_create", &[("path", &dir.display().to_string())]))?;
    // Several lanes: one store hub (a nats-server of the visitor's, on loopback) first.
    let hub = if args.lanes > 1 { Some(DemoHub::start(&dir.join("hub"))?) } else { None };
    let now = SystemClock.now();
    // The demo's upstream is a sandbox (`redeemd sandbox`) in the demo's directory.
    let upstream = DemoUpstream::start(
        &dir.join("upstream"),
        crate::issuer::IssuerKeys::from_seed(DEMO_SEED),
        std::sync::Arc::new(SystemClock),
    )
    .with_context(|| tr("demo_cli.upstream_failed", &[]))?;
    let mut lanes = Vec::new();
    for (n, listener) in (1..=args.lanes).zip(listeners) {
        let (lane_dir, code) = if args.lanes == 1 {
            (dir.clone(), crate::demo::ENROLLMENT_CODE.to_owned())
        } else {
            let code = format!("DEMO-LANE-{n}");
            upstream
                .sandbox
                .put_code(&code, jiff::SignedDuration::from_hours(24))
                .with_context(|| tr("demo_cli.upstream_failed", &[]))?;
            (dir.join(format!("lane{n}")), code)
        };
        let store = hub.as_ref().map(|h| (h.url.clone(), n.to_string()));
        lanes.push(demo_lane(&args, &lane_dir, listener, &upstream, &code, store, now)?);
    }
    let clock: std::sync::Arc<dyn crate::clock::Clock> = std::sync::Arc::new(SystemClock);
    say!("   {}", tr(if _tmp.is_some() { "demo_cli.stop_removes" } else { "demo_cli.stop" }, &[]));
    say!();
    let mut first = None;
    let mut others = Vec::new();
    for (config, options) in lanes {
        if first.is_none() {
            first = Some((config, options));
            continue;
        }
        let clock = clock.clone();
        others.push(std::thread::spawn(move || serve(&config, clock, options)));
    }
    let result = match first {
        Some((config, options)) => serve(&config, clock, options),
        None => Ok(ExitCode::SUCCESS),
    };
    for lane in others {
        let _ = lane.join();
    }
    drop(hub);
    result
}

/// The store hub of `demo --lanes N`: a `nats-server` with JetStream on a free loopback
/// port, its storage in the demo's directory, stopped with the demo.
struct DemoHub {
    child: std::process::Child,
    url: String,
}

impl DemoHub {
    fn start(dir: &Path) -> CliResult<DemoHub> {
        let version = std::process::Command::new("nats-server").arg("--version").output();
        let Ok(version) = version else {
            return Err(usage(anyhow!(tr("demo_cli.no_nats_server", &[]))));
        };
        let text = String::from_utf8_lossy(&version.stdout).to_string();
        let numbers: Vec<u32> =
            text.trim().rsplit('v').next().unwrap_or("").split('.').take(2).filter_map(|n| n.parse().ok()).collect();
        if numbers.len() < 2 || (numbers[0], numbers[1]) < (2, 11) {
            return Err(usage(anyhow!(tr("demo_cli.old_nats_server", &[("version", text.trim())]))));
        }
        std::fs::create_dir_all(dir)
            .with_context(|| tr("error.cannot_create", &[("path", &dir.display().to_string())]))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port())?;
        let child = std::process::Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .with_context(|| tr("demo_cli.no_nats_server", &[]))?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if std::time::Instant::now() > deadline {
                return Err(anyhow!(tr("demo_cli.no_nats_server", &[])));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let url = format!("nats://127.0.0.1:{port}");
        say!("== {}", tr("demo_cli.hub", &[("url", &url)]));
        Ok(DemoHub { child, url })
    }
}

impl Drop for DemoHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One demo lane: provisioned with the demo upstream (`code`), a manager PIN, a virtual
/// scanner and a one-time cashier link, its links printed; `store`: (hub URL, lane).
fn demo_lane(
    args: &DemoArgs,
    dir: &Path,
    listener: std::net::TcpListener,
    upstream: &crate::demo::DemoUpstream,
    code: &str,
    store: Option<(String, String)>,
    now: jiff::Timestamp,
) -> CliResult<(Config, crate::daemon::RunOptions)> {
    use crate::demo::DemoState;
    let listen = listener.local_addr().map_err(|e| crate::daemon::listen_failed(args_listen(args), e))?;
    std::fs::create_dir_all(dir).with_context(|| tr("error.cannot_create", &[("path", &dir.display().to_string())]))?;
    let issuer = Issuer::from_seed(DEMO_SEED);
    let config_path = dir.join("redeemd.toml");
    let data_dir = dir.join("data");
    say!("== {}", tr("demo_cli.step_provision", &[("url", &upstream.url())]));
    provision(
        &config_path,
        ProvisionArgs {
            upstream: upstream.url(),
            enrollment_code: code.into(),
            ca: None,
            data_dir: Some(data_dir.clone()),
            label: Some(store.as_ref().map_or_else(|| "demo".to_owned(), |(_, lane)| format!("demo-lane-{lane}"))),
            language: Some(args.language),
        },
    )?;
    if let Some((url, lane)) = &store {
        // The lane joins the store: its config gains the hub (a short budget: loopback).
        let mut text = std::fs::read_to_string(&config_path)
            .with_context(|| tr("error.cannot_read", &[("path", &config_path.display().to_string())]))?;
        text.push_str(&format!("\n[store]\nhub = \"{url}\"\nlane = \"{lane}\"\n"));
        crate::secret::write_atomic(&config_path, text.as_bytes(), 0o644)
            .with_context(|| tr("error.cannot_write", &[("path", &config_path.display().to_string())]))?;
    }
    let config = load_config(&config_path)?;
    let pin = format!("{:06}", u32::from_le_bytes(crate::secret::random_bytes::<4>()) % 1_000_000);
    crate::secret::write_secret(
        &data_dir.join(crate::secret::MANAGER_PIN_FILE),
        crate::secret::hash_pin(&pin).as_bytes(),
    )
    .with_context(|| tr("demo_cli.pin_failed", &[]))?;
    // The virtual scanner: a pseudo-terminal whose slave the daemon opens as its port.
    let (scanner_text, profile, master): (String, Option<String>, Box<dyn std::io::Write + Send>) = match &args.scanner
    {
        Some(port) => (port.clone(), args.profile.clone(), Box::new(std::io::sink())),
        None => {
            let (mut master, slave) = serialport::TTYPort::pair().with_context(|| tr("demo_cli.pty_failed", &[]))?;
            // Like a real scanner, the virtual one takes whatever the host sends back
            // (feedback, echoes): left unread, it would fill the pty and stall the writes.
            let mut drain = master.try_clone_native().with_context(|| tr("demo_cli.pty_clone_failed", &[]))?;
            let _ = serialport::SerialPort::set_timeout(&mut master, std::time::Duration::from_secs(2));
            let _ = serialport::SerialPort::set_timeout(&mut drain, std::time::Duration::from_secs(3600));
            std::thread::Builder::new()
                .name("virtual-scanner".into())
                .spawn(move || {
                    let mut buffer = [0u8; 1024];
                    loop {
                        match std::io::Read::read(&mut drain, &mut buffer) {
                            Ok(0) => break,
                            Ok(_) => {}
                            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                            Err(_) => std::thread::sleep(std::time::Duration::from_millis(200)),
                        }
                    }
                })
                .with_context(|| tr("demo_cli.pty_failed", &[]))?;
            let path = serialport::SerialPort::name(&slave).with_context(|| tr("demo_cli.pty_no_path", &[]))?;
            // The slave stays open here too, so the daemon's reconnects never see a hang-up.
            std::mem::forget(slave);
            (path, Some("generic-serial".into()), Box::new(master))
        }
    };
    let expires = now + jiff::SignedDuration::from_mins(10);
    let token = crate::secret::new_cashier_link(&data_dir, expires)
        .with_context(|| tr("error.cannot_write", &[("path", &data_dir.display().to_string())]))?;
    let clock: std::sync::Arc<dyn crate::clock::Clock> = std::sync::Arc::new(SystemClock);
    let demo_state = std::sync::Arc::new(DemoState {
        issuer,
        holder: crate::issuer::Holder::ed25519_from_seed(DEMO_SEED),
        live_coupon: std::sync::Mutex::new(Vec::new()),
        scanner: std::sync::Mutex::new(master),
        online: upstream.online.clone(),
        clock: clock.clone(),
    });
    say!();
    match &store {
        Some((_, lane)) => {
            say!("== {}", tr("demo_cli.ready_lane", &[("lane", lane), ("dir", &dir.display().to_string())]))
        }
        None => say!("== {}", tr("demo_cli.ready", &[("dir", &dir.display().to_string())])),
    }
    say!("   1. {}", tr("demo_cli.cashier", &[]));
    say!("      http://{listen}/cashier/open?token={token}");
    say!("   2. {}", tr("demo_cli.scanner", &[("url", &format!("http://{listen}/demo"))]));
    say!("      {}", tr("demo_cli.scanner_hint", &[]));
    say!("   3. {}", tr("demo_cli.manager", &[("url", &format!("http://{listen}/manager")), ("pin", &pin)]));
    let options = crate::daemon::RunOptions {
        listen: Some(listen.to_string()),
        scanner: Some(scanner_text),
        profile,
        extra_routes: Some(crate::demo::routes(demo_state)),
        config_path: Some(config_path.clone()),
        listener: Some(listener),
    };
    Ok((config, options))
}

fn args_listen(args: &DemoArgs) -> std::net::SocketAddr {
    args.listen.parse().unwrap_or_else(|_| std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
}

pub(super) fn run_daemon(config_path: &Path, args: RunArgs) -> CliResult {
    let config = load_config(config_path)?;
    let clock: std::sync::Arc<dyn crate::clock::Clock> = std::sync::Arc::new(SystemClock);
    let options = crate::daemon::RunOptions {
        listen: args.listen,
        scanner: args.scanner,
        profile: args.profile,
        extra_routes: None,
        config_path: Some(config_path.to_owned()),
        listener: None,
    };
    // Checked before the ledger opens, so a refused address changes nothing.
    crate::daemon::listen_address(&config, options.listen.as_deref()).map_err(usage)?;
    serve(&config, clock, options)
}

/// Opens the ledger and runs the daemon until it is stopped (`run` and the live demo).
fn serve(
    config: &Config,
    clock: std::sync::Arc<dyn crate::clock::Clock>,
    options: crate::daemon::RunOptions,
) -> CliResult {
    let mut agent = open_agent_with(config, Box::new(clock.clone()))?;
    // Decisions read indexed tables; they are used only once proven to be the signed text
    // (a mismatch is logged, and decisions refuse with no_ruleset).
    let _ = agent.check_derived_tables();
    match crate::daemon::run(config, agent, clock, options) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e @ crate::daemon::RunError::Config(_)) => Err(usage(e)),
        Err(e) => Err(e.into()),
    }
}

pub(super) fn pos_token(config_path: &Path, rotate: bool) -> CliResult {
    let config = load_config(config_path)?;
    let path = crate::secret::pos_token_path(&config.data_dir);
    let token = if rotate {
        crate::secret::rotate_pos_token(&config.data_dir)
            .with_context(|| tr("error.cannot_write", &[("path", &path.display().to_string())]))?
    } else {
        crate::secret::ensure_pos_token(&config.data_dir)
            .with_context(|| tr("error.cannot_write", &[("path", &path.display().to_string())]))?;
        std::fs::read_to_string(&path)
            .with_context(|| tr("error.cannot_read", &[("path", &path.display().to_string())]))?
            .trim()
            .to_owned()
    };
    say!("{token}");
    Ok(ExitCode::SUCCESS)
}

pub(super) fn manager_pin_set(config_path: &Path) -> CliResult {
    let config = load_config(config_path)?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).with_context(|| tr("error.stdin", &[]))?;
    let pin = line.trim_end_matches(['\r', '\n']);
    crate::secret::check_pin(pin).map_err(|m| usage(anyhow!(tr("error.pin", &[("problem", &m.render(lang()))]))))?;
    let path = config.data_dir.join(crate::secret::MANAGER_PIN_FILE);
    crate::secret::write_secret(&path, crate::secret::hash_pin(pin).as_bytes())
        .with_context(|| tr("error.cannot_write", &[("path", &path.display().to_string())]))?;
    // Whether a daemon of this data dir runs (and so uses the PIN at once) is asked, not assumed.
    use crate::local_daemon::Found;
    let shown = path.display().to_string();
    let said = match crate::local_daemon::find(&config.data_dir, std::time::Duration::from_secs(1)) {
        Found::Ours(_) => tr("cli.pin_set", &[("path", &shown)]),
        Found::Silent { addr, .. } | Found::KeyUnreadable { addr, .. } => {
            tr("cli.pin_set_unproven", &[("path", &shown), ("addr", &addr.to_string())])
        }
        Found::NeverRan | Found::NotListening(_) | Found::Other(_) => tr("cli.pin_set_no_daemon", &[("path", &shown)]),
    };
    // Not `eprintln!`: the PIN is set, and a closed stderr must not make that a panic's 101.
    let _ = writeln!(std::io::stderr(), "{said}");
    Ok(ExitCode::SUCCESS)
}

pub(super) fn cashier_url(config_path: &Path) -> CliResult {
    let config = load_config(config_path)?;
    // The address the daemon really bound (`run --listen` may differ from the config).
    let bound = std::fs::read_to_string(config.data_dir.join(crate::local_daemon::LISTEN_FILE))
        .ok()
        .and_then(|text| text.trim().parse::<std::net::SocketAddr>().ok());
    let addr = match bound {
        Some(addr) => addr,
        None => crate::daemon::listen_address(&config, None).map_err(usage)?,
    };
    // A link is a session for whoever opens it: never point it at a process that holds
    // the daemon's port without being this data dir's daemon.
    if let crate::local_daemon::Found::Other(other) =
        crate::local_daemon::find(&config.data_dir, std::time::Duration::from_secs(2))
    {
        return Err(anyhow!(tr("error.cashier_url_other", &[("addr", &other.to_string())])));
    }
    let expires = SystemClock.now() + jiff::SignedDuration::from_mins(10);
    let token = crate::secret::new_cashier_link(&config.data_dir, expires).with_context(|| {
        tr(
            "error.cannot_write",
            &[("path", &config.data_dir.join(crate::secret::CASHIER_LINK_FILE).display().to_string())],
        )
    })?;
    say!("{}", crate::kiosk::link_url(addr, &token));
    Ok(ExitCode::SUCCESS)
}

/// A temporary directory removed on drop (std only; the demo needs no more).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> CliResult<TempDir> {
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| anyhow!("no randomness for a temporary directory: {e}"))?;
    let dir = std::env::temp_dir().join(format!("redeemd-demo-{}", u64::from_le_bytes(nonce)));
    std::fs::create_dir_all(&dir)
        .with_context(|| tr("error.cannot_create", &[("path", &dir.display().to_string())]))?;
    Ok(TempDir(dir))
}
