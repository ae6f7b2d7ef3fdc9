//! Client commands (`subscribe`, `unsubscribe`, `publish`, `ping`), shared
//! by WebSocket frames and SSE clients' `POST /sessions/{id}/messages`.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use crate::manager::{ConnectionManager, Session};
use crate::session::channels;
use crate::session::identity::Identity;
use crate::session::protocol::{self, ClientMessage, ProtocolError, Reply};

/// A reply frame: its `type` and its JSON text.
pub type ReplyFrame = (&'static str, Bytes);

/// Runs one client message for `session` on behalf of `who`.
pub fn handle(
    manager: &ConnectionManager,
    session: &Arc<Session>,
    who: &Identity,
    msg: ClientMessage,
) -> Result<ReplyFrame, ProtocolError> {
    manager.touch();
    match msg {
        ClientMessage::Subscribe { channel } => {
            manager.subscribe(session, who, &channel)?;
            Ok(("subscribed", protocol::to_json(&Reply::Subscribed { channel: &channel })))
        }
        ClientMessage::Unsubscribe { channel } => {
            manager.unsubscribe(session, &channel)?;
            Ok(("unsubscribed", protocol::to_json(&Reply::Unsubscribed { channel: &channel })))
        }
        ClientMessage::Publish { channel, event, data } => {
            channels::check_publish(who, &channel, &manager.limits().client_publish)?;
            // Not awaited: the broker's publisher logs and counts a
            // publication it could not carry.
            let out = manager.publish(&channel, &event, &data, "client")?.fanout;
            Ok((
                "published",
                protocol::to_json(&Reply::Published { id: &out.id, recipients: out.recipients }),
            ))
        }
        ClientMessage::Ping { id } => Ok((
            "pong",
            protocol::to_json(&Reply::Pong { id: &id, ts: protocol::epoch_ms(SystemTime::now()) }),
        )),
    }
}
