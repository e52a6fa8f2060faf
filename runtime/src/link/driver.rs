//! The reading half of a link: the driver reads every frame once, handles the common one in
//! plain function calls ([`Driver::try_now`]) and every other one on the general path, feeds
//! the session machine, routes replies through the request table, and dispatches messages to
//! the handler.

use super::*;

/// Reads a link's connection, feeds its session machine, and dispatches messages to the handler.
pub(super) struct Driver<S: Side, H> {
    link: Link<S>,
    handler: Arc<H>,
    session: Session<S>,
    machine: Machine<S>,
    events: Option<mpsc::Sender<S::Inbound>>,
    ordered: Option<mpsc::Sender<oneshot::Receiver<Option<String>>>>,
    /// The server's stop signal, until it comes.
    stop: Option<Stop>,
}

/// Until the server's stop signal comes (for ever without one).
async fn stopped(stop: &mut Option<Stop>) {
    match stop {
        // A server dropped without its signal stops as well.
        Some(stop) => {
            let _ = stop.signal.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// How a server tells its links that it stops: each closes with 1001 once the requests it is
/// handling are answered, or after `grace`.
pub(crate) struct Stop {
    pub(crate) signal: tokio::sync::broadcast::Receiver<()>,
    pub(crate) grace: Duration,
}

impl<S: Side + Dispatch<H>, H: Send + Sync + 'static> Driver<S, H> {
    /// The driver of `link`, with its handler, session and session machine.
    pub(super) fn new(
        link: Link<S>,
        handler: Arc<H>,
        session: Session<S>,
        machine: Machine<S>,
        stop: Option<Stop>,
    ) -> Self {
        Driver {
            link,
            handler,
            session,
            machine,
            events: None,
            ordered: None,
            stop,
        }
    }

    /// Boxed: the driver's state is in the link's future once, not twice (an `async fn` keeps
    /// a by-value `mut self` both as its argument and as a local).
    pub(super) async fn run<Src: FrameSource>(mut self: Box<Self>, mut source: Src) {
        let actions = self.machine.start(Instant::now());
        Box::pin(self.act(actions)).await;
        // One timer at the machine's deadline, reset only when that deadline moves: a fresh
        // timer per frame read costs a wake-up of tokio's time driver each time. A frame only
        // records when it came; the watchdog looks at that when it fires, and re-arms if the
        // peer was heard from since.
        let mut timer = Box::pin(sleep_until(Instant::now()));
        let mut armed_at: Option<Instant> = None;
        // Whether the peer is done sending: it closed, or the connection ended.
        let mut peer_done = false;
        // Once the server stops: when the link closes at the latest.
        let mut shutdown_at: Option<Instant> = None;
        loop {
            // Made before the state is read, so a close in between still wakes the loop.
            let changed = self.link.shared.state.changed();
            if self.link.is_closed() {
                break;
            }
            // Made before the count is read, so a request finishing in between still wakes it.
            let idle = self.link.shared.idle.notified();
            if let Some(at) = shutdown_at {
                self.link.shared.idle_wanted.store(true, Ordering::SeqCst);
                let idle = self.link.shared.in_flight.load(Ordering::SeqCst) == 0;
                if idle || Instant::now() >= at {
                    self.close_now(close::GOING_AWAY, "server shutting down")
                        .await;
                    continue;
                }
            }
            let earliest = match (self.machine.deadline(), shutdown_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if earliest != armed_at {
                if let Some(at) = earliest {
                    timer.as_mut().reset(at);
                }
                armed_at = earliest;
            }
            tokio::select! {
                frame = source.next_frame() => match frame {
                    // A frame's handling runs in a box of its own: an idle link holds only
                    // what waiting for the next frame needs, not the deepest handling path.
                    Some(Ok(Frame::Text(text))) => match self.try_now(&text) {
                        Now::Done => {}
                        now => Box::pin(self.later(&text, now)).await,
                    },
                    Some(Ok(Frame::Binary(bytes))) => {
                        if !wire::<S>().binary_text {
                            self.close_now(close::UNSUPPORTED, "binary frames are not part of this protocol").await;
                        } else if let Ok(text) = Text::try_from(bytes) {
                            match self.try_now(&text) {
                                Now::Done => {}
                                now => Box::pin(self.later(&text, now)).await,
                            }
                        } else {
                            self.close_now(close::INVALID_DATA, "binary frame is not UTF-8 text").await;
                        }
                    }
                    Some(Ok(Frame::Close(frame))) => {
                        peer_done = true;
                        let (code, reason) = frame.unwrap_or((close::NORMAL, String::new()));
                        debug!(code, %reason, "peer closed");
                        // The echo is queued before the link counts as closed: a writer that
                        // sees the link closed with nothing queued stops without a close frame.
                        let _ = self.link.shared.out.try_send(Outgoing::close(None, code, reason.clone()));
                        self.link.mark_closed(code, &reason);
                    }
                    Some(Err(TransportError::TooLarge)) => {
                        self.close_now(close::TOO_BIG, "frame too large").await;
                    }
                    Some(Err(TransportError::Protocol(e))) => {
                        debug!(error = %e, "peer broke the WebSocket protocol");
                        self.close_now(close::PROTOCOL_ERROR, "WebSocket protocol error").await;
                    }
                    Some(Err(TransportError::NotUtf8)) => {
                        self.close_now(close::INVALID_DATA, "text frame is not UTF-8").await;
                    }
                    Some(Err(TransportError::Lost(e))) => {
                        peer_done = true;
                        debug!(error = %e, "connection lost");
                        self.link.mark_closed(1006, &e);
                    }
                    None => {
                        peer_done = true;
                        self.link.mark_closed(1006, "connection closed without a close frame");
                    }
                },
                () = &mut timer, if armed_at.is_some() => {
                    armed_at = None;
                    if let Some(action) = self.machine.on_time(Instant::now()) {
                        Box::pin(self.act([action])).await;
                    }
                }
                () = stopped(&mut self.stop), if shutdown_at.is_none() && self.stop.is_some() => {
                    let grace = self.stop.take().map_or(Duration::ZERO, |stop| stop.grace);
                    shutdown_at = Some(Instant::now() + grace);
                }
                () = idle, if shutdown_at.is_some() => {}
                () = changed => {}
            }
        }
        // Wake everything still waiting.
        self.link.mark_closed(close::NORMAL, "");
        // This side closed: read on (and drop) what the peer still sends until its close comes,
        // for a while, so that the close handshake can finish. (It does not cover a process that
        // exits at once: a peer flooding a closing SocketCluster client still sees 1006 at times.)
        if !peer_done {
            let drain = timeout(CLOSE_DRAIN, async {
                while let Some(Ok(frame)) = source.next_frame().await {
                    if matches!(frame, Frame::Close(_)) {
                        break;
                    }
                }
            });
            let _ = Box::pin(drain).await;
        }
        self.link.shared.reader_done.set();
    }

    /// [`Link::start_close`] from the driver's loop, boxed: the loop's own state stays small.
    async fn close_now(&self, code: u16, reason: &str) {
        Box::pin(self.link.start_close(code, reason)).await;
    }

    /// Carries out what the session machine decided.
    async fn act(&mut self, actions: impl IntoIterator<Item = Action>) {
        for action in actions {
            match action {
                Action::Send(tag) => {
                    let provided = self.session.provided.get(&tag).cloned();
                    if self
                        .link
                        .send_raw_tag(tag, provided.as_deref())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Action::Request(tag) => self.handshake_request(tag),
                Action::Ready => {
                    self.link.shared.state.modify(|s| {
                        let was = matches!(s, LinkState::Handshaking);
                        if was {
                            *s = LinkState::Ready;
                        }
                        was
                    });
                }
                Action::Beat(Beat::Text(text)) => {
                    let _ = self.link.send_text(text).await;
                }
                Action::Beat(Beat::Message(tag)) => {
                    let provided = self.session.provided.get(&tag).cloned();
                    let _ = self.link.send_raw_tag(tag, provided.as_deref()).await;
                }
                Action::Close { code, reason } => {
                    self.link.start_close(code, &reason).await;
                    return;
                }
            }
        }
    }

    /// Sends this side's handshake request; its reply, which arrives through the driver
    /// itself, is awaited in a task of its own.
    fn handshake_request(&self, tag: Tag) {
        let link = self.link.clone();
        let info = crate::message::message_info::<S::Protocol>(tag);
        let kind = info.map_or(Kind::Request, |i| i.kind);
        let payload = self
            .session
            .provided
            .get(&tag)
            .cloned()
            .or_else(|| RawValue::from_string("{}".to_owned()).ok());
        tokio::spawn(async move {
            let failed = match link.request_raw(kind, tag, payload.as_deref(), None).await {
                // The driver has usually done this already (see `on_packet`).
                Ok(Ok(reply)) => match reply.into_raw::<S>() {
                    Ok(raw) => {
                        link.handshake_done(raw);
                        return;
                    }
                    Err(e) => e.to_string(),
                },
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            };
            link.close(close::POLICY, &format!("handshake failed: {failed}"))
                .await;
        });
    }

    /// A text frame, read once: the common case is handled here, without a future (a frame on
    /// a ready link that the scanner reads, valid, no session message, a request with its id on
    /// a protocol whose replies carry ids, or an event; or a reply routed by its envelope).
    /// Every other frame is handed to [`Driver::later`] with what was read of it, and that path
    /// makes the decisions.
    fn try_now<'t>(&mut self, whole: &'t Text) -> Now<'t, S::Inbound> {
        let text = whole.as_str();
        let profile = wire::<S>();
        // Any traffic shows the peer is alive. Raw text heartbeats are not JSON: look at them
        // first.
        self.machine.on_traffic(Instant::now());
        if let Some(pong) = self.machine.text_beat(text) {
            return Now::Beat(pong);
        }
        if profile.batch && text.trim_start().starts_with('[') {
            return Now::Batch;
        }
        if !self.link.shared.config.one_pass {
            return Now::General(None);
        }
        let fast = match profile.read_fast::<S::Inbound>(text) {
            Some(Fast::Message(fast)) if self.link.shared.state.is_ready() => fast,
            Some(Fast::Reply(id))
                if S::SENDS_REQUESTS && !self.machine.awaiting_handshake_reply() =>
            {
                // Handed to its requester as received, to be decoded there as its reply type.
                let resolved = self.link.resolve(id, Ok(ReplyBody::Frame(whole.clone())));
                return if resolved { Now::Done } else { Now::Unmatched };
            }
            read => return Now::General(read),
        };
        let tag = fast.message.tag();
        let ordered = profile.request_id == RequestIdPlace::Ordered;
        let run = run_as::<S>(fast.message.kind(), fast.id.is_some());
        if rules::<S>().close_message.is_some_and(|c| c.message == tag)
            || self.is_session_message(tag)
            || repeated_step::<S>(tag)
            || fast.message.validate().is_err()
            // Ordered replies go through a slot the general path keeps.
            || (ordered && run == RunAs::Request)
        {
            return Now::General(Some(Fast::Message(fast)));
        }
        match run {
            RunAs::Request => {
                let work = self.request_work(tag, fast.id, fast.message);
                let Some(text) = self.start_request(work) else {
                    return Now::Done;
                };
                match self.link.shared.out.try_send(Outgoing::Frame(text.into())) {
                    Err(TrySendError::Full(frame)) => Now::Reply(frame),
                    // A closed queue: the link is going away.
                    Ok(()) | Err(TrySendError::Closed(_)) => Now::Done,
                }
            }
            RunAs::Event => match self.queue_event(fast.message) {
                Ok(()) => Now::Done,
                Err(message) => Now::Event(message),
            },
            // The general path refuses it, in the protocol's words.
            RunAs::Refused(_) => Now::General(Some(Fast::Message(fast))),
        }
    }

    /// What [`Driver::try_now`] left to a future.
    async fn later(&mut self, whole: &Text, now: Now<'_, S::Inbound>) {
        match now {
            Now::Done => {}
            Now::Beat(pong) => self.act(pong).await,
            Now::Batch => self.on_batch(whole.as_str()).await,
            Now::General(read) => self.on_packet(whole.as_str(), Some(whole), read).await,
            Now::Reply(frame) => {
                let _ = self.link.enqueue_when_room(frame).await;
            }
            Now::Event(message) => self.dispatch_event(message).await,
            Now::Unmatched => self.unmatched_reply().await,
        }
    }

    /// A batch of packets (SocketCluster's arrays), each read once and handled in order.
    async fn on_batch(&mut self, text: &str) {
        let profile = wire::<S>();
        let one_pass = self.link.shared.config.one_pass;
        match serde_json::from_str::<Vec<&RawValue>>(text) {
            Ok(packets) => {
                for packet in packets {
                    let packet = packet.get();
                    let read = if one_pass {
                        profile.read_fast::<S::Inbound>(packet)
                    } else {
                        None
                    };
                    self.on_packet(packet, None, read).await;
                }
            }
            Err(e) => {
                let input = InvalidInput::Decode(DecodeError::Json(e));
                Box::pin(self.invalid(None, None, input, false)).await
            }
        }
    }

    /// One JSON packet (`whole` is the frame itself, or `None` for an element of a batch), with
    /// what the one-pass read made of it. Every frame takes one of these ways: a message read
    /// in one pass is handled as it is; a reply whose envelope routes it goes to its requester
    /// as it is; a reply the envelope cannot route (its id inside the payload, or its payload
    /// first where replies come in order) is decoded as the reply type of the request it
    /// answers; anything else is classified by the general path, which words every error.
    async fn on_packet(
        &mut self,
        text: &str,
        whole: Option<&Text>,
        read: Option<Fast<'_, S::Inbound>>,
    ) {
        let profile = wire::<S>();
        let one_pass = self.link.shared.config.one_pass;
        let awaiting = self.machine.awaiting_handshake_reply();
        // A frame read as a message is no reply to decode for a requester.
        let message = matches!(read, Some(Fast::Message(_)));
        let mut named = None;
        match read {
            // The close message goes the general way: its reason is read from the payload's
            // text. Before the link is ready, session messages need their payload's text too.
            Some(Fast::Message(fast))
                if self.link.shared.state.is_ready()
                    && rules::<S>().close_message.map(|c| c.message)
                        != Some(fast.message.tag()) =>
            {
                return self.on_decoded(fast.message, fast.id, None).await;
            }
            // The handshake's reply takes the general path: the driver keeps it.
            Some(Fast::Reply(id)) if !awaiting => {
                if !S::SENDS_REQUESTS {
                    return Box::pin(self.not_a_reply(text)).await;
                }
                let frame = whole.cloned().unwrap_or_else(|| Text::from(text));
                if !self.link.resolve(id, Ok(ReplyBody::Frame(frame))) {
                    Box::pin(self.unmatched_reply()).await;
                }
                return;
            }
            Some(Fast::ReplyTo(name)) => named = Some(name),
            _ => {}
        }
        if one_pass && !awaiting && !message {
            if let Some(fast) = self.link.decode_reply(text, named) {
                if !self
                    .link
                    .resolve(fast.id, Ok(ReplyBody::Decoded(fast.reply)))
                {
                    Box::pin(self.unmatched_reply()).await;
                }
                return;
            }
        }
        let frame = match profile.classify(text) {
            Ok(frame) => frame,
            Err(e) => {
                let array = text.trim_start().starts_with('[');
                return Box::pin(self.invalid(None, None, InvalidInput::Decode(e), array)).await;
            }
        };
        match frame {
            RawFrame::Reply(_)
                if !S::SENDS_REQUESTS && !self.machine.awaiting_handshake_reply() =>
            {
                Box::pin(self.not_a_reply(text)).await;
            }
            RawFrame::Reply(reply) => {
                let result = reply.result.map(|p| ReplyBody::Raw(p.to_json()));
                // While this side waits for the reply to its handshake request, it has sent no
                // other request (application requests wait for the handshake), so a reply that
                // resolves one is that reply: the link is ready before the next frame is read,
                // since the peer may send right behind it (SocketCluster invokes the client at
                // once).
                let handshake_reply = match &result {
                    Ok(ReplyBody::Raw(raw)) if self.machine.awaiting_handshake_reply() => {
                        Some(raw.clone())
                    }
                    _ => None,
                };
                let resolved = self.link.resolve(reply.id, result);
                if resolved && self.machine.awaiting_handshake_reply() {
                    self.machine.handshake_replied();
                    if let Some(reply) = handshake_reply {
                        self.link.handshake_done(reply);
                    }
                }
                if !resolved {
                    Box::pin(self.unmatched_reply()).await;
                }
            }
            RawFrame::Message(raw) => Box::pin(self.on_message(raw)).await,
        }
    }

    /// A frame shaped like a reply, on a side that sends no requests: a message with a name this
    /// side does not know (a Skynet client's `{"type": "result"}` is `No such command result`).
    async fn not_a_reply(&mut self, text: &str) {
        let name = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text)
            .ok()
            .and_then(|frame| frame.get(wire::<S>().tag).map(ToString::to_string))
            .unwrap_or_default();
        let unknown = InvalidInput::Decode(DecodeError::UnknownMessage { name });
        Box::pin(self.invalid(Some(Tag::Str("")), None, unknown, false)).await;
    }

    /// A reply that matched no pending request was dropped and counted; protocols that close on
    /// invalid frames close here too.
    async fn unmatched_reply(&mut self) {
        if let Some(prefix) = rules::<S>().invalid_closes {
            let reason = format!("{prefix}: reply matches no pending request");
            self.link.start_close(close::POLICY, &reason).await;
        }
    }

    /// A frame that cannot be used. `tag` is the message it names, when it names one it could
    /// be; `answer` is `Some(id)` when it can be answered (a request with its id, or any frame of
    /// an ordered protocol on a side that takes requests). It is answered with an error, worded
    /// by the protocol's `invalid` rules (or dropped without a word where a rule says
    /// `ignored`); what cannot be answered is logged and dropped: an unknown message without more
    /// (a peer may send what this side does not know), anything else counted, and more than
    /// `max_invalid` such frames close the link. Protocols declaring `invalid closes` close at
    /// once.
    async fn invalid(
        &mut self,
        tag: Option<Tag>,
        answer: Option<Option<RequestId>>,
        input: InvalidInput,
        array: bool,
    ) {
        let rules = rules::<S>();
        let kind = invalid_kind(&input, array, wire::<S>().tag);
        let action = kind
            .and_then(|kind| InvalidRule::find(rules.invalid_rules, kind, tag))
            .map(|rule| rule.action);
        let detail = match &self.session.describe {
            Some(describe) => describe(&input),
            None => input.to_string(),
        };
        debug!(%detail, "invalid frame");
        // Anything unusable before the handshake finished is traffic before the handshake.
        if self.peer_still_handshaking() {
            self.close_before_handshake().await;
            return;
        }
        let name = name_read::<S>(&input, tag.unwrap_or(Tag::Str("")));
        let placeholders = Placeholders {
            name: &name,
            detail: &detail,
            side: S::NAME,
            peer: <S::Peer as Side>::NAME,
        };
        if let Some(InvalidAction::Close { text }) = action {
            let reason = InvalidAction::render(text, &placeholders);
            self.link.start_close(close::POLICY, &reason).await;
            return;
        }
        if let Some(prefix) = rules.invalid_closes {
            self.link
                .start_close(close::POLICY, &format!("{prefix}: {detail}"))
                .await;
            return;
        }
        if action == Some(InvalidAction::Ignore) {
            return;
        }
        // In an ordered protocol every frame could be a request, if this side takes any.
        let ordered = wire::<S>().request_id == RequestIdPlace::Ordered && S::TAKES_REQUESTS;
        if ordered || answer.is_some() {
            let tag = tag.unwrap_or(Tag::Str(""));
            let error = match (action, &self.session.answer) {
                (Some(InvalidAction::Answer { text, name }), _) => {
                    // A parser's message needs no "frame is not JSON" in front of it here.
                    let detail = match (&input, &self.session.describe) {
                        (InvalidInput::Decode(DecodeError::Json(e)), None) => e.to_string(),
                        _ => detail.clone(),
                    };
                    let error = RemoteError::new(InvalidAction::render(
                        text,
                        &Placeholders {
                            detail: &detail,
                            ..placeholders
                        },
                    ));
                    match name {
                        Some(name) => error.with_name(name),
                        None => error,
                    }
                }
                (_, Some(answer)) => answer(tag, &input, detail),
                (_, None) => RemoteError::new(detail),
            };
            self.reply_now(tag, answer.flatten(), Err(error)).await;
            return;
        }
        if kind == Some(InvalidKind::Unknown) {
            return;
        }
        if let Some(close) = self.machine.count_invalid() {
            self.act([close]).await;
        }
    }

    /// Whether a message from the peer now is traffic before the handshake. Not while this side
    /// waits for the reply to its own handshake request: the peer has had it, and may send ahead
    /// of its reply (a SocketCluster server sends `#removeAuthToken` before the reply to a
    /// `#handshake` with a bad token); such messages are dispatched as usual.
    fn peer_still_handshaking(&self) -> bool {
        matches!(self.link.state(), LinkState::Handshaking)
            && !self.machine.awaiting_handshake_reply()
    }

    /// Closes as the protocol says for traffic before the handshake finished.
    async fn close_before_handshake(&mut self) {
        Box::pin(self.act([Machine::<S>::before_handshake()])).await;
    }

    async fn on_message(&mut self, raw: RawMessage<'_>) {
        let request_id = raw.id.clone();
        let is_request = raw.class == FrameClass::Request || request_id.is_some();
        let decoded = S::Inbound::decode(&raw);
        let message = match decoded {
            Ok(m) => m,
            Err(e) => {
                let tag = tag_of::<S::Protocol>(raw.name);
                let e = match e {
                    DecodeError::UnknownMessage { name } => DecodeError::UnknownMessage {
                        name: as_written(wire::<S>(), raw.class, name),
                    },
                    e => e,
                };
                let answer = answer_to::<S>(is_request, request_id);
                let input = InvalidInput::Decode(e);
                return Box::pin(self.invalid(Some(tag), answer, input, false)).await;
            }
        };
        self.on_decoded(message, request_id, Some(&raw)).await;
    }

    /// A decoded message: validation, session rules, then dispatch. `raw` is the classified
    /// frame when there is one; the single-pass path has none and is only taken where the
    /// session rules do not need the payload's text.
    async fn on_decoded(
        &mut self,
        message: S::Inbound,
        request_id: Option<RequestId>,
        raw: Option<&RawMessage<'_>>,
    ) {
        let tag = message.tag();
        let kind = message.kind();
        if let Err(errors) = message.validate() {
            let answer = answer_to::<S>(kind == Kind::Request, request_id);
            let input = InvalidInput::Validation(errors);
            return Box::pin(self.invalid(Some(tag), answer, input, false)).await;
        }
        // Session messages are few (handshake steps, heartbeats, the close message): the check is
        // cheap, their handling boxed, so a frame's handling stays small.
        if self.is_session_message(tag) && Box::pin(self.on_session_message(tag, raw)).await {
            return;
        }
        if self.peer_still_handshaking() {
            Box::pin(self.close_before_handshake()).await;
            return;
        }
        // A message the peer sends as a handshake step is not valid again once the handshake
        // finished (the Clusterio master has nothing for a second `register_control`): it names
        // no message valid now. (Handshake requests are answered by the handler as any request.)
        if repeated_step::<S>(tag) && matches!(self.link.state(), LinkState::Ready) {
            let name = match tag {
                Tag::Str(s) => serde_json::to_string(s).unwrap_or_default(),
                Tag::Int(n) => n.to_string(),
            };
            let unknown = InvalidInput::Decode(DecodeError::UnknownMessage { name });
            Box::pin(self.invalid(None, None, unknown, false)).await;
            return;
        }
        match run_as::<S>(kind, request_id.is_some()) {
            RunAs::Request => self.dispatch_request(tag, request_id, message).await,
            RunAs::Event => self.dispatch_event(message).await,
            RunAs::Refused(key) => {
                let missing = InvalidInput::Decode(DecodeError::MissingKey(key));
                Box::pin(self.invalid(Some(tag), None, missing, false)).await;
            }
        }
    }

    /// Whether [`Driver::on_session_message`] has anything to do with a message tagged `tag`.
    fn is_session_message(&self, tag: Tag) -> bool {
        let ready = self.link.shared.state.is_ready();
        rules::<S>().close_message.is_some_and(|c| c.message == tag)
            || self.machine.message_beat(tag, ready).is_some()
            || self.machine.peer_step(tag).is_some()
    }

    /// Handles handshake steps, heartbeats and the close message; `true` when consumed.
    async fn on_session_message(&mut self, tag: Tag, raw: Option<&RawMessage<'_>>) -> bool {
        let rules = rules::<S>();
        if let Some(close) = rules.close_message.filter(|c| c.message == tag) {
            let reason = raw
                .and_then(|raw| field_text(&raw.payload, close.reason))
                .unwrap_or_default();
            // The peer's code, where the message carries one and it may be sent in a close
            // frame (RFC 6455 7.4: 1000-2999 but the reserved ones, and 3000-4999).
            let code = close
                .code
                .zip(raw)
                .and_then(|(field, raw)| field_u64(&raw.payload, field))
                .and_then(|code| u16::try_from(code).ok())
                .filter(|code| sendable_close_code(*code))
                .unwrap_or(close::NORMAL);
            debug!(code, %reason, "peer sent its close message");
            // Queued before the link counts as closed (see the close frame's echo above).
            let _ = self
                .link
                .shared
                .out
                .try_send(Outgoing::close(None, code, reason.clone()));
            self.link.mark_closed(code, &reason);
            return true;
        }
        let ready = matches!(self.link.state(), LinkState::Ready);
        if let Some(pong) = self.machine.message_beat(tag, ready) {
            self.act(pong).await;
            return true;
        }
        // Not the step the handshake waits for: a heartbeat before the handshake finished, or a
        // handshake message repeated.
        let Some(step) = self.machine.peer_step(tag) else {
            return false;
        };
        // Handshake steps always come through the classified path (the link is not ready yet).
        let Some(raw) = raw else { return false };
        if let Some(code) = step.malformed_id {
            // The step's request id must be there, of the wire's id type.
            let text = matches!(
                wire::<S>().request_id,
                RequestIdPlace::Key { text: true, .. }
            );
            let well_formed = match &raw.id {
                Some(RequestId::Int(_)) => !text,
                Some(RequestId::Str(_)) => text,
                None => false,
            };
            if !well_formed {
                let reason = <S::Protocol as Protocol>::CloseCode::reason_for(code)
                    .unwrap_or("handshake rejected");
                self.link.start_close(code, reason).await;
                return true;
            }
        }
        if let Some(check) = &self.session.check {
            if let Err(code) = check(raw.id.as_ref(), &raw.payload.to_json()) {
                let reason = <S::Protocol as Protocol>::CloseCode::reason_for(code)
                    .unwrap_or("handshake rejected");
                self.link.start_close(code, reason).await;
                return true;
            }
        }
        if step.auth_field.is_some() {
            if let Some(auth) = self.session.auth.clone() {
                if let Err(reason) = auth(self.link.clone(), raw.payload.to_json()).await {
                    let code = step.failure.unwrap_or(close::POLICY);
                    let text = <S::Protocol as Protocol>::CloseCode::reason_for(code)
                        .map_or(reason, str::to_owned);
                    self.link.start_close(code, &text).await;
                    return true;
                }
            }
        }
        // Heartbeat intervals may be taken from this message.
        let interval = rules.heartbeats.iter().find_map(|h| match h.interval {
            Interval::FromField { message, field } if message == tag => {
                field_u64(&raw.payload, field)
            }
            _ => None,
        });
        let actions = self.machine.peer_stepped(interval, Instant::now());
        self.act(actions).await;
        // A request step is answered by the handler like any request.
        !step.request
    }

    async fn dispatch_request(&mut self, tag: Tag, id: Option<RequestId>, message: S::Inbound) {
        let mut work = self.request_work(tag, id, message);
        if wire::<S>().request_id != RequestIdPlace::Ordered {
            if let Some(text) = self.start_request(work) {
                let _ = self.link.enqueue(text).await;
            }
            return;
        }
        let (tx, rx) = oneshot::channel();
        if let Some(reply) = futures_util::FutureExt::now_or_never(work.as_mut()) {
            let _ = tx.send(reply);
        } else {
            tokio::spawn(async move {
                let _ = tx.send(work.await);
            });
        }
        self.ordered_slot(rx).await;
    }

    /// A request's handling, to the text of its reply (`None` when it has none).
    fn request_work(
        &self,
        tag: Tag,
        id: Option<RequestId>,
        message: S::Inbound,
    ) -> std::pin::Pin<Box<dyn Future<Output = Option<String>> + Send>> {
        let handler = self.handler.clone();
        let link = self.link.clone();
        let span = debug_span!("handle", request = %tag);
        link.shared.in_flight.fetch_add(1, Ordering::SeqCst);
        let work = async move {
            let outcome = S::dispatch(&handler, message).await;
            let reply = match outcome {
                Outcome::Reply(result) => encode_reply::<S>(&link, tag, id.as_ref(), result),
                Outcome::Done | Outcome::Session => None,
            };
            if link.shared.in_flight.fetch_sub(1, Ordering::SeqCst) == 1
                && link.shared.idle_wanted.load(Ordering::SeqCst)
            {
                link.shared.idle.notify_waiters();
            }
            reply
        };
        // The span is only entered on every poll when something listens for it.
        if span.is_disabled() {
            Box::pin(work)
        } else {
            Box::pin(work.instrument(span))
        }
    }

    /// Starts a request of a protocol whose replies carry ids. Most handlers answer without
    /// waiting: the work is polled once, and only a handler that has to wait gets a task of its
    /// own (so a slow one never holds up the others). The reply when it came at once.
    fn start_request(
        &self,
        mut work: std::pin::Pin<Box<dyn Future<Output = Option<String>> + Send>>,
    ) -> Option<String> {
        if let Some(reply) = futures_util::FutureExt::now_or_never(work.as_mut()) {
            return reply;
        }
        let link = self.link.clone();
        tokio::spawn(async move {
            if let Some(text) = work.await {
                let _ = link.enqueue(text).await;
            }
        });
        None
    }

    /// Queues a reply slot for protocols that answer in order; one task writes them in order.
    async fn ordered_slot(&mut self, rx: oneshot::Receiver<Option<String>>) {
        let sender = self.ordered.get_or_insert_with(|| {
            let (tx, mut slots) = mpsc::channel::<oneshot::Receiver<Option<String>>>(1024);
            let link = self.link.clone();
            tokio::spawn(async move {
                while let Some(slot) = slots.recv().await {
                    if let Ok(Some(text)) = slot.await {
                        if link.enqueue(text).await.is_err() {
                            return;
                        }
                    }
                }
            });
            tx
        });
        let _ = sender.send(rx).await;
    }

    async fn reply_now(
        &mut self,
        tag: Tag,
        id: Option<RequestId>,
        result: Result<Reply, RemoteError>,
    ) {
        let Some(text) = encode_reply::<S>(&self.link, tag, id.as_ref(), result) else {
            return;
        };
        if wire::<S>().request_id == RequestIdPlace::Ordered {
            let (tx, rx) = oneshot::channel();
            let _ = tx.send(Some(text));
            self.ordered_slot(rx).await;
        } else {
            let _ = self.link.enqueue(text).await;
        }
    }

    async fn dispatch_event(&mut self, message: S::Inbound) {
        if let Err(message) = self.queue_event(message) {
            if let Some(sender) = &self.events {
                let _ = sender.send(message).await;
            }
        }
    }

    /// Queues an event for the handler's event task; `Err` with the event when the queue is full
    /// (the caller waits for room).
    fn queue_event(&mut self, message: S::Inbound) -> Result<(), S::Inbound> {
        // Events run one after another, in arrival order, beside the reader.
        let sender = self.events.get_or_insert_with(|| {
            let (tx, mut rx) = mpsc::channel::<S::Inbound>(256);
            let handler = self.handler.clone();
            tokio::spawn(async move {
                while let Some(message) = rx.recv().await {
                    S::dispatch(&handler, message).await;
                }
            });
            tx
        });
        match sender.try_send(message) {
            Err(mpsc::error::TrySendError::Full(message)) => Err(message),
            // A closed queue: the link is going away.
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => Ok(()),
        }
    }
}

/// Where a frame that cannot be used is answered ([`Driver::invalid`]'s `answer`): a request
/// with its id, or any request where replies come in order; `None` when it cannot be.
fn answer_to<S: Side>(is_request: bool, id: Option<RequestId>) -> Option<Option<RequestId>> {
    let ordered = wire::<S>().request_id == RequestIdPlace::Ordered;
    (is_request && (id.is_some() || ordered)).then_some(id)
}

/// Whether `tag` is a handshake step the peer sends (not a request): once the handshake is done,
/// that message is not valid again.
fn repeated_step<S: Side>(tag: Tag) -> bool {
    rules::<S>()
        .handshake
        .iter()
        .any(|step| step.sender != my_role::<S>() && !step.request && step.messages.contains(&tag))
}

/// How a decoded message of kind `kind` runs, by whether it came with a request id.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RunAs {
    /// As a request, answered.
    Request,
    /// As an event, handled one after another on the event task.
    Event,
    /// Not at all: a request without the id it must carry, which could never be answered.
    Refused(&'static str),
}

fn run_as<S: Side>(kind: Kind, has_id: bool) -> RunAs {
    match (kind, wire::<S>().request_id) {
        (Kind::Request, RequestIdPlace::Ordered) => RunAs::Request,
        (Kind::Request, _) if has_id => RunAs::Request,
        // A request sent without an id expects no reply where the id is optional
        // (SocketCluster's `cid`): it runs as an event would.
        (Kind::Request, RequestIdPlace::Key { optional: true, .. }) | (Kind::Event, _) => {
            RunAs::Event
        }
        (Kind::Request, RequestIdPlace::Key { key, .. }) => RunAs::Refused(key),
        (Kind::Request, RequestIdPlace::Sequence) | (Kind::Message, _) => RunAs::Event,
    }
}

/// What [`Driver::try_now`] did with a frame: done, or what is left for [`Driver::later`].
enum Now<'t, I> {
    /// Handled.
    Done,
    /// A raw text heartbeat, and the machine's answer to it.
    Beat(Option<Action>),
    /// A batch of packets.
    Batch,
    /// Not the common case: the frame goes the general way ([`Driver::on_packet`]), with what
    /// the one-pass read made of it (`None`: nothing).
    General(Option<Fast<'t, I>>),
    /// Handled, but its reply waits for room in the send queue.
    Reply(Outgoing),
    /// Decoded, but its event waits for room in the event queue.
    Event(I),
    /// A reply that matched no pending request.
    Unmatched,
}

fn encode_reply<S: Side>(
    link: &Link<S>,
    tag: Tag,
    id: Option<&RequestId>,
    result: Result<Reply, RemoteError>,
) -> Option<String> {
    let profile = wire::<S>();
    let seq = link.seq();
    let mut buf = Vec::with_capacity(FRAME_CAPACITY);
    let failed = |buf: &mut Vec<u8>, error: &RemoteError| {
        profile.encode_reply::<()>(buf, tag, id, seq, Err(error))
    };
    let written = match &result {
        Ok(reply) => reply.encode(profile, &mut buf, tag, id, seq).or_else(|e| {
            // The peer still gets an answer: a failure saying why there is no result.
            buf.clear();
            failed(
                &mut buf,
                &RemoteError::new(format!("cannot encode the reply: {e}")),
            )
        }),
        Err(error) => failed(&mut buf, error),
    };
    match written {
        Ok(()) => String::from_utf8(buf).ok(),
        Err(e) => {
            warn!(error = %e, "cannot encode a reply");
            None
        }
    }
}

/// A message name as read from a frame (quoted when it is a string), with the suffix its
/// framing adds (`foo` read from `foo_request` is `foo_request` again).
fn as_written(profile: &WireProfile, class: FrameClass, name: String) -> String {
    let framing = match class {
        FrameClass::Request => profile.request,
        FrameClass::Event => profile.event,
        FrameClass::Plain => return name,
    };
    match serde_json::from_str::<String>(&name) {
        Ok(bare) => serde_json::to_string(&suffixed(framing, &bare)).unwrap_or(name),
        Err(_) => name,
    }
}

/// What an `invalid` rule calls a frame that could not be used.
fn invalid_kind(input: &InvalidInput, array: bool, tag_key: &str) -> Option<InvalidKind> {
    Some(match input {
        InvalidInput::Decode(DecodeError::Json(_)) => InvalidKind::Json,
        InvalidInput::Decode(DecodeError::NotAnObject) if array => InvalidKind::Array,
        InvalidInput::Decode(DecodeError::NotAnObject) => InvalidKind::Object,
        InvalidInput::Decode(
            DecodeError::MissingKey(key) | DecodeError::WrongKeyType { key, .. },
        ) if *key == tag_key => InvalidKind::Untagged,
        InvalidInput::Decode(DecodeError::UnknownMessage { .. }) => InvalidKind::Unknown,
        InvalidInput::Decode(
            DecodeError::UnexpectedKey(_)
            | DecodeError::MissingKey(_)
            | DecodeError::WrongKeyType { .. },
        ) => InvalidKind::Envelope,
        InvalidInput::Decode(DecodeError::Payload { .. }) | InvalidInput::Validation(_) => {
            InvalidKind::Payload
        }
        InvalidInput::Decode(_) => return None,
    })
}

/// The message name a frame that could not be used carried, as the frame wrote it (`{name}` in
/// `invalid` rules): a known message's tag with the suffix its kind is framed with
/// (`list_instances_request`); empty when it named none.
fn name_read<S: Side>(input: &InvalidInput, tag: Tag) -> String {
    match (input, tag) {
        // The error quotes string names; the rule wants the name itself.
        (InvalidInput::Decode(DecodeError::UnknownMessage { name }), _) => {
            serde_json::from_str::<String>(name).unwrap_or_else(|_| name.clone())
        }
        (InvalidInput::Decode(DecodeError::Payload { .. }) | InvalidInput::Validation(_), tag) => {
            match tag {
                Tag::Str(s) => {
                    let profile = wire::<S>();
                    let framing = <S::Protocol as Protocol>::MESSAGES
                        .iter()
                        .find(|m| m.tag == tag)
                        .map_or(Framing::Tagged, |m| match m.kind {
                            Kind::Request => profile.request,
                            Kind::Event => profile.event,
                            Kind::Message => Framing::Tagged,
                        });
                    suffixed(framing, s)
                }
                Tag::Int(n) => n.to_string(),
            }
        }
        _ => String::new(),
    }
}

fn field_text(payload: &Payload<'_>, field: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(payload.to_json().get()).ok()?;
    match value.get(field)? {
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Whether a close frame may carry `code` (RFC 6455, section 7.4).
fn sendable_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999)
}

fn field_u64(payload: &Payload<'_>, field: &str) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_str(payload.to_json().get()).ok()?;
    value.get(field)?.as_u64()
}
