//! Reading CTranslate2 `model.bin` files.
//!
//! The layout, as written by `python/ctranslate2/specs/model_spec.py` (`_serialize`) and
//! read by `src/models/model.cc` (`Model::load`) in OpenNMT/CTranslate2, all little-endian:
//!
//! ```text
//! u32 binary_version                      (6 for every Whisper model so far)
//! str spec name, u32 spec revision        (binary_version >= 2; "WhisperSpec", 1..=3)
//! u32 n_variables
//!   n_variables times:
//!     str name, u8 rank, u32 dims[rank], u8 dtype, u32 n_bytes, n_bytes of data
//! u32 n_aliases                           (binary_version >= 3)
//!   n_aliases times: str alias, str target
//! ```
//!
//! where `str` is a `u16` length counting a trailing NUL, then that many bytes. The dtype
//! ids are CTranslate2's `DataType` enum: float32, int8, int16, int32, float16, bfloat16.
//! Integer-quantized weights come with a `<name>_scale` variable (per row for int8,
//! one scalar for int16) such that `value = stored / scale`.
//!
//! [`Ct2Model::open`] reads only the index (names, shapes, offsets) and seeks over the
//! data; tensors are read on demand, whole or a range of rows at a time, so converting a
//! 3 GB model never holds more than one slice of it in memory.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};

use half::{bf16, f16};

use crate::{Error, Result};

/// The newest `model.bin` binary version this reader understands.
pub const MAX_BINARY_VERSION: u32 = 6;
/// The oldest binary version this reader understands (the first with explicit dtypes).
pub const MIN_BINARY_VERSION: u32 = 4;

/// Guards against absurd counts in a damaged index before they turn into huge allocations.
const MAX_VARIABLES: u32 = 1 << 20;
const MAX_RANK: u8 = 8;

/// The element type of a CTranslate2 variable (`ctranslate2::DataType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ct2DType {
    /// 32-bit IEEE float.
    Float32,
    /// 8-bit integer; weights of this type come with a per-row `_scale`.
    Int8,
    /// 16-bit integer; weights of this type come with a scalar `_scale`.
    Int16,
    /// 32-bit integer (only scalars in Whisper models).
    Int32,
    /// 16-bit IEEE float.
    Float16,
    /// bfloat16.
    BFloat16,
}

impl Ct2DType {
    /// The dtype with CTranslate2's numeric id, if known.
    pub fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0 => Self::Float32,
            1 => Self::Int8,
            2 => Self::Int16,
            3 => Self::Int32,
            4 => Self::Float16,
            5 => Self::BFloat16,
            _ => return None,
        })
    }

    /// CTranslate2's numeric id of this dtype.
    pub fn id(self) -> u8 {
        match self {
            Self::Float32 => 0,
            Self::Int8 => 1,
            Self::Int16 => 2,
            Self::Int32 => 3,
            Self::Float16 => 4,
            Self::BFloat16 => 5,
        }
    }

    /// Bytes per element.
    pub fn item_size(self) -> usize {
        match self {
            Self::Int8 => 1,
            Self::Int16 | Self::Float16 | Self::BFloat16 => 2,
            Self::Float32 | Self::Int32 => 4,
        }
    }

    /// CTranslate2's name for the dtype, such as `float16`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Float32 => "float32",
            Self::Int8 => "int8",
            Self::Int16 => "int16",
            Self::Int32 => "int32",
            Self::Float16 => "float16",
            Self::BFloat16 => "bfloat16",
        }
    }

    /// Whether values of this type need a `_scale` variable to mean anything.
    pub fn is_quantized(self) -> bool {
        matches!(self, Self::Int8 | Self::Int16)
    }
}

impl std::fmt::Display for Ct2DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One named variable of a `model.bin`: where its data lies and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ct2Variable {
    /// Its name, such as `encoder/conv1/weight`.
    pub name: String,
    /// Its dimensions, outermost first (row-major); empty for a scalar.
    pub shape: Vec<usize>,
    /// Its element type.
    pub dtype: Ct2DType,
    /// Byte offset of its data in `model.bin`.
    pub offset: u64,
}

impl Ct2Variable {
    /// Number of elements (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether it is a scalar (rank 0).
    pub fn is_scalar(&self) -> bool {
        self.shape.is_empty()
    }

