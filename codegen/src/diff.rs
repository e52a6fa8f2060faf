//! What changed between two versions of a protocol, and which changes break existing peers.
//!
//! A peer built on the old definition keeps talking to one built on the new one, both ways: a
//! change breaks it when the new side refuses what an old sender writes (a removed message, a new
//! required field, a narrowed type or range, a changed tag, envelope or session rule) or when an
//! old receiver refuses what a new sender must write (a removed required field, a changed close
//! code). A change that only lets a side accept more (an optional field, a wider range, a new
//! message) is compatible and reported as a note: an old receiver may still refuse the new values
//! a new sender chooses to send. Messages, fields, variants and close codes are matched by their
//! names on the wire (a message by name, or by its tag when renamed); named types by name.
//!
//! Each change is a [`Diagnostic`] pointing into the old file (what was removed) or the new one,
//! rendered like rustc's: `error[B0001]` for breaking changes, `note[N0001]` for compatible ones.

use std::collections::BTreeMap;

use crate::diagnostics::{Diagnostic, Severity, SourceMap, Span};
use crate::model::*;

/// Which version a change's spans point into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The old definition.
    Old,
    /// The new definition.
    New,
}

/// One change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Whether it breaks existing peers.
    pub breaking: bool,
    /// Which file its spans point into.
    pub version: Version,
    /// What changed, where, and why it matters.
    pub diagnostic: Diagnostic,
}

/// Every change from `old` to `new`, in the order of the definition: the envelope, the session,
/// close codes, messages, then types.
pub fn diff(old: &Protocol, new: &Protocol) -> Vec<Change> {
    let mut d = Differ {
        old,
        new,
        out: Vec::new(),
    };
    d.version();
    d.wire();
    d.session();
    d.close_codes();
    d.messages();
    d.types();
    let breaking = d.out.iter().any(|c| c.breaking);
    if breaking && old.version == new.version {
        if let Some(first) = d.out.iter_mut().find(|c| c.breaking) {
            first.diagnostic = first.diagnostic.clone().with_help(format!(
                "the version is still {:?}: give the new definition a version of its own",
                new.version
            ));
        }
    }
    d.out
}

/// Renders every change like rustc's diagnostics, each with the sources of its version, and a
/// summary line.
pub fn render(changes: &[Change], old: &SourceMap, new: &SourceMap) -> String {
    let mut out = String::new();
    for change in changes {
        let sources = match change.version {
            Version::Old => old,
            Version::New => new,
        };
        out.push_str(&change.diagnostic.render(sources));
        out.push('\n');
    }
    let breaking = changes.iter().filter(|c| c.breaking).count();
    let compatible = changes.len() - breaking;
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    out.push_str(&format!(
        "{breaking} breaking change{}, {compatible} compatible change{}\n",
        plural(breaking),
        plural(compatible)
    ));
    out
}

/// How the values one version accepts relate to the other's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rel {
    /// The same values.
    Same,
    /// The new version accepts fewer.
    Narrower,
    /// The new version accepts more.
    Wider,
    /// Some values either way.
    Changed,
}

impl Rel {
    fn and(self, other: Rel) -> Rel {
        match (self, other) {
            (Rel::Same, x) | (x, Rel::Same) => x,
            (a, b) if a == b => a,
            _ => Rel::Changed,
        }
    }
}

/// How interval `new` relates to `old` (bounds inclusive, `None` unbounded).
fn interval_rel(old: (Option<i128>, Option<i128>), new: (Option<i128>, Option<i128>)) -> Rel {
    let lower = |a: Option<i128>, b: Option<i128>| match (a, b) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, Some(_)) => std::cmp::Ordering::Less,
        (Some(_), None) => std::cmp::Ordering::Greater,
        (Some(a), Some(b)) => a.cmp(&b),
    };
    let upper = |a: Option<i128>, b: Option<i128>| lower(a, b).reverse();
    use std::cmp::Ordering::*;
    // How far each bound reaches in the new version, compared with the old.
    let (lo, hi) = (lower(old.0, new.0), upper(old.1, new.1));
    match (lo, hi) {
        (Equal, Equal) => Rel::Same,
        (Less | Equal, Less | Equal) => Rel::Narrower,
        (Greater | Equal, Greater | Equal) => Rel::Wider,
        _ => Rel::Changed,
    }
}

fn range_of(constraints: &[Constraint], ty: Option<IntType>) -> (Option<i128>, Option<i128>) {
    let (mut lo, mut hi) = match ty {
        Some(i) => {
            let (a, b) = i.bounds();
            (Some(a), Some(b))
        }
        None => (None, None),
    };
    for c in constraints {
        if let Constraint::Range {
            min,
            max,
            max_inclusive,
        } = c
        {
            if let Some(min) = min {
                lo = Some(lo.map_or(i128::from(*min), |l| l.max(i128::from(*min))));
            }
            if let Some(max) = max {
                let max = i128::from(*max) - i128::from(!max_inclusive);
                hi = Some(hi.map_or(max, |h| h.min(max)));
            }
        }
    }
    (lo, hi)
}

