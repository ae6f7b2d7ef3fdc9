//! Reading the server's Prometheus text exposition (`/metrics`).

use std::time::Duration;

use crate::TestServer;
use crate::wait::eventually;

/// `/metrics` with an optional bearer token: status, content type, body.
pub async fn scrape_with(server: &TestServer, token: Option<&str>) -> (u16, String, String) {
    let url = format!("{}/metrics", server.base_url());
    let mut request = server.http().get(&url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.text().await.unwrap_or_else(|e| panic!("{url} body: {e}"));
    (status, content_type, body)
}

/// The open `/metrics` body.
///
/// # Panics
/// When it does not answer 200.
pub async fn scrape(server: &TestServer) -> String {
    let (status, _, body) = scrape_with(server, None).await;
    assert_eq!(status, 200, "/metrics: {body}");
    body
}

/// One sample line of the text exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    /// The text between `{` and `}`, empty when there are no labels.
    pub label_set: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Splits `a="x",b="y,z"` into pairs, honouring quotes and escapes.
fn parse_labels(set: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut rest = set;
    while let Some((key, after)) = rest.split_once("=\"") {
        let key = key.trim_start_matches(',').trim().to_owned();
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                other => value.push(other),
            }
        }
        pairs.push((key, value));
        rest = &after[end..];
    }
    pairs
}

/// Every sample line of `text` (comments skipped).
pub fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let value = value.trim().parse::<f64>().ok()?;
            let (name, label_set) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}').unwrap_or(rest)),
                None => (series, ""),
            };
            Some(Sample {
                name: name.to_owned(),
                label_set: label_set.to_owned(),
                labels: parse_labels(label_set),
                value,
            })
        })
        .collect()
}

/// Sum of the samples named `name` whose labels include all of `labels`.
pub fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(text)
        .into_iter()
        .filter(|s| s.name == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v)))
        .map(|s| s.value)
        .sum()
}

/// The current value of `name` (summed over series matching `labels`).
pub async fn metric(server: &TestServer, name: &str, labels: &[(&str, &str)]) -> f64 {
    sum(&scrape(server).await, name, labels)
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
    use super::*;

    #[test]
    fn parses_names_labels_and_values() {
        let text = "# HELP x help\n\
                    # TYPE x counter\n\
                    x{a=\"1\",b=\"p,q\\\"r\"} 2\n\
                    x{a=\"2\"} 3.5\n\
                    y 7\n";
        let all = samples(text);
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].labels, vec![("a".into(), "1".into()), ("b".into(), "p,q\"r".into())]);
        assert_eq!(all[2].name, "y");
        assert_eq!(all[2].label_set, "");
        assert_eq!(sum(text, "x", &[]), 5.5);
        assert_eq!(sum(text, "x", &[("a", "2")]), 3.5);
        assert_eq!(sum(text, "z", &[]), 0.0);
    }
}
