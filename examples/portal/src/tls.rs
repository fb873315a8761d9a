//! HTTPS for a browser's Device Bound Session Credentials: Chromium runs DBSC only over HTTPS
//! whose certificate verifies. On first start the portal makes a self-signed certificate for
//! `localhost` and `127.0.0.1` (rcgen) and keeps it in its data directory; the browser trusts it
//! through its SPKI pin (`--ignore-certificate-errors-spki-list`). In production, TLS ends at
//! the reverse proxy and the portal serves plain HTTP behind it.

use std::path::Path;

use axum_server::tls_rustls::RustlsConfig;
use base64ct::{Base64, Encoding};
use rcgen::{CertificateParams, KeyPair, PublicKeyData};
use sha2::{Digest, Sha256};

/// The server's TLS configuration and the pin a browser trusts it by.
#[derive(Debug)]
pub struct Tls {
    pub config: RustlsConfig,
    /// Base64 of the SHA-256 of the certificate's SubjectPublicKeyInfo.
    pub pin: String,
}

/// Loads the certificate in `dir`, making one first if there is none.
pub async fn load_or_create(dir: &Path) -> Result<Tls, Box<dyn std::error::Error>> {
    // One crypto provider for the process (ring); a second call finds it installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (cert_path, key_path) = (dir.join("tls-cert.pem"), dir.join("tls-key.pem"));
    if !cert_path.exists() || !key_path.exists() {
        let key = KeyPair::generate()?;
        let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
        let cert = params.self_signed(&key)?;
        std::fs::write(&cert_path, cert.pem())?;
        crate::write_private(&key_path, key.serialize_pem().as_bytes())?;
    }
    let key = KeyPair::from_pem(&std::fs::read_to_string(&key_path)?)?;
    let pin = Base64::encode_string(&Sha256::digest(key.subject_public_key_info()));
    let config = RustlsConfig::from_pem_file(&cert_path, &key_path).await?;
    Ok(Tls { config, pin })
}
