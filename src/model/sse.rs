//! Incremental Server-Sent Events parsing for provider streams.
//!
//! [`SseDecoder`] takes bytes in whatever pieces the network delivers them and yields one
//! [`SseEvent`] per blank-line terminated block, as soon as that block's last line has
//! arrived: a slow provider streams. Where the bytes are split never changes the events.
//! [`SseReader`] runs the decoder over a [`BufRead`].
//!
//! The format follows the WHATWG `text/event-stream` rules: lines end in LF, CRLF or a lone
//! CR; `:` starts a comment; `data:` lines are joined with `\n`; `event:` names the event;
//! `id:` and `retry:` are accepted and ignored; an optional single space after the colon is
//! dropped. Unlike a browser, a final event that is not followed by a blank line before the
//! end of the stream is still delivered, since some servers close without one.

use std::io::{self, BufRead};

/// The longest line accepted, so a broken upstream cannot grow memory without bound.
const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// One dispatched event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` name, when the block had one.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

impl SseEvent {
    /// The OpenAI end-of-stream marker `data: [DONE]`.
    pub fn is_done(&self) -> bool {
        self.data.trim() == "[DONE]"
    }
}

/// Line-at-a-time event assembly, independent of where the lines come from.
#[derive(Debug, Default)]
pub struct SseParser {
    event: Option<String>,
    data: String,
    has_data: bool,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one line without its terminator. Returns an event when the line is the blank
    /// line that ends a block carrying data.
    pub fn feed_line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_string()),
            // `id`, `retry` and unknown fields carry nothing a model client needs.
            _ => {}
        }
        None
    }

    /// Ends the stream: returns a pending event that lacked its closing blank line.
    pub fn finish(&mut self) -> Option<SseEvent> {
        self.dispatch()
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        if !std::mem::take(&mut self.has_data) {
            return None;
        }
        Some(SseEvent {
            event: event.filter(|e| !e.is_empty()),
            data: std::mem::take(&mut self.data),
        })
    }
}

/// A line of an event stream was longer than [`MAX_LINE_BYTES`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("event stream line longer than {MAX_LINE_BYTES} bytes")]
pub struct LineTooLong;

/// Turns bytes, pushed in pieces of any size, into events.
#[derive(Debug, Default)]
pub struct SseDecoder {
    parser: SseParser,
    line: Vec<u8>,
    /// The previous piece ended in CR, so a directly following LF belongs to it.
    skip_lf: bool,
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes `bytes`, appending every event they complete to `out`. Bytes of an
    /// unfinished line are kept for the next push.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), LineTooLong> {
        if self.skip_lf && !bytes.is_empty() {
            self.skip_lf = false;
            if bytes[0] == b'\n' {
                bytes = &bytes[1..];
            }
        }
        while let Some(pos) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&bytes[..pos]);
            let cr = bytes[pos] == b'\r';
            bytes = &bytes[pos + 1..];
            if cr {
                match bytes.first() {
                    Some(b'\n') => bytes = &bytes[1..],
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
            let line = take_line(&mut self.line);
            if let Some(event) = self.parser.feed_line(&line) {
                out.push(event);
            }
        }
        self.line.extend_from_slice(bytes);
        if self.line.len() > MAX_LINE_BYTES {
            self.line = Vec::new();
            return Err(LineTooLong);
        }
        Ok(())
    }

    /// Ends the stream: a last line without a terminator still counts, and a final block
    /// without its blank line is still delivered.
    pub fn finish(&mut self) -> Option<SseEvent> {
        self.skip_lf = false;
        if !self.line.is_empty() {
            let line = take_line(&mut self.line);
            if let Some(event) = self.parser.feed_line(&line) {
                return Some(event);
            }
        }
        self.parser.finish()
    }
}

fn take_line(line: &mut Vec<u8>) -> String {
    let bytes = std::mem::take(line);
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Reads events from a byte stream.
pub struct SseReader<R> {
    inner: R,
    decoder: SseDecoder,
    ready: std::collections::VecDeque<SseEvent>,
    eof: bool,
}

impl<R: BufRead> SseReader<R> {
    pub fn new(inner: R) -> Self {
        SseReader {
            inner,
            decoder: SseDecoder::new(),
            ready: std::collections::VecDeque::new(),
            eof: false,
        }
    }

    /// The next event, or `None` at the end of the stream. Blocks only until the bytes of
    /// the event's last line have arrived.
    pub fn next_event(&mut self) -> io::Result<Option<SseEvent>> {
        let mut out = Vec::new();
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(Some(event));
            }
            if self.eof {
                return Ok(None);
            }
            let buf = match self.inner.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                self.eof = true;
                self.ready.extend(self.decoder.finish());
                continue;
            }
            let len = buf.len();
            let pushed = self.decoder.push(buf, &mut out);
            self.inner.consume(len);
            pushed.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            self.ready.extend(out.drain(..));
        }
    }
}

