//! JSON logs: one object per line with `ts, level, service, msg` and the event's fields
//! (`corr_id`, `peer_addr`, `reason` …) at the top level.
//!
//! Callers must never pass a token, key or secret value as a field; the types that hold
//! them have no `Debug` or `Display`, so they cannot be formatted into one by accident.

use std::io::Write;
use std::sync::Mutex;

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;

/// A tracing layer writing JSON lines to a writer (stdout in production).
pub struct JsonLines<W> {
    service: &'static str,
    out: Mutex<W>,
}

impl<W: Write + Send + 'static> JsonLines<W> {
    /// A layer writing to `out`.
    pub fn new(service: &'static str, out: W) -> Self {
        Self {
            service,
            out: Mutex::new(out),
        }
    }
}

struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        let name = match field.name() {
            "message" => "msg",
            n => n,
        };
        self.0.insert(name.to_owned(), value);
    }
}

impl<S: Subscriber, W: Write + Send + 'static> Layer<S> for JsonLines<W> {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut fields = Fields(Map::new());
        fields.0.insert(
            "ts".into(),
            Value::from(
                time::OffsetDateTime::now_utc()
                    .format(&Rfc3339)
                    .unwrap_or_default(),
            ),
        );
        fields
            .0
            .insert("level".into(), Value::from(level_name(*meta.level())));
        fields.0.insert("service".into(), Value::from(self.service));
        event.record(&mut fields);
        fields.0.entry("msg").or_insert_with(|| Value::from(""));
        fields.0.insert("target".into(), Value::from(meta.target()));
        let mut line = serde_json::to_vec(&Value::Object(fields.0)).unwrap_or_default();
        line.push(b'\n');
        if let Ok(mut out) = self.out.lock() {
            // A closed stdout must not take the server down; the line is lost.
            let _ = out.write_all(&line);
            let _ = out.flush();
        }
    }
}

fn level_name(l: Level) -> &'static str {
    match l {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// Installs JSON logging to stdout at `level` (`error`, `warn`, `info`, `debug`, `trace`).
/// Unknown levels fall back to `info`. Installing twice is a no-op.
pub fn init(service: &'static str, level: &str) {
    let filter: LevelFilter = level.parse().unwrap_or(LevelFilter::INFO);
    let _ = tracing_subscriber::registry()
        .with(JsonLines::new(service, std::io::stdout()).with_filter(filter))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_have_the_contract_fields() {
        let buf = Buf::default();
        let sub = tracing_subscriber::registry().with(JsonLines::new("bulwark", buf.clone()));
        tracing::subscriber::with_default(sub, || {
            tracing::warn!(reason = "rate_limited", corr_id = "abc", "request refused");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let v: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["level"], "warn");
        assert_eq!(v["service"], "bulwark");
        assert_eq!(v["msg"], "request refused");
        assert_eq!(v["reason"], "rate_limited");
        assert_eq!(v["corr_id"], "abc");
        assert!(v["ts"].as_str().unwrap().ends_with('Z'));
    }
}
