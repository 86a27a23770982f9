//! The two-party profile engine through the simulated link: initial
//! handshake, key updates, collisions, resumption in every classification,
//! bad input.

mod common;

use std::sync::Arc;

use common::*;
use mls_tls::alert::AlertDescription;
use mls_tls::credentials::{AcceptAnyPeer, Identity, PinnedKeys};
use mls_tls::crypto::CipherSuite;
use mls_tls::message::{HandshakeMessage, HandshakeType};
use mls_tls::profile::engine::{Engine, Event, ProfileConfig, State};
use mls_tls::store::SessionStore;

#[test]
fn handshake_establishes_both_sides_classical_and_pq() {
    for suite in [
        CipherSuite::from_code_point(0x0001).unwrap(),
        CipherSuite::DEFAULT,
    ] {
        let mut sim = Sim::new(suite);
        sim.run().unwrap();
        // The responder is provisional until the initiator's first record,
        // which the initiator's engine asks for once, on joining (SPEC 6).
        assert!(sim.client.established);
        assert_eq!(sim.client.join_confirmations, 1);
        assert_eq!(sim.server.join_confirmations, 0);
        assert!(!sim.server.established);
        assert!(!sim.server.engine.is_established());
        assert!(sim.server.store.list().unwrap().is_empty());
        sim.data_both();
        sim.run().unwrap();
        assert!(sim.server.established);
        sim.assert_in_sync();
        assert_eq!(sim.client.engine.epoch(), Some(1));
        assert_eq!(sim.client.store.list().unwrap().len(), 1);
        assert_eq!(sim.server.store.list().unwrap().len(), 1);
        assert_eq!(
            sim.client.engine.session_id(),
            sim.server.engine.session_id()
        );
        assert_eq!(sim.client.engine.peer_identity().unwrap().name, b"server");
        assert_eq!(sim.server.engine.peer_identity().unwrap().name, b"client");
    }
}

/// Every suite (0x0007 runs on MLS-TLS's own P-384 HPKE) through the whole
/// life of a session: handshake, an update from each side, a resumption
/// with early data, and an update after it.
#[test]
fn handshake_update_resume_every_suite() {
    for suite in CipherSuite::ALL {
        let mut sim = Sim::new(suite);
        sim.handshake();
        sim.assert_in_sync();
        for by_client in [true, false] {
            sim.update(by_client);
            sim.run().unwrap();
            sim.data_both();
            sim.run().unwrap();
            sim.assert_in_sync();
        }
        assert_eq!(sim.client.engine.epoch(), Some(3), "{suite}");
        assert!(sim.cut_and_resume(true), "{suite}");
        sim.early_data(true);
        sim.settle();
        assert_eq!(sim.server.early_allowed, Some(true), "{suite}");
        // Both ends report the resumption complete: the responder when the
        // EpochKeyUpdate validated.
        assert!(sim.client.established && sim.server.established, "{suite}");
        assert!(sim.server.engine.is_established(), "{suite}");
        assert_eq!(sim.client.engine.epoch(), Some(5), "{suite}");
        sim.update(false);
        sim.run().unwrap();
        sim.data_both();
        sim.run().unwrap();
        sim.assert_in_sync();
        assert_eq!(sim.server.engine.epoch(), Some(6), "{suite}");
    }
}

#[test]
fn update_by_initiator_then_responder() {
    let mut sim = Sim::new(CipherSuite::from_code_point(0x0001).unwrap());
    sim.handshake();
    sim.update(true);
    assert_eq!(sim.client.engine.state(), State::AwaitingEpochKeyUpdate);
    sim.run().unwrap();
    sim.data_both();
    sim.run().unwrap();
    sim.assert_in_sync();
    assert_eq!(sim.client.engine.epoch(), Some(2));
    sim.update(false);
    sim.run().unwrap();
    sim.data_both();
    sim.run().unwrap();
    sim.assert_in_sync();
    assert_eq!(sim.server.engine.epoch(), Some(3));
}

#[test]
fn update_collision_current_initiator_wins() {
    let mut sim = Sim::new(CipherSuite::from_code_point(0x0001).unwrap());
    sim.handshake();
    sim.update(true);
    sim.update(false);
    sim.run().unwrap();
    sim.data_both();
    sim.run().unwrap();
    sim.assert_in_sync();
    assert_eq!(sim.client.engine.epoch(), Some(2));
}

