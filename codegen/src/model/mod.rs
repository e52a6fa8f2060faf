//! The checked protocol: every name resolved, every rule of the language enforced.
//!
//! [`check`] turns parsed files into [`Protocol`]s. Emitters read only this model, never the
//! syntax tree, so every decision about meaning is made once, here.

mod check;

pub use check::{LINK_METHODS, LinkMethodOwner, MAX_PROTOCOL_NAME, check};

use std::path::PathBuf;

use crate::diagnostics::Span;

/// One checked protocol, with its base merged in when it `extends` one.
#[derive(Debug, Clone)]
pub struct Protocol {
    /// The name as declared (`litecord`).
    pub name: String,
    /// Where the name is declared.
    pub span: Span,
    /// The source file, as given to the compiler.
    pub source: PathBuf,
    /// `//!` docs.
    pub docs: Vec<String>,
    /// The declared version.
    pub version: String,
    /// The HTTP path servers take the WebSocket at (`path "/connect"`), when declared.
    pub path: Option<String>,
    /// The base protocol's name, for `extends`.
    pub base: Option<String>,
    /// How frames look.
    pub wire: Wire,
    /// Close codes, in declaration order.
    pub close_codes: Vec<CloseCode>,
    /// Session rules.
    pub session: Session,
    /// Endpoints (`client`, `server` unless declared) and links between them.
    pub endpoints: Vec<String>,
    /// Links as (client endpoint, server endpoint) indices into `endpoints`.
    pub links: Vec<(usize, usize)>,
    /// Messages: the base's first, then the protocol's own, each in file order.
    pub messages: Vec<Message>,
    /// Named types: the base's first, then the protocol's own, each in file order.
    pub types: Vec<TypeDef>,
}

impl Protocol {
    /// Whether the protocol declares named endpoints (rather than the implicit client and server).
    pub fn has_named_endpoints(&self) -> bool {
        self.endpoints != ["client", "server"]
    }

    /// `ty` with aliases followed to the type they name (the checker refuses alias cycles; a
    /// depth bound keeps this total all the same).
    pub fn resolve(&self, ty: &Ty) -> Ty {
        let mut ty = ty.clone();
        for _ in 0..64 {
            match ty {
                Ty::Named(i) => match self.types.get(i).map(|t| &t.kind) {
                    Some(TypeDefKind::Alias(inner)) => ty = inner.clone(),
                    _ => return Ty::Named(i),
                },
                other => return other,
            }
        }
        ty
    }
}

/// A protocol's `wire` block, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wire {
    /// The tag key.
    pub tag: String,
    /// Whether tags are integers.
    pub int_tags: bool,
    /// `None` for inline payloads, else the key they sit under.
    pub payload: Option<String>,
    /// The per-side frame counter key.
    pub sequence: Option<String>,
    /// Event framing.
    pub event: Framing,
    /// Request framing.
    pub request: Framing,
    /// Where request ids sit.
    pub request_id: RequestId,
    /// How replies are recognised.
    pub reply_match: ReplyMatch,
    /// Where the answered request's id sits in a reply.
    pub reply_id: Option<KeyPath>,
    /// The key holding the result, if not where payloads sit.
    pub reply_result: Option<String>,
    /// How failures are framed.
    pub error: ErrorFraming,
    /// Whether payload objects reject unknown keys.
    pub strict: bool,
    /// Whether a frame may hold a JSON array of packets.
    pub batch: bool,
    /// Binary frames are read as UTF-8 text.
    pub binary_text: bool,
    /// Whether the profile says how replies are recognised (a `response` directive).
    pub replies: bool,
}

/// How events or requests are framed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// With the message's own tag.
    Tagged,
    /// With the tag plus a suffix.
    Suffix(String),
    /// Inside a carrier frame.
    Carrier {
        /// The carrier's tag.
        tag: TagValue,
        /// The key naming the message.
        method: String,
        /// The key holding the payload.
        args: String,
    },
}

