//! `godwit serve`: the HTTP API and web console (repl/src/serve, docs/serve.md).

use std::net::SocketAddr;
use std::path::PathBuf;

use godwit_engine::exit;

use crate::cmd::fleet::{FleetSourceArgs, load_fleet};
use crate::context::Context;
use crate::serve::auth::{AuthConfig, new_token, token_hash};
use crate::serve::{App, serve};
use crate::session::{Failure, invalid, runtime};
use crate::state::Store;

/// Serve the self-service API and web console: service owners read their cluster's plan,
/// start its migration and watch it; the platform team watches the fleet and approves waves.
/// Runs are queued in the shared store for `godwit worker` processes: the service needs no
/// AWS or database credentials of anyone. Who may do what comes from `--auth` (tokens, an
/// authenticating proxy; docs/serve.md); every action is in the store's audit log.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  godwit serve --store postgres://godwit@db/godwit --fleet fleet.toml --world aws --auth auth.toml
  godwit serve --store postgres://godwit@db/godwit --world sim --auth auth.toml --listen 127.0.0.1:8080
  godwit serve --new-token alice:orders,payments      a token and its [[tokens]] entry

Binds loopback only: put the authenticating proxy (and its TLS) in front.")]
pub struct ServeArgs {
    /// Address to listen on (loopback).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Who may do what: tokens and/or the authenticating proxy (TOML, docs/serve.md).
    #[arg(long, value_name = "FILE", required_unless_present = "new_token")]
    pub auth: Option<PathBuf>,
    /// Print a new token for USER (member of TEAMs) and its [[tokens]] entry, then exit.
    #[arg(long, value_name = "USER:TEAM[,TEAM]")]
    pub new_token: Option<String>,
    #[command(flatten)]
    pub fleet: FleetSourceArgs,
}

impl ServeArgs {
    pub fn execute(self, ctx: &Context) -> Result<i32, Failure> {
        if let Some(spec) = &self.new_token {
            let (user, teams) = spec.split_once(':').unwrap_or((spec, ""));
            if user.trim().is_empty() {
                return Err(invalid("--new-token USER:TEAM[,TEAM]: the user is empty"));
            }
            let token = new_token().map_err(|e| Failure(exit::INTERNAL, e))?;
            let teams: Vec<String> = teams
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| format!("{t:?}"))
                .collect();
            crate::out::line(format!(
                "token (give it to {user}; it is not stored anywhere): {token}\n\nadd to the --auth file:\n[[tokens]]\nsha256 = \"{}\"\nuser = {user:?}\nteams = [{}]",
                token_hash(&token),
                teams.join(", ")
            ));
            return Ok(exit::OK);
        }
        let auth_file = self.auth.as_ref().expect("clap requires --auth");
        let auth = AuthConfig::load(auth_file).map_err(invalid)?;
        let store = ctx.store()?;
        if matches!(store, Store::File(_)) {
            return Err(invalid(
                "godwit serve queues runs for `godwit worker` processes through the shared store: \
                 pass --store postgres://USER@HOST:PORT/DB (or GODWIT_STORE, or store.url in the \
                 settings file)",
            ));
        }
        let (world, fleet, settings) = load_fleet(ctx, &self.fleet, "served")?;
        let app = App {
            store,
            auth,
            fleet,
            world,
            settings,
            worlds: ctx.worlds.clone(),
            csrf_key: new_token().map_err(|e| Failure(exit::INTERNAL, e))?,
            stopping: Default::default(),
        };
        let rt = runtime()?;
        let clusters = app.fleet.clusters.len();
        let name = app.fleet.name.clone();
        rt.block_on(serve(app, self.listen, |at| {
            // The first line says where: a test or a supervisor reads the port from it.
            eprintln!(
                "godwit serve: listening on http://{at} · fleet {name} ({clusters} clusters)"
            );
        }))
        .map_err(invalid)?;
        Ok(exit::OK)
    }
}
