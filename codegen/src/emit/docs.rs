//! The reference emitter: what a protocol's users read, as Markdown and as one self-contained
//! HTML page.
//!
//! Both come from one document ([`Block`]s): the protocol's docs, the envelope, the sides and
//! links, the handshake, heartbeat and close-code tables, every message with its fields, types,
//! constraints, docs and an example frame (and an example reply), and the named types. The
//! examples are built from the frame schemas of [`crate::emit::schema`], so they hold what the
//! schemas ask for.

use serde_json::{Map, Value, json};

use crate::emit::schema;
use crate::model::*;

/// One block of the reference.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// A heading of a level (1 to 4).
    Heading(u8, String),
    /// A paragraph; `` `code` `` spans are kept.
    Paragraph(String),
    /// A table: the header and the rows (cells hold inline text).
    Table(Vec<String>, Vec<Vec<String>>),
    /// A JSON code block.
    Json(String),
}

/// An example of one frame, as the reference shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The message's name.
    pub message: String,
    /// Whether it is the reply to the request rather than its frame.
    pub reply: bool,
    /// The frame.
    pub frame: Value,
}

/// The example frames of a protocol: one per message, one per request's reply (a result).
pub fn examples(p: &Protocol) -> Vec<Example> {
    let schemas = schema::components(p, "#/components/schemas/");
    let mut out = Vec::new();
    for m in &p.messages {
        let mut push = |key: String, reply: bool| {
            if let Some(s) = schemas.get(&key) {
                let s = if reply { result_branch(s) } else { s };
                out.push(Example {
                    message: m.name.clone(),
                    reply,
                    frame: instance(s, &schemas, 0),
                });
            }
        };
        push(format!("frame.{}", m.name), false);
        if m.kind == Kind::Request {
            push(format!("reply.{}", m.name), true);
        }
    }
    out
}

/// A reply schema's result: its first alternative (the failure comes after it).
fn result_branch(schema: &Value) -> &Value {
    schema
        .get("oneOf")
        .and_then(|alternatives| alternatives.get(0))
        .unwrap_or(schema)
}

/// Strings tried, in order, for a string with a pattern or a length.
const STRINGS: &[&str] = &["example", "42", "general", "a", "x1", "Example text"];

/// A value `schema` accepts (for the schemas [`schema`] writes): the first alternative, every
/// property, one element per array and one key per map, numbers and strings within their
/// bounds and patterns.
fn instance(schema: &Value, defs: &Map<String, Value>, depth: u32) -> Value {
    let Some(obj) = schema.as_object() else {
        return Value::Null;
    };
    if depth > 24 {
        return Value::Null;
    }
    if let Some(reference) = obj.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap_or_default();
        return defs
            .get(name)
            .map_or(Value::Null, |target| instance(target, defs, depth + 1));
    }
    if let Some(value) = obj.get("const") {
        return value.clone();
    }
    if let Some(value) = obj.get("examples").and_then(|e| e.get(0)) {
        return value.clone();
    }
    if let Some(first) = obj.get("enum").and_then(|e| e.get(0)) {
        return first.clone();
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(first) = obj.get(key).and_then(|a| a.get(0)) {
            return instance(first, defs, depth + 1);
        }
    }
    let ty = match obj.get("type") {
        Some(Value::String(ty)) => ty.as_str(),
        Some(Value::Array(types)) => types.iter().rev().find_map(Value::as_str).unwrap_or(""),
        _ if obj.contains_key("properties") => "object",
        _ => "",
    };
    let number = |key: &str| obj.get(key).and_then(Value::as_i64);
    match ty {
        "null" => Value::Null,
        "boolean" => json!(true),
        "integer" => {
            let (min, max) = (number("minimum"), number("maximum"));
            let n = match (min, max) {
                (Some(min), _) if min > 1 => min,
                (_, Some(max)) if max < 1 => max,
                _ => 1,
            };
            json!(n)
        }
        "number" => match (number("minimum"), number("exclusiveMaximum")) {
            (Some(min), _) => json!(min),
            (None, Some(max)) if max <= 1 => json!(max - 1),
            _ => json!(1.5),
        },
        "string" => Value::String(string_for(obj)),
        "array" => {
            let mut items: Vec<Value> = obj
                .get("prefixItems")
                .and_then(Value::as_array)
                .map(|p| p.iter().map(|s| instance(s, defs, depth + 1)).collect())
                .unwrap_or_default();
            if let Some(item) = obj.get("items") {
                let least = obj.get("minItems").and_then(Value::as_u64).unwrap_or(1);
                for _ in 0..least.clamp(1, 3) {
                    items.push(instance(item, defs, depth + 1));
                }
            }
            Value::Array(items)
        }
        "object" => {
            let mut out = Map::new();
            for (key, s) in obj
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                out.insert(key.clone(), instance(s, defs, depth + 1));
            }
            if let Some(values) = obj.get("additionalProperties").filter(|v| v.is_object()) {
                out.insert("key".to_owned(), instance(values, defs, depth + 1));
            }
            for all in obj
                .get("allOf")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Value::Object(more) = instance(all, defs, depth + 1) {
                    out.extend(more);
                }
            }
            Value::Object(out)
        }
        _ => json!("any JSON value"),
    }
}

