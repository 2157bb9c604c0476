//! `godwit report`: one run as a self-contained HTML page (repl/src/report).

use std::io::Write as _;
use std::path::PathBuf;

use godwit_engine::plan::Plan;
use godwit_engine::transcript::Line;
use godwit_engine::{EngineError, JournalStore, exit};
use serde_json::json;

use crate::context::Context;
use crate::report::{RunPage, chart, html};
use crate::session::{Failure, invalid};
use crate::state::{resolve_run, status_text};

/// Write a run's report: one HTML file with its timeline, the gate it waits on and why, the
/// lag chart with the fence and the promotion marked, the write blackout, what was rolled back
/// and the journal's verification — self-contained (nothing fetched), to mail or attach to a
/// ticket. Works on a finished run and on one still going (the page is as of now). Reading the
/// journal verifies it: a damaged one is refused (exit 5).
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  godwit report last
  godwit report 01JD3X --out orders-db-cutover.html --svg orders-db-lag.svg
  godwit report last --out - | gzip > report.html.gz")]
pub struct ReportArgs {
    /// Run id (or a unique prefix, or `last`).
    pub run: String,
    /// Where to write the page; `-` for standard output [default: RUN.html].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also write the lag chart alone, as an SVG file.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

impl ReportArgs {
    pub fn execute(self, ctx: &Context) -> Result<i32, Failure> {
        let store = ctx.store()?;
        let id = resolve_run(&store, &self.run).map_err(invalid)?;
        let loaded = store.read(&id).map_err(EngineError::from)?;
        let plan = Plan::from_records(&loaded.records);
        let status = status_text(&store, &id, &plan);
        let lines: Vec<Line> = store
            .transcript_lines(&id)
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let page = RunPage::build(&id, &loaded, &plan, status, &lines);
        let out = self
            .out
            .unwrap_or_else(|| PathBuf::from(format!("{id}.html")));
        let text = html(&page);
        let write = |path: &PathBuf, text: &str| -> Result<(), Failure> {
            std::fs::write(path, text).map_err(|e| {
                invalid(format!(
                    "cannot write {}: {e}; give another --out/--svg",
                    path.display()
                ))
            })
        };
        let chart_file = match &self.svg {
            Some(path) => {
                let svg = chart::lag_chart(&page.series, &page.markers, page.started_at)
                    .ok_or_else(|| {
                        invalid(format!(
                            "run {id} read no CloudWatch series: there is no lag chart to write to {}",
                            path.display()
                        ))
                    })?;
                Some((path, svg))
            }
            None => None,
        };
        if out.as_os_str() == "-" {
            std::io::stdout()
                .write_all(text.as_bytes())
                .map_err(|e| Failure(exit::INTERNAL, format!("stdout: {e}")))?;
        } else {
            write(&out, &text)?;
        }
        if let Some((path, svg)) = &chart_file {
            write(path, svg)?;
        }
        if out.as_os_str() != "-" {
            if ctx.json() {
                crate::out::json(&json!({
                    "run_id": id,
                    "report": out,
                    "svg": chart_file.as_ref().map(|(p, _)| p),
                    "series": page.series.iter().map(|s| json!({"metric": s.metric, "of": s.of, "points": s.points.len()})).collect::<Vec<_>>(),
                }));
            } else {
                crate::out::line(format!(
                    "report of run {id} written to {}{}",
                    out.display(),
                    chart_file
                        .as_ref()
                        .map(|(p, _)| format!(", its lag chart to {}", p.display()))
                        .unwrap_or_default()
                ));
            }
        }
        Ok(exit::OK)
    }
}
