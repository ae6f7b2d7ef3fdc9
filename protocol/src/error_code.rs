//! Every stable error code a client, a backend or an operator can receive,
//! in an `error` frame or an `{"error":{"code":…}}` body. Defined once: the
//! server maps each to its HTTP status at the edge, and `docs/protocol.md`
//! documents each (a test holds the two together).

use serde::{Deserialize, Serialize};

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident => $label:literal,)+) => {
        /// A stable error code; its label (`as_str`) is the contract.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)+
        }

        impl ErrorCode {
            /// Every code, in the order `docs/protocol.md` lists them.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)+];

            /// The code as clients see it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $label,)+
                }
            }
        }
    };
}

error_codes! {
    /// Not a JSON object, or `data` too deep or with a lone surrogate escape.
    InvalidJson => "invalid_json",
    /// A request body that could not be read.
    InvalidBody => "invalid_body",
    /// A JSON route's body without a JSON `Content-Type`.
    UnsupportedMediaType => "unsupported_media_type",
    /// Request line and headers over `server.max_request_head_bytes`.
    RequestHeadTooLarge => "request_head_too_large",
    /// `type` missing or not a client message.
    UnknownType => "unknown_type",
    /// A required field missing or of the wrong type.
    InvalidMessage => "invalid_message",
    /// A channel name that breaks the naming rules.
    InvalidChannel => "invalid_channel",
    /// A binary WebSocket frame.
    UnsupportedFrame => "unsupported_frame",
    /// A frame or body over `transport.max_message_bytes`.
    TooLarge => "too_large",
    /// Not allowed for this player.
    Forbidden => "forbidden",
    /// Over `session.max_subscriptions`.
    TooManySubscriptions => "too_many_subscriptions",
    /// Over the inbound rate.
    RateLimited => "rate_limited",
    /// No client token.
    MissingToken => "missing_token",
    /// A token with a bad signature, malformed, or of the wrong algorithm.
    InvalidToken => "invalid_token",
    /// A token past its `exp`.
    ExpiredToken => "expired_token",
    /// A token before its `nbf` (less `auth.leeway_seconds`).
    TokenNotYetValid => "token_not_yet_valid",
    /// A token revoked by the backend (`POST /api/tokens/revoke`).
    RevokedToken => "revoked_token",
    /// A `refresh` whose token names another player (`sub`).
    SubjectChanged => "subject_changed",
    /// A `refresh` in development mode, where there are no tokens.
    TokensDisabled => "tokens_disabled",
    /// The backend API without a key.
    MissingApiKey => "missing_api_key",
    /// The backend API with a wrong key.
    InvalidApiKey => "invalid_api_key",
    /// `/monitoring/*` or `/metrics` without the operator token.
    Unauthorized => "unauthorized",
    /// A browser `Origin` that may not connect.
    OriginNotAllowed => "origin_not_allowed",
    /// An unknown or expired session.
    SessionNotFound => "session_not_found",
    /// A player with no session.
    PlayerNotFound => "player_not_found",
    /// An unknown route.
    NotFound => "not_found",
    /// `GET /ws` that is not a valid WebSocket handshake.
    InvalidUpgrade => "invalid_upgrade",
    /// A transport turned off in `server.transports`.
    TransportDisabled => "transport_disabled",
    /// Over `session.max_connections_per_player`.
    TooManyConnections => "too_many_connections",
    /// Over `server.max_connections`.
    ServerFull => "server_full",
    /// The server is shutting down.
    Draining => "draining",
    /// The cluster broker cannot carry the publication.
    BrokerUnavailable => "broker_unavailable",
    /// A command or hook: the game backend did not answer in time.
    BackendTimeout => "backend_timeout",
    /// A command or hook: the game backend could not be reached.
    BackendUnavailable => "backend_unavailable",
    /// A command or hook: the game backend answered 3xx, 5xx or out of contract.
    BackendError => "backend_error",
    /// A command with no `backend.command_url` and no embedded handler.
    NoBackend => "no_backend",
    /// A command `id` already used in this session for another command.
    Conflict => "conflict",
    /// A bug, logged as a `system_error`.
    Internal => "internal",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The protocol reference lists every code in its error table.
    const PROTOCOL_DOC: &str = include_str!("../../docs/protocol.md");

    #[test]
    fn every_code_is_documented_in_the_protocol_reference() {
        let missing: Vec<&str> = ErrorCode::ALL
            .iter()
            .map(|c| c.as_str())
            .filter(|label| !PROTOCOL_DOC.contains(&format!("`{label}`")))
            .collect();
        assert!(missing.is_empty(), "docs/protocol.md does not document: {missing:?}");
    }

    #[test]
    fn labels_are_unique_and_match_serde() {
        let mut seen = std::collections::HashSet::new();
        for &code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "{code} twice");
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
    }
}
