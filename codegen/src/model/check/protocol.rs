//! The protocol block: the protocol's name, `version`, `endpoints`, `links` and `close`.

use super::*;

impl Checker<'_> {
    pub(super) fn protocol_name(&mut self) {
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

    pub(super) fn protocol_directives(&mut self) {
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

    pub(super) fn endpoint(&mut self, id: &ast::Ident) -> Option<usize> {
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
}
