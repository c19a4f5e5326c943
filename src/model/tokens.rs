//! Whisper's vocabulary: reading CTranslate2's vocabulary file and byte-decoding BPE tokens.
//!
//! CTranslate2 stores the tokens as the tokenizer spells them: GPT-2 byte-level BPE
//! strings, where each byte is shown as a printable character (a space is `Ġ`, a newline
//! `Ċ`). whisper.cpp wants the raw bytes, so each character is mapped back through the
//! inverse of GPT-2's `bytes_to_unicode`, exactly as whisper.cpp's
//! `models/convert-h5-to-ggml.py` does.

use std::path::Path;

use crate::{Error, Result};

/// The token that ends the text vocabulary; whisper.cpp adds it and everything after it
/// (start-of-transcript, languages, tasks, timestamps) itself.
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// Number of characters GPT-2's byte-to-unicode mapping uses: code points 0..324.
const MAP_LEN: usize = 324;

/// Whether GPT-2 shows byte `b` as the character with the same code point.
const fn is_printable(b: u32) -> bool {
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff)
}

/// Code point → byte, the inverse of GPT-2's `bytes_to_unicode`; -1 where unused.
const CHAR_TO_BYTE: [i16; MAP_LEN] = {
    let mut table = [-1i16; MAP_LEN];
    let mut n = 0;
    let mut b = 0u32;
    while b < 256 {
        if is_printable(b) {
            table[b as usize] = b as i16;
        } else {
            // Unprintable bytes take the code points from 256 on, in byte order.
            table[256 + n] = b as i16;
            n += 1;
        }
        b += 1;
    }
    table
};

/// The character GPT-2's byte-level BPE uses to show byte `b`.
pub fn byte_to_char(b: u8) -> char {
    let mut n = 0u32;
    for x in 0..u32::from(b) {
        if !is_printable(x) {
            n += 1;
        }
    }
    if is_printable(u32::from(b)) {
        char::from(b)
    } else {
        char::from_u32(256 + n).expect("code points below 324 are valid")
    }
}

/// The byte a GPT-2 byte-level BPE character stands for, if it is one.
pub fn char_to_byte(c: char) -> Option<u8> {
    let i = c as usize;
    (i < MAP_LEN && CHAR_TO_BYTE[i] >= 0).then(|| CHAR_TO_BYTE[i] as u8)
}

/// Decodes a byte-level BPE token (such as `Ġhello`) into its bytes (` hello`).
/// `None` if a character is outside GPT-2's byte alphabet.
pub fn decode_token(token: &str) -> Option<Vec<u8>> {
    token.chars().map(char_to_byte).collect()
}

/// Encodes bytes as a byte-level BPE string: the inverse of [`decode_token`].
pub fn encode_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| byte_to_char(b)).collect()
}

/// A model's vocabulary as CTranslate2 stores it: token strings by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocabulary {
    /// The token strings, indexed by token id.
    pub tokens: Vec<String>,
}

