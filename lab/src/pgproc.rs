//! Throwaway PostgreSQL clusters as real server processes: find the binaries, drop to an
//! unprivileged OS user when godwit runs as root, `initdb`, start a server as a foreground child
//! (stopped by pid), `pg_basebackup` a streaming replica, stop and restart.
//!
//! Measured behaviour and pitfalls are in `shared/reference/local-postgres.md`; the ones this
//! module exists for:
//! - PostgreSQL refuses root: servers run as `postgres` (or `GODWIT_LAB_USER`) with a clean
//!   environment, a working directory and `HOME` it owns (an inherited root `HOME` leaks into
//!   `primary_conninfo` as a passfile path);
//! - every cluster gets its own socket directory (`-k`), short enough for the 107-byte limit;
//! - a free port found by binding `:0` is racy: a server that fails to bind is retried on
//!   another port;
//! - the server's readiness is read from `postmaster.pid` (line 8: `ready` / `standby`), not
//!   by polling connections;
//! - a server outlives the process that started it (a `godwit run` killed mid-cutover leaves
//!   the lab running for `godwit resume`), so it is identified by its data directory and the
//!   pid in `postmaster.pid`, and [`stop_pid`] works on processes that are not our children
//!   (a reparented, killed process may stay a zombie when PID 1 does not reap: that counts as
//!   stopped).

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub use nix::sys::signal::Signal;
use nix::sys::signal::kill;
use nix::unistd::{Gid, Pid, Uid, User};
use serde::{Deserialize, Serialize};

use crate::LabError;

/// The PostgreSQL server binaries (`initdb`, `postgres`, `pg_basebackup`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgBin {
    pub dir: PathBuf,
    /// Major version, e.g. `15`.
    pub major: u32,
    /// Full version, e.g. `15.18`: every server of a lab runs these binaries, so this is the
    /// engine version its instances report.
    pub version: String,
}

/// How to install the server binaries, for error messages.
pub const INSTALL_HINT: &str = "install the PostgreSQL server (Debian/Ubuntu: `apt-get install postgresql`; \
     scripts/test.sh does it when run as root) or point PG_BINDIR at the directory holding initdb and postgres";

/// Where the newer major's binaries are ([`PgBin::newer_major`]).
pub const NEWER_BIN_VAR: &str = "GODWIT_PG_NEWER_BIN";

/// How to install the newer major, for error messages.
pub const NEWER_INSTALL_HINT: &str = "install PostgreSQL 16 into the project venv (`.venv/bin/pip install pgserver==0.1.4`; \
     scripts/test.sh does it) and export GODWIT_PG_NEWER_BIN=$(.venv/bin/python -c 'import pgserver, os; print(os.path.join(os.path.dirname(pgserver.__file__), \"pginstall\", \"bin\"))')";

