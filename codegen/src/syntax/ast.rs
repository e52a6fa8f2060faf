//! The syntax tree of a definition file, exactly as written, with a span on everything.
//!
//! Nothing here is checked beyond the grammar: names may be unknown, tags may clash. The checker
//! in [`crate::model`] turns a [`File`] into a [`crate::model::Protocol`].

use crate::diagnostics::Span;

/// A name as written, with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    /// The text of the name.
    pub name: String,
    /// Where it was written.
    pub span: Span,
}

/// Doc comment lines (`///` or `//!`), without the marker and one leading space.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Docs {
    /// One entry per line.
    pub lines: Vec<String>,
}

/// A literal value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LitValue {
    /// `"text"`, escapes resolved.
    Str(String),
    /// `42`, `-1`.
    Int(i64),
}

/// A literal with its span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lit {
    /// The value.
    pub value: LitValue,
    /// Where it was written.
    pub span: Span,
}

/// A whole definition file.
#[derive(Debug, Clone, PartialEq)]
pub struct File {
    /// `//!` lines at the top of the file.
    pub docs: Docs,
    /// The `protocol` block; `None` only when the file had none (an error already reported).
    pub protocol: Option<ProtocolDecl>,
    /// Messages and types, in file order.
    pub items: Vec<Item>,
}

/// `protocol NAME [extends BASE] { directives }`
#[derive(Debug, Clone, PartialEq)]
pub struct ProtocolDecl {
    /// The protocol's name.
    pub name: Ident,
    /// The base protocol, for `extends`.
    pub extends: Option<Ident>,
    /// The directives of the block as parsed (`version`, `wire { }`, `close { }`, ...), in the
    /// grammar's generic form; [`ProtocolDecl::block`] is what they mean.
    pub directives: Vec<Directive>,
    /// The directives, typed: every malformed one already reported and left out.
    pub block: ProtocolBlock,
    /// The whole declaration.
    pub span: Span,
}

/// One directive as the grammar reads it: a head word, comma-separated clauses of atoms, and an
/// optional nested block. The typed-lowering pass (`syntax::directives`) turns these into a
/// [`ProtocolBlock`]; nothing after the syntax layer reads them.
///
/// `request carrier 4, method w, args a, id n` has head `request` and four clauses.
#[derive(Debug, Clone, PartialEq)]
pub struct Directive {
    /// Doc comments before the directive.
    pub docs: Docs,
    /// The first word (or number, in `close` blocks).
    pub head: Atom,
    /// The clauses after the head; the first clause holds the atoms right after the head.
    pub clauses: Vec<Clause>,
    /// `{ ... }` after the clauses.
    pub block: Option<Vec<Directive>>,
    /// From the head to the end of the directive.
    pub span: Span,
}

/// A run of atoms between commas.
#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    /// The atoms; may be empty (a directive with no clauses has one empty clause).
    pub atoms: Vec<Atom>,
    /// The span of the clause (the head's span if it is empty).
    pub span: Span,
}

/// One word of a directive.
#[derive(Debug, Clone, PartialEq)]
pub enum Atom {
    /// A name.
    Ident(Ident),
    /// A dotted path such as `data.seq` or `Hello.hb_interval` (two or more parts).
    Path(Vec<Ident>),
    /// A string or integer.
    Lit(Lit),
    /// Punctuation allowed in directives: `|`, `->`, `=`, `:`.
    Punct(&'static str, Span),
}

impl Atom {
    /// Where the atom was written.
    pub fn span(&self) -> Span {
        match self {
            Atom::Ident(i) => i.span,
            Atom::Path(parts) => match (parts.first(), parts.last()) {
                (Some(first), Some(last)) => first.span.to(last.span),
                _ => Span::default(),
            },
            Atom::Lit(l) => l.span,
            Atom::Punct(_, span) => *span,
        }
    }
}

/// A top-level item.
// A file holds a few dozen items at most, so the unboxed `MessageDecl` costs nothing that matters
// and keeps matching on items simple.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// `message`, `event` or `request`.
    Message(MessageDecl),
    /// `struct Name { fields }`
    Struct(StructDecl),
    /// `enum Name { a, b as "B" }`
    Enum(EnumDecl),
    /// `union Name tag "kind" { A { fields }, B { fields } }`
    Union(UnionDecl),
    /// `type Name = type`
    Alias(AliasDecl),
}

