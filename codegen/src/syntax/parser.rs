//! A hand-written recursive-descent parser: [`Token`]s in, [`ast::File`] out.
//!
//! Keywords are contextual: `message`, `from`, `where`, ... are plain identifiers that mean
//! something only where the grammar expects them, so a field may be called `type`.
//!
//! Every syntax error is reported and parsing goes on. An error in an item's header skips to the
//! next line that starts an item (`message NAME from ...`, `struct NAME {`, ...); an error inside
//! a braced list skips to the next `,`, the next line or the closing delimiter; an error in a
//! directive skips to the next line. Nesting is capped at [`MAX_DEPTH`] so that no input can
//! overflow the stack, and no input can make the parser panic.
//!
//! # Error codes
//!
//! Lexer (see `lexer.rs`):
//! - `E0001` unexpected character(s)
//! - `E0002` unterminated string
//! - `E0003` unknown or malformed escape in a string
//! - `E0004` integer literal out of the `i64` range
//! - `E0005` letters glued to an integer literal (`10ms`)
//! - `E0006` the file is not valid UTF-8
//!
//! Parser:
//! - `E0010` expected one thing, found another (the catch-all syntax error)
//! - `E0011` the file has no `protocol` block
//! - `E0012` the file has more than one `protocol` block
//! - `E0013` unclosed delimiter (`{`, `(` or `[` never closed)
//! - `E0014` nesting too deep (types or directive blocks nested more than [`MAX_DEPTH`] levels)
//! - `E0015` expected an item (`message`, `event`, `request`, `struct`, `enum`, `union`, `type`)
//! - `E0016` the `protocol` block comes after messages or types
//! - `E0017` a map's key type is not `string`
//! - `E0018` more than one rest field (`..name`) in a field list
//! - `E0019` a doc comment that documents nothing
//! - `E0020` an inner doc comment (`//!`) that is not at the top of the file
//! - `E0021` unexpected closing delimiter at the top level
//! - `E0022` a rest field with a type (`..extra: any`)
//! - `E0023` a token that is not allowed in a directive
//! - `E0024` an `enum` or `union` with no variants

use super::ast::{
    self, AliasDecl, Atom, Clause, Constraint, ConstraintKind, Directive, Docs, EnumDecl,
    EnumVariant, Field, Fields, Ident, Item, Lit, LitValue, MessageDecl, MessageKind, Payload,
    ProtocolDecl, Range, Route, StructDecl, TypeExpr, TypeKind, UnionDecl, UnionVariant,
};
use super::lexer::{Token, TokenKind};
use crate::diagnostics::{Diagnostic, Diagnostics, Span, did_you_mean};

/// How deeply types (`[[...]]`) and directive blocks (`a { b { ... } }`) may nest.
pub(crate) const MAX_DEPTH: usize = 128;

/// The words that start an item.
const ITEM_KEYWORDS: [&str; 7] = [
    "message", "event", "request", "struct", "enum", "union", "type",
];

/// Words the parser checks after `where` and `and`.
const CONSTRAINT_KEYWORDS: [&str; 3] = ["len", "pattern", "non_empty"];

/// Stands in for the end of input if the token list is ever empty; the lexer always ends the
/// list with its own `Eof`, so this is only a guard against indexing out of bounds.
static EOF: Token = Token {
    kind: TokenKind::Eof,
    span: Span {
        file: 0,
        start: 0,
        end: 0,
    },
    line_start: true,
};

/// An error was reported; the caller should recover (skip to a point where it can go on).
#[derive(Debug)]
struct Reported;

type PResult<T> = Result<T, Reported>;

/// One entry of a field list: a field or the rest field.
enum FieldEntry {
    Field(Field),
    /// `..name`, with the span from `..` to the name.
    Rest(Ident, Span),
}

/// The parser's state.
pub(crate) struct Parser<'a> {
    file: u32,
    text: &'a str,
    /// The tokens, ending with `Eof`.
    tokens: &'a [Token],
    /// Index of the current token; never moves past `Eof`.
    pos: usize,
    diags: &'a mut Diagnostics,
    /// Current nesting of types and directive blocks.
    depth: usize,
    /// The token index of the last error: a second error at the same token is almost always a
    /// consequence of the first (most visibly at the end of the file, where every open construct
    /// would complain), so it is dropped.
    last_error_at: Option<usize>,
}

impl<'a> Parser<'a> {
    /// A parser over `tokens` (from [`super::lexer::lex`]) of `text`, file number `file`.
    pub(crate) fn new(
        file: u32,
        text: &'a str,
        tokens: &'a [Token],
        diags: &'a mut Diagnostics,
    ) -> Self {
        Parser {
            file,
            text,
            tokens,
            pos: 0,
            diags,
            depth: 0,
            last_error_at: None,
        }
    }

    // === Files ==================================================================================

    /// `file = inner_doc* protocol item*`
    pub(crate) fn parse_file(mut self) -> ast::File {
        let docs = self.inner_docs();
        let mut protocol: Option<ProtocolDecl> = None;
        // The keyword span of the first `protocol`, even one whose header failed to parse.
        let mut first_protocol: Option<Span> = None;
        let mut first_item: Option<Span> = None;
        let mut items = Vec::new();
        loop {
            let start = self.pos;
            let (item_docs, doc_span) = self.outer_docs();
            let tok = self.peek();
            match &tok.kind {
                TokenKind::Eof => {
                    self.dangling_docs(doc_span, "doc comments go right before an item");
                    break;
                }
                TokenKind::Ident(word) if word == "protocol" => {
                    self.dangling_docs(
                        doc_span,
                        "document the protocol with `//!` lines at the top of the file",
                    );
                    self.check_protocol_position(first_protocol, first_item);
                    first_protocol.get_or_insert(tok.span);
                    match self.parse_protocol() {
                        Ok(decl) if protocol.is_none() => protocol = Some(decl),
                        Ok(_) => {}
                        Err(Reported) => self.recover_to_item(start),
                    }
                }
                TokenKind::Ident(word) if ITEM_KEYWORDS.contains(&word.as_str()) => {
                    first_item.get_or_insert(tok.span);
                    match self.parse_item(item_docs) {
                        Ok(item) => items.push(item),
                        Err(Reported) => self.recover_to_item(start),
                    }
                }
                TokenKind::RBrace | TokenKind::RParen | TokenKind::RBracket => {
                    self.unexpected_closer();
                    self.bump();
                }
                _ => {
                    self.not_an_item();
                    self.recover_to_item(start);
                }
            }
            self.ensure_progress(start);
        }
        if first_protocol.is_none() {
            self.missing_protocol();
        }
        ast::File {
            docs,
            protocol,
            items,
        }
    }

    /// `//!` lines at the very top of the file.
    fn inner_docs(&mut self) -> Docs {
        let mut docs = Docs::default();
        while let TokenKind::InnerDoc(line) = &self.peek().kind {
            docs.lines.push(line.clone());
            self.bump();
        }
        docs
    }

    /// `///` lines before an item, field, variant or directive, and the span they cover. A `//!`
    /// among them is reported and skipped.
    fn outer_docs(&mut self) -> (Docs, Option<Span>) {
        let mut docs = Docs::default();
        let mut span: Option<Span> = None;
        loop {
            let tok = self.peek();
            match &tok.kind {
                TokenKind::OuterDoc(line) => {
                    docs.lines.push(line.clone());
                    span = Some(span.map_or(tok.span, |s| s.to(tok.span)));
                }
                TokenKind::InnerDoc(_) => {
                    let d = Diagnostic::error(
                        "E0020",
                        "inner doc comment `//!` is only allowed at the top of the file",
                        tok.span,
                        "not at the top of the file",
                    )
                    .with_help(
                        "use `///` to document the item, field, variant or directive that follows",
                    );
                    self.report(d);
                }
                _ => return (docs, span),
            }
            self.bump();
        }
    }

    fn dangling_docs(&mut self, span: Option<Span>, help: &str) {
        if let Some(span) = span {
            let d = Diagnostic::error(
                "E0019",
                "doc comment does not document anything",
                span,
                "nothing follows this doc comment",
            )
            .with_help(help.to_string());
            self.report(d);
        }
    }

    /// E0012 for a second `protocol`, E0016 for a first one after items.
    fn check_protocol_position(&mut self, first_protocol: Option<Span>, first_item: Option<Span>) {
        let span = self.peek().span;
        if let Some(first) = first_protocol {
            let d = Diagnostic::error(
                "E0012",
                "more than one `protocol` block",
                span,
                "second `protocol` block",
            )
            .with_secondary(first, "first `protocol` block here")
            .with_help("a definition file describes one protocol; move this one to its own file");
            self.report(d);
        } else if let Some(item) = first_item {
            let d = Diagnostic::error(
                "E0016",
                "the `protocol` block must come before messages and types",
                span,
                "`protocol` after an item",
            )
            .with_secondary(item, "first item here")
            .with_help("move the `protocol` block to the top of the file, after the `//!` lines");
            self.report(d);
        }
    }

    fn missing_protocol(&mut self) {
        let at = Span::new(self.file, 0, 0);
        let d = Diagnostic::error(
            "E0011",
            "missing `protocol` block",
            at,
            "expected `protocol NAME { ... }` in this file",
        )
        .with_help("start the file with `protocol NAME { version \"1\" }`");
        // Pushed directly: it is about the whole file, not a token, so nothing can duplicate it.
        self.diags.push(d);
    }

    /// E0015 at a token that cannot start an item.
    fn not_an_item(&mut self) {
        let tok = self.peek();
        let found = self.describe(tok);
        let mut d = Diagnostic::error(
            "E0015",
            format!("expected an item, found {found}"),
            tok.span,
            "expected `message`, `event`, `request`, `struct`, `enum`, `union` or `type`",
        );
        if let TokenKind::Ident(word) = &tok.kind {
            let candidates = ITEM_KEYWORDS.iter().copied().chain(["protocol"]);
            if let Some(keyword) = did_you_mean(word, candidates) {
                d = d.with_help(format!("did you mean `{keyword}`?"));
            }
        }
        self.report(d);
    }

    /// E0021 at a `}`, `)` or `]` with nothing to close.
    fn unexpected_closer(&mut self) {
        let tok = self.peek();
        let found = self.describe(tok);
        let d = Diagnostic::error(
            "E0021",
            format!("unexpected closing delimiter {found}"),
            tok.span,
            "nothing to close here",
        )
        .with_help("remove it, or look for a missing opening delimiter above");
        self.report(d);
    }

    // === The protocol block =====================================================================

    /// `protocol = "protocol" IDENT ("extends" IDENT)? "{" directive* "}"`
    fn parse_protocol(&mut self) -> PResult<ProtocolDecl> {
        let keyword = self.bump();
        let name = self.expect_ident("a protocol name", "after `protocol`")?;
        let extends = if self.at_word("extends") {
            self.bump();
            Some(self.expect_ident("the base protocol's name", "after `extends`")?)
        } else {
            None
        };
        if !self.at(&TokenKind::LBrace) {
            let mut d = self.expected("`{`", "after the protocol name");
            if let TokenKind::Ident(word) = &self.peek().kind {
                if extends.is_none() && did_you_mean(word, ["extends"]).is_some() {
                    d = d.with_help("did you mean `extends`?");
                }
            }
            return Err(self.report(d));
        }
        let directives = self.directive_block()?;
        Ok(ProtocolDecl {
            name,
            extends,
            directives,
            block: ast::ProtocolBlock::default(),
            span: keyword.span.to(self.prev_span()),
        })
    }

