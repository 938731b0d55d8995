//! Spare allocations of emitted transactions, kept per thread for the next
//! ones: [`recycle`] takes a transaction its user is done with.
//!
//! A small transaction costs a box and a buffer per header list; with many
//! transactions in flight (HTTP/2 streams, a batch of responses) glibc's
//! per-thread cache holds too few of each size, and every `malloc`/`free`
//! pair took its slow path (~200 instructions, a tenth of decoding a small
//! transaction). Here a thread that emits and then recycles transactions
//! (a pipeline worker: it encodes each event, then hands its transaction
//! back) takes the boxes and header buffers for its next ones from a
//! bounded stack instead. Threads that never recycle never find a spare and
//! allocate as before.
//!
//! Bounded: at most [`SPARE_TXS`] boxes and [`SPARE_BUFS`] buffers per
//! thread, buffers of [`BUF_MIN`]..=[`BUF_MAX`] bytes of capacity only.
//! Nothing observable changes: a spare box holds a transaction equal to a
//! new one (its body buffers may have room for a small body), a spare
//! buffer is empty (its capacity is at least what was asked for).

use std::cell::RefCell;

use crate::transaction::{Protocol, Transaction};

/// Most spare transaction boxes kept per thread.
const SPARE_TXS: usize = 64;
/// Most spare header buffers kept per thread.
const SPARE_BUFS: usize = 128;
/// Smallest buffer capacity worth keeping.
const BUF_MIN: usize = 128;
/// Largest body buffer capacity a spare transaction keeps.
const BODY_KEEP: usize = 256;
/// Largest buffer capacity kept (a rare large list's buffer goes back to
/// the allocator).
const BUF_MAX: usize = 2048;

#[derive(Default)]
struct Spare {
    // The boxes themselves are what is kept (handed out without a copy).
    #[allow(clippy::vec_box)]
    txs: Vec<Box<Transaction>>,
    bufs: Vec<Vec<u8>>,
}

thread_local! {
    static SPARE: RefCell<Spare> = const {
        RefCell::new(Spare {
            txs: Vec::new(),
            bufs: Vec::new(),
        })
    };
}

/// Hands back a transaction its user is done with: its box and header
/// buffers serve this thread's next transactions (see the module docs).
pub fn recycle(mut tx: Box<Transaction>) {
    // Lost only while the thread is being torn down (dropped instead).
    let _ = SPARE.try_with(move |s| {
        let Ok(mut s) = s.try_borrow_mut() else {
            return;
        };
        let Spare { txs, bufs } = &mut *s;
        tx.reset(BODY_KEEP, &mut |b: Vec<u8>| {
            if (BUF_MIN..=BUF_MAX).contains(&b.capacity()) && bufs.len() < SPARE_BUFS {
                bufs.push(b);
            }
        });
        if txs.len() < SPARE_TXS {
            txs.push(tx);
        }
    });
}

/// A boxed new transaction: a spare box when this thread has one.
pub(crate) fn transaction(protocol: Protocol, stream_id: u32) -> Box<Transaction> {
    let spare = SPARE
        .try_with(|s| s.try_borrow_mut().ok().and_then(|mut s| s.txs.pop()))
        .ok()
        .flatten();
    match spare {
        Some(mut tx) => {
            tx.protocol = protocol;
            tx.stream_id = stream_id;
            tx
        }
        None => Box::new(Transaction::new(protocol, stream_id)),
    }
}

/// An empty buffer with room for at least `need` bytes: a spare one when
/// this thread has one large enough.
pub(crate) fn buffer(need: usize) -> Vec<u8> {
    if need > 0 && need <= BUF_MAX {
        let spare = SPARE
            .try_with(|s| s.try_borrow_mut().ok().and_then(|mut s| s.bufs.pop()))
            .ok()
            .flatten();
        if let Some(b) = spare
            && b.capacity() >= need
        {
            return b;
        }
    }
    Vec::with_capacity(need)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Headers;

    fn spares() -> (usize, usize) {
        SPARE.with_borrow(|s| (s.txs.len(), s.bufs.len()))
    }

    #[test]
    fn a_recycled_transaction_comes_back_new() {
        let mut tx = transaction(Protocol::Http2, 7);
        tx.request.headers = Headers::with_capacity(4, 300);
        tx.request.headers.push(b":method", b"GET");
        tx.response.body.data.extend_from_slice(b"body");
        tx.response.complete = true;
        tx.interim.push(Headers::new());
        tx.http1_minor = Some(1);
        recycle(tx);
        assert_eq!(spares(), (1, 1));
        let again = transaction(Protocol::Http1, 3);
        assert_eq!(*again, Transaction::new(Protocol::Http1, 3));
        assert_eq!(spares(), (0, 1));
        let h = Headers::with_capacity(2, 100);
        assert!(h.is_empty());
        assert_eq!(spares(), (0, 0));
    }

    #[test]
    fn spares_are_bounded() {
        let txs: Vec<_> = (0..SPARE_TXS + 10)
            .map(|_| {
                let mut tx = Box::new(Transaction::new(Protocol::Http1, 1));
                tx.request.headers = Headers::with_capacity(2, 200);
                tx.response.headers = Headers::with_capacity(2, 200);
                // Too large to keep.
                tx.request.trailers = Headers::with_capacity(0, BUF_MAX + 1);
                tx
            })
            .collect();
        txs.into_iter().for_each(recycle);
        assert_eq!(spares(), (SPARE_TXS, SPARE_BUFS));
    }

    #[test]
    fn a_small_spare_is_not_handed_out_for_more() {
        let mut tx = Box::new(Transaction::new(Protocol::Http1, 1));
        tx.request.headers = Headers::with_capacity(0, BUF_MIN);
        recycle(tx);
        let b = buffer(BUF_MIN * 4);
        assert!(b.is_empty() && b.capacity() >= BUF_MIN * 4);
    }
}
