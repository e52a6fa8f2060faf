//! Diagnostics for definition files, rendered like rustc's.
//!
//! ```text
//! error[E0101]: unknown type `Strng`
//!  --> protocol-defs/chat.protocol:7:11
//!   |
//! 7 |     text: Strng,
//!   |           ^^^^^ not a type in this protocol
//!   |
//!   = help: a type with a similar name exists: `string`
//! ```
//!
//! Every code, with its title and explanation, is listed once, in [`codes::CODES`].
//!
//! Every pass (lexer, parser, checker) pushes into one [`Diagnostics`] list and keeps going, so a
//! file reports all of its errors at once.
//!
//! Everything a diagnostic prints (source lines, names, labels, paths) goes through [`printable`]
//! when rendered, so a definition cannot send control sequences to the reader's terminal.

pub mod codes;

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

/// A byte range in one source file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Span {
    /// Index of the file in its [`SourceMap`].
    pub file: u32,
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    /// A span in `file` from `start` to `end`.
    pub fn new(file: u32, start: usize, end: usize) -> Self {
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Span {
            file,
            start: clamp(start),
            end: clamp(end.max(start)),
        }
    }

    /// The span from the start of `self` to the end of `other` (same file).
    pub fn to(self, other: Span) -> Span {
        Span {
            file: self.file,
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// The files a run has read, so a [`Span`] can be turned into `file:line:col`.
#[derive(Debug, Default, Clone)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

/// One source file.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as given (shown in diagnostics).
    pub path: PathBuf,
    /// The whole text.
    pub text: String,
    /// Byte offset of the start of every line.
    line_starts: Vec<usize>,
}

impl SourceMap {
    /// Adds a file and returns its index for [`Span::file`].
    pub fn add(&mut self, path: impl Into<PathBuf>, text: impl Into<String>) -> u32 {
        let text = text.into();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        self.files.push(SourceFile {
            path: path.into(),
            text,
            line_starts,
        });
        u32::try_from(self.files.len() - 1).unwrap_or(u32::MAX)
    }

    /// The file with index `file`.
    pub fn get(&self, file: u32) -> Option<&SourceFile> {
        self.files.get(file as usize)
    }

    /// Every file, in the order they were added.
    pub fn files(&self) -> impl Iterator<Item = &SourceFile> {
        self.files.iter()
    }
}

impl SourceFile {
    /// The text of a span (empty if the span is out of range).
    pub fn slice(&self, span: Span) -> &str {
        self.text
            .get(span.start as usize..span.end as usize)
            .unwrap_or("")
    }

    /// 1-based line and column (in chars) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1) - 1;
        let start = self.line_starts[line];
        let col = self
            .text
            .get(start..offset)
            .map_or(0, |prefix| prefix.chars().count());
        (line + 1, col + 1)
    }

    /// Where a span sits on its first line as rendered: the 1-based line, and the 1-based
    /// column and width in chars of the [`printable`] text, so that carets line up with it.
    /// A span over several lines is marked to the end of its first line.
    fn rendered_position(&self, span: Span) -> (usize, usize, usize) {
        let (start, end) = (span.start as usize, span.end as usize);
        let (line, _) = self.line_col(start);
        let line_start = self.line_starts[line - 1];
        let line_end = line_start + self.line(line).len();
        let width_of = |from: usize, to: usize| {
            self.text
                .get(from.min(to)..to)
                .map_or(0, |t| printable(t).chars().count())
        };
        let start = start.clamp(line_start, line_end);
        let col = width_of(line_start, start) + 1;
        let width = width_of(start, end.min(line_end)).max(1);
        (line, col, width)
    }

    /// The text of a 1-based line, without its line break.
    pub fn line(&self, line: usize) -> &str {
        let Some(&start) = self.line_starts.get(line.wrapping_sub(1)) else {
            return "";
        };
        let end = self
            .line_starts
            .get(line)
            .map_or(self.text.len(), |&next| next);
        self.text
            .get(start..end)
            .unwrap_or("")
            .trim_end_matches(['\n', '\r'])
    }
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The definition cannot be compiled.
    Error,
    /// Compiles, but probably not what was meant.
    Warning,
    /// Worth knowing, nothing wrong (a compatible change `protolink diff` reports).
    Note,
}