    /// `block = "{" directive* "}"`, at a `{`.
    fn directive_block(&mut self) -> PResult<Vec<Directive>> {
        self.nested("directive blocks", |p| Ok(p.directive_list()))
    }

    /// The directives of a block, at its `{`; consumes through the matching `}`.
    fn directive_list(&mut self) -> Vec<Directive> {
        let open = self.bump();
        let body_start = self.pos;
        let mut directives = Vec::new();
        loop {
            let start = self.pos;
            // Docs before the next item belong to it, so look for items before taking docs.
            if self.peek().kind == TokenKind::Eof || self.at_item_start() {
                self.unclosed(open);
                break;
            }
            let (docs, doc_span) = self.outer_docs();
            if self.at(&TokenKind::RBrace) {
                self.dangling_docs(doc_span, "doc comments go right before a directive");
                self.bump();
                break;
            }
            if self.peek().kind == TokenKind::Eof {
                continue;
            }
            self.require_line_break(body_start);
            match self.directive(docs) {
                Ok(directive) => directives.push(directive),
                // Skip at least the token that failed: it could not start or continue a directive.
                Err(Reported) => self.recover(&TokenKind::RBrace, false, self.pos),
            }
            self.ensure_progress(start);
        }
        directives
    }

    /// Directives go one per line; only the first may share the line of its block's `{`
    /// (`body_start` is the index of the token after it).
    fn require_line_break(&mut self, body_start: usize) {
        let tok = self.peek();
        if tok.line_start || self.pos == body_start {
            return;
        }
        let d = self
            .expected("a line break", "before the next directive")
            .with_help("put each directive on its own line");
        self.report(d);
    }

    /// `directive = doc* head clause ("," clause)* block?`, after the docs.
    ///
    /// The directive ends at a token that starts a new line (unless the line ended with `,`), at
    /// `}`, at a doc comment, or after the `{ ... }` block it opens.
    fn directive(&mut self, docs: Docs) -> PResult<Directive> {
        let head = self.directive_head()?;
        let head_span = head.span();
        let mut clauses = Vec::new();
        let mut atoms = Vec::new();
        let mut block = None;
        loop {
            let tok = self.peek();
            let continues_line = self.prev().is_some_and(|p| p.kind == TokenKind::Comma);
            match &tok.kind {
                TokenKind::RBrace
                | TokenKind::Eof
                | TokenKind::OuterDoc(_)
                | TokenKind::InnerDoc(_) => break,
                _ if tok.line_start && !continues_line => break,
                TokenKind::LBrace => {
                    block = Some(self.directive_block()?);
                    break;
                }
                TokenKind::Comma => {
                    clauses.push(clause(std::mem::take(&mut atoms), head_span));
                    self.bump();
                }
                _ => atoms.push(self.atom()?),
            }
        }
        clauses.push(clause(atoms, head_span));
        Ok(Directive {
            docs,
            head,
            clauses,
            block,
            span: head_span.to(self.prev_span()),
        })
    }

    /// `head = IDENT | INT`
    fn directive_head(&mut self) -> PResult<Atom> {
        let tok = self.peek();
        let head = match &tok.kind {
            TokenKind::Ident(name) => Atom::Ident(ident(name, tok.span)),
            TokenKind::Int(value) => Atom::Lit(int_lit(*value, tok.span)),
            _ => {
                let mut d = self.expected("a directive", "");
                if tok.kind == TokenKind::LBrace {
                    d = d.with_help("a block opens on the line of its directive, as in `wire {`");
                } else {
                    d = d.with_help(
                        "a directive starts with a name or a number, as in `version \"1\"`",
                    );
                }
                return Err(self.report(d));
            }
        };
        self.bump();
        Ok(head)
    }

    /// `atom = IDENT | STRING | INT | path | "|" | "->" | "=" | ":"`
    fn atom(&mut self) -> PResult<Atom> {
        let tok = self.peek();
        let atom = match &tok.kind {
            TokenKind::Ident(_) => return Ok(self.ident_or_path()),
            TokenKind::Str(s) => Atom::Lit(str_lit(s, tok.span)),
            TokenKind::Int(value) => Atom::Lit(int_lit(*value, tok.span)),
            TokenKind::Pipe => Atom::Punct("|", tok.span),
            TokenKind::Arrow => Atom::Punct("->", tok.span),
            TokenKind::Eq => Atom::Punct("=", tok.span),
            TokenKind::Colon => Atom::Punct(":", tok.span),
            _ => {
                let found = self.describe(tok);
                let d = Diagnostic::error(
                    "E0023",
                    format!("{found} is not allowed in a directive"),
                    tok.span,
                    "not allowed here",
                )
                .with_help(
                    "a directive holds names, dotted paths, strings, integers, `|`, `->`, `=` and `:`",
                );
                return Err(self.report(d));
            }
        };
        self.bump();
        Ok(atom)
    }

    /// `IDENT` or `path = IDENT ("." IDENT)+`, at an identifier.
    fn ident_or_path(&mut self) -> Atom {
        let first = self.bump();
        let mut parts = vec![token_ident(first)];
        while self.at(&TokenKind::Dot) {
            self.bump();
            let tok = self.peek();
            match &tok.kind {
                TokenKind::Ident(name) if !tok.line_start => {
                    parts.push(ident(name, tok.span));
                    self.bump();
                }
                _ => {
                    // Keep what was parsed; the rest of the line is still a fine directive.
                    let d = self.expected("a name", "after `.` in a path");
                    self.report(d);
                    break;
                }
            }
        }
        match <[Ident; 1]>::try_from(parts) {
            Ok([only]) => Atom::Ident(only),
            Err(parts) => Atom::Path(parts),
        }
    }

    // === Items ==================================================================================

    /// `item = doc* (message | struct | enum | union | alias)`, at the keyword.
    fn parse_item(&mut self, docs: Docs) -> PResult<Item> {
        let keyword = match &self.peek().kind {
            TokenKind::Ident(word) => word.as_str(),
            _ => "",
        };
        match keyword {
            "message" => self.message(docs, MessageKind::Message).map(Item::Message),
            "event" => self.message(docs, MessageKind::Event).map(Item::Message),
            "request" => self.message(docs, MessageKind::Request).map(Item::Message),
            "struct" => self.struct_decl(docs).map(Item::Struct),
            "enum" => self.enum_decl(docs).map(Item::Enum),
            "union" => self.union_decl(docs).map(Item::Union),
            _ => self.alias(docs).map(Item::Alias),
        }
    }

    /// `message = KIND IDENT ("=" (STRING | INT))? route payload? ("->" payload)?`
    fn message(&mut self, docs: Docs, kind: MessageKind) -> PResult<MessageDecl> {
        let keyword = self.bump();
        let keyword_text = match kind {
            MessageKind::Message => "after `message`",
            MessageKind::Event => "after `event`",
            MessageKind::Request => "after `request`",
        };
        let name = self.expect_ident("a name", keyword_text)?;
        let tag = if self.eat(&TokenKind::Eq).is_some() {
            Some(self.tag()?)
        } else {
            None
        };
        let route = self.route(tag.is_some())?;
        let payload = self.payload()?;
        let reply = match self.eat(&TokenKind::Arrow) {
            Some(arrow) => match self.payload()? {
                Some(reply) => Some((arrow.span, reply)),
                None => {
                    let d = self
                        .expected("a reply payload", "after `->`")
                        .with_help("a payload is `{ fields }`, `( fields )` or `: type`");
                    return Err(self.report(d));
                }
            },
            None => None,
        };
        Ok(MessageDecl {
            docs,
            kind,
            kind_span: keyword.span,
            name,
            tag,
            route,
            payload,
            reply,
            span: keyword.span.to(self.prev_span()),
        })
    }

    /// The tag after `=`: a string or an integer.
    fn tag(&mut self) -> PResult<Lit> {
        match self.literal() {
            Some(lit) => Ok(lit),
            None => {
                let d = self
                    .expected("a string or an integer", "after `=`")
                    .with_help("a tag is written `= \"name\"` or `= 4`");
                Err(self.report(d))
            }
        }
    }

    /// `route = "from" IDENT | "on" IDENT "->" IDENT ("," IDENT "->" IDENT)*`
    fn route(&mut self, after_tag: bool) -> PResult<Route> {
        if self.at_word("from") {
            self.bump();
            let who = self.expect_ident("`client`, `server` or `any`", "after `from`")?;
            return Ok(Route::From(who));
        }
        if !self.at_word("on") {
            let context = if after_tag {
                "after the tag"
            } else {
                "after the message name"
            };
            let mut d = self.expected("`from` or `on`", context);
            if let TokenKind::Ident(word) = &self.peek().kind {
                if let Some(keyword) = did_you_mean(word, ["from", "on"]) {
                    d = d.with_help(format!("did you mean `{keyword}`?"));
                }
            }
            let d = d.with_help(
                "say who sends it: `from client`, `from server`, `from any`, or `on SENDER -> RECEIVER`",
            );
            return Err(self.report(d));
        }
        self.bump();
        let mut links = Vec::new();
        loop {
            let context = if links.is_empty() {
                "after `on`"
            } else {
                "after `,`"
            };
            let sender = self.expect_ident("an endpoint name", context)?;
            self.expect(
                &TokenKind::Arrow,
                "`->`",
                "between the sender and the receiver",
            )?;
            let receiver = self.expect_ident("an endpoint name", "after `->`")?;
            links.push((sender, receiver));
            if self.eat(&TokenKind::Comma).is_none() {
                return Ok(Route::On(links));
            }
        }
    }

    /// `payload = "{" fields "}" | "(" fields ")" | ":" type`, or `None` if none starts here.
    fn payload(&mut self) -> PResult<Option<Payload>> {
        Ok(Some(match self.peek().kind {
            TokenKind::LBrace => Payload::Object(self.fields(TokenKind::RBrace)),
            TokenKind::LParen => Payload::Positional(self.fields(TokenKind::RParen)),
            TokenKind::Colon => {
                self.bump();
                Payload::Type(self.parse_type()?)
            }
            _ => return Ok(None),
        }))
    }

    /// `struct = "struct" IDENT ("{" fields "}" | "(" fields ")")`
    fn struct_decl(&mut self, docs: Docs) -> PResult<StructDecl> {
        let keyword = self.bump();
        let name = self.expect_ident("a name", "after `struct`")?;
        let positional = self.peek().kind == TokenKind::LParen;
        let fields = if positional {
            self.fields(TokenKind::RParen)
        } else {
            self.expect_open_brace("after the struct name")?;
            self.fields(TokenKind::RBrace)
        };
        Ok(StructDecl {
            docs,
            name,
            fields,
            positional,
            span: keyword.span.to(self.prev_span()),
        })
    }

    /// `enum = "enum" IDENT "{" (doc* IDENT ("as" STRING)?) ("," ...)* ","? "}"`
    fn enum_decl(&mut self, docs: Docs) -> PResult<EnumDecl> {
        let keyword = self.bump();
        let name = self.expect_ident("a name", "after `enum`")?;
        self.expect_open_brace("after the enum name")?;
        let (variants, body) = self.comma_list(
            TokenKind::RBrace,
            "variant",
            starts_enum_variant,
            |p, docs| p.enum_variant(docs),
        );
        if variants.is_empty() {
            self.no_variants("enum", &name, body);
        }
        Ok(EnumDecl {
            docs,
            name,
            variants,
            span: keyword.span.to(self.prev_span()),
        })
    }

