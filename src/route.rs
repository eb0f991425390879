//! Spreading records over the delivery streams.
//!
//! Record `i` goes to stream `(start + i) mod N`, with `start` drawn at
//! random per invocation so that concurrent invocations do not all begin on
//! the first stream. A resend moves one step along the same rotation, so a
//! throttled or broken stream hands its records to a healthy neighbour.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    streams: usize,
    start: usize,
}

impl Rotation {
    /// A rotation over `streams` streams (at least one) beginning at `start`.
    pub fn new(streams: usize, start: usize) -> Self {
        let streams = streams.max(1);
        Rotation {
            streams,
            start: start % streams,
        }
    }

    /// A rotation beginning at a random stream.
    pub fn random(streams: usize) -> Self {
        use rand::RngExt;
        Self::new(streams, rand::rng().random_range(0..streams.max(1)))
    }

    /// The stream that record `index` is first sent to.
    pub fn first(&self, index: usize) -> usize {
        (self.start + index % self.streams) % self.streams
    }

    /// The stream a resend goes to after `stream` failed it.
    pub fn next(&self, stream: usize) -> usize {
        (stream + 1) % self.streams
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_records_evenly_from_the_start_stream() {
        let rotation = Rotation::new(3, 2);
        let streams: Vec<_> = (0..7).map(|i| rotation.first(i)).collect();
        assert_eq!(streams, vec![2, 0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn resend_moves_to_the_next_stream_and_wraps() {
        let rotation = Rotation::new(3, 0);
        assert_eq!(rotation.next(0), 1);
        assert_eq!(rotation.next(2), 0);
        assert_eq!(Rotation::new(1, 0).next(0), 0);
    }

    #[test]
    fn random_start_reaches_every_stream() {
        let mut seen = [false; 4];
        for _ in 0..400 {
            seen[Rotation::random(4).first(0)] = true;
        }
        assert_eq!(seen, [true; 4]);
    }
}
