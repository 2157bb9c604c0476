//! Instance operations that survive the death of the process doing them.
//!
//! Every operation on a server is recorded in `lab.json` before it acts ([`InstanceOp`]) and
//! done under the instance's [`OpLock`]; each action it takes is safe to take again:
//!
//! | killed after … | found by the next holder of the lock | it … |
//! |---|---|---|
//! | the intent was recorded | the old server (reboot) still on the data directory | stops it, starts the new one |
//! | the old server was signalled | it still shutting down | waits for it, starts the new one |
//! | the old server stopped | no server on the data directory | starts one |
//! | the new server was spawned, before its pid was recorded | a postmaster on the data directory ([`pgproc::running_pid`]) | adopts it |
//! | its pid was recorded, before it was ready | the same | adopts it |
//! | it was ready, before the operation was marked done | the same | adopts it, marks it done |
//!
//! The next holder is the step run again by `godwit resume` or the supervisor, which completes
//! an operation whose process died within a second ([`complete_interrupted`]), as RDS completes
//! a reboot or a creation it accepted whatever becomes of the caller.

use std::path::Path;
use std::time::Duration;

use crate::LabError;
use crate::pgproc::{self, Server, Signal};
use crate::state::{Instance, InstanceOp, LabState, OpLock};

/// How long a server may take to start (or stop) inside an operation.
pub const SERVER_TIMEOUT: Duration = Duration::from_secs(120);

/// Finish the operation recorded on instance `id` (nothing if none); the caller holds its
/// [`OpLock`]. On success the server runs, its pid and port are recorded and the operation is
/// cleared; on failure the operation stays recorded (the instance stays `rebooting` or
/// `creating`) for the next attempt.
pub fn complete(dir: &Path, id: &str) -> Result<Instance, LabError> {
    let st = LabState::load(dir)?;
    let inst = st
        .instances
        .get(id)
        .cloned()
        .ok_or_else(|| LabError::State(format!("the lab has no instance {id}")))?;
    let Some(op) = inst.op.clone() else {
        return Ok(inst);
    };
    let name = match &op {
        InstanceOp::Create => "create_cluster_instance",
        InstanceOp::Reboot { .. } => "reboot_instance",
    };
    if let InstanceOp::Reboot {
        old_pid: Some(old), ..
    } = &op
        && pgproc::running_pid(&inst.spec.data) == Some(*old)
    {
        // The server from before the reboot: a fast shutdown ends every session (again, if
        // a killed process had signalled it already).
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*old as i32), Signal::SIGINT);
        pgproc::crash_point("reboot_instance:signalled");
        pgproc::stop_pid(*old, Signal::SIGINT, Duration::from_secs(60));
        pgproc::crash_point("reboot_instance:stopped");
    }
    let server = start_or_adopt(&st, &inst, name)?;
    pgproc::crash_point(&format!("{name}:ready"));
    LabState::update(dir, |st| {
        let i = st
            .instances
            .get_mut(id)
            .ok_or_else(|| LabError::State(format!("instance {id} vanished while starting")))?;
        i.pid = Some(server.pid);
        i.port = server.port;
        i.status = "available".into();
        i.op = None;
        let message = match &op {
            InstanceOp::Create => "DB instance created",
            InstanceOp::Reboot { token, .. } => {
                if !i.reboots.contains(token) {
                    i.reboots.push(token.clone());
                }
                "DB instance restarted"
            }
        };
        let i = i.clone();
        st.event(id, false, message);
        Ok(i)
    })
}

/// The server of `inst`: the one already running on its data directory (adopted), else a new
/// one on its port (0: a free one), its pid recorded the moment it is spawned. It runs its
/// cluster's binaries ([`LabState::bin_of`]): a cluster of a newer major restarts as that major.
fn start_or_adopt(st: &LabState, inst: &Instance, op: &str) -> Result<Server, LabError> {
    if let Some(adopted) = pgproc::adopt(&inst.spec, SERVER_TIMEOUT) {
        return adopted;
    }
    let id = inst.id.clone();
    pgproc::start_recorded(
        st.bin_of(inst),
        st.user.as_ref(),
        &st.dir,
        &inst.spec,
        inst.port,
        SERVER_TIMEOUT,
        op,
        |pid, port| {
            LabState::update(&st.dir, |st| {
                if let Some(i) = st.instances.get_mut(&id) {
                    i.pid = Some(pid);
                    i.port = port;
                }
                Ok(())
            })
        },
    )
}

/// The supervisor's pass: complete every instance operation whose process died (its lock is
/// free). Returns the ids completed and the errors of those that could not be (they stay
/// recorded and are tried again on the next pass).
pub fn complete_interrupted(dir: &Path) -> (Vec<String>, Vec<String>) {
    let (mut done, mut failed) = (Vec::new(), Vec::new());
    let Ok(st) = LabState::load(dir) else {
        return (done, failed);
    };
    for id in st.pending_ops() {
        let Ok(Some(_lock)) = OpLock::try_take(dir, &id) else {
            continue; // a live process is doing it
        };
        match complete(dir, &id) {
            Ok(_) => done.push(id),
            Err(e) => failed.push(format!("{id}: {e}")),
        }
    }
    (done, failed)
}
