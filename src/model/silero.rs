//! Silero VAD: converting its safetensors weights into whisper.cpp's ggml VAD model, and
//! checking such a model before whisper.cpp loads it.
//!
//! whisper.cpp runs Silero VAD (v5 and v6 share one architecture: an STFT as a
//! convolution, four convolutions, an LSTM cell and a final convolution) from a file
//! written by its `models/convert-silero-vad-to-ggml.py`, which needs PyTorch. The PyPI
//! package `silero-vad` (6.x) ships the same weights as
//! `silero_vad/data/silero_vad_16k.safetensors`; [`import_silero`] converts those.
//! (5.1.2 on PyPI ships only `.jit` and `.onnx` files.)
//!
//! The file, as `whisper_vad_init_with_params` in whisper.cpp's `src/whisper.cpp` reads
//! it, all little-endian `i32` unless noted:
//!
//! ```text
//! magic 0x67676d6c; type_len; type (UTF-8, "silero-16k"); major, minor, patch
//! n_window (512 samples); n_context (64)
//! n_encoder_layers (4); 4 times: in_channels, out_channels, kernel_size
//! lstm_input_size (128); lstm_hidden_size (128); final_conv_in (128); final_conv_out (1)
//! until the end of the file, tensors:
//!   n_dims, name_len, type (0 f32, 1 f16); ne[n_dims]; name; data
//! ```
//!
//! whisper.cpp reads the header fields without checking them (a wrong layer count or
//! string length crashes it), so [`read_vad_model`] checks a whole file against this
//! layout first.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use half::{bf16, f16};

use super::ggml::GGML_MAGIC;
use crate::{Error, Result};

/// The model type whisper.cpp's converter writes (the 16 kHz Silero model).
pub const SILERO_TYPE: &str = "silero-16k";
/// Samples per VAD chunk (32 ms at 16 kHz): one probability each.
pub const SILERO_WINDOW: usize = 512;
/// Samples of context Silero takes from the previous chunk.
pub const SILERO_CONTEXT: usize = 64;

const ENCODER: [(i32, i32, i32); 4] = [(129, 128, 3), (128, 64, 3), (64, 64, 3), (64, 128, 3)];
const LSTM_SIZE: i32 = 128;
const FINAL_CONV: (i32, i32) = (128, 1);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ty {
    F32,
    F16,
}

impl Ty {
    fn id(self) -> i32 {
        match self {
            Ty::F32 => 0,
            Ty::F16 => 1,
        }
    }

    fn size(self) -> usize {
        match self {
            Ty::F32 => 4,
            Ty::F16 => 2,
        }
    }
}

/// One tensor of the ggml file: its name there, its ggml shape (innermost first) and
/// type, and the names and PyTorch shape it has in the safetensors file.
struct Spec {
    name: &'static str,
    ne: &'static [usize],
    ty: Ty,
    sources: &'static [&'static str],
    torch_shape: &'static [usize],
}

