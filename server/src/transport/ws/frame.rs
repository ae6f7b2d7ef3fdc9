//! WebSocket frame headers Tandem reads and writes itself (RFC 6455 §5.2);
//! everything else is actix-http's `ws` codec and parser.

use bytes::{BufMut, BytesMut};

pub const OPCODE_CONTINUATION: u8 = 0x0;
const FIN_TEXT: u8 = 0x81;

/// Opcode and payload length a frame header announces, once the length
/// bytes are buffered: lets a too-large frame be refused before its payload
/// arrives (actix's decoder waits for all of it).
pub fn header(buf: &[u8]) -> Option<(u8, u64)> {
    let opcode = buf.first()? & 0x0F;
    let len = match buf.get(1)? & 0x7F {
        126 => u64::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?])),
        127 => u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?),
        n => u64::from(n),
    };
    Some((opcode, len))
}

/// Header of an unmasked, final text frame of `len` bytes, with room
/// reserved for the payload: a delivery is encoded straight after it.
pub fn put_text_header(dst: &mut BytesMut, len: usize) {
    dst.reserve(len + 10);
    if len < 126 {
        dst.put_slice(&[FIN_TEXT, len as u8]);
    } else if let Ok(short) = u16::try_from(len) {
        dst.put_slice(&[FIN_TEXT, 126]);
        dst.put_u16(short);
    } else {
        dst.put_slice(&[FIN_TEXT, 127]);
        dst.put_u64(len as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announced_lengths_are_read_from_every_header_form() {
        assert_eq!(header(&[0x81]), None);
        assert_eq!(header(&[0x81, 0x85]), Some((1, 5)));
        assert_eq!(header(&[0x00, 0xFE, 0x01]), None, "16-bit length not buffered yet");
        assert_eq!(header(&[0x00, 0xFE, 0x01, 0x00]), Some((0, 256)));
        let mut huge = vec![0x82, 0xFF];
        huge.extend_from_slice(&(1u64 << 40).to_be_bytes());
        assert_eq!(header(&huge), Some((2, 1 << 40)));
    }

    #[test]
    fn text_headers_use_the_shortest_length_form() {
        for (len, head) in [(5usize, 2usize), (125, 2), (126, 4), (65_535, 4), (65_536, 10)] {
            let mut b = BytesMut::new();
            put_text_header(&mut b, len);
            assert_eq!(b.len(), head, "len {len}");
            assert_eq!(b[0], 0x81, "FIN + text");
        }
    }
}