/// Where request ids sit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestId {
    /// No ids; replies in order.
    Ordered,
    /// Under a key.
    Key {
        /// The key.
        key: String,
        /// Whether a sender may leave it out.
        optional: bool,
        /// Whether the ids this side makes are strings (8 hexadecimal digits) not numbers.
        text: bool,
    },
    /// The sequence counter.
    Sequence,
}

/// How replies are recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyMatch {
    /// Request tag plus suffix.
    Suffix(String),
    /// A carrier tag.
    Carrier(TagValue),
    /// By the presence of the id key.
    Untagged,
    /// A fixed tag and a key naming the request.
    Tag {
        /// The tag.
        tag: String,
        /// The key naming the request.
        for_key: String,
    },
}

/// A key at the top of the frame or in the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPath {
    /// Top level.
    Top(String),
    /// Inside the payload object.
    InPayload(String),
}

/// How failed replies are framed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorFraming {
    /// No way to fail.
    None,
    /// Under a key of the reply, as text or an object.
    InReply {
        /// Where.
        path: KeyPath,
        /// Whether the error is an object (`name`, `message`, ...) rather than text.
        object: bool,
    },
    /// A frame of its own.
    Tagged {
        /// Its tag.
        tag: String,
        /// The key holding the text.
        message: String,
    },
}

/// A tag value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TagValue {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
}

/// A close code.
#[derive(Debug, Clone)]
pub struct CloseCode {
    /// Where its name is declared.
    pub span: Span,
    /// The number.
    pub code: u16,
    /// The Rust variant name.
    pub name: String,
    /// The reason text.
    pub reason: String,
    /// Docs.
    pub docs: Vec<String>,
}

/// Session rules, with messages resolved to indices into [`Protocol::messages`].
#[derive(Debug, Clone, Default)]
pub struct Session {
    /// Handshake steps in order.
    pub handshake: Vec<HandshakeStep>,
    /// Handshake timeout.
    pub handshake_timeout_ms: Option<u64>,
    /// Close code for a handshake that took too long (else the before-handshake code).
    pub handshake_timeout_code: Option<u16>,
    /// Close code for traffic before the handshake.
    pub before_handshake: Option<u16>,
    /// The reason sent (in the close message) for traffic before the handshake.
    pub before_handshake_reason: Option<String>,
    /// Frames that cannot be used close the link, with this reason prefix.
    pub invalid_closes: Option<String>,
    /// What becomes of frames that cannot be used, in declaration order.
    pub invalid_rules: Vec<InvalidRule>,
    /// Heartbeat rules.
    pub heartbeats: Vec<Heartbeat>,
    /// The close message and its reason field (wire name).
    pub close_message: Option<CloseMessage>,
    /// Least wait before a reconnect.
    pub reconnect_min_ms: u64,
}

/// `close message MESSAGE, reason FIELD [, code FIELD] [, received only]`.
#[derive(Debug, Clone)]
pub struct CloseMessage {
    /// The message (an index into [`Protocol::messages`]).
    pub message: usize,
    /// The wire name of the field holding the reason.
    pub reason: String,
    /// The wire name of the field holding the close code, if it has one.
    pub code: Option<String>,
    /// Whether a closing side sends it (`received only`: it is only understood).
    pub sent: bool,
}

/// One `invalid KIND [of MESSAGES] answers "TEXT" [, name "NAME"]` or `... ignored` rule.
#[derive(Debug, Clone)]
pub struct InvalidRule {
    /// The kind's word: `json`, `object`, `array`, `untagged`, `unknown`, `payload` or
    /// `envelope`.
    pub kind: &'static str,
    /// The messages it applies to (indices into [`Protocol::messages`]); all when empty.
    pub messages: Vec<usize>,
    /// The error text (with `{name}`, `{detail}`, `{side}` and `{peer}` placeholders) and
    /// name; `None` for `ignored` and `closes`.
    pub answer: Option<(String, Option<String>)>,
    /// For `closes "TEXT"`: the reason the link closes with (same placeholders).
    pub closes: Option<String>,
}

