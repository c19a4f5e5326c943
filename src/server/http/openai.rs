//! The OpenAI-compatible file transcription endpoint, `POST /v1/audio/transcriptions`,
//! so the OpenAI SDKs and tools built on them work with `base_url` pointed here (see
//! docs/INTEGRATIONS.md).
//!
//! The multipart fields are OpenAI's (`file`, `model`, `language`, `prompt`,
//! `response_format`, `temperature`, `timestamp_granularities[]`) plus `script`; the
//! file is decoded as `cantocap transcribe` decodes it (WAV, FLAC, MP3, Ogg Vorbis,
//! M4A/AAC), on a blocking thread holding one of the server's decode slots, and
//! redacted with the server's settings before the script conversion, as live
//! captions are. Answers and errors have OpenAI's shapes.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::{json, Value};

use super::guard::Caller;
use super::App;
use crate::audio::{decode_audio, AudioFormat};
use crate::caption::{escape_vtt, format_srt_time, format_vtt_time};
use crate::server::audit;
use crate::text::{CaptionRedactor, Redactor, Script};
use crate::{Error, Segment};

/// The path, for the guard (which answers its refusals in OpenAI's shape here).
pub(super) const PATH: &str = "/v1/audio/transcriptions";

/// Largest text field (`prompt` and the rest), in bytes.
const MAX_FIELD: usize = 16 * 1024;

/// Time a client has to send the whole request body.
const UPLOAD_TIME: Duration = Duration::from_secs(300);

/// File transcriptions in progress, against [`Limits::max_concurrent_uploads`](crate::server::Limits).
#[derive(Default)]
pub(crate) struct Uploads(AtomicUsize);

/// A held place among the concurrent uploads; freed on drop.
struct UploadSlot(Arc<Uploads>);

impl Drop for UploadSlot {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, SeqCst);
    }
}

/// What `response_format` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Text,
    Srt,
    VerboseJson,
    Vtt,
}

impl Format {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "json" => Self::Json,
            "text" => Self::Text,
            "srt" => Self::Srt,
            "verbose_json" => Self::VerboseJson,
            "vtt" => Self::Vtt,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Text => "text",
            Self::Srt => "srt",
            Self::VerboseJson => "verbose_json",
            Self::Vtt => "vtt",
        }
    }
}

/// A refusal in OpenAI's shape: `{"error":{"message","type","param","code"}}`.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    message: String,
    param: Option<&'static str>,
    code: &'static str,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), param: None, code }
    }

    fn bad(code: &'static str, param: &'static str, message: impl Into<String>) -> Self {
        Self { param: Some(param), ..Self::new(StatusCode::BAD_REQUEST, code, message) }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error(self.status, self.code, &self.message, self.param)
    }
}

