//! `orkops`: parse the command line, run the command, print the error chain and a hint.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = orkops::cli::args::Cli::parse();
    orkops::init_tracing("warn");
    orkops::exit_code(orkops::cli::run(cli).await)
}
