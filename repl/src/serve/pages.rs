//! The console's pages, on the same functions as the API: the fleet (every cluster, filtered by
//! owner and state), a cluster's wizard (its plan, its parameters, start), a run (the report's
//! page, kept current from a server-sent event stream without reloading).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Form;
use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{ApiError, App, LIVE_EVERY, Me, blocking, cluster_row, plan_of, start, who};

type Shared = Arc<App>;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/", get(fleet_page))
        .route("/clusters/{id}", get(cluster_page))
        .route("/clusters/{id}/start", axum::routing::post(start_form))
        .route("/runs/{id}", get(run_page))
        .route("/api/v1/runs/{id}/events", get(run_events))
        .route("/login", get(login_page).post(login))
}

/// Signing in with a token in a browser: the token goes in an HttpOnly, SameSite=Strict
/// cookie (no script reads it; no other site's page sends it).
async fn login_page() -> Html<String> {
    Html(layout(
        "godwit · sign in",
        html! {
            h1 { "Sign in" }
            p.muted { "With the token your platform team gave you (behind the company's proxy you are signed in already)." }
            form method="post" action="/login" id="login" {
                input type="password" name="token" id="token" autocomplete="off" placeholder="token";
                " " button type="submit" id="sign-in" { "sign in" }
            }
        },
    ))
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(app): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return error_page(ApiError(
            StatusCode::BAD_REQUEST,
            "the form needs a token".into(),
        ));
    };
    let mut h = HeaderMap::new();
    if let Ok(v) = format!("Bearer {}", form.token.trim()).parse() {
        h.insert(header::AUTHORIZATION, v);
    }
    if let Err(e) = who(&app, &h, peer) {
        return error_page(e);
    }
    let cookie = format!(
        "{}={}; HttpOnly; SameSite=Strict; Path=/",
        super::auth::SESSION_COOKIE,
        form.token.trim()
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

/// An error as a page (the API answers JSON; a person gets words).
fn error_page(e: ApiError) -> Response {
    let body = layout(
        "godwit: error",
        html! {
            h1 { (e.0.as_u16()) " " (e.0.canonical_reason().unwrap_or_default()) }
            pre { (e.1) }
            p { a href="/" { "back to the fleet" } }
        },
    );
    (e.0, Html(body)).into_response()
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#1b1b1b}
table{border-collapse:collapse;width:100%;font-size:.9rem} td,th{padding:.3rem .5rem;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{background:#f6f6f6} .muted{color:#666} .ok{color:#14532d} .bad{color:#7f1d1d} form.inline{display:inline}
button{font-size:1rem;padding:.4rem 1rem} nav{margin-bottom:1rem} pre{white-space:pre-wrap}";

fn layout(title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { (title) } style { (PreEscaped(STYLE)) } }
            body {
                nav { a href="/" { "fleet" } }
                (body)
            }
        }
    }
    .into_string()
}

#[derive(Debug, Deserialize)]
struct FleetQuery {
    owner: Option<String>,
    state: Option<String>,
}

async fn fleet_page(
    State(app): State<Shared>,
    me: Result<Me, ApiError>,
    Query(q): Query<FleetQuery>,
) -> Response {
    let Me(me) = match me {
        Ok(m) => m,
        Err(e) => return error_page(e),
    };
    let result = blocking(move || {
        let latest = super::latest_runs(&app)?;
        let rows: Vec<Value> = app
            .fleet
            .clusters
            .iter()
            .filter(|c| q.owner.as_deref().is_none_or(|o| o.is_empty() || c.owner == o))
            .map(|c| cluster_row(&app, c, &latest, &me))
            .filter(|r| {
                let state = r["latest_run"]["status"].as_str().unwrap_or("not started");
                q.state.as_deref().is_none_or(|s| s.is_empty() || s == state)
            })
            .collect();
        let mut owners: Vec<&str> = app.fleet.clusters.iter().map(|c| c.owner.as_str()).collect();
        owners.sort_unstable();
        owners.dedup();
        Ok(layout(
            &format!("godwit · fleet {}", app.fleet.name),
            html! {
                h1 { "Fleet " (app.fleet.name) }
                p.muted { (app.fleet.clusters.len()) " clusters · signed in as " (me.label()) @if me.admin { " (platform admin)" } }
                form method="get" {
                    "owner " select name="owner" {
                        option value="" { "all" }
                        @for o in &owners { option value=(o) selected[q.owner.as_deref() == Some(*o)] { (o) } }
                    }
                    " state " input name="state" value=(q.state.clone().unwrap_or_default()) placeholder="e.g. running";
                    " " button type="submit" { "filter" }
                }
                table id="clusters" {
                    tr { th { "cluster" } th { "owner" } th { "wave" } th { "latest run" } th { "where" } }
                    @for r in &rows {
                        tr {
                            td { a href=(format!("/clusters/{}", r["cluster"].as_str().unwrap_or_default())) { (r["cluster"].as_str().unwrap_or_default()) } }
                            td { (r["owner"].as_str().unwrap_or_default()) }
                            td { (r["wave"].as_str().unwrap_or("")) }
                            td {
                                @match r["latest_run"]["run_id"].as_str() {
                                    Some(id) => a href=(format!("/runs/{id}")) { (r["latest_run"]["status"].as_str().unwrap_or_default()) },
                                    None => span.muted { "not started" },
                                }
                            }
                            td.muted { (r["latest_run"]["where"].as_str().unwrap_or("")) }
                        }
                    }
                }
            },
        ))
    })
    .await;
    match result {
        Ok(body) => Html(body).into_response(),
        Err(e) => error_page(e),
    }
}

async fn cluster_page(
    State(app): State<Shared>,
    me: Result<Me, ApiError>,
    Path(id): Path<String>,
) -> Response {
    let Me(me) = match me {
        Ok(m) => m,
        Err(e) => return error_page(e),
    };
    let result = blocking(move || {
        let c = app.cluster(&id)?;
        let plan = plan_of(&app, &id, c.params.clone())?;
        let may = me.may_act_on(&c.owner);
        let pr = &plan.prediction;
        let dur = |ms: i64| godwit_engine::duration::format_duration(std::time::Duration::from_millis(ms.max(0) as u64));
        Ok(layout(
            &format!("godwit · {id}"),
            html! {
                h1 { "Cluster " (id) }
                p.muted { "owner " (c.owner) " · runbook " (plan.runbook) " · world " (plan.world) }
                h2 { "Preflight" }
                table id="preflight" {
                    tr { th { "check" } th { "" } th { "why" } th { "fix" } }
                    @for ch in &plan.preflight.checks {
                        @let pass = ch["pass"].as_bool() != Some(false);
                        tr {
                            td { (ch["name"].as_str().unwrap_or_default()) }
                            td class=(if pass { "ok" } else { "bad" }) { (if pass { "pass" } else { "FAIL" }) }
                            td { (ch["why"].as_str().unwrap_or_default()) }
                            td { (ch["fix"].as_str().unwrap_or_default()) }
                        }
                    }
                }
                @if let Some(p) = &plan.preflight.problem { p.bad { (p) } }
                h2 { "Prediction" }
                table id="prediction" {
                    tr { th { "outcome" } td { (pr.outcome) } }
                    tr { th { "write blackout" } td { (pr.blackout_ms().map(dur).unwrap_or_else(|| "none".into())) } }
                    tr { th { "replica build" } td { (pr.phase_took("replica").map(dur).unwrap_or_default()) } }
                    tr { th { "validation ends" } td { (pr.phase_end("validation under production traffic").map(|t| format!("+{}", dur(t))).unwrap_or_default()) } }
                    tr { th { "whole migration" } td { (dur(pr.virtual_ms)) } }
                    tr id="sizing" {
                        th { "target size" }
                        td class=(if plan.sizing.verdict == "undersized" { "bad" } else { "" }) {
                            b { (plan.sizing.verdict) } " — " (plan.sizing.why)
                        }
                    }
                }
                p id="logical" { "Logical path: " (plan.logical.summary()) }
                h2 { "Before the flip" }
                p.muted { "What the predicted run proves while the replica replicates (docs/validate.md); \"not run\": off, or no database access." }
                table id="assurance" {
                    @for (what, said) in [("audit", &pr.assurance.audit), ("query check", &pr.assurance.query_check), ("shadow reads", &pr.assurance.shadow_reads)] {
                        tr {
                            th { (what) }
                            @match said {
                                Some(s) => td class="ok" { (s) },
                                None => td.muted { "not run" },
                            }
                        }
                    }
                }
                details { summary { "measured and assumed" }
                    ul { @for m in &pr.calibrated { li { "measured: " (m) } } @for a in &pr.assumptions { li { "assumed: " (a) } } }
                }
                h2 { "Parameters" }
                p.muted { "From the fleet file; the runbook's defaults fill the rest (docs/rds-to-aurora.md)." }
                pre id="params" { (serde_json::to_string_pretty(&c.params).unwrap_or_default()) }
                @if !may {
                    p id="not-yours" { "Only team " b { (c.owner) } " or a platform admin can start this migration." }
                } @else if !plan.preflight.passed {
                    p id="blocked" class="bad" { "Fix the failed checks above to start." }
                } @else {
                    form method="post" action=(format!("/clusters/{id}/start")) id="start" {
                        input type="hidden" name="csrf" value=(app.csrf(&me));
                        button type="submit" { "Start the migration" }
                    }
                }
            },
        ))
    })
    .await;
    match result {
        Ok(body) => Html(body).into_response(),
        Err(e) => error_page(e),
    }
}

#[derive(Debug, Deserialize)]
struct StartForm {
    csrf: String,
}

/// The start button: the same start as the API, behind the form's CSRF token and a
/// same-origin check.
async fn start_form(
    State(app): State<Shared>,
    me: Result<Me, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<StartForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Me(me) = match me {
        Ok(m) => m,
        Err(e) => return error_page(e),
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|h| h.to_str().ok())
        && origin != format!("http://{host}")
    {
        return error_page(ApiError::forbidden(format!(
            "a form from {origin} may not act here (cross-site request)"
        )));
    }
    let Some(Form(form)) = form.ok().filter(|f| f.csrf == app.csrf(&me)) else {
        return error_page(ApiError::forbidden(
            "the form's CSRF token is missing or not yours: reload the cluster's page and start from there",
        ));
    };
    let _ = form;
    match blocking(move || start(&app, &me, &id, Map::new())).await {
        Ok(run_id) => Redirect::to(&format!("/runs/{run_id}")).into_response(),
        Err(e) => error_page(e),
    }
}

async fn run_page(
    State(app): State<Shared>,
    me: Result<Me, ApiError>,
    Path(id): Path<String>,
) -> Response {
    if let Err(e) = me {
        return error_page(e);
    }
    let live_id = id.clone();
    let page = blocking(move || match app.page_of(&id) {
        Ok(page) => Ok(crate::report::html(&page)),
        // Queued and not begun yet: a page that turns into the run's once a worker starts it.
        Err(e) if e.0 == StatusCode::NOT_FOUND => {
            let queued = app.queued(&id)?.ok_or(e)?;
            Ok(layout(
                &format!("godwit run {id}"),
                html! {
                    h1 { "Run " (id) }
                    p id="queued" { "Queued for cluster " (queued.cluster) " (" (queued.state) "): a worker starts it; this page follows it." }
                },
            ))
        }
        Err(e) => Err(e),
    })
    .await;
    match page {
        Ok(doc) => {
            // Live: on every change the page's body is replaced with the current report, the
            // script (outside it) keeps listening.
            let script = format!(
                "<script>(function(){{var id={};var es=new EventSource('/api/v1/runs/'+id+'/events');\
                 es.addEventListener('changed',function(){{fetch('/api/v1/runs/'+id+'/report').then(function(r){{return r.text();}})\
                 .then(function(t){{var d=new DOMParser().parseFromString(t,'text/html');document.head.replaceWith(d.head);document.body.replaceWith(d.body);}});}});\
                 es.addEventListener('finished',function(){{es.close();}});}})();</script>",
                serde_json::to_string(&live_id).unwrap_or_default()
            );
            Html(doc.replace("</html>", &format!("{script}</html>"))).into_response()
        }
        Err(e) => error_page(e),
    }
}

/// Server-sent events for run `id`: `changed` whenever its transcript grew, `finished` once
/// it ended (then the stream ends).
async fn run_events(
    State(app): State<Shared>,
    _: Me,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<SseEvent, std::convert::Infallible>>(8);
    let mut stopping = app.stopping.subscribe();
    tokio::spawn(async move {
        let mut seen = usize::MAX;
        while !*stopping.borrow_and_update() {
            let (a, i) = (app.clone(), id.clone());
            let now = tokio::task::spawn_blocking(move || {
                // The transcript alone: its last line says when the run finished (no journal
                // read and verified every second per watcher).
                let lines = a.store.transcript_lines(&i);
                let done = lines.last().is_some_and(|l| {
                    serde_json::from_str::<godwit_engine::transcript::Line>(l).is_ok_and(|l| {
                        matches!(
                            l.event,
                            godwit_engine::transcript::Event::RunFinished { .. }
                        )
                    })
                });
                (lines.len(), done)
            })
            .await;
            let Ok((n, done)) = now else { break };
            if n != seen {
                seen = n;
                if tx
                    .send(Ok(SseEvent::default().event("changed").data(n.to_string())))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            if done {
                let _ = tx
                    .send(Ok(SseEvent::default().event("finished").data("done")))
                    .await;
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(LIVE_EVERY) => {}
                _ = stopping.changed() => {}
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    Ok((
        StatusCode::OK,
        Sse::new(stream).keep_alive(KeepAlive::default()),
    ))
}
