//! MLS-TLS: a secure channel where a two-member MLS group (RFC 9420)
//! replaces the TLS 1.3 handshake and keys exported from the group drive the
//! unchanged TLS 1.3 record layer (draft-kohbrok-mls-tls,
//! draft-kohbrok-mls-two-party-profile).
//!
//! Where to start: build a [`ClientConfig`] or [`ServerConfig`] from an
//! [`Identity`], a peer verifier ([`credentials`]) and a [`SessionStore`],
//! then use one of
//! - [`tokio`] (`Connector`, `Acceptor`, `TlsStream`; the `tokio` feature,
//!   on by default) for async transports;
//! - [`stream`] for blocking sockets;
//! - [`ClientConnection`] / [`ServerConnection`] ([`conn`]) to drive the
//!   protocol yourself, sans I/O, as rustls's connections are driven.
//!
//! The modules, bottom up:
//! - [`schedule`] and [`record`]: traffic secrets from the MLS exporter to
//!   record keys; framing, protection, sequence numbers, usage limits;
//! - [`message`]: `MlsTlsHandshake` framing;
//! - [`credentials`]: identities and peer verification (pinned keys,
//!   X.509);
//! - [`store`]: where sessions live between connections;
//! - [`profile`]: the two-party profile engine (MLS group rules, states,
//!   transitions) and its ciphersuites;
//! - [`conn`], [`stream`], [`tokio`]: connections;
//! - [`alert`] and [`error`]: what went wrong and what the peer is told.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod alert;
pub mod conn;
pub mod credentials;
pub mod crypto;
mod enums;
pub mod error;
pub mod keylog;
pub mod message;
mod private_file;
pub mod profile;
pub mod record;
pub mod schedule;
pub mod store;
pub mod stream;
pub mod time;
#[cfg(feature = "tokio")]
pub mod tokio;

#[cfg(feature = "bench")]
#[doc(hidden)]
pub mod bench_support;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

pub use conn::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};
pub use credentials::Identity;
pub use crypto::CipherSuite;
pub use error::Error;
pub use store::SessionStore;
