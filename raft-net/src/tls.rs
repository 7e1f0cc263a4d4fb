//! TLS for the HTTP API (rustls with the `ring` provider): the server's configuration from a
//! PEM certificate chain and key (`--tls-cert`, `--tls-key`), and the trust a client needs for
//! a cluster whose certificate no public authority signed (`--ca-cert`: the PEM of the
//! authority, or of the self-signed certificate itself).

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::ring::default_provider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::ConfigError;

fn pem_error(path: &Path, what: &str, error: impl std::fmt::Display) -> ConfigError {
    ConfigError::Tls(format!("{}: cannot read {what}: {error}", path.display()))
}

/// Every certificate in the PEM file at `path`; at least one.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, "certificates", e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, "certificates", e))?;
    if certificates.is_empty() {
        return Err(pem_error(path, "certificates", "no CERTIFICATE section"));
    }
    Ok(certificates)
}

/// The server side: the certificate chain in `cert` (leaf first) and its private key in `key`.
/// HTTP/2 or HTTP/1.1 by ALPN (HTTP/1.1 without it), TLS 1.2 and 1.3 with rustls' safe
/// defaults.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
    let chain = certificates(cert)?;
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error(key, "a private key", e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| ConfigError::Tls(format!("{} and {}: {e}", cert.display(), key.display())))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The client side, trusting exactly the certificates in `ca`.
pub fn client_config(ca: &Path) -> Result<Arc<rustls::ClientConfig>, ConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in certificates(ca)? {
        roots
            .add(certificate)
            .map_err(|e| pem_error(ca, "a trusted certificate", e))?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The certificates in `ca`, for a `reqwest` client to trust.
pub fn reqwest_roots(ca: &Path) -> Result<Vec<reqwest::Certificate>, ConfigError> {
    certificates(ca)?
        .iter()
        .map(|der| {
            reqwest::Certificate::from_der(der)
                .map_err(|e| pem_error(ca, "a trusted certificate", e))
        })
        .collect()
}

/// A `reqwest` client builder that trusts `ca` when given (and the public roots never: none
/// are compiled in).
pub fn reqwest_builder(ca: Option<&Path>) -> Result<reqwest::ClientBuilder, ConfigError> {
    let mut builder = reqwest::Client::builder().use_rustls_tls();
    if let Some(ca) = ca {
        for root in reqwest_roots(ca)? {
            builder = builder.add_root_certificate(root);
        }
    }
    Ok(builder)
}
