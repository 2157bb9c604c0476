//! [`Pg::copy_schema`](super::Pg::copy_schema) over real servers ([`super::live::LivePg`]): the
//! logical path's empty target made ready for the copy, every move bounded by the step's
//! deadline and Ctrl-C.
//!
//! 1. **Check**: the target answers as godwit's login, tells its major, and has no tables, or
//!    exactly the source's (nothing to do), or others (`Conflict`: a restore goes into an empty
//!    database). A cluster godwit just created has only its master user: when godwit's sign-in
//!    is refused there and the world offers the master user's
//!    ([`Connector::master_target`](super::live::Connector::master_target); the aws world reads
//!    RDS's secret from Secrets Manager), godwit signs in as it once and creates its own login
//!    ([`login_sql`]: IAM, `rds_superuser`, the database and its `public` schema), then signs
//!    in as itself. Otherwise the refusal says what to create by hand.
//! 2. **Tools**: `pg_dump` and `psql` of the *target's* major ([`find_tools`]): a pg_dump reads
//!    every older server and writes SQL its own major restores.
//! 3. **Roles** of the source (not `pg_*`, not `rds*`, not the bootstrap superuser, not godwit's
//!    own login) with their attributes and memberships, created on the target where missing,
//!    in one transaction — never a password: a login role signs in by IAM (`rds_iam` granted
//!    where the target has that role). They come first because the dump keeps ownership and
//!    grants.
//! 4. **Schema**: `pg_dump --schema-only --no-publications --no-subscriptions` of the source's
//!    application database into a private file, then `psql --single-transaction` of it into the
//!    target's: all or nothing.
//!
//! The tools run through [`crate::prim::command`] (killed when the call is cut or cancelled),
//! connection details in their environment (`PGHOST`, …, `PGPASSWORD`): never on a command
//! line `ps` shows, never in an error or the result.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use godwit_engine::{Call, ErrorKind, PrimitiveError};
use tokio_postgres::Client;

use super::live::{PG_CALL_LIMIT, Pool, TABLE_DEFINITIONS_SQL, Target, quote_ident, sql_error};
use super::{SchemaCopy, TableDefinition};
use crate::prim::command::{self, Hook};

const A: &str = "pg";
const OP: &str = "copy_schema";

/// Directories (colon-separated, like `PATH`) searched first for `pg_dump` and `psql` of the
/// target's major.
pub const TOOLS_VAR: &str = "GODWIT_PG_TOOLS";

/// The newer major's binaries the cross-major tests run (`godwit_lab::pgproc::NEWER_BIN_VAR`,
/// the same name: the lab depends on this crate, not the other way), searched second.
pub const NEWER_BIN_VAR: &str = "GODWIT_PG_NEWER_BIN";

/// Longest `pg_dump` or restore when the step does not say less: a schema-only dump of even
/// tens of thousands of objects takes minutes; past half an hour something holds a lock.
pub const SCHEMA_COPY_LIMIT: Duration = Duration::from_secs(30 * 60);

/// Longest `--version` or `pg_config --bindir`: a local exec that answers in milliseconds.
const PROBE_LIMIT: Duration = Duration::from_secs(10);

/// A role of the source as `CREATE ROLE` needs it (`pg_roles`): attributes, no password.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRole {
    pub name: String,
    pub superuser: bool,
    pub inherit: bool,
    pub create_role: bool,
    pub create_db: bool,
    pub login: bool,
    pub replication: bool,
    pub bypass_rls: bool,
    /// `-1`: no limit.
    pub connection_limit: i32,
}

impl SourceRole {
    /// `CREATE ROLE` with the attributes that differ from PostgreSQL's defaults; no password,
    /// so none can be copied (`VALID UNTIL` is a password's expiry: left out with it).
    pub fn create_sql(&self) -> String {
        let mut opts: Vec<String> = [
            (self.superuser, "SUPERUSER"),
            (self.create_db, "CREATEDB"),
            (self.create_role, "CREATEROLE"),
            (!self.inherit, "NOINHERIT"),
            (self.login, "LOGIN"),
            (self.replication, "REPLICATION"),
            (self.bypass_rls, "BYPASSRLS"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, o)| o.to_string())
        .collect();
        if self.connection_limit >= 0 {
            opts.push(format!("CONNECTION LIMIT {}", self.connection_limit));
        }
        let mut sql = format!("CREATE ROLE {}", quote_ident(&self.name));
        if !opts.is_empty() {
            sql.push_str(" WITH ");
            sql.push_str(&opts.join(" "));
        }
        sql
    }
}

/// `member` is a member of `group` (`pg_auth_members`, one row per pair).
#[derive(Debug, Clone, PartialEq)]
pub struct Membership {
    pub group: String,
    pub member: String,
    pub admin: bool,
    /// PostgreSQL 16's per-grant `inherit_option` / `set_option`; `None` from an older source
    /// (the target's defaults apply: inherit as the member role does, SET allowed).
    pub inherit: Option<bool>,
    pub set: Option<bool>,
}

