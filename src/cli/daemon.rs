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
    report_daily(&config_path, None, ReportFormat::Table)?;
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
    use crate::demo::{DemoState, DemoUpstream};
    let (_tmp, dir) = match args.dir {
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
    // printed and no terminal left in --dir; the daemon serves this very socket.
    let listener = std::net::TcpListener::bind(listen).map_err(|e| crate::daemon::listen_failed(listen, e))?;
    // The address the links name (`--listen 127.0.0.1:0` picks a free port).
    let listen = listener.local_addr().map_err(|e| crate::daemon::listen_failed(listen, e))?;
    std::fs::create_dir_all(&dir)
        .with_context(|| tr("error.cannot_create", &[("path", &dir.display().to_string())]))?;
    let issuer = Issuer::from_seed(DEMO_SEED);
    let now = SystemClock.now();
    // The demo's upstream is a sandbox (`redeemd sandbox`) in the demo's directory.
    let upstream = DemoUpstream::start(
        &dir.join("upstream"),
        crate::issuer::IssuerKeys::from_seed(DEMO_SEED),
        std::sync::Arc::new(SystemClock),
    )
    .with_context(|| tr("demo_cli.upstream_failed", &[]))?;
    let config_path = dir.join("redeemd.toml");
    let data_dir = dir.join("data");
    say!("== {}", tr("demo_cli.step_provision", &[("url", &upstream.url())]));
    provision(
        &config_path,
        ProvisionArgs {
            upstream: upstream.url(),
            enrollment_code: crate::demo::ENROLLMENT_CODE.into(),
            ca: None,
            data_dir: Some(data_dir.clone()),
            label: Some("demo".into()),
            language: Some(args.language),
        },
    )?;
    let config = load_config(&config_path)?;
    let pin = format!("{:06}", u32::from_le_bytes(crate::secret::random_bytes::<4>()) % 1_000_000);
    crate::secret::write_secret(
        &data_dir.join(crate::secret::MANAGER_PIN_FILE),
        crate::secret::hash_pin(&pin).as_bytes(),
    )
    .with_context(|| tr("demo_cli.pin_failed", &[]))?;
    // The virtual scanner: a pseudo-terminal whose slave the daemon opens as its port.
    let (scanner_text, profile, master): (String, Option<String>, Box<dyn std::io::Write + Send>) = match args.scanner {
        Some(port) => (port, args.profile, Box::new(std::io::sink())),
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
    say!("== {}", tr("demo_cli.ready", &[("dir", &dir.display().to_string())]));
    say!("   1. {}", tr("demo_cli.cashier", &[]));
    say!("      http://{listen}/cashier/open?token={token}");
    say!("   2. {}", tr("demo_cli.scanner", &[("url", &format!("http://{listen}/demo"))]));
    say!("      {}", tr("demo_cli.scanner_hint", &[]));
    say!("   3. {}", tr("demo_cli.manager", &[("url", &format!("http://{listen}/manager")), ("pin", &pin)]));
    say!("   {}", tr(if _tmp.is_some() { "demo_cli.stop_removes" } else { "demo_cli.stop" }, &[]));
    say!();
    let options = crate::daemon::RunOptions {
        listen: Some(listen.to_string()),
        scanner: Some(scanner_text),
        profile,
        extra_routes: Some(crate::demo::routes(demo_state)),
        config_path: Some(config_path.clone()),
        listener: Some(listener),
    };
    serve(&config, clock, options)
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
