//! Redaction settings of the server: the `[redact]` table of the TOML file.
//!
//! Every session's captions are redacted in its engine thread, before the journal,
//! the broadcast to viewers and the ingest client's copy (see
//! [`CaptionRedactor`](crate::text::CaptionRedactor)); what was redacted is counted
//! per session and in `/metrics` as `cantocap_redactions_total{kind=…}`.
//!
//! ```toml
//! [redact]
//! types = ["hkid", "phone", "card"]   # or "all" (the default) or "none"
//! mask_keep = 4                       # ****4567 instead of labels
//! english_labels = true               # [PHONE] instead of [電話號碼]
//! [redact.labels]                     # or labels of your own (without digits)
//! phone = "[TEL]"
//! ```

use serde::{Deserialize, Deserializer};

use crate::text::{Labels, RedactOptions, RedactionTypes, Replacement};

/// The `[redact]` table: each setting optional, the rest stay at their defaults
/// (every kind, Chinese labels).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedactSection {
    /// Kinds to redact: a list (`["phone", "hkid"]`) or a string (`"all"`, `"none"`,
    /// `"phone,email"`).
    #[serde(deserialize_with = "kinds")]
    pub types: Option<RedactionTypes>,
    /// Mask all digits but the last N instead of writing labels.
    pub mask_keep: Option<usize>,
    /// English labels (`[PHONE]`).
    pub english_labels: bool,
    /// Labels of your own, per kind (kinds left out keep their default label).
    pub labels: Option<Labels>,
}

impl RedactSection {
    /// Puts the settings given into `options`.
    pub fn apply(&self, options: &mut RedactOptions) {
        if let Some(types) = self.types {
            options.types = types;
        }
        if let Some(keep) = self.mask_keep {
            options.replacement = Replacement::MaskKeepLast(keep);
        }
        if self.english_labels {
            options.labels = Labels::english();
        }
        if let Some(labels) = &self.labels {
            options.labels = labels.clone();
        }
    }
}

fn kinds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<RedactionTypes>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Kinds {
        One(String),
        Many(Vec<String>),
    }
    let parsed = match Kinds::deserialize(d)? {
        Kinds::One(s) => s.parse(),
        Kinds::Many(list) => list.iter().map(|k| k.parse()).collect(),
    };
    parsed.map(Some).map_err(serde::de::Error::custom)
}

/// What the start-up log says: `redacting hkid,phone,…` or `redaction off`.
pub fn describe(options: &RedactOptions) -> String {
    if options.types == RedactionTypes::NONE {
        return "redaction off (--redact none)".to_owned();
    }
    let how = match options.replacement {
        Replacement::Label => "labels",
        Replacement::MaskKeepLast(_) => "masks",
    };
    format!("redacting {} ({how})", options.types)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::ConfigFile;

    #[test]
    fn the_redact_table_parses() {
        let file = ConfigFile::parse(
            "[redact]\ntypes = [\"hkid\", \"phone\"]\nmask_keep = 4\n[redact.labels]\nphone = \"[TEL]\"\n",
        )
        .unwrap();
        let mut options = RedactOptions::default();
        file.redact.unwrap().apply(&mut options);
        assert_eq!(options.types, "hkid,phone".parse().unwrap());
        assert_eq!(options.replacement, Replacement::MaskKeepLast(4));
        assert_eq!(options.labels.phone, "[TEL]");
        assert_eq!(options.labels.hkid, Labels::chinese().hkid);

        let file = ConfigFile::parse("[redact]\ntypes = \"none\"\n").unwrap();
        assert_eq!(file.redact.unwrap().types, Some(RedactionTypes::NONE));
        let err = ConfigFile::parse("[redact]\ntypes = [\"passport\"]\n").unwrap_err();
        assert!(err.contains("passport"), "{err}");
        assert!(ConfigFile::parse("[redact]\nbogus = 1\n").is_err());
        // Without the table, the defaults: everything.
        assert!(ConfigFile::parse("").unwrap().redact.is_none());
        assert_eq!(
            describe(&RedactOptions::default()),
            "redacting hkid,phone,email,card,account (labels)"
        );
    }
}
