//! TLS for the client listener (and, with `server.tls.admin`, the admin
//! one): the certificate pair read from its PEM files, a rustls resolver
//! that hands out the current pair, and the watch that swaps in a changed
//! pair without restarting the listener.
//!
//! A handshake asks [`CertStore`] for the pair of the moment: a reload only
//! replaces the `Arc` it holds, so connections already open keep the pair
//! they were made with and new ones get the new pair. A pair that does not
//! load (unreadable file, no certificate, no key, a key that does not fit
//! the certificate) is refused: at start-up that stops Tandem with the key
//! named; at a reload it is logged and counted and the last good pair keeps
//! serving.
//!
//! The decision when to reload ([`ReloadWatch`]) is plain code over file
//! stamps; [`watch`] is the tokio glue that reads them.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::RwLock;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, version};

use crate::config::TlsConfig;
use crate::telemetry::{self as ev, Telemetry};

/// Largest certificate or key file read: a chain of a few certificates is a
/// few KiB; anything past this is not a PEM pair.
pub const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// The config keys errors name.
const CERT_KEY: &str = "server.tls.cert_file";
const KEY_KEY: &str = "server.tls.key_file";

/// Why a certificate pair could not be loaded. [`TlsError::key`] names the
/// config key at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        key: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is larger than {MAX_PEM_BYTES} bytes", path.display())]
    TooLarge { key: &'static str, path: PathBuf },
    #[error("{} holds no PEM certificate", path.display())]
    NoCertificate { key: &'static str, path: PathBuf },
    #[error("{} is not valid PEM: {message}", path.display())]
    BadPem { key: &'static str, path: PathBuf, message: String },
    #[error("{} holds no PEM private key", path.display())]
    NoKey { key: &'static str, path: PathBuf },
    #[error("{} does not fit the certificate in {}: {source}", key_path.display(), cert_path.display())]
    Mismatch { key_path: PathBuf, cert_path: PathBuf, source: rustls::Error },
    #[error("TLS set-up: {0}")]
    Setup(rustls::Error),
}

impl TlsError {
    /// The config key whose file is at fault.
    pub fn key(&self) -> &'static str {
        match self {
            TlsError::Read { key, .. }
            | TlsError::TooLarge { key, .. }
            | TlsError::NoCertificate { key, .. }
            | TlsError::BadPem { key, .. }
            | TlsError::NoKey { key, .. } => key,
            TlsError::Mismatch { .. } => KEY_KEY,
            TlsError::Setup(_) => CERT_KEY,
        }
    }
}

/// The crypto Tandem's TLS uses (ring), named once so no process-wide
/// default is needed.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads at most [`MAX_PEM_BYTES`] of `path`; the limit is enforced before
/// the bytes are kept.
fn read_bounded(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let read_err = |source| TlsError::Read { key, path: path.to_owned(), source };
    let file = File::open(path).map_err(read_err)?;
    let mut buf = Vec::new();
    file.take(MAX_PEM_BYTES + 1).read_to_end(&mut buf).map_err(read_err)?;
    if buf.len() as u64 > MAX_PEM_BYTES {
        return Err(TlsError::TooLarge { key, path: path.to_owned() });
    }
    Ok(buf)
}

/// The pair in two PEM texts: every certificate of the chain, the first
/// private key, checked to belong together. No I/O; the paths only name
/// the files in errors.
pub fn parse_pair(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem).collect::<Result<Vec<_>, _>>().map_err(|e| {
        TlsError::BadPem { key: CERT_KEY, path: cert_path.to_owned(), message: e.to_string() }
    })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate { key: CERT_KEY, path: cert_path.to_owned() });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            TlsError::NoKey { key: KEY_KEY, path: key_path.to_owned() }
        }
        e => TlsError::BadPem { key: KEY_KEY, path: key_path.to_owned(), message: e.to_string() },
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|source| TlsError::Mismatch {
        key_path: key_path.to_owned(),
        cert_path: cert_path.to_owned(),
        source,
    })
}

