//! Request correlation without I/O: the ids of the requests this side sends, the table of those
//! waiting for their replies, and which waiter a reply goes to.
//!
//! A link's requests are sent from any task holding the link, and their replies are read by the
//! link's driver, so the table sits behind the link's lock; it does nothing but bookkeeping. The
//! link gives each request a waiter (a oneshot sender) and, where the reader decodes replies for
//! the requester, the one-pass decoder of its reply type; the table hands the waiter back when
//! the reply comes, when the request is cancelled, or never (a timed-out request's entry is
//! forgotten; on a protocol whose replies come in order its slot stays, since its reply still
//! comes and takes the slot). Closing the table drops every waiter, which is how the requests in
//! flight learn that the link is gone. Generic over the waiter and the decoder, so its rules are
//! tested here with plain values.

use std::collections::{HashMap, VecDeque};

use crate::wire::{RequestId, RequestIdPlace, Tag};

/// Why a request could not be started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The link has closed.
    Closed,
    /// This many requests already wait for their replies.
    TooMany(usize),
}

/// The requests of one link that wait for their replies.
#[derive(Debug)]
pub(crate) struct Requests<W, D> {
    ids: RequestIdPlace,
    /// The next id of a protocol whose ids are counted.
    next: i64,
    max: usize,
    /// `None` once the link has closed.
    table: Option<Table<W, D>>,
    /// Replies that matched no waiting request.
    unmatched: u64,
}

#[derive(Debug)]
enum Table<W, D> {
    /// Replies carry the id of the request they answer.
    ById {
        waiting: HashMap<RequestId, W>,
        /// The decoder of each request's reply type, by the request's name: for replies whose id
        /// sits inside the payload, which the reader decodes by the name they carry.
        decoders: HashMap<&'static str, D>,
    },
    /// Replies come in the order of the requests.
    Ordered(VecDeque<(W, Option<D>)>),
}

impl<W, D: Copy> Requests<W, D> {
    /// An empty table for a protocol whose requests are told apart as `ids` says, holding at
    /// most `max` requests.
    pub(crate) fn new(ids: RequestIdPlace, max: usize) -> Self {
        let table = match ids {
            RequestIdPlace::Ordered => Table::Ordered(VecDeque::new()),
            RequestIdPlace::Key { .. } | RequestIdPlace::Sequence => Table::ById {
                waiting: HashMap::new(),
                decoders: HashMap::new(),
            },
        };
        Requests {
            ids,
            next: 1,
            max,
            table: Some(table),
            unmatched: 0,
        }
    }

    /// Registers the request `name`, to be written in a frame numbered `seq` (for protocols
    /// that number frames), and returns the id its frame carries: a counted number or text, the
    /// frame's number, or `None` where replies come in order.
    pub(crate) fn start(
        &mut self,
        name: Tag,
        waiter: W,
        decoder: Option<D>,
        seq: Option<i64>,
    ) -> Result<Option<RequestId>, Refused> {
        let max = self.max;
        match self.table.as_mut().ok_or(Refused::Closed)? {
            Table::Ordered(queue) => {
                if queue.len() >= max {
                    return Err(Refused::TooMany(max));
                }
                queue.push_back((waiter, decoder));
                Ok(None)
            }
            Table::ById { waiting, decoders } => {
                if waiting.len() >= max {
                    return Err(Refused::TooMany(max));
                }
                let id = match self.ids {
                    RequestIdPlace::Key { text: true, .. } => {
                        RequestId::Str(format!("{:08x}", self.next))
                    }
                    RequestIdPlace::Key { .. } => RequestId::Int(self.next),
                    // The frame's number (every frame of such a protocol has one).
                    _ => RequestId::Int(seq.unwrap_or_default()),
                };
                if matches!(self.ids, RequestIdPlace::Key { .. }) {
                    self.next += 1;
                }
                waiting.insert(id.clone(), waiter);
                if let (Some(decoder), Tag::Str(name)) = (decoder, name) {
                    decoders.entry(name).or_insert(decoder);
                }
                Ok(Some(id))
            }
        }
    }

