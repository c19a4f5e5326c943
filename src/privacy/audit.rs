//! The audit log: who connected, when, from where and what was done; never caption
//! text, never a token.
//!
//! `cantocap serve --audit-log PATH` appends one JSON object per line:
//!
//! ```text
//! {"time":"2025-05-01T09:30:00.123Z","seq":7,"event":"session_closed","session":"room1",
//!  "client":"10.0.0.5:51234","token":"9f86d0…","audio_s":312.4,"captions":57,
//!  "redactions":{"hkid":0,"phone":1,"email":0,"card":0,"account":0},"close_code":1000,
//!  "detail":"stop","prev_hash":"3b1c…","hash":"a04e…"}
//! ```
//!
//! (one line in the file). Every member is always there, `null` when it does not
//! apply. `token` is the hex SHA-256 of the token's *name* from the config file
//! (`null` for anonymous clients), so records can be grouped by client without the
//! log holding anything that opens the server.
//!
//! # The hash chain
//!
//! `seq` counts from 1 and continues across restarts. `hash` is the hex SHA-256 of
//! `prev_hash` (64 ASCII hex digits) followed by the record's canonical JSON without
//! `hash`: the members in the order above, as serde_json writes them (no spaces),
//! which is the line itself with its final `,"hash":"…"` member removed. `prev_hash`
//! is the previous record's `hash`, and [`GENESIS`] (64 zeros) for the first record.
//! So an edited, reordered, inserted or deleted record breaks the chain at that
//! point, and [`verify`] names it. Rewriting every later record too is not detected
//! by the chain alone: keep a copy of the last hash elsewhere to anchor it.
//!
//! Records are serialized by serde_json, so a session id or client string holding
//! quotes or newlines is escaped and stays inside its one record. Each record is
//! written with one `write` call and flushed at once.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::RedactionCounts;
use crate::{Error, Result};

/// `prev_hash` of the first record: 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// An ingest connection claimed a session (`session`, `client`, `token`).
    SessionOpened,
    /// An ingest connection ended (`audio_s`, `captions`, `close_code`, `detail`:
    /// why, such as `stop` or an error code).
    SessionClosed,
    /// A viewer started watching a session.
    ViewerJoined,
    /// A viewer left.
    ViewerLeft,
    /// A request without a valid token, with a token lacking the role, or from a
    /// browser origin not allowed (`detail` says which).
    AuthFailed,
    /// A client ran into a limit (`detail`: the error code, such as `too_fast`).
    LimitHit,
    /// A transcript was downloaded (`captions`, `detail`: the format).
    TranscriptRead,
    /// A file was transcribed through the OpenAI-compatible endpoint
    /// (`POST /v1/audio/transcriptions`): `audio_s`, `captions` (segments),
    /// `redactions`, `detail` (the response format), or refused after
    /// authentication (`detail`: the error code, such as `invalid_audio`).
    FileTranscribed,
    /// The server started with a configuration (`detail`: a summary without secrets).
    ConfigLoaded,
    /// Retention or `cantocap purge` removed old session files: one record per
    /// session (`session`, `detail`: `by=retention` or `by=cantocap-purge`), then one
    /// for the run (`detail`: `sessions=N files=M older_than=30d by=…`).
    Purge,
    /// The first record of a chain restarted after a damaged log was found at start
    /// (a crash mid-write cut its last line): it continues the old chain's `seq` and
    /// links to its last good record's hash; `detail` names the damaged file, kept
    /// aside, and where and how it broke.
    ChainRestarted,
}

/// What a caller records; [`AuditLog::append`] adds the time, sequence and hashes.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// What happened.
    pub event: Event,
    /// The session id.
    pub session: Option<String>,
    /// The client's address.
    pub client: Option<String>,
    /// The name of the client's token (hashed when written); `None` for anonymous.
    pub token_name: Option<String>,
    /// Seconds of audio received.
    pub audio_s: Option<f64>,
    /// Captions (finals) produced or served; for [`Event::Purge`], sessions removed.
    pub captions: Option<u64>,
    /// Redactions by kind, where the session counted them.
    pub redactions: Option<RedactionCounts>,
    /// The WebSocket close code the server sent.
    pub close_code: Option<u16>,
    /// A short fixed string (a limit or error name, a format); never caption text.
    pub detail: Option<String>,
}

