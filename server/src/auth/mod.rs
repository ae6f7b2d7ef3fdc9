//! Who a client is and whether a backend may call the API.
//!
//! Clients present HS256 JWTs signed with `auth.secret` (`sub` = player id).
//! Without a secret the server is in development mode (loopback only, see
//! `Config::validate`) and takes the player from `?player_id=`. Backends
//! present one of `auth.api_keys` as a bearer token.

use std::collections::HashSet;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::AuthConfig;

/// Longest token accepted: anything longer is refused before any decoding.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The claims of a client token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    /// The player id.
    pub sub: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Issued at, Unix seconds.
    #[serde(default)]
    pub iat: u64,
    /// Not before, Unix seconds: refused until then (less the leeway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// When present, the only namespaces or channels the holder may
    /// subscribe to (besides its own `player:` channel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<String>>,
    /// When present, replaces `channels.client_publish` for the holder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<Vec<String>>,
    /// The token's id, what `POST /api/tokens/revoke {"jti"}` names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

/// Why a request was not authenticated. [`AuthError::code`] is the wire
/// error code and the `reason` label of the auth-failure metric.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    #[error("a client token is required (query `token` or header `Authorization: Bearer`)")]
    MissingToken,
    #[error("the client token is invalid")]
    InvalidToken,
    #[error("the client token has expired")]
    ExpiredToken,
    #[error("the client token is not valid yet (its nbf is in the future: check the clocks)")]
    NotYetValidToken,
    #[error("not allowed")]
    Forbidden,
    #[error("the client token has been revoked")]
    RevokedToken,
    #[error("an API key is required (header `Authorization: Bearer <key>`)")]
    MissingApiKey,
    #[error("the API key is invalid")]
    InvalidApiKey,
    /// Answered as `invalid_api_key`, with what the operator must set.
    #[error(
        "this server has no API key configured: set auth.api_keys in the config file, \
         or TANDEM_AUTH__API_KEYS='[\"<a key of 16+ characters>\"]' in the environment"
    )]
    NoApiKeyConfigured,
}

impl AuthError {
    pub fn code(&self) -> ErrorCode {
        match self {
            AuthError::MissingToken => ErrorCode::MissingToken,
            AuthError::InvalidToken => ErrorCode::InvalidToken,
            AuthError::ExpiredToken => ErrorCode::ExpiredToken,
            AuthError::NotYetValidToken => ErrorCode::TokenNotYetValid,
            AuthError::Forbidden => ErrorCode::Forbidden,
            AuthError::RevokedToken => ErrorCode::RevokedToken,
            AuthError::MissingApiKey => ErrorCode::MissingApiKey,
            AuthError::InvalidApiKey | AuthError::NoApiKeyConfigured => ErrorCode::InvalidApiKey,
        }
    }
}

pub use crate::session::identity::{Identity, TokenInfo, is_valid_player_id};
use tandem_protocol::ErrorCode;

/// Verifies client tokens and API keys. Built once at start-up: keys and
/// validation rules are prepared here so a request only hashes and compares.
#[derive(Clone)]
pub struct Authenticator {
    /// `None` in development mode.
    keys: Option<(EncodingKey, DecodingKey)>,
    validation: Validation,
    /// `auth.leeway_seconds`, on `exp` and `nbf`.
    leeway: u64,
    api_keys: Vec<Box<[u8]>>,
}

impl fmt::Debug for Authenticator {
    // Never prints key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("dev_mode", &self.dev_mode())
            .field("api_keys", &self.api_keys.len())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    pub fn new(cfg: &AuthConfig) -> Self {
        let keys = (!cfg.secret.is_empty()).then(|| {
            let secret = cfg.secret.as_bytes();
            (EncodingKey::from_secret(secret), DecodingKey::from_secret(secret))
        });
        // HS256 only: the header's `alg` is checked against this list, so
        // `none` and every other algorithm are refused.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.required_spec_claims = HashSet::from(["exp".to_owned()]);
        // `exp` and `nbf` are checked in `authenticate_at` (see
        // `check_times`) against an injectable clock, with the leeway.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        let api_keys = cfg.api_keys.iter().map(|k| k.as_bytes().into()).collect();
        Self { keys, validation, leeway: cfg.leeway_seconds, api_keys }
    }

