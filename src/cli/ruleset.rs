//! `ruleset import` and `ruleset show`: verify and install a signed rule set through
//! the [`Agent`], warn when no campaign admits this terminal, show what is in force. It
//! must not verify or store anything itself (`ruleset`, `store` do).

use super::*;

pub(super) fn ruleset_import(config_path: &Path, file: &Path) -> CliResult {
    let config = load_config(config_path)?;
    let bytes = std::fs::read(file)
        .with_context(|| tr("error.cannot_read", &[("path", &file.display().to_string())]))
        .map_err(usage)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| usage(anyhow!(tr("error.ruleset_not_text", &[("path", &file.display().to_string())]))))?;
    let mut agent = open_agent(&config)?;
    let before = agent.installed().map(|i| i.rules.version);
    // Verifying and indexing a big rule set (a long revoked list) takes seconds.
    let bar = if text.len() as u64 > BIG { spinner(tr("progress.import", &[])) } else { ProgressBar::hidden() };
    let imported = agent.import_ruleset(text);
    bar.finish_and_clear();
    match imported {
        Ok(Install::Installed { previous }) => {
            let rules = &agent.installed().ok_or_else(|| anyhow!("installed rule set vanished"))?.rules;
            let was = previous.map_or_else(|| tr("cli.none", &[]), |v| v.to_string());
            say!(
                "{}",
                tr(
                    "cli.import_installed",
                    &[
                        ("version", &rules.version.to_string()),
                        ("was", &was),
                        ("campaigns", &rules.campaigns.len().to_string()),
                        ("revoked", &rules.revoked_count.to_string()),
                        ("until", &rfc3339(rules.expires_at, &rules.timezone)),
                    ]
                )
            );
            if let Some(warning) = refuses_this_terminal(rules, &config, config_path) {
                eprintln!("{warning}");
            }
            drop(agent);
            nudge_daemon(&config);
            Ok(ExitCode::SUCCESS)
        }
        Ok(Install::Unchanged) => {
            say!("{}", tr("cli.import_unchanged", &[("version", &before.unwrap_or_default().to_string())]));
            Ok(ExitCode::SUCCESS)
        }
        Err(ImportError::Refused(refusal)) => {
            let kept = before
                .map_or_else(|| tr("cli.kept_none", &[]), |v| tr("cli.kept_version", &[("version", &v.to_string())]));
            let path = file.display().to_string();
            Err(anyhow!(tr(
                "error.ruleset_refused",
                &[("file", &path), ("refusal", &refusal.text().render(lang())), ("kept", &kept)]
            )))
        }
        Err(ImportError::Store(e)) => Err(e.into()),
    }
}

/// When no campaign of `rules` admits this terminal (its merchant id or category), the
/// warning that says so: every code would be refused `wrong_merchant`. The most common
/// installer mistake is a category that differs only in case (`Dining` vs `dining`).
pub(super) fn refuses_this_terminal(
    rules: &crate::ruleset::RuleSet,
    config: &Config,
    config_path: &Path,
) -> Option<String> {
    let admits = |c: &crate::ruleset::Campaign| {
        (c.merchants.is_empty() || c.merchants.contains(&config.merchant_id))
            && (c.merchant_categories.is_empty() || c.merchant_categories.contains(&config.merchant_category))
    };
    if rules.campaigns.is_empty() || rules.campaigns.values().any(admits) {
        return None;
    }
    let mut wanted: Vec<&str> =
        rules.campaigns.values().flat_map(|c| c.merchant_categories.iter().map(String::as_str)).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let case = wanted
        .iter()
        .find(|w| w.eq_ignore_ascii_case(&config.merchant_category))
        .map(|w| tr("error.case_hint", &[("spelled", &format!("{w:?}"))]))
        .unwrap_or_default();
    let wanted = if wanted.is_empty() { tr("error.only_listed_merchants", &[]) } else { wanted.join(", ") };
    Some(tr(
        "error.refuses_this_terminal",
        &[
            ("merchant_id", &format!("{:?}", config.merchant_id)),
            ("category", &format!("{:?}", config.merchant_category)),
            ("case", &case),
            ("wanted", &wanted),
            ("config", &config_path.display().to_string()),
        ],
    ))
}

