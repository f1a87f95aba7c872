//! Pure numbers: medians of repeats, latency histograms and throughput timelines.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Width of one bucket of a [`Timeline`].
pub const BUCKET: Duration = Duration::from_millis(250);

/// A latency histogram in microseconds, from 1 µs to 10 minutes, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// Records `latency` (clamped to the histogram's range) in `h`.
pub fn record(h: &mut Histogram<u64>, latency: Duration) {
    let micros = (latency.as_micros() as u64).clamp(1, h.high());
    h.saturating_record(micros);
}

/// The value at `quantile` (0–1) of `h`, in microseconds.
pub fn quantile_us(h: &Histogram<u64>, quantile: f64) -> f64 {
    h.value_at_quantile(quantile) as f64
}

/// The median of `values` (the mean of the middle two for an even count); `NaN` when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// The `q` quantile (0–1, nearest rank) of `values`; `NaN` when empty.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v: Vec<f64> = values.to_vec();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = (q * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Events per [`BUCKET`] since a start time.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// Count per bucket.
    pub buckets: Vec<u64>,
}

impl Timeline {
    /// Counts one event `since` the start.
    pub fn add(&mut self, since: Duration) {
        let i = (since.as_nanos() / BUCKET.as_nanos()) as usize;
        if self.buckets.len() <= i {
            self.buckets.resize(i + 1, 0);
        }
        self.buckets[i] += 1;
    }

    /// Adds another timeline of the same start bucket by bucket.
    pub fn merge(&mut self, other: &Timeline) {
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
    }

    /// (seconds since start at the bucket's middle, events per second) for each bucket.
    pub fn rates(&self) -> Vec<(f64, f64)> {
        let width = BUCKET.as_secs_f64();
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, n)| ((i as f64 + 0.5) * width, *n as f64 / width))
            .collect()
    }
}

/// Least-squares slope of `points` (y per unit of x); 0 with fewer than two points.
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 { 0.0 } else { sxy / sxx }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&[7.0], 0.0), 7.0);
    }

    #[test]
    fn histogram_quantiles_in_microseconds() {
        let mut h = histogram();
        for ms in 1..=100 {
            record(&mut h, Duration::from_millis(ms));
        }
        let p50 = quantile_us(&h, 0.5);
        assert!((49_900.0..=50_100.0).contains(&p50), "{p50}");
        record(&mut h, Duration::ZERO);
        assert_eq!(h.min(), 1);
    }

    #[test]
    fn timeline_buckets_and_rates() {
        let mut t = Timeline::default();
        t.add(Duration::from_millis(10));
        t.add(Duration::from_millis(260));
        t.add(Duration::from_millis(270));
        let mut u = Timeline::default();
        u.add(Duration::from_millis(600));
        t.merge(&u);
        assert_eq!(t.buckets, vec![1, 2, 1]);
        assert_eq!(t.rates()[1], (0.375, 8.0));
    }

    #[test]
    fn slope_of_a_line() {
        assert_eq!(slope(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]), 2.0);
        assert_eq!(slope(&[(0.0, 1.0)]), 0.0);
    }
}
