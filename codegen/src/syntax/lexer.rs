//! Turns the text of a definition file into [`Token`]s.
//!
//! The lexer never stops early: an unknown character, an unterminated string, a bad escape or an
//! integer that does not fit in an `i64` is reported and stepped over, so the parser still sees
//! every token around it. The token list always ends with exactly one [`TokenKind::Eof`].
//!
//! Newlines are not tokens, but they matter to the grammar (a directive ends at the end of its
//! line), so every token records whether it is the first one on its line.

use crate::diagnostics::{Diagnostic, Diagnostics, Span};

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// A name or a contextual keyword: `[A-Za-z_][A-Za-z0-9_]*`.
    Ident(String),
    /// An integer, its sign included.
    Int(i64),
    /// A string, escapes resolved.
    Str(String),
    /// `/// text`: the text after the marker and one leading space.
    OuterDoc(String),
    /// `//! text`: the text after the marker and one leading space.
    InnerDoc(String),
    /// `{`
    LBrace,
    /// `}`
    RBrace,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `[`
    LBracket,
    /// `]`
    RBracket,
    /// `,`
    Comma,
    /// `:`
    Colon,
    /// `=`
    Eq,
    /// `?`
    Question,
    /// `|`
    Pipe,
    /// `->`
    Arrow,
    /// `..`
    DotDot,
    /// `..=`
    DotDotEq,
    /// `.`
    Dot,
    /// The end of the input; always the last token, and only there.
    Eof,
}

impl TokenKind {
    /// The text of a punctuation token, `None` for every other kind.
    pub(crate) fn punct(&self) -> Option<&'static str> {
        Some(match self {
            TokenKind::LBrace => "{",
            TokenKind::RBrace => "}",
            TokenKind::LParen => "(",
            TokenKind::RParen => ")",
            TokenKind::LBracket => "[",
            TokenKind::RBracket => "]",
            TokenKind::Comma => ",",
            TokenKind::Colon => ":",
            TokenKind::Eq => "=",
            TokenKind::Question => "?",
            TokenKind::Pipe => "|",
            TokenKind::Arrow => "->",
            TokenKind::DotDot => "..",
            TokenKind::DotDotEq => "..=",
            TokenKind::Dot => ".",
            _ => return None,
        })
    }
}

/// One token and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    /// What it is.
    pub(crate) kind: TokenKind,
    /// Byte offsets in the file.
    pub(crate) span: Span,
    /// Whether no other token comes before it on its line (comments do not count). The [`Eof`]
    /// token always has it set, so "the directive ends at a new line" also ends it at the end.
    ///
    /// [`Eof`]: TokenKind::Eof
    pub(crate) line_start: bool,
}

/// Splits `text` (file number `file`) into tokens, reporting lexical errors into `diags`.
///
/// `replaced` holds the byte offsets (sorted) of the U+FFFD chars that stand for invalid UTF-8;
/// [`invalid_utf8`] reports those, so they are skipped here without another error.
///
/// The result always ends with one [`TokenKind::Eof`] token whose span is the end of the text.
pub(crate) fn lex(
    file: u32,
    text: &str,
    replaced: &[usize],
    diags: &mut Diagnostics,
) -> Vec<Token> {
    let mut lexer = Lexer {
        file,
        text,
        replaced,
        pos: 0,
        line_start: true,
        tokens: Vec::new(),
        diags,
    };
    lexer.run();
    lexer.tokens
}

/// The lexer's state while it walks the text.
struct Lexer<'a> {
    file: u32,
    text: &'a str,
    /// Offsets of the chars that stand for invalid UTF-8.
    replaced: &'a [usize],
    /// Byte offset of the next char; always on a char boundary.
    pos: usize,
    /// Whether no token was pushed since the last line break.
    line_start: bool,
    tokens: Vec<Token>,
    diags: &'a mut Diagnostics,
}

