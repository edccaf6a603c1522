//! The `redeemd` binary: everything lives in the library; see `redeemd::cli`.

fn main() -> std::process::ExitCode {
    redeemd::cli::main()
}
