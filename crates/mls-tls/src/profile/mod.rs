//! The two-party profile of MLS (draft-kohbrok-mls-two-party-profile) as
//! MLS-TLS uses it: messages, group rules, states and transitions. It knows
//! MLS and the profile's states, and nothing of records or sockets.

pub mod auth;
pub(crate) mod crypto;
pub mod engine;
pub(crate) mod group;
mod hpke;
pub mod message;
pub(crate) mod persist;
pub mod store;
pub mod suite;
pub mod x509;
