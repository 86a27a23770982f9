//! Who we are (SPEC section 5): a signature key pair and its credential,
//! basic or X.509, and the identity file format.

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::{BasicCredential, Credential, CredentialType, CredentialWithKey};
use openmls_basic_credential::SignatureKeyPair;
use rustls_pki_types::CertificateDer;
use zeroize::Zeroizing;

use super::x509;
use crate::crypto::signer::IdentitySigner;
use crate::crypto::CipherSuite;
use crate::error::mls_err;
use crate::error::Error;

/// Identity file with a basic credential.
pub(super) const IDENTITY_MAGIC: &[u8] = b"MLSTLS-IDENTITY-1\n";
/// Identity file with an X.509 credential: the chain follows the name.
pub(super) const IDENTITY_X509_MAGIC: &[u8] = b"MLSTLS-IDENTITY-X509-1\n";

/// This party's identity: a signature key pair and a credential for it, for
/// one ciphersuite's signature scheme. The credential is a basic credential
/// naming the key (peers pin the key) or, after
/// [`Identity::with_certificate_chain`], an X.509 certificate chain whose
/// leaf certifies the key (peers check it against their roots).
///
/// ```
/// use mls_tls::credentials::Identity;
/// use mls_tls::crypto::CipherSuite;
/// let id = Identity::generate("alice", CipherSuite::DEFAULT).unwrap();
/// assert_eq!(id.name(), b"alice");
/// assert!(!id.public_key().is_empty());
/// let restored = Identity::from_bytes(&id.to_bytes().unwrap()).unwrap();
/// assert_eq!(restored.public_key(), id.public_key());
/// ```
pub struct Identity {
    signer: IdentitySigner,
    name: Vec<u8>,
    /// X.509 chain, leaf first; `None` for a basic credential.
    chain: Option<Vec<CertificateDer<'static>>>,
    suite: CipherSuite,
}

impl Identity {
    /// Generates a fresh key pair for `suite` with credential `name`.
    pub fn generate(name: &str, suite: CipherSuite) -> Result<Self, Error> {
        let pair = SignatureKeyPair::new(suite.signature_scheme()).map_err(mls_err)?;
        let signer = IdentitySigner::new(pair).map_err(mls_err)?;
        Ok(Self {
            signer,
            name: name.as_bytes().to_vec(),
            chain: None,
            suite,
        })
    }

    /// Turns this identity's credential into an X.509 credential (RFC 9420
    /// `x509`): `chain` is leaf first, each next certificate the issuer of
    /// the one before, without the root. The leaf must certify exactly
    /// this identity's signature key, and the suite must sign with Ed25519
    /// or ECDSA P-256/P-384 (the schemes certificates are checked for).
    ///
    /// ```
    /// use mls_tls::credentials::Identity;
    /// use mls_tls::crypto::CipherSuite;
    /// use mls_tls::credentials::x509::CertificateDer;
    /// use rcgen::{CertificateParams, CertifiedIssuer, IsCa, KeyPair, BasicConstraints};
    ///
    /// // The MLS key is made first; a CA then certifies its public key.
    /// let id = Identity::generate("node-1.example", CipherSuite::DEFAULT).unwrap();
    /// struct MlsKey<'a>(&'a [u8]);
    /// impl rcgen::PublicKeyData for MlsKey<'_> {
    ///     fn der_bytes(&self) -> &[u8] { self.0 }
    ///     fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm { &rcgen::PKCS_ED25519 }
    /// }
    /// let mut ca = CertificateParams::default();
    /// ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    /// let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    /// let leaf = CertificateParams::new(vec!["node-1.example".into()]).unwrap()
    ///     .signed_by(&MlsKey(id.public_key()), &ca).unwrap();
    /// let id = id
    ///     .with_certificate_chain(vec![CertificateDer::from(leaf.der().to_vec())])
    ///     .unwrap();
    /// assert_eq!(id.certificate_chain().unwrap().len(), 1);
    /// // A chain for another key is refused, naming the reason.
    /// let other = Identity::generate("x", CipherSuite::DEFAULT).unwrap();
    /// let err = other.with_certificate_chain(id.certificate_chain().unwrap().to_vec());
    /// assert!(err.unwrap_err().to_string().contains("does not match"));
    /// ```
    pub fn with_certificate_chain(
        mut self,
        chain: Vec<CertificateDer<'static>>,
    ) -> Result<Self, Error> {
        x509::check_own_chain(&chain, self.public_key()).map_err(Error::InvalidConfig)?;
        self.chain = Some(chain);
        Ok(self)
    }

    /// Checks that our certificate is valid for `name`, the name initiators
    /// will verify (a server can refuse to start with the wrong
    /// certificate). An error for a basic credential.
    pub fn check_server_name(&self, name: &x509::ServerName<'_>) -> Result<(), Error> {
        let chain = self.chain.as_deref().ok_or_else(|| {
            Error::InvalidConfig("identity has a basic credential, not a certificate".into())
        })?;
        x509::check_name(chain, name).map_err(Error::InvalidConfig)
    }

    /// The X.509 chain (leaf first), if the credential is X.509.
    pub fn certificate_chain(&self) -> Option<&[CertificateDer<'static>]> {
        self.chain.as_deref()
    }

    /// The ciphersuite this identity's key is for.
    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// The name this identity was generated with (for a basic credential,
    /// the credential's identity bytes).
    pub fn name(&self) -> &[u8] {
        &self.name
    }

