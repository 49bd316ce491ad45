use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = agentos::cli::Cli::parse();
    match agentos::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let code = agentos::error::exit_code(&err);
            if code != 0 && !err.is::<agentos::error::SilentExit>() {
                eprintln!("agentos: {err:#}");
            }
            ExitCode::from(code)
        }
    }
}
