//! `--vad`: which voice activity detector finds speech, for every command that
//! captions (`transcribe`, `live`, `serve`, `eval`).
//!
//! Silero by default when its model can be found (see
//! [`cantocap::audio::silero::find_default_model`]); the built-in energy detector
//! otherwise, with a note, since it takes steady noise for speech.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use cantocap::audio::silero::{self, DefaultModel, MODEL_ENV};

/// What `--vad` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VadChoice {
    /// Silero, from the default places; an error if it is not there.
    Silero,
    /// The built-in energy detector.
    Builtin,
    /// Silero, from this model file.
    Path(PathBuf),
}

impl FromStr for VadChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "" => Err("give silero, builtin or the path of a Silero model".into()),
            "silero" => Ok(Self::Silero),
            "builtin" => Ok(Self::Builtin),
            path => Ok(Self::Path(PathBuf::from(path))),
        }
    }
}

/// The voice activity flags, shared by `transcribe`, `live`, `serve` and `eval`.
#[derive(clap::Args, Debug)]
pub struct VadArgs {
    /// How speech is told from silence and noise: silero, builtin or a Silero model
    /// PATH [default: silero if its model is found, else builtin].
    #[arg(
        long,
        value_name = "silero|builtin|PATH",
        long_help = "How speech is told from silence and noise (nothing else is decoded):
  silero    Silero VAD (run by whisper.cpp): tells speech from fans, air-conditioning,
            hum and music. Its model is looked for in $CANTOCAP_VAD_MODEL, then as
            ggml-silero-vad.bin beside the Whisper model, then in ./models/
  builtin   the built-in energy detector: no model file, but steady noise may be
            taken for speech and captioned
  PATH      Silero, with this ggml model file
Default: silero when its model is found there, else builtin with a note saying so.
./setup.sh and models/fetch-test-model.sh make models/ggml-silero-vad.bin; so does
`cantocap model import-vad silero_vad_16k.safetensors -o models/ggml-silero-vad.bin`."
    )]
    pub vad: Option<VadChoice>,
    /// The Silero model file: the same as --vad PATH (kept for older scripts).
    #[arg(long, value_name = "PATH", hide = true, conflicts_with = "vad")]
    pub vad_model: Option<PathBuf>,
}

/// What the flags come to: the Silero model to use (`None`: the built-in detector),
/// and a note for the user when the default fell back to the built-in one.
#[derive(Debug, PartialEq, Eq)]
pub struct VadSetting {
    pub model: Option<PathBuf>,
    pub note: Option<String>,
}

impl VadArgs {
    /// Resolve against the Whisper model in use, the environment and the file system;
    /// the chosen model is checked now, so a bad file fails before anything loads.
    pub fn resolve(self, whisper_model: &Path) -> Result<VadSetting> {
        let choice = self.vad.or(self.vad_model.map(VadChoice::Path));
        let env = std::env::var_os(MODEL_ENV);
        let setting = decide(choice.as_ref(), env.as_deref(), whisper_model, Path::is_file)?;
        if let Some(path) = &setting.model {
            silero::check_model(path).with_context(|| match (&choice, &env) {
                (Some(VadChoice::Path(_)), _) => "--vad".to_string(),
                (_, Some(env)) if !env.is_empty() => format!("${MODEL_ENV}"),
                _ => "the default Silero VAD model (--vad builtin does without it)".to_string(),
            })?;
        }
        Ok(setting)
    }
}

const HOW_TO_GET: &str = "models/fetch-test-model.sh or `cantocap model import-vad` makes it";

fn looked_in(places: &[PathBuf]) -> String {
    let mut list = format!("${MODEL_ENV} (unset)");
    for p in places {
        list.push_str(", ");
        list.push_str(&p.display().to_string());
    }
    list
}

