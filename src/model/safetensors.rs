//! Reading Hugging Face safetensors weights: one `model.safetensors`, or shards listed by
//! `model.safetensors.index.json`.
//!
//! A safetensors file is a little-endian `u64` header length, a JSON header
//! (`{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {…}}`, offsets
//! relative to the end of the header), then the data, row-major. A sharded checkpoint
//! adds an index, `{"weight_map": {name: shard file name}}`.
//!
//! [`SafetensorsModel::open`] reads only the headers and checks every tensor lies inside
//! its file; tensors are read on demand, a range of rows at a time, so converting a
//! model of several gigabytes never holds more than one slice of it in memory.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};

use half::{bf16, f16};

use crate::{Error, Result};

/// The single-file checkpoint's name.
pub const SINGLE_FILE: &str = "model.safetensors";
/// The index of a sharded checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// Headers larger than this are refused as damaged (real ones are well under 1 MB).
const MAX_HEADER: u64 = 100 << 20;

/// The element type of a safetensors tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SafeDType {
    /// 32-bit IEEE float (`F32`).
    F32,
    /// 16-bit IEEE float (`F16`).
    F16,
    /// bfloat16 (`BF16`).
    BF16,
}

impl SafeDType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "F32" => Self::F32,
            "F16" => Self::F16,
            "BF16" => Self::BF16,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn item_size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 | Self::BF16 => 2,
        }
    }

    /// The name PyTorch gives the type: `float32`, `float16` or `bfloat16`.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::F16 => "float16",
            Self::BF16 => "bfloat16",
        }
    }
}

/// One tensor of a safetensors checkpoint: where its data lies and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafeTensor {
    /// Its dimensions, outermost first (row-major); empty for a scalar.
    pub shape: Vec<usize>,
    /// Its element type.
    pub dtype: SafeDType,
    /// Which file of [`SafetensorsModel::files`] holds it.
    pub file: usize,
    /// Byte offset of its data in that file.
    pub offset: u64,
}

impl SafeTensor {
    /// Elements per row: the product of all dimensions but the first.
    pub fn row_len(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// Number of rows: the first dimension (1 for a scalar).
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }
}

/// An open safetensors checkpoint (one file or several shards): the headers in memory,
/// the data read on demand.
#[derive(Debug)]
pub struct SafetensorsModel {
    files: Vec<PathBuf>,
    readers: Vec<BufReader<File>>,
    tensors: BTreeMap<String, SafeTensor>,
    /// Tensors of a type this reader does not decode: name → dtype.
    unsupported: BTreeMap<String, String>,
}

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::BadHfModel { path: path.to_path_buf(), reason: reason.into() }
}

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io { path: path.to_path_buf(), source }
}

