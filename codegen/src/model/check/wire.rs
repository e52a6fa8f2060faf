//! The `wire` block: where tags, payloads, ids and replies sit in a frame.

use super::*;

impl Checker<'_> {
    pub(super) fn wire(&mut self, block: &ast::WireBlock) {
        for item in &block.items {
            match item {
                ast::WireDirective::Tag { key, ty } => {
                    if let Some(key) = key {
                        self.p.wire.tag = key.clone();
                    }
                    match ty {
                        Some(ast::TagType::Int) => self.p.wire.int_tags = true,
                        Some(ast::TagType::String) => {}
                        None => self.tag_type_unknown = true,
                    }
                }
                ast::WireDirective::Payload(Some(ast::PayloadPlace::Key(key))) => {
                    self.p.wire.payload = Some(key.clone());
                }
                ast::WireDirective::Payload(_) => {}
                ast::WireDirective::Sequence(key) => self.p.wire.sequence = Some(key.clone()),
                ast::WireDirective::Strict => self.p.wire.strict = true,
                ast::WireDirective::Batch => self.p.wire.batch = true,
                ast::WireDirective::BinaryText => self.p.wire.binary_text = true,
                ast::WireDirective::Event(clauses) => self.p.wire.event = self.framing(clauses),
                ast::WireDirective::Request(clauses) => {
                    self.p.wire.request = self.framing(clauses);
                }
                ast::WireDirective::Response(response) => self.response(response),
                ast::WireDirective::Error { tag, message } => {
                    self.p.wire.error = ErrorFraming::Tagged {
                        tag: tag.clone(),
                        message: message.clone(),
                    };
                }
            }
        }
        if self.p.wire.request_id == RequestId::Sequence && self.p.wire.sequence.is_none() {
            self.err(
                Diagnostic::error(
                    "E0134",
                    "`id sequence` needs a `sequence` directive",
                    block.head,
                    "requests have no id",
                )
                .with_help("add `sequence seq` to the `wire` block"),
            );
        }
    }

    /// How `event` or `request` frames; a request's id clauses set where ids sit.
    fn framing(&mut self, clauses: &[ast::FramingClause]) -> Framing {
        let mut framing = Framing::Tagged;
        let (mut carrier, mut method, mut args) = (None, None, None);
        for clause in clauses {
            match clause {
                ast::FramingClause::Suffix(s) => framing = Framing::Suffix(s.clone()),
                ast::FramingClause::Carrier(lit) => carrier = Some(self.tag_lit(lit)),
                ast::FramingClause::Method(key) => method = Some(key.clone()),
                ast::FramingClause::Args(key) => args = Some(key.clone()),
                ast::FramingClause::Ordered => self.p.wire.request_id = RequestId::Ordered,
                ast::FramingClause::IdSequence => self.p.wire.request_id = RequestId::Sequence,
                ast::FramingClause::IdKey {
                    key,
                    optional,
                    text,
                } => {
                    self.p.wire.request_id = RequestId::Key {
                        key: key.clone(),
                        optional: *optional,
                        text: *text,
                    };
                }
            }
        }
        // An incomplete carrier is already reported; the frame falls back to its other clauses.
        match (carrier, method, args) {
            (Some(tag), Some(method), Some(args)) => Framing::Carrier { tag, method, args },
            _ => framing,
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

    fn response(&mut self, response: &ast::Response) {
        self.p.wire.replies = true;
        if let Some(id) = &response.id {
            self.p.wire.reply_id = Some(self.resolve_path(id));
        }
        if let Some(result) = &response.result {
            self.p.wire.reply_result = Some(result.clone());
        }
        if let Some((path, object)) = &response.error {
            let path = self.resolve_path(path);
            self.p.wire.error = ErrorFraming::InReply {
                path,
                object: *object,
            };
        }
        let matched = match &response.matched {
            Some(ast::ReplyMatcher::Suffix(s)) => ReplyMatch::Suffix(s.clone()),
            Some(ast::ReplyMatcher::Carrier(lit)) => ReplyMatch::Carrier(self.tag_lit(lit)),
            Some(ast::ReplyMatcher::Untagged) => ReplyMatch::Untagged,
            Some(ast::ReplyMatcher::Tag { tag, for_key }) => ReplyMatch::Tag {
                tag: tag.clone(),
                for_key: for_key.clone(),
            },
            None => return,
        };
        if matched == ReplyMatch::Untagged && !matches!(self.p.wire.reply_id, Some(KeyPath::Top(_)))
        {
            self.err(
                Diagnostic::error(
                    "E0134",
                    "untagged replies are recognised by a top-level `id` key",
                    response.span,
                    "no `id KEY` clause",
                )
                .with_help("add `id KEY`, the key holding the answered request's id"),
            );
        }
        self.p.wire.reply_match = matched;
    }

    fn resolve_path(&mut self, path: &ast::KeyPath) -> KeyPath {
        match path.parts.as_slice() {
            [key] => KeyPath::Top(key.clone()),
            [under, key] if self.p.wire.payload.as_deref() == Some(under.as_str()) => {
                KeyPath::InPayload(key.clone())
            }
            _ => {
                self.err(
                    Diagnostic::error(
                        "E0138",
                        "a path must be a key, or the payload key and a key inside it",
                        path.span,
                        "cannot be reached",
                    )
                    .with_help("declare `payload KEY` first, then write `KEY.inner`"),
                );
                KeyPath::Top(path.parts.join("."))
            }
        }
    }
}
