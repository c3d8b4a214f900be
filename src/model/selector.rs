//! Kubernetes label selectors: `app=web,tier!=db,env in (prod,staging),!legacy,size>3`.
//!
//! Parsing reports the byte offset of the offending character so callers can point at it.

use super::labels::{check_key, check_value, Labels};
use serde::{Serialize, Serializer};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Eq,
    NotEq,
    In,
    NotIn,
    Exists,
    NotExists,
    Gt,
    Lt,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub op: Op,
    pub values: Vec<String>,
}

/// A parsed selector. The empty selector matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    pub requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorError {
    /// Byte offset in the selector text.
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for SelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at character {})", self.message, self.offset + 1)
    }
}

impl std::error::Error for SelectorError {}

impl Requirement {
    pub fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match self.op {
            Op::Exists => value.is_some(),
            Op::NotExists => value.is_none(),
            Op::Eq | Op::In => value.is_some_and(|v| self.values.contains(v)),
            Op::NotEq | Op::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Op::Gt | Op::Lt => {
                let (Some(v), Ok(bound)) = (value, self.values[0].parse::<i64>()) else {
                    return false;
                };
                let Ok(v) = v.parse::<i64>() else {
                    return false;
                };
                if self.op == Op::Gt {
                    v > bound
                } else {
                    v < bound
                }
            }
        }
    }
}

impl Selector {
    pub fn everything() -> Self {
        Self::default()
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        Parser { text, pos: 0 }.selector()
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match r.op {
                Op::Exists => write!(f, "{}", r.key)?,
                Op::NotExists => write!(f, "!{}", r.key)?,
                Op::Eq => write!(f, "{}={}", r.key, r.values[0])?,
                Op::NotEq => write!(f, "{}!={}", r.key, r.values[0])?,
                Op::Gt => write!(f, "{}>{}", r.key, r.values[0])?,
                Op::Lt => write!(f, "{}<{}", r.key, r.values[0])?,
                Op::In => write!(f, "{} in ({})", r.key, r.values.join(","))?,
                Op::NotIn => write!(f, "{} notin ({})", r.key, r.values.join(","))?,
            }
        }
        Ok(())
    }
}

impl Serialize for Selector {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')
}

impl Parser<'_> {
    fn err<T>(&self, offset: usize, message: impl Into<String>) -> Result<T, SelectorError> {
        Err(SelectorError {
            offset,
            message: message.into(),
        })
    }

    fn skip_spaces(&mut self) {
        // Kubernetes' lexer skips these four.
        while self
            .peek()
            .is_some_and(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
        {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn eat(&mut self, s: &str) -> bool {
        if self.text[self.pos..].starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    fn word(&mut self) -> (usize, &str) {
        let start = self.pos;
        while self.peek().is_some_and(is_word_char) {
            self.pos += 1;
        }
        (start, &self.text[start..self.pos])
    }

    fn key(&mut self) -> Result<String, SelectorError> {
        self.skip_spaces();
        let (start, key) = self.word();
        if key.is_empty() {
            let found = self
                .peek()
                .map_or("the end".to_string(), |c| format!("{c:?}"));
            return self.err(start, format!("expected a label key, found {found}"));
        }
        let key = key.to_string();
        check_key(&key).or_else(|(at, why)| self.err(start + at, why))?;
        Ok(key)
    }

    fn value(&mut self) -> Result<String, SelectorError> {
        self.skip_spaces();
        let (start, value) = self.word();
        let value = value.to_string();
        check_value(&value).or_else(|(at, why)| self.err(start + at, why))?;
        Ok(value)
    }

    fn selector(mut self) -> Result<Selector, SelectorError> {
        let mut requirements = Vec::new();
        self.skip_spaces();
        if self.pos == self.text.len() {
            return Ok(Selector { requirements });
        }
        loop {
            requirements.push(self.requirement()?);
            self.skip_spaces();
            match self.peek() {
                None => break,
                Some(',') => self.pos += 1,
                Some(c) => {
                    return self.err(self.pos, format!("expected ',' or the end, found {c:?}"))
                }
            }
        }
        Ok(Selector { requirements })
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        self.skip_spaces();
        if self.eat("!") {
            let key = self.key()?;
            return Ok(Requirement {
                key,
                op: Op::NotExists,
                values: vec![],
            });
        }
        let key = self.key()?;
        self.skip_spaces();
        let at = self.pos;
        let op = if self.eat("==") || self.eat("=") {
            Op::Eq
        } else if self.eat("!=") {
            Op::NotEq
        } else if self.eat(">") {
            Op::Gt
        } else if self.eat("<") {
            Op::Lt
        } else {
            let save = self.pos;
            let (_, word) = self.word();
            let word = word.to_string();
            match word.as_str() {
                "in" => Op::In,
                "notin" => Op::NotIn,
                "" => {
                    return Ok(Requirement {
                        key,
                        op: Op::Exists,
                        values: vec![],
                    })
                }
                _ => {
                    return self.err(
                        save,
                        format!(
                            "expected an operator (=, ==, !=, in, notin, >, <), found {word:?}"
                        ),
                    )
                }
            }
        };
        let values = match op {
            Op::In | Op::NotIn => self.value_set()?,
            Op::Gt | Op::Lt => {
                self.skip_spaces();
                let start = self.pos;
                let v = self.value()?;
                if v.parse::<i64>().is_err() {
                    return self.err(
                        start,
                        format!(
                            "'{}' needs an integer value, found {v:?}",
                            &self.text[at..at + 1]
                        ),
                    );
                }
                vec![v]
            }
            _ => vec![self.value()?],
        };
        Ok(Requirement { key, op, values })
    }

    fn value_set(&mut self) -> Result<Vec<String>, SelectorError> {
        self.skip_spaces();
        if !self.eat("(") {
            return self.err(self.pos, "expected '(' to start a set of values");
        }
        let mut values = Vec::new();
        self.skip_spaces();
        if self.peek() == Some(')') {
            return self.err(self.pos, "a set of values for in or notin cannot be empty");
        }
        loop {
            values.push(self.value()?);
            self.skip_spaces();
            if self.eat(")") {
                break;
            }
            if !self.eat(",") {
                return self.err(self.pos, "expected ',' or ')' in a set of values");
            }
        }
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::model::labels::from_pairs as labels;

    #[test]
    fn parses_and_matches_every_operator() {
        let l = labels(&[("app", "web"), ("env", "prod"), ("size", "5")]);
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("tier!=db", true),
            ("env in (prod, staging)", true),
            ("env notin (prod)", false),
            ("tier notin (db)", true),
            ("app", true),
            ("!app", false),
            ("!legacy", true),
            ("size>3", true),
            ("size<3", false),
            ("app=web,env in (prod),!legacy", true),
            ("app=web, env=dev", false),
            ("example.com/team=x", false),
        ];
        for (text, expected) in cases {
            let sel = Selector::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(sel.matches(&l), expected, "{text}");
        }
    }

    #[test]
    fn round_trips_through_display() {
        let text = "app=web,tier!=db,env in (prod,staging),!legacy,size>3";
        assert_eq!(Selector::parse(text).unwrap().to_string(), text);
    }

    #[test]
    fn errors_point_at_the_offending_character() {
        let cases = [
            ("app=web,", 8),
            ("app=we b", 7),
            ("app~web", 3),
            ("env in prod", 7),
            ("env in (a b)", 10),
            ("size>x", 5),
            ("-app=x", 0),
            ("app=web!", 7),
        ];
        for (text, offset) in cases {
            let err = Selector::parse(text).unwrap_err();
            assert_eq!(err.offset, offset, "{text}: {err}");
        }
    }
}
