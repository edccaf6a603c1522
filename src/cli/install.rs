//! The installer's commands: `init`, `doctor`, `backup`, `restore` and `scanner list /
//! test / sheet`. It gathers arguments and prints; the checks live in `doctor`, the
//! copy in `backup`, the ports in `scanner::transport`. It must not open the ledger
//! for writing except through those.

use super::*;

/// `doctor`: its report's exit status (0, or 3 when something is a problem) is the command's.
pub(super) fn doctor(config_path: &Path, json: bool) -> CliResult {
    // Doctor itself says why a config cannot be read.
    language_from(config_path);
    let report = crate::doctor::examine(config_path, &SystemClock);
    if json {
        say!("{}", report.to_json());
    } else {
        say_raw!("{}", report.to_text(lang()));
    }
    Ok(ExitCode::from(report.exit_code()))
}

pub(super) fn backup(config_path: &Path, file: &Path) -> CliResult {
    let config = load_config(config_path)?;
    let bar = spinner(tr("progress.backup", &[("path", &file.display().to_string())]));
    let s = crate::backup::backup(config_path, &config, file, &SystemClock);
    bar.finish_and_clear();
    let s = s?;
    say!(
        "{}",
        tr(
            "cli.backup_wrote",
            &[
                ("path", &file.display().to_string()),
                ("redemptions", &s.redemptions.to_string()),
                ("events", &s.events.to_string()),
                ("unanswered", &s.unanswered.to_string()),
            ]
        )
    );
    say!("  {}", tr("cli.backup_files", &[("files", &s.files.join(", "))]));
    Ok(ExitCode::SUCCESS)
}

pub(super) fn restore(config_path: &Path, file: &Path, data_dir: Option<&Path>, force: bool) -> CliResult {
    // This terminal's language when it has a config (restore keeps it), else the
    // restored config's (the backup's terminal's) once it is written.
    language_from(config_path);
    let r = crate::backup::restore(config_path, file, data_dir, force, &SystemClock)?;
    language_from(config_path);
    let s = &r.summary;
    let by_hand = tr("cli.restore_by_hand", &[]);
    say!(
        "{}",
        tr(
            "cli.restored",
            &[
                ("path", &file.display().to_string()),
                ("terminal", r.from_terminal.as_deref().unwrap_or(&by_hand)),
                ("made", r.created_at.as_deref().unwrap_or("?")),
                ("dir", &r.data_dir.display().to_string()),
                ("redemptions", &s.redemptions.to_string()),
                ("events", &s.events.to_string()),
                ("unanswered", &s.unanswered.to_string()),
            ]
        )
    );
    if !s.files.is_empty() {
        say!("  {}", tr("cli.restore_files", &[("files", &s.files.join(", "))]));
    }
    if let Some((kept, backup)) = r.kept_ruleset {
        let backup = backup.map_or_else(|| tr("cli.none", &[]), |v| v.to_string());
        say!("  {}", tr("cli.restore_kept_ruleset", &[("version", &kept.to_string()), ("backup", &backup)]));
    }
    if let Some(addr) = r.port_taken {
        say!("  {}", tr("cli.restore_port_taken", &[("addr", &addr.to_string()), ("port", &addr.port().to_string())]));
    }
    // The next commands exactly as they are to be typed, this config named in each (a
    // replacement is often set up with another than the default); only CODE is left to
    // fill in: the enrollment code the issuer gives for this terminal.
    say!("{}", tr("cli.restore_next", &[]));
    let redeemd = format!("redeemd --config {}", shell_word(&config_path.display().to_string()));
    let step = |command: &str, key: &str, values: &[(&str, &str)]| {
        say!("  {}  # {}", crate::report::pad(&format!("`{redeemd} {command}`"), 60, false), tr(key, values));
    };
    if r.wrote_config && r.from_terminal.is_some() {
        let mut provision = format!(
            "provision --upstream {} --enrollment-code CODE",
            shell_word(r.upstream_url.as_deref().unwrap_or("URL"))
        );
        if let Some(ca) = &r.ca_file {
            provision.push_str(&format!(" --ca {}", shell_word(&ca.display().to_string())));
        }
        step(&provision, "cli.restore_step_provision", &[]);
    }
    if s.unanswered > 0 {
        step("sync --once", "cli.restore_step_sync", &[("count", &s.unanswered.to_string())]);
    }
    step("manager-pin set", "cli.restore_step_pin", &[]);
    step("doctor", "provision.step_doctor", &[]);
    Ok(ExitCode::SUCCESS)
}

