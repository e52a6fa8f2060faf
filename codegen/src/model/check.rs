//! The checker: from syntax trees to [`Protocol`]s, reporting every problem it finds.
//!
//! Error codes (listed with examples in `docs/definition-language.md`):
//!
//! | code | meaning |
//! |---|---|
//! | E0101 | unknown type |
//! | E0102 | a name declared twice |
//! | E0103 | two messages with the same tag in one direction |
//! | E0104 | a reply on an event or message |
//! | E0105 | a message with no tag value where tags are integers |
//! | E0106 | a tag of the wrong type |
//! | E0107 | two fields with the same name |
//! | E0108 | two fields with the same wire name |
//! | E0109 | a constraint that cannot hold |
//! | E0110 | a constraint that does not apply to the field's type |
//! | E0111 | a pattern that is not a valid regular expression |
//! | E0112 | `extends` of an unknown protocol |
//! | E0113 | a cycle (in `extends`, aliases or struct fields) |
//! | E0114 | an unknown directive or clause |
//! | E0115 | a required directive is missing |
//! | E0116 | a directive's arguments are malformed |
//! | E0117 | an unknown endpoint or undeclared link |
//! | E0118 | an unknown sender in `from` |
//! | E0119 | a payload shape the wire profile cannot carry |
//! | E0120 | an unknown message in a session rule |
//! | E0121 | an unknown close code |
//! | E0122 | a close code declared twice |
//! | E0123 | `?` where a key cannot be absent |
//! | E0124 | two names that become the same Rust name, or a name the generator uses itself |
//! | E0125 | an unknown field in a session rule |
//! | E0126 | a route form that does not fit the protocol (`from` with endpoints, `on` without) |
//! | E0127 | a union whose members cannot be told apart by JSON type |
//! | E0128 | a protocol name longer than [`MAX_PROTOCOL_NAME`] bytes |
//! | E0129 | a message whose sender method is named like a method links already have ([`LINK_METHODS`]) |

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use super::*;
use crate::diagnostics::{Diagnostic, Diagnostics, Span, did_you_mean};
use crate::naming::{snake, upper_camel};
use crate::syntax::ast;

/// Names the generator uses itself in a protocol's module.
const RESERVED: &[&str] = &[
    "CloseCode",
    "Client",
    "Server",
    "ClientToServer",
    "ServerToClient",
];

/// The longest protocol name, in bytes. The name becomes the generated file `NAME.rs`, the module
/// `NAME` and the marker type; 64 keeps the file name far below the 255 bytes most file systems
/// allow, with room for the folders and suffixes other tools add.
pub const MAX_PROTOCOL_NAME: usize = 64;

/// Where a method that a link handle already has comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkMethodOwner {
    /// The `protolink::Sender` trait, which every `{Side}Sender` trait extends and calls.
    SenderTrait,
    /// `protolink::Link`'s own methods, which method calls find before any trait's.
    Link,
    /// A trait in every prelude that `Link` implements (directly or through a blanket impl).
    Prelude(&'static str),
}

/// Every method a link handle already has, which a generated sender method must not be called.
///
/// A sender method named like a `Sender` method makes the generated trait ambiguous (rustc
/// E0034 in the generated code); one named like a `Link` method is never reached by
/// `link.NAME(..)`, which calls the link's own; one named like a prelude trait's method makes every
/// `link.NAME(..)` ambiguous. `Link::spawn` takes no `self`, so it cannot clash. A test compares
/// this list with the runtime's source.
pub const LINK_METHODS: &[(&str, LinkMethodOwner)] = &[
    ("request", LinkMethodOwner::SenderTrait),
    ("send", LinkMethodOwner::SenderTrait),
    ("state", LinkMethodOwner::Link),
    ("watch_state", LinkMethodOwner::Link),
    ("ready", LinkMethodOwner::Link),
    ("closed", LinkMethodOwner::Link),
    ("is_closed", LinkMethodOwner::Link),
    ("idle", LinkMethodOwner::Link),
    ("unmatched_replies", LinkMethodOwner::Link),
    ("handshake_reply", LinkMethodOwner::Link),
    ("id", LinkMethodOwner::Link),
    ("close_gracefully", LinkMethodOwner::Link),
    ("close_with", LinkMethodOwner::Link),
    ("close", LinkMethodOwner::Link),
    ("try_send_frame", LinkMethodOwner::Link),
    ("send_in_handshake", LinkMethodOwner::Link),
    ("clone", LinkMethodOwner::Prelude("Clone")),
    ("clone_from", LinkMethodOwner::Prelude("Clone")),
    ("to_owned", LinkMethodOwner::Prelude("ToOwned")),
    ("clone_into", LinkMethodOwner::Prelude("ToOwned")),
    ("into", LinkMethodOwner::Prelude("Into")),
    ("try_into", LinkMethodOwner::Prelude("TryInto")),
];

const BUILTINS: &[&str] = &[
    "bool", "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "int", "f64", "string", "any",
];

/// Checks parsed files together (a protocol may extend one in another file).
///
/// Returns the protocols that checked cleanly, in an order where a base comes before the
/// protocols extending it.
pub fn check(files: &[(PathBuf, ast::File)], diags: &mut Diagnostics) -> Vec<Protocol> {
    let mut by_name: BTreeMap<String, usize> = BTreeMap::new();
    for (index, (_, file)) in files.iter().enumerate() {
        let Some(decl) = &file.protocol else { continue };
        if let Some(&previous) = by_name.get(&decl.name.name) {
            let earlier = files[previous]
                .1
                .protocol
                .as_ref()
                .map_or(decl.name.span, |p| p.name.span);
            diags.push(
                Diagnostic::error(
                    "E0102",
                    format!("the protocol `{}` is declared twice", decl.name.name),
                    decl.name.span,
                    "declared again here",
                )
                .with_secondary(earlier, "first declared here")
                .with_help("rename one of the protocols"),
            );
            continue;
        }
        by_name.insert(decl.name.name.clone(), index);
    }

    // Bases before extensions; unknown bases and cycles reported once each.
    let mut order = Vec::new();
    let mut state: HashMap<usize, bool> = HashMap::new(); // false: in progress, true: done
    for &index in by_name.values() {
        visit(index, files, &by_name, &mut state, &mut order, diags);
    }

    let mut checked: BTreeMap<String, Protocol> = BTreeMap::new();
    let mut out = Vec::new();
    for index in order {
        let (path, file) = &files[index];
        let Some(decl) = &file.protocol else { continue };
        let base = match &decl.extends {
            Some(base) => match checked.get(&base.name) {
                Some(p) => Some(p.clone()),
                None => continue, // the base failed; its errors are already reported
            },
            None => None,
        };
        let errors_before = diags.error_count();
        let protocol = Checker::new(path.clone(), file, decl, base, diags).run();
        if diags.error_count() == errors_before {
            checked.insert(protocol.name.clone(), protocol.clone());
            out.push(protocol);
        }
    }
    out
}

fn visit(
    index: usize,
    files: &[(PathBuf, ast::File)],
    by_name: &BTreeMap<String, usize>,
    state: &mut HashMap<usize, bool>,
    order: &mut Vec<usize>,
    diags: &mut Diagnostics,
) {
    match state.get(&index) {
        Some(true) => return,
        Some(false) => {
            if let Some(decl) = &files[index].1.protocol {
                diags.push(
                    Diagnostic::error(
                        "E0113",
                        format!(
                            "the protocol `{}` extends itself through its bases",
                            decl.name.name
                        ),
                        decl.extends.as_ref().map_or(decl.name.span, |e| e.span),
                        "this `extends` closes a cycle",
                    )
                    .with_help(
                        "a protocol can only extend a protocol that does not extend it back",
                    ),
                );
            }
            return;
        }
        None => {}
    }
    state.insert(index, false);
    if let Some(decl) = &files[index].1.protocol {
        if let Some(base) = &decl.extends {
            match by_name.get(&base.name) {
                Some(&base_index) => visit(base_index, files, by_name, state, order, diags),
                None => {
                    let mut d = Diagnostic::error(
                        "E0112",
                        format!(
                            "`{}` extends the unknown protocol `{}`",
                            decl.name.name, base.name
                        ),
                        base.span,
                        "no protocol of this name was compiled",
                    );
                    d = match did_you_mean(&base.name, by_name.keys().map(String::as_str)) {
                        Some(s) => {
                            d.with_help(format!("a protocol with a similar name exists: `{s}`"))
                        }
                        None => d.with_help("compile the base protocol's file in the same run"),
                    };
                    diags.push(d);
                }
            }
        }
    }
    state.insert(index, true);
    // An extension whose base is in a cycle is still ordered after it; check() skips it.
    order.push(index);
}

struct Checker<'a> {
    file: &'a ast::File,
    decl: &'a ast::ProtocolDecl,
    diags: &'a mut Diagnostics,
    p: Protocol,
    /// Declared type names → index into `p.types`, with the span of the declaration.
    type_names: HashMap<String, (usize, Span)>,
    /// Rust names in the module → where they come from, and a label saying so.
    rust_names: HashMap<String, (Span, String)>,
    /// Names the generator declares itself in the module → what for.
    generated: Vec<(String, String)>,
    /// While an alias's own type is checked: its span. A union there is the alias itself, so it
    /// takes the alias's name rather than claiming a new one.
    alias_union: Option<Span>,
    /// The wire profile's `tag` directive was malformed, so the tags' type is unknown and tags
    /// are not checked against it (the malformed directive is reported instead).
    tag_type_unknown: bool,
    /// Index of the first type and message that belong to this file (not the base).
    own_types: usize,
    own_messages: usize,
}

