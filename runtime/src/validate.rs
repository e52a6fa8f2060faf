//! Validation of decoded values against the constraints of their definition.
//!
//! Generated types implement [`Validate`]; their errors name the field path (`list[2].name`) and
//! the rule that failed (`length must be at least 1`).

use std::fmt;

/// One constraint that does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// Where: a dotted path from the message, such as `output.message` or `list[2].id`.
    pub path: String,
    /// What was required, such as `must be at least 1`.
    pub rule: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.rule)
        } else {
            write!(f, "`{}` {}", self.path, self.rule)
        }
    }
}

/// Every constraint that failed in one value.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors {
    /// The failures, in field order.
    pub errors: Vec<ValidationError>,
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A value whose definition declares constraints.
pub trait Validate {
    /// Checks every constraint, reporting failures into `v` at its current path.
    fn validate_into(&self, v: &mut Validator);

    /// Checks every constraint.
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut v = Validator::default();
        self.validate_into(&mut v);
        v.finish()
    }
}

/// Collects failures while walking a value; keeps the path to the current field.
#[derive(Debug, Default)]
pub struct Validator {
    path: Vec<PathPart>,
    errors: Vec<ValidationError>,
}

#[derive(Debug)]
enum PathPart {
    Field(&'static str),
    Index(usize),
    Key(String),
}

impl Validator {
    /// Runs `f` with `name` appended to the path.
    pub fn field(&mut self, name: &'static str, f: impl FnOnce(&mut Self)) {
        self.path.push(PathPart::Field(name));
        f(self);
        self.path.pop();
    }

    /// Runs `f` with `[index]` appended to the path.
    pub fn index(&mut self, index: usize, f: impl FnOnce(&mut Self)) {
        self.path.push(PathPart::Index(index));
        f(self);
        self.path.pop();
    }

    /// Runs `f` with `[key]` appended to the path.
    pub fn key(&mut self, key: &str, f: impl FnOnce(&mut Self)) {
        self.path.push(PathPart::Key(key.to_owned()));
        f(self);
        self.path.pop();
    }

    /// Records a failed rule at the current path.
    pub fn fail(&mut self, rule: impl Into<String>) {
        let mut path = String::new();
        for part in &self.path {
            match part {
                PathPart::Field(name) => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(name);
                }
                PathPart::Index(i) => path.push_str(&format!("[{i}]")),
                PathPart::Key(k) => path.push_str(&format!("[{k:?}]")),
            }
        }
        self.errors.push(ValidationError {
            path,
            rule: rule.into(),
        });
    }

    /// Checks an integer range; `max_inclusive` says whether `max` itself is allowed.
    pub fn range(
        &mut self,
        value: i128,
        min: Option<i128>,
        max: Option<i128>,
        max_inclusive: bool,
    ) {
        if let Some(min) = min {
            if value < min {
                self.fail(format!("must be at least {min}"));
            }
        }
        if let Some(max) = max {
            if max_inclusive && value > max {
                self.fail(format!("must be at most {max}"));
            } else if !max_inclusive && value >= max {
                self.fail(format!("must be less than {max}"));
            }
        }
    }

    /// Checks a range on a float; bounds are integers in the definition language.
    pub fn range_f64(
        &mut self,
        value: f64,
        min: Option<i64>,
        max: Option<i64>,
        max_inclusive: bool,
    ) {
        // Bounds come from i64 literals; the conversion may round far from zero, which is fine
        // for bounds written by hand.
        let (lo, hi) = (min.map(|m| m as f64), max.map(|m| m as f64));
        if value.is_nan() {
            self.fail("must be a number");
            return;
        }
        if let Some(min) = lo {
            if value < min {
                self.fail(format!("must be at least {}", min));
            }
        }
        if let Some(max) = hi {
            if max_inclusive && value > max {
                self.fail(format!("must be at most {}", max));
            } else if !max_inclusive && value >= max {
                self.fail(format!("must be less than {}", max));
            }
        }
    }

    /// Checks a length (chars of a string, items of an array, entries of a map).
    pub fn len(&mut self, len: usize, min: Option<usize>, max: Option<usize>, max_inclusive: bool) {
        if let Some(min) = min {
            if len < min {
                if min == 1 {
                    self.fail("must not be empty");
                } else {
                    self.fail(format!("length must be at least {min}"));
                }
            }
        }
        if let Some(max) = max {
            if max_inclusive && len > max {
                self.fail(format!("length must be at most {max}"));
            } else if !max_inclusive && len >= max {
                self.fail(format!("length must be less than {max}"));
            }
        }
    }

    /// Checks a string against a pattern compiled once per call site.
    pub fn pattern(&mut self, value: &str, regex: &regex::Regex) {
        if !regex.is_match(value) {
            self.fail(format!("must match the pattern `{}`", regex.as_str()));
        }
    }

    /// The failures so far.
    pub fn finish(self) -> Result<(), ValidationErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors {
                errors: self.errors,
            })
        }
    }
}

macro_rules! no_constraints {
    ($($t:ty),*) => {$(
        impl Validate for $t {
            fn validate_into(&self, _: &mut Validator) {}
        }
    )*};
}
no_constraints!(
    bool,
    i8,
    i16,
    i32,
    i64,
    u8,
    u16,
    u32,
    u64,
    f64,
    String,
    serde_json::Value,
    crate::Empty
);

impl<T: Validate> Validate for Option<T> {
    fn validate_into(&self, v: &mut Validator) {
        if let Some(inner) = self {
            inner.validate_into(v);
        }
    }
}

impl<T: Validate> Validate for Vec<T> {
    fn validate_into(&self, v: &mut Validator) {
        for (i, item) in self.iter().enumerate() {
            v.index(i, |v| item.validate_into(v));
        }
    }
}

impl<T: Validate> Validate for std::collections::BTreeMap<String, T> {
    fn validate_into(&self, v: &mut Validator) {
        for (key, item) in self {
            v.key(key, |v| item.validate_into(v));
        }
    }
}

impl<T: Validate> Validate for Box<T> {
    fn validate_into(&self, v: &mut Validator) {
        (**self).validate_into(v);
    }
}
