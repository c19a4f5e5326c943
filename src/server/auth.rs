//! Bearer tokens with roles, and the browser Origin check.
//!
//! Tokens come from the config file; a request carries one in
//! `Authorization: Bearer TOKEN` or `?token=TOKEN` (browsers cannot set headers on
//! WebSockets). Tokens are compared in constant time and never logged: logs name
//! the token's `name`.

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

/// A configured token.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// A label for logs.
    #[serde(default)]
    pub name: String,
    /// The secret.
    pub token: String,
    /// What it may do.
    pub roles: Vec<Role>,
}

impl std::fmt::Debug for TokenEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret, not even in debug output.
        f.debug_struct("TokenEntry").field("name", &self.name).field("roles", &self.roles).finish()
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No token, or an unknown one (HTTP 401).
    Unauthorized,
    /// A valid token without the role, or a browser origin not allowed (HTTP 403).
    Forbidden(&'static str),
}

/// Who a request is, once authorised: the token's name, or `anonymous`.
pub fn authorize<'a>(
    tokens: &'a [TokenEntry],
    presented: Option<&str>,
    role: Role,
) -> Result<&'a str, Denied> {
    if tokens.is_empty() {
        return Ok("anonymous");
    }
    let presented = presented.ok_or(Denied::Unauthorized)?;
    let entry = tokens
        .iter()
        .find(|t| constant_time_eq(t.token.as_bytes(), presented.as_bytes()))
        .ok_or(Denied::Unauthorized)?;
    if entry.roles.contains(&role) || entry.roles.contains(&Role::Admin) {
        Ok(if entry.name.is_empty() { "unnamed-token" } else { &entry.name })
    } else {
        Err(Denied::Forbidden("the token does not have the role this endpoint needs"))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Vec<TokenEntry> {
        vec![
            TokenEntry {
                name: "gw".into(),
                token: "ingest-secret".into(),
                roles: vec![Role::Ingest],
            },
            TokenEntry {
                name: "ops".into(),
                token: "admin-secret".into(),
                roles: vec![Role::Admin],
            },
        ]
    }

    #[test]
    fn roles_are_enforced() {
        let t = tokens();
        assert_eq!(authorize(&t, Some("ingest-secret"), Role::Ingest), Ok("gw"));
        assert!(matches!(
            authorize(&t, Some("ingest-secret"), Role::View),
            Err(Denied::Forbidden(_))
        ));
        assert_eq!(authorize(&t, Some("admin-secret"), Role::View), Ok("ops"));
        assert_eq!(authorize(&t, Some("nope"), Role::View), Err(Denied::Unauthorized));
        assert_eq!(authorize(&t, None, Role::View), Err(Denied::Unauthorized));
        assert_eq!(authorize(&[], None, Role::Admin), Ok("anonymous"));
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
}
