//! Toy primitives for exercising the engine without AWS or PostgreSQL.
//!
//! The toy world lives in a directory so that it survives a crashed process, exactly like the
//! real world does:
//! * `effects.jsonl` — every applied side effect, keyed by `(idempotency token, key)`;
//!   `toy::apply` is check-then-act, so a re-run step does not apply its effect twice;
//! * `calls.jsonl` — every call, including ones that found their effect already applied, so
//!   tests can see re-runs.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use godwit_engine::{Cancel, ErrorKind, Host, PrimitiveError};
use rhai::{Dynamic, Engine, EvalAltResult, FuncRegistration, Map, Module, NativeCallContext};
use serde_json::{Value, json};

/// Handle on a toy world directory.
#[derive(Debug, Clone)]
pub struct ToyWorld {
    dir: PathBuf,
}

impl ToyWorld {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        fs::create_dir_all(&dir).expect("toy world dir");
        ToyWorld { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn append(&self, file: &str, v: &Value) {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(file))
            .unwrap();
        f.write_all(format!("{v}\n").as_bytes()).unwrap();
        f.sync_data().unwrap();
    }

    fn read(&self, file: &str) -> Vec<Value> {
        fs::read_to_string(self.dir.join(file))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Applied effects: `(op, key)` in order.
    pub fn effects(&self) -> Vec<(String, String)> {
        self.read("effects.jsonl")
            .iter()
            .map(|v| {
                (
                    v["op"].as_str().unwrap().into(),
                    v["key"].as_str().unwrap().into(),
                )
            })
            .collect()
    }

    /// How many times each `op:key` was called (including idempotent no-ops).
    pub fn calls(&self) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for v in self.read("calls.jsonl") {
            *out.entry(format!(
                "{}:{}",
                v["op"].as_str().unwrap(),
                v["key"].as_str().unwrap()
            ))
            .or_default() += 1;
        }
        out
    }

    fn effect(&self, op: &str, token: &str, key: &str) -> Value {
        self.append(
            "calls.jsonl",
            &json!({"op": op, "key": key, "token": token}),
        );
        let existing = self
            .read("effects.jsonl")
            .into_iter()
            .find(|v| v["op"] == op && v["token"] == token && v["key"] == key);
        match existing {
            Some(_) => json!({"key": key, "op": op, "applied": true}),
            None => {
                self.append(
                    "effects.jsonl",
                    &json!({"op": op, "key": key, "token": token}),
                );
                json!({"key": key, "op": op, "applied": true})
            }
        }
    }
}

/// Install the `toy` module. `cancel` is the runner's token (for `toy::interrupt`).
pub fn register(engine: &mut Engine, host: &Host, world: &ToyWorld, cancel: &Cancel) {
    let mut m = Module::new();
    let (h, w) = (host.clone(), world.clone());
    FuncRegistration::new("apply")
        .with_volatility(true)
        .set_into_module(
            &mut m,
            move |nc: NativeCallContext, key: &str| -> Result<Dynamic, Box<EvalAltResult>> {
                let v = h
                    .call("toy", "apply", &json!({"key": key}), |cx| {
                        Ok(w.effect("apply", &cx.token(), key))
                    })
                    .map_err(|e| e.into_rhai_at(nc.call_position()))?;
                Ok(godwit_engine::run::from_json(&v))
            },
        );
    let (h, w) = (host.clone(), world.clone());
    FuncRegistration::new("revert")
        .with_volatility(true)
        .set_into_module(
            &mut m,
            move |key: &str| -> Result<Dynamic, Box<EvalAltResult>> {
                let v = h.call("toy", "revert", &json!({"key": key}), |cx| {
                    Ok(w.effect("revert", &cx.token(), key))
                })?;
                Ok(godwit_engine::run::from_json(&v))
            },
        );
    let h = host.clone();
    FuncRegistration::new("fail")
        .with_volatility(true)
        .set_into_module(
            &mut m,
            move |nc: NativeCallContext,
                  kind: &str,
                  message: &str|
                  -> Result<(), Box<EvalAltResult>> {
                let kind = match kind {
                    "NotFound" => ErrorKind::NotFound,
                    "Throttled" => ErrorKind::Throttled,
                    "Timeout" => ErrorKind::Timeout,
                    "Conflict" => ErrorKind::Conflict,
                    "Invalid" => ErrorKind::Invalid,
                    _ => ErrorKind::Internal,
                };
                h.call(
                    "toy",
                    "fail",
                    &json!({"kind": kind, "message": message}),
                    |_| {
                        Err::<(), _>(PrimitiveError::new(
                            "toy",
                            "fail",
                            kind,
                            message,
                            "toy hint: do the thing",
                        ))
                    },
                )
                .map_err(|e| e.into_rhai_at(nc.call_position()))
            },
        );
    // Fails (Throttled) the first `n` calls within a step, then succeeds.
    let (h, counts) = (
        host.clone(),
        Arc::new(Mutex::new(HashMap::<String, i64>::new())),
    );
    FuncRegistration::new("flaky")
        .with_volatility(true)
        .set_into_module(&mut m, move |n: i64| -> Result<i64, Box<EvalAltResult>> {
            h.call("toy", "flaky", &json!({"n": n}), |cx| {
                let mut c = counts.lock().unwrap();
                let seen = c.entry(cx.token()).or_default();
                *seen += 1;
                if *seen <= n {
                    Err(PrimitiveError::new(
                        "toy",
                        "flaky",
                        ErrorKind::Throttled,
                        format!("throttled (call {seen})"),
                        "slow down",
                    ))
                } else {
                    Ok(*seen)
                }
            })
            .map_err(Into::into)
        });
    // Returns the next value of a named script of booleans, one per call (for gate tests).
    let (h, seqs) = (
        host.clone(),
        Arc::new(Mutex::new(HashMap::<String, usize>::new())),
    );
    FuncRegistration::new("next")
        .with_volatility(true)
        .set_into_module(
            &mut m,
            move |name: &str, script: rhai::Array| -> Result<Dynamic, Box<EvalAltResult>> {
                h.call("toy", "next", &json!({"name": name}), |_| {
                    let mut s = seqs.lock().unwrap();
                    let i = s.entry(name.to_string()).or_default();
                    let v = script
                        .get(*i)
                        .or(script.last())
                        .cloned()
                        .unwrap_or_default();
                    *i += 1;
                    Ok(godwit_engine::run::to_json(&v).unwrap_or(Value::Null))
                })
                .map(|v| godwit_engine::run::from_json(&v))
                .map_err(Into::into)
            },
        );
    let (h, c) = (host.clone(), cancel.clone());
    FuncRegistration::new("interrupt")
        .with_volatility(true)
        .set_into_module(&mut m, move || -> Result<(), Box<EvalAltResult>> {
            h.call("toy", "interrupt", &(), |_| {
                c.cancel();
                Ok(())
            })
            .map_err(Into::into)
        });
    let h = host.clone();
    FuncRegistration::new("noop")
        .with_volatility(true)
        .set_into_module(&mut m, move || -> Result<i64, Box<EvalAltResult>> {
            h.call("toy", "noop", &(), |_| Ok(1i64)).map_err(Into::into)
        });
    FuncRegistration::new("pure").set_into_module(&mut m, |x: i64| x + 1);
    FuncRegistration::new("info").set_into_module(&mut m, || {
        let mut map = Map::new();
        map.insert("world".into(), "toy".into());
        map
    });
    engine.register_static_module("toy", m.into());
}
