//! Bad input crafted with the MLS library directly: commits and messages a
//! correct peer never sends, each answered with its SPEC alert and the SPEC
//! outcome for the stored session.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::*;

use super::*;
use crate::alert::AlertDescription;
use crate::credentials::AcceptAnyPeer;
use crate::error::Error;

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000)
}

fn suite() -> CipherSuite {
    CipherSuite::X25519Aes128GcmSha256Ed25519
}

fn config(name: &str) -> ProfileConfig {
    ProfileConfig::new(
        vec![Arc::new(Identity::generate(name, suite()).unwrap())],
        Arc::new(AcceptAnyPeer),
        Arc::new(SessionStore::in_memory().unwrap()),
    )
}

fn live(e: &mut Engine) -> &mut Live {
    match &mut e.phase {
        Phase::Live(live) => live,
        _ => panic!("no live session"),
    }
}

fn sends(events: Vec<Event>) -> Vec<HandshakeMessage> {
    events
        .into_iter()
        .filter_map(|e| match e {
            Event::Send(m) => Some(m),
            _ => None,
        })
        .collect()
}

/// Delivers every message to `to`, returning what it sends back.
fn deliver(msgs: Vec<HandshakeMessage>, to: &mut Engine) -> Result<Vec<HandshakeMessage>, Error> {
    let mut out = Vec::new();
    for m in msgs {
        out.extend(sends(to.handle(m, now())?));
    }
    Ok(out)
}

/// An established pair (client, server), both Synced at epoch 1.
fn pair() -> (Engine, Engine) {
    let (mut c, ev) = Engine::client(config("client")).unwrap();
    let mut s = Engine::server(config("server"));
    let hello = deliver(sends(ev), &mut s).unwrap();
    assert!(deliver(hello, &mut c).unwrap().is_empty());
    assert!(!s.is_established());
    s.on_peer_application_data(now()).unwrap();
    assert!(c.is_established() && s.is_established());
    (c, s)
}

