//! Messages: tags, routes, payload shapes, replies and sender methods.

use super::*;

impl Checker<'_> {
    /// Requests need a way to tell their replies: without a `response` directive every request
    /// would wait for its timeout.
    pub(super) fn check_replies(&mut self) {
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

    pub(super) fn messages(&mut self) {
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
    pub(super) fn check_sender_methods(&mut self) {
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
}
