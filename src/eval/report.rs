//! Results: per utterance and totals, as Markdown and JSON, and the comparison of two
//! result files.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::metrics::{score, Edits, Metric};
use super::normalise::Normaliser;

/// The JSON format's version, written as `format`.
pub const FORMAT: u32 = 1;

/// How the recordings were decoded and scored: written with the results, so that a
/// comparison can say what differs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The manifest, as given.
    pub manifest: String,
    /// The model file.
    pub model: String,
    /// `offline` (whole files, as `transcribe`) or `streaming` (the live engine).
    pub mode: String,
    /// Streaming pace (`realtime`, `4x`, `max`); empty offline.
    pub pace: String,
    /// The language asked for (`auto` when none was).
    pub language: String,
    /// The script hypotheses were written in.
    pub script: String,
    /// The script both sides were folded to before scoring.
    pub fold: String,
    /// Numbers spelled in words before scoring.
    pub spell_numbers: bool,
    /// Anything else worth recording (threads, beam, step, VAD), as `key=value`.
    pub extra: Vec<String>,
}

/// One utterance's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Utterance {
    /// Its id in the manifest.
    pub id: String,
    /// The audio file.
    pub audio: String,
    /// The metric its reference calls for.
    pub metric: Metric,
    /// The reference, as written in the manifest.
    pub reference: String,
    /// What the model wrote, in the chosen script.
    pub hypothesis: String,
    /// The normalised reference: tokens joined by spaces.
    pub reference_norm: String,
    /// The normalised hypothesis: tokens joined by spaces.
    pub hypothesis_norm: String,
    /// Edits under `metric`.
    pub edits: Edits,
    /// Edits over mixed tokens (a Chinese character or a Latin word each), for the
    /// overall total.
    pub mixed: Edits,
    /// Audio length, ms.
    pub audio_ms: u64,
    /// Decoding time, ms (offline: the decode's wall time; streaming: the engine's
    /// compute time).
    pub compute_ms: u64,
    /// Streaming: each final's latency, ms (see [`Latency`]); empty offline.
    #[serde(default)]
    pub latency_ms: Vec<u64>,
}

impl Utterance {
    /// Scores `hypothesis` against `reference` after normalising both with
    /// `normaliser`; the times are left at zero.
    pub fn score(
        normaliser: &Normaliser,
        id: &str,
        audio: &str,
        reference: &str,
        hypothesis: &str,
    ) -> Utterance {
        let (r, h) = (normaliser.tokens(reference), normaliser.tokens(hypothesis));
        let metric = Metric::of(&r);
        Utterance {
            id: id.to_owned(),
            audio: audio.to_owned(),
            metric,
            reference: reference.to_owned(),
            hypothesis: hypothesis.to_owned(),
            reference_norm: r.join(" "),
            hypothesis_norm: h.join(" "),
            edits: score(metric, &r, &h),
            mixed: score(Metric::Mer, &r, &h),
            audio_ms: 0,
            compute_ms: 0,
            latency_ms: Vec::new(),
        }
    }
}

/// Edits of the utterances of one metric.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricTotal {
    /// Utterances scored with it.
    pub utterances: u64,
    /// Their edits, summed.
    pub edits: Edits,
}

/// Final latency of a streaming run: for each final, the time from its end's audio
/// reaching the engine to the final. With a paced run it is wall time: audio at `t`
/// ms of the recording reaches the engine at `t / pace` (in 100 ms chunks), the final
/// comes when the engine emits it (decoding time included). At `max` pace it is
/// audio time: how much more audio the engine took in before it committed the
/// final (its policy's delay, without decoding time).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Finals measured.
    pub finals: u64,
    /// Median, ms.
    pub p50_ms: u64,
    /// 90th percentile, ms.
    pub p90_ms: u64,
    /// Largest, ms.
    pub max_ms: u64,
    /// `wall` (paced) or `audio` (max pace).
    pub clock: String,
}