/// One problem in a definition file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Stable code such as `E0102`, listed in the language reference.
    pub code: &'static str,
    /// The headline.
    pub message: String,
    /// Where, and a short label printed under the caret.
    pub primary: (Span, String),
    /// Other places worth showing, each with a label.
    pub secondary: Vec<(Span, String)>,
    /// `help:` lines.
    pub help: Vec<String>,
    /// `note:` lines.
    pub notes: Vec<String>,
}

impl Diagnostic {
    /// An error with a code, a headline, and a labelled span.
    pub fn error(
        code: &'static str,
        message: impl Into<String>,
        span: Span,
        label: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            primary: (span, label.into()),
            secondary: Vec::new(),
            help: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Adds another labelled span.
    pub fn with_secondary(mut self, span: Span, label: impl Into<String>) -> Self {
        self.secondary.push((span, label.into()));
        self
    }

    /// Adds a `help:` line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help.push(help.into());
        self
    }

    /// Adds a `note:` line.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// Renders the diagnostic like rustc, without colour.
    ///
    /// Labelled lines are shown in source order, file by file (the primary span's file first,
    /// other files introduced by `:::`). Lines far apart are separated by `...`; a single line
    /// between two labelled lines is shown instead. Several labels on one line share it, with
    /// every label but the rightmost hung below its mark, as rustc does.
    pub fn render(&self, sources: &SourceMap) -> String {
        let mut out = String::new();
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        };
        out.push_str(&format!(
            "{kind}[{}]: {}\n",
            self.code,
            printable(&self.message)
        ));
        let Some(file) = sources.get(self.primary.0.file) else {
            for note in &self.notes {
                out.push_str(&format!("  = note: {}\n", printable(note)));
            }
            for help in &self.help {
                out.push_str(&format!("  = help: {}\n", printable(help)));
            }
            return out;
        };

        // Every label, resolved to a line and columns, grouped by file (primary file first).
        let mut labels: Vec<Label<'_>> = Vec::new();
        let all =
            std::iter::once((&self.primary, true)).chain(self.secondary.iter().map(|s| (s, false)));
        for ((span, text), primary) in all {
            let Some(f) = sources.get(span.file) else {
                continue;
            };
            let (line, col, width) = f.rendered_position(*span);
            labels.push(Label {
                file: span.file,
                line,
                at: f.line_col(span.start as usize).1,
                col,
                width,
                text: printable(text),
                primary,
            });
        }
        let mut files: Vec<u32> = vec![self.primary.0.file];
        for l in &labels {
            if !files.contains(&l.file) {
                files.push(l.file);
            }
        }
        let gutter = labels
            .iter()
            .map(|l| l.line.to_string().len())
            .max()
            .unwrap_or(1);
        let pad = " ".repeat(gutter);

        let (line, col) = file.line_col(self.primary.0.start as usize);
        out.push_str(&format!(
            "{pad}--> {}:{line}:{col}\n",
            printable(&file.path.display().to_string())
        ));
        for (index, &file_id) in files.iter().enumerate() {
            let Some(f) = sources.get(file_id) else {
                continue;
            };
            let mut here: Vec<&Label<'_>> = labels.iter().filter(|l| l.file == file_id).collect();
            here.sort_by_key(|l| (l.line, l.col));
            if index > 0 {
                let Some(first) = here.first() else { continue };
                out.push_str(&format!("{pad} |\n"));
                out.push_str(&format!(
                    "{pad}::: {}:{}:{}\n",
                    printable(&f.path.display().to_string()),
                    first.line,
                    first.at
                ));
            }
            out.push_str(&format!("{pad} |\n"));
            let mut previous: Option<usize> = None;
            let mut rest = here.as_slice();
            while let Some(first) = rest.first() {
                let line = first.line;
                let count = rest.iter().take_while(|l| l.line == line).count();
                let (on_line, after) = rest.split_at(count);
                rest = after;
                match previous {
                    Some(p) if line == p + 2 => {
                        out.push_str(&format!(
                            "{:>gutter$} | {}\n",
                            p + 1,
                            printable(f.line(p + 1))
                        ));
                    }
                    Some(p) if line > p + 2 => out.push_str("...\n"),
                    _ => {}
                }
                previous = Some(line);
                render_line(&mut out, &pad, line, &printable(f.line(line)), on_line);
            }
        }
        if !self.help.is_empty() || !self.notes.is_empty() {
            out.push_str(&format!("{pad} |\n"));
        }
        for note in &self.notes {
            out.push_str(&format!("{pad} = note: {}\n", printable(note)));
        }
        for help in &self.help {
            out.push_str(&format!("{pad} = help: {}\n", printable(help)));
        }
        out
    }
}

