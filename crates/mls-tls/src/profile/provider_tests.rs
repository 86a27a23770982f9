//! Tests of the provider: the two-party MLS flow on every suite, with the
//! storage snapshot and restore in between.

use super::*;
use crate::crypto::CipherSuite;
use crate::schedule::HashAlgorithm;
use crate::store::snapshot::GroupStorage;
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use tls_codec::{Deserialize as _, Serialize as _};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

const EXPORTER_LABEL: &str = "MLS-TLS c ap traffic";

fn hash_len(h: HashAlgorithm) -> usize {
    match h {
        HashAlgorithm::Sha256 => 32,
        HashAlgorithm::Sha384 => 48,
        HashAlgorithm::Sha512 => 64,
    }
}

/// A party's signer (stored in its database) and credential.
fn identity(
    suite: CipherSuite,
    provider: &MlsProvider<'_>,
    name: &str,
) -> TestResult<(SignatureKeyPair, CredentialWithKey)> {
    let signer = SignatureKeyPair::new(suite.signature_scheme())?;
    signer.store(provider.storage())?;
    let credential = CredentialWithKey {
        credential: BasicCredential::new(name.as_bytes().to_vec()).into(),
        signature_key: signer.to_public_vec().into(),
    };
    Ok((signer, credential))
}

fn capabilities(suite: CipherSuite) -> Capabilities {
    Capabilities::builder()
        .ciphersuites(vec![suite.mls()])
        .build()
}

fn to_protocol_message(bytes: &[u8]) -> TestResult<ProtocolMessage> {
    Ok(MlsMessageIn::tls_deserialize_exact(bytes)?.try_into_protocol_message()?)
}

/// Commit with no proposals and an UpdatePath, staged as pending; returns
/// the MLSMessage bytes.
fn empty_commit(
    group: &mut MlsGroup,
    provider: &MlsProvider<'_>,
    signer: &SignatureKeyPair,
) -> TestResult<Vec<u8>> {
    let bundle = group
        .commit_builder()
        .consume_proposal_store(false)
        .force_self_update(true)
        .load_psks(provider.storage())?
        .build(provider.rand(), provider.crypto(), signer, |_| false)?
        .stage_commit(provider)?;
    Ok(bundle.commit().tls_serialize_detached()?)
}

/// Process a peer's commit (must carry an UpdatePath and no proposals) and merge it.
fn process_commit(group: &mut MlsGroup, provider: &MlsProvider<'_>, bytes: &[u8]) -> TestResult {
    let processed = group.process_message(provider, to_protocol_message(bytes)?)?;
    let ProcessedMessageContent::StagedCommitMessage(staged) = processed.into_content() else {
        return Err("expected a commit".into());
    };
    assert_eq!(staged.queued_proposals().count(), 0);
    assert!(staged.update_path_leaf_node().is_some());
    group.merge_staged_commit(provider, *staged)?;
    Ok(())
}

