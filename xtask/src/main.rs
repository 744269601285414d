//! Project automation, run as `cargo xtask <task>` (alias in `.cargo/config.toml`).
//!
//! Tasks:
//! - `proto`: regenerate `crates/buildkit-proto/src/generated/` from `proto/`.
//! - `proto --check`: exit non-zero, naming the stale files, when the checked-in code differs
//!   from what `proto` would write. A test runs the same check, so `cargo test` fails on stale
//!   generated code.

mod invariants;
mod proto;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  proto           regenerate crates/buildkit-proto/src/generated/ from proto/
  proto --check   fail (naming the files) if the generated code is stale
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["proto"] => proto::run(proto::Mode::Write),
        ["proto", "--check"] => proto::run(proto::Mode::Check),
        ["help" | "--help" | "-h"] => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
