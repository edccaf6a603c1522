//! Everything that talks to upstream from the command line: `provision`, `sync`, and
//! the outbox (`outbox list`, `outbox retry`), plus the nudge that wakes a running
//! daemon. It must not speak HTTP itself (`upstream` does) nor run the forwarding
//! logic (`sync::Syncer` does).

use super::*;

pub(super) fn upstream_failure(e: UpstreamError) -> anyhow::Error {
    match e {
        UpstreamError::InsecureUrl(_) => usage(e),
        other => anyhow!(other),
    }
}

/// The upstream CA file's PEM, when one is configured.
pub(super) fn read_ca(path: Option<&Path>) -> CliResult<Option<Vec<u8>>> {
    let Some(path) = path else {
        return Ok(None);
    };
    let pem = std::fs::read(path)
        .with_context(|| tr("error.cannot_read", &[("path", &path.display().to_string())]))
        .map_err(usage)?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(usage(anyhow!(tr("error.ca_without_certificate", &[("path", &path.display().to_string())]))));
    }
    Ok(Some(pem))
}

pub(super) fn provision(config_path: &Path, mut args: ProvisionArgs) -> CliResult {
    let _ = LANG.set(args.language.language());
    // Everything the installer typed is checked before any network.
    if !args.upstream.contains("://") {
        let example = format!("https://{}/", args.upstream.trim_end_matches('/'));
        return Err(usage(anyhow!(tr(
            "error.url_without_scheme",
            &[("url", &format!("{:?}", args.upstream)), ("example", &example)]
        ))));
    }
    if args.enrollment_code.trim().is_empty() {
        return Err(usage(anyhow!(tr("error.empty_enrollment_code", &[]))));
    }
    let (normalized, changed) = crate::upstream::normalize_base(&args.upstream).map_err(upstream_failure)?;
    if changed {
        say!("{}", tr("provision.url_normalized", &[("given", &args.upstream), ("used", &normalized)]));
        args.upstream = normalized;
    }
    let data_dir = absolute(&args.data_dir);
    let ca_pem = read_ca(args.ca.as_deref())?;
    let endpoint = Endpoint {
        base_url: args.upstream.clone(),
        ca_pem: ca_pem.clone(),
        system_roots: true,
        timeout: std::time::Duration::from_secs(10),
    };
    let client = Upstream::new(&endpoint, None).map_err(upstream_failure)?;
    let label = args.label.clone().unwrap_or_else(host_name);
    // Everything local is checked before the one-time code is spent: the data directory,
    // the config's directory and the ledger must all be writable.
    check_writable_dir(&data_dir)?;
    let config_dir = config_path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    check_writable_dir(config_dir)?;
    drop(Store::open(&data_dir.join(config::DATABASE_FILE))?);
    let rt = runtime()?;
    // An earlier attempt that enrolled but failed afterwards left upstream's answer: the
    // code is spent, so that answer completes this attempt.
    let saved_path = data_dir.join(ENROLLMENT_FILE);
    let saved = std::fs::read_to_string(&saved_path)
        .ok()
        .and_then(|text| serde_json::from_str::<SavedEnrollment>(&text).ok())
        .filter(|s| s.upstream == args.upstream);
    let enrollment = match saved {
        Some(saved) => {
            say!("{}", tr("provision.saved_answer", &[("path", &saved_path.display().to_string())]));
            saved.answer
        }
        None => {
            let answer = rt.block_on(client.enroll(&args.enrollment_code, &label)).map_err(upstream_failure)?;
            let saved = SavedEnrollment { upstream: args.upstream.clone(), answer };
            crate::secret::write_secret(&saved_path, serde_json::to_string(&saved)?.as_bytes())
                .with_context(|| format!("enrolled, but cannot keep the answer in {}", saved_path.display()))?;
            saved.answer
        }
    };
    let anchors = crate::ruleset::anchors_from_wire(&enrollment.ruleset_keys)
        .context("the enrollment answer's ruleset_keys are not usable trust anchors")?;
    let ca_file = match &ca_pem {
        Some(pem) => {
            let path = data_dir.join(config::UPSTREAM_CA_FILE);
            write_file(&path, pem, 0o644)?;
            Some(path)
        }
        None => None,
    };
    let config = Config {
        data_dir: data_dir.clone(),
        merchant_id: enrollment.merchant_id.clone(),
        merchant_category: enrollment.merchant_category.clone(),
        timezone: enrollment.timezone.clone(),
        language: args.language.language(),
        trust_keys: None,
        upstream: Some(config::UpstreamConfig::new(&args.upstream, &enrollment.terminal_id, ca_file)),
        api: None,
        scanner: None,
    };
    config.check().map_err(|m| anyhow!(tr("error.enrollment_unusable", &[("problem", &m.render(lang()))])))?;
    let token_path = config.token_path().unwrap_or_else(|| data_dir.join(config::TOKEN_FILE));
    crate::secret::write_secret(&token_path, enrollment.token.as_bytes())
        .with_context(|| tr("error.cannot_write", &[("path", &token_path.display().to_string())]))?;
    let keys = serde_json::to_string_pretty(&enrollment.ruleset_keys)?;
    write_file(&config.trust_keys_path(), keys.as_bytes(), 0o644)?;
    lay_down_terminal(config_path, &config)?;
    let mut agent = open_agent(&config)?;
    crate::sync::reset_after_provision(&agent)?;
    // Written in full: the saved answer (it holds the token) is no longer needed.
    let _ = std::fs::remove_file(&saved_path);
    say!(
        "{}",
        tr(
            "provision.enrolled",
            &[
                ("terminal", &enrollment.terminal_id),
                ("label", &label),
                ("merchant", &enrollment.merchant_id),
                ("name", &enrollment.merchant_name)
            ]
        )
    );
    say!(
        "  {}",
        tr(
            "provision.details",
            &[
                ("category", &enrollment.merchant_category),
                ("timezone", &enrollment.timezone),
                ("keys", &anchors.len().to_string())
            ]
        )
    );
    say!("  {}", tr("provision.config", &[("path", &config_path.display().to_string())]));
    say!("  {}", tr("provision.token", &[("path", &config.token_path().unwrap_or_default().display().to_string())]));
    say!("  {}", tr("provision.ledger", &[("path", &config.database_path().display().to_string())]));
    let bar = spinner(tr("progress.ruleset", &[]));
    let mut syncer = syncer(&config, &mut agent, &bar)?;
    let fetched = rt.block_on(async { syncer.step_refresh().await });
    bar.finish_and_clear();
    match fetched {
        Ok(()) => {
            let summary = syncer.summary.ruleset.as_ref().map_or_else(|| "-".to_owned(), ruleset_summary);
            say!("  {}", tr("provision.ruleset", &[("summary", &summary)]));
            print_next_steps(config_path);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(anyhow!(tr("provision.ruleset_failed", &[("error", &e.to_string())]))),
    }
}

/// The refresh's outcome in the reader's language, the refusal's reason included (as
/// `ruleset import` says it).
pub(super) fn ruleset_summary(outcome: &crate::sync::RulesetOutcome) -> String {
    use crate::sync::RulesetOutcome;
    match outcome {
        RulesetOutcome::NotModified => tr("sync.ruleset_not_modified", &[]),
        RulesetOutcome::Installed { version, bytes } => {
            tr("sync.ruleset_installed", &[("version", &version.to_string()), ("bytes", &bytes.to_string())])
        }
        RulesetOutcome::Unchanged { version } => tr("sync.ruleset_unchanged", &[("version", &version.to_string())]),
        RulesetOutcome::Refused { refusal, kept } => {
            let kept = kept
                .map_or_else(|| tr("cli.kept_none", &[]), |v| tr("cli.kept_version", &[("version", &v.to_string())]));
            tr("sync.ruleset_refused", &[("refusal", &refusal.text().render(lang())), ("kept", &kept)])
        }
    }
}

/// What an installer does after `provision`, command by command.
pub(super) fn print_next_steps(config_path: &Path) {
    let redeemd = if config_path == Path::new(config::DEFAULT_PATH) {
        "redeemd".to_owned()
    } else {
        format!("redeemd --config {}", config_path.display())
    };
    let step = |command: String, key: &str, values: &[(&str, &str)]| {
        // In backticks like every command to type in a text for people.
        let command = format!("`{command}`");
        say!("  {}  # {}", crate::report::pad(&command, 42, false), tr(&format!("provision.{key}"), values));
    };
    say!("\n{}", tr("provision.next_steps", &[]));
    step(format!("{redeemd} doctor"), "step_doctor", &[]);
    step(format!("{redeemd} scanner list"), "step_scanner_list", &[]);
    step(format!("{redeemd} scanner sheet --profile ID --out setup.png"), "step_scanner_sheet", &[]);
    step(format!("{redeemd} manager-pin set"), "step_manager_pin", &[]);
    if config_path == Path::new(config::DEFAULT_PATH) {
        step("systemctl enable --now redeemd".to_owned(), "step_systemctl", &[]);
    } else {
        step(format!("{redeemd} run"), "step_run", &[("path", config::DEFAULT_PATH)]);
    }
    step(format!("{redeemd} cashier-url"), "step_cashier_url", &[]);
}

/// Upstream's enrollment answer, kept (mode 0600) until provisioning has written
/// everything, so a retry after a local failure needs no new one-time code.
pub(super) const ENROLLMENT_FILE: &str = "enrollment.json";

#[derive(serde::Serialize, serde::Deserialize)]
struct SavedEnrollment {
    upstream: String,
    answer: crate::upstream::Enrollment,
}

/// Creates `dir` if needed and proves a file can be written in it.
pub(super) fn check_writable_dir(dir: &Path) -> CliResult<()> {
    std::fs::create_dir_all(dir).with_context(|| tr("error.cannot_create", &[("path", &dir.display().to_string())]))?;
    let probe = dir.join(".redeemd-write-test");
    crate::secret::write_atomic(&probe, b"", 0o600)
        .with_context(|| tr("error.dir_not_writable", &[("path", &dir.display().to_string())]))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// The syncer for this terminal; a rule-set download over 1 MiB shows as a byte bar on
/// `bar` (a spinner the caller made, hidden off a terminal), which then spins on.
pub(super) fn syncer<'a>(config: &Config, agent: &'a mut Agent, bar: &ProgressBar) -> CliResult<Syncer<'a>> {
    let Some(up) = &config.upstream else {
        return Err(usage(anyhow!(tr("error.not_provisioned", &[]))));
    };
    let upstream = crate::upstream::client_for(config, up).map_err(|e| match e {
        UpstreamError::Local(_) => usage(e),
        other => upstream_failure(other),
    })?;
    let mut syncer = Syncer::new(agent, upstream, up.terminal_id.clone(), config.data_dir.clone())?;
    let bar = bar.clone();
    let message = bar.message();
    syncer.progress = Box::new(move |done, total| {
        if let Some(total) = total.filter(|t| *t > BIG) {
            if done == 0 || bar.length() != Some(total) {
                bytes_bar(&bar, total, tr("progress.download", &[]));
            }
            bar.set_position(done);
            if done >= total {
                spinner_again(&bar, message.clone());
            }
        }
    });
    Ok(syncer)
}

