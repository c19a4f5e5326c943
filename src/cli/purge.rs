//! `cantocap purge`: delete old session files now (while the server is stopped).

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::Result;

use cantocap::privacy::audit::AuditLog;
use cantocap::privacy::retention::{self, Retention};

/// Options of `cantocap purge`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Example:
  cantocap purge --data-dir /var/lib/cantocap --older-than 30d --audit-log /var/log/cantocap/audit.jsonl

Removes SESSION.jsonl journals and SESSION.N.wav recordings; nothing else in the folder.
Run it while `cantocap serve` is stopped (a running server purges by itself with
--retention); two processes appending to one audit log would break its chain.")]
pub struct PurgeArgs {
    /// The server's data folder (`cantocap serve --data-dir`).
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Remove files not modified for this long: 90m, 12h, 30d, 2w.
    #[arg(long, value_name = "DURATION")]
    pub older_than: Retention,
    /// Record the purge in this audit log.
    #[arg(long, value_name = "PATH")]
    pub audit_log: Option<PathBuf>,
    /// Only list what would be removed.
    #[arg(long)]
    pub dry_run: bool,
}

/// Run `cantocap purge`.
pub fn run(args: PurgeArgs) -> Result<()> {
    // Open the log first: a log that cannot be continued stops the purge.
    let log = match (&args.audit_log, args.dry_run) {
        (Some(path), false) => Some(AuditLog::open(path)?),
        _ => None,
    };
    let except: Vec<PathBuf> = args.audit_log.iter().cloned().collect();
    let report = retention::purge(
        &args.data_dir,
        args.older_than.0,
        SystemTime::now(),
        args.dry_run,
        &|_| false,
        &except,
    )?;
    let verb = if args.dry_run { "would remove" } else { "removed" };
    for file in &report.files {
        println!("{verb} {}", file.display());
    }
    println!(
        "{verb} {} session(s), {} file(s), {} bytes older than {}",
        report.sessions.len(),
        report.files.len(),
        report.bytes,
        args.older_than
    );
    if let Some(log) = log {
        retention::audit_purge(&log, &report, args.older_than, "cantocap-purge")?;
    }
    Ok(())
}