impl SafetensorsModel {
    /// Opens the checkpoint in `dir`: the shards `model.safetensors.index.json` lists, or
    /// else `model.safetensors`.
    ///
    /// Fails with [`Error::BadHfModel`] naming the file when neither exists, a shard the
    /// index names is missing, a tensor the index names is not in its shard, or a file
    /// is not safetensors (damaged header, a tensor outside the file, an unsupported
    /// element type).
    pub fn open_dir(dir: &Path) -> Result<Self> {
        let index = dir.join(INDEX_FILE);
        if index.is_file() {
            let text = std::fs::read_to_string(&index).map_err(|e| io_err(&index, e))?;
            let json: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| bad(&index, format!("{INDEX_FILE} is not valid JSON: {e}")))?;
            let map = json
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| bad(&index, format!("{INDEX_FILE} has no weight_map object")))?;
            let mut wanted: BTreeMap<String, String> = BTreeMap::new();
            for (name, shard) in map {
                let shard = shard.as_str().ok_or_else(|| {
                    bad(&index, format!("{INDEX_FILE}: the shard of {name} is not a file name"))
                })?;
                if shard.contains('/') || shard.contains('\\') || shard.starts_with('.') {
                    return Err(bad(
                        &index,
                        format!("{INDEX_FILE}: shard {shard:?} is not a file in this folder"),
                    ));
                }
                wanted.insert(name.clone(), shard.to_owned());
            }
            let shards: BTreeSet<&String> = wanted.values().collect();
            if shards.is_empty() {
                return Err(bad(&index, format!("{INDEX_FILE} lists no tensors")));
            }
            let mut paths = Vec::new();
            for shard in &shards {
                let path = dir.join(shard);
                if !path.is_file() {
                    return Err(bad(
                        dir,
                        format!("the shard {shard} (listed in {INDEX_FILE}) is missing"),
                    ));
                }
                paths.push(path);
            }
            let model = Self::open(&paths)?;
            for (name, shard) in &wanted {
                let in_shard = model
                    .tensors
                    .get(name)
                    .is_some_and(|t| model.files[t.file].file_name() == Some(shard.as_ref()));
                if !in_shard {
                    return Err(bad(
                        &dir.join(shard),
                        format!(
                            "{INDEX_FILE} places {name} in {shard}, but {shard} has no such tensor"
                        ),
                    ));
                }
            }
            Ok(model)
        } else if dir.join(SINGLE_FILE).is_file() {
            Self::open(&[dir.join(SINGLE_FILE)])
        } else {
            Err(bad(
                dir,
                format!("the folder has no {SINGLE_FILE} (or {INDEX_FILE} and its shards)"),
            ))
        }
    }

    /// Opens these safetensors files as one checkpoint. A tensor name may appear once.
    pub fn open(files: &[PathBuf]) -> Result<Self> {
        let mut readers = Vec::with_capacity(files.len());
        let mut tensors = BTreeMap::new();
        let mut unsupported = BTreeMap::new();
        for (i, path) in files.iter().enumerate() {
            let (reader, found, skipped) = read_header(path, i)?;
            unsupported.extend(skipped);
            for (name, t) in found {
                if let Some(other) = tensors.insert(name.clone(), t) {
                    return Err(bad(
                        path,
                        format!(
                            "tensor {name} is also in {}",
                            files[other.file].file_name().unwrap_or_default().to_string_lossy()
                        ),
                    ));
                }
            }
            readers.push(reader);
        }
        Ok(Self { files: files.to_vec(), readers, tensors, unsupported })
    }

    /// The files of the checkpoint.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Every tensor, by name.
    pub fn tensors(&self) -> &BTreeMap<String, SafeTensor> {
        &self.tensors
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&SafeTensor> {
        self.tensors.get(name)
    }

    /// Why `name` cannot be read: it is absent, or of a type other than F32, F16, BF16.
    pub fn missing(&self, name: &str) -> Error {
        match self.unsupported.get(name) {
            Some(dtype) => bad(
                self.path_of(name),
                format!("tensor {name} is {dtype}; only F32, F16 and BF16 weights are read"),
            ),
            // Absent from every shard: name the folder, not one of the shards.
            None if self.files.len() > 1 => bad(
                self.files[0].parent().unwrap_or(Path::new(".")),
                format!("tensor {name} is missing from every shard"),
            ),
            None => bad(&self.files[0], format!("tensor {name} is missing")),
        }
    }

    /// The file that holds `name` (the first file if none does), for error messages.
    pub fn path_of(&self, name: &str) -> &Path {
        let i = self.get(name).map_or(0, |t| t.file);
        &self.files[i]
    }

    /// Reads rows `rows` (a range over the first dimension) of `name` as `f32`.
    pub fn read_rows_f32(&mut self, name: &str, rows: Range<usize>) -> Result<Vec<f32>> {
        let t = self.get(name).cloned().ok_or_else(|| self.missing(name))?;
        let path = self.files[t.file].clone();
        if rows.start > rows.end || rows.end > t.rows() {
            return Err(bad(
                &path,
                format!("rows {rows:?} are outside tensor {name} of shape {:?}", t.shape),
            ));
        }
        let row_bytes = (t.row_len() * t.dtype.item_size()) as u64;
        let start = t.offset + rows.start as u64 * row_bytes;
        let mut bytes = vec![0u8; (rows.len() as u64 * row_bytes) as usize];
        let reader = &mut self.readers[t.file];
        reader.seek(SeekFrom::Start(start)).map_err(|e| io_err(&path, e))?;
        reader.read_exact(&mut bytes).map_err(|e| io_err(&path, e))?;
        Ok(decode(t.dtype, &bytes))
    }
}