impl PgBin {
    /// `PG_BINDIR` if set, else `pg_config --bindir` when it holds `initdb`, else the highest
    /// `/usr/lib/postgresql/*/bin` (Debian keeps server binaries off PATH).
    pub fn locate() -> Result<PgBin, LabError> {
        if let Some(dir) = std::env::var_os("PG_BINDIR") {
            let dir = PathBuf::from(dir);
            return PgBin::at(&dir).map_err(|e| {
                LabError::Prerequisite(format!("PG_BINDIR={}: {e}; {INSTALL_HINT}", dir.display()))
            });
        }
        if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
            && out.status.success()
        {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if let Ok(bin) = PgBin::at(&dir) {
                return Ok(bin);
            }
        }
        let mut found: Vec<PgBin> = fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| PgBin::at(&e.path().join("bin")).ok())
            .collect();
        found.sort_by_key(|b| b.major);
        found.pop().ok_or_else(|| {
            LabError::Prerequisite(format!(
                "no PostgreSQL server binaries found (looked at PG_BINDIR, `pg_config --bindir`, /usr/lib/postgresql/*/bin); {INSTALL_HINT}"
            ))
        })
    }

    /// The binaries in `dir`, checked: `initdb`, `postgres` and `pg_basebackup` exist and
    /// `postgres --version` answers.
    pub fn at(dir: &Path) -> Result<PgBin, String> {
        for tool in ["initdb", "postgres", "pg_basebackup"] {
            if !dir.join(tool).is_file() {
                return Err(format!("{} has no {tool}", dir.display()));
            }
        }
        let out = Command::new(dir.join("postgres"))
            .arg("--version")
            .output()
            .map_err(|e| format!("{}/postgres --version: {e}", dir.display()))?;
        // "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
        let text = String::from_utf8_lossy(&out.stdout);
        let version = text.split_whitespace().nth(2).unwrap_or("").to_string();
        let major = version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .ok_or_else(|| format!("unexpected `postgres --version` output: {text:?}"))?;
        Ok(PgBin {
            dir: dir.to_path_buf(),
            major,
            version,
        })
    }

    /// A newer major than `than`, for the logical path's cross-major tests (issue 25): the
    /// binaries at `GODWIT_PG_NEWER_BIN` (scripts/test.sh installs the `pgserver` wheel, a
    /// PostgreSQL 16, into .venv and exports its `pginstall/bin`). Errors name the install
    /// command.
    pub fn newer_major(than: &PgBin) -> Result<PgBin, LabError> {
        let Some(dir) = std::env::var_os(NEWER_BIN_VAR) else {
            return Err(LabError::Prerequisite(format!(
                "{NEWER_BIN_VAR} is not set; {NEWER_INSTALL_HINT}"
            )));
        };
        let dir = PathBuf::from(dir);
        let bin = PgBin::at(&dir).map_err(|e| {
            LabError::Prerequisite(format!(
                "{NEWER_BIN_VAR}={}: {e}; {NEWER_INSTALL_HINT}",
                dir.display()
            ))
        })?;
        if bin.major <= than.major {
            return Err(LabError::Prerequisite(format!(
                "{NEWER_BIN_VAR}={} is PostgreSQL {}, not newer than the source's {}: point it at the binaries of a major above {} (the pgserver wheel ships 16; a newer one, e.g. from apt.postgresql.org, for a source on 16 or later)",
                dir.display(),
                bin.version,
                than.version,
                than.major
            )));
        }
        Ok(bin)
    }

    pub fn tool(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The extensions this installation offers, sorted: the control files in its
    /// `pg_config --sharedir`'s `extension` directory, which is what `pg_available_extensions`
    /// lists on its servers. Empty when `pg_config` does not answer.
    pub fn extensions(&self) -> Vec<String> {
        let Ok(out) = Command::new(self.tool("pg_config"))
            .arg("--sharedir")
            .output()
        else {
            return Vec::new();
        };
        let share = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let mut names: Vec<String> = fs::read_dir(share.join("extension"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".control").map(str::to_string)
            })
            .collect();
        names.sort();
        names
    }
}

/// The OS user the servers run as: `None` when godwit is not root (servers run as ourselves).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl ServerUser {
    /// As root: the user named by `GODWIT_LAB_USER`, default `postgres` (the Debian package
    /// creates it). Not root: `None`.
    pub fn for_this_process() -> Result<Option<ServerUser>, LabError> {
        if !Uid::effective().is_root() {
            return Ok(None);
        }
        let name = std::env::var("GODWIT_LAB_USER").unwrap_or_else(|_| "postgres".into());
        let user = User::from_name(&name)
            .map_err(|e| LabError::Prerequisite(format!("looking up OS user {name:?}: {e}")))?
            .ok_or_else(|| {
                LabError::Prerequisite(format!(
                    "godwit runs as root and PostgreSQL refuses root, but there is no OS user {name:?} to run the servers as; \
                     create one (`useradd --system {name}`; installing the postgresql package creates `postgres`) or set GODWIT_LAB_USER"
                ))
            })?;
        if user.uid.is_root() {
            return Err(LabError::Prerequisite(format!(
                "GODWIT_LAB_USER={name} is root; PostgreSQL refuses to run as root: name an unprivileged user"
            )));
        }
        Ok(Some(ServerUser {
            name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        }))
    }

    /// Make `path` (a directory godwit created) belong to the server user.
    pub fn own(&self, path: &Path) -> Result<(), LabError> {
        nix::unistd::chown(
            path,
            Some(Uid::from_raw(self.uid)),
            Some(Gid::from_raw(self.gid)),
        )
        .map_err(|e| LabError::Io(format!("chown {} to {}: {e}", path.display(), self.name)))
    }
}

/// A command for a PostgreSQL binary: as the server user when root, with a clean environment
/// and `home` as working directory and `HOME`.
pub fn pg_command(program: &Path, user: Option<&ServerUser>, home: &Path) -> Command {
    let mut c = Command::new(program);
    c.current_dir(home)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home)
        .env("LC_ALL", "C")
        .stdin(Stdio::null());
    if let Some(u) = user {
        // std sets the groups to empty itself when a uid is given.
        std::os::unix::process::CommandExt::uid(&mut c, u.uid);
        std::os::unix::process::CommandExt::gid(&mut c, u.gid);
    }
    c
}

