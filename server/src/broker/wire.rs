//! How a publication travels between nodes: one Redis message, a few
//! newline-separated header lines and the frame tail exactly as the
//! accepting node serialized it (so no node re-encodes the payload).
//!
//! ```text
//! T1\n<origin node>\n<c|b>\n<sent epoch µs>\n<id>\n<channel>\n<tail>
//! T1\n<origin node>\nd\n<sent epoch µs>\n-\n<player id>\n<reason, may be empty>
//! T1\n<origin node>\nr\n<sent epoch µs>\nj\n<jti>\n<until epoch ms>
//! T1\n<origin node>\nr\n<sent epoch µs>\np\n<player id>\n<issued before epoch ms> <until epoch ms>
//! T1\n<origin node>\n<j|l>\n<sent epoch µs>\n<channel>\n<player id>\n
//! ```
//! The second line is a backend `disconnect` of one player, for every node;
//! the third and fourth a token revocation (by `jti`, by player); the last
//! a player's `join` or `leave` of a channel decided on the origin node
//! (`channels.presence_events`).
//! Node ids, publication ids and channel names never hold a newline.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use super::{Envelope, Scope};
use crate::session::channel_presence::Change;
use crate::session::protocol::Publication;
use crate::session::revocation::Revocation;

const VERSION: &[u8] = b"T1";

/// What travels between nodes.
#[derive(Debug)]
pub enum Payload {
    Publication(Envelope),
    /// End every session of this player (backend `disconnect`), with the
    /// backend's reason when it gave one.
    Disconnect {
        player_id: String,
        reason: Option<String>,
    },
    /// A token revocation.
    Revoke(Revocation),
    /// A player joined or left a channel on the origin node.
    Presence {
        change: Change,
        channel: String,
        player_id: String,
    },
}

/// A message received from the broker.
#[derive(Debug)]
pub struct Received {
    pub origin: String,
    pub sent_us: u64,
    pub payload: Payload,
}

/// A backend `disconnect` of `player_id` (no newline in it: player ids
/// are checked before).
pub fn encode_disconnect(origin: &str, sent_us: u64, player_id: &str, reason: Option<&str>) -> Bytes {
    let reason = reason.unwrap_or_default();
    let mut buf = BytesMut::with_capacity(32 + origin.len() + player_id.len() + reason.len());
    buf.put_slice(VERSION);
    buf.put_u8(b'\n');
    buf.put_slice(origin.as_bytes());
    buf.put_slice(b"\nd\n");
    buf.put_slice(itoa::Buffer::new().format(sent_us).as_bytes());
    buf.put_slice(b"\n-\n");
    buf.put_slice(player_id.as_bytes());
    buf.put_u8(b'\n');
    buf.put_slice(reason.as_bytes());
    buf.freeze()
}

/// A token revocation (a `jti` and a player id never hold a newline: both
/// are checked before).
pub fn encode_revocation(origin: &str, sent_us: u64, r: &Revocation) -> Bytes {
    let (kind, name, rest) = match r {
        Revocation::Jti { jti, until_ms } => ("j", jti.as_str(), until_ms.to_string()),
        Revocation::Player { player_id, issued_before_ms, until_ms } => {
            ("p", player_id.as_str(), format!("{issued_before_ms} {until_ms}"))
        }
    };
    let mut buf = BytesMut::with_capacity(48 + origin.len() + name.len());
    buf.put_slice(VERSION);
    buf.put_u8(b'\n');
    buf.put_slice(origin.as_bytes());
    buf.put_slice(b"\nr\n");
    buf.put_slice(itoa::Buffer::new().format(sent_us).as_bytes());
    buf.put_u8(b'\n');
    buf.put_slice(kind.as_bytes());
    buf.put_u8(b'\n');
    buf.put_slice(name.as_bytes());
    buf.put_u8(b'\n');
    buf.put_slice(rest.as_bytes());
    buf.freeze()
}