/// A string within the schema's length and pattern.
fn string_for(obj: &Map<String, Value>) -> String {
    let least = obj.get("minLength").and_then(Value::as_u64).unwrap_or(0);
    let most = obj
        .get("maxLength")
        .and_then(Value::as_u64)
        .unwrap_or(u64::MAX);
    let pattern = obj
        .get("pattern")
        .and_then(Value::as_str)
        .and_then(|p| regex::Regex::new(p).ok());
    let fits = |s: &str| {
        let n = s.chars().count() as u64;
        n >= least && n <= most && pattern.as_ref().is_none_or(|p| p.is_match(s))
    };
    for candidate in STRINGS {
        let padded: String = if (candidate.chars().count() as u64) < least {
            let repeat = usize::try_from(least).unwrap_or(0);
            candidate.chars().cycle().take(repeat).collect()
        } else {
            (*candidate).to_owned()
        };
        if fits(&padded) {
            return padded;
        }
    }
    STRINGS[0].to_owned()
}

// ---- the document ----------------------------------------------------------------------------

/// The reference of one protocol as blocks; `source` names the definition file.
pub fn document(p: &Protocol, source: &str) -> Vec<Block> {
    let mut out = vec![Block::Heading(1, format!("{} {}", p.name, p.version))];
    // The first paragraph describes the protocol; the rest are notes for the definition's
    // readers.
    out.extend(
        paragraphs(&p.docs)
            .into_iter()
            .take(1)
            .map(Block::Paragraph),
    );
    out.push(Block::Paragraph(format!(
        "Generated by protolink from `{source}`: the envelope every frame shares, the session \
         rules, every message and every type."
    )));
    envelope(p, &mut out);
    sides(p, &mut out);
    session(p, &mut out);
    close_codes(p, &mut out);
    messages(p, &mut out);
    types(p, &mut out);
    out
}

fn paragraphs(docs: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in docs.iter().map(|l| l.trim()).chain([""]) {
        if line.is_empty() {
            if !current.is_empty() {
                out.push(current.join(" "));
                current.clear();
            }
        } else {
            current.push(line);
        }
    }
    out
}

fn code(text: &str) -> String {
    format!("`{text}`")
}

fn tag_shown(tag: &TagValue) -> String {
    match tag {
        TagValue::Str(s) => format!("`{s:?}`"),
        TagValue::Int(n) => format!("`{n}`"),
    }
}

fn key_path(path: &KeyPath, payload: Option<&str>) -> String {
    match path {
        KeyPath::Top(key) => code(key),
        KeyPath::InPayload(key) => code(&format!("{}.{key}", payload.unwrap_or("payload"))),
    }
}

