//! The gateway's `/metrics` read back as Prometheus text: the value of one
//! sample by metric name and label set, so a test asserts a number rather
//! than searching the text for a line written out by hand.

use std::fmt;

/// One scrape of Prometheus text exposition.
pub struct Scrape {
    text: String,
    samples: Vec<Sample>,
}

struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

impl Scrape {
    /// Parses `text` (lines it cannot read are skipped: a test asking for
    /// their metric then finds no value).
    pub fn parse(text: impl Into<String>) -> Self {
        let text = text.into();
        let samples = text.lines().filter_map(sample).collect();
        Self { text, samples }
    }

    /// `GET url` (a `/metrics` address), parsed.
    pub async fn get(url: &str) -> Self {
        let resp = reqwest::get(url)
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
        Self::parse(resp.text().await.expect("metrics text"))
    }

    /// The value of the sample named `name` whose labels are exactly
    /// `labels` (in any order); `None` when there is no such sample.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
            })
            .map(|s| s.value)
    }

    /// The sum over every label set of `name` (0 when it has no sample yet,
    /// as a counter family nothing has been counted in).
    pub fn sum(&self, name: &str) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.value)
            .sum()
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Scrape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `name{label="value",...} value [timestamp]`; comments and blank lines
/// are not samples.
fn sample(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(['{', ' ']).unwrap_or(line.len());
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let (parsed, after) = label_set(inner)?;
        labels = parsed;
        rest = after;
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// The labels up to the closing `}`, with `\\`, `\"` and `\n` unescaped,
/// and what follows the brace.
fn label_set(mut text: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        text = text.trim_start_matches([' ', ',']);
        if let Some(after) = text.strip_prefix('}') {
            return Some((labels, after));
        }
        let (key, after) = text.split_once('=')?;
        let mut chars = after.strip_prefix('"')?.char_indices();
        let mut value = String::new();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((key.trim().to_owned(), value));
        text = &after[1 + end + 1..];
    }
}