impl Vocabulary {
    /// Reads `vocabulary.json` (a JSON list, written by CTranslate2 ≥ 4) or else
    /// `vocabulary.txt` (one token a line, written by older versions) from `dir`.
    pub fn read(dir: &Path) -> Result<Self> {
        let json = dir.join("vocabulary.json");
        let txt = dir.join("vocabulary.txt");
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|e| match e.kind() {
                std::io::ErrorKind::InvalidData => Error::BadCt2Model {
                    path: path.to_path_buf(),
                    reason: "the vocabulary is not UTF-8 text".into(),
                },
                _ => Error::Io { path: path.to_path_buf(), source: e },
            })
        };
        if json.is_file() {
            let text = read(&json)?;
            let tokens: Vec<String> =
                serde_json::from_str(&text).map_err(|e| Error::BadCt2Model {
                    path: json.clone(),
                    reason: format!("the vocabulary is not a JSON list of strings: {e}"),
                })?;
            Ok(Self { tokens })
        } else if txt.is_file() {
            Ok(Self::from_lines(&read(&txt)?))
        } else {
            Err(Error::BadCt2Model {
                path: dir.to_path_buf(),
                reason: "the folder has no vocabulary.txt (or vocabulary.json)".into(),
            })
        }
    }

    /// Parses `vocabulary.txt` text: one token a line; a token may be empty.
    pub fn from_lines(text: &str) -> Self {
        let text = text.strip_suffix('\n').unwrap_or(text);
        let tokens = if text.is_empty() {
            Vec::new()
        } else {
            text.split('\n').map(|t| t.strip_suffix('\r').unwrap_or(t).to_owned()).collect()
        };
        Self { tokens }
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The id of `<|endoftext|>`, if present.
    pub fn end_of_text(&self) -> Option<usize> {
        self.tokens.iter().position(|t| t == END_OF_TEXT)
    }

    /// The byte-decoded text tokens: every token before `<|endoftext|>`, which is what
    /// whisper.cpp expects in a ggml file. Errors name the first token that is not
    /// byte-level BPE.
    pub fn text_token_bytes(&self) -> std::result::Result<Vec<Vec<u8>>, String> {
        let eot = self
            .end_of_text()
            .ok_or_else(|| format!("the vocabulary has no {END_OF_TEXT} token"))?;
        self.tokens[..eot]
            .iter()
            .enumerate()
            .map(|(id, t)| {
                decode_token(t).ok_or_else(|| {
                    format!("token {id} ({t:?}) is not a GPT-2 byte-level BPE string")
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_map_is_a_bijection_matching_gpt2() {
        let mut seen = std::collections::HashSet::new();
        for b in 0..=255u8 {
            let c = byte_to_char(b);
            assert!(seen.insert(c));
            assert_eq!(char_to_byte(c), Some(b));
        }
        // Spot values from GPT-2's bytes_to_unicode.
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
        assert_eq!(byte_to_char(0), 'Ā');
        assert_eq!(byte_to_char(b'a'), 'a');
        assert_eq!(byte_to_char(0x7f), 'ġ');
        assert_eq!(byte_to_char(0xad), 'Ń');
        assert_eq!(byte_to_char(0xe5), 'å');
        assert_eq!(char_to_byte('中'), None);
    }

    #[test]
    fn decodes_tokens_to_bytes() {
        assert_eq!(decode_token("Ġhello").unwrap(), b" hello");
        assert_eq!(decode_token("ĊĊ").unwrap(), b"\n\n");
        // "场" is e5 9c ba in UTF-8; the vocabulary spells it "åľº".
        assert_eq!(decode_token("åľº").unwrap(), "场".as_bytes());
        assert_eq!(encode_bytes("场".as_bytes()), "åľº");
        assert_eq!(decode_token("").unwrap(), b"");
        assert_eq!(decode_token("<|en|>"), Some(b"<|en|>".to_vec()));
        assert_eq!(decode_token("中文"), None);
    }

    #[test]
    fn text_tokens_stop_before_end_of_text() {
        let v = Vocabulary::from_lines("!\nĠa\n\n<|endoftext|>\n<|startoftranscript|>\n");
        assert_eq!(v.len(), 5);
        assert_eq!(v.end_of_text(), Some(3));
        assert_eq!(
            v.text_token_bytes().unwrap(),
            vec![b"!".to_vec(), b" a".to_vec(), b"".to_vec()]
        );
        let no_eot = Vocabulary::from_lines("a\nb\n");
        assert!(no_eot.text_token_bytes().unwrap_err().contains("<|endoftext|>"));
        let bad = Vocabulary::from_lines("a\n中\n<|endoftext|>\n");
        assert!(bad.text_token_bytes().unwrap_err().contains("token 1"));
    }

    #[test]
    fn reads_txt_and_json_vocabularies() {
        let dir = tempfile::tempdir().unwrap();
        let err = Vocabulary::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("vocabulary.txt"), "{err}");
        std::fs::write(dir.path().join("vocabulary.txt"), "a\n\nb\n").unwrap();
        assert_eq!(Vocabulary::read(dir.path()).unwrap().tokens, ["a", "", "b"]);
        std::fs::write(dir.path().join("vocabulary.json"), r#"["x", "Ġy"]"#).unwrap();
        assert_eq!(Vocabulary::read(dir.path()).unwrap().tokens, ["x", "Ġy"]);
        std::fs::write(dir.path().join("vocabulary.json"), "{}").unwrap();
        assert!(Vocabulary::read(dir.path()).is_err());
    }
}
