//! The SSE decoder of model streams: `model::sse::SseDecoder`.
//!
//! Input: a count byte `n`, then `n % 8` bytes giving the lengths of the first pieces, then
//! the stream. Properties: pushing the stream whole, in the pieces the fuzzer chose, and one
//! byte at a time gives the same events, and the events are those of a plain line-by-line
//! reading of the WHATWG `text/event-stream` rules.
#![no_main]

use agentos::model::sse::{SseDecoder, SseEvent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let count = (count % 8) as usize;
    if rest.len() < count {
        return;
    }
    let (lengths, stream) = rest.split_at(count);

    let whole = decode(&[stream]);
    assert_eq!(whole, reference(stream));

    let mut pieces = Vec::new();
    let mut left = stream;
    for &len in lengths {
        let (piece, tail) = left.split_at((len as usize).min(left.len()));
        pieces.push(piece);
        left = tail;
    }
    pieces.push(left);
    assert_eq!(decode(&pieces), whole, "pieces {pieces:?}");

    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(decode(&bytes), whole, "one byte at a time");
});

fn decode(pieces: &[&[u8]]) -> Vec<SseEvent> {
    let mut decoder = SseDecoder::new();
    let mut out = Vec::new();
    for piece in pieces {
        decoder
            .push(piece, &mut out)
            .expect("fuzz inputs are far below the line limit");
    }
    out.extend(decoder.finish());
    out
}

/// The stream's events, read line by line from the whole input.
fn reference(stream: &[u8]) -> Vec<SseEvent> {
    let mut lines: Vec<&[u8]> = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < stream.len() {
        match stream[i] {
            b'\n' => {
                lines.push(&stream[start..i]);
                start = i + 1;
            }
            b'\r' => {
                lines.push(&stream[start..i]);
                if stream.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start < stream.len() {
        lines.push(&stream[start..]);
    }
    lines.push(b"");

    let mut out = Vec::new();
    let mut event: Option<String> = None;
    let mut data: Option<String> = None;
    for line in lines {
        let line = String::from_utf8_lossy(line);
        if line.is_empty() {
            if let Some(data) = data.take() {
                out.push(SseEvent {
                    event: event.take().filter(|e| !e.is_empty()),
                    data,
                });
            }
            event = None;
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.find(':') {
            Some(at) => {
                let value = &line[at + 1..];
                (&line[..at], value.strip_prefix(' ').unwrap_or(value))
            }
            None => (&line[..], ""),
        };
        match field {
            "data" => match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_string()),
            },
            "event" => event = Some(value.to_string()),
            _ => {}
        }
    }
    out
}