/// An error body as OpenAI's API writes it; `type` is `invalid_request_error` for
/// client errors (4xx) and `server_error` otherwise.
pub(super) fn error(
    status: StatusCode,
    code: &str,
    message: &str,
    param: Option<&str>,
) -> Response {
    let kind = if status.is_client_error() { "invalid_request_error" } else { "server_error" };
    let body = json!({"error": {"message": message, "type": kind, "param": param, "code": code}});
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// The request's fields once read and checked.
struct Upload {
    file: Vec<u8>,
    filename: String,
    language: Option<String>,
    prompt: Option<String>,
    format: Format,
    script: Script,
}

/// `POST /v1/audio/transcriptions`.
pub(super) async fn transcriptions(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    request: Request,
) -> Response {
    let hub = Arc::clone(&app.hub);
    let result = handle(app, &caller, request).await;
    let refused = |e: &ApiError| {
        hub.log(format_args!("{}: transcription refused: {}", caller.client.addr, e.code));
        hub.audit(caller.client.entry(audit::Event::FileTranscribed).detail(e.code));
    };
    match result {
        Ok(response) => response,
        Err(e) => {
            refused(&e);
            e.into_response()
        }
    }
}

async fn handle(app: App, caller: &Caller, request: Request) -> Result<Response, ApiError> {
    let hub = Arc::clone(&app.hub);
    let limits = &hub.config.limits;
    let Some(model) = hub.model.get().cloned() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "model_loading",
            "the model is still loading; try again shortly",
        ));
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Multipart framing adds a little to the file; the file itself is checked below.
    if declared.is_some_and(|n| n > limits.max_upload_bytes as u64 + 64 * 1024) {
        return Err(too_large(limits.max_upload_bytes));
    }
    let _slot = {
        let max = limits.max_concurrent_uploads.max(1);
        if app.uploads.0.fetch_add(1, SeqCst) >= max {
            app.uploads.0.fetch_sub(1, SeqCst);
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_exceeded",
                format!("{max} files are being transcribed already; try again later"),
            ));
        }
        UploadSlot(Arc::clone(&app.uploads))
    };
    let multipart = Multipart::from_request(request, &()).await.map_err(|e| {
        ApiError::bad(
            "invalid_request",
            "file",
            format!("the body must be multipart/form-data with a `file` field ({e})"),
        )
    })?;
    let upload = tokio::time::timeout(UPLOAD_TIME, read_fields(multipart, limits.max_upload_bytes))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "upload_timeout",
                format!("the upload took longer than {} s", UPLOAD_TIME.as_secs()),
            )
        })??;

    let mut opts = hub.config.transcribe.clone();
    if upload.language.is_some() {
        opts.language = upload.language.clone();
    }
    if upload.prompt.is_some() {
        opts.prompt = upload.prompt.clone();
    }
    let plan = model
        .plan(&opts)
        .map_err(|e| ApiError::bad("invalid_language", "language", e.to_string()))?;
    let language = match plan.choices.as_slice() {
        [one] => language_name(&one.code).to_string(),
        _ => plan.describe(),
    };

    let max_secs = limits.max_upload_secs;
    let job_hub = Arc::clone(&hub);
    let (file, filename) = (upload.file, upload.filename);
    let decoded = tokio::task::spawn_blocking(move || {
        let name = Path::new(&filename);
        let audio = decode_audio(&file, name).map_err(|e| audio_error(&file, e))?;
        drop(file);
        let duration_ms = audio.duration_ms();
        if duration_ms > max_secs.saturating_mul(1000) {
            return Err(ApiError::bad(
                "audio_too_long",
                "file",
                format!(
                    "the audio is {:.0} s long; this server transcribes at most {max_secs} s per file",
                    duration_ms as f64 / 1000.0
                ),
            ));
        }
        let samples = audio.to_whisper_input().map_err(|e| audio_error(&[], e))?;
        drop(audio);
        let _permit = job_hub.pool.acquire();
        let segments = model.transcribe(&samples, &opts).map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "decoding_failed", e.to_string())
        })?;
        Ok((segments, duration_ms))
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let (segments, duration_ms) = decoded?;

    // As the live path does: redacted first (labels are converted too), then the script.
    let mut redactor = CaptionRedactor::new(Redactor::new(hub.config.redact.clone()));
    let segments = redactor.redact_segments(segments);
    let redactions = redactor.counts();
    if !redactions.is_empty() {
        hub.metrics.redacted(redactions);
    }
    let converter = hub.converters.get(upload.script);
    let segments: Vec<Segment> =
        segments.into_iter().map(|s| Segment { text: converter.caption(&s.text), ..s }).collect();

    let mut entry = caller.client.entry(audit::Event::FileTranscribed).detail(upload.format.name());
    entry.audio_s = Some(duration_ms as f64 / 1000.0);
    entry.captions = Some(segments.len() as u64);
    entry.redactions = Some(redactions);
    hub.audit(entry);
    hub.log(format_args!(
        "{}: transcribed {:.1} s of audio ({}, {} segments)",
        caller.client.addr,
        duration_ms as f64 / 1000.0,
        upload.format.name(),
        segments.len()
    ));
    Ok(respond(upload.format, &segments, &language, duration_ms))
}

fn too_large(max: usize) -> ApiError {
    ApiError {
        param: Some("file"),
        ..ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "file_too_large",
            format!("the file is larger than this server's limit of {max} bytes"),
        )
    }
}

/// An audio error as the client should see it: unsupported format or corrupt audio.
fn audio_error(file: &[u8], e: Error) -> ApiError {
    let reason = match &e {
        Error::BadAudio { reason, .. } => reason.clone(),
        e => e.to_string(),
    };
    if !file.is_empty() && AudioFormat::sniff(file).is_none() {
        return ApiError::bad("unsupported_format", "file", reason);
    }
    ApiError::bad("invalid_audio", "file", format!("the audio cannot be decoded: {reason}"))
}

