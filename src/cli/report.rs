//! `report daily`: the day's write-offs as a table for people (in their language) or
//! csv / json for machines (English). It must not compute totals (`report` does).

use super::*;

pub(super) fn report_daily(config_path: &Path, date: Option<&str>, format: ReportFormat) -> CliResult {
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
    let report = agent.daily_report(date)?;
    let text = match format {
        ReportFormat::Json => report.to_json() + "\n",
        ReportFormat::Csv => report.to_csv(),
        ReportFormat::Table => report.to_table(config.language),
    };
    say_raw!("{text}");
    Ok(ExitCode::SUCCESS)
}