fn envelope(p: &Protocol, out: &mut Vec<Block>) {
    let w = &p.wire;
    out.push(Block::Heading(2, "Envelope".to_owned()));
    out.push(Block::Paragraph(
        "Every frame is a WebSocket text frame holding one JSON object.".to_owned(),
    ));
    let mut rows = vec![vec![
        "tag".to_owned(),
        format!(
            "{} names the message, as {}",
            code(&w.tag),
            if w.int_tags { "an integer" } else { "a string" }
        ),
    ]];
    rows.push(vec![
        "payload".to_owned(),
        match &w.payload {
            None => "the message's fields sit beside the tag".to_owned(),
            Some(key) => format!("under {}", code(key)),
        },
    ]);
    if let Some(seq) = &w.sequence {
        rows.push(vec![
            "frame number".to_owned(),
            format!("{} counts each side's frames from 1", code(seq)),
        ]);
    }
    let framing = |f: &Framing| match f {
        Framing::Tagged => "a frame of its own, tagged with the message's tag".to_owned(),
        Framing::Suffix(s) => format!("tagged with the message's tag followed by {}", code(s)),
        Framing::Carrier { tag, method, args } => format!(
            "carried in a frame tagged {}: {} names the message, {} holds its payload",
            tag_shown(tag),
            code(method),
            code(args)
        ),
    };
    rows.push(vec!["events".to_owned(), framing(&w.event)]);
    let mut requests = framing(&w.request);
    requests.push_str(&match &w.request_id {
        RequestId::Ordered => {
            "; no ids: replies come back in the order requests arrived".to_owned()
        }
        RequestId::Sequence => "; the frame number is the request id".to_owned(),
        RequestId::Key {
            key,
            optional,
            text,
        } => format!(
            "; the id sits under {} ({}{})",
            code(key),
            if *text {
                "8 hexadecimal digits as a string; numbers are read too"
            } else {
                "a number counting from 1; strings are read too"
            },
            if *optional {
                "; may be left out for no reply"
            } else {
                ""
            }
        ),
    });
    rows.push(vec!["requests".to_owned(), requests]);
    if w.replies {
        let payload = w.payload.as_deref();
        let mut replies = match &w.reply_match {
            ReplyMatch::Suffix(s) => {
                format!("tagged with the request's tag followed by {}", code(s))
            }
            ReplyMatch::Carrier(tag) => format!("carried in a frame tagged {}", tag_shown(tag)),
            ReplyMatch::Untagged => "carry no tag; the reply id marks them".to_owned(),
            ReplyMatch::Tag { tag, for_key } => format!(
                "tagged {}, with {} naming the request answered",
                code(tag),
                code(for_key)
            ),
        };
        if let Some(id) = &w.reply_id {
            replies.push_str(&format!(
                "; the answered request's id under {}",
                key_path(id, payload)
            ));
        }
        if let Some(result) = &w.reply_result {
            replies.push_str(&format!("; the result under {}", code(result)));
        }
        rows.push(vec!["replies".to_owned(), replies]);
        rows.push(vec![
            "failures".to_owned(),
            match &w.error {
                ErrorFraming::None => "a request cannot fail".to_owned(),
                ErrorFraming::InReply { path, object } => format!(
                    "the reply holds {} under {} instead of a result",
                    if *object {
                        "an error object (`name`, `message`, ...)"
                    } else {
                        "an error text"
                    },
                    key_path(path, payload)
                ),
                ErrorFraming::Tagged { tag, message } => format!(
                    "a frame tagged {} with the text under {}",
                    code(tag),
                    code(message)
                ),
            },
        ]);
    }
    rows.push(vec![
        "unknown keys".to_owned(),
        if w.strict {
            "refused: a frame holds exactly its envelope's keys, a payload object only its fields"
                .to_owned()
        } else {
            "ignored".to_owned()
        },
    ]);
    if w.batch {
        rows.push(vec![
            "batches".to_owned(),
            "a frame may hold a JSON array of frames, handled in order".to_owned(),
        ]);
    }
    if w.binary_text {
        rows.push(vec![
            "binary frames".to_owned(),
            "read as UTF-8 text, like text frames".to_owned(),
        ]);
    }
    out.push(Block::Table(vec![String::new(), "how".to_owned()], rows));
}

fn sides(p: &Protocol, out: &mut Vec<Block>) {
    if !p.has_named_endpoints() {
        return;
    }
    out.push(Block::Heading(2, "Endpoints and links".to_owned()));
    let rows = p
        .links
        .iter()
        .map(|&(c, s)| vec![code(&p.endpoints[c]), code(&p.endpoints[s])])
        .collect();
    out.push(Block::Table(
        vec!["connects".to_owned(), "accepts".to_owned()],
        rows,
    ));
}

fn names(p: &Protocol, messages: &[usize]) -> String {
    messages
        .iter()
        .filter_map(|&i| p.messages.get(i))
        .map(|m| code(&m.name))
        .collect::<Vec<_>>()
        .join(" or ")
}

fn close_name(p: &Protocol, code_number: u16) -> String {
    match p.close_codes.iter().find(|c| c.code == code_number) {
        Some(c) => format!("{code_number} ({})", c.name),
        None => code_number.to_string(),
    }
}