/// Text from a definition, made safe to print on a terminal: every character that does not print
/// is written as its Rust escape (`\u{1b}`, `\r`, `\u{202e}`), and a tab as four spaces.
///
/// "Does not print" is what [`str::escape_debug`] escapes: control characters, format characters
/// such as bidi overrides and zero-width spaces, line and paragraph separators, spaces other than
/// U+0020, private-use and unassigned code points. Quotes and backslashes are kept as they are.
/// Every diagnostic is rendered through this one function, so source lines, names, labels and
/// paths are all escaped the same way, and columns are counted in its output.
pub fn printable(text: &str) -> Cow<'_, str> {
    if text.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\t' {
            out.push_str("    ");
        } else if prints(c) {
            out.push(c);
        } else {
            out.extend(c.escape_debug());
        }
    }
    Cow::Owned(out)
}

/// Whether `c` prints as itself (see [`printable`]).
fn prints(c: char) -> bool {
    if c.is_ascii() {
        return !c.is_ascii_control();
    }
    if c.is_control() {
        return false;
    }
    // `str::escape_debug` escapes a combining mark only at the start of the text, so ask about
    // `c` after a letter: combining marks print, on the letter before them.
    let mut buf = [0u8; 5];
    buf[0] = b'a';
    let len = 1 + c.encode_utf8(&mut buf[1..]).len();
    std::str::from_utf8(&buf[..len]).is_ok_and(|s| s.escape_debug().nth(1) == Some(c))
}

/// One labelled span, resolved to a line and columns (1-based, in chars of the printed line).
struct Label<'a> {
    file: u32,
    line: usize,
    /// The column in the file (for `file:line:col`).
    at: usize,
    /// The column and width on the printed line (for the marks).
    col: usize,
    width: usize,
    text: Cow<'a, str>,
    primary: bool,
}

/// Prints one source line and the labels on it (sorted by column).
///
/// ```text
/// 21 | message ping from server {} -> {}
///    | -------                     ^^ only requests are answered
///    | |
///    | declared here
/// ```
fn render_line(out: &mut String, pad: &str, line: usize, text: &str, labels: &[&Label<'_>]) {
    let gutter = pad.len();
    out.push_str(&format!("{line:>gutter$} | {text}\n"));
    let end = labels
        .iter()
        .map(|l| l.col - 1 + l.width)
        .max()
        .unwrap_or(0);
    let mut marks: Vec<char> = vec![' '; end];
    // Secondary marks first, so a primary mark wins where they overlap.
    for l in labels
        .iter()
        .filter(|l| !l.primary)
        .chain(labels.iter().filter(|l| l.primary))
    {
        let mark = if l.primary { '^' } else { '-' };
        for c in &mut marks[l.col - 1..l.col - 1 + l.width] {
            *c = mark;
        }
    }
    let marks: String = marks.into_iter().collect();
    // The rightmost label goes on the mark line; the others hang below their marks.
    let mut hanging: Vec<&Label<'_>> = labels
        .iter()
        .copied()
        .filter(|l| !l.text.is_empty())
        .collect();
    let inline = hanging.pop();
    match inline {
        Some(l) => out.push_str(&format!("{pad} | {marks} {}\n", l.text)),
        None => out.push_str(&format!("{pad} | {}\n", marks.trim_end())),
    }
    if hanging.is_empty() {
        return;
    }
    let bars = |upto: usize| -> String {
        let mut s: Vec<char> = Vec::new();
        for l in &hanging[..upto] {
            if s.len() < l.col {
                s.resize(l.col - 1, ' ');
                s.push('|');
            }
        }
        s.into_iter().collect()
    };
    out.push_str(&format!("{pad} | {}\n", bars(hanging.len())));
    for i in (0..hanging.len()).rev() {
        let l = hanging[i];
        let mut s = bars(i);
        let width = s.chars().count();
        if width < l.col - 1 {
            s.push_str(&" ".repeat(l.col - 1 - width));
        }
        s.push_str(&l.text);
        out.push_str(&format!("{pad} | {s}\n"));
    }
}

/// Diagnostics collected over a run.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics {
    list: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Records a diagnostic.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.list.push(diagnostic);
    }

    /// Whether any error was recorded.
    pub fn has_errors(&self) -> bool {
        self.list.iter().any(|d| d.severity == Severity::Error)
    }

    /// Every diagnostic, in the order recorded.
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.list.iter()
    }

    /// How many diagnostics (errors and warnings) were recorded; cheap, so a pass can tell
    /// whether a step reported anything.
    pub fn count(&self) -> usize {
        self.list.len()
    }

    /// How many errors were recorded.
    pub fn error_count(&self) -> usize {
        self.list
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    /// Sorts by file and position, so output does not depend on the order of the passes.
    pub fn sort(&mut self) {
        self.list
            .sort_by_key(|d| (d.primary.0.file, d.primary.0.start, d.primary.0.end));
    }

    /// Renders every diagnostic, separated by blank lines, and a summary line.
    pub fn render(&self, sources: &SourceMap) -> String {
        let mut out = String::new();
        for d in &self.list {
            out.push_str(&d.render(sources));
            out.push('\n');
        }
        let errors = self.error_count();
        if errors > 0 {
            let s = if errors == 1 { "" } else { "s" };
            out.push_str(&format!("error: could not compile: {errors} error{s}\n"));
        }
        out
    }
}