/// Run a PostgreSQL tool to completion; an error quotes its output.
pub fn run_tool(mut cmd: Command, what: &str) -> Result<String, LabError> {
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| LabError::Io(format!("{what}: cannot start: {e}")))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(LabError::Process(format!(
            "{what} failed ({}): {}",
            out.status,
            text.trim()
        )));
    }
    Ok(text)
}

/// A free loopback TCP port at the time of asking (another process may take it before the
/// server binds: [`start_server`] retries).
pub fn free_port() -> Result<u16, LabError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| LabError::Io(format!("bind: {e}")))?;
    Ok(l.local_addr()
        .map_err(|e| LabError::Io(e.to_string()))?
        .port())
}

/// Copy the directory `from` to `to` (must not exist) as the server user, modes kept
/// (`cp -a`): a restored snapshot's data directory.
pub fn copy_dir(
    user: Option<&ServerUser>,
    home: &Path,
    from: &Path,
    to: &Path,
) -> Result<(), LabError> {
    let mut c = pg_command(Path::new("cp"), user, home);
    c.arg("-a").arg(from).arg(to);
    run_tool(c, &format!("copy {} to {}", from.display(), to.display())).map(|_| ())
}

/// Bytes the files under `path` use (its size on the instance's disk: data, WAL, logs).
pub fn dir_bytes(path: &Path) -> u64 {
    fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// This process's real uid.
pub fn current_uid() -> u32 {
    Uid::current().as_raw()
}

/// Whether the server user can reach `path`: every ancestor must be searchable (x) for it.
/// A root-only ancestor (root's home is 0700) makes every server fail with "Permission
/// denied"; this says which directory and what to do instead.
pub fn check_reachable(path: &Path, user: Option<&ServerUser>) -> Result<(), LabError> {
    use std::os::unix::fs::MetadataExt;
    let Some(u) = user else { return Ok(()) };
    let mut cur = Some(path);
    while let Some(dir) = cur {
        if let Ok(m) = fs::metadata(dir) {
            let mode = m.mode();
            let ok = if m.uid() == u.uid {
                mode & 0o100 != 0
            } else if m.gid() == u.gid {
                mode & 0o010 != 0
            } else {
                mode & 0o001 != 0
            };
            if !ok {
                return Err(LabError::Prerequisite(format!(
                    "the servers run as OS user {} (PostgreSQL refuses root), which cannot enter {} (mode {:o}); \
                     put the lab elsewhere (--dir /tmp/godwit-lab) or `chmod o+x {}`",
                    u.name,
                    dir.display(),
                    mode & 0o777,
                    dir.display()
                )));
            }
        }
        cur = dir.parent();
    }
    Ok(())
}

/// A directory the server user owns (created if missing).
pub fn make_owned_dir(path: &Path, user: Option<&ServerUser>) -> Result<(), LabError> {
    fs::create_dir_all(path)
        .map_err(|e| LabError::Io(format!("create {}: {e}", path.display())))?;
    if let Some(u) = user {
        u.own(path)?;
    }
    Ok(())
}

/// `initdb` a new cluster in `data` (which must not exist): trust authentication (loopback
/// only: all of 127.0.0.0/8, whose addresses tell godwit, Envoy and direct clients apart for
/// the security groups, `crate::areas::set_hba_quarantine`), superuser `postgres`, UTF8,
/// C locale, no fsync of the new files.
pub fn initdb(
    bin: &PgBin,
    user: Option<&ServerUser>,
    home: &Path,
    data: &Path,
) -> Result<(), LabError> {
    initdb_with(bin, user, home, data, None)
}

/// [`initdb`] with WAL segments of `wal_segment_mib` MiB (`None`: PostgreSQL's 16). RDS for
/// PostgreSQL runs 64 MiB segments: the size of one tooth of an idle source's slot lag.
pub fn initdb_with(
    bin: &PgBin,
    user: Option<&ServerUser>,
    home: &Path,
    data: &Path,
    wal_segment_mib: Option<u32>,
) -> Result<(), LabError> {
    let mut c = pg_command(&bin.tool("initdb"), user, home);
    c.arg("-D")
        .arg(data)
        .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
        .args(["--locale=C"]);
    if let Some(mib) = wal_segment_mib {
        c.arg(format!("--wal-segsize={mib}"));
    }
    run_tool(c, &format!("initdb {}", data.display()))?;
    // initdb admits 127.0.0.1 only; godwit (127.0.0.2) and Envoy (127.0.0.3) come from
    // elsewhere on loopback. Rewritten in place: the file keeps its owner.
    let hba = data.join("pg_hba.conf");
    let text = fs::read_to_string(&hba)
        .map_err(|e| LabError::Io(format!("read {}: {e}", hba.display())))?;
    fs::write(&hba, text.replace(" 127.0.0.1/32 ", " 127.0.0.0/8 "))
        .map_err(|e| LabError::Io(format!("write {}: {e}", hba.display())))
}

/// How one server is started: everything `postgres` needs on its command line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerSpec {
    pub data: PathBuf,
    /// Socket directory (`-k`), one per cluster.
    pub socket_dir: PathBuf,
    /// Server log (stderr).
    pub log: PathBuf,
    /// `-c name=value` settings, in order.
    pub settings: Vec<(String, String)>,
}

