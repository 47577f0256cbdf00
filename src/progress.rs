//! Progress of long operations (create, update and delete cluster, bootstrap), as events the
//! engines emit and a front end renders: the CLI draws one line per phase and per instance on
//! a terminal, and prints plain or JSON lines otherwise.

/// One step of progress.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `network`, `security`, `instances`, `load balancer`, `bootstrap`, `delete`, ...
    pub phase: &'static str,
    /// The instance the step is about, when it is about one (its own progress line).
    pub subject: Option<String>,
    pub message: String,
    /// The phase (or the subject's part in it) is finished.
    pub done: bool,
}

impl Event {
    pub fn line(phase: &'static str, message: impl Into<String>) -> Event {
        Event {
            phase,
            subject: None,
            message: message.into(),
            done: false,
        }
    }

    pub fn of(phase: &'static str, subject: &str, message: impl Into<String>) -> Event {
        Event {
            phase,
            subject: Some(subject.to_string()),
            message: message.into(),
            done: false,
        }
    }

    pub fn done(mut self) -> Event {
        self.done = true;
        self
    }
}

/// Where events go. Must be cheap: engines report from many tasks at once.
pub trait Reporter: Send + Sync {
    fn report(&self, e: Event);
}

/// Drops every event.
pub struct Quiet;

impl Reporter for Quiet {
    fn report(&self, _: Event) {}
}

impl<F: Fn(Event) + Send + Sync> Reporter for F {
    fn report(&self, e: Event) {
        self(e)
    }
}
