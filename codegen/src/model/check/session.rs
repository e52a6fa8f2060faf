//! The `session` block: handshake, heartbeat, invalid frames and the close message.

use super::*;

impl Checker<'_> {
    pub(super) fn session_directives(&mut self) {
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
