//! Choosing Whisper's language token and initial prompt for Cantonese.
//!
//! Hong Kong meetings mix Cantonese with English sentences. By default
//! (`yue+en`) each utterance is decoded in the language Whisper's detector finds
//! likelier of the two: Cantonese (with its prompt, where the model needs one) or
//! English (with none, so the Cantonese prompt cannot leak into English speech).
//! Cantonese sentences with English words in them sound Cantonese and stay so.
//!
//! Whisper large-v3 and large-v3-turbo have a `yue` (Cantonese) language token.
//! Older multilingual models only know `zh`: asked for `zh`, they write Mandarin
//! written forms (是, 的, 了, 在, 没有, 他们), so cantocap gives them an initial prompt
//! written in colloquial Cantonese (係, 嘅, 咗, 喺, 冇, 哋) that steers the decoder
//! towards written Cantonese.
//!
//! A trap: whisper.cpp maps `yue` to language id 99 whatever the model. On a model
//! without the `yue` token (51865 tokens instead of 51866), the token at that place is
//! `<|translate|>`, so asking such a model for `yue` silently translates into
//! English. [`plan_language`] never lets that happen, and never counts that token's
//! probability as Cantonese when choosing an utterance's language.

use crate::{Error, Result};

/// The default initial prompt for models that have no `yue` token: written
/// Cantonese in Hong Kong Traditional characters, full of the colloquial
/// characters we want back (係、嘅、咗、喺、冇、哋), with Chinese punctuation.
pub const CANTONESE_PROMPT: &str =
    "以下係廣東話錄音嘅逐字稿。我哋今日喺度傾咗好多嘢，佢話冇問題，係咪？啱，唔該晒。";

/// What a loaded model knows, as far as language choice is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelCaps {
    /// The model has language tokens at all (not an `.en` model).
    pub multilingual: bool,
    /// The model has the `yue` token (the large-v3 family: 51866 tokens).
    pub has_yue: bool,
}

impl ModelCaps {
    /// Capabilities from the vocabulary size in the model's header.
    pub fn from_n_vocab(n_vocab: i32) -> Self {
        Self { multilingual: n_vocab >= 51865, has_yue: n_vocab >= 51866 }
    }
}

/// One language an utterance may be decoded in: what Whisper is told, and with
/// which prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanguageChoice {
    /// The language as the user named it (`yue`, `en`, `zh`, …; `auto` for
    /// Whisper's own detection).
    pub code: String,
    /// The language token given to whisper.cpp: `zh` for Cantonese on a model
    /// without the `yue` token; `None` lets Whisper detect (for `auto`).
    pub whisper: Option<String>,
    /// The initial prompt for utterances in this language, if any.
    pub prompt: Option<String>,
    /// Whisper language ids whose detection probabilities count for this choice.
    ids: Vec<usize>,
}

/// The decision: which languages utterances are decoded in, and how.
///
/// With one choice every utterance is decoded in it. With several (the default on
/// multilingual models is `yue+en`) each utterance is decoded in the one Whisper's
/// language detection finds most likely among them ([`LanguagePlan::choose`]), so
/// an English sentence is written in English, with no Cantonese prompt to echo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanguagePlan {
    /// The languages to choose from, in the order the user gave them (never empty).
    pub choices: Vec<LanguageChoice>,
    /// Cantonese is among them but the model has no `yue` token, so it is decoded
    /// as `zh` with the Cantonese prompt.
    pub cantonese_via_zh: bool,
}

impl LanguagePlan {
    /// Whether each utterance's language must be detected (more than one choice).
    pub fn is_mixed(&self) -> bool {
        self.choices.len() > 1
    }

    /// The plan as the user would write it: `yue+en`, `en`, `auto`.
    pub fn describe(&self) -> String {
        self.choices.iter().map(|c| c.code.as_str()).collect::<Vec<_>>().join("+")
    }

