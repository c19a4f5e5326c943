//! whisper.cpp's ggml model format: writing it, and reading headers and tensor lists back.
//!
//! The layout, as `whisper_model_load` in whisper.cpp's `src/whisper.cpp` reads it and
//! `models/convert-pt-to-ggml.py` writes it, all little-endian with no padding:
//!
//! ```text
//! u32 magic 0x67676d6c ("ggml")
//! i32 n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer,
//!     n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype
//! i32 n_mel, n_fft; f32 filters[n_mel * n_fft]          (the mel filterbank)
//! i32 n_tokens; n_tokens times: u32 len, len bytes     (text tokens, raw bytes)
//! until the end of the file, tensors:
//!   i32 n_dims, name_len, type; i32 ne[n_dims]; name; data
//! ```
//!
//! `ne` lists dimensions innermost first (a PyTorch `[out, in]` matrix is `ne = [in, out]`).
//! `ftype` is a `GGML_FTYPE_*` value plus 1000 × the quantization version for quantized
//! files (`2007` for q8_0, `2008` for q5_0, as whisper.cpp's `quantize` tool writes).
//! whisper.cpp checks each
//! tensor's name, shape and type against the ones it derives from the header.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use half::{bf16, f16};

use super::mel::MelFilters;
use crate::{Error, Result};

/// The magic number that starts every ggml Whisper model ("ggml" as a little-endian u32).
pub const GGML_MAGIC: u32 = 0x6767_6d6c;
/// ggml's quantization format version (`GGML_QNT_VERSION`).
pub const QNT_VERSION: i32 = 2;
/// Multiplier of the quantization version in `ftype` (`GGML_QNT_VERSION_FACTOR`).
pub const QNT_VERSION_FACTOR: i32 = 1000;
/// `GGML_FTYPE_ALL_F32`.
pub const FTYPE_ALL_F32: i32 = 0;
/// `GGML_FTYPE_MOSTLY_F16`.
pub const FTYPE_MOSTLY_F16: i32 = 1;
/// `GGML_FTYPE_MOSTLY_Q8_0`.
pub const FTYPE_MOSTLY_Q8_0: i32 = 7;
/// `GGML_FTYPE_MOSTLY_Q5_0`.
pub const FTYPE_MOSTLY_Q5_0: i32 = 8;
/// Values per q8_0 block (`QK8_0`).
pub const QK8_0: usize = 32;
/// Bytes per q8_0 block: an f16 scale and 32 signed bytes.
pub const Q8_0_BLOCK_BYTES: usize = 2 + QK8_0;
/// Values per q5_0 block (`QK5_0`).
pub const QK5_0: usize = 32;
/// Bytes per q5_0 block: an f16 scale, a u32 of fifth bits and 16 bytes of low nibbles.
pub const Q5_0_BLOCK_BYTES: usize = 2 + 4 + QK5_0 / 2;

/// Size of the header, magic included.
const HEADER_BYTES: usize = 48;
/// GGUF files (llama.cpp's newer container) start with "GGUF".
const GGUF_MAGIC: u32 = 0x4655_4747;

/// A ggml tensor element type (`enum ggml_type`), for the types Whisper models use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// 16-bit float.
    F16,
    /// 4-bit, blocks of 32 with an f16 scale.
    Q4_0,
    /// 4-bit, blocks of 32 with f16 scale and minimum.
    Q4_1,
    /// 5-bit, blocks of 32 with an f16 scale.
    Q5_0,
    /// 5-bit, blocks of 32 with f16 scale and minimum.
    Q5_1,
    /// 8-bit, blocks of 32 with an f16 scale.
    Q8_0,
    /// 2-bit k-quant, super-blocks of 256.
    Q2_K,
    /// 3-bit k-quant, super-blocks of 256.
    Q3_K,
    /// 4-bit k-quant, super-blocks of 256.
    Q4_K,
    /// 5-bit k-quant, super-blocks of 256.
    Q5_K,
    /// 6-bit k-quant, super-blocks of 256.
    Q6_K,
    /// bfloat16.
    BF16,
}

impl GgmlType {
    /// The type with ggml's numeric id, if it is one of these.
    pub fn from_id(id: i32) -> Option<Self> {
        Some(match id {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            6 => Self::Q5_0,
            7 => Self::Q5_1,
            8 => Self::Q8_0,
            10 => Self::Q2_K,
            11 => Self::Q3_K,
            12 => Self::Q4_K,
            13 => Self::Q5_K,
            14 => Self::Q6_K,
            30 => Self::BF16,
            _ => return None,
        })
    }