/// `word` as one shell word: as it is when it holds nothing a shell reads specially,
/// else in single quotes. (`cli::sandbox` has the same rule for its own lines.)
pub(super) fn init(config_path: &Path, args: InitArgs) -> CliResult {
    let _ = LANG.set(args.language.language());
    if config_path.exists() && !args.force {
        return Err(usage(anyhow!(tr("error.config_exists", &[("path", &config_path.display().to_string())]))));
    }
    let keys = std::fs::read_to_string(&args.trust_key)
        .with_context(|| tr("error.cannot_read", &[("path", &args.trust_key.display().to_string())]))
        .map_err(usage)?;
    let anchors = parse_anchors(&keys)
        .with_context(|| tr("error.trust_keys_invalid", &[("path", &args.trust_key.display().to_string())]))
        .map_err(usage)?;
    let config = Config {
        data_dir: absolute(&args.data_dir),
        merchant_id: args.merchant_id,
        merchant_name: None,
        merchant_category: args.merchant_category,
        timezone: Config::canonical_timezone(&args.timezone)
            .map_err(|m| usage(anyhow!(tr("error.timezone_option", &[("problem", &m.render(lang()))]))))?,
        language: args.language.language(),
        trust_keys: None,
        upstream: None,
        api: None,
        scanner: None,
        store: None,
    };
    config.check().map_err(|m| usage(anyhow!(m.render(lang()))))?;
    crate::secret::create_private_dir(&config.data_dir)
        .with_context(|| tr("error.cannot_create", &[("path", &config.data_dir.display().to_string())]))?;
    write_file(&config.trust_keys_path(), keys.as_bytes(), 0o644)?;
    lay_down_terminal(config_path, &config)?;
    say!("{}", tr("cli.init_wrote", &[("path", &config_path.display().to_string())]));
    say!(
        "  {}",
        tr(
            "cli.init_merchant",
            &[("id", &config.merchant_id), ("category", &config.merchant_category), ("timezone", &config.timezone)]
        )
    );
    say!(
        "  {}",
        tr(
            "cli.init_keys",
            &[("count", &anchors.len().to_string()), ("path", &config.trust_keys_path().display().to_string())]
        )
    );
    say!("  {}", tr("cli.init_ledger", &[("path", &config.database_path().display().to_string())]));
    let next = format!("redeemd --config {} ruleset import FILE", config_path.display());
    say!("{}", tr("cli.next", &[("command", &next)]));
    Ok(ExitCode::SUCCESS)
}

