//! Bearer tokens: HS256 JWTs signed with the configured secret (`gatekeeper token` issues them).
//! Claims: `sub`, `name`, `email`, `groups`, plus `iss`, `aud`, `iat`, `exp`, all checked.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::AuthSettings;
use crate::domain::{SubjectId, clean_display};

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECONDS: i64 = 30;
/// Longest lifetime (`exp` - `iat`) of a token this server accepts.
pub const MAX_TOKEN_LIFETIME_DAYS: i64 = 90;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

/// A caller whose token checked out.
#[derive(Debug, Clone)]
pub struct Identity {
    pub id: SubjectId,
    pub name: Option<String>,
    pub email: Option<String>,
    pub groups: BTreeSet<String>,
}

impl Identity {
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.contains(group)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the bearer token is missing")]
    Missing,
    #[error("the bearer token is invalid: {0}")]
    Invalid(String),
    #[error("the bearer token has expired")]
    Expired,
}

/// RFC 7515 §4.1.11: a token whose header lists critical extensions (`crit`) must be refused by a
/// verifier that does not implement them, and this one implements none.
fn refuse_critical_extensions(token: &str) -> Result<(), AuthError> {
    use base64::Engine as _;
    let header = token.split('.').next().unwrap_or_default();
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header) else {
        // Not base64: the decoder below refuses it with its own message.
        return Ok(());
    };
    match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes) {
        Ok(fields) if fields.contains_key("crit") => Err(AuthError::Invalid(
            "the token header names critical extensions (crit), which this server does not support"
                .into(),
        )),
        _ => Ok(()),
    }
}

/// Checks and issues tokens.
#[derive(Clone)]
pub struct TokenAuthority {
    demo: Vec<crate::config::DemoIdentity>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
}

impl TokenAuthority {
    pub fn new(settings: &AuthSettings) -> anyhow::Result<Self> {
        let secret = settings.jwt_secret.expose().as_bytes();
        let encoding = EncodingKey::from_secret(secret);
        let decoding = DecodingKey::from_secret(secret);
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS as u64;
        Ok(Self {
            demo: settings.demo_identities.clone(),
            encoding,
            decoding,
            validation,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
        })
    }

    /// The configured demo identities (empty unless the demo turned them on).
    pub fn demo_identities(&self) -> &[crate::config::DemoIdentity] {
        &self.demo
    }

    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        refuse_critical_extensions(token)?;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid(e.to_string()),
            })?;
        let claims = data.claims;
        let now = chrono::Utc::now().timestamp();
        if claims.iat > now + LEEWAY_SECONDS {
            return Err(AuthError::Invalid(
                "the token is issued in the future (iat)".into(),
            ));
        }
        if claims.iat < 0 {
            return Err(AuthError::Invalid(
                "the token is issued before 1970 (iat)".into(),
            ));
        }
        if claims.exp.saturating_sub(claims.iat) > MAX_TOKEN_LIFETIME_DAYS * 86_400 {
            return Err(AuthError::Invalid(format!(
                "the token lives longer than {MAX_TOKEN_LIFETIME_DAYS} days"
            )));
        }
        let id = SubjectId::parse(&claims.sub).map_err(|e| AuthError::Invalid(e.message))?;
        if claims.groups.len() > 500 || claims.groups.iter().any(|g| g.len() > 256) {
            return Err(AuthError::Invalid("the groups claim is too large".into()));
        }
        Ok(Identity {
            id,
            // Names end up in the audit trail and in browsers: keep only printable text.
            name: claims.name.as_deref().and_then(|n| clean_display(n, 128)),
            email: claims.email.as_deref().and_then(|e| clean_display(e, 254)),
            groups: claims.groups.into_iter().collect(),
        })
    }

    /// Issues a token valid from `now` for `ttl`.
    pub fn issue(
        &self,
        sub: &SubjectId,
        name: Option<String>,
        email: Option<String>,
        groups: Vec<String>,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> anyhow::Result<String> {
        let claims = Claims {
            sub: sub.to_string(),
            name,
            email,
            groups,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now.timestamp(),
            exp: (now + ttl).timestamp(),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }
}

/// Parses a duration such as `90m`, `8h`, `2d` or `3600` (seconds).
pub fn parse_ttl(value: &str) -> Result<chrono::Duration, String> {
    let value = value.trim();
    let (number, unit) = match value.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => value.split_at(i),
        None => (value, "s"),
    };
    let n: i64 = number
        .parse()
        .map_err(|_| format!("{value:?} is not a duration like 30m, 8h or 2d"))?;
    let d = match unit {
        "s" => chrono::Duration::seconds(n),
        "m" => chrono::Duration::minutes(n),
        "h" => chrono::Duration::hours(n),
        "d" => chrono::Duration::days(n),
        _ => return Err(format!("{value:?} is not a duration like 30m, 8h or 2d")),
    };
    if n <= 0 || d > chrono::Duration::days(90) {
        return Err("a token lives between 1 second and 90 days".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn authority(secret: &str) -> TokenAuthority {
        TokenAuthority::new(&AuthSettings {
            jwt_secret: Secret::new(secret),
            issuer: "gatekeeper".into(),
            audience: "gatekeeper".into(),
            demo_identities: vec![],
        })
        .unwrap()
    }

    #[test]
    fn issued_tokens_verify_and_others_do_not() {
        let a = authority("0123456789abcdef0123456789abcdef");
        let alice = SubjectId::parse("alice").unwrap();
        let now = Utc::now();
        let token = a
            .issue(
                &alice,
                None,
                None,
                vec!["dev".into()],
                now,
                chrono::Duration::hours(1),
            )
            .unwrap();
        let id = a.verify(&token).unwrap();
        assert_eq!(id.id, alice);
        assert!(id.in_group("dev"));

        let b = authority("another-secret-another-secret-xx");
        assert!(matches!(b.verify(&token), Err(AuthError::Invalid(_))));

        let old = a
            .issue(
                &alice,
                None,
                None,
                vec![],
                now - chrono::Duration::hours(2),
                chrono::Duration::hours(1),
            )
            .unwrap();
        assert!(matches!(a.verify(&old), Err(AuthError::Expired)));
        assert!(a.verify("not.a.token").is_err());

        let future = a
            .issue(
                &alice,
                None,
                None,
                vec![],
                now + chrono::Duration::hours(1),
                chrono::Duration::hours(1),
            )
            .unwrap();
        assert!(a.verify(&future).is_err(), "issued in the future");
        let forever = Claims {
            sub: "alice".into(),
            name: Some("Ali\u{0}ce\u{202E}".into()),
            email: None,
            groups: vec![],
            iss: "gatekeeper".into(),
            aud: "gatekeeper".into(),
            iat: now.timestamp(),
            exp: now.timestamp() + 100 * 365 * 86_400,
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &forever, &a.encoding).unwrap();
        assert!(a.verify(&token).is_err(), "a century-long token");
        let named = Claims {
            exp: now.timestamp() + 60,
            ..forever
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &named, &a.encoding).unwrap();
        assert_eq!(a.verify(&token).unwrap().name.as_deref(), Some("Alice"));
    }

    #[test]
    fn ttl_parsing() {
        assert_eq!(parse_ttl("8h").unwrap(), chrono::Duration::hours(8));
        assert_eq!(parse_ttl("90").unwrap(), chrono::Duration::seconds(90));
        assert!(parse_ttl("0m").is_err());
        assert!(parse_ttl("1y").is_err());
        assert!(parse_ttl("100d").is_err());
    }
}