fn side_word(client: bool) -> &'static str {
    if client { "client" } else { "server" }
}

fn session(p: &Protocol, out: &mut Vec<Block>) {
    let s = &p.session;
    if !s.handshake.is_empty() {
        out.push(Block::Heading(2, "Handshake".to_owned()));
        let rows = s
            .handshake
            .iter()
            .enumerate()
            .map(|(i, step)| {
                let mut notes = Vec::new();
                if step.request {
                    notes.push("a request, answered by its reply".to_owned());
                }
                if let Some(field) = &step.auth_field {
                    notes.push(format!("authenticates with {}", code(field)));
                }
                if let Some(failure) = step.failure {
                    notes.push(format!(
                        "a failed authentication closes with {}",
                        close_name(p, failure)
                    ));
                }
                vec![
                    (i + 1).to_string(),
                    side_word(step.client_sends).to_owned(),
                    names(p, &step.messages),
                    notes.join("; "),
                ]
            })
            .collect();
        out.push(Block::Table(
            vec![
                "step".to_owned(),
                "sender".to_owned(),
                "message".to_owned(),
                "notes".to_owned(),
            ],
            rows,
        ));
        let mut rules = Vec::new();
        if let Some(ms) = s.handshake_timeout_ms {
            rules.push(format!(
                "The handshake must finish within {ms} ms{}.",
                match s.handshake_timeout_code {
                    Some(c) => format!(", else the link closes with {}", close_name(p, c)),
                    None => String::new(),
                }
            ));
        }
        if let Some(c) = s.before_handshake {
            rules.push(format!(
                "Anything else before the handshake finished closes the link with {}{}.",
                close_name(p, c),
                s.before_handshake_reason
                    .as_ref()
                    .map(|r| format!(", reason {r:?}"))
                    .unwrap_or_default()
            ));
        }
        if !rules.is_empty() {
            out.push(Block::Paragraph(rules.join(" ")));
        }
    }
    if !s.heartbeats.is_empty() {
        out.push(Block::Heading(2, "Heartbeat".to_owned()));
        let beat = |b: &Beat| match b {
            Beat::Message(i) => names(p, &[*i]),
            Beat::Text(t) => format!("the text frame {}", code(&format!("{t:?}"))),
        };
        let rows = s
            .heartbeats
            .iter()
            .map(|h| {
                vec![
                    h.variant.clone().unwrap_or_default(),
                    side_word(h.client_pings).to_owned(),
                    beat(&h.ping),
                    h.pong.as_ref().map(beat).unwrap_or_default(),
                    match &h.interval {
                        Interval::Fixed(ms) => format!("{ms} ms"),
                        Interval::FromField(i, field) => {
                            format!("{} of {}, in ms", code(field), names(p, &[*i]))
                        }
                    },
                    format!("{} ms", h.grace_ms),
                    [
                        h.missed.map(|c| format!("server: {}", close_name(p, c))),
                        h.client_missed
                            .map(|c| format!("client: {}", close_name(p, c))),
                    ]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join("; "),
                ]
            })
            .collect();
        out.push(Block::Table(
            [
                "variant",
                "beats",
                "beat",
                "answer",
                "every",
                "grace",
                "silence closes",
            ]
            .map(str::to_owned)
            .to_vec(),
            rows,
        ));
    }
    if let Some(close) = &s.close_message {
        out.push(Block::Heading(2, "Closing".to_owned()));
        out.push(Block::Paragraph(format!(
            "{} {} with the reason under {}{}.",
            if close.sent {
                "The side that closes a link first sends"
            } else {
                "A side receiving it closes the link:"
            },
            names(p, &[close.message]),
            code(&close.reason),
            close
                .code
                .as_ref()
                .map(|c| format!(" and the close code under {}", code(c)))
                .unwrap_or_default()
        )));
    }
    if s.reconnect_min_ms > 0 {
        out.push(Block::Paragraph(format!(
            "A client waits at least {} ms before reconnecting.",
            s.reconnect_min_ms
        )));
    }
}

