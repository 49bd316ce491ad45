//! Cooperative cancellation shared by a run, its model request and whoever may stop it
//! (Ctrl-C, `POST …/cancel`, a client that disconnects).
//!
//! A [`CancelToken`] is a flag plus a list of hooks. Model clients register a hook that
//! aborts their in-flight HTTP request (`ureq::Agent::shutdown`), so cancelling returns
//! within milliseconds even while the provider is silent.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

type Hook = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Inner {
    cancelled: AtomicBool,
    next_id: AtomicU64,
    hooks: Mutex<Vec<(u64, Hook)>>,
}

/// A cloneable handle: every clone observes and triggers the same cancellation.
#[derive(Clone, Default)]
pub struct CancelToken(Arc<Inner>);

impl std::fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// Removes its hook when dropped, so a finished request is not aborted later.
pub struct HookGuard {
    token: CancelToken,
    id: u64,
}

impl Drop for HookGuard {
    fn drop(&mut self) {
        let mut hooks = self.token.0.hooks.lock().unwrap_or_else(|e| e.into_inner());
        hooks.retain(|(id, _)| *id != self.id);
    }
}

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the flag and runs every registered hook once. Idempotent.
    pub fn cancel(&self) {
        if self.0.cancelled.swap(true, Ordering::SeqCst) {
            return;
        }
        let hooks = std::mem::take(&mut *self.0.hooks.lock().unwrap_or_else(|e| e.into_inner()));
        for (_, hook) in hooks {
            hook();
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::SeqCst)
    }

    /// Registers `hook` to run on cancellation; runs it at once if already cancelled.
    /// The hook is forgotten when the returned guard drops.
    pub fn on_cancel(&self, hook: impl FnOnce() + Send + 'static) -> HookGuard {
        let id = self.0.next_id.fetch_add(1, Ordering::Relaxed);
        let guard = HookGuard {
            token: self.clone(),
            id,
        };
        let mut hooks = self.0.hooks.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_cancelled() {
            drop(hooks);
            hook();
        } else {
            hooks.push((id, Box::new(hook)));
        }
        guard
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn hooks_run_once_and_guards_unregister() {
        let token = CancelToken::new();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let _kept = token.on_cancel(move || {
            h.fetch_add(1, Ordering::SeqCst);
        });
        let h = hits.clone();
        drop(token.on_cancel(move || {
            h.fetch_add(100, Ordering::SeqCst);
        }));
        token.cancel();
        token.cancel();
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        let h = hits.clone();
        let _late = token.on_cancel(move || {
            h.fetch_add(10, Ordering::SeqCst);
        });
        assert_eq!(hits.load(Ordering::SeqCst), 11);
    }
}