/// A started server: the postmaster's pid and port. Not killed on drop: a lab's servers
/// outlive the process that started them (see the module docs); [`crate::Lab`] and test
/// guards stop them by pid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Server {
    pub pid: u32,
    pub port: u16,
    pub spec: ServerSpec,
}

impl Server {
    /// `host=127.0.0.1 port=P user=postgres dbname=postgres`.
    pub fn conninfo(&self, user: &str, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} dbname={dbname} connect_timeout=5",
            self.port
        )
    }
}

/// Start `postgres` for `spec` on `port` (0: a free port, retried on bind races), wait until
/// `postmaster.pid` says `ready` (primary) or `standby` (hot standby), and return it.
pub fn start_server(
    bin: &PgBin,
    user: Option<&ServerUser>,
    home: &Path,
    spec: &ServerSpec,
    port: u16,
    timeout: Duration,
) -> Result<Server, LabError> {
    start_recorded(bin, user, home, spec, port, timeout, "start", |_, _| Ok(()))
}

/// [`start_server`], calling `record(pid, port)` right after each spawn, before waiting for
/// the server to be ready: a caller killed while the server starts has recorded its pid (and
/// [`running_pid`] finds it by its data directory even if the kill came between the spawn and
/// the record). A `record` error stops the server it was told about. `op` names the crash
/// points `<op>:spawned` and `<op>:recorded` ([`crash_point`]).
#[allow(clippy::too_many_arguments)]
pub fn start_recorded(
    bin: &PgBin,
    user: Option<&ServerUser>,
    home: &Path,
    spec: &ServerSpec,
    port: u16,
    timeout: Duration,
    op: &str,
    mut record: impl FnMut(u32, u16) -> Result<(), LabError>,
) -> Result<Server, LabError> {
    let attempts = if port == 0 { 5 } else { 1 };
    let mut last = String::new();
    for _ in 0..attempts {
        let p = if port == 0 { free_port()? } else { port };
        // A postmaster.pid left by a server that was killed (its pid reused by another
        // process, or a zombie) makes `postgres` refuse to start; one of a live server is
        // never removed (`running_pid` names it and callers adopt it instead).
        if running_pid(&spec.data).is_none() {
            let _ = fs::remove_file(spec.data.join("postmaster.pid"));
        }
        let (pid, log_at_start) = spawn_server(bin, user, home, spec, p)?;
        crash_point(&format!("{op}:spawned"));
        if let Err(e) = record(pid, p) {
            stop_pid(pid, Signal::SIGINT, Duration::from_secs(10));
            return Err(e);
        }
        crash_point(&format!("{op}:recorded"));
        match wait_ready(spec, pid, log_at_start, timeout) {
            Ok(()) => {
                return Ok(Server {
                    pid,
                    port: p,
                    spec: spec.clone(),
                });
            }
            Err(StartError::PortTaken(log)) => last = log,
            Err(StartError::Other(e)) => return Err(e),
        }
    }
    Err(LabError::Process(format!(
        "postgres could not bind a port after {attempts} attempts; last log:\n{last}"
    )))
}

