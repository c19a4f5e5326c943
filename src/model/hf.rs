//! Reading a Hugging Face transformers Whisper folder, for [`super::import_transformers`].
//!
//! Most Cantonese fine-tunes (such as `alvanlii/whisper-small-cantonese`) are published
//! only this way. The folder holds:
//!
//! - `config.json`: `d_model`, `encoder_layers`, `decoder_layers`,
//!   `encoder_attention_heads`, `decoder_attention_heads`, `num_mel_bins`, `vocab_size`,
//!   `max_source_positions`, `max_target_positions`;
//! - the weights: `model.safetensors`, or shards (`model-00001-of-00002.safetensors`, …)
//!   listed by `model.safetensors.index.json`, in F32, F16 or BF16
//!   ([`super::safetensors`]); PyTorch's pickled `pytorch_model.bin` is not read;
//! - the vocabulary: `vocab.json` (GPT-2 byte-level BPE strings → ids) with
//!   `added_tokens.json` (special tokens → ids), or `tokenizer.json`, which holds both.
//!
//! The tensor names map onto whisper.cpp's (OpenAI's) as whisper.cpp's own
//! `models/convert-h5-to-ggml.py` maps them (`{m}` is `model.` in
//! `WhisperForConditionalGeneration` checkpoints, empty in bare `WhisperModel` ones):
//!
//! | ggml (OpenAI) name                          | transformers tensor                               |
//! |---------------------------------------------|---------------------------------------------------|
//! | `encoder.positional_embedding`              | `{m}encoder.embed_positions.weight` (or sinusoids) |
//! | `encoder.conv{1,2}.{weight,bias}`           | `{m}encoder.conv{1,2}.{weight,bias}`              |
//! | `{enc}.blocks.N.attn.{query,key,value,out}` | `{m}{enc}.layers.N.self_attn.{q,k,v,out}_proj`    |
//! | `{enc}.blocks.N.attn_ln`                    | `{m}{enc}.layers.N.self_attn_layer_norm`          |
//! | `decoder.blocks.N.cross_attn.{…}`           | `{m}decoder.layers.N.encoder_attn.{q,k,v,out}_proj` |
//! | `decoder.blocks.N.cross_attn_ln`            | `{m}decoder.layers.N.encoder_attn_layer_norm`     |
//! | `{enc}.blocks.N.mlp.{0,2}`                  | `{m}{enc}.layers.N.fc{1,2}`                       |
//! | `{enc}.blocks.N.mlp_ln`                     | `{m}{enc}.layers.N.final_layer_norm`              |
//! | `encoder.ln_post` / `decoder.ln`            | `{m}encoder.layer_norm` / `{m}decoder.layer_norm` |
//! | `decoder.positional_embedding`              | `{m}decoder.embed_positions.weight`               |
//! | `decoder.token_embedding.weight`            | `{m}decoder.embed_tokens.weight`                  |
//!
//! `proj_out.weight` is tied to the token embedding and skipped, as whisper.cpp's
//! converter does. Whisper's key projections have no bias; a checkpoint that carries
//! one anyway loses nothing when it is dropped (it adds the same amount to every
//! attention score of a query). Storage types are as for CTranslate2 imports, so the
//! same weights give the same ggml file whichever form they come in.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::import::{Hparams, Planned, Planner, Source, Store, Weights, WHISPER_AUDIO_CTX};
use super::safetensors::{SafetensorsModel, INDEX_FILE, SINGLE_FILE};
use super::tokens::{Vocabulary, END_OF_TEXT};
use crate::{Error, Result};

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::BadHfModel { path: path.to_path_buf(), reason: reason.into() }
}

impl Weights for SafetensorsModel {
    fn shape(&self, name: &str) -> Option<&[usize]> {
        self.get(name).map(|t| t.shape.as_slice())
    }

    fn missing(&self, name: &str) -> Error {
        SafetensorsModel::missing(self, name)
    }

    fn bad(&self, name: &str, reason: String) -> Error {
        bad(self.path_of(name), reason)
    }

    fn read_rows_f32(&mut self, name: &str, rows: Range<usize>) -> Result<Vec<f32>> {
        SafetensorsModel::read_rows_f32(self, name, rows)
    }
}