/// The tensors in the order whisper.cpp's converter writes them. Sources: the names in
/// `silero_vad_16k.safetensors` (6.x), then the PyTorch state-dict names the converter
/// uses (a safetensors saved from the JIT model's state dict has those).
const SPECS: [Spec; 15] = [
    Spec {
        name: "_model.encoder.0.reparam_conv.weight",
        ne: &[3, 129, 128],
        ty: Ty::F16,
        sources: &["conv1.weight", "_model.encoder.0.reparam_conv.weight"],
        torch_shape: &[128, 129, 3],
    },
    Spec {
        name: "_model.encoder.0.reparam_conv.bias",
        ne: &[128],
        ty: Ty::F32,
        sources: &["conv1.bias", "_model.encoder.0.reparam_conv.bias"],
        torch_shape: &[128],
    },
    Spec {
        name: "_model.encoder.1.reparam_conv.weight",
        ne: &[3, 128, 64],
        ty: Ty::F16,
        sources: &["conv2.weight", "_model.encoder.1.reparam_conv.weight"],
        torch_shape: &[64, 128, 3],
    },
    Spec {
        name: "_model.encoder.1.reparam_conv.bias",
        ne: &[64],
        ty: Ty::F32,
        sources: &["conv2.bias", "_model.encoder.1.reparam_conv.bias"],
        torch_shape: &[64],
    },
    Spec {
        name: "_model.encoder.2.reparam_conv.weight",
        ne: &[3, 64, 64],
        ty: Ty::F16,
        sources: &["conv3.weight", "_model.encoder.2.reparam_conv.weight"],
        torch_shape: &[64, 64, 3],
    },
    Spec {
        name: "_model.encoder.2.reparam_conv.bias",
        ne: &[64],
        ty: Ty::F32,
        sources: &["conv3.bias", "_model.encoder.2.reparam_conv.bias"],
        torch_shape: &[64],
    },
    Spec {
        name: "_model.encoder.3.reparam_conv.weight",
        ne: &[3, 64, 128],
        ty: Ty::F16,
        sources: &["conv4.weight", "_model.encoder.3.reparam_conv.weight"],
        torch_shape: &[128, 64, 3],
    },
    Spec {
        name: "_model.encoder.3.reparam_conv.bias",
        ne: &[128],
        ty: Ty::F32,
        sources: &["conv4.bias", "_model.encoder.3.reparam_conv.bias"],
        torch_shape: &[128],
    },
    Spec {
        name: "_model.decoder.rnn.weight_ih",
        ne: &[128, 512],
        ty: Ty::F32,
        sources: &["lstm_cell.weight_ih", "_model.decoder.rnn.weight_ih"],
        torch_shape: &[512, 128],
    },
    Spec {
        name: "_model.decoder.rnn.weight_hh",
        ne: &[128, 512],
        ty: Ty::F32,
        sources: &["lstm_cell.weight_hh", "_model.decoder.rnn.weight_hh"],
        torch_shape: &[512, 128],
    },
    Spec {
        name: "_model.decoder.rnn.bias_ih",
        ne: &[512],
        ty: Ty::F32,
        sources: &["lstm_cell.bias_ih", "_model.decoder.rnn.bias_ih"],
        torch_shape: &[512],
    },
    Spec {
        name: "_model.decoder.rnn.bias_hh",
        ne: &[512],
        ty: Ty::F32,
        sources: &["lstm_cell.bias_hh", "_model.decoder.rnn.bias_hh"],
        torch_shape: &[512],
    },
    Spec {
        name: "_model.decoder.decoder.2.weight",
        ne: &[128],
        ty: Ty::F16,
        sources: &["final_conv.weight", "_model.decoder.decoder.2.weight"],
        torch_shape: &[1, 128, 1],
    },
    Spec {
        name: "_model.decoder.decoder.2.bias",
        ne: &[1],
        ty: Ty::F32,
        sources: &["final_conv.bias", "_model.decoder.decoder.2.bias"],
        torch_shape: &[1],
    },
    Spec {
        name: "_model.stft.forward_basis_buffer",
        ne: &[256, 1, 258],
        ty: Ty::F16,
        sources: &["stft_conv.weight", "_model.stft.forward_basis_buffer"],
        torch_shape: &[258, 1, 256],
    },
];

/// The Silero version a converted model records (whisper.cpp only logs it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SileroVersion {
    /// Major version (5 or 6 for the models whisper.cpp runs).
    pub major: i32,
    /// Minor version.
    pub minor: i32,
    /// Patch version.
    pub patch: i32,
}

impl Default for SileroVersion {
    /// 6.0.0: the first release whose PyPI package ships safetensors weights.
    fn default() -> Self {
        Self { major: 6, minor: 0, patch: 0 }
    }
}

impl std::fmt::Display for SileroVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl std::str::FromStr for SileroVersion {
    type Err = String;

    /// `MAJOR.MINOR.PATCH`, such as `6.2.3`.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let parts: Vec<&str> = s.trim().split('.').collect();
        let parse = |p: &str| p.parse::<i32>().ok().filter(|v| (0..=10_000).contains(v));
        match parts.as_slice() {
            [a, b, c] => match (parse(a), parse(b), parse(c)) {
                (Some(major), Some(minor), Some(patch)) => Ok(Self { major, minor, patch }),
                _ => Err(format!("{s:?} is not a version such as 6.2.3")),
            },
            _ => Err(format!("{s:?} is not a version such as 6.2.3")),
        }
    }
}

/// What [`import_silero`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SileroImportReport {
    /// Tensors written (always 15).
    pub tensors: usize,
    /// Size of the ggml file.
    pub bytes_written: u64,
}