/// The server already running on `spec`'s data directory (a process killed while starting or
/// rebooting it left it unrecorded), once it is ready: its pid and the port its
/// `postmaster.pid` names. `None` when no postmaster runs there.
pub fn adopt(spec: &ServerSpec, timeout: Duration) -> Option<Result<Server, LabError>> {
    let pid = running_pid(&spec.data)?;
    let log_at_start = fs::metadata(&spec.log).map(|m| m.len()).unwrap_or(0);
    Some(match wait_ready(spec, pid, log_at_start, timeout) {
        Ok(()) => match read_pid_file(&spec.data) {
            Some(f) if f.pid == pid => Ok(Server {
                pid,
                port: f.port,
                spec: spec.clone(),
            }),
            _ => Err(LabError::Process(format!(
                "the server (pid {pid}) on {} stopped while being adopted",
                spec.data.display()
            ))),
        },
        Err(StartError::PortTaken(log)) => Err(LabError::Process(log)),
        Err(StartError::Other(e)) => Err(e),
    })
}

/// Why a start failed: a bind race (retried on another port) or anything else.
pub enum StartError {
    PortTaken(String),
    Other(LabError),
}

/// Spawn `postgres` for `spec` on `port` and return its pid and where its log stood, without
/// waiting: see [`wait_ready`].
pub fn spawn_server(
    bin: &PgBin,
    user: Option<&ServerUser>,
    home: &Path,
    spec: &ServerSpec,
    port: u16,
) -> Result<(u32, u64), LabError> {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log)
        .map_err(|e| LabError::Io(format!("open {}: {e}", spec.log.display())))?;
    let log_at_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let mut c = pg_command(&bin.tool("postgres"), user, home);
    c.arg("-D")
        .arg(&spec.data)
        .arg("-p")
        .arg(port.to_string())
        .arg("-k")
        .arg(&spec.socket_dir)
        .args(["-c", "listen_addresses=127.0.0.1"]);
    for (k, v) in &spec.settings {
        c.arg("-c").arg(format!("{k}={v}"));
    }
    let err_log = log.try_clone().map_err(|e| LabError::Io(e.to_string()))?;
    c.stdout(log).stderr(err_log);
    let child = c
        .spawn()
        .map_err(|e| LabError::Io(format!("start {}: {e}", bin.tool("postgres").display())))?;
    // The Child handle is dropped without waiting: the server is not ours to reap once this
    // process exits; stop_pid and wait_ready reap it while it is.
    Ok((child.id(), log_at_start))
}

/// Wait until the postmaster `pid` of `spec` says `ready` or `standby` in its
/// `postmaster.pid`; stop it (SIGKILL) if it is not ready within `timeout`.
pub fn wait_ready(
    spec: &ServerSpec,
    pid: u32,
    log_at_start: u64,
    timeout: Duration,
) -> Result<(), StartError> {
    let started = Instant::now();
    loop {
        reap(Pid::from_raw(pid as i32));
        if !alive(pid) {
            let text = log_since(&spec.log, log_at_start);
            if text.contains("could not bind") || text.contains("Address already in use") {
                return Err(StartError::PortTaken(text));
            }
            return Err(StartError::Other(LabError::Process(format!(
                "postgres for {} exited while starting; log:\n{}",
                spec.data.display(),
                text.trim()
            ))));
        }
        if let Some(state) = postmaster_state(&spec.data, pid)
            && (state == "ready" || state == "standby")
        {
            return Ok(());
        }
        if started.elapsed() > timeout {
            stop_pid(pid, Signal::SIGKILL, Duration::from_secs(5));
            return Err(StartError::Other(LabError::Process(format!(
                "postgres for {} not ready after {timeout:?}; log:\n{}",
                spec.data.display(),
                log_since(&spec.log, log_at_start).trim()
            ))));
        }
        pause(Duration::from_millis(10));
    }
}

fn log_since(path: &Path, from: u64) -> String {
    let all = fs::read(path).unwrap_or_default();
    String::from_utf8_lossy(&all[(from as usize).min(all.len())..]).into_owned()
}

/// Line 8 of `postmaster.pid` (`starting`, `ready`, `standby`, `stopping`) when line 1 is `pid`.
pub fn postmaster_state(data: &Path, pid: u32) -> Option<String> {
    let text = fs::read_to_string(data.join("postmaster.pid")).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    if lines.first()?.trim() != pid.to_string() {
        return None;
    }
    lines.get(7).map(|s| s.trim().to_string())
}

/// What `postmaster.pid` says: line 1 the pid, line 4 the port, line 8 the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidFile {
    pub pid: u32,
    pub port: u16,
    pub state: Option<String>,
}

