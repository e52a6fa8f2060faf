//! The checker: from syntax trees to [`Protocol`]s, reporting every problem it finds.
//!
//! The typed directives come from `syntax::directives`, which has already reported every malformed
//! one; the checker gives them meaning. Each concern has its module: the protocol block
//! (`protocol`), the wire profile (`wire`), names (`names`), types (`types`), constraints
//! (`constraints`), messages and routes (`messages`) and the session rules (`session`).
//!
//! Every error code is listed, with its explanation, in [`crate::diagnostics::codes`].

mod constraints;
mod messages;
mod names;
mod protocol;
mod session;
mod types;
mod wire;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use super::*;
use crate::diagnostics::{Diagnostic, Diagnostics, Span, did_you_mean, name_list};
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
                path: None,
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
