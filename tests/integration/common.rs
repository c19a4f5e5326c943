//! Fixtures shared by the integration tests: model paths, speech, word error rate.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A ggml test model under models/, failing loudly if it is not there.
pub fn model(name: &str) -> PathBuf {
    let path = root().join("models").join(name);
    assert!(
        path.is_file(),
        "test model {} is missing: run models/fetch-test-model.sh (./setup.sh test does)",
        path.display()
    );
    path
}

/// The multilingual base model, f16 (the default model).
pub fn base() -> PathBuf {
    model("ggml-base.bin")
}

/// Whisper decodes take both cores: one at a time.
pub fn whisper_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Speak `text` with espeak-ng into a WAV file (22.05 kHz mono, as espeak writes it).
pub fn speak(voice: &str, text: &str, path: &Path) {
    let status = Command::new("espeak-ng")
        .args(["-v", voice, "-s", "150", "-w"])
        .arg(path)
        .arg(text)
        .status()
        .expect("espeak-ng is needed for the speech tests: apt-get install espeak-ng");
    assert!(status.success(), "espeak-ng failed for {text:?}");
}

/// Run sox with these arguments.
pub fn sox(args: &[&str]) {
    let status = Command::new("sox")
        .args(args)
        .status()
        .expect("sox is needed for the audio tests: apt-get install sox");
    assert!(status.success(), "sox {args:?} failed");
}

/// Lowercase words with punctuation removed.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == '-')
        .map(|w| w.chars().filter(|c| c.is_alphanumeric() || *c == '\'').collect::<String>())
        .map(|w| w.to_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Word error rate of `hypothesis` against `reference` (edit distance over words).
pub fn wer(reference: &str, hypothesis: &str) -> f64 {
    let r = words(reference);
    let h = words(hypothesis);
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            let sub = prev[j] + usize::from(rw != hw);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[h.len()] as f64 / r.len().max(1) as f64
}

/// Characters that exist only in Simplified Chinese, and their Traditional forms.
pub const SIMPLIFIED_TRADITIONAL: &[(char, char)] = &[
    ('们', '們'),
    ('这', '這'),
    ('说', '說'),
    ('国', '國'),
    ('会', '會'),
    ('时', '時'),
    ('个', '個'),
    ('来', '來'),
    ('对', '對'),
    ('发', '發'),
    ('为', '為'),
    ('过', '過'),
    ('还', '還'),
    ('没', '沒'),
    ('现', '現'),
    ('学', '學'),
    ('话', '話'),
    ('见', '見'),
    ('长', '長'),
    ('东', '東'),
    ('车', '車'),
    ('门', '門'),
    ('问', '問'),
    ('间', '間'),
    ('开', '開'),
    ('关', '關'),
    ('电', '電'),
    ('书', '書'),
    ('语', '語'),
    ('听', '聽'),
    ('买', '買'),
    ('卖', '賣'),
    ('饭', '飯'),
    ('气', '氣'),
    ('钱', '錢'),
    ('讲', '講'),
    ('给', '給'),
    ('让', '讓'),
    ('谁', '誰'),
    ('请', '請'),
    ('样', '樣'),
    ('点', '點'),
    ('热', '熱'),
    ('岁', '歲'),
    ('儿', '兒'),
    ('觉', '覺'),
    ('实', '實'),
    ('经', '經'),
    ('动', '動'),
    ('头', '頭'),
    ('题', '題'),
    ('欢', '歡'),
    ('谢', '謝'),
    ('们', '們'),
    ('里', '裡'),
    ('么', '麼'),
    ('吗', '嗎'),
    ('简', '簡'),
    ('体', '體'),
    ('汉', '漢'),
    ('华', '華'),
    ('应', '應'),
    ('该', '該'),
    ('机', '機'),
    ('会', '會'),
    ('员', '員'),
    ('种', '種'),
    ('从', '從'),
    ('进', '進'),
    ('几', '幾'),
    ('万', '萬'),
    ('与', '與'),
];

/// Simplified-only characters found in `text`.
pub fn simplified_only(text: &str) -> Vec<char> {
    // 里 is also a Traditional character (as in 公里), so it does not count.
    text.chars()
        .filter(|c| *c != '里' && SIMPLIFIED_TRADITIONAL.iter().any(|(s, _)| s == c))
        .collect()
}

/// Traditional-only characters found in `text`.
pub fn traditional_only(text: &str) -> Vec<char> {
    text.chars().filter(|c| SIMPLIFIED_TRADITIONAL.iter().any(|(_, t)| t == c)).collect()
}

/// The everyday Cantonese sentences of the shared evaluation set (`eval/dev.tsv`),
/// copied here because the tests run from the repository alone.
pub const DEV_SENTENCES: [&str; 20] = [
    "我哋今日去飲茶。",
    "你食咗飯未呀？",
    "呢間餐廳嘅點心好好食。",
    "聽日會唔會落雨？",
    "我而家喺公司開緊會。",
    "麻煩你講慢啲。",
    "地鐵站喺邊度？",
    "佢哋下個禮拜去旅行。",
    "呢份文件要老闆簽名。",
    "多謝你幫手。",
    "我今晚要返屋企食飯。",
    "你識唔識講廣東話？",
    "呢件衫幾多錢？",
    "佢啱啱出咗去。",
    "我哋聽朝九點鐘開會。",
    "唔好意思，我遲到咗。",
    "你想飲咖啡定係奶茶？",
    "呢個星期六我冇時間。",
    "請你幫我睇下呢份報告。",
    "香港嘅夜景好靚。",
];

/// Is this a CJK ideograph?
pub fn is_cjk(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}' | '\u{20000}'..='\u{2FFFF}')
}

