//! Script conversion with OpenCC; the conversion chains and why are described in the
//! [`text`](super) module.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Mutex, OnceLock};

use opencc_rust::{DefaultConfig, OpenCC};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The script captions are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Script {
    /// Hong Kong Traditional Chinese (OpenCC's Hong Kong standard forms).
    #[default]
    #[serde(alias = "zh-hk")]
    Hk,
    /// Taiwan Traditional Chinese, with Taiwan vocabulary (`s2twp`).
    #[serde(alias = "zh-tw")]
    Tw,
    /// Simplified Chinese.
    #[serde(alias = "zh-cn")]
    Cn,
    /// No conversion: the text exactly as Whisper wrote it.
    Raw,
}

impl Script {
    /// Every script, in the order of the command-line help.
    pub const ALL: [Script; 4] = [Script::Hk, Script::Tw, Script::Cn, Script::Raw];

    /// The short name used on the command line and in JSON: `hk`, `tw`, `cn` or `raw`.
    pub fn name(self) -> &'static str {
        match self {
            Script::Hk => "hk",
            Script::Tw => "tw",
            Script::Cn => "cn",
            Script::Raw => "raw",
        }
    }
}

impl fmt::Display for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Script {
    type Err = ParseScriptError;

    /// Accepts `hk`, `tw`, `cn`, `raw` and the language tags `zh-hk`, `zh-tw`, `zh-cn`,
    /// in any case, `_` for `-` too.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase().replace('_', "-");
        match lower.as_str() {
            "hk" | "zh-hk" => Ok(Script::Hk),
            "tw" | "zh-tw" => Ok(Script::Tw),
            "cn" | "zh-cn" => Ok(Script::Cn),
            "raw" => Ok(Script::Raw),
            _ => Err(ParseScriptError { input: s.to_owned() }),
        }
    }
}

/// A script name that is not one of `hk`, `tw`, `cn` or `raw`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseScriptError {
    input: String,
}

impl fmt::Display for ParseScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown script {:?}: choose hk (Hong Kong Traditional), tw (Taiwan Traditional), \
             cn (Simplified) or raw (no conversion)",
            self.input
        )
    }
}

impl std::error::Error for ParseScriptError {}

/// A stock OpenCC 1.4 configuration, usable alone through [`OpenccConverter`].
///
/// cantocap's own [`Script`] conversions combine the dictionaries of several of these;
/// see the [`text`](super) module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpenccConfig {
    /// Hong Kong Traditional to Simplified.
    Hk2s,
    /// Hong Kong Traditional to Simplified, with Mainland phrases.
    Hk2sp,
    /// Hong Kong Traditional to OpenCC standard Traditional.
    Hk2t,
    /// Japanese Shinjitai to Kyūjitai.
    Jp2t,
    /// Simplified to Hong Kong Traditional.
    S2hk,
    /// Simplified to Hong Kong Traditional, with Hong Kong phrases.
    S2hkp,
    /// Simplified to OpenCC standard Traditional.
    S2t,
    /// Simplified to Taiwan Traditional.
    S2tw,
    /// Simplified to Taiwan Traditional, with Taiwan phrases.
    S2twp,
    /// OpenCC standard Traditional to Hong Kong Traditional.
    T2hk,
    /// Kyūjitai to Japanese Shinjitai.
    T2jp,
    /// OpenCC standard Traditional to Simplified.
    T2s,
    /// OpenCC standard Traditional to Taiwan Traditional.
    T2tw,
    /// Taiwan Traditional to Simplified.
    Tw2s,
    /// Taiwan Traditional to Simplified, with Mainland phrases.
    Tw2sp,
    /// Taiwan Traditional to OpenCC standard Traditional.
    Tw2t,
}

impl OpenccConfig {
    /// Every stock configuration.
    pub const ALL: [OpenccConfig; 16] = [
        OpenccConfig::Hk2s,
        OpenccConfig::Hk2sp,
        OpenccConfig::Hk2t,
        OpenccConfig::Jp2t,
        OpenccConfig::S2hk,
        OpenccConfig::S2hkp,
        OpenccConfig::S2t,
        OpenccConfig::S2tw,
        OpenccConfig::S2twp,
        OpenccConfig::T2hk,
        OpenccConfig::T2jp,
        OpenccConfig::T2s,
        OpenccConfig::T2tw,
        OpenccConfig::Tw2s,
        OpenccConfig::Tw2sp,
        OpenccConfig::Tw2t,
    ];

    /// OpenCC's name for it, such as `s2hk` (its file is `s2hk.json`).
    pub fn name(self) -> &'static str {
        self.default_config().get_file_name().trim_end_matches(".json")
    }

    fn default_config(self) -> DefaultConfig {
        match self {
            OpenccConfig::Hk2s => DefaultConfig::HK2S,
            OpenccConfig::Hk2sp => DefaultConfig::HK2SP,
            OpenccConfig::Hk2t => DefaultConfig::HK2T,
            OpenccConfig::Jp2t => DefaultConfig::JP2T,
            OpenccConfig::S2hk => DefaultConfig::S2HK,
            OpenccConfig::S2hkp => DefaultConfig::S2HKP,
            OpenccConfig::S2t => DefaultConfig::S2T,
            OpenccConfig::S2tw => DefaultConfig::S2TW,
            OpenccConfig::S2twp => DefaultConfig::S2TWP,
            OpenccConfig::T2hk => DefaultConfig::T2HK,
            OpenccConfig::T2jp => DefaultConfig::T2JP,
            OpenccConfig::T2s => DefaultConfig::T2S,
            OpenccConfig::T2tw => DefaultConfig::T2TW,
            OpenccConfig::Tw2s => DefaultConfig::TW2S,
            OpenccConfig::Tw2sp => DefaultConfig::TW2SP,
            OpenccConfig::Tw2t => DefaultConfig::TW2T,
        }
    }
}

impl fmt::Display for OpenccConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OpenccConfig {
    type Err = Error;

    /// Accepts OpenCC's names (`s2hk`, also `s2hk.json`), in any case.
    fn from_str(s: &str) -> Result<Self> {
        let lower = s.trim().to_ascii_lowercase();
        let name = lower.trim_end_matches(".json");
        OpenccConfig::ALL.into_iter().find(|c| c.name() == name).ok_or_else(|| Error::Opencc {
            config: s.to_owned(),
            reason: format!(
                "no such OpenCC configuration; choose one of {}",
                OpenccConfig::ALL.map(OpenccConfig::name).join(", ")
            ),
        })
    }
}

