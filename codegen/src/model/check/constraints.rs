//! Constraints after `where`: whether they apply to the field's type and can hold.

use super::*;

impl Checker<'_> {
    pub(super) fn constraints(&mut self, list: &[ast::Constraint], ty: &Ty) -> Vec<Constraint> {
        let mut out = Vec::new();
        let base = self.unalias(ty);
        for c in list {
            match &c.kind {
                ast::ConstraintKind::Range(r) => {
                    let bounds = match &base {
                        Ty::Int(int) => Some(int.bounds()),
                        Ty::F64 => None,
                        other => {
                            let help = if matches!(other, Ty::String | Ty::Array(_) | Ty::Map(_)) {
                                "did you mean `len` followed by the range?"
                            } else {
                                "ranges apply to numbers"
                            };
                            self.err(
                                Diagnostic::error(
                                    "E0110",
                                    format!("a range does not apply to {}", self.describe(other)),
                                    c.span,
                                    "not a number",
                                )
                                .with_help(help),
                            );
                            continue;
                        }
                    };
                    if !self.range_holds(r, c.span, bounds) {
                        continue;
                    }
                    out.push(Constraint::Range {
                        min: r.min,
                        max: r.max,
                        max_inclusive: r.max_inclusive,
                    });
                }
                ast::ConstraintKind::Len(r) => {
                    if !matches!(base, Ty::String | Ty::Array(_) | Ty::Map(_)) {
                        self.err(
                            Diagnostic::error(
                                "E0110",
                                format!("`len` does not apply to {}", self.describe(&base)),
                                c.span,
                                "has no length",
                            )
                            .with_help("`len` applies to strings, arrays and maps"),
                        );
                        continue;
                    }
                    if r.min.is_some_and(|m| m < 0) || r.max.is_some_and(|m| m < 0) {
                        self.err(
                            Diagnostic::error(
                                "E0109",
                                "a length cannot be negative",
                                c.span,
                                "negative bound",
                            )
                            .with_help("lengths count from 0; leave the lower bound out for none"),
                        );
                        continue;
                    }
                    if !self.range_holds(r, c.span, Some((0, i128::from(i64::MAX)))) {
                        continue;
                    }
                    out.push(Constraint::Len {
                        min: r.min.and_then(|m| u64::try_from(m).ok()),
                        max: r.max.and_then(|m| u64::try_from(m).ok()),
                        max_inclusive: r.max_inclusive,
                    });
                }
                ast::ConstraintKind::NonEmpty => {
                    if !matches!(base, Ty::String | Ty::Array(_) | Ty::Map(_)) {
                        self.err(
                            Diagnostic::error(
                                "E0110",
                                format!("`non_empty` does not apply to {}", self.describe(&base)),
                                c.span,
                                "has no length",
                            )
                            .with_help("`non_empty` applies to strings, arrays and maps"),
                        );
                        continue;
                    }
                    out.push(Constraint::Len {
                        min: Some(1),
                        max: None,
                        max_inclusive: false,
                    });
                }
                ast::ConstraintKind::Pattern(p) => {
                    if base != Ty::String {
                        self.err(
                            Diagnostic::error(
                                "E0110",
                                format!("`pattern` does not apply to {}", self.describe(&base)),
                                c.span,
                                "not a string",
                            )
                            .with_help("`pattern` applies to strings"),
                        );
                        continue;
                    }
                    if let Err(e) = regex::Regex::new(p) {
                        // The regex crate's message ends with a line `error: what is wrong`.
                        let text = e.to_string();
                        let last = text.lines().last().unwrap_or("invalid").trim();
                        let first = last.strip_prefix("error: ").unwrap_or(last).to_owned();
                        self.err(
                            Diagnostic::error(
                                "E0111",
                                "this pattern is not a valid regular expression",
                                c.span,
                                first,
                            )
                            .with_help("patterns use the syntax of the `regex` crate"),
                        );
                        continue;
                    }
                    out.push(Constraint::Pattern(p.clone()));
                }
            }
        }
        out
    }

    fn range_holds(&mut self, r: &ast::Range, span: Span, bounds: Option<(i128, i128)>) -> bool {
        let min = r.min.map(i128::from);
        let max = r.max.map(|m| i128::from(m) - i128::from(!r.max_inclusive));
        if let (Some(lo), Some(hi)) = (min, max) {
            if lo > hi {
                self.err(Diagnostic::error("E0109", "this range is empty", span, "no value satisfies it")
                    .with_help("the lower bound must be below the upper bound (`..` excludes the end, `..=` includes it)"));
                return false;
            }
        }
        if let Some((tlo, thi)) = bounds {
            if min.is_some_and(|lo| lo > thi) || max.is_some_and(|hi| hi < tlo) {
                self.err(
                    Diagnostic::error(
                        "E0109",
                        "no value of the field's type is in this range",
                        span,
                        "outside the type's range",
                    )
                    .with_help(format!("the type holds {tlo}..={thi}")),
                );
                return false;
            }
        }
        true
    }

    /// A type in words, naming a declared type with its kind: "a string", "the struct `Rules`".
    fn describe(&self, ty: &Ty) -> String {
        let Ty::Named(i) = ty else {
            return describe(ty).to_owned();
        };
        let Some(t) = self.p.types.get(*i) else {
            return describe(ty).to_owned();
        };
        match &t.kind {
            TypeDefKind::Struct(_) | TypeDefKind::Positional(_) => {
                format!("the struct `{}`", t.name)
            }
            TypeDefKind::Enum(_) => format!("the enum `{}`", t.name),
            TypeDefKind::Union { .. } => format!("the union `{}`", t.name),
            TypeDefKind::OneOf(_) if !t.name.starts_with('\0') => format!("the union `{}`", t.name),
            TypeDefKind::OneOf(_) => "a union of types".to_owned(),
            TypeDefKind::Alias(_) => format!("`{}`", t.name),
        }
    }

    /// Follows aliases to the type they name.
    pub(super) fn unalias(&self, ty: &Ty) -> Ty {
        let mut ty = ty.clone();
        for _ in 0..64 {
            match ty {
                Ty::Named(i) => match &self.p.types.get(i).map(|t| &t.kind) {
                    Some(TypeDefKind::Alias(inner)) => ty = inner.clone(),
                    _ => return ty,
                },
                Ty::Nullable(inner) => ty = *inner,
                other => return other,
            }
        }
        ty
    }
}