fn len_of(constraints: &[Constraint]) -> (Option<i128>, Option<i128>) {
    let (mut lo, mut hi) = (Some(0), None);
    for c in constraints {
        if let Constraint::Len {
            min,
            max,
            max_inclusive,
        } = c
        {
            if let Some(min) = min {
                lo = Some(i128::from(*min));
            }
            if let Some(max) = max {
                hi = Some(i128::from(*max) - i128::from(!max_inclusive));
            }
        }
    }
    (lo, hi)
}

fn pattern_of(constraints: &[Constraint]) -> Option<&str> {
    constraints.iter().find_map(|c| match c {
        Constraint::Pattern(p) => Some(p.as_str()),
        _ => None,
    })
}

/// A type as the definition writes it.
fn shown(p: &Protocol, ty: &Ty) -> String {
    match ty {
        Ty::Bool => "bool".to_owned(),
        Ty::Int(i) => i.rust().to_owned(),
        Ty::F64 => "f64".to_owned(),
        Ty::String => "string".to_owned(),
        Ty::Any => "any".to_owned(),
        Ty::Array(inner) => format!("[{}]", shown(p, inner)),
        Ty::Map(inner) => format!("{{string: {}}}", shown(p, inner)),
        Ty::Nullable(inner) => format!("{} | null", shown(p, inner)),
        Ty::Const(TagValue::Str(s)) => format!("{s:?}"),
        Ty::Const(TagValue::Int(n)) => n.to_string(),
        Ty::Named(i) => type_name(p, *i),
    }
}

fn type_name(p: &Protocol, i: usize) -> String {
    p.types
        .get(i)
        .map_or_else(String::new, |t| t.name.trim_start_matches('\0').to_owned())
}

fn tag_shown(tag: &TagValue) -> String {
    match tag {
        TagValue::Str(s) => format!("{s:?}"),
        TagValue::Int(n) => n.to_string(),
    }
}

struct Differ<'a> {
    old: &'a Protocol,
    new: &'a Protocol,
    out: Vec<Change>,
}

