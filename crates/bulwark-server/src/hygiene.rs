//! Process hygiene at start-up: no core dumps, no ptrace by same-uid processes, and a panic
//! hook that records where a panic happened but never its payload (which may quote a
//! secret value).

use rustix::process::{self, DumpableBehavior, Resource, Rlimit};

/// Sets RLIMIT_CORE to 0 and PR_SET_DUMPABLE to 0.
pub fn disable_core_dumps() -> anyhow::Result<()> {
    process::setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )?;
    process::set_dumpable_behavior(DumpableBehavior::NotDumpable)?;
    Ok(())
}

/// Whether the process is currently marked non-dumpable.
pub fn is_dumpable() -> bool {
    !matches!(
        process::dumpable_behavior(),
        Ok(DumpableBehavior::NotDumpable)
    )
}

/// Replaces the default panic hook, which prints the payload, with one that logs the
/// location only.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_else(|| "unknown".into());
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_owned();
        tracing::error!(
            location = location.as_str(),
            thread = thread.as_str(),
            "panic; payload withheld because it may contain secret material"
        );
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt as _;

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
    fn a_panic_quoting_a_secret_is_logged_without_its_payload() {
        let buf = Buf::default();
        let sub = tracing_subscriber::registry().with(bulwark_http::telemetry::JsonLines::new(
            "bulwark",
            buf.clone(),
        ));
        install_panic_hook();
        let secret = "hunter2-super-secret-value";
        let result = tracing::subscriber::with_default(sub, || {
            std::panic::catch_unwind(|| panic!("decrypt failed for value {secret}"))
        });
        let _ = std::panic::take_hook();
        assert!(result.is_err());
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("payload withheld"), "{text}");
        assert!(text.contains("hygiene.rs"), "location is logged: {text}");
        assert!(!text.contains(secret), "{text}");
    }
}
