//! The signals that ask the client to leave: SIGINT, SIGTERM and SIGHUP.
//! Each is turned into a clean leave (status 0) through the driver rather
//! than the default action, so the terminal is restored and what was sent
//! is delivered.
//!
//! A signal that was already ignored when the client started stays
//! ignored: that is how `nohup` (SIGHUP) and a non-interactive shell's `&`
//! (SIGINT) tell a program to carry on, and a room logger started that way
//! must not stop when its terminal closes.

use std::future::poll_fn;
use std::task::Poll;

use tokio::signal::unix::{Signal, SignalKind, signal};

/// The leave signals this process listens for.
#[derive(Debug)]
pub(crate) struct LeaveSignals {
    /// One stream per signal listened for.
    listening: Vec<Signal>,
}

impl LeaveSignals {
    /// Starts listening for each leave signal that is not ignored. Must be
    /// called inside a tokio runtime.
    pub(crate) fn new() -> Self {
        let listening = [
            SignalKind::interrupt(),
            SignalKind::terminate(),
            SignalKind::hangup(),
        ]
        .into_iter()
        .filter(|kind| !ignored_at_start(kind.as_raw_value()))
        .filter_map(|kind| match signal(kind) {
            Ok(listener) => Some(listener),
            Err(e) => {
                tracing::debug!(error = %e, "cannot listen for a signal");
                None
            }
        })
        .collect();
        Self { listening }
    }

    /// Resolves when a leave signal arrives; can be awaited again for the
    /// next one. Cancel-safe. Never resolves if none is listened for.
    pub(crate) async fn recv(&mut self) {
        poll_fn(|cx| {
            for listener in &mut self.listening {
                if let Poll::Ready(Some(())) = listener.poll_recv(cx) {
                    return Poll::Ready(());
                }
            }
            Poll::Pending
        })
        .await;
    }
}

/// Whether `signal`'s disposition is "ignore" now, as inherited from the
/// parent.
fn ignored_at_start(signal: libc::c_int) -> bool {
    // SAFETY: sigaction with a null new action only reads the current
    // disposition into `current`, a plain C struct for which all-zero bytes
    // are a valid value.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut current) == 0
            && current.sa_sigaction == libc::SIG_IGN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ignored_signal_is_seen_as_ignored() {
        // SIGUSR2: nothing else in the test process uses it.
        let signal = libc::SIGUSR2;
        // SAFETY: setting a standard disposition for a signal no code in
        // this process handles.
        unsafe { libc::signal(signal, libc::SIG_IGN) };
        assert!(ignored_at_start(signal));
        unsafe { libc::signal(signal, libc::SIG_DFL) };
        assert!(!ignored_at_start(signal));
    }
}
