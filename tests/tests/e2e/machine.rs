//! The session machine on its own: handshake steps, heartbeats, deadlines and the invalid-frame
//! count of real protocol definitions, driven step by step with made-up times. No sockets, no
//! sleeps: each test hands the machine an event and a time and checks what it returns.

use std::time::Duration;

use protolink::__private::{Action, Beat, Machine, Resume};
use protolink::{LinkConfig, Message};
use protolink_protocols::clusterio as cl;
use protolink_protocols::litecord as lc;
use protolink_protocols::skynet as sk;
use protolink_protocols::socketcluster as sc;
use tokio::time::Instant;

fn fresh(at: Instant) -> Resume {
    Resume {
        greeted: 0,
        next_seq: 1,
        started: at,
    }
}

/// The interval a Litecord server announces in its HELLO.
fn hello_interval(ms: u64) -> impl Fn(protolink::Tag, &'static str) -> Option<u64> {
    move |tag, field| (tag == lc::Hello::TAG && field == "hb_interval").then_some(ms)
}

fn closes(action: Option<Action>) -> Option<u16> {
    match action {
        Some(Action::Close { code, .. }) => Some(code),
        _ => None,
    }
}

#[test]
fn a_litecord_server_greets_and_times_out_a_silent_client() {
    let t0 = Instant::now();
    let config = LinkConfig::default();
    let mut server = Machine::<lc::Server>::new(&config, fresh(t0), hello_interval(1000));
    assert_eq!(server.start(t0), [Action::Send(lc::Hello::TAG)]);
    // The handshake deadline comes first (the heartbeat watchdog is further off).
    let deadline = t0 + config.handshake_timeout;
    assert!(server.deadline().is_some_and(|at| at <= deadline));
    assert_eq!(server.on_time(t0 + Duration::from_millis(1)), None);
    // Nothing from the client: the watchdog (1000 + 1000 ms grace) closes with 4003 first.
    assert_eq!(
        closes(server.on_time(t0 + Duration::from_millis(2000))),
        Some(4003)
    );
}

#[test]
fn a_litecord_handshake_then_heartbeats_keep_the_link_up() {
    let t0 = Instant::now();
    let config = LinkConfig::default();
    let mut server = Machine::<lc::Server>::new(&config, fresh(t0), hello_interval(1000));
    let mut client = Machine::<lc::Client>::new(&config, fresh(t0), |_, _| None);
    assert_eq!(server.start(t0), [Action::Send(lc::Hello::TAG)]);
    // The client waits for HELLO.
    assert_eq!(client.start(t0), []);
    let step = client
        .peer_step(lc::Hello::TAG)
        .expect("HELLO is the client's next step");
    assert!(step.auth_field.is_none());
    assert!(client.peer_step(lc::HelloAck::TAG).is_none());
    // HELLO carries the interval: the client answers and is ready, and pings every 1000 ms.
    let t1 = t0 + Duration::from_millis(5);
    client.on_traffic(t1);
    assert_eq!(
        client.peer_stepped(Some(1000), t1),
        [Action::Send(lc::HelloAck::TAG), Action::Ready]
    );
    assert_eq!(client.deadline(), Some(t1 + Duration::from_millis(1000)));
    assert_eq!(client.on_time(t1 + Duration::from_millis(999)), None);
    assert_eq!(
        client.on_time(t1 + Duration::from_millis(1000)),
        Some(Action::Beat(Beat::Message(lc::Heartbeat::TAG)))
    );
    // The server takes HELLO_ACK (its auth step) and is ready.
    let t2 = t1 + Duration::from_millis(5);
    let step = server
        .peer_step(lc::HelloAck::TAG)
        .expect("HELLO_ACK is awaited");
    assert_eq!(
        (step.auth_field, step.failure),
        (Some("password"), Some(4001))
    );
    server.on_traffic(t2);
    assert_eq!(server.peer_stepped(None, t2), [Action::Ready]);
    // Every heartbeat is answered and moves the watchdog on.
    assert_eq!(
        server.message_beat(lc::Heartbeat::TAG, true),
        Some(Some(Action::Beat(Beat::Message(lc::HeartbeatAck::TAG))))
    );
    for beat in 1..=5u64 {
        let at = t2 + Duration::from_millis(1000 * beat);
        server.on_traffic(at);
        assert_eq!(server.on_time(at), None, "beat {beat}");
    }
    // Then silence: closed 2000 ms after the last beat, not before.
    let last = t2 + Duration::from_millis(5000);
    let mut now = last;
    let mut closed = None;
    while closed.is_none() && now < last + Duration::from_secs(10) {
        let next = server.deadline().expect("the watchdog stays armed");
        assert!(next >= now);
        now = next;
        closed = closes(server.on_time(now));
    }
    assert_eq!(closed, Some(4003));
    assert_eq!(now, last + Duration::from_millis(2000));
}

