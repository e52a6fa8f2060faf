//! Pub/sub fan-out: a [`Broker`] delivers a frame, encoded once, to every subscriber of a topic.
//!
//! Handlers publish and subscribe through the trait; [`LocalBroker`] (one process) is the
//! default. A broker shared by several server processes implements the same trait: `publish`
//! forwards the frame to the other processes, which deliver it to their own subscribers, so
//! handlers do not change.

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

/// Topics and their subscribers.
pub trait Broker: Send + Sync + 'static {
    /// Starts delivering `topic` to `subscriber`.
    fn subscribe(&self, topic: &str, id: SubscriberId, subscriber: Arc<dyn Deliver>);
    /// Stops delivering `topic` to `id`.
    fn unsubscribe(&self, topic: &str, id: SubscriberId);
    /// Stops delivering anything to `id` (its connection closed).
    fn unsubscribe_all(&self, id: SubscriberId);
    /// Delivers `frame` once to every subscriber of any of `topics`, except `except`; resolves to
    /// how many subscribers it reached.
    fn publish(
        &self,
        topics: &[&str],
        frame: &str,
        except: Option<SubscriberId>,
    ) -> impl Future<Output = usize> + Send;

    /// Encodes `message` once, as side `S` sends it, and delivers it like [`Broker::publish`]:
    /// typed fan-out, `broker.publish_message::<chat::Server, _>(&["room"], &msg, None)`.
    fn publish_message<S, M>(
        &self,
        topics: &[&str],
        message: &M,
        except: Option<SubscriberId>,
    ) -> impl Future<Output = Result<usize, crate::SendError>> + Send
    where
        S: crate::Side,
        M: crate::Message + crate::SendableBy<S>,
    {
        let frame = crate::link::encode_frame::<S, M>(message);
        async move { Ok(self.publish(topics, &frame?, except).await) }
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

impl Broker for LocalBroker {
    fn subscribe(&self, topic: &str, id: SubscriberId, subscriber: Arc<dyn Deliver>) {
        self.write()
            .entry(topic.to_owned())
            .or_default()
            .insert(id, subscriber);
    }

    fn unsubscribe(&self, topic: &str, id: SubscriberId) {
        let mut topics = self.write();
        if let Some(subscribers) = topics.get_mut(topic) {
            subscribers.remove(&id);
            if subscribers.is_empty() {
                topics.remove(topic);
            }
        }
    }

    fn unsubscribe_all(&self, id: SubscriberId) {
        self.write().retain(|_, subscribers| {
            subscribers.remove(&id);
            !subscribers.is_empty()
        });
    }

    async fn publish(&self, topics: &[&str], frame: &str, except: Option<SubscriberId>) -> usize {
        let mut reached = 0;
        let mut gone = Vec::new();
        let frame = Text::from(frame.to_owned());
        {
            let map = self.read();
            let mut delivered: Vec<SubscriberId> = Vec::new();
            // With one topic (or one topic that has subscribers) nobody can be reached twice.
            let live = topics.iter().filter(|t| map.contains_key(**t)).count();
            for topic in topics {
                for (id, subscriber) in map.get(*topic).into_iter().flatten() {
                    if Some(*id) == except {
                        continue;
                    }
                    if live > 1 {
                        if delivered.contains(id) {
                            continue;
                        }
                        delivered.push(*id);
                    }
                    // Delivery never waits, so it is fine under the read lock.
                    if subscriber.deliver(&frame) {
                        reached += 1;
                    } else {
                        gone.push(*id);
                    }
                }
            }
        }
        for id in gone {
            self.unsubscribe_all(id);
        }
        reached
    }
}
