use std::process::ExitCode;

use clap::Parser;

mod app;
mod cli;
mod options;
mod progress;

fn main() -> ExitCode {
    headstart::preprocess::silence_caught_decoder_panics();
    match app::run(cli::Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            // Library errors already carry their causes in their messages; parameters they
            // name become the flags that set them.
            eprintln!("error: {}", options::user_message(&err));
            ExitCode::FAILURE
        }
    }
}