impl Membership {
    /// The `GRANT` for a target of major `target_major` (16 writes its options as
    /// `WITH ADMIN TRUE, INHERIT FALSE, …`; before it only `WITH ADMIN OPTION` exists).
    pub fn grant_sql(&self, target_major: u32) -> String {
        let mut sql = format!(
            "GRANT {} TO {}",
            quote_ident(&self.group),
            quote_ident(&self.member)
        );
        let word = |b: bool| if b { "TRUE" } else { "FALSE" };
        if target_major >= 16 {
            let mut opts = Vec::new();
            if self.admin {
                opts.push("ADMIN TRUE".to_string());
            }
            if let Some(i) = self.inherit {
                opts.push(format!("INHERIT {}", word(i)));
            }
            if let Some(s) = self.set {
                opts.push(format!("SET {}", word(s)));
            }
            if !opts.is_empty() {
                sql.push_str(" WITH ");
                sql.push_str(&opts.join(", "));
            }
        } else if self.admin {
            sql.push_str(" WITH ADMIN OPTION");
        }
        sql
    }
}

/// `pg_dump` and `psql` of one major, found by [`find_tools`].
#[derive(Debug, Clone, PartialEq)]
pub struct PgTools {
    pub dir: PathBuf,
    /// `pg_dump --version`'s version, e.g. `16.2`.
    pub version: String,
    pub major: u32,
    /// A library directory the tools need on `LD_LIBRARY_PATH` (a relocated build whose
    /// `pg_dump` does not start without it); `None` for the usual installs.
    pub lib: Option<PathBuf>,
}

impl PgTools {
    pub fn pg_dump(&self) -> PathBuf {
        self.dir.join("pg_dump")
    }

    pub fn psql(&self) -> PathBuf {
        self.dir.join("psql")
    }
}

/// The version and major of a `pg_dump --version` / `psql --version` answer
/// (`pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)`, `pg_dump (PostgreSQL) 17beta1`).
pub fn tool_version(output: &str) -> Option<(String, u32)> {
    let mut words = output.split_whitespace();
    words.find(|w| *w == "(PostgreSQL)")?;
    let version = words.next()?.to_string();
    let digits: String = version.chars().take_while(|c| c.is_ascii_digit()).collect();
    let major = digits.parse().ok()?;
    Some((version, major))
}

