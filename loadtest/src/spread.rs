//! How subscribers and messages are spread over channels in the many-channels scenario.
//!
//! `C` channels, each subscriber on `K` of them: subscriber `i` takes channels
//! `(i·K + k) mod C` for `k` in `0..K`, so its `K` channels are distinct (when `K ≤ C`) and, with
//! `N·K` a multiple of `C`, every channel has exactly `N·K / C` subscribers. Message `n` goes to
//! channel `n mod C`, so a steady rate spreads evenly over the channels. With `C = 1` this is the
//! plain fan-out scenario, under the unchanged channel name.

use anyhow::{ensure, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spread {
    base: String,
    channels: usize,
    per_subscriber: usize,
}

impl Spread {
    /// `channels` channels named after `base`, `per_subscriber` of them for each subscriber.
    pub fn new(base: &str, channels: usize, per_subscriber: usize) -> Result<Spread> {
        ensure!(channels > 0, "--channels must be at least 1");
        ensure!(
            (1..=channels).contains(&per_subscriber),
            "--channels-per-subscriber must be between 1 and --channels ({channels})"
        );
        Ok(Spread {
            base: base.to_string(),
            channels,
            per_subscriber,
        })
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    pub fn per_subscriber(&self) -> usize {
        self.per_subscriber
    }

    /// The channel indexes of subscriber `i`.
    pub fn channels_of(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.per_subscriber).map(move |k| (i * self.per_subscriber + k) % self.channels)
    }

    /// The channel index message `n` is published to.
    pub fn channel_of_message(&self, n: u64) -> usize {
        (n % self.channels as u64) as usize
    }

    /// The name of channel `c`: the base itself when there is one channel, else `base-c`.
    pub fn name(&self, c: usize) -> String {
        if self.channels == 1 {
            self.base.clone()
        } else {
            format!("{}-{c}", self.base)
        }
    }

    /// The channel names of subscriber `i`.
    pub fn names_of(&self, i: usize) -> Vec<String> {
        self.channels_of(i).map(|c| self.name(c)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_channel_gets_the_same_number_of_distinct_subscribers() {
        let s = Spread::new("bench", 100, 10).unwrap();
        let mut per_channel = vec![0usize; 100];
        for i in 0..1000 {
            let mine: Vec<usize> = s.channels_of(i).collect();
            let mut distinct = mine.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(distinct.len(), 10, "subscriber {i}: {mine:?}");
            for c in mine {
                per_channel[c] += 1;
            }
        }
        assert!(per_channel.iter().all(|&n| n == 100), "{per_channel:?}");
    }

    #[test]
    fn messages_go_round_robin() {
        let s = Spread::new("bench", 3, 1).unwrap();
        let got: Vec<usize> = (0..6).map(|n| s.channel_of_message(n)).collect();
        assert_eq!(got, [0, 1, 2, 0, 1, 2]);
        assert_eq!(s.name(2), "bench-2");
        assert_eq!(s.names_of(4), ["bench-1"]);
    }

    #[test]
    fn one_channel_keeps_its_name() {
        let s = Spread::new("bench", 1, 1).unwrap();
        assert_eq!(s.names_of(7), ["bench"]);
        assert_eq!(s.channel_of_message(9), 0);
    }

    #[test]
    fn refuses_impossible_spreads() {
        assert!(Spread::new("b", 0, 1).is_err());
        assert!(Spread::new("b", 5, 0).is_err());
        assert!(Spread::new("b", 5, 6).is_err());
    }
}
