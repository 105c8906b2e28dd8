//! Progress for long runs: a bar with rate and ETA on a terminal, a line every ten percent when
//! stderr is a file or pipe (logs stay readable), nothing with `--quiet`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

use headstart::dataset::Skipped;
use headstart::embed::Progress;
use indicatif::{ProgressBar, ProgressStyle};

pub enum Reporter {
    Quiet,
    Bar(ProgressBar),
    Lines {
        total: AtomicU64,
        done: AtomicU64,
        started: std::time::Instant,
    },
}

impl Reporter {
    pub fn new(quiet: bool) -> Reporter {
        if quiet {
            Reporter::Quiet
        } else if std::io::stderr().is_terminal() {
            let bar = ProgressBar::hidden();
            bar.set_style(
                ProgressStyle::with_template("{bar:40.cyan/blue} {pos}/{len} images  {per_sec}  ETA {eta}")
                    .expect("valid template"),
            );
            Reporter::Bar(bar)
        } else {
            Reporter::Lines {
                total: AtomicU64::new(0),
                done: AtomicU64::new(0),
                started: std::time::Instant::now(),
            }
        }
    }
}

impl Progress for Reporter {
    fn start(&self, total: u64) {
        match self {
            Reporter::Quiet => {}
            Reporter::Bar(bar) => {
                bar.set_length(total);
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            }
            Reporter::Lines { total: t, .. } => {
                t.store(total, Ordering::Relaxed);
                eprintln!("embedding {total} images");
            }
        }
    }

    fn advance(&self, images: u64) {
        match self {
            Reporter::Quiet => {}
            Reporter::Bar(bar) => bar.inc(images),
            Reporter::Lines { total, done, started } => {
                let total = total.load(Ordering::Relaxed).max(1);
                let before = done.fetch_add(images, Ordering::Relaxed);
                let now = before + images;
                if now * 10 / total > before * 10 / total {
                    let rate = now as f64 / started.elapsed().as_secs_f64().max(1e-9);
                    eprintln!(
                        "{now}/{total} images ({:.0}%), {rate:.1} images/s",
                        100.0 * now as f64 / total as f64
                    );
                }
            }
        }
    }

    fn skipped(&self, file: &Skipped) {
        let line = format!("skipped {}: {}", file.path, file.reason);
        match self {
            Reporter::Quiet => {}
            Reporter::Bar(bar) => bar.println(line),
            Reporter::Lines { .. } => eprintln!("{line}"),
        }
    }

    fn warning(&self, message: &str) {
        let line = format!("warning: {message}");
        match self {
            Reporter::Bar(bar) => bar.println(line),
            Reporter::Quiet | Reporter::Lines { .. } => eprintln!("{line}"),
        }
    }

    fn finish(&self) {
        if let Reporter::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}
