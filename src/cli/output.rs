//! How the command line talks to people: `say!` (stdout that ends quietly on a closed
//! pipe), the run's language (`LANG`, set once from the config or `--language`) and its
//! texts from the message tables (`tr`), colour only on a terminal without `NO_COLOR`,
//! and progress (`indicatif`) on stderr only when it is a terminal. It must not decide
//! outcomes or exit statuses, nor hold English texts.

use super::*;

/// Prints a line to stdout; a closed stdout (`redeemd ruleset show | head -1`) is not an
/// error and no panic like `println!`'s: the rest of the output is dropped and the command
/// ends with the status its work earns (0 for output-only commands).
macro_rules! say {
    () => { $crate::cli::output::emit(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::output::emit(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `say!` without the line ending.
macro_rules! say_raw {
    ($($arg:tt)*) => { $crate::cli::output::emit(format_args!($($arg)*)) };
}

/// Set once stdout's reader has gone.
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether stdout's reader has gone (a command that only prints may stop early).
pub(super) fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Writes to stdout. On a broken pipe the reader is gone: nothing more is written, but
/// the command goes on to its own exit status — `doctor | head` or `sync --once | head`
/// under `pipefail` must still say 3 when something is wrong. Other write errors (a full
/// disk behind a redirection) are ignored as `println!` would not.
#[doc(hidden)]
pub fn emit(args: std::fmt::Arguments<'_>) {
    if stdout_closed() {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            STDOUT_CLOSED.store(true, std::sync::atomic::Ordering::Relaxed);
            silence_stdout();
        }
    }
}

/// Points file descriptor 1 at /dev/null once stdout's reader has gone, so that nothing
/// else this process prints can panic on EPIPE: not only `say!`, but any `println!` on
/// the way, such as the daemon's "listening on" line when the live demo runs under
/// `redeemd demo | head -1`. What std still buffers for stdout is written there too.
fn silence_stdout() {
    use std::os::fd::AsRawFd as _;
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        // On failure stdout stays the broken pipe: `say!` already stops writing to it.
        let _ = nix::unistd::dup2(null.as_raw_fd(), std::io::stdout().as_raw_fd());
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
    match Config::load(config_path) {
        Ok(config) => {
            let _ = LANG.set(config.language);
        }
        Err(e) => {
            if let Some(language) = e.language() {
                let _ = LANG.set(language);
            }
        }
    }
}

/// Work on data over this size (a rule set, a download) gets a progress indicator.
pub(super) const BIG: u64 = 1 << 20;

/// A spinner with the elapsed time on stderr for work that may take seconds (import,
/// sync, backup: their library calls report no steps). Drawn only when stderr is a
/// terminal, so never in pipes, logs or tests; its templates carry no colour, so
/// `NO_COLOR` holds too. `finish_and_clear` removes it before the result is printed, and
/// dropping it unfinished (an error returned half-way) clears it too, so an error message
/// never follows a stale spinner line.
pub(super) fn spinner(message: String) -> ProgressBar {
    use std::io::IsTerminal as _;
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner().with_finish(indicatif::ProgressFinish::AndClear);
    spinner_again(&bar, message);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// `bar` back to a spinner (after a byte bar) with `message`.
pub(super) fn spinner_again(bar: &ProgressBar, message: impl Into<std::borrow::Cow<'static, str>>) {
    let style =
        ProgressStyle::with_template("{spinner} {msg} {elapsed}").unwrap_or_else(|_| ProgressStyle::default_spinner());
    bar.set_style(style);
    bar.set_message(message);
}

/// `bar` as a byte bar of `total` bytes with `message`.
pub(super) fn bytes_bar(bar: &ProgressBar, total: u64, message: String) {
    let style = ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {eta}")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_length(total);
    bar.set_message(message);
}

/// A word of a command line printed for someone to paste into a shell: as it is when
/// it is plainly safe, else single-quoted.
pub(super) fn shell_word(word: &str) -> String {
    if !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-:=@+".contains(&b)) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}
