//! MLS-TLS: a secure channel where a two-member MLS group (RFC 9420)
//! replaces the TLS 1.3 handshake and keys exported from the group drive the
//! unchanged TLS 1.3 record layer (draft-kohbrok-mls-tls,
//! draft-kohbrok-mls-two-party-profile).
//!
//! # Start here
//!
//! A connection needs three things: our [`Identity`] (a signature key and
//! credential; `mlstls keygen` writes one, [`Identity::load`] reads it),
//! whom we accept ([`credentials`]: a trust file of pinned keys read by
//! [`credentials::PinnedKeys::from_trust_file`], or X.509 roots), and a
//! [`SessionStore`] where sessions live between connections so a cut
//! connection resumes with data in its first flight.
//!
//! Connecting and accepting with tokio (the `tokio` feature, on by default):
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use mls_tls::credentials::PinnedKeys;
//! use mls_tls::tokio::{Acceptor, Connector};
//! use mls_tls::{ClientConfig, Identity, ServerConfig, SessionStore};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! // Server: accepts the clients listed in clients.pub.
//! let server = Arc::new(ServerConfig::new(
//!     Identity::load("server.id")?,
//!     Arc::new(PinnedKeys::from_trust_file("clients.pub")?),
//!     Arc::new(SessionStore::open("server.db")?),
//! ));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:4433").await?;
//! let acceptor = Acceptor::new(server);
//! tokio::spawn(async move {
//!     let (tcp, _) = listener.accept().await?;
//!     let mut tls = acceptor.accept(tcp).await?;
//!     let who = tls.get_ref().1.peer_identity().map(|p| p.display_name());
//!     tls.write_all(format!("hello {who:?}").as_bytes()).await?;
//!     tls.shutdown().await
//! });
//!
//! // Client: accepts the servers listed in servers.pub.
//! let client = Arc::new(ClientConfig::new(
//!     Identity::load("client.id")?,
//!     Arc::new(PinnedKeys::from_trust_file("servers.pub")?),
//!     Arc::new(SessionStore::open("client.db")?),
//! ));
//! let tcp = tokio::net::TcpStream::connect("127.0.0.1:4433").await?;
//! let mut tls = Connector::new(client).connect(tcp).await?;
//! let mut greeting = String::new();
//! tls.read_to_string(&mut greeting).await?;
//! # Ok(()) }
//! ```
//!
//! To resume a stored session (and fall back to a new one when the server
//! no longer has it), use [`tokio::Connector::resume_or_connect`]. With
//! blocking sockets, wrap a [`ClientConnection`] or [`ServerConnection`]
//! and a `TcpStream` in a [`stream::StreamOwned`]. To drive the protocol
//! yourself, sans I/O, as rustls's connections are driven, use
//! [`ClientConnection`] / [`ServerConnection`] ([`conn`]) directly.
//!
//! Examples (`crates/mls-tls/examples`, run by the tests against files the
//! `mlstls` tool makes): `tokio_server` and `tokio_client` (pinned keys,
//! a file store, resumption, `peer_identity()`), `x509_client` (a server
//! certificate checked against a CA and a name), and the blocking
//! `echo_server` / `echo_client`.
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

/// The crate README's examples, compiled as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