#[test]
fn a_message_before_the_handshake_and_too_many_invalid_frames_close() {
    let t0 = Instant::now();
    let config = LinkConfig::default();
    assert_eq!(
        closes(Some(Machine::<lc::Server>::before_handshake())),
        Some(4002)
    );
    let mut server = Machine::<lc::Server>::new(&config, fresh(t0), hello_interval(1000));
    for _ in 0..config.max_invalid {
        assert_eq!(server.count_invalid(), None);
    }
    assert_eq!(closes(server.count_invalid()), Some(1008));
}

#[test]
fn a_skynet_server_is_ready_at_once_and_bounds_the_first_frame() {
    let t0 = Instant::now();
    let config = LinkConfig {
        first_frame_timeout: Some(Duration::from_secs(30)),
        ..LinkConfig::default()
    };
    let mut server = Machine::<sk::Server>::new(&config, fresh(t0), |_, _| None);
    assert_eq!(server.start(t0), [Action::Ready]);
    assert_eq!(server.deadline(), Some(t0 + Duration::from_secs(30)));
    assert_eq!(
        closes(server.on_time(t0 + Duration::from_secs(30))),
        Some(1008)
    );

    // A frame in time lifts the deadline; Skynet has no heartbeat, so nothing is left to time.
    let mut talker = Machine::<sk::Server>::new(&config, fresh(t0), |_, _| None);
    assert_eq!(talker.start(t0), [Action::Ready]);
    talker.on_traffic(t0 + Duration::from_secs(1));
    assert_eq!(talker.deadline(), None);
    // The client side never bounds its first frame: the server may stay quiet.
    let mut client = Machine::<sk::Client>::new(&config, fresh(t0), |_, _| None);
    assert_eq!(client.start(t0), [Action::Ready]);
    assert_eq!(client.deadline(), None);
}

#[test]
fn a_socketcluster_client_requests_its_handshake_and_answers_text_pings() {
    let t0 = Instant::now();
    let config = LinkConfig {
        heartbeat_variant: Some("2".into()),
        ..LinkConfig::default()
    };
    let mut client = Machine::<sc::Client>::new(&config, fresh(t0), |_, _| None);
    assert_eq!(client.start(t0), [Action::Request(sc::Handshake::TAG)]);
    assert!(client.awaiting_handshake_reply());
    client.handshake_replied();
    assert!(!client.awaiting_handshake_reply());
    // Variant 2: the server pings "", the client answers "".
    assert_eq!(
        client.text_beat(""),
        Some(Some(Action::Beat(Beat::Text(""))))
    );
    assert_eq!(client.text_beat("#1"), None);
    // The client watches the server: 20 s without a frame closes with 4000.
    assert_eq!(
        closes(client.on_time(t0 + Duration::from_secs(20))),
        Some(4000)
    );

    // The server: 4005 when no #handshake comes within the definition's 10 s.
    let mut server = Machine::<sc::Server>::new(&config, fresh(t0), |_, _| None);
    assert_eq!(server.start(t0), []);
    assert_eq!(server.deadline(), Some(t0 + Duration::from_secs(10)));
    assert_eq!(
        closes(server.on_time(t0 + Duration::from_secs(10))),
        Some(4005)
    );
}

#[test]
fn a_greeted_clusterio_link_does_not_greet_again() {
    let t0 = Instant::now();
    let config = LinkConfig::default();
    // The routes wrote `hello` before the connection chose the control link.
    let greeted = Resume {
        greeted: 1,
        next_seq: 2,
        started: t0,
    };
    let mut master = Machine::<cl::MasterWithControl>::new(&config, greeted, |_, _| None);
    assert_eq!(master.start(t0), []);
    assert!(master.peer_step(cl::RegisterControl::TAG).is_some());
    assert!(master.peer_step(cl::RegisterSlave::TAG).is_none());
    assert_eq!(
        master.peer_stepped(None, t0),
        [Action::Send(cl::Ready::TAG), Action::Ready]
    );
    // Without the greeting, the same link sends `hello` itself.
    let mut fresh_master = Machine::<cl::MasterWithControl>::new(&config, fresh(t0), |_, _| None);
    assert_eq!(fresh_master.start(t0), [Action::Send(cl::Hello::TAG)]);
}
