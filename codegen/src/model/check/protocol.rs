//! The protocol block: the protocol's name, `version`, `path`, `endpoints`, `links` and `close`.

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

    /// The typed protocol block: `version`, `endpoints`, `links`, `close` and `wire` (the
    /// `session` block refers to messages, so it is checked after them).
    pub(super) fn protocol_directives(&mut self) {
        let block = &self.decl.block;
        if let Some(version) = &block.version {
            self.p.version = version.clone();
        }
        if let Some((path, _)) = &block.path {
            self.p.path = Some(path.clone());
        }
        if let Some(codes) = &block.close {
            self.close_codes(codes);
        }
        if let Some(endpoints) = &block.endpoints {
            self.endpoints(endpoints);
        }
        if let Some(links) = &block.links {
            self.links(links);
        }
        if let Some(wire) = &block.wire {
            self.wire(wire);
        }
    }

    fn endpoints(&mut self, endpoints: &ast::Endpoints) {
        let mut names: Vec<String> = Vec::new();
        let mut spans: Vec<Span> = Vec::new();
        for id in &endpoints.names {
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
        if names.len() < 2 {
            self.err(
                Diagnostic::error(
                    "E0135",
                    "a protocol needs at least two endpoints",
                    endpoints.span,
                    "too few endpoints",
                )
                .with_help("name every kind of peer: `endpoints controller, master, slave`"),
            );
            return;
        }
        self.p.endpoints = names;
        self.p.links.clear();
    }

    fn links(&mut self, d: &ast::Links) {
        if !self.p.has_named_endpoints() {
            self.err(
                Diagnostic::error(
                    "E0126",
                    "`links` needs `endpoints`",
                    d.head,
                    "no endpoints are declared",
                )
                .with_help("declare `endpoints a, b, ...` before `links`"),
            );
            return;
        }
        let mut links = Vec::new();
        let mut spans: Vec<Span> = Vec::new();
        for (a, b, span) in &d.links {
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
                    *span,
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
            spans.push(*span);
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

    fn close_codes(&mut self, codes: &[ast::CloseCodeDecl]) {
        let mut seen: HashMap<u16, Span> = HashMap::new();
        let mut names: HashMap<String, (Span, String)> = HashMap::new();
        for c in codes {
            let (code, span, name) = (c.code, c.code_span, &c.name);
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
                reason: c.reason.clone(),
                docs: c.docs.lines.clone(),
            });
        }
    }
}
