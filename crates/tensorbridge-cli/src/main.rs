//! The `tensorbridge` binary; the command itself lives in the library
//! ([`tensorbridge_cli::run`]), shared with the `tensorbridge` console script that
//! `pip install` installs.

use std::process::ExitCode;

fn main() -> ExitCode {
    let code = tensorbridge_cli::run(std::env::args_os());
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
