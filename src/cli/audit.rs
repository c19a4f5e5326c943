//! `cantocap audit`: check the server's audit log.

use std::path::PathBuf;

use anyhow::{bail, Result};

use cantocap::privacy::audit::{self, Verdict};

/// Subcommands of `cantocap audit`.
#[derive(clap::Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the hash chain of an audit log: exit 0 with "N records, chain intact",
    /// or 1 naming the first bad record (line and seq) and what is wrong with it.
    #[command(after_help = "An edited, reordered, inserted or deleted record (the first one
included) and a log cut short are all detected. Keep the printed last hash
somewhere else: a log rewritten from some record onwards can only be caught
against it: `--expect-last HASH` does so. A log restarted after damage (see
`cantocap serve --audit-log`) verifies from its restart record, and says so.")]
    Verify {
        /// The audit log (`cantocap serve --audit-log PATH`).
        path: PathBuf,
        /// Fail unless the log's last hash is this one (the hash the server logged at
        /// shutdown or showed in /metrics): catches records deleted from the end.
        #[arg(long, value_name = "HASH")]
        expect_last: Option<String>,
    },
}

/// Run `cantocap audit …`.
pub fn run(command: AuditCommand) -> Result<()> {
    match command {
        AuditCommand::Verify { path, expect_last } => match audit::verify(&path)? {
            Verdict::Intact { records, last_hash, restarted } => {
                if let Some(restart) = restarted {
                    println!(
                        "the chain was restarted after record {} (hash {}): {}",
                        restart.after_seq, restart.after_hash, restart.detail
                    );
                }
                match expect_last {
                    Some(expected) if !expected.trim().eq_ignore_ascii_case(&last_hash) => bail!(
                        "{}: the last hash is {last_hash}, not {}: records were removed from the end, or the log was rewritten",
                        path.display(),
                        expected.trim()
                    ),
                    _ => {
                        println!("{records} records, chain intact (last hash {last_hash})");
                        Ok(())
                    }
                }
            }
            Verdict::Broken(at) => bail!("{}: chain broken at {at}", path.display()),
        },
    }
}
