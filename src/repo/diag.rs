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
        SpecError {
            message: message.into(),
            src: NamedSource::new(&self.path, self.text.clone()),
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

impl SpecError {
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}