pub fn read_pid_file(data: &Path) -> Option<PidFile> {
    let text = fs::read_to_string(data.join("postmaster.pid")).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    Some(PidFile {
        pid: lines.first()?.trim().parse().ok()?,
        port: lines
            .get(3)
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(0),
        state: lines.get(7).map(|s| s.trim().to_string()),
    })
}

/// The postmaster running on `data`: the pid in `data/postmaster.pid`, if that process is
/// alive and is the postmaster of `data` — it works in its data directory (the postmaster
/// changes into it before writing the file), which tells it from an unrelated process that
/// reused the pid of a server killed without removing its file.
pub fn running_pid(data: &Path) -> Option<u32> {
    let pid = read_pid_file(data)?.pid;
    let here = fs::canonicalize(data).ok()?;
    (alive(pid) && cwd_of(pid).is_some_and(|cwd| cwd == here)).then_some(pid)
}

/// The working directory of `pid` (`/proc/PID/cwd`), if readable.
pub fn cwd_of(pid: u32) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/cwd")).ok()
}

/// A process of the lab found by [`lab_processes`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabProcess {
    pub pid: u32,
    pub ppid: u32,
    /// `/proc/PID/comm`: `postgres`, `pg_basebackup`, `pg_recvlogical`, `envoy`, `initdb`.
    pub name: String,
    pub cwd: PathBuf,
    /// The arguments, space-separated (a server's children rewrite theirs to a title).
    pub cmdline: String,
}

/// Programs the lab starts.
const LAB_PROGRAMS: &[&str] = &[
    "postgres",
    "pg_basebackup",
    "pg_recvlogical",
    "initdb",
    "envoy",
];

/// Every live process the lab under `dir` may have started, recorded or not: the programs it
/// runs ([`LAB_PROGRAMS`]) working inside `dir` (servers work in their data directory, the
/// tools in the lab's: [`pg_command`]) or naming `dir` on their command line (Envoy's
/// bootstrap lives there). A process godwit was killed before recording is found this way.
pub fn lab_processes(dir: &Path) -> Vec<LabProcess> {
    let Ok(dir) = fs::canonicalize(dir) else {
        return Vec::new();
    };
    let needle = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || !alive(pid) {
            continue;
        }
        let name = fs::read_to_string(entry.path().join("comm"))
            .map(|c| c.trim().to_string())
            .unwrap_or_default();
        if !LAB_PROGRAMS.contains(&name.as_str()) {
            continue;
        }
        let cwd = cwd_of(pid).unwrap_or_default();
        let cmdline = fs::read(entry.path().join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        if !(cwd.starts_with(&dir) || cmdline.contains(&needle)) {
            continue;
        }
        let ppid = fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1).map(str::to_string))
            })
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        found.push(LabProcess {
            pid,
            ppid,
            name,
            cwd,
            cmdline: cmdline.trim().to_string(),
        });
    }
    found.sort_by_key(|p| p.pid);
    found
}

/// Stop every process [`lab_processes`] finds under `dir`: the ones whose parent is not one
/// of them (postmasters, tools, Envoy) with `SIGINT` (a server's fast shutdown; the tools and
/// Envoy exit on it), then whatever is left with `SIGKILL`. Returns how many were found.
pub fn stop_lab_processes(dir: &Path, grace: Duration) -> usize {
    let found = lab_processes(dir);
    let pids: Vec<u32> = found.iter().map(|p| p.pid).collect();
    for p in found.iter().filter(|p| !pids.contains(&p.ppid)) {
        let _ = kill(Pid::from_raw(p.pid as i32), Signal::SIGINT);
    }
    for p in found.iter().filter(|p| !pids.contains(&p.ppid)) {
        stop_pid(p.pid, Signal::SIGINT, grace);
    }
    // Children outliving their parent (a backend of a SIGKILLed postmaster exits on its own
    // within a moment; anything else is killed).
    for p in lab_processes(dir) {
        stop_pid(p.pid, Signal::SIGKILL, Duration::from_secs(5));
    }
    found.len()
}

/// The process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Send `signal` to `pid` (SIGHUP: a server rereads its configuration and `pg_hba.conf`).
pub fn signal(pid: u32, signal: Signal) -> Result<(), LabError> {
    kill(Pid::from_raw(pid as i32), signal)
        .map_err(|e| LabError::Process(format!("signal {signal} to pid {pid}: {e}")))
}

