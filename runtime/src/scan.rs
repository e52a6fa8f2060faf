//! A forward-only reader of JSON text, for the one-pass paths.
//!
//! The envelope of a frame is a handful of short keys with short string or integer values
//! (`"event"`, `"cid"`, `"op"`), and most payloads are small objects of strings, integers and
//! booleans. Reading those through serde_json's `MapAccess` costs a visitor call and a `Cow` per
//! key; [`Scan`] reads them straight from the bytes, and generated payload types read themselves
//! from it ([`ScanDecode`]). Every value it does not read itself (an escaped string, a float, an
//! `any` value, a key to skip) goes to serde_json at the right offset.
//!
//! It reads the plain case itself: strings without escapes, integers without a fraction or
//! exponent, `true`, `false` and `null`; escaped keys and strings, and other numbers, it hands to
//! serde_json. Anything it cannot read as serde would (a repeated field, `-0` or a float where an
//! integer belongs, nesting deeper than 64, a malformed frame) makes it return `None`, and the
//! caller falls back to the general path, which reads every valid frame and words every error.
//! So the scanner never needs to be a complete JSON parser, only a correct one for what it
//! accepts: what it accepts, serde_json reads the same way, into the same value.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;

/// How deep objects and arrays may nest before the scanner leaves the frame to serde_json (whose
/// own limit, 128, then applies).
const MAX_DEPTH: u32 = 64;

/// A position in a frame's text.
#[derive(Debug, Clone)]
pub struct Scan<'a> {
    text: &'a str,
    pos: usize,
    /// Whether the next key or element is its container's first (no comma before it).
    first: bool,
    /// Objects and arrays open around the position.
    depth: u32,
}

impl<'a> Scan<'a> {
    /// Starts reading `text`, which must hold a JSON object; `None` when it does not start one.
    pub fn object(text: &'a str) -> Option<Self> {
        let mut scan = Scan {
            text,
            pos: 0,
            first: true,
            depth: 0,
        };
        scan.open()?;
        Some(scan)
    }

    #[inline]
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    #[inline]
    fn skip_ws(&mut self) {
        self.pos = skip_ws(self.bytes(), self.pos);
    }

    /// Skips whitespace, then the next byte, which must be `b`.
    #[inline]
    fn byte(&mut self, b: u8) -> Option<()> {
        self.skip_ws();
        (self.bytes().get(self.pos) == Some(&b)).then(|| self.pos += 1)
    }

    /// Enters an object: reads its `{`.
    #[inline]
    pub fn open(&mut self) -> Option<()> {
        self.enter(b'{')
    }

    /// Enters an array: reads its `[`.
    #[inline]
    pub fn open_array(&mut self) -> Option<()> {
        self.enter(b'[')
    }

    #[inline]
    fn enter(&mut self, b: u8) -> Option<()> {
        if self.depth == MAX_DEPTH {
            return None;
        }
        self.byte(b)?;
        self.depth += 1;
        self.first = true;
        Some(())
    }

