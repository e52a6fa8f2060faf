//! Pub/sub fan-out: a [`Broker`] delivers a frame, encoded once, to every subscriber of a topic.
//!
//! Handlers publish and subscribe through the trait; [`LocalBroker`] (one process) is the
//! default. A broker shared by several server processes implements the same trait (the
//! `protolink-redis` crate's `RedisBroker`): `publish` forwards the frame to every process, each
//! delivering it to its own subscribers (kept in a `LocalBroker`), so handlers do not change.
//! Publishing can fail ([`PublishError`]): a server tells its client instead of dropping the
//! message silently.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};

use crate::link::Link;
use crate::message::Side;
use crate::transport::Text;

/// A subscriber's identity within a broker (unique per connection).
pub type SubscriberId = u64;

/// Something that receives published frames: a link, or a test's collector.
pub trait Deliver: Send + Sync + 'static {
    /// Delivers one encoded frame without waiting; `false` when the subscriber is gone (or too
    /// slow and closed), which removes it.
    fn deliver(&self, frame: &Text) -> bool;
}

impl<S: Side> Deliver for Link<S> {
    fn deliver(&self, frame: &Text) -> bool {
        // A clone of the shared frame, not a copy of its text.
        self.try_send_frame(frame.clone())
    }
}

/// Why a publish failed. Nothing was delivered by this broker when it fails, and the message is
/// not retried: the publisher decides what its client is told.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The message could not be encoded ([`Broker::publish_message`]).
    #[error(transparent)]
    Encode(#[from] crate::SendError),
    /// The broker cannot reach what joins the processes (its connection is down or did not
    /// answer in time).
    #[error("the message broker is unavailable: {0}")]
    Unavailable(String),
    /// More publishes are waiting for the broker than it holds; it is slower than the
    /// publishers, and sheds load instead of queueing without bound.
    #[error("the message broker is overloaded: {0}")]
    Overloaded(String),
    /// What joins the processes refused the request (Redis answered an error).
    #[error("the message broker refused the request: {0}")]
    Refused(String),
}

/// Topics and their subscribers.
pub trait Broker: Send + Sync + 'static {
    /// Starts delivering `topic` to `subscriber`.
    fn subscribe(&self, topic: &str, id: SubscriberId, subscriber: Arc<dyn Deliver>);
    /// Resolves once what was published to `topic` after it resolved reaches this process's
    /// subscribers of `topic`: at once in one process; a broker spanning processes waits until
    /// it has joined the topic (or knows it cannot now, and will when it can). Servers await it
    /// before acknowledging a subscription.
    fn subscribed(&self, topic: &str) -> impl Future<Output = ()> + Send {
        let _ = topic;
        std::future::ready(())
    }
    /// Stops delivering `topic` to `id`.
    fn unsubscribe(&self, topic: &str, id: SubscriberId);
    /// Stops delivering anything to `id` (its connection closed).
    fn unsubscribe_all(&self, id: SubscriberId);
    /// Delivers `frame` once to every subscriber of any of `topics`, except `except`; resolves to
    /// how many it reached ([`LocalBroker`]: subscribers; a broker spanning processes says what
    /// it counts), or to why nothing was published.
    fn publish(
        &self,
        topics: &[&str],
        frame: &str,
        except: Option<SubscriberId>,
    ) -> impl Future<Output = Result<usize, PublishError>> + Send;

    /// Encodes `message` once, as side `S` sends it, and delivers it like [`Broker::publish`]:
    /// typed fan-out, `broker.publish_message::<chat::Server, _>(&["room"], &msg, None)`.
    fn publish_message<S, M>(
        &self,
        topics: &[&str],
        message: &M,
        except: Option<SubscriberId>,
    ) -> impl Future<Output = Result<usize, PublishError>> + Send
    where
        S: crate::Side,
        M: crate::Message + crate::SendableBy<S>,
    {
        let frame = crate::link::encode_frame::<S, M>(message);
        async move { self.publish(topics, &frame?, except).await }
    }
}

/// Each topic's subscribers.
type Topics = HashMap<String, HashMap<SubscriberId, Arc<dyn Deliver>>>;

/// The in-process broker.
#[derive(Default)]
pub struct LocalBroker {
    topics: RwLock<Topics>,
}

