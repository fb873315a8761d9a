//! `rotate-keys`: re-seals every stored secret under the ring's active key, showing how far
//! it has come (a bar on a terminal, a line per tenth otherwise), and ends with a summary.
//!
//! Safe to interrupt: the store writes each batch in one transaction, so a run killed
//! midway leaves every secret sealed under the old key or the new one; running the command
//! again skips those already under the active key and finishes the rest.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use verrou::store::{KeyRotation, ResealReport, RotationProgress};
use verrou::Verrou;

use crate::output::{print_result, Format};
use crate::Failure;

pub(crate) async fn rotate_keys<S: KeyRotation>(
    verrou: &Verrou<S>,
    format: Format,
) -> Result<(), Failure> {
    let before = verrou.store().sealed_secrets().await?;
    let total = before.by_key.values().sum::<usize>() + before.malformed;
    let mut progress = Progress::new(total);
    let report = verrou
        .store()
        .rotate_keys_with(|now| progress.show(now))
        .await;
    progress.finish();
    let report = report?;
    summarise(&report, format);
    if !report.unreadable.is_empty() {
        return Err(Failure::Operation(
            "some secrets could not be opened and were skipped: see above".into(),
        ));
    }
    if report.stale > 0 {
        return Err(Failure::Operation(
            "some secrets are still sealed with another key: a portal instance may still run \
             with an older active key; run again once every instance has the new \
             configuration"
                .into(),
        ));
    }
    Ok(())
}

/// Prints what the rotation did, and each secret it could not open (ids only).
fn summarise(report: &ResealReport, format: Format) {
    let unreadable: Vec<_> = report
        .unreadable
        .iter()
        .map(
            |row| json!({"user": row.user, "factor": row.factor, "reason": row.reason.to_string()}),
        )
        .collect();
    print_result(
        format,
        &format!(
            "scanned {} sealed secrets, re-sealed {}, still under another key {}, unreadable {}, \
             already under the active key {}",
            report.scanned,
            report.resealed,
            report.stale,
            report.unreadable.len(),
            report.current(),
        ),
        json!({
            "command": "rotate-keys",
            "scanned": report.scanned,
            "resealed": report.resealed,
            "stale": report.stale,
            "unreadable": unreadable,
            "current": report.current(),
        }),
    );
    if let Format::Text = format {
        for row in &report.unreadable {
            println!(
                "unreadable: user {}, factor {}: {} (skipped; reset this user's factor)",
                row.user.escape_debug(),
                row.factor.escape_debug(),
                row.reason
            );
        }
    }
}

/// Where the progress of a rotation goes: on standard error, never mixed with the summary
/// (or the JSON) on standard output.
enum Progress {
    /// A bar redrawn in place on a terminal.
    Bar(ProgressBar),
    /// A line each time another tenth of the secrets has been read, for logs.
    Lines {
        total: usize,
        /// The tenths already reported, in the pass reported.
        shown: (usize, usize),
    },
}

impl Progress {
    fn new(total: usize) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self::Lines {
                total,
                shown: (1, 0),
            };
        }
        let bar = ProgressBar::new(u64::try_from(total).unwrap_or(u64::MAX));
        let style = ProgressStyle::with_template(
            "{prefix}[{bar:32}] {pos}/{len} secrets read, {msg} (eta {eta})",
        )
        .map(|style| style.progress_chars("=> "));
        if let Ok(style) = style {
            bar.set_style(style);
        }
        Self::Bar(bar)
    }

    fn show(&mut self, now: RotationProgress<'_>) {
        let report = now.report;
        let done = format!(
            "{} re-sealed, {} unreadable, {} already current",
            report.resealed,
            report.unreadable.len(),
            report.current()
        );
        match self {
            Self::Bar(bar) => {
                if now.pass > 1 {
                    bar.set_prefix(format!("pass {} ", now.pass));
                }
                bar.set_message(done);
                bar.set_position(u64::try_from(report.scanned).unwrap_or(u64::MAX));
            }
            Self::Lines { total, shown } => {
                // Rows enrolled during the run can take a pass past the count read first.
                let tenths = (report.scanned * 10)
                    .checked_div(*total)
                    .unwrap_or(10)
                    .min(10);
                if (now.pass, tenths) > *shown {
                    *shown = (now.pass, tenths);
                    eprintln!(
                        "rotate-keys: pass {}: {} of {} secrets read ({}%), {done}",
                        now.pass,
                        report.scanned,
                        total,
                        tenths * 10,
                    );
                }
            }
        }
    }

    fn finish(&self) {
        if let Self::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}
