//! CloudWatch Embedded Metric Format on Lambda: a `metrics` recorder that aggregates what one
//! invocation records and prints it as JSON lines when [`flush`] is called at the invocation's
//! end. CloudWatch Logs extracts the metrics from the lines: no API call, no extra latency.
//!
//! Each line is one EMF document: `_aws.Timestamp`, `_aws.CloudWatchMetrics[]` (namespace,
//! dimension sets, metric names and units), and every dimension and metric named there as a
//! top-level member. A dimension holds one value per document, so values recorded under
//! different dimension values (two subscriptions in one batch) go to separate lines; everything
//! else shares one line per invocation.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use serde_json::{json, Map, Value};

use super::Metric;

/// Default CloudWatch namespace (`HOOKHUB_METRICS_NAMESPACE`).
pub const DEFAULT_NAMESPACE: &str = "Hookhub";

/// EMF limits: metrics per directive and values per metric.
const MAX_METRICS: usize = 100;
const MAX_VALUES: usize = 100;

/// Where the lines go.
#[derive(Clone)]
pub enum Output {
    /// The function's log output (CloudWatch Logs).
    Stdout,
    /// Kept in memory (tests).
    Capture(Arc<Mutex<Vec<String>>>),
}

/// One time series: the same cell serves counters, gauges and histograms of that key.
#[derive(Default)]
struct Cell {
    count: AtomicU64,
    values: Mutex<Vec<f64>>,
    gauge: Mutex<Option<f64>>,
}

impl CounterFn for Cell {
    fn increment(&self, value: u64) {
        self.count.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.count.store(value, Ordering::Relaxed);
    }
}

impl GaugeFn for Cell {
    fn increment(&self, value: f64) {
        let mut g = self.gauge.lock().unwrap_or_else(|e| e.into_inner());
        *g = Some(g.unwrap_or(0.0) + value);
    }
    fn decrement(&self, value: f64) {
        GaugeFn::increment(self, -value);
    }
    fn set(&self, value: f64) {
        *self.gauge.lock().unwrap_or_else(|e| e.into_inner()) = Some(value);
    }
}

impl HistogramFn for Cell {
    fn record(&self, value: f64) {
        self.values
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(value);
    }
}

impl Cell {
    /// What was recorded since the last take, as EMF values (one number or a list).
    fn take(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let count = self.count.swap(0, Ordering::Relaxed);
        if count > 0 {
            out.push(json!(count));
        }
        let values = std::mem::take(&mut *self.values.lock().unwrap_or_else(|e| e.into_inner()));
        out.extend(values.chunks(MAX_VALUES).map(|c| json!(c)));
        if let Some(g) = self.gauge.lock().unwrap_or_else(|e| e.into_inner()).take() {
            out.push(json!(g));
        }
        out
    }
}

type Labels = BTreeMap<String, String>;
/// A metric name and its sorted labels.
type SeriesKey = (String, Vec<(String, String)>);

/// Aggregates until [`EmfRecorder::flush`]. Cheap to clone (shared state).
#[derive(Clone)]
pub struct EmfRecorder {
    namespace: String,
    output: Output,
    cells: Arc<Mutex<BTreeMap<SeriesKey, Arc<Cell>>>>,
}

impl EmfRecorder {
    pub fn new(namespace: impl Into<String>, output: Output) -> Self {
        Self {
            namespace: namespace.into(),
            output,
            cells: Arc::default(),
        }
    }

    fn cell(&self, key: &Key) -> Arc<Cell> {
        let mut labels: Vec<(String, String)> = key
            .labels()
            .map(|l| (l.key().to_string(), l.value().to_string()))
            .collect();
        labels.sort();
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        cells
            .entry((key.name().to_string(), labels))
            .or_default()
            .clone()
    }

    /// The documents for everything recorded since the last flush (which it resets).
    pub fn documents(&self, timestamp_ms: i64) -> Vec<Value> {
        let cells: Vec<_> = {
            let cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
            cells.iter().map(|(k, c)| (k.clone(), c.clone())).collect()
        };
        let mut docs: Vec<Doc> = Vec::new();
        for ((name, labels), cell) in cells {
            let labels: Labels = labels.into_iter().collect();
            for value in cell.take() {
                match docs.iter_mut().find(|d| d.fits(&name, &labels)) {
                    Some(doc) => doc.add(&name, &labels, value),
                    None => {
                        let mut doc = Doc::default();
                        doc.add(&name, &labels, value);
                        docs.push(doc);
                    }
                }
            }
        }
        docs.into_iter()
            .map(|d| d.render(&self.namespace, timestamp_ms))
            .collect()
    }