impl LocalBroker {
    /// An empty broker.
    pub fn new() -> Self {
        LocalBroker::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Topics> {
        // Map updates are single inserts and removals: a poisoned lock still holds a valid map.
        self.topics
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Topics> {
        self.topics
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl LocalBroker {
    /// Adds `subscriber` to `topic`; `true` when the topic had no subscriber before. (The parts
    /// a broker spanning processes builds on: it keeps this process's subscribers here.)
    pub fn insert(&self, topic: &str, id: SubscriberId, subscriber: Arc<dyn Deliver>) -> bool {
        let mut topics = self.write();
        let new = !topics.contains_key(topic);
        topics
            .entry(topic.to_owned())
            .or_default()
            .insert(id, subscriber);
        new
    }

    /// Removes `id` from `topic`; `true` when that left the topic without subscribers.
    pub fn remove(&self, topic: &str, id: SubscriberId) -> bool {
        let mut topics = self.write();
        let Some(subscribers) = topics.get_mut(topic) else {
            return false;
        };
        if subscribers.remove(&id).is_none() || !subscribers.is_empty() {
            return false;
        }
        topics.remove(topic);
        true
    }

    /// Removes `id` from every topic; `true` when that left a topic without subscribers.
    pub fn remove_all(&self, id: SubscriberId) -> bool {
        let mut emptied = false;
        self.write().retain(|_, subscribers| {
            let keep = subscribers.remove(&id).is_none() || !subscribers.is_empty();
            emptied |= !keep;
            keep
        });
        emptied
    }

    /// Whether `topic` has a subscriber.
    pub fn has_topic(&self, topic: &str) -> bool {
        self.read().contains_key(topic)
    }

    /// Every topic that has a subscriber.
    pub fn topics(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// Delivers the copy of a frame published to `topics` that is meant for `topics[index]`:
    /// to its subscribers but `except` and those subscribed to an earlier topic of the list
    /// (they get the earlier copy), so that delivering every copy reaches each subscriber once.
    /// Subscribers that are gone are removed.
    pub fn deliver(
        &self,
        topics: &[&str],
        index: usize,
        frame: &Text,
        except: Option<SubscriberId>,
    ) -> Delivery {
        let mut delivery = Delivery::default();
        let mut gone = Vec::new();
        {
            let map = self.read();
            let Some(subscribers) = topics.get(index).and_then(|t| map.get(*t)) else {
                return delivery;
            };
            let earlier: Vec<_> = topics[..index].iter().filter_map(|t| map.get(*t)).collect();
            for (id, subscriber) in subscribers {
                if Some(*id) == except || earlier.iter().any(|e| e.contains_key(id)) {
                    continue;
                }
                // Delivery never waits, so it is fine under the read lock.
                if subscriber.deliver(frame) {
                    delivery.reached += 1;
                } else {
                    gone.push(*id);
                }
            }
        }
        for id in gone {
            delivery.emptied_topic |= self.remove_all(id);
        }
        delivery
    }
}

/// What [`LocalBroker::deliver`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Subscribers reached.
    pub reached: usize,
    /// Whether removing a subscriber that was gone left a topic without subscribers.
    pub emptied_topic: bool,
}

impl Broker for LocalBroker {
    fn subscribe(&self, topic: &str, id: SubscriberId, subscriber: Arc<dyn Deliver>) {
        self.insert(topic, id, subscriber);
    }

    fn unsubscribe(&self, topic: &str, id: SubscriberId) {
        self.remove(topic, id);
    }

    fn unsubscribe_all(&self, id: SubscriberId) {
        self.remove_all(id);
    }

    async fn publish(
        &self,
        topics: &[&str],
        frame: &str,
        except: Option<SubscriberId>,
    ) -> Result<usize, PublishError> {
        let frame = Text::from(frame.to_owned());
        Ok((0..topics.len())
            .map(|index| self.deliver(topics, index, &frame, except).reached)
            .sum())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::sync::Mutex;

    /// Collects what it is given; refuses everything once `gone`.
    #[derive(Default)]
    struct Collector {
        frames: Mutex<Vec<String>>,
        gone: std::sync::atomic::AtomicBool,
    }

    impl Deliver for Collector {
        fn deliver(&self, frame: &Text) -> bool {
            if self.gone.load(std::sync::atomic::Ordering::Relaxed) {
                return false;
            }
            self.frames.lock().unwrap().push(frame.as_str().to_owned());
            true
        }
    }

    fn frames(c: &Collector) -> Vec<String> {
        c.frames.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn each_subscriber_once_whatever_topics_it_holds() {
        let broker = LocalBroker::new();
        let (a, b, c) = (
            Arc::new(Collector::default()),
            Arc::new(Collector::default()),
            Arc::new(Collector::default()),
        );
        broker.subscribe("x", 1, a.clone());
        broker.subscribe("*", 1, a.clone());
        broker.subscribe("*", 2, b.clone());
        broker.subscribe("x", 3, c.clone());
        assert_eq!(broker.publish(&["x", "*"], "hi", Some(3)).await.unwrap(), 2);
        assert_eq!(frames(&a), ["hi"]);
        assert_eq!(frames(&b), ["hi"]);
        assert!(frames(&c).is_empty(), "the sender is left out");
        // The copy for `*` alone skips whoever also holds `x`.
        let copy = Text::from("again".to_owned());
        assert_eq!(broker.deliver(&["x", "*"], 1, &copy, None).reached, 1);
        assert_eq!(frames(&a), ["hi"]);
        assert_eq!(frames(&b), ["hi", "again"]);
    }

    #[tokio::test]
    async fn topics_come_and_go_with_their_subscribers() {
        let broker = LocalBroker::new();
        let a = Arc::new(Collector::default());
        assert!(broker.insert("x", 1, a.clone()));
        assert!(!broker.insert("x", 2, a.clone()));
        assert!(!broker.remove("x", 1));
        assert!(!broker.remove("x", 1), "removing twice changes nothing");
        assert!(broker.remove("x", 2));
        assert!(!broker.has_topic("x"));
        broker.subscribe("y", 1, a.clone());
        broker.subscribe("z", 1, a.clone());
        assert_eq!(broker.topics().len(), 2);
        assert!(broker.remove_all(1));
        assert!(broker.topics().is_empty());
    }

    #[tokio::test]
    async fn a_subscriber_that_is_gone_is_removed() {
        let broker = LocalBroker::new();
        let (a, b) = (
            Arc::new(Collector::default()),
            Arc::new(Collector::default()),
        );
        broker.subscribe("x", 1, a.clone());
        broker.subscribe("x", 2, b.clone());
        b.gone.store(true, std::sync::atomic::Ordering::Relaxed);
        let frame = Text::from("hi".to_owned());
        let delivery = broker.deliver(&["x"], 0, &frame, None);
        assert_eq!(
            delivery,
            Delivery {
                reached: 1,
                emptied_topic: false
            }
        );
        a.gone.store(true, std::sync::atomic::Ordering::Relaxed);
        let delivery = broker.deliver(&["x"], 0, &frame, None);
        assert_eq!(
            delivery,
            Delivery {
                reached: 0,
                emptied_topic: true
            }
        );
        assert!(!broker.has_topic("x"));
    }
}
