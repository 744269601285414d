//! TLS to the daemon: the material (`ca.pem`, `cert.pem`, `key.pem`) and the handshake.
//!
//! rustls with its `ring` provider, passed explicitly (no process-wide default is installed or
//! needed). Like the docker CLI, only the CA certificates in `ca.pem` are trusted, never the
//! system's roots.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;

use super::BoxError;

/// The file names Docker uses for TLS material in a certificate directory.
pub(crate) const CA_FILE: &str = "ca.pem";
pub(crate) const CERT_FILE: &str = "cert.pem";
pub(crate) const KEY_FILE: &str = "key.pem";

/// How to speak TLS to a daemon: whom to trust, whether to check the daemon's certificate at
/// all, and the client certificate to show.
///
/// Made from a certificate directory as the docker CLI reads it ([`TlsConfig::from_dir`]), or by
/// [`Endpoint`](super::Endpoint) resolution from `DOCKER_TLS_VERIFY`/`DOCKER_CERT_PATH` or a
/// Docker context. The files are read and checked when the `TlsConfig` is made, so a missing or
/// malformed file is reported before any connection is tried. Cheap to clone.
///
/// ```no_run
/// use docker_build::connection::{DockerHost, Endpoint, TlsConfig};
///
/// let tls = TlsConfig::from_dir("/certs/client".as_ref(), true)?;
/// let endpoint = Endpoint::new(DockerHost::parse("tcp://docker:2376")?, Some(tls));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    config: Arc<rustls::ClientConfig>,
    verify: bool,
    client_certificate: bool,
    source: PathBuf,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key stays out of debug output.
        f.debug_struct("TlsConfig")
            .field("verify", &self.verify)
            .field("client_certificate", &self.client_certificate)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl PartialEq for TlsConfig {
    /// Equal when made the same way from the same directory (the material is not compared).
    fn eq(&self, other: &Self) -> bool {
        self.verify == other.verify
            && self.client_certificate == other.client_certificate
            && self.source == other.source
    }
}

impl Eq for TlsConfig {}

/// Why TLS material could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read (it may not exist).
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A file is not PEM, or a PEM section in it is broken.
    #[error("{} is not valid PEM", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What the PEM reader reported.
        #[source]
        source: BoxError,
    },
    /// A file that should hold certificates holds none.
    #[error("{} holds no PEM certificate", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// `key.pem` holds no private key (PKCS#8, PKCS#1 or SEC1; an encrypted key is not one).
    #[error("{} holds no unencrypted private key", path.display())]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// A certificate in `ca.pem` cannot serve as a trust anchor.
    #[error("{} holds a certificate that cannot be used as a CA", path.display())]
    BadCa {
        /// The file.
        path: PathBuf,
        /// What the certificate parser reported.
        #[source]
        source: BoxError,
    },
    /// The client certificate and key cannot be used together (e.g. they do not match, or the
    /// key type is not supported).
    #[error("the client certificate {} and key {} cannot be used", cert.display(), key.display())]
    ClientCertificate {
        /// `cert.pem`.
        cert: PathBuf,
        /// `key.pem`.
        key: PathBuf,
        /// What rustls reported.
        #[source]
        source: BoxError,
    },
    /// Verification of the daemon's certificate is asked for, but there is no `ca.pem` to
    /// verify it against (system roots are not used, as by the docker CLI).
    #[error(
        "verifying the Docker daemon's certificate needs {}, which does not exist",
        path.display()
    )]
    NoCa {
        /// The `ca.pem` that was looked for.
        path: PathBuf,
    },
}