/// The fields of `config.json` the importer uses.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Config {
    d_model: usize,
    encoder_layers: usize,
    decoder_layers: usize,
    encoder_attention_heads: usize,
    decoder_attention_heads: usize,
    num_mel_bins: usize,
    vocab_size: usize,
    max_source_positions: usize,
    max_target_positions: usize,
}

fn read_config(path: &Path) -> Result<Config> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::Io { path: path.into(), source: e })?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| bad(path, format!("config.json is not valid JSON: {e}")))?;
    if !json.is_object() {
        return Err(bad(path, "config.json is not a JSON object"));
    }
    if let Some(kind) = json.get("model_type").and_then(|v| v.as_str()) {
        if kind != "whisper" {
            return Err(bad(path, format!("config.json describes a {kind} model, not whisper")));
        }
    }
    let field = |name: &str| -> Result<usize> {
        let v = json.get(name).ok_or_else(|| bad(path, format!("config.json has no {name}")))?;
        v.as_u64()
            .filter(|&n| n > 0)
            .map(|n| n as usize)
            .ok_or_else(|| bad(path, format!("config.json: {name} is {v}, not a positive integer")))
    };
    // Older configs lack max_source_positions; Whisper's encoder always has 1500.
    let max_source_positions = match json.get("max_source_positions") {
        Some(_) => field("max_source_positions")?,
        None => WHISPER_AUDIO_CTX,
    };
    Ok(Config {
        d_model: field("d_model")?,
        encoder_layers: field("encoder_layers")?,
        decoder_layers: field("decoder_layers")?,
        encoder_attention_heads: field("encoder_attention_heads")?,
        decoder_attention_heads: field("decoder_attention_heads")?,
        num_mel_bins: field("num_mel_bins")?,
        vocab_size: field("vocab_size")?,
        max_source_positions,
        max_target_positions: field("max_target_positions")?,
    })
}

/// Reads a `{token: id}` JSON map.
fn read_token_map(path: &Path) -> Result<BTreeMap<String, u64>> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => bad(path, "the file is not UTF-8 text"),
        _ => Error::Io { path: path.into(), source: e },
    })?;
    let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
    serde_json::from_str(&text)
        .map_err(|e| bad(path, format!("{name} is not a JSON map of tokens to ids: {e}")))
}

/// The vocabulary as token strings by id, from `vocab.json` + `added_tokens.json`, or
/// `tokenizer.json` (its `model.vocab` and `added_tokens`), with the file to blame.
fn read_vocabulary(dir: &Path) -> Result<(Vocabulary, PathBuf)> {
    let vocab_json = dir.join("vocab.json");
    let tokenizer_json = dir.join("tokenizer.json");
    let mut by_id: BTreeMap<u64, (String, &'static str)> = BTreeMap::new();
    let mut add = |token: String, id: u64, file: &'static str| -> Result<()> {
        match by_id.get(&id) {
            Some((other, other_file)) if *other != token => Err(bad(
                dir,
                format!("token id {id} is {other:?} in {other_file} but {token:?} in {file}"),
            )),
            _ => {
                by_id.insert(id, (token, file));
                Ok(())
            }
        }
    };
    let blame;
    if vocab_json.is_file() {
        blame = vocab_json.clone();
        for (token, id) in read_token_map(&vocab_json)? {
            add(token, id, "vocab.json")?;
        }
    } else if tokenizer_json.is_file() {
        blame = tokenizer_json.clone();
    } else {
        return Err(bad(dir, "the folder has no vocab.json (or tokenizer.json)"));
    }
    if tokenizer_json.is_file() {
        let text = std::fs::read_to_string(&tokenizer_json)
            .map_err(|e| Error::Io { path: tokenizer_json.clone(), source: e })?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| bad(&tokenizer_json, format!("tokenizer.json is not valid JSON: {e}")))?;
        if !vocab_json.is_file() {
            let vocab =
                json.pointer("/model/vocab").and_then(|v| v.as_object()).ok_or_else(|| {
                    bad(
                        &tokenizer_json,
                        "tokenizer.json has no model.vocab map (and there is no vocab.json)",
                    )
                })?;
            for (token, id) in vocab {
                let id = id.as_u64().ok_or_else(|| {
                    bad(&tokenizer_json, format!("tokenizer.json: the id of {token:?} is {id}"))
                })?;
                add(token.clone(), id, "tokenizer.json")?;
            }
        }
        for entry in json.get("added_tokens").and_then(|a| a.as_array()).into_iter().flatten() {
            if let (Some(id), Some(token)) = (
                entry.get("id").and_then(|v| v.as_u64()),
                entry.get("content").and_then(|v| v.as_str()),
            ) {
                add(token.to_owned(), id, "tokenizer.json")?;
            }
        }
    }
    let added = dir.join("added_tokens.json");
    if added.is_file() {
        for (token, id) in read_token_map(&added)? {
            add(token, id, "added_tokens.json")?;
        }
    }
    let Some((&eot, _)) = by_id.iter().find(|(_, (t, _))| t == END_OF_TEXT) else {
        return Err(bad(
            &blame,
            format!("the vocabulary (with added_tokens.json) has no {END_OF_TEXT} token"),
        ));
    };
    // Ids up to <|endoftext|> must all be there; later ones (specials, timestamps) are
    // whisper.cpp's own and may be absent.
    let mut tokens = Vec::with_capacity(eot as usize + 1);
    for id in 0..=eot {
        match by_id.remove(&id) {
            Some((t, _)) => tokens.push(t),
            None => {
                return Err(bad(
                    &blame,
                    format!("token id {id} is in neither the vocabulary nor the added tokens"),
                ))
            }
        }
    }
    if let Some((&last, _)) = by_id.last_key_value() {
        // Kept only to check it fits the embedding below.
        tokens.resize(last as usize + 1, String::new());
    }
    Ok((Vocabulary { tokens }, blame))
}