fn close_codes(p: &Protocol, out: &mut Vec<Block>) {
    if p.close_codes.is_empty() {
        return;
    }
    out.push(Block::Heading(2, "Close codes".to_owned()));
    let rows = p
        .close_codes
        .iter()
        .map(|c| {
            vec![
                c.code.to_string(),
                code(&c.name),
                c.reason.clone(),
                paragraphs(&c.docs).join(" "),
            ]
        })
        .collect();
    out.push(Block::Table(
        ["code", "name", "reason", "meaning"]
            .map(str::to_owned)
            .to_vec(),
        rows,
    ));
}

/// A type as the definition language writes it.
fn type_text(p: &Protocol, ty: &Ty) -> String {
    match ty {
        Ty::Bool => "bool".to_owned(),
        Ty::Int(i) => i.rust().to_owned(),
        Ty::F64 => "f64".to_owned(),
        Ty::String => "string".to_owned(),
        Ty::Any => "any".to_owned(),
        Ty::Array(inner) => format!("[{}]", type_text(p, inner)),
        Ty::Map(inner) => format!("{{string: {}}}", type_text(p, inner)),
        Ty::Nullable(inner) => format!("{} | null", type_text(p, inner)),
        Ty::Const(value) => match value {
            TagValue::Str(s) => format!("{s:?}"),
            TagValue::Int(n) => n.to_string(),
        },
        Ty::Named(i) => p
            .types
            .get(*i)
            .map_or_else(String::new, |t| t.name.trim_start_matches('\0').to_owned()),
    }
}

fn constraint_text(c: &Constraint) -> String {
    let range = |min: Option<String>, max: Option<String>, inclusive: bool| {
        format!(
            "{}{}{}",
            min.unwrap_or_default(),
            if inclusive { "..=" } else { ".." },
            max.unwrap_or_default()
        )
    };
    match c {
        Constraint::Range {
            min,
            max,
            max_inclusive,
        } => range(
            min.map(|n| n.to_string()),
            max.map(|n| n.to_string()),
            *max_inclusive,
        ),
        Constraint::Len {
            min,
            max,
            max_inclusive,
        } => format!(
            "len {}",
            range(
                min.map(|n| n.to_string()),
                max.map(|n| n.to_string()),
                *max_inclusive
            )
        ),
        Constraint::Pattern(pattern) => format!("pattern {pattern:?}"),
    }
}

fn field_rows(p: &Protocol, s: &Struct, positional: bool) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = s
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let name = if positional {
                format!("{i}: {}", code(&f.wire_name))
            } else {
                code(&f.wire_name)
            };
            let absent = f.optional || matches!(p.resolve(&f.ty), Ty::Nullable(_));
            vec![
                name,
                code(&type_text(p, &f.ty)),
                if absent { "no" } else { "yes" }.to_owned(),
                f.constraints
                    .iter()
                    .map(|c| code(&constraint_text(c)))
                    .collect::<Vec<_>>()
                    .join(", "),
                paragraphs(&f.docs).join(" "),
            ]
        })
        .collect();
    if s.rest.is_some() {
        rows.push(vec![
            "any other key".to_owned(),
            code("any"),
            "no".to_owned(),
            String::new(),
            "kept as sent".to_owned(),
        ]);
    }
    rows
}

fn fields_table(p: &Protocol, s: &Struct, positional: bool) -> Block {
    Block::Table(
        ["field", "type", "required", "constraints", "description"]
            .map(str::to_owned)
            .to_vec(),
        field_rows(p, s, positional),
    )
}

