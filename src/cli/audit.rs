//! `cantocap audit`: check the server's audit log.

use std::path::PathBuf;

use anyhow::{bail, Result};

use cantocap::server::audit::{self, Verdict};

/// Subcommands of `cantocap audit`.
#[derive(clap::Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the hash chain of an audit log: exit 0 with "N records, chain intact",
    /// or 1 naming the first bad record (line and seq) and what is wrong with it.
    #[command(after_help = "An edited, reordered, inserted or deleted record (the first one
included) and a log cut short are all detected. Keep the printed last hash
somewhere else: a log rewritten from some record onwards can only be caught
against it.")]
    Verify {
        /// The audit log (`cantocap serve --audit-log PATH`).
        path: PathBuf,
    },
}

/// Run `cantocap audit …`.
pub fn run(command: AuditCommand) -> Result<()> {
    match command {
        AuditCommand::Verify { path } => match audit::verify(&path)? {
            Verdict::Intact { records, last_hash } => {
                println!("{records} records, chain intact (last hash {last_hash})");
                Ok(())
            }
            Verdict::Broken(at) => bail!("{}: chain broken at {at}", path.display()),
        },
    }
}