/// What kind of message a declaration is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// `message`: a frame of its own.
    Message,
    /// `event`: one-way.
    Event,
    /// `request`: answered by a reply.
    Request,
}

/// `request NAME [= TAG] ROUTE [PAYLOAD] [-> PAYLOAD]`
#[derive(Debug, Clone, PartialEq)]
pub struct MessageDecl {
    /// Doc comments.
    pub docs: Docs,
    /// The keyword used, and its span.
    pub kind: MessageKind,
    /// The span of the keyword.
    pub kind_span: Span,
    /// The message's name.
    pub name: Ident,
    /// `= "tag"` or `= 4`.
    pub tag: Option<Lit>,
    /// Who may send it.
    pub route: Route,
    /// The payload; `None` when left out (an empty object).
    pub payload: Option<Payload>,
    /// `-> PAYLOAD`; the span is that of the arrow.
    pub reply: Option<(Span, Payload)>,
    /// The whole declaration.
    pub span: Span,
}

/// Who may send a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// `from client`, `from server`, `from any` (the identifier is one of the three, unchecked).
    From(Ident),
    /// `on a -> b, c -> d`: link directions, sender first.
    On(Vec<(Ident, Ident)>),
}

/// The shape of a payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// `{ fields }`: a JSON object.
    Object(Fields),
    /// `( fields )`: a JSON array, fields by position.
    Positional(Fields),
    /// `: type`: any other type.
    Type(TypeExpr),
}

/// A list of fields between braces or parentheses.
#[derive(Debug, Clone, PartialEq)]
pub struct Fields {
    /// The fields in order.
    pub fields: Vec<Field>,
    /// `..name`: every other key, kept.
    pub rest: Option<Ident>,
    /// From the opening to the closing delimiter.
    pub span: Span,
}

/// `name [as "wire"]: type [where constraints]`
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Doc comments.
    pub docs: Docs,
    /// The field's name.
    pub name: Ident,
    /// `as "wireName"`.
    pub rename: Option<Lit>,
    /// The field's type.
    pub ty: TypeExpr,
    /// Constraints after `where`.
    pub constraints: Vec<Constraint>,
    /// The whole field.
    pub span: Span,
}

/// A type as written.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeExpr {
    /// What the type is.
    pub kind: TypeKind,
    /// Where it was written.
    pub span: Span,
}

/// The kinds of type expression.
#[derive(Debug, Clone, PartialEq)]
pub enum TypeKind {
    /// A built-in (`bool`, `u32`, `string`, `any`, `int`, ...) or a declared name; resolved later.
    Named(Ident),
    /// `null`
    Null,
    /// A string or integer literal: a constant.
    Const(Lit),
    /// `[T]`
    Array(Box<TypeExpr>),
    /// `{string: T}`
    Map(Box<TypeExpr>),
    /// `T?`
    Optional(Box<TypeExpr>),
    /// `A | B | ...` (two or more).
    Union(Vec<TypeExpr>),
}

/// One constraint after `where`.
#[derive(Debug, Clone, PartialEq)]
pub struct Constraint {
    /// What it requires.
    pub kind: ConstraintKind,
    /// Where it was written.
    pub span: Span,
}

/// The kinds of constraint.
#[derive(Debug, Clone, PartialEq)]
pub enum ConstraintKind {
    /// A numeric range.
    Range(Range),
    /// `len RANGE`.
    Len(Range),
    /// `pattern "regex"`.
    Pattern(String),
    /// `non_empty`.
    NonEmpty,
}

