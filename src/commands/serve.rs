//! `agentos serve`: load config, open store, bind, serve until Ctrl-C or SIGTERM.

use super::Context;
use crate::cli::ServeArgs;

pub fn run(_args: ServeArgs, _ctx: &Context) -> anyhow::Result<()> {
    anyhow::bail!("serve is not available in this build")
}