impl<'a> Checker<'a> {
    fn new(
        path: PathBuf,
        file: &'a ast::File,
        decl: &'a ast::ProtocolDecl,
        base: Option<Protocol>,
        diags: &'a mut Diagnostics,
    ) -> Self {
        let p = match base {
            Some(base) => Protocol {
                name: decl.name.name.clone(),
                span: decl.name.span,
                source: path.clone(),
                docs: file.docs.lines.clone(),
                version: String::new(),
                base: Some(base.name.clone()),
                ..base
            },
            None => Protocol {
                name: decl.name.name.clone(),
                span: decl.name.span,
                source: path.clone(),
                docs: file.docs.lines.clone(),
                version: String::new(),
                base: None,
                wire: Wire {
                    tag: String::new(),
                    int_tags: false,
                    payload: None,
                    sequence: None,
                    event: Framing::Tagged,
                    request: Framing::Tagged,
                    request_id: RequestId::Ordered,
                    reply_match: ReplyMatch::Untagged,
                    reply_id: None,
                    reply_result: None,
                    error: ErrorFraming::None,
                    strict: false,
                    batch: false,
                    binary_text: false,
                    replies: false,
                },
                close_codes: Vec::new(),
                session: Session::default(),
                endpoints: vec!["client".into(), "server".into()],
                links: vec![(0, 1)],
                messages: Vec::new(),
                types: Vec::new(),
            },
        };
        // Names inherited from a base point at the `extends` that brought them in.
        let (inherited, from_base) = match &decl.extends {
            Some(base) => (base.span, format!("inherited from `{}`", base.name)),
            None => (decl.span, String::new()),
        };
        let mut rust_names = HashMap::new();
        for t in &p.types {
            rust_names.insert(t.rust_name.clone(), (inherited, from_base.clone()));
        }
        for m in &p.messages {
            rust_names.insert(m.rust_name.clone(), (inherited, from_base.clone()));
            if matches!(m.reply, Some(Shape::Object(_) | Shape::Positional(_))) {
                let reply = format!("{}Reply", m.rust_name);
                rust_names.insert(reply, (inherited, from_base.clone()));
            }
        }
        let type_names = p
            .types
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), (i, inherited)))
            .collect();
        Checker {
            own_types: p.types.len(),
            own_messages: p.messages.len(),
            file,
            decl,
            diags,
            p,
            type_names,
            rust_names,
            generated: Vec::new(),
            alias_union: None,
            tag_type_unknown: false,
        }
    }

    fn run(mut self) -> Protocol {
        self.protocol_name();
        self.protocol_directives();
        self.generated = self.generated_names();
        self.declare_types();
        self.resolve_types();
        self.messages();
        self.session_directives();
        self.check_replies();
        self.check_sender_methods();
        self.check_struct_cycles();
        self.p
    }

    fn err(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    // ---- protocol block -------------------------------------------------------------------

    fn protocol_name(&mut self) {
        let name = &self.decl.name;
        let len = name.name.len();
        if len > MAX_PROTOCOL_NAME {
            self.err(
                Diagnostic::error(
                    "E0128",
                    format!("the protocol name is {len} bytes long, more than {MAX_PROTOCOL_NAME}"),
                    name.span,
                    format!("longer than {MAX_PROTOCOL_NAME} bytes"),
                )
                .with_note(format!(
                    "the name becomes the generated file `NAME.rs`, the module `NAME` and the \
                     marker type, and is limited to {MAX_PROTOCOL_NAME} bytes"
                ))
                .with_help(format!(
                    "shorten the name to at most {MAX_PROTOCOL_NAME} bytes"
                )),
            );
        }
    }

    fn protocol_directives(&mut self) {
        let extends = self.decl.extends.is_some();
        let mut seen: HashMap<&str, Span> = HashMap::new();
        let mut wire_block = None;
        // Directives suggested for misspelled ones: not reported missing as well.
        let mut suggested: Vec<&str> = Vec::new();
        for d in &self.decl.directives {
            let Some(head) = head_word(d) else {
                self.err(Diagnostic::error("E0114", "expected a directive name", d.head.span(), "not a directive")
                    .with_help("protocol blocks hold `version`, `endpoints`, `links`, `wire`, `close` and `session`"));
                continue;
            };
            if let Some(&first) = seen.get(head) {
                self.err(
                    Diagnostic::error(
                        "E0102",
                        format!("`{head}` is declared twice"),
                        d.head.span(),
                        "declared again here",
                    )
                    .with_secondary(first, "first declared here"),
                );
                continue;
            }
            seen.insert(head, d.head.span());
            match head {
                "version" => match single_lit(d) {
                    Some(ast::LitValue::Str(v)) => self.p.version = v.clone(),
                    Some(ast::LitValue::Int(n)) => self.err(
                        Diagnostic::error(
                            "E0116",
                            "`version` takes one string",
                            d.span,
                            "a number, not a string",
                        )
                        .with_help(format!("write it in quotes: `version \"{n}\"`")),
                    ),
                    None => self.err(Diagnostic::error(
                        "E0116",
                        "`version` takes one string",
                        d.span,
                        "expected `version \"1.0\"`",
                    )),
                },
                "wire" | "close" | "session" | "endpoints" | "links" if extends => self.err(
                    Diagnostic::error(
                        "E0114",
                        format!("`{head}` cannot be changed by a protocol that extends another"),
                        d.head.span(),
                        "inherited from the base protocol",
                    )
                    .with_help("remove it; an extension only adds messages and types"),
                ),
                "wire" => wire_block = Some(d),
                "close" => self.close_block(d),
                "session" => {} // after messages, which it refers to
                "endpoints" => self.endpoints(d),
                "links" => {}
                other => {
                    let mut diag = Diagnostic::error(
                        "E0114",
                        format!("unknown directive `{other}`"),
                        d.head.span(),
                        "not a protocol directive",
                    );
                    diag = match did_you_mean(other, ["version", "endpoints", "links", "wire", "close", "session"]) {
                        Some(s) => {
                            suggested.push(s);
                            diag.with_help(format!("did you mean `{s}`?"))
                        }
                        None => diag.with_help("protocol blocks hold `version`, `endpoints`, `links`, `wire`, `close` and `session`"),
                    };
                    self.err(diag);
                }
            }
        }
        if let Some(links) = self
            .decl
            .directives
            .iter()
            .find(|d| head_word(d) == Some("links"))
        {
            if !extends {
                self.links(links);
            }
        }
        if !seen.contains_key("version") && !suggested.contains(&"version") {
            self.err(
                Diagnostic::error(
                    "E0115",
                    format!("the protocol `{}` has no version", self.p.name),
                    self.decl.name.span,
                    "no `version` directive",
                )
                .with_help("add `version \"1.0\"` to the protocol block"),
            );
        }
        if !extends {
            match wire_block {
                Some(d) => self.wire(d),
                None if suggested.contains(&"wire") => {}
                None => self.err(
                    Diagnostic::error(
                        "E0115",
                        format!("the protocol `{}` has no wire profile", self.p.name),
                        self.decl.name.span,
                        "no `wire` block",
                    )
                    .with_help(
                        "add `wire { tag type string  payload inline }` to the protocol block",
                    ),
                ),
            }
        }
    }

    fn endpoints(&mut self, d: &ast::Directive) {
        let mut names: Vec<String> = Vec::new();
        let mut spans: Vec<Span> = Vec::new();
        for clause in &d.clauses {
            match clause.atoms.as_slice() {
                [ast::Atom::Ident(id)] => {
                    if let Some(first) = names.iter().position(|n| *n == id.name) {
                        self.err(
                            Diagnostic::error(
                                "E0102",
                                format!("the endpoint `{}` is declared twice", id.name),
                                id.span,
                                "declared again here",
                            )
                            .with_secondary(spans[first], "first declared here"),
                        );
                    } else {
                        names.push(id.name.clone());
                        spans.push(id.span);
                    }
                }
                _ => self.err(Diagnostic::error(
                    "E0116",
                    "endpoints are names separated by commas",
                    clause.span,
                    "expected one name",
                )),
            }
        }
        if names.len() < 2 {
            self.err(Diagnostic::error(
                "E0116",
                "a protocol needs at least two endpoints",
                d.span,
                "too few endpoints",
            ));
            return;
        }
        self.p.endpoints = names;
        self.p.links.clear();
    }

    fn links(&mut self, d: &ast::Directive) {
        if !self.p.has_named_endpoints() {
            self.err(
                Diagnostic::error(
                    "E0126",
                    "`links` needs `endpoints`",
                    d.head.span(),
                    "no endpoints are declared",
                )
                .with_help("declare `endpoints a, b, ...` before `links`"),
            );
            return;
        }
        let mut links = Vec::new();
        let mut spans: Vec<Span> = Vec::new();
        for clause in &d.clauses {
            let [
                ast::Atom::Ident(a),
                ast::Atom::Punct("->", _),
                ast::Atom::Ident(b),
            ] = clause.atoms.as_slice()
            else {
                self.err(Diagnostic::error(
                    "E0116",
                    "a link is written `client -> server`",
                    clause.span,
                    "expected `a -> b`",
                ));
                continue;
            };
            let (Some(ca), Some(cb)) = (self.endpoint(a), self.endpoint(b)) else {
                continue;
            };
            if let Some(first) = links.iter().position(|&l| l == (ca, cb) || l == (cb, ca)) {
                let mut d = Diagnostic::error(
                    "E0102",
                    format!(
                        "the link between `{}` and `{}` is declared twice",
                        a.name, b.name
                    ),
                    clause.span,
                    "declared again here",
                )
                .with_secondary(spans[first], "first declared here");
                if links[first] == (cb, ca) {
                    d = d.with_note(
                        "a link carries messages both ways; `a -> b` only says which side connects",
                    );
                }
                self.err(d);
                continue;
            }
            links.push((ca, cb));
            spans.push(clause.span);
        }
        self.p.links = links;
    }

    fn endpoint(&mut self, id: &ast::Ident) -> Option<usize> {
        if let Some(i) = self.p.endpoints.iter().position(|e| *e == id.name) {
            return Some(i);
        }
        let mut d = Diagnostic::error(
            "E0117",
            format!("unknown endpoint `{}`", id.name),
            id.span,
            "not declared in `endpoints`",
        );
        if let Some(s) = did_you_mean(&id.name, self.p.endpoints.iter().map(String::as_str)) {
            d = d.with_help(format!("did you mean `{s}`?"));
        } else {
            d = d.with_help(format!(
                "the endpoints are: {}",
                self.p.endpoints.join(", ")
            ));
        }
        self.err(d);
        None
    }

    fn close_block(&mut self, d: &ast::Directive) {
        let Some(block) = &d.block else {
            self.err(Diagnostic::error(
                "E0116",
                "`close` takes a block of codes",
                d.span,
                "expected `close { 4001 Name \"reason\" }`",
            ));
            return;
        };
        let mut seen: HashMap<u16, Span> = HashMap::new();
        let mut names: HashMap<String, (Span, String)> = HashMap::new();
        for item in block {
            let atoms: Vec<&ast::Atom> = item.clauses.iter().flat_map(|c| &c.atoms).collect();
            let code = match &item.head {
                ast::Atom::Lit(ast::Lit {
                    value: ast::LitValue::Int(n),
                    span,
                }) => match u16::try_from(*n) {
                    Ok(c) if (1000..=4999).contains(&c) => Some((c, *span)),
                    _ => {
                        self.err(Diagnostic::error("E0116", format!("{n} is not a WebSocket close code"), *span, "out of range")
                            .with_help("close codes are 1000..=4999; protocol-specific codes are 4000..=4999"));
                        None
                    }
                },
                other => {
                    self.err(
                        Diagnostic::error(
                            "E0116",
                            "a close code starts with its number",
                            other.span(),
                            "expected a number",
                        )
                        .with_help("write `4001 AuthenticationFailed \"Authentication failed\"`"),
                    );
                    None
                }
            };
            let (name, reason) = match atoms.as_slice() {
                [
                    ast::Atom::Ident(name),
                    ast::Atom::Lit(ast::Lit {
                        value: ast::LitValue::Str(reason),
                        ..
                    }),
                ] => (name, reason.clone()),
                [ast::Atom::Ident(name)] => (name, name.name.clone()),
                _ => {
                    self.err(
                        Diagnostic::error(
                            "E0116",
                            "a close code needs a name and a reason",
                            item.span,
                            "expected `CODE Name \"reason\"`",
                        )
                        .with_help(
                            "write `4001 AuthenticationFailed \"Authentication failed\"`; the name becomes the `CloseCode` variant",
                        ),
                    );
                    continue;
                }
            };
            let Some((code, span)) = code else { continue };
            if let Some(&first) = seen.get(&code) {
                self.err(
                    Diagnostic::error(
                        "E0122",
                        format!("the close code {code} is declared twice"),
                        span,
                        "declared again here",
                    )
                    .with_secondary(first, "first declared here"),
                );
                continue;
            }
            seen.insert(code, span);
            let rust = upper_camel(&name.name);
            if let Some((first, first_name)) = names.get(&rust) {
                let headline = if *first_name == name.name {
                    format!("the close code name `{}` is used twice", name.name)
                } else {
                    format!(
                        "the close code names `{first_name}` and `{}` both become `{rust}`",
                        name.name
                    )
                };
                self.err(
                    Diagnostic::error("E0102", headline, name.span, "used again here")
                        .with_secondary(*first, "first used here"),
                );
                continue;
            }
            names.insert(rust.clone(), (name.span, name.name.clone()));
            self.p.close_codes.push(CloseCode {
                span: name.span,
                code,
                name: rust,
                reason,
                docs: item.docs.lines.clone(),
            });
        }
    }

    // ---- wire ----------------------------------------------------------------------------

    fn wire(&mut self, d: &ast::Directive) {
        let Some(block) = &d.block else {
            self.err(Diagnostic::error(
                "E0116",
                "`wire` takes a block",
                d.span,
                "expected `wire { ... }`",
            ));
            return;
        };
        // A malformed or misspelled `tag` or `payload` is reported once, not as missing too.
        let mut have_tag = false;
        let mut payload_set = false;
        for item in block {
            let Some(head) = head_word(item) else {
                self.err(Diagnostic::error(
                    "E0114",
                    "expected a wire directive",
                    item.head.span(),
                    "not a directive",
                ));
                continue;
            };
            let clauses = &item.clauses;
            match head {
                "tag" => {
                    have_tag = true;
                    match words(&clauses[..]).as_deref() {
                        Some([key, ty]) if *ty == "string" || *ty == "int" => {
                            self.p.wire.tag = key.to_string();
                            self.p.wire.int_tags = *ty == "int";
                        }
                        Some([key, ty]) => {
                            // Read `integer` as `int` and `str` as `string`, so that the tags are
                            // still checked; anything else leaves their type unknown.
                            let int = ["integer", "i64", "i32", "u64", "u32", "number", "num"];
                            let string = ["str", "String", "text"];
                            let mut d = Diagnostic::error(
                                "E0116",
                                format!("unknown tag type `{ty}`"),
                                clauses[0].atoms.last().map_or(item.span, ast::Atom::span),
                                "expected `string` or `int`",
                            );
                            self.p.wire.tag = key.to_string();
                            if int.contains(ty) {
                                self.p.wire.int_tags = true;
                                d = d.with_help(format!("write `tag {key} int`"));
                            } else if string.contains(ty) {
                                d = d.with_help(format!("write `tag {key} string`"));
                            } else {
                                self.tag_type_unknown = true;
                                d = d.with_help(format!(
                                    "write `tag {key} string` or `tag {key} int`"
                                ));
                            }
                            self.err(d);
                        }
                        _ => {
                            self.tag_type_unknown = true;
                            self.err(Diagnostic::error(
                                "E0116",
                                "`tag` takes a key and `string` or `int`",
                                item.span,
                                "expected `tag type string` or `tag op int`",
                            ));
                        }
                    }
                }
                "payload" => {
                    payload_set = true;
                    match words(clauses).as_deref() {
                        Some(["inline"]) => {}
                        Some([key]) => self.p.wire.payload = Some(key.to_string()),
                        _ => self.err(Diagnostic::error(
                            "E0116",
                            "`payload` takes `inline` or a key",
                            item.span,
                            "expected `payload inline` or `payload data`",
                        )),
                    }
                }
                "sequence" => match words(clauses).as_deref() {
                    Some([key]) => self.p.wire.sequence = Some(key.to_string()),
                    _ => self.err(Diagnostic::error(
                        "E0116",
                        "`sequence` takes a key",
                        item.span,
                        "expected `sequence seq`",
                    )),
                },
                "strict" => self.p.wire.strict = true,
                "batch" => self.p.wire.batch = true,
                "binary" => match words(clauses).as_deref() {
                    Some(["text"]) => self.p.wire.binary_text = true,
                    _ => self.err(Diagnostic::error(
                        "E0116",
                        "`binary` takes `text`",
                        item.span,
                        "expected `binary text`",
                    )),
                },
                "event" => self.p.wire.event = self.framing(item, false),
                "request" => self.p.wire.request = self.framing(item, true),
                "response" => self.response(item),
                "error" => self.error_frame(item),
                other => {
                    let mut diag = Diagnostic::error(
                        "E0114",
                        format!("unknown wire directive `{other}`"),
                        item.head.span(),
                        "not a wire directive",
                    );
                    match did_you_mean(
                        other,
                        [
                            "tag", "payload", "sequence", "strict", "batch", "binary", "event",
                            "request", "response", "error",
                        ],
                    ) {
                        Some(s) => {
                            have_tag |= s == "tag";
                            payload_set |= s == "payload";
                            diag = diag.with_help(format!("did you mean `{s}`?"));
                        }
                        None => {
                            diag = diag.with_help("wire directives are `tag`, `payload`, `sequence`, `strict`, `batch`, `binary`, `event`, `request`, `response` and `error`");
                        }
                    }
                    self.err(diag);
                }
            }
        }
        if !have_tag {
            self.err(
                Diagnostic::error(
                    "E0115",
                    "the wire profile does not say where the tag sits",
                    d.head.span(),
                    "no `tag` directive",
                )
                .with_help("add `tag type string` (or `tag op int`) to the `wire` block"),
            );
        }
        if !payload_set {
            self.err(
                Diagnostic::error(
                    "E0115",
                    "the wire profile does not say where payloads sit",
                    d.head.span(),
                    "no `payload` directive",
                )
                .with_help("add `payload inline` or `payload data` to the `wire` block"),
            );
        }
        if self.p.wire.request_id == RequestId::Sequence && self.p.wire.sequence.is_none() {
            self.err(
                Diagnostic::error(
                    "E0116",
                    "`id sequence` needs a `sequence` directive",
                    d.head.span(),
                    "requests have no id",
                )
                .with_help("add `sequence seq` to the `wire` block"),
            );
        }
    }

    fn framing(&mut self, item: &ast::Directive, request: bool) -> Framing {
        let mut framing = Framing::Tagged;
        let mut method = None;
        let mut args = None;
        let mut carrier_tag = None;
        for clause in &item.clauses {
            let atoms = &clause.atoms;
            let Some(word) = atoms.first().and_then(atom_word) else {
                if !atoms.is_empty() {
                    self.err(Diagnostic::error(
                        "E0116",
                        "expected a clause name",
                        clause.span,
                        "not a clause",
                    ));
                }
                continue;
            };
            match (word, &atoms[1..]) {
                (
                    "suffix",
                    [
                        ast::Atom::Lit(ast::Lit {
                            value: ast::LitValue::Str(s),
                            ..
                        }),
                    ],
                ) => framing = Framing::Suffix(s.clone()),
                ("carrier", [ast::Atom::Lit(lit)]) => carrier_tag = Some(self.tag_lit(lit)),
                ("method", [key]) if atom_key(key).is_some() => method = atom_key(key),
                ("args", [key]) if atom_key(key).is_some() => args = atom_key(key),
                ("ordered", []) if request => self.p.wire.request_id = RequestId::Ordered,
                ("id", rest) if request => match rest {
                    [ast::Atom::Ident(i)] if i.name == "sequence" => {
                        self.p.wire.request_id = RequestId::Sequence
                    }
                    [key, words @ ..]
                        if atom_key(key).is_some()
                            && words.len() <= 2
                            && words
                                .iter()
                                .all(|w| matches!(atom_word(w), Some("optional" | "string")))
                            && !(words.len() == 2
                                && atom_word(&words[0]) == atom_word(&words[1])) =>
                    {
                        let has = |word| words.iter().any(|w| atom_word(w) == Some(word));
                        self.p.wire.request_id = RequestId::Key {
                            key: atom_key(key).unwrap_or_default(),
                            optional: has("optional"),
                            text: has("string"),
                        }
                    }
                    _ => self.err(Diagnostic::error(
                        "E0116",
                        "`id` takes a key, `sequence`, or a key with `optional` and `string`",
                        clause.span,
                        "malformed `id` clause",
                    )),
                },
                (other, _) => {
                    let known: &[&str] = if request {
                        &["suffix", "carrier", "method", "args", "id", "ordered"]
                    } else {
                        &["suffix", "carrier", "method", "args"]
                    };
                    let mut d = clause_error(
                        other,
                        known,
                        clause,
                        &atoms[0],
                        "not a clause of this directive",
                    );
                    if let Some(s) =
                        did_you_mean(other, known.iter().copied()).filter(|s| *s != other)
                    {
                        d = d.with_help(format!("did you mean `{s}`?"));
                    }
                    self.err(d);
                }
            }
        }
        match (carrier_tag, method, args) {
            (Some(tag), Some(method), Some(args)) => Framing::Carrier { tag, method, args },
            (Some(_), _, _) => {
                self.err(
                    Diagnostic::error(
                        "E0116",
                        "a carrier needs `method KEY` and `args KEY`",
                        item.span,
                        "incomplete carrier",
                    )
                    .with_help("write `carrier 4, method w, args a`"),
                );
                framing
            }
            (None, Some(_), _) | (None, _, Some(_)) => {
                self.err(Diagnostic::error(
                    "E0116",
                    "`method` and `args` only apply to a `carrier`",
                    item.span,
                    "no carrier",
                ));
                framing
            }
            (None, None, None) => framing,
        }
    }

    fn tag_lit(&mut self, lit: &ast::Lit) -> TagValue {
        if self.tag_type_unknown {
            return match &lit.value {
                ast::LitValue::Int(n) => TagValue::Int(*n),
                ast::LitValue::Str(s) => TagValue::Str(s.clone()),
            };
        }
        match (&lit.value, self.p.wire.int_tags) {
            (ast::LitValue::Int(n), true) => TagValue::Int(*n),
            (ast::LitValue::Str(s), false) => TagValue::Str(s.clone()),
            (ast::LitValue::Int(n), false) => {
                self.err(
                    Diagnostic::error(
                        "E0106",
                        "this protocol's tags are strings",
                        lit.span,
                        "an integer tag",
                    )
                    .with_help(format!("write `\"{n}\"`, or declare `tag KEY int`")),
                );
                TagValue::Int(*n)
            }
            (ast::LitValue::Str(s), true) => {
                self.err(
                    Diagnostic::error(
                        "E0106",
                        "this protocol's tags are integers",
                        lit.span,
                        "a string tag",
                    )
                    .with_help("use an integer, or declare `tag KEY string`"),
                );
                TagValue::Str(s.clone())
            }
        }
    }

    fn response(&mut self, item: &ast::Directive) {
        self.p.wire.replies = true;
        let mut matched = None;
        for clause in &item.clauses {
            let atoms = &clause.atoms;
            let Some(word) = atoms.first().and_then(atom_word) else {
                continue;
            };
            match (word, &atoms[1..]) {
                (
                    "suffix",
                    [
                        ast::Atom::Lit(ast::Lit {
                            value: ast::LitValue::Str(s),
                            ..
                        }),
                    ],
                ) => matched = Some(ReplyMatch::Suffix(s.clone())),
                ("carrier", [ast::Atom::Lit(lit)]) => {
                    matched = Some(ReplyMatch::Carrier(self.tag_lit(lit)))
                }
                ("untagged", []) => matched = Some(ReplyMatch::Untagged),
                (
                    "tag",
                    [
                        ast::Atom::Lit(ast::Lit {
                            value: ast::LitValue::Str(s),
                            ..
                        }),
                    ],
                ) => {
                    matched = Some(ReplyMatch::Tag {
                        tag: s.clone(),
                        for_key: String::new(),
                    })
                }
                ("for", [key]) if atom_key(key).is_some() => match &mut matched {
                    Some(ReplyMatch::Tag { for_key, .. }) => {
                        *for_key = atom_key(key).unwrap_or_default()
                    }
                    _ => self.err(Diagnostic::error(
                        "E0116",
                        "`for` needs a `tag` clause before it",
                        clause.span,
                        "no fixed reply tag",
                    )),
                },
                ("id", [key]) => match key_path(key) {
                    Some(path) => self.p.wire.reply_id = Some(self.resolve_path(path, key.span())),
                    None => self.err(Diagnostic::error(
                        "E0116",
                        "`id` takes a key or a path",
                        clause.span,
                        "expected `id rid` or `id data.seq`",
                    )),
                },
                ("result", [key]) if atom_key(key).is_some() => {
                    self.p.wire.reply_result = atom_key(key)
                }
                ("error", [key, shape @ ..]) if shape.len() <= 1 => {
                    // The error's shape, declared: `text` or `object` (`name`, `message`, other
                    // keys). Left out, it is an object for untagged replies (SocketCluster) and
                    // text elsewhere (Clusterio's `data.error`, Litecord's `e`).
                    let object = match shape.first().map(atom_word) {
                        None => Some(matches!(matched, Some(ReplyMatch::Untagged))),
                        Some(Some("object")) => Some(true),
                        Some(Some("text")) => Some(false),
                        Some(_) => None,
                    };
                    match (key_path(key), object) {
                        (Some(path), Some(object)) => {
                            let path = self.resolve_path(path, key.span());
                            self.p.wire.error = ErrorFraming::InReply { path, object };
                        }
                        _ => self.err(Diagnostic::error(
                            "E0116",
                            "`error` takes a key or a path, and the error's shape",
                            clause.span,
                            "expected `error data.error text` or `error error object`",
                        )),
                    }
                }
                (other, _) => {
                    let known = [
                        "suffix", "carrier", "untagged", "tag", "for", "id", "result", "error",
                    ];
                    let mut d = clause_error(
                        other,
                        &known,
                        clause,
                        &atoms[0],
                        "not a clause of `response`",
                    );
                    if let Some(s) = did_you_mean(other, known).filter(|s| *s != other) {
                        d = d.with_help(format!("did you mean `{s}`?"));
                    }
                    self.err(d);
                }
            }
        }
        match matched {
            Some(ReplyMatch::Tag { ref for_key, .. }) if for_key.is_empty() => {
                self.err(Diagnostic::error(
                    "E0116",
                    "a fixed reply tag needs `for KEY` naming the request answered",
                    item.span,
                    "no `for` clause",
                ));
            }
            Some(ReplyMatch::Untagged)
                if !matches!(self.p.wire.reply_id, Some(KeyPath::Top(_))) =>
            {
                self.err(Diagnostic::error(
                    "E0116",
                    "untagged replies are recognised by a top-level `id` key",
                    item.span,
                    "no `id KEY` clause",
                ));
            }
            None => self.err(
                Diagnostic::error(
                    "E0115",
                    "`response` must say how replies are recognised",
                    item.span,
                    "no `suffix`, `carrier`, `untagged` or `tag` clause",
                )
                .with_help(
                    "add one of `suffix \"_response\"`, `carrier TAG`, `untagged` or `tag \"result\", for KEY`",
                ),
            ),
            _ => {}
        }
        if let Some(m) = matched {
            self.p.wire.reply_match = m;
        }
    }

    fn resolve_path(&mut self, path: Vec<String>, span: Span) -> KeyPath {
        match path.as_slice() {
            [key] => KeyPath::Top(key.clone()),
            [under, key] if self.p.wire.payload.as_deref() == Some(under.as_str()) => {
                KeyPath::InPayload(key.clone())
            }
            _ => {
                self.err(
                    Diagnostic::error(
                        "E0116",
                        "a path must be a key, or the payload key and a key inside it",
                        span,
                        "cannot be reached",
                    )
                    .with_help("declare `payload KEY` first, then write `KEY.inner`"),
                );
                KeyPath::Top(path.join("."))
            }
        }
    }

    fn error_frame(&mut self, item: &ast::Directive) {
        let mut tag = None;
        let mut message = None;
        for clause in &item.clauses {
            match clause.atoms.as_slice() {
                [
                    first,
                    ast::Atom::Lit(ast::Lit {
                        value: ast::LitValue::Str(s),
                        ..
                    }),
                ] if atom_word(first) == Some("tag") => tag = Some(s.clone()),
                [first, key] if atom_word(first) == Some("message") && atom_key(key).is_some() => {
                    message = atom_key(key)
                }
                _ => self.err(Diagnostic::error(
                    "E0116",
                    "`error` takes `tag \"error\"` and `message KEY`",
                    clause.span,
                    "malformed clause",
                )),
            }
        }
        match (tag, message) {
            (Some(tag), Some(message)) => self.p.wire.error = ErrorFraming::Tagged { tag, message },
            _ => self.err(
                Diagnostic::error(
                    "E0116",
                    "an error frame needs `tag` and `message`",
                    item.span,
                    "incomplete",
                )
                .with_help("write `error tag \"error\", message error`"),
            ),
        }
    }

    // ---- types ---------------------------------------------------------------------------

    fn declare_types(&mut self) {
        for item in &self.file.items {
            let (name, docs) = match item {
                ast::Item::Struct(s) => (&s.name, &s.docs),
                ast::Item::Enum(e) => (&e.name, &e.docs),
                ast::Item::Union(u) => (&u.name, &u.docs),
                ast::Item::Alias(a) => (&a.name, &a.docs),
                ast::Item::Message(_) => continue,
            };
            if BUILTINS.contains(&name.name.as_str()) || name.name == "null" {
                self.err(Diagnostic::error(
                    "E0102",
                    format!("`{}` is a built-in type", name.name),
                    name.span,
                    "cannot be redeclared",
                ));
                continue;
            }
            if let Some(&(_, first)) = self.type_names.get(&name.name) {
                self.err(
                    Diagnostic::error(
                        "E0102",
                        format!("the type `{}` is declared twice", name.name),
                        name.span,
                        "declared again here",
                    )
                    .with_secondary(first, "first declared here"),
                );
                continue;
            }
            let rust_name = upper_camel(&name.name);
            if !self.claim_rust_name(&rust_name, name) {
                continue;
            }
            self.type_names
                .insert(name.name.clone(), (self.p.types.len(), name.span));
            self.p.types.push(TypeDef {
                span: name.span,
                name: name.name.clone(),
                rust_name,
                docs: docs.lines.clone(),
                kind: TypeDefKind::Alias(Ty::Any),
            });
        }
    }

    /// The Rust names the generator declares in the protocol's module besides the user's types
    /// and messages, each with what it is for.
    fn generated_names(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = vec![
            ("CloseCode".into(), "the generator's close-code enum".into()),
            (
                upper_camel(&self.p.name),
                format!("the marker type of the protocol `{}`", self.p.name),
            ),
        ];
        // Always reserved, so that adding `endpoints` later cannot break a protocol.
        for name in RESERVED {
            if !out.iter().any(|(n, _)| n == name) {
                out.push((
                    name.to_string(),
                    "a name of the generated client/server sides".into(),
                ));
            }
        }
        let named = self.p.has_named_endpoints();
        let camel: Vec<String> = self.p.endpoints.iter().map(|e| upper_camel(e)).collect();
        for &(client, server) in &self.p.links {
            for (me, peer) in [(client, server), (server, client)] {
                let (me_camel, peer_camel) = (&camel[me], &camel[peer]);
                let (me, peer) = (&self.p.endpoints[me], &self.p.endpoints[peer]);
                let side = if named {
                    format!("{me_camel}With{peer_camel}")
                } else {
                    me_camel.clone()
                };
                for (name, what) in [
                    (
                        side.clone(),
                        format!("the marker of the `{me}` side of its link with `{peer}`"),
                    ),
                    (
                        format!("{side}Handler"),
                        format!("the handler trait of the `{me}` side"),
                    ),
                    (
                        format!("{side}Sender"),
                        format!("the sender trait of the `{me}` side"),
                    ),
                    (
                        format!("{me_camel}To{peer_camel}"),
                        format!("the enum of everything `{me}` sends to `{peer}`"),
                    ),
                ] {
                    if !out.iter().any(|(n, _)| *n == name) {
                        out.push((name, what));
                    }
                }
            }
        }
        out
    }

    /// What already has the Rust name `rust`: a place and a label, or a note for the names the
    /// generator uses.
    fn taken_by(&self, rust: &str) -> Option<(Option<Span>, String)> {
        match self.generated.iter().find(|(n, _)| n == rust) {
            Some((_, what)) => Some((None, format!("`{rust}` is {what}"))),
            None => self
                .rust_names
                .get(rust)
                .map(|(span, label)| (Some(*span), label.clone())),
        }
    }

    fn claim_rust_name(&mut self, rust: &str, name: &ast::Ident) -> bool {
        self.claim_rust_name_for(rust, &name.name, name.span)
    }

    /// Claims the Rust name `rust`, which `name` (written at `span`) becomes in the module.
    fn claim_rust_name_for(&mut self, rust: &str, name: &str, span: Span) -> bool {
        if let Some((_, what)) = self.generated.iter().find(|(n, _)| n == rust) {
            let headline = if name == rust {
                format!("`{name}` is a name the generator uses itself")
            } else {
                format!("`{name}` becomes `{rust}`, a name the generator uses itself")
            };
            let d = Diagnostic::error("E0124", headline, span, "reserved in generated code")
                .with_note(format!("`{rust}` is {what}"))
                .with_help("rename it");
            self.err(d);
            return false;
        }
        if let Some((first, label)) = self.rust_names.get(rust).cloned() {
            let headline = if name == rust {
                format!("the Rust name `{rust}` is already taken")
            } else {
                format!("`{name}` becomes the Rust name `{rust}`, which is already taken")
            };
            self.err(
                Diagnostic::error("E0124", headline, span, "clashes in Rust")
                    .with_secondary(first, label)
                    .with_help("rename one of them"),
            );
            return false;
        }
        let label = if name == rust {
            "taken here".to_owned()
        } else {
            format!("`{name}` becomes `{rust}` here")
        };
        self.rust_names.insert(rust.to_owned(), (span, label));
        true
    }

    fn resolve_types(&mut self) {
        for item in &self.file.items {
            let (name, kind) = match item {
                ast::Item::Struct(s) if s.positional => {
                    if s.fields.rest.is_some() {
                        self.err(Diagnostic::error(
                            "E0119",
                            "a positional struct cannot keep other keys",
                            s.fields.span,
                            "`..rest` in `( ... )`",
                        ));
                    }
                    (
                        &s.name,
                        TypeDefKind::Positional(self.fields(&s.fields, &s.name.name)),
                    )
                }
                ast::Item::Struct(s) => (
                    &s.name,
                    TypeDefKind::Struct(self.fields(&s.fields, &s.name.name)),
                ),
                ast::Item::Enum(e) => (&e.name, TypeDefKind::Enum(self.enum_variants(e))),
                ast::Item::Union(u) => (&u.name, self.union(u)),
                ast::Item::Alias(a) => {
                    self.alias_union = Some(a.ty.span);
                    let ty = self.ty(&a.ty, &a.name.name);
                    self.alias_union = None;
                    // `type Channel = string | int` is itself the union enum.
                    let kind = match ty {
                        Ty::Named(i) if self.p.types[i].name.starts_with('\0') => {
                            let synthetic = self.p.types[i].kind.clone();
                            self.p.types.remove(i);
                            synthetic
                        }
                        ty => TypeDefKind::Alias(ty),
                    };
                    (&a.name, kind)
                }
                ast::Item::Message(_) => continue,
            };
            if let Some(&(index, _)) = self.type_names.get(&name.name) {
                if index >= self.own_types {
                    self.p.types[index].kind = kind;
                }
            }
        }
        self.check_alias_cycles();
    }

    fn check_alias_cycles(&mut self) {
        for start in self.own_types..self.p.types.len() {
            let mut chain = vec![start];
            let mut current = start;
            while let TypeDefKind::Alias(Ty::Named(next)) = &self.p.types[current].kind {
                let next = *next;
                if next == start {
                    self.report_alias_cycle(&chain);
                    break;
                }
                if chain.contains(&next) {
                    break; // a cycle that `start` only leads into: reported from one of its members
                }
                chain.push(next);
                current = next;
            }
        }
    }

    /// Reports the aliases of `chain` (each naming the next, the last naming the first) once,
    /// and breaks the cycle so that no other member reports it again.
    fn report_alias_cycle(&mut self, chain: &[usize]) {
        let names: Vec<String> = chain
            .iter()
            .map(|&i| self.p.types[i].name.clone())
            .collect();
        let span_of = |name: &String| {
            self.type_names
                .get(name)
                .map_or(self.decl.span, |&(_, s)| s)
        };
        let headline = match names.as_slice() {
            [one] => format!("the alias `{one}` refers to itself"),
            _ => format!("the aliases {} refer to each other", name_list(&names)),
        };
        let mut d = Diagnostic::error(
            "E0113",
            headline,
            span_of(&names[0]),
            "this alias never reaches a type",
        );
        for (k, name) in names.iter().enumerate().skip(1) {
            let next = &names[(k + 1) % names.len()];
            d = d.with_secondary(span_of(name), format!("`{name}` is `{next}`"));
        }
        self.err(d.with_help("make one of the aliases a struct or a built-in type"));
        for &i in chain {
            self.p.types[i].kind = TypeDefKind::Alias(Ty::Any);
        }
    }

    /// Types holding themselves directly (not through an array or map) have no end. Each cycle
    /// is reported once, at its first type, with the fields that close it.
    fn check_struct_cycles(&mut self) {
        /// How a type holds the next one: through a field (of a union variant), or as a whole.
        enum Via {
            Field(Option<String>, String),
            Whole,
        }
        fn direct(ty: &Ty, out: &mut Vec<usize>) {
            match ty {
                Ty::Named(i) => out.push(*i),
                Ty::Nullable(inner) => direct(inner, out),
                _ => {}
            }
        }
        let edges: Vec<Vec<(usize, Via)>> = self
            .p
            .types
            .iter()
            .map(|t| {
                let mut out = Vec::new();
                let mut push = |ty: &Ty, via: &dyn Fn() -> Via| {
                    let mut targets = Vec::new();
                    direct(ty, &mut targets);
                    out.extend(targets.into_iter().map(|t| (t, via())));
                };
                match &t.kind {
                    TypeDefKind::Struct(s) | TypeDefKind::Positional(s) => {
                        s.fields.iter().for_each(|f| {
                            push(&f.ty, &|| Via::Field(None, f.rust_name.clone()));
                        })
                    }
                    TypeDefKind::Union { variants, .. } => variants.iter().for_each(|v| {
                        v.3.fields.iter().for_each(|f| {
                            push(&f.ty, &|| {
                                Via::Field(Some(v.0.clone()), f.rust_name.clone())
                            });
                        })
                    }),
                    TypeDefKind::OneOf(members) => {
                        members.iter().for_each(|(_, ty)| push(ty, &|| Via::Whole))
                    }
                    TypeDefKind::Alias(ty) => push(ty, &|| Via::Whole),
                    TypeDefKind::Enum(_) => {}
                }
                out
            })
            .collect();
        let is_synthetic: Vec<bool> = self
            .p
            .types
            .iter()
            .map(|t| t.name.starts_with('\0'))
            .collect();
        let synthetic = |i: usize| is_synthetic[i];
        let mut reported: BTreeSet<usize> = BTreeSet::new();
        let mut found: Vec<Vec<(usize, usize)>> = Vec::new();
        for start in self.own_types..self.p.types.len() {
            if reported.contains(&start) || synthetic(start) {
                continue;
            }
            // Breadth first, so the shortest cycle through `start` is the one shown.
            let mut parent: HashMap<usize, (usize, usize)> = HashMap::new();
            let mut queue = std::collections::VecDeque::from([start]);
            let mut closing = None;
            'search: while let Some(t) = queue.pop_front() {
                for (k, (next, _)) in edges[t].iter().enumerate() {
                    if *next == start {
                        closing = Some((t, k));
                        break 'search;
                    }
                    if !parent.contains_key(next) {
                        parent.insert(*next, (t, k));
                        queue.push_back(*next);
                    }
                }
            }
            let Some(last) = closing else { continue };
            // The cycle as (type, index of the edge to the next type), from `start`.
            let mut cycle = vec![last];
            let mut at = last.0;
            while at != start {
                let step = parent[&at];
                cycle.push(step);
                at = step.0;
            }
            cycle.reverse();
            reported.extend(cycle.iter().map(|&(t, _)| t));
            found.push(cycle);
        }
        for cycle in found {
            let real: Vec<usize> = cycle
                .iter()
                .map(|&(t, _)| t)
                .filter(|&t| !synthetic(t))
                .collect();
            let names: Vec<String> = real.iter().map(|&t| self.p.types[t].name.clone()).collect();
            let headline = match names.as_slice() {
                [one] => format!("the type `{one}` contains itself"),
                _ => format!("the types {} contain each other", name_list(&names)),
            };
            let span = self
                .type_names
                .get(&names[0])
                .map_or(self.decl.span, |&(_, s)| s);
            let mut d = Diagnostic::error(
                "E0113",
                headline,
                span,
                "a value of this type would never end",
            );
            for (k, &(t, edge)) in cycle.iter().enumerate() {
                if synthetic(t) {
                    continue;
                }
                // The next named type along the cycle (unions of types are passed through).
                let held = cycle
                    .iter()
                    .cycle()
                    .skip(k + 1)
                    .map(|&(n, _)| n)
                    .find(|&n| !synthetic(n))
                    .unwrap_or(t);
                let name = &self.p.types[t].name;
                let label = if held == t {
                    format!("`{name}` holds itself here")
                } else {
                    format!("`{name}` holds `{}` here", self.p.types[held].name)
                };
                let at = match &edges[t][edge].1 {
                    Via::Field(variant, field) => {
                        self.field_type_span(name, variant.as_deref(), field)
                    }
                    Via::Whole => self.field_type_span(name, None, ""),
                };
                if let Some(at) = at {
                    d = d.with_secondary(at, label);
                }
            }
            self.err(d.with_help(
                "break the cycle with an array (`[T]`) or a map (`{string: T}`); `T?` and `T | null` do not break it",
            ));
        }
    }

    /// Where the declaration of the type `name` writes the type of `field` (of the union variant
    /// `variant`, whose Rust name is given), or the whole type of an alias.
    fn field_type_span(&self, name: &str, variant: Option<&str>, field: &str) -> Option<Span> {
        self.file.items.iter().find_map(|item| match item {
            ast::Item::Struct(s) if s.name.name == name => s
                .fields
                .fields
                .iter()
                .find(|f| snake(&f.name.name) == field)
                .map(|f| f.ty.span),
            ast::Item::Union(u) if u.name.name == name => u
                .variants
                .iter()
                .filter(|v| variant.is_none_or(|r| upper_camel(&v.name.name) == r))
                .flat_map(|v| &v.fields.fields)
                .find(|f| snake(&f.name.name) == field)
                .map(|f| f.ty.span),
            ast::Item::Alias(a) if a.name.name == name => Some(a.ty.span),
            _ => None,
        })
    }

    fn enum_variants(&mut self, e: &ast::EnumDecl) -> Vec<(String, String, Vec<String>)> {
        let mut out: Vec<(String, String, Vec<String>)> = Vec::new();
        let mut spans: Vec<Span> = Vec::new();
        for v in &e.variants {
            let wire = rename_of(&v.rename).unwrap_or_else(|| v.name.name.clone());
            let rust = upper_camel(&v.name.name);
            if let Some(first) = out.iter().position(|(r, w, _)| *r == rust || *w == wire) {
                self.err(
                    Diagnostic::error(
                        "E0102",
                        format!("the variant `{}` is declared twice", v.name.name),
                        v.name.span,
                        "declared again here",
                    )
                    .with_secondary(spans[first], "first declared here"),
                );
                continue;
            }
            out.push((rust, wire, v.docs.lines.clone()));
            spans.push(v.name.span);
        }
        // An enum without variants is a syntax error (E0024), already reported by the parser.
        out
    }

    fn union(&mut self, u: &ast::UnionDecl) -> TypeDefKind {
        let tag = match &u.tag.value {
            ast::LitValue::Str(s) => s.clone(),
            ast::LitValue::Int(_) => {
                self.err(Diagnostic::error(
                    "E0116",
                    "a union's tag is a key name",
                    u.tag.span,
                    "expected a string",
                ));
                String::new()
            }
        };
        let mut variants: Vec<(String, String, Vec<String>, Struct)> = Vec::new();
        let mut spans: Vec<Span> = Vec::new();
        for v in &u.variants {
            let wire = rename_of(&v.rename).unwrap_or_else(|| v.name.name.clone());
            let rust = upper_camel(&v.name.name);
            if let Some(first) = variants
                .iter()
                .position(|(r, w, _, _)| *r == rust || *w == wire)
            {
                self.err(
                    Diagnostic::error(
                        "E0102",
                        format!("the variant `{}` is declared twice", v.name.name),
                        v.name.span,
                        "declared again here",
                    )
                    .with_secondary(spans[first], "first declared here"),
                );
                continue;
            }
            spans.push(v.name.span);
            let fields = self.fields(&v.fields, &format!("{}{}", u.name.name, rust));
            if let Some(f) = fields.fields.iter().find(|f| f.wire_name == tag) {
                let span = v
                    .fields
                    .fields
                    .iter()
                    .find(|a| rename_of(&a.rename).unwrap_or_else(|| a.name.name.clone()) == tag)
                    .map_or(v.fields.span, |a| a.span);
                self.err(
                    Diagnostic::error(
                        "E0108",
                        format!(
                            "the field `{}` has the same wire name as the union's tag",
                            f.wire_name
                        ),
                        span,
                        "clashes with the tag",
                    )
                    .with_secondary(u.tag.span, "the tag key")
                    .with_help("give the field another wire name with `as \"...\"`"),
                );
            }
            variants.push((rust, wire, v.docs.lines.clone(), fields));
        }
        TypeDefKind::Union { tag, variants }
    }

    fn fields(&mut self, fields: &ast::Fields, owner: &str) -> Struct {
        let mut out = Struct::default();
        let mut rust_seen: HashMap<String, Span> = HashMap::new();
        let mut wire_seen: HashMap<String, Span> = HashMap::new();
        for f in &fields.fields {
            let wire = rename_of(&f.rename).unwrap_or_else(|| f.name.name.clone());
            let rust = snake(&f.name.name);
            if let Some(&first) = rust_seen.get(&rust) {
                self.err(
                    Diagnostic::error(
                        "E0107",
                        format!("the field `{}` is declared twice", f.name.name),
                        f.name.span,
                        "declared again here",
                    )
                    .with_secondary(first, "first declared here"),
                );
                continue;
            }
            if let Some(&first) = wire_seen.get(&wire) {
                self.err(
                    Diagnostic::error(
                        "E0108",
                        format!("two fields have the wire name `{wire}`"),
                        f.span,
                        "conflicting wire name",
                    )
                    .with_secondary(first, "also written as this key")
                    .with_help("give one of them another name with `as \"...\"`"),
                );
                continue;
            }
            rust_seen.insert(rust.clone(), f.name.span);
            wire_seen.insert(wire.clone(), f.span);
            let (ty_expr, optional) = match &f.ty.kind {
                ast::TypeKind::Optional(inner) => (&**inner, true),
                _ => (&f.ty, false),
            };
            let reported = self.diags.count();
            let ty = self.ty(ty_expr, &format!("{owner}_{}", f.name.name));
            // A type that failed to resolve would make every constraint on it look misplaced.
            let constraints = if self.diags.count() == reported {
                self.constraints(&f.constraints, &ty)
            } else {
                Vec::new()
            };
            out.fields.push(Field {
                span: f.name.span,
                wire_name: wire,
                rust_name: rust,
                docs: f.docs.lines.clone(),
                ty,
                optional,
                constraints,
            });
        }
        if let Some(rest) = &fields.rest {
            let rust = snake(&rest.name);
            if let Some(&first) = rust_seen.get(&rust) {
                self.err(
                    Diagnostic::error(
                        "E0107",
                        format!("the field `{}` is declared twice", rest.name),
                        rest.span,
                        "the rest field has the name of a field",
                    )
                    .with_secondary(first, "the field")
                    .with_help("name the rest field after what it keeps, such as `..extra`"),
                );
            } else {
                out.rest = Some(rust);
            }
        }
        out
    }

    fn ty(&mut self, t: &ast::TypeExpr, owner: &str) -> Ty {
        match &t.kind {
            ast::TypeKind::Named(id) => self.named(id),
            ast::TypeKind::Null => {
                self.err(
                    Diagnostic::error(
                        "E0116",
                        "`null` alone is not a useful type",
                        t.span,
                        "only `null` fits here",
                    )
                    .with_help("write `T | null` for a value that may be null"),
                );
                Ty::Any
            }
            ast::TypeKind::Const(lit) => Ty::Const(match &lit.value {
                ast::LitValue::Str(s) => TagValue::Str(s.clone()),
                ast::LitValue::Int(n) => TagValue::Int(*n),
            }),
            ast::TypeKind::Array(inner) => Ty::Array(Box::new(self.inner_ty(inner, owner))),
            ast::TypeKind::Map(inner) => Ty::Map(Box::new(self.inner_ty(inner, owner))),
            ast::TypeKind::Optional(_) => self.inner_ty(t, owner),
            ast::TypeKind::Union(members) => self.union_ty(members, t.span, owner),
        }
    }

    /// A type where `?` cannot apply (array items, map values, union members).
    fn inner_ty(&mut self, t: &ast::TypeExpr, owner: &str) -> Ty {
        if let ast::TypeKind::Optional(inner) = &t.kind {
            self.err(
                Diagnostic::error(
                    "E0123",
                    "only a field's key can be absent",
                    t.span,
                    "`?` cannot apply here",
                )
                .with_help("write `T | null` for a value that may be null"),
            );
            return self.ty(inner, owner);
        }
        self.ty(t, owner)
    }

    fn union_ty(&mut self, members: &[ast::TypeExpr], span: Span, owner: &str) -> Ty {
        let nulls = members
            .iter()
            .filter(|m| m.kind == ast::TypeKind::Null)
            .count();
        let rest: Vec<&ast::TypeExpr> = members
            .iter()
            .filter(|m| m.kind != ast::TypeKind::Null)
            .collect();
        let inner = match rest.as_slice() {
            [] => {
                self.err(Diagnostic::error(
                    "E0116",
                    "`null | null` is not a useful type",
                    span,
                    "only `null`",
                ));
                return Ty::Any;
            }
            [single] => self.inner_ty(single, owner),
            many => {
                // The alias's own union (`type Channel = string | i64`) takes the alias's name;
                // any other union gets a name from where it sits, and must claim it.
                // With `| null` the alias is an `Option` of the union, which needs a name of its own.
                let alias_top = self.alias_union.take() == Some(span);
                let own_alias = alias_top && nulls == 0;
                let mut variants: Vec<(String, Ty)> = Vec::new();
                let mut spans: Vec<Span> = Vec::new();
                for m in many {
                    let ty = self.inner_ty(m, owner);
                    let (name, json) = match &ty {
                        Ty::String => ("String".to_owned(), "string"),
                        Ty::Int(_) => ("Int".to_owned(), "number"),
                        Ty::F64 => ("Float".to_owned(), "number"),
                        Ty::Bool => ("Bool".to_owned(), "boolean"),
                        Ty::Array(_) => ("List".to_owned(), "array"),
                        Ty::Map(_) => ("Map".to_owned(), "object"),
                        Ty::Named(i) => (self.p.types[*i].rust_name.clone(), "object"),
                        Ty::Any => {
                            self.err(Diagnostic::error("E0127", "`any` cannot be a member of a union", m.span, "matches every JSON value")
                                .with_help("the other members could never be told apart from it: use `any` alone"));
                            continue;
                        }
                        Ty::Const(_) => {
                            self.err(Diagnostic::error("E0127", "a constant cannot be a member of a union", m.span, "a constant")
                                .with_help("unions match by JSON type only; for a set of fixed strings, declare an `enum`"));
                            continue;
                        }
                        Ty::Nullable(_) => {
                            self.err(
                                Diagnostic::error(
                                    "E0127",
                                    "a nullable type cannot be a member of a union",
                                    m.span,
                                    "may be `null`",
                                )
                                .with_help("write `| null` once, on the whole union"),
                            );
                            continue;
                        }
                    };
                    let same = variants.iter().position(|(n, t)| {
                        *n == name
                            || (json != "object"
                                && json_kind(t) == json
                                && !matches!(
                                    (t, &ty),
                                    (Ty::Int(_), Ty::F64) | (Ty::F64, Ty::Int(_))
                                ))
                    });
                    if let Some(first) = same {
                        let kind = if name == variants[first].0 && json == "object" {
                            format!("`{name}`")
                        } else {
                            format!("a JSON {}", json_kind(&ty))
                        };
                        self.err(Diagnostic::error("E0127", "two members of this union have the same JSON type", m.span, format!("also {kind}"))
                            .with_secondary(spans[first], format!("{kind} here"))
                            .with_help("unions match by JSON type: use at most one string, one integer, one array..."));
                        continue;
                    }
                    // Members are tried in order, and `f64` accepts integers too.
                    if let (Ty::Int(_), Some(float)) =
                        (&ty, variants.iter().position(|(_, t)| *t == Ty::F64))
                    {
                        self.err(
                            Diagnostic::error(
                                "E0127",
                                "an integer member after `f64` is never matched",
                                m.span,
                                "never matched",
                            )
                            .with_secondary(spans[float], "matches every number, integers too")
                            .with_help("write the integer type before `f64`"),
                        );
                        continue;
                    }
                    variants.push((name, ty));
                    spans.push(m.span);
                }
                let name = upper_camel(owner);
                let index = self.p.types.len();
                // A name starting with NUL marks a synthetic type until an alias claims it.
                self.p.types.push(TypeDef {
                    span,
                    name: format!("\0{name}"),
                    rust_name: name.clone(),
                    docs: Vec::new(),
                    kind: TypeDefKind::OneOf(variants),
                });
                if alias_top && !own_alias {
                    // `type Score = string | i64 | null`: `Score` is the `Option`, and the enum
                    // inside it would be called `Score` too.
                    self.err(
                        Diagnostic::error(
                            "E0124",
                            format!("the union inside `{owner}` needs a Rust name of its own"),
                            span,
                            format!("`{name}` is an `Option` of this union"),
                        )
                        .with_help(format!(
                            "declare the union without `null`, as in `type {name}Value = ...`, then write `type {owner} = {name}Value | null`"
                        )),
                    );
                } else if !own_alias {
                    match self.taken_by(&name) {
                        Some((first, label)) => {
                            let mut d = Diagnostic::error(
                                "E0124",
                                format!(
                                    "this union becomes the Rust type `{name}`, which is already taken"
                                ),
                                span,
                                "clashes in Rust",
                            );
                            d = match first {
                                Some(first) => d.with_secondary(first, label),
                                None => d.with_note(label),
                            };
                            self.err(d.with_help(
                                "declare the union as a named type, `type Name = A | B`, and use its name here",
                            ));
                        }
                        None => {
                            let label = format!("a union here becomes `{name}`");
                            self.rust_names.insert(name, (span, label));
                        }
                    }
                }
                Ty::Named(index)
            }
        };
        if nulls > 0 {
            Ty::Nullable(Box::new(inner))
        } else {
            inner
        }
    }

    fn named(&mut self, id: &ast::Ident) -> Ty {
        match id.name.as_str() {
            "bool" => Ty::Bool,
            "i8" => Ty::Int(IntType::I8),
            "i16" => Ty::Int(IntType::I16),
            "i32" => Ty::Int(IntType::I32),
            "i64" | "int" => Ty::Int(IntType::I64),
            "u8" => Ty::Int(IntType::U8),
            "u16" => Ty::Int(IntType::U16),
            "u32" => Ty::Int(IntType::U32),
            "u64" => Ty::Int(IntType::U64),
            "f64" => Ty::F64,
            "string" => Ty::String,
            "any" => Ty::Any,
            name => match self.type_names.get(name) {
                Some(&(index, _)) => Ty::Named(index),
                None => {
                    let mut d = Diagnostic::error(
                        "E0101",
                        format!("unknown type `{name}`"),
                        id.span,
                        "not a type in this protocol",
                    );
                    let candidates: Vec<String> = BUILTINS
                        .iter()
                        .map(|s| s.to_string())
                        .chain(self.type_names.keys().cloned())
                        .collect();
                    d = match did_you_mean(name, candidates.iter().map(String::as_str)) {
                        Some(s) => d.with_help(format!("a type with a similar name exists: `{s}`")),
                        None => d.with_help("declare it with `struct`, `enum`, `union` or `type`, or use a built-in type"),
                    };
                    self.err(d);
                    Ty::Any
                }
            },
        }
    }

    fn constraints(&mut self, list: &[ast::Constraint], ty: &Ty) -> Vec<Constraint> {
        let mut out = Vec::new();
        let base = self.unalias(ty);
        for c in list {
            match &c.kind {
                ast::ConstraintKind::Range(r) => {
                    let bounds = match &base {
                        Ty::Int(int) => Some(int.bounds()),
                        Ty::F64 => None,
                        other => {
                            let help = if matches!(other, Ty::String | Ty::Array(_) | Ty::Map(_)) {
                                "did you mean `len` followed by the range?"
                            } else {
                                "ranges apply to numbers"
                            };
                            self.err(
                                Diagnostic::error(
                                    "E0110",
                                    format!("a range does not apply to {}", self.describe(other)),
                                    c.span,
                                    "not a number",
                                )
                                .with_help(help),
                            );
                            continue;
                        }
                    };
                    if !self.range_holds(r, c.span, bounds) {
                        continue;
                    }
                    out.push(Constraint::Range {
                        min: r.min,
                        max: r.max,
                        max_inclusive: r.max_inclusive,
                    });
                }
                ast::ConstraintKind::Len(r) => {
                    if !matches!(base, Ty::String | Ty::Array(_) | Ty::Map(_)) {
                        self.err(
                            Diagnostic::error(
                                "E0110",
                                format!("`len` does not apply to {}", self.describe(&base)),
                                c.span,
                                "has no length",
                            )
                            .with_help("`len` applies to strings, arrays and maps"),
                        );
                        continue;
                    }
                    if r.min.is_some_and(|m| m < 0) || r.max.is_some_and(|m| m < 0) {
                        self.err(
                            Diagnostic::error(
                                "E0109",
                                "a length cannot be negative",
                                c.span,
                                "negative bound",
                            )
                            .with_help("lengths count from 0; leave the lower bound out for none"),
                        );
                        continue;
                    }
                    if !self.range_holds(r, c.span, Some((0, i128::from(i64::MAX)))) {
                        continue;
                    }
                    out.push(Constraint::Len {
                        min: r.min.and_then(|m| u64::try_from(m).ok()),
                        max: r.max.and_then(|m| u64::try_from(m).ok()),
                        max_inclusive: r.max_inclusive,
                    });
                }
                ast::ConstraintKind::NonEmpty => {
                    if !matches!(base, Ty::String | Ty::Array(_) | Ty::Map(_)) {
                        self.err(
                            Diagnostic::error(
                                "E0110",
                                format!("`non_empty` does not apply to {}", self.describe(&base)),
                                c.span,
                                "has no length",
                            )
                            .with_help("`non_empty` applies to strings, arrays and maps"),
                        );
                        continue;
                    }
                    out.push(Constraint::Len {
                        min: Some(1),
                        max: None,
                        max_inclusive: false,
                    });
                }
                ast::ConstraintKind::Pattern(p) => {
                    if base != Ty::String {
                        self.err(
                            Diagnostic::error(
                                "E0110",
                                format!("`pattern` does not apply to {}", self.describe(&base)),
                                c.span,
                                "not a string",
                            )
                            .with_help("`pattern` applies to strings"),
                        );
                        continue;
                    }
                    if let Err(e) = regex::Regex::new(p) {
                        // The regex crate's message ends with a line `error: what is wrong`.
                        let text = e.to_string();
                        let last = text.lines().last().unwrap_or("invalid").trim();
                        let first = last.strip_prefix("error: ").unwrap_or(last).to_owned();
                        self.err(
                            Diagnostic::error(
                                "E0111",
                                "this pattern is not a valid regular expression",
                                c.span,
                                first,
                            )
                            .with_help("patterns use the syntax of the `regex` crate"),
                        );
                        continue;
                    }
                    out.push(Constraint::Pattern(p.clone()));
                }
            }
        }
        out
    }

    fn range_holds(&mut self, r: &ast::Range, span: Span, bounds: Option<(i128, i128)>) -> bool {
        let min = r.min.map(i128::from);
        let max = r.max.map(|m| i128::from(m) - i128::from(!r.max_inclusive));
        if let (Some(lo), Some(hi)) = (min, max) {
            if lo > hi {
                self.err(Diagnostic::error("E0109", "this range is empty", span, "no value satisfies it")
                    .with_help("the lower bound must be below the upper bound (`..` excludes the end, `..=` includes it)"));
                return false;
            }
        }
        if let Some((tlo, thi)) = bounds {
            if min.is_some_and(|lo| lo > thi) || max.is_some_and(|hi| hi < tlo) {
                self.err(
                    Diagnostic::error(
                        "E0109",
                        "no value of the field's type is in this range",
                        span,
                        "outside the type's range",
                    )
                    .with_help(format!("the type holds {tlo}..={thi}")),
                );
                return false;
            }
        }
        true
    }

    /// A type in words, naming a declared type with its kind: "a string", "the struct `Rules`".
    fn describe(&self, ty: &Ty) -> String {
        let Ty::Named(i) = ty else {
            return describe(ty).to_owned();
        };
        let Some(t) = self.p.types.get(*i) else {
            return describe(ty).to_owned();
        };
        match &t.kind {
            TypeDefKind::Struct(_) | TypeDefKind::Positional(_) => {
                format!("the struct `{}`", t.name)
            }
            TypeDefKind::Enum(_) => format!("the enum `{}`", t.name),
            TypeDefKind::Union { .. } => format!("the union `{}`", t.name),
            TypeDefKind::OneOf(_) if !t.name.starts_with('\0') => format!("the union `{}`", t.name),
            TypeDefKind::OneOf(_) => "a union of types".to_owned(),
            TypeDefKind::Alias(_) => format!("`{}`", t.name),
        }
    }

    /// Follows aliases to the type they name.
    fn unalias(&self, ty: &Ty) -> Ty {
        let mut ty = ty.clone();
        for _ in 0..64 {
            match ty {
                Ty::Named(i) => match &self.p.types.get(i).map(|t| &t.kind) {
                    Some(TypeDefKind::Alias(inner)) => ty = inner.clone(),
                    _ => return ty,
                },
                Ty::Nullable(inner) => ty = *inner,
                other => return other,
            }
        }
        ty
    }

    // ---- messages ------------------------------------------------------------------------

    /// Requests need a way to tell their replies: without a `response` directive every request
    /// would wait for its timeout.
    fn check_replies(&mut self) {
        if self.p.wire.replies || self.p.wire.tag.is_empty() {
            return;
        }
        let first = self.file.items.iter().find_map(|item| match item {
            ast::Item::Message(m) if m.kind == ast::MessageKind::Request => Some(m.name.span),
            _ => None,
        });
        if let Some(span) = first {
            self.err(
                Diagnostic::error(
                    "E0115",
                    "a request, but no way to recognise its reply",
                    span,
                    "a request",
                )
                .with_help(
                    "declare how replies are framed in `wire`, e.g. \
                     `response tag \"reply\", for to, id id` or `response untagged, id rid`",
                ),
            );
        }
    }

    fn messages(&mut self) {
        for item in &self.file.items {
            let ast::Item::Message(m) = item else {
                continue;
            };
            self.message(m);
        }
        // One tag per (receiver side, frame class).
        let mut seen: HashMap<(usize, usize, bool, TagValue), usize> = HashMap::new();
        for (i, m) in self.p.messages.iter().enumerate() {
            let carried = self.carried(m.kind);
            for &(from, to) in &m.directions {
                let key = (from, to, carried, m.tag.clone());
                if let Some(&first) = seen.get(&key) {
                    if i >= self.own_messages {
                        let first_span = self.p.messages[first].span;
                        self.diags.push(
                            Diagnostic::error(
                                "E0103",
                                format!(
                                    "the tag {} is used by two messages sent {} -> {}",
                                    tag_text(&m.tag),
                                    self.p.endpoints[from],
                                    self.p.endpoints[to]
                                ),
                                m.span,
                                "same tag, same direction",
                            )
                            .with_secondary(first_span, "also used here")
                            .with_help("give one of them another tag with `= ...`"),
                        );
                    }
                    break;
                }
                seen.insert(key, i);
            }
        }
    }

    /// The smallest non-negative integer tag that no message (of the base or of this file) uses.
    fn free_int_tag(&self) -> i64 {
        let mut used: BTreeSet<i64> = self
            .p
            .messages
            .iter()
            .filter_map(|m| match m.tag {
                TagValue::Int(n) => Some(n),
                TagValue::Str(_) => None,
            })
            .collect();
        for item in &self.file.items {
            if let ast::Item::Message(ast::MessageDecl {
                tag:
                    Some(ast::Lit {
                        value: ast::LitValue::Int(n),
                        ..
                    }),
                ..
            }) = item
            {
                used.insert(*n);
            }
        }
        (0..).find(|n| !used.contains(n)).unwrap_or(0)
    }

    /// Whether messages of this kind travel inside a carrier (and so are named by a method key).
    fn carried(&self, kind: Kind) -> bool {
        match kind {
            Kind::Message => false,
            Kind::Event => matches!(self.p.wire.event, Framing::Carrier { .. }),
            Kind::Request => matches!(self.p.wire.request, Framing::Carrier { .. }),
        }
    }

    fn message(&mut self, m: &ast::MessageDecl) {
        let kind = match m.kind {
            ast::MessageKind::Message => Kind::Message,
            ast::MessageKind::Event => Kind::Event,
            ast::MessageKind::Request => Kind::Request,
        };
        if let Some(first) = self.p.messages.iter().find(|x| x.name == m.name.name) {
            let first = first.span;
            self.err(
                Diagnostic::error(
                    "E0102",
                    format!("the message `{}` is declared twice", m.name.name),
                    m.name.span,
                    "declared again here",
                )
                .with_secondary(first, "first declared here"),
            );
            return;
        }
        let rust_name = upper_camel(&m.name.name);
        if !self.claim_rust_name(&rust_name, &m.name) {
            return;
        }
        let carried = self.carried(kind);
        let int_tag = self.p.wire.int_tags && !carried;
        let tag = match &m.tag {
            // The `tag` directive was reported; take the tag as written.
            Some(lit) if self.tag_type_unknown && !carried => match &lit.value {
                ast::LitValue::Int(n) => TagValue::Int(*n),
                ast::LitValue::Str(s) => TagValue::Str(s.clone()),
            },
            None if self.tag_type_unknown && !carried => TagValue::Str(m.name.name.clone()),
            Some(lit) => match (&lit.value, int_tag) {
                (ast::LitValue::Int(n), true) => TagValue::Int(*n),
                (ast::LitValue::Str(s), false) => TagValue::Str(s.clone()),
                (ast::LitValue::Int(n), false) => {
                    let help = if carried {
                        format!(
                            "{}s travel inside the `{}` carrier, which names them by a string: remove `= {n}` to use the name `{}`",
                            keyword(kind),
                            keyword(kind),
                            m.name.name
                        )
                    } else {
                        format!("write `= \"{n}\"`, or declare `tag KEY int` in the `wire` block")
                    };
                    let label = if carried {
                        "an integer tag on a carried message"
                    } else {
                        "an integer tag"
                    };
                    self.err(
                        Diagnostic::error(
                            "E0106",
                            format!("`{}` needs a string tag", m.name.name),
                            lit.span,
                            label,
                        )
                        .with_help(help),
                    );
                    TagValue::Int(*n)
                }
                (ast::LitValue::Str(s), true) => {
                    self.err(
                        Diagnostic::error(
                            "E0106",
                            "this protocol's tags are integers",
                            lit.span,
                            "a string tag",
                        )
                        .with_help(format!(
                            "write an op code such as `= 7` instead of `= {s:?}`"
                        )),
                    );
                    TagValue::Str(s.clone())
                }
            },
            None if int_tag => {
                let free = self.free_int_tag();
                self.err(
                    Diagnostic::error(
                        "E0105",
                        format!("`{}` has no tag value", m.name.name),
                        m.name.span,
                        "this protocol's tags are integers",
                    )
                    .with_help(format!(
                        "add an op code no other message uses, such as `{} {} = {free} ...`",
                        keyword(kind),
                        m.name.name
                    )),
                );
                TagValue::Int(free)
            }
            None => TagValue::Str(m.name.name.clone()),
        };
        let directions = self.route(&m.route);
        let owner = rust_name.clone();
        let payload = m
            .payload
            .as_ref()
            .map(|p| self.shape(p, &owner, kind == Kind::Message || !carried, false));
        let reply = match (kind, &m.reply) {
            (Kind::Request, Some((_, p))) => {
                Some(self.shape(p, &format!("{owner}Reply"), true, true))
            }
            (Kind::Request, None) => Some(Shape::Empty),
            (_, Some((arrow, _))) => {
                self.err(
                    Diagnostic::error(
                        "E0104",
                        format!(
                            "the {} `{}` cannot have a reply",
                            keyword(kind),
                            m.name.name
                        ),
                        *arrow,
                        "only requests are answered",
                    )
                    .with_secondary(m.kind_span, "declared here")
                    .with_help(format!(
                        "declare it with `request` instead of `{}`",
                        keyword(kind)
                    )),
                );
                None
            }
            (_, None) => None,
        };
        // A reply written as `{ ... }` or `( ... )` becomes the struct `{Name}Reply`.
        if let (Some(Shape::Object(_) | Shape::Positional(_)), Some((arrow, _))) =
            (&reply, &m.reply)
        {
            let reply_name = format!("{rust_name}Reply");
            match self.taken_by(&reply_name) {
                Some((first, label)) => {
                    let mut d = Diagnostic::error(
                        "E0124",
                        format!(
                            "the reply of `{}` becomes the Rust type `{reply_name}`, which is already taken",
                            m.name.name
                        ),
                        *arrow,
                        format!("this reply is named `{reply_name}`"),
                    );
                    d = match first {
                        Some(first) => d.with_secondary(first, label),
                        None => d.with_note(label),
                    };
                    self.err(d.with_help(
                        "rename the type, or declare the reply as a struct and write `-> : ReplyStruct`",
                    ));
                }
                None => {
                    let label = format!("the reply of `{}` becomes `{reply_name}`", m.name.name);
                    self.rust_names.insert(reply_name, (m.name.span, label));
                }
            }
        }
        let method = snake(&m.name.name);
        if let Some(other) = self.p.messages.iter().find(|x| x.method == method) {
            let first = other.span;
            self.err(
                Diagnostic::error(
                    "E0124",
                    format!(
                        "`{}` becomes the method `{method}`, which is already taken",
                        m.name.name
                    ),
                    m.name.span,
                    "clashes in Rust",
                )
                .with_secondary(first, "taken here"),
            );
            return;
        }
        self.p.messages.push(Message {
            name: m.name.name.clone(),
            rust_name,
            method,
            docs: m.docs.lines.clone(),
            kind,
            tag,
            directions,
            payload,
            reply,
            session: false,
            span: m.name.span,
        });
    }

    /// A message's sender method must not be named like a method a link already has (known once
    /// the session rules say which messages the session driver sends).
    fn check_sender_methods(&mut self) {
        let mut found = Vec::new();
        for m in &self.p.messages[self.own_messages..] {
            if !m.has_sender_method() {
                continue;
            }
            let Some(&(_, owner)) = LINK_METHODS.iter().find(|(name, _)| *name == m.method) else {
                continue;
            };
            let method = &m.method;
            let (headline, label, note) = match owner {
                LinkMethodOwner::SenderTrait => (
                    format!(
                        "the sender method `{method}` would clash with `protolink::Sender::{method}`"
                    ),
                    "the generated code would not compile".to_owned(),
                    format!(
                        "every `{{Side}}Sender` trait extends `protolink::Sender`, whose own `{method}` it calls, so the two would be ambiguous (rustc E0034)"
                    ),
                ),
                LinkMethodOwner::Link => (
                    format!("the sender method `{method}` would be hidden by `Link::{method}`"),
                    format!("`link.{method}(..)` would call `Link::{method}`"),
                    format!(
                        "`protolink::Link` has its own method `{method}`, which a method call finds before any trait's, so the generated method could not be called as `link.{method}(..)`"
                    ),
                ),
                LinkMethodOwner::Prelude(name) => (
                    format!("the sender method `{method}` would clash with `{name}::{method}`"),
                    format!("`link.{method}(..)` would be ambiguous"),
                    format!(
                        "links implement `{name}`, which is in every prelude, so `link.{method}(..)` would be ambiguous (rustc E0034)"
                    ),
                ),
            };
            let keyword = keyword(m.kind);
            let renamed = format!("{method}_{keyword}");
            found.push(
                Diagnostic::error("E0129", headline, m.span, label)
                    .with_note(note)
                    .with_help(format!(
                        "give it another Rust name and keep its wire tag: `{keyword} {renamed} = {} ...`",
                        tag_text(&m.tag)
                    )),
            );
        }
        for d in found {
            self.err(d);
        }
    }

    fn route(&mut self, route: &ast::Route) -> Vec<(usize, usize)> {
        let named = self.p.has_named_endpoints();
        match route {
            ast::Route::From(who) => {
                if named {
                    self.err(
                        Diagnostic::error(
                            "E0126",
                            "this protocol has named endpoints",
                            who.span,
                            "`from` only fits client/server protocols",
                        )
                        .with_help(format!(
                            "write `on A -> B` with endpoints from: {}",
                            self.p.endpoints.join(", ")
                        )),
                    );
                    return Vec::new();
                }
                match who.name.as_str() {
                    "client" => vec![(0, 1)],
                    "server" => vec![(1, 0)],
                    "any" => vec![(0, 1), (1, 0)],
                    other => {
                        let mut d = Diagnostic::error(
                            "E0118",
                            format!("unknown sender `{other}`"),
                            who.span,
                            "expected `client`, `server` or `any`",
                        );
                        if let Some(s) = did_you_mean(other, ["client", "server", "any"]) {
                            d = d.with_help(format!("did you mean `{s}`?"));
                        }
                        self.err(d);
                        Vec::new()
                    }
                }
            }
            ast::Route::On(pairs) => {
                if !named {
                    let span = pairs.first().map_or(self.decl.span, |(a, _)| a.span);
                    self.err(
                        Diagnostic::error(
                            "E0126",
                            "this protocol has no named endpoints",
                            span,
                            "`on` needs `endpoints`",
                        )
                        .with_help("write `from client`, `from server` or `from any`"),
                    );
                    return Vec::new();
                }
                let mut out = Vec::new();
                for (a, b) in pairs {
                    let (Some(x), Some(y)) = (self.endpoint(a), self.endpoint(b)) else {
                        continue;
                    };
                    if !self.p.links.contains(&(x, y)) && !self.p.links.contains(&(y, x)) {
                        self.err(Diagnostic::error("E0117", format!("there is no link between `{}` and `{}`", a.name, b.name), a.span.to(b.span), "not a declared link")
                            .with_help("declare it in `links`, or route the message through the endpoints that are linked"));
                        continue;
                    }
                    if !out.contains(&(x, y)) {
                        out.push((x, y));
                    }
                }
                out
            }
        }
    }

    /// `object_only`: the wire profile merges the payload with envelope keys, so it must be an
    /// object. `reply`: the shape is a reply (empty replies are fine everywhere).
    fn shape(&mut self, p: &ast::Payload, owner: &str, tagged: bool, reply: bool) -> Shape {
        let must_be_object = if reply {
            match (&self.p.wire.reply_result, &self.p.wire.payload) {
                (Some(_), _) => false,
                (None, None) => true,
                (None, Some(_)) => matches!(self.p.wire.reply_id, Some(KeyPath::InPayload(_))),
            }
        } else {
            tagged && self.p.wire.payload.is_none()
        };
        match p {
            ast::Payload::Object(fields) => Shape::Object(self.fields(fields, owner)),
            ast::Payload::Positional(fields) => {
                if must_be_object {
                    self.err(
                        Diagnostic::error(
                            "E0119",
                            "this payload must be a JSON object",
                            fields.span,
                            "a positional payload",
                        )
                        .with_help(
                            "the wire profile writes its keys beside the envelope's; use `{ ... }`",
                        ),
                    );
                }
                if fields.rest.is_some() {
                    self.err(Diagnostic::error(
                        "E0119",
                        "a positional payload cannot keep other keys",
                        fields.span,
                        "`..rest` in `( ... )`",
                    ));
                }
                let s = self.fields(fields, owner);
                Shape::Positional(s)
            }
            ast::Payload::Type(t) => {
                let reported = self.diags.count();
                let ty = self.ty(t, owner);
                // An unknown type is reported once, not also as a shape that does not fit.
                if must_be_object
                    && self.diags.count() == reported
                    && !matches!(self.unalias(&ty), Ty::Named(i) if matches!(self.p.types[i].kind, TypeDefKind::Struct(_) | TypeDefKind::Union { .. }))
                {
                    self.err(
                        Diagnostic::error(
                            "E0119",
                            "this payload must be a JSON object",
                            t.span,
                            "not an object type",
                        )
                        .with_help(
                            "the wire profile writes its keys beside the envelope's; use a struct",
                        ),
                    );
                }
                Shape::Type(ty)
            }
        }
    }

    // ---- session -------------------------------------------------------------------------

    fn session_directives(&mut self) {
        let Some(d) = self
            .decl
            .directives
            .iter()
            .find(|d| head_word(d) == Some("session"))
        else {
            return;
        };
        if self.decl.extends.is_some() {
            return;
        }
        let Some(block) = &d.block else {
            self.err(Diagnostic::error(
                "E0116",
                "`session` takes a block",
                d.span,
                "expected `session { ... }`",
            ));
            return;
        };
        for item in block {
            let Some(head) = head_word(item) else {
                self.err(Diagnostic::error(
                    "E0114",
                    "expected a session directive",
                    item.head.span(),
                    "not a directive",
                ));
                continue;
            };
            match head {
                "handshake" => self.handshake(item),
                "heartbeat" => self.heartbeat(item),
                "before" => match item.clauses.as_slice() {
                    // The code is a name from the `close` block or a number, as in `failure`.
                    [clause]
                        if matches!(
                            clause.atoms.as_slice(),
                            [h, c, _] if atom_word(h) == Some("handshake") && atom_word(c) == Some("closes")
                        ) =>
                    {
                        let code = &clause.atoms[2];
                        if let ast::Atom::Lit(ast::Lit {
                            value: ast::LitValue::Str(reason),
                            ..
                        }) = code
                        {
                            // A reason text: the close message carries it (Clusterio's
                            // "Invalid handshake"); the WebSocket code is 1008.
                            self.p.session.before_handshake_reason = Some(reason.clone());
                        } else {
                            self.p.session.before_handshake = self.close_code_atom(code);
                        }
                    }
                    _ => self.err(Diagnostic::error(
                        "E0116",
                        "expected `before handshake closes CODE`",
                        item.span,
                        "malformed",
                    )),
                },
                "invalid" => self.invalid_rule(item),
                "timeout" => match (item.clauses.as_slice(), single_int(item)) {
                    (_, Some(ms)) => self.p.session.handshake_timeout_ms = Some(ms),
                    // `timeout MS, closes CODE`: the code for a handshake that took too long.
                    ([first, second], None)
                        if matches!(
                            first.atoms.as_slice(),
                            [ast::Atom::Lit(ast::Lit {
                                value: ast::LitValue::Int(_),
                                ..
                            })]
                        ) && matches!(second.atoms.as_slice(), [w, _] if atom_word(w) == Some("closes")) =>
                    {
                        if let [
                            ast::Atom::Lit(ast::Lit {
                                value: ast::LitValue::Int(ms),
                                ..
                            }),
                        ] = first.atoms.as_slice()
                        {
                            self.p.session.handshake_timeout_ms = u64::try_from(*ms).ok();
                        }
                        if let [_, code] = second.atoms.as_slice() {
                            self.p.session.handshake_timeout_code = self.close_code_atom(code);
                        }
                    }
                    _ => self.err(Diagnostic::error(
                        "E0116",
                        "`timeout` takes milliseconds",
                        item.span,
                        "expected `timeout 10000`",
                    )),
                },
                "reconnect" => match words_or_ints(&item.clauses).as_deref() {
                    Some([w, ms]) if w == "min" && ms.parse::<u64>().is_ok() => {
                        self.p.session.reconnect_min_ms = ms.parse().unwrap_or(0)
                    }
                    _ => self.err(Diagnostic::error(
                        "E0116",
                        "expected `reconnect min MS`",
                        item.span,
                        "malformed",
                    )),
                },
                "close" => self.close_message(item),
                other => {
                    let mut diag = Diagnostic::error(
                        "E0114",
                        format!("unknown session directive `{other}`"),
                        item.head.span(),
                        "not a session directive",
                    );
                    diag = match did_you_mean(
                        other,
                        [
                            "handshake",
                            "heartbeat",
                            "before",
                            "timeout",
                            "reconnect",
                            "close",
                        ],
                    ) {
                        Some(s) => diag.with_help(format!("did you mean `{s}`?")),
                        None => diag.with_help("session directives are `handshake`, `heartbeat`, `before handshake closes`, `timeout`, `reconnect` and `close message`"),
                    };
                    self.err(diag);
                }
            }
        }
    }

    /// A close code written as a name from the `close` block or as a number.
    /// `invalid closes "REASON"`, or `invalid KIND [of MESSAGE | ...] answers "TEXT"
    /// [, name "NAME"]`, `invalid KIND [of MESSAGE | ...] closes "TEXT"` or `invalid KIND
    /// [of MESSAGE | ...] ignored`.
    fn invalid_rule(&mut self, item: &ast::Directive) {
        const KINDS: [&str; 7] = [
            "json", "object", "array", "untagged", "unknown", "payload", "envelope",
        ];
        let malformed = |span| {
            Diagnostic::error(
                "E0116",
                "expected `invalid closes \"REASON\"`, `invalid KIND answers \"TEXT\"`, `invalid KIND closes \"TEXT\"` or `invalid KIND ignored`",
                span,
                "malformed",
            )
            .with_help(format!(
                "KIND is one of {}; `invalid payload of MESSAGE answers \"TEXT\", name \"NAME\"` \
                 words one message's error",
                name_list(&KINDS.map(str::to_owned))
            ))
        };
        let (first, rest) = match item.clauses.split_first() {
            Some(split) => split,
            None => return self.err(malformed(item.span)),
        };
        let atoms = first.atoms.as_slice();
        if let ([closes, reason], []) = (atoms, rest) {
            if let (Some("closes"), Some(reason)) = (atom_word(closes), str_of(reason)) {
                self.p.session.invalid_closes = Some(reason);
                return;
            }
        }
        let Some((kind_atom, atoms)) = atoms.split_first() else {
            return self.err(malformed(item.span));
        };
        let Some(kind) = atom_word(kind_atom).and_then(|w| KINDS.iter().find(|k| **k == w)) else {
            let mut d = Diagnostic::error(
                "E0114",
                "unknown kind of invalid frame",
                kind_atom.span(),
                "not a kind",
            );
            if let Some(s) = atom_word(kind_atom).and_then(|w| did_you_mean(w, KINDS)) {
                d = d.with_help(format!("did you mean `{s}`?"));
            } else {
                d = d.with_help(format!(
                    "the kinds are {}",
                    name_list(&KINDS.map(str::to_owned))
                ));
            }
            return self.err(d);
        };
        let (messages, atoms) = match atoms.split_first() {
            Some((of, names)) if atom_word(of) == Some("of") => {
                if *kind != "payload" {
                    self.err(Diagnostic::error(
                        "E0116",
                        format!("`invalid {kind}` frames name no message"),
                        of.span(),
                        "only `invalid payload` rules apply to particular messages",
                    ));
                    return;
                }
                let end = names
                    .iter()
                    .position(|a| matches!(atom_word(a), Some("answers" | "ignored" | "closes")))
                    .unwrap_or(names.len());
                let mut messages = Vec::new();
                for (n, atom) in names[..end].iter().enumerate() {
                    if n % 2 == 1 {
                        if !matches!(atom, ast::Atom::Punct("|", _)) {
                            return self.err(malformed(atom.span()));
                        }
                    } else if let Some(i) = self.message_ref(atom) {
                        messages.push(i);
                    }
                }
                (messages, &names[end..])
            }
            _ => (Vec::new(), atoms),
        };
        if let ([closes, text], []) = (atoms, rest) {
            if let (Some("closes"), Some(text)) = (atom_word(closes), str_of(text)) {
                self.p.session.invalid_rules.push(InvalidRule {
                    kind,
                    messages,
                    answer: None,
                    closes: Some(text),
                });
                return;
            }
        }
        let answer = match atoms {
            [ignored] if atom_word(ignored) == Some("ignored") && rest.is_empty() => None,
            [answers, text] => {
                let (Some("answers"), Some(text)) = (atom_word(answers), str_of(text)) else {
                    return self.err(malformed(item.span));
                };
                let name = match rest {
                    [] => None,
                    [clause] => match clause.atoms.as_slice() {
                        [word, name]
                            if atom_word(word) == Some("name") && str_of(name).is_some() =>
                        {
                            str_of(name)
                        }
                        _ => return self.err(malformed(clause.span)),
                    },
                    [_, extra, ..] => return self.err(malformed(extra.span)),
                };
                Some((text, name))
            }
            _ => return self.err(malformed(item.span)),
        };
        self.p.session.invalid_rules.push(InvalidRule {
            kind,
            messages,
            answer,
            closes: None,
        });
    }

    fn close_code_atom(&mut self, code: &ast::Atom) -> Option<u16> {
        let text = atom_key(code)
            .or_else(|| int_of(code).map(|n| n.to_string()))
            .unwrap_or_default();
        self.close_code(&text, code.span())
    }

    fn close_code(&mut self, code: &str, span: Span) -> Option<u16> {
        if let Ok(n) = code.parse::<u16>() {
            return Some(n);
        }
        if let Some(c) = self
            .p
            .close_codes
            .iter()
            .find(|c| c.name == upper_camel(code))
        {
            return Some(c.code);
        }
        let mut d = Diagnostic::error(
            "E0121",
            format!("unknown close code `{code}`"),
            span,
            "not in the `close` block",
        );
        if let Some(s) = did_you_mean(code, self.p.close_codes.iter().map(|c| c.name.as_str())) {
            d = d.with_help(format!("did you mean `{s}`?"));
        } else if self.p.close_codes.is_empty() {
            d = d.with_help("declare it in the protocol's `close` block");
        } else {
            let known: Vec<String> = self
                .p
                .close_codes
                .iter()
                .map(|c| format!("`{}` ({})", c.name, c.code))
                .collect();
            d = d.with_help(format!(
                "declare it in the protocol's `close` block, or use one of: {}",
                known.join(", ")
            ));
        }
        self.err(d);
        None
    }

    fn message_ref(&mut self, atom: &ast::Atom) -> Option<usize> {
        let ast::Atom::Ident(id) = atom else {
            self.err(Diagnostic::error(
                "E0116",
                "expected a message name",
                atom.span(),
                "not a name",
            ));
            return None;
        };
        if let Some(i) = self.p.messages.iter().position(|m| m.name == id.name) {
            return Some(i);
        }
        let mut d = Diagnostic::error(
            "E0120",
            format!("unknown message `{}`", id.name),
            id.span,
            "no message of this name",
        );
        if let Some(s) = did_you_mean(&id.name, self.p.messages.iter().map(|m| m.name.as_str())) {
            d = d.with_help(format!("did you mean `{s}`?"));
        } else if (1..=8).contains(&self.p.messages.len()) {
            let known: Vec<String> = self.p.messages.iter().map(|m| m.name.clone()).collect();
            d = d.with_help(format!("the messages are {}", name_list(&known)));
        }
        self.err(d);
        None
    }

    /// `client`/`server`, or an endpoint that is on one side of every link it is in.
    fn side(&mut self, atom: &ast::Atom) -> Option<bool> {
        let Some(word) = atom_word(atom) else {
            self.err(Diagnostic::error(
                "E0116",
                "expected `client` or `server`",
                atom.span(),
                "not a side",
            ));
            return None;
        };
        match word {
            "client" => return Some(true),
            "server" => return Some(false),
            _ => {}
        }
        if let Some(e) = self.p.endpoints.iter().position(|n| n == word) {
            let as_client = self.p.links.iter().any(|&(c, _)| c == e);
            let as_server = self.p.links.iter().any(|&(_, s)| s == e);
            if as_client != as_server {
                return Some(as_client);
            }
        }
        self.err(
            Diagnostic::error(
                "E0116",
                format!("`{word}` is not a side"),
                atom.span(),
                "expected `client` or `server`",
            )
            .with_help(
                "`client` is the side that connects on each link, `server` the side that accepts",
            ),
        );
        None
    }

    fn handshake(&mut self, item: &ast::Directive) {
        let Some(first) = item.clauses.first() else {
            return;
        };
        let (side, verb, names) = match first.atoms.as_slice() {
            [side, verb, names @ ..] if !names.is_empty() => (side, atom_word(verb), names),
            _ => {
                self.err(Diagnostic::error(
                    "E0116",
                    "expected `handshake SIDE sends MESSAGE`",
                    item.span,
                    "malformed",
                ));
                return;
            }
        };
        let request = match verb {
            Some("sends") => false,
            Some("requests") => true,
            _ => {
                self.err(Diagnostic::error(
                    "E0116",
                    "expected `sends` or `requests`",
                    first.span,
                    "malformed handshake step",
                ));
                return;
            }
        };
        let Some(client_sends) = self.side(side) else {
            return;
        };
        let mut messages = Vec::new();
        let mut unknown = false;
        for atom in names {
            if matches!(atom, ast::Atom::Punct("|", _)) {
                continue;
            }
            unknown |= !matches!(atom, ast::Atom::Ident(id) if self.p.messages.iter().any(|m| m.name == id.name));
            if let Some(i) = self.message_ref(atom) {
                // A handshake request is answered by the receiver's handler, like any request.
                self.p.messages[i].session = !request;
                if request && self.p.messages[i].kind != Kind::Request {
                    self.err(
                        Diagnostic::error(
                            "E0116",
                            format!("`{}` is not a request", self.p.messages[i].name),
                            atom.span(),
                            "`requests` needs a request",
                        )
                        .with_help("write `sends` for messages and events"),
                    );
                }
                messages.push(i);
            }
        }
        let mut step = HandshakeStep {
            client_sends,
            messages,
            request,
            auth_field: None,
            failure: None,
        };
        for clause in &item.clauses[1..] {
            match clause.atoms.as_slice() {
                [w, field] if atom_word(w) == Some("auth") => {
                    let Some(name) = atom_key(field) else {
                        continue;
                    };
                    let known = step
                        .messages
                        .iter()
                        .any(|&i| self.field_of(i, &name).is_some());
                    // With an unknown message in the step, the field may well be in it.
                    if !known && !unknown {
                        let fields: Vec<String> = step
                            .messages
                            .iter()
                            .flat_map(|&i| self.field_names(i))
                            .collect();
                        let d = Diagnostic::error(
                            "E0125",
                            format!("no handshake message of this step has the field `{name}`"),
                            field.span(),
                            "unknown field",
                        );
                        self.err(with_field_help(d, &name, &fields));
                    }
                    step.auth_field = Some(name);
                }
                [w, code] if atom_word(w) == Some("failure") => {
                    step.failure = self.close_code_atom(code);
                }
                _ => self.err(Diagnostic::error(
                    "E0114",
                    "unknown handshake clause",
                    clause.span,
                    "expected `auth FIELD` or `failure CODE`",
                )),
            }
        }
        self.p.session.handshake.push(step);
    }

    /// The wire names of the fields of message `index`'s object payload.
    fn field_names(&self, index: usize) -> Vec<String> {
        let fields = match &self.p.messages[index].payload {
            Some(Shape::Object(s)) => &s.fields,
            Some(Shape::Type(Ty::Named(t))) => match &self.p.types[*t].kind {
                TypeDefKind::Struct(s) => &s.fields,
                _ => return Vec::new(),
            },
            _ => return Vec::new(),
        };
        fields.iter().map(|f| f.wire_name.clone()).collect()
    }

    /// The wire name of a field of message `index`'s object payload, if it has one.
    fn field_of(&self, index: usize, name: &str) -> Option<String> {
        let fields = match &self.p.messages[index].payload {
            Some(Shape::Object(s)) => &s.fields,
            Some(Shape::Type(Ty::Named(t))) => match &self.p.types[*t].kind {
                TypeDefKind::Struct(s) => &s.fields,
                _ => return None,
            },
            _ => return None,
        };
        fields
            .iter()
            .find(|f| f.wire_name == name || f.rust_name == name)
            .map(|f| f.wire_name.clone())
    }

    fn heartbeat(&mut self, item: &ast::Directive) {
        let mut beat = Heartbeat {
            client_pings: true,
            ping: Beat::Text(String::new()),
            pong: None,
            interval: Interval::Fixed(0),
            grace_ms: 0,
            missed: None,
            client_missed: None,
            variant: None,
        };
        let mut timeout = None;
        let mut have_interval = false;
        for (i, clause) in item.clauses.iter().enumerate() {
            let atoms = clause.atoms.as_slice();
            if i == 0 {
                match atoms {
                    [side, verb, msg] if atom_word(verb) == Some("sends") => {
                        if let Some(c) = self.side(side) {
                            beat.client_pings = c;
                        }
                        if let Some(m) = self.message_ref(msg) {
                            self.p.messages[m].session = true;
                            beat.ping = Beat::Message(m);
                        }
                    }
                    [
                        side,
                        verb,
                        kw,
                        ast::Atom::Lit(ast::Lit {
                            value: ast::LitValue::Str(text),
                            ..
                        }),
                    ] if atom_word(verb) == Some("pings") && atom_word(kw) == Some("text") => {
                        if let Some(c) = self.side(side) {
                            beat.client_pings = c;
                        }
                        beat.ping = Beat::Text(text.clone());
                    }
                    _ => {
                        self.err(Diagnostic::error("E0116", "expected `heartbeat SIDE sends MESSAGE` or `heartbeat SIDE pings text \"...\"`", clause.span, "malformed heartbeat"));
                        return;
                    }
                }
                continue;
            }
            match atoms {
                [_, verb, msg] if atom_word(verb) == Some("replies") => {
                    if let Some(m) = self.message_ref(msg) {
                        self.p.messages[m].session = true;
                        beat.pong = Some(Beat::Message(m));
                    }
                }
                [
                    _,
                    verb,
                    kw,
                    ast::Atom::Lit(ast::Lit {
                        value: ast::LitValue::Str(text),
                        ..
                    }),
                ] if atom_word(verb) == Some("replies") && atom_word(kw) == Some("text") => {
                    beat.pong = Some(Beat::Text(text.clone()));
                }
                [
                    w,
                    ast::Atom::Lit(ast::Lit {
                        value: ast::LitValue::Int(ms),
                        ..
                    }),
                ] if atom_word(w) == Some("every") => {
                    beat.interval = Interval::Fixed(u64::try_from(*ms).unwrap_or(0));
                    have_interval = true;
                }
                [w, ast::Atom::Path(parts)] if atom_word(w) == Some("every") => {
                    have_interval = true;
                    let [msg, field] = parts.as_slice() else {
                        self.err(Diagnostic::error(
                            "E0116",
                            "expected `every Message.field`",
                            clause.span,
                            "malformed path",
                        ));
                        continue;
                    };
                    let Some(m) = self.message_ref(&ast::Atom::Ident(msg.clone())) else {
                        continue;
                    };
                    match self.field_of(m, &field.name) {
                        Some(wire) => beat.interval = Interval::FromField(m, wire),
                        None => {
                            let d = Diagnostic::error(
                                "E0125",
                                format!("`{}` has no field `{}`", msg.name, field.name),
                                field.span,
                                "unknown field",
                            );
                            let fields = self.field_names(m);
                            self.err(with_field_help(d, &field.name, &fields));
                        }
                    }
                }
                [
                    w,
                    ast::Atom::Lit(ast::Lit {
                        value: ast::LitValue::Int(ms),
                        ..
                    }),
                ] if atom_word(w) == Some("grace") => {
                    beat.grace_ms = u64::try_from(*ms).unwrap_or(0)
                }
                [
                    w,
                    ast::Atom::Lit(ast::Lit {
                        value: ast::LitValue::Int(ms),
                        ..
                    }),
                ] if atom_word(w) == Some("timeout") => timeout = u64::try_from(*ms).ok(),
                [w, c, code]
                    if atom_word(w) == Some("missed") && atom_word(c) == Some("closes") =>
                {
                    beat.missed = self.close_code_atom(code);
                }
                [side, w, c, code]
                    if atom_word(side) == Some("client")
                        && atom_word(w) == Some("missed")
                        && atom_word(c) == Some("closes") =>
                {
                    beat.client_missed = self.close_code_atom(code);
                }
                [w, c, code] if atom_word(w) == Some("early") && atom_word(c) == Some("closes") => {
                    let code = self.close_code_atom(code);
                    if self.p.session.before_handshake.is_none() {
                        self.p.session.before_handshake = code;
                    }
                }
                [
                    w,
                    ast::Atom::Lit(ast::Lit {
                        value: ast::LitValue::Str(v),
                        ..
                    }),
                ] if atom_word(w) == Some("variant") => beat.variant = Some(v.clone()),
                _ => {
                    let word = atoms.first().and_then(atom_word).unwrap_or("");
                    let known = ["every", "grace", "timeout", "missed", "early", "variant"];
                    let mut d = if known.contains(&word)
                        || atoms.get(1).and_then(atom_word) == Some("replies")
                    {
                        Diagnostic::error(
                            "E0116",
                            format!("malformed heartbeat clause `{word}`"),
                            clause.span,
                            "unexpected arguments",
                        )
                    } else {
                        Diagnostic::error(
                            "E0114",
                            format!("unknown heartbeat clause `{word}`"),
                            atoms.first().map_or(clause.span, ast::Atom::span),
                            "not a heartbeat clause",
                        )
                    };
                    d = match did_you_mean(word, known).filter(|s| *s != word) {
                        Some(s) => d.with_help(format!("did you mean `{s}`?")),
                        None => d.with_help("a heartbeat takes `SIDE replies ...`, `every MS`, `grace MS`, `timeout MS`, `missed closes CODE`, `early closes CODE` and `variant STRING`"),
                    };
                    self.err(d);
                }
            }
        }
        if !have_interval {
            self.err(
                Diagnostic::error(
                    "E0115",
                    "the heartbeat does not say how often it beats",
                    item.span,
                    "no `every` clause",
                )
                .with_help("add `every 10000` or `every Message.field`"),
            );
        }
        if let (Some(timeout), Interval::Fixed(every)) = (timeout, &beat.interval) {
            beat.grace_ms = timeout.saturating_sub(*every);
        }
        self.p.session.heartbeats.push(beat);
    }

    /// `close message MESSAGE, reason FIELD [, code FIELD] [, received only]`.
    fn close_message(&mut self, item: &ast::Directive) {
        let malformed = |span| {
            Diagnostic::error(
                "E0116",
                "expected `close message NAME, reason FIELD`",
                span,
                "malformed",
            )
            .with_help(
                "optional clauses: `code FIELD` (the field holding the close code) and \
                 `received only` (understood, never sent)",
            )
        };
        let (msg, reason, rest) = match item.clauses.as_slice() {
            [first, second, rest @ ..] => match (first.atoms.as_slice(), second.atoms.as_slice()) {
                ([w, msg], [r, field])
                    if atom_word(w) == Some("message") && atom_word(r) == Some("reason") =>
                {
                    (msg, field, rest)
                }
                _ => return self.err(malformed(item.span)),
            },
            _ => return self.err(malformed(item.span)),
        };
        let (mut code, mut sent) = (None, true);
        for clause in rest {
            match clause.atoms.as_slice() {
                [w, field] if atom_word(w) == Some("code") && atom_key(field).is_some() => {
                    code = Some(field);
                }
                [r, o] if atom_word(r) == Some("received") && atom_word(o) == Some("only") => {
                    sent = false;
                }
                _ => return self.err(malformed(clause.span)),
            }
        }
        let Some(m) = self.message_ref(msg) else {
            return;
        };
        self.p.messages[m].session = true;
        let mut field = |atom: &ast::Atom| {
            let name = atom_key(atom).unwrap_or_default();
            let wire = self.field_of(m, &name);
            if wire.is_none() {
                let d = Diagnostic::error(
                    "E0125",
                    format!("`{}` has no field `{name}`", self.p.messages[m].name),
                    atom.span(),
                    "unknown field",
                );
                let fields = self.field_names(m);
                self.err(with_field_help(d, &name, &fields));
            }
            wire
        };
        let reason = field(reason);
        let code = match code {
            Some(atom) => match field(atom) {
                Some(wire) => Some(wire),
                None => return,
            },
            None => None,
        };
        if let Some(reason) = reason {
            self.p.session.close_message = Some(CloseMessage {
                message: m,
                reason,
                code,
                sent,
            });
        }
    }
}