/// One stock OpenCC configuration, such as `s2hk`.
///
/// ```
/// use cantocap::text::{OpenccConfig, OpenccConverter};
///
/// let s2hk = OpenccConverter::new(OpenccConfig::S2hk)?;
/// assert_eq!(s2hk.convert("发育"), "發育");
/// # Ok::<(), cantocap::Error>(())
/// ```
pub struct OpenccConverter {
    config: OpenccConfig,
    opencc: OpenCC,
}

impl OpenccConverter {
    /// Opens `config` from the dictionaries built into the binary.
    ///
    /// # Errors
    /// [`Error::Opencc`] when the dictionary folder cannot be written (see the
    /// [`text`](super) module) or OpenCC rejects the configuration.
    pub fn new(config: OpenccConfig) -> Result<Self> {
        let opencc = open(config.default_config().get_file_name(), config.name())?;
        Ok(OpenccConverter { config, opencc })
    }

    /// Converts `text`; see [`ScriptConverter::convert`] for what happens on failure.
    pub fn convert(&self, text: &str) -> String {
        run(&self.opencc, text)
    }

    /// The configuration this converter applies.
    pub fn config(&self) -> OpenccConfig {
        self.config
    }
}

impl fmt::Debug for OpenccConverter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenccConverter").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Converts text to one [`Script`]. Loading takes up to about 0.1 s, converting a
/// caption line a few microseconds: build one per script, keep it and share it between
/// threads (it is `Send + Sync`).
///
/// ```
/// use cantocap::text::{Script, ScriptConverter};
///
/// let hk = ScriptConverter::new(Script::Hk)?;
/// // Simplified, Taiwan and Hong Kong forms all come out in Hong Kong forms.
/// assert_eq!(hk.convert("我哋今日发布咗新版本，裡面有啲改动"), "我哋今日發佈咗新版本，裏面有啲改動");
/// // Converting twice changes nothing more.
/// let once = hk.convert("佢话你知喺边度");
/// assert_eq!(hk.convert(&once), once);
/// # Ok::<(), cantocap::Error>(())
/// ```
pub struct ScriptConverter {
    script: Script,
    /// `None` for [`Script::Raw`].
    chains: Option<Chains>,
}

/// The OpenCC conversions of one script.
struct Chains {
    /// For Simplified text (and for text mixing both scripts): every input form to the
    /// target.
    simplified: OpenCC,
    /// For text already in Traditional characters: only the variants and phrases of
    /// the target region, so no Simplified-to-Traditional step can misread a character
    /// that both scripts share (`借` is not `藉`, `准` is not `準`). `None` for
    /// [`Script::Cn`], whose one chain suits every input.
    traditional: Option<OpenCC>,
}

impl ScriptConverter {
    /// Builds the converter for `script`. [`Script::Raw`] needs no dictionaries.
    ///
    /// # Errors
    /// [`Error::Opencc`] when the dictionary folder cannot be written or OpenCC cannot
    /// load the configuration.
    pub fn new(script: Script) -> Result<Self> {
        let load = |custom: Option<CustomConfig>| -> Result<Option<OpenCC>> {
            match custom {
                Some(custom) => Ok(Some(open(custom.file, custom.file.trim_end_matches(".json"))?)),
                None => Ok(None),
            }
        };
        let chains = match load(custom_config(script, Written::Simplified))? {
            Some(simplified) => Some(Chains {
                simplified,
                traditional: load(custom_config(script, Written::Traditional))?,
            }),
            None => None,
        };
        Ok(ScriptConverter { script, chains })
    }

    /// Converts `text` to the script. Never fails: should OpenCC report an error (it
    /// has none for valid UTF-8), the text comes back unchanged rather than lost.
    ///
    /// For Hong Kong and Taiwan output, each clause is converted according to how it is
    /// written (see the module documentation): Simplified clauses from Simplified, clauses in
    /// Traditional characters only to the target region's forms.
    pub fn convert(&self, text: &str) -> String {
        let Some(chains) = &self.chains else {
            return text.to_owned();
        };
        let Some(traditional) = &chains.traditional else {
            return run(&chains.simplified, text);
        };
        clauses(text)
            .into_iter()
            .map(|(clause, written)| match written {
                Written::Simplified => run(&chains.simplified, clause),
                Written::Traditional => run(traditional, clause),
            })
            .collect()
    }

    /// Converts a caption's text: [`convert`](Self::convert), then
    /// [`tidy`](super::tidy) for Chinese typography (full-width punctuation in
    /// Chinese, no spaces between Chinese characters). Every caption the pipeline,
    /// the server and the webhooks deliver goes through this; [`Script::Raw`] text
    /// comes back as decoded.
    ///
    /// ```
    /// use cantocap::text::{Script, ScriptConverter};
    ///
    /// let hk = ScriptConverter::new(Script::Hk)?;
    /// assert_eq!(hk.caption("我 哋 今日 开会 , OK?"), "我哋今日開會，OK？");
    /// # Ok::<(), cantocap::Error>(())
    /// ```
    pub fn caption(&self, text: &str) -> String {
        super::tidy(&self.convert(text), self.script)
    }

    /// The script this converter writes.
    pub fn script(&self) -> Script {
        self.script
    }
}

impl fmt::Debug for ScriptConverter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScriptConverter").field("script", &self.script).finish_non_exhaustive()
    }
}

/// Converts `text` to `script` once, with a converter cached for the whole process:
/// the first call per script loads the dictionaries (about 0.1 s for Hong Kong and
/// Taiwan, a few milliseconds for Simplified), later calls cost only the conversion.
///
/// ```
/// assert_eq!(cantocap::text::convert("我哋用 Zoom 开会", cantocap::text::Script::Tw)?, "我哋用 Zoom 開會");
/// # Ok::<(), cantocap::Error>(())
/// ```
///
/// # Errors
/// As [`ScriptConverter::new`], on the first call for a script.
pub fn convert(text: &str, script: Script) -> Result<String> {
    static CONVERTERS: [OnceLock<ScriptConverter>; Script::ALL.len()] =
        [const { OnceLock::new() }; Script::ALL.len()];
    // `Script::ALL` lists the variants in declaration order.
    let slot = &CONVERTERS[script as usize];
    let converter = match slot.get() {
        Some(converter) => converter,
        None => {
            // Two threads may both build one here; the loser's is dropped.
            let built = ScriptConverter::new(script)?;
            slot.get_or_init(|| built)
        }
    };
    Ok(converter.convert(text))
}