/// The decision, without I/O: `env` is the value of `$CANTOCAP_VAD_MODEL`, `exists`
/// says whether a file is there.
pub fn decide(
    choice: Option<&VadChoice>,
    env: Option<&OsStr>,
    whisper_model: &Path,
    exists: impl Fn(&Path) -> bool,
) -> Result<VadSetting> {
    let located = || silero::locate_default_model(env, whisper_model, &exists);
    let model = match choice {
        Some(VadChoice::Builtin) => None,
        Some(VadChoice::Path(path)) => Some(path.clone()),
        Some(VadChoice::Silero) => match located() {
            DefaultModel::NotFound(places) => bail!(
                "--vad silero: no Silero VAD model found (looked in {}); {HOW_TO_GET}, or pass --vad PATH",
                looked_in(&places)
            ),
            found => found.path().map(Path::to_path_buf),
        },
        None => match located() {
            DefaultModel::NotFound(places) => {
                let note = format!(
                    "Silero VAD model not found (looked in {}): using the built-in detector, which may caption steady noise; {HOW_TO_GET} (--vad builtin hides this note)",
                    looked_in(&places)
                );
                return Ok(VadSetting { model: None, note: Some(note) });
            }
            found => found.path().map(Path::to_path_buf),
        },
    };
    Ok(VadSetting { model, note: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHISPER: &str = "/m/ggml-base.bin";
    const BESIDE: &str = "/m/ggml-silero-vad.bin";

    fn run(choice: Option<&str>, env: Option<&str>, files: &[&str]) -> Result<VadSetting> {
        let choice = choice.map(|c| c.parse::<VadChoice>().unwrap());
        let exists = |p: &Path| files.iter().any(|f| Path::new(f) == p);
        decide(choice.as_ref(), env.map(OsStr::new), Path::new(WHISPER), exists)
    }

    #[test]
    fn the_default_is_silero_when_found_without_a_note() {
        let s = run(None, None, &[BESIDE]).unwrap();
        assert_eq!(s, VadSetting { model: Some(BESIDE.into()), note: None });
        let s = run(None, Some("/e/vad.bin"), &[BESIDE]).unwrap();
        assert_eq!(s.model, Some("/e/vad.bin".into()), "the environment wins");
        let s = run(None, None, &["models/ggml-silero-vad.bin"]).unwrap();
        assert_eq!(s.model, Some("models/ggml-silero-vad.bin".into()));
    }

    #[test]
    fn the_default_falls_back_to_builtin_with_a_one_line_note() {
        let s = run(None, None, &[]).unwrap();
        assert_eq!(s.model, None);
        let note = s.note.unwrap();
        assert!(!note.contains('\n'), "{note}");
        for needle in ["CANTOCAP_VAD_MODEL", BESIDE, "models/ggml-silero-vad.bin", "import-vad"] {
            assert!(note.contains(needle), "{needle:?} not in {note}");
        }
    }

    #[test]
    fn silero_asked_for_and_missing_is_an_error_naming_the_places() {
        let err = run(Some("silero"), None, &[]).unwrap_err().to_string();
        for needle in ["--vad silero", "CANTOCAP_VAD_MODEL", BESIDE, "models/ggml-silero-vad.bin"] {
            assert!(err.contains(needle), "{needle:?} not in {err}");
        }
        let s = run(Some("silero"), None, &[BESIDE]).unwrap();
        assert_eq!(s, VadSetting { model: Some(BESIDE.into()), note: None });
    }

    #[test]
    fn builtin_and_paths_are_taken_as_given() {
        let s = run(Some("builtin"), Some("/e/vad.bin"), &[BESIDE]).unwrap();
        assert_eq!(s, VadSetting { model: None, note: None });
        // A path is used even if absent: the model check then names it.
        let s = run(Some("/x/vad.bin"), None, &[BESIDE]).unwrap();
        assert_eq!(s, VadSetting { model: Some("/x/vad.bin".into()), note: None });
        assert!("".parse::<VadChoice>().is_err());
    }
}
