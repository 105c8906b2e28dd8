use std::process::ExitCode;

use clap::Parser;

mod app;
mod cli;
mod options;
mod progress;

fn main() -> ExitCode {
    match app::run(cli::Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            // Library errors already carry their causes in their messages.
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