/// A handshake step.
#[derive(Debug, Clone)]
pub struct HandshakeStep {
    /// Whether the client (the connecting side) sends.
    pub client_sends: bool,
    /// The message, or alternatives.
    pub messages: Vec<usize>,
    /// A request answered by its reply.
    pub request: bool,
    /// The field checked by the auth hook (wire name).
    pub auth_field: Option<String>,
    /// Close code on auth failure.
    pub failure: Option<u16>,
    /// Close code for a step message whose request id is not of the wire's id type.
    pub malformed_id: Option<u16>,
}

/// A heartbeat rule.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    /// Whether the client pings.
    pub client_pings: bool,
    /// The ping.
    pub ping: Beat,
    /// The pong.
    pub pong: Option<Beat>,
    /// The interval.
    pub interval: Interval,
    /// Grace beyond the interval.
    pub grace_ms: u64,
    /// Close code when missed.
    pub missed: Option<u16>,
    /// Close code the client uses when the server goes silent (`client missed closes CODE`).
    pub client_missed: Option<u16>,
    /// Variant name.
    pub variant: Option<String>,
}

/// A ping or pong.
#[derive(Debug, Clone)]
pub enum Beat {
    /// A message (index).
    Message(usize),
    /// Raw text.
    Text(String),
}

/// A heartbeat interval.
#[derive(Debug, Clone)]
pub enum Interval {
    /// Fixed milliseconds.
    Fixed(u64),
    /// A field (wire name) of a message (index).
    FromField(usize, String),
}

/// The kind of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A frame of its own.
    Message,
    /// One-way.
    Event,
    /// Answered.
    Request,
}

/// A checked message.
#[derive(Debug, Clone)]
pub struct Message {
    /// The name as declared.
    pub name: String,
    /// The Rust type name.
    pub rust_name: String,
    /// The Rust method name in handlers and senders.
    pub method: String,
    /// Docs.
    pub docs: Vec<String>,
    /// The kind.
    pub kind: Kind,
    /// The tag (for carried messages, the method name).
    pub tag: TagValue,
    /// Link directions as (sender, receiver) endpoint indices.
    pub directions: Vec<(usize, usize)>,
    /// The payload; `None` when declared without one.
    pub payload: Option<Shape>,
    /// The reply of a request (`Shape::Empty` when declared without `->`).
    pub reply: Option<Shape>,
    /// Whether the session driver handles it (handshake, heartbeat, close).
    pub session: bool,
    /// Where it was declared.
    pub span: Span,
}

impl Message {
    /// Whether the sides that send it get a typed method for it on their `{Side}Sender` trait:
    /// events and requests, unless the session driver sends them.
    pub fn has_sender_method(&self) -> bool {
        !self.session && self.kind != Kind::Message
    }
}

/// A payload or reply shape.
#[derive(Debug, Clone)]
pub enum Shape {
    /// A JSON object.
    Object(Struct),
    /// A JSON array, fields by position.
    Positional(Struct),
    /// Another type.
    Type(Ty),
    /// Nothing (a reply declared without `->`).
    Empty,
}

/// Fields of an object or positional payload.
#[derive(Debug, Clone, Default)]
pub struct Struct {
    /// The fields.
    pub fields: Vec<Field>,
    /// The Rust name of the `..rest` field.
    pub rest: Option<String>,
}

/// A checked field.
#[derive(Debug, Clone)]
pub struct Field {
    /// Where its name is declared.
    pub span: Span,
    /// The wire name.
    pub wire_name: String,
    /// The Rust name.
    pub rust_name: String,
    /// Docs.
    pub docs: Vec<String>,
    /// The type (without the optional marker).
    pub ty: Ty,
    /// `T?`: the key may be absent.
    pub optional: bool,
    /// Constraints.
    pub constraints: Vec<Constraint>,
}