    fn enum_variant(&mut self, docs: Docs) -> PResult<EnumVariant> {
        let name = self.expect_ident("a variant name", "")?;
        let rename = self.rename()?;
        Ok(EnumVariant { docs, name, rename })
    }

    /// `union = "union" IDENT "tag" STRING "{" (doc* IDENT ("as" STRING)? "{" fields "}") ("," ...)* ","? "}"`
    fn union_decl(&mut self, docs: Docs) -> PResult<UnionDecl> {
        let keyword = self.bump();
        let name = self.expect_ident("a name", "after `union`")?;
        if !self.at_word("tag") {
            let d = self.expected("`tag`", "after the union name").with_help(
                "name the key that holds the variant, as in `union Shape tag \"kind\" { ... }`",
            );
            return Err(self.report(d));
        }
        self.bump();
        let tag = match self.peek().kind {
            TokenKind::Str(_) => self.literal(),
            _ => None,
        };
        let Some(tag) = tag else {
            let d = self
                .expected("a string", "after `tag`")
                .with_help("the tag key is written in quotes, as in `tag \"kind\"`");
            return Err(self.report(d));
        };
        self.expect_open_brace("after the union's tag")?;
        let (variants, body) = self.comma_list(
            TokenKind::RBrace,
            "variant",
            starts_union_variant,
            |p, docs| p.union_variant(docs),
        );
        if variants.is_empty() {
            self.no_variants("union", &name, body);
        }
        Ok(UnionDecl {
            docs,
            name,
            tag,
            variants,
            span: keyword.span.to(self.prev_span()),
        })
    }

    fn union_variant(&mut self, docs: Docs) -> PResult<UnionVariant> {
        let name = self.expect_ident("a variant name", "")?;
        let rename = self.rename()?;
        if !self.at(&TokenKind::LBrace) {
            let d = self
                .expected("`{`", "after the variant name")
                .with_help("a variant is written `Name { fields }`, or `Name {}` without fields");
            return Err(self.report(d));
        }
        let fields = self.fields(TokenKind::RBrace);
        Ok(UnionVariant {
            docs,
            name,
            rename,
            fields,
        })
    }

    /// E0024: an enum or union needs at least one variant.
    fn no_variants(&mut self, what: &str, name: &Ident, body: Span) {
        let d = Diagnostic::error(
            "E0024",
            format!("`{what} {}` has no variants", name.name),
            body,
            "expected at least one variant",
        );
        // Reported at the closing brace's token: nothing else can be wrong there.
        self.report(d);
    }

    /// `alias = "type" IDENT "=" type`
    fn alias(&mut self, docs: Docs) -> PResult<AliasDecl> {
        let keyword = self.bump();
        let name = self.expect_ident("a name", "after `type`")?;
        self.expect(&TokenKind::Eq, "`=`", "after the alias name")?;
        let ty = self.parse_type()?;
        Ok(AliasDecl {
            docs,
            name,
            ty,
            span: keyword.span.to(self.prev_span()),
        })
    }

    // === Fields =================================================================================

    /// `fields` between the current `{` or `(` and `close`.
    fn fields(&mut self, close: TokenKind) -> Fields {
        let (entries, span) = self.comma_list(close, "field", starts_field, Self::field_entry);
        let mut fields = Vec::new();
        let mut rest: Option<(Ident, Span)> = None;
        for entry in entries {
            match entry {
                FieldEntry::Field(field) => fields.push(field),
                FieldEntry::Rest(name, span) => match &rest {
                    None => rest = Some((name, span)),
                    Some((_, first)) => {
                        let d = Diagnostic::error(
                            "E0018",
                            "more than one rest field",
                            span,
                            "second rest field",
                        )
                        .with_secondary(*first, "first rest field here")
                        .with_help("a field list keeps its unknown keys in one `..name` field");
                        // Not `report`: the list is parsed, so no token-based deduplication.
                        self.diags.push(d);
                    }
                },
            }
        }
        Fields {
            fields,
            rest: rest.map(|(name, _)| name),
            span,
        }
    }

    /// `field = doc* IDENT ("as" STRING)? ":" type ("where" constraint ("and" constraint)*)?`
    /// or `doc* ".." IDENT`, after the docs.
    fn field_entry(&mut self, docs: Docs) -> PResult<FieldEntry> {
        if self.at(&TokenKind::DotDot) {
            return self.rest_field();
        }
        let name = self.expect_ident("a field name", "")?;
        let rename = self.rename()?;
        if !self.at(&TokenKind::Colon) {
            let tok = self.peek();
            let mut d = self.expected("`:`", "after the field name");
            if !tok.line_start && starts_type(&tok.kind) {
                d = d.with_help("add `:` between the field name and its type");
            }
            return Err(self.report(d));
        }
        self.bump();
        let ty = self.parse_type()?;
        let constraints = if self.at_word("where") {
            self.bump();
            self.constraints()?
        } else {
            Vec::new()
        };
        Ok(FieldEntry::Field(Field {
            docs,
            span: name.span.to(self.prev_span()),
            name,
            rename,
            ty,
            constraints,
        }))
    }

    /// `".." IDENT`, at the `..`. Its docs have no place in the tree and are dropped.
    fn rest_field(&mut self) -> PResult<FieldEntry> {
        let dots = self.bump();
        let name = self.expect_ident("a name", "after `..`")?;
        if let Some(colon) = self.eat(&TokenKind::Colon) {
            // Parse the type anyway, so the list goes on after it.
            let ty = self.parse_type()?;
            let d = Diagnostic::error(
                "E0022",
                "a rest field has no type",
                colon.span.to(ty.span),
                "remove this type",
            )
            .with_help("the rest field always holds the other keys, as a map of string to `any`");
            self.report(d);
        }
        let span = dots.span.to(name.span);
        Ok(FieldEntry::Rest(name, span))
    }

    /// `("as" STRING)?`
    fn rename(&mut self) -> PResult<Option<Lit>> {
        if !self.at_word("as") {
            return Ok(None);
        }
        self.bump();
        let tok = self.peek();
        match &tok.kind {
            TokenKind::Str(s) => {
                self.bump();
                Ok(Some(str_lit(s, tok.span)))
            }
            _ => {
                let d = self.expected("a string", "after `as`").with_help(
                    "write the name used on the wire in quotes, as in `as \"displayName\"`",
                );
                Err(self.report(d))
            }
        }
    }

    // === Lists ==================================================================================

    /// Parses `open elem, elem, ... close` at the opening delimiter, with recovery inside.
    ///
    /// Returns the elements and the span from the opening to the closing delimiter (or to the
    /// last token read, if the list is never closed). `what` names an element in messages;
    /// `starts_elem` recognises an element that follows without a comma, so that a missing `,`
    /// is one error rather than a skipped element.
    fn comma_list<T>(
        &mut self,
        close: TokenKind,
        what: &str,
        starts_elem: fn(&Self) -> bool,
        mut elem: impl FnMut(&mut Self, Docs) -> PResult<T>,
    ) -> (Vec<T>, Span) {
        let open = self.bump();
        let mut out = Vec::new();
        loop {
            let start = self.pos;
            if self.peek().kind == TokenKind::Eof || self.at_item_start() {
                self.unclosed(open);
                break;
            }
            let (docs, doc_span) = self.outer_docs();
            if self.at(&close) {
                let help = format!("doc comments go right before a {what}");
                self.dangling_docs(doc_span, &help);
                self.bump();
                break;
            }
            if self.peek().kind == TokenKind::Eof {
                continue;
            }
            match elem(self, docs) {
                Ok(value) => {
                    out.push(value);
                    self.separator(&close, what, starts_elem, start);
                }
                Err(Reported) => self.recover(&close, true, start),
            }
            self.ensure_progress(start);
        }
        (out, open.span.to(self.prev_span()))
    }

    /// After an element: `,`, the closing delimiter, or an error.
    fn separator(
        &mut self,
        close: &TokenKind,
        what: &str,
        starts_elem: fn(&Self) -> bool,
        start: usize,
    ) {
        if self.eat(&TokenKind::Comma).is_some()
            || self.at(close)
            || self.peek().kind == TokenKind::Eof
            || self.at_item_start()
        {
            return;
        }
        if starts_elem(self) {
            let d = self
                .expected("`,`", &format!("after the {what}"))
                .with_help(format!("add `,` between {what}s"));
            self.report(d);
            return;
        }
        let close_text = close.punct().unwrap_or("}");
        let d = self.expected(
            &format!("`,` or `{close_text}`"),
            &format!("after the {what}"),
        );
        self.report(d);
        self.recover(close, true, start);
    }

    // === Types ==================================================================================

    /// `type = primary ("|" primary)*`; nested unions are flattened into one.
    fn parse_type(&mut self) -> PResult<TypeExpr> {
        self.nested("types", Self::union_type)
    }

    fn union_type(&mut self) -> PResult<TypeExpr> {
        let first = self.postfix_type()?;
        if !self.at(&TokenKind::Pipe) {
            return Ok(first);
        }
        let start = first.span;
        let mut members = Vec::new();
        push_union_member(&mut members, first);
        while self.eat(&TokenKind::Pipe).is_some() {
            let member = self.postfix_type()?;
            push_union_member(&mut members, member);
        }
        Ok(TypeExpr {
            kind: TypeKind::Union(members),
            span: start.to(self.prev_span()),
        })
    }

    /// `primary "?"*`
    fn postfix_type(&mut self) -> PResult<TypeExpr> {
        let mut ty = self.primary_type()?;
        while let Some(question) = self.eat(&TokenKind::Question) {
            let span = ty.span.to(question.span);
            ty = TypeExpr {
                kind: TypeKind::Optional(Box::new(ty)),
                span,
            };
        }
        Ok(ty)
    }

    /// `IDENT | "null" | STRING | INT | "[" type "]" | "{" "string" ":" type "}" | "(" type ")"`
    fn primary_type(&mut self) -> PResult<TypeExpr> {
        let tok = self.peek();
        let kind = match &tok.kind {
            TokenKind::Ident(name) if name == "null" => TypeKind::Null,
            TokenKind::Ident(name) => TypeKind::Named(ident(name, tok.span)),
            TokenKind::Str(s) => TypeKind::Const(str_lit(s, tok.span)),
            TokenKind::Int(value) => TypeKind::Const(int_lit(*value, tok.span)),
            TokenKind::LBracket => return self.array_type(),
            TokenKind::LBrace => return self.map_type(),
            TokenKind::LParen => return self.group_type(),
            _ => {
                let d = self.expected("a type", "");
                return Err(self.report(d));
            }
        };
        self.bump();
        Ok(TypeExpr {
            kind,
            span: tok.span,
        })
    }

    /// `"[" type "]"`
    fn array_type(&mut self) -> PResult<TypeExpr> {
        let open = self.bump();
        let item = self.parse_type()?;
        self.close(open, &TokenKind::RBracket, "to close the array type")?;
        Ok(TypeExpr {
            kind: TypeKind::Array(Box::new(item)),
            span: open.span.to(self.prev_span()),
        })
    }

