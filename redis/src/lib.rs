//! A [`Broker`] on Redis pub/sub: fan-out across server processes.
//!
//! Several server processes that share one Redis run [`RedisBroker`] instead of
//! [`protolink::broker::LocalBroker`]; a frame published on any of them reaches the subscribers
//! of all of them, and handlers do not change:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use protolink::broker::Broker;
//! use protolink_redis::{RedisBroker, RedisConfig};
//!
//! let broker = RedisBroker::connect(RedisConfig::new("redis://127.0.0.1:6379", "chat")).await?;
//! // Subscribe links as with `LocalBroker`, then publish from any process:
//! let processes = broker.publish(&["room:1"], r#"{"event":"hi"}"#, None).await?;
//! # let _ = processes;
//! # Ok(())
//! # }
//! ```
//!
//! How it works: each process keeps its own subscribers in a `LocalBroker` and joins the Redis
//! channel `protolink:PREFIX:TOPIC` of every topic that has one (one `SUBSCRIBE` connection). A
//! publish is a `PUBLISH` to the channel of each of its topics, carrying the frame after a
//! one-line header (the publishing process, the subscriber to leave out, the topic list); every
//! process, the publisher's included, delivers what Redis sends it to its own subscribers. So
//! every process sees a topic's frames in the order Redis took them, and the publisher's
//! acknowledgement means Redis took the frame.
//!
//! Faults: when Redis is down or does not answer within [`RedisConfig::timeout`], publishes fail
//! with [`PublishError::Unavailable`] at once; the broker reconnects with jittered exponential
//! backoff and joins again every topic its subscribers hold. Commands waiting for Redis are
//! bounded ([`RedisConfig::queue`], [`RedisConfig::queue_bytes`]); beyond that a publish fails
//! with [`PublishError::Overloaded`] instead of growing memory. Delivery is at most once: what is
//! published while a process's subscription connection is down never reaches its subscribers.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use protolink::broker::{Broker, Deliver, LocalBroker, PublishError, SubscriberId};
use protolink::transport::Text;
use protolink::ws::Backoff;
use redis::aio::{MultiplexedConnection, PubSub};
use redis::{AsyncConnectionConfig, Client, Cmd, Msg, Pipeline, Value};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// Settings of a [`RedisBroker`].
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// Where Redis is: `redis://HOST:PORT[/DB]` (`redis://:PASSWORD@HOST:PORT` with a password).
    pub url: String,
    /// Names this application's channels and keys (`protolink:PREFIX:...`), so that several
    /// applications can share one Redis.
    pub prefix: String,
    /// Commands waiting for Redis, at most; a publish beyond them fails with
    /// [`PublishError::Overloaded`].
    pub queue: usize,
    /// Bytes of commands waiting for Redis, at most.
    pub queue_bytes: usize,
    /// How long Redis may take to answer (or to accept a connection) before the connection
    /// counts as lost.
    pub timeout: Duration,
    /// Waits between attempts to reconnect.
    pub backoff: Backoff,
}

impl RedisConfig {
    /// The defaults: 4,096 commands and 64 MiB waiting at most, 2 s to answer, reconnecting
    /// after 50 ms doubling up to 2 s.
    pub fn new(url: impl Into<String>, prefix: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            prefix: prefix.into(),
            queue: 4096,
            queue_bytes: 64 << 20,
            timeout: Duration::from_secs(2),
            backoff: Backoff {
                initial: Duration::from_millis(50),
                max: Duration::from_secs(2),
            },
        }
    }
}

