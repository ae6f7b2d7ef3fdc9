//! HS256 client tokens, minted the way a game backend would, plus broken
//! ones (forged, expired) to exercise the server's refusals.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value, json};

/// A secret of the length the server requires (32+ bytes).
pub const TEST_SECRET: &str = "tandem-test-secret-0123456789-abcdefghij";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Signs `claims` with `secret`.
///
/// # Panics
/// When signing fails, which only a broken crypto setup causes.
pub fn sign(secret: &str, claims: &Value) -> String {
    encode(&Header::default(), claims, &EncodingKey::from_secret(secret.as_bytes()))
        .expect("HS256 signing works")
}

/// A token for `player` valid for an hour.
pub fn valid(secret: &str, player: &str) -> String {
    sign(secret, &json!({"sub": player, "iat": now(), "exp": now() + 3600}))
}

/// A token for `player` that expired an hour ago (well past any leeway).
pub fn expired(secret: &str, player: &str) -> String {
    sign(secret, &json!({"sub": player, "iat": now() - 7200, "exp": now() - 3600}))
}

/// A well-formed token signed with the wrong secret.
pub fn forged(player: &str) -> String {
    valid("not-the-server-secret-but-long-enough-0123", player)
}
