//! Reading Prometheus samples from the server's `/metrics`.

use std::time::Duration;

use tandem_e2e::TestServer;

use super::eventually;

/// The text exposition of `/metrics`.
///
/// # Panics
/// When the request fails or does not answer 200.
pub async fn scrape(server: &TestServer) -> String {
    let url = format!("{}/metrics", server.base_url());
    let response = server.http().get(&url).send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_else(|e| panic!("{url} body: {e}"));
    assert_eq!(status, 200, "{url}: {text}");
    text
}

/// The sum of every sample of `name` whose labels include all of `labels`;
/// 0 when there is none (a counter never incremented is not exported).
pub fn sample_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if series_name != name {
                return None;
            }
            let pairs: Vec<(&str, &str)> = series_labels
                .split(',')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k.trim(), v.trim().trim_matches('"')))
                .collect();
            labels.iter().all(|want| pairs.contains(want)).then(|| value.trim().parse::<f64>().ok())?
        })
        .sum()
}

/// The current value of `name` (summed over series matching `labels`).
pub async fn metric(server: &TestServer, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample_sum(&scrape(server).await, name, labels)
}

/// Waits until `name` reaches at least `min`; returns the value seen.
///
/// # Panics
/// When it does not within `wait`.
pub async fn wait_metric_at_least(
    server: &TestServer,
    name: &str,
    labels: &[(&str, &str)],
    min: f64,
    wait: Duration,
) -> f64 {
    eventually(&format!("{name}{labels:?} >= {min}"), wait, || async {
        let value = metric(server, name, labels).await;
        (value >= min).then_some(value)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::sample_sum;

    #[test]
    fn sums_matching_series_only() {
        let text = "# TYPE x counter\n\
                    x{transport=\"websocket\"} 2\n\
                    x{transport=\"sse\"} 3\n\
                    x_count 9\n\
                    y 1\n";
        assert_eq!(sample_sum(text, "x", &[]), 5.0);
        assert_eq!(sample_sum(text, "x", &[("transport", "sse")]), 3.0);
        assert_eq!(sample_sum(text, "x_count", &[]), 9.0);
        assert_eq!(sample_sum(text, "z", &[]), 0.0);
    }
}