pub(super) fn scanner_list(json: bool) -> CliResult {
    let profiles = profile::builtin()?;
    let ports = transport::list_ports(&profiles)?;
    if json {
        let profiles: Vec<_> =
            profiles.iter().map(|p| serde_json::json!({"id": p.id, "vendor": p.vendor, "model": p.model})).collect();
        say!("{}", serde_json::json!({"ports": ports, "profiles": profiles}));
        return Ok(ExitCode::SUCCESS);
    }
    for p in &ports {
        // Manufacturer and product are the device's own strings, shown as it reports them.
        let usb = p.usb.as_ref().map_or_else(
            || tr("scanner.not_usb", &[]),
            |u| {
                let serial =
                    u.serial_number.as_deref().map(|s| tr("scanner.serial", &[("serial", s)])).unwrap_or_default();
                format!(
                    "USB {}:{} `{} {}`{serial}",
                    u.vid,
                    u.pid,
                    u.manufacturer.as_deref().unwrap_or("?"),
                    u.product.as_deref().unwrap_or("?"),
                )
            },
        );
        // Profile ids are what `--profile` takes: quoted like commands.
        let matched = if p.profiles.is_empty() {
            tr("scanner.no_profile", &[])
        } else {
            format!("`{}`", p.profiles.join("`, `"))
        };
        say!("{}  {usb}  -> {matched}", p.port);
        for link in &p.by_id {
            say!("    {link}");
        }
    }
    // Only a USB serial port can be a scanner redeemd reads; say so when there is none.
    if !ports.iter().any(|p| p.usb.is_some()) {
        say!("{}", tr("scanner.no_scanner", &[]));
    }
    say!("\n{}", tr("scanner.profiles", &[]));
    for p in &profiles {
        say!("  {} `{} {}`", crate::report::pad(&format!("`{}`", p.id), 30, false), p.vendor, p.model);
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn scanner_test(port: &str, profile_id: &str, count: Option<u64>, timeout: f64, json: bool) -> CliResult {
    // An id or an edited copy, as `run` and `scanner sheet` take it.
    let profile = profile::load(profile_id).map_err(usage)?;
    if !(timeout.is_finite() && timeout > 0.0) {
        return Err(usage(anyhow!(tr("scanner.bad_timeout", &[("timeout", &timeout.to_string())]))));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(timeout.min(1e9));
    let scanner = Scanner::spawn(PortSpec::parse(port), profile);
    let mut delivered = 0u64;
    let mut out = std::io::stdout().lock();
    while count.is_none_or(|n| delivered < n) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        let Some(event) = scanner.recv_timeout(left) else {
            continue;
        };
        let line = match event {
            ScannerEvent::Connected { port } => {
                eprintln!("{}", tr("scanner.connected", &[("port", &port)]));
                continue;
            }
            ScannerEvent::Unavailable { error } if error.needs_action() => {
                return Err(anyhow!(error.text().render(lang())))
            }
            ScannerEvent::Unavailable { error } => {
                eprintln!("{}", tr("scanner.waiting", &[("error", &error.text().render(lang()))]));
                continue;
            }
            ScannerEvent::Disconnected { reason } => {
                eprintln!("{}", tr("scanner.disconnected", &[("reason", &reason.to_string())]));
                continue;
            }
            ScannerEvent::Frame { text, aim, bytes } => {
                delivered += 1;
                if json {
                    serde_json::json!({"event": "frame", "text": text, "aim": aim, "bytes": bytes}).to_string()
                } else {
                    let aim = aim.unwrap_or_else(|| tr("scanner.no_aim", &[]));
                    tr("scanner.frame", &[("aim", &aim), ("bytes", &bytes.to_string()), ("text", &text)])
                }
            }
            ScannerEvent::Discarded { reason, bytes } => {
                if json {
                    serde_json::json!({"event": "discarded", "reason": reason.as_str(), "bytes": bytes}).to_string()
                } else {
                    tr("scanner.discarded", &[("reason", reason.as_str()), ("bytes", &bytes.to_string())])
                }
            }
        };
        if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
            // The reader is gone (`scanner test | head -3`): nothing left to show.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
    // Fewer frames than asked for is a failed test (exit 3): a script can trust the status.
    if let Some(n) = count.filter(|n| delivered < *n) {
        return Err(anyhow!(tr(
            "scanner.timeout",
            &[("timeout", &timeout.to_string()), ("delivered", &delivered.to_string()), ("count", &n.to_string())]
        )));
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn scanner_sheet(profile_id: &str, out: &Path) -> CliResult {
    let profile = profile::load(profile_id).map_err(usage)?;
    let sample = Issuer::from_seed(DEMO_SEED).code(&CodeSpec::new("SAMPLE-0001", "DEMO-DINING", SystemClock.now()));
    let sheet = sheet::render_in(&profile, &sample, lang())?;
    std::fs::write(out, sheet.png()?)
        .with_context(|| tr("error.cannot_write", &[("path", &out.display().to_string())]))?;
    say!(
        "{}",
        tr(
            "scanner.sheet_wrote",
            &[("path", &out.display().to_string()), ("count", &profile.setup_codes.len().to_string())]
        )
    );
    Ok(ExitCode::SUCCESS)
}
