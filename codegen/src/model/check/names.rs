//! Declaring types and claiming the Rust names they and the generator use.

use super::*;

impl Checker<'_> {
    pub(super) fn declare_types(&mut self) {
        for item in &self.file.items {
            let (name, docs) = match item {
                ast::Item::Struct(s) => (&s.name, &s.docs),
                ast::Item::Enum(e) => (&e.name, &e.docs),
                ast::Item::Union(u) => (&u.name, &u.docs),
                ast::Item::Alias(a) => (&a.name, &a.docs),
                ast::Item::Message(_) => continue,
            };
            if BUILTINS.contains(&name.name.as_str()) || name.name == "null" {
                self.err(Diagnostic::error(
                    "E0102",
                    format!("`{}` is a built-in type", name.name),
                    name.span,
                    "cannot be redeclared",
                ));
                continue;
            }
            if let Some(&(_, first)) = self.type_names.get(&name.name) {
                self.err(
                    Diagnostic::error(
                        "E0102",
                        format!("the type `{}` is declared twice", name.name),
                        name.span,
                        "declared again here",
                    )
                    .with_secondary(first, "first declared here"),
                );
                continue;
            }
            let rust_name = upper_camel(&name.name);
            if !self.claim_rust_name(&rust_name, name) {
                continue;
            }
            self.type_names
                .insert(name.name.clone(), (self.p.types.len(), name.span));
            self.p.types.push(TypeDef {
                span: name.span,
                name: name.name.clone(),
                rust_name,
                docs: docs.lines.clone(),
                kind: TypeDefKind::Alias(Ty::Any),
            });
        }
    }

    /// The Rust names the generator declares in the protocol's module besides the user's types
    /// and messages, each with what it is for.
    pub(super) fn generated_names(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = vec![
            ("CloseCode".into(), "the generator's close-code enum".into()),
            (
                upper_camel(&self.p.name),
                format!("the marker type of the protocol `{}`", self.p.name),
            ),
        ];
        // Always reserved, so that adding `endpoints` later cannot break a protocol.
        for name in RESERVED {
            if !out.iter().any(|(n, _)| n == name) {
                out.push((
                    name.to_string(),
                    "a name of the generated client/server sides".into(),
                ));
            }
        }
        let named = self.p.has_named_endpoints();
        let camel: Vec<String> = self.p.endpoints.iter().map(|e| upper_camel(e)).collect();
        for &(client, server) in &self.p.links {
            for (me, peer) in [(client, server), (server, client)] {
                let (me_camel, peer_camel) = (&camel[me], &camel[peer]);
                let (me, peer) = (&self.p.endpoints[me], &self.p.endpoints[peer]);
                let side = if named {
                    format!("{me_camel}With{peer_camel}")
                } else {
                    me_camel.clone()
                };
                for (name, what) in [
                    (
                        side.clone(),
                        format!("the marker of the `{me}` side of its link with `{peer}`"),
                    ),
                    (
                        format!("{side}Handler"),
                        format!("the handler trait of the `{me}` side"),
                    ),
                    (
                        format!("{side}Sender"),
                        format!("the sender trait of the `{me}` side"),
                    ),
                    (
                        format!("{me_camel}To{peer_camel}"),
                        format!("the enum of everything `{me}` sends to `{peer}`"),
                    ),
                ] {
                    if !out.iter().any(|(n, _)| *n == name) {
                        out.push((name, what));
                    }
                }
            }
        }
        out
    }

    /// What already has the Rust name `rust`: a place and a label, or a note for the names the
    /// generator uses.
    pub(super) fn taken_by(&self, rust: &str) -> Option<(Option<Span>, String)> {
        match self.generated.iter().find(|(n, _)| n == rust) {
            Some((_, what)) => Some((None, format!("`{rust}` is {what}"))),
            None => self
                .rust_names
                .get(rust)
                .map(|(span, label)| (Some(*span), label.clone())),
        }
    }

    pub(super) fn claim_rust_name(&mut self, rust: &str, name: &ast::Ident) -> bool {
        self.claim_rust_name_for(rust, &name.name, name.span)
    }

    /// Claims the Rust name `rust`, which `name` (written at `span`) becomes in the module.
    fn claim_rust_name_for(&mut self, rust: &str, name: &str, span: Span) -> bool {
        if let Some((_, what)) = self.generated.iter().find(|(n, _)| n == rust) {
            let headline = if name == rust {
                format!("`{name}` is a name the generator uses itself")
            } else {
                format!("`{name}` becomes `{rust}`, a name the generator uses itself")
            };
            let d = Diagnostic::error("E0124", headline, span, "reserved in generated code")
                .with_note(format!("`{rust}` is {what}"))
                .with_help("rename it");
            self.err(d);
            return false;
        }
        if let Some((first, label)) = self.rust_names.get(rust).cloned() {
            let headline = if name == rust {
                format!("the Rust name `{rust}` is already taken")
            } else {
                format!("`{name}` becomes the Rust name `{rust}`, which is already taken")
            };
            self.err(
                Diagnostic::error("E0124", headline, span, "clashes in Rust")
                    .with_secondary(first, label)
                    .with_help("rename one of them"),
            );
            return false;
        }
        let label = if name == rust {
            "taken here".to_owned()
        } else {
            format!("`{name}` becomes `{rust}` here")
        };
        self.rust_names.insert(rust.to_owned(), (span, label));
        true
    }
}
