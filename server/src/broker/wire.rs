//! How a publication travels between nodes: one Redis message, a few
//! newline-separated header lines and the frame tail exactly as the
//! accepting node serialized it (so no node re-encodes the payload).
//!
//! ```text
//! T2\n<mac>\n<origin node>\n<c|b|C|B>\n<sent epoch µs>\n<id>\n<channel>\n{<tail>
//! T2\n<mac>\n<origin node>\nd\n<sent epoch µs>\n-\n<player id>\n<reason, may be empty>
//! T2\n<mac>\n<origin node>\nr\n<sent epoch µs>\nj\n<jti>\n<until epoch ms>
//! T2\n<mac>\n<origin node>\nr\n<sent epoch µs>\np\n<player id>\n<issued before epoch ms> <until epoch ms>
//! T2\n<mac>\n<origin node>\n<j|l>\n<sent epoch µs>\n<channel>\n<player id>\n
//! T2\n<mac>\n<origin node>\nm\n<sent epoch µs>\n-\n<session id>\n
//! T2\n<mac>\n<origin node>\nu\n<sent epoch µs>\n<request>\n<to node>\n<session id>\n<identity JSON>\n<body>
//! T2\n<mac>\n<origin node>\nU\n<sent epoch µs>\n<request>\n<to node>\n<status>\n<body>
//! ```
//! The first is a publication to a channel (`c`) or to everyone (`b`),
//! in upper case when its id is the backend's (delivered once per id); its
//! last line is the frame's fields after `seq` as one JSON object, checked
//! where it lies in the message (no copy).
//! The second line is a backend `disconnect` of one player, for every node;
//! the third and fourth a token revocation (by `jti`, by player); the last
//! a player's `join` or `leave` of a channel decided on the origin node
//! (`channels.presence_events`); the last says the origin node took a
//! session over (its previous node drops its copy); `u` is an SSE
//! client's uplink post that reached a node not holding its session, for
//! the node that does (the client's verified identity with it), and `U`
//! that node's answer.
//!
//! A publication comes out of Redis as `P<epoch>.<offset>.<tag>\n` and
//! the message: its place in its channel's history, written by Redis.
//!
//! `<mac>` is the lower-case hex HMAC-SHA256, keyed by
//! `broker.cluster_key`, of everything after its line: another client of
//! the same Redis cannot inject a message without the key. A message that
//! verifies is still checked like a client's (sizes, names, the frame's
//! JSON), since one key leaked must not be a way into every session.
//! Node ids, publication ids and channel names never hold a newline.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Envelope, Scope};
use crate::session::channel_presence::Change;
use crate::session::channels;
use crate::session::identity::{Identity, is_valid_player_id};
use crate::session::position::Position;
use crate::session::protocol::{self, Publication};
use crate::session::revocation::Revocation;

const VERSION: &[u8] = b"T2";
/// `T2\n`, the MAC in hex, `\n`: what precedes the signed part.
const HEAD: usize = VERSION.len() + 1 + 64 + 1;
/// Room for the header lines beside a frame tail of the largest size (and
/// beside a forwarded uplink body: its identity, at most
/// [`MAX_IDENTITY_BYTES`]).
const HEADER_ROOM: usize = 1024 + MAX_IDENTITY_BYTES;
/// The longest identity an uplink post is forwarded with (its token's
/// claims); past it the post is answered where it arrived.
pub const MAX_IDENTITY_BYTES: usize = 4096;

/// `broker.cluster_key`, ready to sign and verify (keyed once).
#[derive(Clone)]
pub struct ClusterKey(Hmac<Sha256>);

impl ClusterKey {
    pub fn new(secret: &[u8]) -> Self {
        // HMAC takes a key of any length: this cannot fail.
        Self(<Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!()))
    }
}

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(***)")
    }
}

/// Why a message from the broker was refused (the `reason` label of
/// `tandem_broker_messages_refused_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Larger than any message a node sends (`transport.max_message_bytes`
    /// and its header): dropped before anything else is read.
    TooLarge,
    /// Not signed with the cluster's key (or not this format at all).
    Unsigned,
    /// Signed, but not what a node writes (names, sizes, the frame's JSON).
    Malformed,
}