impl Entry {
    /// An entry for `event` with nothing else filled in.
    pub fn new(event: Event) -> Self {
        Self {
            event,
            session: None,
            client: None,
            token_name: None,
            audio_s: None,
            captions: None,
            redactions: None,
            close_code: None,
            detail: None,
        }
    }

    /// With a session id.
    pub fn session(mut self, id: &str) -> Self {
        self.session = Some(id.to_string());
        self
    }

    /// With the client's address.
    pub fn client(mut self, addr: impl fmt::Display) -> Self {
        self.client = Some(addr.to_string());
        self
    }

    /// With the client's token name (`None`: anonymous).
    pub fn token_name(mut self, name: Option<&str>) -> Self {
        self.token_name = name.map(str::to_string);
        self
    }

    /// With a detail string.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// UTC, RFC 3339 with milliseconds (`2025-05-01T09:30:00.123Z`).
    pub time: String,
    /// 1, 2, 3 … across restarts.
    pub seq: u64,
    /// What happened.
    pub event: Event,
    /// The session id.
    pub session: Option<String>,
    /// The client's address.
    pub client: Option<String>,
    /// Hex SHA-256 of the token's name ([`token_hash`]); `null` for anonymous.
    pub token: Option<String>,
    /// Seconds of audio received.
    pub audio_s: Option<f64>,
    /// Captions produced or served (for `purge`: sessions removed).
    pub captions: Option<u64>,
    /// Redactions by kind.
    pub redactions: Option<RedactionCounts>,
    /// The close code sent.
    pub close_code: Option<u16>,
    /// A short fixed string.
    pub detail: Option<String>,
    /// The previous record's hash ([`GENESIS`] for the first).
    pub prev_hash: String,
    /// This record's hash (see the module documentation).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hash: String,
}

/// The hex SHA-256 of a token's name, as written in `token`.
pub fn token_hash(name: &str) -> String {
    hex(&Sha256::digest(name.as_bytes()))
}

/// `hash` of a record: SHA-256 over `prev_hash` and the canonical JSON without `hash`.
fn chain_hash(prev_hash: &str, body: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(body.as_bytes());
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 3339 UTC with milliseconds (jiff writes it).
fn rfc3339_ms(t: SystemTime) -> String {
    let t = jiff::Timestamp::try_from(t).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let ms = jiff::Timestamp::from_millisecond(t.as_millisecond()).unwrap_or(t);
    format!("{ms:.3}")
}

/// The body a line's hash covers, if the line ends in `,"hash":"<64 hex>"}`.
fn split_hash(line: &str) -> Option<(String, &str)> {
    let start = line.rfind(",\"hash\":\"")?;
    let hash = line[start..].strip_prefix(",\"hash\":\"")?.strip_suffix("\"}")?;
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((format!("{}}}", &line[..start]), hash))
}

struct Chain {
    file: File,
    seq: u64,
    prev_hash: String,
}

/// An open audit log, appending; share it by reference (it locks inside).
pub struct AuditLog {
    path: PathBuf,
    chain: Mutex<Chain>,
    /// Set when [`AuditLog::open`] restarted a damaged chain.
    restarted: Option<String>,
}

impl fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLog").field("path", &self.path).finish()
    }
}

impl AuditLog {
    /// Open (creating) the log at `path`, continuing the chain from its last record.
    ///
    /// **Recovery.** If the log is damaged (its last line cut short by a crash
    /// mid-write, or a record that does not check out), it is not appended to: it is
    /// renamed `PATH.damaged-UNIXTIME` and kept, and a new log starts at `PATH` whose
    /// first record, [`Event::ChainRestarted`], continues the old `seq`, links to the
    /// old chain's last good hash, and names the damaged file and the break.
    /// [`AuditLog::restarted`] then says so, for the caller to log; [`verify`] accepts
    /// a log that starts that way and reports it.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read, written or renamed.
    pub fn open(path: &Path) -> Result<Self> {
        let io = |source| Error::Io { path: path.to_path_buf(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
        }
        let (seq, prev_hash, damage) = match last_line(path).map_err(io)? {
            Tail::Empty => (0, GENESIS.to_string(), None),
            Tail::Good { seq, hash } => (seq, hash, None),
            Tail::Damaged => match verify(path)? {
                // A final record that parses but was cut at a hash-less point, or a
                // file whose damage verify does not see: still set it aside.
                Verdict::Intact { records, last_hash, .. } => {
                    (records, last_hash, Some("the last record could not be read".to_string()))
                }
                Verdict::Broken(at) => {
                    (at.good_records, at.last_good_hash.clone(), Some(at.to_string()))
                }
            },
        };
        let mut log = Self::append_to(path, seq, prev_hash)?;
        if let Some(why) = damage {
            let stamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let mut aside = path.as_os_str().to_owned();
            aside.push(format!(".damaged-{stamp}"));
            let aside = PathBuf::from(aside);
            drop(log);
            std::fs::rename(path, &aside).map_err(io)?;
            let (seq, prev_hash) = (seq, chain_link(path, &aside, seq)?);
            log = Self::append_to(path, seq, prev_hash)?;
            let name =
                aside.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            let detail = format!("damaged log kept as {name}; {why}");
            log.append(Entry::new(Event::ChainRestarted).detail(detail.clone()))?;
            log.restarted = Some(detail);
        }
        Ok(log)
    }

    fn append_to(path: &Path, seq: u64, prev_hash: String) -> Result<Self> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        Ok(Self {
            path: path.to_path_buf(),
            chain: Mutex::new(Chain { file, seq, prev_hash }),
            restarted: None,
        })
    }