    /// Leaves a container at its closing byte, which was just read. Its parent is past its
    /// first key or element, since this container is one.
    #[inline]
    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
        self.first = false;
    }

    /// The next key of the object entered last, and its colon; `Some(None)` at the object's end,
    /// which it reads. A key with escapes is unescaped by serde_json.
    #[inline]
    pub fn key(&mut self) -> Option<Option<Cow<'a, str>>> {
        let bytes = self.bytes();
        let mut pos = skip_ws(bytes, self.pos);
        match *bytes.get(pos)? {
            b'}' => {
                self.pos = pos + 1;
                self.leave();
                return Some(None);
            }
            b',' if !self.first => pos = skip_ws(bytes, pos + 1),
            b'"' if self.first => {}
            _ => return None,
        }
        self.first = false;
        self.pos = pos;
        let key = match plain_string(bytes, pos) {
            Some(end) => {
                self.pos = end + 1;
                Cow::Borrowed(self.text.get(pos + 1..end)?)
            }
            None => Cow::Owned(self.escaped_key()?),
        };
        self.byte(b':')?;
        Some(Some(key))
    }

    /// A key with escapes (or not a string at all), read by serde_json.
    #[cold]
    #[inline(never)]
    fn escaped_key(&mut self) -> Option<String> {
        self.value().ok()
    }

    /// Reads a field's value into its slot. `None` when the slot is filled already: a repeated
    /// field, which `Deserialize` refuses.
    #[inline]
    pub fn field<T: ScanDecode<'a>>(&mut self, slot: &mut Option<T>) -> Option<()> {
        if slot.is_some() {
            return None;
        }
        *slot = Some(T::scan(self)?);
        Some(())
    }

    /// Whether another element of the array entered last follows (after its comma, if any);
    /// `Some(false)` at the array's end, which it reads.
    #[inline]
    pub fn element(&mut self) -> Option<bool> {
        self.skip_ws();
        match self.bytes().get(self.pos)? {
            b']' => {
                self.pos += 1;
                self.leave();
                return Some(false);
            }
            b',' if !self.first => self.pos += 1,
            // The element itself says whether it is one.
            _ if self.first => {}
            _ => return None,
        }
        self.first = false;
        Some(true)
    }

    /// A string without escapes. `None`, with the position unchanged, for anything else.
    #[inline]
    pub fn string(&mut self) -> Option<&'a str> {
        let start = skip_ws(self.bytes(), self.pos);
        let end = plain_string(self.bytes(), start)?;
        self.pos = end + 1;
        self.text.get(start + 1..end)
    }

    /// The next byte after whitespace, not read.
    #[inline]
    pub fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.bytes().get(self.pos).copied()
    }

    /// `true` or `false`.
    #[inline]
    pub fn bool(&mut self) -> Option<bool> {
        self.skip_ws();
        let rest = self.bytes().get(self.pos..)?;
        let (value, len) = if rest.starts_with(b"true") {
            (true, 4)
        } else if rest.starts_with(b"false") {
            (false, 5)
        } else {
            return None;
        };
        self.pos += len;
        Some(value)
    }

    /// Reads `null` if it comes next.
    #[inline]
    pub fn null(&mut self) -> bool {
        self.skip_ws();
        let null = self
            .bytes()
            .get(self.pos..)
            .is_some_and(|rest| rest.starts_with(b"null"));
        if null {
            self.pos += 4;
        }
        null
    }

    /// An integer in `i64`'s range, written without a fraction or an exponent.
    #[inline]
    pub fn int(&mut self) -> Option<i64> {
        let (negative, magnitude, end) = self.integer()?;
        let value = if negative {
            0i64.checked_sub_unsigned(magnitude)?
        } else {
            i64::try_from(magnitude).ok()?
        };
        self.pos = end;
        Some(value)
    }

    /// An integer in `u64`'s range, written without a sign, a fraction or an exponent.
    #[inline]
    pub fn uint(&mut self) -> Option<u64> {
        let (negative, magnitude, end) = self.integer()?;
        if negative {
            return None;
        }
        self.pos = end;
        Some(magnitude)
    }

    /// The sign and magnitude of the integer that comes next, and where it ends; `None` for
    /// anything serde_json does not read as an integer (a fraction, an exponent, `-0`, more
    /// than `u64` holds).
    #[inline]
    fn integer(&mut self) -> Option<(bool, u64, usize)> {
        self.skip_ws();
        let bytes = self.bytes();
        let negative = bytes.get(self.pos) == Some(&b'-');
        let start = self.pos + usize::from(negative);
        let digits = bytes
            .get(start..)?
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(bytes.len() - start);
        let end = start + digits;
        // JSON allows no leading zero; a fraction or exponent makes it a float.
        let leading_zero = digits > 1 && bytes[start] == b'0';
        if digits == 0 || leading_zero || matches!(bytes.get(end), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let mut magnitude: u64 = 0;
        for &digit in &bytes[start..end] {
            magnitude = magnitude
                .checked_mul(10)?
                .checked_add(u64::from(digit - b'0'))?;
        }
        // serde_json reads `-0` as a float.
        if negative && magnitude == 0 {
            return None;
        }
        Some((negative, magnitude, end))
    }

    /// Whether the next value is a number not written with a minus sign.
    #[inline]
    fn unsigned_next(&mut self) -> bool {
        self.skip_ws();
        self.bytes().get(self.pos).is_some_and(u8::is_ascii_digit)
    }

    /// Deserialises the next value as `T` with serde_json, and moves past it.
    pub fn value<T: Deserialize<'a>>(&mut self) -> Result<T, serde_json::Error> {
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
    pub fn skip(&mut self) -> Option<()> {
        self.value::<IgnoredAny>().ok().map(drop)
    }

    /// Whether only whitespace is left (after the object's closing brace).
    pub fn at_end(&mut self) -> bool {
        self.skip_ws();
        self.pos == self.text.len()
    }

    /// The text from the current position on.
    pub fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }
}

