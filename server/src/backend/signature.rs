//! `X-Tandem-Signature`: an HMAC-SHA256 of the request body keyed by
//! `backend.secret`, so a backend can tell Tandem's requests from anyone
//! else's. [`verify`] is what a Rust backend (and the tests) check with.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header every signed request carries.
pub const HEADER: &str = "X-Tandem-Signature";

/// `sha256=<lower-case hex HMAC-SHA256 of body>`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    format!("sha256={}", hex::encode(mac(secret, body).finalize().into_bytes()))
}

/// Whether `header` is the signature of `body` under `secret`, compared in
/// constant time.
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.strip_prefix("sha256=") else { return false };
    let Ok(sig) = hex::decode(hex_sig) else { return false };
    mac(secret, body).verify_slice(&sig).is_ok()
}

fn mac(secret: &[u8], body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_known_vector() {
        // RFC 4231, test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn verifies_only_the_right_body_and_key() {
        let sig = sign(b"k", b"{\"a\":1}");
        assert!(verify(b"k", b"{\"a\":1}", &sig));
        assert!(!verify(b"k", b"{\"a\":2}", &sig));
        assert!(!verify(b"other", b"{\"a\":1}", &sig));
        assert!(!verify(b"k", b"{\"a\":1}", "sha256=zz"));
        assert!(!verify(b"k", b"{\"a\":1}", &sig[7..]));
    }
}
