//! Latency samples and their percentiles (nearest rank over the sorted samples).

use std::time::Duration;

#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<Duration>);

impl Samples {
    pub fn with_capacity(n: usize) -> Self {
        Samples(Vec::with_capacity(n))
    }

    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    pub fn extend(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The percentiles asked for, in milliseconds.
    pub fn summary(&self) -> Summary {
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        let at = |q: f64| -> f64 {
            if sorted.is_empty() {
                return f64::NAN;
            }
            let rank = (q * sorted.len() as f64).ceil() as usize;
            let i = rank.clamp(1, sorted.len()) - 1;
            sorted.get(i).map_or(f64::NAN, ms)
        };
        let mean = if sorted.is_empty() { f64::NAN } else { sorted.iter().map(ms).sum::<f64>() / sorted.len() as f64 };
        Summary {
            n: sorted.len(),
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            max: sorted.last().map_or(f64::NAN, ms),
            mean,
        }
    }
}

/// Percentiles in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub n: usize,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

pub fn ms(d: &Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut s = Samples::default();
        for i in 1..=100 {
            s.push(Duration::from_millis(i));
        }
        let sum = s.summary();
        assert_eq!(sum.n, 100);
        assert!((sum.p50 - 50.0).abs() < 1e-9);
        assert!((sum.p95 - 95.0).abs() < 1e-9);
        assert!((sum.p99 - 99.0).abs() < 1e-9);
        assert!((sum.max - 100.0).abs() < 1e-9);
        assert!(Samples::default().summary().p50.is_nan());
    }
}
