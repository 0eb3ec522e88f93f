//! `stocksync`: the command line of stocksync: the node's commands (local ones work offline
//! against a SQLite file; `enroll`, `sync` and `run` talk to a hub), the hub, and the demo.

mod cli;
mod demo;
mod hub_cmd;
mod node_cmd;
mod output;
mod run_lock;
mod sync_cmd;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return output::usage_error(e, cli::json_requested(std::env::args_os())),
    };
    match cli.command {
        cli::Command::Node(args) => node_cmd::run(args),
        cli::Command::Demo(args) => demo::run(&args),
        cli::Command::Hub(args) => hub_cmd::run(&args),
    }
}