    /// ggml's numeric id of the type.
    pub fn id(self) -> i32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q4_0 => 2,
            Self::Q4_1 => 3,
            Self::Q5_0 => 6,
            Self::Q5_1 => 7,
            Self::Q8_0 => 8,
            Self::Q2_K => 10,
            Self::Q3_K => 11,
            Self::Q4_K => 12,
            Self::Q5_K => 13,
            Self::Q6_K => 14,
            Self::BF16 => 30,
        }
    }

    /// ggml's name for the type, such as `q8_0`.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Q4_0 => "q4_0",
            Self::Q4_1 => "q4_1",
            Self::Q5_0 => "q5_0",
            Self::Q5_1 => "q5_1",
            Self::Q8_0 => "q8_0",
            Self::Q2_K => "q2_K",
            Self::Q3_K => "q3_K",
            Self::Q4_K => "q4_K",
            Self::Q5_K => "q5_K",
            Self::Q6_K => "q6_K",
            Self::BF16 => "bf16",
        }
    }

    /// (values per block, bytes per block), as `ggml_blck_size` / `ggml_type_size`.
    pub fn block(self) -> (usize, usize) {
        match self {
            Self::F32 => (1, 4),
            Self::F16 | Self::BF16 => (1, 2),
            Self::Q4_0 => (32, 18),
            Self::Q4_1 => (32, 20),
            Self::Q5_0 => (QK5_0, Q5_0_BLOCK_BYTES),
            Self::Q5_1 => (32, 24),
            Self::Q8_0 => (QK8_0, Q8_0_BLOCK_BYTES),
            Self::Q2_K => (256, 84),
            Self::Q3_K => (256, 110),
            Self::Q4_K => (256, 144),
            Self::Q5_K => (256, 176),
            Self::Q6_K => (256, 210),
        }
    }

    /// Bytes taken by `n` values, or `None` if `n` is not a whole number of blocks.
    pub fn bytes_for(self, n: usize) -> Option<u64> {
        let (per_block, block_bytes) = self.block();
        n.is_multiple_of(per_block).then(|| (n / per_block) as u64 * block_bytes as u64)
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The name of a `GGML_FTYPE_*` value (without the quantization version), if whisper.cpp
/// accepts it. whisper.cpp aborts the process on any other value, so check first.
pub fn ftype_name(ftype: i32) -> Option<&'static str> {
    Some(match ftype {
        0 => "f32",
        1 => "f16",
        2 => "q4_0",
        3 => "q4_1",
        7 => "q8_0",
        8 => "q5_0",
        9 => "q5_1",
        10 => "q2_K",
        11 => "q3_K",
        12 => "q4_K",
        13 => "q5_K",
        14 => "q6_K",
        15 => "iq2_xxs",
        16 => "iq2_xs",
        17 => "iq3_xxs",
        18 => "iq1_s",
        19 => "iq4_nl",
        20 => "iq3_s",
        21 => "iq2_s",
        22 => "iq4_xs",
        23 => "iq1_m",
        24 => "bf16",
        25 => "mxfp4",
        _ => return None,
    })
}

/// The hyperparameters at the start of a ggml Whisper model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GgmlHeader {
    /// Vocabulary size, special tokens included (51864 English-only, 51865 multilingual,
    /// 51866 for the large-v3 family).
    pub n_vocab: i32,
    /// Encoder positions (1500: 30 s of audio).
    pub n_audio_ctx: i32,
    /// Encoder width.
    pub n_audio_state: i32,
    /// Encoder attention heads.
    pub n_audio_head: i32,
    /// Encoder layers (4 tiny, 6 base, 12 small, 24 medium, 32 large).
    pub n_audio_layer: i32,
    /// Decoder positions (448 tokens).
    pub n_text_ctx: i32,
    /// Decoder width (equal to the encoder's).
    pub n_text_state: i32,
    /// Decoder attention heads.
    pub n_text_head: i32,
    /// Decoder layers.
    pub n_text_layer: i32,
    /// Mel bands of the input (80, or 128 for large-v3).
    pub n_mels: i32,
    /// Weight type as stored: a `GGML_FTYPE_*` value plus 1000 × the quantization version
    /// for quantized files (1 for f16, 2007 for q8_0, 2008 for q5_0). See [`GgmlHeader::ftype_name`].
    pub ftype: i32,
}

impl GgmlHeader {
    /// Whether the model is multilingual (knows language tokens): `n_vocab >= 51865`.
    pub fn is_multilingual(&self) -> bool {
        self.n_vocab >= 51865
    }

    /// Whether the model has the `yue` (Cantonese) language token: the large-v3 family,
    /// `n_vocab >= 51866`.
    pub fn has_yue(&self) -> bool {
        self.n_vocab >= 51866
    }

