//! The evaluation manifest: which recordings, and what was said in them.
//!
//! A UTF-8 text file, one utterance per line, columns separated by tabs (shown as
//! `<TAB>` here):
//!
//! ```text
//! # comments and blank lines are skipped; a header line is allowed
//! path<TAB>text
//! clips/greeting.wav<TAB>早晨，今日天氣幾好。
//! /data/meeting-01.wav<TAB>我哋用 Zoom 開會，send 個 email 俾你。
//! ```
//!
//! - Two columns: audio path, reference text. The id of the utterance is the path as
//!   written.
//! - Three columns: id, audio path, reference text.
//! - Paths are relative to the manifest's folder, or absolute. A path without an
//!   extension that names no file is tried with `.wav`, so a list of `id<TAB>text`
//!   with the recordings beside it as `ID.wav` works as it is.
//! - A header is a first line whose first column is one of `id`, `path`, `audio`,
//!   `file`, `wav`, `utt`, `key` and whose last column is one of `text`, `reference`,
//!   `ref`, `transcript`, `transcription`, `sentence` (any case).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One utterance of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The id: the first column of a three-column line, else the path as written.
    pub id: String,
    /// The audio file, resolved against the manifest's folder.
    pub audio: PathBuf,
    /// The reference text.
    pub reference: String,
    /// The line number (from 1).
    pub line: usize,
}

/// A manifest that cannot be used. Fix the file and run again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The manifest cannot be read (or is not UTF-8).
    #[error("cannot read the manifest {}: {source}", path.display())]
    Read {
        /// The manifest.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Lines that cannot be used: each problem with its line number.
    #[error("{}: {}", path.display(), summary(problems))]
    Lines {
        /// The manifest.
        path: PathBuf,
        /// (line number, what is wrong), in line order.
        problems: Vec<(usize, String)>,
    },
    /// No utterance in the file.
    #[error("{}: no utterances (one per line: audio path, a tab, the reference text)", path.display())]
    Empty {
        /// The manifest.
        path: PathBuf,
    },
}

/// The first few problems, on one line.
fn summary(problems: &[(usize, String)]) -> String {
    const SHOWN: usize = 5;
    let mut parts: Vec<String> =
        problems.iter().take(SHOWN).map(|(line, what)| format!("line {line}: {what}")).collect();
    if problems.len() > SHOWN {
        parts.push(format!("and {} more", problems.len() - SHOWN));
    }
    parts.join("; ")
}

const ID_HEADERS: [&str; 8] = ["id", "path", "audio", "file", "wav", "utt", "key", "filename"];
const TEXT_HEADERS: [&str; 6] =
    ["text", "reference", "ref", "transcript", "transcription", "sentence"];

/// Reads and checks the manifest at `path`: every audio file must exist.
///
/// # Errors
/// [`ManifestError`]: unreadable, malformed lines or missing audio (all of them
/// listed with line numbers), or no utterances.
pub fn read_manifest(path: &Path) -> Result<Vec<Entry>, ManifestError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ManifestError::Read { path: path.to_owned(), source })?;
    let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    parse_manifest(&text, base, path)
}

/// Parses manifest `text`, resolving audio paths against `base`; `path` names the
/// manifest in errors.
///
/// # Errors
/// As [`read_manifest`].
pub fn parse_manifest(text: &str, base: &Path, path: &Path) -> Result<Vec<Entry>, ManifestError> {
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut first = true;
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        let line = line.trim_end_matches('\r');
        let line = if number == 1 { line.trim_start_matches('\u{feff}') } else { line };
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let columns: Vec<&str> = line.split('\t').map(str::trim).collect();
        if std::mem::take(&mut first) && is_header(&columns) {
            continue;
        }
        let (id, audio, reference) = match columns[..] {
            [audio, reference] => (audio, audio, reference),
            [id, audio, reference] => (id, audio, reference),
            [_] => {
                problems.push((
                    number,
                    "no tab: columns are the audio path and the reference text, separated by a tab"
                        .to_owned(),
                ));
                continue;
            }
            _ => {
                problems.push((
                    number,
                    format!(
                        "{} columns; expected 2 (audio path, text) or 3 (id, audio path, text), separated by tabs",
                        columns.len()
                    ),
                ));
                continue;
            }
        };
        if id.is_empty() || audio.is_empty() {
            problems.push((number, "empty audio path or id".to_owned()));
            continue;
        }
        if reference.is_empty() {
            problems.push((number, format!("{audio}: no reference text")));
            continue;
        }
        if let Some(previous) = ids.insert(id.to_owned(), number) {
            problems.push((number, format!("id {id:?} is used on line {previous} too")));
            continue;
        }
        match resolve(base, audio) {
            Ok(audio) => entries.push(Entry {
                id: id.to_owned(),
                audio,
                reference: reference.to_owned(),
                line: number,
            }),
            Err(looked) => {
                problems.push((number, format!("audio file {audio} not found ({looked})")))
            }
        }
    }
    if !problems.is_empty() {
        return Err(ManifestError::Lines { path: path.to_owned(), problems });
    }
    if entries.is_empty() {
        return Err(ManifestError::Empty { path: path.to_owned() });
    }
    Ok(entries)
}

