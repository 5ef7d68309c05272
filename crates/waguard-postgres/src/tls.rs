//! TLS with rustls: [`SslMode`] (libpq's `sslmode`), the certificate checks each mode makes,
//! and [`RustlsConnect`], the connector tokio-postgres uses.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

/// How a connection uses TLS, as libpq's `sslmode` (the URL's `sslmode` parameter, or
/// [`PostgresOptions::with_ssl_mode`](crate::PostgresOptions::with_ssl_mode)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SslMode {
    /// Plain TCP, never TLS.
    Disable,
    /// TLS when the server offers it, plain TCP otherwise; the certificate is not checked
    /// (encryption against eavesdroppers only). libpq's default, and this crate's.
    #[default]
    Prefer,
    /// TLS or no connection. The certificate is not checked, unless a CA file is given
    /// (`sslrootcert`, [`PostgresOptions::with_ca_file`](crate::PostgresOptions::with_ca_file)):
    /// then it is checked as with [`VerifyCa`](SslMode::VerifyCa), as libpq does.
    Require,
    /// TLS, with a certificate signed by a trusted CA (the CA file, or the bundled Mozilla
    /// roots when there is none); any host name.
    VerifyCa,
    /// TLS, with a certificate signed by a trusted CA **and** naming the host of the URL.
    /// What to use over any network you do not control (managed PostgreSQL).
    VerifyFull,
}

impl SslMode {
    /// Reads libpq's spelling (`disable`, `allow`, `prefer`, `require`, `verify-ca`,
    /// `verify-full`; `allow` counts as `prefer`).
    pub fn parse(text: &str) -> Option<SslMode> {
        Some(match text {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// libpq's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// The mode tokio-postgres negotiates with.
    pub(crate) fn negotiation(self) -> tokio_postgres::config::SslMode {
        match self {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The URL without its `sslmode` and `sslrootcert` parameters (which tokio-postgres does not
/// read, or not all of), and their values.
pub(crate) struct SplitUrl {
    pub(crate) rest: String,
    pub(crate) sslmode: Option<String>,
    pub(crate) sslrootcert: Option<String>,
}

pub(crate) fn split_tls_params(url: &str) -> SplitUrl {
    let url = url.trim();
    let mut sslmode = None;
    let mut sslrootcert = None;
    let mut take = |key: &str, value: &str| -> bool {
        if key.eq_ignore_ascii_case("sslmode") {
            sslmode = Some(value.to_owned());
            true
        } else if key.eq_ignore_ascii_case("sslrootcert") {
            sslrootcert = Some(value.to_owned());
            true
        } else {
            false
        }
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            Some((base, query)) => {
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|pair| match pair.split_once('=') {
                        Some((k, v)) => !take(k, &percent_decode(v)),
                        None => true,
                    })
                    .collect();
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
            None => url.to_owned(),
        }
    } else {
        url.split_whitespace()
            .filter(|pair| match pair.split_once('=') {
                Some((k, v)) => !take(k.trim(), v.trim_matches('\'')),
                None => true,
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    SplitUrl {
        rest,
        sslmode,
        sslrootcert,
    }
}

/// `%XX` escapes of a URL query value (a CA file path may contain `/` as `%2F`).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Why a TLS set-up could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsSetupError {
    /// The CA file could not be read.
    #[error("cannot read the CA file {}: {source}; give a readable PEM file of the CA that signed the server's certificate (sslrootcert)", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: io::Error,
    },
    /// The CA file holds no usable certificate.
    #[error("the CA file {} holds no usable PEM certificate ({detail}); give the PEM file of the CA that signed the server's certificate", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        detail: String,
    },
    /// rustls refused the configuration.
    #[error("cannot set up TLS: {0}")]
    Rustls(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A tokio-postgres TLS connector on rustls (ring), checking the server's certificate as its
/// [`SslMode`] says. Cheap to clone.
#[derive(Clone)]
pub struct RustlsConnect {
    config: Arc<rustls::ClientConfig>,
}

impl fmt::Debug for RustlsConnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RustlsConnect").finish_non_exhaustive()
    }
}

impl RustlsConnect {
    /// A connector for `mode`, trusting the CA certificates of `ca_file` (PEM) when given, the
    /// bundled Mozilla roots (webpki-roots) otherwise. With [`SslMode::Disable`] or
    /// [`SslMode::Prefer`] and no CA file, and with [`SslMode::Require`] and no CA file, the
    /// certificate is not checked (libpq's behaviour).
    pub fn new(mode: SslMode, ca_file: Option<&Path>) -> Result<Self, TlsSetupError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsSetupError::Rustls(Box::new(e)))?;
        let check = match (mode, ca_file) {
            (SslMode::Disable | SslMode::Prefer | SslMode::Require, None) => None,
            (SslMode::VerifyFull, _) => Some(true),
            _ => Some(false),
        };
        let config = match check {
            None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoCertificateCheck {
                    algorithms: provider.signature_verification_algorithms,
                }))
                .with_no_client_auth(),
            Some(check_name) => {
                let roots = Arc::new(roots(ca_file)?);
                let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| TlsSetupError::Rustls(Box::new(e)))?;
                if check_name {
                    builder.with_webpki_verifier(webpki).with_no_client_auth()
                } else {
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(AnyNameCheck(webpki)))
                        .with_no_client_auth()
                }
            }
        };
        Ok(RustlsConnect {
            config: Arc::new(config),
        })
    }
}

fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, TlsSetupError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|source| TlsSetupError::CaFile {
                path: path.to_owned(),
                source,
            })?;
            let no_certificate = |detail: String| TlsSetupError::NoCertificate {
                path: path.to_owned(),
                detail,
            };
            for cert in CertificateDer::pem_slice_iter(&bytes) {
                let cert = cert.map_err(|e| no_certificate(e.to_string()))?;
                roots.add(cert).map_err(|e| no_certificate(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(no_certificate("no CERTIFICATE block".to_owned()));
            }
        }
    }
    Ok(roots)
}

/// `verify-ca`: the chain must lead to a trusted root, the name may be any.
#[derive(Debug)]
struct AnyNameCheck(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyNameCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require` without a CA: any certificate (the handshake's signatures are still
/// checked, so the session key belongs to whoever holds that certificate).
#[derive(Debug)]
struct NoCertificateCheck {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for NoCertificateCheck {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl<S> MakeTlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnector;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnector, Self::Error> {
        Ok(RustlsConnector {
            config: Arc::clone(&self.config),
            name: ServerName::try_from(domain.to_owned())?,
        })
    }
}

/// The connector of one connection (see [`RustlsConnect`]).
pub struct RustlsConnector {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl fmt::Debug for RustlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RustlsConnector")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<S> TlsConnect<S> for RustlsConnector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let stream = tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await?;
            Ok(RustlsStream(Box::new(stream)))
        })
    }
}

/// A TLS connection to the server (see [`RustlsConnect`]).
pub struct RustlsStream<S>(Box<tokio_rustls::client::TlsStream<S>>);

impl<S> fmt::Debug for RustlsStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RustlsStream").finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        // No `tls-server-end-point` binding: SCRAM authenticates without the `-PLUS` variant.
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_the_url() {
        let s = split_tls_params(
            "postgres://u:p@h:5/db?sslmode=verify-full&application_name=x&sslrootcert=%2Ftmp%2Fca.pem",
        );
        assert_eq!(s.rest, "postgres://u:p@h:5/db?application_name=x");
        assert_eq!(s.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(s.sslrootcert.as_deref(), Some("/tmp/ca.pem"));
        let s = split_tls_params("postgres://u@h/db?sslmode=require");
        assert_eq!(s.rest, "postgres://u@h/db");
        let s = split_tls_params("host=h user=u sslmode=verify-ca sslrootcert=/ca.pem dbname=d");
        assert_eq!(s.rest, "host=h user=u dbname=d");
        assert_eq!(s.sslmode.as_deref(), Some("verify-ca"));
        assert_eq!(s.sslrootcert.as_deref(), Some("/ca.pem"));
        let s = split_tls_params("postgres://u@h/db");
        assert_eq!(s.rest, "postgres://u@h/db");
        assert!(s.sslmode.is_none());
    }

    #[test]
    fn modes_read_as_libpq_spells_them() {
        for mode in [
            SslMode::Disable,
            SslMode::Prefer,
            SslMode::Require,
            SslMode::VerifyCa,
            SslMode::VerifyFull,
        ] {
            assert_eq!(SslMode::parse(mode.as_str()), Some(mode));
        }
        assert_eq!(SslMode::parse("allow"), Some(SslMode::Prefer));
        assert_eq!(SslMode::parse("verify_full"), None);
    }
}
