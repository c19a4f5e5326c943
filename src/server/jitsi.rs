//! Jitsi's side of the skynet streaming protocol: the `[jitsi]` configuration,
//! the JSON Web Tokens Jigasi signs, and the languages its frames name. The
//! WebSocket adaptor itself is in the transport (`http/jitsi.rs`).
//!
//! A Jitsi JWT is the credential of `GET /streaming-whisper/ws/{meeting}`, checked
//! as skynet checks it: a `kid` header; RS256 with the public key
//! `keys_dir/{sha256(kid)}.pem` (hex, skynet's layout; read on every connection so
//! new keys work without a restart), or HS512 with the secret `[jitsi.secrets]`
//! gives for that `kid`; `aud` one of `audiences`; `exp` in the future, give or take
//! [`LEEWAY_SECS`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Clock difference tolerated on `exp` (and `nbf`), in seconds.
pub const LEEWAY_SECS: u64 = 30;

/// Shortest HS512 secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// The `[jitsi]` table of the config file:
///
/// ```toml
/// [jitsi]
/// audiences = ["jitsi"]                   # Jigasi's jwt_audience (its default is "jitsi")
/// keys_dir = "/etc/cantocap/jitsi-keys"   # RS256 public keys, {sha256(kid)}.pem
/// zh_means = "yue"                        # "zh" in a frame header: yue (default) or zh
/// [jitsi.secrets]                         # HS512 shared secrets by kid (optional)
/// "jigasi" = "at-least-32-bytes-of-shared-secret"
/// ```
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JitsiConfig {
    /// Accepted `aud` values; a token needs one of them.
    pub audiences: Vec<String>,
    /// Folder of RS256 public keys (PEM), each named by the hex SHA-256 of its kid.
    #[serde(default)]
    pub keys_dir: Option<PathBuf>,
    /// How a `zh` language in a frame header is decoded.
    #[serde(default)]
    pub zh_means: ZhMeans,
    /// HS512 shared secrets by kid.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
}

impl std::fmt::Debug for JitsiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JitsiConfig")
            .field("audiences", &self.audiences)
            .field("keys_dir", &self.keys_dir)
            .field("zh_means", &self.zh_means)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// What Jigasi's `zh` means: Jitsi meetings name Chinese `zh` whatever is spoken.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ZhMeans {
    /// Cantonese (the default).
    #[default]
    Yue,
    /// Mandarin.
    Zh,
}

impl JitsiConfig {
    /// Check the table: audiences given, the keys folder readable, secrets long
    /// enough, at least one way to check a token.
    pub fn check(&self) -> Result<(), String> {
        if self.audiences.is_empty() || self.audiences.iter().any(|a| a.trim().is_empty()) {
            return Err("jitsi: audiences must name at least one audience (Jigasi's org.jitsi.jigasi.transcription.whisper.jwt_audience, \"jitsi\" by default)".into());
        }
        if let Some(dir) = &self.keys_dir {
            std::fs::read_dir(dir)
                .map_err(|e| format!("jitsi: keys_dir {} cannot be read: {e}", dir.display()))?;
        }
        if let Some((kid, _)) = self.secrets.iter().find(|(_, s)| s.len() < MIN_SECRET_BYTES) {
            return Err(format!(
                "jitsi: the secret of kid {kid:?} is shorter than {MIN_SECRET_BYTES} bytes"
            ));
        }
        if self.keys_dir.is_none() && self.secrets.is_empty() {
            return Err("jitsi: give keys_dir (RS256 public keys) or [jitsi.secrets] (HS512), or both: without either no token can be checked".into());
        }
        Ok(())
    }

