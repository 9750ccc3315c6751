//! A bounded, incremental parser of server-sent events (the subset the node API sends:
//! `id`, `event`, `data`, comments), for the agent. Bytes go in as they arrive; complete
//! events come out. An event larger than [`MAX_EVENT_BYTES`] is an error, not a buffer
//! that grows.

/// The largest event (all its lines) accepted.
pub const MAX_EVENT_BYTES: usize = 2 * crate::envelope::MAX_ENVELOPE_BYTES;

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// `id:` (the journal seq), if sent.
    pub id: Option<String>,
    /// `event:`.
    pub event: String,
    /// `data:` lines joined with `\n`.
    pub data: String,
}

/// The event stream broke its bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("server-sent event larger than {MAX_EVENT_BYTES} bytes")]
pub struct TooLarge;

/// The parser.
#[derive(Default)]
pub struct Parser {
    buf: Vec<u8>,
}

impl Parser {
    /// A new parser.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes; the complete events they finish, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, TooLarge> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            let Some(end) = find_blank_line(&self.buf) else {
                if self.buf.len() > MAX_EVENT_BYTES {
                    return Err(TooLarge);
                }
                return Ok(out);
            };
            let block: Vec<u8> = self.buf.drain(..end.1).collect();
            let text = String::from_utf8_lossy(block.get(..end.0).unwrap_or_default());
            let (mut id, mut event, mut data) = (None, String::new(), Vec::new());
            for line in text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)) {
                if line.starts_with(':') || line.is_empty() {
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "id" => id = Some(value.to_owned()),
                    "event" => value.clone_into(&mut event),
                    "data" => data.push(value.to_owned()),
                    _ => {}
                }
            }
            if id.is_some() || !data.is_empty() {
                out.push(SseEvent {
                    id,
                    event,
                    data: data.join("\n"),
                });
            }
        }
    }
}

/// `(end of the block, end of the separator)` of the first blank line.
fn find_blank_line(b: &[u8]) -> Option<(usize, usize)> {
    for (i, pair) in b.windows(2).enumerate() {
        if pair == b"\n\n" {
            return Some((i, i + 2));
        }
        if b.get(i..i + 4) == Some(b"\r\n\r\n".as_slice()) {
            return Some((i, i + 4));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_out_whole_however_the_bytes_are_cut() {
        let stream = b": keep-alive\n\nid: 7\nevent: secrets.changed\ndata: {\"a\":1}\n\nid: 8\ndata: x\ndata: y\n\n";
        for cut in 1..stream.len() {
            let mut p = Parser::new();
            let mut got = p.push(&stream[..cut]).unwrap();
            got.extend(p.push(&stream[cut..]).unwrap());
            assert_eq!(got.len(), 2, "cut at {cut}");
            assert_eq!(got[0].id.as_deref(), Some("7"));
            assert_eq!(got[0].event, "secrets.changed");
            assert_eq!(got[0].data, "{\"a\":1}");
            assert_eq!(got[1].data, "x\ny");
        }
    }

    #[test]
    fn an_endless_event_is_refused() {
        let mut p = Parser::new();
        assert!(p.push(&vec![b'a'; MAX_EVENT_BYTES + 1]).is_err());
    }
}
