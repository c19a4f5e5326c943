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

use super::import::{Hparams, Origin, Planned, Planner, Source, Store, Weights, WHISPER_AUDIO_CTX};
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

    let pe = format!("{m}encoder.embed_positions.weight");
    if model.get(&pe).is_some() {
        p.whole("encoder.positional_embedding".into(), pe, &[hp.n_audio_ctx, d], Store::F32)?;
    } else {
        p.plan.push(Planned {
            name: "encoder.positional_embedding".into(),
            from: Origin::Sinusoids { len: hp.n_audio_ctx, channels: d },
            ne: vec![d, hp.n_audio_ctx],
            store: Store::F32,
        });
    }
    for (conv, n_in) in [("conv1", hp.n_mels), ("conv2", d)] {
        let hf = format!("{m}encoder.{conv}");
        p.whole(
            format!("encoder.{conv}.weight"),
            format!("{hf}.weight"),
            &[d, n_in, 3],
            Store::F16,
        )?;
        // whisper.cpp adds the conv bias as a [1, n] tensor.
        p.check(&format!("{hf}.bias"), &[d])?;
        p.plan.push(Planned {
            name: format!("encoder.{conv}.bias"),
            from: Origin::Var(format!("{hf}.bias")),
            ne: vec![1, d],
            store: Store::F32,
        });
    }
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