impl Latency {
    /// Nearest-rank percentiles of `latencies`; `None` when empty.
    pub fn of(latencies: &[u64], clock: &str) -> Option<Latency> {
        let mut sorted = latencies.to_vec();
        sorted.sort_unstable();
        let rank =
            |p: f64| sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
        (!sorted.is_empty()).then(|| Latency {
            finals: sorted.len() as u64,
            p50_ms: rank(0.5),
            p90_ms: rank(0.9),
            max_ms: *sorted.last().expect("not empty"),
            clock: clock.to_owned(),
        })
    }
}

/// Totals over all utterances.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Per metric: `cer`, `wer`, `mer` (present only when some utterance uses it).
    pub metrics: BTreeMap<Metric, MetricTotal>,
    /// Every utterance over mixed tokens.
    pub overall: Edits,
    /// Audio, ms.
    pub audio_ms: u64,
    /// Decoding, ms.
    pub compute_ms: u64,
    /// Real-time factor: decoding time over audio time.
    pub rtf: f64,
    /// Streaming: final latency over every final.
    pub latency: Option<Latency>,
}

impl Totals {
    /// Sums `utterances`; `latency_clock` is `wall` or `audio` for a streaming run,
    /// `None` offline.
    pub fn of(utterances: &[Utterance], latency_clock: Option<&str>) -> Totals {
        let mut metrics: BTreeMap<Metric, MetricTotal> = BTreeMap::new();
        for u in utterances {
            let total = metrics.entry(u.metric).or_default();
            total.utterances += 1;
            total.edits += u.edits;
        }
        let audio_ms = utterances.iter().map(|u| u.audio_ms).sum::<u64>();
        let compute_ms = utterances.iter().map(|u| u.compute_ms).sum::<u64>();
        let latencies: Vec<u64> = utterances.iter().flat_map(|u| u.latency_ms.clone()).collect();
        Totals {
            metrics,
            overall: utterances.iter().map(|u| u.mixed).sum(),
            audio_ms,
            compute_ms,
            rtf: compute_ms as f64 / audio_ms.max(1) as f64,
            latency: latency_clock.and_then(|clock| Latency::of(&latencies, clock)),
        }
    }
}

/// A whole evaluation: what `cantocap eval --json` writes and `--compare` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`FORMAT`].
    pub format: u32,
    /// The cantocap version that wrote it.
    pub version: String,
    /// How it was made.
    pub settings: Settings,
    /// Per utterance, in manifest order.
    pub utterances: Vec<Utterance>,
    /// Totals.
    pub totals: Totals,
}

impl Report {
    /// A report of `utterances` with their totals.
    pub fn new(settings: Settings, utterances: Vec<Utterance>) -> Report {
        let clock = match (settings.mode.as_str(), settings.pace.as_str()) {
            ("streaming", "max") => Some("audio"),
            ("streaming", _) => Some("wall"),
            _ => None,
        };
        let totals = Totals::of(&utterances, clock);
        Report {
            format: FORMAT,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            settings,
            utterances,
            totals,
        }
    }

    /// The report as Markdown: settings, the per-utterance table, totals.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let s = &self.settings;
        let _ = writeln!(out, "# cantocap eval: {}\n", s.manifest);
        let _ = writeln!(out, "{}\n", describe(s));
        out.push_str("| # | id | metric | errors / tokens | rate | S / D / I | hypothesis |\n");
        out.push_str("|---|---|---|---|---|---|---|\n");
        for (i, u) in self.utterances.iter().enumerate() {
            let e = u.edits;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} / {} | {} | {} / {} / {} | {} |",
                i + 1,
                cell(&u.id),
                u.metric,
                e.errors(),
                e.tokens,
                percent(e.rate()),
                e.substitutions,
                e.deletions,
                e.insertions,
                cell(&u.hypothesis)
            );
        }
        out.push_str("\n## Totals\n\n");
        out.push_str("| metric | utterances | errors / tokens | rate | S | D | I |\n");
        out.push_str("|---|---|---|---|---|---|---|\n");
        for (metric, total) in &self.totals.metrics {
            let _ =
                writeln!(out, "{}", total_row(&metric.to_string(), total.utterances, total.edits));
        }
        let all = self.utterances.len() as u64;
        let _ = writeln!(out, "{}", total_row("overall (mixed tokens)", all, self.totals.overall));
        let t = &self.totals;
        let _ = writeln!(
            out,
            "\nRTF {:.3}: {:.1} s of decoding for {:.1} s of audio.",
            t.rtf,
            t.compute_ms as f64 / 1000.0,
            t.audio_ms as f64 / 1000.0
        );
        if let Some(l) = &t.latency {
            let _ = writeln!(
                out,
                "Final latency ({} time, {} finals): p50 {} ms, p90 {} ms, max {} ms.",
                l.clock, l.finals, l.p50_ms, l.p90_ms, l.max_ms
            );
        } else if s.mode == "streaming" {
            out.push_str("Final latency: no finals.\n");
        }
        out
    }
}

