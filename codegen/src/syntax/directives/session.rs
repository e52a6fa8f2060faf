//! Lowering the `session` block: handshake steps, heartbeats, invalid-frame rules, timeouts and
//! the close message.

use super::*;

impl Lowering<'_> {
    pub(super) fn session(&mut self, d: &Directive) -> Option<Vec<SessionDirective>> {
        let Some(block) = &d.block else {
            self.err(self.malformed(
                "`session` takes a block",
                d.span,
                "expected `session { ... }`",
            ));
            return None;
        };
        let mut out = Vec::new();
        for item in block {
            let Some(head) = word(&item.head) else {
                self.err(
                    Diagnostic::error(
                        "E0114",
                        "expected a session directive",
                        item.head.span(),
                        "not a directive",
                    )
                    .with_help(format!(
                        "session directives are {}",
                        name_list(&SESSION_DIRECTIVES)
                    )),
                );
                continue;
            };
            let typed = match head {
                "handshake" => self.handshake(item).map(SessionDirective::Handshake),
                "heartbeat" => self.heartbeat(item).map(SessionDirective::Heartbeat),
                "before" => self.before(item),
                "invalid" => self.invalid_rule(item).map(SessionDirective::Invalid),
                "timeout" => self.timeout(item),
                "reconnect" => match item.clauses.as_slice() {
                    [clause] => match clause.atoms.as_slice() {
                        [min, ms] if word(min) == Some("min") => int_of(ms)
                            .and_then(|n| u64::try_from(n).ok())
                            .map(SessionDirective::ReconnectMin),
                        _ => None,
                    },
                    _ => None,
                }
                .or_else(|| {
                    self.err(self.malformed(
                        "expected `reconnect min MS`",
                        item.span,
                        "expected `reconnect min 1000`",
                    ));
                    None
                }),
                "close" => self.close_message(item),
                other => {
                    let diag = Diagnostic::error(
                        "E0114",
                        format!("unknown session directive `{other}`"),
                        item.head.span(),
                        "not a session directive",
                    );
                    self.err(match did_you_mean(other, SESSION_DIRECTIVES) {
                        Some(s) => diag.with_help(format!("did you mean `{s}`?")),
                        None => diag.with_help("session directives are `handshake`, `heartbeat`, `before handshake closes`, `timeout`, `reconnect` and `close message`"),
                    });
                    None
                }
            };
            out.extend(typed);
        }
        Some(out)
    }

    /// A side: a name (`client`, `server` or an endpoint), checked by the checker.
    fn side(&mut self, atom: &Atom) -> Option<Ident> {
        if let Atom::Ident(id) = atom {
            return Some(id.clone());
        }
        self.err(
            Diagnostic::error(
                "E0136",
                "expected `client` or `server`",
                atom.span(),
                "not a side",
            )
            .with_help(
                "`client` is the side that connects on each link, `server` the side that accepts",
            ),
        );
        None
    }

    /// A message name.
    fn message_name(&mut self, atom: &Atom) -> Option<Ident> {
        if let Atom::Ident(id) = atom {
            return Some(id.clone());
        }
        self.err(
            Diagnostic::error(
                "E0116",
                "expected a message name",
                atom.span(),
                "not a name",
            )
            .with_help("name a message declared in this protocol"),
        );
        None
    }

    /// A close code: a name from the `close` block or a number.
    fn close_code(&mut self, atom: &Atom) -> Option<CloseCodeRef> {
        let code = close_code_ref(atom);
        if code.is_none() {
            self.err(
                Diagnostic::error(
                    "E0116",
                    "expected a close code",
                    atom.span(),
                    "not a close code",
                )
                .with_help("write a name from the `close` block, or a number such as `4000`"),
            );
        }
        code
    }

    fn handshake(&mut self, item: &Directive) -> Option<Handshake> {
        let first = item.clauses.first()?;
        let (side, verb, names) = match first.atoms.as_slice() {
            [side, verb, names @ ..] if !names.is_empty() => (side, word(verb), names),
            _ => {
                self.err(self.malformed(
                    "expected `handshake SIDE sends MESSAGE`",
                    item.span,
                    "expected `handshake client sends Hello`",
                ));
                return None;
            }
        };
        let request = match verb {
            Some("sends") => false,
            Some("requests") => true,
            _ => {
                self.err(
                    Diagnostic::error(
                        "E0116",
                        "expected `sends` or `requests`",
                        first.span,
                        "malformed handshake step",
                    )
                    .with_help(
                        "write `handshake SIDE sends MESSAGE` or `handshake SIDE requests REQUEST`",
                    ),
                );
                return None;
            }
        };
        let side = self.side(side);
        let mut messages = Vec::new();
        for atom in names {
            if !matches!(atom, Atom::Punct("|", _)) {
                messages.extend(self.message_name(atom));
            }
        }
        let mut step = Handshake {
            side,
            request,
            messages,
            auth: None,
            failure: None,
            malformed_id: None,
        };
        for clause in &item.clauses[1..] {
            match clause.atoms.as_slice() {
                [w, field] if word(w) == Some("auth") => {
                    if let Some(k) = key(field) {
                        step.auth = Some(k);
                    }
                }
                [w, code] if word(w) == Some("failure") => step.failure = self.close_code(code),
                [id, malformed, closes, code]
                    if word(id) == Some("id")
                        && word(malformed) == Some("malformed")
                        && word(closes) == Some("closes") =>
                {
                    step.malformed_id = self.close_code(code);
                }
                _ => self.err(
                    Diagnostic::error(
                        "E0114",
                        "unknown handshake clause",
                        clause.span,
                        "expected `auth FIELD`, `failure CODE` or `id malformed closes CODE`",
                    )
                    .with_help(
                        "a handshake step takes `auth FIELD`, `failure CODE` and `id malformed closes CODE`",
                    ),
                ),
            }
        }
        Some(step)
    }

    fn heartbeat(&mut self, item: &Directive) -> Option<Heartbeat> {
        let mut beat = Heartbeat {
            span: item.span,
            side: None,
            ping: None,
            pong: None,
            interval: None,
            grace_ms: 0,
            timeout_ms: None,
            missed: None,
            client_missed: None,
            early: None,
            variant: None,
        };
        let mut have_interval = false;
        for (i, clause) in item.clauses.iter().enumerate() {
            let atoms = clause.atoms.as_slice();
            if i == 0 {
                match atoms {
                    [side, verb, msg] if word(verb) == Some("sends") => {
                        beat.side = self.side(side);
                        beat.ping = self.message_name(msg).map(BeatSpec::Message);
                    }
                    [side, verb, kw, text]
                        if word(verb) == Some("pings")
                            && word(kw) == Some("text")
                            && str_of(text).is_some() =>
                    {
                        beat.side = self.side(side);
                        beat.ping = str_of(text).map(BeatSpec::Text);
                    }
                    _ => {
                        self.err(self.malformed(
                            "expected `heartbeat SIDE sends MESSAGE` or `heartbeat SIDE pings text \"...\"`",
                            clause.span,
                            "expected `heartbeat client sends Ping`",
                        ));
                        return None;
                    }
                }
                continue;
            }
            let ms = |a: &Atom| int_of(a).map(|n| u64::try_from(n).ok());
            match atoms {
                [_, verb, msg] if word(verb) == Some("replies") => {
                    if let Some(m) = self.message_name(msg) {
                        beat.pong = Some(BeatSpec::Message(m));
                    }
                }
                [_, verb, kw, text]
                    if word(verb) == Some("replies")
                        && word(kw) == Some("text")
                        && str_of(text).is_some() =>
                {
                    beat.pong = str_of(text).map(BeatSpec::Text);
                }
                [w, n] if word(w) == Some("every") && ms(n).is_some() => {
                    have_interval = true;
                    beat.interval = Some(IntervalSpec::Fixed(ms(n).flatten().unwrap_or(0)));
                }
                [w, Atom::Path(parts)] if word(w) == Some("every") => {
                    have_interval = true;
                    match parts.as_slice() {
                        [msg, field] => {
                            beat.interval =
                                Some(IntervalSpec::FromField(msg.clone(), field.clone()));
                        }
                        _ => self.err(self.malformed_with(
                            "expected `every Message.field`",
                            clause.span,
                            "malformed path",
                            "write `every Hello.heartbeat_interval`",
                        )),
                    }
                }
                [w, n] if word(w) == Some("grace") && ms(n).is_some() => {
                    beat.grace_ms = ms(n).flatten().unwrap_or(0);
                }
                [w, n] if word(w) == Some("timeout") && ms(n).is_some() => {
                    beat.timeout_ms = ms(n).flatten();
                }
                [w, c, code] if word(w) == Some("missed") && word(c) == Some("closes") => {
                    beat.missed = self.close_code(code);
                }
                [side, w, c, code]
                    if word(side) == Some("client")
                        && word(w) == Some("missed")
                        && word(c) == Some("closes") =>
                {
                    beat.client_missed = self.close_code(code);
                }
                [w, c, code] if word(w) == Some("early") && word(c) == Some("closes") => {
                    beat.early = self.close_code(code);
                }
                [w, v] if word(w) == Some("variant") && str_of(v).is_some() => {
                    beat.variant = str_of(v);
                }
                _ => {
                    let first = atoms.first().and_then(word).unwrap_or("");
                    let d = if HEARTBEAT_CLAUSES.contains(&first)
                        || atoms.get(1).and_then(word) == Some("replies")
                    {
                        Diagnostic::error(
                            "E0116",
                            format!("malformed heartbeat clause `{first}`"),
                            clause.span,
                            "unexpected arguments",
                        )
                    } else {
                        Diagnostic::error(
                            "E0114",
                            format!("unknown heartbeat clause `{first}`"),
                            atoms.first().map_or(clause.span, Atom::span),
                            "not a heartbeat clause",
                        )
                    };
                    self.err(match did_you_mean(first, HEARTBEAT_CLAUSES).filter(|s| *s != first) {
                        Some(s) => d.with_help(format!("did you mean `{s}`?")),
                        None => d.with_help("a heartbeat takes `SIDE replies ...`, `every MS`, `grace MS`, `timeout MS`, `missed closes CODE`, `early closes CODE` and `variant STRING`"),
                    });
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
        (beat.side.is_some() && beat.ping.is_some()).then_some(beat)
    }

    /// `before handshake closes CODE` or `before handshake closes "REASON"`.
    fn before(&mut self, item: &Directive) -> Option<SessionDirective> {
        if let [clause] = item.clauses.as_slice() {
            if let [h, c, code] = clause.atoms.as_slice() {
                if word(h) == Some("handshake") && word(c) == Some("closes") {
                    // A reason text: the close message carries it (Clusterio's "Invalid
                    // handshake"); the WebSocket code is 1008.
                    let with = match str_of(code) {
                        Some(reason) => CloseWith::Reason(reason),
                        None => CloseWith::Code(self.close_code(code)?),
                    };
                    return Some(SessionDirective::BeforeHandshake(with));
                }
            }
        }
        self.err(self.malformed(
            "expected `before handshake closes CODE`",
            item.span,
            "expected `before handshake closes NotAuthenticated`",
        ));
        None
    }

    /// `timeout MS`, or `timeout MS, closes CODE` with the code for a handshake that took too long.
    fn timeout(&mut self, item: &Directive) -> Option<SessionDirective> {
        let first_int = |c: &Clause| match c.atoms.as_slice() {
            [a] => int_of(a),
            _ => None,
        };
        match item.clauses.as_slice() {
            [only] => {
                if let Some(ms) = first_int(only).and_then(|n| u64::try_from(n).ok()) {
                    return Some(SessionDirective::Timeout {
                        ms: Some(ms),
                        closes: None,
                    });
                }
            }
            [first, second] => {
                if let (Some(ms), [w, code]) = (first_int(first), second.atoms.as_slice()) {
                    if word(w) == Some("closes") {
                        let closes = Some(self.close_code(code)?);
                        return Some(SessionDirective::Timeout {
                            ms: u64::try_from(ms).ok(),
                            closes,
                        });
                    }
                }
            }
            _ => {}
        }
        self.err(self.malformed(
            "`timeout` takes milliseconds",
            item.span,
            "expected `timeout 10000`",
        ));
        None
    }

    /// `invalid closes "REASON"`, or `invalid KIND [of MESSAGE | ...] answers "TEXT"
    /// [, name "NAME"]`, `invalid KIND [of MESSAGE | ...] closes "TEXT"` or `invalid KIND
    /// [of MESSAGE | ...] ignored`.
    fn invalid_rule(&mut self, item: &Directive) -> Option<InvalidRule> {
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
                name_list(&INVALID_KINDS)
            ))
        };
        let Some((first, rest)) = item.clauses.split_first() else {
            self.err(malformed(item.span));
            return None;
        };
        let atoms = first.atoms.as_slice();
        if let ([closes, reason], []) = (atoms, rest) {
            if let (Some("closes"), Some(reason)) = (word(closes), str_of(reason)) {
                return Some(InvalidRule::Closes(reason));
            }
        }
        let Some((kind_atom, atoms)) = atoms.split_first() else {
            self.err(malformed(item.span));
            return None;
        };
        let Some(kind) = word(kind_atom).and_then(|w| INVALID_KINDS.iter().find(|k| **k == w))
        else {
            let d = Diagnostic::error(
                "E0114",
                "unknown kind of invalid frame",
                kind_atom.span(),
                "not a kind",
            );
            self.err(
                match word(kind_atom).and_then(|w| did_you_mean(w, INVALID_KINDS)) {
                    Some(s) => d.with_help(format!("did you mean `{s}`?")),
                    None => d.with_help(format!("the kinds are {}", name_list(&INVALID_KINDS))),
                },
            );
            return None;
        };
        let (messages, atoms) = match atoms.split_first() {
            Some((of, names)) if word(of) == Some("of") => {
                if *kind != "payload" {
                    self.err(
                        Diagnostic::error(
                            "E0139",
                            format!("`invalid {kind}` frames name no message"),
                            of.span(),
                            "only `invalid payload` rules apply to particular messages",
                        )
                        .with_help("remove `of ...`, or write `invalid payload of ...`"),
                    );
                    return None;
                }
                let end = names
                    .iter()
                    .position(|a| matches!(word(a), Some("answers" | "ignored" | "closes")))
                    .unwrap_or(names.len());
                let mut messages = Vec::new();
                for (n, atom) in names[..end].iter().enumerate() {
                    if n % 2 == 1 {
                        if !matches!(atom, Atom::Punct("|", _)) {
                            self.err(malformed(atom.span()));
                            return None;
                        }
                    } else {
                        messages.extend(self.message_name(atom));
                    }
                }
                (messages, &names[end..])
            }
            _ => (Vec::new(), atoms),
        };
        let action = match (atoms, rest) {
            ([closes, text], []) if word(closes) == Some("closes") && str_of(text).is_some() => {
                InvalidAction::Closes(str_of(text).unwrap_or_default())
            }
            ([ignored], []) if word(ignored) == Some("ignored") => InvalidAction::Ignored,
            ([answers, text], rest) => {
                let (Some("answers"), Some(text)) = (word(answers), str_of(text)) else {
                    self.err(malformed(item.span));
                    return None;
                };
                let name = match rest {
                    [] => None,
                    [clause] => match clause.atoms.as_slice() {
                        [w, name] if word(w) == Some("name") && str_of(name).is_some() => {
                            str_of(name)
                        }
                        _ => {
                            self.err(malformed(clause.span));
                            return None;
                        }
                    },
                    [_, extra, ..] => {
                        self.err(malformed(extra.span));
                        return None;
                    }
                };
                InvalidAction::Answers(text, name)
            }
            _ => {
                self.err(malformed(item.span));
                return None;
            }
        };
        Some(InvalidRule::Kind {
            kind,
            messages,
            action,
        })
    }

    /// `close message MESSAGE, reason FIELD [, code FIELD] [, received only]`.
    fn close_message(&mut self, item: &Directive) -> Option<SessionDirective> {
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
        let (message, reason, rest) = match item.clauses.as_slice() {
            [first, second, rest @ ..] => match (first.atoms.as_slice(), second.atoms.as_slice()) {
                ([w, msg], [r, field])
                    if word(w) == Some("message")
                        && word(r) == Some("reason")
                        && key(field).is_some() =>
                {
                    (msg, key(field), rest)
                }
                _ => {
                    self.err(malformed(item.span));
                    return None;
                }
            },
            _ => {
                self.err(malformed(item.span));
                return None;
            }
        };
        let (mut code, mut sent) = (None, true);
        for clause in rest {
            match clause.atoms.as_slice() {
                [w, field] if word(w) == Some("code") && key(field).is_some() => code = key(field),
                [r, o] if word(r) == Some("received") && word(o) == Some("only") => sent = false,
                _ => {
                    self.err(malformed(clause.span));
                    return None;
                }
            }
        }
        Some(SessionDirective::CloseMessage {
            message: self.message_name(message)?,
            reason: reason?,
            code,
            sent,
        })
    }
}
