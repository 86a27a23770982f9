//! What `client` and `server` tell a person: a summary line per
//! connection (who the peer is, which suite, new or resumed, the epoch)
//! and handshake failures that name the refusing side and the fix.
//!
//! Summaries go to stderr when it is a terminal, or with `-v`; `--quiet`
//! turns them (and the start-up banners) off for scripts.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::OnceLock;

use mls_tls::conn::Connection;
use mls_tls::credentials::PeerIdentity;
use mls_tls::crypto::CipherSuite;

/// Whether summaries and banners are shown; set once by [`init`].
static CHATTY: OnceLock<bool> = OnceLock::new();

/// Decides, from `-v` and `--quiet`, whether summaries are shown.
pub(crate) fn init(verbose: u8, quiet: bool) {
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = CHATTY.set(!quiet && (verbose > 0 || terminal));
}

/// Whether summaries and banners are shown.
pub(crate) fn chatty() -> bool {
    CHATTY.get().copied().unwrap_or(false)
}

/// Prints a summary or banner line on stderr, unless they are off.
pub(crate) fn say(line: &str) {
    if chatty() {
        eprintln!("{line}");
    }
}

/// `'name' (key 6476d18b…)` or `x509 "host.example" (key …)`; `anonymous`
/// when the verifier let the peer in without vouching for it.
pub(crate) fn peer(p: Option<&PeerIdentity>) -> String {
    let Some(p) = p else {
        return "unknown peer".into();
    };
    let name = if p.certificate_chain().is_some() {
        p.display_name()
    } else {
        format!("'{}'", p.display_name())
    };
    let anonymous = if p.authenticated { "" } else { ", anonymous" };
    format!("{name} (key {}{anonymous})", p.key_fingerprint())
}

/// The summary of an established connection: `what` (e.g. `connected to
/// 127.0.0.1:4433`), the peer, the suite, new or resumed, the epoch.
pub(crate) fn connection(what: &str, role: &str, conn: &Connection, resumed: bool) -> String {
    let suite = conn
        .suite()
        .map_or_else(|| "no suite".to_string(), |s| s.to_string());
    let epoch = conn
        .epoch()
        .map_or_else(|| "no epoch".to_string(), |e| format!("epoch {e}"));
    let how = if resumed {
        "resumed session"
    } else {
        "new session"
    };
    format!(
        "{what}: {role} {}, {suite}, {how}, {epoch}",
        peer(conn.peer_identity())
    )
}

/// The peer address of a connection, or `?` when the socket lost it.
pub(crate) fn addr(a: std::io::Result<SocketAddr>) -> String {
    a.map_or_else(|_| "?".to_string(), |a| a.to_string())
}

/// Why a connection failed, on the server: a client that refuses us
/// after the handshake (its check of our identity comes last) is named.
pub(crate) fn link_failure(e: &std::io::Error) -> String {
    use mls_tls::alert::AlertDescription as A;
    use mls_tls::Error;
    match Error::from_io(e) {
        Some(Error::AlertReceived(A::BadCertificate)) => "the client rejected our identity \
            (bad_certificate): its trust file lacks the line `mlstls pubkey` prints for our \
            identity file, or its --ca does not accept our certificate"
            .into(),
        Some(Error::AlertReceived(A::CertificateExpired)) => {
            "the client rejected our certificate as expired or not yet valid (certificate_expired)"
                .into()
        }
        _ => e.to_string(),
    }
}

/// Why a client's handshake failed, for one line: which side refused and
/// what to do; and whether it is final (retrying cannot help).
pub(crate) fn handshake_failure(
    server: &str,
    identity: &Path,
    suite: CipherSuite,
    e: &std::io::Error,
) -> (bool, String) {
    use mls_tls::alert::AlertDescription as A;
    use mls_tls::Error;
    let id = identity.display();
    let line = match Error::from_io(e) {
        Some(Error::AlertReceived(A::BadCertificate)) => format!(
            "the server rejected our identity (bad_certificate): add the line from \
             `mlstls pubkey {id}` to its trust file (a server with --ca may require an \
             X.509 client certificate)"
        ),
        Some(Error::AlertReceived(A::CertificateExpired)) => format!(
            "the server rejected our certificate as expired or not yet valid \
             (certificate_expired): renew the certificate of {id} (or check the clocks)"
        ),
        Some(Error::AlertReceived(A::HandshakeFailure)) => format!(
            "the server refused the handshake (handshake_failure): most often the \
             ciphersuites differ: we offer {suite} (from {id}); both ends must use the same \
             suite (`mlstls suites`, `mlstls keygen --suite`)"
        ),
        Some(Error::BadCertificate(why) | Error::CertificateExpired(why)) => format!(
            "we rejected the server: {}",
            why.replacen("the peer's ", "the server's ", 1)
        ),
        Some(inner) => {
            return (
                false,
                format!("{server}: MLS-TLS handshake failed ({inner}); is it an mlstls server?"),
            )
        }
        None => return (false, format!("{server}: {e}")),
    };
    (true, format!("{server}: {line}"))
}