fn shape_blocks(p: &Protocol, shape: &Shape, out: &mut Vec<Block>) {
    match shape {
        Shape::Object(s) if s.fields.is_empty() && s.rest.is_none() => {
            out.push(Block::Paragraph("An empty object.".to_owned()));
        }
        Shape::Object(s) => out.push(fields_table(p, s, false)),
        Shape::Positional(s) => {
            out.push(Block::Paragraph(
                "A JSON array, fields by position; trailing optional fields may be left out."
                    .to_owned(),
            ));
            out.push(fields_table(p, s, true));
        }
        Shape::Type(ty) => out.push(Block::Paragraph(format!(
            "A value of type {}.",
            code(&type_text(p, ty))
        ))),
        Shape::Empty => out.push(Block::Paragraph("Nothing.".to_owned())),
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// A frame as JSON, its envelope's keys first (as peers write them), then the payload's.
pub fn frame_text(p: &Protocol, frame: &Value) -> String {
    let Value::Object(map) = frame else {
        return pretty(frame);
    };
    let w = &p.wire;
    let mut first: Vec<&str> = w.sequence.iter().map(String::as_str).collect();
    first.push(&w.tag);
    for framing in [&w.request, &w.event] {
        if let Framing::Carrier { method, .. } = framing {
            first.push(method);
        }
    }
    if let ReplyMatch::Tag { for_key, .. } = &w.reply_match {
        first.push(for_key);
    }
    if let RequestId::Key { key, .. } = &w.request_id {
        first.push(key);
    }
    if let Some(KeyPath::Top(key)) = &w.reply_id {
        first.push(key);
    }
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_by_key(|k| first.iter().position(|f| f == k).unwrap_or(usize::MAX));
    let entries: Vec<String> = keys
        .iter()
        .map(|k| {
            let value = pretty(&map[k.as_str()]).replace('\n', "\n  ");
            format!("  {}: {value}", Value::String((*k).clone()))
        })
        .collect();
    if entries.is_empty() {
        return "{}".to_owned();
    }
    format!("{{\n{}\n}}", entries.join(",\n"))
}

fn messages(p: &Protocol, out: &mut Vec<Block>) {
    out.push(Block::Heading(2, "Messages".to_owned()));
    let examples = examples(p);
    let example = |name: &str, reply: bool| {
        examples
            .iter()
            .find(|e| e.message == name && e.reply == reply)
            .map(|e| Block::Json(frame_text(p, &e.frame)))
    };
    for m in &p.messages {
        let kind = match m.kind {
            Kind::Message => "message",
            Kind::Event => "event",
            Kind::Request => "request",
        };
        let routes: Vec<String> = m
            .directions
            .iter()
            .map(|&(from, to)| format!("{} → {}", p.endpoints[from], p.endpoints[to]))
            .collect();
        out.push(Block::Heading(3, m.name.clone()));
        for paragraph in paragraphs(&m.docs) {
            out.push(Block::Paragraph(paragraph));
        }
        let article = if kind == "event" { "An" } else { "A" };
        let mut facts = format!(
            "{article} {kind}, tag {}, sent {}.",
            tag_shown(&m.tag),
            routes.join(", ")
        );
        if m.session {
            facts.push_str(" The session rules use it.");
        }
        out.push(Block::Paragraph(facts));
        match &m.payload {
            Some(shape) => shape_blocks(p, shape, out),
            None => out.push(Block::Paragraph("No payload.".to_owned())),
        }
        out.extend(example(&m.name, false));
        if m.kind == Kind::Request {
            out.push(Block::Heading(4, format!("Reply to {}", m.name)));
            shape_blocks(p, m.reply.as_ref().unwrap_or(&Shape::Empty), out);
            out.extend(example(&m.name, true));
        }
    }
}

fn types(p: &Protocol, out: &mut Vec<Block>) {
    if p.types.is_empty() {
        return;
    }
    out.push(Block::Heading(2, "Types".to_owned()));
    for t in &p.types {
        out.push(Block::Heading(
            3,
            t.name.trim_start_matches('\0').to_owned(),
        ));
        for paragraph in paragraphs(&t.docs) {
            out.push(Block::Paragraph(paragraph));
        }
        match &t.kind {
            TypeDefKind::Struct(s) => out.push(fields_table(p, s, false)),
            TypeDefKind::Positional(s) => {
                out.push(Block::Paragraph(
                    "A JSON array, fields by position; trailing optional fields may be left out."
                        .to_owned(),
                ));
                out.push(fields_table(p, s, true));
            }
            TypeDefKind::Enum(variants) => out.push(Block::Table(
                vec!["value".to_owned(), "description".to_owned()],
                variants
                    .iter()
                    .map(|(_, wire, docs)| {
                        vec![code(&format!("{wire:?}")), paragraphs(docs).join(" ")]
                    })
                    .collect(),
            )),
            TypeDefKind::Union { tag, variants } => {
                out.push(Block::Paragraph(format!(
                    "An object whose {} names its variant.",
                    code(tag)
                )));
                for (_, wire, docs, s) in variants {
                    out.push(Block::Paragraph(format!(
                        "{} {}",
                        code(&format!("{tag}: {wire:?}")),
                        paragraphs(docs).join(" ")
                    )));
                    out.push(fields_table(p, s, false));
                }
            }
            TypeDefKind::OneOf(members) => out.push(Block::Paragraph(format!(
                "One of: {}, told apart by JSON type.",
                members
                    .iter()
                    .map(|(_, ty)| code(&type_text(p, ty)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
            TypeDefKind::Alias(ty) => out.push(Block::Paragraph(format!(
                "Another name for {}.",
                code(&type_text(p, ty))
            ))),
        }
    }
}

// ---- rendering -------------------------------------------------------------------------------

/// A table cell or paragraph in Markdown: on one line, `|` escaped.
fn markdown_inline(text: &str, in_table: bool) -> String {
    let one_line = text.replace('\n', " ");
    if in_table {
        one_line.replace('|', "\\|")
    } else {
        one_line
    }
}

/// The reference as Markdown.
pub fn markdown(blocks: &[Block]) -> String {
    let mut out = String::new();
    for block in blocks {
        match block {
            Block::Heading(level, text) => {
                out.push_str(&"#".repeat(usize::from(*level)));
                out.push(' ');
                out.push_str(&markdown_inline(text, false));
            }
            Block::Paragraph(text) => out.push_str(&markdown_inline(text, false)),
            Block::Table(header, rows) => {
                let line = |cells: &[String]| {
                    let cells: Vec<String> =
                        cells.iter().map(|c| markdown_inline(c, true)).collect();
                    format!("| {} |", cells.join(" | "))
                };
                out.push_str(&line(header));
                out.push('\n');
                out.push_str(&format!("|{}", "---|".repeat(header.len())));
                for row in rows {
                    out.push('\n');
                    out.push_str(&line(row));
                }
            }
            Block::Json(text) => {
                out.push_str("```json\n");
                out.push_str(text);
                out.push_str("\n```");
            }
        }
        out.push_str("\n\n");
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Inline text as HTML: escaped, with `` `code` `` spans as `<code>`.
fn html_inline(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str("<code>");
            out.push_str(&escape_html(part));
            out.push_str("</code>");
        } else {
            out.push_str(&escape_html(part));
        }
    }
    out
}

/// An id for a heading: its text, lower-cased, with `-` for anything but letters and digits.
fn anchor(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b}\
code,pre{font-family:ui-monospace,monospace;font-size:.9em}\
code{background:#f2f2f2;padding:0 .2em;border-radius:3px}\
pre{background:#f6f6f6;padding:.8rem;overflow:auto;border-radius:4px}\
table{border-collapse:collapse;margin:1rem 0}\
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;vertical-align:top}\
th{background:#f2f2f2}\
h2{border-bottom:1px solid #ddd;margin-top:2.5rem}\
h3{margin-top:2rem}";

/// The reference as one self-contained HTML page (its style inline; no scripts, nothing fetched).
pub fn html(blocks: &[Block]) -> String {
    let title = blocks
        .iter()
        .find_map(|b| match b {
            Block::Heading(1, text) => Some(text.as_str()),
            _ => None,
        })
        .unwrap_or("protocol");
    let mut body = String::new();
    let mut toc = String::new();
    for block in blocks {
        match block {
            Block::Heading(level, text) => {
                let id = anchor(text);
                if *level == 2 {
                    toc.push_str(&format!(
                        "<li><a href=\"#{id}\">{}</a></li>\n",
                        html_inline(text)
                    ));
                }
                body.push_str(&format!(
                    "<h{level} id=\"{id}\">{}</h{level}>\n",
                    html_inline(text)
                ));
                if *level == 1 {
                    body.push_str("<!-- contents -->\n");
                }
            }
            Block::Paragraph(text) => body.push_str(&format!("<p>{}</p>\n", html_inline(text))),
            Block::Table(header, rows) => {
                body.push_str("<table>\n<tr>");
                for cell in header {
                    body.push_str(&format!("<th>{}</th>", html_inline(cell)));
                }
                body.push_str("</tr>\n");
                for row in rows {
                    body.push_str("<tr>");
                    for cell in row {
                        body.push_str(&format!("<td>{}</td>", html_inline(cell)));
                    }
                    body.push_str("</tr>\n");
                }
                body.push_str("</table>\n");
            }
            Block::Json(text) => body.push_str(&format!(
                "<pre><code class=\"language-json\">{}</code></pre>\n",
                escape_html(text)
            )),
        }
    }
    let body = body.replacen(
        "<!-- contents -->\n",
        &format!("<nav><ul>\n{toc}</ul></nav>\n"),
        1,
    );
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        escape_html(title)
    )
}