/// Reads every field; the file at most `max_file` bytes.
async fn read_fields(mut multipart: Multipart, max_file: usize) -> Result<Upload, ApiError> {
    let malformed = |e: axum::extract::multipart::MultipartError| {
        ApiError::bad("invalid_request", "file", format!("malformed multipart body: {e}"))
    };
    let mut file = None;
    let mut fields: Vec<(String, String)> = Vec::new();
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            let filename = field.file_name().unwrap_or("upload").to_string();
            let mut bytes = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(malformed)? {
                if bytes.len() + chunk.len() > max_file {
                    // Read on a little, so that a client still sending sees the answer
                    // rather than a reset connection.
                    let drain = async { while let Ok(Some(_)) = field.chunk().await {} };
                    let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
                    return Err(too_large(max_file));
                }
                bytes.extend_from_slice(&chunk);
            }
            file = Some((bytes, filename));
            continue;
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(malformed)? {
            if bytes.len() + chunk.len() > MAX_FIELD {
                return Err(ApiError::bad(
                    "invalid_request",
                    "file",
                    format!("the field {name:?} is longer than {MAX_FIELD} bytes"),
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        let value = String::from_utf8(bytes).map_err(|_| {
            ApiError::bad(
                "invalid_request",
                "file",
                format!("the field {name:?} is not UTF-8 text"),
            )
        })?;
        fields.push((name, value));
    }
    let get = |key: &str| {
        fields.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
    };
    let Some((file, filename)) = file else {
        return Err(ApiError::bad(
            "missing_file",
            "file",
            "no `file` field: send the audio as multipart/form-data field `file`",
        ));
    };
    if file.is_empty() {
        return Err(ApiError::bad("invalid_audio", "file", "the file is empty"));
    }
    let format = match get("response_format") {
        None => Format::Json,
        Some(f) => Format::parse(f).ok_or_else(|| {
            ApiError::bad(
                "invalid_value",
                "response_format",
                format!("response_format {f:?} is not one of json, text, srt, verbose_json, vtt"),
            )
        })?,
    };
    if let Some(t) = get("temperature") {
        if !t.parse::<f32>().is_ok_and(|t| (0.0..=1.0).contains(&t)) {
            return Err(ApiError::bad(
                "invalid_value",
                "temperature",
                format!("temperature {t:?} is not a number from 0 to 1"),
            ));
        }
    }
    for (key, value) in &fields {
        if key.starts_with("timestamp_granularities") && !matches!(value.trim(), "word" | "segment")
        {
            return Err(ApiError::bad(
                "invalid_value",
                "timestamp_granularities",
                format!("timestamp granularity {value:?} is not word or segment"),
            ));
        }
    }
    if get("stream").is_some_and(|s| s == "true") {
        return Err(ApiError::bad(
            "unsupported_value",
            "stream",
            "streamed file transcription is not supported; use the realtime or WebSocket ingest API",
        ));
    }
    let script = match get("script") {
        None => Script::Hk,
        Some(s) => s.parse().map_err(|e: crate::text::ParseScriptError| {
            ApiError::bad("invalid_value", "script", e.to_string())
        })?,
    };
    Ok(Upload {
        file,
        filename,
        language: get("language").map(str::to_string),
        // An empty prompt field means no prompt (OpenAI's default), not "automatic".
        prompt: fields.iter().rev().find(|(k, _)| k == "prompt").map(|(_, v)| v.clone()),
        format,
        script,
    })
}

/// Whisper's English name for a language code, as OpenAI's `verbose_json` gives it.
fn language_name(code: &str) -> &str {
    match code {
        "en" => "english",
        "yue" => "cantonese",
        "zh" => "chinese",
        "ja" => "japanese",
        "ko" => "korean",
        "fr" => "french",
        "de" => "german",
        "es" => "spanish",
        "pt" => "portuguese",
        "it" => "italian",
        "ru" => "russian",
        "vi" => "vietnamese",
        "th" => "thai",
        "id" => "indonesian",
        "ms" => "malay",
        "tl" => "tagalog",
        "hi" => "hindi",
        "ar" => "arabic",
        other => other,
    }
}

/// Segments joined into one text: a space between two segments only where both
/// sides are not CJK (English words), none inside Chinese.
fn join(segments: &[Segment]) -> String {
    let mut text = String::new();
    for s in segments {
        let next = s.text.trim();
        if next.is_empty() {
            continue;
        }
        let before = text.chars().last();
        let after = next.chars().next();
        if before.is_some_and(|b| !is_cjk(b)) && after.is_some_and(|a| !is_cjk(a)) {
            text.push(' ');
        }
        text.push_str(next);
    }
    text
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x2E80..=0x9FFF | 0xF900..=0xFAFF | 0xFF00..=0xFFEF | 0x20000..=0x3FFFF)
}

fn respond(format: Format, segments: &[Segment], language: &str, duration_ms: u64) -> Response {
    let secs = |ms: u64| ms as f64 / 1000.0;
    let text = join(segments);
    let plain = |body: String| {
        let mut response = body.into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        response
    };
    match format {
        Format::Json => json_body(json!({ "text": text })),
        Format::Text => plain(format!("{text}\n")),
        Format::Srt => plain(
            segments
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    format!(
                        "{}\n{} --> {}\n{}\n\n",
                        i + 1,
                        format_srt_time(s.start_ms),
                        format_srt_time(s.end_ms),
                        s.text.trim()
                    )
                })
                .collect(),
        ),
        Format::Vtt => plain(
            std::iter::once("WEBVTT\n\n".to_string())
                .chain(segments.iter().map(|s| {
                    format!(
                        "{} --> {}\n{}\n\n",
                        format_vtt_time(s.start_ms),
                        format_vtt_time(s.end_ms),
                        escape_vtt(s.text.trim())
                    )
                }))
                .collect(),
        ),
        Format::VerboseJson => {
            let segments: Vec<Value> = segments
                .iter()
                .enumerate()
                .map(|(id, s)| {
                    json!({
                        "id": id,
                        // The 30-s window the segment was decoded in, in 10-ms frames
                        // (approximate: the decoder's windows follow the speech).
                        "seek": s.start_ms / 30_000 * 3_000,
                        "start": secs(s.start_ms),
                        "end": secs(s.end_ms),
                        "text": s.text.trim(),
                        // Not reported by this server's decoder (see
                        // docs/INTEGRATIONS.md): the segment passed its guards.
                        "tokens": [],
                        "temperature": 0.0,
                        "avg_logprob": 0.0,
                        "compression_ratio": 0.0,
                        "no_speech_prob": 0.0,
                    })
                })
                .collect();
            json_body(json!({
                "task": "transcribe",
                "language": language,
                "duration": secs(duration_ms),
                "text": text,
                "segments": segments,
            }))
        }
    }
}

