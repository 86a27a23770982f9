//! Credentials (SPEC section 5): our [`Identity`], the peer's
//! [`PeerIdentity`], and the verifiers that decide whom to accept:
//! [`PinnedKeys`] (basic credentials, read from trust files),
//! [`x509::WebPkiServerVerifier`] and [`x509::WebPkiClientVerifier`]
//! (certificate chains), [`AcceptAnyPeer`] and [`EitherVerifier`].

mod identity;
mod trust_file;
mod verify;
pub mod x509;

pub use identity::Identity;
pub use verify::{
    AcceptAnyPeer, EitherVerifier, PeerAuth, PeerIdentity, PeerRejected, PeerVerifier, PinnedKeys,
    RejectKind, VerifyContext,
};

#[cfg(test)]
mod tests;
