//! Per-session journals: every final, as a JSON line, written as it is emitted.
//!
//! `DATA_DIR/SESSION.jsonl` holds one `{"type":"final",…}` object per line, in the
//! raw script (viewers get theirs converted), with `"speaker"` last when the ingest
//! named its participant. Each line is written with a single
//! `write` call and flushed to the operating system at once, so a crash or kill of
//! the server loses no final that a viewer could have seen. A line cut short by a
//! power loss is skipped on reading and fenced off by a newline before appending.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::asr::CaptionEvent;
use crate::{Error, Result};

/// A final as written: the event's fields, then `speaker` when there is one (the
/// form viewers and webhooks get too).
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    /// The caption event.
    #[serde(flatten)]
    pub event: CaptionEvent,
    /// The participant who spoke it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speaker: Option<&'a str>,
}

/// A final as read back.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Spoken {
    /// The caption event.
    #[serde(flatten)]
    pub event: CaptionEvent,
    /// The participant who spoke it.
    #[serde(default)]
    pub speaker: Option<String>,
}

/// An open journal, appending.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
}

/// The journal file of a session (the id has been checked to be a safe file name).
pub fn path_for(dir: &Path, session: &str) -> PathBuf {
    dir.join(format!("{session}.jsonl"))
}

/// One journal line (or a cluster message: the same JSON).
pub(crate) fn parse(bytes: &[u8]) -> std::result::Result<Spoken, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// Read the finals of a journal; a missing file has none. Lines that do not parse
/// (a torn last line) are skipped.
pub fn read(path: &Path) -> Result<Vec<Spoken>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(Error::Io { path: path.to_path_buf(), source }),
    };
    let mut finals = Vec::new();
    for line in BufReader::new(file).lines() {
        let line = line.map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        match serde_json::from_str::<Spoken>(&line) {
            Ok(spoken) if spoken.event.is_final() => finals.push(spoken),
            _ => {}
        }
    }
    Ok(finals)
}

impl Journal {
    /// Open (creating) a session's journal for appending.
    pub fn open(dir: &Path, session: &str) -> Result<Self> {
        let path = path_for(dir, session);
        let io = |source| Error::Io { path: path.clone(), source };
        std::fs::create_dir_all(dir)
            .map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
        let mut file =
            OpenOptions::new().read(true).append(true).create(true).open(&path).map_err(io)?;
        // A torn last line (no newline) must not swallow the next final.
        let len = file.metadata().map_err(io)?.len();
        if len > 0 {
            let mut last = [0u8];
            file.seek(SeekFrom::Start(len - 1)).map_err(io)?;
            file.read_exact(&mut last).map_err(io)?;
            if last[0] != b'\n' {
                file.write_all(b"\n").map_err(io)?;
            }
        }
        Ok(Self { path, file })
    }

    /// Append a final (spoken by `speaker`) and hand it to the operating system
    /// before returning.
    pub fn append(&mut self, event: &CaptionEvent, speaker: Option<&str>) -> Result<()> {
        let entry = Entry { event: event.clone(), speaker };
        let mut line = serde_json::to_vec(&entry).map_err(|e| Error::Write(e.into()))?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .map_err(|source| Error::Io { path: self.path.clone(), source })?;
        self.file.flush().map_err(|source| Error::Io { path: self.path.clone(), source })
    }

    /// Force the journal to disk (at shutdown).
    pub fn sync(&self) -> Result<()> {
        self.file.sync_data().map_err(|source| Error::Io { path: self.path.clone(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn final_(segment: u64, text: &str) -> CaptionEvent {
        CaptionEvent::Final {
            segment,
            text: text.into(),
            start_ms: segment * 1000,
            end_ms: segment * 1000 + 500,
            emitted_ms: 0,
            lag_ms: 0,
        }
    }

    #[test]
    fn appends_and_reads_back_skipping_torn_lines() {
        let dir = std::env::temp_dir().join(format!("cantocap-journal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut j = Journal::open(&dir, "s1").unwrap();
        j.append(&final_(1, "一"), None).unwrap();
        drop(j);
        // A crash mid-write leaves half a line.
        let path = path_for(&dir, "s1");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"type":"final","segm"#).unwrap();
        drop(f);
        let mut j = Journal::open(&dir, "s1").unwrap();
        j.append(&final_(2, "二"), Some("陳大文")).unwrap();
        j.sync().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with(",\"speaker\":\"陳大文\"}\n"), "{text}");
        let finals = read(&path).unwrap();
        let spoken =
            |event, speaker: Option<&str>| Spoken { event, speaker: speaker.map(Into::into) };
        assert_eq!(
            finals,
            [spoken(final_(1, "一"), None), spoken(final_(2, "二"), Some("陳大文"))]
        );
        assert!(read(&dir.join("none.jsonl")).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
