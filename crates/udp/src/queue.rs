//! What one connection's ICE agent has yet to read: STUN, DTLS, and the media no fast
//! path took. Bounded, and its buffers are recycled, so a steady stream allocates
//! nothing.
use std::collections::VecDeque;
use std::net::SocketAddr;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// Datagrams one connection may have waiting; more are dropped (the agent is stuck).
pub const MAX_WAITING: usize = 512;
/// Spare buffers kept for reuse.
const MAX_SPARE: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    Queued,
    Full,
    Closed,
}

/// The queue itself, without the waking.
#[derive(Default)]
pub struct Backlog {
    waiting: VecDeque<(Vec<u8>, SocketAddr)>,
    spare: Vec<Vec<u8>>,
    closed: bool,
}

impl Backlog {
    pub fn push(&mut self, datagram: &[u8], from: SocketAddr) -> Push {
        if self.closed {
            return Push::Closed;
        }
        if self.waiting.len() >= MAX_WAITING {
            return Push::Full;
        }
        let mut buffer = self.spare.pop().unwrap_or_default();
        buffer.clear();
        buffer.extend_from_slice(datagram);
        self.waiting.push_back((buffer, from));
        Push::Queued
    }

    /// Copies the oldest datagram into `out`: its length and sender, or `Err` with its
    /// length if `out` is too small (the datagram is dropped).
    pub fn pop_into(&mut self, out: &mut [u8]) -> Option<Result<(usize, SocketAddr), usize>> {
        let (buffer, from) = self.waiting.pop_front()?;
        let len = buffer.len();
        let result = match out.get_mut(..len) {
            Some(out) => {
                out.copy_from_slice(&buffer);
                Ok((len, from))
            }
            None => Err(len),
        };
        if self.spare.len() < MAX_SPARE {
            self.spare.push(buffer);
        }
        Some(result)
    }

    pub fn close(&mut self) {
        self.closed = true;
        self.waiting.clear();
        self.spare.clear();
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }
}

/// A [`Backlog`] that the agent's read loops (one per local candidate) wait on.
#[derive(Default)]
pub struct AgentQueue {
    backlog: Mutex<Backlog>,
    ready: Notify,
}

impl AgentQueue {
    pub fn push(&self, datagram: &[u8], from: SocketAddr) -> Push {
        let pushed = self.backlog.lock().push(datagram, from);
        if pushed == Push::Queued {
            self.ready.notify_one();
        }
        pushed
    }

    /// The next datagram, waiting for one; `Err(None)` once closed, `Err(Some(len))` if
    /// `out` could not hold it.
    pub async fn pop_into(&self, out: &mut [u8]) -> Result<(usize, SocketAddr), Option<usize>> {
        loop {
            let ready = self.ready.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            {
                let mut backlog = self.backlog.lock();
                if let Some(result) = backlog.pop_into(out) {
                    return result.map_err(Some);
                }
                if backlog.is_closed() {
                    return Err(None);
                }
            }
            ready.await;
        }
    }

    pub fn close(&self) {
        self.backlog.lock().close();
        self.ready.notify_waiters();
    }

    pub fn is_closed(&self) -> bool {
        self.backlog.lock().is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn from() -> SocketAddr {
        "127.0.0.1:4000".parse().expect("address")
    }

    #[test]
    fn datagrams_come_out_in_order_with_their_sender() {
        let mut b = Backlog::default();
        assert_eq!(b.push(b"one", from()), Push::Queued);
        assert_eq!(b.push(b"three", from()), Push::Queued);
        let mut out = [0u8; 16];
        assert_eq!(b.pop_into(&mut out), Some(Ok((3, from()))));
        assert_eq!(&out[..3], b"one");
        assert_eq!(b.pop_into(&mut out), Some(Ok((5, from()))));
        assert_eq!(&out[..5], b"three");
        assert_eq!(b.pop_into(&mut out), None);
    }

    #[test]
    fn a_short_read_buffer_is_an_error_not_a_truncation() {
        let mut b = Backlog::default();
        b.push(&[1; 10], from());
        let mut out = [0u8; 4];
        assert_eq!(b.pop_into(&mut out), Some(Err(10)));
    }

    #[test]
    fn the_backlog_is_bounded_and_closing_refuses_more() {
        let mut b = Backlog::default();
        for _ in 0..MAX_WAITING {
            assert_eq!(b.push(b"x", from()), Push::Queued);
        }
        assert_eq!(b.push(b"x", from()), Push::Full);
        b.close();
        assert_eq!(b.push(b"x", from()), Push::Closed);
        assert_eq!(b.pop_into(&mut [0; 4]), None);
    }

    #[test]
    fn buffers_are_reused() {
        let mut b = Backlog::default();
        b.push(&[7; 1000], from());
        b.pop_into(&mut [0; 1000]);
        let reused = b.spare.last().map(|v| v.as_ptr());
        b.push(&[8; 20], from());
        assert_eq!(b.waiting.front().map(|(v, _)| v.as_ptr()), reused);
    }

    #[tokio::test]
    async fn a_waiting_reader_wakes_for_a_datagram_and_for_close() {
        let q = Arc::new(AgentQueue::default());
        let reader = tokio::spawn({
            let q = Arc::clone(&q);
            async move {
                let mut out = [0u8; 8];
                let first = q.pop_into(&mut out).await;
                let second = q.pop_into(&mut out).await;
                (first, second)
            }
        });
        tokio::task::yield_now().await;
        q.push(b"hi", from());
        while !q.backlog.lock().waiting.is_empty() {
            tokio::task::yield_now().await;
        }
        q.close();
        let (first, second) = reader.await.expect("reader");
        assert_eq!(first, Ok((2, from())));
        assert_eq!(second, Err(None));
    }
}