impl TlsConfig {
    /// Reads `ca.pem`, `cert.pem` and `key.pem` from `dir`, as the docker CLI does for
    /// `DOCKER_CERT_PATH`.
    ///
    /// With `verify`, the daemon's certificate must chain to a CA in `ca.pem` and name the host
    /// connected to, and `ca.pem` must exist. Without it, the connection is encrypted but the
    /// daemon is not authenticated (the CLI's `DOCKER_TLS=1` without `DOCKER_TLS_VERIFY`), and
    /// `ca.pem` is not needed. `cert.pem` and `key.pem` are the client certificate that a
    /// `dockerd --tlsverify` requires: both or neither must exist.
    pub fn from_dir(dir: &Path, verify: bool) -> Result<Self, TlsError> {
        let ca = dir.join(CA_FILE);
        let (cert, key) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
        let ca = if verify || ca.exists() {
            Some(ca)
        } else {
            None
        };
        let client = match (cert.exists(), key.exists()) {
            (false, false) => None,
            // Either is missing: read both, so the error names the missing one.
            _ => Some((cert, key)),
        };
        Self::from_files(dir, ca.as_deref(), client, verify)
    }

    /// Builds the configuration from the files given; `source` is where they come from (for
    /// [`Debug`] and equality).
    pub(crate) fn from_files(
        source: &Path,
        ca: Option<&Path>,
        client: Option<(PathBuf, PathBuf)>,
        verify: bool,
    ) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions");
        let builder = if verify {
            let ca = ca
                .map(Path::to_path_buf)
                .unwrap_or_else(|| source.join(CA_FILE));
            if !ca.exists() {
                return Err(TlsError::NoCa { path: ca });
            }
            let mut roots = rustls::RootCertStore::empty();
            for certificate in read_certificates(&ca)? {
                roots.add(certificate).map_err(|e| TlsError::BadCa {
                    path: ca.clone(),
                    source: Box::new(e),
                })?;
            }
            builder.with_root_certificates(roots)
        } else {
            if let Some(ca) = ca {
                // Not used, but a broken file is still reported rather than ignored.
                read_certificates(ca)?;
            }
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
        };
        let client_certificate = client.is_some();
        let config = match client {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = read_certificates(&cert)?;
                let private_key = read_key(&key)?;
                builder
                    .with_client_auth_cert(chain, private_key)
                    .map_err(|e| TlsError::ClientCertificate {
                        cert,
                        key,
                        source: Box::new(e),
                    })?
            }
        };
        Ok(TlsConfig {
            config: Arc::new(config),
            verify,
            client_certificate,
            source: source.to_path_buf(),
        })
    }

    /// Whether the daemon's certificate is verified against the CA.
    pub fn verifies_daemon(&self) -> bool {
        self.verify
    }

    /// Whether a client certificate is shown to the daemon.
    pub fn has_client_certificate(&self) -> bool {
        self.client_certificate
    }

    /// The directory the material was read from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Runs the TLS handshake as the client of `host` on `tcp`.
    ///
    /// A failed handshake is an I/O error whose message is `TLS handshake failed` and whose
    /// source is rustls's reason (e.g. `invalid peer certificate: UnknownIssuer`).
    pub(crate) async fn handshake(
        &self,
        host: &str,
        tcp: TcpStream,
    ) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let name = ServerName::try_from(host.to_string()).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                HandshakeError(io::Error::new(io::ErrorKind::InvalidInput, e)),
            )
        })?;
        tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| io::Error::new(e.kind(), HandshakeError(e)))
    }
}

/// The TLS handshake failed; the source says why.
#[derive(Debug, thiserror::Error)]
#[error("TLS handshake failed")]
struct HandshakeError(#[source] io::Error);

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn pem_error(path: &Path, error: rustls::pki_types::pem::Error) -> TlsError {
    TlsError::Pem {
        path: path.to_path_buf(),
        source: Box::new(error),
    }
}

/// Every certificate in the PEM file at `path`; at least one.
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certificates.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certificates)
}

/// The first private key in the PEM file at `path`.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            path: path.to_path_buf(),
        },
        e => pem_error(path, e),
    })
}

/// Accepts any daemon certificate (the CLI's `InsecureSkipVerify`), but still checks that the
/// daemon holds the key of the certificate it shows.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
