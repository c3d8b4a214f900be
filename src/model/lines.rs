//! A stream's bytes (container logs, a job's output) cut into lines, each at most
//! [`MAX_LINE`] bytes: a container that writes gigabytes without a line break cannot make
//! berth hold them. Bytes are turned into text a whole line at a time, so a character split
//! between two chunks stays whole. Pure.

/// The longest line kept; the rest of a longer one is dropped, and the line says so.
pub const MAX_LINE: usize = 64 * 1024;

/// Lines so far and the start of the next one.
#[derive(Debug, Default)]
pub struct Lines {
    partial: Vec<u8>,
    /// The current line passed MAX_LINE: its rest is dropped until the next line break.
    dropping: bool,
}

impl Lines {
    /// Takes a chunk and hands every line it completes to `out` (without `\r\n` or `\n`).
    pub fn push(&mut self, chunk: &[u8], out: &mut dyn FnMut(String)) {
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            self.take(&rest[..end]);
            out(self.line());
            rest = &rest[end + 1..];
        }
        self.take(rest);
    }

    /// The last line, when the stream ended without a line break.
    pub fn finish(mut self, out: &mut dyn FnMut(String)) {
        if !self.partial.is_empty() || self.dropping {
            out(self.line());
        }
    }

    fn take(&mut self, bytes: &[u8]) {
        if self.dropping {
            return;
        }
        let room = MAX_LINE - self.partial.len();
        if bytes.len() > room {
            self.partial.extend_from_slice(&bytes[..room]);
            self.dropping = true;
        } else {
            self.partial.extend_from_slice(bytes);
        }
    }

    fn line(&mut self) -> String {
        let bytes = std::mem::take(&mut self.partial);
        let mut text = String::from_utf8_lossy(&bytes)
            .trim_end_matches('\r')
            .to_string();
        if std::mem::take(&mut self.dropping) {
            text.push_str(&format!(" … (line cut at {} KiB)", MAX_LINE / 1024));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<String> {
        let mut lines = Lines::default();
        let mut out = Vec::new();
        for c in chunks {
            lines.push(c, &mut |l| out.push(l));
        }
        lines.finish(&mut |l| out.push(l));
        out
    }

    #[test]
    fn chunks_become_lines_and_a_character_split_between_chunks_stays_whole() {
        let e = "é".as_bytes();
        assert_eq!(
            split(&[b"one\r\ntw", b"o\nthr", &e[..1], &e[1..], b"e"]),
            ["one", "two", "thrée"]
        );
        assert_eq!(split(&[b"a\n"]), ["a"]);
        assert!(split(&[]).is_empty());
    }

    #[test]
    fn a_line_without_end_is_cut_and_memory_stays_bounded() {
        let mut lines = Lines::default();
        let mut out = Vec::new();
        let mb = vec![b'x'; 1024 * 1024];
        for _ in 0..50 {
            lines.push(&mb, &mut |l| out.push(l));
            assert!(lines.partial.len() <= MAX_LINE);
        }
        lines.push(b"\nnext\n", &mut |l| out.push(l));
        assert_eq!(out.len(), 2);
        assert!(out[0].ends_with("… (line cut at 64 KiB)"));
        assert_eq!(out[0].len(), MAX_LINE + " … (line cut at 64 KiB)".len());
        assert_eq!(out[1], "next");
    }
}