    /// `"{" "string" ":" type "}"`
    fn map_type(&mut self) -> PResult<TypeExpr> {
        let open = self.bump();
        let key = self.parse_type()?;
        let is_string = matches!(&key.kind, TypeKind::Named(name) if name.name == "string");
        if !is_string {
            let written = self
                .text
                .get(key.span.start as usize..key.span.end as usize);
            let d = Diagnostic::error(
                "E0017",
                format!(
                    "map keys must be `string`, found `{}`",
                    written.unwrap_or("?")
                ),
                key.span,
                "JSON object keys are always strings",
            )
            .with_help("write `{string: T}`; for an object with fixed keys, declare a `struct`");
            self.report(d);
        }
        if self.at(&TokenKind::RBrace) {
            // `{T}`: take the `}` anyway, so it does not close the enclosing braces.
            let d = self
                .expected("`:`", "after the map's key type")
                .with_help("a map is written `{string: T}`");
            self.report(d);
            self.bump();
            return Ok(TypeExpr {
                kind: TypeKind::Map(Box::new(key)),
                span: open.span.to(self.prev_span()),
            });
        }
        self.expect(&TokenKind::Colon, "`:`", "after the map's key type")?;
        let value = self.parse_type()?;
        self.close(open, &TokenKind::RBrace, "to close the map type")?;
        Ok(TypeExpr {
            kind: TypeKind::Map(Box::new(value)),
            span: open.span.to(self.prev_span()),
        })
    }

    /// `"(" type ")"`: grouping only; the span takes in the parentheses.
    fn group_type(&mut self) -> PResult<TypeExpr> {
        let open = self.bump();
        let inner = self.parse_type()?;
        self.close(open, &TokenKind::RParen, "to close the group")?;
        Ok(TypeExpr {
            kind: inner.kind,
            span: open.span.to(self.prev_span()),
        })
    }

    // === Constraints ============================================================================

    /// `constraint ("and" constraint)*`, after `where`.
    fn constraints(&mut self) -> PResult<Vec<Constraint>> {
        let mut constraints = vec![self.constraint("after `where`")?];
        while self.at_word("and") {
            self.bump();
            constraints.push(self.constraint("after `and`")?);
        }
        Ok(constraints)
    }

    /// `constraint = range | "len" range | "pattern" STRING | "non_empty"`
    fn constraint(&mut self, context: &str) -> PResult<Constraint> {
        let tok = self.peek();
        let kind = match &tok.kind {
            TokenKind::Ident(word) if word == "len" => {
                self.bump();
                ConstraintKind::Len(self.range("after `len`")?)
            }
            TokenKind::Ident(word) if word == "pattern" => {
                self.bump();
                ConstraintKind::Pattern(self.pattern()?)
            }
            TokenKind::Ident(word) if word == "non_empty" => {
                self.bump();
                ConstraintKind::NonEmpty
            }
            TokenKind::Int(_) | TokenKind::DotDot | TokenKind::DotDotEq => {
                ConstraintKind::Range(self.range(context)?)
            }
            _ => {
                let mut d = self.expected("a constraint", context);
                let suggestion = match &tok.kind {
                    TokenKind::Ident(word) => did_you_mean(word, CONSTRAINT_KEYWORDS),
                    _ => None,
                };
                d = match suggestion {
                    Some(keyword) => d.with_help(format!("did you mean `{keyword}`?")),
                    None => d.with_help(
                        "a constraint is a range such as `1..10`, `len RANGE`, `pattern \"regex\"` or `non_empty`",
                    ),
                };
                return Err(self.report(d));
            }
        };
        Ok(Constraint {
            kind,
            span: tok.span.to(self.prev_span()),
        })
    }

    /// The string after `pattern`.
    fn pattern(&mut self) -> PResult<String> {
        if let TokenKind::Str(s) = &self.peek().kind {
            self.bump();
            return Ok(s.clone());
        }
        let d = self
            .expected("a string", "after `pattern`")
            .with_help("write the regular expression in quotes, as in `pattern \"^[a-z]+$\"`");
        Err(self.report(d))
    }

    /// `range = INT ".." INT? | INT "..=" INT | ".." INT | "..=" INT | INT`
    fn range(&mut self, context: &str) -> PResult<Range> {
        let min = self.eat_int();
        match self.peek().kind {
            TokenKind::DotDot => {
                self.bump();
                let max = self.eat_int();
                if min.is_none() && max.is_none() {
                    let d = self
                        .expected("an integer", "after `..`")
                        .with_help("a range needs at least one bound, as in `1..` or `..10`");
                    return Err(self.report(d));
                }
                Ok(Range {
                    min,
                    max,
                    max_inclusive: false,
                })
            }
            TokenKind::DotDotEq => {
                self.bump();
                let Some(max) = self.eat_int() else {
                    let d = self
                        .expected("an integer", "after `..=`")
                        .with_help("`..=` needs an upper bound; `1..` has none");
                    return Err(self.report(d));
                };
                Ok(Range {
                    min,
                    max: Some(max),
                    max_inclusive: true,
                })
            }
            _ => match min {
                Some(value) => Ok(Range {
                    min: Some(value),
                    max: Some(value),
                    max_inclusive: true,
                }),
                None => {
                    let d = self
                        .expected("a range", context)
                        .with_help("a range is written `1..10`, `1..=9`, `1..`, `..10` or `5`");
                    Err(self.report(d))
                }
            },
        }
    }

    // === Recovery ===============================================================================

    /// Skips to the next line that starts an item (or its docs), or to the end of the file.
    ///
    /// Outside the broken item's braces, a line starting with any name also stops the skip: it
    /// is most likely an item with a misspelled keyword (`stuct A {}`) or a broken header, which
    /// deserves its own error rather than being skipped silently.
    fn recover_to_item(&mut self, from: usize) {
        let mut depth = 0usize;
        loop {
            let tok = self.peek();
            if tok.kind == TokenKind::Eof {
                return;
            }
            if self.pos > from && tok.line_start {
                let may_start_item =
                    matches!(tok.kind, TokenKind::Ident(_) | TokenKind::OuterDoc(_));
                if self.at_item_start() || (depth == 0 && may_start_item) {
                    return;
                }
            }
            match tok.kind {
                TokenKind::LBrace | TokenKind::LParen | TokenKind::LBracket => depth += 1,
                TokenKind::RBrace | TokenKind::RParen | TokenKind::RBracket => {
                    depth = depth.saturating_sub(1);
                }
                _ => {}
            }
            self.bump();
        }
    }

    /// Skips the rest of a broken list element or directive: to the `close` delimiter that ends
    /// the enclosing list (not consumed), past a `,` if `stop_at_comma`, or to the next line that
    /// does not start at `from` (the element's first token), with brackets kept balanced.
    fn recover(&mut self, close: &TokenKind, stop_at_comma: bool, from: usize) {
        let mut depth = 0usize;
        loop {
            let tok = self.peek();
            if tok.kind == TokenKind::Eof {
                return;
            }
            if self.pos > from && tok.line_start && (depth == 0 || self.at_item_start()) {
                return;
            }
            if depth == 0 && tok.kind == *close {
                return;
            }
            if depth == 0 && stop_at_comma && tok.kind == TokenKind::Comma {
                self.bump();
                return;
            }
            match tok.kind {
                TokenKind::LBrace | TokenKind::LParen | TokenKind::LBracket => depth += 1,
                TokenKind::RBrace | TokenKind::RParen | TokenKind::RBracket => {
                    depth = depth.saturating_sub(1);
                }
                _ => {}
            }
            self.bump();
        }
    }

    /// A loop that made no progress would spin forever; step over one token.
    fn ensure_progress(&mut self, start: usize) {
        if self.pos == start {
            self.bump();
        }
    }

    /// Whether an item starts here, at the start of a line (looking past its doc comments).
    fn at_item_start(&self) -> bool {
        let mut i = self.pos;
        while matches!(
            self.tok(i).kind,
            TokenKind::OuterDoc(_) | TokenKind::InnerDoc(_)
        ) {
            i += 1;
        }
        self.tok(i).line_start && self.item_head_at(i)
    }

    /// Whether the tokens at `i` look like an item header, checked on the word after the name so
    /// that a field called `type` or a wire directive `request carrier 4` does not qualify.
    fn item_head_at(&self, i: usize) -> bool {
        let word = |k: usize| match &self.tok(i + k).kind {
            TokenKind::Ident(word) => Some(word.as_str()),
            _ => None,
        };
        let (Some(keyword), Some(_name)) = (word(0), word(1)) else {
            return false;
        };
        let third = &self.tok(i + 2).kind;
        match keyword {
            "message" | "event" | "request" => {
                *third == TokenKind::Eq || matches!(word(2), Some("from" | "on"))
            }
            "struct" | "enum" => *third == TokenKind::LBrace,
            "union" => word(2) == Some("tag"),
            "type" => *third == TokenKind::Eq,
            "protocol" => *third == TokenKind::LBrace || word(2) == Some("extends"),
            _ => false,
        }
    }

    /// Runs `f` one nesting level deeper, or reports E0014 if that is too deep.
    fn nested<T>(&mut self, what: &str, f: impl FnOnce(&mut Self) -> PResult<T>) -> PResult<T> {
        if self.depth >= MAX_DEPTH {
            let d = Diagnostic::error(
                "E0014",
                format!("nesting too deep: {what} nest at most {MAX_DEPTH} levels"),
                self.peek().span,
                "too deeply nested",
            )
            .with_help("give the inner part a name of its own");
            return Err(self.report(d));
        }
        self.depth += 1;
        let result = f(self);
        self.depth -= 1;
        result
    }

    // === Tokens =================================================================================

