//! Channel names and who may subscribe or publish where.
//!
//! A channel is `<namespace>:<name>`. Every session is subscribed to its
//! player's `player:<id>`; `player:` and `admin:` never accept client
//! publishes.

use crate::session::identity::Identity;
use crate::session::protocol::{ErrorCode, ProtocolError};

/// Channel every broadcast is delivered on; not a valid client channel, so no
/// client can subscribe to it or publish into it.
pub const BROADCAST_CHANNEL: &str = "broadcast";

/// Namespaces no client may ever publish into.
pub const RESERVED_NAMESPACES: [&str; 2] = ["player", "admin"];

pub fn personal_channel(player_id: &str) -> String {
    format!("player:{player_id}")
}

/// `[a-z][a-z0-9_-]{0,31}`.
pub fn is_valid_namespace(ns: &str) -> bool {
    let b = ns.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

/// Splits and checks a channel name; returns its namespace.
pub fn namespace(channel: &str) -> Result<&str, ProtocolError> {
    let invalid = || {
        ProtocolError::new(
            ErrorCode::InvalidChannel,
            "channel must be <namespace>:<name> ([a-z][a-z0-9_-]{0,31} : 1-96 of [A-Za-z0-9_.:@-])",
        )
    };
    let (ns, name) = channel.split_once(':').ok_or_else(invalid)?;
    let name_ok = !name.is_empty()
        && name.len() <= 96
        && name.bytes().all(|c| c.is_ascii_alphanumeric() || b"_.:@-".contains(&c));
    if is_valid_namespace(ns) && name_ok { Ok(ns) } else { Err(invalid()) }
}

fn listed(list: &[String], ns: &str, channel: &str) -> bool {
    list.iter().any(|e| e == ns || e == channel)
}

/// May `who` subscribe to `channel`?
pub fn check_subscribe(who: &Identity, channel: &str) -> Result<(), ProtocolError> {
    let ns = namespace(channel)?;
    let forbidden = |why: &str| Err(ProtocolError::new(ErrorCode::Forbidden, why.to_owned()));
    if ns == "player" {
        return if channel[7..] == *who.player_id { Ok(()) } else { forbidden("another player's channel") };
    }
    match &who.channels {
        Some(allowed) if !listed(allowed, ns, channel) => forbidden("the token does not allow this channel"),
        None if ns == "admin" => forbidden("admin channels need a token that names them"),
        _ => Ok(()),
    }
}

/// May `who` publish into `channel`? `client_publish` is the configured list.
pub fn check_publish(who: &Identity, channel: &str, client_publish: &[String]) -> Result<(), ProtocolError> {
    let ns = namespace(channel)?;
    let allowed = who.publish.as_deref().unwrap_or(client_publish);
    if RESERVED_NAMESPACES.contains(&ns) || !listed(allowed, ns, channel) {
        return Err(ProtocolError::new(
            ErrorCode::Forbidden,
            format!("clients may not publish into `{ns}:`"),
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn who(channels: Option<Vec<&str>>, publish: Option<Vec<&str>>) -> Identity {
        Identity {
            player_id: "alice".into(),
            channels: channels.map(|v| v.into_iter().map(String::from).collect()),
            publish: publish.map(|v| v.into_iter().map(String::from).collect()),
            dev_mode: false,
        }
    }

    #[test]
    fn names() {
        assert_eq!(namespace("room:tavern").unwrap(), "room");
        assert_eq!(namespace("party:42:sub").unwrap(), "party");
        for bad in ["", "room", ":x", "room:", "Room:x", "room:a b", "1x:y", "room:é"] {
            assert_eq!(namespace(bad).unwrap_err().code, ErrorCode::InvalidChannel, "{bad}");
        }
        assert!(namespace(&format!("room:{}", "a".repeat(97))).is_err());
        assert!(namespace(BROADCAST_CHANNEL).is_err());
    }

    #[test]
    fn subscribe_rules() {
        let w = who(None, None);
        assert!(check_subscribe(&w, "room:a").is_ok());
        assert!(check_subscribe(&w, "player:alice").is_ok());
        assert_eq!(check_subscribe(&w, "player:bob").unwrap_err().code, ErrorCode::Forbidden);
        assert_eq!(check_subscribe(&w, "admin:ops").unwrap_err().code, ErrorCode::Forbidden);
        let w = who(Some(vec!["admin", "party:1"]), None);
        assert!(check_subscribe(&w, "admin:ops").is_ok());
        assert!(check_subscribe(&w, "party:1").is_ok());
        assert_eq!(check_subscribe(&w, "party:2").unwrap_err().code, ErrorCode::Forbidden);
        assert_eq!(check_subscribe(&w, "room:a").unwrap_err().code, ErrorCode::Forbidden);
    }

    #[test]
    fn publish_rules() {
        let cfg = vec!["room".to_string(), "party".to_string()];
        let w = who(None, None);
        assert!(check_publish(&w, "room:a", &cfg).is_ok());
        for ch in ["player:alice", "player:bob", "admin:x", "secret:x"] {
            assert_eq!(check_publish(&w, ch, &cfg).unwrap_err().code, ErrorCode::Forbidden, "{ch}");
        }
        let w = who(None, Some(vec!["guild", "admin"]));
        assert!(check_publish(&w, "guild:x", &cfg).is_ok());
        assert!(check_publish(&w, "room:a", &cfg).is_err());
        assert!(check_publish(&w, "admin:x", &cfg).is_err(), "admin is never publishable");
    }
}
