//! The front door of every endpoint: what RDS puts between a client and PostgreSQL, on one
//! loopback address per endpoint.
//!
//! A new connection is first admitted or not by the database's security groups ([`Net`]): one
//! no rule admits is held open and never answered, as a dropped SYN leaves a client waiting
//! for its connect timeout (connections already established stay: groups are stateful). Then
//! the PostgreSQL protocol: an `SSLRequest` is answered with TLS under the endpoint's
//! certificate; the startup message names the user. A member of `rds_iam` is asked for a
//! cleartext password — the IAM auth token — which must be valid for this endpoint, this
//! user, now, under the test's credentials ([`super::sigv4`]) and the database must have IAM
//! authentication enabled; anything else is refused with PostgreSQL's own
//! `FATAL 28P01 PAM authentication failed`, as RDS answers, and an IAM login without TLS with
//! `28000` (RDS's `pg_hba.conf` has only `hostssl` lines for `rds_iam`). Other roles
//! authenticate with the server itself. Past that, bytes are relayed both ways to the server
//! that serves the endpoint now (a cluster endpoint: its writer).
//!
//! PostgreSQL cannot check a SigV4 signature itself, hence this front; the server behind it
//! trusts loopback (the lab's servers, `initdb -A trust`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::net::Net;
use super::sigv4;

const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;
const PROTOCOL_3: u32 = 196_608;

/// How long a refused (dropped) connection is held before it is closed: longer than any
/// client's connect timeout (godwit's is 15 s).
const DROPPED_HOLD: Duration = Duration::from_secs(120);
/// Longest TLS handshake and startup exchange.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(30);

/// What an endpoint leads to.
#[derive(Debug, Clone, PartialEq)]
pub enum Serves {
    /// An instance's own endpoint.
    Instance(String),
    /// A cluster's writer (cluster) endpoint.
    Writer(String),
    /// A cluster's reader endpoint (its only instance is the writer: RDS then sends readers
    /// there too).
    Reader(String),
}

/// One endpoint: where it listens and whose rules apply.
#[derive(Debug)]
pub struct Door {
    pub ip: std::net::Ipv4Addr,
    pub port: u16,
    pub serves: Serves,
    /// The database whose security groups and IAM setting apply: the instance, or the
    /// cluster (for the cluster's endpoints and its members).
    pub access: String,
    pub tls: Arc<rustls::ServerConfig>,
}

impl Door {
    /// `HOST:PORT` as a token names it.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }
}

/// What every door shares: the VPC, the lab's servers, the keys RDS knows.
pub struct Shared {
    pub net: Mutex<Net>,
    pub lab_dir: PathBuf,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    /// The superuser the harness itself logs in as (RDS's `rdsadmin`).
    pub admin: String,
    pub log: Mutex<Option<std::fs::File>>,
    /// Every connection any door accepted, in order: the witness of who reached (or tried
    /// to reach) a database, whatever the security groups then decided.
    pub arrivals: Mutex<Vec<Arrival>>,
}

/// One connection a door accepted (before the security groups decide: a dropped attempt is
/// an arrival too).
#[derive(Debug, Clone, PartialEq)]
pub struct Arrival {
    /// When it arrived, epoch milliseconds.
    pub at_ms: i64,
    /// The door's `ADDRESS:PORT`.
    pub endpoint: String,
    /// The database the door leads to (an instance, or a cluster for its endpoints).
    pub db: String,
    /// The client's address (godwit's is `127.0.0.1`).
    pub peer: IpAddr,
    /// Whether the security groups admitted it.
    pub admitted: bool,
    /// The user its startup message named, once it sent one.
    pub user: Option<String>,
    /// The `application_name` of its startup message (godwit's is `godwit`).
    pub application_name: Option<String>,
}

impl Shared {
    pub fn log(&self, line: String) {
        use std::io::Write;
        if let Some(f) = self.log.lock().unwrap().as_mut() {
            let _ = writeln!(f, "{} {line}", now_s());
        }
    }

    /// The loopback port of the server `serves` leads to now.
    fn upstream(&self, serves: &Serves) -> Result<u16, String> {
        let st = godwit_lab::LabState::load(&self.lab_dir).map_err(|e| e.to_string())?;
        let inst = match serves {
            Serves::Instance(id) => st.instances.get(id),
            Serves::Writer(c) | Serves::Reader(c) => st.serving(c),
        }
        .ok_or_else(|| format!("nothing serves {serves:?} yet"))?;
        match inst.pid {
            Some(pid) if godwit_lab::pgproc::alive(pid) && inst.status == "available" => {
                Ok(inst.port)
            }
            _ => Err(format!("{} is {} (not running)", inst.id, inst.status)),
        }
    }
}