#[test]
fn wer_counts_edits() {
    assert_eq!(wer("the cat sat", "the cat sat"), 0.0);
    assert!((wer("the cat sat", "the cat") - 1.0 / 3.0).abs() < 1e-9);
    assert!((wer("the cat sat", "a cat sat on") - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(wer("Hello, world!", "hello world"), 0.0);
}

/// RMS level of a WAV file in dBFS.
pub fn rms_dbfs(path: &Path) -> f64 {
    let samples = cantocap::audio::read_wav(path).unwrap().samples;
    let power = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>();
    10.0 * (power / samples.len().max(1) as f64).log10()
}

/// Rooms where nobody speaks, as 16 kHz mono WAV files in `dir` (issue 12): 30 s of
/// pink noise at −48 dBFS RMS (a ventilated room), 20 s of digital silence, and 20 s
/// of 50 + 100 Hz mains hum at −40 dBFS. sox runs in repeatable mode, so the noise is
/// the same every time.
pub fn quiet_rooms(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let path = |name: &str| dir.join(format!("{name}.wav"));
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let out = ["-r", "16000", "-c", "1", "-b", "16"];
    let (pink, silence, hum) = (path("pink"), path("silence"), path("hum"));
    let (h50, h100) = (path("h50"), path("h100"));
    sox(&[&["-R", "-n"], &out[..], &[&s(&pink), "synth", "30", "pinknoise", "vol", "0.0192"]]
        .concat());
    sox(&[&["-n"], &out[..], &[&s(&silence), "trim", "0", "20"]].concat());
    sox(&[&["-n"], &out[..], &[&s(&h50), "synth", "20", "sine", "50", "vol", "0.012"]].concat());
    sox(&[&["-n"], &out[..], &[&s(&h100), "synth", "20", "sine", "100", "vol", "0.006"]].concat());
    sox(&["-m", "-v", "1", &s(&h50), "-v", "1", &s(&h100), &s(&hum)]);
    let pink_db = rms_dbfs(&pink);
    assert!((pink_db + 48.0).abs() < 0.5, "pink noise at {pink_db:.1} dBFS, not −48");
    let hum_db = rms_dbfs(&hum);
    assert!((hum_db + 40.0).abs() < 1.0, "hum at {hum_db:.1} dBFS, not −40");
    vec![("pink noise", pink), ("silence", silence), ("hum", hum)]
}

/// The `cantocap` binary as a user runs it in the repository: the default model and
/// voice activity detector, no environment settings.
pub fn cantocap_default() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cantocap"));
    cmd.current_dir(root()).env_remove("CANTOCAP_MODEL").env_remove("CANTOCAP_VAD_MODEL");
    cmd
}

/// Fails loudly unless the set-up's models for the default mode are present.
pub fn default_models() {
    base();
    model("ggml-silero-vad.bin");
}