    /// Elements per row: the product of all dimensions but the first (1 for rank ≤ 1).
    pub fn row_len(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// Number of rows: the first dimension (1 for a scalar).
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Size of its data in bytes.
    pub fn num_bytes(&self) -> u64 {
        self.numel() as u64 * self.dtype.item_size() as u64
    }
}

/// An open CTranslate2 `model.bin`: its index in memory, its data read on demand.
#[derive(Debug)]
pub struct Ct2Model {
    path: PathBuf,
    file: BufReader<File>,
    binary_version: u32,
    spec: String,
    spec_revision: u32,
    variables: Vec<Ct2Variable>,
    index: HashMap<String, usize>,
    aliases: BTreeMap<String, String>,
}

impl Ct2Model {
    /// Opens `path` (a `model.bin`) and reads its index.
    ///
    /// Fails with [`Error::BadCt2Model`] naming the problem when the file is missing,
    /// empty, truncated, of an unknown binary version, or otherwise malformed.
    pub fn open(path: &Path) -> Result<Self> {
        let bad = |reason: String| Error::BadCt2Model { path: path.to_path_buf(), reason };
        let file = File::open(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => bad("model.bin does not exist".into()),
            _ => Error::Io { path: path.to_path_buf(), source: e },
        })?;
        let len =
            file.metadata().map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?.len();
        if len == 0 {
            return Err(bad("model.bin is empty".into()));
        }
        let mut r = IndexReader { inner: BufReader::with_capacity(1 << 16, file), pos: 0, len };
        let parsed = parse_index(&mut r).map_err(|e| match e {
            IndexError::Bad(reason) => bad(reason),
            IndexError::Io(source) => Error::Io { path: path.to_path_buf(), source },
        })?;
        let index = parsed.variables.iter().enumerate().map(|(i, v)| (v.name.clone(), i)).collect();
        Ok(Self {
            path: path.to_path_buf(),
            file: r.inner,
            binary_version: parsed.binary_version,
            spec: parsed.spec,
            spec_revision: parsed.spec_revision,
            variables: parsed.variables,
            index,
            aliases: parsed.aliases,
        })
    }

    /// The `model.bin` path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The binary format version (6 for current CTranslate2).
    pub fn binary_version(&self) -> u32 {
        self.binary_version
    }

    /// The model specification name, such as `WhisperSpec` (empty before binary version 2).
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// The revision of the model specification.
    pub fn spec_revision(&self) -> u32 {
        self.spec_revision
    }

    /// All stored variables, in file order (CTranslate2 sorts them by name).
    pub fn variables(&self) -> &[Ct2Variable] {
        &self.variables
    }

    /// Aliases: alias name → the variable it stands for (tied weights).
    pub fn aliases(&self) -> &BTreeMap<String, String> {
        &self.aliases
    }

    /// The variable called `name`, following an alias if `name` is one.
    pub fn get(&self, name: &str) -> Option<&Ct2Variable> {
        let target = self.aliases.get(name).map_or(name, String::as_str);
        self.index.get(target).map(|&i| &self.variables[i])
    }

    /// The variable called `name`, or an error naming it as missing.
    pub fn require(&self, name: &str) -> Result<&Ct2Variable> {
        self.get(name).ok_or_else(|| self.bad(format!("variable {name} is missing")))
    }

    fn bad(&self, reason: String) -> Error {
        Error::BadCt2Model { path: self.path.clone(), reason }
    }