    /// Why the chain was restarted when the log was opened (see [`AuditLog::open`]),
    /// if it was.
    pub fn restarted(&self) -> Option<&str> {
        self.restarted.as_deref()
    }

    /// The last record's hash ([`GENESIS`] for an empty log). Keep it somewhere else
    /// (it is logged at shutdown and shown in `/metrics`): `cantocap audit verify
    /// --expect-last HASH` then detects records deleted from the end.
    pub fn last_hash(&self) -> String {
        self.chain.lock().unwrap_or_else(|e| e.into_inner()).prev_hash.clone()
    }

    /// Where the log is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append a record for `entry` and flush it; returns the record as written.
    pub fn append(&self, entry: Entry) -> Result<Record> {
        let mut chain = self.chain.lock().unwrap_or_else(|e| e.into_inner());
        let mut record = Record {
            time: rfc3339_ms(SystemTime::now()),
            seq: chain.seq + 1,
            event: entry.event,
            session: entry.session,
            client: entry.client,
            token: entry.token_name.as_deref().map(token_hash),
            // Milliseconds are enough, and keep the numbers short.
            audio_s: entry.audio_s.map(|s| (s * 1000.0).round() / 1000.0),
            captions: entry.captions,
            redactions: entry.redactions,
            close_code: entry.close_code,
            detail: entry.detail,
            prev_hash: chain.prev_hash.clone(),
            hash: String::new(),
        };
        let body = serde_json::to_string(&record).map_err(|e| Error::Write(e.into()))?;
        record.hash = chain_hash(&record.prev_hash, &body);
        let line = format!("{},\"hash\":\"{}\"}}\n", &body[..body.len() - 1], record.hash);
        chain
            .file
            .write_all(line.as_bytes())
            .and_then(|()| chain.file.flush())
            .map_err(|source| Error::Io { path: self.path.clone(), source })?;
        chain.seq = record.seq;
        chain.prev_hash.clone_from(&record.hash);
        Ok(record)
    }
}

/// What the end of a log holds.
enum Tail {
    Empty,
    /// A last record that checks out against its own hash.
    Good {
        seq: u64,
        hash: String,
    },
    /// A last line cut short, or a record that does not check out.
    Damaged,
}

/// The end of the log at `path` (missing: empty).
fn last_line(path: &Path) -> std::io::Result<Tail> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Tail::Empty),
        Err(e) => return Err(e),
    };
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(Tail::Empty);
    }
    let mut tail = Vec::new();
    let mut pos = len;
    let line = loop {
        let chunk = pos.min(8192);
        pos -= chunk;
        let mut buf = vec![0u8; chunk as usize];
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(&mut buf)?;
        buf.extend_from_slice(&tail);
        tail = buf;
        if tail.last() != Some(&b'\n') {
            return Ok(Tail::Damaged);
        }
        let body = &tail[..tail.len() - 1];
        if let Some(nl) = body.iter().rposition(|&b| b == b'\n') {
            break String::from_utf8_lossy(&body[nl + 1..]).into_owned();
        }
        if pos == 0 {
            break String::from_utf8_lossy(body).into_owned();
        }
    };
    let Ok(record) = serde_json::from_str::<Record>(&line) else { return Ok(Tail::Damaged) };
    Ok(match split_hash(&line) {
        Some((body, hash)) if chain_hash(&record.prev_hash, &body) == hash => {
            Tail::Good { seq: record.seq, hash: record.hash }
        }
        _ => Tail::Damaged,
    })
}

