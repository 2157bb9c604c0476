//! `godwit serve`: the self-service HTTP API and web console (docs/serve.md). Service owners
//! read their cluster's plan, start its migration and watch it; the platform team watches the
//! fleet. Nobody needs AWS or database credentials: the service submits runs to the shared
//! store and `godwit worker` processes execute them.
//!
//! - [`auth`]: who is asking (bearer tokens, an authenticating proxy) and what they may do;
//! - this file: the routes — `/api/v1/…` (JSON) and the pages on top of the same functions.
//!
//! Every action (start, abort, approve, resume) is authorised by the cluster's owner, recorded
//! in the store's audit log with the identity (refusals too), and made of the same store calls
//! as the CLI's (`run --enqueue`, `abort`, `approve`, `fleet approve`; resume puts a held run
//! back in the queue, `PgStore::requeue_held`). Pages post forms with a
//! per-user CSRF token and a same-origin check; the JSON API takes only `application/json`,
//! which no cross-site form can send.

pub mod auth;
mod pages;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use godwit_engine::journal::Request;
use godwit_engine::plan::Plan;
use godwit_engine::transcript::Line;
use godwit_engine::{Clock, JournalStore, SystemClock};
use godwit_pgstore::{AuditEntry, PgStore, Requeue};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::fleet::{Fleet, FleetCluster};
use crate::report::RunPage;
use crate::state::Store;
use crate::worlds::Worlds;
use auth::{AuthConfig, Identity};

/// Largest request body: a start's parameters, a reason. Anything larger is refused (413).
pub const BODY_LIMIT: usize = 64 * 1024;

/// What every handler shares.
pub struct App {
    pub store: Store,
    pub auth: AuthConfig,
    pub fleet: Fleet,
    /// `--world`: the world of clusters that have none of their own.
    pub world: String,
    pub settings: Option<Value>,
    pub worlds: Worlds,
    /// Per process: the CSRF tokens of its forms are derived from it.
    pub csrf_key: String,
    /// Set when the server is asked to stop: live streams end, so the graceful shutdown is
    /// not held open by a browser tab watching a run.
    pub stopping: tokio::sync::watch::Sender<bool>,
}

impl App {
    pub(crate) fn pg(&self) -> &PgStore {
        match &self.store {
            Store::Pg(pg) => pg,
            Store::File(_) => unreachable!("serve refuses a file store at start"),
        }
    }

    fn cluster(&self, id: &str) -> Result<&FleetCluster, ApiError> {
        self.fleet
            .clusters
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "cluster {id:?} is not in fleet {} ({} clusters)",
                    self.fleet.name,
                    self.fleet.clusters.len()
                ))
            })
    }

    /// The CSRF token of `who`'s forms.
    pub fn csrf(&self, who: &Identity) -> String {
        auth::token_hash(&format!("{}:{}", self.csrf_key, who.user))
    }

    fn audit(&self, who: &Identity, action: &str, target: &str, detail: Value, outcome: &str) {
        let e = AuditEntry {
            at_ms: 0,
            identity: who.label(),
            via: who.via.to_string(),
            action: action.to_string(),
            target: target.to_string(),
            detail,
            outcome: outcome.to_string(),
        };
        // The action is done or refused already; a lost audit row is said on stderr.
        if let Err(e) = self.pg().audit(&e) {
            eprintln!("serve: cannot write the audit log: {e}");
        }
    }

    /// Run `id`'s queue row, when it has one (a queued run that no worker began yet has no
    /// journal, only this).
    pub(crate) fn queued(&self, id: &str) -> Result<Option<godwit_pgstore::QueueRow>, ApiError> {
        Ok(self
            .pg()
            .queue_rows()
            .map_err(ApiError::internal)?
            .into_iter()
            .find(|q| q.run_id == id))
    }

    fn page_of(&self, id: &str) -> Result<RunPage, ApiError> {
        let loaded = self.store.read(id).map_err(|e| match e {
            godwit_engine::journal::JournalError::NotFound { .. } => {
                ApiError::not_found(format!("no run {id:?}"))
            }
            e => ApiError::internal(e),
        })?;
        let plan = Plan::from_records(&loaded.records);
        let status = crate::state::status_text(&self.store, id, &plan);
        let lines: Vec<Line> = self
            .store
            .transcript_lines(id)
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        Ok(RunPage::build(id, &loaded, &plan, status, &lines))
    }
}