/// A clause that is known but malformed (E0116), or not known at all (E0114).
fn clause_error(
    word: &str,
    known: &[&str],
    clause: &ast::Clause,
    first: &ast::Atom,
    unknown_label: &str,
) -> Diagnostic {
    if known.contains(&word) {
        Diagnostic::error(
            "E0116",
            format!("malformed `{word}` clause"),
            clause.span,
            "unexpected arguments",
        )
    } else {
        Diagnostic::error(
            "E0114",
            format!("unknown clause `{word}`"),
            first.span(),
            unknown_label,
        )
    }
}

fn keyword(kind: Kind) -> &'static str {
    match kind {
        Kind::Message => "message",
        Kind::Event => "event",
        Kind::Request => "request",
    }
}

fn tag_text(tag: &TagValue) -> String {
    match tag {
        TagValue::Str(s) => format!("{s:?}"),
        TagValue::Int(n) => n.to_string(),
    }
}

fn json_kind(ty: &Ty) -> &'static str {
    match ty {
        Ty::String => "string",
        Ty::Int(_) | Ty::F64 => "number",
        Ty::Bool => "boolean",
        Ty::Array(_) => "array",
        _ => "object",
    }
}

/// Adds a `did you mean` for a misspelled field, or lists the fields there are.
fn with_field_help(d: Diagnostic, name: &str, fields: &[String]) -> Diagnostic {
    match did_you_mean(name, fields.iter().map(String::as_str)) {
        Some(s) => d.with_help(format!("did you mean `{s}`?")),
        None if fields.is_empty() => d.with_help("the message has no fields"),
        None if fields.len() <= 8 => d.with_help(format!("the fields are {}", name_list(fields))),
        None => d,
    }
}

