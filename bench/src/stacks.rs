//! The two stacks under test, configured to match each other as closely as
//! they can: same AEAD (AES-128-GCM, SHA-256), same signature (Ed25519),
//! matching key exchange, peers authenticated by a pinned key.

use std::fmt;
use std::io::{self, Read, Write};
use std::sync::Arc;

use mls_tls::conn::{ClientConfig, ClientConnection, ServerConfig, ServerConnection, UpdatePolicy};
use mls_tls::credentials::{AcceptAnyPeer, Identity};
use mls_tls::crypto::CipherSuite;
use mls_tls::store::SessionStore;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::{Deserialize, Serialize};

/// Which key exchange a comparison uses; each has one MLS-TLS suite and one
/// rustls group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kx {
    /// Post-quantum hybrid: MLS-TLS 0x004F vs TLS 1.3 X25519MLKEM768.
    Hybrid,
    /// Classical: MLS-TLS 0x0001 vs TLS 1.3 X25519.
    Classical,
}

impl Kx {
    /// Both, hybrid (the default of each stack) first.
    pub const ALL: [Kx; 2] = [Kx::Hybrid, Kx::Classical];

    /// The MLS-TLS ciphersuite.
    pub fn suite(self) -> CipherSuite {
        match self {
            Kx::Hybrid => CipherSuite::DEFAULT,
            Kx::Classical => CipherSuite::X25519Aes128GcmSha256Ed25519,
        }
    }

    /// The rustls key exchange group.
    pub fn rustls_group(self) -> &'static dyn rustls::crypto::SupportedKxGroup {
        match self {
            Kx::Hybrid => aws_lc_rs::kx_group::X25519MLKEM768,
            Kx::Classical => aws_lc_rs::kx_group::X25519,
        }
    }

    /// A short label for tables: "0x004F vs X25519MLKEM768".
    pub fn label(self) -> &'static str {
        match self {
            Kx::Hybrid => "0x004F vs X25519MLKEM768",
            Kx::Classical => "0x0001 vs X25519",
        }
    }
}

impl fmt::Display for Kx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Which implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Impl {
    /// This project.
    Ours,
    /// rustls 0.23, aws-lc-rs provider, TLS 1.3 only.
    Rustls,
}

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// MLS-TLS configurations for one suite, sessions in memory, key updates
/// only on request (so bulk figures measure the record layer).
pub(crate) struct MlsStack {
    pub(crate) client: Arc<ClientConfig>,
    pub(crate) server: Arc<ServerConfig>,
}

impl MlsStack {
    pub(crate) fn new(kx: Kx) -> Result<Self, BoxError> {
        Self::with_store(kx, None)
    }

    /// Sessions in SQLite files under `dir` instead of memory.
    pub(crate) fn with_store(kx: Kx, dir: Option<&std::path::Path>) -> Result<Self, BoxError> {
        let suite = kx.suite();
        let store = |name: &str| {
            match dir {
                Some(d) => SessionStore::open(d.join(name)),
                None => SessionStore::in_memory(),
            }
            .map(Arc::new)
        };
        let policy = UpdatePolicy::manual();
        let client = ClientConfig::new(
            Identity::generate("client", suite)?,
            Arc::new(AcceptAnyPeer),
            store("client.db")?,
        )
        .update_policy(policy);
        let server = ServerConfig::new(
            Identity::generate("server", suite)?,
            Arc::new(AcceptAnyPeer),
            store("server.db")?,
        )
        .update_policy(policy);
        Ok(Self {
            client: Arc::new(client),
            server: Arc::new(server),
        })
    }
}

/// rustls configurations for one group: an Ed25519 certificate made now,
/// pinned by the client (as MLS-TLS pins the peer's key); TLS 1.3 with
/// TLS_AES_128_GCM_SHA256 only.
pub(crate) struct RustlsStack {
    /// Never resumes: every connection is a full handshake.
    pub(crate) client_full: Arc<rustls::ClientConfig>,
    /// Keeps tickets and sends early data with them.
    pub(crate) client_resume: Arc<rustls::ClientConfig>,
    /// Issues tickets, accepts up to 16 KiB of early data and sends
    /// half-RTT data. rustls takes 0-RTT only with its stateful session
    /// cache (single-use tickets, its replay defence), so that is used.
    pub(crate) server: Arc<rustls::ServerConfig>,
}