/// What [`read_vad_model`] found in a ggml VAD model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VadModelInfo {
    /// Model type, `silero-16k`.
    pub model_type: String,
    /// The Silero version recorded at conversion.
    pub version: SileroVersion,
    /// Samples per chunk (512).
    pub n_window: usize,
    /// Context samples (64).
    pub n_context: usize,
    /// The tensors in file order: name, ggml shape (innermost first), type (0 f32, 1 f16).
    pub tensors: Vec<(String, Vec<usize>, i32)>,
}

fn bad_vad(path: &Path, reason: impl Into<String>) -> Error {
    Error::BadVadModel { path: path.to_path_buf(), reason: reason.into() }
}

fn read_whole(path: &Path, what: &str) -> Result<Vec<u8>> {
    if path.is_dir() {
        return Err(bad_vad(path, format!("is a folder, not {what}")));
    }
    let bytes = fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => bad_vad(path, "the file does not exist"),
        _ => bad_vad(path, format!("cannot read it: {e}")),
    })?;
    if bytes.is_empty() {
        return Err(bad_vad(path, "the file is empty"));
    }
    Ok(bytes)
}

/// A tensor in a safetensors file, as `f32` values.
struct SafeTensor {
    shape: Vec<usize>,
    values: Vec<f32>,
}

/// Reads every tensor of a safetensors file: an 8-byte little-endian header length,
/// a JSON header (`{name: {dtype, shape, data_offsets: [begin, end]}}`), then the data.
fn read_safetensors(path: &Path, bytes: &[u8]) -> Result<HashMap<String, SafeTensor>> {
    let bad = |reason: String| bad_vad(path, format!("not a safetensors file: {reason}"));
    if bytes.starts_with(&GGML_MAGIC.to_le_bytes()) {
        return Err(bad_vad(
            path,
            "this is already a ggml file; give the Silero safetensors file to convert",
        ));
    }
    if bytes.len() < 8 {
        return Err(bad(format!("{} bytes, shorter than its length prefix", bytes.len())));
    }
    let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    let data_start =
        8u64.checked_add(header_len)
            .filter(|&end| end <= bytes.len() as u64 && header_len <= 100 << 20)
            .ok_or_else(|| bad(format!("its header claims {header_len} bytes")))? as usize;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..data_start])
            .map_err(|e| bad(format!("its header is not a JSON object ({e})")))?;
    let data = &bytes[data_start..];
    let mut tensors = HashMap::new();
    for (name, entry) in header {
        if name == "__metadata__" {
            continue;
        }
        let field =
            |key: &str| entry.get(key).ok_or_else(|| bad(format!("tensor {name:?} has no {key}")));
        let dtype = field("dtype")?.as_str().unwrap_or_default().to_string();
        let shape: Option<Vec<usize>> = field("shape")?
            .as_array()
            .and_then(|a| a.iter().map(|v| v.as_u64().map(|v| v as usize)).collect());
        let offsets: Option<Vec<usize>> = field("data_offsets")?
            .as_array()
            .and_then(|a| a.iter().map(|v| v.as_u64().map(|v| v as usize)).collect());
        let (Some(shape), Some([begin, end])) = (shape, offsets.as_deref()) else {
            return Err(bad(format!("tensor {name:?} has a malformed shape or data_offsets")));
        };
        let (begin, end) = (*begin, *end);
        if begin > end || end > data.len() {
            return Err(bad(format!(
                "tensor {name:?} lies at {begin}..{end}, outside the {} data bytes",
                data.len()
            )));
        }
        let raw = &data[begin..end];
        let elements = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        let size = match dtype.as_str() {
            "F32" => 4,
            "F16" | "BF16" => 2,
            other => {
                return Err(bad_vad(
                    path,
                    format!("tensor {name:?} is {other}; only F32, F16 and BF16 weights are read"),
                ))
            }
        };
        if elements.and_then(|n| n.checked_mul(size)) != Some(raw.len()) {
            return Err(bad(format!(
                "tensor {name:?} has shape {shape:?} but {} bytes of {dtype}",
                raw.len()
            )));
        }
        let values = match dtype.as_str() {
            "F32" => raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                .collect(),
            "F16" => {
                raw.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect()
            }
            _ => raw.chunks_exact(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        };
        tensors.insert(name, SafeTensor { shape, values });
    }
    Ok(tensors)
}

