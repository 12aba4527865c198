//! Progress on stderr: indicatif bars on a terminal, a plain line every few
//! seconds otherwise (a log file, CI), nothing when turned off.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressState, ProgressStyle};
use parking_lot::Mutex;

/// How often a plain progress line is printed.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// Where progress goes.
#[derive(Clone)]
pub(crate) enum Progress {
    /// Nowhere.
    Off,
    /// Bars under one [`MultiProgress`] (stderr is a terminal).
    Bars(MultiProgress),
    /// Plain lines on stderr.
    Lines,
}

impl Progress {
    /// Bars if stderr is a terminal, lines otherwise; `Off` unless `enabled`.
    pub fn new(enabled: bool) -> Self {
        if !enabled {
            Progress::Off
        } else if std::io::stderr().is_terminal() {
            Progress::Bars(MultiProgress::new())
        } else {
            Progress::Lines
        }
    }

    /// A meter of `len` `unit`s, labelled `what`.
    pub fn meter(&self, what: &str, len: u64, unit: &'static str) -> Meter {
        let inner = match self {
            Progress::Off => MeterInner::Off,
            Progress::Bars(multi) => {
                let bar = multi.add(ProgressBar::new(len));
                let style = ProgressStyle::with_template(
                    "{msg:>24} [{bar:40}] {human_pos}/{human_len} {unit} {rate:>9} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .with_key("unit", move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = w.write_str(unit);
                })
                .with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.0}/s", s.per_sec());
                })
                .progress_chars("=> ");
                bar.set_style(style);
                bar.set_message(what.to_owned());
                MeterInner::Bar(bar)
            }
            Progress::Lines => MeterInner::Lines(Box::new(Mutex::new(Lines {
                what: what.to_owned(),
                unit,
                len,
                pos: 0,
                started: Instant::now(),
                last: Instant::now(),
            }))),
        };
        Meter(inner)
    }

    /// Prints a line above the bars (or on its own).
    pub fn println(&self, line: &str) {
        match self {
            Progress::Off => {}
            Progress::Bars(multi) => {
                if multi.println(line).is_err() {
                    eprintln!("{line}");
                }
            }
            Progress::Lines => eprintln!("{line}"),
        }
    }
}

/// One thing whose progress is shown.
pub(crate) struct Meter(MeterInner);

enum MeterInner {
    Off,
    Bar(ProgressBar),
    Lines(Box<Mutex<Lines>>),
}

struct Lines {
    what: String,
    unit: &'static str,
    len: u64,
    pos: u64,
    started: Instant,
    last: Instant,
}

impl Lines {
    fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64();
        // A rate over less than a second says little.
        let rate = match secs >= 1.0 {
            true => format!(" ({:.0}/s)", self.pos as f64 / secs),
            false => String::new(),
        };
        format!("{}: {}/{} {}{rate}", self.what, self.pos, self.len, self.unit)
    }
}

impl Meter {
    /// Sets the total (a restore learns it after it started).
    pub fn set_length(&self, len: u64) {
        match &self.0 {
            MeterInner::Off => {}
            MeterInner::Bar(bar) => bar.set_length(len),
            MeterInner::Lines(l) => l.lock().len = len,
        }
    }

    /// Sets how far it got; a line is printed at most every few seconds.
    pub fn set_position(&self, pos: u64) {
        match &self.0 {
            MeterInner::Off => {}
            MeterInner::Bar(bar) => bar.set_position(pos),
            MeterInner::Lines(l) => {
                let mut l = l.lock();
                l.pos = pos;
                if l.last.elapsed() >= LINE_EVERY {
                    l.last = Instant::now();
                    eprintln!("{}", l.line());
                }
            }
        }
    }

    /// Ends it: the bar disappears, the lines get a last one.
    pub fn finish(&self) {
        match &self.0 {
            MeterInner::Off => {}
            MeterInner::Bar(bar) => bar.finish_and_clear(),
            MeterInner::Lines(l) => {
                let l = l.lock();
                eprintln!("{} (done)", l.line());
            }
        }
    }
}
