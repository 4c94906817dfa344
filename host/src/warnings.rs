//! Lightning's `WarningCache.warn`: a warning said once per process (the same text again is
//! not repeated), on stderr.

use std::collections::HashSet;
use std::sync::Mutex;

static SAID: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Prints `warning: <message>` unless this process said it already; true when printed.
pub fn warn_once(message: &str) -> bool {
    let mut said = SAID.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let fresh = said.get_or_insert_with(HashSet::new).insert(message.to_string());
    if fresh {
        eprintln!("warning: {message}");
    }
    fresh
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warning_is_said_once() {
        let text = "a test warning said once (warnings.rs)";
        assert!(warn_once(text));
        assert!(!warn_once(text));
        assert!(warn_once("another test warning (warnings.rs)"));
    }
}
