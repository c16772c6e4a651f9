//! An incremental reader of `text/event-stream` bodies (the WHATWG "server-sent events" format),
//! as far as MCP Streamable HTTP needs it: the `data` of each event.

/// Splits a byte stream into events and yields each event's `data` (its `data:` lines joined
/// with `\n`). `event`, `id` and `retry` fields and comments are skipped.
///
/// Lines may end in `\r\n`, `\n` or `\r`, and chunks may split a line (or a `\r\n`) anywhere.
#[derive(Debug, Default)]
pub(crate) struct EventReader {
    line: Vec<u8>,
    data: String,
    has_data: bool,
    /// The last byte seen was a `\r`: a `\n` right after it ends no second line.
    after_cr: bool,
}

impl EventReader {
    /// Feeds the next chunk; returns the data of every event it completed.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut events = Vec::new();
        for &byte in chunk {
            let after_cr = std::mem::replace(&mut self.after_cr, byte == b'\r');
            match byte {
                b'\n' if after_cr => {}
                b'\n' | b'\r' => {
                    if let Some(data) = self.end_line() {
                        events.push(data);
                    }
                }
                _ => self.line.push(byte),
            }
        }
        events
    }

    fn end_line(&mut self) -> Option<String> {
        let line = String::from_utf8_lossy(&self.line).into_owned();
        self.line.clear();
        if line.is_empty() {
            // A blank line dispatches the event, if it had data.
            let data = std::mem::take(&mut self.data);
            return std::mem::take(&mut self.has_data).then_some(data);
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_str(), ""),
        };
        if field == "data" {
            if self.has_data {
                self.data.push('\n');
            }
            self.data.push_str(value);
            self.has_data = true;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere_with_any_line_ending() {
        let stream = b": comment\r\nevent: message\r\nid: 1\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n\
                       data:second\n\ndata: third\r\rretry: 5\n\n";
        let whole = EventReader::default().push(stream);
        assert_eq!(whole, ["{\"a\":\n1}", "second", "third"]);
        // One byte at a time gives the same events (a chunk boundary inside "\r\n" included).
        let mut reader = EventReader::default();
        let bytewise: Vec<String> = stream
            .iter()
            .flat_map(|b| reader.push(std::slice::from_ref(b)))
            .collect();
        assert_eq!(bytewise, whole);
    }

    #[test]
    fn an_event_without_data_or_an_unfinished_one_yields_nothing() {
        let mut reader = EventReader::default();
        assert!(reader.push(b"event: ping\n\n").is_empty());
        assert!(reader.push(b"data: not yet dispatched\n").is_empty());
        assert_eq!(reader.push(b"\n"), ["not yet dispatched"]);
    }
}