/// Runs one conversion, keeping the input whenever OpenCC cannot convert it.
fn run(opencc: &OpenCC, text: &str) -> String {
    if text.is_ascii() {
        // Nothing for OpenCC to do, and it skips opencc-rust's process-wide lock.
        return text.to_owned();
    }
    if text.contains('\0') {
        // OpenCC takes C strings; convert around the NULs instead of refusing.
        return text.split('\0').map(|part| run(opencc, part)).collect::<Vec<_>>().join("\0");
    }
    opencc.convert(text).unwrap_or_else(|_| text.to_owned())
}

/// How a stretch of text is written, judged by the characters only one script has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    Simplified,
    Traditional,
}

/// Simplified characters that are no Traditional form (`发`, `们`, `车`); characters
/// both scripts use (`借`, `准`, `里`, `干`) are not among them. From OpenCC 1.4.2's
/// `STCharacters.txt`: the keys that are not among their own values.
const SIMPLIFIED_ONLY: &str = include_str!("simplified-only.txt");

/// Traditional characters that are no Simplified form (`發`, `們`, `車`, `裡`, `説`):
/// the keys of `TSCharacters.txt` that are not among their own values.
///
/// Both files are made from OpenCC's source distribution with:
/// `python3 -c "import sys; print(''.join(k for k, v in (l.rstrip('\n').split('\t') for l in open(sys.argv[1]) if '\t' in l) if k not in v.split(' ')))" STCharacters.txt`
const TRADITIONAL_ONLY: &str = include_str!("traditional-only.txt");

/// What one character says about how its text is written, if anything.
fn evidence(c: char) -> Option<Written> {
    static SETS: OnceLock<(HashSet<char>, HashSet<char>)> = OnceLock::new();
    let (simplified, traditional) = SETS.get_or_init(|| {
        let set = |chars: &str| chars.chars().filter(|c| !c.is_whitespace()).collect();
        (set(SIMPLIFIED_ONLY), set(TRADITIONAL_ONLY))
    });
    // A handful of characters (`藴`, `緼`) are listed both ways: they say nothing.
    match (simplified.contains(&c), traditional.contains(&c)) {
        (true, false) => Some(Written::Simplified),
        (false, true) => Some(Written::Traditional),
        _ => None,
    }
}

/// Characters both scripts use whose usual Traditional form is another one (`万` 萬,
/// `后` 後, `云` 雲, `里` 裏, `几` 幾): a weak sign of Simplified, heeded only when
/// nothing else in the text tells. Left out are those Hong Kong writing uses as they
/// are (`准` in 唔准, `台`, `涌`, `游` in 游水, `郁`, surnames such as `范`, `余`).
const LEANS_SIMPLIFIED: &str =
    "㐹万丑丰于云亘仆价伙佣党几划厂厘吁后咸夸尸岳帘干广征愿据斗朴杠极柜涂淀皂确种筑胜腊腌膻苹荐虫蜡蝎跖辟适里雇";

/// Is the `系` at `i` (a char index) the Simplified spelling of Cantonese `係`
/// (`唔系`, `系咪`), which Traditional text never writes?
fn cantonese_simplified_hai(chars: &[char], i: usize) -> bool {
    chars[i] == '系'
        && (i > 0 && chars[i - 1] == '唔'
            || chars.get(i + 1).is_some_and(|next| "咪唔咁嘅咩啦喇".contains(*next)))
}

/// Punctuation that ends a clause: Whisper may switch scripts between clauses.
fn ends_clause(c: char) -> bool {
    matches!(
        c,
        '，' | '。'
            | '？'
            | '！'
            | '；'
            | '：'
            | '、'
            | '…'
            | ','
            | '.'
            | '?'
            | '!'
            | ';'
            | ':'
            | '\n'
    )
}

/// Splits `text` into clauses, each ending after its punctuation, and says how each is
/// written; neighbours written alike are merged, so OpenCC sees as much context as it
/// can.
///
/// - A clause with a Simplified-only character is Simplified, even if it also holds
///   Traditional ones: the Simplified chain takes every Traditional form too, while
///   the Traditional chain would leave its Simplified characters.
/// - Else a clause with a Traditional-only character is Traditional.
/// - A clause with neither (`里面`, `借借`) is written like the clause before it, else
///   like the next one that tells.
/// - When no clause of the text tells, a clause holding a character that
///   [leans Simplified](LEANS_SIMPLIFIED) (`之后`, `三万`) is Simplified; any other is
///   Traditional and keeps its characters.
fn clauses(text: &str) -> Vec<(&str, Written)> {
    let chars: Vec<char> = text.chars().collect();
    // (start, end) in bytes, what the clause's characters tell, whether it leans Simplified.
    let mut pieces: Vec<(usize, usize, Option<Written>, bool)> = Vec::new();
    let (mut start, mut seen, mut leans) = (0, None, false);
    for (n, (i, c)) in text.char_indices().enumerate() {
        let told = match evidence(c) {
            None if cantonese_simplified_hai(&chars, n) => Some(Written::Simplified),
            told => told,
        };
        match (told, seen) {
            (Some(Written::Simplified), _) => seen = Some(Written::Simplified),
            (Some(Written::Traditional), None) => seen = Some(Written::Traditional),
            _ => {}
        }
        leans |= LEANS_SIMPLIFIED.contains(c);
        if ends_clause(c) {
            let end = i + c.len_utf8();
            pieces.push((start, end, seen.take(), std::mem::take(&mut leans)));
            start = end;
        }
    }
    if start < text.len() {
        pieces.push((start, text.len(), seen, leans));
    }
    let first_told = pieces.iter().find_map(|&(_, _, told, _)| told);
    let mut merged: Vec<(usize, usize, Written)> = Vec::new();
    for (start, end, told, leans) in pieces {
        let written = told
            .or(merged.last().map(|&(_, _, w)| w))
            .or(first_told)
            .unwrap_or(if leans { Written::Simplified } else { Written::Traditional });
        match merged.last_mut() {
            Some(last) if last.2 == written => last.1 = end,
            _ => merged.push((start, end, written)),
        }
    }
    merged.into_iter().map(|(start, end, written)| (&text[start..end], written)).collect()
}

