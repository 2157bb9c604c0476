//! The run page as one self-contained HTML document (maud escapes every value: results,
//! reasons and errors come from the world and the runbook).

use godwit_engine::clock::Millis;
use godwit_engine::clock::format_timestamp;
use maud::{DOCTYPE, Markup, PreEscaped, html as page};

use super::{RunPage, chart};
use crate::demo::Blackout;

fn dur(ms: i64) -> String {
    godwit_engine::duration::format_duration(std::time::Duration::from_millis(ms.max(0) as u64))
}

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:70rem;color:#1b1b1b;padding:0 1rem}
h1{font-size:1.4rem;margin-bottom:.2rem} h2{font-size:1.1rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%;font-size:.9rem} td,th{padding:.25rem .5rem;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{background:#f6f6f6} .muted{color:#666} code,.mono{font-family:ui-monospace,monospace;font-size:.85rem;word-break:break-all}
.badge{display:inline-block;padding:.1rem .5rem;border-radius:.7rem;font-size:.85rem;background:#eee}
.ok{background:#d9f2dd;color:#14532d} .bad{background:#fde2e1;color:#7f1d1d} .wait{background:#fef3c7;color:#78350f}
.bar{background:#cfe0f5;height:.8rem;display:inline-block;min-width:1px}
.callout{border-left:4px solid #d97706;background:#fffbeb;padding:.5rem 1rem;margin:1rem 0}
";

fn badge(word: &str) -> Markup {
    let class = match word {
        "succeeded" | "done" | "passed" | "undone" => "badge ok",
        "rolled back" | "rollback failed" | "failed" | "timed out" => "badge bad",
        _ => "badge wait",
    };
    page! { span class=(class) { (word) } }
}

/// The page of `p` as HTML.
pub fn html(p: &RunPage) -> String {
    let at = |t: Millis| format_timestamp(t);
    let since = |t: Millis| format!("+{}", dur(t - p.started_at));
    let span = (p.last_at - p.started_at).max(1);
    let state = p.outcome.as_ref().map_or("running", |(w, _)| w.as_str());
    let open_gate = p.gates.iter().rev().find(|g| g.state == "waiting");
    let chart = chart::lag_chart(&p.series, &p.markers, p.started_at);
    page! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "godwit run " (p.run_id) " · " (p.cluster) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "Run " span.mono { (p.run_id) } " " (badge(state)) }
                p.muted {
                    "cluster " b { (p.cluster) } " · runbook " (p.runbook) " · world " (p.world)
                    " · started " (at(p.started_at)) " · last activity " (at(p.last_at))
                    " (" (dur(p.last_at - p.started_at)) ")"
                }
                p { "Status: " (p.status) " — " (p.whereabouts) }

                @if let Some(g) = open_gate {
                    div.callout id="waiting" {
                        b { "Waiting on gate " (g.name) } " since " (at(g.at))
                        " (" (g.polls) " polls, every " (g.every) ", timeout " (g.timeout) ")"
                        @if let Some(t) = g.last_poll_at { ", last poll " (at(t)) }
                        ". Why it is closed:"
                        ul { @for w in &g.why { li { (w) } } }
                    }
                }
                @if let Some(r) = &p.retrying {
                    div.callout id="retrying" {
                        b { "Step " (r.step) " is retrying" } ": attempt " (r.attempt) " failed: "
                        span.mono { (r.error) }
                        ". Next attempt at " (at(r.next_at)) "."
                    }
                }

                h2 { "Outcome" }
                table {
                    tr { th { "outcome" } td {
                        @if let Some((word, detail)) = &p.outcome {
                            (badge(word)) " " span.mono { (crate::render::compact(detail, 300)) }
                        } @else { (badge("running")) }
                    } }
                    tr { th { "write blackout" } td id="blackout" {
                        @match &p.blackout {
                            Blackout::None => "none: the source was never fenced",
                            Blackout::Ended { from, began, to, until } => {
                                b { (dur(to - from)) } " — " (began) " at " (at(*from)) " → " (until) " at " (at(*to))
                            }
                            Blackout::Ongoing { from, to } => {
                                b { "ongoing" } ": fenced since " (at(*from)) " (" (dur(to - from)) " at the last line)"
                            }
                        }
                        @if !p.blackout_parts.is_empty() {
                            br;
                            span.muted { @for (i, (n, ms)) in p.blackout_parts.iter().enumerate() {
                                @if i > 0 { " · " } (n) " " (dur(*ms))
                            } }
                        }
                    } }
                    @if let Some(reason) = &p.aborted {
                        tr { th { "aborted" } td { (reason) } }
                    }
                    tr { th { "rolled back" } td id="rolled-back" {
                        @if p.rolled_back.is_empty() { "nothing" }
                        @for (step, how) in &p.rolled_back { div { (step) " — " (how) } }
                    } }
                    tr { th { "journal" } td id="journal" {
                        (badge("passed")) " hash chain verified: " (p.verification.records) " records"
                        @if let Some(h) = &p.verification.head { ", head " span.mono { (&h[..h.len().min(16)]) } }
                        @if let Some(n) = p.verification.torn_tail { " · a torn last line (" (n) " bytes) from a crash; dropped on resume" }
                    } }
                }

                h2 { "Timeline" }
                table id="timeline" {
                    tr { th { "phase" } th { "from" } th { "took" } th style="width:40%" { "" } }
                    @for ph in &p.phases {
                        tr {
                            td { (ph.name) }
                            td.muted { (since(ph.from)) }
                            td { (dur(ph.to - ph.from)) }
                            td {
                                span.bar style=(format!("margin-left:{:.2}%;width:{:.2}%",
                                    (ph.from - p.started_at) as f64 * 100.0 / span as f64,
                                    (ph.to - ph.from) as f64 * 100.0 / span as f64)) {}
                            }
                        }
                    }
                }

                h2 { "Lag" }
                @match &chart {
                    Some(svg) => div id="lag-chart" { (PreEscaped(svg)) }
                    None => p.muted { "The run read no CloudWatch series (it stopped before its first gate on them)." }
                }
                @if !p.markers.is_empty() {
                    p.muted { @for (i, m) in p.markers.iter().enumerate() {
                        @if i > 0 { " · " } (m.label) " " (since(m.at))
                    } }
                }

                h2 { "Gates" }
                table id="gates" {
                    tr { th { "gate" } th { "state" } th { "polls" } th { "waited" } th { "evidence" } th { "last reasons" } }
                    @for g in &p.gates {
                        tr {
                            td { (g.name) br; span.muted { (since(g.at)) } }
                            td { (badge(g.state)) }
                            td { (g.polls) }
                            td { (g.waited.clone().unwrap_or_default()) }
                            td { (g.evidence.join(", ")) }
                            td { @for w in &g.why { div { (w) } } }
                        }
                    }
                }

                h2 { "Steps" }
                table id="steps" {
                    tr { th { "step" } th { "at" } th { "took" } th { "state" } th { "result or error" } }
                    @for s in &p.steps {
                        tr {
                            td { (s.name) }
                            td.muted { (since(s.at)) }
                            td { (s.ms.map(|ms| dur(ms as i64)).unwrap_or_default()) }
                            td { (badge(s.state)) }
                            td.mono { (s.detail) }
                        }
                    }
                }

                h2 { "Parameters" }
                pre.mono { (serde_json::to_string_pretty(&p.params).unwrap_or_default()) }
                p.muted { "Written by godwit " (env!("CARGO_PKG_VERSION")) " from the run's journal and transcript (`godwit report " (p.run_id) "`)." }
            }
        }
    }
    .into_string()
}