    /// No secret: clients are identified by `?player_id=`.
    pub fn dev_mode(&self) -> bool {
        self.keys.is_none()
    }

    /// `token` from `?token=` or `Authorization: Bearer`; `dev_player` from
    /// `?player_id=` (accepted only in dev mode, and only when no token is
    /// given), at `now` (Unix seconds).
    pub fn authenticate_at(
        &self,
        token: Option<&str>,
        dev_player: Option<&str>,
        now: u64,
    ) -> Result<Identity, AuthError> {
        let token = token.map(str::trim).filter(|t| !t.is_empty());
        let Some(token) = token else {
            return match (self.dev_mode(), dev_player) {
                (true, Some(player)) if is_valid_player_id(player) => Ok(Identity {
                    player_id: player.to_owned(),
                    channels: None,
                    publish: None,
                    dev_mode: true,
                }),
                (true, Some(_)) => Err(AuthError::InvalidToken),
                _ => Err(AuthError::MissingToken),
            };
        };
        // A token cannot be verified without a secret: refusing it is safer
        // than ignoring it.
        let Some((_, decoding)) = &self.keys else {
            return Err(AuthError::InvalidToken);
        };
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::InvalidToken);
        }
        let claims = jsonwebtoken::decode::<Claims>(token, decoding, &self.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::ExpiredToken,
                _ => AuthError::InvalidToken,
            })?
            .claims;
        check_times(&claims, now, self.leeway)?;
        if !is_valid_player_id(&claims.sub) {
            return Err(AuthError::InvalidToken);
        }
        Ok(Identity {
            player_id: claims.sub,
            channels: claims.channels,
            publish: claims.publish,
            dev_mode: false,
        })
    }

    /// A verified token's identity and what a connection keeps of it
    /// (`exp`, `iat`, `jti`): [`Authenticator::authenticate_at`], then the
    /// claims it already checked, read again without a second signature
    /// check. `None` for the token info in development mode.
    pub fn verify_at(
        &self,
        token: Option<&str>,
        dev_player: Option<&str>,
        now: u64,
    ) -> Result<(Identity, Option<TokenInfo>), AuthError> {
        let who = self.authenticate_at(token, dev_player, now)?;
        if who.dev_mode {
            return Ok((who, None));
        }
        let token = token.map(str::trim).unwrap_or_default();
        let claims = jsonwebtoken::dangerous::insecure_decode::<Claims>(token)
            .map_err(|_| AuthError::InvalidToken)?
            .claims;
        let jti = claims.jti.filter(|j| is_valid_jti(j));
        Ok((who, Some(TokenInfo { exp: claims.exp, iat: claims.iat, jti })))
    }

    /// [`Authenticator::verify_at`] now.
    pub fn verify(
        &self,
        token: Option<&str>,
        dev_player: Option<&str>,
    ) -> Result<(Identity, Option<TokenInfo>), AuthError> {
        self.verify_at(token, dev_player, unix_now())
    }

    /// Checks a backend's bearer key against every configured key in
    /// constant time. With no key configured every request is refused: the
    /// API is never open.
    pub fn check_api_key(&self, bearer: Option<&str>) -> Result<(), AuthError> {
        if self.api_keys.is_empty() {
            return Err(AuthError::NoApiKeyConfigured);
        }
        let presented = bearer.map(str::trim).filter(|k| !k.is_empty()).ok_or(AuthError::MissingApiKey)?;
        // No early exit: the time taken does not tell which key matched.
        let mut matched = false;
        for key in &self.api_keys {
            matched |= tandem_monitoring::constant_time_eq(key, presented.as_bytes());
        }
        if matched { Ok(()) } else { Err(AuthError::InvalidApiKey) }
    }

    /// Mints an HS256 client token valid for `ttl`. Fails with
    /// [`AuthError::Forbidden`] in development mode (no secret to sign with)
    /// and [`AuthError::InvalidToken`] for an invalid player id.
    pub fn mint(
        &self,
        player_id: &str,
        ttl: Duration,
        channels: Option<Vec<String>>,
        publish: Option<Vec<String>>,
    ) -> Result<String, AuthError> {
        self.mint_at(player_id, ttl, channels, publish, unix_now())
    }

    /// [`Authenticator::mint`] at `now` (Unix seconds).
    pub fn mint_at(
        &self,
        player_id: &str,
        ttl: Duration,
        channels: Option<Vec<String>>,
        publish: Option<Vec<String>>,
        now: u64,
    ) -> Result<String, AuthError> {
        let Some((encoding, _)) = &self.keys else {
            return Err(AuthError::Forbidden);
        };
        if !is_valid_player_id(player_id) {
            return Err(AuthError::InvalidToken);
        }
        let claims = Claims {
            sub: player_id.to_owned(),
            exp: now.saturating_add(ttl.as_secs()),
            iat: now,
            nbf: None,
            channels,
            publish,
            jti: Some(format!("{:032x}", rand::random::<u128>())),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, encoding)
            .map_err(|_| AuthError::InvalidToken)
    }
}

