//! Log lines from many containers as one stream: each line of Docker's timestamped output
//! split into its time and text, merged in time order, prefixed with where it came from
//! (`h1 web-0a1b2c3d4e-0 | …`, as `kubectl logs -l` and `stern` show them). Pure.

/// Where a line came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogSource {
    pub host: String,
    pub pod: String,
    /// The container within the pod, shown when the pod has more than one.
    pub container: Option<String>,
}

impl LogSource {
    pub fn prefix(&self) -> String {
        match &self.container {
            Some(c) => format!("{} {}/{c}", self.host, self.pod),
            None => format!("{} {}", self.host, self.pod),
        }
    }
}

/// A moment as Docker writes it (RFC 3339, UTC, nanoseconds with trailing zeros cut): the
/// text up to the seconds and the nanoseconds, which order correctly together.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Stamp {
    pub seconds: String,
    pub nanos: u32,
}

/// One line, split: `2026-11-27T01:02:03.5Z hello` is (stamp, `hello`). A line without a
/// timestamp (not from Docker's `timestamps=true`) keeps its text and sorts first.
pub fn split_stamp(line: &str) -> (Stamp, &str) {
    let (first, rest) = line.split_once(' ').unwrap_or((line, ""));
    let Some(at) = first.strip_suffix('Z') else {
        return (Stamp::default(), line);
    };
    if !first.contains('T') {
        return (Stamp::default(), line);
    }
    let (seconds, fraction) = at.split_once('.').unwrap_or((at, ""));
    let digits: String = fraction
        .chars()
        .chain(std::iter::repeat('0'))
        .take(9)
        .collect();
    match digits.parse::<u32>() {
        Ok(nanos) => (
            Stamp {
                seconds: seconds.to_string(),
                nanos,
            },
            rest,
        ),
        Err(_) => (Stamp::default(), line),
    }
}

/// A line ready to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub stamp: Stamp,
    /// The timestamp as Docker wrote it (for `--timestamps`).
    pub time: String,
    pub source: LogSource,
    pub text: String,
}

impl LogLine {
    pub fn parse(source: &LogSource, raw: &str) -> LogLine {
        let (stamp, text) = split_stamp(raw);
        let time = if stamp == Stamp::default() {
            String::new()
        } else {
            raw.split(' ').next().unwrap_or("").to_string()
        };
        LogLine {
            stamp,
            time,
            source: source.clone(),
            text: text.to_string(),
        }
    }

    /// `h1 web-0a1b2c3d4e-0 | text`, the prefix padded to `width`.
    pub fn render(&self, width: usize, timestamps: bool) -> String {
        let time = if timestamps && !self.time.is_empty() {
            format!("{} ", self.time)
        } else {
            String::new()
        };
        format!("{:<width$} | {time}{}", self.source.prefix(), self.text)
    }
}

/// Every container's lines in time order (lines of one moment keep their source's order).
pub fn merge(streams: Vec<(LogSource, Vec<String>)>) -> Vec<LogLine> {
    let mut lines: Vec<LogLine> = streams
        .iter()
        .flat_map(|(source, raw)| raw.iter().map(move |r| LogLine::parse(source, r)))
        .collect();
    lines.sort_by(|a, b| a.stamp.cmp(&b.stamp));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(host: &str, pod: &str) -> LogSource {
        LogSource {
            host: host.into(),
            pod: pod.into(),
            container: None,
        }
    }

    #[test]
    fn stamps_order_by_time_whatever_their_digits() {
        let (a, text) = split_stamp("2026-11-27T01:02:03.1234Z hello world");
        let (b, _) = split_stamp("2026-11-27T01:02:03.123456789Z x");
        let (c, _) = split_stamp("2026-11-27T01:02:03Z x");
        assert_eq!(text, "hello world");
        assert_eq!(a.nanos, 123_400_000);
        assert!(c < a && a < b, "{c:?} {a:?} {b:?}");
        assert_eq!(split_stamp("no stamp here").1, "no stamp here");
    }

    #[test]
    fn streams_merge_in_time_order_with_their_source() {
        let merged = merge(vec![
            (
                source("h1", "web-a-0"),
                vec![
                    "2026-11-27T01:00:01Z one".into(),
                    "2026-11-27T01:00:03Z three".into(),
                ],
            ),
            (
                source("h2", "web-a-1"),
                vec!["2026-11-27T01:00:02.5Z two".into()],
            ),
        ]);
        let shown: Vec<String> = merged.iter().map(|l| l.render(10, false)).collect();
        assert_eq!(
            shown,
            ["h1 web-a-0 | one", "h2 web-a-1 | two", "h1 web-a-0 | three"]
        );
        assert_eq!(
            merged[1].render(0, true),
            "h2 web-a-1 | 2026-11-27T01:00:02.5Z two"
        );
    }
}