/// The whole two-party MLS-TLS flow for one suite, each party on its own
/// in-memory database: KeyPackage (client) -> create + add + Welcome
/// (server) -> join (client) -> empty commit with UpdatePath (client) ->
/// process + merge (server); exporters must match. Finally checks that a
/// transition inside a rolled-back transaction leaves storage untouched.
fn two_party_flow(suite: CipherSuite) -> TestResult {
    let cs = suite.mls();
    assert_eq!(suite.hash(), crate_hash(cs.hash_algorithm()), "{suite}");
    assert_eq!(suite.aead(), crate_aead(cs.aead_algorithm()), "{suite}");
    assert_eq!(
        suite.signature_scheme(),
        cs.signature_algorithm(),
        "{suite}"
    );

    let (crypto_c, crypto_s) = (
        CryptoBackend::for_suite(suite)?,
        CryptoBackend::for_suite(suite)?,
    );
    let (conn_c, conn_s) = (GroupStorage::default(), GroupStorage::default());
    let (client, server) = (
        MlsProvider::new(&crypto_c, &conn_c),
        MlsProvider::new(&crypto_s, &conn_s),
    );
    let (signer_c, cred_c) = identity(suite, &client, "client")?;
    let (signer_s, cred_s) = identity(suite, &server, "server")?;

    // Client -> server: KeyPackage.
    let kpb = KeyPackage::builder()
        .leaf_node_capabilities(capabilities(suite))
        .build(cs, &client, &signer_c, cred_c)?;
    let kp_bytes = MlsMessageOut::from(kpb.key_package().clone()).tls_serialize_detached()?;
    let MlsMessageBodyIn::KeyPackage(kp_in) =
        MlsMessageIn::tls_deserialize_exact(&kp_bytes)?.extract()
    else {
        return Err("not a KeyPackage".into());
    };
    let kp = kp_in.validate(server.crypto(), ProtocolVersion::Mls10)?;

    // Server: create group, add client, merge -> Welcome.
    let create_config = MlsGroupCreateConfig::builder()
        .ciphersuite(cs)
        .capabilities(capabilities(suite))
        .wire_format_policy(PURE_CIPHERTEXT_WIRE_FORMAT_POLICY)
        .use_ratchet_tree_extension(true)
        .build();
    let mut group_s = MlsGroup::new(&server, &signer_s, &create_config, cred_s)?;
    let (_commit, welcome, _group_info) = group_s.add_members(&server, &signer_s, &[kp])?;
    group_s.merge_pending_commit(&server)?;
    let welcome_bytes = welcome.tls_serialize_detached()?;

    // Client: join (ratchet tree from the Welcome's extension).
    let MlsMessageBodyIn::Welcome(welcome) =
        MlsMessageIn::tls_deserialize_exact(&welcome_bytes)?.extract()
    else {
        return Err("not a Welcome".into());
    };
    let join_config = MlsGroupJoinConfig::builder()
        .wire_format_policy(PURE_CIPHERTEXT_WIRE_FORMAT_POLICY)
        .use_ratchet_tree_extension(true)
        .build();
    let mut group_c = StagedWelcome::new_from_welcome(&client, &join_config, welcome, None)?
        .into_group(&client)?;
    assert_eq!(group_c.ciphersuite(), cs);
    assert_eq!(group_c.epoch(), group_s.epoch());

    // Client: empty commit with UpdatePath; server processes it.
    let commit = empty_commit(&mut group_c, &client, &signer_c)?;
    process_commit(&mut group_s, &server, &commit)?;
    group_c.merge_pending_commit(&client)?;
    assert_eq!(group_c.epoch(), group_s.epoch());
    assert_eq!(group_c.epoch().as_u64(), 2);

    let len = hash_len(suite.hash());
    assert_eq!(len, cs.hash_algorithm().size());
    let export_c = group_c.export_secret(client.crypto(), EXPORTER_LABEL, b"", len)?;
    let export_s = group_s.export_secret(server.crypto(), EXPORTER_LABEL, b"", len)?;
    assert_eq!(export_c.len(), len, "{suite}");
    assert_eq!(export_c, export_s, "{suite}");

    // A transition is undone by restoring the snapshot taken before it.
    let group_id = group_s.group_id().clone();
    let commit = empty_commit(&mut group_c, &client, &signer_c)?;
    let before = conn_s.snapshot()?;
    process_commit(&mut group_s, &server, &commit)?;
    assert_eq!(group_s.epoch().as_u64(), 3);
    let conn_s = GroupStorage::restore(&before)?;
    let server = MlsProvider::new(&crypto_s, &conn_s);
    let mut group_s = MlsGroup::load(server.storage(), &group_id)?.ok_or("group lost")?;
    assert_eq!(group_s.epoch().as_u64(), 2);
    // ... and the same commit applies again.
    process_commit(&mut group_s, &server, &commit)?;
    group_c.merge_pending_commit(&client)?;
    let group_s = MlsGroup::load(server.storage(), &group_id)?.ok_or("group lost")?;
    assert_eq!(group_s.epoch().as_u64(), 3);
    assert_eq!(
        group_c.export_secret(client.crypto(), EXPORTER_LABEL, b"", len)?,
        group_s.export_secret(server.crypto(), EXPORTER_LABEL, b"", len)?
    );
    Ok(())
}

fn crate_hash(h: HashType) -> HashAlgorithm {
    match h {
        HashType::Sha2_256 => HashAlgorithm::Sha256,
        HashType::Sha2_384 => HashAlgorithm::Sha384,
        HashType::Sha2_512 => HashAlgorithm::Sha512,
    }
}

fn crate_aead(a: AeadType) -> crate::schedule::AeadAlgorithm {
    use crate::schedule::AeadAlgorithm;
    match a {
        AeadType::Aes128Gcm => AeadAlgorithm::Aes128Gcm,
        AeadType::Aes256Gcm => AeadAlgorithm::Aes256Gcm,
        AeadType::ChaCha20Poly1305 => AeadAlgorithm::ChaCha20Poly1305,
    }
}

/// One `#[test]` per suite (they run in parallel and fail individually),
/// plus a check that the list covers `CipherSuite::ALL`.
macro_rules! flow_tests {
    ($($test:ident => $suite:ident,)*) => {
        $(
            #[test]
            fn $test() {
                if let Err(e) = two_party_flow(CipherSuite::$suite) {
                    panic!("{}: {e}", CipherSuite::$suite);
                }
            }
        )*

        #[test]
        fn flow_tests_cover_all_suites() {
            let tested = [$(CipherSuite::$suite),*];
            assert_eq!(tested, CipherSuite::ALL);
        }
    };
}

flow_tests! {
    flow_0x0001 => X25519Aes128GcmSha256Ed25519,
    flow_0x0002 => P256Aes128GcmSha256P256,
    flow_0x0003 => X25519ChaCha20Poly1305Sha256Ed25519,
    flow_0x0007 => P384Aes256GcmSha384P384,
    flow_0x0042 => MlKem1024Aes256GcmSha384P384,
    flow_0x004d => XWingChaCha20Poly1305Sha256Ed25519,
    flow_0x004e => MlKem768X25519Aes256GcmSha384Ed25519,
    flow_0x004f => MlKem768X25519Aes128GcmSha256Ed25519,
    flow_0x0051 => MlKem768Aes256GcmSha384MlDsa65,
    flow_0x0052 => MlKem768X25519ChaCha20Poly1305Sha384MlDsa44,
}