    /// Check a token; the kid it was signed with.
    pub fn verify(&self, token: Option<&str>) -> Result<String, Refusal> {
        let token = token.filter(|t| !t.is_empty()).ok_or(Refusal::NoToken)?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| Refusal::Malformed)?;
        let kid = header.kid.filter(|k| !k.is_empty()).ok_or(Refusal::NoKid)?;
        let key = match header.alg {
            Algorithm::RS256 => self.public_key(&kid)?,
            Algorithm::HS512 => match self.secrets.get(&kid) {
                Some(secret) => DecodingKey::from_secret(secret.as_bytes()),
                None => return Err(Refusal::UnknownKid(kid)),
            },
            other => return Err(Refusal::AlgNotAllowed(format!("{other:?}"))),
        };
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&self.audiences);
        validation.set_required_spec_claims(&["exp", "aud"]);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        match jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation) {
            Ok(_) => Ok(kid),
            Err(e) => Err(match e.kind() {
                ErrorKind::ExpiredSignature => Refusal::Expired,
                ErrorKind::ImmatureSignature => Refusal::NotYetValid,
                ErrorKind::InvalidAudience => Refusal::WrongAudience,
                ErrorKind::InvalidSignature => Refusal::BadSignature,
                ErrorKind::MissingRequiredClaim(claim) => Refusal::MissingClaim(claim.clone()),
                _ => Refusal::Malformed,
            }),
        }
    }

    /// The RS256 key of `kid`, read now from `keys_dir`.
    fn public_key(&self, kid: &str) -> Result<DecodingKey, Refusal> {
        let Some(dir) = &self.keys_dir else {
            return Err(Refusal::UnknownKid(kid.to_string()));
        };
        let path = key_path(dir, kid);
        let pem = std::fs::read(&path).map_err(|_| Refusal::UnknownKid(kid.to_string()))?;
        DecodingKey::from_rsa_pem(&pem).map_err(|_| Refusal::BadKeyFile(path))
    }

    /// The Whisper language for a frame header's language: `xx-YY` cut to `xx`,
    /// `zh` as [`ZhMeans`] says; `None` (the server's languages) for an empty or
    /// unknown one.
    pub fn language(&self, header: &str) -> Option<String> {
        let code = header.split(['-', '_']).next().unwrap_or("").trim().to_ascii_lowercase();
        match code.as_str() {
            "zh" if self.zh_means == ZhMeans::Yue => Some("yue".into()),
            code if crate::asr::language::is_whisper_language(code) => Some(code.to_string()),
            _ => None,
        }
    }
}

/// Where the public key of `kid` lives: `dir/{hex sha256(kid)}.pem`.
pub fn key_path(dir: &Path, kid: &str) -> PathBuf {
    let hash = Sha256::digest(kid.as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{hex}.pem"))
}

/// Why a token was refused (HTTP 401).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization: Bearer` header and no `?auth_token=`.
    NoToken,
    /// Not a JWT.
    Malformed,
    /// No `kid` in the header.
    NoKid,
    /// No key or secret for this kid.
    UnknownKid(String),
    /// The key file is there but is not an RSA public key in PEM.
    BadKeyFile(PathBuf),
    /// Neither RS256 nor HS512.
    AlgNotAllowed(String),
    /// The signature does not match the key.
    BadSignature,
    /// `exp` has passed.
    Expired,
    /// `nbf` is still ahead.
    NotYetValid,
    /// `aud` is none of the configured audiences.
    WrongAudience,
    /// A claim that must be there (`exp`, `aud`) is not.
    MissingClaim(String),
}