pub(super) fn sync(config_path: &Path, once: bool) -> CliResult {
    let config = load_config(config_path)?;
    let mut agent = open_agent(&config)?;
    let cadence = {
        let up = config.upstream.as_ref();
        crate::sync::Cadence {
            heartbeat: std::time::Duration::from_secs(up.map_or(60, |u| u.heartbeat_secs)),
            refresh: std::time::Duration::from_secs(up.map_or(5, |u| u.refresh_minutes).saturating_mul(60)),
        }
    };
    // The spinner is for a round that ends; the endless loop logs instead.
    let bar = if once { spinner(tr("progress.sync", &[])) } else { ProgressBar::hidden() };
    let mut syncer = syncer(&config, &mut agent, &bar)?;
    let rt = runtime()?;
    if !once {
        let shutdown = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
        };
        rt.block_on(syncer.run_forever(cadence, shutdown)).map_err(|e| anyhow!(e))?;
        return Ok(ExitCode::SUCCESS);
    }
    let result = rt.block_on(syncer.run_once());
    bar.finish_and_clear();
    let s = &syncer.summary;
    if let Some(skew) = s.heartbeat_skew_s {
        let warn =
            if skew.abs() > crate::sync::CLOCK_SKEW_LIMIT { tr("sync.clock_warning", &[]) } else { String::new() };
        say!("{}{warn}", tr("sync.heartbeat", &[("skew", &format!("{skew:+}"))]));
    }
    if let Some(r) = &s.ruleset {
        say!("{}", tr("provision.ruleset", &[("summary", &ruleset_summary(r))]));
    }
    for (step, error) in &s.warnings {
        let step = tr(&format!("sync.step_{}", step.key()), &[]);
        // Upstream's own words (a 503's reason) stay as they came, quoted.
        let why = super::exit::upstream_text(error).unwrap_or_else(|| format!("`{error}`"));
        say!("{}", tr("sync.warning", &[("step", &step), ("warning", &why)]));
    }
    let [accepted, duplicate, conflict, rejected] = s.by_status;
    let parked = if s.parked > 0 { tr("sync.parked", &[("count", &s.parked.to_string())]) } else { String::new() };
    say!(
        "{}{parked}",
        tr(
            "sync.forwarded",
            &[
                ("count", &s.forwarded.to_string()),
                ("accepted", &accepted.to_string()),
                ("duplicate", &duplicate.to_string()),
                ("conflict", &conflict.to_string()),
                ("rejected", &rejected.to_string()),
            ]
        )
    );
    match result {
        Ok(()) => {
            say!("{}", tr("sync.done", &[]));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(anyhow!(e)),
    }
}

