//! `godwit plan`: preflight and a simulated prediction for one cluster, changing nothing.

use std::path::PathBuf;

use godwit_engine::exit;

use crate::config::{
    AwsFlags, find_runbook, load_config, parse_sets, world_settings, write_settings,
};
use crate::context::Context;
use crate::out::{BAD, DIM, OK, styled};
use crate::plan::{ClusterPlan, PlanRequest, plan_cluster};
use crate::session::{Failure, invalid};

/// Plan a migration without changing anything: run the runbook's preflight against the
/// cluster in its world (stopping before the first call that would change it), then predict the
/// whole migration in the simulator, calibrated with what the preflight saw. Exit 0 when it
/// would go through, 10 when the preflight or the prediction found a problem.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  godwit plan rds-to-aurora --cluster orders-db --world aws --region eu-west-1
  godwit plan rds-to-aurora --cluster orders-db --world sim:preflight-failures
  godwit plan rds-to-aurora --cluster orders-db --world aws --series orders-db.json
  godwit plan rds-to-aurora --cluster orders-db -o json | jq .preflight.checks")]
pub struct PlanArgs {
    /// A runbook file, or the name of one in ./runbooks.
    pub runbook: String,
    /// The cluster (source RDS instance id).
    #[arg(long)]
    pub cluster: String,
    /// World the preflight reads: NAME or NAME:ARG [default: sim].
    #[arg(long)]
    pub world: Option<String>,
    /// Runbook parameter, as for `godwit run` (checked the same way).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// TOML file of runbook parameters and world settings, as for `godwit run`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A recorded-series file (`godwit cw export`) the prediction replays instead of a curve
    /// fitted to the last day's figures.
    #[arg(long, value_name = "FILE")]
    pub series: Option<PathBuf>,
    #[command(flatten)]
    pub aws: AwsFlags,
}

impl PlanArgs {
    pub fn execute(self, ctx: &Context) -> Result<i32, Failure> {
        godwit_engine::run::validate_cluster(&self.cluster)?;
        let runbook = find_runbook(&self.runbook)?;
        let spec = self
            .world
            .clone()
            .unwrap_or_else(|| ctx.worlds.default.clone());
        let world_name = spec.split(':').next().unwrap_or_default().to_string();
        ctx.worlds.check_name(&world_name).map_err(invalid)?;
        let mut params = match &self.config {
            Some(file) => load_config(file, &self.cluster)?,
            None => serde_json::Map::new(),
        };
        params.extend(parse_sets(&self.set)?);
        let settings = world_settings(
            self.config.as_deref(),
            &self.cluster,
            &world_name,
            &self.aws,
        )?;
        // World settings reach the factory through a scratch file, never the state directory.
        let scratch = tempfile::tempdir().map_err(|e| {
            Failure(
                exit::INTERNAL,
                format!("cannot make a temporary directory: {e}"),
            )
        })?;
        let state = scratch.path().join("world.json");
        if let Some(v) = &settings {
            write_settings(&state, v)?;
        }
        let plan = plan_cluster(
            &ctx.worlds,
            &PlanRequest {
                runbook,
                cluster: self.cluster.clone(),
                world: spec,
                params,
                state: Some(state),
                scenario: None,
                series: self.series.clone(),
            },
        )?;
        let code = if plan.ready() {
            exit::OK
        } else {
            exit::CHECK_FAILED
        };
        if ctx.json() {
            crate::out::json(&plan);
        } else {
            crate::out::line(render(&plan));
        }
        Ok(code)
    }
}

fn dur(ms: i64) -> String {
    godwit_engine::duration::format_duration(std::time::Duration::from_millis(ms.max(0) as u64))
}

