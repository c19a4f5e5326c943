//! Script conversion throughput and per-caption cost, and caption layout.
//!
//! ```sh
//! cargo bench --bench convert
//! ```

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;

use cantocap::caption::{layout, LayoutOptions};
use cantocap::text::{Script, ScriptConverter};
use cantocap::Segment;

/// Mixed Cantonese, Mandarin-written and English text, as Whisper writes it.
const SAMPLE: &str = "我哋今日去飲茶。你食咗飯未呀？呢间餐厅嘅点心好好食。聽日會唔會落雨？\
    我们明天开会讨论发展计划，记得 send 个 agenda 俾我。佢话冇问题，系咪？";

fn text_of_bytes(bytes: usize) -> String {
    let mut text = String::with_capacity(bytes + SAMPLE.len());
    while text.len() < bytes {
        text.push_str(SAMPLE);
        text.push('\n');
    }
    text
}

fn conversion(c: &mut Criterion) {
    let big = text_of_bytes(256 * 1024);
    let mut group = c.benchmark_group("convert_256KiB");
    group.throughput(Throughput::Bytes(big.len() as u64));
    for script in [Script::Hk, Script::Tw, Script::Cn] {
        let converter = ScriptConverter::new(script).unwrap();
        group.bench_with_input(BenchmarkId::from_parameter(script), &big, |b, text| {
            b.iter(|| converter.convert(black_box(text)))
        });
    }
    group.finish();

    let caption = "呢间餐厅嘅点心好好食，记得 send 个 email 俾我。";
    let mut group = c.benchmark_group("convert_one_caption");
    for script in [Script::Hk, Script::Tw, Script::Cn] {
        let converter = ScriptConverter::new(script).unwrap();
        group.bench_with_input(BenchmarkId::from_parameter(script), caption, |b, text| {
            b.iter(|| converter.convert(black_box(text)))
        });
    }
    group.finish();
}

fn caption_layout(c: &mut Criterion) {
    let segments: Vec<Segment> =
        (0..100).map(|i| Segment::new(i * 4000, i * 4000 + 3500, SAMPLE)).collect();
    let opts = LayoutOptions::default();
    c.bench_function("layout_100_segments", |b| b.iter(|| layout(black_box(&segments), &opts)));
}

criterion_group!(benches, conversion, caption_layout);
criterion_main!(benches);