/// Reads and checks the pair named by `[server.tls]`.
pub fn load_pair(config: &TlsConfig, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let (cert_path, key_path) = paths(config);
    let cert = read_bounded(CERT_KEY, &cert_path)?;
    let key = read_bounded(KEY_KEY, &key_path)?;
    parse_pair(&cert, &key, &cert_path, &key_path, provider)
}

fn paths(config: &TlsConfig) -> (PathBuf, PathBuf) {
    (PathBuf::from(config.cert_file.trim()), PathBuf::from(config.key_file.trim()))
}

/// The pair new handshakes get; swapped whole by a reload.
#[derive(Debug)]
pub struct CertStore {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    pub fn new(pair: CertifiedKey) -> Self {
        Self { current: RwLock::new(Arc::new(pair)) }
    }

    /// New connections get `pair` from now on.
    pub fn replace(&self, pair: CertifiedKey) {
        *self.current.write() = Arc::new(pair);
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.current.read())
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// TLS 1.3 and 1.2 with the certificate from `store`, no client
/// certificates. ALPN is left to actix-http, which offers `http/1.1`.
pub fn server_config(store: Arc<CertStore>, provider: Arc<CryptoProvider>) -> Result<ServerConfig, TlsError> {
    Ok(ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&version::TLS13, &version::TLS12])
        .map_err(TlsError::Setup)?
        .with_no_client_auth()
        .with_cert_resolver(store))
}

/// What identifies one version of a file: a replaced or rewritten file
/// changes at least one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub modified: Option<SystemTime>,
    pub len: u64,
    pub inode: u64,
}

/// The stamps of the certificate and key files; `None` = not readable.
pub type Stamps = [Option<Stamp>; 2];

/// When to reload: a change is acted on once the files have stayed the same
/// for one whole check, so a pair written file by file is not caught half
/// written. Each settled change is tried once: a refused pair is not
/// retried (nor logged again) until the files change again.
#[derive(Debug)]
pub struct ReloadWatch {
    /// The stamps last tried (at start-up, those of the pair loaded).
    tried: Stamps,
    /// Changed stamps seen at the last check, waiting to settle.
    candidate: Option<Stamps>,
}

impl ReloadWatch {
    pub fn new(loaded: Stamps) -> Self {
        Self { tried: loaded, candidate: None }
    }

    /// One check's stamps; `true` = load the pair now.
    pub fn observe(&mut self, seen: Stamps) -> bool {
        if seen == self.tried {
            self.candidate = None;
            return false;
        }
        if self.candidate == Some(seen) {
            self.tried = seen;
            self.candidate = None;
            return true;
        }
        self.candidate = Some(seen);
        false
    }
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp { modified: meta.modified().ok(), len: meta.len(), inode: meta.ino() })
}

/// The stamps of the pair's files now.
pub fn stamps(config: &TlsConfig) -> Stamps {
    let (cert, key) = paths(config);
    [stamp(&cert), stamp(&key)]
}