/// An answer other than 2xx: status and a message naming what was wrong (as JSON
/// `{"error": …}` on the API, as a page on pages).
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl ApiError {
    fn not_found(m: impl Into<String>) -> ApiError {
        ApiError(StatusCode::NOT_FOUND, m.into())
    }
    fn forbidden(m: impl Into<String>) -> ApiError {
        ApiError(StatusCode::FORBIDDEN, m.into())
    }
    fn internal(e: impl std::fmt::Display) -> ApiError {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

type Shared = Arc<App>;

/// Who sent `headers` from `peer`, or 401.
fn who(app: &App, headers: &HeaderMap, peer: SocketAddr) -> Result<Identity, ApiError> {
    app.auth
        .authenticate(headers, peer.ip())
        .map_err(|e| ApiError(StatusCode::UNAUTHORIZED, e))
}

/// The caller, authenticated (a handler taking it answers 401 to anyone else; a page takes
/// `Result<Me, ApiError>` to answer with a page instead).
pub struct Me(pub Identity);

impl axum::extract::FromRequestParts<Shared> for Me {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &Shared,
    ) -> Result<Me, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0)
            .ok_or_else(|| ApiError::internal("no peer address (served without connect info)"))?;
        who(app, &parts.headers, peer).map(Me)
    }
}

/// Run blocking store work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("the request's work panicked: {e}")))?
}

/// The routes.
pub fn router(app: Shared) -> Router {
    Router::new()
        .route("/api/v1/me", get(me))
        .route("/api/v1/clusters", get(clusters))
        .route("/api/v1/clusters/{id}", get(cluster))
        .route("/api/v1/clusters/{id}/plan", get(cluster_plan))
        .route("/api/v1/clusters/{id}/runs", post(start_api))
        .route("/api/v1/runs/{id}", get(run_json))
        .route("/api/v1/runs/{id}/report", get(run_report))
        .route("/api/v1/runs/{id}/{action}", post(action_api))
        .route("/api/v1/fleets", get(fleets))
        .route("/api/v1/fleets/{name}", get(fleet))
        .route(
            "/api/v1/fleets/{name}/waves/{wave}/approve",
            post(approve_wave_api),
        )
        .route("/api/v1/audit", get(audit_log))
        .merge(pages::routes())
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(app)
}

async fn me(Me(me): Me) -> Json<Identity> {
    Json(me)
}

/// Every cluster's newest run, by cluster, in one query (the fleet view must stay fast at 400).
fn latest_runs(
    app: &App,
) -> Result<std::collections::HashMap<String, godwit_pgstore::LatestRun>, ApiError> {
    Ok(app
        .pg()
        .latest_runs()
        .map_err(ApiError::internal)?
        .into_iter()
        .map(|r| (r.cluster.clone(), r))
        .collect())
}

/// One cluster's line of the fleet view.
fn cluster_row(
    app: &App,
    c: &FleetCluster,
    latest: &std::collections::HashMap<String, godwit_pgstore::LatestRun>,
    me: &Identity,
) -> Value {
    json!({
        "cluster": c.id,
        "owner": c.owner,
        "group": c.group,
        "wave": c.wave,
        "runbook": c.runbook,
        "world": c.world.clone().unwrap_or_else(|| app.world.clone()),
        "latest_run": latest.get(&c.id).map(|r| json!({
            "run_id": r.run_id, "status": r.status, "driven_by": r.driven_by, "where": r.last,
        })),
        "may_act": me.may_act_on(&c.owner),
    })
}

async fn clusters(State(app): State<Shared>, Me(me): Me) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let latest = latest_runs(&app)?;
        Ok(Json(Value::Array(
            app.fleet
                .clusters
                .iter()
                .map(|c| cluster_row(&app, c, &latest, &me))
                .collect(),
        )))
    })
    .await
}

async fn cluster(
    State(app): State<Shared>,
    Me(me): Me,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let c = app.cluster(&id)?;
        let ids = app.store.list().map_err(ApiError::internal)?;
        let mut row = cluster_row(&app, c, &latest_runs(&app)?, &me);
        let suffix = format!("-{id}");
        row["runs"] = json!(
            ids.iter()
                .filter(|r| r.ends_with(&suffix))
                .collect::<Vec<_>>()
        );
        row["params"] = Value::Object(c.params.clone());
        Ok(Json(row))
    })
    .await
}