fn now_s() -> i64 {
    now_ms() / 1000
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Accept connections on `listener` for `door` until the task is aborted.
pub async fn serve(listener: TcpListener, door: Arc<Door>, shared: Arc<Shared>) {
    loop {
        let Ok((sock, peer)) = listener.accept().await else {
            continue;
        };
        let (door, shared) = (door.clone(), shared.clone());
        tokio::spawn(async move {
            if let Err(e) = handle(sock, peer, &door, &shared).await {
                shared.log(format!("{} from {peer}: {e}", door.authority()));
            }
        });
    }
}

async fn handle(
    sock: TcpStream,
    peer: SocketAddr,
    door: &Door,
    shared: &Shared,
) -> Result<(), String> {
    let _ = sock.set_nodelay(true);
    let admitted = shared
        .net
        .lock()
        .unwrap()
        .admits(&door.access, peer.ip(), door.port);
    let arrival = {
        let mut arrivals = shared.arrivals.lock().unwrap();
        arrivals.push(Arrival {
            at_ms: now_ms(),
            endpoint: door.authority(),
            db: door.access.clone(),
            peer: peer.ip(),
            admitted: admitted.is_ok(),
            user: None,
            application_name: None,
        });
        arrivals.len() - 1
    };
    if let Err(why) = admitted {
        shared.log(format!("{} from {peer}: dropped: {why}", door.authority()));
        hold(sock).await;
        return Ok(());
    }
    let (client, startup, tls) = tokio::time::timeout(HANDSHAKE_LIMIT, open(sock, door))
        .await
        .map_err(|_| "no startup message in time".to_string())??;
    let Some(startup) = startup else {
        return Ok(()); // a cancel request, relayed
    };
    let mut client = client;
    let user = param(&startup, "user").unwrap_or_default();
    if let Some(a) = shared.arrivals.lock().unwrap().get_mut(arrival) {
        a.user = Some(user.clone());
        a.application_name = param(&startup, "application_name");
    }
    let database = param(&startup, "database").unwrap_or_else(|| user.clone());
    let port = match shared.upstream(&door.serves) {
        Ok(p) => p,
        Err(e) => {
            // RDS while an instance restarts: the connection fails.
            let _ = fatal(
                &mut client,
                "57P03",
                "the database system is not accepting connections",
            )
            .await;
            return Err(e);
        }
    };
    if iam_member(port, &user, &shared.admin).await? {
        let access = shared.net.lock().unwrap().access.get(&door.access).cloned();
        if !tls {
            // Logged before the answer: a test reading the log after its refusal finds it.
            shared.log(format!(
                "{} from {peer}: refused {user}: IAM login without TLS",
                door.authority()
            ));
            return fatal(
                &mut client,
                "28000",
                &format!(
                    "no pg_hba.conf entry for host \"{}\", user \"{user}\", database \"{database}\", no encryption",
                    peer.ip()
                ),
            )
            .await;
        }
        // AuthenticationCleartextPassword.
        client
            .write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3])
            .await
            .map_err(|e| e.to_string())?;
        let token = tokio::time::timeout(HANDSHAKE_LIMIT, read_password(&mut client))
            .await
            .map_err(|_| "no password in time".to_string())??;
        let verdict = match access {
            Some(a) if a.iam => sigv4::verify(
                &token,
                &sigv4::Expect {
                    endpoint: &door.authority(),
                    user: &user,
                    region: &shared.region,
                    access_key: &shared.access_key,
                    secret_key: &shared.secret_key,
                    now: now_s(),
                },
            )
            .map_err(|e| ("PAM", e)),
            _ => Err((
                "password",
                format!("IAM database authentication is disabled on {}", door.access),
            )),
        };
        if let Err((method, why)) = verdict {
            shared.log(format!(
                "{} from {peer}: refused {user}: {why}",
                door.authority()
            ));
            return fatal(
                &mut client,
                "28P01",
                &format!("{method} authentication failed for user \"{user}\""),
            )
            .await;
        }
        shared.log(format!(
            "{} from {peer}: {user} signed in with IAM",
            door.authority()
        ));
    }
    let mut server = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("server on port {port}: {e}"))?;
    let _ = server.set_nodelay(true);
    server
        .write_all(&startup_packet(&startup))
        .await
        .map_err(|e| e.to_string())?;
    // Ends when either side closes (a reboot ends the server's side).
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    Ok(())
}