pub(super) fn ruleset_show(config_path: &Path, json: bool) -> CliResult {
    let config = load_config(config_path)?;
    let mut agent = open_agent(&config)?;
    let loaded = agent.installed().is_some();
    let derived = agent.check_derived_tables();
    let now = agent.now();
    if let (Err(problem), true) = (&derived, loaded) {
        return Err(anyhow!(tr("error.derived_tables", &[("problem", &problem.to_string())])));
    }
    let Some(installed) = agent.installed() else {
        if json {
            // The fields the spec names are there, null, so a reader need not test for them.
            say!(
                "{}",
                serde_json::json!({"version": null, "installed": false, "issued_at": null, "expires_at": null,
                    "timezone": null, "campaigns": null, "revoked": null})
            );
        } else {
            say!("{}", tr("cli.ruleset_none", &[]));
        }
        return Ok(ExitCode::SUCCESS);
    };
    let rules = &installed.rules;
    // check_derived_tables re-verified the signature and matched the tables against it.
    let signature = "verified".to_owned();
    let age_s = (now - installed.installed_at).as_secs();
    if json {
        let campaigns: Vec<_> = rules
            .campaigns
            .values()
            .map(|c| {
                serde_json::json!({"id": c.id, "name": c.name, "face_value": c.face_value.0, "min_spend": c.min_spend.0,
                "status": c.status, "valid_from": c.valid_from.to_string(), "valid_until": c.valid_until.to_string()})
            })
            .collect();
        say!(
            "{}",
            serde_json::json!({
                "installed": true, "version": rules.version, "issuer": rules.issuer,
                "issued_at": rules.issued_at.to_string(), "expires_at": rules.expires_at.to_string(),
                "timezone": rules.timezone_name, "currency": rules.currency,
                "campaigns": rules.campaigns.len(), "revoked": rules.revoked_count,
                "installed_at": installed.installed_at.to_string(), "age_seconds": age_s,
                "signature": signature, "derived_tables": "match", "campaign_list": campaigns,
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    let digits = rules.currency_digits();
    let unnamed = tr("cli.ruleset_issuer_unnamed", &[]);
    let issuer = rules.issuer.as_deref().unwrap_or(&unnamed);
    say!("{}", tr("cli.ruleset_header", &[("version", &rules.version.to_string()), ("issuer", issuer)]));
    let local = |ts| rfc3339(ts, &rules.timezone);
    say!("  {}", tr("cli.ruleset_issued", &[("at", &local(rules.issued_at))]));
    let expired = if now >= rules.expires_at { tr("cli.ruleset_expired", &[]) } else { String::new() };
    say!("  {}{expired}", tr("cli.ruleset_expires", &[("at", &local(rules.expires_at))]));
    say!(
        "  {}",
        tr("cli.ruleset_installed", &[("at", &local(installed.installed_at)), ("hours", &(age_s / 3600).to_string())])
    );
    say!(
        "  {}",
        tr(
            "cli.ruleset_zone",
            &[
                ("timezone", &rules.timezone_name),
                ("currency", &rules.currency),
                ("max", &rules.max_coupons_per_basket.to_string())
            ]
        )
    );
    say!("  {}", tr("cli.ruleset_revoked", &[("count", &rules.revoked_count.to_string())]));
    say!("  {}", tr("cli.ruleset_campaigns", &[("count", &rules.campaigns.len().to_string())]));
    for c in rules.campaigns.values() {
        let status = tr(&format!("cli.status_{}", format!("{:?}", c.status).to_lowercase()), &[]);
        let terms = tr(
            "cli.ruleset_campaign",
            &[("face", &c.face_value.display(digits)), ("min", &c.min_spend.display(digits))],
        );
        say!(
            "    {} {} {}  {}",
            crate::report::pad(&crate::report::shorten(&c.id, 20), 20, false),
            crate::report::pad(&status, 8, false),
            crate::report::pad(&terms, 22, false),
            c.display_name(config.language.tag())
        );
    }
    Ok(ExitCode::SUCCESS)
}
