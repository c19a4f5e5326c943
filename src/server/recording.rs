//! Recorded audio (`--record-audio` only): each ingest connection's audio, as the
//! engine hears it, in `DATA_DIR/SESSION.N.wav` (16 kHz mono 16-bit PCM).
//!
//! The header is rewritten after every write, so the file is a valid WAV of the
//! audio so far at all times, even if the server is killed.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::audio::WHISPER_SAMPLE_RATE;
use crate::{Error, Result};

/// Writes one connection's audio.
pub(crate) struct Recorder {
    path: PathBuf,
    file: File,
    bytes: Vec<u8>,
    data_len: u32,
}

/// The recording of a session's `n`th ingest connection.
pub(crate) fn path_for(dir: &Path, session: &str, n: u32) -> PathBuf {
    dir.join(format!("{session}.{n}.wav"))
}

fn header(data_len: u32) -> [u8; 44] {
    let mut h = [0u8; 44];
    let rate = WHISPER_SAMPLE_RATE;
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(36 + data_len).to_le_bytes());
    h[8..16].copy_from_slice(b"WAVEfmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&1u16.to_le_bytes()); // mono
    h[24..28].copy_from_slice(&rate.to_le_bytes());
    h[28..32].copy_from_slice(&(rate * 2).to_le_bytes());
    h[32..34].copy_from_slice(&2u16.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_len.to_le_bytes());
    h
}

impl Recorder {
    /// Start the next recording of `session` (the first free `N` from 1), of the
    /// 16 kHz mono audio the pipeline hears.
    pub(crate) fn create(dir: &Path, session: &str) -> Result<Self> {
        let mut n = 1;
        let (path, mut file) = loop {
            let path = path_for(dir, session, n);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => break (path, file),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
                Err(source) => return Err(Error::Io { path, source }),
            }
        };
        file.write_all(&header(0)).map_err(|source| Error::Io { path: path.clone(), source })?;
        Ok(Self { path, file, bytes: Vec::new(), data_len: 0 })
    }

    /// Force the file to disk.
    pub(crate) fn finish(&mut self) -> Result<&Path> {
        self.file.sync_data().map_err(|source| Error::Io { path: self.path.clone(), source })?;
        Ok(&self.path)
    }

    /// Append 16 kHz mono samples.
    pub(crate) fn push(&mut self, mono: &[f32]) -> Result<()> {
        // A WAV holds at most 4 GiB (about 37 h here); stop there.
        let room = (u32::MAX - 36 - self.data_len) as usize / 2;
        self.bytes.clear();
        for &x in mono.iter().take(room) {
            self.bytes
                .extend_from_slice(&((x.clamp(-1.0, 1.0) * 32767.0).round() as i16).to_le_bytes());
        }
        if self.bytes.is_empty() {
            return Ok(());
        }
        self.data_len += self.bytes.len() as u32;
        let header = header(self.data_len);
        let file = &mut self.file;
        file.write_all(&self.bytes)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(&header))
            .and_then(|()| file.seek(SeekFrom::End(0)))
            .map(drop)
            .map_err(|source| Error::Io { path: self.path.clone(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_wav_at_every_moment_and_numbered_per_connection() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Recorder::create(dir.path(), "s").unwrap();
        assert_eq!(r.path, path_for(dir.path(), "s", 1));
        // 0.5 s of a 440 Hz tone.
        let tone: Vec<f32> = (0..8_000)
            .map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / 16_000.0).sin() * 0.5)
            .collect();
        r.push(&tone).unwrap();
        // Readable before the end (as after a crash).
        let audio = crate::audio::read_wav(&path_for(dir.path(), "s", 1)).unwrap();
        assert_eq!(audio.sample_rate, 16_000);
        assert_eq!(audio.samples.len(), 8000);
        r.push(&tone).unwrap();
        let path = r.finish().unwrap().to_path_buf();
        let audio = crate::audio::read_wav(&path).unwrap();
        assert_eq!((audio.sample_rate, audio.channels), (16_000, 1));
        assert_eq!(audio.samples.len(), 16_000);
        let peak = audio.samples.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!((peak - 0.5).abs() < 0.02, "{peak}");
        let second = Recorder::create(dir.path(), "s").unwrap();
        assert_eq!(second.path, path_for(dir.path(), "s", 2));
    }
}
