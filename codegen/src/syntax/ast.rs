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
    /// The directives of the block (`version`, `wire { }`, `close { }`, ...).
    pub directives: Vec<Directive>,
    /// The whole declaration.
    pub span: Span,
}

/// One directive: a head word, comma-separated clauses of atoms, and an optional nested block.
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
