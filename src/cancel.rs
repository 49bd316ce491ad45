//! Cancellation shared by a run, the work it waits on and whoever may stop it (Ctrl-C,
//! `POST …/cancel`, a client that disconnects, a cancel recorded in the store).
//!
//! A [`CancelToken`] is a flag with a waker. Async code waits for it with
//! [`CancelToken::cancelled`] next to the work it would abandon (a model request, a tool
//! call, a member run), so cancelling drops that work at once; any thread may call
//! [`CancelToken::cancel`]. A [`CancelToken::child`] is cancelled with its parent but can
//! also be cancelled alone (one model call cut short without cancelling the run).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;

#[derive(Default)]
struct Inner {
    cancelled: AtomicBool,
    notify: Notify,
    children: Mutex<Vec<Weak<Inner>>>,
}

impl Inner {
    fn cancel(&self) {
        if self.cancelled.swap(true, Ordering::SeqCst) {
            return;
        }
        self.notify.notify_waiters();
        let children =
            std::mem::take(&mut *self.children.lock().unwrap_or_else(|e| e.into_inner()));
        for child in children.iter().filter_map(Weak::upgrade) {
            child.cancel();
        }
    }
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

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the flag and wakes every waiter, children included. Idempotent.
    pub fn cancel(&self) {
        self.0.cancel();
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::SeqCst)
    }

    /// Completes once the token is cancelled (at once if it already is).
    pub async fn cancelled(&self) {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            // Registered before the flag is read, so a cancel in between is not missed.
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }

    /// A token cancelled whenever this one is, that can also be cancelled on its own.
    pub fn child(&self) -> CancelToken {
        let child = CancelToken::new();
        let mut children = self.0.children.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_cancelled() {
            drop(children);
            child.cancel();
            return child;
        }
        children.retain(|c| c.strong_count() > 0);
        children.push(Arc::downgrade(&child.0));
        child
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn waiters_wake_on_cancel_from_another_thread() {
        let token = CancelToken::new();
        let other = token.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            other.cancel();
        });
        tokio::time::timeout(Duration::from_secs(5), token.cancelled())
            .await
            .expect("woken");
        assert!(token.is_cancelled());
        // Already cancelled: returns at once, and again.
        token.cancelled().await;
        token.cancel();
    }

    #[tokio::test]
    async fn children_follow_their_parent_but_not_the_other_way() {
        let parent = CancelToken::new();
        let child = parent.child();
        let grandchild = child.child();
        let sibling = parent.child();
        sibling.cancel();
        assert!(!parent.is_cancelled() && !child.is_cancelled());
        parent.cancel();
        assert!(child.is_cancelled() && grandchild.is_cancelled());
        grandchild.cancelled().await;
        assert!(
            parent.child().is_cancelled(),
            "a late child starts cancelled"
        );
    }
}
