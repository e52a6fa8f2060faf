//! Typed lowering: the protocol block's generic directives (a head word, clauses of atoms, a
//! block) become a [`ProtocolBlock`] of typed nodes.
//!
//! This is the one place that knows how each directive is written. A directive that is unknown,
//! duplicated, malformed, or not allowed in an extension is reported here (with its span and a
//! help line) and left out of the typed tree; the checker gives the typed nodes meaning (names
//! resolved, tags of the right type, close codes declared).

use crate::diagnostics::{Diagnostic, Diagnostics, Span, did_you_mean, name_list};
use crate::syntax::ast::*;

const PROTOCOL_DIRECTIVES: [&str; 7] = [
    "version",
    "path",
    "endpoints",
    "links",
    "wire",
    "close",
    "session",
];
const WIRE_DIRECTIVES: [&str; 10] = [
    "tag", "payload", "sequence", "strict", "batch", "binary", "event", "request", "response",
    "error",
];
const SESSION_DIRECTIVES: [&str; 6] = [
    "handshake",
    "heartbeat",
    "before",
    "timeout",
    "reconnect",
    "close",
];
const HEARTBEAT_CLAUSES: [&str; 6] = ["every", "grace", "timeout", "missed", "early", "variant"];
const RESPONSE_CLAUSES: [&str; 8] = [
    "suffix", "carrier", "untagged", "tag", "for", "id", "result", "error",
];
/// The kinds of frame an `invalid` rule can name.
const INVALID_KINDS: [&str; 7] = [
    "json", "object", "array", "untagged", "unknown", "payload", "envelope",
];

/// Lowers the directives of `decl` into its typed block, reporting what does not fit.
pub(crate) fn lower(decl: &ProtocolDecl, diags: &mut Diagnostics) -> ProtocolBlock {
    let mut lowering = Lowering { diags };
    lowering.protocol(decl)
}

struct Lowering<'a> {
    diags: &'a mut Diagnostics,
}

