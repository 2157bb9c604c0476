//! The moto server as a test's child process: started through `tests/support/moto_launcher.py`
//! (moto plus the behaviour it lacks, see docs/moto.md) on a free loopback port, stopped by pid
//! when the [`Moto`] guard drops — also when the test panics.
//!
//! The interpreter is `$GODWIT_MOTO_PYTHON` (exported by `scripts/test.sh`), else
//! `<repo>/.venv/bin/python`. A missing moto fails with the install command; nothing skips.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The moto version the aws world was tested with (and `scripts/test.sh` installs).
pub const MOTO_VERSION: &str = "5.2.5";

pub const INSTALL_COMMAND: &str = "scripts/test.sh (or: python3 -m venv .venv && \
.venv/bin/pip install 'moto[server]==5.2.5' cbor2)";

/// Static credentials moto accepts (it checks no signatures) and the region the tests use.
pub const ACCESS_KEY: &str = "AKIAGODWITTEST000000";
pub const SECRET_KEY: &str = "godwit-test-secret-key-not-a-real-one";
pub const REGION: &str = "eu-west-1";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The Python that has moto and cbor2, or why there is none.
pub fn python() -> Result<PathBuf, String> {
    let py = match std::env::var_os("GODWIT_MOTO_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => repo_root().join(".venv/bin/python"),
    };
    if !py.is_file() {
        return Err(format!(
            "no Python with moto at {}; install it with {INSTALL_COMMAND}",
            py.display()
        ));
    }
    let out = Command::new(&py)
        .args([
            "-c",
            "import moto, cbor2, werkzeug; print(moto.__version__)",
        ])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", py.display()))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() {
        return Err(format!(
            "{} cannot import moto and cbor2 ({}); install them with {INSTALL_COMMAND}",
            py.display(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ));
    }
    if version != MOTO_VERSION {
        return Err(format!(
            "moto {version} found, the tests are written against {MOTO_VERSION} (the launcher \
             patches its internals); install it with {INSTALL_COMMAND}"
        ));
    }
    Ok(py)
}

/// A running moto; killed by pid on drop.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    port: u16,
}