#[test]
fn message_in_wrong_state_is_unexpected() {
    let mut sim = Sim::new(CipherSuite::from_code_point(0x0001).unwrap());
    let bogus = HandshakeMessage::new(HandshakeType::ServerHello, vec![1, 2, 3]);
    let err = sim.server.engine.handle(bogus, sim.now).unwrap_err();
    assert_eq!(err.alert(), Some(AlertDescription::UnexpectedMessage));
    assert_eq!(sim.server.engine.state(), State::Closed);
}

#[test]
fn rejected_key_package_is_bad_certificate() {
    let suite = CipherSuite::from_code_point(0x0001).unwrap();
    let c = config(
        Arc::new(Identity::generate("client", suite).unwrap()),
        Arc::new(AcceptAnyPeer),
    );
    let s = config(
        Arc::new(Identity::generate("server", suite).unwrap()),
        Arc::new(PinnedKeys::new([vec![1, 2, 3]])),
    );
    let mut sim = Sim::with_configs(c, s);
    let err = sim.run().unwrap_err();
    assert_eq!(err.alert(), Some(AlertDescription::BadCertificate));
    assert!(sim.server.store.list().unwrap().is_empty());
}

#[test]
fn tampered_commit_is_decrypt_error_and_session_kept() {
    let mut sim = Sim::new(CipherSuite::from_code_point(0x0001).unwrap());
    sim.handshake();
    sim.update(true);
    let (p, item) = sim.to_server.pop_front().unwrap();
    let Item::Handshake(mut m) = item else {
        panic!()
    };
    let n = m.body.len();
    m.body[n - 5] ^= 1;
    sim.to_server.push_back((p, Item::Handshake(m)));
    let err = sim.run().unwrap_err();
    assert_eq!(err.alert(), Some(AlertDescription::DecryptError));
    assert_eq!(sim.server.store.list().unwrap().len(), 1);
}

#[test]
fn resume_by_initiator_with_early_data() {
    let mut sim = Sim::new(classical());
    sim.handshake();
    assert!(sim.cut_and_resume(true));
    sim.early_data(true);
    sim.settle();
    assert_eq!(sim.server.early_allowed, Some(true));
    assert_eq!(sim.client.engine.epoch(), Some(3));
    assert_eq!(sim.client.engine.side(), mls_tls::schedule::Side::Client);
}

#[test]
fn resume_by_responder_swaps_current_roles() {
    let mut sim = Sim::new(CipherSuite::DEFAULT);
    sim.handshake();
    assert!(sim.cut_and_resume(false));
    sim.early_data(false);
    sim.settle();
    assert_eq!(sim.client.early_allowed, Some(true));
    assert_eq!(sim.server.engine.side(), mls_tls::schedule::Side::Client);
    // Updates keep working with the new current roles.
    sim.update(true);
    sim.settle();
    assert_eq!(sim.client.engine.epoch(), Some(4));
}

/// The other side's early-data flag after a resumption by `by_client`.
fn responder_early(sim: &Sim, by_client: bool) -> Option<bool> {
    if by_client {
        sim.server.early_allowed
    } else {
        sim.client.early_allowed
    }
}

#[test]
fn resume_with_undelivered_update_resends_pending_commit() {
    for by_client in [true, false] {
        let mut sim = Sim::new(classical());
        sim.handshake();
        sim.update(by_client);
        // The ConnectionUpdate is lost: the pending commit goes again,
        // keeping its type, and carries no early data.
        assert!(!sim.cut_and_resume(by_client));
        sim.settle();
        assert_eq!(responder_early(&sim, by_client), Some(true));
        assert_eq!(sim.client.engine.epoch(), Some(3));
    }
}

#[test]
fn resume_after_lost_epoch_key_update_is_a_retransmission() {
    for by_client in [true, false] {
        let mut sim = Sim::new(classical());
        sim.handshake();
        sim.update(by_client);
        // The peer applies the update; its EpochKeyUpdate is lost.
        assert!(sim.step(by_client).unwrap());
        assert!(!sim.cut_and_resume(by_client));
        sim.settle();
        // Rule 1: the peer recognised the commit it already applied.
        assert_eq!(responder_early(&sim, by_client), Some(false));
        assert_eq!(sim.client.engine.epoch(), Some(3));
    }
}