impl<R: BufRead> Iterator for SseReader<R> {
    type Item = io::Result<SseEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_event().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Read};
    use std::sync::mpsc;

    fn events(input: &str) -> Vec<SseEvent> {
        SseReader::new(input.as_bytes())
            .collect::<io::Result<Vec<_>>>()
            .unwrap()
    }

    fn data(d: &str) -> SseEvent {
        SseEvent {
            event: None,
            data: d.into(),
        }
    }

    #[test]
    fn parses_data_events_and_done() {
        let got = events("data: {\"a\":1}\n\ndata: {\"a\":2}\n\ndata: [DONE]\n\n");
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], data("{\"a\":1}"));
        assert_eq!(got[1], data("{\"a\":2}"));
        assert!(got[2].is_done());
        assert!(!got[0].is_done());
    }

    #[test]
    fn joins_multiple_data_lines_and_keeps_event_names() {
        let got = events("event: message_start\ndata: one\ndata:two\ndata\n\n");
        assert_eq!(
            got,
            vec![SseEvent {
                event: Some("message_start".into()),
                data: "one\ntwo\n".into(),
            }]
        );
    }

    #[test]
    fn ignores_comments_ids_retry_and_empty_blocks() {
        let got = events(": keep-alive\n\nid: 7\nretry: 1000\n\nevent: ping\n\ndata: x\nid: 8\n\n");
        assert_eq!(got, vec![data("x")]);
    }

    #[test]
    fn tolerates_crlf_and_lone_cr() {
        assert_eq!(
            events("data: a\r\n\r\ndata: b\r\rdata: c\n\n"),
            vec![data("a"), data("b"), data("c")]
        );
    }

    #[test]
    fn crlf_split_across_reads_is_one_terminator() {
        // A one-byte buffer makes every CR and LF arrive in separate reads.
        let reader = BufReader::with_capacity(1, "data: a\r\n\r\ndata: b\r\n\r\n".as_bytes());
        let got: Vec<_> = SseReader::new(reader).map(Result::unwrap).collect();
        assert_eq!(got, vec![data("a"), data("b")]);
    }

    #[test]
    fn keeps_only_one_leading_space_and_colons_in_values() {
        assert_eq!(
            events("data:  two spaces: yes\n\n"),
            vec![data(" two spaces: yes")]
        );
    }

    #[test]
    fn delivers_a_final_event_without_blank_line() {
        assert_eq!(
            events("data: a\n\ndata: tail"),
            vec![data("a"), data("tail")]
        );
        assert!(events("").is_empty());
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let got: Vec<_> = SseReader::new(&b"data: \xff\n\n"[..])
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, vec![data("\u{fffd}")]);
    }

    #[test]
    fn decoder_gives_the_same_events_however_the_bytes_are_split() {
        let input =
            b"event: a\r\ndata: 1\r\n\r\n: c\ndata: 2\rdata: 3\r\rdata: \xc3\xa9\n\ndata: tail";
        let whole = {
            let mut d = SseDecoder::new();
            let mut out = Vec::new();
            d.push(input, &mut out).unwrap();
            out.extend(d.finish());
            out
        };
        assert_eq!(whole.len(), 4, "{whole:?}");
        for cut in 0..input.len() {
            for cut2 in cut..input.len() {
                let mut d = SseDecoder::new();
                let mut out = Vec::new();
                d.push(&input[..cut], &mut out).unwrap();
                d.push(&input[cut..cut2], &mut out).unwrap();
                d.push(&input[cut2..], &mut out).unwrap();
                out.extend(d.finish());
                assert_eq!(out, whole, "split at {cut} and {cut2}");
            }
        }
    }

    #[test]
    fn decoder_refuses_endless_lines() {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        let chunk = vec![b'x'; 1024 * 1024];
        let mut failed = false;
        for _ in 0..(MAX_LINE_BYTES / chunk.len() + 2) {
            if d.push(&chunk, &mut out).is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed);
    }

    #[test]
    fn parser_can_be_fed_directly() {
        let mut p = SseParser::new();
        assert_eq!(p.feed_line("data: x"), None);
        assert_eq!(p.feed_line(""), Some(data("x")));
        assert_eq!(p.feed_line(""), None);
        assert_eq!(p.feed_line("event: e"), None);
        assert_eq!(p.finish(), None);
    }

    /// A reader fed from a channel: each `recv` is one network read.
    struct ChannelReader(mpsc::Receiver<Vec<u8>>, Vec<u8>);

    impl Read for ChannelReader {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.1.is_empty() {
                match self.0.recv() {
                    Ok(bytes) => self.1 = bytes,
                    Err(_) => return Ok(0),
                }
            }
            let n = out.len().min(self.1.len());
            out[..n].copy_from_slice(&self.1[..n]);
            self.1.drain(..n);
            Ok(n)
        }
    }

    #[test]
    fn yields_each_event_before_the_next_bytes_arrive() {
        let (tx, rx) = mpsc::channel();
        let mut reader = SseReader::new(BufReader::new(ChannelReader(rx, Vec::new())));
        tx.send(b"data: first\n".to_vec()).unwrap();
        tx.send(b"\n".to_vec()).unwrap();
        // The sender stays open: reading past the blank line would block forever.
        assert_eq!(reader.next_event().unwrap(), Some(data("first")));
        tx.send(b"data: second\r\n\r\n".to_vec()).unwrap();
        assert_eq!(reader.next_event().unwrap(), Some(data("second")));
        drop(tx);
        assert_eq!(reader.next_event().unwrap(), None);
        assert_eq!(reader.next_event().unwrap(), None);
    }
}
