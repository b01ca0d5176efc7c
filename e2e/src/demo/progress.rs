//! The demo's running commentary: numbered steps, each closed with how long
//! it took, and for the slow ones (a cold Go build, a controller converging)
//! a line whenever the state changes or, failing that, every few seconds, so
//! a person watching never wonders whether it hangs. Plain lines, no cursor
//! tricks: the output reads the same in a terminal, a CI log or a test.

use std::fmt::Display;
use std::future::Future;
use std::io::Write;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Result};

/// How often a long operation says it is still going.
const TICK: Duration = Duration::from_secs(20);
/// How often a convergence check is repeated.
const POLL: Duration = Duration::from_millis(200);
/// The indentation of lines inside a step.
const INDENT: &str = "      ";

/// Numbered steps written to `out`.
pub(crate) struct Progress<'o> {
    out: &'o mut (dyn Write + Send),
    steps: usize,
    step: usize,
    step_started: Instant,
}

impl<'o> Progress<'o> {
    /// Commentary for a run of `steps` steps.
    pub(crate) fn new(out: &'o mut (dyn Write + Send), steps: usize) -> Self {
        Progress {
            out,
            steps,
            step: 0,
            step_started: Instant::now(),
        }
    }

    /// Writes one line as is (flushed at once: the reader is watching).
    pub(crate) fn line(&mut self, text: impl Display) -> Result<()> {
        writeln!(self.out, "{text}").map_err(Error::Output)?;
        self.out.flush().map_err(Error::Output)
    }

    /// Starts the next step.
    pub(crate) fn step(&mut self, title: impl Display) -> Result<()> {
        self.step += 1;
        self.step_started = Instant::now();
        let (step, steps) = (self.step, self.steps);
        self.line(format!("[{step}/{steps}] {title}"))
    }

    /// A detail of the current step.
    pub(crate) fn note(&mut self, text: impl Display) -> Result<()> {
        self.line(format!("{INDENT}{text}"))
    }

    /// Closes the current step with its outcome and duration.
    pub(crate) fn done(&mut self, text: impl Display) -> Result<()> {
        let took = self.step_started.elapsed().as_secs_f64();
        self.line(format!("{INDENT}done: {text} ({took:.1}s)"))
    }

    /// Runs `work`, saying every [`TICK`] that it is still `what`.
    pub(crate) async fn ticking<T>(
        &mut self,
        what: &str,
        work: impl Future<Output = T>,
    ) -> Result<T> {
        let started = Instant::now();
        let mut work = std::pin::pin!(work);
        let mut ticks = tokio::time::interval_at(started + TICK, TICK);
        loop {
            tokio::select! {
                value = &mut work => return Ok(value),
                _ = ticks.tick() => {
                    let elapsed = format_elapsed(started.elapsed());
                    self.note(format!("... still {what} ({elapsed})"))?;
                }
            }
        }
    }

    /// Repeats `check` until it yields a value. Each time its answer about
    /// what is missing changes, and every [`TICK`] while it does not, the
    /// answer is written as `what: answer`. Fails after `timeout` with the
    /// last answer.
    pub(crate) async fn until<T, F, Fut>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut check: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, String>>,
    {
        let started = Instant::now();
        let mut shown: Option<(String, Instant)> = None;
        loop {
            let why = match check().await {
                Ok(value) => return Ok(value),
                Err(why) => why,
            };
            if started.elapsed() >= timeout {
                return Err(Error::Timeout {
                    what: what.to_string(),
                    after: started.elapsed(),
                    detail: format!("last check: {why}"),
                });
            }
            let stale = shown
                .as_ref()
                .is_none_or(|(text, at)| *text != why || at.elapsed() >= TICK);
            if stale {
                let elapsed = format_elapsed(started.elapsed());
                self.note(format!("{what}: {why} ({elapsed})"))?;
                shown = Some((why, Instant::now()));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// `4.2s`, `1m05s`: how a person reads a wait.
pub(crate) fn format_elapsed(elapsed: Duration) -> String {
    let secs = elapsed.as_secs();
    if secs < 60 {
        format!("{:.1}s", elapsed.as_secs_f64())
    } else {
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(out: &[u8]) -> String {
        String::from_utf8_lossy(out).into_owned()
    }

    #[test]
    fn elapsed_reads_as_seconds_then_minutes() {
        assert_eq!(format_elapsed(Duration::from_millis(4200)), "4.2s");
        assert_eq!(format_elapsed(Duration::from_secs(65)), "1m05s");
    }

    #[tokio::test(start_paused = true)]
    async fn steps_are_numbered_and_closed() {
        let mut out = Vec::new();
        let mut p = Progress::new(&mut out, 2);
        p.step("first").expect("write");
        p.note("detail").expect("write");
        p.done("ok").expect("write");
        p.step("second").expect("write");
        let text = text(&out);
        assert!(text.starts_with("[1/2] first\n      detail\n      done: ok ("));
        assert!(text.ends_with("[2/2] second\n"), "{text}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_operation_says_it_is_still_going() {
        let mut out = Vec::new();
        let mut p = Progress::new(&mut out, 1);
        let value = p
            .ticking("building", async {
                tokio::time::sleep(Duration::from_secs(45)).await;
                7
            })
            .await
            .expect("write");
        assert_eq!(value, 7);
        let text = text(&out);
        assert_eq!(text.matches("still building").count(), 2, "{text}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_reports_each_change_once() {
        let mut out = Vec::new();
        let mut p = Progress::new(&mut out, 1);
        let mut calls = 0;
        let got = p
            .until("pods", Duration::from_secs(60), || {
                calls += 1;
                let n = calls;
                async move {
                    match n {
                        1..=3 => Err("0/2 created".to_string()),
                        4..=5 => Err("1/2 created".to_string()),
                        _ => Ok(n),
                    }
                }
            })
            .await
            .expect("converges");
        assert_eq!(got, 6);
        let text = text(&out);
        assert_eq!(text.matches("pods: 0/2 created").count(), 1, "{text}");
        assert_eq!(text.matches("pods: 1/2 created").count(), 1, "{text}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_that_never_converges_names_the_last_answer() {
        let mut out = Vec::new();
        let mut p = Progress::new(&mut out, 1);
        let err = p
            .until::<(), _, _>("pods", Duration::from_secs(5), || async {
                Err("0/2 created".to_string())
            })
            .await
            .expect_err("times out");
        let text = err.to_string();
        assert!(
            text.contains("pods") && text.contains("0/2 created"),
            "{text}"
        );
    }
}