    /// Reads an integer scalar (any integer dtype, or a float holding an integer).
    pub fn read_scalar_i64(&mut self, name: &str) -> Result<i64> {
        let var = self.require(name)?.clone();
        if var.numel() != 1 {
            return Err(self
                .bad(format!("variable {name} should be a scalar but has shape {:?}", var.shape)));
        }
        let bytes = self.read_bytes(&var, 0..1)?;
        Ok(match var.dtype {
            Ct2DType::Int8 => i64::from(bytes[0] as i8),
            Ct2DType::Int16 => i64::from(i16::from_le_bytes([bytes[0], bytes[1]])),
            Ct2DType::Int32 => {
                i64::from(i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
            }
            Ct2DType::Float32 | Ct2DType::Float16 | Ct2DType::BFloat16 => {
                let mut v = Vec::with_capacity(1);
                decode_floats(var.dtype, &bytes, &mut v);
                v[0] as i64
            }
        })
    }

    /// Reads a whole variable as `f32`, dequantizing integer weights with their `_scale`.
    pub fn read_f32(&mut self, name: &str) -> Result<Vec<f32>> {
        let rows = self.require(name)?.rows();
        self.read_rows_f32(name, 0..rows)
    }

    /// Reads rows `rows` (ranges over the first dimension) of a variable as `f32`,
    /// dequantizing integer weights with their `_scale`.
    pub fn read_rows_f32(&mut self, name: &str, rows: Range<usize>) -> Result<Vec<f32>> {
        let var = self.require(name)?.clone();
        if rows.start > rows.end || rows.end > var.rows() {
            return Err(self.bad(format!(
                "rows {rows:?} are outside variable {name} of shape {:?}",
                var.shape
            )));
        }
        let bytes = self.read_bytes(&var, rows.clone())?;
        let mut out = Vec::with_capacity(bytes.len() / var.dtype.item_size());
        match var.dtype {
            Ct2DType::Float32 | Ct2DType::Float16 | Ct2DType::BFloat16 => {
                decode_floats(var.dtype, &bytes, &mut out);
            }
            Ct2DType::Int8 | Ct2DType::Int16 => {
                let scales = self.read_scales(name, &var, rows)?;
                let row_len = var.row_len();
                let values: Box<dyn Iterator<Item = f32>> = if var.dtype == Ct2DType::Int8 {
                    Box::new(bytes.iter().map(|&b| f32::from(b as i8)))
                } else {
                    Box::new(
                        bytes.chunks_exact(2).map(|c| f32::from(i16::from_le_bytes([c[0], c[1]]))),
                    )
                };
                for (i, q) in values.enumerate() {
                    let s = if scales.len() == 1 { scales[0] } else { scales[i / row_len.max(1)] };
                    out.push(q / s);
                }
            }
            Ct2DType::Int32 => {
                return Err(self.bad(format!(
                    "variable {name} is int32, which is not a weight type this importer reads"
                )))
            }
        }
        Ok(out)
    }

    /// The dequantization scales for `rows` of the integer variable `name`: one per row,
    /// or a single one for the whole variable.
    fn read_scales(
        &mut self,
        name: &str,
        var: &Ct2Variable,
        rows: Range<usize>,
    ) -> Result<Vec<f32>> {
        let scale_name = format!("{}_scale", var.name);
        let alias_scale = format!("{name}_scale");
        let scale = match self.get(&scale_name).or_else(|| self.get(&alias_scale)) {
            Some(s) => s.clone(),
            None => {
                return Err(self.bad(format!(
                    "variable {name} is {} but has no {scale_name} to dequantize it with",
                    var.dtype
                )))
            }
        };
        if !matches!(scale.dtype, Ct2DType::Float32 | Ct2DType::Float16 | Ct2DType::BFloat16) {
            return Err(self.bad(format!("{scale_name} is {}, not a float", scale.dtype)));
        }
        let scale_rows = if scale.numel() == 1 {
            0..1
        } else if scale.numel() == var.rows() && scale.shape.len() == 1 {
            rows
        } else {
            return Err(self.bad(format!(
                "{scale_name} has shape {:?}, which fits neither one scale per row of {name} {:?} nor one in all",
                scale.shape, var.shape
            )));
        };
        let bytes = self.read_bytes(&scale, scale_rows)?;
        let mut scales = Vec::new();
        decode_floats(scale.dtype, &bytes, &mut scales);
        if let Some(bad) = scales.iter().find(|s| !s.is_finite() || **s == 0.0) {
            return Err(self.bad(format!("{scale_name} holds the unusable scale {bad}")));
        }
        Ok(scales)
    }

    /// The raw bytes of `rows` of `var`.
    fn read_bytes(&mut self, var: &Ct2Variable, rows: Range<usize>) -> Result<Vec<u8>> {
        let row_bytes = (var.row_len() * var.dtype.item_size()) as u64;
        let start = var.offset + rows.start as u64 * row_bytes;
        let n = (rows.end - rows.start) as u64 * row_bytes;
        let io_err = |source| Error::Io { path: self.path.clone(), source };
        self.file.seek(SeekFrom::Start(start)).map_err(io_err)?;
        let mut buf = vec![0u8; n as usize];
        self.file.read_exact(&mut buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                Error::BadCt2Model {
                    path: self.path.clone(),
                    reason: format!("model.bin ends inside variable {}", var.name),
                }
            } else {
                Error::Io { path: self.path.clone(), source: e }
            }
        })?;
        Ok(buf)
    }
}