/// The hash a restarted chain links to: the damaged file's last good record's
/// (`seq` records checked out).
fn chain_link(path: &Path, aside: &Path, seq: u64) -> Result<String> {
    match verify(aside)? {
        Verdict::Broken(at) if at.good_records == seq => Ok(at.last_good_hash),
        Verdict::Intact { last_hash, .. } => Ok(last_hash),
        _ => Err(Error::AuditLog {
            path: path.to_path_buf(),
            reason: "the damaged log changed while it was being set aside".into(),
        }),
    }
}

/// Why [`verify`] stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The line is not a JSON audit record.
    NotJson(String),
    /// The record does not match its `hash`: it was changed after it was written.
    BadHash,
    /// `seq` is not the one expected: a record before it is missing, or records
    /// were reordered.
    SeqGap {
        /// The seq that should be here.
        expected: u64,
        /// The seq found.
        found: u64,
    },
    /// `prev_hash` is not the previous record's hash.
    BrokenLink,
    /// The last line has no newline: the log was cut short.
    Truncated,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotJson(e) => write!(f, "not a JSON audit record ({e})"),
            Self::BadHash => f.write_str("bad hash: the record was changed after it was written"),
            Self::SeqGap { expected, found } => write!(
                f,
                "seq gap: expected seq {expected}, found {found} (a record is missing or records were reordered)"
            ),
            Self::BrokenLink => {
                f.write_str("broken link: prev_hash is not the previous record's hash")
            }
            Self::Truncated => f.write_str("truncated: the last line has no newline"),
        }
    }
}

/// Where the chain breaks first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// 1-based line number.
    pub line: u64,
    /// Records before it that check out.
    pub good_records: u64,
    /// The hash of the last of those (where a chain restarted after this break
    /// links to).
    pub last_good_hash: String,
    /// The record's seq, when it could be read.
    pub seq: Option<u64>,
    /// What is wrong.
    pub problem: Problem,
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "line {} (seq {seq}): {}", self.line, self.problem),
            None => write!(f, "line {}: {}", self.line, self.problem),
        }
    }
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every record checks out.
    Intact {
        /// How many records.
        records: u64,
        /// The last record's hash ([`GENESIS`] for an empty log); keep it elsewhere to
        /// anchor the chain.
        last_hash: String,
        /// The log starts with a [`Event::ChainRestarted`] record: its `detail`, and
        /// the seq and hash of the old chain's last good record it links to.
        restarted: Option<Restart>,
    },
    /// The first bad record.
    Broken(Break),
}

/// Where a restarted chain links to the log it replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restart {
    /// The restart record's detail (the damaged file's name, the break).
    pub detail: String,
    /// The old chain's last good seq.
    pub after_seq: u64,
    /// The old chain's last good hash.
    pub after_hash: String,
}

