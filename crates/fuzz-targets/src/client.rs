//! Target 4: the client side. A `ClientConnection`, new or resuming the
//! fixture session, is fed an arbitrary server flight.
//!
//! Input: one byte choosing the connection (0 mod 3: new; 1: resuming the
//! fixture session whose pending commit is resent unchanged, so a captured
//! server answer to it still applies; 2: resuming with a fresh commit),
//! then the bytes the server sends.

use mls_tls::conn::ClientConnection;

use crate::{
    check_peer_error, check_session_kept, client_config, clock, feed, fixture_session_id, fixtures,
    take_output, SharedBackend,
};

/// The target.
pub fn run(data: &[u8]) {
    let Some((&mode, flight)) = data.split_first() else {
        return;
    };
    let fx = fixtures();
    let clock = clock();
    let (backend, mut client) = match mode % 3 {
        0 => {
            let backend = SharedBackend::default();
            let config = client_config(&fx.client_identity, &backend, &clock, None);
            let client = ClientConnection::new(config).expect("new client");
            (backend, client)
        }
        m => {
            let session = if m == 1 {
                &fx.client_pending
            } else {
                &fx.client_synced
            };
            let backend = SharedBackend::holding(session);
            let config = client_config(&fx.client_identity, &backend, &clock, None);
            let client = ClientConnection::resume(config, &fixture_session_id())
                .expect("resume the fixture session");
            (backend, client)
        }
    };
    // Early data on a resumption, as an application would write it.
    let _ = std::io::Write::write(&mut client.writer(), b"early bytes");
    let _ = take_output(&mut client);
    let error = feed(&mut client, flight);
    let _ = take_output(&mut client);
    if let Some(e) = &error {
        check_peer_error(e);
    }
    if mode % 3 != 0 {
        check_session_kept(&backend, &fixture_session_id(), error.as_ref());
    }
}
