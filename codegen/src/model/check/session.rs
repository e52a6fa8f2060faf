//! The `session` block: handshake, heartbeat, invalid frames and the close message.

use super::*;

impl Checker<'_> {
    pub(super) fn session_directives(&mut self) {
        let Some(block) = &self.decl.block.session else {
            return;
        };
        for item in block {
            match item {
                ast::SessionDirective::Handshake(step) => self.handshake(step),
                ast::SessionDirective::Heartbeat(beat) => self.heartbeat(beat),
                ast::SessionDirective::BeforeHandshake(ast::CloseWith::Reason(reason)) => {
                    self.p.session.before_handshake_reason = Some(reason.clone());
                }
                ast::SessionDirective::BeforeHandshake(ast::CloseWith::Code(code)) => {
                    self.p.session.before_handshake = self.close_code(code);
                }
                ast::SessionDirective::Invalid(rule) => self.invalid_rule(rule),
                ast::SessionDirective::Timeout { ms, closes } => {
                    self.p.session.handshake_timeout_ms = *ms;
                    if let Some(code) = closes {
                        self.p.session.handshake_timeout_code = self.close_code(code);
                    }
                }
                ast::SessionDirective::ReconnectMin(ms) => self.p.session.reconnect_min_ms = *ms,
                ast::SessionDirective::CloseMessage {
                    message,
                    reason,
                    code,
                    sent,
                } => self.close_message(message, reason, code.as_ref(), *sent),
            }
        }
    }

    fn invalid_rule(&mut self, rule: &ast::InvalidRule) {
        let (kind, names, action) = match rule {
            ast::InvalidRule::Closes(reason) => {
                self.p.session.invalid_closes = Some(reason.clone());
                return;
            }
            ast::InvalidRule::Kind {
                kind,
                messages,
                action,
            } => (*kind, messages, action),
        };
        let messages = names.iter().filter_map(|m| self.message_ref(m)).collect();
        let (answer, closes) = match action {
            ast::InvalidAction::Answers(text, name) => (Some((text.clone(), name.clone())), None),
            ast::InvalidAction::Closes(text) => (None, Some(text.clone())),
            ast::InvalidAction::Ignored => (None, None),
        };
        self.p.session.invalid_rules.push(InvalidRule {
            kind,
            messages,
            answer,
            closes,
        });
    }

    /// A close code written as a name from the `close` block or as a number.
    fn close_code(&mut self, code: &ast::CloseCodeRef) -> Option<u16> {
        self.close_code_text(&code.text, code.span)
    }

    fn close_code_text(&mut self, code: &str, span: Span) -> Option<u16> {
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

    fn message_ref(&mut self, id: &ast::Ident) -> Option<usize> {
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
    fn side(&mut self, side: &ast::Ident) -> Option<bool> {
        let word = side.name.as_str();
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
                "E0136",
                format!("`{word}` is not a side"),
                side.span,
                "expected `client` or `server`",
            )
            .with_help(
                "`client` is the side that connects on each link, `server` the side that accepts",
            ),
        );
        None
    }

    fn handshake(&mut self, step: &ast::Handshake) {
        let Some(client_sends) = step.side.as_ref().and_then(|side| self.side(side)) else {
            return;
        };
        let request = step.request;
        let mut messages = Vec::new();
        let mut unknown = false;
        for id in &step.messages {
            unknown |= !self.p.messages.iter().any(|m| m.name == id.name);
            if let Some(i) = self.message_ref(id) {
                // A handshake request is answered by the receiver's handler, like any request.
                self.p.messages[i].session = !request;
                if request && self.p.messages[i].kind != Kind::Request {
                    self.err(
                        Diagnostic::error(
                            "E0137",
                            format!("`{}` is not a request", self.p.messages[i].name),
                            id.span,
                            "`requests` needs a request",
                        )
                        .with_help("write `sends` for messages and events"),
                    );
                }
                messages.push(i);
            }
        }
        let mut auth_field = None;
        if let Some(field) = &step.auth {
            let name = &field.name;
            let known = messages.iter().any(|&i| self.field_of(i, name).is_some());
            // With an unknown message in the step, the field may well be in it.
            if !known && !unknown {
                let fields: Vec<String> =
                    messages.iter().flat_map(|&i| self.field_names(i)).collect();
                let d = Diagnostic::error(
                    "E0125",
                    format!("no handshake message of this step has the field `{name}`"),
                    field.span,
                    "unknown field",
                );
                self.err(with_field_help(d, name, &fields));
            }
            auth_field = Some(name.clone());
        }
        let failure = step.failure.as_ref().and_then(|code| self.close_code(code));
        let malformed_id = step
            .malformed_id
            .as_ref()
            .and_then(|code| self.close_code(code));
        self.p.session.handshake.push(HandshakeStep {
            client_sends,
            messages,
            request,
            auth_field,
            failure,
            malformed_id,
        });
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

    fn heartbeat(&mut self, spec: &ast::Heartbeat) {
        let mut beat = Heartbeat {
            client_pings: true,
            ping: Beat::Text(String::new()),
            pong: None,
            interval: Interval::Fixed(0),
            grace_ms: spec.grace_ms,
            missed: None,
            client_missed: None,
            variant: spec.variant.clone(),
        };
        if let Some(c) = spec.side.as_ref().and_then(|side| self.side(side)) {
            beat.client_pings = c;
        }
        if let Some(ping) = &spec.ping {
            beat.ping = self.beat(ping).unwrap_or(beat.ping);
        }
        if let Some(pong) = &spec.pong {
            beat.pong = self.beat(pong);
        }
        match &spec.interval {
            Some(ast::IntervalSpec::Fixed(ms)) => beat.interval = Interval::Fixed(*ms),
            Some(ast::IntervalSpec::FromField(msg, field)) => {
                if let Some(m) = self.message_ref(msg) {
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
            }
            None => {}
        }
        beat.missed = spec.missed.as_ref().and_then(|c| self.close_code(c));
        beat.client_missed = spec.client_missed.as_ref().and_then(|c| self.close_code(c));
        if let Some(early) = &spec.early {
            let code = self.close_code(early);
            if self.p.session.before_handshake.is_none() {
                self.p.session.before_handshake = code;
            }
        }
        if let (Some(timeout), Interval::Fixed(every)) = (spec.timeout_ms, &beat.interval) {
            beat.grace_ms = timeout.saturating_sub(*every);
        }
        self.p.session.heartbeats.push(beat);
    }

    /// A heartbeat's ping or pong; a message it names is handled by the session driver.
    fn beat(&mut self, spec: &ast::BeatSpec) -> Option<Beat> {
        match spec {
            ast::BeatSpec::Text(text) => Some(Beat::Text(text.clone())),
            ast::BeatSpec::Message(id) => {
                let m = self.message_ref(id)?;
                self.p.messages[m].session = true;
                Some(Beat::Message(m))
            }
        }
    }

    /// `close message MESSAGE, reason FIELD [, code FIELD] [, received only]`.
    fn close_message(
        &mut self,
        message: &ast::Ident,
        reason: &ast::Key,
        code: Option<&ast::Key>,
        sent: bool,
    ) {
        let Some(m) = self.message_ref(message) else {
            return;
        };
        self.p.messages[m].session = true;
        let mut field = |key: &ast::Key| {
            let wire = self.field_of(m, &key.name);
            if wire.is_none() {
                let d = Diagnostic::error(
                    "E0125",
                    format!("`{}` has no field `{}`", self.p.messages[m].name, key.name),
                    key.span,
                    "unknown field",
                );
                let fields = self.field_names(m);
                self.err(with_field_help(d, &key.name, &fields));
            }
            wire
        };
        let reason = field(reason);
        let code = match code {
            Some(key) => match field(key) {
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
