//! MLS-TLS: a secure channel where a two-member MLS group (RFC 9420)
//! replaces the TLS 1.3 handshake and keys exported from the group drive the
//! unchanged TLS 1.3 record layer (draft-kohbrok-mls-tls,
//! draft-kohbrok-mls-two-party-profile).
//!
//! Layers, bottom up:
//! - [`schedule`]: traffic secrets from the MLS exporter to record keys;
//! - [`record`]: framing, protection, sequence numbers, usage limits;
//! - [`alert`] and [`error`]: what went wrong and what the peer is told.
//!
//! With the `tokio` feature (on by default), `tokio` adapts connections to
//! async transports (`Connector`, `Acceptor`, `TlsStream`).

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod alert;
pub mod conn;
pub mod error;
pub mod keylog;
pub mod profile;
pub mod record;
pub mod schedule;
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

pub use error::Error;