/// Converts Silero VAD's `silero_vad_16k.safetensors` into the ggml VAD model whisper.cpp
/// loads (see the [module docs](self)), recording `version` in its header.
///
/// Fails with [`Error::BadVadModel`] (naming the input) when the file is missing, not
/// safetensors, or lacks a tensor or has one of another shape than Silero v5/v6's, and
/// with [`Error::Io`] when the output cannot be written.
pub fn import_silero(
    safetensors: &Path,
    out: &Path,
    version: SileroVersion,
) -> Result<SileroImportReport> {
    let bytes = read_whole(safetensors, "a safetensors file")?;
    let model = convert_silero(safetensors, &bytes, version)?;
    fs::write(out, &model).map_err(|source| Error::Io { path: out.to_path_buf(), source })?;
    Ok(SileroImportReport { tensors: SPECS.len(), bytes_written: model.len() as u64 })
}

/// [`import_silero`] in memory: the safetensors bytes in, the ggml model bytes out.
/// `path` only names the input in errors.
pub fn convert_silero(path: &Path, safetensors: &[u8], version: SileroVersion) -> Result<Vec<u8>> {
    let tensors = read_safetensors(path, safetensors)?;
    let mut out = Vec::with_capacity(safetensors.len());
    let mut put = |v: i32| out.extend_from_slice(&v.to_le_bytes());
    put(GGML_MAGIC as i32);
    put(SILERO_TYPE.len() as i32);
    out.extend_from_slice(SILERO_TYPE.as_bytes());
    let mut put = |v: i32| out.extend_from_slice(&v.to_le_bytes());
    for v in [version.major, version.minor, version.patch] {
        put(v);
    }
    put(SILERO_WINDOW as i32);
    put(SILERO_CONTEXT as i32);
    put(ENCODER.len() as i32);
    for (i, o, k) in ENCODER {
        put(i);
        put(o);
        put(k);
    }
    for v in [LSTM_SIZE, LSTM_SIZE, FINAL_CONV.0, FINAL_CONV.1] {
        put(v);
    }

    for spec in &SPECS {
        let Some(tensor) = spec.sources.iter().find_map(|s| tensors.get(*s)) else {
            return Err(bad_vad(
                path,
                format!(
                    "no tensor {:?}: not Silero VAD v5/v6 16 kHz weights (has: {})",
                    spec.sources[0],
                    tensor_names(&tensors)
                ),
            ));
        };
        if tensor.shape != spec.torch_shape {
            return Err(bad_vad(
                path,
                format!(
                    "tensor {:?} has shape {:?}, Silero v5/v6 has {:?}",
                    spec.sources[0], tensor.shape, spec.torch_shape
                ),
            ));
        }
        for v in [spec.ne.len() as i32, spec.name.len() as i32, spec.ty.id()] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for &d in spec.ne {
            out.extend_from_slice(&(d as i32).to_le_bytes());
        }
        out.extend_from_slice(spec.name.as_bytes());
        // PyTorch's row-major [out, in, k] is ggml's ne = [k, in, out]: the same bytes.
        match spec.ty {
            Ty::F32 => tensor.values.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
            Ty::F16 => tensor
                .values
                .iter()
                .for_each(|v| out.extend_from_slice(&f16::from_f32(*v).to_le_bytes())),
        }
    }
    Ok(out)
}

fn tensor_names(tensors: &HashMap<String, SafeTensor>) -> String {
    let mut names: Vec<&str> = tensors.keys().map(String::as_str).collect();
    names.sort_unstable();
    names.truncate(8);
    names.join(", ")
}

/// Reads a ggml VAD model and checks all of it (header, every tensor's name, shape, type
/// and size) against the Silero layout whisper.cpp expects, so whisper.cpp is never
/// handed a file it would crash on.
///
/// Fails with [`Error::BadVadModel`] saying what is wrong: missing, a Whisper model
/// rather than a VAD model, another VAD type, truncated, or a wrong tensor.
pub fn read_vad_model(path: &Path) -> Result<VadModelInfo> {
    let bytes = read_whole(path, "a ggml VAD model")?;
    parse_vad_model(&bytes).map_err(|reason| bad_vad(path, reason))
}

/// Reads little-endian fields from a byte slice, naming what was cut short.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> std::result::Result<&'a [u8], String> {
        let b = self
            .bytes
            .get(self.at..self.at.saturating_add(n))
            .ok_or_else(|| format!("truncated: the file ends in {what}"))?;
        self.at += n;
        Ok(b)
    }

    fn i32(&mut self, what: &str) -> std::result::Result<i32, String> {
        Ok(i32::from_le_bytes(self.take(4, what)?.try_into().expect("4 bytes")))
    }

    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }
}