/// `[A-Za-z0-9_.@-]{1,64}`: safe in channel names, URLs and logs.
/// A token's time claims at `now` (Unix seconds), `leeway` seconds of clock
/// skew either way: valid from `nbf - leeway` through `exp + leeway`.
fn check_times(claims: &Claims, now: u64, leeway: u64) -> Result<(), AuthError> {
    if claims.exp.saturating_add(leeway) < now {
        return Err(AuthError::ExpiredToken);
    }
    if claims.nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
        return Err(AuthError::NotYetValidToken);
    }
    Ok(())
}

/// Longest `jti` honoured (a longer one is ignored: such a token can only
/// be revoked by player).
pub const MAX_JTI_LEN: usize = 128;

/// `jti`: 1–128 characters, none of them a control character.
pub fn is_valid_jti(jti: &str) -> bool {
    !jti.is_empty() && jti.len() <= MAX_JTI_LEN && !jti.chars().any(char::is_control)
}

/// `"Bearer x"` → `"x"` (the scheme in any case); `None` for anything else.
pub fn bearer(header_value: Option<&str>) -> Option<&str> {
    let (scheme, credentials) = header_value?.trim().split_once(|c: char| c.is_ascii_whitespace())?;
    let credentials = credentials.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !credentials.is_empty()).then_some(credentials)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef-test";
    const NOW: u64 = 1_700_000_000;
    const KEY: &str = "backend-key-0123456789";

    fn auth_with(secret: &str, api_keys: &[&str]) -> Authenticator {
        Authenticator::new(&AuthConfig {
            secret: secret.to_owned(),
            api_keys: api_keys.iter().map(|k| (*k).to_owned()).collect(),
            token_ttl_seconds: 3600,
            ..AuthConfig::default()
        })
    }

    fn auth() -> Authenticator {
        auth_with(SECRET, &[KEY])
    }

    fn sign(alg: Algorithm, secret: &str, claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
    }

    fn b64url(data: &[u8]) -> String {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            }
        }
        out
    }

    #[test]
    fn valid_token_gives_identity_with_claims() {
        let token = sign(
            Algorithm::HS256,
            SECRET,
            &serde_json::json!({"sub": "alice", "exp": NOW + 60, "channels": ["room"], "publish": ["party"]}),
        );
        let id = auth().authenticate_at(Some(&token), None, NOW).unwrap();
        assert_eq!(
            id,
            Identity {
                player_id: "alice".into(),
                channels: Some(vec!["room".into()]),
                publish: Some(vec!["party".into()]),
                dev_mode: false,
            }
        );
    }

    /// The default `auth.leeway_seconds`.
    const LEEWAY: u64 = 2;

    #[test]
    fn expired_token_is_refused_after_the_leeway() {
        assert_eq!(AuthConfig::default().leeway_seconds, LEEWAY);
        let token = sign(Algorithm::HS256, SECRET, &serde_json::json!({"sub": "alice", "exp": NOW}));
        let a = auth();
        assert!(a.authenticate_at(Some(&token), None, NOW + LEEWAY).is_ok());
        assert_eq!(a.authenticate_at(Some(&token), None, NOW + LEEWAY + 1), Err(AuthError::ExpiredToken));
        assert_eq!(a.authenticate_at(Some(&token), None, NOW + 5), Err(AuthError::ExpiredToken));
    }

    #[test]
    fn a_token_is_refused_before_its_nbf_less_the_leeway() {
        let claims = serde_json::json!({"sub": "alice", "exp": NOW + 600, "nbf": NOW + 60});
        let token = sign(Algorithm::HS256, SECRET, &claims);
        let a = auth();
        assert_eq!(a.authenticate_at(Some(&token), None, NOW), Err(AuthError::NotYetValidToken));
        assert_eq!(
            a.authenticate_at(Some(&token), None, NOW + 60 - LEEWAY - 1),
            Err(AuthError::NotYetValidToken)
        );
        assert!(a.authenticate_at(Some(&token), None, NOW + 60 - LEEWAY).is_ok());
        assert!(a.authenticate_at(Some(&token), None, NOW + 60).is_ok());
        assert_eq!(AuthError::NotYetValidToken.code().as_str(), "token_not_yet_valid");
        // A malformed nbf is a malformed token.
        let bad =
            sign(Algorithm::HS256, SECRET, &serde_json::json!({"sub": "a", "exp": NOW + 60, "nbf": "x"}));
        assert_eq!(a.authenticate_at(Some(&bad), None, NOW), Err(AuthError::InvalidToken));
    }

    #[test]
    fn the_leeway_is_the_configured_one_both_ways() {
        let strict = Authenticator::new(&AuthConfig {
            secret: SECRET.into(),
            leeway_seconds: 0,
            ..AuthConfig::default()
        });
        let expired = sign(Algorithm::HS256, SECRET, &serde_json::json!({"sub": "alice", "exp": NOW}));
        assert!(strict.authenticate_at(Some(&expired), None, NOW).is_ok(), "valid through its exp second");
        assert_eq!(strict.authenticate_at(Some(&expired), None, NOW + 1), Err(AuthError::ExpiredToken));
        let early = sign(
            Algorithm::HS256,
            SECRET,
            &serde_json::json!({"sub": "alice", "exp": NOW + 60, "nbf": NOW + 1}),
        );
        assert_eq!(strict.authenticate_at(Some(&early), None, NOW), Err(AuthError::NotYetValidToken));
        assert!(strict.authenticate_at(Some(&early), None, NOW + 1).is_ok());
    }

    #[test]
    fn bad_signature_is_invalid() {
        let token = sign(
            Algorithm::HS256,
            "another-secret-another-secret-1234",
            &serde_json::json!({"sub": "alice", "exp": NOW + 60}),
        );
        assert_eq!(auth().authenticate_at(Some(&token), None, NOW), Err(AuthError::InvalidToken));
        let mut tampered =
            sign(Algorithm::HS256, SECRET, &serde_json::json!({"sub": "alice", "exp": NOW + 60}));
        tampered.push('A');
        assert_eq!(auth().authenticate_at(Some(&tampered), None, NOW), Err(AuthError::InvalidToken));
    }

    #[test]
    fn other_algorithms_and_none_are_invalid() {
        let claims = serde_json::json!({"sub": "alice", "exp": NOW + 60});
        let hs512 = sign(Algorithm::HS512, SECRET, &claims);
        assert_eq!(auth().authenticate_at(Some(&hs512), None, NOW), Err(AuthError::InvalidToken));
        let none = format!(
            "{}.{}.",
            b64url(br#"{"alg":"none","typ":"JWT"}"#),
            b64url(claims.to_string().as_bytes())
        );
        assert_eq!(auth().authenticate_at(Some(&none), None, NOW), Err(AuthError::InvalidToken));
    }

    #[test]
    fn missing_or_bad_claims_are_invalid() {
        let a = auth();
        for claims in [
            serde_json::json!({"exp": NOW + 60}),
            serde_json::json!({"sub": "", "exp": NOW + 60}),
            serde_json::json!({"sub": "has space", "exp": NOW + 60}),
            serde_json::json!({"sub": "x".repeat(65), "exp": NOW + 60}),
            serde_json::json!({"sub": "alice"}),
            serde_json::json!({"sub": "alice", "exp": "soon"}),
        ] {
            let token = sign(Algorithm::HS256, SECRET, &claims);
            assert_eq!(a.authenticate_at(Some(&token), None, NOW), Err(AuthError::InvalidToken), "{claims}");
        }
        assert_eq!(a.authenticate_at(Some("not.a.jwt"), None, NOW), Err(AuthError::InvalidToken));
        assert_eq!(
            a.authenticate_at(Some(&"a".repeat(MAX_TOKEN_BYTES + 1)), None, NOW),
            Err(AuthError::InvalidToken)
        );
    }

    #[test]
    fn no_token_is_missing_outside_dev_mode() {
        let a = auth();
        assert!(!a.dev_mode());
        assert_eq!(a.authenticate_at(None, None, NOW), Err(AuthError::MissingToken));
        assert_eq!(a.authenticate_at(Some("  "), None, NOW), Err(AuthError::MissingToken));
        // `?player_id=` means nothing once a secret is set.
        assert_eq!(a.authenticate_at(None, Some("alice"), NOW), Err(AuthError::MissingToken));
    }

    #[test]
    fn dev_mode_accepts_a_valid_player_id_only() {
        let a = auth_with("", &[]);
        assert!(a.dev_mode());
        let id = a.authenticate_at(None, Some("alice@example.com"), NOW).unwrap();
        assert_eq!(id.player_id, "alice@example.com");
        assert!(id.dev_mode);
        assert_eq!(id.channels, None);
        assert_eq!(a.authenticate_at(None, Some("bad id"), NOW), Err(AuthError::InvalidToken));
        assert_eq!(a.authenticate_at(None, Some(""), NOW), Err(AuthError::InvalidToken));
        assert_eq!(a.authenticate_at(None, None, NOW), Err(AuthError::MissingToken));
        // A token cannot be verified without a secret, and wins over player_id.
        let token = sign(Algorithm::HS256, SECRET, &serde_json::json!({"sub": "alice", "exp": NOW + 60}));
        assert_eq!(a.authenticate_at(Some(&token), Some("alice"), NOW), Err(AuthError::InvalidToken));
    }

    #[test]
    fn api_keys() {
        let a = auth_with(SECRET, &["first-key-0123456789", KEY]);
        assert_eq!(a.check_api_key(Some(KEY)), Ok(()));
        assert_eq!(a.check_api_key(Some("first-key-0123456789")), Ok(()));
        assert_eq!(a.check_api_key(None), Err(AuthError::MissingApiKey));
        assert_eq!(a.check_api_key(Some("")), Err(AuthError::MissingApiKey));
        assert_eq!(a.check_api_key(Some("backend-key-012345678")), Err(AuthError::InvalidApiKey));
        assert_eq!(a.check_api_key(Some("backend-key-01234567890")), Err(AuthError::InvalidApiKey));
        assert_eq!(a.check_api_key(Some("wrong")), Err(AuthError::InvalidApiKey));
    }

    #[test]
    fn no_api_keys_refuses_everything() {
        let a = auth_with(SECRET, &[]);
        for presented in [Some(KEY), None, Some("")] {
            let err = a.check_api_key(presented).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidApiKey, "the wire code is unchanged");
            let message = err.to_string();
            assert!(
                message.contains("auth.api_keys") && message.contains("TANDEM_AUTH__API_KEYS"),
                "{message}"
            );
        }
    }

    #[test]
    fn mint_then_verify_roundtrip() {
        let a = auth();
        let token = a.mint_at("bob", Duration::from_secs(60), Some(vec!["admin".into()]), None, NOW).unwrap();
        let id = a.authenticate_at(Some(&token), None, NOW + 30).unwrap();
        assert_eq!(id.player_id, "bob");
        assert_eq!(id.channels, Some(vec!["admin".to_owned()]));
        assert_eq!(id.publish, None);
        assert_eq!(
            a.authenticate_at(Some(&token), None, NOW + 60 + LEEWAY + 1),
            Err(AuthError::ExpiredToken)
        );
        // The real clock works too.
        let now_token = a.mint("carol", Duration::from_secs(3600), None, None).unwrap();
        assert_eq!(a.verify(Some(&now_token), None).unwrap().0.player_id, "carol");
        // Optional claims are left out of the token, not sent as null.
        let raw = jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(&now_token).unwrap();
        assert_eq!(raw.claims.get("channels"), None);
        assert_eq!(raw.claims.get("publish"), None);
        assert!(raw.claims.get("iat").and_then(serde_json::Value::as_u64).is_some());
    }

    #[test]
    fn mint_refuses_without_secret_or_with_bad_player() {
        assert_eq!(
            auth_with("", &[]).mint("bob", Duration::from_secs(60), None, None),
            Err(AuthError::Forbidden)
        );
        assert_eq!(
            auth().mint("not valid", Duration::from_secs(60), None, None),
            Err(AuthError::InvalidToken)
        );
    }

    #[test]
    fn error_codes() {
        let all = [
            (AuthError::MissingToken, "missing_token"),
            (AuthError::InvalidToken, "invalid_token"),
            (AuthError::ExpiredToken, "expired_token"),
            (AuthError::Forbidden, "forbidden"),
            (AuthError::MissingApiKey, "missing_api_key"),
            (AuthError::InvalidApiKey, "invalid_api_key"),
        ];
        for (err, code) in all {
            assert_eq!(err.code().as_str(), code);
        }
    }

    #[test]
    fn verify_gives_what_a_connection_keeps_of_its_token() {
        let a = auth();
        let token = sign(
            Algorithm::HS256,
            SECRET,
            &serde_json::json!({"sub": "alice", "exp": NOW + 60, "iat": NOW - 5, "jti": "t-1"}),
        );
        let (who, info) = a.verify_at(Some(&token), None, NOW).unwrap();
        assert_eq!(who.player_id, "alice");
        assert_eq!(info, Some(TokenInfo { exp: NOW + 60, iat: NOW - 5, jti: Some("t-1".into()) }));
        let long = sign(
            Algorithm::HS256,
            SECRET,
            &serde_json::json!({"sub": "alice", "exp": NOW + 60, "jti": "j".repeat(MAX_JTI_LEN + 1)}),
        );
        assert_eq!(a.verify_at(Some(&long), None, NOW).unwrap().1.unwrap().jti, None, "too long: ignored");
        let expired = sign(Algorithm::HS256, SECRET, &serde_json::json!({"sub": "alice", "exp": NOW - 60}));
        assert_eq!(a.verify_at(Some(&expired), None, NOW), Err(AuthError::ExpiredToken));
        let dev = auth_with("", &[]);
        assert_eq!(dev.verify_at(None, Some("bob"), NOW).unwrap().1, None, "no token in development mode");
        // Minted tokens carry a jti each.
        let minted = a.mint_at("bob", Duration::from_secs(60), None, None, NOW).unwrap();
        let other = a.mint_at("bob", Duration::from_secs(60), None, None, NOW).unwrap();
        let jti = |t: &str| a.verify_at(Some(t), None, NOW).unwrap().1.unwrap().jti;
        assert!(jti(&minted).is_some());
        assert_ne!(jti(&minted), jti(&other));
    }

    #[test]
    fn bearer_header() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer   abc ")), Some("abc"));
        assert_eq!(bearer(Some("BEARER abc")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(Some("abc")), None);
        assert_eq!(bearer(None), None);
    }

    #[test]
    fn player_ids() {
        assert!(is_valid_player_id("alice"));
        assert!(is_valid_player_id("A.b_c-d@e"));
        assert!(is_valid_player_id(&"x".repeat(64)));
        assert!(!is_valid_player_id(&"x".repeat(65)));
        assert!(!is_valid_player_id(""));
        assert!(!is_valid_player_id("a:b"));
        assert!(!is_valid_player_id("ünï"));
    }

    #[test]
    fn debug_never_shows_secrets() {
        let shown = format!("{:?}", auth());
        assert!(!shown.contains(SECRET) && !shown.contains(KEY), "{shown}");
    }
}