/// One line about how a report was made.
fn describe(s: &Settings) -> String {
    let mut parts = vec![format!("model `{}`", s.model), s.mode.clone()];
    if !s.pace.is_empty() {
        parts.push(format!("pace {}", s.pace));
    }
    parts.push(format!("language {}", s.language));
    parts.push(format!("script {}", s.script));
    parts.extend(s.extra.iter().cloned());
    let numbers = if s.spell_numbers { ", numbers spelled" } else { "" };
    format!(
        "{}. Scored after folding to script {}{numbers}, without punctuation, width or case.",
        parts.join(", "),
        s.fold
    )
}

fn total_row(name: &str, utterances: u64, e: Edits) -> String {
    format!(
        "| {name} | {utterances} | {} / {} | {} | {} | {} | {} |",
        e.errors(),
        e.tokens,
        percent(e.rate()),
        e.substitutions,
        e.deletions,
        e.insertions
    )
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or("–".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

/// Text for a table cell: no pipes or line breaks.
fn cell(text: &str) -> String {
    let text = text.replace('|', "\\|").replace(['\n', '\r'], " ");
    if text.trim().is_empty() {
        "(nothing)".to_owned()
    } else {
        text
    }
}

/// Two reports side by side, as Markdown: settings that differ, totals, and the
/// utterances whose errors differ (matched by id). `names` label the two columns.
pub fn compare(a: &Report, b: &Report, names: [&str; 2]) -> String {
    let mut out = String::new();
    let [na, nb] = names.map(cell);
    let _ = writeln!(out, "# cantocap eval: {na} vs {nb}\n");
    let _ = writeln!(out, "- A: {na}: {}", describe(&a.settings));
    let _ = writeln!(out, "- B: {nb}: {}", describe(&b.settings));
    let (sa, sb) = (&a.settings, &b.settings);
    if (sa.manifest.as_str(), &sa.fold, sa.spell_numbers)
        != (sb.manifest.as_str(), &sb.fold, sb.spell_numbers)
    {
        out.push_str(
            "\nNote: the manifests or the normalisation differ; the rates may not be comparable.\n",
        );
    }

    out.push_str("\n## Totals\n\n| | A | B | B − A |\n|---|---|---|---|\n");
    let mut rows: Vec<(String, Option<MetricTotal>, Option<MetricTotal>)> = Metric::ALL
        .iter()
        .filter_map(|m| {
            let (x, y) = (a.totals.metrics.get(m).copied(), b.totals.metrics.get(m).copied());
            (x.is_some() || y.is_some()).then(|| (m.to_string(), x, y))
        })
        .collect();
    let overall =
        |r: &Report| MetricTotal { utterances: r.utterances.len() as u64, edits: r.totals.overall };
    rows.push(("overall (mixed tokens)".to_owned(), Some(overall(a)), Some(overall(b))));
    for (name, x, y) in rows {
        let show = |t: Option<MetricTotal>| {
            t.map_or("–".to_owned(), |t| {
                format!("{} ({} / {})", percent(t.edits.rate()), t.edits.errors(), t.edits.tokens)
            })
        };
        let rate = |t: Option<MetricTotal>| t.and_then(|t| t.edits.rate());
        let _ =
            writeln!(out, "| {name} | {} | {} | {} |", show(x), show(y), points(rate(x), rate(y)));
    }
    let _ = writeln!(
        out,
        "| RTF | {:.3} | {:.3} | {:+.3} |",
        a.totals.rtf,
        b.totals.rtf,
        b.totals.rtf - a.totals.rtf
    );
    let latency = |r: &Report| {
        r.totals
            .latency
            .as_ref()
            .map_or("–".to_owned(), |l| format!("{} / {} ms ({})", l.p50_ms, l.p90_ms, l.clock))
    };
    if a.totals.latency.is_some() || b.totals.latency.is_some() {
        let _ = writeln!(out, "| final latency p50 / p90 | {} | {} | |", latency(a), latency(b));
    }

    out.push_str("\n## Utterances that differ\n\n");
    let by_id: BTreeMap<&str, &Utterance> =
        b.utterances.iter().map(|u| (u.id.as_str(), u)).collect();
    let mut table = String::new();
    for u in &a.utterances {
        let Some(v) = by_id.get(u.id.as_str()) else { continue };
        if u.edits == v.edits && u.hypothesis_norm == v.hypothesis_norm {
            continue;
        }
        let _ = writeln!(
            table,
            "| {} | {} | {} ({}) | {} ({}) | {} | {} | {} |",
            cell(&u.id),
            u.metric,
            percent(u.edits.rate()),
            u.edits.errors(),
            percent(v.edits.rate()),
            v.edits.errors(),
            points(u.edits.rate(), v.edits.rate()),
            cell(&u.hypothesis),
            cell(&v.hypothesis)
        );
    }
    if table.is_empty() {
        out.push_str("None: every utterance has the same errors in both.\n");
    } else {
        out.push_str(
            "| id | metric | A (errors) | B (errors) | B − A | A hypothesis | B hypothesis |\n",
        );
        out.push_str("|---|---|---|---|---|---|---|\n");
        out.push_str(&table);
    }
    let only = |x: &Report, y: &Report| -> Vec<String> {
        let ids: std::collections::HashSet<&str> =
            y.utterances.iter().map(|u| u.id.as_str()).collect();
        x.utterances.iter().filter(|u| !ids.contains(u.id.as_str())).map(|u| cell(&u.id)).collect()
    };
    for (label, ids) in [("A", only(a, b)), ("B", only(b, a))] {
        if !ids.is_empty() {
            let _ = writeln!(out, "\nOnly in {label}: {}.", ids.join(", "));
        }
    }
    out
}

/// A change of rate in percentage points, signed.
fn points(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => format!("{:+.1} pt", (b - a) * 100.0),
        _ => "–".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::NormaliseOptions;

    fn normaliser() -> Normaliser {
        Normaliser::new(NormaliseOptions::default()).unwrap()
    }

    fn settings(model: &str, mode: &str, pace: &str) -> Settings {
        Settings {
            manifest: "m.tsv".into(),
            model: model.into(),
            mode: mode.into(),
            pace: pace.into(),
            language: "auto".into(),
            script: "hk".into(),
            fold: "cn".into(),
            ..Default::default()
        }
    }

    fn report(model: &str, hypotheses: [&str; 3]) -> Report {
        let n = normaliser();
        let refs = ["我哋今日去飲茶。", "Please send the report.", "我哋用 Zoom 開會。"];
        let utterances = refs
            .iter()
            .zip(hypotheses)
            .enumerate()
            .map(|(i, (r, h))| {
                let mut u = Utterance::score(&n, &format!("u{i}"), "a.wav", r, h);
                u.audio_ms = 2000;
                u.compute_ms = 500;
                u
            })
            .collect();
        Report::new(settings(model, "offline", ""), utterances)
    }

    #[test]
    fn totals_per_metric_and_overall() {
        let r = report("a", ["我哋今日去飲茶", "please send a report", "我哋用 zoom 開會"]);
        let kinds: Vec<Metric> = r.utterances.iter().map(|u| u.metric).collect();
        assert_eq!(kinds, [Metric::Cer, Metric::Wer, Metric::Mer]);
        let t = &r.totals;
        assert_eq!(t.metrics[&Metric::Cer].edits.errors(), 0);
        assert_eq!(
            (t.metrics[&Metric::Wer].edits.errors(), t.metrics[&Metric::Wer].edits.tokens),
            (1, 4)
        );
        assert_eq!(t.metrics[&Metric::Mer].edits.tokens, 6);
        // Overall: 7 + 4 + 6 mixed tokens, one error.
        assert_eq!((t.overall.errors(), t.overall.tokens), (1, 17));
        assert!((t.rtf - 0.25).abs() < 1e-12);
        assert!(t.latency.is_none());
        let md = r.markdown();
        assert!(
            md.contains("| 2 | u1 | WER | 1 / 4 | 25.0% | 1 / 0 / 0 | please send a report |"),
            "{md}"
        );
        assert!(md.contains("| overall (mixed tokens) | 3 | 1 / 17 | 5.9% | 1 | 0 | 0 |"), "{md}");
        assert!(md.contains("RTF 0.250"), "{md}");
    }

    #[test]
    fn json_round_trips() {
        let r = report("a", ["我哋今日飲茶", "", "我哋用 zoom 開會"]);
        let json = serde_json::to_string_pretty(&r).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["totals"]["metrics"]["wer"]["edits"]["rate"], 1.0);
        assert_eq!(value["utterances"][0]["metric"], "cer");
        assert_eq!(value["utterances"][0]["reference_norm"], "我 哋 今 日 去 饮 茶");
    }

    #[test]
    fn streaming_latency_percentiles() {
        let l = Latency::of(&[100, 900, 300, 200, 500, 400, 800, 700, 600, 1000], "wall").unwrap();
        assert_eq!((l.finals, l.p50_ms, l.p90_ms, l.max_ms), (10, 500, 900, 1000));
        let one = Latency::of(&[42], "audio").unwrap();
        assert_eq!((one.p50_ms, one.p90_ms), (42, 42));
        assert!(Latency::of(&[], "wall").is_none());
        let mut r = report("a", ["", "", ""]);
        r.settings = settings("a", "streaming", "max");
        r.utterances[0].latency_ms = vec![700, 1500];
        let r = Report::new(r.settings, r.utterances);
        assert_eq!(r.totals.latency.as_ref().unwrap().clock, "audio");
        assert!(r
            .markdown()
            .contains("Final latency (audio time, 2 finals): p50 700 ms, p90 1500 ms"));
    }

    #[test]
    fn comparison_shows_totals_and_changed_utterances() {
        let a = report("small", ["我哋今日去飲茶", "please send a report", "我哋用 zoom 開會"]);
        let b = report("large", ["我哋今日去飲茶", "please send the report", "我哋用 zoo 開會"]);
        let md = compare(&a, &b, ["a.json", "b.json"]);
        assert!(md.contains("| WER | 25.0% (1 / 4) | 0.0% (0 / 4) | -25.0 pt |"), "{md}");
        assert!(md.contains("| MER | 0.0% (0 / 6) | 16.7% (1 / 6) | +16.7 pt |"), "{md}");
        assert!(md.contains("| u1 | WER |"), "{md}");
        assert!(md.contains("| u2 | MER |"), "{md}");
        assert!(!md.contains("| u0 |"), "unchanged utterances are left out: {md}");
        let same = compare(&a, &a, ["a.json", "a.json"]);
        assert!(same.contains("None: every utterance has the same errors"), "{same}");
        let mut fewer = b.clone();
        fewer.utterances.pop();
        let md = compare(&a, &fewer, ["a", "b"]);
        assert!(md.contains("Only in A: u2."), "{md}");
    }

    #[test]
    fn cells_never_break_the_table() {
        assert_eq!(cell("a|b\nc"), "a\\|b c");
        assert_eq!(cell(" "), "(nothing)");
    }
}