/// Appends the floats encoded in `bytes` (little-endian `dtype`) to `out`.
fn decode_floats(dtype: Ct2DType, bytes: &[u8], out: &mut Vec<f32>) {
    match dtype {
        Ct2DType::Float32 => {
            out.extend(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
        }
        Ct2DType::Float16 => {
            out.extend(bytes.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()))
        }
        Ct2DType::BFloat16 => {
            out.extend(bytes.chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()))
        }
        _ => unreachable!("decode_floats called on an integer dtype"),
    }
}

struct ParsedIndex {
    binary_version: u32,
    spec: String,
    spec_revision: u32,
    variables: Vec<Ct2Variable>,
    aliases: BTreeMap<String, String>,
}

enum IndexError {
    Bad(String),
    Io(io::Error),
}

impl From<io::Error> for IndexError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// A reader that knows its position and the file length, so that a short file is
/// reported as truncated at a named place rather than as a bare end-of-file.
struct IndexReader<R> {
    inner: R,
    pos: u64,
    len: u64,
}

impl<R: Read + Seek> IndexReader<R> {
    fn take(&mut self, n: usize, what: &str) -> Result<Vec<u8>, IndexError> {
        if self.pos + n as u64 > self.len {
            return Err(IndexError::Bad(format!(
                "model.bin is truncated: it ends at byte {} while reading {what}",
                self.len
            )));
        }
        let mut buf = vec![0u8; n];
        self.inner.read_exact(&mut buf)?;
        self.pos += n as u64;
        Ok(buf)
    }

    fn u8(&mut self, what: &str) -> Result<u8, IndexError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, IndexError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, IndexError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self, what: &str) -> Result<String, IndexError> {
        let n = self.u16(what)?;
        if n == 0 {
            return Err(IndexError::Bad(format!(
                "model.bin is malformed: zero-length string for {what} at byte {}",
                self.pos - 2
            )));
        }
        let mut bytes = self.take(usize::from(n), what)?;
        bytes.pop(); // the NUL terminator
        String::from_utf8(bytes)
            .map_err(|_| IndexError::Bad(format!("model.bin is malformed: {what} is not UTF-8")))
    }

    fn skip(&mut self, n: u64, what: &str) -> Result<(), IndexError> {
        if self.pos + n > self.len {
            return Err(IndexError::Bad(format!(
                "model.bin is truncated: the data of {what} needs {n} bytes from byte {} but the file ends at byte {}",
                self.pos, self.len
            )));
        }
        self.inner.seek(SeekFrom::Current(n as i64))?;
        self.pos += n;
        Ok(())
    }
}

