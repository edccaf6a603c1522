//! How the command line talks to people: `say!` (stdout that ends quietly on a closed
//! pipe), the run's language (`LANG`, set once from the config or `--language`) and its
//! texts from the message tables (`tr`), and colour only on a terminal without
//! `NO_COLOR`. It must not decide outcomes or exit statuses, nor hold English texts.

use super::*;

/// Prints a line to stdout; a closed stdout (`redeemd ruleset show | head -1`) ends the
/// command quietly with exit 0 instead of panicking like `println!`.
macro_rules! say {
    () => { $crate::cli::output::emit(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::output::emit(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `say!` without the line ending.
macro_rules! say_raw {
    ($($arg:tt)*) => { $crate::cli::output::emit(format_args!($($arg)*)) };
}

/// Writes to stdout; on a broken pipe the reader is gone and nothing else is worth
/// saying, so the process ends with exit 0 (only output-only commands print this way
/// after their work is done; a decision's own line uses `print_record`). Other write
/// errors (a full disk behind a redirection) are ignored like `println!` would not.
#[doc(hidden)]
pub fn emit(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

/// The configured language of this run (zh-CN until a config or `--language` says).
pub(super) static LANG: std::sync::OnceLock<Language> = std::sync::OnceLock::new();

pub(super) fn lang() -> Language {
    LANG.get().copied().unwrap_or_default()
}

/// The text `section.key` in this run's language with `{name}`s filled in.
pub(super) fn tr(key: &str, values: &[(&str, &str)]) -> String {
    crate::messages::fill(lang(), key, values)
}

/// Colour (ANSI escapes) only on a terminal and never when `NO_COLOR` is set (non-empty).
pub(super) fn colour(terminal: bool) -> bool {
    terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// For commands that work without a config (scanner, doctor): its language when there is one.
pub(super) fn language_from(config_path: &Path) {
    if let Ok(config) = Config::load(config_path) {
        let _ = LANG.set(config.language);
    }
}