impl Refused {
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::TooLarge => "too_large",
            Refused::Unsigned => "unsigned",
            Refused::Malformed => "malformed",
        }
    }
}

/// A buffer holding the header's room, for `seal` to fill.
fn start(capacity: usize) -> BytesMut {
    let mut buf = BytesMut::with_capacity(HEAD + capacity);
    buf.put_slice(VERSION);
    buf.put_u8(b'\n');
    buf.put_bytes(b'0', 64);
    buf.put_u8(b'\n');
    buf
}

/// Writes the MAC of what follows the header.
fn seal(key: &ClusterKey, mut buf: BytesMut) -> Bytes {
    let mac = key.0.clone().chain_update(&buf[HEAD..]).finalize().into_bytes();
    // 32 bytes into 64 hex digits: the sizes match.
    let _ = hex::encode_to_slice(mac, &mut buf[VERSION.len() + 1..HEAD - 1]);
    buf.freeze()
}

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
    /// The origin node took this session over.
    Moved {
        session_id: String,
    },
    /// An SSE uplink post for node `to`, which holds `session_id`.
    Uplink {
        request: u64,
        to: String,
        session_id: String,
        identity: Identity,
        body: Bytes,
    },
    /// Node `to`'s answer to its uplink post `request`.
    UplinkAnswer {
        request: u64,
        to: String,
        status: u16,
        body: Bytes,
    },
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
pub fn encode_disconnect(
    key: &ClusterKey,
    origin: &str,
    sent_us: u64,
    player_id: &str,
    reason: Option<&str>,
) -> Bytes {
    let reason = reason.unwrap_or_default();
    message(key, origin, b'd', sent_us, &[b"-", player_id.as_bytes()], &[reason.as_bytes()])
}

/// A token revocation (a `jti` and a player id never hold a newline: both
/// are checked before).
pub fn encode_revocation(key: &ClusterKey, origin: &str, sent_us: u64, r: &Revocation) -> Bytes {
    let (kind, name, rest) = match r {
        Revocation::Jti { jti, until_ms } => ("j", jti.as_str(), until_ms.to_string()),
        Revocation::Player { player_id, issued_before_ms, until_ms } => {
            ("p", player_id.as_str(), format!("{issued_before_ms} {until_ms}"))
        }
    };
    message(key, origin, b'r', sent_us, &[kind.as_bytes(), name.as_bytes()], &[rest.as_bytes()])
}

