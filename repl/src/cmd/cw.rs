//! `godwit cw export`: a source's CloudWatch series saved to a file a simulated scenario can
//! replay (docs/sim.md "Replaying recorded series").

use std::path::PathBuf;

use clap::Subcommand;
use godwit_engine::exit;

use crate::config::{AwsFlags, world_settings, write_settings};
use crate::context::Context;
use crate::series::{ExportRequest, export};
use crate::session::{Failure, invalid};

/// CloudWatch series of a source instance.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  godwit cw export --cluster orders-db --world aws --region eu-west-1 --out orders-db.json")]
pub struct CwArgs {
    #[command(subcommand)]
    pub command: CwCommand,
}

#[derive(Subcommand, Debug)]
pub enum CwCommand {
    Export(ExportArgs),
}

/// Save a source's CloudWatch series — WAL generation, connections, free storage, slot lag,
/// replica lag — to a JSON file (format godwit-cw-series/1) that a simulated scenario replays
/// (`[workload] recorded = "FILE"`) and a plan's prediction replays (`godwit plan --series`,
/// `godwit fleet plan --series DIR`). Read-only. CloudWatch keeps 60 s datapoints 15 days, 300 s
/// ones 63 days: a longer --since needs a longer --period. Progress on stderr, one line per
/// metric and day.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  godwit cw export --cluster orders-db --world aws --region eu-west-1 --out orders-db.json
  godwit cw export --cluster orders-db --world aws --since 14d --out incident.json
  godwit cw export --cluster orders-db --world aws --since 30d --period 300 --out month.json
  godwit cw export --cluster orders-db --world sim:busy-source --out busy.json

Exit 0 when the file was written; 2 when the cluster, the window or the world was refused, or
the window holds no TransactionLogsGeneration datapoints (the error names the metric and the
window).")]
pub struct ExportArgs {
    /// The source RDS instance id.
    #[arg(long)]
    pub cluster: String,
    /// World to read: NAME or NAME:ARG [default: the default world].
    #[arg(long)]
    pub world: Option<String>,
    /// How far back to read, ending now (a duration: 25h, 7d).
    #[arg(long, default_value = "25h")]
    pub since: String,
    /// Seconds per datapoint: 60, or a multiple of it.
    #[arg(long, default_value_t = 60)]
    pub period: i64,
    /// The file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// TOML file of world settings (`[aws]`, `[clusters.<id>.aws]`), as for `godwit run`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub aws: AwsFlags,
}

impl CwArgs {
    pub fn execute(self, ctx: &Context) -> Result<i32, Failure> {
        match self.command {
            CwCommand::Export(args) => args.execute(ctx),
        }
    }
}

impl ExportArgs {
    fn execute(self, ctx: &Context) -> Result<i32, Failure> {
        godwit_engine::run::validate_cluster(&self.cluster)?;
        let window = godwit_engine::duration::parse_duration(&self.since)
            .map_err(|e| invalid(format!("--since {}: {e}", self.since)))?;
        let spec = self
            .world
            .clone()
            .unwrap_or_else(|| ctx.worlds.default.clone());
        let world_name = spec.split(':').next().unwrap_or_default().to_string();
        ctx.worlds.check_name(&world_name).map_err(invalid)?;
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
        let world = ctx
            .worlds
            .build(&spec, Some(&state))
            .map_err(|e| invalid(format!("--world {spec}: {e}")))?;
        let req = ExportRequest {
            cluster: self.cluster.clone(),
            window_s: window.as_secs() as i64,
            period: self.period,
            region: settings
                .as_ref()
                .and_then(|s| s["region"].as_str())
                .map(str::to_string),
        };
        req.check()?;
        crate::out::note(format!(
            "reading {} s series of {} in world {} over the last {}",
            self.period, self.cluster, world.name, self.since
        ));
        let rec = export(&world, &req, crate::out::note)?;
        std::fs::write(&self.out, rec.to_json()).map_err(|e| {
            invalid(format!(
                "cannot write {}: {e}; check the directory exists and is writable",
                self.out.display()
            ))
        })?;
        let points: usize = rec.metrics.iter().map(|m| m.points.len()).sum();
        if ctx.json() {
            crate::out::json(&serde_json::json!({
                "file": self.out,
                "cluster": rec.cluster,
                "world": rec.world,
                "period": rec.period,
                "since_ms": rec.since_ms,
                "until_ms": rec.until_ms,
                "metrics": rec.metrics.iter().map(|m| serde_json::json!({
                    "name": m.name, "dimensions": m.dimensions, "statistic": m.statistic,
                    "points": m.points.len(),
                })).collect::<Vec<_>>(),
                "missing": rec.missing,
            }));
        } else {
            crate::out::line(format!(
                "wrote {}: {} series of {} ({points} datapoints, {} s periods, {} → {})",
                self.out.display(),
                rec.metrics.len(),
                rec.cluster,
                rec.period,
                godwit_engine::clock::format_timestamp(rec.since_ms),
                godwit_engine::clock::format_timestamp(rec.until_ms),
            ));
            for m in &rec.missing {
                crate::out::line(format!("  not exported: {m}"));
            }
        }
        Ok(exit::OK)
    }
}