/// The revocation `kind` (`j`/`p`) naming `name` whose numbers are `rest`.
pub fn decode_revocation(kind: &[u8], name: &str, rest: &str) -> Option<Revocation> {
    let mut numbers = rest.split(' ').map(|n| n.parse::<u64>().ok());
    let r = match kind {
        b"j" => Revocation::Jti { jti: name.to_owned(), until_ms: numbers.next()?? },
        b"p" => Revocation::Player {
            player_id: name.to_owned(),
            issued_before_ms: numbers.next()??,
            until_ms: numbers.next()??,
        },
        _ => return None,
    };
    (numbers.next().is_none() && !name.is_empty()).then_some(r)
}

/// A `join` or `leave` of `player_id` in `channel` (neither holds a
/// newline: both were checked before).
pub fn encode_presence(origin: &str, sent_us: u64, change: Change, channel: &str, player_id: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(32 + origin.len() + channel.len() + player_id.len());
    buf.put_slice(VERSION);
    buf.put_u8(b'\n');
    buf.put_slice(origin.as_bytes());
    buf.put_slice(match change {
        Change::Join => b"\nj\n",
        Change::Leave => b"\nl\n",
    });
    buf.put_slice(itoa::Buffer::new().format(sent_us).as_bytes());
    buf.put_u8(b'\n');
    buf.put_slice(channel.as_bytes());
    buf.put_u8(b'\n');
    buf.put_slice(player_id.as_bytes());
    buf.put_u8(b'\n');
    buf.freeze()
}

pub fn encode(origin: &str, sent_us: u64, envelope: &Envelope) -> Bytes {
    let p = &envelope.publication;
    let tail = p.tail();
    let mut buf = BytesMut::with_capacity(64 + origin.len() + p.id.len() + p.channel.len() + tail.len());
    buf.put_slice(VERSION);
    buf.put_u8(b'\n');
    buf.put_slice(origin.as_bytes());
    buf.put_u8(b'\n');
    buf.put_u8(match envelope.scope {
        Scope::Channel => b'c',
        Scope::Broadcast => b'b',
    });
    buf.put_u8(b'\n');
    buf.put_slice(itoa::Buffer::new().format(sent_us).as_bytes());
    buf.put_u8(b'\n');
    buf.put_slice(p.id.as_bytes());
    buf.put_u8(b'\n');
    buf.put_slice(p.channel.as_bytes());
    buf.put_u8(b'\n');
    buf.put_slice(tail);
    buf.freeze()
}

