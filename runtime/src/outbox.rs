//! A link's send queue: bounded, many senders, one writer that takes everything queued at once.
//!
//! The writer swaps the whole queue for its own empty buffer under one lock and writes the
//! batch, so a burst of replies costs one lock and one flush; then it gives the emptied buffer
//! back. An idle link holds one small buffer and two `Notify`s, where a tokio channel keeps a
//! block of 32 slots per link (about 2 KiB at the link's frame size). A buffer that grew for a
//! burst shrinks again once drained.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
pub(crate) use tokio::sync::mpsc::error::{SendTimeoutError, TrySendError};

/// Capacity a drained buffer keeps; more is given back.
const KEEP: usize = 16;

pub(crate) struct Outbox<T> {
    state: Mutex<State<T>>,
    capacity: usize,
    /// Wakes the writer: something was queued, or the queue closed.
    queued: Notify,
    /// Wakes senders waiting for room.
    room: Notify,
}

struct State<T> {
    items: VecDeque<T>,
    closed: bool,
    /// A sender found the queue full and waits for room.
    waiting: bool,
}

impl<T> Outbox<T> {
    /// An empty queue holding at most `capacity` items (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        Outbox {
            state: Mutex::new(State {
                items: VecDeque::new(),
                closed: false,
                waiting: false,
            }),
            capacity: capacity.max(1),
            queued: Notify::new(),
            room: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        // Pushes and swaps cannot leave the state half done, so a poisoned lock is still sound.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `item` if there is room.
    pub(crate) fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        {
            let mut state = self.lock();
            if state.closed {
                return Err(TrySendError::Closed(item));
            }
            if state.items.len() >= self.capacity {
                return Err(TrySendError::Full(item));
            }
            state.items.push_back(item);
        }
        self.queued.notify_one();
        Ok(())
    }

    /// Queues `item`, waiting for room; `Err` with the item once the queue is closed.
    pub(crate) async fn send(&self, item: T) -> Result<(), T> {
        match self.send_until(item, None).await {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Closed(item) | SendTimeoutError::Timeout(item)) => Err(item),
        }
    }

    /// [`Outbox::send`], giving up after `wait`.
    pub(crate) async fn send_timeout(
        &self,
        item: T,
        wait: Duration,
    ) -> Result<(), SendTimeoutError<T>> {
        let deadline = tokio::time::Instant::now() + wait;
        self.send_until(item, Some(deadline)).await
    }

    /// Queues `item`, waiting for room until `deadline` (for ever without one).
    async fn send_until(
        &self,
        mut item: T,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<(), SendTimeoutError<T>> {
        loop {
            // Made before the queue is looked at, so room made in between still wakes it.
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.try_send(item) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(back)) => return Err(SendTimeoutError::Closed(back)),
                Err(TrySendError::Full(back)) => {
                    item = back;
                    self.lock().waiting = true;
                }
            }
            match deadline {
                None => room.await,
                Some(at) => {
                    if tokio::time::timeout_at(at, room).await.is_err() {
                        return Err(SendTimeoutError::Timeout(item));
                    }
                }
            }
        }
    }

    /// Moves everything queued into `batch` (which the caller has emptied), waiting until there
    /// is something; `false` once the queue is closed and empty.
    pub(crate) async fn take(&self, batch: &mut VecDeque<T>) -> bool {
        loop {
            if self.try_take(batch) {
                return true;
            }
            if self.lock().closed {
                return false;
            }
            // A permit left by a `notify_one` since the look above ends this at once.
            self.queued.notified().await;
        }
    }

    /// Moves everything queued into `batch` without waiting; `true` if anything was.
    pub(crate) fn try_take(&self, batch: &mut VecDeque<T>) -> bool {
        batch.clear();
        let waiting = {
            let mut state = self.lock();
            if state.items.is_empty() {
                return false;
            }
            std::mem::swap(&mut state.items, batch);
            std::mem::take(&mut state.waiting)
        };
        if waiting {
            self.room.notify_waiters();
        }
        true
    }

    /// Hands a written batch's buffer back for the next frames (when nothing was queued
    /// meanwhile), so an idle link keeps one buffer, not two; `batch` is left without one.
    pub(crate) fn give_back(&self, batch: &mut VecDeque<T>) {
        batch.clear();
        if batch.capacity() > KEEP * 4 {
            batch.shrink_to(KEEP);
        }
        {
            let mut state = self.lock();
            if state.items.is_empty() && state.items.capacity() == 0 {
                std::mem::swap(&mut state.items, batch);
            }
        }
        *batch = VecDeque::new();
    }

    /// Refuses further items but keeps what is queued: the writer takes that, then `take`
    /// answers `false` (the link closed; a close frame, if one was queued, goes out last).
    pub(crate) fn finish(&self) {
        self.lock().closed = true;
        self.queued.notify_one();
        self.room.notify_waiters();
    }

    /// Refuses further items and drops what is queued; senders waiting for room fail.
    pub(crate) fn close(&self) {
        let dropped = {
            let mut state = self.lock();
            state.closed = true;
            std::mem::take(&mut state.items)
        };
        drop(dropped);
        self.queued.notify_one();
        self.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn a_batch_is_everything_queued_in_order() {
        let outbox = Outbox::new(8);
        for n in 0..5 {
            outbox.try_send(n).expect("room");
        }
        let mut batch = VecDeque::new();
        assert!(outbox.take(&mut batch).await);
        assert_eq!(batch, [0, 1, 2, 3, 4]);
        assert!(!outbox.try_take(&mut batch));
    }

    #[tokio::test]
    async fn a_full_queue_refuses_then_makes_room_for_a_waiting_sender() {
        let outbox = Arc::new(Outbox::new(2));
        outbox.try_send(1).expect("room");
        outbox.try_send(2).expect("room");
        assert!(matches!(outbox.try_send(3), Err(TrySendError::Full(3))));
        let sender = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.send(3).await }
        });
        let mut batch = VecDeque::new();
        assert!(outbox.take(&mut batch).await);
        assert_eq!(batch, [1, 2]);
        tokio::time::timeout(Duration::from_secs(5), sender)
            .await
            .expect("the sender got room")
            .expect("the sender did not panic")
            .expect("the queue is open");
        assert!(outbox.take(&mut batch).await);
        assert_eq!(batch, [3]);
    }

    #[tokio::test]
    async fn a_sender_gives_up_after_its_timeout() {
        let outbox = Outbox::new(1);
        outbox.try_send(1).expect("room");
        let result = outbox.send_timeout(2, Duration::from_millis(20)).await;
        assert!(matches!(result, Err(SendTimeoutError::Timeout(2))));
    }

    #[tokio::test]
    async fn closing_wakes_the_writer_and_the_waiting_senders() {
        let outbox = Arc::new(Outbox::new(1));
        outbox.try_send(1).expect("room");
        let sender = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.send(2).await }
        });
        let writer = tokio::spawn({
            let outbox = outbox.clone();
            async move {
                let mut batch = VecDeque::new();
                let mut seen = Vec::new();
                while outbox.take(&mut batch).await {
                    seen.extend(batch.drain(..));
                }
                seen
            }
        });
        // The writer takes the first item (making room for the sender) or not, as scheduling
        // goes; after the close, neither waits on.
        outbox.close();
        let wait = Duration::from_secs(5);
        let sent = tokio::time::timeout(wait, sender)
            .await
            .expect("the sender ends");
        let seen = tokio::time::timeout(wait, writer)
            .await
            .expect("the writer ends");
        let (sent, seen) = (sent.expect("no panic"), seen.expect("no panic"));
        assert!(matches!(outbox.try_send(3), Err(TrySendError::Closed(3))));
        if let Err(back) = sent {
            assert_eq!(back, 2);
        }
        assert!(seen.iter().all(|n| [1, 2].contains(n)));
    }

    #[tokio::test]
    async fn a_finished_queue_hands_out_what_it_holds_then_stops() {
        let outbox = Outbox::new(4);
        outbox.try_send(1).expect("room");
        outbox.finish();
        assert!(matches!(outbox.try_send(2), Err(TrySendError::Closed(2))));
        let mut batch = VecDeque::new();
        assert!(outbox.take(&mut batch).await);
        assert_eq!(batch, [1]);
        assert!(!outbox.take(&mut batch).await);
    }

    #[tokio::test]
    async fn a_buffer_grown_for_a_burst_is_given_back() {
        let outbox = Outbox::new(1024);
        for n in 0..1000 {
            outbox.try_send(n).expect("room");
        }
        let mut batch = VecDeque::new();
        assert!(outbox.take(&mut batch).await);
        assert_eq!(batch.len(), 1000);
        outbox.give_back(&mut batch);
        assert_eq!(batch.capacity(), 0);
        outbox.try_send(0).expect("room");
        assert!(outbox.take(&mut batch).await);
        assert!(batch.capacity() < 1000, "kept {}", batch.capacity());
        outbox.give_back(&mut batch);
        // One buffer in all: the queue's.
        assert_eq!(batch.capacity(), 0);
        assert!(outbox.lock().items.capacity() > 0);
    }
}