/// `` `A` ``, `` `A` and `B` ``, `` `A`, `B` and `C` ``.
fn name_list(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

fn describe(ty: &Ty) -> &'static str {
    match ty {
        Ty::Bool => "a bool",
        Ty::Int(_) => "an integer",
        Ty::F64 => "a number",
        Ty::String => "a string",
        Ty::Any => "`any`",
        Ty::Array(_) => "an array",
        Ty::Map(_) => "a map",
        Ty::Nullable(_) => "a nullable value",
        Ty::Const(_) => "a constant",
        Ty::Named(_) => "a named type",
    }
}

fn rename_of(rename: &Option<ast::Lit>) -> Option<String> {
    match rename {
        Some(ast::Lit {
            value: ast::LitValue::Str(s),
            ..
        }) => Some(s.clone()),
        _ => None,
    }
}

/// A string literal's text.
fn str_of(a: &ast::Atom) -> Option<String> {
    match a {
        ast::Atom::Lit(ast::Lit {
            value: ast::LitValue::Str(s),
            ..
        }) => Some(s.clone()),
        _ => None,
    }
}

fn head_word(d: &ast::Directive) -> Option<&str> {
    atom_word(&d.head)
}

fn atom_word(a: &ast::Atom) -> Option<&str> {
    match a {
        ast::Atom::Ident(i) => Some(&i.name),
        _ => None,
    }
}

