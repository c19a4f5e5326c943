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