    /// Takes back the request just started under `id` (its frame could not be written): by its
    /// id, or the newest where replies come in order.
    pub(crate) fn cancel(&mut self, id: Option<&RequestId>) -> Option<W> {
        match (self.table.as_mut()?, id) {
            (Table::ById { waiting, .. }, Some(id)) => waiting.remove(id),
            (Table::Ordered(queue), _) => queue.pop_back().map(|(waiter, _)| waiter),
            (Table::ById { .. }, None) => None,
        }
    }

    /// Forgets a request whose requester stopped waiting (it timed out). Where replies come in
    /// order its slot stays: its reply still comes, and must not be taken for the next one's.
    pub(crate) fn forget(&mut self, id: &RequestId) {
        if let Some(Table::ById { waiting, .. }) = self.table.as_mut() {
            waiting.remove(id);
        }
    }

    /// The waiter of the request a reply answers: the one with the reply's id, or the oldest
    /// where replies come in order. `None` (and the reply counted as unmatched) when no request
    /// waits for it.
    pub(crate) fn reply(&mut self, id: Option<&RequestId>) -> Option<W> {
        let waiter = match (self.table.as_mut(), id) {
            (Some(Table::ById { waiting, .. }), Some(id)) => waiting.remove(id),
            (Some(Table::Ordered(queue)), _) => queue.pop_front().map(|(waiter, _)| waiter),
            _ => None,
        };
        if waiter.is_none() {
            self.unmatched += 1;
        }
        waiter
    }

    /// The decoder for a reply the reader cannot route by its envelope: the oldest request's,
    /// where replies come in order; by the name the reply carries (`named`), where its id sits
    /// inside the payload.
    pub(crate) fn decoder(&self, named: Option<&str>) -> Option<D> {
        match self.table.as_ref()? {
            Table::Ordered(queue) => queue.front()?.1,
            Table::ById { decoders, .. } => decoders.get(named?).copied(),
        }
    }

    /// Closes the table: every waiter is dropped (so its requester learns the link is gone), and
    /// no request starts any more.
    pub(crate) fn close(&mut self) {
        self.table = None;
    }

    /// Replies that matched no waiting request, so far.
    pub(crate) fn unmatched(&self) -> u64 {
        self.unmatched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: Tag = Tag::Str("list");

    fn counted(text: bool) -> Requests<&'static str, u8> {
        let ids = RequestIdPlace::Key {
            key: "cid",
            optional: false,
            text,
        };
        Requests::new(ids, 3)
    }

    #[test]
    fn counted_ids_route_replies_by_id_in_any_order() {
        let mut requests = counted(false);
        assert_eq!(
            requests.start(NAME, "a", None, None),
            Ok(Some(RequestId::Int(1)))
        );
        assert_eq!(
            requests.start(NAME, "b", None, None),
            Ok(Some(RequestId::Int(2)))
        );
        assert_eq!(requests.reply(Some(&RequestId::Int(2))), Some("b"));
        assert_eq!(requests.reply(Some(&RequestId::Int(1))), Some("a"));
        // Answered twice, or never asked: unmatched, counted.
        assert_eq!(requests.reply(Some(&RequestId::Int(1))), None);
        assert_eq!(requests.reply(None), None);
        assert_eq!(requests.unmatched(), 2);
    }

    #[test]
    fn text_ids_are_eight_hex_digits() {
        let mut requests = counted(true);
        for _ in 0..41 {
            let id = requests
                .start(NAME, "x", None, None)
                .expect("started")
                .expect("an id");
            requests.reply(Some(&id));
        }
        let id = requests.start(NAME, "y", None, None).expect("started");
        assert_eq!(id, Some(RequestId::Str("0000002a".into())));
        assert_eq!(requests.reply(Some(&RequestId::Int(42))), None);
        assert_eq!(requests.reply(id.as_ref()), Some("y"));
    }