/// A configuration cantocap writes next to the stock ones.
struct CustomConfig {
    /// Its file name in the dictionary folder.
    file: &'static str,
    /// Its JSON text.
    json: String,
}

/// The configuration converting text written as `from` to `script`; `None` where no
/// OpenCC call is needed (raw output) or one chain serves every input (Simplified).
fn custom_config(script: Script, from: Written) -> Option<CustomConfig> {
    use serde_json::{json, Value};

    fn ocd2(file: &str) -> Value {
        json!({ "type": "ocd2", "file": format!("{file}.ocd2") })
    }
    fn text(file: &str) -> Value {
        json!({ "type": "text", "file": file })
    }
    // "union": the longest match of any member wins; "short_circuit": the first member
    // that matches at all wins. Overrides sit in a union with OpenCC's phrases, so they
    // beat its single characters but never break up one of its longer phrases.
    fn group(policy: &str, dicts: Vec<Value>) -> Value {
        json!({ "type": "group", "match_policy": policy, "dicts": dicts })
    }
    fn step(dict: Value) -> Value {
        json!({ "dict": dict })
    }

    let st_phrases = group(
        "union",
        vec![text(YUE_S2T_FILE), ocd2("STPhrases"), ocd2("STPhrases_GeneratedFromRegionalPhrases")],
    );
    let s2t = step(group("short_circuit", vec![st_phrases.clone(), ocd2("STCharacters")]));
    let tw2t = |guard: Option<&str>| {
        let phrases = match guard {
            Some(file) => group("union", vec![text(file), ocd2("TWVariantsRevPhrases")]),
            None => ocd2("TWVariantsRevPhrases"),
        };
        step(group("short_circuit", vec![phrases, ocd2("TWVariantsRev")]))
    };
    let hk2t =
        step(group("short_circuit", vec![ocd2("HKVariantsRevPhrases"), ocd2("HKVariantsRev")]));
    let t2hk = step(group("short_circuit", vec![ocd2("HKVariantsPhrases"), ocd2("HKVariants")]));
    let t2twp = step(group(
        "short_circuit",
        vec![ocd2("TWPhrases"), ocd2("TWVariantsPhrases"), ocd2("TWVariants")],
    ));

    let (file, name, segmentation, chain) = match (script, from) {
        (Script::Raw, _) | (Script::Cn, Written::Traditional) => return None,
        // OpenCC's own t2hk: Hong Kong variants only. Taiwan forms stay (裡, 著, 麵
        // are also written in Hong Kong).
        (Script::Hk, Written::Traditional) => (
            "cantocap-hk-from-traditional.json",
            "Traditional Chinese to Hong Kong Traditional (cantocap)",
            ocd2("HKVariantsPhrases"),
            vec![t2hk],
        ),
        // Hong Kong forms (説, 衞, 温) to standard, then t2tw with Taiwan phrases.
        (Script::Tw, Written::Traditional) => (
            "cantocap-tw-from-traditional.json",
            "Traditional Chinese to Taiwan Traditional with Taiwan phrases (cantocap)",
            group(
                "union",
                vec![ocd2("HKVariantsRevPhrases"), ocd2("TWPhrases"), ocd2("TWVariantsPhrases")],
            ),
            vec![hk2t, t2twp],
        ),
        (Script::Hk, Written::Simplified) => (
            "cantocap-hk.json",
            "Any Chinese to Hong Kong Traditional (cantocap)",
            st_phrases,
            vec![s2t, tw2t(None), hk2t, t2hk],
        ),
        (Script::Tw, Written::Simplified) => (
            "cantocap-tw.json",
            "Any Chinese to Taiwan Traditional with Taiwan phrases (cantocap)",
            st_phrases,
            vec![s2t, tw2t(None), hk2t, t2twp],
        ),
        (Script::Cn, Written::Simplified) => (
            "cantocap-cn.json",
            "Any Chinese to Simplified (cantocap)",
            ocd2("TSPhrases"),
            // Without TSCharactersExt, which OpenCC marks "may output tofu" (characters
            // fonts lack) and its command-line tool skips by default: rare Traditional
            // characters had better stay readable in a caption.
            vec![
                tw2t(Some(YUE_CN_GUARD_FILE)),
                hk2t,
                step(group(
                    "short_circuit",
                    vec![
                        group("union", vec![text(YUE_T2S_FILE), ocd2("TSPhrases")]),
                        ocd2("TSCharacters"),
                    ],
                )),
            ],
        ),
    };
    let config = json!({
        "name": name,
        "normalization": [step(ocd2("CJK_Compatibility_Ideographs"))],
        "segmentation": { "type": "mmseg", "dict": segmentation },
        "conversion_chain": chain,
    });
    Some(CustomConfig {
        file,
        json: serde_json::to_string_pretty(&config).expect("a JSON value always serialises"),
    })
}

const YUE_S2T_FILE: &str = "cantocap-yue-s2t.txt";
const YUE_CN_GUARD_FILE: &str = "cantocap-yue-cn-guard.txt";
const YUE_T2S_FILE: &str = "cantocap-yue-t2s.txt";

/// Overrides for the Simplified → Traditional step of Hong Kong and Taiwan output.
///
/// Only contexts that cannot occur in Mandarin: OpenCC segments greedily from the left,
/// so a key like `都系` would also swallow the `都系` of `都系统地` and break `系统`.
const YUE_S2T: &[(&str, &str)] = &[
    // Cantonese 晒 "all, completely" (食晒, 多謝晒); OpenCC would read 曬 (sun-dry).
    // Its phrases (防晒, 晒黑, 晒干 …) still win, being longer.
    ("晒", "晒"),
    ("晒太阳", "曬太陽"),
    ("晒衫", "曬衫"),
    ("晒被", "曬被"),
    // Cantonese aspect particle 吓 (睇吓, 試吓); 嚇 "frighten" where the word says so.
    ("吓", "吓"),
    ("吓死", "嚇死"),
    ("吓亲", "嚇親"),
    ("吓到", "嚇到"),
    ("吓倒", "嚇倒"),
    ("吓坏", "嚇壞"),
    ("吓得", "嚇得"),
    ("吓唬", "嚇唬"),
    ("吓跑", "嚇跑"),
    ("吓人", "嚇人"),
    ("吓一跳", "嚇一跳"),
    ("惊吓", "驚嚇"),
    ("恐吓", "恐嚇"),
    // Cantonese 郁 "move" (唔好郁); OpenCC's 鬱 phrases (忧郁, 郁闷, 抑郁) still win.
    ("郁", "郁"),
    // Cantonese 借借 "excuse me" (唔该借借), not OpenCC's classical 藉藉; 唔准 "not
    // allowed", which Hong Kong writes with 准.
    ("借借", "借借"),
    ("唔准", "唔准"),
    // Simplified Cantonese writes 係 "to be" as 系.
    ("唔系", "唔係"),
    ("系咪", "係咪"),
    ("系唔系", "係唔係"),
    ("系咁", "係咁"),
    ("系嘅", "係嘅"),
    ("系咩", "係咩"),
    ("系啦", "係啦"),
    ("系喇", "係喇"),
    // Hong Kong places whose 涌 OpenCC knows only in their Simplified spelling.
    ("東涌", "東涌"),
    ("東涌線", "東涌綫"),
    ("鰂魚涌", "鰂魚涌"),
    ("蠔涌", "蠔涌"),
    ("大欖涌", "大欖涌"),
];

