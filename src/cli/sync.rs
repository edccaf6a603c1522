//! Everything that talks to upstream from the command line: `provision`, `sync`, and
//! the outbox (`outbox list`, `outbox retry`), plus the nudge that wakes a running
//! daemon. It must not speak HTTP itself (`upstream` does) nor run the forwarding
//! logic (`sync::Syncer` does).

use super::*;

/// An upstream failure as the command's error: what the installer typed or configured
/// (the URL, the CA file, the token file) is a usage error (exit 2), the rest 3.
pub(super) fn upstream_failure(e: UpstreamError) -> anyhow::Error {
    match e {
        UpstreamError::InsecureUrl(_)
        | UpstreamError::UrlInvalid { .. }
        | UpstreamError::CaUnusable { .. }
        | UpstreamError::CaUnreadable { .. }
        | UpstreamError::TokenUnreadable { .. } => usage(e),
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
    // A terminal that has a config keeps its data dir (a restored one: its ledger and
    // unanswered events), its language and its local settings.
    let existing = if config_path.exists() { Some(Config::load(config_path)) } else { None };
    let language = args
        .language
        .map(LanguageArg::language)
        .or_else(|| existing.as_ref().and_then(|c| c.as_ref().ok()).map(|c| c.language))
        .unwrap_or_default();
    let _ = LANG.set(language);
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
    let existing = match existing {
        None => None,
        Some(Ok(config)) => Some(config),
        Some(Err(e)) if args.data_dir.is_none() => {
            // The config's own problem in the reader's language, then what provision needs.
            let e = anyhow::Error::new(e);
            let problem = localized(&e).unwrap_or_else(|| one_line(&e));
            return Err(usage(anyhow!(tr(
                "error.provision_config_unreadable",
                &[("path", &config_path.display().to_string()), ("error", &problem)]
            ))));
        }
        // Replaced: the installer named the data dir.
        Some(Err(_)) => None,
    };
    let data_dir = match (&args.data_dir, &existing) {
        (Some(dir), Some(config)) if absolute(dir) != config.data_dir && config.database_path().exists() => {
            return Err(usage(anyhow!(tr(
                "error.provision_data_dir",
                &[
                    ("config", &config_path.display().to_string()),
                    ("configured", &config.data_dir.display().to_string()),
                    ("ledger", &config.database_path().display().to_string()),
                    ("given", &dir.display().to_string()),
                ]
            ))));
        }
        (Some(dir), _) => absolute(dir),
        (None, Some(config)) => config.data_dir.clone(),
        (None, None) => PathBuf::from(DEFAULT_DATA_DIR),
    };
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
    // the config's directory and the ledger must all be writable. The data directory is
    // made 0700 (it holds the ledger and the tokens) before the check could make it.
    crate::secret::create_private_dir(&data_dir)
        .with_context(|| tr("error.cannot_create", &[("path", &data_dir.display().to_string())]))?;
    check_writable_dir(&data_dir)?;
    let config_dir = config_path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    check_writable_dir(config_dir)?;
    // A ledger already there must be ours and writable. A new one is made only once
    // enrolled (`lay_down_terminal`, which gives it to the data dir's owner), so a refused
    // code leaves no empty ledger behind, root's, that purge would keep and the daemon
    // could not open.
    let ledger = data_dir.join(config::DATABASE_FILE);
    if ledger.exists() {
        drop(Store::open(&ledger)?);
    }
    let rt = runtime()?;
    // The enrollment's request id is on disk before anything is sent; an answer upstream
    // gave for this code (an earlier run that failed afterwards) completes this run.
    let entry_path = crate::enrollment::path(&data_dir);
    let entry = || entry_path.display().to_string();
    let begun = crate::enrollment::begin(&data_dir, &args.upstream, &args.enrollment_code, &SystemClock)
        .with_context(|| tr("error.cannot_write", &[("path", &entry())]))?;
    if let Some(aside) = &begun.set_aside {
        say!("{}", set_aside_text(aside));
    }
    let mut pending = begun.pending;
    let ca_file = ca_pem.as_ref().map(|_| data_dir.join(config::UPSTREAM_CA_FILE));
    let terminal = |answer: &crate::upstream::Enrollment| {
        terminal_config(answer, &args.upstream, &data_dir, ca_file.clone(), language, existing.as_ref())
    };
    let saved = match pending.answer.clone() {
        Some(answer) => match terminal(&answer) {
            Ok(_) => {
                say!("{}", tr("provision.saved_answer", &[("path", &entry())]));
                Some(answer)
            }
            Err(problem) => {
                // Not this run's to keep: asked for again under the same request id.
                say!("{}", tr("provision.saved_answer_unusable", &[("path", &entry()), ("problem", &problem)]));
                pending.answer = None;
                crate::enrollment::save(&data_dir, &pending)
                    .with_context(|| tr("error.cannot_write", &[("path", &entry())]))?;
                None
            }
        },
        None => {
            if begun.resumed {
                say!("{}", tr("provision.resumed", &[("made", &pending.made_at), ("request_id", &pending.request_id)]));
            }
            None
        }
    };
    let enrollment = match saved {
        Some(answer) => answer,
        None => {
            let sent = rt.block_on(crate::enrollment::enroll(
                &client,
                &args.enrollment_code,
                &label,
                &pending.request_id,
                &SystemClock,
                |attempt, e| {
                    let values = [
                        ("reason", upstream_text(e)),
                        ("attempt", attempt.to_string()),
                        ("attempts", crate::enrollment::ATTEMPTS.to_string()),
                    ];
                    let values: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    say!("{}", tr("provision.answer_retry", &values));
                },
            ));
            match sent {
                Ok(answer) => answer,
                Err(
                    e @ (UpstreamError::InvalidCode { .. }
                    | UpstreamError::CodeUsed { .. }
                    | UpstreamError::CodeExpired { .. }),
                ) => {
                    // Refused for good: the enrollment is over, its request id with it.
                    crate::enrollment::refused(&data_dir);
                    return Err(upstream_failure(e));
                }
                Err(e) if crate::enrollment::may_be_lost(&e) => {
                    return Err(anyhow!(tr(
                        "error.enrollment_answer_lost",
                        &[
                            ("attempts", &crate::enrollment::ATTEMPTS.to_string()),
                            ("reason", &upstream_text(&e)),
                            ("path", &entry()),
                        ]
                    )));
                }
                Err(e) => return Err(upstream_failure(e)),
            }
        }
    };
    let (config, anchors) = terminal(&enrollment).map_err(|problem| {
        anyhow!(tr(
            "error.enrollment_unusable",
            &[("problem", &problem), ("path", &entry()), ("request_id", &pending.request_id)]
        ))
    })?;
    if pending.answer.is_none() {
        pending.answer = Some(enrollment.clone());
        crate::enrollment::save(&data_dir, &pending)
            .with_context(|| tr("error.enrollment_not_kept", &[("path", &entry())]))?;
    }
    if let (Some(pem), Some(path)) = (&ca_pem, &ca_file) {
        write_file(path, pem, 0o644)?;
    }
    let token_path = config.token_path().unwrap_or_else(|| data_dir.join(config::TOKEN_FILE));
    crate::secret::write_secret(&token_path, enrollment.token.as_bytes())
        .with_context(|| tr("error.cannot_write", &[("path", &token_path.display().to_string())]))?;
    let keys = serde_json::to_string_pretty(&enrollment.ruleset_keys)?;
    write_file(&config.trust_keys_path(), keys.as_bytes(), 0o644)?;
    lay_down_terminal(config_path, &config)?;
    let mut agent = open_agent(&config)?;
    crate::sync::reset_after_provision(&agent)?;
    // Written in full: the entry (it holds the token) is no longer needed.
    let others = crate::enrollment::finish(&data_dir);
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
    if let Some(old) = existing.as_ref().filter(|old| old.merchant_id != enrollment.merchant_id) {
        say!(
            "  {}",
            tr(
                "provision.other_merchant",
                &[
                    ("old", &old.merchant_id),
                    ("new", &enrollment.merchant_id),
                    ("config", &config_path.display().to_string())
                ]
            )
        );
    }
    if !others.is_empty() {
        let files: Vec<String> = others.iter().map(|p| p.display().to_string()).collect();
        say!(
            "  {}",
            tr("provision.others_kept", &[("count", &others.len().to_string()), ("files", &files.join(", "))])
        );
    }
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
        Err(e) => Err(anyhow!(tr("provision.ruleset_failed", &[("error", &upstream_text(&e))]))),
    }
}