/// Why a [`RedisBroker`] could not start.
#[derive(Debug, thiserror::Error)]
pub enum RedisBrokerError {
    /// The URL is not a Redis URL.
    #[error("{url:?} is not a Redis URL: {source}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        #[source]
        source: redis::RedisError,
    },
    /// Redis did not accept a connection (it is checked at start; later outages are ridden out).
    #[error("cannot reach Redis at {url}: {reason}")]
    Connect {
        /// The URL given.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The settings cannot work.
    #[error("bad Redis broker settings: {0}")]
    Config(&'static str),
}

/// A [`Broker`] whose publishes reach the subscribers of every process sharing a Redis. Dropping
/// it stops its connections.
pub struct RedisBroker {
    shared: Arc<Shared>,
    tasks: [JoinHandle<()>; 2],
}

/// Commands waiting for Redis, with whoever waits for their answers.
struct Job {
    commands: Vec<Cmd>,
    bytes: usize,
    done: oneshot::Sender<Result<Vec<Value>, PublishError>>,
}

/// The topics this process has joined in Redis, and what is left to do.
#[derive(Default)]
struct Joined {
    /// Whether the subscription connection is up.
    up: bool,
    /// Topics Redis confirmed.
    topics: HashSet<String>,
    /// Topics that got their first subscriber since the last pass.
    pending: HashSet<String>,
    /// Whether a topic may have lost its last subscriber since the last pass.
    sweep: bool,
}

struct Shared {
    local: LocalBroker,
    /// Identifies this process in the frames it publishes (random: no coordination needed).
    node: u64,
    /// `protolink:PREFIX:`.
    namespace: String,
    config: RedisConfig,
    jobs: mpsc::Sender<Job>,
    queued_bytes: AtomicUsize,
    /// Whether the command connection is up (publishes fail at once while it is not).
    commands_up: AtomicBool,
    /// Why it is not, for the error a publisher gets.
    down_reason: Mutex<String>,
    joined: Mutex<Joined>,
    /// Wakes the subscription task: topics to join or leave.
    changed: Notify,
    /// Tells the command task that the subscription connection was lost: Redis went away, so
    /// its own connection is most likely broken too (it reconnects rather than failing the next
    /// command).
    subscriptions_lost: Notify,
    /// How many times the subscription connection was lost.
    subscription_losses: AtomicU64,
    /// Counts the subscription task's passes and state changes (for [`Broker::subscribed`]).
    settled: watch::Sender<u64>,
    /// Frames from Redis that could not be read (never from a well-behaved publisher).
    malformed: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every update leaves the value whole: a poisoned lock still holds a valid one.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl RedisBroker {
    /// Connects to Redis (failing if it cannot now) and starts the broker's two connections:
    /// one for commands, one for subscriptions. Must be called within a tokio runtime.
    pub async fn connect(config: RedisConfig) -> Result<RedisBroker, RedisBrokerError> {
        if config.queue == 0 || config.queue_bytes == 0 || config.timeout.is_zero() {
            return Err(RedisBrokerError::Config(
                "the queue, its bytes and the timeout must not be zero",
            ));
        }
        let client = Client::open(config.url.as_str()).map_err(|source| RedisBrokerError::Url {
            url: config.url.clone(),
            source,
        })?;
        let unreachable = |reason: String| RedisBrokerError::Connect {
            url: config.url.clone(),
            reason,
        };
        let commands = connect_commands(&client, config.timeout)
            .await
            .map_err(unreachable)?;
        let subscriptions = connect_subscriptions(&client, config.timeout)
            .await
            .map_err(unreachable)?;
        let (jobs, queue) = mpsc::channel(config.queue);
        let shared = Arc::new(Shared {
            local: LocalBroker::new(),
            node: fastrand::u64(..),
            namespace: format!("protolink:{}:", config.prefix),
            config,
            jobs,
            queued_bytes: AtomicUsize::new(0),
            commands_up: AtomicBool::new(true),
            down_reason: Mutex::new(String::new()),
            joined: Mutex::new(Joined::default()),
            changed: Notify::new(),
            subscriptions_lost: Notify::new(),
            subscription_losses: AtomicU64::new(0),
            settled: watch::Sender::new(0),
            malformed: AtomicU64::new(0),
        });
        let tasks = [
            tokio::spawn(run_commands(
                shared.clone(),
                client.clone(),
                queue,
                commands,
            )),
            tokio::spawn(run_subscriptions(shared.clone(), client, subscriptions)),
        ];
        Ok(RedisBroker { shared, tasks })
    }

    /// This process's id among the processes sharing the Redis (random, 64 bits): what makes
    /// ids it hands out unique across them.
    pub fn node(&self) -> u64 {
        self.shared.node
    }

    /// Whether both connections are up now.
    pub fn is_connected(&self) -> bool {
        self.shared.commands_up.load(Ordering::Acquire) && lock(&self.shared.joined).up
    }

    /// A list in Redis under this broker's prefix (`protolink:PREFIX:KEY`) holding the newest
    /// `cap` entries: a log every process shares.
    pub fn capped_list(&self, key: &str, cap: usize) -> CappedList {
        CappedList {
            shared: self.shared.clone(),
            key: format!("{}{key}", self.shared.namespace),
            cap,
        }
    }
}

impl Drop for RedisBroker {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// See [`RedisBroker::capped_list`]. Its commands share the broker's queue, so it fails (and
/// sheds load) the way publishes do.
pub struct CappedList {
    shared: Arc<Shared>,
    key: String,
    cap: usize,
}

impl CappedList {
    /// Adds `entry` as the newest and drops what is beyond the cap. The command is queued when
    /// this is called, so pushes and publishes reach Redis in the order they were made.
    pub fn push(&self, entry: &str) -> impl Future<Output = Result<(), PublishError>> + Send {
        let queued = if self.cap == 0 {
            None
        } else {
            Some(self.push_command(entry))
        };
        async move {
            if let Some(queued) = queued {
                queued?.await?;
            }
            Ok(())
        }
    }

    fn push_command(
        &self,
        entry: &str,
    ) -> Result<impl Future<Output = Result<Vec<Value>, PublishError>> + Send + 'static, PublishError>
    {
        // Not a transaction: every process trims after each push, and readers read at most
        // `cap` entries, so a reader between the two commands sees the same.
        let (mut push, mut trim) = (redis::cmd("LPUSH"), redis::cmd("LTRIM"));
        push.arg(&self.key).arg(entry);
        trim.arg(&self.key).arg(0).arg(self.cap.saturating_sub(1));
        self.shared.submit(vec![push, trim], entry.len())
    }

    /// Every entry, newest first (entries that are not UTF-8 are left out).
    pub async fn newest(&self) -> Result<Vec<String>, PublishError> {
        if self.cap == 0 {
            return Ok(Vec::new());
        }
        let mut range = redis::cmd("LRANGE");
        range.arg(&self.key).arg(0).arg(self.cap - 1);
        let values = self.shared.submit(vec![range], 0)?.await?;
        let Some(Value::Array(items)) = values.into_iter().next() else {
            return Err(PublishError::Refused(
                "LRANGE did not answer a list".to_owned(),
            ));
        };
        Ok(items
            .into_iter()
            .filter_map(|item| match item {
                Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
                _ => None,
            })
            .collect())
    }
}

impl Shared {
    fn channel(&self, topic: &str) -> String {
        format!("{}{topic}", self.namespace)
    }

    fn unavailable(&self) -> PublishError {
        PublishError::Unavailable(lock(&self.down_reason).clone())
    }

    fn went_down(&self, reason: String) {
        warn!(%reason, "Redis connection lost; reconnecting");
        *lock(&self.down_reason) = reason;
        self.commands_up.store(false, Ordering::Release);
    }

    /// Queues `commands` for the command connection, or says at once why it cannot.
    fn submit(
        &self,
        commands: Vec<Cmd>,
        bytes: usize,
    ) -> Result<impl Future<Output = Result<Vec<Value>, PublishError>> + Send + 'static, PublishError>
    {
        if !self.commands_up.load(Ordering::Acquire) {
            return Err(self.unavailable());
        }
        let limit = self.config.queue_bytes;
        let before = self.queued_bytes.fetch_add(bytes, Ordering::AcqRel);
        if before.saturating_add(bytes) > limit && before > 0 {
            self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            return Err(PublishError::Overloaded(format!(
                "{before} bytes already wait for Redis (at most {limit})"
            )));
        }
        let (done, reply) = oneshot::channel();
        let job = Job {
            commands,
            bytes,
            done,
        };
        if let Err(e) = self.jobs.try_send(job) {
            self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            return Err(match e {
                mpsc::error::TrySendError::Full(_) => PublishError::Overloaded(format!(
                    "{} commands already wait for Redis",
                    self.config.queue
                )),
                mpsc::error::TrySendError::Closed(_) => {
                    PublishError::Unavailable("the broker has stopped".to_owned())
                }
            });
        }
        Ok(async move {
            reply
                .await
                .map_err(|_| PublishError::Unavailable("the broker has stopped".to_owned()))?
        })
    }

    /// Something changed the set of topics with subscribers: wake the subscription task.
    fn topics_changed(&self, new_topic: Option<&str>) {
        {
            let mut joined = lock(&self.joined);
            match new_topic {
                Some(topic) => {
                    joined.pending.insert(topic.to_owned());
                }
                None => joined.sweep = true,
            }
        }
        self.changed.notify_one();
    }

    /// Delivers one message from Redis to this process's subscribers.
    fn receive(&self, message: &Msg) {
        let Some(topic) = message
            .get_channel_name()
            .strip_prefix(self.namespace.as_str())
        else {
            return;
        };
        let Some(envelope) = Envelope::read(message.get_payload_bytes()) else {
            let n = self.malformed.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() || n == 0 {
                warn!(
                    channel = message.get_channel_name(),
                    count = n + 1,
                    "ignored a message from Redis that is not a protolink frame"
                );
            }
            return;
        };
        let topics: Vec<&str> = envelope.topics.iter().map(String::as_str).collect();
        let Some(index) = topics.iter().position(|t| *t == topic) else {
            return;
        };
        let except = envelope.except.filter(|_| envelope.node == self.node);
        let delivery = self.local.deliver(&topics, index, &envelope.frame, except);
        if delivery.emptied_topic {
            self.topics_changed(None);
        }
    }
}

/// The header and frame a publish carries through Redis: `[node, except, [topics...]]`, a line
/// feed, then the frame as published.
struct Envelope {
    node: u64,
    except: Option<SubscriberId>,
    topics: Vec<String>,
    frame: Text,
}

impl Envelope {
    fn write(node: u64, except: Option<SubscriberId>, topics: &[&str], frame: &str) -> Vec<u8> {
        // JSON text never holds a raw line feed, so the first one ends the header.
        let header = serde_json::to_vec(&(node, except, topics)).unwrap_or_default();
        let mut payload = Vec::with_capacity(header.len() + 1 + frame.len());
        payload.extend_from_slice(&header);
        payload.push(b'\n');
        payload.extend_from_slice(frame.as_bytes());
        payload
    }

    fn read(payload: &[u8]) -> Option<Envelope> {
        let split = payload.iter().position(|b| *b == b'\n')?;
        let (node, except, topics): (u64, Option<SubscriberId>, Vec<String>) =
            serde_json::from_slice(&payload[..split]).ok()?;
        let frame = std::str::from_utf8(&payload[split + 1..]).ok()?;
        Some(Envelope {
            node,
            except,
            topics,
            frame: Text::from(frame.to_owned()),
        })
    }
}

impl Broker for RedisBroker {
    fn subscribe(&self, topic: &str, id: SubscriberId, subscriber: Arc<dyn Deliver>) {
        if self.shared.local.insert(topic, id, subscriber) {
            self.shared.topics_changed(Some(topic));
        }
    }

    fn subscribed(&self, topic: &str) -> impl Future<Output = ()> + Send {
        let shared = self.shared.clone();
        let topic = topic.to_owned();
        async move {
            let mut passes = shared.settled.subscribe();
            let deadline = tokio::time::Instant::now() + shared.config.timeout;
            loop {
                {
                    let joined = lock(&shared.joined);
                    // Down: it is joined again when the connection is back.
                    if !joined.up
                        || joined.topics.contains(&topic)
                        || !shared.local.has_topic(&topic)
                    {
                        return;
                    }
                }
                if tokio::time::timeout_at(deadline, passes.changed())
                    .await
                    .map_or(true, |r| r.is_err())
                {
                    return;
                }
            }
        }
    }

    fn unsubscribe(&self, topic: &str, id: SubscriberId) {
        if self.shared.local.remove(topic, id) {
            self.shared.topics_changed(None);
        }
    }

    fn unsubscribe_all(&self, id: SubscriberId) {
        if self.shared.local.remove_all(id) {
            self.shared.topics_changed(None);
        }
    }

    /// Resolves once Redis took the frame, to how many subscribed processes it reached, summed
    /// over the topics (a process holding two of the topics counts twice but delivers once).
    fn publish(
        &self,
        topics: &[&str],
        frame: &str,
        except: Option<SubscriberId>,
    ) -> impl Future<Output = Result<usize, PublishError>> + Send {
        let payload = Envelope::write(self.shared.node, except, topics, frame);
        let commands = topics
            .iter()
            .map(|topic| {
                let mut publish = redis::cmd("PUBLISH");
                publish.arg(self.shared.channel(topic)).arg(&payload);
                publish
            })
            .collect();
        // Queued now, not when first polled: publishes reach Redis in the order they are made.
        let queued = self
            .shared
            .submit(commands, payload.len().saturating_mul(topics.len()));
        async move {
            let values = queued?.await?;
            Ok(values
                .iter()
                .map(|v| match v {
                    Value::Int(n) => usize::try_from(*n).unwrap_or(0),
                    _ => 0,
                })
                .sum())
        }
    }
}

async fn connect_commands(
    client: &Client,
    timeout: Duration,
) -> Result<MultiplexedConnection, String> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| e.to_string())
}

async fn connect_subscriptions(client: &Client, timeout: Duration) -> Result<PubSub, String> {
    match tokio::time::timeout(timeout, client.get_async_pubsub()).await {
        Ok(Ok(pubsub)) => Ok(pubsub),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no connection within {timeout:?}")),
    }
}

/// Most jobs sent to Redis in one write.
const BATCH: usize = 256;

/// The command connection: takes queued jobs in batches, one pipeline per batch, in order;
/// reconnects when the connection is lost, failing what waits meanwhile.
async fn run_commands(
    shared: Arc<Shared>,
    client: Client,
    mut queue: mpsc::Receiver<Job>,
    connection: MultiplexedConnection,
) {
    let mut connection = Some(connection);
    // The subscription connection's losses this connection has already outlived.
    let mut outlived = 0;
    let mut attempt = 0u32;
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let Some(conn) = connection.as_mut() else {
            // Down: fail whatever is queued while waiting to try again.
            let wait = tokio::time::sleep(shared.config.backoff.delay(attempt, Duration::ZERO));
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    () = &mut wait => break,
                    job = queue.recv() => match job {
                        Some(job) => fail(&shared, job, shared.unavailable()),
                        None => return,
                    },
                }
            }
            match connect_commands(&client, shared.config.timeout).await {
                Ok(conn) => {
                    info!("Redis command connection restored");
                    outlived = shared.subscription_losses.load(Ordering::Acquire);
                    connection = Some(conn);
                    attempt = 0;
                    shared.commands_up.store(true, Ordering::Release);
                }
                Err(e) => {
                    attempt = attempt.saturating_add(1);
                    *lock(&shared.down_reason) =
                        format!("Redis is unreachable ({e}); reconnecting");
                }
            }
            continue;
        };
        tokio::select! {
            taken = queue.recv_many(&mut batch, BATCH) => if taken == 0 {
                return;
            },
            () = shared.subscriptions_lost.notified() => {
                // A loss from before this connection was made leaves it be.
                if shared.subscription_losses.load(Ordering::Acquire) != outlived {
                    shared.went_down("Redis closed the subscription connection".to_owned());
                    connection = None;
                }
                continue;
            }
        }
        let mut pipeline = redis::pipe();
        pipeline.ignore_errors();
        let mut counts = Vec::with_capacity(batch.len());
        for job in &mut batch {
            counts.push(job.commands.len());
            for cmd in job.commands.drain(..) {
                pipeline.add_command(cmd);
            }
        }
        let answers = exchange(conn, &pipeline, shared.config.timeout).await;
        let lost = match &answers {
            Err(PublishError::Unavailable(reason)) => Some(reason.clone()),
            _ => None,
        };
        let mut answers = answers.map(Vec::into_iter);
        for (job, count) in batch.drain(..).zip(counts) {
            let outcome = match &mut answers {
                Ok(values) => refused(values.by_ref().take(count).collect()),
                Err(e) => Err(copy(e)),
            };
            finish(&shared, job, outcome);
        }
        if let Some(reason) = lost {
            shared.went_down(reason);
            connection = None;
        }
    }
}