/// `` `A` ``, `` `A` and `B` ``, `` `A`, `B` and `C` ``.
pub(crate) fn name_list<S: AsRef<str>>(names: &[S]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{}`", n.as_ref())).collect();
    match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// Suggests the candidate closest to `name`, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(&name.to_lowercase(), &c.to_lowercase()), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, c)| (d, c))
        .map(|(_, c)| c)
}

/// Levenshtein distance in chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Returns the path relative to `base` when it is inside it, for shorter diagnostics.
pub fn display_path(path: &Path, base: &Path) -> PathBuf {
    path.strip_prefix(base)
        .map_or_else(|_| path.to_path_buf(), Path::to_path_buf)
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_what_does_not_print() {
        assert!(matches!(printable("plain `text`"), Cow::Borrowed(_)));
        assert_eq!(printable("\x1b]0;pwned\x07"), "\\u{1b}]0;pwned\\u{7}");
        assert_eq!(printable("a\rb\0c"), "a\\rb\\0c");
        assert_eq!(printable("\u{202e}desrever"), "\\u{202e}desrever");
        assert_eq!(
            printable("zero\u{200b}width\u{feff}"),
            "zero\\u{200b}width\\u{feff}"
        );
        assert_eq!(printable("\u{85}\u{2028}\u{a0}"), "\\u{85}\\u{2028}\\u{a0}");
        assert_eq!(printable("\tx"), "    x");
        // What prints is kept: quotes, backslashes, letters, combining marks, U+FFFD.
        assert_eq!(
            printable("\"\\' été cafe\u{301} \u{fffd}"),
            "\"\\' été cafe\u{301} \u{fffd}"
        );
    }

    #[test]
    fn carets_line_up_with_escaped_text() {
        let mut sources = SourceMap::default();
        let text = "x = \"\x1b[2J\"\tbad\n";
        let file = sources.add("t.protocol", text);
        let at = text.find("bad").unwrap_or_default();
        let d = Diagnostic::error(
            "E0001",
            "a \u{1b}]0;t\u{7} name",
            Span::new(file, at, at + 3),
            "here \u{202e}",
        );
        let rendered = d.render(&sources);
        assert_eq!(
            rendered,
            "error[E0001]: a \\u{1b}]0;t\\u{7} name\n \
             --> t.protocol:1:12\n  \
             |\n\
             1 | x = \"\\u{1b}[2J\"    bad\n  \
             |                    ^^^ here \\u{202e}\n"
        );
        assert!(!rendered.chars().any(|c| c.is_control() && c != '\n'));
    }
}