/// The cluster's plan (`godwit plan`, read-only): preflight with fixes, the prediction.
fn plan_of(
    app: &App,
    id: &str,
    params: Map<String, Value>,
) -> Result<crate::plan::ClusterPlan, ApiError> {
    let c = app.cluster(id)?;
    let scratch = tempfile::tempdir().map_err(ApiError::internal)?;
    let state = scratch.path().join("world.json");
    if let Some(v) = &app.settings {
        crate::config::write_settings(&state, v).map_err(|f| ApiError::internal(f.1))?;
    }
    crate::plan::plan_cluster(
        &app.worlds,
        &crate::plan::PlanRequest {
            runbook: c.runbook_path.clone(),
            cluster: c.id.clone(),
            world: c.world.clone().unwrap_or_else(|| app.world.clone()),
            params,
            state: Some(state),
            scenario: c.scenario.clone(),
            series: None,
        },
    )
    .map_err(|f| ApiError(StatusCode::UNPROCESSABLE_ENTITY, f.1))
}

async fn cluster_plan(
    State(app): State<Shared>,
    _: Me,
    Path(id): Path<String>,
) -> Result<Json<crate::plan::ClusterPlan>, ApiError> {
    blocking(move || {
        let params = app.cluster(&id)?.params.clone();
        plan_of(&app, &id, params).map(Json)
    })
    .await
}

/// `POST /api/v1/clusters/{id}/runs`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    /// Runbook parameters over the fleet file's, checked against the runbook.
    #[serde(default)]
    pub params: Map<String, Value>,
}

/// Start `id`'s migration for `me`: authorised by ownership, parameters checked, refused while
/// the preflight fails, queued for a worker; audited either way. Returns the run id.
pub fn start(
    app: &App,
    me: &Identity,
    id: &str,
    overrides: Map<String, Value>,
) -> Result<String, ApiError> {
    let c = app.cluster(id)?;
    let detail = json!({ "params": overrides });
    let refuse = |e: ApiError| {
        app.audit(
            me,
            "start",
            id,
            detail.clone(),
            &format!("refused: {}", e.1),
        );
        e
    };
    if !me.may_act_on(&c.owner) {
        return Err(refuse(ApiError::forbidden(format!(
            "{} may not start {id}: it belongs to team {}; ask a member of {} or a platform admin",
            me.label(),
            c.owner,
            c.owner
        ))));
    }
    let params = app
        .fleet
        .cluster_params(&app.worlds, id, &overrides)
        .map_err(|e| {
            refuse(ApiError(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("params: {e}"),
            ))
        })?;
    let plan = plan_of(app, id, params.clone()).map_err(&refuse)?;
    if !plan.preflight.passed {
        let failed: Vec<String> = plan
            .preflight
            .checks
            .iter()
            .filter(|c| c["pass"].as_bool() == Some(false))
            .map(|c| {
                format!(
                    "{}: {} — {}",
                    c["name"].as_str().unwrap_or_default(),
                    c["why"].as_str().unwrap_or_default(),
                    c["fix"].as_str().unwrap_or_default()
                )
            })
            .chain(plan.preflight.problem.clone())
            .collect();
        return Err(refuse(ApiError(
            StatusCode::CONFLICT,
            format!(
                "the preflight of {id} fails; fix it first:\n{}",
                failed.join("\n")
            ),
        )));
    }
    let run_id = godwit_engine::run::new_run_id(id);
    let job = godwit_pgstore::Job {
        run_id: run_id.clone(),
        cluster: id.to_string(),
        runbook: crate::fleet::run::runbook_for_job(&app.fleet, c),
        world: c.world.clone().unwrap_or_else(|| app.world.clone()),
        params,
        settings: if c.world.is_some() {
            None
        } else {
            app.settings.clone()
        },
        notify: crate::notify::targets_for(&app.fleet.notify, Some(&c.owner)),
        owner: Some(c.owner.clone()),
        fleet: Some(app.fleet.name.clone()),
    };
    app.pg()
        .enqueue(&job)
        .map_err(|e| refuse(ApiError::internal(e)))?;
    app.audit(
        me,
        "start",
        id,
        json!({ "params": overrides, "run_id": run_id }),
        "done",
    );
    Ok(run_id)
}

async fn start_api(
    State(app): State<Shared>,
    Me(me): Me,
    Path(id): Path<String>,
    body: Result<Json<StartBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(body) = body.map_err(|e| ApiError(e.status(), format!("body: {}", e.body_text())))?;
    blocking(move || {
        let run_id = start(&app, &me, &id, body.params)?;
        Ok((
            StatusCode::CREATED,
            Json(json!({ "run_id": run_id, "queued": true, "page": format!("/runs/{run_id}") })),
        ))
    })
    .await
}

