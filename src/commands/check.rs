//! `agentos check [PATH]`: validate an agents file and print what it defines.

use super::Context;
use crate::config::Config;

pub fn run(path: Option<&std::path::Path>, ctx: &Context) -> anyhow::Result<()> {
    let path = match path {
        Some(p) => p.to_path_buf(),
        None => Config::find(ctx.config_path.as_deref())?,
    };
    let config = Config::load(&path)?;
    let (report, warnings) = config.check_report();
    std::io::Write::write_all(&mut std::io::stdout(), report.as_bytes())?;
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    Ok(())
}
