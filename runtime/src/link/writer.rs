//! The writing half of a link: takes everything queued under one lock, feeds it to the socket
//! and flushes once per batch; the close frame goes last, or next when the peer does not keep up.

use super::*;

pub(super) async fn write_loop<S: Side, Snk: FrameSink>(link: Link<S>, mut sink: Snk) {
    struct Stopped<'a>(&'a Done);
    impl Drop for Stopped<'_> {
        fn drop(&mut self) {
            self.0.set();
        }
    }
    let shared = link.shared.clone();
    let _stopped = Stopped(&shared.writer_done);
    let mut batch = VecDeque::new();
    loop {
        if shared.aborted.load(Ordering::Acquire) {
            return Box::pin(close_behind_slow_peer(&link, &mut sink)).await;
        }
        // Queued frames (a close frame above all) go out before giving up on a closed link; a link
        // closed without a close frame queued (the queue was full) stops here.
        if !shared.out.take(&mut batch).await {
            if shared.aborted.load(Ordering::Acquire) {
                Box::pin(close_behind_slow_peer(&link, &mut sink)).await;
            }
            return;
        }
        // Boxed, as the driver's frame handling is: an idle writer holds only its wait.
        let written = write_batch(
            &mut sink,
            &shared.out,
            &mut batch,
            &shared.state,
            &shared.aborted,
        );
        match Box::pin(written).await {
            Ok(Written::Open) => shared.out.give_back(&mut batch),
            Ok(Written::Closed) => return,
            Ok(Written::Abandoned) => {
                if shared.aborted.load(Ordering::Acquire) {
                    Box::pin(close_behind_slow_peer(&link, &mut sink)).await;
                }
                return;
            }
            Err(e) => {
                debug!(error = %e, "write failed");
                link.mark_closed(1006, &format!("write failed: {e}"));
                return;
            }
        }
    }
}

/// Closes a link whose peer does not keep up: what is still queued is dropped, and the close
/// frame (with the link's close code, 1008) follows what the socket already holds, so a peer that
/// reads on, however slowly, hears why it was closed. A peer that does not read within the send
/// timeout gets no close frame.
async fn close_behind_slow_peer<S: Side, Snk: FrameSink>(link: &Link<S>, sink: &mut Snk) {
    link.shared.out.close();
    let (code, reason) = match link.state() {
        LinkState::Closed { code, reason } => (code, reason),
        _ => (close::POLICY, "peer too slow".to_owned()),
    };
    let _ = timeout(link.shared.config.send_timeout, sink.close(code, reason)).await;
}

/// How a batch of frames ended.
enum Written {
    /// Written and flushed; the link goes on.
    Open,
    /// A close frame was written.
    Closed,
    /// The link closed while the flush was stuck (a peer that does not read), which was given up.
    Abandoned,
}

/// Feeds the batch and whatever is queued meanwhile, then flushes once.
async fn write_batch<Snk: FrameSink>(
    sink: &mut Snk,
    out: &Outbox<Outgoing>,
    batch: &mut VecDeque<Outgoing>,
    state: &StateCell,
    aborted: &AtomicBool,
) -> Result<Written, TransportError> {
    'batches: loop {
        while let Some(item) = batch.pop_front() {
            match item {
                Outgoing::Frame(text) => sink.feed(text).await?,
                Outgoing::Close(closing) => {
                    let Closing {
                        farewell,
                        code,
                        reason,
                    } = *closing;
                    if let Some(text) = farewell {
                        let _ = sink.feed(text.into()).await;
                    }
                    let _ = sink.flush().await;
                    sink.close(code, reason).await;
                    return Ok(Written::Closed);
                }
            }
            if aborted.load(Ordering::Acquire) {
                batch.clear();
                break 'batches;
            }
        }
        if !out.try_take(batch) {
            break;
        }
    }
    // A peer that stops reading blocks the flush; once the link is closed (for being too slow,
    // say), the flush gets a short grace and is then abandoned.
    let abandon = async {
        state
            .wait_for(|s| matches!(s, LinkState::Closed { .. }))
            .await;
        if !aborted.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    tokio::select! {
        biased;
        flushed = sink.flush() => flushed.map(|()| Written::Open),
        () = abandon => Ok(Written::Abandoned),
    }
}