async fn run_json(
    State(app): State<Shared>,
    _: Me,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let p = app.page_of(&id)?;
        Ok(Json(p.to_json()))
    })
    .await
}

async fn run_report(
    State(app): State<Shared>,
    _: Me,
    Path(id): Path<String>,
) -> Result<Html<String>, ApiError> {
    blocking(move || Ok(Html(crate::report::html(&app.page_of(&id)?)))).await
}

/// `POST /api/v1/runs/{id}/abort` and `…/approve`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    /// Why (abort).
    pub reason: Option<String>,
    /// The approval's name (approve; default `cutover`).
    pub name: Option<String>,
}

/// Record an operator's request on run `id` for `me`, authorised by its cluster's owner.
pub fn request(
    app: &App,
    me: &Identity,
    id: &str,
    action: &str,
    body: ActionBody,
) -> Result<Value, ApiError> {
    let (cluster, finished, unstarted) = match app.page_of(id) {
        Ok(page) => (
            page.cluster.clone(),
            page.outcome.map(|(word, _)| word),
            false,
        ),
        // Queued, or held before it began (its worker could not build its world or find its
        // runbook): only the queue knows it.
        Err(e) if e.0 == StatusCode::NOT_FOUND && action != "approve" => {
            (app.queued(id)?.ok_or(e)?.cluster, None, true)
        }
        Err(e) => return Err(e),
    };
    let owner = app
        .cluster(&cluster)
        .map(|c| c.owner.clone())
        .map_err(|_| {
            ApiError::forbidden(format!(
                "run {id} is of cluster {cluster}, which is not in this fleet"
            ))
        })?;
    let detail = json!({ "reason": body.reason, "name": body.name });
    if !me.may_act_on(&owner) {
        let m = format!(
            "{} may not {action} run {id}: cluster {cluster} belongs to team {owner}",
            me.label(),
        );
        app.audit(me, action, id, detail, &format!("refused: {m}"));
        return Err(ApiError::forbidden(m));
    }
    if let Some(word) = &finished {
        let m = format!("run {id} already {word}: nothing to {action}");
        app.audit(me, action, id, detail, &format!("refused: {m}"));
        return Err(ApiError(StatusCode::CONFLICT, m));
    }
    let at = SystemClock.now_ms();
    let by = me.label();
    if action == "abort" && unstarted {
        let note = format!(
            "aborted by {by} before it began: {}",
            body.reason.as_deref().unwrap_or("from godwit serve")
        );
        return match app.pg().abort_unstarted(id, &note) {
            Ok(Requeue::Done) => {
                app.audit(me, action, id, detail, "done");
                Ok(
                    json!({ "run_id": id, "abort": "done", "note": "it never began: nothing to roll back" }),
                )
            }
            Ok(other) => Err(refuse_requeue(app, me, id, action, detail, other)),
            Err(e) => Err(ApiError::internal(e)),
        };
    }
    if action == "resume" {
        let note = format!("resumed by {by} from godwit serve");
        return match app.pg().requeue_held(id, &note) {
            Ok(Requeue::Done) => {
                app.audit(me, action, id, detail, "done");
                Ok(json!({
                    "run_id": id,
                    "resume": "queued",
                    "note": "a worker resumes the run from its journal",
                }))
            }
            Ok(other) => Err(refuse_requeue(app, me, id, action, detail, other)),
            Err(e) => Err(ApiError::internal(e)),
        };
    }
    let req = match action {
        "abort" => Request::Abort {
            reason: body
                .reason
                .clone()
                .unwrap_or_else(|| "aborted from godwit serve".into()),
            by,
            at,
        },
        _ => Request::Approve {
            name: body.name.clone().unwrap_or_else(|| "cutover".into()),
            by,
            at,
        },
    };
    app.store.request(id, &req).map_err(ApiError::internal)?;
    // A held run has no worker to meet the abort: back to the queue, where one resumes it and
    // rolls it back.
    // (A fleet's member is left to its fleet: `fleet abort` reaches it.)
    if action == "abort" {
        app.pg()
            .requeue_held(id, &format!("requeued to abort by {}", me.label()))
            .map_err(ApiError::internal)?;
    }
    app.audit(me, action, id, detail, "done");
    Ok(json!({
        "run_id": id,
        action: "requested",
        "driven_by": app.store.holder(id),
        "note": "the process driving the run acts at its next safe point; one that no worker drives yet acts when a worker takes it",
    }))
}

