//! TLS as a sans-IO layer around any probe (rustls): the driver moves ciphertext, this layer
//! runs the handshake and hands plaintext to the inner probe. A connect-only inner probe makes
//! a handshake check; an HTTP one makes keepalived's SSL_GET.
//!
//! Without roots, certificates are not verified (keepalived's SSL_GET does not verify unless
//! given a CA): the check is about the server answering, not about trusting it. With roots,
//! the chain and the server name are verified as a browser would.

use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::{Error, Outcome, Reason, Verdict};

use super::{Probe, Session, Step};

/// TLS settings for a check: the server name (SNI, and the name verified with roots) and
/// optional DER roots. The rustls configuration is built once here and shared by every run.
#[derive(Clone)]
pub struct TlsOptions {
    server_name: ServerName<'static>,
    roots: Option<Vec<Vec<u8>>>,
    config: Arc<ClientConfig>,
}

impl core::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("server_name", &self.server_name)
            .field("verify", &self.roots.is_some())
            .finish()
    }
}

impl PartialEq for TlsOptions {
    fn eq(&self, other: &TlsOptions) -> bool {
        self.server_name == other.server_name && self.roots == other.roots
    }
}
impl Eq for TlsOptions {}
impl Hash for TlsOptions {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.server_name.to_str().hash(state);
        self.roots.hash(state);
    }
}

/// Accepts any certificate, still checking the handshake signatures themselves.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
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

impl TlsOptions {
    /// TLS to `server_name` (a DNS name, sent as SNI, or an IP address) verifying nothing,
    /// or, with `roots_der`, verifying the chain against these DER certificates.
    pub fn new(server_name: &str, roots_der: Option<Vec<Vec<u8>>>) -> Result<TlsOptions, Error> {
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|e| Error::Tls(format!("server name {server_name:?}: {e}")))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?;
        let config = match &roots_der {
            None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
                .with_no_client_auth(),
            Some(ders) => {
                let mut roots = RootCertStore::empty();
                for der in ders {
                    roots
                        .add(CertificateDer::from(der.clone()))
                        .map_err(|e| Error::Tls(format!("root certificate: {e}")))?;
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
        };
        Ok(TlsOptions {
            server_name: name,
            roots: roots_der,
            config: Arc::new(config),
        })
    }
}

/// Another probe's session inside TLS.
#[derive(Debug)]
pub struct TlsProbe {
    conn: Option<ClientConnection>,
    inner: Session,
    inner_started: bool,
    handshake_reason: Reason,
}

impl TlsProbe {
    /// Wraps `inner`; a connect-only inner probe's pass is reported as `handshake_reason`.
    pub fn new(options: &TlsOptions, inner: Session, handshake_reason: Reason) -> TlsProbe {
        TlsProbe {
            conn: ClientConnection::new(options.config.clone(), options.server_name.clone()).ok(),
            inner,
            inner_started: false,
            handshake_reason,
        }
    }

    fn fail() -> Step {
        Step::Done(Outcome::fail(Reason::TlsError))
    }

    /// Hands an inner step to TLS; `Some` when the run is over.
    fn inner_step(&mut self, step: Step) -> Option<Step> {
        let conn = self.conn.as_mut()?;
        match step {
            Step::NeedMore => None,
            Step::Send(plain) => conn.writer().write_all(&plain).err().map(|_| Self::fail()),
            Step::Done(o) => Some(Step::Done(self.relabel(o))),
            Step::Finish(plain, o) => {
                let o = self.relabel(o);
                let conn = self.conn.as_mut()?;
                conn.writer().write_all(&plain).ok()?;
                conn.send_close_notify();
                Some(Step::Finish(Self::drain(conn), o))
            }
        }
    }

    fn relabel(&self, mut o: Outcome) -> Outcome {
        if o.verdict == Verdict::Pass && o.reason == Reason::Connected {
            o.reason = self.handshake_reason;
        }
        o
    }

    fn drain(conn: &mut ClientConnection) -> Vec<u8> {
        let mut out = Vec::new();
        while conn.wants_write() {
            if conn.write_tls(&mut out).is_err() {
                break;
            }
        }
        out
    }

    fn pending_output(&mut self) -> Step {
        match self.conn.as_mut().map(Self::drain) {
            Some(out) if !out.is_empty() => Step::Send(out),
            _ => Step::NeedMore,
        }
    }
}

impl Probe for TlsProbe {
    fn start(&mut self) -> Step {
        if self.conn.is_none() {
            return Self::fail();
        }
        self.pending_output()
    }

    fn on_bytes(&mut self, mut data: &[u8]) -> Step {
        let Some(conn) = self.conn.as_mut() else {
            return Self::fail();
        };
        while !data.is_empty() {
            match conn.read_tls(&mut data) {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) => return Self::fail(),
            }
            if conn.process_new_packets().is_err() {
                return Self::fail();
            }
        }
        if !conn.is_handshaking() && !self.inner_started {
            self.inner_started = true;
            let step = self.inner.start();
            if let Some(done) = self.inner_step(step) {
                return done;
            }
        }
        if self.inner_started {
            let mut plain = [0u8; 4096];
            loop {
                let Some(conn) = self.conn.as_mut() else {
                    return Self::fail();
                };
                match conn.reader().read(&mut plain) {
                    Ok(0) => {
                        let step = self.inner.on_eof();
                        return self.inner_step(step).unwrap_or(Self::fail());
                    }
                    Ok(n) => {
                        let step = self.inner.on_bytes(&plain[..n]);
                        if let Some(done) = self.inner_step(step) {
                            return done;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => return Self::fail(),
                }
            }
        }
        self.pending_output()
    }

    fn on_eof(&mut self) -> Step {
        if !self.inner_started {
            return Self::fail();
        }
        // A peer that closes without close_notify still ends the plaintext stream.
        let step = self.inner.on_eof();
        self.inner_step(step).unwrap_or(Self::fail())
    }

    fn on_timeout(&mut self) -> Outcome {
        if self.inner_started {
            self.inner.on_timeout()
        } else {
            Outcome::fail(Reason::Timeout)
        }
    }
}