/// Where `pg_dump` of major `major` is looked for, in order, each once: [`TOOLS_VAR`]'s
/// directories, [`NEWER_BIN_VAR`], `pg_config --bindir`, `PATH`, then Debian's
/// `/usr/lib/postgresql/<major>/bin` (where `postgresql-client-<major>` installs, off `PATH`).
pub fn candidate_dirs(
    tools: Option<OsString>,
    newer_bin: Option<OsString>,
    pg_config_bindir: Option<PathBuf>,
    path: Option<OsString>,
    major: u32,
) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let lists = tools
        .iter()
        .flat_map(std::env::split_paths)
        .chain(newer_bin.map(PathBuf::from))
        .chain(pg_config_bindir)
        .chain(path.iter().flat_map(std::env::split_paths))
        .chain([PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"))]);
    for d in lists {
        if !d.as_os_str().is_empty() && !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    dirs
}

/// `LD_LIBRARY_PATH` with `lib` first.
fn library_path(lib: &Path) -> OsString {
    let mut paths = vec![lib.to_path_buf()];
    if let Some(old) = std::env::var_os("LD_LIBRARY_PATH") {
        paths.extend(std::env::split_paths(&old));
    }
    std::env::join_paths(paths).unwrap_or_else(|_| lib.as_os_str().to_owned())
}

/// `program args…` within [`PROBE_LIMIT`], killed if it runs longer: its stdout, or why not.
async fn probe(program: &Path, args: &[&str], lib: Option<&Path>) -> Result<String, String> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(lib) = lib {
        cmd.env("LD_LIBRARY_PATH", library_path(lib));
    }
    let out = tokio::time::timeout(PROBE_LIMIT, cmd.output())
        .await
        .map_err(|_| format!("no answer in {} s", PROBE_LIMIT.as_secs()))?
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("exited with {}: {}", out.status, err.trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The version of `dir`'s pg_dump, and the library directory it needed: a relocated build
/// (one unpacked from an archive, without an rpath) starts only with its `../lib` on
/// `LD_LIBRARY_PATH`. (The `pgserver` wheel's carries an rpath and needs none.)
async fn dump_version(dir: &Path) -> Result<(String, u32, Option<PathBuf>), String> {
    let dump = dir.join("pg_dump");
    let plain = probe(&dump, &["--version"], None).await;
    let (out, lib) = match plain {
        Ok(out) => (out, None),
        Err(e) => {
            let lib = dir.join("../lib");
            if !e.contains("shared librar") || !lib.is_dir() {
                return Err(e);
            }
            (probe(&dump, &["--version"], Some(&lib)).await?, Some(lib))
        }
    };
    let (version, major) =
        tool_version(&out).ok_or_else(|| format!("unexpected `--version`: {:?}", out.trim()))?;
    Ok((version, major, lib))
}

/// `pg_dump` and `psql` of PostgreSQL `major`, looked for where [`candidate_dirs`] says, each
/// candidate's `pg_dump --version` checked. None: an error with the install command.
pub async fn find_tools(major: u32) -> Result<PgTools, PrimitiveError> {
    let bindir = probe(Path::new("pg_config"), &["--bindir"], None)
        .await
        .ok()
        .map(|out| PathBuf::from(out.trim()));
    let dirs = candidate_dirs(
        std::env::var_os(TOOLS_VAR),
        std::env::var_os(NEWER_BIN_VAR),
        bindir,
        std::env::var_os("PATH"),
        major,
    );
    let mut seen = Vec::new();
    for dir in dirs {
        if !dir.join("pg_dump").is_file() {
            continue;
        }
        match dump_version(&dir).await {
            Ok((version, m, lib)) if m == major => {
                if dir.join("psql").is_file() {
                    return Ok(PgTools {
                        dir,
                        version,
                        major,
                        lib,
                    });
                }
                seen.push(format!(
                    "{} has pg_dump {version} but no psql",
                    dir.display()
                ));
            }
            Ok((version, _, _)) => seen.push(format!("{}/pg_dump is {version}", dir.display())),
            Err(e) => seen.push(format!("{}/pg_dump: {e}", dir.display())),
        }
    }
    let found = if seen.is_empty() {
        "no pg_dump at all".to_string()
    } else {
        seen.join("; ")
    };
    Err(PrimitiveError::new(
        A,
        OP,
        ErrorKind::Invalid,
        format!(
            "no pg_dump of PostgreSQL {major} here, the target's major (a pg_dump of the \
             target's major dumps any older source, and writes SQL the target restores): looked \
             in {TOOLS_VAR}, {NEWER_BIN_VAR}, `pg_config --bindir`, PATH and \
             /usr/lib/postgresql/{major}/bin; found {found}"
        ),
        format!(
            "install the PostgreSQL {major} client where godwit runs — Debian/Ubuntu: \
             `apt-get install postgresql-client-{major}` (from apt.postgresql.org when the \
             release does not ship {major}; it lands in /usr/lib/postgresql/{major}/bin); for \
             16, the PyPI wheel pgserver ships it (`.venv/bin/pip install pgserver==0.1.4`, as \
             scripts/test.sh does: its pginstall/bin) — or point {TOOLS_VAR} at a directory \
             holding pg_dump and psql of {major}; then run again"
        ),
    )
    .with_retryable(false))
}

/// Whether a failed sign-in was the server refusing the login itself (a wrong or expired
/// password or IAM token, `28P01`; a role that does not exist, `28000`), not the network or a
/// `pg_hba.conf` rule.
pub fn is_authentication_failure(message: &str) -> bool {
    message.contains("(28P01)")
        || message.contains("authentication failed")
        || (message.contains("(28000)") && message.contains("does not exist"))
}

/// What the master user of a cluster godwit created runs, once, to create godwit's login
/// `user` there (one transaction): a login without a password, signing in with IAM
/// (`rds_iam`), with `CREATEROLE` for the source's roles and `rds_superuser` for the
/// subscription and the catalog reads, and every right on the database `dbname` (created by
/// `DatabaseName`, the master user's) and its `public` schema for the restore. Run again (a
/// login that exists), it only grants again.
pub fn login_sql(user: &str, dbname: &str) -> String {
    let (u, d) = (quote_ident(user), quote_ident(dbname));
    let lit = user.replace('\'', "''");
    format!(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{lit}') THEN \
         CREATE ROLE {u} LOGIN CREATEROLE; END IF; END $$;\n\
         GRANT rds_iam TO {u};\n\
         GRANT rds_superuser TO {u};\n\
         GRANT ALL ON DATABASE {d} TO {u};\n\
         GRANT ALL ON SCHEMA public TO {u}"
    )
}

/// A target that refused godwit's sign-in, said as what it is: a cluster godwit just created
/// has only its master user, and this world offers no sign-in as it (or it failed).
fn sign_in_refused(to: &str, user: &str, e: PrimitiveError) -> PrimitiveError {
    if !is_authentication_failure(&e.message) {
        return e;
    }
    PrimitiveError::new(
        A,
        OP,
        ErrorKind::Invalid,
        format!(
            "{to} refused godwit's sign-in as {user:?} ({}): on a cluster godwit just created only \
             the master user exists, and this world does not sign in as the master user",
            e.message
        ),
        format!(
            "create godwit's IAM role on the cluster as its master user (CREATE ROLE \
             {user:?} LOGIN; GRANT rds_iam TO {user:?}; and the rights docs/aws.md lists), then \
             run again"
        ),
    )
    .with_retryable(false)
}

/// The connection environment of libpq tools for `t`: where and as whom, the password (an IAM
/// token) in `PGPASSWORD` — never on the command line — and TLS as godwit's own connections
/// use it. libpq cannot choose its source address: where the world binds godwit's connections
/// to one (the lab), the tools connect from the kernel's choice.
fn libpq_env(t: &Target) -> Vec<(&'static str, String)> {
    use tokio_postgres::config::Host;
    let mut env = Vec::new();
    match t.config.get_hosts().first() {
        Some(Host::Tcp(h)) => env.push(("PGHOST", h.clone())),
        #[cfg(unix)]
        Some(Host::Unix(dir)) => env.push(("PGHOST", dir.display().to_string())),
        None => {}
    }
    let port = t.config.get_ports().first().copied().unwrap_or(5432);
    env.push(("PGPORT", port.to_string()));
    if let Some(u) = t.config.get_user() {
        env.push(("PGUSER", u.to_string()));
    }
    if let Some(d) = t.config.get_dbname() {
        env.push(("PGDATABASE", d.to_string()));
    }
    if let Some(pw) = t.config.get_password() {
        env.push(("PGPASSWORD", String::from_utf8_lossy(pw).into_owned()));
    }
    let sslmode = if t.tls.is_some() {
        // libpq cannot take godwit's rustls roots: it encrypts (`require`), and verifies the
        // server too when the operator set a stricter mode (with PGSSLROOTCERT) for it.
        match std::env::var("PGSSLMODE").as_deref() {
            Ok(m @ ("verify-ca" | "verify-full")) => m.to_string(),
            _ => "require".into(),
        }
    } else {
        "disable".into()
    };
    env.push(("PGSSLMODE", sslmode));
    env.push(("PGCONNECT_TIMEOUT", "15".into()));
    env.push(("PGAPPNAME", "godwit_copy_schema".into()));
    env
}

/// The tables of `c`'s database (the application database), sorted: what
/// [`super::Pg::table_definitions`] says of it.
async fn definitions(c: &Client, db: &str) -> Result<Vec<TableDefinition>, PrimitiveError> {
    let rows = c
        .query(TABLE_DEFINITIONS_SQL, &[])
        .await
        .map_err(|e| sql_error(OP, db, e))?;
    let mut v: Vec<TableDefinition> = rows
        .iter()
        .map(|r| TableDefinition {
            table: r.get(0),
            columns: r.get(1),
        })
        .collect();
    v.sort_by(|a, b| a.table.cmp(&b.table));
    Ok(v)
}

/// Sequences of `c`'s database.
async fn sequence_count(c: &Client, db: &str) -> Result<i64, PrimitiveError> {
    let row = c
        .query_one(
            "SELECT count(*)::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
            &[],
        )
        .await
        .map_err(|e| sql_error(OP, db, e))?;
    Ok(row.get(0))
}

/// The source's roles to copy and their memberships.
const SOURCE_ROLES_SQL: &str = "SELECT rolname::text, rolsuper, rolinherit, rolcreaterole, \
     rolcreatedb, rolcanlogin, rolreplication, rolbypassrls, rolconnlimit FROM pg_roles \
     WHERE rolname NOT LIKE 'pg\\_%' AND rolname NOT LIKE 'rds%' AND oid <> 10 \
     AND rolname <> current_user ORDER BY 1";

/// Memberships of the roles `$1`; the per-grant options of 16 read through `to_jsonb`, so an
/// older source answers too (`NULL`).
const MEMBERSHIPS_SQL: &str = "SELECT g.rolname::text, m.rolname::text, bool_or(am.admin_option), \
     bool_or((to_jsonb(am) ->> 'inherit_option')::bool), bool_or((to_jsonb(am) ->> 'set_option')::bool) \
     FROM pg_auth_members am JOIN pg_roles g ON g.oid = am.roleid JOIN pg_roles m ON m.oid = am.member \
     WHERE m.rolname = ANY($1) GROUP BY 1, 2 ORDER BY 2, 1";

/// What the source is, read once.
struct Source {
    user: String,
    dbname: String,
    tables: Vec<TableDefinition>,
    roles: Vec<SourceRole>,
    memberships: Vec<Membership>,
}

/// What the target is before the copy.
struct Before {
    user: String,
    /// The master user godwit signed in as to create its own login here, if it had to.
    created_login_as: Option<String>,
    dbname: String,
    major: u32,
    tables: Vec<TableDefinition>,
    sequences: i64,
}

/// What creating the roles did.
struct RolesDone {
    created: usize,
    granted: usize,
    iam: usize,
    /// Memberships in a role the target lacks (`group → member`).
    skipped: Vec<String>,
}

/// Create `roles` missing on the target and grant `memberships` it lacks, then `rds_iam` to each
/// login role where the target has it; one transaction (a multi-statement simple query).
async fn ensure_roles(
    c: &Client,
    to: &str,
    major: u32,
    roles: &[SourceRole],
    memberships: &[Membership],
) -> Result<RolesDone, PrimitiveError> {
    let existing: Vec<String> = c
        .query("SELECT rolname::text FROM pg_roles", &[])
        .await
        .map_err(|e| sql_error(OP, to, e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let members: Vec<(String, String)> = c
        .query(
            "SELECT g.rolname::text, m.rolname::text FROM pg_auth_members am \
             JOIN pg_roles g ON g.oid = am.roleid JOIN pg_roles m ON m.oid = am.member",
            &[],
        )
        .await
        .map_err(|e| sql_error(OP, to, e))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut sql = Vec::new();
    let mut done = RolesDone {
        created: 0,
        granted: 0,
        iam: 0,
        skipped: Vec::new(),
    };
    for r in roles.iter().filter(|r| !existing.contains(&r.name)) {
        sql.push(r.create_sql());
        done.created += 1;
    }
    let will_exist =
        |name: &str| existing.iter().any(|e| e == name) || roles.iter().any(|r| r.name == name);
    let is_member = |g: &str, m: &str| members.iter().any(|(eg, em)| eg == g && em == m);
    for m in memberships {
        if is_member(&m.group, &m.member) {
            continue;
        }
        if !will_exist(&m.group) {
            done.skipped.push(format!("{} → {}", m.group, m.member));
            continue;
        }
        sql.push(m.grant_sql(major));
        done.granted += 1;
    }
    if existing.iter().any(|e| e == "rds_iam") {
        for r in roles
            .iter()
            .filter(|r| r.login && !is_member("rds_iam", &r.name))
            // Granted above, as the source's own membership.
            .filter(|r| {
                !memberships
                    .iter()
                    .any(|m| m.group == "rds_iam" && m.member == r.name)
            })
        {
            sql.push(format!("GRANT rds_iam TO {}", quote_ident(&r.name)));
            done.iam += 1;
        }
    }
    // A login that is not a superuser (Aurora's: godwit's, rds_superuser) restores a dump that
    // gives objects to these roles only as a member of each (`ALTER … OWNER TO` needs it): it
    // joins the ones it creates, over which it has the ADMIN option (16) or CREATEROLE (15).
    let superuser: bool = c
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| sql_error(OP, to, e))?
        .get(0);
    if !superuser {
        for r in roles.iter().filter(|r| !existing.contains(&r.name)) {
            sql.push(format!("GRANT {} TO current_user", quote_ident(&r.name)));
        }
    }
    if !sql.is_empty() {
        c.batch_execute(&sql.join(";\n")).await.map_err(|e| {
            let mut e = sql_error(OP, to, e);
            e.hint = format!(
                "nothing of it stayed (one transaction); godwit's login on {to} needs \
                     CREATEROLE (on Aurora: the master user's rds_superuser) and, for a \
                     SUPERUSER or REPLICATION role of the source, more: {}",
                e.hint
            );
            e
        })?;
    }
    Ok(done)
}

/// A tool cut by the step's deadline, with what to do about it (not a declared hook's timeout).
fn cut_hint(mut e: PrimitiveError, why: &str) -> PrimitiveError {
    if e.kind == ErrorKind::Timeout {
        e.hint =
            format!("raise the step's timeout, or find what holds it up ({why}); then run again");
    }
    e
}

/// [`super::Pg::copy_schema`] over `pool`'s servers.
pub(crate) fn copy_schema(
    pool: &Pool,
    cx: &Call<'_>,
    from: &str,
    to: &str,
) -> Result<SchemaCopy, PrimitiveError> {
    if from == to {
        return Err(PrimitiveError::invalid(
            A,
            OP,
            format!("copy_schema from {from} into itself"),
            "pass the source and the cluster rds::create_cluster made",
        )
        .with_retryable(false));
    }
    let st = cx.budget(PG_CALL_LIMIT);
    let src = pool.run(cx, from, PG_CALL_LIMIT, async {
        let t = pool.connector().target(from).await?;
        let c = pool.client(from, None, OP, st).await?;
        let user: String = c
            .query_one("SELECT current_user::text", &[])
            .await
            .map_err(|e| sql_error(OP, from, e))?
            .get(0);
        let tables = definitions(&c, from).await?;
        let roles: Vec<SourceRole> = c
            .query(SOURCE_ROLES_SQL, &[])
            .await
            .map_err(|e| sql_error(OP, from, e))?
            .iter()
            .map(|r| SourceRole {
                name: r.get(0),
                superuser: r.get(1),
                inherit: r.get(2),
                create_role: r.get(3),
                create_db: r.get(4),
                login: r.get(5),
                replication: r.get(6),
                bypass_rls: r.get(7),
                connection_limit: r.get(8),
            })
            .collect();
        let names: Vec<String> = roles.iter().map(|r| r.name.clone()).collect();
        let memberships = c
            .query(MEMBERSHIPS_SQL, &[&names])
            .await
            .map_err(|e| sql_error(OP, from, e))?
            .iter()
            .map(|r| Membership {
                group: r.get(0),
                member: r.get(1),
                admin: r.get(2),
                inherit: r.get(3),
                set: r.get(4),
            })
            .collect();
        Ok(Source {
            user,
            dbname: t.config.get_dbname().unwrap_or("").to_string(),
            tables,
            roles,
            memberships,
        })
    })?;
    let before = pool.run(cx, to, PG_CALL_LIMIT, async {
        let t = pool.connector().target(to).await?;
        let user = t.config.get_user().unwrap_or("?").to_string();
        let dbname = t.config.get_dbname().unwrap_or("postgres").to_string();
        let (c, created_login_as) = match pool.client(to, None, OP, st).await {
            Ok(c) => (c, None),
            Err(e) if is_authentication_failure(&e.message) => {
                let Some(master) = pool.connector().master_target(to).await else {
                    return Err(sign_in_refused(to, &user, e));
                };
                let master = master?;
                let name = master.config.get_user().unwrap_or("?").to_string();
                let m = pool.connect_to(to, master, OP, st).await.map_err(|e| {
                    let mut e = e.with_retryable(false);
                    e.message = format!(
                        "{to} refused godwit's sign-in as {user:?}, and the master user's \
                         ({name:?}) too: {}",
                        e.message
                    );
                    e.hint = "the master user's secret may have been rotated or changed by hand: \
                              check it in Secrets Manager (or sign in as the master user and \
                              create godwit's login as docs/aws.md says), then run again"
                        .into();
                    e
                })?;
                m.batch_execute(&login_sql(&user, &dbname))
                    .await
                    .map_err(|e| {
                        let mut e = sql_error(OP, to, e);
                        e.hint = format!(
                            "signed in as the master user {name:?}, creating godwit's login \
                             {user:?} failed (nothing of it stayed: one transaction); on Aurora \
                             the master user has rds_superuser and CREATEROLE, which it needs"
                        );
                        e
                    })?;
                drop(m);
                let c = pool
                    .client(to, None, OP, st)
                    .await
                    .map_err(|e| sign_in_refused(to, &user, e))?;
                (c, Some(name))
            }
            Err(e) => return Err(sign_in_refused(to, &user, e)),
        };
        let version: i32 = c
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .await
            .map_err(|e| sql_error(OP, to, e))?
            .get(0);
        Ok(Before {
            user,
            created_login_as,
            dbname: t.config.get_dbname().unwrap_or("").to_string(),
            major: (version / 10_000) as u32,
            tables: definitions(&c, to).await?,
            sequences: sequence_count(&c, to).await?,
        })
    })?;
    let login_roles: Vec<String> = src
        .roles
        .iter()
        .filter(|r| r.login)
        .map(|r| r.name.clone())
        .collect();
    let names = |t: &[TableDefinition]| t.iter().map(|d| d.table.clone()).collect::<Vec<_>>();
    if !before.tables.is_empty() && before.tables == src.tables {
        return Ok(SchemaCopy {
            from: from.into(),
            to: to.into(),
            roles: login_roles,
            tables: names(&before.tables),
            sequences: before.sequences,
            how: format!(
                "nothing to do: {to} already has the {} tables of {from}, column for column \
                 (checked as {} on {to}); no role created, no tool run",
                before.tables.len(),
                before.user
            ),
        });
    }
    if !before.tables.is_empty() {
        let differ: Vec<String> = before
            .tables
            .iter()
            .filter(|t| !src.tables.contains(t))
            .map(|t| t.table.clone())
            .collect();
        return Err(crate::prim::conflict(
            A,
            OP,
            format!(
                "{to} already has tables that differ from {from}'s ({}): a schema copy restores \
                 into an empty database",
                if differ.is_empty() {
                    format!("it lacks some of {from}'s")
                } else {
                    differ.join(", ")
                }
            ),
            "drop them on the target (or delete and re-create the cluster), then copy again",
        )
        .with_retryable(false));
    }
    // Before anything changes on the target: without the tools, nothing is done.
    let tools = cx.block_on(SCHEMA_COPY_LIMIT, find_tools(before.major))?;
    let roles_done = pool.run(cx, to, PG_CALL_LIMIT, async {
        let c = pool.client(to, None, OP, cx.budget(PG_CALL_LIMIT)).await?;
        ensure_roles(&c, to, before.major, &src.roles, &src.memberships).await
    })?;

    // A file between the two tools, not a pipe: `psql --single-transaction` commits at the end
    // of its input, so a pg_dump that failed halfway through a pipe would leave a partial
    // schema committed. A schema is small; the private directory goes with the call.
    let tmp = tempfile::Builder::new()
        .prefix("godwit-schema-")
        .tempdir()
        .map_err(|e| {
            PrimitiveError::new(
                A,
                OP,
                ErrorKind::Internal,
                format!("cannot create a directory for the dump: {e}"),
                "free space in the temp directory",
            )
        })?;
    let file = tmp.path().join("schema.sql");
    let tool_env = |mut env: Vec<(&'static str, String)>| {
        env.push(("GODWIT_PG_DUMP", tools.pg_dump().display().to_string()));
        env.push(("GODWIT_PSQL", tools.psql().display().to_string()));
        env.push(("GODWIT_DUMP_FILE", file.display().to_string()));
        if let Some(lib) = &tools.lib {
            env.push((
                "LD_LIBRARY_PATH",
                library_path(lib).to_string_lossy().into_owned(),
            ));
        }
        env
    };
    // The endpoint alone says where and how to connect: no service file, host address or
    // options of the environment redirect the tools. `exec`: the process a cut or cancelled
    // call kills is the tool itself, not a shell that would leave it running.
    const CLEAN: &str = "unset PGSERVICE PGSERVICEFILE PGHOSTADDR PGOPTIONS; ";
    let dump_cmd = format!(
        "{CLEAN}exec \"$GODWIT_PG_DUMP\" --schema-only --no-publications --no-subscriptions \
         --no-password --file=\"$GODWIT_DUMP_FILE\""
    );
    let restore_cmd = format!(
        "{CLEAN}exec \"$GODWIT_PSQL\" --no-psqlrc --quiet --no-password -v ON_ERROR_STOP=1 \
         --single-transaction --file=\"$GODWIT_DUMP_FILE\""
    );
    // Credentials fetched right before each tool starts (an IAM token admits new connections
    // for 15 minutes).
    let from_target = pool.run(cx, from, PG_CALL_LIMIT, pool.connector().target(from))?;
    command::run(
        cx,
        &Hook {
            area: A,
            op: OP,
            what: format!("pg_dump {} of {from}", tools.version),
            command: &dump_cmd,
            env: tool_env(libpq_env(&from_target)),
            timeout: None,
            default_timeout: SCHEMA_COPY_LIMIT,
            fix: "nothing was restored: its message says why pg_dump stopped (a permission, a \
                  lock it waited for, the connection)",
        },
    )
    .map_err(|e| {
        cut_hint(
            e,
            "pg_dump takes a share lock on every table first: a lock the \
        application or a migration holds (pg_locks on the source) makes it wait",
        )
    })?;
    let to_target = pool.run(cx, to, PG_CALL_LIMIT, pool.connector().target(to))?;
    command::run(
        cx,
        &Hook {
            area: A,
            op: OP,
            what: format!("psql {} into {to}", tools.version),
            command: &restore_cmd,
            env: tool_env(libpq_env(&to_target)),
            timeout: None,
            default_timeout: SCHEMA_COPY_LIMIT,
            fix: "the restore was one transaction, rolled back: nothing of it stayed on the \
                  target; its message names the statement the target refused",
        },
    )
    .map_err(|e| {
        cut_hint(
            e,
            "the restore rolled back: nothing of it stayed on the target",
        )
    })
    .map_err(|e| {
        // A statement the target refused fails the same way again; a connection may not.
        let refused = e.message.contains("ERROR:");
        let e = if refused { e.with_retryable(false) } else { e };
        sign_in_refused(to, &before.user, e)
    })?;
    drop(tmp);

    let (tables, sequences) = pool.run(cx, to, PG_CALL_LIMIT, async {
        let c = pool.client(to, None, OP, cx.budget(PG_CALL_LIMIT)).await?;
        Ok((definitions(&c, to).await?, sequence_count(&c, to).await?))
    })?;
    let mut how = format!(
        "pg_dump {} ({}) --schema-only of {from}'s database {} as {}, restored by psql of the \
         same directory into {to}'s database {} as {} in one transaction; roles created: {}, \
         memberships granted: {}",
        tools.version,
        tools.pg_dump().display(),
        src.dbname,
        src.user,
        before.dbname,
        before.user,
        roles_done.created,
        roles_done.granted,
    );
    if roles_done.iam > 0 {
        how.push_str(&format!(", rds_iam granted: {}", roles_done.iam));
    }
    if let Some(master) = &before.created_login_as {
        how.push_str(&format!(
            "; godwit's login {} created on {to} first, signed in once as its master user {master} \
             (the password read for that connection only)",
            before.user
        ));
    }
    if !roles_done.skipped.is_empty() {
        how.push_str(&format!(
            "; not granted, the target lacks the role: {}",
            roles_done.skipped.join(", ")
        ));
    }
    Ok(SchemaCopy {
        from: from.into(),
        to: to.into(),
        roles: login_roles,
        tables: names(&tables),
        sequences,
        how,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str) -> SourceRole {
        SourceRole {
            name: name.into(),
            superuser: false,
            inherit: true,
            create_role: false,
            create_db: false,
            login: false,
            replication: false,
            bypass_rls: false,
            connection_limit: -1,
        }
    }

    #[test]
    fn a_role_is_created_with_its_attributes_and_never_a_password() {
        assert_eq!(role("readers").create_sql(), "CREATE ROLE \"readers\"");
        let app = SourceRole {
            login: true,
            inherit: false,
            create_db: true,
            connection_limit: 7,
            ..role("app \"user\"")
        };
        let sql = app.create_sql();
        assert_eq!(
            sql,
            "CREATE ROLE \"app \"\"user\"\"\" WITH CREATEDB NOINHERIT LOGIN CONNECTION LIMIT 7"
        );
        assert!(!sql.contains("PASSWORD") && !sql.contains("VALID"), "{sql}");
    }

    #[test]
    fn a_membership_is_granted_in_the_targets_syntax() {
        let m = Membership {
            group: "readers".into(),
            member: "app".into(),
            admin: true,
            inherit: None,
            set: None,
        };
        assert_eq!(
            m.grant_sql(15),
            "GRANT \"readers\" TO \"app\" WITH ADMIN OPTION"
        );
        assert_eq!(
            m.grant_sql(16),
            "GRANT \"readers\" TO \"app\" WITH ADMIN TRUE"
        );
        let from16 = Membership {
            admin: false,
            inherit: Some(false),
            set: Some(true),
            ..m
        };
        assert_eq!(
            from16.grant_sql(17),
            "GRANT \"readers\" TO \"app\" WITH INHERIT FALSE, SET TRUE"
        );
        assert_eq!(from16.grant_sql(15), "GRANT \"readers\" TO \"app\"");
    }

    #[test]
    fn tool_versions_read_as_postgresql_prints_them() {
        assert_eq!(
            tool_version("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"),
            Some(("15.18".into(), 15))
        );
        assert_eq!(
            tool_version("pg_dump (PostgreSQL) 16.2"),
            Some(("16.2".into(), 16))
        );
        assert_eq!(
            tool_version("pg_dump (PostgreSQL) 17beta1"),
            Some(("17beta1".into(), 17))
        );
        assert_eq!(tool_version("pg_dump 16.2"), None);
        assert_eq!(tool_version(""), None);
    }

    #[test]
    fn tools_are_looked_for_in_the_documented_order_each_once() {
        let dirs = candidate_dirs(
            Some("/opt/pg16/bin:/opt/other::/opt/pg16/bin".into()),
            Some("/venv/pginstall/bin".into()),
            Some(PathBuf::from("/usr/lib/postgresql/15/bin")),
            Some("/usr/local/bin:/usr/bin:/opt/other".into()),
            16,
        );
        let want = [
            "/opt/pg16/bin",
            "/opt/other",
            "/venv/pginstall/bin",
            "/usr/lib/postgresql/15/bin",
            "/usr/local/bin",
            "/usr/bin",
            "/usr/lib/postgresql/16/bin",
        ];
        assert_eq!(dirs, want.iter().map(PathBuf::from).collect::<Vec<_>>());
        assert_eq!(
            candidate_dirs(None, None, None, None, 17),
            vec![PathBuf::from("/usr/lib/postgresql/17/bin")]
        );
    }

    #[test]
    fn a_major_nobody_has_fails_with_how_to_install_it() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = rt.block_on(find_tools(99)).unwrap_err();
        assert_eq!((e.kind, e.retryable), (ErrorKind::Invalid, false));
        assert!(e.message.contains("no pg_dump of PostgreSQL 99"), "{e:?}");
        assert!(
            e.hint.contains("apt-get install postgresql-client-99"),
            "{e:?}"
        );
        assert!(
            e.hint.contains("pgserver") && e.hint.contains(TOOLS_VAR),
            "{e:?}"
        );
    }

    #[test]
    fn only_a_refused_login_counts_as_an_authentication_failure() {
        for yes in [
            "cannot connect to [Tcp(\"x\")] port [5432] as \"godwit\": password authentication failed for user \"godwit\" (28P01)",
            "cannot connect …: PAM authentication failed for user \"godwit\" (28P01)",
            "cannot connect …: role \"godwit\" does not exist (28000)",
        ] {
            assert!(is_authentication_failure(yes), "{yes}");
        }
        for no in [
            "cannot connect …: pg_hba.conf rejects connection for host \"127.0.0.1\" (28000)",
            "cannot connect …: Connection refused (os error 111)",
            "connecting to orders-aurora took more than 15 s",
        ] {
            assert!(!is_authentication_failure(no), "{no}");
        }
    }

    #[test]
    fn the_tools_environment_carries_the_password_and_tls() {
        let mut config = tokio_postgres::Config::new();
        config
            .host("db.example")
            .port(5433)
            .user("godwit")
            .dbname("orders")
            .password("s3cret");
        let t = Target {
            config,
            tls: None,
            aurora: false,
            bind: None,
        };
        let env = libpq_env(&t);
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PGHOST"), Some("db.example"));
        assert_eq!(get("PGPORT"), Some("5433"));
        assert_eq!(get("PGUSER"), Some("godwit"));
        assert_eq!(get("PGDATABASE"), Some("orders"));
        assert_eq!(get("PGPASSWORD"), Some("s3cret"));
        assert_eq!(
            get("PGSSLMODE"),
            Some("disable"),
            "plain TCP, as godwit's own"
        );
    }
}
