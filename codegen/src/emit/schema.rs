//! The JSON Schema emitter: draft 2020-12 schemas of every frame a protocol's sides may send.
//!
//! For each direction of each link (`client-to-server`, `master-to-control`, ...) one schema
//! whose `oneOf` holds a branch per frame the sending side may write: its messages, events and
//! requests, and the replies (results and failures) to the requests it receives. For each message
//! one schema of its frame, and for each request one of its reply frame. Each file stands alone:
//! the named types it uses sit in its `$defs`.
//!
//! The schemas follow what the generated decoders and validators accept, not only what protolink
//! writes: a key holding an `Option` may be absent, request ids may be numbers or strings, a
//! payload that decodes from nothing may be left out. [`constraint_keywords`] is shared with the
//! Rust emitter, which puts the same keywords on the generated types' `JsonSchema`, so the two
//! schemas of a field cannot disagree about its constraints.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::model::*;

/// The JSON Schema dialect every file declares.
pub const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// One schema file: where it goes under the output folder, and its schema.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaFile {
    /// The path under the output folder, `/`-separated: `PROTOCOL/client-to-server.schema.json`,
    /// `PROTOCOL/messages/NAME.schema.json`, `PROTOCOL/messages/NAME.reply.schema.json`.
    pub path: String,
    /// The schema.
    pub schema: Value,
}

impl SchemaFile {
    /// The schema as written to its file: pretty-printed, keys sorted, ending with a newline.
    pub fn text(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.schema).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// The schemas of one protocol, in a fixed order: the directions, then each message's frame and
/// each request's reply, in declaration order.
pub fn render(protocol: &Protocol) -> Vec<SchemaFile> {
    let e = Emitter { p: protocol };
    let mut files = Vec::new();
    for (from, to) in directions(protocol) {
        let name = direction_name(protocol, from, to);
        files.push(SchemaFile {
            path: format!("{}/{name}.schema.json", protocol.name),
            schema: e.document(
                format!("{} frames, {name}", protocol.name),
                e.direction(from, to),
            ),
        });
    }
    for m in &protocol.messages {
        files.push(SchemaFile {
            path: format!("{}/messages/{}.schema.json", protocol.name, m.name),
            schema: e.document(format!("{} {}", protocol.name, m.name), e.message_frame(m)),
        });
        if m.kind == Kind::Request {
            files.push(SchemaFile {
                path: format!("{}/messages/{}.reply.schema.json", protocol.name, m.name),
                schema: e.document(
                    format!("{} {} reply", protocol.name, m.name),
                    e.reply_of(m, true),
                ),
            });
        }
    }
    files
}

/// The schemas of one protocol's frames and types for a document that holds them all (an
/// AsyncAPI document's `components.schemas`): `frame.NAME` for each message's frame,
/// `reply.NAME` for each request's reply frame, and each named type under its `$defs` name.
/// References point at `{prefix}NAME` (`#/components/schemas/NAME`).
pub fn components(protocol: &Protocol, prefix: &str) -> Map<String, Value> {
    let e = Emitter { p: protocol };
    let mut out = Map::new();
    for m in &protocol.messages {
        out.insert(format!("frame.{}", m.name), e.message_frame(m));
        if m.kind == Kind::Request {
            out.insert(format!("reply.{}", m.name), e.reply_of(m, true));
        }
    }
    for t in &protocol.types {
        out.insert(def_name(t).to_owned(), e.type_def(t));
    }
    let mut value = Value::Object(out);
    rebase_refs(&mut value, prefix);
    match value {
        Value::Object(out) => out,
        _ => Map::new(),
    }
}

/// The schema of each message's payload and each request's reply, named as the generated Rust
/// names them (`Open`, `OpenReply`; a reply written `: T` is `T` itself and has none), with
/// references as [`components`] makes them.
pub fn payloads(protocol: &Protocol, prefix: &str) -> Vec<(String, Value)> {
    let e = Emitter { p: protocol };
    let mut out = Vec::new();
    for m in &protocol.messages {
        let docs = description(&m.docs);
        let mut payload = match &m.payload {
            Some(shape) => e.shape(shape),
            None => nothing_schema(protocol.wire.strict),
        };
        if let (Some(object), Some(d)) = (payload.as_object_mut(), docs) {
            object.insert("description".to_owned(), d);
        }
        out.push((m.rust_name.clone(), payload));
        if let Some(reply @ (Shape::Object(_) | Shape::Positional(_))) = &m.reply {
            out.push((format!("{}Reply", m.rust_name), e.shape(reply)));
        }
    }
    for (_, schema) in &mut out {
        rebase_refs(schema, prefix);
    }
    out
}

/// The schema of each message's payload and of each request's declared reply (a reply written
/// `: T` is `T`'s), by message, with references as [`components`] makes them: what a client
/// holds the payloads it sends and receives to. `None` where a message has no payload, or a
/// request no reply.
pub fn message_shapes<'p>(
    protocol: &'p Protocol,
    prefix: &str,
) -> Vec<(&'p Message, Option<Value>, Option<Value>)> {
    let e = Emitter { p: protocol };
    protocol
        .messages
        .iter()
        .map(|m| {
            let mut payload = m.payload.as_ref().map(|shape| e.shape(shape));
            let mut reply = m.reply.as_ref().map(|shape| e.shape(shape));
            for schema in payload.iter_mut().chain(reply.iter_mut()) {
                rebase_refs(schema, prefix);
            }
            (m, payload, reply)
        })
        .collect()
}