/// The first position at or after `pos` that is not JSON whitespace.
#[inline]
fn skip_ws(bytes: &[u8], mut pos: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(pos) {
        pos += 1;
    }
    pos
}

/// Where the string starting at `start` (at its opening quote) ends (its closing quote), when
/// it holds no escape; `None` for anything else, including a control character (invalid in
/// JSON), which is the general path's to word.
#[inline]
fn plain_string(bytes: &[u8], start: usize) -> Option<usize> {
    if bytes.get(start) != Some(&b'"') {
        return None;
    }
    let mut end = start + 1;
    // Eight bytes at a time while there are eight left, then byte by byte.
    while let Some(chunk) = bytes.get(end..end + 8) {
        let word = u64::from_le_bytes(chunk.try_into().ok()?);
        let special = special_bytes(word);
        if special != 0 {
            end += (special.trailing_zeros() / 8) as usize;
            return (bytes[end] == b'"').then_some(end);
        }
        end += 8;
    }
    loop {
        let b = *bytes.get(end)?;
        if PLAIN[usize::from(b)] {
            end += 1;
        } else {
            return (b == b'"').then_some(end);
        }
    }
}

/// The high bit of each byte of `word` (little-endian) that is not [`PLAIN`], and possibly of
/// bytes after the first such one: the lowest bit set marks the first byte that ends a plain
/// string. (Subtracting one from each byte borrows into a byte only above a zero byte.)
#[inline]
fn special_bytes(word: u64) -> u64 {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGH: u64 = ONES << 7;
    let zero_in = |v: u64| v.wrapping_sub(ONES) & !v;
    let quote = zero_in(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_in(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word;
    (quote | backslash | control) & HIGH
}

/// Whether `b` stands for itself inside a JSON string (it is not `"`, `\\` or a control
/// character).
#[inline]
pub(crate) fn plain_byte(b: u8) -> bool {
    PLAIN[usize::from(b)]
}

/// The bytes a string holds as they are: all but `"`, `\\` and control characters.
static PLAIN: [bool; 256] = {
    let mut plain = [true; 256];
    let mut b = 0;
    while b < 0x20 {
        plain[b] = false;
        b += 1;
    }
    plain[b'"' as usize] = false;
    plain[b'\\' as usize] = false;
    plain
};

/// A type that reads itself from a [`Scan`] in one pass, as its `Deserialize` impl would read it
/// from the same text; generated for every payload type.
///
/// `None` means "not read here", never "invalid": the caller then decodes the frame with serde,
/// which reads what the scanner leaves alone and words every error.
pub trait ScanDecode<'de>: Deserialize<'de> {
    /// Reads a value at the scanner's position. By default, serde_json reads it.
    fn scan(scan: &mut Scan<'de>) -> Option<Self> {
        scan.value().ok()
    }

    /// Reads the rest of the object the scanner is in as this type's fields, up to and
    /// including its `}`. Each key goes to `envelope` first, which reads its value and answers
    /// `Some(true)` when the key is not the payload's (a frame's envelope keys beside an inline
    /// payload), `None` to stop. Only object structs read themselves this way.
    fn scan_fields<F>(scan: &mut Scan<'de>, envelope: F) -> Option<Self>
    where
        F: FnMut(&str, &mut Scan<'de>) -> Option<bool>,
    {
        let _ = (scan, envelope);
        None
    }
}

/// The `envelope` of a nested object's [`ScanDecode::scan_fields`]: no key is an envelope key.
pub fn no_envelope(_: &str, _: &mut Scan<'_>) -> Option<bool> {
    Some(false)
}

impl<'de> ScanDecode<'de> for bool {
    #[inline]
    fn scan(scan: &mut Scan<'de>) -> Option<Self> {
        scan.bool()
    }
}

macro_rules! scan_ints {
    ($read:ident: $($int:ty),*) => {$(
        impl<'de> ScanDecode<'de> for $int {
            #[inline]
            fn scan(scan: &mut Scan<'de>) -> Option<Self> {
                scan.$read()?.try_into().ok()
            }
        }
    )*};
}

scan_ints!(int: i8, i16, i32, i64);
scan_ints!(uint: u8, u16, u32, u64);

impl<'de> ScanDecode<'de> for f64 {
    #[inline]
    fn scan(scan: &mut Scan<'de>) -> Option<Self> {
        // serde_json reads an integer written without a sign as a `u64` and converts it with
        // `as`; anything else (a fraction, an exponent, `-0`) it parses as a float.
        if scan.unsigned_next() {
            if let Some(n) = scan.uint() {
                #[expect(clippy::cast_precision_loss, reason = "as serde_json converts it")]
                return Some(n as f64);
            }
        }
        scan.value().ok()
    }
}

impl<'de> ScanDecode<'de> for String {
    #[inline]
    fn scan(scan: &mut Scan<'de>) -> Option<Self> {
        match scan.string() {
            Some(s) => Some(s.to_owned()),
            // Escapes, or not a string at all: serde_json reads it, or says what is wrong.
            None => scan.value().ok(),
        }
    }
}

/// The key that makes serde_json read an object as the raw JSON text in its value (its
/// `raw_value` feature): such objects are left to serde_json.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

impl<'de> ScanDecode<'de> for serde_json::Value {
    fn scan(scan: &mut Scan<'de>) -> Option<Self> {
        use serde_json::Value;
        Some(match scan.peek()? {
            b'"' => Value::String(String::scan(scan)?),
            b'{' => {
                scan.open()?;
                Self::scan_fields(scan, no_envelope)?
            }
            b'[' => Value::Array(Vec::scan(scan)?),
            b't' | b'f' => Value::Bool(scan.bool()?),
            b'n' => scan.null().then_some(Value::Null)?,
            b'-' => match scan.int() {
                Some(n) => Value::from(n),
                // A fraction, an exponent, `-0`, below `i64`: serde_json parses it.
                None => scan.value().ok()?,
            },
            _ => match scan.uint() {
                Some(n) => Value::from(n),
                None => scan.value().ok()?,
            },
        })
    }

    fn scan_fields<F>(scan: &mut Scan<'de>, mut envelope: F) -> Option<Self>
    where
        F: FnMut(&str, &mut Scan<'de>) -> Option<bool>,
    {
        let mut map = serde_json::Map::new();
        // A repeated key keeps its last value, as serde_json's map does.
        while let Some(key) = scan.key()? {
            if envelope(&key, scan)? {
                continue;
            }
            if key == RAW_VALUE_TOKEN {
                return None;
            }
            map.insert(key.into_owned(), Self::scan(scan)?);
        }
        Some(Self::Object(map))
    }
}

impl<'de, T: ScanDecode<'de>> ScanDecode<'de> for Option<T> {
    fn scan(scan: &mut Scan<'de>) -> Option<Self> {
        if scan.null() {
            return Some(None);
        }
        T::scan(scan).map(Some)
    }
}

impl<'de, T: ScanDecode<'de>> ScanDecode<'de> for Vec<T> {
    fn scan(scan: &mut Scan<'de>) -> Option<Self> {
        scan.open_array()?;
        let mut items = Vec::new();
        while scan.element()? {
            items.push(T::scan(scan)?);
        }
        Some(items)
    }
}

impl<'de, T: ScanDecode<'de>> ScanDecode<'de> for BTreeMap<String, T> {
    fn scan(scan: &mut Scan<'de>) -> Option<Self> {
        scan.open()?;
        let mut map = BTreeMap::new();
        // A repeated key keeps its last value, as serde's map does.
        while let Some(key) = scan.key()? {
            map.insert(key.into_owned(), T::scan(scan)?);
        }
        Some(map)
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Debug;

    use super::*;

    fn object(text: &str) -> Scan<'_> {
        Scan::object(text).expect("the text starts an object")
    }

    fn key<'a>(scan: &mut Scan<'a>) -> Option<Option<String>> {
        scan.key().map(|key| key.map(Cow::into_owned))
    }

    #[test]
    fn reads_keys_strings_ints_and_literals() {
        let mut scan = object(r#" { "a" : "x" , "b":-12,"c" :{"d":[1]}, "e": true, "f": null } "#);
        assert_eq!(key(&mut scan), Some(Some("a".into())));
        assert_eq!(scan.string(), Some("x"));
        assert_eq!(key(&mut scan), Some(Some("b".into())));
        assert_eq!(scan.int(), Some(-12));
        assert_eq!(key(&mut scan), Some(Some("c".into())));
        assert_eq!(scan.skip(), Some(()));
        assert_eq!(key(&mut scan), Some(Some("e".into())));
        assert_eq!(scan.bool(), Some(true));
        assert_eq!(key(&mut scan), Some(Some("f".into())));
        assert!(scan.null());
        assert_eq!(key(&mut scan), Some(None));
        assert!(scan.at_end());
    }

    #[test]
    fn unescapes_keys_and_leaves_escaped_strings_where_they_are() {
        let mut scan = object(r#"{"a\"b": "c\nd"}"#);
        assert_eq!(key(&mut scan), Some(Some("a\"b".into())));
        assert_eq!(scan.string(), None);
        assert_eq!(String::scan(&mut scan).as_deref(), Some("c\nd"));
        let control = "{\"a\u{1}\": 1}";
        assert_eq!(key(&mut object(control)), None);
    }

    #[test]
    fn leaves_what_it_does_not_read_plainly_to_the_general_path() {
        for int in ["1.5", "1e3", "01", "-", "", "9223372036854775808", "x"] {
            let text = format!(r#"{{"a": {int}}}"#);
            let mut scan = object(&text);
            assert_eq!(key(&mut scan), Some(Some("a".into())));
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
    fn plain_strings_end_at_their_first_special_byte() {
        // Every length around the eight-byte steps, every special byte at every place.
        for len in 0..20 {
            let body = "é".repeat(len / 2) + &"a".repeat(len % 2);
            let text = format!("\"{body}\",");
            assert_eq!(
                plain_string(text.as_bytes(), 0),
                Some(body.len() + 1),
                "{text}"
            );
            for at in 0..=body.len() {
                for special in ["\\", "\u{1}", "\u{1f}", "\n"] {
                    let Some((head, tail)) = body.split_at_checked(at) else {
                        continue;
                    };
                    let text = format!("\"{head}{special}{tail}\"");
                    assert_eq!(plain_string(text.as_bytes(), 0), None, "{text:?}");
                }
            }
        }
        // Bytes just above the special ones.
        let text = "\"\u{20}#]\u{7f}\u{80}\u{ff}abcdefgh\"";
        assert_eq!(plain_string(text.as_bytes(), 0), Some(text.len() - 1));
        assert_eq!(plain_string(b"\"abcdefghij", 0), None);
    }

    #[test]
    fn arrays_take_commas_between_elements_only() {
        for (text, expected) in [("[]", Some(vec![])), ("[1, 2 ,3]", Some(vec![1, 2, 3]))] {
            assert_eq!(Vec::<i64>::scan(&mut scan_value(text)), expected, "{text}");
        }
        for bad in ["[,1]", "[1,]", "[1 2]", "[1,,2]", "[", "[1"] {
            assert_eq!(Vec::<i64>::scan(&mut scan_value(bad)), None, "{bad}");
        }
    }

    #[test]
    fn an_empty_container_leaves_its_parent_past_its_first_item() {
        let mut scan = object(r#"{"a": {}, "b": [], "c": 1}"#);
        scan.key();
        assert!(BTreeMap::<String, i64>::scan(&mut scan).is_some());
        scan.key();
        assert!(Vec::<i64>::scan(&mut scan).is_some());
        assert_eq!(key(&mut scan), Some(Some("c".into())));
    }

    #[test]
    fn deep_nesting_is_left_to_serde() {
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let shallow = nested(MAX_DEPTH as usize - 1);
        assert!(agrees::<serde_json::Value>(&shallow).is_some());
        let deep = nested(100);
        assert!(serde_json::from_str::<serde_json::Value>(&deep).is_ok());
        assert_eq!(serde_json::Value::scan(&mut scan_value(&deep)), None);
    }

    /// A scanner positioned at `text`, a value inside an object.
    fn scan_value(text: &str) -> Scan<'_> {
        Scan {
            text,
            pos: 0,
            first: false,
            depth: 1,
        }
    }

    /// What the scanner reads of `text` as `T`, checked against serde_json.
    fn agrees<T>(text: &str) -> Option<T>
    where
        T: for<'de> ScanDecode<'de> + PartialEq + Debug,
    {
        let scanned = T::scan(&mut scan_value(text));
        if let Some(value) = &scanned {
            let serde: T = serde_json::from_str(text).expect("serde reads what the scanner reads");
            assert_eq!(value, &serde, "{text}");
        }
        scanned
    }

    #[test]
    fn reads_values_as_serde_json_does() {
        assert_eq!(agrees::<u8>("255"), Some(255));
        assert_eq!(agrees::<u8>("256"), None);
        assert_eq!(agrees::<i8>("-128"), Some(-128));
        assert_eq!(agrees::<u32>("-1"), None);
        assert_eq!(agrees::<u64>("18446744073709551615"), Some(u64::MAX));
        assert_eq!(agrees::<u64>("18446744073709551616"), None);
        assert_eq!(agrees::<i64>("-0"), None);
        assert_eq!(agrees::<i64>("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(
            agrees::<f64>("18446744073709551615"),
            Some(1.8446744073709552e19)
        );
        assert_eq!(agrees::<f64>("1590000000000"), Some(1.59e12));
        assert_eq!(
            agrees::<f64>("9007199254740993"),
            Some(9_007_199_254_740_992.0)
        );
        assert!(agrees::<f64>("-0").is_some_and(|z| z == 0.0 && z.is_sign_negative()));
        assert_eq!(agrees::<f64>("0.1"), Some(0.1));
        assert_eq!(agrees::<bool>("false"), Some(false));
        assert_eq!(agrees::<bool>("0"), None);
        assert_eq!(agrees::<Option<i64>>("null"), Some(None));
        assert_eq!(agrees::<Option<i64>>("7"), Some(Some(7)));
        assert_eq!(agrees::<String>(r#""caf\u00e9""#).as_deref(), Some("café"));
        assert_eq!(agrees::<String>("1"), None);
        let map = agrees::<BTreeMap<String, i64>>(r#"{"a": 1, "a": 2, "b\u0021": 3}"#);
        assert_eq!(
            map,
            Some(BTreeMap::from([("a".into(), 2), ("b!".into(), 3)]))
        );
        for value in [
            r#"{"x": [1.5, "y", -2, 3, true, false, null, {}, []], "z": {"a": "b\u0021"}}"#,
            r#"{"a": 1, "a": -0, "b": 18446744073709551615, "c": -9223372036854775809}"#,
            "-0",
        ] {
            assert!(agrees::<serde_json::Value>(value).is_some(), "{value}");
        }
        assert_eq!(agrees::<serde_json::Value>("1e400"), None);
        // serde_json reads this object as the raw JSON in its value.
        let raw = r#"{"$serde_json::private::RawValue": "[1]"}"#;
        assert_eq!(agrees::<serde_json::Value>(raw), None);
    }
}