#[test]
fn resume_confirms_peers_unconfirmed_commit() {
    for by_client in [true, false] {
        let mut sim = Sim::new(classical());
        sim.handshake();
        sim.update(!by_client);
        // The resumer applies the peer's update; the confirmation is lost.
        assert!(sim.step(!by_client).unwrap());
        assert!(sim.cut_and_resume(by_client));
        sim.early_data(by_client);
        // Rule 2: the request builds on the peer's pending commit.
        sim.settle();
        assert_eq!(responder_early(&sim, by_client), Some(true));
        assert_eq!(sim.client.engine.epoch(), Some(4));
    }
}

#[test]
fn resume_retransmits_lost_resumption_request() {
    for by_client in [true, false] {
        let mut sim = Sim::new(classical());
        sim.handshake();
        assert!(sim.cut_and_resume(by_client));
        // The request is lost; the next attempt resends the same commit
        // (Figure 2, transition 6) and so carries no early data.
        assert!(!sim.cut_and_resume(by_client));
        sim.settle();
        assert_eq!(sim.client.engine.epoch(), Some(3));
    }
}

#[test]
fn resume_after_lost_resumption_response_is_a_retransmission() {
    for by_client in [true, false] {
        let mut sim = Sim::new(classical());
        sim.handshake();
        assert!(sim.cut_and_resume(by_client));
        // The peer applies the request; its response is lost.
        assert!(sim.step(by_client).unwrap());
        assert!(!sim.cut_and_resume(by_client));
        sim.settle();
        // Rule 1, and the peer sends its unconfirmed response commit again.
        assert_eq!(responder_early(&sim, by_client), Some(false));
        assert_eq!(sim.client.engine.epoch(), Some(3));
    }
}

#[test]
fn resumption_request_while_awaiting_response_initial_responder_yields() {
    // The initial responder resumes; its request is lost; the initial
    // initiator then resumes and the responder, Awaiting ResumptionResponse,
    // drops its own commit and applies the initiator's (rule 3).
    let mut sim = Sim::new(classical());
    sim.handshake();
    assert!(sim.cut_and_resume(false));
    assert!(sim.cut_and_resume(true));
    sim.early_data(true);
    sim.settle();
    // The responder already sent early data under its own dropped commit's
    // epoch 2, so the key-reuse invariant sends its response in plaintext:
    // SPEC 8 then delivers no early data on this connection (the client
    // reports it as not accepted and resends it).
    assert_eq!(sim.server.early_allowed, Some(false));
    assert_eq!(sim.client.engine.epoch(), Some(3));
}

/// SPEC 8: early data is delivered only with a response encrypted under
/// epoch E's server keys, and `Resumed` says so exactly then.
#[test]
fn early_data_is_allowed_exactly_with_an_encrypted_response() {
    let mut sim = Sim::new(classical());
    sim.handshake();
    assert!(sim.cut_and_resume(true));
    let Some((_, Item::Handshake(request))) = sim.to_server.pop_front() else {
        panic!("a request")
    };
    let events = sim.server.engine.handle(request, sim.now).unwrap();
    let mut encrypted = false;
    let mut allowed = None;
    for e in &events {
        match e {
            Event::InstallSendKeys(_) => encrypted = true,
            Event::Resumed { early_data_allowed } => allowed = Some(*early_data_allowed),
            _ => {}
        }
    }
    assert!(encrypted);
    assert_eq!(allowed, Some(true));
}

/// SPEC 8: "A replayed request can never close a live connection". The
/// genuine resumption is answered; before its EpochKeyUpdate arrives, a
/// replay of its request reaches the server on another connection. The
/// replay is answered under rule 1 (the pending response resent) without
/// storing or claiming anything, so the genuine connection completes.
#[test]
fn replay_during_the_genuine_resumption_does_not_supersede_it() {
    let mut sim = Sim::new(classical());
    sim.handshake();
    assert!(sim.cut_and_resume(true));
    sim.early_data(true);
    let Some((_, Item::Handshake(request))) = sim.to_server.front() else {
        panic!("a request")
    };
    let replay = request.clone();
    // The genuine request is answered (rule 3).
    assert!(sim.step(true).unwrap());
    // The replay, on a second server connection of the same process.
    let mut attacker_target = Engine::server(sim.server.config.clone());
    let events = attacker_target.handle(replay, sim.now).unwrap();
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Resumed {
            early_data_allowed: false
        }
    )));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::InstallSendKeys(_))),
        "a rule-1 response goes in plaintext"
    );
    assert!(!sim.server.engine.is_superseded());
    // The genuine connection completes and data flows.
    sim.settle();
    assert_eq!(sim.server.early_allowed, Some(true));
    assert!(!sim.server.engine.is_superseded());
    sim.update(true);
    sim.settle();
    sim.update(false);
    sim.settle();
}

