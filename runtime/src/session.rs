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
    /// What happens to a frame that cannot be used, in declaration order: the first rule that
    /// fits the frame applies (`invalid unknown answers "No such command {name}"`).
    pub invalid_rules: &'static [InvalidRule],
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
    /// The close code when a step message's request id is not of the wire's id type (a
    /// SocketCluster `#handshake` whose `cid` is a string closes with 4008).
    pub malformed_id: Option<u16>,
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
    /// The field holding the close code, if the message carries one (SocketCluster's
    /// `#disconnect {"code": 4321, "data": "bye"}`): a peer's code is honoured.
    pub code: Option<&'static str>,
    /// Whether a closing side sends it; `false` when it is only understood (`received only`).
    pub sent: bool,
}

/// What was wrong with a frame that cannot be used, as `invalid` rules name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvalidKind {
    /// Not JSON (`invalid json`).
    Json,
    /// JSON, but not an object, and not an array (`invalid object`).
    Object,
    /// A JSON array where an object belongs (`invalid array`; `invalid object` when undeclared).
    Array,
    /// An object that names no message: no tag, or a tag of the wrong JSON type
    /// (`invalid untagged`).
    Untagged,
    /// A tag that names no message valid in this direction (`invalid unknown`).
    Unknown,
    /// A known message whose payload does not decode or breaks a constraint (`invalid payload`).
    Payload,
    /// An object whose envelope is malformed: a key the envelope does not declare (in a
    /// `strict` protocol), or an envelope key other than the tag missing or of the wrong JSON
    /// type, such as a sequence number that is not an integer (`invalid envelope`).
    Envelope,
}

/// One `invalid KIND [of MESSAGES] answers "TEXT" [, name "NAME"]`, `invalid KIND
/// [of MESSAGES] ignored` or `invalid KIND [of MESSAGES] closes "TEXT"` rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidRule {
    /// The kind of frame the rule is for.
    pub kind: InvalidKind,
    /// The messages it applies to (their tags); every message when empty.
    pub messages: &'static [Tag],
    /// What becomes of such a frame.
    pub action: InvalidAction,
}

/// What an `invalid` rule does with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidAction {
    /// Answer it (when it can be answered) with this error. The text may hold `{name}` (the tag
    /// as read, empty when there is none) and `{detail}` (what was wrong, as protolink words
    /// it).
    Answer {
        /// The error text, with its placeholders.
        text: &'static str,
        /// The error's name, for protocols whose errors carry one.
        name: Option<&'static str>,
    },
    /// Drop it without an answer, and without counting it against the link
    /// (socketcluster-server never answers an invoke nobody serves).
    Ignore,
    /// Close the link at once, with this reason (its placeholders as for `Answer`); the
    /// protocol's close message carries it where there is one (the Clusterio master's
    /// `Invalid message: No validator for foo_request on master-control`).
    Close {
        /// The reason, with its placeholders.
        text: &'static str,
    },
}

/// What an `invalid` rule's text may name.
#[derive(Debug, Clone, Copy, Default)]
pub struct Placeholders<'a> {
    /// `{name}`: the message's name or tag as the frame wrote it (empty when it has none).
    pub name: &'a str,
    /// `{detail}`: what was wrong, as protolink words it.
    pub detail: &'a str,
    /// `{side}`: this side's endpoint name (`master`; `client` or `server` without named
    /// endpoints).
    pub side: &'a str,
    /// `{peer}`: the endpoint name of the other side of the link (`control`).
    pub peer: &'a str,
}

impl InvalidRule {
    /// The rule of `rules` for a frame of this kind naming this message, if any. An `array`
    /// frame falls back to the `object` rules.
    pub fn find(
        rules: &'static [InvalidRule],
        kind: InvalidKind,
        tag: Option<Tag>,
    ) -> Option<&'static InvalidRule> {
        let fits = |kind: InvalidKind| {
            rules.iter().find(move |rule| {
                rule.kind == kind
                    && (rule.messages.is_empty() || tag.is_some_and(|t| rule.messages.contains(&t)))
            })
        };
        fits(kind).or_else(|| (kind == InvalidKind::Array).then(|| fits(InvalidKind::Object))?)
    }
}

impl InvalidAction {
    /// The rule's text with its placeholders filled in; other braces are kept.
    pub fn render(text: &str, values: &Placeholders<'_>) -> String {
        let mut out = String::with_capacity(text.len() + values.detail.len());
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open..];
            let named = [
                ("{name}", values.name),
                ("{detail}", values.detail),
                ("{side}", values.side),
                ("{peer}", values.peer),
            ];
            let (value, used) = named
                .iter()
                .find(|(key, _)| after.starts_with(key))
                .map_or(("{", 1), |(key, value)| (*value, key.len()));
            out.push_str(value);
            rest = &after[used..];
        }
        out.push_str(rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn answer(text: &'static str, name: Option<&'static str>) -> InvalidAction {
        InvalidAction::Answer { text, name }
    }

    const RULES: &[InvalidRule] = &[
        InvalidRule {
            kind: InvalidKind::Payload,
            messages: &[Tag::Str("open")],
            action: answer("Invalid type for channel!", None),
        },
        InvalidRule {
            kind: InvalidKind::Payload,
            messages: &[],
            action: answer("Error: {detail}", Some("InvalidArgumentsError")),
        },
        InvalidRule {
            kind: InvalidKind::Object,
            messages: &[],
            action: answer("Error: Message must be object", None),
        },
        InvalidRule {
            kind: InvalidKind::Unknown,
            messages: &[],
            action: InvalidAction::Ignore,
        },
    ];

    #[test]
    fn the_first_rule_that_fits_applies() {
        let find = |kind, tag| InvalidRule::find(RULES, kind, tag).map(|r| r.action);
        let open = Some(Tag::Str("open"));
        let log = Some(Tag::Str("log"));
        assert_eq!(
            find(InvalidKind::Payload, open),
            Some(answer("Invalid type for channel!", None))
        );
        let fallback = Some(answer("Error: {detail}", Some("InvalidArgumentsError")));
        assert_eq!(find(InvalidKind::Payload, log), fallback);
        assert_eq!(find(InvalidKind::Payload, None), fallback);
        // Arrays fall back to the `object` rule; nothing else falls back.
        assert_eq!(
            find(InvalidKind::Array, None),
            Some(answer("Error: Message must be object", None))
        );
        assert_eq!(
            find(InvalidKind::Unknown, open),
            Some(InvalidAction::Ignore)
        );
        assert_eq!(find(InvalidKind::Json, None), None);
    }

    #[test]
    fn placeholders_are_filled_and_other_braces_kept() {
        assert_eq!(
            InvalidAction::render(
                "No such command {name} ({detail}) {other} {",
                &Placeholders {
                    name: "nope",
                    detail: "unknown message",
                    ..Placeholders::default()
                }
            ),
            "No such command nope (unknown message) {other} {"
        );
        assert_eq!(
            InvalidAction::render(
                "No validator for {name} on {side}-{peer}",
                &Placeholders {
                    name: "foo_request",
                    side: "master",
                    peer: "control",
                    ..Placeholders::default()
                }
            ),
            "No validator for foo_request on master-control"
        );
    }
}
