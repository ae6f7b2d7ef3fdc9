//! Connection health over time: one sample per minute for 24 hours, so
//! `/monitoring/connection-health` can show the last hour and last day
//! beside the current value.

use std::collections::VecDeque;

use parking_lot::Mutex;

/// Samples kept: one per minute for 24 hours.
pub const CAPACITY: usize = 24 * 60;

/// A ring of per-minute health percentages.
#[derive(Debug)]
pub struct HealthTrends {
    /// `(unix minute, health percentage)`, oldest first.
    samples: Mutex<VecDeque<(u64, f64)>>,
}

impl Default for HealthTrends {
    fn default() -> Self {
        Self::new()
    }
}

impl HealthTrends {
    pub fn new() -> Self {
        Self { samples: Mutex::new(VecDeque::with_capacity(CAPACITY)) }
    }

    /// Records the health percentage measured at `unix_secs`. A second
    /// sample in the same minute replaces the first.
    pub fn record(&self, unix_secs: u64, health_percentage: f64) {
        let minute = unix_secs / 60;
        let mut samples = self.samples.lock();
        if let Some(last) = samples.back_mut() {
            if last.0 == minute {
                last.1 = health_percentage;
                return;
            }
        }
        if samples.len() >= CAPACITY {
            samples.pop_front();
        }
        samples.push_back((minute, health_percentage));
    }

    /// Average of the samples taken within `minutes` before `unix_secs`
    /// (the current minute included); `None` without any.
    pub fn average(&self, unix_secs: u64, minutes: u64) -> Option<f64> {
        let now = unix_secs / 60;
        let samples = self.samples.lock();
        let (sum, n) = samples
            .iter()
            .rev()
            .take_while(|(m, _)| now.saturating_sub(*m) < minutes)
            .filter(|(m, _)| *m <= now)
            .fold((0.0, 0usize), |(s, n), (_, v)| (s + v, n + 1));
        (n > 0).then(|| sum / n as f64)
    }

    pub fn last_hour(&self, unix_secs: u64) -> Option<f64> {
        self.average(unix_secs, 60)
    }

    pub fn last_24_hours(&self, unix_secs: u64) -> Option<f64> {
        self.average(unix_secs, 24 * 60)
    }

    pub fn len(&self) -> usize {
        self.samples.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_736_193_300;

    #[test]
    fn empty_trends_have_no_average() {
        let t = HealthTrends::new();
        assert!(t.is_empty());
        assert_eq!(t.last_hour(T0), None);
        assert_eq!(t.last_24_hours(T0), None);
    }

    #[test]
    fn hour_and_day_averages_cover_their_windows() {
        let t = HealthTrends::new();
        // 23 hours at 90%, then one hour at 100%.
        for m in 0..23 * 60 {
            t.record(T0 + m * 60, 90.0);
        }
        for m in 23 * 60..24 * 60 {
            t.record(T0 + m * 60, 100.0);
        }
        let now = T0 + (24 * 60 - 1) * 60;
        assert_eq!(t.last_hour(now), Some(100.0));
        let day = t.last_24_hours(now).expect("samples");
        assert!((day - (90.0 * 23.0 + 100.0) / 24.0).abs() < 1e-9, "{day}");
    }

    #[test]
    fn old_samples_fall_out_of_the_hour() {
        let t = HealthTrends::new();
        t.record(T0, 50.0);
        t.record(T0 + 60, 100.0);
        assert_eq!(t.last_hour(T0 + 60), Some(75.0));
        assert_eq!(t.last_hour(T0 + 60 * 60), Some(100.0));
        assert_eq!(t.last_hour(T0 + 61 * 60), None);
        assert_eq!(t.last_24_hours(T0 + 61 * 60), Some(75.0));
    }

    #[test]
    fn ring_wraps_at_one_day() {
        let t = HealthTrends::new();
        for m in 0..(CAPACITY as u64 + 100) {
            t.record(T0 + m * 60, if m < 100 { 0.0 } else { 100.0 });
        }
        assert_eq!(t.len(), CAPACITY);
        // The 100 zero samples were the oldest and have been overwritten.
        let now = T0 + (CAPACITY as u64 + 99) * 60;
        assert_eq!(t.last_24_hours(now), Some(100.0));
    }

    #[test]
    fn same_minute_replaces() {
        let t = HealthTrends::new();
        t.record(T0, 10.0);
        t.record(T0 + 30, 20.0);
        assert_eq!(t.len(), 1);
        assert_eq!(t.last_hour(T0 + 59), Some(20.0));
    }
}
