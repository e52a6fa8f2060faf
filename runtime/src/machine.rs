//! The session machine: a link's handshake steps, its heartbeat, the deadlines of the handshake
//! and of the first frame, and the count of frames that could not be used, as a state machine
//! without I/O. It takes what happened (a frame came, a handshake message of the peer, the time)
//! and returns what to do ([`Action`]s: a handshake message or a beat to send, the handshake
//! done, a close); the link's driver reads the socket, keeps one timer at
//! [`Machine::deadline`], and carries the actions out. So the protocol's session rules are
//! tested step by step, with made-up times, without sockets or sleeps (`tests/tests/e2e/machine.rs`;
//! generated code and those tests reach it through `__private`: it is not public API).

use std::marker::PhantomData;
use std::time::Duration;

use tokio::time::Instant;

use crate::link::{LinkConfig, Resume, close};
use crate::message::{CloseCode, Inbound, Protocol, Side};
use crate::session::{Beat, HandshakeStep, Heartbeat, Interval, Role, SessionRules};
use crate::wire::Tag;

/// What the driver does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this side's handshake message (with the session's payload for it).
    Send(Tag),
    /// Send this side's handshake request; its reply finishes the handshake.
    Request(Tag),
    /// The handshake is done: the link is ready.
    Ready,
    /// Send a ping or a pong.
    Beat(Beat),
    /// Close the link.
    Close {
        /// The close code.
        code: u16,
        /// The reason.
        reason: String,
    },
}

/// The heartbeat rule in force, resolved for this side, and its timers.
#[derive(Debug)]
struct ActiveHeartbeat {
    rule: &'static Heartbeat,
    /// Whether this side pings (else it answers).
    i_ping: bool,
    interval: Option<Duration>,
    /// Time without a beat from the peer after which it counts as dead.
    deadline_after: Option<Duration>,
    next_ping: Option<Instant>,
    watchdog: Option<Instant>,
    /// When the peer last showed it is alive; the watchdog looks at it only when it fires.
    last_beat: Instant,
}

/// One link's session state, for side `S`.
#[derive(Debug)]
pub struct Machine<S: Side> {
    /// The handshake step the link is at.
    step: usize,
    /// Handshake messages of this side already written before the link started (a greeting).
    greeted: usize,
    handshake_deadline: Option<Instant>,
    first_frame_deadline: Option<Instant>,
    heartbeat: Option<ActiveHeartbeat>,
    /// This side sent its handshake request and waits for the reply.
    awaiting_handshake_reply: bool,
    /// Frames that could not be used and could not be answered, so far.
    invalid: u32,
    max_invalid: u32,
    variant: Option<String>,
    interval_override: Option<Duration>,
    timeout_override: Option<Duration>,
    /// Heartbeat intervals this side announces in its own handshake messages, by message.
    /// (A protocol has one or two such rules: a list, not a map.)
    announced: Vec<(Tag, u64)>,
    _side: PhantomData<fn() -> S>,
}

fn rules<S: Side>() -> &'static SessionRules {
    <S::Protocol as Protocol>::SESSION
}

/// This side's role.
pub(crate) fn my_role<S: Side>() -> Role {
    if S::ACCEPTS {
        Role::Server
    } else {
        Role::Client
    }
}

/// Whether a handshake step applies to this link: one of its messages is valid on it.
fn applies<S: Side>(step: &HandshakeStep) -> bool {
    step.messages.iter().any(|&tag| {
        crate::message::message_info::<S::Protocol>(tag).is_some()
            && (S::Inbound::accepts(tag) || <S::Peer as Side>::Inbound::accepts(tag))
    })
}

/// The close code this side uses when its peer goes silent, if it watches at all.
fn watch_code<S: Side>(rule: &Heartbeat) -> Option<u16> {
    if S::ACCEPTS {
        rule.missed
    } else {
        rule.client_missed
    }
}

/// A close with the protocol's reason for `code`, or `fallback`.
fn close_with<S: Side>(code: u16, fallback: &str) -> Action {
    let reason = <S::Protocol as Protocol>::CloseCode::reason_for(code).unwrap_or(fallback);
    Action::Close {
        code,
        reason: reason.to_owned(),
    }
}

