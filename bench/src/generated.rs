//! The generated path, as the runtime drives it for each frame.
//!
//! Decoding is what the runtime does per frame: the single-pass
//! [`WireProfile::read_fast`](protolink::__private::WireProfile::read_fast), falling back to
//! [`WireProfile::classify`](protolink::__private::WireProfile::classify) and the direction's generated
//! `Inbound::decode`; for a reply, the same read and the one-pass `decode_reply_fast`, falling
//! back to the request's reply type from the classified payload. Encoding is `encode_message`, or
//! for a reply `encode_reply` of the typed value, as `Outcome::reply` and `Reply::encode` do.

use std::any::Any;

use protolink::__private::{Fast, RawFrame, RequestId, RequestIdPlace, Tag};
use protolink::{Inbound, Message, Protocol, Request};

use crate::BenchError;

/// A decoded payload with the frame's request id and sequence number.
pub type Decoded<T> = (T, Option<RequestId>, Option<i64>);

/// Decodes a message, event or request frame as the runtime does: in one pass when the envelope
/// comes first, else classify, then `I::decode`.
pub fn decode_inbound<P: Protocol, I: Inbound>(text: &str) -> Result<I, BenchError> {
    if let Some(frame) = P::WIRE.decode_fast::<I>(text) {
        return Ok(frame.message);
    }
    match P::WIRE.classify(text)? {
        RawFrame::Message(message) => Ok(I::decode(&message)?),
        RawFrame::Reply(_) => Err("expected a message, read a reply".into()),
    }
}

/// Decodes a reply to `R`, received on the side whose messages are `I`, as the runtime does:
/// the one-pass read routes a reply whose envelope comes first by its id, and the requester
/// decodes the frame in one pass; a reply whose payload comes first (ordered replies) or holds
/// the id is decoded by the reader in one pass as the reply type of the oldest pending request
/// or of the request the frame names, boxed for the requester; else classify, then the result as
/// `R::Reply`. Also returns the answered request's id and the frame's sequence number.
pub fn decode_reply<I: Inbound, R: Request>(text: &str) -> Result<Decoded<R::Reply>, BenchError> {
    let wire = <R::Protocol as Protocol>::WIRE;
    let read = wire.read_fast::<I>(text);
    let named = match (&read, wire.request_id, R::TAG) {
        (Some(Fast::Reply(_)), ..) => {
            if let Some(fast) = wire.decode_reply_fast::<R::Reply>(text) {
                return Ok((fast.reply, fast.id, fast.seq));
            }
            false
        }
        (_, RequestIdPlace::Ordered, _) => true,
        (Some(Fast::ReplyTo(named)), _, Tag::Str(name)) => *named == name,
        _ => false,
    };
    if named {
        if let Some(fast) = wire.decode_reply_fast::<R::Reply>(text) {
            let boxed: Box<dyn Any + Send> = Box::new(fast.reply);
            if let Ok(reply) = boxed.downcast::<R::Reply>() {
                return Ok((*reply, fast.id, fast.seq));
            }
        }
    }
    match wire.classify(text)? {
        RawFrame::Reply(reply) => {
            let payload = reply.result?;
            Ok((payload.decode::<R::Reply>(R::NAME)?, reply.id, reply.seq))
        }
        RawFrame::Message(_) => Err("expected a reply, read a message".into()),
    }
}

/// Decodes a message frame as the message `M` itself, with its id and sequence number: what
/// [`encode_message`] needs to write the frame back.
pub fn decode_message<M: Message>(text: &str) -> Result<Decoded<M>, BenchError> {
    match <M::Protocol as Protocol>::WIRE.classify(text)? {
        RawFrame::Message(message) => Ok((message.decode::<M>()?, message.id, message.seq)),
        RawFrame::Reply(_) => Err("expected a message, read a reply".into()),
    }
}

/// Writes a message, event or request frame as a link does.
pub fn encode_message<M: Message>(
    out: &mut Vec<u8>,
    message: &M,
    id: Option<&RequestId>,
    seq: Option<i64>,
) -> Result<(), BenchError> {
    let payload = M::HAS_PAYLOAD.then_some(message);
    <M::Protocol as Protocol>::WIRE.encode_message(out, M::KIND, M::TAG, payload, id, seq)?;
    Ok(())
}

/// Writes a successful reply to `R` as a link does: the handler's value serialised straight into
/// the reply frame (`Outcome::reply`, then `Reply::encode`).
pub fn encode_reply<R: Request>(
    out: &mut Vec<u8>,
    reply: &R::Reply,
    id: Option<&RequestId>,
    seq: Option<i64>,
) -> Result<(), BenchError> {
    <R::Protocol as Protocol>::WIRE.encode_reply(out, R::TAG, id, seq, Ok(reply))?;
    Ok(())
}