/// `a..b`, `a..=b`, `a..`, `..b`, `..=b`, or a single `a` (exactly `a`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// Lower bound, inclusive.
    pub min: Option<i64>,
    /// Upper bound.
    pub max: Option<i64>,
    /// Whether `max` is included (`..=`, or a single number).
    pub max_inclusive: bool,
}

/// `struct Name { fields }`
#[derive(Debug, Clone, PartialEq)]
pub struct StructDecl {
    /// Doc comments.
    pub docs: Docs,
    /// The type's name.
    pub name: Ident,
    /// Its fields.
    pub fields: Fields,
    /// Written `( ... )`: a JSON array, fields by position.
    pub positional: bool,
    /// The whole declaration.
    pub span: Span,
}

/// `enum Name { a, b as "B" }`
#[derive(Debug, Clone, PartialEq)]
pub struct EnumDecl {
    /// Doc comments.
    pub docs: Docs,
    /// The type's name.
    pub name: Ident,
    /// Its variants.
    pub variants: Vec<EnumVariant>,
    /// The whole declaration.
    pub span: Span,
}

/// One variant of a string enum.
#[derive(Debug, Clone, PartialEq)]
pub struct EnumVariant {
    /// Doc comments.
    pub docs: Docs,
    /// The variant's name (its wire value unless renamed).
    pub name: Ident,
    /// `as "wire"`.
    pub rename: Option<Lit>,
}

/// `union Name tag "kind" { A { fields }, B as "b" { fields } }`
#[derive(Debug, Clone, PartialEq)]
pub struct UnionDecl {
    /// Doc comments.
    pub docs: Docs,
    /// The type's name.
    pub name: Ident,
    /// The key holding the variant's name.
    pub tag: Lit,
    /// Its variants.
    pub variants: Vec<UnionVariant>,
    /// The whole declaration.
    pub span: Span,
}

/// One variant of a tagged union.
#[derive(Debug, Clone, PartialEq)]
pub struct UnionVariant {
    /// Doc comments.
    pub docs: Docs,
    /// The variant's name (its tag value unless renamed).
    pub name: Ident,
    /// `as "wire"`.
    pub rename: Option<Lit>,
    /// The variant's fields.
    pub fields: Fields,
}

/// `type Name = type`
#[derive(Debug, Clone, PartialEq)]
pub struct AliasDecl {
    /// Doc comments.
    pub docs: Docs,
    /// The alias's name.
    pub name: Ident,
    /// What it stands for.
    pub ty: TypeExpr,
    /// The whole declaration.
    pub span: Span,
}

// ---- typed directives ---------------------------------------------------------------------

/// A key as written: a name or a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// The key's text.
    pub name: String,
    /// Where it was written.
    pub span: Span,
}

/// A key, or a dotted path into the payload (`data.seq`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPath {
    /// The parts, one or more.
    pub parts: Vec<String>,
    /// Where it was written.
    pub span: Span,
}

/// A close code as referred to in a session rule: a name from the `close` block or a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseCodeRef {
    /// The name, or the number's digits.
    pub text: String,
    /// Where it was written.
    pub span: Span,
}

/// The typed directives of a protocol block. A directive that is absent, duplicated (only the
/// first counts), malformed, or not allowed in an extension is `None` or left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProtocolBlock {
    /// `version "1.0"`.
    pub version: Option<String>,
    /// `path "/socket"`, and where it is written.
    pub path: Option<(String, Span)>,
    /// `endpoints a, b, c`.
    pub endpoints: Option<Endpoints>,
    /// `links a -> b, b -> c`.
    pub links: Option<Links>,
    /// `wire { ... }`.
    pub wire: Option<WireBlock>,
    /// `close { ... }`.
    pub close: Option<Vec<CloseCodeDecl>>,
    /// `session { ... }`.
    pub session: Option<Vec<SessionDirective>>,
}

/// `endpoints a, b, c`: the names, each well formed (duplicates are the checker's).
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoints {
    /// The names in order.
    pub names: Vec<Ident>,
    /// The whole directive.
    pub span: Span,
}