/// Send `signal` to `pid`, then wait until it is gone; after `grace` send SIGKILL. Works for
/// processes that are not our children. Returns whether SIGKILL was needed.
pub fn stop_pid(pid: u32, signal: Signal, grace: Duration) -> bool {
    if !alive(pid) {
        return false;
    }
    let p = Pid::from_raw(pid as i32);
    let _ = kill(p, signal);
    // Our own child must be reaped to stop being a zombie; anyone else's is not ours to wait.
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        reap(p);
        if !alive(pid) {
            return false;
        }
        pause(Duration::from_millis(5));
    }
    let _ = kill(p, Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < deadline {
        reap(p);
        pause(Duration::from_millis(5));
    }
    true
}

/// Fault injection for the crash tests (`tests/tests/lab_crash.rs`): when the environment
/// variable `GODWIT_LAB_CRASH_AT` names `point` (`<op>:<moment>`, e.g.
/// `reboot_instance:signalled`), this process kills itself with SIGKILL here — between two of
/// an operation's actions, where no journal record marks the spot. Unset, it costs one
/// environment lookup per point.
pub fn crash_point(point: &str) {
    if std::env::var_os("GODWIT_LAB_CRASH_AT").is_some_and(|p| p == point) {
        let _ = kill(Pid::this(), Signal::SIGKILL);
    }
}

/// Supervising processes happens in real time, outside any run (a run's waits go through its
/// clock; starting a server is not one of them).
#[allow(clippy::disallowed_methods)]
pub(crate) fn pause(d: Duration) {
    std::thread::sleep(d);
}

