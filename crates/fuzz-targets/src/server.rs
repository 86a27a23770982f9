//! Target 3: a server's first flight. A `ServerConnection` whose store
//! holds a real session (the fixture) is fed arbitrary bytes, so a
//! ResumptionRequest naming that session reaches the classifier of SPEC 8.
//!
//! Input: the bytes the client sends, in one go.
//!
//! Checks: no panic; a connection ended by the input ends with an error
//! that is the peer's fault; the stored session survives unless SPEC 8
//! says delete (an authenticated violation).

use std::sync::Arc;

use mls_tls::conn::ServerConnection;

use crate::{
    check_peer_error, check_session_kept, clock, feed, fixture_session_id, fixtures, server_config,
    take_output, SharedBackend,
};

/// The target.
pub fn run(data: &[u8]) {
    let fx = fixtures();
    let backend = SharedBackend::holding(&fx.server);
    let clock = clock();
    let config = server_config(&fx.server_identity, &backend, &clock, None);
    let mut server = ServerConnection::new(Arc::clone(&config));
    let error = feed(&mut server, data);
    let _ = take_output(&mut server);
    if let Some(e) = &error {
        check_peer_error(e);
    }
    check_session_kept(&backend, &fixture_session_id(), error.as_ref());
}
