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
    pub fn pattern(&mut self, value: &str, pattern: &Pattern) {
        if !pattern.is_match(value) {
            self.fail(format!("must match the pattern `{}`", pattern.as_str()));
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

/// A definition's `pattern`, compiled once. A pattern that only says which ASCII characters a
/// string is made of, and how many (`^[0-9]+$`, `^[A-Za-z0-9_-]{3,16}$`), is checked byte by
/// byte; any other runs the regex. Snowflake ids and names are checked on every message, and the
/// byte check costs a fraction of the regex engine's set-up per search.
#[derive(Debug, Clone)]
pub struct Pattern {
    regex: regex::Regex,
    class: Option<Class>,
}

/// `^[CLASS]QUANTIFIER$` over ASCII: the characters allowed (a bit each) and the count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Class {
    allowed: u128,
    min: usize,
    max: Option<usize>,
}

impl Pattern {
    /// Compiles `pattern` (regex syntax).
    pub fn new(pattern: &str) -> Result<Pattern, regex::Error> {
        Ok(Pattern {
            regex: regex::Regex::new(pattern)?,
            class: Class::parse(pattern),
        })
    }

    /// Whether `value` matches.
    pub fn is_match(&self, value: &str) -> bool {
        match &self.class {
            Some(class) => class.matches(value),
            None => self.regex.is_match(value),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        self.regex.as_str()
    }
}

impl Class {
    /// The class a pattern of the form `^[...]Q$` stands for, where `[...]` holds ASCII
    /// characters and ranges (no escapes, no negation) and `Q` is `+`, `*`, `{n}`, `{n,}` or
    /// `{n,m}`; `None` for anything else.
    fn parse(pattern: &str) -> Option<Class> {
        let inner = pattern.strip_prefix("^[")?.strip_suffix('$')?;
        let (set, quantifier) = inner.split_once(']')?;
        // `&&`, `--` and `~~` are set operations in a class, not characters.
        let operations = ["&&", "--", "~~"].iter().any(|op| set.contains(op));
        if set.is_empty() || set.starts_with('^') || operations {
            return None;
        }
        let bytes = set.as_bytes();
        let mut allowed = 0u128;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if !literal(b) {
                return None;
            }
            // `a-z` is a range; a `-` first or last is itself.
            if i + 2 < bytes.len() && bytes[i + 1] == b'-' {
                let end = bytes[i + 2];
                if !literal(end) || end < b {
                    return None;
                }
                for c in b..=end {
                    allowed |= 1 << c;
                }
                i += 3;
            } else {
                allowed |= 1 << b;
                i += 1;
            }
        }
        let (min, max) = match quantifier {
            "+" => (1, None),
            "*" => (0, None),
            _ => {
                let counts = quantifier.strip_prefix('{')?.strip_suffix('}')?;
                match counts.split_once(',') {
                    None => {
                        let n = counts.parse().ok()?;
                        (n, Some(n))
                    }
                    Some((min, "")) => (min.parse().ok()?, None),
                    Some((min, max)) => {
                        let (min, max) = (min.parse().ok()?, max.parse().ok()?);
                        if max < min {
                            return None;
                        }
                        (min, Some(max))
                    }
                }
            }
        };
        Some(Class { allowed, min, max })
    }

    fn matches(&self, value: &str) -> bool {
        // Every allowed character is ASCII, so bytes are characters here.
        let n = value.len();
        n >= self.min
            && self.max.is_none_or(|max| n <= max)
            && value
                .bytes()
                .all(|b| b < 128 && self.allowed & (1 << b) != 0)
    }
}

/// A printable ASCII character that stands for itself inside a class (no escapes, no nesting).
fn literal(b: u8) -> bool {
    (b == b' ' || b.is_ascii_graphic()) && !matches!(b, b'\\' | b'[' | b']')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_patterns_are_read_and_others_left_to_the_regex() {
        let class = |p: &str| Class::parse(p);
        assert_eq!(class("^[0-9]+$").map(|c| (c.min, c.max)), Some((1, None)));
        assert_eq!(
            class("^[a-z]{3,16}$").map(|c| (c.min, c.max)),
            Some((3, Some(16)))
        );
        assert_eq!(
            class("^[A-Za-z0-9_-]*$").map(|c| (c.min, c.max)),
            Some((0, None))
        );
        assert_eq!(
            class("^[0-9]{4}$").map(|c| (c.min, c.max)),
            Some((4, Some(4)))
        );
        assert_eq!(
            class("^[0-9]{2,}$").map(|c| (c.min, c.max)),
            Some((2, None))
        );
        for other in [
            "[0-9]+",
            "^[0-9]+",
            "^[^0-9]+$",
            "^[\\d]+$",
            "^[0-9]+x$",
            "^a[0-9]+$",
            "^[]+$",
            "^[9-0]+$",
            "^[0-9]{3,2}$",
            "^[0-9]?$",
            "^[é]+$",
            "^[0-9]+$|^x$",
            "^[a-z&&b]+$",
            "^[a--b]+$",
            "^[a~~b]+$",
        ] {
            assert_eq!(class(other), None, "{other}");
        }
    }

    #[test]
    fn the_byte_check_agrees_with_the_regex() {
        let patterns = [
            "^[0-9]+$",
            "^[A-Za-z0-9_-]+$",
            "^[a-z]{3,5}$",
            "^[-a]*$",
            "^[a-]{2}$",
            "^[ -~]{1,}$",
        ];
        let values = [
            "",
            "0",
            "381870553235193857",
            "12a",
            " 1",
            "1\n",
            "abc",
            "abcdef",
            "ab",
            "a-b",
            "--",
            "-",
            "A_z-9",
            "é",
            "١٢",
            "aaa",
            "a a",
            "~",
            "\u{0}",
            "ab-",
        ];
        for p in patterns {
            let pattern = Pattern::new(p).expect("valid");
            assert!(pattern.class.is_some(), "{p} is a class pattern");
            let regex = regex::Regex::new(p).expect("valid");
            for v in values {
                assert_eq!(pattern.is_match(v), regex.is_match(v), "{p} on {v:?}");
            }
        }
    }
}
