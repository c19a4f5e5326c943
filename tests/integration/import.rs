//! Importing the real CTranslate2 test models (`models/ct2/`) into ggml.

use std::path::{Path, PathBuf};

use cantocap::model::ct2::Ct2Model;
use cantocap::model::ggml::{read_ggml_info, read_ggml_tensor, GgmlModelInfo, GgmlType};
use cantocap::model::import::whisper_sinusoids;
use cantocap::model::mel::whisper_filters;
use cantocap::model::{import_ct2, read_ggml_header, ImportReport, Quantize};
use cantocap::Error;

/// The CTranslate2 test model `name`; panics (never skips) when it has not been fetched.
fn ct2_model(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/ct2").join(name);
    assert!(
        dir.join("model.bin").is_file(),
        "the CTranslate2 test model {} is missing: run models/fetch-test-model.sh --ct2-only",
        dir.display()
    );
    dir
}

/// Imports `name` into a fresh temporary folder.
fn import(name: &str, quantize: Quantize) -> (tempfile::TempDir, PathBuf, ImportReport) {
    let src = ct2_model(name);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(format!("ggml-{name}-{quantize}.bin"));
    let report = import_ct2(&src, &out, quantize).unwrap();
    (dir, out, report)
}

fn types_of(info: &GgmlModelInfo, names: &[&str]) -> Vec<GgmlType> {
    names.iter().map(|n| info.tensor(n).unwrap_or_else(|| panic!("no {n}")).ggml_type).collect()
}

#[test]
fn base_imports_as_f16_with_whisper_cpp_header_and_layout() {
    let (_dir, out, report) = import("whisper-base", Quantize::F16);
    let h = read_ggml_header(&out).unwrap();
    assert_eq!(h, report.header);
    assert_eq!(
        (h.n_vocab, h.n_audio_ctx, h.n_audio_state, h.n_audio_head, h.n_audio_layer),
        (51865, 1500, 512, 8, 6)
    );
    assert_eq!(
        (h.n_text_ctx, h.n_text_state, h.n_text_head, h.n_text_layer, h.n_mels, h.ftype),
        (448, 512, 8, 6, 80, 1)
    );
    assert!(h.is_multilingual() && !h.has_yue());
    assert_eq!(h.size_name(), "base");
    assert!(report.multilingual);
    assert_eq!(report.source_dtype, "float16");
    // whisper.cpp's loader wants exactly 7 + 15 per encoder layer + 4 + 24 per decoder layer.
    assert_eq!(report.tensors, 7 + 15 * 6 + 4 + 24 * 6);
    let len = std::fs::metadata(&out).unwrap().len();
    assert_eq!(report.bytes_written, len);
    // Byte for byte the size of whisper.cpp's own ggml-base.bin (from the PyTorch checkpoint).
    assert_eq!(len, 147_951_465);

    let info = read_ggml_info(&out).unwrap();
    assert_eq!(info.tokens.len(), 50257);
    assert_eq!(report.tokens_written, 50257);
    assert_eq!(info.tokens[0], b"!");
    assert_eq!(info.tokens[220], b" ");
    assert_eq!(info.tokens[50256], b"");
    assert!(info.tokens.iter().any(|t| t == "的".as_bytes()));
    assert_eq!(info.mel_filters, whisper_filters(80));
    assert_eq!(
        types_of(
            &info,
            &[
                "encoder.positional_embedding",
                "encoder.conv1.weight",
                "encoder.conv1.bias",
                "encoder.blocks.0.attn.query.weight",
                "encoder.blocks.0.attn.query.bias",
                "decoder.token_embedding.weight",
                "decoder.blocks.5.cross_attn.value.weight",
            ]
        ),
        [
            GgmlType::F32,
            GgmlType::F16,
            GgmlType::F32,
            GgmlType::F16,
            GgmlType::F32,
            GgmlType::F16,
            GgmlType::F16
        ]
    );
    assert_eq!(info.tensor("encoder.conv1.bias").unwrap().ne, [1, 512]);
    assert_eq!(info.tensor("encoder.conv1.weight").unwrap().ne, [3, 80, 512]);
    assert_eq!(info.tensor("decoder.token_embedding.weight").unwrap().ne, [512, 51865]);
    assert!(!info.tensors.iter().any(|t| t.name.contains("key.bias")));
}

