//! Lexing and parsing definition files into the [`ast`].
//!
//! Directives are parsed generically (a head word, clauses of atoms, a block) and then lowered,
//! in `directives`, into typed nodes ([`ast::ProtocolBlock`]); malformed ones are reported there.
//!
//! The parser never stops at the first error: it reports into a [`Diagnostics`] list, skips to a
//! point where it can go on (the next item or directive), and always returns a [`ast::File`].

pub mod ast;
mod directives;
mod lexer;
mod parser;

use std::borrow::Cow;

use crate::diagnostics::Diagnostics;

/// Parses the text of file number `file` (its index in the [`crate::diagnostics::SourceMap`]).
///
/// Syntax errors go to `diags`; the returned tree holds everything that could be parsed.
pub fn parse(file: u32, text: &str, diags: &mut Diagnostics) -> ast::File {
    parse_text(file, text, &[], diags)
}

/// [`parse`], where the chars at the byte offsets `replaced` stand for invalid UTF-8 (already
/// reported) and are not reported again as unexpected characters.
fn parse_text(file: u32, text: &str, replaced: &[usize], diags: &mut Diagnostics) -> ast::File {
    let tokens = lexer::lex(file, text, replaced, diags);
    let mut parsed = parser::Parser::new(file, text, &tokens, diags).parse_file();
    if let Some(decl) = &mut parsed.protocol {
        decl.block = directives::lower(decl, diags);
    }
    parsed
}

/// A definition file's bytes read as text: each invalid UTF-8 sequence becomes one U+FFFD (`�`),
/// as [`String::from_utf8_lossy`] does, so the rest of the file can still be checked.
#[derive(Debug, Clone)]
pub struct Decoded<'a> {
    text: Cow<'a, str>,
    /// Each invalid sequence: the byte offset of its U+FFFD in `text`, and its bytes.
    invalid: Vec<(usize, &'a [u8])>,
}

/// Reads `bytes` as UTF-8, replacing what is not.
pub fn decode(bytes: &[u8]) -> Decoded<'_> {
    let mut chunks = bytes.utf8_chunks();
    let whole = match chunks.next() {
        None => Some(""),
        Some(first) if first.invalid().is_empty() => Some(first.valid()),
        Some(_) => None,
    };
    if let Some(text) = whole {
        return Decoded {
            text: Cow::Borrowed(text),
            invalid: Vec::new(),
        };
    }
    let mut text = String::with_capacity(bytes.len() + 2);
    let mut invalid = Vec::new();
    for chunk in bytes.utf8_chunks() {
        text.push_str(chunk.valid());
        if !chunk.invalid().is_empty() {
            invalid.push((text.len(), chunk.invalid()));
            text.push(char::REPLACEMENT_CHARACTER);
        }
    }
    Decoded {
        text: Cow::Owned(text),
        invalid,
    }
}

impl Decoded<'_> {
    /// The text, invalid sequences replaced.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the bytes were valid UTF-8.
    pub fn is_valid(&self) -> bool {
        self.invalid.is_empty()
    }

    /// Parses the text as file number `file`, as [`parse`] does, first reporting invalid UTF-8
    /// (E0006, at the first invalid byte) if there was any.
    pub fn parse(&self, file: u32, diags: &mut Diagnostics) -> ast::File {
        if let Some(d) = lexer::invalid_utf8(file, &self.invalid) {
            diags.push(d);
        }
        let replaced: Vec<usize> = self.invalid.iter().map(|&(at, _)| at).collect();
        parse_text(file, &self.text, &replaced, diags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(diags: &Diagnostics) -> Vec<&'static str> {
        diags.iter().map(|d| d.code).collect()
    }

    #[test]
    fn valid_utf8_is_borrowed_as_is() {
        let decoded = decode("protocol é {}".as_bytes());
        assert!(decoded.is_valid());
        assert!(matches!(decoded.text, Cow::Borrowed("protocol é {}")));
        assert!(decode(b"").is_valid());
    }

    #[test]
    fn each_invalid_sequence_becomes_one_replacement_char() {
        // A lone continuation byte, then a three-byte sequence cut short at the end.
        let decoded = decode(b"a\x80b \xe2\x82");
        assert_eq!(decoded.text(), "a\u{fffd}b \u{fffd}");
        assert_eq!(
            decoded.invalid,
            vec![(1, &b"\x80"[..]), (6, &b"\xe2\x82"[..])]
        );
    }

    #[test]
    fn invalid_utf8_is_reported_once_and_not_as_unexpected_characters() {
        let mut diags = Diagnostics::default();
        decode(b"\xff protocol p {\nversion \"1\"\nwire {\ntag t string\npayload inline\n} } \xfe")
            .parse(0, &mut diags);
        assert_eq!(codes(&diags), ["E0006"]);
        let d = diags
            .iter()
            .next()
            .map(|d| (d.primary.0, d.primary.1.clone()));
        assert_eq!(
            d,
            Some((
                crate::diagnostics::Span::new(0, 0, 3),
                "the byte 0xFF is not valid UTF-8".to_owned()
            ))
        );
        // A U+FFFD written in a valid file is just an unexpected character.
        let mut diags = Diagnostics::default();
        decode(
            "\u{fffd} protocol p {\nversion \"1\"\nwire {\ntag t string\npayload inline\n} }"
                .as_bytes(),
        )
        .parse(0, &mut diags);
        assert_eq!(codes(&diags), ["E0001"]);
    }
}
