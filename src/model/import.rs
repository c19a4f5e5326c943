//! Importing a Whisper folder into whisper.cpp's ggml format: a CTranslate2
//! (faster-whisper) folder, described here, or a Hugging Face transformers folder
//! (see [`super::hf`]'s table); [`import_model`] tells them apart.
//!
//! A CTranslate2 Whisper folder holds `model.bin` (the weights, see [`super::ct2`]),
//! `config.json` and `vocabulary.txt` (or `vocabulary.json`). The weights are Hugging
//! Face's Whisper weights under CTranslate2's names, with attention projections fused;
//! whisper.cpp wants OpenAI's names and layout. The mapping:
//!
//! | ggml (OpenAI) name                           | CTranslate2 variable                                 |
//! |----------------------------------------------|------------------------------------------------------|
//! | `encoder.positional_embedding`               | `encoder/position_encodings/encodings` (or sinusoids) |
//! | `encoder.conv{1,2}.{weight,bias}`            | `encoder/conv{1,2}/{weight,bias}`                    |
//! | `{enc}.blocks.N.attn.{query,key,value}`      | `{enc}/layer_N/self_attention/linear_0`, rows ⅓ each  |
//! | `{enc}.blocks.N.attn.out`                    | `{enc}/layer_N/self_attention/linear_1`              |
//! | `{enc}.blocks.N.attn_ln`                     | `{enc}/layer_N/self_attention/layer_norm`            |
//! | `decoder.blocks.N.cross_attn.query`          | `decoder/layer_N/attention/linear_0`                 |
//! | `decoder.blocks.N.cross_attn.{key,value}`    | `decoder/layer_N/attention/linear_1`, rows ½ each    |
//! | `decoder.blocks.N.cross_attn.out`            | `decoder/layer_N/attention/linear_2`                 |
//! | `decoder.blocks.N.cross_attn_ln`             | `decoder/layer_N/attention/layer_norm`               |
//! | `{enc}.blocks.N.mlp.{0,2}`                   | `{enc}/layer_N/ffn/linear_{0,1}`                     |
//! | `{enc}.blocks.N.mlp_ln`                      | `{enc}/layer_N/ffn/layer_norm`                       |
//! | `encoder.ln_post` / `decoder.ln`             | `encoder/layer_norm` / `decoder/layer_norm`          |
//! | `decoder.positional_embedding`               | `decoder/position_encodings/encodings`               |
//! | `decoder.token_embedding.weight`             | `decoder/embeddings/weight`                          |
//!
//! (`{enc}` is `encoder` or `decoder`; layer norms map `gamma`/`beta` to `weight`/`bias`.)
//! Fused projections are stacked row-wise in q, k, v order. The key slot's bias is zero
//! (Whisper's key projection has none) and is dropped: whisper.cpp has no key bias, and
//! a key bias could not change attention anyway, since it adds the same amount to every
//! score of a query. `decoder/projection` is tied to the token embedding and skipped.
//!
//! Storage types follow whisper.cpp's loader and `quantize` tool: positional embeddings,
//! biases, layer norms and the conv biases (as `[1, n]`) are f32; conv kernels f16; the
//! 2-D matrices (attention, MLP, token embedding) f16, q8_0 or q5_0.

use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::ct2::Ct2Model;
use super::ggml::{
    GgmlHeader, GgmlType, GgmlWriter, FTYPE_MOSTLY_F16, FTYPE_MOSTLY_Q5_0, FTYPE_MOSTLY_Q8_0,
    QNT_VERSION, QNT_VERSION_FACTOR,
};
use super::mel::whisper_filters;
use super::tokens::{Vocabulary, END_OF_TEXT};
use crate::{Error, Result};

/// How the large weight matrices are stored in the imported model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Quantize {
    /// 16-bit floats: the reference quality, about 2 bytes per weight.
    #[default]
    F16,
    /// ggml's q8_0 (8-bit blocks of 32 with an f16 scale): about 55 % of the size of f16
    /// and faster on CPUs, slightly less exact.
    Q8_0,
    /// ggml's q5_0 (5-bit blocks of 32 with an f16 scale): about 37 % of the size of f16,
    /// less exact than q8_0.
    Q5_0,
}

impl Quantize {
    /// The ggml type of the attention, MLP and token-embedding matrices.
    pub fn weight_type(self) -> GgmlType {
        match self {
            Self::F16 => GgmlType::F16,
            Self::Q8_0 => GgmlType::Q8_0,
            Self::Q5_0 => GgmlType::Q5_0,
        }
    }

    /// The `ftype` header value, as whisper.cpp's converter (f16) and `quantize` tool
    /// (q8_0 and q5_0, with the quantization version) write it.
    pub fn ftype(self) -> i32 {
        match self {
            Self::F16 => FTYPE_MOSTLY_F16,
            Self::Q8_0 => QNT_VERSION * QNT_VERSION_FACTOR + FTYPE_MOSTLY_Q8_0,
            Self::Q5_0 => QNT_VERSION * QNT_VERSION_FACTOR + FTYPE_MOSTLY_Q5_0,
        }
    }

    /// The name used on the command line: `f16`, `q8_0` or `q5_0`.
    pub fn name(self) -> &'static str {
        match self {
            Self::F16 => "f16",
            Self::Q8_0 => "q8_0",
            Self::Q5_0 => "q5_0",
        }
    }
}