    /// The Whisper size by encoder depth: tiny, base, small, medium, large, or unknown.
    pub fn size_name(&self) -> &'static str {
        match self.n_audio_layer {
            4 => "tiny",
            6 => "base",
            12 => "small",
            24 => "medium",
            32 => "large",
            _ => "unknown",
        }
    }

    /// The weight type's name (`f16`, `q8_0`, ...), ignoring the quantization version.
    pub fn ftype_name(&self) -> &'static str {
        ftype_name(self.ftype % QNT_VERSION_FACTOR).unwrap_or("unknown")
    }

    /// The header as stored, magic included.
    pub fn to_bytes(&self) -> [u8; HEADER_BYTES] {
        let mut out = [0u8; HEADER_BYTES];
        let fields = [
            GGML_MAGIC as i32,
            self.n_vocab,
            self.n_audio_ctx,
            self.n_audio_state,
            self.n_audio_head,
            self.n_audio_layer,
            self.n_text_ctx,
            self.n_text_state,
            self.n_text_head,
            self.n_text_layer,
            self.n_mels,
            self.ftype,
        ];
        for (chunk, v) in out.chunks_exact_mut(4).zip(fields) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Parses and checks a stored header; the error says what is wrong.
    fn parse(bytes: &[u8; HEADER_BYTES]) -> std::result::Result<Self, String> {
        let field = |i: usize| i32::from_le_bytes(bytes[i * 4..i * 4 + 4].try_into().unwrap());
        let magic = field(0) as u32;
        if magic != GGML_MAGIC {
            let hint = if magic == GGUF_MAGIC {
                " (this is a GGUF file; whisper.cpp needs the older ggml format)"
            } else if &bytes[..2] == b"PK" {
                " (this looks like a zip archive, such as a PyTorch checkpoint; import or convert it first)"
            } else {
                ""
            };
            return Err(format!(
                "not a ggml Whisper model: magic 0x{magic:08x}, expected 0x{GGML_MAGIC:08x} (\"ggml\"){hint}"
            ));
        }
        let h = Self {
            n_vocab: field(1),
            n_audio_ctx: field(2),
            n_audio_state: field(3),
            n_audio_head: field(4),
            n_audio_layer: field(5),
            n_text_ctx: field(6),
            n_text_state: field(7),
            n_text_head: field(8),
            n_text_layer: field(9),
            n_mels: field(10),
            ftype: field(11),
        };
        h.check()?;
        Ok(h)
    }

    /// Checks that every field is plausible for a Whisper model.
    fn check(&self) -> std::result::Result<(), String> {
        let ranges = [
            ("n_vocab", self.n_vocab, 1, 1 << 20),
            ("n_audio_ctx", self.n_audio_ctx, 1, 1 << 16),
            ("n_audio_state", self.n_audio_state, 1, 1 << 16),
            ("n_audio_head", self.n_audio_head, 1, 1 << 10),
            ("n_audio_layer", self.n_audio_layer, 1, 1 << 10),
            ("n_text_ctx", self.n_text_ctx, 1, 1 << 16),
            ("n_text_state", self.n_text_state, 1, 1 << 16),
            ("n_text_head", self.n_text_head, 1, 1 << 10),
            ("n_text_layer", self.n_text_layer, 1, 1 << 10),
            ("n_mels", self.n_mels, 1, 1 << 10),
        ];
        for (name, value, lo, hi) in ranges {
            if !(lo..=hi).contains(&value) {
                return Err(format!("implausible header: {name} = {value}"));
            }
        }
        if self.n_audio_state % self.n_audio_head != 0 || self.n_text_state % self.n_text_head != 0
        {
            return Err(format!(
                "implausible header: widths {} / {} are not divisible by head counts {} / {}",
                self.n_audio_state, self.n_text_state, self.n_audio_head, self.n_text_head
            ));
        }
        if self.n_audio_state != self.n_text_state {
            return Err(format!(
                "implausible header: encoder width {} differs from decoder width {}",
                self.n_audio_state, self.n_text_state
            ));
        }
        let base = self.ftype.rem_euclid(QNT_VERSION_FACTOR);
        if self.ftype < 0 || ftype_name(base).is_none() {
            return Err(format!("unknown weight type (ftype {})", self.ftype));
        }
        Ok(())
    }
}

/// Reads and checks the header of the ggml Whisper model at `path`.
///
/// Fails with [`Error::BadModel`] saying what is wrong when the file is missing, empty,
/// shorter than a header, not ggml (wrong magic; GGUF and zip files are named), or holds
/// implausible dimensions or an ftype whisper.cpp would abort on.
pub fn read_ggml_header(path: &Path) -> Result<GgmlHeader> {
    let mut file = open_model(path)?;
    read_header_from(&mut file, path)
}

fn bad_model(path: &Path, reason: impl Into<String>) -> Error {
    Error::BadModel { path: path.to_path_buf(), reason: reason.into() }
}

fn open_model(path: &Path) -> Result<File> {
    if path.is_dir() {
        return Err(bad_model(path, "is a folder, not a ggml model file"));
    }
    File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => bad_model(path, "the file does not exist"),
        _ => bad_model(path, format!("cannot open it: {e}")),
    })
}

