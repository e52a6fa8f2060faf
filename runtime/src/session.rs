//! Session rules as declared in a definition's `session` block, emitted as a `static`.
//!
//! The session driver executes them: handshake steps in order, the heartbeat, what happens to
//! traffic before the handshake, and the close message sent before a socket closes.

use crate::wire::Tag;

/// Which side of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The side that connects.
    Client,
    /// The side that accepts.
    Server,
}

/// Everything a `session` block declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRules {
    /// Handshake steps, in order.
    pub handshake: &'static [HandshakeStep],
    /// Milliseconds the whole handshake may take.
    pub handshake_timeout_ms: Option<u64>,
    /// The close code for a handshake that took too long; the before-handshake code otherwise.
    pub handshake_timeout_code: Option<u16>,
    /// The close code for traffic before the handshake finished.
    pub before_handshake: Option<u16>,
    /// The reason sent for traffic before the handshake, when declared as a text.
    pub before_handshake_reason: Option<&'static str>,
    /// When set, any frame that cannot be used closes the link, with this reason followed by
    /// `": "` and the detail (Clusterio's `Invalid message: ...`).
    pub invalid_closes: Option<&'static str>,
    /// Heartbeats; several when the protocol has variants (SocketCluster's versions).
    pub heartbeats: &'static [Heartbeat],
    /// The message a closing side sends first, and the field holding the reason.
    pub close_message: Option<CloseMessage>,
    /// The least a client waits before reconnecting, in milliseconds.
    pub reconnect_min_ms: u64,
}

/// One handshake step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeStep {
    /// Who sends.
    pub sender: Role,
    /// The message (its tag), or, for named endpoints, each alternative.
    pub messages: &'static [Tag],
    /// Whether the step is a request answered by its reply.
    pub request: bool,
    /// The field the auth hook checks, if the step authenticates.
    pub auth_field: Option<&'static str>,
    /// The close code when authentication fails.
    pub failure: Option<u16>,
}

/// A heartbeat rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// Who sends the ping.
    pub pinger: Role,
    /// The ping.
    pub ping: Beat,
    /// The reply, if any.
    pub pong: Option<Beat>,
    /// How often the pinger pings.
    pub interval: Interval,
    /// Milliseconds beyond the interval before the watcher gives up.
    pub grace_ms: u64,
    /// The close code the server uses when the client goes silent (a missed heartbeat, or a
    /// missed pong).
    pub missed: Option<u16>,
    /// The close code the client uses when the server goes silent.
    pub client_missed: Option<u16>,
    /// The variant this rule belongs to (`"1"`, `"2"`), when there are several.
    pub variant: Option<&'static str>,
}

/// A ping or pong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// A declared message, by tag.
    Message(Tag),
    /// A raw text frame.
    Text(&'static str),
}

/// How often a heartbeat runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    /// Fixed, in milliseconds.
    Fixed(u64),
    /// Taken from a field of a handshake message (by its tag), in milliseconds.
    FromField {
        /// The message's tag.
        message: Tag,
        /// The field's wire name.
        field: &'static str,
    },
    /// Chosen at run time (a server option); the declared default.
    Configurable(u64),
}

/// The message sent before closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseMessage {
    /// The message's tag.
    pub message: Tag,
    /// The field holding the reason text.
    pub reason: &'static str,
}