impl Lexer<'_> {
    fn run(&mut self) {
        while let Some(c) = self.peek() {
            let start = self.pos;
            match c {
                '\n' => {
                    self.bump();
                    self.line_start = true;
                }
                ' ' | '\t' | '\r' | '\x0c' => {
                    self.bump();
                }
                '/' if self.peek_nth(1) == Some('/') => self.comment(start),
                '"' => self.string(start),
                '0'..='9' => self.number(start),
                '-' if self.peek_nth(1).is_some_and(|c| c.is_ascii_digit()) => self.number(start),
                c if is_ident_start(c) => self.ident(start),
                _ => self.punct_or_unknown(start),
            }
        }
        let end = self.text.len();
        self.line_start = true;
        self.push(TokenKind::Eof, end);
    }

    // --- Characters -------------------------------------------------------------------------

    /// The rest of the text from the current position.
    fn rest(&self) -> &str {
        self.text.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    /// The char `n` chars after the current one.
    fn peek_nth(&self, n: usize) -> Option<char> {
        self.rest().chars().nth(n)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat_while(&mut self, pred: impl Fn(char) -> bool) {
        while self.peek().is_some_and(&pred) {
            self.bump();
        }
    }

    /// The text between `start` and the current position.
    fn slice_from(&self, start: usize) -> &str {
        self.text.get(start..self.pos).unwrap_or("")
    }

    fn span(&self, start: usize, end: usize) -> Span {
        Span::new(self.file, start, end)
    }

    // --- Output -----------------------------------------------------------------------------

    /// Pushes a token from `start` to the current position.
    fn push(&mut self, kind: TokenKind, start: usize) {
        let span = self.span(start, self.pos.max(start));
        self.tokens.push(Token {
            kind,
            span,
            line_start: self.line_start,
        });
        self.line_start = false;
    }

    fn report(&mut self, diagnostic: Diagnostic) {
        self.diags.push(diagnostic);
    }

    // --- Tokens -----------------------------------------------------------------------------

    /// `// ...`, `/// ...` or `//! ...`, up to the end of the line.
    fn comment(&mut self, start: usize) {
        let line_len = self.rest().find('\n').unwrap_or(self.rest().len());
        let body = self.rest().get(..line_len).unwrap_or("");
        // `////` is a plain comment (a separator line), as in Rust.
        let kind = match (body.strip_prefix("///"), body.strip_prefix("//!")) {
            (Some(doc), _) if !doc.starts_with('/') => Some(TokenKind::OuterDoc(doc_text(doc))),
            (_, Some(doc)) => Some(TokenKind::InnerDoc(doc_text(doc))),
            _ => None,
        };
        self.pos += line_len;
        if let Some(kind) = kind {
            self.push(kind, start);
        }
    }

    fn ident(&mut self, start: usize) {
        self.eat_while(is_ident_continue);
        let name = self.slice_from(start).to_string();
        self.push(TokenKind::Ident(name), start);
    }

    /// `-?[0-9]+`. Letters glued to the digits are reported rather than lexed as a separate name,
    /// since `10ms` or `4001Failed` is almost certainly a typo.
    fn number(&mut self, start: usize) {
        if self.peek() == Some('-') {
            self.bump();
        }
        self.eat_while(|c| c.is_ascii_digit());
        let digits_end = self.pos;
        self.eat_while(is_ident_continue);
        let digits = self.text.get(start..digits_end).unwrap_or("");
        let value = match digits.parse::<i64>() {
            Ok(value) => value,
            Err(_) => {
                let negative = digits.starts_with('-');
                let d = Diagnostic::error(
                    "E0004",
                    "integer literal is out of range",
                    self.span(start, digits_end),
                    "does not fit in an `i64`",
                )
                .with_note(format!(
                    "integers range from {} to {}",
                    i64::MIN,
                    i64::MAX
                ));
                self.report(d);
                if negative { i64::MIN } else { i64::MAX }
            }
        };
        if self.pos > digits_end {
            let suffix = self
                .text
                .get(digits_end..self.pos)
                .unwrap_or("")
                .to_string();
            let d = Diagnostic::error(
                "E0005",
                format!("invalid suffix `{suffix}` on integer literal"),
                self.span(digits_end, self.pos),
                "integers take no suffix",
            )
            .with_help(format!(
                "add a space before `{suffix}` if it is a separate word"
            ));
            self.report(d);
        }
        self.push(TokenKind::Int(value), start);
    }

    /// `"..."`. A string ends at its line: letting it run on would swallow the rest of the file
    /// when the closing quote is missing.
    fn string(&mut self, start: usize) {
        self.bump();
        let mut value = String::new();
        loop {
            match self.peek() {
                None | Some('\n') => {
                    let end = self.pos;
                    let end = if self.slice_from(start).ends_with('\r') {
                        end - 1
                    } else {
                        end
                    };
                    let d = Diagnostic::error(
                        "E0002",
                        "unterminated string",
                        self.span(start, end),
                        "this string has no closing `\"`",
                    )
                    .with_help("add `\"` at the end of the string; strings cannot span lines");
                    self.report(d);
                    break;
                }
                Some('"') => {
                    self.bump();
                    break;
                }
                Some('\\') => self.escape(&mut value),
                Some(c) => {
                    self.bump();
                    value.push(c);
                }
            }
        }
        self.push(TokenKind::Str(value), start);
    }

    /// A `\` escape inside a string; on an error nothing is added to `out`.
    fn escape(&mut self, out: &mut String) {
        let start = self.pos;
        self.bump();
        let simple = match self.peek() {
            // The string itself reports the missing quote.
            None | Some('\n') => return,
            Some('u') => {
                self.bump();
                self.unicode_escape(start, out);
                return;
            }
            Some('"') => '"',
            Some('\\') => '\\',
            Some('n') => '\n',
            Some('t') => '\t',
            Some(other) => {
                self.bump();
                let d = Diagnostic::error(
                    "E0003",
                    format!("unknown character escape `\\{other}`"),
                    self.span(start, self.pos),
                    "unknown escape",
                )
                .with_help("the escapes are `\\\"`, `\\\\`, `\\n`, `\\t` and `\\u{XXXX}`");
                self.report(d);
                return;
            }
        };
        self.bump();
        out.push(simple);
    }

    /// The part of `\u{XXXX}` after the `u`; `start` is the offset of the backslash.
    fn unicode_escape(&mut self, start: usize, out: &mut String) {
        const HELP: &str = "write the code point in hex between braces, as in `\\u{e9}`";
        if self.peek() != Some('{') {
            let d = Diagnostic::error(
                "E0003",
                "incorrect unicode escape: expected `{` after `\\u`",
                self.span(start, self.pos),
                "expected `{`",
            )
            .with_help(HELP);
            self.report(d);
            return;
        }
        self.bump();
        let digits_start = self.pos;
        self.eat_while(|c| c.is_ascii_hexdigit());
        let digits = self.slice_from(digits_start).to_string();
        if self.peek() != Some('}') {
            let d = Diagnostic::error(
                "E0003",
                "unterminated unicode escape",
                self.span(start, self.pos),
                "expected `}` after the hex digits",
            )
            .with_help(HELP);
            self.report(d);
            return;
        }
        self.bump();
        let span = self.span(start, self.pos);
        if digits.is_empty() || digits.len() > 6 {
            let d = Diagnostic::error(
                "E0003",
                "a unicode escape needs 1 to 6 hex digits",
                span,
                "invalid unicode escape",
            )
            .with_help(HELP);
            self.report(d);
            return;
        }
        match u32::from_str_radix(&digits, 16)
            .ok()
            .and_then(char::from_u32)
        {
            Some(c) => out.push(c),
            None => {
                let d = Diagnostic::error(
                    "E0003",
                    "invalid unicode character escape",
                    span,
                    format!("`{digits}` is not a Unicode scalar value"),
                )
                .with_note("surrogates (D800 to DFFF) and values above 10FFFF are not characters");
                self.report(d);
            }
        }
    }

    /// Punctuation, or a run of characters the language does not know.
    fn punct_or_unknown(&mut self, start: usize) {
        let next = self.peek_nth(1);
        let (kind, len) = match (self.peek(), next) {
            (Some('{'), _) => (TokenKind::LBrace, 1),
            (Some('}'), _) => (TokenKind::RBrace, 1),
            (Some('('), _) => (TokenKind::LParen, 1),
            (Some(')'), _) => (TokenKind::RParen, 1),
            (Some('['), _) => (TokenKind::LBracket, 1),
            (Some(']'), _) => (TokenKind::RBracket, 1),
            (Some(','), _) => (TokenKind::Comma, 1),
            (Some(':'), _) => (TokenKind::Colon, 1),
            (Some('='), _) => (TokenKind::Eq, 1),
            (Some('?'), _) => (TokenKind::Question, 1),
            (Some('|'), _) => (TokenKind::Pipe, 1),
            (Some('-'), Some('>')) => (TokenKind::Arrow, 2),
            (Some('.'), Some('.')) if self.peek_nth(2) == Some('=') => (TokenKind::DotDotEq, 3),
            (Some('.'), Some('.')) => (TokenKind::DotDot, 2),
            (Some('.'), _) => (TokenKind::Dot, 1),
            _ => return self.unknown(start),
        };
        // Every punctuation char is ASCII, so `len` chars are `len` bytes.
        self.pos += len;
        self.push(kind, start);
    }

    /// Reports a run of unknown characters as one error.
    fn unknown(&mut self, start: usize) {
        self.bump();
        while self.peek().is_some() && !self.at_token_start() {
            self.bump();
        }
        let run = self.slice_from(start).to_string();
        let decoding_error = run.char_indices().all(|(i, c)| {
            c == char::REPLACEMENT_CHARACTER && self.replaced.binary_search(&(start + i)).is_ok()
        });
        if decoding_error {
            return;
        }
        let plural = if run.chars().count() == 1 { "" } else { "s" };
        let mut d = Diagnostic::error(
            "E0001",
            format!("unexpected character{plural} `{run}`"),
            self.span(start, self.pos),
            "not part of the definition language",
        );
        if let Some(help) = unknown_char_help(&run) {
            d = d.with_help(help);
        }
        self.report(d);
    }

    /// Whether a token (or whitespace, or a comment) starts at the current position.
    fn at_token_start(&self) -> bool {
        let next = self.peek_nth(1);
        match self.peek() {
            None => true,
            Some(c) if c.is_ascii_whitespace() || is_ident_start(c) || c.is_ascii_digit() => true,
            Some('{' | '}' | '(' | ')' | '[' | ']' | ',' | ':' | '=' | '?' | '|' | '.' | '"') => {
                true
            }
            Some('-') => next.is_some_and(|c| c == '>' || c.is_ascii_digit()),
            Some('/') => next == Some('/'),
            Some(_) => false,
        }
    }
}

/// E0006 for a file that is not valid UTF-8, at its first invalid sequence; `invalid` holds
/// each sequence's offset in the decoded text (where a U+FFFD stands for it) and its bytes.
pub(crate) fn invalid_utf8(file: u32, invalid: &[(usize, &[u8])]) -> Option<Diagnostic> {
    let (&(at, bytes), rest) = invalid.split_first()?;
    let shown: Vec<String> = bytes.iter().map(|b| format!("0x{b:02X}")).collect();
    let label = match shown.as_slice() {
        [one] => format!("the byte {one} is not valid UTF-8"),
        _ => format!("the bytes {} are not valid UTF-8", shown.join(" ")),
    };
    let note = match rest.len() {
        0 => "it is read as U+FFFD (`\u{fffd}`), and the rest of the file is checked".to_owned(),
        n => format!(
            "the file has {n} more invalid sequence{}; each is read as U+FFFD (`\u{fffd}`), and the rest of the file is checked",
            if n == 1 { "" } else { "s" }
        ),
    };
    Some(
        Diagnostic::error(
            "E0006",
            "the file is not valid UTF-8",
            Span::new(file, at, at + char::REPLACEMENT_CHARACTER.len_utf8()),
            label,
        )
        .with_note(note)
        .with_help("save the definition as UTF-8 (a Latin-1 file converts with `iconv -f latin1 -t utf-8`)"),
    )
}

/// A doc comment's text: the marker is already gone; drop one leading space and a `\r`.
fn doc_text(doc: &str) -> String {
    let doc = doc.strip_suffix('\r').unwrap_or(doc);
    doc.strip_prefix(' ').unwrap_or(doc).to_string()
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_continue(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// A hint for characters people commonly type by habit from other languages.
fn unknown_char_help(run: &str) -> Option<&'static str> {
    Some(match run {
        ";" => "remove the `;`: fields and variants are separated by `,`, items by nothing",
        "'" => "strings are written in double quotes: `\"text\"`",
        "-" => "write a negative integer with the `-` right before the digits, as in `-1`",
        "/" => "comments start with `//`",
        ">" | "=>" => "an arrow is written `->`",
        "#" => "comments start with `//`",
        _ if run.chars().any(|c| c.is_alphabetic()) => {
            "names are ASCII: letters `A-Z` `a-z`, digits and `_`"
        }
        _ => return None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::diagnostics::SourceMap;

    fn kinds(text: &str) -> Vec<TokenKind> {
        let mut diags = Diagnostics::default();
        let tokens = lex(0, text, &[], &mut diags);
        assert!(!diags.has_errors(), "unexpected errors: {diags:?}");
        tokens.into_iter().map(|t| t.kind).collect()
    }

    /// Lexes `text` and returns the codes of the errors and the rendered output.
    fn errors(text: &str) -> (Vec<&'static str>, String) {
        let mut sources = SourceMap::default();
        let file = sources.add("lex.protocol", text);
        let mut diags = Diagnostics::default();
        let tokens = lex(file, text, &[], &mut diags);
        assert_eq!(tokens.last().map(|t| &t.kind), Some(&TokenKind::Eof));
        let codes = diags.iter().map(|d| d.code).collect();
        (codes, diags.render(&sources))
    }

    fn ident(s: &str) -> TokenKind {
        TokenKind::Ident(s.to_string())
    }

    #[test]
    fn punctuation() {
        use TokenKind::*;
        assert_eq!(
            kinds("{ } ( ) [ ] , : = ? | -> .. ..= . ...="),
            vec![
                LBrace, RBrace, LParen, RParen, LBracket, RBracket, Comma, Colon, Eq, Question,
                Pipe, Arrow, DotDot, DotDotEq, Dot, DotDot, Dot, Eq, Eof
            ]
        );
    }

    #[test]
    fn ranges_are_not_floats() {
        use TokenKind::*;
        assert_eq!(kinds("1..10"), vec![Int(1), DotDot, Int(10), Eof]);
        assert_eq!(kinds("-5..=-1"), vec![Int(-5), DotDotEq, Int(-1), Eof]);
        assert_eq!(kinds("..=3"), vec![DotDotEq, Int(3), Eof]);
    }

    #[test]
    fn idents_and_integers() {
        use TokenKind::*;
        assert_eq!(
            kinds("_a b2 -> -1 0 9223372036854775807 -9223372036854775808"),
            vec![
                ident("_a"),
                ident("b2"),
                Arrow,
                Int(-1),
                Int(0),
                Int(i64::MAX),
                Int(i64::MIN),
                Eof
            ]
        );
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(
            kinds(r#""a\"b\\c\nd\te\u{e9}\u{1F600}""#),
            vec![
                TokenKind::Str("a\"b\\c\nd\te\u{e9}\u{1F600}".into()),
                TokenKind::Eof
            ]
        );
        assert_eq!(
            kinds(r#""""#),
            vec![TokenKind::Str(String::new()), TokenKind::Eof]
        );
    }

    #[test]
    fn comments_and_docs() {
        let text =
            "//! Inner.\n//!no space\n// plain\n////  rule\n///  two spaces\r\nx /// trailing\n";
        assert_eq!(
            kinds(text),
            vec![
                TokenKind::InnerDoc("Inner.".into()),
                TokenKind::InnerDoc("no space".into()),
                TokenKind::OuterDoc(" two spaces".into()),
                ident("x"),
                TokenKind::OuterDoc("trailing".into()),
                TokenKind::Eof,
            ]
        );
    }

    #[test]
    fn line_start_flags_and_spans() {
        let mut diags = Diagnostics::default();
        let tokens = lex(3, "a b // c\n  c,\n\n/// d\ne", &[], &mut diags);
        let flags: Vec<bool> = tokens.iter().map(|t| t.line_start).collect();
        assert_eq!(flags, vec![true, false, true, false, true, true, true]);
        assert_eq!(tokens[2].span, Span::new(3, 11, 12));
        assert_eq!(tokens[4].span, Span::new(3, 15, 20));
        let eof = tokens.last().unwrap();
        assert_eq!(eof.span, Span::new(3, 22, 22));
    }

    #[test]
    fn unknown_characters_are_reported_and_skipped() {
        let (codes, rendered) = errors("a @@ b\nc ; d é");
        assert_eq!(codes, vec!["E0001", "E0001", "E0001"]);
        assert!(
            rendered.contains("unexpected characters `@@`"),
            "{rendered}"
        );
        assert!(rendered.contains("lex.protocol:1:3"), "{rendered}");
        assert!(rendered.contains("lex.protocol:2:3"), "{rendered}");
        assert!(rendered.contains("help: remove the `;`"), "{rendered}");
        let mut diags = Diagnostics::default();
        let names: Vec<_> = lex(0, "a @@ b", &[], &mut diags)
            .into_iter()
            .map(|t| t.kind)
            .collect();
        assert_eq!(names, vec![ident("a"), ident("b"), TokenKind::Eof]);
    }

    #[test]
    fn unterminated_string() {
        let (codes, rendered) = errors("x \"abc\ny");
        assert_eq!(codes, vec!["E0002"]);
        assert!(
            rendered.contains("error[E0002]: unterminated string"),
            "{rendered}"
        );
        assert!(rendered.contains("lex.protocol:1:3"), "{rendered}");
        let mut diags = Diagnostics::default();
        let kinds: Vec<_> = lex(0, "x \"abc\ny", &[], &mut diags)
            .into_iter()
            .map(|t| t.kind)
            .collect();
        assert_eq!(
            kinds,
            vec![
                ident("x"),
                TokenKind::Str("abc".into()),
                ident("y"),
                TokenKind::Eof
            ]
        );
    }

    #[test]
    fn bad_escapes() {
        for text in [
            r#""\q""#,
            r#""\u00e9""#,
            r#""\u{}""#,
            r#""\u{1234567}""#,
            r#""\u{d800}""#,
            r#""\u{12""#,
        ] {
            let (codes, rendered) = errors(text);
            assert_eq!(codes, vec!["E0003"], "{text}: {rendered}");
            assert!(rendered.contains("lex.protocol:1:2"), "{rendered}");
        }
        let (_, rendered) = errors(r#""\q""#);
        assert!(
            rendered.contains("unknown character escape `\\q`"),
            "{rendered}"
        );
    }

    #[test]
    fn integer_out_of_range() {
        let (codes, rendered) = errors("x 9223372036854775808 -9223372036854775809");
        assert_eq!(codes, vec!["E0004", "E0004"]);
        assert!(rendered.contains("lex.protocol:1:3"), "{rendered}");
        assert!(rendered.contains("does not fit in an `i64`"), "{rendered}");
    }

    #[test]
    fn integer_with_suffix() {
        let (codes, rendered) = errors("every 10ms");
        assert_eq!(codes, vec!["E0005"]);
        assert!(
            rendered.contains("invalid suffix `ms` on integer literal"),
            "{rendered}"
        );
        assert!(rendered.contains("lex.protocol:1:9"), "{rendered}");
    }

    #[test]
    fn lone_minus_and_slash() {
        let (codes, _) = errors("- / -x");
        assert_eq!(codes, vec!["E0001", "E0001", "E0001"]);
    }
}