/// A key: a name or a string.
fn atom_key(a: &ast::Atom) -> Option<String> {
    match a {
        ast::Atom::Ident(i) => Some(i.name.clone()),
        ast::Atom::Lit(ast::Lit {
            value: ast::LitValue::Str(s),
            ..
        }) => Some(s.clone()),
        _ => None,
    }
}

fn int_of(a: &ast::Atom) -> Option<i64> {
    match a {
        ast::Atom::Lit(ast::Lit {
            value: ast::LitValue::Int(n),
            ..
        }) => Some(*n),
        _ => None,
    }
}

fn key_path(a: &ast::Atom) -> Option<Vec<String>> {
    match a {
        ast::Atom::Path(parts) => Some(parts.iter().map(|p| p.name.clone()).collect()),
        other => atom_key(other).map(|k| vec![k]),
    }
}

/// The atoms of a one-clause directive as words (names or strings), if they all are.
fn words(clauses: &[ast::Clause]) -> Option<Vec<&str>> {
    let [clause] = clauses else { return None };
    clause
        .atoms
        .iter()
        .map(|a| match a {
            ast::Atom::Ident(i) => Some(i.name.as_str()),
            ast::Atom::Lit(ast::Lit {
                value: ast::LitValue::Str(s),
                ..
            }) => Some(s.as_str()),
            _ => None,
        })
        .collect()
}

fn words_or_ints(clauses: &[ast::Clause]) -> Option<Vec<String>> {
    let [clause] = clauses else { return None };
    clause
        .atoms
        .iter()
        .map(|a| match a {
            ast::Atom::Ident(i) => Some(i.name.clone()),
            ast::Atom::Lit(ast::Lit {
                value: ast::LitValue::Int(n),
                ..
            }) => Some(n.to_string()),
            _ => None,
        })
        .collect()
}

fn single_lit(d: &ast::Directive) -> Option<&ast::LitValue> {
    match d.clauses.as_slice() {
        [c] => match c.atoms.as_slice() {
            [ast::Atom::Lit(l)] => Some(&l.value),
            _ => None,
        },
        _ => None,
    }
}

fn single_int(d: &ast::Directive) -> Option<u64> {
    match single_lit(d) {
        Some(ast::LitValue::Int(n)) => u64::try_from(*n).ok(),
        _ => None,
    }
}
