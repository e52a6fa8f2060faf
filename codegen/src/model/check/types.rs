//! Resolving type expressions: aliases, structs, enums, unions, and cycles among them.

use super::*;

impl Checker<'_> {
    pub(super) fn resolve_types(&mut self) {
        for item in &self.file.items {
            let (name, kind) = match item {
                ast::Item::Struct(s) if s.positional => {
                    if s.fields.rest.is_some() {
                        self.err(Diagnostic::error(
                            "E0119",
                            "a positional struct cannot keep other keys",
                            s.fields.span,
                            "`..rest` in `( ... )`",
                        ));
                    }
                    (
                        &s.name,
                        TypeDefKind::Positional(self.fields(&s.fields, &s.name.name)),
                    )
                }
                ast::Item::Struct(s) => (
                    &s.name,
                    TypeDefKind::Struct(self.fields(&s.fields, &s.name.name)),
                ),
                ast::Item::Enum(e) => (&e.name, TypeDefKind::Enum(self.enum_variants(e))),
                ast::Item::Union(u) => (&u.name, self.union(u)),
                ast::Item::Alias(a) => {
                    self.alias_union = Some(a.ty.span);
                    let ty = self.ty(&a.ty, &a.name.name);
                    self.alias_union = None;
                    // `type Channel = string | int` is itself the union enum.
                    let kind = match ty {
                        Ty::Named(i) if self.p.types[i].name.starts_with('\0') => {
                            let synthetic = self.p.types[i].kind.clone();
                            self.p.types.remove(i);
                            synthetic
                        }
                        ty => TypeDefKind::Alias(ty),
                    };
                    (&a.name, kind)
                }
                ast::Item::Message(_) => continue,
            };
            if let Some(&(index, _)) = self.type_names.get(&name.name) {
                if index >= self.own_types {
                    self.p.types[index].kind = kind;
                }
            }
        }
        self.check_alias_cycles();
    }

    fn check_alias_cycles(&mut self) {
        for start in self.own_types..self.p.types.len() {
            let mut chain = vec![start];
            let mut current = start;
            while let TypeDefKind::Alias(Ty::Named(next)) = &self.p.types[current].kind {
                let next = *next;
                if next == start {
                    self.report_alias_cycle(&chain);
                    break;
                }
                if chain.contains(&next) {
                    break; // a cycle that `start` only leads into: reported from one of its members
                }
                chain.push(next);
                current = next;
            }
        }
    }

    /// Reports the aliases of `chain` (each naming the next, the last naming the first) once,
    /// and breaks the cycle so that no other member reports it again.
    fn report_alias_cycle(&mut self, chain: &[usize]) {
        let names: Vec<String> = chain
            .iter()
            .map(|&i| self.p.types[i].name.clone())
            .collect();
        let span_of = |name: &String| {
            self.type_names
                .get(name)
                .map_or(self.decl.span, |&(_, s)| s)
        };
        let headline = match names.as_slice() {
            [one] => format!("the alias `{one}` refers to itself"),
            _ => format!("the aliases {} refer to each other", name_list(&names)),
        };
        let mut d = Diagnostic::error(
            "E0113",
            headline,
            span_of(&names[0]),
            "this alias never reaches a type",
        );
        for (k, name) in names.iter().enumerate().skip(1) {
            let next = &names[(k + 1) % names.len()];
            d = d.with_secondary(span_of(name), format!("`{name}` is `{next}`"));
        }
        self.err(d.with_help("make one of the aliases a struct or a built-in type"));
        for &i in chain {
            self.p.types[i].kind = TypeDefKind::Alias(Ty::Any);
        }
    }

    /// Types holding themselves directly (not through an array or map) have no end. Each cycle
    /// is reported once, at its first type, with the fields that close it.
    pub(super) fn check_struct_cycles(&mut self) {
        /// How a type holds the next one: through a field (of a union variant), or as a whole.
        enum Via {
            Field(Option<String>, String),
            Whole,
        }
        fn direct(ty: &Ty, out: &mut Vec<usize>) {
            match ty {
                Ty::Named(i) => out.push(*i),
                Ty::Nullable(inner) => direct(inner, out),
                _ => {}
            }
        }
        let edges: Vec<Vec<(usize, Via)>> = self
            .p
            .types
            .iter()
            .map(|t| {
                let mut out = Vec::new();
                let mut push = |ty: &Ty, via: &dyn Fn() -> Via| {
                    let mut targets = Vec::new();
                    direct(ty, &mut targets);
                    out.extend(targets.into_iter().map(|t| (t, via())));
                };
                match &t.kind {
                    TypeDefKind::Struct(s) | TypeDefKind::Positional(s) => {
                        s.fields.iter().for_each(|f| {
                            push(&f.ty, &|| Via::Field(None, f.rust_name.clone()));
                        })
                    }
                    TypeDefKind::Union { variants, .. } => variants.iter().for_each(|v| {
                        v.3.fields.iter().for_each(|f| {
                            push(&f.ty, &|| {
                                Via::Field(Some(v.0.clone()), f.rust_name.clone())
                            });
                        })
                    }),
                    TypeDefKind::OneOf(members) => {
                        members.iter().for_each(|(_, ty)| push(ty, &|| Via::Whole))
                    }
                    TypeDefKind::Alias(ty) => push(ty, &|| Via::Whole),
                    TypeDefKind::Enum(_) => {}
                }
                out
            })
            .collect();
        let is_synthetic: Vec<bool> = self
            .p
            .types
            .iter()
            .map(|t| t.name.starts_with('\0'))
            .collect();
        let synthetic = |i: usize| is_synthetic[i];
        let mut reported: BTreeSet<usize> = BTreeSet::new();
        let mut found: Vec<Vec<(usize, usize)>> = Vec::new();
        for start in self.own_types..self.p.types.len() {
            if reported.contains(&start) || synthetic(start) {
                continue;
            }
            // Breadth first, so the shortest cycle through `start` is the one shown.
            let mut parent: HashMap<usize, (usize, usize)> = HashMap::new();
            let mut queue = std::collections::VecDeque::from([start]);
            let mut closing = None;
            'search: while let Some(t) = queue.pop_front() {
                for (k, (next, _)) in edges[t].iter().enumerate() {
                    if *next == start {
                        closing = Some((t, k));
                        break 'search;
                    }
                    if !parent.contains_key(next) {
                        parent.insert(*next, (t, k));
                        queue.push_back(*next);
                    }
                }
            }
            let Some(last) = closing else { continue };
            // The cycle as (type, index of the edge to the next type), from `start`.
            let mut cycle = vec![last];
            let mut at = last.0;
            while at != start {
                let step = parent[&at];
                cycle.push(step);
                at = step.0;
            }
            cycle.reverse();
            reported.extend(cycle.iter().map(|&(t, _)| t));
            found.push(cycle);
        }
        for cycle in found {
            let real: Vec<usize> = cycle
                .iter()
                .map(|&(t, _)| t)
                .filter(|&t| !synthetic(t))
                .collect();
            let names: Vec<String> = real.iter().map(|&t| self.p.types[t].name.clone()).collect();
            let headline = match names.as_slice() {
                [one] => format!("the type `{one}` contains itself"),
                _ => format!("the types {} contain each other", name_list(&names)),
            };
            let span = self
                .type_names
                .get(&names[0])
                .map_or(self.decl.span, |&(_, s)| s);
            let mut d = Diagnostic::error(
                "E0113",
                headline,
                span,
                "a value of this type would never end",
            );
            for (k, &(t, edge)) in cycle.iter().enumerate() {
                if synthetic(t) {
                    continue;
                }
                // The next named type along the cycle (unions of types are passed through).
                let held = cycle
                    .iter()
                    .cycle()
                    .skip(k + 1)
                    .map(|&(n, _)| n)
                    .find(|&n| !synthetic(n))
                    .unwrap_or(t);
                let name = &self.p.types[t].name;
                let label = if held == t {
                    format!("`{name}` holds itself here")
                } else {
                    format!("`{name}` holds `{}` here", self.p.types[held].name)
                };
                let at = match &edges[t][edge].1 {
                    Via::Field(variant, field) => {
                        self.field_type_span(name, variant.as_deref(), field)
                    }
                    Via::Whole => self.field_type_span(name, None, ""),
                };
                if let Some(at) = at {
                    d = d.with_secondary(at, label);
                }
            }
            self.err(d.with_help(
                "break the cycle with an array (`[T]`) or a map (`{string: T}`); `T?` and `T | null` do not break it",
            ));
        }
    }

    /// Where the declaration of the type `name` writes the type of `field` (of the union variant
    /// `variant`, whose Rust name is given), or the whole type of an alias.
    fn field_type_span(&self, name: &str, variant: Option<&str>, field: &str) -> Option<Span> {
        self.file.items.iter().find_map(|item| match item {
            ast::Item::Struct(s) if s.name.name == name => s
                .fields
                .fields
                .iter()
                .find(|f| snake(&f.name.name) == field)
                .map(|f| f.ty.span),
            ast::Item::Union(u) if u.name.name == name => u
                .variants
                .iter()
                .filter(|v| variant.is_none_or(|r| upper_camel(&v.name.name) == r))
                .flat_map(|v| &v.fields.fields)
                .find(|f| snake(&f.name.name) == field)
                .map(|f| f.ty.span),
            ast::Item::Alias(a) if a.name.name == name => Some(a.ty.span),
            _ => None,
        })
    }

    fn enum_variants(&mut self, e: &ast::EnumDecl) -> Vec<(String, String, Vec<String>)> {
        let mut out: Vec<(String, String, Vec<String>)> = Vec::new();
        let mut spans: Vec<Span> = Vec::new();
        for v in &e.variants {
            let wire = rename_of(&v.rename).unwrap_or_else(|| v.name.name.clone());
            let rust = upper_camel(&v.name.name);
            if let Some(first) = out.iter().position(|(r, w, _)| *r == rust || *w == wire) {
                self.err(
                    Diagnostic::error(
                        "E0102",
                        format!("the variant `{}` is declared twice", v.name.name),
                        v.name.span,
                        "declared again here",
                    )
                    .with_secondary(spans[first], "first declared here"),
                );
                continue;
            }
            out.push((rust, wire, v.docs.lines.clone()));
            spans.push(v.name.span);
        }
        // An enum without variants is a syntax error (E0024), already reported by the parser.
        out
    }

    fn union(&mut self, u: &ast::UnionDecl) -> TypeDefKind {
        let tag = match &u.tag.value {
            ast::LitValue::Str(s) => s.clone(),
            ast::LitValue::Int(_) => {
                self.err(Diagnostic::error(
                    "E0131",
                    "a union's tag is a key name",
                    u.tag.span,
                    "expected a string",
                ));
                String::new()
            }
        };
        let mut variants: Vec<(String, String, Vec<String>, Struct)> = Vec::new();
        let mut spans: Vec<Span> = Vec::new();
        for v in &u.variants {
            let wire = rename_of(&v.rename).unwrap_or_else(|| v.name.name.clone());
            let rust = upper_camel(&v.name.name);
            if let Some(first) = variants
                .iter()
                .position(|(r, w, _, _)| *r == rust || *w == wire)
            {
                self.err(
                    Diagnostic::error(
                        "E0102",
                        format!("the variant `{}` is declared twice", v.name.name),
                        v.name.span,
                        "declared again here",
                    )
                    .with_secondary(spans[first], "first declared here"),
                );
                continue;
            }
            spans.push(v.name.span);
            let fields = self.fields(&v.fields, &format!("{}{}", u.name.name, rust));
            if let Some(f) = fields.fields.iter().find(|f| f.wire_name == tag) {
                let span = v
                    .fields
                    .fields
                    .iter()
                    .find(|a| rename_of(&a.rename).unwrap_or_else(|| a.name.name.clone()) == tag)
                    .map_or(v.fields.span, |a| a.span);
                self.err(
                    Diagnostic::error(
                        "E0108",
                        format!(
                            "the field `{}` has the same wire name as the union's tag",
                            f.wire_name
                        ),
                        span,
                        "clashes with the tag",
                    )
                    .with_secondary(u.tag.span, "the tag key")
                    .with_help("give the field another wire name with `as \"...\"`"),
                );
            }
            variants.push((rust, wire, v.docs.lines.clone(), fields));
        }
        TypeDefKind::Union { tag, variants }
    }

    pub(super) fn fields(&mut self, fields: &ast::Fields, owner: &str) -> Struct {
        let mut out = Struct::default();
        let mut rust_seen: HashMap<String, Span> = HashMap::new();
        let mut wire_seen: HashMap<String, Span> = HashMap::new();
        for f in &fields.fields {
            let wire = rename_of(&f.rename).unwrap_or_else(|| f.name.name.clone());
            let rust = snake(&f.name.name);
            if let Some(&first) = rust_seen.get(&rust) {
                self.err(
                    Diagnostic::error(
                        "E0107",
                        format!("the field `{}` is declared twice", f.name.name),
                        f.name.span,
                        "declared again here",
                    )
                    .with_secondary(first, "first declared here"),
                );
                continue;
            }
            if let Some(&first) = wire_seen.get(&wire) {
                self.err(
                    Diagnostic::error(
                        "E0108",
                        format!("two fields have the wire name `{wire}`"),
                        f.span,
                        "conflicting wire name",
                    )
                    .with_secondary(first, "also written as this key")
                    .with_help("give one of them another name with `as \"...\"`"),
                );
                continue;
            }
            rust_seen.insert(rust.clone(), f.name.span);
            wire_seen.insert(wire.clone(), f.span);
            let (ty_expr, optional) = match &f.ty.kind {
                ast::TypeKind::Optional(inner) => (&**inner, true),
                _ => (&f.ty, false),
            };
            let reported = self.diags.count();
            let ty = self.ty(ty_expr, &format!("{owner}_{}", f.name.name));
            // A type that failed to resolve would make every constraint on it look misplaced.
            let constraints = if self.diags.count() == reported {
                self.constraints(&f.constraints, &ty)
            } else {
                Vec::new()
            };
            out.fields.push(Field {
                span: f.name.span,
                wire_name: wire,
                rust_name: rust,
                docs: f.docs.lines.clone(),
                ty,
                optional,
                constraints,
            });
        }
        if let Some(rest) = &fields.rest {
            let rust = snake(&rest.name);
            if let Some(&first) = rust_seen.get(&rust) {
                self.err(
                    Diagnostic::error(
                        "E0107",
                        format!("the field `{}` is declared twice", rest.name),
                        rest.span,
                        "the rest field has the name of a field",
                    )
                    .with_secondary(first, "the field")
                    .with_help("name the rest field after what it keeps, such as `..extra`"),
                );
            } else {
                out.rest = Some(rust);
            }
        }
        out
    }

    pub(super) fn ty(&mut self, t: &ast::TypeExpr, owner: &str) -> Ty {
        match &t.kind {
            ast::TypeKind::Named(id) => self.named(id),
            ast::TypeKind::Null => {
                self.err(
                    Diagnostic::error(
                        "E0130",
                        "`null` alone is not a useful type",
                        t.span,
                        "only `null` fits here",
                    )
                    .with_help("write `T | null` for a value that may be null"),
                );
                Ty::Any
            }
            ast::TypeKind::Const(lit) => Ty::Const(match &lit.value {
                ast::LitValue::Str(s) => TagValue::Str(s.clone()),
                ast::LitValue::Int(n) => TagValue::Int(*n),
            }),
            ast::TypeKind::Array(inner) => Ty::Array(Box::new(self.inner_ty(inner, owner))),
            ast::TypeKind::Map(inner) => Ty::Map(Box::new(self.inner_ty(inner, owner))),
            ast::TypeKind::Optional(_) => self.inner_ty(t, owner),
            ast::TypeKind::Union(members) => self.union_ty(members, t.span, owner),
        }
    }

    /// A type where `?` cannot apply (array items, map values, union members).
    fn inner_ty(&mut self, t: &ast::TypeExpr, owner: &str) -> Ty {
        if let ast::TypeKind::Optional(inner) = &t.kind {
            self.err(
                Diagnostic::error(
                    "E0123",
                    "only a field's key can be absent",
                    t.span,
                    "`?` cannot apply here",
                )
                .with_help("write `T | null` for a value that may be null"),
            );
            return self.ty(inner, owner);
        }
        self.ty(t, owner)
    }

    fn union_ty(&mut self, members: &[ast::TypeExpr], span: Span, owner: &str) -> Ty {
        let nulls = members
            .iter()
            .filter(|m| m.kind == ast::TypeKind::Null)
            .count();
        let rest: Vec<&ast::TypeExpr> = members
            .iter()
            .filter(|m| m.kind != ast::TypeKind::Null)
            .collect();
        let inner = match rest.as_slice() {
            [] => {
                self.err(
                    Diagnostic::error(
                        "E0130",
                        "`null | null` is not a useful type",
                        span,
                        "only `null`",
                    )
                    .with_help("write `T | null` for a value that may be null"),
                );
                return Ty::Any;
            }
            [single] => self.inner_ty(single, owner),
            many => {
                // The alias's own union (`type Channel = string | i64`) takes the alias's name;
                // any other union gets a name from where it sits, and must claim it.
                // With `| null` the alias is an `Option` of the union, which needs a name of its own.
                let alias_top = self.alias_union.take() == Some(span);
                let own_alias = alias_top && nulls == 0;
                let mut variants: Vec<(String, Ty)> = Vec::new();
                let mut spans: Vec<Span> = Vec::new();
                for m in many {
                    let ty = self.inner_ty(m, owner);
                    let (name, json) = match &ty {
                        Ty::String => ("String".to_owned(), "string"),
                        Ty::Int(_) => ("Int".to_owned(), "number"),
                        Ty::F64 => ("Float".to_owned(), "number"),
                        Ty::Bool => ("Bool".to_owned(), "boolean"),
                        Ty::Array(_) => ("List".to_owned(), "array"),
                        Ty::Map(_) => ("Map".to_owned(), "object"),
                        Ty::Named(i) => (self.p.types[*i].rust_name.clone(), "object"),
                        Ty::Any => {
                            self.err(Diagnostic::error("E0127", "`any` cannot be a member of a union", m.span, "matches every JSON value")
                                .with_help("the other members could never be told apart from it: use `any` alone"));
                            continue;
                        }
                        Ty::Const(_) => {
                            self.err(Diagnostic::error("E0127", "a constant cannot be a member of a union", m.span, "a constant")
                                .with_help("unions match by JSON type only; for a set of fixed strings, declare an `enum`"));
                            continue;
                        }
                        Ty::Nullable(_) => {
                            self.err(
                                Diagnostic::error(
                                    "E0127",
                                    "a nullable type cannot be a member of a union",
                                    m.span,
                                    "may be `null`",
                                )
                                .with_help("write `| null` once, on the whole union"),
                            );
                            continue;
                        }
                    };
                    let same = variants.iter().position(|(n, t)| {
                        *n == name
                            || (json != "object"
                                && json_kind(t) == json
                                && !matches!(
                                    (t, &ty),
                                    (Ty::Int(_), Ty::F64) | (Ty::F64, Ty::Int(_))
                                ))
                    });
                    if let Some(first) = same {
                        let kind = if name == variants[first].0 && json == "object" {
                            format!("`{name}`")
                        } else {
                            format!("a JSON {}", json_kind(&ty))
                        };
                        self.err(Diagnostic::error("E0127", "two members of this union have the same JSON type", m.span, format!("also {kind}"))
                            .with_secondary(spans[first], format!("{kind} here"))
                            .with_help("unions match by JSON type: use at most one string, one integer, one array..."));
                        continue;
                    }
                    // Members are tried in order, and `f64` accepts integers too.
                    if let (Ty::Int(_), Some(float)) =
                        (&ty, variants.iter().position(|(_, t)| *t == Ty::F64))
                    {
                        self.err(
                            Diagnostic::error(
                                "E0127",
                                "an integer member after `f64` is never matched",
                                m.span,
                                "never matched",
                            )
                            .with_secondary(spans[float], "matches every number, integers too")
                            .with_help("write the integer type before `f64`"),
                        );
                        continue;
                    }
                    variants.push((name, ty));
                    spans.push(m.span);
                }
                let name = upper_camel(owner);
                let index = self.p.types.len();
                // A name starting with NUL marks a synthetic type until an alias claims it.
                self.p.types.push(TypeDef {
                    span,
                    name: format!("\0{name}"),
                    rust_name: name.clone(),
                    docs: Vec::new(),
                    kind: TypeDefKind::OneOf(variants),
                });
                if alias_top && !own_alias {
                    // `type Score = string | i64 | null`: `Score` is the `Option`, and the enum
                    // inside it would be called `Score` too.
                    self.err(
                        Diagnostic::error(
                            "E0124",
                            format!("the union inside `{owner}` needs a Rust name of its own"),
                            span,
                            format!("`{name}` is an `Option` of this union"),
                        )
                        .with_help(format!(
                            "declare the union without `null`, as in `type {name}Value = ...`, then write `type {owner} = {name}Value | null`"
                        )),
                    );
                } else if !own_alias {
                    match self.taken_by(&name) {
                        Some((first, label)) => {
                            let mut d = Diagnostic::error(
                                "E0124",
                                format!(
                                    "this union becomes the Rust type `{name}`, which is already taken"
                                ),
                                span,
                                "clashes in Rust",
                            );
                            d = match first {
                                Some(first) => d.with_secondary(first, label),
                                None => d.with_note(label),
                            };
                            self.err(d.with_help(
                                "declare the union as a named type, `type Name = A | B`, and use its name here",
                            ));
                        }
                        None => {
                            let label = format!("a union here becomes `{name}`");
                            self.rust_names.insert(name, (span, label));
                        }
                    }
                }
                Ty::Named(index)
            }
        };
        if nulls > 0 {
            Ty::Nullable(Box::new(inner))
        } else {
            inner
        }
    }

    fn named(&mut self, id: &ast::Ident) -> Ty {
        match id.name.as_str() {
            "bool" => Ty::Bool,
            "i8" => Ty::Int(IntType::I8),
            "i16" => Ty::Int(IntType::I16),
            "i32" => Ty::Int(IntType::I32),
            "i64" | "int" => Ty::Int(IntType::I64),
            "u8" => Ty::Int(IntType::U8),
            "u16" => Ty::Int(IntType::U16),
            "u32" => Ty::Int(IntType::U32),
            "u64" => Ty::Int(IntType::U64),
            "f64" => Ty::F64,
            "string" => Ty::String,
            "any" => Ty::Any,
            name => match self.type_names.get(name) {
                Some(&(index, _)) => Ty::Named(index),
                None => {
                    let mut d = Diagnostic::error(
                        "E0101",
                        format!("unknown type `{name}`"),
                        id.span,
                        "not a type in this protocol",
                    );
                    let candidates: Vec<String> = BUILTINS
                        .iter()
                        .map(|s| s.to_string())
                        .chain(self.type_names.keys().cloned())
                        .collect();
                    d = match did_you_mean(name, candidates.iter().map(String::as_str)) {
                        Some(s) => d.with_help(format!("a type with a similar name exists: `{s}`")),
                        None => d.with_help("declare it with `struct`, `enum`, `union` or `type`, or use a built-in type"),
                    };
                    self.err(d);
                    Ty::Any
                }
            },
        }
    }
}