pub(super) fn outbox_list(config_path: &Path, state: Option<OutboxState>, json: bool) -> CliResult {
    let config = load_config(config_path)?;
    let agent = open_agent(&config)?;
    let tz = agent.timezone();
    let rows = agent.store().outbox_rows(state.map(OutboxState::stored))?;
    let message = |answer: &Option<String>| -> Option<String> {
        let answer = answer.as_deref()?;
        let value: serde_json::Value = serde_json::from_str(answer).ok()?;
        Some(value["reason"].as_str().or(value["message"].as_str()).unwrap_or(answer).to_owned())
    };
    if json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "seq": r.seq, "event_id": r.event_id, "type": r.kind, "redemption_id": r.redemption_id,
                    "state": r.state, "created_at": rfc3339(r.created, &tz), "message": message(&r.answer),
                })
            })
            .collect();
        say!("{}", serde_json::Value::Array(list));
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        say!("{}", tr("outbox.empty", &[]));
        return Ok(ExitCode::SUCCESS);
    }
    // The event id stays whole: `outbox retry EVENT_ID` needs it.
    let pad = crate::report::pad;
    let word = |key: String, fallback: &str| {
        let text = tr(&key, &[]);
        if text.is_empty() {
            fallback.to_owned()
        } else {
            text
        }
    };
    say!(
        "{}  {}  {}  {}  {}  {}",
        pad(&tr("outbox.seq", &[]), 6, true),
        pad(&tr("outbox.event_id", &[]), 36, false),
        pad(&tr("outbox.type", &[]), 6, false),
        pad(&tr("outbox.state", &[]), 10, false),
        pad(&tr("outbox.created", &[]), 25, false),
        tr("outbox.message", &[])
    );
    for r in &rows {
        say!(
            "{}  {}  {}  {}  {}  {}",
            pad(&r.seq.to_string(), 6, true),
            pad(&r.event_id, 36, false),
            pad(&word(format!("outbox.type_{}", r.kind), &r.kind), 6, false),
            pad(&word(format!("outbox.state_{}", r.state), r.state.as_str()), 10, false),
            pad(&rfc3339(r.created, &tz), 25, false),
            message(&r.answer).unwrap_or_default()
        );
    }
    let parked = rows.iter().filter(|r| r.state == EventState::Parked).count();
    if parked > 0 {
        say!("{}", tr("outbox.parked", &[("count", &parked.to_string())]));
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn outbox_retry(config_path: &Path, event_id: Option<&str>) -> CliResult {
    let config = load_config(config_path)?;
    let mut agent = open_agent(&config)?;
    let count = agent.store_mut().unpark(event_id)?;
    match (count, event_id) {
        (0, Some(id)) => Err(usage(anyhow!(tr("outbox.not_parked", &[("id", id)])))),
        (0, None) => {
            say!("{}", tr("outbox.none_parked", &[]));
            Ok(ExitCode::SUCCESS)
        }
        (n, _) => {
            drop(agent);
            nudge_daemon(&config);
            say!("{}", tr("outbox.queued", &[("count", &n.to_string())]));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Tells a running daemon (if any) to look at the ledger now: one authorized status
/// request to the address it bound. Its ledger owner then sees the change (a new rule
/// set, queued events), announces it and wakes the forwarder. Best effort, one second.
pub(super) fn nudge_daemon(config: &Config) {
    use std::io::Read as _;
    let addr = std::fs::read_to_string(config.data_dir.join(crate::daemon::LISTEN_FILE))
        .ok()
        .and_then(|text| text.trim().parse::<std::net::SocketAddr>().ok());
    let token = std::fs::read_to_string(crate::secret::pos_token_path(&config.data_dir)).ok();
    let (Some(addr), Some(token)) = (addr, token) else {
        return;
    };
    let timeout = std::time::Duration::from_secs(1);
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, timeout) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let request = format!(
        "GET /v1/status HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        token.trim()
    );
    if stream.write_all(request.as_bytes()).is_ok() {
        let _ = stream.read_to_end(&mut Vec::new());
    }
}