/// A resolved type.
#[derive(Debug, Clone, PartialEq)]
pub enum Ty {
    /// `bool`
    Bool,
    /// A sized integer (`i8`..`u64`); `int` means `i64`.
    Int(IntType),
    /// `f64`
    F64,
    /// `string`
    String,
    /// `any`
    Any,
    /// `[T]`
    Array(Box<Ty>),
    /// `{string: T}`
    Map(Box<Ty>),
    /// `T | null`
    Nullable(Box<Ty>),
    /// A literal constant.
    Const(TagValue),
    /// A named type: index into [`Protocol::types`].
    Named(usize),
}

/// Sized integer types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntType {
    /// i8
    I8,
    /// i16
    I16,
    /// i32
    I32,
    /// i64
    I64,
    /// u8
    U8,
    /// u16
    U16,
    /// u32
    U32,
    /// u64
    U64,
}

impl IntType {
    /// The Rust name.
    pub fn rust(self) -> &'static str {
        match self {
            IntType::I8 => "i8",
            IntType::I16 => "i16",
            IntType::I32 => "i32",
            IntType::I64 => "i64",
            IntType::U8 => "u8",
            IntType::U16 => "u16",
            IntType::U32 => "u32",
            IntType::U64 => "u64",
        }
    }

    /// The least and greatest value.
    pub fn bounds(self) -> (i128, i128) {
        match self {
            IntType::I8 => (i8::MIN.into(), i8::MAX.into()),
            IntType::I16 => (i16::MIN.into(), i16::MAX.into()),
            IntType::I32 => (i32::MIN.into(), i32::MAX.into()),
            IntType::I64 => (i64::MIN.into(), i64::MAX.into()),
            IntType::U8 => (0, u8::MAX.into()),
            IntType::U16 => (0, u16::MAX.into()),
            IntType::U32 => (0, u32::MAX.into()),
            IntType::U64 => (0, u64::MAX.into()),
        }
    }
}

/// A checked constraint.
#[derive(Debug, Clone, PartialEq)]
pub enum Constraint {
    /// A numeric range.
    Range {
        /// Least value.
        min: Option<i64>,
        /// Upper bound.
        max: Option<i64>,
        /// Whether `max` is allowed.
        max_inclusive: bool,
    },
    /// A length range.
    Len {
        /// Least length.
        min: Option<u64>,
        /// Upper bound.
        max: Option<u64>,
        /// Whether `max` is allowed.
        max_inclusive: bool,
    },
    /// A regular expression.
    Pattern(String),
}

/// A named type.
#[derive(Debug, Clone)]
pub struct TypeDef {
    /// Where its name is declared (a union named after where it sits: the union).
    pub span: Span,
    /// The name as declared.
    pub name: String,
    /// The Rust name.
    pub rust_name: String,
    /// Docs.
    pub docs: Vec<String>,
    /// What it is.
    pub kind: TypeDefKind,
}

/// The kinds of named type.
#[derive(Debug, Clone)]
pub enum TypeDefKind {
    /// A struct.
    Struct(Struct),
    /// A struct written as a JSON array, fields by position (`struct Name ( ... )`).
    Positional(Struct),
    /// A string enum: (Rust name, wire value, docs).
    Enum(Vec<(String, String, Vec<String>)>),
    /// A tagged union: the tag key and the variants.
    Union {
        /// The key naming the variant.
        tag: String,
        /// (Rust name, wire value, docs, fields).
        variants: Vec<(String, String, Vec<String>, Struct)>,
    },
    /// A union of types matched by JSON type: (Rust variant name, type).
    OneOf(Vec<(String, Ty)>),
    /// Another name for a type.
    Alias(Ty),
}