/// Sends one pipeline and reads its answers; a lost or silent connection is `Unavailable`.
async fn exchange(
    conn: &mut MultiplexedConnection,
    pipeline: &Pipeline,
    limit: Duration,
) -> Result<Vec<Value>, PublishError> {
    let answer = match tokio::time::timeout(limit, pipeline.query_async::<Vec<Value>>(conn)).await {
        Ok(answer) => answer,
        Err(_) => {
            return Err(PublishError::Unavailable(format!(
                "Redis did not answer within {limit:?}"
            )));
        }
    };
    answer.map_err(|e| {
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_unrecoverable_error()
        {
            PublishError::Unavailable(format!("lost the connection to Redis ({e})"))
        } else {
            PublishError::Refused(e.to_string())
        }
    })
}

/// The same error again, for every job of a failed batch.
fn copy(error: &PublishError) -> PublishError {
    match error {
        PublishError::Unavailable(e) => PublishError::Unavailable(e.clone()),
        PublishError::Overloaded(e) => PublishError::Overloaded(e.clone()),
        other => PublishError::Refused(other.to_string()),
    }
}

/// An error answer to one of a job's commands fails the job.
fn refused(values: Vec<Value>) -> Result<Vec<Value>, PublishError> {
    match values.iter().find_map(|v| match v {
        Value::ServerError(e) => Some(e.to_string()),
        _ => None,
    }) {
        Some(e) => Err(PublishError::Refused(e)),
        None => Ok(values),
    }
}

