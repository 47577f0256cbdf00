//! Renders progress events: on a terminal, one line per phase and per instance, redrawn in
//! place (indicatif); otherwise plain lines with the elapsed time, or JSON lines (`-o json`).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::args::ProgressOutput;
use crate::progress::{Event, Reporter};

pub struct Progress {
    start: Instant,
    mode: Mode,
}

enum Mode {
    Text,
    Json,
    Bars {
        multi: MultiProgress,
        bars: Mutex<BTreeMap<String, ProgressBar>>,
    },
}

impl Progress {
    /// Bars on a terminal unless `-o` says otherwise.
    pub fn new(output: Option<ProgressOutput>) -> Progress {
        let mode = match output {
            Some(ProgressOutput::Json) => Mode::Json,
            Some(ProgressOutput::Text) => Mode::Text,
            None if std::io::stdout().is_terminal() => Mode::Bars {
                multi: MultiProgress::new(),
                bars: Mutex::new(BTreeMap::new()),
            },
            None => Mode::Text,
        };
        Progress {
            start: Instant::now(),
            mode,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// A line that is not progress (a result), printed above the bars.
    pub fn println(&self, line: &str) {
        match &self.mode {
            Mode::Bars { multi, .. } => {
                let _ = multi.println(line);
            }
            Mode::Json => println!("{}", serde_json::json!({ "message": line })),
            Mode::Text => println!("{line}"),
        }
    }

    /// Ends every line still drawn.
    pub fn finish(&self) {
        if let Mode::Bars { bars, .. } = &self.mode {
            for b in bars.lock().unwrap().values() {
                if !b.is_finished() {
                    b.finish();
                }
            }
        }
    }
}

impl Reporter for Progress {
    fn report(&self, e: Event) {
        let t = self.start.elapsed().as_secs_f64();
        match &self.mode {
            Mode::Text => match &e.subject {
                Some(s) => println!("[{t:6.1}s] {}: {s}: {}", e.phase, e.message),
                None => println!("[{t:6.1}s] {}: {}", e.phase, e.message),
            },
            Mode::Json => println!(
                "{}",
                serde_json::json!({
                    "seconds": (t * 10.0).round() / 10.0,
                    "phase": e.phase,
                    "instance": e.subject,
                    "message": e.message,
                    "done": e.done,
                })
            ),
            Mode::Bars { multi, bars } => {
                let key = match &e.subject {
                    Some(s) => format!("{} {s}", e.phase),
                    None => e.phase.to_string(),
                };
                let mut bars = bars.lock().unwrap();
                let bar = bars.entry(key.clone()).or_insert_with(|| {
                    let b = multi.add(ProgressBar::new_spinner());
                    b.set_style(
                        ProgressStyle::with_template(
                            "{spinner} {prefix:<22} {wide_msg} {elapsed:>4}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    b.set_prefix(key);
                    b.enable_steady_tick(Duration::from_millis(120));
                    b
                });
                if e.done {
                    bar.finish_with_message(e.message);
                } else {
                    bar.set_message(e.message);
                }
            }
        }
    }
}

impl crate::provision::Progress for Progress {
    fn say(&self, line: &str) {
        self.println(line)
    }

    fn events(&self) -> &dyn Reporter {
        self
    }
}
