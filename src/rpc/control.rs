//! Control RPCs: `help`, `uptime`, `stop`.
//!
//! `help` is answered by the router itself (it needs the method table); it is registered here so it is
//! listed like any other method.

use serde_json::{json, Value};

use super::{Params, Router, RpcContext, RpcError};

pub fn register(r: &mut Router) {
    r.register("help", "Control", HELP_HELP, |_, _| Ok(Value::Null));
    r.register("uptime", "Control", UPTIME_HELP, uptime);
    r.register("stop", "Control", STOP_HELP, stop);
}

const HELP_HELP: &str = "help ( \"command\" )\n\nList all commands, or get help for a specified command.\n\n\
Arguments:\n1. \"command\"     (string, optional) The command to get help on\n";
const UPTIME_HELP: &str = "uptime\n\nReturns the total uptime of the server.\n\n\
Result:\nttt        (numeric) The number of seconds that the server has been running\n";
const STOP_HELP: &str = "stop\n\nStop bsv-relay server.\n";

fn uptime(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    p.expect_count(0, 0)?;
    Ok(json!(ctx.started.elapsed().as_secs()))
}

fn stop(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    p.expect_count(0, 1)?;
    // The reply is still written: connections finish the request in hand before closing.
    ctx.shutdown.trigger();
    Ok(json!("Bitcoin server stopping"))
}