fn is_header(columns: &[&str]) -> bool {
    let known = |set: &[&str], column: &str| set.iter().any(|h| h.eq_ignore_ascii_case(column));
    columns.len() >= 2
        && known(&ID_HEADERS, columns[0])
        && known(&TEXT_HEADERS, columns[columns.len() - 1])
}

/// The audio file, or where it was looked for.
fn resolve(base: &Path, audio: &str) -> Result<PathBuf, String> {
    let path = base.join(audio);
    if path.is_file() {
        return Ok(path);
    }
    if Path::new(audio).extension().is_none() {
        let wav = base.join(format!("{audio}.wav"));
        if wav.is_file() {
            return Ok(wav);
        }
        return Err(format!("looked for {} and {}", path.display(), wav.display()));
    }
    Err(format!("looked for {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            let path = dir.path().join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"").unwrap();
        }
        dir
    }

    fn parse(dir: &Path, text: &str) -> Result<Vec<Entry>, ManifestError> {
        parse_manifest(text, dir, Path::new("m.tsv"))
    }

    #[test]
    fn two_and_three_columns_header_comments_absolute_paths() {
        let dir = folder(&["clips/a.wav", "b.wav", "c.wav"]);
        let absolute = dir.path().join("c.wav");
        let text = format!(
            "\u{feff}path\ttext\r\n# a comment\n\nclips/a.wav\t早晨。\r\n  # indented comment\nb\tGood morning.\nthird\t{}\t 你好 hello \n",
            absolute.display()
        );
        let entries = parse(dir.path(), &text).unwrap();
        let got: Vec<(&str, &Path, &str, usize)> = entries
            .iter()
            .map(|e| (e.id.as_str(), e.audio.as_path(), e.reference.as_str(), e.line))
            .collect();
        assert_eq!(
            got,
            [
                ("clips/a.wav", dir.path().join("clips/a.wav").as_path(), "早晨。", 4),
                ("b", dir.path().join("b.wav").as_path(), "Good morning.", 6),
                ("third", absolute.as_path(), "你好 hello", 7),
            ]
        );
    }

    #[test]
    fn an_id_and_text_list_finds_recordings_named_after_ids() {
        // The shape of the shared evaluation set: id<TAB>text, ID.wav beside it.
        let dir = folder(&["dev01.wav", "dev02.wav"]);
        let entries =
            parse(dir.path(), "id\ttext\ndev01\t我哋今日去飲茶。\ndev02\t你食咗飯未呀？\n")
                .unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].audio, dir.path().join("dev02.wav"));
        assert_eq!(entries[1].id, "dev02");
    }

    #[test]
    fn every_bad_line_is_named() {
        let dir = folder(&["a.wav"]);
        let text =
            "a.wav\tfine\nmissing.wav\ttext\nno tab here\na.wav\tagain\nx\ty\tz\tw\nb.wav\t\n";
        let err = parse(dir.path(), text).unwrap_err();
        let ManifestError::Lines { problems, .. } = &err else { panic!("{err}") };
        let lines: Vec<usize> = problems.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [2, 3, 4, 5, 6], "{err}");
        let message = err.to_string();
        assert!(
            message.starts_with("m.tsv: line 2: audio file missing.wav not found"),
            "{message}"
        );
        assert!(message.contains("line 3: no tab"), "{message}");
        assert!(message.contains("line 4: id \"a.wav\" is used on line 1 too"), "{message}");
        assert!(message.contains("line 5: 4 columns"), "{message}");
        assert!(message.contains("line 6: b.wav: no reference text"), "{message}");
        assert!(!message.contains('\n'), "one line: {message}");
    }

    #[test]
    fn many_problems_are_summarised() {
        let dir = folder(&[]);
        let text: String = (0..8).map(|i| format!("{i}.wav\tt\n")).collect();
        let message = parse(dir.path(), &text).unwrap_err().to_string();
        assert!(message.ends_with("and 3 more"), "{message}");
    }

    #[test]
    fn an_empty_manifest_says_what_a_line_holds() {
        let dir = folder(&[]);
        let message = parse(dir.path(), "# nothing\npath\ttext\n").unwrap_err().to_string();
        assert!(message.contains("no utterances"), "{message}");
        let missing = read_manifest(&dir.path().join("nope.tsv")).unwrap_err().to_string();
        assert!(missing.contains("cannot read the manifest"), "{missing}");
    }
}