fn finish(shared: &Shared, job: Job, outcome: Result<Vec<Value>, PublishError>) {
    shared.queued_bytes.fetch_sub(job.bytes, Ordering::AcqRel);
    let _ = job.done.send(outcome);
}

fn fail(shared: &Shared, job: Job, error: PublishError) {
    finish(shared, job, Err(error));
}

/// The subscription connection: joins and leaves Redis channels as topics get and lose
/// subscribers, delivers what Redis sends, and after a lost connection reconnects and joins
/// every topic again.
async fn run_subscriptions(shared: Arc<Shared>, client: Client, first: PubSub) {
    let mut next = Some(first);
    let mut attempt = 0u32;
    loop {
        let pubsub = match next.take() {
            Some(pubsub) => pubsub,
            None => {
                tokio::time::sleep(shared.config.backoff.delay(attempt, Duration::ZERO)).await;
                match connect_subscriptions(&client, shared.config.timeout).await {
                    Ok(pubsub) => {
                        info!("Redis subscription connection restored");
                        attempt = 0;
                        pubsub
                    }
                    Err(e) => {
                        attempt = attempt.saturating_add(1);
                        tracing::debug!(error = %e, "Redis still unreachable");
                        continue;
                    }
                }
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        {
            let mut joined = lock(&shared.joined);
            joined.up = true;
            joined.topics.clear();
            joined.sweep = false;
            joined.pending = shared.local.topics().into_iter().collect();
        }
        shared.changed.notify_one();
        shared.settled.send_modify(|n| *n += 1);
        let reason = loop {
            tokio::select! {
                message = stream.next() => match message {
                    Some(message) => shared.receive(&message),
                    None => break "the subscription connection closed".to_owned(),
                },
                () = shared.changed.notified() => {
                    if let Err(e) = reconcile(&shared, &mut sink).await {
                        break e;
                    }
                    shared.settled.send_modify(|n| *n += 1);
                }
            }
        };
        warn!(%reason, "Redis subscription connection lost; reconnecting");
        shared.subscription_losses.fetch_add(1, Ordering::AcqRel);
        shared.subscriptions_lost.notify_one();
        {
            let mut joined = lock(&shared.joined);
            joined.up = false;
            joined.topics.clear();
        }
        shared.settled.send_modify(|n| *n += 1);
        attempt = attempt.saturating_add(1);
    }
}

/// Joins the topics that got subscribers and leaves those that lost them.
async fn reconcile(shared: &Shared, sink: &mut redis::aio::PubSubSink) -> Result<(), String> {
    let (join, leave) = {
        let mut joined = lock(&shared.joined);
        let pending = std::mem::take(&mut joined.pending);
        let join: Vec<String> = pending
            .into_iter()
            .filter(|t| !joined.topics.contains(t) && shared.local.has_topic(t))
            .collect();
        let leave: Vec<String> = if std::mem::take(&mut joined.sweep) {
            joined
                .topics
                .iter()
                .filter(|t| !shared.local.has_topic(t))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        (join, leave)
    };
    let limit = shared.config.timeout;
    // One channel per command: each gets exactly one confirmation.
    for topic in join {
        let channel = shared.channel(&topic);
        match tokio::time::timeout(limit, sink.subscribe(&channel)).await {
            Ok(Ok(())) => {
                lock(&shared.joined).topics.insert(topic);
            }
            Ok(Err(e)) => return Err(format!("SUBSCRIBE failed: {e}")),
            Err(_) => return Err(format!("SUBSCRIBE not confirmed within {limit:?}")),
        }
    }
    for topic in leave {
        let channel = shared.channel(&topic);
        match tokio::time::timeout(limit, sink.unsubscribe(&channel)).await {
            Ok(Ok(())) => {
                lock(&shared.joined).topics.remove(&topic);
            }
            Ok(Err(e)) => return Err(format!("UNSUBSCRIBE failed: {e}")),
            Err(_) => return Err(format!("UNSUBSCRIBE not confirmed within {limit:?}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn envelopes_carry_any_frame_and_topic() {
        let frame = "{\"a\":\"line\\nfeed\"}\n raw line feed too";
        let payload = Envelope::write(7, Some(3), &["x", "*", "with\nnewline"], frame);
        let read = Envelope::read(&payload).unwrap();
        assert_eq!(read.node, 7);
        assert_eq!(read.except, Some(3));
        assert_eq!(read.topics, ["x", "*", "with\nnewline"]);
        assert_eq!(read.frame.as_str(), frame);
        let read = Envelope::read(&Envelope::write(u64::MAX, None, &[], "")).unwrap();
        assert_eq!(
            (read.node, read.except, read.frame.as_str()),
            (u64::MAX, None, "")
        );
    }

    #[test]
    fn what_is_not_an_envelope_is_refused() {
        for payload in [
            &b""[..],
            b"no header",
            b"[1,null,[\"x\"]]",
            b"[1,null]\n{}",
            b"[-1,null,[]]\n{}",
            b"{\"node\":1}\n{}",
            b"[1,null,[\"x\"]]\n\xff\xfe",
            b"[1,null,[\"x\"\n]]{}",
        ] {
            assert!(Envelope::read(payload).is_none(), "{payload:?}");
        }
    }

    #[tokio::test]
    async fn bad_settings_and_unreachable_redis_are_errors() {
        let zero = RedisConfig {
            queue: 0,
            ..RedisConfig::new("redis://127.0.0.1:1", "t")
        };
        assert!(matches!(
            RedisBroker::connect(zero).await,
            Err(RedisBrokerError::Config(_))
        ));
        let url = RedisBroker::connect(RedisConfig::new("http://example", "t")).await;
        assert!(matches!(url, Err(RedisBrokerError::Url { .. })));
        // A port nothing listens on: bound, then let go.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("redis://127.0.0.1:{port}");
        match RedisBroker::connect(RedisConfig::new(url.as_str(), "t")).await {
            Err(e @ RedisBrokerError::Connect { .. }) => {
                assert!(
                    e.to_string()
                        .starts_with(&format!("cannot reach Redis at {url}: "))
                );
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("connected to nothing"),
        }
    }
}
