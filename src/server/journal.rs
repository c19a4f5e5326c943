//! Per-session journals: every final, as a JSON line, written as it is emitted.
//!
//! `DATA_DIR/SESSION.jsonl` holds one `{"type":"final",…}` object per line, in the
//! raw script (viewers get theirs converted). Each line is written with a single
//! `write` call and flushed to the operating system at once, so a crash or kill of
//! the server loses no final that a viewer could have seen. A line cut short by a
//! power loss is skipped on reading and fenced off by a newline before appending.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::asr::CaptionEvent;
use crate::{Error, Result};

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

/// Read the finals of a journal; a missing file has none. Lines that do not parse
/// (a torn last line) are skipped.
pub fn read(path: &Path) -> Result<Vec<CaptionEvent>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(Error::Io { path: path.to_path_buf(), source }),
    };
    let mut finals = Vec::new();
    for line in BufReader::new(file).lines() {
        let line = line.map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        if let Ok(event @ CaptionEvent::Final { .. }) = serde_json::from_str::<CaptionEvent>(&line)
        {
            finals.push(event);
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

    /// Append a final and hand it to the operating system before returning.
    pub fn append(&mut self, event: &CaptionEvent) -> Result<()> {
        let mut line = serde_json::to_vec(event).map_err(|e| Error::Write(e.into()))?;
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
        j.append(&final_(1, "一")).unwrap();
        drop(j);
        // A crash mid-write leaves half a line.
        let path = path_for(&dir, "s1");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"type":"final","segm"#).unwrap();
        drop(f);
        let mut j = Journal::open(&dir, "s1").unwrap();
        j.append(&final_(2, "二")).unwrap();
        j.sync().unwrap();
        let finals = read(&path).unwrap();
        assert_eq!(finals, [final_(1, "一"), final_(2, "二")]);
        assert!(read(&dir.join("none.jsonl")).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