impl Moto {
    /// Start the launcher and wait (≤ 60 s) for its `ready URL` line. Panics with the install
    /// command when moto is missing.
    pub fn start() -> Moto {
        let py = python().unwrap_or_else(|e| panic!("{e}"));
        let mut child = Command::new(py)
            .arg(repo_root().join("tests/support/moto_launcher.py"))
            .args(["--host", "127.0.0.1", "--port", "0", "--exit-with-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the moto launcher");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep draining so the child never blocks on a full pipe.
            for _ in lines {}
        });
        let mut guard = Moto {
            child,
            url: String::new(),
            port: 0,
        };
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("moto launcher did not say ready within 60 s"));
        let url = line
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("unexpected first line from the moto launcher: {line}"))
            .to_string();
        guard.port = url.rsplit(':').next().unwrap().parse().unwrap();
        guard.url = url;
        guard
    }

    /// `POST /moto-api/reset`: every backend empty, injected faults cleared.
    pub fn reset(&self) {
        let (status, body) = self.http("POST", "/moto-api/reset", "");
        assert_eq!(status, 200, "moto reset: {body}");
    }

    /// Answer the next `times` calls of API `action` with HTTP `status` and error `code`.
    pub fn inject(&self, action: &str, status: u16, code: &str, times: u32) {
        let body = serde_json::json!({
            "action": action, "status": status, "code": code, "times": times,
            "message": format!("{code} injected by the test"),
        })
        .to_string();
        let (s, out) = self.http("POST", "/godwit/faults", &body);
        assert_eq!(s, 200, "inject: {out}");
    }

    /// How many faults were injected per action so far.
    pub fn injected(&self) -> serde_json::Value {
        let (_, body) = self.http("GET", "/godwit/faults", "");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["injected"].clone()
    }

    /// One plain HTTP/1.1 request to the launcher (no client library needed for three calls).
    pub fn http(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let status = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
        (status, body)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // Child::kill signals this child's own pid (never a process name).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The source RDS for PostgreSQL instance `orders-db` in moto, as the aws tests start from:
/// its own VPC (two subnets, a subnet group), an application security group admitting
/// `tcp/5432 from 10.0.0.0/8`, a custom parameter group `orders-pg15` with `work_mem` and
/// `max_wal_size` set, 7 days of backups, IAM database auth. Returns the VPC id and the group
/// id.
pub async fn seed_source(aws: &godwit_stdlib::aws::Aws) -> (String, String) {
    let ec2 = &aws.ec2;
    let rds = &aws.rds;
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.0.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc
        .unwrap()
        .vpc_id
        .unwrap();
    let mut subnets = Vec::new();
    for (i, az) in ["a", "b"].iter().enumerate() {
        let s = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(format!("10.0.{i}.0/24"))
            .availability_zone(format!("{REGION}{az}"))
            .send()
            .await
            .unwrap();
        subnets.push(s.subnet.unwrap().subnet_id.unwrap());
    }
    rds.create_db_subnet_group()
        .db_subnet_group_name("orders-subnets")
        .db_subnet_group_description("orders")
        .set_subnet_ids(Some(subnets))
        .send()
        .await
        .unwrap();
    let sg = ec2
        .create_security_group()
        .group_name("orders-app")
        .description("application access")
        .vpc_id(&vpc)
        .send()
        .await
        .unwrap()
        .group_id
        .unwrap();
    ec2.authorize_security_group_ingress()
        .group_id(&sg)
        .ip_protocol("tcp")
        .from_port(5432)
        .to_port(5432)
        .cidr_ip("10.0.0.0/8")
        .send()
        .await
        .unwrap();
    rds.create_db_parameter_group()
        .db_parameter_group_name("orders-pg15")
        .db_parameter_group_family("postgres15")
        .description("orders")
        .send()
        .await
        .unwrap();
    let p = |n: &str, v: &str| {
        aws_sdk_rds::types::Parameter::builder()
            .parameter_name(n)
            .parameter_value(v)
            .apply_method(aws_sdk_rds::types::ApplyMethod::PendingReboot)
            .build()
    };
    rds.modify_db_parameter_group()
        .db_parameter_group_name("orders-pg15")
        .parameters(p("work_mem", "8192"))
        .parameters(p("max_wal_size", "4096"))
        .send()
        .await
        .unwrap();
    rds.create_db_instance()
        .db_instance_identifier("orders-db")
        .engine("postgres")
        .engine_version("15.4")
        .db_instance_class("db.r6g.large")
        .allocated_storage(100)
        .master_username("postgres")
        .master_user_password("not-used-by-godwit")
        .backup_retention_period(7)
        .db_subnet_group_name("orders-subnets")
        .vpc_security_group_ids(&sg)
        .db_parameter_group_name("orders-pg15")
        .enable_iam_database_authentication(true)
        .send()
        .await
        .unwrap();
    (vpc, sg)
}

/// Put `value(minute)` as metric `name` of `DBInstanceIdentifier=id` for each minute of
/// `minutes` after `t0` (epoch seconds), 5 s into the minute, as RDS would publish it.
pub async fn put_minutes(
    aws: &godwit_stdlib::aws::Aws,
    name: &str,
    id: &str,
    t0: i64,
    minutes: impl IntoIterator<Item = i64>,
    value: impl Fn(i64) -> f64,
) {
    use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
    let minutes: Vec<i64> = minutes.into_iter().collect();
    for chunk in minutes.chunks(20) {
        let mut req = aws.cw.put_metric_data().namespace("AWS/RDS");
        for m in chunk {
            req = req.metric_data(
                MetricDatum::builder()
                    .metric_name(name)
                    .dimensions(
                        Dimension::builder()
                            .name("DBInstanceIdentifier")
                            .value(id)
                            .build(),
                    )
                    .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from_secs(
                        t0 + m * 60 + 5,
                    ))
                    .value(value(*m))
                    .build(),
            );
        }
        req.send().await.unwrap();
    }
}