fn read_header_from(r: &mut impl Read, path: &Path) -> Result<GgmlHeader> {
    let mut bytes = [0u8; HEADER_BYTES];
    let n =
        read_up_to(r, &mut bytes).map_err(|e| bad_model(path, format!("cannot read it: {e}")))?;
    if n == 0 {
        return Err(bad_model(path, "the file is empty"));
    }
    if n >= 4 && u32::from_le_bytes(bytes[..4].try_into().unwrap()) != GGML_MAGIC {
        // Report a wrong magic before complaining about length.
        let mut padded = bytes;
        padded[n..].fill(0);
        return GgmlHeader::parse(&padded).map_err(|reason| bad_model(path, reason));
    }
    if n < HEADER_BYTES {
        return Err(bad_model(
            path,
            format!("truncated: {n} bytes, shorter than the {HEADER_BYTES}-byte ggml header"),
        ));
    }
    GgmlHeader::parse(&bytes).map_err(|reason| bad_model(path, reason))
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Quantizes `values` (a whole number of 32-value blocks) to q8_0, appending to `out`.
///
/// Exactly ggml's `quantize_row_q8_0_ref`: per block `d = max|x| / 127` stored as f16,
/// `q = round(x / d)` with `d` still in f32.
pub fn quantize_q8_0(values: &[f32], out: &mut Vec<u8>) {
    assert!(values.len().is_multiple_of(QK8_0), "q8_0 needs whole blocks of 32");
    out.reserve(values.len() / QK8_0 * Q8_0_BLOCK_BYTES);
    for block in values.chunks_exact(QK8_0) {
        let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend(f16::from_f32(d).to_le_bytes());
        out.extend(block.iter().map(|v| (v * id).round() as i8 as u8));
    }
}

/// Expands q8_0 blocks back to floats, appending to `out`.
pub fn dequantize_q8_0(bytes: &[u8], out: &mut Vec<f32>) {
    for block in bytes.chunks_exact(Q8_0_BLOCK_BYTES) {
        let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
        out.extend(block[2..].iter().map(|&q| f32::from(q as i8) * d));
    }
}

/// Quantizes `values` (a whole number of 32-value blocks) to q5_0, appending to `out`.
///
/// Exactly ggml's `quantize_row_q5_0_ref`: per block `d = -m / 16`, where `m` is the
/// value of largest magnitude (the first one, on ties), stored as f16; each value
/// becomes the 5-bit code `min(31, trunc(x / d + 16.5))`, with `d` still in f32. Value
/// `j` of the first half and `j` of the second half share byte `j` of the nibbles (low
/// and high), and their fifth bits are bits `j` and `j + 16` of `qh`.
pub fn quantize_q5_0(values: &[f32], out: &mut Vec<u8>) {
    assert!(values.len().is_multiple_of(QK5_0), "q5_0 needs whole blocks of 32");
    out.reserve(values.len() / QK5_0 * Q5_0_BLOCK_BYTES);
    for block in values.chunks_exact(QK5_0) {
        let (mut amax, mut max) = (0f32, 0f32);
        for &v in block {
            if amax < v.abs() {
                (amax, max) = (v.abs(), v);
            }
        }
        let d = max / -16.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        // C's (int8_t) cast truncates toward zero, as `as i8` does in range.
        let code = |v: f32| ((v * id + 16.5) as i8).min(31) as u8;
        let (low, high) = block.split_at(QK5_0 / 2);
        let mut qh = 0u32;
        let mut nibbles = [0u8; QK5_0 / 2];
        for (j, (&x0, &x1)) in low.iter().zip(high).enumerate() {
            let (q0, q1) = (code(x0), code(x1));
            nibbles[j] = (q0 & 0x0f) | ((q1 & 0x0f) << 4);
            qh |= u32::from(q0 >> 4) << j;
            qh |= u32::from(q1 >> 4) << (j + QK5_0 / 2);
        }
        out.extend(f16::from_f32(d).to_le_bytes());
        out.extend(qh.to_le_bytes());
        out.extend(nibbles);
    }
}

/// Expands q5_0 blocks back to floats, appending to `out` (ggml's `dequantize_row_q5_0`).
pub fn dequantize_q5_0(bytes: &[u8], out: &mut Vec<f32>) {
    for block in bytes.chunks_exact(Q5_0_BLOCK_BYTES) {
        let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
        let qh = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
        let nibbles = &block[6..];
        let value = |j: usize, nibble: u8| {
            let fifth = ((qh >> j) & 1) as u8;
            f32::from(((fifth << 4) | nibble) as i8 - 16) * d
        };
        out.extend(nibbles.iter().enumerate().map(|(j, &q)| value(j, q & 0x0f)));
        out.extend(nibbles.iter().enumerate().map(|(j, &q)| value(j + QK5_0 / 2, q >> 4)));
    }
}

/// Appends `values` encoded as `ty` to `out`. Only f32, f16, q8_0 and q5_0 can be
/// written.
fn encode(ty: GgmlType, values: &[f32], out: &mut Vec<u8>) -> io::Result<()> {
    match ty {
        GgmlType::F32 => out.extend(values.iter().flat_map(|v| v.to_le_bytes())),
        GgmlType::F16 => out.extend(values.iter().flat_map(|v| f16::from_f32(*v).to_le_bytes())),
        GgmlType::Q8_0 => {
            whole_blocks(ty, values)?;
            quantize_q8_0(values, out);
        }
        GgmlType::Q5_0 => {
            whole_blocks(ty, values)?;
            quantize_q5_0(values, out);
        }
        other => return Err(invalid(format!("writing {other} tensors is not supported"))),
    }
    Ok(())
}

/// Checks that `values` fill whole blocks of `ty`.
fn whole_blocks(ty: GgmlType, values: &[f32]) -> io::Result<()> {
    let per_block = ty.block().0;
    if values.len().is_multiple_of(per_block) {
        return Ok(());
    }
    Err(invalid(format!(
        "{ty} data must come in whole blocks of {per_block} values, got {}",
        values.len()
    )))
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

#[derive(Debug)]
struct OpenTensor {
    name: String,
    ty: GgmlType,
    remaining: usize,
}

/// Writes a ggml Whisper model section by section: header, mel filters, tokens, then
/// tensors, each streamed in chunks so a large model never sits in memory twice.
///
/// Give it a buffered writer; it counts the bytes it writes.
#[derive(Debug)]
pub struct GgmlWriter<W: Write> {
    w: W,
    bytes: u64,
    tensors: usize,
    open: Option<OpenTensor>,
    buf: Vec<u8>,
}

impl<W: Write> GgmlWriter<W> {
    /// A writer into `w`.
    pub fn new(w: W) -> Self {
        Self { w, bytes: 0, tensors: 0, open: None, buf: Vec::new() }
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.w.write_all(bytes)?;
        self.bytes += bytes.len() as u64;
        Ok(())
    }

    fn put_i32(&mut self, v: i32) -> io::Result<()> {
        self.put(&v.to_le_bytes())
    }

    /// Writes the magic and hyperparameters.
    pub fn write_header(&mut self, header: &GgmlHeader) -> io::Result<()> {
        self.put(&header.to_bytes())
    }

    /// Writes the mel filterbank.
    pub fn write_mel_filters(&mut self, filters: &MelFilters) -> io::Result<()> {
        self.put_i32(filters.n_mels as i32)?;
        self.put_i32(filters.n_freqs as i32)?;
        let bytes: Vec<u8> = filters.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.put(&bytes)
    }

    /// Writes the vocabulary: each token as its raw bytes.
    pub fn write_tokens(&mut self, tokens: &[Vec<u8>]) -> io::Result<()> {
        self.put_i32(tokens.len() as i32)?;
        for t in tokens {
            self.put(&(t.len() as u32).to_le_bytes())?;
            self.put(t)?;
        }
        Ok(())
    }

    /// Starts a tensor of shape `ne` (innermost dimension first) stored as `ty`; its
    /// values follow through [`write_data`](Self::write_data), then
    /// [`end_tensor`](Self::end_tensor).
    pub fn begin_tensor(&mut self, name: &str, ne: &[usize], ty: GgmlType) -> io::Result<()> {
        if let Some(t) = &self.open {
            return Err(invalid(format!("tensor {} is not finished", t.name)));
        }
        if ne.is_empty() || ne.len() > 4 {
            return Err(invalid(format!("tensor {name} has {} dimensions", ne.len())));
        }
        let per_block = ty.block().0;
        if !ne[0].is_multiple_of(per_block) {
            return Err(invalid(format!(
                "tensor {name}: rows of {} values cannot be {ty} blocks of {per_block}",
                ne[0]
            )));
        }
        self.put_i32(ne.len() as i32)?;
        self.put_i32(name.len() as i32)?;
        self.put_i32(ty.id())?;
        for &d in ne {
            self.put_i32(d as i32)?;
        }
        self.put(name.as_bytes())?;
        self.open = Some(OpenTensor { name: name.to_owned(), ty, remaining: ne.iter().product() });
        Ok(())
    }

    /// Writes the next values of the open tensor, converting them to its type. For q8_0
    /// and q5_0 every chunk must be a whole number of 32-value blocks.
    pub fn write_data(&mut self, values: &[f32]) -> io::Result<()> {
        let Some(t) = self.open.as_mut() else {
            return Err(invalid("no tensor is open".into()));
        };
        if values.len() > t.remaining {
            return Err(invalid(format!("too many values for tensor {}", t.name)));
        }
        t.remaining -= values.len();
        let ty = t.ty;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let result = encode(ty, values, &mut buf).and_then(|()| self.put(&buf));
        self.buf = buf;
        result
    }

    /// Finishes the open tensor; fails if values are missing.
    pub fn end_tensor(&mut self) -> io::Result<()> {
        match self.open.take() {
            Some(t) if t.remaining == 0 => {
                self.tensors += 1;
                Ok(())
            }
            Some(t) => Err(invalid(format!("tensor {} lacks {} values", t.name, t.remaining))),
            None => Err(invalid("no tensor is open".into())),
        }
    }

    /// Writes a whole tensor at once.
    pub fn write_tensor(
        &mut self,
        name: &str,
        ne: &[usize],
        ty: GgmlType,
        values: &[f32],
    ) -> io::Result<()> {
        self.begin_tensor(name, ne, ty)?;
        self.write_data(values)?;
        self.end_tensor()
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes
    }

    /// Tensors finished so far.
    pub fn tensors_written(&self) -> usize {
        self.tensors
    }

    /// Flushes and returns the inner writer; fails if a tensor is unfinished.
    pub fn finish(mut self) -> io::Result<W> {
        if let Some(t) = &self.open {
            return Err(invalid(format!("tensor {} is not finished", t.name)));
        }
        self.w.flush()?;
        Ok(self.w)
    }
}

/// Where one tensor lies in a ggml model file, and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgmlTensorInfo {
    /// Its name, such as `encoder.conv1.weight`.
    pub name: String,
    /// Its dimensions, innermost first.
    pub ne: Vec<usize>,
    /// Its element type.
    pub ggml_type: GgmlType,
    /// Byte offset of its data in the file.
    pub offset: u64,
}

impl GgmlTensorInfo {
    /// Number of values.
    pub fn numel(&self) -> usize {
        self.ne.iter().product()
    }

    /// Size of its data in bytes.
    pub fn num_bytes(&self) -> u64 {
        self.ggml_type.bytes_for(self.numel()).unwrap_or(0)
    }
}

/// Everything in a ggml Whisper model but the weights themselves.
#[derive(Debug, Clone, PartialEq)]
pub struct GgmlModelInfo {
    /// The hyperparameters.
    pub header: GgmlHeader,
    /// The mel filterbank.
    pub mel_filters: MelFilters,
    /// The text tokens, as raw bytes.
    pub tokens: Vec<Vec<u8>>,
    /// The tensors, in file order.
    pub tensors: Vec<GgmlTensorInfo>,
    /// Size of the file in bytes.
    pub file_len: u64,
}

impl GgmlModelInfo {
    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&GgmlTensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// Sequential reading of a model file that reports a short file as truncation at a
/// named place.
struct Seq<'a> {
    r: BufReader<File>,
    pos: u64,
    len: u64,
    path: &'a Path,
}

impl Seq<'_> {
    fn take(&mut self, n: usize, what: impl FnOnce() -> String) -> Result<Vec<u8>> {
        if self.pos + n as u64 > self.len {
            return Err(bad_model(
                self.path,
                format!("truncated: the file ends inside {}", what()),
            ));
        }
        let mut buf = vec![0u8; n];
        self.r
            .read_exact(&mut buf)
            .map_err(|e| bad_model(self.path, format!("cannot read it: {e}")))?;
        self.pos += n as u64;
        Ok(buf)
    }

    fn i32(&mut self, what: impl FnOnce() -> String) -> Result<i32> {
        let b = self.take(4, what)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn skip(&mut self, n: u64, what: impl FnOnce() -> String) -> Result<()> {
        if self.pos + n > self.len {
            return Err(bad_model(
                self.path,
                format!("truncated: the file ends inside {}", what()),
            ));
        }
        self.r
            .seek_relative(n as i64)
            .map_err(|e| bad_model(self.path, format!("cannot read it: {e}")))?;
        self.pos += n;
        Ok(())
    }
}

/// Reads the whole structure of the ggml model at `path` (header, filters, tokens and the
/// list of tensors, seeking over their data), checking that every part is complete.
pub fn read_ggml_info(path: &Path) -> Result<GgmlModelInfo> {
    let file = open_model(path)?;
    let file_len =
        file.metadata().map_err(|e| bad_model(path, format!("cannot read it: {e}")))?.len();
    let mut r = BufReader::new(file);
    let header = read_header_from(&mut r, path)?;
    let mut s = Seq { r, pos: HEADER_BYTES as u64, len: file_len, path };

    let mel = || "the mel filters".to_owned();
    let n_mel = s.i32(mel)?;
    let n_fft = s.i32(mel)?;
    if !(1..=1024).contains(&n_mel) || !(1..=8192).contains(&n_fft) {
        return Err(bad_model(path, format!("implausible mel filterbank size {n_mel} × {n_fft}")));
    }
    let (n_mels, n_freqs) = (n_mel as usize, n_fft as usize);
    let data = s
        .take(n_mels * n_freqs * 4, mel)?
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let mel_filters = MelFilters { n_mels, n_freqs, data };

    let n_tokens = s.i32(|| "the vocabulary".into())?;
    if !(0..=header.n_vocab).contains(&n_tokens) {
        return Err(bad_model(
            path,
            format!(
                "the file holds {n_tokens} tokens but the header says n_vocab = {}",
                header.n_vocab
            ),
        ));
    }
    let mut tokens = Vec::with_capacity(n_tokens as usize);
    for i in 0..n_tokens {
        let len = s.i32(|| format!("token {i}"))? as u32;
        if len > 1 << 16 {
            return Err(bad_model(path, format!("token {i} claims {len} bytes")));
        }
        tokens.push(s.take(len as usize, || format!("token {i}"))?);
    }

    let mut tensors = Vec::new();
    while s.pos < s.len {
        let k = tensors.len();
        let what = || format!("the header of tensor #{k}");
        let n_dims = s.i32(what)?;
        let name_len = s.i32(what)?;
        let type_id = s.i32(what)?;
        if !(1..=4).contains(&n_dims) || !(1..=1024).contains(&name_len) {
            return Err(bad_model(path, format!("malformed {}", what())));
        }
        let mut ne = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            let d = s.i32(what)?;
            if d < 1 {
                return Err(bad_model(path, format!("malformed {}: dimension {d}", what())));
            }
            ne.push(d as usize);
        }
        let name = String::from_utf8_lossy(&s.take(name_len as usize, what)?).into_owned();
        let ggml_type = GgmlType::from_id(type_id)
            .ok_or_else(|| bad_model(path, format!("tensor {name} has unknown type {type_id}")))?;
        let info = GgmlTensorInfo { name, ne, ggml_type, offset: s.pos };
        let n = ggml_type.bytes_for(info.numel()).ok_or_else(|| {
            bad_model(
                path,
                format!("tensor {} is not a whole number of {ggml_type} blocks", info.name),
            )
        })?;
        s.skip(n, || format!("tensor {}", info.name))?;
        tensors.push(info);
    }
    Ok(GgmlModelInfo { header, mel_filters, tokens, tensors, file_len })
}