/// A genuine retransmission answered under rule 1 on a new connection
/// claims the session once its EpochKeyUpdate validates.
#[test]
fn rule_1_claims_the_session_once_confirmed() {
    let mut sim = Sim::new(classical());
    sim.handshake();
    assert!(sim.cut_and_resume(true));
    // The server applies the request; its response is lost.
    assert!(sim.step(true).unwrap());
    let older = std::mem::replace(
        &mut sim.server.engine,
        Engine::server(sim.server.config.clone()),
    );
    assert!(!sim.cut_and_resume(true));
    // Rule 1 answered; the older connection is not superseded yet.
    assert!(sim.step(true).unwrap());
    assert!(!older.is_superseded());
    sim.settle();
    assert!(older.is_superseded(), "superseded once the EKU validated");
    assert!(!sim.server.engine.is_superseded());
}

#[test]
fn resumption_request_while_awaiting_response_initial_initiator_refuses() {
    let mut sim = Sim::new(classical());
    sim.handshake();
    assert!(sim.cut_and_resume(true));
    assert!(sim.cut_and_resume(false));
    let err = sim.run().unwrap_err();
    assert_eq!(err, mls_tls::error::Error::ResumptionRefused);
    // The initial initiator resumes again and the session continues.
    assert!(!sim.cut_and_resume(true));
    sim.settle();
}

#[test]
fn replayed_resumption_request_is_rejected_and_session_kept() {
    let mut sim = Sim::new(classical());
    sim.handshake();
    sim.cut_and_resume(true);
    let (_, Item::Handshake(request)) = sim
        .to_server
        .front()
        .map(|(p, i)| {
            (
                p.clone(),
                match i {
                    Item::Handshake(m) => Item::Handshake(m.clone()),
                    Item::Data => Item::Data,
                },
            )
        })
        .unwrap()
    else {
        panic!()
    };
    sim.settle();
    // The recorded first flight replayed on a new connection.
    let mut attacker_target = Engine::server(sim.server.config.clone());
    let err = attacker_target.handle(request, sim.now).unwrap_err();
    assert_eq!(err.alert(), Some(AlertDescription::DecryptError));
    assert_eq!(sim.server.store.list().unwrap().len(), 1);
    // The genuine client still resumes.
    assert!(sim.cut_and_resume(true));
    sim.settle();
}

#[test]
fn resumption_of_unknown_session_is_handshake_failure() {
    let mut a = Sim::new(classical());
    a.handshake();
    a.cut_and_resume(true);
    let Some((_, Item::Handshake(request))) = a.to_server.pop_front() else {
        panic!()
    };
    let b = Sim::new(classical());
    let mut stranger = Engine::server(b.server.config.clone());
    let err = stranger.handle(request, a.now).unwrap_err();
    assert_eq!(err.alert(), Some(AlertDescription::HandshakeFailure));
}

#[test]
fn sessions_survive_a_store_reopen() {
    let dir = std::env::temp_dir().join(format!("mlstls-engine-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let suite = classical();
    let cid = Arc::new(Identity::generate("client", suite).unwrap());
    let sid = Arc::new(Identity::generate("server", suite).unwrap());
    let file_config = |id: &Arc<Identity>, name: &str| {
        ProfileConfig::new(
            vec![id.clone()],
            Arc::new(AcceptAnyPeer),
            Arc::new(SessionStore::open(dir.join(name)).unwrap()),
        )
    };
    let mut sim = Sim::with_configs(file_config(&cid, "c.db"), file_config(&sid, "s.db"));
    sim.handshake();
    sim.update(true);
    sim.settle();
    // "Restart": both sides reopen their stores from disk.
    sim.client.config = file_config(&cid, "c.db");
    sim.server.config = file_config(&sid, "s.db");
    assert_eq!(sim.client.config.store.list().unwrap().len(), 1);
    assert!(sim.cut_and_resume(true));
    sim.settle();
    assert_eq!(sim.client.engine.epoch(), Some(4));
    let _ = std::fs::remove_dir_all(&dir);
}
