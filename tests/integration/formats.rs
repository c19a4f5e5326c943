//! Audio formats besides WAV (FLAC, MP3, Ogg Vorbis, M4A/AAC), encoded by ffmpeg from
//! espeak-ng speech: each decodes to the audio of its WAV and `cantocap transcribe`
//! gets the same words from it; damaged and unsupported files get one-line errors
//! naming the format.

use std::path::{Path, PathBuf};
use std::process::Command;

use cantocap::audio::{decode_audio, read_audio_file, read_wav, AudioFormat};

use crate::common::*;

const SENTENCE: &str = "Good morning everyone, and welcome to the weekly project meeting.";

/// Run ffmpeg quietly with these arguments.
fn ffmpeg(args: &[&str]) {
    let status =
        Command::new("ffmpeg").args(["-loglevel", "error", "-y"]).args(args).status().expect(
            "ffmpeg is needed for the audio format tests: apt-get install ffmpeg (./setup.sh does)",
        );
    assert!(status.success(), "ffmpeg {args:?} failed");
}

/// `wav` encoded as `name` with these codec arguments.
fn encode(wav: &Path, dir: &Path, name: &str, codec: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let mut args = vec!["-i", wav.to_str().unwrap()];
    args.extend_from_slice(codec);
    args.push(out.to_str().unwrap());
    ffmpeg(&args);
    out
}

/// The four compressed formats of `wav`, at its own rate and channels.
fn encodings(wav: &Path, dir: &Path) -> Vec<(AudioFormat, PathBuf)> {
    vec![
        (AudioFormat::Flac, encode(wav, dir, "speech.flac", &["-c:a", "flac"])),
        (AudioFormat::Mp3, encode(wav, dir, "speech.mp3", &["-c:a", "libmp3lame", "-b:a", "64k"])),
        (AudioFormat::Ogg, encode(wav, dir, "speech.ogg", &["-c:a", "libvorbis", "-q:a", "4"])),
        (AudioFormat::M4a, encode(wav, dir, "speech.m4a", &["-c:a", "aac", "-b:a", "96k"])),
    ]
}

fn rms(samples: &[f32]) -> f64 {
    (samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / samples.len() as f64)
        .sqrt()
}

#[test]
fn every_format_decodes_to_the_audio_of_its_wav_at_any_rate_and_channel_count() {
    let dir = tempfile::tempdir().unwrap();
    let spoken = dir.path().join("spoken.wav");
    speak("en", SENTENCE, &spoken);
    for (rate, channels) in [(22_050u32, 1u16), (44_100, 2), (48_000, 1), (16_000, 2)] {
        let sub = dir.path().join(format!("{rate}-{channels}"));
        std::fs::create_dir(&sub).unwrap();
        let wav = sub.join("speech.wav");
        ffmpeg(&[
            "-i",
            spoken.to_str().unwrap(),
            "-ar",
            &rate.to_string(),
            "-ac",
            &channels.to_string(),
            "-c:a",
            "pcm_s16le",
            wav.to_str().unwrap(),
        ]);
        let reference = read_wav(&wav).unwrap();
        let reference_rms = rms(&reference.samples);
        for (format, path) in encodings(&wav, &sub) {
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(AudioFormat::sniff(&bytes), Some(format), "{}", path.display());
            let audio = decode_audio(&bytes, &path)
                .unwrap_or_else(|e| panic!("{format} {rate} Hz {channels} ch: {e}"));
            let what = format!("{format} at {rate} Hz, {channels} ch");
            assert_eq!((audio.sample_rate, audio.channels), (rate, channels), "{what}");
            // Lossy codecs pad the start and end; the padding is cut where the file
            // says how much (MP3's LAME header, Ogg), not in M4A (its edit list is not
            // read: 1024 samples of encoder delay and up to 1024 of padding stay).
            let drift = audio.duration_ms().abs_diff(reference.duration_ms());
            let allowed = match format {
                AudioFormat::M4a => 2048 * 1000 / u64::from(rate) + 5,
                _ => 30,
            };
            assert!(
                drift <= allowed,
                "{what}: {} ms against {} ms",
                audio.duration_ms(),
                reference.duration_ms()
            );
            if format == AudioFormat::Flac {
                assert_eq!(audio.samples, reference.samples, "{what}: FLAC is lossless");
            } else {
                let ratio = rms(&audio.samples) / reference_rms;
                assert!((0.8..1.25).contains(&ratio), "{what}: loudness ratio {ratio:.2}");
            }
            // Read from a file, the same.
            let (from_file, info) = read_audio_file(&path).unwrap();
            assert_eq!(from_file, audio, "{what}");
            assert!(info.is_none());
        }
    }
}

#[test]
fn transcribe_gets_the_same_words_from_every_format() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("speech.wav");
    speak("en", SENTENCE, &wav);
    let transcribe = |path: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_cantocap"))
            .args(["transcribe", "--language", "en", "--format", "txt", "--model"])
            .arg(model("ggml-tiny.en.bin"))
            .arg(path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {stderr}", path.display());
        String::from_utf8(out.stdout).unwrap()
    };
    let from_wav = transcribe(&wav);
    assert!(wer(SENTENCE, &from_wav) <= 0.2, "WAV: {from_wav:?}");
    for (format, path) in encodings(&wav, dir.path()) {
        let text = transcribe(&path);
        let against_wav = wer(&from_wav, &text);
        assert!(against_wav <= 0.1, "{format}: {text:?} against the WAV's {from_wav:?}");
        assert!(wer(SENTENCE, &text) <= 0.2, "{format}: {text:?}");
    }
}

#[test]
fn damaged_and_unsupported_files_get_one_line_errors_naming_the_format() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("speech.wav");
    speak("en", SENTENCE, &wav);
    let files = encodings(&wav, dir.path());
    let path_of = |f: AudioFormat| files.iter().find(|(g, _)| *g == f).unwrap().1.clone();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };

    // FLAC whose frames are overwritten with noise after the header.
    let mut flac = std::fs::read(path_of(AudioFormat::Flac)).unwrap();
    let mut x = 12345u32;
    for b in flac.iter_mut().skip(200) {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        *b = (x >> 16) as u8;
    }
    let noisy_flac = write("noisy.flac", &flac);
    // M4A cut in half: ffmpeg writes the index (moov) at the end, so nothing is left
    // to find the audio by.
    let m4a = std::fs::read(path_of(AudioFormat::M4a)).unwrap();
    let cut_m4a = write("cut.m4a", &m4a[..m4a.len() / 2]);
    // Ogg with Opus inside, which is not decoded.
    let opus = encode(&wav, dir.path(), "speech.opus", &["-c:a", "libopus", "-f", "ogg"]);
    let text = write("notes.mp3", b"These are my meeting notes, not audio.\n");
    let aiff = encode(&wav, dir.path(), "speech.aiff", &[]);

    for (path, wanted) in [
        (&noisy_flac, &["corrupt FLAC"][..]),
        (&cut_m4a, &["M4A"][..]),
        (&opus, &["Ogg", "Opus", "Vorbis"][..]),
        (&text, &["not a supported audio format", "text", "MP3"][..]),
        (&aiff, &["AIFF", "FLAC"][..]),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_cantocap"))
            .args(["transcribe", "--model"])
            .arg(model("ggml-tiny.en.bin"))
            .arg(path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{}: accepted", path.display());
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(err.starts_with("error: ") && err.contains(name), "{err}");
        for w in wanted {
            assert!(err.contains(w), "{}: {w:?} not in {err}", path.display());
        }
    }
}
