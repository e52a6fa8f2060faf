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
//! Every pass (lexer, parser, checker) pushes into one [`Diagnostics`] list and keeps going, so a
//! file reports all of its errors at once.

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
        };
        out.push_str(&format!("{kind}[{}]: {}\n", self.code, self.message));
        let Some(file) = sources.get(self.primary.0.file) else {
            for note in &self.notes {
                out.push_str(&format!("  = note: {note}\n"));
            }
            for help in &self.help {
                out.push_str(&format!("  = help: {help}\n"));
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
            let (line, col) = f.line_col(span.start as usize);
            let (end_line, end_col) = f.line_col(span.end as usize);
            let width = if end_line == line {
                end_col.saturating_sub(col).max(1)
            } else {
                f.line(line).chars().count().saturating_sub(col - 1).max(1)
            };
            labels.push(Label {
                file: span.file,
                line,
                col,
                width,
                text,
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
        out.push_str(&format!("{pad}--> {}:{line}:{col}\n", file.path.display()));
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
                    f.path.display(),
                    first.line,
                    first.col
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
                        out.push_str(&format!("{:>gutter$} | {}\n", p + 1, f.line(p + 1)));
                    }
                    Some(p) if line > p + 2 => out.push_str("...\n"),
                    _ => {}
                }
                previous = Some(line);
                render_line(&mut out, &pad, line, f.line(line), on_line);
            }
        }
        if !self.help.is_empty() || !self.notes.is_empty() {
            out.push_str(&format!("{pad} |\n"));
        }
        for note in &self.notes {
            out.push_str(&format!("{pad} = note: {note}\n"));
        }
        for help in &self.help {
            out.push_str(&format!("{pad} = help: {help}\n"));
        }
        out
    }
}

/// One labelled span, resolved to a line and columns (1-based, in chars).
struct Label<'a> {
    file: u32,
    line: usize,
    col: usize,
    width: usize,
    text: &'a str,
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
        s.push_str(l.text);
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