/// `links a -> b, ...`.
#[derive(Debug, Clone, PartialEq)]
pub struct Links {
    /// The `links` word.
    pub head: Span,
    /// Each link: the side that connects, the side that accepts, and the clause's span.
    pub links: Vec<(Ident, Ident, Span)>,
}

/// One line of a `close` block: `4001 Name "reason"`.
#[derive(Debug, Clone, PartialEq)]
pub struct CloseCodeDecl {
    /// Doc comments.
    pub docs: Docs,
    /// The code, 1000..=4999.
    pub code: u16,
    /// Where the code was written.
    pub code_span: Span,
    /// The name (the `CloseCode` variant, once camel-cased).
    pub name: Ident,
    /// The reason text (the name when left out).
    pub reason: String,
}

/// `wire { ... }`: its directives in order (a later one overrides an earlier one).
#[derive(Debug, Clone, PartialEq)]
pub struct WireBlock {
    /// The `wire` word.
    pub head: Span,
    /// The directives.
    pub items: Vec<WireDirective>,
}

/// The type of a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagType {
    /// `string`.
    String,
    /// `int`.
    Int,
}

/// Where payloads sit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadPlace {
    /// `payload inline`.
    Inline,
    /// `payload KEY`.
    Key(String),
}

/// One directive of a `wire` block.
#[derive(Debug, Clone, PartialEq)]
pub enum WireDirective {
    /// `tag KEY string|int`. `key` is `None` when the directive was malformed, `ty` when the
    /// type was unknown (both reported).
    Tag {
        /// The tag key.
        key: Option<String>,
        /// The tag type.
        ty: Option<TagType>,
    },
    /// `payload inline|KEY`; `None` when malformed (reported).
    Payload(Option<PayloadPlace>),
    /// `sequence KEY`.
    Sequence(String),
    /// `strict`.
    Strict,
    /// `batch`.
    Batch,
    /// `binary text`.
    BinaryText,
    /// `event CLAUSES`.
    Event(Vec<FramingClause>),
    /// `request CLAUSES`.
    Request(Vec<FramingClause>),
    /// `response CLAUSES`.
    Response(Response),
    /// `error tag "error", message KEY`.
    Error {
        /// The error frame's tag.
        tag: String,
        /// The key holding the error text.
        message: String,
    },
}

/// One clause of `event` or `request`, well formed; whether they fit together is already checked
/// (a `carrier` comes with `method` and `args`).
#[derive(Debug, Clone, PartialEq)]
pub enum FramingClause {
    /// `suffix "STRING"`.
    Suffix(String),
    /// `carrier TAG`.
    Carrier(Lit),
    /// `method KEY`.
    Method(String),
    /// `args KEY`.
    Args(String),
    /// `ordered` (requests).
    Ordered,
    /// `id sequence` (requests).
    IdSequence,
    /// `id KEY [optional] [string]` (requests).
    IdKey {
        /// The key.
        key: String,
        /// `optional`.
        optional: bool,
        /// `string`.
        text: bool,
    },
}

/// `response CLAUSES`.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The whole directive.
    pub span: Span,
    /// How replies are recognised, when a clause says so.
    pub matched: Option<ReplyMatcher>,
    /// `id KEY` or `id PATH`.
    pub id: Option<KeyPath>,
    /// `result KEY`.
    pub result: Option<String>,
    /// `error PATH [text|object]`: the path, and whether the error is an object.
    pub error: Option<(KeyPath, bool)>,
}

/// How a `response` recognises replies.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyMatcher {
    /// `suffix "STRING"`.
    Suffix(String),
    /// `carrier TAG`.
    Carrier(Lit),
    /// `untagged`.
    Untagged,
    /// `tag "STRING", for KEY`.
    Tag {
        /// The fixed tag.
        tag: String,
        /// The key naming the request answered.
        for_key: String,
    },
}