impl Differ<'_> {
    fn breaking(
        &mut self,
        version: Version,
        code: &'static str,
        message: String,
        span: Span,
        label: &str,
    ) {
        self.out.push(Change {
            breaking: true,
            version,
            diagnostic: Diagnostic::error(code, message, span, label),
        });
    }

    fn note(
        &mut self,
        version: Version,
        code: &'static str,
        message: String,
        span: Span,
        label: &str,
    ) {
        let mut diagnostic = Diagnostic::error(code, message, span, label);
        diagnostic.severity = Severity::Note;
        self.out.push(Change {
            breaking: false,
            version,
            diagnostic,
        });
    }

    /// Reports a relation: breaking when narrower or changed, a note when wider.
    fn relation(&mut self, rel: Rel, what: &str, old: String, new: String, span: Span) {
        match rel {
            Rel::Same => {}
            Rel::Wider => self.note(
                Version::New,
                "N0003",
                format!("{what} accepts more: {old} became {new}"),
                span,
                "widened here",
            ),
            Rel::Narrower => {
                let message = format!("{what} accepts less: {old} became {new}");
                self.breaking(Version::New, "B0007", message, span, "narrowed here");
                self.help("a value an old peer sends may now be refused");
            }
            Rel::Changed => {
                let message = format!("{what} changed: {old} became {new}");
                self.breaking(Version::New, "B0007", message, span, "changed here");
                self.help("values one version writes, the other refuses");
            }
        }
    }

    fn help(&mut self, text: &str) {
        if let Some(last) = self.out.last_mut() {
            last.diagnostic = last.diagnostic.clone().with_help(text);
        }
    }

    fn version(&mut self) {
        if self.old.version != self.new.version {
            let message = format!(
                "the version changed from {:?} to {:?}",
                self.old.version, self.new.version
            );
            self.note(
                Version::New,
                "N0005",
                message,
                self.new.span,
                "this protocol",
            );
        }
    }

    fn wire(&mut self) {
        let (o, n) = (&self.old.wire, &self.new.wire);
        let parts: [(&str, String, String); 13] = [
            ("tag key", format!("{:?}", o.tag), format!("{:?}", n.tag)),
            ("tag type", tag_type(o.int_tags), tag_type(n.int_tags)),
            (
                "payload",
                format!("{:?}", o.payload),
                format!("{:?}", n.payload),
            ),
            (
                "frame number",
                format!("{:?}", o.sequence),
                format!("{:?}", n.sequence),
            ),
            (
                "event framing",
                format!("{:?}", o.event),
                format!("{:?}", n.event),
            ),
            (
                "request framing",
                format!("{:?}", o.request),
                format!("{:?}", n.request),
            ),
            (
                "request id",
                format!("{:?}", o.request_id),
                format!("{:?}", n.request_id),
            ),
            (
                "reply framing",
                format!("{:?}", o.reply_match),
                format!("{:?}", n.reply_match),
            ),
            (
                "reply id",
                format!("{:?}", o.reply_id),
                format!("{:?}", n.reply_id),
            ),
            (
                "reply result",
                format!("{:?}", o.reply_result),
                format!("{:?}", n.reply_result),
            ),
            (
                "failures",
                format!("{:?}", o.error),
                format!("{:?}", n.error),
            ),
            (
                "batches",
                format!("{:?}", o.batch),
                format!("{:?}", n.batch),
            ),
            (
                "binary frames",
                format!("{:?}", o.binary_text),
                format!("{:?}", n.binary_text),
            ),
        ];
        for (what, old, new) in parts {
            if old != new {
                let message = format!("the envelope's {what} changed: {old} became {new}");
                self.breaking(
                    Version::New,
                    "B0010",
                    message,
                    self.new.span,
                    "in this protocol's `wire`",
                );
                self.help("every frame is written and read by the envelope: old and new peers no longer understand each other");
            }
        }
        match (o.strict, n.strict) {
            (false, true) => {
                let message = "the envelope became `strict`: unknown keys are refused".to_owned();
                self.breaking(
                    Version::New,
                    "B0010",
                    message,
                    self.new.span,
                    "in this protocol's `wire`",
                );
                self.help("old peers may send keys the new definition does not declare");
            }
            (true, false) => {
                let message =
                    "the envelope is no longer `strict`: unknown keys are ignored".to_owned();
                self.note(
                    Version::New,
                    "N0003",
                    message,
                    self.new.span,
                    "in this protocol's `wire`",
                );
            }
            _ => {}
        }
    }

    fn names(p: &Protocol, messages: &[usize]) -> String {
        messages
            .iter()
            .filter_map(|&i| p.messages.get(i))
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    }

    fn session_text(p: &Protocol) -> Vec<(&'static str, String)> {
        let s = &p.session;
        let beat = |b: &Beat| match b {
            Beat::Message(i) => Self::names(p, &[*i]),
            Beat::Text(t) => format!("text {t:?}"),
        };
        let mut out = vec![(
            "handshake",
            s.handshake
                .iter()
                .map(|h| {
                    format!(
                        "{} {} {}{}{}",
                        if h.client_sends { "client" } else { "server" },
                        if h.request { "requests" } else { "sends" },
                        Self::names(p, &h.messages),
                        h.auth_field
                            .as_ref()
                            .map(|f| format!(", auth {f}"))
                            .unwrap_or_default(),
                        h.failure
                            .map(|c| format!(", failure {c}"))
                            .unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        )];
        out.push((
            "handshake timeout",
            format!(
                "{:?} {:?}",
                s.handshake_timeout_ms, s.handshake_timeout_code
            ),
        ));
        out.push((
            "rule for traffic before the handshake",
            format!("{:?} {:?}", s.before_handshake, s.before_handshake_reason),
        ));
        out.push((
            "heartbeat",
            s.heartbeats
                .iter()
                .map(|h| {
                    format!(
                        "{} beats {}, answer {}, every {}, grace {}, closes {:?}/{:?}{}",
                        if h.client_pings { "client" } else { "server" },
                        beat(&h.ping),
                        h.pong.as_ref().map(beat).unwrap_or_default(),
                        match &h.interval {
                            Interval::Fixed(ms) => format!("{ms} ms"),
                            Interval::FromField(i, f) => format!("{}.{f}", Self::names(p, &[*i])),
                        },
                        h.grace_ms,
                        h.missed,
                        h.client_missed,
                        h.variant
                            .as_ref()
                            .map(|v| format!(", variant {v}"))
                            .unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        ));
        out.push((
            "close message",
            s.close_message
                .as_ref()
                .map(|c| {
                    format!(
                        "{} reason {} code {:?} sent {}",
                        Self::names(p, &[c.message]),
                        c.reason,
                        c.code,
                        c.sent
                    )
                })
                .unwrap_or_default(),
        ));
        out
    }

    fn session(&mut self) {
        let old = Self::session_text(self.old);
        let new = Self::session_text(self.new);
        for ((what, o), (_, n)) in old.iter().zip(&new) {
            if o != n {
                let shown = |s: &str| {
                    if s.is_empty() {
                        "none".to_owned()
                    } else {
                        format!("`{s}`")
                    }
                };
                let message = format!("the {what} changed: {} became {}", shown(o), shown(n));
                self.breaking(
                    Version::New,
                    "B0011",
                    message,
                    self.new.span,
                    "in this protocol's `session`",
                );
                self.help("old and new peers would run different session rules on the same link");
            }
        }
    }

    fn close_codes(&mut self) {
        for o in &self.old.close_codes {
            match self.new.close_codes.iter().find(|n| n.name == o.name) {
                None => {
                    let message = format!("the close code {} `{}` was removed", o.code, o.name);
                    self.breaking(Version::Old, "B0009", message, o.span, "removed");
                    self.help("old peers still close with it, and expect it");
                }
                Some(n) if n.code != o.code => {
                    let message = format!(
                        "the close code `{}` changed from {} to {}",
                        o.name, o.code, n.code
                    );
                    self.breaking(Version::New, "B0009", message, n.span, "changed here");
                }
                Some(n) if n.reason != o.reason => {
                    let message = format!(
                        "the reason of close code {} changed from {:?} to {:?}",
                        o.code, o.reason, n.reason
                    );
                    self.note(Version::New, "N0004", message, n.span, "here");
                }
                Some(_) => {}
            }
        }
        for n in &self.new.close_codes {
            if !self.old.close_codes.iter().any(|o| o.name == n.name) {
                let message = format!("a close code was added: {} `{}`", n.code, n.name);
                self.note(Version::New, "N0004", message, n.span, "added");
            }
        }
    }

    fn routes(p: &Protocol, m: &Message) -> Vec<String> {
        m.directions
            .iter()
            .map(|&(a, b)| format!("{} -> {}", p.endpoints[a], p.endpoints[b]))
            .collect()
    }

    fn messages(&mut self) {
        let (old_p, new_p) = (self.old, self.new);
        let mut matched = Vec::new();
        for o in &old_p.messages {
            let by_name = new_p.messages.iter().find(|n| n.name == o.name);
            let by_tag = || {
                new_p.messages.iter().find(|n| {
                    n.tag == o.tag
                        && n.kind == o.kind
                        && !old_p.messages.iter().any(|x| x.name == n.name)
                })
            };
            match by_name.or_else(by_tag) {
                Some(n) => {
                    if n.name != o.name {
                        let message = format!(
                            "the message `{}` was renamed `{}`; its tag is the same",
                            o.name, n.name
                        );
                        self.note(Version::New, "N0001", message, n.span, "renamed");
                    }
                    matched.push(n.name.clone());
                    self.message(o, n);
                }
                None => {
                    let message = format!("the message `{}` was removed", o.name);
                    self.breaking(Version::Old, "B0001", message, o.span, "removed");
                    self.help("old peers still send it, and wait for it");
                }
            }
        }
        for n in &new_p.messages {
            if !matched.contains(&n.name) {
                let message = format!("the message `{}` was added", n.name);
                self.note(Version::New, "N0001", message, n.span, "added");
            }
        }
    }

    fn message(&mut self, o: &Message, n: &Message) {
        if o.tag != n.tag {
            let message = format!(
                "the tag of `{}` changed from {} to {}",
                n.name,
                tag_shown(&o.tag),
                tag_shown(&n.tag)
            );
            self.breaking(Version::New, "B0002", message, n.span, "changed here");
            self.help(
                "keep the wire tag and rename only in Rust: `request new_name = \"old_tag\" ...`",
            );
        }
        if o.kind != n.kind {
            let message = format!("`{}` changed from {:?} to {:?}", n.name, o.kind, n.kind);
            self.breaking(Version::New, "B0003", message, n.span, "changed here");
        }
        let (old_routes, new_routes) = (Self::routes(self.old, o), Self::routes(self.new, n));
        for r in &old_routes {
            if !new_routes.contains(r) {
                let message = format!("`{}` may no longer be sent {r}", n.name);
                self.breaking(Version::New, "B0004", message, n.span, "route removed");
            }
        }
        for r in &new_routes {
            if !old_routes.contains(r) {
                let message = format!("`{}` may now be sent {r}", n.name);
                self.note(Version::New, "N0006", message, n.span, "route added");
            }
        }
        let empty = Shape::Empty;
        let what = format!("the payload of `{}`", n.name);
        self.shape(
            &what,
            o.payload.as_ref().unwrap_or(&empty),
            n.payload.as_ref().unwrap_or(&empty),
            n.span,
        );
        if n.kind == Kind::Request && o.kind == Kind::Request {
            let what = format!("the reply to `{}`", n.name);
            self.shape(
                &what,
                o.reply.as_ref().unwrap_or(&empty),
                n.reply.as_ref().unwrap_or(&empty),
                n.span,
            );
        }
    }

    fn shape(&mut self, what: &str, o: &Shape, n: &Shape, span: Span) {
        match (o, n) {
            (Shape::Empty, Shape::Empty) => {}
            (Shape::Object(a), Shape::Object(b)) => self.fields(what, a, b, false),
            (Shape::Positional(a), Shape::Positional(b)) => self.fields(what, a, b, true),
            (Shape::Type(a), Shape::Type(b)) => {
                let rel = self.ty(a, b);
                self.relation(
                    rel,
                    what,
                    format!("`{}`", shown(self.old, a)),
                    format!("`{}`", shown(self.new, b)),
                    span,
                );
            }
            _ => {
                let message = format!(
                    "{what} changed its shape: {} became {}",
                    shape_word(o),
                    shape_word(n)
                );
                self.breaking(Version::New, "B0008", message, span, "changed here");
            }
        }
    }

    /// Fields of two objects (matched by wire name) or two positional payloads (by position).
    fn fields(&mut self, what: &str, o: &Struct, n: &Struct, positional: bool) {
        let key = |i: usize, f: &Field| {
            if positional {
                i.to_string()
            } else {
                f.wire_name.clone()
            }
        };
        let old: BTreeMap<String, &Field> = o
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| (key(i, f), f))
            .collect();
        let new: BTreeMap<String, &Field> = n
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| (key(i, f), f))
            .collect();
        let absent_ok =
            |p: &Protocol, f: &Field| f.optional || matches!(p.resolve(&f.ty), Ty::Nullable(_));
        let old_strict = self.old.wire.strict && o.rest.is_none();
        let new_strict = self.new.wire.strict && n.rest.is_none();
        for (i, f) in o.fields.iter().enumerate() {
            let k = key(i, f);
            match new.get(&k) {
                Some(g) => self.field(what, f, g),
                None if !absent_ok(self.old, f) => {
                    let message = format!("{what} lost its required field `{}`", f.wire_name);
                    self.breaking(Version::Old, "B0006", message, f.span, "removed");
                    self.help("old peers still need it in every frame");
                }
                None if new_strict => {
                    let message = format!(
                        "{what} lost its field `{}`, and unknown keys are refused",
                        f.wire_name
                    );
                    self.breaking(Version::Old, "B0006", message, f.span, "removed");
                }
                None => {
                    let message = format!("{what} lost its optional field `{}`", f.wire_name);
                    self.note(Version::Old, "N0007", message, f.span, "removed");
                }
            }
        }
        for (i, g) in n.fields.iter().enumerate() {
            if old.contains_key(&key(i, g)) {
                continue;
            }
            if !absent_ok(self.new, g) {
                let message = format!("{what} has a new required field `{}`", g.wire_name);
                self.breaking(Version::New, "B0005", message, g.span, "required");
                self.help("old peers do not send it: make it optional (`T?`)");
            } else if old_strict {
                let message = format!(
                    "{what} has a new field `{}`, and old peers refuse unknown keys",
                    g.wire_name
                );
                self.breaking(Version::New, "B0014", message, g.span, "added");
            } else {
                let message = format!("{what} has a new optional field `{}`", g.wire_name);
                self.note(Version::New, "N0002", message, g.span, "added");
            }
        }
        match (&o.rest, &n.rest) {
            (Some(_), None) if self.new.wire.strict => {
                let message =
                    format!("{what} no longer keeps other keys, and unknown keys are refused");
                self.breaking(
                    Version::New,
                    "B0007",
                    message,
                    self.new.span,
                    "in this protocol",
                );
            }
            (None, Some(_)) if self.old.wire.strict => {
                let message = format!("{what} now keeps other keys, which old peers refuse");
                self.note(
                    Version::New,
                    "N0003",
                    message,
                    self.new.span,
                    "in this protocol",
                );
            }
            _ => {}
        }
    }

    fn field(&mut self, what: &str, f: &Field, g: &Field) {
        let mut rel = self.ty(&f.ty, &g.ty);
        let ints = |p: &Protocol, ty: &Ty| match p.resolve(ty) {
            Ty::Int(i) => Some(i),
            Ty::Nullable(inner) => match p.resolve(&inner) {
                Ty::Int(i) => Some(i),
                _ => None,
            },
            _ => None,
        };
        let (fi, gi) = (ints(self.old, &f.ty), ints(self.new, &g.ty));
        if f.constraints != g.constraints || fi != gi {
            rel = rel.and(interval_rel(
                range_of(&f.constraints, fi),
                range_of(&g.constraints, gi),
            ));
            rel = rel.and(interval_rel(len_of(&f.constraints), len_of(&g.constraints)));
            rel = rel.and(
                match (pattern_of(&f.constraints), pattern_of(&g.constraints)) {
                    (a, b) if a == b => Rel::Same,
                    (None, Some(_)) => Rel::Narrower,
                    (Some(_), None) => Rel::Wider,
                    _ => Rel::Changed,
                },
            );
        }
        let absent =
            |p: &Protocol, f: &Field| f.optional || matches!(p.resolve(&f.ty), Ty::Nullable(_));
        rel = rel.and(match (absent(self.old, f), absent(self.new, g)) {
            (true, false) => Rel::Narrower,
            (false, true) => Rel::Wider,
            _ => Rel::Same,
        });
        let written = |p: &Protocol, f: &Field| {
            let mut text = shown(p, &f.ty);
            if f.optional {
                text.push('?');
            }
            for c in &f.constraints {
                text.push_str(&format!(" {}", constraint_shown(c)));
            }
            format!("`{text}`")
        };
        let what = format!("the field `{}` of {what}", g.wire_name);
        let (old, new) = (written(self.old, f), written(self.new, g));
        self.relation(rel, &what, old, new, g.span);
    }

    /// How the values `b` (new) accepts relate to those of `a` (old).
    fn ty(&self, a: &Ty, b: &Ty) -> Rel {
        let (a, b) = (self.old.resolve(a), self.new.resolve(b));
        match (&a, &b) {
            (Ty::Named(i), Ty::Named(j)) => {
                // Named types are compared by name; their own changes are reported with them.
                if type_name(self.old, *i) == type_name(self.new, *j) {
                    Rel::Same
                } else {
                    Rel::Changed
                }
            }
            (Ty::Int(x), Ty::Int(y)) => {
                let (p, q) = (x.bounds(), y.bounds());
                interval_rel((Some(p.0), Some(p.1)), (Some(q.0), Some(q.1)))
            }
            (Ty::Int(_), Ty::F64) => Rel::Wider,
            (Ty::F64, Ty::Int(_)) => Rel::Narrower,
            (x, Ty::Any) if *x != Ty::Any => Rel::Wider,
            (Ty::Any, y) if *y != Ty::Any => Rel::Narrower,
            (Ty::Nullable(x), Ty::Nullable(y)) => self.ty(x, y),
            (x, Ty::Nullable(y)) => self.ty(x, y).and(Rel::Wider),
            (Ty::Nullable(x), y) => self.ty(x, y).and(Rel::Narrower),
            (Ty::Const(TagValue::Str(_)), Ty::String)
            | (Ty::Const(TagValue::Int(_)), Ty::Int(_)) => Rel::Wider,
            (Ty::String, Ty::Const(TagValue::Str(_)))
            | (Ty::Int(_), Ty::Const(TagValue::Int(_))) => Rel::Narrower,
            (Ty::Array(x), Ty::Array(y)) | (Ty::Map(x), Ty::Map(y)) => self.ty(x, y),
            (x, y) if x == y => Rel::Same,
            _ => Rel::Changed,
        }
    }

    fn types(&mut self) {
        let (old_p, new_p) = (self.old, self.new);
        for o in &old_p.types {
            let Some(n) = new_p.types.iter().find(|n| n.name == o.name) else {
                continue;
            };
            let what = format!("the type `{}`", n.name.trim_start_matches('\0'));
            match (&o.kind, &n.kind) {
                (TypeDefKind::Struct(a), TypeDefKind::Struct(b)) => self.fields(&what, a, b, false),
                (TypeDefKind::Positional(a), TypeDefKind::Positional(b)) => {
                    self.fields(&what, a, b, true)
                }
                (TypeDefKind::Enum(a), TypeDefKind::Enum(b)) => {
                    let old: Vec<&str> = a.iter().map(|(_, w, _)| w.as_str()).collect();
                    let new: Vec<&str> = b.iter().map(|(_, w, _)| w.as_str()).collect();
                    self.variants(&what, &old, &new, n.span);
                }
                (
                    TypeDefKind::Union {
                        tag: t1,
                        variants: a,
                    },
                    TypeDefKind::Union {
                        tag: t2,
                        variants: b,
                    },
                ) => {
                    if t1 != t2 {
                        let message = format!("{what} is told apart by {t2:?} instead of {t1:?}");
                        self.breaking(Version::New, "B0008", message, n.span, "changed here");
                        continue;
                    }
                    let old: Vec<&str> = a.iter().map(|(_, w, _, _)| w.as_str()).collect();
                    let new: Vec<&str> = b.iter().map(|(_, w, _, _)| w.as_str()).collect();
                    self.variants(&what, &old, &new, n.span);
                    for (_, wire, _, s) in a {
                        if let Some((_, _, _, t)) = b.iter().find(|(_, w, _, _)| w == wire) {
                            self.fields(&format!("{what}'s variant {wire:?}"), s, t, false);
                        }
                    }
                }
                (TypeDefKind::OneOf(a), TypeDefKind::OneOf(b)) => {
                    let old: Vec<String> = a.iter().map(|(_, t)| shown(old_p, t)).collect();
                    let new: Vec<String> = b.iter().map(|(_, t)| shown(new_p, t)).collect();
                    let old: Vec<&str> = old.iter().map(String::as_str).collect();
                    let new: Vec<&str> = new.iter().map(String::as_str).collect();
                    self.variants(&what, &old, &new, n.span);
                }
                (TypeDefKind::Alias(a), TypeDefKind::Alias(b)) => {
                    let rel = self.ty(a, b);
                    self.relation(
                        rel,
                        &what,
                        format!("`{}`", shown(old_p, a)),
                        format!("`{}`", shown(new_p, b)),
                        n.span,
                    );
                }
                _ => {
                    let message = format!("{what} changed its kind");
                    self.breaking(Version::New, "B0008", message, n.span, "changed here");
                }
            }
        }
    }

    /// Values or members of an enum or union: removed ones break, added ones are notes.
    fn variants(&mut self, what: &str, old: &[&str], new: &[&str], span: Span) {
        for v in old.iter().filter(|v| !new.contains(v)) {
            let message = format!("{what} lost `{v}`");
            self.breaking(Version::New, "B0012", message, span, "removed from here");
            self.help("old peers still send it");
        }
        for v in new.iter().filter(|v| !old.contains(v)) {
            let message = format!("{what} gained `{v}`");
            self.note(Version::New, "N0006", message, span, "added here");
        }
    }
}

fn tag_type(int: bool) -> String {
    if int { "integer" } else { "string" }.to_owned()
}

fn shape_word(shape: &Shape) -> &'static str {
    match shape {
        Shape::Object(_) => "an object",
        Shape::Positional(_) => "an array of fields",
        Shape::Type(_) => "a type",
        Shape::Empty => "nothing",
    }
}

fn constraint_shown(c: &Constraint) -> String {
    let bound = |n: Option<String>| n.unwrap_or_default();
    match c {
        Constraint::Range {
            min,
            max,
            max_inclusive,
        } => format!(
            "where {}{}{}",
            bound(min.map(|n| n.to_string())),
            if *max_inclusive { "..=" } else { ".." },
            bound(max.map(|n| n.to_string()))
        ),
        Constraint::Len {
            min,
            max,
            max_inclusive,
        } => format!(
            "where len {}{}{}",
            bound(min.map(|n| n.to_string())),
            if *max_inclusive { "..=" } else { ".." },
            bound(max.map(|n| n.to_string()))
        ),
        Constraint::Pattern(p) => format!("where pattern {p:?}"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::Config;

    const BASE: &str = r#"protocol demo {
    version "1"
    wire {
        tag type string
        payload inline
        request id id
        response tag "reply", for to, id id, error error text
    }
    close {
        4000 Bye "bye"
    }
    session {
        handshake client sends hello
    }
}
message hello from client { name: string }
request add from client { amount: i64 where -1000..=1000, note: string? } -> { total: i64 }
event note from client { text: string where len 1..=200, mood: Mood? }
event total from server { total: i32 }
enum Mood { happy, sad }
"#;

    fn protocol(text: &str) -> Protocol {
        let checked =
            Config::new().check_sources(&[(PathBuf::from("demo.protocol"), text.to_owned())]);
        assert!(
            !checked.diagnostics.has_errors(),
            "{}\n{}",
            checked.diagnostics.render(&checked.sources),
            text
        );
        checked.protocols.into_iter().next().expect("one protocol")
    }

    /// Each kind of change, made to `BASE` by replacing text, and the codes it must report (a
    /// `B` code breaks existing peers, an `N` code does not).
    /// What a case is, the `(from, to)` replacements that make it, and the codes expected.
    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static [&'static str],
    );

    const CASES: &[Case] = &[
        ("nothing", &[], &[]),
        (
            "a new version",
            &[("version \"1\"", "version \"2\"")],
            &["N0005"],
        ),
        (
            "a removed message",
            &[("event total from server { total: i32 }\n", "")],
            &["B0001"],
        ),
        (
            "an added message",
            &[("enum Mood", "event bye from server {}\nenum Mood")],
            &["N0001"],
        ),
        (
            "a renamed message, same tag",
            &[("event note from", "event memo = \"note\" from")],
            &["N0001"],
        ),
        (
            "a changed tag",
            &[("event note from", "event note = \"memo\" from")],
            &["B0002"],
        ),
        (
            "an event made a request",
            &[(
                "event total from server { total: i32 }",
                "request total from server { total: i32 }",
            )],
            &["B0003"],
        ),
        (
            "a route removed",
            &[("event total from server", "event total from client")],
            &["B0004", "N0006"],
        ),
        (
            "a route added",
            &[("event total from server", "event total from any")],
            &["N0006"],
        ),
        (
            "a new required field",
            &[("{ name: string }", "{ name: string, age: u8 }")],
            &["B0005"],
        ),
        (
            "a new optional field",
            &[("{ name: string }", "{ name: string, age: u8? }")],
            &["N0002"],
        ),
        (
            "a removed required field",
            &[("{ name: string }", "{}")],
            &["B0006"],
        ),
        (
            "a removed optional field",
            &[(", note: string? }", " }")],
            &["N0007"],
        ),
        (
            "a narrowed range",
            &[("-1000..=1000", "-10..=10")],
            &["B0007"],
        ),
        (
            "a widened range",
            &[("-1000..=1000", "-5000..=5000")],
            &["N0003"],
        ),
        (
            "a narrowed length",
            &[("len 1..=200", "len 1..=100")],
            &["B0007"],
        ),
        (
            "a new pattern",
            &[("len 1..=200", "len 1..=200 and pattern \"^[a-z]+$\"")],
            &["B0007"],
        ),
        (
            "a narrowed integer type",
            &[("total: i32 }", "total: i16 }")],
            &["B0007"],
        ),
        (
            "a widened integer type",
            &[("total: i32 }", "total: i64 }")],
            &["N0003"],
        ),
        (
            "a changed type",
            &[("total: i32 }", "total: string }")],
            &["B0007"],
        ),
        (
            "an optional field made required",
            &[("note: string?", "note: string")],
            &["B0007"],
        ),
        (
            "a nullable reply",
            &[("-> { total: i64 }", "-> { total: i64 | null }")],
            &["N0003"],
        ),
        (
            "a payload shape changed",
            &[(
                "message hello from client { name: string }",
                "message hello from client",
            )],
            &["B0008"],
        ),
        (
            "a close code renumbered",
            &[("4000 Bye", "4001 Bye")],
            &["B0009"],
        ),
        (
            "a close code removed",
            &[("        4000 Bye \"bye\"\n", "")],
            &["B0009"],
        ),
        (
            "a close code added",
            &[(
                "4000 Bye \"bye\"",
                "4000 Bye \"bye\"\n        4001 Later \"later\"",
            )],
            &["N0004"],
        ),
        (
            "a close reason changed",
            &[("\"bye\"", "\"goodbye\"")],
            &["N0004"],
        ),
        (
            "a changed envelope",
            &[("tag type string", "tag kind string")],
            &["B0010"],
        ),
        (
            "a strict envelope",
            &[("payload inline", "payload inline\n        strict")],
            &["B0010"],
        ),
        (
            "a changed handshake",
            &[(
                "handshake client sends hello",
                "handshake client sends hello\n        timeout 5000",
            )],
            &["B0011"],
        ),
        (
            "an enum value removed",
            &[("{ happy, sad }", "{ happy }")],
            &["B0012"],
        ),
        (
            "an enum value added",
            &[("{ happy, sad }", "{ happy, sad, calm }")],
            &["N0006"],
        ),
    ];

    #[test]
    fn every_kind_of_change_gets_its_verdict() {
        let old = protocol(BASE);
        let mut failures = Vec::new();
        for (what, edits, expected) in CASES {
            let mut text = BASE.to_owned();
            for (from, to) in *edits {
                assert!(text.contains(from), "{what}: `{from}` is not in the base");
                text = text.replacen(from, to, 1);
            }
            let new = protocol(&text);
            let changes = diff(&old, &new);
            let mut codes: Vec<&str> = changes.iter().map(|c| c.diagnostic.code).collect();
            codes.sort_unstable();
            codes.dedup();
            let mut want = expected.to_vec();
            want.sort_unstable();
            if codes != want {
                failures.push(format!("{what}: expected {want:?}, got {codes:?}"));
            }
            for c in &changes {
                assert_eq!(
                    c.breaking,
                    c.diagnostic.code.starts_with('B'),
                    "{what}: {c:?}"
                );
                assert_eq!(
                    c.diagnostic.severity == Severity::Note,
                    !c.breaking,
                    "{what}: {c:?}"
                );
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn changes_render_like_rustc_with_the_file_they_point_into() {
        let old_text = BASE.to_owned();
        let new_text = BASE
            .replace("event total from server { total: i32 }\n", "")
            .replace("{ name: string }", "{ name: string, age: u8 }");
        let old = Config::new().check_sources(&[(PathBuf::from("old/demo.protocol"), old_text)]);
        let new = Config::new().check_sources(&[(PathBuf::from("new/demo.protocol"), new_text)]);
        let changes = diff(&old.protocols[0], &new.protocols[0]);
        let rendered = render(&changes, &old.sources, &new.sources);
        assert!(
            rendered.contains(
                "error[B0001]: the message `total` was removed\n  --> old/demo.protocol:"
            ),
            "{rendered}"
        );
        assert!(rendered.contains("error[B0005]: the payload of `hello` has a new required field `age`\n  --> new/demo.protocol:"), "{rendered}");
        assert!(
            rendered.contains("give the new definition a version of its own"),
            "{rendered}"
        );
        assert!(
            rendered.ends_with("2 breaking changes, 0 compatible changes\n"),
            "{rendered}"
        );
    }
}
