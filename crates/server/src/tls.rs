//! HTTPS served by Custodian itself: a PEM certificate chain and private key, loaded at
//! start and reloaded on SIGHUP. Each handshake asks [`CertResolver`] for the current
//! certificate, so a reload swaps it for new handshakes while established connections
//! keep the one they negotiated.
//!
//! Errors name the flag and the file, never their contents (a key must not reach a log).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

pub const CERT_FLAG: &str = "--tls-cert-file";
pub const KEY_FLAG: &str = "--tls-key-file";

/// The longest a TLS handshake may take: the header read timeout, at most 10 s. A
/// handshake is a few round trips; a client that stalls in it holds a socket and a task.
pub const MAX_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The two files of `serve --tls-cert-file --tls-key-file`.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A certificate or key file that cannot be used; says which flag and file, and why.
#[derive(Debug, thiserror::Error)]
#[error("{flag} {}: {reason}", path.display())]
pub struct TlsFileError {
    pub flag: &'static str,
    pub path: PathBuf,
    pub reason: String,
}

impl TlsFileError {
    fn new(flag: &'static str, path: &Path, reason: impl Into<String>) -> Self {
        TlsFileError { flag, path: path.to_path_buf(), reason: reason.into() }
    }
}

/// The certificate new handshakes get; replaced whole on reload.
#[derive(Debug)]
pub struct CertResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertResolver {
    fn current(&self) -> Arc<CertifiedKey> {
        // A poisoned lock still holds a whole Arc: the swap cannot be left half done.
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn replace(&self, key: Arc<CertifiedKey>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = key;
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// HTTPS for `serve`: the acceptor of connections and what reloads its certificate.
pub struct Tls {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    resolver: Arc<CertResolver>,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads both files; any problem with either is an error naming it.
    pub fn load(files: TlsFiles) -> Result<Tls, TlsFileError> {
        // ring, explicitly: no process-wide default provider to install or to clash with.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = read_certified_key(&files, &provider)?;
        let resolver = Arc::new(CertResolver { current: RwLock::new(Arc::new(key)) });
        let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsFileError::new(CERT_FLAG, &files.cert, format!("no TLS version to offer: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        // The server speaks HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        Ok(Tls { files, provider, resolver, acceptor })
    }

    /// Reads both files again and, when they are usable, serves the new certificate to
    /// new handshakes. On error the previous certificate stays.
    pub fn reload(&self) -> Result<(), TlsFileError> {
        let key = read_certified_key(&self.files, &self.provider)?;
        self.resolver.replace(Arc::new(key));
        Ok(())
    }

    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        self.acceptor.clone()
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The DER of the end-entity certificate new handshakes get.
    pub fn current_certificate(&self) -> Option<Vec<u8>> {
        self.resolver.current().cert.first().map(|c| c.as_ref().to_vec())
    }
}

/// Reloads the certificate on every SIGHUP (e.g. from a certbot deploy hook), for as
/// long as the process runs. The handler is installed before this returns, so a SIGHUP
/// no longer ends the process.
#[cfg(unix)]
pub fn reload_on_sighup(tls: Arc<Tls>) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let tls = tls.clone();
            // Small files, but file reads block: not on a runtime thread.
            match tokio::task::spawn_blocking(move || tls.reload().map(|()| tls)).await {
                Ok(Ok(tls)) => tracing::info!(
                    cert = %tls.files.cert.display(),
                    key = %tls.files.key.display(),
                    "SIGHUP: reloaded the TLS certificate; new connections get it"
                ),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "SIGHUP: the TLS certificate was not reloaded; still serving the previous one")
                }
                Err(e) => tracing::error!(error = %e, "SIGHUP: reloading the TLS certificate failed"),
            }
        }
    }))
}

fn read_certified_key(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsFileError> {
    let cert_pem = read(CERT_FLAG, &files.cert)?;
    let key_pem = read(KEY_FLAG, &files.key)?;
    certified_key(&cert_pem, &key_pem, files, provider)
}

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(path).map_err(|e| TlsFileError::new(flag, path, format!("cannot be read: {e}")))
}

/// The chain and key from their PEM texts, checked to belong together.
fn certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
    files: &TlsFiles,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsFileError> {
    let cert_error = |reason: String| TlsFileError::new(CERT_FLAG, &files.cert, reason);
    let key_error = |reason: String| TlsFileError::new(KEY_FLAG, &files.key, reason);
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(pem_problem(&e)))?;
    if chain.is_empty() {
        return Err(cert_error("no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound => key_error(
            "no PEM private key in it (expected -----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY)".into(),
        ),
        e => key_error(pem_problem(&e)),
    })?;
    // rustls's messages here name the problem, never the key's bytes.
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| key_error(format!("the private key cannot be used: {e}")))?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => Err(key_error(format!(
            "the private key does not belong to the first certificate of {CERT_FLAG} {}",
            files.cert.display()
        ))),
        Err(e) => Err(cert_error(format!("the first certificate is not valid X.509: {e}"))),
    }
}