    /// The choice for an utterance, from Whisper's language probabilities (indexed by
    /// language id, as whisper.cpp's detection returns them).
    ///
    /// The first listed language is the meeting's: an utterance is in it unless
    /// another listed language scores higher than it *and* than every language not
    /// listed. (A choice scores the sum of its languages: Cantonese counts `zh` too,
    /// unless Mandarin is listed itself.) So English needs Whisper to hear English
    /// first; speech Whisper takes for something else entirely (Chinese in an accent
    /// it half knows, say, heard as Thai) stays in the first language.
    pub fn choose(&self, probs: &[f32]) -> &LanguageChoice {
        &self.choices[self.choose_index(probs)]
    }

    /// How likely choice `index` is by Whisper's language probabilities: the sum
    /// over the tokens it counts (Cantonese counts `zh` too unless `zh` is listed).
    pub fn score(&self, index: usize, probs: &[f32]) -> f32 {
        self.choices
            .get(index)
            .map_or(0.0, |c| c.ids.iter().map(|&id| probs.get(id).copied().unwrap_or(0.0)).sum())
    }

    /// [`choose`](Self::choose), as an index into [`choices`](Self::choices).
    pub fn choose_index(&self, probs: &[f32]) -> usize {
        let score = |c: &LanguageChoice| -> f32 {
            c.ids.iter().map(|&id| probs.get(id).copied().unwrap_or(0.0)).sum()
        };
        let listed = |id: usize| self.choices.iter().any(|c| c.ids.contains(&id));
        let unlisted =
            (0..probs.len()).filter(|&id| !listed(id)).map(|id| probs[id]).fold(0.0f32, f32::max);
        let primary = score(&self.choices[0]);
        let mut best = (0, primary.max(unlisted));
        for (i, choice) in self.choices.iter().enumerate().skip(1) {
            let s = score(choice);
            if s > best.1 {
                best = (i, s);
            }
        }
        best.0
    }
}

/// Whisper's language codes (the order of its language tokens).
const WHISPER_LANGUAGES: &[&str] = &[
    "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv", "it",
    "id", "hi", "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no", "th", "ur",
    "hr", "bg", "lt", "la", "mi", "ml", "cy", "sk", "te", "fa", "lv", "bn", "sr", "az", "sl", "kn",
    "et", "mk", "br", "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw", "gl", "mr", "pa", "si",
    "km", "sn", "yo", "so", "af", "oc", "ka", "be", "tg", "sd", "gu", "am", "yi", "lo", "uz", "fo",
    "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl", "mg", "as", "tt", "haw", "ln",
    "ha", "ba", "jw", "su", "yue",
];

/// Is `code` one of Whisper's language codes?
pub fn is_whisper_language(code: &str) -> bool {
    WHISPER_LANGUAGES.contains(&code)
}

fn language_id(code: &str) -> Option<usize> {
    WHISPER_LANGUAGES.iter().position(|&c| c == code)
}

/// The default language setting on a multilingual model.
pub const DEFAULT_LANGUAGES: &str = "yue+en";

/// One name as the user wrote it, as a Whisper code (or `auto`).
fn canonical(name: &str) -> Result<String> {
    let name = name.trim().to_ascii_lowercase();
    Ok(match name.as_str() {
        "cantonese" | "zh-hk" | "zh_hk" => "yue".to_string(),
        "english" => "en".to_string(),
        "mandarin" => "zh".to_string(),
        "auto" => name,
        code if is_whisper_language(code) => name,
        _ => return Err(Error::UnknownLanguage { code: name }),
    })
}

