//! Lexing and parsing definition files into the [`ast`].
//!
//! The parser never stops at the first error: it reports into a [`Diagnostics`] list, skips to a
//! point where it can go on (the next item or directive), and always returns a [`ast::File`].

pub mod ast;
mod lexer;
mod parser;

use crate::diagnostics::Diagnostics;

/// Parses the text of file number `file` (its index in the [`crate::diagnostics::SourceMap`]).
///
/// Syntax errors go to `diags`; the returned tree holds everything that could be parsed.
pub fn parse(file: u32, text: &str, diags: &mut Diagnostics) -> ast::File {
    let tokens = lexer::lex(file, text, diags);
    parser::Parser::new(file, text, &tokens, diags).parse_file()
}