/// The 409 of a resume or an abort-before-start the queue did not take, audited.
fn refuse_requeue(
    app: &App,
    me: &Identity,
    id: &str,
    action: &str,
    detail: Value,
    how: Requeue,
) -> ApiError {
    let m = match how {
        Requeue::FleetMember(at) => format!(
            "run {id} is a member of fleet wave {at}: its wave counted it, so the fleet decides \
             (`godwit fleet resume` / `godwit fleet abort`, or `godwit {action} {id}` on a \
             worker's machine)"
        ),
        _ if action == "resume" => format!(
            "run {id} is not held: only a run that stopped for a person is resumed (a queued or \
             running one goes on by itself)"
        ),
        _ => format!("run {id} is being started by a worker: abort it again in a moment"),
    };
    app.audit(me, action, id, detail, &format!("refused: {m}"));
    ApiError(StatusCode::CONFLICT, m)
}

/// `POST /api/v1/runs/{id}/abort`, `…/approve` and `…/resume`: one handler, the action from
/// the path.
async fn action_api(
    State(app): State<Shared>,
    Me(me): Me,
    Path((id, action)): Path<(String, String)>,
    body: Result<Json<ActionBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    if !matches!(action.as_str(), "abort" | "approve" | "resume") {
        return Err(ApiError::not_found(format!(
            "no action {action:?} on a run: abort, approve or resume"
        )));
    }
    let Json(body) = body.map_err(|e| ApiError(e.status(), format!("body: {}", e.body_text())))?;
    blocking(move || request(&app, &me, &id, &action, body).map(Json)).await
}

async fn fleets(State(app): State<Shared>, _: Me) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let f = app.pg().fleets().map_err(ApiError::internal)?;
        Ok(Json(json!(
            f.iter()
                .map(|(n, s)| json!({ "fleet": n, "state": s }))
                .collect::<Vec<_>>()
        )))
    })
    .await
}

async fn fleet(
    State(app): State<Shared>,
    _: Me,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let st = app
            .pg()
            .fleet_status(&name)
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::not_found(format!("no fleet {name:?} in the store")))?;
        Ok(Json(serde_json::to_value(st).map_err(ApiError::internal)?))
    })
    .await
}

async fn approve_wave_api(
    State(app): State<Shared>,
    Me(me): Me,
    Path((name, wave)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let target = format!("{name}/{wave}");
        if !me.admin {
            let m = format!(
                "{} may not approve wave {wave}: a wave spans teams; a platform admin approves it",
                me.label()
            );
            app.audit(
                &me,
                "approve-wave",
                &target,
                json!({}),
                &format!("refused: {m}"),
            );
            return Err(ApiError::forbidden(m));
        }
        match app.pg().approve_wave(&name, &wave, &me.label()) {
            Ok(()) => {
                app.audit(&me, "approve-wave", &target, json!({}), "done");
                Ok(Json(
                    json!({ "fleet": name, "wave": wave, "approved_by": me.label() }),
                ))
            }
            Err(e) => {
                app.audit(
                    &me,
                    "approve-wave",
                    &target,
                    json!({}),
                    &format!("refused: {e}"),
                );
                Err(ApiError(StatusCode::CONFLICT, e.to_string()))
            }
        }
    })
    .await
}

async fn audit_log(State(app): State<Shared>, Me(me): Me) -> Result<Json<Value>, ApiError> {
    if !me.admin {
        return Err(ApiError::forbidden("the audit log is for platform admins"));
    }
    blocking(move || {
        let log = app.pg().audit_log(None, 500).map_err(ApiError::internal)?;
        Ok(Json(serde_json::to_value(log).map_err(ApiError::internal)?))
    })
    .await
}

/// Serve `app` on `listen` until Ctrl-C or SIGTERM; `ready` is told the bound address.
pub async fn serve(
    app: App,
    listen: SocketAddr,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), String> {
    if !is_loopback(listen.ip()) {
        return Err(format!(
            "--listen {listen}: godwit serve binds loopback only (TLS is not built in): put it behind \
             the authenticating proxy on this machine and listen on 127.0.0.1"
        ));
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("--listen {listen}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot watch for SIGTERM: {e}"))?;
    ready(bound);
    let app = Arc::new(app);
    let stop = app.clone();
    axum::serve(
        listener,
        router(app).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        stop.stopping.send_replace(true);
    })
    .await
    .map_err(|e| e.to_string())
}

fn is_loopback(ip: IpAddr) -> bool {
    ip.is_loopback()
}

/// How often a live page asks the store for new transcript lines.
pub const LIVE_EVERY: Duration = Duration::from_secs(1);