/// Counts `{prefix}.layers.N.` layers in the checkpoint.
fn count_layers(model: &SafetensorsModel, prefix: &str) -> usize {
    let lead = format!("{prefix}.layers.");
    model
        .tensors()
        .keys()
        .filter_map(|n| n.strip_prefix(&lead)?.split('.').next()?.parse::<usize>().ok())
        .map(|i| i + 1)
        .max()
        .unwrap_or(0)
}

/// Opens and checks the transformers Whisper folder `dir`, planning its conversion.
pub(super) fn open(dir: &Path) -> Result<Source> {
    if !dir.is_dir() {
        return Err(bad(dir, "not a folder; give the folder that holds config.json"));
    }
    let config_path = dir.join("config.json");
    if !config_path.is_file() {
        return Err(bad(dir, "the folder has no config.json"));
    }
    let has_weights = dir.join(SINGLE_FILE).is_file() || dir.join(INDEX_FILE).is_file();
    if !has_weights && dir.join("pytorch_model.bin").is_file() {
        return Err(bad(
            dir,
            "the weights are only in pytorch_model.bin (PyTorch pickle), which cantocap does \
             not read; use the model's model.safetensors (Hugging Face offers it for most \
             models, or save with save_pretrained(..., safe_serialization=True))",
        ));
    }
    let cfg = read_config(&config_path)?;
    let model = SafetensorsModel::open_dir(dir)?;

    let m = if model.get("model.encoder.conv1.weight").is_some() {
        "model."
    } else if model.get("encoder.conv1.weight").is_some() {
        ""
    } else {
        return Err(model.missing("model.encoder.conv1.weight"));
    };
    let embed_name = format!("{m}decoder.embed_tokens.weight");
    let embed = model.get(&embed_name).ok_or_else(|| model.missing(&embed_name))?.clone();
    let [n_vocab, n_state] = embed.shape[..] else {
        return Err(Weights::bad(
            &model,
            &embed_name,
            format!("{embed_name} has shape {:?}, expected rank 2", embed.shape),
        ));
    };
    let cfg_err = |reason: String| bad(&config_path, reason);
    if n_state != cfg.d_model {
        return Err(cfg_err(format!(
            "d_model is {}, but {embed_name} is {n_state} wide",
            cfg.d_model
        )));
    }
    if n_vocab != cfg.vocab_size {
        return Err(cfg_err(format!(
            "vocab_size is {}, but {embed_name} has {n_vocab} rows",
            cfg.vocab_size
        )));
    }
    for (side, layers) in [("encoder", cfg.encoder_layers), ("decoder", cfg.decoder_layers)] {
        let found = count_layers(&model, &format!("{m}{side}"));
        if found > layers {
            return Err(cfg_err(format!(
                "{side}_layers is {layers}, but the weights have {found} {side} layers"
            )));
        }
    }
    for (what, heads) in
        [("encoder", cfg.encoder_attention_heads), ("decoder", cfg.decoder_attention_heads)]
    {
        if n_state % heads != 0 {
            return Err(cfg_err(format!(
                "{what}_attention_heads ({heads}) does not divide d_model ({n_state})"
            )));
        }
    }
    let hp = Hparams {
        n_vocab,
        n_audio_ctx: cfg.max_source_positions,
        n_state,
        n_audio_head: cfg.encoder_attention_heads,
        n_audio_layer: cfg.encoder_layers,
        n_text_ctx: cfg.max_target_positions,
        n_text_head: cfg.decoder_attention_heads,
        n_text_layer: cfg.decoder_layers,
        n_mels: cfg.num_mel_bins,
    };

    let (vocab, vocab_path) = read_vocabulary(dir)?;
    if vocab.len() > n_vocab {
        return Err(bad(
            &vocab_path,
            format!(
                "the vocabulary has token ids up to {}, but {embed_name} has only {n_vocab} rows",
                vocab.len() - 1
            ),
        ));
    }
    super::import::check_end_of_text(&vocab, n_vocab).map_err(|r| bad(&vocab_path, r))?;
    let tokens = vocab.text_token_bytes().map_err(|r| bad(&vocab_path, r))?;

    let plan = plan(&model, &hp, m)?;
    let source_dtype = embed.dtype.name().to_owned();
    Ok(Source { weights: Box::new(model), hp, tokens, source_dtype, plan })
}

