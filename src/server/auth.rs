//! Bearer tokens with roles, optional expiry and session scope, and the browser
//! Origin check.
//!
//! Tokens come from the config file; a request carries one in
//! `Authorization: Bearer TOKEN` or `?token=TOKEN` (browsers cannot set headers on
//! WebSockets). Tokens are compared in constant time and never logged: logs name
//! the token's `name`.

use std::time::SystemTime;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Send audio (`/v1/ingest`).
    Ingest,
    /// Watch captions, fetch transcripts, open the overlay.
    View,
    /// Everything, and `/metrics`.
    Admin,
}

/// A configured token. Build one in code with `..Default::default()`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// A label for logs.
    #[serde(default)]
    pub name: String,
    /// The secret.
    pub token: String,
    /// What it may do.
    pub roles: Vec<Role>,
    /// When it stops working (`None`: never). In TOML an RFC 3339 time with `Z` or
    /// an offset: `expires = "2026-12-31T23:59:59Z"`.
    #[serde(default, deserialize_with = "deserialize_time")]
    pub expires: Option<SystemTime>,
    /// The only session it may ingest into, watch or fetch the transcript of
    /// (`None`: any). A scoped token never opens `/metrics` or admin endpoints.
    #[serde(default)]
    pub session: Option<String>,
}

impl std::fmt::Debug for TokenEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret, not even in debug output.
        f.debug_struct("TokenEntry")
            .field("name", &self.name)
            .field("roles", &self.roles)
            .field("expires", &self.expires)
            .field("session", &self.session)
            .finish()
    }
}

/// What a request reaches, for session-scoped tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// The whole server (`/metrics`, admin endpoints): only tokens without a session.
    Server,
    /// One session (ingest, captions, transcript): unscoped tokens and tokens of
    /// this session.
    Session(&'a str),
    /// Nothing session-specific (the overlay page): any token with the role.
    Page,
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No token, or an unknown one (HTTP 401).
    Unauthorized,
    /// A known token past its `expires` time (HTTP 401).
    Expired,
    /// A valid token without the role or for another session, or a browser origin
    /// not allowed (HTTP 403).
    Forbidden(&'static str),
}

/// Who a request is, once authorised: the token's name, or `anonymous`.
pub fn authorize<'a>(
    tokens: &'a [TokenEntry],
    presented: Option<&str>,
    role: Role,
    scope: Scope<'_>,
) -> Result<&'a str, Denied> {
    authorize_at(tokens, presented, role, scope, SystemTime::now())
}

/// [`authorize`] at a given time.
pub fn authorize_at<'a>(
    tokens: &'a [TokenEntry],
    presented: Option<&str>,
    role: Role,
    scope: Scope<'_>,
    now: SystemTime,
) -> Result<&'a str, Denied> {
    if tokens.is_empty() {
        return Ok("anonymous");
    }
    let presented = presented.ok_or(Denied::Unauthorized)?;
    let entry = tokens
        .iter()
        .find(|t| constant_time_eq(t.token.as_bytes(), presented.as_bytes()))
        .ok_or(Denied::Unauthorized)?;
    if entry.expires.is_some_and(|expires| now >= expires) {
        return Err(Denied::Expired);
    }
    if !(entry.roles.contains(&role) || entry.roles.contains(&Role::Admin)) {
        return Err(Denied::Forbidden("the token does not have the role this endpoint needs"));
    }
    match (scope, entry.session.as_deref()) {
        (Scope::Server, Some(_)) => {
            return Err(Denied::Forbidden(
                "this endpoint needs a token that is not limited to one session",
            ))
        }
        (Scope::Session(id), Some(only)) if id != only => {
            return Err(Denied::Forbidden("the token is for another session"))
        }
        _ => {}
    }
    Ok(if entry.name.is_empty() { "unnamed-token" } else { &entry.name })
}

/// The token of a request: the `Authorization: Bearer` header, else `?token=`.
pub fn presented_token<'a>(
    authorization: Option<&'a str>,
    query_token: Option<&'a str>,
) -> Option<&'a str> {
    authorization
        .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
        .map(str::trim)
        .or(query_token)
}