fn parse_index<R: Read + Seek>(r: &mut IndexReader<R>) -> Result<ParsedIndex, IndexError> {
    let binary_version = r.u32("the binary version")?;
    if !(MIN_BINARY_VERSION..=MAX_BINARY_VERSION).contains(&binary_version) {
        return Err(IndexError::Bad(format!(
            "model.bin starts with binary version {binary_version} (0x{binary_version:08x}); \
             this importer reads CTranslate2 binary versions {MIN_BINARY_VERSION} to {MAX_BINARY_VERSION}, \
             so the file is not a CTranslate2 model or comes from a newer CTranslate2"
        )));
    }
    let spec = r.string("the model spec name")?;
    let spec_revision = r.u32("the spec revision")?;
    let n_variables = r.u32("the variable count")?;
    if n_variables > MAX_VARIABLES {
        return Err(IndexError::Bad(format!(
            "model.bin claims {n_variables} variables, which is not plausible"
        )));
    }
    let mut variables = Vec::with_capacity(n_variables as usize);
    for i in 0..n_variables {
        let name = r.string(&format!("the name of variable #{i}"))?;
        let rank = r.u8(&format!("the rank of {name}"))?;
        if rank > MAX_RANK {
            return Err(IndexError::Bad(format!("variable {name} has rank {rank}")));
        }
        let mut shape = Vec::with_capacity(usize::from(rank));
        for _ in 0..rank {
            shape.push(r.u32(&format!("the shape of {name}"))? as usize);
        }
        let type_id = r.u8(&format!("the dtype of {name}"))?;
        let dtype = Ct2DType::from_id(type_id).ok_or_else(|| {
            IndexError::Bad(format!("variable {name} has unknown dtype id {type_id}"))
        })?;
        let num_bytes = u64::from(r.u32(&format!("the size of {name}"))?);
        let numel = shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
        if numel.and_then(|n| n.checked_mul(dtype.item_size() as u64)) != Some(num_bytes) {
            return Err(IndexError::Bad(format!(
                "variable {name} has an invalid payload size: {num_bytes} bytes for shape {shape:?} of {dtype}"
            )));
        }
        let offset = r.pos;
        r.skip(num_bytes, &name)?;
        variables.push(Ct2Variable { name, shape, dtype, offset });
    }
    let mut aliases = BTreeMap::new();
    if binary_version >= 3 {
        let n_aliases = r.u32("the alias count")?;
        if n_aliases > MAX_VARIABLES {
            return Err(IndexError::Bad(format!(
                "model.bin claims {n_aliases} aliases, which is not plausible"
            )));
        }
        for i in 0..n_aliases {
            let alias = r.string(&format!("alias #{i}"))?;
            let target = r.string(&format!("the target of alias {alias}"))?;
            aliases.insert(alias, target);
        }
    }
    Ok(ParsedIndex { binary_version, spec, spec_revision, variables, aliases })
}

/// Writing `model.bin` files, for tests: the inverse of [`Ct2Model::open`].
#[cfg(test)]
pub(crate) mod testing {
    use super::Ct2DType;

    /// A variable to serialize: name, shape, dtype and raw little-endian data.
    pub(crate) struct RawVar {
        pub name: String,
        pub shape: Vec<usize>,
        pub dtype: Ct2DType,
        pub data: Vec<u8>,
    }

    impl RawVar {
        pub fn f16(name: &str, shape: &[usize], values: &[f32]) -> Self {
            assert_eq!(shape.iter().product::<usize>(), values.len(), "{name}");
            Self {
                name: name.into(),
                shape: shape.to_vec(),
                dtype: Ct2DType::Float16,
                data: values.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect(),
            }
        }

        pub fn f32(name: &str, shape: &[usize], values: &[f32]) -> Self {
            assert_eq!(shape.iter().product::<usize>(), values.len(), "{name}");
            Self {
                name: name.into(),
                shape: shape.to_vec(),
                dtype: Ct2DType::Float32,
                data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            }
        }

        pub fn i8(name: &str, shape: &[usize], values: &[i8]) -> Self {
            Self {
                name: name.into(),
                shape: shape.to_vec(),
                dtype: Ct2DType::Int8,
                data: values.iter().map(|v| *v as u8).collect(),
            }
        }

