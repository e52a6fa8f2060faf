//! A forward-only reader of a frame's top-level object, for the one-pass paths.
//!
//! The envelope of a frame is a handful of short keys with short string or integer values
//! (`"event"`, `"cid"`, `"op"`). Reading those through serde_json's `MapAccess` costs a visitor
//! call and a `Cow` per key; [`Scan`] reads them straight from the bytes and hands every value it
//! does not read itself (the payload, keys to skip) to serde_json at the right offset.
//!
//! It only reads the plain case: keys and string values without escapes, integers without a
//! fraction or exponent. Anything else (an escape, a float where an integer is expected, a
//! malformed frame) makes it return `None`, and the caller falls back to the general path, which
//! reads every valid frame and words every error. So the scanner never needs to be a complete JSON
//! parser, only a correct one for what it accepts: what it accepts, serde_json reads the same way.

use serde::Deserialize;
use serde::de::IgnoredAny;

/// A position in a frame's text.
pub(crate) struct Scan<'a> {
    text: &'a str,
    pos: usize,
    /// Whether the next key is the object's first (no comma before it).
    first: bool,
}

impl<'a> Scan<'a> {
    /// Starts reading `text`, which must hold a JSON object.
    pub(crate) fn object(text: &'a str) -> Option<Self> {
        let mut scan = Scan {
            text,
            pos: 0,
            first: true,
        };
        scan.byte(b'{')?;
        Some(scan)
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes().get(self.pos) {
            self.pos += 1;
        }
    }

    /// Skips whitespace, then reads `b`.
    fn byte(&mut self, b: u8) -> Option<()> {
        self.skip_ws();
        (self.bytes().get(self.pos) == Some(&b)).then(|| self.pos += 1)
    }

    /// The next key of the object and its colon; `Some(None)` at the object's end.
    pub(crate) fn key(&mut self) -> Option<Option<&'a str>> {
        self.skip_ws();
        match self.bytes().get(self.pos)? {
            b'}' => {
                self.pos += 1;
                return Some(None);
            }
            b',' if !self.first => self.pos += 1,
            b'"' if self.first => {}
            _ => return None,
        }
        self.first = false;
        let key = self.string()?;
        self.byte(b':')?;
        Some(Some(key))
    }

    /// A string without escapes.
    pub(crate) fn string(&mut self) -> Option<&'a str> {
        self.byte(b'"')?;
        let bytes = self.bytes();
        let start = self.pos;
        let mut end = start;
        loop {
            match *bytes.get(end)? {
                b'"' => break,
                // An escape, or a control character (invalid in JSON): the general path's.
                b'\\' | 0..0x20 => return None,
                _ => end += 1,
            }
        }
        self.pos = end + 1;
        // Both ends are ASCII bytes, so they are character boundaries.
        self.text.get(start..end)
    }

    /// An integer in `i64`'s range, written without a fraction or an exponent.
    pub(crate) fn int(&mut self) -> Option<i64> {
        self.skip_ws();
        let bytes = self.bytes();
        let negative = bytes.get(self.pos) == Some(&b'-');
        let start = self.pos + usize::from(negative);
        let digits = bytes[start..]
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(bytes.len() - start);
        let end = start + digits;
        // JSON allows no leading zero; a fraction or exponent makes it a float.
        let leading_zero = digits > 1 && bytes[start] == b'0';
        if digits == 0 || leading_zero || matches!(bytes.get(end), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let mut value: i64 = 0;
        for &digit in &bytes[start..end] {
            let digit = i64::from(digit - b'0');
            value = value.checked_mul(10)?;
            value = if negative {
                value.checked_sub(digit)?
            } else {
                value.checked_add(digit)?
            };
        }
        self.pos = end;
        Some(value)
    }

    /// Deserialises the next value as `T` with serde_json, and moves past it.
    pub(crate) fn value<T: Deserialize<'a>>(&mut self) -> Result<T, serde_json::Error> {
        let rest = &self.text[self.pos..];
        let mut values = serde_json::Deserializer::from_str(rest).into_iter::<T>();
        let value = values.next().unwrap_or_else(|| {
            Err(serde::de::Error::custom(
                "the frame ends where a value should be",
            ))
        })?;
        self.pos += values.byte_offset();
        Ok(value)
    }

    /// Skips the next value, checking that it is valid JSON.
    pub(crate) fn skip(&mut self) -> Option<()> {
        self.value::<IgnoredAny>().ok().map(drop)
    }

    /// Whether only whitespace is left (after the object's closing brace).
    pub(crate) fn at_end(&mut self) -> bool {
        self.skip_ws();
        self.pos == self.text.len()
    }

    /// The text from the current position on.
    pub(crate) fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(text: &str) -> Scan<'_> {
        Scan::object(text).expect("the text starts an object")
    }

    #[test]
    fn reads_keys_strings_and_ints() {
        let mut scan = object(r#" { "a" : "x" , "b":-12,"c" :{"d":[1]} } "#);
        assert_eq!(scan.key(), Some(Some("a")));
        assert_eq!(scan.string(), Some("x"));
        assert_eq!(scan.key(), Some(Some("b")));
        assert_eq!(scan.int(), Some(-12));
        assert_eq!(scan.key(), Some(Some("c")));
        assert_eq!(scan.skip(), Some(()));
        assert_eq!(scan.key(), Some(None));
        assert!(scan.at_end());
    }

    #[test]
    fn leaves_what_it_does_not_read_plainly_to_the_general_path() {
        let escaped = r#"{"a\"b": 1}"#;
        assert_eq!(object(escaped).key(), None);
        let control = "{\"a\u{1}\": 1}";
        assert_eq!(object(control).key(), None);
        for int in ["1.5", "1e3", "01", "-", "", "9223372036854775808", "x"] {
            let text = format!(r#"{{"a": {int}}}"#);
            let mut scan = object(&text);
            assert_eq!(scan.key(), Some(Some("a")));
            assert_eq!(scan.int(), None, "{int}");
        }
        let mut scan = object(r#"{"a": -9223372036854775808}"#);
        scan.key();
        assert_eq!(scan.int(), Some(i64::MIN));
        // A comma before the first key, a missing comma, a missing colon.
        for bad in [r#"{,"a":1}"#, r#"{"a":1 "b":2}"#, r#"{"a" 1}"#] {
            let mut scan = object(bad);
            let read = scan.key().and_then(|_| scan.int()).and_then(|_| scan.key());
            assert!(read.is_none(), "{bad}");
        }
        assert!(Scan::object("[1]").is_none());
    }

    #[test]
    fn values_end_where_serde_json_stops() {
        let mut scan = object(r#"{"a": 5, "b": [1, {"c": "}"}], "d": "e"}"#);
        scan.key();
        assert_eq!(scan.value::<u8>().expect("a number"), 5);
        scan.key();
        assert!(scan.skip().is_some());
        assert_eq!(scan.key(), Some(Some("d")));
        assert!(scan.rest().starts_with(r#" "e"}"#));
        let mut truncated = object(r#"{"a": "#);
        truncated.key();
        assert!(truncated.value::<u8>().is_err());
        let mut glued = object(r#"{"a": 5x}"#);
        glued.key();
        assert!(glued.value::<u8>().is_err());
    }
}