impl fmt::Display for Quantize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A quantization name that is not `f16`, `q8_0` or `q5_0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseQuantizeError(String);

impl fmt::Display for ParseQuantizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown quantization {:?}: use f16, q8_0 or q5_0", self.0)
    }
}

impl std::error::Error for ParseQuantizeError {}

impl FromStr for Quantize {
    type Err = ParseQuantizeError;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f16" | "fp16" | "float16" => Ok(Self::F16),
            "q8_0" | "q8" => Ok(Self::Q8_0),
            "q5_0" | "q5" => Ok(Self::Q5_0),
            _ => Err(ParseQuantizeError(s.to_owned())),
        }
    }
}

/// What an import produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// Vocabulary size, special tokens included (51864 English-only, 51865 multilingual,
    /// 51866 large-v3).
    pub n_vocab: usize,
    /// Mel bands of the input (80, or 128 for large-v3).
    pub n_mels: usize,
    /// Encoder layers.
    pub n_audio_layer: usize,
    /// Decoder layers.
    pub n_text_layer: usize,
    /// Model width.
    pub n_audio_state: usize,
    /// Encoder attention heads.
    pub n_audio_head: usize,
    /// Decoder attention heads.
    pub n_text_head: usize,
    /// Whether the model is multilingual (knows language tokens).
    pub multilingual: bool,
    /// Text tokens written (those before `<|endoftext|>`; whisper.cpp adds the rest).
    pub tokens_written: usize,
    /// Tensors written.
    pub tensors: usize,
    /// Size of the output file in bytes.
    pub bytes_written: u64,
    /// How the weight matrices were stored.
    pub quantize: Quantize,
    /// The type of the source token embedding, such as `float16`, `bfloat16` or `int8`.
    pub source_dtype: String,
    /// The header written, for [`GgmlHeader::size_name`] and friends.
    pub header: GgmlHeader,
}

/// Imports the CTranslate2 Whisper model in folder `ct2_dir` into a ggml model at `out`
/// with the weight matrices stored as `quantize` says.
///
/// `out` is created (or truncated) and written directly; write to a temporary name and
/// rename it if a partial file must never be seen. Everything that can be checked is
/// checked before `out` is touched; if writing fails midway the partial file is removed.
///
/// Fails with [`Error::BadCt2Model`] naming what is wrong when the folder is not a
/// CTranslate2 Whisper model (missing `model.bin`, `config.json` or vocabulary, another
/// kind of model, a damaged or truncated file, a missing variable or a wrong shape), and
/// with [`Error::Io`] when reading or writing fails.
pub fn import_ct2(ct2_dir: &Path, out: &Path, quantize: Quantize) -> Result<ImportReport> {
    import_ct2_with_progress(ct2_dir, out, quantize, &mut |_, _| {})
}

/// [`import_ct2`], calling `progress(done, total)` after each tensor is written.
pub fn import_ct2_with_progress(
    ct2_dir: &Path,
    out: &Path,
    quantize: Quantize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ImportReport> {
    let source = Source::open(ct2_dir)?;
    convert(source, out, quantize, progress)
}

/// What kind of model folder [`import_model`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// A CTranslate2 (faster-whisper) folder: `model.bin`, `config.json`, a vocabulary.
    Ct2,
    /// A Hugging Face transformers folder: `config.json`, `model.safetensors` (or shards
    /// and `model.safetensors.index.json`), `vocab.json` or `tokenizer.json`.
    Transformers,
}

impl ModelKind {
    /// Tells the kind of the model folder `dir` from the files it holds: `model.bin`
    /// means CTranslate2; safetensors weights (or PyTorch's `pytorch_model.bin`, which
    /// the importer then refuses by name) mean transformers.
    ///
    /// Fails with [`Error::BadCt2Model`] when `dir` is missing, is a file, or holds
    /// neither kind.
    pub fn detect(dir: &Path) -> Result<Self> {
        let bad = |reason: String| Error::BadCt2Model { path: dir.to_path_buf(), reason };
        if !dir.exists() {
            return Err(bad("the folder does not exist".into()));
        }
        if !dir.is_dir() {
            return Err(bad("this is a file; give the model's folder".into()));
        }
        if dir.join("model.bin").is_file() {
            return Ok(Self::Ct2);
        }
        let has = |name: &str| dir.join(name).is_file();
        let shards = std::fs::read_dir(dir)
            .map_err(|e| Error::Io { path: dir.to_path_buf(), source: e })?
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().ends_with(".safetensors"));
        if has(super::safetensors::SINGLE_FILE)
            || has(super::safetensors::INDEX_FILE)
            || shards
            || has("pytorch_model.bin")
        {
            return Ok(Self::Transformers);
        }
        Err(bad("the folder has neither model.bin (a CTranslate2 / faster-whisper model) nor \
             model.safetensors (a Hugging Face transformers model)"
            .into()))
    }

    /// A short name for messages: `CTranslate2` or `transformers`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ct2 => "CTranslate2",
            Self::Transformers => "transformers",
        }
    }
}

/// Imports the Whisper model in folder `dir`, a CTranslate2 folder or a Hugging Face
/// transformers folder (told apart by [`ModelKind::detect`]), into a ggml model at
/// `out`. Both kinds of the same weights give the same ggml file.
///
/// Fails as [`import_ct2`] or [`import_transformers`] do, and when the folder is
/// neither kind.
pub fn import_model(dir: &Path, out: &Path, quantize: Quantize) -> Result<ImportReport> {
    import_model_with_progress(dir, out, quantize, &mut |_, _| {})
}

/// [`import_model`], calling `progress(done, total)` after each tensor is written.
pub fn import_model_with_progress(
    dir: &Path,
    out: &Path,
    quantize: Quantize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ImportReport> {
    match ModelKind::detect(dir)? {
        ModelKind::Ct2 => import_ct2_with_progress(dir, out, quantize, progress),
        ModelKind::Transformers => import_transformers_with_progress(dir, out, quantize, progress),
    }
}

/// Imports the Hugging Face transformers Whisper model in folder `dir` (see
/// [`super::hf`]) into a ggml model at `out`, as [`import_ct2`] does for CTranslate2.
///
/// Fails with [`Error::BadHfModel`] naming the missing or wrong file, `config.json`
/// field or tensor, and with [`Error::Io`] when reading or writing fails.
pub fn import_transformers(dir: &Path, out: &Path, quantize: Quantize) -> Result<ImportReport> {
    import_transformers_with_progress(dir, out, quantize, &mut |_, _| {})
}

/// [`import_transformers`], calling `progress(done, total)` after each tensor is written.
pub fn import_transformers_with_progress(
    dir: &Path,
    out: &Path,
    quantize: Quantize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ImportReport> {
    let source = super::hf::open(dir)?;
    convert(source, out, quantize, progress)
}

/// Writes a checked source as a ggml model.
fn convert(
    mut source: Source,
    out: &Path,
    quantize: Quantize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ImportReport> {
    let plan = std::mem::take(&mut source.plan);
    let header = source.hp.header(quantize);

    let file = File::create(out).map_err(|e| out_err(out, e))?;
    let mut writer = GgmlWriter::new(BufWriter::with_capacity(1 << 20, file));
    let written =
        write_model(out, &mut writer, &mut source, &plan, quantize, progress).and_then(|()| {
            let tensors = writer.tensors_written();
            let bytes = writer.bytes_written();
            writer
                .finish()
                .map_err(|e| out_err(out, e))?
                .into_inner()
                .map_err(|e| out_err(out, e.into_error()))?
                .sync_all()
                .map_err(|e| out_err(out, e))?;
            Ok((tensors, bytes))
        });
    let (tensors, bytes_written) = match written {
        Ok(v) => v,
        Err(e) => {
            // A partial model would fail to load later with a less helpful message.
            let _ = std::fs::remove_file(out);
            return Err(e);
        }
    };
    let hp = &source.hp;
    Ok(ImportReport {
        n_vocab: hp.n_vocab,
        n_mels: hp.n_mels,
        n_audio_layer: hp.n_audio_layer,
        n_text_layer: hp.n_text_layer,
        n_audio_state: hp.n_state,
        n_audio_head: hp.n_audio_head,
        n_text_head: hp.n_text_head,
        multilingual: hp.n_vocab >= 51865,
        tokens_written: source.tokens.len(),
        tensors,
        bytes_written,
        quantize,
        source_dtype: source.source_dtype,
        header,
    })
}

fn out_err(out: &Path, source: std::io::Error) -> Error {
    Error::Io { path: out.to_path_buf(), source }
}

/// Whisper's hyperparameters, derived from the shapes of the source's weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Hparams {
    pub(super) n_vocab: usize,
    pub(super) n_audio_ctx: usize,
    pub(super) n_state: usize,
    pub(super) n_audio_head: usize,
    pub(super) n_audio_layer: usize,
    pub(super) n_text_ctx: usize,
    pub(super) n_text_head: usize,
    pub(super) n_text_layer: usize,
    pub(super) n_mels: usize,
}

impl Hparams {
    fn header(&self, quantize: Quantize) -> GgmlHeader {
        GgmlHeader {
            n_vocab: self.n_vocab as i32,
            n_audio_ctx: self.n_audio_ctx as i32,
            n_audio_state: self.n_state as i32,
            n_audio_head: self.n_audio_head as i32,
            n_audio_layer: self.n_audio_layer as i32,
            n_text_ctx: self.n_text_ctx as i32,
            n_text_state: self.n_state as i32,
            n_text_head: self.n_text_head as i32,
            n_text_layer: self.n_text_layer as i32,
            n_mels: self.n_mels as i32,
            ftype: quantize.ftype(),
        }
    }
}

/// Whisper's encoder always sees 30 s of audio as 1500 positions.
pub(super) const WHISPER_AUDIO_CTX: usize = 1500;
/// Every Whisper size uses 64-wide attention heads.
const WHISPER_HEAD_DIM: usize = 64;

/// Named weights the converter reads: CTranslate2's `model.bin` or safetensors files.
pub(super) trait Weights {
    /// The shape of `name`, outermost first, if it is there.
    fn shape(&self, name: &str) -> Option<&[usize]>;
    /// The error for a weight that is not there (or cannot be read).
    fn missing(&self, name: &str) -> Error;
    /// An error about weight `name`.
    fn bad(&self, name: &str, reason: String) -> Error;
    /// Rows `rows` (over the first dimension) of `name`, as `f32`.
    fn read_rows_f32(&mut self, name: &str, rows: Range<usize>) -> Result<Vec<f32>>;
}

impl Weights for Ct2Model {
    fn shape(&self, name: &str) -> Option<&[usize]> {
        self.get(name).map(|v| v.shape.as_slice())
    }

    fn missing(&self, name: &str) -> Error {
        match self.require(name) {
            Err(e) => e,
            Ok(_) => self.bad(name, format!("variable {name} cannot be read")),
        }
    }

    fn bad(&self, _name: &str, reason: String) -> Error {
        Error::BadCt2Model { path: self.path().to_path_buf(), reason }
    }

    fn read_rows_f32(&mut self, name: &str, rows: Range<usize>) -> Result<Vec<f32>> {
        Ct2Model::read_rows_f32(self, name, rows)
    }
}

/// A checked model folder, ready to convert.
pub(super) struct Source {
    pub(super) weights: Box<dyn Weights>,
    pub(super) hp: Hparams,
    /// The text tokens (those before `<|endoftext|>`), byte-decoded.
    pub(super) tokens: Vec<Vec<u8>>,
    /// The type of the token embedding, such as `float16`.
    pub(super) source_dtype: String,
    pub(super) plan: Vec<Planned>,
}

impl Source {
    fn open(dir: &Path) -> Result<Self> {
        let bad = |path: PathBuf, reason: String| Error::BadCt2Model { path, reason };
        if !dir.exists() {
            return Err(bad(dir.into(), "the folder does not exist".into()));
        }
        if !dir.is_dir() {
            return Err(bad(
                dir.into(),
                "this is a file; give the folder that holds model.bin, config.json and vocabulary.txt".into(),
            ));
        }
        for required in ["model.bin", "config.json"] {
            if !dir.join(required).is_file() {
                return Err(bad(dir.into(), format!("the folder has no {required}")));
            }
        }
        check_config(&dir.join("config.json"))?;

        let mut model = Ct2Model::open(&dir.join("model.bin"))?;
        let bad_model = |reason: String| bad(dir.join("model.bin"), reason);
        if model.spec() != "WhisperSpec" {
            let spec = if model.spec().is_empty() { "unnamed" } else { model.spec() };
            return Err(bad_model(format!(
                "model.bin holds a {spec} model, not Whisper (WhisperSpec)"
            )));
        }
        if model.spec_revision() > 3 {
            return Err(bad_model(format!(
                "WhisperSpec revision {} is newer than this importer knows (1 to 3)",
                model.spec_revision()
            )));
        }
        let hp = derive_hparams(&mut model)?;

        let vocab = Vocabulary::read(dir)?;
        let vocab_path = if dir.join("vocabulary.json").is_file() {
            dir.join("vocabulary.json")
        } else {
            dir.join("vocabulary.txt")
        };
        if vocab.len() != hp.n_vocab {
            return Err(bad(
                vocab_path,
                format!(
                    "the vocabulary has {} tokens but the model's embedding has {} rows",
                    vocab.len(),
                    hp.n_vocab
                ),
            ));
        }
        check_end_of_text(&vocab, hp.n_vocab).map_err(|r| bad(vocab_path.clone(), r))?;
        let tokens = vocab.text_token_bytes().map_err(|reason| bad(vocab_path.clone(), reason))?;

        let source_dtype = model.require("decoder/embeddings/weight")?.dtype.name().to_owned();
        let plan = plan_tensors(&model, &hp)?;
        Ok(Self { weights: Box::new(model), hp, tokens, source_dtype, plan })
    }
}

/// whisper.cpp hard-codes the special token ids from `n_vocab` alone: `<|endoftext|>`
/// must be where it expects it. The error is the reason, for the caller's error type.
pub(super) fn check_end_of_text(
    vocab: &Vocabulary,
    n_vocab: usize,
) -> std::result::Result<(), String> {
    let expected = if n_vocab >= 51865 { 50257 } else { 50256 };
    match vocab.end_of_text() {
        Some(eot) if eot == expected => Ok(()),
        Some(eot) => Err(format!(
            "{END_OF_TEXT} is token {eot}, but whisper.cpp expects it at {expected} in a model \
             of {n_vocab} tokens"
        )),
        None => Err(format!("the vocabulary has no {END_OF_TEXT} token")),
    }
}

/// `config.json` must exist and be a JSON object; Whisper's holds token lists only.
fn check_config(path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        Ok(_) => Err(Error::BadCt2Model {
            path: path.to_path_buf(),
            reason: "config.json is not a JSON object".into(),
        }),
        Err(e) => Err(Error::BadCt2Model {
            path: path.to_path_buf(),
            reason: format!("config.json is not valid JSON: {e}"),
        }),
    }
}

/// Counts `prefix/layer_N/` layers, which must be numbered 0..n without gaps.
fn count_layers(model: &Ct2Model, prefix: &str) -> Result<usize> {
    let lead = format!("{prefix}/layer_");
    let mut ids: Vec<usize> = model
        .variables()
        .iter()
        .filter_map(|v| v.name.strip_prefix(&lead)?.split('/').next()?.parse().ok())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Err(model.require(&format!("{prefix}/layer_0/ffn/linear_0/weight")).unwrap_err());
    }
    if let Some((i, _)) = ids.iter().enumerate().find(|(i, id)| i != *id) {
        return Err(Error::BadCt2Model {
            path: model.path().to_path_buf(),
            reason: format!("{prefix} layer {i} is missing"),
        });
    }
    Ok(ids.len())
}

fn derive_hparams(model: &mut Ct2Model) -> Result<Hparams> {
    let bad = |model: &Ct2Model, reason: String| Error::BadCt2Model {
        path: model.path().to_path_buf(),
        reason,
    };
    let shape = |model: &Ct2Model, name: &str, rank: usize| -> Result<Vec<usize>> {
        let v = model.require(name)?;
        if v.shape.len() != rank || v.shape.contains(&0) {
            return Err(bad(
                model,
                format!("{name} has shape {:?}, expected rank {rank}", v.shape),
            ));
        }
        Ok(v.shape.clone())
    };
    let embed = shape(model, "decoder/embeddings/weight", 2)?;
    let conv1 = shape(model, "encoder/conv1/weight", 3)?;
    let (n_vocab, n_state) = (embed[0], embed[1]);
    let (n_audio_state, n_mels) = (conv1[0], conv1[1]);
    if n_audio_state != n_state {
        return Err(bad(
            model,
            format!("encoder width {n_audio_state} differs from decoder width {n_state}; whisper.cpp needs them equal"),
        ));
    }
    if conv1[2] != 3 {
        return Err(bad(
            model,
            format!("encoder/conv1/weight has kernel size {}, Whisper's is 3", conv1[2]),
        ));
    }
    let n_text_ctx = shape(model, "decoder/position_encodings/encodings", 2)?[0];
    let n_audio_ctx = match model.get("encoder/position_encodings/encodings") {
        Some(_) => shape(model, "encoder/position_encodings/encodings", 2)?[0],
        None => WHISPER_AUDIO_CTX,
    };
    let mut heads = |name: &str| -> Result<usize> {
        let n = if model.get(name).is_some() {
            let n = model.read_scalar_i64(name)?;
            usize::try_from(n).map_err(|_| bad(model, format!("{name} is {n}")))?
        } else {
            n_state / WHISPER_HEAD_DIM
        };
        if n == 0 || n_state % n != 0 {
            return Err(bad(model, format!("{n} heads do not divide the width {n_state}")));
        }
        Ok(n)
    };
    let n_audio_head = heads("encoder/num_heads")?;
    let n_text_head = heads("decoder/num_heads")?;
    let hp = Hparams {
        n_vocab,
        n_audio_ctx,
        n_state,
        n_audio_head,
        n_audio_layer: count_layers(model, "encoder")?,
        n_text_ctx,
        n_text_head,
        n_text_layer: count_layers(model, "decoder")?,
        n_mels,
    };
    Ok(hp)
}

/// Where an output tensor's values come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Origin {
    /// A whole CTranslate2 variable.
    Var(String),
    /// Rows `start..start + len` (first dimension) of a variable: one part of a fused
    /// projection.
    Rows { var: String, start: usize, len: usize },
    /// Whisper's sinusoidal encoder positions, for models that do not store them.
    Sinusoids { len: usize, channels: usize },
}

/// How an output tensor is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Store {
    /// Always f32: biases, norms, positional embeddings.
    F32,
    /// Always f16: the conv kernels (whisper.cpp's `vtype`).
    F16,
    /// The chosen weight type (`wtype`): f16, q8_0 or q5_0.
    Weight,
}

/// One tensor of the ggml file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Planned {
    pub(super) name: String,
    pub(super) from: Origin,
    /// Dimensions innermost first, as ggml stores them.
    pub(super) ne: Vec<usize>,
    pub(super) store: Store,
}

/// Builds the tensor list, checking each source variable's shape on the way.
pub(super) struct Planner<'a> {
    pub(super) model: &'a dyn Weights,
    pub(super) d: usize,
    pub(super) plan: Vec<Planned>,
}

impl Planner<'_> {
    /// The encoder's positional embedding (`pe` in the source, or sinusoids computed
    /// as Whisper does where the source has none) and its two convolutions, whose
    /// weight and bias are at `conv("conv1" | "conv2", "weight" | "bias")`.
    pub(super) fn encoder_front(
        &mut self,
        hp: &Hparams,
        pe: &str,
        conv: impl Fn(&str, &str) -> String,
    ) -> Result<()> {
        let d = self.d;
        if self.model.shape(pe).is_some() {
            self.whole(
                "encoder.positional_embedding".into(),
                pe.into(),
                &[hp.n_audio_ctx, d],
                Store::F32,
            )?;
        } else {
            self.plan.push(Planned {
                name: "encoder.positional_embedding".into(),
                from: Origin::Sinusoids { len: hp.n_audio_ctx, channels: d },
                ne: vec![d, hp.n_audio_ctx],
                store: Store::F32,
            });
        }
        for (name, n_in) in [("conv1", hp.n_mels), ("conv2", d)] {
            self.whole(
                format!("encoder.{name}.weight"),
                conv(name, "weight"),
                &[d, n_in, 3],
                Store::F16,
            )?;
            // whisper.cpp adds the conv bias as a [1, n] tensor.
            let bias = conv(name, "bias");
            self.check(&bias, &[d])?;
            self.plan.push(Planned {
                name: format!("encoder.{name}.bias"),
                from: Origin::Var(bias),
                ne: vec![1, d],
                store: Store::F32,
            });
        }
        Ok(())
    }

    pub(super) fn check(&self, var: &str, shape: &[usize]) -> Result<()> {
        let got = self.model.shape(var).ok_or_else(|| self.model.missing(var))?;
        if got != shape {
            return Err(self
                .model
                .bad(var, format!("{var} has shape {got:?}, expected {shape:?}")));
        }
        Ok(())
    }

    /// A whole variable of source shape `shape` (ggml lists it reversed).
    pub(super) fn whole(
        &mut self,
        name: String,
        var: String,
        shape: &[usize],
        store: Store,
    ) -> Result<()> {
        self.check(&var, shape)?;
        self.plan.push(Planned {
            name,
            from: Origin::Var(var),
            ne: shape.iter().rev().copied().collect(),
            store,
        });
        Ok(())
    }

    /// A `[out, in]` linear layer: `name.weight` and `name.bias`.
    fn linear(&mut self, name: &str, ct2: &str, out: usize, inp: usize) -> Result<()> {
        self.whole(format!("{name}.weight"), format!("{ct2}/weight"), &[out, inp], Store::Weight)?;
        self.whole(format!("{name}.bias"), format!("{ct2}/bias"), &[out], Store::F32)
    }

    fn layer_norm(&mut self, name: &str, ct2: &str) -> Result<()> {
        let d = self.d;
        self.whole(format!("{name}.weight"), format!("{ct2}/gamma"), &[d], Store::F32)?;
        self.whole(format!("{name}.bias"), format!("{ct2}/beta"), &[d], Store::F32)
    }

    /// Part `index` of `parts` row blocks of a fused projection: a `[parts·d, d]` weight
    /// or a `[parts·d]` bias.
    fn part(&mut self, name: String, var: String, parts: usize, index: usize) -> Result<()> {
        let d = self.d;
        let is_weight = var.ends_with("/weight");
        let (shape, ne, store) = if is_weight {
            (vec![parts * d, d], vec![d, d], Store::Weight)
        } else {
            (vec![parts * d], vec![d], Store::F32)
        };
        self.check(&var, &shape)?;
        self.plan.push(Planned {
            name,
            from: Origin::Rows { var, start: index * d, len: d },
            ne,
            store,
        });
        Ok(())
    }

    /// Self-attention: q, k, v fused in `linear_0` (the key bias, zero, is dropped), the
    /// output projection in `linear_1`. Ordered as OpenAI's checkpoints: q.weight, q.bias,
    /// k.weight, v.weight, v.bias, out, then the layer norm.
    fn self_attention(&mut self, blk: &str, layer: &str) -> Result<()> {
        let (a, sa) = (format!("{blk}.attn"), format!("{layer}/self_attention"));
        let (w, b) = (format!("{sa}/linear_0/weight"), format!("{sa}/linear_0/bias"));
        self.part(format!("{a}.query.weight"), w.clone(), 3, 0)?;
        self.part(format!("{a}.query.bias"), b.clone(), 3, 0)?;
        self.part(format!("{a}.key.weight"), w.clone(), 3, 1)?;
        self.part(format!("{a}.value.weight"), w, 3, 2)?;
        self.part(format!("{a}.value.bias"), b, 3, 2)?;
        self.linear(&format!("{a}.out"), &format!("{sa}/linear_1"), self.d, self.d)?;
        self.layer_norm(&format!("{blk}.attn_ln"), &format!("{sa}/layer_norm"))
    }

    /// Cross-attention: q in `linear_0`, k and v fused in `linear_1`, out in `linear_2`.
    fn cross_attention(&mut self, blk: &str, layer: &str) -> Result<()> {
        let (a, ca) = (format!("{blk}.cross_attn"), format!("{layer}/attention"));
        self.linear(&format!("{a}.query"), &format!("{ca}/linear_0"), self.d, self.d)?;
        let (w, b) = (format!("{ca}/linear_1/weight"), format!("{ca}/linear_1/bias"));
        self.part(format!("{a}.key.weight"), w.clone(), 2, 0)?;
        self.part(format!("{a}.value.weight"), w, 2, 1)?;
        self.part(format!("{a}.value.bias"), b, 2, 1)?;
        self.linear(&format!("{a}.out"), &format!("{ca}/linear_2"), self.d, self.d)?;
        self.layer_norm(&format!("{blk}.cross_attn_ln"), &format!("{ca}/layer_norm"))
    }

    /// The MLP; whisper.cpp hard-codes its width as 4 × n_state.
    fn mlp(&mut self, blk: &str, layer: &str) -> Result<()> {
        let d = self.d;
        self.linear(&format!("{blk}.mlp.0"), &format!("{layer}/ffn/linear_0"), 4 * d, d)?;
        self.linear(&format!("{blk}.mlp.2"), &format!("{layer}/ffn/linear_1"), d, 4 * d)?;
        self.layer_norm(&format!("{blk}.mlp_ln"), &format!("{layer}/ffn/layer_norm"))
    }
}

/// Lists the tensors whisper.cpp expects, in the order OpenAI's checkpoints (and so
/// whisper.cpp's converter) hold them, checking each source variable's shape.
fn plan_tensors(model: &Ct2Model, hp: &Hparams) -> Result<Vec<Planned>> {
    let model: &dyn Weights = model;
    let d = hp.n_state;
    let mut p = Planner { model, d, plan: Vec::new() };

    p.encoder_front(hp, "encoder/position_encodings/encodings", |conv, part| {
        format!("encoder/{conv}/{part}")
    })?;
    for i in 0..hp.n_audio_layer {
        let (blk, layer) = (format!("encoder.blocks.{i}"), format!("encoder/layer_{i}"));
        p.self_attention(&blk, &layer)?;
        p.mlp(&blk, &layer)?;
    }
    p.layer_norm("encoder.ln_post", "encoder/layer_norm")?;

    p.whole(
        "decoder.positional_embedding".into(),
        "decoder/position_encodings/encodings".into(),
        &[hp.n_text_ctx, d],
        Store::F32,
    )?;
    p.whole(
        "decoder.token_embedding.weight".into(),
        "decoder/embeddings/weight".into(),
        &[hp.n_vocab, d],
        Store::Weight,
    )?;
    for i in 0..hp.n_text_layer {
        let (blk, layer) = (format!("decoder.blocks.{i}"), format!("decoder/layer_{i}"));
        p.self_attention(&blk, &layer)?;
        p.cross_attention(&blk, &layer)?;
        p.mlp(&blk, &layer)?;
    }
    p.layer_norm("decoder.ln", "decoder/layer_norm")?;
    Ok(p.plan)
}

/// OpenAI's `sinusoids(length, channels)`: sin in the first half of each row, cos in the
/// second, with timescales from 1 to 10000.
pub fn whisper_sinusoids(length: usize, channels: usize) -> Vec<f32> {
    let half = channels / 2;
    let increment = 10_000f64.ln() / (half.max(2) - 1) as f64;
    let mut out = Vec::with_capacity(length * channels);
    for t in 0..length {
        let row: Vec<f64> = (0..half).map(|i| t as f64 * (-increment * i as f64).exp()).collect();
        out.extend(row.iter().map(|x| x.sin() as f32));
        out.extend(row.iter().map(|x| x.cos() as f32));
    }
    out
}

/// Values converted per chunk: bounds memory whatever the model size.
const CHUNK_VALUES: usize = 1 << 20;

fn write_model<W: Write>(
    out: &Path,
    w: &mut GgmlWriter<W>,
    source: &mut Source,
    plan: &[Planned],
    quantize: Quantize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<()> {
    let io = |e: std::io::Error| out_err(out, e);
    w.write_header(&source.hp.header(quantize)).map_err(io)?;
    w.write_mel_filters(&whisper_filters(source.hp.n_mels)).map_err(io)?;
    w.write_tokens(&source.tokens).map_err(io)?;
    for (done, t) in plan.iter().enumerate() {
        let ty = match t.store {
            Store::F32 => GgmlType::F32,
            Store::F16 => GgmlType::F16,
            Store::Weight => quantize.weight_type(),
        };
        w.begin_tensor(&t.name, &t.ne, ty).map_err(io)?;
        match &t.from {
            Origin::Sinusoids { len, channels } => {
                w.write_data(&whisper_sinusoids(*len, *channels)).map_err(io)?;
            }
            Origin::Var(var) => {
                let shape = source.weights.shape(var).ok_or_else(|| source.weights.missing(var))?;
                let rows = shape.first().copied().unwrap_or(1);
                copy_rows(out, w, source.weights.as_mut(), var, 0, rows)?;
            }
            Origin::Rows { var, start, len } => {
                copy_rows(out, w, source.weights.as_mut(), var, *start, *len)?
            }
        }
        w.end_tensor().map_err(io)?;
        progress(done + 1, plan.len());
    }
    Ok(())
}

/// Streams rows `start..start + len` of `var` into the open tensor, a chunk at a time.
fn copy_rows<W: Write>(
    out: &Path,
    w: &mut GgmlWriter<W>,
    model: &mut dyn Weights,
    var: &str,
    start: usize,
    len: usize,
) -> Result<()> {
    let shape = model.shape(var).ok_or_else(|| model.missing(var))?;
    let row_len = shape.iter().skip(1).product::<usize>().max(1);
    let chunk_rows = (CHUNK_VALUES / row_len).max(1);
    let mut row = start;
    while row < start + len {
        let end = (row + chunk_rows).min(start + len);
        let values = model.read_rows_f32(var, row..end)?;
        w.write_data(&values).map_err(|e| out_err(out, e))?;
        row = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ct2::testing::{serialize, RawVar};
    use crate::model::ggml::{read_ggml_info, read_ggml_tensor, GgmlModelInfo};
    use crate::model::tokens::encode_bytes;

    const D: usize = 64;
    const N_MELS: usize = 80;
    const AUDIO_CTX: usize = 24;
    const TEXT_CTX: usize = 16;

    /// Recognisable values in `[base, base + 1)`, exact in f16 for |base| < 31, and
    /// different from one row of 64 to the next.
    fn ramp(base: f32, n: usize) -> Vec<f32> {
        (0..n).map(|i| base + ((i * 7) % 61) as f32 / 64.0).collect()
    }

    /// The tiny multilingual vocabulary: 50257 BPE tokens, then the specials.
    fn vocabulary(n_vocab: usize) -> String {
        let eot = if n_vocab >= 51865 { 50257 } else { 50256 };
        let mut lines: Vec<String> = (0..eot)
            .map(|i| match i {
                0 => encode_bytes(b" hello"),
                1 => encode_bytes("场".as_bytes()),
                2 => encode_bytes(b"\n"),
                50256 => String::new(),
                _ => format!("t{i}"),
            })
            .collect();
        lines.push(END_OF_TEXT.into());
        lines.extend((eot + 1..n_vocab).map(|i| format!("<|s{i}|>")));
        lines.join("\n") + "\n"
    }

    struct Synth {
        n_vocab: usize,
        layers: usize,
        int8_ffn: bool,
        encoder_positions: bool,
        skip: Option<&'static str>,
    }

    impl Default for Synth {
        fn default() -> Self {
            Self { n_vocab: 51865, layers: 2, int8_ffn: false, encoder_positions: true, skip: None }
        }
    }

    /// Variables of a small Whisper (d = 64, 1 head) in CTranslate2's layout. Each
    /// fused part gets its own base value so a wrong split shows: query rows start at
    /// 1, key rows at 2, value rows at 3 (self-attention); 4, 5, 6 for cross-attention.
    fn synth_vars(s: &Synth) -> Vec<RawVar> {
        let mut v = vec![
            RawVar::f16("decoder/embeddings/weight", &[s.n_vocab, D], &ramp(0.0, s.n_vocab * D)),
            RawVar::f16(
                "decoder/position_encodings/encodings",
                &[TEXT_CTX, D],
                &ramp(0.25, TEXT_CTX * D),
            ),
            RawVar::f16("decoder/layer_norm/gamma", &[D], &ramp(7.0, D)),
            RawVar::f16("decoder/layer_norm/beta", &[D], &ramp(8.0, D)),
            RawVar::i16_scalar("decoder/num_heads", 1),
            RawVar::i16_scalar("encoder/num_heads", 1),
            RawVar::f16("encoder/conv1/weight", &[D, N_MELS, 3], &ramp(0.5, D * N_MELS * 3)),
            RawVar::f16("encoder/conv1/bias", &[D], &ramp(9.0, D)),
            RawVar::f16("encoder/conv2/weight", &[D, D, 3], &ramp(0.75, D * D * 3)),
            RawVar::f16("encoder/conv2/bias", &[D], &ramp(10.0, D)),
            RawVar::f32("encoder/layer_norm/gamma", &[D], &ramp(11.0, D)),
            RawVar::f32("encoder/layer_norm/beta", &[D], &ramp(12.0, D)),
        ];
        if s.encoder_positions {
            v.push(RawVar::f16(
                "encoder/position_encodings/encodings",
                &[AUDIO_CTX, D],
                &whisper_sinusoids(AUDIO_CTX, D),
            ));
        }
        let qkv =
            |bases: &[f32]| -> Vec<f32> { bases.iter().flat_map(|b| ramp(*b, D * D)).collect() };
        let qkv_bias = |bases: &[f32]| -> Vec<f32> {
            bases.iter().flat_map(|b| if *b == 0.0 { vec![0.0; D] } else { ramp(*b, D) }).collect()
        };
        for (side, n) in [("encoder", s.layers), ("decoder", s.layers)] {
            for i in 0..n {
                let l = format!("{side}/layer_{i}");
                let sa = format!("{l}/self_attention");
                v.push(RawVar::f16(
                    &format!("{sa}/linear_0/weight"),
                    &[3 * D, D],
                    &qkv(&[1.0, 2.0, 3.0]),
                ));
                v.push(RawVar::f16(
                    &format!("{sa}/linear_0/bias"),
                    &[3 * D],
                    &qkv_bias(&[-1.0, 0.0, -3.0]),
                ));
                v.push(RawVar::f16(&format!("{sa}/linear_1/weight"), &[D, D], &ramp(13.0, D * D)));
                v.push(RawVar::f16(&format!("{sa}/linear_1/bias"), &[D], &ramp(14.0, D)));
                v.push(RawVar::f16(&format!("{sa}/layer_norm/gamma"), &[D], &ramp(15.0, D)));
                v.push(RawVar::f16(&format!("{sa}/layer_norm/beta"), &[D], &ramp(16.0, D)));
                let ffn = format!("{l}/ffn");
                if s.int8_ffn {
                    // Row r holds q = (j % 200) - 100, scale 100 / (r + 1): value (q / 100) * (r + 1).
                    let q: Vec<i8> =
                        (0..4 * D * D).map(|j| ((j % 200) as i32 - 100) as i8).collect();
                    let scales: Vec<f32> = (0..4 * D).map(|r| 100.0 / (r + 1) as f32).collect();
                    v.push(RawVar::i8(&format!("{ffn}/linear_0/weight"), &[4 * D, D], &q));
                    v.push(RawVar::f32(&format!("{ffn}/linear_0/weight_scale"), &[4 * D], &scales));
                } else {
                    v.push(RawVar::f16(
                        &format!("{ffn}/linear_0/weight"),
                        &[4 * D, D],
                        &ramp(17.0, 4 * D * D),
                    ));
                }
                v.push(RawVar::f16(&format!("{ffn}/linear_0/bias"), &[4 * D], &ramp(18.0, 4 * D)));
                v.push(RawVar::f16(
                    &format!("{ffn}/linear_1/weight"),
                    &[D, 4 * D],
                    &ramp(19.0, 4 * D * D),
                ));
                v.push(RawVar::f16(&format!("{ffn}/linear_1/bias"), &[D], &ramp(20.0, D)));
                v.push(RawVar::f16(&format!("{ffn}/layer_norm/gamma"), &[D], &ramp(21.0, D)));
                v.push(RawVar::f16(&format!("{ffn}/layer_norm/beta"), &[D], &ramp(22.0, D)));
                if side == "decoder" {
                    let ca = format!("{l}/attention");
                    v.push(RawVar::f16(&format!("{ca}/linear_0/weight"), &[D, D], &qkv(&[4.0])));
                    v.push(RawVar::f16(&format!("{ca}/linear_0/bias"), &[D], &ramp(-4.0, D)));
                    v.push(RawVar::f16(
                        &format!("{ca}/linear_1/weight"),
                        &[2 * D, D],
                        &qkv(&[5.0, 6.0]),
                    ));
                    v.push(RawVar::f16(
                        &format!("{ca}/linear_1/bias"),
                        &[2 * D],
                        &qkv_bias(&[0.0, -6.0]),
                    ));
                    v.push(RawVar::f16(
                        &format!("{ca}/linear_2/weight"),
                        &[D, D],
                        &ramp(23.0, D * D),
                    ));
                    v.push(RawVar::f16(&format!("{ca}/linear_2/bias"), &[D], &ramp(24.0, D)));
                    v.push(RawVar::f16(&format!("{ca}/layer_norm/gamma"), &[D], &ramp(25.0, D)));
                    v.push(RawVar::f16(&format!("{ca}/layer_norm/beta"), &[D], &ramp(26.0, D)));
                }
            }
        }
        if let Some(skip) = s.skip {
            v.retain(|x| x.name != skip);
        }
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    fn write_synth(dir: &Path, s: &Synth) {
        let bytes = serialize(
            "WhisperSpec",
            &synth_vars(s),
            &[("decoder/projection/weight", "decoder/embeddings/weight")],
        );
        std::fs::write(dir.join("model.bin"), bytes).unwrap();
        std::fs::write(dir.join("config.json"), r#"{"lang_ids": [50259], "suppress_ids": []}"#)
            .unwrap();
        std::fs::write(dir.join("vocabulary.txt"), vocabulary(s.n_vocab)).unwrap();
    }

    fn import(s: &Synth, q: Quantize) -> (tempfile::TempDir, ImportReport, GgmlModelInfo) {
        let dir = tempfile::tempdir().unwrap();
        write_synth(dir.path(), s);
        let out = dir.path().join("ggml.bin");
        let report = import_ct2(dir.path(), &out, q).unwrap();
        let info = read_ggml_info(&out).unwrap();
        (dir, report, info)
    }

    fn tensor(dir: &tempfile::TempDir, info: &GgmlModelInfo, name: &str) -> Vec<f32> {
        let t = info.tensor(name).unwrap_or_else(|| panic!("no tensor {name}"));
        read_ggml_tensor(&dir.path().join("ggml.bin"), t).unwrap()
    }

    /// The tensor list whisper.cpp's `whisper_model_load` creates, with shapes and types.
    fn expected_tensors(
        layers: usize,
        n_vocab: usize,
        wtype: GgmlType,
    ) -> Vec<(String, Vec<usize>, GgmlType)> {
        use GgmlType::{F16, F32};
        let mut e: Vec<(String, Vec<usize>, GgmlType)> = vec![
            ("encoder.positional_embedding".into(), vec![D, AUDIO_CTX], F32),
            ("encoder.conv1.weight".into(), vec![3, N_MELS, D], F16),
            ("encoder.conv1.bias".into(), vec![1, D], F32),
            ("encoder.conv2.weight".into(), vec![3, D, D], F16),
            ("encoder.conv2.bias".into(), vec![1, D], F32),
        ];
        let attn = |e: &mut Vec<(String, Vec<usize>, GgmlType)>, p: &str| {
            e.push((format!("{p}.query.weight"), vec![D, D], wtype));
            e.push((format!("{p}.query.bias"), vec![D], F32));
            e.push((format!("{p}.key.weight"), vec![D, D], wtype));
            e.push((format!("{p}.value.weight"), vec![D, D], wtype));
            e.push((format!("{p}.value.bias"), vec![D], F32));
            e.push((format!("{p}.out.weight"), vec![D, D], wtype));
            e.push((format!("{p}.out.bias"), vec![D], F32));
            e.push((format!("{p}_ln.weight"), vec![D], F32));
            e.push((format!("{p}_ln.bias"), vec![D], F32));
        };
        let mlp = |e: &mut Vec<(String, Vec<usize>, GgmlType)>, b: &str| {
            e.push((format!("{b}.mlp.0.weight"), vec![D, 4 * D], wtype));
            e.push((format!("{b}.mlp.0.bias"), vec![4 * D], F32));
            e.push((format!("{b}.mlp.2.weight"), vec![4 * D, D], wtype));
            e.push((format!("{b}.mlp.2.bias"), vec![D], F32));
            e.push((format!("{b}.mlp_ln.weight"), vec![D], F32));
            e.push((format!("{b}.mlp_ln.bias"), vec![D], F32));
        };
        for i in 0..layers {
            attn(&mut e, &format!("encoder.blocks.{i}.attn"));
            mlp(&mut e, &format!("encoder.blocks.{i}"));
        }
        e.push(("encoder.ln_post.weight".into(), vec![D], F32));
        e.push(("encoder.ln_post.bias".into(), vec![D], F32));
        e.push(("decoder.positional_embedding".into(), vec![D, TEXT_CTX], F32));
        e.push(("decoder.token_embedding.weight".into(), vec![D, n_vocab], wtype));
        for i in 0..layers {
            attn(&mut e, &format!("decoder.blocks.{i}.attn"));
            attn(&mut e, &format!("decoder.blocks.{i}.cross_attn"));
            mlp(&mut e, &format!("decoder.blocks.{i}"));
        }
        e.push(("decoder.ln.weight".into(), vec![D], F32));
        e.push(("decoder.ln.bias".into(), vec![D], F32));
        e
    }

    #[test]
    fn imports_synthetic_model_with_whisper_cpp_layout() {
        let (_dir, report, info) = import(&Synth::default(), Quantize::F16);
        let h = info.header;
        assert_eq!(
            (h.n_vocab, h.n_audio_ctx, h.n_audio_state, h.n_audio_head, h.n_audio_layer),
            (51865, AUDIO_CTX as i32, D as i32, 1, 2)
        );
        assert_eq!(
            (h.n_text_ctx, h.n_text_state, h.n_text_head, h.n_text_layer, h.n_mels, h.ftype),
            (TEXT_CTX as i32, D as i32, 1, 2, N_MELS as i32, 1)
        );
        assert!(report.multilingual);
        assert_eq!(report.header, h);
        assert_eq!(report.source_dtype, "float16");
        assert_eq!(report.tensors, info.tensors.len());
        assert_eq!(report.bytes_written, info.file_len);

        let got: Vec<_> =
            info.tensors.iter().map(|t| (t.name.clone(), t.ne.clone(), t.ggml_type)).collect();
        assert_eq!(got, expected_tensors(2, 51865, GgmlType::F16));
        // whisper.cpp's count: 10 + 15 per encoder layer + 24 per decoder layer, less
        // the 3 it reserves but never loads.
        assert_eq!(got.len(), 7 + 15 * 2 + 4 + 24 * 2);
        assert!(!info.tensors.iter().any(|t| t.name.contains("key.bias")));

        // Tokens: everything before <|endoftext|>, byte-decoded.
        assert_eq!(report.tokens_written, 50257);
        assert_eq!(info.tokens.len(), 50257);
        assert_eq!(info.tokens[0], b" hello");
        assert_eq!(info.tokens[1], "场".as_bytes());
        assert_eq!(info.tokens[2], b"\n");
        assert_eq!(info.tokens[50256], b"");
        assert_eq!(info.mel_filters, whisper_filters(80));
    }

    #[test]
    fn splits_fused_projections_in_q_k_v_order() {
        let (dir, _, info) = import(&Synth::default(), Quantize::F16);
        for side in ["encoder", "decoder"] {
            for layer in 0..2 {
                let b = format!("{side}.blocks.{layer}");
                assert_eq!(
                    tensor(&dir, &info, &format!("{b}.attn.query.weight")),
                    ramp(1.0, D * D)
                );
                assert_eq!(tensor(&dir, &info, &format!("{b}.attn.key.weight")), ramp(2.0, D * D));
                assert_eq!(
                    tensor(&dir, &info, &format!("{b}.attn.value.weight")),
                    ramp(3.0, D * D)
                );
                assert_eq!(tensor(&dir, &info, &format!("{b}.attn.query.bias")), ramp(-1.0, D));
                assert_eq!(tensor(&dir, &info, &format!("{b}.attn.value.bias")), ramp(-3.0, D));
                assert_eq!(tensor(&dir, &info, &format!("{b}.attn.out.weight")), ramp(13.0, D * D));
                assert_eq!(tensor(&dir, &info, &format!("{b}.attn_ln.weight")), ramp(15.0, D));
                assert_eq!(
                    tensor(&dir, &info, &format!("{b}.mlp.0.weight")),
                    ramp(17.0, 4 * D * D)
                );
                assert_eq!(
                    tensor(&dir, &info, &format!("{b}.mlp.2.weight")),
                    ramp(19.0, 4 * D * D)
                );
                assert_eq!(tensor(&dir, &info, &format!("{b}.mlp_ln.bias")), ramp(22.0, D));
            }
            let b = "decoder.blocks.1.cross_attn";
            assert_eq!(tensor(&dir, &info, &format!("{b}.query.weight")), ramp(4.0, D * D));
            assert_eq!(tensor(&dir, &info, &format!("{b}.query.bias")), ramp(-4.0, D));
            assert_eq!(tensor(&dir, &info, &format!("{b}.key.weight")), ramp(5.0, D * D));
            assert_eq!(tensor(&dir, &info, &format!("{b}.value.weight")), ramp(6.0, D * D));
            assert_eq!(tensor(&dir, &info, &format!("{b}.value.bias")), ramp(-6.0, D));
            assert_eq!(tensor(&dir, &info, &format!("{b}.out.bias")), ramp(24.0, D));
            assert_eq!(tensor(&dir, &info, "decoder.blocks.0.cross_attn_ln.bias"), ramp(26.0, D));
        }
        assert_eq!(tensor(&dir, &info, "encoder.conv1.bias"), ramp(9.0, D));
        assert_eq!(tensor(&dir, &info, "encoder.conv2.weight"), ramp(0.75, D * D * 3));
        assert_eq!(tensor(&dir, &info, "encoder.ln_post.bias"), ramp(12.0, D));
        assert_eq!(tensor(&dir, &info, "decoder.ln.weight"), ramp(7.0, D));
        assert_eq!(tensor(&dir, &info, "decoder.positional_embedding"), ramp(0.25, TEXT_CTX * D));
        assert_eq!(tensor(&dir, &info, "decoder.token_embedding.weight"), ramp(0.0, 51865 * D));
    }

    #[test]
    fn q8_0_quantizes_exactly_the_weight_matrices() {
        let (dir, report, info) = import(&Synth::default(), Quantize::Q8_0);
        assert_eq!(info.header.ftype, 2007);
        assert_eq!(info.header.ftype_name(), "q8_0");
        assert_eq!(report.quantize, Quantize::Q8_0);
        let got: Vec<_> =
            info.tensors.iter().map(|t| (t.name.clone(), t.ne.clone(), t.ggml_type)).collect();
        assert_eq!(got, expected_tensors(2, 51865, GgmlType::Q8_0));
        let f16_size = import(&Synth::default(), Quantize::F16).1.bytes_written;
        assert!(report.bytes_written < f16_size * 6 / 10, "{} vs {f16_size}", report.bytes_written);
        // Values survive within q8_0's error (the ramps span [b, b + 1), so d ≤ (|b|+1)/127).
        for (name, base) in [
            ("decoder.blocks.0.attn.key.weight", 2.0f32),
            ("decoder.blocks.1.cross_attn.value.weight", 6.0),
        ] {
            let got = tensor(&dir, &info, name);
            let want = ramp(base, D * D);
            let step = (base.abs() + 1.0) / 127.0;
            assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() <= step), "{name}");
        }
        // f32 tensors are untouched.
        assert_eq!(tensor(&dir, &info, "decoder.blocks.0.attn.value.bias"), ramp(-3.0, D));
    }

    #[test]
    fn q5_0_quantizes_the_same_matrices_as_q8_0() {
        let (dir, report, info) = import(&Synth::default(), Quantize::Q5_0);
        assert_eq!(info.header.ftype, 2008);
        assert_eq!(info.header.ftype_name(), "q5_0");
        assert_eq!(report.quantize, Quantize::Q5_0);
        let got: Vec<_> =
            info.tensors.iter().map(|t| (t.name.clone(), t.ne.clone(), t.ggml_type)).collect();
        assert_eq!(got, expected_tensors(2, 51865, GgmlType::Q5_0));
        let q8_size = import(&Synth::default(), Quantize::Q8_0).1.bytes_written;
        assert!(report.bytes_written < q8_size * 7 / 10, "{} vs {q8_size}", report.bytes_written);
        // Within one q5_0 step (d = max|x| / 16; the ramps span [b, b + 1)).
        for (name, base) in [
            ("decoder.blocks.0.attn.key.weight", 2.0f32),
            ("decoder.blocks.1.cross_attn.value.weight", 6.0),
        ] {
            let got = tensor(&dir, &info, name);
            let want = ramp(base, D * D);
            let step = (base.abs() + 1.0) / 16.0;
            assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() <= step), "{name}");
        }
        assert_eq!(tensor(&dir, &info, "decoder.blocks.0.attn.value.bias"), ramp(-3.0, D));
    }

    #[test]
    fn dequantizes_int8_weights_and_generates_missing_encoder_positions() {
        let s = Synth { int8_ffn: true, encoder_positions: false, ..Synth::default() };
        let (dir, report, info) = import(&s, Quantize::F16);
        assert_eq!(report.header.n_audio_ctx, 1500);
        let mlp0 = tensor(&dir, &info, "encoder.blocks.1.mlp.0.weight");
        for (j, v) in mlp0.iter().enumerate() {
            let (r, q) = (j / D, ((j % 200) as i32 - 100) as f32);
            let want = q / (100.0 / (r + 1) as f32);
            assert!((v - want).abs() <= want.abs() * 1e-3 + 1e-6, "{j}: {v} vs {want}");
        }
        let pe = tensor(&dir, &info, "encoder.positional_embedding");
        assert_eq!(info.tensor("encoder.positional_embedding").unwrap().ne, vec![D, 1500]);
        let want = whisper_sinusoids(1500, D);
        assert_eq!(pe, want);
        // Row 0: sin(0) = 0 then cos(0) = 1; row 1, channel 0: sin(1).
        assert_eq!((pe[0], pe[D / 2]), (0.0, 1.0));
        assert!((pe[D] - 1f32.sin()).abs() < 1e-6);
    }

    #[test]
    fn english_only_vocabulary_ends_at_50256() {
        let (_, report, info) =
            import(&Synth { n_vocab: 51864, layers: 1, ..Synth::default() }, Quantize::F16);
        assert!(!report.multilingual);
        assert_eq!(info.tokens.len(), 50256);
        assert_eq!(info.header.n_audio_layer, 1);
        assert_eq!(report.tensors, expected_tensors(1, 51864, GgmlType::F16).len());
    }

    #[test]
    fn quantize_parses_and_displays() {
        assert_eq!("f16".parse::<Quantize>().unwrap(), Quantize::F16);
        assert_eq!("Q8_0".parse::<Quantize>().unwrap(), Quantize::Q8_0);
        assert_eq!(Quantize::default(), Quantize::F16);
        assert_eq!(Quantize::Q8_0.to_string(), "q8_0");
        assert_eq!("q5_0".parse::<Quantize>().unwrap(), Quantize::Q5_0);
        assert_eq!(Quantize::Q5_0.to_string(), "q5_0");
        let err = "q4_0".parse::<Quantize>().unwrap_err().to_string();
        assert!(err.contains("f16, q8_0 or q5_0"), "{err}");
    }

    fn import_err(setup: impl FnOnce(&Path)) -> String {
        let dir = tempfile::tempdir().unwrap();
        write_synth(dir.path(), &Synth { layers: 1, ..Synth::default() });
        setup(dir.path());
        let out = dir.path().join("out.bin");
        let e = import_ct2(dir.path(), &out, Quantize::F16).unwrap_err();
        assert!(!out.exists(), "no output may be left behind");
        match e {
            Error::BadCt2Model { path, reason } => format!("{}: {reason}", path.display()),
            other => panic!("expected BadCt2Model, got {other:?}"),
        }
    }

    #[test]
    fn bad_folders_are_named() {
        let msg = import_err(|d| std::fs::remove_dir_all(d).unwrap());
        assert!(msg.contains("does not exist"), "{msg}");
        let msg = import_err(|d| std::fs::remove_file(d.join("model.bin")).unwrap());
        assert!(msg.contains("no model.bin"), "{msg}");
        let msg = import_err(|d| std::fs::remove_file(d.join("config.json")).unwrap());
        assert!(msg.contains("no config.json"), "{msg}");
        let msg = import_err(|d| std::fs::remove_file(d.join("vocabulary.txt")).unwrap());
        assert!(msg.contains("vocabulary.txt"), "{msg}");
        let msg = import_err(|d| std::fs::write(d.join("config.json"), "{not json").unwrap());
        assert!(msg.contains("config.json is not valid JSON"), "{msg}");
        let msg = import_err(|d| std::fs::write(d.join("model.bin"), b"").unwrap());
        assert!(msg.contains("empty"), "{msg}");
        let msg = import_err(|d| {
            std::fs::write(d.join("model.bin"), b"\x67\x67\x6d\x6cxxxxxxxx").unwrap()
        });
        assert!(msg.contains("binary version"), "{msg}");
        let msg = import_err(|d| {
            let bytes = std::fs::read(d.join("model.bin")).unwrap();
            std::fs::write(d.join("model.bin"), &bytes[..bytes.len() / 3]).unwrap();
        });
        assert!(msg.contains("truncated"), "{msg}");
        let msg = import_err(|d| {
            let vars = synth_vars(&Synth { layers: 1, ..Synth::default() });
            std::fs::write(d.join("model.bin"), serialize("TransformerSpec", &vars, &[])).unwrap();
        });
        assert!(msg.contains("TransformerSpec model, not Whisper"), "{msg}");
        let msg = import_err(|d| {
            let vars = synth_vars(&Synth {
                layers: 1,
                skip: Some("decoder/layer_0/attention/linear_1/weight"),
                ..Synth::default()
            });
            std::fs::write(d.join("model.bin"), serialize("WhisperSpec", &vars, &[])).unwrap();
        });
        assert!(msg.contains("decoder/layer_0/attention/linear_1/weight is missing"), "{msg}");
        let msg = import_err(|d| {
            let mut vars = synth_vars(&Synth { layers: 1, ..Synth::default() });
            let v =
                vars.iter_mut().find(|v| v.name == "encoder/layer_0/ffn/linear_1/weight").unwrap();
            v.shape = vec![4 * D, D];
            std::fs::write(d.join("model.bin"), serialize("WhisperSpec", &vars, &[])).unwrap();
        });
        assert!(
            msg.contains(
                "encoder/layer_0/ffn/linear_1/weight has shape [256, 64], expected [64, 256]"
            ),
            "{msg}"
        );
        let msg = import_err(|d| {
            std::fs::write(d.join("vocabulary.txt"), vocabulary(51865).replacen("t3\n", "", 1))
                .unwrap()
        });
        assert!(msg.contains("51864 tokens but the model's embedding has 51865"), "{msg}");
        let msg = import_err(|d| {
            std::fs::write(
                d.join("vocabulary.txt"),
                vocabulary(51865).replace("<|endoftext|>", "t"),
            )
            .unwrap()
        });
        assert!(msg.contains("no <|endoftext|>"), "{msg}");
        let msg = import_err(|d| {
            std::fs::write(d.join("vocabulary.txt"), vocabulary(51865).replace("t5\n", "中\n"))
                .unwrap()
        });
        assert!(msg.contains("token 5"), "{msg}");
    }

    #[test]
    fn a_file_instead_of_a_folder_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("model.bin");
        std::fs::write(&file, b"x").unwrap();
        let e = import_ct2(&file, &dir.path().join("o.bin"), Quantize::F16).unwrap_err();
        assert!(e.to_string().contains("give the folder"), "{e}");
    }

    #[test]
    fn progress_counts_every_tensor() {
        let dir = tempfile::tempdir().unwrap();
        write_synth(dir.path(), &Synth { layers: 1, ..Synth::default() });
        let mut calls = Vec::new();
        let report = import_ct2_with_progress(
            dir.path(),
            &dir.path().join("o.bin"),
            Quantize::F16,
            &mut |d, t| calls.push((d, t)),
        )
        .unwrap();
        assert_eq!(calls.len(), report.tensors);
        assert_eq!(calls.last(), Some(&(report.tensors, report.tensors)));
    }
}