/// Decodes one message; `None` for anything that is not ours.
pub fn decode(msg: Bytes) -> Option<Received> {
    let mut fields: [&[u8]; 6] = [&[]; 6];
    let mut rest: &[u8] = &msg;
    for f in &mut fields {
        let nl = rest.iter().position(|&b| b == b'\n')?;
        *f = &rest[..nl];
        rest = &rest[nl + 1..];
    }
    let [version, origin, scope, sent, id, channel] = fields;
    if version != VERSION {
        return None;
    }
    let sent_us = std::str::from_utf8(sent).ok()?.parse().ok()?;
    let origin = std::str::from_utf8(origin).ok()?.to_owned();
    if scope == b"d" {
        let player = std::str::from_utf8(channel).ok().filter(|p| !p.is_empty())?;
        let reason = std::str::from_utf8(rest).ok()?;
        let payload = Payload::Disconnect {
            player_id: player.to_owned(),
            reason: (!reason.is_empty()).then(|| reason.to_owned()),
        };
        return Some(Received { origin, sent_us, payload });
    }
    if scope == b"r" {
        let name = std::str::from_utf8(channel).ok()?;
        let r = decode_revocation(id, name, std::str::from_utf8(rest).ok()?)?;
        return Some(Received { origin, sent_us, payload: Payload::Revoke(r) });
    }
    if scope == b"j" || scope == b"l" {
        let change = if scope == b"j" { Change::Join } else { Change::Leave };
        let name = std::str::from_utf8(id).ok().filter(|c| !c.is_empty())?;
        let player = std::str::from_utf8(channel).ok().filter(|p| !p.is_empty() && rest.is_empty())?;
        let payload = Payload::Presence { change, channel: name.to_owned(), player_id: player.to_owned() };
        return Some(Received { origin, sent_us, payload });
    }
    if rest.first() != Some(&b'"') || rest.last() != Some(&b'}') {
        return None;
    }
    let scope = match scope {
        b"c" => Scope::Channel,
        b"b" => Scope::Broadcast,
        _ => return None,
    };
    let id: Box<str> = std::str::from_utf8(id).ok()?.into();
    let channel: Arc<str> = std::str::from_utf8(channel).ok()?.into();
    let tail = msg.slice_ref(rest);
    let publication = Arc::new(Publication::from_parts(id, channel, tail));
    Some(Received { origin, sent_us, payload: Payload::Publication(Envelope { scope, publication }) })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use bytes::BytesMut;
    use serde_json::value::RawValue;

    use super::*;

    #[test]
    fn round_trips_without_reencoding() {
        let data = RawValue::from_string(r#"{"text":"line\nbreak"}"#.into()).unwrap();
        let p = Arc::new(Publication::new("m_1".into(), Arc::from("room:a"), "chat", &data));
        let env = Envelope { scope: Scope::Channel, publication: Arc::clone(&p) };
        let msg = encode("n_abc", 42, &env);
        let r = decode(msg).unwrap();
        assert_eq!((r.origin.as_str(), r.sent_us), ("n_abc", 42));
        let Payload::Publication(got) = r.payload else { panic!("a publication") };
        assert_eq!(got.scope, Scope::Channel);
        assert_eq!(&*got.publication.id, "m_1");
        assert_eq!(&*got.publication.channel, "room:a");
        let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
        p.encode_json(7, &mut a);
        got.publication.encode_json(7, &mut b);
        assert_eq!(a, b);

        let env = Envelope { scope: Scope::Broadcast, publication: p };
        let Payload::Publication(got) = decode(encode("n", 1, &env)).unwrap().payload else { panic!() };
        assert_eq!(got.scope, Scope::Broadcast);

        let d = decode(encode_disconnect("n_x", 5, "alice", None)).unwrap();
        assert!(matches!(d.payload, Payload::Disconnect { player_id, reason: None } if player_id == "alice"));
        let d = decode(encode_disconnect("n_x", 5, "alice", Some("banned"))).unwrap();
        assert!(matches!(d.payload, Payload::Disconnect { reason: Some(r), .. } if r == "banned"));

        for r in [
            Revocation::Jti { jti: "t-1".into(), until_ms: 99 },
            Revocation::Player { player_id: "bob".into(), issued_before_ms: 5, until_ms: 77 },
        ] {
            let got = decode(encode_revocation("n_x", 5, &r)).unwrap();
            assert!(matches!(got.payload, Payload::Revoke(ref g) if *g == r), "{r:?}");
        }
        assert!(decode_revocation(b"j", "x", "1 2").is_none());
        assert!(decode_revocation(b"p", "x", "1").is_none());
        assert!(decode_revocation(b"j", "", "1").is_none());
        assert!(decode_revocation(b"q", "x", "1").is_none());

        let j = decode(encode_presence("n_x", 6, Change::Join, "room:a", "bob")).unwrap();
        assert!(matches!(j.payload, Payload::Presence { change: Change::Join, channel, player_id }
            if channel == "room:a" && player_id == "bob"));
        let l = decode(encode_presence("n_x", 6, Change::Leave, "room:a", "bob")).unwrap();
        assert!(matches!(l.payload, Payload::Presence { change: Change::Leave, .. }));
    }

    #[test]
    fn rejects_what_is_not_ours() {
        for bad in [
            "",
            "hello",
            "T1\nn\nc\n1\nm\nroom:a",
            "T2\nn\nc\n1\nm\nroom:a\n\"id\":1}",
            "T1\nn\nx\n1\nm\nr\n\"a\"}",
        ] {
            assert!(decode(Bytes::from(bad)).is_none(), "{bad:?}");
        }
        assert!(decode(Bytes::from("T1\nn\nc\nNaN\nm\nr\n\"a\":1}")).is_none());
        assert!(decode(Bytes::from("T1\nn\nd\n1\n-\n\n")).is_none(), "no player");
        assert!(decode(Bytes::from("T1\nn\nj\n1\n\nalice\n")).is_none(), "no channel");
    }
}