fn decode(dtype: SafeDType, bytes: &[u8]) -> Vec<f32> {
    match dtype {
        SafeDType::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect(),
        SafeDType::F16 => {
            bytes.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect()
        }
        SafeDType::BF16 => {
            bytes.chunks_exact(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect()
        }
    }
}

type Header = (BufReader<File>, Vec<(String, SafeTensor)>, Vec<(String, String)>);

/// Reads and checks the header of `path`, the `index`-th file of a checkpoint.
fn read_header(path: &Path, index: usize) -> Result<Header> {
    let file = File::open(path).map_err(|e| io_err(path, e))?;
    let len = file.metadata().map_err(|e| io_err(path, e))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let not_st = |reason: String| bad(path, format!("not a safetensors file: {reason}"));
    if len < 8 {
        return Err(not_st(format!("{len} bytes, shorter than its length prefix")));
    }
    let mut prefix = [0u8; 8];
    reader.read_exact(&mut prefix).map_err(|e| io_err(path, e))?;
    let header_len = u64::from_le_bytes(prefix);
    let data_start = 8u64
        .checked_add(header_len)
        .filter(|&end| end <= len && header_len <= MAX_HEADER)
        .ok_or_else(|| not_st(format!("its header claims {header_len} bytes of {len}")))?;
    let mut header = vec![0u8; header_len as usize];
    reader.read_exact(&mut header).map_err(|e| io_err(path, e))?;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| not_st(format!("its header is not a JSON object ({e})")))?;
    let data_len = len - data_start;
    let mut tensors = Vec::with_capacity(header.len());
    let mut skipped = Vec::new();
    for (name, entry) in header {
        if name == "__metadata__" {
            continue;
        }
        let field = |key: &str| {
            entry.get(key).ok_or_else(|| not_st(format!("tensor {name:?} has no {key}")))
        };
        let dtype_name = field("dtype")?.as_str().unwrap_or_default().to_owned();
        let shape: Option<Vec<usize>> = field("shape")?
            .as_array()
            .and_then(|a| a.iter().map(|v| v.as_u64().map(|v| v as usize)).collect());
        let offsets: Option<Vec<u64>> =
            field("data_offsets")?.as_array().and_then(|a| a.iter().map(|v| v.as_u64()).collect());
        let (Some(shape), Some([begin, end])) = (shape, offsets.as_deref()) else {
            return Err(not_st(format!("tensor {name:?} has a malformed shape or data_offsets")));
        };
        let (begin, end) = (*begin, *end);
        if begin > end || end > data_len {
            return Err(bad(
                path,
                format!(
                    "tensor {name} lies at {begin}..{end}, outside the {data_len} data bytes \
                     (the file is truncated or damaged)"
                ),
            ));
        }
        let Some(dtype) = SafeDType::parse(&dtype_name) else {
            // Whisper holds only float weights; other tensors are refused only if used.
            if dtype_name.is_empty() {
                return Err(not_st(format!("tensor {name:?} has no dtype")));
            }
            skipped.push((name, dtype_name));
            continue;
        };
        let bytes = shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
            .and_then(|n| n.checked_mul(dtype.item_size() as u64));
        if bytes != Some(end - begin) {
            return Err(not_st(format!(
                "tensor {name:?} has shape {shape:?} but {} bytes of {dtype_name}",
                end - begin
            )));
        }
        tensors.push((name, SafeTensor { shape, dtype, file: index, offset: data_start + begin }));
    }
    Ok((reader, tensors, skipped))
}

