//! The MLS group rules of SPEC section 5: components, SafeAAD message types,
//! commit shape, and the OpenMLS calls that build and check messages.

use openmls::component::{ComponentId, ComponentsList};
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_traits::signatures::Signer;

use super::provider::MlsProvider;
use crate::credentials::Identity;
use crate::crypto::CipherSuite;
use crate::crypto::CryptoBackend;
use crate::error::Error;
use crate::message::TwoPartyMessageType;
use crate::store::snapshot::GroupStorage;
use crate::store::SessionId;

/// `two_party_profile` component id (private use until IANA assigns TBD1).
pub(crate) const TWO_PARTY_PROFILE: ComponentId = 0x8001;
/// `mls_tls` component id: the cross-protocol marker (MLS-TLS-01 section 9).
pub(crate) const MLS_TLS: ComponentId = 0x8002;
/// The `mls_tls` component's version (`ComponentData{mls_tls, uint16 1}`).
pub(crate) const MLS_TLS_VERSION: u16 = 1;
/// draft-ietf-mls-extensions `app_components` dictionary entry.
const APP_COMPONENTS: ComponentId = 0x0001;
/// draft-ietf-mls-extensions `safe_aad` dictionary entry.
const SAFE_AAD: ComponentId = 0x0002;

/// A serialized `ComponentsList`. Our own constant lists: a failure is a
/// bug, reported as [`Error::Internal`] rather than an empty list that a
/// peer would then reject.
fn components(ids: &[ComponentId]) -> Result<Vec<u8>, Error> {
    ComponentsList::new(ids.to_vec())
        .tls_serialize_detached()
        .map_err(|_| Error::Internal("our own components list does not serialize"))
}

/// The app_data_dictionary every LeafNode and the GroupContext carry.
fn app_dict() -> Result<AppDataDictionary, Error> {
    let mut d = AppDataDictionary::new();
    // `insert` returns the value it replaced; the keys are distinct.
    d.insert(APP_COMPONENTS, components(&[TWO_PARTY_PROFILE, MLS_TLS])?);
    d.insert(SAFE_AAD, components(&[TWO_PARTY_PROFILE])?);
    d.insert(MLS_TLS, MLS_TLS_VERSION.to_be_bytes().to_vec());
    Ok(d)
}

pub(crate) fn leaf_extensions() -> Result<Extensions<LeafNode>, Error> {
    Extensions::single(Extension::AppDataDictionary(
        AppDataDictionaryExtension::new(app_dict()?),
    ))
    .map_err(mls_err)
}

fn group_context_extensions() -> Result<Extensions<GroupContext>, Error> {
    Extensions::from_vec(vec![
        Extension::AppDataDictionary(AppDataDictionaryExtension::new(app_dict()?)),
        Extension::RequiredCapabilities(RequiredCapabilitiesExtension::new(
            &[ExtensionType::AppDataDictionary],
            &[],
            &[],
        )),
    ])
    .map_err(mls_err)
}

pub(crate) fn capabilities(suite: CipherSuite) -> Capabilities {
    Capabilities::builder()
        .ciphersuites(vec![suite.mls()])
        .extensions(vec![ExtensionType::AppDataDictionary])
        // Every leaf must support every member's credential type.
        .credentials(vec![CredentialType::Basic, CredentialType::X509])
        .build()
}

pub(crate) fn create_config(suite: CipherSuite) -> Result<MlsGroupCreateConfig, Error> {
    Ok(MlsGroupCreateConfig::builder()
        .ciphersuite(suite.mls())
        .wire_format_policy(PURE_CIPHERTEXT_WIRE_FORMAT_POLICY)
        .max_past_epochs(0)
        .use_ratchet_tree_extension(true)
        // Capabilities first: the leaf extensions are checked against them.
        .capabilities(capabilities(suite))
        .with_leaf_node_extensions(leaf_extensions()?)
        .map_err(mls_err)?
        .with_group_context_extensions(group_context_extensions()?)
        .build())
}

pub(crate) fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .wire_format_policy(PURE_CIPHERTEXT_WIRE_FORMAT_POLICY)
        .max_past_epochs(0)
        .use_ratchet_tree_extension(true)
        .build()
}