/// The name the rustls client asks for.
pub(crate) fn server_name() -> ServerName<'static> {
    ServerName::try_from("bench.invalid").expect("a valid DNS name")
}

impl RustlsStack {
    pub(crate) fn new(kx: Kx) -> Result<Self, BoxError> {
        let mut provider = aws_lc_rs::default_provider();
        provider.kx_groups = vec![kx.rustls_group()];
        provider.cipher_suites = vec![aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256];
        let provider = Arc::new(provider);

        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
        let cert =
            rcgen::CertificateParams::new(vec!["bench.invalid".into()])?.self_signed(&key)?;
        let cert_der = cert.der().clone();
        let key_der = PrivateKeyDer::Pkcs8(key.serialize_der().into());

        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(vec![cert_der.clone()], key_der)?;
        server.max_early_data_size = 16 * 1024;
        // Answer early data at once, as our server does, instead of waiting
        // a round trip for the client's Finished (rustls's default).
        server.send_half_rtt_data = true;

        let verifier = Arc::new(PinnedCert {
            cert: cert_der,
            provider: provider.clone(),
        });
        let client = |resume: bool| -> Result<Arc<rustls::ClientConfig>, BoxError> {
            let mut c = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13])?
                .dangerous()
                .with_custom_certificate_verifier(verifier.clone())
                .with_no_client_auth();
            if resume {
                c.enable_early_data = true;
            } else {
                c.resumption = Resumption::disabled();
            }
            Ok(Arc::new(c))
        };
        Ok(Self {
            client_full: client(false)?,
            client_resume: client(true)?,
            server: Arc::new(server),
        })
    }
}

/// Accepts exactly one certificate (compared byte for byte) and checks the
/// handshake signature against it: the TLS counterpart of pinning the
/// peer's MLS signature key.
#[derive(Debug)]
struct PinnedCert {
    cert: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not offered".into()))
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The sans-I/O calls both stacks share, so one driver moves bytes between
/// a client and a server of either.
pub(crate) trait Endpoint {
    fn read_tls(&mut self, rd: &mut dyn Read) -> io::Result<usize>;
    fn process(&mut self) -> Result<(), BoxError>;
    fn write_tls(&mut self, wr: &mut dyn Write) -> io::Result<usize>;
    fn wants_write(&self) -> bool;
    fn is_handshaking(&self) -> bool;
    /// Starts a key update round.
    fn key_update(&mut self) -> Result<(), BoxError>;
    /// Queues application data.
    fn send_app(&mut self, data: &[u8]) -> io::Result<()>;
    /// Reads and drops all received application data; returns its length.
    fn drain_app(&mut self) -> usize;
}

/// Both stacks have the same rustls-style API; only the key-update call
/// differs.
macro_rules! endpoint {
    ($t:ty, $key_update:ident) => {
        impl Endpoint for $t {
            fn read_tls(&mut self, rd: &mut dyn Read) -> io::Result<usize> {
                (**self).read_tls(rd)
            }
            fn process(&mut self) -> Result<(), BoxError> {
                self.process_new_packets()?;
                Ok(())
            }
            fn write_tls(&mut self, wr: &mut dyn Write) -> io::Result<usize> {
                (**self).write_tls(wr)
            }
            fn wants_write(&self) -> bool {
                (**self).wants_write()
            }
            fn is_handshaking(&self) -> bool {
                (**self).is_handshaking()
            }
            fn key_update(&mut self) -> Result<(), BoxError> {
                Ok(self.$key_update()?)
            }
            fn send_app(&mut self, data: &[u8]) -> io::Result<()> {
                self.writer().write_all(data)
            }
            fn drain_app(&mut self) -> usize {
                let mut buf = [0u8; 4096];
                let mut total = 0;
                while let Ok(n @ 1..) = self.reader().read(&mut buf) {
                    total += n;
                }
                total
            }
        }
    };
}

endpoint!(ClientConnection, request_key_update);
endpoint!(ServerConnection, request_key_update);
endpoint!(rustls::ClientConnection, refresh_traffic_keys);
endpoint!(rustls::ServerConnection, refresh_traffic_keys);

/// Any stream a benchmark reads and writes.
pub(crate) trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}
