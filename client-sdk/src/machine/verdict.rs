//! Whether a failed attempt or an ended link is worth another attempt,
//! from docs/protocol.md's close-code table and HTTP refusals.

/// How an attempt or a link ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The connect was refused with an HTTP status and the body's error
    /// `code` (empty when the body had none), `message`, and `retry` when
    /// the body said whether to try again (the game's connect hook does).
    Refused { status: u16, code: String, message: String, retry: Option<bool> },
    /// A WebSocket close frame or an SSE `close` event (`code` set), or a
    /// socket or stream that just ended (`None`).
    Closed { code: Option<u16>, reason: String },
    /// The server said not to come back (a `shutdown` frame with
    /// `reconnect: false`).
    NoReconnect { code: Option<u16>, reason: String },
    /// No welcome in time, or a silent link (no frame nor heartbeat within
    /// the liveness window).
    TimedOut,
    /// A network, TLS or protocol failure.
    Failed(String),
    /// A `seq` gap: the link is resumed from the last delivered `seq`.
    Gap,
}

/// The decision about an [`End`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Another attempt, after the backoff (and any server hint).
    Retry,
    /// No more attempts: the client is `Disconnected` with this code and
    /// reason.
    Stop { code: Option<u16>, reason: String },
}

/// Close code 4001: the backend disconnected the player on purpose.
pub const CLOSE_DISCONNECTED: u16 = 4001;

/// Close code 4002: the client ended its session (`end_session`).
pub const CLOSE_SESSION_ENDED: u16 = 4002;

/// Judges an end. Stops on: a refusal that says `"retry": false`; an auth
/// refusal (401, 403) that does not say `"retry": true` (a new attempt with
/// the same player would be refused again, and a token callback that could
/// fix it is already called on every attempt, so a refusal after it is
/// final); a connect request the server calls invalid (400: the same
/// request would fail again); close 4001 `disconnected` and 4002
/// `session_ended`; and an explicit "do not reconnect". Everything else,
/// a refusal with `"retry": true` included (the game's connect hook could
/// not be asked: 503 `backend_unavailable`), is retried.
pub fn judge(end: &End) -> Verdict {
    match end {
        End::Refused { retry: Some(true), .. } => Verdict::Retry,
        End::Refused { status, code, retry: Some(false), .. }
        | End::Refused { status: status @ (400 | 401 | 403), code, retry: None, .. } => {
            Verdict::Stop { code: Some(*status), reason: code.clone() }
        }
        End::Closed { code: Some(code @ (CLOSE_DISCONNECTED | CLOSE_SESSION_ENDED)), reason } => {
            Verdict::Stop { code: Some(*code), reason: reason.clone() }
        }
        End::NoReconnect { code, reason } => Verdict::Stop { code: *code, reason: reason.clone() },
        End::Refused { .. } | End::Closed { .. } | End::TimedOut | End::Failed(_) | End::Gap => {
            Verdict::Retry
        }
    }
}

/// A close after the backend's `disconnected` frame (`farewell`, its
/// reason): never reconnect, and say why in the backend's words.
pub fn with_farewell(end: End, farewell: Option<String>) -> End {
    match (end, farewell) {
        (End::Closed { code, .. } | End::NoReconnect { code, .. }, Some(reason)) => {
            End::NoReconnect { code, reason }
        }
        (end, _) => end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16, code: &str) -> End {
        End::Refused { status, code: code.into(), message: String::new(), retry: None }
    }

    fn refused_retry(status: u16, code: &str, retry: bool) -> End {
        End::Refused { status, code: code.into(), message: "m".into(), retry: Some(retry) }
    }

    fn closed(code: Option<u16>, reason: &str) -> End {
        End::Closed { code, reason: reason.into() }
    }

    #[test]
    fn a_farewell_stops_with_the_backends_reason() {
        let end = with_farewell(closed(Some(4001), "disconnected"), Some("banned".into()));
        assert_eq!(judge(&end), Verdict::Stop { code: Some(4001), reason: "banned".into() });
        assert_eq!(
            with_farewell(closed(Some(4003), "token_expired"), None),
            closed(Some(4003), "token_expired")
        );
        assert_eq!(judge(&closed(Some(4003), "token_expired")), Verdict::Retry, "a new token, then again");
        assert_eq!(judge(&closed(Some(4004), "token_revoked")), Verdict::Retry);
        assert_eq!(with_farewell(End::TimedOut, Some("x".into())), End::TimedOut);
    }

    #[test]
    fn auth_refusals_stop_with_their_status() {
        assert_eq!(
            judge(&refused(401, "invalid_token")),
            Verdict::Stop { code: Some(401), reason: "invalid_token".into() }
        );
        assert_eq!(
            judge(&refused(403, "origin_not_allowed")),
            Verdict::Stop { code: Some(403), reason: "origin_not_allowed".into() }
        );
        assert_eq!(
            judge(&refused(400, "invalid_channel")),
            Verdict::Stop { code: Some(400), reason: "invalid_channel".into() }
        );
    }

    #[test]
    fn a_connect_hook_refusal_follows_its_retry() {
        assert_eq!(
            judge(&refused_retry(403, "banned", false)),
            Verdict::Stop { code: Some(403), reason: "banned".into() }
        );
        assert_eq!(judge(&refused_retry(403, "queue_full", true)), Verdict::Retry);
        assert_eq!(judge(&refused_retry(401, "try_later", true)), Verdict::Retry);
        assert_eq!(judge(&refused_retry(503, "backend_unavailable", true)), Verdict::Retry);
        assert_eq!(judge(&refused(503, "backend_unavailable")), Verdict::Retry);
        assert_eq!(
            judge(&refused_retry(503, "closed_for_maintenance", false)),
            Verdict::Stop { code: Some(503), reason: "closed_for_maintenance".into() },
            "an explicit retry: false stops whatever the status"
        );
    }

    #[test]
    fn busy_or_broken_servers_are_retried() {
        for status in [404, 429, 500, 502, 503] {
            assert_eq!(judge(&refused(status, "x")), Verdict::Retry, "{status}");
        }
    }

    #[test]
    fn close_codes_follow_the_protocol_table() {
        for code in [1000, 1009, 1011, 1012, 4000, 4008, 4029] {
            assert_eq!(judge(&closed(Some(code), "r")), Verdict::Retry, "{code}");
        }
        assert_eq!(judge(&closed(None, "connection dropped")), Verdict::Retry);
        assert_eq!(
            judge(&closed(Some(4001), "disconnected")),
            Verdict::Stop { code: Some(4001), reason: "disconnected".into() }
        );
        assert_eq!(
            judge(&closed(Some(4002), "session_ended")),
            Verdict::Stop { code: Some(4002), reason: "session_ended".into() }
        );
    }

    #[test]
    fn timeouts_failures_and_gaps_are_retried_and_no_reconnect_stops() {
        assert_eq!(judge(&End::TimedOut), Verdict::Retry);
        assert_eq!(judge(&End::Failed("reset".into())), Verdict::Retry);
        assert_eq!(judge(&End::Gap), Verdict::Retry);
        assert_eq!(
            judge(&End::NoReconnect { code: Some(1012), reason: "shutdown".into() }),
            Verdict::Stop { code: Some(1012), reason: "shutdown".into() }
        );
    }
}