/// Points every `#/$defs/NAME` reference at `{prefix}NAME`.
fn rebase_refs(value: &mut Value, prefix: &str) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        if let Some(name) = r.strip_prefix("#/$defs/") {
                            *r = format!("{prefix}{name}");
                        }
                    }
                    (_, v) => rebase_refs(v, prefix),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rebase_refs(v, prefix)),
        _ => {}
    }
}

/// Every link direction as `(sender, receiver)` endpoint indices: each link client to server,
/// then server to client, in declaration order.
pub fn directions(p: &Protocol) -> Vec<(usize, usize)> {
    p.links
        .iter()
        .flat_map(|&(c, s)| [(c, s), (s, c)])
        .collect()
}

/// A direction's name, as its schema file is named: `client-to-server`.
pub fn direction_name(p: &Protocol, from: usize, to: usize) -> String {
    format!("{}-to-{}", p.endpoints[from], p.endpoints[to])
}

/// The `$defs` key of a named type.
pub fn def_name(t: &TypeDef) -> &str {
    &t.rust_name
}

/// The JSON Schema keywords a field's constraints (and a constant type) put on its value:
/// `minimum`/`maximum` (`exclusiveMaximum` for an `f64` below an excluded bound), `minLength`,
/// `minItems` or `minProperties` by the type `len` applies to, `pattern` and `const`.
///
/// Both emitters use this: the schema files, and the `#[schemars(extend(...))]` on the generated
/// types.
pub fn constraint_keywords(
    p: &Protocol,
    ty: &Ty,
    constraints: &[Constraint],
) -> Vec<(String, Value)> {
    let ty = match p.resolve(ty) {
        Ty::Nullable(inner) => p.resolve(&inner),
        other => other,
    };
    let mut out = Vec::new();
    for c in constraints {
        match c {
            Constraint::Range {
                min,
                max,
                max_inclusive,
            } => {
                if let Some(min) = min {
                    out.push(("minimum".to_owned(), json!(min)));
                }
                match (max, *max_inclusive, &ty) {
                    (Some(max), true, _) => out.push(("maximum".to_owned(), json!(max))),
                    (Some(max), false, Ty::F64) => {
                        out.push(("exclusiveMaximum".to_owned(), json!(max)));
                    }
                    (Some(max), false, _) => {
                        out.push(("maximum".to_owned(), json!(max.saturating_sub(1))));
                    }
                    (None, _, _) => {}
                }
            }
            Constraint::Len {
                min,
                max,
                max_inclusive,
            } => {
                let suffix = match &ty {
                    Ty::Array(_) => "Items",
                    Ty::Map(_) => "Properties",
                    _ => "Length",
                };
                if let Some(min) = min {
                    out.push((format!("min{suffix}"), json!(min)));
                }
                if let Some(max) = max {
                    let max = if *max_inclusive {
                        *max
                    } else {
                        max.saturating_sub(1)
                    };
                    out.push((format!("max{suffix}"), json!(max)));
                }
            }
            Constraint::Pattern(pattern) => out.push(("pattern".to_owned(), json!(pattern))),
        }
    }
    if let Ty::Const(value) = &ty {
        out.push(("const".to_owned(), tag_json(value)));
    }
    out
}