fn parse_vad_model(bytes: &[u8]) -> std::result::Result<VadModelInfo, String> {
    let mut c = Cursor { bytes, at: 0 };
    if c.i32("its magic")? as u32 != GGML_MAGIC {
        return Err("not a ggml file (wrong magic); convert Silero's safetensors with \
                    `cantocap model import-vad`"
            .into());
    }
    let type_len = c.i32("its model type")?;
    if !(1..=64).contains(&type_len) {
        return Err(format!(
            "not a VAD model (a {type_len}-byte model type; is it a Whisper model?)"
        ));
    }
    let model_type = String::from_utf8_lossy(c.take(type_len as usize, "its model type")?);
    if model_type != SILERO_TYPE {
        return Err(format!(
            "model type {model_type:?}; whisper.cpp runs only {SILERO_TYPE:?} VAD models"
        ));
    }
    let model_type = model_type.into_owned();
    let version = SileroVersion {
        major: c.i32("its version")?,
        minor: c.i32("its version")?,
        patch: c.i32("its version")?,
    };
    let (n_window, n_context) = (c.i32("its window size")?, c.i32("its context size")?);
    if n_window != SILERO_WINDOW as i32 || n_context != SILERO_CONTEXT as i32 {
        return Err(format!(
            "window {n_window} and context {n_context} samples; Silero 16 kHz has \
             {SILERO_WINDOW} and {SILERO_CONTEXT}"
        ));
    }
    let layers = c.i32("its encoder layer count")?;
    if layers != ENCODER.len() as i32 {
        return Err(format!("{layers} encoder layers; Silero has {}", ENCODER.len()));
    }
    for (n, expected) in ENCODER.iter().enumerate() {
        let got = (c.i32("encoder sizes")?, c.i32("encoder sizes")?, c.i32("encoder sizes")?);
        if got != *expected {
            return Err(format!("encoder layer {n} is {got:?}, Silero's is {expected:?}"));
        }
    }
    let mut tail = [0; 4];
    for v in &mut tail {
        *v = c.i32("its LSTM and final sizes")?;
    }
    if tail != [LSTM_SIZE, LSTM_SIZE, FINAL_CONV.0, FINAL_CONV.1] {
        return Err(format!("LSTM and final sizes {tail:?}; Silero's are [128, 128, 128, 1]"));
    }

    let mut tensors: Vec<(String, Vec<usize>, i32)> = Vec::new();
    while !c.done() {
        let n_dims = c.i32("a tensor header")?;
        let name_len = c.i32("a tensor header")?;
        let ty = c.i32("a tensor header")?;
        if !(0..=4).contains(&n_dims) || !(1..=256).contains(&name_len) {
            return Err(format!("a damaged tensor header after {} tensors", tensors.len()));
        }
        let mut ne = Vec::new();
        for _ in 0..n_dims {
            ne.push(c.i32("a tensor shape")?.max(0) as usize);
        }
        let name =
            String::from_utf8_lossy(c.take(name_len as usize, "a tensor name")?).into_owned();
        let Some(spec) = SPECS.iter().find(|s| s.name == name) else {
            return Err(format!("unknown tensor {name:?}"));
        };
        if tensors.iter().any(|(n, _, _)| *n == name) {
            return Err(format!("tensor {name:?} appears twice"));
        }
        // whisper.cpp compares three dimensions, missing ones counting as 1.
        let padded = |s: &[usize]| [0, 1, 2].map(|i| s.get(i).copied().unwrap_or(1));
        if ne.len() > 3 || padded(&ne) != padded(spec.ne) {
            return Err(format!(
                "tensor {name:?} has shape {ne:?}; whisper.cpp expects {:?}",
                spec.ne
            ));
        }
        if ty != spec.ty.id() {
            return Err(format!(
                "tensor {name:?} has type {ty}; whisper.cpp expects {}",
                spec.ty.id()
            ));
        }
        c.take(spec.ne.iter().product::<usize>() * spec.ty.size(), &format!("tensor {name:?}"))?;
        tensors.push((name, ne, ty));
    }
    if tensors.len() != SPECS.len() {
        let missing: Vec<&str> = SPECS
            .iter()
            .map(|s| s.name)
            .filter(|n| !tensors.iter().any(|(t, _, _)| t == n))
            .collect();
        return Err(format!("truncated or incomplete: no {}", missing.join(", ")));
    }
    Ok(VadModelInfo {
        model_type,
        version,
        n_window: SILERO_WINDOW,
        n_context: SILERO_CONTEXT,
        tensors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real weights, fetched by models/fetch-test-model.sh.
    fn real_safetensors() -> (std::path::PathBuf, Vec<u8>) {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("models/silero/silero_vad_16k.safetensors");
        let bytes = fs::read(&path).unwrap_or_else(|e| {
            panic!("{}: {e}; run models/fetch-test-model.sh to fetch it", path.display())
        });
        (path, bytes)
    }

    fn f32_at(bytes: &[u8], at: usize) -> f32 {
        f32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn the_real_weights_convert_to_whisper_cpps_layout() {
        let (path, bytes) = real_safetensors();
        let version = SileroVersion { major: 6, minor: 2, patch: 3 };
        let model = convert_silero(&path, &bytes, version).unwrap();

        // The header, field by field.
        assert_eq!(model[..4], GGML_MAGIC.to_le_bytes());
        assert_eq!(model[4..8], 10i32.to_le_bytes());
        assert_eq!(&model[8..18], b"silero-16k");
        let header: Vec<i32> = model[18..18 + 4 * 21]
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(
            header,
            [6, 2, 3, 512, 64, 4, 129, 128, 3, 128, 64, 3, 64, 64, 3, 64, 128, 3, 128, 128, 128]
        );
        assert_eq!(i32::from_le_bytes(model[102..106].try_into().unwrap()), 1);

        // Every tensor, in the converter's order, with whisper.cpp's shapes and types.
        let info = parse_vad_model(&model).unwrap();
        assert_eq!(info.version, version);
        let layout: Vec<(&str, &[usize], i32)> =
            info.tensors.iter().map(|(n, ne, t)| (n.as_str(), ne.as_slice(), *t)).collect();
        assert_eq!(
            layout,
            [
                ("_model.encoder.0.reparam_conv.weight", &[3, 129, 128][..], 1),
                ("_model.encoder.0.reparam_conv.bias", &[128][..], 0),
                ("_model.encoder.1.reparam_conv.weight", &[3, 128, 64][..], 1),
                ("_model.encoder.1.reparam_conv.bias", &[64][..], 0),
                ("_model.encoder.2.reparam_conv.weight", &[3, 64, 64][..], 1),
                ("_model.encoder.2.reparam_conv.bias", &[64][..], 0),
                ("_model.encoder.3.reparam_conv.weight", &[3, 64, 128][..], 1),
                ("_model.encoder.3.reparam_conv.bias", &[128][..], 0),
                ("_model.decoder.rnn.weight_ih", &[128, 512][..], 0),
                ("_model.decoder.rnn.weight_hh", &[128, 512][..], 0),
                ("_model.decoder.rnn.bias_ih", &[512][..], 0),
                ("_model.decoder.rnn.bias_hh", &[512][..], 0),
                ("_model.decoder.decoder.2.weight", &[128][..], 1),
                ("_model.decoder.decoder.2.bias", &[1][..], 0),
                ("_model.stft.forward_basis_buffer", &[256, 1, 258][..], 1),
            ]
        );
        // 15 tensor records: 885,102 bytes, as whisper.cpp's own v5.1.2 file plus the
        // one dimension written for the final bias.
        let values: usize =
            SPECS.iter().map(|s| s.ne.iter().product::<usize>() * s.ty.size()).sum();
        let records: usize = SPECS.iter().map(|s| 12 + 4 * s.ne.len() + s.name.len()).sum();
        assert_eq!(model.len(), 106 + records + values);
    }

    #[test]
    fn the_weights_keep_their_values_and_order() {
        let (path, bytes) = real_safetensors();
        let tensors = read_safetensors(&path, &bytes).unwrap();
        let model = convert_silero(&path, &bytes, SileroVersion::default()).unwrap();
        let data_of = |name: &str| {
            let key = name.as_bytes();
            let at = model.windows(key.len()).position(|w| w == key).unwrap() + key.len();
            &model[at..]
        };
        // f32 tensors are copied exactly, in PyTorch's row-major order.
        let ih = &tensors["lstm_cell.weight_ih"].values;
        let data = data_of("_model.decoder.rnn.weight_ih");
        for i in [0, 1, 127, 128, 65_535] {
            assert_eq!(f32_at(data, i * 4), ih[i], "weight_ih[{i}]");
        }
        // f16 tensors round to the nearest half.
        let stft = &tensors["stft_conv.weight"].values;
        let data = data_of("_model.stft.forward_basis_buffer");
        for i in [0, 1, 255, 256, 66_047] {
            let got = f16::from_le_bytes([data[i * 2], data[i * 2 + 1]]).to_f32();
            assert_eq!(got, f16::from_f32(stft[i]).to_f32(), "stft[{i}]");
        }
        let bias = tensors["final_conv.bias"].values[0];
        assert_eq!(f32_at(data_of("_model.decoder.decoder.2.bias"), 0), bias);
        assert!(stft.iter().any(|v| *v != 0.0) && ih.iter().any(|v| *v != 0.0));
    }

    #[test]
    fn a_missing_or_misshapen_tensor_is_named() {
        let (path, bytes) = real_safetensors();
        // Edit the JSON header in place (same length, so the offsets stay valid).
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header = String::from_utf8(bytes[8..8 + header_len].to_vec()).unwrap();
        let mut edited = bytes.clone();
        let renamed = header.replacen("\"conv3.bias\"", "\"conv9.bias\"", 1);
        assert_ne!(renamed, header);
        edited[8..8 + header_len].copy_from_slice(renamed.as_bytes());
        let err = convert_silero(&path, &edited, SileroVersion::default()).unwrap_err();
        assert!(err.to_string().contains("no tensor \"conv3.bias\""), "{err}");

        let mut edited = bytes.clone();
        let misshapen = header.replacen("[64,64,3]", "[64,32,6]", 1);
        assert_ne!(misshapen, header);
        edited[8..8 + header_len].copy_from_slice(misshapen.as_bytes());
        let err = convert_silero(&path, &edited, SileroVersion::default()).unwrap_err();
        assert!(err.to_string().contains("has shape [64, 32, 6]"), "{err}");
    }

    #[test]
    fn a_truncated_or_edited_model_is_refused() {
        let (path, bytes) = real_safetensors();
        let model = convert_silero(&path, &bytes, SileroVersion::default()).unwrap();
        for cut in [3, 20, 110, model.len() / 2, model.len() - 1] {
            let err = parse_vad_model(&model[..cut]).unwrap_err();
            assert!(err.contains("truncated"), "cut at {cut}: {err}");
        }
        let mut edited = model.clone();
        edited[38] = 5; // 5 encoder layers
        assert!(parse_vad_model(&edited).unwrap_err().contains("5 encoder layers"));
        let mut doubled = model.clone();
        doubled.extend_from_slice(&model[106..]);
        assert!(parse_vad_model(&doubled).unwrap_err().contains("appears twice"));
    }

    #[test]
    fn versions_parse_and_print() {
        let v: SileroVersion = "6.2.3".parse().unwrap();
        assert_eq!(v, SileroVersion { major: 6, minor: 2, patch: 3 });
        assert_eq!(v.to_string(), "6.2.3");
        assert!("6.2".parse::<SileroVersion>().is_err());
        assert!("6.x.1".parse::<SileroVersion>().is_err());
    }

    #[test]
    fn the_specs_agree_with_themselves() {
        for s in &SPECS {
            let torch: usize = s.torch_shape.iter().product();
            let ggml: usize = s.ne.iter().product();
            assert_eq!(torch, ggml, "{}", s.name);
        }
    }

    #[test]
    fn garbage_is_not_safetensors() {
        let p = Path::new("x.safetensors");
        for bytes in [&b"abc"[..], &[255u8; 16][..], &b"\x02\0\0\0\0\0\0\0[]"[..]] {
            let err = convert_silero(p, bytes, SileroVersion::default()).unwrap_err();
            assert!(matches!(err, Error::BadVadModel { .. }), "{err}");
        }
    }

    #[test]
    fn garbage_is_not_a_vad_model() {
        assert!(parse_vad_model(b"").unwrap_err().contains("truncated"));
        assert!(parse_vad_model(b"GGUF....").unwrap_err().contains("wrong magic"));
        // A Whisper model's header: magic then n_vocab (51865).
        let mut whisper = GGML_MAGIC.to_le_bytes().to_vec();
        whisper.extend_from_slice(&51_865i32.to_le_bytes());
        assert!(parse_vad_model(&whisper).unwrap_err().contains("not a VAD model"));
    }
}
