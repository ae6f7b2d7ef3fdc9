//! What a WebSocket link decides about what its client sends, as plain code
//! with no I/O and no clock (tested like `session::state`): how large the
//! next frame may be, how fragments reassemble, and what a complete message
//! is. [`super::link`] owns the socket and the fragment timer and acts on
//! these answers.

use actix_http::ws::Item;
use bytes::{Bytes, BytesMut};

use super::frame::OPCODE_CONTINUATION;
use crate::session::connection::CloseReason;

/// A text message being reassembled from fragments, against the message
/// size limit (`transport.max_message_bytes`).
#[derive(Debug)]
pub(super) struct Inbound {
    max_message_bytes: usize,
    /// The fragmented text message in progress, if any.
    fragments: Option<BytesMut>,
}

/// What one continuation frame did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// A fragmented text message started: arm its timeout.
    Started,
    /// More is to come.
    Pending,
    /// A complete text message.
    Text(Bytes),
    /// A (fragmented) binary message: not supported, answered with an error.
    Binary,
    /// The link must close for what the client sent.
    Close(CloseReason),
}

impl Inbound {
    pub(super) fn new(max_message_bytes: usize) -> Self {
        Self { max_message_bytes, fragments: None }
    }

    /// Whether a frame whose header announces `len` bytes with `opcode` may
    /// be read at all: refused before its payload arrives when over what the
    /// message may still take (the rest of the budget while fragmented).
    pub(super) fn check_header(&self, opcode: u8, len: u64) -> Result<(), CloseReason> {
        let limit = match (&self.fragments, opcode) {
            (Some(buf), OPCODE_CONTINUATION) => self.max_message_bytes.saturating_sub(buf.len()),
            _ => self.max_message_bytes,
        };
        if len > limit as u64 { Err(CloseReason::TooLarge) } else { Ok(()) }
    }

    /// One continuation frame (`FirstText`, `FirstBinary`, `Continue`, `Last`).
    pub(super) fn continuation(&mut self, item: Item) -> Step {
        match item {
            Item::FirstText(b) => {
                self.fragments = Some(BytesMut::from(&b[..]));
                Step::Started
            }
            Item::FirstBinary(_) => {
                self.fragments = None;
                Step::Binary
            }
            Item::Continue(b) => self.append(&b, false),
            Item::Last(b) => self.append(&b, true),
        }
    }

    fn append(&mut self, b: &[u8], last: bool) -> Step {
        let Some(buf) = self.fragments.as_mut() else { return Step::Binary };
        if buf.len() + b.len() > self.max_message_bytes {
            self.fragments = None;
            return Step::Close(CloseReason::TooLarge);
        }
        buf.extend_from_slice(b);
        if !last {
            return Step::Pending;
        }
        Step::Text(self.fragments.take().map(BytesMut::freeze).unwrap_or_default())
    }

    /// A fragmented message outlived its timeout, or the link stopped
    /// reading: drop what was gathered.
    pub(super) fn abandon(&mut self) {
        self.fragments = None;
    }

    /// A complete text message must be UTF-8 (RFC 6455 §8.1: else close 1007).
    pub(super) fn check_text(text: &[u8]) -> Result<(), CloseReason> {
        std::str::from_utf8(text).map(drop).map_err(|_| CloseReason::InvalidPayload)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use actix_http::ws::Item;
    use bytes::Bytes;

    use super::*;

    const TEXT: u8 = 0x1;

    fn part(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn a_header_over_the_limit_is_refused_before_its_payload() {
        let inbound = Inbound::new(100);
        assert_eq!(inbound.check_header(TEXT, 100), Ok(()));
        assert_eq!(inbound.check_header(TEXT, 101), Err(CloseReason::TooLarge));
        assert_eq!(inbound.check_header(TEXT, 1 << 40), Err(CloseReason::TooLarge));
    }

    #[test]
    fn fragments_reassemble_and_count_against_one_budget() {
        let mut inbound = Inbound::new(10);
        assert_eq!(inbound.continuation(Item::FirstText(part("abcd"))), Step::Started);
        assert_eq!(inbound.check_header(OPCODE_CONTINUATION, 6), Ok(()));
        assert_eq!(inbound.check_header(OPCODE_CONTINUATION, 7), Err(CloseReason::TooLarge));
        assert_eq!(inbound.check_header(TEXT, 10), Ok(()), "a control frame has its own budget");
        assert_eq!(inbound.continuation(Item::Continue(part("ef"))), Step::Pending);
        assert_eq!(inbound.continuation(Item::Last(part("gh"))), Step::Text(part("abcdefgh")));
        assert_eq!(inbound.check_header(OPCODE_CONTINUATION, 10), Ok(()), "the budget is back");
    }

    #[test]
    fn fragments_past_the_limit_close_with_too_large() {
        let mut inbound = Inbound::new(5);
        assert_eq!(inbound.continuation(Item::FirstText(part("abc"))), Step::Started);
        assert_eq!(inbound.continuation(Item::Continue(part("def"))), Step::Close(CloseReason::TooLarge));
        assert_eq!(inbound.continuation(Item::Last(part("g"))), Step::Binary, "nothing left to continue");
    }

    #[test]
    fn binary_and_orphan_continuations_are_binary_and_abandon_drops() {
        let mut inbound = Inbound::new(10);
        assert_eq!(inbound.continuation(Item::FirstBinary(part("ab"))), Step::Binary);
        assert_eq!(inbound.continuation(Item::Last(part("c"))), Step::Binary);
        assert_eq!(inbound.continuation(Item::FirstText(part("ab"))), Step::Started);
        inbound.abandon();
        assert_eq!(inbound.continuation(Item::Last(part("c"))), Step::Binary);
    }

    #[test]
    fn text_must_be_utf8() {
        assert_eq!(Inbound::check_text(b"{\"type\":\"ping\"}"), Ok(()));
        assert_eq!(Inbound::check_text(&[0xff, 0xfe]), Err(CloseReason::InvalidPayload));
    }
}