/// The revocation `kind` (`j`/`p`) naming `name` whose numbers are `rest`.
fn decode_revocation(kind: &[u8], name: &str, rest: &str) -> Option<Revocation> {
    let mut numbers = rest.split(' ').map(|n| n.parse::<u64>().ok());
    let r = match kind {
        b"j" => Revocation::Jti { jti: name.to_owned(), until_ms: numbers.next()?? },
        b"p" if is_valid_player_id(name) => Revocation::Player {
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
pub fn encode_presence(
    key: &ClusterKey,
    origin: &str,
    sent_us: u64,
    change: Change,
    channel: &str,
    player_id: &str,
) -> Bytes {
    let scope = match change {
        Change::Join => b'j',
        Change::Leave => b'l',
    };
    message(key, origin, scope, sent_us, &[channel.as_bytes(), player_id.as_bytes()], &[])
}

/// The origin node took `session_id` over (no newline in it: checked before).
pub fn encode_moved(key: &ClusterKey, origin: &str, sent_us: u64, session_id: &str) -> Bytes {
    message(key, origin, b'm', sent_us, &[b"-", session_id.as_bytes()], &[])
}

/// Every message: the origin node, its kind (`scope`), when it was sent,
/// `lines` (none holds a newline: each was checked before), then the last
/// part (free-form), from `last`'s pieces, then the MAC.
fn message(
    key: &ClusterKey,
    origin: &str,
    scope: u8,
    sent_us: u64,
    lines: &[&[u8]],
    last: &[&[u8]],
) -> Bytes {
    let size = lines.iter().chain(last).map(|l| l.len() + 1).sum::<usize>();
    let mut buf = start(32 + origin.len() + size);
    buf.put_slice(origin.as_bytes());
    buf.put_u8(b'\n');
    buf.put_u8(scope);
    buf.put_u8(b'\n');
    buf.put_slice(itoa::Buffer::new().format(sent_us).as_bytes());
    for l in lines {
        buf.put_u8(b'\n');
        buf.put_slice(l);
    }
    buf.put_u8(b'\n');
    for piece in last {
        buf.put_slice(piece);
    }
    seal(key, buf)
}

/// An SSE uplink post for node `to` (`identity` is compact JSON: no newline).
pub fn encode_uplink(
    key: &ClusterKey,
    origin: &str,
    sent_us: u64,
    (request, to): (u64, &str),
    session_id: &str,
    identity: &[u8],
    body: &[u8],
) -> Bytes {
    let id = itoa::Buffer::new().format(request).as_bytes().to_vec();
    message(key, origin, b'u', sent_us, &[&id, to.as_bytes(), session_id.as_bytes(), identity], &[body])
}

/// The answer to uplink post `request` of node `to`.
pub fn encode_uplink_answer(
    key: &ClusterKey,
    origin: &str,
    sent_us: u64,
    (request, to): (u64, &str),
    status: u16,
    body: &[u8],
) -> Bytes {
    let id = itoa::Buffer::new().format(request).as_bytes().to_vec();
    let status = itoa::Buffer::new().format(status).as_bytes().to_vec();
    message(key, origin, b'U', sent_us, &[&id, to.as_bytes(), &status], &[body])
}

pub fn encode(key: &ClusterKey, origin: &str, sent_us: u64, envelope: &Envelope) -> Bytes {
    let p = &envelope.publication;
    let scope = match (envelope.scope, envelope.keyed) {
        (Scope::Channel, false) => b'c',
        (Scope::Broadcast, false) => b'b',
        (Scope::Channel, true) => b'C',
        (Scope::Broadcast, true) => b'B',
    };
    message(key, origin, scope, sent_us, &[p.id.as_bytes(), p.channel.as_bytes()], &[b"{", p.tail()])
}

/// The longest message a node sends when frames are at most `max_bytes`.
pub fn max_len(max_bytes: usize) -> usize {
    max_bytes.saturating_add(HEADER_ROOM)
}

/// The longest `P<position>\n` Redis puts before a publication it placed.
const PLACED_ROOM: usize = 64;

/// Checks and decodes one message from the subscription: its size first
/// (before any work), then the position Redis put before a publication
/// (`P<epoch>.<offset>.<tag>\n`, see `redis::publisher`; not signed: Redis
/// assigns it), then its MAC, then every field as strictly as a client's.
/// `max_bytes` is `transport.max_message_bytes`.
pub fn decode(key: &ClusterKey, msg: Bytes, max_bytes: usize) -> Result<Received, Refused> {
    if msg.len() > max_len(max_bytes) + PLACED_ROOM {
        return Err(Refused::TooLarge);
    }
    if msg.first() != Some(&b'P') {
        return decode_at(key, msg, max_bytes, None);
    }
    let nl = msg.iter().take(PLACED_ROOM).position(|&b| b == b'\n').ok_or(Refused::Malformed)?;
    let position =
        std::str::from_utf8(&msg[1..nl]).ok().and_then(Position::parse).ok_or(Refused::Malformed)?;
    let received = decode_at(key, msg.slice(nl + 1..), max_bytes, Some(position))?;
    match received.payload {
        Payload::Publication(_) => Ok(received),
        _ => Err(Refused::Malformed),
    }
}

/// [`decode`] for a message without the position prefix: a history entry,
/// whose `position` comes from the stream.
pub fn decode_at(
    key: &ClusterKey,
    msg: Bytes,
    max_bytes: usize,
    position: Option<Position>,
) -> Result<Received, Refused> {
    if msg.len() > max_len(max_bytes) {
        return Err(Refused::TooLarge);
    }
    if msg.len() < HEAD
        || &msg[..VERSION.len()] != VERSION
        || msg[VERSION.len()] != b'\n'
        || msg[HEAD - 1] != b'\n'
    {
        return Err(Refused::Unsigned);
    }
    let mut mac = [0u8; 32];
    hex::decode_to_slice(&msg[VERSION.len() + 1..HEAD - 1], &mut mac).map_err(|_| Refused::Unsigned)?;
    key.0.clone().chain_update(&msg[HEAD..]).verify_slice(&mac).map_err(|_| Refused::Unsigned)?;
    parse(&msg, max_bytes, position).ok_or(Refused::Malformed)
}

/// The signed part of a verified message.
fn parse(msg: &Bytes, max_bytes: usize, position: Option<Position>) -> Option<Received> {
    let mut fields: [&[u8]; 5] = [&[]; 5];
    let mut rest: &[u8] = &msg[HEAD..];
    for f in &mut fields {
        let nl = rest.iter().position(|&b| b == b'\n')?;
        *f = &rest[..nl];
        rest = &rest[nl + 1..];
    }
    let [origin, scope, sent, id, channel] = fields;
    let sent_us = std::str::from_utf8(sent).ok()?.parse().ok()?;
    let origin = std::str::from_utf8(origin).ok().filter(|o| is_node_id(o))?.to_owned();
    let text = |b: &[u8]| std::str::from_utf8(b).ok().map(str::to_owned);
    let payload = match scope {
        b"d" => {
            let player = text(channel).filter(|p| is_valid_player_id(p))?;
            let reason = text(rest).filter(|r| r.is_empty() || protocol::is_valid_reason(r))?;
            Payload::Disconnect { player_id: player, reason: (!reason.is_empty()).then_some(reason) }
        }
        b"r" => Payload::Revoke(decode_revocation(
            id,
            std::str::from_utf8(channel).ok()?,
            std::str::from_utf8(rest).ok()?,
        )?),
        b"u" | b"U" => {
            let request = std::str::from_utf8(id).ok()?.parse().ok()?;
            let to = text(channel).filter(|n| is_node_id(n))?;
            let (first, rest) = split_line(rest)?;
            if scope == b"U" {
                let status =
                    std::str::from_utf8(first).ok()?.parse().ok().filter(|s| (100..600).contains(s))?;
                Payload::UplinkAnswer { request, to, status, body: msg.slice_ref(rest) }
            } else {
                let session_id = text(first).filter(|s| protocol::is_session_id(s))?;
                let (identity, body) = split_line(rest)?;
                let identity: Identity = serde_json::from_slice(identity).ok()?;
                if !is_valid_player_id(&identity.player_id) {
                    return None;
                }
                Payload::Uplink { request, to, session_id, identity, body: msg.slice_ref(body) }
            }
        }
        b"m" => {
            let session_id =
                text(channel).filter(|s| protocol::is_session_id(s) && id == b"-" && rest.is_empty())?;
            Payload::Moved { session_id }
        }
        b"j" | b"l" => {
            let change = if scope == b"j" { Change::Join } else { Change::Leave };
            let name = text(id).filter(|c| channels::namespace(c).is_ok())?;
            let player = text(channel).filter(|p| is_valid_player_id(p) && rest.is_empty())?;
            Payload::Presence { change, channel: name, player_id: player }
        }
        b"c" | b"b" | b"C" | b"B" => {
            let keyed = scope[0].is_ascii_uppercase();
            let scope = if scope.eq_ignore_ascii_case(b"c") { Scope::Channel } else { Scope::Broadcast };
            let id: Box<str> =
                std::str::from_utf8(id).ok().filter(|i| protocol::validate_publication_id(i).is_ok())?.into();
            let channel: Arc<str> = std::str::from_utf8(channel)
                .ok()
                .filter(|c| match scope {
                    Scope::Channel => channels::namespace(c).is_ok(),
                    Scope::Broadcast => *c == channels::BROADCAST_CHANNEL,
                })?
                .into();
            let mut publication =
                Publication::from_parts(id, channel, msg.slice_ref(rest), max_bytes).ok()?;
            if let Some(p) = position {
                publication = publication.with_position(p);
            }
            Payload::Publication(Envelope { scope, publication: Arc::new(publication), keyed })
        }
        _ => return None,
    };
    Some(Received { origin, sent_us, payload })
}

/// The bytes before the first newline, and those after it.
fn split_line(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let nl = b.iter().position(|&c| c == b'\n')?;
    Some((&b[..nl], &b[nl + 1..]))
}

/// Node ids as [`protocol::random_id`] makes them.
fn is_node_id(id: &str) -> bool {
    id.len() <= 64 && id.starts_with("n_") && id[2..].bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use bytes::BytesMut;
    use serde_json::value::RawValue;

    use super::*;

    const MAX: usize = 65536;

    fn key() -> ClusterKey {
        ClusterKey::new(b"0123456789abcdef0123456789abcdef")
    }

    fn decode(msg: Bytes) -> Result<Received, Refused> {
        super::decode(&key(), msg, MAX)
    }

    #[test]
    fn round_trips_without_reencoding() {
        let data = RawValue::from_string(r#"{"text":"line\nbreak"}"#.into()).unwrap();
        let p = Arc::new(Publication::new("m_1".into(), Arc::from("room:a"), "chat", &data));
        let env = Envelope { scope: Scope::Channel, publication: Arc::clone(&p), keyed: false };
        let msg = encode(&key(), "n_abc1", 42, &env);
        let r = decode(msg).unwrap();
        assert_eq!((r.origin.as_str(), r.sent_us), ("n_abc1", 42));
        let Payload::Publication(got) = r.payload else { panic!("a publication") };
        assert_eq!(got.scope, Scope::Channel);
        assert_eq!(&*got.publication.id, "m_1");
        assert_eq!(&*got.publication.channel, "room:a");
        let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
        p.encode_json(7, &mut a);
        got.publication.encode_json(7, &mut b);
        assert_eq!(a, b);

        let b = Arc::new(Publication::new("m_2".into(), Arc::from("broadcast"), "news", &data));
        let env = Envelope { scope: Scope::Broadcast, publication: b, keyed: true };
        let Payload::Publication(got) = decode(encode(&key(), "n_1", 1, &env)).unwrap().payload else {
            panic!()
        };
        assert_eq!((got.scope, got.keyed), (Scope::Broadcast, true));

        let d = decode(encode_disconnect(&key(), "n_x1", 5, "alice", None)).unwrap();
        assert!(matches!(d.payload, Payload::Disconnect { player_id, reason: None } if player_id == "alice"));
        let d = decode(encode_disconnect(&key(), "n_x1", 5, "alice", Some("banned"))).unwrap();
        assert!(matches!(d.payload, Payload::Disconnect { reason: Some(r), .. } if r == "banned"));

        for r in [
            Revocation::Jti { jti: "t-1".into(), until_ms: 99 },
            Revocation::Player { player_id: "bob".into(), issued_before_ms: 5, until_ms: 77 },
        ] {
            let got = decode(encode_revocation(&key(), "n_x1", 5, &r)).unwrap();
            assert!(matches!(got.payload, Payload::Revoke(ref g) if *g == r), "{r:?}");
        }
        assert!(decode_revocation(b"j", "x", "1 2").is_none());
        assert!(decode_revocation(b"p", "x", "1").is_none());
        assert!(decode_revocation(b"j", "", "1").is_none());
        assert!(decode_revocation(b"q", "x", "1").is_none());

        let j = decode(encode_presence(&key(), "n_x1", 6, Change::Join, "room:a", "bob")).unwrap();
        assert!(matches!(j.payload, Payload::Presence { change: Change::Join, channel, player_id }
            if channel == "room:a" && player_id == "bob"));
        let l = decode(encode_presence(&key(), "n_x1", 6, Change::Leave, "room:a", "bob")).unwrap();
        assert!(matches!(l.payload, Payload::Presence { change: Change::Leave, .. }));
    }

    /// What Redis hands out for a publication it placed in its history.
    fn placed(position: &str, msg: &Bytes) -> Bytes {
        let mut out = BytesMut::from(format!("P{position}\n").as_bytes());
        out.put_slice(msg);
        out.freeze()
    }

    #[test]
    fn a_placed_publication_carries_its_position_and_nothing_else_may() {
        let data = RawValue::from_string("1".into()).unwrap();
        let p = Arc::new(Publication::new("m_1".into(), Arc::from("room:a"), "e", &data));
        let msg = encode(&key(), "n_1", 1, &Envelope { scope: Scope::Channel, publication: p, keyed: false });
        let Payload::Publication(got) = decode(placed("17.3.99", &msg)).unwrap().payload else { panic!() };
        assert_eq!(got.publication.position(), Some(Position { epoch: 17, offset: 3, tag: 99 }));
        let mut frame = BytesMut::new();
        got.publication.encode_json(5, &mut frame);
        assert!(
            frame.starts_with(b"{\"type\":\"message\",\"seq\":5,\"pos\":\"17.3.99\",\"id\""),
            "{frame:?}"
        );

        for bad in ["17.3", "x.3.99", "17.3.99.1"] {
            assert_eq!(decode(placed(bad, &msg)).err(), Some(Refused::Malformed), "{bad:?}");
        }
        let no_newline = Bytes::from(format!("P{}", "1".repeat(100)));
        assert_eq!(decode(no_newline).err(), Some(Refused::Malformed));
        let disconnect = encode_disconnect(&key(), "n_1", 1, "alice", None);
        assert_eq!(decode(placed("1.1.1", &disconnect)).err(), Some(Refused::Malformed), "only publications");
        assert_eq!(decode(placed("1.1.1", &Bytes::from_static(b"forged"))).err(), Some(Refused::Unsigned));

        let who = Identity {
            player_id: "kai".into(),
            channels: Some(vec!["room".into()]),
            publish: None,
            dev_mode: false,
        };
        let identity = serde_json::to_vec(&who).unwrap();
        let body = b"{\"type\":\"ping\",\n\"id\":1}";
        let up = decode(encode_uplink(&key(), "n_1", 1, (9, "n_2"), "s_ab", &identity, body)).unwrap();
        assert!(
            matches!(up.payload, Payload::Uplink { request: 9, ref to, ref session_id, ref identity, ref body }
            if to == "n_2" && session_id == "s_ab" && *identity == who && &body[..] == b"{\"type\":\"ping\",\n\"id\":1}")
        );
        let ans = decode(encode_uplink_answer(&key(), "n_2", 1, (9, "n_1"), 403, b"{}")).unwrap();
        assert!(matches!(ans.payload, Payload::UplinkAnswer { request: 9, ref to, status: 403, ref body }
            if to == "n_1" && &body[..] == b"{}"));
        let bad =
            encode_uplink(&key(), "n_1", 1, (9, "n_2"), "s_ab", b"{\"player_id\":\"no spaces\"}", b"{}");
        assert_eq!(decode(bad).err(), Some(Refused::Malformed), "an identity is checked like a token's");

        let moved = decode(encode_moved(&key(), "n_1", 1, "s_ab-0123")).unwrap();
        assert!(matches!(moved.payload, Payload::Moved { session_id } if session_id == "s_ab-0123"));
        let bad_id = signed(&key(), "n_1\nm\n1\n-\nS_NOT\n");
        assert_eq!(decode(bad_id).err(), Some(Refused::Malformed));
    }

    /// Signs `body` (what follows the MAC line) with `k`.
    fn signed(k: &ClusterKey, body: &str) -> Bytes {
        let mut buf = start(body.len());
        buf.put_slice(body.as_bytes());
        seal(k, buf)
    }

    #[test]
    fn refuses_what_a_node_did_not_write() {
        // Not signed, or signed with another key.
        for bad in ["", "hello", "T1\nn_1\nc\n1\nm\nroom:a\n\"a\":1}"] {
            assert_eq!(decode(Bytes::from(bad)).err(), Some(Refused::Unsigned), "{bad:?}");
        }
        let other = ClusterKey::new(b"another key, another cluster.....");
        let forged = encode_disconnect(&other, "n_1", 1, "alice", None);
        assert_eq!(decode(forged).err(), Some(Refused::Unsigned));
        let mut tampered = BytesMut::from(&encode_disconnect(&key(), "n_1", 1, "alice", None)[..]);
        let last = tampered.len() - 1;
        tampered[last] = b'b';
        assert_eq!(decode(tampered.freeze()).err(), Some(Refused::Unsigned));

        // Too large: refused before the MAC is even computed.
        let huge = signed(
            &key(),
            &format!("n_1\nc\n1\nm_1\nroom:a\n{{\"data\":\"{}\"}}", "x".repeat(max_len(MAX) + 100)),
        );
        assert_eq!(decode(huge).err(), Some(Refused::TooLarge));

        // Signed, yet not what a node writes: each field is checked.
        let tail = |id: &str, ch: &str, ev: &str| {
            format!("{{\"id\":\"{id}\",\"channel\":\"{ch}\",\"event\":\"{ev}\",\"data\":1,\"ts\":5}}")
        };
        for body in [
            format!("n_1\nc\n1\nm_1\nroom:a\n{}", tail("m_1", "room:a", "chat")),
            format!("n_1\nc\n1\nm_1\nplayer:bob\n{}", tail("m_1", "player:bob", "dm")),
            format!("n_1\nb\n1\nm_1\nbroadcast\n{}", tail("m_1", "broadcast", "news")),
        ] {
            assert!(decode(signed(&key(), &body)).is_ok(), "{body:?}");
        }
        for body in [
            format!("node 1\nc\n1\nm_1\nroom:a\n{}", tail("m_1", "room:a", "chat")),
            format!("n_1\nc\nNaN\nm_1\nroom:a\n{}", tail("m_1", "room:a", "chat")),
            format!("n_1\nx\n1\nm_1\nroom:a\n{}", tail("m_1", "room:a", "chat")),
            format!("n_1\nc\n1\nm_1\nroom:a\n{}", tail("m_2", "room:a", "chat")),
            format!("n_1\nc\n1\nm_1\nroom:a\n{}", tail("m_1", "room:b", "chat")),
            format!("n_1\nc\n1\nm_1\nroom:a\n{}", tail("m_1", "room:a", "")),
            format!("n_1\nc\n1\nm_1\nbad channel\n{}", tail("m_1", "bad channel", "chat")),
            format!("n_1\nb\n1\nm_1\nroom:a\n{}", tail("m_1", "room:a", "chat")),
            format!("n_1\nc\n1\nm_1\nbroadcast\n{}", tail("m_1", "broadcast", "chat")),
            "n_1\nc\n1\nm_1\nroom:a\n{\"id\":\"m_1\"}".to_owned(),
            "n_1\nc\n1\nm_1\nroom:a\n{\"id\":\"m_1\",\"channel\":\"room:a\",\"event\":\"e\",\"data\":1,\"ts\":5}\n\nevent: forged".to_owned(),
            format!("n_1\nc\n1\nm_1\nroom:a\n{},\"x\":1}}", &tail("m_1", "room:a", "chat")[..tail("m_1", "room:a", "chat").len() - 1]),
            "n_1\nd\n1\n-\n\n".to_owned(),
            "n_1\nd\n1\n-\nbad player!\n".to_owned(),
            format!("n_1\nd\n1\n-\nalice\n{}", "r".repeat(200)),
            "n_1\nj\n1\n\nalice\n".to_owned(),
            "n_1\nj\n1\nroom:a\nalice\nextra".to_owned(),
        ] {
            assert_eq!(decode(signed(&key(), &body)).err(), Some(Refused::Malformed), "{body:?}");
        }
        let bad_utf8 = {
            let mut buf = start(64);
            buf.put_slice(b"n_1\nd\n1\n-\nalice\n\xff\xfe");
            seal(&key(), buf)
        };
        assert_eq!(decode(bad_utf8).err(), Some(Refused::Malformed));
    }
}
