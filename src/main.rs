use std::process::ExitCode;

use clap::Parser;

/// mimalloc: a run allocates and frees many small buffers across runtime threads, where
/// glibc's allocator spends its time in arena locks and consolidation.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
