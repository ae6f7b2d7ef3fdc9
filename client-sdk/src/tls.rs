//! Whom an `https://` server (and its `wss://` upgrades) is trusted by:
//! the system's certificate authorities, plus any the application adds —
//! a private CA, or a test one.
//!
//! ```no_run
//! # use tandem_client::{ClientOptions, TlsTrust};
//! # fn run(ca_pem: &[u8]) -> Result<(), tandem_client::ClientError> {
//! let trust = TlsTrust::system().with_pem(ca_pem)?;
//! let options = ClientOptions::new("https://game.example").tls(trust);
//! # Ok(()) }
//! ```
//!
//! Plain `http://` connects never read it.

use std::sync::{Arc, OnceLock};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

use crate::error::ClientError;

/// The certificate authorities the client trusts: the system's (read once
/// per process) and the ones added with [`TlsTrust::with_pem`] or
/// [`TlsTrust::with_der`]. Cloning shares the built configuration.
#[derive(Clone, Default)]
pub struct TlsTrust {
    extra: Vec<CertificateDer<'static>>,
    /// Leave out the system's authorities (a test that must trust only its CA).
    no_system: bool,
    built: Arc<OnceLock<Arc<ClientConfig>>>,
}

impl std::fmt::Debug for TlsTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTrust")
            .field("extra_roots", &self.extra.len())
            .field("system_roots", &!self.no_system)
            .finish()
    }
}

impl PartialEq for TlsTrust {
    fn eq(&self, other: &Self) -> bool {
        self.extra == other.extra && self.no_system == other.no_system
    }
}

impl Eq for TlsTrust {}

impl TlsTrust {
    /// The system's certificate authorities (the default).
    pub fn system() -> Self {
        Self::default()
    }

    /// No authority at all but those added.
    pub fn only_added() -> Self {
        Self { no_system: true, ..Self::default() }
    }

    /// Also trusts every certificate in `pem` (one or more
    /// `-----BEGIN CERTIFICATE-----` blocks).
    pub fn with_pem(mut self, pem: &[u8]) -> Result<Self, ClientError> {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ClientError::InvalidOptions(format!("root certificate PEM: {e}")))?;
        if certs.is_empty() {
            return Err(ClientError::InvalidOptions("root certificate PEM holds no certificate".into()));
        }
        self.extra.extend(certs);
        self.built = Arc::default();
        Ok(self)
    }

    /// Also trusts `der`, one DER-encoded certificate.
    pub fn with_der(mut self, der: Vec<u8>) -> Self {
        self.extra.push(CertificateDer::from(der));
        self.built = Arc::default();
        self
    }

    /// The rustls configuration for this trust (TLS 1.2 and 1.3, ALPN
    /// `http/1.1`), built on first use.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, ClientError> {
        if let Some(built) = self.built.get() {
            return Ok(Arc::clone(built));
        }
        let mut roots = if self.no_system { RootCertStore::empty() } else { system_roots().clone() };
        for cert in &self.extra {
            roots
                .add(cert.clone())
                .map_err(|e| ClientError::InvalidOptions(format!("root certificate: {e}")))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::InvalidOptions(format!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::clone(self.built.get_or_init(|| Arc::new(config))))
    }
}

/// The system's certificate authorities, read once per process; those
/// that do not parse are skipped.
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        let (_added, _skipped) =
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        roots
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pem_without_a_certificate_is_refused() {
        assert!(matches!(TlsTrust::system().with_pem(b"nothing"), Err(ClientError::InvalidOptions(_))));
    }

    #[test]
    fn the_configuration_is_built_once_and_shared_by_clones() {
        let trust = TlsTrust::only_added();
        let a = trust.client_config().unwrap();
        let b = trust.clone().client_config().unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }
}