/// Decide the languages, their tokens and prompts.
///
/// `requested` is what the user asked for: `None` (the default: `yue+en` on a
/// multilingual model, English on an English-only one); `"auto"` (let Whisper
/// detect, any language); a Whisper code such as `yue`, `zh`, `en`; or several
/// joined by `+` (`yue+en`, `yue+en+zh`), each utterance then decoded in the one it
/// sounds most like. Also accepted: `cantonese`, `zh-hk`, `english`, `mandarin`.
/// `prompt` overrides the automatic prompt for every language (`Some("")` means no
/// prompt at all); the automatic prompt is the Cantonese one, for Cantonese on
/// models without the `yue` token, and none otherwise.
pub fn plan_language(
    requested: Option<&str>,
    prompt: Option<&str>,
    caps: ModelCaps,
) -> Result<LanguagePlan> {
    let requested = match requested {
        Some(r) => r.to_string(),
        None if caps.multilingual => DEFAULT_LANGUAGES.to_string(),
        None => "en".to_string(),
    };
    let mut codes: Vec<String> = Vec::new();
    for name in requested.split(['+', ',']) {
        let code = canonical(name)?;
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    if codes.len() > 1 && codes.iter().any(|c| c == "auto") {
        return Err(Error::LanguageNotInModel {
            code: requested,
            reason: "auto detects any language and cannot be combined with others; \
                     list the languages instead (e.g. yue+en)"
                .into(),
        });
    }

    if !caps.multilingual {
        if let Some(code) = codes.iter().find(|c| *c != "en" && *c != "auto") {
            return Err(Error::LanguageNotInModel {
                code: code.clone(),
                reason: "the model is English-only (an .en model); use a multilingual model".into(),
            });
        }
        return Ok(LanguagePlan {
            choices: vec![LanguageChoice {
                code: "en".into(),
                whisper: Some("en".into()),
                prompt: prompt.filter(|p| !p.is_empty()).map(str::to_string),
                ids: vec![0],
            }],
            cantonese_via_zh: false,
        });
    }

    let has = |code: &str| codes.iter().any(|c| c == code);
    if !caps.has_yue && has("yue") && has("zh") {
        return Err(Error::LanguageNotInModel {
            code: requested,
            reason: "this model has no Cantonese (yue) token, so it cannot tell Cantonese \
                     from Mandarin; choose one of yue and zh"
                .into(),
        });
    }
    let zh = language_id("zh").expect("zh is a Whisper language");
    let yue = language_id("yue").expect("yue is a Whisper language");
    let mut via_zh = false;
    let choices = codes
        .iter()
        .map(|code| {
            let (whisper, auto_prompt, ids) = match code.as_str() {
                // Chinese speech the detector calls zh counts for Cantonese unless
                // Mandarin is a choice of its own.
                "yue" if caps.has_yue => {
                    (Some("yue"), None, if has("zh") { vec![yue] } else { vec![yue, zh] })
                }
                // Never pass `yue` to a model without the token: it would translate.
                // (Nor count its probability: id 99 is <|translate|> there.)
                "yue" => {
                    via_zh = true;
                    (Some("zh"), Some(CANTONESE_PROMPT), vec![zh])
                }
                "zh" if caps.has_yue && !has("yue") => (Some("zh"), None, vec![zh, yue]),
                "auto" => (None, None, Vec::new()),
                other => (Some(other), None, vec![language_id(other).expect("checked")]),
            };
            let prompt = match prompt {
                Some("") => None,
                Some(p) => Some(p.to_string()),
                None => auto_prompt.map(str::to_string),
            };
            LanguageChoice { code: code.clone(), whisper: whisper.map(str::to_string), prompt, ids }
        })
        .collect();
    Ok(LanguagePlan { choices, cantonese_via_zh: via_zh })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: ModelCaps = ModelCaps { multilingual: true, has_yue: false };
    const LARGE_V3: ModelCaps = ModelCaps { multilingual: true, has_yue: true };
    const TINY_EN: ModelCaps = ModelCaps { multilingual: false, has_yue: false };

    #[test]
    fn caps_follow_the_vocabulary_size() {
        assert_eq!(ModelCaps::from_n_vocab(51864), TINY_EN);
        assert_eq!(ModelCaps::from_n_vocab(51865), BASE);
        assert_eq!(ModelCaps::from_n_vocab(51866), LARGE_V3);
    }

    fn single(plan: &LanguagePlan) -> &LanguageChoice {
        assert_eq!(plan.choices.len(), 1, "{plan:?}");
        &plan.choices[0]
    }

    /// Detection probabilities with `p` for each named language.
    fn probs(pairs: &[(&str, f32)]) -> Vec<f32> {
        let mut v = vec![0.0; WHISPER_LANGUAGES.len()];
        for (code, p) in pairs {
            v[language_id(code).unwrap()] = *p;
        }
        v
    }

    #[test]
    fn yue_is_used_only_when_the_model_has_it() {
        let plan = plan_language(Some("yue"), None, LARGE_V3).unwrap();
        assert_eq!(single(&plan).whisper.as_deref(), Some("yue"));
        assert_eq!(single(&plan).prompt, None);
        assert!(!plan.cantonese_via_zh);
    }

    #[test]
    fn yue_on_an_older_model_becomes_zh_with_the_cantonese_prompt() {
        for asked in [Some("yue"), Some("YUE"), Some("cantonese"), Some("zh-HK")] {
            let plan = plan_language(asked, None, BASE).unwrap();
            assert_eq!(single(&plan).whisper.as_deref(), Some("zh"), "asked {asked:?}");
            assert_eq!(single(&plan).prompt.as_deref(), Some(CANTONESE_PROMPT));
            assert!(plan.cantonese_via_zh);
        }
    }

    #[test]
    fn the_default_chooses_between_cantonese_and_english() {
        let plan = plan_language(None, None, BASE).unwrap();
        assert_eq!(plan.describe(), "yue+en");
        assert!(plan.is_mixed());
        let (yue, en) = (&plan.choices[0], &plan.choices[1]);
        assert_eq!(yue.whisper.as_deref(), Some("zh"));
        assert_eq!(yue.prompt.as_deref(), Some(CANTONESE_PROMPT));
        assert_eq!(en.whisper.as_deref(), Some("en"));
        assert_eq!(en.prompt, None, "English gets no Cantonese prompt");
        assert!(plan.cantonese_via_zh);
        let on_large = plan_language(None, None, LARGE_V3).unwrap();
        assert_eq!(on_large.choices[0].whisper.as_deref(), Some("yue"));
        assert!(!on_large.cantonese_via_zh);
    }

    #[test]
    fn each_utterance_goes_to_the_likeliest_listed_language() {
        let plan = plan_language(Some("yue+en"), None, BASE).unwrap();
        assert_eq!(plan.choose(&probs(&[("zh", 0.6), ("en", 0.3)])).code, "yue");
        assert_eq!(plan.choose(&probs(&[("zh", 0.2), ("en", 0.7)])).code, "en");
        assert_eq!(plan.choose(&probs(&[("zh", 0.05), ("ja", 0.1), ("en", 0.4)])).code, "en");
        // Speech heard as some other language stays in the first listed one, even
        // where English scores above Chinese (espeak-ng's Chinese sounds Thai to base).
        assert_eq!(plan.choose(&probs(&[("th", 0.86), ("zh", 0.03), ("en", 0.04)])).code, "yue");
        // Nothing to go on: the first listed.
        assert_eq!(plan.choose(&[]).code, "yue");
        // On a model without yue, id 99 is <|translate|>: it must not count as
        // Cantonese (it counts as an unlisted language).
        let en_first = plan_language(Some("en+yue"), None, BASE).unwrap();
        assert_eq!(en_first.choose(&probs(&[("yue", 0.9), ("zh", 0.02), ("en", 0.05)])).code, "en");
        assert_eq!(en_first.choose(&probs(&[("zh", 0.5), ("en", 0.3)])).code, "yue");
    }

    #[test]
    fn on_models_with_yue_zh_detections_count_as_cantonese_unless_mandarin_is_listed() {
        let plan = plan_language(Some("yue+en"), None, LARGE_V3).unwrap();
        assert_eq!(plan.choose(&probs(&[("zh", 0.5), ("yue", 0.1), ("en", 0.4)])).code, "yue");
        // Split between yue and zh, Cantonese still outweighs English.
        assert_eq!(plan.choose(&probs(&[("zh", 0.3), ("yue", 0.3), ("en", 0.4)])).code, "yue");
        let plan = plan_language(Some("yue+en+zh"), None, LARGE_V3).unwrap();
        assert_eq!(plan.describe(), "yue+en+zh");
        assert_eq!(plan.choose(&probs(&[("zh", 0.5), ("yue", 0.1), ("en", 0.4)])).code, "zh");
        assert_eq!(plan.choose(&probs(&[("zh", 0.2), ("yue", 0.7)])).code, "yue");
    }

    #[test]
    fn cantonese_and_mandarin_together_need_the_yue_token() {
        let err = plan_language(Some("yue+zh"), None, BASE).unwrap_err();
        assert!(err.to_string().contains("cannot tell Cantonese"), "{err}");
    }

    #[test]
    fn sets_are_written_with_plus_or_comma_and_repeats_collapse() {
        let plan = plan_language(Some("Cantonese, english+en"), None, BASE).unwrap();
        assert_eq!(plan.describe(), "yue+en");
        let err = plan_language(Some("yue+auto"), None, BASE).unwrap_err();
        assert!(err.to_string().contains("cannot be combined"), "{err}");
        let err = plan_language(Some("yue+klingon"), None, BASE).unwrap_err();
        assert!(err.to_string().contains("klingon"), "{err}");
    }

    #[test]
    fn the_prompt_holds_the_colloquial_characters() {
        for c in ['係', '嘅', '咗', '喺', '冇', '哋'] {
            assert!(CANTONESE_PROMPT.contains(c), "{c} missing from the prompt");
        }
    }

    #[test]
    fn plain_zh_gets_no_cantonese_prompt() {
        let plan = plan_language(Some("zh"), None, BASE).unwrap();
        assert_eq!(single(&plan).whisper.as_deref(), Some("zh"));
        assert_eq!(single(&plan).prompt, None);
    }

    #[test]
    fn the_user_prompt_wins_and_empty_means_none() {
        let plan = plan_language(Some("yue"), Some("你好"), BASE).unwrap();
        assert_eq!(single(&plan).prompt.as_deref(), Some("你好"));
        let plan = plan_language(Some("yue"), Some(""), BASE).unwrap();
        assert_eq!(single(&plan).prompt, None);
        let plan = plan_language(None, Some("陳大文 Legco"), BASE).unwrap();
        assert!(plan.choices.iter().all(|c| c.prompt.as_deref() == Some("陳大文 Legco")));
    }

    #[test]
    fn auto_detects() {
        let plan = plan_language(Some("auto"), None, BASE).unwrap();
        assert_eq!(single(&plan).whisper, None);
        assert!(!plan.is_mixed());
    }

    #[test]
    fn english_only_models_default_to_english_and_refuse_chinese() {
        let plan = plan_language(None, None, TINY_EN).unwrap();
        assert_eq!(single(&plan).whisper.as_deref(), Some("en"));
        let err = plan_language(Some("yue"), None, TINY_EN).unwrap_err();
        assert!(err.to_string().contains("English-only"), "{err}");
        let err = plan_language(Some("en+yue"), None, TINY_EN).unwrap_err();
        assert!(err.to_string().contains("English-only"), "{err}");
    }

    #[test]
    fn unknown_codes_are_refused_by_name() {
        let err = plan_language(Some("klingon"), None, BASE).unwrap_err();
        assert!(err.to_string().contains("klingon"), "{err}");
    }

    #[test]
    fn yue_is_language_id_99() {
        // The trap this module exists for: on models without the yue token, id 99
        // lands on <|translate|>.
        assert_eq!(WHISPER_LANGUAGES.iter().position(|&c| c == "yue"), Some(99));
    }
}