/// One directive of a `session` block.
// A session block holds a handful of directives, so the unboxed `Heartbeat` costs nothing that
// matters and keeps matching simple (as for `Item`).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum SessionDirective {
    /// `handshake SIDE sends|requests A | B [, auth FIELD] [, failure CODE]`.
    Handshake(Handshake),
    /// `heartbeat SIDE sends MESSAGE, ...`.
    Heartbeat(Heartbeat),
    /// `before handshake closes CODE|"REASON"`.
    BeforeHandshake(CloseWith),
    /// `invalid ...`.
    Invalid(InvalidRule),
    /// `timeout MS [, closes CODE]`.
    Timeout {
        /// The milliseconds (`None` when negative).
        ms: Option<u64>,
        /// The close code for a handshake that took too long.
        closes: Option<CloseCodeRef>,
    },
    /// `reconnect min MS`.
    ReconnectMin(u64),
    /// `close message NAME, reason FIELD [, code FIELD] [, received only]`.
    CloseMessage {
        /// The message.
        message: Ident,
        /// The field holding the reason.
        reason: Key,
        /// The field holding the close code.
        code: Option<Key>,
        /// `false` with `received only`.
        sent: bool,
    },
}

/// How a link closes: with a code, or with a reason text carried by the close message.
#[derive(Debug, Clone, PartialEq)]
pub enum CloseWith {
    /// A close code.
    Code(CloseCodeRef),
    /// A reason text.
    Reason(String),
}

/// A handshake step.
#[derive(Debug, Clone, PartialEq)]
pub struct Handshake {
    /// The sending side (`client`, `server` or an endpoint); `None` when not a name (reported).
    pub side: Option<Ident>,
    /// `requests` rather than `sends`.
    pub request: bool,
    /// The messages, any one of which makes the step.
    pub messages: Vec<Ident>,
    /// `auth FIELD`.
    pub auth: Option<Key>,
    /// `failure CODE`.
    pub failure: Option<CloseCodeRef>,
    /// `id malformed closes CODE`: a step message whose request id is of the wrong type.
    pub malformed_id: Option<CloseCodeRef>,
}

/// What a heartbeat sends.
#[derive(Debug, Clone, PartialEq)]
pub enum BeatSpec {
    /// A message.
    Message(Ident),
    /// `text "..."`.
    Text(String),
}

/// How often a heartbeat beats.
#[derive(Debug, Clone, PartialEq)]
pub enum IntervalSpec {
    /// `every MS`.
    Fixed(u64),
    /// `every Message.field`.
    FromField(Ident, Ident),
}

/// A heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct Heartbeat {
    /// The whole directive.
    pub span: Span,
    /// The pinging side; `None` when not a name (reported).
    pub side: Option<Ident>,
    /// What it sends; `None` when not a message name (reported).
    pub ping: Option<BeatSpec>,
    /// `SIDE replies ...`.
    pub pong: Option<BeatSpec>,
    /// `every ...`; `None` when written but malformed (reported).
    pub interval: Option<IntervalSpec>,
    /// `grace MS`.
    pub grace_ms: u64,
    /// `timeout MS` (`None` when left out or negative).
    pub timeout_ms: Option<u64>,
    /// `missed closes CODE`.
    pub missed: Option<CloseCodeRef>,
    /// `client missed closes CODE`.
    pub client_missed: Option<CloseCodeRef>,
    /// `early closes CODE`.
    pub early: Option<CloseCodeRef>,
    /// `variant "STRING"`.
    pub variant: Option<String>,
}

/// What an `invalid` rule does.
#[derive(Debug, Clone, PartialEq)]
pub enum InvalidAction {
    /// `answers "TEXT" [, name "NAME"]`.
    Answers(String, Option<String>),
    /// `closes "TEXT"`.
    Closes(String),
    /// `ignored`.
    Ignored,
}

/// An `invalid` rule.
#[derive(Debug, Clone, PartialEq)]
pub enum InvalidRule {
    /// `invalid closes "REASON"`.
    Closes(String),
    /// `invalid KIND [of A | B] ACTION`.
    Kind {
        /// The kind of invalid frame.
        kind: &'static str,
        /// The messages it applies to (`payload` only).
        messages: Vec<Ident>,
        /// What happens.
        action: InvalidAction,
    },
}