/// Check an audit log's chain from the first record to the last. A log whose first
/// record is [`Event::ChainRestarted`] is checked from that record's link.
pub fn verify(path: &Path) -> Result<Verdict> {
    let file = File::open(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    verify_reader(BufReader::new(file))
        .map_err(|source| Error::Io { path: path.to_path_buf(), source })
}

/// [`verify`] over any reader.
pub fn verify_reader(mut reader: impl BufRead) -> std::io::Result<Verdict> {
    let mut prev_hash = GENESIS.to_string();
    let mut line_no = 0u64;
    let mut first_seq = 1u64;
    let mut restarted = None;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let records = line_no;
        if reader.read_until(b'\n', &mut buf)? == 0 {
            return Ok(Verdict::Intact { records, last_hash: prev_hash, restarted });
        }
        line_no += 1;
        let (good_records, last_good_hash) = (first_seq - 1 + records, prev_hash.clone());
        let broken = |seq, problem| {
            Ok(Verdict::Broken(Break { line: line_no, good_records, last_good_hash, seq, problem }))
        };
        if buf.pop() != Some(b'\n') {
            let seq = serde_json::from_slice::<serde_json::Value>(&buf)
                .ok()
                .and_then(|v| v["seq"].as_u64());
            return broken(seq, Problem::Truncated);
        }
        let Ok(line) = std::str::from_utf8(&buf) else {
            return broken(None, Problem::NotJson("not UTF-8".into()));
        };
        let record: Record = match serde_json::from_str(line) {
            Ok(r) => r,
            Err(e) => return broken(None, Problem::NotJson(e.to_string())),
        };
        let seq = Some(record.seq);
        match split_hash(line) {
            Some((body, hash)) if chain_hash(&record.prev_hash, &body) == hash => {}
            _ => return broken(seq, Problem::BadHash),
        }
        if line_no == 1 && record.event == Event::ChainRestarted && record.seq > 1 {
            // A restarted chain: it links to the damaged log's last good record.
            first_seq = record.seq;
            prev_hash.clone_from(&record.prev_hash);
            restarted = Some(Restart {
                detail: record.detail.clone().unwrap_or_default(),
                after_seq: record.seq - 1,
                after_hash: record.prev_hash.clone(),
            });
        }
        let expected = first_seq - 1 + line_no;
        if record.seq != expected {
            return broken(seq, Problem::SeqGap { expected, found: record.seq });
        }
        if record.prev_hash != prev_hash {
            return broken(seq, Problem::BrokenLink);
        }
        prev_hash = record.hash;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_with(dir: &Path, n: usize) -> PathBuf {
        let path = dir.join("audit.jsonl");
        let log = AuditLog::open(&path).unwrap();
        for i in 0..n {
            let mut e = Entry::new(Event::SessionClosed)
                .session(&format!("s{i}"))
                .client("127.0.0.1:5000")
                .token_name(Some("gw"))
                .detail("stop");
            e.audio_s = Some(1.5);
            e.captions = Some(i as u64);
            e.close_code = Some(1000);
            log.append(e).unwrap();
        }
        path
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path).unwrap().lines().map(str::to_string).collect()
    }

    fn write_lines(path: &Path, lines: &[String]) {
        std::fs::write(path, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    }

    /// Where and how the chain breaks: (line, seq, problem).
    fn broken(path: &Path) -> (u64, Option<u64>, Problem) {
        match verify(path).unwrap() {
            Verdict::Broken(b) => (b.line, b.seq, b.problem),
            v => panic!("not detected: {v:?}"),
        }
    }

    #[test]
    fn times_are_rfc3339_utc_with_milliseconds() {
        let t = UNIX_EPOCH + std::time::Duration::from_millis(951_782_400_123); // 2000-02-29
        assert_eq!(rfc3339_ms(t), "2000-02-29T00:00:00.123Z");
        let t = UNIX_EPOCH + std::time::Duration::from_millis(1_735_689_599_999);
        assert_eq!(rfc3339_ms(t), "2024-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_ms(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn records_chain_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_with(dir.path(), 4);
        let Verdict::Intact { records, last_hash, restarted: None } = verify(&path).unwrap() else {
            panic!("broken")
        };
        assert_eq!(records, 4);
        let all = lines(&path);
        let first: Record = serde_json::from_str(&all[0]).unwrap();
        let last: Record = serde_json::from_str(&all[3]).unwrap();
        assert_eq!((first.seq, first.prev_hash.as_str()), (1, GENESIS));
        assert_eq!(last.hash, last_hash);
        // The token is the hash of its name, never the name or a secret.
        assert_eq!(first.token.as_deref(), Some(token_hash("gw").as_str()));
        assert!(!all[0].contains("\"gw\""));
        // Every member is present, hash last, and the hash is over the rest.
        assert!(all[0].starts_with("{\"time\":\"") && all[0].contains("\"redactions\":null"));
        let (body, hash) = split_hash(&all[1]).unwrap();
        let second: Record = serde_json::from_str(&all[1]).unwrap();
        assert_eq!(chain_hash(&second.prev_hash, &body), hash);
        assert_eq!(second.prev_hash, first.hash);
        assert!(matches!(verify_reader(&b""[..]).unwrap(), Verdict::Intact { records: 0, .. }));
    }

    #[test]
    fn tampering_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_with(dir.path(), 5);
        let good = lines(&path);

        let mut edited = good.clone();
        edited[2] = edited[2].replace("\"captions\":2", "\"captions\":9");
        write_lines(&path, &edited);
        assert_eq!(broken(&path), (3, Some(3), Problem::BadHash));

        let mut swapped = good.clone();
        swapped.swap(1, 2);
        write_lines(&path, &swapped);
        assert_eq!(broken(&path), (2, Some(3), Problem::SeqGap { expected: 2, found: 3 }));

        write_lines(&path, &good[1..]);
        assert_eq!(broken(&path), (1, Some(2), Problem::SeqGap { expected: 1, found: 2 }));

        let mut middle = good.clone();
        middle.remove(3);
        write_lines(&path, &middle);
        assert_eq!(broken(&path), (4, Some(5), Problem::SeqGap { expected: 4, found: 5 }));

        let mut text = good.iter().map(|l| format!("{l}\n")).collect::<String>();
        text.truncate(text.len() - 20);
        std::fs::write(&path, &text).unwrap();
        assert_eq!(broken(&path), (5, None, Problem::Truncated));

        let mut garbage = good.clone();
        garbage[0] = "hello".into();
        write_lines(&path, &garbage);
        assert!(matches!(broken(&path).2, Problem::NotJson(_)));

        // A record changed and re-hashed breaks the link to the next one.
        let mut rehashed: Vec<Record> =
            good.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        rehashed[1].detail = Some("forged".into());
        rehashed[1].hash = String::new();
        let body = serde_json::to_string(&rehashed[1]).unwrap();
        let hash = chain_hash(&rehashed[1].prev_hash, &body);
        let mut relinked = good.clone();
        relinked[1] = format!("{},\"hash\":\"{hash}\"}}", &body[..body.len() - 1]);
        write_lines(&path, &relinked);
        assert_eq!(broken(&path), (3, Some(3), Problem::BrokenLink));
    }

    #[test]
    fn injection_stays_inside_one_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path).unwrap();
        let evil = "x\",\"event\":\"purge\"}\n{\"seq\":99,\"event\":\"config_loaded\"";
        log.append(Entry::new(Event::ViewerJoined).session(evil).client(evil)).unwrap();
        let all = lines(&path);
        assert_eq!(all.len(), 1);
        let r: Record = serde_json::from_str(&all[0]).unwrap();
        assert_eq!((r.event, r.session.as_deref(), r.seq), (Event::ViewerJoined, Some(evil), 1));
        assert!(matches!(verify(&path).unwrap(), Verdict::Intact { records: 1, .. }));
    }

    #[test]
    fn seq_continues_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_with(dir.path(), 3);
        let log = AuditLog::open(&path).unwrap();
        assert!(log.restarted().is_none());
        let r = log.append(Entry::new(Event::ConfigLoaded)).unwrap();
        assert_eq!((r.seq, log.last_hash()), (4, r.hash));
        drop(log);
        assert!(matches!(verify(&path).unwrap(), Verdict::Intact { records: 4, .. }));
    }

    #[test]
    fn a_cut_last_line_is_set_aside_and_a_new_chain_links_to_the_last_good_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_with(dir.path(), 3);
        let good: Vec<Record> =
            lines(&path).iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.truncate(text.len() - 30); // a crash in the middle of writing record 3
        std::fs::write(&path, &text).unwrap();

        let log = AuditLog::open(&path).unwrap();
        let why = log.restarted().expect("restarted").to_string();
        assert!(
            why.contains(".damaged-") && why.contains("line 3") && why.contains("truncated"),
            "{why}"
        );
        let r = log.append(Entry::new(Event::ConfigLoaded)).unwrap();
        drop(log);
        // The damaged file is kept, byte for byte.
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains(".damaged-"))
            .collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(std::fs::read_to_string(&aside[0]).unwrap(), text);
        // The new log: a restart record continuing seq from the last good record.
        let all = lines(&path);
        let first: Record = serde_json::from_str(&all[0]).unwrap();
        assert_eq!((first.event, first.seq), (Event::ChainRestarted, 3));
        assert_eq!(first.prev_hash, good[1].hash, "links to the last good record");
        assert_eq!(r.seq, 4);
        let Verdict::Intact { records, restarted: Some(restart), .. } = verify(&path).unwrap()
        else {
            panic!("the restarted chain does not verify")
        };
        assert_eq!((records, restart.after_seq, restart.after_hash), (2, 2, good[1].hash.clone()));
        // A record that does not check out at the end is set aside the same way.
        let mut tampered = std::fs::read_to_string(&path).unwrap();
        tampered = tampered.replace("config_loaded", "purge");
        std::fs::write(&path, &tampered).unwrap();
        let log = AuditLog::open(&path).unwrap();
        assert!(log.restarted().unwrap().contains("bad hash"), "{:?}", log.restarted());
    }
}