/// Where `provision` puts a terminal that has no config yet and no `--data-dir`.
const DEFAULT_DATA_DIR: &str = "/var/lib/redeemd";

/// The terminal an enrollment answer makes, or why it makes none (in the reader's
/// language). An existing config's local settings ([api], [scanner], upstream periods,
/// token file) are kept; identity, merchant and trust come from the answer.
fn terminal_config(
    answer: &crate::upstream::Enrollment,
    upstream: &str,
    data_dir: &Path,
    ca_file: Option<PathBuf>,
    language: crate::messages::Language,
    existing: Option<&Config>,
) -> Result<(Config, Vec<crate::ruleset::TrustAnchor>), String> {
    let anchors = crate::ruleset::anchors_from_wire(&answer.ruleset_keys)
        .map_err(|e| tr("error.enrollment_trust_keys", &[("error", &e.to_string())]))?;
    let mut up = config::UpstreamConfig::new(upstream, &answer.terminal_id, ca_file);
    if let Some(old) = existing.and_then(|c| c.upstream.as_ref()) {
        up.system_roots = old.system_roots;
        up.token_file = old.token_file.clone();
        up.timeout_secs = old.timeout_secs;
        up.refresh_minutes = old.refresh_minutes;
        up.heartbeat_secs = old.heartbeat_secs;
    }
    let config = Config {
        data_dir: data_dir.to_owned(),
        merchant_id: answer.merchant_id.clone(),
        merchant_name: Some(answer.merchant_name.trim().to_owned()).filter(|n| !n.is_empty()),
        merchant_category: answer.merchant_category.clone(),
        timezone: answer.timezone.clone(),
        language,
        trust_keys: None,
        upstream: Some(up),
        api: existing.and_then(|c| c.api.clone()),
        scanner: existing.and_then(|c| c.scanner.clone()),
        store: existing.and_then(|c| c.store.clone()),
    };
    config.check().map_err(|m| m.render(lang()))?;
    Ok((config, anchors))
}