impl<S: Side> Machine<S> {
    /// A machine for a link with these settings. `announced` reads the heartbeat interval this
    /// side announces in one of its handshake messages (the payload the session provides for
    /// it), for protocols whose interval comes from such a message.
    pub fn new(
        config: &LinkConfig,
        resume: Resume,
        announced: impl Fn(Tag, &'static str) -> Option<u64>,
    ) -> Self {
        let rules = rules::<S>();
        let announced = rules
            .heartbeats
            .iter()
            .filter_map(|h| match h.interval {
                Interval::FromField { message, field } => {
                    announced(message, field).map(|ms| (message, ms))
                }
                _ => None,
            })
            .collect();
        let mut machine = Machine {
            step: 0,
            greeted: resume.greeted,
            handshake_deadline: None,
            first_frame_deadline: None,
            heartbeat: None,
            awaiting_handshake_reply: false,
            invalid: 0,
            max_invalid: config.max_invalid,
            variant: config.heartbeat_variant.clone(),
            interval_override: config.heartbeat_interval,
            timeout_override: config.heartbeat_timeout,
            announced,
            _side: PhantomData,
        };
        machine.skip_steps();
        let started = resume.started;
        if machine.step < rules.handshake.len() {
            let ms = rules.handshake_timeout_ms.map(Duration::from_millis);
            machine.handshake_deadline = Some(started + ms.unwrap_or(config.handshake_timeout));
        } else if S::ACCEPTS {
            // Without a handshake, a connection that never says anything is bounded too.
            machine.first_frame_deadline = config.first_frame_timeout.map(|after| started + after);
        }
        machine
    }

    /// What this side does first: its handshake messages, or ready at once when the link has
    /// no handshake.
    pub fn start(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.handshaking() {
            self.my_steps(now, &mut actions);
        } else {
            self.finish(now, &mut actions);
        }
        actions
    }

    /// Whether the handshake still waits for a step.
    fn handshaking(&self) -> bool {
        self.step < rules::<S>().handshake.len()
    }

    /// Whether this side sent its handshake request and waits for the reply.
    pub fn awaiting_handshake_reply(&self) -> bool {
        self.awaiting_handshake_reply
    }

    /// The reply to this side's handshake request came (the driver marks the link ready).
    pub fn handshake_replied(&mut self) {
        self.awaiting_handshake_reply = false;
    }

    fn skip_steps(&mut self) {
        let steps = rules::<S>().handshake;
        while self.step < steps.len() && !applies::<S>(&steps[self.step]) {
            self.step += 1;
        }
    }

    /// The handshake steps that are this side's turn, from the current one.
    fn my_steps(&mut self, now: Instant, actions: &mut Vec<Action>) {
        let steps = rules::<S>().handshake;
        while let Some(step) = steps.get(self.step) {
            if step.sender != my_role::<S>() {
                return;
            }
            // The first alternative this side can send on this link.
            let Some(&tag) = step
                .messages
                .iter()
                .find(|&&t| <S::Peer as Side>::Inbound::accepts(t))
            else {
                self.step += 1;
                self.skip_steps();
                continue;
            };
            if step.request {
                actions.push(Action::Request(tag));
                self.awaiting_handshake_reply = true;
                self.step += 1;
                self.skip_steps();
                if !self.handshaking() {
                    // Ready comes with the reply; the heartbeat starts now.
                    self.start_heartbeat(None, now);
                }
                return;
            }
            if self.greeted > 0 {
                // Written before the link started.
                self.greeted -= 1;
            } else {
                actions.push(Action::Send(tag));
            }
            if let Some(&(_, ms)) = self.announced.iter().find(|(t, _)| *t == tag) {
                self.start_heartbeat(Some(ms), now);
            }
            self.step += 1;
            self.skip_steps();
        }
        self.finish(now, actions);
    }

    fn finish(&mut self, now: Instant, actions: &mut Vec<Action>) {
        actions.push(Action::Ready);
        if self.heartbeat.is_none() {
            self.start_heartbeat(None, now);
        }
    }

    /// The step the handshake waits for, when the peer's message `tag` makes it (one of the
    /// step's messages that this side takes: a slave's `register_slave` makes no step of a
    /// control's link).
    pub fn peer_step(&self, tag: Tag) -> Option<&'static HandshakeStep> {
        rules::<S>().handshake.get(self.step).filter(|step| {
            step.sender != my_role::<S>()
                && step.messages.contains(&tag)
                && S::Inbound::accepts(tag)
        })
    }

    /// The peer made the step [`Machine::peer_step`] gave (its hooks passed); `interval` is the
    /// heartbeat interval read from its message, when the heartbeat takes it from there. What
    /// this side sends next, and `Ready` when the handshake is done. A request step is answered
    /// by the handler like any request.
    pub fn peer_stepped(&mut self, interval: Option<u64>, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let Some(step) = rules::<S>().handshake.get(self.step) else {
            return actions;
        };
        if interval.is_some() {
            self.start_heartbeat(interval, now);
        }
        self.step += 1;
        self.skip_steps();
        if step.request {
            if !self.handshaking() {
                self.finish(now, &mut actions);
            }
        } else {
            self.my_steps(now, &mut actions);
        }
        actions
    }

