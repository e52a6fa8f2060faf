//! The `wire` block: where tags, payloads, ids and replies sit in a frame.

use super::*;

impl Checker<'_> {
    pub(super) fn wire(&mut self, d: &ast::Directive) {
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
}
