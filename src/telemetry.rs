//! Structured logs with `tracing`: JSON lines or human-readable, by flag.

use crate::cli::{LogArgs, LogFormat};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; a second call (as in tests) is a no-op.
pub fn init(args: &LogArgs) {
    let filter = EnvFilter::try_new(with_audit(&args.log))
        .unwrap_or_else(|_| EnvFilter::new(with_audit("info")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match args.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// The filter with audit records kept at `info` whatever the operational
/// level, unless the filter itself says what to do with them.
fn with_audit(filter: &str) -> String {
    if filter.contains(crate::audit::TARGET) {
        filter.to_owned()
    } else if filter.trim().is_empty() {
        format!("{}=info", crate::audit::TARGET)
    } else {
        format!("{filter},{}=info", crate::audit::TARGET)
    }
}

#[cfg(test)]
mod tests {
    use super::with_audit;

    #[test]
    fn audit_records_survive_a_quiet_level() {
        assert_eq!(with_audit("warn"), "warn,audit=info");
        assert_eq!(with_audit(""), "audit=info");
        assert_eq!(with_audit("info,audit=off"), "info,audit=off");
    }
}
