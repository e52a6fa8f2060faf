//! Lowering the `wire` block: tag, payload, framing of events and requests, replies and errors.

use super::*;

impl Lowering<'_> {
    pub(super) fn wire(&mut self, d: &Directive) -> Option<WireBlock> {
        let Some(block) = &d.block else {
            self.err(
                Diagnostic::error(
                    "E0116",
                    "`wire` takes a block",
                    d.span,
                    "expected `wire { ... }`",
                )
                .with_help("write `wire { tag type string  payload inline }`"),
            );
            return None;
        };
        // A malformed or misspelled `tag` or `payload` is reported once, not as missing too.
        let mut have_tag = false;
        let mut payload_set = false;
        let mut items = Vec::new();
        for item in block {
            let Some(head) = word(&item.head) else {
                self.err(
                    Diagnostic::error(
                        "E0114",
                        "expected a wire directive",
                        item.head.span(),
                        "not a directive",
                    )
                    .with_help(format!(
                        "wire directives are {}",
                        name_list(&WIRE_DIRECTIVES)
                    )),
                );
                continue;
            };
            let typed = match head {
                "tag" => {
                    have_tag = true;
                    Some(self.tag(item))
                }
                "payload" => {
                    payload_set = true;
                    Some(WireDirective::Payload(
                        match words(&item.clauses).as_deref() {
                            Some(["inline"]) => Some(PayloadPlace::Inline),
                            Some([key]) => Some(PayloadPlace::Key((*key).to_owned())),
                            _ => {
                                self.err(self.malformed(
                                    "`payload` takes `inline` or a key",
                                    item.span,
                                    "expected `payload inline` or `payload data`",
                                ));
                                None
                            }
                        },
                    ))
                }
                "sequence" => match words(&item.clauses).as_deref() {
                    Some([key]) => Some(WireDirective::Sequence((*key).to_owned())),
                    _ => {
                        self.err(self.malformed(
                            "`sequence` takes a key",
                            item.span,
                            "expected `sequence seq`",
                        ));
                        None
                    }
                },
                "strict" => Some(WireDirective::Strict),
                "batch" => Some(WireDirective::Batch),
                "binary" => match words(&item.clauses).as_deref() {
                    Some(["text"]) => Some(WireDirective::BinaryText),
                    _ => {
                        self.err(self.malformed(
                            "`binary` takes `text`",
                            item.span,
                            "expected `binary text`",
                        ));
                        None
                    }
                },
                "event" => Some(WireDirective::Event(self.framing(item, false))),
                "request" => Some(WireDirective::Request(self.framing(item, true))),
                "response" => Some(WireDirective::Response(self.response(item))),
                "error" => self.error_frame(item),
                other => {
                    let mut diag = Diagnostic::error(
                        "E0114",
                        format!("unknown wire directive `{other}`"),
                        item.head.span(),
                        "not a wire directive",
                    );
                    match did_you_mean(other, WIRE_DIRECTIVES) {
                        Some(s) => {
                            have_tag |= s == "tag";
                            payload_set |= s == "payload";
                            diag = diag.with_help(format!("did you mean `{s}`?"));
                        }
                        None => {
                            diag = diag.with_help(format!(
                                "wire directives are {}",
                                name_list(&WIRE_DIRECTIVES)
                            ));
                        }
                    }
                    self.err(diag);
                    None
                }
            };
            items.extend(typed);
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
        Some(WireBlock {
            head: d.head.span(),
            items,
        })
    }

    fn tag(&mut self, item: &Directive) -> WireDirective {
        match words(&item.clauses).as_deref() {
            Some([key, ty]) if *ty == "string" || *ty == "int" => WireDirective::Tag {
                key: Some((*key).to_owned()),
                ty: Some(if *ty == "int" {
                    TagType::Int
                } else {
                    TagType::String
                }),
            },
            Some([key, ty]) => {
                // Read `integer` as `int` and `str` as `string`, so that the tags are still
                // checked; anything else leaves their type unknown.
                let int = ["integer", "i64", "i32", "u64", "u32", "number", "num"];
                let string = ["str", "String", "text"];
                let span = item
                    .clauses
                    .first()
                    .and_then(|c| c.atoms.last())
                    .map_or(item.span, Atom::span);
                let d = Diagnostic::error(
                    "E0133",
                    format!("unknown tag type `{ty}`"),
                    span,
                    "expected `string` or `int`",
                );
                let (d, read_as) = if int.contains(ty) {
                    (
                        d.with_help(format!("write `tag {key} int`")),
                        Some(TagType::Int),
                    )
                } else if string.contains(ty) {
                    (
                        d.with_help(format!("write `tag {key} string`")),
                        Some(TagType::String),
                    )
                } else {
                    (
                        d.with_help(format!("write `tag {key} string` or `tag {key} int`")),
                        None,
                    )
                };
                self.err(d);
                WireDirective::Tag {
                    key: Some((*key).to_owned()),
                    ty: read_as,
                }
            }
            _ => {
                self.err(self.malformed(
                    "`tag` takes a key and `string` or `int`",
                    item.span,
                    "expected `tag type string` or `tag op int`",
                ));
                WireDirective::Tag {
                    key: None,
                    ty: None,
                }
            }
        }
    }

    fn framing(&mut self, item: &Directive, request: bool) -> Vec<FramingClause> {
        let mut out = Vec::new();
        let (mut carrier, mut method_or_args) = (false, false);
        let (mut method, mut args) = (false, false);
        for clause in &item.clauses {
            let atoms = &clause.atoms;
            let Some(first) = atoms.first().and_then(word) else {
                if !atoms.is_empty() {
                    self.err(self.malformed("expected a clause name", clause.span, "not a clause"));
                }
                continue;
            };
            let typed = match (first, &atoms[1..]) {
                ("suffix", [a]) if str_of(a).is_some() => str_of(a).map(FramingClause::Suffix),
                ("carrier", [Atom::Lit(lit)]) => {
                    carrier = true;
                    Some(FramingClause::Carrier(lit.clone()))
                }
                ("method", [k]) if key(k).is_some() => {
                    (method, method_or_args) = (true, true);
                    key(k).map(|k| FramingClause::Method(k.name))
                }
                ("args", [k]) if key(k).is_some() => {
                    (args, method_or_args) = (true, true);
                    key(k).map(|k| FramingClause::Args(k.name))
                }
                ("ordered", []) if request => Some(FramingClause::Ordered),
                ("id", rest) if request => {
                    let id = request_id(rest);
                    if id.is_none() {
                        self.err(self.malformed_with(
                            "`id` takes a key, `sequence`, or a key with `optional` and `string`",
                            clause.span,
                            "malformed `id` clause",
                            "write `id n`, `id sequence` or `id cid optional string`",
                        ));
                    }
                    id
                }
                (other, _) => {
                    let known: &[&str] = if request {
                        &["suffix", "carrier", "method", "args", "id", "ordered"]
                    } else {
                        &["suffix", "carrier", "method", "args"]
                    };
                    self.err(clause_error(
                        other,
                        known,
                        clause,
                        &atoms[0],
                        "not a clause of this directive",
                    ));
                    None
                }
            };
            out.extend(typed);
        }
        if carrier && !(method && args) {
            self.err(
                Diagnostic::error(
                    "E0134",
                    "a carrier needs `method KEY` and `args KEY`",
                    item.span,
                    "incomplete carrier",
                )
                .with_help("write `carrier 4, method w, args a`"),
            );
        } else if !carrier && method_or_args {
            self.err(
                Diagnostic::error(
                    "E0134",
                    "`method` and `args` only apply to a `carrier`",
                    item.span,
                    "no carrier",
                )
                .with_help("add `carrier TAG`, or remove `method` and `args`"),
            );
        }
        out
    }

    fn response(&mut self, item: &Directive) -> Response {
        let mut response = Response {
            span: item.span,
            matched: None,
            id: None,
            result: None,
            error: None,
        };
        for clause in &item.clauses {
            let atoms = &clause.atoms;
            let Some(first) = atoms.first().and_then(word) else {
                continue;
            };
            match (first, &atoms[1..]) {
                ("suffix", [a]) if str_of(a).is_some() => {
                    response.matched = str_of(a).map(ReplyMatcher::Suffix);
                }
                ("carrier", [Atom::Lit(lit)]) => {
                    response.matched = Some(ReplyMatcher::Carrier(lit.clone()));
                }
                ("untagged", []) => response.matched = Some(ReplyMatcher::Untagged),
                ("tag", [a]) if str_of(a).is_some() => {
                    response.matched = str_of(a).map(|tag| ReplyMatcher::Tag {
                        tag,
                        for_key: String::new(),
                    });
                }
                ("for", [k]) if key(k).is_some() => match &mut response.matched {
                    Some(ReplyMatcher::Tag { for_key, .. }) => {
                        *for_key = key(k).map(|k| k.name).unwrap_or_default();
                    }
                    _ => self.err(
                        Diagnostic::error(
                            "E0134",
                            "`for` needs a `tag` clause before it",
                            clause.span,
                            "no fixed reply tag",
                        )
                        .with_help("write `tag \"result\", for KEY`"),
                    ),
                },
                ("id", [k]) => match key_path(k) {
                    Some(path) => response.id = Some(path),
                    None => self.err(self.malformed(
                        "`id` takes a key or a path",
                        clause.span,
                        "expected `id rid` or `id data.seq`",
                    )),
                },
                ("result", [k]) if key(k).is_some() => {
                    response.result = key(k).map(|k| k.name);
                }
                ("error", [k, shape @ ..]) if shape.len() <= 1 => {
                    // The error's shape, declared: `text` or `object` (`name`, `message`, other
                    // keys). Left out, it is an object for untagged replies (SocketCluster) and
                    // text elsewhere (Clusterio's `data.error`, Litecord's `e`).
                    let object = match shape.first().map(word) {
                        None => Some(matches!(response.matched, Some(ReplyMatcher::Untagged))),
                        Some(Some("object")) => Some(true),
                        Some(Some("text")) => Some(false),
                        Some(_) => None,
                    };
                    match (key_path(k), object) {
                        (Some(path), Some(object)) => response.error = Some((path, object)),
                        _ => self.err(self.malformed(
                            "`error` takes a key or a path, and the error's shape",
                            clause.span,
                            "expected `error data.error text` or `error error object`",
                        )),
                    }
                }
                (other, _) => self.err(clause_error(
                    other,
                    &RESPONSE_CLAUSES,
                    clause,
                    &atoms[0],
                    "not a clause of `response`",
                )),
            }
        }
        match &response.matched {
            Some(ReplyMatcher::Tag { for_key, .. }) if for_key.is_empty() => {
                self.err(
                    Diagnostic::error(
                        "E0134",
                        "a fixed reply tag needs `for KEY` naming the request answered",
                        item.span,
                        "no `for` clause",
                    )
                    .with_help("write `tag \"result\", for KEY`"),
                );
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
        response
    }

    fn error_frame(&mut self, item: &Directive) -> Option<WireDirective> {
        let mut tag = None;
        let mut message = None;
        for clause in &item.clauses {
            match clause.atoms.as_slice() {
                [first, a] if word(first) == Some("tag") && str_of(a).is_some() => tag = str_of(a),
                [first, k] if word(first) == Some("message") && key(k).is_some() => {
                    message = key(k).map(|k| k.name);
                }
                _ => self.err(self.malformed_with(
                    "`error` takes `tag \"error\"` and `message KEY`",
                    clause.span,
                    "malformed clause",
                    "write `error tag \"error\", message error`",
                )),
            }
        }
        match (tag, message) {
            (Some(tag), Some(message)) => Some(WireDirective::Error { tag, message }),
            _ => {
                self.err(
                    Diagnostic::error(
                        "E0134",
                        "an error frame needs `tag` and `message`",
                        item.span,
                        "incomplete",
                    )
                    .with_help("write `error tag \"error\", message error`"),
                );
                None
            }
        }
    }
}
