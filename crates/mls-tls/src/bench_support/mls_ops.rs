//! The MLS operations of a handshake and of key update rounds, alone: the
//! OpenMLS calls the profile engine makes, through the same provider,
//! storage and group rules, but without the engine (no session records,
//! snapshots, store saves, trust checks), records or connection. What a
//! handshake costs beyond this is ours (issue 14: "ours / MLS operations").

use std::time::Duration;

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;

use crate::credentials::Identity;
use crate::crypto::CipherSuite;
use crate::crypto::CryptoBackend;
use crate::error::Error;
use crate::message::TwoPartyMessageType;
use crate::profile::engine::export;
use crate::profile::group::{self, mls_err};
use crate::profile::provider::MlsProvider;
use crate::store::snapshot::GroupStorage;

/// CPU time charged to each side by the clock the caller passes.
#[derive(Debug, Default, Clone, Copy)]
pub struct SideCost {
    /// The initiator's (client's) time.
    pub client: Duration,
    /// The responder's (server's) time.
    pub server: Duration,
}

/// Two fixed identities of one suite, reused by every run as a
/// connection's configuration is.
pub struct MlsOps {
    suite: CipherSuite,
    client: Identity,
    server: Identity,
}

/// One side's group, storage and crypto.
struct Member {
    crypto: CryptoBackend,
    storage: GroupStorage,
    group: Option<MlsGroup>,
}

impl Member {
    fn new(suite: CipherSuite) -> Result<Self, Error> {
        Ok(Self {
            crypto: group::backend(suite)?,
            storage: GroupStorage::default(),
            group: None,
        })
    }

    fn parts(&mut self) -> Result<(&mut MlsGroup, MlsProvider<'_>), Error> {
        let group = self.group.as_mut().ok_or(Error::Internal("no group yet"))?;
        Ok((group, MlsProvider::new(&self.crypto, &self.storage)))
    }
}

fn timed<R>(clock: &dyn Fn() -> Duration, acc: &mut Duration, f: impl FnOnce() -> R) -> R {
    let start = clock();
    let r = f();
    *acc += clock().saturating_sub(start);
    r
}

impl MlsOps {
    /// Identities for `suite` (generated once, outside any measurement).
    pub fn new(suite: CipherSuite) -> Result<Self, Error> {
        Ok(Self {
            suite,
            client: Identity::generate("client", suite)?,
            server: Identity::generate("server", suite)?,
        })
    }

    /// One handshake's MLS operations (client: provider, KeyPackage, then
    /// join from the Welcome and export; server: provider, KeyPackage
    /// validation, group creation, add, merge, Welcome, export), then
    /// `updates` rounds (client: commit with UpdatePath, then merge and
    /// process the EpochKeyUpdate, export; server: process and merge the
    /// commit, export, create the EpochKeyUpdate). `clock` reads the time
    /// to charge (the bench passes thread CPU time).
    pub fn run(
        &self,
        updates: usize,
        clock: &dyn Fn() -> Duration,
    ) -> Result<(SideCost, Vec<SideCost>), Error> {
        let suite = self.suite;
        let mut hs = SideCost::default();
        let (mut c, key_package) = timed(clock, &mut hs.client, || -> Result<_, Error> {
            let c = Member::new(suite)?;
            let provider = MlsProvider::new(&c.crypto, &c.storage);
            let kp = KeyPackage::builder()
                .leaf_node_capabilities(group::capabilities(suite))
                .leaf_node_extensions(group::leaf_extensions()?)
                .build(
                    suite.mls(),
                    &provider,
                    self.client.signer(),
                    self.client.credential(),
                )
                .map_err(mls_err)?;
            let bytes = MlsMessageOut::from(kp.key_package().clone())
                .tls_serialize_detached()
                .map_err(mls_err)?;
            Ok((c, bytes))
        })?;
        let (mut s, welcome) = timed(clock, &mut hs.server, || -> Result<_, Error> {
            let mut s = Member::new(suite)?;
            let MlsMessageBodyIn::KeyPackage(kp_in) =
                MlsMessageIn::tls_deserialize_exact(&key_package)
                    .map_err(mls_err)?
                    .extract()
            else {
                return Err(Error::Internal("not a KeyPackage"));
            };
            let kp = kp_in
                .validate(&s.crypto, ProtocolVersion::Mls10)
                .map_err(mls_err)?;
            let provider = MlsProvider::new(&s.crypto, &s.storage);
            let mut group = MlsGroup::new(
                &provider,
                self.server.signer(),
                &group::create_config(suite)?,
                self.server.credential(),
            )
            .map_err(mls_err)?;
            let (_, welcome, _) = group
                .add_members(&provider, self.server.signer(), &[kp])
                .map_err(mls_err)?;
            group.merge_pending_commit(&provider).map_err(mls_err)?;
            let welcome = welcome.tls_serialize_detached().map_err(mls_err)?;
            export(&group, &s.crypto, suite)?;
            s.group = Some(group);
            Ok((s, welcome))
        })?;
        timed(clock, &mut hs.client, || -> Result<(), Error> {
            let MlsMessageBodyIn::Welcome(w) = MlsMessageIn::tls_deserialize_exact(&welcome)
                .map_err(mls_err)?
                .extract()
            else {
                return Err(Error::Internal("not a Welcome"));
            };
            let provider = MlsProvider::new(&c.crypto, &c.storage);
            let group = StagedWelcome::new_from_welcome(&provider, &group::join_config(), w, None)
                .map_err(mls_err)?
                .into_group(&provider)
                .map_err(mls_err)?;
            export(&group, &c.crypto, suite)?;
            c.group = Some(group);
            Ok(())
        })?;

        let mut rounds = Vec::with_capacity(updates);
        for _ in 0..updates {
            let mut up = SideCost::default();
            let commit = timed(clock, &mut up.client, || -> Result<_, Error> {
                let (group, provider) = c.parts()?;
                group::create_commit(
                    group,
                    &provider,
                    &self.client,
                    None,
                    TwoPartyMessageType::ConnectionUpdate,
                )
            })?;
            let eku = timed(clock, &mut up.server, || -> Result<_, Error> {
                let (group, provider) = s.parts()?;
                let processed = group
                    .process_message(&provider, group::parse_private_message(&commit)?)
                    .map_err(mls_err)?;
                let ProcessedMessageContent::StagedCommitMessage(staged) = processed.into_content()
                else {
                    return Err(Error::Internal("not a commit"));
                };
                group
                    .merge_staged_commit(&provider, *staged)
                    .map_err(mls_err)?;
                export(group, provider.crypto(), suite)?;
                group::create_epoch_key_update(group, &provider, self.server.signer())
            })?;
            timed(clock, &mut up.client, || -> Result<(), Error> {
                let (group, provider) = c.parts()?;
                let message = group::parse_private_message(&eku)?;
                group.merge_pending_commit(&provider).map_err(mls_err)?;
                group.process_message(&provider, message).map_err(mls_err)?;
                export(group, provider.crypto(), suite)?;
                Ok(())
            })?;
            rounds.push(up);
        }
        Ok((hs, rounds))
    }
}