fn json_body(value: Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

/// The per-route answer to methods other than POST.
pub(super) async fn method_not_allowed() -> Response {
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "use POST with a multipart/form-data body",
        None,
    );
    response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}

/// Whether OpenAI-shaped errors are due on `path`.
pub(super) fn is_openai_path(path: &str) -> bool {
    path.starts_with("/v1/audio/") || path == super::realtime::PATH
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_join_with_spaces_only_between_latin_words() {
        let s = |t: &str| Segment::new(0, 1, t);
        assert_eq!(join(&[s("Good morning."), s("Welcome.")]), "Good morning. Welcome.");
        assert_eq!(join(&[s("我哋聽日開會，"), s("記得準時。")]), "我哋聽日開會，記得準時。");
        assert_eq!(join(&[s("用 Zoom"), s("開會")]), "用 Zoom開會");
        assert_eq!(join(&[s(" "), s("hi")]), "hi");
    }

    #[test]
    fn response_formats_are_openais() {
        assert_eq!(Format::parse("verbose_json"), Some(Format::VerboseJson));
        assert_eq!(Format::parse("JSON"), None);
        let segs = [Segment::new(0, 1500, "Hello there."), Segment::new(2000, 3250, "Bye.")];
        let body = |r: Response| {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let bytes = rt.block_on(axum::body::to_bytes(r.into_body(), 1 << 20)).unwrap();
            String::from_utf8(bytes.to_vec()).unwrap()
        };
        assert_eq!(
            body(respond(Format::Srt, &segs, "english", 3300)),
            "1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n2\n00:00:02,000 --> 00:00:03,250\nBye.\n\n"
        );
        assert!(body(respond(Format::Vtt, &segs, "english", 3300))
            .starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello there.\n\n"));
        assert_eq!(body(respond(Format::Text, &segs, "english", 3300)), "Hello there. Bye.\n");
        let v: Value =
            serde_json::from_str(&body(respond(Format::VerboseJson, &segs, "english", 3300)))
                .unwrap();
        assert_eq!(v["task"], "transcribe");
        assert_eq!(v["duration"], 3.3);
        assert_eq!(v["segments"][1]["start"], 2.0);
        assert_eq!(v["segments"][1]["id"], 1);
        let e: Value = serde_json::from_str(&body(
            ApiError::bad("invalid_value", "response_format", "no").into_response(),
        ))
        .unwrap();
        assert_eq!(e["error"]["type"], "invalid_request_error");
        assert_eq!(e["error"]["param"], "response_format");
    }
}