fn tag_json(tag: &TagValue) -> Value {
    match tag {
        TagValue::Str(s) => json!(s),
        TagValue::Int(n) => json!(n),
    }
}

fn tag_text(tag: &TagValue) -> String {
    match tag {
        TagValue::Str(s) => s.clone(),
        TagValue::Int(n) => n.to_string(),
    }
}

fn description(docs: &[String]) -> Option<Value> {
    let text = docs.join("\n").trim().to_owned();
    (!text.is_empty()).then_some(Value::String(text))
}

fn with_description(mut schema: Value, docs: &[String]) -> Value {
    if let (Some(object), Some(d)) = (schema.as_object_mut(), description(docs)) {
        object.insert("description".to_owned(), d);
    }
    schema
}

fn with_title(mut schema: Value, title: &str) -> Value {
    if let Some(object) = schema.as_object_mut() {
        object.insert("title".to_owned(), json!(title));
    }
    schema
}

/// An object schema under construction: properties in order, required keys, and whether other
/// keys are refused.
#[derive(Default)]
struct Object {
    properties: Map<String, Value>,
    required: Vec<String>,
    closed: bool,
    /// Keywords beside the object's own (`not`, `allOf`).
    extra: Map<String, Value>,
}

impl Object {
    fn key(&mut self, key: &str, schema: Value, required: bool) {
        self.properties.insert(key.to_owned(), schema);
        if required && !self.required.iter().any(|r| r == key) {
            self.required.push(key.to_owned());
        }
    }

    fn build(self) -> Value {
        let mut out = Map::new();
        out.insert("type".to_owned(), json!("object"));
        if !self.properties.is_empty() {
            out.insert("properties".to_owned(), Value::Object(self.properties));
        }
        if !self.required.is_empty() {
            out.insert("required".to_owned(), json!(self.required));
        }
        if self.closed {
            out.insert("additionalProperties".to_owned(), json!(false));
        }
        out.extend(self.extra);
        Value::Object(out)
    }
}

/// The schema of a request id as a receiver reads it: an `i64` or a string, whatever form the
/// profile's senders write (`text`: strings of 8 hexadecimal digits, as the example says).
fn id_schema(text: bool) -> Value {
    let example = if text { json!("0000002a") } else { json!(42) };
    json!({
        "anyOf": [
            { "type": "integer", "minimum": i64::MIN, "maximum": i64::MAX },
            { "type": "string" }
        ],
        "examples": [example]
    })
}

fn sequence_schema() -> Value {
    json!({ "type": "integer", "minimum": i64::MIN, "maximum": i64::MAX })
}

/// What a message declared without a payload reads: nothing, `null` or an object (with no keys
/// under `strict`).
fn nothing_schema(strict: bool) -> Value {
    if strict {
        json!({ "anyOf": [{ "type": "null" }, { "type": "object", "maxProperties": 0 }] })
    } else {
        json!({ "type": ["null", "object"] })
    }
}

struct Emitter<'a> {
    p: &'a Protocol,
}