    fn tok(&self, i: usize) -> &'a Token {
        let tokens: &'a [Token] = self.tokens;
        tokens.get(i).unwrap_or(&EOF)
    }

    fn peek(&self) -> &'a Token {
        self.tok(self.pos)
    }

    /// The last token consumed.
    fn prev(&self) -> Option<&'a Token> {
        let tokens: &'a [Token] = self.tokens;
        self.pos.checked_sub(1).and_then(|i| tokens.get(i))
    }

    fn prev_span(&self) -> Span {
        self.prev().map_or(self.peek().span, |t| t.span)
    }

    /// Consumes the current token, except `Eof`, and returns it.
    fn bump(&mut self) -> &'a Token {
        let tok = self.peek();
        if tok.kind != TokenKind::Eof && self.pos < self.tokens.len() {
            self.pos += 1;
        }
        tok
    }

    fn at(&self, kind: &TokenKind) -> bool {
        self.peek().kind == *kind
    }

    fn at_word(&self, word: &str) -> bool {
        matches!(&self.peek().kind, TokenKind::Ident(w) if w == word)
    }

    fn eat(&mut self, kind: &TokenKind) -> Option<&'a Token> {
        if self.at(kind) {
            Some(self.bump())
        } else {
            None
        }
    }

    fn eat_int(&mut self) -> Option<i64> {
        match self.peek().kind {
            TokenKind::Int(value) => {
                self.bump();
                Some(value)
            }
            _ => None,
        }
    }

    /// A string or integer literal, consumed; `None` (nothing consumed) for anything else.
    fn literal(&mut self) -> Option<Lit> {
        let tok = self.peek();
        let lit = match &tok.kind {
            TokenKind::Str(s) => str_lit(s, tok.span),
            TokenKind::Int(value) => int_lit(*value, tok.span),
            _ => return None,
        };
        self.bump();
        Some(lit)
    }

    fn expect(&mut self, kind: &TokenKind, thing: &str, context: &str) -> PResult<&'a Token> {
        match self.eat(kind) {
            Some(tok) => Ok(tok),
            None => {
                let d = self.expected(thing, context);
                Err(self.report(d))
            }
        }
    }

    fn expect_ident(&mut self, thing: &str, context: &str) -> PResult<Ident> {
        let tok = self.peek();
        match &tok.kind {
            TokenKind::Ident(name) => {
                self.bump();
                Ok(ident(name, tok.span))
            }
            _ => {
                let d = self.expected(thing, context);
                Err(self.report(d))
            }
        }
    }

    fn expect_open_brace(&mut self, context: &str) -> PResult<()> {
        if self.at(&TokenKind::LBrace) {
            return Ok(());
        }
        let d = self.expected("`{`", context);
        Err(self.report(d))
    }

    /// Consumes `close`, matching `open`, or reports it missing.
    fn close(&mut self, open: &Token, close: &TokenKind, context: &str) -> PResult<()> {
        if self.eat(close).is_some() {
            return Ok(());
        }
        if self.peek().kind == TokenKind::Eof || self.at_item_start() {
            return Err(self.unclosed(open));
        }
        let close_text = close.punct().unwrap_or("?");
        let d = self
            .expected(&format!("`{close_text}`"), context)
            .with_secondary(open.span, "unclosed delimiter");
        Err(self.report(d))
    }

    // === Diagnostics ============================================================================

    /// Records `diagnostic`, unless an error was already reported at the current token.
    ///
    /// An unclosed delimiter is always worth its own error, except at the end of the file, where
    /// every construct still open would report one.
    fn report(&mut self, diagnostic: Diagnostic) -> Reported {
        let unclosed_before_item = diagnostic.code == "E0013" && self.peek().kind != TokenKind::Eof;
        let repeated = self.last_error_at == Some(self.pos) && !unclosed_before_item;
        if !repeated && !self.follows_unknown_character() {
            self.diags.push(diagnostic);
        }
        self.last_error_at = Some(self.pos);
        Reported
    }

    /// Whether the lexer skipped an unknown character right before the current token: then the
    /// parser's complaint (`a: u8; b: u8` lacks a `,`) only repeats the lexer's (`;` is unknown).
    fn follows_unknown_character(&self) -> bool {
        let Some(prev) = self.prev() else {
            return false;
        };
        let (start, end) = (prev.span.end, self.peek().span.start);
        self.diags.iter().any(|d| {
            let span = d.primary.0;
            d.code == "E0001" && span.file == self.file && span.start >= start && span.end <= end
        })
    }

    /// `expected {thing} {context}, found {current token}` (E0010).
    ///
    /// When the current token is on a later line, the thing is missing at the end of the
    /// previous line, so that is where the caret goes (as rustc does).
    fn expected(&self, thing: &str, context: &str) -> Diagnostic {
        let tok = self.peek();
        let found = self.describe(tok);
        let context = if context.is_empty() {
            String::new()
        } else {
            format!(" {context}")
        };
        let message = format!("expected {thing}{context}, found {found}");
        let label = format!("expected {thing}");
        let prev = self
            .prev()
            .filter(|_| tok.line_start || tok.kind == TokenKind::Eof);
        match prev {
            Some(prev) => {
                let end = prev.span.end as usize;
                let at = Span::new(self.file, end, end);
                let d = Diagnostic::error("E0010", message, at, label);
                if tok.kind == TokenKind::Eof {
                    d
                } else {
                    d.with_secondary(tok.span, "unexpected token")
                }
            }
            None => Diagnostic::error("E0010", message, tok.span, label),
        }
    }

    /// E0013 for `open`, which is never closed.
    fn unclosed(&mut self, open: &Token) -> Reported {
        let open_text = open.kind.punct().unwrap_or("{");
        let close_text = match open.kind {
            TokenKind::LParen => ")",
            TokenKind::LBracket => "]",
            _ => "}",
        };
        let tok = self.peek();
        let mut d = Diagnostic::error(
            "E0013",
            format!("unclosed delimiter `{open_text}`"),
            open.span,
            "unclosed delimiter",
        )
        .with_help(format!("add `{close_text}` to close it"));
        if tok.kind != TokenKind::Eof {
            d = d.with_secondary(
                tok.span,
                format!("expected `{close_text}` before this item"),
            );
        }
        self.report(d)
    }

    /// How a token is named in a message: `` `name` ``, `` `{` ``, `end of file`, ...
    fn describe(&self, tok: &Token) -> String {
        match &tok.kind {
            TokenKind::Ident(name) => format!("`{name}`"),
            TokenKind::Int(_) | TokenKind::Str(_) => {
                let text = self
                    .text
                    .get(tok.span.start as usize..tok.span.end as usize)
                    .unwrap_or("");
                let mut short: String = text.chars().take(32).collect();
                if short.len() < text.len() {
                    short.push('…');
                }
                format!("`{short}`")
            }
            TokenKind::OuterDoc(_) => "a doc comment".to_string(),
            TokenKind::InnerDoc(_) => "an inner doc comment".to_string(),
            TokenKind::Eof => "end of file".to_string(),
            punct => format!("`{}`", punct.punct().unwrap_or("?")),
        }
    }
}

// === Small constructors and predicates ==========================================================

fn ident(name: &str, span: Span) -> Ident {
    Ident {
        name: name.to_string(),
        span,
    }
}

/// The identifier of a token known to be an `Ident` (an empty name otherwise).
fn token_ident(tok: &Token) -> Ident {
    match &tok.kind {
        TokenKind::Ident(name) => ident(name, tok.span),
        _ => ident("", tok.span),
    }
}

fn str_lit(value: &str, span: Span) -> Lit {
    Lit {
        value: LitValue::Str(value.to_string()),
        span,
    }
}

fn int_lit(value: i64, span: Span) -> Lit {
    Lit {
        value: LitValue::Int(value),
        span,
    }
}

/// A clause of `atoms`; an empty clause takes the head's span.
fn clause(atoms: Vec<Atom>, head_span: Span) -> Clause {
    let span = match (atoms.first(), atoms.last()) {
        (Some(first), Some(last)) => first.span().to(last.span()),
        _ => head_span,
    };
    Clause { atoms, span }
}

/// Adds a member to a union, splicing in the members of a parenthesised union.
fn push_union_member(members: &mut Vec<TypeExpr>, member: TypeExpr) {
    match member.kind {
        TypeKind::Union(inner) => members.extend(inner),
        _ => members.push(member),
    }
}

/// Whether a token can start a type.
fn starts_type(kind: &TokenKind) -> bool {
    matches!(
        kind,
        TokenKind::Ident(_)
            | TokenKind::Str(_)
            | TokenKind::Int(_)
            | TokenKind::LBracket
            | TokenKind::LBrace
            | TokenKind::LParen
    )
}

/// A field follows: `name:`, `name as`, `..rest`, or a name or doc comment on a new line.
fn starts_field(p: &Parser<'_>) -> bool {
    let tok = p.peek();
    match &tok.kind {
        TokenKind::DotDot => true,
        TokenKind::OuterDoc(_) => tok.line_start,
        TokenKind::Ident(_) => {
            tok.line_start
                || matches!(&p.tok(p.pos + 1).kind, TokenKind::Colon)
                || matches!(&p.tok(p.pos + 1).kind, TokenKind::Ident(w) if w == "as")
        }
        _ => false,
    }
}

/// An enum variant follows: a name or doc comment on a new line.
fn starts_enum_variant(p: &Parser<'_>) -> bool {
    let tok = p.peek();
    matches!(tok.kind, TokenKind::Ident(_) | TokenKind::OuterDoc(_)) && tok.line_start
}

