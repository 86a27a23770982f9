//! The two-party profile of MLS (draft-kohbrok-mls-two-party-profile) as
//! MLS-TLS uses it: messages, group rules, states and transitions. It knows
//! MLS and the profile's states, and nothing of records or sockets.

pub mod engine;
pub(crate) mod group;
pub mod owners;
pub(crate) mod provider;