impl Emitter<'_> {
    /// A whole file: the dialect, a title, the root schema and the named types it reaches.
    fn document(&self, title: String, root: Value) -> Value {
        let mut out = Map::new();
        out.insert("$schema".to_owned(), json!(DIALECT));
        out.insert("title".to_owned(), json!(title));
        let Value::Object(root) = root else {
            return Value::Object(out);
        };
        for (k, v) in root {
            if k != "title" {
                out.insert(k, v);
            }
        }
        let mut defs = match out.remove("$defs") {
            Some(Value::Object(own)) => own,
            _ => Map::new(),
        };
        defs.extend(self.reachable_defs(&Value::Object(out.clone())));
        defs.extend(self.reachable_defs(&Value::Object(defs.clone())));
        if !defs.is_empty() {
            out.insert("$defs".to_owned(), Value::Object(defs));
        }
        Value::Object(out)
    }

    /// The definitions of every named type `root` reaches, directly or through other types.
    fn reachable_defs(&self, root: &Value) -> Map<String, Value> {
        let mut seen = BTreeSet::new();
        let mut todo = Vec::new();
        refs(root, &mut todo);
        let mut defs = Map::new();
        while let Some(name) = todo.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            if let Some(t) = self.p.types.iter().find(|t| def_name(t) == name) {
                let def = self.type_def(t);
                refs(&def, &mut todo);
                defs.insert(name, def);
            }
        }
        defs
    }

    // ---- types ---------------------------------------------------------------------------

    fn ty(&self, ty: &Ty) -> Value {
        match ty {
            Ty::Bool => json!({ "type": "boolean" }),
            Ty::Int(i) => {
                let (min, max) = i.bounds();
                // i128 bounds of the sized types always fit an i64 or a u64.
                let bound = |n: i128| {
                    i64::try_from(n)
                        .map(Value::from)
                        .or_else(|_| u64::try_from(n).map(Value::from))
                        .unwrap_or(Value::Null)
                };
                json!({ "type": "integer", "minimum": bound(min), "maximum": bound(max) })
            }
            Ty::F64 => json!({ "type": "number" }),
            Ty::String => json!({ "type": "string" }),
            Ty::Any => json!({}),
            Ty::Array(inner) => json!({ "type": "array", "items": self.ty(inner) }),
            Ty::Map(inner) => json!({ "type": "object", "additionalProperties": self.ty(inner) }),
            Ty::Nullable(inner) => json!({ "anyOf": [self.ty(inner), { "type": "null" }] }),
            Ty::Const(TagValue::Str(s)) => json!({ "type": "string", "const": s }),
            Ty::Const(TagValue::Int(n)) => json!({ "type": "integer", "const": n }),
            Ty::Named(i) => {
                json!({ "$ref": format!("#/$defs/{}", def_name(&self.p.types[*i])) })
            }
        }
    }

    /// A value of `ty` under `constraints`: the keywords sit on the non-null part.
    fn constrained(&self, ty: &Ty, constraints: &[Constraint]) -> Value {
        if let Ty::Nullable(inner) = ty {
            if !constraints.is_empty() {
                return json!({ "anyOf": [self.constrained(inner, constraints), { "type": "null" }] });
            }
        }
        let mut schema = self.ty(ty);
        if let Some(object) = schema.as_object_mut() {
            for (key, value) in constraint_keywords(self.p, ty, constraints) {
                object.insert(key, value);
            }
        }
        schema
    }

    /// A field's value. A `T?` key may hold `null` as well, which the decoders read as absent
    /// (serde reads `null` into an `Option` as `None`).
    fn field(&self, f: &Field) -> Value {
        let value = self.constrained(&f.ty, &f.constraints);
        let takes_null = matches!(self.p.resolve(&f.ty), Ty::Any | Ty::Nullable(_));
        let value = if f.optional && !takes_null {
            json!({ "anyOf": [value, { "type": "null" }] })
        } else {
            value
        };
        with_description(value, &f.docs)
    }

    /// Whether a missing key is read as `None` rather than refused (as serde's derive reads an
    /// `Option`).
    fn may_be_absent(&self, f: &Field) -> bool {
        f.optional || matches!(self.p.resolve(&f.ty), Ty::Nullable(_))
    }

    /// The fields of a struct, into an object schema.
    fn add_fields(&self, object: &mut Object, s: &Struct) {
        for f in &s.fields {
            object.key(&f.wire_name, self.field(f), !self.may_be_absent(f));
        }
        object.closed |= self.p.wire.strict && s.rest.is_none();
    }

    fn object(&self, s: &Struct) -> Value {
        let mut object = Object::default();
        self.add_fields(&mut object, s);
        object.build()
    }

    fn positional(&self, s: &Struct) -> Value {
        let items: Vec<Value> = s.fields.iter().map(|f| self.field(f)).collect();
        let least = s.fields.len() - s.fields.iter().rev().take_while(|f| f.optional).count();
        json!({
            "type": "array",
            "prefixItems": items,
            "minItems": least,
            "maxItems": s.fields.len(),
        })
    }

    fn type_def(&self, t: &TypeDef) -> Value {
        let schema = match &t.kind {
            TypeDefKind::Struct(s) => self.object(s),
            TypeDefKind::Positional(s) => self.positional(s),
            TypeDefKind::Enum(variants) => {
                let values: Vec<&str> = variants.iter().map(|(_, wire, _)| wire.as_str()).collect();
                json!({ "type": "string", "enum": values })
            }
            TypeDefKind::Union { tag, variants } => {
                let branches: Vec<Value> = variants
                    .iter()
                    .map(|(_, wire, docs, s)| {
                        let mut object = Object::default();
                        object.key(tag, json!({ "const": wire }), true);
                        self.add_fields(&mut object, s);
                        with_title(with_description(object.build(), docs), wire)
                    })
                    .collect();
                json!({ "oneOf": branches })
            }
            TypeDefKind::OneOf(members) => {
                let members: Vec<Value> = members.iter().map(|(_, ty)| self.ty(ty)).collect();
                json!({ "anyOf": members })
            }
            TypeDefKind::Alias(ty) => self.ty(ty),
        };
        with_description(schema, &t.docs)
    }

    /// Whether a payload of this shape decodes from nothing (a key left out): an object whose
    /// fields may all be absent, a map, `any`, a nullable type, no reply.
    fn decodes_from_nothing(&self, shape: &Shape) -> bool {
        let fields_absent = |s: &Struct| s.fields.iter().all(|f| self.may_be_absent(f));
        match shape {
            Shape::Empty => true,
            Shape::Object(s) | Shape::Positional(s) => fields_absent(s),
            Shape::Type(ty) => match self.p.resolve(ty) {
                Ty::Any | Ty::Nullable(_) | Ty::Map(_) => true,
                Ty::Named(i) => match &self.p.types[i].kind {
                    TypeDefKind::Struct(s) | TypeDefKind::Positional(s) => fields_absent(s),
                    _ => false,
                },
                _ => false,
            },
        }
    }

    fn shape(&self, shape: &Shape) -> Value {
        match shape {
            Shape::Object(s) => self.object(s),
            Shape::Positional(s) => self.positional(s),
            Shape::Type(ty) => self.ty(ty),
            Shape::Empty => json!({
                "anyOf": [{ "type": "null" }, { "type": "object", "maxProperties": 0 }]
            }),
        }
    }

    /// Puts a payload into `frame`: under `key`, or beside the envelope's keys (`None`).
    fn put_payload(&self, frame: &mut Object, key: Option<&str>, shape: Option<&Shape>) {
        match (key, shape) {
            (Some(key), None) => {
                frame.key(key, nothing_schema(self.p.wire.strict), self.p.wire.strict);
            }
            (Some(key), Some(shape)) => {
                let required = self.p.wire.strict || !self.decodes_from_nothing(shape);
                frame.key(key, self.shape(shape), required);
            }
            (None, None) => {}
            (None, Some(shape)) => self.merge_inline(frame, shape),
        }
    }

    /// An object payload beside the envelope's keys: its fields join the frame's; any other
    /// shape must hold as well (`allOf`).
    fn merge_inline(&self, frame: &mut Object, shape: &Shape) {
        let fields = match shape {
            Shape::Empty => return,
            Shape::Object(s) => Some(s),
            Shape::Type(ty) => match self.p.resolve(ty) {
                Ty::Named(i) => match &self.p.types[i].kind {
                    TypeDefKind::Struct(s) => Some(s),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        };
        match fields {
            Some(s) => {
                for f in &s.fields {
                    frame.key(&f.wire_name, self.field(f), !self.may_be_absent(f));
                }
                frame.closed |= self.p.wire.strict && s.rest.is_none();
            }
            None => {
                frame
                    .extra
                    .insert("allOf".to_owned(), json!([self.shape(shape)]));
            }
        }
    }

    // ---- frames --------------------------------------------------------------------------

    /// The frame of a message, event or request.
    fn message_frame(&self, m: &Message) -> Value {
        let wire = &self.p.wire;
        let framing = match m.kind {
            Kind::Message => &Framing::Tagged,
            Kind::Event => &wire.event,
            Kind::Request => &wire.request,
        };
        let mut frame = Object::default();
        if let Some(seq) = &wire.sequence {
            frame.key(seq, sequence_schema(), true);
        }
        let mut payload_key = wire.payload.as_deref();
        match framing {
            Framing::Tagged => frame.key(&wire.tag, json!({ "const": tag_json(&m.tag) }), true),
            Framing::Suffix(suffix) => frame.key(
                &wire.tag,
                json!({ "const": format!("{}{suffix}", tag_text(&m.tag)) }),
                true,
            ),
            Framing::Carrier { tag, method, args } => {
                frame.key(&wire.tag, json!({ "const": tag_json(tag) }), true);
                frame.key(method, json!({ "const": tag_text(&m.tag) }), true);
                payload_key = Some(args);
            }
        }
        if m.kind == Kind::Request {
            if let RequestId::Key {
                key,
                optional,
                text,
            } = &wire.request_id
            {
                frame.key(key, id_schema(*text), !optional);
            }
        }
        self.put_payload(&mut frame, payload_key, m.payload.as_ref());
        if wire.strict && wire.payload.is_some() {
            frame.closed = true;
        }
        with_description(with_title(frame.build(), &m.name), &m.docs)
    }

    /// The frame answering request `m`: its result or a failure; with `own_failure`, the
    /// failure frame of its own too, where failures are framed on their own (a direction lists
    /// that frame once).
    fn reply_of(&self, m: &Message, own_failure: bool) -> Value {
        let mut branches = vec![self.reply_frame(&[m], false)];
        match &self.p.wire.error {
            ErrorFraming::None => {}
            ErrorFraming::Tagged { .. } => {
                if own_failure {
                    branches.push(self.error_frame());
                }
            }
            ErrorFraming::InReply { .. } => branches.push(self.reply_frame(&[m], true)),
        }
        let title = format!("{} reply", m.name);
        match <[Value; 1]>::try_from(branches) {
            Ok([one]) => with_title(one, &title),
            Err(branches) => with_title(json!({ "oneOf": branches }), &title),
        }
    }

    /// A reply frame to one of `requests` (all of them share the envelope): its result, or with
    /// `failure` the failure the reply's error key holds.
    fn reply_frame(&self, requests: &[&Message], failure: bool) -> Value {
        let wire = &self.p.wire;
        let mut frame = Object::default();
        if let Some(seq) = &wire.sequence {
            frame.key(seq, sequence_schema(), true);
        }
        match &wire.reply_match {
            ReplyMatch::Suffix(suffix) => {
                let names: Vec<String> = requests
                    .iter()
                    .map(|m| format!("{}{suffix}", tag_text(&m.tag)))
                    .collect();
                frame.key(&wire.tag, one_const(names), true);
            }
            ReplyMatch::Carrier(tag) => {
                frame.key(&wire.tag, json!({ "const": tag_json(tag) }), true);
            }
            ReplyMatch::Tag { tag, for_key } => {
                frame.key(&wire.tag, json!({ "const": tag }), true);
                let names: Vec<String> = requests.iter().map(|m| tag_text(&m.tag)).collect();
                frame.key(for_key, one_const(names), true);
            }
            ReplyMatch::Untagged => {
                // A frame holding a tag of the tag's type is a message, whatever else it holds.
                let tag_type = if wire.int_tags { "integer" } else { "string" };
                frame.extra.insert(
                    "not".to_owned(),
                    has_key(&wire.tag, json!({ "type": tag_type })),
                );
            }
        }
        let error = match &wire.error {
            ErrorFraming::InReply { path, object } => {
                let schema = if *object {
                    json!({ "not": { "type": "null" } })
                } else {
                    json!({ "type": "string" })
                };
                Some((path, schema))
            }
            _ => None,
        };
        // The object holding the reply's id and error: the frame, or the payload object.
        let mut inner = Object::default();
        let mut in_payload = false;
        let text_ids = matches!(wire.request_id, RequestId::Key { text: true, .. });
        match &wire.reply_id {
            Some(KeyPath::Top(key)) => frame.key(key, id_schema(text_ids), true),
            Some(KeyPath::InPayload(key)) => {
                inner.key(key, id_schema(text_ids), true);
                in_payload = true;
            }
            None => {}
        }
        if let Some((path, schema)) = &error {
            let (holder, key) = match path {
                KeyPath::Top(key) => (&mut frame, key),
                KeyPath::InPayload(key) => {
                    in_payload = true;
                    (&mut inner, key)
                }
            };
            if failure {
                holder.key(key, schema.clone(), true);
            } else {
                holder.extra.insert(
                    "not".to_owned(),
                    has_key(key, json!({ "not": { "type": "null" } })),
                );
            }
        }
        if failure {
            if in_payload {
                if let Some(key) = &wire.payload {
                    frame.key(key, inner.build(), true);
                }
            }
            if wire.strict && wire.payload.is_some() {
                frame.closed = true;
            }
            return with_title(frame.build(), "failure");
        }
        let results: Vec<Value> = requests
            .iter()
            .map(|m| {
                let shape = m.reply.as_ref().unwrap_or(&Shape::Empty);
                let mut frame = Object {
                    properties: frame.properties.clone(),
                    required: frame.required.clone(),
                    closed: frame.closed,
                    extra: frame.extra.clone(),
                };
                if let ReplyMatch::Suffix(_) | ReplyMatch::Tag { .. } = &wire.reply_match {
                    // Each request's own reply tag.
                    self.name_reply(&mut frame, m);
                }
                match (&wire.reply_result, in_payload, &wire.payload) {
                    (Some(key), _, _) => self.put_payload(&mut frame, Some(key), Some(shape)),
                    (None, true, Some(key)) => {
                        let mut object = Object {
                            properties: inner.properties.clone(),
                            required: inner.required.clone(),
                            closed: false,
                            extra: inner.extra.clone(),
                        };
                        self.merge_inline(&mut object, shape);
                        if matches!(shape, Shape::Empty) {
                            object.closed = wire.strict;
                        }
                        frame.key(key, object.build(), true);
                    }
                    (None, _, key) => self.put_payload(&mut frame, key.as_deref(), Some(shape)),
                }
                if wire.strict && wire.payload.is_some() {
                    frame.closed = true;
                }
                with_title(frame.build(), &format!("{} result", m.name))
            })
            .collect();
        match <[Value; 1]>::try_from(results) {
            Ok([one]) => one,
            Err(results) => json!({ "anyOf": results }),
        }
    }

    /// Narrows a reply frame's tag (or `for` key) to request `m`'s.
    fn name_reply(&self, frame: &mut Object, m: &Message) {
        let wire = &self.p.wire;
        match &wire.reply_match {
            ReplyMatch::Suffix(suffix) => frame.key(
                &wire.tag,
                json!({ "const": format!("{}{suffix}", tag_text(&m.tag)) }),
                true,
            ),
            ReplyMatch::Tag { for_key, .. } => {
                frame.key(for_key, json!({ "const": tag_text(&m.tag) }), true);
            }
            _ => {}
        }
    }

    /// A failure framed on its own (`error tag "error", message error`).
    fn error_frame(&self) -> Value {
        let ErrorFraming::Tagged { tag, message } = &self.p.wire.error else {
            return json!(false);
        };
        let mut frame = Object::default();
        frame.key(&self.p.wire.tag, json!({ "const": tag }), true);
        frame.key(message, json!({ "type": "string" }), false);
        with_title(frame.build(), "failure")
    }

    /// Every frame `from` may send to `to`, as one `oneOf`.
    fn direction(&self, from: usize, to: usize) -> Value {
        let mut branches: Vec<Value> = self
            .p
            .messages
            .iter()
            .filter(|m| m.directions.contains(&(from, to)))
            .map(|m| self.message_frame(m))
            .collect();
        // Replies to the requests the receiving side sends.
        let answered: Vec<&Message> = self
            .p
            .messages
            .iter()
            .filter(|m| m.kind == Kind::Request && m.directions.contains(&(to, from)))
            .collect();
        if !answered.is_empty() {
            let wire = &self.p.wire;
            let named = matches!(
                wire.reply_match,
                ReplyMatch::Suffix(_) | ReplyMatch::Tag { .. }
            );
            if named {
                for m in &answered {
                    branches.push(self.reply_of(m, false));
                }
            } else {
                let mut replies = vec![self.reply_frame(&answered, false)];
                if let ErrorFraming::InReply { .. } = wire.error {
                    replies.push(self.reply_frame(&answered, true));
                }
                branches.push(with_title(json!({ "anyOf": replies }), "reply"));
            }
            if let ErrorFraming::Tagged { .. } = wire.error {
                branches.push(self.error_frame());
            }
        }
        if self.p.wire.batch {
            json!({
                "oneOf": [
                    { "$ref": "#/$defs/packet" },
                    { "type": "array", "items": { "$ref": "#/$defs/packet" } }
                ],
                "$defs": { "packet": { "oneOf": branches } }
            })
        } else {
            json!({ "oneOf": branches })
        }
    }
}

/// An object holding `key` with a value under `schema`.
fn has_key(key: &str, schema: Value) -> Value {
    let mut properties = Map::new();
    properties.insert(key.to_owned(), schema);
    json!({ "required": [key], "properties": properties })
}

/// A schema holding exactly one of `values`.
fn one_const(values: Vec<String>) -> Value {
    match <[String; 1]>::try_from(values) {
        Ok([one]) => json!({ "const": one }),
        Err(values) => json!({ "enum": values }),
    }
}

/// Collects the named types `value` refers to (`#/$defs/NAME`).
fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        if let Some(name) = r.strip_prefix("#/$defs/") {
                            out.push(name.to_owned());
                        }
                    }
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}