/// A union variant follows: `Name {`, `Name as`, or a name or doc comment on a new line.
fn starts_union_variant(p: &Parser<'_>) -> bool {
    let tok = p.peek();
    match &tok.kind {
        TokenKind::OuterDoc(_) => tok.line_start,
        TokenKind::Ident(_) => {
            tok.line_start
                || matches!(&p.tok(p.pos + 1).kind, TokenKind::LBrace)
                || matches!(&p.tok(p.pos + 1).kind, TokenKind::Ident(w) if w == "as")
        }
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::diagnostics::SourceMap;

    /// The grammar alone: the directives stay generic (their typed lowering has its own tests).
    fn parse(file: u32, text: &str, diags: &mut Diagnostics) -> ast::File {
        let tokens = crate::syntax::lexer::lex(file, text, &[], diags);
        Parser::new(file, text, &tokens, diags).parse_file()
    }

    const LITECORD: &str = r##"//! Litecord common protocol.
protocol litecord {
    version "1.0"
    wire {
        tag op int
        payload inline
        request carrier 4, method w, args a, id n
        response carrier 5, id n, result r
        event carrier 6, method w, args a
    }
    close {
        /// The password was wrong.
        4001 AuthenticationFailed "Authentication Failed"
        4002 NotAuthenticated "Requesting without authentication"
    }
    session {
        handshake server sends Hello
        handshake client sends HelloAck, auth password, failure AuthenticationFailed
        heartbeat client sends Heartbeat, server replies HeartbeatAck, every Hello.hb_interval, grace 1000,
            missed closes HeartbeatTimeout
    }
}
/// Sent by the server on the start of the connection.
message Hello = 0 from server {
    /// Heartbeat interval, in milliseconds.
    hb_interval: u32 where 1..,
}
message Heartbeat = 2 from client { s: u64? }
request TOKEN_VALIDATE from server (token: string where len 1..4000 and pattern "^[A-Za-z0-9._-]+$") -> (valid: bool, reason: string?)
event unsubscribe = "#unsubscribe" from client: string
request list_slaves on control -> master {} -> { list: [SlaveInfo] }
struct SlaveInfo { agent: string, id: i64, name as "displayName": string | null, ..extra }
enum Level { info, warn as "warning" }
union Shape tag "kind" { Circle { r: f64 }, Square as "sq" { side: f64 } }
type Channel = string | int
type Headers = {string: [string]}
"##;

    // --- Helpers --------------------------------------------------------------------------------

    /// Parses text that must have no errors.
    fn parse_ok(text: &str) -> ast::File {
        let mut sources = SourceMap::default();
        let file = sources.add("test.protocol", text);
        let mut diags = Diagnostics::default();
        let ast = parse(file, text, &mut diags);
        assert!(
            diags.iter().next().is_none(),
            "unexpected diagnostics:\n{}",
            diags.render(&sources)
        );
        ast
    }

    /// Parses text with errors: the codes in order, the rendered output, and the tree.
    fn parse_err(text: &str) -> (Vec<&'static str>, String, ast::File) {
        let mut sources = SourceMap::default();
        let file = sources.add("test.protocol", text);
        let mut diags = Diagnostics::default();
        let ast = parse(file, text, &mut diags);
        let codes = diags.iter().map(|d| d.code).collect();
        (codes, diags.render(&sources), ast)
    }

    /// Asserts exactly the codes `expected`, and that the rendered text contains every needle.
    fn assert_errors(text: &str, expected: &[&str], needles: &[&str]) -> ast::File {
        let (codes, rendered, ast) = parse_err(text);
        assert_eq!(codes, expected, "{rendered}");
        for needle in needles {
            assert!(
                rendered.contains(needle),
                "missing {needle:?} in:\n{rendered}"
            );
        }
        ast
    }

    const HEADER: &str = "protocol p { version \"1\" }\n";

    /// The header plus `body`, for tests about items.
    fn with_header(body: &str) -> String {
        format!("{HEADER}{body}")
    }

    fn src(text: &str, span: Span) -> &str {
        &text[span.start as usize..span.end as usize]
    }

    fn name(t: &TypeExpr) -> &str {
        match &t.kind {
            TypeKind::Named(i) => &i.name,
            other => panic!("not a name: {other:?}"),
        }
    }

    fn atom_text(a: &Atom) -> String {
        match a {
            Atom::Ident(i) => i.name.clone(),
            Atom::Path(parts) => parts
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join("."),
            Atom::Lit(Lit {
                value: LitValue::Str(s),
                ..
            }) => format!("{s:?}"),
            Atom::Lit(Lit {
                value: LitValue::Int(n),
                ..
            }) => n.to_string(),
            Atom::Punct(p, _) => (*p).to_string(),
        }
    }

    /// A directive as text: `head a b, c {…}`, to compare shapes compactly.
    fn directive_text(d: &Directive) -> String {
        let clauses: Vec<String> = d
            .clauses
            .iter()
            .map(|c| c.atoms.iter().map(atom_text).collect::<Vec<_>>().join(" "))
            .collect();
        let mut out = atom_text(&d.head);
        let clauses = clauses.join(", ");
        if !clauses.is_empty() {
            out.push(' ');
            out.push_str(&clauses);
        }
        if let Some(block) = &d.block {
            out.push_str(&format!(" {{{}}}", block.len()));
        }
        out
    }

    fn message(item: &Item) -> &MessageDecl {
        match item {
            Item::Message(m) => m,
            other => panic!("not a message: {other:?}"),
        }
    }

    fn object(p: &Payload) -> &Fields {
        match p {
            Payload::Object(f) => f,
            other => panic!("not an object: {other:?}"),
        }
    }

    fn positional(p: &Payload) -> &Fields {
        match p {
            Payload::Positional(f) => f,
            other => panic!("not positional: {other:?}"),
        }
    }

    fn range(min: Option<i64>, max: Option<i64>, max_inclusive: bool) -> Range {
        Range {
            min,
            max,
            max_inclusive,
        }
    }

    // --- The full example -----------------------------------------------------------------------

    #[test]
    fn litecord_protocol_block() {
        let file = parse_ok(LITECORD);
        assert_eq!(file.docs.lines, vec!["Litecord common protocol."]);
        let protocol = file.protocol.unwrap();
        assert_eq!(protocol.name.name, "litecord");
        assert_eq!(protocol.extends, None);
        assert!(src(LITECORD, protocol.span).starts_with("protocol litecord {"));
        assert!(src(LITECORD, protocol.span).ends_with("HeartbeatTimeout\n    }\n}"));

        let top: Vec<String> = protocol.directives.iter().map(directive_text).collect();
        assert_eq!(
            top,
            vec!["version \"1.0\"", "wire {5}", "close {2}", "session {3}"]
        );

        let wire: Vec<String> = protocol.directives[1]
            .block
            .as_ref()
            .unwrap()
            .iter()
            .map(directive_text)
            .collect();
        assert_eq!(
            wire,
            vec![
                "tag op int",
                "payload inline",
                "request carrier 4, method w, args a, id n",
                "response carrier 5, id n, result r",
                "event carrier 6, method w, args a",
            ]
        );

        let close = protocol.directives[2].block.as_ref().unwrap();
        assert_eq!(
            directive_text(&close[0]),
            "4001 AuthenticationFailed \"Authentication Failed\""
        );
        assert_eq!(close[0].docs.lines, vec!["The password was wrong."]);
        assert!(close[1].docs.lines.is_empty());
        assert_eq!(
            close[0].head,
            Atom::Lit(int_lit(4001, close[0].head.span()))
        );

        let session = protocol.directives[3].block.as_ref().unwrap();
        let heartbeat = &session[2];
        assert_eq!(
            directive_text(heartbeat),
            "heartbeat client sends Heartbeat, server replies HeartbeatAck, every Hello.hb_interval, \
             grace 1000, missed closes HeartbeatTimeout"
        );
        assert!(matches!(&heartbeat.clauses[2].atoms[1], Atom::Path(parts) if parts.len() == 2));
        assert!(src(LITECORD, heartbeat.span).starts_with("heartbeat client"));
        assert!(src(LITECORD, heartbeat.span).ends_with("missed closes HeartbeatTimeout"));
        assert_eq!(
            src(LITECORD, heartbeat.clauses[1].span),
            "server replies HeartbeatAck"
        );
        // A directive without clauses has one empty clause, spanning the head.
        let wire_directive = &protocol.directives[1];
        assert_eq!(wire_directive.clauses.len(), 1);
        assert!(wire_directive.clauses[0].atoms.is_empty());
        assert_eq!(src(LITECORD, wire_directive.clauses[0].span), "wire");
    }

    #[test]
    fn litecord_messages() {
        let file = parse_ok(LITECORD);
        assert_eq!(file.items.len(), 10);

        let hello = message(&file.items[0]);
        assert_eq!(
            hello.docs.lines,
            vec!["Sent by the server on the start of the connection."]
        );
        assert_eq!(hello.kind, MessageKind::Message);
        assert_eq!(src(LITECORD, hello.kind_span), "message");
        assert_eq!(hello.name.name, "Hello");
        assert_eq!(hello.tag.as_ref().unwrap().value, LitValue::Int(0));
        assert!(matches!(&hello.route, Route::From(who) if who.name == "server"));
        assert!(src(LITECORD, hello.span).starts_with("message Hello = 0"));
        assert!(src(LITECORD, hello.span).ends_with("where 1..,\n}"));
        let fields = object(hello.payload.as_ref().unwrap());
        assert!(
            src(LITECORD, fields.span).starts_with('{')
                && src(LITECORD, fields.span).ends_with('}')
        );
        let field = &fields.fields[0];
        assert_eq!(
            field.docs.lines,
            vec!["Heartbeat interval, in milliseconds."]
        );
        assert_eq!(src(LITECORD, field.span), "hb_interval: u32 where 1..");
        assert_eq!(name(&field.ty), "u32");
        assert_eq!(field.constraints.len(), 1);
        assert_eq!(
            field.constraints[0].kind,
            ConstraintKind::Range(range(Some(1), None, false))
        );
        assert_eq!(src(LITECORD, field.constraints[0].span), "1..");
        assert!(hello.reply.is_none());

        let heartbeat = message(&file.items[1]);
        let s = &object(heartbeat.payload.as_ref().unwrap()).fields[0];
        assert!(matches!(&s.ty.kind, TypeKind::Optional(inner) if name(inner) == "u64"));
        assert_eq!(src(LITECORD, s.ty.span), "u64?");

        let validate = message(&file.items[2]);
        assert_eq!(validate.kind, MessageKind::Request);
        let args = positional(validate.payload.as_ref().unwrap());
        let token = &args.fields[0];
        assert_eq!(
            token
                .constraints
                .iter()
                .map(|c| c.kind.clone())
                .collect::<Vec<_>>(),
            vec![
                ConstraintKind::Len(range(Some(1), Some(4000), false)),
                ConstraintKind::Pattern("^[A-Za-z0-9._-]+$".into()),
            ]
        );
        let (arrow, reply) = validate.reply.as_ref().unwrap();
        assert_eq!(src(LITECORD, *arrow), "->");
        let reply = positional(reply);
        assert_eq!(reply.fields.len(), 2);
        assert_eq!(reply.fields[1].name.name, "reason");
        assert!(matches!(reply.fields[1].ty.kind, TypeKind::Optional(_)));

        let unsubscribe = message(&file.items[3]);
        assert_eq!(unsubscribe.kind, MessageKind::Event);
        assert_eq!(
            unsubscribe.tag.as_ref().unwrap().value,
            LitValue::Str("#unsubscribe".into())
        );
        assert!(matches!(&unsubscribe.payload, Some(Payload::Type(t)) if name(t) == "string"));

        let list = message(&file.items[4]);
        match &list.route {
            Route::On(links) => {
                assert_eq!(links.len(), 1);
                assert_eq!(
                    (links[0].0.name.as_str(), links[0].1.name.as_str()),
                    ("control", "master")
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(object(list.payload.as_ref().unwrap()).fields.is_empty());
        let reply = object(&list.reply.as_ref().unwrap().1);
        assert!(
            matches!(&reply.fields[0].ty.kind, TypeKind::Array(inner) if name(inner) == "SlaveInfo")
        );
    }

    #[test]
    fn litecord_types() {
        let file = parse_ok(LITECORD);
        let Item::Struct(slave) = &file.items[5] else {
            panic!()
        };
        assert_eq!(slave.name.name, "SlaveInfo");
        assert_eq!(slave.fields.fields.len(), 3);
        let display = &slave.fields.fields[2];
        assert_eq!(
            display.rename.as_ref().unwrap().value,
            LitValue::Str("displayName".into())
        );
        match &display.ty.kind {
            TypeKind::Union(members) => {
                assert_eq!(members.len(), 2);
                assert_eq!(name(&members[0]), "string");
                assert_eq!(members[1].kind, TypeKind::Null);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(src(LITECORD, display.ty.span), "string | null");
        assert_eq!(slave.fields.rest.as_ref().unwrap().name, "extra");

        let Item::Enum(level) = &file.items[6] else {
            panic!()
        };
        assert_eq!(level.variants.len(), 2);
        assert_eq!(level.variants[1].name.name, "warn");
        assert_eq!(
            level.variants[1].rename.as_ref().unwrap().value,
            LitValue::Str("warning".into())
        );

        let Item::Union(shape) = &file.items[7] else {
            panic!()
        };
        assert_eq!(shape.tag.value, LitValue::Str("kind".into()));
        assert_eq!(shape.variants.len(), 2);
        assert_eq!(shape.variants[0].fields.fields[0].name.name, "r");
        assert_eq!(
            shape.variants[1].rename.as_ref().unwrap().value,
            LitValue::Str("sq".into())
        );
        assert!(src(LITECORD, shape.span).ends_with("side: f64 } }"));

        let Item::Alias(channel) = &file.items[8] else {
            panic!()
        };
        assert!(matches!(&channel.ty.kind, TypeKind::Union(m) if m.len() == 2));
        let Item::Alias(headers) = &file.items[9] else {
            panic!()
        };
        match &headers.ty.kind {
            TypeKind::Map(value) => {
                assert!(matches!(&value.kind, TypeKind::Array(inner) if name(inner) == "string"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(src(LITECORD, headers.ty.span), "{string: [string]}");
        assert_eq!(
            src(LITECORD, headers.span),
            "type Headers = {string: [string]}"
        );
    }

    // --- Other accepted forms -------------------------------------------------------------------

    #[test]
    fn language_reference_examples() {
        let text = r#"protocol clusterio {
    endpoints master, slave, instance, control
    links control -> master, slave -> master, instance -> slave   // client -> server of each link
}
request list_slaves on control -> master {} -> { list: [SlaveInfo] }
event typing from client { room: string }
request move on control -> master, master -> slave (to: string) -> : bool
message Ping from any
request Bare from client -> { ok: bool }
"#;
        let file = parse_ok(text);
        let protocol = file.protocol.unwrap();
        let texts: Vec<String> = protocol.directives.iter().map(directive_text).collect();
        assert_eq!(
            texts,
            vec![
                "endpoints master, slave, instance, control",
                "links control -> master, slave -> master, instance -> slave",
            ]
        );
        assert_eq!(file.items.len(), 5);
        let mv = message(&file.items[2]);
        assert!(matches!(&mv.route, Route::On(links) if links.len() == 2));
        assert!(matches!(&mv.reply, Some((_, Payload::Type(t))) if name(t) == "bool"));
        let ping = message(&file.items[3]);
        assert!(ping.payload.is_none() && ping.reply.is_none());
        let bare = message(&file.items[4]);
        assert!(bare.payload.is_none() && bare.reply.is_some());

        let file = parse_ok("protocol chat extends socketcluster { version \"1\" }");
        let protocol = file.protocol.unwrap();
        assert_eq!(protocol.extends.unwrap().name, "socketcluster");
        assert_eq!(directive_text(&protocol.directives[0]), "version \"1\"");
    }

    #[test]
    fn keywords_are_contextual() {
        let text = with_header(
            "struct type { type: string, message: string, from: u8, on: bool, where: i8 where 1..=5, \
             and: u8, as as \"AS\": u8, null: null, tag: string, }\n\
             message from from from {}\n",
        );
        let file = parse_ok(&text);
        let Item::Struct(s) = &file.items[0] else {
            panic!()
        };
        assert_eq!(s.name.name, "type");
        let names: Vec<&str> = s
            .fields
            .fields
            .iter()
            .map(|f| f.name.name.as_str())
            .collect();
        assert_eq!(
            names,
            vec![
                "type", "message", "from", "on", "where", "and", "as", "null", "tag"
            ]
        );
        assert_eq!(
            s.fields.fields[6].rename.as_ref().unwrap().value,
            LitValue::Str("AS".into())
        );
        assert_eq!(s.fields.fields[7].ty.kind, TypeKind::Null);
        let m = message(&file.items[1]);
        assert_eq!(m.name.name, "from");
        assert!(matches!(&m.route, Route::From(who) if who.name == "from"));
    }

    #[test]
    fn every_constraint_form() {
        let text = with_header(
            "struct C { a: i32 where 1..10 and ..=5 and ..7 and -3.. and 0..=9 and 4, \
             b: string where len 1.. and non_empty and pattern \"x\" and len ..=3 and len 2 }",
        );
        let file = parse_ok(&text);
        let Item::Struct(s) = &file.items[0] else {
            panic!()
        };
        let kinds = |i: usize| {
            s.fields.fields[i]
                .constraints
                .iter()
                .map(|c| c.kind.clone())
                .collect::<Vec<_>>()
        };
        use ConstraintKind::*;
        assert_eq!(
            kinds(0),
            vec![
                Range(range(Some(1), Some(10), false)),
                Range(range(None, Some(5), true)),
                Range(range(None, Some(7), false)),
                Range(range(Some(-3), None, false)),
                Range(range(Some(0), Some(9), true)),
                Range(range(Some(4), Some(4), true)),
            ]
        );
        assert_eq!(
            kinds(1),
            vec![
                Len(range(Some(1), None, false)),
                NonEmpty,
                Pattern("x".into()),
                Len(range(None, Some(3), true)),
                Len(range(Some(2), Some(2), true)),
            ]
        );
        let spans: Vec<&str> = s.fields.fields[1]
            .constraints
            .iter()
            .map(|c| src(&text, c.span))
            .collect();
        assert_eq!(
            spans,
            vec!["len 1..", "non_empty", "pattern \"x\"", "len ..=3", "len 2"]
        );
    }

    #[test]
    fn every_type_form() {
        let text = with_header(
            "type A = (string | null)?\n\
             type B = a | (b | c) | [d]?\n\
             type C = \"literal\" | 42 | -1\n\
             type D = {string: {string: [[u8]]}}\n\
             type E = ((x))\n\
             type F = T??\n",
        );
        let file = parse_ok(&text);
        let ty = |i: usize| match &file.items[i] {
            Item::Alias(a) => &a.ty,
            other => panic!("{other:?}"),
        };
        match &ty(0).kind {
            TypeKind::Optional(inner) => {
                assert!(
                    matches!(&inner.kind, TypeKind::Union(m) if m.len() == 2 && m[1].kind == TypeKind::Null)
                );
                assert_eq!(src(&text, inner.span), "(string | null)");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(src(&text, ty(0).span), "(string | null)?");
        match &ty(1).kind {
            TypeKind::Union(m) => {
                let names: Vec<&str> = m.iter().take(3).map(name).collect();
                assert_eq!(names, vec!["a", "b", "c"]);
                assert_eq!(m.len(), 4);
                assert!(
                    matches!(&m[3].kind, TypeKind::Optional(inner) if matches!(inner.kind, TypeKind::Array(_)))
                );
            }
            other => panic!("{other:?}"),
        }
        match &ty(2).kind {
            TypeKind::Union(m) => {
                let values: Vec<&LitValue> = m
                    .iter()
                    .map(|t| match &t.kind {
                        TypeKind::Const(l) => &l.value,
                        other => panic!("{other:?}"),
                    })
                    .collect();
                assert_eq!(
                    values,
                    vec![
                        &LitValue::Str("literal".into()),
                        &LitValue::Int(42),
                        &LitValue::Int(-1)
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&ty(3).kind, TypeKind::Map(v) if matches!(v.kind, TypeKind::Map(_))));
        assert_eq!(name(ty(4)), "x");
        assert_eq!(src(&text, ty(4).span), "((x))");
        assert!(
            matches!(&ty(5).kind, TypeKind::Optional(inner) if matches!(inner.kind, TypeKind::Optional(_)))
        );
    }

    #[test]
    fn rest_field_anywhere_and_trailing_commas() {
        let text = with_header(
            "struct A { ..rest, a: u8, }\nstruct B {}\nstruct C { a: u8 }\nenum E { a, }\n\
             union U tag \"t\" { V {}, }\nmessage M from client (a: u8, ..more,)\n",
        );
        let file = parse_ok(&text);
        let Item::Struct(a) = &file.items[0] else {
            panic!()
        };
        assert_eq!(a.fields.rest.as_ref().unwrap().name, "rest");
        assert_eq!(a.fields.fields.len(), 1);
        let m = message(&file.items[5]);
        assert_eq!(
            positional(m.payload.as_ref().unwrap())
                .rest
                .as_ref()
                .unwrap()
                .name,
            "more"
        );
    }

    #[test]
    fn docs_everywhere() {
        let text = "//! One.\n//! Two.\nprotocol p {\n    /// The version.\n    version \"1\"\n}\n\
                    /// E.\nenum E {\n    /// A.\n    a,\n}\n\
                    union U tag \"t\" {\n    /// V.\n    V { /// f.\n        f: u8 },\n}\n";
        let file = parse_ok(text);
        assert_eq!(file.docs.lines, vec!["One.", "Two."]);
        assert_eq!(
            file.protocol.unwrap().directives[0].docs.lines,
            vec!["The version."]
        );
        let Item::Enum(e) = &file.items[0] else {
            panic!()
        };
        assert_eq!(e.docs.lines, vec!["E."]);
        assert_eq!(e.variants[0].docs.lines, vec!["A."]);
        let Item::Union(u) = &file.items[1] else {
            panic!()
        };
        assert_eq!(u.variants[0].docs.lines, vec!["V."]);
        assert_eq!(u.variants[0].fields.fields[0].docs.lines, vec!["f."]);
    }

    #[test]
    fn directive_line_rules() {
        let text = "protocol p {\n    a b,\n      c\n    d e | f -> g = h : i\n    wire { tag op int }\n    x {\n    }\n}\n";
        let file = parse_ok(text);
        let texts: Vec<String> = file
            .protocol
            .unwrap()
            .directives
            .iter()
            .map(directive_text)
            .collect();
        assert_eq!(
            texts,
            vec!["a b, c", "d e | f -> g = h : i", "wire {1}", "x {0}"]
        );
    }

    // --- One test per error ---------------------------------------------------------------------

    #[test]
    fn e0001_unexpected_character() {
        let text = with_header("struct A { a: u8 @ }");
        assert_errors(
            &text,
            &["E0001"],
            &[
                "error[E0001]: unexpected character `@`",
                "test.protocol:2:18",
            ],
        );
    }

    #[test]
    fn e0002_unterminated_string() {
        let text = with_header("struct A { a as \"wire: u8 }\nstruct B {}");
        let file = assert_errors(
            &text,
            &["E0002", "E0010", "E0013"],
            &["error[E0002]: unterminated string", "test.protocol:2:17"],
        );
        assert_eq!(file.items.len(), 2);
    }

    #[test]
    fn e0003_bad_escape() {
        let text = with_header("event e = \"a\\qb\" from client");
        let file = assert_errors(
            &text,
            &["E0003"],
            &["unknown character escape `\\q`", "test.protocol:2:13"],
        );
        assert_eq!(
            message(&file.items[0]).tag.as_ref().unwrap().value,
            LitValue::Str("ab".into())
        );
    }

    #[test]
    fn e0004_integer_out_of_range() {
        let text = with_header("message m = 99999999999999999999 from client");
        assert_errors(
            &text,
            &["E0004"],
            &["integer literal is out of range", "test.protocol:2:13"],
        );
    }

    #[test]
    fn e0005_integer_suffix() {
        let text = "protocol p {\n    session {\n        timeout 10ms\n    }\n}";
        assert_errors(
            text,
            &["E0005"],
            &["invalid suffix `ms`", "test.protocol:3:19"],
        );
    }

    #[test]
    fn e0010_missing_colon() {
        let text = with_header("struct A { a u8, b: u8 }");
        let file = assert_errors(
            &text,
            &["E0010"],
            &[
                "error[E0010]: expected `:` after the field name, found `u8`",
                "test.protocol:2:14",
                "help: add `:` between the field name and its type",
            ],
        );
        let Item::Struct(s) = &file.items[0] else {
            panic!()
        };
        assert_eq!(s.fields.fields.len(), 1, "recovered at the comma");
        assert_eq!(s.fields.fields[0].name.name, "b");
    }

    #[test]
    fn e0010_missing_route_and_reply() {
        let text = with_header("message A = 1 {}\nrequest B from client ->\nmessage C from client");
        let file = assert_errors(
            &text,
            &["E0010", "E0010"],
            &[
                "expected `from` or `on` after the tag, found `{`",
                "test.protocol:2:15",
                "expected a reply payload after `->`, found `message`",
                "test.protocol:3:25",
            ],
        );
        assert_eq!(file.items.len(), 1);
    }

    #[test]
    fn e0010_missing_comma() {
        let text = with_header("struct A {\n    a: u8\n    b: u8\n}\nenum E { x y }");
        let file = assert_errors(
            &text,
            &["E0010", "E0010"],
            &[
                "expected `,` after the field, found `b`",
                "test.protocol:3:10",
                "help: add `,` between fields",
                "test.protocol:6:12",
            ],
        );
        let Item::Struct(s) = &file.items[0] else {
            panic!()
        };
        assert_eq!(s.fields.fields.len(), 2);
    }

    #[test]
    fn e0011_missing_protocol() {
        assert_errors(
            "struct A {}",
            &["E0011"],
            &["missing `protocol` block", "test.protocol:1:1"],
        );
        assert_errors("", &["E0011"], &["test.protocol:1:1"]);
    }

    #[test]
    fn e0012_two_protocols() {
        let text = format!("{HEADER}{HEADER}");
        let file = assert_errors(
            &text,
            &["E0012"],
            &["more than one `protocol` block", "test.protocol:2:1"],
        );
        assert!(file.protocol.is_some());
    }

    #[test]
    fn e0013_unclosed_delimiter() {
        let text = with_header("struct A {\n    a: u8,\n");
        assert_errors(
            &text,
            &["E0013"],
            &["unclosed delimiter `{`", "test.protocol:2:10"],
        );
        // Closed by the next item: that item is still parsed.
        let text = with_header("struct A {\n    a: [u8,\nstruct B { b: u8 }");
        let file = assert_errors(
            &text,
            &["E0010", "E0013"],
            &[
                "expected `]` to close the array type, found `,`",
                "test.protocol:2:10",
            ],
        );
        assert_eq!(file.items.len(), 2);
        let text = with_header("struct A {\n    a: u8,\nstruct B { b: u8 }");
        let file = assert_errors(
            &text,
            &["E0013"],
            &["test.protocol:2:10", "expected `}` before this item"],
        );
        assert_eq!(file.items.len(), 2);
        let text = "protocol p {\n    version \"1\"\nmessage A from client";
        let file = assert_errors(text, &["E0013"], &["test.protocol:1:12"]);
        assert_eq!(file.items.len(), 1);
    }

    #[test]
    fn e0014_nesting_too_deep() {
        let text = with_header(&format!(
            "type A = {}u8{}",
            "[".repeat(200),
            "]".repeat(200)
        ));
        assert_errors(
            &text,
            &["E0014"],
            &["nesting too deep", "test.protocol:2:138"],
        );
        let text = with_header(&format!(
            "type A = {}u8{}",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        ));
        parse_ok(&text);
    }

    #[test]
    fn e0015_expected_item() {
        let text = with_header("reqest X from server {}\nstuct B {}\nmessage C from client");
        let file = assert_errors(
            &text,
            &["E0015", "E0015"],
            &[
                "expected an item, found `reqest`",
                "test.protocol:2:1",
                "help: did you mean `request`?",
                "did you mean `struct`?",
            ],
        );
        assert_eq!(file.items.len(), 1);
    }

    #[test]
    fn e0016_protocol_after_items() {
        let text = format!("struct A {{}}\n{HEADER}");
        let file = assert_errors(
            &text,
            &["E0016"],
            &["must come before messages and types", "test.protocol:2:1"],
        );
        assert!(file.protocol.is_some());
    }

    #[test]
    fn e0017_map_key_not_string() {
        let text = with_header("type M = {int: u8}");
        assert_errors(
            &text,
            &["E0017"],
            &[
                "map keys must be `string`, found `int`",
                "test.protocol:2:11",
            ],
        );
    }

    #[test]
    fn e0017_map_without_value_type_stays_in_sync() {
        let text = with_header("event E from client { a: {u8}, b: u8 }\nstruct B {}");
        let file = assert_errors(
            &text,
            &["E0017"],
            &["help: write `{string: T}`", "test.protocol:2:27"],
        );
        assert_eq!(file.items.len(), 2);
        let m = message(&file.items[0]);
        assert_eq!(object(m.payload.as_ref().unwrap()).fields.len(), 2);
    }

    #[test]
    fn lexer_errors_are_not_repeated_by_the_parser() {
        let text = with_header("struct A {\n    a: u8;\n    b: u8\n}\ntype T = @\n");
        let file = assert_errors(
            &text,
            &["E0001", "E0001"],
            &["test.protocol:3:10", "test.protocol:6:10"],
        );
        let Item::Struct(s) = &file.items[0] else {
            panic!()
        };
        assert_eq!(s.fields.fields.len(), 2);
    }

    #[test]
    fn e0018_two_rest_fields() {
        let text = with_header("struct A { ..a, b: u8, ..c }");
        let file = assert_errors(
            &text,
            &["E0018"],
            &["more than one rest field", "test.protocol:2:24"],
        );
        let Item::Struct(s) = &file.items[0] else {
            panic!()
        };
        assert_eq!(s.fields.rest.as_ref().unwrap().name, "a");
    }

    #[test]
    fn e0019_dangling_doc_comment() {
        let text = with_header("struct A {\n    a: u8,\n    /// Nothing.\n}\n/// Also nothing.\n");
        assert_errors(
            &text,
            &["E0019", "E0019"],
            &[
                "doc comment does not document anything",
                "test.protocol:4:5",
                "test.protocol:6:1",
            ],
        );
        assert_errors(
            "/// The protocol.\nprotocol p {}",
            &["E0019"],
            &["with `//!` lines"],
        );
    }

    #[test]
    fn e0020_inner_doc_not_at_top() {
        let text = with_header("//! Late.\nstruct A {}");
        assert_errors(
            &text,
            &["E0020"],
            &["only allowed at the top of the file", "test.protocol:2:1"],
        );
    }

    #[test]
    fn e0021_unexpected_closing_delimiter() {
        let text = with_header("struct A {}\n}\nstruct B {}");
        let file = assert_errors(
            &text,
            &["E0021"],
            &["unexpected closing delimiter `}`", "test.protocol:3:1"],
        );
        assert_eq!(file.items.len(), 2);
    }

    #[test]
    fn e0022_rest_field_with_type() {
        let text = with_header("struct A { ..extra: any, b: u8 }");
        let file = assert_errors(
            &text,
            &["E0022"],
            &["a rest field has no type", "test.protocol:2:19"],
        );
        let Item::Struct(s) = &file.items[0] else {
            panic!()
        };
        assert_eq!(s.fields.fields.len(), 1);
    }

    #[test]
    fn e0023_not_allowed_in_directive() {
        let text = "protocol p {\n    version \"1\" ?\n    wire { tag op [int] }\n    ok\n}";
        let file = assert_errors(
            text,
            &["E0023", "E0023"],
            &[
                "`?` is not allowed in a directive",
                "test.protocol:2:17",
                "`[` is not allowed in a directive",
                "test.protocol:3:19",
            ],
        );
        let texts: Vec<String> = file
            .protocol
            .unwrap()
            .directives
            .iter()
            .map(directive_text)
            .collect();
        assert_eq!(texts, vec!["wire {0}", "ok"]);
    }

    #[test]
    fn e0024_no_variants() {
        let text = with_header("enum E {}\nunion U tag \"t\" {}");
        assert_errors(
            &text,
            &["E0024", "E0024"],
            &[
                "`enum E` has no variants",
                "test.protocol:2:8",
                "test.protocol:3:17",
            ],
        );
    }

    #[test]
    fn directive_errors() {
        let text = "protocol p {\n    wire\n    {\n    }\n    a {} b\n    c Hello.\n}";
        assert_errors(
            text,
            &["E0010", "E0010", "E0010"],
            &[
                "expected a directive, found `{`",
                "a block opens on the line of its directive",
                "expected a line break before the next directive, found `b`",
                "expected a name after `.` in a path, found `}`",
            ],
        );
    }

    #[test]
    fn constraint_errors() {
        let text = with_header(
            "struct A { a: u8 where patern \"x\", b: u8 where .., c: u8 where 1..=, d: u8 where pattern x }",
        );
        assert_errors(
            &text,
            &["E0010", "E0010", "E0010", "E0010"],
            &[
                "expected a constraint after `where`, found `patern`",
                "did you mean `pattern`?",
                "after `..`",
                "after `..=`",
                "after `pattern`",
            ],
        );
    }

    #[test]
    fn header_errors() {
        let text = "protocol chat extend base {}\nstruct A {}\nunion U {}\nunion V tag kind {}\ntype T u8\nstruct S [ a: u8 ]\n";
        let file = assert_errors(
            text,
            &["E0010", "E0010", "E0010", "E0010", "E0010"],
            &[
                "expected `{` after the protocol name, found `extend`",
                "did you mean `extends`?",
                "expected `tag` after the union name",
                "expected a string after `tag`",
                "expected `=` after the alias name",
                "expected `{` after the struct name",
            ],
        );
        assert!(file.protocol.is_none());
        assert_eq!(file.items.len(), 1);
    }

    #[test]
    fn every_error_in_one_pass() {
        let text = with_header(
            "struct A { a u8, b: [u8 }\nmessage B from client { x: }\nenum E { a b }\ntype T = {u8: u8}\nstruct Z { z: u8 }\n",
        );
        let (codes, rendered, file) = parse_err(&text);
        assert_eq!(
            codes,
            vec!["E0010", "E0010", "E0010", "E0010", "E0017"],
            "{rendered}"
        );
        assert_eq!(file.items.len(), 5, "every item is still there");
        assert!(rendered.contains("error: could not compile: 5 errors"));
    }

    // --- No input panics ------------------------------------------------------------------------

    /// Parses `text`, which may be anything; the test is that this returns.
    fn parse_any(text: &str) -> Diagnostics {
        let mut diags = Diagnostics::default();
        let _ = parse(0, text, &mut diags);
        diags
    }

    #[test]
    fn every_prefix_parses() {
        for (i, _) in LITECORD.char_indices() {
            parse_any(&LITECORD[..i]);
        }
        parse_any(LITECORD);
    }

    /// A linear congruential generator: deterministic garbling without a crate.
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 33) as usize) % n.max(1)
        }
    }

    #[test]
    fn garbled_inputs_parse() {
        let original: Vec<char> = format!("{LITECORD}é\"\\u{{zz}}//!").chars().collect();
        let inserts = [
            '{', '}', '(', ')', '[', ']', ',', ':', '"', '\\', '.', '-', '>', '\n', '/', '?', '|',
            '=',
        ];
        let mut rng = Lcg(0x5eed);
        for _ in 0..400 {
            let mut text = original.clone();
            for _ in 0..1 + rng.below(6) {
                let at = rng.below(text.len());
                match rng.below(4) {
                    0 => {
                        text.remove(at);
                    }
                    1 => {
                        let c = text[at];
                        text.insert(at, c);
                    }
                    2 if at + 1 < text.len() => text.swap(at, at + 1),
                    _ => text.insert(at, inserts[rng.below(inserts.len())]),
                }
            }
            let text: String = text.into_iter().collect();
            parse_any(&text);
        }
    }

    #[test]
    fn deep_nesting_is_cut_off() {
        let n = 10_000;
        let cases = [
            "[".repeat(n),
            "(".repeat(n),
            "{".repeat(n),
            with_header(&format!("message A from client ({}", "(".repeat(n))),
            with_header(&format!("type A = {}", "[".repeat(n))),
            with_header(&format!("type A = {}", "(".repeat(n))),
            with_header(&format!("type A = {}u8{}", "(".repeat(n), ")".repeat(n))),
            with_header(&format!("type A = {}u8", "{string: ".repeat(n))),
            with_header(&format!(
                "struct A {{ a: {} }}\nstruct B {{}}",
                "[".repeat(n)
            )),
            format!("protocol p {{ {}", "a {\n".repeat(n)),
            format!("protocol p {{ {}{}", "a {\n".repeat(n), "}\n".repeat(n + 1)),
        ];
        for text in &cases {
            let diags = parse_any(text);
            assert!(diags.has_errors());
            assert!(
                diags.error_count() < 10,
                "{:?}",
                diags.iter().map(|d| d.code).collect::<Vec<_>>()
            );
        }
        // The nested cases report the depth, once.
        for text in &cases[4..] {
            let codes: Vec<&str> = parse_any(text).iter().map(|d| d.code).collect();
            assert_eq!(
                codes.iter().filter(|c| **c == "E0014").count(),
                1,
                "{codes:?}"
            );
        }
    }
}
