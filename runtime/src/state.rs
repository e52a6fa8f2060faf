//! A link's state cell: read on every frame, changed twice in a link's life (ready, closed),
//! waited on by a few.
//!
//! A phase in an atomic for the reads, the whole state under a lock, and a `Notify` for the
//! waits: nothing is allocated per link. A tokio `watch` channel (about 380 bytes a link, most
//! of it eight `Notify`s) is made only when someone asks to watch the state.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};

use tokio::sync::{Notify, watch};

use crate::link::LinkState;

const HANDSHAKING: u8 = 0;
const READY: u8 = 1;
const CLOSED: u8 = 2;

fn phase_of(state: &LinkState) -> u8 {
    match state {
        LinkState::Handshaking => HANDSHAKING,
        LinkState::Ready => READY,
        LinkState::Closed { .. } => CLOSED,
    }
}

pub(crate) struct StateCell {
    phase: AtomicU8,
    value: Mutex<LinkState>,
    changed: Notify,
    /// Made on the first [`StateCell::subscribe`]; fed under `value`'s lock.
    watch: OnceLock<watch::Sender<LinkState>>,
}

impl StateCell {
    pub(crate) fn new(state: LinkState) -> StateCell {
        StateCell {
            phase: AtomicU8::new(phase_of(&state)),
            value: Mutex::new(state),
            changed: Notify::new(),
            watch: OnceLock::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LinkState> {
        // A state is replaced whole, so a poisoned lock still holds a sound one.
        self.value
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn get(&self) -> LinkState {
        self.lock().clone()
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.phase.load(Ordering::Acquire) == READY
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.phase.load(Ordering::Acquire) == CLOSED
    }

    /// Changes the state if `change` says so (`true`), then wakes every waiter.
    pub(crate) fn modify(&self, change: impl FnOnce(&mut LinkState) -> bool) -> bool {
        {
            let mut state = self.lock();
            if !change(&mut state) {
                return false;
            }
            self.phase.store(phase_of(&state), Ordering::Release);
            if let Some(watch) = self.watch.get() {
                watch.send_replace(state.clone());
            }
        }
        self.changed.notify_waiters();
        true
    }

    /// Waits until `until` holds for the state, and returns that state.
    pub(crate) async fn wait_for(&self, until: impl Fn(&LinkState) -> bool) -> LinkState {
        loop {
            // Made before the state is read, so a change in between still wakes it.
            let changed = self.changed.notified();
            {
                let state = self.lock();
                if until(&state) {
                    return state.clone();
                }
            }
            changed.await;
        }
    }

    /// Until the state next changes (or at once, if it changed since `self.changed()` was
    /// made): the future for a `select!` that must notice a close.
    pub(crate) fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    /// A watch on the state, from now on.
    pub(crate) fn subscribe(&self) -> watch::Receiver<LinkState> {
        let state = self.lock();
        self.watch
            .get_or_init(|| watch::channel(state.clone()).0)
            .subscribe()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    fn closed() -> LinkState {
        LinkState::Closed {
            code: 1000,
            reason: "bye".to_owned(),
        }
    }

    #[tokio::test]
    async fn waiters_and_watchers_see_every_change() {
        let cell = Arc::new(StateCell::new(LinkState::Handshaking));
        let mut watch = cell.subscribe();
        let waiter = tokio::spawn({
            let cell = cell.clone();
            async move {
                cell.wait_for(|s| matches!(s, LinkState::Closed { .. }))
                    .await
            }
        });
        assert!(cell.modify(|s| {
            *s = LinkState::Ready;
            true
        }));
        assert!(cell.is_ready() && !cell.is_closed());
        assert!(!cell.modify(|_| false));
        cell.modify(|s| {
            *s = closed();
            true
        });
        assert!(cell.is_closed());
        let seen = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter woke")
            .expect("no panic");
        assert_eq!(seen, closed());
        watch
            .wait_for(|s| *s == closed())
            .await
            .expect("the watch saw the close");
        // A watch made after the changes starts from the state now.
        assert_eq!(*cell.subscribe().borrow(), closed());
    }
}
