//! Choosing Whisper's language token and initial prompt for Cantonese.
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
//! English. [`plan_language`] never lets that happen.

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

/// The decision: what language token Whisper gets and with which prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanguagePlan {
    /// The language code passed to whisper.cpp; `None` means detect it.
    pub language: Option<String>,
    /// The initial prompt, if any.
    pub initial_prompt: Option<String>,
    /// The user asked for Cantonese but the model has no `yue` token, so `zh`
    /// with the Cantonese prompt is used instead.
    pub cantonese_via_zh: bool,
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

/// Decide the language token and prompt.
///
/// `requested` is what the user asked for: `None` (the default: Cantonese on a
/// multilingual model, English on an English-only one), `"auto"` (let Whisper
/// detect), or a Whisper code such as `yue`, `zh`, `en`. Also accepted for
/// Cantonese: `cantonese`, `zh-hk`. `prompt` overrides the automatic prompt
/// (`Some("")` means no prompt at all).
pub fn plan_language(
    requested: Option<&str>,
    prompt: Option<&str>,
    caps: ModelCaps,
) -> Result<LanguagePlan> {
    let requested = requested.map(|r| r.trim().to_ascii_lowercase());
    let code = match requested.as_deref() {
        None => {
            if caps.multilingual {
                "yue".to_string()
            } else {
                "en".to_string()
            }
        }
        Some("cantonese" | "zh-hk" | "zh_hk") => "yue".to_string(),
        Some("auto") => "auto".to_string(),
        Some(code) if is_whisper_language(code) => code.to_string(),
        Some(code) => return Err(Error::UnknownLanguage { code: code.to_string() }),
    };

    if !caps.multilingual {
        if code != "en" && code != "auto" {
            return Err(Error::LanguageNotInModel {
                code,
                reason: "the model is English-only (an .en model); use a multilingual model".into(),
            });
        }
        return Ok(LanguagePlan {
            language: Some("en".into()),
            initial_prompt: prompt.filter(|p| !p.is_empty()).map(str::to_string),
            cantonese_via_zh: false,
        });
    }

    let (language, auto_prompt, via_zh) = match code.as_str() {
        "yue" if caps.has_yue => (Some("yue"), None, false),
        // Never pass `yue` to a model without the token: it would translate.
        "yue" => (Some("zh"), Some(CANTONESE_PROMPT), true),
        "auto" => (None, None, false),
        other => (Some(other), None, false),
    };
    let initial_prompt = match prompt {
        Some("") => None,
        Some(p) => Some(p.to_string()),
        None => auto_prompt.map(str::to_string),
    };
    Ok(LanguagePlan {
        language: language.map(str::to_string),
        initial_prompt,
        cantonese_via_zh: via_zh,
    })
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

    #[test]
    fn yue_is_used_only_when_the_model_has_it() {
        let plan = plan_language(None, None, LARGE_V3).unwrap();
        assert_eq!(plan.language.as_deref(), Some("yue"));
        assert_eq!(plan.initial_prompt, None);
        assert!(!plan.cantonese_via_zh);
    }

    #[test]
    fn yue_on_an_older_model_becomes_zh_with_the_cantonese_prompt() {
        for asked in [None, Some("yue"), Some("YUE"), Some("cantonese"), Some("zh-HK")] {
            let plan = plan_language(asked, None, BASE).unwrap();
            assert_eq!(plan.language.as_deref(), Some("zh"), "asked {asked:?}");
            assert_eq!(plan.initial_prompt.as_deref(), Some(CANTONESE_PROMPT));
            assert!(plan.cantonese_via_zh);
        }
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
        assert_eq!(plan.language.as_deref(), Some("zh"));
        assert_eq!(plan.initial_prompt, None);
    }

    #[test]
    fn the_user_prompt_wins_and_empty_means_none() {
        let plan = plan_language(Some("yue"), Some("你好"), BASE).unwrap();
        assert_eq!(plan.initial_prompt.as_deref(), Some("你好"));
        let plan = plan_language(Some("yue"), Some(""), BASE).unwrap();
        assert_eq!(plan.initial_prompt, None);
    }

    #[test]
    fn auto_detects() {
        let plan = plan_language(Some("auto"), None, BASE).unwrap();
        assert_eq!(plan.language, None);
    }

    #[test]
    fn english_only_models_default_to_english_and_refuse_chinese() {
        assert_eq!(plan_language(None, None, TINY_EN).unwrap().language.as_deref(), Some("en"));
        let err = plan_language(Some("yue"), None, TINY_EN).unwrap_err();
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
