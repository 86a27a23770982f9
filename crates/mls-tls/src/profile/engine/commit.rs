//! Commits and keys: checking and applying a peer's commit, the key-reuse
//! invariant, and the traffic secrets an epoch exports (SPEC 7, 8).

use std::time::SystemTime;

use openmls::prelude::*;

use super::{authenticated, Active, EpochSecret, Event, Fail};
use crate::credentials::{PeerIdentity, PeerVerifier, VerifyContext};
use crate::crypto::CipherSuite;
use crate::crypto::CryptoBackend;
use crate::error::Error;
use crate::message::TwoPartyMessageType;
use crate::profile::group::{self, mls_err};
use crate::profile::provider::MlsProvider;
use crate::schedule::{Side, TrafficSecret, TrafficSecrets};
use crate::store::StoredState;

/// A peer commit applied and answered (see [`apply_and_confirm`]).
pub(super) struct Applied {
    pub(super) eku: Vec<u8>,
    pub(super) epoch: u64,
    pub(super) secrets: TrafficSecrets,
    pub(super) suite: CipherSuite,
    pub(super) stuck: Option<Vec<u8>>,
}

/// Applies a peer commit (checked by [`process_commit`]), records it as
/// the last merged commit, creates the EpochKeyUpdate in the new epoch and
/// claims sending keys for it (SPEC 7, 8).
pub(super) fn apply_and_confirm(
    a: &mut Active,
    provider: &MlsProvider<'_>,
    body: &[u8],
    verifier: &dyn PeerVerifier,
    now: SystemTime,
    type_ok: impl Fn(TwoPartyMessageType) -> bool,
) -> Result<Applied, Fail> {
    let staged = process_commit(a, provider, body, verifier, now, type_ok)?;
    let secrets = export_staged(&staged, &a.crypto, a.meta.suite)?;
    a.group
        .merge_staged_commit(provider, *staged)
        .map_err(mls_err)?;
    let epoch = a.group.epoch().as_u64();
    a.meta.last_commit_hash = Some(group::commit_hash(body));
    a.meta.state = StoredState::Synced;
    let eku = group::create_epoch_key_update(&mut a.group, provider, a.identity.signer())?;
    let stuck = claim_send_epoch(a, provider, epoch)?;
    Ok(Applied {
        eku,
        epoch,
        secrets,
        suite: a.meta.suite,
        stuck,
    })
}

/// Processes a commit message: decrypts it (failure: `decrypt_error`, the
/// session kept), then checks type, shape and credentials (failure: the
/// message authenticated, so the session is deleted). The UpdatePath leaf
/// becomes the peer's current leaf, so verifying it at `now` is the
/// re-check SPEC 5 asks for at the epoch change it brings.
pub(super) fn process_commit(
    a: &mut Active,
    provider: &MlsProvider<'_>,
    body: &[u8],
    verifier: &dyn PeerVerifier,
    now: SystemTime,
    type_ok: impl Fn(TwoPartyMessageType) -> bool,
) -> Result<Box<StagedCommit>, Fail> {
    let message = group::parse_private_message(body)?;
    let processed = a
        .group
        .process_message(provider, message)
        .map_err(|e| Error::DecryptError(format!("commit: {e:?}")))?;
    let typ = group::message_type(&processed).map_err(authenticated)?;
    if !type_ok(typ) {
        return Err(authenticated(Error::IllegalParameter(format!(
            "commit typed {typ:?} here"
        ))));
    }
    let ProcessedMessageContent::StagedCommitMessage(staged) = processed.into_content() else {
        return Err(authenticated(Error::IllegalParameter(
            "not a commit".into(),
        )));
    };
    let leaf = group::check_commit(&staged).map_err(authenticated)?;
    let peer = PeerIdentity::from_leaf(leaf.credential(), leaf.signature_key().as_slice())?
        .verified_by(
            verifier,
            VerifyContext::UpdatePath { previous: &a.peer },
            now,
        )
        .map_err(|e| {
            tracing::debug!(
                session = %a.meta.id,
                error = %e,
                "peer's UpdatePath credential rejected"
            );
            authenticated(e)
        })?;
    // A rotated credential is the one a resumption checks against next.
    a.meta.peer_credential = peer.credential.clone();
    a.meta.peer_signature_key = peer.signature_key.clone();
    a.peer = peer;
    Ok(staged)
}

/// Applies the key-reuse invariant (SPEC 8) on reaching `epoch`: sending
/// keys for it only if no keys for that epoch number were ever installed
/// (`None`). Otherwise the direction is stuck: a fresh ConnectionUpdate to a
/// new epoch is created, stored as pending, and returned for sending. This
/// only happens after resumptions where a dropped commit's early data used
/// the epoch number, and then this direction has no keys on the connection,
/// so the update travels in plaintext.
pub(super) fn claim_send_epoch(
    a: &mut Active,
    provider: &MlsProvider<'_>,
    epoch: u64,
) -> Result<Option<Vec<u8>>, Fail> {
    if epoch > a.meta.last_send_epoch {
        a.meta.last_send_epoch = epoch;
        return Ok(None);
    }
    let update = a.commit_pending(provider, TwoPartyMessageType::ConnectionUpdate)?;
    Ok(Some(update))
}

pub(crate) fn export(
    group: &MlsGroup,
    crypto: &CryptoBackend,
    suite: CipherSuite,
) -> Result<TrafficSecrets, Error> {
    TrafficSecrets::from_exporter(suite.hash(), |label, len| {
        group
            .export_secret(crypto, label, &[], len)
            .map_err(mls_err)
    })
}

pub(super) fn export_staged(
    staged: &StagedCommit,
    crypto: &CryptoBackend,
    suite: CipherSuite,
) -> Result<TrafficSecrets, Error> {
    TrafficSecrets::from_exporter(suite.hash(), |label, len| {
        staged
            .export_secret(crypto, label, &[], len)
            .map_err(mls_err)
    })
}

/// (send, receive) secrets for `side`.
pub(super) fn split(secrets: TrafficSecrets, side: Side) -> (TrafficSecret, TrafficSecret) {
    match side {
        Side::Client => (secrets.client, secrets.server),
        Side::Server => (secrets.server, secrets.client),
    }
}

pub(super) fn install_both(
    epoch: u64,
    suite: CipherSuite,
    secrets: TrafficSecrets,
    side: Side,
) -> Vec<Event> {
    let (send, receive) = split(secrets, side);
    vec![
        Event::InstallReceiveKeys(EpochSecret {
            epoch,
            suite,
            secret: receive,
        }),
        Event::InstallSendKeys(EpochSecret {
            epoch,
            suite,
            secret: send,
        }),
    ]
}