#[test]
fn base_weights_are_copied_unchanged_and_split_in_q_k_v_order() {
    let (_dir, out, _) = import("whisper-base", Quantize::F16);
    let info = read_ggml_info(&out).unwrap();
    let mut ct2 = Ct2Model::open(&ct2_model("whisper-base").join("model.bin")).unwrap();
    let ggml = |name: &str| read_ggml_tensor(&out, info.tensor(name).unwrap()).unwrap();
    let fused = "decoder/layer_2/self_attention/linear_0/weight";
    for (part, name) in ["query", "key", "value"].iter().enumerate() {
        let want = ct2.read_rows_f32(fused, part * 512..(part + 1) * 512).unwrap();
        assert_eq!(ggml(&format!("decoder.blocks.2.attn.{name}.weight")), want, "{name}");
    }
    let kv = "decoder/layer_4/attention/linear_1/weight";
    assert_eq!(
        ggml("decoder.blocks.4.cross_attn.value.weight"),
        ct2.read_rows_f32(kv, 512..1024).unwrap()
    );
    // The dropped key bias really is zero in the source.
    let bias = ct2.read_f32("encoder/layer_0/self_attention/linear_0/bias").unwrap();
    assert!(bias[512..1024].iter().all(|b| *b == 0.0));
    assert_eq!(ggml("encoder.blocks.0.attn.value.bias"), bias[1024..]);
    // The stored encoder positions are OpenAI's sinusoids, which the importer also
    // generates for models that omit them.
    let pe = ggml("encoder.positional_embedding");
    let sin = whisper_sinusoids(1500, 512);
    let worst = pe.iter().zip(&sin).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst < 1e-3, "worst difference {worst}");
}

#[test]
fn base_imports_as_q8_0() {
    let (_dir, out, report) = import("whisper-base", Quantize::Q8_0);
    let h = read_ggml_header(&out).unwrap();
    assert_eq!((h.n_vocab, h.n_mels, h.n_audio_layer, h.n_text_layer), (51865, 80, 6, 6));
    assert_eq!(h.ftype, 2007);
    assert_eq!(h.ftype_name(), "q8_0");
    assert_eq!(report.quantize, Quantize::Q8_0);
    assert_eq!(report.tensors, 245);
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 81_768_585);
    let info = read_ggml_info(&out).unwrap();
    assert_eq!(
        types_of(
            &info,
            &[
                "encoder.positional_embedding",
                "encoder.conv2.weight",
                "encoder.conv2.bias",
                "encoder.blocks.3.mlp.0.weight",
                "encoder.blocks.3.mlp.0.bias",
                "decoder.token_embedding.weight",
                "decoder.positional_embedding",
            ]
        ),
        [
            GgmlType::F32,
            GgmlType::F16,
            GgmlType::F32,
            GgmlType::Q8_0,
            GgmlType::F32,
            GgmlType::Q8_0,
            GgmlType::F32
        ]
    );
}

#[test]
fn base_imports_as_q5_0_and_transcribes_english() {
    let (dir, out, report) = import("whisper-base", Quantize::Q5_0);
    let h = read_ggml_header(&out).unwrap();
    assert_eq!((h.ftype, h.ftype_name()), (2008, "q5_0"));
    assert_eq!(report.quantize, Quantize::Q5_0);
    assert_eq!(report.tensors, 245);
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 55_295_433);
    let info = read_ggml_info(&out).unwrap();
    // The same tensors as q8_0 are quantized: whisper.cpp's `quantize` rules.
    let names = [
        "encoder.positional_embedding",
        "encoder.conv1.weight",
        "encoder.conv1.bias",
        "encoder.blocks.0.attn.query.weight",
        "encoder.blocks.0.attn_ln.weight",
        "decoder.blocks.5.cross_attn.key.weight",
        "decoder.token_embedding.weight",
    ];
    use GgmlType::{F16, F32, Q5_0};
    assert_eq!(types_of(&info, &names), [F32, F16, F32, Q5_0, F32, Q5_0, Q5_0]);
    let q5_tensors = info.tensors.iter().filter(|t| t.ggml_type == Q5_0).count();
    assert_eq!(q5_tensors, 97);

    // whisper.cpp loads it and it still hears the words.
    let _lock = whisper_lock();
    let wav = dir.path().join("english.wav");
    let said = "Captions should appear on the screen within a second. \
        Please send your comments to the shared folder before Friday.";
    speak("en", said, &wav);
    let heard = transcript(&out, &wav);
    let wer = crate::common::wer(said, &heard);
    assert!(wer <= 0.10, "q5_0: WER {wer:.2} for {heard:?}");
}

