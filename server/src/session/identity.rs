//! Who a verified client is: plain data that authentication produces and
//! channel permissions read. Its own module so that `channels` does not
//! depend on `auth` (which depends on `config`, which reads `channels`).

/// Longest player id.
pub const MAX_PLAYER_ID_LEN: usize = 64;

/// The one rule for player ids (tokens, the API, what other nodes send):
/// 1-64 bytes of `[A-Za-z0-9_.@-]`.
pub fn is_valid_player_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_PLAYER_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'@' | b'-'))
}

/// What a verified client is (serialized when a node forwards an SSE
/// uplink post to the node holding the session).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub player_id: String,
    /// The token's `channels` claim.
    pub channels: Option<Vec<String>>,
    /// The token's `publish` claim.
    pub publish: Option<Vec<String>>,
    /// Identified by `?player_id=` in development mode, not by a token.
    pub dev_mode: bool,
}

/// What a connection remembers of the token it holds: enough to time its
/// expiry and to match a revocation, nothing more.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenInfo {
    /// `exp`, Unix seconds.
    pub exp: u64,
    /// `iat`, Unix seconds (0 when the token has none).
    pub iat: u64,
    /// `jti`, when the token has one.
    pub jti: Option<String>,
}