/// Simplified words the Taiwan → standard step of Simplified output must leave alone:
/// Taiwan writes 么 for 幺 and 著 for 着, but in Simplified text they mean 麼 and 著.
const YUE_CN_GUARD: &[(&str, &str)] = &[
    ("么", "么"),
    ("显著", "显著"),
    ("著录", "著录"),
    ("著称", "著称"),
    ("著于", "著于"),
    ("著书", "著书"),
    ("巨著", "巨著"),
    ("昭著", "昭著"),
];

/// Characters Simplified output keeps: OpenCC's simplifications (𠮶, 𩠌, 𫚭) lie
/// outside the Basic Multilingual Plane, most fonts cannot show them, and Simplified
/// Cantonese writing does not use them.
const YUE_T2S: &[(&str, &str)] = &[("嗰", "嗰"), ("餸", "餸"), ("鱲", "鱲")];

/// OpenCC text dictionary: sorted `key<TAB>value` lines.
fn text_dictionary(entries: &[(&str, &str)]) -> String {
    let sorted: BTreeMap<&str, &str> = entries.iter().copied().collect();
    sorted.iter().map(|(k, v)| format!("{k}\t{v}\n")).collect()
}

/// Everything cantocap writes into the dictionary folder besides opencc-rust's files.
fn own_files() -> Vec<(&'static str, String)> {
    let mut files = vec![
        (YUE_S2T_FILE, text_dictionary(YUE_S2T)),
        (YUE_CN_GUARD_FILE, text_dictionary(YUE_CN_GUARD)),
        (YUE_T2S_FILE, text_dictionary(YUE_T2S)),
    ];
    for from in [Written::Simplified, Written::Traditional] {
        files.extend(
            Script::ALL
                .into_iter()
                .filter_map(|script| custom_config(script, from))
                .map(|c| (c.file, c.json)),
        );
    }
    files
}

/// The opencc-rust release whose dictionaries are embedded: part of the cache key, so
/// upgrading it must change this (a unit test compares it with Cargo.lock).
const OPENCC_RUST_VERSION: &str = "2.0.2";

/// Opens a configuration file of the dictionary folder, rebuilding the folder once if
/// OpenCC cannot load it (a damaged or tampered cache).
fn open(file: &str, config: &str) -> Result<OpenCC> {
    let dir = dictionary_dir(false)
        .map_err(|reason| Error::Opencc { config: config.to_owned(), reason })?;
    match OpenCC::new(dir.join(file)) {
        Ok(opencc) => Ok(opencc),
        Err(first) => {
            let dir = dictionary_dir(true).map_err(|reason| Error::Opencc {
                config: config.to_owned(),
                reason: format!("{first}; rebuilding the dictionaries failed: {reason}"),
            })?;
            OpenCC::new(dir.join(file)).map_err(|e| Error::Opencc {
                config: config.to_owned(),
                reason: format!("OpenCC cannot load {}: {e}", dir.join(file).display()),
            })
        }
    }
}

/// The folder holding every dictionary and configuration, written once per process.
/// With `rebuild`, the cached folder is replaced first.
fn dictionary_dir(rebuild: bool) -> std::result::Result<PathBuf, String> {
    static DIR: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut dir = DIR.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let (Some(path), false) = (dir.as_ref(), rebuild) {
        return Ok(path.clone());
    }
    let files = own_files();
    let name = format!("opencc-{:016x}", cache_key(&files));
    let mut problems = Vec::new();
    for root in cache_roots() {
        match install(&root, &name, &files, rebuild) {
            Ok(path) => {
                *dir = Some(path.clone());
                return Ok(path);
            }
            Err(e) => problems.push(format!("{}: {e}", root.display())),
        }
    }
    // No usable cache folder: a private folder for this process only.
    let private = std::env::temp_dir().join(format!(
        "cantocap-{name}-{}-{}",
        std::process::id(),
        unique_suffix()
    ));
    match stage(&private, &files) {
        Ok(()) => {
            *dir = Some(private.clone());
            Ok(private)
        }
        Err(e) => {
            problems.push(format!("{}: {e}", private.display()));
            Err(format!("cannot write OpenCC's dictionaries anywhere ({})", problems.join("; ")))
        }
    }
}

/// The per-user cache folders to try, best first.
fn cache_roots() -> Vec<PathBuf> {
    let absolute = |var: &str| std::env::var_os(var).map(PathBuf::from).filter(|p| p.is_absolute());
    let mut roots = Vec::new();
    if let Some(xdg) = absolute("XDG_CACHE_HOME") {
        roots.push(xdg.join("cantocap"));
    }
    if cfg!(windows) {
        if let Some(local) = absolute("LOCALAPPDATA") {
            roots.push(local.join("cantocap"));
        }
    } else if let Some(home) = absolute("HOME") {
        roots.push(home.join(".cache").join("cantocap"));
    }
    roots
}