/// Runs `f` on `e`'s group in its group storage (not stored), to forge a message as that
/// party (its own state after forging does not matter).
fn forge(
    e: &mut Engine,
    f: impl FnOnce(&mut MlsGroup, &MlsProvider<'_>, &Identity) -> Result<Vec<u8>, Error>,
) -> Vec<u8> {
    let store = e.config.store.clone();
    let Live { session: a, db, .. } = live(e);
    let db = db.open(&store, &a.meta.id, a.meta.version).unwrap();
    let crypto = a.crypto.clone();
    f(&mut a.group, &MlsProvider::new(&crypto, db), &a.identity).unwrap()
}

fn stored(e: &Engine) -> usize {
    e.config.store.list().unwrap().len()
}

fn expect(r: Result<Vec<HandshakeMessage>, Error>, alert: AlertDescription) {
    assert_eq!(r.unwrap_err().alert(), Some(alert));
}

fn typed_commit(
    group: &mut MlsGroup,
    provider: &MlsProvider<'_>,
    id: &Identity,
    typ: TwoPartyMessageType,
    gce: bool,
    path: bool,
) -> Result<Vec<u8>, Error> {
    group
        .set_safe_aad(vec![SafeAadItem::new(
            group::TWO_PARTY_PROFILE,
            vec![typ.to_u8()],
        )])
        .map_err(mls_err)?;
    let ext = group.extensions().clone();
    let mut builder = group.commit_builder().force_self_update(path);
    if gce {
        builder = builder
            .propose_group_context_extensions(ext)
            .map_err(mls_err)?;
    }
    let bundle = builder
        .load_psks(provider.storage())
        .map_err(mls_err)?
        .build(provider.rand(), provider.crypto(), id.signer(), |_| true)
        .map_err(mls_err)?
        .stage_commit(provider)
        .map_err(mls_err)?;
    bundle.commit().tls_serialize_detached().map_err(mls_err)
}

fn cu(body: Vec<u8>) -> Vec<HandshakeMessage> {
    vec![HandshakeMessage::new(HandshakeType::ConnectionUpdate, body)]
}

#[test]
fn commit_with_proposals_is_illegal_parameter_and_deletes_session() {
    let (mut c, mut s) = pair();
    let body = forge(&mut c, |g, p, id| {
        typed_commit(g, p, id, TwoPartyMessageType::ConnectionUpdate, true, true)
    });
    expect(
        deliver(cu(body), &mut s),
        AlertDescription::IllegalParameter,
    );
    assert_eq!(s.state(), State::Closed);
    assert_eq!(
        stored(&s),
        0,
        "an authenticated violation deletes the session"
    );
}

#[test]
fn commit_without_update_path_is_illegal_parameter() {
    // RFC 9420 12.4 requires a path on a commit without proposals, so a
    // pathless commit must carry a proposal that needs none.
    let (mut c, mut s) = pair();
    let body = forge(&mut c, |g, p, id| {
        typed_commit(g, p, id, TwoPartyMessageType::ConnectionUpdate, true, false)
    });
    let r = deliver(cu(body), &mut s);
    let err = r.unwrap_err();
    assert_eq!(err.alert(), Some(AlertDescription::IllegalParameter));
    assert_eq!(stored(&s), 0);
}

#[test]
fn commit_with_wrong_safe_aad_type_is_illegal_parameter() {
    for typ in [
        TwoPartyMessageType::ResumptionResponse,
        TwoPartyMessageType::EpochKeyUpdate,
    ] {
        let (mut c, mut s) = pair();
        let body = forge(&mut c, |g, p, id| typed_commit(g, p, id, typ, false, true));
        expect(
            deliver(cu(body), &mut s),
            AlertDescription::IllegalParameter,
        );
    }
}

#[test]
fn commit_without_safe_aad_is_illegal_parameter() {
    let (mut c, mut s) = pair();
    let body = forge(&mut c, |g, p, id| {
        let bundle = g
            .commit_builder()
            .force_self_update(true)
            .load_psks(p.storage())
            .map_err(mls_err)?
            .build(p.rand(), p.crypto(), id.signer(), |_| true)
            .map_err(mls_err)?
            .stage_commit(p)
            .map_err(mls_err)?;
        bundle.commit().tls_serialize_detached().map_err(mls_err)
    });
    expect(
        deliver(cu(body), &mut s),
        AlertDescription::IllegalParameter,
    );
}

/// The server updates; the client applies the commit, and instead of its
/// EpochKeyUpdate a forged one (in the new epoch) reaches the server.
fn forged_epoch_key_update(typ: TwoPartyMessageType, epoch_delta: u64) -> Result<(), Error> {
    let (mut c, mut s) = pair();
    let update = sends(s.start_update(now()).unwrap());
    let _genuine = deliver(update, &mut c).unwrap();
    let body = forge(&mut c, |g, p, id| {
        g.set_safe_aad(vec![SafeAadItem::new(
            group::TWO_PARTY_PROFILE,
            vec![typ.to_u8()],
        )])
        .map_err(mls_err)?;
        let epoch = g.epoch().as_u64() + epoch_delta;
        g.create_message(p, id.signer(), &epoch.to_be_bytes())
            .map_err(mls_err)?
            .tls_serialize_detached()
            .map_err(mls_err)
    });
    let r = deliver(
        vec![HandshakeMessage::new(HandshakeType::EpochKeyUpdate, body)],
        &mut s,
    );
    assert_eq!(
        stored(&s),
        0,
        "an authenticated violation deletes the session"
    );
    r.map(|_| ())
}

#[test]
fn epoch_key_update_with_wrong_epoch_is_illegal_parameter() {
    let err = forged_epoch_key_update(TwoPartyMessageType::EpochKeyUpdate, 5).unwrap_err();
    assert_eq!(err.alert(), Some(AlertDescription::IllegalParameter));
}

#[test]
fn epoch_key_update_with_wrong_type_is_illegal_parameter() {
    let err = forged_epoch_key_update(TwoPartyMessageType::ConnectionUpdate, 0).unwrap_err();
    assert_eq!(err.alert(), Some(AlertDescription::IllegalParameter));
}

#[test]
fn epoch_key_update_forged_without_new_keys_is_decrypt_error_and_kept() {
    let (mut c, mut s) = pair();
    let _update = sends(s.start_update(now()).unwrap());
    // The client never saw the commit: its message is in the old epoch.
    let body = forge(&mut c, |g, p, id| {
        g.set_safe_aad(vec![SafeAadItem::new(group::TWO_PARTY_PROFILE, vec![4])])
            .map_err(mls_err)?;
        g.create_message(p, id.signer(), &2u64.to_be_bytes())
            .map_err(mls_err)?
            .tls_serialize_detached()
            .map_err(mls_err)
    });
    let r = deliver(
        vec![HandshakeMessage::new(HandshakeType::EpochKeyUpdate, body)],
        &mut s,
    );
    expect(r, AlertDescription::DecryptError);
    assert_eq!(stored(&s), 1);
}

#[test]
fn key_package_without_components_is_handshake_failure() {
    let id = Identity::generate("client", suite()).unwrap();
    let crypto = group::backend(suite()).unwrap();
    let db = GroupStorage::default();
    let provider = MlsProvider::new(&crypto, &db);
    let kp = KeyPackage::builder()
        .leaf_node_capabilities(group::capabilities(suite()))
        .build(suite().mls(), &provider, id.signer(), id.credential())
        .unwrap();
    let body = MlsMessageOut::from(kp.key_package().clone())
        .tls_serialize_detached()
        .unwrap();
    let mut s = Engine::server(config("server"));
    let r = deliver(
        vec![HandshakeMessage::new(HandshakeType::ClientHello, body)],
        &mut s,
    );
    expect(r, AlertDescription::HandshakeFailure);
}

#[test]
fn garbage_bodies_are_decode_error() {
    let mut s = Engine::server(config("server"));
    let r = deliver(
        vec![HandshakeMessage::new(
            HandshakeType::ClientHello,
            vec![0, 1, 2],
        )],
        &mut s,
    );
    expect(r, AlertDescription::DecodeError);
    let (mut c, _) = Engine::client(config("client")).unwrap();
    let r = deliver(
        vec![HandshakeMessage::new(
            HandshakeType::ServerHello,
            vec![9; 40],
        )],
        &mut c,
    );
    expect(r, AlertDescription::DecodeError);
}

/// Engines in each reachable state, with the message types it accepts.
fn engines_in_every_state() -> Vec<(Engine, &'static [HandshakeType])> {
    use HandshakeType as H;
    let mut v: Vec<(Engine, &'static [HandshakeType])> = Vec::new();
    v.push((
        Engine::server(config("server")),
        &[H::ClientHello, H::ResumptionRequest],
    ));
    v.push((
        Engine::client(config("client")).unwrap().0,
        &[H::ServerHello],
    ));
    let (c, s) = pair();
    v.push((c, &[H::ConnectionUpdate]));
    v.push((s, &[H::ConnectionUpdate]));
    let (mut c, _) = pair();
    c.start_update(now()).unwrap();
    v.push((c, &[H::ConnectionUpdate, H::EpochKeyUpdate]));
    let (c, _) = pair();
    let id = c.session_id().unwrap().clone();
    let (r, _, _) = Engine::resume(c.config.clone(), &id, now()).unwrap();
    v.push((r, &[H::ResumptionResponse]));
    v
}

#[test]
fn every_message_in_every_state_where_it_is_not_allowed_is_unexpected() {
    let all = [
        HandshakeType::ClientHello,
        HandshakeType::ServerHello,
        HandshakeType::ConnectionUpdate,
        HandshakeType::EpochKeyUpdate,
        HandshakeType::ResumptionRequest,
        HandshakeType::ResumptionResponse,
    ];
    let mut checked = 0;
    for typ in all {
        for (mut e, allowed) in engines_in_every_state() {
            if allowed.contains(&typ) {
                continue;
            }
            let state = e.state();
            let stored_before = stored(&e);
            let err = e
                .handle(HandshakeMessage::new(typ, vec![1; 8]), now())
                .unwrap_err();
            assert_eq!(
                err.alert(),
                Some(AlertDescription::UnexpectedMessage),
                "{typ:?} in {state:?}"
            );
            assert_eq!(stored(&e), stored_before, "state kept");
            checked += 1;
        }
    }
    assert_eq!(checked, 6 * 6 - 8);
}

#[test]
fn simultaneous_resumption_initial_initiator_wins() {
    let (c, s) = pair();
    let id = c.session_id().unwrap().clone();
    let (mut c_out, c_req, _) = Engine::resume(c.config.clone(), &id, now()).unwrap();
    let (_s_out, s_req, _) = Engine::resume(s.config.clone(), &id, now()).unwrap();
    // The initial initiator refuses the responder's request...
    let mut c_in = Engine::server(c.config.clone());
    let err = deliver(sends(s_req), &mut c_in).unwrap_err();
    assert_eq!(err, Error::ResumptionRefused);
    assert_eq!(err.alert(), Some(AlertDescription::CloseNotify));
    // ...and the initial responder drops its own and answers.
    let mut s_in = Engine::server(s.config.clone());
    let response = deliver(sends(c_req), &mut s_in).unwrap();
    let confirm = deliver(response, &mut c_out).unwrap();
    assert!(deliver(confirm, &mut s_in).unwrap().is_empty());
    assert_eq!(c_out.state(), State::Synced);
    assert_eq!(s_in.state(), State::Synced);
    assert_eq!(c_out.epoch(), s_in.epoch());
    assert_eq!(
        c_out.export_secret("x", b"", 32).unwrap(),
        s_in.export_secret("x", b"", 32).unwrap()
    );
}

#[test]
fn expired_and_deleted_sessions_are_gone() {
    let (c, _s) = pair();
    let store = c.config.store.clone();
    let info = store.list().unwrap();
    assert_eq!(info.len(), 1);
    assert_eq!(
        store
            .sweep_expired(Duration::from_secs(3600), now())
            .unwrap(),
        0
    );
    let later = now() + Duration::from_secs(7200);
    assert_eq!(
        store
            .sweep_expired(Duration::from_secs(3600), later)
            .unwrap(),
        1
    );
    assert!(store.list().unwrap().is_empty());
    let id = c.session_id().unwrap().clone();
    let err = Engine::resume(c.config.clone(), &id, now()).unwrap_err();
    assert_eq!(err.alert(), Some(AlertDescription::HandshakeFailure));
    assert!(!store.delete(&id).unwrap());
}

#[test]
fn group_snapshots_restore_exactly_and_damage_is_a_store_error() {
    use crate::store::snapshot::GroupStorage;
    let (mut c, _s) = pair();
    let id = c.session_id().unwrap().clone();
    let store = c.config.store.clone();
    let meta = live(&mut c).session.meta.clone();
    let db = &mut live(&mut c).db;
    let snap = db
        .open(&store, &id, meta.version)
        .unwrap()
        .snapshot()
        .unwrap();
    let storage = GroupStorage::restore(&snap).unwrap();
    let group = group::load_group(&storage, &id).unwrap().unwrap();
    assert_eq!(group.epoch(), live(&mut c).session.group.epoch());
    assert_eq!(
        storage.snapshot().unwrap(),
        snap,
        "restore then snapshot is the identity"
    );

    // Every truncation fails cleanly, except one between entries (a
    // valid, shorter snapshot).
    let boundaries = entry_boundaries(&snap);
    for cut in 0..snap.len() {
        let r = GroupStorage::restore(&snap[..cut]);
        assert_eq!(r.is_ok(), boundaries.contains(&cut), "cut at {cut}");
        if let Err(e) = r {
            assert!(matches!(e, Error::Store(_)), "cut at {cut}: {e:?}");
        }
    }
    // Entries out of order, repeated, with an empty key, or trailing
    // garbage are refused.
    let entry = |key: &[u8], value: &[u8]| {
        let mut e = (key.len() as u16).to_be_bytes().to_vec();
        e.extend_from_slice(key);
        e.extend_from_slice(&(value.len() as u32).to_be_bytes());
        e.extend_from_slice(value);
        e
    };
    let with = |entries: &[Vec<u8>]| {
        let mut s = b"MLSTLS-GROUP-2".to_vec();
        for e in entries {
            s.extend_from_slice(e);
        }
        s
    };
    assert!(GroupStorage::restore(&with(&[entry(b"a", b"1"), entry(b"b", b"2")])).is_ok());
    for bad in [
        with(&[entry(b"b", b"1"), entry(b"a", b"2")]),
        with(&[entry(b"a", b"1"), entry(b"a", b"2")]),
        with(&[entry(b"", b"1")]),
        with(&[entry(b"a", b"1"), vec![0]]),
    ] {
        assert!(
            matches!(GroupStorage::restore(&bad), Err(Error::Store(_))),
            "{bad:?}"
        );
    }
    let too_many: Vec<Vec<u8>> = (0..=crate::store::snapshot::MAX_ENTRIES as u32)
        .map(|i| entry(&i.to_be_bytes(), b""))
        .collect();
    assert!(matches!(
        GroupStorage::restore(&with(&too_many)),
        Err(Error::Store(ref m)) if m.contains("too many")
    ));
    // Format 1 (SQLite rows) is a session to forget, not damage.
    assert!(matches!(
        GroupStorage::restore(b"MLSTLS-GROUP-1\0\0\0\x01x"),
        Err(Error::UnknownSession(_))
    ));
}

/// The offsets where a snapshot's entries start or end (a valid, shorter
/// snapshot when cut there).
fn entry_boundaries(snap: &[u8]) -> Vec<usize> {
    let mut at = 14;
    let mut out = vec![at];
    while at < snap.len() {
        let key_len = u16::from_be_bytes([snap[at], snap[at + 1]]) as usize;
        at += 2 + key_len;
        let value_len = u32::from_be_bytes(snap[at..at + 4].try_into().unwrap()) as usize;
        at += 4 + value_len;
        out.push(at);
    }
    out
}

/// Review (e): a broken invariant (Awaiting EpochKeyUpdate without a
/// pending commit in the group) is an internal error that closes with
/// `internal_error`, not caller misuse that sends no alert.
#[test]
fn broken_invariant_is_internal_error_with_an_alert() {
    let (mut c, _s) = pair();
    live(&mut c).session.meta.state = StoredState::AwaitingEpochKeyUpdate(PendingCommit {
        message: vec![1],
        typ: TwoPartyMessageType::ConnectionUpdate,
    });
    assert_eq!(c.state(), State::AwaitingEpochKeyUpdate);
    let eku = vec![HandshakeMessage::new(
        HandshakeType::EpochKeyUpdate,
        vec![0; 8],
    )];
    let err = deliver(eku, &mut c).unwrap_err();
    assert!(matches!(err, Error::Internal(_)), "{err:?}");
    assert_eq!(err.alert(), Some(AlertDescription::InternalError));
    assert_eq!(c.state(), State::Closed);
    assert_eq!(stored(&c), 1, "a local bug deletes nothing");
}