/// May a browser page from `origin` open a WebSocket here? Non-browser clients send
/// no Origin and are always allowed; a page from the server itself is allowed.
pub fn origin_allowed(origin: Option<&str>, host: Option<&str>, allowed: &[String]) -> bool {
    let Some(origin) = origin else { return true };
    if allowed.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(origin)) {
        return true;
    }
    host.is_some_and(|host| {
        origin.eq_ignore_ascii_case(&format!("http://{host}"))
            || origin.eq_ignore_ascii_case(&format!("https://{host}"))
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An RFC 3339 time with `Z` or an offset (jiff parses it), as [`SystemTime`].
fn parse_time(s: &str) -> Result<SystemTime, String> {
    s.parse::<jiff::Timestamp>().map(SystemTime::from).map_err(|e| {
        format!("{s:?} is not an RFC 3339 time with Z or an offset such as +08:00, e.g. 2026-12-31T23:59:59Z ({e})")
    })
}

/// Serde: an optional RFC 3339 time, written as a string or as a TOML date-time.
fn deserialize_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
    d.deserialize_any(TimeVisitor).map(Some)
}

struct TimeVisitor;

impl<'de> Visitor<'de> for TimeVisitor {
    type Value = SystemTime;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an RFC 3339 time such as \"2026-12-31T23:59:59Z\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<SystemTime, E> {
        parse_time(v).map_err(E::custom)
    }

    // The toml crate hands an unquoted date-time over as a one-entry map.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SystemTime, A::Error> {
        let Some((_, value)) = map.next_entry::<String, String>()? else {
            return Err(de::Error::custom("an empty table is not a time"));
        };
        parse_time(&value).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::{Duration, UNIX_EPOCH};

    fn tokens() -> Vec<TokenEntry> {
        vec![
            TokenEntry {
                name: "gw".into(),
                token: "ingest-secret".into(),
                roles: vec![Role::Ingest],
                ..Default::default()
            },
            TokenEntry {
                name: "ops".into(),
                token: "admin-secret".into(),
                roles: vec![Role::Admin],
                ..Default::default()
            },
        ]
    }

    #[test]
    fn roles_are_enforced() {
        let t = tokens();
        let any = Scope::Session("s");
        assert_eq!(authorize(&t, Some("ingest-secret"), Role::Ingest, any), Ok("gw"));
        assert!(matches!(
            authorize(&t, Some("ingest-secret"), Role::View, any),
            Err(Denied::Forbidden(_))
        ));
        assert_eq!(authorize(&t, Some("admin-secret"), Role::View, any), Ok("ops"));
        assert_eq!(authorize(&t, Some("admin-secret"), Role::Admin, Scope::Server), Ok("ops"));
        assert_eq!(authorize(&t, Some("nope"), Role::View, any), Err(Denied::Unauthorized));
        assert_eq!(authorize(&t, None, Role::View, any), Err(Denied::Unauthorized));
        assert_eq!(authorize(&[], None, Role::Admin, Scope::Server), Ok("anonymous"));
    }

    #[test]
    fn expired_tokens_are_unauthorized() {
        let at = |s| UNIX_EPOCH + Duration::from_secs(s);
        let t = vec![TokenEntry {
            name: "temp".into(),
            token: "temporary-secret".into(),
            roles: vec![Role::View],
            expires: Some(at(1000)),
            ..Default::default()
        }];
        let check =
            |now| authorize_at(&t, Some("temporary-secret"), Role::View, Scope::Page, at(now));
        assert_eq!(check(999), Ok("temp"));
        assert_eq!(check(1000), Err(Denied::Expired));
        assert_eq!(check(5000), Err(Denied::Expired));
        // Expiry is checked before the role: an expired token learns nothing more.
        let wrong_role =
            authorize_at(&t, Some("temporary-secret"), Role::Ingest, Scope::Page, at(5000));
        assert_eq!(wrong_role, Err(Denied::Expired));
        // Through the clock: long expired, or far in the future.
        assert_eq!(
            authorize(&t, Some("temporary-secret"), Role::View, Scope::Page),
            Err(Denied::Expired)
        );
        let later = vec![TokenEntry {
            expires: Some(SystemTime::now() + Duration::from_secs(3600)),
            ..t[0].clone()
        }];
        assert_eq!(
            authorize(&later, Some("temporary-secret"), Role::View, Scope::Page),
            Ok("temp")
        );
    }

    #[test]
    fn scoped_tokens_stay_in_their_session() {
        let t = vec![
            TokenEntry {
                name: "room1".into(),
                token: "room1-secret".into(),
                roles: vec![Role::Ingest, Role::View],
                session: Some("room-1".into()),
                ..Default::default()
            },
            TokenEntry {
                name: "room1-admin".into(),
                token: "room1-admin-secret".into(),
                roles: vec![Role::Admin],
                session: Some("room-1".into()),
                ..Default::default()
            },
        ];
        let run = |token, role, scope| authorize(&t, Some(token), role, scope);
        let room1 = Scope::Session("room-1");
        assert_eq!(run("room1-secret", Role::Ingest, room1), Ok("room1"));
        assert_eq!(run("room1-secret", Role::View, room1), Ok("room1"));
        assert_eq!(run("room1-secret", Role::View, Scope::Page), Ok("room1"));
        for other in ["room-2", "room-10", "ROOM-1", ""] {
            assert_eq!(
                run("room1-secret", Role::View, Scope::Session(other)),
                Err(Denied::Forbidden("the token is for another session")),
                "{other}"
            );
        }
        // Admin of one session: everything in it, nothing server-wide.
        assert_eq!(run("room1-admin-secret", Role::Ingest, room1), Ok("room1-admin"));
        assert!(matches!(
            run("room1-admin-secret", Role::Admin, Scope::Server),
            Err(Denied::Forbidden(_))
        ));
        assert!(matches!(
            run("room1-admin-secret", Role::View, Scope::Session("room-2")),
            Err(Denied::Forbidden(_))
        ));
    }

    #[test]
    fn tokens_from_header_or_query() {
        assert_eq!(presented_token(Some("Bearer abc"), Some("q")), Some("abc"));
        assert_eq!(presented_token(None, Some("q")), Some("q"));
        assert_eq!(presented_token(Some("Basic xyz"), None), None);
    }

    #[test]
    fn origins() {
        let allowed = vec!["https://meet.example".to_string()];
        assert!(origin_allowed(None, Some("h:1"), &allowed));
        assert!(origin_allowed(Some("http://h:1"), Some("h:1"), &allowed));
        assert!(origin_allowed(Some("https://meet.example"), Some("h:1"), &allowed));
        assert!(!origin_allowed(Some("https://evil.example"), Some("h:1"), &allowed));
    }

    #[test]
    fn debug_hides_the_secret() {
        assert!(!format!("{:?}", tokens()).contains("secret"));
    }

    #[test]
    fn expiry_times_are_rfc3339_with_an_offset() {
        use std::time::{Duration, UNIX_EPOCH};
        let secs = |s: &str| parse_time(s).unwrap().duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs("2026-12-31T23:59:59Z"), 1_798_761_599);
        assert_eq!(secs("2026-01-01T08:00:00+08:00"), secs("2026-01-01T00:00:00Z"));
        let frac = parse_time("2026-01-01T00:00:00.25Z").unwrap();
        assert_eq!(frac.duration_since(UNIX_EPOCH).unwrap().subsec_millis(), 250);
        for bad in ["", "2026-12-31", "2026-12-31T23:59:59", "2026-02-29T00:00:00Z"] {
            assert!(parse_time(bad).unwrap_err().contains("Z or an offset"), "{bad}");
        }
        #[derive(Deserialize)]
        struct T {
            #[serde(default, deserialize_with = "deserialize_time")]
            expires: Option<SystemTime>,
        }
        let quoted: T = toml::from_str(r#"expires = "2026-12-31T23:59:59Z""#).unwrap();
        let bare: T = toml::from_str("expires = 2026-12-31T23:59:59Z").unwrap();
        assert_eq!(quoted.expires, bare.expires);
        assert_eq!(quoted.expires, Some(UNIX_EPOCH + Duration::from_secs(1_798_761_599)));
        assert_eq!(toml::from_str::<T>("").unwrap().expires, None);
        assert!(toml::from_str::<T>("expires = 2026-12-31T23:59:59").is_err());
    }
}