/// Checks that a dictionary lists both components in `app_components`,
/// `two_party_profile` in `safe_aad`, and carries `mls_tls` version 1.
fn check_dict(ext: Option<&AppDataDictionaryExtension>) -> Result<(), &'static str> {
    let d = ext.ok_or("no app_data_dictionary")?.dictionary();
    let list = |id| {
        d.get(&id)
            .and_then(|b| ComponentsList::tls_deserialize_exact(b).ok())
            .map(ComponentsList::into_ids)
    };
    let app = list(APP_COMPONENTS).ok_or("no app_components")?;
    if !app.contains(&TWO_PARTY_PROFILE) || !app.contains(&MLS_TLS) {
        return Err("app_components lacks two_party_profile or mls_tls");
    }
    if !list(SAFE_AAD)
        .ok_or("no safe_aad")?
        .contains(&TWO_PARTY_PROFILE)
    {
        return Err("safe_aad lacks two_party_profile");
    }
    if d.get(&MLS_TLS) != Some(&MLS_TLS_VERSION.to_be_bytes()[..]) {
        return Err("mls_tls component version is not 1");
    }
    Ok(())
}

/// Checks a LeafNode advertises what the profile needs (SPEC 5): both
/// components and the app_data_dictionary capability.
pub(crate) fn check_leaf(leaf: &LeafNode) -> Result<(), &'static str> {
    if !leaf
        .capabilities()
        .extensions()
        .contains(&ExtensionType::AppDataDictionary)
    {
        return Err("leaf lacks the app_data_dictionary capability");
    }
    check_dict(leaf.extensions().app_data_dictionary())
}

/// Checks the GroupContext requires the components and the capability.
pub(crate) fn check_group_context(gc: &GroupContext) -> Result<(), &'static str> {
    check_dict(gc.extensions().app_data_dictionary())?;
    let required = gc
        .extensions()
        .required_capabilities()
        .ok_or("no required_capabilities")?;
    if !required
        .extension_types()
        .contains(&ExtensionType::AppDataDictionary)
    {
        return Err("required_capabilities lacks app_data_dictionary");
    }
    Ok(())
}

/// The profile message type of a processed message: its authenticated data
/// must be exactly one SafeAAD item `0x8001` holding a valid type.
pub(crate) fn message_type(processed: &ProcessedMessage) -> Result<TwoPartyMessageType, Error> {
    let items = processed.safe_aad().map(|s| s.items()).unwrap_or_default();
    match items {
        [item] if item.component_id() == TWO_PARTY_PROFILE && processed.tail_aad().is_empty() => {
            match item.data() {
                [t] => TwoPartyMessageType::from_u8(*t)
                    .ok_or_else(|| Error::IllegalParameter(format!("unknown message type {t}"))),
                _ => Err(Error::IllegalParameter("malformed message type".into())),
            }
        }
        _ => Err(Error::IllegalParameter(
            "authenticated data is not exactly the two_party_profile SafeAAD item".into(),
        )),
    }
}

/// Checks a received commit has no proposals, an UpdatePath, and a path
/// leaf that keeps the components (SPEC 5). Returns the path leaf.
pub(crate) fn check_commit(staged: &StagedCommit) -> Result<&LeafNode, Error> {
    if staged.queued_proposals().next().is_some() {
        return Err(Error::IllegalParameter("commit carries proposals".into()));
    }
    let leaf = staged
        .update_path_leaf_node()
        .ok_or_else(|| Error::IllegalParameter("commit has no UpdatePath".into()))?;
    check_leaf(leaf).map_err(|e| Error::IllegalParameter(e.into()))?;
    Ok(leaf)
}

/// Creates and stages a commit with an empty proposal list and an
/// UpdatePath, typed `typ`. Returns the `MLSMessage` bytes.
/// With `rotate_to`, the UpdatePath leaf carries that identity's credential
/// and key (the commit itself is signed by `identity`, our current leaf).
pub(crate) fn create_commit(
    group: &mut MlsGroup,
    provider: &MlsProvider<'_>,
    identity: &Identity,
    rotate_to: Option<&Identity>,
    typ: TwoPartyMessageType,
) -> Result<Vec<u8>, Error> {
    set_type(group, typ)?;
    let builder = group
        .commit_builder()
        .consume_proposal_store(false)
        .force_self_update(true)
        .load_psks(provider.storage())
        .map_err(mls_err)?;
    let signer = identity.signer();
    let built = match rotate_to {
        None => builder.build(provider.rand(), provider.crypto(), signer, |_| false),
        Some(next) => builder.build_with_new_signer(
            provider.rand(),
            provider.crypto(),
            signer,
            NewSignerBundle {
                signer: next.signer(),
                credential_with_key: next.credential(),
            },
            |_| false,
        ),
    };
    let bundle = built
        .map_err(mls_err)?
        .stage_commit(provider)
        .map_err(mls_err)?;
    bundle.commit().tls_serialize_detached().map_err(mls_err)
}

