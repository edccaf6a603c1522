//! `report daily`: the day's write-offs as a table for people (in their language) or
//! csv / json for machines (English). It must not compute totals (`report` does).

use super::*;

pub(super) fn report_daily(
    config_path: &Path,
    date: Option<&str>,
    format: ReportFormat,
    scope: ReportScope,
) -> CliResult {
    let config = load_config(config_path)?;
    let agent = open_agent(&config)?;
    let tz = agent.timezone();
    let date = match date {
        Some(d) => d
            .parse::<jiff::civil::Date>()
            .map_err(|_| usage(anyhow!(tr("error.date_format", &[("value", &format!("{d:?}"))]))))?,
        None => agent.now().to_zoned_datetime(tz.clone()).date(),
    };
    // The day must start and end inside the instants the zone can name (9999-12-31 cannot).
    if date.to_zoned_datetime(tz.clone()).is_err()
        || date.tomorrow().and_then(|d| d.to_zoned_datetime(tz.clone())).is_err()
    {
        return Err(usage(anyhow!(tr(
            "error.date_out_of_range",
            &[("date", &date.to_string()), ("timezone", tz.iana_name().unwrap_or("UTC"))]
        ))));
    }
    if scope == ReportScope::Store {
        let report = store_report(&config, &agent, date)?;
        let text = match format {
            ReportFormat::Json => report.to_json() + "\n",
            ReportFormat::Csv => report.to_csv(),
            ReportFormat::Table => report.to_table(config.language),
        };
        say_raw!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    let report = agent.daily_report(date)?;
    let text = match format {
        ReportFormat::Json => report.to_json() + "\n",
        ReportFormat::Csv => report.to_csv(),
        ReportFormat::Table => report.to_table(config.language),
    };
    say_raw!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// The store's day from the hub's stream: connect (a few seconds at most), read every
/// event, fold. An unreachable hub is an error, never a stale report.
fn store_report(
    config: &Config,
    agent: &crate::agent::Agent,
    date: jiff::civil::Date,
) -> CliResult<crate::storeday::StoreReport> {
    let settings = crate::daemon::hubwork::settings(config)
        .map_err(|problem| usage(anyhow!(tr("config.store", &[("problem", &problem)]))))?
        .ok_or_else(|| usage(anyhow!(tr("report.no_store_hub", &[]))))?;
    let url = settings.urls.join(",");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("tokio runtime")?;
    let unreachable = |why: String| anyhow!(tr("report.hub_unreachable", &[("url", &url), ("why", &why)]));
    let events = runtime.block_on(async {
        let hub = crate::hub::Hub::connect(settings).await.map_err(|e| unreachable(e.to_string()))?;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
        while !hub.link_up() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        hub.ensure().await.map_err(|e| unreachable(e.to_string()))?;
        hub.read_events(1).await.map_err(|e| unreachable(e.to_string()))
    })?;
    let mut fold = crate::storeday::StoreFold::default();
    for (_, payload) in &events.0 {
        if let Ok(event) = serde_json::from_slice::<serde_json::Value>(payload) {
            fold.ingest(&event);
        }
    }
    let parts = agent.report_parts();
    Ok(fold.report(date, &parts.ctx(), &|c| parts.holder_limits.get(c).copied()))
}
