//! Diagnostics that point at a file, line and column (miette), collected so that one run
//! reports every problem at once.

use miette::{Diagnostic, NamedSource, SourceSpan};
use serde_saphyr::{Location, Spanned};
use std::fmt;

/// A semantic error in a repository file: valid YAML with an invalid value.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{message}")]
pub struct SpecError {
    pub message: String,
    #[source_code]
    pub src: NamedSource<String>,
    #[label("{label}")]
    pub span: SourceSpan,
    pub label: String,
    #[help]
    pub help: Option<String>,
}

/// Every problem found while loading a repository.
#[derive(Default)]
pub struct Diagnostics {
    pub reports: Vec<miette::Report>,
}

impl fmt::Debug for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.reports {
            writeln!(f, "{r:?}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the repository has {} error(s)", self.reports.len())
    }
}

impl std::error::Error for Diagnostics {}

impl Diagnostic for Diagnostics {
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        Some(Box::new(
            self.reports.iter().map(|r| r.as_ref() as &dyn Diagnostic),
        ))
    }
}

impl Diagnostics {
    pub fn is_empty(&self) -> bool {
        self.reports.is_empty()
    }

    pub fn push(&mut self, report: miette::Report) {
        self.reports.push(report);
    }
}

/// One source file, for building diagnostics that point into it.
#[derive(Clone)]
pub struct SourceFile {
    pub path: String,
    pub text: String,
}

impl SourceFile {
    /// The byte span of a located value. Quoted scalars start after the quote, so that an
    /// offset inside the value (a selector error) lands on the right character.
    pub fn span_of(&self, loc: &Location) -> SourceSpan {
        let span = loc.span();
        let start = match span.byte_offset() {
            Some(o) => o as usize,
            None => self.offset_of_line_col(loc.line(), loc.column()),
        };
        let len = span.byte_len().unwrap_or(0) as usize;
        (start.min(self.text.len()), len).into()
    }

    fn offset_of_line_col(&self, line: u64, col: u64) -> usize {
        if line == 0 {
            return 0;
        }
        let mut offset = 0;
        for (i, l) in self.text.split_inclusive('\n').enumerate() {
            if i as u64 + 1 == line {
                return offset + (col.saturating_sub(1) as usize).min(l.len());
            }
            offset += l.len();
        }
        self.text.len()
    }

    /// Where the content of a scalar starts (after an opening quote).
    pub fn content_start(&self, loc: &Location) -> usize {
        let start = self.span_of(loc).offset();
        match self.text.as_bytes().get(start) {
            Some(b'"') | Some(b'\'') => start + 1,
            _ => start,
        }
    }

    pub fn error_at(
        &self,
        span: SourceSpan,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> SpecError {
        let (text, span) = shortened(&self.text, span);
        SpecError {
            message: message.into(),
            src: NamedSource::new(&self.path, text),
            span,
            label: label.into(),
            help: None,
        }
    }

    /// The file's YAML as a `T`; a syntax or type error points at its line and column, in a
    /// report that names the file (serde-saphyr's own says `<input>`).
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, miette::Report> {
        serde_saphyr::from_str::<T>(&self.text).map_err(|e| {
            let span = e
                .location()
                .map(|l| self.span_of(&l))
                .unwrap_or_else(|| (0, 0).into());
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid YAML");
            // Drop the "error: line L column C: " prefix; the report shows the position.
            let message = match first.strip_prefix("error: line ") {
                Some(rest) => rest.split_once(": ").map_or(rest, |(_, m)| m).to_string(),
                None => first.to_string(),
            };
            let (message, help) = super::messages::humanize(&message, &self.text, span.offset());
            let error = self.error_at(span, message, "here");
            miette::Report::new(match help {
                Some(h) => error.with_help(h),
                None => error,
            })
        })
    }

    pub fn error<T>(
        &self,
        value: &Spanned<T>,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> SpecError {
        self.error_at(self.span_of(&value.referenced), message, label)
    }
}

/// The longest line an error frame shows whole; past it, the part around the error.
const MAX_LINE: usize = 240;

/// The text an error frame shows: every line over [`MAX_LINE`] bytes cut (around the span
/// on its own line, with `…` where text was left out), so a 5 MB one-line value prints a
/// few hundred bytes; line numbers stay as they are. The span is moved to match.
pub fn shortened(text: &str, span: SourceSpan) -> (String, SourceSpan) {
    if !text.split('\n').any(|l| l.len() > MAX_LINE) {
        return (text.to_string(), span);
    }
    let floor = |s: &str, mut i: usize| {
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let (start, len) = (span.offset(), span.len());
    let mut out = String::with_capacity(text.len().min(64 * 1024));
    let mut new_span = span;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let end = at + line.len();
        let body = line.strip_suffix('\n').unwrap_or(line);
        let newline = if body.len() < line.len() { "\n" } else { "" };
        if body.len() <= MAX_LINE {
            if (at..=end).contains(&start) {
                new_span = (out.len() + start - at, len).into();
            }
            out.push_str(line);
        } else if (at..end).contains(&start) {
            let from = floor(body, (start - at).saturating_sub(MAX_LINE / 3));
            let to = floor(body, (from + MAX_LINE).min(body.len()));
            let lead = if from > 0 { "…" } else { "" };
            out.push_str(lead);
            let offset = out.len() + (start - at - from);
            out.push_str(&body[from..to]);
            new_span = (offset, len.min(to - (start - at))).into();
            out.push_str(if to < body.len() { "…" } else { "" });
            out.push_str(newline);
        } else {
            out.push_str(&body[..floor(body, MAX_LINE)]);
            out.push('…');
            out.push_str(newline);
        }
        at = end;
    }
    (out, new_span)
}

impl SpecError {
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_line_is_cut_around_the_error_and_lines_keep_their_numbers() {
        let huge = format!(
            "project: p\nnote: {}BAD{}\nlast: 1\n",
            "x".repeat(3_000_000),
            "y".repeat(2_000_000)
        );
        let at = huge.find("BAD").unwrap();
        let (text, span) = shortened(&huge, (at, 3).into());
        assert!(text.len() < 1_000, "{}", text.len());
        assert_eq!(&text[span.offset()..span.offset() + span.len()], "BAD");
        assert_eq!(text.lines().count(), 3);
        assert!(text.lines().nth(1).unwrap().starts_with('…'));
        // Short files are left as they are.
        let (same, s) = shortened("a: 1\n", (3, 1).into());
        assert_eq!((same.as_str(), s.offset()), ("a: 1\n", 3));
        // Multi-byte text is cut on character boundaries.
        let wide = format!("k: {}\n", "é".repeat(1000));
        let (cut, _) = shortened(&wide, (3, 2).into());
        assert!(cut.len() < 600, "{}", cut.len());
    }
}