fn reap(p: Pid) {
    let _ = nix::sys::wait::waitpid(p, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
}

/// Fast shutdown (SIGINT): active transactions are rolled back, the server checkpoints and
/// exits; SIGKILL after 30 s.
pub fn stop_server(server: &Server) {
    stop_pid(server.pid, Signal::SIGINT, Duration::from_secs(30));
}

/// `pg_basebackup -R -C -S slot -X stream -c fast` from `primary` into `data` (must not
/// exist): a streaming replica's data directory with `standby.signal` and `primary_conninfo`.
/// `record(pid)` is called as soon as it is spawned (it outlives a caller killed meanwhile).
pub fn basebackup(
    bin: &PgBin,
    user: Option<&ServerUser>,
    home: &Path,
    primary: &Server,
    data: &Path,
    slot: &str,
    record: impl FnOnce(u32) -> Result<(), LabError>,
) -> Result<(), LabError> {
    base_backup(
        bin,
        user,
        home,
        primary,
        data,
        Some(slot),
        "create_replica_cluster:copying",
        record,
    )
}

/// `pg_basebackup -X stream -c fast` of `primary` into `data` (must not exist): with `slot`, a
/// streaming replica's directory (`-R -C -S slot`); without, a self-contained copy (a
/// snapshot: its WAL streamed through a temporary slot, no standby configuration).
/// `record(pid)` is called as soon as it is spawned; `crash` names the crash point after it.
#[allow(clippy::too_many_arguments)]
pub fn base_backup(
    bin: &PgBin,
    user: Option<&ServerUser>,
    home: &Path,
    primary: &Server,
    data: &Path,
    slot: Option<&str>,
    crash: &str,
    record: impl FnOnce(u32) -> Result<(), LabError>,
) -> Result<(), LabError> {
    let mut c = pg_command(&bin.tool("pg_basebackup"), user, home);
    c.args([
        "-h",
        "127.0.0.1",
        "-p",
        &primary.port.to_string(),
        "-U",
        "postgres",
    ])
    .arg("-D")
    .arg(data)
    .args(["-X", "stream", "-c", "fast", "--no-sync"]);
    if let Some(slot) = slot {
        c.args(["-R", "-C", "-S", slot]);
    }
    let what = format!("pg_basebackup into {}", data.display());
    let child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| LabError::Io(format!("{what}: cannot start: {e}")))?;
    if let Err(e) = record(child.id()) {
        stop_pid(child.id(), Signal::SIGTERM, Duration::from_secs(5));
        return Err(e);
    }
    crash_point(crash);
    let out = child
        .wait_with_output()
        .map_err(|e| LabError::Io(format!("{what}: {e}")))?;
    if !out.status.success() {
        return Err(LabError::Process(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Settings every lab primary starts with: logical decoding for CDC, room for replicas and
/// slots, replicas that report their position (`hot_standby_feedback`), and no fsync — a lab
/// server's data is throwaway, and fsync dominates start and restart times on shared disks.
pub const PRIMARY_SETTINGS: &[(&str, &str)] = &[
    ("wal_level", "logical"),
    ("max_wal_senders", "10"),
    ("max_replication_slots", "10"),
    ("hot_standby_feedback", "on"),
    ("fsync", "off"),
    ("synchronous_commit", "on"),
    ("full_page_writes", "on"),
    ("recovery_init_sync_method", "syncfs"),
];

/// Throwaway clusters in a temporary directory (owned by the server user), all stopped by pid
/// and deleted when this is dropped — also when a test panics. For tests and benchmarks; a
/// lab that must outlive its process is a [`crate::Lab`].
pub struct Scratch {
    pub bin: PgBin,
    pub user: Option<ServerUser>,
    dir: tempfile::TempDir,
    pids: std::sync::Mutex<Vec<u32>>,
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scratch")
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl Scratch {
    /// Locate the binaries and the server user, and make the directory. Errors name the
    /// missing prerequisite and its install command.
    pub fn new() -> Result<Scratch, LabError> {
        let bin = PgBin::locate()?;
        let user = ServerUser::for_this_process()?;
        // Short path: socket paths are limited to 107 bytes.
        let dir = tempfile::Builder::new()
            .prefix("godwit-pg-")
            .tempdir_in("/tmp")
            .map_err(|e| LabError::Io(format!("temp dir: {e}")))?;
        if let Some(u) = &user {
            u.own(dir.path())?;
        }
        Ok(Scratch {
            bin,
            user,
            dir,
            pids: std::sync::Mutex::new(Vec::new()),
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    fn spec(&self, name: &str, settings: &[(&str, &str)]) -> Result<ServerSpec, LabError> {
        let socket_dir = self.path().join(format!("{name}.s"));
        make_owned_dir(&socket_dir, self.user.as_ref())?;
        Ok(ServerSpec {
            data: self.path().join(name),
            socket_dir,
            log: self.path().join(format!("{name}.log")),
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
    }

    /// `initdb` and start a primary named `name` with [`PRIMARY_SETTINGS`] plus `extra`.
    pub fn primary(&self, name: &str, extra: &[(&str, &str)]) -> Result<Server, LabError> {
        let mut settings = PRIMARY_SETTINGS.to_vec();
        settings.extend_from_slice(extra);
        let spec = self.spec(name, &settings)?;
        initdb(&self.bin, self.user.as_ref(), self.path(), &spec.data)?;
        self.start(&spec)
    }

    /// A streaming replica of `primary` through `pg_basebackup -R -C -S name`, started and
    /// `standby`.
    pub fn replica(&self, primary: &Server, name: &str) -> Result<Server, LabError> {
        let spec = self.spec(name, PRIMARY_SETTINGS)?;
        basebackup(
            &self.bin,
            self.user.as_ref(),
            self.path(),
            primary,
            &spec.data,
            &name.replace('-', "_"),
            |_| Ok(()),
        )?;
        self.start(&spec)
    }

    /// Start (or restart) the server of `spec` on a free port.
    pub fn start(&self, spec: &ServerSpec) -> Result<Server, LabError> {
        let s = start_server(
            &self.bin,
            self.user.as_ref(),
            self.path(),
            spec,
            0,
            Duration::from_secs(60),
        )?;
        self.pids.lock().unwrap().push(s.pid);
        Ok(s)
    }

    /// Fast shutdown of `server`.
    pub fn stop(&self, server: &Server) {
        stop_server(server);
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for pid in self.pids.lock().map(|p| p.clone()).unwrap_or_default() {
            stop_pid(pid, Signal::SIGINT, Duration::from_secs(10));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alive_sees_this_process_and_not_a_free_pid() {
        assert!(alive(std::process::id()));
        assert!(!alive(u32::MAX / 2));
    }

    #[test]
    fn a_directory_without_the_tools_is_refused_with_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let e = PgBin::at(dir.path()).unwrap_err();
        assert!(e.contains("has no initdb"), "{e}");
    }

    #[test]
    fn postmaster_state_reads_line_eight_of_the_right_pid() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("postmaster.pid"),
            "4242\n/data\n1700000000\n5432\n/tmp\n127.0.0.1\n  1234   5678\nready   \n",
        )
        .unwrap();
        assert_eq!(postmaster_state(dir.path(), 4242).as_deref(), Some("ready"));
        assert_eq!(postmaster_state(dir.path(), 4243), None);
    }
}