    /// Picks the heartbeat rule (by variant) and arms its timers; `from_field` is the interval
    /// read from a handshake message, when the rule takes it from one.
    fn start_heartbeat(&mut self, from_field: Option<u64>, now: Instant) {
        let beats = rules::<S>().heartbeats;
        let rule = match &self.variant {
            Some(v) => beats.iter().find(|b| b.variant == Some(v.as_str())),
            None => beats.first(),
        };
        let Some(rule) = rule else { return };
        let interval = self.interval_override.or(match rule.interval {
            Interval::Fixed(ms) | Interval::Configurable(ms) => Some(Duration::from_millis(ms)),
            Interval::FromField { .. } => from_field.map(Duration::from_millis),
        });
        let i_ping = rule.pinger == my_role::<S>();
        let deadline_after = self
            .timeout_override
            .or(interval.map(|i| i + Duration::from_millis(rule.grace_ms)));
        self.heartbeat = Some(ActiveHeartbeat {
            rule,
            i_ping,
            interval,
            deadline_after,
            next_ping: if i_ping {
                interval.map(|i| now + i)
            } else {
                None
            },
            // Each side watches its peer when the protocol gives it a code for silence.
            watchdog: if watch_code::<S>(rule).is_some() {
                deadline_after.map(|d| now + d)
            } else {
                None
            },
            last_beat: now,
        });
    }

    /// A frame came from the peer: it is alive, and it has said something.
    pub fn on_traffic(&mut self, now: Instant) {
        self.first_frame_deadline = None;
        if let Some(h) = &mut self.heartbeat {
            if h.watchdog.is_some() {
                h.last_beat = now;
            }
        }
    }

    /// A text frame that may be a raw text heartbeat: `Some` (with the pong to send, if any)
    /// when it is one.
    pub fn text_beat(&self, text: &str) -> Option<Option<Action>> {
        let h = self.heartbeat.as_ref()?;
        if !h.i_ping && matches!(h.rule.ping, Beat::Text(t) if t == text) {
            return Some(h.rule.pong.map(Action::Beat));
        }
        if h.i_ping && matches!(h.rule.pong, Some(Beat::Text(t)) if t == text) {
            return Some(None);
        }
        None
    }

    /// A message that may be a heartbeat (`ready`: the link is ready): `Some` (with the pong
    /// to send, if any) when it is one.
    pub fn message_beat(&self, tag: Tag, ready: bool) -> Option<Option<Action>> {
        let h = self.heartbeat.as_ref().filter(|_| ready)?;
        if !h.i_ping && h.rule.ping == Beat::Message(tag) {
            return Some(h.rule.pong.map(Action::Beat));
        }
        if h.i_ping && h.rule.pong == Some(Beat::Message(tag)) {
            return Some(None);
        }
        None
    }

    /// When the machine next needs the time: the earliest of the handshake and first-frame
    /// deadlines, the next ping and the watchdog.
    pub fn deadline(&self) -> Option<Instant> {
        let handshake = self.handshake_deadline.filter(|_| self.handshaking());
        let ping = self.heartbeat.as_ref().and_then(|h| h.next_ping);
        let watchdog = self.heartbeat.as_ref().and_then(|h| h.watchdog);
        [handshake, ping, watchdog, self.first_frame_deadline]
            .into_iter()
            .flatten()
            .min()
    }

    /// The time is `now`: a close when a deadline passed, or the ping that is due.
    pub fn on_time(&mut self, now: Instant) -> Option<Action> {
        let rules = rules::<S>();
        if self
            .handshake_deadline
            .is_some_and(|at| at <= now && self.handshaking())
        {
            let code = rules
                .handshake_timeout_code
                .or(rules.before_handshake)
                .unwrap_or(close::POLICY);
            return Some(close_with::<S>(code, "handshake timed out"));
        }
        if self.first_frame_deadline.is_some_and(|at| at <= now) {
            self.first_frame_deadline = None;
            return Some(Action::Close {
                code: close::POLICY,
                reason: "no frame in time".to_owned(),
            });
        }
        let h = self.heartbeat.as_mut()?;
        if h.watchdog.is_some_and(|at| at <= now) {
            match h.deadline_after.map(|d| h.last_beat + d) {
                // Heard from since the watchdog was armed: look again then.
                Some(at) if at > now => h.watchdog = Some(at),
                _ => {
                    h.watchdog = None;
                    let code = watch_code::<S>(h.rule).unwrap_or(close::POLICY);
                    return Some(close_with::<S>(code, "heartbeat timed out"));
                }
            }
        }
        if h.next_ping.is_some_and(|at| at <= now) {
            h.next_ping = h.interval.map(|i| now + i);
            return Some(Action::Beat(h.rule.ping));
        }
        None
    }

    /// A frame that could not be used nor answered: counted, and a close once more than
    /// `max_invalid` came.
    pub fn count_invalid(&mut self) -> Option<Action> {
        self.invalid += 1;
        (self.invalid > self.max_invalid).then(|| Action::Close {
            code: close::POLICY,
            reason: "too many invalid frames".to_owned(),
        })
    }

    /// The close for traffic before the handshake finished, as the protocol says.
    pub fn before_handshake() -> Action {
        let rules = rules::<S>();
        let code = rules.before_handshake.unwrap_or(close::POLICY);
        let reason = rules
            .before_handshake_reason
            .or_else(|| <S::Protocol as Protocol>::CloseCode::reason_for(code))
            .unwrap_or("message before the handshake finished");
        Action::Close {
            code,
            reason: reason.to_owned(),
        }
    }
}