/// Reads one tensor's values as floats (f32, f16, bf16, q8_0 and q5_0 tensors).
pub fn read_ggml_tensor(path: &Path, tensor: &GgmlTensorInfo) -> Result<Vec<f32>> {
    let mut file = open_model(path)?;
    let mut bytes = vec![0u8; tensor.num_bytes() as usize];
    file.seek(SeekFrom::Start(tensor.offset))
        .and_then(|_| file.read_exact(&mut bytes))
        .map_err(|e| bad_model(path, format!("cannot read tensor {}: {e}", tensor.name)))?;
    let mut out = Vec::with_capacity(tensor.numel());
    match tensor.ggml_type {
        GgmlType::F32 => {
            out.extend(bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())))
        }
        GgmlType::F16 => {
            out.extend(bytes.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()))
        }
        GgmlType::BF16 => {
            out.extend(bytes.chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()))
        }
        GgmlType::Q8_0 => dequantize_q8_0(&bytes, &mut out),
        GgmlType::Q5_0 => dequantize_q5_0(&bytes, &mut out),
        other => {
            return Err(bad_model(
                path,
                format!("tensor {} is {other}, which this crate cannot decode", tensor.name),
            ))
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::mel::whisper_filters;

    fn base_header() -> GgmlHeader {
        GgmlHeader {
            n_vocab: 51865,
            n_audio_ctx: 1500,
            n_audio_state: 512,
            n_audio_head: 8,
            n_audio_layer: 6,
            n_text_ctx: 448,
            n_text_state: 512,
            n_text_head: 8,
            n_text_layer: 6,
            n_mels: 80,
            ftype: FTYPE_MOSTLY_F16,
        }
    }

    fn reason(e: Error) -> String {
        match e {
            Error::BadModel { reason, .. } => reason,
            other => panic!("expected BadModel, got {other:?}"),
        }
    }

    #[test]
    fn header_helpers() {
        let h = base_header();
        assert!(h.is_multilingual() && !h.has_yue());
        assert_eq!(h.size_name(), "base");
        assert_eq!(h.ftype_name(), "f16");
        let v3 = GgmlHeader {
            n_vocab: 51866,
            n_audio_layer: 32,
            ftype: QNT_VERSION * QNT_VERSION_FACTOR + FTYPE_MOSTLY_Q8_0,
            ..h
        };
        assert!(v3.is_multilingual() && v3.has_yue());
        assert_eq!((v3.size_name(), v3.ftype_name()), ("large", "q8_0"));
        let en = GgmlHeader { n_vocab: 51864, n_audio_layer: 4, ..h };
        assert!(!en.is_multilingual());
        assert_eq!(en.size_name(), "tiny");
        assert_eq!(GgmlHeader { n_audio_layer: 7, ..h }.size_name(), "unknown");
    }

    #[test]
    fn header_round_trips_and_bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.bin");
        let h = base_header();
        std::fs::write(&p, h.to_bytes()).unwrap();
        assert_eq!(read_ggml_header(&p).unwrap(), h);

        let missing = reason(read_ggml_header(&dir.path().join("nope.bin")).unwrap_err());
        assert!(missing.contains("does not exist"), "{missing}");
        assert!(reason(read_ggml_header(dir.path()).unwrap_err()).contains("folder"));

        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "empty"),
            (h.to_bytes()[..20].to_vec(), "truncated"),
            (b"lm".to_vec(), "truncated"),
            (b"GGUF\x03\x00\x00\x00rest of a gguf file........................".to_vec(), "GGUF"),
            (b"PK\x03\x04 a zip".to_vec(), "zip"),
            (b"\x06\x00\x00\x00WhisperSpec".to_vec(), "magic 0x00000006"),
            (GgmlHeader { n_vocab: 0, ..h }.to_bytes().to_vec(), "n_vocab = 0"),
            (GgmlHeader { n_mels: -80, ..h }.to_bytes().to_vec(), "n_mels"),
            (GgmlHeader { n_audio_head: 7, ..h }.to_bytes().to_vec(), "divisible"),
            (GgmlHeader { n_text_state: 384, n_text_head: 6, ..h }.to_bytes().to_vec(), "differs"),
            (GgmlHeader { ftype: 4, ..h }.to_bytes().to_vec(), "ftype 4"),
            (GgmlHeader { ftype: -1, ..h }.to_bytes().to_vec(), "ftype -1"),
        ];
        for (bytes, expect) in cases {
            std::fs::write(&p, &bytes).unwrap();
            let msg = reason(read_ggml_header(&p).unwrap_err());
            assert!(msg.contains(expect), "{expect:?} not in {msg:?}");
        }
    }

    #[test]
    fn q8_0_matches_ggml_and_round_trips_within_half_a_step() {
        // A block with a known answer: max |x| = 127 → d = 1, q = round(x).
        let mut block: Vec<f32> = (0..32).map(|i| i as f32 - 15.5).collect();
        block[31] = -127.0;
        let mut out = Vec::new();
        quantize_q8_0(&block, &mut out);
        assert_eq!(out.len(), Q8_0_BLOCK_BYTES);
        assert_eq!(f16::from_le_bytes([out[0], out[1]]).to_f32(), 1.0);
        // roundf rounds halves away from zero.
        assert_eq!(out[2] as i8, -16);
        assert_eq!(out[2 + 16] as i8, 1);
        assert_eq!(out[2 + 31] as i8, -127);
        // An all-zero block has d = 0 and zero codes.
        out.clear();
        quantize_q8_0(&[0.0; 32], &mut out);
        assert!(out.iter().all(|&b| b == 0));

        // Pseudo-random data over the magnitudes of Whisper weights: error ≤ d/2, plus the
        // f16 rounding of d (relative 2^-11) times up to 127.
        let values = weight_like(64);
        let mut q = Vec::new();
        quantize_q8_0(&values, &mut q);
        assert_eq!(q.len(), values.len() / 32 * 34);
        let mut back = Vec::new();
        dequantize_q8_0(&q, &mut back);
        for (block, restored) in values.chunks(32).zip(back.chunks(32)) {
            let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            for (a, b) in block.iter().zip(restored) {
                assert!((a - b).abs() <= d * 0.5 + amax * 1e-3, "{a} vs {b} (d {d})");
            }
        }
    }

    /// Pseudo-random values over the magnitudes of Whisper weights, `blocks` blocks of 32.
    fn weight_like(blocks: usize) -> Vec<f32> {
        let mut x = 0x1234_5678u32;
        (0..32 * blocks)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let unit = x as f32 / u32::MAX as f32 * 2.0 - 1.0;
                unit * 10f32.powi((i / 32) as i32 % 5 - 2)
            })
            .collect()
    }

    #[test]
    fn q5_0_matches_ggml_on_a_hand_checked_block() {
        // -16 has the largest magnitude, so d = -16 / -16 = 1 and each code is
        // trunc(x + 16.5) capped at 31: halves round up, and +16 clips to 15.
        let mut block = [0f32; 32];
        block[..6].copy_from_slice(&[-16.0, 15.0, 0.5, -0.5, -1.5, 0.4]);
        (block[16], block[17], block[31]) = (3.0, -15.9, 16.0);
        let mut out = Vec::new();
        quantize_q5_0(&block, &mut out);
        assert_eq!(out.len(), Q5_0_BLOCK_BYTES);
        assert_eq!(out[..2], f16::from_f32(1.0).to_le_bytes());
        // Codes 0 31 17 16 15 16 … | 19 0 16 … 31: fifth bits set where the code ≥ 16.
        assert_eq!(u32::from_le_bytes(out[2..6].try_into().unwrap()), 0xfffd_ffee);
        let mut nibbles = [0u8; 16];
        nibbles[..5].copy_from_slice(&[0x30, 0x0f, 0x01, 0x00, 0x0f]);
        nibbles[15] = 0xf0;
        assert_eq!(out[6..], nibbles);

        let mut back = Vec::new();
        dequantize_q5_0(&out, &mut back);
        let mut expected = [0f32; 32];
        expected[..6].copy_from_slice(&[-16.0, 15.0, 1.0, 0.0, -1.0, 0.0]);
        (expected[16], expected[17], expected[31]) = (3.0, -16.0, 15.0);
        assert_eq!(back, expected);

        // A positive extreme gives a negative d; an all-zero block has d = 0 / -16 = -0
        // (sign bit set, as in C) and codes 16.
        out.clear();
        quantize_q5_0(&[[8.0, -8.0].as_slice(), &[0.0; 30]].concat(), &mut out);
        assert_eq!(f16::from_le_bytes([out[0], out[1]]).to_f32(), -0.5);
        back.clear();
        dequantize_q5_0(&out, &mut back);
        assert_eq!(back[..3], [8.0, -7.5, 0.0]);
        out.clear();
        quantize_q5_0(&[0.0; 32], &mut out);
        assert_eq!(out[..6], [0, 0x80, 0xff, 0xff, 0xff, 0xff]);
        assert!(out[6..].iter().all(|&b| b == 0));
    }

    #[test]
    fn q5_0_round_trips_within_half_a_step() {
        let values = weight_like(64);
        let mut q = Vec::new();
        quantize_q5_0(&values, &mut q);
        assert_eq!(q.len(), values.len() / 32 * 22);
        let mut back = Vec::new();
        dequantize_q5_0(&q, &mut back);
        assert_eq!(back.len(), values.len());
        for (block, restored) in values.chunks(32).zip(back.chunks(32)) {
            // Steps of |d| = max|x| / 16; the extreme's opposite clips to 15 steps, one
            // step short. Plus the f16 rounding of d (relative 2^-11) times up to 16.
            let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 16.0;
            for (a, b) in block.iter().zip(restored) {
                let bound = if a.abs() > 15.0 * d { d } else { d * 0.5 } + amax * 1e-3;
                assert!((a - b).abs() <= bound, "{a} vs {b} (d {d})");
            }
        }
    }

    #[test]
    fn writer_and_reader_agree() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.bin");
        let h = GgmlHeader { ftype: 2007, ..base_header() };
        let mut w = GgmlWriter::new(Vec::new());
        w.write_header(&h).unwrap();
        w.write_mel_filters(&whisper_filters(80)).unwrap();
        w.write_tokens(&[b"a".to_vec(), vec![], b" b".to_vec()]).unwrap();
        let m: Vec<f32> = (0..64 * 2).map(|i| i as f32 / 8.0).collect();
        w.write_tensor("m", &[64, 2], GgmlType::Q8_0, &m).unwrap();
        w.begin_tensor("v", &[1, 3], GgmlType::F32).unwrap();
        w.write_data(&[1.0]).unwrap();
        w.write_data(&[2.0, 3.0]).unwrap();
        w.end_tensor().unwrap();
        w.write_tensor("h", &[2], GgmlType::F16, &[0.5, -2.0]).unwrap();
        let q: Vec<f32> = (0..32 * 2).map(|i| i as f32 - 16.0).collect();
        w.write_tensor("q", &[32, 2], GgmlType::Q5_0, &q).unwrap();
        assert_eq!(w.tensors_written(), 4);
        let written = w.bytes_written();
        let bytes = w.finish().unwrap();
        assert_eq!(bytes.len() as u64, written);
        std::fs::write(&p, &bytes).unwrap();

        let info = read_ggml_info(&p).unwrap();
        assert_eq!(info.header, h);
        assert_eq!(info.mel_filters, whisper_filters(80));
        assert_eq!(info.tokens, vec![b"a".to_vec(), vec![], b" b".to_vec()]);
        let names: Vec<_> =
            info.tensors.iter().map(|t| (t.name.as_str(), t.ne.clone(), t.ggml_type)).collect();
        assert_eq!(
            names,
            vec![
                ("m", vec![64, 2], GgmlType::Q8_0),
                ("v", vec![1, 3], GgmlType::F32),
                ("h", vec![2], GgmlType::F16),
                ("q", vec![32, 2], GgmlType::Q5_0)
            ]
        );
        let back = read_ggml_tensor(&p, info.tensor("m").unwrap()).unwrap();
        // Blocks reach 15.875, so d = 0.125 and errors stay within d / 2.
        assert!(back.iter().zip(&m).all(|(a, b)| (a - b).abs() <= 0.0625));
        assert_eq!(read_ggml_tensor(&p, info.tensor("v").unwrap()).unwrap(), vec![1.0, 2.0, 3.0]);
        assert_eq!(read_ggml_tensor(&p, info.tensor("h").unwrap()).unwrap(), vec![0.5, -2.0]);
        // The first block spans -16..=15 (d = 1), the second 16..=47 (d = -47 / 16).
        let back = read_ggml_tensor(&p, info.tensor("q").unwrap()).unwrap();
        assert_eq!(back[..32], q[..32]);
        assert!(back[32..].iter().zip(&q[32..]).all(|(a, b)| (a - b).abs() <= 47.0 / 32.0));

        // Cutting the file anywhere after the header is reported as truncation.
        for cut in [60, bytes.len() - 1, bytes.len() - 40] {
            std::fs::write(&p, &bytes[..cut]).unwrap();
            let msg = reason(read_ggml_info(&p).unwrap_err());
            assert!(msg.contains("truncated"), "cut {cut}: {msg}");
        }
    }

    #[test]
    fn writer_rejects_misuse() {
        let mut w = GgmlWriter::new(Vec::new());
        assert!(w.begin_tensor("q", &[30, 2], GgmlType::Q8_0).is_err());
        assert!(w.begin_tensor("q", &[48, 2], GgmlType::Q5_0).is_err());
        assert!(w.write_data(&[1.0]).is_err());
        w.begin_tensor("t", &[2], GgmlType::F32).unwrap();
        assert!(w.begin_tensor("u", &[2], GgmlType::F32).is_err());
        assert!(w.write_data(&[1.0, 2.0, 3.0]).is_err());
        w.write_data(&[1.0]).unwrap();
        assert!(w.end_tensor().is_err());
        assert!(GgmlWriter::new(Vec::new())
            .write_tensor("x", &[2], GgmlType::Q4_0, &[0.0; 2])
            .is_err());
    }
}