/// The tensors whisper.cpp expects, in the order of the CTranslate2 plan (OpenAI's).
fn plan(model: &SafetensorsModel, hp: &Hparams, m: &str) -> Result<Vec<Planned>> {
    let d = hp.n_state;
    let mut p = Planner { model, d, plan: Vec::new() };
    let linear = |p: &mut Planner, name: &str, hf: &str, out: usize, inp: usize, bias: bool| {
        p.whole(format!("{name}.weight"), format!("{hf}.weight"), &[out, inp], Store::Weight)?;
        if bias {
            p.whole(format!("{name}.bias"), format!("{hf}.bias"), &[out], Store::F32)?;
        }
        Ok::<(), Error>(())
    };
    let norm = |p: &mut Planner, name: &str, hf: &str| {
        p.whole(format!("{name}.weight"), format!("{hf}.weight"), &[d], Store::F32)?;
        p.whole(format!("{name}.bias"), format!("{hf}.bias"), &[d], Store::F32)
    };
    // q (with bias), k (none), v (with bias), out; then the layer norm.
    let attention = |p: &mut Planner, ggml: &str, hf: &str, ln: &str, hf_ln: &str| {
        linear(p, &format!("{ggml}.query"), &format!("{hf}.q_proj"), d, d, true)?;
        linear(p, &format!("{ggml}.key"), &format!("{hf}.k_proj"), d, d, false)?;
        linear(p, &format!("{ggml}.value"), &format!("{hf}.v_proj"), d, d, true)?;
        linear(p, &format!("{ggml}.out"), &format!("{hf}.out_proj"), d, d, true)?;
        norm(p, ln, hf_ln)
    };
    // whisper.cpp hard-codes the MLP width as 4 × n_state.
    let mlp = |p: &mut Planner, blk: &str, layer: &str| {
        linear(p, &format!("{blk}.mlp.0"), &format!("{layer}.fc1"), 4 * d, d, true)?;
        linear(p, &format!("{blk}.mlp.2"), &format!("{layer}.fc2"), d, 4 * d, true)?;
        norm(p, &format!("{blk}.mlp_ln"), &format!("{layer}.final_layer_norm"))
    };

    p.encoder_front(hp, &format!("{m}encoder.embed_positions.weight"), |conv, part| {
        format!("{m}encoder.{conv}.{part}")
    })?;
    for i in 0..hp.n_audio_layer {
        let (blk, layer) = (format!("encoder.blocks.{i}"), format!("{m}encoder.layers.{i}"));
        attention(
            &mut p,
            &format!("{blk}.attn"),
            &format!("{layer}.self_attn"),
            &format!("{blk}.attn_ln"),
            &format!("{layer}.self_attn_layer_norm"),
        )?;
        mlp(&mut p, &blk, &layer)?;
    }
    norm(&mut p, "encoder.ln_post", &format!("{m}encoder.layer_norm"))?;
    p.whole(
        "decoder.positional_embedding".into(),
        format!("{m}decoder.embed_positions.weight"),
        &[hp.n_text_ctx, d],
        Store::F32,
    )?;
    p.whole(
        "decoder.token_embedding.weight".into(),
        format!("{m}decoder.embed_tokens.weight"),
        &[hp.n_vocab, d],
        Store::Weight,
    )?;
    for i in 0..hp.n_text_layer {
        let (blk, layer) = (format!("decoder.blocks.{i}"), format!("{m}decoder.layers.{i}"));
        attention(
            &mut p,
            &format!("{blk}.attn"),
            &format!("{layer}.self_attn"),
            &format!("{blk}.attn_ln"),
            &format!("{layer}.self_attn_layer_norm"),
        )?;
        attention(
            &mut p,
            &format!("{blk}.cross_attn"),
            &format!("{layer}.encoder_attn"),
            &format!("{blk}.cross_attn_ln"),
            &format!("{layer}.encoder_attn_layer_norm"),
        )?;
        mlp(&mut p, &blk, &layer)?;
    }
    norm(&mut p, "decoder.ln", &format!("{m}decoder.layer_norm"))?;
    Ok(p.plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ggml::{read_ggml_info, read_ggml_tensor};
    use crate::model::import::{import_model, import_transformers, ModelKind, Quantize};
    use crate::model::safetensors::{write_safetensors, SafeDType};
    use crate::model::tokens::encode_bytes;

    const D: usize = 64;
    const N_VOCAB: usize = 51865;

    fn ramp(base: f32, n: usize) -> Vec<f32> {
        (0..n).map(|i| base + ((i * 7) % 61) as f32 / 64.0).collect()
    }

    /// A one-layer Whisper (d = 64, one head) in transformers' layout, `prefix` before
    /// every name, each tensor with its own base value.
    fn tensors(prefix: &str) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let mut t = Vec::new();
        let mut base = 0.0;
        let mut add = |name: String, shape: Vec<usize>| {
            base += 0.25;
            let n = shape.iter().product();
            t.push((format!("{prefix}{name}"), shape, ramp(base, n)));
        };
        add("encoder.conv1.weight".into(), vec![D, 80, 3]);
        add("encoder.conv1.bias".into(), vec![D]);
        add("encoder.conv2.weight".into(), vec![D, D, 3]);
        add("encoder.conv2.bias".into(), vec![D]);
        add("encoder.embed_positions.weight".into(), vec![1500, D]);
        add("decoder.embed_positions.weight".into(), vec![448, D]);
        add("decoder.embed_tokens.weight".into(), vec![N_VOCAB, D]);
        for side in ["encoder", "decoder"] {
            let l = format!("{side}.layers.0");
            let attns: &[&str] =
                if side == "encoder" { &["self_attn"] } else { &["self_attn", "encoder_attn"] };
            for a in attns {
                for p in ["q_proj", "v_proj", "out_proj"] {
                    add(format!("{l}.{a}.{p}.weight"), vec![D, D]);
                    add(format!("{l}.{a}.{p}.bias"), vec![D]);
                }
                add(format!("{l}.{a}.k_proj.weight"), vec![D, D]);
                add(format!("{l}.{a}_layer_norm.weight"), vec![D]);
                add(format!("{l}.{a}_layer_norm.bias"), vec![D]);
            }
            add(format!("{l}.fc1.weight"), vec![4 * D, D]);
            add(format!("{l}.fc1.bias"), vec![4 * D]);
            add(format!("{l}.fc2.weight"), vec![D, 4 * D]);
            add(format!("{l}.fc2.bias"), vec![D]);
            add(format!("{l}.final_layer_norm.weight"), vec![D]);
            add(format!("{l}.final_layer_norm.bias"), vec![D]);
            add(format!("{side}.layer_norm.weight"), vec![D]);
            add(format!("{side}.layer_norm.bias"), vec![D]);
        }
        t
    }

    fn config() -> serde_json::Value {
        serde_json::json!({
            "model_type": "whisper", "d_model": D, "encoder_layers": 1, "decoder_layers": 1,
            "encoder_attention_heads": 1, "decoder_attention_heads": 1, "num_mel_bins": 80,
            "vocab_size": N_VOCAB, "max_source_positions": 1500, "max_target_positions": 448,
        })
    }

    /// Writes the synthetic model into `dir`; `edit` may change the tensors first.
    fn write(
        dir: &Path,
        prefix: &str,
        dtype: SafeDType,
        edit: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>),
    ) {
        let mut t = tensors(prefix);
        edit(&mut t);
        let typed: Vec<_> = t.into_iter().map(|(n, s, v)| (n, s, dtype, v)).collect();
        write_safetensors(&dir.join("model.safetensors"), &typed).unwrap();
        std::fs::write(dir.join("config.json"), config().to_string()).unwrap();
        let mut vocab = serde_json::Map::new();
        for i in 0..50257usize {
            let token = match i {
                0 => encode_bytes(b" hello"),
                1 => encode_bytes("場".as_bytes()),
                50256 => String::new(),
                _ => format!("t{i}"),
            };
            vocab.insert(token, i.into());
        }
        vocab.insert(END_OF_TEXT.into(), 50257.into());
        std::fs::write(dir.join("vocab.json"), serde_json::Value::Object(vocab).to_string())
            .unwrap();
        std::fs::write(dir.join("added_tokens.json"), r#"{"<|startoftranscript|>": 50258}"#)
            .unwrap();
    }

    fn import_err(setup: impl FnOnce(&Path)) -> String {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "model.", SafeDType::F16, |_| {});
        setup(dir.path());
        let out = dir.path().join("out.bin");
        let e = import_transformers(dir.path(), &out, Quantize::F16).unwrap_err();
        assert!(!out.exists(), "no output may be left behind");
        match e {
            Error::BadHfModel { .. } => e.to_string(),
            other => panic!("expected BadHfModel, got {other:?}"),
        }
    }

    #[test]
    fn maps_transformers_names_onto_whisper_cpps() {
        let dir = tempfile::tempdir().unwrap();
        // Bare WhisperModel names (no "model." prefix), bfloat16 weights.
        write(dir.path(), "", SafeDType::BF16, |_| {});
        assert_eq!(ModelKind::detect(dir.path()).unwrap(), ModelKind::Transformers);
        let out = dir.path().join("out.bin");
        let report = import_model(dir.path(), &out, Quantize::F16).unwrap();
        assert_eq!(report.source_dtype, "bfloat16");
        assert_eq!((report.n_audio_layer, report.n_text_layer, report.n_mels), (1, 1, 80));
        assert_eq!(report.tokens_written, 50257);
        let info = read_ggml_info(&out).unwrap();
        assert_eq!(info.tokens[0], b" hello");
        assert_eq!(info.tokens[1], "場".as_bytes());
        assert_eq!(report.tensors, 7 + 15 + 4 + 24);
        assert!(!info.tensors.iter().any(|t| t.name.contains("key.bias")));
        let want: BTreeMap<String, Vec<f32>> = tensors("")
            .into_iter()
            .map(|(n, _, v)| {
                // What bfloat16 keeps of each value.
                (n, v.iter().map(|&x| half::bf16::from_f32(x).to_f32()).collect())
            })
            .collect();
        for (ggml, hf) in [
            ("encoder.blocks.0.attn.query.weight", "encoder.layers.0.self_attn.q_proj.weight"),
            ("encoder.blocks.0.attn.key.weight", "encoder.layers.0.self_attn.k_proj.weight"),
            ("encoder.blocks.0.attn.value.bias", "encoder.layers.0.self_attn.v_proj.bias"),
            (
                "decoder.blocks.0.cross_attn.key.weight",
                "decoder.layers.0.encoder_attn.k_proj.weight",
            ),
            ("decoder.blocks.0.cross_attn.out.bias", "decoder.layers.0.encoder_attn.out_proj.bias"),
            (
                "decoder.blocks.0.cross_attn_ln.weight",
                "decoder.layers.0.encoder_attn_layer_norm.weight",
            ),
            ("decoder.blocks.0.mlp.2.weight", "decoder.layers.0.fc2.weight"),
            ("decoder.blocks.0.mlp_ln.bias", "decoder.layers.0.final_layer_norm.bias"),
            ("encoder.ln_post.weight", "encoder.layer_norm.weight"),
            ("decoder.ln.bias", "decoder.layer_norm.bias"),
            ("encoder.conv1.bias", "encoder.conv1.bias"),
            ("decoder.positional_embedding", "decoder.embed_positions.weight"),
            ("encoder.positional_embedding", "encoder.embed_positions.weight"),
        ] {
            let t = info.tensor(ggml).unwrap();
            assert_eq!(read_ggml_tensor(&out, t).unwrap(), want[hf], "{ggml}");
        }
        assert_eq!(info.tensor("encoder.conv1.bias").unwrap().ne, [1, D]);
    }

    #[test]
    fn missing_or_wrong_files_fields_and_tensors_are_named() {
        let msg = import_err(|d| std::fs::remove_file(d.join("config.json")).unwrap());
        assert!(msg.contains("no config.json"), "{msg}");
        let msg = import_err(|d| {
            let mut c = config();
            c.as_object_mut().unwrap().remove("d_model");
            std::fs::write(d.join("config.json"), c.to_string()).unwrap();
        });
        assert!(msg.contains("config.json has no d_model"), "{msg}");
        let msg = import_err(|d| {
            std::fs::write(d.join("config.json"), r#"{"model_type": "bert"}"#).unwrap()
        });
        assert!(msg.contains("a bert model, not whisper"), "{msg}");
        let msg = import_err(|d| {
            write(d, "model.", SafeDType::F16, |t| {
                t.retain(|t| t.0 != "model.decoder.layers.0.fc2.weight")
            })
        });
        assert!(msg.contains("tensor model.decoder.layers.0.fc2.weight is missing"), "{msg}");
        let msg = import_err(|d| {
            write(d, "model.", SafeDType::F16, |t| {
                let x =
                    t.iter_mut().find(|t| t.0.ends_with("encoder.layers.0.fc1.weight")).unwrap();
                x.1 = vec![D, 4 * D];
            })
        });
        assert!(
            msg.contains(
                "model.encoder.layers.0.fc1.weight has shape [64, 256], expected [256, 64]"
            ),
            "{msg}"
        );
        let msg = import_err(|d| {
            std::fs::remove_file(d.join("model.safetensors")).unwrap();
            std::fs::write(d.join("pytorch_model.bin"), b"PK").unwrap();
        });
        assert!(msg.contains("pytorch_model.bin"), "{msg}");
        let msg = import_err(|d| std::fs::remove_file(d.join("vocab.json")).unwrap());
        assert!(msg.contains("no vocab.json"), "{msg}");
        let msg = import_err(|d| {
            let v = std::fs::read_to_string(d.join("vocab.json")).unwrap();
            std::fs::write(d.join("vocab.json"), v.replace(r#""t5":5,"#, "")).unwrap();
        });
        assert!(msg.contains("token id 5 is in neither"), "{msg}");
        let msg = import_err(|d| {
            let v = std::fs::read_to_string(d.join("vocab.json")).unwrap();
            std::fs::write(d.join("vocab.json"), v.replace(END_OF_TEXT, "<|eot|>")).unwrap();
        });
        assert!(msg.contains("no <|endoftext|>"), "{msg}");
        let msg =
            import_err(|d| std::fs::write(d.join("added_tokens.json"), r#"{"<|x|>": 2}"#).unwrap());
        assert!(msg.contains("token id 2"), "{msg}");
    }

    #[test]
    fn folders_of_neither_kind_are_refused_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("readme.txt"), "x").unwrap();
        let e = ModelKind::detect(dir.path()).unwrap_err().to_string();
        assert!(e.contains("model.bin") && e.contains("model.safetensors"), "{e}");
    }
}