impl Refusal {
    /// A short name, for the audit log and the JSON `code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoToken => "no_token",
            Self::Malformed => "malformed_token",
            Self::NoKid => "no_kid",
            Self::UnknownKid(_) => "unknown_kid",
            Self::BadKeyFile(_) => "bad_key_file",
            Self::AlgNotAllowed(_) => "alg_not_allowed",
            Self::BadSignature => "bad_signature",
            Self::Expired => "token_expired",
            Self::NotYetValid => "token_not_yet_valid",
            Self::WrongAudience => "wrong_audience",
            Self::MissingClaim(_) => "missing_claim",
        }
    }

    /// What the client is told.
    pub fn message(&self) -> String {
        match self {
            Self::NoToken => {
                "a Jitsi JWT is needed (Authorization: Bearer, or ?auth_token=)".into()
            }
            Self::Malformed => "the token is not a valid JWT".into(),
            Self::NoKid => "the JWT has no kid header".into(),
            Self::UnknownKid(kid) => format!("unknown kid {kid:?}: no public key or secret for it"),
            Self::BadKeyFile(_) => {
                "the public key of this kid cannot be read as an RSA key in PEM".into()
            }
            Self::AlgNotAllowed(alg) => format!("alg {alg} is not allowed (RS256, HS512)"),
            Self::BadSignature => "the JWT's signature does not match its kid's key".into(),
            Self::Expired => "the JWT has expired (exp)".into(),
            Self::NotYetValid => "the JWT is not valid yet (nbf)".into(),
            Self::WrongAudience => "the JWT's audience (aud) is not accepted here".into(),
            Self::MissingClaim(claim) => format!("the JWT has no {claim} claim"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(zh_means: ZhMeans) -> JitsiConfig {
        JitsiConfig {
            audiences: vec!["jitsi".into()],
            keys_dir: None,
            zh_means,
            secrets: BTreeMap::from([("jigasi".into(), "x".repeat(MIN_SECRET_BYTES))]),
        }
    }

    #[test]
    fn header_languages_become_whisper_languages() {
        let yue = config(ZhMeans::Yue);
        assert_eq!(yue.language("en-US").as_deref(), Some("en"));
        assert_eq!(yue.language("zh-CN").as_deref(), Some("yue"));
        assert_eq!(yue.language("zh").as_deref(), Some("yue"));
        assert_eq!(yue.language("yue-HK").as_deref(), Some("yue"));
        assert_eq!(yue.language("FR_ca").as_deref(), Some("fr"));
        assert_eq!(yue.language(""), None);
        assert_eq!(yue.language("klingon"), None);
        assert_eq!(config(ZhMeans::Zh).language("zh-TW").as_deref(), Some("zh"));
    }

    #[test]
    fn keys_are_named_by_the_sha256_of_their_kid() {
        let path = key_path(Path::new("/keys"), "jigasi");
        let name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(name.len(), 64 + 4);
        assert!(name.ends_with(".pem") && !name.contains("jigasi"), "{name}");
        assert_eq!(
            key_path(Path::new("/keys"), "../../etc/passwd").parent(),
            Some(Path::new("/keys"))
        );
    }

    #[test]
    fn the_table_is_checked() {
        assert!(config(ZhMeans::Yue).check().is_ok());
        let mut c = config(ZhMeans::Yue);
        c.audiences.clear();
        assert!(c.check().unwrap_err().contains("audiences"));
        let mut c = config(ZhMeans::Yue);
        c.secrets.insert("short".into(), "abc".into());
        let e = c.check().unwrap_err();
        assert!(e.contains("\"short\"") && !e.contains("abc"), "{e}");
        let mut c = config(ZhMeans::Yue);
        c.keys_dir = Some("/nonexistent/jitsi-keys".into());
        assert!(c.check().unwrap_err().contains("/nonexistent/jitsi-keys"));
        c.keys_dir = None;
        c.secrets.clear();
        assert!(c.check().unwrap_err().contains("keys_dir"));
        assert!(!format!("{:?}", config(ZhMeans::Yue)).contains("xxxx"), "secrets are not printed");
    }

    #[test]
    fn hs512_tokens_are_checked() {
        use jsonwebtoken::{encode, EncodingKey, Header};
        let c = config(ZhMeans::Yue);
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let sign = |alg: Algorithm, kid: Option<&str>, secret: &str, claims: serde_json::Value| {
            let header = Header { kid: kid.map(str::to_string), ..Header::new(alg) };
            encode(&header, &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
        };
        let secret = "x".repeat(MIN_SECRET_BYTES);
        let good = serde_json::json!({"aud": "jitsi", "iss": "jigasi", "exp": now + 600});
        let t = sign(Algorithm::HS512, Some("jigasi"), &secret, good.clone());
        assert_eq!(c.verify(Some(&t)), Ok("jigasi".to_string()));
        assert_eq!(c.verify(None), Err(Refusal::NoToken));
        assert_eq!(c.verify(Some("not.a.jwt")), Err(Refusal::Malformed));
        let t = sign(Algorithm::HS512, None, &secret, good.clone());
        assert_eq!(c.verify(Some(&t)), Err(Refusal::NoKid));
        let t = sign(Algorithm::HS512, Some("other"), &secret, good.clone());
        assert_eq!(c.verify(Some(&t)), Err(Refusal::UnknownKid("other".into())));
        let t = sign(Algorithm::HS256, Some("jigasi"), &secret, good.clone());
        assert_eq!(c.verify(Some(&t)), Err(Refusal::AlgNotAllowed("HS256".into())));
        let t = sign(Algorithm::HS512, Some("jigasi"), &"y".repeat(40), good);
        assert_eq!(c.verify(Some(&t)), Err(Refusal::BadSignature));
        let expired = serde_json::json!({"aud": "jitsi", "exp": now - LEEWAY_SECS - 5});
        let t = sign(Algorithm::HS512, Some("jigasi"), &secret, expired);
        assert_eq!(c.verify(Some(&t)), Err(Refusal::Expired));
        let within_leeway = serde_json::json!({"aud": "jitsi", "exp": now - 5});
        let t = sign(Algorithm::HS512, Some("jigasi"), &secret, within_leeway);
        assert!(c.verify(Some(&t)).is_ok());
        let wrong = serde_json::json!({"aud": "someone-else", "exp": now + 600});
        let t = sign(Algorithm::HS512, Some("jigasi"), &secret, wrong);
        assert_eq!(c.verify(Some(&t)), Err(Refusal::WrongAudience));
        let no_aud = serde_json::json!({"exp": now + 600});
        let t = sign(Algorithm::HS512, Some("jigasi"), &secret, no_aud);
        assert_eq!(c.verify(Some(&t)), Err(Refusal::MissingClaim("aud".into())));
    }
}
