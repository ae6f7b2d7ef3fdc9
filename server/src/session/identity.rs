//! Who a verified client is: plain data that authentication produces and
//! channel permissions read. Its own module so that `channels` does not
//! depend on `auth` (which depends on `config`, which reads `channels`).

/// What a verified client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub player_id: String,
    /// The token's `channels` claim.
    pub channels: Option<Vec<String>>,
    /// The token's `publish` claim.
    pub publish: Option<Vec<String>>,
    /// Identified by `?player_id=` in development mode, not by a token.
    pub dev_mode: bool,
}