/// Writes a safetensors file: the inverse of the reader, for tests and tools. Tensors
/// are written in the order given, each as `dtype`, from `f32` values.
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, Vec<usize>, SafeDType, Vec<f32>)],
) -> Result<()> {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, shape, dtype, values) in tensors {
        let begin = data.len();
        for &v in values {
            match dtype {
                SafeDType::F32 => data.extend_from_slice(&v.to_le_bytes()),
                SafeDType::F16 => data.extend_from_slice(&f16::from_f32(v).to_le_bytes()),
                SafeDType::BF16 => data.extend_from_slice(&bf16::from_f32(v).to_le_bytes()),
            }
        }
        let dtype = match dtype {
            SafeDType::F32 => "F32",
            SafeDType::F16 => "F16",
            SafeDType::BF16 => "BF16",
        };
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [begin, data.len()]}),
        );
    }
    header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
    let mut json = serde_json::to_vec(&header).expect("a JSON map serializes");
    // The format pads the header with spaces to 8 bytes.
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + json.len() + data.len());
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&data);
    std::fs::write(path, out).map_err(|e| io_err(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dir: &Path) -> PathBuf {
        let path = dir.join(SINGLE_FILE);
        write_safetensors(
            &path,
            &[
                ("a".into(), vec![2, 3], SafeDType::F32, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
                ("b".into(), vec![3], SafeDType::F16, vec![0.5, -1.0, 2.0]),
                ("c".into(), vec![2, 2], SafeDType::BF16, vec![1.0, 2.0, -3.0, 4.0]),
            ],
        )
        .unwrap();
        path
    }

    #[test]
    fn reads_rows_of_every_float_type() {
        let dir = tempfile::tempdir().unwrap();
        sample(dir.path());
        let mut m = SafetensorsModel::open_dir(dir.path()).unwrap();
        assert_eq!(m.get("a").unwrap().shape, [2, 3]);
        assert_eq!(m.read_rows_f32("a", 1..2).unwrap(), [4.0, 5.0, 6.0]);
        assert_eq!(m.read_rows_f32("b", 0..3).unwrap(), [0.5, -1.0, 2.0]);
        assert_eq!(m.read_rows_f32("c", 0..2).unwrap(), [1.0, 2.0, -3.0, 4.0]);
        assert_eq!(m.get("c").unwrap().dtype.name(), "bfloat16");
        assert!(m.read_rows_f32("a", 1..3).unwrap_err().to_string().contains("outside"));
        assert!(m.read_rows_f32("zz", 0..1).unwrap_err().to_string().contains("zz is missing"));
    }

    #[test]
    fn shards_are_joined_and_checked_against_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let one = vec![("x".to_string(), vec![2], SafeDType::F32, vec![1.0, 2.0])];
        let two = vec![("y".to_string(), vec![1], SafeDType::F16, vec![3.0])];
        write_safetensors(&d.join("model-00001-of-00002.safetensors"), &one).unwrap();
        write_safetensors(&d.join("model-00002-of-00002.safetensors"), &two).unwrap();
        let index = |y: &str| {
            format!(
                r#"{{"metadata": {{"total_size": 10}}, "weight_map": {{"x": "model-00001-of-00002.safetensors", "y": "{y}"}}}}"#
            )
        };
        std::fs::write(d.join(INDEX_FILE), index("model-00002-of-00002.safetensors")).unwrap();
        let mut m = SafetensorsModel::open_dir(d).unwrap();
        assert_eq!(m.files().len(), 2);
        assert_eq!(m.read_rows_f32("y", 0..1).unwrap(), [3.0]);
        assert_eq!(m.read_rows_f32("x", 0..2).unwrap(), [1.0, 2.0]);

        std::fs::write(d.join(INDEX_FILE), index("model-00001-of-00002.safetensors")).unwrap();
        let e = SafetensorsModel::open_dir(d).unwrap_err().to_string();
        assert!(e.contains("places y in model-00001-of-00002.safetensors"), "{e}");
        std::fs::remove_file(d.join("model-00002-of-00002.safetensors")).unwrap();
        std::fs::write(d.join(INDEX_FILE), index("model-00002-of-00002.safetensors")).unwrap();
        let e = SafetensorsModel::open_dir(d).unwrap_err().to_string();
        assert!(e.contains("shard model-00002-of-00002.safetensors"), "{e}");
        assert!(e.contains("missing"), "{e}");
    }

    #[test]
    fn damaged_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = SafetensorsModel::open_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("no model.safetensors"), "{e}");
        let path = sample(dir.path());
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let e = SafetensorsModel::open_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        std::fs::write(&path, b"abc").unwrap();
        let e = SafetensorsModel::open_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not a safetensors file"), "{e}");
        std::fs::write(&path, [&9999u64.to_le_bytes()[..], b"{}"].concat()).unwrap();
        let e = SafetensorsModel::open_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("header claims"), "{e}");
    }
}