    /// The signature public key: what a peer pins.
    pub fn public_key(&self) -> &[u8] {
        self.signer.key_pair().public()
    }

    /// The identity as bytes, private key included, to keep in a file only
    /// its owner can read: a stored session can only be resumed with the
    /// identity that created it.
    ///
    /// Layout: magic line, suite (u16), name (u16 length), for X.509 the
    /// credential content of RFC 9420 (u32 length; the chain as
    /// `Certificate chain<V>`), then the OpenMLS key pair.
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, Error> {
        let magic = match self.chain {
            None => IDENTITY_MAGIC,
            Some(_) => IDENTITY_X509_MAGIC,
        };
        let mut out = Zeroizing::new(magic.to_vec());
        out.extend_from_slice(&self.suite.code_point().to_be_bytes());
        let name_len = u16::try_from(self.name.len())
            .map_err(|_| Error::ApiMisuse("identity name longer than 65535 bytes"))?;
        out.extend_from_slice(&name_len.to_be_bytes());
        out.extend_from_slice(&self.name);
        if let Some(chain) = &self.chain {
            let content = x509::encode_chain(chain);
            let len = u32::try_from(content.len())
                .map_err(|_| Error::ApiMisuse("certificate chain longer than 4 GiB"))?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&content);
        }
        let signer = Zeroizing::new(
            self.signer
                .key_pair()
                .tls_serialize_detached()
                .map_err(mls_err)?,
        );
        out.extend_from_slice(&signer);
        Ok(out)
    }

    /// Reads an identity file (written by `mlstls keygen` or
    /// [`Identity::to_bytes`]). Errors ([`Error::InvalidConfig`]) name the
    /// file and say what to do.
    ///
    /// ```no_run
    /// let id = mls_tls::Identity::load("client.id")?;
    /// # Ok::<(), mls_tls::Error>(())
    /// ```
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let named =
            |why: String| Error::InvalidConfig(format!("identity {}: {why}", path.display()));
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| named(e.to_string()))?);
        Self::from_bytes(&bytes).map_err(|e| match e {
            // A readable file whose certificate no longer fits its key.
            Error::InvalidConfig(why) => named(why),
            _ if !Self::is_identity_file(&bytes) => {
                named("not an mlstls identity file (make one with `mlstls keygen`)".into())
            }
            e => named(e.to_string()),
        })
    }

    /// Whether `bytes` start like an identity file.
    pub(super) fn is_identity_file(bytes: &[u8]) -> bool {
        bytes.starts_with(IDENTITY_MAGIC) || bytes.starts_with(IDENTITY_X509_MAGIC)
    }

    /// Reads an identity written by [`Identity::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let bad = || Error::ApiMisuse("not an MLS-TLS identity");
        let (x509, rest) = match bytes.strip_prefix(IDENTITY_X509_MAGIC) {
            Some(rest) => (true, rest),
            None => (false, bytes.strip_prefix(IDENTITY_MAGIC).ok_or_else(bad)?),
        };
        let (suite, rest) = rest.split_at_checked(2).ok_or_else(bad)?;
        let suite = CipherSuite::from_code_point(u16::from_be_bytes([suite[0], suite[1]]))
            .ok_or_else(bad)?;
        let (len, rest) = rest.split_at_checked(2).ok_or_else(bad)?;
        let (name, rest) = rest
            .split_at_checked(usize::from(u16::from_be_bytes([len[0], len[1]])))
            .ok_or_else(bad)?;
        let (chain, rest) = if x509 {
            let (len, rest) = rest.split_at_checked(4).ok_or_else(bad)?;
            let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]);
            let (content, rest) = rest
                .split_at_checked(usize::try_from(len).map_err(|_| bad())?)
                .ok_or_else(bad)?;
            (Some(x509::decode_chain(content).map_err(|_| bad())?), rest)
        } else {
            (None, rest)
        };
        let pair = SignatureKeyPair::tls_deserialize_exact(rest).map_err(|_| bad())?;
        if pair.signature_scheme() != suite.signature_scheme() {
            return Err(Error::ApiMisuse(
                "identity key does not match its ciphersuite",
            ));
        }
        let signer = IdentitySigner::new(pair)
            .map_err(|_| Error::ApiMisuse("identity private key does not match its public key"))?;
        let id = Self {
            signer,
            name: name.to_vec(),
            chain: None,
            suite,
        };
        match chain {
            Some(chain) => id.with_certificate_chain(chain),
            None => Ok(id),
        }
    }

    /// What signs our MLS messages (on aws-lc-rs where it can).
    pub(crate) fn signer(&self) -> &IdentitySigner {
        &self.signer
    }

    pub(crate) fn credential(&self) -> CredentialWithKey {
        let credential = match &self.chain {
            None => BasicCredential::new(self.name.clone()).into(),
            Some(chain) => Credential::new(CredentialType::X509, x509::encode_chain(chain)),
        };
        CredentialWithKey {
            credential,
            signature_key: self.public_key().to_vec().into(),
        }
    }
}

impl core::fmt::Debug for Identity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Identity")
            .field("name", &String::from_utf8_lossy(&self.name))
            .field("suite", &self.suite)
            .field("x509", &self.chain.is_some())
            .finish_non_exhaustive()
    }
}
