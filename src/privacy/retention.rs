//! Retention: delete session files not modified for longer than a limit.
//!
//! A session's files in the data folder are its journal (`SESSION.jsonl`) and, with
//! `--record-audio`, its recordings (`SESSION.N.wav`, one per ingest connection).
//! [`purge`] removes each such file whose last modification is older than the limit;
//! nothing else in the folder is touched (an audit log kept there is safe). The
//! server runs it at start and every `min(1 h, limit / 10)`, skipping sessions with
//! an active ingest, and forgets purged sessions so viewers and transcripts no longer
//! see them (`server::retention`); `cantocap purge` runs it on demand while the
//! server is stopped. This module builds without the server.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::audit::{AuditLog, Entry, Event};
use crate::{Error, Result};

/// How long session files are kept: a number and a unit, `s`, `m`, `h`, `d` or `w`
/// (`90m`, `12h`, `30d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Retention(pub Duration);

impl FromStr for Retention {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let unit_secs = match unit.trim() {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            _ => {
                return Err(format!(
                "{s:?} is not a duration: use a number and a unit s, m, h, d or w (90m, 12h, 30d)"
            ))
            }
        };
        let number: u64 = number
            .parse()
            .map_err(|_| format!("{s:?} is not a duration: it must start with a number"))?;
        match number.checked_mul(unit_secs) {
            Some(secs) if secs > 0 => Ok(Self(Duration::from_secs(secs))),
            Some(_) => Err("a retention of 0 would delete sessions as they are written".into()),
            None => Err(format!("{s:?} is too long")),
        }
    }
}

impl TryFrom<String> for Retention {
    type Error = String;

    fn try_from(s: String) -> std::result::Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for Retention {
    /// In the largest unit that divides it: `30d`, `90m`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        for (unit, size) in [("w", 7 * 86_400), ("d", 86_400), ("h", 3600), ("m", 60)] {
            if secs > 0 && secs.is_multiple_of(size) {
                return write!(f, "{}{unit}", secs / size);
            }
        }
        write!(f, "{secs}s")
    }
}

/// What [`purge`] removed (or, dry, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// The files, in name order.
    pub files: Vec<PathBuf>,
    /// The sessions that had files removed.
    pub sessions: BTreeSet<String>,
    /// Their size in bytes.
    pub bytes: u64,
}

/// The session a data-folder file belongs to: `ID.jsonl` or `ID.N.wav`.
pub fn session_of(file_name: &str) -> Option<&str> {
    let id = match file_name.strip_suffix(".jsonl") {
        Some(id) => id,
        None => {
            let (id, n) = file_name.strip_suffix(".wav")?.rsplit_once('.')?;
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            id
        }
    };
    valid_session_id(id).then_some(id)
}

/// Remove session files in `dir` last modified more than `older_than` before `now`,
/// except those of sessions for which `busy` is true and the files in `except` (an
/// audit log kept in the folder). With `dry_run`, only report.
pub fn purge(
    dir: &Path,
    older_than: Duration,
    now: SystemTime,
    dry_run: bool,
    busy: &dyn Fn(&str) -> bool,
    except: &[PathBuf],
) -> Result<PurgeReport> {
    let except: Vec<PathBuf> = except.iter().filter_map(|p| p.canonicalize().ok()).collect();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let mut report = PurgeReport::default();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .collect::<std::io::Result<_>>()
        .map_err(io(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let Some(session) = name.to_str().and_then(session_of) else { continue };
        let path = entry.path();
        let meta = match entry.metadata() {
            Ok(m) if m.is_file() => m,
            Ok(_) => continue,
            // Removed meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&path)(e)),
        };
        let modified = meta.modified().map_err(io(&path))?;
        let old = now.duration_since(modified).is_ok_and(|age| age > older_than);
        if !old || busy(session) || path.canonicalize().is_ok_and(|p| except.contains(&p)) {
            continue;
        }
        if !dry_run {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(&path)(e)),
            }
        }
        report.bytes += meta.len();
        report.sessions.insert(session.to_string());
        report.files.push(path);
    }
    Ok(report)
}

/// Audit a purge: one `purge` record per session, then one for the run, whose
/// `detail` is `sessions=N files=M older_than=D by=WHO`.
pub fn audit_purge(
    log: &AuditLog,
    report: &PurgeReport,
    older_than: Retention,
    by: &str,
) -> Result<()> {
    for session in &report.sessions {
        log.append(Entry::new(Event::Purge).session(session).detail(format!("by={by}")))?;
    }
    log.append(Entry::new(Event::Purge).detail(format!(
        "sessions={} files={} older_than={older_than} by={by}",
        report.sessions.len(),
        report.files.len()
    )))?;
    Ok(())
}

/// Is this a usable session id: 1–64 characters of `A-Z a-z 0-9 _ - .`, not
/// starting with a dot (it names the session's files: `SESSION.jsonl`,
/// `SESSION.N.wav`)?
pub fn valid_session_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && !id.starts_with('.')
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    #[test]
    fn durations() {
        let secs = |s: &str| s.parse::<Retention>().map(|r| r.0.as_secs());
        assert_eq!(secs("30d"), Ok(30 * 86_400));
        assert_eq!(secs("12h"), Ok(12 * 3600));
        assert_eq!(secs("90m"), Ok(5400));
        assert_eq!(secs("2w"), Ok(14 * 86_400));
        assert_eq!(secs("45s"), Ok(45));
        for bad in ["", "30", "d", "30x", "-1d", "1.5h", "0d", "99999999999999999w"] {
            assert!(secs(bad).is_err(), "{bad}");
        }
        assert_eq!("90m".parse::<Retention>().unwrap().to_string(), "90m");
        assert_eq!("48h".parse::<Retention>().unwrap().to_string(), "2d");
    }

    #[test]
    fn session_files_are_recognised_and_nothing_else() {
        assert_eq!(session_of("room1.jsonl"), Some("room1"));
        assert_eq!(session_of("room1.3.wav"), Some("room1"));
        assert_eq!(session_of("a.b.12.wav"), Some("a.b"));
        for other in ["audit.log", "room1.wav", "room1.x.wav", ".hidden.jsonl", "notes.txt"] {
            assert_eq!(session_of(other), None, "{other}");
        }
    }

    #[test]
    fn purges_old_files_of_idle_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        for (name, age) in [
            ("old.jsonl", 40),
            ("old.1.wav", 40),
            ("new.jsonl", 1),
            ("live.jsonl", 40),
            ("mixed.jsonl", 2),
            ("mixed.1.wav", 31),
            ("audit.jsonl.bak", 400),
            ("audit.jsonl", 400),
        ] {
            let f = File::create(dir.path().join(name)).unwrap();
            f.set_modified(now - day * age).unwrap();
        }
        let busy = |id: &str| id == "live";
        let except = [dir.path().join("audit.jsonl")];
        let dry = purge(dir.path(), day * 30, now, true, &busy, &except).unwrap();
        assert_eq!(dry.files.len(), 3);
        assert!(dir.path().join("old.jsonl").exists());
        let report = purge(dir.path(), day * 30, now, false, &busy, &except).unwrap();
        assert_eq!(report, dry);
        assert_eq!(report.sessions.iter().collect::<Vec<_>>(), ["mixed", "old"]);
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["audit.jsonl", "audit.jsonl.bak", "live.jsonl", "mixed.jsonl", "new.jsonl"]
        );
    }
}
