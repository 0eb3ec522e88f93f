//! `stocksync`: the command line of the stocksync node (and, with the next issues, the hub and
//! the sync demo). Every node command works offline against a local SQLite file.

mod cli;
mod demo;
mod hub_cmd;
mod node_cmd;
mod output;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Node(args) => node_cmd::run(args),
        cli::Command::Demo(args) => demo::run(&args),
        cli::Command::Hub(args) => hub_cmd::run(&args),
    }
}