    #[test]
    fn numbered_frames_are_answered_by_their_number() {
        let mut requests = Requests::<_, u8>::new(RequestIdPlace::Sequence, 8);
        assert_eq!(
            requests.start(NAME, "a", None, Some(7)),
            Ok(Some(RequestId::Int(7)))
        );
        assert_eq!(requests.reply(Some(&RequestId::Int(7))), Some("a"));
    }

    #[test]
    fn ordered_replies_go_to_the_oldest_and_a_timed_out_slot_stays() {
        let mut requests = Requests::new(RequestIdPlace::Ordered, 8);
        assert_eq!(requests.start(NAME, "a", Some(1), None), Ok(None));
        assert_eq!(requests.start(NAME, "b", Some(2), None), Ok(None));
        assert_eq!(requests.decoder(None), Some(1));
        // "a" timed out; its reply still comes first and uses up its slot.
        requests.forget(&RequestId::Int(1));
        assert_eq!(requests.reply(None), Some("a"));
        assert_eq!(requests.decoder(Some("anything")), Some(2));
        assert_eq!(requests.reply(None), Some("b"));
        assert_eq!(requests.reply(None), None);
        assert_eq!(requests.unmatched(), 1);
    }

    #[test]
    fn a_cancelled_request_gives_its_place_back() {
        let mut ordered = Requests::<_, u8>::new(RequestIdPlace::Ordered, 8);
        ordered.start(NAME, "a", None, None).expect("started");
        ordered.start(NAME, "b", None, None).expect("started");
        assert_eq!(ordered.cancel(None), Some("b"));
        assert_eq!(ordered.reply(None), Some("a"));
        assert_eq!(ordered.reply(None), None);

        let mut by_id = counted(false);
        let id = by_id.start(NAME, "a", None, None).expect("started");
        assert_eq!(by_id.cancel(id.as_ref()), Some("a"));
        assert_eq!(by_id.reply(id.as_ref()), None);
    }

    #[test]
    fn a_timed_out_request_is_forgotten_by_id() {
        let mut requests = counted(false);
        let id = requests
            .start(NAME, "a", None, None)
            .expect("started")
            .expect("an id");
        requests.forget(&id);
        assert_eq!(requests.reply(Some(&id)), None);
        assert_eq!(requests.unmatched(), 1);
    }

    #[test]
    fn decoders_are_kept_by_request_name() {
        let mut requests = counted(false);
        requests
            .start(Tag::Str("list_slaves"), "a", Some(5), None)
            .expect("started");
        requests
            .start(Tag::Int(3), "b", Some(6), None)
            .expect("started");
        assert_eq!(requests.decoder(Some("list_slaves")), Some(5));
        assert_eq!(requests.decoder(Some("other")), None);
        assert_eq!(requests.decoder(None), None);
    }

    #[test]
    fn the_table_holds_at_most_max() {
        let mut requests = counted(false);
        for waiter in ["a", "b", "c"] {
            requests.start(NAME, waiter, None, None).expect("started");
        }
        assert_eq!(
            requests.start(NAME, "d", None, None),
            Err(Refused::TooMany(3))
        );
        requests.reply(Some(&RequestId::Int(2)));
        assert_eq!(
            requests.start(NAME, "d", None, None),
            Ok(Some(RequestId::Int(4)))
        );
    }

    #[test]
    fn closing_drops_every_waiter_and_refuses_more() {
        let waiter = std::sync::Arc::new(());
        let mut requests = Requests::<_, u8>::new(RequestIdPlace::Ordered, 8);
        requests
            .start(NAME, waiter.clone(), None, None)
            .expect("started");
        assert_eq!(std::sync::Arc::strong_count(&waiter), 2);
        requests.close();
        assert_eq!(std::sync::Arc::strong_count(&waiter), 1);
        assert_eq!(
            requests.start(NAME, waiter.clone(), None, None),
            Err(Refused::Closed)
        );
        assert!(requests.reply(None).is_none());
    }
}