/// Checks the files every `server.tls.reload_interval_seconds` and swaps a
/// changed, valid pair into `store`. File reads run on the blocking pool,
/// so a slow disk never holds a worker. Runs until dropped; returns (to be
/// restarted by its supervisor) only if a read panicked.
pub async fn watch(config: TlsConfig, store: Arc<CertStore>, initial: Stamps, telemetry: Telemetry) {
    let provider = provider();
    let mut decision = ReloadWatch::new(initial);
    let mut interval = tokio::time::interval(config.reload_interval().max(Duration::from_secs(1)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        interval.tick().await;
        let c = config.clone();
        let Ok(seen) = tokio::task::spawn_blocking(move || stamps(&c)).await else { return };
        if !decision.observe(seen) {
            continue;
        }
        let c = config.clone();
        let p = Arc::clone(&provider);
        let Ok(loaded) = tokio::task::spawn_blocking(move || load_pair(&c, &p)).await else { return };
        match loaded {
            Ok(pair) => {
                store.replace(pair);
                ev::tls_reloaded(config.cert_file.trim());
            }
            Err(e) => ev::tls_reload_failed(&telemetry, e.key(), &e.to_string()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn stamp(len: u64) -> Option<Stamp> {
        Some(Stamp { modified: Some(SystemTime::UNIX_EPOCH), len, inode: 1 })
    }

    #[test]
    fn unchanged_files_are_not_reloaded() {
        let mut w = ReloadWatch::new([stamp(1), stamp(2)]);
        for _ in 0..3 {
            assert!(!w.observe([stamp(1), stamp(2)]));
        }
    }

    #[test]
    fn a_change_is_loaded_once_it_has_settled() {
        let mut w = ReloadWatch::new([stamp(1), stamp(2)]);
        assert!(!w.observe([stamp(3), stamp(2)]), "the certificate alone changed: wait");
        assert!(!w.observe([stamp(3), stamp(4)]), "then the key: wait again");
        assert!(w.observe([stamp(3), stamp(4)]), "settled: load");
        assert!(!w.observe([stamp(3), stamp(4)]), "loaded: nothing more to do");
    }

    #[test]
    fn a_refused_pair_is_not_retried_until_the_files_change() {
        let mut w = ReloadWatch::new([stamp(1), stamp(2)]);
        assert!(!w.observe([None, stamp(2)]));
        assert!(w.observe([None, stamp(2)]), "tried once (and refused by the loader)");
        assert!(!w.observe([None, stamp(2)]));
        assert!(!w.observe([stamp(5), stamp(2)]));
        assert!(w.observe([stamp(5), stamp(2)]), "a new change is tried");
    }

    #[test]
    fn going_back_to_the_loaded_files_cancels_a_pending_change() {
        let mut w = ReloadWatch::new([stamp(1), stamp(2)]);
        assert!(!w.observe([stamp(3), stamp(2)]));
        assert!(!w.observe([stamp(1), stamp(2)]));
        assert!(!w.observe([stamp(1), stamp(2)]));
    }

    fn pem_pair() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert =
            rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap().self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn parse(cert: &str, key: &str) -> Result<CertifiedKey, TlsError> {
        parse_pair(cert.as_bytes(), key.as_bytes(), Path::new("c.pem"), Path::new("k.pem"), &provider())
    }

    #[test]
    fn a_matching_pair_parses() {
        let (cert, key) = pem_pair();
        assert_eq!(parse(&cert, &key).unwrap().cert.len(), 1);
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_naming_the_key_file() {
        let (cert, _) = pem_pair();
        let (_, other_key) = pem_pair();
        let err = parse(&cert, &other_key).err().unwrap();
        assert!(matches!(err, TlsError::Mismatch { .. }), "{err}");
        assert_eq!(err.key(), "server.tls.key_file");
    }

    #[test]
    fn missing_pieces_name_their_key() {
        let (cert, key) = pem_pair();
        let err = parse("", &key).err().unwrap();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
        assert_eq!(err.key(), "server.tls.cert_file");
        let err = parse(&cert, &cert).err().unwrap();
        assert!(matches!(err, TlsError::NoKey { .. }), "{err}");
        assert_eq!(err.key(), "server.tls.key_file");
    }

    #[test]
    fn files_past_the_limit_are_refused_before_being_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.pem");
        std::fs::write(&path, vec![b'a'; MAX_PEM_BYTES as usize + 10]).unwrap();
        let err = read_bounded("server.tls.cert_file", &path).err().unwrap();
        assert!(matches!(err, TlsError::TooLarge { .. }), "{err}");
        let err = read_bounded("server.tls.cert_file", &dir.path().join("none.pem")).err().unwrap();
        assert!(matches!(err, TlsError::Read { .. }), "{err}");
    }

    #[test]
    fn the_store_hands_out_the_latest_pair() {
        let (cert, key) = pem_pair();
        let store = CertStore::new(parse(&cert, &key).unwrap());
        let first = store.current();
        let (cert2, key2) = pem_pair();
        store.replace(parse(&cert2, &key2).unwrap());
        assert_ne!(first.cert, store.current().cert);
    }
}