    /// Writes the lines of everything recorded since the last flush.
    pub fn flush(&self) {
        let docs = self.documents(chrono::Utc::now().timestamp_millis());
        if docs.is_empty() {
            return;
        }
        let lines: Vec<String> = docs.iter().map(Value::to_string).collect();
        match &self.output {
            Output::Stdout => {
                let mut out = std::io::stdout().lock();
                for line in &lines {
                    let _ = writeln!(out, "{line}");
                }
                let _ = out.flush();
            }
            Output::Capture(lines_seen) => lines_seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(lines),
        }
    }
}

/// The metrics of one line: dimension values and, per metric, its value.
#[derive(Default)]
struct Doc {
    labels: Labels,
    metrics: BTreeMap<String, (Labels, Value)>,
}

impl Doc {
    /// Whether a metric with these dimension values can share the line.
    fn fits(&self, name: &str, labels: &Labels) -> bool {
        !self.metrics.contains_key(name)
            && self.metrics.len() < MAX_METRICS
            && labels
                .iter()
                .all(|(k, v)| self.labels.get(k).is_none_or(|mine| mine == v))
    }

    fn add(&mut self, name: &str, labels: &Labels, value: Value) {
        self.labels
            .extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.metrics
            .insert(name.to_string(), (labels.clone(), value));
    }

    fn render(self, namespace: &str, timestamp_ms: i64) -> Value {
        // Metrics with the same dimension sets share a directive.
        let mut directives: BTreeMap<Vec<Vec<String>>, Vec<Value>> = BTreeMap::new();
        let mut root = Map::new();
        for (name, (labels, value)) in self.metrics {
            let metric = Metric::from_name(&name);
            let unit = metric.map_or("None", |m| m.unit().code());
            directives
                .entry(dimension_sets(metric, &labels))
                .or_default()
                .push(json!({"Name": name, "Unit": unit}));
            root.insert(name, value);
        }
        for (k, v) in self.labels {
            root.insert(k, Value::String(v));
        }
        let directives: Vec<Value> = directives
            .into_iter()
            .map(|(dims, metrics)| {
                json!({"Namespace": namespace, "Dimensions": dims, "Metrics": metrics})
            })
            .collect();
        root.insert(
            "_aws".into(),
            json!({"Timestamp": timestamp_ms, "CloudWatchMetrics": directives}),
        );
        Value::Object(root)
    }
}

/// The metric's own dimensions (those it was recorded with), then its roll-ups that apply.
fn dimension_sets(metric: Option<Metric>, labels: &Labels) -> Vec<Vec<String>> {
    let order = |dims: &[&str]| -> Vec<String> {
        dims.iter()
            .filter(|d| labels.contains_key(**d))
            .map(|d| d.to_string())
            .collect()
    };
    let full: Vec<String> = match metric {
        Some(m) => order(m.dimensions()),
        None => labels.keys().cloned().collect(),
    };
    let mut sets = vec![full];
    for rollup in metric.map_or(&[][..], |m| m.rollups()) {
        if rollup.iter().all(|d| labels.contains_key(*d)) {
            let set: Vec<String> = rollup.iter().map(|d| d.to_string()).collect();
            if !sets.contains(&set) {
                sets.push(set);
            }
        }
    }
    sets
}

impl Recorder for EmfRecorder {
    // Units come from the metric table; descriptions have no place in EMF.
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.cell(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.cell(key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.cell(key))
    }
}

static INSTALLED: OnceLock<EmfRecorder> = OnceLock::new();

/// Installs the EMF recorder as the process's recorder (Lambda init). The first call wins;
/// later calls return the installed one.
pub fn install(namespace: &str, output: Output) -> &'static EmfRecorder {
    INSTALLED.get_or_init(|| {
        let recorder = EmfRecorder::new(namespace, output);
        // Fails only if another recorder is installed, which then records instead.
        let _ = metrics::set_global_recorder(recorder.clone());
        recorder
    })
}

/// Flushes the installed recorder, if any: call at the end of every invocation.
pub fn flush() {
    if let Some(recorder) = INSTALLED.get() {
        recorder.flush();
    }
}
