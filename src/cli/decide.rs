//! `check`, `redeem` and `void`: the cashier's commands. Parses the code, the amounts
//! and `--at`, asks the [`Agent`] and prints the decision (record) and its advice. It
//! must not decide (`decision` does) nor read the clock (the agent does).

use super::*;

/// Reads the code argument; `-` reads one code from stdin (its final line ending dropped,
/// spaces kept: space is a base45 character).
pub(super) fn read_code(arg: &str) -> CliResult<String> {
    if arg != "-" {
        return Ok(arg.to_owned());
    }
    const MAX_STDIN: u64 = 4 << 20;
    let mut buf = Vec::new();
    std::io::stdin().take(MAX_STDIN + 1).read_to_end(&mut buf).with_context(|| tr("error.stdin", &[]))?;
    if buf.len() as u64 > MAX_STDIN {
        return Err(usage(anyhow!(tr("error.stdin_too_long", &[]))));
    }
    let mut text = String::from_utf8_lossy(&buf).into_owned();
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

pub(super) fn amount(flag: &str, text: &str, digits: u32) -> CliResult<Money> {
    parse_amount(text, digits).map_err(|_| {
        usage(anyhow!(tr(
            "error.amount",
            &[("flag", flag), ("value", &format!("{text:?}")), ("digits", &digits.to_string())]
        )))
    })
}

pub(super) fn present(config_path: &Path, args: CodeArgs, check_at: Option<Option<String>>) -> CliResult {
    // clap reports a mistyped option itself; a code given after `--` that looks like an
    // option (`-- -x`) must still not become a code answered `malformed`.
    let config = load_config(config_path)?;
    if args.code.starts_with('-') && args.code != "-" {
        return Err(usage(anyhow!(tr("error.unknown_option", &[("option", &format!("{:?}", args.code))]))));
    }
    let mut agent = open_agent_for_codes(&config)?;
    let digits = agent.currency_digits();
    let basket_total = amount("amount", &args.amount, digits)?;
    let eligible_total = args.eligible.as_deref().map(|e| amount("eligible", e, digits)).transpose()?;
    if let Some(eligible) = eligible_total.filter(|e| *e > basket_total) {
        return Err(usage(anyhow!(tr(
            "error.eligible_over_amount",
            &[("eligible", &eligible.display(digits)), ("amount", &basket_total.display(digits))]
        ))));
    }
    let code = read_code(&args.code)?;
    let single = CheckoutRef::Single { basket_total, eligible_total, pos_ref: None };
    let (decision, redemption_id) = match check_at.clone() {
        Some(at) => {
            let at = at
                .map(|t| {
                    t.parse::<Timestamp>()
                        .map_err(|_| usage(anyhow!(tr("error.at_format", &[("value", &format!("{t:?}"))]))))
                })
                .transpose()?;
            (agent.check(single, &code, at)?, None)
        }
        None => {
            let recorded = agent.redeem(single, &code)?;
            (recorded.decision, recorded.redemption_id)
        }
    };
    let record = agent.record_with_advice(&decision, redemption_id, eligible_total.unwrap_or(basket_total))?;
    let check_only = check_at.is_some();
    print_record(&record, args.json, digits, agent.currency().unwrap_or("CNY"), check_only);
    Ok(if decision.accepted() { Exit::Done } else { Exit::Rejected }.into())
}

/// The decision for people (in the configured language) or, with `--json`, the
/// decision record on one line. Write errors are ignored: the decision is made and
/// recorded, and the exit status still says which.
pub(super) fn print_record(record: &DecisionRecord, json: bool, digits: u32, currency: &str, check_only: bool) {
    let mut out = std::io::stdout().lock();
    let dash = || "-".to_owned();
    let coupon = record.coupon_id.clone().unwrap_or_else(dash);
    let campaign = record.campaign_id.clone().unwrap_or_else(dash);
    if json {
        let _ = writeln!(out, "{}", serde_json::to_string(record).unwrap_or_default());
    } else if record.decision == "accepted" {
        let amount = Money(record.discount).display(digits);
        let _ = writeln!(
            out,
            "{}",
            tr(
                "cli.accepted_line",
                &[("amount", &amount), ("currency", currency), ("coupon", &coupon), ("campaign", &campaign)]
            )
        );
        if let Some(id) = &record.redemption_id {
            let _ = writeln!(out, "  {}", tr("cli.redemption_line", &[("id", id)]));
        }
        let _ = writeln!(out, "  {}", record.message);
    } else {
        let reason = record.reason.clone().unwrap_or_else(dash);
        let _ = writeln!(out, "{}", tr("cli.rejected_line", &[("reason", &reason)]));
        if record.coupon_id.is_some() {
            let _ = writeln!(out, "  {}", tr("cli.coupon_line", &[("coupon", &coupon), ("campaign", &campaign)]));
        }
        let _ = writeln!(out, "  {}", record.message);
    }
    if check_only && !json {
        let _ = writeln!(out, "  {}", tr("cli.check_only", &[]));
    }
    let _ = out.flush();
}

pub(super) fn void(config_path: &Path, args: &VoidArgs) -> CliResult {
    let config = load_config(config_path)?;
    let mut agent = open_agent(&config)?;
    let digits = agent.currency_digits();
    match agent.void(&args.redemption_id, args.reason.as_deref())? {
        VoidOutcome::Voided { coupon_id, discount } => {
            say!(
                "{}",
                tr(
                    "cli.voided",
                    &[("id", &args.redemption_id), ("coupon", &coupon_id), ("amount", &discount.display(digits))]
                )
            );
            Ok(ExitCode::SUCCESS)
        }
        VoidOutcome::AlreadyVoided { at } => {
            say!("{}", tr("cli.already_voided", &[("id", &args.redemption_id), ("at", &at.to_string())]));
            Ok(ExitCode::SUCCESS)
        }
        VoidOutcome::NotFound => Err(anyhow!(tr("error.void_not_found", &[("id", &args.redemption_id)]))),
    }
}
