//! jq filters and transforms of subscriptions, on the `jaq` crates.
//!
//! - `filter` runs on the event as JSON ([`event_input`]); the event is delivered only when the
//!   first output is truthy (not `false` or `null`). No output means "not delivered" too.
//! - `transform` runs on the same input; its one output is the delivered body
//!   (`application/json`, signed like any body).
//!
//! Programs are compiled when a subscription is created or updated ([`compile`]) and again,
//! once, by each dispatcher process ([`prepare`] keeps them per subscription). Runs are bounded
//! in steps, time, recursion depth ([`guard`]) and output size ([`MAX_OUTPUT_BYTES`]).

pub mod guard;
mod input;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use jaq_core::load::{Arena, File, Loader};
use jaq_json::Val;

pub use guard::Limits;
pub use input::event_input;

use crate::domain::{Event, Subscription};

/// Longest program text accepted.
pub const MAX_PROGRAM_BYTES: usize = 16 * 1024;
/// Largest body a transform may produce (serialised JSON).
pub const MAX_OUTPUT_BYTES: usize = 1024 * 1024;
/// Compiled programs kept per process (one entry per subscription with a program).
pub const CACHE_CAPACITY: usize = 1024;

/// A compiled jq program.
pub struct Program {
    filter: jaq_core::Filter<guard::Guarded>,
    /// Set once a run went over budget: the program is not run again (each runaway run parks a
    /// thread; see [`guard`]). A new program text (an update) compiles a fresh one.
    exceeded: AtomicBool,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("exceeded", &self.exceeded.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Why a program does not compile, with where (1-based line and column, in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    pub message: String,
    pub line: usize,
    pub column: usize,
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

/// Compiles (and so validates) a program.
pub fn compile(code: &str) -> Result<Program, CompileError> {
    if code.len() > MAX_PROGRAM_BYTES {
        return Err(CompileError {
            message: format!("the program is longer than {MAX_PROGRAM_BYTES} bytes"),
            line: 1,
            column: 1,
        });
    }
    if code.trim().is_empty() {
        return Err(CompileError {
            message: "the program is empty".into(),
            line: 1,
            column: 1,
        });
    }
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let loader = Loader::new(defs);
    let arena = Arena::default();
    let modules = loader
        .load(&arena, File { code, path: () })
        .map_err(|errors| first_load_error(code, errors))?;
    let filter = jaq_core::Compiler::default()
        .with_funs(guard::natives())
        .compile(modules)
        .map_err(|errors| {
            let found = errors.into_iter().flat_map(|(_, e)| e).next();
            match found {
                Some((name, undefined)) => at(
                    code,
                    name,
                    match undefined {
                        jaq_core::compile::Undefined::Filter(arity) => {
                            format!("undefined filter {name}/{arity}")
                        }
                        other => format!("undefined {} {name}", other.as_str()),
                    },
                ),
                None => at(code, code, "the program does not compile".into()),
            }
        })?;
    Ok(Program {
        filter,
        exceeded: AtomicBool::new(false),
    })
}

fn first_load_error(code: &str, errors: jaq_core::load::Errors<&str, ()>) -> CompileError {
    use jaq_core::load::{lex, Error};
    let fallback = || at(code, code, "the program does not parse".into());
    let Some((_, error)) = errors.into_iter().next() else {
        return fallback();
    };
    match error {
        Error::Lex(errors) => match errors.first() {
            Some((expect, found)) => {
                let expected = match expect {
                    lex::Expect::Delim("(") => "closing parenthesis",
                    lex::Expect::Delim("[") => "closing bracket",
                    lex::Expect::Delim("{") => "closing brace",
                    lex::Expect::Delim(_) => "closing quote",
                    other => other.as_str(),
                };
                at(code, found, format!("expected {expected}"))
            }
            None => fallback(),
        },
        Error::Parse(errors) => match errors.first() {
            Some((expect, found)) => {
                let near = found.trim();
                let message = if near.is_empty() {
                    format!("expected {} at the end of the program", expect.as_str())
                } else {
                    let near: String = near.chars().take(20).collect();
                    format!("expected {}, found {near:?}", expect.as_str())
                };
                at(code, found, message)
            }
            None => fallback(),
        },
        Error::Io(errors) => match errors.first() {
            Some((path, message)) => at(code, path, message.clone()),
            None => fallback(),
        },
    }
}

/// An error at `slice`, which jaq hands back as a part of `code` (or of its own definitions,
/// reported at the start).
fn at(code: &str, slice: &str, message: String) -> CompileError {
    let start = code.as_ptr() as usize;
    let offset = (slice.as_ptr() as usize)
        .checked_sub(start)
        .filter(|o| *o <= code.len() && code.is_char_boundary(*o))
        .unwrap_or(0);
    let before = &code[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    CompileError {
        message,
        line,
        column,
    }
}

/// Why a run produced nothing usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Failed(String),
    #[error("the program {0}")]
    Exceeded(String),
    #[error("the program went over its limits before and is not run again until it changes")]
    Quarantined,
    #[error("the transform produced no output")]
    NoOutput,
    #[error("the transform produced more than one output")]
    TooManyOutputs,
    #[error("the transform's output is larger than {MAX_OUTPUT_BYTES} bytes")]
    OutputTooLarge,
    #[error("the transform's output is not JSON: {0}")]
    NotJson(String),
    #[error("no jq evaluator answered in time")]
    Unavailable,
}

/// What a run is for: a filter wants one truth value, a transform one JSON document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Filter,
    Transform,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Pass(bool),
    Body(Bytes),
}

impl Program {
    /// Runs the program on the current thread and returns what it computed. Going over budget
    /// parks the current thread for good: this is for evaluator threads and benchmarks of
    /// well-behaved programs; the dispatcher uses [`Program::run`].
    pub fn run_here(
        &self,
        input: Val,
        mode: Mode,
        limits: Limits,
        on_exceeded: Box<dyn FnOnce(guard::Exceeded)>,
    ) -> Result<Output, RunError> {
        let meter = guard::Meter::new(limits, on_exceeded);
        let mut outputs: Vec<Result<Val, String>> = Vec::with_capacity(2);
        let wanted = match mode {
            Mode::Filter => 1,
            Mode::Transform => 2,
        };
        guard::run(&self.filter, input, &meter, |output| {
            let failed = output.is_err();
            outputs.push(output);
            !failed && outputs.len() < wanted
        });
        let mut outputs = outputs.into_iter();
        match mode {
            Mode::Filter => match outputs.next() {
                None => Ok(Output::Pass(false)),
                Some(Ok(value)) => Ok(Output::Pass(jaq_core::ValT::as_bool(&value))),
                Some(Err(e)) => Err(RunError::Failed(e)),
            },
            Mode::Transform => match (outputs.next(), outputs.next()) {
                (None, _) => Err(RunError::NoOutput),
                (Some(Err(e)), _) | (Some(Ok(_)), Some(Err(e))) => Err(RunError::Failed(e)),
                (Some(Ok(_)), Some(Ok(_))) => Err(RunError::TooManyOutputs),
                (Some(Ok(value)), None) => to_json(&value).map(Output::Body),
            },
        }
    }

    /// Runs the program on an evaluator thread, within `limits`.
    pub async fn run(
        self: &Arc<Self>,
        input: Val,
        mode: Mode,
        limits: Limits,
    ) -> Result<Output, RunError> {
        if self.exceeded.load(Ordering::Relaxed) {
            return Err(RunError::Quarantined);
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        // Both the run's end and its over-budget report may answer; the first one does.
        let reply = Arc::new(Mutex::new(Some(reply)));
        let program = self.clone();
        let submitted = guard::submit(move |replace| {
            let on_exceeded = {
                let reply = reply.clone();
                let program = program.clone();
                Box::new(move |exceeded: guard::Exceeded| {
                    program.exceeded.store(true, Ordering::Relaxed);
                    replace();
                    answer_once(&reply, Err(RunError::Exceeded(exceeded.describe(&limits))));
                })
            };
            let result = program.run_here(input, mode, limits, on_exceeded);
            answer_once(&reply, result);
        });
        if !submitted {
            return Err(RunError::Unavailable);
        }
        // The guard stops a run at its time limit; this only covers evaluators that are all
        // busy or gone.
        let patience = limits.max_time * 4 + Duration::from_secs(5);
        match tokio::time::timeout(patience, answer).await {
            Ok(Ok(result)) => result,
            _ => Err(RunError::Unavailable),
        }
    }
}

type Reply = Arc<Mutex<Option<tokio::sync::oneshot::Sender<Result<Output, RunError>>>>>;

fn answer_once(reply: &Reply, result: Result<Output, RunError>) {
    if let Some(reply) = reply.lock().ok().and_then(|mut r| r.take()) {
        let _ = reply.send(result);
    }
}

/// Serialises a transform's output as JSON, refusing what JSON cannot hold (byte strings,
/// non-string keys, NaN) and stopping at [`MAX_OUTPUT_BYTES`].
fn to_json(value: &Val) -> Result<Bytes, RunError> {
    use std::fmt::Write;
    struct Bounded(String);
    impl Write for Bounded {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            if self.0.len() + s.len() > MAX_OUTPUT_BYTES {
                return Err(std::fmt::Error);
            }
            self.0.push_str(s);
            Ok(())
        }
    }
    let mut out = Bounded(String::new());
    write!(out, "{value}").map_err(|_| RunError::OutputTooLarge)?;
    serde_json::from_str::<serde::de::IgnoredAny>(&out.0)
        .map_err(|e| RunError::NotJson(e.to_string()))?;
    Ok(Bytes::from(out.0))
}

/// A subscription's compiled programs, as long as it is not changed.
struct Compiled {
    updated_at: DateTime<Utc>,
    filter: Option<(String, Result<Arc<Program>, CompileError>)>,
    transform: Option<(String, Result<Arc<Program>, CompileError>)>,
    last_used: u64,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<String, Compiled>,
    clock: u64,
}

static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(Mutex::default);

type Slot = Option<Result<Arc<Program>, CompileError>>;

/// The subscription's programs, compiled once per change of the subscription.
fn programs(subscription: &Subscription) -> (Slot, Slot) {
    let same = |cached: &Option<(String, _)>, text: &Option<String>| {
        cached.as_ref().map(|(t, _)| t) == text.as_ref()
    };
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    cache.clock += 1;
    let now = cache.clock;
    if let Some(entry) = cache.entries.get_mut(&subscription.id) {
        if entry.updated_at == subscription.updated_at
            && same(&entry.filter, &subscription.filter)
            && same(&entry.transform, &subscription.transform)
        {
            entry.last_used = now;
            return (
                entry.filter.as_ref().map(|(_, p)| p.clone()),
                entry.transform.as_ref().map(|(_, p)| p.clone()),
            );
        }
    }
    let build =
        |text: &Option<String>| text.as_ref().map(|t| (t.clone(), compile(t).map(Arc::new)));
    let entry = Compiled {
        updated_at: subscription.updated_at,
        filter: build(&subscription.filter),
        transform: build(&subscription.transform),
        last_used: now,
    };
    let slots = (
        entry.filter.as_ref().map(|(_, p)| p.clone()),
        entry.transform.as_ref().map(|(_, p)| p.clone()),
    );
    if cache.entries.len() >= CACHE_CAPACITY && !cache.entries.contains_key(&subscription.id) {
        let oldest = cache
            .entries
            .iter()
            .min_by_key(|(_, e)| e.last_used)
            .map(|(id, _)| id.clone());
        if let Some(id) = oldest {
            cache.entries.remove(&id);
        }
    }
    cache.entries.insert(subscription.id.clone(), entry);
    slots
}

/// What to deliver for one (event, subscription) pair.
#[derive(Debug)]
pub enum Prepared<'e> {
    /// This event, or the transformed one (`application/json` body).
    Deliver(Cow<'e, Event>),
    /// The filter said no (false, null or no output): not delivered, not a failure.
    FilteredOut,
    /// The filter or the transform failed at run time: logged `transform_failed`, not retried
    /// (the same input fails the same way); replayable once the program is fixed.
    Failed(String),
}

/// Runs the subscription's filter, then its transform, on the event.
pub async fn prepare<'e>(event: &'e Event, subscription: &Subscription) -> Prepared<'e> {
    if subscription.filter.is_none() && subscription.transform.is_none() {
        return Prepared::Deliver(Cow::Borrowed(event));
    }
    let limits = Limits::default();
    let (filter, transform) = programs(subscription);
    let input = event_input(event);
    if let Some(filter) = filter {
        let outcome = match filter {
            Ok(program) => program.run(input.clone(), Mode::Filter, limits).await,
            Err(e) => Err(RunError::Failed(format!(
                "the filter does not compile: {e}"
            ))),
        };
        match outcome {
            Ok(Output::Pass(true)) => {}
            Ok(_) => return Prepared::FilteredOut,
            Err(e) => return Prepared::Failed(format!("filter: {e}")),
        }
    }
    let Some(transform) = transform else {
        return Prepared::Deliver(Cow::Borrowed(event));
    };
    let outcome = match transform {
        Ok(program) => program.run(input, Mode::Transform, limits).await,
        Err(e) => Err(RunError::Failed(format!(
            "the transform does not compile: {e}"
        ))),
    };
    match outcome {
        Ok(Output::Body(body)) => {
            let mut transformed = event.clone();
            transformed.body = body;
            transformed.content_type = Some("application/json".into());
            Prepared::Deliver(Cow::Owned(transformed))
        }
        Ok(Output::Pass(_)) => Prepared::Failed("transform: no body".into()),
        Err(e) => Prepared::Failed(format!("transform: {e}")),
    }
}

#[cfg(test)]
mod tests;