fn render(p: &ClusterPlan) -> String {
    let mut out = vec![format!(
        "plan · runbook {} · cluster {} · world {} (read-only: nothing was changed or recorded)",
        p.runbook, p.cluster, p.world
    )];
    let pre = &p.preflight;
    let failed = pre
        .checks
        .iter()
        .filter(|c| c["pass"].as_bool() == Some(false))
        .count();
    out.push(format!(
        "\npreflight: {} checks, {}",
        pre.checks.len(),
        if failed == 0 {
            styled(OK, "all passed")
        } else {
            styled(BAD, format!("{failed} failed"))
        }
    ));
    // The names in one column, however long the runbook's check names are.
    let width = pre
        .checks
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().chars().count())
        .max()
        .unwrap_or(0);
    for c in &pre.checks {
        let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
        if c["pass"].as_bool() == Some(false) {
            out.push(format!(
                "  {} {:<width$} {} — {}",
                styled(BAD, "✗"),
                s("name"),
                s("why"),
                s("fix")
            ));
        } else {
            out.push(format!(
                "  {} {:<width$} {}",
                styled(OK, "✓"),
                s("name"),
                s("why")
            ));
        }
    }
    if let Some(problem) = &pre.problem {
        out.push(format!("  {}", styled(BAD, problem)));
    }
    if let Some(stop) = &pre.stops_before {
        out.push(styled(
            DIM,
            format!("  the run would begin changing the world at {stop}"),
        ));
    }
    out.push(format!(
        "\nsizing: {} — {}",
        match p.sizing.verdict.as_str() {
            "fits" => styled(OK, "fits"),
            "undersized" => styled(BAD, "undersized"),
            other => styled(DIM, other),
        },
        p.sizing.why
    ));
    out.push(format!(
        "logical path: {}",
        if p.logical.eligible() {
            styled(OK, p.logical.summary())
        } else {
            styled(DIM, p.logical.summary())
        }
    ));
    let pr = &p.prediction;
    out.push(format!(
        "\nprediction (simulated, scenario {}{}):",
        pr.scenario,
        if pr.calibrated.is_empty() {
            String::new()
        } else {
            format!(", with the source's {}", pr.calibrated.join(", "))
        }
    ));
    out.push(format!(
        "  outcome {} after {} of virtual time; {}",
        if pr.outcome == "succeeded" {
            styled(OK, &pr.outcome)
        } else {
            styled(BAD, &pr.outcome)
        },
        dur(pr.virtual_ms),
        match &pr.write_blackout {
            crate::demo::Blackout::None => "no write blackout".to_string(),
            crate::demo::Blackout::Ended {
                from, to, until, ..
            } => format!("write blackout ≈ {} (until {until})", dur(to - from)),
            crate::demo::Blackout::Ongoing { from, to } =>
                format!("the source would stay FENCED ({} so far)", dur(to - from)),
        }
    ));
    for (name, at, took) in &pr.phases {
        out.push(format!(
            "  {name:<38} at +{:<10} takes {}",
            dur(*at),
            dur(*took)
        ));
    }
    // Which path, physical or logical, with the logical path's figures (docs/logical.md).
    let paths = &p.paths;
    out.push(format!(
        "\npath: {} — {}",
        styled(OK, &paths.recommended),
        paths.why
    ));
    if let Some(l) = &paths.logical {
        out.push(format!(
            "  logical path (simulated): {} after {}; write blackout {}",
            l.outcome,
            dur(l.virtual_ms),
            l.blackout_ms().map_or("-".into(), dur)
        ));
    }
    // What the run would prove before the flip (docs/validate.md), or that it would not.
    let a = &pr.assurance;
    out.push("\nbefore the flip (simulated):".into());
    for (what, said, off) in [
        (
            "audit",
            &a.audit,
            "not run (audit_rows = 0, or no database access)",
        ),
        (
            "query check",
            &a.query_check,
            "not run (query_check = off, no database access or no pg_stat_statements)",
        ),
        ("shadow reads", &a.shadow_reads, "off (read_route)"),
    ] {
        out.push(match said {
            Some(s) => format!("  {} {what:<12} {s}", styled(OK, "✓")),
            None => format!("  {} {what:<12} {}", styled(DIM, "-"), styled(DIM, off)),
        });
    }
    out.join("\n")
}