impl Lowering<'_> {
    fn err(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn protocol(&mut self, decl: &ProtocolDecl) -> ProtocolBlock {
        let extends = decl.extends.is_some();
        let mut block = ProtocolBlock::default();
        let mut seen: Vec<(&str, Span)> = Vec::new();
        // Directives suggested for misspelled ones: not reported missing as well.
        let mut suggested: Vec<&str> = Vec::new();
        for d in &decl.directives {
            let Some(head) = word(&d.head) else {
                self.err(Diagnostic::error("E0114", "expected a directive name", d.head.span(), "not a directive")
                    .with_help("protocol blocks hold `version`, `path`, `endpoints`, `links`, `wire`, `close` and `session`"));
                continue;
            };
            if let Some(&(_, first)) = seen.iter().find(|(h, _)| *h == head) {
                self.err(
                    Diagnostic::error(
                        "E0102",
                        format!("`{head}` is declared twice"),
                        d.head.span(),
                        "declared again here",
                    )
                    .with_secondary(first, "first declared here")
                    .with_help(format!(
                        "remove one; a protocol block holds one `{head}` directive"
                    )),
                );
                continue;
            }
            seen.push((head, d.head.span()));
            match head {
                "version" => block.version = self.version(d),
                "wire" | "close" | "session" | "endpoints" | "links" | "path" if extends => self
                    .err(
                        Diagnostic::error(
                            "E0114",
                            format!(
                                "`{head}` cannot be changed by a protocol that extends another"
                            ),
                            d.head.span(),
                            "inherited from the base protocol",
                        )
                        .with_help("remove it; an extension only adds messages and types"),
                    ),
                "path" => block.path = self.path(d),
                "wire" => block.wire = self.wire(d),
                "close" => block.close = self.close_block(d),
                "session" => block.session = self.session(d),
                "endpoints" => block.endpoints = Some(self.endpoints(d)),
                "links" => block.links = Some(self.links(d)),
                other => {
                    let mut diag = Diagnostic::error(
                        "E0114",
                        format!("unknown directive `{other}`"),
                        d.head.span(),
                        "not a protocol directive",
                    );
                    diag = match did_you_mean(other, PROTOCOL_DIRECTIVES) {
                        Some(s) => {
                            suggested.push(s);
                            diag.with_help(format!("did you mean `{s}`?"))
                        }
                        None => diag.with_help("protocol blocks hold `version`, `path`, `endpoints`, `links`, `wire`, `close` and `session`"),
                    };
                    self.err(diag);
                }
            }
        }
        let has = |name: &str| seen.iter().any(|(h, _)| *h == name) || suggested.contains(&name);
        if !has("version") {
            self.err(
                Diagnostic::error(
                    "E0115",
                    format!("the protocol `{}` has no version", decl.name.name),
                    decl.name.span,
                    "no `version` directive",
                )
                .with_help("add `version \"1.0\"` to the protocol block"),
            );
        }
        if !extends && !has("wire") {
            self.err(
                Diagnostic::error(
                    "E0115",
                    format!("the protocol `{}` has no wire profile", decl.name.name),
                    decl.name.span,
                    "no `wire` block",
                )
                .with_help("add `wire { tag type string  payload inline }` to the protocol block"),
            );
        }
        block
    }

    fn version(&mut self, d: &Directive) -> Option<String> {
        match single_lit(d) {
            Some(LitValue::Str(v)) => Some(v.clone()),
            Some(LitValue::Int(n)) => {
                self.err(
                    Diagnostic::error(
                        "E0131",
                        "`version` takes one string",
                        d.span,
                        "a number, not a string",
                    )
                    .with_help(format!("write it in quotes: `version \"{n}\"`")),
                );
                None
            }
            None => {
                self.err(
                    Diagnostic::error(
                        "E0116",
                        "`version` takes one string",
                        d.span,
                        "expected `version \"1.0\"`",
                    )
                    .with_help("write the version in quotes: `version \"1.0\"`"),
                );
                None
            }
        }
    }

    /// `path "/socket"`: the HTTP path servers take the protocol's WebSocket at.
    fn path(&mut self, d: &Directive) -> Option<(String, Span)> {
        match single_lit(d) {
            Some(LitValue::Str(path)) if path.starts_with('/') => Some((path.clone(), d.span)),
            _ => {
                self.err(
                    Diagnostic::error(
                        "E0116",
                        "`path` takes one string that starts with `/`",
                        d.span,
                        "expected `path \"/socket\"`",
                    )
                    .with_help("write the HTTP path in quotes, from its `/`: `path \"/connect\"`"),
                );
                None
            }
        }
    }

    fn endpoints(&mut self, d: &Directive) -> Endpoints {
        let mut names = Vec::new();
        for clause in &d.clauses {
            match clause.atoms.as_slice() {
                [Atom::Ident(id)] => names.push(id.clone()),
                _ => self.err(
                    Diagnostic::error(
                        "E0116",
                        "endpoints are names separated by commas",
                        clause.span,
                        "expected one name",
                    )
                    .with_help("write `endpoints controller, master, slave`"),
                ),
            }
        }
        Endpoints {
            names,
            span: d.span,
        }
    }

    fn links(&mut self, d: &Directive) -> Links {
        let mut links = Vec::new();
        for clause in &d.clauses {
            match clause.atoms.as_slice() {
                [Atom::Ident(a), Atom::Punct("->", _), Atom::Ident(b)] => {
                    links.push((a.clone(), b.clone(), clause.span));
                }
                _ => self.err(
                    Diagnostic::error(
                        "E0116",
                        "a link is written `client -> server`",
                        clause.span,
                        "expected `a -> b`",
                    )
                    .with_help("write the connecting endpoint, `->`, and the accepting one"),
                ),
            }
        }
        Links {
            head: d.head.span(),
            links,
        }
    }

    fn close_block(&mut self, d: &Directive) -> Option<Vec<CloseCodeDecl>> {
        let Some(block) = &d.block else {
            self.err(
                Diagnostic::error(
                    "E0116",
                    "`close` takes a block of codes",
                    d.span,
                    "expected `close { 4001 Name \"reason\" }`",
                )
                .with_help("write one code a line: `close { 4001 AuthenticationFailed \"Authentication failed\" }`"),
            );
            return None;
        };
        let mut codes = Vec::new();
        for item in block {
            let atoms: Vec<&Atom> = item.clauses.iter().flat_map(|c| &c.atoms).collect();
            let code = match &item.head {
                Atom::Lit(Lit {
                    value: LitValue::Int(n),
                    span,
                }) => match u16::try_from(*n) {
                    Ok(c) if (1000..=4999).contains(&c) => Some((c, *span)),
                    _ => {
                        self.err(Diagnostic::error("E0132", format!("{n} is not a WebSocket close code"), *span, "out of range")
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
                    Atom::Ident(name),
                    Atom::Lit(Lit {
                        value: LitValue::Str(reason),
                        ..
                    }),
                ] => (name, reason.clone()),
                [Atom::Ident(name)] => (name, name.name.clone()),
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
            let Some((code, code_span)) = code else {
                continue;
            };
            codes.push(CloseCodeDecl {
                docs: item.docs.clone(),
                code,
                code_span,
                name: name.clone(),
                reason,
            });
        }
        Some(codes)
    }

    /// A malformed directive or clause (E0116), with the usual help line.
    pub(super) fn malformed(&self, message: &str, span: Span, label: &str) -> Diagnostic {
        let help = match label.strip_prefix("expected ") {
            Some(example) => format!("write {example}"),
            None => "see the directive's table in the language reference".to_owned(),
        };
        Diagnostic::error("E0116", message, span, label).with_help(help)
    }

    /// A malformed directive or clause (E0116), with its own help line.
    pub(super) fn malformed_with(
        &self,
        message: &str,
        span: Span,
        label: &str,
        help: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic::error("E0116", message, span, label).with_help(help)
    }
}

/// `id sequence`, or `id KEY` with at most one each of `optional` and `string`.
fn request_id(rest: &[Atom]) -> Option<FramingClause> {
    match rest {
        [Atom::Ident(i)] if i.name == "sequence" => Some(FramingClause::IdSequence),
        [k, flags @ ..]
            if flags.len() <= 2
                && flags
                    .iter()
                    .all(|w| matches!(word(w), Some("optional" | "string")))
                && !(flags.len() == 2 && word(&flags[0]) == word(&flags[1])) =>
        {
            let has = |flag| flags.iter().any(|w| word(w) == Some(flag));
            key(k).map(|k| FramingClause::IdKey {
                key: k.name,
                optional: has("optional"),
                text: has("string"),
            })
        }
        _ => None,
    }
}

/// A clause that is known but malformed (E0116), or not known at all (E0114), with a did-you-mean.
fn clause_error(
    word: &str,
    known: &[&str],
    clause: &Clause,
    first: &Atom,
    unknown_label: &str,
) -> Diagnostic {
    let d = if known.contains(&word) {
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
    };
    match did_you_mean(word, known.iter().copied()).filter(|s| *s != word) {
        Some(s) => d.with_help(format!("did you mean `{s}`?")),
        None => d.with_help(format!("the clauses here are {}", name_list(known))),
    }
}

/// A name's text.
fn word(a: &Atom) -> Option<&str> {
    match a {
        Atom::Ident(i) => Some(&i.name),
        _ => None,
    }
}

/// A string literal's text.
fn str_of(a: &Atom) -> Option<String> {
    match a {
        Atom::Lit(Lit {
            value: LitValue::Str(s),
            ..
        }) => Some(s.clone()),
        _ => None,
    }
}

/// An integer literal.
fn int_of(a: &Atom) -> Option<i64> {
    match a {
        Atom::Lit(Lit {
            value: LitValue::Int(n),
            ..
        }) => Some(*n),
        _ => None,
    }
}

/// A key: a name or a string.
fn key(a: &Atom) -> Option<Key> {
    match a {
        Atom::Ident(i) => Some(Key {
            name: i.name.clone(),
            span: i.span,
        }),
        Atom::Lit(Lit {
            value: LitValue::Str(s),
            span,
        }) => Some(Key {
            name: s.clone(),
            span: *span,
        }),
        _ => None,
    }
}

/// A key or a dotted path.
fn key_path(a: &Atom) -> Option<KeyPath> {
    match a {
        Atom::Path(parts) => Some(KeyPath {
            parts: parts.iter().map(|p| p.name.clone()).collect(),
            span: a.span(),
        }),
        other => key(other).map(|k| KeyPath {
            parts: vec![k.name],
            span: k.span,
        }),
    }
}

/// A close code: a name (or string) from the `close` block, or a number.
fn close_code_ref(a: &Atom) -> Option<CloseCodeRef> {
    let text = key(a)
        .map(|k| k.name)
        .or_else(|| int_of(a).map(|n| n.to_string()))?;
    Some(CloseCodeRef {
        text,
        span: a.span(),
    })
}

/// The atoms of a one-clause directive as words (names or strings), if they all are.
fn words(clauses: &[Clause]) -> Option<Vec<&str>> {
    let [clause] = clauses else { return None };
    clause
        .atoms
        .iter()
        .map(|a| match a {
            Atom::Ident(i) => Some(i.name.as_str()),
            Atom::Lit(Lit {
                value: LitValue::Str(s),
                ..
            }) => Some(s.as_str()),
            _ => None,
        })
        .collect()
}

/// The one literal of a one-clause directive.
fn single_lit(d: &Directive) -> Option<&LitValue> {
    match d.clauses.as_slice() {
        [c] => match c.atoms.as_slice() {
            [Atom::Lit(l)] => Some(&l.value),
            _ => None,
        },
        _ => None,
    }
}

mod session;
mod wire;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::diagnostics::{Diagnostics, SourceMap};
    use crate::syntax::ast::*;
    use crate::syntax::parse;

    fn lower(text: &str) -> (ProtocolBlock, Diagnostics) {
        let mut diags = Diagnostics::default();
        let file = parse(0, text, &mut diags);
        (file.protocol.unwrap().block, diags)
    }

    #[test]
    fn a_seed_profile_becomes_typed_nodes() {
        let (block, diags) = lower(
            r#"protocol litecord {
    version "1.0"
    path "/gateway"
    wire {
        tag op int
        payload inline
        request carrier 4, method w, args a, id n string
        response carrier 5, id n, result r, error e text
    }
    close {
        4001 AuthenticationFailed "Authentication failed"
    }
    session {
        handshake server sends Hello
        handshake client sends Login, auth password, failure AuthenticationFailed
        heartbeat client sends Ping, server replies Pong, every Hello.interval, grace 2000
        invalid payload of Login | Ping answers "bad", name "E"
    }
}
"#,
        );
        assert_eq!(diags.count(), 0);
        assert_eq!(block.version.as_deref(), Some("1.0"));
        assert_eq!(block.path.map(|(p, _)| p).as_deref(), Some("/gateway"));
        let wire = block.wire.unwrap();
        assert_eq!(
            wire.items[0],
            WireDirective::Tag {
                key: Some("op".into()),
                ty: Some(TagType::Int)
            }
        );
        assert_eq!(
            wire.items[1],
            WireDirective::Payload(Some(PayloadPlace::Inline))
        );
        let WireDirective::Request(clauses) = &wire.items[2] else {
            panic!("{:?}", wire.items[2]);
        };
        assert!(matches!(
            &clauses[0],
            FramingClause::Carrier(Lit {
                value: LitValue::Int(4),
                ..
            })
        ));
        assert_eq!(
            clauses[3],
            FramingClause::IdKey {
                key: "n".into(),
                optional: false,
                text: true
            }
        );
        let WireDirective::Response(response) = &wire.items[3] else {
            panic!("{:?}", wire.items[3]);
        };
        assert!(matches!(response.matched, Some(ReplyMatcher::Carrier(_))));
        assert_eq!(response.result.as_deref(), Some("r"));
        assert_eq!(
            response
                .error
                .as_ref()
                .map(|(p, object)| (p.parts.clone(), *object)),
            Some((vec!["e".to_owned()], false))
        );
        let close = block.close.unwrap();
        assert_eq!(
            (close[0].code, close[0].name.name.as_str()),
            (4001, "AuthenticationFailed")
        );
        let session = block.session.unwrap();
        let SessionDirective::Handshake(login) = &session[1] else {
            panic!("{:?}", session[1]);
        };
        assert_eq!(
            login.auth.as_ref().map(|k| k.name.as_str()),
            Some("password")
        );
        assert_eq!(
            login.failure.as_ref().map(|c| c.text.as_str()),
            Some("AuthenticationFailed")
        );
        let SessionDirective::Heartbeat(beat) = &session[2] else {
            panic!("{:?}", session[2]);
        };
        assert!(
            matches!(&beat.interval, Some(IntervalSpec::FromField(m, f)) if m.name == "Hello" && f.name == "interval")
        );
        assert_eq!(beat.grace_ms, 2000);
        let SessionDirective::Invalid(InvalidRule::Kind {
            kind,
            messages,
            action,
        }) = &session[3]
        else {
            panic!("{:?}", session[3]);
        };
        assert_eq!((*kind, messages.len()), ("payload", 2));
        assert_eq!(
            action,
            &InvalidAction::Answers("bad".into(), Some("E".into()))
        );
    }

    #[test]
    fn duplicates_keep_the_first_and_extensions_inherit() {
        let (block, diags) = lower(
            "protocol p extends base {\n    version \"1\"\n    version \"2\"\n    wire {\n        tag t string\n    }\n}\n",
        );
        let codes: Vec<&str> = diags.iter().map(|d| d.code).collect();
        assert_eq!(codes, ["E0102", "E0114"]);
        assert_eq!(block.version.as_deref(), Some("1"));
        assert!(block.wire.is_none());
    }

    /// Every malformed directive is reported with a span, a label and a help line, and left out.
    #[test]
    fn malformed_directives_are_reported_with_help_and_left_out() {
        let text = r#"protocol p {
    version "1"
    version
    path "connect"
    endpoints a b, c
    links a => b
    close {
        70000 Big "big"
        4001
    }
    wire {
        tag op
        payload a b
        sequence
        binary json
        event carrier 6
        request id n optional optional
        response untagged, for x, id 1
        error tag 5
        frobnicate
    }
    session {
        handshake client shouts Hello
        heartbeat client sends 5, every a.b.c
        before handshake closes
        timeout soon
        reconnect min -1
        invalid json of X answers "no"
        close message M
        wibble
    }
}
"#;
        let mut sources = SourceMap::default();
        sources.add("p.protocol", text);
        let (block, diags) = lower(text);
        let rendered = diags.render(&sources);
        assert!(diags.count() >= 20, "{rendered}");
        assert!(rendered.contains("`path` takes one string"), "{rendered}");
        for d in diags.iter() {
            assert_eq!(d.help.len(), 1, "one help line each:\n{rendered}");
            assert!(
                d.primary.0.end > d.primary.0.start,
                "empty span:\n{rendered}"
            );
        }
        assert!(block.close.unwrap().is_empty());
        assert!(block.session.unwrap().is_empty());
        let wire = block.wire.unwrap();
        assert!(wire.items.iter().all(|i| !matches!(
            i,
            WireDirective::Sequence(_) | WireDirective::BinaryText | WireDirective::Error { .. }
        )));
    }
}