/// Makes `root/name` hold the dictionaries: reuses it if present (unless `rebuild`),
/// otherwise stages a fresh folder and renames it into place.
fn install(
    root: &Path,
    name: &str,
    files: &[(&str, String)],
    rebuild: bool,
) -> std::io::Result<PathBuf> {
    let target = root.join(name);
    let complete = |dir: &Path| files.iter().all(|(file, _)| dir.join(file).is_file());
    if !rebuild && complete(&target) {
        return Ok(target);
    }
    if target.exists() {
        // Damaged, or OpenCC could not load it: move it aside (another process may be
        // reading it) and build a new one.
        let trash = root.join(format!(".{name}.old-{}", unique_suffix()));
        match fs::rename(&target, &trash) {
            // Best effort: a failure leaves only an unused folder behind.
            Ok(()) => drop(fs::remove_dir_all(&trash)),
            // Another process moved it first.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    fs::create_dir_all(root)?;
    let staging = root.join(format!(".{name}.tmp-{}", unique_suffix()));
    let staged = stage(&staging, files).and_then(|()| fs::rename(&staging, &target));
    match staged {
        Ok(()) => Ok(target),
        // Another process renamed its copy into place first: use that one.
        Err(_) if complete(&target) => {
            let _ = fs::remove_dir_all(&staging);
            Ok(target)
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            Err(e)
        }
    }
}

/// Writes a complete dictionary folder at `dir`, which must not exist yet.
fn stage(dir: &Path, files: &[(&str, String)]) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    let stock = OpenccConfig::ALL.map(OpenccConfig::default_config);
    opencc_rust::generate_static_dictionaries(dir, &stock).map_err(std::io::Error::other)?;
    for (file, contents) in files {
        fs::write(dir.join(file), contents)?;
    }
    Ok(())
}

/// A name part no other staging folder of this or another process shares.
fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// FNV-1a over everything that decides the folder's contents: stable across Rust
/// releases, unlike `DefaultHasher`.
fn cache_key(files: &[(&str, String)]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    };
    feed(OPENCC_RUST_VERSION.as_bytes());
    for (file, contents) in files {
        feed(file.as_bytes());
        feed(contents.as_bytes());
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sentences of `eval/dev.tsv`, then mixed, Mandarin and edge-case text.
    const SENTENCES: &[&str] = &[
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
        "我哋用 Zoom 開會，send 個 email 俾你",
        "我哋用 Zoom 开会，send 个 email 俾你",
        "佢话今晚七点半喺铜锣湾等我哋，唔系咪又迟到？",
        "呢個 project 嘅 deadline 係下個禮拜五，大家記得 update 個 spreadsheet。",
        "我覺得呢個方案唔係好掂，不如我哋再傾吓。",
        "佢啱啱搵咗份新工，喺中環返工，揾到好多錢。",
        "头发好长，要去理发；小朋友发育得好快。",
        "后来我哋喺里面等，皇后像广场好干净，唔好干涉佢。",
        "台风嚟紧，天文台挂咗八号风球。",
        "多謝晒你嘅幫忙，真係唔該晒！今日好熱，記得防晒。",
        "唔好郁！我哋而家喺東涌站，下一站係鰂魚涌。",
        "睇吓先啦，唔使咁急，吓死我咩。",
        "我們在這裡開會，看著螢幕說話，衛生部的網路很慢。",
        "佢話明天會嚟，説唔定會遲啲，衞生署話機場快綫停咗。",
        "Version 2.0 發佈咗，下載速度快咗 30%，價錢係 $1,299.50。",
        "2024年3月15日，溫度係25.5°C，濕度 80%。",
        "他说这个软件的信息很有用，我们明天再讨论。",
        "「你好」，『世界』——（測試）……！？",
        "乜嘢事呀？嗰個人喺度做緊咩嘢？佢哋啲嘢冇晒喇。",
        "我哋畀咗錢，佢俾咗張單我，啱唔啱？",
    ];

    fn converters() -> Vec<ScriptConverter> {
        Script::ALL.into_iter().map(|s| ScriptConverter::new(s).unwrap()).collect()
    }

    fn is_han(c: char) -> bool {
        matches!(c as u32,
            0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x323AF)
    }

    #[test]
    fn script_names_parse_and_display() {
        for script in Script::ALL {
            assert_eq!(script.name().parse::<Script>(), Ok(script));
            assert_eq!(script.to_string(), script.name());
        }
        assert_eq!("HK".parse(), Ok(Script::Hk));
        assert_eq!(" Zh-TW ".parse(), Ok(Script::Tw));
        assert_eq!("zh_cn".parse(), Ok(Script::Cn));
        assert_eq!("RAW".parse(), Ok(Script::Raw));
        assert_eq!(Script::default(), Script::Hk);
        let err = "zh-hant".parse::<Script>().unwrap_err().to_string();
        for name in ["\"zh-hant\"", "hk", "tw", "cn", "raw"] {
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn script_serde_is_lowercase() {
        assert_eq!(serde_json::to_string(&Script::Tw).unwrap(), "\"tw\"");
        for script in Script::ALL {
            let json = serde_json::to_string(&script).unwrap();
            assert_eq!(serde_json::from_str::<Script>(&json).unwrap(), script);
        }
        assert_eq!(serde_json::from_str::<Script>("\"zh-hk\"").unwrap(), Script::Hk);
        assert!(serde_json::from_str::<Script>("\"Hong Kong\"").is_err());
    }

    #[test]
    fn opencc_config_names() {
        let names: std::collections::HashSet<_> =
            OpenccConfig::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), OpenccConfig::ALL.len());
        for config in OpenccConfig::ALL {
            assert_eq!(config.name().parse::<OpenccConfig>().unwrap(), config);
            assert_eq!(
                format!("{config}.json").to_uppercase().parse::<OpenccConfig>().unwrap(),
                config
            );
        }
        assert_eq!(OpenccConfig::S2twp.name(), "s2twp");
        let err = "s2x".parse::<OpenccConfig>().unwrap_err().to_string();
        assert!(err.contains("s2x") && err.contains("s2hk") && err.contains("tw2sp"), "{err}");
    }

    #[test]
    fn every_stock_config_opens() {
        for config in OpenccConfig::ALL {
            let converter = OpenccConverter::new(config).unwrap();
            assert_eq!(converter.config(), config);
        }
        assert_eq!(OpenccConverter::new(OpenccConfig::S2hk).unwrap().convert("发育"), "發育");
    }

    #[test]
    fn converting_twice_changes_nothing() {
        for converter in converters() {
            for &sentence in SENTENCES {
                let once = converter.convert(sentence);
                let twice = converter.convert(&once);
                assert_eq!(twice, once, "{} of {sentence:?}", converter.script());
            }
        }
    }

    #[test]
    fn raw_is_identity() {
        let raw = ScriptConverter::new(Script::Raw).unwrap();
        assert_eq!(raw.script(), Script::Raw);
        for &sentence in SENTENCES {
            assert_eq!(raw.convert(sentence), sentence);
        }
    }

    /// Colloquial Cantonese characters without a Simplified counterpart.
    const CANTONESE: &str = "係嘅咗喺冇哋嘢啲咁乜嚟佢唔畀俾啱噉諗睇瞓攰攞嗰咩喇囉嘞掂冚嬲餸揸嘥嚿冧㗎噃喎啩咪仲黐靚晒吓郁";

    #[test]
    fn cantonese_characters_survive_traditional_output() {
        for script in [Script::Hk, Script::Tw] {
            let converter = ScriptConverter::new(script).unwrap();
            for c in CANTONESE.chars() {
                let s = c.to_string();
                assert_eq!(converter.convert(&s), s, "{script}");
            }
            assert_eq!(converter.convert(CANTONESE), CANTONESE, "{script}");
        }
        // 揾 is both the Simplified form of 搵 and the Hong Kong standard glyph.
        let hk = ScriptConverter::new(Script::Hk).unwrap();
        let tw = ScriptConverter::new(Script::Tw).unwrap();
        assert_eq!(hk.convert("搵揾"), "揾揾");
        assert_eq!(tw.convert("搵揾"), "搵搵");
    }

    #[test]
    fn cantonese_characters_in_simplified_output() {
        let cn = ScriptConverter::new(Script::Cn).unwrap();
        for c in "嘅咗喺冇哋嘢啲咁乜嚟佢唔畀俾啱睇瞓攞嗰咩喇嘞掂嬲餸揸晒吓郁揾".chars()
        {
            let s = c.to_string();
            assert_eq!(cn.convert(&s), s);
        }
        assert_eq!(cn.convert("係唔係諗搵囉"), "系唔系谂揾啰");
        assert!(cn.convert(CANTONESE).chars().all(|c| (c as u32) < 0x10000));
    }

    #[test]
    fn cantonese_words_are_not_misread_as_simplified() {
        let hk = ScriptConverter::new(Script::Hk).unwrap();
        for (input, want) in [
            ("多謝晒", "多謝晒"),
            ("食晒啲嘢", "食晒啲嘢"),
            ("防晒", "防曬"),
            ("晒太阳", "曬太陽"),
            ("睇吓", "睇吓"),
            ("吓死我", "嚇死我"),
            ("唔好郁", "唔好郁"),
            ("忧郁", "憂鬱"),
            ("我系香港人，系咪？", "我係香港人，係咪？"),
            ("唔系", "唔係"),
            ("我都系统地", "我都系統地"),
            ("東涌", "東涌"),
            ("东涌", "東涌"),
            ("鰂魚涌", "鰂魚涌"),
            ("汹涌", "洶湧"),
        ] {
            assert_eq!(hk.convert(input), want, "{input}");
        }
    }

    /// (Simplified, Traditional) pairs where each side is valid only in its own script.
    const PAIRS: &[(char, char)] = &[
        ('发', '發'),
        ('这', '這'),
        ('们', '們'),
        ('说', '說'),
        ('国', '國'),
        ('会', '會'),
        ('时', '時'),
        ('来', '來'),
        ('个', '個'),
        ('过', '過'),
        ('还', '還'),
        ('没', '沒'),
        ('对', '對'),
        ('话', '話'),
        ('东', '東'),
        ('车', '車'),
        ('见', '見'),
        ('开', '開'),
        ('门', '門'),
        ('问', '問'),
        ('间', '間'),
        ('点', '點'),
        ('钱', '錢'),
        ('饭', '飯'),
        ('电', '電'),
        ('脑', '腦'),
        ('边', '邊'),
        ('讲', '講'),
        ('听', '聽'),
        ('觉', '覺'),
        ('帮', '幫'),
        ('谢', '謝'),
        ('铁', '鐵'),
        ('签', '簽'),
        ('报', '報'),
        ('广', '廣'),
        ('语', '語'),
        ('识', '識'),
        ('买', '買'),
        ('卖', '賣'),
        ('书', '書'),
        ('学', '學'),
        ('长', '長'),
        ('马', '馬'),
        ('龙', '龍'),
        ('业', '業'),
        ('经', '經'),
        ('现', '現'),
        ('实', '實'),
        ('应', '應'),
        ('该', '該'),
        ('样', '樣'),
        ('为', '為'),
        ('银', '銀'),
        ('乐', '樂'),
        ('头', '頭'),
        ('气', '氣'),
        ('华', '華'),
        ('湾', '灣'),
        ('饮', '飲'),
        ('厅', '廳'),
        ('员', '員'),
        ('请', '請'),
        ('让', '讓'),
        ('鸡', '雞'),
        ('鱼', '魚'),
        ('虾', '蝦'),
        ('与', '與'),
        ('兴', '興'),
        ('传', '傳'),
        ('网', '網'),
        ('络', '絡'),
        ('软', '軟'),
        ('件', '件'),
        ('币', '幣'),
        ('万', '萬'),
        ('亿', '億'),
        ('号', '號'),
    ];

    #[test]
    fn clauses_are_judged_by_the_characters_only_one_script_has() {
        use Written::{Simplified as S, Traditional as T};
        let judged = |text| -> Vec<(String, Written)> {
            clauses(text).into_iter().map(|(c, w)| (c.to_owned(), w)).collect()
        };
        let cases: &[(&str, Vec<(&str, Written)>)] = &[
            ("唔該借借，我要落車。", vec![("唔該借借，我要落車。", T)]),
            ("唔该借借，我要落車。", vec![("唔该借借，", S), ("我要落車。", T)]),
            // Shared characters only: follow the neighbour, before or after.
            ("里面，我们在这里", vec![("里面，我们在这里", S)]),
            ("我哋喺度。借借，", vec![("我哋喺度。借借，", T)]),
            // Nothing tells anywhere: characters that lean Simplified decide.
            ("之后再讲", vec![("之后再讲", S)]),
            ("唔准食", vec![("唔准食", T)]),
            ("借借", vec![("借借", T)]),
            // Simplified Cantonese 系 for 係.
            ("佢系咪唔舒服", vec![("佢系咪唔舒服", S)]),
            ("Zoom meeting", vec![("Zoom meeting", T)]),
        ];
        for (text, want) in cases {
            let want: Vec<(String, Written)> =
                want.iter().map(|&(c, w)| (c.to_owned(), w)).collect();
            assert_eq!(judged(text), want, "{text}");
        }
        assert!(clauses("").is_empty());
    }

    #[test]
    fn output_is_in_the_target_script_only() {
        let simplified: String =
            PAIRS.iter().map(|p| p.0).filter(|&c| !PAIRS.iter().any(|p| p.1 == c)).collect();
        let traditional: String =
            PAIRS.iter().map(|p| p.1).filter(|&c| !PAIRS.iter().any(|p| p.0 == c)).collect();
        let mut inputs: Vec<String> = SENTENCES.iter().map(|s| s.to_string()).collect();
        inputs.push(simplified.clone());
        inputs.push(traditional.clone());
        inputs.push(format!("{simplified}{traditional}"));
        // Variants that belong to one region only.
        // Hong Kong output keeps Taiwan forms of Traditional text (裡, 啟), as t2hk does.
        let not_hk = simplified.clone();
        let not_tw = format!("{simplified}裏説衞綫揾爲");
        let not_cn = format!("{traditional}後裏裡説衞爲綫係");
        for (script, forbidden) in
            [(Script::Hk, not_hk), (Script::Tw, not_tw), (Script::Cn, not_cn)]
        {
            let converter = ScriptConverter::new(script).unwrap();
            for input in &inputs {
                let out = converter.convert(input);
                let bad: String = out.chars().filter(|c| forbidden.contains(*c)).collect();
                assert!(bad.is_empty(), "{script}: {input:?} -> {out:?} keeps {bad:?}");
            }
        }
    }

    #[test]
    fn non_chinese_text_is_untouched() {
        let samples = [
            "Zoom meeting at 3:30pm, ID 123-456-789.",
            "email: a.b@example.com; https://example.com/path?q=1",
            "  two  spaces\tand tab\nnew line\r\nend  ",
            "“” 「」 『』 ——…… ！？；：（）【】《》、。，〜·",
            "½ ① ⅷ 🙂 é ñ ß ＡＢＣ１２３ ｶﾀｶﾅ",
            "",
        ];
        for converter in converters() {
            for sample in samples {
                assert_eq!(converter.convert(sample), sample, "{}", converter.script());
            }
            // In mixed sentences everything that is not a Chinese character keeps its
            // place (Taiwan phrases may change the number of Chinese characters).
            for &sentence in SENTENCES {
                let out = converter.convert(sentence);
                let rest = |s: &str| s.chars().filter(|&c| !is_han(c)).collect::<String>();
                assert_eq!(rest(&out), rest(sentence), "{}: {sentence:?}", converter.script());
            }
        }
    }

    #[test]
    fn nul_characters_do_not_lose_text() {
        let cn = ScriptConverter::new(Script::Cn).unwrap();
        assert_eq!(cn.convert("發\0發\0"), "发\0发\0");
    }

    #[test]
    fn converters_are_shared_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<ScriptConverter>();
        send_sync::<OpenccConverter>();

        let hk = ScriptConverter::new(Script::Hk).unwrap();
        let expected: Vec<String> = SENTENCES.iter().map(|s| hk.convert(s)).collect();
        std::thread::scope(|scope| {
            for t in 0..6 {
                let (hk, expected) = (&hk, &expected);
                scope.spawn(move || {
                    for round in 0..50 {
                        let i = (t * 7 + round) % SENTENCES.len();
                        assert_eq!(hk.convert(SENTENCES[i]), expected[i]);
                        let script = Script::ALL[(t + round) % 4];
                        let one_off = convert(SENTENCES[i], script).unwrap();
                        assert_eq!(convert(&one_off, script).unwrap(), one_off);
                    }
                });
            }
        });
    }

    #[test]
    fn one_off_convert_matches_a_converter() {
        for converter in converters() {
            for &sentence in SENTENCES {
                assert_eq!(
                    convert(sentence, converter.script()).unwrap(),
                    converter.convert(sentence)
                );
            }
        }
    }

    #[test]
    fn opencc_rust_version_matches_cargo_lock() {
        let lock = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock"))
            .expect("Cargo.lock");
        let version = lock
            .split("[[package]]")
            .find(|p| p.contains("name = \"opencc-rust\""))
            .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
            .expect("opencc-rust in Cargo.lock");
        assert_eq!(
            version.trim_matches('"'),
            OPENCC_RUST_VERSION,
            "update OPENCC_RUST_VERSION so caches of the old dictionaries are not reused"
        );
    }

    #[test]
    fn dictionary_folder_is_installed_once_and_repaired() {
        let root = tempfile::tempdir().unwrap();
        let files = own_files();
        // Processes racing for the same folder all end up with one complete copy.
        let paths: Vec<PathBuf> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| install(root.path(), "dicts", &files, false).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(paths.iter().all(|p| *p == root.path().join("dicts")));
        let entries: Vec<_> =
            fs::read_dir(root.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(entries, ["dicts"], "no staging folders left behind");
        let dir = &paths[0];
        assert!(OpenCC::new(dir.join("cantocap-hk.json")).is_ok());
        assert!(OpenCC::new(dir.join("s2twp.json")).is_ok());

        // A damaged folder is rebuilt.
        fs::write(dir.join("STCharacters.ocd2"), "garbage").unwrap();
        fs::remove_file(dir.join(YUE_S2T_FILE)).unwrap();
        let again = install(root.path(), "dicts", &files, false).unwrap();
        assert_eq!(&again, dir);
        assert!(OpenCC::new(dir.join("cantocap-hk.json")).is_ok());
        fs::write(dir.join("STCharacters.ocd2"), "garbage").unwrap();
        install(root.path(), "dicts", &files, true).unwrap();
        assert!(OpenCC::new(dir.join("cantocap-hk.json")).is_ok());
        let entries: Vec<_> = fs::read_dir(root.path()).unwrap().collect();
        assert_eq!(entries.len(), 1);
    }

    #[test]
    fn cache_key_follows_contents() {
        let files = own_files();
        let mut changed = files.clone();
        changed[0].1.push_str("x\tx\n");
        assert_eq!(cache_key(&files), cache_key(&own_files()));
        assert_ne!(cache_key(&files), cache_key(&changed));
    }
}