#[test]
fn tiny_en_imports_as_english_only() {
    let (_dir, out, report) = import("whisper-tiny.en", Quantize::F16);
    let h = read_ggml_header(&out).unwrap();
    assert_eq!((h.n_vocab, h.n_mels, h.n_audio_layer, h.n_text_layer), (51864, 80, 4, 4));
    assert_eq!((h.n_audio_state, h.n_audio_head, h.n_text_head), (384, 6, 6));
    assert!(!h.is_multilingual() && !report.multilingual);
    assert_eq!(h.size_name(), "tiny");
    assert_eq!(report.tokens_written, 50256);
    assert_eq!(report.tensors, 7 + 15 * 4 + 4 + 24 * 4);
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 77_704_698);
}

#[test]
fn a_truncated_import_is_refused_by_the_header_reader() {
    let (_dir, out, _) = import("whisper-tiny.en", Quantize::F16);
    let bytes = std::fs::read(&out).unwrap();
    std::fs::write(&out, &bytes[..30]).unwrap();
    match read_ggml_header(&out).unwrap_err() {
        Error::BadModel { reason, .. } => assert!(reason.contains("truncated"), "{reason}"),
        other => panic!("expected BadModel, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Hugging Face transformers folders, built from the real CTranslate2 base model's weights
// renamed to transformers' tensor names: the import must give the very same ggml file.

use cantocap::asr::{TranscribeOptions, WhisperModel};
use cantocap::audio::read_wav;
use cantocap::model::import_model;
use cantocap::model::safetensors::{write_safetensors, SafeDType};
use cantocap::model::tokens::Vocabulary;

use crate::common::{speak, whisper_lock};

/// One safetensors tensor to write: name, shape, values.
type HfTensor = (String, Vec<usize>, Vec<f32>);

/// The CT2 base model's weights under transformers' names, with the `model.` prefix
/// `WhisperForConditionalGeneration` saves them with.
fn transformers_tensors(ct2: &mut Ct2Model) -> Vec<HfTensor> {
    let shape = |ct2: &Ct2Model, v: &str| ct2.get(v).unwrap_or_else(|| panic!("{v}")).shape.clone();
    let mut out: Vec<HfTensor> = Vec::new();
    let whole = |ct2: &mut Ct2Model, out: &mut Vec<HfTensor>, hf: String, var: &str| {
        let s = shape(ct2, var);
        out.push((hf, s, ct2.read_f32(var).unwrap()));
    };
    let d = shape(ct2, "decoder/embeddings/weight")[1];
    // Rows `part·d .. (part+1)·d` of a fused CT2 projection.
    let part = |ct2: &mut Ct2Model, var: &str, part: usize| -> Vec<f32> {
        ct2.read_rows_f32(var, part * d..(part + 1) * d).unwrap()
    };
    let m = "model";
    whole(
        ct2,
        &mut out,
        format!("{m}.encoder.embed_positions.weight"),
        "encoder/position_encodings/encodings",
    );
    for conv in ["conv1", "conv2"] {
        for p in ["weight", "bias"] {
            whole(ct2, &mut out, format!("{m}.encoder.{conv}.{p}"), &format!("encoder/{conv}/{p}"));
        }
    }
    let norm = |ct2: &mut Ct2Model, out: &mut Vec<HfTensor>, hf: String, var: String| {
        out.push((format!("{hf}.weight"), vec![d], ct2.read_f32(&format!("{var}/gamma")).unwrap()));
        out.push((format!("{hf}.bias"), vec![d], ct2.read_f32(&format!("{var}/beta")).unwrap()));
    };
    let linear = |ct2: &mut Ct2Model, out: &mut Vec<HfTensor>, hf: String, var: String| {
        for p in ["weight", "bias"] {
            let v = format!("{var}/{p}");
            out.push((format!("{hf}.{p}"), shape(ct2, &v), ct2.read_f32(&v).unwrap()));
        }
    };
    for side in ["encoder", "decoder"] {
        let layers = ct2
            .variables()
            .iter()
            .filter(|v| {
                v.name.starts_with(&format!("{side}/layer_"))
                    && v.name.ends_with("ffn/linear_0/weight")
            })
            .count();
        for i in 0..layers {
            let (hf, ct) = (format!("{m}.{side}.layers.{i}"), format!("{side}/layer_{i}"));
            let sa = format!("{ct}/self_attention");
            let (w, b) = (format!("{sa}/linear_0/weight"), format!("{sa}/linear_0/bias"));
            // Whisper's key projection has no bias: the CT2 key slot holds zeros.
            out.push((format!("{hf}.self_attn.q_proj.weight"), vec![d, d], part(ct2, &w, 0)));
            out.push((format!("{hf}.self_attn.q_proj.bias"), vec![d], part_bias(ct2, &b, 0, d)));
            out.push((format!("{hf}.self_attn.k_proj.weight"), vec![d, d], part(ct2, &w, 1)));
            out.push((format!("{hf}.self_attn.v_proj.weight"), vec![d, d], part(ct2, &w, 2)));
            out.push((format!("{hf}.self_attn.v_proj.bias"), vec![d], part_bias(ct2, &b, 2, d)));
            linear(ct2, &mut out, format!("{hf}.self_attn.out_proj"), format!("{sa}/linear_1"));
            norm(ct2, &mut out, format!("{hf}.self_attn_layer_norm"), format!("{sa}/layer_norm"));
            if side == "decoder" {
                let ca = format!("{ct}/attention");
                linear(
                    ct2,
                    &mut out,
                    format!("{hf}.encoder_attn.q_proj"),
                    format!("{ca}/linear_0"),
                );
                let (w, b) = (format!("{ca}/linear_1/weight"), format!("{ca}/linear_1/bias"));
                out.push((
                    format!("{hf}.encoder_attn.k_proj.weight"),
                    vec![d, d],
                    part(ct2, &w, 0),
                ));
                out.push((
                    format!("{hf}.encoder_attn.v_proj.weight"),
                    vec![d, d],
                    part(ct2, &w, 1),
                ));
                out.push((
                    format!("{hf}.encoder_attn.v_proj.bias"),
                    vec![d],
                    part_bias(ct2, &b, 1, d),
                ));
                linear(
                    ct2,
                    &mut out,
                    format!("{hf}.encoder_attn.out_proj"),
                    format!("{ca}/linear_2"),
                );
                norm(
                    ct2,
                    &mut out,
                    format!("{hf}.encoder_attn_layer_norm"),
                    format!("{ca}/layer_norm"),
                );
            }
            linear(ct2, &mut out, format!("{hf}.fc1"), format!("{ct}/ffn/linear_0"));
            linear(ct2, &mut out, format!("{hf}.fc2"), format!("{ct}/ffn/linear_1"));
            norm(ct2, &mut out, format!("{hf}.final_layer_norm"), format!("{ct}/ffn/layer_norm"));
        }
        norm(ct2, &mut out, format!("{m}.{side}.layer_norm"), format!("{side}/layer_norm"));
    }
    whole(ct2, &mut out, format!("{m}.decoder.embed_tokens.weight"), "decoder/embeddings/weight");
    whole(
        ct2,
        &mut out,
        format!("{m}.decoder.embed_positions.weight"),
        "decoder/position_encodings/encodings",
    );
    out
}

/// Part `index` of a fused bias of `d`-wide parts.
fn part_bias(ct2: &mut Ct2Model, var: &str, index: usize, d: usize) -> Vec<f32> {
    ct2.read_f32(var).unwrap()[index * d..(index + 1) * d].to_vec()
}

/// How to lay out the transformers folder.
struct HfLayout {
    dtype: SafeDType,
    /// 1: `model.safetensors`; more: shards with `model.safetensors.index.json`.
    shards: usize,
    /// `vocab.json` + `added_tokens.json` (true) or only `tokenizer.json` (false).
    vocab_json: bool,
}

/// Writes the CT2 base model as a transformers folder under `dir`.
fn write_transformers_folder(dir: &Path, layout: &HfLayout) {
    let src = ct2_model("whisper-base");
    let mut ct2 = Ct2Model::open(&src.join("model.bin")).unwrap();
    let heads = ct2.read_scalar_i64("encoder/num_heads").unwrap();
    let dec_heads = ct2.read_scalar_i64("decoder/num_heads").unwrap();
    let tensors = transformers_tensors(&mut ct2);
    let embed = &tensors.iter().find(|t| t.0 == "model.decoder.embed_tokens.weight").unwrap().1;
    let n_layers = |side: &str| {
        tensors
            .iter()
            .filter(|t| {
                t.0.starts_with(&format!("model.{side}.layers.")) && t.0.ends_with("fc1.weight")
            })
            .count()
    };
    let conv1 = &tensors.iter().find(|t| t.0 == "model.encoder.conv1.weight").unwrap().1;
    let config = serde_json::json!({
        "architectures": ["WhisperForConditionalGeneration"],
        "model_type": "whisper",
        "d_model": embed[1],
        "encoder_layers": n_layers("encoder"),
        "decoder_layers": n_layers("decoder"),
        "encoder_attention_heads": heads,
        "decoder_attention_heads": dec_heads,
        "num_mel_bins": conv1[1],
        "vocab_size": embed[0],
        "max_source_positions": 1500,
        "max_target_positions": 448,
        "torch_dtype": "float16",
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();

    // The vocabulary: vocab.json up to <|endoftext|>, the specials in added_tokens.json
    // (the timestamps, which transformers derives itself, are left out); or the real
    // Hugging Face tokenizer.json that came with the CT2 model.
    if layout.vocab_json {
        let vocab = Vocabulary::read(&src).unwrap();
        let eot = vocab.end_of_text().unwrap();
        let map = |range: std::ops::Range<usize>| -> serde_json::Map<String, serde_json::Value> {
            range.map(|i| (vocab.tokens[i].clone(), serde_json::Value::from(i))).collect()
        };
        let specials = vocab.tokens.iter().position(|t| t == "<|0.00|>").unwrap();
        std::fs::write(
            dir.join("vocab.json"),
            serde_json::Value::Object(map(0..eot + 1)).to_string(),
        )
        .unwrap();
        std::fs::write(
            dir.join("added_tokens.json"),
            serde_json::Value::Object(map(eot + 1..specials)).to_string(),
        )
        .unwrap();
    } else {
        std::fs::copy(src.join("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
    }

    let typed: Vec<_> = tensors.into_iter().map(|(n, s, v)| (n, s, layout.dtype, v)).collect();
    if layout.shards == 1 {
        write_safetensors(&dir.join("model.safetensors"), &typed).unwrap();
    } else {
        let per = typed.len().div_ceil(layout.shards);
        let mut weight_map = serde_json::Map::new();
        for (k, chunk) in typed.chunks(per).enumerate() {
            let file = format!("model-{:05}-of-{:05}.safetensors", k + 1, layout.shards);
            write_safetensors(&dir.join(&file), chunk).unwrap();
            for t in chunk {
                weight_map.insert(t.0.clone(), file.clone().into());
            }
        }
        let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": weight_map});
        std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    }
}

/// Every header field, token, filter and tensor of the two ggml files is equal (and so
/// are the files, byte for byte).
fn assert_same_ggml(a: &Path, b: &Path) {
    let (ia, ib) = (read_ggml_info(a).unwrap(), read_ggml_info(b).unwrap());
    assert_eq!(ia.header, ib.header);
    assert_eq!(ia.tokens, ib.tokens);
    assert_eq!(ia.mel_filters, ib.mel_filters);
    let names = |i: &GgmlModelInfo| {
        i.tensors.iter().map(|t| (t.name.clone(), t.ne.clone(), t.ggml_type)).collect::<Vec<_>>()
    };
    assert_eq!(names(&ia), names(&ib));
    for (ta, tb) in ia.tensors.iter().zip(&ib.tensors) {
        assert!(
            read_ggml_tensor(a, ta).unwrap() == read_ggml_tensor(b, tb).unwrap(),
            "{} differs",
            ta.name
        );
    }
    assert!(std::fs::read(a).unwrap() == std::fs::read(b).unwrap(), "the files differ");
}

fn transcript(model: &Path, wav: &Path) -> String {
    let model = WhisperModel::load(model).unwrap();
    let samples = read_wav(wav).unwrap().to_whisper_input().unwrap();
    let opts = TranscribeOptions { language: Some("en".into()), threads: 2, ..Default::default() };
    let segments = model.transcribe(&samples, &opts).unwrap();
    segments.iter().map(|s| s.text.trim()).collect::<Vec<_>>().join(" ")
}

#[test]
fn a_transformers_folder_imports_to_the_same_model_as_ct2_and_transcribes_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let hf = dir.path().join("whisper-base-hf");
    std::fs::create_dir(&hf).unwrap();
    write_transformers_folder(
        &hf,
        &HfLayout { dtype: SafeDType::F16, shards: 1, vocab_json: true },
    );

    let (_ct2_dir, ct2_out, ct2_report) = import("whisper-base", Quantize::F16);
    let hf_out = dir.path().join("ggml-hf.bin");
    let report = import_model(&hf, &hf_out, Quantize::F16).unwrap();
    assert_eq!(report.header, ct2_report.header);
    assert_eq!(report.tokens_written, 50257);
    assert_eq!(report.source_dtype, "float16");
    assert_eq!(report.tensors, ct2_report.tensors);
    assert_same_ggml(&ct2_out, &hf_out);

    let _lock = whisper_lock();
    let wav = dir.path().join("english.wav");
    speak("en", "Please send the minutes of the meeting to everyone before Friday.", &wav);
    let (from_ct2, from_hf) = (transcript(&ct2_out, &wav), transcript(&hf_out, &wav));
    assert!(from_ct2.to_lowercase().contains("friday"), "{from_ct2:?}");
    assert_eq!(from_hf, from_ct2);
}

#[test]
fn sharded_f32_transformers_weights_with_tokenizer_json_import_as_f16_and_q8_0() {
    let dir = tempfile::tempdir().unwrap();
    let hf = dir.path().join("whisper-base-sharded");
    std::fs::create_dir(&hf).unwrap();
    write_transformers_folder(
        &hf,
        &HfLayout { dtype: SafeDType::F32, shards: 3, vocab_json: false },
    );
    assert!(hf.join("model-00003-of-00003.safetensors").is_file());

    for quantize in [Quantize::F16, Quantize::Q8_0] {
        let (_ct2_dir, ct2_out, _) = import("whisper-base", quantize);
        let hf_out = dir.path().join(format!("ggml-hf-{quantize}.bin"));
        let report = import_model(&hf, &hf_out, quantize).unwrap();
        assert_eq!(report.source_dtype, "float32");
        assert_eq!(report.quantize, quantize);
        // f16 → f32 → f16 is exact, so even the sharded f32 copy gives the same file.
        assert_same_ggml(&ct2_out, &hf_out);
    }

    // The command line tells the kind of folder and says what it read.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cantocap"))
        .args(["model", "import"])
        .arg(&hf)
        .arg("-o")
        .arg(dir.path().join("cli.bin"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("transformers float32"), "{stderr}");
    assert_eq!(read_ggml_header(&dir.path().join("cli.bin")).unwrap().size_name(), "base");

    // A missing shard is named.
    std::fs::rename(hf.join("model-00002-of-00003.safetensors"), dir.path().join("moved")).unwrap();
    let err = import_model(&hf, &dir.path().join("x.bin"), Quantize::F16).unwrap_err().to_string();
    assert!(err.contains("model-00002-of-00003.safetensors") && err.contains("missing"), "{err}");
    assert!(!dir.path().join("x.bin").exists());
}