/// Creates the EpochKeyUpdate application message for `epoch` in the
/// group's current epoch.
pub(crate) fn create_epoch_key_update(
    group: &mut MlsGroup,
    provider: &MlsProvider<'_>,
    signer: &impl Signer,
) -> Result<Vec<u8>, Error> {
    set_type(group, TwoPartyMessageType::EpochKeyUpdate)?;
    let epoch = group.epoch().as_u64();
    group
        .create_message(provider, signer, &epoch.to_be_bytes())
        .map_err(mls_err)?
        .tls_serialize_detached()
        .map_err(mls_err)
}

fn set_type(group: &mut MlsGroup, typ: TwoPartyMessageType) -> Result<(), Error> {
    group
        .set_safe_aad(vec![SafeAadItem::new(TWO_PARTY_PROFILE, vec![typ.to_u8()])])
        .map_err(mls_err)
}

/// Parses an `MLSMessage` that must be a PrivateMessage (SPEC 5: every
/// message after the Welcome).
pub(crate) fn parse_private_message(bytes: &[u8]) -> Result<ProtocolMessage, Error> {
    let msg = MlsMessageIn::tls_deserialize_exact(bytes).map_err(|_| {
        Error::InvalidMessage(crate::error::InvalidMessage::BadHandshake(
            "MLSMessage does not parse",
        ))
    })?;
    if msg.wire_format() != WireFormat::PrivateMessage {
        return Err(Error::IllegalParameter(
            "message is not a PrivateMessage".into(),
        ));
    }
    msg.try_into_protocol_message()
        .map_err(|_| Error::IllegalParameter("message is not a PrivateMessage".into()))
}

/// The epoch number an EpochKeyUpdate's application data carries.
pub(crate) fn epoch_key_update_epoch(data: &[u8]) -> Result<u64, Error> {
    <[u8; 8]>::try_from(data)
        .map(u64::from_be_bytes)
        .map_err(|_| Error::IllegalParameter("EpochKeyUpdate is not a uint64".into()))
}

/// SHA-256 of a commit message, kept to recognise a retransmission.
pub(crate) fn commit_hash(message: &[u8]) -> [u8; 32] {
    sha256(message)
}

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Loads a group from storage.
pub(crate) fn load_group(
    storage: &GroupStorage,
    id: &SessionId,
) -> Result<Option<MlsGroup>, Error> {
    MlsGroup::load(storage.storage(), &GroupId::from_slice(&id.0)).map_err(mls_err)
}

/// The storage in `snapshot` and the group `id` in it; a snapshot without
/// that group is the broken invariant `missing` names.
pub(crate) fn restore_group(
    snapshot: &[u8],
    id: &SessionId,
    missing: &'static str,
) -> Result<(GroupStorage, MlsGroup), Error> {
    let storage = GroupStorage::restore(snapshot)?;
    let group = load_group(&storage, id)?.ok_or(Error::Internal(missing))?;
    Ok((storage, group))
}

/// The signature key our pending commit's UpdatePath leaf installs, if a
/// commit of ours is pending.
pub(crate) fn pending_leaf_key(group: &MlsGroup) -> Option<&[u8]> {
    group
        .pending_commit()
        .and_then(|c| c.update_path_leaf_node())
        .map(|l| l.signature_key().as_slice())
}

/// The crypto backend for a suite, as an `Error`.
pub(crate) fn backend(suite: CipherSuite) -> Result<CryptoBackend, Error> {
    CryptoBackend::for_suite(suite).map_err(mls_err)
}

pub(crate) use crate::error::mls_err;

#[cfg(test)]
mod tests {
    use super::*;

    /// Our own components serialize (an error, never an empty list, if
    /// they did not) and pass the check a peer applies to them.
    #[test]
    fn own_components_pass_the_peer_check() {
        let dict = app_dict().unwrap();
        check_dict(Some(&AppDataDictionaryExtension::new(dict))).unwrap();
        assert_eq!(components(&[]).unwrap(), vec![0]);
    }
}
