//! Access tokens: HS256 JWTs signed with `JWT_SECRET` (or the key in `JWT_SECRET_FILE`).
//!
//! Verification accepts only HS256 with this key, requires `exp`, `iss` and `sub`, and allows
//! 5 s of clock skew: `alg: none`, other algorithms, a wrong signature or a past expiry are
//! rejected. Other services verify a token by calling the auth service's `GET /token`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use troupe_core::ServiceError;
use troupe_core::config::{AuthSettings, JwtSecret, Secret, SecretName as _};
use troupe_core::domain::{AccessToken, Caller, Principal, User};

/// Shortest signing key accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 32;
const ISSUER: &str = "troupe";

/// What a token says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// User id (as a string, per RFC 7519).
    pub sub: String,
    /// The user's email at issue time.
    pub email: String,
    /// Whether the user was an admin at issue time.
    #[serde(default)]
    pub admin: bool,
    /// Issuer, always `troupe`.
    pub iss: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Unique token id.
    pub jti: String,
    /// Set in a service token only: the Troupe service it speaks for (`listener`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub svc: Option<String>,
}

impl Claims {
    /// Whom the token speaks for: the service of a service token, else its user.
    pub fn caller(&self) -> Result<Caller, ServiceError> {
        match &self.svc {
            Some(service) => Ok(Caller::Service(service.clone())),
            None => self.principal().map(Caller::User),
        }
    }

    /// Who the token speaks for (a user; a service token is refused).
    pub fn principal(&self) -> Result<Principal, ServiceError> {
        let user_id = self.sub.parse().map_err(|_| invalid_token())?;
        Ok(Principal { user_id, admin: self.admin })
    }
}

fn invalid_token() -> ServiceError {
    ServiceError::Unauthorized("invalid or expired token".into())
}

/// Lifetime of a [`TokenKeys::service_token`] (one is signed per call).
pub const SERVICE_TOKEN_TTL: Duration = Duration::from_secs(60);

/// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECS: u64 = 5;

/// Signing and verification keys; cheap to clone.
#[derive(Clone)]
pub struct TokenKeys(Arc<Keys>);

struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl TokenKeys {
    /// Keys from a shared secret of at least [`MIN_SECRET_LEN`] bytes.
    pub fn from_secret(secret: &[u8], ttl: Duration) -> Result<Self, String> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(format!("must be at least {MIN_SECRET_LEN} bytes long"));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        Ok(Self(Arc::new(Keys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        })))
    }

    /// Keys from `JWT_SECRET` or `JWT_SECRET_FILE`. With neither set, `ephemeral` (the
    /// `troupe up` development default) makes a random per-process key; otherwise it is an
    /// error. Errors name the variable.
    pub fn from_settings(s: &AuthSettings, ephemeral: bool) -> Result<Self, String> {
        match Self::configured(&s.jwt_secret, s.jwt_ttl)? {
            Some(keys) => Ok(keys),
            None if ephemeral => {
                tracing::warn!("JWT_SECRET is not set: using a random key; tokens end with this process");
                let key = SecretString::from(format!("{}{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4()));
                Self::from_secret(key.expose_secret().as_bytes(), s.jwt_ttl)
            }
            None => Err("JWT_SECRET: not set (or set JWT_SECRET_FILE)".into()),
        }
    }

    /// Keys from `JWT_SECRET` or the file `JWT_SECRET_FILE` names, `None` with neither;
    /// errors name the variable.
    pub fn configured(secret: &Secret<JwtSecret>, ttl: Duration) -> Result<Option<Self>, String> {
        let Some(key) = secret.read()? else {
            return Ok(None);
        };
        let from = if secret.value().is_some() { JwtSecret::ENV } else { JwtSecret::ENV_FILE };
        Self::from_secret(key.expose_secret().as_bytes(), ttl).map(Some).map_err(|e| format!("{from}: {e}"))
    }

    /// Sign a token for `user`.
    pub fn issue(&self, user: &User) -> Result<AccessToken, ServiceError> {
        let now = Utc::now().timestamp();
        let ttl = self.0.ttl.as_secs();
        let claims = Claims {
            sub: user.id.to_string(),
            email: user.email.clone(),
            admin: user.admin,
            iss: ISSUER.into(),
            iat: now,
            exp: now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)),
            jti: uuid::Uuid::new_v4().to_string(),
            svc: None,
        };
        self.sign(&claims).map(|access_token| AccessToken {
            access_token,
            token_type: "Bearer".into(),
            expires_in: ttl,
        })
    }

    /// A service token for Troupe's own `service` (its mail jobs), valid for
    /// [`SERVICE_TOKEN_TTL`]: `sub` is `service:<name>`, so it never passes for a user.
    pub fn service_token(&self, service: &str) -> Result<String, ServiceError> {
        let now = Utc::now().timestamp();
        let ttl = i64::try_from(SERVICE_TOKEN_TTL.as_secs()).unwrap_or(i64::MAX);
        self.sign(&Claims {
            sub: format!("service:{service}"),
            email: String::new(),
            admin: false,
            iss: ISSUER.into(),
            iat: now,
            exp: now.saturating_add(ttl),
            jti: uuid::Uuid::new_v4().to_string(),
            svc: Some(service.to_owned()),
        })
    }

    /// Sign arbitrary claims (used by `issue`, and by tests forging expired tokens).
    pub fn sign(&self, claims: &Claims) -> Result<String, ServiceError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.0.encoding).map_err(|e| {
            tracing::error!(error = %e, "signing a token failed");
            ServiceError::Internal
        })
    }

    /// Check signature, algorithm, issuer, expiry, and that neither `nbf` nor `iat` is in
    /// the future (with [`LEEWAY_SECS`] for clock skew).
    pub fn verify(&self, token: &str) -> Result<Claims, ServiceError> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.0.decoding, &self.0.validation)
            .map(|data| data.claims)
            .map_err(|_| invalid_token())?;
        let now = Utc::now().timestamp();
        if claims.iat > now.saturating_add(LEEWAY_SECS as i64) {
            return Err(invalid_token());
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> TokenKeys {
        TokenKeys::from_secret(secret.as_bytes(), Duration::from_secs(60)).expect("long enough")
    }

    fn user() -> User {
        User {
            id: 7,
            email: "a@b.c".into(),
            first_name: String::new(),
            last_name: String::new(),
            active: 1,
            admin: false,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn issued_tokens_verify() {
        let k = keys(SECRET);
        let t = k.issue(&user()).expect("signs");
        assert_eq!(t.token_type, "Bearer");
        let claims = k.verify(&t.access_token).expect("verifies");
        assert_eq!(claims.principal(), Ok(Principal { user_id: 7, admin: false }));
    }

    #[test]
    fn forged_expired_and_unsigned_tokens_are_rejected() {
        let k = keys(SECRET);
        let other = keys("another-secret-another-secret-xx");
        let forged = other.issue(&user()).expect("signs").access_token;
        assert!(k.verify(&forged).is_err(), "wrong signature");

        let mut claims = k.verify(&k.issue(&user()).expect("signs").access_token).expect("valid");
        claims.exp = Utc::now().timestamp() - 60;
        assert!(k.verify(&k.sign(&claims).expect("signs")).is_err(), "expired");

        // {"alg":"none","typ":"JWT"} . claims . (empty signature)
        use base64::Engine as _;
        let encode = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let none = format!(
            "{}.{}.",
            encode(br#"{"alg":"none","typ":"JWT"}"#),
            encode(serde_json::to_string(&claims).unwrap_or_default().as_bytes())
        );
        assert!(k.verify(&none).is_err(), "alg none");
        assert!(k.verify("garbage").is_err());
    }

    #[test]
    fn tokens_not_valid_yet_or_issued_in_the_future_are_rejected() {
        let k = keys(SECRET);
        let now = Utc::now().timestamp();
        let sign = |extra: serde_json::Value| {
            let mut claims = serde_json::json!({"sub": "7", "email": "a@b.c", "iss": ISSUER,
                                                "iat": now, "exp": now + 600, "jti": "j"});
            if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
                c.extend(e.clone());
            }
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(SECRET.as_bytes()),
            )
            .expect("signs")
        };
        assert!(k.verify(&sign(serde_json::json!({}))).is_ok(), "the baseline is valid");
        assert!(k.verify(&sign(serde_json::json!({"nbf": now + 2}))).is_ok(), "within the leeway");
        assert!(k.verify(&sign(serde_json::json!({"nbf": now + 300}))).is_err(), "not valid yet");
        assert!(k.verify(&sign(serde_json::json!({"iat": now + 300}))).is_err(), "issued in the future");
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(TokenKeys::from_secret(b"short", Duration::from_secs(1)).is_err());
    }
}
