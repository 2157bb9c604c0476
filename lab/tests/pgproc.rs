//! The process harness against the real PostgreSQL server binaries.

use godwit_lab::pgproc::{Scratch, alive};

fn scratch() -> Scratch {
    Scratch::new().unwrap_or_else(|e| panic!("the lab needs PostgreSQL: {e}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn primary_and_streaming_replica_start_replicate_and_leave_no_process() {
    let pids;
    {
        let s = scratch();
        let p = s.primary("p", &[]).unwrap();
        let r = s.replica(&p, "r").unwrap();
        pids = [p.pid, r.pid];
        assert!(pids.iter().all(|p| alive(*p)));
        let (pc, conn) =
            tokio_postgres::connect(&p.conninfo("postgres", "postgres"), tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(conn);
        pc.batch_execute(
            "CREATE TABLE t(id int primary key); INSERT INTO t SELECT generate_series(1, 100)",
        )
        .await
        .unwrap();
        let lsn: String = pc
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await
            .unwrap()
            .get(0);
        let (rc, conn) =
            tokio_postgres::connect(&r.conninfo("postgres", "postgres"), tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(conn);
        let mut n = 0i64;
        for _ in 0..500 {
            let caught: bool = rc
                .query_one(
                    "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn",
                    &[&lsn],
                )
                .await
                .unwrap()
                .get(0);
            if caught {
                n = rc
                    .query_one("SELECT count(*) FROM t", &[])
                    .await
                    .unwrap()
                    .get(0);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(n, 100, "the replica replays the primary's rows");
        let state: String = pc
            .query_one("SELECT state FROM pg_stat_replication", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(state, "streaming");
    }
    // Dropping the Scratch stopped both servers by pid.
    assert!(
        pids.iter().all(|p| !alive(*p)),
        "servers left running: {pids:?}"
    );
}

#[test]
fn a_panicking_test_leaves_no_server_behind() {
    let pid = std::sync::Arc::new(std::sync::Mutex::new(0));
    let seen = pid.clone();
    let r = std::panic::catch_unwind(move || {
        let s = scratch();
        *seen.lock().unwrap() = s.primary("p", &[]).unwrap().pid;
        panic!("test failure while the server runs");
    });
    assert!(r.is_err());
    let pid = *pid.lock().unwrap();
    assert!(pid != 0 && !alive(pid), "server {pid} outlived the panic");
}

#[test]
fn a_directory_the_server_user_cannot_enter_is_refused_with_the_fix() {
    let Some(user) = godwit_lab::pgproc::ServerUser::for_this_process().unwrap() else {
        // Not root: servers run as ourselves and can enter whatever we can. The check is a
        // no-op, which is what this asserts.
        assert!(godwit_lab::pgproc::check_reachable(std::path::Path::new("/root"), None).is_ok());
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let inner = locked.join("lab");
    std::fs::create_dir(&inner).unwrap();
    let e = godwit_lab::pgproc::check_reachable(&inner, Some(&user))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot enter") && e.contains("locked") && e.contains("--dir"),
        "{e}"
    );
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    godwit_lab::pgproc::check_reachable(&inner, Some(&user)).unwrap();
}

#[test]
fn the_binaries_report_their_full_version_without_the_distribution_suffix() {
    // `postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)` → 15, "15.18": what a lab's
    // instances report as their engine version.
    let bin = godwit_lab::pgproc::PgBin::locate().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        bin.version.starts_with(&format!("{}.", bin.major)),
        "{bin:?}"
    );
    assert!(
        !bin.version.contains(' ') && !bin.version.contains('('),
        "{bin:?}"
    );
}
