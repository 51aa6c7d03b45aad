//! One room on two listeners: [`Both`] accepts from a plaintext and a TLS
//! listener at once (ergo's 6667 + 6697 shape), so `serve` runs one room
//! whatever number of ports it is reached on. It only chooses which ready
//! listener goes first; each stream keeps its own type in an [`Either`].

use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::task::Poll;

use tokio_util::either::Either;

use super::Listener;

/// Accepts from `first` and `second` together.
///
/// When both have a connection waiting, the one that did not win last time
/// goes first, so a storm on one port cannot starve the other; the choice
/// is by turns, not by chance, so a simulation replays it exactly. Each
/// listener's `accept` must be cancel-safe (the loser's is dropped), as
/// tokio's and turmoil's are.
pub struct Both<A, B> {
    /// One listener.
    first: A,
    /// The other.
    second: B,
    /// Whose turn it is when both have a connection waiting.
    second_goes_first: bool,
}

impl<A: Listener, B: Listener> Both<A, B> {
    /// Serves on both listeners.
    pub fn new(first: A, second: B) -> Self {
        Self {
            first,
            second,
            second_goes_first: false,
        }
    }
}

impl<A: Listener, B: Listener> Listener for Both<A, B> {
    type Stream = Either<A::Stream, B::Stream>;

    async fn accept(&mut self) -> io::Result<(Self::Stream, SocketAddr)> {
        let second_goes_first = self.second_goes_first;
        let accepted = {
            let mut first = pin!(self.first.accept());
            let mut second = pin!(self.second.accept());
            poll_fn(|cx| {
                let mut turns = [Turn::First, Turn::Second];
                if second_goes_first {
                    turns.reverse();
                }
                for turn in turns {
                    let polled = match turn {
                        Turn::First => first.as_mut().poll(cx).map(|r| r.map(left)),
                        Turn::Second => second.as_mut().poll(cx).map(|r| r.map(right)),
                    };
                    if polled.is_ready() {
                        return polled;
                    }
                }
                Poll::Pending
            })
            .await
        };
        self.second_goes_first = matches!(accepted, Ok((Either::Left(_), _)));
        accepted
    }

    fn is_plaintext(stream: &Self::Stream) -> bool {
        match stream {
            Either::Left(stream) => A::is_plaintext(stream),
            Either::Right(stream) => B::is_plaintext(stream),
        }
    }
}

/// Which listener is polled.
#[derive(Clone, Copy)]
enum Turn {
    First,
    Second,
}

fn left<A, B>((stream, peer): (A, SocketAddr)) -> (Either<A, B>, SocketAddr) {
    (Either::Left(stream), peer)
}

fn right<A, B>((stream, peer): (B, SocketAddr)) -> (Either<A, B>, SocketAddr) {
    (Either::Right(stream), peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// A byte written by a client on each port arrives through the stream
    /// `Both` hands out, tagged with the listener it came from, and turns
    /// alternate when both ports have connections waiting.
    #[tokio::test]
    async fn accepts_from_either_listener_by_turns() {
        let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let other = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (a, b) = (plain.local_addr().unwrap(), other.local_addr().unwrap());
        let mut both = Both::new(plain, other);
        let mut clients = Vec::new();
        for (addr, byte) in [(a, b'a'), (a, b'a'), (b, b'b'), (b, b'b')] {
            let mut client = TcpStream::connect(addr).await.unwrap();
            client.write_all(&[byte]).await.unwrap();
            clients.push(client);
        }
        let mut order = Vec::new();
        for _ in 0..4 {
            let (stream, _) = both.accept().await.unwrap();
            let (side, mut stream) = match stream {
                Either::Left(s) => ('L', Either::<_, TcpStream>::Left(s)),
                Either::Right(s) => ('R', Either::Right(s)),
            };
            let mut byte = [0u8];
            stream.read_exact(&mut byte).await.unwrap();
            assert_eq!(byte[0], if side == 'L' { b'a' } else { b'b' });
            order.push(side);
        }
        assert_eq!(order, ['L', 'R', 'L', 'R']);
    }
}