/// What is wrong with a PEM text, without quoting it (the lines of a key are secret).
fn pem_problem(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { .. } => "not valid PEM: a section has no -----END line".into(),
        pem::Error::IllegalSectionStart { .. } => "not valid PEM: a malformed -----BEGIN line".into(),
        pem::Error::Base64Decode(_) => "not valid PEM: a section is not valid base64".into(),
        pem::Error::Io(e) => format!("cannot be read: {e}"),
        pem::Error::NoItemsFound => "no PEM section in it".into(),
        _ => "not valid PEM".into(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const RSA_CERT: &str = include_str!("../tests/fixtures/tls/rsa-cert.pem");
    const RSA_PKCS1_KEY: &str = include_str!("../tests/fixtures/tls/rsa-key-pkcs1.pem");
    const RSA_PKCS8_KEY: &str = include_str!("../tests/fixtures/tls/rsa-key-pkcs8.pem");
    const EC_CERT: &str = include_str!("../tests/fixtures/tls/ec-cert.pem");
    const EC_SEC1_KEY: &str = include_str!("../tests/fixtures/tls/ec-key-sec1.pem");
    const EC_PKCS8_KEY: &str = include_str!("../tests/fixtures/tls/ec-key-pkcs8.pem");

    fn files() -> TlsFiles {
        TlsFiles { cert: "/etc/custodian/cert.pem".into(), key: "/etc/custodian/key.pem".into() }
    }

    fn load(cert: &str, key: &str) -> Result<CertifiedKey, TlsFileError> {
        certified_key(cert.as_bytes(), key.as_bytes(), &files(), &rustls::crypto::ring::default_provider())
    }

    #[test]
    fn rsa_and_ec_keys_load_in_each_pem_form() {
        for (cert, key) in
            [(RSA_CERT, RSA_PKCS1_KEY), (RSA_CERT, RSA_PKCS8_KEY), (EC_CERT, EC_SEC1_KEY), (EC_CERT, EC_PKCS8_KEY)]
        {
            let certified = load(cert, key).unwrap();
            let first = CertificateDer::pem_slice_iter(cert.as_bytes()).next().unwrap().unwrap();
            assert_eq!(certified.end_entity_cert().unwrap(), &first);
            certified.keys_match().unwrap();
        }
    }

    #[test]
    fn unusable_files_are_named_and_never_quoted() {
        let mismatch = load(RSA_CERT, EC_SEC1_KEY).unwrap_err().to_string();
        assert!(
            mismatch.starts_with("--tls-key-file /etc/custodian/key.pem: the private key does not belong"),
            "{mismatch}"
        );

        let no_key = load(EC_CERT, EC_CERT).unwrap_err().to_string();
        assert!(no_key.starts_with("--tls-key-file /etc/custodian/key.pem: no PEM private key"), "{no_key}");

        let no_cert = load(EC_SEC1_KEY, EC_SEC1_KEY).unwrap_err().to_string();
        assert!(no_cert.starts_with("--tls-cert-file /etc/custodian/cert.pem: no PEM certificate"), "{no_cert}");

        // A key whose body is damaged: the message must not repeat any of its lines.
        let damaged = EC_PKCS8_KEY.replacen("M", "!", 1);
        let error = load(EC_CERT, &damaged).unwrap_err().to_string();
        assert!(error.starts_with("--tls-key-file /etc/custodian/key.pem: not valid PEM"), "{error}");
        for line in damaged.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!error.contains(line), "{error}");
        }

        let truncated: String = EC_PKCS8_KEY.lines().take(2).collect::<Vec<_>>().join("\n");
        let error = load(EC_CERT, &truncated).unwrap_err().to_string();
        assert!(error.contains("--tls-key-file") && error.contains("no -----END line"), "{error}");
    }

    #[test]
    fn reload_swaps_the_certificate_and_a_failed_one_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles { cert: dir.path().join("cert.pem"), key: dir.path().join("key.pem") };
        std::fs::write(&files.cert, RSA_CERT).unwrap();
        std::fs::write(&files.key, RSA_PKCS1_KEY).unwrap();
        let tls = Tls::load(files.clone()).unwrap();
        let der = |pem: &str| CertificateDer::pem_slice_iter(pem.as_bytes()).next().unwrap().unwrap().to_vec();
        assert_eq!(tls.current_certificate(), Some(der(RSA_CERT)));

        std::fs::write(&files.cert, EC_CERT).unwrap();
        std::fs::write(&files.key, EC_SEC1_KEY).unwrap();
        tls.reload().unwrap();
        assert_eq!(tls.current_certificate(), Some(der(EC_CERT)));

        std::fs::write(&files.key, "not a key").unwrap();
        let error = tls.reload().unwrap_err();
        assert_eq!(error.flag, KEY_FLAG);
        assert_eq!(tls.current_certificate(), Some(der(EC_CERT)));
    }
}