/// A dropped connection: never answered, closed after [`DROPPED_HOLD`] or when the client
/// gives up.
async fn hold(mut sock: TcpStream) {
    let mut sink = [0u8; 512];
    let _ = tokio::time::timeout(DROPPED_HOLD, async {
        while let Ok(n) = sock.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

type Startup = Vec<(String, String)>;

/// The client stream (TLS if asked for), its startup parameters (`None`: a cancel request,
/// already relayed), and whether it is TLS.
async fn open(
    mut sock: TcpStream,
    door: &Door,
) -> Result<(Box<dyn Io>, Option<Startup>, bool), String> {
    loop {
        let (len, code) = read_head(&mut sock).await?;
        match code {
            SSL_REQUEST => {
                sock.write_all(b"S").await.map_err(|e| e.to_string())?;
                let acceptor = tokio_rustls::TlsAcceptor::from(door.tls.clone());
                let mut tls = acceptor
                    .accept(sock)
                    .await
                    .map_err(|e| format!("TLS handshake: {e}"))?;
                let (len, code) = read_head(&mut tls).await?;
                if code != PROTOCOL_3 {
                    return Err(format!("unsupported protocol {code} after TLS"));
                }
                let startup = read_startup(&mut tls, len).await?;
                return Ok((Box::new(tls), Some(startup), true));
            }
            GSSENC_REQUEST => sock.write_all(b"N").await.map_err(|e| e.to_string())?,
            CANCEL_REQUEST => {
                // Relayed to every server of the door's database would need its key; the lab
                // has one server per endpoint, so the request goes there.
                let mut rest = [0u8; 8];
                sock.read_exact(&mut rest)
                    .await
                    .map_err(|e| e.to_string())?;
                return Err("cancel requests are not relayed by the harness".into());
            }
            PROTOCOL_3 => {
                let startup = read_startup(&mut sock, len).await?;
                return Ok((Box::new(sock), Some(startup), false));
            }
            other => return Err(format!("unsupported protocol {other}")),
        }
    }
}

async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> Result<(u32, u32), String> {
    let len = s.read_u32().await.map_err(|e| e.to_string())?;
    let code = s.read_u32().await.map_err(|e| e.to_string())?;
    if !(8..=10_000).contains(&len) {
        return Err(format!("startup packet of {len} bytes"));
    }
    Ok((len, code))
}

async fn read_startup<S: AsyncRead + Unpin>(s: &mut S, len: u32) -> Result<Startup, String> {
    let mut body = vec![0u8; len as usize - 8];
    s.read_exact(&mut body).await.map_err(|e| e.to_string())?;
    let mut fields = body
        .split(|b| *b == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned());
    let mut out = Vec::new();
    while let Some(k) = fields.next() {
        if k.is_empty() {
            break;
        }
        out.push((k, fields.next().unwrap_or_default()));
    }
    Ok(out)
}

fn param(startup: &Startup, key: &str) -> Option<String> {
    startup
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
}

fn startup_packet(startup: &Startup) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&PROTOCOL_3.to_be_bytes());
    for (k, v) in startup {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    out.extend(body);
    out
}

async fn read_password(client: &mut Box<dyn Io>) -> Result<String, String> {
    let tag = client.read_u8().await.map_err(|e| e.to_string())?;
    let len = client.read_u32().await.map_err(|e| e.to_string())?;
    if tag != b'p' || !(5..=10_000).contains(&len) {
        return Err(format!(
            "expected a password message, got {:?} of {len} bytes",
            tag as char
        ));
    }
    let mut body = vec![0u8; len as usize - 4];
    client
        .read_exact(&mut body)
        .await
        .map_err(|e| e.to_string())?;
    if body.last() == Some(&0) {
        body.pop();
    }
    String::from_utf8(body).map_err(|_| "password is not UTF-8".to_string())
}

/// `ErrorResponse` with severity FATAL, then the connection ends.
async fn fatal(client: &mut Box<dyn Io>, code: &str, message: &str) -> Result<(), String> {
    let mut body = Vec::new();
    for (f, v) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', code),
        (b'M', message),
    ] {
        body.push(f);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = vec![b'E'];
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend(body);
    client.write_all(&out).await.map_err(|e| e.to_string())?;
    let _ = client.shutdown().await;
    Ok(())
}

/// Whether `user` is a member of `rds_iam` on the server at `port` (asked as the harness's
/// superuser): RDS then takes only an IAM token as its password.
async fn iam_member(port: u16, user: &str, admin: &str) -> Result<bool, String> {
    let (c, conn) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={port} user={admin} dbname=postgres connect_timeout=5 application_name=godwit-harness-front"
        ),
        tokio_postgres::NoTls,
    )
    .await
    .map_err(|e| format!("ask the server on port {port} about {user}: {e}"))?;
    tokio::spawn(conn);
    // Granted membership, direct or through other roles, as `pg_hba.conf`'s `+rds_iam`
    // matches it; not pg_has_role, for which a superuser is a member of every role.
    let row = c
        .query_one(
            "WITH RECURSIVE m(oid) AS (
               SELECT oid FROM pg_roles WHERE rolname = 'rds_iam'
               UNION SELECT a.member FROM pg_auth_members a JOIN m ON a.roleid = m.oid)
             SELECT EXISTS (SELECT 1 FROM m JOIN pg_roles u ON u.oid = m.oid
                            WHERE u.rolname = $1 AND u.rolname <> 'rds_iam')",
            &[&user],
        )
        .await
        .map_err(|e| format!("ask the server on port {port} about {user}: {e}"))?;
    Ok(row.get::<_, bool>(0))
}