        pub fn i16_scalar(name: &str, value: i16) -> Self {
            Self {
                name: name.into(),
                shape: vec![],
                dtype: Ct2DType::Int16,
                data: value.to_le_bytes().to_vec(),
            }
        }
    }

    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend(((s.len() + 1) as u16).to_le_bytes());
        out.extend(s.as_bytes());
        out.push(0);
    }

    /// Serializes like CTranslate2's `ModelSpec._serialize` (binary version 6).
    pub(crate) fn serialize(spec: &str, vars: &[RawVar], aliases: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(6u32.to_le_bytes());
        string(&mut out, spec);
        out.extend(3u32.to_le_bytes());
        out.extend((vars.len() as u32).to_le_bytes());
        for v in vars {
            string(&mut out, &v.name);
            out.push(v.shape.len() as u8);
            for d in &v.shape {
                out.extend((*d as u32).to_le_bytes());
            }
            out.push(v.dtype.id());
            out.extend((v.data.len() as u32).to_le_bytes());
            out.extend(&v.data);
        }
        out.extend((aliases.len() as u32).to_le_bytes());
        for (a, t) in aliases {
            string(&mut out, a);
            string(&mut out, t);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{serialize, RawVar};
    use super::*;

    fn write(dir: &Path, bytes: &[u8]) -> PathBuf {
        let p = dir.join("model.bin");
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn reason(e: Error) -> String {
        match e {
            Error::BadCt2Model { reason, .. } => reason,
            other => panic!("expected BadCt2Model, got {other:?}"),
        }
    }

    fn sample() -> Vec<u8> {
        serialize(
            "WhisperSpec",
            &[
                RawVar::f32("a/weight", &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
                RawVar::f16("b/bias", &[3], &[0.5, -1.0, 2.0]),
                RawVar::i8("c/weight", &[2, 2], &[127, -64, 10, 20]),
                RawVar::f32("c/weight_scale", &[2], &[127.0, 10.0]),
                RawVar::i16_scalar("encoder/num_heads", 8),
            ],
            &[("d/weight", "a/weight")],
        )
    }

    #[test]
    fn reads_index_values_aliases_and_dequantizes() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Ct2Model::open(&write(dir.path(), &sample())).unwrap();
        assert_eq!(m.binary_version(), 6);
        assert_eq!(m.spec(), "WhisperSpec");
        assert_eq!(m.spec_revision(), 3);
        assert_eq!(m.variables().len(), 5);
        assert_eq!(m.get("a/weight").unwrap().shape, vec![2, 3]);
        assert_eq!(m.get("d/weight").unwrap().name, "a/weight");
        assert_eq!(m.read_f32("a/weight").unwrap(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(m.read_rows_f32("a/weight", 1..2).unwrap(), vec![4.0, 5.0, 6.0]);
        assert_eq!(m.read_f32("d/weight").unwrap().len(), 6);
        assert_eq!(m.read_f32("b/bias").unwrap(), vec![0.5, -1.0, 2.0]);
        assert_eq!(m.read_rows_f32("b/bias", 1..3).unwrap(), vec![-1.0, 2.0]);
        assert_eq!(m.read_f32("c/weight").unwrap(), vec![1.0, -64.0 / 127.0, 1.0, 2.0]);
        assert_eq!(m.read_rows_f32("c/weight", 1..2).unwrap(), vec![1.0, 2.0]);
        assert_eq!(m.read_scalar_i64("encoder/num_heads").unwrap(), 8);
        assert!(reason(m.read_f32("nope").unwrap_err()).contains("nope is missing"));
        assert!(m.read_rows_f32("a/weight", 1..3).is_err());
    }

    #[test]
    fn int8_without_scale_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = serialize("WhisperSpec", &[RawVar::i8("w", &[1, 2], &[1, 2])], &[]);
        let mut m = Ct2Model::open(&write(dir.path(), &bytes)).unwrap();
        assert!(reason(m.read_f32("w").unwrap_err()).contains("w_scale"));
    }

    #[test]
    fn missing_empty_wrong_version_and_truncated_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = reason(Ct2Model::open(&dir.path().join("model.bin")).unwrap_err());
        assert!(missing.contains("does not exist"), "{missing}");

        let empty = reason(Ct2Model::open(&write(dir.path(), b"")).unwrap_err());
        assert!(empty.contains("empty"), "{empty}");

        let ggml = reason(Ct2Model::open(&write(dir.path(), b"lmgg\x01\x00\x00\x00")).unwrap_err());
        assert!(ggml.contains("binary version"), "{ggml}");

        let full = sample();
        // Every proper prefix is reported as truncated, never as a panic or a bare EOF.
        for cut in [2, 4, 7, 20, 40, full.len() / 2, full.len() - 1] {
            let msg = reason(Ct2Model::open(&write(dir.path(), &full[..cut])).unwrap_err());
            assert!(msg.contains("truncated"), "cut {cut}: {msg}");
        }
    }

    #[test]
    fn inconsistent_payload_size_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut var = RawVar::f32("a", &[2], &[1.0, 2.0]);
        var.shape = vec![3];
        let msg = reason(
            Ct2Model::open(&write(dir.path(), &serialize("WhisperSpec", &[var], &[]))).unwrap_err(),
        );
        assert!(msg.contains("invalid payload size"), "{msg}");
    }
}
