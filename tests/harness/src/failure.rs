//! The failure message, repeated after a state dump. A dump printed while a test unwinds can
//! run to thousands of lines, and CI logs keep only their tail: without this the reason a
//! test failed scrolls out of sight and only the dump is left to read.

use std::cell::RefCell;
use std::sync::Once;

thread_local! {
    static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs (once per process) a panic hook that remembers each thread's last panic message
/// and location, then runs the hook that was there before (the test runner's output).
pub fn remember_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(a panic without a message)".to_owned());
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            LAST.with(|last| *last.borrow_mut() = Some(format!("{message}{at}")));
            previous(info);
        }));
    });
}

/// The last panic on this thread, if [`remember_panics`] was called before it.
pub fn last_on_this_thread() -> Option<String> {
    LAST.with(|last| last.borrow().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_panic_of_this_thread_is_remembered() {
        remember_panics();
        let r = std::panic::catch_unwind(|| panic!("converge: s00003 missing"));
        assert!(r.is_err());
        let last = last_on_this_thread().expect("remembered");
        assert!(last.starts_with("converge: s00003 missing at "), "{last}");
        assert!(last.contains("failure.rs:"), "{last}");
        // Another thread has its own (none).
        let other = std::thread::spawn(last_on_this_thread).join().unwrap();
        assert_eq!(other, None);
    }
}