/// What happened to the enrollment that stood in this code's way.
fn set_aside_text(aside: &crate::enrollment::SetAside) -> String {
    use crate::enrollment::SetAside;
    match aside {
        SetAside::OtherCode { path, made_at, request_id, terminal: None } => tr(
            "provision.set_aside_other",
            &[("path", &path.display().to_string()), ("made", made_at), ("request_id", request_id)],
        ),
        SetAside::OtherCode { path, made_at, terminal: Some(terminal), .. } => tr(
            "provision.set_aside_enrolled",
            &[("path", &path.display().to_string()), ("made", made_at), ("terminal", terminal)],
        ),
        SetAside::Unbound { path, terminal } => {
            tr("provision.set_aside_unbound", &[("path", &path.display().to_string()), ("terminal", terminal)])
        }
        SetAside::Unreadable { path, error } => {
            tr("provision.set_aside_unreadable", &[("path", &path.display().to_string()), ("error", error)])
        }
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
            if skew.abs() > crate::clock::CLOCK_SKEW_LIMIT { tr("sync.clock_warning", &[]) } else { String::new() };
        say!("{}{warn}", tr("sync.heartbeat", &[("skew", &format!("{skew:+}"))]));
    }
    if let Some(r) = &s.ruleset {
        say!("{}", tr("provision.ruleset", &[("summary", &ruleset_summary(r))]));
    }
    let mut said = None;
    for (step, error) in &s.warnings {
        let step = tr(&format!("sync.step_{}", step.key()), &[]);
        // The same failure again (every step meets an unreachable upstream) is not spelled out twice.
        if said.as_ref() == Some(error) {
            say!("{}", tr("sync.warning_same", &[("step", &step)]));
        } else {
            say!("{}", tr("sync.warning", &[("step", &step), ("warning", &super::exit::upstream_text(error))]));
        }
        said = Some(error.clone());
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
    result.map_err(|e| anyhow!(e))?;
    say!("{}", tr("sync.done", &[]));
    // Delivered, but a terminal without a rule set refuses every code: not a success.
    drop(syncer);
    if agent.store().ruleset_version()?.is_none() {
        return Err(anyhow!(tr("sync.no_ruleset", &[])));
    }
    Ok(ExitCode::SUCCESS)
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
/// request to the address it bound, once it has proven that it is this data dir's daemon
/// (no other listener gets the token). Its ledger owner then sees the change (a new rule
/// set, queued events), announces it and wakes the forwarder. Best effort, one second.
pub(super) fn nudge_daemon(config: &Config) {
    let Ok(token) = std::fs::read_to_string(crate::secret::pos_token_path(&config.data_dir)) else {
        return;
    };
    let timeout = std::time::Duration::from_secs(1);
    // The token goes only to this data dir's daemon, proven on the same connection.
    if let crate::local_daemon::Found::Ours(mut daemon) = crate::local_daemon::find(&config.data_dir, timeout) {
        let _ = daemon.get("/v1/status", token.trim(), timeout);
    }
}
